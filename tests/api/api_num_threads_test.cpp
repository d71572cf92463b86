// CPU threads (culoss.h: culoss_set_num_threads / culoss_get_num_threads): the setting, its
// refusals, CULOSS_NUM_THREADS, and the promise that every thread count gives bitwise the same
// loss, gradient and statistics, for every kind, reduction and the statistics API. The shapes
// are large enough for several chunks of work per pass (and per image).
#include <array>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "api/api_util.hpp"

#if defined(__linux__)
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

using namespace api_test;
using namespace testing_util;

constexpr std::array<int, 3> kThreadCounts = {1, 2, 16};

// Restores the default thread count when a test ends, whatever happened.
struct DefaultThreadsAfter {
  ~DefaultThreadsAfter() { culoss_set_num_threads(0); }
};

// The CPUs this process may run on, as the library counts them for its default.
int cpus() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return std::min(CPU_COUNT(&set), 1024);
#endif
  const unsigned h = std::thread::hardware_concurrency();
  return h ? static_cast<int>(h) : 1;
}

TEST(NumThreads, SetAndGet) {
  DefaultThreadsAfter restore;
  EXPECT_GE(culoss_get_num_threads(), 1);
  for (int n : {1, 3, 16, 1024}) {
    EXPECT_OK(culoss_set_num_threads(n));
    EXPECT_EQ(n, culoss_get_num_threads());
    EXPECT_EQ("", last_error());
  }
  EXPECT_OK(culoss_set_num_threads(0));
  EXPECT_GE(culoss_get_num_threads(), 1);
}

TEST(NumThreads, RefusesNegativeAndHugeCounts) {
  DefaultThreadsAfter restore;
  ASSERT_OK(culoss_set_num_threads(3));
  for (int n : {-1, -100, 1025, 1 << 30}) {
    EXPECT_REFUSED(culoss_set_num_threads(n), CULOSS_ERROR_INVALID_ARGUMENT,
                   "number of threads is " + std::to_string(n), "expected 1 to 1024",
                   "0 for the default");
    EXPECT_EQ(3, culoss_get_num_threads()) << "a refused count must leave the setting";
  }
}

// Run by ctest with CULOSS_NUM_THREADS set (tests/CMakeLists.txt: num_threads_env_*), where
// CULOSS_TEST_EXPECT_DEFAULT_THREADS says what the default should then be ("cpus": the CPUs of
// the process, i.e. the variable is ignored). Skipped in the plain run.
TEST(NumThreads, EnvironmentVariableIsTheDefault) {
  const char* expect = std::getenv("CULOSS_TEST_EXPECT_DEFAULT_THREADS");
  if (!expect) GTEST_SKIP() << "run by the num_threads_env_* ctests";
  DefaultThreadsAfter restore;
  const int want = std::string(expect) == "cpus" ? cpus() : std::atoi(expect);
  EXPECT_EQ(want, culoss_get_num_threads())
      << "CULOSS_NUM_THREADS=" << std::getenv("CULOSS_NUM_THREADS");
  EXPECT_OK(culoss_set_num_threads(5));
  EXPECT_EQ(5, culoss_get_num_threads()) << "the call overrides the variable";
  EXPECT_OK(culoss_set_num_threads(0));
  EXPECT_EQ(want, culoss_get_num_threads()) << "0 goes back to the variable";
}

// ---- every thread count, the same bits -----------------------------------------------------

uint64_t mix(uint64_t i) {  // a fixed hash of an index
  i ^= i >> 33;
  i *= 0xff51afd7ed558ccdULL;
  i ^= i >> 33;
  return i;
}

struct Case {
  std::string name;
  culoss_kind kind;
  std::vector<std::pair<culoss_param, int64_t>> ints;
  std::vector<int64_t> shape;
  int axis = 1;              // resolved class axis
  bool index_target = true;  // else a dense float32 target
  bool pixel_weight = false;
  DLDataType dtype = f32();
};

// A SUM is Dice + 0.5 cross-entropy, its terms with the reduction (NONE is not for a SUM).
culoss_loss make_loss(const Case& c, int reduction) {
  culoss_loss h = nullptr;
  EXPECT_OK(culoss_loss_create(&h, c.kind));
  if (c.kind == CULOSS_SUM) {
    for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY}) {
      culoss_loss term = nullptr;
      EXPECT_OK(culoss_loss_create(&term, kind));
      EXPECT_OK(culoss_loss_set_int(term, CULOSS_PARAM_REDUCTION, reduction));
      EXPECT_OK(culoss_loss_add_term(h, term, kind == CULOSS_DICE ? 1.0 : 0.5));
      culoss_loss_destroy(term);
    }
    return h;
  }
  for (const auto& p : c.ints) EXPECT_OK(culoss_loss_set_int(h, p.first, p.second));
  EXPECT_OK(culoss_loss_set_int(h, CULOSS_PARAM_REDUCTION, reduction));
  return h;
}

std::vector<Case> cases() {
  using P = std::pair<culoss_param, int64_t>;
  const P sigmoid{CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID};
  const P softmax{CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX};
  const std::vector<int64_t> image{2, 4, 100, 100};  // 3 chunks of pixels per image
  std::vector<Case> c;
  c.push_back({"dice", CULOSS_DICE, {}, image});
  c.push_back({"dice_batch_nobg_weighted",
               CULOSS_DICE,
               {{CULOSS_PARAM_BATCH, 1}, {CULOSS_PARAM_INCLUDE_BACKGROUND, 0}},
               image,
               1,
               true,
               true});
  c.push_back({"jaccard_sigmoid_dense", CULOSS_JACCARD, {sigmoid}, {2, 1, 150, 150}, 1, false});
  c.push_back({"tversky_channels_last",
               CULOSS_TVERSKY,
               {{CULOSS_PARAM_CLASS_AXIS, -1}},
               {2, 100, 100, 3},
               3});
  c.push_back({"focal_tversky_40_classes", CULOSS_FOCAL_TVERSKY, {}, {2, 40, 50, 50}});
  c.push_back({"generalized_dice_f64", CULOSS_GENERALIZED_DICE, {}, image, 1, true, false, f64()});
  c.push_back({"generalized_dice_small_images", CULOSS_GENERALIZED_DICE, {}, {300, 3, 40}});
  c.push_back({"bce", CULOSS_BCE, {}, {2, 3, 80, 80}, 1, false, true});
  c.push_back({"cross_entropy", CULOSS_CROSS_ENTROPY, {}, image, 1, true, true});
  c.push_back({"cross_entropy_small_images_bf16",
               CULOSS_CROSS_ENTROPY,
               {},
               {300, 3, 40},
               1,
               true,
               false,
               bf16()});
  c.push_back({"focal_softmax", CULOSS_FOCAL, {softmax}, image});
  c.push_back({"focal_sigmoid_f16", CULOSS_FOCAL, {}, {2, 2, 120, 120}, 1, false, false, f16()});
  c.push_back({"combo", CULOSS_COMBO, {}, {2, 1, 150, 150}, 1, false});
  c.push_back({"marginal_ce", CULOSS_MARGINAL_CE, {}, image});
  c.push_back({"sum_dice_ce", CULOSS_SUM, {}, image, 1, true, true});
  c.push_back({"lovasz_hinge", CULOSS_LOVASZ_HINGE, {}, {2, 2, 100, 100}, 1, false});
  c.push_back({"lovasz_hinge_per_image",
               CULOSS_LOVASZ_HINGE,
               {{CULOSS_PARAM_PER_IMAGE, 1}},
               {3, 1, 100, 100},
               1,
               false,
               true});
  c.push_back({"lovasz_softmax", CULOSS_LOVASZ_SOFTMAX, {}, image});
  c.push_back({"lovasz_softmax_per_image_all",
               CULOSS_LOVASZ_SOFTMAX,
               {{CULOSS_PARAM_PER_IMAGE, 1}, {CULOSS_PARAM_CLASSES, CULOSS_CLASSES_ALL}},
               image,
               1,
               true,
               true});
  c.push_back({"lovasz_softmax_small_images",
               CULOSS_LOVASZ_SOFTMAX,
               {{CULOSS_PARAM_PER_IMAGE, 1}},
               {300, 3, 40}});
  return c;
}

bool is_lovasz(const Case& c) {
  return c.kind == CULOSS_LOVASZ_HINGE || c.kind == CULOSS_LOVASZ_SOFTMAX;
}
bool pooled_lovasz(const Case& c) {
  if (!is_lovasz(c)) return false;
  for (const auto& p : c.ints)
    if (p.first == CULOSS_PARAM_PER_IMAGE && p.second == 1) return false;
  return true;
}

struct Tensors {
  TestTensor input, target, weight;
  explicit Tensors(const Case& c) : input(c.shape, c.dtype) {
    // Logits on a grid of 1/8 (Lovász errors tie often), some NaN-free large ones.
    for (int64_t i = 0; i < input.numel(); ++i)
      input.set(i, static_cast<double>(static_cast<int64_t>(mix(i) % 49) - 24) / 8.0);
    std::vector<int64_t> pixels = c.shape;
    const int64_t C = c.shape[static_cast<size_t>(c.axis)];
    pixels.erase(pixels.begin() + c.axis);
    if (c.index_target) {
      target = TestTensor(pixels, i64());
      for (int64_t i = 0; i < target.numel(); ++i)
        target.set(i, mix(i + 7) % 17 == 0 ? -100.0 : static_cast<double>(mix(i + 1) % C));
    } else {
      target = TestTensor(c.shape, f32());
      for (int64_t i = 0; i < target.numel(); ++i)
        target.set(i, mix(i + 3) % 3 == 0 ? 1.0 : (mix(i) % 5 == 0 ? 0.25 : 0.0));
    }
    if (c.pixel_weight) {
      weight = TestTensor(pixels, f32());
      for (int64_t i = 0; i < weight.numel(); ++i)
        weight.set(i, static_cast<double>(mix(i + 11) % 4) * 0.5);
    }
  }
  DLTensor* pw(const Case& c) { return c.pixel_weight ? weight.dl() : nullptr; }
};

std::vector<int64_t> output_shape(const Case& c, int reduction) {
  if (reduction != CULOSS_REDUCTION_NONE) return {};
  culoss_loss h = make_loss(c, reduction);
  // The NONE shape: ask the library by trying the shapes a kind may have.
  std::vector<int64_t> pixels = c.shape;
  const int64_t N = c.shape[0], C = c.shape[static_cast<size_t>(c.axis)];
  pixels.erase(pixels.begin() + c.axis);
  const std::vector<std::vector<int64_t>> candidates = {{N, C}, {C}, {N}, pixels, c.shape, {1}, {}};
  Tensors t(c);
  for (const auto& s : candidates) {
    TestTensor out(s, f64());
    if (culoss_compute(h, t.input.dl(), t.target.dl(), t.pw(c), out.dl(), nullptr, 1.0, nullptr, 0,
                       nullptr) == CULOSS_SUCCESS) {
      culoss_loss_destroy(h);
      return s;
    }
  }
  culoss_loss_destroy(h);
  ADD_FAILURE() << c.name << ": no NONE output shape accepted";
  return {};
}

struct Bits {
  std::vector<uint8_t> out, grad, stats;
  bool operator==(const Bits& o) const {
    return out == o.out && grad == o.grad && stats == o.stats;
  }
};

// culoss_compute (value and gradient) and, where supported, the statistics API.
Bits run(const Case& c, int reduction, const std::vector<int64_t>& out_shape) {
  SCOPED_TRACE(c.name);
  Bits b;
  culoss_loss h = make_loss(c, reduction);
  Tensors t(c);
  TestTensor out(out_shape, f64()), grad(c.shape, f32());
  out.poison();
  grad.poison();
  EXPECT_OK(culoss_compute(h, t.input.dl(), t.target.dl(), t.pw(c), out.dl(), grad.dl(), 0.5,
                           nullptr, 0, nullptr));
  b.out = out.bytes;
  b.grad = grad.bytes;
  if (!pooled_lovasz(c)) {  // the statistics API; from_stats with this rank's own vector
    int64_t count = 0;
    EXPECT_OK(culoss_stats_size(h, t.input.dl(), t.target.dl(), &count));
    TestTensor stats({count}, f64()), out2(out_shape, f64()), grad2(c.shape, f32());
    stats.poison();
    out2.poison();
    grad2.poison();
    EXPECT_OK(culoss_compute_stats(h, t.input.dl(), t.target.dl(), t.pw(c), stats.dl(), nullptr, 0,
                                   nullptr));
    EXPECT_OK(culoss_compute_from_stats(h, t.input.dl(), t.target.dl(), t.pw(c), stats.dl(),
                                        out2.dl(), grad2.dl(), 0.5, nullptr, 0, nullptr));
    b.stats = stats.bytes;
    b.stats.insert(b.stats.end(), out2.bytes.begin(), out2.bytes.end());
    b.stats.insert(b.stats.end(), grad2.bytes.begin(), grad2.bytes.end());
  }
  culoss_loss_destroy(h);
  return b;
}

TEST(NumThreads, EveryCountGivesTheSameBits) {
  DefaultThreadsAfter restore;
  for (const Case& c : cases())
    for (int reduction : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE}) {
      if ((c.kind == CULOSS_SUM && reduction == CULOSS_REDUCTION_NONE) ||
          (c.kind == CULOSS_COMBO && reduction != CULOSS_REDUCTION_MEAN))
        continue;  // refused reductions
      const std::vector<int64_t> shape = output_shape(c, reduction);
      std::vector<Bits> got;
      for (int n : kThreadCounts) {
        ASSERT_OK(culoss_set_num_threads(n));
        got.push_back(run(c, reduction, shape));
      }
      for (size_t k = 1; k < got.size(); ++k)
        EXPECT_TRUE(got[k] == got[0]) << c.name << ", reduction " << reduction << ": "
                                      << kThreadCounts[k] << " threads differ from 1";
    }
}

// Setting the count wakes idle threads for the next call (culoss.h). Callers on several threads
// that set the count before each call, as the Python modules do, get the same bits as one
// caller alone, and nobody waits forever.
TEST(NumThreads, CallersThatSetTheCountBeforeEachCallAgree) {
  DefaultThreadsAfter restore;
  const std::vector<Case> all = cases();
  const Case& c = all.front();
  const std::vector<int64_t> shape = output_shape(c, CULOSS_REDUCTION_MEAN);
  ASSERT_OK(culoss_set_num_threads(1));
  const Bits expected = run(c, CULOSS_REDUCTION_MEAN, shape);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> callers;
  for (int k = 0; k < 4; ++k)
    callers.emplace_back([&, k] {
      for (int i = 0; i < 12; ++i) {
        culoss_set_num_threads(1 + (k + i) % 3);
        if (!(run(c, CULOSS_REDUCTION_MEAN, shape) == expected)) ++mismatches[k];
      }
    });
  for (std::thread& t : callers) t.join();
  for (int k = 0; k < 4; ++k) EXPECT_EQ(mismatches[k], 0) << "caller " << k;
}

#if defined(__linux__)
// Whether the sanitizer this test is built with makes fork() in a multi-threaded process safe.
// ThreadSanitizer does not support threads started after such a fork. AddressSanitizer as GCC 12
// ships it has no fork interceptor: it does not hold its allocator's and thread registry's locks
// across fork(), so a child whose parent has another thread in the sanitizer's runtime at that
// moment (starting, exiting, allocating) can hang there. CI saw the child time out after 60 s
// twice, once with calls in flight and once with only idle workers and a thread starting.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizerForksSafely = false;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitizerForksSafely = false;
#else
constexpr bool kSanitizerForksSafely = true;
#endif
#else
constexpr bool kSanitizerForksSafely = true;
#endif

TEST(NumThreads, AForkedChildComputesWithItsOwnThreads) {
  // The parent's pool has workers (and may be busy in another thread at fork time); the child
  // has none of them and must still compute, in parallel, the same bits.
  if (!kSanitizerForksSafely)
    GTEST_SKIP() << "this sanitizer's runtime does not make fork() safe with other threads running";
  DefaultThreadsAfter restore;
  // Plain C API calls only (no gtest macros, whose locks another thread may hold at fork time).
  const Case c{"dice", CULOSS_DICE, {}, {2, 4, 100, 100}};
  Tensors in(c);
  const auto value_and_grad = [&] {
    culoss_loss h = nullptr;
    TestTensor out({}, f64()), grad(c.shape, f32());
    std::vector<uint8_t> bytes;
    if (culoss_loss_create(&h, CULOSS_DICE) == CULOSS_SUCCESS &&
        culoss_compute(h, in.input.dl(), in.target.dl(), nullptr, out.dl(), grad.dl(), 1.0, nullptr,
                       0, nullptr) == CULOSS_SUCCESS) {
      bytes = out.bytes;
      bytes.insert(bytes.end(), grad.bytes.begin(), grad.bytes.end());
    }
    culoss_loss_destroy(h);
    return bytes;
  };
  ASSERT_OK(culoss_set_num_threads(4));
  const std::vector<uint8_t> parent = value_and_grad();
  ASSERT_FALSE(parent.empty());
  std::thread busy([&] {  // calls in flight in another thread while forking
    for (int i = 0; i < 3; ++i) value_and_grad();
  });
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(60);  // a deadlock fails the test instead of hanging it
    _exit(value_and_grad() == parent && culoss_get_num_threads() == 4 ? 0 : 1);
  }
  busy.join();
  ASSERT_GT(pid, 0) << "fork failed";
  int status = 0;
  ASSERT_EQ(pid, waitpid(pid, &status, 0));
  EXPECT_TRUE(WIFEXITED(status)) << "the child did not exit (signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(0, WEXITSTATUS(status)) << "the child's result differs";
}
#endif

// ---- errors raised in workers reach the caller -------------------------------------------

std::string refusal(int threads, const std::function<culoss_status()>& call, culoss_status want) {
  EXPECT_OK(culoss_set_num_threads(threads));
  const culoss_status got = call();
  EXPECT_EQ(static_cast<int>(want), static_cast<int>(got)) << threads << " threads";
  return last_error();
}

TEST(NumThreads, TheFirstInvalidTargetIsReportedWhateverTheCount) {
  DefaultThreadsAfter restore;
  const Case c{"ce", CULOSS_CROSS_ENTROPY, {}, {2, 4, 300, 300}, 1, true, true};
  culoss_loss h = make_loss(c, CULOSS_REDUCTION_MEAN);
  Tensors t(c);
  // Bad labels in several chunks of the scan; the first is element 70001.
  for (int64_t i : {170000, 90001, 70001, 150000}) t.target.set(i, 4.0);
  TestTensor out({}, f64()), grad(c.shape, f32());
  const auto call = [&] {
    return culoss_compute(h, t.input.dl(), t.target.dl(), t.pw(c), out.dl(), grad.dl(), 1.0,
                          nullptr, 0, nullptr);
  };
  for (int n : kThreadCounts)
    EXPECT_THAT(refusal(n, call, CULOSS_ERROR_INVALID_TARGET),
                ::testing::HasSubstr("target[70001] = 4 is not a class index"))
        << n << " threads";
  // Targets are checked before pixel weights; with valid targets the first bad weight counts.
  for (int64_t i : {170000, 90001, 70001, 150000}) t.target.set(i, 1.0);
  for (int64_t i : {100000, 65000, 120000}) t.weight.set(i, -1.0);
  for (int n : kThreadCounts)
    EXPECT_THAT(refusal(n, call, CULOSS_ERROR_INVALID_ARGUMENT),
                ::testing::HasSubstr("pixel_weight[65000] = -1 must be finite and >= 0"))
        << n << " threads";
  t.target.set(170000, 9.0);
  for (int n : kThreadCounts)
    EXPECT_THAT(refusal(n, call, CULOSS_ERROR_INVALID_TARGET),
                ::testing::HasSubstr("target[170000] = 9"))
        << n << " threads";
  culoss_loss_destroy(h);
}

}  // namespace

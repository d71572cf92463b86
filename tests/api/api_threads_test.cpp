// Threads (culoss.h): distinct descriptors may be used concurrently from any threads; one
// descriptor may be shared by concurrent calls as long as no thread changes it; the last error is
// per thread. Every concurrent result must equal, bit for bit, the single-threaded one.
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "api/api_util.hpp"

namespace {

using namespace api_test;
using namespace testing_util;

constexpr int kThreads = 8;

// All threads leave the gate together, so that their calls overlap as much as possible.
class Gate {
 public:
  explicit Gate(int n) : n_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(m_);
    if (++arrived_ == n_) {
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return arrived_ >= n_; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, arrived_ = 0;
};

void run_threads(int n, const std::function<void(int)>& body) {
  Gate gate(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      gate.arrive_and_wait();
      body(t);
    });
  for (std::thread& th : threads) th.join();
}

// One call of the test matrix: a descriptor recipe and its tensors.
struct Case {
  const char* name;
  culoss_kind kind;
  std::vector<std::pair<culoss_param, int64_t>> ints;
  std::vector<std::pair<culoss_param, double>> floats;
  std::vector<std::pair<culoss_param, std::vector<double>>> lists;
  std::vector<int64_t> shape;
  DLDataType dtype;
  int axis;  // resolved class axis
  bool index_target;
  DLDataType target_dtype;
  bool pixel_weight;
  bool none_pixels = false;  // REDUCTION_NONE with one value per pixel
  bool ignore_255 = false;   // every 11th label is 255 (the case's IGNORE_INDEX)
};

std::vector<Case> cases() {
  const auto P = [](culoss_param p, int64_t v) { return std::make_pair(p, v); };
  const auto F = [](culoss_param p, double v) { return std::make_pair(p, v); };
  std::vector<Case> c;
  c.push_back({"dice", CULOSS_DICE,
               {P(CULOSS_PARAM_INCLUDE_BACKGROUND, 0), P(CULOSS_PARAM_BATCH, 1)}, {}, {},
               {4, 3, 8, 8}, f32(), 1, true, i64(), false});
  c.push_back({"jaccard_sigmoid_dense", CULOSS_JACCARD,
               {P(CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID),
                P(CULOSS_PARAM_SQUARED_DENOMINATOR, 1)},
               {F(CULOSS_PARAM_SMOOTH_NR, 0.5)}, {}, {2, 2, 16}, f64(), 1, false, f64(), true});
  c.push_back({"tversky_fp16", CULOSS_TVERSKY, {P(CULOSS_PARAM_AVERAGE, CULOSS_AVERAGE_MICRO)},
               {F(CULOSS_PARAM_ALPHA, 0.3), F(CULOSS_PARAM_BETA, 0.7)}, {}, {2, 4, 32}, f16(), 1,
               true, u8(), false});
  c.push_back({"focal_tversky_bf16_nhwc", CULOSS_FOCAL_TVERSKY,
               {P(CULOSS_PARAM_CLASS_AXIS, -1)}, {F(CULOSS_PARAM_GAMMA, 1.5)}, {}, {2, 8, 8, 3},
               bf16(), 3, true, i32(), false});
  c.push_back({"generalized_dice", CULOSS_GENERALIZED_DICE,
               {P(CULOSS_PARAM_WEIGHT_TYPE, CULOSS_WEIGHT_SIMPLE)}, {},
               {{CULOSS_PARAM_CLASS_WEIGHTS, {1.0, 2.0, 0.5, 1.0}}}, {3, 4, 50}, f32(), 1, true,
               i32(), true});
  c.push_back({"bce_batch_frequency", CULOSS_BCE,
               {P(CULOSS_PARAM_CLASS_BALANCE, CULOSS_BALANCE_BATCH_FREQUENCY)},
               {F(CULOSS_PARAM_LABEL_SMOOTHING, 0.1)}, {{CULOSS_PARAM_POS_WEIGHT, {2.0, 0.5}}},
               {4, 2, 30}, f32(), 1, false, f32(), false});
  c.push_back({"cross_entropy_ignore", CULOSS_CROSS_ENTROPY, {P(CULOSS_PARAM_IGNORE_INDEX, 255)},
               {F(CULOSS_PARAM_LABEL_SMOOTHING, 0.05)},
               {{CULOSS_PARAM_CLASS_WEIGHTS, {1.0, 0.5, 2.0, 1.0, 3.0}}}, {4, 5, 40}, f32(), 1,
               true, u8(), true, false, true});
  c.push_back({"cross_entropy_none", CULOSS_CROSS_ENTROPY,
               {P(CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE)}, {}, {}, {2, 3, 7, 5}, f64(),
               1, true, i64(), false, true});
  c.push_back({"focal_softmax", CULOSS_FOCAL, {P(CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX)},
               {F(CULOSS_PARAM_GAMMA, 2.0)}, {}, {2, 3, 33}, f32(), 1, true, i64(), false});
  c.push_back({"combo", CULOSS_COMBO, {}, {F(CULOSS_PARAM_CE_RATIO, 0.3)}, {}, {2, 1, 64}, f32(),
               1, false, u8(), false});
  c.push_back({"marginal_ce", CULOSS_MARGINAL_CE, {}, {}, {}, {2, 4, 30}, f32(), 1, true, i64(),
               false});
  c.push_back({"dice_sigmoid_binary_mask",
               CULOSS_DICE,
               {P(CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID)},
               {},
               {},
               {3, 1, 6, 6},
               f32(),
               1,
               true,
               u8(),
               false});
  c.push_back({"lovasz_hinge", CULOSS_LOVASZ_HINGE, {P(CULOSS_PARAM_PER_IMAGE, 1)}, {}, {},
               {2, 1, 40}, f32(), 1, false, f32(), false});
  c.push_back({"lovasz_softmax", CULOSS_LOVASZ_SOFTMAX,
               {P(CULOSS_PARAM_CLASSES, CULOSS_CLASSES_ALL)}, {}, {}, {2, 3, 30}, f64(), 1, true,
               i64(), true});
  c.push_back({"sum_dice_ce", CULOSS_SUM, {}, {}, {}, {2, 3, 30}, f32(), 1, true, i64(), false});
  return c;
}

culoss_loss make_loss(const Case& c) {
  culoss_loss h = nullptr;
  if (c.kind == CULOSS_SUM) {
    culoss_loss dice = nullptr, ce = nullptr;
    if (culoss_loss_create(&h, CULOSS_SUM) != CULOSS_SUCCESS ||
        culoss_loss_create(&dice, CULOSS_DICE) != CULOSS_SUCCESS ||
        culoss_loss_create(&ce, CULOSS_CROSS_ENTROPY) != CULOSS_SUCCESS ||
        culoss_loss_add_term(h, dice, 1.0) != CULOSS_SUCCESS ||
        culoss_loss_add_term(h, ce, 0.5) != CULOSS_SUCCESS) {
      culoss_loss_destroy(h);
      h = nullptr;
    }
    culoss_loss_destroy(dice);
    culoss_loss_destroy(ce);
    return h;
  }
  if (culoss_loss_create(&h, c.kind) != CULOSS_SUCCESS) return nullptr;
  bool ok = true;
  for (const auto& p : c.ints) ok = ok && culoss_loss_set_int(h, p.first, p.second) == CULOSS_SUCCESS;
  for (const auto& p : c.floats)
    ok = ok && culoss_loss_set_float(h, p.first, p.second) == CULOSS_SUCCESS;
  for (const auto& p : c.lists)
    ok = ok && culoss_loss_set_floats(h, p.first, p.second.data(),
                                      static_cast<int64_t>(p.second.size())) == CULOSS_SUCCESS;
  if (!ok) {
    culoss_loss_destroy(h);
    return nullptr;
  }
  return h;
}

// The tensors of a case (inputs deterministic; outputs fresh).
struct Tensors {
  TestTensor input, target, weight, out, grad;
  explicit Tensors(const Case& c) {
    input = TestTensor(c.shape, c.dtype);
    fill_logits(input);
    std::vector<int64_t> pixels = c.shape;
    const int64_t C = c.shape[static_cast<size_t>(c.axis)];
    pixels.erase(pixels.begin() + c.axis);
    if (c.index_target) {
      target = TestTensor(pixels, c.target_dtype);
      for (int64_t i = 0; i < target.numel(); ++i)
        // C = 1: the labels are a 0/1 mask.
        target.set(i, c.ignore_255 && i % 11 == 4
                          ? 255.0
                          : static_cast<double>((i * 7 + 3) % (C == 1 ? 2 : C)));
    } else {
      target = TestTensor(c.shape, c.target_dtype);
      for (int64_t i = 0; i < target.numel(); ++i)
        target.set(i, c.target_dtype.code == kDLUInt ? (i % 3 == 0 ? 1.0 : 0.0)
                                                     : 0.5 + 0.5 * std::sin(1.3 * i));
    }
    if (c.pixel_weight) {
      weight = TestTensor(pixels, f32());
      for (int64_t i = 0; i < weight.numel(); ++i) weight.set(i, i % 5 == 0 ? 0.0 : 0.25 * (i % 4 + 1));
    }
    out = TestTensor(c.none_pixels ? pixels : std::vector<int64_t>{}, f64());
    grad = TestTensor(c.shape, f32());
  }
  DLTensor* pw(const Case& c) { return c.pixel_weight ? weight.dl() : nullptr; }
};

// loss_out and grad_input bytes of one call.
struct Result {
  culoss_status status = CULOSS_ERROR_INTERNAL;
  std::vector<uint8_t> out, grad;
  bool operator==(const Result& o) const {
    return status == o.status && out == o.out && grad == o.grad;
  }
};

Result compute(culoss_loss h, const Case& c, Tensors& t, std::vector<uint8_t>* workspace) {
  t.out.poison();
  t.grad.poison();
  void* ws = nullptr;
  size_t ws_bytes = 0;
  if (workspace) {
    size_t need = 0;
    if (culoss_workspace_size(h, t.input.dl(), t.target.dl(), &need) != CULOSS_SUCCESS) return {};
    workspace->assign(need, 0xab);
    ws = workspace->data();
    ws_bytes = workspace->size();
  }
  Result r;
  r.status = culoss_compute(h, t.input.dl(), t.target.dl(), t.pw(c), t.out.dl(), t.grad.dl(), 0.75,
                            ws, ws_bytes, nullptr);
  r.out = t.out.bytes;
  r.grad = t.grad.bytes;
  return r;
}

// Single-threaded references, one per case.
std::vector<Result> references(const std::vector<Case>& cs) {
  std::vector<Result> refs;
  for (const Case& c : cs) {
    culoss_loss h = make_loss(c);
    Tensors t(c);
    refs.push_back(h ? compute(h, c, t, nullptr) : Result{});
    culoss_loss_destroy(h);
  }
  return refs;
}

TEST(ApiThreads, ReferencesSucceed) {
  const std::vector<Case> cs = cases();
  const std::vector<Result> refs = references(cs);
  for (size_t i = 0; i < cs.size(); ++i)
    EXPECT_EQ(CULOSS_SUCCESS, refs[i].status) << cs[i].name;
}

TEST(ApiThreads, OwnDescriptorsMatchSingleThreadBitwise) {
  // Each thread creates, configures, uses and destroys its own descriptors and tensors, over
  // every kind, in a thread-dependent order.
  const std::vector<Case> cs = cases();
  const std::vector<Result> refs = references(cs);
  std::vector<std::string> errors(kThreads);
  run_threads(kThreads, [&](int t) {
    std::vector<uint8_t> ws;
    for (int rep = 0; rep < 3; ++rep)
      for (size_t k = 0; k < cs.size(); ++k) {
        const size_t i = (k + static_cast<size_t>(t) * 5) % cs.size();
        culoss_loss h = make_loss(cs[i]);
        Tensors tensors(cs[i]);
        const Result r = compute(h, cs[i], tensors, (t + rep) % 2 ? &ws : nullptr);
        culoss_loss_destroy(h);
        if (!(r == refs[i])) errors[t] += std::string(cs[i].name) + " ";
      }
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ("", errors[t]) << "thread " << t << " differs on";
}

TEST(ApiThreads, SharedDescriptorsAndInputsMatchSingleThreadBitwise) {
  // One descriptor per case and one set of input tensors, shared by every thread; each thread
  // has its own outputs, half of them their own workspace.
  const std::vector<Case> cs = cases();
  const std::vector<Result> refs = references(cs);
  std::vector<culoss_loss> shared;
  std::vector<Tensors> inputs;
  for (const Case& c : cs) {
    shared.push_back(make_loss(c));
    ASSERT_NE(nullptr, shared.back()) << c.name;
    inputs.emplace_back(c);
  }
  // Read-only views of the shared inputs, made before the threads start (dl() writes the view).
  struct Views {
    DLTensor x, y, pw;
  };
  std::vector<Views> views;
  for (size_t i = 0; i < cs.size(); ++i)
    views.push_back({*inputs[i].input.dl(), *inputs[i].target.dl(),
                     cs[i].pixel_weight ? *inputs[i].weight.dl() : DLTensor{}});
  std::vector<std::string> errors(kThreads);
  run_threads(kThreads, [&](int t) {
    std::vector<uint8_t> ws;
    for (int rep = 0; rep < 4; ++rep)
      for (size_t k = 0; k < cs.size(); ++k) {
        const size_t i = (k + static_cast<size_t>(t) * 3) % cs.size();
        const Case& c = cs[i];
        TestTensor out(inputs[i].out.shape, f64()), grad(c.shape, f32());
        out.poison();
        grad.poison();
        void* w = nullptr;
        size_t w_bytes = 0;
        const Views& v = views[i];
        if (t % 2) {
          size_t need = 0;
          if (culoss_workspace_size(shared[i], &v.x, &v.y, &need) !=
              CULOSS_SUCCESS) {
            errors[t] += std::string(c.name) + "(workspace_size) ";
            continue;
          }
          ws.assign(need, 0xcd);
          w = ws.data();
          w_bytes = ws.size();
        }
        Result r;
        r.status = culoss_compute(shared[i], &v.x, &v.y, c.pixel_weight ? &v.pw : nullptr, out.dl(),
                                  grad.dl(), 0.75, w, w_bytes, nullptr);
        r.out = out.bytes;
        r.grad = grad.bytes;
        if (!(r == refs[i])) errors[t] += std::string(c.name) + " ";
        // Reading the shared descriptor meanwhile is allowed too.
        int64_t check = 0;
        culoss_loss_get_int(shared[i], CULOSS_PARAM_CHECK_TARGETS, &check);
        if (check != 1) errors[t] += std::string(c.name) + "(get_int) ";
      }
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ("", errors[t]) << "thread " << t << " differs on";
  for (culoss_loss h : shared) culoss_loss_destroy(h);
}

TEST(ApiThreads, SharedDescriptorStatisticsApi) {
  // culoss_compute_stats and culoss_compute_from_stats on one shared descriptor.
  const Case c = cases()[0];  // Dice
  culoss_loss h = make_loss(c);
  ASSERT_NE(nullptr, h);
  Tensors in(c);
  int64_t count = 0;
  ASSERT_OK(culoss_stats_size(h, in.input.dl(), in.target.dl(), &count));
  TestTensor ref_stats({count}, f64()), ref_out({}, f64()), ref_grad(c.shape, f32());
  ref_stats.poison();  // the threads' tensors are poisoned too: equal bytes past the end
  ref_out.poison();
  ref_grad.poison();
  ASSERT_OK(culoss_compute_stats(h, in.input.dl(), in.target.dl(), nullptr, ref_stats.dl(), nullptr,
                                 0, nullptr));
  ASSERT_OK(culoss_compute_from_stats(h, in.input.dl(), in.target.dl(), nullptr, ref_stats.dl(),
                                      ref_out.dl(), ref_grad.dl(), 1.0, nullptr, 0, nullptr));
  std::vector<int> mismatches(kThreads, 0);
  const DLTensor x = *in.input.dl(), y = *in.target.dl();
  run_threads(kThreads, [&](int t) {
    for (int it = 0; it < 20; ++it) {
      TestTensor stats({count}, f64()), out({}, f64()), grad(c.shape, f32());
      stats.poison();
      out.poison();
      grad.poison();
      if (culoss_compute_stats(h, &x, &y, nullptr, stats.dl(), nullptr, 0, nullptr) !=
              CULOSS_SUCCESS ||
          stats.bytes != ref_stats.bytes)
        ++mismatches[t];
      if (culoss_compute_from_stats(h, &x, &y, nullptr, stats.dl(), out.dl(), grad.dl(), 1.0,
                                    nullptr, 0, nullptr) != CULOSS_SUCCESS ||
          out.bytes != ref_out.bytes || grad.bytes != ref_grad.bytes)
        ++mismatches[t];
    }
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(0, mismatches[t]) << "thread " << t;
  culoss_loss_destroy(h);
}

TEST(ApiThreads, LastErrorIsPerThreadUnderContention) {
  // Every thread alternates its own failures (a message naming its own number), successes and
  // other threads' activity; its culoss_last_error() always shows its own latest call, and the
  // pointer it returned stays valid and unchanged until this thread's next call.
  std::vector<std::string> errors(kThreads);
  run_threads(kThreads, [&](int t) {
    culoss_loss h = nullptr;
    if (culoss_loss_create(&h, CULOSS_DICE) != CULOSS_SUCCESS) {
      errors[t] = "create failed";
      return;
    }
    const std::string mine = std::to_string(1000 + t);
    for (int it = 0; it < 300; ++it) {
      if (culoss_loss_set_int(h, CULOSS_PARAM_CLASS_AXIS, 1000 + t) != CULOSS_ERROR_INVALID_ARGUMENT) {
        errors[t] = "the out-of-range axis was accepted";
        break;
      }
      const char* e = culoss_last_error();
      const std::string copy = e ? e : "<NULL>";
      if (copy.find(mine) == std::string::npos) {
        errors[t] = "message of another call: " + copy;
        break;
      }
      std::this_thread::yield();  // let the others fail and succeed meanwhile
      if (std::string(e) != copy) {
        errors[t] = "message changed by another thread: " + std::string(e);
        break;
      }
      int64_t v = 0;
      if (culoss_loss_get_int(h, CULOSS_PARAM_CLASS_AXIS, &v) != CULOSS_SUCCESS || v != 1 ||
          std::string(culoss_last_error()) != "") {
        errors[t] = "a success did not clear this thread's message";
        break;
      }
    }
    culoss_loss_destroy(h);
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ("", errors[t]) << "thread " << t;
}

TEST(ApiThreads, ConcurrentRefusalsLeaveOutputsUntouched) {
  // Threads whose calls are refused (each for its own reason) next to threads whose calls
  // succeed, on one shared descriptor: refusals write nothing and name their own reason.
  const Case c = cases()[6];  // cross-entropy with ignore index 255
  culoss_loss h = make_loss(c);
  ASSERT_NE(nullptr, h);
  Tensors in(c);
  const std::vector<Result> refs = references({c});
  std::vector<std::string> errors(kThreads);
  const DLTensor x = *in.input.dl(), y_ok = *in.target.dl(), pw = *in.weight.dl();
  run_threads(kThreads, [&](int t) {
    for (int it = 0; it < 30; ++it) {
      TestTensor out({}, f64()), grad(c.shape, f32());
      out.poison();
      grad.poison();
      DLTensor y = y_ok;
      TestTensor bad_target({4, 41}, u8());
      const char* word = "";
      if (t % 2 == 1) {  // a shape mismatch, a non-finite grad_scale or a NULL loss_out
        if (t % 3 == 0) {
          y = *bad_target.dl();
          word = "target";
        } else if (t % 3 == 1) {
          word = "grad_scale";
        } else {
          word = "loss_out";
        }
      }
      const double scale = std::string(word) == "grad_scale" ? NAN : 0.75;
      DLTensor* out_arg = std::string(word) == "loss_out" ? nullptr : out.dl();
      const culoss_status s = culoss_compute(h, &x, &y, &pw, out_arg, grad.dl(), scale,
                                             nullptr, 0, nullptr);
      if (word[0] == '\0') {
        Result r;
        r.status = s;
        r.out = out.bytes;
        r.grad = grad.bytes;
        if (!(r == refs[0])) errors[t] = "a concurrent success differs";
      } else {
        TestTensor poisoned_out({}, f64()), poisoned_grad(c.shape, f32());
        poisoned_out.poison();
        poisoned_grad.poison();
        const std::string e = culoss_last_error();
        if (s == CULOSS_SUCCESS || e.find(word) == std::string::npos)
          errors[t] = std::string("refusal for ") + word + " reported as: " + e;
        if (out.bytes != poisoned_out.bytes || grad.bytes != poisoned_grad.bytes)
          errors[t] = std::string("a refused call (") + word + ") wrote an output";
      }
      if (!errors[t].empty()) break;
    }
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ("", errors[t]) << "thread " << t;
  culoss_loss_destroy(h);
}

TEST(ApiThreads, ConcurrentDescriptorLifecycles) {
  // Create, configure, copy into sums, query and destroy descriptors in every thread at once.
  std::atomic<int> failures{0};
  run_threads(kThreads, [&](int t) {
    for (int it = 0; it < 200; ++it) {
      culoss_loss sum = nullptr, term = nullptr;
      const culoss_kind k = static_cast<culoss_kind>(1 + (it + t) % 10);
      if (culoss_loss_create(&sum, CULOSS_SUM) != CULOSS_SUCCESS ||
          culoss_loss_create(&term, k) != CULOSS_SUCCESS) {
        ++failures;
      } else {
        culoss_loss_set_int(term, CULOSS_PARAM_CHECK_TARGETS, it % 2);
        if (culoss_loss_add_term(sum, term, 0.5 + t) != CULOSS_SUCCESS) ++failures;
        int64_t v = -1;
        if (culoss_loss_get_int(term, CULOSS_PARAM_CHECK_TARGETS, &v) != CULOSS_SUCCESS ||
            v != it % 2)
          ++failures;
      }
      if (culoss_loss_destroy(term) != CULOSS_SUCCESS || culoss_loss_destroy(sum) != CULOSS_SUCCESS)
        ++failures;
    }
  });
  EXPECT_EQ(0, failures.load());
}

}  // namespace

// Status strings, version, the thread-local last error, and empty tensors.
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "api/api_util.hpp"

namespace {

using namespace api_test;
using namespace testing_util;

TEST(ApiStatus, StatusStringIsTheEnumName) {
  const struct {
    culoss_status s;
    const char* name;
  } all[] = {
      {CULOSS_SUCCESS, "CULOSS_SUCCESS"},
      {CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_ERROR_INVALID_ARGUMENT"},
      {CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_ERROR_SHAPE_MISMATCH"},
      {CULOSS_ERROR_UNSUPPORTED_DTYPE, "CULOSS_ERROR_UNSUPPORTED_DTYPE"},
      {CULOSS_ERROR_UNSUPPORTED_DEVICE, "CULOSS_ERROR_UNSUPPORTED_DEVICE"},
      {CULOSS_ERROR_INVALID_TARGET, "CULOSS_ERROR_INVALID_TARGET"},
      {CULOSS_ERROR_OUT_OF_MEMORY, "CULOSS_ERROR_OUT_OF_MEMORY"},
      {CULOSS_ERROR_INSUFFICIENT_WORKSPACE, "CULOSS_ERROR_INSUFFICIENT_WORKSPACE"},
      {CULOSS_ERROR_CUDA, "CULOSS_ERROR_CUDA"},
      {CULOSS_ERROR_NOT_SUPPORTED, "CULOSS_ERROR_NOT_SUPPORTED"},
      {CULOSS_ERROR_INTERNAL, "CULOSS_ERROR_INTERNAL"},
  };
  std::set<std::string> seen;
  for (const auto& e : all) {
    const char* s = culoss_status_string(e.s);
    ASSERT_NE(nullptr, s) << e.name;
    EXPECT_STREQ(e.name, s);
    EXPECT_TRUE(seen.insert(s).second) << "duplicate status string " << s;
  }
  EXPECT_EQ(11u, seen.size());
  // The frozen values (docs/reference.md).
  EXPECT_EQ(0, CULOSS_SUCCESS);
  EXPECT_EQ(5, CULOSS_ERROR_INVALID_TARGET);
  EXPECT_EQ(10, CULOSS_ERROR_INTERNAL);
}

TEST(ApiStatus, StatusStringOfAnUnknownValue) {
  for (int v : {11, -1, 1000}) {
    const char* s = culoss_status_string(static_cast<culoss_status>(v));
    ASSERT_NE(nullptr, s) << v;
    EXPECT_STRNE("", s) << v;
    EXPECT_THAT(std::string(s), ::testing::HasSubstr("unknown")) << v;
    for (int k = 0; k <= 10; ++k)
      EXPECT_STRNE(culoss_status_string(static_cast<culoss_status>(k)), s) << v;
  }
}

TEST(ApiStatus, Version) {
  EXPECT_EQ(CULOSS_VERSION, culoss_version());
  EXPECT_EQ(CULOSS_VERSION_MAJOR * 10000 + CULOSS_VERSION_MINOR * 100 + CULOSS_VERSION_PATCH,
            culoss_version());
}

TEST(ApiStatus, LastErrorIsEmptyAfterASuccessAndNeverNull) {
  ASSERT_NE(nullptr, culoss_last_error());
  culoss_loss h = nullptr;
  ASSERT_NE(CULOSS_SUCCESS, culoss_loss_create(&h, static_cast<culoss_kind>(0)));
  ASSERT_NE(nullptr, culoss_last_error());
  EXPECT_STRNE("", culoss_last_error());
  ASSERT_OK(culoss_loss_create(&h, CULOSS_DICE));
  ASSERT_NE(nullptr, culoss_last_error());
  EXPECT_STREQ("", culoss_last_error());
  // Each kind of call clears it on success.
  ASSERT_NE(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_BATCH, 7));
  EXPECT_STRNE("", culoss_last_error());
  int64_t v = 0;
  EXPECT_OK(culoss_loss_get_int(h, CULOSS_PARAM_BATCH, &v));
  EXPECT_STREQ("", culoss_last_error());
  ASSERT_NE(CULOSS_SUCCESS, culoss_loss_set_float(h, CULOSS_PARAM_SMOOTH_NR, -1.0));
  EXPECT_OK(culoss_loss_destroy(h));
  EXPECT_STREQ("", culoss_last_error());
  ASSERT_NE(CULOSS_SUCCESS, culoss_loss_create(nullptr, CULOSS_DICE));
  EXPECT_OK(culoss_loss_destroy(nullptr));
  EXPECT_STREQ("", culoss_last_error());
}

TEST(ApiStatus, LastErrorIsPerThread) {
  // A fresh thread starts with "" (never NULL).
  std::string fresh = "<unset>";
  std::thread([&] {
    const char* e = culoss_last_error();
    fresh = e ? e : "<NULL>";
  }).join();
  EXPECT_EQ("", fresh);

  // Failure in this thread (A) ...
  culoss_loss h = nullptr;
  ASSERT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_loss_create(&h, static_cast<culoss_kind>(99)));
  const std::string mine = culoss_last_error();
  ASSERT_THAT(mine, ::testing::HasSubstr("99"));

  // ... does not show in thread B, and B's success does not clear A's message.
  std::string b_before = "<unset>", b_after_success = "<unset>", b_after_failure;
  std::thread([&] {
    b_before = culoss_last_error();
    culoss_loss d = nullptr;
    if (culoss_loss_create(&d, CULOSS_DICE) == CULOSS_SUCCESS) b_after_success = culoss_last_error();
    culoss_loss_destroy(d);
    culoss_loss_set_int(nullptr, CULOSS_PARAM_BATCH, 1);  // B fails in its own way
    b_after_failure = culoss_last_error();
  }).join();
  EXPECT_EQ("", b_before);
  EXPECT_EQ("", b_after_success);
  EXPECT_THAT(b_after_failure, ::testing::HasSubstr("NULL"));
  EXPECT_EQ(mine, std::string(culoss_last_error())) << "thread B changed thread A's message";

  // And A's later success does not clear B's in a thread that is still alive.
  std::string b_kept;
  std::thread t([&] {
    culoss_loss_create(nullptr, CULOSS_DICE);
    const std::string before = culoss_last_error();
    std::thread([] {
      culoss_loss d = nullptr;
      culoss_loss_create(&d, CULOSS_JACCARD);
      culoss_loss_destroy(d);
    }).join();
    b_kept = (before == culoss_last_error()) ? before : std::string("<changed>");
  });
  t.join();
  EXPECT_THAT(b_kept, ::testing::HasSubstr("out"));
}

// ---------------------------------------------------------------------------------------------
// empty tensors

TEST(ApiStatus, EmptyBatchGivesZeroLoss) {
  Loss dice(CULOSS_DICE);
  TestTensor out({}, f32());
  out.fill(kSentinel);
  // N = 0: data may be NULL for every empty tensor.
  TestTensor in({0, 3, 4}, f32()), tg({0, 4}, i64()), g({0, 3, 4}, f32());
  DLTensor* a = in.dl();
  a->data = nullptr;
  DLTensor* b = tg.dl();
  b->data = nullptr;
  DLTensor* c = g.dl();
  c->data = nullptr;
  ASSERT_OK(culoss_compute(dice, a, b, nullptr, out.dl(), c, 1.0, nullptr, 0, nullptr));
  EXPECT_EQ(0.0, out.get(0));
  size_t bytes = 0;
  EXPECT_OK(culoss_workspace_size(dice, a, b, &bytes));

  // The same with a dense target, a pixel weight and SUM.
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM));
  TestTensor dense({0, 3, 4}, f32()), pw({0, 4}, f32());
  out.fill(kSentinel);
  ASSERT_OK(culoss_compute(dice, in.dl(), dense.dl(), pw.dl(), out.dl(), g.dl(), 1.0, nullptr, 0,
                           nullptr));
  EXPECT_EQ(0.0, out.get(0));

  // NONE: an empty (N, C) output.
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  TestTensor none_out({0, 3}, f32());
  DLTensor* o = none_out.dl();
  o->data = nullptr;
  EXPECT_OK(culoss_compute(dice, in.dl(), tg.dl(), nullptr, o, g.dl(), 1.0, nullptr, 0, nullptr));
}

TEST(ApiStatus, EmptySpatialExtentGivesZeroLoss) {
  for (culoss_kind k : {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                        CULOSS_GENERALIZED_DICE}) {
    SCOPED_TRACE(k);
    Loss loss(k);
    TestTensor in({2, 3, 0}, f32()), tg({2, 0}, i64()), g({2, 3, 0}, f32()), out({}, f64());
    out.fill(kSentinel);
    ASSERT_OK(culoss_compute(loss, in.dl(), tg.dl(), nullptr, out.dl(), g.dl(), 1.0, nullptr, 0,
                             nullptr));
    EXPECT_EQ(0.0, out.get(0));
  }
}

// ---------------------------------------------------------------------------------------------
// threads and host memory

TEST(ApiStatus, OneDescriptorSharedByConcurrentComputes) {
  // culoss.h: one descriptor may be shared by concurrent culoss_compute calls.
  Loss dice(CULOSS_DICE);
  TestTensor input({4, 3, 64}, f32()), target({4, 64}, i64());
  fill_logits(input);
  for (int64_t i = 0; i < target.numel(); ++i) target.set(i, (i * 7) % 3);
  const DLTensor in = *input.dl(), tg = *target.dl();  // read-only views shared by the threads
  TestTensor ref_out({}, f64()), ref_grad({4, 3, 64}, f32());
  ASSERT_OK(culoss_compute(dice, &in, &tg, nullptr, ref_out.dl(), ref_grad.dl(), 1.0, nullptr, 0,
                           nullptr));
  constexpr int kThreads = 4, kIters = 25;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      TestTensor out({}, f64()), grad({4, 3, 64}, f32());
      for (int it = 0; it < kIters; ++it) {
        out.poison();
        grad.poison();
        const culoss_status s = culoss_compute(dice, &in, &tg, nullptr, out.dl(), grad.dl(), 1.0,
                                               nullptr, 0, nullptr);
        if (s != CULOSS_SUCCESS || std::memcmp(out.data(), ref_out.data(), 8) != 0 ||
            grad.values() != ref_grad.values())
          ++mismatches[t];
      }
    });
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(0, mismatches[t]) << "thread " << t;
}

TEST(ApiStatus, HostAllocationFailureIsOutOfMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer aborts on impossible allocations by default";
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "AddressSanitizer aborts on impossible allocations by default";
#endif
#endif
  // N * C = 2^40 (image, class) pairs over an empty spatial axis: no tensor holds an element,
  // but the per-(image, class) statistics need tens of terabytes, more than any host has. The
  // library allocates its own workspace (NULL) and must report the failure as a status.
  Loss dice(CULOSS_DICE);
  const int64_t n = int64_t(1) << 20, c = int64_t(1) << 20;  // 2^40 pairs: the largest accepted
  TestTensor in({n, c, 0}, f32()), tg({n, 0}, i64()), out({}, f32());
  out.fill(kSentinel);
  Untouched untouched;
  untouched.watch(out, "loss_out");
  size_t bytes = 0;
  ASSERT_OK(culoss_workspace_size(dice, in.dl(), tg.dl(), &bytes));
  EXPECT_GT(bytes, size_t(1) << 44);
  EXPECT_REFUSED(culoss_compute(dice, in.dl(), tg.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0,
                                nullptr),
                 CULOSS_ERROR_OUT_OF_MEMORY, "memory");
  untouched.check();
}

}  // namespace

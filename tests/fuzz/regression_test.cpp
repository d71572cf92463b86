// Readable reproducers of the library bugs the fuzz target found (the byte inputs are in
// regressions/, named alike). Each test states what the contract asks for; until the library is
// fixed these tests fail (some only under the sanitizers of CULOSS_SANITIZE, noted per test).
#include <culoss/culoss.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace {

DLTensor view(void* data, DLDataType dt, std::vector<int64_t>& shape) {
  DLTensor t{};
  t.data = data;
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = static_cast<int32_t>(shape.size());
  t.dtype = dt;
  t.shape = shape.empty() ? nullptr : shape.data();
  return t;
}

constexpr DLDataType kF32{kDLFloat, 32, 1}, kF64{kDLFloat, 64, 1}, kI64{kDLInt, 64, 1};

struct Loss {
  culoss_loss h = nullptr;
  explicit Loss(culoss_kind k) { culoss_loss_create(&h, k); }
  ~Loss() { culoss_loss_destroy(h); }
};

// An empty input (no element) whose extents multiply to more than the workspace arithmetic
// holds: the call must fail with a status (OUT_OF_MEMORY or a refusal of the shape), never
// carve a wrapped-around workspace and write past it.
void expect_refused_empty(culoss_kind kind, std::vector<int64_t> in_shape,
                          std::vector<int64_t> tg_shape) {
  Loss loss(kind);
  DLTensor in = view(nullptr, kF32, in_shape), tg = view(nullptr, kI64, tg_shape);
  std::vector<int64_t> scalar;
  double out = 1234.5;
  DLTensor o = view(&out, kF64, scalar);
  size_t bytes = 0;
  const culoss_status ws = culoss_workspace_size(loss.h, &in, &tg, &bytes);
  if (ws == CULOSS_SUCCESS) {
    EXPECT_GE(bytes, size_t(1) << 40) << "a wrapped-around workspace size";
  }
  const culoss_status s =
      culoss_compute(loss.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr);
  EXPECT_NE(CULOSS_SUCCESS, s) << "an empty input of " << in_shape[0] << " x " << in_shape[1]
                               << " pairs cannot have a workspace";
  EXPECT_EQ(1234.5, out);
}

// regressions/workspace_size_wraps_for_2pow61_classes. Fails today with a crash: Carver::take
// computes size_t(2^61) * sizeof(double) == 0, so the statistics and scratch buffers get no
// bytes, and statistics()/finalize write 2^61 doubles past the workspace.
TEST(FuzzRegression, WorkspaceSizeWrapsFor2Pow61Classes) {
  expect_refused_empty(CULOSS_CROSS_ENTROPY, {1, int64_t(1) << 61, 0}, {1, 0});
}

// regressions/statistics_size_overflows_int64. N * C * stat_width = 2^62 * 3 overflows int64
// in carve() (UBSan: signed integer overflow); the wrapped size can again be small.
TEST(FuzzRegression, StatisticsSizeOverflowsInt64) {
  expect_refused_empty(CULOSS_DICE, {int64_t(1) << 31, int64_t(1) << 31, 0}, {int64_t(1) << 31, 0});
}

// regressions/pixel_count_overflows_for_empty_input. validate_call multiplies the extents
// after the class axis (inner = 2^40 * 2^40) although N = 0 makes the tensor empty: signed
// overflow (fails under UBSan only). Either a refusal or a zero loss is fine.
TEST(FuzzRegression, PixelCountOverflowsForEmptyInput) {
  Loss dice(CULOSS_DICE);
  // SIGMOID: a softmax over the one class would be refused before the target is looked at.
  ASSERT_EQ(CULOSS_SUCCESS,
            culoss_loss_set_int(dice.h, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  std::vector<int64_t> in_shape = {0, 1, int64_t(1) << 40, int64_t(1) << 40};
  std::vector<int64_t> tg_shape = {0, int64_t(1) << 40, int64_t(1) << 40}, scalar;
  DLTensor in = view(nullptr, kF32, in_shape), tg = view(nullptr, kI64, tg_shape);
  double out = 1234.5;
  DLTensor o = view(&out, kF64, scalar);
  const culoss_status s =
      culoss_compute(dice.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr);
  if (s == CULOSS_SUCCESS) {
    EXPECT_EQ(0.0, out);
  }
}

// regressions/strides_check_overflows_for_empty_input. With explicit compact strides, the
// validator multiplied the extents (2^40 x 2^40) of an empty tensor to check them: signed
// overflow (UBSan; fixed, empty tensors skip the check). Either a refusal or a zero loss is fine.
TEST(FuzzRegression, StridesCheckOverflowsForEmptyInput) {
  // culoss_workspace_size validates the tensors like culoss_compute but allocates nothing (the
  // statistics of C = 2^40 classes would be 8 TiB: OUT_OF_MEMORY, or an ASan abort).
  Loss dice(CULOSS_DICE);
  std::vector<int64_t> in_shape = {0, int64_t(1) << 40, int64_t(1) << 40};
  std::vector<int64_t> strides = {int64_t(1) << 62, int64_t(1) << 40, 1};
  std::vector<int64_t> tg_shape = {0, int64_t(1) << 40};
  DLTensor in = view(nullptr, kF32, in_shape), tg = view(nullptr, kI64, tg_shape);
  in.strides = strides.data();
  size_t bytes = 0;
  const culoss_status s = culoss_workspace_size(dice.h, &in, &tg, &bytes);
  EXPECT_TRUE(s == CULOSS_SUCCESS || s == CULOSS_ERROR_NOT_SUPPORTED ||
              s == CULOSS_ERROR_INVALID_ARGUMENT)
      << culoss_status_string(s) << ": " << culoss_last_error();
}

// regressions/device_type_outside_the_enum. A C caller (or a newer DLPack) may store any int
// in device_type; the validator loads it as a DLDeviceType, which is undefined behaviour in C++
// for 255 (UBSan: invalid enum load; fails under the sanitizers only).
TEST(FuzzRegression, DeviceTypeOutsideTheEnum) {
  Loss dice(CULOSS_DICE);
  std::vector<float> x(24, 0.5f);
  std::vector<int64_t> labels(8, 1);
  std::vector<int64_t> in_shape = {2, 3, 4}, tg_shape = {2, 4}, scalar;
  DLTensor in = view(x.data(), kF32, in_shape), tg = view(labels.data(), kI64, tg_shape);
  const int bogus = 255;
  std::memcpy(&in.device.device_type, &bogus, sizeof bogus);
  double out = 1234.5;
  DLTensor o = view(&out, kF64, scalar);
  EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE,
            culoss_compute(dice.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr));
  EXPECT_NE(std::string::npos, std::string(culoss_last_error()).find("255"));
}

// regressions/null_data_plus_byte_offset. An empty tensor may have NULL data; with a non-zero
// byte_offset the validator computes NULL + offset, pointer arithmetic on NULL (clang UBSan:
// "applying non-zero offset to null pointer"; fails under clang's sanitizers only).
TEST(FuzzRegression, NullDataPlusByteOffset) {
  Loss dice(CULOSS_DICE);
  std::vector<int64_t> in_shape = {0, 3, 4}, tg_shape = {0, 4}, scalar;
  DLTensor in = view(nullptr, kF32, in_shape), tg = view(nullptr, kI64, tg_shape);
  in.byte_offset = 8;
  double out = 1234.5;
  DLTensor o = view(&out, kF64, scalar);
  const culoss_status s =
      culoss_compute(dice.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr);
  if (s == CULOSS_SUCCESS) {
    EXPECT_EQ(0.0, out);
  }
}

// regressions/null_data_misaligned_byte_offset. The same with a byte_offset of 3 on an int64
// target: data + byte_offset is misaligned and must be refused like any misaligned tensor (a
// first fix kept NULL data NULL and then saw an aligned NULL; the fuzzer's oracle caught it).
TEST(FuzzRegression, NullDataMisalignedByteOffsetIsRefused) {
  Loss dice(CULOSS_DICE);
  std::vector<int64_t> in_shape = {5, 4, 0}, tg_shape = {5, 0}, scalar;
  DLTensor in = view(nullptr, kF32, in_shape), tg = view(nullptr, kI64, tg_shape);
  tg.byte_offset = 3;
  double out = 1234.5;
  DLTensor o = view(&out, kF64, scalar);
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_compute(dice.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr));
  EXPECT_NE(std::string::npos, std::string(culoss_last_error()).find("target data + byte_offset"))
      << culoss_last_error();
  EXPECT_EQ(1234.5, out);
}

// regressions/int64_max_label_message. With CHECK_TARGETS=1 an int64 label of INT64_MAX is
// refused, but the message goes through a double (2^63) converted back to long long, which is
// undefined (UBSan: float-cast-overflow); on x86 it prints INT64_MIN instead of the label.
TEST(FuzzRegression, Int64MaxLabelMessage) {
  Loss ce(CULOSS_CROSS_ENTROPY);
  std::vector<float> x(24, 0.5f);
  std::vector<int64_t> labels(8, 1);
  labels[5] = INT64_MAX;
  std::vector<int64_t> in_shape = {2, 3, 4}, tg_shape = {2, 4}, scalar;
  DLTensor in = view(x.data(), kF32, in_shape), tg = view(labels.data(), kI64, tg_shape);
  double out = 1234.5;
  DLTensor o = view(&out, kF64, scalar);
  EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET,
            culoss_compute(ce.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr));
  const std::string e = culoss_last_error();
  EXPECT_NE(std::string::npos, e.find("target[5]")) << e;
  EXPECT_EQ(std::string::npos, e.find("-9223372036854775808"))
      << "the label printed wrongly: " << e;
}

// regressions/lovasz_empty_input_hangs. The CPU Lovász collected each segment's items with a
// loop over all N images even when there is no pixel, and counted each problem's present classes
// in O(C) per segment: an empty input of N = C = 2^20 ran 2^40 empty iterations (hours).
// regressions/lovasz_empty_input_huge_batch_hangs: its per-pixel loops ran over N = 2^40 images
// of no pixel. The call must return promptly (loss 0: no problem has a counted pixel). Run in a
// child process with a 20-second alarm.
void lovasz_empty_returns_promptly(int64_t n, int64_t c) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto body = [n, c]() {
    alarm(20);
    Loss lovasz(CULOSS_LOVASZ_SOFTMAX);
    std::vector<int64_t> in_shape = {n, c, 0};
    std::vector<int64_t> tg_shape = {n, 0}, scalar;
    DLTensor in = view(nullptr, kF32, in_shape), tg = view(nullptr, kI64, tg_shape);
    double out = 1234.5;
    DLTensor o = view(&out, kF64, scalar);
    const culoss_status s =
        culoss_compute(lovasz.h, &in, &tg, nullptr, &o, nullptr, 1.0, nullptr, 0, nullptr);
    // A refusal (N x C beyond what culoss supports) is prompt too.
    _exit(s != CULOSS_SUCCESS || out == 0.0 ? 0 : 1);
  };
  EXPECT_EXIT(body(), ::testing::ExitedWithCode(0), "");
}

TEST(FuzzRegression, LovaszEmptyInputReturnsPromptly) {
  lovasz_empty_returns_promptly(int64_t(1) << 20, int64_t(1) << 20);
}

TEST(FuzzRegression, LovaszEmptyInputOfManyImagesReturnsPromptly) {
  lovasz_empty_returns_promptly(int64_t(1) << 40, 16);
}

// regressions/zero_smoothing_saturated_logits_nan_gradient. Region losses with SIGMOID, zero
// smoothing (SMOOTH_NR = SMOOTH_DR = 0), an empty target and logits of -400: p = 1.9e-174, the
// denominator SP ~ 1e-173 is not 0, but num / (den * den) underflows to 0 / 0 = NaN on the CPU
// (double). The loss is the constant 1, so every gradient element must be 0 (docs/reference.md:
// finite inputs give finite outputs; saturated logits and empty masks are named there).
TEST(FuzzRegression, ZeroSmoothingSaturatedLogitsGiveAZeroGradient) {
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                           CULOSS_GENERALIZED_DICE}) {
    for (DLDataType dt : {kF64, kF32}) {
      SCOPED_TRACE(testing::Message() << "kind " << kind << ", float" << int(dt.bits));
      Loss loss(kind);
      ASSERT_EQ(CULOSS_SUCCESS,
                culoss_loss_set_int(loss.h, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_float(loss.h, CULOSS_PARAM_SMOOTH_NR, 0.0));
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_float(loss.h, CULOSS_PARAM_SMOOTH_DR, 0.0));
      std::vector<double> x64(6, -400.0), t(6, 0.0), g64(6, 7.0);
      std::vector<float> x32(6, -400.0f), g32(6, 7.0f);
      std::vector<int64_t> shape = {2, 1, 3}, scalar;
      const bool f64 = dt.bits == 64;
      DLTensor in = view(f64 ? static_cast<void*>(x64.data()) : x32.data(), dt, shape);
      DLTensor tg = view(t.data(), kF64, shape);
      DLTensor grad = view(f64 ? static_cast<void*>(g64.data()) : g32.data(), dt, shape);
      double out = 1234.5;
      DLTensor o = view(&out, kF64, scalar);
      ASSERT_EQ(CULOSS_SUCCESS,
                culoss_compute(loss.h, &in, &tg, nullptr, &o, &grad, 1.0, nullptr, 0, nullptr))
          << culoss_last_error();
      EXPECT_TRUE(std::isfinite(out)) << out;
      for (int i = 0; i < 6; ++i) {
        const double gi = f64 ? g64[i] : g32[i];
        EXPECT_EQ(0.0, gi) << "grad[" << i << "]";
      }
    }
  }
}

}  // namespace

namespace {

// Calls `kind` (with `reduction`) through all three compute entry points with a caller
// workspace of exactly culoss_workspace_size() bytes; none may answer INSUFFICIENT_WORKSPACE.
void expect_workspace_size_covers_every_call(culoss_kind kind, int reduction,
                                             std::vector<int64_t> in_shape) {
  Loss loss(kind);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(loss.h, CULOSS_PARAM_REDUCTION, reduction));
  if (kind == CULOSS_FOCAL) {  // sigmoid by default, which needs a binary mask for index targets
    ASSERT_EQ(CULOSS_SUCCESS,
              culoss_loss_set_int(loss.h, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
  }
  int64_t numel = 1;
  for (int64_t e : in_shape) numel *= e;
  std::vector<int64_t> tg_shape = in_shape;
  tg_shape.erase(tg_shape.begin() + 1);  // class indices
  std::vector<float> x(static_cast<size_t>(numel) + 1, 0.25f);
  std::vector<int64_t> labels(static_cast<size_t>(numel) + 1, 0);
  DLTensor in = view(x.data(), kF32, in_shape), tg = view(labels.data(), kI64, tg_shape);
  size_t bytes = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss.h, &in, &tg, &bytes)) << culoss_last_error();
  int64_t count = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_stats_size(loss.h, &in, &tg, &count)) << culoss_last_error();
  std::vector<unsigned char> workspace(bytes + 1);
  std::vector<double> stats(static_cast<size_t>(count) + 1, 0.0), out(4096, 0.0);
  std::vector<int64_t> stats_shape = {count};
  DLTensor st = view(stats.data(), kF64, stats_shape);
  EXPECT_EQ(CULOSS_SUCCESS,
            culoss_compute_stats(loss.h, &in, &tg, nullptr, &st, workspace.data(), bytes, nullptr))
      << culoss_last_error();
  // The output: a scalar, or for REDUCTION=NONE the kind's shape, one of these (the others are
  // refused as SHAPE_MISMATCH before the workspace is looked at).
  std::vector<std::vector<int64_t>> out_shapes = {{}};
  if (reduction == CULOSS_REDUCTION_NONE)
    out_shapes = {{in_shape[0]}, {in_shape[0], in_shape[1]}, tg_shape};
  for (int from_stats = 0; from_stats < 2; ++from_stats) {
    int accepted = 0;
    for (std::vector<int64_t>& out_shape : out_shapes) {
      DLTensor o = view(out.data(), kF64, out_shape);
      const culoss_status s =
          from_stats ? culoss_compute_from_stats(loss.h, &in, &tg, nullptr, &st, &o, nullptr, 1.0,
                                                 workspace.data(), bytes, nullptr)
                     : culoss_compute(loss.h, &in, &tg, nullptr, &o, nullptr, 1.0, workspace.data(),
                                      bytes, nullptr);
      if (s == CULOSS_ERROR_SHAPE_MISMATCH) continue;
      EXPECT_EQ(CULOSS_SUCCESS, s)
          << (from_stats ? "from_stats: " : "compute: ") << culoss_last_error();
      ++accepted;
    }
    EXPECT_EQ(1, accepted) << "no output shape (or several) accepted";
  }
}

}  // namespace

// Found by the fuzzer (CI, seed 11): cross-entropy with REDUCTION=NONE on an empty batch needed
// 8 bytes more workspace in culoss_compute_stats than culoss_workspace_size reported (the size
// covered culoss_compute and culoss_compute_from_stats only). Checked here for every kind that
// the statistics API takes, every reduction, an empty and a non-empty batch.
TEST(FuzzRegression, WorkspaceSizeCoversEveryComputeCall) {
  const culoss_kind kinds[] = {CULOSS_DICE,          CULOSS_JACCARD,          CULOSS_TVERSKY,
                               CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE, CULOSS_CROSS_ENTROPY,
                               CULOSS_FOCAL,         CULOSS_MARGINAL_CE};
  for (culoss_kind kind : kinds)
    for (int reduction : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE})
      for (const std::vector<int64_t>& shape :
           {std::vector<int64_t>{0, 2, 2, 1}, std::vector<int64_t>{2, 3, 4, 5}}) {
        SCOPED_TRACE("kind " + std::to_string(kind) + " reduction " + std::to_string(reduction) +
                     " N " + std::to_string(shape[0]));
        expect_workspace_size_covers_every_call(kind, reduction, shape);
      }
}

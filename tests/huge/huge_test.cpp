// More than 2^31 elements on the CPU backend (docs/reference.md: 64-bit indexing throughout),
// against closed forms. Opt-in: each test needs about 6.5 GB of host memory and a few minutes, so
// it runs only with CULOSS_HUGE_TESTS=1 (ctest label `huge`):
//
//   CULOSS_HUGE_TESTS=1 ctest --test-dir build-test -L huge --output-on-failure
//
// The tensors are (N, 1, P) with N * P > 2^31 and a constant logit per image, exactly
// representable in float16, so every per-image sum is a count times a known probability. The
// gradient is written over the input (in place), which saves a tensor of memory and checks the
// in-place path at this size.
#include <culoss/culoss.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"

namespace {

using testing_util::f16;
using testing_util::float_to_half_bits;
using testing_util::half_bits_to_float;
using testing_util::u8;

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CULOSS_HUGE_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CULOSS_HUGE_SANITIZED 1
#endif

bool enabled(std::string* why) {
#ifdef CULOSS_HUGE_SANITIZED
  *why = "sanitizer builds skip the huge tests (shadow memory and time)";
  return false;
#endif
  const char* e = std::getenv("CULOSS_HUGE_TESTS");
  if (!e || std::string(e) != "1") {
    *why = "set CULOSS_HUGE_TESTS=1 to run (about 6.5 GB of memory, minutes)";
    return false;
  }
  return true;
}

#define SKIP_UNLESS_ENABLED()               \
  do {                                      \
    std::string why_;                       \
    if (!enabled(&why_)) GTEST_SKIP() << why_; \
  } while (0)

constexpr int64_t kN = 2;
constexpr int64_t kP = (int64_t(1) << 30) + (int64_t(1) << 19) + 3;  // N * P = 2^31 + 2^20 + 6
const double kLogit[kN] = {0.5, -1.25};  // exact in float16

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// A buffer of `n` elements that is not zero-filled by the allocator (the tests write every byte).
template <class T>
struct Buffer {
  std::unique_ptr<T[]> p;
  explicit Buffer(int64_t n) : p(new (std::nothrow) T[static_cast<size_t>(n)]) {}
  T* get() const { return p.get(); }
};

DLTensor view(void* data, DLDataType dt, int32_t ndim, int64_t* shape) {
  DLTensor t{};
  t.data = data;
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = ndim;
  t.dtype = dt;
  t.shape = shape;
  return t;
}

// Float16 bit patterns within one unit in the last place of an expected value (accumulation
// order may move a value across a rounding boundary). The conversion is done once per value:
// the test converter is slow on purpose (obviously right).
struct NearHalf {
  int want;
  explicit NearHalf(double v) : want(float_to_half_bits(static_cast<float>(v))) {}
  bool operator()(uint16_t got) const {
    const int d = static_cast<int>(got) - want;
    return d >= -1 && d <= 1;
  }
};

TEST(Huge, SigmoidDiceDenseMaskFloat16MoreThan2Pow31Elements) {
  SKIP_UNLESS_ENABLED();
  const int64_t total = kN * kP;
  ASSERT_GT(total, int64_t(1) << 31);
  Buffer<uint16_t> x(total);
  Buffer<uint8_t> t(total);
  ASSERT_TRUE(x.get() && t.get()) << "not enough host memory";
  // Image n: logit kLogit[n] everywhere; target 1 where q % (n + 2) == 0.
  double count[kN];
  for (int64_t n = 0; n < kN; ++n) {
    const uint16_t h = float_to_half_bits(static_cast<float>(kLogit[n]));
    uint16_t* xr = x.get() + n * kP;
    uint8_t* tr = t.get() + n * kP;
    for (int64_t q = 0; q < kP; ++q) {
      xr[q] = h;
      tr[q] = q % (n + 2) == 0 ? 1 : 0;
    }
    count[n] = static_cast<double>((kP + n + 1) / (n + 2));
  }
  culoss_loss dice = nullptr;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_create(&dice, CULOSS_DICE));
  ASSERT_EQ(CULOSS_SUCCESS,
            culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  int64_t shape[3] = {kN, 1, kP};
  DLTensor in = view(x.get(), f16(), 3, shape), tg = view(t.get(), u8(), 3, shape);
  DLTensor grad = in;  // in place
  double loss = -1;
  int64_t no_shape[1] = {1};
  DLTensor out = view(&loss, testing_util::f64(), 1, no_shape);
  const double scale = 1e9;  // the sums are ~1e9: keep the float16 gradient normal
  ASSERT_EQ(CULOSS_SUCCESS,
            culoss_compute(dice, &in, &tg, nullptr, &out, &grad, scale, nullptr, 0, nullptr))
      << culoss_last_error();
  culoss_loss_destroy(dice);

  // Closed form (smoothing 1e-5 both): per image p constant, I = p ST, SP = p P.
  const double s = 1e-5;
  double expected = 0, a[kN], b[kN], dp[kN];
  for (int64_t n = 0; n < kN; ++n) {
    const double p = sigmoid(kLogit[n]), ST = count[n], I = p * ST, SP = p * kP;
    const double num = 2 * I + s, den = SP + ST + s;
    expected += (1 - num / den) / kN;
    a[n] = -2 / den;          // d loss_n / d I
    b[n] = num / (den * den);  // d loss_n / d SP
    dp[n] = p * (1 - p);
  }
  EXPECT_NEAR(expected, loss, 1e-6 * std::fabs(expected)) << "loss over 2^31 + 2^20 elements";

  // Every gradient element: scale / N * (a t + b) * p (1 - p), two values per image.
  int64_t bad = 0, first_bad = -1;
  for (int64_t n = 0; n < kN; ++n) {
    const NearHalf g1(scale / kN * (a[n] + b[n]) * dp[n]), g0(scale / kN * b[n] * dp[n]);
    const uint16_t* gr = x.get() + n * kP;
    const uint8_t* tr = t.get() + n * kP;
    for (int64_t q = 0; q < kP; ++q)
      if (!(tr[q] ? g1(gr[q]) : g0(gr[q]))) {
        if (first_bad < 0) first_bad = n * kP + q;
        ++bad;
      }
  }
  EXPECT_EQ(0, bad) << "first bad gradient element " << first_bad << " = "
                    << (first_bad >= 0 ? half_bits_to_float(x.get()[first_bad]) : 0.0f);
}

TEST(Huge, BinaryCrossEntropyIndexMaskMoreThan2Pow31Pixels) {
  // Class-index targets (a uint8 binary mask with IGNORE_INDEX), N * P > 2^31 pixels.
  SKIP_UNLESS_ENABLED();
  const int64_t total = kN * kP;
  Buffer<uint16_t> x(total);
  Buffer<uint8_t> t(total);
  ASSERT_TRUE(x.get() && t.get()) << "not enough host memory";
  // Labels: 255 (ignored) where q % 7 == 3, else 1 where q % (n + 2) == 0, else 0.
  double pos[kN] = {0, 0}, neg[kN] = {0, 0};
  for (int64_t n = 0; n < kN; ++n) {
    const uint16_t h = float_to_half_bits(static_cast<float>(kLogit[n]));
    uint16_t* xr = x.get() + n * kP;
    uint8_t* tr = t.get() + n * kP;
    for (int64_t q = 0; q < kP; ++q) {
      xr[q] = h;
      const uint8_t label = q % 7 == 3 ? 255 : (q % (n + 2) == 0 ? 1 : 0);
      tr[q] = label;
      if (label == 1) pos[n] += 1;
      if (label == 0) neg[n] += 1;
    }
  }
  culoss_loss bce = nullptr;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_create(&bce, CULOSS_BCE));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(bce, CULOSS_PARAM_IGNORE_INDEX, 255));
  int64_t shape[3] = {kN, 1, kP}, pixels[2] = {kN, kP};
  DLTensor in = view(x.get(), f16(), 3, shape), tg = view(t.get(), u8(), 2, pixels);
  DLTensor grad = in;
  double loss = -1;
  DLTensor out = view(&loss, testing_util::f64(), 0, nullptr);
  const double scale = 1e9;  // the mean divides by ~2^31: keep float16 gradients normal
  ASSERT_EQ(CULOSS_SUCCESS,
            culoss_compute(bce, &in, &tg, nullptr, &out, &grad, scale, nullptr, 0, nullptr))
      << culoss_last_error();
  culoss_loss_destroy(bce);

  // MEAN over the counted pixels: M = Σ (pos + neg).
  const double M = pos[0] + neg[0] + pos[1] + neg[1];
  double expected = 0;
  for (int64_t n = 0; n < kN; ++n) {
    const double p = sigmoid(kLogit[n]);
    expected += -(pos[n] * std::log(p) + neg[n] * std::log1p(-p)) / M;
  }
  EXPECT_NEAR(expected, loss, 1e-6 * std::fabs(expected));

  int64_t bad = 0, first_bad = -1;
  for (int64_t n = 0; n < kN; ++n) {
    const double p = sigmoid(kLogit[n]);
    const NearHalf g1(scale * (p - 1) / M), g0(scale * p / M);
    const uint16_t* gr = x.get() + n * kP;
    const uint8_t* tr = t.get() + n * kP;
    for (int64_t q = 0; q < kP; ++q) {
      const bool ok = tr[q] == 255 ? (gr[q] & 0x7fff) == 0 : (tr[q] ? g1(gr[q]) : g0(gr[q]));
      if (!ok) {
        if (first_bad < 0) first_bad = n * kP + q;
        ++bad;
      }
    }
  }
  EXPECT_EQ(0, bad) << "first bad gradient element " << first_bad;
}

}  // namespace

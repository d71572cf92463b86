// Comparisons shared by the CUDA tests (CUDA backend against the CPU backend): element-wise
// closeness with a tolerance in relative / absolute / ulp terms, bitwise equality, "still
// poisoned" checks, and the tolerances of a comparison for given input / output dtypes.
//
// Host-only (no CUDA headers), so a scratch program can use it too.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <string>

#include "common/test_tensor.hpp"

namespace testing_util {

struct Fmt {
  int mant;  // explicit mantissa bits
  int emin;  // exponent of the smallest normal
};
inline Fmt fmt_of(DLDataType d) {
  if (d.code == kDLBfloat) return {7, -126};
  if (d.bits == 16) return {10, -14};
  if (d.bits == 32) return {23, -126};
  return {52, -1022};
}
inline double ulp(Fmt f, double x) {
  x = std::fabs(x);
  int e = (x > 0.0 && std::isfinite(x)) ? std::ilogb(x) : f.emin;
  e = std::max(e, f.emin);
  return std::ldexp(1.0, e - f.mant);
}

struct Tol {
  double rtol = 0.0;       // of |ref|
  double atol = 0.0;       // absolute
  double atol_frac = 0.0;  // of max |ref| over the tensor (cancellation in softmax gradients)
  double ulps = 0.0;       // ulps of `fmt` at |ref|
  Fmt fmt{52, -1022};
};

inline ::testing::AssertionResult close(const TestTensor& ref, const TestTensor& got,
                                        const Tol& tol, const char* what) {
  if (ref.numel() != got.numel())
    return ::testing::AssertionFailure() << what << ": " << got.numel() << " elements, expected " << ref.numel();
  double maxabs = 0.0;
  for (int64_t i = 0; i < ref.numel(); ++i)
    if (std::isfinite(ref.get(i))) maxabs = std::max(maxabs, std::fabs(ref.get(i)));
  int64_t bad = 0;
  double worst = 0.0;
  std::ostringstream os;
  os << std::setprecision(17);
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = ref.get(i), g = got.get(i);
    const double lim = tol.rtol * std::fabs(r) + tol.atol + tol.atol_frac * maxabs + tol.ulps * ulp(tol.fmt, r);
    bool ok;
    if (std::isnan(r) || std::isnan(g)) ok = false;
    else if (std::isinf(r) || std::isinf(g)) ok = r == g;
    else ok = std::fabs(g - r) <= lim;
    if (!ok) {
      if (bad < 8) os << "\n  [" << i << "] cpu " << r << "  cuda " << g << "  |diff| " << std::fabs(g - r) << " > " << lim;
      if (std::isfinite(r) && std::isfinite(g) && lim > 0) worst = std::max(worst, std::fabs(g - r) / lim);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << ref.numel()
                                       << " elements differ (max |cpu| " << maxabs << ", worst "
                                       << worst << "x the tolerance)" << os.str();
}

inline ::testing::AssertionResult same_bits(const TestTensor& a, const TestTensor& b, const char* what) {
  if (a.numel() != b.numel() || a.elem_size() != b.elem_size())
    return ::testing::AssertionFailure() << what << ": different sizes";
  const size_t es = static_cast<size_t>(a.elem_size());
  int64_t bad = 0;
  std::ostringstream os;
  os << std::setprecision(17);
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (std::memcmp(a.bytes.data() + static_cast<size_t>(i) * es, b.bytes.data() + static_cast<size_t>(i) * es, es) != 0) {
      if (bad < 8) os << "\n  [" << i << "] " << a.get(i) << " vs " << b.get(i);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << a.numel() << " elements differ in their bits" << os.str();
}

// True when every byte still has the poison pattern (nothing was written).
inline bool still_poisoned(const TestTensor& t) {
  const size_t n = static_cast<size_t>(t.numel() * t.elem_size());
  for (size_t i = 0; i < n; ++i)
    if (t.bytes[i] != 0xff) return false;
  return true;
}

// What one culoss_compute call returned and wrote.
struct RunResult {
  culoss_status status = CULOSS_ERROR_INTERNAL;
  std::string error;
  TestTensor loss, grad;
  bool guards_ok = true;
  bool host_loss_ready = true;  // a kDLCPU loss_out held its final value when the call returned
  size_t workspace_bytes = 0;
};

inline bool is_half(DLDataType d) { return d.bits == 16; }

// Loss values of a call with input dtype `in`, written as `loss_dtype`.
inline Tol value_tol(DLDataType in, DLDataType loss_dtype) {
  Tol t;
  t.fmt = fmt_of(loss_dtype);
  if (in.code == kDLFloat && in.bits == 64) {
    t.rtol = 1e-9;
    t.atol = 1e-12;
  } else if (in.code == kDLFloat && in.bits == 32) {
    t.rtol = 1e-5;
    t.atol = 2e-6;
  } else {
    t.rtol = 2e-2;
    t.atol = 1e-3;
  }
  t.ulps = 2;
  return t;
}

// Gradients of a call with input dtype `in`, written as `g`.
inline Tol grad_tol(DLDataType in, DLDataType g) {
  Tol t;
  t.fmt = fmt_of(g);
  const bool in64 = in.code == kDLFloat && in.bits == 64;
  const bool in32 = in.code == kDLFloat && in.bits == 32;
  if (in64) {
    t.rtol = 1e-9;
    t.atol_frac = 1e-10;
    t.ulps = g.bits == 64 ? 0 : 2;
  } else if (in32) {
    t.rtol = 2e-5;
    t.atol_frac = 2e-6;
    t.ulps = 4;
  } else {
    t.rtol = 1e-4;
    t.atol_frac = 1e-5;
    t.ulps = is_half(g) ? 3 : 4;
  }
  return t;
}

}  // namespace testing_util

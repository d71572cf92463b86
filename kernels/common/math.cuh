// Scalar math for float and double, the same on host and device, and the activations.
#pragma once

#include <cmath>

#include "kernels/common/macros.cuh"

namespace culoss {

CULOSS_HD float exp_r(float x) { return expf(x); }
CULOSS_HD double exp_r(double x) { return exp(x); }
CULOSS_HD float log_r(float x) { return logf(x); }
CULOSS_HD double log_r(double x) { return log(x); }
CULOSS_HD float log1p_r(float x) { return log1pf(x); }
CULOSS_HD double log1p_r(double x) { return log1p(x); }
CULOSS_HD float pow_r(float x, float y) { return powf(x, y); }
CULOSS_HD double pow_r(double x, double y) { return pow(x, y); }

template <class R>
CULOSS_HD R max_r(R a, R b) {
  return a > b ? a : b;
}

// Logistic function without overflow for any finite x.
template <class R>
CULOSS_HD R sigmoid(R x) {
  if (x >= R(0)) return R(1) / (R(1) + exp_r(-x));
  const R e = exp_r(x);
  return e / (R(1) + e);
}

// log(sigmoid(x)) without overflow or cancellation, for any finite x.
template <class R>
CULOSS_HD R log_sigmoid(R x) {
  return x < R(0) ? x - log1p_r(exp_r(x)) : -log1p_r(exp_r(-x));
}

// A per-(image, class) coefficient, computed in double by finalize, narrowed to the compute
// type of the element pass. For float, magnitudes above 1e30 are clamped: such coefficients
// arise only from denominators near zero (e.g. SMOOTH_DR = 0 with a vanishing softmax), where
// they multiply probabilities far below 1e-20; a float inf would make the softmax chain rule's
// 0 * inf a NaN (the double CPU backend keeps the exact value). NaN passes through.
template <class R>
CULOSS_HD R narrow_coef(double c) {
  if (sizeof(R) >= sizeof(double)) return static_cast<R>(c);
  const double kMax = 1e30;
  return static_cast<R>(c > kMax ? kMax : (c < -kMax ? -kMax : c));
}

}  // namespace culoss

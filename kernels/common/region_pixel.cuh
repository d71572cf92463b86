// The two element passes of a region loss, one pixel at a time, shared by both backends:
//   statistics: activation, then each class's (I, SP, ST) terms handed to a sink;
//   gradient:   dℓ/dp from the finalize coefficients, through the activation, to dℓ/dx.
// A pixel's classes are handled by one thread, so writing the gradient over the input in place
// is safe: every logit of the pixel is read before (or exactly where) it is overwritten.
#pragma once

#include "kernels/common/layout.cuh"
#include "kernels/common/region_math.cuh"

namespace culoss {

// Per-call element arguments; plain data so kernels take them by value.
struct RegionElementArgs {
  Layout L;
  TargetView target;
  const float* pixel_weight;  // NULL: all 1
  int activation;
  bool squared;
};

#if defined(__CUDACC__)
#pragma nv_exec_check_disable  // the sink is a device lambda when called from a kernel
#endif
// Calls sink(c, terms[3]) for every class c of pixel q of image n, in class order. With
// valid = false (a padding lane on the GPU) the terms are zeros but the sink is still called
// C times, so warp-collective sinks stay converged.
template <class R, class T, class Sink>
CULOSS_HD void region_pixel_stats(const RegionElementArgs& a, const T* x, int64_t n, int64_t q,
                                  bool valid, Sink&& sink) {
  const int64_t C = a.L.C;
  R terms[kRegionStats] = {R(0), R(0), R(0)};
  if (!valid) {
    for (int64_t c = 0; c < C; ++c) sink(c, terms);
    return;
  }
  const int64_t base = a.L.base(n, q), stride = a.L.class_stride();
  const PixelActivation<R> act = pixel_activation<R>(a.activation, x, base, stride, C);
  const PixelTarget<R> px = read_pixel<R>(a.target, a.pixel_weight, C, n * a.L.P + q);
  for (int64_t c = 0; c < C; ++c) {
    const int64_t e = base + c * stride;
    const R p = activate(a.activation, act, to_real<R>(x[e]));
    const R t = target_value(a.target, px, c, e);
    region_element_stats(p, t, px.v, a.squared, terms);
    sink(c, terms);
  }
}

// Writes dℓ/dx of every class of pixel q of image n into `grad` (dtype G). coef_a/coef_b are the
// finalize coefficients of this pixel's image group, C entries each, already scaled.
template <class R, class T, class G>
CULOSS_HD void region_pixel_grad(const RegionElementArgs& a, const T* x, G* grad,
                                 const double* coef_a, const double* coef_b, int64_t n, int64_t q) {
  const int64_t C = a.L.C;
  const int64_t base = a.L.base(n, q), stride = a.L.class_stride();
  const PixelTarget<R> px = read_pixel<R>(a.target, a.pixel_weight, C, n * a.L.P + q);
  if (px.v == R(0)) {  // ignored or zero-weight pixel: no gradient
    for (int64_t c = 0; c < C; ++c) grad[base + c * stride] = StoreAs<G>::from(R(0));
    return;
  }
  const PixelActivation<R> act = pixel_activation<R>(a.activation, x, base, stride, C);
  auto dl_dp = [&](int64_t c, R p) {
    const int64_t e = base + c * stride;
    const R t = target_value(a.target, px, c, e);
    return region_dloss_dp(static_cast<R>(coef_a[c]), static_cast<R>(coef_b[c]), a.squared, p, t,
                           px.v);
  };
  if (a.activation == ACT_SOFTMAX) {
    // dℓ/dx_c = p_c (g_c - Σ_k p_k g_k): one pass for the dot product, one to write.
    R dot = R(0);
    for (int64_t c = 0; c < C; ++c) {
      const R p = activate(a.activation, act, to_real<R>(x[base + c * stride]));
      dot += p * dl_dp(c, p);
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t e = base + c * stride;
      const R p = activate(a.activation, act, to_real<R>(x[e]));
      grad[e] = StoreAs<G>::from(p * (dl_dp(c, p) - dot));
    }
    return;
  }
  for (int64_t c = 0; c < C; ++c) {
    const int64_t e = base + c * stride;
    const R p = activate(a.activation, act, to_real<R>(x[e]));
    const R g = dl_dp(c, p);
    grad[e] = StoreAs<G>::from(a.activation == ACT_SIGMOID ? g * p * (R(1) - p) : g);
  }
}

// Target and weight validity for CHECK_TARGETS (shared by the CPU scan and the CUDA check kernel).
CULOSS_HD bool label_is_valid(int64_t label, int64_t C, bool binary_mask, int64_t ignore_index) {
  if (label == ignore_index) return true;
  return label >= 0 && label < (binary_mask ? 2 : C);
}
CULOSS_HD bool dense_target_is_valid(double t) { return t >= 0.0 && t <= 1.0; }  // NaN fails
CULOSS_HD bool pixel_weight_is_valid(float w) { return w >= 0.0f && w <= 3.4028234663852886e38f; }

}  // namespace culoss

// Where the elements of one pixel live, and how targets, weights and activations are read.
//
// The input is viewed as [outer, C, inner] with outer = N * pre: image n owns the P = pre * inner
// pixels of the other axes. Channels-first (NCHW, NCDHW, (N, C)) has pre = 1; channels-last has
// inner = 1. Index targets and pixel weights are indexed by the flat pixel n * P + q.
#pragma once

#include <cstdint>

#include "kernels/common/dtype.cuh"
#include "kernels/common/enums.cuh"
#include "kernels/common/math.cuh"

namespace culoss {

struct Layout {
  int64_t N, C, pre, inner, P;

  // Element index of class 0 of pixel q of image n; class c is at + c * inner.
  CULOSS_HD int64_t base(int64_t n, int64_t q) const {
    if (pre == 1) return n * C * inner + q;
    if (inner == 1) return (n * P + q) * C;
    return (n * pre + q / inner) * C * inner + q % inner;
  }
  CULOSS_HD int64_t class_stride() const { return inner; }
};

// The target of one call: dense values or integer labels (one-hot of a class index).
struct TargetView {
  const void* data;
  DType dtype;
  bool index;        // labels rather than dense values
  bool binary_mask;  // index targets with a sigmoid and C = 1: the label is the mask value
  int64_t ignore_index;
};

// Per-pixel mask and weight: v = m * pixel_weight, m = 0 on ignored (or invalid) labels.
template <class R>
struct PixelTarget {
  int64_t label;  // index targets: the class whose t is 1 (or -1 for none)
  R v;            // m * pixel_weight
  R m;            // 1 counted, 0 ignored
};

// Reads the label and weight of flat pixel `pix`. Labels outside [0, C) (or {0, 1} for a binary
// mask) other than the ignore index count as ignored: an unchecked bad label is never an index.
template <class R>
CULOSS_HD PixelTarget<R> read_pixel(const TargetView& t, const float* pixel_weight, int64_t C,
                                    int64_t pix) {
  PixelTarget<R> out{-1, pixel_weight ? static_cast<R>(pixel_weight[pix]) : R(1), R(1)};
  if (t.index) {
    const int64_t label = load_label(t.data, t.dtype, pix);
    const int64_t limit = t.binary_mask ? 2 : C;
    if (label >= 0 && label < limit && label != t.ignore_index) {
      out.label = label;
    } else {
      out.v = R(0);
      out.m = R(0);
    }
  }
  return out;
}

// t of class c at element `e` for a pixel read by read_pixel.
template <class R>
CULOSS_HD R target_value(const TargetView& t, const PixelTarget<R>& px, int64_t c, int64_t e) {
  if (!t.index) return load_as<R>(t.data, t.dtype, e);
  if (t.binary_mask) return px.label == 1 ? R(1) : R(0);
  return px.label == c ? R(1) : R(0);
}

// The softmax of one pixel is exp(x_c - max) * inv_sum; sigmoid and none need no pixel state.
template <class R>
struct PixelActivation {
  R max, inv_sum, log_sum;  // log p_c = x_c − max − log_sum
};

template <class R, class T>
CULOSS_HD PixelActivation<R> pixel_activation(int act, const T* x, int64_t base, int64_t stride,
                                              int64_t C) {
  PixelActivation<R> a{R(0), R(1), R(0)};
  if (act != ACT_SOFTMAX) return a;
  R m = to_real<R>(x[base]);
  for (int64_t c = 1; c < C; ++c) m = max_r(m, to_real<R>(x[base + c * stride]));
  R s = R(0);
  for (int64_t c = 0; c < C; ++c) s += exp_r(to_real<R>(x[base + c * stride]) - m);
  a.max = m;
  a.inv_sum = R(1) / s;
  a.log_sum = log_r(s);
  return a;
}

template <class R>
CULOSS_HD R activate(int act, const PixelActivation<R>& a, R x) {
  if (act == ACT_SOFTMAX) return exp_r(x - a.max) * a.inv_sum;
  if (act == ACT_SIGMOID) return sigmoid(x);
  return x;
}

}  // namespace culoss

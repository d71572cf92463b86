// Lovász hinge and Lovász-Softmax (Berman, Rannen Triki, Blaschko 2018): the math shared by the
// CPU backend and the CUDA kernels.
//
// A segment is one sorted list: (problem, channel) for the hinge, (problem, class) for the
// softmax, where a problem is one image (PER_IMAGE=1) or the whole batch. Its items are the
// counted pixels, sorted by error descending (ties by element index). With gts = Σ fg over the
// segment and inclusive counts cum_t, cum_f of positives and negatives along the order,
// J_k = 1 − (gts − cum_t)/(gts + cum_f) and g_k = J_k − J_{k−1}; the segment's loss is
// Σ_k f(e_k) g_k with f = relu (hinge) or the identity (softmax errors are ≥ 0).
#pragma once

#include <cstdint>

#include "kernels/common/layout.cuh"

namespace culoss {

// J after `cum_t` positives and `cum_f` negatives; J of the empty prefix is 0.
CULOSS_HD double lovasz_jaccard(double gts, double cum_t, double cum_f) {
  const double den = gts + cum_f;
  return den > 0.0 ? 1.0 - (gts - cum_t) / den : 0.0;
}

// g of the item that brought the prefix to (cum_t, cum_f); fg is the item's own label.
CULOSS_HD double lovasz_grad(double gts, double cum_t, double cum_f, bool fg) {
  const double before_t = fg ? cum_t - 1.0 : cum_t, before_f = fg ? cum_f : cum_f - 1.0;
  return lovasz_jaccard(gts, cum_t, cum_f) - lovasz_jaccard(gts, before_t, before_f);
}

// Hinge error of a logit: e = 1 − x s with s = 2 fg − 1.
template <class R>
CULOSS_HD R hinge_error(R x, bool fg) {
  return R(1) - x * (fg ? R(1) : R(-1));
}

// Order-preserving map of a float to 32 bits, inverted so that larger errors sort first in an
// ascending radix sort. The all-ones key is kept for left-out items (sorted last).
CULOSS_HD uint32_t descending_error_key(float e) {
  const uint32_t u = float_bits(e == 0.0f ? 0.0f : e);  // −0 and +0 are one error: a tie
  const uint32_t ascending = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  const uint32_t key = ~ascending;
  return key == 0xffffffffu ? 0xfffffffeu : key;
}
constexpr uint32_t kLeftOutKey = 0xffffffffu;

// Lovász problems of a call.
struct LovaszShape {
  int64_t N, C, P;
  bool per_image;
  CULOSS_HD int64_t problems() const { return per_image ? N : 1; }
  CULOSS_HD int64_t segments() const { return problems() * C; }
  CULOSS_HD int64_t segment_length() const { return per_image ? P : N * P; }
  // Segment of (image n, class c) and the item's place inside it (pixel order).
  CULOSS_HD int64_t segment(int64_t n, int64_t c) const { return (per_image ? n * C : 0) + c; }
  CULOSS_HD int64_t local(int64_t n, int64_t q) const { return per_image ? q : n * P + q; }
};

// One item: whether it is counted (a labelled pixel with a positive weight: pixel weights act as a
// mask here), its binarized label, its error, and p (softmax: the probability; hinge: the logit).
template <class R>
struct LovaszItem {
  bool counted, fg;
  R e, p;
};

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
// Calls fn(c, element, item) for every class/channel c of pixel q of image n.
template <class R, class T, class Fn>
CULOSS_HD void lovasz_pixel(bool hinge, int activation, const Layout& L, const TargetView& tv,
                            const float* pixel_weight, const T* x, int64_t n, int64_t q, Fn&& fn) {
  const int64_t base = L.base(n, q), stride = L.class_stride();
  const PixelTarget<R> px = read_pixel<R>(tv, pixel_weight, L.C, n * L.P + q);
  const PixelActivation<R> act = hinge ? PixelActivation<R>{R(0), R(1), R(0)}
                                       : pixel_activation<R>(activation, x, base, stride, L.C);
  for (int64_t c = 0; c < L.C; ++c) {
    const int64_t e = base + c * stride;
    const R xc = to_real<R>(x[e]);
    LovaszItem<R> it;
    it.counted = px.v > R(0);
    it.fg = target_value(tv, px, c, e) >= R(0.5);  // targets are binarized at 0.5
    it.p = hinge ? xc : activate(activation, act, xc);
    it.e = hinge ? hinge_error(xc, it.fg) : (it.fg ? R(1) - it.p : it.p);
    fn(c, e, it);
  }
}

// d(error)/d(p or logit) of an item: hinge −s on the positive part, softmax sign(p − fg).
template <class R>
CULOSS_HD R lovasz_error_slope(bool hinge, const LovaszItem<R>& it) {
  if (hinge) return it.e > R(0) ? (it.fg ? R(-1) : R(1)) : R(0);
  return it.fg ? R(-1) : R(1);  // e = |fg − p| with p in [0, 1]
}

// Weight of a segment's loss in the SUM reduction: 1 for the hinge; Lovász-Softmax averages a
// problem's classes in CLASSES (PRESENT: those with a positive), present_count = |CLASSES|.
CULOSS_HD double lovasz_sum_weight(bool hinge, bool classes_all, double gts,
                                   int64_t present_count) {
  if (hinge) return 1.0;
  if (!(classes_all || gts > 0.0) || present_count == 0) return 0.0;
  return 1.0 / static_cast<double>(present_count);
}

// MEAN divides the SUM by the number of problems (the hinge: problems x channels).
CULOSS_HD double lovasz_mean_denominator(bool hinge, double problems, int64_t C) {
  return hinge ? problems * static_cast<double>(C) : problems;
}

// A segment's weight in the reduced loss; `problems` counts every rank's images when the call
// finishes from summed statistics.
CULOSS_HD double lovasz_segment_weight(bool hinge, int reduction, bool classes_all, double gts,
                                       int64_t present_count, double problems, int64_t C) {
  const double w = lovasz_sum_weight(hinge, classes_all, gts, present_count);
  if (reduction != RED_MEAN) return w;  // RED_SUM, RED_NONE
  const double d = lovasz_mean_denominator(hinge, problems, C);
  return d > 0.0 ? w / d : 0.0;
}

// The reduced loss from statistics summed over the ranks: `global` = [Σ problem losses (SUM
// weights), problems]. One place for every backend and the empty input, so they cannot disagree.
CULOSS_HD double lovasz_loss_from_stats(bool hinge, int reduction, const double* global,
                                        int64_t C) {
  if (reduction != RED_MEAN) return global[0];
  const double d = lovasz_mean_denominator(hinge, global[1], C);
  return d > 0.0 ? global[0] / d : 0.0;
}

}  // namespace culoss

// Losses weighted by distance transforms of each (image, class) (GEO_DISTANCE maps; the
// transforms are kernels/geometry/edt.cuh). For a 0/1 mask B over the grid: d_B(i) = distance
// from i ∈ B to the nearest pixel outside B, d̄_B(i) = distance from i ∉ B to the nearest pixel
// of B (each 0 elsewhere), scaled by SPACING; a mask that is empty or full has d = d̄ = 0.
// Ignored pixels are background in every mask. The maps are constants for the gradient.
//
//   HAUSDORFF_DT (Karimi & Salcudean 2019): P̂ = {p > 0.5}, T̂ = {t > 0.5}, f_B = d_B + d̄_B,
//     ℓᵢ = v (p − t)² (f_P̂^α + f_T̂^α)       maps: f_P̂^α, f_T̂^α
//   BOUNDARY (Kervadec et al. 2019): φ = d̄_T̂ − max(d_T̂ − 1, 0),
//     ℓᵢ = v p φ                              map: φ
// Both are element-wise (MEAN over the counted elements of the included classes; SUM; NONE per
// element) and take the activations of Dice (p is the activated input).
#pragma once

#include "kernels/terms/elementwise.cuh"

namespace culoss {

template <class Term>
struct DistanceTerm : ElementwiseTerm<Term> {
  static constexpr int kCoefs = 1;  // 1 for an included class, 0 for an excluded one
  static constexpr int kGeometry = GEO_DISTANCE;
  static constexpr int kMinAxes = 1;
  static constexpr bool kIncludeBackground = true;

  // MEAN divides by the counted elements of the included classes, which only counts know.
  static bool needs_counts(const TermSpec& t, bool distributed, bool) {
    return distributed || t.reduction == RED_MEAN;
  }
  CULOSS_HD static bool counts_class(const TermSpec& ts, int64_t c) {
    return ts.include_background || c > 0;
  }

  // Map k of the term at this element.
  template <class R>
  CULOSS_HD static R map(const TermSpec& ts, const TermPixel<R>& px, int k) {
    return static_cast<R>(px.map[(ts.map_offset + k) * px.map_plane]);
  }
};

struct HausdorffDtTerm : DistanceTerm<HausdorffDtTerm> {
  static constexpr int kMaps = 2;  // f_P̂^α, f_T̂^α

  template <class R>
  CULOSS_HD static void seed(const TermSpec& ts, const TermPixel<R>& px, R* out) {
    const R p = activate(ts.activation, px.soft, px.x);
    out[0] = px.m > R(0) && p > R(0.5) ? R(1) : R(0);
    out[1] = px.m > R(0) && px.t > R(0.5) ? R(1) : R(0);
  }
  CULOSS_HD static double distance_value(const TermSpec& ts, int, double d_in, double d_out) {
    const double f = d_in + d_out;
    if (ts.alpha == 2.0) return f * f;  // the default, without a pow per pixel
    return ts.alpha == 1.0 ? f : pow_r(f, ts.alpha);
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& ts, const TermPixel<R>& px,
                                      const double* coef, const double*) {
    const R p = activate(ts.activation, px.soft, px.x);
    const R w = narrow_coef<R>(coef[0]) * (map(ts, px, 0) + map(ts, px, 1));
    const R e = p - px.t;
    return TermOut<R>{px.v * e * e * w, activation_chain(ts.activation, p, R(2) * px.v * e * w)};
  }
};

struct BoundaryTerm : DistanceTerm<BoundaryTerm> {
  static constexpr int kMaps = 1;  // φ

  template <class R>
  CULOSS_HD static void seed(const TermSpec&, const TermPixel<R>& px, R* out) {
    out[0] = px.m > R(0) && px.t > R(0.5) ? R(1) : R(0);
  }
  CULOSS_HD static double distance_value(const TermSpec&, int, double d_in, double d_out) {
    return d_out - (d_in > 1.0 ? d_in - 1.0 : 0.0);
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& ts, const TermPixel<R>& px,
                                      const double* coef, const double*) {
    const R p = activate(ts.activation, px.soft, px.x);
    const R phi = narrow_coef<R>(coef[0]) * map(ts, px, 0);
    return TermOut<R>{px.v * p * phi, activation_chain(ts.activation, p, px.v * phi)};
  }
};

}  // namespace culoss

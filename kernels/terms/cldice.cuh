// Soft clDice (Shit et al., CVPR 2021; MONAI SoftclDiceLoss), k = 2 or 3 spatial axes.
// S_p = skel(p) and S_t = skel(t) are soft skeletons (kernels/geometry/skeleton.cuh, GEO_SKELETON
// maps) of the activated prediction and of the target; pixels of weight 0 (ignored ones
// included) are 0 in both, so that nothing at a pixel without gradient steers the loss.
// Statistics per (image, class): A = Σ v S_p t, B = Σ v S_p, Cs = Σ v S_t p, D = Σ v S_t and
// T = Σ v t (the target mass, for SKIP_EMPTY). With the groups of the region losses (BATCH,
// AVERAGE, INCLUDE_BACKGROUND, CLASS_WEIGHTS, SKIP_EMPTY; pooled sums are class-weighted):
//   Tprec = (A + s_nr)/(B + s_dr), Tsens = (Cs + s_nr)/(D + s_dr),
//   ℓ = 1 − 2·Tprec·Tsens/(Tprec + Tsens);
// a ratio whose denominator is 0 (s_dr = 0 and nothing counted) is 0 with no gradient, and
// ℓ = 1 with no gradient when both are.
// Gradient: dℓ/dp = (dℓ/dCs) v S_t directly, plus the skeleton's backward of
// dℓ/dS_p = v (t dℓ/dA + dℓ/dB) (the upstream map, after finalize; geometry.cuh).
#pragma once

#include "kernels/common/region_math.cuh"
#include "kernels/common/terms.cuh"
#include "kernels/terms/region_groups.cuh"
#include "kernels/geometry/skeleton.cuh"  // SkeletonMap

namespace culoss {

constexpr int kClStatA = 0, kClStatB = 1, kClStatCs = 2, kClStatD = 3, kClStatT = 4;

struct ClDiceRatio {
  double loss, d_a, d_b, d_cs;
};

CULOSS_HD ClDiceRatio cldice_ratio(const RegionParams& rp, double A, double B, double Cs,
                                   double D) {
  ClDiceRatio r{1.0, 0.0, 0.0, 0.0};
  const double den_p = B + rp.smooth_dr, den_s = D + rp.smooth_dr;
  const bool has_p = den_p >= kMinDenominator || den_p <= -kMinDenominator;
  const bool has_s = den_s >= kMinDenominator || den_s <= -kMinDenominator;
  const double tp = has_p ? (A + rp.smooth_nr) / den_p : 0.0;
  const double ts = has_s ? (Cs + rp.smooth_nr) / den_s : 0.0;
  const double sum = tp + ts;
  if (sum < kMinDenominator && sum > -kMinDenominator) return r;
  r.loss = 1.0 - 2.0 * tp * ts / sum;
  const double dl_dtp = -2.0 * ts * ts / (sum * sum), dl_dts = -2.0 * tp * tp / (sum * sum);
  if (has_p) {
    r.d_a = dl_dtp / den_p;
    r.d_b = -dl_dtp * tp / den_p;
  }
  if (has_s) r.d_cs = dl_dts / den_s;
  return r;
}

// The statistics of image group gn pooled as the group of class c sees them (MACRO: the class
// alone; MICRO: every included class, class-weighted), and whether the group counts.
CULOSS_HD bool cldice_group_stats(const RegionParams& rp, const double* stats, int64_t gn,
                                  int64_t c, double* s) {
  for (int k = 0; k < 5; ++k) s[k] = 0.0;
  if (!rp.pooled()) {
    for (int k = 0; k < 5; ++k) s[k] = group_stat(rp, stats, gn, c, k);
    return rp.class_included(c) && (!rp.skip_empty || s[kClStatT] > 0.0);
  }
  bool any_class = false;
  for (int64_t j = 0; j < rp.C; ++j) {
    if (!rp.class_included(j)) continue;
    any_class = true;
    const double w = rp.class_weight(j);
    for (int k = 0; k < 5; ++k) s[k] += w * group_stat(rp, stats, gn, j, k);
  }
  return any_class && (!rp.skip_empty || s[kClStatT] > 0.0);
}

struct ClDiceTerm : NoMaps {
  static constexpr int kCoefs = 3;  // dℓ/dA, dℓ/dB, dℓ/dCs of the (image, class), scaled
  static constexpr bool kScaledCoefs = true;
  static constexpr bool kElementValue = false;
  static constexpr int kNone = NONE_GROUPS;
  static constexpr bool kNeedsArgmax = false;
  static constexpr int kCountSlots = 5;
  static int count_slots(const TermSpec&) { return kCountSlots; }
  static constexpr int kValueSlots = 0;
  static constexpr int kExportSlots = 2;  // Σ weight·ℓ and Σ weight of the per-image groups
  static constexpr bool kRegionParams = true;
  static constexpr int kMaps = kSkelMaps;
  static constexpr int kGeometry = GEO_SKELETON;
  static constexpr int kMinAxes = 2;
  static constexpr bool kMapGrad = true;
  static constexpr int kUpstreamMap = kSkelGrad;

  static bool needs_counts(const TermSpec&, bool, bool) { return true; }

  template <class R>
  CULOSS_HD static R map(const TermSpec& ts, const TermPixel<R>& px, int k) {
    return static_cast<R>(px.map[(ts.map_offset + k) * px.map_plane]);
  }

  template <class R>
  CULOSS_HD static void seed(const TermSpec& ts, const TermPixel<R>& px, R* out) {
    const bool live = px.v > R(0);
    out[kSkelP] = live ? activate(ts.activation, px.soft, px.x) : R(0);
    out[kSkelT] = live ? px.t : R(0);
  }

  template <class R>
  CULOSS_HD static void stats(const Program&, const TermSpec& ts, const TermPixel<R>& px,
                              R* slots) {
    const R p = activate(ts.activation, px.soft, px.x);
    const R sp = map(ts, px, kSkelSP), st = map(ts, px, kSkelST), v = px.v;
    slots[kClStatA] = v * sp * px.t;
    slots[kClStatB] = v * sp;
    slots[kClStatCs] = v * st * p;
    slots[kClStatD] = v * st;
    slots[kClStatT] = v * px.t;
  }

  template <class R>
  CULOSS_HD static R upstream(const TermSpec&, const TermPixel<R>& px, const double* coef) {
    return px.v * (narrow_coef<R>(coef[0]) * px.t + narrow_coef<R>(coef[1]));
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& ts, const TermPixel<R>& px,
                                      const double* coef, const double*) {
    const R p = activate(ts.activation, px.soft, px.x);
    const R dl_dp =
        narrow_coef<R>(coef[2]) * px.v * map(ts, px, kSkelST) + map(ts, px, kSkelGrad);
    return TermOut<R>{R(0), activation_chain(ts.activation, p, dl_dp)};
  }

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
  template <class Step>
  CULOSS_HD static void finalize(const TermSpec& ts, int, Step& f) {
    const FinalizeBuffers& b = f.b;
    const RegionParams& rp = ts.region;
    const int64_t groups = rp.groups(), C = f.C, W = f.prog.coef_width;
    for (int64_t g = f.tid; g < groups; g += f.threads) {
      const int64_t gn = rp.pooled() ? g : g / C, c = rp.pooled() ? 0 : g % C;
      double s[5];
      const bool included = cldice_group_stats(rp, b.stats, gn, c, s);
      const ClDiceRatio r = cldice_ratio(rp, s[kClStatA], s[kClStatB], s[kClStatCs], s[kClStatD]);
      b.group_loss[g] = included ? r.loss : 0.0;
      b.group_weight[g] = included ? (rp.pooled() ? 1.0 : rp.class_weight(c)) : 0.0;
    }
    const double weight_total = reduce_region_groups(ts, rp, f);
    for (int64_t j = f.tid; j < f.N * C; j += f.threads) {
      const int64_t n = j / C, c = j % C, gn = rp.batch ? 0 : n;
      const int64_t g = region_group_of(rp, gn, c);
      double* coef = b.coefs + j * W + ts.coef_offset;
      double st[5];
      const bool included = cldice_group_stats(rp, b.stats, gn, c, st) && rp.class_included(c);
      const double scale =
          ts.weight * region_group_scale(rp.reduction, b.group_weight[g], weight_total,
                                         f.grad_scale) *
          (rp.pooled() ? rp.class_weight(c) : 1.0);
      const ClDiceRatio r =
          cldice_ratio(rp, st[kClStatA], st[kClStatB], st[kClStatCs], st[kClStatD]);
      coef[0] = included ? scale * r.d_a : 0.0;
      coef[1] = included ? scale * r.d_b : 0.0;
      coef[2] = included ? scale * r.d_cs : 0.0;
    }
    if (rp.reduction == RED_NONE && b.none_out)  // culoss_compute_stats writes no outputs
      for (int64_t g = f.tid; g < groups; g += f.threads)
        store_as(b.none_out, b.none_dtype, g, b.group_weight[g] * b.group_loss[g]);
    f.sync();
  }
};

}  // namespace culoss

// Region losses (Dice, Jaccard, Tversky, focal Tversky, generalized Dice): the element terms of
// the statistics, the finalize step from statistics to loss values and gradient coefficients,
// and the element gradient. Shared verbatim by the CPU backend and the CUDA kernels.
//
// Statistics per (image n, class c), K = 3 of them: I = Σ v p t, SP = Σ v p (or Σ v p²),
// ST = Σ v t (or Σ v t²). Every region loss is a function of these sums, so its derivative with
// respect to one probability is v * (a * t + b * dSP/dp) with per-(n, c) coefficients a, b that
// the finalize step computes: the gradient pass needs nothing else.
#pragma once

#include <cstdint>

#include "kernels/common/enums.cuh"
#include "kernels/common/math.cuh"

namespace culoss {

enum RegionKind : int { RK_DICE, RK_JACCARD, RK_TVERSKY, RK_FOCAL_TVERSKY, RK_GENERALIZED_DICE };

constexpr int kRegionStats = 3;  // I, SP, ST
constexpr int kStatI = 0, kStatSP = 1, kStatST = 2;

// Everything finalize needs; plain data so it can be passed to a kernel by value.
struct RegionParams {
  int kind;
  int reduction;
  int weight_type;
  bool squared, batch, micro, include_background, skip_empty;
  double smooth_nr, smooth_dr, alpha, beta, gamma;
  int64_t N, C;
  int stat_stride, stat_offset;  // this term's slots in the statistics rows
  const double* class_totals;    // distributed: the batch's per-class sums (C x stat_stride)
  const double* class_weights;   // C entries, on the backend's device; NULL: all 1

  CULOSS_HD double class_weight(int64_t c) const { return class_weights ? class_weights[c] : 1.0; }

  // Groups own one loss value each: (n, c) pairs for MACRO (c alone with BATCH), images for
  // MICRO and generalized Dice (one group with BATCH).
  CULOSS_HD bool pooled() const { return micro || kind == RK_GENERALIZED_DICE; }
  CULOSS_HD int64_t image_groups() const { return batch ? 1 : N; }
  CULOSS_HD int64_t groups() const { return pooled() ? image_groups() : image_groups() * C; }
  CULOSS_HD bool class_included(int64_t c) const { return include_background || c > 0; }
};

template <class R>
CULOSS_HD void region_element_stats(R p, R t, R v, bool squared, R out[kRegionStats]) {
  out[kStatI] = v * p * t;
  out[kStatSP] = squared ? v * p * p : v * p;
  out[kStatST] = squared ? v * t * t : v * t;
}

// Loss and derivatives of one ratio-type loss with respect to the pooled I and SP (ST does not
// depend on the prediction). A zero denominator (only with SMOOTH_DR = 0 and nothing counted)
// gives loss 0 and no gradient.
// A denominator this small is only possible with SMOOTH_DR = 0 and (almost) nothing counted: it
// counts as 0, since its square would underflow and the gradient would not be finite.
constexpr double kMinDenominator = 1e-30;

struct RatioLoss {
  double loss, d_i, d_sp;
};

CULOSS_HD RatioLoss region_ratio_loss(const RegionParams& rp, double I, double SP, double ST) {
  RatioLoss r{0.0, 0.0, 0.0};
  const double snr = rp.smooth_nr, sdr = rp.smooth_dr;
  switch (rp.kind) {
    case RK_DICE:
    case RK_GENERALIZED_DICE: {  // generalized Dice arrives with weighted sums
      const double num = 2.0 * I + snr, den = SP + ST + sdr;
      if (den < kMinDenominator && den > -kMinDenominator) return r;
      r.loss = 1.0 - num / den;
      r.d_i = -2.0 / den;
      r.d_sp = num / (den * den);
      return r;
    }
    case RK_JACCARD: {
      const double num = I + snr, den = SP + ST - I + sdr;
      if (den < kMinDenominator && den > -kMinDenominator) return r;
      r.loss = 1.0 - num / den;
      r.d_i = -(1.0 / den + num / (den * den));
      r.d_sp = num / (den * den);
      return r;
    }
    case RK_TVERSKY:
    case RK_FOCAL_TVERSKY: {
      // FP = SP - I, FN = ST - I, so den = I (1 - α - β) + α SP + β ST + s_dr.
      const double num = I + snr;
      const double den = I + rp.alpha * (SP - I) + rp.beta * (ST - I) + sdr;
      if (den < kMinDenominator && den > -kMinDenominator) return r;
      const double ti = num / den;
      const double dti_di = 1.0 / den - num * (1.0 - rp.alpha - rp.beta) / (den * den);
      const double dti_dsp = -num * rp.alpha / (den * den);
      if (rp.kind == RK_TVERSKY) {
        r.loss = 1.0 - ti;
        r.d_i = -dti_di;
        r.d_sp = -dti_dsp;
        return r;
      }
      const double base = 1.0 - ti;
      if (!(base > 0.0)) return r;  // perfect (or over-smoothed) prediction: loss 0, no gradient
      r.loss = pow_r(base, rp.gamma);
      const double dl_dti = -rp.gamma * pow_r(base, rp.gamma - 1.0);
      r.d_i = dl_dti * dti_di;
      r.d_sp = dl_dti * dti_dsp;
      return r;
    }
  }
  return r;
}

// Sums statistic k of class c over the images of image group gn.
CULOSS_HD double group_stat(const RegionParams& rp, const double* stats, int64_t gn, int64_t c,
                            int k) {
  const int64_t at = c * rp.stat_stride + rp.stat_offset + k;
  if (!rp.batch) return stats[gn * rp.C * rp.stat_stride + at];
  if (rp.class_totals) return rp.class_totals[at];  // summed over every rank's images
  double s = 0.0;
  for (int64_t n = 0; n < rp.N; ++n) s += stats[n * rp.C * rp.stat_stride + at];
  return s;
}

CULOSS_HD double gdl_base_weight(int weight_type, double st) {
  if (weight_type == WT_UNIFORM) return 1.0;
  return weight_type == WT_SIMPLE ? 1.0 / st : 1.0 / (st * st);
}

CULOSS_HD bool is_finite_positive(double x) { return x > 0.0 && x <= 1.7976931348623157e308; }

// Finalize, part 1, for group g: its loss `ell`, its weight in the reduction `wgt` (0 when the
// group is excluded) and the unscaled coefficients a = dℓ/dI_c, b = dℓ/dSP_c of every class of
// the group, written to coef_a/coef_b at [gn * C + c] (gn = image group).
CULOSS_HD void region_finalize_group(const RegionParams& rp, const double* stats, int64_t g,
                                     double* coef_a, double* coef_b, double* ell, double* wgt) {
  const int64_t C = rp.C;
  if (!rp.pooled()) {
    const int64_t gn = g / C, c = g % C;
    const double I = group_stat(rp, stats, gn, c, kStatI);
    const double SP = group_stat(rp, stats, gn, c, kStatSP);
    const double ST = group_stat(rp, stats, gn, c, kStatST);
    const bool included = rp.class_included(c) && (!rp.skip_empty || ST > 0.0);
    const RatioLoss r = region_ratio_loss(rp, I, SP, ST);
    ell[g] = included ? r.loss : 0.0;
    wgt[g] = included ? rp.class_weight(c) : 0.0;
    coef_a[g] = included ? r.d_i : 0.0;
    coef_b[g] = included ? r.d_sp : 0.0;
    return;
  }
  const int64_t gn = g;
  bool any_class = false;
  double I = 0.0, SP = 0.0, ST = 0.0, weighted_st = 0.0;
  if (rp.kind == RK_GENERALIZED_DICE) {
    // w_c = base(ST_c) * ω_c; a class with no target mass takes the largest finite base.
    double max_base = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      if (!rp.class_included(c)) continue;
      const double b = gdl_base_weight(rp.weight_type, group_stat(rp, stats, gn, c, kStatST));
      if (is_finite_positive(b) && b > max_base) max_base = b;
    }
    if (max_base == 0.0) max_base = 1.0;
    for (int64_t c = 0; c < C; ++c) {
      coef_a[gn * C + c] = 0.0;  // holds w_c until the ratio is known
      if (!rp.class_included(c)) continue;
      any_class = true;
      const double st = group_stat(rp, stats, gn, c, kStatST);
      double b = gdl_base_weight(rp.weight_type, st);
      if (!is_finite_positive(b)) b = max_base;
      const double wc = b * rp.class_weight(c);
      coef_a[gn * C + c] = wc;
      I += wc * group_stat(rp, stats, gn, c, kStatI);
      SP += wc * group_stat(rp, stats, gn, c, kStatSP);
      ST += wc * st;
      weighted_st += rp.class_weight(c) * st;
    }
  } else {  // MICRO: class-weighted sums over the included classes
    for (int64_t c = 0; c < C; ++c) {
      coef_a[gn * C + c] = 0.0;
      if (!rp.class_included(c)) continue;
      any_class = true;
      const double wc = rp.class_weight(c);
      coef_a[gn * C + c] = wc;
      I += wc * group_stat(rp, stats, gn, c, kStatI);
      SP += wc * group_stat(rp, stats, gn, c, kStatSP);
      ST += wc * group_stat(rp, stats, gn, c, kStatST);
    }
    weighted_st = ST;
  }
  const bool included = any_class && (!rp.skip_empty || weighted_st > 0.0);
  const RatioLoss r = region_ratio_loss(rp, I, SP, ST);
  ell[g] = included ? r.loss : 0.0;
  wgt[g] = included ? 1.0 : 0.0;
  for (int64_t c = 0; c < C; ++c) {  // per class: the pooled derivative times that class's weight
    const double wc = included ? coef_a[gn * C + c] : 0.0;
    coef_a[gn * C + c] = wc * r.d_i;
    coef_b[gn * C + c] = wc * r.d_sp;
  }
}

// Finalize, part 2: the loss from Σ wgt·ell and Σ wgt over all groups.
CULOSS_HD double region_reduced_loss(int reduction, double weighted_sum, double weight_total) {
  if (reduction == RED_MEAN) return weight_total > 0.0 ? weighted_sum / weight_total : 0.0;
  return weighted_sum;
}

// Finalize, part 3: d(reduced loss)/dℓ_g times grad_scale (NONE: gradient of the outputs' sum).
CULOSS_HD double region_group_scale(int reduction, double wgt_g, double weight_total,
                                    double grad_scale) {
  if (reduction == RED_MEAN) return weight_total > 0.0 ? grad_scale * wgt_g / weight_total : 0.0;
  return grad_scale * wgt_g;
}

// The group that owns coefficient (gn, c).
CULOSS_HD int64_t region_group_of(const RegionParams& rp, int64_t gn, int64_t c) {
  return rp.pooled() ? gn : gn * rp.C + c;
}

// dℓ/dp of one element from the scaled coefficients.
template <class R>
CULOSS_HD R region_dloss_dp(R a, R b, bool squared, R p, R t, R v) {
  return v * (a * t + b * (squared ? R(2) * p : R(1)));
}

}  // namespace culoss

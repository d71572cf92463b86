// Region losses (Dice, Jaccard, Tversky, focal Tversky, generalized Dice, MCC): the element
// terms of the statistics, the finalize step from statistics to loss values and gradient
// coefficients, and the element gradient. Shared verbatim by the CPU backend and the CUDA kernels.
//
// Statistics per (image n, class c), K = 3 of them: I = Σ v p t, SP = Σ v p (or Σ v p²),
// ST = Σ v t (or Σ v t²); MCC adds a fourth, SV = Σ v, for its true negatives. Every region loss
// is a function of these sums, so its derivative with respect to one probability is
// v * (a * dI/dp + b * dSP/dp) with per-(n, c) coefficients a, b that the finalize step computes
// (ST and SV do not depend on the prediction): the gradient pass needs nothing else.
//
// Soft labels (SOFT_LABEL=1, MONAI's soft_label): I = (SP + ST − Σ v |p − t|) / 2. Per element
// that is v min(p, t), which is what is summed: exact, and bitwise v p t for 0/1 targets. Its
// derivative is v (1 − sign(p − t)) / 2: 1 below the target, 0 above, 1/2 at p = t.
#pragma once

#include <cstdint>

#include "kernels/common/enums.cuh"
#include "kernels/common/math.cuh"

namespace culoss {

enum RegionKind : int {
  RK_DICE,
  RK_JACCARD,
  RK_TVERSKY,
  RK_FOCAL_TVERSKY,
  RK_GENERALIZED_DICE,
  RK_MCC,
};

constexpr int kRegionStats = 3;  // I, SP, ST
constexpr int kStatI = 0, kStatSP = 1, kStatST = 2;
constexpr int kStatSV = 3;  // MCC only: Σ v

// Everything finalize needs; plain data so it can be passed to a kernel by value.
struct RegionParams {
  int kind;
  int reduction;
  int weight_type;
  bool squared, batch, micro, include_background, skip_empty;
  bool soft_label;  // I = Σ v min(p, t)
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
  // Statistics slots per (image, class).
  CULOSS_HD int stat_slots() const { return kind == RK_MCC ? kRegionStats + 1 : kRegionStats; }
};

// The statistics of one element into out[0, rp.stat_slots()).
template <class R>
CULOSS_HD void region_element_stats(const RegionParams& rp, R p, R t, R v, R* out) {
  out[kStatI] = rp.soft_label ? v * (p < t ? p : t) : v * p * t;
  out[kStatSP] = rp.squared ? v * p * p : v * p;
  out[kStatST] = rp.squared ? v * t * t : v * t;
  if (rp.kind == RK_MCC) out[kStatSV] = v;
}

// Loss and derivatives of one ratio-type loss with respect to the pooled I and SP (ST and SV do
// not depend on the prediction). A zero denominator (only with SMOOTH_DR = 0 and nothing
// counted) gives loss 0 and no gradient.
// A denominator this small is only possible with SMOOTH_DR = 0 and (almost) nothing counted: it
// counts as 0, since its square would underflow and the gradient would not be finite.
constexpr double kMinDenominator = 1e-30;

struct RatioLoss {
  double loss, d_i, d_sp;
};

CULOSS_HD RatioLoss region_ratio_loss(const RegionParams& rp, double I, double SP, double ST,
                                      double SV) {
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
    case RK_MCC: {
      // With ε = SMOOTH_DR added to each count, TP = I + ε, FP = SP − I + ε, FN = ST − I + ε,
      // TN = SV − SP − ST + I + ε, and MCC = (TP TN − FP FN) / √((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
      // Expanded, the four factors depend on SP, ST and SV only, and the numerator is linear in
      // I; written so, nothing cancels between large sums (TN + FP = SV − ST exactly, 0 when the
      // class fills the image).
      const double e2 = 2.0 * sdr;
      const double a = SP + e2, b = ST + e2, c = SV - ST + e2, d = SV - SP + e2;
      // A factor this small only happens with ε = 0 (a class absent from both, or filling the
      // whole image): the coefficient is undefined there, and counts as loss 0, no gradient.
      if (!(a > kMinDenominator && b > kMinDenominator && c > kMinDenominator &&
            d > kMinDenominator))
        return r;
      const double root = sqrt(a * b) * sqrt(c * d);  // in two halves: no overflow of the product
      const double num = I * SV - SP * ST + sdr * (SV + 4.0 * I - 2.0 * SP - 2.0 * ST);
      const double mcc = num / root;
      r.loss = 1.0 - mcc;
      // ∂MCC/∂x = (∂num/∂x) / root − MCC/2 · ∂ln(a b c d)/∂x; only a and d depend on SP.
      r.d_i = -(SV + 4.0 * sdr) / root;
      r.d_sp = (ST + e2) / root + 0.5 * mcc * (1.0 / a - 1.0 / d);
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
    const double SV = rp.kind == RK_MCC ? group_stat(rp, stats, gn, c, kStatSV) : 0.0;
    const bool included = rp.class_included(c) && (!rp.skip_empty || ST > 0.0);
    const RatioLoss r = region_ratio_loss(rp, I, SP, ST, SV);
    ell[g] = included ? r.loss : 0.0;
    wgt[g] = included ? rp.class_weight(c) : 0.0;
    coef_a[g] = included ? r.d_i : 0.0;
    coef_b[g] = included ? r.d_sp : 0.0;
    return;
  }
  const int64_t gn = g;
  bool any_class = false;
  double I = 0.0, SP = 0.0, ST = 0.0, SV = 0.0, weighted_st = 0.0;
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
      if (rp.kind == RK_MCC) SV += wc * group_stat(rp, stats, gn, c, kStatSV);
    }
    weighted_st = ST;
  }
  const bool included = any_class && (!rp.skip_empty || weighted_st > 0.0);
  const RatioLoss r = region_ratio_loss(rp, I, SP, ST, SV);
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

// dℓ/dp of one element from the scaled coefficients: v (a dI/dp + b dSP/dp).
template <class R>
CULOSS_HD R region_dloss_dp(const RegionParams& rp, R a, R b, R p, R t, R v) {
  const R di_dp = rp.soft_label ? (p < t ? R(1) : p > t ? R(0) : R(0.5)) : t;
  return v * (a * di_dp + b * (rp.squared ? R(2) * p : R(1)));
}

}  // namespace culoss

// Region terms (Dice, Jaccard, Tversky, focal Tversky, generalized Dice, MCC; kernels/common/
// region_math.cuh has their math): statistics I, SP, ST (and SV for MCC) per (image, class), a
// finalize that reduces the group losses and turns their derivatives into per-(image, class)
// coefficients a, b (scaled by grad_scale and the term's weight already), and the element
// gradient dℓ/dp = v (a dI/dp + b dSP/dp). They have no element value: finalize adds theirs.
#pragma once

#include "kernels/common/region_math.cuh"
#include "kernels/common/terms.cuh"
#include "kernels/terms/region_groups.cuh"

namespace culoss {

struct RegionTerm : NoMaps {
  static constexpr bool kRegionParams = true;
  static constexpr int kCoefs = 2;  // a, b
  static constexpr bool kScaledCoefs = true;
  static constexpr bool kElementValue = false;
  static constexpr int kNone = NONE_GROUPS;  // one value per (image, class) group
  static constexpr bool kNeedsArgmax = false;
  static constexpr int kCountSlots = kRegionStats + 1;  // the most: I, SP, ST, and SV for MCC
  static constexpr int kValueSlots = 0;
  static constexpr int kExportSlots = 2;  // Σ weight·ℓ and Σ weight of the per-image groups

  static bool needs_counts(const TermSpec&, bool, bool) { return true; }
  static int count_slots(const TermSpec& t) { return t.region.stat_slots(); }
  static_assert(kCountSlots <= kMaxTermStats, "the statistics pass has room for kMaxTermStats");

  template <class R>
  CULOSS_HD static void stats(const Program&, const TermSpec& ts, const TermPixel<R>& px,
                              R* slots) {
    region_element_stats(ts.region, activate(ts.activation, px.soft, px.x), px.t, px.v, slots);
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double* coef,
                                      const double*) {
    const R p = activate(s.activation, px.soft, px.x);
    const R dl_dp =
        region_dloss_dp(s.region, narrow_coef<R>(coef[0]), narrow_coef<R>(coef[1]), p, px.t, px.v);
    return TermOut<R>{R(0), activation_chain(s.activation, p, dl_dp)};
  }

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
  template <class Step>
  CULOSS_HD static void finalize(const TermSpec& ts, int, Step& f) {
    const FinalizeBuffers& b = f.b;
    const RegionParams& rp = ts.region;
    const int64_t groups = rp.groups(), C = f.C, W = f.prog.coef_width;
    for (int64_t g = f.tid; g < groups; g += f.threads)
      region_finalize_group(rp, b.stats, g, b.class_coef_a, b.class_coef_b, b.group_loss,
                            b.group_weight);
    const double weight_total = reduce_region_groups(ts, rp, f);
    for (int64_t j = f.tid; j < f.N * C; j += f.threads) {
      const int64_t n = j / C, c = j % C, gn = rp.batch ? 0 : n;
      const double scale =
          ts.weight * region_group_scale(rp.reduction, b.group_weight[region_group_of(rp, gn, c)],
                                         weight_total, f.grad_scale);
      b.coefs[j * W + ts.coef_offset + 0] = scale * b.class_coef_a[gn * C + c];
      b.coefs[j * W + ts.coef_offset + 1] = scale * b.class_coef_b[gn * C + c];
    }
    if (rp.reduction == RED_NONE && b.none_out)  // culoss_compute_stats writes no outputs
      for (int64_t g = f.tid; g < groups; g += f.threads)
        store_as(b.none_out, b.none_dtype, g, b.group_weight[g] * b.group_loss[g]);
    f.sync();
  }
};

}  // namespace culoss

// What the element-wise terms share (derive with ElementwiseTerm<Term>): statistics that count
// targets per class (Σ m t, Σ m) and, distributed, sum the term's value; and a finalize that
// turns them into per-class weights, the MEAN divisor and the value. A term replaces the hooks
// it needs by declaring a static function of the same name; everything is resolved at compile
// time.
#pragma once

#include "kernels/common/terms.cuh"

namespace culoss {

template <class Term>
struct ElementwiseTerm : NoMaps {
  static constexpr bool kScaledCoefs = false;  // the element pass multiplies by grad_scale · scale
  static constexpr bool kElementValue = true;  // its value is summed in the element pass
  static constexpr int kNone = NONE_ELEMENTS;  // REDUCTION_NONE writes one value per element
  static constexpr bool kNeedsArgmax = false;
  static constexpr int kCountSlots = 2;  // Σ m t, Σ m
  static constexpr int kValueSlots = 1;  // distributed: the value
  static constexpr int kExportSlots = 0;

  // Planning (host): whether finalize needs the counts (per-element binary terms: for
  // BATCH_FREQUENCY, and for MEAN when labels can be ignored; dense targets count every
  // element). Distributed calls always keep them, and the value too.
  static bool needs_counts(const TermSpec& t, bool distributed, bool index_target) {
    return distributed || t.batch_frequency || (t.reduction == RED_MEAN && index_target);
  }
  // Count slots of a planned term (the region terms' depend on their ratio).
  static int count_slots(const TermSpec&) { return Term::kCountSlots; }

  // Counts of class c at a counted pixel.
  template <class R>
  CULOSS_HD static void counts(const TermPixel<R>& px, R* slots) {
    slots[0] = px.m * px.t;  // Σ m t
    slots[1] = px.m;         // Σ m
  }

  // The value's own sums (distributed): the element loss with class weight 1, the weights being
  // applied after the reduction.
  template <class R>
  CULOSS_HD static void value_stats(const TermSpec& ts, const TermPixel<R>& px, R* slots) {
    const double one[2] = {1.0, 1.0};
    slots[0] = Term::element(ts, px, one, one).loss;
  }

  // Statistics slots of class c at a counted pixel.
  template <class R>
  CULOSS_HD static void stats(const Program& prog, const TermSpec& ts, const TermPixel<R>& px,
                              R* slots) {
    Term::counts(px, slots);
    if (prog.value_in_stats) Term::value_stats(ts, px, slots + (ts.value_offset - ts.stat_offset));
  }

  // Whether class c counts at all (a term taking INCLUDE_BACKGROUND leaves class 0 out): an
  // excluded class has weight 0 and no part in the MEAN divisor.
  CULOSS_HD static bool counts_class(const TermSpec&, int64_t) { return true; }

  // ω⁺ and ω⁻ of class c: the class weight for both.
  CULOSS_HD static void class_weights(const TermSpec&, const double*, int64_t, double wc, double,
                                      double, double& pos, double& neg) {
    pos = wc;
    neg = wc;
  }
  // Class c's part of the MEAN divisor: its counted elements.
  CULOSS_HD static double divisor_part(int64_t, double, double, double msum) { return msum; }
  // Class c's part of the value from its summed value slots sum(k).
  template <class Sum>
  CULOSS_HD static double value_part(int64_t, double, double, double wc, Sum&& sum) {
    return wc * sum(0);
  }
  // Value added after the per-class parts.
  template <class Step>
  CULOSS_HD static double extra_value(const TermSpec&, Step&) {
    return 0.0;
  }
  // The coefficients of (image, class) j.
  template <class Step>
  CULOSS_HD static void coefs(const TermSpec&, const Step& f, int64_t j, double* coef) {
    coef[0] = f.b.class_coef_a[j % f.C];
  }

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
  // Step 3: per-class weights, then the divisor of MEAN (and, distributed, the value from its
  // statistics), then the coefficients of every (image, class).
  template <class Step>
  CULOSS_HD static void finalize(const TermSpec& ts, int i, Step& f) {
    const FinalizeBuffers& b = f.b;
    const int64_t C = f.C, W = f.prog.coef_width;
    const double* cw = ts.class_weight_offset >= 0 ? b.weights + ts.class_weight_offset : nullptr;
    const double* pw = ts.pos_weight_offset >= 0 ? b.weights + ts.pos_weight_offset : nullptr;
    const int64_t first = ts.stat_offset, value_slot = ts.value_offset;
    double divisor_part = 0.0, value_part = 0.0;
    for (int64_t c = f.tid; c < C; c += f.threads) {
      const double wc = cw ? cw[c] : 1.0;
      const double tsum = ts.stat_count > 0 ? f.class_total(c, first) : 0.0;      // Σ m t
      const double msum = ts.stat_count > 1 ? f.class_total(c, first + 1) : 0.0;  // Σ m
      double pos = 0.0, neg = 0.0;
      if (!Term::counts_class(ts, c)) {
        b.class_coef_a[c] = 0.0;
        b.class_coef_b[c] = 0.0;
        continue;
      }
      Term::class_weights(ts, pw, c, wc, tsum, msum, pos, neg);
      b.class_coef_a[c] = pos;
      b.class_coef_b[c] = neg;
      divisor_part += Term::divisor_part(c, wc, tsum, msum);
      if (f.prog.value_in_stats)
        value_part += Term::value_part(c, pos, neg, wc,
                                       [&](int k) { return f.class_total(c, value_slot + k); });
    }
    const double divisor = ts.needs_target_stats
                               ? f.total(divisor_part)
                               : (b.global ? b.global[f.prog.export_pixels] * static_cast<double>(C)
                                           : static_cast<double>(ts.static_count));
    double scale = ts.weight;
    if (ts.reduction == RED_MEAN) scale = divisor > 0.0 ? ts.weight / divisor : 0.0;
    if (f.prog.value_in_stats) {
      double value = f.total(value_part);
      value += Term::extra_value(ts, f);
      f.value += scale * value;
    }
    f.sync();
    for (int64_t j = f.tid; j < f.N * C; j += f.threads)
      Term::coefs(ts, f, j, b.coefs + j * W + ts.coef_offset);
    if (f.tid == 0) b.scale[i] = scale;
    f.sync();
  }
};

}  // namespace culoss

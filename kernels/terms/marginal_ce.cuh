// Cross-entropy tolerant of missing annotations (class 0 = background), at class c:
// ℓ = −v t̃ log p with t̃_0 = b t_0, where b = 0 when the pixel's argmax is a foreground class the
// image's annotation lacks (a constant for the gradient), and t̃_c = t_c otherwise.
// Statistics per (image, class): whether the class is annotated (Σ m [t ≥ 0.5]) and Σ m; the
// value distributed: the foreground terms, and the background term bucketed by the argmax
// class (charged where that class is annotated in the pixel's image). MEAN over pixels.
#pragma once

#include "kernels/terms/elementwise.cuh"

namespace culoss {

struct MarginalCeTerm : ElementwiseTerm<MarginalCeTerm> {
  static constexpr int kCoefs = 1;  // 1 when class c is annotated in image n
  static constexpr int kNone = NONE_PIXELS;
  static constexpr bool kNeedsArgmax = true;
  static constexpr int kValueSlots = 2;   // foreground terms, background by argmax class
  static constexpr int kExportSlots = 1;  // the background sum

  static bool needs_counts(const TermSpec&, bool, bool) { return true; }

  template <class R>
  CULOSS_HD static TermOut<R> value(const TermSpec& s, const ClassProb<R>& cp, R t_tilde, R v) {
    TermOut<R> o{R(0), R(0)};
    const R k = v * t_tilde;
    if (k == R(0)) return o;
    o.loss = -k * cp.logp;
    if (s.activation == ACT_SOFTMAX)
      o.d = -k;
    else
      o.d = cp.live ? -k / cp.p : R(0);
    return o;
  }

  template <class R>
  CULOSS_HD static TermOut<R> element(const TermSpec& s, const TermPixel<R>& px, const double*,
                                      const double* argmax_coef) {
    const bool charge_background = px.argmax == 0 || argmax_coef[0] != 0.0;
    const R t = px.c == 0 && !charge_background ? R(0) : px.t;
    return value(s, class_prob(s.activation, px.soft, px.x), t, px.v);
  }

  template <class R>
  CULOSS_HD static void counts(const TermPixel<R>& px, R* slots) {
    slots[0] = px.t >= R(0.5) ? px.m : R(0);  // the class is annotated
    slots[1] = px.m;
  }

  template <class R>
  CULOSS_HD static void value_stats(const TermSpec& ts, const TermPixel<R>& px, R* slots) {
    if (px.c >= 1) slots[0] = value(ts, class_prob(ts.activation, px.soft, px.x), px.t, px.v).loss;
    if (px.c == px.argmax)
      slots[1] = -px.v * px.t0 * class_prob(ts.activation, px.soft, px.x0).logp;
  }

  CULOSS_HD static double divisor_part(int64_t c, double, double, double msum) {
    return c == 0 ? msum : 0.0;  // pixels
  }
  template <class Sum>
  CULOSS_HD static double value_part(int64_t c, double, double, double, Sum&& sum) {
    return c >= 1 ? sum(0) : 0.0;
  }

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
  // The background is charged where the argmax class is annotated in the pixel's image: an
  // image-local sum, added up over the ranks like the rest.
  template <class Step>
  CULOSS_HD static double extra_value(const TermSpec& ts, Step& f) {
    const int64_t S = f.prog.stat_width, C = f.C;
    double background = 0.0;
    for (int64_t j = f.tid; j < f.N * C; j += f.threads)
      if (j % C == 0 || f.b.stats[j * S + ts.stat_offset] > 0.0)
        background += f.b.stats[j * S + ts.value_offset + 1];
    background = f.total(background);
    if (f.b.export_vec && f.tid == 0) f.b.export_vec[ts.export_offset] = background;
    return f.b.global ? f.b.global[ts.export_offset] : background;
  }

  template <class Step>
  CULOSS_HD static void coefs(const TermSpec& ts, const Step& f, int64_t j, double* coef) {
    coef[0] = f.b.stats[j * f.prog.stat_width + ts.stat_offset] > 0.0 ? 1.0 : 0.0;
  }
};

}  // namespace culoss

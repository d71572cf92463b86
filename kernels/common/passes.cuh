// The two element passes of every loss, one pixel at a time, shared by both backends:
//   statistics (step 2): each term's per-(image, class) slots, handed to a sink;
//   element    (step 4): each term's loss and derivative at every class of the pixel, summed
//                        into the gradient, the NONE outputs and the pixel's loss contribution.
// One thread owns all classes of a pixel, so writing the gradient over the input in place is
// safe: every logit of the pixel is read before (or exactly where) it is overwritten.
#pragma once

#include "kernels/common/layout.cuh"
#include "kernels/terms/all.cuh"

namespace culoss {

struct ElementArgs {
  Layout L;
  TargetView target;
  const float* pixel_weight;  // NULL: all 1
};

// Where the maps of class c of pixel q of image n are (TermPixel::map).
CULOSS_HD const double* element_maps(const Program& prog, const ElementArgs& a, int64_t n,
                                     int64_t c, int64_t q) {
  return prog.maps ? prog.maps + (n * a.L.C + c) * a.L.P + q : nullptr;
}

// What every term of a pixel shares: where its classes are, its label/mask, its softmax.
template <class R>
struct PixelState {
  int64_t base, stride;
  PixelTarget<R> px;
  PixelActivation<R> soft;
  int64_t argmax;  // lowest class with the largest input (marginal CE)
};

// With `activation` false the softmax is left out (s.soft is the identity's): for a pass whose
// terms read only the target, the weights and their coefficients.
template <class R, class T>
CULOSS_HD PixelState<R> pixel_state(const Program& prog, const ElementArgs& a, const T* x,
                                    int64_t n, int64_t q, bool activation = true) {
  PixelState<R> s;
  s.base = a.L.base(n, q);
  s.stride = a.L.class_stride();
  s.px = read_pixel<R>(a.target, a.pixel_weight, a.L.C, n * a.L.P + q);
  s.soft = pixel_activation<R>(activation && prog.any_softmax ? ACT_SOFTMAX : ACT_NONE, x, s.base,
                               s.stride, a.L.C);
  s.argmax = 0;
  if (prog.any_marginal) {  // softmax is monotone: the argmax of p is the argmax of the input
    R best = to_real<R>(x[s.base]);
    for (int64_t c = 1; c < a.L.C; ++c) {
      const R xc = to_real<R>(x[s.base + c * s.stride]);
      if (xc > best) {
        best = xc;
        s.argmax = c;
      }
    }
  }
  return s;
}

#if defined(__CUDACC__)
#pragma nv_exec_check_disable  // the sink is a device lambda when called from a kernel
#endif
// Calls sink(c, k, value) for every class c and statistics slot k of pixel q of image n, in a
// fixed order. With valid = false (a padding lane on the GPU) the values are zeros but the call
// sequence is the same, so warp-collective sinks stay converged.
template <class R, class T, class Sink>
CULOSS_HD void pixel_stats(const Program& prog, const ElementArgs& a, const T* x, int64_t n,
                           int64_t q, bool valid, Sink&& sink) {
  const int64_t C = a.L.C;
  PixelState<R> s{};
  R t0 = R(0), x0 = R(0);  // class 0 of the pixel (marginal CE's background sum)
  if (valid) {
    s.base = a.L.base(n, q);
    s.stride = a.L.class_stride();
    s.px = read_pixel<R>(a.target, a.pixel_weight, C, n * a.L.P + q);
    if (s.px.m == R(0)) valid = false;  // nothing of an ignored pixel is counted
  }
  if (valid && prog.stats_need_prediction) {
    s = pixel_state<R>(prog, a, x, n, q);
    if (prog.any_marginal) {
      t0 = target_value(a.target, s.px, 0, s.base);
      x0 = to_real<R>(x[s.base]);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    const int64_t e = valid ? s.base + c * s.stride : 0;
    const R t = valid ? target_value(a.target, s.px, c, e) : R(0);
    const R xc = valid && prog.stats_need_prediction ? to_real<R>(x[e]) : R(0);
    const TermPixel<R> tp{c,
                          C,
                          xc,
                          t,
                          s.px.v,
                          s.px.m,
                          s.soft,
                          s.argmax,
                          x0,
                          t0,
                          n * a.L.P + q,
                          valid ? element_maps(prog, a, n, c, q) : nullptr,
                          a.L.N * C * a.L.P};
    for (int i = 0; i < prog.count; ++i) {
      const TermSpec& ts = prog.term[i];
      if (ts.stat_count == 0) continue;
      R slots[kMaxTermStats] = {};
      if (valid)
        visit_term(ts.kind, [&](auto unit) { decltype(unit)::stats(prog, ts, tp, slots); });
      for (int k = 0; k < ts.stat_count; ++k) sink(c, ts.stat_offset + k, slots[k]);
    }
  }
}

// Output of the element pass for one pixel.
struct ElementOutputs {
  void* grad;  // NULL: no gradient
  DType grad_dtype;
  void* none_out;  // NONE reduction of an element-wise term: per element or per pixel
  DType none_dtype;
};

// Step 4 for pixel q of image n: writes dℓ/dx of its classes (when out.grad is set) and the NONE
// outputs, and returns its contribution Σ_t scale_t ℓ_t to the loss value. `coefs` is the
// coefficient table [N][C][coef_width]; `scale[t]` the value scale of term t (grad_scale is
// applied on top for the gradient; region coefficients carry theirs already).
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class R, class T, class G>
CULOSS_HD R pixel_element(const Program& prog, const ElementArgs& a, const T* x, G* grad,
                          void* none_out, DType none_dtype, const double* coefs,
                          const double* scale, double grad_scale, int64_t n, int64_t q) {
  const int64_t C = a.L.C, coef_width = prog.coef_width;
  const PixelState<R> s = pixel_state<R>(prog, a, x, n, q);
  const double* row = coefs + n * C * coef_width;
  const double* argmax_row = row + s.argmax * coef_width;
  const int64_t pix = n * a.L.P + q;
  if (s.px.v == R(0)) {  // ignored or zero-weight pixel: no loss, no gradient
    for (int64_t c = 0; c < C; ++c) {
      if (grad) grad[s.base + c * s.stride] = StoreAs<G>::from(R(0));
      if (prog.none_mode == NONE_ELEMENTS)
        store_as(none_out, none_dtype, s.base + c * s.stride, R(0));
    }
    if (prog.none_mode == NONE_PIXELS) store_as(none_out, none_dtype, pix, R(0));
    return R(0);
  }
  // Calls f(unit, i, spec, gradient factor, out) for every term i at class c, out being its loss
  // and derivative.
  auto each_term = [&](int64_t c, R xc, R t, auto&& f) {
    const TermPixel<R> tp{c,    C,    xc,   t,   s.px.v, s.px.m, s.soft, s.argmax, R(0),
                          R(0), pix,  element_maps(prog, a, n, c, q), a.L.N * C * a.L.P};
    for (int i = 0; i < prog.count; ++i) {
      const TermSpec& ts = prog.term[i];
      visit_term(ts.kind, [&](auto unit) {
        using Unit = decltype(unit);
        const R factor = Unit::kScaledCoefs ? R(1) : static_cast<R>(grad_scale * scale[i]);
        f(unit, i, ts, factor,
          Unit::element(ts, tp, row + c * coef_width + ts.coef_offset,
                        argmax_row + ts.coef_offset));
      });
    }
  };
  auto read = [&](int64_t c, int64_t e, R& xc, R& t) {
    xc = to_real<R>(x[e]);
    t = target_value(a.target, s.px, c, e);
  };
  // Softmax-style terms: Σ_c H_c first (H = Σ_t factor_t h_t), then dℓ/dx_k = H_k − p_k Σ H.
  R h_total = R(0);
  if (prog.any_softmax && grad) {
    for (int64_t c = 0; c < C; ++c) {
      R xc, t;
      read(c, s.base + c * s.stride, xc, t);
      each_term(c, xc, t, [&](auto, int, const TermSpec& ts, R factor, const TermOut<R>& o) {
        if (ts.activation == ACT_SOFTMAX) h_total += factor * o.d;
      });
    }
  }
  R pixel_loss = R(0), none_pixel = R(0);
  for (int64_t c = 0; c < C; ++c) {
    const int64_t e = s.base + c * s.stride;
    R xc, t;
    read(c, e, xc, t);
    R h = R(0), direct = R(0), none_element = R(0);
    each_term(c, xc, t, [&](auto unit, int i, const TermSpec& ts, R factor, const TermOut<R>& o) {
      if (decltype(unit)::kElementValue) {
        if (!prog.value_in_stats) pixel_loss += static_cast<R>(scale[i]) * o.loss;
        none_element += o.loss;
      }
      (ts.activation == ACT_SOFTMAX ? h : direct) += factor * o.d;
    });
    if (grad) {
      const R p = prog.any_softmax ? exp_r(xc - s.soft.max) * s.soft.inv_sum : R(0);
      grad[e] = StoreAs<G>::from(h - p * h_total + direct);
    }
    if (prog.none_mode == NONE_ELEMENTS) store_as(none_out, none_dtype, e, none_element);
    none_pixel += none_element;
  }
  if (prog.none_mode == NONE_PIXELS) store_as(none_out, none_dtype, pix, none_pixel);
  return pixel_loss;
}

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
// Calls f(unit, spec, element) for every term with geometry maps at every class c of pixel q of
// image n; `element` is what the term sees there, its maps included.
template <class R, class T, class F>
CULOSS_HD void each_map_term(const Program& prog, const ElementArgs& a, const T* x, int64_t n,
                             int64_t q, F&& f, bool activation = true) {
  const PixelState<R> s = pixel_state<R>(prog, a, x, n, q, activation);
  for (int64_t c = 0; c < a.L.C; ++c) {
    const int64_t e = s.base + c * s.stride;
    const TermPixel<R> tp{c,    a.L.C, to_real<R>(x[e]), target_value(a.target, s.px, c, e),
                          s.px.v, s.px.m, s.soft,           s.argmax,
                          R(0), R(0),  n * a.L.P + q, element_maps(prog, a, n, c, q),
                          a.L.N * a.L.C * a.L.P};
    for (int i = 0; i < prog.count; ++i)
      visit_term(prog.term[i].kind, [&](auto unit) {
        if (decltype(unit)::kMaps > 0) f(unit, prog.term[i], tp);
      });
  }
}

// Geometry seed (before step 2) at pixel q of image n: every map term writes its seeds (masks,
// probabilities) into its maps, at every pixel, ignored ones included.
template <class R, class T>
CULOSS_HD void pixel_seed(const Program& prog, const ElementArgs& a, const T* x, double* maps,
                          int64_t n, int64_t q) {
  const int64_t plane = a.L.N * a.L.C * a.L.P;
  each_map_term<R>(prog, a, x, n, q, [&](auto unit, const TermSpec& ts, const TermPixel<R>& tp) {
    using Unit = decltype(unit);
    R out[Unit::kMaps > 0 ? Unit::kMaps : 1];
    for (int k = 0; k < Unit::kMaps; ++k) out[k] = R(0);
    Unit::seed(ts, tp, out);
    double* at = maps + (n * a.L.C + tp.c) * a.L.P + q;
    for (int k = 0; k < Unit::kMaps; ++k)
      at[(ts.map_offset + k) * plane] = static_cast<double>(out[k]);
  });
}

// After step 3, for terms whose gradient flows back through their maps: the derivative of the loss
// with respect to the map (from the coefficients of (n, c)), written to the term's upstream map
// for the geometry backward.
template <class R, class T>
CULOSS_HD void pixel_upstream(const Program& prog, const ElementArgs& a, const T* x, double* maps,
                              const double* coefs, int64_t n, int64_t q) {
  const int64_t plane = a.L.N * a.L.C * a.L.P;
  each_map_term<R>(prog, a, x, n, q, [&](auto unit, const TermSpec& ts, const TermPixel<R>& tp) {
    using Unit = decltype(unit);
    if (!Unit::kMapGrad) return;
    const double* coef = coefs + (n * a.L.C + tp.c) * prog.coef_width + ts.coef_offset;
    maps[(ts.map_offset + Unit::kUpstreamMap) * plane + (n * a.L.C + tp.c) * a.L.P + q] =
        static_cast<double>(Unit::upstream(ts, tp, coef));
  }, /*activation=*/false);  // upstream() reads the target, v and coefficients only
}

// Target and weight validity for CHECK_TARGETS (the CPU scan and the CUDA check kernel).
CULOSS_HD bool label_is_valid(int64_t label, int64_t C, bool binary_mask, int64_t ignore_index) {
  if (label == ignore_index) return true;
  return label >= 0 && label < (binary_mask ? 2 : C);
}
CULOSS_HD bool dense_target_is_valid(double t) { return t >= 0.0 && t <= 1.0; }  // NaN fails
CULOSS_HD bool pixel_weight_is_valid(float w) { return w >= 0.0f && w <= 3.4028234663852886e38f; }

}  // namespace culoss

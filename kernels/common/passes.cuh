// The two element passes of every loss, one pixel at a time, shared by both backends:
//   statistics (step 2): each term's per-(image, class) slots, handed to a sink;
//   element    (step 4): each term's loss and derivative at every class of the pixel, summed
//                        into the gradient, the NONE outputs and the pixel's loss contribution.
// One thread owns all classes of a pixel, so writing the gradient over the input in place is
// safe: every logit of the pixel is read before (or exactly where) it is overwritten.
#pragma once

#include "kernels/common/layout.cuh"
#include "kernels/common/terms.cuh"

namespace culoss {

struct ElementArgs {
  Layout L;
  TargetView target;
  const float* pixel_weight;  // NULL: all 1
};

// What every term of a pixel shares: where its classes are, its label/mask, its softmax.
template <class R>
struct PixelState {
  int64_t base, stride;
  PixelTarget<R> px;
  PixelActivation<R> soft;
  int64_t argmax;  // lowest class with the largest input (marginal CE)
};

template <class R, class T>
CULOSS_HD PixelState<R> pixel_state(const Program& prog, const ElementArgs& a, const T* x,
                                    int64_t n, int64_t q) {
  PixelState<R> s;
  s.base = a.L.base(n, q);
  s.stride = a.L.class_stride();
  s.px = read_pixel<R>(a.target, a.pixel_weight, a.L.C, n * a.L.P + q);
  s.soft =
      pixel_activation<R>(prog.any_softmax ? ACT_SOFTMAX : ACT_NONE, x, s.base, s.stride, a.L.C);
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

// p of a term at one class: the softmax, the sigmoid, or the input itself.
template <class R>
CULOSS_HD R term_prob(int activation, const PixelActivation<R>& soft, R xc) {
  return activate(activation, soft, xc);
}

template <class R>
CULOSS_HD ClassProb<R> class_prob(int activation, const PixelActivation<R>& soft, R xc) {
  ClassProb<R> cp;
  if (activation == ACT_SOFTMAX) {
    cp.logp = xc - soft.max - soft.log_sum;
    cp.p = exp_r(xc - soft.max) * soft.inv_sum;
    cp.live = true;
    return cp;
  }
  const double xd = static_cast<double>(xc);  // bounds in double, as in binary_prob
  cp.live = xd >= kProbClamp && xd <= 1.0 - kProbClamp;
  if (xd < kProbClamp) {
    cp.p = R(kProbClamp);
    cp.logp = R(kLogProbClamp);
  } else if (xd > 1.0 - kProbClamp) {
    cp.p = R(1.0 - kProbClamp);
    cp.logp = R(kLog1mProbClamp);
  } else {
    cp.p = xc;
    cp.logp = log_r(xc);
  }
  return cp;
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
    for (int i = 0; i < prog.count; ++i) {
      const TermSpec& ts = prog.term[i];
      if (ts.stat_count == 0) continue;
      R vals[4] = {R(0), R(0), R(0), R(0)};
      if (valid) {
        if (ts.kind == TK_REGION) {
          region_element_stats(term_prob(ts.activation, s.soft, xc), t, s.px.v, ts.region.squared,
                               vals);
        } else {
          // counts: Σ m t and Σ m (marginal: Σ m [t ≥ 0.5], whether the class is annotated)
          vals[0] = ts.kind == TK_MARGINAL ? (t >= R(0.5) ? s.px.m : R(0)) : s.px.m * t;
          vals[1] = s.px.m;
          if (prog.value_in_stats) {  // the value's own sums, unweighted (ω after the reduction)
            const int v = ts.value_offset - ts.stat_offset;
            const R w = s.px.v;
            if (ts.kind == TK_BCE) {  // Σ −v t′ log p and Σ −v (1 − t′) log(1 − p): linear in ω±
              const BinaryProb<R> b = binary_prob(ts.activation, xc);
              const R eps = static_cast<R>(ts.label_smoothing);
              const R tt = t * (R(1) - eps) + eps / R(2);
              vals[v] = -w * tt * b.logp;
              vals[v + 1] = -w * (R(1) - tt) * b.logq;
            } else if (ts.kind == TK_FOCAL_BINARY) {
              vals[v] = focal_binary_element(ts, binary_prob(ts.activation, xc), t, w, R(1)).loss;
            } else if (ts.kind == TK_CE) {
              vals[v] = ce_element(ts, class_prob(ts.activation, s.soft, xc), t, w, R(1), C).loss;
            } else if (ts.kind == TK_FOCAL_SOFTMAX) {
              vals[v] =
                  focal_softmax_element(ts, class_prob(ts.activation, s.soft, xc), t, w, R(1)).loss;
            } else if (ts.kind == TK_MARGINAL) {  // foreground terms; background bucketed by argmax
              if (c >= 1)
                vals[v] = marginal_element(ts, class_prob(ts.activation, s.soft, xc), t, w).loss;
              if (c == s.argmax) vals[v + 1] = -w * t0 * class_prob(ts.activation, s.soft, x0).logp;
            }
          }
        }
      }
      for (int k = 0; k < ts.stat_count; ++k) sink(c, ts.stat_offset + k, vals[k]);
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

// One term at class c of a pixel.
template <class R>
CULOSS_HD TermOut<R> term_element(const TermSpec& ts, const PixelState<R>& s, const double* coef,
                                  const double* argmax_coef, int64_t c, int64_t C, R xc, R t) {
  const R v = s.px.v;
  switch (ts.kind) {
    case TK_REGION: {
      const R p = term_prob(ts.activation, s.soft, xc);
      return TermOut<R>{
          R(0), region_element_d(ts, p, t, v, narrow_coef<R>(coef[0]), narrow_coef<R>(coef[1]))};
    }
    case TK_BCE:
      return bce_element(ts, binary_prob(ts.activation, xc), t, v, narrow_coef<R>(coef[0]),
                         narrow_coef<R>(coef[1]));
    case TK_FOCAL_BINARY:
      return focal_binary_element(ts, binary_prob(ts.activation, xc), t, v,
                                  narrow_coef<R>(coef[0]));
    case TK_CE:
      return ce_element(ts, class_prob(ts.activation, s.soft, xc), t, v, narrow_coef<R>(coef[0]),
                        C);
    case TK_FOCAL_SOFTMAX:
      return focal_softmax_element(ts, class_prob(ts.activation, s.soft, xc), t, v,
                                   narrow_coef<R>(coef[0]));
    case TK_MARGINAL: {
      // b = 0 when the argmax is a foreground class absent from the image's annotation.
      const bool charge_background = s.argmax == 0 || argmax_coef[0] != 0.0;
      const R tt = c == 0 && !charge_background ? R(0) : t;
      return marginal_element(ts, class_prob(ts.activation, s.soft, xc), tt, v);
    }
  }
  return TermOut<R>{R(0), R(0)};
}

// Step 4 for pixel q of image n: writes dℓ/dx of its classes (when out.grad is set) and the NONE
// outputs, and returns its contribution Σ_t scale_t ℓ_t to the loss value. `coefs` is the
// coefficient table [N][C][coef_width]; `scale[t]` the value scale of term t (grad_scale is
// applied on top for the gradient; region coefficients carry theirs already).
template <class R, class T, class G>
CULOSS_HD R pixel_element(const Program& prog, const ElementArgs& a, const T* x, G* grad,
                          void* none_out, DType none_dtype, const double* coefs,
                          const double* scale, double grad_scale, int64_t n, int64_t q) {
  const int64_t C = a.L.C, W = prog.coef_width;
  const PixelState<R> s = pixel_state<R>(prog, a, x, n, q);
  const double* row = coefs + n * C * W;
  const double* argmax_row = row + s.argmax * W;
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
  auto factor = [&](const TermSpec& ts, int i) {  // gradient factor of a term
    return ts.kind == TK_REGION ? R(1) : static_cast<R>(grad_scale * scale[i]);
  };
  // Softmax-style terms: Σ_c H_c first (H = Σ_t factor_t h_t), then dℓ/dx_k = H_k − p_k Σ H.
  R h_total = R(0);
  if (prog.any_softmax && grad) {
    for (int64_t c = 0; c < C; ++c) {
      const int64_t e = s.base + c * s.stride;
      const R xc = to_real<R>(x[e]);
      const R t = target_value(a.target, s.px, c, e);
      for (int i = 0; i < prog.count; ++i) {
        const TermSpec& ts = prog.term[i];
        if (!is_softmax_style(ts)) continue;
        h_total += factor(ts, i) * term_element(ts, s, row + c * W + ts.coef_offset,
                                                argmax_row + ts.coef_offset, c, C, xc, t)
                                       .d;
      }
    }
  }
  R pixel_loss = R(0), none_pixel = R(0);
  for (int64_t c = 0; c < C; ++c) {
    const int64_t e = s.base + c * s.stride;
    const R xc = to_real<R>(x[e]);
    const R t = target_value(a.target, s.px, c, e);
    R h = R(0), direct = R(0), none_element = R(0);
    for (int i = 0; i < prog.count; ++i) {
      const TermSpec& ts = prog.term[i];
      const TermOut<R> o = term_element(ts, s, row + c * W + ts.coef_offset,
                                        argmax_row + ts.coef_offset, c, C, xc, t);
      if (ts.kind != TK_REGION) {
        if (!prog.value_in_stats) pixel_loss += static_cast<R>(scale[i]) * o.loss;
        none_element += o.loss;
      }
      if (is_softmax_style(ts))
        h += factor(ts, i) * o.d;
      else
        direct += factor(ts, i) * o.d;
    }
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

// Target and weight validity for CHECK_TARGETS (the CPU scan and the CUDA check kernel).
CULOSS_HD bool label_is_valid(int64_t label, int64_t C, bool binary_mask, int64_t ignore_index) {
  if (label == ignore_index) return true;
  return label >= 0 && label < (binary_mask ? 2 : C);
}
CULOSS_HD bool dense_target_is_valid(double t) { return t >= 0.0 && t <= 1.0; }  // NaN fails
CULOSS_HD bool pixel_weight_is_valid(float w) { return w >= 0.0f && w <= 3.4028234663852886e38f; }

}  // namespace culoss

// An independent, naive reference for the region losses of culoss (DICE, JACCARD, TVERSKY,
// FOCAL_TVERSKY, GENERALIZED_DICE, MCC; soft labels), written straight from docs/reference.md and
// docs/SEMANTICS.md.
//
// It deliberately shares nothing with the library (not even culoss.h): plain loops in long
// double over a row-major tensor.
//
// How the gradient is obtained (kept simple so that it is obviously right):
//   * the reduced objective (the MEAN/SUM value, or the sum of the NONE outputs) is a function
//     of the per-(image, class) raw sums I = Σ v p t, S1 = Σ v p, S2 = Σ v p², A = Σ v |p − t|,
//     while the target sums T1 = Σ v t, T2 = Σ v t² and V = Σ v are constants. With soft labels
//     I is not a raw sum but (S1 + T1 − A) / 2, as the contract states it. That function (batch pooling, micro pooling,
//     class weights, generalized-Dice weights, exclusions, the ratio, the reduction) is written
//     once, on a forward-mode dual number; seeding one raw sum at a time gives ∂obj/∂I_nc,
//     ∂obj/∂S1_nc, ∂obj/∂S2_nc exactly (3·N·C tiny evaluations);
//   * the chain rule to the elements is the textbook one:
//     ∂obj/∂p_e = v (∂I·t_e + ∂S1 + 2 p_e ∂S2 + ∂A·sign(p_e − t_e)), then the activation's Jacobian
//     (identity, p(1−p), or the softmax Jacobian p_c(δ_cj − p_j)).
//   * `reference_objective` evaluates the objective directly from a long double input, so tests
//     can check the analytic gradient against central finite differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace region_ref {

// Same meaning (and numbers) as the culoss enums, restated here so the reference needs no library header.
enum Kind { DICE = 1, JACCARD = 2, TVERSKY = 3, FOCAL_TVERSKY = 4, GENERALIZED_DICE = 5, MCC = 14 };
enum Activation { ACT_NONE = 0, ACT_SIGMOID = 1, ACT_SOFTMAX = 2 };
enum Reduction { RED_MEAN = 0, RED_SUM = 1, RED_NONE = 2 };
enum Average { MACRO = 0, MICRO = 1 };
enum WeightType { W_SQUARE = 0, W_SIMPLE = 1, W_UNIFORM = 2 };

struct Spec {
  int kind = DICE;
  std::vector<int64_t> shape;          // input shape, row-major
  int class_axis = 1;                  // negative counts from the end
  std::vector<double> input;           // logits or probabilities
  bool index_target = false;
  std::vector<double> dense_target;    // input's shape (dense)
  std::vector<int64_t> labels;         // input's shape without the class axis (index)
  std::vector<double> pixel_weight;    // empty: all 1; else input's shape without the class axis
  int activation = ACT_SOFTMAX;
  int reduction = RED_MEAN;
  int64_t ignore_index = -100;
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  bool squared = false;                // DICE / JACCARD only
  bool batch = false;
  bool include_background = true;
  std::vector<double> class_weights;   // empty: all 1
  double alpha = 0.5, beta = 0.5, gamma = 1.0;
  int weight_type = W_SQUARE;
  bool skip_empty = false;
  int average = MACRO;                 // ignored by GENERALIZED_DICE
  bool soft_label = false;             // I = (S1 + T1 − Σ v |p − t|) / 2 (not with squared)
  double grad_scale = 1.0;
};

struct Result {
  std::vector<double> values;          // MEAN/SUM: one value; NONE: the written outputs
  std::vector<int64_t> value_shape;    // {} for one value (MEAN/SUM, or MICRO/GD NONE with batch)
  std::vector<double> grad;            // grad_scale · d(objective)/d(input), input's shape
  double max_abs_grad_p = 0;           // max |grad_scale · d obj / d p| (a scale for tolerances)
};

namespace detail {

using LD = long double;

// Forward-mode dual number: value and one tangent.
struct Dual {
  LD v = 0, d = 0;
  Dual() = default;
  Dual(LD value, LD tangent = 0) : v(value), d(tangent) {}
};
inline Dual operator+(Dual a, Dual b) { return {a.v + b.v, a.d + b.d}; }
inline Dual operator-(Dual a, Dual b) { return {a.v - b.v, a.d - b.d}; }
inline Dual operator*(Dual a, Dual b) { return {a.v * b.v, a.d * b.v + a.v * b.d}; }
inline Dual operator/(Dual a, Dual b) {
  return {a.v / b.v, (a.d * b.v - a.v * b.d) / (b.v * b.v)};
}
inline Dual& operator+=(Dual& a, Dual b) { a = a + b; return a; }
inline Dual sqrt_dual(Dual a) {  // a.v > 0
  const LD r = std::sqrt(a.v);
  return {r, a.d / (2 * r)};
}
inline Dual pow_const(Dual b, LD g) {  // b.v > 0
  const LD pv = std::pow(b.v, g);
  return {pv, g * std::pow(b.v, g - 1) * b.d};
}

struct Layout {
  int64_t ndim = 0, axis = 0, N = 0, C = 0, pre = 1, inner = 1, outer = 0, P = 0;
};

inline Layout layout_of(const Spec& s) {
  Layout L;
  L.ndim = static_cast<int64_t>(s.shape.size());
  if (L.ndim < 2) throw std::invalid_argument("reference: input needs >= 2 dims");
  L.axis = s.class_axis < 0 ? s.class_axis + L.ndim : s.class_axis;
  if (L.axis < 1 || L.axis >= L.ndim) throw std::invalid_argument("reference: bad class axis");
  L.N = s.shape[0];
  L.C = s.shape[static_cast<size_t>(L.axis)];
  for (int64_t d = 1; d < L.axis; ++d) L.pre *= s.shape[static_cast<size_t>(d)];
  for (int64_t d = L.axis + 1; d < L.ndim; ++d) L.inner *= s.shape[static_cast<size_t>(d)];
  L.outer = L.N * L.pre;
  L.P = L.pre * L.inner;
  return L;
}

// Element (o, c, in) of the [outer, C, inner] view and its pixel (o, in).
inline int64_t elem(const Layout& L, int64_t o, int64_t c, int64_t in) {
  return (o * L.C + c) * L.inner + in;
}
inline int64_t pixel(const Layout& L, int64_t o, int64_t in) { return o * L.inner + in; }

// Probabilities p (input's shape) in long double.
inline std::vector<LD> activate(const Spec& s, const Layout& L, const std::vector<LD>& x) {
  std::vector<LD> p(x.size());
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in) {
      if (s.activation == ACT_SOFTMAX) {
        LD mx = -INFINITY;
        for (int64_t c = 0; c < L.C; ++c) mx = std::max(mx, x[elem(L, o, c, in)]);
        LD z = 0;
        for (int64_t c = 0; c < L.C; ++c) z += std::exp(x[elem(L, o, c, in)] - mx);
        for (int64_t c = 0; c < L.C; ++c)
          p[elem(L, o, c, in)] = std::exp(x[elem(L, o, c, in)] - mx) / z;
      } else {
        for (int64_t c = 0; c < L.C; ++c) {
          const LD xi = x[elem(L, o, c, in)];
          p[elem(L, o, c, in)] = s.activation == ACT_SIGMOID ? 1.0L / (1.0L + std::exp(-xi)) : xi;
        }
      }
    }
  return p;
}

// Dense target t (input's shape) and pixel factor v = m · pixel_weight (pixels).
inline void targets(const Spec& s, const Layout& L, std::vector<LD>& t, std::vector<LD>& v) {
  t.assign(static_cast<size_t>(L.outer * L.C * L.inner), 0);
  v.assign(static_cast<size_t>(L.outer * L.inner), 1);
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in) {
      const int64_t k = pixel(L, o, in);
      LD m = 1;
      if (s.index_target) {
        const int64_t lab = s.labels[static_cast<size_t>(k)];
        // One class: the labels are a binary mask (0 background, 1 foreground) whatever the
        // activation; otherwise class indices in [0, C).
        const bool binary = L.C == 1;
        bool valid = binary ? (lab == 0 || lab == 1) : (lab >= 0 && lab < L.C);
        if (lab == s.ignore_index) valid = false;  // ignore_index wins, even inside [0, C)
        if (!valid) {
          m = 0;  // ignored, or out of range with CHECK_TARGETS=0: counted as ignored
        } else if (binary) {
          t[static_cast<size_t>(elem(L, o, 0, in))] = static_cast<LD>(lab);
        } else {
          t[static_cast<size_t>(elem(L, o, lab, in))] = 1;
        }
      } else {
        for (int64_t c = 0; c < L.C; ++c)
          t[static_cast<size_t>(elem(L, o, c, in))] = s.dense_target[static_cast<size_t>(elem(L, o, c, in))];
      }
      const LD w = s.pixel_weight.empty() ? 1.0L : static_cast<LD>(s.pixel_weight[static_cast<size_t>(k)]);
      v[static_cast<size_t>(k)] = m * w;
    }
}

struct RawStats {  // per (n, c), index n*C + c
  std::vector<LD> I, S1, S2, T1, T2, A, V;
};

inline RawStats raw_stats(const Layout& L, const std::vector<LD>& p, const std::vector<LD>& t,
                          const std::vector<LD>& v) {
  RawStats r;
  const size_t nc = static_cast<size_t>(L.N * L.C);
  r.I.assign(nc, 0); r.S1.assign(nc, 0); r.S2.assign(nc, 0); r.T1.assign(nc, 0); r.T2.assign(nc, 0);
  r.A.assign(nc, 0); r.V.assign(nc, 0);
  for (int64_t o = 0; o < L.outer; ++o) {
    const int64_t n = o / L.pre;
    for (int64_t c = 0; c < L.C; ++c)
      for (int64_t in = 0; in < L.inner; ++in) {
        const size_t e = static_cast<size_t>(elem(L, o, c, in));
        const LD vv = v[static_cast<size_t>(pixel(L, o, in))];
        const size_t j = static_cast<size_t>(n * L.C + c);
        r.I[j] += vv * p[e] * t[e];
        r.S1[j] += vv * p[e];
        r.S2[j] += vv * p[e] * p[e];
        r.T1[j] += vv * t[e];
        r.T2[j] += vv * t[e] * t[e];
        r.A[j] += vv * std::fabs(p[e] - t[e]);
        r.V[j] += vv;
      }
  }
  return r;
}

// The per-pair (or per-image for MICRO) loss ℓ from its statistics.
// SPd/STd: denominator sums (squared for DICE/JACCARD with SQUARED_DENOMINATOR), SPl/STl: linear.
inline Dual ratio_loss(const Spec& s, Dual I, Dual SPd, Dual STd, Dual SPl, Dual STl, LD V) {
  const LD snr = s.smooth_nr, sdr = s.smooth_dr;
  if (s.kind == MCC) {  // the four counts, each + ε (= smooth_dr), straight from the definition
    const Dual eps(sdr);
    const Dual TP = I + eps, FP = SPl - I + eps, FN = STl - I + eps,
               TN = Dual(V) - SPl - STl + I + eps;
    const Dual f[4] = {TP + FP, TP + FN, TN + FP, TN + FN};
    // A factor of 0 (only with ε = 0: a class absent from target or prediction, or filling the
    // image) leaves the coefficient undefined: loss 0, gradient 0. Computed as above a zero
    // factor comes out as a rounding residue, so "zero" is within 1e-12 of the counted mass.
    for (const Dual& fk : f)
      if (!(fk.v > 1e-12L * (V + 1))) return Dual(0);
    return Dual(1) - (TP * TN - FP * FN) / sqrt_dual(f[0] * f[1] * f[2] * f[3]);
  }
  Dual den, num;
  switch (s.kind) {
    case DICE:
      num = Dual(2) * I + Dual(snr);
      den = SPd + STd + Dual(sdr);
      break;
    case JACCARD:
      num = I + Dual(snr);
      den = SPd + STd - I + Dual(sdr);
      break;
    default: {  // TVERSKY, FOCAL_TVERSKY: FP = SP − I, FN = ST − I (linear sums)
      const Dual FP = SPl - I, FN = STl - I;
      num = I + Dual(snr);
      den = I + Dual(s.alpha) * FP + Dual(s.beta) * FN + Dual(sdr);
    }
  }
  if (den.v == 0) return Dual(0);  // exactly-zero denominator: loss 0, gradient 0
  const Dual l = Dual(1) - num / den;
  if (s.kind != FOCAL_TVERSKY) return l;
  if (l.v <= 0) return Dual(0);  // max(1 − TI, 0)^γ; zero gradient where the base is 0
  return pow_const(l, s.gamma);
}

struct Outputs {
  std::vector<Dual> values;
  std::vector<int64_t> shape;
  Dual objective;
};

// Everything after the raw sums. I, S1, S2 carry tangents; T1, T2 are constants.
inline Outputs finalize(const Spec& s, const Layout& L, const std::vector<Dual>& I_raw,
                        const std::vector<Dual>& S1, const std::vector<Dual>& S2,
                        const std::vector<Dual>& A, const std::vector<LD>& T1,
                        const std::vector<LD>& T2, const std::vector<LD>& V) {
  const int64_t N = L.N, C = L.C;
  std::vector<Dual> I = I_raw;  // soft labels: I = (S1 + T1 − A) / 2 instead of Σ v p t
  if (s.soft_label)
    for (size_t j = 0; j < I.size(); ++j) I[j] = (S1[j] + Dual(T1[j]) - A[j]) / Dual(2);
  const int64_t G = s.batch ? 1 : N;  // groups: images, or one pooled batch
  auto omega = [&](int64_t c) -> LD {
    return s.class_weights.empty() ? 1.0L : static_cast<LD>(s.class_weights[static_cast<size_t>(c)]);
  };
  auto class_in = [&](int64_t c) { return s.include_background || c != 0; };
  // The images of group g: all of them (batch), or image g (a loop over one image only, so that
  // a batch of thousands of images stays linear per evaluation).
  auto group_begin = [&](int64_t g) { return s.batch ? int64_t(0) : g; };
  auto group_end = [&](int64_t g) { return s.batch ? N : g + 1; };
  const bool sq = s.squared && (s.kind == DICE || s.kind == JACCARD);

  Outputs out;
  if (s.kind != GENERALIZED_DICE && s.average == MACRO) {
    if (s.batch) out.shape = {C}; else out.shape = {N, C};
    out.values.assign(static_cast<size_t>(G * C), Dual(0));
    Dual wsum_l(0);
    LD wsum = 0;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t c = 0; c < C; ++c) {
        Dual Ig, S1g, S2g;
        LD T1g = 0, T2g = 0, Vg = 0;
        for (int64_t n = group_begin(g); n < group_end(g); ++n) {
          const size_t j = static_cast<size_t>(n * C + c);
          Ig += I[j]; S1g += S1[j]; S2g += S2[j]; T1g += T1[j]; T2g += T2[j]; Vg += V[j];
        }
        const bool included = class_in(c) && !(s.skip_empty && T1g == 0);
        if (!included) continue;
        const Dual l = ratio_loss(s, Ig, sq ? S2g : S1g, Dual(sq ? T2g : T1g), S1g, Dual(T1g), Vg);
        const Dual wl = Dual(omega(c)) * l;
        out.values[static_cast<size_t>(g * C + c)] = wl;
        wsum_l += wl;
        wsum += omega(c);
      }
    if (s.reduction == RED_MEAN) out.objective = wsum == 0 ? Dual(0) : wsum_l / Dual(wsum);
    else out.objective = wsum_l;  // SUM, and NONE (sum of the written values)
  } else {
    // One ℓ per group: MICRO (classes pooled with their weights) or generalized Dice.
    if (s.batch) out.shape = {}; else out.shape = {N};
    out.values.assign(static_cast<size_t>(G), Dual(0));
    Dual total(0);
    int64_t count = 0;
    for (int64_t g = 0; g < G; ++g) {
      std::vector<Dual> Ic(static_cast<size_t>(C)), S1c(static_cast<size_t>(C)), S2c(static_cast<size_t>(C));
      std::vector<LD> T1c(static_cast<size_t>(C), 0), T2c(static_cast<size_t>(C), 0);
      std::vector<LD> Vc(static_cast<size_t>(C), 0);
      for (int64_t n = group_begin(g); n < group_end(g); ++n) {
        for (int64_t c = 0; c < C; ++c) {
          const size_t j = static_cast<size_t>(n * C + c);
          Ic[static_cast<size_t>(c)] += I[j]; S1c[static_cast<size_t>(c)] += S1[j];
          S2c[static_cast<size_t>(c)] += S2[j];
          T1c[static_cast<size_t>(c)] += T1[j]; T2c[static_cast<size_t>(c)] += T2[j];
          Vc[static_cast<size_t>(c)] += V[j];
        }
      }
      LD empty_sum = 0;  // Σ_c ω_c ST_c over included classes
      for (int64_t c = 0; c < C; ++c)
        if (class_in(c)) empty_sum += omega(c) * T1c[static_cast<size_t>(c)];
      const bool included = !(s.skip_empty && empty_sum == 0);
      if (!included) continue;
      Dual l;
      if (s.kind == GENERALIZED_DICE) {
        auto base_of = [&](LD st) -> LD {
          if (s.weight_type == W_SQUARE) return 1.0L / (st * st);
          if (s.weight_type == W_SIMPLE) return 1.0L / st;
          return 1.0L;
        };
        LD largest = 0;
        bool any = false;
        for (int64_t c = 0; c < C; ++c) {
          if (!class_in(c) || T1c[static_cast<size_t>(c)] == 0) continue;
          const LD b = base_of(T1c[static_cast<size_t>(c)]);
          if (std::isfinite(b)) { largest = any ? std::max(largest, b) : b; any = true; }
        }
        if (!any) largest = 1;
        Dual num(0), den(0);
        for (int64_t c = 0; c < C; ++c) {
          if (!class_in(c)) continue;
          const LD st = T1c[static_cast<size_t>(c)];
          LD b = st == 0 ? largest : base_of(st);
          if (!std::isfinite(b)) b = largest;
          const LD w = b * omega(c);
          num += Dual(w) * Ic[static_cast<size_t>(c)];
          den += Dual(w) * (S1c[static_cast<size_t>(c)] + Dual(st));
        }
        num = Dual(2) * num + Dual(static_cast<LD>(s.smooth_nr));
        den = den + Dual(static_cast<LD>(s.smooth_dr));
        l = den.v == 0 ? Dual(0) : Dual(1) - num / den;
      } else {
        Dual Ig(0), S1g(0), S2g(0);
        LD T1g = 0, T2g = 0, Vg = 0;
        for (int64_t c = 0; c < C; ++c) {
          if (!class_in(c)) continue;
          const size_t cc = static_cast<size_t>(c);
          const Dual w(omega(c));
          Ig += w * Ic[cc]; S1g += w * S1c[cc]; S2g += w * S2c[cc];
          T1g += omega(c) * T1c[cc]; T2g += omega(c) * T2c[cc]; Vg += omega(c) * Vc[cc];
        }
        l = ratio_loss(s, Ig, sq ? S2g : S1g, Dual(sq ? T2g : T1g), S1g, Dual(T1g), Vg);
      }
      out.values[static_cast<size_t>(g)] = l;
      total += l;
      ++count;
    }
    if (s.reduction == RED_MEAN) out.objective = count == 0 ? Dual(0) : total / Dual(static_cast<LD>(count));
    else out.objective = total;
  }
  if (s.reduction != RED_NONE) {
    out.values = {out.objective};
    out.shape = {};
  }
  return out;
}

inline void check_spec(const Spec& s, const Layout& L) {
  if (s.activation == ACT_SOFTMAX && L.C == 1)  // constant: the library refuses it
    throw std::invalid_argument("reference: SOFTMAX over one class");
  if (s.soft_label && s.squared)  // refused by the library
    throw std::invalid_argument("reference: soft labels with squared sums");
  const size_t ne = static_cast<size_t>(L.outer * L.C * L.inner);
  const size_t np = static_cast<size_t>(L.outer * L.inner);
  if (s.input.size() != ne) throw std::invalid_argument("reference: input size");
  if (s.index_target ? s.labels.size() != np : s.dense_target.size() != ne)
    throw std::invalid_argument("reference: target size");
  if (!s.pixel_weight.empty() && s.pixel_weight.size() != np)
    throw std::invalid_argument("reference: pixel_weight size");
  if (!s.class_weights.empty() && static_cast<int64_t>(s.class_weights.size()) != L.C)
    throw std::invalid_argument("reference: class_weights size");
}

inline std::vector<Dual> as_dual(const std::vector<LD>& a) {
  std::vector<Dual> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = Dual(a[i]);
  return r;
}

}  // namespace detail

// The objective (MEAN/SUM value, or the sum of the NONE outputs), not scaled, for an input given
// in long double; for finite-difference checks of the reference's own gradient.
inline long double reference_objective(const Spec& s, const std::vector<long double>& x) {
  using namespace detail;
  const Layout L = layout_of(s);
  std::vector<LD> t, v;
  targets(s, L, t, v);
  const RawStats r = raw_stats(L, activate(s, L, x), t, v);
  return finalize(s, L, as_dual(r.I), as_dual(r.S1), as_dual(r.S2), as_dual(r.A), r.T1, r.T2, r.V)
      .objective.v;
}

inline Result reference(const Spec& s) {
  using namespace detail;
  const Layout L = layout_of(s);
  check_spec(s, L);
  std::vector<LD> x(s.input.begin(), s.input.end());
  const std::vector<LD> p = activate(s, L, x);
  std::vector<LD> t, v;
  targets(s, L, t, v);
  const RawStats r = raw_stats(L, p, t, v);
  const std::vector<Dual> I0 = as_dual(r.I), S10 = as_dual(r.S1), S20 = as_dual(r.S2);
  const std::vector<Dual> A0 = as_dual(r.A);

  Result res;
  const Outputs out = finalize(s, L, I0, S10, S20, A0, r.T1, r.T2, r.V);
  for (const Dual& d : out.values) res.values.push_back(static_cast<double>(d.v));
  res.value_shape = out.shape;

  // ∂objective/∂(raw sums), one seed at a time.
  const size_t nc = static_cast<size_t>(L.N * L.C);
  std::vector<LD> gI(nc), gS1(nc), gS2(nc), gA(nc);
  for (size_t j = 0; j < nc; ++j) {
    std::vector<Dual> a = I0;
    a[j].d = 1;
    gI[j] = finalize(s, L, a, S10, S20, A0, r.T1, r.T2, r.V).objective.d;
    a = S10;
    a[j].d = 1;
    gS1[j] = finalize(s, L, I0, a, S20, A0, r.T1, r.T2, r.V).objective.d;
    a = S20;
    a[j].d = 1;
    gS2[j] = finalize(s, L, I0, S10, a, A0, r.T1, r.T2, r.V).objective.d;
    a = A0;
    a[j].d = 1;
    gA[j] = finalize(s, L, I0, S10, S20, a, r.T1, r.T2, r.V).objective.d;
  }

  // Chain rule to p, then to the input through the activation.
  const LD scale = s.grad_scale;
  std::vector<LD> gp(p.size(), 0);
  for (int64_t o = 0; o < L.outer; ++o) {
    const int64_t n = o / L.pre;
    for (int64_t c = 0; c < L.C; ++c)
      for (int64_t in = 0; in < L.inner; ++in) {
        const size_t e = static_cast<size_t>(elem(L, o, c, in));
        const size_t j = static_cast<size_t>(n * L.C + c);
        const LD vv = v[static_cast<size_t>(pixel(L, o, in))];
        // d|p − t|/dp = sign(p − t), 0 at p = t (the contract's convention).
        const LD sgn = p[e] > t[e] ? 1 : (p[e] < t[e] ? -1 : 0);
        gp[e] = scale * vv * (gI[j] * t[e] + gS1[j] + 2 * p[e] * gS2[j] + gA[j] * sgn);
        res.max_abs_grad_p = std::max(res.max_abs_grad_p, static_cast<double>(std::fabs(gp[e])));
      }
  }
  res.grad.assign(p.size(), 0);
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in) {
      LD dot = 0;
      if (s.activation == ACT_SOFTMAX)
        for (int64_t c = 0; c < L.C; ++c) {
          const size_t e = static_cast<size_t>(elem(L, o, c, in));
          dot += p[e] * gp[e];
        }
      for (int64_t c = 0; c < L.C; ++c) {
        const size_t e = static_cast<size_t>(elem(L, o, c, in));
        LD g = gp[e];
        if (s.activation == ACT_SIGMOID) g = gp[e] * p[e] * (1 - p[e]);
        else if (s.activation == ACT_SOFTMAX) g = p[e] * (gp[e] - dot);
        res.grad[e] = static_cast<double>(g);
      }
    }
  return res;
}

}  // namespace region_ref

// An independent, naive reference for the Lovász losses of culoss (LOVASZ_HINGE and
// LOVASZ_SOFTMAX), written from docs/reference.md and the "Lovász losses" section of
// docs/SEMANTICS.md.
//
// It shares nothing with the library (not even culoss.h): plain loops in long double over a
// row-major tensor, and its own merge sort.
//
//   * A problem is one image (per_image) or the whole batch. The hinge has one binary problem per
//     (problem, channel); the softmax one sorted list per (problem, class).
//   * An item is an element of a counted pixel: not an ignored / out-of-range label, and a pixel
//     weight > 0 when a weight map is given (the weight acts as a 0/1 mask).
//   * Its label is binarized: dense t >= 0.5; index targets give the one-hot of the class
//     (softmax, C >= 2) or the 0/1 mask itself (C = 1: the hinge, or softmax with ACT_NONE).
//   * Hinge: e = 1 − x·s, s = 2·fg − 1. Softmax: p = softmax(x) over the classes (or x itself
//     with ACT_NONE), e = |fg − p| (written fg ? 1 − p : p, its value for p in [0, 1]).
//   * Items sorted by e descending, ties by element index. gts = number of positives,
//     J_k = 1 − (gts − cum_t)/(gts + cum_f), g_k = J_k − J_{k−1} (J_0 = 0). The list's loss is
//     Σ relu(e_k) g_k (hinge) or Σ e_k g_k (softmax).
//   * Hinge: MEAN = mean over the problems·C lists, SUM = their sum, NONE = each list's loss,
//     shaped (N, C) per image or (C) pooled.
//     Softmax: a problem's loss is the mean over the classes in CLASSES (ALL: every class;
//     PRESENT: classes with a positive item in the problem) of the list losses, 0 when that set
//     is empty; MEAN = mean over problems (a problem without any counted pixel counts as 0),
//     SUM = their sum, NONE = one value per problem ((N) per image, one value pooled).
//   * The gradient is that of the reduced value (NONE: of the sum of the outputs), times
//     grad_scale: with the order fixed, the objective is linear in the errors, so
//     ∂obj/∂e_item = W_list · g_rank · [e > 0 for the hinge], then ∂e/∂x = −s (hinge) or
//     ∂e/∂p = fg ? −1 : +1 (softmax), then the softmax Jacobian p_j (G_j − Σ_c p_c G_c).
//   * `objective` evaluates the reduced value straight from a long double input, for finite
//     differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace lovasz_ref {

// Same meaning (and numbers) as the culoss enums, restated so that no library header is needed.
enum Kind { HINGE = 11, SOFTMAX = 12 };
enum Activation { ACT_NONE = 0, ACT_SOFTMAX = 2 };
enum Reduction { RED_MEAN = 0, RED_SUM = 1, RED_NONE = 2 };

struct Spec {
  int kind = HINGE;
  std::vector<int64_t> shape;  // input shape, row-major
  int class_axis = 1;          // negative counts from the end
  int activation = ACT_SOFTMAX;  // softmax only (the hinge always takes logits)
  std::vector<double> input;
  // Targets: dense (input's shape) when index_target is false, else labels (input's shape without
  // the class axis).
  bool index_target = false;
  std::vector<double> dense_target;
  std::vector<int64_t> labels;
  int64_t ignore_index = -100;
  std::vector<double> pixel_weight;  // empty: no weight map
  bool per_image = false;
  bool classes_all = false;  // softmax: ALL (true) or PRESENT (false)
  int reduction = RED_MEAN;
  double grad_scale = 1.0;
};

// One element of the input, as the reference sees it.
struct Item {
  bool counted = false;
  bool fg = false;
  long double e = 0;   // error
  long double p = 0;   // softmax: probability; hinge: the logit
  int64_t list = -1;   // index of its sorted list: problem * C + c
  int64_t pixel = -1;  // flat pixel index (input's shape without the class axis)
};

struct Result {
  std::vector<double> values;  // one value (MEAN/SUM) or the NONE outputs
  std::vector<double> grad;    // input's shape
  std::vector<Item> items;     // input's shape
  std::vector<long double> list_loss;  // per list: Σ f(e_k) g_k
  std::vector<int64_t> list_positives;  // per list: gts
  long double objective = 0;   // the reduced value (NONE: the sum of the outputs)
};

struct Geometry {
  int64_t N = 0, C = 0, pre = 1, inner = 1, P = 0, numel = 0;
  // Element of (image n, pixel q of the image, class c); the pixel q runs over the non-class axes
  // after the batch axis, row-major.
  int64_t element(int64_t n, int64_t q, int64_t c) const {
    const int64_t a = q / inner, b = q % inner;
    return ((n * pre + a) * C + c) * inner + b;
  }
  int64_t pixel(int64_t n, int64_t q) const { return n * P + q; }
};

inline Geometry geometry(const Spec& s) {
  const int nd = static_cast<int>(s.shape.size());
  if (nd < 2) throw std::invalid_argument("lovasz_ref: input needs 2 or more dimensions");
  const int axis = s.class_axis < 0 ? nd + s.class_axis : s.class_axis;
  if (axis < 1 || axis >= nd) throw std::invalid_argument("lovasz_ref: bad class axis");
  Geometry g;
  g.N = s.shape[0];
  g.C = s.shape[static_cast<size_t>(axis)];
  for (int d = 1; d < axis; ++d) g.pre *= s.shape[static_cast<size_t>(d)];
  for (int d = axis + 1; d < nd; ++d) g.inner *= s.shape[static_cast<size_t>(d)];
  g.P = g.pre * g.inner;
  g.numel = g.N * g.C * g.P;
  return g;
}

// Output count of the NONE reduction.
inline int64_t none_count(const Spec& s) {
  const Geometry g = geometry(s);
  const int64_t problems = s.per_image ? g.N : 1;
  return s.kind == HINGE ? problems * g.C : problems;
}

namespace detail {

// Does item a come before item b: larger error first, then smaller element index.
inline bool before(const std::vector<Item>& items, int64_t a, int64_t b) {
  const long double ea = items[static_cast<size_t>(a)].e, eb = items[static_cast<size_t>(b)].e;
  if (ea != eb) return ea > eb;
  return a < b;
}

// Top-down merge sort of element indices (stable, O(n log n)).
inline void merge_sort(std::vector<int64_t>& v, std::vector<int64_t>& tmp, size_t lo, size_t hi,
                       const std::vector<Item>& items) {
  if (hi - lo < 2) return;
  const size_t mid = lo + (hi - lo) / 2;
  merge_sort(v, tmp, lo, mid, items);
  merge_sort(v, tmp, mid, hi, items);
  size_t i = lo, j = mid, k = lo;
  while (i < mid && j < hi) tmp[k++] = before(items, v[j], v[i]) ? v[j++] : v[i++];
  while (i < mid) tmp[k++] = v[i++];
  while (j < hi) tmp[k++] = v[j++];
  for (size_t t = lo; t < hi; ++t) v[t] = tmp[t];
}

inline long double jaccard(long double gts, long double cum_t, long double cum_f) {
  const long double den = gts + cum_f;
  if (den == 0) return 0;  // the empty prefix
  return 1 - (gts - cum_t) / den;
}

inline Result evaluate(const Spec& s, const std::vector<long double>& x, bool want_grad) {
  const Geometry g = geometry(s);
  if (static_cast<int64_t>(x.size()) != g.numel)
    throw std::invalid_argument("lovasz_ref: input size does not match the shape");
  const bool hinge = s.kind == HINGE;
  if (!hinge && s.activation == ACT_SOFTMAX && g.C == 1)  // constant: the library refuses it
    throw std::invalid_argument("lovasz_ref: SOFTMAX over one class");
  const int64_t problems = s.per_image ? g.N : 1;
  const int64_t lists = problems * g.C;

  Result r;
  r.items.assign(static_cast<size_t>(g.numel), Item{});

  // Items.
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t q = 0; q < g.P; ++q) {
      const int64_t pix = g.pixel(n, q);
      bool counted = true;
      int64_t label = -1;
      if (s.index_target) {
        label = s.labels[static_cast<size_t>(pix)];
        const int64_t limit = hinge || g.C == 1 ? 2 : g.C;  // C = 1: a 0/1 mask
        if (label == s.ignore_index || label < 0 || label >= limit) counted = false;
      }
      if (!s.pixel_weight.empty() && !(s.pixel_weight[static_cast<size_t>(pix)] > 0.0))
        counted = false;
      // Softmax over the classes of this pixel (with the maximum subtracted).
      std::vector<long double> p(static_cast<size_t>(g.C));
      if (!hinge) {
        if (s.activation == ACT_SOFTMAX) {
          long double m = x[static_cast<size_t>(g.element(n, q, 0))];
          for (int64_t c = 1; c < g.C; ++c) {
            const long double v = x[static_cast<size_t>(g.element(n, q, c))];
            if (v > m) m = v;
          }
          long double sum = 0;
          for (int64_t c = 0; c < g.C; ++c)
            sum += std::exp(x[static_cast<size_t>(g.element(n, q, c))] - m);
          for (int64_t c = 0; c < g.C; ++c)
            p[static_cast<size_t>(c)] = std::exp(x[static_cast<size_t>(g.element(n, q, c))] - m) / sum;
        } else {
          for (int64_t c = 0; c < g.C; ++c) p[static_cast<size_t>(c)] = x[static_cast<size_t>(g.element(n, q, c))];
        }
      }
      for (int64_t c = 0; c < g.C; ++c) {
        const int64_t el = g.element(n, q, c);
        Item& it = r.items[static_cast<size_t>(el)];
        it.counted = counted;
        it.pixel = pix;
        it.list = (s.per_image ? n : 0) * g.C + c;
        if (s.index_target) {
          it.fg = counted && (hinge || g.C == 1 ? label == 1 : label == c);
        } else {
          it.fg = s.dense_target[static_cast<size_t>(el)] >= 0.5;
        }
        if (hinge) {
          const long double xs = x[static_cast<size_t>(el)];
          it.p = xs;
          it.e = 1 - xs * (it.fg ? 1 : -1);
        } else {
          it.p = p[static_cast<size_t>(c)];
          it.e = it.fg ? 1 - it.p : it.p;
        }
      }
    }

  // Lists: members in element order, then sorted.
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(lists));
  for (int64_t el = 0; el < g.numel; ++el)
    if (r.items[static_cast<size_t>(el)].counted)
      members[static_cast<size_t>(r.items[static_cast<size_t>(el)].list)].push_back(el);
  r.list_loss.assign(static_cast<size_t>(lists), 0);
  r.list_positives.assign(static_cast<size_t>(lists), 0);
  std::vector<long double> gk(static_cast<size_t>(g.numel), 0);  // g at the item's rank
  for (int64_t l = 0; l < lists; ++l) {
    std::vector<int64_t>& v = members[static_cast<size_t>(l)];
    std::vector<int64_t> tmp(v.size());
    merge_sort(v, tmp, 0, v.size(), r.items);
    int64_t gts = 0;
    for (int64_t el : v) gts += r.items[static_cast<size_t>(el)].fg ? 1 : 0;
    r.list_positives[static_cast<size_t>(l)] = gts;
    long double cum_t = 0, cum_f = 0, prev = 0, loss = 0;
    for (int64_t el : v) {
      const Item& it = r.items[static_cast<size_t>(el)];
      if (it.fg) cum_t += 1; else cum_f += 1;
      const long double J = jaccard(static_cast<long double>(gts), cum_t, cum_f);
      const long double gg = J - prev;
      prev = J;
      gk[static_cast<size_t>(el)] = gg;
      const long double f = hinge ? (it.e > 0 ? it.e : 0) : it.e;
      loss += f * gg;
    }
    r.list_loss[static_cast<size_t>(l)] = loss;
  }

  // Weight of each list in the objective; the outputs.
  std::vector<long double> weight(static_cast<size_t>(lists), 0);
  std::vector<long double> none_out;
  if (hinge) {
    for (int64_t l = 0; l < lists; ++l)
      weight[static_cast<size_t>(l)] = s.reduction == RED_MEAN ? 1.0L / static_cast<long double>(lists) : 1.0L;
    if (s.reduction == RED_NONE) none_out.assign(r.list_loss.begin(), r.list_loss.end());
  } else {
    none_out.assign(static_cast<size_t>(problems), 0);
    for (int64_t pr = 0; pr < problems; ++pr) {
      int64_t k = 0;
      for (int64_t c = 0; c < g.C; ++c)
        if (s.classes_all || r.list_positives[static_cast<size_t>(pr * g.C + c)] > 0) ++k;
      long double value = 0;
      for (int64_t c = 0; c < g.C; ++c) {
        const int64_t l = pr * g.C + c;
        const bool in = s.classes_all || r.list_positives[static_cast<size_t>(l)] > 0;
        const long double w = in ? 1.0L / static_cast<long double>(k) : 0.0L;
        value += w * r.list_loss[static_cast<size_t>(l)];
        weight[static_cast<size_t>(l)] =
            s.reduction == RED_MEAN ? w / static_cast<long double>(problems) : w;
      }
      none_out[static_cast<size_t>(pr)] = value;
    }
  }
  long double obj = 0;
  for (int64_t l = 0; l < lists; ++l) obj += weight[static_cast<size_t>(l)] * r.list_loss[static_cast<size_t>(l)];
  r.objective = obj;
  if (s.reduction == RED_NONE) {
    for (long double v : none_out) r.values.push_back(static_cast<double>(v));
  } else {
    r.values.push_back(static_cast<double>(obj));
  }
  if (!want_grad) return r;

  // Gradient.
  const long double scale = s.grad_scale;
  std::vector<long double> G(static_cast<size_t>(g.numel), 0);  // ∂obj/∂(p or x) · scale
  for (int64_t el = 0; el < g.numel; ++el) {
    const Item& it = r.items[static_cast<size_t>(el)];
    if (!it.counted) continue;
    const long double w = weight[static_cast<size_t>(it.list)] * gk[static_cast<size_t>(el)] * scale;
    if (hinge)
      G[static_cast<size_t>(el)] = it.e > 0 ? -(it.fg ? 1.0L : -1.0L) * w : 0.0L;
    else
      G[static_cast<size_t>(el)] = (it.fg ? -1.0L : 1.0L) * w;
  }
  r.grad.assign(static_cast<size_t>(g.numel), 0.0);
  if (hinge || s.activation == ACT_NONE) {
    for (int64_t el = 0; el < g.numel; ++el) r.grad[static_cast<size_t>(el)] = static_cast<double>(G[static_cast<size_t>(el)]);
    return r;
  }
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t q = 0; q < g.P; ++q) {
      long double dot = 0;
      for (int64_t c = 0; c < g.C; ++c) {
        const int64_t el = g.element(n, q, c);
        dot += r.items[static_cast<size_t>(el)].p * G[static_cast<size_t>(el)];
      }
      for (int64_t c = 0; c < g.C; ++c) {
        const int64_t el = g.element(n, q, c);
        r.grad[static_cast<size_t>(el)] =
            static_cast<double>(r.items[static_cast<size_t>(el)].p * (G[static_cast<size_t>(el)] - dot));
      }
    }
  return r;
}

}  // namespace detail

inline Result reference(const Spec& s) {
  std::vector<long double> x(s.input.begin(), s.input.end());
  return detail::evaluate(s, x, true);
}

// The reduced value (NONE: the sum of the outputs) at input x, without grad_scale.
inline long double objective(const Spec& s, const std::vector<long double>& x) {
  return detail::evaluate(s, x, false).objective;
}

// Smallest gap between neighbouring errors in any sorted list, and smallest |e| of a hinge item
// (how far the input is from a tie or a kink: finite differences need steps well below both).
inline long double min_gap(const Spec& s, const Result& r) {
  const Geometry g = geometry(s);
  const int64_t lists = (s.per_image ? g.N : 1) * g.C;
  std::vector<std::vector<long double>> errs(static_cast<size_t>(lists));
  long double gap = 1e300L;
  for (const Item& it : r.items)
    if (it.counted) {
      errs[static_cast<size_t>(it.list)].push_back(it.e);
      if (s.kind == HINGE) gap = std::min(gap, std::fabs(it.e));
    }
  for (auto& v : errs)
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t j = i + 1; j < v.size(); ++j) gap = std::min(gap, std::fabs(v[i] - v[j]));
  return gap;
}

}  // namespace lovasz_ref

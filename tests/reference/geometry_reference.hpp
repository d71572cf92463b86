// An independent, naive reference for the geometry losses of culoss (HAUSDORFF_DT, BOUNDARY,
// CLDICE), written from docs/reference.md. It shares nothing with the library: plain loops in
// long double over a row-major tensor, distances by brute force (every pixel against every
// other: O(P²)), the soft skeleton by direct min/max over neighbourhoods.
//
// Only values: tests obtain the gradient by central differences of `objective` (the reduced loss
// as a function of the input, distances and thresholded masks held at the unperturbed input, as
// the contract makes them constants for the gradient).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace geo_ref {

enum Kind { HAUSDORFF_DT = 15, BOUNDARY = 16, CLDICE = 17 };
enum Activation { ACT_NONE = 0, ACT_SIGMOID = 1, ACT_SOFTMAX = 2 };
enum Reduction { RED_MEAN = 0, RED_SUM = 1, RED_NONE = 2 };

using LD = long double;

struct Spec {
  int kind = HAUSDORFF_DT;
  std::vector<int64_t> shape;  // input, row-major, the class axis at `class_axis`
  int class_axis = 1;
  std::vector<double> input;
  bool index_target = false;
  std::vector<double> dense_target;  // input's shape
  std::vector<int64_t> labels;       // input's shape without the class axis
  std::vector<double> pixel_weight;  // empty: all 1
  int activation = ACT_SOFTMAX;
  int reduction = RED_MEAN;
  int64_t ignore_index = -100;
  bool include_background = true;
  double alpha = 2.0;
  std::vector<double> spacing;  // empty: all 1
  // CLDICE
  int iterations = 3;
  double smooth_nr = 1.0, smooth_dr = 1.0;
  bool batch = false, micro = false, skip_empty = false;
  std::vector<double> class_weights;
};

// The tensor as (N, C, spatial...) with the class axis moved to 1.
struct View {
  int64_t N = 0, C = 0, P = 1;
  std::vector<int64_t> ext;  // spatial extents
  std::vector<int64_t> elem;  // elem[(n*C + c)*P + q]: index into the input
  std::vector<int64_t> pix;   // pix[n*P + q]: index into labels / pixel weights
};

inline View make_view(const Spec& s) {
  View v;
  const int nd = static_cast<int>(s.shape.size());
  const int ca = s.class_axis < 0 ? s.class_axis + nd : s.class_axis;
  v.N = s.shape[0];
  v.C = s.shape[ca];
  std::vector<int> spatial;
  for (int a = 1; a < nd; ++a)
    if (a != ca) spatial.push_back(a);
  for (int a : spatial) {
    v.ext.push_back(s.shape[a]);
    v.P *= s.shape[a];
  }
  std::vector<int64_t> stride(nd, 1);
  for (int a = nd - 2; a >= 0; --a) stride[a] = stride[a + 1] * s.shape[a + 1];
  // pixel strides: the shape without the class axis, row-major
  std::vector<int64_t> pshape;
  for (int a = 0; a < nd; ++a)
    if (a != ca) pshape.push_back(s.shape[a]);
  std::vector<int64_t> pstride(pshape.size(), 1);
  for (int a = static_cast<int>(pshape.size()) - 2; a >= 0; --a)
    pstride[a] = pstride[a + 1] * pshape[a + 1];
  v.elem.resize(static_cast<size_t>(v.N * v.C * v.P));
  v.pix.resize(static_cast<size_t>(v.N * v.P));
  for (int64_t n = 0; n < v.N; ++n)
    for (int64_t q = 0; q < v.P; ++q) {
      int64_t rest = q, e = n * stride[0], pi = n * pstride[0];
      for (int i = static_cast<int>(spatial.size()) - 1; i >= 0; --i) {
        const int64_t coord = rest % v.ext[i];
        rest /= v.ext[i];
        e += coord * stride[spatial[i]];
        pi += coord * pstride[i + 1];
      }
      v.pix[n * v.P + q] = pi;
      for (int64_t c = 0; c < v.C; ++c) v.elem[(n * v.C + c) * v.P + q] = e + c * stride[ca];
    }
  return v;
}

// Coordinates of q in the spatial grid.
inline std::vector<int64_t> coords(const View& v, int64_t q) {
  std::vector<int64_t> c(v.ext.size());
  for (int i = static_cast<int>(v.ext.size()) - 1; i >= 0; --i) {
    c[i] = q % v.ext[i];
    q /= v.ext[i];
  }
  return c;
}

// f_B = d_B + d̄_B at every pixel by brute force: the distance to the nearest pixel on the other
// side of the mask; 0 everywhere for an empty or full mask. Also d_B and d̄_B apart.
inline void brute_distances(const View& v, const std::vector<double>& spacing,
                            const std::vector<bool>& mask, std::vector<LD>& d_in,
                            std::vector<LD>& d_out) {
  const int64_t P = v.P;
  d_in.assign(P, 0);
  d_out.assign(P, 0);
  bool any = false, all = true;
  for (int64_t q = 0; q < P; ++q) {
    any = any || mask[q];
    all = all && mask[q];
  }
  if (!any || all) return;
  for (int64_t i = 0; i < P; ++i) {
    const auto ci = coords(v, i);
    LD best = -1;
    for (int64_t j = 0; j < P; ++j) {
      if (mask[j] == mask[i]) continue;
      const auto cj = coords(v, j);
      LD d2 = 0;
      for (size_t a = 0; a < ci.size(); ++a) {
        const LD s = spacing.empty() ? 1.0L : spacing[a];
        const LD d = (ci[a] - cj[a]) * s;
        d2 += d * d;
      }
      if (best < 0 || d2 < best) best = d2;
    }
    (mask[i] ? d_in : d_out)[i] = std::sqrt(best);
  }
}

struct Prepared {
  View v;
  std::vector<LD> t;  // (n, c, q)
  std::vector<LD> w;  // per pixel: v = m * pixel_weight
  std::vector<LD> m;  // per pixel: 1 counted, 0 ignored
};

inline Prepared prepare(const Spec& s) {
  Prepared pr;
  pr.v = make_view(s);
  const View& v = pr.v;
  pr.t.assign(v.N * v.C * v.P, 0);
  pr.w.assign(v.N * v.P, 1);
  pr.m.assign(v.N * v.P, 1);
  for (int64_t n = 0; n < v.N; ++n)
    for (int64_t q = 0; q < v.P; ++q) {
      const int64_t pi = v.pix[n * v.P + q];
      LD wt = s.pixel_weight.empty() ? 1.0L : s.pixel_weight[pi];
      if (s.index_target) {
        const int64_t lab = s.labels[pi];
        const bool binary = s.activation == ACT_SIGMOID && v.C == 1;
        const int64_t limit = binary ? 2 : v.C;
        if (lab == s.ignore_index || lab < 0 || lab >= limit) {
          pr.m[n * v.P + q] = 0;
          wt = 0;
        } else {
          for (int64_t c = 0; c < v.C; ++c)
            pr.t[(n * v.C + c) * v.P + q] = binary ? (lab == 1) : (lab == c);
        }
      } else {
        for (int64_t c = 0; c < v.C; ++c)
          pr.t[(n * v.C + c) * v.P + q] = s.dense_target[v.elem[(n * v.C + c) * v.P + q]];
      }
      pr.w[n * v.P + q] = wt;
    }
  return pr;
}

// Activated probabilities (n, c, q) of input x.
inline std::vector<LD> probabilities(const Spec& s, const View& v, const std::vector<LD>& x) {
  std::vector<LD> p(v.N * v.C * v.P);
  for (int64_t n = 0; n < v.N; ++n)
    for (int64_t q = 0; q < v.P; ++q) {
      LD mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < v.C; ++c) mx = std::max(mx, x[v.elem[(n * v.C + c) * v.P + q]]);
      for (int64_t c = 0; c < v.C; ++c) sum += std::exp(x[v.elem[(n * v.C + c) * v.P + q]] - mx);
      for (int64_t c = 0; c < v.C; ++c) {
        const LD xc = x[v.elem[(n * v.C + c) * v.P + q]];
        LD pc = xc;
        if (s.activation == ACT_SIGMOID) pc = 1 / (1 + std::exp(-xc));
        if (s.activation == ACT_SOFTMAX) pc = std::exp(xc - mx) / sum;
        p[(n * v.C + c) * v.P + q] = pc;
      }
    }
  return p;
}

// ---- soft skeleton ------------------------------------------------------------------------------

inline int64_t flat(const View& v, const std::vector<int64_t>& c) {
  int64_t q = 0;
  for (size_t a = 0; a < c.size(); ++a) q = q * v.ext[a] + c[a];
  return q;
}

inline std::vector<LD> erode(const View& v, const std::vector<LD>& x) {
  std::vector<LD> y(v.P);
  for (int64_t q = 0; q < v.P; ++q) {
    const auto c = coords(v, q);
    LD best = x[q];
    for (size_t a = 0; a < c.size(); ++a)
      for (int d = -1; d <= 1; d += 2) {
        auto cc = c;
        cc[a] += d;
        if (cc[a] < 0 || cc[a] >= v.ext[a]) continue;
        best = std::min(best, x[flat(v, cc)]);
      }
    y[q] = best;
  }
  return y;
}

inline std::vector<LD> dilate(const View& v, const std::vector<LD>& x) {
  std::vector<LD> y(v.P);
  const int k = static_cast<int>(v.ext.size());
  int count = 1;
  for (int a = 0; a < k; ++a) count *= 3;
  for (int64_t q = 0; q < v.P; ++q) {
    const auto c = coords(v, q);
    LD best = x[q];
    for (int m = 0; m < count; ++m) {
      auto cc = c;
      int r = m;
      bool in = true;
      for (int a = 0; a < k; ++a) {
        cc[a] += r % 3 - 1;
        r /= 3;
        in = in && cc[a] >= 0 && cc[a] < v.ext[a];
      }
      if (in) best = std::max(best, x[flat(v, cc)]);
    }
    y[q] = best;
  }
  return y;
}

inline std::vector<LD> soft_skeleton(const View& v, std::vector<LD> x, int iterations) {
  auto relu = [](LD a) { return a > 0 ? a : LD(0); };
  std::vector<LD> o = dilate(v, erode(v, x)), s(v.P);
  for (int64_t q = 0; q < v.P; ++q) s[q] = relu(x[q] - o[q]);
  for (int it = 0; it < iterations; ++it) {
    x = erode(v, x);
    o = dilate(v, erode(v, x));
    for (int64_t q = 0; q < v.P; ++q) {
      const LD delta = relu(x[q] - o[q]);
      s[q] += relu(delta - s[q] * delta);
    }
  }
  return s;
}

// ---- the losses ---------------------------------------------------------------------------------

// Constants of the gradient: per (n, c) the distance weight of each pixel (HD: f_P̂^α + f_T̂^α;
// BOUNDARY: φ), from the unperturbed input.
inline std::vector<LD> distance_weights(const Spec& s, const Prepared& pr,
                                        const std::vector<LD>& p) {
  const View& v = pr.v;
  std::vector<LD> out(v.N * v.C * v.P, 0);
  for (int64_t n = 0; n < v.N; ++n)
    for (int64_t c = 0; c < v.C; ++c) {
      std::vector<bool> pm(v.P), tm(v.P);
      for (int64_t q = 0; q < v.P; ++q) {
        const int64_t i = (n * v.C + c) * v.P + q;
        const bool counted = pr.m[n * v.P + q] > 0;
        pm[q] = counted && p[i] > 0.5L;
        tm[q] = counted && pr.t[i] > 0.5L;
      }
      std::vector<LD> ti, to;
      brute_distances(v, s.spacing, tm, ti, to);
      if (s.kind == BOUNDARY) {
        for (int64_t q = 0; q < v.P; ++q)
          out[(n * v.C + c) * v.P + q] = to[q] - std::max(ti[q] - 1, LD(0));
      } else {
        std::vector<LD> pi, po;
        brute_distances(v, s.spacing, pm, pi, po);
        for (int64_t q = 0; q < v.P; ++q)
          out[(n * v.C + c) * v.P + q] =
              std::pow(pi[q] + po[q], LD(s.alpha)) + std::pow(ti[q] + to[q], LD(s.alpha));
      }
    }
  return out;
}

struct Result {
  LD value = 0;
  std::vector<LD> none;  // REDUCTION_NONE outputs (HD/BOUNDARY: input's shape; CLDICE: groups)
};

// The loss at input x, with the distance weights `dw` (HD/BOUNDARY) held constant.
inline Result evaluate(const Spec& s, const Prepared& pr, const std::vector<LD>& x,
                       const std::vector<LD>& dw) {
  const View& v = pr.v;
  const std::vector<LD> p = probabilities(s, v, x);
  Result r;
  if (s.kind != CLDICE) {
    r.none.assign(s.input.size(), 0);
    LD sum = 0, count = 0;
    for (int64_t n = 0; n < v.N; ++n)
      for (int64_t c = 0; c < v.C; ++c) {
        if (!s.include_background && c == 0) continue;
        for (int64_t q = 0; q < v.P; ++q) {
          const int64_t i = (n * v.C + c) * v.P + q;
          const LD w = pr.w[n * v.P + q];
          const LD l = s.kind == BOUNDARY ? w * p[i] * dw[i]
                                          : w * (p[i] - pr.t[i]) * (p[i] - pr.t[i]) * dw[i];
          r.none[v.elem[i]] = l;
          sum += l;
          count += pr.m[n * v.P + q];
        }
      }
    r.value = s.reduction == RED_MEAN ? (count > 0 ? sum / count : 0) : sum;
    return r;
  }
  // CLDICE: per (n, c) sums, then groups.
  std::vector<LD> A(v.N * v.C), B(v.N * v.C), Cs(v.N * v.C), D(v.N * v.C), T(v.N * v.C);
  for (int64_t n = 0; n < v.N; ++n)
    for (int64_t c = 0; c < v.C; ++c) {
      std::vector<LD> ps(v.P), ts(v.P);
      for (int64_t q = 0; q < v.P; ++q) {
        const int64_t i = (n * v.C + c) * v.P + q;
        const bool live = pr.w[n * v.P + q] > 0;
        ps[q] = live ? p[i] : 0;
        ts[q] = live ? pr.t[i] : 0;
      }
      const auto sp = soft_skeleton(v, ps, s.iterations), st = soft_skeleton(v, ts, s.iterations);
      const int64_t j = n * v.C + c;
      for (int64_t q = 0; q < v.P; ++q) {
        const int64_t i = j * v.P + q;
        const LD w = pr.w[n * v.P + q];
        A[j] += w * sp[q] * pr.t[i];
        B[j] += w * sp[q];
        Cs[j] += w * st[q] * p[i];
        D[j] += w * st[q];
        T[j] += w * pr.t[i];
      }
    }
  auto cw = [&](int64_t c) { return s.class_weights.empty() ? 1.0L : LD(s.class_weights[c]); };
  auto included = [&](int64_t c) { return s.include_background || c > 0; };
  auto ratio = [&](LD a, LD b, LD cs, LD d) {
    const LD tp = (a + s.smooth_nr) / (b + s.smooth_dr), ts = (cs + s.smooth_nr) / (d + s.smooth_dr);
    return 1 - 2 * tp * ts / (tp + ts);
  };
  const int64_t images = s.batch ? 1 : v.N;
  LD wsum = 0, wtot = 0;
  for (int64_t g = 0; g < images; ++g) {
    auto stat = [&](const std::vector<LD>& X, int64_t c) {
      LD acc = 0;
      for (int64_t n = 0; n < v.N; ++n)
        if (s.batch || n == g) acc += X[n * v.C + c];
      return acc;
    };
    if (s.micro) {
      LD a = 0, b = 0, cs = 0, d = 0, t = 0;
      bool any = false;
      for (int64_t c = 0; c < v.C; ++c) {
        if (!included(c)) continue;
        any = true;
        a += cw(c) * stat(A, c);
        b += cw(c) * stat(B, c);
        cs += cw(c) * stat(Cs, c);
        d += cw(c) * stat(D, c);
        t += cw(c) * stat(T, c);
      }
      const bool in = any && (!s.skip_empty || t > 0);
      const LD l = in ? ratio(a, b, cs, d) : 0;
      r.none.push_back(l);
      wsum += in ? l : 0;
      wtot += in ? 1 : 0;
    } else {
      for (int64_t c = 0; c < v.C; ++c) {
        const bool in = included(c) && (!s.skip_empty || stat(T, c) > 0);
        const LD l = in ? ratio(stat(A, c), stat(B, c), stat(Cs, c), stat(D, c)) : 0;
        r.none.push_back(in ? cw(c) * l : 0);
        wsum += in ? cw(c) * l : 0;
        wtot += in ? cw(c) : 0;
      }
    }
  }
  r.value = s.reduction == RED_MEAN ? (wtot > 0 ? wsum / wtot : 0) : wsum;
  return r;
}

inline std::vector<LD> as_ld(const std::vector<double>& a) {
  return std::vector<LD>(a.begin(), a.end());
}

// The loss of `s` and its gradient (× grad_scale) by central differences of the objective
// (for NONE: of the sum of the outputs), the distance weights fixed at the given input.
inline Result reference(const Spec& s, std::vector<LD>* grad = nullptr, double grad_scale = 1.0,
                        LD h = 1e-6L) {
  const Prepared pr = prepare(s);
  const std::vector<LD> x = as_ld(s.input);
  const std::vector<LD> dw =
      s.kind == CLDICE ? std::vector<LD>() : distance_weights(s, pr, probabilities(s, pr.v, x));
  Result r = evaluate(s, pr, x, dw);
  if (grad) {
    auto objective = [&](const std::vector<LD>& xx) {
      const Result e = evaluate(s, pr, xx, dw);
      if (s.reduction != RED_NONE) return e.value;
      LD sum = 0;
      for (LD u : e.none) sum += u;
      return sum;
    };
    grad->assign(x.size(), 0);
    std::vector<LD> xp = x;
    for (size_t i = 0; i < x.size(); ++i) {
      xp[i] = x[i] + h;
      const LD up = objective(xp);
      xp[i] = x[i] - h;
      const LD dn = objective(xp);
      xp[i] = x[i];
      (*grad)[i] = grad_scale * (up - dn) / (2 * h);
    }
  }
  return r;
}

}  // namespace geo_ref

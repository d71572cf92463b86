// An independent reference for CULOSS_TOPK_CE, written from docs/reference.md: the per-pixel
// cross-entropy ℓᵢ of the cross-entropy reference (elementwise_reference.hpp: long double, dual
// numbers for ∂ℓᵢ/∂x), then plain loops for the rest: the counted pixels ordered by ℓ
// descending and flat pixel index ascending (a NaN loss first), the first K = ⌈f · M⌉ of them
// kept, loss = Σ_kept ℓᵢ / Σ_kept wᵢ with wᵢ = Σ_c ω_c t_c (CROSS_ENTROPY's MEAN divisor over
// the kept pixels), and the gradient of the kept pixels' losses only.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "reference/elementwise_reference.hpp"

namespace topk_ref {

using LD = long double;

// K = ⌈f · M⌉ (at least 1 when M > 0); a product within 1e-9 (relative) of an integer is that
// integer, as the contract words it.
inline int64_t top_count(double f, int64_t M) {
  if (M <= 0) return 0;
  const LD x = static_cast<LD>(f) * static_cast<LD>(M);
  const LD nearest = std::round(x);
  LD k = std::fabs(x - nearest) <= 1e-9L * nearest ? nearest : std::ceil(x);
  k = std::max<LD>(k, 1);
  return std::min<int64_t>(M, static_cast<int64_t>(k));
}

struct Result {
  double value = 0;
  std::vector<double> grad;        // grad_scale · d(value)/d(input), input's shape
  std::vector<double> pixel_loss;  // ℓᵢ per flat pixel (0 where not counted)
  std::vector<int64_t> kept;       // flat pixels kept, in selection order
  int64_t M = 0, K = 0;
  double divisor = 0;
};

// `s` describes the call as CROSS_ENTROPY would (kind, reduction are ignored).
inline Result reference(elem_ref::Spec s, double top_fraction) {
  using namespace elem_ref::detail;
  s.kind = elem_ref::CROSS_ENTROPY;
  s.reduction = elem_ref::RED_SUM;
  const std::vector<LD> x(s.input.begin(), s.input.end());
  const Ctx k = context(s, x);
  const Layout& L = k.L;
  const int64_t pixels = L.outer * L.inner;

  std::vector<LD> loss(static_cast<size_t>(pixels), 0), weight(loss);
  std::vector<int64_t> counted;
  for (int64_t o = 0; o < L.outer; ++o)
    for (int64_t in = 0; in < L.inner; ++in) {
      const int64_t px = L.pixel(o, in);
      if (k.m[static_cast<size_t>(px)] == 0) continue;
      counted.push_back(px);
      LD l = 0, w = 0;
      for (const D& d : pixel_losses(s, k, o, in, pixel_inputs(L, x, o, in))) l += d.v;
      for (int64_t c = 0; c < L.C; ++c)
        w += k.omega[static_cast<size_t>(c)] * k.t[static_cast<size_t>(L.elem(o, c, in))];
      loss[static_cast<size_t>(px)] = l;
      weight[static_cast<size_t>(px)] = w;
    }

  Result r;
  r.M = static_cast<int64_t>(counted.size());
  r.K = top_count(top_fraction, r.M);
  std::stable_sort(counted.begin(), counted.end(), [&](int64_t a, int64_t b) {
    const LD la = loss[static_cast<size_t>(a)], lb = loss[static_cast<size_t>(b)];
    if (std::isnan(la) != std::isnan(lb)) return std::isnan(la);
    return la > lb;  // stable: equal losses keep ascending pixel order
  });
  r.kept.assign(counted.begin(), counted.begin() + r.K);
  LD sum = 0, divisor = 0;
  for (int64_t px : r.kept) {
    sum += loss[static_cast<size_t>(px)];
    divisor += weight[static_cast<size_t>(px)];
  }
  r.divisor = static_cast<double>(divisor);
  r.value = divisor > 0 ? static_cast<double>(sum / divisor) : 0.0;
  for (LD l : loss) r.pixel_loss.push_back(static_cast<double>(l));

  r.grad.assign(x.size(), 0.0);
  if (divisor > 0) {
    const LD scale = static_cast<LD>(s.grad_scale) / divisor;
    for (int64_t px : r.kept) {
      const int64_t o = px / L.inner, in = px % L.inner;
      const std::vector<D> xs0 = pixel_inputs(L, x, o, in);
      for (int64_t j = 0; j < L.C; ++j) {
        std::vector<D> xs = xs0;
        xs[static_cast<size_t>(j)].d = 1;
        LD d = 0;
        for (const D& t : pixel_losses(s, k, o, in, xs)) d += t.d;
        r.grad[static_cast<size_t>(L.elem(o, j, in))] = static_cast<double>(scale * d);
      }
    }
  }
  return r;
}

}  // namespace topk_ref

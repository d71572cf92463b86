// The batch-wide selection of TOPK_CE, shared by the CPU backend and the CUDA kernels: each
// counted pixel's cross-entropy ℓᵢ (the cross-entropy unit's element loss summed over its
// classes), a sort key that orders the losses descending, and K = ⌈TOP_FRACTION · M⌉. The
// selected pixels are the K first in (key, flat pixel index) order: the K largest losses, ties
// at the threshold going to the lowest pixel index.
#pragma once

#include <cstdint>

#include "kernels/common/passes.cuh"

namespace culoss {

// Key of a pixel that is not counted (ignored label): after every counted pixel.
constexpr uint64_t kTopKLeftOut = ~uint64_t(0);

CULOSS_HD uint64_t double_bits(double d) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(d));
#else
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
#endif
}

// Ascending keys order losses descending. A NaN loss sorts first (so that it reaches the loss
// value); −0 and +0 tie. Counted keys never equal kTopKLeftOut (that would be a NaN's bits).
CULOSS_HD uint64_t topk_key(double loss) {
  if (loss != loss) return 0;
  const uint64_t u = double_bits(loss == 0.0 ? 0.0 : loss);
  const uint64_t ascending = (u >> 63) ? ~u : (u | (uint64_t(1) << 63));
  return ~ascending;
}

// The CPU fast path's keys, 32 bits: its losses are floats, and the float's bits order them as
// topk_key orders the double they convert to (same ties, a NaN first), so the selection is the
// same with half the key bytes. kTopKLeftOut32 is the key of a pixel that is not counted.
constexpr uint32_t kTopKLeftOut32 = ~uint32_t(0);

CULOSS_HD uint32_t topk_key32(float loss) {
  if (loss != loss) return 0;
  uint32_t u;
  const float l = loss == 0.0f ? 0.0f : loss;
  std::memcpy(&u, &l, 4);
  return u ^ ((u >> 31) ? 0u : 0x7fffffffu);  // ~(sign ? ~u : u | 2^31)
}

// K = ⌈fraction · M⌉, at least 1 when M > 0. A product within 1e-9 (relative) of an integer is
// that integer: 0.7 · 10 is 7.000000000000001 in double, and the user means 7.
CULOSS_HD int64_t topk_count(double fraction, int64_t M) {
  if (M <= 0) return 0;
  const double x = fraction * static_cast<double>(M);
  const double nearest = floor(x + 0.5);
  double k = fabs(x - nearest) <= 1e-9 * nearest ? nearest : ceil(x);
  if (k < 1.0) k = 1.0;
  return k >= static_cast<double>(M) ? M : static_cast<int64_t>(k);
}

// ℓ of flat pixel `pix` for the TOPK_CE term `ts` (its class weights at `class_weights`, NULL:
// all 1), and whether the pixel is counted. The cross-entropy unit's own math, in R.
template <class R, class T>
CULOSS_HD R topk_pixel_loss(const TermSpec& ts, const ElementArgs& a, const double* class_weights,
                            const T* x, int64_t pix, bool& counted) {
  const Layout& L = a.L;
  const PixelTarget<R> px = read_pixel<R>(a.target, a.pixel_weight, L.C, pix);
  counted = px.m != R(0);
  if (!counted) return R(0);
  const int64_t base = L.base(pix / L.P, pix % L.P), stride = L.class_stride();
  const PixelActivation<R> soft = pixel_activation<R>(ts.activation, x, base, stride, L.C);
  TermSpec all = ts;
  all.selected = nullptr;
  R loss = R(0);
  for (int64_t c = 0; c < L.C; ++c) {
    const int64_t e = base + c * stride;
    const R xc = to_real<R>(x[e]), t = target_value(a.target, px, c, e);
    const TermPixel<R> tp{c, L.C, xc, t, px.v, px.m, soft, 0, R(0), R(0), pix, nullptr, 0};
    const double w = class_weights ? class_weights[c] : 1.0;
    loss += TopKCeTerm::element(all, tp, &w, &w).loss;
  }
  return loss;
}

}  // namespace culoss

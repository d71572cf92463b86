// The vector passes of the CPU's fast path (fast_path.hpp): statistics and element pass for
// softmax calls with class-index targets, and for sigmoid calls with dense targets (further
// down), and the checks of CHECK_TARGETS. Compiled once per x86 instruction set
// by Highway's foreach_target (this file includes itself); the set is chosen at run time from
// CPUID (select_target below), so the library runs on any x86-64.
//
// Pixels are contiguous in NCHW and classes are P apart, so the vectors run across pixels: one
// vector holds `lanes` neighbouring pixels, and the class loop (max, Σ exp, loss, gradient) runs
// in registers and a small stack buffer. The element math is that of the term units, specialised
// for index targets (t is 0 or 1) and folded per (image, class) over the terms of the program:
//   CrossEntropyTerm (kernels/terms/cross_entropy.cuh), softmax: ℓ = −k log p, h = −k with
//     k = v ω (t (1 − ε) + ε / C), times scale (value) and grad_scale · scale (gradient);
//   RegionTerm (kernels/terms/region.cuh): h = p · dℓ/dp, region_dloss_dp = v (a t + b dSP/dp),
//     statistics region_element_stats (I = Σ v p t, SP = Σ v p or v p², ST = Σ v t, MCC's
//     SV = Σ v), the same coefficients for every region kind;
//   FocalSoftmaxTerm and MarginalCeTerm: h non-zero at the label's class only (label_terms; at
//     most one of each);
// and the softmax chain rule of pixel_element: dℓ/dx_c = h_c − p_c Σ h. Summed over the terms:
//   h_c = v (p (A t + B1 + 2 p B2) − (K1 t + K0)),   ℓ = −v (L1 t + L0) log p_c,
// with per-(image, class) sums A = Σ a, B1 = Σ b (plain), B2 = Σ b (squared denominator),
// K1 = Σ grad_scale·scale ω (1 − ε), K0 = Σ grad_scale·scale ω ε / C, L1, L0 the same with scale.
// tests/losses/fast_path_test.cpp checks them against the generic passes and the references.
#include "cpu/fast_path.hpp"

#if defined(CULOSS_HAVE_HWY)

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/dispatch.hpp"
#include "kernels/common/passes.cuh"
#include "kernels/common/topk.cuh"
#include "kernels/geometry/skeleton.cuh"  // the skeleton maps' indices

// SSSE3 adds nothing over SSE4 for this code, and AVX3_DL (Ice Lake) nothing over AVX3; leaving
// them out keeps the CPU checks below short.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL)
#endif
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cpu/fast_passes.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace culoss::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;
constexpr size_t kBufLanes = 16;  // at least the lanes of any x86 target (AVX-512: 16)

// Labels in [0, limit) are classes (a binary mask's: 0 and 1); others count as ignored, or are
// refused by the check.
HWY_INLINE int64_t label_limit(const FastCall& f) { return f.mask_labels ? 2 : f.C; }

// Labels of `count` pixels from flat pixel `pix`: the class as a float (−1 where not counted:
// ignored, or an unchecked invalid label) and v = m · pixel weight. Lanes past `count` are
// not counted. With `check`, an invalid label refuses the call (CHECK_TARGETS).
template <class L>
HWY_INLINE void stage_labels(const FastCall& f, bool check, int64_t pix, size_t count, size_t lanes,
                             float* cls, float* v) {
  const L* lab = static_cast<const L*>(f.labels) + pix;
  const int64_t limit = label_limit(f);
  for (size_t j = 0; j < count; ++j) {
    const int64_t l = static_cast<int64_t>(lab[j]);
    const bool counted = l >= 0 && l < limit && l != f.ignore_index;
    if (check && !counted && l != f.ignore_index)
      fail_invalid_target(*f.call, pix + static_cast<int64_t>(j), &lab[j]);
    const bool kept = counted && (!f.selected || f.selected[pix + static_cast<int64_t>(j)]);
    cls[j] = kept ? static_cast<float>(l) : -1.0f;
    v[j] = kept ? (f.pixel_weight ? f.pixel_weight[pix + j] : 1.0f) : 0.0f;
  }
  for (size_t j = count; j < lanes; ++j) {
    cls[j] = -1.0f;
    v[j] = 0.0f;
  }
}

#if HWY_TARGET != HWY_SCALAR  // one lane: every pixel goes through stage_labels
// The labels of a full vector of pixels from flat pixel `pix` as 32-bit lanes, with `ok` false
// where the label does not fit in 32 bits (then it is no class; for int64 labels).
template <class L>
HWY_INLINE hn::Vec<hn::RebindToSigned<D>> load_labels32(D /*d*/, const L* lab,
                                                        hn::Mask<hn::RebindToSigned<D>>& ok) {
  const hn::RebindToSigned<D> d32;
  if constexpr (std::is_same_v<L, int64_t>) {
    const hn::Repartition<int64_t, D> d64;
    const size_t half = hn::Lanes(d64);
    const auto a = hn::BitCast(d32, hn::LoadU(d64, lab));
    const auto b = hn::BitCast(d32, hn::LoadU(d64, lab + half));
    const auto lo = hn::ConcatEven(d32, b, a), hi = hn::ConcatOdd(d32, b, a);
    ok = hn::Eq(hi, hn::ShiftRight<31>(lo));  // the int64 is the sign extension of its low half
    return lo;
  } else if constexpr (std::is_same_v<L, int32_t>) {
    ok = hn::Eq(hn::Zero(d32), hn::Zero(d32));
    return hn::LoadU(d32, lab);
  } else {
    const hn::Rebind<uint8_t, decltype(d32)> d8;
    ok = hn::Eq(hn::Zero(d32), hn::Zero(d32));
    return hn::PromoteTo(d32, hn::LoadU(d8, lab));
  }
}

// Labels of a full vector of pixels as vectors (stage_labels for a whole vector without a trip
// through memory): the class as a float, −1 where not counted, and v.
template <class L>
HWY_INLINE void vector_labels(D d, const FastCall& f, bool check, int64_t pix, V& cls, V& v) {
  const hn::RebindToSigned<D> d32;
  const L* lab = static_cast<const L*>(f.labels) + pix;
  hn::Mask<decltype(d32)> fits;
  const auto l32 = load_labels32<L>(d, lab, fits);
  const int64_t limit = label_limit(f);
  const auto in_range =
      hn::And(fits, hn::And(hn::Not(hn::Lt(l32, hn::Zero(d32))),
                            hn::Lt(l32, hn::Set(d32, static_cast<int32_t>(limit)))));
  auto counted = in_range;
  if (f.ignore_index >= 0 && f.ignore_index < limit)  // only then can a class be the ignore index
    counted = hn::AndNot(hn::Eq(l32, hn::Set(d32, static_cast<int32_t>(f.ignore_index))), in_range);
  if (check && !hn::AllTrue(d32, counted)) {  // some lane is ignored or invalid: find out which
    float c[kBufLanes], w[kBufLanes];
    stage_labels<L>(f, true, pix, hn::Lanes(d), hn::Lanes(d), c, w);
  }
  if (f.selected) {  // TOPK_CE: a pixel not selected counts as not counted (after the check)
    const hn::Rebind<uint8_t, decltype(d32)> d8;
    const auto sel = hn::PromoteTo(d32, hn::LoadU(d8, f.selected + pix));
    counted = hn::AndNot(hn::Eq(sel, hn::Zero(d32)), counted);
  }
  const auto counted_f = hn::RebindMask(d, counted);
  cls = hn::IfThenElse(counted_f, hn::ConvertTo(d, l32), hn::Set(d, -1.0f));
  v = hn::IfThenElseZero(counted_f,
                         f.pixel_weight ? hn::LoadU(d, f.pixel_weight + pix) : hn::Set(d, 1.0f));
}

#endif

// Labels of `count` pixels: whole vectors in registers, a tail through stage_labels.
template <class L>
HWY_INLINE void labels(D d, const FastCall& f, bool check, int64_t pix, size_t count, V& cls,
                       V& v) {
#if HWY_TARGET != HWY_SCALAR
  if (count == hn::Lanes(d)) return vector_labels<L>(d, f, check, pix, cls, v);
#endif
  HWY_ALIGN float c[kBufLanes], w[kBufLanes];
  stage_labels<L>(f, check, pix, count, hn::Lanes(d), c, w);
  cls = hn::Load(d, c);
  v = hn::Load(d, w);
}

// Whether this target widens a whole vector of `T` values to float in vector steps
// (load_widened): float16 needs F16C (AVX2 and later); nothing on HWY_SCALAR.
template <class T>
constexpr bool kWidens =
#if HWY_TARGET == HWY_SCALAR
    false;
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
    std::is_same_v<T, float> || std::is_same_v<T, bf16_t> || std::is_same_v<T, half_t> ||
    std::is_same_v<T, uint8_t>;
#else
    std::is_same_v<T, float> || std::is_same_v<T, bf16_t> || std::is_same_v<T, uint8_t>;
#endif

// A whole vector of `T` values at `x` as floats, exactly (float16 and bfloat16 widen without
// rounding); for the types of kWidens.
template <class T>
HWY_INLINE V load_widened(D d, const T* x) {
  if constexpr (std::is_same_v<T, float>) {
    return hn::LoadU(d, x);
  } else if constexpr (std::is_same_v<T, bf16_t>) {  // the top half of a float
    const hn::Rebind<uint16_t, D> d16;
    const auto bits = hn::PromoteTo(hn::RebindToUnsigned<D>(), hn::LoadU(d16, &x->bits));
    return hn::BitCast(d, hn::ShiftLeft<16>(bits));
  } else if constexpr (std::is_same_v<T, uint8_t>) {
    const hn::Rebind<uint8_t, D> d8;
    return hn::ConvertTo(d, hn::PromoteTo(hn::RebindToSigned<D>(), hn::LoadU(d8, x)));
  } else {
    static_assert(std::is_same_v<T, half_t>);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2  // vcvtph2ps
    const hn::Rebind<hwy::float16_t, D> dh;
    return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(&x->bits)));
#else
    return hn::Zero(d);  // not reached: kWidens<half_t> is false here
#endif
  }
}

// The inputs of `count` pixels at element `e` (class 0) of every class: a pointer with class
// stride `stride`, straight into the input for full float vectors, else a float copy in `buf`
// (zeros past `count`) — a tail never reads past the tensor.
// Channels-last input (pixel stride C) is gathered into `buf` the same way.
template <class T>
HWY_INLINE const float* stage_inputs(const FastCall& f, int64_t e, size_t count, size_t lanes,
                                     float* buf, int64_t& stride) {
  const T* x = static_cast<const T*>(f.x) + e;
  const int64_t cs = f.class_stride, ps = f.pixel_stride;
  if constexpr (std::is_same_v<T, float>) {
    if (count == lanes && ps == 1) {
      stride = f.class_stride;
      return x;
    }
  }
  if constexpr (kWidens<T>) {
    if (count == lanes && ps == 1) {  // whole vectors, widened in vector steps
      const D d;
      for (int64_t c = 0; c < f.C; ++c)
        hn::StoreU(load_widened(d, x + c * cs), d, buf + c * kBufLanes);
      stride = kBufLanes;
      return buf;
    }
  }
  for (int64_t c = 0; c < f.C; ++c) {
    for (size_t j = 0; j < count; ++j)
      buf[c * kBufLanes + j] = to_real<float>(x[c * cs + static_cast<int64_t>(j) * ps]);
    for (size_t j = count; j < lanes; ++j) buf[c * kBufLanes + j] = 0.0f;
  }
  stride = kBufLanes;
  return buf;
}

// e^x for x ≤ 0, the argument of every softmax and sigmoid here (x − max, −|x|), in fewer steps
// than hn::Exp, which serves any x: x = q ln 2 + r with q = round(x / ln 2) from one addition of
// 1.5 · 2^23 (q then sits in the low bits), |r| ≤ ln 2 / 2 by Cody–Waite's two-part ln 2, e^r by
// the degree-7 polynomial of Highway's Exp (Estrin), and 2^q added to the exponent bits. Where
// e^x would fall below 2.7e−38 (x < −86.5, near the smallest normal float) it is 0, like the
// subnormal it replaces next to a softmax's 1. NaN stays NaN. Within 1 ulp of e^x on [−86.5, 0]
// (checked against exp in double on a dense sweep of that range; hn::Exp is within 1.02 ulp).
HWY_INLINE V exp_nonpositive(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V round_shift = hn::Set(d, 12582912.0f);  // 1.5 · 2^23
  const V shifted = hn::MulAdd(x, hn::Set(d, 1.44269504088896341f), round_shift);
  const V q = hn::Sub(shifted, round_shift);
  V r = hn::MulAdd(q, hn::Set(d, -0.693145751953125f), x);
  r = hn::MulAdd(q, hn::Set(d, -1.428606765330187045e-6f), r);
  const V r2 = hn::Mul(r, r);
  const V a = hn::MulAdd(hn::Set(d, 0.166666671633720397949219f), r, hn::Set(d, 0.5f));
  const V b = hn::MulAdd(hn::Set(d, 0.00833336077630519866943359f), r,
                         hn::Set(d, 0.0416664853692054748535156f));
  const V c = hn::MulAdd(hn::Set(d, 0.000198527617612853646278381f), r,
                         hn::Set(d, 0.00139304355252534151077271f));
  const V poly = hn::MulAdd(hn::MulAdd(c, r2, b), r2, a);
  const V er = hn::Add(hn::MulAdd(poly, r2, r), hn::Set(d, 1.0f));  // e^r in [0.7, 1.42]
  // the low bits of `shifted` hold q (two's complement): shifted left by 23, only q · 2^23 is left
  const auto scaled = hn::Add(hn::BitCast(di, er), hn::ShiftLeft<23>(hn::BitCast(di, shifted)));
  return hn::IfThenZeroElse(hn::Lt(x, hn::Set(d, -86.5f)), hn::BitCast(d, scaled));
}

// log(1 + u) for u in [0, 1], the softplus term of every sigmoid loss here (u = e^−|x|),
// without the two divisions of hn::Log1p, which serves any u: u · P(2u − 1), P of degree 9
// interpolating log(1 + u) / u at the Chebyshev nodes of [0, 1] (fitted in double, rounded to
// float). Within 1.85 ulp of log1p in double for every float in [1e−38, 1] (checked
// exhaustively; hn::Log1p: within 2), so relative accuracy holds for tiny u, where it is ≈ u.
HWY_INLINE V log1p_unit(D d, V u) {
  const V t = hn::MulSub(hn::Set(d, 2.0f), u, hn::Set(d, 1.0f));
  V p = hn::Set(d, -6.203236353e-06f);
  p = hn::MulAdd(p, t, hn::Set(d, 2.050886906e-05f));
  p = hn::MulAdd(p, t, hn::Set(d, -5.303138096e-05f));
  p = hn::MulAdd(p, t, hn::Set(d, 1.809013338e-04f));
  p = hn::MulAdd(p, t, hn::Set(d, -6.425994798e-04f));
  p = hn::MulAdd(p, t, hn::Set(d, 2.289702184e-03f));
  p = hn::MulAdd(p, t, hn::Set(d, -8.461023681e-03f));
  p = hn::MulAdd(p, t, hn::Set(d, 3.315225244e-02f));
  p = hn::MulAdd(p, t, hn::Set(d, -1.442635506e-01f));
  p = hn::MulAdd(p, t, hn::Set(d, 8.109301925e-01f));
  return hn::Mul(p, u);
}

// The softmax of a vector of pixels: e_c = exp(x_c − max) into `e`, and 1 / Σ e, log Σ e.
HWY_INLINE void softmax(D d, int64_t C, const float* x, int64_t stride, float* e, V& mx, V& inv,
                        V* log_sum) {
  mx = hn::LoadU(d, x);
  for (int64_t c = 1; c < C; ++c) mx = hn::Max(mx, hn::LoadU(d, x + c * stride));
  V sum = hn::Zero(d);
  for (int64_t c = 0; c < C; ++c) {
    const V ec = exp_nonpositive(d, hn::Sub(hn::LoadU(d, x + c * stride), mx));
    hn::StoreU(ec, d, e + c * kBufLanes);
    sum = hn::Add(sum, ec);
  }
  inv = hn::Div(hn::Set(d, 1.0f), sum);
  if (log_sum) *log_sum = hn::Log(d, sum);
}

// Lanes of a float accumulator added to `out` in lane order.
HWY_INLINE void flush(D d, V& acc, double& out) {
  float lane[kBufLanes];
  hn::StoreU(acc, d, lane);
  double s = 0.0;
  for (size_t j = 0; j < hn::Lanes(d); ++j) s += static_cast<double>(lane[j]);
  out += s;
  acc = hn::Zero(d);
}

// `count` lanes of a gradient vector `g` to the gradient buffer, lane j at element
// at + j · stride, in the gradient's dtype: float32 as it is; float16 and bfloat16 rounded to
// nearest, ties to even, as kernels/common/dtype.cuh rounds (bfloat16 in vector integer steps,
// float16 by F16C's conversion on AVX2 and later, by float_to_half lane by lane elsewhere).
HWY_INLINE void store_grad(D d, const FastCall& f, V g, int64_t at, size_t count, int64_t stride) {
  const bool whole = count == hn::Lanes(d) && stride == 1;
  HWY_ALIGN float lane[kBufLanes];
  if (f.grad_dtype == DType::F32) {
    float* out = static_cast<float*>(f.grad) + at;
    if (whole) return hn::StoreU(g, d, out);
    hn::Store(g, d, lane);
    for (size_t j = 0; j < count; ++j) out[static_cast<int64_t>(j) * stride] = lane[j];
    return;
  }
  uint16_t* out = static_cast<uint16_t*>(f.grad) + at;
#if HWY_TARGET != HWY_SCALAR
  if (whole && f.grad_dtype == DType::BF16) {
    const hn::RebindToUnsigned<D> du;
    const hn::Rebind<uint16_t, D> d16;
    const auto bits = hn::BitCast(du, g);
    const auto rounded =  // + 0x7fff + the lowest kept bit, then the top half
        hn::ShiftRight<16>(hn::Add(
            bits,
            hn::Add(hn::Set(du, 0x7fffu), hn::And(hn::ShiftRight<16>(bits), hn::Set(du, 1u)))));
    const auto nan = hn::Gt(hn::And(bits, hn::Set(du, 0x7fffffffu)), hn::Set(du, 0x7f800000u));
    const auto quiet = hn::Or(hn::ShiftRight<16>(bits), hn::Set(du, 0x40u));
    const auto top = hn::IfThenElse(nan, quiet, rounded);  // < 2^16: the demotion keeps it
    return hn::StoreU(hn::DemoteTo(d16, hn::BitCast(hn::RebindToSigned<D>(), top)), d16, out);
  }
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  if (whole) {  // float16: vcvtps2ph, rounding to nearest even
    const hn::Rebind<hwy::float16_t, D> dh;
    return hn::StoreU(hn::DemoteTo(dh, g), dh, reinterpret_cast<hwy::float16_t*>(out));
  }
#endif
#endif
  hn::Store(g, d, lane);
  const bool bf16 = f.grad_dtype == DType::BF16;
  for (size_t j = 0; j < count; ++j)
    out[static_cast<int64_t>(j) * stride] = bf16 ? float_to_bf16(lane[j]) : float_to_half(lane[j]);
}

// `count` doubles of a geometry map as floats (zeros past `count`).
HWY_INLINE V load_map(D d, const double* map, size_t count) {
  HWY_ALIGN float lane[kBufLanes];
  const size_t lanes = hn::Lanes(d);
  if (count == lanes) {
    for (size_t j = 0; j < lanes; ++j) lane[j] = static_cast<float>(map[j]);
  } else {
    for (size_t j = 0; j < lanes; ++j) lane[j] = j < count ? static_cast<float>(map[j]) : 0.0f;
  }
  return hn::Load(d, lane);
}

// A chunk's statistics row: slot `f.slot[j]` of class c holds quantity `f.quantity[j]`'s sum.
HWY_INLINE void write_stats_row(const FastCall& f, const double (&sum)[FQ_COUNT][kFastMaxClasses],
                                double* row) {
  const int64_t S = f.stat_width;
  std::fill(row, row + f.C * S, 0.0);
  for (int64_t c = 0; c < f.C; ++c)
    for (int j = 0; j < f.slot_count; ++j) row[c * S + f.slot[j]] = sum[f.quantity[j]][c];
}

template <class T, class L>
void stats_chunk_t(const FastCall& f, int64_t n, int64_t q0, int64_t q1, double* row) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C;
  float xbuf[kFastMaxClasses * kBufLanes], e[kFastMaxClasses * kBufLanes];
  V acc[FQ_COUNT][kFastMaxClasses];
  double sum[FQ_COUNT][kFastMaxClasses];
  for (int k = 0; k < FQ_COUNT; ++k)
    for (int64_t c = 0; c < C; ++c) {
      acc[k][c] = hn::Zero(d);
      sum[k][c] = 0.0;
    }
  const V one = hn::Set(d, 1.0f);
  int pending = 0;
  for (int64_t q = q0; q < q1; q += static_cast<int64_t>(lanes)) {
    const size_t count = static_cast<size_t>(std::min<int64_t>(lanes, q1 - q));
    V lab, v;
    labels<L>(d, f, f.check_labels, n * f.P + q, count, lab, v);
    const V counted =  // m, only where a term asks for it
        f.need[FQ_M] ? hn::IfThenElseZero(hn::Ge(lab, hn::Zero(d)), one) : hn::Zero(d);
    V mx = hn::Zero(d), inv = hn::Zero(d);
    if (f.stats_need_p) {
      int64_t stride;
      const float* x = stage_inputs<T>(f, f.element(n, q), count, lanes, xbuf, stride);
      softmax(d, C, x, stride, e, mx, inv, nullptr);
    }
    for (int64_t c = 0; c < C; ++c) {
      const V t = hn::IfThenElseZero(hn::Eq(lab, hn::Set(d, static_cast<float>(c))), one);
      if (f.need[FQ_MT]) acc[FQ_MT][c] = hn::Add(acc[FQ_MT][c], t);
      if (f.need[FQ_M]) acc[FQ_M][c] = hn::Add(acc[FQ_M][c], counted);
      if (f.need[FQ_VT]) acc[FQ_VT][c] = hn::MulAdd(v, t, acc[FQ_VT][c]);
      if (f.need[FQ_V]) acc[FQ_V][c] = hn::Add(acc[FQ_V][c], v);
      if (f.stats_need_p) {
        const V p = hn::Mul(hn::LoadU(d, e + c * kBufLanes), inv);
        if (f.cache_p)
          store_grad(d, f, p, f.element(n, q) + c * f.class_stride, count, 1);  // float32
        if (f.cldice_term >= 0) {  // its skeleton maps at the element (channels-first)
          const double* at = f.cldice_maps + f.element(n, q) + c * f.class_stride;
          const int64_t plane = f.N * C * f.P;
          const V vsp = hn::Mul(v, load_map(d, at + kSkelSP * plane, count));
          const V vst = hn::Mul(v, load_map(d, at + kSkelST * plane, count));
          acc[FQ_CL_A][c] = hn::MulAdd(vsp, t, acc[FQ_CL_A][c]);
          acc[FQ_CL_B][c] = hn::Add(acc[FQ_CL_B][c], vsp);
          acc[FQ_CL_CS][c] = hn::MulAdd(vst, p, acc[FQ_CL_CS][c]);
          acc[FQ_CL_D][c] = hn::Add(acc[FQ_CL_D][c], vst);
        }
        const V vp = hn::Mul(v, p);
        if (f.need[FQ_VPT]) acc[FQ_VPT][c] = hn::MulAdd(vp, t, acc[FQ_VPT][c]);
        if (f.need[FQ_VP]) acc[FQ_VP][c] = hn::Add(acc[FQ_VP][c], vp);
        if (f.need[FQ_VPP]) acc[FQ_VPP][c] = hn::MulAdd(vp, p, acc[FQ_VPP][c]);
      }
    }
    if (++pending == kFastFlush || q + static_cast<int64_t>(lanes) >= q1) {
      for (int k = 0; k < FQ_COUNT; ++k)
        if (f.need[k])
          for (int64_t c = 0; c < C; ++c) flush(d, acc[k][c], sum[k][c]);
      pending = 0;
    }
  }
  write_stats_row(f, sum, row);
}

// Statistics that are label counts alone, Σ m t per class and Σ m (the divisors of the
// cross-entropy kinds' MEAN; FastCall::stats_label_counts): one mask per class and vector of
// pixels, counted in integers. They are the exact sums stats_chunk_t makes in floats and
// doubles, so the row is bitwise the same, at a fraction of the work: no accumulator per
// quantity and class, and no flushes.
template <class L>
void label_counts_chunk_t(const FastCall& f, int64_t n, int64_t q0, int64_t q1, double* row) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C;
  int64_t class_count[kFastMaxClasses] = {}, counted = 0;
  for (int64_t q = q0; q < q1; q += static_cast<int64_t>(lanes)) {
    const size_t count = static_cast<size_t>(std::min<int64_t>(lanes, q1 - q));
    V lab, v;
    labels<L>(d, f, f.check_labels, n * f.P + q, count, lab, v);  // −1: not counted
    counted += static_cast<int64_t>(hn::CountTrue(d, hn::Ge(lab, hn::Zero(d))));
    for (int64_t c = 0; c < C; ++c)
      class_count[c] +=
          static_cast<int64_t>(hn::CountTrue(d, hn::Eq(lab, hn::Set(d, static_cast<float>(c)))));
  }
  double sum[FQ_COUNT][kFastMaxClasses];
  for (int64_t c = 0; c < C; ++c) {
    sum[FQ_MT][c] = static_cast<double>(class_count[c]);
    sum[FQ_M][c] = static_cast<double>(counted);
  }
  write_stats_row(f, sum, row);
}

// The folded coefficients of image n (see the top of the file), narrowed to float. The region
// part is kept as AB = A + B1 (the value of A t + B1 at t = 1) and B1 (at t = 0), each summed in
// double: A and B1 may be large and of opposite signs (MCC of a tiny image), and A t + B1 in
// float would lose what is left of them.
struct Folded {
  float AB[kFastMaxClasses], B1[kFastMaxClasses], B2[kFastMaxClasses];
  float K1[kFastMaxClasses], K0[kFastMaxClasses], L1[kFastMaxClasses], L0[kFastMaxClasses];
  float KT[kFastMaxClasses], LT[kFastMaxClasses];  // K1 + K0 and L1 + L0 (the label's class)
  float FW[kFastMaxClasses], FL[kFastMaxClasses];  // the softmax focal term's ω: gradient, value
  float MA[kFastMaxClasses];  // the marginal term's flag: class c is annotated in the image
  float HG[kFastMaxClasses], HL[kFastMaxClasses];  // HAUSDORFF_DT's class factor: gradient, value
  float BG[kFastMaxClasses], BL[kFastMaxClasses];  // BOUNDARY's
  float CL[kFastMaxClasses];  // CLDICE's dℓ/dCs (scaled: its coefficients carry the scales)
};

void fold(const FastCall& f, int64_t n, Folded& out) {
  const Program& prog = *f.prog;
  const int64_t C = f.C, W = prog.coef_width;
  for (int64_t c = 0; c < C; ++c) {
    const double* coef = f.coefs + (n * C + c) * W;
    double A = 0, B1 = 0, B2 = 0, K1 = 0, K0 = 0, L1 = 0, L0 = 0, FW = 0, FL = 0, MA = 0;
    double HG = 0, HL = 0, BG = 0, BL = 0, CL = 0;
    for (int i = 0; i < prog.count; ++i) {
      const TermSpec& ts = prog.term[i];
      const double* k = coef + ts.coef_offset;
      if (ts.kind == TK_REGION) {
        A += k[0];
        (ts.region.squared ? B2 : B1) += k[1];
      } else if (ts.kind == TK_CE || ts.kind == TK_TOPK_CE) {
        const double eps = ts.label_smoothing, g = f.grad_scale * f.scale[i];
        const double on = k[0] * (1.0 - eps), off = k[0] * eps / static_cast<double>(C);
        K1 += g * on;
        K0 += g * off;
        L1 += f.scale[i] * on;
        L0 += f.scale[i] * off;
      } else if (ts.kind == TK_FOCAL_SOFTMAX) {
        FW += f.grad_scale * f.scale[i] * k[0];
        FL += f.scale[i] * k[0];
      } else if (ts.kind == TK_MARGINAL) {
        MA = k[0];
      } else if (ts.kind == TK_HAUSDORFF_DT || ts.kind == TK_BOUNDARY) {
        const bool hd = ts.kind == TK_HAUSDORFF_DT;  // the class weight (0: class left out)
        (hd ? HG : BG) = f.grad_scale * f.scale[i] * k[0];
        (hd ? HL : BL) = f.scale[i] * k[0];
      } else if (ts.kind == TK_CLDICE) {
        CL = k[2];
      }
    }
    out.AB[c] = narrow_coef<float>(A + B1);
    out.B1[c] = narrow_coef<float>(B1);
    out.B2[c] = narrow_coef<float>(B2);
    out.K1[c] = narrow_coef<float>(K1);
    out.K0[c] = narrow_coef<float>(K0);
    out.L1[c] = narrow_coef<float>(L1);
    out.L0[c] = narrow_coef<float>(L0);
    out.KT[c] = narrow_coef<float>(K1 + K0);
    out.LT[c] = narrow_coef<float>(L1 + L0);
    out.FW[c] = narrow_coef<float>(FW);
    out.FL[c] = narrow_coef<float>(FL);
    out.MA[c] = static_cast<float>(MA);
    out.HG[c] = narrow_coef<float>(HG);
    out.HL[c] = narrow_coef<float>(HL);
    out.BG[c] = narrow_coef<float>(BG);
    out.BL[c] = narrow_coef<float>(BL);
    out.CL[c] = narrow_coef<float>(CL);
  }
}

// u^γ for u in [0, 1] and γ ≥ 0, as pow (0^0 = 1): the focal losses' modulating factor. γ = 0,
// 1 and 2 (the common ones) take no logarithm; otherwise e^(γ log u), whose argument is ≤ 0.
HWY_INLINE V pow_unit(D d, V u, float gamma) {
  if (gamma == 0.0f) return hn::Set(d, 1.0f);
  if (gamma == 1.0f) return u;
  if (gamma == 2.0f) return hn::Mul(u, u);
  const auto live = hn::Gt(u, hn::Zero(d));
  const V log_u = hn::Log(d, hn::IfThenElse(live, u, hn::Set(d, 1.0f)));
  return hn::IfThenElseZero(live, exp_nonpositive(d, hn::Mul(hn::Set(d, gamma), log_u)));
}

// The terms whose h is non-zero at the label's class t only, for a vector of pixels: returns
// their h_t and adds their loss to `loss`. `e` holds e^(x_c − max) (Σ e = 1 / inv), `x` the
// logits; log p_t is (x_t − max) − log Σ, as the cross-entropy's.
//   FocalSoftmaxTerm (kernels/terms/focal_softmax.cuh): h_t = −v ω (1 − p_t)^γ (1 − γ p_t q),
//     q = log p_t / (1 − p_t) (−1 where p_t = 1), loss −v ω (1 − p_t)^γ log p_t; 1 − p_t is
//     Σ_{c≠t} e_c / Σ, free of cancellation.
//   MarginalCeTerm (kernels/terms/marginal_ce.cuh): h_t = −v t̃, loss −v t̃ log p_t, with t̃ = 0
//     where the label is the background and the pixel's argmax (the lowest class of the largest
//     logit) a foreground class the image's annotation lacks, else 1.
HWY_INLINE V label_terms(D d, const FastCall& f, const Folded& k, V lab, V v, const float* x,
                         int64_t stride, const float* e, V mx, V inv, V log_sum, V& loss) {
  const V zero = hn::Zero(d), one = hn::Set(d, 1.0f);
  const bool focal = f.focal_term >= 0, marginal = f.marginal_term >= 0;
  V et = zero, other = zero, xt = mx, fw = zero, fl = zero, best = zero, argmax = zero;
  for (int64_t c = 0; c < f.C; ++c) {
    const auto is_c = hn::Eq(lab, hn::Set(d, static_cast<float>(c)));
    const V ec = hn::LoadU(d, e + c * kBufLanes), xc = hn::LoadU(d, x + c * stride);
    et = hn::IfThenElse(is_c, ec, et);
    other = hn::Add(other, hn::IfThenZeroElse(is_c, ec));
    xt = hn::IfThenElse(is_c, xc, xt);
    if (focal) {
      fw = hn::IfThenElse(is_c, hn::Set(d, k.FW[c]), fw);
      fl = hn::IfThenElse(is_c, hn::Set(d, k.FL[c]), fl);
    }
    if (marginal) {
      const auto above = c == 0 ? hn::Eq(zero, zero) : hn::Gt(xc, best);
      best = hn::IfThenElse(above, xc, best);
      argmax = hn::IfThenElse(above, hn::Set(d, static_cast<float>(c)), argmax);
    }
  }
  const V logp = hn::Sub(hn::Sub(xt, mx), log_sum);
  V h = zero;
  if (focal) {
    const float gamma = static_cast<float>(f.prog->term[f.focal_term].gamma);
    const V p = hn::Mul(et, inv), u = hn::Mul(other, inv);
    const V ug = pow_unit(d, u, gamma);
    const auto live = hn::Gt(u, zero);
    const V q =
        hn::IfThenElse(live, hn::Div(logp, hn::IfThenElse(live, u, one)), hn::Set(d, -1.0f));
    const V vug = hn::Mul(v, ug);
    loss = hn::NegMulAdd(hn::Mul(vug, fl), logp, loss);
    h = hn::Mul(hn::Neg(hn::Mul(vug, fw)), hn::NegMulAdd(hn::Mul(hn::Set(d, gamma), p), q, one));
  }
  if (marginal) {
    V annotated = zero;  // the flag of the argmax class
    for (int64_t c = 0; c < f.C; ++c)
      annotated = hn::IfThenElse(hn::Eq(argmax, hn::Set(d, static_cast<float>(c))),
                                 hn::Set(d, k.MA[c]), annotated);
    const auto charged = hn::Or(hn::Not(hn::Eq(lab, zero)),
                                hn::Or(hn::Eq(argmax, zero), hn::Not(hn::Eq(annotated, zero))));
    const double scale = f.scale[f.marginal_term];
    const V vt = hn::IfThenElseZero(charged, v);  // v t̃
    loss = hn::NegMulAdd(hn::Mul(vt, hn::Set(d, static_cast<float>(scale))), logp, loss);
    h = hn::NegMulAdd(vt, hn::Set(d, static_cast<float>(f.grad_scale * scale)), h);
  }
  return h;
}

// The map terms at class c of a vector of pixels (element index e, which is the maps'
// index: channels-first): adds their loss to `loss` and returns their h_c = p_c dℓ/dp_c,
//   HausdorffDtTerm (kernels/terms/distance.cuh): ℓ = v (p − t)² w, w = f_P̂^α + f_T̂^α;
//     h = 2 v p (p − t) w;
//   BoundaryTerm: ℓ = v p φ; h = v p φ;
// each times its class factor (value: HL, BL; gradient: HG, BG); and
//   ClDiceTerm (kernels/terms/cldice.cuh): no value; h = p (CL v S_t + G), CL = dℓ/dCs
//     (scaled), G the skeleton's backward (dℓ/dp through S_p), 0 where v = 0 (the pixel has no
//     gradient: the backward may reach it through a neighbour's pooling).
HWY_INLINE V map_terms(D d, const FastCall& f, const Folded& k, int64_t c, int64_t e, size_t count,
                       V p, V t, V v, V& loss) {
  V h = hn::Zero(d);
  if (f.hd_term >= 0) {
    const V w = hn::Add(load_map(d, f.hd_maps[0] + e, count), load_map(d, f.hd_maps[1] + e, count));
    const V err = hn::Sub(p, t), vw = hn::Mul(v, w);
    loss = hn::MulAdd(hn::Mul(hn::Set(d, k.HL[c]), vw), hn::Mul(err, err), loss);
    h = hn::Mul(hn::Mul(hn::Set(d, 2.0f * k.HG[c]), vw), hn::Mul(p, err));
  }
  if (f.cldice_term >= 0 && f.grad) {  // (without a gradient its backward map is not written)
    const int64_t plane = f.N * f.C * f.P;
    const double* at = f.cldice_maps + e;
    const V st = load_map(d, at + kSkelST * plane, count);
    const V g =
        hn::IfThenZeroElse(hn::Eq(v, hn::Zero(d)), load_map(d, at + kSkelGrad * plane, count));
    h = hn::MulAdd(p, hn::MulAdd(hn::Mul(hn::Set(d, k.CL[c]), v), st, g), h);
  }
  if (f.boundary_term >= 0) {
    const V vpphi = hn::Mul(hn::Mul(v, p), load_map(d, f.boundary_map + e, count));
    loss = hn::MulAdd(hn::Set(d, k.BL[c]), vpphi, loss);
    h = hn::MulAdd(hn::Set(d, k.BG[c]), vpphi, h);
  }
  return h;
}

// What the element pass of a covered softmax call computes (chosen per call, ElementChunk):
enum class Element {
  kGeneral,       // any mix of terms: a softmax per pixel, region and cross-entropy math
  kCrossEntropy,  // cross-entropy terms alone: h = −v (K1 t + K0), no region coefficients
  kCachedP,       // region terms alone, FastCall::cache_p: p from the gradient buffer, no softmax
};

// The probabilities of `count` pixels at element `e` stored there by the statistics pass
// (cache_p): a pointer with class stride `stride`, straight into the gradient for full vectors,
// else a copy in `buf` (zeros past `count`).
HWY_INLINE const float* stage_probabilities(const FastCall& f, int64_t e, size_t count,
                                            size_t lanes, float* buf, int64_t& stride) {
  const float* p = f.grad_f32() + e;
  if (count == lanes) {
    stride = f.class_stride;
    return p;
  }
  for (int64_t c = 0; c < f.C; ++c) {
    for (size_t j = 0; j < lanes; ++j)
      buf[c * kBufLanes + j] = j < count ? p[c * f.class_stride + j] : 0.0f;
  }
  stride = kBufLanes;
  return buf;
}

// The gradient of a vector of pixels to the gradient buffer at element e0: `gradient_of(c)`
// gives g_c for c < C (store_grad: whole vectors straight, a tail or channels-last lane by lane).
template <class GradientOf>
HWY_INLINE void store_gradient(D d, const FastCall& f, int64_t e0, size_t count,
                               GradientOf&& gradient_of) {
  for (int64_t c = 0; c < f.C; ++c)
    store_grad(d, f, gradient_of(c), e0 + c * f.class_stride, count, f.pixel_stride);
}

// The loss of a vector of pixels (returned) and their gradient (when wanted), for the pixels at
// element e0 with labels `lab` and weights `v`; `k` holds the image's folded coefficients.
template <class T, Element M>
HWY_INLINE V element_vector(D d, const FastCall& f, const Folded& k, int64_t e0, size_t count,
                            V lab, V v, float* xbuf, float* e, float* h) {
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C;
  const V one = hn::Set(d, 1.0f);
  if constexpr (M == Element::kCrossEntropy) {
    // h_c = −v k_c with k_c = K1 t + K0 (KT at the label's class, K0 elsewhere), so H = −v S,
    // S = Σ k_c, and g_c = h_c − p_c H = v (p_c S − k_c); the loss is
    // v Σ l_c (log Σ − (x_c − max)) = v (Σ l_c · log Σ − Σ l_c (x_c − max)), l_c = L1 t + L0.
    // One loop over the classes gathers Σ exp, S and the loss sums; one more writes g.
    int64_t stride;
    const float* x = stage_inputs<T>(f, e0, count, lanes, xbuf, stride);
    V mx = hn::LoadU(d, x);
    for (int64_t c = 1; c < C; ++c) mx = hn::Max(mx, hn::LoadU(d, x + c * stride));
    V sum = hn::Zero(d), S = hn::Zero(d), Lw = hn::Zero(d), Lx = hn::Zero(d);
    for (int64_t c = 0; c < C; ++c) {
      const V xm = hn::Sub(hn::LoadU(d, x + c * stride), mx);
      const V ec = exp_nonpositive(d, xm);
      hn::StoreU(ec, d, e + c * kBufLanes);
      sum = hn::Add(sum, ec);
      const auto is_c = hn::Eq(lab, hn::Set(d, static_cast<float>(c)));
      S = hn::Add(S, hn::IfThenElse(is_c, hn::Set(d, k.KT[c]), hn::Set(d, k.K0[c])));
      const V lc = hn::IfThenElse(is_c, hn::Set(d, k.LT[c]), hn::Set(d, k.L0[c]));
      Lw = hn::Add(Lw, lc);
      Lx = hn::MulAdd(lc, xm, Lx);
    }
    const V inv = hn::Div(one, sum);
    if (f.grad) {
      const V vS = hn::Mul(hn::Mul(v, S), inv);  // v S / Σ: times e_c gives v p_c S
      store_gradient(d, f, e0, count, [&](int64_t c) {
        const auto is_c = hn::Eq(lab, hn::Set(d, static_cast<float>(c)));
        const V kc = hn::IfThenElse(is_c, hn::Set(d, k.KT[c]), hn::Set(d, k.K0[c]));
        return hn::MulSub(hn::LoadU(d, e + c * kBufLanes), vS, hn::Mul(v, kc));
      });
    }
    return hn::Mul(v, hn::MulSub(Lw, hn::Log(d, sum), Lx));
  } else {
    const V two = hn::Set(d, 2.0f);
    // p_c of the vector's pixels: computed into `e` (stride kBufLanes), or cached at `pc`
    const float* pc = e;
    int64_t pstride = kBufLanes;
    const float* x = nullptr;
    int64_t stride = 0;
    V mx = hn::Zero(d), inv = one, log_sum = hn::Zero(d);
    if constexpr (M == Element::kCachedP) {
      pc = stage_probabilities(f, e0, count, lanes, e, pstride);
    } else {
      x = stage_inputs<T>(f, e0, count, lanes, xbuf, stride);
      softmax(d, C, x, stride, e, mx, inv, f.need_log ? &log_sum : nullptr);
    }
    V H = hn::Zero(d), loss = hn::Zero(d), label_h = hn::Zero(d);
    const bool label_only = f.focal_term >= 0 || f.marginal_term >= 0;
    const bool map_term = f.hd_term >= 0 || f.boundary_term >= 0 || f.cldice_term >= 0;
    if constexpr (M != Element::kCachedP) {
      if (label_only) label_h = label_terms(d, f, k, lab, v, x, stride, e, mx, inv, log_sum, loss);
    }
    for (int64_t c = 0; c < C; ++c) {
      const auto is_c = hn::Eq(lab, hn::Set(d, static_cast<float>(c)));
      V p;
      if constexpr (M == Element::kCachedP) {
        p = hn::LoadU(d, pc + c * pstride);
      } else {
        p = hn::Mul(hn::LoadU(d, e + c * kBufLanes), inv);
        hn::StoreU(p, d, e + c * kBufLanes);
      }
      // v (p (A t + B1 + 2 p B2) − (K1 t + K0)); the cached mode leaves out the cross-entropy
      // part, which is zero there
      const V region = hn::MulAdd(hn::Mul(two, p), hn::Set(d, k.B2[c]),
                                  hn::IfThenElse(is_c, hn::Set(d, k.AB[c]), hn::Set(d, k.B1[c])));
      V hc;
      if constexpr (M == Element::kCachedP) {
        hc = hn::Mul(v, hn::Mul(p, region));
      } else {
        const V t = hn::IfThenElseZero(is_c, one);
        const V ce = hn::MulAdd(hn::Set(d, k.K1[c]), t, hn::Set(d, k.K0[c]));
        hc = hn::Mul(v, hn::Sub(hn::Mul(p, region), ce));
        if (map_term)
          hc = hn::Add(hc, map_terms(d, f, k, c, e0 + c * f.class_stride, count, p, t, v, loss));
        if (f.need_log) {
          // −log p = log Σ − (x − max): x − max first, which is exact near max
          const V nlogp = hn::Sub(log_sum, hn::Sub(hn::LoadU(d, x + c * stride), mx));
          const V w = hn::Mul(v, hn::MulAdd(hn::Set(d, k.L1[c]), t, hn::Set(d, k.L0[c])));
          loss = hn::MulAdd(w, nlogp, loss);
        }
      }
      if (M != Element::kCachedP && label_only) hc = hn::Add(hc, hn::IfThenElseZero(is_c, label_h));
      hn::StoreU(hc, d, h + c * kBufLanes);
      H = hn::Add(H, hc);
    }
    if (f.grad)
      store_gradient(d, f, e0, count, [&](int64_t c) {  // g_c = h_c − p_c H
        return hn::NegMulAdd(hn::LoadU(d, pc + c * pstride), H, hn::LoadU(d, h + c * kBufLanes));
      });
    return loss;
  }
}

template <class T, class L, Element M>
double element_chunk_t(const FastCall& f, int64_t begin, int64_t end) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t P = f.P;
  float xbuf[kFastMaxClasses * kBufLanes], e[kFastMaxClasses * kBufLanes];
  float h[kFastMaxClasses * kBufLanes];
  Folded k;
  V loss_acc = hn::Zero(d);
  double total = 0.0;
  int pending = 0;
  for (int64_t pix = begin; pix < end;) {  // the chunk's part of one image at a time
    const int64_t n = pix / P;
    fold(f, n, k);
    const int64_t image_end = std::min(end, (n + 1) * P);
    for (int64_t q = pix - n * P; pix < image_end;) {
      const size_t count = static_cast<size_t>(std::min<int64_t>(lanes, image_end - pix));
      V lab, v;
      labels<L>(d, f, false, pix, count, lab, v);
      loss_acc = hn::Add(loss_acc,
                         element_vector<T, M>(d, f, k, f.element(n, q), count, lab, v, xbuf, e, h));
      pix += static_cast<int64_t>(count);
      q += static_cast<int64_t>(count);
      if (++pending == kFastFlush || pix >= end) {
        flush(d, loss_acc, total);
        pending = 0;
      }
    }
  }
  return total;
}

// The first `count` lanes of `value` to consecutive doubles at `out` (a geometry map).
HWY_INLINE void store_map(D d, V value, double* out, size_t count) {
  HWY_ALIGN float lane[kBufLanes];
  hn::Store(value, d, lane);
  for (size_t j = 0; j < count; ++j) out[j] = static_cast<double>(lane[j]);
}
// A 0/1 mask so.
HWY_INLINE void store_mask(D d, hn::Mask<D> mask, double* out, size_t count) {
  store_map(d, hn::IfThenElseZero(mask, hn::Set(d, 1.0f)), out, count);
}

// body(n, q, pix, count, lab, v) for the vectors of pixels of flat pixels [begin, end) (n * P +
// q), none crossing an image (its last vector may have count < lanes), with their labels.
template <class L, class Body>
HWY_INLINE void each_pixel_vector(D d, const FastCall& f, int64_t begin, int64_t end, Body&& body) {
  const int64_t P = f.P;
  const size_t lanes = hn::Lanes(d);
  for (int64_t pix = begin, n = begin / P, q = begin % P; pix < end;) {
    if (q == P) {
      ++n;
      q = 0;
    }
    const size_t count =
        static_cast<size_t>(std::min<int64_t>(lanes, std::min(end, (n + 1) * P) - pix));
    V lab, v;
    labels<L>(d, f, false, pix, count, lab, v);
    body(n, q, pix, count, lab, v);
    pix += static_cast<int64_t>(count);
    q += static_cast<int64_t>(count);
  }
}

// The distance terms' seeds (fast_seed_chunk), per vector of pixels: the labels, and the softmax
// when HAUSDORFF_DT thresholds it; a pixel that does not count has the class −1, so no class's
// {t = 1} holds there, and {p > ½} is cut by m.
template <class T, class L>
void seed_chunk_t(const FastCall& f, int64_t begin, int64_t end) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C, P = f.P, plane = f.N * C * P;
  const bool hd = f.hd_term >= 0, boundary = f.boundary_term >= 0, cldice = f.cldice_term >= 0;
  float xbuf[kFastMaxClasses * kBufLanes], e[kFastMaxClasses * kBufLanes];
  each_pixel_vector<L>(
      d, f, begin, end, [&](int64_t n, int64_t q, int64_t, size_t count, V lab, V v) {
        V mx = hn::Zero(d), inv = hn::Zero(d);
        if (hd || cldice) {
          int64_t stride;
          const float* x = stage_inputs<T>(f, f.element(n, q), count, lanes, xbuf, stride);
          softmax(d, C, x, stride, e, mx, inv, nullptr);
        }
        const auto counted = hn::Ge(lab, hn::Zero(d));
        for (int64_t c = 0; c < C; ++c) {
          const int64_t at = (n * C + c) * P + q;
          const auto is_c = hn::Eq(lab, hn::Set(d, static_cast<float>(c)));
          if (hd) {
            const V p = hn::Mul(hn::LoadU(d, e + c * kBufLanes), inv);
            store_mask(d, hn::And(counted, hn::Gt(p, hn::Set(d, 0.5f))), f.hd_maps[0] + at, count);
            store_mask(d, is_c, f.hd_maps[1] + at, count);
          }
          if (boundary) store_mask(d, is_c, f.boundary_map + at, count);
          if (cldice) {  // ClDiceTerm::seed: p and t where v > 0, else 0
            const auto live = hn::Gt(v, hn::Zero(d));
            const V p = hn::IfThenElseZero(live, hn::Mul(hn::LoadU(d, e + c * kBufLanes), inv));
            store_map(d, p, f.cldice_maps + kSkelP * plane + at, count);
            store_mask(d, hn::And(live, is_c), f.cldice_maps + kSkelT * plane + at, count);
          }
        }
      });
}

// CLDICE's upstream map (fast_upstream_chunk), per vector of pixels: v (dℓ/dA t + dℓ/dB) in
// float from the image's coefficients (v = 0 where the pixel does not count).
template <class L>
void upstream_chunk_t(const FastCall& f, int64_t begin, int64_t end) {
  const D d;
  const int64_t C = f.C, P = f.P, plane = f.N * C * P, W = f.prog->coef_width;
  const int coef_offset = f.prog->term[f.cldice_term].coef_offset;
  double* upstream = f.cldice_maps + kSkelGrad * plane;
  // dℓ/dA + dℓ/dB (summed in double: they cancel as Tprec → 1) and dℓ/dB
  float dAB[kFastMaxClasses], dB[kFastMaxClasses];
  int64_t image = -1;  // whose coefficients dAB and dB hold
  each_pixel_vector<L>(
      d, f, begin, end, [&](int64_t n, int64_t q, int64_t, size_t count, V lab, V v) {
        if (n != image) {
          image = n;
          for (int64_t c = 0; c < C; ++c) {
            const double* k = f.coefs + (n * C + c) * W + coef_offset;
            dAB[c] = narrow_coef<float>(k[0] + k[1]);
            dB[c] = narrow_coef<float>(k[1]);
          }
        }
        for (int64_t c = 0; c < C; ++c) {
          const auto is_c = hn::Eq(lab, hn::Set(d, static_cast<float>(c)));
          const V g = hn::Mul(v, hn::IfThenElse(is_c, hn::Set(d, dAB[c]), hn::Set(d, dB[c])));
          store_map(d, g, upstream + (n * C + c) * P + q, count);
        }
      });
}

// TOPK_CE's keys (fast_topk_keys_chunk): each counted pixel's cross-entropy summed over the
// classes, as topk_pixel_loss (kernels/common/topk.cuh) with the softmax pass's math,
//   ℓ = v Σ_c ω_c (t_c (1 − ε) + ε / C) (log Σ − (x_c − max)),
// every pixel counting (the selection is what these keys make).
template <class T, class L>
int64_t topk_keys_t(const FastCall& selected_call, int64_t begin, int64_t end, uint32_t* keys) {
  FastCall f = selected_call;
  f.selected = nullptr;
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C;
  const TermSpec& ts = f.prog->term[f.topk_term];
  const double eps = ts.label_smoothing;
  float on[kFastMaxClasses], off[kFastMaxClasses];
  for (int64_t c = 0; c < C; ++c) {
    const double w = f.topk_class_weights ? f.topk_class_weights[c] : 1.0;
    on[c] = static_cast<float>(w * (1.0 - eps));
    off[c] = static_cast<float>(w * eps / static_cast<double>(C));
  }
  float xbuf[kFastMaxClasses * kBufLanes], e[kFastMaxClasses * kBufLanes];
  int64_t counted = 0;
  each_pixel_vector<L>(
      d, f, begin, end, [&](int64_t n, int64_t q, int64_t pix, size_t count, V lab, V v) {
        int64_t stride;
        const float* x = stage_inputs<T>(f, f.element(n, q), count, lanes, xbuf, stride);
        V mx, inv, log_sum;
        softmax(d, C, x, stride, e, mx, inv, &log_sum);
        V loss = hn::Zero(d);
        for (int64_t c = 0; c < C; ++c) {
          const V t =
              hn::IfThenElseZero(hn::Eq(lab, hn::Set(d, static_cast<float>(c))), hn::Set(d, 1.0f));
          const V nlogp = hn::Sub(log_sum, hn::Sub(hn::LoadU(d, x + c * stride), mx));
          const V w = hn::MulAdd(hn::Set(d, on[c]), t, hn::Set(d, off[c]));
          loss = hn::MulAdd(w, nlogp, loss);
        }
        loss = hn::Mul(v, loss);
        // topk_key32 of each lane: −0 as +0, the bits flipped below the sign of a non-negative
        // loss, 0 for a NaN, kTopKLeftOut32 where the pixel is not counted
        const hn::RebindToUnsigned<D> du;
        const hn::RebindToSigned<D> di;
        const auto bits = hn::BitCast(du, hn::IfThenZeroElse(hn::Eq(loss, hn::Zero(d)), loss));
        const auto negative = hn::BitCast(du, hn::ShiftRight<31>(hn::BitCast(di, bits)));
        auto key = hn::Xor(bits, hn::AndNot(negative, hn::Set(du, 0x7fffffffu)));
        key = hn::IfThenZeroElse(hn::RebindMask(du, hn::IsNaN(loss)), key);
        const auto in = hn::RebindMask(du, hn::Ge(lab, hn::Zero(d)));
        key = hn::IfThenElse(in, key, hn::Set(du, kTopKLeftOut32));
        if (count == lanes) {
          hn::StoreU(key, du, keys + pix);
        } else {
          HWY_ALIGN uint32_t lane_key[kBufLanes];
          hn::Store(key, du, lane_key);
          std::copy(lane_key, lane_key + count, keys + pix);
        }
        counted += static_cast<int64_t>(hn::CountTrue(du, in));  // lanes past `count` are not in
      });
  return counted;
}

// Dense targets (or a binary mask) with a sigmoid, channels-first: per (image, class) a run of
// pixels, vectors along it (the input, the target and the pixel weights are contiguous there).
//
// The targets of the sigmoid passes: a dense target of type S (t is its value, every element
// counts), or a binary mask of labels of type L (t = 1 where the label is 1; a pixel counts
// where its label is 0 or 1 and not the ignore index: FastCall::mask_labels).
template <class S>
struct DenseTarget {
  using type = S;
};
template <class L>
struct MaskLabels {
  using type = L;
};
template <class TT>
constexpr bool kIsMask = !std::is_same_v<TT, DenseTarget<typename TT::type>>;

// The input x, target t, weight v = m · pixel weight and count m of `count` elements from
// element e (class c of flat pixel pix, whose weight is read): full float vectors straight from
// memory, a mask's labels through `labels` (the one reader of labels), the rest through a float
// copy (zeros past `count`).
template <class T, class TT>
HWY_INLINE void load_run(D d, const FastCall& f, int64_t e, int64_t pix, size_t count, V& x, V& t,
                         V& v, V& m) {
  using S = typename TT::type;
  const size_t lanes = hn::Lanes(d);
  const T* xs = static_cast<const T*>(f.x) + e;
  const V one = hn::Set(d, 1.0f);
  HWY_ALIGN float xb[kBufLanes], tb[kBufLanes], vb[kBufLanes], mb[kBufLanes];
  if constexpr (kIsMask<TT>) {  // C = 1, so e is pix: the labels' own reader decides what counts
    V cls;
    labels<S>(d, f, false, pix, count, cls, v);
    m = hn::IfThenElseZero(hn::Ge(cls, hn::Zero(d)), one);
    t = hn::IfThenElseZero(hn::Eq(cls, one), one);
    if constexpr (kWidens<T>) {
      if (count == lanes) {
        x = load_widened(d, xs);
        return;
      }
    }
    for (size_t j = 0; j < lanes; ++j) xb[j] = j < count ? to_real<float>(xs[j]) : 0.0f;
    x = hn::Load(d, xb);
  } else {
    const S* ts = static_cast<const S*>(f.labels) + e;
    const float* w = f.pixel_weight ? f.pixel_weight + pix : nullptr;
    if constexpr (kWidens<T> && kWidens<S>) {
      if (count == lanes) {
        x = load_widened(d, xs);
        t = load_widened(d, ts);
        v = w ? hn::LoadU(d, w) : one;
        m = one;
        return;
      }
    }
    for (size_t j = 0; j < lanes; ++j) {
      const bool in = j < count;
      xb[j] = in ? to_real<float>(xs[j]) : 0.0f;
      tb[j] = in ? static_cast<float>(ts[j]) : 0.0f;
      vb[j] = in ? (w ? w[j] : 1.0f) : 0.0f;
      mb[j] = in ? 1.0f : 0.0f;
    }
    x = hn::Load(d, xb);
    t = hn::Load(d, tb);
    v = hn::Load(d, vb);
    m = hn::Load(d, mb);
  }
}

// σ(x) and σ(−x) = 1 − σ(x), each without cancellation, and e^−|x|.
struct Sigmoid {
  V p, q, ex;
};
HWY_INLINE Sigmoid sigmoid(D d, V x) {
  const V one = hn::Set(d, 1.0f);
  const V ex = exp_nonpositive(d, hn::Neg(hn::Abs(x)));  // e^−|x| in (0, 1]
  const V inv = hn::Div(one, hn::Add(one, ex));
  const auto nonneg = hn::Ge(x, hn::Zero(d));
  const V exinv = hn::Mul(ex, inv);
  return {hn::IfThenElse(nonneg, inv, exinv), hn::IfThenElse(nonneg, exinv, inv), ex};
}

// Statistics of pixels [q0, q1) of image n (every class) into `row`, as stats_chunk_t:
// region_element_stats with p = σ(x) and the dense t.
template <class T, class TT>
void sigmoid_stats_chunk_t(const FastCall& f, int64_t n, int64_t q0, int64_t q1, double* row) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C, P = f.P, S = f.stat_width;
  std::fill(row, row + C * S, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    V acc[FQ_COUNT];
    double sum[FQ_COUNT];
    for (int k = 0; k < FQ_COUNT; ++k) {
      acc[k] = hn::Zero(d);
      sum[k] = 0.0;
    }
    int pending = 0;
    for (int64_t q = q0; q < q1; q += static_cast<int64_t>(lanes)) {
      const size_t count = static_cast<size_t>(std::min<int64_t>(lanes, q1 - q));
      V x, t, v, m;
      load_run<T, TT>(d, f, (n * C + c) * P + q, n * P + q, count, x, t, v, m);
      const V p = sigmoid(d, x).p, vp = hn::Mul(v, p), vt = hn::Mul(v, t);
      acc[FQ_VPT] = hn::MulAdd(vp, t, acc[FQ_VPT]);
      acc[FQ_VP] = hn::Add(acc[FQ_VP], vp);
      acc[FQ_VPP] = hn::MulAdd(vp, p, acc[FQ_VPP]);
      acc[FQ_VT] = hn::Add(acc[FQ_VT], vt);
      acc[FQ_VTT] = hn::MulAdd(vt, t, acc[FQ_VTT]);
      acc[FQ_V] = hn::Add(acc[FQ_V], v);
      acc[FQ_MT] = hn::MulAdd(m, t, acc[FQ_MT]);
      acc[FQ_M] = hn::Add(acc[FQ_M], m);
      if (++pending == kFastFlush || q + static_cast<int64_t>(lanes) >= q1) {
        for (int k = 0; k < FQ_COUNT; ++k)
          if (f.need[k]) flush(d, acc[k], sum[k]);
        pending = 0;
      }
    }
    for (int j = 0; j < f.slot_count; ++j) row[c * S + f.slot[j]] = sum[f.quantity[j]];
  }
}

// Step 4 for flat pixels [begin, end): for each (image, class) the binary cross-entropy term,
// BceTerm::element with the sigmoid:
//   ℓ = v (ω⁺ t′ softplus(−x) + ω⁻ (1 − t′) softplus(x)),  dℓ/dx = v (ω⁻ (1 − t′) p − ω⁺ t′ q),
// t′ = t (1 − ε) + ε / 2, softplus(±x) = max(±x, 0) + log1p(e^−|x|), p = σ(x), q = σ(−x); the
// loss times scale, the gradient times grad_scale · scale; the focal term, FocalBinaryTerm::
// element with the sigmoid:
//   ℓ = w ce u^γ,  dℓ/dx = w u^γ ((p − t) + γ ce (1 − 2t) r),  w = v ω α_t,
// ce = t softplus(−x) + (1 − t) softplus(x), u = 1 − p_t = p (1 − t) + q t,
// α_t = α t + (1 − α)(1 − t) (1 when α < 0), r = p q / u (u = 0: p where t ≥ ½, else q);
// and the region terms folded as in the softmax pass, dℓ/dx = v (A t + B1 + 2 p B2) · p q (the
// sigmoid's derivative).
template <class T, class TT>
double sigmoid_chunk_t(const FastCall& f, int64_t begin, int64_t end) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  const int64_t C = f.C, P = f.P;
  const bool bce = f.bce_term >= 0, region = f.any_region;
  const TermSpec* ts = bce ? &f.prog->term[f.bce_term] : nullptr;
  const double scale = bce ? f.scale[f.bce_term] : 0.0, g = f.grad_scale * scale;
  const V zero = hn::Zero(d), one = hn::Set(d, 1.0f), two = hn::Set(d, 2.0f);
  const V keep = hn::Set(d, bce ? static_cast<float>(1.0 - ts->label_smoothing) : 0.0f);
  const V shift = hn::Set(d, bce ? static_cast<float>(ts->label_smoothing / 2.0) : 0.0f);
  const bool focal = f.focal_term >= 0;
  const TermSpec* fs = focal ? &f.prog->term[f.focal_term] : nullptr;
  const double fscale = focal ? f.scale[f.focal_term] : 0.0, fg = f.grad_scale * fscale;
  const float gamma = focal ? static_cast<float>(fs->gamma) : 0.0f;
  const bool alpha_on = focal && fs->alpha >= 0.0;
  const V alpha = hn::Set(d, alpha_on ? static_cast<float>(fs->alpha) : 0.0f);
  const V vgamma = hn::Set(d, gamma), half = hn::Set(d, 0.5f);
  Folded k;
  V loss_acc = zero;
  double total = 0.0;
  int pending = 0;
  for (int64_t pix = begin; pix < end;) {
    const int64_t n = pix / P, q0 = pix % P;
    const int64_t image_end = std::min(end, (n + 1) * P), q1 = q0 + (image_end - pix);
    if (region) fold(f, n, k);
    for (int64_t c = 0; c < C; ++c) {
      V gp = zero, gn = zero, lp = zero, ln = zero;
      if (bce) {
        const double* coef = f.coefs + (n * C + c) * f.prog->coef_width + ts->coef_offset;
        gp = hn::Set(d, narrow_coef<float>(g * coef[0]));
        gn = hn::Set(d, narrow_coef<float>(g * coef[1]));
        lp = hn::Set(d, narrow_coef<float>(scale * coef[0]));
        ln = hn::Set(d, narrow_coef<float>(scale * coef[1]));
      }
      V fl = zero, fgw = zero;  // the focal term's ω times scale, and times grad_scale · scale
      if (focal) {
        const double w = f.coefs[(n * C + c) * f.prog->coef_width + fs->coef_offset];
        fl = hn::Set(d, narrow_coef<float>(fscale * w));
        fgw = hn::Set(d, narrow_coef<float>(fg * w));
      }
      const V AB = hn::Set(d, region ? k.AB[c] : 0.0f), B1 = hn::Set(d, region ? k.B1[c] : 0.0f);
      const V B2 = hn::Set(d, region ? k.B2[c] : 0.0f);
      for (int64_t q = q0; q < q1; q += static_cast<int64_t>(lanes)) {
        const size_t count = static_cast<size_t>(std::min<int64_t>(lanes, q1 - q));
        const int64_t e = (n * C + c) * P + q;
        V x, t, v, m;
        load_run<T, TT>(d, f, e, n * P + q, count, x, t, v, m);
        const Sigmoid sg = sigmoid(d, x);
        V gr = zero;
        if (bce) {
          const V l1p = log1p_unit(d, sg.ex);
          const V sp_pos = hn::Add(hn::Max(x, zero), l1p);           // softplus(x) = −log q
          const V sp_neg = hn::Add(hn::Max(hn::Neg(x), zero), l1p);  // softplus(−x) = −log p
          const V tsm = hn::MulAdd(t, keep, shift);                  // t′
          const V off = hn::Sub(one, tsm);
          loss_acc = hn::Add(loss_acc, hn::Mul(v, hn::MulAdd(hn::Mul(lp, tsm), sp_neg,
                                                             hn::Mul(hn::Mul(ln, off), sp_pos))));
          gr =
              hn::Mul(v, hn::Sub(hn::Mul(hn::Mul(gn, off), sg.p), hn::Mul(hn::Mul(gp, tsm), sg.q)));
        }
        if (focal) {
          const V l1p = log1p_unit(d, sg.ex);
          const V sp_pos = hn::Add(hn::Max(x, zero), l1p);
          const V sp_neg = hn::Add(hn::Max(hn::Neg(x), zero), l1p);
          const V nt = hn::Sub(one, t);
          const V ce = hn::MulAdd(t, sp_neg, hn::Mul(nt, sp_pos));
          const V u = hn::MulAdd(sg.p, nt, hn::Mul(sg.q, t));
          const V ug = pow_unit(d, u, gamma);
          const V at = alpha_on ? hn::MulAdd(alpha, t, hn::Mul(hn::Sub(one, alpha), nt)) : one;
          const V vat = hn::Mul(v, at);
          loss_acc = hn::Add(loss_acc, hn::Mul(hn::Mul(hn::Mul(vat, fl), ce), ug));
          const auto live = hn::Gt(u, zero);
          const V r =
              hn::IfThenElse(live, hn::Div(hn::Mul(sg.p, sg.q), hn::IfThenElse(live, u, one)),
                             hn::IfThenElse(hn::Ge(t, half), sg.p, sg.q));
          const V inner = hn::MulAdd(hn::Mul(hn::Mul(vgamma, ce), hn::NegMulAdd(two, t, one)), r,
                                     hn::Sub(sg.p, t));
          gr = hn::MulAdd(hn::Mul(hn::Mul(vat, fgw), ug), inner, gr);
        }
        if (region) {
          // A t + B1 = AB t + B1 (1 − t)
          const V base = hn::MulAdd(AB, t, hn::Mul(B1, hn::Sub(one, t)));
          const V h = hn::Mul(v, hn::MulAdd(hn::Mul(two, sg.p), B2, base));
          gr = hn::MulAdd(hn::Mul(h, sg.p), sg.q, gr);
        }
        if (f.grad) store_grad(d, f, gr, e, count, 1);
        if (++pending == kFastFlush) {
          flush(d, loss_acc, total);
          pending = 0;
        }
      }
    }
    pix = image_end;
  }
  flush(d, loss_acc, total);
  return total;
}

// The entries of the target: the dtypes of a call dispatched once per chunk (dispatch_among
// names those the fast path covers).
template <class F>
decltype(auto) with_input(const FastCall& f, F&& fn) {
  return dispatch_among<float, half_t, bf16_t>(f.x_dtype, std::forward<F>(fn));
}
template <class F>
decltype(auto) with_labels(const FastCall& f, F&& fn) {
  return dispatch_among<int64_t, int32_t, uint8_t>(f.label_dtype, std::forward<F>(fn));
}

// Dense targets of the sigmoid passes: float32 or uint8.
template <class F>
decltype(auto) with_sigmoid_targets(const FastCall& f, F&& fn) {
  if (f.mask_labels)
    return dispatch_among<uint8_t, int32_t, int64_t>(
        f.label_dtype, [&](auto l) { return fn(MaskLabels<decltype(l)>{}); });
  return dispatch_among<float, uint8_t>(f.label_dtype,
                                        [&](auto s) { return fn(DenseTarget<decltype(s)>{}); });
}

void StatsChunk(const FastCall& f, int64_t n, int64_t q0, int64_t q1, double* row) {
  if (f.sigmoid_dense)
    return with_input(f, [&](auto x) {
      with_sigmoid_targets(
          f, [&](auto t) { sigmoid_stats_chunk_t<decltype(x), decltype(t)>(f, n, q0, q1, row); });
    });
  if (f.stats_label_counts)  // reads no input
    return with_labels(f, [&](auto l) { label_counts_chunk_t<decltype(l)>(f, n, q0, q1, row); });
  with_input(f, [&](auto x) {
    with_labels(f, [&](auto l) { stats_chunk_t<decltype(x), decltype(l)>(f, n, q0, q1, row); });
  });
}

double ElementChunk(const FastCall& f, int64_t begin, int64_t end) {
  if (f.sigmoid_dense)
    return with_input(f, [&](auto x) {
      return with_sigmoid_targets(
          f, [&](auto t) { return sigmoid_chunk_t<decltype(x), decltype(t)>(f, begin, end); });
    });
  return with_labels(f, [&](auto l) {
    using L = decltype(l);
    if (f.cache_p)  // reads no input
      return element_chunk_t<float, L, Element::kCachedP>(f, begin, end);
    return with_input(f, [&](auto x) {
      using T = decltype(x);
      return f.any_region || f.focal_term >= 0 || f.marginal_term >= 0 || f.hd_term >= 0 ||
                     f.boundary_term >= 0 || f.cldice_term >= 0
                 ? element_chunk_t<T, L, Element::kGeneral>(f, begin, end)
                 : element_chunk_t<T, L, Element::kCrossEntropy>(f, begin, end);
    });
  });
}

// CHECK_TARGETS (FastCall::check_first), by the rules of check_targets (passes.cuh), the first
// bad element of [begin, end) refused with its message. Class indices of flat pixels as the
// passes read them:
template <class L>
void check_labels_t(const FastCall& f, int64_t begin, int64_t end) {
  const D d;
  const size_t lanes = hn::Lanes(d);
  for (int64_t pix = begin; pix < end; pix += static_cast<int64_t>(lanes)) {
    V lab, v;
    labels<L>(d, f, true, pix, static_cast<size_t>(std::min<int64_t>(lanes, end - pix)), lab, v);
  }
}

// Values of a float or uint8 array that must lie in [lo, hi] (NaN fails): whole vectors are
// compared at once, and the vector with a bad value, or the tail, element by element.
template <class S, class Valid, class Refuse>
void check_range_t(const S* a, int64_t begin, int64_t end, float lo, float hi, Valid valid,
                   Refuse refuse) {
  int64_t i = begin;
  if constexpr (std::is_same_v<S, float>) {
    const D d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    const V vlo = hn::Set(d, lo), vhi = hn::Set(d, hi);
    for (; i + lanes <= end; i += lanes) {
      const V x = hn::LoadU(d, a + i);
      if (!hn::AllTrue(d, hn::And(hn::Ge(x, vlo), hn::Le(x, vhi)))) break;
    }
  } else {  // bytes: blocks without an early exit, which the compiler vectorises
    constexpr int64_t kBlock = 256;
    for (; i + kBlock <= end; i += kBlock) {
      bool bad = false;
      for (int64_t j = i; j < i + kBlock; ++j) bad |= !(a[j] >= lo && a[j] <= hi);
      if (bad) break;
    }
  }
  for (; i < end; ++i)
    if (!valid(a[i])) refuse(i);
}

void CheckTargetsChunk(const FastCall& f, int64_t begin, int64_t end) {
  if (!f.sigmoid_dense || f.mask_labels)
    return with_labels(f, [&](auto l) { check_labels_t<decltype(l)>(f, begin, end); });
  dispatch_among<float, uint8_t>(f.label_dtype, [&](auto tag) {  // dense targets in [0, 1]
    using S = decltype(tag);
    const S* t = static_cast<const S*>(f.labels);
    check_range_t(
        t, begin, end, 0.0f, 1.0f,
        [](S v) { return dense_target_is_valid(static_cast<double>(v)); },
        [&](int64_t i) { fail_invalid_target(*f.call, i, t + i); });
  });
}

void SeedChunk(const FastCall& f, int64_t begin, int64_t end) {
  with_labels(f, [&](auto l) {
    with_input(f, [&](auto x) { seed_chunk_t<decltype(x), decltype(l)>(f, begin, end); });
  });
}

void UpstreamChunk(const FastCall& f, int64_t begin, int64_t end) {
  with_labels(f, [&](auto l) { upstream_chunk_t<decltype(l)>(f, begin, end); });
}

int64_t TopKKeysChunk(const FastCall& f, int64_t begin, int64_t end, uint32_t* keys) {
  return with_labels(f, [&](auto l) {
    return with_input(
        f, [&](auto x) { return topk_keys_t<decltype(x), decltype(l)>(f, begin, end, keys); });
  });
}

void CheckWeightsChunk(const FastCall& f, int64_t begin, int64_t end) {
  const float* w = f.pixel_weight;
  check_range_t(
      w, begin, end, 0.0f, 3.4028234663852886e38f, [](float v) { return pixel_weight_is_valid(v); },
      [&](int64_t i) { fail_invalid_pixel_weight(i, w[i]); });
}

}  // namespace HWY_NAMESPACE
}  // namespace culoss::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cpuid.h>

#include <cstdlib>
#include <string>

namespace culoss::cpu {

namespace {

using StatsPtr = void (*)(const FastCall&, int64_t, int64_t, int64_t, double*);
using ElementPtr = double (*)(const FastCall&, int64_t, int64_t);
using CheckPtr = void (*)(const FastCall&, int64_t, int64_t);
using KeysPtr = int64_t (*)(const FastCall&, int64_t, int64_t, uint32_t*);
using SeedPtr = void (*)(const FastCall&, int64_t, int64_t);

struct Target {
  StatsPtr stats;
  ElementPtr element;
  CheckPtr check_targets, check_weights;
  KeysPtr topk_keys;
  SeedPtr seed, upstream;
  const char* name;
};

// The entries compiled for one instruction set (namespace N_<target>).
#define CULOSS_FAST_TARGET(ns, name)                                                    \
  Target {                                                                              \
    &ns::StatsChunk, &ns::ElementChunk, &ns::CheckTargetsChunk, &ns::CheckWeightsChunk, \
        &ns::TopKKeysChunk, &ns::SeedChunk, &ns::UpstreamChunk, name                    \
  }

// What the CPU and the OS support, read from CPUID and XGETBV (the OS must save the vector
// registers): the features Highway's targets assume (hwy/targets.cc, version 1.0).
struct CpuFeatures {
  bool sse4 = false, avx2 = false, avx3 = false;
};

CpuFeatures cpu_features() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19), sse42 = c & (1u << 20);
  const bool pclmul = c & (1u << 1), aes = c & (1u << 25), fma = c & (1u << 12);
  const bool f16c = c & (1u << 29), osxsave = c & (1u << 27), avx = c & (1u << 28);
  f.sse4 = ssse3 && sse41 && sse42 && pclmul && aes;
  if (!f.sse4 || !osxsave || !avx) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return f;  // SSE and AVX state
  unsigned a7 = 0, b7 = 0, c7 = 0, d7 = 0;
  if (!__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) return f;
  unsigned ae = 0, be = 0, ce = 0, de = 0;
  __get_cpuid(0x80000001u, &ae, &be, &ce, &de);
  const bool avx2 = b7 & (1u << 5), bmi1 = b7 & (1u << 3), bmi2 = b7 & (1u << 8);
  const bool lzcnt = ce & (1u << 5);
  f.avx2 = avx2 && bmi1 && bmi2 && fma && f16c && lzcnt;
  const bool avx512 = (b7 & (1u << 16)) && (b7 & (1u << 17)) && (b7 & (1u << 30)) &&
                      (b7 & (1u << 31));                    // F, DQ, BW, VL
  f.avx3 = f.avx2 && avx512 && (xcr0_lo & 0xe0u) == 0xe0u;  // opmask and ZMM state
  return f;
}

// CULOSS_CPU_SIMD=AVX2, SSE4 or baseline caps the instruction set below what the CPU has (the
// tests run the fast path on each; read once per process).
CpuFeatures capped(CpuFeatures f) {
  const char* cap = std::getenv("CULOSS_CPU_SIMD");
  if (!cap) return f;
  const std::string c(cap);
  if (c == "AVX2" || c == "SSE4" || c == "baseline") f.avx3 = false;
  if (c == "SSE4" || c == "baseline") f.avx2 = false;
  if (c == "baseline") f.sse4 = false;
  return f;
}

Target select_target() {
  const CpuFeatures cpu = capped(cpu_features());
  (void)cpu;
#if HWY_TARGETS & HWY_AVX3
  if (cpu.avx3) return CULOSS_FAST_TARGET(N_AVX3, "AVX3");
#endif
#if HWY_TARGETS & HWY_AVX2
  if (cpu.avx2) return CULOSS_FAST_TARGET(N_AVX2, "AVX2");
#endif
#if HWY_TARGETS & HWY_SSE4
  if (cpu.sse4) return CULOSS_FAST_TARGET(N_SSE4, "SSE4");
#endif
  return {&HWY_STATIC_DISPATCH(StatsChunk),        &HWY_STATIC_DISPATCH(ElementChunk),
          &HWY_STATIC_DISPATCH(CheckTargetsChunk), &HWY_STATIC_DISPATCH(CheckWeightsChunk),
          &HWY_STATIC_DISPATCH(TopKKeysChunk),     &HWY_STATIC_DISPATCH(SeedChunk),
          &HWY_STATIC_DISPATCH(UpstreamChunk),     "baseline"};
}

const Target& target() {
  static const Target t = select_target();
  return t;
}

}  // namespace

void fast_stats_chunk(const FastCall& f, int64_t n, int64_t q0, int64_t q1, double* row) {
  target().stats(f, n, q0, q1, row);
}
double fast_element_chunk(const FastCall& f, int64_t begin, int64_t end) {
  return target().element(f, begin, end);
}
void fast_check_targets_chunk(const FastCall& f, int64_t begin, int64_t end) {
  target().check_targets(f, begin, end);
}
void fast_check_weights_chunk(const FastCall& f, int64_t begin, int64_t end) {
  target().check_weights(f, begin, end);
}
int64_t fast_topk_keys_chunk(const FastCall& f, int64_t begin, int64_t end, uint32_t* keys) {
  return target().topk_keys(f, begin, end, keys);
}
void fast_seed_chunk(const FastCall& f, int64_t begin, int64_t end) {
  target().seed(f, begin, end);
}
void fast_upstream_chunk(const FastCall& f, int64_t begin, int64_t end) {
  target().upstream(f, begin, end);
}
const char* fast_target_name() { return target().name; }

}  // namespace culoss::cpu
#endif  // HWY_ONCE

#else  // no Highway: nothing is covered (fast_covers), these are never called

namespace culoss::cpu {
void fast_stats_chunk(const FastCall&, int64_t, int64_t, int64_t, double*) {}
double fast_element_chunk(const FastCall&, int64_t, int64_t) { return 0.0; }
void fast_check_targets(const FastCall&) {}
void fast_check_targets_chunk(const FastCall&, int64_t, int64_t) {}
void fast_check_weights_chunk(const FastCall&, int64_t, int64_t) {}
int64_t fast_topk_keys_chunk(const FastCall&, int64_t, int64_t, uint32_t*) { return 0; }
void fast_seed_chunk(const FastCall&, int64_t, int64_t) {}
void fast_upstream_chunk(const FastCall&, int64_t, int64_t) {}
const char* fast_target_name() { return "none"; }
}  // namespace culoss::cpu

#endif  // CULOSS_HAVE_HWY

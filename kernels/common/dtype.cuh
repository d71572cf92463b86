// Element types: the closed set of dtypes culoss reads and writes, 16-bit float storage types,
// and conversions. Host code converts bit by bit; device code uses the CUDA intrinsics.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/common/macros.cuh"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace culoss {

// Every dtype a culoss tensor may have (lanes are always 1).
enum class DType : uint8_t { F32, F64, F16, BF16, U8, I32, I64 };

struct half_t {
  uint16_t bits;
};
struct bf16_t {
  uint16_t bits;
};

CULOSS_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
CULOSS_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

CULOSS_HD float half_to_float(uint16_t h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h));
#else
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return bits_float(sign);
    int shift = 0;  // subnormal: normalize the mantissa
    while (!(man & 0x400u)) {
      man <<= 1;
      ++shift;
    }
    return bits_float(sign | ((113u - shift) << 23) | ((man & 0x3ffu) << 13));
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
#endif
}

// Round to nearest, ties to even; overflow to infinity; NaN stays NaN.
CULOSS_HD uint16_t float_to_half(float f) {
#if defined(__CUDA_ARCH__)
  return __half_as_ushort(__float2half_rn(f));
#else
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u);
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (ax < 0x38800000u) {                        // below 2^-14: subnormal half or zero
    if (ax <= 0x33000000u) return sign;          // <= 2^-25 rounds to (even) zero
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  const uint32_t rebias = ax - 0x38000000u;
  uint32_t r = rebias >> 13;
  const uint32_t rem = rebias & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<uint16_t>(sign | r);
#endif
}

CULOSS_HD float bf16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

CULOSS_HD uint16_t float_to_bf16(float f) {
#if defined(__CUDA_ARCH__)
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
#endif
}

// Typed element access. `R` is the computation type (double on the CPU, float or double on CUDA).
template <class R>
CULOSS_HD R to_real(float v) {
  return static_cast<R>(v);
}
template <class R>
CULOSS_HD R to_real(double v) {
  return static_cast<R>(v);
}
template <class R>
CULOSS_HD R to_real(half_t v) {
  return static_cast<R>(half_to_float(v.bits));
}
template <class R>
CULOSS_HD R to_real(bf16_t v) {
  return static_cast<R>(bf16_to_float(v.bits));
}

template <class T>
struct StoreAs;
template <>
struct StoreAs<float> {
  template <class R>
  CULOSS_HD static float from(R v) {
    return static_cast<float>(v);
  }
};
template <>
struct StoreAs<double> {
  template <class R>
  CULOSS_HD static double from(R v) {
    return static_cast<double>(v);
  }
};
template <>
struct StoreAs<half_t> {
  template <class R>
  CULOSS_HD static half_t from(R v) {
    return half_t{float_to_half(static_cast<float>(v))};
  }
};
template <>
struct StoreAs<bf16_t> {
  template <class R>
  CULOSS_HD static bf16_t from(R v) {
    return bf16_t{float_to_bf16(static_cast<float>(v))};
  }
};

// Reads element i of an untyped buffer of dtype `dt` as R (targets and weights: the dtype is a
// runtime value, uniform across a launch, so the branch costs nothing on the GPU).
template <class R>
CULOSS_HD R load_as(const void* data, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32:
      return static_cast<R>(static_cast<const float*>(data)[i]);
    case DType::F64:
      return static_cast<R>(static_cast<const double*>(data)[i]);
    case DType::F16:
      return to_real<R>(static_cast<const half_t*>(data)[i]);
    case DType::BF16:
      return to_real<R>(static_cast<const bf16_t*>(data)[i]);
    case DType::U8:
      return static_cast<R>(static_cast<const uint8_t*>(data)[i]);
    case DType::I32:
      return static_cast<R>(static_cast<const int32_t*>(data)[i]);
    case DType::I64:
      return static_cast<R>(static_cast<const int64_t*>(data)[i]);
  }
  return R(0);
}

// Reads an integer label (index targets are u8, i32 or i64).
CULOSS_HD int64_t load_label(const void* data, DType dt, int64_t i) {
  switch (dt) {
    case DType::U8:
      return static_cast<const uint8_t*>(data)[i];
    case DType::I32:
      return static_cast<const int32_t*>(data)[i];
    case DType::I64:
      return static_cast<const int64_t*>(data)[i];
    default:
      return -1;
  }
}

// Writes element i of an output buffer whose dtype is F32 or F64 (loss values), or the
// gradient dtypes (F32/F64/F16/BF16).
template <class R>
CULOSS_HD void store_as(void* data, DType dt, int64_t i, R v) {
  switch (dt) {
    case DType::F32:
      static_cast<float*>(data)[i] = static_cast<float>(v);
      return;
    case DType::F64:
      static_cast<double*>(data)[i] = static_cast<double>(v);
      return;
    case DType::F16:
      static_cast<half_t*>(data)[i] = StoreAs<half_t>::from(v);
      return;
    case DType::BF16:
      static_cast<bf16_t*>(data)[i] = StoreAs<bf16_t>::from(v);
      return;
    default:
      return;
  }
}

// Computation type of the CUDA kernels: double for float64 inputs, float otherwise (accumulation
// in fp32 or better). The CPU backend computes in double throughout.
template <class T>
struct ComputeType {
  using type = float;
};
template <>
struct ComputeType<double> {
  using type = double;
};

constexpr int dtype_bytes(DType dt) {
  return dt == DType::F64 || dt == DType::I64    ? 8
         : dt == DType::F32 || dt == DType::I32  ? 4
         : dt == DType::F16 || dt == DType::BF16 ? 2
                                                 : 1;
}

}  // namespace culoss

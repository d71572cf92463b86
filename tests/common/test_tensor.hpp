// Host tensors for the tests: owning storage, a DLTensor view, element access as double.
// fp16/bf16 conversions here are written independently of the library's.
#pragma once

#include <culoss/culoss.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <vector>

namespace testing_util {

inline DLDataType dt(uint8_t code, uint8_t bits) { return DLDataType{code, bits, 1}; }
inline DLDataType f32() { return dt(kDLFloat, 32); }
inline DLDataType f64() { return dt(kDLFloat, 64); }
inline DLDataType f16() { return dt(kDLFloat, 16); }
inline DLDataType bf16() { return dt(kDLBfloat, 16); }
inline DLDataType u8() { return dt(kDLUInt, 8); }
inline DLDataType i32() { return dt(kDLInt, 32); }
inline DLDataType i64() { return dt(kDLInt, 64); }

inline float half_bits_to_float(uint16_t h) {
  const int sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(static_cast<double>(man), -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = std::ldexp(static_cast<double>(man | 0x400), exp - 25);
  return static_cast<float>(sign ? -v : v);
}
// Round to nearest even by searching the representable neighbours (slow, obviously right).
inline uint16_t float_to_half_bits(float f) {
  if (std::isnan(f)) return 0x7e00;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;
  uint16_t lo = 0, hi = 0x7bff;  // binary search over the ordered positive encodings
  while (lo < hi) {
    uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (half_bits_to_float(mid) <= a) lo = mid; else hi = static_cast<uint16_t>(mid - 1);
  }
  uint16_t best = lo;
  if (lo < 0x7bff || a > half_bits_to_float(0x7bff)) {
    const double dl = a - half_bits_to_float(lo);
    const double dh = (lo == 0x7bff ? 65536.0 : half_bits_to_float(static_cast<uint16_t>(lo + 1))) - a;
    if (dh < dl || (dh == dl && (lo & 1))) best = static_cast<uint16_t>(lo + 1);
  }
  if (best == 0x7c00) return sign | 0x7c00;
  return sign | best;
}
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t float_to_bf16_bits(float f) {
  if (std::isnan(f)) return 0x7fc0;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t lsb = (u >> 16) & 1;
  return static_cast<uint16_t>((u + 0x7fff + lsb) >> 16);
}

// A compact row-major host tensor with owning storage.
struct TestTensor {
  std::vector<int64_t> shape;
  DLDataType dtype{};
  std::vector<uint8_t> bytes;
  DLTensor view{};

  TestTensor() = default;
  TestTensor(std::vector<int64_t> s, DLDataType d) : shape(std::move(s)), dtype(d) {
    bytes.assign(static_cast<size_t>(numel() * elem_size()) + 1, 0);  // +1: never a NULL data
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t elem_size() const { return dtype.bits / 8; }
  void* data() { return bytes.data(); }

  // A fresh CPU DLTensor view (re-made on every call so copies of TestTensor stay valid).
  DLTensor* dl() {
    view.data = bytes.data();
    view.device = DLDevice{kDLCPU, 0};
    view.ndim = static_cast<int32_t>(shape.size());
    view.dtype = dtype;
    view.shape = shape.data();
    view.strides = nullptr;
    view.byte_offset = 0;
    return &view;
  }

  double get(int64_t i) const {
    const uint8_t* p = bytes.data() + i * elem_size();
    switch (dtype.code) {
      case kDLFloat:
        if (dtype.bits == 32) { float v; std::memcpy(&v, p, 4); return v; }
        if (dtype.bits == 64) { double v; std::memcpy(&v, p, 8); return v; }
        { uint16_t h; std::memcpy(&h, p, 2); return half_bits_to_float(h); }
      case kDLBfloat: { uint16_t h; std::memcpy(&h, p, 2); return bf16_bits_to_float(h); }
      case kDLUInt: return *p;
      case kDLInt:
        if (dtype.bits == 32) { int32_t v; std::memcpy(&v, p, 4); return v; }
        { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
    }
    return NAN;
  }
  int64_t get_int(int64_t i) const {
    const uint8_t* p = bytes.data() + i * elem_size();
    if (dtype.code == kDLInt && dtype.bits == 64) { int64_t v; std::memcpy(&v, p, 8); return v; }
    return static_cast<int64_t>(get(i));
  }
  void set(int64_t i, double x) {
    uint8_t* p = bytes.data() + i * elem_size();
    switch (dtype.code) {
      case kDLFloat:
        if (dtype.bits == 32) { float v = static_cast<float>(x); std::memcpy(p, &v, 4); return; }
        if (dtype.bits == 64) { std::memcpy(p, &x, 8); return; }
        { uint16_t h = float_to_half_bits(static_cast<float>(x)); std::memcpy(p, &h, 2); return; }
      case kDLBfloat: { uint16_t h = float_to_bf16_bits(static_cast<float>(x)); std::memcpy(p, &h, 2); return; }
      case kDLUInt: *p = static_cast<uint8_t>(x); return;
      case kDLInt:
        if (dtype.bits == 32) { int32_t v = static_cast<int32_t>(x); std::memcpy(p, &v, 4); return; }
        { int64_t v = static_cast<int64_t>(x); std::memcpy(p, &v, 8); return; }
    }
  }
  // Values as stored (after rounding to the dtype), in double.
  std::vector<double> values() const {
    std::vector<double> v(static_cast<size_t>(numel()));
    for (int64_t i = 0; i < numel(); ++i) v[static_cast<size_t>(i)] = get(i);
    return v;
  }
  void fill(double x) { for (int64_t i = 0; i < numel(); ++i) set(i, x); }
  // Fills with a byte pattern that decodes to NaN (floats) so unwritten elements show.
  void poison() { std::memset(bytes.data(), 0xff, bytes.size()); }
};

// Owns a culoss_loss and destroys it.
struct Loss {
  culoss_loss h = nullptr;
  explicit Loss(culoss_kind k) { culoss_loss_create(&h, k); }
  ~Loss() { culoss_loss_destroy(h); }
  Loss(const Loss&) = delete;
  Loss& operator=(const Loss&) = delete;
  operator culoss_loss() const { return h; }
};

}  // namespace testing_util

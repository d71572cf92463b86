// The one dtype dispatch: calls f(T{}) with the C++ storage type of a dtype, chosen among the
// types a caller names (dispatch_among), and f(G*) with the gradient's.
#pragma once

#include <utility>

#include "core/error.hpp"
#include "kernels/common/dtype.cuh"

namespace culoss {

// The dtype of a C++ storage type.
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::F32; }
template <>
constexpr DType dtype_of<double>() { return DType::F64; }
template <>
constexpr DType dtype_of<half_t>() { return DType::F16; }
template <>
constexpr DType dtype_of<bf16_t>() { return DType::BF16; }
template <>
constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <>
constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <>
constexpr DType dtype_of<int64_t>() { return DType::I64; }

// f(T{}) for the T among Ts whose dtype is dt: code is instantiated for the named types only (a
// pass specialised for some dtypes names those). Any other dtype is an internal error: the
// validator or the caller's selection has let through what it should not have.
template <class T, class... Ts, class F>
decltype(auto) dispatch_among(DType dt, F&& f) {
  if (dt == dtype_of<T>()) return f(T{});
  if constexpr (sizeof...(Ts) > 0)
    return dispatch_among<Ts...>(dt, std::forward<F>(f));
  else
    fail(CULOSS_ERROR_INTERNAL, "dispatch: a dtype this code was not built for");
}

// Every float dtype of an input.
template <class F>
decltype(auto) dispatch_float(DType dt, F&& f) {
  return dispatch_among<float, double, half_t, bf16_t>(dt, std::forward<F>(f));
}

// Calls f(G* grad) with the gradient's storage type: float32, or the input's T (NULL when the
// call has no gradient).
template <class T, class F>
decltype(auto) dispatch_grad(bool present, DType dtype, void* data, F&& f) {
  if (present && dtype == DType::F32) return f(static_cast<float*>(data));
  return f(present ? static_cast<T*>(data) : static_cast<T*>(nullptr));
}

}  // namespace culoss

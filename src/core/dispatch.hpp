// The one dtype dispatch: calls f(T{}) with the C++ storage type of a float dtype, and f(G*)
// with the gradient's.
#pragma once

#include "core/error.hpp"
#include "kernels/common/dtype.cuh"

namespace culoss {

template <class F>
decltype(auto) dispatch_float(DType dt, F&& f) {
  switch (dt) {
    case DType::F32:
      return f(float{});
    case DType::F64:
      return f(double{});
    case DType::F16:
      return f(half_t{});
    case DType::BF16:
      return f(bf16_t{});
    default:
      break;
  }
  fail(CULOSS_ERROR_INTERNAL, "dispatch_float: not a float dtype");
}

// Calls f(G* grad) with the gradient's storage type: float32, or the input's T (NULL when the
// call has no gradient).
template <class T, class F>
decltype(auto) dispatch_grad(bool present, DType dtype, void* data, F&& f) {
  if (present && dtype == DType::F32) return f(static_cast<float*>(data));
  return f(present ? static_cast<T*>(data) : static_cast<T*>(nullptr));
}

}  // namespace culoss

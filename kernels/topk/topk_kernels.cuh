// CUDA kernels of TOPK_CE's selection (src/cuda/topk_cuda.cu runs them around one CUB radix
// sort of (key, pixel) pairs):
//   1. topk_keys_kernel  — one thread per pixel: its key (kernels/common/topk.cuh), or
//      kTopKLeftOut when it is not counted, and its flat index as the value;
//   2. the stable sort puts the pixels in (key, index) order: the largest losses first, ties by
//      the lowest index, the left-out pixels last;
//   3. topk_counted_kernel — M, the position of the first left-out key (one writer);
//   4. topk_mark_kernel   — the first K = ⌈fraction · M⌉ sorted pixels are selected, every
//      other pixel is not (the permutation covers every pixel: each flag written once).
#pragma once

#include <cstdint>

#include "kernels/common/topk.cuh"

namespace culoss {

constexpr int kTopKThreads = 256;

template <class T, class R>
__global__ void topk_keys_kernel(TermSpec ts, ElementArgs a, const double* class_weights,
                                 const T* x, unsigned long long* keys, unsigned long long* values,
                                 int64_t pixels) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    bool counted = false;
    const R loss = topk_pixel_loss<R>(ts, a, class_weights, x, i, counted);
    keys[i] = counted ? topk_key(static_cast<double>(loss)) : kTopKLeftOut;
    values[i] = static_cast<unsigned long long>(i);
  }
}

__global__ void topk_counted_kernel(const unsigned long long* sorted_keys, int64_t pixels,
                                    long long* counted) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const bool here = sorted_keys[i] != kTopKLeftOut;
    if (i == 0 && !here) *counted = 0;
    if (here && (i + 1 == pixels || sorted_keys[i + 1] == kTopKLeftOut)) *counted = i + 1;
  }
}

__global__ void topk_mark_kernel(const unsigned long long* sorted_values, int64_t pixels,
                                 const long long* counted, double fraction,
                                 unsigned char* selected) {
  const int64_t K = topk_count(fraction, *counted);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x)
    selected[sorted_values[i]] = i < K ? 1 : 0;
}

}  // namespace culoss

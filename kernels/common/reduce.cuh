// Deterministic reductions for the CUDA kernels: the order of every addition is fixed by the
// thread layout, never by timing, so the same inputs give bitwise the same sums (no atomics).
#pragma once

#include "kernels/common/macros.cuh"

namespace culoss {

// Butterfly sum over the 32 lanes of a warp; every lane gets the same total.
template <class R>
__device__ __forceinline__ R warp_sum(R v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a block whose size is a power of two, through `scratch` (blockDim.x entries).
// Every thread gets the total. Contains __syncthreads: call from all threads.
template <class R>
__device__ __forceinline__ R block_sum(R v, R* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) scratch[threadIdx.x] += scratch[threadIdx.x + stride];
    __syncthreads();
  }
  const R total = scratch[0];
  __syncthreads();
  return total;
}

}  // namespace culoss

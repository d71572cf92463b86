// CUDA kernels of every loss: one program of terms (kernels/common/terms.cuh), four steps.
//
//   1. stats_kernel    — step 2, only when some term needs statistics. Block b of image n takes
//      a contiguous range of the image's pixels; each lane handles one pixel at a time (softmax
//      over its classes in registers) and each warp sums the lanes' statistics slots per class
//      with a butterfly shuffle into its own shared-memory row (one writer per row: no atomics).
//      The block adds its warp rows in warp order and writes one partial per (image, block,
//      class, slot); reduce_kernel adds the block partials in block order, in double.
//   2. finalize_kernel — step 3, one block running the shared finalize (kernels/common).
//   3. element_kernel  — step 4: one pixel per thread, all its classes and all terms fused:
//      the gradient written once, NONE outputs, and the element-wise loss summed per block.
//   4. combine_kernel  — adds the block sums in block order to the region terms' value.
// Memory traffic: the input is read once by step 4 and once more by step 2 when a term needs
// prediction statistics (region terms); element-wise terms alone read only the target in step 2
// (counts), or nothing. Every sum has a fixed order, so results are bitwise reproducible.
#pragma once

#include <cstdint>

#include "kernels/common/finalize.cuh"
#include "kernels/common/passes.cuh"
#include "kernels/common/reduce.cuh"
#include "kernels/fused/launch.cuh"

namespace culoss {

constexpr int kStatsMaxWarps = 8;
constexpr int kFinalizeThreads = 256;
constexpr int kInlineTable = 480;  // weights passed by value (kernel arguments stay under 4 KiB)

struct InlineTable {
  double values[kInlineTable];
};

// Copies weights passed by value into the workspace: no host memory is read on the stream, so
// the call stays capturable in a CUDA graph.
__global__ void upload_table_kernel(InlineTable table, double* dst, int64_t count) {
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) dst[i] = table.values[i];
}

template <class T, class R>
__global__ void stats_kernel(Program prog, ElementArgs a, const T* __restrict__ x, R* partials,
                             int64_t blocks_per_image, int64_t pixels_per_block) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  R* acc = reinterpret_cast<R*>(smem_raw);  // [warps][C][stat_width]
  const int64_t S = prog.stat_width, row = a.L.C * S;
  const int64_t n = blockIdx.x / blocks_per_image, b = blockIdx.x % blocks_per_image;
  const int64_t q0 = b * pixels_per_block;
  const int64_t q1 = q0 + pixels_per_block < a.L.P ? q0 + pixels_per_block : a.L.P;
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int64_t i = threadIdx.x; i < warps * row; i += blockDim.x) acc[i] = R(0);
  __syncthreads();
  R* mine = acc + warp * row;
  for (int64_t qb = q0 + int64_t(warp) * 32; qb < q1; qb += int64_t(warps) * 32) {  // warp-uniform
    const int64_t q = qb + lane;
    pixel_stats<R>(prog, a, x, n, q, q < q1, [&](int64_t c, int k, R value) {
      const R s = warp_sum(value);
      if (lane == 0) mine[c * S + k] += s;
    });
  }
  __syncthreads();
  R* out = partials + (n * blocks_per_image + b) * row;
  for (int64_t i = threadIdx.x; i < row; i += blockDim.x) {
    R s = R(0);
    for (int w = 0; w < warps; ++w) s += acc[w * row + i];
    out[i] = s;
  }
}

template <class R>
__global__ void reduce_kernel(const R* partials, double* stats, int64_t N, int64_t blocks_per_image,
                              int64_t row) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N * row;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / row, k = i % row;
    const R* p = partials + n * blocks_per_image * row + k;
    double s = 0.0;
    for (int64_t b = 0; b < blocks_per_image; ++b) s += static_cast<double>(p[b * row]);
    stats[i] = s;
  }
}

__global__ void finalize_kernel(Program prog, FinalizeBuffers fb, int64_t N, int64_t C,
                                double grad_scale) {
  __shared__ double scratch[kFinalizeThreads];
  finalize_program(
      prog, fb, N, C, grad_scale, threadIdx.x, blockDim.x, [] { __syncthreads(); },
      [&](double v) { return block_sum(v, scratch); });
}

// Launched with exactly `loss_partials` blocks of kElementThreads: each block writes its sum.
template <class T, class R, class G>
__global__ void element_kernel(Program prog, ElementArgs a, const T* x, G* grad, void* none_out,
                               DType none_dtype, const double* coefs, const double* scale,
                               double grad_scale, double* loss_partials) {
  __shared__ double scratch[kElementThreads];
  const int64_t pixels = a.L.N * a.L.P;
  double acc = 0.0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / a.L.P, q = i % a.L.P;
    acc += static_cast<double>(
        pixel_element<R>(prog, a, x, grad, none_out, none_dtype, coefs, scale, grad_scale, n, q));
  }
  const double block_total = block_sum(acc, scratch);
  if (threadIdx.x == 0) loss_partials[blockIdx.x] = block_total;
}

// One block: loss = region terms' value + Σ element-pass block sums, in block order.
__global__ void combine_kernel(const double* finalized_value, const double* loss_partials,
                               int64_t count, void* out, DType out_dtype) {
  __shared__ double scratch[kFinalizeThreads];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += loss_partials[i];
  const double total = block_sum(s, scratch);
  if (threadIdx.x == 0) store_as(out, out_dtype, 0, finalized_value[0] + total);
}

// CHECK_TARGETS: the lowest invalid target element and pixel weight (ULLONG_MAX when none).
// Integer atomicMin is order-independent, so the reported element is deterministic.
__global__ void check_targets_kernel(TargetView t, int64_t C, int64_t target_count,
                                     const float* pixel_weight, int64_t weight_count,
                                     unsigned long long* first_bad) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < target_count; i += stride) {
    const bool ok =
        t.index ? label_is_valid(load_label(t.data, t.dtype, i), C, t.binary_mask, t.ignore_index)
                : dense_target_is_valid(load_as<double>(t.data, t.dtype, i));
    if (!ok) atomicMin(&first_bad[0], static_cast<unsigned long long>(i));
  }
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < weight_count; i += stride)
    if (!pixel_weight_is_valid(pixel_weight[i]))
      atomicMin(&first_bad[1], static_cast<unsigned long long>(i));
}

}  // namespace culoss

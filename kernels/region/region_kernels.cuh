// CUDA kernels of the region losses (Dice, Jaccard, Tversky, focal Tversky, generalized Dice).
//
// Algorithm, per call:
//   1. region_stats_kernel   — reads the input once. Block b of image n takes a contiguous range
//      of the image's pixels; each lane handles one pixel at a time (softmax over its classes
//      in registers) and each warp sums the lanes' (I, SP, ST) terms per class with a butterfly
//      shuffle into its own shared-memory row (no atomics: one writer per row). The block then
//      adds its warp rows in warp order and writes one partial per (image, block, class, stat).
//   2. region_reduce_kernel  — one thread per (image, class, stat) adds the block partials in
//      block order, in double.
//   3. region_finalize_kernel — one block: every group's loss and gradient coefficients
//      (shared code, kernels/common/region_math.cuh), a fixed-order block sum for the reduction,
//      and the loss value(s) written to loss_out.
//   4. region_grad_kernel    — reads the input a second time and writes dℓ/dx, one pixel per
//      thread, all its classes (in place over the input is safe: see region_pixel.cuh).
// Memory traffic: input twice, target twice, gradient once; partials are O(blocks x C).
#pragma once

#include <cstdint>

#include "kernels/common/reduce.cuh"
#include "kernels/common/region_pixel.cuh"

namespace culoss {

constexpr int kStatsMaxWarps = 8;
constexpr int kFinalizeThreads = 256;
constexpr int kGradThreads = 256;

// Computation type: double for float64 inputs, float otherwise (fp32 accumulation or better).
template <class T>
struct ComputeType {
  using type = float;
};
template <>
struct ComputeType<double> {
  using type = double;
};

template <class T, class R>
__global__ void region_stats_kernel(RegionElementArgs a, const T* __restrict__ x, R* partials,
                                    int64_t blocks_per_image, int64_t pixels_per_block) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  R* acc = reinterpret_cast<R*>(smem_raw);  // [warps][C][3]
  const int64_t C = a.L.C, row = C * kRegionStats;
  const int64_t n = blockIdx.x / blocks_per_image, b = blockIdx.x % blocks_per_image;
  const int64_t q0 = b * pixels_per_block;
  const int64_t q1 = q0 + pixels_per_block < a.L.P ? q0 + pixels_per_block : a.L.P;
  const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  for (int64_t i = threadIdx.x; i < warps * row; i += blockDim.x) acc[i] = R(0);
  __syncthreads();
  R* mine = acc + warp * row;
  for (int64_t qb = q0 + int64_t(warp) * 32; qb < q1; qb += int64_t(warps) * 32) {  // warp-uniform
    const int64_t q = qb + lane;
    region_pixel_stats<R>(a, x, n, q, q < q1, [&](int64_t c, const R* terms) {
      const R s0 = warp_sum(terms[0]), s1 = warp_sum(terms[1]), s2 = warp_sum(terms[2]);
      if (lane == 0) {
        mine[c * kRegionStats + 0] += s0;
        mine[c * kRegionStats + 1] += s1;
        mine[c * kRegionStats + 2] += s2;
      }
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
__global__ void region_reduce_kernel(const R* partials, double* stats, int64_t N,
                                     int64_t blocks_per_image, int64_t row) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < N * row;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / row, k = i % row;
    const R* p = partials + n * blocks_per_image * row + k;
    double s = 0.0;
    for (int64_t b = 0; b < blocks_per_image; ++b) s += static_cast<double>(p[b * row]);
    stats[i] = s;
  }
}

// One block of kFinalizeThreads. Loss values go to `out` (dtype out_dtype): the caller's device
// loss_out, or a double buffer that the host copies back.
__global__ void region_finalize_kernel(RegionParams rp, const double* stats, double* coef_a,
                                       double* coef_b, double* ell, double* wgt, int64_t groups,
                                       double grad_scale, void* out, DType out_dtype) {
  __shared__ double scratch[kFinalizeThreads];
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x)
    region_finalize_group(rp, stats, g, coef_a, coef_b, ell, wgt);
  __syncthreads();
  double s = 0.0, w = 0.0;
  for (int64_t g = threadIdx.x; g < groups; g += blockDim.x) {
    s += wgt[g] * ell[g];
    w += wgt[g];
  }
  const double weighted_sum = block_sum(s, scratch);
  const double weight_total = block_sum(w, scratch);
  for (int64_t i = threadIdx.x; i < rp.image_groups() * rp.C; i += blockDim.x) {
    const int64_t gn = i / rp.C, c = i % rp.C;
    const double f =
        region_group_scale(rp.reduction, wgt[region_group_of(rp, gn, c)], weight_total, grad_scale);
    coef_a[i] *= f;
    coef_b[i] *= f;
  }
  if (rp.reduction == RED_NONE) {
    for (int64_t g = threadIdx.x; g < groups; g += blockDim.x)
      store_as(out, out_dtype, g, wgt[g] * ell[g]);
  } else if (threadIdx.x == 0) {
    store_as(out, out_dtype, 0, region_reduced_loss(rp.reduction, weighted_sum, weight_total));
  }
}

template <class T, class R, class G>
__global__ void region_grad_kernel(RegionElementArgs a, const T* x, G* grad, const double* coef_a,
                                   const double* coef_b, bool batch) {
  const int64_t pixels = a.L.N * a.L.P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / a.L.P, q = i % a.L.P;
    const int64_t row = (batch ? 0 : n) * a.L.C;
    region_pixel_grad<R>(a, x, grad, coef_a + row, coef_b + row, n, q);
  }
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

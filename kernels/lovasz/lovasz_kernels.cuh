// CUDA kernels of the Lovász losses. Per call, for all segments (problem × class) at once:
//   1. lovasz_keys_kernel     — one thread per pixel: each class's item gets the key
//      (segment << 32 | descending error key) and the value (element | fg << 31); left-out
//      pixels get the largest error key, so they sort last and never enter the counts.
//   2. one CUB radix sort of all items over the segment and error bits (stable: ties keep
//      element order), then lovasz_counts_kernel packs each item's (negative, positive) into
//      one 64-bit integer and one CUB inclusive scan gives every prefix count. Segments have a
//      fixed length, so a segment's counts are the scan minus the scan before its start.
//   3. lovasz_segments_kernel — positives per segment, then each segment's weight.
//   4. lovasz_items_kernel    — the Jaccard gradient g of every item, its loss term, and its
//      gradient scattered back to element order (the hinge writes dℓ/dx directly).
//   5. chunk and segment sums of the loss terms in a fixed order; lovasz_finalize_kernel.
//   6. lovasz_softmax_grad_kernel — through the softmax, one pixel per thread.
#pragma once

#include <cstdint>

#include "kernels/common/lovasz.cuh"
#include "kernels/common/reduce.cuh"

namespace culoss {

constexpr int kLovaszThreads = 256;
constexpr int64_t kLovaszChunk = 8192;  // items per block in the segment sums

struct LovaszArgs {
  Layout L;
  TargetView target;
  const float* pixel_weight;
  LovaszShape shape;
  bool hinge;
  int activation;
};

template <class T, class R>
__global__ void lovasz_keys_kernel(LovaszArgs a, const T* x, unsigned long long* keys,
                                   uint32_t* values, R* prob) {
  const int64_t pixels = a.L.N * a.L.P, len = a.shape.segment_length();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / a.L.P, q = i % a.L.P;
    lovasz_pixel<R>(a.hinge, a.activation, a.L, a.target, a.pixel_weight, x, n, q,
                    [&](int64_t c, int64_t e, const LovaszItem<R>& it) {
                      const int64_t seg = a.shape.segment(n, c);
                      const int64_t at = seg * len + a.shape.local(n, q);
                      const uint32_t ekey =
                          it.counted ? descending_error_key(static_cast<float>(it.e)) : kLeftOutKey;
                      keys[at] = (static_cast<unsigned long long>(seg) << 32) | ekey;
                      values[at] = static_cast<uint32_t>(e) | (it.fg ? 0x80000000u : 0u);
                      if (prob) prob[e] = it.p;
                    });
  }
}

// Packs a sorted item's counts: 1 in the low half for a positive, in the high half for a negative.
__global__ void lovasz_counts_kernel(const unsigned long long* sorted_keys,
                                     const uint32_t* sorted_values, unsigned long long* packed,
                                     int64_t items) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < items;
       i += int64_t(gridDim.x) * blockDim.x) {
    const bool counted = static_cast<uint32_t>(sorted_keys[i]) != kLeftOutKey;
    const bool fg = sorted_values[i] >> 31;
    packed[i] = counted ? (fg ? 1ull : (1ull << 32)) : 0ull;
  }
}

__device__ __forceinline__ unsigned long long segment_prefix(const unsigned long long* scan,
                                                             int64_t start) {
  return start > 0 ? scan[start - 1] : 0ull;
}

// One thread per problem: positives of its segments, then their weights.
// `global`: the statistics summed over the ranks (its [1] counts every rank's problems), or NULL.
__global__ void lovasz_segments_kernel(LovaszShape shape, const unsigned long long* scan,
                                       bool hinge, int reduction, bool classes_all,
                                       const double* global, double* seg_gts, double* seg_weight) {
  const int64_t len = shape.segment_length(), problems = shape.problems();
  const double all_problems = global ? global[1] : static_cast<double>(problems);
  for (int64_t pr = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; pr < problems;
       pr += int64_t(gridDim.x) * blockDim.x) {
    int64_t present = 0;
    for (int64_t c = 0; c < shape.C; ++c) {
      const int64_t seg = pr * shape.C + c, start = seg * len;
      const unsigned long long total = scan[start + len - 1] - segment_prefix(scan, start);
      const double gts = static_cast<double>(total & 0xffffffffull);
      seg_gts[seg] = gts;
      if (classes_all || gts > 0.0) ++present;
    }
    for (int64_t c = 0; c < shape.C; ++c) {
      const int64_t seg = pr * shape.C + c;
      seg_weight[seg] = lovasz_segment_weight(hinge, reduction, classes_all, seg_gts[seg], present,
                                              all_problems, shape.C);
    }
  }
}

// Every sorted item: its loss term (unweighted) and its scaled gradient, scattered to element
// order: into `grad` (hinge) or `grad_p` (softmax, dℓ/dp before the activation).
template <class T, class R, class G>
__global__ void lovasz_items_kernel(LovaszShape shape, bool hinge, const T* x, const R* prob,
                                    const unsigned long long* packed,
                                    const unsigned long long* scan, const uint32_t* sorted_values,
                                    const double* seg_gts, const double* seg_weight,
                                    double grad_scale, R* item_loss, G* grad, R* grad_p) {
  const int64_t len = shape.segment_length(), items = shape.segments() * len;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < items;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t seg = i / len, start = seg * len;
    const int64_t e = sorted_values[i] & 0x7fffffffu;
    LovaszItem<R> it;
    it.counted = packed[i] != 0ull;
    it.fg = sorted_values[i] >> 31;
    R g = R(0);
    if (it.counted) {
      const unsigned long long cum = scan[i] - segment_prefix(scan, start);
      g = static_cast<R>(lovasz_grad(seg_gts[seg], static_cast<double>(cum & 0xffffffffull),
                                     static_cast<double>(cum >> 32), it.fg));
      it.p = hinge ? to_real<R>(x[e]) : prob[e];
      it.e = hinge ? hinge_error(it.p, it.fg) : (it.fg ? R(1) - it.p : it.p);
    }
    item_loss[i] = it.counted ? (hinge ? max_r(it.e, R(0)) : it.e) * g : R(0);
    const R d = it.counted ? static_cast<R>(grad_scale * seg_weight[seg]) * g *
                                 lovasz_error_slope(hinge, it)
                           : R(0);
    if (hinge && grad) grad[e] = StoreAs<G>::from(d);
    if (!hinge && grad_p) grad_p[e] = d;
  }
}

// Sum of each chunk of kLovaszChunk items of a segment (grid: segments × chunks per segment).
template <class R>
__global__ void lovasz_chunk_sums_kernel(const R* item_loss, int64_t len, int64_t chunks,
                                         double* chunk_sums) {
  __shared__ double scratch[kLovaszThreads];
  const int64_t seg = blockIdx.x / chunks, chunk = blockIdx.x % chunks;
  const int64_t begin = seg * len + chunk * kLovaszChunk;
  const int64_t end =
      begin + kLovaszChunk < (seg + 1) * len ? begin + kLovaszChunk : (seg + 1) * len;
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
    s += static_cast<double>(item_loss[i]);
  const double total = block_sum(s, scratch);
  if (threadIdx.x == 0) chunk_sums[blockIdx.x] = total;
}

// One block: segment losses (chunks in order), then the outputs.
__global__ void lovasz_finalize_kernel(LovaszShape shape, bool hinge, int reduction,
                                       const double* chunk_sums, int64_t chunks,
                                       const double* seg_weight, double* seg_loss, void* out,
                                       DType out_dtype, double* export_vec, const double* global) {
  __shared__ double scratch[kLovaszThreads];
  const int64_t segments = shape.segments();
  for (int64_t seg = threadIdx.x; seg < segments; seg += blockDim.x) {
    double s = 0.0;
    for (int64_t k = 0; k < chunks; ++k) s += chunk_sums[seg * chunks + k];
    seg_loss[seg] = s;
  }
  __syncthreads();
  if (reduction == RED_NONE) {  // one value per problem (hinge: per channel too)
    if (hinge) {
      for (int64_t seg = threadIdx.x; seg < segments; seg += blockDim.x)
        store_as(out, out_dtype, seg, seg_loss[seg]);
    } else {
      for (int64_t pr = threadIdx.x; pr < shape.problems(); pr += blockDim.x) {
        double v = 0.0;
        for (int64_t c = 0; c < shape.C; ++c)
          v += seg_weight[pr * shape.C + c] * seg_loss[pr * shape.C + c];
        store_as(out, out_dtype, pr, v);
      }
    }
    return;
  }
  double s = 0.0;
  for (int64_t seg = threadIdx.x; seg < segments; seg += blockDim.x)
    s += seg_weight[seg] * seg_loss[seg];
  const double total = block_sum(s, scratch);
  if (threadIdx.x != 0) return;
  if (export_vec) {  // distributed: [Σ problem losses (SUM weights), problems]
    export_vec[0] = total;
    export_vec[1] = static_cast<double>(shape.problems());
  } else if (global) {  // the summed statistics' loss: MEAN over every rank's problems
    store_as(out, out_dtype, 0, lovasz_loss_from_stats(hinge, reduction, global, shape.C));
  } else {
    store_as(out, out_dtype, 0, total);
  }
}

// Lovász-Softmax: dℓ/dx from dℓ/dp, one pixel per thread (reads only the workspace, so the
// gradient may overwrite the input).
template <class R, class G>
__global__ void lovasz_softmax_grad_kernel(Layout L, int activation, const R* prob, const R* grad_p,
                                           G* grad) {
  const int64_t pixels = L.N * L.P;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / L.P, q = i % L.P, base = L.base(n, q), stride = L.class_stride();
    R dot = R(0);
    if (activation == ACT_SOFTMAX)
      for (int64_t c = 0; c < L.C; ++c) dot += prob[base + c * stride] * grad_p[base + c * stride];
    for (int64_t c = 0; c < L.C; ++c) {
      const int64_t e = base + c * stride;
      grad[e] =
          StoreAs<G>::from(activation == ACT_SOFTMAX ? prob[e] * (grad_p[e] - dot) : grad_p[e]);
    }
  }
}

}  // namespace culoss

// TOPK_CE's selection on CUDA (topk_cuda.cu): the pixels' keys, one CUB radix sort, and the
// plan's `selected` flags, on the call's stream.
#pragma once

#include <cuda_runtime.h>

#include "core/plan.hpp"

namespace culoss::cuda {

struct TopKScratch {
  unsigned long long *keys, *sorted_keys, *values, *sorted_values;
  long long* counted;  // M
  void* cub_temp;
  size_t cub_bytes;
};
// Empty without a TOPK_CE term; sizes CUB's storage for the current device.
TopKScratch carve_top_k(Carver& carver, const Call& call, const Plan& plan);

// Fills b.selected for the plan's TOPK_CE term; b.weights holds the weight table (on the device).
void select_top_k(const Call& call, const Plan& plan, const Buffers& b, const TopKScratch& s,
                  cudaStream_t stream);

}  // namespace culoss::cuda

// Launch geometry of the fused kernels (kernels/fused/fused_kernels.cuh). Independent of the
// device model, so that workspace sizes and results do not depend on where a call runs; the
// workspace (src/core/plan.cpp) holds one partial per block.
#pragma once

#include <cstdint>

namespace culoss {

constexpr int64_t kStatsTargetBlocks = 1024;  // statistics blocks over the whole batch
constexpr int64_t kStatsPixelsPerBlockMin = 2048;
constexpr int kElementThreads = 256;
constexpr int64_t kMaxElementBlocks = 8192;

// Statistics partials per image.
inline int64_t stats_blocks_per_image(int64_t N, int64_t P) {
  if (N <= 0) return 0;
  const int64_t per_image = kStatsTargetBlocks / N > 1 ? kStatsTargetBlocks / N : 1;
  const int64_t by_size = (P + kStatsPixelsPerBlockMin - 1) / kStatsPixelsPerBlockMin;
  const int64_t blocks = per_image < by_size ? per_image : by_size;
  return blocks > 1 ? blocks : 1;
}

// Element-pass blocks, one loss partial each.
inline int64_t element_blocks(int64_t pixels) {
  const int64_t by_size = (pixels + kElementThreads - 1) / kElementThreads;
  const int64_t blocks = by_size < kMaxElementBlocks ? by_size : kMaxElementBlocks;
  return blocks > 1 ? blocks : 1;
}

}  // namespace culoss

// TOPK_CE's selection on the CPU (topk_cpu.cpp): before the passes, each counted pixel's loss
// and a radix select of the K first (key, pixel) pairs into the plan's `selected` flags.
#pragma once

#include <cstdint>

#include "core/plan.hpp"

namespace culoss::cpu {

// Its workspace, carved after the passes' partials (empty without a TOPK_CE term).
struct TopKScratch {
  uint64_t* keys;   // N x P sort keys, 64 or (fast path) 32 bits; kTopKLeftOut(32) where a
                    // pixel is not counted
  int64_t* counts;  // per chunk: 256 digit counts, then the chunk's counted or tied pixels
};
TopKScratch carve_top_k(Carver& carver, const Call& call, const Plan& plan);

struct FastCall;

// Fills b.selected for the plan's TOPK_CE term; b.weights holds the weight table. The keys come
// from the fast path's vector pass when `fast` is set (the call is one it covers), else from the
// generic topk_pixel_loss.
void select_top_k(const Call& call, const Plan& plan, const Buffers& b, const TopKScratch& s,
                  const FastCall* fast);

}  // namespace culoss::cpu

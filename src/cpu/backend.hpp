// CPU backend: the reference implementation (double accumulation), and a real backend.
#pragma once

#include <cstddef>

#include "core/plan.hpp"
#include "core/tensor.hpp"

namespace culoss::cpu {

void compute(const Call& call, const Plan& plan);
// Workspace of compute: the plan's buffers and the per-chunk partial sums of the passes.
size_t compute_workspace_bytes(const Call& call, const Plan& plan);
void compute(const Call& call, const LovaszPlan& plan);
// The CPU sorts in host vectors: only the carver's alignment.
inline size_t compute_workspace_bytes(const Call&, const LovaszPlan&) { return kWorkspaceAlign; }

// CHECK_TARGETS=1: refuses the call before anything is written.
void check_targets(const Call& call);

}  // namespace culoss::cpu

// CUDA backend entry points (src/cuda/*.cu, or no_cuda.cpp in a build without nvcc).
#pragma once

#include "core/plan.hpp"
#include "core/tensor.hpp"

namespace culoss::cuda {

void compute(const Call& call, const Plan& plan);
void compute(const Call& call, const LovaszPlan& plan);
// Workspace of compute: the plan's buffers and the partials of the launches.
size_t compute_workspace_bytes(const Call& call, const Plan& plan);
size_t compute_workspace_bytes(const Call& call, const LovaszPlan& plan);  // queries CUB

// CHECK_TARGETS on the device (synchronizes); `slots` are 2 words of workspace.
void check_targets_on_device(const Call& call, unsigned long long* slots, void* stream);

}  // namespace culoss::cuda

// CPU backend: the reference implementation (double accumulation), and a real backend.
#pragma once

#include "core/plan.hpp"
#include "core/tensor.hpp"

namespace culoss::cpu {

void compute_region(const Call& call, const RegionPlan& plan);

}  // namespace culoss::cpu

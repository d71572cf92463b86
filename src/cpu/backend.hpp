// CPU backend: the reference implementation (double accumulation), and a real backend.
#pragma once

#include "core/plan.hpp"
#include "core/tensor.hpp"

namespace culoss::cpu {

void compute(const Call& call, const Plan& plan);

}  // namespace culoss::cpu

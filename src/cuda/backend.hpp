// CUDA backend entry points (src/cuda/*.cu, or no_cuda.cpp in a build without nvcc).
#pragma once

#include "core/plan.hpp"
#include "core/tensor.hpp"

namespace culoss::cuda {

bool available();  // built with CUDA (a device may still be absent)
void compute(const Call& call, const Plan& plan);

}  // namespace culoss::cuda

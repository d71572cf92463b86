// The geometry steps of the CUDA backend (see kernels/geometry/geometry.cuh), on the call's
// stream: before the statistics kernel, and after finalize for terms whose gradient flows back
// through their maps.
#pragma once

#include "core/plan.hpp"

namespace culoss::cuda {

void geometry_forward(const Call& call, const Program& prog, const GeometryBuffers& geo,
                      void* stream);
void geometry_backward(const Call& call, const Program& prog, const double* coefs,
                       const GeometryBuffers& geo, void* stream);

}  // namespace culoss::cuda

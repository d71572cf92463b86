// The geometry steps of the CPU backend (maps of distance transforms and skeletons; see
// kernels/geometry/geometry.cuh): before the statistics pass, and after finalize for terms whose
// gradient flows back through their maps.
#pragma once

#include "core/plan.hpp"

namespace culoss::cpu {

struct FastCall;

// Seeds and transforms the maps of every map term (nothing without them); the seeds from the
// fast path's pass when `fast` is given (a call it covers).
void geometry_forward(const Call& call, const Program& prog, const GeometryBuffers& geo,
                      const FastCall* fast);
// With a gradient: the upstream derivatives from the coefficients, then their backward.
void geometry_backward(const Call& call, const Program& prog, const double* coefs,
                       const GeometryBuffers& geo, const FastCall* fast);

}  // namespace culoss::cpu

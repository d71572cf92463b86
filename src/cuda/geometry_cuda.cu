// CUDA executor of the geometry steps (kernels/geometry/geometry.cuh: seeds, exact distance
// transforms one thread per line, soft skeletons and their backward one thread per element).
// The algorithms are the shared ones the CPU runs; each op is one kernel launch on the call's
// stream, every element (or line) written by exactly one thread, sums in a fixed order (no
// atomics), so results are reproducible.
#include "cuda/geometry_cuda.hpp"

#include "core/dispatch.hpp"
#include "cuda/cuda_util.hpp"
#include "kernels/geometry/geometry.cuh"

namespace culoss::cuda {

namespace {

constexpr int kGeometryThreads = 256;

template <class Op>
__global__ void geometry_kernel(int64_t count, Op op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    op(i);
}

template <class Op>
__global__ void geometry_range_kernel(int64_t count, Op op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    op.range(i, i + 1);
}

template <class Op>
__global__ void geometry_grid_kernel(Grid g, int64_t count, Op op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    op(i, neighbourhood(g, i % g.P));
}

struct CudaExec {
  static constexpr int kLineTile = 1;  // one line per thread (adjacent threads: adjacent lines)
  cudaStream_t stream;
  template <class Op>
  void run(int64_t count, const Op& op, int64_t) const {
    if (count <= 0) return;
    geometry_kernel<Op><<<static_cast<unsigned>(grid_for(count, kGeometryThreads)),
                          kGeometryThreads, 0, stream>>>(count, op);
    check(cudaGetLastError(), "geometry_kernel launch");
  }
  template <class Op>
  void run_ranges(int64_t count, const Op& op, int64_t) const {
    if (count <= 0) return;
    geometry_range_kernel<Op><<<static_cast<unsigned>(grid_for(count, kGeometryThreads)),
                                kGeometryThreads, 0, stream>>>(count, op);
    check(cudaGetLastError(), "geometry_range_kernel launch");
  }
  int64_t skeleton_group(int64_t images, int64_t) const { return images; }  // one group
  template <class Op>
  void run_grid(const Grid& g, int64_t images, const Op& op) const {
    const int64_t count = images * g.P;
    if (count <= 0) return;
    geometry_grid_kernel<Op><<<static_cast<unsigned>(grid_for(count, kGeometryThreads)),
                               kGeometryThreads, 0, stream>>>(g, count, op);
    check(cudaGetLastError(), "geometry_grid_kernel launch");
  }
};

ElementArgs args(const Call& call) {
  return ElementArgs{call.layout, call.target_view(), call.pixel_weight_data()};
}

}  // namespace

void geometry_forward(const Call& call, const Program& prog, const GeometryBuffers& geo,
                      void* stream) {
  if (prog.map_width == 0) return;
  CudaExec ex{static_cast<cudaStream_t>(stream)};
  const Layout& L = call.layout;
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    // Seeds in double, as on the CPU: the masks and skeletons do not depend on the backend.
    ex.run(L.N * L.P,
           SeedOp<T, double>{prog, args(call), static_cast<const T*>(call.input.data), geo.maps},
           0);
  });
  geometry_transform(ex, prog, geo);
}

void geometry_backward(const Call& call, const Program& prog, const double* coefs,
                       const GeometryBuffers& geo, void* stream) {
  if (!prog.any_map_grad || !call.grad.present) return;
  CudaExec ex{static_cast<cudaStream_t>(stream)};
  const Layout& L = call.layout;
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    ex.run(L.N * L.P,
           UpstreamOp<T, double>{prog, args(call), static_cast<const T*>(call.input.data),
                                 geo.maps, coefs},
           0);
  });
  geometry_backward(ex, prog, geo);
}

}  // namespace culoss::cuda

// Host launcher of TOPK_CE's selection (kernels/topk/topk_kernels.cuh): one CUB radix sort of
// (loss key, pixel) pairs per call. Its buffers, CUB's temporary storage included, come from the
// workspace, which culoss_workspace_size reports exactly.
#include <cub/device/device_radix_sort.cuh>

#include "core/dispatch.hpp"
#include "cuda/cuda_util.hpp"
#include "cuda/topk.hpp"
#include "kernels/topk/topk_kernels.cuh"

namespace culoss::cuda {

TopKScratch carve_top_k(Carver& carver, const Call& call, const Plan& plan) {
  const int64_t pixels = plan.top_k >= 0 ? call.layout.N * call.layout.P : 0;
  TopKScratch s{};
  s.keys = carver.take<unsigned long long>(pixels);
  s.sorted_keys = carver.take<unsigned long long>(pixels);
  s.values = carver.take<unsigned long long>(pixels);
  s.sorted_values = carver.take<unsigned long long>(pixels);
  s.counted = carver.take<long long>(plan.top_k >= 0 ? 1 : 0);
  if (pixels > 0)
    check(cub::DeviceRadixSort::SortPairs(
              nullptr, s.cub_bytes, static_cast<unsigned long long*>(nullptr),
              static_cast<unsigned long long*>(nullptr), static_cast<unsigned long long*>(nullptr),
              static_cast<unsigned long long*>(nullptr), pixels),
          "cub::DeviceRadixSort::SortPairs (size query)");
  s.cub_temp = carver.take<char>(static_cast<int64_t>(s.cub_bytes));
  return s;
}

void select_top_k(const Call& call, const Plan& plan, const Buffers& b, const TopKScratch& s,
                  cudaStream_t stream) {
  const Layout& L = call.layout;
  const int64_t pixels = L.N * L.P;
  if (pixels == 0) return;  // no pixel: no flag to write
  const TermSpec& ts = plan.prog.term[plan.top_k];
  const ElementArgs a{L, call.target_view(), call.pixel_weight_data()};
  const double* cw = ts.class_weight_offset >= 0 ? b.weights + ts.class_weight_offset : nullptr;
  const unsigned blocks = static_cast<unsigned>(grid_for(pixels, kTopKThreads));
  // The losses are ranked in double whatever the input dtype, as on the CPU: both backends
  // select the same pixels unless two losses agree to double rounding.
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    topk_keys_kernel<T, double><<<blocks, kTopKThreads, 0, stream>>>(
        ts, a, cw, static_cast<const T*>(call.input.data), s.keys, s.values, pixels);
  });
  check(cudaGetLastError(), "topk_keys_kernel launch");
  size_t bytes = s.cub_bytes;
  check(cub::DeviceRadixSort::SortPairs(s.cub_temp, bytes, s.keys, s.sorted_keys, s.values,
                                        s.sorted_values, pixels, 0, 64, stream),
        "cub::DeviceRadixSort::SortPairs");
  topk_counted_kernel<<<blocks, kTopKThreads, 0, stream>>>(s.sorted_keys, pixels, s.counted);
  check(cudaGetLastError(), "topk_counted_kernel launch");
  topk_mark_kernel<<<blocks, kTopKThreads, 0, stream>>>(s.sorted_values, pixels, s.counted,
                                                        ts.top_fraction, b.selected);
  check(cudaGetLastError(), "topk_mark_kernel launch");
}

}  // namespace culoss::cuda

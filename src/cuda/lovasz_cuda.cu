// Host launcher of the Lovász kernels (kernels/lovasz/lovasz_kernels.cuh): one CUB radix sort
// and one CUB scan per call for all images and classes. The only translation unit that
// includes CUB. Sort buffers come from the workspace, which culoss_workspace_size reports
// exactly (CUB's temporary storage included).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include "core/dispatch.hpp"
#include "cuda/backend.hpp"
#include "cuda/cuda_util.hpp"
#include "kernels/lovasz/lovasz_kernels.cuh"

namespace culoss::cuda {
namespace {

int significant_bits(int64_t v) {
  int bits = 0;
  while (v > 0) {
    ++bits;
    v >>= 1;
  }
  return bits;
}

struct LovaszBuffers {
  unsigned long long *keys, *sorted_keys;  // sorted_keys later holds the scan
  uint32_t *values, *sorted_values;
  void* prob;       // R[numel] (softmax)
  void* grad_p;     // R[numel] (softmax)
  void* item_loss;  // R[items]
  double *seg_gts, *seg_weight, *seg_loss, *chunk_sums, *out_values;
  unsigned long long* check;
  void* cub_temp;
  size_t cub_bytes;
};

int64_t chunks_per_segment(const LovaszShape& sh) {
  return std::max<int64_t>(1, (sh.segment_length() + kLovaszChunk - 1) / kLovaszChunk);
}

int sort_end_bit(const LovaszShape& sh) {
  return 32 + std::max(1, significant_bits(sh.segments() - 1));
}

// CUB's temporary storage for the sort and the scan (they run one after the other: one buffer).
size_t cub_temp_bytes(int64_t items, int end_bit) {
  size_t sort_bytes = 0, scan_bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(
            nullptr, sort_bytes, static_cast<unsigned long long*>(nullptr),
            static_cast<unsigned long long*>(nullptr), static_cast<uint32_t*>(nullptr),
            static_cast<uint32_t*>(nullptr), items, 0, end_bit),
        "cub::DeviceRadixSort::SortPairs (size query)");
  check(
      cub::DeviceScan::InclusiveSum(nullptr, scan_bytes, static_cast<unsigned long long*>(nullptr),
                                    static_cast<unsigned long long*>(nullptr), items),
      "cub::DeviceScan::InclusiveSum (size query)");
  return std::max(sort_bytes, scan_bytes);
}

LovaszBuffers carve_lovasz(Carver& carver, const Call& call, const LovaszPlan& lp) {
  const LovaszShape& sh = lp.shape;
  const int64_t items = call.input.numel, segments = sh.segments();
  const size_t r = call.input.dtype == DType::F64 ? sizeof(double) : sizeof(float);
  LovaszBuffers b{};
  b.keys = carver.take<unsigned long long>(items);
  b.sorted_keys = carver.take<unsigned long long>(items);
  b.values = carver.take<uint32_t>(items);
  b.sorted_values = carver.take<uint32_t>(items);
  b.prob = lp.hinge ? nullptr : carver.take<char>(items * r);
  b.grad_p = lp.hinge ? nullptr : carver.take<char>(items * r);
  b.item_loss = carver.take<char>(items * r);
  b.seg_gts = carver.take<double>(segments);
  b.seg_weight = carver.take<double>(segments);
  b.seg_loss = carver.take<double>(segments);
  b.chunk_sums = carver.take<double>(segments * chunks_per_segment(sh));
  b.out_values = carver.take<double>(lp.output_count);
  b.check = carver.take<unsigned long long>(2);
  b.cub_bytes = items > 0 ? cub_temp_bytes(items, sort_end_bit(sh)) : 0;
  b.cub_temp = carver.take<char>(static_cast<int64_t>(b.cub_bytes));
  return b;
}

void require_supported(const Call& call) {
  if (call.input.numel >= (int64_t(1) << 31))
    fail(CULOSS_ERROR_NOT_SUPPORTED,
         "the CUDA Lovász losses take fewer than 2^31 input elements; "
         "input has ",
         call.input.numel);
}

template <class T>
void run(const Call& call, const LovaszPlan& lp, const LovaszBuffers& b, cudaStream_t stream) {
  using R = typename ComputeType<T>::type;
  const Layout& L = call.layout;
  const LovaszShape& sh = lp.shape;
  const int64_t items = call.input.numel, pixels = L.N * L.P, segments = sh.segments();
  const LovaszArgs a{L, call.target_view(), call.pixel_weight_data(), sh, lp.hinge, lp.activation};
  const T* x = static_cast<const T*>(call.input.data);
  R* prob = static_cast<R*>(b.prob);
  R* grad_p = static_cast<R*>(b.grad_p);
  R* item_loss = static_cast<R*>(b.item_loss);
  void* out = call.loss_out_on_host ? static_cast<void*>(b.out_values) : call.loss_out.data;
  const DType out_dtype = call.loss_out_on_host ? DType::F64 : call.loss_out.dtype;
  const int64_t chunks = chunks_per_segment(sh);

  if (items > 0) {
    lovasz_keys_kernel<T, R><<<grid_for(pixels, kLovaszThreads), kLovaszThreads, 0, stream>>>(
        a, x, b.keys, b.values, prob);
    check(cudaGetLastError(), "lovasz_keys_kernel launch");
    size_t bytes = b.cub_bytes;
    check(cub::DeviceRadixSort::SortPairs(b.cub_temp, bytes, b.keys, b.sorted_keys, b.values,
                                          b.sorted_values, items, 0, sort_end_bit(sh), stream),
          "cub::DeviceRadixSort::SortPairs");
    unsigned long long* packed = b.keys;  // the unsorted keys are done with
    unsigned long long* scan = b.sorted_keys;
    lovasz_counts_kernel<<<grid_for(items, kLovaszThreads), kLovaszThreads, 0, stream>>>(
        b.sorted_keys, b.sorted_values, packed, items);
    check(cudaGetLastError(), "lovasz_counts_kernel launch");
    bytes = b.cub_bytes;
    check(cub::DeviceScan::InclusiveSum(b.cub_temp, bytes, packed, scan, items, stream),
          "cub::DeviceScan::InclusiveSum");
    lovasz_segments_kernel<<<grid_for(sh.problems(), kLovaszThreads), kLovaszThreads, 0, stream>>>(
        sh, scan, lp.hinge, lp.reduction, lp.classes_all, call.global_stats, b.seg_gts,
        b.seg_weight);
    check(cudaGetLastError(), "lovasz_segments_kernel launch");
    auto items_kernel = [&](auto* grad) {
      using G = std::remove_pointer_t<decltype(grad)>;
      lovasz_items_kernel<T, R, G><<<grid_for(items, kLovaszThreads), kLovaszThreads, 0, stream>>>(
          sh, lp.hinge, x, prob, packed, scan, b.sorted_values, b.seg_gts, b.seg_weight,
          call.grad_scale, item_loss, grad, grad_p);
    };
    dispatch_grad<T>(call.grad.present, call.grad.dtype, call.grad.data, items_kernel);
    check(cudaGetLastError(), "lovasz_items_kernel launch");
    lovasz_chunk_sums_kernel<R>
        <<<static_cast<unsigned>(segments * chunks), kLovaszThreads, 0, stream>>>(
            item_loss, sh.segment_length(), chunks, b.chunk_sums);
    check(cudaGetLastError(), "lovasz_chunk_sums_kernel launch");
    if (!lp.hinge && call.grad.present) {
      dispatch_grad<T>(true, call.grad.dtype, call.grad.data, [&](auto* grad) {
        using G = std::remove_pointer_t<decltype(grad)>;
        lovasz_softmax_grad_kernel<R, G>
            <<<grid_for(pixels, kLovaszThreads), kLovaszThreads, 0, stream>>>(L, lp.activation,
                                                                              prob, grad_p, grad);
      });
      check(cudaGetLastError(), "lovasz_softmax_grad_kernel launch");
    }
  } else if (segments * chunks > 0) {
    check(cudaMemsetAsync(b.chunk_sums, 0, segments * chunks * sizeof(double), stream),
          "cudaMemsetAsync");
    check(cudaMemsetAsync(b.seg_weight, 0, segments * sizeof(double), stream), "cudaMemsetAsync");
  }
  lovasz_finalize_kernel<<<1, kLovaszThreads, 0, stream>>>(
      sh, lp.hinge, lp.reduction, b.chunk_sums, chunks, b.seg_weight, b.seg_loss, out, out_dtype,
      call.export_stats, call.global_stats);
  check(cudaGetLastError(), "lovasz_finalize_kernel launch");

  if (call.loss_out_on_host) copy_loss_to_host(call, b.out_values, stream);
}

}  // namespace

size_t compute_workspace_bytes(const Call& call, const LovaszPlan& lp) {
  require_supported(call);
  DeviceScope device(call.device_id);  // CUB sizes its storage for the device
  Carver measure(nullptr);
  carve_lovasz(measure, call, lp);
  return measure.required();
}

void compute(const Call& call, const LovaszPlan& lp) {
  require_supported(call);
  if (call.input.numel == 0 && !call.distributed) {  // nothing to sort: every loss is 0
    const size_t bytes = static_cast<size_t>(call.loss_out.bytes());
    if (call.loss_out.device.device_type == kDLCPU) {
      std::memset(call.loss_out.data, 0, bytes);  // 0.0 is all-zero bits in float and double
    } else {
      DeviceScope device(call.device_id);
      check(cudaMemsetAsync(call.loss_out.data, 0, bytes, static_cast<cudaStream_t>(call.stream)),
            "cudaMemsetAsync of the loss");
    }
    return;
  }
  DeviceScope device(call.device_id);
  cudaStream_t stream = static_cast<cudaStream_t>(call.stream);
  const Workspace workspace(
      call, [&] { return compute_workspace_bytes(call, lp); }, stream);
  Carver carver(workspace.base());
  const LovaszBuffers b = carve_lovasz(carver, call, lp);
  if (call.check_targets) check_targets_on_device(call, b.check, stream);
  dispatch_float(call.input.dtype, [&](auto t) { run<decltype(t)>(call, lp, b, stream); });
}

}  // namespace culoss::cuda

// Host launcher of the fused CUDA kernels (kernels/fused/fused_kernels.cuh): carves the
// workspace, checks targets when asked, and runs statistics → finalize → element pass →
// combine on the caller's stream. Synchronizes only for CHECK_TARGETS=1 or a loss_out on the
// host.
#include <algorithm>
#include <climits>
#include <memory>
#include <vector>

#include "core/dispatch.hpp"
#include "cuda/backend.hpp"
#include "cuda/cuda_util.hpp"
#include "cuda/topk.hpp"
#include "cuda/geometry_cuda.hpp"
#include "kernels/fused/fused_kernels.cuh"

namespace culoss {
bool cuda_backend_built() { return true; }
}  // namespace culoss

namespace culoss::cuda {

namespace {

constexpr size_t kStatsSharedBytes = 48 * 1024;

// The launch geometry and the slices it sizes, carved after the plan's buffers: statistics
// partials per (image, block), one loss partial per element-pass block, the target-check slots.
// Their size depends on the shapes and the descriptor only (culoss_workspace_size).
struct Partials {
  int64_t blocks_per_image;
  int64_t element_blocks;
  void* stats;                // N x blocks_per_image x C x stat_width, of the compute type
  double* loss;               // element_blocks
  unsigned long long* check;  // first bad target element, first bad weight
};

Partials carve_partials(Carver& carver, const Call& call, const Plan& plan) {
  const Layout& L = call.layout;
  Partials p;
  p.blocks_per_image = stats_blocks_per_image(L.N, L.P);
  p.element_blocks = element_blocks(L.N * L.P);
  const int64_t stats = L.N * p.blocks_per_image * L.C * plan.prog.stat_width;
  p.stats = call.input.dtype == DType::F64 ? static_cast<void*>(carver.take<double>(stats))
                                           : static_cast<void*>(carver.take<float>(stats));
  p.loss = carver.take<double>(p.element_blocks);
  p.check = carver.take<unsigned long long>(2);
  return p;
}

}  // namespace

void check_targets_on_device(const Call& call, unsigned long long* slots, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  check(cudaMemsetAsync(slots, 0xff, 2 * sizeof(unsigned long long), stream), "cudaMemsetAsync");
  const int64_t work = std::max(call.target.numel, call.pixel_weight.numel);
  check_targets_kernel<<<grid_for(work, 256), 256, 0, stream>>>(
      call.target_view(), call.layout.C, call.target.numel, call.pixel_weight_data(),
      call.pixel_weight.present ? call.pixel_weight.numel : 0, slots);
  check(cudaGetLastError(), "check_targets_kernel launch");
  unsigned long long first_bad[2];
  check(cudaMemcpyAsync(first_bad, slots, sizeof(first_bad), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (CHECK_TARGETS)");
  if (first_bad[0] != ULLONG_MAX) {
    const int64_t i = static_cast<int64_t>(first_bad[0]);
    unsigned char raw[8] = {};
    const int bytes = dtype_bytes(call.target.dtype);
    check(cudaMemcpyAsync(raw, static_cast<const char*>(call.target.data) + i * bytes, bytes,
                          cudaMemcpyDeviceToHost, stream),
          "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (CHECK_TARGETS)");
    fail_invalid_target(call, i, raw);
  }
  if (first_bad[1] != ULLONG_MAX) {
    const int64_t i = static_cast<int64_t>(first_bad[1]);
    float w = 0.0f;
    check(cudaMemcpyAsync(&w, call.pixel_weight_data() + i, sizeof(float), cudaMemcpyDeviceToHost,
                          stream),
          "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (CHECK_TARGETS)");
    fail_invalid_pixel_weight(i, w);
  }
}

namespace {

// The weight table reaches the device through kernel arguments, kInlineTable entries per launch
// (graph-capturable; no host buffer has to outlive the call), up to kInlineLaunches launches
// (7680 entries); a larger table (classification with thousands of weighted classes) goes by one
// copy from host memory instead.
constexpr int64_t kInlineLaunches = 16;

void upload_weights(const Plan& plan, double* dst, cudaStream_t stream) {
  const int64_t count = static_cast<int64_t>(plan.weight_table.size());
  if (count > kInlineLaunches * kInlineTable) {
    check(cudaMemcpyAsync(dst, plan.weight_table.data(), count * sizeof(double),
                          cudaMemcpyHostToDevice, stream),
          "cudaMemcpyAsync of the class weights");
    return;
  }
  for (int64_t offset = 0; offset < count; offset += kInlineTable) {
    const int64_t n = std::min<int64_t>(kInlineTable, count - offset);
    InlineTable table{};
    std::copy(plan.weight_table.begin() + offset, plan.weight_table.begin() + offset + n,
              table.values);
    upload_table_kernel<<<1, 256, 0, stream>>>(table, dst + offset, n);
    check(cudaGetLastError(), "upload_table_kernel launch");
  }
}

template <class T>
void run(const Call& call, const Plan& plan, const Program& prog, const Buffers& b,
         const Partials& part, cudaStream_t stream) {
  using R = typename ComputeType<T>::type;
  const Layout& L = call.layout;
  const ElementArgs a{L, call.target_view(), call.pixel_weight_data()};
  const T* x = static_cast<const T*>(call.input.data);
  const int64_t S = prog.stat_width, row = L.C * S, pixels = L.N * L.P;

  // Maps of distance / skeleton terms (geometry_cuda.cu)
  geometry_forward(call, prog, b.geo, stream);

  // Step 2: statistics
  if (prog.has_stats && pixels > 0) {
    const int64_t bpi = part.blocks_per_image;
    const int64_t per_block = (L.P + bpi - 1) / bpi;
    const int warps = static_cast<int>(std::min<int64_t>(
        kStatsMaxWarps, static_cast<int64_t>(kStatsSharedBytes / (row * sizeof(R)))));
    if (warps < 1)
      fail(CULOSS_ERROR_NOT_SUPPORTED, "on CUDA, C x statistics slots must be at most ",
           kStatsSharedBytes / sizeof(R), " for this dtype; this call has C = ", L.C, " and ", S,
           " slots");
    if (L.N * bpi > INT_MAX) fail(CULOSS_ERROR_NOT_SUPPORTED, "batch too large for one launch");
    R* partials = static_cast<R*>(part.stats);
    stats_kernel<T, R>
        <<<static_cast<unsigned>(L.N * bpi), warps * 32, warps * row * sizeof(R), stream>>>(
            prog, a, x, partials, bpi, per_block);
    check(cudaGetLastError(), "stats_kernel launch");
    reduce_kernel<R>
        <<<grid_for(L.N * row, 256), 256, 0, stream>>>(partials, b.stats, L.N, bpi, row);
    check(cudaGetLastError(), "reduce_kernel launch");
  } else if (prog.has_stats && L.N * row > 0) {
    check(cudaMemsetAsync(b.stats, 0, L.N * row * sizeof(double), stream), "cudaMemsetAsync");
  }

  // Outputs go straight to a device loss_out, or to doubles the host copies back.
  void* out = call.loss_out_on_host ? static_cast<void*>(b.out_values) : call.loss_out.data;
  const DType out_dtype = call.loss_out_on_host ? DType::F64 : call.loss_out.dtype;

  // Step 3: finalize
  finalize_kernel<<<1, kFinalizeThreads, 0, stream>>>(
      prog, finalize_buffers(b, call, out, out_dtype), L.N, L.C, call.grad_scale);
  check(cudaGetLastError(), "finalize_kernel launch");
  if (call.export_stats) return;  // culoss_compute_stats: the statistics are the result
  geometry_backward(call, prog, b.coefs, b.geo, stream);

  // Step 4: the fused element pass
  if (plan.element_pass && pixels > 0) {
    const unsigned blocks = static_cast<unsigned>(part.element_blocks);
    dispatch_grad<T>(call.grad.present, call.grad.dtype, call.grad.data, [&](auto* grad) {
      using G = std::remove_pointer_t<decltype(grad)>;
      element_kernel<T, R, G><<<blocks, kElementThreads, 0, stream>>>(
          prog, a, x, grad, out, out_dtype, b.coefs, b.scale, call.grad_scale, part.loss);
    });
    check(cudaGetLastError(), "element_kernel launch");
  } else {
    check(cudaMemsetAsync(part.loss, 0, part.element_blocks * sizeof(double), stream),
          "cudaMemsetAsync");
  }
  if (prog.none_mode == NONE_OFF) {
    combine_kernel<<<1, kFinalizeThreads, 0, stream>>>(b.value, part.loss, part.element_blocks, out,
                                                       out_dtype);
    check(cudaGetLastError(), "combine_kernel launch");
  }

  if (call.loss_out_on_host) copy_loss_to_host(call, b.out_values, stream);
}

}  // namespace

size_t compute_workspace_bytes(const Call& call, const Plan& plan) {
  std::unique_ptr<DeviceScope> device;  // CUB sizes TOPK_CE's sort for the input's device
  if (plan.top_k >= 0) device = std::make_unique<DeviceScope>(call.device_id);
  Carver measure(nullptr);
  carve(measure, call, plan);
  carve_partials(measure, call, plan);
  carve_top_k(measure, call, plan);
  return measure.required();
}

void compute(const Call& call, const Plan& plan) {
  DeviceScope device(call.device_id);
  cudaStream_t stream = static_cast<cudaStream_t>(call.stream);
  const Workspace workspace(
      call, [&] { return compute_workspace_bytes(call, plan); }, stream);
  Carver carver(workspace.base());
  const Buffers b = carve(carver, call, plan);
  const Partials part = carve_partials(carver, call, plan);
  const TopKScratch topk = carve_top_k(carver, call, plan);
  if (call.check_targets) check_targets_on_device(call, part.check, stream);  // before any write
  upload_weights(plan, b.weights, stream);
  const Program prog = bind_program(plan, b, call);
  if (plan.top_k >= 0) select_top_k(call, plan, b, topk, stream);  // before the passes
  dispatch_float(call.input.dtype,
                 [&](auto t) { run<decltype(t)>(call, plan, prog, b, part, stream); });
}

}  // namespace culoss::cuda

// Host launcher of the CUDA region-loss kernels (kernels/region/region_kernels.cuh): carves the
// workspace, checks targets when asked, and runs statistics → reduce → finalize → gradient on
// the caller's stream. Synchronizes only for CHECK_TARGETS=1 or a loss_out on the host.
#include <algorithm>
#include <climits>
#include <memory>
#include <vector>

#include "core/dispatch.hpp"
#include "cuda/backend.hpp"
#include "cuda/cuda_util.hpp"
#include "kernels/region/region_kernels.cuh"

namespace culoss::cuda {

bool available() { return true; }

namespace {

constexpr int64_t kMaxGridBlocks = 8192;  // grid-stride loops cover the rest
constexpr size_t kStatsSharedBytes = 48 * 1024;

int64_t grid_for(int64_t work, int threads) {
  return std::max<int64_t>(1, std::min<int64_t>((work + threads - 1) / threads, kMaxGridBlocks));
}

void check_targets(const Call& call, const RegionBuffers& b, cudaStream_t stream) {
  check(cudaMemsetAsync(b.check, 0xff, 2 * sizeof(unsigned long long), stream), "cudaMemsetAsync");
  const int64_t work = std::max(call.target.numel, call.pixel_weight.numel);
  check_targets_kernel<<<grid_for(work, 256), 256, 0, stream>>>(
      call.target_view(), call.layout.C, call.target.numel, call.pixel_weight_data(),
      call.pixel_weight.present ? call.pixel_weight.numel : 0, b.check);
  check(cudaGetLastError(), "check_targets_kernel launch");
  unsigned long long first_bad[2];
  check(cudaMemcpyAsync(first_bad, b.check, sizeof(first_bad), cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (CHECK_TARGETS)");
  if (first_bad[0] != ULLONG_MAX) {
    const int64_t i = static_cast<int64_t>(first_bad[0]);
    unsigned char raw[8] = {};
    const int bytes = dtype_bytes(call.target.dtype);
    check(cudaMemcpy(raw, static_cast<const char*>(call.target.data) + i * bytes, bytes,
                     cudaMemcpyDeviceToHost),
          "cudaMemcpy");
    const double value = call.index_target
                             ? static_cast<double>(load_label(raw, call.target.dtype, 0))
                             : load_as<double>(raw, call.target.dtype, 0);
    fail_invalid_target(call, i, value);
  }
  if (first_bad[1] != ULLONG_MAX) {
    const int64_t i = static_cast<int64_t>(first_bad[1]);
    float w = 0.0f;
    check(cudaMemcpy(&w, call.pixel_weight_data() + i, sizeof(float), cudaMemcpyDeviceToHost),
          "cudaMemcpy");
    fail_invalid_pixel_weight(i, w);
  }
}

template <class T>
void run(const Call& call, const RegionPlan& plan, const RegionBuffers& b, cudaStream_t stream) {
  using R = typename ComputeType<T>::type;
  const Layout& L = call.layout;
  const RegionElementArgs a{L, call.target_view(), call.pixel_weight_data(),
                            static_cast<int>(call.loss->params.activation), plan.rp.squared};
  const T* x = static_cast<const T*>(call.input.data);
  const int64_t row = L.C * kRegionStats;

  // 2. statistics
  if (L.N * L.P > 0) {
    const int64_t bpi = plan.cuda_blocks_per_image;
    const int64_t per_block = (L.P + bpi - 1) / bpi;
    const int warps = static_cast<int>(std::min<int64_t>(
        kStatsMaxWarps, static_cast<int64_t>(kStatsSharedBytes / (row * sizeof(R)))));
    if (warps < 1)
      fail(CULOSS_ERROR_NOT_SUPPORTED, "the CUDA region losses support up to ",
           kStatsSharedBytes / (kRegionStats * sizeof(R)),
           " classes for this dtype; input has C = ", L.C);
    if (L.N * bpi > INT_MAX) fail(CULOSS_ERROR_NOT_SUPPORTED, "batch too large for one launch");
    R* partials = static_cast<R*>(b.partials);
    region_stats_kernel<T, R>
        <<<static_cast<unsigned>(L.N * bpi), warps * 32, warps * row * sizeof(R), stream>>>(
            a, x, partials, bpi, per_block);
    check(cudaGetLastError(), "region_stats_kernel launch");
    region_reduce_kernel<R>
        <<<grid_for(L.N * row, 256), 256, 0, stream>>>(partials, b.stats, L.N, bpi, row);
    check(cudaGetLastError(), "region_reduce_kernel launch");
  } else if (L.N * L.C > 0) {
    check(cudaMemsetAsync(b.stats, 0, L.N * row * sizeof(double), stream), "cudaMemsetAsync");
  }

  // 3. finalize, straight into a device loss_out, or into doubles the host copies back
  void* out = call.loss_out_on_host ? static_cast<void*>(b.out_values) : call.loss_out.data;
  const DType out_dtype = call.loss_out_on_host ? DType::F64 : call.loss_out.dtype;
  region_finalize_kernel<<<1, kFinalizeThreads, 0, stream>>>(plan.rp, b.stats, b.coef_a, b.coef_b,
                                                             b.ell, b.wgt, plan.groups,
                                                             call.grad_scale, out, out_dtype);
  check(cudaGetLastError(), "region_finalize_kernel launch");

  // 4. gradient
  if (call.grad.present && L.N * L.P > 0) {
    const int64_t blocks = grid_for(L.N * L.P, kGradThreads);
    const bool batch = plan.rp.batch;
    if (call.grad.dtype == DType::F32) {
      region_grad_kernel<T, R, float><<<blocks, kGradThreads, 0, stream>>>(
          a, x, static_cast<float*>(call.grad.data), b.coef_a, b.coef_b, batch);
    } else {
      region_grad_kernel<T, R, T><<<blocks, kGradThreads, 0, stream>>>(
          a, x, static_cast<T*>(call.grad.data), b.coef_a, b.coef_b, batch);
    }
    check(cudaGetLastError(), "region_grad_kernel launch");
  }

  if (call.loss_out_on_host) {
    const int64_t count = call.loss_out.numel;
    std::vector<double> values(static_cast<size_t>(count));
    check(cudaMemcpyAsync(values.data(), b.out_values, count * sizeof(double),
                          cudaMemcpyDeviceToHost, stream),
          "cudaMemcpyAsync of the loss");
    check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (host loss_out)");
    for (int64_t i = 0; i < count; ++i)
      store_as(call.loss_out.data, call.loss_out.dtype, i, values[i]);
  }
}

}  // namespace

void compute_region(const Call& call, const RegionPlan& plan_in) {
  DeviceScope device(call.device_id);
  cudaStream_t stream = static_cast<cudaStream_t>(call.stream);
  void* base = call.workspace;
  std::unique_ptr<StreamBuffer> owned;
  if (!base) {
    owned = std::make_unique<StreamBuffer>(region_workspace_bytes(call, plan_in), stream);
    base = owned->get();
  }
  Carver carver(base);
  const RegionBuffers b = carve_region(carver, call, plan_in);
  RegionPlan plan = plan_in;
  if (!call.loss->params.class_weights.empty()) {  // default weights (all 1) need nothing
    if (call.layout.C <= kInlineClassWeights) {
      for (int64_t c = 0; c < call.layout.C; ++c) plan.rp.inline_weights[c] = call.class_weights[c];
      plan.rp.inline_weight_count = call.layout.C;
    } else {
      check(cudaMemcpyAsync(b.class_weights, call.class_weights.data(),
                            call.layout.C * sizeof(double), cudaMemcpyHostToDevice, stream),
            "cudaMemcpyAsync of the class weights");
      plan.rp.class_weights = b.class_weights;
    }
  }
  if (call.loss->params.check_targets) check_targets(call, b, stream);
  dispatch_float(call.input.dtype, [&](auto t) { run<decltype(t)>(call, plan, b, stream); });
}

}  // namespace culoss::cuda

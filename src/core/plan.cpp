#include "core/plan.hpp"

#include <algorithm>

namespace culoss {

namespace {
// CUDA statistics: enough blocks to fill a large GPU, independent of the device model so that
// workspace sizes and results do not depend on where a call runs.
constexpr int64_t kCudaTargetBlocks = 1024;
constexpr int64_t kCudaPixelsPerBlockMin = 2048;

int region_kind(culoss_kind k) {
  switch (k) {
    case CULOSS_DICE:
      return RK_DICE;
    case CULOSS_JACCARD:
      return RK_JACCARD;
    case CULOSS_TVERSKY:
      return RK_TVERSKY;
    case CULOSS_FOCAL_TVERSKY:
      return RK_FOCAL_TVERSKY;
    default:
      return RK_GENERALIZED_DICE;
  }
}
}  // namespace

RegionPlan make_region_plan(const Call& call) {
  const Params& p = call.loss->params;
  const Layout& L = call.layout;
  RegionPlan plan;
  RegionParams& rp = plan.rp;
  rp.kind = region_kind(call.loss->kind);
  rp.reduction = static_cast<int>(p.reduction);
  rp.weight_type = static_cast<int>(p.weight_type);
  rp.squared = p.squared_denominator != 0;
  rp.batch = p.batch != 0;
  rp.micro = p.average == CULOSS_AVERAGE_MICRO;
  rp.include_background = p.include_background != 0;
  rp.skip_empty = p.skip_empty != 0;
  rp.smooth_nr = p.smooth_nr;
  rp.smooth_dr = p.smooth_dr;
  rp.alpha = p.alpha;
  rp.beta = p.beta;
  rp.gamma = p.gamma;
  rp.N = L.N;
  rp.C = L.C;
  rp.class_weights = nullptr;
  rp.inline_weight_count = 0;
  plan.groups = rp.groups();
  plan.coef_count = rp.image_groups() * L.C;
  if (rp.reduction == RED_NONE) {
    if (rp.pooled()) {
      if (!rp.batch) plan.output_shape = {L.N};
    } else {
      plan.output_shape = rp.batch ? std::vector<int64_t>{L.C} : std::vector<int64_t>{L.N, L.C};
    }
  }
  if (call.backend == Backend::CUDA && L.N > 0) {
    const int64_t per_image = std::max<int64_t>(1, kCudaTargetBlocks / L.N);
    const int64_t by_size = (L.P + kCudaPixelsPerBlockMin - 1) / kCudaPixelsPerBlockMin;
    plan.cuda_blocks_per_image = std::max<int64_t>(1, std::min(per_image, by_size));
    plan.wide_partials = call.input.dtype == DType::F64;
  }
  return plan;
}

RegionBuffers carve_region(Carver& carver, const Call& call, const RegionPlan& plan) {
  const Layout& L = call.layout;
  RegionBuffers b{};
  b.class_weights = carver.take<double>(L.C);
  b.stats = carver.take<double>(L.N * L.C * kRegionStats);
  b.coef_a = carver.take<double>(plan.coef_count);
  b.coef_b = carver.take<double>(plan.coef_count);
  b.ell = carver.take<double>(plan.groups);
  b.wgt = carver.take<double>(plan.groups);
  b.out_values = carver.take<double>(plan.output_shape.empty() ? 1 : plan.groups);
  if (call.backend == Backend::CUDA) {
    const int64_t partials = L.N * plan.cuda_blocks_per_image * L.C * kRegionStats;
    b.partials = plan.wide_partials ? static_cast<void*>(carver.take<double>(partials))
                                    : static_cast<void*>(carver.take<float>(partials));
    b.check = carver.take<unsigned long long>(2);
  }
  return b;
}

size_t region_workspace_bytes(const Call& call, const RegionPlan& plan) {
  Carver measure(nullptr);
  carve_region(measure, call, plan);
  return measure.required();
}

}  // namespace culoss

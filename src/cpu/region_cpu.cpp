// CPU backend for region losses: the four steps of DESIGN.md §1 in plain loops, accumulating in
// double. The element math is the shared code of kernels/common, the same the CUDA kernels run.
#include <vector>

#include "core/dispatch.hpp"
#include "cpu/backend.hpp"
#include "kernels/common/region_pixel.cuh"

namespace culoss::cpu {
namespace {

void check_targets(const Call& call) {
  const TargetView tv = call.target_view();
  const Layout& L = call.layout;
  if (call.index_target) {
    for (int64_t i = 0; i < call.target.numel; ++i) {
      const int64_t label = load_label(tv.data, tv.dtype, i);
      if (!label_is_valid(label, L.C, tv.binary_mask, tv.ignore_index))
        fail_invalid_target(call, i, static_cast<double>(label));
    }
  } else {
    for (int64_t i = 0; i < call.target.numel; ++i) {
      const double t = load_as<double>(tv.data, tv.dtype, i);
      if (!dense_target_is_valid(t)) fail_invalid_target(call, i, t);
    }
  }
  if (const float* w = call.pixel_weight_data())
    for (int64_t i = 0; i < call.pixel_weight.numel; ++i)
      if (!pixel_weight_is_valid(w[i])) fail_invalid_pixel_weight(i, w[i]);
}

RegionElementArgs element_args(const Call& call, const RegionPlan& plan) {
  return RegionElementArgs{call.layout, call.target_view(), call.pixel_weight_data(),
                           static_cast<int>(call.loss->params.activation), plan.rp.squared};
}

// Step 2: per-(image, class) sums, image by image, pixel by pixel, in a fixed order.
template <class T>
void statistics(const Call& call, const RegionPlan& plan, double* stats) {
  const RegionElementArgs a = element_args(call, plan);
  const T* x = static_cast<const T*>(call.input.data);
  const Layout& L = call.layout;
  for (int64_t i = 0; i < L.N * L.C * kRegionStats; ++i) stats[i] = 0.0;
  for (int64_t n = 0; n < L.N; ++n) {
    double* row = stats + n * L.C * kRegionStats;
    for (int64_t q = 0; q < L.P; ++q)
      region_pixel_stats<double>(a, x, n, q, true, [&](int64_t c, const double* terms) {
        for (int k = 0; k < kRegionStats; ++k) row[c * kRegionStats + k] += terms[k];
      });
  }
}

// Step 3: loss value(s) and scaled gradient coefficients.
void finalize(const Call& call, const RegionPlan& plan, const RegionBuffers& b) {
  const RegionParams& rp = plan.rp;
  for (int64_t g = 0; g < plan.groups; ++g)
    region_finalize_group(rp, b.stats, g, b.coef_a, b.coef_b, b.ell, b.wgt);
  double weighted_sum = 0.0, weight_total = 0.0;
  for (int64_t g = 0; g < plan.groups; ++g) {
    weighted_sum += b.wgt[g] * b.ell[g];
    weight_total += b.wgt[g];
  }
  for (int64_t gn = 0; gn < rp.image_groups(); ++gn)
    for (int64_t c = 0; c < rp.C; ++c) {
      const int64_t i = gn * rp.C + c;
      const double s = region_group_scale(rp.reduction, b.wgt[region_group_of(rp, gn, c)],
                                          weight_total, call.grad_scale);
      b.coef_a[i] *= s;
      b.coef_b[i] *= s;
    }
  void* out = call.loss_out.data;
  if (rp.reduction == RED_NONE) {
    for (int64_t g = 0; g < plan.groups; ++g)
      store_as(out, call.loss_out.dtype, g, b.wgt[g] * b.ell[g]);
  } else {
    store_as(out, call.loss_out.dtype, 0,
             region_reduced_loss(rp.reduction, weighted_sum, weight_total));
  }
}

// Step 4: one element-wise pass writing dℓ/dx.
template <class T, class G>
void gradient(const Call& call, const RegionPlan& plan, const RegionBuffers& b) {
  const RegionElementArgs a = element_args(call, plan);
  const T* x = static_cast<const T*>(call.input.data);
  G* grad = static_cast<G*>(call.grad.data);
  const Layout& L = call.layout;
  for (int64_t n = 0; n < L.N; ++n) {
    const int64_t row = (plan.rp.batch ? 0 : n) * L.C;
    for (int64_t q = 0; q < L.P; ++q)
      region_pixel_grad<double>(a, x, grad, b.coef_a + row, b.coef_b + row, n, q);
  }
}

}  // namespace

void compute_region(const Call& call, const RegionPlan& plan_in) {
  if (call.loss->params.check_targets) check_targets(call);  // before anything is written
  std::vector<unsigned char> owned;
  void* base = call.workspace;
  if (!base) {
    owned.resize(region_workspace_bytes(call, plan_in));
    base = owned.data();
  }
  Carver carver(base);
  const RegionBuffers b = carve_region(carver, call, plan_in);
  RegionPlan plan = plan_in;
  for (int64_t c = 0; c < call.layout.C; ++c) b.class_weights[c] = call.class_weights[c];
  plan.rp.class_weights = b.class_weights;

  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    statistics<T>(call, plan, b.stats);
    finalize(call, plan, b);
    if (!call.grad.present) return;
    if (call.grad.dtype == DType::F32)
      gradient<T, float>(call, plan, b);
    else
      gradient<T, T>(call, plan, b);
  });
}

}  // namespace culoss::cpu

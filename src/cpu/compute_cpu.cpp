// CPU backend: the four steps (docs/reference.md) in plain loops, accumulating in double. The
// element math, the passes and finalize are the shared code of kernels/common and kernels/terms,
// the same the CUDA kernels run.
#include <vector>

#include "core/dispatch.hpp"
#include "cpu/backend.hpp"
#include "kernels/common/finalize.cuh"
#include "kernels/common/passes.cuh"

namespace culoss::cpu {

void check_targets(const Call& call) {
  const TargetView tv = call.target_view();
  const Layout& L = call.layout;
  if (call.index_target) {
    for (int64_t i = 0; i < call.target.numel; ++i) {
      const int64_t label = load_label(tv.data, tv.dtype, i);
      if (!label_is_valid(label, L.C, tv.binary_mask, tv.ignore_index))
        fail_invalid_target(call, i, static_cast<const char*>(tv.data) + i * dtype_bytes(tv.dtype));
    }
  } else {
    for (int64_t i = 0; i < call.target.numel; ++i) {
      const double t = load_as<double>(tv.data, tv.dtype, i);
      if (!dense_target_is_valid(t))
        fail_invalid_target(call, i, static_cast<const char*>(tv.data) + i * dtype_bytes(tv.dtype));
    }
  }
  if (const float* w = call.pixel_weight_data())
    for (int64_t i = 0; i < call.pixel_weight.numel; ++i)
      if (!pixel_weight_is_valid(w[i])) fail_invalid_pixel_weight(i, w[i]);
}

namespace {

ElementArgs element_args(const Call& call) {
  return ElementArgs{call.layout, call.target_view(), call.pixel_weight_data()};
}

// Step 2: per-(image, class) sums, image by image, pixel by pixel, in a fixed order.
template <class T>
void statistics(const Call& call, const Program& prog, double* stats) {
  const ElementArgs a = element_args(call);
  const T* x = static_cast<const T*>(call.input.data);
  const Layout& L = call.layout;
  const int64_t S = prog.stat_width;
  for (int64_t i = 0; i < L.N * L.C * S; ++i) stats[i] = 0.0;
  for (int64_t n = 0; n < L.N; ++n) {
    double* row = stats + n * L.C * S;
    for (int64_t q = 0; q < L.P; ++q)
      pixel_stats<double>(prog, a, x, n, q, true,
                          [&](int64_t c, int k, double value) { row[c * S + k] += value; });
  }
}

// Step 4: one pass writing dℓ/dx and the NONE outputs; returns the element-wise loss sum.
template <class T, class G>
double element_pass(const Call& call, const Program& prog, const Buffers& b, G* grad) {
  const ElementArgs a = element_args(call);
  const T* x = static_cast<const T*>(call.input.data);
  const Layout& L = call.layout;
  double total = 0.0;
  for (int64_t n = 0; n < L.N; ++n)
    for (int64_t q = 0; q < L.P; ++q)
      total += pixel_element<double>(prog, a, x, grad, call.loss_out.data, call.loss_out.dtype,
                                     b.coefs, b.scale, call.grad_scale, n, q);
  return total;
}

}  // namespace

void compute(const Call& call, const Plan& plan) {
  if (call.check_targets) check_targets(call);  // before anything is written
  std::vector<unsigned char> owned;
  void* base = call.workspace;
  if (!base) {
    owned.resize(workspace_bytes(call, plan));
    base = owned.data();
  }
  Carver carver(base);
  const Buffers b = carve(carver, call, plan);
  for (size_t i = 0; i < plan.weight_table.size(); ++i) b.weights[i] = plan.weight_table[i];
  const Program prog = bind_program(plan, b.weights, call);
  const Layout& L = call.layout;

  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    if (prog.has_stats) statistics<T>(call, prog, b.stats);
    finalize_program(
        prog, finalize_buffers(b, call, call.loss_out.data, call.loss_out.dtype), L.N, L.C,
        call.grad_scale, 0, 1, [] {}, [](double v) { return v; });
    if (call.export_stats) return;  // culoss_compute_stats: the statistics are the result
    double element_total = 0.0;
    if (plan.element_pass) {
      element_total =
          dispatch_grad<T>(call.grad.present, call.grad.dtype, call.grad.data,
                           [&](auto* grad) { return element_pass<T>(call, prog, b, grad); });
    }
    if (prog.none_mode == NONE_OFF)
      store_as(call.loss_out.data, call.loss_out.dtype, 0, b.value[0] + element_total);
  });
}

}  // namespace culoss::cpu

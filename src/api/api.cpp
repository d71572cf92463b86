// The extern "C" entry points. Every body runs inside guard(), which turns any exception into a
// status and the thread's last-error message: nothing throws across the C boundary.
#include <culoss/culoss.h>

#include <cmath>

#include <algorithm>
#include <new>
#include <string>
#include <variant>
#include <vector>

#include "core/descriptor.hpp"
#include "core/error.hpp"
#include "core/plan.hpp"
#include "core/tensor.hpp"
#include "cpu/backend.hpp"
#include "cpu/thread_pool.hpp"
#include "cuda/backend.hpp"

using namespace culoss;

namespace {

culoss_loss_s& deref(culoss_loss loss) {
  if (!loss) fail(CULOSS_ERROR_INVALID_ARGUMENT, "loss is NULL");
  return *loss;
}

// Validation and planning shared by culoss_workspace_size and culoss_compute.
struct Prepared {
  Call call;
  CallPlan plan;

  int64_t stats_count() const {
    return std::visit([](const auto& pl) { return culoss::stats_count(pl); }, plan);
  }
  bool has_stats() const {
    return std::visit([](const auto& pl) { return culoss::has_stats(pl); }, plan);
  }
  const std::vector<int64_t>& output_shape() const {
    return std::visit([](const auto& pl) -> const std::vector<int64_t>& { return pl.output_shape; },
                      plan);
  }
  // The workspace is the backend's to carve: it adds its own slices (partials, sort buffers).
  size_t workspace_bytes() const {
    return std::visit(
        [&](const auto& pl) {
          return call.backend == Backend::CUDA ? cuda::compute_workspace_bytes(call, pl)
                                               : cpu::compute_workspace_bytes(call, pl);
        },
        plan);
  }
  void run() const {
    std::visit(
        [&](const auto& pl) {
          if (call.backend == Backend::CUDA)
            cuda::compute(call, pl);
          else
            cpu::compute(call, pl);
        },
        plan);
  }
};

// Which entry point a call comes from: the distributed ones plan their statistics so that
// they can be summed across ranks.
enum class Mode { Compute, ExportStats, FromStats };

Prepared prepare(const culoss_loss_s& loss, const DLTensor* input, const DLTensor* target,
                 const DLTensor* pixel_weight, DLTensor* grad_input, double grad_scale,
                 Mode mode = Mode::Compute) {
  Prepared p;
  p.call = validate_call(loss, input, target, pixel_weight, grad_input, grad_scale);
  if (mode != Mode::Compute) {
    p.call.distributed = true;
    p.call.exporting = mode == Mode::ExportStats;
  }
  p.plan = make_call_plan(p.call);
  return p;
}

void check_workspace(const Prepared& p, void* workspace, size_t workspace_bytes) {
  const size_t required = p.workspace_bytes();
  if (workspace && workspace_bytes < required)
    fail(CULOSS_ERROR_INSUFFICIENT_WORKSPACE, "workspace has ", workspace_bytes,
         " bytes; this call needs ", required, " (see culoss_workspace_size)");
}

}  // namespace

extern "C" {

int culoss_version(void) { return CULOSS_VERSION; }

const char* culoss_status_string(culoss_status status) {
  switch (raw_enum(status)) {
    case CULOSS_SUCCESS:
      return "CULOSS_SUCCESS";
    case CULOSS_ERROR_INVALID_ARGUMENT:
      return "CULOSS_ERROR_INVALID_ARGUMENT";
    case CULOSS_ERROR_SHAPE_MISMATCH:
      return "CULOSS_ERROR_SHAPE_MISMATCH";
    case CULOSS_ERROR_UNSUPPORTED_DTYPE:
      return "CULOSS_ERROR_UNSUPPORTED_DTYPE";
    case CULOSS_ERROR_UNSUPPORTED_DEVICE:
      return "CULOSS_ERROR_UNSUPPORTED_DEVICE";
    case CULOSS_ERROR_INVALID_TARGET:
      return "CULOSS_ERROR_INVALID_TARGET";
    case CULOSS_ERROR_OUT_OF_MEMORY:
      return "CULOSS_ERROR_OUT_OF_MEMORY";
    case CULOSS_ERROR_INSUFFICIENT_WORKSPACE:
      return "CULOSS_ERROR_INSUFFICIENT_WORKSPACE";
    case CULOSS_ERROR_CUDA:
      return "CULOSS_ERROR_CUDA";
    case CULOSS_ERROR_NOT_SUPPORTED:
      return "CULOSS_ERROR_NOT_SUPPORTED";
    case CULOSS_ERROR_INTERNAL:
      return "CULOSS_ERROR_INTERNAL";
  }
  return "unknown culoss_status";
}

const char* culoss_last_error(void) { return last_error(); }

culoss_status culoss_loss_create(culoss_loss* out, culoss_kind kind) {
  return guard([&] {
    if (!out) fail(CULOSS_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = nullptr;
    const int k = raw_enum(kind);
    if (!find_kind(k))
      fail(CULOSS_ERROR_INVALID_ARGUMENT, "unknown culoss_kind ", k, "; expected 1 (",
           kind_name(CULOSS_DICE), ") to ", last_kind(), " (",
           kind_name(static_cast<culoss_kind>(last_kind())), ")");
    const culoss_kind valid = static_cast<culoss_kind>(k);
    *out = new culoss_loss_s{valid, default_params(valid), {}, {}};
  });
}

culoss_status culoss_loss_destroy(culoss_loss loss) {
  return guard([&] { delete loss; });
}

culoss_status culoss_loss_set_int(culoss_loss loss, culoss_param param, int64_t value) {
  return guard([&] { set_int(deref(loss), raw_enum(param), value); });
}

culoss_status culoss_loss_set_float(culoss_loss loss, culoss_param param, double value) {
  return guard([&] { set_float(deref(loss), raw_enum(param), value); });
}

culoss_status culoss_loss_set_floats(culoss_loss loss, culoss_param param, const double* values,
                                     int64_t count) {
  return guard([&] { set_floats(deref(loss), raw_enum(param), values, count); });
}

culoss_status culoss_loss_get_int(culoss_loss loss, culoss_param param, int64_t* value) {
  return guard([&] {
    if (!value) fail(CULOSS_ERROR_INVALID_ARGUMENT, "value is NULL");
    *value = get_int(deref(loss), raw_enum(param));
  });
}

culoss_status culoss_loss_get_float(culoss_loss loss, culoss_param param, double* value) {
  return guard([&] {
    if (!value) fail(CULOSS_ERROR_INVALID_ARGUMENT, "value is NULL");
    *value = get_float(deref(loss), raw_enum(param));
  });
}

culoss_status culoss_loss_add_term(culoss_loss sum, culoss_loss term, double weight) {
  return guard([&] {
    if (!sum) fail(CULOSS_ERROR_INVALID_ARGUMENT, "sum is NULL");
    if (!term) fail(CULOSS_ERROR_INVALID_ARGUMENT, "term is NULL");
    add_term(*sum, *term, weight);
  });
}

culoss_status culoss_workspace_size(culoss_loss loss, const DLTensor* input, const DLTensor* target,
                                    size_t* bytes) {
  return guard([&] {
    if (!bytes) fail(CULOSS_ERROR_INVALID_ARGUMENT, "bytes is NULL");
    const culoss_loss_s& d = deref(loss);
    const Prepared p = prepare(d, input, target, nullptr, nullptr, 1.0);
    size_t need = p.workspace_bytes();
    if (p.has_stats())  // large enough for both statistics API calls too
      for (Mode mode : {Mode::ExportStats, Mode::FromStats})
        need = std::max(need,
                        prepare(d, input, target, nullptr, nullptr, 1.0, mode).workspace_bytes());
    *bytes = need;
  });
}

culoss_status culoss_stats_size(culoss_loss loss, const DLTensor* input, const DLTensor* target,
                                int64_t* count) {
  return guard([&] {
    if (!count) fail(CULOSS_ERROR_INVALID_ARGUMENT, "count is NULL");
    const Prepared p =
        prepare(deref(loss), input, target, nullptr, nullptr, 1.0, Mode::ExportStats);
    *count = p.stats_count();
  });
}

culoss_status culoss_compute_stats(culoss_loss loss, const DLTensor* input, const DLTensor* target,
                                   const DLTensor* pixel_weight, DLTensor* stats, void* workspace,
                                   size_t workspace_bytes, void* stream) {
  return guard([&] {
    Prepared p = prepare(deref(loss), input, target, pixel_weight, nullptr, 1.0, Mode::ExportStats);
    const TensorRef s = validate_stats(p.call, stats, p.stats_count(), true);
    check_workspace(p, workspace, workspace_bytes);
    p.call.export_stats = static_cast<double*>(s.data);
    p.call.workspace = workspace;
    p.call.workspace_bytes = workspace_bytes;
    p.call.stream = stream;
    p.run();
  });
}

culoss_status culoss_compute_from_stats(culoss_loss loss, const DLTensor* input,
                                        const DLTensor* target, const DLTensor* pixel_weight,
                                        const DLTensor* stats, DLTensor* loss_out,
                                        DLTensor* grad_input, double grad_scale, void* workspace,
                                        size_t workspace_bytes, void* stream) {
  return guard([&] {
    Prepared p =
        prepare(deref(loss), input, target, pixel_weight, grad_input, grad_scale, Mode::FromStats);
    validate_loss_out(p.call, loss_out, p.output_shape());
    const TensorRef s = validate_stats(p.call, stats, p.stats_count(), false);
    check_workspace(p, workspace, workspace_bytes);
    p.call.global_stats = static_cast<const double*>(s.data);
    p.call.workspace = workspace;
    p.call.workspace_bytes = workspace_bytes;
    p.call.stream = stream;
    p.run();
  });
}

culoss_status culoss_compute(culoss_loss loss, const DLTensor* input, const DLTensor* target,
                             const DLTensor* pixel_weight, DLTensor* loss_out, DLTensor* grad_input,
                             double grad_scale, void* workspace, size_t workspace_bytes,
                             void* stream) {
  return guard([&] {
    Prepared p = prepare(deref(loss), input, target, pixel_weight, grad_input, grad_scale);
    validate_loss_out(p.call, loss_out, p.output_shape());
    check_workspace(p, workspace, workspace_bytes);
    p.call.workspace = workspace;
    p.call.workspace_bytes = workspace_bytes;
    p.call.stream = stream;
    p.run();
  });
}

const char* culoss_kind_name(culoss_kind kind) {
  const KindInfo* k = find_kind(raw_enum(kind));
  return k ? k->name : nullptr;
}

const char* culoss_param_name(culoss_param param) {
  const ParamInfo* p = find_param(raw_enum(param));
  return p ? p->name : nullptr;
}

const char* culoss_param_value_name(culoss_param param, int64_t value) {
  const ParamInfo* p = find_param(raw_enum(param));
  if (!p || !p->value_names || value < 0 || value > static_cast<int64_t>(p->rule.upper))
    return nullptr;
  return p->value_names[value];
}

int culoss_param_applies(culoss_kind kind, culoss_param param) {
  return find_rule(raw_enum(kind), raw_enum(param)) ? 1 : 0;
}

culoss_status culoss_param_get_type(culoss_param param, culoss_param_type* type) {
  return guard([&] {
    if (!type) fail(CULOSS_ERROR_INVALID_ARGUMENT, "type is NULL");
    const ParamInfo* p = find_param(raw_enum(param));
    if (!p) fail(CULOSS_ERROR_INVALID_ARGUMENT, "unknown parameter ", raw_enum(param));
    *type = static_cast<culoss_param_type>(p->type);
  });
}

culoss_status culoss_param_get_bounds(culoss_kind kind, culoss_param param, double* lower,
                                      double* upper, int* upper_open) {
  return guard([&] {
    const ParamRule& r = param_rule(raw_enum(kind), raw_enum(param));
    // An open lower bound (a positive size) is reported as the next double above it, which keeps
    // "lower <= value" exact without another output.
    if (lower) *lower = r.lower_open ? std::nextafter(r.lower, HUGE_VAL) : r.lower;
    if (upper) *upper = r.upper;
    if (upper_open) *upper_open = r.upper_open ? 1 : 0;
  });
}

culoss_status culoss_param_get_default(culoss_kind kind, culoss_param param, double* value) {
  return guard([&] {
    if (!value) fail(CULOSS_ERROR_INVALID_ARGUMENT, "value is NULL");
    *value = param_rule(raw_enum(kind), raw_enum(param)).default_value;
  });
}

int culoss_param_accepts(culoss_kind kind, culoss_param param, double value) {
  const ParamRule* r = find_rule(raw_enum(kind), raw_enum(param));
  return r && r->accepts(find_param(raw_enum(param))->type, value) ? 1 : 0;
}

culoss_status culoss_loss_output_axes(culoss_loss loss, int64_t ndim, int64_t* axes,
                                      int64_t* count) {
  return guard([&] {
    if (!count) fail(CULOSS_ERROR_INVALID_ARGUMENT, "count is NULL");
    const culoss_loss_s& d = deref(loss);
    if (ndim < 0 || ndim > 64)
      fail(CULOSS_ERROR_INVALID_ARGUMENT, "ndim is ", ndim, "; expected 0 to 64");
    std::vector<int64_t> out;
    if (d.kind != CULOSS_SUM && d.params.reduction == CULOSS_REDUCTION_NONE)
      out = output_axes(d.kind, d.params, ndim,
                        resolve_class_axis(d.params.class_axis, ndim,
                                           "an input of " + std::to_string(ndim) + " dimensions"));
    if (!out.empty() && !axes) fail(CULOSS_ERROR_INVALID_ARGUMENT, "axes is NULL");
    for (size_t i = 0; i < out.size(); ++i) axes[i] = out[i];
    *count = static_cast<int64_t>(out.size());
  });
}
culoss_status culoss_set_num_threads(int n) {
  return guard([&] { cpu::set_num_threads(n); });
}

int culoss_get_num_threads(void) { return cpu::num_threads(); }

}  // extern "C"

// The descriptor's setters and getters, read from the registry (core/registry.hpp), and what a
// call's terms share.
#include "core/descriptor.hpp"

#include <cmath>
#include <string>

#include "core/error.hpp"

namespace culoss {

void set_int(culoss_loss_s& loss, int param, int64_t v) {
  const ParamInfo& info = check_param_applies(loss.kind, param, ParamType::Int);
  const ParamRule& rule = param_rule(loss.kind, param);
  // An int64 beyond 2^53 is not exact as a double: only unbounded parameters take such values.
  if (!(rule.lower == -HUGE_VAL && rule.upper == HUGE_VAL))
    check_value(info, rule, loss.kind, static_cast<double>(v));
  // Combinations are checked here, before anything is written: a descriptor never holds one
  // that a call would have to refuse.
  Params next = loss.params;
  int_value(next, info) = v;
  check_combination(loss.kind, next);
  int_value(loss.params, info) = v;
}

void set_float(culoss_loss_s& loss, int param, double v) {
  const ParamInfo& info = check_param_applies(loss.kind, param, ParamType::Float);
  check_value(info, param_rule(loss.kind, param), loss.kind, v);
  float_value(loss.params, info) = v;
}

void set_floats(culoss_loss_s& loss, int param, const double* values, int64_t count) {
  const ParamInfo& info = check_param_applies(loss.kind, param, ParamType::Floats);
  const ParamRule& rule = param_rule(loss.kind, param);
  if (count < 1 || count > (int64_t(1) << 24))
    fail(CULOSS_ERROR_INVALID_ARGUMENT, info.name, " needs between 1 and 16777216 values; got ",
         count);
  if (!values) fail(CULOSS_ERROR_INVALID_ARGUMENT, info.name, ": values is NULL");
  for (int64_t i = 0; i < count; ++i) {
    const std::string element = "[" + std::to_string(i) + "]";
    check_value(info, rule, loss.kind, values[i], element.c_str());
  }
  list_value(loss.params, info) = std::vector<double>(values, values + count);
}

int64_t get_int(const culoss_loss_s& loss, int param) {
  return int_value(loss.params, check_param_applies(loss.kind, param, ParamType::Int));
}

double get_float(const culoss_loss_s& loss, int param) {
  return float_value(loss.params, check_param_applies(loss.kind, param, ParamType::Float));
}

CallParams resolve_call_params(const culoss_loss_s& loss, int64_t ndim) {
  auto resolved = [ndim](int64_t axis) { return axis < 0 ? axis + ndim : axis; };
  CallParams cp;
  cp.check_targets = loss.params.check_targets != 0;
  if (loss.kind != CULOSS_SUM) {
    cp.class_axis = loss.params.class_axis;
    cp.ignore_index = loss.params.ignore_index;
    (reads_binary_targets(loss.kind, loss.params) ? cp.binary : cp.class_index) = true;
    if (loss.params.activation == CULOSS_ACTIVATION_SOFTMAX) cp.softmax_kind = loss.kind;
    return cp;
  }
  if (loss.terms.empty())
    fail(CULOSS_ERROR_INVALID_ARGUMENT,
         "this CULOSS_SUM has no terms; add them with culoss_loss_add_term");
  const Params& first = loss.terms[0].params;
  cp.class_axis = first.class_axis;
  cp.ignore_index = first.ignore_index;
  for (const culoss_loss_s& t : loss.terms) {
    if (resolved(t.params.class_axis) != resolved(cp.class_axis))
      fail(CULOSS_ERROR_INVALID_ARGUMENT,
           "the terms of a CULOSS_SUM must share "
           "CULOSS_PARAM_CLASS_AXIS; found ",
           cp.class_axis, " and ", t.params.class_axis);
    if (t.params.ignore_index != cp.ignore_index)
      fail(CULOSS_ERROR_INVALID_ARGUMENT,
           "the terms of a CULOSS_SUM must share "
           "CULOSS_PARAM_IGNORE_INDEX; found ",
           cp.ignore_index, " and ", t.params.ignore_index);
    (reads_binary_targets(t.kind, t.params) ? cp.binary : cp.class_index) = true;
    if (t.params.activation == CULOSS_ACTIVATION_SOFTMAX && cp.softmax_kind == 0)
      cp.softmax_kind = t.kind;
  }
  return cp;
}

bool accepts_sigmoid(culoss_kind kind) {
  const ParamRule* rule = find_rule(kind, CULOSS_PARAM_ACTIVATION);
  return rule && rule->accepts(ParamType::Int, CULOSS_ACTIVATION_SIGMOID);
}

void add_term(culoss_loss_s& sum, const culoss_loss_s& term, double weight) {
  if (sum.kind != CULOSS_SUM)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "culoss_loss_add_term needs a CULOSS_SUM descriptor; got ",
         kind_name(sum.kind));
  if (!std::isfinite(weight))
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "the weight of a term must be finite; got ", weight);
  if (&sum == &term) fail(CULOSS_ERROR_INVALID_ARGUMENT, "a CULOSS_SUM cannot be added to itself");
  if (term.kind == CULOSS_SUM) {  // flatten: a sum of sums is one sum
    std::vector<culoss_loss_s> terms = sum.terms;
    std::vector<double> weights = sum.weights;
    for (size_t i = 0; i < term.terms.size(); ++i) {
      terms.push_back(term.terms[i]);
      weights.push_back(weight * term.weights[i]);
    }
    sum.terms = std::move(terms);
    sum.weights = std::move(weights);
    return;
  }
  if (term.params.reduction == CULOSS_REDUCTION_NONE)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "a term of a CULOSS_SUM must have REDUCTION MEAN or SUM; ",
         kind_name(term.kind), " has NONE");
  sum.terms.push_back(term);
  sum.weights.push_back(weight);
}

}  // namespace culoss

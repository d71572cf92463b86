// Parameter table: which parameter applies to which kind, its type and its valid range.
#include "core/descriptor.hpp"

#include <cmath>

#include "core/error.hpp"

namespace culoss {
namespace {

constexpr unsigned bit(culoss_kind k) { return 1u << static_cast<unsigned>(k); }
constexpr unsigned kRegion = bit(CULOSS_DICE) | bit(CULOSS_JACCARD) | bit(CULOSS_TVERSKY) |
                             bit(CULOSS_FOCAL_TVERSKY) | bit(CULOSS_GENERALIZED_DICE);
constexpr unsigned kAll = 0x3ffeu;  // kinds 1..13
constexpr unsigned kAllButSum = kAll & ~bit(CULOSS_SUM);
constexpr unsigned kLovasz = bit(CULOSS_LOVASZ_HINGE) | bit(CULOSS_LOVASZ_SOFTMAX);

struct ParamInfo {
  culoss_param id;
  const char* name;
  ParamType type;
  unsigned kinds;  // bit k set: applies to kind k
};

const ParamInfo kParams[] = {
    {CULOSS_PARAM_ACTIVATION, "CULOSS_PARAM_ACTIVATION", ParamType::Int,
     kAllButSum & ~bit(CULOSS_LOVASZ_HINGE)},
    {CULOSS_PARAM_CLASS_AXIS, "CULOSS_PARAM_CLASS_AXIS", ParamType::Int, kAllButSum},
    {CULOSS_PARAM_REDUCTION, "CULOSS_PARAM_REDUCTION", ParamType::Int, kAllButSum},
    {CULOSS_PARAM_IGNORE_INDEX, "CULOSS_PARAM_IGNORE_INDEX", ParamType::Int, kAllButSum},
    {CULOSS_PARAM_SMOOTH_NR, "CULOSS_PARAM_SMOOTH_NR", ParamType::Float,
     kRegion | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_SMOOTH_DR, "CULOSS_PARAM_SMOOTH_DR", ParamType::Float,
     kRegion | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_SQUARED_DENOMINATOR, "CULOSS_PARAM_SQUARED_DENOMINATOR", ParamType::Int,
     bit(CULOSS_DICE) | bit(CULOSS_JACCARD) | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_BATCH, "CULOSS_PARAM_BATCH", ParamType::Int, kRegion | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_INCLUDE_BACKGROUND, "CULOSS_PARAM_INCLUDE_BACKGROUND", ParamType::Int,
     kRegion | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_CLASS_WEIGHTS, "CULOSS_PARAM_CLASS_WEIGHTS", ParamType::Floats,
     kRegion | bit(CULOSS_BCE) | bit(CULOSS_CROSS_ENTROPY) | bit(CULOSS_FOCAL) | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_ALPHA, "CULOSS_PARAM_ALPHA", ParamType::Float,
     bit(CULOSS_TVERSKY) | bit(CULOSS_FOCAL_TVERSKY) | bit(CULOSS_FOCAL) | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_BETA, "CULOSS_PARAM_BETA", ParamType::Float,
     bit(CULOSS_TVERSKY) | bit(CULOSS_FOCAL_TVERSKY)},
    {CULOSS_PARAM_GAMMA, "CULOSS_PARAM_GAMMA", ParamType::Float,
     bit(CULOSS_FOCAL_TVERSKY) | bit(CULOSS_FOCAL)},
    {CULOSS_PARAM_WEIGHT_TYPE, "CULOSS_PARAM_WEIGHT_TYPE", ParamType::Int,
     bit(CULOSS_GENERALIZED_DICE)},
    {CULOSS_PARAM_POS_WEIGHT, "CULOSS_PARAM_POS_WEIGHT", ParamType::Floats, bit(CULOSS_BCE)},
    {CULOSS_PARAM_CLASS_BALANCE, "CULOSS_PARAM_CLASS_BALANCE", ParamType::Int, bit(CULOSS_BCE)},
    {CULOSS_PARAM_LABEL_SMOOTHING, "CULOSS_PARAM_LABEL_SMOOTHING", ParamType::Float,
     bit(CULOSS_BCE) | bit(CULOSS_CROSS_ENTROPY)},
    {CULOSS_PARAM_CE_RATIO, "CULOSS_PARAM_CE_RATIO", ParamType::Float, bit(CULOSS_COMBO)},
    {CULOSS_PARAM_PER_IMAGE, "CULOSS_PARAM_PER_IMAGE", ParamType::Int, kLovasz},
    {CULOSS_PARAM_CLASSES, "CULOSS_PARAM_CLASSES", ParamType::Int, bit(CULOSS_LOVASZ_SOFTMAX)},
    {CULOSS_PARAM_SKIP_EMPTY, "CULOSS_PARAM_SKIP_EMPTY", ParamType::Int,
     kRegion | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_AVERAGE, "CULOSS_PARAM_AVERAGE", ParamType::Int,
     (kRegion & ~bit(CULOSS_GENERALIZED_DICE)) | bit(CULOSS_COMBO)},
    {CULOSS_PARAM_CHECK_TARGETS, "CULOSS_PARAM_CHECK_TARGETS", ParamType::Int, kAll},
};

const ParamInfo* find_param(int param) {
  for (const ParamInfo& p : kParams)
    if (static_cast<int>(p.id) == param) return &p;
  return nullptr;
}

const char* type_name(ParamType t) {
  return t == ParamType::Int     ? "an int (culoss_loss_set_int / culoss_loss_get_int)"
         : t == ParamType::Float ? "a float (culoss_loss_set_float / culoss_loss_get_float)"
                                 : "a list of floats (culoss_loss_set_floats; not readable back)";
}

void check_range(bool ok, const char* name, const char* expected, double value) {
  if (!ok) fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " must be ", expected, "; got ", value);
}

void check_flag(const char* name, int64_t v) {
  check_range(v == 0 || v == 1, name, "0 or 1", static_cast<double>(v));
}

// Activations a kind accepts: element-wise binary losses work on sigmoid (or probabilities),
// class-exclusive ones on softmax (or probabilities); region losses and focal take all three.
bool activation_allowed(culoss_kind kind, int64_t a) {
  switch (kind) {
    case CULOSS_BCE:
    case CULOSS_COMBO:  // binary cross-entropy + Dice on per-element probabilities
      return a == CULOSS_ACTIVATION_NONE || a == CULOSS_ACTIVATION_SIGMOID;
    case CULOSS_CROSS_ENTROPY:
    case CULOSS_MARGINAL_CE:
    case CULOSS_LOVASZ_SOFTMAX:
      return a == CULOSS_ACTIVATION_NONE || a == CULOSS_ACTIVATION_SOFTMAX;
    default:
      return a >= CULOSS_ACTIVATION_NONE && a <= CULOSS_ACTIVATION_SOFTMAX;
  }
}

}  // namespace

bool accepts_sigmoid(culoss_kind kind) {
  return kind != CULOSS_LOVASZ_HINGE && activation_allowed(kind, CULOSS_ACTIVATION_SIGMOID);
}

bool is_region_kind(culoss_kind kind) { return (bit(kind) & kRegion) != 0; }

const char* kind_name(culoss_kind kind) {
  switch (kind) {
    case CULOSS_DICE:
      return "CULOSS_DICE";
    case CULOSS_JACCARD:
      return "CULOSS_JACCARD";
    case CULOSS_TVERSKY:
      return "CULOSS_TVERSKY";
    case CULOSS_FOCAL_TVERSKY:
      return "CULOSS_FOCAL_TVERSKY";
    case CULOSS_GENERALIZED_DICE:
      return "CULOSS_GENERALIZED_DICE";
    case CULOSS_BCE:
      return "CULOSS_BCE";
    case CULOSS_CROSS_ENTROPY:
      return "CULOSS_CROSS_ENTROPY";
    case CULOSS_FOCAL:
      return "CULOSS_FOCAL";
    case CULOSS_COMBO:
      return "CULOSS_COMBO";
    case CULOSS_MARGINAL_CE:
      return "CULOSS_MARGINAL_CE";
    case CULOSS_LOVASZ_HINGE:
      return "CULOSS_LOVASZ_HINGE";
    case CULOSS_LOVASZ_SOFTMAX:
      return "CULOSS_LOVASZ_SOFTMAX";
    case CULOSS_SUM:
      return "CULOSS_SUM";
  }
  return "unknown kind";
}

const char* param_name(culoss_param param) {
  const ParamInfo* p = find_param(param);
  return p ? p->name : "unknown parameter";
}

Params default_params(culoss_kind kind) {
  Params p;
  if (kind == CULOSS_BCE || kind == CULOSS_FOCAL || kind == CULOSS_COMBO)
    p.activation = CULOSS_ACTIVATION_SIGMOID;
  if (kind == CULOSS_LOVASZ_HINGE) p.activation = CULOSS_ACTIVATION_NONE;  // takes logits
  if (kind == CULOSS_FOCAL_TVERSKY) {
    p.alpha = 0.3;
    p.beta = 0.7;
    p.gamma = 0.75;
  }
  if (kind == CULOSS_FOCAL) p.alpha = 0.25;
  return p;
}

culoss_param check_param_applies(culoss_kind kind, int param, ParamType type) {
  const ParamInfo* info = find_param(param);
  if (!info)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "unknown parameter ", param,
         "; expected a culoss_param from 1 to 23");
  if (!(info->kinds & bit(kind)))
    fail(CULOSS_ERROR_INVALID_ARGUMENT, info->name, " does not apply to ", kind_name(kind));
  if (info->type != type)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, info->name, " is ", type_name(info->type));
  return info->id;
}

void set_int(culoss_loss_s& loss, int param_raw, int64_t v) {
  const culoss_param param = check_param_applies(loss.kind, param_raw, ParamType::Int);
  Params& p = loss.params;
  const char* name = param_name(param);
  const double dv = static_cast<double>(v);
  switch (param) {
    case CULOSS_PARAM_ACTIVATION:
      check_range(activation_allowed(loss.kind, v), name,
                  loss.kind == CULOSS_BCE || loss.kind == CULOSS_COMBO
                      ? "NONE (0) or SIGMOID (1) for this kind"
                  : activation_allowed(loss.kind, CULOSS_ACTIVATION_SIGMOID)
                      ? "NONE (0), SIGMOID (1) or SOFTMAX (2)"
                      : "NONE (0) or SOFTMAX (2) for this kind",
                  dv);
      p.activation = v;
      return;
    case CULOSS_PARAM_CLASS_AXIS:
      check_range(v >= -64 && v <= 64, name, "an axis in [-64, 64]", dv);
      p.class_axis = v;
      return;
    case CULOSS_PARAM_REDUCTION:
      check_range(v >= CULOSS_REDUCTION_MEAN && v <= CULOSS_REDUCTION_NONE, name,
                  "MEAN (0), SUM (1) or NONE (2)", dv);
      if (loss.kind == CULOSS_COMBO)
        check_range(v == CULOSS_REDUCTION_MEAN, name, "MEAN (0) for CULOSS_COMBO", dv);
      p.reduction = v;
      return;
    case CULOSS_PARAM_IGNORE_INDEX:
      p.ignore_index = v;
      return;
    case CULOSS_PARAM_SQUARED_DENOMINATOR:
      check_flag(name, v);
      p.squared_denominator = v;
      return;
    case CULOSS_PARAM_BATCH:
      check_flag(name, v);
      p.batch = v;
      return;
    case CULOSS_PARAM_INCLUDE_BACKGROUND:
      check_flag(name, v);
      p.include_background = v;
      return;
    case CULOSS_PARAM_WEIGHT_TYPE:
      check_range(v >= CULOSS_WEIGHT_SQUARE && v <= CULOSS_WEIGHT_UNIFORM, name,
                  "SQUARE (0), SIMPLE (1) or UNIFORM (2)", dv);
      p.weight_type = v;
      return;
    case CULOSS_PARAM_CLASS_BALANCE:
      check_range(v == CULOSS_BALANCE_NONE || v == CULOSS_BALANCE_BATCH_FREQUENCY, name,
                  "NONE (0) or BATCH_FREQUENCY (1)", dv);
      p.class_balance = v;
      return;
    case CULOSS_PARAM_PER_IMAGE:
      check_flag(name, v);
      p.per_image = v;
      return;
    case CULOSS_PARAM_CLASSES:
      check_range(v == CULOSS_CLASSES_ALL || v == CULOSS_CLASSES_PRESENT, name,
                  "ALL (0) or PRESENT (1)", dv);
      p.classes = v;
      return;
    case CULOSS_PARAM_SKIP_EMPTY:
      check_flag(name, v);
      p.skip_empty = v;
      return;
    case CULOSS_PARAM_AVERAGE:
      check_range(v == CULOSS_AVERAGE_MACRO || v == CULOSS_AVERAGE_MICRO, name,
                  "MACRO (0) or MICRO (1)", dv);
      p.average = v;
      return;
    case CULOSS_PARAM_CHECK_TARGETS:
      check_flag(name, v);
      p.check_targets = v;
      return;
    default:
      break;
  }
  fail(CULOSS_ERROR_INTERNAL, "no setter for ", name);
}

void set_float(culoss_loss_s& loss, int param_raw, double v) {
  const culoss_param param = check_param_applies(loss.kind, param_raw, ParamType::Float);
  Params& p = loss.params;
  const char* name = param_name(param);
  const bool finite = std::isfinite(v);
  switch (param) {
    case CULOSS_PARAM_SMOOTH_NR:
      check_range(finite && v >= 0, name, "finite and >= 0", v);
      p.smooth_nr = v;
      return;
    case CULOSS_PARAM_SMOOTH_DR:
      check_range(finite && v >= 0, name, "finite and >= 0", v);
      p.smooth_dr = v;
      return;
    case CULOSS_PARAM_ALPHA:
      if (loss.kind == CULOSS_FOCAL)
        check_range(finite && v <= 1, name, "at most 1 (< 0 disables it)", v);
      else if (loss.kind == CULOSS_COMBO)
        check_range(finite && v >= 0 && v <= 1, name, "in [0, 1]", v);
      else
        check_range(finite && v >= 0, name, "finite and >= 0", v);
      p.alpha = v;
      return;
    case CULOSS_PARAM_BETA:
      check_range(finite && v >= 0, name, "finite and >= 0", v);
      p.beta = v;
      return;
    case CULOSS_PARAM_GAMMA:
      check_range(finite && v >= 0, name, "finite and >= 0", v);
      p.gamma = v;
      return;
    case CULOSS_PARAM_LABEL_SMOOTHING:
      check_range(finite && v >= 0 && v < 1, name, "in [0, 1)", v);
      p.label_smoothing = v;
      return;
    case CULOSS_PARAM_CE_RATIO:
      check_range(finite && v >= 0 && v <= 1, name, "in [0, 1]", v);
      p.ce_ratio = v;
      return;
    default:
      break;
  }
  fail(CULOSS_ERROR_INTERNAL, "no setter for ", name);
}

void set_floats(culoss_loss_s& loss, int param_raw, const double* values, int64_t count) {
  const culoss_param param = check_param_applies(loss.kind, param_raw, ParamType::Floats);
  const char* name = param_name(param);
  if (count < 1 || count > (int64_t(1) << 24))
    fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " needs between 1 and 16777216 values; got ", count);
  if (!values) fail(CULOSS_ERROR_INVALID_ARGUMENT, name, ": values is NULL");
  std::vector<double> v(values, values + count);
  for (int64_t i = 0; i < count; ++i)
    if (!(std::isfinite(v[i]) && v[i] >= 0))
      fail(CULOSS_ERROR_INVALID_ARGUMENT, name, "[", i, "] must be finite and >= 0; got ", v[i]);
  if (param == CULOSS_PARAM_CLASS_WEIGHTS)
    loss.params.class_weights = std::move(v);
  else
    loss.params.pos_weight = std::move(v);
}

int64_t get_int(const culoss_loss_s& loss, int param_raw) {
  const culoss_param param = check_param_applies(loss.kind, param_raw, ParamType::Int);
  const Params& p = loss.params;
  switch (param) {
    case CULOSS_PARAM_ACTIVATION:
      return p.activation;
    case CULOSS_PARAM_CLASS_AXIS:
      return p.class_axis;
    case CULOSS_PARAM_REDUCTION:
      return p.reduction;
    case CULOSS_PARAM_IGNORE_INDEX:
      return p.ignore_index;
    case CULOSS_PARAM_SQUARED_DENOMINATOR:
      return p.squared_denominator;
    case CULOSS_PARAM_BATCH:
      return p.batch;
    case CULOSS_PARAM_INCLUDE_BACKGROUND:
      return p.include_background;
    case CULOSS_PARAM_WEIGHT_TYPE:
      return p.weight_type;
    case CULOSS_PARAM_CLASS_BALANCE:
      return p.class_balance;
    case CULOSS_PARAM_PER_IMAGE:
      return p.per_image;
    case CULOSS_PARAM_CLASSES:
      return p.classes;
    case CULOSS_PARAM_SKIP_EMPTY:
      return p.skip_empty;
    case CULOSS_PARAM_AVERAGE:
      return p.average;
    case CULOSS_PARAM_CHECK_TARGETS:
      return p.check_targets;
    default:
      break;
  }
  fail(CULOSS_ERROR_INTERNAL, "no getter for ", param_name(param));
}

double get_float(const culoss_loss_s& loss, int param_raw) {
  const culoss_param param = check_param_applies(loss.kind, param_raw, ParamType::Float);
  const Params& p = loss.params;
  switch (param) {
    case CULOSS_PARAM_SMOOTH_NR:
      return p.smooth_nr;
    case CULOSS_PARAM_SMOOTH_DR:
      return p.smooth_dr;
    case CULOSS_PARAM_ALPHA:
      return p.alpha;
    case CULOSS_PARAM_BETA:
      return p.beta;
    case CULOSS_PARAM_GAMMA:
      return p.gamma;
    case CULOSS_PARAM_LABEL_SMOOTHING:
      return p.label_smoothing;
    case CULOSS_PARAM_CE_RATIO:
      return p.ce_ratio;
    default:
      break;
  }
  fail(CULOSS_ERROR_INTERNAL, "no getter for ", param_name(param));
}

bool is_binary_term(const culoss_loss_s& d) {
  switch (d.kind) {
    case CULOSS_BCE:
    case CULOSS_COMBO:
      return true;
    case CULOSS_FOCAL:
      return d.params.activation != CULOSS_ACTIVATION_SOFTMAX;
    case CULOSS_CROSS_ENTROPY:
    case CULOSS_MARGINAL_CE:
    case CULOSS_LOVASZ_SOFTMAX:
    case CULOSS_SUM:
      return false;
    case CULOSS_LOVASZ_HINGE:
      return true;
    default:
      return d.params.activation == CULOSS_ACTIVATION_SIGMOID;  // region kinds
  }
}

CallParams resolve_call_params(const culoss_loss_s& loss, int64_t ndim) {
  auto resolved = [ndim](int64_t axis) { return axis < 0 ? axis + ndim : axis; };
  CallParams cp;
  cp.check_targets = loss.params.check_targets != 0;
  if (loss.kind != CULOSS_SUM) {
    cp.class_axis = loss.params.class_axis;
    cp.ignore_index = loss.params.ignore_index;
    (is_binary_term(loss) ? cp.binary : cp.class_index) = true;
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
    (is_binary_term(t) ? cp.binary : cp.class_index) = true;
    if (t.params.activation == CULOSS_ACTIVATION_SOFTMAX && cp.softmax_kind == 0)
      cp.softmax_kind = t.kind;
  }
  return cp;
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

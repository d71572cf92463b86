// The rows of the registry (docs/reference.md lists the same kinds and parameters for users).
#include "core/registry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "core/descriptor.hpp"
#include "core/error.hpp"
#include "kernels/common/terms.cuh"  // TermKind, RegionKind

namespace culoss {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

constexpr uint32_t bit(int v) { return 1u << v; }

// Rules by shape: a flag, an int range, an enum of `count` values, a float range.
constexpr ParamRule flag(double def) { return {0, 1, false, 0, def}; }
constexpr ParamRule ints(double lo, double hi, double def) { return {lo, hi, false, 0, def}; }
constexpr ParamRule choice(int count, double def, uint32_t values = 0) {
  return {0, double(count - 1), false, values, def};
}
constexpr ParamRule reals(double lo, double hi, double def, bool open = false) {
  return {lo, hi, open, 0, def};
}
// (0, 1]: a share of something that must keep at least a part of it.
constexpr ParamRule fraction(double def) { return {0, 1, false, 0, def, /*lower_open=*/true}; }
constexpr ParamRule positive(double def) { return {0, kInf, false, 0, def, true}; }

const char* const kActivations[] = {"NONE", "SIGMOID", "SOFTMAX"};
const char* const kReductions[] = {"MEAN", "SUM", "NONE"};
const char* const kWeightTypes[] = {"SQUARE", "SIMPLE", "UNIFORM"};
const char* const kBalances[] = {"NONE", "BATCH_FREQUENCY"};
const char* const kClasses[] = {"ALL", "PRESENT"};
const char* const kAverages[] = {"MACRO", "MICRO"};

// A parameter and the field of Params that holds it.
struct ParamRow {
  ParamInfo info;
  int64_t Params::*int_field;
  double Params::*float_field;
  std::vector<double> Params::*list_field;
};

#define CULOSS_INT(field) \
  }                       \
  , &Params::field, nullptr, nullptr
#define CULOSS_FLOAT(field) \
  }                         \
  , nullptr, &Params::field, nullptr
#define CULOSS_FLOATS(field) \
  }                          \
  , nullptr, nullptr, &Params::field

using T = ParamType;
// In value order (found by value: find_param).
const ParamRow kParams[] = {
    {{CULOSS_PARAM_ACTIVATION, "CULOSS_PARAM_ACTIVATION", T::Int,
      choice(3, CULOSS_ACTIVATION_SOFTMAX), kActivations, CULOSS_INT(activation)},
     {{CULOSS_PARAM_CLASS_AXIS, "CULOSS_PARAM_CLASS_AXIS", T::Int, ints(-64, 64, 1), nullptr,
       CULOSS_INT(class_axis)},
      {{CULOSS_PARAM_REDUCTION, "CULOSS_PARAM_REDUCTION", T::Int, choice(3, CULOSS_REDUCTION_MEAN),
        kReductions, CULOSS_INT(reduction)},
       {{CULOSS_PARAM_IGNORE_INDEX, "CULOSS_PARAM_IGNORE_INDEX", T::Int, ints(-kInf, kInf, -100),
         nullptr, CULOSS_INT(ignore_index)},
        {{CULOSS_PARAM_SMOOTH_NR, "CULOSS_PARAM_SMOOTH_NR", T::Float, reals(0, kInf, 1e-5), nullptr,
          CULOSS_FLOAT(smooth_nr)},
         {{CULOSS_PARAM_SMOOTH_DR, "CULOSS_PARAM_SMOOTH_DR", T::Float, reals(0, kInf, 1e-5),
           nullptr, CULOSS_FLOAT(smooth_dr)},
          {{CULOSS_PARAM_SQUARED_DENOMINATOR, "CULOSS_PARAM_SQUARED_DENOMINATOR", T::Int, flag(0),
            nullptr, CULOSS_INT(squared_denominator)},
           {{CULOSS_PARAM_BATCH, "CULOSS_PARAM_BATCH", T::Int, flag(0), nullptr, CULOSS_INT(batch)},
            {{CULOSS_PARAM_INCLUDE_BACKGROUND, "CULOSS_PARAM_INCLUDE_BACKGROUND", T::Int, flag(1),
              nullptr, CULOSS_INT(include_background)},
             {{CULOSS_PARAM_CLASS_WEIGHTS, "CULOSS_PARAM_CLASS_WEIGHTS", T::Floats,
               reals(0, kInf, 1), nullptr, CULOSS_FLOATS(class_weights)},
              {{CULOSS_PARAM_ALPHA, "CULOSS_PARAM_ALPHA", T::Float, reals(0, kInf, 0.5), nullptr,
                CULOSS_FLOAT(alpha)},
               {{CULOSS_PARAM_BETA, "CULOSS_PARAM_BETA", T::Float, reals(0, kInf, 0.5), nullptr,
                 CULOSS_FLOAT(beta)},
                {{CULOSS_PARAM_GAMMA, "CULOSS_PARAM_GAMMA", T::Float, reals(0, kInf, 2), nullptr,
                  CULOSS_FLOAT(gamma)},
                 {{CULOSS_PARAM_WEIGHT_TYPE, "CULOSS_PARAM_WEIGHT_TYPE", T::Int,
                   choice(3, CULOSS_WEIGHT_SQUARE), kWeightTypes, CULOSS_INT(weight_type)},
                  {{CULOSS_PARAM_POS_WEIGHT, "CULOSS_PARAM_POS_WEIGHT", T::Floats,
                    reals(0, kInf, 1), nullptr, CULOSS_FLOATS(pos_weight)},
                   {{CULOSS_PARAM_CLASS_BALANCE, "CULOSS_PARAM_CLASS_BALANCE", T::Int,
                     choice(2, CULOSS_BALANCE_NONE), kBalances, CULOSS_INT(class_balance)},
                    {{CULOSS_PARAM_LABEL_SMOOTHING, "CULOSS_PARAM_LABEL_SMOOTHING", T::Float,
                      reals(0, 1, 0, /*open=*/true), nullptr, CULOSS_FLOAT(label_smoothing)},
                     {{CULOSS_PARAM_CE_RATIO, "CULOSS_PARAM_CE_RATIO", T::Float, reals(0, 1, 0.5),
                       nullptr, CULOSS_FLOAT(ce_ratio)},
                      {{CULOSS_PARAM_PER_IMAGE, "CULOSS_PARAM_PER_IMAGE", T::Int, flag(0), nullptr,
                        CULOSS_INT(per_image)},
                       {{CULOSS_PARAM_CLASSES, "CULOSS_PARAM_CLASSES", T::Int,
                         choice(2, CULOSS_CLASSES_PRESENT), kClasses, CULOSS_INT(classes)},
                        {{CULOSS_PARAM_SKIP_EMPTY, "CULOSS_PARAM_SKIP_EMPTY", T::Int, flag(0),
                          nullptr, CULOSS_INT(skip_empty)},
                         {{CULOSS_PARAM_AVERAGE, "CULOSS_PARAM_AVERAGE", T::Int,
                           choice(2, CULOSS_AVERAGE_MACRO), kAverages, CULOSS_INT(average)},
                          {{CULOSS_PARAM_CHECK_TARGETS, "CULOSS_PARAM_CHECK_TARGETS", T::Int,
                            flag(1), nullptr, CULOSS_INT(check_targets)},
                          {{CULOSS_PARAM_SOFT_LABEL, "CULOSS_PARAM_SOFT_LABEL", T::Int, flag(0),
                            nullptr, CULOSS_INT(soft_label)},
                          {{CULOSS_PARAM_SPACING, "CULOSS_PARAM_SPACING", T::Floats, positive(1),
                            nullptr, CULOSS_FLOATS(spacing)},
                          {{CULOSS_PARAM_ITERATIONS, "CULOSS_PARAM_ITERATIONS", T::Int,
                            ints(1, 50, 3), nullptr, CULOSS_INT(iterations)},
                          {{CULOSS_PARAM_TOP_FRACTION, "CULOSS_PARAM_TOP_FRACTION", T::Float,
                            fraction(0.1), nullptr, CULOSS_FLOAT(top_fraction)},
                          };

#undef CULOSS_INT
#undef CULOSS_FLOAT
#undef CULOSS_FLOATS

constexpr uint32_t pbit(culoss_param id) { return bit(id); }
// Parameter sets shared by several kinds.
constexpr uint32_t kCommon = pbit(CULOSS_PARAM_ACTIVATION) | pbit(CULOSS_PARAM_CLASS_AXIS) |
                             pbit(CULOSS_PARAM_REDUCTION) | pbit(CULOSS_PARAM_IGNORE_INDEX) |
                             pbit(CULOSS_PARAM_CHECK_TARGETS);
constexpr uint32_t kRegionOptions =
    pbit(CULOSS_PARAM_SMOOTH_NR) | pbit(CULOSS_PARAM_SMOOTH_DR) | pbit(CULOSS_PARAM_BATCH) |
    pbit(CULOSS_PARAM_INCLUDE_BACKGROUND) | pbit(CULOSS_PARAM_CLASS_WEIGHTS) |
    pbit(CULOSS_PARAM_SKIP_EMPTY);
constexpr uint32_t kRegion = kCommon | kRegionOptions;
constexpr uint32_t kTversky = pbit(CULOSS_PARAM_ALPHA) | pbit(CULOSS_PARAM_BETA);
constexpr uint32_t kSoftLabel = pbit(CULOSS_PARAM_SOFT_LABEL);

// Activation rules: the binary kinds take a sigmoid, the class-exclusive ones a softmax; both
// also take probabilities (NONE).
constexpr uint32_t kSigmoidOnly = bit(CULOSS_ACTIVATION_NONE) | bit(CULOSS_ACTIVATION_SIGMOID);
constexpr uint32_t kSoftmaxOnly = bit(CULOSS_ACTIVATION_NONE) | bit(CULOSS_ACTIVATION_SOFTMAX);
constexpr KindInfo::Override activation(uint32_t values, int def) {
  return {CULOSS_PARAM_ACTIVATION, choice(3, def, values)};
}
constexpr KindInfo::Override real(culoss_param id, double lo, double hi, double def) {
  return {id, reals(lo, hi, def)};
}

using F = Family;
using TF = TargetForm;
// In value order (found by value: find_kind).
const KindInfo kKinds[] = {
    {CULOSS_DICE,
     "CULOSS_DICE",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_REGION,
     TK_REGION,
     RK_DICE,
     false,
     kRegion | pbit(CULOSS_PARAM_SQUARED_DENOMINATOR) | pbit(CULOSS_PARAM_AVERAGE) | kSoftLabel,
     {},
     0},
    {CULOSS_JACCARD,
     "CULOSS_JACCARD",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_REGION,
     TK_REGION,
     RK_JACCARD,
     false,
     kRegion | pbit(CULOSS_PARAM_SQUARED_DENOMINATOR) | pbit(CULOSS_PARAM_AVERAGE) | kSoftLabel,
     {},
     0},
    {CULOSS_TVERSKY,
     "CULOSS_TVERSKY",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_REGION,
     TK_REGION,
     RK_TVERSKY,
     false,
     kRegion | kTversky | pbit(CULOSS_PARAM_AVERAGE) | kSoftLabel,
     {},
     0},
    {CULOSS_FOCAL_TVERSKY,
     "CULOSS_FOCAL_TVERSKY",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_REGION,
     TK_REGION,
     RK_FOCAL_TVERSKY,
     false,
     kRegion | kTversky | pbit(CULOSS_PARAM_GAMMA) | pbit(CULOSS_PARAM_AVERAGE) | kSoftLabel,
     {real(CULOSS_PARAM_ALPHA, 0, kInf, 0.3), real(CULOSS_PARAM_BETA, 0, kInf, 0.7),
      real(CULOSS_PARAM_GAMMA, 0, kInf, 0.75)},
     3},
    {CULOSS_GENERALIZED_DICE,
     "CULOSS_GENERALIZED_DICE",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_REGION,
     TK_REGION,
     RK_GENERALIZED_DICE,
     true,
     kRegion | pbit(CULOSS_PARAM_WEIGHT_TYPE),
     {},
     0},
    {CULOSS_BCE,
     "CULOSS_BCE",
     F::Elementwise,
     TF::Binary,
     TK_BCE,
     TK_BCE,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_CLASS_WEIGHTS) | pbit(CULOSS_PARAM_POS_WEIGHT) |
         pbit(CULOSS_PARAM_CLASS_BALANCE) | pbit(CULOSS_PARAM_LABEL_SMOOTHING),
     {activation(kSigmoidOnly, CULOSS_ACTIVATION_SIGMOID)},
     1},
    {CULOSS_CROSS_ENTROPY,
     "CULOSS_CROSS_ENTROPY",
     F::Elementwise,
     TF::ClassIndex,
     TK_CE,
     TK_CE,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_CLASS_WEIGHTS) | pbit(CULOSS_PARAM_LABEL_SMOOTHING),
     {activation(kSoftmaxOnly, CULOSS_ACTIVATION_SOFTMAX)},
     1},
    {CULOSS_FOCAL,
     "CULOSS_FOCAL",
     F::Elementwise,
     TF::BinaryUnlessSoftmax,
     TK_FOCAL_SOFTMAX,
     TK_FOCAL_BINARY,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_CLASS_WEIGHTS) | pbit(CULOSS_PARAM_ALPHA) |
         pbit(CULOSS_PARAM_GAMMA),
     {activation(0, CULOSS_ACTIVATION_SIGMOID),
      real(CULOSS_PARAM_ALPHA, -kInf, 1, 0.25)},  // α < 0 disables the balance
     2},
    {CULOSS_COMBO,
     "CULOSS_COMBO",
     F::Composite,
     TF::Binary,
     -1,
     -1,
     RK_DICE,
     false,
     kRegion | pbit(CULOSS_PARAM_SQUARED_DENOMINATOR) | pbit(CULOSS_PARAM_ALPHA) |
         pbit(CULOSS_PARAM_CE_RATIO) | pbit(CULOSS_PARAM_AVERAGE),
     {activation(kSigmoidOnly, CULOSS_ACTIVATION_SIGMOID),
      {CULOSS_PARAM_REDUCTION, choice(3, CULOSS_REDUCTION_MEAN, bit(CULOSS_REDUCTION_MEAN))},
      real(CULOSS_PARAM_ALPHA, 0, 1, 0.5)},
     3},
    {CULOSS_MARGINAL_CE,
     "CULOSS_MARGINAL_CE",
     F::Elementwise,
     TF::ClassIndex,
     TK_MARGINAL,
     TK_MARGINAL,
     -1,
     false,
     kCommon,
     {activation(kSoftmaxOnly, CULOSS_ACTIVATION_SOFTMAX)},
     1},
    {CULOSS_LOVASZ_HINGE,
     "CULOSS_LOVASZ_HINGE",
     F::Lovasz,
     TF::Binary,
     -1,
     -1,
     -1,
     false,
     (kCommon & ~pbit(CULOSS_PARAM_ACTIVATION)) | pbit(CULOSS_PARAM_PER_IMAGE),
     {activation(0, CULOSS_ACTIVATION_NONE)},
     1},  // takes logits: no activation
    {CULOSS_LOVASZ_SOFTMAX,
     "CULOSS_LOVASZ_SOFTMAX",
     F::Lovasz,
     TF::ClassIndex,
     -1,
     -1,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_PER_IMAGE) | pbit(CULOSS_PARAM_CLASSES),
     {activation(kSoftmaxOnly, CULOSS_ACTIVATION_SOFTMAX)},
     1},
    {CULOSS_SUM,
     "CULOSS_SUM",
     F::Sum,
     TF::ClassIndex,
     -1,
     -1,
     -1,
     false,
     pbit(CULOSS_PARAM_CHECK_TARGETS),
     {},
     0},
    {CULOSS_MCC,
     "CULOSS_MCC",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_REGION,
     TK_REGION,
     RK_MCC,
     false,
     // SMOOTH_DR is its ε, added to each of TP, TN, FP, FN; it has no numerator smoothing.
     (kRegion & ~pbit(CULOSS_PARAM_SMOOTH_NR)) | pbit(CULOSS_PARAM_AVERAGE) | kSoftLabel,
     {},
     0},
    {CULOSS_HAUSDORFF_DT,
     "CULOSS_HAUSDORFF_DT",
     F::Distance,
     TF::BinaryIfSigmoid,
     TK_HAUSDORFF_DT,
     TK_HAUSDORFF_DT,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_INCLUDE_BACKGROUND) | pbit(CULOSS_PARAM_ALPHA) |
         pbit(CULOSS_PARAM_SPACING),
     {real(CULOSS_PARAM_ALPHA, 0, kInf, 2)},
     1},
    {CULOSS_BOUNDARY,
     "CULOSS_BOUNDARY",
     F::Distance,
     TF::BinaryIfSigmoid,
     TK_BOUNDARY,
     TK_BOUNDARY,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_INCLUDE_BACKGROUND) | pbit(CULOSS_PARAM_SPACING),
     {},
     0},
    {CULOSS_CLDICE,
     "CULOSS_CLDICE",
     F::Region,
     TF::BinaryIfSigmoid,
     TK_CLDICE,
     TK_CLDICE,
     -1,
     false,
     kRegion | pbit(CULOSS_PARAM_AVERAGE) | pbit(CULOSS_PARAM_ITERATIONS),
     {real(CULOSS_PARAM_SMOOTH_NR, 0, kInf, 1), real(CULOSS_PARAM_SMOOTH_DR, 0, kInf, 1)},
     2},
    // Cross-entropy of the pixels with the largest losses: an element-wise term whose pixels
    // are chosen by a batch-wide selection before the passes (the backends' top-k step).
    {CULOSS_TOPK_CE,
     "CULOSS_TOPK_CE",
     F::Elementwise,
     TF::ClassIndex,
     TK_TOPK_CE,
     TK_TOPK_CE,
     -1,
     false,
     kCommon | pbit(CULOSS_PARAM_CLASS_WEIGHTS) | pbit(CULOSS_PARAM_LABEL_SMOOTHING) |
         pbit(CULOSS_PARAM_TOP_FRACTION),
     {activation(kSoftmaxOnly, CULOSS_ACTIVATION_SOFTMAX),
      {CULOSS_PARAM_REDUCTION, choice(3, CULOSS_REDUCTION_MEAN, bit(CULOSS_REDUCTION_MEAN))}},
     2},
};

constexpr int kKindCount = sizeof(kKinds) / sizeof(kKinds[0]);
constexpr int kParamCount = sizeof(kParams) / sizeof(kParams[0]);

const char* type_name(ParamType t) {
  return t == ParamType::Int     ? "an int (culoss_loss_set_int / culoss_loss_get_int)"
         : t == ParamType::Float ? "a float (culoss_loss_set_float / culoss_loss_get_float)"
                                 : "a list of floats (culoss_loss_set_floats; not readable back)";
}

// "NONE (0) or SIGMOID (1)", "0 or 1", "finite and >= 0", "in [0, 1)", ...
std::string expected_values(const ParamInfo& info, const ParamRule& r) {
  std::ostringstream os;
  if (info.value_names) {
    std::vector<int> ok;
    for (int v = static_cast<int>(r.lower); v <= static_cast<int>(r.upper); ++v)
      if (r.accepts(info.type, v)) ok.push_back(v);
    for (size_t i = 0; i < ok.size(); ++i)
      os << (i == 0               ? ""
             : i + 1 == ok.size() ? " or "
                                  : ", ")
         << info.value_names[ok[i]] << " (" << ok[i] << ")";
    return os.str();
  }
  if (info.type == ParamType::Int) {
    if (r.lower == 0 && r.upper == 1) return "0 or 1";
    os << "in [" << r.lower << ", " << r.upper << "]";
    return os.str();
  }
  os << "finite and ";
  if (r.upper == kInf)
    os << (r.lower_open ? "> " : ">= ") << r.lower;
  else if (r.lower == -kInf)
    os << "at most " << r.upper;
  else
    os << "in " << (r.lower_open ? "(" : "[") << r.lower << ", " << r.upper
       << (r.upper_open ? ")" : "]");
  return os.str();
}

}  // namespace

bool ParamRule::accepts(ParamType type, double v) const {
  if (type != ParamType::Int && !std::isfinite(v)) return false;
  if (type == ParamType::Int && v != std::floor(v)) return false;  // NaN too
  if (!((lower_open ? v > lower : v >= lower) && (upper_open ? v < upper : v <= upper)))
    return false;
  return values == 0 || (values & bit(static_cast<int>(v))) != 0;
}

int kind_count() { return kKindCount; }
int param_count() { return kParamCount; }
int last_kind() {
  int last = 0;
  for (const KindInfo& k : kKinds) last = std::max(last, static_cast<int>(k.id));
  return last;
}
int last_param() {
  int last = 0;
  for (const ParamRow& row : kParams) last = std::max(last, static_cast<int>(row.info.id));
  return last;
}

// Rows are found by their value, not their position: a table stays valid whatever order its
// rows are appended in (the tables are short; these run once per setter or call).
const KindInfo* find_kind(int kind) {
  for (const KindInfo& k : kKinds)
    if (k.id == kind) return &k;
  return nullptr;
}

const ParamRow* find_param_row(int param) {
  for (const ParamRow& row : kParams)
    if (row.info.id == param) return &row;
  return nullptr;
}

const ParamInfo* find_param(int param) {
  const ParamRow* row = find_param_row(param);
  return row ? &row->info : nullptr;
}

const ParamRow& param_row(const ParamInfo& info) { return *find_param_row(info.id); }

int64_t& int_value(Params& p, const ParamInfo& info) { return p.*param_row(info).int_field; }
int64_t int_value(const Params& p, const ParamInfo& info) { return p.*param_row(info).int_field; }
double& float_value(Params& p, const ParamInfo& info) { return p.*param_row(info).float_field; }
double float_value(const Params& p, const ParamInfo& info) {
  return p.*param_row(info).float_field;
}
std::vector<double>& list_value(Params& p, const ParamInfo& info) {
  return p.*param_row(info).list_field;
}

const KindInfo& kind_info(culoss_kind kind) {
  const KindInfo* k = find_kind(kind);
  if (!k) fail(CULOSS_ERROR_INTERNAL, "no registry row for kind ", static_cast<int>(kind));
  return *k;
}

const char* kind_name(culoss_kind kind) {
  const KindInfo* k = find_kind(kind);
  return k ? k->name : "unknown kind";
}

const char* param_name(culoss_param param) {
  const ParamInfo* p = find_param(param);
  return p ? p->name : "unknown parameter";
}

const ParamRule* find_rule(int kind_raw, int param_raw) {
  const KindInfo* kind = find_kind(kind_raw);
  const ParamInfo* info = find_param(param_raw);
  if (!kind || !info || !(kind->params & bit(param_raw))) return nullptr;
  for (int i = 0; i < kind->override_count; ++i)
    if (kind->overrides[i].param == info->id) return &kind->overrides[i].rule;
  return &info->rule;
}

const ParamRule& param_rule(int kind_raw, int param_raw) {
  const KindInfo* kind = find_kind(kind_raw);
  if (!kind)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "unknown culoss_kind ", kind_raw, "; expected 1 (",
         kind_name(CULOSS_DICE), ") to ", last_kind(), " (",
         kind_name(static_cast<culoss_kind>(last_kind())), ")");
  const ParamInfo* info = find_param(param_raw);
  if (!info)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "unknown parameter ", param_raw,
         "; expected a culoss_param from 1 to ", last_param());
  const ParamRule* rule = find_rule(kind_raw, param_raw);
  if (!rule) fail(CULOSS_ERROR_INVALID_ARGUMENT, info->name, " does not apply to ", kind->name);
  return *rule;
}

const ParamInfo& check_param_applies(culoss_kind kind, int param, ParamType type) {
  param_rule(kind, param);
  const ParamInfo& info = *find_param(param);
  if (info.type != type)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, info.name, " is ", type_name(info.type));
  return info;
}

void check_value(const ParamInfo& info, const ParamRule& rule, culoss_kind kind, double value,
                 const char* element) {
  if (rule.accepts(info.type, value)) return;
  fail(CULOSS_ERROR_INVALID_ARGUMENT, info.name, element, " must be ", expected_values(info, rule),
       " for ", kind_name(kind), "; got ", value);
}

Params default_params(culoss_kind kind) {
  Params p{};
  const KindInfo& k = kind_info(kind);
  for (const ParamRow& row : kParams) {
    double def = row.info.rule.default_value;  // also for parameters the kind does not take
    for (int i = 0; i < k.override_count; ++i)
      if (k.overrides[i].param == row.info.id) def = k.overrides[i].rule.default_value;
    if (row.int_field) p.*row.int_field = static_cast<int64_t>(def);
    if (row.float_field) p.*row.float_field = def;
  }
  return p;  // lists stay empty: every element has its default
}

namespace {
// Int parameters that exclude each other (both non-zero), and why.
struct Conflict {
  culoss_param a, b;
  const char* why;
};
const Conflict kConflicts[] = {
    {CULOSS_PARAM_SOFT_LABEL, CULOSS_PARAM_SQUARED_DENOMINATOR,
     "the soft-label statistics are sums of p, t and |p - t|, not of squares"},
};
}  // namespace

void check_combination(culoss_kind kind, const Params& p) {
  for (const Conflict& c : kConflicts) {
    const ParamInfo& a = *find_param(c.a);
    const ParamInfo& b = *find_param(c.b);
    if (find_rule(kind, c.a) && find_rule(kind, c.b) && int_value(p, a) != 0 &&
        int_value(p, b) != 0)
      fail(CULOSS_ERROR_INVALID_ARGUMENT, a.name, "=", int_value(p, a), " cannot be combined with ",
           b.name, "=", int_value(p, b), " for ", kind_name(kind), " (", c.why,
           "); set one of them to 0 first");
  }
}

bool reads_binary_targets(culoss_kind kind, const Params& p) {
  switch (kind_info(kind).targets) {
    case TargetForm::Binary:
      return true;
    case TargetForm::ClassIndex:
      return false;
    case TargetForm::BinaryIfSigmoid:
      return p.activation == CULOSS_ACTIVATION_SIGMOID;
    case TargetForm::BinaryUnlessSoftmax:
      return p.activation != CULOSS_ACTIVATION_SOFTMAX;
  }
  return false;
}

std::vector<int64_t> output_axes(culoss_kind kind, const Params& p, int64_t ndim, int64_t axis) {
  const KindInfo& k = kind_info(kind);
  if (k.family == Family::Sum || p.reduction != CULOSS_REDUCTION_NONE) return {};
  const bool binary = reads_binary_targets(kind, p);
  std::vector<int64_t> axes;
  switch (k.family) {
    case Family::Region:  // one value per group: (image, class), class, image or one
      if (!p.batch) axes.push_back(0);
      if (!(k.image_groups || p.average == CULOSS_AVERAGE_MICRO)) axes.push_back(axis);
      return axes;
    case Family::Elementwise:  // per element (binary) or per pixel
      for (int64_t a = 0; a < ndim; ++a)
        if (binary || a != axis) axes.push_back(a);
      return axes;
    case Family::Distance:  // per element, classes included
      for (int64_t a = 0; a < ndim; ++a) axes.push_back(a);
      return axes;
    case Family::Lovasz:  // per problem (image or batch), and per channel for binary problems
      if (p.per_image) axes.push_back(0);
      if (binary) axes.push_back(axis);
      return axes;
    case Family::Composite:  // MEAN only
    case Family::Sum:
      break;
  }
  return axes;
}

}  // namespace culoss

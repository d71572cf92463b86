// The registry of kinds and parameters: every fact about a kind that is not its math. Names,
// which parameters apply and their bounds and defaults, the activations a kind takes, how it
// reads targets, its family (how it is computed) and the shape of its NONE output. The
// descriptor's setters and getters, validation, planning and the C query functions read it;
// adding a kind is one row here (docs/adding-a-loss.md).
#pragma once

#include <culoss/culoss.h>

#include <cstdint>
#include <vector>

namespace culoss {

struct Params;

// Each parameter is an int, a float, or a list of floats (values of culoss_param_type).
enum class ParamType {
  Int = CULOSS_TYPE_INT,
  Float = CULOSS_TYPE_FLOAT,
  Floats = CULOSS_TYPE_FLOATS
};

// The values one kind accepts for one parameter, and its default there.
struct ParamRule {
  double lower, upper;  // bounds; ±infinity: unbounded
  bool upper_open;      // value < upper rather than <=
  uint32_t values;      // an enum: bit v set when value v is accepted; 0: every value in bounds
  double default_value;
  bool lower_open = false;  // value > lower rather than >= (TOP_FRACTION, SPACING)

  bool accepts(ParamType type, double value) const;
};

struct ParamInfo {
  culoss_param id;
  const char* name;
  ParamType type;
  ParamRule rule;                  // for every kind that does not override it
  const char* const* value_names;  // an enum: the names of values 0..upper; else NULL
};

// Where a descriptor keeps a parameter's value (by its type).
int64_t& int_value(Params& p, const ParamInfo& info);
int64_t int_value(const Params& p, const ParamInfo& info);
double& float_value(Params& p, const ParamInfo& info);
double float_value(const Params& p, const ParamInfo& info);
std::vector<double>& list_value(Params& p, const ParamInfo& info);

// How a kind is computed.
enum class Family {
  Region,       // statistics per (image, class), a ratio, one gradient pass
  Elementwise,  // a loss per element or pixel (counts from statistics when needed)
  Lovasz,       // a sort per problem
  Composite,    // a fixed sum of terms of other families (COMBO: cross-entropy and Dice)
  Distance,     // a loss per element weighted by distance maps of its (image, class): NONE
                // writes the input's shape whatever the activation
  Sum,          // a weighted sum of other kinds' terms
};

// How a kind reads its targets: per-element binary labels (sigmoid-style; class indices only
// as a C = 1 mask) or class indices (one-hot), fixed or decided by the activation.
enum class TargetForm { Binary, ClassIndex, BinaryIfSigmoid, BinaryUnlessSoftmax };

struct KindInfo {
  culoss_kind id;
  const char* name;
  Family family;
  TargetForm targets;
  int term;           // its term unit (TermKind, kernels/terms), -1 for none
  int binary_term;    // the unit when it reads binary targets
  int region;         // region: its ratio (RegionKind, kernels/common/region_math.cuh)
  bool image_groups;  // region: one loss per image (over its classes), whatever AVERAGE says
  uint32_t params;    // bit p set: parameter p applies
  struct Override {
    culoss_param param;
    ParamRule rule;
  };
  Override overrides[4];  // rules of this kind that differ from the parameter's own
  int override_count;
};

const KindInfo* find_kind(int kind);      // NULL when `kind` is no culoss_kind
const ParamInfo* find_param(int param);   // NULL when `param` is no culoss_param
const char* kind_name(culoss_kind kind);  // "unknown kind" for an unknown value
const char* param_name(culoss_param param);
const KindInfo& kind_info(culoss_kind kind);  // a descriptor's kind: known by construction
int kind_count();
int last_kind();   // the highest culoss_kind value with a row
int last_param();  // the highest culoss_param value with a row
int param_count();

// The rule of `param` for `kind`; NULL unless both exist and it applies.
const ParamRule* find_rule(int kind, int param);
// The rule of `param` for `kind`; throws INVALID_ARGUMENT unless both exist and it applies.
const ParamRule& param_rule(int kind, int param);
// Throws INVALID_ARGUMENT unless `param` exists, applies to `kind` and has type `type`. `param`
// is the caller's raw value: C callers may pass any int. Returns its row.
const ParamInfo& check_param_applies(culoss_kind kind, int param, ParamType type);
// Throws INVALID_ARGUMENT naming the parameter, the expected values and `value` unless the rule
// accepts it.
void check_value(const ParamInfo& info, const ParamRule& rule, culoss_kind kind, double value,
                 const char* element = "");

// A descriptor's parameters with every default of `kind`.
Params default_params(culoss_kind kind);

// Throws INVALID_ARGUMENT naming both parameters when `p` sets two that exclude each other.
void check_combination(culoss_kind kind, const Params& p);

// Whether a term of this kind, with these parameters, reads targets as binary labels.
bool reads_binary_targets(culoss_kind kind, const Params& p);

// The input axes of the NONE output (empty: one value); `axis` is the resolved class axis.
std::vector<int64_t> output_axes(culoss_kind kind, const Params& p, int64_t ndim, int64_t axis);

}  // namespace culoss

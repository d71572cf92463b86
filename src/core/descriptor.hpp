// The loss descriptor behind the opaque culoss_loss handle: a kind and its parameters.
#pragma once

#include <culoss/culoss.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace culoss {

struct Params {
  int64_t activation = CULOSS_ACTIVATION_SOFTMAX;
  int64_t class_axis = 1;
  int64_t reduction = CULOSS_REDUCTION_MEAN;
  int64_t ignore_index = -100;
  double smooth_nr = 1e-5;
  double smooth_dr = 1e-5;
  int64_t squared_denominator = 0;
  int64_t batch = 0;
  int64_t include_background = 1;
  std::vector<double> class_weights;  // empty: all 1
  double alpha = 0.5;
  double beta = 0.5;
  double gamma = 2.0;
  int64_t weight_type = CULOSS_WEIGHT_SQUARE;
  std::vector<double> pos_weight;  // empty: all 1
  int64_t class_balance = CULOSS_BALANCE_NONE;
  double label_smoothing = 0.0;
  double ce_ratio = 0.5;
  int64_t per_image = 0;
  int64_t classes = CULOSS_CLASSES_PRESENT;
  int64_t skip_empty = 0;
  int64_t average = CULOSS_AVERAGE_MACRO;
  int64_t check_targets = 1;
};

// Defaults that depend on the kind (DESIGN.md §2).
Params default_params(culoss_kind kind);

bool is_region_kind(culoss_kind kind);
const char* kind_name(culoss_kind kind);
const char* param_name(culoss_param param);

// Each parameter is an int, a float, or a list of floats.
enum class ParamType { Int, Float, Floats };

// Throws INVALID_ARGUMENT unless `param` exists, applies to `kind` and has type `type`.
// `param` is the caller's raw value: C callers may pass any int, so it becomes a culoss_param
// only once it is known. Returns it as one.
culoss_param check_param_applies(culoss_kind kind, int param, ParamType type);

}  // namespace culoss

struct culoss_loss_s {
  culoss_kind kind;
  culoss::Params params;
  std::vector<culoss_loss_s> terms;  // CULOSS_SUM only: copies of the added terms
  std::vector<double> weights;       // their weights
};

namespace culoss {
// Reads the bits of a C enum argument as an int without forming an out-of-range enum value.
template <class E>
int raw_enum(const E& e) {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized");
  int v;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

// What a whole call shares, resolved over the terms of a CULOSS_SUM (which must agree).
struct CallParams {
  int64_t class_axis = 1;
  int64_t ignore_index = -100;
  bool check_targets = true;
  bool binary = false;       // some term reads targets as per-element binary labels
  bool class_index = false;  // some term reads them as class indices (one-hot)
  // The first term that takes the softmax over the class axis (0 if none): with C = 1 that
  // softmax is constant, which the validator refuses.
  culoss_kind softmax_kind = static_cast<culoss_kind>(0);
};
// `ndim` is the input's: negative class axes are resolved before the terms are compared.
CallParams resolve_call_params(const culoss_loss_s& loss, int64_t ndim);

// A term whose target is a per-element binary label (sigmoid-style), not a class index.
bool is_binary_term(const culoss_loss_s& loss);

// Whether `kind` accepts CULOSS_ACTIVATION_SIGMOID (what a one-channel model needs).
bool accepts_sigmoid(culoss_kind kind);

// Validated setters and getters behind culoss_loss_set_* / get_*; they throw culoss::Error.
void set_int(culoss_loss_s& loss, int param, int64_t value);
void set_float(culoss_loss_s& loss, int param, double value);
void set_floats(culoss_loss_s& loss, int param, const double* values, int64_t count);
int64_t get_int(const culoss_loss_s& loss, int param);
double get_float(const culoss_loss_s& loss, int param);
void add_term(culoss_loss_s& sum, const culoss_loss_s& term, double weight);
}  // namespace culoss

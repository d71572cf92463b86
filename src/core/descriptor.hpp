// The loss descriptor behind the opaque culoss_loss handle: a kind and its parameters.
#pragma once

#include <culoss/culoss.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/registry.hpp"

namespace culoss {

// A descriptor's parameters. Their defaults, bounds and which kinds take them are rows of the
// registry (core/registry.hpp): default_params fills every field.
struct Params {
  int64_t activation;
  int64_t class_axis;
  int64_t reduction;
  int64_t ignore_index;
  double smooth_nr;
  double smooth_dr;
  int64_t squared_denominator;
  int64_t batch;
  int64_t include_background;
  std::vector<double> class_weights;  // empty: all 1
  double alpha;
  double beta;
  double gamma;
  int64_t weight_type;
  std::vector<double> pos_weight;  // empty: all 1
  int64_t class_balance;
  double label_smoothing;
  double ce_ratio;
  int64_t per_image;
  int64_t classes;
  int64_t skip_empty;
  int64_t average;
  int64_t check_targets;
  int64_t soft_label;
  double top_fraction;
  std::vector<double> spacing;  // empty: all 1
  int64_t iterations;
};

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

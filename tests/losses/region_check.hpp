// Glue between the region harness (library calls) and the independent reference: conversion of a
// RegionCase into a reference Spec (using the values as stored in the tensors' dtypes) and
// comparison helpers with informative failure messages.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "losses/region_harness.hpp"
#include "reference/region_reference.hpp"

namespace region_test {

inline region_ref::Spec to_spec(const RegionCase& rc) {
  region_ref::Spec s;
  const RegionOptions& o = rc.opt;
  s.kind = static_cast<int>(o.kind);
  s.shape = rc.shape;
  s.class_axis = o.class_axis;
  s.input = stored_input(rc);
  s.index_target = rc.index_target;
  if (rc.index_target) s.labels = rc.labels;
  else s.dense_target = stored_target(rc);
  if (!rc.pixel_weight.empty()) s.pixel_weight = stored_pixel_weight(rc);
  s.activation = o.activation;
  s.reduction = o.reduction;
  s.ignore_index = o.ignore_index;
  s.smooth_nr = o.smooth_nr;
  s.smooth_dr = o.smooth_dr;
  s.squared = o.squared && (o.kind == CULOSS_DICE || o.kind == CULOSS_JACCARD);
  s.batch = o.batch;
  s.include_background = o.include_background;
  s.class_weights = o.class_weights;
  s.alpha = o.alpha;
  s.beta = o.beta;
  s.gamma = o.gamma;
  s.weight_type = o.weight_type;
  s.skip_empty = o.skip_empty;
  s.average = o.kind == CULOSS_GENERALIZED_DICE ? region_ref::MACRO : o.average;
  s.soft_label = o.soft_label;
  if (o.kind == CULOSS_MCC) s.smooth_nr = 0.0;  // not a parameter of MCC
  s.grad_scale = rc.grad_scale;
  return s;
}

// Index of the largest violation of |got − want| <= tol(want), or -1; tol built by the caller.
struct Tol {
  double rel = 1e-9;  // times |want|
  double abs = 1e-9;  // absolute floor
};

inline ::testing::AssertionResult close_vectors(const char* what, const std::vector<double>& got,
                                                const std::vector<double>& want, Tol tol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << what << ": size " << got.size() << " != expected "
                                         << want.size();
  }
  int bad = 0;
  std::ostringstream os;
  os.precision(17);
  for (size_t i = 0; i < got.size(); ++i) {
    const double t = tol.rel * std::fabs(want[i]) + tol.abs;
    if (!(std::fabs(got[i] - want[i]) <= t)) {  // also catches NaN
      if (bad < 6) os << "\n  " << what << "[" << i << "]: got " << got[i] << ", expected " << want[i]
                      << " (diff " << got[i] - want[i] << ", tol " << t << ")";
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements differ" << os.str();
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

inline bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Runs the library and the reference on `rc` and compares values and gradients.
// value_tol / grad_rel: relative tolerances; the gradient's absolute floor is grad_rel times the
// scale of the gradient (max |grad| and max |d obj / d p|) so that tiny entries are not over-judged.
inline ::testing::AssertionResult matches_reference(const RegionCase& rc, const RunConfig& cfg = RunConfig(),
                                                    double value_tol = 1e-9, double grad_rel = 1e-9,
                                                    double grad_abs_factor = 1e-2) {
  const RunResult r = run_region(rc, cfg);
  if (!r.ok()) {
    return ::testing::AssertionFailure() << "culoss_compute failed: " << culoss_status_string(r.status)
                                         << ": " << r.error << "\n  case: " << describe_case(rc);
  }
  const region_ref::Result ref = region_ref::reference(to_spec(rc));
  ::testing::AssertionResult v = close_vectors("loss", r.loss, ref.values, Tol{value_tol, value_tol});
  if (!v) return v << "\n  case: " << describe_case(rc);
  if (cfg.grad) {
    const double scale = max_abs(ref.grad) + ref.max_abs_grad_p;
    ::testing::AssertionResult g =
        close_vectors("grad", r.grad, ref.grad, Tol{grad_rel, grad_rel * grad_abs_factor * scale + 1e-300});
    if (!g) return g << "\n  case: " << describe_case(rc);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace region_test

// Glue for the element-wise loss tests (BCE, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE): conversion
// of a RegionCase (the harness's call description, shared with the region tests) into the
// element-wise reference's Spec, a seeded random case generator covering every option, and the
// comparison with the reference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "losses/region_check.hpp"
#include "losses/region_harness.hpp"
#include "losses/region_random.hpp"
#include "reference/elementwise_reference.hpp"

namespace region_test {

inline bool is_binary_case(const RegionOptions& o) {
  return o.kind == CULOSS_BCE || o.kind == CULOSS_COMBO ||
         (o.kind == CULOSS_FOCAL && o.activation != CULOSS_ACTIVATION_SOFTMAX);
}

inline elem_ref::Spec to_elem_spec(const RegionCase& rc) {
  elem_ref::Spec s;
  const RegionOptions& o = rc.opt;
  s.kind = static_cast<int>(o.kind);
  s.shape = rc.shape;
  s.class_axis = o.class_axis;
  s.input = stored_input(rc);
  s.index_target = rc.index_target;
  if (rc.index_target)
    s.labels = rc.labels;
  else
    s.dense_target = stored_target(rc);
  if (!rc.pixel_weight.empty()) s.pixel_weight = stored_pixel_weight(rc);
  s.activation = o.activation;
  s.reduction = o.reduction;
  s.ignore_index = o.ignore_index;
  s.class_weights = o.class_weights;
  s.pos_weight = o.pos_weight;
  s.batch_frequency = o.class_balance == CULOSS_BALANCE_BATCH_FREQUENCY;
  s.label_smoothing = o.label_smoothing;
  s.alpha = o.alpha;
  s.gamma = o.gamma;
  s.ce_ratio = o.ce_ratio;
  s.smooth_nr = o.smooth_nr;
  s.smooth_dr = o.smooth_dr;
  s.squared = o.squared;
  s.batch = o.batch;
  s.include_background = o.include_background;
  s.skip_empty = o.skip_empty;
  s.average = o.average;
  s.grad_scale = rc.grad_scale;
  return s;
}

// Constraints of random_elementwise_case; -1 = drawn at random.
struct ElemConstraints {
  int kind = -1;  // culoss_kind among the element-wise kinds
  int activation = -1;
  int layout = -1;  // region_random.hpp Layout
  int target = -1;  // region_random.hpp TargetKind
  int reduction = -1;
  int C = -1;
  int N = -1;
  int pixel_weight = -1;
  int class_weights = -1;
  int ignored = -1;          // index targets: 1 forces ignored pixels, 0 none
  int check_off = -1;        // 1: CHECK_TARGETS = 0 with out-of-range labels (index targets)
  int grad_scale = -1;       // 1: a random grad_scale
  int max_dim = -1;          // spatial extents in [1, max_dim]
  double gamma = -1;         // FOCAL: forced γ
  bool clamp_inputs = true;  // ACTIVATION_NONE: some probabilities outside [1e-7, 1 − 1e-7]
  double logit_range = 4.0;
};

constexpr int kElementwiseKinds[] = {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_COMBO,
                                     CULOSS_MARGINAL_CE};

inline RegionCase random_elementwise_case(std::mt19937& rng,
                                          const ElemConstraints& k = ElemConstraints()) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto real = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  auto coin = [&](double p) { return real(0, 1) < p; };

  RegionCase rc;
  const culoss_kind kind =
      static_cast<culoss_kind>(k.kind >= 0 ? k.kind : kElementwiseKinds[uni(0, 4)]);
  rc.opt = default_options(kind);
  RegionOptions& o = rc.opt;

  // Activation.
  if (k.activation >= 0) {
    o.activation = k.activation;
  } else {
    switch (kind) {
      case CULOSS_BCE:
      case CULOSS_COMBO:
        o.activation = coin(0.7) ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_NONE;
        break;
      case CULOSS_FOCAL:
        o.activation = uni(0, 2);
        break;
      default:
        o.activation = coin(0.7) ? CULOSS_ACTIVATION_SOFTMAX : CULOSS_ACTIVATION_NONE;
    }
  }
  bool binary = is_binary_case(o);

  // Target kind and classes: binary losses read index targets as a mask (C = 1).
  int target = k.target;
  if (target < 0) target = coin(0.5) ? uni(kIndexU8, kIndexI64) : uni(kDenseF64, kDenseU8);
  int C = k.C;
  if (C < 0) {
    if (binary)
      C = is_index_target(target) ? 1 : uni(1, 4);
    else
      C = coin(0.05) ? 1 : uni(2, 5);
    // A forced SOFTMAX keeps it: more classes (SOFTMAX over one class is refused).
    if (C == 1 && k.activation == CULOSS_ACTIVATION_SOFTMAX) C = uni(2, 5);
  }
  // One class: SOFTMAX (refused) becomes SIGMOID where the kind takes it (FOCAL), else NONE
  // (probabilities: CROSS_ENTROPY, MARGINAL_CE). Index targets are then a binary mask.
  if (C == 1 && o.activation == CULOSS_ACTIVATION_SOFTMAX) {
    o.activation = kind == CULOSS_FOCAL ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_NONE;
    binary = is_binary_case(o);
  }
  if (binary && is_index_target(target) && C != 1) target = uni(kDenseF64, kDenseU8);
  const bool mask_labels = binary || C == 1;  // index targets: 0/1 (+ ignore), not classes

  // Shape.
  const int layout = k.layout >= 0 ? k.layout : uni(0, kNumLayouts - 1);
  const int64_t N = k.N >= 0 ? k.N : uni(1, 3);
  auto sp = [&](int hi) { return static_cast<int64_t>(uni(1, k.max_dim > 0 ? k.max_dim : hi)); };
  switch (layout) {
    case kLayoutNC:
      rc.shape = {N, C};
      o.class_axis = coin(0.5) ? 1 : -1;
      break;
    case kLayoutNCL:
      rc.shape = {N, C, sp(8)};
      o.class_axis = coin(0.7) ? 1 : -2;
      break;
    case kLayoutNCHW:
      rc.shape = {N, C, sp(5), sp(5)};
      o.class_axis = coin(0.7) ? 1 : -3;
      break;
    case kLayoutNCDHW:
      rc.shape = {N, C, sp(3), sp(3), sp(3)};
      o.class_axis = 1;
      break;
    case kLayoutNHWC:
      rc.shape = {N, sp(5), sp(5), C};
      o.class_axis = coin(0.7) ? -1 : 3;
      break;
    case kLayoutNHCW:
      rc.shape = {N, sp(4), C, sp(4)};
      o.class_axis = coin(0.5) ? 2 : -2;
      break;
    default:
      rc.shape = {N, sp(3), sp(3), sp(2), C};
      o.class_axis = -1;
      break;
  }
  const int64_t ne = numel(rc.shape);
  const std::vector<int64_t> pshape = without_axis(rc.shape, o.class_axis);
  const int64_t np = numel(pshape);
  const int64_t axis = resolved_axis(rc.shape, o.class_axis);
  int64_t pre = 1, inner = 1;
  for (int64_t d = 1; d < axis; ++d) pre *= rc.shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < rc.shape.size(); ++d) inner *= rc.shape[d];
  auto elem = [&](int64_t n, int64_t q, int64_t c) {  // pixel q of image n, class c
    return ((n * pre + q / inner) * C + c) * inner + q % inner;
  };
  const int64_t P = pre * inner;

  // Input.
  rc.input.resize(static_cast<size_t>(ne));
  for (double& x : rc.input) {
    if (o.activation == CULOSS_ACTIVATION_NONE) {
      x = real(0.0, 1.0);
      if (k.clamp_inputs && coin(0.04))
        x = coin(0.5) ? (coin(0.5) ? 0.0 : 3e-8) : (coin(0.5) ? 1.0 : 1.0 - 2e-8);
    } else {
      x = real(-k.logit_range, k.logit_range);
    }
  }

  // Targets.
  o.check_targets = true;
  if (is_index_target(target)) {
    rc.index_target = true;
    rc.target_dtype = target == kIndexU8    ? testing_util::u8()
                      : target == kIndexI32 ? testing_util::i32()
                                            : testing_util::i64();
    const int64_t hi = mask_labels ? 1 : C - 1;
    if (target == kIndexU8)
      o.ignore_index = 255;
    else
      o.ignore_index = coin(0.5) ? -100 : (coin(0.5) ? -1 : 77);
    if (!mask_labels && C >= 3 && coin(0.1)) o.ignore_index = uni(0, C - 1);
    const double p_ign = k.ignored == 1 ? 0.2 : (k.ignored == 0 ? 0.0 : (coin(0.6) ? 0.15 : 0.0));
    const bool check_off = k.check_off == 1 || (k.check_off < 0 && coin(0.12));
    o.check_targets = !check_off;
    rc.labels.resize(static_cast<size_t>(np));
    // Some images lack some classes (MARGINAL_CE's missing annotations).
    std::vector<int> absent(static_cast<size_t>(N * C), 0);
    for (int& a : absent) a = coin(0.3);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t q = 0; q < P; ++q) {
        int64_t lab = uni(0, static_cast<int>(hi));
        // (C = 1 mask of a class-exclusive kind: some images have no foreground.)
        if (!binary && absent[static_cast<size_t>(n * C + (C == 1 ? 0 : lab))]) lab = 0;
        if (coin(p_ign)) lab = o.ignore_index;
        if (check_off && coin(0.15)) {
          if (target == kIndexU8)
            lab = coin(0.5) ? 200 : hi + 1;
          else
            lab = coin(0.5) ? -7 : hi + 1 + uni(0, 3);
          if (lab == o.ignore_index) lab = hi + 1;
        }
        rc.labels[static_cast<size_t>(n * P + q)] = lab;
      }
  } else {
    rc.index_target = false;
    rc.target_dtype = target == kDenseF64    ? testing_util::f64()
                      : target == kDenseF32  ? testing_util::f32()
                      : target == kDenseF16  ? testing_util::f16()
                      : target == kDenseBF16 ? testing_util::bf16()
                                             : testing_util::u8();
    rc.target.assign(static_cast<size_t>(ne), 0.0);
    const bool mask = target == kDenseU8;
    const bool one_hot = !binary && (mask || coin(0.5));
    for (int64_t n = 0; n < N; ++n) {
      std::vector<int> absent(static_cast<size_t>(C), 0);
      for (int& a : absent) a = coin(0.25);
      for (int64_t q = 0; q < P; ++q) {
        if (one_hot) {
          int64_t c = uni(0, C - 1);
          if (absent[static_cast<size_t>(c)]) c = 0;
          rc.target[static_cast<size_t>(elem(n, q, c))] = 1.0;
          continue;
        }
        for (int64_t c = 0; c < C; ++c) {
          double t = (mask || coin(0.4)) ? (coin(0.4) ? 1.0 : 0.0) : real(0.0, 1.0);
          if (absent[static_cast<size_t>(c)] && coin(0.8)) t = 0.0;
          rc.target[static_cast<size_t>(elem(n, q, c))] = t;
        }
      }
    }
  }

  // Pixel weights (float32), some zeros.
  if (k.pixel_weight == 1 || (k.pixel_weight < 0 && coin(0.35))) {
    rc.pixel_weight.resize(static_cast<size_t>(np));
    for (double& w : rc.pixel_weight) w = coin(0.15) ? 0.0 : real(0.0, 2.0);
  }
  // Class weights where they apply (COMBO: its Dice part), some zeros.
  if (kind != CULOSS_MARGINAL_CE && (k.class_weights == 1 || (k.class_weights < 0 && coin(0.35)))) {
    o.class_weights.resize(static_cast<size_t>(C));
    for (double& w : o.class_weights) w = coin(0.2) ? 0.0 : real(0.1, 2.0);
  }

  // Reduction (COMBO and TOPK_CE are MEAN only).
  o.reduction = k.reduction >= 0 ? k.reduction : uni(0, 2);
  if (kind == CULOSS_COMBO || kind == CULOSS_TOPK_CE) o.reduction = CULOSS_REDUCTION_MEAN;

  // Kind-specific options.
  static const double kGammas[] = {0.0, 0.5, 1.0, 2.0, 3.5};
  switch (kind) {
    case CULOSS_BCE:
      if (coin(0.35)) {
        o.pos_weight.resize(static_cast<size_t>(C));
        for (double& w : o.pos_weight) w = coin(0.15) ? 0.0 : real(0.2, 4.0);
      }
      if (coin(0.35)) o.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
      if (coin(0.35)) o.label_smoothing = coin(0.5) ? 0.1 : real(0.0, 0.9);
      break;
    case CULOSS_CROSS_ENTROPY:
      if (coin(0.35)) o.label_smoothing = coin(0.5) ? 0.1 : real(0.0, 0.9);
      break;
    case CULOSS_TOPK_CE:
      if (coin(0.35)) o.label_smoothing = coin(0.5) ? 0.1 : real(0.0, 0.9);
      o.top_fraction = coin(0.2) ? 1.0 : (coin(0.2) ? 1e-6 : real(0.01, 1.0));
      break;
    case CULOSS_FOCAL:
      o.gamma = k.gamma >= 0 ? k.gamma : kGammas[uni(0, 4)];
      if (coin(0.5)) o.alpha = coin(0.3) ? -1.0 : real(0.0, 1.0);
      break;
    case CULOSS_COMBO: {
      o.alpha = real(0.0, 1.0);
      o.ce_ratio = coin(0.2) ? (coin(0.5) ? 0.0 : 1.0) : real(0.0, 1.0);
      static const double kSmooth[][2] = {{1e-5, 1e-5}, {1e-3, 1e-2}, {0.5, 0.5}, {1.0, 1.0}};
      const int si = uni(0, 3);
      o.smooth_nr = kSmooth[si][0];
      o.smooth_dr = kSmooth[si][1];
      o.squared = coin(0.3);
      o.batch = coin(0.3);
      o.include_background = C == 1 ? true : coin(0.7);
      o.skip_empty = coin(0.3);
      o.average = coin(0.3) ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
      break;
    }
    default:
      break;
  }
  rc.grad_scale = (k.grad_scale == 1 || (k.grad_scale < 0 && coin(0.3))) ? real(-2.0, 3.0) : 1.0;
  return rc;
}

inline elem_ref::Result elem_reference(const RegionCase& rc) {
  return elem_ref::reference(to_elem_spec(rc));
}

// Runs the library and the reference on `rc`; compares the values (relative value_tol) and the
// gradient (relative grad_rel, absolute floor grad_rel · grad_abs_factor · max |grad|), both with
// an extra absolute floor abs_floor (for saturated inputs where the long-double reference keeps
// values far below double's range).
inline ::testing::AssertionResult matches_elem_reference(
    const RegionCase& rc, const RunConfig& cfg = RunConfig(), double value_tol = 1e-9,
    double grad_rel = 1e-9, double grad_abs_factor = 1e-2, double abs_floor = 1e-300) {
  const RunResult r = run_region(rc, cfg);
  if (!r.ok()) {
    return ::testing::AssertionFailure()
           << "culoss_compute failed: " << culoss_status_string(r.status) << ": " << r.error
           << "\n  case: " << describe_case(rc);
  }
  const elem_ref::Result ref = elem_reference(rc);
  const double vscale = max_abs(ref.values);
  ::testing::AssertionResult v = close_vectors(
      "loss", r.loss, ref.values, Tol{value_tol, value_tol * 1e-2 * vscale + abs_floor});
  if (!v) return v << "\n  case: " << describe_case(rc);
  if (cfg.grad) {
    const double scale = max_abs(ref.grad);
    ::testing::AssertionResult g = close_vectors(
        "grad", r.grad, ref.grad, Tol{grad_rel, grad_rel * grad_abs_factor * scale + abs_floor});
    if (!g) return g << "\n  case: " << describe_case(rc);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace region_test

// Seeded random RegionCase generator for the region-loss tests (small tensors, every option).
// Fields of RegionConstraints left at -1 are drawn at random.
#pragma once

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "losses/region_harness.hpp"

namespace region_test {

enum Layout {
  kLayoutNC = 0,       // (N, C)
  kLayoutNCL = 1,      // (N, C, L)
  kLayoutNCHW = 2,     // (N, C, H, W)
  kLayoutNCDHW = 3,    // (N, C, D, H, W)
  kLayoutNHWC = 4,     // (N, H, W, C), CLASS_AXIS = -1 (or 3)
  kLayoutNHCW = 5,     // (N, H, C, W), CLASS_AXIS = 2 (or -2)
  kLayoutNDHWC = 6,    // (N, D, H, W, C), CLASS_AXIS = -1
  kNumLayouts = 7
};

enum TargetKind {
  kDenseF64 = 0,  // soft values in [0, 1]
  kDenseF32 = 1,
  kDenseF16 = 2,
  kDenseBF16 = 3,
  kDenseU8 = 4,   // 0/1 mask
  kIndexU8 = 5,
  kIndexI32 = 6,
  kIndexI64 = 7,
  kNumTargetKinds = 8
};

struct RegionConstraints {
  int kind = -1;           // culoss_kind or -1
  int layout = -1;         // Layout or -1
  int target = -1;         // TargetKind or -1
  int activation = -1;
  int reduction = -1;
  int pixel_weight = -1;   // 0/1
  int class_weights = -1;  // 0/1
  int C = -1;
  int N = -1;
  int ignored = -1;        // index targets: 1 forces some ignore_index pixels
  int check_off = -1;      // 1: CHECK_TARGETS=0 with out-of-range labels (index targets)
  int grad_scale = -1;     // 1: random grad_scale != 1
  int smooth = -1;         // index into the smoothing table, or -1
  int average = -1;
  int batch = -1;
  double focal_min_gamma = 0;  // > 0: gamma drawn >= this
  int max_dim = -1;            // > 0: spatial extents drawn in [1, max_dim] (larger images)
  int soft_label = 0;          // 1: SOFT_LABEL=1 (no squared sums); -1: drawn (0 draws nothing)
};

inline bool is_index_target(int t) { return t >= kIndexU8; }

inline RegionCase random_region_case(std::mt19937& rng, const RegionConstraints& k = RegionConstraints()) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto real = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  auto coin = [&](double p) { return real(0, 1) < p; };
  auto pick = [&](int forced, int lo, int hi) { return forced >= 0 ? forced : uni(lo, hi); };

  RegionCase rc;
  const culoss_kind kind = static_cast<culoss_kind>(pick(k.kind, 1, 5));
  rc.opt = default_options(kind);
  RegionOptions& o = rc.opt;

  // Activation, classes and target kind, kept consistent with SEMANTICS.md: SIGMOID with index
  // targets needs C = 1; with C = 1 index targets are a binary mask (SIGMOID or NONE); SOFTMAX
  // over one class is refused, so a one-class case is a SIGMOID (or NONE) one.
  o.activation = pick(k.activation, 0, 2);
  int C = k.C >= 0 ? k.C : uni(1, 5);
  int target = k.target;
  if (target < 0) target = coin(0.45) ? uni(kIndexU8, kIndexI64) : uni(kDenseF64, kDenseU8);
  if (is_index_target(target) && k.C >= 0 && o.activation == CULOSS_ACTIVATION_SIGMOID && C != 1) {
    // A forced C that index targets cannot have with this activation: change what is not forced.
    if (k.target < 0)
      target = uni(kDenseF64, kDenseU8);
    else if (k.activation < 0)
      o.activation = CULOSS_ACTIVATION_SOFTMAX;
  }
  if (is_index_target(target)) {
    // SIGMOID + index needs C == 1 (binary mask); SOFTMAX + index: C >= 2; NONE + index: mostly
    // C >= 2 (class indices), sometimes C = 1 (a binary mask of probabilities).
    if (o.activation == CULOSS_ACTIVATION_SIGMOID) {
      if (k.C < 0) C = 1;
    } else if (C < 2 && k.C < 0 && (o.activation == CULOSS_ACTIVATION_SOFTMAX || coin(0.7))) {
      C = uni(2, 5);
    }
  }
  // SOFTMAX and C = 1 (refused): more classes, or (C forced, or now and then) SIGMOID.
  if (o.activation == CULOSS_ACTIVATION_SOFTMAX && C == 1) {
    if (k.C < 0 && (k.activation >= 0 || coin(0.8)))
      C = uni(2, 5);
    else
      o.activation = CULOSS_ACTIVATION_SIGMOID;
  }

  // Shape.
  const int layout = pick(k.layout, 0, kNumLayouts - 1);
  const int64_t N = k.N >= 0 ? k.N : uni(1, 3);
  auto sp = [&](int hi) { return static_cast<int64_t>(uni(1, k.max_dim > 0 ? k.max_dim : hi)); };
  switch (layout) {
    case kLayoutNC: rc.shape = {N, C}; o.class_axis = coin(0.5) ? 1 : -1; break;
    case kLayoutNCL: rc.shape = {N, C, sp(9)}; o.class_axis = coin(0.7) ? 1 : -2; break;
    case kLayoutNCHW: rc.shape = {N, C, sp(7), sp(7)}; o.class_axis = coin(0.7) ? 1 : -3; break;
    case kLayoutNCDHW: rc.shape = {N, C, sp(4), sp(4), sp(4)}; o.class_axis = 1; break;
    case kLayoutNHWC: rc.shape = {N, sp(7), sp(7), C}; o.class_axis = coin(0.7) ? -1 : 3; break;
    case kLayoutNHCW: rc.shape = {N, sp(5), C, sp(5)}; o.class_axis = coin(0.5) ? 2 : -2; break;
    default: rc.shape = {N, sp(3), sp(3), sp(3), C}; o.class_axis = -1; break;
  }
  const int64_t ne = numel(rc.shape);
  const std::vector<int64_t> pshape = without_axis(rc.shape, o.class_axis);
  const int64_t np = numel(pshape);
  const int64_t axis = resolved_axis(rc.shape, o.class_axis);
  int64_t pre = 1, inner = 1;
  for (int64_t d = 1; d < axis; ++d) pre *= rc.shape[static_cast<size_t>(d)];
  for (size_t d = static_cast<size_t>(axis) + 1; d < rc.shape.size(); ++d) inner *= rc.shape[d];

  // Input: logits, or probabilities in [0, 1] for ACTIVATION_NONE.
  rc.input.resize(static_cast<size_t>(ne));
  for (double& x : rc.input) x = o.activation == CULOSS_ACTIVATION_NONE ? real(0.0, 1.0) : real(-3.0, 3.0);

  // Targets.
  o.check_targets = true;
  if (is_index_target(target)) {
    rc.index_target = true;
    rc.target_dtype = target == kIndexU8 ? testing_util::u8()
                      : target == kIndexI32 ? testing_util::i32() : testing_util::i64();
    const bool binary = C == 1;  // a 0/1 mask whatever the activation
    const int64_t hi = binary ? 1 : C - 1;
    // ignore_index: 255 for uint8, else -100/-1/a large value; sometimes a label inside [0, C).
    if (target == kIndexU8) o.ignore_index = 255;
    else o.ignore_index = coin(0.5) ? -100 : (coin(0.5) ? -1 : 77);
    if (!binary && C >= 3 && coin(0.1)) o.ignore_index = uni(0, C - 1);
    const double p_ign = k.ignored == 1 ? 0.2 : (k.ignored == 0 ? 0.0 : (coin(0.6) ? 0.15 : 0.0));
    const bool check_off = k.check_off == 1 || (k.check_off < 0 && coin(0.15));
    o.check_targets = !check_off;
    rc.labels.resize(static_cast<size_t>(np));
    // Make some classes absent from some images.
    std::vector<int> absent(static_cast<size_t>(C), 0);
    for (int64_t i = 0; i < np; ++i) {
      int64_t lab = uni(0, static_cast<int>(hi));
      if (!binary && C >= 2 && coin(0.3)) lab = std::min<int64_t>(lab, 1);  // skew towards 0/1
      if (coin(p_ign)) lab = o.ignore_index;
      if (check_off && coin(0.15)) {
        if (target == kIndexU8) lab = coin(0.5) ? 200 : hi + 1;
        else lab = coin(0.5) ? -7 : hi + 1 + uni(0, 3);
        if (lab == o.ignore_index) lab = hi + 1;
      }
      rc.labels[static_cast<size_t>(i)] = lab;
    }
  } else {
    rc.index_target = false;
    rc.target_dtype = target == kDenseF64 ? testing_util::f64()
                      : target == kDenseF32 ? testing_util::f32()
                      : target == kDenseF16 ? testing_util::f16()
                      : target == kDenseBF16 ? testing_util::bf16() : testing_util::u8();
    rc.target.resize(static_cast<size_t>(ne));
    const bool mask = target == kDenseU8;
    for (double& t : rc.target) {
      if (mask || coin(0.4)) t = coin(0.35) ? 1.0 : 0.0;
      else t = real(0.0, 1.0);
    }
    // Empty (image, class) pairs now and then.
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        if (!coin(0.2)) continue;
        for (int64_t q = 0; q < pre; ++q)
          for (int64_t in = 0; in < inner; ++in)
            rc.target[static_cast<size_t>((((n * pre + q) * C + c) * inner) + in)] = 0.0;
      }
  }

  // Pixel weights (float32), some zeros.
  if (k.pixel_weight == 1 || (k.pixel_weight < 0 && coin(0.35))) {
    rc.pixel_weight.resize(static_cast<size_t>(np));
    for (double& w : rc.pixel_weight) w = coin(0.2) ? 0.0 : real(0.0, 2.0);
  }
  // Class weights, some zeros.
  if (k.class_weights == 1 || (k.class_weights < 0 && coin(0.35))) {
    o.class_weights.resize(static_cast<size_t>(C));
    for (double& w : o.class_weights) w = coin(0.25) ? 0.0 : real(0.1, 2.0);
  }

  o.reduction = pick(k.reduction, 0, 2);
  o.include_background = C == 1 ? true : coin(0.6);
  o.batch = k.batch >= 0 ? k.batch == 1 : coin(0.35);
  o.skip_empty = coin(0.3);
  if (kind != CULOSS_GENERALIZED_DICE) o.average = k.average >= 0 ? k.average : (coin(0.3) ? 1 : 0);
  if (kind == CULOSS_DICE || kind == CULOSS_JACCARD) o.squared = coin(0.35);
  if (kind != CULOSS_GENERALIZED_DICE && (k.soft_label == 1 || (k.soft_label < 0 && coin(0.5)))) {
    o.soft_label = true;
    o.squared = false;  // refused together
  }
  static const double kSmooth[][2] = {{1e-5, 1e-5}, {0.0, 0.0}, {1e-3, 1e-2}, {0.5, 0.5}, {1.0, 1.0}, {1e-4, 1e-6}};
  const int si = k.smooth >= 0 ? k.smooth : (coin(0.4) ? 0 : uni(1, 5));
  o.smooth_nr = kSmooth[si][0];
  o.smooth_dr = kSmooth[si][1];
  if (kind == CULOSS_TVERSKY || kind == CULOSS_FOCAL_TVERSKY) {
    o.alpha = real(0.1, 1.0);
    o.beta = real(0.1, 1.0);
  }
  if (kind == CULOSS_FOCAL_TVERSKY) {
    static const double kGamma[] = {0.5, 0.75, 1.0, 1.5, 2.0, 3.0};
    do { o.gamma = kGamma[uni(0, 5)]; } while (o.gamma < k.focal_min_gamma);
  }
  if (kind == CULOSS_GENERALIZED_DICE) o.weight_type = uni(0, 2);
  rc.grad_scale = (k.grad_scale == 1 || (k.grad_scale < 0 && coin(0.3))) ? real(-2.0, 3.0) : 1.0;
  return rc;
}

}  // namespace region_test

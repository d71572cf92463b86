// Region losses (DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, GENERALIZED_DICE) on the CPU backend
// against the independent double-precision reference in tests/reference/region_reference.hpp:
// random shapes, layouts, target kinds and option combinations (seeded), values and gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "losses/region_check.hpp"
#include "losses/region_random.hpp"

namespace {

using namespace region_test;

constexpr int kAllKinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                             CULOSS_GENERALIZED_DICE};

// The reference's analytic gradient against central differences of its own objective in long
// double (away from the focal-Tversky kink: gamma >= 1 and smooth_nr <= smooth_dr there).
TEST(RegionReference, SelfCheckAgainstFiniteDifferences) {
  std::mt19937 rng(20240601);
  int checked = 0;
  for (int it = 0; it < 120; ++it) {
    RegionConstraints k;
    k.focal_min_gamma = 1.0;
    const RegionCase rc = random_region_case(rng, k);
    if (rc.opt.kind == CULOSS_FOCAL_TVERSKY && rc.opt.smooth_nr > rc.opt.smooth_dr) continue;
    const region_ref::Spec s = to_spec(rc);
    const region_ref::Result ref = region_ref::reference(s);
    const std::vector<long double> x(s.input.begin(), s.input.end());
    const double scale = max_abs(ref.grad) + ref.max_abs_grad_p;
    for (size_t i = 0; i < x.size(); ++i) {
      const long double h = 1e-5L * std::max(1.0L, std::fabs(x[i]));
      std::vector<long double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const long double fd = (region_ref::reference_objective(s, xp) - region_ref::reference_objective(s, xm)) /
                             (2 * h) * s.grad_scale;
      ASSERT_NEAR(static_cast<double>(fd), ref.grad[i], 1e-7 * scale + 1e-300)
          << "element " << i << "\n  case: " << describe_case(rc);
    }
    ++checked;
  }
  EXPECT_GT(checked, 80);
}

// The reference itself on a case computed by hand (see region_values_test.cpp for the library).
TEST(RegionReference, SelfCheckHandValues) {
  region_ref::Spec s;
  s.kind = region_ref::DICE;
  s.shape = {1, 1, 4};
  s.activation = region_ref::ACT_NONE;
  s.input = {1.0, 0.0, 0.5, 0.5};
  s.dense_target = {1.0, 0.0, 1.0, 0.0};
  s.smooth_nr = s.smooth_dr = 0.0;
  // I = 1.5, SP = 2, ST = 2: 1 − 3/4; dℓ/dp = −(2t·4 − 3)/16.
  region_ref::Result r = region_ref::reference(s);
  EXPECT_DOUBLE_EQ(r.values[0], 0.25);
  EXPECT_DOUBLE_EQ(r.grad[0], -5.0 / 16);
  EXPECT_DOUBLE_EQ(r.grad[1], 3.0 / 16);
  s.kind = region_ref::JACCARD;  // 1 − 1.5/2.5; dℓ/dp = −(t·2.5 − 1.5(1 − t))/6.25
  r = region_ref::reference(s);
  EXPECT_DOUBLE_EQ(r.values[0], 0.4);
  EXPECT_DOUBLE_EQ(r.grad[0], -0.4);
  EXPECT_DOUBLE_EQ(r.grad[1], 0.24);
}

// Every option drawn at random.
TEST(RegionReference, RandomCases) {
  std::mt19937 rng(1);
  for (int it = 0; it < 400; ++it) {
    const RegionCase rc = random_region_case(rng);
    ASSERT_TRUE(matches_reference(rc)) << "iteration " << it;
  }
}

TEST(RegionReference, EveryKindEveryReduction) {
  std::mt19937 rng(2);
  for (int kind : kAllKinds)
    for (int red = 0; red < 3; ++red)
      for (int it = 0; it < 12; ++it) {
        RegionConstraints k;
        k.kind = kind;
        k.reduction = red;
        const RegionCase rc = random_region_case(rng, k);
        ASSERT_TRUE(matches_reference(rc)) << "kind " << kind << " reduction " << red;
      }
}

TEST(RegionReference, Layouts) {
  // (N, C), (N, C, L), NCHW, NCDHW, NHWC (CLASS_AXIS -1 or 3), (N, H, C, W), NDHWC.
  std::mt19937 rng(3);
  for (int layout = 0; layout < kNumLayouts; ++layout)
    for (int it = 0; it < 30; ++it) {
      RegionConstraints k;
      k.layout = layout;
      const RegionCase rc = random_region_case(rng, k);
      ASSERT_TRUE(matches_reference(rc)) << "layout " << layout;
    }
}

TEST(RegionReference, TargetKinds) {
  // Dense float64/float32/float16/bfloat16 soft targets, uint8 masks, uint8/int32/int64 labels.
  std::mt19937 rng(4);
  for (int target = 0; target < kNumTargetKinds; ++target)
    for (int it = 0; it < 30; ++it) {
      RegionConstraints k;
      k.target = target;
      const RegionCase rc = random_region_case(rng, k);
      ASSERT_TRUE(matches_reference(rc)) << "target kind " << target;
    }
}

TEST(RegionReference, LargerImages) {
  // Thousands of pixels per image (blocked / multi-pass statistics), every layout.
  std::mt19937 rng(20);
  for (int it = 0; it < 28; ++it) {
    RegionConstraints k;
    k.layout = it % kNumLayouts;
    k.max_dim = k.layout == kLayoutNCL ? 5000 : (k.layout == kLayoutNCDHW || k.layout == kLayoutNDHWC ? 24 : 90);
    if (k.layout == kLayoutNC) k.N = 1;  // (N, C) has no spatial axis; N stays small
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(matches_reference(rc, RunConfig(), 1e-9, 1e-9)) << "iteration " << it;
  }
  // Many images of (N, C) classification: N up to 3 only in the generator, so build one here.
  RegionConstraints k;
  k.layout = kLayoutNC;
  RegionCase rc = random_region_case(rng, k);
  // N·C = 3000 elements: the reference's gradient costs O((N·C)²), whatever C was drawn.
  const int64_t C = rc.shape[1], N = 3000 / C;
  rc.shape = {N, C};
  rc.input.resize(static_cast<size_t>(N * C));
  std::uniform_real_distribution<double> u(-2, 2);
  for (double& x : rc.input) x = rc.opt.activation == CULOSS_ACTIVATION_NONE ? 0.25 * (u(rng) + 2) : u(rng);
  if (rc.index_target) {
    rc.labels.resize(static_cast<size_t>(N));
    const int64_t hi = C == 1 ? 2 : C;  // one class: a 0/1 mask
    for (int64_t& l : rc.labels) l = static_cast<int64_t>(std::floor((u(rng) + 2) / 4 * static_cast<double>(hi))) % hi;
  } else {
    rc.target.resize(static_cast<size_t>(N * C));
    for (double& t : rc.target) t = (u(rng) + 2) / 4;
  }
  if (!rc.pixel_weight.empty()) rc.pixel_weight.assign(static_cast<size_t>(N), 0.5);
  ASSERT_TRUE(matches_reference(rc));
}

TEST(RegionReference, SigmoidBinaryMaskLabels) {
  // SIGMOID with C = 1 and index targets: the labels are the mask (0/1 or IGNORE_INDEX).
  std::mt19937 rng(5);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.activation = CULOSS_ACTIVATION_SIGMOID;
    k.C = 1;
    k.target = kIndexU8 + it % 3;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(rc.index_target);
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, IgnoredPixels) {
  std::mt19937 rng(6);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.target = kIndexU8 + it % 3;
    k.ignored = 1;
    k.check_off = 0;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, IgnoreIndexInsideClassRange) {
  // A label equal to IGNORE_INDEX is excluded even when it is a valid class number.
  std::mt19937 rng(7);
  for (int it = 0; it < 40; ++it) {
    RegionConstraints k;
    k.target = kIndexI32 + it % 2;
    k.activation = it % 2 ? CULOSS_ACTIVATION_SOFTMAX : CULOSS_ACTIVATION_NONE;
    k.C = 3 + it % 3;
    k.ignored = 0;
    k.check_off = 0;
    RegionCase rc = random_region_case(rng, k);
    rc.opt.ignore_index = it % k.C;
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, CheckTargetsOffOutOfRangeLabelsAreIgnored) {
  std::mt19937 rng(8);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.target = kIndexU8 + it % 3;
    k.check_off = 1;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_FALSE(rc.opt.check_targets);
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, PixelWeights) {
  std::mt19937 rng(9);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.pixel_weight = 1;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, ClassWeightsIncludingZeros) {
  std::mt19937 rng(10);
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.class_weights = 1;
    k.C = 2 + it % 4;
    RegionCase rc = random_region_case(rng, k);
    if (it % 4 == 0) rc.opt.class_weights.assign(rc.opt.class_weights.size(), 0.0);  // Σω = 0
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, MicroAverageAndBatch) {
  std::mt19937 rng(11);
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = kAllKinds[it % 4];  // AVERAGE does not apply to GENERALIZED_DICE
    k.average = (it / 4) % 2;
    k.batch = (it / 8) % 2;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, SmoothingVariants) {
  std::mt19937 rng(12);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.smooth = it % 6;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, GradScale) {
  std::mt19937 rng(13);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.grad_scale = 1;
    RegionCase rc = random_region_case(rng, k);
    if (it % 10 == 0) rc.grad_scale = 0.0;
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, Float32GradientForFloat64Input) {
  std::mt19937 rng(14);
  RunConfig cfg;
  cfg.grad_f32 = true;
  for (int it = 0; it < 60; ++it) {
    const RegionCase rc = random_region_case(rng);
    // float32 rounding of each gradient element: 2^-24 relative.
    ASSERT_TRUE(matches_reference(rc, cfg, 1e-9, 1.2e-7, 1e-2));
  }
}

TEST(RegionReference, InPlaceGradientOverwritesInput) {
  std::mt19937 rng(15);
  RunConfig cfg;
  cfg.in_place = true;
  for (int it = 0; it < 60; ++it) {
    const RegionCase rc = random_region_case(rng);
    ASSERT_TRUE(matches_reference(rc, cfg));
  }
}

TEST(RegionReference, InPlaceFloat32Input) {
  std::mt19937 rng(16);
  RunConfig cfg;
  cfg.in_place = true;
  for (int it = 0; it < 40; ++it) {
    RegionCase rc = random_region_case(rng);
    rc.input_dtype = testing_util::f32();
    // Elementwise math may run in float32 for float32 inputs; statistics are accumulated in double.
    ASSERT_TRUE(matches_reference(rc, cfg, 2e-5, 2e-5, 0.5));
  }
}

TEST(RegionReference, Float32LossOutput) {
  std::mt19937 rng(17);
  RunConfig cfg;
  cfg.loss_dtype = testing_util::f32();
  for (int it = 0; it < 40; ++it) {
    const RegionCase rc = random_region_case(rng);
    ASSERT_TRUE(matches_reference(rc, cfg, 1.2e-7));
  }
}

TEST(RegionReference, OneElementLossAsShape1) {
  std::mt19937 rng(18);
  RunConfig cfg;
  cfg.scalar_as_1d = true;
  for (int it = 0; it < 30; ++it) {
    RegionConstraints k;
    k.reduction = it % 2;  // MEAN, SUM
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(matches_reference(rc, cfg));
  }
  // MICRO / generalized Dice NONE with BATCH also write one element.
  for (int it = 0; it < 20; ++it) {
    RegionConstraints k;
    k.kind = it % 2 ? CULOSS_GENERALIZED_DICE : CULOSS_DICE;
    k.average = CULOSS_AVERAGE_MICRO;
    k.reduction = CULOSS_REDUCTION_NONE;
    k.batch = 1;
    const RegionCase rc = random_region_case(rng, k);
    ASSERT_TRUE(loss_shape(rc).empty());
    ASSERT_TRUE(matches_reference(rc, cfg));
    ASSERT_TRUE(matches_reference(rc));
  }
}

TEST(RegionReference, ForwardOnlyGivesTheSameLoss) {
  std::mt19937 rng(19);
  RunConfig fwd;
  fwd.grad = false;
  for (int it = 0; it < 30; ++it) {
    const RegionCase rc = random_region_case(rng);
    const RunResult a = run_region(rc, fwd), b = run_region(rc);
    ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error;
    ASSERT_EQ(b.status, CULOSS_SUCCESS) << b.error;
    ASSERT_EQ(a.loss_bytes, b.loss_bytes) << describe_case(rc);
    ASSERT_TRUE(matches_reference(rc, fwd));
  }
}

}  // namespace

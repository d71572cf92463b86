// Element-wise losses: the library's analytic gradient against central finite differences of the
// library's own forward value (float64 input, forward-only calls), per kind over a spread of
// options; focal with γ ∈ {0, 0.5, 1, 2, 3.5} for each activation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "losses/elementwise_check.hpp"

namespace {

using namespace region_test;

// Central differences of the library's value, element by element, against its gradient.
::testing::AssertionResult gradcheck(const RegionCase& rc, double tol = 1e-6) {
  const RunResult base = run_region(rc);
  if (!base.ok())
    return ::testing::AssertionFailure() << base.error << "\n  case: " << describe_case(rc);
  if (!all_finite(base.grad) || !all_finite(base.loss))
    return ::testing::AssertionFailure() << "non-finite output\n  case: " << describe_case(rc);
  RunConfig fwd;
  fwd.grad = false;
  const double scale = max_abs(base.grad);
  std::vector<double> fd(rc.input.size());
  for (size_t i = 0; i < rc.input.size(); ++i) {
    const double h = 1e-6 * std::max(1.0, std::fabs(rc.input[i]));
    RegionCase p = rc, m = rc;
    p.input[i] += h;
    m.input[i] -= h;
    const RunResult rp = run_region(p, fwd), rm = run_region(m, fwd);
    if (!rp.ok() || !rm.ok()) return ::testing::AssertionFailure() << "forward call failed";
    fd[i] = (objective(rp) - objective(rm)) / (2 * h) * rc.grad_scale;
  }
  ::testing::AssertionResult r =
      close_vectors("grad vs finite differences", base.grad, fd, Tol{tol, tol * scale + 1e-12});
  if (!r) return r << "\n  case: " << describe_case(rc);
  return r;
}

// Keeps probability inputs away from the clamp (and the finite-difference steps inside it).
void keep_probabilities_inside(RegionCase& rc) {
  if (rc.opt.activation != CULOSS_ACTIVATION_NONE) return;
  for (double& x : rc.input) x = 0.05 + 0.9 * std::min(1.0, std::max(0.0, x));
}

RegionCase draw(std::mt19937& rng, ElemConstraints k) {
  k.clamp_inputs = false;
  k.max_dim = 3;
  k.N = k.N >= 0 ? k.N : 2;
  RegionCase rc = random_elementwise_case(rng, k);
  keep_probabilities_inside(rc);
  return rc;
}

TEST(ElementwiseGradcheck, BCE) {
  std::mt19937 rng(301);
  for (int variant = 0; variant < 8; ++variant) {
    ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.activation = variant % 3 == 2 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SIGMOID;
    k.reduction = variant % 3;
    k.target = variant % 2 ? kIndexI64 : kDenseF64;  // index: C = 1 binary mask
    k.ignored = variant % 2;
    k.pixel_weight = variant % 4 == 1;
    k.class_weights = variant % 4 == 3;
    k.layout = variant % kNumLayouts;
    RegionCase rc = draw(rng, k);
    rc.opt.class_balance = variant >= 4 ? CULOSS_BALANCE_BATCH_FREQUENCY : CULOSS_BALANCE_NONE;
    rc.opt.label_smoothing = variant % 2 ? 0.2 : 0.0;
    const int64_t C = num_classes(rc);
    rc.opt.pos_weight.clear();
    if (variant % 3 == 0)
      for (int64_t c = 0; c < C; ++c) rc.opt.pos_weight.push_back(0.5 + c);
    rc.grad_scale = variant == 5 ? -1.5 : 1.0;
    EXPECT_TRUE(gradcheck(rc)) << "variant " << variant;
  }
}

TEST(ElementwiseGradcheck, CrossEntropy) {
  std::mt19937 rng(302);
  for (int variant = 0; variant < 8; ++variant) {
    ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.activation = variant % 4 == 3 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
    k.reduction = variant % 3;
    k.target = variant % 2 ? kIndexI32 : kDenseF32;
    k.ignored = variant % 2;
    k.pixel_weight = variant % 4 == 1;
    k.class_weights = variant % 3 == 0;
    k.layout = (variant + 2) % kNumLayouts;
    k.C = 2 + variant % 3;
    RegionCase rc = draw(rng, k);
    rc.opt.label_smoothing = variant >= 4 ? 0.15 : 0.0;
    rc.grad_scale = variant == 6 ? 2.0 : 1.0;
    EXPECT_TRUE(gradcheck(rc)) << "variant " << variant;
  }
}

TEST(ElementwiseGradcheck, FocalEveryGammaEveryActivation) {
  std::mt19937 rng(303);
  for (double g : {0.0, 0.5, 1.0, 2.0, 3.5})
    for (int act = 0; act < 3; ++act)
      for (int variant = 0; variant < 2; ++variant) {
        ElemConstraints k;
        k.kind = CULOSS_FOCAL;
        k.activation = act;
        k.gamma = g;
        k.reduction = (act + variant) % 3;
        k.target = variant ? (act == CULOSS_ACTIVATION_SOFTMAX ? kIndexU8 : kDenseU8) : kDenseF64;
        k.pixel_weight = variant;
        k.class_weights = 1 - variant;
        k.layout = (act * 2 + variant) % kNumLayouts;
        if (act != CULOSS_ACTIVATION_SOFTMAX) k.C = 1 + variant * 2;
        RegionCase rc = draw(rng, k);
        rc.opt.alpha = variant ? -1.0 : 0.3;
        EXPECT_TRUE(gradcheck(rc)) << "gamma " << g << " act " << act << " variant " << variant;
      }
}

TEST(ElementwiseGradcheck, Combo) {
  std::mt19937 rng(304);
  const double ratios[] = {0.0, 0.3, 0.5, 1.0};
  for (int variant = 0; variant < 8; ++variant) {
    ElemConstraints k;
    k.kind = CULOSS_COMBO;
    k.activation = variant % 3 == 2 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SIGMOID;
    k.target = variant % 2 ? kIndexU8 : kDenseF64;
    k.ignored = variant % 2;
    k.pixel_weight = variant % 4 == 0;
    k.class_weights = variant % 4 == 2;
    k.layout = (variant + 1) % kNumLayouts;
    RegionCase rc = draw(rng, k);
    rc.opt.ce_ratio = ratios[variant % 4];
    rc.opt.alpha = 0.2 + 0.1 * variant;
    rc.opt.smooth_nr = rc.opt.smooth_dr = 1e-3;
    rc.opt.squared = variant >= 4;
    rc.opt.batch = variant % 3 == 1;
    rc.opt.average = variant == 6 ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
    rc.grad_scale = variant == 7 ? 0.5 : 1.0;
    EXPECT_TRUE(gradcheck(rc)) << "variant " << variant;
  }
}

TEST(ElementwiseGradcheck, MarginalCE) {
  std::mt19937 rng(305);
  for (int variant = 0; variant < 8; ++variant) {
    ElemConstraints k;
    k.kind = CULOSS_MARGINAL_CE;
    k.activation = variant % 4 == 3 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
    k.reduction = variant % 3;
    k.target = variant % 2 ? kIndexI64 : kDenseF64;
    k.ignored = variant % 2;
    k.pixel_weight = variant % 4 == 1;
    k.layout = (variant + 3) % kNumLayouts;
    k.C = 3 + variant % 2;
    RegionCase rc = draw(rng, k);
    rc.grad_scale = variant == 2 ? -0.75 : 1.0;
    EXPECT_TRUE(gradcheck(rc)) << "variant " << variant;
  }
}

// Random cases of every kind.
TEST(ElementwiseGradcheck, RandomCases) {
  std::mt19937 rng(306);
  for (int it = 0; it < 150; ++it) {
    ElemConstraints k;
    k.kind = kElementwiseKinds[it % 5];
    const RegionCase rc = draw(rng, k);
    EXPECT_TRUE(gradcheck(rc)) << "iteration " << it;
  }
}

}  // namespace

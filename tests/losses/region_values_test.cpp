// Region losses: values computed by hand, MONAI's published DiceLoss test cases (translated,
// every option explicit), edge cases (empty masks, all ignored, one pixel, saturated logits,
// zero smoothing, empty tensors), half-precision inputs, determinism, target checks and the
// parameters that apply to each region kind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "losses/region_check.hpp"
#include "losses/region_random.hpp"

namespace {

using namespace region_test;
using testing_util::TestTensor;

constexpr int kAllKinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                             CULOSS_GENERALIZED_DICE};

RegionCase dense_case(culoss_kind kind, std::vector<int64_t> shape, std::vector<double> input,
                      std::vector<double> target, int activation) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.opt.activation = activation;
  rc.shape = std::move(shape);
  rc.input = std::move(input);
  rc.target = std::move(target);
  return rc;
}

RegionCase index_case(culoss_kind kind, std::vector<int64_t> shape, std::vector<double> input,
                      std::vector<int64_t> labels, int activation) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.opt.activation = activation;
  rc.shape = std::move(shape);
  rc.input = std::move(input);
  rc.index_target = true;
  rc.target_dtype = testing_util::i64();
  rc.labels = std::move(labels);
  return rc;
}

// Runs the case; checks the loss values (and the gradient when `grad` is not empty) to ~1e-12.
void expect_values(const RegionCase& rc, const std::vector<double>& loss, const std::vector<double>& grad = {},
                   double rel = 1e-12) {
  const RunResult r = run_region(rc);
  ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
  EXPECT_TRUE(close_vectors("loss", r.loss, loss, Tol{rel, rel})) << describe_case(rc);
  if (!grad.empty()) {
    EXPECT_TRUE(close_vectors("grad", r.grad, grad, Tol{rel, rel * max_abs(grad)})) << describe_case(rc);
  }
  // The reference agrees with the hand values too.
  const region_ref::Result ref = region_ref::reference(to_spec(rc));
  EXPECT_TRUE(close_vectors("reference loss", ref.values, loss, Tol{1e-12, 1e-12}));
  if (!grad.empty()) {
    EXPECT_TRUE(close_vectors("reference grad", ref.grad, grad, Tol{1e-12, 1e-12}));
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed values.
//
// Case A: one image, one class, 4 pixels, probabilities (ACTIVATION_NONE), smoothing 0.
//   p = [1, 0, .5, .5], t = [1, 0, 1, 0]:  I = 1.5, SP = 2, ST = 2, FP = .5, FN = .5.
RegionCase case_a(culoss_kind kind) {
  RegionCase rc = dense_case(kind, {1, 1, 4}, {1.0, 0.0, 0.5, 0.5}, {1.0, 0.0, 1.0, 0.0}, CULOSS_ACTIVATION_NONE);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  return rc;
}

TEST(RegionValues, DiceByHand) {
  // ℓ = 1 − 2·1.5/4 = 1/4;  dℓ/dp = −(2t·4 − 3)/16  →  t=1: −5/16, t=0: 3/16.
  expect_values(case_a(CULOSS_DICE), {0.25}, {-5.0 / 16, 3.0 / 16, -5.0 / 16, 3.0 / 16});
}

TEST(RegionValues, JaccardByHand) {
  // ℓ = 1 − 1.5/(2 + 2 − 1.5) = 0.4;  dℓ/dp = −(t·2.5 − 1.5(1 − t))/6.25 → −0.4, 0.24.
  expect_values(case_a(CULOSS_JACCARD), {0.4}, {-0.4, 0.24, -0.4, 0.24});
}

TEST(RegionValues, TverskyByHand) {
  // α = .3, β = .7: D = 1.5 + .3·.5 + .7·.5 = 2, ℓ = 1 − 1.5/2 = .25.
  // D = (1−α−β)I + α SP + β ST, dD/dp = (1−α−β)t + α; dTI/dp = (t D − I dD/dp)/D²:
  //   t=1: (2 − 1.5·.3)/4 = .3875 → −.3875;  t=0: (0 − 1.5·.3)/4 = −.1125 → .1125.
  RegionCase rc = case_a(CULOSS_TVERSKY);
  rc.opt.alpha = 0.3;
  rc.opt.beta = 0.7;
  expect_values(rc, {0.25}, {-0.3875, 0.1125, -0.3875, 0.1125});
}

TEST(RegionValues, FocalTverskyByHand) {
  // Same statistics; γ = 2: ℓ = .25² = .0625, dℓ = 2·.25·dℓ_T → −.19375, .05625.
  RegionCase rc = case_a(CULOSS_FOCAL_TVERSKY);
  rc.opt.alpha = 0.3;
  rc.opt.beta = 0.7;
  rc.opt.gamma = 2.0;
  expect_values(rc, {0.0625}, {-0.19375, 0.05625, -0.19375, 0.05625});
  // Default γ = 0.75: ℓ = .25^.75 = 2^-1.5; dℓ = .75·.25^-.25·dℓ_T.
  rc.opt.gamma = 0.75;
  const double f = 0.75 * std::pow(0.25, -0.25);
  expect_values(rc, {std::pow(2.0, -1.5)}, {-0.3875 * f, 0.1125 * f, -0.3875 * f, 0.1125 * f});
}

TEST(RegionValues, FocalTverskyClampsNegativeBase) {
  // Perfect prediction with smooth_nr = 1 > smooth_dr = .5: TI = (1+1)/(1+.5) = 4/3 > 1.
  // Tversky gives 1 − 4/3 = −1/3; focal Tversky max(1 − TI, 0)^γ = 0 with a zero gradient.
  RegionCase rc = dense_case(CULOSS_FOCAL_TVERSKY, {1, 1, 2}, {1.0, 0.0}, {1.0, 0.0}, CULOSS_ACTIVATION_NONE);
  rc.opt.smooth_nr = 1.0;
  rc.opt.smooth_dr = 0.5;
  expect_values(rc, {0.0}, {0.0, 0.0});
  RegionCase tv = rc;
  tv.opt = default_options(CULOSS_TVERSKY);
  tv.opt.activation = CULOSS_ACTIVATION_NONE;
  tv.opt.smooth_nr = 1.0;
  tv.opt.smooth_dr = 0.5;
  const RunResult r = run_region(tv);
  ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
  EXPECT_NEAR(r.loss[0], -1.0 / 3, 1e-15);
}

// Case B: one image, two classes, 4 pixels, probabilities, labels [0, 0, 0, 1], smoothing 0.
//   class 0: p = [1, .5, .5, .5], t = [1, 1, 1, 0]: I = 2,  SP = 2.5, ST = 3
//   class 1: p = [0, .5, .5, .5], t = [0, 0, 0, 1]: I = .5, SP = 1.5, ST = 1
RegionCase case_b(culoss_kind kind) {
  RegionCase rc = index_case(kind, {1, 2, 4}, {1.0, 0.5, 0.5, 0.5, 0.0, 0.5, 0.5, 0.5}, {0, 0, 0, 1},
                             CULOSS_ACTIVATION_NONE);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  return rc;
}

TEST(RegionValues, DiceTwoClassesByHand) {
  // ℓ0 = 1 − 4/5.5 = 3/11, ℓ1 = 1 − 1/2.5 = 3/5; MEAN = 24/55.
  // dℓ0/dp = −(2t·5.5 − 4)/30.25 → t=1: −28/121, t=0: 16/121; dℓ1/dp = −(2t·2.5 − 1)/6.25 → −.64, .16;
  // halved by the mean.
  const double a = -14.0 / 121, b = 8.0 / 121;
  expect_values(case_b(CULOSS_DICE), {24.0 / 55}, {a, a, a, b, 0.08, 0.08, 0.08, -0.32});
  RegionCase rc = case_b(CULOSS_DICE);
  rc.opt.reduction = CULOSS_REDUCTION_SUM;
  expect_values(rc, {48.0 / 55}, {2 * a, 2 * a, 2 * a, 2 * b, 0.16, 0.16, 0.16, -0.64});
  rc.opt.reduction = CULOSS_REDUCTION_NONE;  // (N, C); gradient of the sum
  expect_values(rc, {3.0 / 11, 0.6}, {2 * a, 2 * a, 2 * a, 2 * b, 0.16, 0.16, 0.16, -0.64});
}

TEST(RegionValues, DiceClassWeightsByHand) {
  // ω = [1, 3]: MEAN = (3/11 + 3·3/5)/4 = 57/110, SUM = 114/55, NONE = [3/11, 9/5].
  RegionCase rc = case_b(CULOSS_DICE);
  rc.opt.class_weights = {1.0, 3.0};
  expect_values(rc, {57.0 / 110});
  rc.opt.reduction = CULOSS_REDUCTION_SUM;
  expect_values(rc, {114.0 / 55});
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  expect_values(rc, {3.0 / 11, 9.0 / 5});
  // A zero weight removes the class from the mean: ω = [0, 2] → 3/5.
  rc.opt.class_weights = {0.0, 2.0};
  rc.opt.reduction = CULOSS_REDUCTION_MEAN;
  expect_values(rc, {0.6});
  // All weights zero: nothing left → 0.
  rc.opt.class_weights = {0.0, 0.0};
  expect_values(rc, {0.0}, std::vector<double>(8, 0.0));
}

TEST(RegionValues, DiceIncludeBackgroundSquaredMicroByHand) {
  RegionCase rc = case_b(CULOSS_DICE);
  rc.opt.include_background = false;  // class 1 only: 3/5
  expect_values(rc, {0.6});
  rc.opt.reduction = CULOSS_REDUCTION_NONE;  // excluded entries are 0
  expect_values(rc, {0.0, 0.6});
  rc = case_b(CULOSS_DICE);
  // Squared: SP0 = 1 + 3·.25 = 1.75, ST0 = 3 → 1 − 4/4.75 = 3/19; SP1 = .75, ST1 = 1 → 1 − 1/1.75 = 3/7.
  rc.opt.squared = true;
  expect_values(rc, {39.0 / 133});
  // MICRO: I = 2.5, SP = 4, ST = 4 → 3/8; with ω = [1, 3]: I = 3.5, SP = 7, ST = 6 → 6/13.
  rc = case_b(CULOSS_DICE);
  rc.opt.average = CULOSS_AVERAGE_MICRO;
  expect_values(rc, {3.0 / 8});
  rc.opt.class_weights = {1.0, 3.0};
  expect_values(rc, {6.0 / 13});
  rc.opt.reduction = CULOSS_REDUCTION_NONE;  // (N)
  expect_values(rc, {6.0 / 13});
}

TEST(RegionValues, JaccardTwoClassesByHand) {
  // ℓ0 = 1 − 2/(2.5 + 3 − 2) = 3/7, ℓ1 = 1 − .5/(1.5 + 1 − .5) = 3/4; MEAN = 33/56.
  expect_values(case_b(CULOSS_JACCARD), {33.0 / 56});
}

TEST(RegionValues, GeneralizedDiceByHand) {
  // SQUARE: w = [1/9, 1]: num = 2(2/9 + .5) = 13/9, den = 5.5/9 + 2.5 = 28/9 → 15/28.
  // dℓ/dp_ci = −w_c(2t·den − num)/den²: class 0: t=1 −43/784, t=0 13/784; class 1: t=0 117/784, t=1 −387/784.
  RegionCase rc = case_b(CULOSS_GENERALIZED_DICE);
  rc.opt.weight_type = CULOSS_WEIGHT_SQUARE;
  const double a = -43.0 / 784, b = 13.0 / 784, c = 117.0 / 784, d = -387.0 / 784;
  expect_values(rc, {15.0 / 28}, {a, a, a, b, c, c, c, d});
  // SIMPLE: w = [1/3, 1]: num = 2(2/3 + .5) = 7/3, den = 5.5/3 + 2.5 = 13/3 → 6/13.
  rc.opt.weight_type = CULOSS_WEIGHT_SIMPLE;
  expect_values(rc, {6.0 / 13});
  // UNIFORM: num = 5, den = 8 → 3/8 (the MICRO Dice).
  rc.opt.weight_type = CULOSS_WEIGHT_UNIFORM;
  expect_values(rc, {3.0 / 8});
  // UNIFORM with ω = [1, 3] → w = ω: num = 2(2 + 1.5) = 7, den = 5.5 + 7.5 = 13 → 6/13.
  rc.opt.class_weights = {1.0, 3.0};
  expect_values(rc, {6.0 / 13});
}

TEST(RegionValues, GeneralizedDiceEmptyClassTakesLargestWeight) {
  // Three classes, three pixels, probabilities, dense soft targets, smoothing 0:
  //   class 0: p = [.6, .5, .2], t = [1, 1, .5]  → I = 1.2, SP = 1.3, ST = 2.5
  //   class 1: p = [.3, .3, .6], t = [0, 0, .5]  → I = .3,  SP = 1.2, ST = .5
  //   class 2: p = [.1, .2, .2], t = [0, 0, 0]   → I = 0,   SP = .5,  ST = 0
  // SQUARE: base = [.16, 4, largest = 4]: num = 2(.192 + 1.2) = 2.784,
  //   den = .16·3.8 + 4·1.7 + 4·.5 = 9.408 → ℓ = 1 − 2.784/9.408 = 69/98.
  // SIMPLE: base = [.4, 2, 2]: num = 2.16, den = 1.52 + 3.4 + 1 = 5.92 → 47/74.
  RegionCase rc = dense_case(CULOSS_GENERALIZED_DICE, {1, 3, 3}, {.6, .5, .2, .3, .3, .6, .1, .2, .2},
                             {1, 1, .5, 0, 0, .5, 0, 0, 0}, CULOSS_ACTIVATION_NONE);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  rc.opt.weight_type = CULOSS_WEIGHT_SQUARE;
  expect_values(rc, {69.0 / 98}, {}, 1e-11);
  rc.opt.weight_type = CULOSS_WEIGHT_SIMPLE;
  expect_values(rc, {47.0 / 74}, {}, 1e-11);
  // Gradient: w is a constant; compare with the reference.
  EXPECT_TRUE(matches_reference(rc));
  // No class with a target at all: every base is 1 (UNIFORM-like): ℓ = 1 − 0/(SP sum) = 1.
  RegionCase none = rc;
  none.target.assign(9, 0.0);
  none.opt.weight_type = CULOSS_WEIGHT_SQUARE;
  expect_values(none, {1.0}, {}, 1e-12);
}

TEST(RegionValues, SoftmaxByHand) {
  // Logits [0, 0] → p = [.5, .5], label 0, smoothing 0.
  // ℓ0 = 1 − 1/1.5 = 1/3, ℓ1 = 1 − 0/.5 = 1 → MEAN 2/3.
  // dℓ0/dp0 = −(2·1.5 − 1)/2.25 = −8/9, dℓ1/dp1 = 0 → g_p = [−4/9, 0];
  // softmax: dx_c = p_c(g_c − Σ p g) = [.5(−4/9 + 2/9), .5(2/9)] = [−1/9, 1/9].
  RegionCase rc = index_case(CULOSS_DICE, {1, 2, 1}, {0.0, 0.0}, {0}, CULOSS_ACTIVATION_SOFTMAX);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  expect_values(rc, {2.0 / 3}, {-1.0 / 9, 1.0 / 9});
  // SKIP_EMPTY drops class 1 (no target): ℓ = 1/3, g_p0 = −8/9 → dx = [−2/9, 2/9].
  rc.opt.skip_empty = true;
  expect_values(rc, {1.0 / 3}, {-2.0 / 9, 2.0 / 9});
}

TEST(RegionValues, SigmoidByHand) {
  // Logits [0, 0] → p = [.5, .5], t = [1, 0], smoothing 0: ℓ = 1 − 1/2 = .5;
  // dℓ/dp = −(2t·2 − 1)/4 → [−3/4, 1/4]; times p(1 − p) = 1/4 → [−3/16, 1/16].
  RegionCase rc = dense_case(CULOSS_DICE, {1, 1, 2}, {0.0, 0.0}, {1.0, 0.0}, CULOSS_ACTIVATION_SIGMOID);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  expect_values(rc, {0.5}, {-3.0 / 16, 1.0 / 16});
  // The same as a binary label mask (C = 1, index target).
  RegionCase m = index_case(CULOSS_DICE, {1, 1, 2}, {0.0, 0.0}, {1, 0}, CULOSS_ACTIVATION_SIGMOID);
  m.opt.smooth_nr = m.opt.smooth_dr = 0.0;
  expect_values(m, {0.5}, {-3.0 / 16, 1.0 / 16});
  // grad_scale multiplies the gradient only.
  rc.grad_scale = -4.0;
  expect_values(rc, {0.5}, {0.75, -0.25});
}

TEST(RegionValues, PixelWeightsByHand) {
  // Case A with pixel weights [2, 1, 0, 1]: I = 2, SP = 2.5, ST = 2 → ℓ = 1 − 4/4.5 = 1/9;
  // dℓ/dp_i = −v_i(2t_i·4.5 − 4)/20.25 → [−40/81, 16/81, 0, 16/81].
  RegionCase rc = case_a(CULOSS_DICE);
  rc.pixel_weight = {2.0, 1.0, 0.0, 1.0};
  expect_values(rc, {1.0 / 9}, {-40.0 / 81, 16.0 / 81, 0.0, 16.0 / 81});
}

TEST(RegionValues, IgnoreIndexByHand) {
  // Case B with labels [0, 0, ignored, 1]: class 0: I = 1.5, SP = 2, ST = 2 → 1/4;
  // class 1: I = .5, SP = 1, ST = 1 → 1/2. MEAN 3/8; the ignored pixel has a zero gradient.
  RegionCase rc = case_b(CULOSS_DICE);
  rc.labels = {0, 0, -100, 1};
  const RunResult r = run_region(rc);
  ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
  EXPECT_NEAR(r.loss[0], 3.0 / 8, 1e-15);
  EXPECT_EQ(r.grad[2], 0.0);
  EXPECT_EQ(r.grad[6], 0.0);
  EXPECT_TRUE(matches_reference(rc));
  // Another IGNORE_INDEX value, in int32 labels.
  rc.opt.ignore_index = 9;
  rc.labels = {0, 0, 9, 1};
  rc.target_dtype = testing_util::i32();
  const RunResult r2 = run_region(rc);
  ASSERT_EQ(r2.status, CULOSS_SUCCESS) << r2.error;
  EXPECT_NEAR(r2.loss[0], 3.0 / 8, 1e-15);
}

TEST(RegionValues, BatchByHand) {
  // Two images, one class, 2 pixels, probabilities, smoothing 0.
  //   image 0: p = [1, 0],   t = [1, 0] → ℓ = 0
  //   image 1: p = [.5, .25], t = [0, 1] → I = .25, SP = .75, ST = 1 → ℓ = 1 − .5/1.75 = 5/7
  // per image: MEAN 5/14, NONE (N, C) = [[0], [5/7]];
  // BATCH: I = 1.25, SP = 1.75, ST = 2 → 1 − 2.5/3.75 = 1/3, NONE (C) = [1/3].
  RegionCase rc = dense_case(CULOSS_DICE, {2, 1, 2}, {1.0, 0.0, 0.5, 0.25}, {1.0, 0.0, 0.0, 1.0},
                             CULOSS_ACTIVATION_NONE);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  expect_values(rc, {5.0 / 14});
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  expect_values(rc, {0.0, 5.0 / 7});
  rc.opt.batch = true;
  expect_values(rc, {1.0 / 3});
  rc.opt.reduction = CULOSS_REDUCTION_MEAN;
  expect_values(rc, {1.0 / 3});
}

// ---------------------------------------------------------------------------------------------
// MONAI DiceLoss published test cases (tests/test_dice_loss.py), translated. MONAI's defaults
// differ from culoss's, so every option is set. MONAI's "mean" is culoss's MACRO MEAN; its
// to_onehot_y with a (N, 1, ...) label tensor is a culoss index target without the class axis;
// its sigmoid with one-hot labels of C = 2 becomes a dense one-hot target here (culoss refuses
// SIGMOID with index targets for C > 1). Expected numbers are MONAI's (float32, rtol 1e-5).

RegionCase monai(std::vector<int64_t> shape, std::vector<double> input, std::vector<double> target,
                 int activation, double smooth) {
  RegionCase rc = dense_case(CULOSS_DICE, std::move(shape), std::move(input), std::move(target), activation);
  rc.opt.smooth_nr = rc.opt.smooth_dr = smooth;
  rc.opt.include_background = true;
  rc.opt.reduction = CULOSS_REDUCTION_MEAN;
  return rc;
}

void expect_monai(const RegionCase& rc, const std::vector<double>& expected) {
  const RunResult r = run_region(rc);
  ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
  EXPECT_TRUE(close_vectors("MONAI", r.loss, expected, Tol{1e-5, 1e-6})) << describe_case(rc);
  EXPECT_TRUE(matches_reference(rc));
}

// (2, 2, 3) logits and labels [[1, 0, 0], [1, 1, 0]] shared by several cases.
const std::vector<double> kMonaiLogits = {-1, 0, 1, 1, 0, -1, 0, 0, 0, 0, 0, 0};
const std::vector<double> kMonaiOneHot = {0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0};  // class 0 = label 0

TEST(RegionMonai, SigmoidOneImage) {
  expect_monai(monai({1, 1, 2, 2}, {1, -1, -1, 1}, {1, 0, 1, 1}, CULOSS_ACTIVATION_SIGMOID, 1e-6), {0.307576});
}

TEST(RegionMonai, SigmoidTwoImages) {
  expect_monai(monai({2, 1, 2, 2}, {1, -1, -1, 1, 1, -1, -1, 1}, {1, 1, 1, 1, 1, 0, 1, 0},
                     CULOSS_ACTIVATION_SIGMOID, 1e-4),
               {0.416657});
}

TEST(RegionMonai, NoBackgroundOneHotLabels) {
  // input [[[1, 1, 0], [0, 0, 1]], [[1, 0, 1], [0, 1, 0]]], labels [[0, 0, 1], [0, 1, 0]].
  RegionCase rc = index_case(CULOSS_DICE, {2, 2, 3}, {1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0}, {0, 0, 1, 0, 1, 0},
                             CULOSS_ACTIVATION_NONE);
  rc.opt.include_background = false;
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  expect_monai(rc, {0.0});
}

TEST(RegionMonai, SigmoidOneHot) {
  expect_monai(monai({2, 2, 3}, kMonaiLogits, kMonaiOneHot, CULOSS_ACTIVATION_SIGMOID, 1e-4), {0.435050});
}

TEST(RegionMonai, SigmoidOneHotNoReduction) {
  RegionCase rc = monai({2, 2, 3}, kMonaiLogits, kMonaiOneHot, CULOSS_ACTIVATION_SIGMOID, 1e-4);
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  expect_monai(rc, {0.296529, 0.415136, 0.599976, 0.428559});
}

TEST(RegionMonai, SoftmaxLabels) {
  RegionCase rc = index_case(CULOSS_DICE, {2, 2, 3}, kMonaiLogits, {1, 0, 0, 1, 1, 0}, CULOSS_ACTIVATION_SOFTMAX);
  rc.opt.smooth_nr = rc.opt.smooth_dr = 1e-4;
  expect_monai(rc, {0.383713});
  rc.opt.reduction = CULOSS_REDUCTION_SUM;
  expect_monai(rc, {1.534853});
}

TEST(RegionMonai, SquaredPrediction) {
  // MONAI squared_pred squares p and t in the denominator; its default smoothing is 1e-5.
  RegionCase rc = monai({1, 1, 2, 2}, {1, -1, -1, 1}, {1, 0, 1, 1}, CULOSS_ACTIVATION_SIGMOID, 1e-5);
  rc.opt.squared = true;
  expect_monai(rc, {0.178337});
}

TEST(RegionMonai, Jaccard) {
  // MONAI: 1 − (2I + s)/(2(SP + ST − I) + s) with s = 1e-5, i.e. culoss's JACCARD with s/2.
  RegionCase rc = monai({1, 1, 2, 2}, {1, -1, -1, 1}, {1, 0, 1, 1}, CULOSS_ACTIVATION_SIGMOID, 5e-6);
  rc.opt = default_options(CULOSS_JACCARD);
  rc.opt.activation = CULOSS_ACTIVATION_SIGMOID;
  rc.opt.smooth_nr = rc.opt.smooth_dr = 5e-6;
  expect_monai(rc, {0.470451});
}

TEST(RegionMonai, OtherActivationsAsProbabilities) {
  // MONAI's other_act cases (tanh, log_softmax) with the activation applied here and
  // ACTIVATION_NONE: culoss uses p as given, unclamped, for region losses.
  std::vector<double> th;
  for (double x : {1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0}) th.push_back(std::tanh(x));
  const std::vector<double> t = {1, 1, 1, 1, 1, 0, 1, 0};
  expect_monai(monai({2, 1, 2, 2}, th, t, CULOSS_ACTIVATION_NONE, 1e-4), {0.999963});
  th[1] = std::tanh(-0.0);
  RegionCase rc = monai({2, 1, 2, 2}, th, t, CULOSS_ACTIVATION_NONE, 1e-4);
  rc.opt.batch = true;
  expect_monai(rc, {0.774718});
  rc.opt.smooth_nr = 0.0;
  expect_monai(rc, {0.774733});
  rc.opt.batch = false;
  expect_monai(rc, {0.840058});
  // log_softmax over the classes of the (2, 2, 3) logits.
  std::vector<double> ls(12);
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 3; ++i) {
      const double a = kMonaiLogits[n * 6 + i], b = kMonaiLogits[n * 6 + 3 + i];
      const double m = std::max(a, b), lse = m + std::log(std::exp(a - m) + std::exp(b - m));
      ls[n * 6 + i] = a - lse;
      ls[n * 6 + 3 + i] = b - lse;
    }
  RegionCase lsc = index_case(CULOSS_DICE, {2, 2, 3}, ls, {1, 0, 0, 1, 1, 0}, CULOSS_ACTIVATION_NONE);
  lsc.opt.smooth_nr = lsc.opt.smooth_dr = 1e-4;
  expect_monai(lsc, {-8.522593});
}

// ---------------------------------------------------------------------------------------------
// Edge cases.

TEST(RegionEdge, EmptyTargetAndEmptyPredictionGiveZero) {
  for (int kind : kAllKinds) {
    // Probabilities exactly 0 and an empty target, default smoothing (s_nr = s_dr): ℓ = 1 − s/s = 0.
    // The gradient is finite (d/dp of 1 − s/(SP + s) is 1/s per unit of p, times the mean).
    RegionCase rc = dense_case(static_cast<culoss_kind>(kind), {2, 2, 3}, std::vector<double>(12, 0.0),
                               std::vector<double>(12, 0.0), CULOSS_ACTIVATION_NONE);
    RunResult r = run_region(rc);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    EXPECT_EQ(r.loss[0], 0.0) << "kind " << kind;
    EXPECT_TRUE(all_finite(r.grad)) << "kind " << kind;
    EXPECT_TRUE(matches_reference(rc, RunConfig(), 1e-9, 1e-9));
    // Smoothing 0: the denominator is exactly 0 → ℓ = 0 and a zero gradient.
    rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
    r = run_region(rc);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    EXPECT_EQ(r.loss[0], 0.0) << "kind " << kind;
    EXPECT_EQ(r.grad, std::vector<double>(12, 0.0)) << "kind " << kind;
    rc.opt.reduction = CULOSS_REDUCTION_NONE;
    r = run_region(rc);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    for (double v : r.loss) EXPECT_EQ(v, 0.0) << "kind " << kind;
    // Saturated negative logits (sigmoid): p underflows to 0; ℓ = 0, finite gradient.
    RegionCase sg = dense_case(static_cast<culoss_kind>(kind), {2, 2, 3}, std::vector<double>(12, -1e4),
                               std::vector<double>(12, 0.0), CULOSS_ACTIVATION_SIGMOID);
    r = run_region(sg);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    EXPECT_NEAR(r.loss[0], 0.0, 1e-12) << "kind " << kind;
    EXPECT_TRUE(all_finite(r.grad)) << "kind " << kind;
    EXPECT_LE(max_abs(r.grad), 1e-12) << "kind " << kind;
  }
}

TEST(RegionEdge, AllPixelsIgnored) {
  for (int kind : kAllKinds)
    for (int skip = 0; skip < 2; ++skip)
      for (int smooth0 = 0; smooth0 < 2; ++smooth0) {
        RegionCase rc = index_case(static_cast<culoss_kind>(kind), {2, 3, 2, 2}, std::vector<double>(24, 0.0),
                                   std::vector<int64_t>(8, -100), CULOSS_ACTIVATION_SOFTMAX);
        for (size_t i = 0; i < rc.input.size(); ++i) rc.input[i] = 0.1 * static_cast<double>(i % 7) - 0.3;
        rc.opt.skip_empty = skip != 0;
        if (smooth0) rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
        for (int red = 0; red < 3; ++red) {
          rc.opt.reduction = red;
          const RunResult r = run_region(rc);
          ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
          for (double v : r.loss) EXPECT_EQ(v, 0.0) << describe_case(rc);
          EXPECT_EQ(r.grad, std::vector<double>(24, 0.0)) << describe_case(rc);
        }
      }
}

TEST(RegionEdge, AllPixelWeightsZero) {
  for (int kind : kAllKinds) {
    std::mt19937 rng(static_cast<unsigned>(kind));
    RegionConstraints k;
    k.kind = kind;
    k.pixel_weight = 1;
    RegionCase rc = random_region_case(rng, k);
    rc.opt.smooth_nr = rc.opt.smooth_dr = 1e-5;
    rc.pixel_weight.assign(rc.pixel_weight.size(), 0.0);
    const RunResult r = run_region(rc);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    for (double v : r.loss) EXPECT_EQ(v, 0.0) << describe_case(rc);
    for (double g : r.grad) EXPECT_EQ(g, 0.0) << describe_case(rc);
  }
}

TEST(RegionEdge, OnePixel) {
  std::mt19937 rng(41);
  for (int kind : kAllKinds)
    for (int act = 0; act < 3; ++act) {
      RegionConstraints k;
      k.kind = kind;
      k.activation = act;
      k.layout = kLayoutNC;
      k.N = 1;
      k.C = act == CULOSS_ACTIVATION_SIGMOID ? 1 : 2;
      for (int it = 0; it < 4; ++it) {
        const RegionCase rc = random_region_case(rng, k);
        ASSERT_EQ(numel(without_axis(rc.shape, rc.opt.class_axis)), 1);
        EXPECT_TRUE(matches_reference(rc));
      }
    }
}

TEST(RegionEdge, SingleClass) {
  std::mt19937 rng(42);
  for (int kind : kAllKinds)
    for (int it = 0; it < 10; ++it) {
      RegionConstraints k;
      k.kind = kind;
      k.C = 1;
      k.activation = it % 3 == 2 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SIGMOID;
      // Index targets (a binary mask for either activation) on even iterations, dense on odd.
      k.target = it % 2 ? kDenseF32 : kIndexI64 - it % 3;
      const RegionCase rc = random_region_case(rng, k);
      ASSERT_EQ(rc.opt.activation, k.activation);
      EXPECT_TRUE(matches_reference(rc)) << describe_case(rc);
    }
  // Softmax over a single class would be constant (p = 1 everywhere, a zero gradient): refused.
  for (int kind : kAllKinds) {
    RegionCase rc = dense_case(static_cast<culoss_kind>(kind), {2, 1, 3}, {-3, 0, 5, 1, 2, 100},
                               {1, 0, 1, 1, 1, 0}, CULOSS_ACTIVATION_SOFTMAX);
    RunResult r = run_region(rc);
    EXPECT_EQ(r.status, CULOSS_ERROR_INVALID_ARGUMENT) << r.error;
    EXPECT_NE(r.error.find("CULOSS_ACTIVATION_SIGMOID"), std::string::npos) << r.error;
    // The same model with SIGMOID learns: a gradient that is not zero, as the reference says.
    rc.opt.activation = CULOSS_ACTIVATION_SIGMOID;
    r = run_region(rc);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    EXPECT_GT(max_abs(r.grad), 1e-6);
    EXPECT_TRUE(matches_reference(rc));
  }
}

TEST(RegionEdge, SaturatedLogits) {
  std::mt19937 rng(43);
  std::uniform_int_distribution<int> sign(0, 1);
  for (int kind : kAllKinds)
    for (int act = 1; act < 3; ++act)
      for (int it = 0; it < 6; ++it) {
        RegionConstraints k;
        k.kind = kind;
        k.activation = act;
        // Smoothing > 0: with 0, a denominator made of underflowed probabilities is exactly 0 in
        // double but not in the long double reference.
        k.smooth = it % 2 ? 0 : 3;
        RegionCase rc = random_region_case(rng, k);
        for (double& x : rc.input) x = sign(rng) ? 1e4 : -1e4;
        if (it % 2) for (size_t i = 0; i < rc.input.size(); i += 3) rc.input[i] *= 0.5;
        const RunResult r = run_region(rc);
        ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
        EXPECT_TRUE(all_finite(r.loss)) << describe_case(rc);
        EXPECT_TRUE(all_finite(r.grad)) << describe_case(rc);
        EXPECT_TRUE(matches_reference(rc, RunConfig(), 1e-9, 1e-9)) << describe_case(rc);
      }
}

TEST(RegionEdge, SmoothingZeroWithAllZeroStatisticsIsZeroNotNaN) {
  // ACTIVATION_NONE, zero probabilities, empty targets: every denominator is exactly 0.
  for (int kind : kAllKinds)
    for (int avg = 0; avg < 2; ++avg)
      for (int batch = 0; batch < 2; ++batch)
        for (int red = 0; red < 3; ++red) {
          if (kind == CULOSS_GENERALIZED_DICE && avg == 1) continue;
          RegionCase rc = dense_case(static_cast<culoss_kind>(kind), {2, 3, 4}, std::vector<double>(24, 0.0),
                                     std::vector<double>(24, 0.0), CULOSS_ACTIVATION_NONE);
          rc.target_dtype = testing_util::u8();
          rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
          rc.opt.average = avg;
          rc.opt.batch = batch != 0;
          rc.opt.reduction = red;
          const RunResult r = run_region(rc);
          ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
          for (double v : r.loss) EXPECT_EQ(v, 0.0) << describe_case(rc);
          for (double g : r.grad) EXPECT_EQ(g, 0.0) << describe_case(rc);
        }
}

TEST(RegionEdge, UnvalidatedDenseTargetsAreUsedAsGiven) {
  // CHECK_TARGETS = 0: dense values outside [0, 1] enter the formulas unchanged.
  std::mt19937 rng(44);
  for (int kind : kAllKinds)
    for (int it = 0; it < 4; ++it) {
      RegionConstraints k;
      k.kind = kind;
      k.target = kDenseF64;
      RegionCase rc = random_region_case(rng, k);
      rc.opt.check_targets = false;
      for (size_t i = 0; i < rc.target.size(); i += 4) rc.target[i] = 1.5;
      if (kind == CULOSS_FOCAL_TVERSKY) rc.opt.gamma = 2.0;
      EXPECT_TRUE(matches_reference(rc));
    }
}

TEST(RegionEdge, EmptyTensors) {
  for (int kind : kAllKinds)
    for (int red = 0; red < 3; ++red) {
      // N = 0: loss 0, nothing else to write.
      RegionCase rc = index_case(static_cast<culoss_kind>(kind), {0, 3, 4, 4}, {}, {}, CULOSS_ACTIVATION_SOFTMAX);
      rc.opt.reduction = red;
      RunResult r = run_region(rc);
      ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error << " kind " << kind;
      for (double v : r.loss) EXPECT_EQ(v, 0.0);
      if (red != CULOSS_REDUCTION_NONE) {
        EXPECT_EQ(r.loss.size(), 1u);
      }
      EXPECT_TRUE(r.grad.empty());
      // Dense target, N = 0, channels last.
      RegionCase d = dense_case(static_cast<culoss_kind>(kind), {0, 5, 2}, {}, {}, CULOSS_ACTIVATION_SIGMOID);
      d.opt.class_axis = -1;
      d.opt.reduction = red;
      r = run_region(d);
      ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error << " kind " << kind;
      for (double v : r.loss) EXPECT_EQ(v, 0.0);
      // A spatial extent of 0 (N = 2): every statistic is 0, the loss is 0.
      RegionCase s = index_case(static_cast<culoss_kind>(kind), {2, 3, 0, 4}, {}, {}, CULOSS_ACTIVATION_SOFTMAX);
      s.opt.reduction = red;
      r = run_region(s);
      ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error << " kind " << kind;
      ASSERT_EQ(r.loss.size(), static_cast<size_t>(numel(loss_shape(s))));
      for (double v : r.loss) EXPECT_EQ(v, 0.0) << describe_case(s);
    }
}

// ---------------------------------------------------------------------------------------------
// Half-precision inputs: compared with the reference on the rounded inputs.

void half_precision_cases(DLDataType dtype, double grad_rel, unsigned seed) {
  std::mt19937 rng(seed);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.kind = kAllKinds[it % 5];
    k.smooth = it % 2 ? 0 : 3;  // well-conditioned smoothing for a 1e-3 comparison
    RegionCase rc = random_region_case(rng, k);
    rc.input_dtype = dtype;
    for (int grad_f32 = 0; grad_f32 < 2; ++grad_f32) {
      RunConfig cfg;
      cfg.grad_f32 = grad_f32 != 0;
      // Values 1e-4 (elementwise math in float at worst); gradients rounded to fp16/bf16 on output.
      EXPECT_TRUE(matches_reference(rc, cfg, 1e-4, grad_f32 ? 1e-4 : grad_rel, grad_f32 ? 1.0 : 0.5))
          << "grad in float32: " << grad_f32;
    }
  }
}

TEST(RegionHalf, Float16Input) { half_precision_cases(testing_util::f16(), 1.5e-3, 51); }
TEST(RegionHalf, BFloat16Input) { half_precision_cases(testing_util::bf16(), 8e-3, 52); }

TEST(RegionHalf, InPlaceHalf) {
  std::mt19937 rng(53);
  RunConfig cfg;
  cfg.in_place = true;
  for (int it = 0; it < 20; ++it) {
    RegionCase rc = random_region_case(rng);
    rc.input_dtype = it % 2 ? testing_util::f16() : testing_util::bf16();
    rc.opt.smooth_nr = rc.opt.smooth_dr = 0.5;
    EXPECT_TRUE(matches_reference(rc, cfg, 1e-4, it % 2 ? 1.5e-3 : 8e-3, 0.5));
  }
}

// ---------------------------------------------------------------------------------------------
// Determinism: the same call twice gives bitwise the same outputs (float32, larger tensors).

TEST(RegionDeterminism, TwoCallsBitwiseEqual) {
  std::mt19937 rng(61);
  std::uniform_real_distribution<double> u(-3, 3);
  for (int kind : kAllKinds) {
    RegionCase rc;
    rc.opt = default_options(static_cast<culoss_kind>(kind));
    rc.shape = {3, 4, 40, 37};
    rc.input_dtype = testing_util::f32();
    rc.input.resize(static_cast<size_t>(numel(rc.shape)));
    for (double& x : rc.input) x = u(rng);
    rc.index_target = true;
    rc.target_dtype = testing_util::u8();
    rc.opt.ignore_index = 255;
    rc.labels.resize(3 * 40 * 37);
    for (size_t i = 0; i < rc.labels.size(); ++i) rc.labels[i] = i % 17 == 0 ? 255 : static_cast<int64_t>(u(rng) + 3) % 4;
    for (int red = 0; red < 3; ++red) {
      rc.opt.reduction = red;
      RunConfig cfg;
      cfg.loss_dtype = testing_util::f32();
      const RunResult a = run_region(rc, cfg), b = run_region(rc, cfg);
      ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error;
      ASSERT_EQ(b.status, CULOSS_SUCCESS) << b.error;
      EXPECT_EQ(a.loss_bytes, b.loss_bytes) << "kind " << kind;
      EXPECT_EQ(a.grad_bytes, b.grad_bytes) << "kind " << kind;
      EXPECT_TRUE(all_finite(a.loss));
      EXPECT_TRUE(all_finite(a.grad));
    }
  }
}

TEST(RegionDeterminism, LargeTensorTwoCallsBitwiseEqual) {
  // 2 x 4 x 256 x 256 float32, dense float32 targets, pixel weights: large enough for any
  // blocking or threading of the CPU backend.
  std::mt19937 rng(62);
  std::uniform_real_distribution<double> u(0, 1);
  RegionCase rc;
  rc.opt = default_options(CULOSS_GENERALIZED_DICE);
  rc.shape = {2, 4, 256, 256};
  rc.input_dtype = testing_util::f32();
  rc.target_dtype = testing_util::f32();
  rc.input.resize(static_cast<size_t>(numel(rc.shape)));
  rc.target.resize(rc.input.size());
  for (size_t i = 0; i < rc.input.size(); ++i) {
    rc.input[i] = 6 * u(rng) - 3;
    rc.target[i] = u(rng) < 0.3 ? 1.0 : 0.0;
  }
  rc.pixel_weight.resize(2 * 256 * 256);
  for (double& w : rc.pixel_weight) w = u(rng);
  for (int kind : kAllKinds) {
    RegionOptions o = default_options(static_cast<culoss_kind>(kind));
    rc.opt = o;
    RunConfig cfg;
    cfg.loss_dtype = testing_util::f32();
    const RunResult a = run_region(rc, cfg), b = run_region(rc, cfg);
    ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error;
    ASSERT_EQ(b.status, CULOSS_SUCCESS) << b.error;
    EXPECT_EQ(a.loss_bytes, b.loss_bytes) << "kind " << kind;
    EXPECT_EQ(a.grad_bytes, b.grad_bytes) << "kind " << kind;
    // And close to the reference (float32 elementwise math at worst).
    EXPECT_TRUE(matches_reference(rc, cfg, 1e-5, 1e-4, 0.5)) << "kind " << kind;
  }
}

// ---------------------------------------------------------------------------------------------
// Target checks and refusals specific to the region losses.

TEST(RegionErrors, SigmoidWithIndexTargetsNeedsOneClass) {
  RegionCase rc = index_case(CULOSS_DICE, {1, 2, 3}, {0, 0, 0, 0, 0, 0}, {0, 1, 0}, CULOSS_ACTIVATION_SIGMOID);
  const RunResult r = run_region(rc);
  EXPECT_EQ(r.status, CULOSS_ERROR_INVALID_ARGUMENT) << r.error;
  EXPECT_FALSE(r.error.empty());
}

TEST(RegionErrors, InvalidTargetsLeaveOutputsUntouched) {
  for (int kind : kAllKinds) {
    // Label 3 with C = 3 (index), a dense 1.5, a dense NaN, a sigmoid mask label 2, and a negative
    // pixel weight; each with CHECK_TARGETS = 1.
    for (int which = 0; which < 5; ++which) {
      testing_util::Loss loss(static_cast<culoss_kind>(kind));
      ASSERT_NE(loss.h, nullptr);
      TestTensor in({1, 3, 4}, testing_util::f64()), pw({1, 4}, testing_util::f32());
      TestTensor tgt;
      pw.fill(1.0);
      in.fill(0.25);
      culoss_status want = CULOSS_ERROR_INVALID_TARGET;
      if (which == 0) {
        tgt = TestTensor({1, 4}, testing_util::i64());
        tgt.set(0, 0); tgt.set(1, 1); tgt.set(2, 3); tgt.set(3, 2);
      } else if (which == 1 || which == 2) {
        tgt = TestTensor({1, 3, 4}, testing_util::f32());
        tgt.fill(0.0);
        tgt.set(5, which == 1 ? 1.5 : NAN);
      } else if (which == 3) {
        in = TestTensor({1, 1, 4}, testing_util::f64());
        in.fill(0.25);
        pw = TestTensor({1, 4}, testing_util::f32());
        pw.fill(1.0);
        ASSERT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID), CULOSS_SUCCESS)
            << culoss_last_error();
        tgt = TestTensor({1, 4}, testing_util::i32());
        tgt.set(0, 0); tgt.set(1, 1); tgt.set(2, 2); tgt.set(3, 1);
      } else {
        tgt = TestTensor({1, 4}, testing_util::i64());
        tgt.set(0, 0); tgt.set(1, 1); tgt.set(2, 2); tgt.set(3, 1);
        pw.set(2, -1.0);
        want = CULOSS_ERROR_INVALID_ARGUMENT;
      }
      TestTensor out({}, testing_util::f64()), grad(in.shape, testing_util::f64());
      out.poison();
      grad.poison();
      const std::vector<uint8_t> out0 = out.bytes, grad0 = grad.bytes;
      const culoss_status st =
          culoss_compute(loss, in.dl(), tgt.dl(), pw.dl(), out.dl(), grad.dl(), 1.0, nullptr, 0, nullptr);
      EXPECT_EQ(st, want) << "kind " << kind << " case " << which << ": " << culoss_last_error();
      EXPECT_STRNE(culoss_last_error(), "");
      EXPECT_EQ(out.bytes, out0) << "loss_out written on failure, kind " << kind << " case " << which;
      EXPECT_EQ(grad.bytes, grad0) << "grad_input written on failure, kind " << kind << " case " << which;
      // Without the check the call succeeds: out-of-range labels are ignored, dense values and
      // pixel weights are used as given (the NaN target is left out: it would propagate).
      if (which != 2) {
        ASSERT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_CHECK_TARGETS, 0), CULOSS_SUCCESS) << culoss_last_error();
        const culoss_status st2 =
            culoss_compute(loss, in.dl(), tgt.dl(), pw.dl(), out.dl(), grad.dl(), 1.0, nullptr, 0, nullptr);
        EXPECT_EQ(st2, CULOSS_SUCCESS) << "kind " << kind << " case " << which << ": " << culoss_last_error();
      }
    }
  }
}

TEST(RegionErrors, ClassAxisMustResolveToOneOrMore) {
  // SEMANTICS: CLASS_AXIS must resolve to [1, ndim): otherwise SHAPE_MISMATCH.
  for (int axis : {0, -3, 3, -4, 7}) {
    RegionCase rc = index_case(CULOSS_DICE, {2, 3, 4}, std::vector<double>(24, 0.0), {0, 1, 2, 0, 1, 2, 0, 1},
                               CULOSS_ACTIVATION_SOFTMAX);
    rc.opt.class_axis = axis;
    rc.labels.clear();  // the harness sizes the label tensor from the (invalid) axis; values unused
    const RunResult r = run_region(rc);
    if (r.status == CULOSS_ERROR_INVALID_ARGUMENT && r.error.find("CLASS_AXIS:") == 0) continue;  // refused at set
    EXPECT_EQ(r.status, CULOSS_ERROR_SHAPE_MISMATCH) << "axis " << axis << ": " << r.error;
  }
  // A one-dimensional input has no class axis.
  testing_util::Loss loss(CULOSS_DICE);
  TestTensor in({4}, testing_util::f64()), tgt({4}, testing_util::f64()), out({}, testing_util::f64());
  EXPECT_EQ(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_ERROR_SHAPE_MISMATCH)
      << culoss_last_error();
}

TEST(RegionErrors, TargetDtypeMustFitItsShape) {
  // Dense (input's ndim): float dtypes or uint8; index (one dimension less): uint8/int32/int64.
  testing_util::Loss loss(CULOSS_DICE);
  TestTensor in({2, 3, 4}, testing_util::f64()), out({}, testing_util::f64());
  in.fill(0.5);
  TestTensor dense_i32({2, 3, 4}, testing_util::i32()), index_f32({2, 4}, testing_util::f32());
  EXPECT_EQ(culoss_compute(loss, in.dl(), dense_i32.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_ERROR_UNSUPPORTED_DTYPE)
      << culoss_last_error();
  EXPECT_EQ(culoss_compute(loss, in.dl(), index_f32.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_ERROR_UNSUPPORTED_DTYPE)
      << culoss_last_error();
  // Wrong shapes (not the input's, nor the input's without the class axis).
  TestTensor dense_bad({2, 3, 5}, testing_util::f32()), index_bad({2, 3}, testing_util::i64());
  EXPECT_NE(culoss_compute(loss, in.dl(), dense_bad.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
  EXPECT_NE(culoss_compute(loss, in.dl(), index_bad.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
}

TEST(RegionErrors, ZeroClassesAndClassWeightCount) {
  testing_util::Loss loss(CULOSS_TVERSKY);
  TestTensor in({2, 0, 4}, testing_util::f64()), tgt({2, 4}, testing_util::i64()), out({}, testing_util::f64());
  EXPECT_NE(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);  // C = 0 is refused
  // Three class weights for four classes.
  const double w[] = {1.0, 2.0, 3.0};
  ASSERT_EQ(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, w, 3), CULOSS_SUCCESS) << culoss_last_error();
  TestTensor in4({2, 4, 4}, testing_util::f64());
  EXPECT_NE(culoss_compute(loss, in4.dl(), tgt.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
  EXPECT_STRNE(culoss_last_error(), "");
}

TEST(RegionErrors, OutOfRangeParameterValuesAreRefused) {
  for (int kind : kAllKinds) {
    testing_util::Loss loss(static_cast<culoss_kind>(kind));
    EXPECT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, 3), CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, 3), CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(culoss_loss_set_float(loss, CULOSS_PARAM_SMOOTH_NR, -1.0), CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(culoss_loss_set_float(loss, CULOSS_PARAM_SMOOTH_DR, -1e-9), CULOSS_ERROR_INVALID_ARGUMENT);
    const double neg[] = {1.0, -0.5};
    EXPECT_EQ(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, neg, 2), CULOSS_ERROR_INVALID_ARGUMENT);
    if (kind == CULOSS_GENERALIZED_DICE) {
      EXPECT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_WEIGHT_TYPE, 3), CULOSS_ERROR_INVALID_ARGUMENT);
    } else {
      EXPECT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_AVERAGE, 2), CULOSS_ERROR_INVALID_ARGUMENT);
    }
    // Refusals name the parameter and leave the descriptor unchanged.
    int64_t v = -1;
    ASSERT_EQ(culoss_loss_get_int(loss, CULOSS_PARAM_REDUCTION, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, CULOSS_REDUCTION_MEAN);
  }
}

TEST(RegionErrors, OutputDtypes) {
  // Gradient in float64 for a float32 input: neither the input's dtype nor float32.
  testing_util::Loss loss(CULOSS_DICE);
  TestTensor in({1, 2, 4}, testing_util::f32()), tgt({1, 4}, testing_util::i64()), out({}, testing_util::f64());
  TestTensor g64({1, 2, 4}, testing_util::f64()), g16({1, 2, 4}, testing_util::f16()), o16({}, testing_util::f16());
  EXPECT_NE(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, out.dl(), g64.dl(), 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
  EXPECT_NE(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, out.dl(), g16.dl(), 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
  // loss_out in float16.
  EXPECT_NE(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, o16.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
}

TEST(RegionErrors, NonFiniteGradScaleIsRefused) {
  RegionCase rc = case_b(CULOSS_DICE);
  rc.grad_scale = NAN;
  EXPECT_NE(run_region(rc).status, CULOSS_SUCCESS);
  rc.grad_scale = INFINITY;
  EXPECT_NE(run_region(rc).status, CULOSS_SUCCESS);
}

TEST(RegionErrors, WrongNoneOutputShapeIsRefused) {
  // MACRO NONE writes (N, C); a one-element loss_out is not that.
  testing_util::Loss loss(CULOSS_DICE);
  ASSERT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE), CULOSS_SUCCESS);
  TestTensor in({2, 3, 4}, testing_util::f64()), tgt({2, 4}, testing_util::i64()), out({}, testing_util::f64());
  in.fill(0.0);
  tgt.fill(1.0);
  EXPECT_NE(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS);
  TestTensor good({2, 3}, testing_util::f64());
  EXPECT_EQ(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, good.dl(), nullptr, 1.0, nullptr, 0, nullptr),
            CULOSS_SUCCESS)
      << culoss_last_error();
}

// ---------------------------------------------------------------------------------------------
// Parameters: which apply to which region kind, and the defaults.

TEST(RegionParams, ApplicabilityPerKind) {
  const culoss_param params[] = {CULOSS_PARAM_SQUARED_DENOMINATOR, CULOSS_PARAM_ALPHA, CULOSS_PARAM_BETA,
                                 CULOSS_PARAM_GAMMA, CULOSS_PARAM_WEIGHT_TYPE, CULOSS_PARAM_AVERAGE};
  for (int kind : kAllKinds)
    for (culoss_param p : params) {
      testing_util::Loss loss(static_cast<culoss_kind>(kind));
      ASSERT_NE(loss.h, nullptr);
      const bool applies = param_applies(static_cast<culoss_kind>(kind), p);
      culoss_status st;
      if (p == CULOSS_PARAM_ALPHA || p == CULOSS_PARAM_BETA || p == CULOSS_PARAM_GAMMA)
        st = culoss_loss_set_float(loss, p, 0.5);
      else
        st = culoss_loss_set_int(loss, p, p == CULOSS_PARAM_WEIGHT_TYPE ? CULOSS_WEIGHT_SIMPLE : 1);
      if (applies) {
        EXPECT_EQ(st, CULOSS_SUCCESS) << "kind " << kind << " param " << p << ": " << culoss_last_error();
      } else {
        EXPECT_EQ(st, CULOSS_ERROR_INVALID_ARGUMENT) << "kind " << kind << " param " << p;
      }
    }
}

TEST(RegionParams, Defaults) {
  for (int kind : kAllKinds) {
    testing_util::Loss loss(static_cast<culoss_kind>(kind));
    int64_t v = -1;
    double f = -1;
    ASSERT_EQ(culoss_loss_get_int(loss, CULOSS_PARAM_ACTIVATION, &v), CULOSS_SUCCESS) << culoss_last_error();
    EXPECT_EQ(v, CULOSS_ACTIVATION_SOFTMAX);
    ASSERT_EQ(culoss_loss_get_float(loss, CULOSS_PARAM_SMOOTH_NR, &f), CULOSS_SUCCESS);
    EXPECT_EQ(f, 1e-5);
    ASSERT_EQ(culoss_loss_get_float(loss, CULOSS_PARAM_SMOOTH_DR, &f), CULOSS_SUCCESS);
    EXPECT_EQ(f, 1e-5);
    ASSERT_EQ(culoss_loss_get_int(loss, CULOSS_PARAM_INCLUDE_BACKGROUND, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 1);
    if (kind == CULOSS_TVERSKY || kind == CULOSS_FOCAL_TVERSKY) {
      const bool ft = kind == CULOSS_FOCAL_TVERSKY;
      ASSERT_EQ(culoss_loss_get_float(loss, CULOSS_PARAM_ALPHA, &f), CULOSS_SUCCESS);
      EXPECT_EQ(f, ft ? 0.3 : 0.5);
      ASSERT_EQ(culoss_loss_get_float(loss, CULOSS_PARAM_BETA, &f), CULOSS_SUCCESS);
      EXPECT_EQ(f, ft ? 0.7 : 0.5);
    }
    if (kind == CULOSS_FOCAL_TVERSKY) {
      ASSERT_EQ(culoss_loss_get_float(loss, CULOSS_PARAM_GAMMA, &f), CULOSS_SUCCESS);
      EXPECT_EQ(f, 0.75);
    }
    if (kind == CULOSS_GENERALIZED_DICE) {
      ASSERT_EQ(culoss_loss_get_int(loss, CULOSS_PARAM_WEIGHT_TYPE, &v), CULOSS_SUCCESS);
      EXPECT_EQ(v, CULOSS_WEIGHT_SQUARE);
    }
  }
}

TEST(RegionParams, UnconfiguredDescriptorUsesTheDefaults) {
  // A descriptor with nothing set equals one with every default set explicitly (and the reference).
  std::mt19937 rng(71);
  std::uniform_real_distribution<double> u(-2, 2);
  for (int kind : kAllKinds) {
    RegionCase rc = index_case(static_cast<culoss_kind>(kind), {2, 3, 3, 3}, std::vector<double>(54), {}, 
                               CULOSS_ACTIVATION_SOFTMAX);
    for (double& x : rc.input) x = u(rng);
    rc.labels.resize(18);
    for (size_t i = 0; i < 18; ++i) rc.labels[i] = static_cast<int64_t>(i * 7 % 3);
    rc.labels[4] = -100;
    testing_util::Loss loss(static_cast<culoss_kind>(kind));
    TestTensor in(rc.shape, testing_util::f64()), tgt({2, 3, 3}, testing_util::i64()), out({}, testing_util::f64()),
        grad(rc.shape, testing_util::f64());
    for (int64_t i = 0; i < in.numel(); ++i) in.set(i, rc.input[static_cast<size_t>(i)]);
    for (int64_t i = 0; i < tgt.numel(); ++i) tgt.set(i, static_cast<double>(rc.labels[static_cast<size_t>(i)]));
    ASSERT_EQ(culoss_compute(loss, in.dl(), tgt.dl(), nullptr, out.dl(), grad.dl(), 1.0, nullptr, 0, nullptr),
              CULOSS_SUCCESS)
        << culoss_last_error();
    const RunResult r = run_region(rc);
    ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
    EXPECT_EQ(out.values(), r.loss) << "kind " << kind;
    EXPECT_EQ(grad.values(), r.grad) << "kind " << kind;
    EXPECT_TRUE(matches_reference(rc));
  }
}

}  // namespace

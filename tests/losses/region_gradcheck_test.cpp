// Region losses: the library's analytic gradient against central finite differences of the
// library's own forward value (float64 input, forward-only calls), per kind over a spread of
// options, away from kinks (focal Tversky with a positive base).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "losses/region_check.hpp"
#include "losses/region_harness.hpp"

namespace {

using namespace region_test;

enum Variant {
  kSoftmaxIndexNCHW = 0,     // softmax, int64 labels with ignored pixels, MEAN
  kSigmoidDenseMultiLabel,   // sigmoid, soft dense targets, SUM
  kProbabilitiesNone,        // ACTIVATION_NONE, REDUCTION_NONE
  kNHWCWeights,              // CLASS_AXIS = -1, pixel weights and class weights
  kBatchSkipEmptyNoBg,       // BATCH, SKIP_EMPTY, INCLUDE_BACKGROUND = 0, an absent class
  kMicroOrSimple,            // AVERAGE = MICRO (generalized Dice: SIMPLE weights)
  kKindSpecific,             // squared denominator / α,β / γ = 2 / UNIFORM
  kNoneBatchScaled,          // REDUCTION_NONE with BATCH and grad_scale = -1.5
  kNCDHWSigmoidMask,         // NCDHW, C = 1, sigmoid, uint8 label mask
  kNumVariants
};

RegionCase make_case(culoss_kind kind, int variant, std::mt19937& rng) {
  std::uniform_real_distribution<double> logit(-2.5, 2.5), prob(0.05, 0.95), u01(0.0, 1.0);
  RegionCase rc;
  rc.opt = default_options(kind);
  RegionOptions& o = rc.opt;
  o.smooth_nr = o.smooth_dr = 1e-3;
  int64_t N = 2, C = 3;
  rc.shape = {N, C, 3, 4};
  o.activation = CULOSS_ACTIVATION_SOFTMAX;
  bool index = false;
  switch (variant) {
    case kSoftmaxIndexNCHW: index = true; break;
    case kSigmoidDenseMultiLabel:
      o.activation = CULOSS_ACTIVATION_SIGMOID;
      o.reduction = CULOSS_REDUCTION_SUM;
      break;
    case kProbabilitiesNone:
      o.activation = CULOSS_ACTIVATION_NONE;
      o.reduction = CULOSS_REDUCTION_NONE;
      break;
    case kNHWCWeights:
      rc.shape = {N, 3, 4, C};
      o.class_axis = -1;
      o.class_weights = {0.5, 2.0, 1.25};
      index = true;
      break;
    case kBatchSkipEmptyNoBg:
      o.batch = true;
      o.skip_empty = true;
      o.include_background = false;
      C = 4;
      rc.shape = {N, C, 3, 4};
      index = true;
      break;
    case kMicroOrSimple:
      if (kind == CULOSS_GENERALIZED_DICE) o.weight_type = CULOSS_WEIGHT_SIMPLE;
      else o.average = CULOSS_AVERAGE_MICRO;
      o.class_weights = {1.0, 0.5, 3.0};
      break;
    case kKindSpecific:
      if (kind == CULOSS_DICE || kind == CULOSS_JACCARD) o.squared = true;
      if (kind == CULOSS_TVERSKY) { o.alpha = 0.7; o.beta = 0.3; }
      if (kind == CULOSS_FOCAL_TVERSKY) o.gamma = 2.0;
      if (kind == CULOSS_GENERALIZED_DICE) o.weight_type = CULOSS_WEIGHT_UNIFORM;
      o.smooth_nr = o.smooth_dr = 0.0;
      break;
    case kNoneBatchScaled:
      o.reduction = CULOSS_REDUCTION_NONE;
      o.batch = true;
      rc.grad_scale = -1.5;
      index = true;
      break;
    case kNCDHWSigmoidMask:
      C = 1;
      rc.shape = {N, C, 2, 3, 2};
      o.activation = CULOSS_ACTIVATION_SIGMOID;
      rc.target_dtype = testing_util::u8();
      o.ignore_index = 255;
      index = true;
      break;
  }
  const int64_t ne = numel(rc.shape);
  rc.input.resize(static_cast<size_t>(ne));
  for (double& x : rc.input) x = o.activation == CULOSS_ACTIVATION_NONE ? prob(rng) : logit(rng);
  const std::vector<int64_t> ps = without_axis(rc.shape, o.class_axis);
  const int64_t np = numel(ps);
  if (index) {
    rc.index_target = true;
    if (variant != kNCDHWSigmoidMask) rc.target_dtype = testing_util::i64();
    rc.labels.resize(static_cast<size_t>(np));
    for (int64_t i = 0; i < np; ++i) {
      int64_t lab = static_cast<int64_t>(u01(rng) * static_cast<double>(C == 1 ? 2 : C));
      if (variant == kBatchSkipEmptyNoBg && lab == 2) lab = 1;  // class 2 absent everywhere
      if (u01(rng) < 0.15) lab = o.ignore_index;
      rc.labels[static_cast<size_t>(i)] = lab;
    }
  } else {
    rc.target.resize(static_cast<size_t>(ne));
    for (double& t : rc.target) t = u01(rng) < 0.3 ? (u01(rng) < 0.5 ? 0.0 : 1.0) : u01(rng);
  }
  if (variant == kNHWCWeights) {
    rc.pixel_weight.resize(static_cast<size_t>(np));
    for (double& w : rc.pixel_weight) w = u01(rng) < 0.2 ? 0.0 : 0.25 + 1.5 * u01(rng);
  }
  return rc;
}

// Central differences of the (summed) forward value; compares with the analytic gradient.
void gradcheck(const RegionCase& rc) {
  const RunResult base = run_region(rc);
  ASSERT_EQ(base.status, CULOSS_SUCCESS) << base.error << "\n  case: " << describe_case(rc);
  ASSERT_TRUE(all_finite(base.grad)) << describe_case(rc);
  RunConfig fwd;
  fwd.grad = false;
  const double gmax = max_abs(base.grad);
  std::vector<double> fd(rc.input.size());
  for (size_t i = 0; i < rc.input.size(); ++i) {
    const double h = 1e-5 * std::max(1.0, std::fabs(rc.input[i]));
    RegionCase p = rc, m = rc;
    p.input[i] += h;
    m.input[i] -= h;
    const double hh = p.input[i] - m.input[i];  // the step actually taken
    const RunResult rp = run_region(p, fwd), rm = run_region(m, fwd);
    ASSERT_EQ(rp.status, CULOSS_SUCCESS) << rp.error;
    ASSERT_EQ(rm.status, CULOSS_SUCCESS) << rm.error;
    fd[i] = (objective(rp) - objective(rm)) / hh * rc.grad_scale;
  }
  EXPECT_TRUE(close_vectors("grad vs finite differences", base.grad, fd, Tol{1e-6, 1e-6 * gmax + 1e-12}))
      << "\n  case: " << describe_case(rc);
  // The gradient is not trivially zero (these cases all depend on the input).
  EXPECT_GT(gmax, 0.0) << describe_case(rc);
}

class RegionGradcheck : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(RegionGradcheck, MatchesCentralDifferences) {
  const culoss_kind kind = static_cast<culoss_kind>(std::get<0>(GetParam()));
  const int variant = std::get<1>(GetParam());
  std::mt19937 rng(static_cast<unsigned>(100 * kind + variant));
  const RegionCase rc = make_case(kind, variant, rng);
  gradcheck(rc);
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<int, int>>& info) {
  static const char* kKinds[] = {"", "Dice", "Jaccard", "Tversky", "FocalTversky", "GeneralizedDice"};
  static const char* kVariants[] = {"SoftmaxIndexNCHW", "SigmoidDenseMultiLabel", "ProbabilitiesNone",
                                    "NHWCWeights",      "BatchSkipEmptyNoBg",     "MicroOrSimple",
                                    "KindSpecific",     "NoneBatchScaled",        "NCDHWSigmoidMask"};
  return std::string(kKinds[std::get<0>(info.param)]) + "_" + kVariants[std::get<1>(info.param)];
}

INSTANTIATE_TEST_SUITE_P(KindsAndOptions, RegionGradcheck,
                         ::testing::Combine(::testing::Values(CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY,
                                                              CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE),
                                            ::testing::Range(0, static_cast<int>(kNumVariants))),
                         case_name);

// Focal Tversky with gamma < 1 and gamma > 1, several alpha/beta, random shapes: base stays > 0
// because smooth_nr <= smooth_dr and the predictions are never perfect.
TEST(RegionGradcheckFocalTversky, GammaSpread) {
  std::mt19937 rng(77);
  const double gammas[] = {0.5, 0.75, 1.0, 1.5, 3.0};
  for (double g : gammas) {
    RegionCase rc = make_case(CULOSS_FOCAL_TVERSKY, kSoftmaxIndexNCHW, rng);
    rc.opt.gamma = g;
    rc.opt.alpha = 0.2 + 0.1 * g;
    rc.opt.beta = 0.9 - 0.1 * g;
    gradcheck(rc);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

}  // namespace

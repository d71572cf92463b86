// CULOSS_MCC (Matthews correlation coefficient loss) and CULOSS_PARAM_SOFT_LABEL (DICE, JACCARD,
// TVERSKY, FOCAL_TVERSKY, MCC) on the CPU backend: the reference's gradient against finite
// differences, hand-computed values, random cases of every option against the independent
// reference (tests/reference/region_reference.hpp), identities (soft labels on 0/1 targets are
// the default statistics; a perfect prediction has an MCC loss of about 0; with soft targets the
// loss is smallest at p = t), edge cases and the refusals with their messages.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "losses/region_check.hpp"
#include "losses/region_random.hpp"

namespace {

using namespace region_test;

constexpr int kSoftKinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                              CULOSS_MCC};

RegionCase dense_case(culoss_kind kind, std::vector<int64_t> shape, std::vector<double> input,
                      std::vector<double> target) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.opt.activation = CULOSS_ACTIVATION_NONE;
  rc.shape = std::move(shape);
  rc.input = std::move(input);
  rc.target = std::move(target);
  return rc;
}

// A random case; MCC with ε > 0 unless asked for (with ε = 0 a one-pixel image has an MCC
// gradient that is exactly 0 in theory and a rounding residue in practice, which no relative
// tolerance can judge: the hand-computed and edge cases cover ε = 0).
RegionCase draw(std::mt19937& rng, RegionConstraints k) {
  if (k.kind == CULOSS_MCC && k.smooth < 0) {
    static const int kNonZero[] = {0, 2, 3, 4, 5};
    k.smooth = kNonZero[std::uniform_int_distribution<int>(0, 4)(rng)];
  }
  return random_region_case(rng, k);
}

void expect_values(const RegionCase& rc, const std::vector<double>& loss,
                   const std::vector<double>& grad) {
  const RunResult r = run_region(rc);
  ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
  EXPECT_TRUE(close_vectors("loss", r.loss, loss, Tol{1e-12, 1e-12})) << describe_case(rc);
  EXPECT_TRUE(close_vectors("grad", r.grad, grad, Tol{1e-12, 1e-12})) << describe_case(rc);
  const region_ref::Result ref = region_ref::reference(to_spec(rc));
  EXPECT_TRUE(close_vectors("reference loss", ref.values, loss, Tol{1e-12, 1e-12}));
  EXPECT_TRUE(close_vectors("reference grad", ref.grad, grad, Tol{1e-12, 1e-12}));
}

// ---------------------------------------------------------------------------------------------
// The reference itself.

TEST(MccReference, SelfCheckAgainstFiniteDifferences) {
  std::mt19937 rng(1401);
  int checked = 0;
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = it % 2 ? CULOSS_MCC : kSoftKinds[(it / 2) % 5];
    k.soft_label = it % 3 == 0 ? 0 : 1;
    k.focal_min_gamma = 1.0;
    const RegionCase rc = draw(rng, k);
    if (rc.opt.kind == CULOSS_FOCAL_TVERSKY && rc.opt.smooth_nr > rc.opt.smooth_dr) continue;
    const region_ref::Spec s = to_spec(rc);
    const region_ref::Result ref = region_ref::reference(s);
    const std::vector<long double> x(s.input.begin(), s.input.end());
    const double scale = max_abs(ref.grad) + ref.max_abs_grad_p;
    for (size_t i = 0; i < x.size(); ++i) {
      // |p − t| has a kink at p = t: a step that crosses it is no derivative (soft labels only).
      const long double h = 1e-6L * std::max(1.0L, std::fabs(x[i]));
      std::vector<long double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const long double fd =
          (region_ref::reference_objective(s, xp) - region_ref::reference_objective(s, xm)) /
          (2 * h) * s.grad_scale;
      ASSERT_NEAR(static_cast<double>(fd), ref.grad[i], 1e-6 * scale + 1e-300)
          << "element " << i << "\n  case: " << describe_case(rc);
    }
    ++checked;
  }
  EXPECT_GT(checked, 60);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed values.

TEST(MccValues, ByHand) {
  // p = [1, 0, .5, .5], t = [1, 0, 1, 0], ε = 0: TP = 1.5, FP = .5, FN = .5, TN = 1.5.
  // MCC = (2.25 − .25)/√(2·2·2·2) = .5. With I, SP, ST, SV = 1.5, 2, 2, 4 (a = SP, b = ST,
  // c = SV − ST, d = SV − SP): dMCC/dI = SV/4 = 1, dMCC/dSP = −ST/4 − MCC/2 (1/a − 1/d) = −.5,
  // so dℓ/dp = −(t − .5): −.5 where t = 1, +.5 where t = 0.
  RegionCase rc = dense_case(CULOSS_MCC, {1, 1, 4}, {1.0, 0.0, 0.5, 0.5}, {1.0, 0.0, 1.0, 0.0});
  rc.opt.smooth_dr = 0.0;
  expect_values(rc, {0.5}, {-0.5, 0.5, -0.5, 0.5});
}

TEST(MccValues, SmpFormulaByHand) {
  // smp MCCLoss with ε = 1e-5 on p = [.9, .2, .6], t = [1, 0, 1] (its own formula, in double).
  const double e = 1e-5;
  const double tp = .9 + .6 + e, tn = .8 + e, fp = .2 + e, fn = .1 + .4 + e;
  const double mcc = (tp * tn - fp * fn) / std::sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
  RegionCase rc = dense_case(CULOSS_MCC, {1, 1, 3}, {0.9, 0.2, 0.6}, {1.0, 0.0, 1.0});
  const RunResult r = run_region(rc);
  ASSERT_EQ(r.status, CULOSS_SUCCESS) << r.error;
  EXPECT_NEAR(r.loss[0], 1.0 - mcc, 1e-14);
}

TEST(SoftLabelValues, DiceByHand) {
  // p = [.2, .7], t = [.5, .5], smoothing 0: I = min(.2, .5) + min(.7, .5) = .7, SP = .9, ST = 1.
  // ℓ = 1 − 1.4/1.9; dℓ/dp = −(2 dI/dp · 1.9 − 1.4)/1.9², dI/dp = 1 (p < t) and 0 (p > t).
  RegionCase rc = dense_case(CULOSS_DICE, {1, 1, 2}, {0.2, 0.7}, {0.5, 0.5});
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  rc.opt.soft_label = true;
  expect_values(rc, {0.5 / 1.9}, {-2.4 / 3.61, 1.4 / 3.61});
  // Without soft labels: I = .2·.5 + .7·.5 = .45, ℓ = 1 − .9/1.9, and dI/dp = t = .5 on both:
  // dℓ/dp = −(2·.5·1.9 − .9)/1.9² = −1/3.61.
  rc.opt.soft_label = false;
  expect_values(rc, {1.0 / 1.9}, {-1.0 / 3.61, -1.0 / 3.61});
}

TEST(SoftLabelValues, AtTheTargetTheDerivativeOfIIsOneHalf) {
  // p = t = [.3, .6]: I = SP = ST = .9, ℓ = 0, and with dI/dp = 1/2 the Dice gradient is
  // −(2·½·1.8 − 1.8)/1.8² = 0: p = t is a stationary point.
  RegionCase rc = dense_case(CULOSS_DICE, {1, 1, 2}, {0.3, 0.6}, {0.3, 0.6});
  rc.opt.smooth_nr = rc.opt.smooth_dr = 0.0;
  rc.opt.soft_label = true;
  expect_values(rc, {0.0}, {0.0, 0.0});
}

// ---------------------------------------------------------------------------------------------
// Random cases against the reference.

TEST(MccReferenceCases, EveryOption) {
  // Every reduction, BATCH, AVERAGE, class and pixel weights, SKIP_EMPTY, INCLUDE_BACKGROUND,
  // ε (including 0), activations, target kinds and layouts drawn at random; soft labels half of
  // the time.
  std::mt19937 rng(1402);
  for (int it = 0; it < 400; ++it) {
    RegionConstraints k;
    k.kind = CULOSS_MCC;
    k.soft_label = -1;
    if (it % 40 == 39) k.max_dim = 24;  // longer sums
    const RegionCase rc = draw(rng, k);
    ASSERT_TRUE(matches_reference(rc)) << "iteration " << it;
  }
}

TEST(MccReferenceCases, EveryReductionAverageAndBatch) {
  std::mt19937 rng(1403);
  for (int red = 0; red < 3; ++red)
    for (int avg = 0; avg < 2; ++avg)
      for (int batch = 0; batch < 2; ++batch)
        for (int it = 0; it < 8; ++it) {
          RegionConstraints k;
          k.kind = CULOSS_MCC;
          k.reduction = red;
          k.average = avg;
          k.batch = batch;
          k.soft_label = it % 2;
          const RegionCase rc = draw(rng, k);
          ASSERT_TRUE(matches_reference(rc)) << describe_case(rc);
        }
}

TEST(MccReferenceCases, LayoutsAndTargetKinds) {
  std::mt19937 rng(1404);
  for (int layout = 0; layout < kNumLayouts; ++layout)
    for (int target = 0; target < kNumTargetKinds; ++target)
      for (int it = 0; it < 3; ++it) {
        RegionConstraints k;
        k.kind = CULOSS_MCC;
        k.layout = layout;
        k.target = target;
        k.soft_label = it == 2 ? 1 : 0;
        const RegionCase rc = draw(rng, k);
        ASSERT_TRUE(matches_reference(rc)) << "layout " << layout << " target " << target;
      }
}

TEST(SoftLabelReferenceCases, EveryKind) {
  std::mt19937 rng(1405);
  for (int kind : kSoftKinds)
    for (int it = 0; it < 80; ++it) {
      RegionConstraints k;
      k.kind = kind;
      k.soft_label = 1;
      if (it % 20 == 19) k.max_dim = 24;
      const RegionCase rc = draw(rng, k);
      ASSERT_TRUE(rc.opt.soft_label && !rc.opt.squared);
      ASSERT_TRUE(matches_reference(rc)) << "kind " << kind << " iteration " << it;
    }
}

TEST(SoftLabelReferenceCases, DenseSoftTargetsEveryLayout) {
  std::mt19937 rng(1406);
  for (int kind : kSoftKinds)
    for (int layout = 0; layout < kNumLayouts; ++layout)
      for (int target = kDenseF64; target <= kDenseBF16; ++target) {
        RegionConstraints k;
        k.kind = kind;
        k.soft_label = 1;
        k.layout = layout;
        k.target = target;
        const RegionCase rc = draw(rng, k);
        ASSERT_TRUE(matches_reference(rc)) << "kind " << kind << " layout " << layout;
      }
}

// Half-precision and float32 inputs: compared with the reference on the rounded inputs.
TEST(MccReferenceCases, InputDtypes) {
  std::mt19937 rng(1407);
  const DLDataType dtypes[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  const double grad_rel[] = {1e-4, 1.5e-3, 8e-3};
  for (int d = 0; d < 3; ++d)
    for (int it = 0; it < 40; ++it) {
      RegionConstraints k;
      k.kind = it % 2 ? CULOSS_MCC : kSoftKinds[(it / 2) % 5];
      k.soft_label = it % 3 ? 1 : 0;
      k.smooth = it % 2 ? 0 : 3;  // well-conditioned smoothing for a 1e-3 comparison
      RegionCase rc = draw(rng, k);
      rc.input_dtype = dtypes[d];
      for (int grad_f32 = 0; grad_f32 < 2; ++grad_f32) {
        RunConfig cfg;
        cfg.grad_f32 = grad_f32 != 0;
        cfg.in_place = !cfg.grad_f32 && it % 4 == 0;
        EXPECT_TRUE(matches_reference(rc, cfg, 1e-4, grad_f32 ? 1e-4 : grad_rel[d],
                                      grad_f32 ? 1.0 : 0.5))
            << "dtype " << d << " grad in float32: " << grad_f32;
      }
    }
}

// ---------------------------------------------------------------------------------------------
// Identities.

// With 0/1 targets, v min(p, t) is bitwise v p t: soft labels change nothing (away from p = t
// exactly, which logits never reach unsaturated).
TEST(SoftLabelIdentity, BinaryTargetsGiveTheDefaultStatisticsBitwise) {
  std::mt19937 rng(1408);
  for (int kind : kSoftKinds)
    for (int it = 0; it < 30; ++it) {
      RegionConstraints k;
      k.kind = kind;
      k.activation = it % 2 ? CULOSS_ACTIVATION_SOFTMAX : CULOSS_ACTIVATION_SIGMOID;
      k.target = it % 3 == 0 ? kDenseU8 : kIndexU8 + it % 3;
      RegionCase rc = draw(rng, k);
      rc.opt.squared = false;
      const RunResult hard = run_region(rc);
      rc.opt.soft_label = true;
      const RunResult soft = run_region(rc);
      ASSERT_TRUE(hard.ok() && soft.ok()) << hard.error << soft.error;
      EXPECT_EQ(hard.loss_bytes, soft.loss_bytes) << describe_case(rc);
      EXPECT_EQ(hard.grad_bytes, soft.grad_bytes) << describe_case(rc);
    }
}

TEST(MccIdentity, PerfectPredictionIsAboutZero) {
  // Probabilities equal to a 0/1 mask in which every (image, class) has both values:
  // TP = n₁ + ε, TN = n₀ + ε, FP = FN = ε, a loss of the order of ε. (A class that is absent
  // or fills the image has no correlation to speak of: MCC ≈ 1/2 there, see MccEdge.)
  std::mt19937 rng(1409);
  std::uniform_real_distribution<double> u(0, 1);
  for (int it = 0; it < 24; ++it) {
    RegionCase rc = dense_case(CULOSS_MCC, {2, 3, 4, 5}, {}, {});
    for (int i = 0; i < 120; ++i) rc.target.push_back(i % 20 == 0 ? 1.0 : i % 20 == 1 ? 0.0
                                                                  : u(rng) < 0.4 ? 1.0 : 0.0);
    rc.input = rc.target;
    rc.opt.soft_label = it % 2 == 1;
    rc.opt.batch = (it / 2) % 2 == 1;
    rc.opt.average = (it / 4) % 2 ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
    rc.opt.reduction = (it / 8) % 3;
    const RunResult r = run_region(rc);
    ASSERT_TRUE(r.ok()) << r.error;
    for (double v : r.loss) EXPECT_NEAR(v, 0.0, 1e-4) << describe_case(rc);
    // At the optimum the gradient (of the order of ε/n²) is a difference of terms of the order
    // of 1/n: its relative precision is about 1e-16 n/ε.
    EXPECT_TRUE(matches_reference(rc, RunConfig(), 1e-9, 1e-6));
  }
}

TEST(MccIdentity, InvertedPredictionIsAboutTwo) {
  RegionCase rc = dense_case(CULOSS_MCC, {1, 1, 6}, {0, 1, 0, 1, 1, 0}, {1, 0, 1, 0, 0, 1});
  const RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NEAR(r.loss[0], 2.0, 1e-4);
}

TEST(MccIdentity, SmpMccLossIsMicroWithBatch) {
  // smp's MCCLoss pools every image and channel into one set of counts: AVERAGE=MICRO with
  // BATCH=1 (one class: MACRO too) on probabilities, ε = 1e-5.
  std::mt19937 rng(1410);
  std::uniform_real_distribution<double> u(0, 1);
  RegionCase rc = dense_case(CULOSS_MCC, {3, 2, 5, 4}, {}, {});
  for (int i = 0; i < 120; ++i) {
    rc.input.push_back(u(rng));
    rc.target.push_back(u(rng) < 0.4 ? 1.0 : 0.0);
  }
  rc.opt.batch = true;
  rc.opt.average = CULOSS_AVERAGE_MICRO;
  double tp = 1e-5, tn = 1e-5, fp = 1e-5, fn = 1e-5;
  for (size_t i = 0; i < rc.input.size(); ++i) {
    const double p = rc.input[i], t = rc.target[i];
    tp += p * t;
    tn += (1 - p) * (1 - t);
    fp += p * (1 - t);
    fn += (1 - p) * t;
  }
  const double mcc = (tp * tn - fp * fn) / std::sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
  const RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NEAR(r.loss[0], 1.0 - mcc, 1e-12);
}

// With soft targets the soft-label loss is smallest at p = t: moving p away in any direction
// does not lower it (and the gradient at p = t vanishes for the Dice family).
TEST(SoftLabelIdentity, LossIsMinimalAtTheTarget) {
  std::mt19937 rng(1411);
  std::uniform_real_distribution<double> u(0.05, 0.95), step(-0.04, 0.04);
  for (int kind : kSoftKinds)
    for (int it = 0; it < 6; ++it) {
      RegionCase rc = dense_case(static_cast<culoss_kind>(kind), {2, 3, 4, 3}, {}, {});
      for (int i = 0; i < 72; ++i) rc.target.push_back(u(rng));
      rc.input = rc.target;
      rc.opt.soft_label = true;
      rc.opt.batch = it % 2 == 1;
      rc.opt.average = it % 3 == 2 ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
      if (kind == CULOSS_FOCAL_TVERSKY) rc.opt.gamma = 1.5;  // smooth at its minimum
      const RunResult at = run_region(rc);
      ASSERT_TRUE(at.ok()) << at.error;
      EXPECT_NEAR(at.loss[0], 0.0, kind == CULOSS_MCC ? 1e-4 : 1e-12) << describe_case(rc);
      if (kind == CULOSS_DICE || kind == CULOSS_JACCARD) {
        EXPECT_LE(max_abs(at.grad), 1e-12) << describe_case(rc);
      }
      for (int trial = 0; trial < 10; ++trial) {
        RegionCase moved = rc;
        for (double& p : moved.input) p = std::min(1.0, std::max(0.0, p + step(rng)));
        const RunResult r = run_region(moved);
        ASSERT_TRUE(r.ok()) << r.error;
        EXPECT_GT(r.loss[0], at.loss[0]) << describe_case(rc);
      }
      // The default statistics are not minimal there: their loss is larger than 0.
      rc.opt.soft_label = false;
      if (kind != CULOSS_MCC) {
        const RunResult hard = run_region(rc);
        ASSERT_TRUE(hard.ok()) << hard.error;
        EXPECT_GT(hard.loss[0], 1e-3) << describe_case(rc);
      }
    }
}

// ---------------------------------------------------------------------------------------------
// Edge cases: finite everywhere.

TEST(MccEdge, EmptyIgnoredAndSaturated) {
  // Empty target and empty prediction: TP = FP = FN = ε, TN = n + ε, MCC = n/(2(n + 2ε))·…:
  // about 0.5 (the formula, as smp's MCCLoss; SKIP_EMPTY leaves such pairs out).
  RegionCase rc = dense_case(CULOSS_MCC, {1, 1, 4}, {0, 0, 0, 0}, {0, 0, 0, 0});
  RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  const double e = 1e-5, n = 4;
  EXPECT_NEAR(r.loss[0], 1.0 - (e * (n + e) - e * e) / (2 * e * (n + 2 * e)), 1e-12);
  ASSERT_TRUE(all_finite(r.grad));
  rc.opt.skip_empty = true;
  r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.loss[0], 0.0);
  // Every pixel ignored: all counts are ε, MCC = 0, ℓ = 1; no gradient.
  RegionCase ign;
  ign.opt = default_options(CULOSS_MCC);
  ign.shape = {2, 3, 4};
  ign.input.assign(24, 0.5);
  ign.index_target = true;
  ign.target_dtype = testing_util::i64();
  ign.labels.assign(8, -100);
  r = run_region(ign);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NEAR(r.loss[0], 1.0, 1e-15);
  for (double g : r.grad) EXPECT_EQ(g, 0.0);
  // ε = 0 with a class absent from both, or filling the image: loss 0, no gradient.
  RegionCase z = dense_case(CULOSS_MCC, {1, 2, 3}, {0, 0, 0, 1, 1, 1}, {0, 0, 0, 1, 1, 1});
  z.opt.smooth_dr = 0.0;
  r = run_region(z);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.loss[0], 0.0);
  for (double g : r.grad) EXPECT_EQ(g, 0.0);
  // Saturated logits, one pixel, C = 1 with a sigmoid: finite.
  for (double x : {-1e4, -50.0, 0.0, 50.0, 1e4}) {
    RegionCase s = dense_case(CULOSS_MCC, {1, 1, 1}, {x}, {1.0});
    s.opt.activation = CULOSS_ACTIVATION_SIGMOID;
    for (int soft = 0; soft < 2; ++soft) {
      s.opt.soft_label = soft != 0;
      r = run_region(s);
      ASSERT_TRUE(r.ok()) << r.error;
      EXPECT_TRUE(all_finite(r.loss) && all_finite(r.grad)) << x;
      EXPECT_TRUE(matches_reference(s));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Parameters and refusals.

std::string last_error() { return culoss_last_error(); }

TEST(SoftLabelParams, DefaultsAndWhereTheyApply) {
  for (int kind : kSoftKinds) {
    testing_util::Loss h(static_cast<culoss_kind>(kind));
    int64_t v = -1;
    ASSERT_EQ(culoss_loss_get_int(h, CULOSS_PARAM_SOFT_LABEL, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 0);
    EXPECT_EQ(culoss_loss_set_int(h, CULOSS_PARAM_SOFT_LABEL, 1), CULOSS_SUCCESS);
    ASSERT_EQ(culoss_loss_get_int(h, CULOSS_PARAM_SOFT_LABEL, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 1);
    EXPECT_EQ(culoss_loss_set_int(h, CULOSS_PARAM_SOFT_LABEL, 2), CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(last_error().find("CULOSS_PARAM_SOFT_LABEL must be 0 or 1"), std::string::npos)
        << last_error();
    EXPECT_EQ(culoss_loss_set_float(h, CULOSS_PARAM_SOFT_LABEL, 1.0),
              CULOSS_ERROR_INVALID_ARGUMENT);
  }
  for (int kind : {CULOSS_GENERALIZED_DICE, CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_COMBO,
                   CULOSS_LOVASZ_SOFTMAX, CULOSS_SUM}) {
    testing_util::Loss h(static_cast<culoss_kind>(kind));
    EXPECT_EQ(culoss_loss_set_int(h, CULOSS_PARAM_SOFT_LABEL, 1), CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_NE(last_error().find("CULOSS_PARAM_SOFT_LABEL does not apply to"), std::string::npos)
        << last_error();
  }
}

TEST(SoftLabelParams, RefusedWithSquaredDenominatorInEitherOrder) {
  for (int kind : {CULOSS_DICE, CULOSS_JACCARD}) {
    for (int order = 0; order < 2; ++order) {
      testing_util::Loss h(static_cast<culoss_kind>(kind));
      const culoss_param first = order ? CULOSS_PARAM_SOFT_LABEL : CULOSS_PARAM_SQUARED_DENOMINATOR;
      const culoss_param second = order ? CULOSS_PARAM_SQUARED_DENOMINATOR : CULOSS_PARAM_SOFT_LABEL;
      ASSERT_EQ(culoss_loss_set_int(h, first, 1), CULOSS_SUCCESS);
      EXPECT_EQ(culoss_loss_set_int(h, second, 1), CULOSS_ERROR_INVALID_ARGUMENT);
      const std::string msg = last_error();
      EXPECT_NE(msg.find("CULOSS_PARAM_SOFT_LABEL=1 cannot be combined with "
                         "CULOSS_PARAM_SQUARED_DENOMINATOR=1"),
                std::string::npos)
          << msg;
      int64_t v = -1;  // the refused value was not written
      ASSERT_EQ(culoss_loss_get_int(h, second, &v), CULOSS_SUCCESS);
      EXPECT_EQ(v, 0);
      // Setting the other to 0 first makes room.
      ASSERT_EQ(culoss_loss_set_int(h, first, 0), CULOSS_SUCCESS);
      EXPECT_EQ(culoss_loss_set_int(h, second, 1), CULOSS_SUCCESS);
      EXPECT_EQ(culoss_loss_set_int(h, second, 0), CULOSS_SUCCESS);  // 0 is always accepted
    }
  }
}

TEST(MccParams, DefaultsAndRefusals) {
  testing_util::Loss h(CULOSS_MCC);
  double f = -1;
  ASSERT_EQ(culoss_loss_get_float(h, CULOSS_PARAM_SMOOTH_DR, &f), CULOSS_SUCCESS);
  EXPECT_EQ(f, 1e-5);
  int64_t v = -1;
  ASSERT_EQ(culoss_loss_get_int(h, CULOSS_PARAM_ACTIVATION, &v), CULOSS_SUCCESS);
  EXPECT_EQ(v, CULOSS_ACTIVATION_SOFTMAX);
  ASSERT_EQ(culoss_loss_get_int(h, CULOSS_PARAM_AVERAGE, &v), CULOSS_SUCCESS);
  EXPECT_EQ(v, CULOSS_AVERAGE_MACRO);
  for (culoss_param p : {CULOSS_PARAM_SMOOTH_NR, CULOSS_PARAM_SQUARED_DENOMINATOR,
                         CULOSS_PARAM_ALPHA, CULOSS_PARAM_GAMMA, CULOSS_PARAM_WEIGHT_TYPE}) {
    const bool is_float = p == CULOSS_PARAM_SMOOTH_NR || p == CULOSS_PARAM_ALPHA ||
                          p == CULOSS_PARAM_GAMMA;
    const culoss_status st = is_float ? culoss_loss_set_float(h, p, 0.5)
                                      : culoss_loss_set_int(h, p, 1);
    EXPECT_EQ(st, CULOSS_ERROR_INVALID_ARGUMENT) << p;
    EXPECT_NE(last_error().find("does not apply to CULOSS_MCC"), std::string::npos)
        << last_error();
  }
  EXPECT_EQ(culoss_loss_set_float(h, CULOSS_PARAM_SMOOTH_DR, -1.0), CULOSS_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("CULOSS_PARAM_SMOOTH_DR must be finite and >= 0 for CULOSS_MCC"),
            std::string::npos)
      << last_error();
  // SOFTMAX over one class is constant: refused, naming SIGMOID.
  RegionCase rc = dense_case(CULOSS_MCC, {1, 1, 4}, {1, 2, 3, 4}, {1, 0, 1, 0});
  rc.opt.activation = CULOSS_ACTIVATION_SOFTMAX;
  const RunResult r = run_region(rc);
  EXPECT_EQ(r.status, CULOSS_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(r.error.find("CULOSS_ACTIVATION_SIGMOID"), std::string::npos) << r.error;
  EXPECT_STREQ(culoss_status_string(CULOSS_SUCCESS), "CULOSS_SUCCESS");
}

TEST(MccParams, NoneOutputShapes) {
  std::mt19937 rng(1412);
  for (int avg = 0; avg < 2; ++avg)
    for (int batch = 0; batch < 2; ++batch) {
      RegionConstraints k;
      k.kind = CULOSS_MCC;
      k.reduction = CULOSS_REDUCTION_NONE;
      k.average = avg;
      k.batch = batch;
      k.N = 3;
      k.C = 4;
      k.activation = CULOSS_ACTIVATION_SOFTMAX;
      const RegionCase rc = draw(rng, k);
      const RunResult r = run_region(rc);
      ASSERT_TRUE(r.ok()) << r.error;
      const size_t want = avg ? (batch ? 1 : 3) : (batch ? 4 : 12);
      EXPECT_EQ(r.loss.size(), want);
      EXPECT_TRUE(matches_reference(rc));
    }
}

TEST(MccDeterminism, ThreadCountsGiveTheSameBits) {
  std::mt19937 rng(1413);
  RegionConstraints k;
  k.kind = CULOSS_MCC;
  k.max_dim = 40;
  k.soft_label = 1;
  RegionCase rc = draw(rng, k);
  rc.input_dtype = testing_util::f32();
  ASSERT_EQ(culoss_set_num_threads(1), CULOSS_SUCCESS);
  const RunResult one = run_region(rc);
  ASSERT_EQ(culoss_set_num_threads(3), CULOSS_SUCCESS);
  const RunResult three = run_region(rc);
  ASSERT_EQ(culoss_set_num_threads(0), CULOSS_SUCCESS);  // back to the default
  ASSERT_TRUE(one.ok() && three.ok());
  EXPECT_EQ(one.loss_bytes, three.loss_bytes);
  EXPECT_EQ(one.grad_bytes, three.grad_bytes);
}

}  // namespace

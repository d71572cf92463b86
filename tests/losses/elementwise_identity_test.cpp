// Identities between the element-wise losses (and with the region losses) that must hold for
// every input: focal with γ = 0 is (binary) cross-entropy, neutral options change nothing,
// marginal CE is CE on fully annotated images, COMBO at CE_RATIO 1 and 0 is its two parts.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "losses/elementwise_check.hpp"

namespace {

using namespace region_test;

// Both calls succeed and give the same bytes (value and gradient).
::testing::AssertionResult same_bytes(const RegionCase& a, const RegionCase& b,
                                      const RunConfig& cfg = RunConfig()) {
  const RunResult ra = run_region(a, cfg), rb = run_region(b, cfg);
  if (!ra.ok() || !rb.ok())
    return ::testing::AssertionFailure() << "call failed: " << ra.error << " / " << rb.error;
  if (ra.loss_bytes != rb.loss_bytes)
    return ::testing::AssertionFailure()
           << "values differ: " << ::testing::PrintToString(ra.loss) << " vs "
           << ::testing::PrintToString(rb.loss) << "\n  case: " << describe_case(a);
  if (ra.grad_bytes != rb.grad_bytes) {
    return ::testing::AssertionFailure()
           << "gradients differ" << close_vectors("grad", ra.grad, rb.grad, Tol{0, 0}).message()
           << "\n  case: " << describe_case(a);
  }
  return ::testing::AssertionSuccess();
}

// Both calls succeed; values and gradients agree to `rel` (absolute floor rel · max).
::testing::AssertionResult near(const RegionCase& a, const RegionCase& b, double rel = 1e-14) {
  const RunResult ra = run_region(a), rb = run_region(b);
  if (!ra.ok() || !rb.ok())
    return ::testing::AssertionFailure() << "call failed: " << ra.error << " / " << rb.error;
  ::testing::AssertionResult v =
      close_vectors("loss", ra.loss, rb.loss, Tol{rel, rel * max_abs(rb.loss) + 1e-300});
  if (!v) return v << "\n  case: " << describe_case(a);
  ::testing::AssertionResult g =
      close_vectors("grad", ra.grad, rb.grad, Tol{rel, rel * max_abs(rb.grad) + 1e-300});
  if (!g) return g << "\n  case: " << describe_case(a);
  return ::testing::AssertionSuccess();
}

// Binary focal with γ = 0 and α < 0 (α_t = 1) is BCE: ω_c ce for both (no smoothing, POS_WEIGHT 1).
TEST(ElementwiseIdentity, BinaryFocalGammaZeroIsBCE) {
  std::mt19937 rng(401);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.activation = it % 3 == 2 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SIGMOID;
    k.reduction = it % 3;
    RegionCase bce = random_elementwise_case(rng, k);
    bce.opt.pos_weight.clear();
    bce.opt.class_balance = CULOSS_BALANCE_NONE;
    bce.opt.label_smoothing = 0.0;
    RegionCase focal = bce;
    focal.opt.kind = CULOSS_FOCAL;
    focal.opt.gamma = 0.0;
    focal.opt.alpha = it % 2 ? -1.0 : -0.25;
    EXPECT_TRUE(near(focal, bce, 1e-14)) << "iteration " << it;
  }
}

// Softmax focal with γ = 0 is CROSS_ENTROPY exactly (SEMANTICS): the same bytes, value and
// gradient, for every reduction, target kind, weight and layout. (FOCAL with ACTIVATION_NONE is a
// binary loss, so only the softmax form has a CROSS_ENTROPY counterpart.)
TEST(ElementwiseIdentity, SoftmaxFocalGammaZeroIsCrossEntropy) {
  std::mt19937 rng(402);
  for (int it = 0; it < 80; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.reduction = it % 3;
    RegionCase ce = random_elementwise_case(rng, k);
    ce.opt.label_smoothing = 0.0;
    RegionCase focal = ce;
    focal.opt.kind = CULOSS_FOCAL;
    focal.opt.gamma = 0.0;
    focal.opt.alpha = it % 2 ? 0.25 : -1.0;  // does not enter the softmax focal
    EXPECT_TRUE(same_bytes(focal, ce)) << "iteration " << it;
  }
}

// LABEL_SMOOTHING = 0 set explicitly changes nothing (BCE, CROSS_ENTROPY).
TEST(ElementwiseIdentity, LabelSmoothingZeroChangesNothing) {
  std::mt19937 rng(403);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = it % 2 ? CULOSS_BCE : CULOSS_CROSS_ENTROPY;
    RegionCase a = random_elementwise_case(rng, k);
    a.opt.label_smoothing = 0.0;
    testing_util::Loss explicit_zero(a.opt.kind);
    RegionOptions o = a.opt;
    ASSERT_EQ(configure(explicit_zero, o), CULOSS_SUCCESS);  // sets LABEL_SMOOTHING = 0
    // Set to something else and back: nothing of it stays.
    ASSERT_EQ(culoss_loss_set_float(explicit_zero, CULOSS_PARAM_LABEL_SMOOTHING, 0.3),
              CULOSS_SUCCESS);
    ASSERT_EQ(culoss_loss_set_float(explicit_zero, CULOSS_PARAM_LABEL_SMOOTHING, 0.0),
              CULOSS_SUCCESS);
    // The same options without ever touching LABEL_SMOOTHING.
    testing_util::Loss untouched(a.opt.kind);
    for (culoss_param p :
         {CULOSS_PARAM_ACTIVATION, CULOSS_PARAM_CLASS_AXIS, CULOSS_PARAM_REDUCTION,
          CULOSS_PARAM_IGNORE_INDEX, CULOSS_PARAM_CHECK_TARGETS, CULOSS_PARAM_CLASS_BALANCE}) {
      if (!param_applies(a.opt.kind, p)) continue;
      int64_t v = 0;
      ASSERT_EQ(culoss_loss_get_int(explicit_zero, p, &v), CULOSS_SUCCESS);
      ASSERT_EQ(culoss_loss_set_int(untouched, p, v), CULOSS_SUCCESS);
    }
    if (!o.class_weights.empty()) {
      ASSERT_EQ(
          culoss_loss_set_floats(untouched, CULOSS_PARAM_CLASS_WEIGHTS, o.class_weights.data(),
                                 static_cast<int64_t>(o.class_weights.size())),
          CULOSS_SUCCESS);
    }
    if (!o.pos_weight.empty()) {
      ASSERT_EQ(culoss_loss_set_floats(untouched, CULOSS_PARAM_POS_WEIGHT, o.pos_weight.data(),
                                       static_cast<int64_t>(o.pos_weight.size())),
                CULOSS_SUCCESS);
    }
    double eps = -1;
    ASSERT_EQ(culoss_loss_get_float(untouched, CULOSS_PARAM_LABEL_SMOOTHING, &eps), CULOSS_SUCCESS);
    EXPECT_EQ(eps, 0.0) << "default label smoothing";
    const RunResult ra = run_with(explicit_zero, a), rb = run_with(untouched, a);
    ASSERT_TRUE(ra.ok() && rb.ok()) << ra.error << rb.error;
    EXPECT_EQ(ra.loss_bytes, rb.loss_bytes);
    EXPECT_EQ(ra.grad_bytes, rb.grad_bytes);
    // And the reference without smoothing agrees.
    EXPECT_TRUE(matches_elem_reference(a));
  }
}

// CROSS_ENTROPY: class weights all 1 = unweighted (bitwise); all w: MEAN unchanged (the divisor
// scales too, PyTorch semantics), SUM and NONE scale by w.
TEST(ElementwiseIdentity, CrossEntropyUniformClassWeights) {
  std::mt19937 rng(404);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.class_weights = 0;
    k.reduction = it % 3;
    RegionCase plain = random_elementwise_case(rng, k);
    const int64_t C = num_classes(plain);
    RegionCase ones = plain;
    ones.opt.class_weights.assign(static_cast<size_t>(C), 1.0);
    EXPECT_TRUE(same_bytes(ones, plain)) << "iteration " << it;
    RegionCase w = plain;
    const double wv = 2.5;
    w.opt.class_weights.assign(static_cast<size_t>(C), wv);
    const RunResult rp = run_region(plain), rw = run_region(w);
    ASSERT_TRUE(rp.ok() && rw.ok());
    const double f = plain.opt.reduction == CULOSS_REDUCTION_MEAN ? 1.0 : wv;
    std::vector<double> lw = rp.loss, gw = rp.grad;
    for (double& v : lw) v *= f;
    for (double& g : gw) g *= f;
    EXPECT_TRUE(close_vectors("loss", rw.loss, lw, Tol{1e-14, 1e-14 * max_abs(lw) + 1e-300}))
        << describe_case(w);
    EXPECT_TRUE(close_vectors("grad", rw.grad, gw, Tol{1e-14, 1e-14 * max_abs(gw) + 1e-300}))
        << describe_case(w);
  }
}

// BCE: POS_WEIGHT all 1 = default (bitwise); class weights all 1 = default (bitwise).
TEST(ElementwiseIdentity, BCENeutralWeights) {
  std::mt19937 rng(405);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.class_weights = 0;
    RegionCase plain = random_elementwise_case(rng, k);
    plain.opt.pos_weight.clear();
    const int64_t C = num_classes(plain);
    RegionCase pw = plain;
    pw.opt.pos_weight.assign(static_cast<size_t>(C), 1.0);
    EXPECT_TRUE(same_bytes(pw, plain)) << "iteration " << it;
    RegionCase cw = plain;
    cw.opt.class_weights.assign(static_cast<size_t>(C), 1.0);
    EXPECT_TRUE(same_bytes(cw, plain)) << "iteration " << it;
  }
}

// Index targets where every image has every class (or lacks only classes that are never the
// argmax): b = 1 everywhere and MARGINAL_CE equals CROSS_ENTROPY for MEAN, SUM and NONE.
TEST(ElementwiseIdentity, MarginalCEIsCrossEntropyWhenFullyAnnotated) {
  std::mt19937 rng(406);
  std::uniform_real_distribution<double> logit(-3, 3);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.target = it % 2 ? kIndexI64 : kDenseF64;
    k.class_weights = 0;
    k.reduction = it % 3;
    k.layout = it % kNumLayouts;
    k.check_off = 0;
    k.C = 2 + it % 3;
    k.max_dim = 4;
    RegionCase ce = random_elementwise_case(rng, k);
    ce.opt.label_smoothing = 0.0;
    const int64_t C = num_classes(ce);
    const int64_t N = ce.shape[0];
    const std::vector<int64_t> pshape = without_axis(ce.shape, ce.opt.class_axis);
    const int64_t P = numel(pshape) / N;
    const int64_t axis = resolved_axis(ce.shape, ce.opt.class_axis);
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(axis) + 1; d < ce.shape.size(); ++d) inner *= ce.shape[d];
    auto elem = [&](int64_t n, int64_t q, int64_t c) {
      return ((n * (P / inner) + q / inner) * C + c) * inner + q % inner;
    };
    // Dense targets: one-hot (soft targets would make the divisors differ).
    if (!ce.index_target)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t q = 0; q < P; ++q) {
          const int64_t lab = std::uniform_int_distribution<int64_t>(0, C - 1)(rng);
          for (int64_t c = 0; c < C; ++c)
            ce.target[static_cast<size_t>(elem(n, q, c))] = c == lab ? 1.0 : 0.0;
        }
    // Which classes each image annotates (ignored pixels do not count).
    for (int64_t n = 0; n < N; ++n) {
      std::vector<int> has(static_cast<size_t>(C), 0);
      for (int64_t q = 0; q < P; ++q)
        for (int64_t c = 0; c < C; ++c) {
          if (ce.index_target) {
            if (ce.labels[static_cast<size_t>(n * P + q)] == c && c != ce.opt.ignore_index)
              has[static_cast<size_t>(c)] = 1;
          } else if (ce.target[static_cast<size_t>(elem(n, q, c))] >= 0.5) {
            has[static_cast<size_t>(c)] = 1;
          }
        }
      // A missing foreground class is never the argmax of any pixel of this image: its input is
      // put below the largest input of the background and the annotated classes.
      has[0] = 1;
      for (int64_t q = 0; q < P; ++q) {
        double mx = -1e300;
        for (int64_t j = 0; j < C; ++j)
          if (has[static_cast<size_t>(j)])
            mx = std::max(mx, ce.input[static_cast<size_t>(elem(n, q, j))]);
        for (int64_t c = 1; c < C; ++c) {
          if (has[static_cast<size_t>(c)]) continue;
          double& x = ce.input[static_cast<size_t>(elem(n, q, c))];
          if (ce.opt.activation == CULOSS_ACTIVATION_NONE)
            x = std::min(x, mx * 0.5);
          else
            x = std::min(x, mx - 0.5 - std::fabs(logit(rng)));
        }
      }
    }
    RegionCase marginal = ce;
    marginal.opt.kind = CULOSS_MARGINAL_CE;
    marginal.opt.class_weights.clear();
    EXPECT_TRUE(near(marginal, ce, 1e-15)) << "iteration " << it;
  }
}

// COMBO with CE_RATIO = 1 is the α-weighted BCE MEAN: BCE with class weights (1 − α) and
// POS_WEIGHT α / (1 − α) has ω⁺ = α, ω⁻ = 1 − α.
TEST(ElementwiseIdentity, ComboCeRatioOneIsWeightedBCE) {
  std::mt19937 rng(407);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_COMBO;
    RegionCase combo = random_elementwise_case(rng, k);
    combo.opt.ce_ratio = 1.0;
    combo.opt.alpha = 0.05 + 0.9 * (it % 10) / 9.0;
    const int64_t C = num_classes(combo);
    RegionCase bce = combo;
    bce.opt = default_options(CULOSS_BCE);
    bce.opt.activation = combo.opt.activation;
    bce.opt.class_axis = combo.opt.class_axis;
    bce.opt.ignore_index = combo.opt.ignore_index;
    bce.opt.check_targets = combo.opt.check_targets;
    bce.opt.reduction = CULOSS_REDUCTION_MEAN;
    bce.opt.class_weights.assign(static_cast<size_t>(C), 1.0 - combo.opt.alpha);
    bce.opt.pos_weight.assign(static_cast<size_t>(C), combo.opt.alpha / (1.0 - combo.opt.alpha));
    EXPECT_TRUE(near(combo, bce, 1e-13)) << "iteration " << it;
  }
}

// COMBO with CE_RATIO = 0 is −DiceScore = Dice loss − 1 (MEAN, COMBO's region options), with the
// Dice gradient. ACTIVATION_NONE with dense targets only (a region loss with NONE reads class
// indices as classes, COMBO as a binary mask).
TEST(ElementwiseIdentity, ComboCeRatioZeroIsDiceMinusOne) {
  std::mt19937 rng(408);
  for (int it = 0; it < 60; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_COMBO;
    k.activation = CULOSS_ACTIVATION_SIGMOID;
    if (it % 3 == 2) {
      k.activation = CULOSS_ACTIVATION_NONE;
      k.target = kDenseF64 + it % 5;
    }
    RegionCase combo = random_elementwise_case(rng, k);
    combo.opt.ce_ratio = 0.0;
    RegionCase dice = combo;
    dice.opt.kind = CULOSS_DICE;
    dice.opt.reduction = CULOSS_REDUCTION_MEAN;
    const RunResult rc = run_region(combo), rd = run_region(dice);
    ASSERT_TRUE(rc.ok() && rd.ok()) << rc.error << rd.error;
    EXPECT_NEAR(rc.loss[0], rd.loss[0] - 1.0, 1e-14) << describe_case(combo);
    EXPECT_TRUE(
        close_vectors("grad", rc.grad, rd.grad, Tol{1e-14, 1e-14 * max_abs(rd.grad) + 1e-300}))
        << describe_case(combo);
  }
}

// COMBO in general: CE_RATIO · (α-weighted BCE) + (1 − CE_RATIO) · (Dice loss − 1).
TEST(ElementwiseIdentity, ComboIsItsParts) {
  std::mt19937 rng(409);
  for (int it = 0; it < 40; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_COMBO;
    k.activation = CULOSS_ACTIVATION_SIGMOID;
    RegionCase combo = random_elementwise_case(rng, k);
    const int64_t C = num_classes(combo);
    const double r = combo.opt.ce_ratio;
    RegionCase one = combo, zero = combo;
    one.opt.ce_ratio = 1.0;
    zero.opt.ce_ratio = 0.0;
    const RunResult rc = run_region(combo), r1 = run_region(one), r0 = run_region(zero);
    ASSERT_TRUE(rc.ok() && r1.ok() && r0.ok());
    EXPECT_NEAR(rc.loss[0], r * r1.loss[0] + (1 - r) * r0.loss[0],
                1e-13 * (1 + std::fabs(rc.loss[0])));
    std::vector<double> want(rc.grad.size());
    for (size_t i = 0; i < want.size(); ++i) want[i] = r * r1.grad[i] + (1 - r) * r0.grad[i];
    EXPECT_TRUE(close_vectors("grad", rc.grad, want, Tol{1e-13, 1e-13 * max_abs(want) + 1e-300}))
        << C;
  }
}

// CLASS_BALANCE = BATCH_FREQUENCY equals explicit weights computed from the batch:
// class weights mean(t_c) and POS_WEIGHT mean(1 − t_c) / mean(t_c) (dense targets, all counted).
TEST(ElementwiseIdentity, BatchFrequencyIsExplicitWeights) {
  std::mt19937 rng(410);
  for (int it = 0; it < 40; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.target = kDenseF64;
    k.class_weights = 0;
    k.layout = kLayoutNCHW;
    RegionCase freq = random_elementwise_case(rng, k);
    freq.opt.pos_weight.clear();
    freq.opt.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
    const int64_t C = num_classes(freq);
    const int64_t N = freq.shape[0], P = numel(freq.shape) / (N * C);
    std::vector<double> mean_t(static_cast<size_t>(C), 0.0);
    const std::vector<double> t = stored_target(freq);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t q = 0; q < P; ++q)
          mean_t[static_cast<size_t>(c)] += t[static_cast<size_t>((n * C + c) * P + q)];
    bool degenerate = false;
    for (double& m : mean_t) {
      m /= static_cast<double>(N * P);
      if (m <= 0.0) degenerate = true;
    }
    if (degenerate) continue;
    RegionCase explicit_w = freq;
    explicit_w.opt.class_balance = CULOSS_BALANCE_NONE;
    explicit_w.opt.class_weights = mean_t;
    for (double m : mean_t) explicit_w.opt.pos_weight.push_back((1.0 - m) / m);
    EXPECT_TRUE(near(freq, explicit_w, 1e-12)) << "iteration " << it;
  }
}

}  // namespace

// CULOSS_SUM: a weighted sum of terms computed in one fused call equals the weighted sum of its
// terms computed one by one (value and gradient) and the weighted sum of the references; sums of
// sums flatten; the refusals of SEMANTICS ("SUM") and the copy semantics of add_term.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "losses/elementwise_check.hpp"

namespace {

using namespace region_test;
using testing_util::Loss;

struct Term {
  RegionOptions opt;
  double weight = 1.0;
};

// The tensors of `tensors` with the options of a term.
RegionCase with_opt(const RegionCase& tensors, const RegionOptions& o) {
  RegionCase rc = tensors;
  rc.opt = o;
  return rc;
}

// Builds the SUM descriptor (terms configured through the public API, then added).
struct SumDescriptor {
  Loss sum{CULOSS_SUM};
  culoss_status status = CULOSS_SUCCESS;
  std::string error;
  SumDescriptor(const std::vector<Term>& terms, int check_targets = -1) {
    if (check_targets >= 0) {
      status = culoss_loss_set_int(sum, CULOSS_PARAM_CHECK_TARGETS, check_targets);
      if (status != CULOSS_SUCCESS) {
        error = culoss_last_error();
        return;
      }
    }
    for (const Term& t : terms) {
      Loss term(t.opt.kind);
      status = configure(term, t.opt, &error);
      if (status != CULOSS_SUCCESS) return;
      status = culoss_loss_add_term(sum, term, t.weight);
      if (status != CULOSS_SUCCESS) {
        error = culoss_last_error();
        return;
      }
    }
  }
};

RunResult run_sum(const RegionCase& tensors, const std::vector<Term>& terms,
                  const RunConfig& cfg = RunConfig(), int check_targets = -1) {
  SumDescriptor d(terms, check_targets);
  if (d.status != CULOSS_SUCCESS) {
    RunResult r;
    r.status = d.status;
    r.error = d.error;
    return r;
  }
  RegionCase rc = tensors;
  rc.opt.kind = CULOSS_SUM;  // one-element output
  return run_with(d.sum, rc, cfg);
}

elem_ref::Result sum_reference(const RegionCase& tensors, const std::vector<Term>& terms) {
  std::vector<elem_ref::SumTerm> st;
  for (const Term& t : terms) {
    elem_ref::SumTerm s;
    s.weight = t.weight;
    const RegionCase rc = with_opt(tensors, t.opt);
    if (is_region_kind(t.opt.kind)) {
      s.region = true;
      s.reg = to_spec(rc);
    } else {
      s.elem = to_elem_spec(rc);
    }
    st.push_back(s);
  }
  return elem_ref::sum_reference(st);
}

// The fused SUM against the terms run one by one and against the references.
::testing::AssertionResult sum_matches(const RegionCase& tensors, const std::vector<Term>& terms) {
  const RunResult s = run_sum(tensors, terms, RunConfig(), tensors.opt.check_targets ? 1 : 0);
  if (!s.ok()) return ::testing::AssertionFailure() << "SUM failed: " << s.error;
  if (s.loss.size() != 1)
    return ::testing::AssertionFailure() << "SUM output has " << s.loss.size() << " values";
  double value = 0;
  std::vector<double> grad(tensors.input.size(), 0.0);
  std::ostringstream desc;
  for (const Term& t : terms) {
    const RegionCase rc = with_opt(tensors, t.opt);
    desc << "\n  term w=" << t.weight << ": " << describe_case(rc);
    const RunResult r = run_region(rc);
    if (!r.ok()) return ::testing::AssertionFailure() << "term failed: " << r.error << desc.str();
    value += t.weight * r.loss[0];
    for (size_t i = 0; i < grad.size(); ++i) grad[i] += t.weight * r.grad[i];
  }
  const double gscale = max_abs(grad);
  ::testing::AssertionResult v =
      close_vectors("SUM value vs terms", s.loss, {value}, Tol{1e-12, 1e-12});
  if (!v) return v << desc.str();
  ::testing::AssertionResult g =
      close_vectors("SUM grad vs terms", s.grad, grad, Tol{1e-12, 1e-12 * gscale + 1e-300});
  if (!g) return g << desc.str();
  const elem_ref::Result ref = sum_reference(tensors, terms);
  v = close_vectors("SUM value vs reference", s.loss, ref.values, Tol{1e-9, 1e-9});
  if (!v) return v << desc.str();
  g = close_vectors("SUM grad vs reference", s.grad, ref.grad,
                    Tol{1e-9, 1e-11 * max_abs(ref.grad) + 1e-300});
  if (!g) return g << desc.str();
  return ::testing::AssertionSuccess();
}

// A region term on the tensors' activation/axis/ignore index with random region options.
RegionOptions region_term(culoss_kind kind, const RegionOptions& base, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  RegionOptions o = default_options(kind);
  o.activation = base.activation;
  o.class_axis = base.class_axis;
  o.ignore_index = base.ignore_index;
  o.check_targets = base.check_targets;
  o.reduction = u(rng) < 0.5 ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_SUM;
  o.smooth_nr = o.smooth_dr = u(rng) < 0.5 ? 1e-5 : 1.0;
  o.batch = u(rng) < 0.3;
  if (kind != CULOSS_GENERALIZED_DICE)
    o.average = u(rng) < 0.3 ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
  if (kind == CULOSS_TVERSKY) {
    o.alpha = 0.3 + u(rng);
    o.beta = 0.2 + u(rng);
  }
  if (kind == CULOSS_GENERALIZED_DICE) o.weight_type = static_cast<int>(3 * u(rng)) % 3;
  o.squared = kind == CULOSS_DICE && u(rng) < 0.3;
  return o;
}

// An element-wise term: the generated options, with the reduction MEAN or SUM.
RegionOptions elem_term(RegionOptions o, std::mt19937& rng) {
  if (o.reduction == CULOSS_REDUCTION_NONE)
    o.reduction = rng() % 2 ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_SUM;
  return o;
}

double weight(std::mt19937& rng) { return std::uniform_real_distribution<double>(-2.0, 3.0)(rng); }

// A base case whose tensors suit `kind` with `activation`; target forced when >= 0.
RegionCase tensors_for(std::mt19937& rng, culoss_kind kind, int activation, int target,
                       int pixel_weight = -1) {
  ElemConstraints k;
  k.kind = kind;
  k.activation = activation;
  k.target = target;
  k.pixel_weight = pixel_weight;
  k.max_dim = 4;
  return random_elementwise_case(rng, k);
}

TEST(Sum, DiceAndBCEDenseSigmoid) {
  std::mt19937 rng(601);
  for (int it = 0; it < 30; ++it) {
    const RegionCase t =
        tensors_for(rng, CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, kDenseF64 + it % 5);
    ASSERT_TRUE(sum_matches(t, {{region_term(CULOSS_DICE, t.opt, rng), weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)}}))
        << "iteration " << it;
  }
}

TEST(Sum, DiceAndCrossEntropySoftmaxIndex) {
  std::mt19937 rng(602);
  for (int it = 0; it < 30; ++it) {
    const RegionCase t =
        tensors_for(rng, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX, kIndexU8 + it % 3);
    ASSERT_TRUE(sum_matches(t, {{region_term(CULOSS_DICE, t.opt, rng), weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)}}))
        << "iteration " << it;
  }
}

TEST(Sum, FocalAndTversky) {
  std::mt19937 rng(603);
  for (int it = 0; it < 30; ++it) {
    const int act = it % 2 ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_SOFTMAX;
    const RegionCase t = tensors_for(rng, CULOSS_FOCAL, act, it % 4 < 2 ? -1 : kDenseF32);
    ASSERT_TRUE(sum_matches(t, {{elem_term(t.opt, rng), weight(rng)},
                                {region_term(CULOSS_TVERSKY, t.opt, rng), weight(rng)}}))
        << "iteration " << it;
  }
}

TEST(Sum, GeneralizedDiceAndMarginalCE) {
  std::mt19937 rng(604);
  for (int it = 0; it < 30; ++it) {
    const RegionCase t = tensors_for(rng, CULOSS_MARGINAL_CE, CULOSS_ACTIVATION_SOFTMAX,
                                     it % 3 ? kIndexI64 : kDenseF64);
    ASSERT_TRUE(sum_matches(t, {{region_term(CULOSS_GENERALIZED_DICE, t.opt, rng), weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)}}))
        << "iteration " << it;
  }
}

TEST(Sum, ComboAndFocal) {
  std::mt19937 rng(605);
  for (int it = 0; it < 30; ++it) {
    const RegionCase t = tensors_for(
        rng, CULOSS_COMBO, it % 3 ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_NONE, -1);
    RegionOptions focal = default_options(CULOSS_FOCAL);
    focal.activation = t.opt.activation;
    focal.class_axis = t.opt.class_axis;
    focal.ignore_index = t.opt.ignore_index;
    focal.check_targets = t.opt.check_targets;
    focal.gamma = it % 2 ? 2.0 : 0.5;
    focal.reduction = it % 2;
    ASSERT_TRUE(sum_matches(t, {{t.opt, weight(rng)}, {focal, weight(rng)}})) << "iteration " << it;
  }
}

// MCC (four statistics per class) fused with soft-label Dice and Tversky terms and the
// cross-entropy: statistics rows of mixed widths.
TEST(Sum, MccSoftLabelDiceAndCrossEntropy) {
  std::mt19937 rng(611);
  for (int it = 0; it < 30; ++it) {
    const RegionCase t = tensors_for(rng, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX,
                                     it % 2 ? kIndexU8 + it % 3 : kDenseF64);
    RegionOptions mcc = region_term(CULOSS_MCC, t.opt, rng);
    mcc.soft_label = it % 3 == 0;
    RegionOptions dice = region_term(CULOSS_DICE, t.opt, rng);
    dice.squared = false;
    dice.soft_label = true;
    RegionOptions tversky = region_term(CULOSS_TVERSKY, t.opt, rng);
    tversky.soft_label = it % 2 == 0;
    ASSERT_TRUE(sum_matches(t, {{dice, weight(rng)},
                                {mcc, weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)},
                                {tversky, weight(rng)}}))
        << "iteration " << it;
  }
}

TEST(Sum, MccWithSigmoidAndBce) {
  std::mt19937 rng(612);
  for (int it = 0; it < 20; ++it) {
    const RegionCase t = tensors_for(rng, CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, kDenseF64 + it % 5);
    RegionOptions mcc = region_term(CULOSS_MCC, t.opt, rng);
    mcc.soft_label = it % 2 == 1;
    ASSERT_TRUE(sum_matches(t, {{mcc, weight(rng)}, {elem_term(t.opt, rng), weight(rng)}}))
        << "iteration " << it;
  }
}

// Binary terms on a binary mask (C = 1, index labels) with ignored pixels and pixel weights.
TEST(Sum, BinaryMaskWithIgnoreIndexAndPixelWeights) {
  std::mt19937 rng(606);
  for (int it = 0; it < 30; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.activation = CULOSS_ACTIVATION_SIGMOID;
    k.target = kIndexU8 + it % 3;
    k.ignored = 1;
    k.pixel_weight = 1;
    k.max_dim = 4;
    const RegionCase t = random_elementwise_case(rng, k);
    RegionOptions focal = default_options(CULOSS_FOCAL);
    focal.class_axis = t.opt.class_axis;
    focal.ignore_index = t.opt.ignore_index;
    focal.check_targets = t.opt.check_targets;
    ASSERT_TRUE(sum_matches(t, {{region_term(CULOSS_DICE, t.opt, rng), weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)},
                                {focal, weight(rng)},
                                {region_term(CULOSS_JACCARD, t.opt, rng), weight(rng)}}))
        << "iteration " << it;
  }
}

// Softmax-style terms with ignored pixels and pixel weights, up to 8 terms.
TEST(Sum, ManySoftmaxTermsWithIgnoreIndexAndPixelWeights) {
  std::mt19937 rng(607);
  for (int it = 0; it < 20; ++it) {
    ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.target = kIndexI32;
    k.ignored = 1;
    k.pixel_weight = 1;
    k.max_dim = 4;
    const RegionCase t = random_elementwise_case(rng, k);
    RegionOptions focal = default_options(CULOSS_FOCAL);
    focal.activation = CULOSS_ACTIVATION_SOFTMAX;
    focal.class_axis = t.opt.class_axis;
    focal.ignore_index = t.opt.ignore_index;
    focal.check_targets = t.opt.check_targets;
    focal.gamma = 1.5;
    RegionOptions marginal = default_options(CULOSS_MARGINAL_CE);
    marginal.class_axis = t.opt.class_axis;
    marginal.ignore_index = t.opt.ignore_index;
    marginal.check_targets = t.opt.check_targets;
    marginal.reduction = CULOSS_REDUCTION_SUM;
    std::vector<Term> terms = {{elem_term(t.opt, rng), weight(rng)},
                               {focal, weight(rng)},
                               {marginal, weight(rng)},
                               {region_term(CULOSS_DICE, t.opt, rng), weight(rng)},
                               {region_term(CULOSS_JACCARD, t.opt, rng), weight(rng)},
                               {region_term(CULOSS_TVERSKY, t.opt, rng), weight(rng)},
                               {region_term(CULOSS_FOCAL_TVERSKY, t.opt, rng), weight(rng)},
                               {region_term(CULOSS_GENERALIZED_DICE, t.opt, rng), weight(rng)}};
    terms.resize(static_cast<size_t>(2 + it % 7));
    ASSERT_TRUE(sum_matches(t, terms)) << "iteration " << it << " terms " << terms.size();
  }
}

// Negative and zero weights.
TEST(Sum, NegativeAndZeroWeights) {
  std::mt19937 rng(608);
  const RegionCase t = tensors_for(rng, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX, kIndexI64);
  const RegionOptions dice = region_term(CULOSS_DICE, t.opt, rng), ce = elem_term(t.opt, rng);
  ASSERT_TRUE(sum_matches(t, {{dice, -1.0}, {ce, -2.5}}));
  ASSERT_TRUE(sum_matches(t, {{dice, 0.0}, {ce, 1.0}}));
  // w · X − w · X = 0.
  const RunResult r = run_sum(t, {{ce, 1.75}, {ce, -1.75}});
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NEAR(r.loss[0], 0.0, 1e-15);
  EXPECT_LE(max_abs(r.grad), 1e-15);
}

// A SUM added to a SUM is flattened: weights multiply.
TEST(Sum, SumOfSumFlattens) {
  std::mt19937 rng(609);
  for (int it = 0; it < 10; ++it) {
    const RegionCase t = tensors_for(rng, CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, kDenseF64);
    const RegionOptions dice = region_term(CULOSS_DICE, t.opt, rng), bce = elem_term(t.opt, rng);
    RegionOptions focal = default_options(CULOSS_FOCAL);
    focal.class_axis = t.opt.class_axis;
    const double a = weight(rng), b = weight(rng), c = weight(rng), d = weight(rng);
    SumDescriptor inner({{dice, a}, {bce, b}});
    ASSERT_EQ(inner.status, CULOSS_SUCCESS) << inner.error;
    Loss outer(CULOSS_SUM);
    Loss f(CULOSS_FOCAL);
    ASSERT_EQ(configure(f, focal), CULOSS_SUCCESS);
    ASSERT_EQ(culoss_loss_add_term(outer, inner.sum, c), CULOSS_SUCCESS) << culoss_last_error();
    ASSERT_EQ(culoss_loss_add_term(outer, f, d), CULOSS_SUCCESS);
    RegionCase rc = t;
    rc.opt.kind = CULOSS_SUM;
    const RunResult nested = run_with(outer, rc);
    ASSERT_TRUE(nested.ok()) << nested.error;
    const RunResult flat = run_sum(t, {{dice, c * a}, {bce, c * b}, {focal, d}});
    ASSERT_TRUE(flat.ok()) << flat.error;
    EXPECT_TRUE(close_vectors("value", nested.loss, flat.loss, Tol{1e-14, 1e-14}));
    EXPECT_TRUE(close_vectors("grad", nested.grad, flat.grad,
                              Tol{1e-14, 1e-14 * max_abs(flat.grad) + 1e-300}));
    ASSERT_TRUE(sum_matches(t, {{dice, c * a}, {bce, c * b}, {focal, d}}));
  }
  // Flattening counts terms: a SUM of 5 added to a SUM of 4 is 9 terms.
  const RegionCase t = tensors_for(rng, CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, kDenseF64);
  const RegionOptions bce = elem_term(t.opt, rng);
  SumDescriptor five({{bce, 1}, {bce, 1}, {bce, 1}, {bce, 1}, {bce, 1}});
  SumDescriptor four({{bce, 1}, {bce, 1}, {bce, 1}, {bce, 1}});
  ASSERT_EQ(culoss_loss_add_term(four.sum, five.sum, 1.0), CULOSS_SUCCESS);
  RegionCase rc = t;
  rc.opt.kind = CULOSS_SUM;
  EXPECT_EQ(run_with(four.sum, rc).status, CULOSS_ERROR_NOT_SUPPORTED);
}

// A caller workspace of exactly the reported size gives the same bytes as NULL; one byte less is
// refused; the float32 loss_out and gradient, in place.
TEST(Sum, WorkspaceAndOutputs) {
  std::mt19937 rng(610);
  for (int it = 0; it < 20; ++it) {
    const RegionCase t = tensors_for(rng, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX,
                                     it % 2 ? kIndexU8 : kDenseF64);
    const std::vector<Term> terms = {{region_term(CULOSS_DICE, t.opt, rng), 0.7},
                                     {elem_term(t.opt, rng), 1.3}};
    RunConfig exact;
    exact.workspace = RunConfig::kExact;
    const RunResult a = run_sum(t, terms), b = run_sum(t, terms, exact);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.loss_bytes, b.loss_bytes);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes);
    EXPECT_TRUE(b.workspace_guard_ok);
    RunConfig shrt;
    shrt.workspace = RunConfig::kShort;
    // culoss_workspace_size also covers the statistics API, which may need more than compute:
    // a byte less is then still enough. Either way it is never misused.
    const culoss_status short_status = run_sum(t, terms, shrt).status;
    EXPECT_TRUE(short_status == CULOSS_SUCCESS ||
                short_status == CULOSS_ERROR_INSUFFICIENT_WORKSPACE);
    RunConfig inplace;
    inplace.in_place = true;
    const RunResult c = run_sum(t, terms, inplace);
    ASSERT_TRUE(c.ok()) << c.error;
    EXPECT_EQ(a.grad_bytes, c.grad_bytes);
    RunConfig f32;
    f32.grad_f32 = true;
    f32.loss_dtype = testing_util::f32();
    f32.scalar_as_1d = true;
    const RunResult d = run_sum(t, terms, f32);
    ASSERT_TRUE(d.ok()) << d.error;
    EXPECT_TRUE(close_vectors("f32 grad", d.grad, a.grad, Tol{1e-6, 1e-6 * max_abs(a.grad)}));
    EXPECT_NEAR(d.loss[0], a.loss[0], 1e-6 * (1 + std::fabs(a.loss[0])));
    const RunResult e = run_sum(t, terms), f = run_sum(t, terms);  // deterministic
    EXPECT_EQ(e.loss_bytes, f.loss_bytes);
    EXPECT_EQ(e.grad_bytes, f.grad_bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// Refusals.

RegionCase small_softmax_case() {
  RegionCase rc;
  rc.opt = default_options(CULOSS_CROSS_ENTROPY);
  rc.shape = {2, 3, 4};
  rc.input.resize(24);
  for (size_t i = 0; i < rc.input.size(); ++i) rc.input[i] = std::cos(0.7 * static_cast<double>(i));
  rc.index_target = true;
  rc.labels = {0, 1, 2, 1, 2, 2, 0, -100};
  rc.target_dtype = testing_util::i64();
  return rc;
}

TEST(SumRefusals, TermWithReductionNone) {
  Loss sum(CULOSS_SUM);
  for (int kind :
       {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_DICE, CULOSS_MARGINAL_CE, CULOSS_FOCAL}) {
    Loss term(static_cast<culoss_kind>(kind));
    ASSERT_EQ(culoss_loss_set_int(term, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE),
              CULOSS_SUCCESS);
    EXPECT_EQ(culoss_loss_add_term(sum, term, 1.0), CULOSS_ERROR_INVALID_ARGUMENT) << kind;
    EXPECT_NE(std::string(culoss_last_error()), "");
  }
  // The SUM itself has no REDUCTION.
  EXPECT_EQ(culoss_loss_set_int(sum, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE),
            CULOSS_ERROR_INVALID_ARGUMENT);
  // A non-finite weight, a SUM added to itself, add_term on a non-SUM.
  Loss ce(CULOSS_CROSS_ENTROPY);
  EXPECT_EQ(culoss_loss_add_term(sum, ce, NAN), CULOSS_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(culoss_loss_add_term(sum, sum, 1.0), CULOSS_ERROR_INVALID_ARGUMENT);
  Loss other(CULOSS_DICE);
  EXPECT_EQ(culoss_loss_add_term(other, ce, 1.0), CULOSS_ERROR_INVALID_ARGUMENT);
}

TEST(SumRefusals, EmptySum) {
  Loss sum(CULOSS_SUM);
  RegionCase rc = small_softmax_case();
  rc.opt.kind = CULOSS_SUM;
  EXPECT_EQ(run_with(sum, rc).status, CULOSS_ERROR_INVALID_ARGUMENT);
}

// At most 8 terms (COMBO counts 2): more is refused by compute with NOT_SUPPORTED.
TEST(SumRefusals, MoreThanEightTerms) {
  RegionCase rc = small_softmax_case();
  const RegionOptions ce = rc.opt;
  std::vector<Term> terms(8, Term{ce, 0.5});
  EXPECT_TRUE(run_sum(rc, terms).ok());
  terms.push_back(Term{ce, 0.5});
  const RunResult r = run_sum(rc, terms);
  EXPECT_EQ(r.status, CULOSS_ERROR_NOT_SUPPORTED) << r.error;
  EXPECT_NE(r.error, "");

  // COMBO counts 2: four COMBOs fit, four COMBOs and a BCE do not (dense binary targets).
  RegionCase bin;
  bin.opt = default_options(CULOSS_COMBO);
  bin.shape = {2, 2, 3};
  bin.input.assign(12, 0.3);
  bin.target = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 1};
  const RegionOptions combo = bin.opt;
  std::vector<Term> combos(4, Term{combo, 1.0});
  EXPECT_TRUE(run_sum(bin, combos).ok());
  combos.push_back(Term{default_options(CULOSS_BCE), 1.0});
  EXPECT_EQ(run_sum(bin, combos).status, CULOSS_ERROR_NOT_SUPPORTED);
}

TEST(SumRefusals, TermsMustShareClassAxisAndIgnoreIndex) {
  RegionCase rc = small_softmax_case();
  RegionOptions a = rc.opt, b = default_options(CULOSS_DICE);
  b.class_axis = -2;  // the same axis for this 3-d input, written from the end: accepted
  RunResult r = run_sum(rc, {{a, 1.0}, {b, 1.0}});
  EXPECT_TRUE(r.ok()) << r.error;
  b.class_axis = 2;  // a different axis: refused
  r = run_sum(rc, {{a, 1.0}, {b, 1.0}});
  EXPECT_EQ(r.status, CULOSS_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(r.error.find("CLASS_AXIS"), std::string::npos) << r.error;
  b.class_axis = 1;
  b.ignore_index = 255;
  r = run_sum(rc, {{a, 1.0}, {b, 1.0}});
  EXPECT_EQ(r.status, CULOSS_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(r.error.find("IGNORE_INDEX"), std::string::npos) << r.error;
  b.ignore_index = -100;
  EXPECT_TRUE(run_sum(rc, {{a, 1.0}, {b, 1.0}}).ok());
}

// Binary (sigmoid-style) and softmax-style terms may not share class-index targets; with a dense
// target they may.
TEST(SumRefusals, BinaryAndSoftmaxTermsOnIndexTargets) {
  RegionCase rc = small_softmax_case();
  RegionOptions ce = rc.opt;
  RegionOptions bce = default_options(CULOSS_BCE);
  RunResult r = run_sum(rc, {{ce, 1.0}, {bce, 1.0}});
  EXPECT_EQ(r.status, CULOSS_ERROR_INVALID_ARGUMENT) << r.error;
  RegionOptions dice_sig = default_options(CULOSS_DICE);
  dice_sig.activation = CULOSS_ACTIVATION_SIGMOID;
  EXPECT_EQ(run_sum(rc, {{ce, 1.0}, {dice_sig, 1.0}}).status, CULOSS_ERROR_INVALID_ARGUMENT);
  // Also with C = 1 (where the binary terms alone would read the labels as a mask).
  RegionCase one;
  one.opt = default_options(CULOSS_CROSS_ENTROPY);
  one.shape = {2, 1, 3};
  one.input = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  one.index_target = true;
  one.labels = {0, 0, 0, 0, 0, 0};
  one.target_dtype = testing_util::u8();
  EXPECT_EQ(run_sum(one, {{one.opt, 1.0}, {bce, 1.0}}).status, CULOSS_ERROR_INVALID_ARGUMENT);
  one.labels = {0, 1, 1, 0, 1, 0};  // a binary mask: binary terms alone are fine
  EXPECT_TRUE(run_sum(one, {{bce, 1.0}, {dice_sig, 1.0}}).ok());
  // Dense one-hot targets: mixing is fine.
  RegionCase d = rc;
  d.index_target = false;
  d.target.assign(24, 0.0);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t lab = rc.labels[static_cast<size_t>(n * 4 + i)];
      if (lab >= 0) d.target[static_cast<size_t>((n * 3 + lab) * 4 + i)] = 1.0;
    }
  d.target_dtype = testing_util::f32();
  ASSERT_TRUE(sum_matches(d, {{ce, 1.0}, {bce, 0.5}, {dice_sig, 2.0}}));
}

// add_term copies: later changes to (or destruction of) the term do not reach the sum.
TEST(SumRefusals, TermsAreCopied) {
  RegionCase rc = small_softmax_case();
  Loss sum(CULOSS_SUM);
  culoss_loss term = nullptr;
  ASSERT_EQ(culoss_loss_create(&term, CULOSS_CROSS_ENTROPY), CULOSS_SUCCESS);
  const double w[] = {1.0, 2.0, 3.0};
  ASSERT_EQ(culoss_loss_set_floats(term, CULOSS_PARAM_CLASS_WEIGHTS, w, 3), CULOSS_SUCCESS);
  ASSERT_EQ(culoss_loss_add_term(sum, term, 2.0), CULOSS_SUCCESS);
  RegionCase srow = rc;
  srow.opt.kind = CULOSS_SUM;
  const RunResult before = run_with(sum, srow);
  ASSERT_TRUE(before.ok()) << before.error;
  // Change the term: weights, reduction, label smoothing, even an invalid class axis.
  const double w2[] = {5.0, 0.0, 1.0};
  ASSERT_EQ(culoss_loss_set_floats(term, CULOSS_PARAM_CLASS_WEIGHTS, w2, 3), CULOSS_SUCCESS);
  ASSERT_EQ(culoss_loss_set_int(term, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM),
            CULOSS_SUCCESS);
  ASSERT_EQ(culoss_loss_set_float(term, CULOSS_PARAM_LABEL_SMOOTHING, 0.4), CULOSS_SUCCESS);
  ASSERT_EQ(culoss_loss_set_int(term, CULOSS_PARAM_CLASS_AXIS, 5), CULOSS_SUCCESS);
  const RunResult after = run_with(sum, srow);
  ASSERT_TRUE(after.ok()) << after.error;
  EXPECT_EQ(before.loss_bytes, after.loss_bytes);
  EXPECT_EQ(before.grad_bytes, after.grad_bytes);
  ASSERT_EQ(culoss_loss_destroy(term), CULOSS_SUCCESS);
  const RunResult destroyed = run_with(sum, srow);
  ASSERT_TRUE(destroyed.ok()) << destroyed.error;
  EXPECT_EQ(before.loss_bytes, destroyed.loss_bytes);
  // And the value is 2 × the weighted CE.
  RegionCase ce = rc;
  ce.opt.class_weights = {1.0, 2.0, 3.0};
  const RunResult one = run_region(ce);
  ASSERT_TRUE(one.ok());
  EXPECT_NEAR(before.loss[0], 2.0 * one.loss[0], 1e-14);
}

// The SUM's own CHECK_TARGETS decides the target check, not its terms'.
TEST(SumRefusals, SumCheckTargetsDecides) {
  RegionCase rc = small_softmax_case();
  rc.labels[3] = 7;  // out of range
  RegionOptions ce = rc.opt;
  ce.check_targets = true;
  EXPECT_EQ(run_sum(rc, {{ce, 1.0}}).status, CULOSS_ERROR_INVALID_TARGET);
  EXPECT_EQ(run_sum(rc, {{ce, 1.0}}, RunConfig(), 1).status, CULOSS_ERROR_INVALID_TARGET);
  const RunResult unchecked = run_sum(rc, {{ce, 1.0}}, RunConfig(), 0);
  ASSERT_TRUE(unchecked.ok()) << unchecked.error;
  // The bad label counts as ignored: the same as labelling it IGNORE_INDEX.
  RegionCase ign = rc;
  ign.labels[3] = -100;
  const RunResult ignored = run_sum(ign, {{ce, 1.0}});
  ASSERT_TRUE(ignored.ok());
  EXPECT_EQ(unchecked.loss_bytes, ignored.loss_bytes);
  EXPECT_EQ(unchecked.grad_bytes, ignored.grad_bytes);
  ce.check_targets = false;
  EXPECT_EQ(run_sum(rc, {{ce, 1.0}}, RunConfig(), 1).status, CULOSS_ERROR_INVALID_TARGET);
}

}  // namespace

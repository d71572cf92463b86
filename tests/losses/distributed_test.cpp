// Data parallelism through the statistics API (culoss_stats_size, culoss_compute_stats,
// culoss_compute_from_stats) on the CPU backend: random global batches of every kind and a spread
// of options are split into 1 to 4 shards along N (unequal sizes, single images); each simulated
// rank computes its statistics, the vectors are summed, each rank finishes from the sum, and the
// loss (the same bits on every rank) and the concatenated gradient must equal one culoss_compute
// call on the whole batch (float64: within ~1e-12 relative). NONE writes the shard's own rows.
// Also: the statistics count does not depend on N, the refusals of the statistics tensor, pooled
// Lovász refused, a caller workspace of culoss_workspace_size bytes for all three calls.
//
// The comparison machinery is tests/losses/distributed_harness.hpp (shared with the CUDA test).
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "losses/distributed_harness.hpp"
#include "losses/elementwise_check.hpp"
#include "losses/lovasz_harness.hpp"
#include "losses/region_harness.hpp"
#include "losses/region_random.hpp"

namespace {

using dist_test::Batch;
using dist_test::check_split;
using dist_test::CheckTols;
using dist_test::CpuRunner;
using dist_test::splits_for;
using dist_test::SplitResult;
using region_test::RegionCase;
using region_test::RegionOptions;
using testing_util::Loss;
using testing_util::TestTensor;

// float64 everywhere: the loss within 1e-12 relative (plus 1e-13 of its largest magnitude, for
// values that cancel), the gradient the same element-wise against its largest magnitude.
CheckTols f64_tols() {
  CheckTols t;
  t.loss = dist_test::Tol{1e-12, 1e-13};
  t.grad = dist_test::Tol{1e-12, 1e-13};
  return t;
}

// The tensors of a RegionCase (as region_harness.hpp's run_with builds them) as a Batch.
Batch batch_of(const RegionCase& rc) {
  using region_test::without_axis;
  Batch b;
  b.input = TestTensor(rc.shape, rc.input_dtype);
  for (int64_t i = 0; i < b.input.numel(); ++i) b.input.set(i, rc.input[static_cast<size_t>(i)]);
  if (rc.index_target) {
    b.target = TestTensor(without_axis(rc.shape, rc.opt.class_axis), rc.target_dtype);
    for (int64_t i = 0; i < b.target.numel(); ++i) {
      const int64_t lab = rc.labels[static_cast<size_t>(i)];
      if (rc.target_dtype.code == kDLInt && rc.target_dtype.bits == 64)
        std::memcpy(b.target.bytes.data() + 8 * i, &lab, 8);
      else
        b.target.set(i, static_cast<double>(lab));
    }
  } else {
    b.target = TestTensor(rc.shape, rc.target_dtype);
    for (int64_t i = 0; i < b.target.numel(); ++i) b.target.set(i, rc.target[static_cast<size_t>(i)]);
  }
  b.has_weight = !rc.pixel_weight.empty();
  if (b.has_weight) {
    b.weight = TestTensor(without_axis(rc.shape, rc.opt.class_axis), testing_util::f32());
    for (int64_t i = 0; i < b.weight.numel(); ++i) b.weight.set(i, rc.pixel_weight[static_cast<size_t>(i)]);
  }
  b.loss_shape = [rc](int64_t n) {
    RegionCase c = rc;
    c.shape[0] = n;
    return region_test::loss_shape(c);
  };
  b.grad_dtype = rc.input_dtype;
  b.grad_scale = rc.grad_scale;
  b.what = region_test::describe_case(rc);
  return b;
}

// The tensors of a Lovász case as a Batch.
Batch batch_of(const lovasz_test::LData& d) {
  Batch b;
  b.input = d.input;
  b.target = d.target;
  b.has_weight = d.has_weight;
  if (d.has_weight) b.weight = d.weight;
  const lovasz_test::LCase c = d.c;
  const int64_t C = d.C;
  b.loss_shape = [c, C](int64_t n) { return lovasz_test::loss_shape_of(c, n, C); };
  b.loss_dtype = c.loss_dtype;
  b.grad_dtype = lovasz_test::grad_dtype(c);
  b.grad_scale = c.grad_scale;
  b.what = lovasz_test::describe(c);
  return b;
}

// Runs every split of `splits_for` on the case (a configured descriptor) and expects success.
::testing::AssertionResult all_splits(culoss_loss h, const Batch& b, std::mt19937& rng,
                                      const CheckTols& tol = f64_tols(), int max_splits = 4) {
  CpuRunner run;
  for (const std::vector<int64_t>& s : splits_for(b.N(), rng, max_splits)) {
    ::testing::AssertionResult r = check_split(h, b, s, run, tol);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult region_case_ok(const RegionCase& rc, std::mt19937& rng,
                                          const CheckTols& tol = f64_tols()) {
  Loss h(rc.opt.kind);
  std::string err;
  if (region_test::configure(h, rc.opt, &err) != CULOSS_SUCCESS)
    return ::testing::AssertionFailure() << "configure: " << err << "\n  case: "
                                         << region_test::describe_case(rc);
  return all_splits(h, batch_of(rc), rng, tol);
}

int uni(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
double real(std::mt19937& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

const culoss_kind kRegionKinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY,
                                    CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE};

// ---------------------------------------------------------------------------------------------
// Region losses
// ---------------------------------------------------------------------------------------------

TEST(Distributed, RegionKindsRandom) {
  for (culoss_kind kind : kRegionKinds) {
    std::mt19937 rng(7000 + kind);
    for (int it = 0; it < 150; ++it) {
      region_test::RegionConstraints k;
      k.kind = kind;
      k.N = uni(rng, 1, 5);
      if (it % 10 == 9) k.max_dim = 24;  // larger images: longer sums
      const RegionCase rc = region_test::random_region_case(rng, k);
      ASSERT_TRUE(region_case_ok(rc, rng)) << "kind " << kind << " iteration " << it;
    }
  }
}

// Every kind × BATCH × AVERAGE × reduction × layout, cycling SKIP_EMPTY, INCLUDE_BACKGROUND,
// pixel weights and index/dense targets; the rest random.
TEST(Distributed, RegionOptionGrid) {
  std::mt19937 rng(7100);
  const int layouts[] = {region_test::kLayoutNC, region_test::kLayoutNCHW, region_test::kLayoutNHWC};
  int cycle = 0;
  for (culoss_kind kind : kRegionKinds)
    for (int batch = 0; batch < 2; ++batch)
      for (int average = 0; average < 2; ++average) {
        if (kind == CULOSS_GENERALIZED_DICE && average == CULOSS_AVERAGE_MICRO) continue;
        for (int reduction = 0; reduction < 3; ++reduction)
          for (int layout : layouts) {
            ++cycle;
            region_test::RegionConstraints k;
            k.kind = kind;
            k.batch = batch;
            k.average = average;
            k.reduction = reduction;
            k.layout = layout;
            k.N = uni(rng, 2, 5);
            k.C = uni(rng, 2, 4);
            k.pixel_weight = cycle % 2;
            const bool index = (cycle / 2) % 2 == 0;
            k.target = index ? region_test::kIndexU8 + cycle % 3 : region_test::kDenseF64 + cycle % 5;
            k.activation = index ? (cycle % 3 == 0 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX)
                                 : cycle % 3;
            RegionCase rc = region_test::random_region_case(rng, k);
            rc.opt.skip_empty = (cycle / 4) % 2 == 1;
            rc.opt.include_background = (cycle / 8) % 2 == 1 || region_test::num_classes(rc) == 1;
            ASSERT_TRUE(region_case_ok(rc, rng)) << "grid case " << cycle;
          }
      }
}

// BATCH=1 with empty classes in some shards and SKIP_EMPTY: emptiness is decided globally.
TEST(Distributed, RegionBatchStatisticsWithShardEmptyClasses) {
  std::mt19937 rng(7200);
  for (culoss_kind kind : kRegionKinds)
    for (int it = 0; it < 8; ++it) {
      region_test::RegionConstraints k;
      k.kind = kind;
      k.N = 4;
      k.C = 3;
      k.batch = it % 2;
      k.target = region_test::kIndexI64;
      k.activation = CULOSS_ACTIVATION_SOFTMAX;
      k.reduction = it / 2 % 3;
      k.layout = region_test::kLayoutNCHW;
      RegionCase rc = region_test::random_region_case(rng, k);
      rc.opt.skip_empty = true;
      rc.opt.check_targets = true;
      rc.opt.ignore_index = -100;
      // Class 2 only in image 3, class 1 never in images 0-1.
      const int64_t P = static_cast<int64_t>(rc.labels.size()) / 4;
      for (int64_t n = 0; n < 4; ++n)
        for (int64_t q = 0; q < P; ++q) {
          int64_t& lab = rc.labels[static_cast<size_t>(n * P + q)];
          if (lab == 2 && n != 3) lab = 0;
          if (lab == 1 && n < 2) lab = 0;
          if (lab < 0 || lab > 2) lab = 0;
        }
      ASSERT_TRUE(region_case_ok(rc, rng)) << "kind " << kind << " iteration " << it;
    }
}

// ---------------------------------------------------------------------------------------------
// Element-wise losses
// ---------------------------------------------------------------------------------------------

::testing::AssertionResult elem_case_ok(const RegionCase& rc, std::mt19937& rng) {
  return region_case_ok(rc, rng);
}

TEST(Distributed, ElementwiseKindsRandom) {
  for (int kind : region_test::kElementwiseKinds)
    for (int reduction = 0; reduction < 3; ++reduction) {
      if (kind == CULOSS_COMBO && reduction != CULOSS_REDUCTION_MEAN) continue;
      std::mt19937 rng(7300 + 10 * kind + reduction);
      for (int it = 0; it < 80; ++it) {
        region_test::ElemConstraints k;
        k.kind = kind;
        k.reduction = reduction;
        k.N = uni(rng, 1, 5);
        if (it % 10 == 9) k.max_dim = 20;  // larger images: longer sums
        const RegionCase rc = region_test::random_elementwise_case(rng, k);
        ASSERT_TRUE(elem_case_ok(rc, rng)) << "kind " << kind << " reduction " << reduction
                                           << " iteration " << it;
      }
    }
}

TEST(Distributed, BceBatchFrequencyAndPosWeight) {
  std::mt19937 rng(7400);
  for (int it = 0; it < 90; ++it) {
    region_test::ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.reduction = it % 3;
    k.N = uni(rng, 2, 5);
    k.target = it % 4 == 0 ? region_test::kIndexU8 + it % 3 : region_test::kDenseF64 + it % 5;
    k.layout = it % 7;
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    const int64_t C = region_test::num_classes(rc);
    rc.opt.class_balance = it % 3 == 2 ? CULOSS_BALANCE_NONE : CULOSS_BALANCE_BATCH_FREQUENCY;
    rc.opt.pos_weight.assign(static_cast<size_t>(C), 0.0);
    for (double& w : rc.opt.pos_weight) w = real(rng, 0.2, 4.0);
    if (it % 2) rc.opt.label_smoothing = 0.1;
    ASSERT_TRUE(elem_case_ok(rc, rng)) << "iteration " << it;
  }
}

TEST(Distributed, CrossEntropyClassWeightsIgnoreAndLabelSmoothing) {
  std::mt19937 rng(7500);
  for (int it = 0; it < 90; ++it) {
    region_test::ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.reduction = it % 3;
    k.N = uni(rng, 2, 5);
    const bool index = it % 3 != 2;
    k.target = index ? region_test::kIndexU8 + it % 3 : region_test::kDenseF64 + it % 5;
    k.ignored = index ? 1 : -1;
    k.class_weights = 1;
    k.C = uni(rng, 2, 5);
    k.layout = it % 7;
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    rc.opt.label_smoothing = it % 4 == 0 ? 0.0 : real(rng, 0.0, 0.5);
    ASSERT_TRUE(elem_case_ok(rc, rng)) << "iteration " << it;
  }
}

// Every image's labels ignored in one shard: that rank contributes nothing to the divisor.
TEST(Distributed, CrossEntropyShardEntirelyIgnored) {
  std::mt19937 rng(7550);
  for (int it = 0; it < 6; ++it) {
    region_test::ElemConstraints k;
    k.kind = it < 3 ? CULOSS_CROSS_ENTROPY : CULOSS_MARGINAL_CE;
    k.reduction = it % 3;
    k.N = 4;
    k.target = region_test::kIndexI64;
    k.check_off = 0;
    k.layout = region_test::kLayoutNCHW;
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    const size_t per = rc.labels.size() / 4;
    for (size_t i = 0; i < 2 * per; ++i) rc.labels[i] = rc.opt.ignore_index;
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    CpuRunner run;
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{2, 2}, {1, 1, 2}, {2, 1, 1}})
      ASSERT_TRUE(check_split(h, batch_of(rc), s, run, f64_tols())) << "iteration " << it;
  }
}

TEST(Distributed, FocalSigmoidSoftmaxAndProbabilities) {
  std::mt19937 rng(7600);
  for (int it = 0; it < 90; ++it) {
    region_test::ElemConstraints k;
    k.kind = CULOSS_FOCAL;
    k.activation = it % 3;
    k.reduction = (it / 3) % 3;
    k.N = uni(rng, 1, 5);
    k.class_weights = it % 2;
    const RegionCase rc = region_test::random_elementwise_case(rng, k);
    ASSERT_TRUE(elem_case_ok(rc, rng)) << "iteration " << it;
  }
}

TEST(Distributed, ComboRegionOptions) {
  std::mt19937 rng(7700);
  for (int it = 0; it < 80; ++it) {
    region_test::ElemConstraints k;
    k.kind = CULOSS_COMBO;
    k.N = uni(rng, 2, 5);
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    rc.opt.batch = it % 2;
    rc.opt.average = (it / 2) % 2;
    rc.opt.skip_empty = (it / 4) % 2;
    ASSERT_TRUE(elem_case_ok(rc, rng)) << "iteration " << it;
  }
}

TEST(Distributed, MarginalCrossEntropy) {
  std::mt19937 rng(7800);
  for (int it = 0; it < 60; ++it) {
    region_test::ElemConstraints k;
    k.kind = CULOSS_MARGINAL_CE;
    k.reduction = it % 3;
    k.N = uni(rng, 2, 5);
    k.pixel_weight = (it / 3) % 2;
    const RegionCase rc = region_test::random_elementwise_case(rng, k);
    ASSERT_TRUE(elem_case_ok(rc, rng)) << "iteration " << it;
  }
}

// ---------------------------------------------------------------------------------------------
// Sums of region and element-wise terms
// ---------------------------------------------------------------------------------------------

struct Term {
  RegionOptions opt;
  double weight = 1.0;
};

// A region term on the tensors' activation / axis / ignore index, random region options.
RegionOptions region_term(culoss_kind kind, const RegionOptions& base, std::mt19937& rng) {
  RegionOptions o = region_test::default_options(kind);
  o.activation = base.activation;
  o.class_axis = base.class_axis;
  o.ignore_index = base.ignore_index;
  o.check_targets = base.check_targets;
  o.reduction = uni(rng, 0, 1);
  o.smooth_nr = o.smooth_dr = uni(rng, 0, 1) ? 1e-5 : 1.0;
  o.batch = real(rng, 0, 1) < 0.4;
  o.skip_empty = real(rng, 0, 1) < 0.3;
  o.include_background = real(rng, 0, 1) < 0.7;
  if (kind != CULOSS_GENERALIZED_DICE) o.average = real(rng, 0, 1) < 0.3 ? 1 : 0;
  if (kind == CULOSS_TVERSKY || kind == CULOSS_FOCAL_TVERSKY) {
    o.alpha = real(rng, 0.1, 1.0);
    o.beta = real(rng, 0.1, 1.0);
  }
  if (kind == CULOSS_GENERALIZED_DICE) o.weight_type = uni(rng, 0, 2);
  o.squared = (kind == CULOSS_DICE || kind == CULOSS_JACCARD) && real(rng, 0, 1) < 0.3;
  return o;
}

// An element-wise term: the generated case's options with MEAN or SUM.
RegionOptions elem_term(RegionOptions o, std::mt19937& rng) {
  if (o.reduction == CULOSS_REDUCTION_NONE) o.reduction = uni(rng, 0, 1);
  return o;
}

::testing::AssertionResult sum_case_ok(const RegionCase& tensors, const std::vector<Term>& terms,
                                       std::mt19937& rng) {
  Loss sum(CULOSS_SUM);
  std::string desc;
  if (culoss_loss_set_int(sum, CULOSS_PARAM_CHECK_TARGETS, tensors.opt.check_targets ? 1 : 0) !=
      CULOSS_SUCCESS)
    return ::testing::AssertionFailure() << culoss_last_error();
  for (const Term& t : terms) {
    Loss term(t.opt.kind);
    std::string err;
    if (region_test::configure(term, t.opt, &err) != CULOSS_SUCCESS)
      return ::testing::AssertionFailure() << "term: " << err;
    if (culoss_loss_add_term(sum, term, t.weight) != CULOSS_SUCCESS)
      return ::testing::AssertionFailure() << "add_term: " << culoss_last_error();
    RegionCase rc = tensors;
    rc.opt = t.opt;
    desc += "\n  term w=" + std::to_string(t.weight) + ": " + region_test::describe_case(rc);
  }
  RegionCase rc = tensors;
  rc.opt.kind = CULOSS_SUM;  // one-element output
  Batch b = batch_of(rc);
  b.what += desc;
  return all_splits(sum, b, rng);
}

RegionCase sum_tensors(std::mt19937& rng, culoss_kind kind, int activation, int target) {
  region_test::ElemConstraints k;
  k.kind = kind;
  k.activation = activation;
  k.target = target;
  k.max_dim = 4;
  k.N = uni(rng, 2, 5);
  return region_test::random_elementwise_case(rng, k);
}

double weight(std::mt19937& rng) { return real(rng, -2.0, 3.0); }

TEST(Distributed, SumDiceAndCrossEntropy) {
  std::mt19937 rng(7900);
  for (int it = 0; it < 40; ++it) {
    const RegionCase t = sum_tensors(rng, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX,
                                     it % 2 ? region_test::kIndexU8 + it % 3 : region_test::kDenseF64);
    ASSERT_TRUE(sum_case_ok(t, {{region_term(CULOSS_DICE, t.opt, rng), weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)}}, rng))
        << "iteration " << it;
  }
}

TEST(Distributed, SumBinaryTermsDense) {
  // Dice + BCE (batch frequency, pos weight) + sigmoid focal on a dense multi-label target.
  std::mt19937 rng(7901);
  for (int it = 0; it < 40; ++it) {
    RegionCase t = sum_tensors(rng, CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, region_test::kDenseF64 + it % 5);
    RegionOptions bce = elem_term(t.opt, rng);
    bce.class_balance = it % 2 ? CULOSS_BALANCE_BATCH_FREQUENCY : CULOSS_BALANCE_NONE;
    bce.pos_weight.assign(static_cast<size_t>(region_test::num_classes(t)), 2.5);
    RegionOptions focal = region_test::default_options(CULOSS_FOCAL);
    focal.activation = CULOSS_ACTIVATION_SIGMOID;
    focal.class_axis = t.opt.class_axis;
    focal.ignore_index = t.opt.ignore_index;
    focal.reduction = uni(rng, 0, 1);
    ASSERT_TRUE(sum_case_ok(t, {{region_term(CULOSS_DICE, t.opt, rng), weight(rng)},
                                {bce, weight(rng)},
                                {focal, weight(rng)}}, rng))
        << "iteration " << it;
  }
}

TEST(Distributed, SumTverskyFocalMarginalGeneralizedDice) {
  std::mt19937 rng(7902);
  for (int it = 0; it < 40; ++it) {
    const RegionCase t = sum_tensors(rng, CULOSS_MARGINAL_CE, CULOSS_ACTIVATION_SOFTMAX,
                                     it % 2 ? region_test::kIndexI32 : region_test::kDenseF32);
    RegionOptions focal = region_test::default_options(CULOSS_FOCAL);
    focal.activation = CULOSS_ACTIVATION_SOFTMAX;
    focal.class_axis = t.opt.class_axis;
    focal.ignore_index = t.opt.ignore_index;
    focal.check_targets = t.opt.check_targets;
    focal.reduction = uni(rng, 0, 1);
    ASSERT_TRUE(sum_case_ok(t, {{region_term(CULOSS_TVERSKY, t.opt, rng), weight(rng)},
                                {region_term(CULOSS_GENERALIZED_DICE, t.opt, rng), weight(rng)},
                                {focal, weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)}}, rng))
        << "iteration " << it;
  }
}

TEST(Distributed, SumComboAndJaccard) {
  std::mt19937 rng(7903);
  for (int it = 0; it < 40; ++it) {
    const RegionCase t = sum_tensors(rng, CULOSS_COMBO, CULOSS_ACTIVATION_SIGMOID,
                                     it % 3 == 0 ? -1 : region_test::kDenseF64);
    ASSERT_TRUE(sum_case_ok(t, {{t.opt, weight(rng)},
                                {region_term(CULOSS_FOCAL_TVERSKY, t.opt, rng), weight(rng)},
                                {region_term(CULOSS_JACCARD, t.opt, rng), weight(rng)}}, rng))
        << "iteration " << it;
  }
}

// MCC (a fourth statistic, Σ v) and soft labels: every option, and inside a SUM.
TEST(Distributed, MccAndSoftLabelRandom) {
  std::mt19937 rng(7950);
  const culoss_kind kinds[] = {CULOSS_MCC, CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY,
                               CULOSS_FOCAL_TVERSKY};
  for (int it = 0; it < 200; ++it) {
    region_test::RegionConstraints k;
    k.kind = it % 2 ? CULOSS_MCC : kinds[(it / 2) % 5];
    k.soft_label = it % 3 == 0 ? 0 : 1;
    k.N = uni(rng, 1, 5);
    k.batch = it % 4 < 2 ? 1 : 0;
    if (it % 10 == 9) k.max_dim = 24;
    const RegionCase rc = region_test::random_region_case(rng, k);
    ASSERT_TRUE(region_case_ok(rc, rng)) << "iteration " << it;
  }
}

TEST(Distributed, SumMccSoftDiceAndCrossEntropy) {
  std::mt19937 rng(7951);
  for (int it = 0; it < 30; ++it) {
    const RegionCase t = sum_tensors(rng, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX,
                                     it % 2 ? region_test::kIndexU8 + it % 3 : region_test::kDenseF64);
    RegionOptions mcc = region_term(CULOSS_MCC, t.opt, rng);
    mcc.soft_label = it % 2 == 0;
    RegionOptions dice = region_term(CULOSS_DICE, t.opt, rng);
    dice.squared = false;
    dice.soft_label = true;
    ASSERT_TRUE(sum_case_ok(t, {{mcc, weight(rng)}, {dice, weight(rng)},
                                {elem_term(t.opt, rng), weight(rng)}}, rng))
        << "iteration " << it;
  }
}

// ---------------------------------------------------------------------------------------------
// Lovász, per image (pooled is refused: see Refusals)
// ---------------------------------------------------------------------------------------------

TEST(Distributed, LovaszPerImage) {
  std::mt19937 rng(8000);
  const lovasz_test::Tgt tgts[] = {lovasz_test::Tgt::IdxI64, lovasz_test::Tgt::DenseF64,
                                   lovasz_test::Tgt::IdxU8, lovasz_test::Tgt::DenseU8,
                                   lovasz_test::Tgt::IdxI32, lovasz_test::Tgt::DenseF32};
  int it = 0;
  for (culoss_kind kind : {CULOSS_LOVASZ_HINGE, CULOSS_LOVASZ_SOFTMAX})
    for (int reduction = 0; reduction < 3; ++reduction)
      for (int layout = 0; layout < 3; ++layout)
        for (int variant = 0; variant < 2; ++variant) {
          ++it;
          lovasz_test::LCase c;
          c.kind = kind;
          c.per_image = 1;
          c.reduction = reduction;
          const int64_t N = uni(rng, 2, 5);
          const int64_t C = kind == CULOSS_LOVASZ_HINGE && it % 3 == 0 ? 1 : uni(rng, 2, 4);
          if (layout == 0) {
            c.shape = {N, C, uni(rng, 1, 5), uni(rng, 1, 5)};
            c.class_axis = 1;
          } else if (layout == 1) {
            c.shape = {N, uni(rng, 1, 5), uni(rng, 1, 5), C};
            c.class_axis = -1;
          } else {
            c.shape = {N, C};
            c.class_axis = 1;
          }
          c.tgt = tgts[it % 6];
          c.pixel_weight = variant == 1;
          c.ignore_frac = variant == 1 ? 0.15 : 0.0;
          c.classes = it % 2 ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
          c.activation = it % 4 == 3 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
          c.grad_scale = it % 5 == 0 ? 0.75 : 1.0;
          c.seed = static_cast<uint64_t>(it);
          const lovasz_test::LData d = lovasz_test::make_data(c);
          Loss h(d.c.kind);
          ASSERT_TRUE(lovasz_test::configure(h, d));
          ASSERT_TRUE(all_splits(h, batch_of(d), rng)) << "case " << it;
        }
}

// ---------------------------------------------------------------------------------------------
// NONE: the shard's own rows
// ---------------------------------------------------------------------------------------------

// N = 5 split 2 + 3 (and 1 + 1 + 3): each rank's loss_out has its own images' rows (its own
// pixels / elements), equal to those rows of the single call.
TEST(Distributed, NoneWritesTheShardsRows) {
  std::mt19937 rng(8100);
  struct Kinds {
    culoss_kind kind;
    int average;
  };
  const Kinds kinds[] = {{CULOSS_DICE, CULOSS_AVERAGE_MACRO},   {CULOSS_JACCARD, CULOSS_AVERAGE_MICRO},
                         {CULOSS_TVERSKY, CULOSS_AVERAGE_MACRO}, {CULOSS_FOCAL_TVERSKY, CULOSS_AVERAGE_MICRO},
                         {CULOSS_GENERALIZED_DICE, 0}};
  for (const Kinds& k : kinds) {
    region_test::RegionConstraints rk;
    rk.kind = k.kind;
    rk.average = k.average;
    rk.reduction = CULOSS_REDUCTION_NONE;
    rk.batch = 0;
    rk.N = 5;
    rk.C = 3;
    rk.layout = region_test::kLayoutNCHW;
    const RegionCase rc = region_test::random_region_case(rng, rk);
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    const Batch b = batch_of(rc);
    ASSERT_TRUE(dist_test::per_image_rows(b));
    CpuRunner run;
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{2, 3}, {1, 1, 3}})
      ASSERT_TRUE(check_split(h, b, s, run, f64_tols()));
  }
  for (int kind : {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_MARGINAL_CE}) {
    region_test::ElemConstraints ek;
    ek.kind = kind;
    ek.reduction = CULOSS_REDUCTION_NONE;
    ek.N = 5;
    ek.layout = region_test::kLayoutNHWC;
    const RegionCase rc = region_test::random_elementwise_case(rng, ek);
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    const Batch b = batch_of(rc);
    ASSERT_TRUE(dist_test::per_image_rows(b));
    CpuRunner run;
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{2, 3}, {1, 1, 3}})
      ASSERT_TRUE(check_split(h, b, s, run, f64_tols()));
  }
}

// ---------------------------------------------------------------------------------------------
// Shards: empty ranks, caller workspaces, in-place gradients, forward only, other dtypes
// ---------------------------------------------------------------------------------------------

// A rank with no image (N = 0) contributes zero statistics and writes an empty gradient.
TEST(Distributed, EmptyShard) {
  std::mt19937 rng(8200);
  for (culoss_kind kind : kRegionKinds) {
    region_test::RegionConstraints k;
    k.kind = kind;
    k.N = 3;
    const RegionCase rc = region_test::random_region_case(rng, k);
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    CpuRunner run;
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{0, 3}, {2, 0, 1}})
      ASSERT_TRUE(check_split(h, batch_of(rc), s, run, f64_tols()));
  }
  for (int kind : region_test::kElementwiseKinds) {
    region_test::ElemConstraints k;
    k.kind = kind;
    k.N = 3;
    const RegionCase rc = region_test::random_elementwise_case(rng, k);
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    CpuRunner run;
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{0, 3}, {2, 0, 1}})
      ASSERT_TRUE(check_split(h, batch_of(rc), s, run, f64_tols()));
  }
}

// A workspace of exactly culoss_workspace_size(shard) bytes (at an aligned and at a misaligned
// address) serves culoss_compute_stats and culoss_compute_from_stats; the buffer is refilled
// with NaN bytes between them; results are bitwise those of library-allocated workspaces.
TEST(Distributed, CallerWorkspaceForAllThreeCalls) {
  std::mt19937 rng(8300);
  std::vector<RegionCase> cases;
  for (culoss_kind kind : kRegionKinds) {
    region_test::RegionConstraints k;
    k.kind = kind;
    k.N = 4;
    cases.push_back(region_test::random_region_case(rng, k));
  }
  for (int kind : region_test::kElementwiseKinds) {
    region_test::ElemConstraints k;
    k.kind = kind;
    k.N = 4;
    cases.push_back(region_test::random_elementwise_case(rng, k));
  }
  for (const RegionCase& rc : cases) {
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    const Batch b = batch_of(rc);
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{4}, {1, 3}, {2, 1, 1}}) {
      CpuRunner null_ws(dist_test::Ws::Null);
      SplitResult want;
      ASSERT_TRUE(check_split(h, b, s, null_ws, f64_tols(), &want));
      for (dist_test::Ws w : {dist_test::Ws::Exact, dist_test::Ws::ExactMisaligned}) {
        CpuRunner caller(w);
        SplitResult got;
        ASSERT_TRUE(check_split(h, b, s, caller, f64_tols(), &got));
        EXPECT_EQ(want.global, got.global) << region_test::describe_case(rc);
        for (size_t k = 0; k < s.size(); ++k) {
          EXPECT_EQ(want.ranks[k].loss.bytes, got.ranks[k].loss.bytes) << region_test::describe_case(rc);
          EXPECT_EQ(want.ranks[k].grad.bytes, got.ranks[k].grad.bytes) << region_test::describe_case(rc);
        }
      }
    }
  }
  // Lovász per image: the same.
  lovasz_test::LCase c;
  c.per_image = 1;
  c.shape = {3, 3, 4, 5};
  for (culoss_kind kind : {CULOSS_LOVASZ_HINGE, CULOSS_LOVASZ_SOFTMAX}) {
    c.kind = kind;
    const lovasz_test::LData d = lovasz_test::make_data(c);
    Loss h(d.c.kind);
    ASSERT_TRUE(lovasz_test::configure(h, d));
    CpuRunner caller(dist_test::Ws::ExactMisaligned);
    ASSERT_TRUE(check_split(h, batch_of(d), {1, 2}, caller, f64_tols()));
  }
}

// Per rank: from_stats with grad_input = NULL writes the same loss; grad_input = the input's own
// buffer writes the same gradient (the statistics are recomputed from the input before it is
// overwritten).
TEST(Distributed, ForwardOnlyAndInPlaceGradient) {
  std::mt19937 rng(8400);
  std::vector<RegionCase> cases;
  for (culoss_kind kind : kRegionKinds) {
    region_test::RegionConstraints k;
    k.kind = kind;
    k.N = 3;
    k.reduction = uni(rng, 0, 2);
    cases.push_back(region_test::random_region_case(rng, k));
  }
  for (int kind : region_test::kElementwiseKinds) {
    region_test::ElemConstraints k;
    k.kind = kind;
    k.N = 3;
    cases.push_back(region_test::random_elementwise_case(rng, k));
  }
  for (const RegionCase& rc : cases) {
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    const Batch b = batch_of(rc);
    CpuRunner run;
    SplitResult want;
    ASSERT_TRUE(check_split(h, b, {1, 2}, run, f64_tols(), &want));
    int64_t begin = 0;
    for (size_t k = 0; k < 2; ++k) {
      const int64_t n = k == 0 ? 1 : 2;
      Batch s = dist_test::shard_of(b, begin, n);
      begin += n;
      TestTensor stats({static_cast<int64_t>(want.global.size())}, testing_util::f64());
      for (size_t i = 0; i < want.global.size(); ++i) stats.set(static_cast<int64_t>(i), want.global[i]);
      TestTensor loss(s.loss_shape(n), s.loss_dtype);
      loss.poison();
      ASSERT_EQ(CULOSS_SUCCESS,
                culoss_compute_from_stats(h, s.input.dl(), s.target.dl(),
                                          s.has_weight ? s.weight.dl() : nullptr, stats.dl(),
                                          loss.dl(), nullptr, s.grad_scale, nullptr, 0, nullptr))
          << culoss_last_error() << "\n  " << b.what;
      EXPECT_EQ(want.ranks[k].loss.bytes, loss.bytes) << "forward only, rank " << k << "\n  " << b.what;
      loss.poison();
      ASSERT_EQ(CULOSS_SUCCESS,
                culoss_compute_from_stats(h, s.input.dl(), s.target.dl(),
                                          s.has_weight ? s.weight.dl() : nullptr, stats.dl(),
                                          loss.dl(), s.input.dl(), s.grad_scale, nullptr, 0, nullptr))
          << culoss_last_error() << "\n  " << b.what;
      EXPECT_EQ(want.ranks[k].loss.bytes, loss.bytes) << "in place, rank " << k << "\n  " << b.what;
      EXPECT_EQ(want.ranks[k].grad.values(), s.input.values()) << "in place, rank " << k << "\n  " << b.what;
    }
  }
}

// float32 / float16 / bfloat16 inputs (and gradients), float32 loss_out: the CPU backend works in
// double, so shards and the single call differ by at most an ulp of the output dtype.
TEST(Distributed, InputDtypes) {
  std::mt19937 rng(8500);
  const DLDataType dtypes[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  int it = 0;
  for (DLDataType dt : dtypes)
    for (culoss_kind kind : {CULOSS_DICE, CULOSS_GENERALIZED_DICE, CULOSS_CROSS_ENTROPY, CULOSS_BCE,
                             CULOSS_FOCAL}) {
      ++it;
      RegionCase rc;
      if (region_test::is_region_kind(kind)) {
        region_test::RegionConstraints k;
        k.kind = kind;
        k.N = 4;
        rc = region_test::random_region_case(rng, k);
      } else {
        region_test::ElemConstraints k;
        k.kind = kind;
        k.N = 4;
        rc = region_test::random_elementwise_case(rng, k);
      }
      rc.input_dtype = dt;
      Loss h(rc.opt.kind);
      ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
      Batch b = batch_of(rc);
      b.loss_dtype = it % 2 ? testing_util::f32() : testing_util::f64();
      if (it % 3 == 0) b.grad_dtype = testing_util::f32();  // float32 gradient of a 16-bit input
      CheckTols tol = f64_tols();
      tol.loss.ulps = 1;
      tol.loss.dtype = b.loss_dtype;
      tol.grad.ulps = 1;
      tol.grad.dtype = b.grad_dtype;
      // The whole batch may run the CPU's float SIMD fast path (docs/reference.md, "Precision"),
      // the shards the generic passes in double (distributed calls are not covered by it).
      tol.loss.rel = tol.grad.rel = 1e-5;
      tol.loss.abs_frac = tol.grad.abs_frac = 1e-6;
      CpuRunner run;
      for (const std::vector<int64_t>& s : {std::vector<int64_t>{2, 2}, {1, 3}})
        ASSERT_TRUE(check_split(h, b, s, run, tol)) << "dtype case " << it;
    }
}

// float64 input, float32 gradient and loss_out.
TEST(Distributed, Float64InputFloat32Outputs) {
  std::mt19937 rng(8550);
  for (int it = 0; it < 12; ++it) {
    RegionCase rc;
    if (it % 2) {
      region_test::RegionConstraints k;
      k.kind = kRegionKinds[it % 5];
      k.N = 4;
      rc = region_test::random_region_case(rng, k);
    } else {
      region_test::ElemConstraints k;
      k.kind = region_test::kElementwiseKinds[it % 5];
      k.N = 4;
      rc = region_test::random_elementwise_case(rng, k);
    }
    Loss h(rc.opt.kind);
    ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, rc.opt));
    Batch b = batch_of(rc);
    b.loss_dtype = testing_util::f32();
    b.grad_dtype = testing_util::f32();
    CheckTols tol = f64_tols();
    tol.loss.ulps = tol.grad.ulps = 1;
    tol.loss.dtype = tol.grad.dtype = testing_util::f32();
    CpuRunner run;
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{2, 2}, {1, 3}})
      ASSERT_TRUE(check_split(h, b, s, run, tol)) << "iteration " << it;
  }
}

// Many classes (19, Cityscapes-like): Dice (BATCH) + cross-entropy, generalized Dice, BCE.
TEST(Distributed, ManyClasses) {
  std::mt19937 rng(8560);
  for (int it = 0; it < 4; ++it) {
    region_test::RegionConstraints k;
    k.kind = it % 2 ? CULOSS_GENERALIZED_DICE : CULOSS_DICE;
    k.C = 19;
    k.N = 3;
    k.layout = region_test::kLayoutNCHW;
    k.reduction = it / 2 % 2 ? CULOSS_REDUCTION_NONE : CULOSS_REDUCTION_MEAN;
    ASSERT_TRUE(region_case_ok(region_test::random_region_case(rng, k), rng)) << "iteration " << it;
  }
  region_test::ElemConstraints k;
  k.kind = CULOSS_CROSS_ENTROPY;
  k.C = 19;
  k.N = 3;
  k.activation = CULOSS_ACTIVATION_SOFTMAX;
  k.target = region_test::kIndexU8;
  RegionCase many = region_test::random_elementwise_case(rng, k);
  RegionOptions dice = region_term(CULOSS_DICE, many.opt, rng);
  dice.batch = true;
  ASSERT_TRUE(sum_case_ok(many, {{dice, 1.0}, {elem_term(many.opt, rng), 0.5}}, rng));
  region_test::ElemConstraints kb;
  kb.kind = CULOSS_BCE;
  kb.C = 19;
  kb.N = 3;
  kb.target = region_test::kDenseU8;
  RegionCase bce = region_test::random_elementwise_case(rng, kb);
  bce.opt.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
  ASSERT_TRUE(elem_case_ok(bce, rng));
}

// ---------------------------------------------------------------------------------------------
// The statistics count
// ---------------------------------------------------------------------------------------------

// count depends on the loss and C only: the same for N = 0..6, for every spatial size, for
// index and dense targets.
TEST(Distributed, StatsCountIndependentOfN) {
  std::mt19937 rng(8600);
  auto count_of = [](culoss_loss h, const std::vector<int64_t>& shape, int class_axis, bool index) {
    TestTensor in(shape, testing_util::f32());
    std::vector<int64_t> tshape = region_test::without_axis(shape, class_axis);
    TestTensor tg(index ? tshape : shape, index ? testing_util::i64() : testing_util::f32());
    int64_t count = -1;
    const culoss_status st = culoss_stats_size(h, in.dl(), tg.dl(), &count);
    EXPECT_EQ(CULOSS_SUCCESS, st) << culoss_last_error();
    return count;
  };
  std::vector<RegionOptions> opts;
  for (culoss_kind kind : kRegionKinds)
    for (int batch = 0; batch < 2; ++batch) {
      RegionOptions o = region_test::default_options(kind);
      o.batch = batch;
      opts.push_back(o);
    }
  for (int kind : region_test::kElementwiseKinds) {
    RegionOptions o = region_test::default_options(static_cast<culoss_kind>(kind));
    if (kind == CULOSS_BCE) o.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
    o.activation = kind == CULOSS_BCE || kind == CULOSS_COMBO ? CULOSS_ACTIVATION_SIGMOID
                                                              : CULOSS_ACTIVATION_SOFTMAX;
    opts.push_back(o);
  }
  for (const RegionOptions& o : opts)
    for (int64_t C : {2, 3, 7}) {
      Loss h(o.kind);
      ASSERT_EQ(CULOSS_SUCCESS, region_test::configure(h, o));
      const bool index = o.activation == CULOSS_ACTIVATION_SOFTMAX;
      const int64_t ref = count_of(h, {1, C, 4, 4}, 1, index);
      EXPECT_GT(ref, 0);
      for (int64_t N = 0; N <= 6; ++N) {
        EXPECT_EQ(ref, count_of(h, {N, C, 4, 4}, 1, index)) << "kind " << o.kind << " N " << N;
        EXPECT_EQ(ref, count_of(h, {N, C, uni(rng, 1, 9), uni(rng, 1, 9)}, 1, index))
            << "kind " << o.kind << " N " << N;
        EXPECT_EQ(ref, count_of(h, {N, C}, 1, index)) << "kind " << o.kind << " N " << N;
      }
    }
  // Lovász per image.
  for (culoss_kind kind : {CULOSS_LOVASZ_HINGE, CULOSS_LOVASZ_SOFTMAX}) {
    Loss h(kind);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_PER_IMAGE, 1));
    const int64_t ref = count_of(h, {1, 3, 4, 4}, 1, false);
    for (int64_t N = 0; N <= 6; ++N) EXPECT_EQ(ref, count_of(h, {N, 3, 5, 2}, 1, false)) << "N " << N;
  }
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

struct RefusalSetup {
  Loss h{CULOSS_DICE};
  TestTensor input{{2, 3, 4, 4}, testing_util::f64()};
  TestTensor target{{2, 4, 4}, testing_util::i64()};
  TestTensor loss{{}, testing_util::f64()};
  TestTensor grad{{2, 3, 4, 4}, testing_util::f64()};
  int64_t count = 0;
  RefusalSetup() {
    for (int64_t i = 0; i < input.numel(); ++i) input.set(i, 0.1 * static_cast<double>(i % 7) - 0.3);
    for (int64_t i = 0; i < target.numel(); ++i) target.set(i, static_cast<double>(i % 3));
    EXPECT_EQ(CULOSS_SUCCESS, culoss_stats_size(h, input.dl(), target.dl(), &count)) << culoss_last_error();
  }
  culoss_status stats(DLTensor* s) {
    return culoss_compute_stats(h, input.dl(), target.dl(), nullptr, s, nullptr, 0, nullptr);
  }
  culoss_status from_stats(const DLTensor* s) {
    return culoss_compute_from_stats(h, input.dl(), target.dl(), nullptr, s, loss.dl(), grad.dl(),
                                     1.0, nullptr, 0, nullptr);
  }
};

bool names_stats() { return std::string(culoss_last_error()).find("stats") != std::string::npos; }

TEST(DistributedRefusals, StatsDtype) {
  RefusalSetup r;
  for (DLDataType dt : {testing_util::f32(), testing_util::f16(), testing_util::i64()}) {
    TestTensor s({r.count}, dt);
    s.poison();
    const std::vector<uint8_t> before = s.bytes;
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DTYPE, r.stats(s.dl()));
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    EXPECT_EQ(before, s.bytes) << "a refused compute_stats wrote its stats";
    r.loss.poison();
    r.grad.poison();
    const TestTensor loss0 = r.loss, grad0 = r.grad;
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DTYPE, r.from_stats(s.dl()));
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    EXPECT_EQ(loss0.bytes, r.loss.bytes) << "a refused compute_from_stats wrote loss_out";
    EXPECT_EQ(grad0.bytes, r.grad.bytes) << "a refused compute_from_stats wrote grad_input";
  }
}

TEST(DistributedRefusals, StatsShape) {
  RefusalSetup r;
  const std::vector<std::vector<int64_t>> shapes = {
      {r.count + 1}, {r.count - 1}, {1, r.count}, {r.count, 1}, {}, {0}};
  for (const std::vector<int64_t>& shape : shapes) {
    TestTensor s(shape, testing_util::f64());
    EXPECT_EQ(CULOSS_ERROR_SHAPE_MISMATCH, r.stats(s.dl())) << "ndim " << shape.size();
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    EXPECT_EQ(CULOSS_ERROR_SHAPE_MISMATCH, r.from_stats(s.dl())) << "ndim " << shape.size();
    EXPECT_TRUE(names_stats()) << culoss_last_error();
  }
}

TEST(DistributedRefusals, StatsDevice) {
  RefusalSetup r;
  // A CUDA stats tensor for CPU inputs (on a CPU-only build: "built without CUDA"), and device
  // types culoss does not know. The data pointer is host memory and must not be touched.
  for (int device_type : {static_cast<int>(kDLCUDA), static_cast<int>(kDLCUDAHost), 8 /* Metal */}) {
    TestTensor s({r.count}, testing_util::f64());
    s.poison();
    DLTensor v = *s.dl();
    v.device = DLDevice{static_cast<DLDeviceType>(device_type), 0};
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, r.stats(&v)) << "device type " << device_type;
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, r.from_stats(&v)) << "device type " << device_type;
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    TestTensor fresh({r.count}, testing_util::f64());
    fresh.poison();
    EXPECT_EQ(fresh.bytes, s.bytes);
  }
}

TEST(DistributedRefusals, StatsNullOrNullCount) {
  RefusalSetup r;
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.stats(nullptr));
  EXPECT_TRUE(names_stats()) << culoss_last_error();
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.from_stats(nullptr));
  EXPECT_TRUE(names_stats()) << culoss_last_error();
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_stats_size(r.h, r.input.dl(), r.target.dl(), nullptr));
}

// The statistics are an output of compute_stats (no overlap with anything) and an input of
// compute_from_stats (no overlap with its outputs).
TEST(DistributedRefusals, StatsOverlap) {
  RefusalSetup r;
  ASSERT_GE(r.grad.numel(), r.count);
  // compute_from_stats: stats inside grad_input, stats inside loss_out's bytes.
  {
    TestTensor s({r.count}, testing_util::f64());
    ASSERT_EQ(CULOSS_SUCCESS, r.stats(s.dl())) << culoss_last_error();
    std::memcpy(r.grad.bytes.data() + 8, s.bytes.data(), static_cast<size_t>(8 * r.count));
    DLTensor in_grad = *s.dl();
    in_grad.data = r.grad.bytes.data();
    in_grad.byte_offset = 8;
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.from_stats(&in_grad));
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    // loss_out is the first element of the stats vector.
    TestTensor big({r.count}, testing_util::f64());
    std::memcpy(big.bytes.data(), s.bytes.data(), static_cast<size_t>(8 * r.count));
    DLTensor loss_view = *r.loss.dl();
    loss_view.data = big.bytes.data();
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
              culoss_compute_from_stats(r.h, r.input.dl(), r.target.dl(), nullptr, big.dl(),
                                        &loss_view, r.grad.dl(), 1.0, nullptr, 0, nullptr));
    EXPECT_TRUE(names_stats()) << culoss_last_error();
  }
  // compute_stats: stats inside the input, the target, the pixel weight.
  {
    DLTensor in_input{};
    in_input.data = r.input.bytes.data();
    in_input.device = DLDevice{kDLCPU, 0};
    in_input.ndim = 1;
    in_input.dtype = testing_util::f64();
    int64_t shape[1] = {r.count};
    in_input.shape = shape;
    in_input.byte_offset = 16;
    const std::vector<uint8_t> before = r.input.bytes;
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.stats(&in_input));
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    EXPECT_EQ(before, r.input.bytes);
    TestTensor pw({2, 4, 4}, testing_util::f32());
    pw.fill(1.0);
    TestTensor big_target({2, 4, 4}, testing_util::i64());
    for (int64_t i = 0; i < big_target.numel(); ++i) big_target.set(i, i % 3);
    DLTensor in_target = in_input;
    in_target.data = big_target.bytes.data();
    in_target.byte_offset = 0;
    ASSERT_GE(big_target.numel(), r.count);
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
              culoss_compute_stats(r.h, r.input.dl(), big_target.dl(), pw.dl(), &in_target, nullptr,
                                   0, nullptr));
    EXPECT_TRUE(names_stats()) << culoss_last_error();
    if (pw.numel() * 4 >= r.count * 8) {
      DLTensor in_pw = in_input;
      in_pw.data = pw.bytes.data();
      in_pw.byte_offset = 0;
      EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
                culoss_compute_stats(r.h, r.input.dl(), r.target.dl(), pw.dl(), &in_pw, nullptr, 0,
                                     nullptr));
      EXPECT_TRUE(names_stats()) << culoss_last_error();
    }
  }
}

// Pooled Lovász (PER_IMAGE = 0, the default) has no statistics that sum across ranks.
TEST(DistributedRefusals, PooledLovaszNotSupported) {
  for (culoss_kind kind : {CULOSS_LOVASZ_HINGE, CULOSS_LOVASZ_SOFTMAX})
    for (int reduction = 0; reduction < 3; ++reduction) {
      Loss h(kind);
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_REDUCTION, reduction));
      TestTensor input({2, 3, 4, 4}, testing_util::f32());
      TestTensor target({2, 3, 4, 4}, testing_util::f32());
      int64_t count = -7;
      EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, culoss_stats_size(h, input.dl(), target.dl(), &count))
          << "kind " << kind;
      EXPECT_NE(std::string(culoss_last_error()), "");
      EXPECT_EQ(-7, count);
      TestTensor s({16}, testing_util::f64());
      s.poison();
      const std::vector<uint8_t> before = s.bytes;
      EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED,
                culoss_compute_stats(h, input.dl(), target.dl(), nullptr, s.dl(), nullptr, 0, nullptr));
      EXPECT_EQ(before, s.bytes);
      const std::vector<int64_t> lshape =
          reduction == CULOSS_REDUCTION_NONE && kind == CULOSS_LOVASZ_HINGE ? std::vector<int64_t>{3}
                                                                            : std::vector<int64_t>{};
      TestTensor loss(lshape, testing_util::f64()), grad({2, 3, 4, 4}, testing_util::f32());
      loss.poison();
      grad.poison();
      const TestTensor loss0 = loss, grad0 = grad;
      EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED,
                culoss_compute_from_stats(h, input.dl(), target.dl(), nullptr, s.dl(), loss.dl(),
                                          grad.dl(), 1.0, nullptr, 0, nullptr));
      EXPECT_EQ(loss0.bytes, loss.bytes);
      EXPECT_EQ(grad0.bytes, grad.bytes);
    }
  // A SUM cannot hold a Lovász term at all (SEMANTICS "Lovász losses"): nothing to distribute.
}

}  // namespace

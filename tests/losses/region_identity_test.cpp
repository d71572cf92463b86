// Region losses: identities between kinds and options that must hold for any input, checked on
// the library alone (values and gradients), over random cases.
//   Tversky α=β=½ (smooth s)        == Dice (smooth 2s)
//   Jaccard                         == Tversky α=β=1
//   generalized Dice, one class     == Dice (UNIFORM; also SQUARE/SIMPLE for one class)
//   BATCH=1 with N=1                == BATCH=0
//   focal Tversky γ=1               == Tversky (smooth_nr <= smooth_dr)
//   MICRO with one class            == MACRO
//   NHWC with CLASS_AXIS=-1         == the same data transposed to NCHW
//   MACRO MEAN                      invariant to scaling all class weights
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "losses/region_check.hpp"
#include "losses/region_random.hpp"

namespace {

using namespace region_test;

constexpr double kRel = 1e-11;

::testing::AssertionResult same_results(const RegionCase& a, const RegionCase& b, double rel = kRel) {
  const RunResult ra = run_region(a), rb = run_region(b);
  if (!ra.ok()) return ::testing::AssertionFailure() << "first call: " << ra.error << "\n  " << describe_case(a);
  if (!rb.ok()) return ::testing::AssertionFailure() << "second call: " << rb.error << "\n  " << describe_case(b);
  ::testing::AssertionResult v = close_vectors("loss", ra.loss, rb.loss, Tol{rel, rel});
  if (!v) return v << "\n  first: " << describe_case(a) << "\n  second: " << describe_case(b);
  const double gs = max_abs(rb.grad);
  ::testing::AssertionResult g = close_vectors("grad", ra.grad, rb.grad, Tol{rel * 100, rel * gs + 1e-300});
  if (!g) return g << "\n  first: " << describe_case(a) << "\n  second: " << describe_case(b);
  return ::testing::AssertionSuccess();
}

// Options of `rc` re-expressed for another kind (parameters the new kind lacks are reset).
RegionCase as_kind(const RegionCase& rc, culoss_kind kind) {
  RegionCase r = rc;
  RegionOptions o = default_options(kind);
  const RegionOptions& s = rc.opt;
  o.activation = s.activation;
  o.class_axis = s.class_axis;
  o.reduction = s.reduction;
  o.ignore_index = s.ignore_index;
  o.smooth_nr = s.smooth_nr;
  o.smooth_dr = s.smooth_dr;
  o.batch = s.batch;
  o.include_background = s.include_background;
  o.class_weights = s.class_weights;
  o.skip_empty = s.skip_empty;
  o.check_targets = s.check_targets;
  if (kind != CULOSS_GENERALIZED_DICE) o.average = s.average;
  r.opt = o;
  return r;
}

TEST(RegionIdentity, TverskyHalfHalfIsDiceWithDoubledSmoothing) {
  // 1 − (I+s)/(I + ½(SP−I) + ½(ST−I) + s) = 1 − (2I+2s)/(SP+ST+2s).
  std::mt19937 rng(31);
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = CULOSS_TVERSKY;
    RegionCase tv = random_region_case(rng, k);
    tv.opt.alpha = tv.opt.beta = 0.5;
    RegionCase dice = as_kind(tv, CULOSS_DICE);
    dice.opt.smooth_nr = 2 * tv.opt.smooth_nr;
    dice.opt.smooth_dr = 2 * tv.opt.smooth_dr;
    ASSERT_TRUE(same_results(tv, dice));
  }
}

TEST(RegionIdentity, JaccardIsTverskyOneOne) {
  std::mt19937 rng(32);
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = CULOSS_JACCARD;
    RegionCase jac = random_region_case(rng, k);
    jac.opt.squared = false;  // Tversky's FP/FN are linear
    RegionCase tv = as_kind(jac, CULOSS_TVERSKY);
    tv.opt.alpha = tv.opt.beta = 1.0;
    ASSERT_TRUE(same_results(jac, tv));
  }
}

TEST(RegionIdentity, GeneralizedDiceWithOneClassIsDice) {
  // C = 1 (sigmoid or probabilities): w = base · ω cancels only for UNIFORM with ω = 1 in general;
  // with smooth 0 it cancels for every weight type (a ratio of w-scaled sums).
  std::mt19937 rng(33);
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = CULOSS_GENERALIZED_DICE;
    k.C = 1;
    k.activation = it % 2 ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_NONE;
    k.target = it % 3 == 0 ? kIndexI64 : kDenseF64;
    if (k.activation == CULOSS_ACTIVATION_NONE) k.target = kDenseF64;
    k.class_weights = 0;
    RegionCase gd = random_region_case(rng, k);
    const bool smooth0 = it % 4 == 1;
    if (smooth0) {
      gd.opt.smooth_nr = gd.opt.smooth_dr = 0.0;
      gd.opt.weight_type = static_cast<int>(it % 3);
    } else {
      gd.opt.weight_type = CULOSS_WEIGHT_UNIFORM;
    }
    RegionCase dice = as_kind(gd, CULOSS_DICE);
    dice.opt.average = CULOSS_AVERAGE_MACRO;
    // Dice NONE writes (N, 1) or (1) and generalized Dice (N) or one element: same numbers.
    ASSERT_TRUE(same_results(gd, dice, smooth0 ? 1e-9 : kRel)) << "weight type " << gd.opt.weight_type;
  }
}

TEST(RegionIdentity, GeneralizedDiceWithOneIncludedClassIsDice) {
  // C = 2 softmax, background left out: one class in both.
  std::mt19937 rng(34);
  for (int it = 0; it < 40; ++it) {
    RegionConstraints k;
    k.kind = CULOSS_GENERALIZED_DICE;
    k.C = 2;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.class_weights = 0;
    RegionCase gd = random_region_case(rng, k);
    gd.opt.include_background = false;
    gd.opt.weight_type = CULOSS_WEIGHT_UNIFORM;
    RegionCase dice = as_kind(gd, CULOSS_DICE);
    dice.opt.average = CULOSS_AVERAGE_MACRO;
    if (gd.opt.reduction == CULOSS_REDUCTION_NONE) continue;  // (N) vs (N, 2): compared below
    ASSERT_TRUE(same_results(gd, dice));
  }
}

TEST(RegionIdentity, BatchWithOneImageIsPerImage) {
  std::mt19937 rng(35);
  for (int it = 0; it < 100; ++it) {
    RegionConstraints k;
    k.N = 1;
    k.batch = 1;
    RegionCase b = random_region_case(rng, k);
    RegionCase nb = b;
    nb.opt.batch = false;
    // NONE: (C) vs (1, C), or one element vs (1): the same numbers in the same order.
    ASSERT_TRUE(same_results(b, nb));
  }
}

TEST(RegionIdentity, FocalTverskyGammaOneIsTversky) {
  std::mt19937 rng(36);
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = CULOSS_FOCAL_TVERSKY;
    RegionCase ft = random_region_case(rng, k);
    ft.opt.gamma = 1.0;
    if (ft.opt.smooth_nr > ft.opt.smooth_dr) ft.opt.smooth_nr = ft.opt.smooth_dr;  // 1 − TI >= 0
    RegionCase tv = as_kind(ft, CULOSS_TVERSKY);
    tv.opt.alpha = ft.opt.alpha;
    tv.opt.beta = ft.opt.beta;
    ASSERT_TRUE(same_results(ft, tv));
  }
}

TEST(RegionIdentity, MicroWithOneClassIsMacro) {
  std::mt19937 rng(37);
  const int kinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY};
  for (int it = 0; it < 80; ++it) {
    RegionConstraints k;
    k.kind = kinds[it % 4];
    k.class_weights = 0;
    k.average = CULOSS_AVERAGE_MICRO;
    k.C = it % 2 ? 1 : 2;
    k.activation = it % 2 ? (it % 3 ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_NONE)
                          : CULOSS_ACTIVATION_SOFTMAX;
    if (k.C == 1 && k.activation == CULOSS_ACTIVATION_NONE) k.target = kDenseF32;
    RegionCase micro = random_region_case(rng, k);
    if (k.C == 2) micro.opt.include_background = false;
    RegionCase macro = micro;
    macro.opt.average = CULOSS_AVERAGE_MACRO;
    if (micro.opt.reduction == CULOSS_REDUCTION_NONE && k.C == 2) continue;  // (N) vs (N, 2)
    ASSERT_TRUE(same_results(micro, macro));
  }
}

// Transposes NCHW data to NHWC (element order), for values given per element of the NCHW tensor.
std::vector<double> nchw_to_nhwc(const std::vector<double>& v, int64_t N, int64_t C, int64_t H, int64_t W) {
  std::vector<double> r(v.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          r[static_cast<size_t>(((n * H + h) * W + w) * C + c)] = v[static_cast<size_t>(((n * C + c) * H + h) * W + w)];
  return r;
}

TEST(RegionIdentity, ChannelsLastEqualsChannelsFirst) {
  std::mt19937 rng(38);
  for (int it = 0; it < 60; ++it) {
    RegionConstraints k;
    k.layout = kLayoutNCHW;
    RegionCase first = random_region_case(rng, k);
    first.opt.class_axis = 1;
    const int64_t N = first.shape[0], C = first.shape[1], H = first.shape[2], W = first.shape[3];
    RegionCase last = first;
    last.shape = {N, H, W, C};
    last.opt.class_axis = it % 2 ? -1 : 3;
    last.input = nchw_to_nhwc(first.input, N, C, H, W);
    if (!first.index_target) last.target = nchw_to_nhwc(first.target, N, C, H, W);
    // labels and pixel weights have the same (N, H, W) layout in both.
    const RunResult a = run_region(first), b = run_region(last);
    ASSERT_EQ(a.status, CULOSS_SUCCESS) << a.error;
    ASSERT_EQ(b.status, CULOSS_SUCCESS) << b.error;
    ASSERT_TRUE(close_vectors("loss", b.loss, a.loss, Tol{kRel, kRel})) << describe_case(first);
    ASSERT_TRUE(close_vectors("grad", b.grad, nchw_to_nhwc(a.grad, N, C, H, W),
                              Tol{kRel * 100, kRel * max_abs(a.grad) + 1e-300}))
        << describe_case(first);
  }
}

TEST(RegionIdentity, MacroMeanInvariantToClassWeightScale) {
  std::mt19937 rng(39);
  const int kinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY};
  for (int it = 0; it < 40; ++it) {
    RegionConstraints k;
    k.kind = kinds[it % 4];
    k.class_weights = 1;
    k.reduction = CULOSS_REDUCTION_MEAN;
    k.average = CULOSS_AVERAGE_MACRO;
    RegionCase a = random_region_case(rng, k);
    RegionCase b = a;
    for (double& w : b.opt.class_weights) w *= 4.0;  // exact in binary
    ASSERT_TRUE(same_results(a, b));
  }
}

}  // namespace

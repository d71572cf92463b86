// CULOSS_TOPK_CE: values and gradients against the independent reference (topk_reference.hpp)
// over random cases (every layout, target form, dtype, pixel and class weights, ignored labels,
// smoothing, fractions), finite differences, the identities (TOP_FRACTION = 1 is CROSS_ENTROPY
// bit for bit; K = 1 is the largest loss), the tie rule (lowest flat pixel first), the edge
// cases (all ignored, one pixel), thread-count invariance, inside a CULOSS_SUM, and every
// refusal with its status and message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/cpu_passes.hpp"
#include "losses/elementwise_check.hpp"
#include "reference/topk_reference.hpp"

namespace {

using namespace region_test;
using testing_util::Loss;
using testing_util::TestTensor;

topk_ref::Result topk_reference(const RegionCase& rc) {
  return topk_ref::reference(to_elem_spec(rc), rc.opt.top_fraction);
}

// A random TOPK_CE case (the element-wise generator with the kind forced).
RegionCase random_topk(std::mt19937& rng, ElemConstraints k = ElemConstraints()) {
  k.kind = CULOSS_TOPK_CE;
  return random_elementwise_case(rng, k);
}

::testing::AssertionResult matches_topk_reference(const RegionCase& rc, const RunConfig& cfg,
                                                  double tol) {
  const RunResult r = run_region(rc, cfg);
  if (!r.ok()) return ::testing::AssertionFailure() << r.error << "\n  case: " << describe_case(rc);
  const topk_ref::Result ref = topk_reference(rc);
  ::testing::AssertionResult v =
      close_vectors("loss", r.loss, {ref.value}, Tol{tol, tol * 1e-2 * std::fabs(ref.value)});
  if (!v) return v << " (M=" << ref.M << " K=" << ref.K << ")\n  case: " << describe_case(rc);
  if (cfg.grad) {
    const double scale = max_abs(ref.grad);
    ::testing::AssertionResult g =
        close_vectors("grad", r.grad, ref.grad, Tol{tol, tol * 1e-2 * scale + 1e-300});
    if (!g) return g << " (M=" << ref.M << " K=" << ref.K << ")\n  case: " << describe_case(rc);
  }
  return ::testing::AssertionSuccess();
}

TEST(TopKCe, MatchesReferenceOnRandomCases) {
  std::mt19937 rng(1801);
  for (int i = 0; i < 300; ++i) {
    const RegionCase rc = random_topk(rng);
    EXPECT_TRUE(matches_topk_reference(rc, RunConfig(), 1e-9)) << "case " << i;
  }
}

TEST(TopKCe, EveryInputDtype) {
  std::mt19937 rng(1802);
  const DLDataType dtypes[] = {testing_util::f32(), testing_util::f64(), testing_util::f16(),
                               testing_util::bf16()};
  for (int i = 0; i < 80; ++i) {
    RegionCase rc = random_topk(rng);
    rc.input_dtype = dtypes[i % 4];
    RunConfig cfg;
    cfg.grad_f32 = rc.input_dtype.bits == 16;  // the reference is compared before rounding
    // float64 runs the generic passes in double (only the gradient's storage rounds); the
    // other dtypes run the CPU fast path, to its documented tolerance (docs/reference.md).
    const double tol = rc.input_dtype.bits == 64 ? 1e-9 : 1e-5;
    EXPECT_TRUE(matches_topk_reference(rc, cfg, tol)) << "case " << i;
  }
}

TEST(TopKCe, ChannelsLastAndPixelWeights) {
  std::mt19937 rng(1803);
  ElemConstraints k;
  k.layout = kLayoutNHWC;
  k.pixel_weight = 1;
  for (int i = 0; i < 40; ++i)
    EXPECT_TRUE(matches_topk_reference(random_topk(rng, k), RunConfig(), 1e-9));
  k.layout = kLayoutNDHWC;
  k.pixel_weight = 0;
  k.class_weights = 1;
  for (int i = 0; i < 40; ++i)
    EXPECT_TRUE(matches_topk_reference(random_topk(rng, k), RunConfig(), 1e-9));
}

TEST(TopKCe, IgnoredLabelsAreNeverSelected) {
  std::mt19937 rng(1804);
  ElemConstraints k;
  k.target = kIndexI64;
  k.ignored = 1;
  k.C = 3;
  for (int i = 0; i < 40; ++i) {
    RegionCase rc = random_topk(rng, k);
    const RunResult r = run_region(rc);
    ASSERT_TRUE(r.ok()) << r.error;
    const topk_ref::Result ref = topk_reference(rc);
    const int64_t C = num_classes(rc);
    const int64_t axis = resolved_axis(rc.shape, rc.opt.class_axis);
    int64_t inner = 1;
    for (size_t d = static_cast<size_t>(axis) + 1; d < rc.shape.size(); ++d) inner *= rc.shape[d];
    for (int64_t px = 0; px < static_cast<int64_t>(rc.labels.size()); ++px) {
      const int64_t lab = rc.labels[static_cast<size_t>(px)];
      if (lab >= 0 && lab < C && lab != rc.opt.ignore_index) continue;
      const int64_t o = px / inner, in = px % inner;
      for (int64_t c = 0; c < C; ++c)
        EXPECT_EQ(0.0, r.grad[static_cast<size_t>((o * C + c) * inner + in)]) << "pixel " << px;
    }
    EXPECT_TRUE(matches_topk_reference(rc, RunConfig(), 1e-9));
    EXPECT_LE(ref.K, ref.M);
  }
}

// Central differences of the library's own loss, on cases whose losses are far apart (no
// pixel changes sides of the threshold under the step).
TEST(TopKCe, GradientMatchesFiniteDifferences) {
  std::mt19937 rng(1805);
  ElemConstraints k;
  k.clamp_inputs = false;
  k.max_dim = 3;
  k.grad_scale = 0;
  int checked = 0;
  for (int i = 0; i < 60 && checked < 15; ++i) {
    RegionCase rc = random_topk(rng, k);
    rc.input_dtype = testing_util::f64();
    const topk_ref::Result ref = topk_reference(rc);
    if (ref.K == 0 || ref.K == ref.M) continue;
    // The gap at the threshold: the smallest kept loss and the largest one left out (pixels
    // that are not counted have ℓ = 0 there, which only makes the gap smaller).
    std::vector<int64_t> kept = ref.kept;
    std::sort(kept.begin(), kept.end());
    double kth = 1e300, next = -1e300;
    for (int64_t px = 0; px < static_cast<int64_t>(ref.pixel_loss.size()); ++px) {
      const double l = ref.pixel_loss[static_cast<size_t>(px)];
      if (std::binary_search(kept.begin(), kept.end(), px))
        kth = std::min(kth, l);
      else
        next = std::max(next, l);
    }
    if (kth - next < 1e-3) continue;
    const RunResult base = run_region(rc);
    ASSERT_TRUE(base.ok()) << base.error;
    const double h = 1e-6;
    for (size_t e = 0; e < rc.input.size(); ++e) {
      RegionCase up = rc, down = rc;
      up.input[e] += h;
      down.input[e] -= h;
      const RunResult ru = run_region(up, RunConfig{false});
      const RunResult rd = run_region(down, RunConfig{false});
      ASSERT_TRUE(ru.ok() && rd.ok());
      const double fd = (ru.loss[0] - rd.loss[0]) / (2 * h);
      EXPECT_NEAR(base.grad[e], fd, 1e-6 * (1 + std::fabs(fd)))
          << "element " << e << "\n  " << describe_case(rc);
    }
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

// TOP_FRACTION = 1 keeps every counted pixel: CROSS_ENTROPY (MEAN), bit for bit, on both sets
// of CPU passes (the fast path takes both kinds for float32/16-bit input and a float32
// gradient, the generic passes everything; CUDA runs the generic math too).
void fraction_one_is_cross_entropy(uint32_t seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < 200; ++i) {
    RegionCase rc = random_topk(rng);
    rc.opt.top_fraction = 1.0;
    const DLDataType dtypes[] = {testing_util::f32(), testing_util::f64(), testing_util::f16(),
                                 testing_util::bf16()};
    rc.input_dtype = dtypes[i % 4];
    RegionCase ce = rc;
    ce.opt.kind = CULOSS_CROSS_ENTROPY;
    RunConfig cfg;
    cfg.in_place = i % 3 == 0;
    cfg.grad_f32 = !cfg.in_place && i % 2 == 0;
    const RunResult a = run_region(rc, cfg), b = run_region(ce, cfg);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.loss_bytes, b.loss_bytes)
        << a.loss[0] << " vs " << b.loss[0] << "\n  " << describe_case(rc);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes) << describe_case(rc);
  }
}

TEST(TopKCe, FractionOneIsCrossEntropyBitwise) {
  const culoss_test::GenericCpuPasses generic_passes;
  fraction_one_is_cross_entropy(1806);
}

TEST(TopKCe, FractionOneIsCrossEntropyBitwiseOnTheFastPath) { fraction_one_is_cross_entropy(1807); }

// One pixel of C classes per image, losses chosen by the logits of the true class.
RegionCase pixels_case(const std::vector<double>& true_logit, int64_t C = 3) {
  RegionCase rc;
  rc.opt = default_options(CULOSS_TOPK_CE);
  const int64_t P = static_cast<int64_t>(true_logit.size());
  rc.shape = {1, C, P};
  rc.input.assign(static_cast<size_t>(C * P), 0.0);
  rc.index_target = true;
  rc.target_dtype = testing_util::i64();
  rc.labels.assign(static_cast<size_t>(P), 0);
  for (int64_t q = 0; q < P; ++q)
    rc.input[static_cast<size_t>(q)] = true_logit[static_cast<size_t>(q)];
  return rc;
}

// The pixels whose gradient is not zero.
std::vector<int64_t> graded_pixels(const RegionCase& rc, const RunResult& r) {
  const int64_t C = rc.shape[1], P = rc.shape[2];
  std::vector<int64_t> out;
  for (int64_t q = 0; q < P; ++q) {
    bool any = false;
    for (int64_t c = 0; c < C; ++c) any |= r.grad[static_cast<size_t>(c * P + q)] != 0.0;
    if (any) out.push_back(q);
  }
  return out;
}

TEST(TopKCe, SmallestFractionKeepsTheLargestLoss) {
  // ℓ falls with the true class's logit: pixel 3 has the largest loss.
  RegionCase rc = pixels_case({2.0, 1.0, 0.5, -3.0, 0.0, 1.5});
  rc.opt.top_fraction = 1e-9;  // K = 1
  const RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  const double l3 = -(-3.0 - std::log(std::exp(-3.0) + 2.0));
  EXPECT_NEAR(r.loss[0], l3, 1e-14);
  EXPECT_EQ(graded_pixels(rc, r), std::vector<int64_t>({3}));
}

TEST(TopKCe, TiesGoToTheLowestPixelIndex) {
  // Six pixels with one and the same loss: half of them are the first three.
  RegionCase rc = pixels_case({0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
  rc.opt.top_fraction = 0.5;
  RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(graded_pixels(rc, r), std::vector<int64_t>({0, 1, 2}));
  // Ties at the threshold only: one larger loss first, then the lowest tied pixels.
  rc = pixels_case({0.5, 0.5, 0.5, -1.0, 0.5, 0.5});
  rc.opt.top_fraction = 0.5;
  r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(graded_pixels(rc, r), std::vector<int64_t>({0, 1, 3}));
  // Equal losses from different images and layouts: the flat pixel index decides.
  RegionCase nhwc;
  nhwc.opt = default_options(CULOSS_TOPK_CE);
  nhwc.opt.class_axis = -1;
  nhwc.opt.top_fraction = 0.25;
  nhwc.shape = {2, 2, 2, 3};   // 8 pixels, 3 classes last
  nhwc.input.assign(24, 0.0);  // every loss is log 3
  nhwc.index_target = true;
  nhwc.target_dtype = testing_util::u8();
  nhwc.labels = {2, 1, 0, 2, 1, 1, 0, 2};
  nhwc.opt.ignore_index = 255;
  nhwc.labels[0] = 255;  // not counted: M = 7, K = 2 → pixels 1 and 2
  r = run_region(nhwc);
  ASSERT_TRUE(r.ok()) << r.error;
  for (int64_t px = 0; px < 8; ++px)
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_EQ(px == 1 || px == 2, r.grad[static_cast<size_t>(px * 3 + c)] != 0.0)
          << "pixel " << px;
  EXPECT_NEAR(r.loss[0], std::log(3.0), 1e-15);
}

// K = ⌈f · M⌉ with products that land a rounding above an integer: 0.7 · 10 is 7.000000000000001
// in double, and K is 7.
TEST(TopKCe, KIsTheCeilingOfTheFraction) {
  struct Case {
    double f;
    int64_t M, K;
  } cases[] = {{0.7, 10, 7},  {0.1, 30, 3},  {0.1, 31, 4}, {0.25, 8, 2},   {0.26, 8, 3},
               {1.0, 10, 10}, {1e-9, 10, 1}, {0.3, 10, 3}, {0.999, 10, 10}};
  for (const Case& c : cases) {
    std::vector<double> logits;
    for (int64_t q = 0; q < c.M; ++q) logits.push_back(0.1 * static_cast<double>(q));  // ℓ falls
    RegionCase rc = pixels_case(logits);
    rc.opt.top_fraction = c.f;
    const RunResult r = run_region(rc);
    ASSERT_TRUE(r.ok()) << r.error;
    std::vector<int64_t> want;
    for (int64_t q = 0; q < c.K; ++q) want.push_back(q);
    EXPECT_EQ(graded_pixels(rc, r), want) << "f=" << c.f << " M=" << c.M;
    EXPECT_EQ(c.K, topk_ref::top_count(c.f, c.M));
  }
}

TEST(TopKCe, AllIgnoredGivesZeroLikeCrossEntropy) {
  RegionCase rc = pixels_case({0.5, -1.0, 2.0});
  rc.labels = {-100, -100, -100};
  const RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.loss[0], 0.0);
  for (double g : r.grad) EXPECT_EQ(g, 0.0);
  RegionCase ce = rc;
  ce.opt.kind = CULOSS_CROSS_ENTROPY;
  const RunResult c = run_region(ce);
  ASSERT_TRUE(c.ok()) << c.error;
  EXPECT_EQ(r.loss_bytes, c.loss_bytes);
  EXPECT_EQ(r.grad_bytes, c.grad_bytes);
}

TEST(TopKCe, OnePixelAndEmptyBatch) {
  RegionCase rc = pixels_case({0.25});
  rc.opt.top_fraction = 0.1;
  RunResult r = run_region(rc);
  ASSERT_TRUE(r.ok()) << r.error;
  const double l = -(0.25 - std::log(std::exp(0.25) + 2.0));
  EXPECT_NEAR(r.loss[0], l, 1e-15);
  EXPECT_EQ(graded_pixels(rc, r), std::vector<int64_t>({0}));
  // (N, C) classification, one sample.
  RegionCase nc;
  nc.opt = default_options(CULOSS_TOPK_CE);
  nc.shape = {1, 4};
  nc.input = {0.1, 0.2, 0.3, 0.4};
  nc.index_target = true;
  nc.target_dtype = testing_util::i32();
  nc.labels = {2};
  EXPECT_TRUE(matches_topk_reference(nc, RunConfig(), 1e-12));
  // No pixel at all: 0, as CROSS_ENTROPY.
  RegionCase empty = rc;
  empty.shape = {0, 3, 4};
  empty.input.clear();
  empty.labels.clear();
  r = run_region(empty);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.loss[0], 0.0);
}

TEST(TopKCe, ClassWeightsDivideByTheKeptWeights) {
  // Pixel losses ℓᵢ = −ω_yᵢ log p: the mean is Σ kept ℓᵢ / Σ kept ω_yᵢ (CROSS_ENTROPY's MEAN
  // over the kept pixels), not / K as nnU-Net's plain mean.
  RegionCase rc = pixels_case({-2.0, 0.0, 1.0, -1.0});
  rc.labels = {0, 1, 0, 1};
  rc.input[static_cast<size_t>(1 * 4 + 1)] = -2.5;  // class 1 of pixel 1
  rc.input[static_cast<size_t>(1 * 4 + 3)] = 0.3;
  rc.input[1] = 0.0;
  rc.input[3] = 0.0;
  rc.opt.class_weights = {1.0, 3.0, 0.5};
  rc.opt.top_fraction = 0.5;
  const topk_ref::Result ref = topk_reference(rc);
  ASSERT_EQ(ref.K, 2);
  EXPECT_TRUE(matches_topk_reference(rc, RunConfig(), 1e-12));
  double w = 0;
  for (int64_t px : ref.kept)
    w += rc.opt.class_weights[static_cast<size_t>(rc.labels[static_cast<size_t>(px)])];
  EXPECT_NEAR(ref.divisor, w, 1e-15);
}

TEST(TopKCe, GradScaleAndInPlace) {
  std::mt19937 rng(1807);
  for (int i = 0; i < 40; ++i) {
    ElemConstraints k;
    k.grad_scale = 1;
    RegionCase rc = random_topk(rng, k);
    rc.input_dtype = i % 2 ? testing_util::f32() : testing_util::f64();
    RunConfig separate, in_place;
    in_place.in_place = true;
    const RunResult a = run_region(rc, separate), b = run_region(rc, in_place);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.loss_bytes, b.loss_bytes);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes);
    EXPECT_TRUE(matches_topk_reference(rc, RunConfig(), rc.input_dtype.bits == 64 ? 1e-9 : 1e-6));
  }
}

TEST(TopKCe, WorkspaceFromTheCallerIsExact) {
  std::mt19937 rng(1808);
  for (int i = 0; i < 20; ++i) {
    const RegionCase rc = random_topk(rng);
    RunConfig exact, shorter;
    exact.workspace = RunConfig::kExact;
    shorter.workspace = RunConfig::kShort;
    const RunResult a = run_region(rc, exact), n = run_region(rc);
    ASSERT_TRUE(a.ok()) << a.error;
    EXPECT_TRUE(a.workspace_guard_ok);
    EXPECT_EQ(a.loss_bytes, n.loss_bytes);
    EXPECT_EQ(a.grad_bytes, n.grad_bytes);
    const RunResult s = run_region(rc, shorter);
    EXPECT_EQ(CULOSS_ERROR_INSUFFICIENT_WORKSPACE, s.status);
  }
}

// Several chunks of the thread pool: the same bits for 1, 2, 3 and 16 threads.
TEST(TopKCe, BitwiseTheSameForAnyThreadCount) {
  std::mt19937 rng(1809);
  RegionCase rc;
  rc.opt = default_options(CULOSS_TOPK_CE);
  rc.opt.top_fraction = 0.13;
  rc.shape = {3, 3, 64, 61};
  const int64_t P = 64 * 61;
  std::uniform_real_distribution<double> logit(-3, 3);
  for (int64_t i = 0; i < 3 * 3 * P; ++i) rc.input.push_back(std::round(logit(rng) * 8) / 8);
  rc.index_target = true;
  rc.target_dtype = testing_util::u8();
  rc.opt.ignore_index = 255;
  std::uniform_int_distribution<int> lab(0, 3);
  for (int64_t i = 0; i < 3 * P; ++i) {
    const int l = lab(rng);
    rc.labels.push_back(l == 3 ? 255 : l);  // quantised logits: many exact ties
  }
  std::vector<RunResult> runs;
  for (int threads : {1, 2, 3, 16}) {
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(threads));
    runs.push_back(run_region(rc));
    ASSERT_TRUE(runs.back().ok()) << runs.back().error;
  }
  culoss_set_num_threads(0);
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_EQ(runs[0].loss_bytes, runs[i].loss_bytes);
    EXPECT_EQ(runs[0].grad_bytes, runs[i].grad_bytes);
  }
  EXPECT_TRUE(matches_topk_reference(rc, RunConfig(), 1e-9));
}

// Dice + TopK CE in one CULOSS_SUM (nnU-Net's DC_and_topk_loss): the weighted sum of the two
// computed alone.
TEST(TopKCe, InsideASumWithDice) {
  std::mt19937 rng(1810);
  for (int i = 0; i < 40; ++i) {
    ElemConstraints k;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    RegionCase rc = random_topk(rng, k);
    RegionOptions dice = default_options(CULOSS_DICE);
    dice.class_axis = rc.opt.class_axis;
    dice.ignore_index = rc.opt.ignore_index;
    dice.check_targets = rc.opt.check_targets;
    Loss sum(CULOSS_SUM), t1(CULOSS_DICE), t2(CULOSS_TOPK_CE);
    ASSERT_EQ(CULOSS_SUCCESS, configure(t1, dice));
    ASSERT_EQ(CULOSS_SUCCESS, configure(t2, rc.opt));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, t1, 1.0));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, t2, 0.75));
    if (!rc.opt.check_targets) culoss_loss_set_int(sum, CULOSS_PARAM_CHECK_TARGETS, 0);
    RegionCase as_sum = rc;
    as_sum.opt.kind = CULOSS_SUM;
    const RunResult s = run_with(sum, as_sum);
    RegionCase d = rc;
    d.opt = dice;
    const RunResult a = run_region(d), b = run_region(rc);
    ASSERT_TRUE(s.ok() && a.ok() && b.ok()) << s.error << a.error << b.error;
    EXPECT_NEAR(s.loss[0], a.loss[0] + 0.75 * b.loss[0], 1e-12 * (1 + std::fabs(s.loss[0])));
    for (size_t e = 0; e < s.grad.size(); ++e)
      EXPECT_NEAR(s.grad[e], a.grad[e] + 0.75 * b.grad[e], 1e-12) << "element " << e;
  }
}

// ---- refusals ------------------------------------------------------------------------------

std::string last_error() { return culoss_last_error(); }

TEST(TopKCe, RefusesFractionsOutsideZeroToOne) {
  Loss l(CULOSS_TOPK_CE);
  for (double bad : {0.0, -0.5, 1.5, std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
              culoss_loss_set_float(l, CULOSS_PARAM_TOP_FRACTION, bad))
        << bad;
    EXPECT_THAT(last_error(),
                ::testing::HasSubstr(
                    "CULOSS_PARAM_TOP_FRACTION must be finite and in (0, 1] for CULOSS_TOPK_CE"));
  }
  double f = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_float(l, CULOSS_PARAM_TOP_FRACTION, &f));
  EXPECT_EQ(0.1, f);  // the default, untouched by the refusals
  EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_set_float(l, CULOSS_PARAM_TOP_FRACTION, 1.0));
  EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_set_float(l, CULOSS_PARAM_TOP_FRACTION, 1e-300));
  EXPECT_EQ(0, culoss_param_accepts(CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 0.0));
  EXPECT_EQ(1, culoss_param_accepts(CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 1.0));
  // Only TOPK_CE takes it.
  Loss ce(CULOSS_CROSS_ENTROPY);
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_loss_set_float(ce, CULOSS_PARAM_TOP_FRACTION, 0.5));
  EXPECT_THAT(
      last_error(),
      ::testing::HasSubstr("CULOSS_PARAM_TOP_FRACTION does not apply to CULOSS_CROSS_ENTROPY"));
}

TEST(TopKCe, RefusesReductionsOtherThanMean) {
  Loss l(CULOSS_TOPK_CE);
  for (int r : {CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE}) {
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_loss_set_int(l, CULOSS_PARAM_REDUCTION, r));
    EXPECT_THAT(last_error(),
                ::testing::HasSubstr("CULOSS_PARAM_REDUCTION must be MEAN (0) for CULOSS_TOPK_CE"));
  }
  EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(l, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_MEAN));
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_loss_set_int(l, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  EXPECT_THAT(last_error(), ::testing::HasSubstr("CULOSS_PARAM_ACTIVATION"));
}

TEST(TopKCe, StatisticsApiIsNotSupported) {
  RegionCase rc = pixels_case({0.5, -1.0, 2.0});
  Loss l(CULOSS_TOPK_CE);
  TestTensor in(rc.shape, testing_util::f32()), tgt({1, 3}, testing_util::i64());
  TestTensor stats({16}, testing_util::f64()), out({}, testing_util::f32());
  int64_t count = -1;
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, culoss_stats_size(l, in.dl(), tgt.dl(), &count));
  EXPECT_THAT(last_error(), ::testing::HasSubstr("threshold is global"));
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED,
            culoss_compute_stats(l, in.dl(), tgt.dl(), nullptr, stats.dl(), nullptr, 0, nullptr));
  EXPECT_THAT(last_error(),
              ::testing::HasSubstr("CULOSS_TOPK_CE keeps the pixels above a threshold"));
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED,
            culoss_compute_from_stats(l, in.dl(), tgt.dl(), nullptr, stats.dl(), out.dl(), nullptr,
                                      1.0, nullptr, 0, nullptr));
  EXPECT_THAT(last_error(), ::testing::HasSubstr("threshold is global"));
  // culoss_workspace_size still answers (for culoss_compute).
  size_t bytes = 0;
  EXPECT_EQ(CULOSS_SUCCESS, culoss_workspace_size(l, in.dl(), tgt.dl(), &bytes));
  EXPECT_GT(bytes, 0u);
  // Inside a SUM, too.
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, dice, 1.0));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, l, 1.0));
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, culoss_stats_size(sum, in.dl(), tgt.dl(), &count));
  EXPECT_THAT(last_error(), ::testing::HasSubstr("threshold is global"));
}

TEST(TopKCe, ASumHoldsOneTopKTerm) {
  RegionCase rc = pixels_case({0.5, -1.0, 2.0});
  Loss sum(CULOSS_SUM), a(CULOSS_TOPK_CE), b(CULOSS_TOPK_CE);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_float(b, CULOSS_PARAM_TOP_FRACTION, 0.5));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, a, 1.0));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, b, 1.0));
  RegionCase as_sum = rc;
  as_sum.opt.kind = CULOSS_SUM;
  const RunResult r = run_with(sum, as_sum);
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, r.status);
  EXPECT_THAT(r.error, ::testing::HasSubstr("a CULOSS_SUM may hold one CULOSS_TOPK_CE term"));
}

}  // namespace

// The CPU's fast path (src/cpu/fast_path.hpp: float SIMD passes for softmax cross-entropy and the
// softmax region kinds with class-index targets) against the long-double references and against
// the generic passes (CULOSS_CPU_FAST_PATH=0), within the tolerance docs/reference.md documents;
// bitwise the same for any thread count; edge cases (ignored pixels, all ignored, saturated
// logits, 16-bit inputs, pixel counts that are no multiple of the vector width, one pixel) and
// the CHECK_TARGETS refusal with the generic path's message.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/cpu_passes.hpp"
#include "losses/elementwise_check.hpp"
#include "losses/region_check.hpp"

namespace {

using namespace region_test;
using testing_util::Loss;

// The documented tolerance of the fast path (docs/reference.md, "Precision of the CPU fast
// path"): values within kValueTol relative (region values also absolute), gradients within
// kGradTol relative plus kGradTol x max |gradient| absolute.
constexpr double kValueTol = 1e-5;
constexpr double kGradTol = 1e-5;

const culoss_kind kKinds[] = {CULOSS_DICE,          CULOSS_JACCARD,          CULOSS_TVERSKY,
                              CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE, CULOSS_MCC,
                              CULOSS_CROSS_ENTROPY};
const culoss_kind kRegionKinds[] = {CULOSS_DICE,          CULOSS_JACCARD,          CULOSS_TVERSKY,
                                    CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE, CULOSS_MCC};

// Runs `f` with the fast path switched off (the generic passes in double).
template <class F>
auto generic(F&& f) {
  const culoss_test::GenericCpuPasses generic_passes;
  return f();
}

struct ThreadsGuard {
  ~ThreadsGuard() { culoss_set_num_threads(0); }
};

// A softmax case with class-index labels; `ignore_frac` of the pixels carry the ignore index.
RegionCase make_case(std::mt19937& rng, culoss_kind kind, std::vector<int64_t> shape,
                     DLDataType in_dt, DLDataType lab_dt, double ignore_frac = 0.1,
                     double logit_scale = 3.0, int class_axis = 1) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.opt.activation = CULOSS_ACTIVATION_SOFTMAX;
  rc.opt.class_axis = class_axis;
  rc.shape = std::move(shape);
  rc.input_dtype = in_dt;
  rc.index_target = true;
  rc.target_dtype = lab_dt;
  const int64_t C = num_classes(rc);
  rc.opt.ignore_index = lab_dt.bits == 8 ? 255 : -100;
  std::normal_distribution<double> normal(0.0, logit_scale);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  rc.input.resize(static_cast<size_t>(numel(rc.shape)));
  for (double& x : rc.input) x = normal(rng);
  rc.labels.resize(static_cast<size_t>(numel(without_axis(rc.shape, class_axis))));
  for (int64_t& l : rc.labels)
    l = u(rng) < ignore_frac ? rc.opt.ignore_index : static_cast<int64_t>(u(rng) * C) % C;
  return rc;
}

// Class weights in [0.2, 1.7) (4 cases in 10) and pixel weights in [0, 2) (3 in 10), at random.
void random_weights(std::mt19937& rng, RegionCase& rc) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  if (u(rng) < 0.4) {
    rc.opt.class_weights.resize(static_cast<size_t>(num_classes(rc)));
    for (double& w : rc.opt.class_weights) w = 0.2 + 1.5 * u(rng);
  }
  if (u(rng) < 0.3) {
    rc.pixel_weight.resize(rc.labels.size());
    for (double& w : rc.pixel_weight) w = 2.0 * u(rng);
  }
}

// Random options the fast path takes (all but the activation, layout and target form).
void randomize_options(std::mt19937& rng, RegionCase& rc) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  RegionOptions& o = rc.opt;
  if (o.kind == CULOSS_CROSS_ENTROPY) {
    o.reduction = u(rng) < 0.7 ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_SUM;
    if (u(rng) < 0.4) o.label_smoothing = 0.1 + 0.3 * u(rng);
  } else {
    const double r = u(rng);
    o.reduction =
        r < 0.6 ? CULOSS_REDUCTION_MEAN : (r < 0.8 ? CULOSS_REDUCTION_SUM : CULOSS_REDUCTION_NONE);
    o.batch = u(rng) < 0.3;
    o.include_background = u(rng) < 0.7;
    if (o.kind == CULOSS_DICE || o.kind == CULOSS_JACCARD) o.squared = u(rng) < 0.4;
    if (o.kind != CULOSS_GENERALIZED_DICE && u(rng) < 0.3) o.average = CULOSS_AVERAGE_MICRO;
  }
  random_weights(rng, rc);
  if (u(rng) < 0.3) rc.grad_scale = -2.0 + 5.0 * u(rng);
}

::testing::AssertionResult matches_ref(const RegionCase& rc) {
  RunConfig cfg;
  cfg.grad_f32 = true;
  if (rc.opt.kind == CULOSS_CROSS_ENTROPY)
    return matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30);
  return matches_reference(rc, cfg, kValueTol, kGradTol, 1.0);
}

::testing::AssertionResult matches_generic(const RegionCase& rc, const RunConfig& cfg) {
  const RunResult fast = run_region(rc, cfg);
  const RunResult slow = generic([&] { return run_region(rc, cfg); });
  if (!fast.ok() || !slow.ok())
    return ::testing::AssertionFailure() << "fast: " << fast.error << " generic: " << slow.error
                                         << "\n  case: " << describe_case(rc);
  ::testing::AssertionResult v =
      close_vectors("loss", fast.loss, slow.loss, Tol{kValueTol, kValueTol});
  if (!v) return v << "\n  case: " << describe_case(rc);
  if (cfg.grad) {
    ::testing::AssertionResult g =
        close_vectors("grad", fast.grad, slow.grad, Tol{kGradTol, kGradTol * max_abs(slow.grad)});
    if (!g) return g << "\n  case: " << describe_case(rc);
  }
  return ::testing::AssertionSuccess();
}

// A CULOSS_SUM that `build(sum)` fills with terms (copied when added), run on the tensors of
// `rc` with a float32 gradient: the fast path against the generic passes.
template <class Build>
::testing::AssertionResult sum_matches_generic(const RegionCase& rc, Build&& build) {
  auto run = [&] {
    Loss sum(CULOSS_SUM);
    build(static_cast<culoss_loss>(sum));
    RunConfig cfg;
    cfg.grad_f32 = true;
    RegionCase sc = rc;
    sc.opt.kind = CULOSS_SUM;
    return run_with(sum, sc, cfg);
  };
  const RunResult fast = run();
  const RunResult slow = generic(run);
  if (!fast.ok() || !slow.ok())
    return ::testing::AssertionFailure() << "fast: " << fast.error << " generic: " << slow.error;
  ::testing::AssertionResult v =
      close_vectors("loss", fast.loss, slow.loss, Tol{kValueTol, kValueTol});
  if (!v) return v;
  return close_vectors("grad", fast.grad, slow.grad, Tol{kGradTol, kGradTol * max_abs(slow.grad)});
}

// Shapes whose pixel counts are no multiple of any vector width (and one that is), 2D and 3D.
const std::vector<std::vector<int64_t>> kShapes = {{2, 4, 7, 5},   {3, 5, 33},      {1, 3, 1, 1},
                                                   {2, 2, 16, 16}, {1, 6, 3, 4, 5}, {2, 3, 70, 71}};

TEST(FastPath, MatchesReferencesAndGenericPassEveryKindDtype) {
  std::mt19937 rng(1601);
  const DLDataType in_dts[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  const DLDataType lab_dts[] = {testing_util::i64(), testing_util::i32(), testing_util::u8()};
  int it = 0;
  for (culoss_kind kind : kKinds)
    for (const DLDataType& in_dt : in_dts)
      for (const DLDataType& lab_dt : lab_dts) {
        const std::vector<int64_t>& shape = kShapes[static_cast<size_t>(it++) % kShapes.size()];
        RegionCase rc = make_case(rng, kind, shape, in_dt, lab_dt);
        randomize_options(rng, rc);
        EXPECT_TRUE(matches_ref(rc));
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_generic(rc, cfg));
        cfg.grad = false;  // value only
        EXPECT_TRUE(matches_generic(rc, cfg));
      }
}

TEST(FastPath, MatchesReferenceOnEveryShape) {
  std::mt19937 rng(1602);
  for (const std::vector<int64_t>& shape : kShapes)
    for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY}) {
      RegionCase rc = make_case(rng, kind, shape, testing_util::f32(), testing_util::i64());
      EXPECT_TRUE(matches_ref(rc));
    }
}

// Channels-last input (class axis last), gathered lane by lane.
TEST(FastPath, ChannelsLastMatchesReferencesAndGenericPass) {
  std::mt19937 rng(1610);
  const std::vector<std::vector<int64_t>> shapes = {{2, 7, 5, 4}, {3, 33, 5}, {2, 16, 16, 3}};
  int it = 0;
  for (culoss_kind kind : kKinds)
    for (const DLDataType& in_dt : {testing_util::f32(), testing_util::bf16()}) {
      RegionCase rc = make_case(rng, kind, shapes[static_cast<size_t>(it++) % shapes.size()], in_dt,
                                testing_util::i64(), 0.1, 3.0, /*class_axis=*/-1);
      randomize_options(rng, rc);
      EXPECT_TRUE(matches_ref(rc));
      RunConfig cfg;
      cfg.grad_f32 = true;
      EXPECT_TRUE(matches_generic(rc, cfg));
    }
}

// Binary cross-entropy with a sigmoid on dense targets (float32 soft values or a uint8 mask).
RegionCase bce_case(std::mt19937& rng, std::vector<int64_t> shape, DLDataType in_dt,
                    DLDataType tgt_dt) {
  RegionCase rc;
  rc.opt = default_options(CULOSS_BCE);
  rc.shape = std::move(shape);
  rc.input_dtype = in_dt;
  rc.target_dtype = tgt_dt;
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  rc.input.resize(static_cast<size_t>(numel(rc.shape)));
  for (double& x : rc.input) x = normal(rng);
  rc.target.resize(rc.input.size());
  for (double& t : rc.target) t = tgt_dt.bits == 8 ? (u(rng) < 0.3 ? 1.0 : 0.0) : u(rng);
  const int64_t C = num_classes(rc);
  if (u(rng) < 0.5) rc.opt.reduction = CULOSS_REDUCTION_SUM;
  if (u(rng) < 0.5) rc.opt.label_smoothing = 0.2 * u(rng);
  if (u(rng) < 0.5) {
    rc.opt.pos_weight.resize(static_cast<size_t>(C));
    for (double& w : rc.opt.pos_weight) w = 0.5 + 2.0 * u(rng);
  }
  if (u(rng) < 0.5) {
    rc.opt.class_weights.resize(static_cast<size_t>(C));
    for (double& w : rc.opt.class_weights) w = 0.2 + u(rng);
  }
  if (u(rng) < 0.4) {
    rc.pixel_weight.resize(static_cast<size_t>(numel(without_axis(rc.shape, 1))));
    for (double& w : rc.pixel_weight) w = 2.0 * u(rng);
  }
  if (u(rng) < 0.3) rc.grad_scale = -2.0 + 5.0 * u(rng);
  return rc;
}

TEST(FastPath, BinaryCrossEntropyMatchesReferenceAndGenericPass) {
  ThreadsGuard guard;
  std::mt19937 rng(1611);
  const std::vector<std::vector<int64_t>> shapes = {
      {2, 1, 7, 5}, {3, 2, 33}, {1, 1, 1, 1}, {2, 3, 16, 16}, {2, 1, 70, 71}};
  int it = 0;
  for (const DLDataType& in_dt : {testing_util::f32(), testing_util::f16(), testing_util::bf16()})
    for (const DLDataType& tgt_dt : {testing_util::f32(), testing_util::u8()})
      for (int k = 0; k < 2; ++k) {
        RegionCase rc =
            bce_case(rng, shapes[static_cast<size_t>(it++) % shapes.size()], in_dt, tgt_dt);
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30));
        EXPECT_TRUE(matches_generic(rc, cfg));
      }
  RegionCase big = bce_case(rng, {3, 2, 97, 131}, testing_util::f32(), testing_util::f32());
  RunConfig cfg;
  cfg.grad_f32 = true;
  RunResult first;
  for (int threads : {1, 2, 3, 16}) {
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(threads));
    const RunResult r = run_region(big, cfg);
    ASSERT_TRUE(r.ok()) << r.error;
    if (threads == 1) {
      first = r;
      continue;
    }
    EXPECT_EQ(first.loss_bytes, r.loss_bytes) << threads << " threads";
    EXPECT_EQ(first.grad_bytes, r.grad_bytes) << threads << " threads";
  }
  RegionCase saturated = bce_case(rng, {2, 2, 9, 5}, testing_util::f32(), testing_util::u8());
  for (size_t i = 0; i < saturated.input.size(); ++i) saturated.input[i] = i % 3 ? -1e4 : 1e4;
  EXPECT_TRUE(matches_generic(saturated, cfg));
}

// A SUM of covered terms (Dice + cross-entropy, the fused DiceCE) equals the generic passes.
TEST(FastPath, SumOfTermsMatchesGenericPass) {
  std::mt19937 rng(1603);
  for (int it = 0; it < 6; ++it) {
    RegionCase rc = make_case(rng, CULOSS_DICE, kShapes[static_cast<size_t>(it)],
                              testing_util::f32(), testing_util::i64());
    if (it % 2) rc.pixel_weight.assign(rc.labels.size(), 0.5);
    EXPECT_TRUE(sum_matches_generic(rc, [&](culoss_loss sum) {
      Loss dice(CULOSS_DICE), ce(CULOSS_CROSS_ENTROPY), tv(CULOSS_TVERSKY);
      culoss_loss_set_int(ce, CULOSS_PARAM_IGNORE_INDEX, rc.opt.ignore_index);
      culoss_loss_set_int(dice, CULOSS_PARAM_IGNORE_INDEX, rc.opt.ignore_index);
      culoss_loss_set_int(tv, CULOSS_PARAM_IGNORE_INDEX, rc.opt.ignore_index);
      culoss_loss_set_int(dice, CULOSS_PARAM_SQUARED_DENOMINATOR, it % 3 == 0);
      culoss_loss_set_float(ce, CULOSS_PARAM_LABEL_SMOOTHING, it % 2 ? 0.1 : 0.0);
      culoss_loss_add_term(sum, dice, 1.0);
      culoss_loss_add_term(sum, ce, 0.7);
      if (it >= 3) culoss_loss_add_term(sum, tv, 0.3);
    }));
  }
}

// Several chunks per image and several images: 1, 2, 3 and 16 threads give the same bits.
TEST(FastPath, BitwiseSameForAnyThreadCount) {
  ThreadsGuard guard;
  std::mt19937 rng(1604);
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY, CULOSS_GENERALIZED_DICE})
    for (const DLDataType& in_dt : {testing_util::f32(), testing_util::bf16()}) {
      RegionCase rc = make_case(rng, kind, {3, 4, 97, 131}, in_dt, testing_util::i64());
      RunConfig cfg;
      cfg.grad_f32 = true;
      RunResult first;
      for (int threads : {1, 2, 3, 16}) {
        ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(threads));
        const RunResult r = run_region(rc, cfg);
        ASSERT_TRUE(r.ok()) << r.error;
        if (threads == 1) {
          first = r;
          continue;
        }
        EXPECT_EQ(first.loss_bytes, r.loss_bytes) << threads << " threads";
        EXPECT_EQ(first.grad_bytes, r.grad_bytes) << threads << " threads";
      }
      EXPECT_TRUE(matches_ref(rc));
    }
}

TEST(FastPath, AllIgnoredGivesZeroGradient) {
  std::mt19937 rng(1605);
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY}) {
    RegionCase rc = make_case(rng, kind, {2, 3, 9, 7}, testing_util::f32(), testing_util::i64(),
                              /*ignore_frac=*/1.0);
    RunConfig cfg;
    cfg.grad_f32 = true;
    const RunResult r = run_region(rc, cfg);
    ASSERT_TRUE(r.ok()) << r.error;
    for (double g : r.grad) EXPECT_EQ(0.0, g);
    EXPECT_TRUE(matches_ref(rc));
    EXPECT_TRUE(matches_generic(rc, cfg));
  }
}

TEST(FastPath, SaturatedLogits) {
  std::mt19937 rng(1606);
  for (culoss_kind kind : kKinds) {
    RegionCase rc = make_case(rng, kind, {2, 4, 11, 3}, testing_util::f32(), testing_util::i64());
    for (size_t i = 0; i < rc.input.size(); ++i) rc.input[i] = (i * 7919) % 3 ? -1e4 : 1e4;
    RunConfig cfg;
    cfg.grad_f32 = true;
    const RunResult r = run_region(rc, cfg);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_TRUE(all_finite(r.loss));
    EXPECT_TRUE(all_finite(r.grad));
    EXPECT_TRUE(matches_generic(rc, cfg));
  }
}

TEST(FastPath, OnePixelAndInRangeIgnoreIndex) {
  std::mt19937 rng(1607);
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY}) {
    RegionCase one = make_case(rng, kind, {1, 3, 1}, testing_util::f32(), testing_util::i64(), 0.0);
    EXPECT_TRUE(matches_ref(one));
    RegionCase in_range =
        make_case(rng, kind, {2, 4, 5, 6}, testing_util::f32(), testing_util::i32(), 0.0);
    in_range.opt.ignore_index = 2;  // a class label that is ignored
    EXPECT_TRUE(matches_ref(in_range));
  }
}

// The MEAN of cross-entropy divides by the counted labels, Σ ω_y over the pixels that count,
// which the fast path counts in integers (label_counts_chunk_t). With zero logits p = 1/C, so
// the gradient at a counted pixel is exactly ω_y (1/C − [c = y]) / Σ ω_y: one pixel too many or
// too few in the count shows at 1e−4 here (the value, log C, within the fast path's tolerance).
// Tails of pixels (no multiple of any vector width), every label dtype, ignored pixels, class
// weights, CHECK_TARGETS on (the count checks the labels) and off, 1 and 2 threads.
TEST(FastPath, CrossEntropyMeanDividesByTheExactCount) {
  ThreadsGuard restore;
  std::mt19937 rng(2417);
  int cases = 0;
  for (DLDataType lab_dt : {testing_util::u8(), testing_util::i32(), testing_util::i64()})
    for (const std::vector<int64_t>& shape :
         {std::vector<int64_t>{3, 4, 37, 23}, std::vector<int64_t>{2, 5, 131}})
      for (bool weighted : {false, true})
        for (bool check : {true, false})
          for (int threads : {1, 2}) {
            RegionCase rc =
                make_case(rng, CULOSS_CROSS_ENTROPY, shape, testing_util::f32(), lab_dt, 0.3);
            std::fill(rc.input.begin(), rc.input.end(), 0.0);
            rc.opt.check_targets = check;
            const int64_t C = shape[1], N = shape[0], P = numel(shape) / (N * C);
            if (weighted) {
              rc.opt.class_weights.resize(static_cast<size_t>(C));
              for (int64_t c = 0; c < C; ++c) rc.opt.class_weights[c] = 0.25 * (c + 1);
            }
            const auto weight = [&](int64_t y) {
              return weighted ? static_cast<long double>(rc.opt.class_weights[y]) : 1.0L;
            };
            long double divisor = 0;
            for (int64_t y : rc.labels)
              if (y != rc.opt.ignore_index) divisor += weight(y);
            ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(threads));
            RunConfig cfg;
            cfg.grad_f32 = true;
            const RunResult r = run_region(rc, cfg);
            ASSERT_TRUE(r.ok()) << r.error;
            EXPECT_NEAR(std::log(static_cast<double>(C)), r.loss[0], kValueTol)
                << describe_case(rc);
            for (int64_t n = 0; n < N; ++n)
              for (int64_t c = 0; c < C; ++c)
                for (int64_t q = 0; q < P; ++q) {
                  const int64_t y = rc.labels[static_cast<size_t>(n * P + q)];
                  const long double want =
                      y == rc.opt.ignore_index
                          ? 0.0L
                          : weight(y) * (1.0L / C - (c == y ? 1.0L : 0.0L)) / divisor;
                  const double got = r.grad[static_cast<size_t>((n * C + c) * P + q)];
                  ASSERT_NEAR(static_cast<double>(want), got,
                              1e-6 * std::fabs(static_cast<double>(want)))
                      << describe_case(rc) << " at n=" << n << " c=" << c << " q=" << q;
                }
            ++cases;
          }
  EXPECT_EQ(48, cases);
}

// The gradient written over the float32 input (grad_input is the input's DLTensor).
TEST(FastPath, GradientOverTheInput) {
  std::mt19937 rng(1609);
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY}) {
    RegionCase rc = make_case(rng, kind, {2, 4, 13, 9}, testing_util::f32(), testing_util::i64());
    RunConfig separate, in_place;
    in_place.in_place = true;
    const RunResult a = run_region(rc, separate), b = run_region(rc, in_place);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.loss_bytes, b.loss_bytes);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes);
  }
}

// CHECK_TARGETS: the fast path refuses the first bad label with the generic path's status and
// message, before anything is written: Dice alone caches its probabilities in the gradient
// (FastCall::cache_p), so its labels are checked in a pass of their own first; with the
// gradient over the input, the input survives the refusal too.
TEST(FastPath, InvalidLabelRefusedAsTheGenericPass) {
  std::mt19937 rng(1608);
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_CROSS_ENTROPY})
    for (bool weights : {false, true})
      for (bool in_place : {false, true}) {
        RegionCase rc =
            make_case(rng, kind, {2, 4, 40, 50}, testing_util::f32(), testing_util::i64());
        rc.labels[1234] = 9;
        rc.labels[2345] = -3;
        if (weights) rc.pixel_weight.assign(rc.labels.size(), 1.0);
        RunConfig cfg;
        cfg.grad_f32 = true;
        cfg.in_place = in_place;
        const RunResult fast = run_region(rc, cfg);
        const RunResult slow = generic([&] { return run_region(rc, cfg); });
        EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, fast.status);
        EXPECT_EQ(slow.status, fast.status);
        EXPECT_EQ(slow.error, fast.error);
        EXPECT_NE(std::string::npos, fast.error.find("1234")) << fast.error;
        EXPECT_TRUE(fast.untouched_on_failure) << kind << " in place " << in_place;
      }
}

// The probabilities cached in the gradient (region terms alone) give the bits of the element
// pass that computes them, for every label dtype, a tail of pixels, and without CHECK_TARGETS.
TEST(FastPath, CachedProbabilitiesMatchTheGenericPasses) {
  std::mt19937 rng(1610);
  for (culoss_kind kind : {CULOSS_DICE, CULOSS_TVERSKY, CULOSS_GENERALIZED_DICE})
    for (DLDataType lab : {testing_util::i64(), testing_util::i32(), testing_util::u8()})
      for (bool check : {true, false}) {
        RegionCase rc = make_case(rng, kind, {3, 5, 11, 7}, testing_util::f32(), lab);
        rc.opt.check_targets = check;
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_generic(rc, cfg)) << kind;
      }
}

}  // namespace

namespace {

// The fast path's own checks of dense targets and pixel weights (vector passes before anything
// is written) refuse the first bad element with the generic check's status and message; every
// target is checked before any pixel weight.
TEST(FastPath, InvalidDenseTargetAndPixelWeightRefusedAsTheGenericPass) {
  std::mt19937 rng(1611);
  struct Bad {
    const char* what;
    DLDataType target;
    double target_value;  // at element 1234 (0: leave the targets valid)
    double weight_value;  // at pixel 777 (0: leave the weights valid)
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const Bad& bad : {Bad{"target 1.5", testing_util::f32(), 1.5, 0.0},
                         Bad{"target NaN", testing_util::f32(), nan, 0.0},
                         Bad{"target -0.25", testing_util::f32(), -0.25, 0.0},
                         Bad{"uint8 target 2", testing_util::u8(), 2.0, 0.0},
                         Bad{"weight -1", testing_util::f32(), 0.0, -1.0},
                         Bad{"weight NaN", testing_util::f32(), 0.0, nan},
                         Bad{"both: the target first", testing_util::f32(), 7.0, -1.0}})
    for (bool in_place : {false, true}) {
      RegionCase rc = bce_case(rng, {2, 3, 41, 29}, testing_util::f32(), bad.target);
      rc.opt.check_targets = true;
      rc.pixel_weight.assign(static_cast<size_t>(numel(without_axis(rc.shape, 1))), 1.0);
      if (bad.target_value != 0.0) rc.target[1234] = bad.target_value;
      if (bad.weight_value != 0.0) rc.pixel_weight[777] = bad.weight_value;
      RunConfig cfg;
      cfg.grad_f32 = true;
      cfg.in_place = in_place;
      const RunResult fast = run_region(rc, cfg);
      const RunResult slow = generic([&] { return run_region(rc, cfg); });
      EXPECT_FALSE(fast.ok()) << bad.what;
      EXPECT_EQ(slow.status, fast.status) << bad.what;
      EXPECT_EQ(slow.error, fast.error) << bad.what;
      EXPECT_NE(std::string::npos, fast.error.find(bad.target_value != 0.0 ? "1234" : "777"))
          << bad.what << ": " << fast.error;
      EXPECT_TRUE(fast.untouched_on_failure) << bad.what;
    }
  // Dice with pixel weights: its labels, then its weights, before its cached probabilities.
  RegionCase rc =
      make_case(rng, CULOSS_DICE, {2, 4, 40, 50}, testing_util::f32(), testing_util::i64());
  rc.pixel_weight.assign(rc.labels.size(), 1.0);
  rc.pixel_weight[2001] = -0.5;
  RunConfig cfg;
  cfg.grad_f32 = true;
  const RunResult fast = run_region(rc, cfg);
  const RunResult slow = generic([&] { return run_region(rc, cfg); });
  EXPECT_NE(CULOSS_SUCCESS, slow.status);
  EXPECT_EQ(slow.status, fast.status);
  EXPECT_EQ(slow.error, fast.error);
  EXPECT_NE(std::string::npos, fast.error.find("2001")) << fast.error;
  EXPECT_TRUE(fast.untouched_on_failure);
}

}  // namespace

namespace {

// A region case with a sigmoid on dense targets (0/1 masks in uint8, soft values in float32),
// with random options of the region kinds.
RegionCase dense_case(std::mt19937& rng, culoss_kind kind, std::vector<int64_t> shape,
                      DLDataType in_dt, DLDataType tgt_dt) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.opt.activation = CULOSS_ACTIVATION_SIGMOID;
  rc.shape = std::move(shape);
  rc.input_dtype = in_dt;
  rc.index_target = false;
  rc.target_dtype = tgt_dt;
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  rc.input.resize(static_cast<size_t>(numel(rc.shape)));
  for (double& x : rc.input) x = normal(rng);
  rc.target.resize(rc.input.size());
  const bool soft = tgt_dt.bits == 32 && u(rng) < 0.5;
  for (double& t : rc.target) t = soft ? u(rng) : (u(rng) < 0.3 ? 1.0 : 0.0);
  const int64_t C = num_classes(rc);
  RegionOptions& o = rc.opt;
  const double r = u(rng);
  o.reduction =
      r < 0.6 ? CULOSS_REDUCTION_MEAN : (r < 0.8 ? CULOSS_REDUCTION_SUM : CULOSS_REDUCTION_NONE);
  o.batch = u(rng) < 0.3;
  o.include_background = u(rng) < 0.7;
  if (kind == CULOSS_DICE || kind == CULOSS_JACCARD) o.squared = u(rng) < 0.4;
  if (kind != CULOSS_GENERALIZED_DICE && u(rng) < 0.3) o.average = CULOSS_AVERAGE_MICRO;
  if (u(rng) < 0.4) {
    o.class_weights.resize(static_cast<size_t>(C));
    for (double& w : o.class_weights) w = 0.2 + 1.5 * u(rng);
  }
  if (u(rng) < 0.3) {
    rc.pixel_weight.resize(static_cast<size_t>(numel(without_axis(rc.shape, 1))));
    for (double& w : rc.pixel_weight) w = 2.0 * u(rng);
  }
  if (u(rng) < 0.3) rc.grad_scale = -2.0 + 5.0 * u(rng);
  return rc;
}

// Region kinds with a sigmoid on dense targets: the sigmoid passes against the long-double
// references and the generic passes, every input and target dtype.
TEST(FastPath, SigmoidRegionOnDenseTargetsMatchesReferencesAndGenericPass) {
  std::mt19937 rng(1612);
  const DLDataType in_dts[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  int it = 0;
  for (culoss_kind kind : kRegionKinds)
    for (const DLDataType& in_dt : in_dts)
      for (const DLDataType& tgt_dt : {testing_util::f32(), testing_util::u8()}) {
        const std::vector<int64_t>& shape = kShapes[static_cast<size_t>(it++) % kShapes.size()];
        RegionCase rc = dense_case(rng, kind, shape, in_dt, tgt_dt);
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_reference(rc, cfg, kValueTol, kGradTol, 1.0)) << describe_case(rc);
        EXPECT_TRUE(matches_generic(rc, cfg));
        cfg.grad = false;
        EXPECT_TRUE(matches_generic(rc, cfg));
      }
}

// Dice + binary cross-entropy with a sigmoid on one call (the usual binary-segmentation sum),
// and MCC + BCE: one sigmoid pass for both terms.
TEST(FastPath, SigmoidSumOfRegionAndBceMatchesGenericPass) {
  std::mt19937 rng(1613);
  for (int it = 0; it < 8; ++it) {
    const culoss_kind kind = it % 2 ? CULOSS_MCC : CULOSS_DICE;
    RegionCase rc =
        dense_case(rng, kind, kShapes[static_cast<size_t>(it) % kShapes.size()],
                   testing_util::f32(), it % 3 ? testing_util::f32() : testing_util::u8());
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    EXPECT_TRUE(sum_matches_generic(rc, [&](culoss_loss sum) {
      Loss region(kind), bce(CULOSS_BCE);
      for (culoss_loss l : {static_cast<culoss_loss>(region), static_cast<culoss_loss>(bce)})
        culoss_loss_set_int(l, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID);
      culoss_loss_set_float(bce, CULOSS_PARAM_LABEL_SMOOTHING, it % 4 == 1 ? 0.1 : 0.0);
      culoss_loss_add_term(sum, region, 1.0);
      culoss_loss_add_term(sum, bce, 0.5);
    }));
  }
}

}  // namespace

namespace {

// The binary focal loss with a sigmoid on dense targets (alone, and with Dice in one call): the
// sigmoid passes against the long-double reference and the generic passes, γ on its special
// values (0, 1, 2) and off them, α on and off (α < 0), soft and 0/1 targets.
TEST(FastPath, SigmoidFocalMatchesReferenceAndGenericPass) {
  std::mt19937 rng(1614);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double gammas[] = {0.0, 1.0, 2.0, 1.5, 0.5};
  int it = 0;
  for (double gamma : gammas)
    for (const DLDataType& in_dt : {testing_util::f32(), testing_util::bf16()})
      for (const DLDataType& tgt_dt : {testing_util::f32(), testing_util::u8()}) {
        RegionCase rc =
            bce_case(rng, kShapes[static_cast<size_t>(it++) % kShapes.size()], in_dt, tgt_dt);
        rc.opt = default_options(CULOSS_FOCAL);
        rc.opt.activation = CULOSS_ACTIVATION_SIGMOID;
        rc.opt.gamma = gamma;
        rc.opt.alpha = u(rng) < 0.3 ? -1.0 : 0.25;
        rc.opt.reduction = u(rng) < 0.7 ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_SUM;
        if (u(rng) < 0.4) {
          rc.opt.class_weights.resize(static_cast<size_t>(num_classes(rc)));
          for (double& w : rc.opt.class_weights) w = 0.2 + u(rng);
        }
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30));
        EXPECT_TRUE(matches_generic(rc, cfg));
      }
  // Dice + focal, the usual pair for imbalanced binary segmentation
  for (int k = 0; k < 4; ++k) {
    RegionCase rc = dense_case(rng, CULOSS_DICE, kShapes[static_cast<size_t>(k)],
                               testing_util::f32(), testing_util::f32());
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    EXPECT_TRUE(sum_matches_generic(rc, [&](culoss_loss sum) {
      Loss dice(CULOSS_DICE), focal(CULOSS_FOCAL);
      culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID);
      culoss_loss_set_int(focal, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID);
      culoss_loss_set_float(focal, CULOSS_PARAM_GAMMA, gammas[k]);
      culoss_loss_add_term(sum, dice, 1.0);
      culoss_loss_add_term(sum, focal, 2.0);
    }));
  }
}

// The focal loss with a softmax on class-index labels (the general element pass with the focal
// term at the label's class): against the long-double reference and the generic passes, γ on
// its special values (0, 1, 2) and off them, every input and label dtype, NCHW and NHWC, class
// and pixel weights, ignored pixels, saturated logits; and summed with Dice and cross-entropy.
TEST(FastPath, SoftmaxFocalMatchesReferenceAndGenericPass) {
  std::mt19937 rng(1616);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double gammas[] = {0.0, 1.0, 2.0, 0.5, 3.7};
  const DLDataType in_dts[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  const DLDataType lab_dts[] = {testing_util::i64(), testing_util::i32(), testing_util::u8()};
  int it = 0;
  for (double gamma : gammas)
    for (const DLDataType& in_dt : in_dts)
      for (const DLDataType& lab_dt : lab_dts) {
        const int axis = it % 3 == 2 ? -1 : 1;
        std::vector<int64_t> shape = kShapes[static_cast<size_t>(it++) % kShapes.size()];
        if (axis == -1) std::rotate(shape.begin() + 1, shape.begin() + 2, shape.end());
        const double logit_scale = it % 4 == 0 ? 40.0 : 3.0;  // saturated: p_t = 1 or 0
        RegionCase rc = make_case(rng, CULOSS_FOCAL, shape, in_dt, lab_dt, 0.1, logit_scale, axis);
        rc.opt.gamma = gamma;
        rc.opt.reduction = u(rng) < 0.7 ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_SUM;
        random_weights(rng, rc);
        if (u(rng) < 0.3) rc.grad_scale = -2.0 + 5.0 * u(rng);
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30))
            << "gamma " << gamma;
        EXPECT_TRUE(matches_generic(rc, cfg)) << "gamma " << gamma;
        cfg.grad = false;
        EXPECT_TRUE(matches_generic(rc, cfg)) << "gamma " << gamma << ", value only";
      }
  // Dice + focal and cross-entropy + focal in one call
  for (int k = 0; k < 4; ++k) {
    RegionCase rc = make_case(rng, CULOSS_DICE, kShapes[static_cast<size_t>(k)],
                              testing_util::f32(), testing_util::i64());
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    EXPECT_TRUE(sum_matches_generic(
        rc,
        [&](culoss_loss sum) {
          Loss other(k % 2 ? CULOSS_DICE : CULOSS_CROSS_ENTROPY), focal(CULOSS_FOCAL);
          for (culoss_loss term :
               {static_cast<culoss_loss>(other), static_cast<culoss_loss>(focal)}) {
            culoss_loss_set_int(term, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX);
            culoss_loss_set_int(term, CULOSS_PARAM_IGNORE_INDEX, -100);
          }
          culoss_loss_set_float(focal, CULOSS_PARAM_GAMMA, gammas[k]);
          culoss_loss_add_term(sum, other, 1.0);
          culoss_loss_add_term(sum, focal, 2.0);
        }))
        << "term " << k;
  }
}

// Cross-entropy tolerant of missing annotations on the fast path: each image lacks one or two
// foreground classes (their pixels labelled background), so the background term is dropped
// where the argmax is a missing class; every input and label dtype, NCHW and NHWC, pixel
// weights, ignored pixels, ties of the largest logit (the lowest class is the argmax); and
// summed with Dice.
TEST(FastPath, MarginalCrossEntropyMatchesReferenceAndGenericPass) {
  std::mt19937 rng(1618);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const DLDataType in_dts[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  const DLDataType lab_dts[] = {testing_util::i64(), testing_util::i32(), testing_util::u8()};
  int it = 0;
  for (const DLDataType& in_dt : in_dts)
    for (const DLDataType& lab_dt : lab_dts)
      for (int rep = 0; rep < 2; ++rep) {
        const int axis = it % 3 == 2 ? -1 : 1;
        std::vector<int64_t> shape = kShapes[static_cast<size_t>(it++) % kShapes.size()];
        if (shape[1] < 3) shape[1] = 3;
        if (axis == -1) std::rotate(shape.begin() + 1, shape.begin() + 2, shape.end());
        RegionCase rc = make_case(rng, CULOSS_MARGINAL_CE, shape, in_dt, lab_dt, 0.1, 3.0, axis);
        const int64_t C = num_classes(rc), N = shape[0];
        const int64_t P = static_cast<int64_t>(rc.labels.size()) / N;
        for (int64_t n = 0; n < N; ++n) {  // image n lacks class 1 + n % (C − 1), maybe one more
          const int64_t gone = 1 + n % (C - 1), also = u(rng) < 0.5 ? 1 + (n + 1) % (C - 1) : gone;
          for (int64_t q = 0; q < P; ++q) {
            int64_t& l = rc.labels[static_cast<size_t>(n * P + q)];
            if (l == gone || l == also) l = 0;
          }
        }
        if (rep == 1)  // ties: every logit of some pixels equal (argmax 0) or two tied maxima
          for (size_t i = 0; i < rc.input.size(); i += 7) rc.input[i] = 1.5;
        rc.opt.reduction = u(rng) < 0.7 ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_SUM;
        if (u(rng) < 0.3) {
          rc.pixel_weight.resize(rc.labels.size());
          for (double& w : rc.pixel_weight) w = 2.0 * u(rng);
        }
        if (u(rng) < 0.3) rc.grad_scale = -2.0 + 5.0 * u(rng);
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30));
        EXPECT_TRUE(matches_generic(rc, cfg));
        cfg.grad = false;
        EXPECT_TRUE(matches_generic(rc, cfg));
      }
  for (int k = 0; k < 2; ++k) {  // Dice + marginal CE
    RegionCase rc = make_case(rng, CULOSS_DICE, kShapes[static_cast<size_t>(3 + k)],
                              testing_util::f32(), testing_util::i64());
    for (int64_t& l : rc.labels)
      if (l == 1) l = 0;
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    EXPECT_TRUE(sum_matches_generic(rc,
                                    [&](culoss_loss sum) {
                                      Loss dice(CULOSS_DICE), marginal(CULOSS_MARGINAL_CE);
                                      culoss_loss_set_int(dice, CULOSS_PARAM_IGNORE_INDEX, -100);
                                      culoss_loss_set_int(marginal, CULOSS_PARAM_IGNORE_INDEX,
                                                          -100);
                                      culoss_loss_add_term(sum, dice, 1.0);
                                      culoss_loss_add_term(sum, marginal, 1.0);
                                    }))
        << "sum " << k;
  }
}

// A binary mask: one class, a sigmoid, class-index labels 0/1 (and the ignore index; `ignore`
// of the pixels), the kind's options at random as the dense-target tests draw them.
RegionCase mask_case(std::mt19937& rng, culoss_kind kind, std::vector<int64_t> shape,
                     DLDataType in_dt, DLDataType lab_dt, int64_t ignore_index, double ignore) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.opt.activation = CULOSS_ACTIVATION_SIGMOID;
  rc.opt.ignore_index = ignore_index;
  rc.shape = std::move(shape);
  rc.input_dtype = in_dt;
  rc.index_target = true;
  rc.target_dtype = lab_dt;
  std::normal_distribution<double> normal(0.0, 3.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  rc.input.resize(static_cast<size_t>(numel(rc.shape)));
  for (double& x : rc.input) x = normal(rng);
  rc.labels.resize(static_cast<size_t>(numel(without_axis(rc.shape, 1))));
  for (int64_t& l : rc.labels) l = u(rng) < ignore ? ignore_index : (u(rng) < 0.3 ? 1 : 0);
  if (u(rng) < 0.5) rc.opt.reduction = CULOSS_REDUCTION_SUM;
  if (kind == CULOSS_BCE && u(rng) < 0.5) rc.opt.label_smoothing = 0.2 * u(rng);
  if (kind == CULOSS_BCE && u(rng) < 0.5) rc.opt.pos_weight = {0.5 + 2.0 * u(rng)};
  if (kind == CULOSS_FOCAL) rc.opt.gamma = u(rng) < 0.5 ? 2.0 : 1.5;
  if (u(rng) < 0.4) {
    rc.pixel_weight.resize(rc.labels.size());
    for (double& w : rc.pixel_weight) w = 2.0 * u(rng);
  }
  if (u(rng) < 0.3) rc.grad_scale = -2.0 + 5.0 * u(rng);
  return rc;
}

// Binary masks (C = 1 class-index labels with a sigmoid) on the sigmoid passes: BCE, the binary
// focal loss and Dice against the long-double references and the generic passes, every label
// dtype, the ignore index outside {0, 1} and on either value, pixel weights; Dice + BCE in one
// call; a label that is no mask value refused with the generic pass's status and message.
TEST(FastPath, BinaryMaskMatchesReferenceAndGenericPass) {
  std::mt19937 rng(1617);
  const DLDataType lab_dts[] = {testing_util::u8(), testing_util::i32(), testing_util::i64()};
  int it = 0;
  for (culoss_kind kind : {CULOSS_BCE, CULOSS_FOCAL, CULOSS_DICE})
    for (const DLDataType& lab_dt : lab_dts)
      for (int64_t ignore : {int64_t{-1}, int64_t{0}, int64_t{1}}) {
        const int64_t ignore_index = ignore >= 0 ? ignore : (lab_dt.bits == 8 ? 255 : -100);
        std::vector<int64_t> shape = kShapes[static_cast<size_t>(it) % kShapes.size()];
        shape[1] = 1;
        const DLDataType in_dt = it++ % 3 == 1 ? testing_util::bf16() : testing_util::f32();
        RegionCase rc = mask_case(rng, kind, shape, in_dt, lab_dt, ignore_index, 0.1);
        RunConfig cfg;
        cfg.grad_f32 = true;
        if (kind == CULOSS_DICE)
          EXPECT_TRUE(matches_reference(rc, cfg, kValueTol, kGradTol, 1.0));
        else
          EXPECT_TRUE(matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30));
        EXPECT_TRUE(matches_generic(rc, cfg)) << "ignore index " << ignore_index;
      }
  for (int k = 0; k < 3; ++k) {  // Dice + BCE
    RegionCase rc =
        mask_case(rng, CULOSS_DICE, {2, 1, 30, 31}, testing_util::f32(), lab_dts[k], 255, 0.1);
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    EXPECT_TRUE(sum_matches_generic(
        rc,
        [&](culoss_loss sum) {
          Loss dice(CULOSS_DICE), bce(CULOSS_BCE);
          for (culoss_loss term : {static_cast<culoss_loss>(dice), static_cast<culoss_loss>(bce)}) {
            culoss_loss_set_int(term, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID);
            culoss_loss_set_int(term, CULOSS_PARAM_IGNORE_INDEX, 255);
          }
          culoss_loss_add_term(sum, dice, 1.0);
          culoss_loss_add_term(sum, bce, 0.5);
        }))
        << "labels " << k;
  }
  for (bool weights : {false, true}) {  // refusals
    RegionCase rc = mask_case(rng, CULOSS_BCE, {2, 1, 40, 50}, testing_util::f32(),
                              testing_util::u8(), 255, 0.1);
    rc.labels[1234] = 2;
    rc.labels[2345] = 7;
    rc.pixel_weight.clear();
    if (weights) rc.pixel_weight.assign(rc.labels.size(), 1.0);
    RunConfig cfg;
    cfg.grad_f32 = true;
    const RunResult fast = run_region(rc, cfg);
    const RunResult slow = generic([&] { return run_region(rc, cfg); });
    EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, fast.status);
    EXPECT_EQ(slow.error, fast.error);
    EXPECT_NE(std::string::npos, fast.error.find("target[1234] = 2 is not a binary mask value"))
        << fast.error;
    EXPECT_TRUE(fast.untouched_on_failure);
  }
}

// COMBO (a BCE term and a Dice term) on the sigmoid passes, dense float32/uint8 targets and
// binary masks: against the long-double reference and the generic passes.
TEST(FastPath, ComboMatchesReferenceAndGenericPass) {
  std::mt19937 rng(1619);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  int it = 0;
  for (const DLDataType& in_dt : {testing_util::f32(), testing_util::bf16()})
    for (int target = 0; target < 3; ++target) {  // float32, uint8, a binary mask of uint8
      std::vector<int64_t> shape = kShapes[static_cast<size_t>(it++) % kShapes.size()];
      RegionCase rc;
      if (target < 2) {
        rc = dense_case(rng, CULOSS_COMBO, shape, in_dt,
                        target == 0 ? testing_util::f32() : testing_util::u8());
      } else {
        shape[1] = 1;
        rc = mask_case(rng, CULOSS_COMBO, shape, in_dt, testing_util::u8(), 255, 0.1);
      }
      rc.opt.reduction = CULOSS_REDUCTION_MEAN;
      rc.opt.squared = u(rng) < 0.4;
      rc.opt.alpha = u(rng);
      rc.opt.ce_ratio = u(rng);
      RunConfig cfg;
      cfg.grad_f32 = true;
      EXPECT_TRUE(matches_elem_reference(rc, cfg, kValueTol, kGradTol, 1.0, 1e-30))
          << describe_case(rc);
      EXPECT_TRUE(matches_generic(rc, cfg));
    }
}

}  // namespace

namespace {

// Top-k cross-entropy on the fast path (keys, selection, statistics and gradient of the kept
// pixels) against the generic passes: every input and label dtype, fractions from one pixel to
// all, class weights, label smoothing, ignored and weighted pixels, NCHW and NHWC.
TEST(FastPath, TopKCrossEntropyMatchesGenericPass) {
  std::mt19937 rng(1615);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const DLDataType in_dts[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  const DLDataType lab_dts[] = {testing_util::i64(), testing_util::i32(), testing_util::u8()};
  const double fractions[] = {1e-4, 0.1, 0.37, 1.0};
  int it = 0;
  for (const DLDataType& in_dt : in_dts)
    for (const DLDataType& lab_dt : lab_dts)
      for (double fraction : fractions) {
        const int axis = it % 3 == 2 ? -1 : 1;
        std::vector<int64_t> shape = kShapes[static_cast<size_t>(it++) % kShapes.size()];
        if (axis == -1) std::rotate(shape.begin() + 1, shape.begin() + 2, shape.end());
        RegionCase rc = make_case(rng, CULOSS_TOPK_CE, shape, in_dt, lab_dt, 0.1, 3.0, axis);
        rc.opt.top_fraction = fraction;
        if (u(rng) < 0.4) rc.opt.label_smoothing = 0.2 * u(rng);
        random_weights(rng, rc);
        RunConfig cfg;
        cfg.grad_f32 = true;
        EXPECT_TRUE(matches_generic(rc, cfg)) << "fraction " << fraction;
      }
}

}  // namespace

namespace {

// With a 16-bit gradient (the input's dtype) the fast path computes what it computes for a
// float32 one and rounds each gradient to nearest, ties to even, on the store (store_grad:
// vector steps for whole vectors, lane by lane for tails and channels-last). So the 16-bit
// gradient is the float32 one rounded, bit for bit (rounded by the tests' own conversions), and
// the loss is the same bits; the generic passes, in double, would give other loss bits.
::testing::AssertionResult sixteen_bit_gradient_is_float32_rounded(const RegionCase& rc,
                                                                   bool in_place = false) {
  RunConfig c32, c16;
  c32.grad_f32 = true;
  c16.in_place = in_place;
  const RunResult r32 = run_region(rc, c32), r16 = run_region(rc, c16);
  if (!r32.ok() || !r16.ok())
    return ::testing::AssertionFailure() << "float32: " << r32.error << " 16-bit: " << r16.error;
  if (r32.loss_bytes != r16.loss_bytes)
    return ::testing::AssertionFailure() << "the loss differs\n  case: " << describe_case(rc);
  const std::vector<double> want = rounded(r32.grad, rc.input_dtype);
  if (want.size() != r16.grad.size()) return ::testing::AssertionFailure() << "gradient sizes";
  for (size_t i = 0; i < want.size(); ++i)
    if (!(want[i] == r16.grad[i]) && !(std::isnan(want[i]) && std::isnan(r16.grad[i])))
      return ::testing::AssertionFailure()
             << "gradient " << i << ": " << r16.grad[i] << ", float32 rounded " << want[i]
             << "\n  case: " << describe_case(rc);
  return ::testing::AssertionSuccess();
}

TEST(FastPath, SixteenBitGradientIsTheFloat32GradientRounded) {
  ThreadsGuard guard;
  std::mt19937 rng(1627);
  int cases = 0;
  for (DLDataType in_dt : {testing_util::f16(), testing_util::bf16()})
    for (int threads : {1, 2}) {
      ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(threads));
      for (const std::vector<int64_t>& shape : kShapes) {
        for (culoss_kind kind : kKinds) {  // softmax, class-index labels, channels-first
          RegionCase rc = make_case(rng, kind, shape, in_dt, testing_util::i64());
          randomize_options(rng, rc);
          EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(rc));
          ++cases;
        }
        std::vector<int64_t> last = shape;  // channels-last: class axis last
        std::swap(last[1], last.back());
        RegionCase cl = make_case(rng, CULOSS_CROSS_ENTROPY, last, in_dt, testing_util::u8(), 0.1,
                                  3.0, static_cast<int>(last.size()) - 1);
        EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(cl));
        EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(
            bce_case(rng, shape, in_dt, testing_util::f32())));
        EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(
            dense_case(rng, CULOSS_DICE, shape, in_dt, testing_util::u8())));
        cases += 3;
      }
      // the gradient over the input
      RegionCase over =
          make_case(rng, CULOSS_CROSS_ENTROPY, {2, 4, 9, 7}, in_dt, testing_util::i32());
      EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(over, /*in_place=*/true));
      ++cases;
    }
  EXPECT_EQ(2 * 2 * (6 * 10 + 1), cases);
}

// Large and tiny gradients, where float16 rounding meets its edges: overflow to infinity
// (a gradient scale of 1e6 on saturated logits), subnormal float16 values and values that
// flush to zero (a scale of 1e-6 to 1e-9).
TEST(FastPath, SixteenBitGradientRoundsAtTheEdgesOfItsRange) {
  std::mt19937 rng(1637);
  for (DLDataType in_dt : {testing_util::f16(), testing_util::bf16()})
    for (double scale : {1e6, 1e-6, 1e-8, 1e-9})
      for (culoss_kind kind : {CULOSS_CROSS_ENTROPY, CULOSS_DICE}) {
        RegionCase rc = make_case(rng, kind, {2, 3, 19, 17}, in_dt, testing_util::i64(), 0.1, 8.0);
        rc.opt.reduction = CULOSS_REDUCTION_SUM;
        rc.grad_scale = scale;
        EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(rc)) << "scale " << scale;
        RegionCase bce = bce_case(rng, {2, 3, 19, 17}, in_dt, testing_util::u8());
        bce.grad_scale = scale;
        EXPECT_TRUE(sixteen_bit_gradient_is_float32_rounded(bce)) << "scale " << scale;
      }
}

}  // namespace

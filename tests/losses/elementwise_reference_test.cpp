// Element-wise losses (BCE, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE) on the CPU backend against
// the independent long-double reference in tests/reference/elementwise_reference.hpp: seeded
// random shapes, layouts, target kinds and option combinations; values and gradients, float32
// gradients, in-place gradients, grad_scale, REDUCTION_NONE shapes, workspaces.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "losses/elementwise_check.hpp"

namespace {

using namespace region_test;

// The reference's dual-number gradient against central differences of its own objective (long
// double), inputs away from the probability clamp.
TEST(ElementwiseReference, SelfCheckAgainstFiniteDifferences) {
  std::mt19937 rng(7001);
  for (int it = 0; it < 100; ++it) {
    ElemConstraints k;
    k.kind = kElementwiseKinds[it % 5];
    k.clamp_inputs = false;
    k.max_dim = 3;
    const RegionCase rc = random_elementwise_case(rng, k);
    const elem_ref::Spec s = to_elem_spec(rc);
    const elem_ref::Result ref = elem_ref::reference(s);
    const std::vector<long double> x(s.input.begin(), s.input.end());
    const double scale = max_abs(ref.grad) + 1e-12;
    for (size_t i = 0; i < x.size(); ++i) {
      const long double h = 1e-6L * std::max(1.0L, std::fabs(x[i]));
      std::vector<long double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const long double fd =
          (elem_ref::reference_objective(s, xp) - elem_ref::reference_objective(s, xm)) / (2 * h) *
          s.grad_scale;
      ASSERT_NEAR(static_cast<double>(fd), ref.grad[i], 1e-7 * scale)
          << "element " << i << "\n  case: " << describe_case(rc);
    }
  }
}

// The reference on cases computed by hand.
TEST(ElementwiseReference, SelfCheckHandValues) {
  // The weighted-BCE notebook (seed 000): 1.2485181986117349 per class, SUM 2.4970363972234698.
  elem_ref::Spec s;
  s.kind = elem_ref::BCE;
  s.shape = {5, 2};
  s.activation = elem_ref::ACT_NONE;
  s.reduction = elem_ref::RED_NONE;
  s.batch_frequency = true;
  s.input = {0.3, 0.7, 0.3, 0.7, 0.3, 0.7, 0.3, 0.7, 0.3, 0.7};
  s.dense_target = {1, 0, 1, 0, 1, 0, 1, 0, 0, 1};
  elem_ref::Result r = elem_ref::reference(s);
  double c0 = 0, c1 = 0;
  for (int i = 0; i < 5; ++i) {
    c0 += r.values[2 * i];
    c1 += r.values[2 * i + 1];
  }
  EXPECT_NEAR(c0, 1.2485181986117349, 1e-15);
  EXPECT_NEAR(c1, 1.2485181986117349, 1e-15);
  s.reduction = elem_ref::RED_SUM;
  EXPECT_NEAR(elem_ref::reference(s).values[0], 2.4970363972234698, 1e-15);

  // Softmax CE of one pixel with logits (0, ln 3): p = (1/4, 3/4); label 1: −ln(3/4);
  // d/dx = p − onehot = (1/4, −1/4).
  elem_ref::Spec ce;
  ce.kind = elem_ref::CROSS_ENTROPY;
  ce.activation = elem_ref::ACT_SOFTMAX;
  ce.shape = {1, 2};
  ce.input = {0.0, std::log(3.0)};
  ce.index_target = true;
  ce.labels = {1};
  r = elem_ref::reference(ce);
  EXPECT_NEAR(r.values[0], -std::log(0.75), 1e-15);
  EXPECT_NEAR(r.grad[0], 0.25, 1e-15);
  EXPECT_NEAR(r.grad[1], -0.25, 1e-15);
}

// Every option drawn at random, every kind.
TEST(ElementwiseReference, RandomCases) {
  std::mt19937 rng(11);
  for (int it = 0; it < 2000; ++it) {  // ~400 per kind
    const RegionCase rc = random_elementwise_case(rng);
    ASSERT_TRUE(matches_elem_reference(rc)) << "iteration " << it;
  }
}

TEST(ElementwiseReference, EveryKindEveryActivationEveryReduction) {
  std::mt19937 rng(12);
  const int acts[][3] = {{0, 1, -1}, {0, 2, -1}, {0, 1, 2}, {0, 1, -1}, {0, 2, -1}};
  for (int ki = 0; ki < 5; ++ki)
    for (int a : acts[ki]) {
      if (a < 0) continue;
      for (int red = 0; red < 3; ++red) {
        if (kElementwiseKinds[ki] == CULOSS_COMBO && red != CULOSS_REDUCTION_MEAN) continue;
        for (int it = 0; it < 30; ++it) {
          ElemConstraints k;
          k.kind = kElementwiseKinds[ki];
          k.activation = a;
          k.reduction = red;
          const RegionCase rc = random_elementwise_case(rng, k);
          ASSERT_TRUE(matches_elem_reference(rc))
              << "kind " << k.kind << " act " << a << " red " << red;
        }
      }
    }
}

TEST(ElementwiseReference, EveryLayoutAndTargetKind) {
  std::mt19937 rng(13);
  for (int kind : kElementwiseKinds)
    for (int layout = 0; layout < kNumLayouts; ++layout)
      for (int target = 0; target < kNumTargetKinds; ++target) {
        ElemConstraints k;
        k.kind = kind;
        k.layout = layout;
        k.target = target;
        const RegionCase rc = random_elementwise_case(rng, k);
        ASSERT_TRUE(matches_elem_reference(rc))
            << "kind " << kind << " layout " << layout << " target " << target;
      }
}

// Ignored pixels (index targets), CHECK_TARGETS = 0 with out-of-range labels (treated as ignored),
// pixel weights and class weights forced on.
TEST(ElementwiseReference, IgnoredPixelsAndWeights) {
  std::mt19937 rng(14);
  for (int it = 0; it < 150; ++it) {
    ElemConstraints k;
    k.kind = kElementwiseKinds[it % 5];
    k.target = kIndexU8 + it % 3;
    k.ignored = 1;
    k.check_off = (it / 5) % 2;
    k.pixel_weight = (it / 10) % 2;
    k.class_weights = 1;
    const RegionCase rc = random_elementwise_case(rng, k);
    ASSERT_TRUE(matches_elem_reference(rc)) << "iteration " << it;
  }
}

TEST(ElementwiseReference, FocalEveryGamma) {
  std::mt19937 rng(15);
  for (double g : {0.0, 0.5, 1.0, 2.0, 3.5})
    for (int act = 0; act < 3; ++act)
      for (int it = 0; it < 20; ++it) {
        ElemConstraints k;
        k.kind = CULOSS_FOCAL;
        k.activation = act;
        k.gamma = g;
        const RegionCase rc = random_elementwise_case(rng, k);
        ASSERT_TRUE(matches_elem_reference(rc)) << "gamma " << g << " act " << act;
      }
}

// Larger logits (|x| up to 30): log-sigmoid / log-softmax stay accurate.
TEST(ElementwiseReference, LargeLogits) {
  std::mt19937 rng(16);
  for (int it = 0; it < 100; ++it) {
    ElemConstraints k;
    k.kind = kElementwiseKinds[it % 5];
    if (k.kind == CULOSS_COMBO || k.kind == CULOSS_BCE)
      k.activation = CULOSS_ACTIVATION_SIGMOID;
    else if (k.kind == CULOSS_FOCAL)
      k.activation = it % 2 ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_SOFTMAX;
    else
      k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.logit_range = 30.0;
    const RegionCase rc = random_elementwise_case(rng, k);
    ASSERT_TRUE(matches_elem_reference(rc, RunConfig(), 1e-9, 1e-8)) << "iteration " << it;
  }
}

// A float32 gradient for a float64 input.
TEST(ElementwiseReference, Float32Gradient) {
  std::mt19937 rng(17);
  RunConfig cfg;
  cfg.grad_f32 = true;
  for (int it = 0; it < 200; ++it) {
    const RegionCase rc = random_elementwise_case(rng);
    ASSERT_TRUE(matches_elem_reference(rc, cfg, 1e-9, 2e-7, 1.0)) << "iteration " << it;
  }
}

// Float32 loss_out, and one-element outputs of shape [1].
TEST(ElementwiseReference, LossOutDtypesAndShapes) {
  std::mt19937 rng(18);
  for (int it = 0; it < 60; ++it) {
    RunConfig cfg;
    cfg.loss_dtype = it % 2 ? testing_util::f32() : testing_util::f64();
    cfg.scalar_as_1d = (it / 2) % 2 == 1;
    const RegionCase rc = random_elementwise_case(rng);
    ASSERT_TRUE(matches_elem_reference(rc, cfg, it % 2 ? 2e-7 : 1e-9)) << "iteration " << it;
  }
}

// The gradient written over the input: the same bytes as a separate gradient tensor.
TEST(ElementwiseReference, InPlaceGradient) {
  std::mt19937 rng(19);
  for (int it = 0; it < 200; ++it) {
    const RegionCase rc = random_elementwise_case(rng);
    RunConfig cfg;
    cfg.in_place = true;
    ASSERT_TRUE(matches_elem_reference(rc, cfg)) << "iteration " << it;
    const RunResult a = run_region(rc), b = run_region(rc, cfg);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.grad_bytes, b.grad_bytes) << describe_case(rc);
    EXPECT_EQ(a.loss_bytes, b.loss_bytes) << describe_case(rc);
  }
}

// grad_scale multiplies the gradient only.
TEST(ElementwiseReference, GradScale) {
  std::mt19937 rng(20);
  for (int it = 0; it < 100; ++it) {
    RegionCase rc = random_elementwise_case(rng);
    rc.grad_scale = 1.0;
    const RunResult one = run_region(rc);
    ASSERT_TRUE(one.ok()) << one.error;
    const double scales[] = {0.0, -1.0, 2.5, 1e-3};
    for (double sc : scales) {
      RegionCase r2 = rc;
      r2.grad_scale = sc;
      ASSERT_TRUE(matches_elem_reference(r2)) << "scale " << sc;
      const RunResult r = run_region(r2);
      ASSERT_TRUE(r.ok());
      EXPECT_EQ(r.loss_bytes, one.loss_bytes) << "the value does not depend on grad_scale";
      std::vector<double> want(one.grad.size());
      for (size_t i = 0; i < want.size(); ++i) want[i] = sc * one.grad[i];
      // Softmax-style gradients cancel (h − p Σh): equal up to rounding of the largest entry.
      EXPECT_TRUE(
          close_vectors("scaled grad", r.grad, want, Tol{1e-13, 1e-13 * max_abs(want) + 1e-300}))
          << describe_case(r2);
    }
  }
}

// REDUCTION_NONE: shapes per SEMANTICS (element shape for BCE and binary FOCAL, pixel shape for
// CROSS_ENTROPY, softmax FOCAL and MARGINAL_CE), ignored pixels write 0, and the outputs sum to
// the SUM value.
TEST(ElementwiseReference, NoneShapesAndSums) {
  std::mt19937 rng(21);
  for (int it = 0; it < 150; ++it) {
    ElemConstraints k;
    const int kinds[] = {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_MARGINAL_CE};
    k.kind = kinds[it % 4];
    k.reduction = CULOSS_REDUCTION_NONE;
    const RegionCase rc = random_elementwise_case(rng, k);
    const std::vector<int64_t> shape = loss_shape(rc);
    const bool per_element =
        rc.opt.kind == CULOSS_BCE ||
        (rc.opt.kind == CULOSS_FOCAL && rc.opt.activation != CULOSS_ACTIVATION_SOFTMAX);
    EXPECT_EQ(shape, per_element ? rc.shape : without_axis(rc.shape, rc.opt.class_axis));
    ASSERT_TRUE(matches_elem_reference(rc)) << "iteration " << it;
    const RunResult none = run_region(rc);
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(static_cast<int64_t>(none.loss.size()), numel(shape));
    const elem_ref::Result ref = elem_reference(rc);
    EXPECT_EQ(ref.value_shape, shape);
    RegionCase sum = rc;
    sum.opt.reduction = CULOSS_REDUCTION_SUM;
    const RunResult s = run_region(sum);
    ASSERT_TRUE(s.ok());
    EXPECT_NEAR(objective(none), s.loss[0], 1e-12 * (1 + std::fabs(s.loss[0])));
    EXPECT_TRUE(close_vectors("NONE grad vs SUM grad", none.grad, s.grad, Tol{1e-14, 1e-300}));
    if (rc.index_target) {  // ignored (or out-of-range) labels write 0
      const int64_t C = num_classes(rc);
      for (size_t q = 0; q < rc.labels.size(); ++q) {
        const int64_t lab = rc.labels[q];
        const bool mask = per_element || C == 1;  // a 0/1 mask
        const bool valid = lab != rc.opt.ignore_index && lab >= 0 && lab < (mask ? 2 : C);
        if (valid) continue;
        if (!per_element) {
          EXPECT_EQ(none.loss[q], 0.0) << "pixel " << q;
        }
      }
    }
  }
}

// A caller workspace of exactly culoss_workspace_size bytes gives the same bytes as NULL. The
// size also covers the statistics API (whose element-wise programs carry value slots), so a
// byte less may still be enough for culoss_compute: it is either accepted or refused, never
// misused.
TEST(ElementwiseReference, WorkspaceExactVsNull) {
  std::mt19937 rng(22);
  for (int it = 0; it < 60; ++it) {
    const RegionCase rc = random_elementwise_case(rng);
    RunConfig exact;
    exact.workspace = RunConfig::kExact;
    const RunResult a = run_region(rc), b = run_region(rc, exact);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(a.loss_bytes, b.loss_bytes);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes);
    EXPECT_TRUE(b.workspace_guard_ok);
    RunConfig shrt;
    shrt.workspace = RunConfig::kShort;
    const culoss_status st = run_region(rc, shrt).status;
    EXPECT_TRUE(st == CULOSS_SUCCESS || st == CULOSS_ERROR_INSUFFICIENT_WORKSPACE) << describe_case(rc);
  }
}

// Forward-only calls give the same value as calls with a gradient.
TEST(ElementwiseReference, ForwardOnly) {
  std::mt19937 rng(23);
  for (int it = 0; it < 60; ++it) {
    const RegionCase rc = random_elementwise_case(rng);
    RunConfig fwd;
    fwd.grad = false;
    ASSERT_TRUE(matches_elem_reference(rc, fwd)) << "iteration " << it;
    const RunResult a = run_region(rc), b = run_region(rc, fwd);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.loss_bytes, b.loss_bytes) << describe_case(rc);
  }
}

// float32, float16 and bfloat16 inputs, compared with the reference on the rounded inputs.
TEST(ElementwiseReference, LowPrecisionInputs) {
  std::mt19937 rng(24);
  const DLDataType dts[] = {testing_util::f32(), testing_util::f16(), testing_util::bf16()};
  for (int it = 0; it < 90; ++it) {
    RegionCase rc = random_elementwise_case(rng);
    rc.input_dtype = dts[it % 3];
    RunConfig cfg;
    cfg.grad_f32 = true;
    ASSERT_TRUE(matches_elem_reference(rc, cfg, 1e-6, 1e-5, 1.0)) << "iteration " << it;
    RunConfig own;  // the gradient in the input's own dtype
    ASSERT_TRUE(matches_elem_reference(rc, own, 1e-6, it % 3 == 0 ? 1e-5 : 1e-2, 1.0))
        << "iteration " << it;
    RunConfig in_place;  // over the input itself: the same bytes
    in_place.in_place = true;
    const RunResult a = run_region(rc, own), b = run_region(rc, in_place);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.grad_bytes, b.grad_bytes) << describe_case(rc);
    EXPECT_EQ(a.loss_bytes, b.loss_bytes) << describe_case(rc);
  }
}

}  // namespace

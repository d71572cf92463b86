// Element-wise losses on fixed inputs: the weighted-BCE notebook (seed 000), published focal
// values (tensorflow-addons), focal values by torchvision's definition and cross-entropy values
// computed by hand, the missing-annotation scenario of MARGINAL_CE (seed 003), and edge cases
// (saturated logits, probabilities 0 and 1, p_t → 1, everything ignored, one pixel, C = 1,
// half-precision inputs, empty tensors, determinism).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "losses/elementwise_check.hpp"

namespace {

using namespace region_test;

RegionCase make(culoss_kind kind, std::vector<int64_t> shape, std::vector<double> input) {
  RegionCase rc;
  rc.opt = default_options(kind);
  rc.shape = std::move(shape);
  rc.input = std::move(input);
  return rc;
}
RegionCase dense(RegionCase rc, std::vector<double> t) {
  rc.index_target = false;
  rc.target = std::move(t);
  rc.target_dtype = testing_util::f64();
  return rc;
}
RegionCase labels(RegionCase rc, std::vector<int64_t> l, DLDataType d = testing_util::i64()) {
  rc.index_target = true;
  rc.labels = std::move(l);
  rc.target_dtype = d;
  return rc;
}
RunResult run_ok(const RegionCase& rc, const RunConfig& cfg = RunConfig()) {
  RunResult r = run_region(rc, cfg);
  EXPECT_TRUE(r.ok()) << culoss_status_string(r.status) << ": " << r.error
                      << "\n  case: " << describe_case(rc);
  return r;
}

// ---------------------------------------------------------------------------------------------
// The weighted-BCE notebook (seeds/000): y_pred = [[0.3, 0.7]] × 5, y_true = [[1,0]] × 4 + [[0,1]],
// w⁺ = mean(1 − t) = (0.2, 0.8), w⁻ = mean(t) = (0.8, 0.2); per class 1.2485181986117349, sum
// 2.4970363972234698.

RegionCase notebook_case(int reduction) {
  RegionCase rc =
      dense(make(CULOSS_BCE, {5, 2}, {0.3, 0.7, 0.3, 0.7, 0.3, 0.7, 0.3, 0.7, 0.3, 0.7}),
            {1, 0, 1, 0, 1, 0, 1, 0, 0, 1});
  rc.opt.activation = CULOSS_ACTIVATION_NONE;
  rc.opt.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
  rc.opt.reduction = reduction;
  return rc;
}

TEST(ElementwiseValues, WeightedBCENotebookSum) {
  const RunResult r = run_ok(notebook_case(CULOSS_REDUCTION_SUM));
  ASSERT_EQ(r.loss.size(), 1u);
  EXPECT_NEAR(r.loss[0], 2.4970363972234698, 1e-12);
  ASSERT_TRUE(matches_elem_reference(notebook_case(CULOSS_REDUCTION_SUM)));
}

TEST(ElementwiseValues, WeightedBCENotebookPerClass) {
  const RunResult r = run_ok(notebook_case(CULOSS_REDUCTION_NONE));
  ASSERT_EQ(r.loss.size(), 10u);  // the input's shape (5, 2)
  double c0 = 0, c1 = 0;
  for (int i = 0; i < 5; ++i) {
    c0 += r.loss[static_cast<size_t>(2 * i)];
    c1 += r.loss[static_cast<size_t>(2 * i + 1)];
  }
  EXPECT_NEAR(c0, 1.2485181986117349, 1e-12);
  EXPECT_NEAR(c1, 1.2485181986117349, 1e-12);
  // Element values: class 0 rows 0–3: −0.2 ln 0.3; row 4: −0.8 ln 0.7.
  EXPECT_NEAR(r.loss[0], -0.2 * std::log(0.3), 1e-15);
  EXPECT_NEAR(r.loss[8], -0.8 * std::log(0.7), 1e-15);
  // MEAN divides by the 10 elements.
  const RunResult m = run_ok(notebook_case(CULOSS_REDUCTION_MEAN));
  EXPECT_NEAR(m.loss[0], 2.4970363972234698 / 10, 1e-13);
  // The frequencies are constants for the gradient: dℓ/dp = −w⁺ t / p + w⁻ (1 − t) / (1 − p).
  EXPECT_NEAR(r.grad[0], -0.2 / 0.3, 1e-13);
  EXPECT_NEAR(r.grad[1], 0.2 / 0.3, 1e-13);
  EXPECT_NEAR(r.grad[8], 0.8 / 0.7, 1e-13);
  EXPECT_NEAR(r.grad[9], -0.8 / 0.7, 1e-13);
}

// BATCH_FREQUENCY uses the counted elements only: with index targets (C = 1) an ignored pixel
// leaves the frequencies.
TEST(ElementwiseValues, BatchFrequencySkipsIgnoredPixels) {
  // 4 pixels, labels 1, 0, 0, ignored: mean(t) = 1/3, w⁺ = 2/3, w⁻ = 1/3; logits 0: each
  // counted term is w ln 2: (2/3 + 1/3 + 1/3) ln 2 = (4/3) ln 2, MEAN over 3 counted elements.
  RegionCase rc = labels(make(CULOSS_BCE, {4, 1}, {0, 0, 0, 5}), {1, 0, 0, -100});
  rc.opt.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
  rc.opt.reduction = CULOSS_REDUCTION_SUM;
  RunResult r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], 4.0 / 3.0 * std::log(2.0), 1e-15);
  EXPECT_NEAR(r.grad[0], -2.0 / 3.0 * 0.5, 1e-15);  // w⁺ (p − 1)
  EXPECT_NEAR(r.grad[1], 1.0 / 3.0 * 0.5, 1e-15);   // w⁻ p
  EXPECT_EQ(r.grad[3], 0.0);
  rc.opt.reduction = CULOSS_REDUCTION_MEAN;
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], 4.0 / 9.0 * std::log(2.0), 1e-15);
}

// ---------------------------------------------------------------------------------------------
// Focal loss, published values.

// tensorflow-addons SigmoidFocalCrossEntropy docstring (α = 0.25, γ = 2, probabilities):
// y_true = [[1], [1], [0]], y_pred = [[0.97], [0.91], [0.03]] → [6.8532745e-06, 1.9097870e-04,
// 2.0559824e-05] (float32; keras adds ε = 1e-7 inside the log, hence the tolerance).
TEST(ElementwiseValues, FocalTensorflowAddonsDocstring) {
  RegionCase rc = dense(make(CULOSS_FOCAL, {3, 1}, {0.97, 0.91, 0.03}), {1, 1, 0});
  rc.opt.activation = CULOSS_ACTIVATION_NONE;
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  const RunResult r = run_ok(rc);
  const double want[] = {6.8532745e-06, 1.9097870e-04, 2.0559824e-05};
  ASSERT_EQ(r.loss.size(), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(r.loss[static_cast<size_t>(i)], want[i], 1e-5 * want[i]) << i;
  ASSERT_TRUE(matches_elem_reference(rc));
  // The same with logits: x = logit(p).
  RegionCase lg = rc;
  lg.opt.activation = CULOSS_ACTIVATION_SIGMOID;
  for (double& x : lg.input) x = std::log(x / (1 - x));
  const RunResult l = run_ok(lg);
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(l.loss[static_cast<size_t>(i)], want[i], 1e-5 * want[i]) << i;
}

// torchvision.ops.sigmoid_focal_loss defines ce = BCE-with-logits, p_t = p t + (1 − p)(1 − t),
// loss = α_t ce (1 − p_t)^γ with α_t = α t + (1 − α)(1 − t) (α = 0.25, γ = 2), mean over every
// element. With logits 0, ±ln 3 (p = 1/2, 3/4, 1/4) the values are closed forms:
//   x = 0,     t = 1: 0.25 · ln 2 · 1/4            = ln 2 / 16
//   x = ln 3,  t = 0: 0.75 · ln 4 · 9/16           = 27 ln 4 / 64
//   x = −ln 3, t = 1: 0.25 · ln 4 · 9/16           = 9 ln 4 / 64
//   x = ln 3,  t = 1: 0.25 · ln(4/3) · 1/16        = ln(4/3) / 64
//   x = 0,     t = 0: 0.75 · ln 2 · 1/4            = 3 ln 2 / 16
//   x = −ln 3, t = 0: 0.75 · ln(4/3) · 1/16        = 3 ln(4/3) / 64
TEST(ElementwiseValues, FocalTorchvisionDefinition) {
  const double l3 = std::log(3.0), ln2 = std::log(2.0), ln4 = std::log(4.0),
               l43 = std::log(4.0 / 3.0);
  RegionCase rc = dense(make(CULOSS_FOCAL, {2, 3}, {0, l3, -l3, l3, 0, -l3}), {1, 0, 1, 1, 0, 0});
  const std::vector<double> want = {ln2 / 16, 27 * ln4 / 64, 9 * ln4 / 64,
                                    l43 / 64, 3 * ln2 / 16,  3 * l43 / 64};
  double sum = 0;
  for (double w : want) sum += w;
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  RunResult r = run_ok(rc);
  EXPECT_TRUE(close_vectors("none", r.loss, want, Tol{1e-14, 1e-16}));
  // d/dx at x = 0, t = 1: α u^γ [(p − t) + γ ce (1 − 2t) p (1 − p) / u] with p = u = 1/2:
  // 0.25 · 0.25 · (−0.5 − ln 2).
  EXPECT_NEAR(r.grad[0], 0.0625 * (-0.5 - ln2), 1e-15);
  // x = 0, t = 0: 0.75 · 0.25 · (0.5 + ln 2).
  EXPECT_NEAR(r.grad[4], 0.1875 * (0.5 + ln2), 1e-15);
  rc.opt.reduction = CULOSS_REDUCTION_SUM;
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], sum, 1e-14);
  rc.opt.reduction = CULOSS_REDUCTION_MEAN;
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], sum / 6, 1e-14);
  EXPECT_NEAR(r.grad[0], 0.0625 * (-0.5 - ln2) / 6, 1e-15);
  // α < 0 disables α_t (torchvision's alpha = −1).
  rc.opt.alpha = -1;
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0],
              (ln2 / 4 + 9 * ln4 / 16 + 9 * ln4 / 16 + l43 / 16 + ln2 / 4 + l43 / 16) / 6, 1e-14);
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy by hand (PyTorch semantics: MEAN divides by the summed class weights of the
// counted pixels). Shape (1, 3, 3): three pixels, classes on axis 1.
//   pixel 0: logits (0, 0, 0)        label 0: −ln(1/3) = ln 3,   weight 1
//   pixel 1: logits (0, 0, ln 2)     label 2: −ln(1/2) = ln 2,   weight 3
//   pixel 2: logits (5, −5, 1)       ignored
// weights (1, 2, 3): SUM = ln 3 + 3 ln 2, MEAN = SUM / (1 + 3).
TEST(ElementwiseValues, CrossEntropyClassWeightsAndIgnoreIndex) {
  const double l2 = std::log(2.0), l3 = std::log(3.0);
  // Element (c, i) at c * 3 + i.
  RegionCase rc =
      labels(make(CULOSS_CROSS_ENTROPY, {1, 3, 3}, {0, 0, 5, 0, 0, -5, 0, l2, 1}), {0, 2, -100});
  rc.opt.class_weights = {1.0, 2.0, 3.0};
  RunResult r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], (l3 + 3 * l2) / 4, 1e-15);
  // Gradient of MEAN: ω_y (p − onehot) / 4; the ignored pixel gets 0.
  const std::vector<double> g = {(1.0 / 3 - 1) / 4, 0.75 * 0.25,      0,
                                 (1.0 / 3) / 4,     0.75 * 0.25,      0,
                                 (1.0 / 3) / 4,     0.75 * (0.5 - 1), 0};
  EXPECT_TRUE(close_vectors("grad", r.grad, g, Tol{1e-14, 1e-16}));
  rc.opt.reduction = CULOSS_REDUCTION_SUM;
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], l3 + 3 * l2, 1e-15);
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  r = run_ok(rc);
  EXPECT_TRUE(close_vectors("none", r.loss, {l3, 3 * l2, 0.0}, Tol{1e-15, 1e-16}));
  // Unweighted MEAN divides by the 2 counted pixels.
  rc.opt.class_weights.clear();
  rc.opt.reduction = CULOSS_REDUCTION_MEAN;
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], (l3 + l2) / 2, 1e-15);
  // A pixel weight multiplies its terms but not the divisor (Σ m ω_y).
  rc.opt.class_weights = {1.0, 2.0, 3.0};
  rc.pixel_weight = {2.0, 0.5, 7.0};
  r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], (2 * l3 + 0.5 * 3 * l2) / 4, 1e-15);
}

// Label smoothing: t′ = t (1 − ε) + ε / C. Logits (0, 0, ln 2), p = (1/4, 1/4, 1/2), label 2,
// ε = 0.3: t′ = (0.1, 0.1, 0.8): 0.2 ln 4 + 0.8 ln 2 = 1.2 ln 2 (also PyTorch's
// (1 − ε) CE + ε mean_c(−log p_c) = 0.7 ln 2 + 0.3 · 5 ln 2 / 3). d/dx = p − t′.
TEST(ElementwiseValues, CrossEntropyLabelSmoothing) {
  RegionCase rc = labels(make(CULOSS_CROSS_ENTROPY, {1, 3}, {0, 0, std::log(2.0)}), {2});
  rc.opt.label_smoothing = 0.3;
  const RunResult r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], 1.2 * std::log(2.0), 1e-15);
  EXPECT_TRUE(
      close_vectors("grad", r.grad, {0.25 - 0.1, 0.25 - 0.1, 0.5 - 0.8}, Tol{1e-14, 1e-16}));
}

// BCE by hand: POS_WEIGHT and label smoothing (t′ = t (1 − ε) + ε / 2).
TEST(ElementwiseValues, BCEPosWeightAndLabelSmoothing) {
  const double l3 = std::log(3.0);
  // Two classes (C = 2), one sample: x = (0, ln 3), t = (1, 1), POS_WEIGHT (3, 1), ε = 0.2:
  // class 0: p = 1/2: −(3 · 0.9 ln 0.5 + 0.1 ln 0.5) = 2.8 ln 2;
  // class 1: p = 3/4: −(0.9 ln 0.75 + 0.1 ln 0.25) = 0.9 ln(4/3) + 0.1 ln 4.
  RegionCase rc = dense(make(CULOSS_BCE, {1, 2}, {0, l3}), {1, 1});
  rc.opt.pos_weight = {3.0, 1.0};
  rc.opt.label_smoothing = 0.2;
  rc.opt.reduction = CULOSS_REDUCTION_NONE;
  const RunResult r = run_ok(rc);
  EXPECT_NEAR(r.loss[0], 2.8 * std::log(2.0), 1e-15);
  EXPECT_NEAR(r.loss[1], 0.9 * std::log(4.0 / 3.0) + 0.1 * std::log(4.0), 1e-15);
  // d/dx = ω⁻ (1 − t′) p − ω⁺ t′ (1 − p): class 0: 0.1 · 0.5 − 3 · 0.9 · 0.5 = −1.3.
  EXPECT_NEAR(r.grad[0], -1.3, 1e-15);
  EXPECT_NEAR(r.grad[1], 0.1 * 0.75 - 0.9 * 0.25, 1e-15);
}

// ---------------------------------------------------------------------------------------------
// MARGINAL_CE: missing annotations (seeds/003). Two images, 4 classes (background + 3), 4 pixels
// each (shape (2, 4, 1, 4)). Image 0 is fully annotated (labels 0, 1, 2, 3); image 1 lacks the
// annotation of class 2: its pixels 2 and 3 show class 2 but are labelled background, and the
// model predicts class 2 there with confidence.
struct MarginalScenario {
  RegionCase ce, marginal;
  static constexpr int64_t kC = 4, kP = 4;
  static int64_t elem(int64_t n, int64_t c, int64_t q) { return (n * kC + c) * kP + q; }
};

MarginalScenario marginal_scenario() {
  std::vector<double> x(2 * 4 * 4, 0.0);
  auto set = [&](int64_t n, int64_t q, std::vector<double> logits) {
    for (int64_t c = 0; c < 4; ++c)
      x[static_cast<size_t>(MarginalScenario::elem(n, c, q))] = logits[static_cast<size_t>(c)];
  };
  // Image 0: pixel 0 is background but the model says class 2 (annotated in this image: charged).
  set(0, 0, {0, 0, 4, 0});
  set(0, 1, {0, 2, 0, 0});
  set(0, 2, {0, 0, 2, 0});
  set(0, 3, {0, 0, 0, 2});
  // Image 1: background, class 1, then two class-2 pixels labelled background.
  set(1, 0, {2, 0, 0, 0});
  set(1, 1, {0, 2, 0, 0});
  set(1, 2, {0, 0, 6, 0});
  set(1, 3, {0.5, 0, 5, 0});
  MarginalScenario s;
  s.ce = labels(make(CULOSS_CROSS_ENTROPY, {2, 4, 1, 4}, x), {0, 1, 2, 3, 0, 1, 0, 0},
                testing_util::u8());
  s.ce.opt.reduction = CULOSS_REDUCTION_NONE;
  s.marginal = s.ce;
  s.marginal.opt.kind = CULOSS_MARGINAL_CE;
  return s;
}

TEST(ElementwiseValues, MarginalCEMissingAnnotationScenario) {
  const MarginalScenario s = marginal_scenario();
  const RunResult ce = run_ok(s.ce), mg = run_ok(s.marginal);
  ASSERT_EQ(ce.loss.size(), 8u);  // (N, 1, 4): the pixel shape
  ASSERT_EQ(mg.loss.size(), 8u);
  ASSERT_TRUE(matches_elem_reference(s.marginal));
  ASSERT_TRUE(matches_elem_reference(s.ce));
  auto gidx = [](int64_t n, int64_t c, int64_t q) {
    return static_cast<size_t>(MarginalScenario::elem(n, c, q));
  };
  for (int64_t q : {2, 3}) {
    const size_t pix = static_cast<size_t>(4 + q);
    // CROSS_ENTROPY punishes the missing annotation: −log p_0 is large, and its gradient pushes
    // the class-2 logit down (positive d/dx: gradient descent lowers it).
    EXPECT_GT(ce.loss[pix], 4.0) << q;
    EXPECT_GT(ce.grad[gidx(1, 2, q)], 0.9) << q;
    // MARGINAL_CE does not charge the background term there: no loss, no push on class 2.
    EXPECT_EQ(mg.loss[pix], 0.0) << q;
    EXPECT_LE(mg.grad[gidx(1, 2, q)], 0.0) << q;
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(mg.grad[gidx(1, c, q)], 0.0) << q << " " << c;
  }
  // Everywhere else the two agree: image 0 entirely (class 2 is annotated there, so its
  // background pixel predicted as class 2 is charged), image 1 pixels 0 and 1.
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t q = 0; q < 4; ++q) {
      if (n == 1 && q >= 2) continue;
      EXPECT_EQ(mg.loss[static_cast<size_t>(n * 4 + q)], ce.loss[static_cast<size_t>(n * 4 + q)])
          << n << " " << q;
      for (int64_t c = 0; c < 4; ++c)
        EXPECT_EQ(mg.grad[gidx(n, c, q)], ce.grad[gidx(n, c, q)]) << n << " " << c << " " << q;
    }
  EXPECT_GT(ce.loss[0], 4.0);  // image 0, pixel 0: charged by both
  // MEAN: both divide by the 8 counted pixels; the marginal loss is much lower.
  RegionCase ce_mean = s.ce, mg_mean = s.marginal;
  ce_mean.opt.reduction = mg_mean.opt.reduction = CULOSS_REDUCTION_MEAN;
  const RunResult cm = run_ok(ce_mean), mm = run_ok(mg_mean);
  EXPECT_NEAR(cm.loss[0], objective(ce) / 8, 1e-14);
  EXPECT_NEAR(mm.loss[0], objective(mg) / 8, 1e-14);
  EXPECT_LT(mm.loss[0], cm.loss[0] - (ce.loss[6] + ce.loss[7]) / 8 + 1e-12);
  EXPECT_LT(mm.loss[0], 0.75 * cm.loss[0]);
  for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(mm.grad[gidx(1, c, 2)], 0.0);
  EXPECT_NEAR(mm.grad[gidx(0, 1, 1)], ce.grad[gidx(0, 1, 1)] / 8, 1e-16);
  ASSERT_TRUE(matches_elem_reference(mg_mean));
}

// The argmax decides: a background-labelled pixel of image 1 whose argmax is background (or an
// annotated class) is charged as by CROSS_ENTROPY; ties go to the lowest class index.
TEST(ElementwiseValues, MarginalCEArgmaxAndTies) {
  MarginalScenario s = marginal_scenario();
  // Image 1 pixel 3: class 2 and background tie → argmax 0 → charged.
  for (int64_t c = 0; c < 4; ++c)
    s.marginal.input[static_cast<size_t>(MarginalScenario::elem(1, c, 3))] =
        c == 0 || c == 2 ? 3.0 : 0.0;
  s.ce.input = s.marginal.input;
  const RunResult ce = run_ok(s.ce), mg = run_ok(s.marginal);
  EXPECT_EQ(mg.loss[7], ce.loss[7]);
  EXPECT_GT(mg.loss[7], 0.5);
  EXPECT_EQ(mg.loss[6], 0.0);  // pixel 2: argmax 2, missing: not charged
  // Class 3 is missing in image 1 too, class 1 is annotated: predicting class 1 is charged.
  for (int64_t c = 0; c < 4; ++c)
    s.marginal.input[static_cast<size_t>(MarginalScenario::elem(1, c, 3))] = c == 1 ? 4.0 : 0.0;
  const RunResult m2 = run_ok(s.marginal);
  EXPECT_GT(m2.loss[7], 3.0);
  for (int64_t c = 0; c < 4; ++c)
    s.marginal.input[static_cast<size_t>(MarginalScenario::elem(1, c, 3))] = c == 3 ? 4.0 : 0.0;
  const RunResult m3 = run_ok(s.marginal);
  EXPECT_EQ(m3.loss[7], 0.0);
}

// An ignored pixel does not annotate its image.
TEST(ElementwiseValues, MarginalCEIgnoredPixelsDoNotAnnotate) {
  MarginalScenario s = marginal_scenario();
  // Image 0 loses its class-2 pixel to IGNORE_INDEX: class 2 becomes missing in image 0, so its
  // background pixel 0 predicted as class 2 is no longer charged.
  s.marginal.labels[2] = 255;
  s.marginal.opt.ignore_index = 255;
  const RunResult r = run_ok(s.marginal);
  EXPECT_EQ(r.loss[0], 0.0);
  EXPECT_EQ(r.loss[2], 0.0);
  ASSERT_TRUE(matches_elem_reference(s.marginal));
}

// ---------------------------------------------------------------------------------------------
// Edge cases.

// One case of every kind on the same (N, C, L) tensors with the given logits.
std::vector<RegionCase> every_kind(const std::vector<int64_t>& shape, const std::vector<double>& x,
                                   const std::vector<int64_t>& lab) {
  std::vector<RegionCase> out;
  const int64_t N = shape[0], C = shape[1], L = shape[2];
  std::vector<double> onehot(x.size(), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < L; ++i)
      onehot[static_cast<size_t>((n * C + lab[static_cast<size_t>(n * L + i)]) * L + i)] = 1.0;
  out.push_back(dense(make(CULOSS_BCE, shape, x), onehot));
  out.push_back(labels(make(CULOSS_CROSS_ENTROPY, shape, x), lab));
  for (double g : {0.0, 0.5, 2.0}) {
    RegionCase f = dense(make(CULOSS_FOCAL, shape, x), onehot);
    f.opt.gamma = g;
    out.push_back(f);
    RegionCase fs = labels(make(CULOSS_FOCAL, shape, x), lab);
    fs.opt.activation = CULOSS_ACTIVATION_SOFTMAX;
    fs.opt.gamma = g;
    out.push_back(fs);
  }
  out.push_back(dense(make(CULOSS_COMBO, shape, x), onehot));
  out.push_back(labels(make(CULOSS_MARGINAL_CE, shape, x), lab));
  return out;
}

// Logits ±1e4: finite values and gradients, matching the reference, with the right signs.
TEST(ElementwiseValues, SaturatedLogits) {
  const std::vector<int64_t> shape = {2, 3, 2};
  // Pixel (n, i): logits of its classes; labels chosen so that some pixels are right and some
  // wrong with full confidence.
  // Element ((n · 3 + c) · 2 + i). Image 0: pixel 0 says class 0 (label 0: right), pixel 1 says
  // class 1 (label 2: confidently wrong); image 1: pixel 0 says class 1 (label 1), pixel 1 says
  // class 0 (label 0).
  const std::vector<double> x = {1e4,  -1e4, -1e4, 1e4,  -1e4, -1e4,
                                 -1e4, 1e4,  1e4,  -1e4, -1e4, -1e4};
  const std::vector<int64_t> lab = {0, 2, 1, 0};
  for (const RegionCase& rc : every_kind(shape, x, lab)) {
    const RunResult r = run_ok(rc);
    ASSERT_TRUE(all_finite(r.loss) && all_finite(r.grad)) << describe_case(rc);
    EXPECT_TRUE(matches_elem_reference(rc, RunConfig(), 1e-9, 1e-9, 1e-2, 1e-15));
    if (rc.opt.kind != CULOSS_COMBO) {
      EXPECT_GE(r.loss[0], 0.0) << describe_case(rc);
    }
    // Signs: the label's logit is pushed up (d/dx ≤ 0), the others down (d/dx ≥ 0).
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t c = 0; c < 3; ++c) {
          const double g = r.grad[static_cast<size_t>((n * 3 + c) * 2 + i)];
          if (c == lab[static_cast<size_t>(n * 2 + i)]) {
            EXPECT_LE(g, 0.0) << describe_case(rc);
          } else if (rc.opt.kind != CULOSS_MARGINAL_CE) {
            EXPECT_GE(g, 0.0) << describe_case(rc);
          }
        }
  }
  // A confidently wrong BCE element costs |x| (−log σ(−1e4) = 1e4) with gradient −1.
  RegionCase one = dense(make(CULOSS_BCE, {1, 1}, {-1e4}), {1.0});
  const RunResult r = run_ok(one);
  EXPECT_NEAR(r.loss[0], 1e4, 1e-9);
  EXPECT_NEAR(r.grad[0], -1.0, 1e-15);
  one.input = {1e4};
  const RunResult r2 = run_ok(one);
  EXPECT_NEAR(r2.loss[0], 0.0, 1e-300);
  EXPECT_NEAR(r2.grad[0], 0.0, 1e-300);
}

// Probabilities exactly 0 and 1 (ACTIVATION_NONE): clamped to [1e-7, 1 − 1e-7], finite values,
// zero gradient outside the clamp range.
TEST(ElementwiseValues, ProbabilitiesZeroAndOne) {
  const std::vector<double> p = {0.0, 1.0, 1.0, 0.0, 0.5, 0.25};
  const std::vector<double> t = {1.0, 1.0, 0.0, 0.0, 1.0, 0.0};
  const double big = -std::log(1e-7);
  for (int kind : {CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO}) {
    RegionCase rc = dense(make(static_cast<culoss_kind>(kind), {6, 1}, p), t);
    rc.opt.activation = CULOSS_ACTIVATION_NONE;
    rc.opt.reduction = kind == CULOSS_COMBO ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_NONE;
    if (kind == CULOSS_FOCAL) rc.opt.gamma = 0.5;
    if (kind == CULOSS_COMBO) rc.opt.ce_ratio = 1.0;  // the Dice part's p is not clamped
    const RunResult r = run_ok(rc);
    ASSERT_TRUE(all_finite(r.loss) && all_finite(r.grad)) << describe_case(rc);
    EXPECT_TRUE(matches_elem_reference(rc));
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(r.grad[i], 0.0) << "element " << i << " kind " << kind;
    EXPECT_NE(r.grad[4], 0.0);
    if (kind == CULOSS_BCE) {
      EXPECT_NEAR(r.loss[0], big, 1e-9);                  // t = 1, p = 0 → −log 1e-7
      EXPECT_NEAR(r.loss[1], -std::log1p(-1e-7), 1e-15);  // t = 1, p = 1 → −log(1 − 1e-7)
      EXPECT_NEAR(r.loss[2], big, 1e-8);                  // t = 0, p = 1
    }
  }
  // Class-exclusive kinds: a 0 probability for the labelled (foreground) class.
  for (int kind : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE}) {
    RegionCase rc = labels(
        make(static_cast<culoss_kind>(kind), {2, 3}, {1.0, 0.0, 0.0, 0.2, 0.3, 0.5}), {1, 2});
    rc.opt.activation = CULOSS_ACTIVATION_NONE;
    rc.opt.reduction = CULOSS_REDUCTION_NONE;
    const RunResult r = run_ok(rc);
    ASSERT_TRUE(all_finite(r.loss) && all_finite(r.grad));
    EXPECT_TRUE(matches_elem_reference(rc));
    EXPECT_NEAR(r.loss[0], big, 1e-9);
    EXPECT_NEAR(r.loss[1], std::log(2.0), 1e-15);
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(r.grad[i], 0.0) << i;
    EXPECT_NEAR(r.grad[5], -2.0, 1e-14);  // −1/p
  }
}

// Focal with γ = 0.5 (unbounded (1 − p_t)^{γ−1}) where p_t → 1: finite gradients.
TEST(ElementwiseValues, FocalGammaHalfAtCertainty) {
  for (int act : {CULOSS_ACTIVATION_SIGMOID, CULOSS_ACTIVATION_NONE, CULOSS_ACTIVATION_SOFTMAX}) {
    for (double x : {1e4, 40.0, 20.0}) {
      RegionCase rc;
      if (act == CULOSS_ACTIVATION_SOFTMAX) {
        rc = labels(make(CULOSS_FOCAL, {1, 2}, {x, -x}), {0});
      } else {
        const double in = act == CULOSS_ACTIVATION_NONE ? (x == 1e4 ? 1.0 : 1.0 - 1e-7) : x;
        rc = dense(make(CULOSS_FOCAL, {2, 1}, {in, act == CULOSS_ACTIVATION_NONE ? 1.0 - in : -in}),
                   {1.0, 0.0});
      }
      rc.opt.activation = act;
      rc.opt.gamma = 0.5;
      rc.opt.reduction = CULOSS_REDUCTION_SUM;
      const RunResult r = run_ok(rc);
      ASSERT_TRUE(all_finite(r.loss) && all_finite(r.grad)) << describe_case(rc);
      EXPECT_GE(r.loss[0], 0.0);
      EXPECT_LT(r.loss[0], 1e-6);
      EXPECT_LT(max_abs(r.grad), 1e-2) << describe_case(rc);
      EXPECT_TRUE(matches_elem_reference(rc, RunConfig(), 1e-9, 1e-8, 1.0, 1e-15));
    }
  }
  // γ = 0.5 near (not at) certainty agrees with the reference: x = 8.
  RegionCase rc = dense(make(CULOSS_FOCAL, {1, 1}, {8.0}), {1.0});
  rc.opt.gamma = 0.5;
  EXPECT_TRUE(matches_elem_reference(rc));
}

// Every pixel ignored: loss 0 and gradient 0 (COMBO: −(1 − CE_RATIO), its Dice score of nothing
// being 1).
TEST(ElementwiseValues, AllPixelsIgnored) {
  for (int kind : kElementwiseKinds)
    for (int red = 0; red < 3; ++red) {
      if (kind == CULOSS_COMBO && red != CULOSS_REDUCTION_MEAN) continue;
      const bool binary = kind == CULOSS_BCE || kind == CULOSS_COMBO || kind == CULOSS_FOCAL;
      const int64_t C = binary ? 1 : 3;
      std::vector<double> x(static_cast<size_t>(2 * C * 3));
      for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.0 + static_cast<double>(i));
      RegionCase rc =
          labels(make(static_cast<culoss_kind>(kind), {2, C, 3}, x), std::vector<int64_t>(6, -100));
      rc.opt.reduction = red;
      const RunResult r = run_ok(rc);
      ASSERT_TRUE(r.ok());
      const double want = kind == CULOSS_COMBO ? -(1 - rc.opt.ce_ratio) : 0.0;
      for (double v : r.loss) EXPECT_EQ(v, want) << "kind " << kind << " red " << red;
      for (double g : r.grad) EXPECT_EQ(g, 0.0) << "kind " << kind << " red " << red;
    }
  // CROSS_ENTROPY MEAN whose counted labels all have class weight 0: divisor 0 → 0, 0.
  RegionCase rc = labels(make(CULOSS_CROSS_ENTROPY, {1, 2, 2}, {1, 2, 3, 4}), {1, 1});
  rc.opt.class_weights = {1.0, 0.0};
  const RunResult r = run_ok(rc);
  EXPECT_EQ(r.loss[0], 0.0);
  for (double g : r.grad) EXPECT_EQ(g, 0.0);
}

// One pixel, and C = 1. A one-class model takes SIGMOID where the kind does (BCE, FOCAL, COMBO),
// else probabilities (ACTIVATION_NONE: CROSS_ENTROPY, MARGINAL_CE); its index labels are a 0/1
// mask for every kind.
TEST(ElementwiseValues, OnePixelAndOneClass) {
  std::mt19937 rng(501);
  for (int kind : kElementwiseKinds)
    for (int64_t C : {1, 3}) {
      const bool binary = kind == CULOSS_BCE || kind == CULOSS_COMBO || kind == CULOSS_FOCAL;
      const bool probabilities = C == 1 && !binary;
      std::vector<double> x(static_cast<size_t>(C));
      for (double& v : x)
        v = probabilities ? std::uniform_real_distribution<double>(0.05, 0.95)(rng)
                          : std::uniform_real_distribution<double>(-2, 2)(rng);
      for (int red = 0; red < 3; ++red) {
        if (kind == CULOSS_COMBO && red != 0) continue;
        RegionCase rc = make(static_cast<culoss_kind>(kind), {1, C}, x);
        if (probabilities) rc.opt.activation = CULOSS_ACTIVATION_NONE;
        rc.opt.reduction = red;
        std::vector<RegionCase> cases;
        if (C == 1) {
          cases = {labels(rc, {1}), labels(rc, {0}), dense(rc, {1.0}), dense(rc, {0.0})};
        } else {
          std::vector<double> t(static_cast<size_t>(C), 0.0);
          t[0] = 1.0;
          cases = {dense(rc, t)};
        }
        for (const RegionCase& one : cases)
          EXPECT_TRUE(matches_elem_reference(one)) << "kind " << kind << " C " << C;
      }
    }
  // Softmax over one class would be constant (p = 1, zero gradient): refused.
  for (int kind : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE, CULOSS_FOCAL}) {
    RegionCase rc = labels(make(static_cast<culoss_kind>(kind), {2, 1, 3}, {1, 2, 3, -1, -2, -3}),
                           {0, 0, 0, 0, 0, 0});
    rc.opt.activation = CULOSS_ACTIVATION_SOFTMAX;
    const RunResult r = run_region(rc);
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.status) << "kind " << kind;
    EXPECT_NE(r.error.find("CULOSS_ACTIVATION_SIGMOID"), std::string::npos) << r.error;
  }
  // The same labels as a mask of probabilities: 0 is background (no term for CROSS_ENTROPY and
  // MARGINAL_CE), 1 foreground (−log p). CROSS_ENTROPY's MEAN divides by the foreground pixels,
  // MARGINAL_CE's by all counted pixels (the ignored one is not counted).
  const std::vector<double> p = {0.2, 0.5, 0.9, 0.6, 0.3, 0.8};
  const std::vector<int64_t> mask = {1, 0, 1, 0, 1, -100};
  for (int kind : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE}) {
    RegionCase rc = labels(make(static_cast<culoss_kind>(kind), {2, 1, 3}, p), mask);
    rc.opt.activation = CULOSS_ACTIVATION_NONE;
    const RunResult r = run_ok(rc);
    ASSERT_EQ(r.loss.size(), 1u);
    ASSERT_EQ(r.grad.size(), 6u);
    const double divisor = kind == CULOSS_CROSS_ENTROPY ? 3.0 : 5.0;
    EXPECT_NEAR(r.loss[0], -(std::log(0.2) + std::log(0.9) + std::log(0.3)) / divisor, 1e-12)
        << "kind " << kind;
    for (size_t i = 0; i < p.size(); ++i)
      EXPECT_NEAR(r.grad[i], mask[i] == 1 ? -1.0 / (divisor * p[i]) : 0.0, 1e-12)
          << "kind " << kind << " element " << i;
    EXPECT_TRUE(matches_elem_reference(rc));
  }
}

// float16 and bfloat16 inputs (and targets) against float64 on the rounded values.
TEST(ElementwiseValues, HalfPrecisionInputs) {
  std::mt19937 rng(502);
  for (int it = 0; it < 40; ++it) {
    ElemConstraints k;
    k.kind = kElementwiseKinds[it % 5];
    RegionCase rc = random_elementwise_case(rng, k);
    rc.input_dtype = it % 2 ? testing_util::f16() : testing_util::bf16();
    RegionCase ref = rc;  // float64 input holding the rounded values
    ref.input = stored_input(rc);
    ref.input_dtype = testing_util::f64();
    const RunResult lo = run_ok(rc), hi = run_ok(ref);
    ASSERT_TRUE(lo.ok() && hi.ok());
    EXPECT_TRUE(close_vectors("loss", lo.loss, hi.loss, Tol{1e-3, 1e-3 * max_abs(hi.loss) + 1e-12}))
        << describe_case(rc);
    EXPECT_TRUE(close_vectors("grad", lo.grad, hi.grad, Tol{1e-2, 1e-2 * max_abs(hi.grad) + 1e-12}))
        << describe_case(rc);
    RunConfig f32;
    f32.grad_f32 = true;
    const RunResult lo32 = run_ok(rc, f32);
    EXPECT_TRUE(
        close_vectors("grad f32", lo32.grad, hi.grad, Tol{1e-5, 1e-5 * max_abs(hi.grad) + 1e-12}))
        << describe_case(rc);
  }
}

// Empty tensors (N = 0, or a spatial extent of 0): success, loss 0, NONE outputs empty.
TEST(ElementwiseValues, EmptyTensors) {
  for (int kind : kElementwiseKinds)
    for (const std::vector<int64_t>& shape :
         {std::vector<int64_t>{0, 3, 4}, std::vector<int64_t>{2, 3, 0}}) {
      for (int red = 0; red < 3; ++red) {
        if (kind == CULOSS_COMBO && red != 0) continue;
        RegionCase rc = dense(make(static_cast<culoss_kind>(kind), shape, {}), {});
        rc.opt.reduction = red;
        const RunResult r = run_ok(rc);
        ASSERT_TRUE(r.ok());
        EXPECT_TRUE(r.grad.empty());
        if (red != CULOSS_REDUCTION_NONE) {
          ASSERT_EQ(r.loss.size(), 1u);
          // COMBO of nothing: the Dice score of an empty batch is 1 (no pair: mean 0 loss) → −(1 −
          // r).
          const double want = kind == CULOSS_COMBO ? -(1 - rc.opt.ce_ratio) : 0.0;
          EXPECT_EQ(r.loss[0], want) << "kind " << kind;
        } else {
          EXPECT_TRUE(r.loss.empty());
        }
      }
    }
}

// Same inputs → the same bytes, call after call (also on a larger tensor).
TEST(ElementwiseValues, Deterministic) {
  std::mt19937 rng(503);
  for (int it = 0; it < 10; ++it) {
    ElemConstraints k;
    k.kind = kElementwiseKinds[it % 5];
    k.max_dim = it < 5 ? 30 : -1;
    k.layout = kLayoutNCHW;
    const RegionCase rc = random_elementwise_case(rng, k);
    const RunResult a = run_ok(rc), b = run_ok(rc);
    EXPECT_EQ(a.loss_bytes, b.loss_bytes);
    EXPECT_EQ(a.grad_bytes, b.grad_bytes);
  }
}

// Parameters: which apply to which element-wise kind, and the defaults.
TEST(ElementwiseParams, ApplicabilityAndDefaults) {
  const culoss_param floats[] = {CULOSS_PARAM_ALPHA,           CULOSS_PARAM_GAMMA,
                                 CULOSS_PARAM_LABEL_SMOOTHING, CULOSS_PARAM_CE_RATIO,
                                 CULOSS_PARAM_SMOOTH_NR,       CULOSS_PARAM_BETA};
  for (int kind : kElementwiseKinds) {
    for (culoss_param p : floats) {
      testing_util::Loss loss(static_cast<culoss_kind>(kind));
      const culoss_status st = culoss_loss_set_float(loss, p, 0.5);
      EXPECT_EQ(st, elementwise_param_applies(static_cast<culoss_kind>(kind), p)
                        ? CULOSS_SUCCESS
                        : CULOSS_ERROR_INVALID_ARGUMENT)
          << "kind " << kind << " param " << p;
    }
    {
      testing_util::Loss loss(static_cast<culoss_kind>(kind));
      const double w[] = {1.0, 2.0};
      EXPECT_EQ(culoss_loss_set_floats(loss, CULOSS_PARAM_POS_WEIGHT, w, 2),
                kind == CULOSS_BCE ? CULOSS_SUCCESS : CULOSS_ERROR_INVALID_ARGUMENT);
      EXPECT_EQ(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, w, 2),
                kind == CULOSS_MARGINAL_CE ? CULOSS_ERROR_INVALID_ARGUMENT : CULOSS_SUCCESS);
      EXPECT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_CLASS_BALANCE, 1),
                kind == CULOSS_BCE ? CULOSS_SUCCESS : CULOSS_ERROR_INVALID_ARGUMENT);
    }
    testing_util::Loss loss(static_cast<culoss_kind>(kind));
    int64_t act = -1;
    ASSERT_EQ(culoss_loss_get_int(loss, CULOSS_PARAM_ACTIVATION, &act), CULOSS_SUCCESS);
    const bool sig = kind == CULOSS_BCE || kind == CULOSS_FOCAL || kind == CULOSS_COMBO;
    EXPECT_EQ(act, sig ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_SOFTMAX) << kind;
    // Activations each kind refuses.
    const int refused = kind == CULOSS_BCE || kind == CULOSS_COMBO ? CULOSS_ACTIVATION_SOFTMAX
                        : kind == CULOSS_FOCAL                     ? -1
                                                                   : CULOSS_ACTIVATION_SIGMOID;
    // (SEMANTICS: COMBO takes SIGMOID or NONE, like BCE.)
    if (refused >= 0) {
      EXPECT_EQ(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, refused),
                CULOSS_ERROR_INVALID_ARGUMENT)
          << "kind " << kind << " accepts ACTIVATION " << refused;
    }
  }
  double v = -1;
  {
    testing_util::Loss f(CULOSS_FOCAL);
    ASSERT_EQ(culoss_loss_get_float(f, CULOSS_PARAM_ALPHA, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 0.25);
    ASSERT_EQ(culoss_loss_get_float(f, CULOSS_PARAM_GAMMA, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 2.0);
    EXPECT_EQ(culoss_loss_set_float(f, CULOSS_PARAM_GAMMA, -0.5), CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(culoss_loss_set_float(f, CULOSS_PARAM_ALPHA, -1.0), CULOSS_SUCCESS);  // disables α
  }
  {
    testing_util::Loss c(CULOSS_COMBO);
    ASSERT_EQ(culoss_loss_get_float(c, CULOSS_PARAM_ALPHA, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 0.5);
    ASSERT_EQ(culoss_loss_get_float(c, CULOSS_PARAM_CE_RATIO, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 0.5);
    EXPECT_EQ(culoss_loss_set_int(c, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM),
              CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(culoss_loss_set_int(c, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE),
              CULOSS_ERROR_INVALID_ARGUMENT);
    EXPECT_EQ(culoss_loss_set_float(c, CULOSS_PARAM_CE_RATIO, 1.5), CULOSS_ERROR_INVALID_ARGUMENT);
  }
  {
    testing_util::Loss b(CULOSS_BCE);
    ASSERT_EQ(culoss_loss_get_float(b, CULOSS_PARAM_LABEL_SMOOTHING, &v), CULOSS_SUCCESS);
    EXPECT_EQ(v, 0.0);
    EXPECT_EQ(culoss_loss_set_float(b, CULOSS_PARAM_LABEL_SMOOTHING, 1.0),
              CULOSS_ERROR_INVALID_ARGUMENT);
    int64_t bal = -1;
    ASSERT_EQ(culoss_loss_get_int(b, CULOSS_PARAM_CLASS_BALANCE, &bal), CULOSS_SUCCESS);
    EXPECT_EQ(bal, CULOSS_BALANCE_NONE);
  }
}

// Refusals specific to the element-wise kinds.
TEST(ElementwiseParams, Refusals) {
  // Binary losses with class-index targets need C = 1.
  for (int kind : {CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO}) {
    RegionCase rc =
        labels(make(static_cast<culoss_kind>(kind), {2, 3}, {0, 0, 0, 0, 0, 0}), {0, 2});
    EXPECT_EQ(run_region(rc).status, CULOSS_ERROR_INVALID_ARGUMENT) << kind;
  }
  // Sigmoid binary mask: label 2 is not a mask value.
  RegionCase m = labels(make(CULOSS_BCE, {2, 1}, {0, 0}), {0, 2});
  EXPECT_EQ(run_region(m).status, CULOSS_ERROR_INVALID_TARGET);
  // POS_WEIGHT / CLASS_WEIGHTS with the wrong number of classes.
  RegionCase p = dense(make(CULOSS_BCE, {1, 3}, {0, 0, 0}), {1, 0, 1});
  p.opt.pos_weight = {1.0, 2.0};
  EXPECT_EQ(run_region(p).status, CULOSS_ERROR_SHAPE_MISMATCH);
  RegionCase c = labels(make(CULOSS_CROSS_ENTROPY, {1, 3}, {0, 0, 0}), {1});
  c.opt.class_weights = {1.0, 2.0, 3.0, 4.0};
  EXPECT_EQ(run_region(c).status, CULOSS_ERROR_SHAPE_MISMATCH);
  // Dense targets outside [0, 1].
  RegionCase d = dense(make(CULOSS_CROSS_ENTROPY, {1, 2}, {0, 0}), {1.5, 0});
  EXPECT_EQ(run_region(d).status, CULOSS_ERROR_INVALID_TARGET);
}

}  // namespace

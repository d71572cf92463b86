// Lovász losses (LOVASZ_HINGE, LOVASZ_SOFTMAX) on the CPU backend: against the independent long
// double reference (tests/reference/lovasz_reference.hpp) on random inputs and option sweeps,
// values computed by hand, central finite differences, edge cases (no positives, everything
// ignored, one pixel, ties, one class present, saturated logits, empty batch), half-precision
// inputs, output dtypes, in-place gradients, workspaces, determinism, and the refusals.
//
// Contract: docs/reference.md and the "Lovász losses" section of docs/SEMANTICS.md.
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"
#include "losses/lovasz_harness.hpp"
#include "reference/lovasz_reference.hpp"

namespace {

using namespace lovasz_test;

constexpr culoss_kind kHinge = CULOSS_LOVASZ_HINGE;
constexpr culoss_kind kSoftmax = CULOSS_LOVASZ_SOFTMAX;

// ---------------------------------------------------------------------------------------------
// Small hand-made calls
// ---------------------------------------------------------------------------------------------

// A call with the values given explicitly (x in the input's row-major order).
struct Small {
  culoss_kind kind = kHinge;
  std::vector<int64_t> shape;
  int class_axis = 1;
  int activation = CULOSS_ACTIVATION_SOFTMAX;
  std::vector<double> x;
  std::vector<double> dense;    // input's shape, or
  std::vector<int64_t> labels;  // input's shape without the class axis
  DLDataType label_dtype = i64();
  std::vector<double> weight;  // empty: no pixel_weight
  int per_image = 0;
  int classes = CULOSS_CLASSES_PRESENT;
  int reduction = CULOSS_REDUCTION_MEAN;
  int64_t ignore_index = kNoIgnoreParam;
  double grad_scale = 1.0;
  DLDataType in = f64();
};

LData make_small(const Small& s) {
  LData d;
  LCase& c = d.c;
  c.kind = s.kind;
  c.shape = s.shape;
  c.class_axis = s.class_axis;
  c.activation = s.kind == kHinge ? CULOSS_ACTIVATION_NONE : s.activation;
  c.in = s.in;
  c.per_image = s.per_image;
  c.classes = s.classes;
  c.reduction = s.reduction;
  c.grad_scale = s.grad_scale;
  c.ignore_index = s.ignore_index;
  c.pixel_weight = !s.weight.empty();
  const int nd = static_cast<int>(s.shape.size());
  const int axis = resolved_axis(c);
  d.N = s.shape[0];
  d.C = s.shape[static_cast<size_t>(axis)];
  for (int k = 1; k < axis; ++k) d.pre *= s.shape[static_cast<size_t>(k)];
  for (int k = axis + 1; k < nd; ++k) d.inner *= s.shape[static_cast<size_t>(k)];
  d.P = d.pre * d.inner;
  for (int k = 0; k < nd; ++k)
    if (k != axis) d.pix_shape.push_back(s.shape[static_cast<size_t>(k)]);
  d.input = TestTensor(s.shape, s.in);
  for (size_t i = 0; i < s.x.size(); ++i) d.input.set(static_cast<int64_t>(i), s.x[i]);
  if (!s.labels.empty()) {
    c.tgt = s.label_dtype.bits == 8    ? Tgt::IdxU8
            : s.label_dtype.bits == 32 ? Tgt::IdxI32
                                       : Tgt::IdxI64;
    d.target = TestTensor(d.pix_shape, s.label_dtype);
    for (size_t i = 0; i < s.labels.size(); ++i)
      d.target.set(static_cast<int64_t>(i), static_cast<double>(s.labels[i]));
  } else {
    c.tgt = Tgt::DenseF64;
    d.target = TestTensor(s.shape, f64());
    for (size_t i = 0; i < s.dense.size(); ++i) d.target.set(static_cast<int64_t>(i), s.dense[i]);
  }
  if (s.ignore_index != kNoIgnoreParam) {
    d.set_ignore = true;
    d.ignore_value = s.ignore_index;
  }
  d.has_weight = !s.weight.empty();
  if (d.has_weight) {
    d.weight = TestTensor(d.pix_shape, f32());
    for (size_t i = 0; i < s.weight.size(); ++i) d.weight.set(static_cast<int64_t>(i), s.weight[i]);
  }
  d.loss_shape = loss_shape_of(c, d.N, d.C);
  refresh_spec(d);
  return d;
}

// Runs and expects success.
LRun run_ok(const LData& d, const CpuRunOptions& o = CpuRunOptions{}) {
  LRun r = run_cpu(d, o);
  EXPECT_EQ(CULOSS_SUCCESS, r.status) << r.error << "\n  case: " << describe(d.c);
  return r;
}

void expect_vec_near(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << what << "[" << i << "]";
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// ---------------------------------------------------------------------------------------------
// The reference itself
// ---------------------------------------------------------------------------------------------

TEST(LovaszReference, HandValues) {
  // Hinge: logits [2, −1, 0.5], labels [1, 1, 0]: e = [−1, 2, 1.5]; order 1, 2, 0; gts = 2;
  // J = 1/2, 2/3, 1 → g = 1/2, 1/6, 1/3; loss = 2·1/2 + 1.5·1/6 = 1.25.
  lovasz_ref::Spec s;
  s.kind = lovasz_ref::HINGE;
  s.shape = {1, 1, 3};
  s.input = {2.0, -1.0, 0.5};
  s.dense_target = {1.0, 1.0, 0.0};
  lovasz_ref::Result r = lovasz_ref::reference(s);
  ASSERT_EQ(r.values.size(), 1u);
  EXPECT_NEAR(r.values[0], 1.25, 1e-15);
  expect_vec_near(r.grad, {0.0, -0.5, 1.0 / 6}, 1e-15, "hinge grad");

  // Softmax on probabilities: p(class 0) = [0.8, 0.4], p(class 1) = [0.2, 0.6], labels [0, 1].
  // class 0: e = [0.2, 0.4] → order 1 (bg), 0 (fg): g = 1/2, 1/2 → 0.3;
  // class 1: e = [0.2, 0.4] → order 1 (fg), 0 (bg): g = 1, 0 → 0.4; mean 0.35.
  s = lovasz_ref::Spec{};
  s.kind = lovasz_ref::SOFTMAX;
  s.activation = lovasz_ref::ACT_NONE;
  s.shape = {1, 2, 2};
  s.input = {0.8, 0.4, 0.2, 0.6};
  s.index_target = true;
  s.labels = {0, 1};
  r = lovasz_ref::reference(s);
  EXPECT_NEAR(r.values[0], 0.35, 1e-15);
  expect_vec_near(r.grad, {-0.25, 0.25, 0.0, -0.5}, 1e-15, "softmax grad");
}

// The reference's analytic gradient against central differences of its own objective.
TEST(LovaszReference, GradientMatchesFiniteDifferences) {
  int checked = 0;
  for (uint64_t it = 0; it < 60; ++it) {
    LCase c;
    c.kind = it % 2 ? kHinge : kSoftmax;
    c.shape = it % 3 == 0 ? std::vector<int64_t>{2, 3, 3, 2} : std::vector<int64_t>{2, 2, 5};
    if (c.kind == kHinge && it % 4 == 1) {
      c.shape = {3, 1, 4};
      c.tgt = Tgt::IdxI32;
    }
    c.activation = it % 5 == 2 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
    c.per_image = static_cast<int>(it % 2);
    c.classes = (it / 2) % 2 ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
    c.reduction = static_cast<int>(it % 3);
    c.pixel_weight = it % 4 == 0;
    c.grad_scale = it % 7 == 3 ? -1.75 : 1.0;
    c.seed = 500 + it;
    const LData d = make_data(c);
    const lovasz_ref::Result ref = lovasz_ref::reference(d.spec);
    if (lovasz_ref::min_gap(d.spec, ref) < 1e-4) continue;
    const std::vector<long double> x(d.spec.input.begin(), d.spec.input.end());
    for (size_t i = 0; i < x.size(); ++i) {
      const long double h = 1e-7L;
      std::vector<long double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const long double fd =
          (lovasz_ref::objective(d.spec, xp) - lovasz_ref::objective(d.spec, xm)) / (2 * h) *
          d.spec.grad_scale;
      ASSERT_NEAR(static_cast<double>(fd), ref.grad[i], 1e-8 * (1.0 + max_abs(ref.grad)))
          << "element " << i << "\n  case: " << describe(d.c);
    }
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

// ---------------------------------------------------------------------------------------------
// Random cases and sweeps against the reference
// ---------------------------------------------------------------------------------------------

LCase random_case(std::mt19937_64& rng, uint64_t seed) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  LCase c;
  c.seed = seed;
  c.kind = pick(2) ? kHinge : kSoftmax;
  const int64_t N = 1 + pick(3);
  const int64_t C = c.kind == kHinge ? (pick(3) == 0 ? 1 : 1 + pick(4)) : 1 + pick(5);
  const int64_t H = 1 + pick(6), W = 1 + pick(7), D = 1 + pick(3);
  switch (pick(6)) {
    case 0:
      c.shape = {N, C, H, W};
      break;
    case 1:
      c.shape = {N, H, W, C};
      c.class_axis = -1;
      break;
    case 2:
      c.shape = {N * 4 + pick(9), C};
      break;
    case 3:
      c.shape = {N, C, D, H, W};
      break;
    case 4:
      c.shape = {N, D, C, W};
      c.class_axis = 2;
      break;
    default:
      c.shape = {N, C, W * H};
      break;
  }
  c.activation = pick(3) == 0 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
  // A softmax over one class is refused: LOVASZ_SOFTMAX with C = 1 takes probabilities (its
  // index labels are then a 0/1 mask).
  if (c.kind == kSoftmax && C == 1) c.activation = CULOSS_ACTIVATION_NONE;
  const Tgt tgts[] = {Tgt::DenseF64, Tgt::DenseF32, Tgt::DenseU8, Tgt::DenseIn,
                      Tgt::IdxU8,    Tgt::IdxI32,   Tgt::IdxI64};
  c.tgt = tgts[pick(7)];
  if (c.kind == kHinge && C == 1 && pick(2)) c.tgt = tgts[4 + pick(3)];
  c.per_image = pick(2);
  c.classes = pick(2) ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
  c.reduction = pick(3);
  const double fracs[] = {0.0, 0.1, 0.4, 1.0};
  c.ignore_frac = fracs[pick(4) == 0 ? 0 : pick(3)];
  if (pick(25) == 0) c.ignore_frac = 1.0;
  c.pixel_weight = pick(3) == 0;
  if (pick(5) == 0) {
    if (c.tgt == Tgt::IdxU8)
      c.ignore_index = 200;
    else if (c.tgt == Tgt::IdxI32 || c.tgt == Tgt::IdxI64)
      c.ignore_index = pick(2) ? -1 : 9;
  }
  c.absent_class = pick(2);
  const double scales[] = {1.0, 0.5, -2.5, 3.0};
  c.grad_scale = scales[pick(4)];
  c.grad_f32 = pick(5) == 0;
  c.loss_dtype = pick(5) == 0 ? f32() : f64();
  c.loss_1d = pick(2);
  c.logit_scale = pick(4) == 0 ? 6.0 : 1.5;
  return c;
}

TEST(LovaszCpuRandom, MatchesReference) {
  std::mt19937_64 rng(0xC0FFEEull + seed_base());
  for (uint64_t it = 0; it < 500; ++it) {
    const LCase c = random_case(rng, 10000 + it);
    CpuRunOptions o;
    o.in_place = it % 5 == 2 && !c.grad_f32;  // the gradient overwrites the input
    ASSERT_TRUE(matches_reference(make_data(c), o))
        << "iteration " << it << (o.in_place ? " (in place)" : "");
  }
}

// Every kind × per_image × reduction × CLASSES × activation × layout, with every target kind
// and pixel weights rotating through them.
TEST(LovaszCpuSweep, EveryOptionCombination) {
  const Tgt tgts[] = {Tgt::IdxI64,  Tgt::DenseF32, Tgt::IdxU8,
                      Tgt::DenseU8, Tgt::IdxI32,   Tgt::DenseF64};
  struct Layout {
    std::vector<int64_t> shape;
    int axis;
  };
  const Layout layouts[] = {{{2, 4, 6, 5}, 1},       // NCHW
                            {{2, 6, 5, 4}, -1},      // NHWC
                            {{17, 4}, 1},            // (N, C)
                            {{2, 4, 3, 4, 3}, 1},    // NCDHW
                            {{2, 3, 4, 3, 4}, -1}};  // NDHWC
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image)
      for (int red = 0; red < 3; ++red)
        for (int classes = 0; classes < 2; ++classes)
          for (int act = 0; act < 2; ++act)
            for (const Layout& l : layouts) {
              if (kind == kHinge && (classes == 1 || act == 1))
                continue;  // not parameters of the hinge
              LCase c;
              c.kind = kind;
              c.shape = l.shape;
              c.class_axis = l.axis;
              c.per_image = per_image;
              c.reduction = red;
              c.classes = classes ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
              c.activation = act ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
              c.tgt = tgts[r % 6];
              c.pixel_weight = r % 3 == 1;
              c.grad_scale = r % 4 == 2 ? 0.75 : 1.0;
              c.seed = 2000 + static_cast<uint64_t>(r);
              ++r;
              ASSERT_TRUE(matches_reference(make_data(c)));
            }
  // The hinge's binary masks (index targets with C = 1) in every layout.
  for (int per_image = 0; per_image < 2; ++per_image)
    for (int red = 0; red < 3; ++red)
      for (Tgt t : {Tgt::IdxU8, Tgt::IdxI32, Tgt::IdxI64}) {
        LCase c;
        c.kind = kHinge;
        c.shape = red == 1 ? std::vector<int64_t>{3, 5, 4, 1} : std::vector<int64_t>{3, 1, 5, 4};
        c.class_axis = red == 1 ? -1 : 1;
        c.tgt = t;
        c.per_image = per_image;
        c.reduction = red;
        c.pixel_weight = red == 2;
        c.seed = 3000 + static_cast<uint64_t>(r++);
        ASSERT_TRUE(matches_reference(make_data(c)));
      }
}

TEST(LovaszCpuSweep, IgnoreIndexValues) {
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int64_t ignore : {int64_t(-100), int64_t(-1), int64_t(0), int64_t(2), int64_t(1000)})
      for (int per_image = 0; per_image < 2; ++per_image) {
        LCase c;
        c.kind = kind;
        c.shape =
            kind == kHinge ? std::vector<int64_t>{2, 1, 7, 6} : std::vector<int64_t>{2, 4, 7, 6};
        c.tgt = Tgt::IdxI32;
        c.ignore_index = ignore;
        c.ignore_frac = 0.3;
        c.per_image = per_image;
        c.classes = r % 2 ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
        c.seed = 4000 + static_cast<uint64_t>(r++);
        ASSERT_TRUE(matches_reference(make_data(c)));
      }
}

// Larger problems (a few thousand items per sorted list).
TEST(LovaszCpuSweep, LargerProblems) {
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image) {
      LCase c;
      c.kind = kind;
      c.shape = {3, 5, 40, 37};
      c.per_image = per_image;
      c.tgt = kind == kHinge ? Tgt::DenseU8 : Tgt::IdxU8;
      c.pixel_weight = true;
      c.reduction = r % 3;
      c.seed = 5000 + static_cast<uint64_t>(r++);
      ASSERT_TRUE(matches_reference(make_data(c)));
    }
}

// Inputs drawn from a handful of values: ties everywhere, broken by element index.
TEST(LovaszCpuSweep, TieHeavyInputsMatchReference) {
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image)
      for (int layout = 0; layout < 3; ++layout) {
        LCase c;
        c.kind = kind;
        c.shape = layout == 0   ? std::vector<int64_t>{2, 3, 6, 5}
                  : layout == 1 ? std::vector<int64_t>{2, 6, 5, 3}
                                : std::vector<int64_t>{2, 3, 2, 3, 5};
        c.class_axis = layout == 1 ? -1 : 1;
        c.per_image = per_image;
        c.tgt = layout == 2 ? Tgt::DenseF32 : Tgt::IdxI64;
        c.activation =
            kind == kSoftmax && layout == 1 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
        c.seed = 6000 + static_cast<uint64_t>(r++);
        LData d = make_data(c);
        std::mt19937_64 rng(c.seed);
        const double logits[] = {-1.0, -0.5, 0.0, 0.5, 1.0, 2.0};  // hinge: e exact
        const double probs[] = {0.0, 0.25, 0.5, 0.75, 1.0};        // softmax on probabilities
        // Softmax on logits: every pixel takes one of three random logit vectors, so equal errors
        // come from equal pixels (a tie that does not depend on rounding).
        std::normal_distribution<double> G(0.0, 1.0);
        std::vector<double> proto(static_cast<size_t>(3 * d.C));
        for (double& v : proto) v = G(rng);
        for (int64_t n = 0; n < d.N; ++n)
          for (int64_t q = 0; q < d.P; ++q) {
            const uint64_t which = rng() % 3;
            for (int64_t k = 0; k < d.C; ++k) {
              double v;
              if (kind == kHinge)
                v = logits[rng() % 6];
              else if (c.activation == CULOSS_ACTIVATION_NONE)
                v = probs[rng() % 5];
              else
                v = proto[static_cast<size_t>(which * static_cast<uint64_t>(d.C) +
                                              static_cast<uint64_t>(k))];
              d.input.set(d.element(n, q, k), v);
            }
          }
        refresh_spec(d);
        ASSERT_TRUE(matches_reference(d));
      }
}

// ---------------------------------------------------------------------------------------------
// Values computed by hand
// ---------------------------------------------------------------------------------------------

TEST(LovaszCpuValues, HingeHandExample) {
  Small s;
  s.kind = kHinge;
  s.shape = {1, 1, 3};
  s.x = {2.0, -1.0, 0.5};
  s.dense = {1.0, 1.0, 0.0};
  LRun r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 1.25, 1e-15);
  expect_vec_near(r.grad.values(), {0.0, -0.5, 1.0 / 6}, 1e-15, "grad");

  // The same with index labels (C = 1: the labels are the 0/1 mask), and with a grad_scale.
  s.dense.clear();
  s.labels = {1, 1, 0};
  s.grad_scale = -2.0;
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 1.25, 1e-15);
  expect_vec_near(r.grad.values(), {0.0, 1.0, -1.0 / 3}, 1e-15, "grad");
}

TEST(LovaszCpuValues, SoftmaxHandExample) {
  Small s;
  s.kind = kSoftmax;
  s.activation = CULOSS_ACTIVATION_NONE;
  s.shape = {1, 2, 2};
  s.x = {0.8, 0.4, 0.2, 0.6};
  s.labels = {0, 1};
  LRun r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 0.35, 1e-15);
  expect_vec_near(r.grad.values(), {-0.25, 0.25, 0.0, -0.5}, 1e-15, "grad");

  // Through the softmax: the same probabilities from logits log p.
  s.activation = CULOSS_ACTIVATION_SOFTMAX;
  s.x = {std::log(0.8), std::log(0.4), std::log(0.2), std::log(0.6)};
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 0.35, 1e-14);
  // dx_j = p_j (G_j − Σ_c p_c G_c) per pixel, with G = [[−0.25, 0.25], [0, −0.5]] (class, pixel).
  const double p0[] = {0.8, 0.2}, p1[] = {0.4, 0.6};
  const double G0[] = {-0.25, 0.0}, G1[] = {0.25, -0.5};
  const double d0 = p0[0] * G0[0] + p0[1] * G0[1], d1 = p1[0] * G1[0] + p1[1] * G1[1];
  expect_vec_near(
      r.grad.values(),
      {p0[0] * (G0[0] - d0), p1[0] * (G1[0] - d1), p0[1] * (G0[1] - d0), p1[1] * (G1[1] - d1)},
      1e-14, "grad");
}

// A problem without positives: gts = 0, so J_k = 1 from the first item on: the loss is the
// largest positive error (relu(e) of the first item) and only that item has a gradient.
TEST(LovaszCpuValues, HingeProblemWithoutPositives) {
  Small s;
  s.kind = kHinge;
  s.shape = {1, 1, 3};
  s.x = {-0.5, 0.3, -2.0};  // all negatives: e = 1 + x = [0.5, 1.3, −1]
  s.dense = {0.0, 0.0, 0.0};
  LRun r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 1.3, 1e-15);
  expect_vec_near(r.grad.values(), {0.0, 1.0, 0.0}, 1e-15, "grad");
  // Every error ≤ 0: loss 0, no gradient.
  s.x = {-1.5, -1.0, -3.0};
  r = run_ok(make_small(s));
  EXPECT_EQ(r.loss.get(0), 0.0);
  expect_vec_near(r.grad.values(), {0.0, 0.0, 0.0}, 0.0, "grad");

  // Per image, with one image without positives, against the reference.
  LCase c;
  c.kind = kHinge;
  c.shape = {3, 2, 6, 7};
  c.tgt = Tgt::DenseF32;
  c.absent_class = true;  // channel 1 of image 0 has no positive
  for (int per_image = 0; per_image < 2; ++per_image)
    for (int red = 0; red < 3; ++red) {
      c.per_image = per_image;
      c.reduction = red;
      c.seed = 7000 + static_cast<uint64_t>(per_image * 3 + red);
      const LData d = make_data(c);
      const lovasz_ref::Result ref = lovasz_ref::reference(d.spec);
      if (per_image) {
        ASSERT_EQ(ref.list_positives[1], 0) << "the case should have an empty list";
      }
      ASSERT_TRUE(matches_reference(d));
    }
}

TEST(LovaszCpuValues, EveryPixelIgnoredGivesZero) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image)
      for (int red = 0; red < 3; ++red)
        for (int classes = 0; classes < 2; ++classes)
          for (Tgt t : {Tgt::IdxI64, Tgt::DenseF32}) {
            LCase c;
            c.kind = kind;
            c.shape = kind == kHinge && is_index(t) ? std::vector<int64_t>{2, 1, 4, 3}
                                                    : std::vector<int64_t>{2, 3, 4, 3};
            c.tgt = t;
            c.ignore_frac = 1.0;  // index: every label is IGNORE_INDEX; dense: every weight 0
            c.per_image = per_image;
            c.reduction = red;
            c.classes = classes ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
            const LData d = make_data(c);
            const LRun r = run_ok(d);
            for (int64_t i = 0; i < r.loss.numel(); ++i)
              EXPECT_EQ(r.loss.get(i), 0.0) << describe(d.c);
            for (int64_t i = 0; i < r.grad.numel(); ++i)
              ASSERT_EQ(r.grad.get(i), 0.0) << describe(d.c);
          }
}

// A problem without any counted pixel gives 0 and still counts in the MEAN over problems.
TEST(LovaszCpuValues, EmptyProblemCountsInTheMean) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int classes = 0; classes < 2; ++classes) {
      LCase c;
      c.kind = kind;
      c.shape =
          kind == kHinge ? std::vector<int64_t>{3, 1, 5, 4} : std::vector<int64_t>{3, 3, 5, 4};
      c.tgt = Tgt::IdxI64;
      c.ignore_frac = 0.0;
      c.per_image = 1;
      c.classes = classes ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
      c.seed = 7100 + static_cast<uint64_t>(classes);
      LData d = make_data(c);
      for (int64_t q = 0; q < d.P; ++q)
        d.target.set(d.pixel(1, q), -100.0);  // image 1: all ignored
      refresh_spec(d);
      ASSERT_TRUE(matches_reference(d));
      d.c.reduction = CULOSS_REDUCTION_NONE;
      d.loss_shape = loss_shape_of(d.c, d.N, d.C);
      refresh_spec(d);
      const LRun none = run_ok(d);
      d.c.reduction = CULOSS_REDUCTION_MEAN;
      d.loss_shape = loss_shape_of(d.c, d.N, d.C);
      refresh_spec(d);
      const LRun mean = run_ok(d);
      double sum = 0.0;
      for (int64_t i = 0; i < none.loss.numel(); ++i) sum += none.loss.get(i);
      const int64_t divisor = kind == kHinge ? d.N * d.C : d.N;  // image 1 included
      EXPECT_NEAR(mean.loss.get(0), sum / static_cast<double>(divisor), 1e-14);
      if (kind == kSoftmax) {
        EXPECT_EQ(none.loss.get(1), 0.0);
      }
      for (int64_t q = 0; q < d.P; ++q)
        for (int64_t k = 0; k < d.C; ++k) EXPECT_EQ(mean.grad.get(d.element(1, q, k)), 0.0);
    }
}

TEST(LovaszCpuValues, EmptyBatch) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int red = 0; red < 3; ++red)
      for (int per_image = 0; per_image < 2; ++per_image) {
        LCase c;
        c.kind = kind;
        c.shape = {0, 3, 4, 4};
        c.tgt = Tgt::DenseF32;
        c.reduction = red;
        c.per_image = per_image;
        const LData d = make_data(c);
        const LRun r = run_ok(d);
        for (int64_t i = 0; i < r.loss.numel(); ++i) EXPECT_EQ(r.loss.get(i), 0.0) << describe(d.c);
      }
}

// One pixel: every list has one item with g = 1 (J_1 = 1 whether it is a positive or not).
TEST(LovaszCpuValues, OnePixel) {
  // Hinge, C = 3 channels: loss_c = relu(e_c); MEAN over the 3 lists.
  Small s;
  s.kind = kHinge;
  s.shape = {1, 3};
  s.x = {0.25, -2.0, 0.75};
  s.dense = {1.0, 1.0, 0.0};  // e = [0.75, 3, 1.75]
  s.reduction = CULOSS_REDUCTION_NONE;
  LRun r = run_ok(make_small(s));
  expect_vec_near(r.loss.values(), {0.75, 3.0, 1.75}, 1e-15, "loss");
  expect_vec_near(r.grad.values(), {-1.0, -1.0, 1.0}, 1e-15, "grad");
  s.reduction = CULOSS_REDUCTION_MEAN;
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 5.5 / 3, 1e-15);
  expect_vec_near(r.grad.values(), {-1.0 / 3, -1.0 / 3, 1.0 / 3}, 1e-15, "grad");

  // Softmax on probabilities, label 1: PRESENT → 1 − p_1; ALL → mean of (1 − p_1, p_0, p_2).
  s = Small{};
  s.kind = kSoftmax;
  s.activation = CULOSS_ACTIVATION_NONE;
  s.shape = {1, 3, 1, 1};
  s.x = {0.2, 0.5, 0.3};
  s.labels = {1};
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 0.5, 1e-15);
  expect_vec_near(r.grad.values(), {0.0, -1.0, 0.0}, 1e-15, "grad");
  s.classes = CULOSS_CLASSES_ALL;
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), (0.5 + 0.2 + 0.3) / 3, 1e-15);
  expect_vec_near(r.grad.values(), {1.0 / 3, -1.0 / 3, 1.0 / 3}, 1e-15, "grad");
}

// All errors equal: the order is the element order.
TEST(LovaszCpuValues, AllErrorsEqualTieOrderIsElementIndex) {
  // Hinge logits 0: e = 1 everywhere. Labels [0, 1, 1, 0] in element order: gts = 2;
  // J = 1/3, 2/3, 1, 1 → g = 1/3, 1/3, 1/3, 0; loss = 1; grad = −s g = [1/3, −1/3, −1/3, 0].
  Small s;
  s.kind = kHinge;
  s.shape = {1, 1, 4};
  s.x = {0.0, 0.0, 0.0, 0.0};
  s.labels = {0, 1, 1, 0};
  LRun r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 1.0, 1e-15);
  expect_vec_near(r.grad.values(), {1.0 / 3, -1.0 / 3, -1.0 / 3, 0.0}, 1e-15, "grad");
  // Reversed labels: the order stays the element order, so the gradient is not mirrored.
  s.labels = {1, 0, 0, 1};
  // gts = 2: k1 fg: J = 1 − 1/2 = 1/2; k2 bg: J = 1 − 1/3 = 2/3; k3 bg: J = 1 − 1/4 = 3/4;
  // k4 fg: J = 1 → g = 1/2, 1/6, 1/12, 1/4; loss = 1.
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 1.0, 1e-15);
  expect_vec_near(r.grad.values(), {-0.5, 1.0 / 6, 1.0 / 12, -0.25}, 1e-15, "grad");

  // Pooled over two images of two pixels (the element order runs across the images) and
  // channels-last: elements of channel 0 are 0, 2, 4, 6.
  s = Small{};
  s.kind = kHinge;
  s.shape = {2, 2, 2};  // (N, W, C)
  s.class_axis = -1;
  s.x = std::vector<double>(8, 0.0);
  s.dense = {0, 1, 1, 1, 1, 0, 0, 0};  // channel 0 labels in order: 0, 1, 1, 0
  s.reduction = CULOSS_REDUCTION_NONE;
  r = run_ok(make_small(s));
  ASSERT_EQ(r.loss.numel(), 2);
  EXPECT_NEAR(r.loss.get(0), 1.0, 1e-15);
  EXPECT_NEAR(r.grad.get(0), 1.0 / 3, 1e-15);
  EXPECT_NEAR(r.grad.get(2), -1.0 / 3, 1e-15);
  EXPECT_NEAR(r.grad.get(4), -1.0 / 3, 1e-15);
  EXPECT_NEAR(r.grad.get(6), 0.0, 1e-15);
  ASSERT_TRUE(matches_reference(make_small(s)));

  // Softmax on probabilities with every error 0.25: p(label) = 0.75, the other 0.25.
  s = Small{};
  s.kind = kSoftmax;
  s.activation = CULOSS_ACTIVATION_NONE;
  s.shape = {1, 2, 4};
  s.labels = {0, 1, 1, 0};
  s.x = {0.75, 0.25, 0.25, 0.75, 0.25, 0.75, 0.75, 0.25};
  // class 0 labels in order [1, 0, 0, 1]: g = 1/2, 1/6, 1/12, 1/4 (as above), loss 0.25;
  // class 1 labels [0, 1, 1, 0]: g = 1/3, 1/3, 1/3, 0, loss 0.25. Mean 0.25; w = 1/2.
  r = run_ok(make_small(s));
  EXPECT_NEAR(r.loss.get(0), 0.25, 1e-15);
  expect_vec_near(r.grad.values(),
                  {-0.25, 1.0 / 12, 1.0 / 24, -0.125, 1.0 / 6, -1.0 / 6, -1.0 / 6, 0.0}, 1e-15,
                  "grad");
  ASSERT_TRUE(matches_reference(make_small(s)));
}

// −0 and +0 are equal errors: a tie broken by element index (probabilities of −0).
TEST(LovaszCpuValues, SignedZeroErrorsTie) {
  Small s;
  s.kind = kSoftmax;
  s.activation = CULOSS_ACTIVATION_NONE;
  s.classes = CULOSS_CLASSES_ALL;
  s.shape = {1, 2, 4};
  s.labels = {0, 0, 0, 0};
  // Class 1 has no positive: its loss is its first item's error, and only that item has g = 1.
  s.x = {1.0, 1.0, 1.0, 1.0, 0.0, -0.0, 0.0, -0.0};
  LRun r = run_ok(make_small(s));
  EXPECT_EQ(r.loss.get(0), 0.0);
  expect_vec_near(r.grad.values(), {-0.125, -0.125, -0.125, -0.125, 0.5, 0.0, 0.0, 0.0}, 0.0,
                  "grad");
  s.x = {1.0, 1.0, 1.0, 1.0, -0.0, 0.0, -0.0, 0.0};
  r = run_ok(make_small(s));
  expect_vec_near(r.grad.values(), {-0.125, -0.125, -0.125, -0.125, 0.5, 0.0, 0.0, 0.0}, 0.0,
                  "grad");
}

// NaN logits are outside the contract (results are NaN), but they must not break the sort: a
// comparator that is not a strict weak order lets std::sort run past the range it sorts. Many
// items (beyond insertion sort's small runs) with NaNs spread among them; ASan builds would see
// an out-of-bounds access.
TEST(LovaszCpuValues, NaNLogitsSortSafely) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    Small s;
    s.kind = kind;
    s.activation = CULOSS_ACTIVATION_NONE;
    const int64_t C = kind == kHinge ? 1 : 2, P = 300;
    s.shape = {1, C, P};
    for (int64_t i = 0; i < C * P; ++i)
      s.x.push_back(i % 3 == 0 ? std::nan("") : (kind == kHinge ? 1.0 : 0.5) * std::sin(i));
    for (int64_t q = 0; q < P; ++q) s.labels.push_back(q % 2);
    // What the value is (NaN, or finite where the hinge's max(e, 0) drops a NaN) is not part
    // of the contract; a successful call that stays inside its buffers is.
    run_ok(make_small(s));
  }
}

// One class present: PRESENT averages that class only; ALL adds the absent classes, whose loss
// is their largest error (gts = 0: g_1 = 1, then 0).
TEST(LovaszCpuValues, OneClassPresentAllVersusPresent) {
  for (int act = 0; act < 2; ++act)
    for (int per_image = 0; per_image < 2; ++per_image) {
      LCase c;
      c.kind = kSoftmax;
      c.shape = {2, 3, 5, 4};
      c.tgt = Tgt::IdxI64;
      c.ignore_frac = 0.2;
      c.per_image = per_image;
      c.activation = act ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
      c.seed = 7200 + static_cast<uint64_t>(act * 2 + per_image);
      LData d = make_data(c);
      for (int64_t i = 0; i < d.target.numel(); ++i)
        if (d.target.get_int(i) != -100) d.target.set(i, 1.0);  // only class 1
      d.c.reduction = CULOSS_REDUCTION_NONE;
      d.loss_shape = loss_shape_of(d.c, d.N, d.C);
      refresh_spec(d);
      ASSERT_TRUE(matches_reference(d));
      const LRun present = run_ok(d);
      d.c.classes = CULOSS_CLASSES_ALL;
      refresh_spec(d);
      ASSERT_TRUE(matches_reference(d));
      const LRun all = run_ok(d);
      const lovasz_ref::Result ref = lovasz_ref::reference(d.spec);
      for (int64_t pr = 0; pr < d.problems(); ++pr) {
        // The largest p of classes 0 and 2 over the problem's counted pixels.
        double m0 = 0.0, m2 = 0.0;
        for (int64_t n = per_image ? pr : 0; n < (per_image ? pr + 1 : d.N); ++n)
          for (int64_t q = 0; q < d.P; ++q) {
            if (d.target.get_int(d.pixel(n, q)) == -100) continue;
            m0 = std::max(
                m0, static_cast<double>(ref.items[static_cast<size_t>(d.element(n, q, 0))].p));
            m2 = std::max(
                m2, static_cast<double>(ref.items[static_cast<size_t>(d.element(n, q, 2))].p));
          }
        EXPECT_NEAR(all.loss.get(pr), (present.loss.get(pr) + m0 + m2) / 3, 1e-13);
      }
    }
}

// Targets are binarized at 0.5 (0.5 is a positive); pixel weights are a mask.
TEST(LovaszCpuValues, TargetsBinarizedAtHalfAndWeightsAreMasks) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 3, 6, 5};
    c.tgt = Tgt::DenseF64;
    c.soft_frac = 0.0;
    c.ignore_frac = 0.0;
    c.seed = 7300 + static_cast<uint64_t>(kind);
    const LData hard = make_data(c);
    LData soft = hard;
    std::mt19937_64 rng(c.seed);
    std::uniform_real_distribution<double> U(0.0, 1.0);
    for (int64_t i = 0; i < soft.target.numel(); ++i) {
      const double t = soft.target.get(i);
      soft.target.set(i,
                      t >= 0.5 ? 0.5 + 0.5 * U(rng) * (rng() % 2) : 0.49999 * U(rng) * (rng() % 2));
    }
    refresh_spec(soft);
    const LRun a = run_ok(hard), b = run_ok(soft);
    EXPECT_TRUE(same_bytes("loss", a.loss, b.loss));
    EXPECT_TRUE(same_bytes("grad", a.grad, b.grad));

    // Weights: 0 leaves a pixel out (same as a uint8 mask of it), any positive weight counts 1.
    LData w = hard;
    w.has_weight = true;
    w.c.pixel_weight = true;
    w.weight = TestTensor(w.pix_shape, f32());
    LData ones = w;
    for (int64_t px = 0; px < w.weight.numel(); ++px) {
      const bool out = rng() % 4 == 0;
      const double levels[] = {1e-6, 0.3, 1.0, 2.5, 1e6};
      w.weight.set(px, out ? 0.0 : levels[rng() % 5]);
      ones.weight.set(px, out ? 0.0 : 1.0);
    }
    refresh_spec(w);
    refresh_spec(ones);
    ASSERT_TRUE(matches_reference(w));
    const LRun rw = run_ok(w), r1 = run_ok(ones);
    EXPECT_TRUE(same_bytes("loss", rw.loss, r1.loss));
    EXPECT_TRUE(same_bytes("grad", rw.grad, r1.grad));
    // A pixel with weight 0 has no gradient.
    for (int64_t n = 0; n < w.N; ++n)
      for (int64_t q = 0; q < w.P; ++q)
        if (w.weight.get(w.pixel(n, q)) == 0.0) {
          for (int64_t k = 0; k < w.C; ++k) EXPECT_EQ(rw.grad.get(w.element(n, q, k)), 0.0);
        }
  }
}

// Index targets equal the dense one-hot (softmax) or the dense 0/1 mask (hinge, C = 1), and
// IGNORE_INDEX equals a pixel weight of 0.
TEST(LovaszCpuValues, IndexTargetsEqualDenseOneHot) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image) {
      LCase c;
      c.kind = kind;
      c.shape =
          kind == kHinge ? std::vector<int64_t>{2, 1, 6, 5} : std::vector<int64_t>{2, 4, 6, 5};
      c.tgt = Tgt::IdxI32;
      c.ignore_frac = 0.2;
      c.per_image = per_image;
      c.seed = 7400 + static_cast<uint64_t>(per_image);
      const LData idx = make_data(c);
      LData dense = idx;
      dense.c.tgt = Tgt::DenseF32;
      dense.target = TestTensor(idx.c.shape, f32());
      dense.has_weight = true;
      dense.weight = TestTensor(idx.pix_shape, f32());
      for (int64_t n = 0; n < idx.N; ++n)
        for (int64_t q = 0; q < idx.P; ++q) {
          const int64_t lab = idx.target.get_int(idx.pixel(n, q));
          dense.weight.set(idx.pixel(n, q), lab == -100 ? 0.0 : 1.0);
          for (int64_t k = 0; k < idx.C; ++k)
            dense.target.set(idx.element(n, q, k),
                             kind == kHinge ? (lab == 1 ? 1.0 : 0.0) : (lab == k ? 1.0 : 0.0));
        }
      refresh_spec(dense);
      const LRun a = run_ok(idx), b = run_ok(dense);
      EXPECT_TRUE(same_bytes("loss", a.loss, b.loss));
      EXPECT_TRUE(same_bytes("grad", a.grad, b.grad));
    }
}

// NONE writes one value per problem (hinge: per channel too); its sum is SUM; MEAN divides SUM
// by the number of problems (hinge: problems × C).
TEST(LovaszCpuValues, ReductionsAgree) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image)
      for (int classes = 0; classes < 2; ++classes) {
        LCase c;
        c.kind = kind;
        c.shape = {3, 4, 5, 6};
        c.tgt = Tgt::DenseF32;
        c.per_image = per_image;
        c.classes = classes ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
        c.seed = 7500 + static_cast<uint64_t>(per_image * 2 + classes);
        LData d = make_data(c);
        auto with = [&](int red) {
          d.c.reduction = red;
          d.loss_shape = loss_shape_of(d.c, d.N, d.C);
          refresh_spec(d);
          return run_ok(d);
        };
        const LRun none = with(CULOSS_REDUCTION_NONE), sum = with(CULOSS_REDUCTION_SUM),
                   mean = with(CULOSS_REDUCTION_MEAN);
        const std::vector<int64_t> want_shape =
            kind == kHinge ? (per_image ? std::vector<int64_t>{3, 4} : std::vector<int64_t>{4})
                           : (per_image ? std::vector<int64_t>{3} : std::vector<int64_t>{});
        EXPECT_EQ(none.loss.shape, want_shape);
        double total = 0.0;
        for (int64_t i = 0; i < none.loss.numel(); ++i) total += none.loss.get(i);
        EXPECT_NEAR(sum.loss.get(0), total, 1e-13);
        const double problems =
            static_cast<double>(per_image ? d.N : 1) * (kind == kHinge ? d.C : 1);
        EXPECT_NEAR(mean.loss.get(0), total / problems, 1e-13);
        // NONE's gradient is the gradient of the sum of its outputs, i.e. SUM's.
        ASSERT_TRUE(close_to("none grad vs sum grad", none.grad.values(), sum.grad.values(),
                             Tol{1e-12, 1e-14}));
        std::vector<double> scaled = mean.grad.values();
        for (double& v : scaled) v *= problems;
        ASSERT_TRUE(close_to("mean grad × problems vs sum grad", scaled, sum.grad.values(),
                             Tol{1e-12, 1e-14}));
      }
}

TEST(LovaszCpuValues, GradScaleIsLinear) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 3, 7, 4};
    c.tgt = Tgt::DenseF64;
    c.seed = 7600 + static_cast<uint64_t>(kind);
    LData d = make_data(c);
    const LRun one = run_ok(d);
    for (double scale : {0.0, 2.5, -0.125, 1e6}) {
      d.c.grad_scale = scale;
      refresh_spec(d);
      const LRun r = run_ok(d);
      EXPECT_TRUE(same_bytes("loss", one.loss, r.loss)) << "grad_scale must not change the value";
      std::vector<double> want = one.grad.values();
      for (double& v : want) v *= scale;
      ASSERT_TRUE(close_to("grad", r.grad.values(), want, Tol{1e-14, 1e-14}));
    }
  }
}

// Channels-last and channels-first layouts of the same data give the same result.
TEST(LovaszCpuValues, LayoutsAgree) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image) {
      LCase c;
      c.kind = kind;
      c.shape = {2, 3, 5, 4};
      c.tgt = Tgt::DenseF64;
      c.per_image = per_image;
      c.reduction = CULOSS_REDUCTION_NONE;
      c.pixel_weight = true;
      c.seed = 7700 + static_cast<uint64_t>(per_image);
      const LData nchw = make_data(c);
      LData nhwc = nchw;
      nhwc.c.shape = {2, 5, 4, 3};
      nhwc.c.class_axis = -1;
      nhwc.pre = 20;
      nhwc.inner = 1;
      nhwc.input = TestTensor(nhwc.c.shape, f64());
      nhwc.target = TestTensor(nhwc.c.shape, f64());
      for (int64_t n = 0; n < 2; ++n)
        for (int64_t q = 0; q < 20; ++q)
          for (int64_t k = 0; k < 3; ++k) {
            nhwc.input.set(nhwc.element(n, q, k), nchw.input.get(nchw.element(n, q, k)));
            nhwc.target.set(nhwc.element(n, q, k), nchw.target.get(nchw.element(n, q, k)));
          }
      refresh_spec(nhwc);
      ASSERT_TRUE(matches_reference(nhwc));
      const LRun a = run_ok(nchw), b = run_ok(nhwc);
      ASSERT_TRUE(close_to("loss", b.loss.values(), a.loss.values(), Tol{1e-14, 0}));
      for (int64_t n = 0; n < 2; ++n)
        for (int64_t q = 0; q < 20; ++q)
          for (int64_t k = 0; k < 3; ++k)
            ASSERT_NEAR(b.grad.get(nhwc.element(n, q, k)), a.grad.get(nchw.element(n, q, k)),
                        1e-15);
    }
}

// Saturated logits (±1e4) give finite values and gradients equal to the reference's.
TEST(LovaszCpuValues, SaturatedLogitsAreFinite) {
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image)
      for (int dt = 0; dt < 2; ++dt) {
        LCase c;
        c.kind = kind;
        c.shape = {2, 3, 6, 5};
        c.tgt = Tgt::IdxI64;
        c.per_image = per_image;
        c.in = dt ? f32() : f64();
        c.seed = 7800 + static_cast<uint64_t>(r++);
        LData d = make_data(c);
        std::mt19937_64 rng(c.seed);
        for (int64_t i = 0; i < d.input.numel(); ++i) {
          const uint64_t k = rng() % 3;
          if (k < 2) d.input.set(i, k == 0 ? 1e4 : -1e4);
        }
        refresh_spec(d);
        const LRun run = run_ok(d);
        for (int64_t i = 0; i < run.loss.numel(); ++i) ASSERT_TRUE(std::isfinite(run.loss.get(i)));
        for (int64_t i = 0; i < run.grad.numel(); ++i) ASSERT_TRUE(std::isfinite(run.grad.get(i)));
        ASSERT_TRUE(matches_reference(d));
      }
}

// ---------------------------------------------------------------------------------------------
// Finite differences of the library's own value
// ---------------------------------------------------------------------------------------------

double library_value(const LData& d, const std::vector<double>& x) {
  LData e = d;
  for (size_t i = 0; i < x.size(); ++i) e.input.set(static_cast<int64_t>(i), x[i]);
  CpuRunOptions o;
  o.with_grad = false;
  const LRun r = run_cpu(e, o);
  EXPECT_EQ(CULOSS_SUCCESS, r.status) << r.error;
  double s = 0.0;
  for (int64_t i = 0; i < r.loss.numel(); ++i) s += r.loss.get(i);  // NONE: the sum of the outputs
  return s;
}

TEST(LovaszCpuGradcheck, CentralDifferencesAwayFromTies) {
  int checked = 0;
  for (uint64_t it = 0; it < 48; ++it) {
    LCase c;
    c.kind = it % 2 ? kHinge : kSoftmax;
    const int layout = static_cast<int>(it / 2 % 3);
    c.shape = layout == 0   ? std::vector<int64_t>{2, 3, 3, 4}
              : layout == 1 ? std::vector<int64_t>{2, 4, 3, 3}
                            : std::vector<int64_t>{9, 3};
    c.class_axis = layout == 1 ? -1 : 1;
    c.activation = it % 5 == 1 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
    c.tgt = it % 3 == 0 ? Tgt::DenseF32 : Tgt::DenseF64;
    if (c.kind == kSoftmax && it % 4 == 0) c.tgt = Tgt::IdxI64;
    c.per_image = static_cast<int>(it / 6 % 2);
    c.classes = it / 12 % 2 ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
    c.reduction = static_cast<int>(it % 3);
    c.pixel_weight = it % 4 == 3;
    c.grad_scale = it % 7 == 2 ? 2.0 : 1.0;
    c.seed = 8000 + it;
    const LData d = make_data(c);
    const lovasz_ref::Result ref = lovasz_ref::reference(d.spec);
    if (lovasz_ref::min_gap(d.spec, ref) < 1e-4) continue;  // too close to a tie or a kink
    const LRun run = run_ok(d);
    const std::vector<double> x = d.input.values();
    const std::vector<double> g = run.grad.values();
    const double h = 1e-6, scale = 1.0 + max_abs(g);
    for (size_t i = 0; i < x.size(); ++i) {
      std::vector<double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const double fd = (library_value(d, xp) - library_value(d, xm)) / (2 * h) * c.grad_scale;
      ASSERT_NEAR(g[i], fd, 1e-6 * scale) << "element " << i << "\n  case: " << describe(d.c);
    }
    ++checked;
  }
  EXPECT_GT(checked, 30);
}

// ---------------------------------------------------------------------------------------------
// Half-precision inputs, output dtypes, in-place, workspaces, determinism
// ---------------------------------------------------------------------------------------------

// float16 / bfloat16 / float32 inputs: the CPU computes in double from the stored values, so it
// matches the reference on the rounded values up to the output dtype's rounding.
TEST(LovaszCpuDtypes, LowPrecisionInputsMatchReferenceOnRoundedValues) {
  int r = 0;
  for (DLDataType in : {f16(), bf16(), f32()})
    for (culoss_kind kind : {kHinge, kSoftmax})
      for (int gf = 0; gf < 2; ++gf)
        for (int per_image = 0; per_image < 2; ++per_image) {
          LCase c;
          c.kind = kind;
          c.shape = r % 2 ? std::vector<int64_t>{2, 7, 6, 3} : std::vector<int64_t>{2, 3, 7, 6};
          c.class_axis = r % 2 ? -1 : 1;
          c.in = in;
          c.grad_f32 = gf == 1;
          c.per_image = per_image;
          c.tgt = r % 3 == 0 ? Tgt::DenseIn : r % 3 == 1 ? Tgt::IdxU8 : Tgt::DenseU8;
          c.activation = r % 4 == 3 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
          c.reduction = r % 3;
          c.grad_scale = in.bits == 16 ? 64.0 : 1.0;  // keep float16 gradients off the subnormals
          c.seed = 9000 + static_cast<uint64_t>(r++);
          ASSERT_TRUE(matches_reference(make_data(c)));
        }
}

// A float32 gradient of a float64 input is the float64 gradient rounded.
TEST(LovaszCpuDtypes, Float32GradIsTheRoundedFloat64Grad) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 4, 6, 5};
    c.tgt = Tgt::DenseF32;
    c.seed = 9100 + static_cast<uint64_t>(kind);
    LData d = make_data(c);
    const LRun g64 = run_ok(d);
    d.c.grad_f32 = true;
    d.c.loss_dtype = f32();
    const LRun g32 = run_ok(d);
    EXPECT_EQ(static_cast<float>(g64.loss.get(0)), static_cast<float>(g32.loss.get(0)));
    for (int64_t i = 0; i < g64.grad.numel(); ++i) {
      const double want = g64.grad.get(i), got = g32.grad.get(i);
      const float lo = std::nextafter(static_cast<float>(want), -INFINITY);
      const float hi = std::nextafter(static_cast<float>(want), INFINITY);
      ASSERT_TRUE(got >= lo && got <= hi) << "element " << i << ": " << got << " vs " << want;
    }
  }
}

TEST(LovaszCpuOutputs, InPlaceGradientEqualsOutOfPlace) {
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (DLDataType in : {f64(), f32(), f16(), bf16()}) {
      LCase c;
      c.kind = kind;
      c.shape = r % 2 ? std::vector<int64_t>{2, 5, 4, 3} : std::vector<int64_t>{2, 3, 5, 4};
      c.class_axis = r % 2 ? -1 : 1;
      c.in = in;
      c.tgt = Tgt::IdxI64;
      if (kind == kHinge) c.shape[static_cast<size_t>(resolved_axis(c))] = 1;
      c.seed = 9200 + static_cast<uint64_t>(r++);
      const LData d = make_data(c);
      const LRun out = run_ok(d);
      CpuRunOptions o;
      o.in_place = true;
      const LRun in_place = run_ok(d, o);
      EXPECT_TRUE(same_bytes("loss", out.loss, in_place.loss)) << describe(d.c);
      EXPECT_TRUE(same_bytes("grad", out.grad, in_place.grad)) << describe(d.c);
    }
}

TEST(LovaszCpuOutputs, ForwardOnlyGivesTheSameValue) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 3, 5, 4};
    c.tgt = Tgt::DenseF32;
    c.reduction = CULOSS_REDUCTION_NONE;
    c.per_image = 1;
    const LData d = make_data(c);
    CpuRunOptions o;
    o.with_grad = false;
    const LRun fwd = run_ok(d, o), both = run_ok(d);
    EXPECT_TRUE(same_bytes("loss", fwd.loss, both.loss));
  }
}

TEST(LovaszCpuOutputs, DeterministicAndWorkspaceIndependent) {
  int r = 0;
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image) {
      LCase c;
      c.kind = kind;
      c.shape = {3, 4, 20, 18};
      c.tgt = Tgt::DenseF32;
      c.per_image = per_image;
      c.in = r % 2 ? f32() : f64();
      c.pixel_weight = true;
      c.seed = 9300 + static_cast<uint64_t>(r++);
      LData d = make_data(c);
      // Many ties too: every other element rounded to a coarse grid.
      for (int64_t i = 0; i < d.input.numel(); i += 2)
        d.input.set(i, std::round(d.input.get(i) * 2) / 2);
      refresh_spec(d);
      const LRun first = run_ok(d);
      for (CpuWs ws : {CpuWs::Null, CpuWs::Exact, CpuWs::ExactMisaligned}) {
        CpuRunOptions o;
        o.ws = ws;
        const LRun again = run_ok(d, o);
        EXPECT_TRUE(same_bytes("loss", first.loss, again.loss));
        EXPECT_TRUE(same_bytes("grad", first.grad, again.grad));
      }
    }
}

TEST(LovaszCpuOutputs, WorkspaceSizeAndShortWorkspace) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 3, 5, 4};
    c.tgt = Tgt::DenseF32;
    const LData d = make_data(c);
    Loss h(kind);
    ASSERT_TRUE(configure(h, d));
    TestTensor input = d.input, target = d.target, weight = d.weight;
    size_t bytes = 0;
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, input.dl(), target.dl(), &bytes))
        << culoss_last_error();
    EXPECT_EQ(bytes, 256u) << "the CPU backend sorts in host memory: only the alignment slack";
    if (bytes == 0) continue;  // nothing can be short
    std::vector<uint8_t> ws(bytes);
    TestTensor loss(d.loss_shape, f64()), grad(d.c.shape, f64());
    loss.poison();
    grad.poison();
    EXPECT_EQ(CULOSS_ERROR_INSUFFICIENT_WORKSPACE,
              culoss_compute(h, input.dl(), target.dl(), d.has_weight ? weight.dl() : nullptr,
                             loss.dl(), grad.dl(), 1.0, ws.data(), bytes - 1, nullptr));
    EXPECT_TRUE(still_poisoned(loss));
    EXPECT_TRUE(still_poisoned(grad));
  }
}

TEST(LovaszCpuOutputs, Float32LossOutAndShapeOneOutputs) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int red = 0; red < 3; ++red)
      for (int one_d = 0; one_d < 2; ++one_d) {
        LCase c;
        c.kind = kind;
        c.shape = {2, 3, 5, 4};
        c.tgt = Tgt::DenseF32;
        c.reduction = red;
        c.loss_dtype = f32();
        c.loss_1d = one_d == 1;
        c.seed = 9400 + static_cast<uint64_t>(red);
        ASSERT_TRUE(matches_reference(make_data(c)));
      }
}

// ---------------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------------

// Runs a refused call and checks that nothing was written.
void expect_refused(const LData& d, culoss_status want, culoss_loss h, const char* what,
                    const std::vector<int64_t>* loss_shape = nullptr) {
  TestTensor input = d.input, target = d.target, weight = d.weight;
  TestTensor loss(loss_shape ? *loss_shape : d.loss_shape, d.c.loss_dtype),
      grad(d.c.shape, grad_dtype(d.c));
  loss.poison();
  grad.poison();
  const culoss_status s =
      culoss_compute(h, input.dl(), target.dl(), d.has_weight ? weight.dl() : nullptr, loss.dl(),
                     grad.dl(), d.c.grad_scale, nullptr, 0, nullptr);
  EXPECT_EQ(want, s) << what << ": " << culoss_status_string(s) << " " << culoss_last_error();
  EXPECT_NE(std::string(culoss_last_error()), "") << what;
  EXPECT_TRUE(still_poisoned(loss)) << what << ": loss_out written";
  EXPECT_TRUE(still_poisoned(grad)) << what << ": grad_input written";
}

TEST(LovaszCpuRefusals, HingeIndexTargetsNeedOneChannel) {
  LCase c;
  c.kind = kHinge;
  c.shape = {2, 3, 4, 4};
  c.tgt = Tgt::DenseF32;
  LData d = make_data(c);
  d.c.tgt = Tgt::IdxI64;
  d.target = TestTensor(d.pix_shape, i64());  // labels with C = 3
  d.has_weight = false;
  Loss h(kHinge);
  ASSERT_TRUE(configure(h, d));
  expect_refused(d, CULOSS_ERROR_INVALID_ARGUMENT, h, "hinge, index targets, C = 3");
}

TEST(LovaszCpuRefusals, Parameters) {
  Loss hinge(kHinge), soft(kSoftmax);
  // The hinge takes logits: no activation parameter at all.
  for (int64_t a : {0, 1, 2})
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_loss_set_int(hinge, CULOSS_PARAM_ACTIVATION, a))
        << a;
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_loss_set_int(hinge, CULOSS_PARAM_CLASSES, 0));
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_loss_set_int(soft, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  EXPECT_EQ(CULOSS_SUCCESS,
            culoss_loss_set_int(soft, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
  EXPECT_EQ(CULOSS_SUCCESS,
            culoss_loss_set_int(soft, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_loss_set_int(soft, CULOSS_PARAM_CLASSES, 2));
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_loss_set_int(soft, CULOSS_PARAM_PER_IMAGE, 2));
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, culoss_loss_set_int(hinge, CULOSS_PARAM_PER_IMAGE, -1));
  // Defaults: pooled, PRESENT, MEAN.
  int64_t v = -1;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_int(soft, CULOSS_PARAM_PER_IMAGE, &v));
  EXPECT_EQ(v, 0);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_int(soft, CULOSS_PARAM_CLASSES, &v));
  EXPECT_EQ(v, CULOSS_CLASSES_PRESENT);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_int(hinge, CULOSS_PARAM_PER_IMAGE, &v));
  EXPECT_EQ(v, 0);
  // Region / element-wise parameters do not apply.
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_loss_set_float(soft, CULOSS_PARAM_SMOOTH_NR, 1.0));
  const double w[] = {1.0, 2.0};
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_loss_set_floats(hinge, CULOSS_PARAM_CLASS_WEIGHTS, w, 2));
}

// The defaults (pooled, PRESENT, MEAN, softmax activation) are what an unconfigured call uses.
TEST(LovaszCpuValues, DefaultsMatchReference) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 3, 5, 4};
    c.tgt = Tgt::IdxI64;
    if (kind == kHinge) c.shape[1] = 1;
    c.seed = 9500;
    const LData d = make_data(c);
    CpuRunOptions o;
    o.configure_loss = false;
    ASSERT_TRUE(matches_reference(d, o));
  }
}

TEST(LovaszCpuRefusals, SumWithALovaszTermIsNotSupported) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = {2, 3, 4, 4};
    c.tgt = Tgt::DenseF32;
    const LData d = make_data(c);
    Loss sum(CULOSS_SUM), term(kind), dice(CULOSS_DICE);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, dice, 1.0));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, term, 0.5)) << culoss_last_error();
    LData one = d;
    one.loss_shape = {};
    expect_refused(one, CULOSS_ERROR_NOT_SUPPORTED, sum, "SUM with a Lovász term");
    Loss only(CULOSS_SUM);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(only, term, 1.0));
    expect_refused(one, CULOSS_ERROR_NOT_SUPPORTED, only, "SUM of a Lovász term alone");
    size_t bytes = 0;
    TestTensor input = d.input, target = d.target;
    EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED,
              culoss_workspace_size(only, input.dl(), target.dl(), &bytes));
  }
}

TEST(LovaszCpuRefusals, NoneOutputShapeMismatch) {
  for (culoss_kind kind : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image) {
      LCase c;
      c.kind = kind;
      c.shape = {2, 3, 4, 4};
      c.tgt = Tgt::DenseF32;
      c.reduction = CULOSS_REDUCTION_NONE;
      c.per_image = per_image;
      const LData d = make_data(c);
      Loss h(kind);
      ASSERT_TRUE(configure(h, d));
      std::vector<std::vector<int64_t>> wrong;
      if (kind == kHinge) {
        wrong = per_image ? std::vector<std::vector<int64_t>>{{2}, {3, 2}, {6}, {2, 3, 1}, {}}
                          : std::vector<std::vector<int64_t>>{{2}, {1, 3}, {}, {2, 3}};
      } else {
        wrong = per_image ? std::vector<std::vector<int64_t>>{{2, 3}, {1}, {}, {3}}
                          : std::vector<std::vector<int64_t>>{{2}, {3}, {1, 1}};
      }
      for (const auto& s : wrong)
        expect_refused(d, CULOSS_ERROR_SHAPE_MISMATCH, h, "NONE loss_out shape", &s);
    }
  // MEAN needs one element.
  LCase c;
  c.kind = kSoftmax;
  c.shape = {2, 3, 4, 4};
  const LData d = make_data(c);
  Loss h(kSoftmax);
  ASSERT_TRUE(configure(h, d));
  const std::vector<int64_t> two{2};
  expect_refused(d, CULOSS_ERROR_SHAPE_MISMATCH, h, "MEAN loss_out shape", &two);
}

TEST(LovaszCpuRefusals, InvalidTargetsAndWeights) {
  for (culoss_kind kind : {kHinge, kSoftmax}) {
    LCase c;
    c.kind = kind;
    c.shape = kind == kHinge ? std::vector<int64_t>{2, 1, 4, 4} : std::vector<int64_t>{2, 3, 4, 4};
    c.tgt = Tgt::IdxI64;
    c.ignore_frac = 0.2;
    LData d = make_data(c);
    // A label out of range (the hinge's mask takes 0 and 1 only).
    const int64_t bad_pixel = 5;
    d.target.set(bad_pixel, kind == kHinge ? 2.0 : 3.0);
    refresh_spec(d);
    Loss h(kind);
    ASSERT_TRUE(configure(h, d));
    expect_refused(d, CULOSS_ERROR_INVALID_TARGET, h, "label out of range");
    // CHECK_TARGETS = 0: the bad label is left out like an ignored one.
    Loss unchecked(kind);
    ASSERT_TRUE(configure(unchecked, d));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(unchecked, CULOSS_PARAM_CHECK_TARGETS, 0));
    {
      TestTensor input = d.input, target = d.target;
      TestTensor loss(d.loss_shape, f64()), grad(d.c.shape, f64());
      ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(unchecked, input.dl(), target.dl(), nullptr,
                                               loss.dl(), grad.dl(), 1.0, nullptr, 0, nullptr))
          << culoss_last_error();
      const lovasz_ref::Result ref =
          lovasz_ref::reference(d.spec);  // out-of-range labels are left out
      EXPECT_TRUE(close_to("loss", loss.values(), ref.values, Tol{}));
      EXPECT_TRUE(close_to("grad", grad.values(), ref.grad, Tol{}));
      for (int64_t k = 0; k < d.C; ++k) EXPECT_EQ(grad.get(d.element(0, bad_pixel, k)), 0.0);
    }
    // Dense values outside [0, 1].
    LCase cd = c;
    cd.shape = {2, 3, 4, 4};
    cd.tgt = Tgt::DenseF32;
    cd.ignore_frac = 0.0;
    LData dd = make_data(cd);
    dd.target.set(7, 1.5);
    Loss hd(kind);
    ASSERT_TRUE(configure(hd, dd));
    expect_refused(dd, CULOSS_ERROR_INVALID_TARGET, hd, "dense target 1.5");
    dd.target.set(7, -0.25);
    expect_refused(dd, CULOSS_ERROR_INVALID_TARGET, hd, "dense target -0.25");
    // A negative pixel weight.
    dd.target.set(7, 0.0);
    dd.has_weight = true;
    dd.weight = TestTensor(dd.pix_shape, f32());
    dd.weight.fill(1.0);
    dd.weight.set(3, -1.0);
    expect_refused(dd, CULOSS_ERROR_INVALID_ARGUMENT, hd, "negative pixel weight");
  }
}

TEST(LovaszCpuRefusals, SigmoidIndexMaskValuesForTheHinge) {
  // C = 1 index targets: labels 0 and 1 are the mask; IGNORE_INDEX leaves a pixel out.
  Small s;
  s.kind = kHinge;
  s.shape = {1, 1, 4};
  s.x = {0.5, -0.5, 1.5, 3.0};
  s.labels = {1, 0, -100, 1};
  const LData d = make_small(s);
  ASSERT_TRUE(matches_reference(d));
  const LRun r = run_ok(d);
  EXPECT_EQ(r.grad.get(2), 0.0);
}

}  // namespace

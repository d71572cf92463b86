// HAUSDORFF_DT, BOUNDARY and CLDICE against the independent reference (tests/reference/
// geometry_reference.hpp: brute-force distances, direct soft skeletons, central-difference
// gradients), the exact distance transforms exposed through the losses, identities (sums,
// distributed statistics, thread counts, in-place gradients), the memory of clDice, and every
// refusal with its message.
#include <culoss/culoss.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "api/api_util.hpp"
#include "common/cpu_passes.hpp"
#include "common/test_tensor.hpp"
#include "reference/geometry_reference.hpp"

namespace {

using geo_ref::LD;
using testing_util::f32;
using testing_util::f64;
using testing_util::i64;
using testing_util::Loss;
using testing_util::TestTensor;

struct Outputs {
  culoss_status status;
  std::vector<double> loss;  // one value, or the NONE outputs
  std::vector<double> grad;
};

void set_params(culoss_loss h, const geo_ref::Spec& s) {
  culoss_loss_set_int(h, CULOSS_PARAM_ACTIVATION, s.activation);
  culoss_loss_set_int(h, CULOSS_PARAM_REDUCTION, s.reduction);
  culoss_loss_set_int(h, CULOSS_PARAM_CLASS_AXIS, s.class_axis);
  culoss_loss_set_int(h, CULOSS_PARAM_IGNORE_INDEX, s.ignore_index);
  culoss_loss_set_int(h, CULOSS_PARAM_INCLUDE_BACKGROUND, s.include_background);
  if (s.kind == geo_ref::HAUSDORFF_DT) culoss_loss_set_float(h, CULOSS_PARAM_ALPHA, s.alpha);
  if (s.kind != geo_ref::CLDICE && !s.spacing.empty())
    culoss_loss_set_floats(h, CULOSS_PARAM_SPACING, s.spacing.data(),
                           static_cast<int64_t>(s.spacing.size()));
  if (s.kind == geo_ref::CLDICE) {
    culoss_loss_set_int(h, CULOSS_PARAM_ITERATIONS, s.iterations);
    culoss_loss_set_float(h, CULOSS_PARAM_SMOOTH_NR, s.smooth_nr);
    culoss_loss_set_float(h, CULOSS_PARAM_SMOOTH_DR, s.smooth_dr);
    culoss_loss_set_int(h, CULOSS_PARAM_BATCH, s.batch);
    culoss_loss_set_int(h, CULOSS_PARAM_AVERAGE,
                        s.micro ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO);
    culoss_loss_set_int(h, CULOSS_PARAM_SKIP_EMPTY, s.skip_empty);
    if (!s.class_weights.empty())
      culoss_loss_set_floats(h, CULOSS_PARAM_CLASS_WEIGHTS, s.class_weights.data(),
                             static_cast<int64_t>(s.class_weights.size()));
  }
}

struct Tensors {
  TestTensor input, target, weight;
};

Tensors tensors(const geo_ref::Spec& s, DLDataType dtype) {
  Tensors t;
  t.input = TestTensor(s.shape, dtype);
  for (size_t i = 0; i < s.input.size(); ++i) t.input.set(static_cast<int64_t>(i), s.input[i]);
  if (s.index_target) {
    std::vector<int64_t> ps;
    const int nd = static_cast<int>(s.shape.size());
    const int ca = s.class_axis < 0 ? s.class_axis + nd : s.class_axis;
    for (int a = 0; a < nd; ++a)
      if (a != ca) ps.push_back(s.shape[a]);
    t.target = TestTensor(ps, i64());
    for (size_t i = 0; i < s.labels.size(); ++i)
      t.target.set(static_cast<int64_t>(i), static_cast<double>(s.labels[i]));
    if (!s.pixel_weight.empty()) {
      t.weight = TestTensor(ps, f32());
      for (size_t i = 0; i < s.pixel_weight.size(); ++i)
        t.weight.set(static_cast<int64_t>(i), s.pixel_weight[i]);
    }
  } else {
    t.target = TestTensor(s.shape, f64());
    for (size_t i = 0; i < s.dense_target.size(); ++i)
      t.target.set(static_cast<int64_t>(i), s.dense_target[i]);
  }
  return t;
}

// The values the library sees (the input rounded to its dtype).
geo_ref::Spec as_stored(geo_ref::Spec s, const Tensors& t) {
  s.input = t.input.values();
  if (!s.pixel_weight.empty()) s.pixel_weight = t.weight.values();
  return s;
}

std::vector<int64_t> none_shape(const geo_ref::Spec& s, size_t groups) {
  if (s.reduction != geo_ref::RED_NONE) return {};
  if (s.kind != geo_ref::CLDICE) return s.shape;
  const int64_t N = s.shape[0];
  const int nd = static_cast<int>(s.shape.size());
  const int64_t C = s.shape[s.class_axis < 0 ? s.class_axis + nd : s.class_axis];
  std::vector<int64_t> shape;
  if (!s.batch) shape.push_back(N);
  if (!s.micro) shape.push_back(C);
  (void)groups;
  return shape;
}

Outputs run(culoss_loss h, Tensors& t, const std::vector<int64_t>& out_shape, bool grad = true,
            double grad_scale = 1.0) {
  Outputs o;
  TestTensor loss(out_shape, f64());
  loss.poison();
  TestTensor g(t.input.shape, t.input.dtype);
  g.poison();
  o.status =
      culoss_compute(h, t.input.dl(), t.target.dl(),
                     t.weight.numel() > 0 && !t.weight.shape.empty() ? t.weight.dl() : nullptr,
                     loss.dl(), grad ? g.dl() : nullptr, grad_scale, nullptr, 0, nullptr);
  o.loss = loss.values();
  if (grad) o.grad = g.values();
  return o;
}

// A random case: shape with k spatial axes, C classes, every option drawn.
geo_ref::Spec random_spec(std::mt19937& rng, int kind, int k) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto real = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  geo_ref::Spec s;
  s.kind = kind;
  const int64_t N = uni(1, 2);
  const int act = uni(0, 2);
  const int64_t C = act == geo_ref::ACT_SIGMOID ? uni(1, 2) : uni(2, 3);
  s.activation = act;
  std::vector<int64_t> spatial;
  for (int a = 0; a < k; ++a)
    spatial.push_back(k == 3 ? uni(3, 5) : k == 2 ? uni(4, 8) : uni(5, 12));
  const bool last = uni(0, 1) == 1;
  s.shape.push_back(N);
  if (!last) s.shape.push_back(C);
  for (int64_t e : spatial) s.shape.push_back(e);
  if (last) s.shape.push_back(C);
  s.class_axis = last ? -1 : 1;
  s.reduction = uni(0, 2);
  s.include_background = uni(0, 3) > 0 || C == 1;
  s.alpha = uni(0, 1) ? 2.0 : real(0.5, 3.0);
  if (kind != geo_ref::CLDICE && uni(0, 1))
    for (int a = 0; a < k; ++a) s.spacing.push_back(real(0.4, 2.5));
  int64_t numel = 1;
  for (int64_t d : s.shape) numel *= d;
  s.input.resize(numel);
  for (double& x : s.input) x = act == geo_ref::ACT_NONE ? real(0.02, 0.98) : real(-3, 3);
  // Index targets for softmax-like reads and for a sigmoid mask; dense otherwise.
  s.index_target = act != geo_ref::ACT_NONE || uni(0, 1);
  if (act == geo_ref::ACT_SIGMOID && C > 1) s.index_target = false;
  const int64_t pixels = numel / C;
  if (s.index_target) {
    const int64_t labels = act == geo_ref::ACT_SIGMOID ? 2 : C;
    s.labels.resize(pixels);
    for (int64_t& l : s.labels)
      l = uni(0, 9) == 0 ? s.ignore_index : uni(0, static_cast<int>(labels - 1));
    if (uni(0, 1)) {
      s.pixel_weight.resize(pixels);
      for (double& w : s.pixel_weight) w = uni(0, 7) == 0 ? 0.0 : real(0.2, 2.0);
    }
  } else {
    s.dense_target.resize(numel);
    for (double& t : s.dense_target) t = uni(0, 1) ? (uni(0, 2) ? 1.0 : 0.0) : real(0, 1);
  }
  if (kind == geo_ref::CLDICE) {
    s.iterations = uni(1, 4);
    s.batch = uni(0, 1);
    s.micro = uni(0, 1);
    s.skip_empty = uni(0, 1);
    s.smooth_nr = uni(0, 1) ? 1.0 : real(0.1, 2);
    s.smooth_dr = uni(0, 1) ? 1.0 : real(0.1, 2);
    if (uni(0, 1)) {
      s.class_weights.resize(C);
      for (double& w : s.class_weights) w = real(0.2, 2.0);
    }
  }
  return s;
}

void expect_close(const std::vector<double>& got, const std::vector<LD>& want, double rel,
                  double abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 0;
  for (LD w : want) scale = std::max(scale, static_cast<double>(std::fabs(w)));
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], static_cast<double>(want[i]), abs + rel * scale) << what << " at " << i;
}

void check_against_reference(const geo_ref::Spec& spec0, DLDataType dtype, double tol,
                             double grad_tol = -1) {
  if (grad_tol < 0) grad_tol = 100 * tol;
  Tensors t = tensors(spec0, dtype);
  const geo_ref::Spec s = as_stored(spec0, t);
  std::vector<LD> want_grad;
  const geo_ref::Result want = geo_ref::reference(s, &want_grad, 1.0, 1e-6L);
  Loss h(static_cast<culoss_kind>(s.kind));
  set_params(h, s);
  const Outputs o = run(h, t, none_shape(s, want.none.size()));
  ASSERT_EQ(o.status, CULOSS_SUCCESS) << api_test::last_error();
  if (s.reduction == geo_ref::RED_NONE)
    expect_close(o.loss, want.none, tol, tol, "none");
  else
    expect_close(o.loss, {want.value}, tol, tol, "value");
  expect_close(o.grad, want_grad, grad_tol, 1e-7, "grad");
}

class GeometryReference : public ::testing::TestWithParam<int> {};

TEST_P(GeometryReference, HausdorffDtMatchesReference) {
  std::mt19937 rng(1000 + GetParam());
  const geo_ref::Spec s = random_spec(rng, geo_ref::HAUSDORFF_DT, 1 + GetParam() % 3);
  check_against_reference(s, f64(), 1e-9);
}

TEST_P(GeometryReference, BoundaryMatchesReference) {
  std::mt19937 rng(2000 + GetParam());
  const geo_ref::Spec s = random_spec(rng, geo_ref::BOUNDARY, 1 + GetParam() % 3);
  check_against_reference(s, f64(), 1e-9);
}

TEST_P(GeometryReference, ClDiceMatchesReference) {
  std::mt19937 rng(3000 + GetParam());
  const geo_ref::Spec s = random_spec(rng, geo_ref::CLDICE, 2 + GetParam() % 2);
  check_against_reference(s, f64(), 1e-9);
}

TEST_P(GeometryReference, Float32Inputs) {
  std::mt19937 rng(4000 + GetParam());
  const int kinds[] = {geo_ref::HAUSDORFF_DT, geo_ref::BOUNDARY, geo_ref::CLDICE};
  const int kind = kinds[GetParam() % 3];
  const geo_ref::Spec s = random_spec(rng, kind, 2 + GetParam() % 2);
  check_against_reference(s, f32(), 1e-5);
}

TEST_P(GeometryReference, HalfInputsAndGradients) {
  // The CPU computes in double from the stored halves: the value is as exact as for float64;
  // the gradient is rounded to the input's dtype.
  // Soft skeletons of coarse halves have exact ties between pixels, where central differences
  // average the two sides of a kink: there clDice's gradient is checked against the library's
  // own float64 result on the same values (the tie rule is the lowest index), its value against
  // the reference.
  std::mt19937 rng(5000 + GetParam());
  const int kinds[] = {geo_ref::HAUSDORFF_DT, geo_ref::BOUNDARY, geo_ref::CLDICE};
  const int kind = kinds[GetParam() % 3];
  const geo_ref::Spec s = random_spec(rng, kind, 2 + GetParam() % 2);
  const DLDataType half = GetParam() % 2 ? testing_util::f16() : testing_util::bf16();
  if (kind != geo_ref::CLDICE) {
    check_against_reference(s, half, 1e-9, 1e-2);
    return;
  }
  Tensors th = tensors(s, half);
  const geo_ref::Spec stored = as_stored(s, th);
  Tensors td = tensors(stored, f64());
  Loss h(CULOSS_CLDICE);
  set_params(h, stored);
  const geo_ref::Result want = geo_ref::reference(stored);
  const Outputs oh = run(h, th, none_shape(stored, 0)), od = run(h, td, none_shape(stored, 0));
  ASSERT_EQ(oh.status, CULOSS_SUCCESS) << api_test::last_error();
  if (stored.reduction == geo_ref::RED_NONE)
    expect_close(oh.loss, want.none, 1e-9, 1e-9, "none");
  else
    expect_close(oh.loss, {want.value}, 1e-9, 1e-9, "value");
  expect_close(oh.grad, std::vector<LD>(od.grad.begin(), od.grad.end()), 1e-2, 1e-7, "grad");
}

INSTANTIATE_TEST_SUITE_P(Seeds, GeometryReference, ::testing::Range(0, 12));

// ---- the distance transforms, exposed: HAUSDORFF_DT with α = 1, p = 1 − t (probabilities) has
// ℓᵢ = 2 f_T̂(i) exactly (the complement has the same f), so NONE shows f = d + d̄ per pixel.

std::vector<double> distance_field(const std::vector<int64_t>& spatial,
                                   const std::vector<bool>& mask,
                                   const std::vector<double>& spacing) {
  std::vector<int64_t> shape = {1, 1};
  shape.insert(shape.end(), spatial.begin(), spatial.end());
  TestTensor x(shape, f64()), t(shape, f64());
  for (size_t i = 0; i < mask.size(); ++i) {
    t.set(static_cast<int64_t>(i), mask[i] ? 1.0 : 0.0);
    x.set(static_cast<int64_t>(i), mask[i] ? 0.0 : 1.0);
  }
  Loss h(CULOSS_HAUSDORFF_DT);
  culoss_loss_set_int(h, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE);
  culoss_loss_set_int(h, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE);
  culoss_loss_set_float(h, CULOSS_PARAM_ALPHA, 1.0);
  if (!spacing.empty())
    culoss_loss_set_floats(h, CULOSS_PARAM_SPACING, spacing.data(),
                           static_cast<int64_t>(spacing.size()));
  TestTensor out(shape, f64());
  out.poison();
  EXPECT_EQ(CULOSS_SUCCESS,
            culoss_compute(h, x.dl(), t.dl(), nullptr, out.dl(), nullptr, 1.0, nullptr, 0, nullptr))
      << api_test::last_error();
  std::vector<double> f = out.values();
  for (double& v : f) v /= 2;
  return f;
}

void check_field(const std::vector<int64_t>& spatial, const std::vector<bool>& mask,
                 const std::vector<double>& spacing) {
  geo_ref::View v;
  v.ext = spatial;
  v.P = 1;
  for (int64_t e : spatial) v.P *= e;
  std::vector<LD> din, dout;
  geo_ref::brute_distances(v, spacing, mask, din, dout);
  const std::vector<double> f = distance_field(spatial, mask, spacing);
  ASSERT_EQ(static_cast<int64_t>(f.size()), v.P);
  for (int64_t q = 0; q < v.P; ++q)
    EXPECT_NEAR(f[q], static_cast<double>(din[q] + dout[q]), 1e-12 * (1 + f[q])) << q;
}

TEST(GeometryDistance, RandomMasksOneTwoThreeAxesAnisotropic) {
  std::mt19937 rng(7);
  const std::vector<std::vector<int64_t>> shapes = {{1},     {17},      {1, 9},    {6, 11},
                                                    {13, 4}, {3, 4, 5}, {1, 7, 2}, {5, 5, 5}};
  for (const auto& spatial : shapes)
    for (int variant = 0; variant < 3; ++variant) {
      int64_t P = 1;
      for (int64_t e : spatial) P *= e;
      std::vector<bool> mask(P);
      const double density = variant == 0 ? 0.5 : variant == 1 ? 0.1 : 0.9;
      for (int64_t q = 0; q < P; ++q)
        mask[q] = std::uniform_real_distribution<double>(0, 1)(rng) < density;
      std::vector<double> spacing;
      if (variant == 2)
        for (size_t a = 0; a < spatial.size(); ++a)
          spacing.push_back(std::uniform_real_distribution<double>(0.3, 3.0)(rng));
      check_field(spatial, mask, spacing);
    }
}

// Unions of balls: runs of one class longer than the direct search takes (kEdtDirectRun), so
// the lower envelopes are exercised too, next to short runs at the balls' rims.
TEST(GeometryDistance, BlobsWithLongRuns) {
  std::mt19937 rng(11);
  const std::vector<std::vector<int64_t>> shapes = {{200}, {31, 45}, {45, 2}, {14, 17, 13}};
  for (const auto& spatial : shapes)
    for (int variant = 0; variant < 3; ++variant) {
      const size_t k = spatial.size();
      int64_t P = 1;
      for (int64_t e : spatial) P *= e;
      std::vector<bool> mask(P, variant == 1);  // variant 1: holes in a full mask
      for (int ball = 0; ball < 4; ++ball) {
        std::vector<double> centre(k);
        for (size_t a = 0; a < k; ++a)
          centre[a] = std::uniform_real_distribution<double>(0, spatial[a])(rng);
        const double radius = std::uniform_real_distribution<double>(2, 9)(rng);
        for (int64_t q = 0; q < P; ++q) {
          double d2 = 0;
          for (int64_t a = static_cast<int64_t>(k) - 1, r = q; a >= 0; r /= spatial[a], --a) {
            const double d = static_cast<double>(r % spatial[a]) - centre[a];
            d2 += d * d;
          }
          if (d2 < radius * radius) mask[q] = variant != 1;
        }
      }
      std::vector<double> spacing;
      if (variant == 2)
        for (size_t a = 0; a < k; ++a)
          spacing.push_back(std::uniform_real_distribution<double>(0.3, 3.0)(rng));
      check_field(spatial, mask, spacing);
    }
}

TEST(GeometryDistance, EmptyFullAndOnePixel) {
  check_field({5, 6}, std::vector<bool>(30, false), {});
  check_field({5, 6}, std::vector<bool>(30, true), {});
  std::vector<bool> one(30, false);
  one[13] = true;
  check_field({5, 6}, one, {0.5, 2.0});
  std::vector<bool> all_but_one(60, true);
  all_but_one[59] = false;
  check_field({3, 4, 5}, all_but_one, {1.0, 2.0, 3.0});
  // An empty or full mask has no distances: the loss is 0 there.
  const std::vector<double> f = distance_field({4, 4}, std::vector<bool>(16, true), {});
  for (double v : f) EXPECT_EQ(v, 0.0);
}

// ---- identities -------------------------------------------------------------------------------

// A 2-class 2-D case with index labels, for the identities.
struct Case {
  Tensors t;
  std::vector<int64_t> shape;
};

Case small_case(int N = 2, int H = 9, int W = 11, unsigned seed = 5) {
  std::mt19937 rng(seed);
  Case c;
  c.shape = {N, 3, H, W};
  c.t.input = TestTensor(c.shape, f32());
  for (int64_t i = 0; i < c.t.input.numel(); ++i)
    c.t.input.set(i, std::normal_distribution<double>(0, 1.5)(rng));
  c.t.target = TestTensor({N, H, W}, i64());
  for (int64_t i = 0; i < c.t.target.numel(); ++i)
    c.t.target.set(i, std::uniform_int_distribution<int>(0, 2)(rng));
  return c;
}

TEST(GeometryIdentities, SumOfDiceAndGeometryTermsIsTheSumOfTheCalls) {
  const culoss_test::GenericCpuPasses generic_passes;  // Dice alone would run the float fast path
  for (culoss_kind kind : {CULOSS_HAUSDORFF_DT, CULOSS_BOUNDARY, CULOSS_CLDICE}) {
    Case c = small_case();
    Loss dice(CULOSS_DICE), geo(kind), sum(CULOSS_SUM);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, dice, 0.7));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, geo, 0.3));
    const Outputs a = run(dice, c.t, {}), b = run(geo, c.t, {}), s = run(sum, c.t, {});
    ASSERT_EQ(s.status, CULOSS_SUCCESS) << api_test::last_error();
    EXPECT_NEAR(s.loss[0], 0.7 * a.loss[0] + 0.3 * b.loss[0], 1e-12) << kind;
    for (size_t i = 0; i < s.grad.size(); ++i)
      EXPECT_NEAR(s.grad[i], 0.7 * a.grad[i] + 0.3 * b.grad[i], 1e-7) << kind << " " << i;
  }
}

// Two clDice terms: the last one's backward starts from the levels its forward kept, the first
// one's recomputes them (the second forward overwrote them); iteration counts below, at and
// above the kept levels.
TEST(GeometryIdentities, TwoClDiceTermsAreTheSumOfTheCalls) {
  const culoss_test::GenericCpuPasses generic_passes;  // one clDice alone runs the fast path
  const int pairs[][2] = {{3, 2}, {1, 5}, {7, 3}};
  for (const auto& it : pairs) {
    Case c = small_case(1, 12, 10, 11);
    Loss first(CULOSS_CLDICE), second(CULOSS_CLDICE), sum(CULOSS_SUM);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(first, CULOSS_PARAM_ITERATIONS, it[0]));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(second, CULOSS_PARAM_ITERATIONS, it[1]));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, first, 0.4));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, second, 0.6));
    const Outputs a = run(first, c.t, {}), b = run(second, c.t, {}), s = run(sum, c.t, {});
    ASSERT_EQ(s.status, CULOSS_SUCCESS) << api_test::last_error();
    EXPECT_NEAR(s.loss[0], 0.4 * a.loss[0] + 0.6 * b.loss[0], 1e-12) << it[0] << " " << it[1];
    for (size_t i = 0; i < s.grad.size(); ++i)
      EXPECT_NEAR(s.grad[i], 0.4 * a.grad[i] + 0.6 * b.grad[i], 1e-7) << it[0] << " " << i;
  }
}

TEST(GeometryIdentities, ThreadCountsGiveTheSameBits) {
  for (culoss_kind kind : {CULOSS_HAUSDORFF_DT, CULOSS_BOUNDARY, CULOSS_CLDICE}) {
    Case c = small_case(3, 40, 37);
    Loss h(kind);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(1));
    const Outputs one = run(h, c.t, {});
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(3));
    const Outputs three = run(h, c.t, {});
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(0));
    EXPECT_EQ(one.loss, three.loss);
    EXPECT_EQ(one.grad, three.grad);
  }
}

// The CPU takes the skeleton's images through all their levels a group at a time (about 2^15
// pixels, and at least a chunk of rows for each thread): 3 images of 3 classes at 128 × 128 are
// five groups (the last of one image) with one thread and one group with sixteen. The grouping
// changes no bit: one term (levels kept by the forward), more iterations than are kept (reruns
// in the backward), and a sum of two terms (one starts from the kept levels, one reruns).
TEST(GeometryIdentities, ClDiceImageGroupsChangeNoBit) {
  Case c = small_case(3, 128, 128);
  Loss alone(CULOSS_CLDICE), many(CULOSS_CLDICE), first(CULOSS_CLDICE), second(CULOSS_CLDICE),
      sum(CULOSS_SUM);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(many, CULOSS_PARAM_ITERATIONS, 7));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(first, CULOSS_PARAM_ITERATIONS, 5));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, first, 0.4));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, second, 0.6));
  for (culoss_loss h : {culoss_loss(alone), culoss_loss(many), culoss_loss(sum)}) {
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(1));
    const Outputs groups = run(h, c.t, {});
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(16));
    const Outputs one_group = run(h, c.t, {});
    ASSERT_EQ(CULOSS_SUCCESS, culoss_set_num_threads(0));
    ASSERT_EQ(groups.status, CULOSS_SUCCESS) << api_test::last_error();
    EXPECT_EQ(groups.loss, one_group.loss);
    EXPECT_EQ(groups.grad, one_group.grad);
  }
}

TEST(GeometryIdentities, InPlaceGradientEqualsSeparate) {
  for (culoss_kind kind : {CULOSS_HAUSDORFF_DT, CULOSS_CLDICE}) {
    Case c = small_case();
    Loss h(kind);
    const Outputs sep = run(h, c.t, {});
    TestTensor loss({}, f64());
    ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(h, c.t.input.dl(), c.t.target.dl(), nullptr, loss.dl(),
                                             c.t.input.dl(), 1.0, nullptr, 0, nullptr))
        << api_test::last_error();
    EXPECT_EQ(sep.grad, c.t.input.values());
  }
}

TEST(GeometryIdentities, DistributedStatisticsOfTwoShardsEqualOneCall) {
  // Distributed calls run the generic passes; the one call too, to compare to 1e-12 (the float
  // fast path of the distance kinds is compared in fast_path_test.cpp)
  const culoss_test::GenericCpuPasses generic_passes;
  for (culoss_kind kind : {CULOSS_HAUSDORFF_DT, CULOSS_BOUNDARY, CULOSS_CLDICE}) {
    Case whole = small_case(4, 8, 9);
    Loss h(kind);
    const Outputs full = run(h, whole.t, {});
    // Two shards of 2 images each.
    Tensors shard[2];
    for (int s = 0; s < 2; ++s) {
      shard[s].input = TestTensor({2, 3, 8, 9}, f32());
      shard[s].target = TestTensor({2, 8, 9}, i64());
      const int64_t ni = shard[s].input.numel(), nt = shard[s].target.numel();
      for (int64_t i = 0; i < ni; ++i) shard[s].input.set(i, whole.t.input.get(s * ni + i));
      for (int64_t i = 0; i < nt; ++i) shard[s].target.set(i, whole.t.target.get(s * nt + i));
    }
    int64_t count = 0;
    ASSERT_EQ(CULOSS_SUCCESS,
              culoss_stats_size(h, shard[0].input.dl(), shard[0].target.dl(), &count));
    std::vector<double> total(count, 0.0);
    for (int s = 0; s < 2; ++s) {
      TestTensor st({count}, f64());
      ASSERT_EQ(CULOSS_SUCCESS, culoss_compute_stats(h, shard[s].input.dl(), shard[s].target.dl(),
                                                     nullptr, st.dl(), nullptr, 0, nullptr))
          << api_test::last_error();
      for (int64_t i = 0; i < count; ++i) total[i] += st.get(i);
    }
    TestTensor summed({count}, f64());
    for (int64_t i = 0; i < count; ++i) summed.set(i, total[i]);
    for (int s = 0; s < 2; ++s) {
      TestTensor loss({}, f64()), g(shard[s].input.shape, f32());
      ASSERT_EQ(CULOSS_SUCCESS,
                culoss_compute_from_stats(h, shard[s].input.dl(), shard[s].target.dl(), nullptr,
                                          summed.dl(), loss.dl(), g.dl(), 1.0, nullptr, 0, nullptr))
          << api_test::last_error();
      EXPECT_NEAR(loss.get(0), full.loss[0], 1e-12) << kind;
      const int64_t ni = g.numel();
      for (int64_t i = 0; i < ni; ++i) EXPECT_NEAR(g.get(i), full.grad[s * ni + i], 1e-8) << kind;
    }
  }
}

TEST(GeometryIdentities, ClDiceWorkspaceDoesNotGrowWithIterations) {
  Case c = small_case(2, 32, 32);
  size_t bytes[2];
  const int iterations[2] = {1, 50};
  for (int i = 0; i < 2; ++i) {
    Loss h(CULOSS_CLDICE);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_ITERATIONS, iterations[i]));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, c.t.input.dl(), c.t.target.dl(), &bytes[i]));
  }
  EXPECT_EQ(bytes[0], bytes[1]);
  // And it is O(input): a fixed number of double planes (maps and scratch) per element.
  EXPECT_LT(bytes[1], 20 * 8 * static_cast<size_t>(c.t.input.numel()));
}

TEST(GeometryIdentities, ClDiceManyIterationsMatchReference) {
  std::mt19937 rng(99);
  geo_ref::Spec s = random_spec(rng, geo_ref::CLDICE, 2);
  s.iterations = 12;
  check_against_reference(s, f64(), 1e-9);
}

TEST(GeometryIdentities, GradScaleScalesTheGradient) {
  const culoss_test::GenericCpuPasses generic_passes;  // in double: 3·g to 1e-9
  Case c = small_case();
  Loss h(CULOSS_CLDICE);
  const Outputs one = run(h, c.t, {}, true, 1.0), three = run(h, c.t, {}, true, 3.0);
  for (size_t i = 0; i < one.grad.size(); ++i) EXPECT_NEAR(three.grad[i], 3 * one.grad[i], 1e-9);
}

// ---- the CPU fast path -------------------------------------------------------------------------
// HAUSDORFF_DT, BOUNDARY and CLDICE with the softmax, class-index labels and channels-first input
// run the float SIMD passes (seeds, statistics and element pass; src/cpu/fast_path.hpp): against
// the generic passes in double, within the fast path's documented tolerance (docs/reference.md:
// 1e-5), for every input dtype with a float32 gradient, alone and in sums; against the
// reference in Float32Inputs above.

// A softmax case the fast path takes: index labels, channels-first, a value (not NONE).
geo_ref::Spec fast_spec(std::mt19937& rng, int kind, int k) {
  for (;;) {
    geo_ref::Spec s = random_spec(rng, kind, k);
    if (s.activation == geo_ref::ACT_SOFTMAX && s.class_axis == 1 && s.index_target &&
        s.reduction != geo_ref::RED_NONE)
      return s;
  }
}

// `h` on the tensors of `s` with the input in `dtype` and a float32 gradient, on the fast path
// or (generic) the generic passes.
Outputs run_f32_grad(culoss_loss h, const geo_ref::Spec& s, DLDataType dtype, bool generic,
                     double grad_scale) {
  Tensors t = tensors(s, dtype);
  Outputs o;
  TestTensor loss({}, f64()), g(t.input.shape, f32());
  loss.poison();
  g.poison();
  auto call = [&] {
    return culoss_compute(h, t.input.dl(), t.target.dl(),
                          s.pixel_weight.empty() ? nullptr : t.weight.dl(), loss.dl(), g.dl(),
                          grad_scale, nullptr, 0, nullptr);
  };
  if (generic) {
    const culoss_test::GenericCpuPasses generic_passes;
    o.status = call();
  } else {
    o.status = call();
  }
  o.loss = loss.values();
  o.grad = g.values();
  return o;
}

void expect_fast_matches_generic(culoss_loss h, const geo_ref::Spec& s, DLDataType dtype,
                                 int& differing, const std::string& what, double grad_scale = 1) {
  const Outputs fast = run_f32_grad(h, s, dtype, false, grad_scale),
                slow = run_f32_grad(h, s, dtype, true, grad_scale);
  ASSERT_EQ(fast.status, CULOSS_SUCCESS) << api_test::last_error() << what;
  ASSERT_EQ(slow.status, CULOSS_SUCCESS) << api_test::last_error() << what;
  EXPECT_NEAR(fast.loss[0], slow.loss[0], 1e-5 * (1 + std::fabs(slow.loss[0]))) << what;
  double scale = 0;
  for (double g : slow.grad) scale = std::max(scale, std::fabs(g));
  for (size_t i = 0; i < slow.grad.size(); ++i)
    EXPECT_NEAR(fast.grad[i], slow.grad[i], 1e-5 * (std::fabs(slow.grad[i]) + scale))
        << what << " at " << i;
  differing += fast.grad != slow.grad || fast.loss != slow.loss;
}

TEST(GeometryFastPath, DistanceKindsMatchTheGenericPasses) {
  std::mt19937 rng(91);
  int differing = 0, cases = 0;
  const DLDataType dtypes[] = {f32(), testing_util::f16(), testing_util::bf16()};
  const int kinds[] = {geo_ref::HAUSDORFF_DT, geo_ref::BOUNDARY, geo_ref::CLDICE};
  for (int i = 0; i < 54; ++i) {
    const int kind = kinds[i % 3];
    const geo_ref::Spec s = fast_spec(rng, kind, kind == geo_ref::CLDICE ? 2 + i % 2 : 1 + i % 3);
    Loss h(static_cast<culoss_kind>(kind));
    set_params(h, s);
    expect_fast_matches_generic(h, s, dtypes[(i / 3) % 3], differing, " case " + std::to_string(i),
                                i % 4 == 3 ? -2.5 : 1.0);
    ++cases;
  }
  // The usual recipes in one call: Dice + boundary, cross-entropy + Hausdorff, both maps.
  for (int i = 0; i < 9; ++i) {
    geo_ref::Spec s = fast_spec(rng, geo_ref::HAUSDORFF_DT, 2 + i % 2);
    Loss sum(CULOSS_SUM), hd(CULOSS_HAUSDORFF_DT), boundary(CULOSS_BOUNDARY);
    set_params(hd, s);
    s.kind = geo_ref::BOUNDARY;
    set_params(boundary, s);
    Loss other(i % 3 == 0 ? CULOSS_DICE : CULOSS_CROSS_ENTROPY);
    if (i % 3 != 2) {
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, other, 0.6));
    }
    if (i % 3 != 0) {
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, hd, 0.3));
    }
    if (i % 3 != 1) {
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, boundary, 1.7));
    }
    expect_fast_matches_generic(sum, s, dtypes[i % 3], differing, " sum " + std::to_string(i));
    ++cases;
  }
  // Dice + clDice (MONAI's SoftDiceclDiceLoss) and cross-entropy + clDice.
  for (int i = 0; i < 6; ++i) {
    geo_ref::Spec s = fast_spec(rng, geo_ref::CLDICE, 2 + i % 2);
    Loss sum(CULOSS_SUM), cldice(CULOSS_CLDICE), other(i % 2 ? CULOSS_DICE : CULOSS_CROSS_ENTROPY);
    set_params(cldice, s);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, other, 0.5));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, cldice, 0.5));
    expect_fast_matches_generic(sum, s, dtypes[i % 3], differing,
                                " cldice sum " + std::to_string(i));
    ++cases;
  }
  // The float passes did run: most results differ from the double ones in their last bits.
  EXPECT_GT(differing, cases / 2);
}

// The most statistics a sum can ask of the fast path: seven MCC terms (four sums each) and a
// clDice term (five), eight terms in all.
TEST(GeometryFastPath, LargestSumOfStatisticsMatchesTheGenericPasses) {
  std::mt19937 rng(17);
  const geo_ref::Spec s = fast_spec(rng, geo_ref::CLDICE, 2);
  Loss sum(CULOSS_SUM), cldice(CULOSS_CLDICE), mcc(CULOSS_MCC);
  set_params(cldice, s);
  ASSERT_EQ(CULOSS_SUCCESS,
            culoss_loss_set_int(mcc, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
  for (int i = 0; i < 7; ++i) ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, mcc, 0.1 + i));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, cldice, 2.0));
  int differing = 0;
  expect_fast_matches_generic(sum, s, f32(), differing, " 7 MCC + clDice");
}

// Distance maps beyond float32 (a large ALPHA: (d + d̄)^60 on a grid of at least 4 x 4 pixels may
// reach 1e45) stay in double: the generic passes' result, finite, bit for bit.
TEST(GeometryFastPath, MapsBeyondFloatRunTheGenericPasses) {
  std::mt19937 rng(23);
  geo_ref::Spec s = fast_spec(rng, geo_ref::HAUSDORFF_DT, 2);
  s.alpha = 60.0;
  s.spacing.clear();
  Loss h(CULOSS_HAUSDORFF_DT);
  set_params(h, s);
  const Outputs fast = run_f32_grad(h, s, f32(), false, 1.0),
                slow = run_f32_grad(h, s, f32(), true, 1.0);
  ASSERT_EQ(fast.status, CULOSS_SUCCESS) << api_test::last_error();
  EXPECT_TRUE(std::isfinite(fast.loss[0]));
  EXPECT_EQ(fast.loss, slow.loss);
  EXPECT_EQ(fast.grad, slow.grad);
}

// Seeds at the threshold: p = ½ exactly (two classes of equal logits) is not in {p > ½}, as in
// the generic passes; ignored pixels are in no mask.
TEST(GeometryFastPath, TiedLogitsAndIgnoredPixelsSeedAsTheGenericPasses) {
  for (int kind : {geo_ref::HAUSDORFF_DT, geo_ref::BOUNDARY, geo_ref::CLDICE}) {
    std::mt19937 rng(5);
    geo_ref::Spec s = fast_spec(rng, kind, 2);
    s.shape = {2, 2, 7, 9};
    s.input.assign(2 * 2 * 63, 0.0);
    s.labels.assign(2 * 63, 0);
    s.pixel_weight.clear();
    s.class_weights.clear();
    for (int64_t q = 0; q < 2 * 63; ++q) {
      const int64_t n = q / 63, pq = q % 63;
      if (pq % 3 == 0) s.input[(n * 2 + 1) * 63 + pq] = 1.5;  // class 1 wins there
      s.labels[q] = pq % 5 == 0 ? s.ignore_index : pq % 2;
    }
    Loss h(static_cast<culoss_kind>(kind));
    set_params(h, s);
    int differing = 0;
    expect_fast_matches_generic(h, s, f32(), differing, " tied");
  }
}

// ---- refusals ---------------------------------------------------------------------------------

culoss_status call_shape(culoss_loss h, const std::vector<int64_t>& shape) {
  TestTensor x(shape, f32()), t(shape, f32()), loss({}, f64());
  return culoss_compute(h, x.dl(), t.dl(), nullptr, loss.dl(), nullptr, 1.0, nullptr, 0, nullptr);
}

TEST(GeometryRefusals, SpatialAxes) {
  for (culoss_kind kind : {CULOSS_HAUSDORFF_DT, CULOSS_BOUNDARY, CULOSS_CLDICE}) {
    Loss h(kind);
    EXPECT_REFUSED(call_shape(h, {1, 2, 2, 2, 2, 2}), CULOSS_ERROR_NOT_SUPPORTED,
                   "supports 1 to 3 spatial axes", "has 4");
    EXPECT_REFUSED(call_shape(h, {3, 2}), CULOSS_ERROR_NOT_SUPPORTED, "spatial axes", "has 0");
  }
  Loss cl(CULOSS_CLDICE);
  EXPECT_REFUSED(call_shape(cl, {2, 2, 7}), CULOSS_ERROR_NOT_SUPPORTED,
                 "CULOSS_CLDICE needs 2 or 3", "has 1");
  Loss hd(CULOSS_HAUSDORFF_DT);
  EXPECT_OK(call_shape(hd, {2, 2, 7}));
}

TEST(GeometryRefusals, Spacing) {
  Loss h(CULOSS_BOUNDARY);
  const double two[2] = {1.0, 2.0}, bad[2] = {1.0, 0.0}, neg[1] = {-1.0};
  EXPECT_REFUSED(culoss_loss_set_floats(h, CULOSS_PARAM_SPACING, bad, 2),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_SPACING", "> 0");
  EXPECT_REFUSED(culoss_loss_set_floats(h, CULOSS_PARAM_SPACING, neg, 1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_SPACING", "> 0");
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_floats(h, CULOSS_PARAM_SPACING, two, 2));
  EXPECT_REFUSED(call_shape(h, {1, 2, 3, 4, 5}), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_SPACING has 2 values", "3 spatial axes");
  EXPECT_OK(call_shape(h, {1, 2, 3, 4}));
  Loss cl(CULOSS_CLDICE);
  EXPECT_REFUSED(culoss_loss_set_floats(cl, CULOSS_PARAM_SPACING, two, 2),
                 CULOSS_ERROR_INVALID_ARGUMENT,
                 "CULOSS_PARAM_SPACING does not apply to CULOSS_CLDICE");
}

TEST(GeometryRefusals, Iterations) {
  Loss h(CULOSS_CLDICE);
  int64_t v = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_int(h, CULOSS_PARAM_ITERATIONS, &v));
  EXPECT_EQ(v, 3);
  EXPECT_REFUSED(culoss_loss_set_int(h, CULOSS_PARAM_ITERATIONS, 0), CULOSS_ERROR_INVALID_ARGUMENT,
                 "CULOSS_PARAM_ITERATIONS", "[1, 50]");
  EXPECT_REFUSED(culoss_loss_set_int(h, CULOSS_PARAM_ITERATIONS, 51), CULOSS_ERROR_INVALID_ARGUMENT,
                 "CULOSS_PARAM_ITERATIONS", "[1, 50]");
  EXPECT_OK(culoss_loss_set_int(h, CULOSS_PARAM_ITERATIONS, 50));
  Loss hd(CULOSS_HAUSDORFF_DT);
  EXPECT_REFUSED(culoss_loss_set_int(hd, CULOSS_PARAM_ITERATIONS, 3), CULOSS_ERROR_INVALID_ARGUMENT,
                 "does not apply to CULOSS_HAUSDORFF_DT");
}

TEST(GeometryDefaults, ParametersOfTheNewKinds) {
  double v = 0;
  Loss hd(CULOSS_HAUSDORFF_DT), cl(CULOSS_CLDICE);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_float(hd, CULOSS_PARAM_ALPHA, &v));
  EXPECT_EQ(v, 2.0);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_float(cl, CULOSS_PARAM_SMOOTH_NR, &v));
  EXPECT_EQ(v, 1.0);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_get_float(cl, CULOSS_PARAM_SMOOTH_DR, &v));
  EXPECT_EQ(v, 1.0);
}

}  // namespace

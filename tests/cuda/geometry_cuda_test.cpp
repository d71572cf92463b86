// HAUSDORFF_DT, BOUNDARY and CLDICE on the CUDA backend against the CPU backend: random 1-D/2-D/3-D
// cases (activations, channels-last, index and dense targets, ignored pixels, pixel weights,
// reductions, spacing, skeleton iterations and region options), every input dtype, outputs
// poisoned first, exact / misaligned / NULL workspaces, in-place gradients, a sum with Dice, and
// the refusals. The geometry (masks, distances, skeletons and their backward) is computed in
// double on both backends by the same code, so the comparisons are tight. Skips without a device.
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <random>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/compare.hpp"
#include "cuda/cuda_run.hpp"
#include "cuda/cuda_tensor.hpp"

namespace {

using namespace testing_util;

struct GeoCase {
  culoss_kind kind;
  std::vector<int64_t> shape;
  int class_axis;
  int activation, reduction;
  bool index, weights, include_background;
  std::vector<double> spacing;
  int iterations;
  bool batch, micro, skip_empty;
  TestTensor input, target, weight;
  std::vector<int64_t> loss_shape;
};

GeoCase random_case(std::mt19937& rng, culoss_kind kind, DLDataType dtype) {
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto real = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  GeoCase c;
  c.kind = kind;
  const int k = kind == CULOSS_CLDICE ? uni(2, 3) : uni(1, 3);
  c.activation = uni(0, 2);
  const int64_t C = c.activation == CULOSS_ACTIVATION_SIGMOID ? uni(1, 3) : uni(2, 4);
  const int64_t N = uni(1, 3);
  std::vector<int64_t> spatial;
  for (int a = 0; a < k; ++a) spatial.push_back(k == 3 ? uni(2, 14) : k == 2 ? uni(3, 40) : uni(2, 300));
  const bool last = uni(0, 1);
  c.shape.push_back(N);
  if (!last) c.shape.push_back(C);
  c.shape.insert(c.shape.end(), spatial.begin(), spatial.end());
  if (last) c.shape.push_back(C);
  c.class_axis = last ? -1 : 1;
  c.reduction = uni(0, 2);
  c.include_background = uni(0, 3) > 0;
  c.iterations = uni(1, 6);
  c.batch = uni(0, 1);
  c.micro = uni(0, 1);
  c.skip_empty = uni(0, 1);
  if (kind != CULOSS_CLDICE && uni(0, 1))
    for (int a = 0; a < k; ++a) c.spacing.push_back(real(0.3, 3));
  c.input = TestTensor(c.shape, dtype);
  for (int64_t i = 0; i < c.input.numel(); ++i)
    c.input.set(i, c.activation == CULOSS_ACTIVATION_NONE ? real(0.01, 0.99) : real(-4, 4));
  c.index = !(c.activation == CULOSS_ACTIVATION_SIGMOID && C > 1) && uni(0, 1);
  std::vector<int64_t> pshape = c.shape;
  pshape.erase(pshape.begin() + (last ? pshape.size() - 1 : 1));
  if (c.index) {
    const int labels = c.activation == CULOSS_ACTIVATION_SIGMOID ? 2 : static_cast<int>(C);
    c.target = TestTensor(pshape, i64());
    for (int64_t i = 0; i < c.target.numel(); ++i) c.target.set(i, uni(0, 9) == 0 ? -100 : uni(0, labels - 1));
    c.weights = uni(0, 1);
    if (c.weights) {
      c.weight = TestTensor(pshape, f32());
      for (int64_t i = 0; i < c.weight.numel(); ++i) c.weight.set(i, uni(0, 6) == 0 ? 0.0 : real(0.1, 2));
    }
  } else {
    c.target = TestTensor(c.shape, f32());
    for (int64_t i = 0; i < c.target.numel(); ++i) c.target.set(i, uni(0, 1) ? (uni(0, 1) ? 1.0 : 0.0) : real(0, 1));
  }
  if (c.reduction == CULOSS_REDUCTION_NONE) {
    if (kind != CULOSS_CLDICE) {
      c.loss_shape = c.shape;
    } else {
      if (!c.batch) c.loss_shape.push_back(N);
      if (!c.micro) c.loss_shape.push_back(C);
    }
  }
  return c;
}

void configure(culoss_loss h, const GeoCase& c) {
  culoss_loss_set_int(h, CULOSS_PARAM_ACTIVATION, c.activation);
  culoss_loss_set_int(h, CULOSS_PARAM_REDUCTION, c.reduction);
  culoss_loss_set_int(h, CULOSS_PARAM_CLASS_AXIS, c.class_axis);
  culoss_loss_set_int(h, CULOSS_PARAM_INCLUDE_BACKGROUND, c.include_background);
  if (!c.spacing.empty())
    culoss_loss_set_floats(h, CULOSS_PARAM_SPACING, c.spacing.data(),
                           static_cast<int64_t>(c.spacing.size()));
  if (c.kind == CULOSS_CLDICE) {
    culoss_loss_set_int(h, CULOSS_PARAM_ITERATIONS, c.iterations);
    culoss_loss_set_int(h, CULOSS_PARAM_BATCH, c.batch);
    culoss_loss_set_int(h, CULOSS_PARAM_AVERAGE, c.micro ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO);
    culoss_loss_set_int(h, CULOSS_PARAM_SKIP_EMPTY, c.skip_empty);
  }
}

// The CPU result of the same call (double accumulation; the reference of these tests).
RunResult run_cpu(culoss_loss h, GeoCase& c, DLDataType loss_dtype, DLDataType grad_dtype) {
  RunResult r;
  TestTensor loss(c.loss_shape, loss_dtype), grad(c.shape, grad_dtype);
  loss.poison();
  grad.poison();
  r.status = culoss_compute(h, c.input.dl(), c.target.dl(), c.weights ? c.weight.dl() : nullptr,
                            loss.dl(), grad.dl(), 1.0, nullptr, 0, nullptr);
  r.error = culoss_last_error();
  r.loss = loss;
  r.grad = grad;
  return r;
}

void compare_case(GeoCase& c, DLDataType dtype, const CudaRunOptions& o, const std::string& what) {
  Loss h(c.kind);
  configure(h, c);
  const RunResult cpu = run_cpu(h, c, f64(), dtype);
  ASSERT_EQ(CULOSS_SUCCESS, cpu.status) << cpu.error;
  CallData d;
  d.input = &c.input;
  d.target = &c.target;
  d.weight = c.weights ? &c.weight : nullptr;
  d.loss_shape = c.loss_shape;
  d.loss_dtype = f64();
  d.grad_dtype = dtype;
  RunResult gpu;
  run_cuda(d, h, o, &gpu);
  ASSERT_EQ(CULOSS_SUCCESS, gpu.status) << gpu.error << " " << what;
  EXPECT_TRUE(gpu.guards_ok) << what;
  // float32 compute types sum statistics in float on the device: a loose relative tolerance.
  const bool dbl = dtype.bits == 64;
  for (int64_t i = 0; i < cpu.loss.numel(); ++i)
    EXPECT_NEAR(gpu.loss.get(i), cpu.loss.get(i), (dbl ? 1e-10 : 2e-4) * (1 + std::fabs(cpu.loss.get(i))))
        << what << " loss " << i;
  double gmax = 0;
  for (int64_t i = 0; i < cpu.grad.numel(); ++i) gmax = std::max(gmax, std::fabs(cpu.grad.get(i)));
  const double gtol = dbl ? 1e-10 : is_half(dtype) ? 2e-2 : 2e-4;
  for (int64_t i = 0; i < cpu.grad.numel(); ++i)
    EXPECT_NEAR(gpu.grad.get(i), cpu.grad.get(i), gtol * (gmax + std::fabs(cpu.grad.get(i))) + 1e-12)
        << what << " grad " << i;
}

class GeometryCuda : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { require_device(); }
};

TEST_P(GeometryCuda, MatchesCpu) {
  std::mt19937 rng(700 + GetParam());
  const culoss_kind kinds[] = {CULOSS_HAUSDORFF_DT, CULOSS_BOUNDARY, CULOSS_CLDICE};
  const DLDataType dtypes[] = {f64(), f32(), f16(), bf16()};
  const culoss_kind kind = kinds[GetParam() % 3];
  const DLDataType dtype = dtypes[(GetParam() / 3) % 4];
  GeoCase c = random_case(rng, kind, dtype);
  CudaRunOptions o;
  o.ws = GetParam() % 3 == 0 ? Ws::Exact : GetParam() % 3 == 1 ? Ws::ExactMisaligned : Ws::Null;
  o.ws_misalign = 8;
  compare_case(c, dtype, o, std::string("case ") + std::to_string(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(Seeds, GeometryCuda, ::testing::Range(0, 36));

TEST(GeometryCudaFixed, InPlaceGradientAndSumWithDice) {
  require_device();
  if (::testing::Test::IsSkipped()) return;
  std::mt19937 rng(11);
  GeoCase c = random_case(rng, CULOSS_CLDICE, f32());
  CudaRunOptions o;
  o.in_place = true;
  compare_case(c, f32(), o, "in place");
  // Dice + clDice + boundary in one CULOSS_SUM.
  Loss dice(CULOSS_DICE), cl(CULOSS_CLDICE), bd(CULOSS_BOUNDARY), sum(CULOSS_SUM);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, dice, 0.5));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, cl, 0.3));
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, bd, 0.2));
  TestTensor x({2, 3, 24, 20}, f32()), t({2, 24, 20}, i64());
  for (int64_t i = 0; i < x.numel(); ++i) x.set(i, std::normal_distribution<double>(0, 2)(rng));
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, std::uniform_int_distribution<int>(0, 2)(rng));
  TestTensor loss({}, f64()), grad(x.shape, f32());
  ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(sum, x.dl(), t.dl(), nullptr, loss.dl(), grad.dl(), 1.0,
                                           nullptr, 0, nullptr));
  CallData d;
  d.input = &x;
  d.target = &t;
  d.loss_shape = {};
  d.loss_dtype = f64();
  d.grad_dtype = f32();
  RunResult gpu;
  run_cuda(d, sum, CudaRunOptions(), &gpu);
  ASSERT_EQ(CULOSS_SUCCESS, gpu.status) << gpu.error;
  EXPECT_NEAR(gpu.loss.get(0), loss.get(0), 1e-4);
  for (int64_t i = 0; i < grad.numel(); ++i) EXPECT_NEAR(gpu.grad.get(i), grad.get(i), 1e-6) << i;
}

TEST(GeometryCudaFixed, RefusalsMatchTheCpu) {
  require_device();
  if (::testing::Test::IsSkipped()) return;
  Loss cl(CULOSS_CLDICE);
  TestTensor x({2, 2, 9}, f32()), t({2, 2, 9}, f32());
  CallData d;
  d.input = &x;
  d.target = &t;
  d.loss_dtype = f64();
  d.grad_dtype = f32();
  RunResult gpu;
  run_cuda(d, cl, CudaRunOptions(), &gpu);
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, gpu.status);
  EXPECT_NE(std::string::npos, gpu.error.find("2 or 3 spatial axes")) << gpu.error;
}

}  // namespace

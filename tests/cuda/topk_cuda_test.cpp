// CULOSS_TOPK_CE on the CUDA backend beyond the element-wise sweeps (elementwise_cases.hpp runs
// it through every dtype, option and shape sweep, alone and with Dice): the selection itself.
// Inputs with many exactly equal losses must keep the same pixels as the CPU (ties to the lowest
// pixel index), over shapes that take many blocks and a multi-pass CUB sort; two runs give the
// same bits; the statistics API refuses it on the device too. Skips without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/compare.hpp"
#include "cuda/cuda_run.hpp"
#include "cuda/cuda_tensor.hpp"
#include "cuda/elementwise_cases.hpp"

namespace {

using namespace elementwise_test;
using testing_util::CallData;
using testing_util::close;
using testing_util::CudaRunOptions;
using testing_util::CudaTensor;
using testing_util::same_bits;

CallData call_data(const Problem& p) {
  CallData d;
  d.input = &p.input;
  d.target = &p.target;
  d.weight = p.has_weight ? &p.weight : nullptr;
  d.loss_shape = p.loss_shape;
  d.loss_dtype = p.c.loss_dtype;
  d.grad_dtype = grad_dtype(p.c);
  d.grad_scale = p.c.grad_scale;
  return d;
}

// A TOPK_CE case whose logits take a few values only: many pixels share one loss exactly.
Problem tied_problem(std::vector<int64_t> shape, double fraction, DLDataType in, uint64_t seed) {
  Term t = term(CULOSS_TOPK_CE);
  t.top_fraction = fraction;
  Case c = base_case({t}, std::move(shape), seed);
  c.in = in;
  c.grad_f32 = true;
  c.tgt = Tgt::IdxU8;
  c.ignore_frac = 0.1;
  c.name = "topk_ties";
  Problem p = make_problem(c);
  for (int64_t i = 0; i < p.input.numel(); ++i)
    p.input.set(i, std::round(p.input.get(i) * 2.0) / 2.0);  // multiples of 0.5: exact in bf16
  return p;
}

// The pixels (flat n * P + q) whose gradient is not zero.
std::vector<int64_t> kept_pixels(const Problem& p, const TestTensor& grad) {
  std::vector<int64_t> out;
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t i = 0; i < p.inner; ++i) {
      bool any = false;
      for (int64_t k = 0; k < p.C; ++k) any = any || grad.get(p.in_index(o, k, i)) != 0.0;
      if (any) out.push_back(p.pix_index(o, i));
    }
  return out;
}

class TopKCuda : public ::testing::Test {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

TEST_F(TopKCuda, TiesKeepTheSamePixelsAsTheCpu) {
  struct Shape {
    std::vector<int64_t> shape;
    double fraction;
    DLDataType in;
  } shapes[] = {
      {{2, 3, 16, 16}, 0.37, f32()},   {{4, 4, 128, 100}, 0.1, f32()},
      {{4, 4, 128, 100}, 0.5, bf16()}, {{2, 4, 512, 512}, 0.1, f16()},
      {{3, 50, 70, 5}, 0.2, f64()},    {{1000, 10}, 0.013, f32()},
  };
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    Problem p = tied_problem(s.shape, s.fraction, s.in, seed++);
    SCOPED_TRACE(describe(p.c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    RunResult cpu, gpu;
    ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &cpu));
    ASSERT_EQ(CULOSS_SUCCESS, cpu.status) << cpu.error;
    ASSERT_NO_FATAL_FAILURE(testing_util::run_cuda(call_data(p), loss, CudaRunOptions(), &gpu));
    ASSERT_EQ(CULOSS_SUCCESS, gpu.status) << gpu.error;
    EXPECT_TRUE(gpu.guards_ok);
    EXPECT_EQ(kept_pixels(p, cpu.grad), kept_pixels(p, gpu.grad));
    EXPECT_TRUE(close(cpu.loss, gpu.loss, value_tol(p.c), "loss"));
    EXPECT_TRUE(close(cpu.grad, gpu.grad, grad_tol(p.c), "gradient"));
  }
}

TEST_F(TopKCuda, TwoRunsGiveTheSameBitsAndInPlaceToo) {
  Problem p = tied_problem({4, 4, 128, 100}, 0.25, f32(), 7);
  p.c.grad_f32 = false;
  CaseLoss loss(p);
  ASSERT_TRUE(loss.ok);
  RunResult a, b, in_place;
  CudaRunOptions o;
  o.ws = testing_util::Ws::Exact;
  ASSERT_NO_FATAL_FAILURE(testing_util::run_cuda(call_data(p), loss, o, &a));
  ASSERT_NO_FATAL_FAILURE(testing_util::run_cuda(call_data(p), loss, o, &b));
  o.in_place = true;
  ASSERT_NO_FATAL_FAILURE(testing_util::run_cuda(call_data(p), loss, o, &in_place));
  ASSERT_EQ(CULOSS_SUCCESS, a.status) << a.error;
  ASSERT_EQ(CULOSS_SUCCESS, in_place.status) << in_place.error;
  EXPECT_TRUE(same_bits(a.loss, b.loss, "loss"));
  EXPECT_TRUE(same_bits(a.grad, b.grad, "gradient"));
  EXPECT_TRUE(same_bits(a.loss, in_place.loss, "loss (in place)"));
  EXPECT_TRUE(same_bits(a.grad, in_place.grad, "gradient (in place)"));
}

TEST_F(TopKCuda, StatisticsApiIsNotSupportedOnTheDevice) {
  Problem p = tied_problem({2, 3, 8, 8}, 0.1, f32(), 3);
  CaseLoss loss(p);
  ASSERT_TRUE(loss.ok);
  CudaTensor din(p.input), dtg(p.target);
  int64_t count = 0;
  EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, culoss_stats_size(loss, din.dl(), dtg.dl(), &count));
  EXPECT_NE(std::string(culoss_last_error()).find("threshold is global"), std::string::npos)
      << culoss_last_error();
  size_t bytes = 0;
  EXPECT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &bytes))
      << culoss_last_error();
  EXPECT_GT(bytes, static_cast<size_t>(4 * p.outer * p.inner * 8));  // the sort's pairs
}

}  // namespace

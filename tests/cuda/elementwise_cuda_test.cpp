// Element-wise losses (BCE, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE) and fused CULOSS_SUMs on
// the CUDA backend, compared with the CPU backend through the same public API: the same host
// data is run once with kDLCPU tensors and once with kDLCUDA tensors.
//
// Every device output buffer starts poisoned (0xff bytes = NaN), and every device tensor sits
// between guard bytes, so an element the library forgets to write, or a write out of bounds,
// fails the comparison. Every test starts with require_device() and skips without a GPU.
//
// The cases (tests/cuda/elementwise_cases.hpp) cover every input dtype and both gradient
// dtypes, MEAN / SUM / NONE, NCHW / NHWC / (N, C) / NCDHW / other class axes, one pixel to
// multi-block shapes, index and dense targets, and the options of each kind. Seeds are fixed so
// failures reproduce; set CULOSS_TEST_SEED to run other inputs.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <thread>
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
using testing_util::CudaStream;
using testing_util::CudaTensor;
using testing_util::offsets;
using testing_util::PinnedBuffer;
using testing_util::same_bits;
using testing_util::still_poisoned;
using testing_util::Ws;

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

void run_cuda(Problem& p, culoss_loss h, const CudaRunOptions& o, RunResult* r) {
  testing_util::run_cuda(call_data(p), h, o, r);
}

// Runs `p` on both backends and compares. Optionally returns the CUDA result.
void check_against_cpu(Problem& p, const CudaRunOptions& o, RunResult* cuda_out = nullptr) {
  SCOPED_TRACE(describe(p.c));
  CaseLoss loss(p);
  ASSERT_NE(nullptr, loss.h);
  ASSERT_TRUE(loss.ok);
  RunResult ref;
  ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &ref));
  ASSERT_EQ(CULOSS_SUCCESS, ref.status) << "CPU backend: " << ref.error;
  RunResult got;
  ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &got));
  ASSERT_EQ(CULOSS_SUCCESS, got.status) << "CUDA backend: " << got.error;
  EXPECT_STREQ("", culoss_last_error());
  EXPECT_TRUE(got.guards_ok) << "a write outside a tensor (guard bytes or byte_offset gap changed)";
  EXPECT_TRUE(got.host_loss_ready) << "host loss_out changed after culoss_compute returned";
  EXPECT_TRUE(close(ref.loss, got.loss, value_tol(p.c), "loss"));
  if (o.with_grad) EXPECT_TRUE(close(ref.grad, got.grad, grad_tol(p.c), "gradient"));
  else EXPECT_TRUE(still_poisoned(got.grad)) << "forward-only call wrote a gradient buffer it was not given";
  if (cuda_out != nullptr) *cuda_out = std::move(got);
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend
// ---------------------------------------------------------------------------------------------

class ElementwiseCudaVsCpu : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

TEST_P(ElementwiseCudaVsCpu, MatchesCpuBackend) {
  Problem p = make_problem(GetParam());
  CudaRunOptions o;
  o.host_loss_out = p.c.host_loss_out;
  check_against_cpu(p, o);
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Dtypes, ElementwiseCudaVsCpu, ::testing::ValuesIn(dtype_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Options, ElementwiseCudaVsCpu, ::testing::ValuesIn(option_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, ElementwiseCudaVsCpu, ::testing::ValuesIn(shape_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Random, ElementwiseCudaVsCpu, ::testing::ValuesIn(random_sweep()), case_name);

// ---------------------------------------------------------------------------------------------
// Call plumbing: loss_out location, workspace, streams, graphs, in-place, determinism, offsets
// ---------------------------------------------------------------------------------------------

class ElementwiseCuda : public ::testing::Test {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

TEST_F(ElementwiseCuda, LossOutOnDeviceAndOnHostGiveTheSameBits) {
  for (const Case& c0 : plumbing_cases()) {
    for (DLDataType ld : {f32(), f64()}) {
      Case c = c0;
      c.loss_dtype = ld;
      Problem p = make_problem(c);
      SCOPED_TRACE(describe(c));
      RunResult dev, host;
      CudaRunOptions o;
      ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o, &dev));
      o.host_loss_out = true;
      ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o, &host));
      EXPECT_TRUE(same_bits(dev.loss, host.loss, "loss (device vs host loss_out)"));
      EXPECT_TRUE(same_bits(dev.grad, host.grad, "gradient (device vs host loss_out)"));
    }
  }
}

// The workspace depends on the backend (CUDA adds per-block partials), never on the device model.
TEST_F(ElementwiseCuda, WorkspaceSizeCoversTheCpuLayoutAndIsStable) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    CudaTensor din(p.input), dtg(p.target);
    size_t cpu_bytes = 0, cuda_bytes = 0, again = 0;
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, p.input.dl(), p.target.dl(), &cpu_bytes)) << culoss_last_error();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &cuda_bytes)) << culoss_last_error();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &again)) << culoss_last_error();
    EXPECT_GE(cuda_bytes, cpu_bytes);
    EXPECT_EQ(cuda_bytes, again);
    EXPECT_GT(cuda_bytes, 0u);
  }
}

TEST_F(ElementwiseCuda, CallerWorkspaceGivesTheSameBitsAsLibraryAllocation) {
  for (const Case& c : plumbing_cases()) {
    for (bool host_loss : {false, true}) {
      Problem p = make_problem(c);
      SCOPED_TRACE(describe(c) + (host_loss ? " [host loss_out]" : ""));
      CaseLoss loss(p);
      ASSERT_TRUE(loss.ok);
      RunResult lib, exact, large;
      CudaRunOptions o;
      o.host_loss_out = host_loss;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &lib));
      ASSERT_EQ(CULOSS_SUCCESS, lib.status) << lib.error;
      o.ws = Ws::Exact;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &exact));
      ASSERT_EQ(CULOSS_SUCCESS, exact.status) << exact.error;
      EXPECT_TRUE(exact.guards_ok) << "the library wrote past the workspace (or another tensor)";
      EXPECT_TRUE(same_bits(lib.loss, exact.loss, "loss (NULL vs exact workspace)"));
      EXPECT_TRUE(same_bits(lib.grad, exact.grad, "gradient (NULL vs exact workspace)"));
      o.ws = Ws::Large;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &large));
      ASSERT_EQ(CULOSS_SUCCESS, large.status) << large.error;
      EXPECT_TRUE(same_bits(lib.loss, large.loss, "loss (NULL vs larger workspace)"));
      EXPECT_TRUE(same_bits(lib.grad, large.grad, "gradient (NULL vs larger workspace)"));
    }
  }
}

// culoss_workspace_size includes up to 256 bytes of alignment slack, so a workspace of exactly
// that size works at any address.
TEST_F(ElementwiseCuda, ExactWorkspaceAtAnUnalignedAddressWorks) {
  const std::vector<Case> cases = plumbing_cases();
  for (size_t i = 0; i < cases.size(); i += 2) {
    Problem p = make_problem(cases[i]);
    SCOPED_TRACE(describe(p.c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    RunResult lib;
    CudaRunOptions o;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &lib));
    ASSERT_EQ(CULOSS_SUCCESS, lib.status) << lib.error;
    for (uint64_t mis : {1u, 8u, 200u}) {
      SCOPED_TRACE("workspace address = 256-aligned + " + std::to_string(mis));
      RunResult r;
      o.ws = Ws::ExactMisaligned;
      o.ws_misalign = mis;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &r));
      ASSERT_EQ(CULOSS_SUCCESS, r.status) << r.error;
      EXPECT_TRUE(r.guards_ok);
      EXPECT_TRUE(same_bits(lib.loss, r.loss, "loss"));
      EXPECT_TRUE(same_bits(lib.grad, r.grad, "gradient"));
    }
  }
}

TEST_F(ElementwiseCuda, InsufficientWorkspaceIsRefusedAndWritesNothing) {
  for (const Case& c : plumbing_cases()) {
    for (bool host_loss : {false, true}) {
      Problem p = make_problem(c);
      SCOPED_TRACE(describe(c) + (host_loss ? " [host loss_out]" : ""));
      CaseLoss loss(p);
      ASSERT_TRUE(loss.ok);
      RunResult r;
      CudaRunOptions o;
      o.ws = Ws::Short;
      o.host_loss_out = host_loss;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &r));
      EXPECT_EQ(CULOSS_ERROR_INSUFFICIENT_WORKSPACE, r.status) << r.error;
      EXPECT_STRNE("", r.error.c_str());
      EXPECT_TRUE(still_poisoned(r.loss)) << "loss_out written by a refused call";
      EXPECT_TRUE(still_poisoned(r.grad)) << "grad_input written by a refused call";
      EXPECT_TRUE(r.guards_ok);
    }
  }
}

// A non-default stream carries all the work: the input is uploaded on that stream behind a host
// callback that holds the stream for a while, and the results are read back on the same stream.
// Work issued on any other stream would see the stale input and give other numbers.
void CUDART_CB hold_stream(void*) { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

TEST_F(ElementwiseCuda, NonDefaultStreamOrdersTheWork) {
  const std::vector<Case> cases = plumbing_cases();
  for (size_t ci = 0; ci < cases.size(); ci += 3) {
    for (int check : {0, 1}) {
      for (bool blocking : {false, true}) {
        Case c = cases[ci];
        c.check_targets = check;
        Problem p = make_problem(c);
        SCOPED_TRACE(describe(c) + (blocking ? " [blocking stream]" : " [non-blocking stream]"));
        CaseLoss loss(p);
        ASSERT_TRUE(loss.ok);

        RunResult ref;  // the default stream
        ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &ref));
        ASSERT_EQ(CULOSS_SUCCESS, ref.status) << ref.error;

        CudaStream s(blocking ? cudaStreamDefault : cudaStreamNonBlocking);
        CudaTensor din(p.input.shape, p.input.dtype), dtg(p.target);
        std::unique_ptr<CudaTensor> dw;
        if (p.has_weight) dw = std::make_unique<CudaTensor>(p.weight);
        CudaTensor dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, grad_dtype(c));
        CUDA_ASSERT_OK(cudaMemset(din.data_ptr(), 0, din.nbytes()));  // stale input: zeros
        dloss.poison();
        dgrad.poison();
        PinnedBuffer hin(din.nbytes()), hgrad(dgrad.nbytes()), hloss(dloss.nbytes());
        std::memcpy(hin.get(), p.input.bytes.data(), din.nbytes());
        CUDA_ASSERT_OK(cudaDeviceSynchronize());

        CUDA_ASSERT_OK(cudaLaunchHostFunc(s.get(), hold_stream, nullptr));
        CUDA_ASSERT_OK(cudaMemcpyAsync(din.data_ptr(), hin.get(), din.nbytes(), cudaMemcpyHostToDevice, s.get()));
        const culoss_status st = culoss_compute(loss, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(),
                                                dgrad.dl(), c.grad_scale, nullptr, 0, s.get());
        ASSERT_EQ(CULOSS_SUCCESS, st) << culoss_last_error();
        CUDA_ASSERT_OK(cudaMemcpyAsync(hgrad.get(), dgrad.data_ptr(), dgrad.nbytes(), cudaMemcpyDeviceToHost, s.get()));
        CUDA_ASSERT_OK(cudaMemcpyAsync(hloss.get(), dloss.data_ptr(), dloss.nbytes(), cudaMemcpyDeviceToHost, s.get()));
        CUDA_ASSERT_OK(cudaStreamSynchronize(s.get()));

        TestTensor g(c.shape, grad_dtype(c)), l(p.loss_shape, c.loss_dtype);
        std::memcpy(g.bytes.data(), hgrad.get(), dgrad.nbytes());
        std::memcpy(l.bytes.data(), hloss.get(), dloss.nbytes());
        EXPECT_TRUE(same_bits(ref.loss, l, "loss (default stream vs user stream)"));
        EXPECT_TRUE(same_bits(ref.grad, g, "gradient (default stream vs user stream)"));
        CUDA_EXPECT_OK(cudaDeviceSynchronize());
      }
    }
  }
}

// With a workspace, CHECK_TARGETS=0 and a device loss_out a call can be captured into a CUDA
// graph; replaying the graph on new logits gives what a direct call gives. The first case is the
// one the contract names: a fused SUM with class weights.
void capture_and_replay(const Case& c0) {
  Case c = c0;
  c.check_targets = 0;
  c.host_loss_out = false;
  Problem p = make_problem(c);
  Case c2 = c;
  c2.seed += 777;
  Problem p2 = make_problem(c2);
  p2.target = p.target;  // replay changes only the logits
  if (p.has_weight) p2.weight = p.weight;
  SCOPED_TRACE(describe(c));
  CaseLoss loss(p);
  ASSERT_TRUE(loss.ok);

  RunResult direct;
  ASSERT_NO_FATAL_FAILURE(run_cuda(p2, loss, CudaRunOptions{}, &direct));
  ASSERT_EQ(CULOSS_SUCCESS, direct.status) << direct.error;
  {  // the direct call itself agrees with the CPU backend
    RunResult ref;
    ASSERT_NO_FATAL_FAILURE(run_cpu(p2, loss, &ref));
    ASSERT_EQ(CULOSS_SUCCESS, ref.status) << ref.error;
    EXPECT_TRUE(close(ref.loss, direct.loss, value_tol(c), "loss (direct call vs CPU)"));
    EXPECT_TRUE(close(ref.grad, direct.grad, grad_tol(c), "gradient (direct call vs CPU)"));
  }

  CudaStream s(cudaStreamNonBlocking);
  CudaTensor din(p.input), dtg(p.target);
  std::unique_ptr<CudaTensor> dw;
  if (p.has_weight) dw = std::make_unique<CudaTensor>(p.weight);
  CudaTensor dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, grad_dtype(c));
  size_t ws = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &ws)) << culoss_last_error();
  CudaTensor wsbuf({static_cast<int64_t>(ws)}, u8());
  CUDA_ASSERT_OK(cudaDeviceSynchronize());

  cudaGraph_t graph = nullptr;
  CUDA_ASSERT_OK(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeThreadLocal));
  const culoss_status st = culoss_compute(loss, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(),
                                          dgrad.dl(), c.grad_scale, wsbuf.data_ptr(), ws, s.get());
  const std::string err = culoss_last_error();
  const cudaError_t end = cudaStreamEndCapture(s.get(), &graph);
  ASSERT_EQ(CULOSS_SUCCESS, st) << err;
  ASSERT_EQ(cudaSuccess, end) << cudaGetErrorString(end);
  ASSERT_NE(nullptr, graph);
  cudaGraphExec_t exec = nullptr;
  CUDA_ASSERT_OK(cudaGraphInstantiate(&exec, graph, 0));

  for (int replay = 0; replay < 2; ++replay) {
    SCOPED_TRACE("replay " + std::to_string(replay));
    din.upload(p2.input);
    dloss.poison();
    dgrad.poison();
    CUDA_ASSERT_OK(cudaDeviceSynchronize());
    CUDA_EXPECT_OK(cudaGraphLaunch(exec, s.get()));
    CUDA_EXPECT_OK(cudaStreamSynchronize(s.get()));
    EXPECT_TRUE(same_bits(direct.loss, dloss.download(), "loss (graph replay vs direct call)"));
    EXPECT_TRUE(same_bits(direct.grad, dgrad.download(), "gradient (graph replay vs direct call)"));
  }
  EXPECT_TRUE(wsbuf.guards_intact());
  EXPECT_TRUE(din.guards_intact() && dtg.guards_intact() && dloss.guards_intact() && dgrad.guards_intact());
  CUDA_EXPECT_OK(cudaGraphExecDestroy(exec));
  CUDA_EXPECT_OK(cudaGraphDestroy(graph));
}

TEST_F(ElementwiseCuda, FusedSumWithClassWeightsIsCapturedIntoACudaGraph) {
  for (const Case& c : graph_cases()) ASSERT_NO_FATAL_FAILURE(capture_and_replay(c));
}

TEST_F(ElementwiseCuda, InPlaceGradientMatchesOutOfPlace) {
  for (const Case& c : inplace_cases()) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    RunResult out, in1, in2;
    CudaRunOptions o;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o, &out));
    o.in_place = true;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &in1));
    ASSERT_EQ(CULOSS_SUCCESS, in1.status) << in1.error;
    EXPECT_TRUE(in1.guards_ok);
    EXPECT_TRUE(same_bits(out.loss, in1.loss, "loss (in-place, same DLTensor)"));
    EXPECT_TRUE(same_bits(out.grad, in1.grad, "gradient (in-place, same DLTensor)"));
    o.in_place = false;
    o.in_place_copy = true;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &in2));
    ASSERT_EQ(CULOSS_SUCCESS, in2.status) << in2.error;
    EXPECT_TRUE(same_bits(out.loss, in2.loss, "loss (in-place, separate DLTensor)"));
    EXPECT_TRUE(same_bits(out.grad, in2.grad, "gradient (in-place, separate DLTensor)"));
  }
}

TEST_F(ElementwiseCuda, InPlaceWithByteOffsetAndHostLossOut) {
  int r = 0;
  for (const Flavour& fl : flavours()) {
    Case c = base_case(fl.terms, {2, 4, 100, 100}, 31000 + r++);
    c.in = bf16();
    c.host_loss_out = true;
    c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseF32;
    c = finish(c, "IO");
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    RunResult out, in;
    CudaRunOptions o = offsets(64);
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &out));
    ASSERT_EQ(CULOSS_SUCCESS, out.status) << out.error;
    o.in_place = true;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &in));
    ASSERT_EQ(CULOSS_SUCCESS, in.status) << in.error;
    EXPECT_TRUE(in.guards_ok);
    EXPECT_TRUE(same_bits(out.loss, in.loss, "loss"));
    EXPECT_TRUE(same_bits(out.grad, in.grad, "gradient"));
  }
}

TEST_F(ElementwiseCuda, RepeatedCallsAreBitwiseDeterministic) {
  for (const Case& c : determinism_cases()) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    RunResult a, b, d;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &a));
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &b));
    CudaRunOptions ws;
    ws.ws = Ws::Exact;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, ws, &d));
    ASSERT_EQ(CULOSS_SUCCESS, a.status) << a.error;
    ASSERT_EQ(CULOSS_SUCCESS, b.status) << b.error;
    ASSERT_EQ(CULOSS_SUCCESS, d.status) << d.error;
    EXPECT_TRUE(same_bits(a.loss, b.loss, "loss (call 1 vs 2)"));
    EXPECT_TRUE(same_bits(a.grad, b.grad, "gradient (call 1 vs 2)"));
    EXPECT_TRUE(same_bits(a.loss, d.loss, "loss (call 1 vs 3)"));
    EXPECT_TRUE(same_bits(a.grad, d.grad, "gradient (call 1 vs 3)"));
  }
}

// Several calls in one buffer set without re-poisoning: the second call must overwrite, not
// accumulate into, loss_out and grad_input.
TEST_F(ElementwiseCuda, OutputsAreOverwrittenNotAccumulated) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    CudaTensor din(p.input), dtg(p.target);
    std::unique_ptr<CudaTensor> dw;
    if (p.has_weight) dw = std::make_unique<CudaTensor>(p.weight);
    CudaTensor dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, grad_dtype(c));
    CUDA_ASSERT_OK(cudaMemset(dgrad.data_ptr(), 0x3c, dgrad.nbytes()));  // finite garbage
    CUDA_ASSERT_OK(cudaMemset(dloss.data_ptr(), 0x3c, dloss.nbytes()));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(loss, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(),
                                             dgrad.dl(), c.grad_scale, nullptr, 0, nullptr)) << culoss_last_error();
    const TestTensor l1 = dloss.download(), g1 = dgrad.download();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(loss, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(),
                                             dgrad.dl(), c.grad_scale, nullptr, 0, nullptr)) << culoss_last_error();
    EXPECT_TRUE(same_bits(l1, dloss.download(), "loss"));
    EXPECT_TRUE(same_bits(g1, dgrad.download(), "gradient"));
    RunResult ref;
    ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &ref));
    EXPECT_TRUE(close(ref.loss, l1, value_tol(c), "loss vs CPU"));
    EXPECT_TRUE(close(ref.grad, g1, grad_tol(c), "gradient vs CPU"));
  }
}

TEST_F(ElementwiseCuda, ForwardOnlyLeavesTheGradientBufferAlone) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    CudaRunOptions o;
    o.with_grad = false;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
  }
}

TEST_F(ElementwiseCuda, ByteOffsetsAreHonoured) {
  for (const Case& c0 : plumbing_cases()) {
    Case c = c0;
    c.pixel_weight = true;
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    RunResult zero, aligned;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &zero));
    ASSERT_EQ(CULOSS_SUCCESS, zero.status) << zero.error;
    // 256-byte offsets keep every vector alignment: the same bits as without an offset.
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, offsets(256), &aligned));
    ASSERT_EQ(CULOSS_SUCCESS, aligned.status) << aligned.error;
    EXPECT_TRUE(aligned.guards_ok);
    EXPECT_TRUE(same_bits(zero.loss, aligned.loss, "loss (offset 256 vs 0)"));
    EXPECT_TRUE(same_bits(zero.grad, aligned.grad, "gradient (offset 256 vs 0)"));
    // One element of each tensor's own dtype (breaks vector alignment): same values as the CPU.
    CudaRunOptions o;
    o.off_in = static_cast<uint64_t>(p.input.elem_size());
    o.off_tg = static_cast<uint64_t>(p.target.elem_size()) * 3;
    o.off_w = 4;
    o.off_loss = c.loss_dtype.bits / 8;
    o.off_grad = grad_dtype(c).bits / 8;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
  }
}

// ---------------------------------------------------------------------------------------------
// Targets: CHECK_TARGETS=1 refuses, CHECK_TARGETS=0 treats out-of-range labels as ignored
// ---------------------------------------------------------------------------------------------

// Writes an integer label exactly (TestTensor::set goes through double).
void set_label(TestTensor& t, int64_t i, int64_t label) {
  uint8_t* q = t.bytes.data() + i * t.elem_size();
  if (t.dtype.code == kDLInt && t.dtype.bits == 64) std::memcpy(q, &label, 8);
  else if (t.dtype.code == kDLInt && t.dtype.bits == 32) { const int32_t v = static_cast<int32_t>(label); std::memcpy(q, &v, 4); }
  else *q = static_cast<uint8_t>(label);
}

struct BadLabel {
  Tgt tgt;
  int64_t value;
};

// The call is refused before anything is written, and the CPU backend agrees.
void expect_invalid_target(Problem& p) {
  CaseLoss loss(p);
  ASSERT_TRUE(loss.ok);
  for (bool host_loss : {false, true}) {
    SCOPED_TRACE(host_loss ? "host loss_out" : "device loss_out");
    RunResult res;
    CudaRunOptions o;
    o.host_loss_out = host_loss;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &res));
    EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, res.status) << res.error;
    EXPECT_STRNE("", res.error.c_str());
    EXPECT_TRUE(still_poisoned(res.grad)) << "gradient written by a refused call";
    EXPECT_TRUE(still_poisoned(res.loss)) << "loss_out written by a refused call";
    EXPECT_TRUE(res.guards_ok);
  }
  RunResult cpu;
  ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &cpu));
  EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, cpu.status) << cpu.error;
}

TEST_F(ElementwiseCuda, CheckTargetsRefusesOutOfRangeLabelsAndWritesNothing) {
  // Softmax-style kinds with C = 4 (labels in [0, 4) or IGNORE_INDEX) and the binary kinds with
  // the C = 1 mask (labels 0/1 or IGNORE_INDEX). uint8 targets use IGNORE_INDEX 255.
  const std::vector<BadLabel> softmax_bad = {{Tgt::IdxU8, 4}, {Tgt::IdxU8, 254}, {Tgt::IdxI32, 4},
                                             {Tgt::IdxI32, -1}, {Tgt::IdxI64, 5}, {Tgt::IdxI64, int64_t{1} << 40}};
  const std::vector<BadLabel> binary_bad = {{Tgt::IdxU8, 2}, {Tgt::IdxI32, 2}, {Tgt::IdxI32, -1},
                                            {Tgt::IdxI64, 3}};
  const std::vector<std::vector<Term>> softmax_losses = {
      {term(CULOSS_CROSS_ENTROPY)}, {term(CULOSS_MARGINAL_CE)},
      {with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX)}, {term(CULOSS_DICE), term(CULOSS_CROSS_ENTROPY)}};
  const std::vector<std::vector<Term>> binary_losses = {
      {term(CULOSS_BCE)}, {term(CULOSS_FOCAL)}, {term(CULOSS_COMBO)},
      {with_act(term(CULOSS_DICE), CULOSS_ACTIVATION_SIGMOID), term(CULOSS_BCE)}};
  int r = 0;
  for (bool binary : {false, true}) {
    for (const std::vector<Term>& losses : binary ? binary_losses : softmax_losses) {
      for (const BadLabel& b : binary ? binary_bad : softmax_bad) {
        Case c = base_case(losses, binary ? std::vector<int64_t>{2, 1, 160, 150} : std::vector<int64_t>{2, 4, 160, 150},
                           35000 + r);
        c.tgt = b.tgt;
        c.pixel_weight = r % 2 == 0;
        ++r;
        c = finish(c, "Chk");
        const Problem p0 = make_problem(c);
        const int64_t n = p0.target.numel();
        for (int64_t pos : {int64_t{0}, n / 2 + 1, n - 1}) {
          Problem p = p0;
          set_label(p.target, pos, b.value);
          ASSERT_EQ(b.value, p.target.get_int(pos));
          SCOPED_TRACE(describe(c) + " bad label " + std::to_string(b.value) + " at " + std::to_string(pos));
          ASSERT_NO_FATAL_FAILURE(expect_invalid_target(p));
        }
        // The same call on the unmodified target succeeds (the check is not over-eager).
        Problem ok = p0;
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(ok, CudaRunOptions{}));
      }
    }
  }
}

TEST_F(ElementwiseCuda, CheckTargetsRefusesBadDenseValues) {
  const double bad_values[] = {1.5, -0.25, NAN, INFINITY};
  int r = 0;
  for (const Flavour& fl : flavours()) {
    for (Tgt t : {Tgt::DenseF32, Tgt::DenseU8, Tgt::DenseIn}) {
      for (double v : bad_values) {
        if (t == Tgt::DenseU8 && !(v > 1.0)) continue;  // uint8 can only be too large
        Case c = base_case(fl.terms, {2, 4, 64, 64}, 36000 + r++);
        c.tgt = t;
        c.in = t == Tgt::DenseIn ? bf16() : f32();
        c = finish(c, "ChkD");
        Problem p = make_problem(c);
        const int64_t pos = p.target.numel() - 3;
        p.target.set(pos, t == Tgt::DenseU8 ? 2.0 : v);
        SCOPED_TRACE(describe(c) + " bad dense value " + std::to_string(p.target.get(pos)));
        ASSERT_NO_FATAL_FAILURE(expect_invalid_target(p));
      }
    }
  }
}

TEST_F(ElementwiseCuda, CheckTargetsRefusesBadPixelWeights) {
  int r = 0;
  for (const Flavour& fl : flavours()) {
    for (double v : {-1.0, static_cast<double>(NAN), static_cast<double>(INFINITY)}) {
      Case c = base_case(fl.terms, {2, 4, 64, 64}, 37000 + r++);
      c.pixel_weight = true;
      c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseF32;
      c = finish(c, "ChkW");
      Problem p = make_problem(c);
      p.weight.set(p.weight.numel() - 1, v);
      SCOPED_TRACE(describe(c) + " bad pixel weight " + std::to_string(v));
      CaseLoss loss(p);
      ASSERT_TRUE(loss.ok);
      RunResult res;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &res));
      EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, res.status) << res.error;
      EXPECT_TRUE(still_poisoned(res.grad));
      EXPECT_TRUE(still_poisoned(res.loss));
    }
  }
}

TEST_F(ElementwiseCuda, UncheckedOutOfRangeLabelsAreIgnoredLikeOnTheCpu) {
  const std::vector<BadLabel> bads = {{Tgt::IdxU8, 4}, {Tgt::IdxU8, 200}, {Tgt::IdxI32, 4},
                                      {Tgt::IdxI32, -1}, {Tgt::IdxI32, std::numeric_limits<int32_t>::min()},
                                      {Tgt::IdxI64, int64_t{1} << 40}, {Tgt::IdxI64, -(int64_t{1} << 40)},
                                      {Tgt::IdxI64, std::numeric_limits<int64_t>::max()}};
  int r = 0;
  for (const Flavour& fl : flavours()) {
    for (const BadLabel& b : bads) {
      Case c = base_case(fl.terms, fl.softmax_style ? std::vector<int64_t>{2, 4, 120, 130} : std::vector<int64_t>{2, 1, 120, 130},
                         38000 + r++);
      c.tgt = b.tgt;
      c.check_targets = 0;
      if (fl.has_none && r % 3 == 0) c.terms[0].reduction = CULOSS_REDUCTION_NONE;
      c.pixel_weight = r % 2 == 0;
      c.partial_annotation = true;
      c = finish(c, "NoChk");
      if (!is_index(c.tgt)) continue;  // binary + softmax-style SUMs need dense targets
      Problem p = make_problem(c);
      Problem ignored = p;  // the same problem with the bad labels written as IGNORE_INDEX
      std::mt19937_64 rng(c.seed);
      const int64_t bad = (!fl.softmax_style && b.value == 4) ? 2 : b.value;
      for (int j = 0; j < 200; ++j) {
        const int64_t pos = j == 0 ? 0 : j == 1 ? p.target.numel() - 1 : static_cast<int64_t>(rng() % static_cast<uint64_t>(p.target.numel()));
        set_label(p.target, pos, bad);
        set_label(ignored.target, pos, p.ignore_value);
      }
      SCOPED_TRACE(describe(c) + " unchecked label " + std::to_string(bad));
      RunResult got;
      ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}, &got));
      CaseLoss loss(ignored);
      ASSERT_TRUE(loss.ok);
      RunResult ref;
      ASSERT_NO_FATAL_FAILURE(run_cpu(ignored, loss, &ref));
      ASSERT_EQ(CULOSS_SUCCESS, ref.status) << ref.error;
      EXPECT_TRUE(close(ref.loss, got.loss, value_tol(c), "loss (bad labels vs ignored labels)"));
      EXPECT_TRUE(close(ref.grad, got.grad, grad_tol(c), "gradient (bad labels vs ignored labels)"));
    }
  }
}

TEST_F(ElementwiseCuda, UncheckedDenseValuesAreUsedAsGiven) {
  int r = 0;
  for (const Flavour& fl : flavours()) {
    Case c = base_case(fl.terms, {2, 3, 50, 40}, 39000 + r++);
    c.tgt = Tgt::DenseF32;
    c.check_targets = 0;
    c = finish(c, "NoChkD");
    Problem p = make_problem(c);
    for (int64_t i = 0; i < p.target.numel(); i += 97) p.target.set(i, i % 2 ? 1.5 : -0.25);
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}));
  }
}

// ---------------------------------------------------------------------------------------------
// Edge inputs
// ---------------------------------------------------------------------------------------------

TEST_F(ElementwiseCuda, NonFiniteGradScaleIsRefused) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    CaseLoss loss(p);
    ASSERT_TRUE(loss.ok);
    for (double gs : {static_cast<double>(NAN), static_cast<double>(INFINITY), -static_cast<double>(INFINITY)}) {
      Problem q = p;
      q.c.grad_scale = gs;
      SCOPED_TRACE(describe(c) + " grad_scale " + std::to_string(gs));
      RunResult r;
      ASSERT_NO_FATAL_FAILURE(run_cuda(q, loss, CudaRunOptions{}, &r));
      EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.status) << r.error;
      EXPECT_TRUE(still_poisoned(r.grad));
      EXPECT_TRUE(still_poisoned(r.loss));
    }
  }
}

TEST_F(ElementwiseCuda, EmptyTensorsGiveZeroLoss) {
  int r = 0;
  for (const Flavour& fl : flavours()) {
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{0, 4, 8, 8}, std::vector<int64_t>{2, 4, 0, 8},
                                             std::vector<int64_t>{0, 3}}) {
      for (int red : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE}) {
        if (red == CULOSS_REDUCTION_NONE && !fl.has_none) continue;
        Case c = base_case(fl.terms, shape, 43000 + r++);
        for (Term& t : c.terms) t.reduction = red;
        c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseF32;
        c = finish(c, "Empty");
        Problem p = make_problem(c);
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}));
        if (red != CULOSS_REDUCTION_NONE) {
          // MEAN and SUM of nothing: exactly 0, and NULL data is allowed for empty tensors.
          SCOPED_TRACE(describe(c) + " [NULL data]");
          CaseLoss loss(p);
          ASSERT_TRUE(loss.ok);
          CudaTensor din(p.input), dtg(p.target), dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, c.in);
          dloss.poison();
          DLTensor in = *din.dl(), tg = *dtg.dl(), g = *dgrad.dl();
          in.data = nullptr;
          tg.data = nullptr;
          g.data = nullptr;
          const culoss_status s = culoss_compute(loss, &in, &tg, nullptr, dloss.dl(), &g, 1.0, nullptr, 0, nullptr);
          EXPECT_EQ(CULOSS_SUCCESS, s) << culoss_last_error();
          EXPECT_EQ(0.0, dloss.download().get(0));
        }
      }
    }
  }
}

TEST_F(ElementwiseCuda, SaturatedInputsStayFiniteAndMatchTheCpu) {
  int r = 0;
  for (const Flavour& fl : flavours()) {
    for (DLDataType d : {f32(), f16(), f64()}) {
      bool has_focal = false;
      for (const Term& t : fl.terms) has_focal = has_focal || t.kind == CULOSS_FOCAL;
      for (double gamma : has_focal ? std::vector<double>{0.0, 0.5, 2.0} : std::vector<double>{2.0}) {
        Case c = base_case(fl.terms, {2, 3, 40, 40}, 44000 + r++);
        c.in = d;
        c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseU8;
        for (Term& t : c.terms)
          if (t.kind == CULOSS_FOCAL) t.gamma = gamma;
        c = finish(c, "Sat");
        Problem p = make_problem(c);
        bool probs = false;
        for (const Term& t : c.terms) probs = probs || activation_of(t) == CULOSS_ACTIVATION_NONE;
        std::mt19937_64 rng(c.seed);
        const double big = d.bits == 16 ? 6.0e4 : 1.0e4;
        for (int64_t i = 0; i < p.input.numel(); ++i) {
          const uint64_t u = rng() % 4;
          double x;
          if (probs) x = u < 2 ? static_cast<double>(u) : (u == 2 ? 0.0 : 1.0);
          else x = u == 0 ? big : u == 1 ? -big : u == 2 ? 0.0 : (rng() % 2 ? 30.0 : -30.0);
          p.input.set(i, x);
        }
        RunResult got;
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}, &got));
        for (int64_t i = 0; i < got.loss.numel(); ++i) EXPECT_TRUE(std::isfinite(got.loss.get(i))) << "loss[" << i << "]";
        int64_t nonfinite = 0;
        for (int64_t i = 0; i < got.grad.numel(); ++i) nonfinite += std::isfinite(got.grad.get(i)) ? 0 : 1;
        EXPECT_EQ(0, nonfinite) << "non-finite gradient elements";
      }
    }
  }
}

// docs/reference.md / SEMANTICS.md: with ACTIVATION_NONE the binary losses clamp p to
// [1e-7, 1 − 1e-7] (zero gradient outside). Probabilities of exactly 0 and 1 are representable in
// every dtype, so each backend must give the contract's values whatever its compute type:
// x = 1, t = 0 and x = 0, t = 1 cost −log(1e-7) = 16.118095650958...; x = t costs −log(1 − 1e-7).
TEST_F(ElementwiseCuda, ProbabilityClampIsTheContractsOnEveryBackendAndDtype) {
  const double big = -std::log(1e-7), small = -std::log1p(-1e-7);
  const double xs[] = {1.0, 0.0, 1.0, 0.0}, ts[] = {0.0, 1.0, 1.0, 0.0};
  const double want[] = {big, big, small, small};
  int r = 0;
  for (DLDataType d : {f32(), f64(), f16(), bf16()}) {
    for (int which = 0; which < 2; ++which) {  // BCE; focal with gamma 0 and alpha < 0 (= BCE)
      Term t = with_act(term(which == 0 ? CULOSS_BCE : CULOSS_FOCAL), CULOSS_ACTIVATION_NONE);
      t.reduction = CULOSS_REDUCTION_NONE;
      if (which == 1) {
        t.gamma = 0.0;
        t.alpha = -1.0;
      }
      Case c = base_case({t}, {1, 1, 2, 2}, 46000 + r++);
      c.in = d;
      c.tgt = Tgt::DenseF32;
      c.ignore_frac = 0.0;
      c = finish(c, "Clamp");
      Problem p = make_problem(c);
      for (int i = 0; i < 4; ++i) {
        p.input.set(i, xs[i]);
        p.target.set(i, ts[i]);
      }
      SCOPED_TRACE(describe(c));
      CaseLoss loss(p);
      ASSERT_TRUE(loss.ok);
      RunResult cpu, gpu;
      ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &cpu));
      ASSERT_EQ(CULOSS_SUCCESS, cpu.status) << cpu.error;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &gpu));
      ASSERT_EQ(CULOSS_SUCCESS, gpu.status) << gpu.error;
      for (int i = 0; i < 4; ++i) {
        SCOPED_TRACE("element " + std::to_string(i) + ": x = " + std::to_string(xs[i]) + ", t = " + std::to_string(ts[i]));
        const double tol = 1e-5 * want[i] + 1e-6;
        EXPECT_NEAR(want[i], cpu.loss.get(i), tol) << "CPU backend";
        EXPECT_NEAR(want[i], gpu.loss.get(i), tol) << "CUDA backend";
        EXPECT_EQ(0.0, cpu.grad.get(i)) << "CPU backend: clamped probabilities have zero gradient";
        EXPECT_EQ(0.0, gpu.grad.get(i)) << "CUDA backend: clamped probabilities have zero gradient";
      }
    }
  }
}

// With more than one device, tensors on device 1 run there (and the caller's current device is
// left alone).
TEST_F(ElementwiseCuda, SecondDeviceWorks) {
  if (testing_util::cuda_device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    CudaRunOptions o;
    o.device_id = 1;
    CUDA_ASSERT_OK(cudaSetDevice(0));
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    int cur = -1;
    CUDA_ASSERT_OK(cudaGetDevice(&cur));
    EXPECT_EQ(0, cur);
  }
}

}  // namespace

// Data parallelism through the statistics API on the CUDA backend: global batches split into
// shards along N, each shard's statistics computed on the GPU (a float64 device vector), summed,
// and each rank finished with culoss_compute_from_stats on the GPU. For a few kinds and every
// input dtype the loss (the same bits on every rank) and the concatenated gradient must match one
// culoss_compute call on the whole batch, on the GPU and on the CPU backend (tolerances of
// tests/cuda/compare.hpp, as in region_cuda_test.cpp); the statistics vectors of the CUDA backend
// must match the CPU backend's. Every test skips without a CUDA device.
//
// The comparison machinery is tests/losses/distributed_harness.hpp (shared with the CPU test).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/cuda_tensor.hpp"
#include "losses/distributed_harness.hpp"
#include "losses/elementwise_check.hpp"
#include "losses/lovasz_harness.hpp"
#include "losses/region_harness.hpp"
#include "losses/region_random.hpp"
// After lovasz_harness.hpp: both declare still_poisoned(const TestTensor&), and the harness's
// unqualified call would otherwise be ambiguous (argument-dependent lookup).
#include "cuda/compare.hpp"

namespace {

using dist_test::Batch;
using dist_test::CallOut;
using dist_test::check_split;
using dist_test::CheckTols;
using dist_test::CpuRunner;
using region_test::RegionCase;
using region_test::RegionOptions;
using testing_util::CudaStream;
using testing_util::CudaTensor;
using testing_util::f32;
using testing_util::f64;
using testing_util::Loss;
using testing_util::TestTensor;

// ---------------------------------------------------------------------------------------------
// The CUDA runner: the shard's host tensors are uploaded into guarded device tensors, outputs
// start poisoned (NaN bytes), the statistics live on the device; everything is downloaded.
// ---------------------------------------------------------------------------------------------

struct CudaRunner : dist_test::Runner {
  bool host_loss_out = false;  // loss_out on the CPU (the call waits for the value)
  bool caller_ws = false;      // one workspace of culoss_workspace_size bytes per rank
  cudaStream_t stream = nullptr;
  int device = 0;

  std::unique_ptr<CudaTensor> ws;
  size_t ws_bytes = 0;

  void begin_rank() override { ws.reset(); }

  // Device copies of a batch.
  struct Dev {
    CudaTensor input, target;
    std::unique_ptr<CudaTensor> weight;
    bool guards() const {
      return input.guards_intact() && target.guards_intact() && (!weight || weight->guards_intact());
    }
  };
  std::unique_ptr<Dev> upload(const Batch& b) {
    auto d = std::unique_ptr<Dev>(new Dev{CudaTensor(b.input, 0, device), CudaTensor(b.target, 0, device), nullptr});
    if (b.has_weight) d->weight = std::make_unique<CudaTensor>(b.weight, 0, device);
    return d;
  }

  // The workspace of this call (the rank's buffer, refilled with 0xff bytes), or NULL.
  bool workspace(culoss_loss h, Dev& d, CallOut* out, void** ptr, size_t* bytes) {
    *ptr = nullptr;
    *bytes = 0;
    if (!caller_ws) return true;
    size_t need = 0;
    const culoss_status st = culoss_workspace_size(h, d.input.dl(), d.target.dl(), &need);
    if (st != CULOSS_SUCCESS) {
      out->status = st;
      out->call = "culoss_workspace_size";
      out->error = culoss_last_error();
      return false;
    }
    if (!ws || need != ws_bytes) {
      ws = std::make_unique<CudaTensor>(std::vector<int64_t>{static_cast<int64_t>(need)},
                                        testing_util::u8(), 0, device);
      ws_bytes = need;
    }
    ws->poison();
    *ptr = ws->data_ptr();
    *bytes = ws_bytes;
    return true;
  }

  // Waits for the call's work; a CUDA error becomes the result's status.
  static void sync(CallOut* r) {
    const cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess && r->status == CULOSS_SUCCESS) {
      r->status = CULOSS_ERROR_CUDA;
      r->error = std::string("after the call: ") + cudaGetErrorString(e);
    }
  }

  CallOut run(culoss_loss h, const Batch& b, const std::vector<double>* global) {
    CallOut r;
    std::unique_ptr<Dev> d = upload(b);
    void* wsp = nullptr;
    size_t wsn = 0;
    if (global != nullptr && !workspace(h, *d, &r, &wsp, &wsn)) return r;
    const std::vector<int64_t> ls = b.loss_shape(b.N());
    CudaTensor dloss(ls, b.loss_dtype, 0, device);
    dloss.poison();
    TestTensor hloss(ls, b.loss_dtype);
    hloss.poison();
    CudaTensor dgrad(b.input.shape, b.grad_dtype, 0, device);
    dgrad.poison();
    std::unique_ptr<CudaTensor> dstats;
    TestTensor hstats;
    if (global != nullptr) {
      hstats = TestTensor({static_cast<int64_t>(global->size())}, f64());
      for (size_t i = 0; i < global->size(); ++i) hstats.set(static_cast<int64_t>(i), (*global)[i]);
      dstats = std::make_unique<CudaTensor>(hstats, 0, device);
    }
    CUDA_EXPECT_OK(cudaDeviceSynchronize());
    DLTensor* loss_dl = host_loss_out ? hloss.dl() : dloss.dl();
    if (global == nullptr) {
      r.call = "culoss_compute";
      r.status = culoss_compute(h, d->input.dl(), d->target.dl(), d->weight ? d->weight->dl() : nullptr,
                                loss_dl, dgrad.dl(), b.grad_scale, nullptr, 0, stream);
    } else {
      r.call = "culoss_compute_from_stats";
      r.status = culoss_compute_from_stats(h, d->input.dl(), d->target.dl(),
                                           d->weight ? d->weight->dl() : nullptr, dstats->dl(),
                                           loss_dl, dgrad.dl(), b.grad_scale, wsp, wsn, stream);
    }
    r.error = culoss_last_error();
    sync(&r);
    r.loss = host_loss_out ? hloss : dloss.download();
    r.grad = dgrad.download();
    r.workspace_ok = d->guards() && dloss.guards_intact() && dgrad.guards_intact() &&
                     (!ws || ws->guards_intact()) && (!dstats || dstats->guards_intact());
    if (dstats && r.status == CULOSS_SUCCESS && dstats->download().bytes != hstats.bytes) {
      r.status = CULOSS_ERROR_INTERNAL;
      r.error = "culoss_compute_from_stats wrote into its (const) stats tensor";
    }
    return r;
  }

  CallOut compute(culoss_loss h, const Batch& b) override { return run(h, b, nullptr); }

  CallOut from_stats(culoss_loss h, const Batch& b, const std::vector<double>& global) override {
    return run(h, b, &global);
  }

  CallOut stats(culoss_loss h, const Batch& b) override {
    CallOut r;
    std::unique_ptr<Dev> d = upload(b);
    r.call = "culoss_stats_size";
    r.status = culoss_stats_size(h, d->input.dl(), d->target.dl(), &r.count);
    if (r.status != CULOSS_SUCCESS) {
      r.error = culoss_last_error();
      return r;
    }
    void* wsp = nullptr;
    size_t wsn = 0;
    if (!workspace(h, *d, &r, &wsp, &wsn)) return r;
    CudaTensor dstats({r.count}, f64(), 0, device);
    dstats.poison();
    CUDA_EXPECT_OK(cudaDeviceSynchronize());
    r.call = "culoss_compute_stats";
    r.status = culoss_compute_stats(h, d->input.dl(), d->target.dl(),
                                    d->weight ? d->weight->dl() : nullptr, dstats.dl(), wsp, wsn,
                                    stream);
    r.error = culoss_last_error();
    sync(&r);
    r.stats = dstats.download().values();
    r.workspace_ok = d->guards() && dstats.guards_intact() && (!ws || ws->guards_intact());
    return r;
  }
};

class DistributedCuda : public ::testing::Test {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

// One global batch and its descriptor.
struct DCase {
  std::string name;
  Batch batch;
  std::unique_ptr<Loss> h;
  bool lovasz = false;
};

Batch batch_of(const RegionCase& rc) {
  using region_test::without_axis;
  Batch b;
  b.input = TestTensor(rc.shape, rc.input_dtype);
  for (int64_t i = 0; i < b.input.numel(); ++i) b.input.set(i, rc.input[static_cast<size_t>(i)]);
  if (rc.index_target) {
    b.target = TestTensor(without_axis(rc.shape, rc.opt.class_axis), rc.target_dtype);
    for (int64_t i = 0; i < b.target.numel(); ++i) {
      const int64_t lab = rc.labels[static_cast<size_t>(i)];
      if (rc.target_dtype.code == kDLInt && rc.target_dtype.bits == 64)
        std::memcpy(b.target.bytes.data() + 8 * i, &lab, 8);
      else
        b.target.set(i, static_cast<double>(lab));
    }
  } else {
    b.target = TestTensor(rc.shape, rc.target_dtype);
    for (int64_t i = 0; i < b.target.numel(); ++i) b.target.set(i, rc.target[static_cast<size_t>(i)]);
  }
  b.has_weight = !rc.pixel_weight.empty();
  if (b.has_weight) {
    b.weight = TestTensor(without_axis(rc.shape, rc.opt.class_axis), f32());
    for (int64_t i = 0; i < b.weight.numel(); ++i) b.weight.set(i, rc.pixel_weight[static_cast<size_t>(i)]);
  }
  b.loss_shape = [rc](int64_t n) {
    RegionCase c = rc;
    c.shape[0] = n;
    return region_test::loss_shape(c);
  };
  b.grad_dtype = rc.input_dtype;
  b.grad_scale = rc.grad_scale;
  b.what = region_test::describe_case(rc);
  return b;
}

std::string dtype_name(DLDataType d) {
  if (d.code == kDLBfloat) return "bf16";
  return "f" + std::to_string(d.bits);
}

const DLDataType kInputDtypes[] = {testing_util::f32(), testing_util::f64(), testing_util::f16(),
                                   testing_util::bf16()};

// The region / element-wise / SUM / Lovász cases for one input dtype; `seed` varies the data.
std::vector<DCase> cases_for(DLDataType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<DCase> out;
  auto add_region = [&](const std::string& name, RegionCase rc) {
    rc.input_dtype = dt;
    DCase c;
    c.name = name;
    c.h = std::make_unique<Loss>(rc.opt.kind);
    std::string err;
    EXPECT_EQ(CULOSS_SUCCESS, region_test::configure(*c.h, rc.opt, &err)) << err;
    c.batch = batch_of(rc);
    out.push_back(std::move(c));
  };
  {
    region_test::RegionConstraints k;
    k.kind = CULOSS_DICE;
    k.N = 5;
    k.C = 4;
    k.layout = region_test::kLayoutNCHW;
    k.target = region_test::kIndexI64;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.class_weights = 1;
    k.max_dim = 9;
    RegionCase rc = region_test::random_region_case(rng, k);
    rc.opt.include_background = false;
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    add_region("dice_macro_index", rc);
    rc.opt.reduction = CULOSS_REDUCTION_NONE;
    add_region("dice_macro_none", rc);
  }
  {
    region_test::RegionConstraints k;
    k.kind = CULOSS_GENERALIZED_DICE;
    k.N = 4;
    k.C = 3;
    k.layout = region_test::kLayoutNHWC;
    k.target = region_test::kDenseF32;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.pixel_weight = 1;
    k.batch = 1;
    k.reduction = CULOSS_REDUCTION_SUM;
    k.max_dim = 9;
    add_region("gdice_batch_dense_pw", region_test::random_region_case(rng, k));
  }
  {
    region_test::RegionConstraints k;
    k.kind = CULOSS_TVERSKY;
    k.N = 5;
    k.C = 2;
    k.layout = region_test::kLayoutNCL;
    k.target = region_test::kDenseU8;
    k.activation = CULOSS_ACTIVATION_SIGMOID;
    k.average = CULOSS_AVERAGE_MICRO;
    k.reduction = CULOSS_REDUCTION_MEAN;
    RegionCase rc = region_test::random_region_case(rng, k);
    rc.opt.skip_empty = true;
    add_region("tversky_micro_sigmoid", rc);
  }
  {
    region_test::RegionConstraints k;
    k.kind = CULOSS_MCC;
    k.N = 5;
    k.C = 3;
    k.layout = region_test::kLayoutNCHW;
    k.target = region_test::kDenseF32;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.pixel_weight = 1;
    k.soft_label = 1;
    k.max_dim = 9;
    RegionCase rc = region_test::random_region_case(rng, k);
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    rc.opt.smooth_dr = 1e-5;  // ε = 0 leaves rounding residues of exact zeros on tiny images
    add_region("mcc_soft_dense_pw", rc);
    rc.opt.batch = true;
    rc.opt.reduction = CULOSS_REDUCTION_NONE;
    add_region("mcc_soft_batch_none", rc);
  }
  {
    region_test::ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.N = 5;
    k.C = 4;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.layout = region_test::kLayoutNHWC;
    k.target = region_test::kIndexI32;
    k.ignored = 1;
    k.class_weights = 1;
    k.check_off = 0;
    k.reduction = CULOSS_REDUCTION_MEAN;
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    rc.opt.label_smoothing = 0.1;
    add_region("ce_weights_ignore_ls", rc);
  }
  {
    region_test::ElemConstraints k;
    k.kind = CULOSS_BCE;
    k.N = 4;
    k.C = 3;
    k.activation = CULOSS_ACTIVATION_SIGMOID;
    k.layout = region_test::kLayoutNCHW;
    k.target = region_test::kDenseF64;
    k.reduction = CULOSS_REDUCTION_NONE;
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    rc.opt.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
    rc.opt.pos_weight = {0.5, 2.0, 3.0};
    add_region("bce_batchfreq_posw_none", rc);
    rc.opt.reduction = CULOSS_REDUCTION_MEAN;
    add_region("bce_batchfreq_posw_mean", rc);
  }
  {
    region_test::ElemConstraints k;
    k.kind = CULOSS_FOCAL;
    k.N = 5;
    k.C = 3;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.layout = region_test::kLayoutNC;
    k.target = region_test::kIndexU8;
    k.reduction = CULOSS_REDUCTION_SUM;
    add_region("focal_softmax_sum", region_test::random_elementwise_case(rng, k));
  }
  {
    // SUM: Dice (BATCH) + cross-entropy on class indices.
    region_test::ElemConstraints k;
    k.kind = CULOSS_CROSS_ENTROPY;
    k.N = 5;
    k.C = 3;
    k.activation = CULOSS_ACTIVATION_SOFTMAX;
    k.layout = region_test::kLayoutNCHW;
    k.target = region_test::kIndexI64;
    k.check_off = 0;
    k.reduction = CULOSS_REDUCTION_MEAN;
    RegionCase rc = region_test::random_elementwise_case(rng, k);
    rc.input_dtype = dt;
    RegionOptions dice = region_test::default_options(CULOSS_DICE);
    dice.class_axis = rc.opt.class_axis;
    dice.ignore_index = rc.opt.ignore_index;
    dice.batch = true;
    dice.include_background = false;
    DCase c;
    c.name = "sum_dice_ce";
    c.h = std::make_unique<Loss>(CULOSS_SUM);
    Loss t1(CULOSS_DICE), t2(CULOSS_CROSS_ENTROPY);
    EXPECT_EQ(CULOSS_SUCCESS, region_test::configure(t1, dice));
    EXPECT_EQ(CULOSS_SUCCESS, region_test::configure(t2, rc.opt));
    EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(*c.h, t1, 0.7));
    EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(*c.h, t2, 1.3));
    rc.opt.kind = CULOSS_SUM;
    c.batch = batch_of(rc);
    out.push_back(std::move(c));
  }
  // Lovász per image.
  for (culoss_kind kind : {CULOSS_LOVASZ_SOFTMAX, CULOSS_LOVASZ_HINGE}) {
    lovasz_test::LCase lc;
    lc.kind = kind;
    lc.per_image = 1;
    lc.in = dt;
    lc.shape = {5, 3, 6, 5};
    lc.tgt = kind == CULOSS_LOVASZ_SOFTMAX ? lovasz_test::Tgt::IdxI64 : lovasz_test::Tgt::DenseF32;
    lc.pixel_weight = kind == CULOSS_LOVASZ_HINGE;
    lc.reduction = kind == CULOSS_LOVASZ_SOFTMAX ? CULOSS_REDUCTION_MEAN : CULOSS_REDUCTION_NONE;
    lc.seed = seed;
    const lovasz_test::LData d = lovasz_test::make_data(lc);
    DCase c;
    c.name = kind == CULOSS_LOVASZ_SOFTMAX ? "lovasz_softmax_per_image" : "lovasz_hinge_per_image";
    c.lovasz = true;
    c.h = std::make_unique<Loss>(kind);
    EXPECT_TRUE(lovasz_test::configure(*c.h, d));
    Batch& b = c.batch;
    b.input = d.input;
    b.target = d.target;
    b.has_weight = d.has_weight;
    if (d.has_weight) b.weight = d.weight;
    const lovasz_test::LCase cc = d.c;
    const int64_t C = d.C;
    b.loss_shape = [cc, C](int64_t n) { return lovasz_test::loss_shape_of(cc, n, C); };
    b.loss_dtype = cc.loss_dtype;
    b.grad_dtype = lovasz_test::grad_dtype(cc);
    b.what = lovasz_test::describe(cc);
    out.push_back(std::move(c));
  }
  // Half-precision inputs: every other case writes a float32 gradient.
  const bool half = dt.bits == 16;
  for (size_t i = 0; i < out.size(); ++i) {
    if (half && i % 2 == 1) out[i].batch.grad_dtype = f32();
    out[i].name += "_" + dtype_name(dt) + "_grad" + dtype_name(out[i].batch.grad_dtype);
    out[i].batch.what = out[i].name + ": " + out[i].batch.what;
  }
  return out;
}

// Tolerances of compare.hpp (CUDA against CPU) for the shard-vs-single comparisons.
CheckTols cuda_tols(const Batch& b) {
  const DLDataType in = b.input.dtype;
  const testing_util::Tol v = testing_util::value_tol(in, b.loss_dtype);
  const testing_util::Tol g = testing_util::grad_tol(in, b.grad_dtype);
  CheckTols t;
  t.loss = dist_test::Tol{v.rtol, v.atol_frac, v.atol, v.ulps, b.loss_dtype};
  t.grad = dist_test::Tol{g.rtol, g.atol_frac, g.atol, g.ulps, b.grad_dtype};
  const bool in64 = in.code == kDLFloat && in.bits == 64;
  t.stats = in64 ? dist_test::Tol{1e-9, 1e-11} : dist_test::Tol{2e-5, 2e-6};
  return t;
}

const std::vector<std::vector<int64_t>> kSplits = {{5}, {2, 3}, {1, 1, 3}, {3, 1, 1}};

std::vector<std::vector<int64_t>> splits_of(int64_t N) {
  if (N == 5) return kSplits;
  return {{N}, {1, N - 1}, {N - 1, 1}};
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

// Shards on the GPU against one CUDA call on the whole batch, and against the CPU backend's call
// (Lovász: the CUDA call only; CUDA sorts float32 error keys, see SEMANTICS).
TEST_F(DistributedCuda, ShardsMatchTheWholeBatchEveryDtype) {
  for (DLDataType dt : kInputDtypes)
    for (uint32_t seed : {11u, 12u}) {
      std::vector<DCase> cases = cases_for(dt, seed);
      for (DCase& c : cases) {
        CudaRunner gpu;
        CpuRunner cpu;
        const CheckTols tol = cuda_tols(c.batch);
        for (const std::vector<int64_t>& s : splits_of(c.batch.N())) {
          EXPECT_TRUE(check_split(*c.h, c.batch, s, gpu, tol)) << c.name << " seed " << seed;
          if (!c.lovasz) {
            EXPECT_TRUE(check_split(*c.h, c.batch, s, gpu, tol, nullptr, &cpu))
                << c.name << " (vs the CPU backend's single call) seed " << seed;
          }
        }
      }
    }
}

// The statistics vector of a shard: CUDA against CPU, same count.
TEST_F(DistributedCuda, StatsVectorsMatchTheCpuBackend) {
  for (DLDataType dt : kInputDtypes) {
    std::vector<DCase> cases = cases_for(dt, 21);
    for (DCase& c : cases) {
      CudaRunner gpu;
      CpuRunner cpu;
      const CheckTols tol = cuda_tols(c.batch);
      int64_t begin = 0;
      for (int64_t n : {int64_t{2}, int64_t{1}, c.batch.N() - 3}) {
        const Batch s = dist_test::shard_of(c.batch, begin, n);
        begin += n;
        const CallOut a = cpu.stats(*c.h, s), b = gpu.stats(*c.h, s);
        ASSERT_TRUE(a.ok()) << a.call << ": " << a.error << "\n  " << c.batch.what;
        ASSERT_TRUE(b.ok()) << b.call << ": " << b.error << "\n  " << c.batch.what;
        EXPECT_EQ(a.count, b.count) << c.name;
        EXPECT_TRUE(b.workspace_ok) << c.name << ": a guard byte changed";
        EXPECT_TRUE(dist_test::close_values("CUDA stats vs CPU stats", b.stats, a.stats, tol.stats))
            << c.batch.what;
      }
    }
  }
}

// loss_out on the host, a caller workspace of culoss_workspace_size bytes shared by a rank's
// compute_stats and compute_from_stats, a non-default stream: the same results.
TEST_F(DistributedCuda, HostLossOutCallerWorkspaceAndStream) {
  CudaStream stream(cudaStreamNonBlocking);
  for (DLDataType dt : {testing_util::f32(), testing_util::bf16()}) {
    std::vector<DCase> cases = cases_for(dt, 31);
    for (DCase& c : cases) {
      CudaRunner gpu;
      gpu.host_loss_out = true;
      gpu.caller_ws = true;
      gpu.stream = stream.get();
      const CheckTols tol = cuda_tols(c.batch);
      for (const std::vector<int64_t>& s : splits_of(c.batch.N()))
        EXPECT_TRUE(check_split(*c.h, c.batch, s, gpu, tol)) << c.name;
    }
  }
}

// Bitwise: the same shard run twice gives the same statistics; the ranks' losses are the same
// bits (checked inside check_split).
TEST_F(DistributedCuda, StatsAreDeterministic) {
  std::vector<DCase> cases = cases_for(testing_util::f32(), 41);
  for (DCase& c : cases) {
    CudaRunner gpu;
    const Batch s = dist_test::shard_of(c.batch, 1, 3);
    const CallOut a = gpu.stats(*c.h, s), b = gpu.stats(*c.h, s);
    ASSERT_TRUE(a.ok() && b.ok()) << a.error << b.error;
    EXPECT_EQ(0, std::memcmp(a.stats.data(), b.stats.data(), a.stats.size() * sizeof(double))) << c.name;
  }
}

// The statistics tensor must be on the input's device.
TEST_F(DistributedCuda, StatsOnAnotherDeviceRefused) {
  Loss h(CULOSS_DICE);
  TestTensor input({2, 3, 4, 4}, f32()), target({2, 4, 4}, testing_util::i64());
  input.fill(0.25);
  CudaTensor din(input), dtg(target);
  int64_t count = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_stats_size(h, din.dl(), dtg.dl(), &count)) << culoss_last_error();
  // CUDA inputs, CPU stats.
  TestTensor hstats({count}, f64());
  hstats.poison();
  const std::vector<uint8_t> before = hstats.bytes;
  EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE,
            culoss_compute_stats(h, din.dl(), dtg.dl(), nullptr, hstats.dl(), nullptr, 0, nullptr));
  EXPECT_NE(std::string(culoss_last_error()).find("stats"), std::string::npos) << culoss_last_error();
  EXPECT_EQ(before, hstats.bytes);
  CudaTensor dloss(std::vector<int64_t>{}, f64()), dgrad(input.shape, f32());
  EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE,
            culoss_compute_from_stats(h, din.dl(), dtg.dl(), nullptr, hstats.dl(), dloss.dl(),
                                      dgrad.dl(), 1.0, nullptr, 0, nullptr));
  EXPECT_NE(std::string(culoss_last_error()).find("stats"), std::string::npos) << culoss_last_error();
  // CPU inputs, CUDA stats.
  CudaTensor dstats({count}, f64());
  TestTensor loss({}, f64()), grad(input.shape, f32());
  EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE,
            culoss_compute_stats(h, input.dl(), target.dl(), nullptr, dstats.dl(), nullptr, 0, nullptr));
  EXPECT_NE(std::string(culoss_last_error()).find("stats"), std::string::npos) << culoss_last_error();
  EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE,
            culoss_compute_from_stats(h, input.dl(), target.dl(), nullptr, dstats.dl(), loss.dl(),
                                      grad.dl(), 1.0, nullptr, 0, nullptr));
  EXPECT_NE(std::string(culoss_last_error()).find("stats"), std::string::npos) << culoss_last_error();
  // Another GPU.
  if (testing_util::cuda_device_count() >= 2) {
    CudaTensor other({count}, f64(), 0, 1);
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE,
              culoss_compute_stats(h, din.dl(), dtg.dl(), nullptr, other.dl(), nullptr, 0, nullptr));
    EXPECT_NE(std::string(culoss_last_error()).find("stats"), std::string::npos) << culoss_last_error();
  }
}

// Stats overlapping grad_input on the device: refused.
TEST_F(DistributedCuda, StatsOverlappingGradRefused) {
  Loss h(CULOSS_DICE);
  TestTensor input({2, 3, 4, 4}, f64()), target({2, 4, 4}, testing_util::i64());
  input.fill(0.25);
  CudaTensor din(input), dtg(target), dgrad(input.shape, f64()), dloss(std::vector<int64_t>{}, f64());
  int64_t count = 0;
  ASSERT_EQ(CULOSS_SUCCESS, culoss_stats_size(h, din.dl(), dtg.dl(), &count)) << culoss_last_error();
  ASSERT_LE(count, input.numel());
  std::vector<int64_t> shape{count};
  DLTensor s = *dgrad.dl();  // the first `count` elements of grad_input
  s.ndim = 1;
  s.shape = shape.data();
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
            culoss_compute_from_stats(h, din.dl(), dtg.dl(), nullptr, &s, dloss.dl(), dgrad.dl(), 1.0,
                                      nullptr, 0, nullptr));
  EXPECT_NE(std::string(culoss_last_error()).find("stats"), std::string::npos) << culoss_last_error();
}

}  // namespace

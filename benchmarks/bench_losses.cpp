// culoss_bench: every loss kind (value, and value + gradient) on the CPU and on a CUDA device.
//
// Names: <device>/<kind>/<fwd|fwd_bwd>/<shape>/<input dtype>/<target>/<activation>[/ign<k>]
//   e.g. cuda/Dice/fwd_bwd/16x4x512x512/bf16/u8/softmax/ign5
//
// CPU: small shapes only (wall-clock time). CUDA: the shapes of benchmarks/README.md (performance
// targets), timed with CUDA events around the call alone (manual time), a caller-provided workspace
// (no allocation on the hot path), CHECK_TARGETS=0, loss_out on the device, and the L2 flushed
// before every iteration by a 64 MiB cudaMemsetAsync outside the timed region. Without a device the
// CUDA benchmarks are skipped with "no CUDA device". See benchmarks/README.md for the counters.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace culoss_bench {
namespace {

// The kinds benchmarked; a new kind is one line. `fits` says which problems a kind runs on:
// softmax-style kinds need softmax problems, binary kinds sigmoid ones. CULOSS_SUM stands for
// the fused Dice + cross-entropy (softmax) or Dice + BCE (sigmoid). The geometry kinds (distance
// transforms, soft skeletons) run on the geometry problems only, and only they do.
enum class Fits { Any, Softmax, Sigmoid, Geometry };
struct KindRow {
  culoss_kind kind;
  const char* name;
  Fits fits;
};
const KindRow kKinds[] = {
    {CULOSS_DICE, "Dice", Fits::Any},
    {CULOSS_JACCARD, "Jaccard", Fits::Any},
    {CULOSS_TVERSKY, "Tversky", Fits::Any},
    {CULOSS_FOCAL_TVERSKY, "FocalTversky", Fits::Any},
    {CULOSS_GENERALIZED_DICE, "GeneralizedDice", Fits::Any},
    {CULOSS_BCE, "BCE", Fits::Sigmoid},
    {CULOSS_CROSS_ENTROPY, "CrossEntropy", Fits::Softmax},
    {CULOSS_FOCAL, "Focal", Fits::Any},
    {CULOSS_COMBO, "Combo", Fits::Sigmoid},
    {CULOSS_MARGINAL_CE, "MarginalCE", Fits::Softmax},
    {CULOSS_LOVASZ_HINGE, "LovaszHinge", Fits::Sigmoid},
    {CULOSS_LOVASZ_SOFTMAX, "LovaszSoftmax", Fits::Softmax},
    {CULOSS_SUM, "DiceSum", Fits::Any},
    {CULOSS_MCC, "MCC", Fits::Any},
    {CULOSS_TOPK_CE, "TopKCE", Fits::Softmax},
    {CULOSS_HAUSDORFF_DT, "HausdorffDT", Fits::Geometry},
    {CULOSS_BOUNDARY, "Boundary", Fits::Geometry},
    {CULOSS_CLDICE, "ClDice", Fits::Geometry},
};

bool fits(const KindRow& k, const Problem& pr) {
  if ((k.fits == Fits::Geometry) != pr.geometry) return false;
  if (k.fits == Fits::Softmax) return pr.activation == CULOSS_ACTIVATION_SOFTMAX;
  if (k.fits == Fits::Sigmoid) return pr.activation == CULOSS_ACTIVATION_SIGMOID;
  return true;
}

Problem softmax(std::vector<int64_t> shape, Dtype dt, Target tg, int ignore_percent = 0) {
  return Problem{std::move(shape), dt, tg, CULOSS_ACTIVATION_SOFTMAX, ignore_percent};
}
Problem sigmoid(std::vector<int64_t> shape, Dtype dt, Target tg, int ignore_percent = 0) {
  return Problem{std::move(shape), dt, tg, CULOSS_ACTIVATION_SIGMOID, ignore_percent};
}
// A softmax problem of the geometry kinds (random labels: the transforms' and skeletons' cost
// does not depend on the shapes of the masks).
Problem geometry(std::vector<int64_t> shape, Dtype dt, Target tg) {
  Problem pr = softmax(std::move(shape), dt, tg);
  pr.geometry = true;
  return pr;
}

// CPU: small shapes, so that the whole CPU run stays short on a 2-core machine.
std::vector<Problem> cpu_problems() {
  return {
      softmax({2, 4, 64, 64}, Dtype::F32, Target::I64),
      softmax({2, 4, 128, 128}, Dtype::F32, Target::I64),
      softmax({2, 4, 128, 128}, Dtype::BF16, Target::U8, 5),
      softmax({16, 4, 128, 128}, Dtype::F32, Target::I64),
      softmax({16, 4, 128, 128}, Dtype::F16, Target::I64, 5),
      sigmoid({4, 1, 128, 128}, Dtype::F32, Target::MaskU8),
      // the shapes of the side-by-side geometry rows (bench_vs_torch.py)
      geometry({4, 3, 128, 128}, Dtype::F32, Target::I64),
      geometry({1, 3, 48, 48, 48}, Dtype::F32, Target::I64),
  };
}

// CPU memory-bandwidth check: cross-entropy at 16M logits (4x4x1024x1024 float32, int64
// labels), reported as a fraction of the bandwidth of a copy of the same bytes measured in the
// same run (copy_GBps, roofline_fraction).
const Problem kCpuBandwidthProblem = softmax({4, 4, 1024, 1024}, Dtype::F32, Target::I64);

// Bandwidth of a memcpy moving `bytes` (half read, half written) on culoss's thread count, each
// thread copying one contiguous part; the best of 5 runs.
double cpu_copy_GBps(int64_t bytes) {
  const size_t half = static_cast<size_t>(bytes / 2);
  std::vector<char> src(half, 1), dst(half, 0);
  const int threads = std::max(1, culoss_get_num_threads());
  double best = 1e300;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i)
      pool.emplace_back([&, i] {
        const size_t b = half * i / threads, e = half * (i + 1) / threads;
        std::memcpy(dst.data() + b, src.data() + b, e - b);
      });
    for (std::thread& t : pool) t.join();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return static_cast<double>(bytes) / best / 1e9;
}

// CUDA: the benchmark shapes of benchmarks/README.md (performance targets).
std::vector<Problem> cuda_problems() {
  return {
      // 16x4x512x512: the headline shape, every input dtype and label dtype
      softmax({16, 4, 512, 512}, Dtype::F32, Target::I64),
      softmax({16, 4, 512, 512}, Dtype::F32, Target::I64, 5),
      softmax({16, 4, 512, 512}, Dtype::F32, Target::U8),
      softmax({16, 4, 512, 512}, Dtype::BF16, Target::I64),
      softmax({16, 4, 512, 512}, Dtype::F16, Target::U8),
      // Cityscapes-like: 19 classes, 512x1024
      softmax({8, 19, 512, 1024}, Dtype::F32, Target::I64),
      softmax({8, 19, 512, 1024}, Dtype::BF16, Target::U8, 10),
      // ADE20K-like: 150 classes
      softmax({4, 150, 512, 512}, Dtype::F32, Target::I64),
      softmax({4, 150, 512, 512}, Dtype::BF16, Target::I64, 5),
      // 3D volumes
      softmax({2, 14, 128, 128, 128}, Dtype::F32, Target::I64),
      softmax({2, 14, 128, 128, 128}, Dtype::F16, Target::U8, 5),
      softmax({2, 4, 128, 128, 128}, Dtype::F32, Target::I64, 5),
      softmax({2, 4, 128, 128, 128}, Dtype::BF16, Target::U8, 10),
      // binary: sigmoid with a dense uint8 mask (ignored pixels through a 0 pixel weight)
      sigmoid({32, 1, 1024, 1024}, Dtype::F32, Target::MaskU8),
      sigmoid({32, 1, 1024, 1024}, Dtype::BF16, Target::MaskU8),
      sigmoid({32, 1, 1024, 1024}, Dtype::F32, Target::MaskU8, 5),
      // binary, many small images: sigmoid with uint8 mask labels (C = 1 index target)
      sigmoid({64, 1, 256, 256}, Dtype::F32, Target::U8),
      sigmoid({64, 1, 256, 256}, Dtype::F16, Target::U8, 5),
      // latency
      softmax({2, 4, 64, 64}, Dtype::F32, Target::I64),
      softmax({2, 4, 64, 64}, Dtype::BF16, Target::U8, 5),
      // geometry kinds: 2-D and 3-D, float32 and bfloat16
      geometry({8, 4, 512, 512}, Dtype::F32, Target::I64),
      geometry({8, 4, 512, 512}, Dtype::BF16, Target::U8),
      geometry({2, 4, 128, 128, 128}, Dtype::F32, Target::I64),
  };
}

void bench_cpu(benchmark::State& state, culoss_kind kind, const Problem& pr, bool backward,
               bool copy_baseline = false) {
  try {
    Dataset& ds = dataset_for(pr, /*device=*/false);
    const double copy_GBps = copy_baseline ? cpu_copy_GBps(pr.one_pass_bytes(backward)) : 0.0;
    Loss loss;
    configure_loss(loss, kind, pr);
    size_t ws_bytes = 0;
    culoss_check(culoss_workspace_size(loss.get(), &ds.t_input, &ds.t_target, &ws_bytes),
                 "culoss_workspace_size");
    Buffer workspace(ws_bytes, false);
    DLTensor* grad = backward ? &ds.t_grad : nullptr;
    auto call = [&] {
      return culoss_compute(loss.get(), &ds.t_input, &ds.t_target, ds.pixel_weight(), &ds.t_loss,
                            grad, 1.0, workspace.get(), ws_bytes, nullptr);
    };
    culoss_status s = call();  // warm-up; a refusal skips the benchmark
    if (s != CULOSS_SUCCESS) {
      state.SkipWithError(culoss_error("culoss_compute", s).c_str());
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    for (auto _ : state) {
      s = call();
      if (s != CULOSS_SUCCESS) {
        state.SkipWithError(culoss_error("culoss_compute", s).c_str());
        break;
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s == CULOSS_SUCCESS) report_bandwidth(state, pr, backward, seconds, copy_GBps);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

#ifdef CULOSS_BENCH_WITH_CUDA
void bench_cuda(benchmark::State& state, culoss_kind kind, const Problem& pr, bool backward) {
  CudaEnv* env = nullptr;
  try {
    env = CudaEnv::get();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  if (!env) {
    state.SkipWithError("no CUDA device");
    return;
  }
  try {
    const double copy_GBps = env->copy_GBps();
    Dataset& ds = dataset_for(pr, /*device=*/true);
    Loss loss;
    configure_loss(loss, kind, pr);
    size_t ws_bytes = 0;
    culoss_check(culoss_workspace_size(loss.get(), &ds.t_input, &ds.t_target, &ws_bytes),
                 "culoss_workspace_size");
    Buffer workspace(ws_bytes, true);
    DLTensor* grad = backward ? &ds.t_grad : nullptr;
    auto call = [&] {
      return culoss_compute(loss.get(), &ds.t_input, &ds.t_target, ds.pixel_weight(), &ds.t_loss,
                            grad, 1.0, workspace.get(), ws_bytes, env->stream);
    };
    culoss_status s = call();  // warm-up; a refusal skips the benchmark
    cuda_check(cudaStreamSynchronize(env->stream), "cudaStreamSynchronize (warm-up)");
    if (s != CULOSS_SUCCESS) {
      state.SkipWithError(culoss_error("culoss_compute", s).c_str());
      return;
    }
    double seconds = 0.0;
    for (auto _ : state) {
      env->flush_l2();  // outside the timed region
      cuda_check(cudaEventRecord(env->start, env->stream), "cudaEventRecord");
      s = call();
      cuda_check(cudaEventRecord(env->stop, env->stream), "cudaEventRecord");
      const double t = env->elapsed_ms() * 1e-3;
      if (s != CULOSS_SUCCESS) {
        state.SkipWithError(culoss_error("culoss_compute", s).c_str());
        break;
      }
      state.SetIterationTime(t);
      seconds += t;
    }
    cuda_check(cudaGetLastError(), "after the timed loop");
    if (s == CULOSS_SUCCESS) report_bandwidth(state, pr, backward, seconds, copy_GBps);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}
#else
void bench_cuda(benchmark::State& state, culoss_kind, const Problem&, bool) {
  state.SkipWithError("no CUDA device (culoss built without CUDA)");
}
#endif

std::string mode_name(bool backward) { return backward ? "fwd_bwd" : "fwd"; }

// Problem outermost, so that each problem's tensors are generated once (see dataset_for).
void register_all() {
  for (const Problem& pr : cpu_problems())
    for (const KindRow& k : kKinds)
      for (bool backward : {false, true}) {
        if (!fits(k, pr)) continue;
        const std::string name =
            std::string("cpu/") + k.name + "/" + mode_name(backward) + "/" + pr.name();
        const culoss_kind kind = k.kind;
        benchmark::RegisterBenchmark(
            name.c_str(),
            [kind, pr, backward](benchmark::State& st) { bench_cpu(st, kind, pr, backward); })
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
  for (bool backward : {false, true}) {
    const Problem pr = kCpuBandwidthProblem;
    const std::string name = "cpu/CrossEntropy/" + mode_name(backward) + "/" + pr.name();
    benchmark::RegisterBenchmark(name.c_str(),
                                 [pr, backward](benchmark::State& st) {
                                   bench_cpu(st, CULOSS_CROSS_ENTROPY, pr, backward, true);
                                 })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  for (const Problem& pr : cuda_problems())
    for (const KindRow& k : kKinds)
      for (bool backward : {false, true}) {
        if (!fits(k, pr)) continue;
        const std::string name =
            std::string("cuda/") + k.name + "/" + mode_name(backward) + "/" + pr.name();
        const culoss_kind kind = k.kind;
        benchmark::RegisterBenchmark(
            name.c_str(),
            [kind, pr, backward](benchmark::State& st) { bench_cuda(st, kind, pr, backward); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
}

void add_context() {
  const int v = culoss_version();
  benchmark::AddCustomContext("culoss_version", std::to_string(v / 10000) + "." +
                                                    std::to_string(v / 100 % 100) + "." +
                                                    std::to_string(v % 100));
#ifdef CULOSS_BENCH_WITH_CUDA
  if (cuda_device_count() > 0) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
      benchmark::AddCustomContext("cuda_device",
                                  std::string(prop.name) + ", sm_" + std::to_string(prop.major) +
                                      std::to_string(prop.minor) + ", " +
                                      std::to_string(prop.multiProcessorCount) + " SMs, " +
                                      std::to_string(prop.totalGlobalMem >> 20) + " MiB, L2 " +
                                      std::to_string(prop.l2CacheSize >> 10) + " KiB");
    }
  } else {
    benchmark::AddCustomContext("cuda_device", "none");
  }
#else
  benchmark::AddCustomContext("cuda_device", "none (culoss built without CUDA)");
#endif
}

}  // namespace
}  // namespace culoss_bench

int main(int argc, char** argv) {
  culoss_bench::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  culoss_bench::add_context();
  benchmark::RunSpecifiedBenchmarks();
  culoss_bench::release_datasets();  // before the CUDA runtime shuts down
#ifdef CULOSS_BENCH_WITH_CUDA
  culoss_bench::CudaEnv::release();
#endif
  benchmark::Shutdown();
  return 0;
}

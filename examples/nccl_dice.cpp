// nccl_dice: a Dice loss over a batch split across the GPUs of one process (data parallelism),
// with culoss's statistics API and NCCL:
//
//   culoss_stats_size          the length of the statistics vector (the same on every GPU)
//   culoss_compute_stats       each GPU's statistics (float64, in device memory)
//   ncclAllReduce(ncclSum)     summed in place across the GPUs (one communicator per device)
//   culoss_compute_from_stats  the loss of the whole batch and each GPU's slice of its gradient
//
// Each GPU gets a shard of one deterministic synthetic batch (distributed_batch.h: 5 images of
// 4 classes, split along N). The CPU backend computes the whole batch in one culoss_compute call
// and every GPU's loss and gradient slice are checked against it (float32 tolerances); the
// program exits with a non-zero status on a mismatch. Without a CUDA device it prints a SKIP line
// and exits with 0.
//
//   ./nccl_dice          all visible GPUs (at most 5)
//   ./nccl_dice 1        one GPU: a communicator of one rank (the all-reduce is a copy)
//
// Copyright 2026 the culoss authors. Licensed under the Apache License 2.0.
#include <cuda_runtime.h>
#include <nccl.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "distributed_batch.h"

namespace {

#define CHECK_CUDA(call)                                                                      \
  do {                                                                                        \
    const cudaError_t e_ = (call);                                                            \
    if (e_ != cudaSuccess) {                                                                  \
      std::fprintf(stderr, "nccl_dice: %s failed: %s\n", #call, cudaGetErrorString(e_));      \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

#define CHECK_NCCL(call)                                                                      \
  do {                                                                                        \
    const ncclResult_t r_ = (call);                                                           \
    if (r_ != ncclSuccess) {                                                                  \
      std::fprintf(stderr, "nccl_dice: %s failed: %s\n", #call, ncclGetErrorString(r_));      \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

#define CHECK_CULOSS(call)                                                                    \
  do {                                                                                        \
    const culoss_status s_ = (call);                                                          \
    if (s_ != CULOSS_SUCCESS) {                                                               \
      std::fprintf(stderr, "nccl_dice: %s failed: %s: %s\n", #call, culoss_status_string(s_), \
                   culoss_last_error());                                                      \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

DLTensor tensor(void* data, DLDeviceType device, int device_id, int32_t ndim, int64_t* shape,
                DLDataTypeCode code, uint8_t bits) {
  DLTensor t{};
  t.data = data;
  t.device = DLDevice{device, device_id};
  t.ndim = ndim;
  t.dtype = DLDataType{static_cast<uint8_t>(code), bits, 1};
  t.shape = shape;
  return t;
}

// One GPU's shard: device buffers, DLTensor views, results.
struct Shard {
  int device = 0;
  int64_t first = 0, count = 0;
  cudaStream_t stream = nullptr;
  int64_t in_shape[4] = {0, DIST_C, DIST_H, DIST_W};
  int64_t label_shape[3] = {0, DIST_H, DIST_W};
  float* input = nullptr;
  int64_t* labels = nullptr;
  float* grad = nullptr;
  double* stats = nullptr;
  double* loss = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  DLTensor in_t{}, label_t{}, grad_t{}, stats_t{}, loss_t{};
  double host_loss = 0.0;
  std::vector<float> host_grad;
};

}  // namespace

int main(int argc, char** argv) {
  int ndev = 0;
  const cudaError_t e = cudaGetDeviceCount(&ndev);
  if (e != cudaSuccess || ndev == 0) {
    std::printf("SKIP: nccl_dice: no CUDA device (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount reports 0");
    return 0;
  }
  if (argc > 1) ndev = std::min(ndev, std::max(1, std::atoi(argv[1])));
  ndev = std::min<int>(ndev, DIST_N);

  culoss_loss dice;
  CHECK_CULOSS(culoss_loss_create(&dice, CULOSS_DICE));
  CHECK_CULOSS(culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 0));
  CHECK_CULOSS(culoss_loss_set_int(dice, CULOSS_PARAM_CHECK_TARGETS, 0));  // no sync per call

  // One communicator per device, all in this process.
  std::vector<int> devices(static_cast<size_t>(ndev));
  for (int d = 0; d < ndev; ++d) devices[static_cast<size_t>(d)] = d;
  std::vector<ncclComm_t> comms(static_cast<size_t>(ndev));
  CHECK_NCCL(ncclCommInitAll(comms.data(), ndev, devices.data()));

  // Upload each device's shard.
  std::vector<Shard> shards(static_cast<size_t>(ndev));
  int64_t n_stats = 0;
  for (int d = 0; d < ndev; ++d) {
    Shard& s = shards[static_cast<size_t>(d)];
    s.device = d;
    s.first = dist_shard_first(d, ndev);
    s.count = dist_shard_count(d, ndev);
    s.in_shape[0] = s.label_shape[0] = s.count;
    std::vector<float> input(static_cast<size_t>(s.count * DIST_IMAGE_ELEMENTS));
    std::vector<int64_t> labels(static_cast<size_t>(s.count * DIST_PIXELS));
    dist_fill_images(s.first, s.count, input.data(), labels.data());
    CHECK_CUDA(cudaSetDevice(d));
    CHECK_CUDA(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    CHECK_CUDA(cudaMalloc(&s.input, input.size() * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&s.labels, labels.size() * sizeof(int64_t)));
    CHECK_CUDA(cudaMalloc(&s.grad, input.size() * sizeof(float)));
    CHECK_CUDA(cudaMalloc(&s.loss, sizeof(double)));
    CHECK_CUDA(cudaMemcpy(s.input, input.data(), input.size() * sizeof(float), cudaMemcpyHostToDevice));
    CHECK_CUDA(cudaMemcpy(s.labels, labels.data(), labels.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
    s.in_t = tensor(s.input, kDLCUDA, d, 4, s.in_shape, kDLFloat, 32);
    s.label_t = tensor(s.labels, kDLCUDA, d, 3, s.label_shape, kDLInt, 64);
    s.grad_t = tensor(s.grad, kDLCUDA, d, 4, s.in_shape, kDLFloat, 32);
    s.loss_t = tensor(s.loss, kDLCUDA, d, 0, nullptr, kDLFloat, 64);
    // The statistics vector: its length depends on the loss and C only.
    CHECK_CULOSS(culoss_stats_size(dice, &s.in_t, &s.label_t, &n_stats));
    CHECK_CUDA(cudaMalloc(&s.stats, static_cast<size_t>(n_stats) * sizeof(double)));
    s.stats_t = tensor(s.stats, kDLCUDA, d, 1, &n_stats, kDLFloat, 64);
    // One workspace serves both calls: no allocation on the hot path.
    CHECK_CULOSS(culoss_workspace_size(dice, &s.in_t, &s.label_t, &s.workspace_bytes));
    CHECK_CUDA(cudaMalloc(&s.workspace, s.workspace_bytes));
  }

  // 1. Each device's statistics, on its stream.
  for (Shard& s : shards) {
    CHECK_CUDA(cudaSetDevice(s.device));
    CHECK_CULOSS(culoss_compute_stats(dice, &s.in_t, &s.label_t, nullptr, &s.stats_t, s.workspace,
                                      s.workspace_bytes, s.stream));
  }
  // 2. Summed in place across the devices (one process driving several GPUs: a group call).
  CHECK_NCCL(ncclGroupStart());
  for (size_t d = 0; d < shards.size(); ++d)
    CHECK_NCCL(ncclAllReduce(shards[d].stats, shards[d].stats, static_cast<size_t>(n_stats),
                             ncclFloat64, ncclSum, comms[d], shards[d].stream));
  CHECK_NCCL(ncclGroupEnd());
  // 3. The whole batch's loss and each device's gradient slice, on the same streams.
  for (Shard& s : shards) {
    CHECK_CUDA(cudaSetDevice(s.device));
    CHECK_CULOSS(culoss_compute_from_stats(dice, &s.in_t, &s.label_t, nullptr, &s.stats_t, &s.loss_t,
                                           &s.grad_t, 1.0, s.workspace, s.workspace_bytes, s.stream));
  }
  for (Shard& s : shards) {
    CHECK_CUDA(cudaSetDevice(s.device));
    CHECK_CUDA(cudaStreamSynchronize(s.stream));
    s.host_grad.resize(static_cast<size_t>(s.count * DIST_IMAGE_ELEMENTS));
    CHECK_CUDA(cudaMemcpy(&s.host_loss, s.loss, sizeof(double), cudaMemcpyDeviceToHost));
    CHECK_CUDA(cudaMemcpy(s.host_grad.data(), s.grad, s.host_grad.size() * sizeof(float),
                          cudaMemcpyDeviceToHost));
  }

  // The check: the CPU backend on the whole batch in one call.
  std::vector<float> all_input(static_cast<size_t>(DIST_N * DIST_IMAGE_ELEMENTS));
  std::vector<int64_t> all_labels(static_cast<size_t>(DIST_N * DIST_PIXELS));
  std::vector<float> ref_grad(all_input.size());
  dist_fill_images(0, DIST_N, all_input.data(), all_labels.data());
  int64_t all_shape[4] = {DIST_N, DIST_C, DIST_H, DIST_W}, all_label_shape[3] = {DIST_N, DIST_H, DIST_W};
  double ref_loss = 0.0;
  DLTensor a_in = tensor(all_input.data(), kDLCPU, 0, 4, all_shape, kDLFloat, 32);
  DLTensor a_lab = tensor(all_labels.data(), kDLCPU, 0, 3, all_label_shape, kDLInt, 64);
  DLTensor a_grad = tensor(ref_grad.data(), kDLCPU, 0, 4, all_shape, kDLFloat, 32);
  DLTensor a_loss = tensor(&ref_loss, kDLCPU, 0, 0, nullptr, kDLFloat, 64);
  CHECK_CULOSS(culoss_compute(dice, &a_in, &a_lab, nullptr, &a_loss, &a_grad, 1.0, nullptr, 0, nullptr));

  // float32 on the GPU against double on the CPU: the tolerances of the CUDA tests.
  double grad_scale = 0.0;
  for (float g : ref_grad) grad_scale = std::max(grad_scale, static_cast<double>(std::fabs(g)));
  int bad = 0;
  for (const Shard& s : shards) {
    double grad_err = 0.0;
    for (size_t i = 0; i < s.host_grad.size(); ++i) {
      const double want = ref_grad[static_cast<size_t>(s.first * DIST_IMAGE_ELEMENTS) + i];
      const double d = std::fabs(static_cast<double>(s.host_grad[i]) - want);
      grad_err = std::max(grad_err, d);
      if (!(d <= 2e-5 * std::fabs(want) + 2e-6 * grad_scale)) ++bad;
    }
    const double loss_err = std::fabs(s.host_loss - ref_loss);
    if (!(loss_err <= 1e-5 * std::fabs(ref_loss) + 2e-6)) ++bad;
    if (s.host_loss != shards[0].host_loss) ++bad;  // the same summed statistics everywhere
    std::printf("nccl_dice: GPU %d of %d: images [%lld, %lld), %lld statistics, loss %.9f, "
                "|loss - CPU| %.3g, max |grad - CPU| %.3g\n",
                s.device, ndev, static_cast<long long>(s.first),
                static_cast<long long>(s.first + s.count), static_cast<long long>(n_stats),
                s.host_loss, loss_err, grad_err);
  }
  std::printf("nccl_dice: CPU backend, whole batch: loss %.9f\n", ref_loss);
  if (bad == 0)
    std::printf("nccl_dice: PASS: %d GPU(s) agree with the single-call loss and gradient\n", ndev);
  else
    std::printf("nccl_dice: FAIL: %d mismatches\n", bad);

  for (size_t d = 0; d < shards.size(); ++d) {
    Shard& s = shards[d];
    CHECK_CUDA(cudaSetDevice(s.device));
    cudaFree(s.input);
    cudaFree(s.labels);
    cudaFree(s.grad);
    cudaFree(s.stats);
    cudaFree(s.loss);
    cudaFree(s.workspace);
    cudaStreamDestroy(s.stream);
    ncclCommDestroy(comms[d]);
  }
  culoss_loss_destroy(dice);
  return bad == 0 ? 0 : 1;
}

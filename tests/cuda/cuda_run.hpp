// One culoss_compute call on the CUDA backend for the CUDA tests: the host data of a case is
// uploaded into guarded device tensors (optional byte offsets, device id), the outputs start
// poisoned, the workspace is NULL / exact / misaligned / short / large, the gradient may be
// written in place, loss_out may live on the host. Everything is downloaded afterwards, with a
// check that no guard byte (and no output the call was not given) changed.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/compare.hpp"

#include <cstdlib>

namespace cuda_test_env {
// The CPU results these tests compare against come from the generic passes (double), as the
// tolerances of compare.hpp assume, not from the CPU's float32 SIMD fast path
// (docs/reference.md): set before main, in every test file that includes this header.
inline const bool kGenericCpu = setenv("CULOSS_CPU_FAST_PATH", "0", 1) == 0;
}  // namespace cuda_test_env
#include "cuda/cuda_tensor.hpp"

namespace testing_util {

enum class Ws { Null, Exact, ExactMisaligned, Short, Large };

struct CudaRunOptions {
  bool host_loss_out = false;
  uint64_t off_in = 0, off_tg = 0, off_w = 0, off_loss = 0, off_grad = 0;
  cudaStream_t stream = nullptr;
  Ws ws = Ws::Null;
  uint64_t ws_misalign = 0;
  bool in_place = false;         // grad_input is the input's own DLTensor
  bool in_place_copy = false;    // grad_input is a separate DLTensor describing the input's buffer
  bool with_grad = true;
  int device_id = 0;
};

inline CudaRunOptions offsets(uint64_t all) {
  CudaRunOptions o;
  o.off_in = o.off_tg = o.off_w = o.off_loss = o.off_grad = all;
  return o;
}

// The host data of one call.
struct CallData {
  const TestTensor* input = nullptr;
  const TestTensor* target = nullptr;
  const TestTensor* weight = nullptr;  // NULL: no pixel_weight
  std::vector<int64_t> loss_shape;
  DLDataType loss_dtype{};
  DLDataType grad_dtype{};
  double grad_scale = 1.0;
};

inline void run_cuda(const CallData& p, culoss_loss h, const CudaRunOptions& o, RunResult* r) {
  const int dev = o.device_id;
  const std::vector<int64_t>& shape = p.input->shape;
  CudaTensor din(*p.input, o.off_in, dev), dtg(*p.target, o.off_tg, dev);
  std::unique_ptr<CudaTensor> dw;
  if (p.weight != nullptr) dw = std::make_unique<CudaTensor>(*p.weight, o.off_w, dev);
  CudaTensor dloss(p.loss_shape, p.loss_dtype, o.off_loss, dev);
  dloss.poison();
  CudaTensor dgrad(shape, p.grad_dtype, o.off_grad, dev);
  dgrad.poison();
  TestTensor hloss(p.loss_shape, p.loss_dtype);
  hloss.poison();

  size_t ws = 0;
  if (o.ws != Ws::Null) {
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, din.dl(), dtg.dl(), &ws)) << culoss_last_error();
  }
  r->workspace_bytes = ws;
  std::unique_ptr<CudaTensor> wsbuf;
  void* wsp = nullptr;
  size_t wsn = 0;
  switch (o.ws) {
    case Ws::Null: break;
    case Ws::Exact:
    case Ws::ExactMisaligned:
      wsbuf = std::make_unique<CudaTensor>(std::vector<int64_t>{static_cast<int64_t>(ws)}, u8(),
                                           o.ws == Ws::ExactMisaligned ? o.ws_misalign : 0, dev);
      wsp = wsbuf->data_ptr();
      wsn = ws;
      break;
    case Ws::Short:
      ASSERT_GT(ws, 0u) << "the call needs a workspace";
      wsbuf = std::make_unique<CudaTensor>(std::vector<int64_t>{static_cast<int64_t>(ws - 1)}, u8(), 0, dev);
      wsp = wsbuf->data_ptr();
      wsn = ws - 1;
      break;
    case Ws::Large:
      wsbuf = std::make_unique<CudaTensor>(std::vector<int64_t>{static_cast<int64_t>(ws + 4096)}, u8(), 0, dev);
      wsp = wsbuf->data_ptr();
      wsn = ws + 4096;
      break;
  }
  CUDA_ASSERT_OK(cudaDeviceSynchronize());

  DLTensor* loss_dl = o.host_loss_out ? hloss.dl() : dloss.dl();
  DLTensor in_copy = *din.dl();
  DLTensor* grad_dl = nullptr;
  if (o.with_grad) grad_dl = o.in_place ? din.dl() : o.in_place_copy ? &in_copy : dgrad.dl();
  r->status = culoss_compute(h, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, loss_dl, grad_dl,
                             p.grad_scale, wsp, wsn, o.stream);
  r->error = culoss_last_error();
  const TestTensor hloss_at_return = hloss;
  CUDA_ASSERT_OK(cudaGetLastError());
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  if (o.host_loss_out) {
    r->loss = hloss;
    r->host_loss_ready = hloss_at_return.bytes == hloss.bytes;
  } else {
    r->loss = dloss.download();
  }
  r->grad = (o.in_place || o.in_place_copy) ? din.download() : dgrad.download();
  r->guards_ok = din.guards_intact() && dtg.guards_intact() && (!dw || dw->guards_intact()) &&
                 dloss.guards_intact() && dgrad.guards_intact() && (!wsbuf || wsbuf->guards_intact());
  if (!o.host_loss_out) {
    // The host loss_out was not passed; the device one was. Nothing may write the host one.
    TestTensor fresh(p.loss_shape, p.loss_dtype);
    fresh.poison();
    EXPECT_EQ(fresh.bytes, hloss.bytes);
  } else {
    // The device loss_out was not passed; it must still be poisoned.
    TestTensor d = dloss.download();
    TestTensor fresh(p.loss_shape, p.loss_dtype);
    fresh.poison();
    EXPECT_EQ(0, std::memcmp(fresh.bytes.data(), d.bytes.data(), static_cast<size_t>(d.numel() * d.elem_size())));
  }
}

// A kDLCUDA view on device memory the caller owns (`shape` must outlive the view).
inline DLTensor cuda_view(void* data, uint64_t byte_offset, const std::vector<int64_t>& shape,
                          DLDataType dtype, int device_id = 0) {
  DLTensor t{};
  t.data = data;
  t.device = DLDevice{kDLCUDA, device_id};
  t.ndim = static_cast<int32_t>(shape.size());
  t.dtype = dtype;
  t.shape = const_cast<int64_t*>(shape.data());
  t.strides = nullptr;
  t.byte_offset = byte_offset;
  return t;
}

}  // namespace testing_util

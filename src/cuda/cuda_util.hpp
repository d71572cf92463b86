// Host-side CUDA helpers: error mapping, device scoping, stream-ordered scratch memory.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace culoss::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const culoss_status status =
      err == cudaErrorMemoryAllocation ? CULOSS_ERROR_OUT_OF_MEMORY : CULOSS_ERROR_CUDA;
  cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  fail(status, what, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
}

// Blocks of `threads` for `work` items of a grid-stride loop (which covers what the cap leaves).
inline int64_t grid_for(int64_t work, int threads) {
  constexpr int64_t kMaxGridBlocks = 8192;
  return std::max<int64_t>(1, std::min<int64_t>((work + threads - 1) / threads, kMaxGridBlocks));
}

// Makes `device` current for the scope and restores the caller's device afterwards.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    // The first runtime call of a CUDA computation: a missing driver or device shows here.
    const std::string what = "using CUDA device " + std::to_string(device) + " of the input";
    check(cudaGetDevice(&previous_), what.c_str());
    if (previous_ != device) check(cudaSetDevice(device), what.c_str());
  }
  ~DeviceScope() {
    int now = previous_;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = 0;
};

// Stream-ordered device memory, freed on the same stream when the scope ends.
class StreamBuffer {
 public:
  StreamBuffer(size_t bytes, cudaStream_t stream) : stream_(stream) {
    check(cudaMallocAsync(&ptr_, bytes, stream), "cudaMallocAsync of the workspace");
  }
  ~StreamBuffer() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
  }
  StreamBuffer(const StreamBuffer&) = delete;
  StreamBuffer& operator=(const StreamBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  cudaStream_t stream_;
};

// The call's workspace, or one the library allocates stream-ordered for the call (of
// bytes() bytes, asked only then) and frees when the scope ends.
class Workspace {
 public:
  template <class Bytes>
  Workspace(const Call& call, Bytes&& bytes, cudaStream_t stream) : base_(call.workspace) {
    if (base_) return;
    owned_ = std::make_unique<StreamBuffer>(bytes(), stream);
    base_ = owned_->get();
  }
  void* base() const { return base_; }

 private:
  void* base_;
  std::unique_ptr<StreamBuffer> owned_;
};

// A loss_out on the host: the kernels wrote its values as doubles to `device_values`; copies
// them back (synchronizing the stream) and stores them in loss_out's dtype.
inline void copy_loss_to_host(const Call& call, const double* device_values, cudaStream_t stream) {
  const int64_t count = call.loss_out.numel;
  std::vector<double> values(static_cast<size_t>(count));
  check(cudaMemcpyAsync(values.data(), device_values, count * sizeof(double),
                        cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync of the loss");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize (host loss_out)");
  for (int64_t i = 0; i < count; ++i)
    store_as(call.loss_out.data, call.loss_out.dtype, i, values[i]);
}

}  // namespace culoss::cuda

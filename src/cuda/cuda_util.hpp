// Host-side CUDA helpers: error mapping, device scoping, stream-ordered scratch memory.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/error.hpp"

namespace culoss::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const culoss_status status =
      err == cudaErrorMemoryAllocation ? CULOSS_ERROR_OUT_OF_MEMORY : CULOSS_ERROR_CUDA;
  cudaGetLastError();  // clear a sticky-free error so the next call starts clean
  fail(status, what, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")");
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

}  // namespace culoss::cuda

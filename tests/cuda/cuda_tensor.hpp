// Device tensors for the CUDA tests: a cudaMalloc'ed mirror of a TestTensor with guard bytes
// around it, a kDLCUDA DLTensor view (device id, optional byte_offset), upload / download /
// poison, and require_device(), which skips a test when no CUDA device is usable.
//
// Plain C++ against the CUDA runtime API (no device code), so the host compiler builds it.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "common/test_tensor.hpp"

namespace testing_util {

// Number of usable CUDA devices; 0 when the runtime reports an error (no driver, no device).
inline int cuda_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the sticky-free error so later calls start clean
      n = 0;
    }
    return n;
  }();
  return count;
}

// Skips the current test when there is no CUDA device. Call it from SetUp() (gtest then skips
// the body) or use CULOSS_REQUIRE_DEVICE() at the top of a test body.
inline void require_device() {
  if (cuda_device_count() <= 0) GTEST_SKIP() << "no CUDA device";
}

#define CULOSS_REQUIRE_DEVICE()                          \
  do {                                                   \
    ::testing_util::require_device();                    \
    if (::testing::Test::IsSkipped()) return;            \
  } while (0)

// Records a non-fatal failure for a failing CUDA runtime call (usable in any function).
#define CUDA_EXPECT_OK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t culoss_test_err_ = (expr);                                          \
    EXPECT_EQ(cudaSuccess, culoss_test_err_)                                              \
        << #expr << ": " << cudaGetErrorName(culoss_test_err_) << " ("                    \
        << cudaGetErrorString(culoss_test_err_) << ")";                                   \
  } while (0)

// Fatal variant, for test bodies and void helpers.
#define CUDA_ASSERT_OK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t culoss_test_err_ = (expr);                                          \
    ASSERT_EQ(cudaSuccess, culoss_test_err_)                                              \
        << #expr << ": " << cudaGetErrorName(culoss_test_err_) << " ("                    \
        << cudaGetErrorString(culoss_test_err_) << ")";                                   \
  } while (0)

// Restores the current device when it goes out of scope.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (device != previous_) CUDA_EXPECT_OK(cudaSetDevice(device));
  }
  ~DeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// A compact row-major tensor in device memory. The allocation is
//   [kGuard guard bytes][byte_offset bytes][elements][kGuard guard bytes]
// with everything but the elements filled with kGuardByte, so writes outside the tensor (or
// into the byte_offset gap) are detectable with guards_intact(). The DLTensor view has
// data = allocation + kGuard and byte_offset = the requested offset.
class CudaTensor {
 public:
  static constexpr size_t kGuard = 256;
  static constexpr uint8_t kGuardByte = 0xA5;

  CudaTensor() = default;
  CudaTensor(std::vector<int64_t> shape, DLDataType dtype, uint64_t byte_offset = 0,
             int device_id = 0)
      : shape_(std::move(shape)), dtype_(dtype), offset_(byte_offset), device_id_(device_id) {
    DeviceGuard guard(device_id_);
    const size_t total = 2 * kGuard + static_cast<size_t>(offset_) + nbytes();
    void* p = nullptr;
    CUDA_EXPECT_OK(cudaMalloc(&p, total));
    base_ = static_cast<uint8_t*>(p);
    if (base_ != nullptr) CUDA_EXPECT_OK(cudaMemset(base_, kGuardByte, total));
  }
  // Allocates and uploads a copy of `host`.
  explicit CudaTensor(const TestTensor& host, uint64_t byte_offset = 0, int device_id = 0)
      : CudaTensor(host.shape, host.dtype, byte_offset, device_id) {
    upload(host);
  }
  ~CudaTensor() { release(); }

  CudaTensor(const CudaTensor&) = delete;
  CudaTensor& operator=(const CudaTensor&) = delete;
  CudaTensor(CudaTensor&& o) noexcept { *this = std::move(o); }
  CudaTensor& operator=(CudaTensor&& o) noexcept {
    if (this != &o) {
      release();
      shape_ = std::move(o.shape_);
      dtype_ = o.dtype_;
      offset_ = o.offset_;
      device_id_ = o.device_id_;
      base_ = o.base_;
      o.base_ = nullptr;
    }
    return *this;
  }

  const std::vector<int64_t>& shape() const { return shape_; }
  DLDataType dtype() const { return dtype_; }
  uint64_t byte_offset() const { return offset_; }
  int device_id() const { return device_id_; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
  }
  size_t elem_size() const { return dtype_.bits / 8; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * elem_size(); }

  // What goes into DLTensor::data (the offset is separate).
  void* data_base() const { return base_ == nullptr ? nullptr : base_ + kGuard; }
  // The first element.
  void* data_ptr() const {
    return base_ == nullptr ? nullptr : base_ + kGuard + static_cast<size_t>(offset_);
  }

  // A fresh kDLCUDA view (re-made on every call).
  DLTensor* dl() {
    view_.data = data_base();
    view_.device = DLDevice{kDLCUDA, device_id_};
    view_.ndim = static_cast<int32_t>(shape_.size());
    view_.dtype = dtype_;
    view_.shape = shape_.data();
    view_.strides = nullptr;
    view_.byte_offset = offset_;
    return &view_;
  }

  void upload(const TestTensor& host) {
    EXPECT_EQ(host.numel(), numel());
    EXPECT_EQ(host.elem_size(), static_cast<int64_t>(elem_size()));
    if (nbytes() == 0 || base_ == nullptr) return;
    CUDA_EXPECT_OK(cudaMemcpy(data_ptr(), host.bytes.data(), nbytes(), cudaMemcpyHostToDevice));
  }

  // Waits for all device work, then copies the elements back.
  TestTensor download() const {
    TestTensor t(shape_, dtype_);
    CUDA_EXPECT_OK(cudaDeviceSynchronize());
    if (nbytes() != 0 && base_ != nullptr)
      CUDA_EXPECT_OK(cudaMemcpy(t.bytes.data(), data_ptr(), nbytes(), cudaMemcpyDeviceToHost));
    return t;
  }

  // 0xff bytes: NaN for every float dtype, so elements the library does not write show up.
  void poison() {
    if (nbytes() != 0 && base_ != nullptr) CUDA_EXPECT_OK(cudaMemset(data_ptr(), 0xff, nbytes()));
  }

  // True when nothing before the first element (guard + byte_offset gap) or after the last
  // element was written.
  bool guards_intact() const {
    if (base_ == nullptr) return false;
    CUDA_EXPECT_OK(cudaDeviceSynchronize());
    std::vector<uint8_t> head(kGuard + static_cast<size_t>(offset_)), tail(kGuard);
    CUDA_EXPECT_OK(cudaMemcpy(head.data(), base_, head.size(), cudaMemcpyDeviceToHost));
    CUDA_EXPECT_OK(cudaMemcpy(tail.data(), base_ + head.size() + nbytes(), tail.size(),
                              cudaMemcpyDeviceToHost));
    for (uint8_t b : head)
      if (b != kGuardByte) return false;
    for (uint8_t b : tail)
      if (b != kGuardByte) return false;
    return true;
  }

 private:
  void release() {
    if (base_ != nullptr) {
      DeviceGuard guard(device_id_);
      (void)cudaFree(base_);
      base_ = nullptr;
    }
  }

  std::vector<int64_t> shape_;
  DLDataType dtype_{};
  uint64_t offset_ = 0;
  int device_id_ = 0;
  uint8_t* base_ = nullptr;
  DLTensor view_{};
};

// An owned cudaStream_t.
class CudaStream {
 public:
  explicit CudaStream(unsigned flags = cudaStreamDefault) {
    CUDA_EXPECT_OK(cudaStreamCreateWithFlags(&s_, flags));
  }
  ~CudaStream() {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
  }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// Owned pinned host memory (for truly asynchronous copies).
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t bytes) : bytes_(bytes) {
    CUDA_EXPECT_OK(cudaMallocHost(&p_, bytes_ == 0 ? 1 : bytes_));
  }
  ~PinnedBuffer() {
    if (p_ != nullptr) (void)cudaFreeHost(p_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* get() const { return p_; }
  size_t size() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace testing_util

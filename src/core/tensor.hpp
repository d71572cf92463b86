// The one tensor validator: turns the DLTensors of a call into a checked Call, or throws with a
// message naming the tensor and what was expected.
#pragma once

#include <culoss/culoss.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/descriptor.hpp"
#include "kernels/common/layout.cuh"

namespace culoss {

enum class Backend { CPU, CUDA };

struct TensorRef {
  bool present = false;
  void* data = nullptr;  // data + byte_offset
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  DLDevice device{kDLCPU, 0};
  int64_t bytes() const { return numel * dtype_bytes(dtype); }
};

struct Call {
  const culoss_loss_s* loss = nullptr;
  Backend backend = Backend::CPU;
  int device_id = 0;
  Layout layout{};
  TensorRef input, target, pixel_weight, loss_out, grad;
  bool index_target = false;
  bool binary_mask = false;       // index target read as a 0/1 mask (sigmoid, C = 1)
  bool loss_out_on_host = false;  // CUDA input with a kDLCPU loss_out
  bool in_place = false;          // grad_input is the input's buffer
  double grad_scale = 1.0;
  int64_t class_axis = 1;            // resolved: in [1, ndim)
  std::vector<int64_t> pixel_shape;  // the input's shape without the class axis
  int64_t ignore_index = -100;       // resolved over the terms of a SUM
  bool check_targets = true;
  // Distributed calls (culoss_compute_stats / culoss_compute_from_stats).
  bool distributed = false;
  bool exporting = false;                // culoss_compute_stats (known before planning)
  double* export_stats = nullptr;        // compute_stats: this rank's vector (output)
  const double* global_stats = nullptr;  // compute_from_stats: the vector summed over ranks
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  void* stream = nullptr;

  TargetView target_view() const {
    return TargetView{target.data, target.dtype, index_target, binary_mask, ignore_index};
  }
  const float* pixel_weight_data() const {
    return pixel_weight.present ? static_cast<const float*>(pixel_weight.data) : nullptr;
  }
};

// Validates input, target, pixel_weight (nullable) and grad_input (nullable) against the
// descriptor; loss_out follows with validate_loss_out once its shape is known.
Call validate_call(const culoss_loss_s& loss, const DLTensor* input, const DLTensor* target,
                   const DLTensor* pixel_weight, DLTensor* grad_input, double grad_scale);

// Whether this library was built with its CUDA backend (defined there, or by src/cuda/
// no_cuda.cpp): CUDA tensors are refused without it. A device may still be absent.
bool cuda_backend_built();

// Validates the statistics vector of a distributed call: float64 [count] on the input's device,
// overlapping no other tensor of the call. `output` for culoss_compute_stats.
TensorRef validate_stats(const Call& call, const DLTensor* stats, int64_t count, bool output);

// Validates loss_out once the loss's output shape is known.
void validate_loss_out(Call& call, const DLTensor* loss_out, const std::vector<int64_t>& shape);

std::string shape_string(const std::vector<int64_t>& shape);

// The class axis in [1, ndim) that CLASS_AXIS names (negative: from the end); SHAPE_MISMATCH
// naming `input` (e.g. "input (2, 3)") when there is none.
int64_t resolve_class_axis(int64_t class_axis, int64_t ndim, const std::string& input);

}  // namespace culoss

namespace culoss {
// The CHECK_TARGETS refusals, worded once for both backends. `element` indexes the target
// (or pixel_weight) in row-major order.
// `raw` points to a host copy of the offending element's bytes.
[[noreturn]] void fail_invalid_target(const Call& call, int64_t element, const void* raw);
[[noreturn]] void fail_invalid_pixel_weight(int64_t element, double value);
}  // namespace culoss

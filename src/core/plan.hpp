// What a region-loss call computes and the workspace it needs. The workspace is carved the same
// way for measuring (base = NULL) and for use, so culoss_workspace_size is exact by construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/common/region_math.cuh"

namespace culoss {

constexpr size_t kWorkspaceAlign = 256;

// Hands out aligned slices of one buffer; with a NULL base it only counts.
class Carver {
 public:
  // Slices start at addresses that are multiples of kWorkspaceAlign: the base is rounded up
  // first, which the slack in required() pays for.
  explicit Carver(void* base) {
    if (base) {
      const uintptr_t b = reinterpret_cast<uintptr_t>(base);
      base_ =
          reinterpret_cast<char*>((b + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign);
    }
  }
  template <class T>
  T* take(int64_t count) {
    used_ = (used_ + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += static_cast<size_t>(count) * sizeof(T);
    return p;
  }
  // Bytes a caller must provide: what was taken plus slack for aligning any base pointer.
  size_t required() const { return used_ + kWorkspaceAlign; }

 private:
  char* base_ = nullptr;
  size_t used_ = 0;
};

struct RegionPlan {
  RegionParams rp{};                  // class_weights points into the workspace
  std::vector<int64_t> output_shape;  // empty: one element
  int64_t groups = 0;                 // loss values before reduction
  int64_t coef_count = 0;             // image groups x C
  int64_t cuda_blocks_per_image = 0;  // statistics partials per image (CUDA)
  bool wide_partials = false;         // double partials (float64 input on CUDA)
};

struct RegionBuffers {
  double* class_weights;  // C
  double* stats;          // N x C x 3
  double* coef_a;         // image groups x C
  double* coef_b;
  double* ell;  // groups
  double* wgt;
  double* out_values;         // output elements (host-bound loss_out on CUDA)
  void* partials;             // CUDA: N x blocks x C x 3, float or double
  unsigned long long* check;  // CUDA: first bad target element, first bad weight
};

RegionPlan make_region_plan(const Call& call);
RegionBuffers carve_region(Carver& carver, const Call& call, const RegionPlan& plan);
size_t region_workspace_bytes(const Call& call, const RegionPlan& plan);

}  // namespace culoss

// What a call computes — its Program of terms (kernels/common/terms.cuh) — and the workspace it
// needs. The workspace is carved the same way for measuring (base = NULL) and for use, so
// culoss_workspace_size is exact by construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/common/finalize.cuh"
#include "kernels/geometry/geometry.cuh"

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

struct Plan {
  Program prog{};
  std::vector<int64_t> output_shape;  // empty: one element
  int64_t output_count = 1;
  std::vector<double> weight_table;  // class and positive weights the terms refer to
  int64_t class_coef_count = 0;      // finalize: max(region groups x C, C)
  int64_t group_count = 0;           // max region groups
  bool element_pass = false;         // step 4 runs (gradient, or an element-wise value)
  int top_k = -1;                    // the TOPK_CE term, whose pixels are selected first
};

struct Buffers {
  double* weights;       // weight_table
  double* stats;         // N x C x stat_width
  double* coefs;         // N x C x coef_width
  double* scale;         // kMaxTerms
  double* class_coef_a;  // class_coef_count: per-class (region: per group) coefficients
  double* class_coef_b;
  double* group_loss;  // group_count
  double* group_weight;
  double* value;       // 1: what step 3 adds to the loss
  double* out_values;  // output_count (host-bound loss_out on CUDA)
  unsigned char* selected;  // N x P with a TOPK_CE term: 1 where a pixel is selected
  GeometryBuffers geo;  // maps and the transforms' scratch (empty without map terms)
};

Plan make_plan(const Call& call);
// The plan's buffers; each backend carves its own slices (partials of its passes) after them.
Buffers carve(Carver& carver, const Call& call, const Plan& plan);
// The geometry part of carve: O(N·C·P) whatever the parameters (skeleton iterations included).
GeometryBuffers carve_geometry(Carver& carver, const Call& call, const Plan& plan);

// The program with its pointers bound for this call: region terms read their class weights
// from the weight table `b.weights` (on the backend's device) and, distributed, their batch
// totals from the summed statistics; a TOPK_CE term reads its selection from `b.selected`, map
// terms their geometry maps from `b.geo.maps`.
Program bind_program(const Plan& plan, const Buffers& b, const Call& call);

// Finalize buffers over a carved workspace; NONE region outputs go to `none_out`.
FinalizeBuffers finalize_buffers(const Buffers& b, const Call& call, void* none_out,
                                 DType none_dtype);

}  // namespace culoss

#include "kernels/common/lovasz.cuh"

namespace culoss {

// Lovász kinds replace statistics and finalize with a sort (docs/reference.md).
struct LovaszPlan {
  LovaszShape shape{};
  bool hinge = true;
  int activation = ACT_NONE;
  int reduction = RED_MEAN;
  bool classes_all = false;
  std::vector<int64_t> output_shape;  // empty: one element
  int64_t output_count = 1;
};

bool is_lovasz_kind(culoss_kind kind);
LovaszPlan make_lovasz_plan(const Call& call);

// What a call runs: a program of terms, or a sort. The api and the backends overload on the
// alternative, so only make_call_plan asks which family a kind is.
using CallPlan = std::variant<Plan, LovaszPlan>;
CallPlan make_call_plan(const Call& call);

// Length of the statistics vector a distributed call exports.
inline int64_t stats_count(const Plan& plan) { return plan.prog.export_count; }
inline int64_t stats_count(const LovaszPlan&) { return 2; }  // [Σ problem losses, problems]

// Whether the statistics API calls accept this plan's loss (a batch-wide sort has none to sum).
inline bool has_stats(const Plan& plan) { return plan.top_k < 0; }  // TOPK_CE: a global cut
inline bool has_stats(const LovaszPlan& plan) { return plan.shape.per_image; }

}  // namespace culoss

// Built instead of the CUDA backend when nvcc is not available: CUDA tensors are refused.
#include "cuda/backend.hpp"

#include "core/error.hpp"

namespace culoss {
bool cuda_backend_built() { return false; }
}  // namespace culoss

namespace culoss::cuda {

namespace {
// Unreachable through the API (CUDA tensors are refused when they are validated): a guard.
[[noreturn]] void refuse() {
  throw Error(CULOSS_ERROR_UNSUPPORTED_DEVICE,
              "this culoss was built without CUDA; pass kDLCPU tensors or rebuild with nvcc");
}
}  // namespace

void compute(const Call&, const Plan&) { refuse(); }

void compute(const Call&, const LovaszPlan&) { refuse(); }

size_t compute_workspace_bytes(const Call&, const Plan&) { refuse(); }

size_t compute_workspace_bytes(const Call&, const LovaszPlan&) { refuse(); }

}  // namespace culoss::cuda

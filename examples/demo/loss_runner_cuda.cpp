// culoss-demo: the CUDA runner. The network stays on the CPU; each step copies the logits and
// labels to the GPU, computes the loss and its gradient there with culoss, and copies the
// gradient back. (Compiled only when the project is built with CUDA.)
#include <cuda_runtime.h>

#include <chrono>
#include <cstring>

#include "loss_runner.h"

namespace demo {
namespace {

DLTensor view(void* data, DLDevice dev, DLDataType dt, int32_t ndim, int64_t* shape) {
  DLTensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.device = dev;
  t.ndim = ndim;
  t.dtype = dt;
  t.shape = shape;
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class CudaRunner : public LossRunner {
 public:
  CudaRunner(int device, int64_t n, int64_t h, int64_t w, int64_t c, std::string desc)
      : device_(device), in_shape_{n, h, w, c}, lab_shape_{n, h, w}, desc_(std::move(desc)) {}
  ~CudaRunner() override {
    cudaFree(logits_);
    cudaFree(labels_);
    cudaFree(grad_);
    cudaFree(workspace_);
  }
  bool init(std::string* error) {
    const size_t elems = size_t(in_shape_[0] * in_shape_[1] * in_shape_[2] * in_shape_[3]);
    const size_t pixels = size_t(lab_shape_[0] * lab_shape_[1] * lab_shape_[2]);
    bytes_in_ = elems * sizeof(float);
    bytes_lab_ = pixels;
    return check(cudaMalloc(&logits_, bytes_in_), "cudaMalloc", error) &&
           check(cudaMalloc(&grad_, bytes_in_), "cudaMalloc", error) &&
           check(cudaMalloc(&labels_, bytes_lab_), "cudaMalloc", error);
  }
  const std::string& description() const override { return desc_; }
  bool compute(culoss_loss loss, const float* logits, const uint8_t* labels, float* grad,
               float* value, LossTiming* timing, std::string* error) override {
    const DLDevice gpu{kDLCUDA, device_};
    DLTensor input = view(logits_, gpu, {kDLFloat, 32, 1}, 4, in_shape_);
    DLTensor target = view(labels_, gpu, {kDLUInt, 8, 1}, 3, lab_shape_);
    DLTensor grad_t = view(grad_, gpu, {kDLFloat, 32, 1}, 4, in_shape_);
    DLTensor out = view(value, DLDevice{kDLCPU, 0}, {kDLFloat, 32, 1}, 0, nullptr);
    size_t bytes = 0;
    culoss_status s = culoss_workspace_size(loss, &input, &target, &bytes);
    if (s != CULOSS_SUCCESS) return fail(s, "culoss_workspace_size", error);
    if (bytes > workspace_bytes_) {
      cudaFree(workspace_);
      workspace_ = nullptr;
      workspace_bytes_ = 0;
      if (!check(cudaMalloc(&workspace_, bytes), "cudaMalloc (workspace)", error)) return false;
      workspace_bytes_ = bytes;
    }
    auto t0 = std::chrono::steady_clock::now();
    if (!check(cudaMemcpy(logits_, logits, bytes_in_, cudaMemcpyHostToDevice), "cudaMemcpy",
               error) ||
        !check(cudaMemcpy(labels_, labels, bytes_lab_, cudaMemcpyHostToDevice), "cudaMemcpy",
               error))
      return false;
    timing->copy_s = seconds_since(t0);
    // loss_out is on the host, so the call waits for the value; the synchronize makes the
    // measured time include the gradient pass as well.
    t0 = std::chrono::steady_clock::now();
    s = culoss_compute(loss, &input, &target, nullptr, &out, &grad_t, 1.0, workspace_,
                       workspace_bytes_, nullptr);
    if (s != CULOSS_SUCCESS) return fail(s, "culoss_compute", error);
    if (!check(cudaDeviceSynchronize(), "cudaDeviceSynchronize", error)) return false;
    timing->culoss_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    if (!check(cudaMemcpy(grad, grad_, bytes_in_, cudaMemcpyDeviceToHost), "cudaMemcpy", error))
      return false;
    timing->copy_s += seconds_since(t0);
    return true;
  }

 private:
  static bool check(cudaError_t e, const char* what, std::string* error) {
    if (e == cudaSuccess) return true;
    *error = std::string(what) + ": " + cudaGetErrorString(e);
    return false;
  }
  static bool fail(culoss_status s, const char* what, std::string* error) {
    *error = std::string(what) + ": " + culoss_status_string(s) + ": " + culoss_last_error();
    return false;
  }
  int device_;
  int64_t in_shape_[4], lab_shape_[3];
  std::string desc_;
  size_t bytes_in_ = 0, bytes_lab_ = 0, workspace_bytes_ = 0;
  void *logits_ = nullptr, *labels_ = nullptr, *grad_ = nullptr, *workspace_ = nullptr;
};

}  // namespace

std::unique_ptr<LossRunner> make_cuda_runner(int64_t n, int64_t h, int64_t w, int64_t c,
                                             std::string* error) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    *error = std::string("no usable CUDA device (cudaGetDeviceCount: ") +
             (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") + "); run with --device cpu";
    return nullptr;
  }
  const int device = 0;
  cudaDeviceProp prop;
  if (cudaSetDevice(device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    *error = "cannot use CUDA device 0";
    return nullptr;
  }
  std::string desc = std::string("CUDA: culoss on ") + prop.name +
                     "; the network runs on the CPU (logits copied to the GPU and the gradient "
                     "back every step)";
  std::unique_ptr<CudaRunner> r(new CudaRunner(device, n, h, w, c, desc));
  if (!r->init(error)) return nullptr;
  return std::unique_ptr<LossRunner>(r.release());
}

}  // namespace demo

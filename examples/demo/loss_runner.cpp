// culoss-demo: loss descriptors and the CPU runner.
#include "loss_runner.h"

#include <chrono>
#include <cstring>
#include <vector>

namespace demo {

const LossInfo kLosses[] = {
    {"ce", "cross-entropy", false, "CROSS_ENTROPY"},
    {"dice", "Dice", false, "DICE, INCLUDE_BACKGROUND=0"},
    {"dice+ce", "Dice + CE", false,
     "SUM of DICE (INCLUDE_BACKGROUND=0) and CROSS_ENTROPY, weights 1 and 1: one fused call"},
    {"focal", "focal", false, "FOCAL, ACTIVATION=SOFTMAX, GAMMA=2"},
    {"tversky", "Tversky", false, "TVERSKY, ALPHA=0.3, BETA=0.7, INCLUDE_BACKGROUND=0"},
    {"lovasz", "Lovasz-Softmax", false, "LOVASZ_SOFTMAX (pooled over the batch, present classes)"},
    {"ce-missing", "cross-entropy", true, "CROSS_ENTROPY on the labels with missing annotations"},
    {"marginal", "marginal CE", true, "MARGINAL_CE on the labels with missing annotations"},
};
const int kNumLosses = int(sizeof(kLosses) / sizeof(kLosses[0]));

namespace {

struct Checker {
  std::string* error;
  culoss_status status = CULOSS_SUCCESS;
  bool operator()(culoss_status s, const char* what) {
    if (s != CULOSS_SUCCESS && status == CULOSS_SUCCESS) {
      status = s;
      *error = std::string(what) + ": " + culoss_status_string(s) + ": " + culoss_last_error();
    }
    return s == CULOSS_SUCCESS;
  }
};

culoss_loss create(culoss_kind kind, Checker& ok) {
  culoss_loss l = nullptr;
  if (!ok(culoss_loss_create(&l, kind), "culoss_loss_create")) return nullptr;
  // A SUM takes its class axis from its terms.
  if (kind != CULOSS_SUM) ok(culoss_loss_set_int(l, CULOSS_PARAM_CLASS_AXIS, -1), "CLASS_AXIS");
  return l;
}

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

class CpuRunner : public LossRunner {
 public:
  CpuRunner(int64_t n, int64_t h, int64_t w, int64_t c)
      : in_shape_{n, h, w, c}, lab_shape_{n, h, w}, desc_("CPU (network and loss on the CPU)") {}
  const std::string& description() const override { return desc_; }
  bool compute(culoss_loss loss, const float* logits, const uint8_t* labels, float* grad,
               float* value, LossTiming* timing, std::string* error) override {
    const DLDevice cpu{kDLCPU, 0};
    DLTensor input = view(const_cast<float*>(logits), cpu, {kDLFloat, 32, 1}, 4, in_shape_);
    DLTensor target = view(const_cast<uint8_t*>(labels), cpu, {kDLUInt, 8, 1}, 3, lab_shape_);
    DLTensor grad_t = view(grad, cpu, {kDLFloat, 32, 1}, 4, in_shape_);
    DLTensor out = view(value, cpu, {kDLFloat, 32, 1}, 0, nullptr);
    Checker ok{error};
    // A caller-owned workspace: the training loop allocates nothing per step.
    size_t bytes = 0;
    if (!ok(culoss_workspace_size(loss, &input, &target, &bytes), "culoss_workspace_size"))
      return false;
    if (workspace_.size() < bytes) workspace_.resize(bytes);
    const auto t0 = std::chrono::steady_clock::now();
    const culoss_status s = culoss_compute(loss, &input, &target, nullptr, &out, &grad_t, 1.0,
                                           workspace_.data(), workspace_.size(), nullptr);
    timing->culoss_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    timing->copy_s = 0.0;
    return ok(s, "culoss_compute");
  }

 private:
  int64_t in_shape_[4], lab_shape_[3];
  std::string desc_;
  std::vector<unsigned char> workspace_;
};

}  // namespace

culoss_loss make_loss(int index, std::string* error) {
  Checker ok{error};
  const std::string key = kLosses[index].key;
  culoss_loss l = nullptr;
  if (key == "ce" || key == "ce-missing") {
    l = create(CULOSS_CROSS_ENTROPY, ok);
  } else if (key == "dice") {
    l = create(CULOSS_DICE, ok);
    if (l) ok(culoss_loss_set_int(l, CULOSS_PARAM_INCLUDE_BACKGROUND, 0), "INCLUDE_BACKGROUND");
  } else if (key == "dice+ce") {
    culoss_loss dice = create(CULOSS_DICE, ok), ce = create(CULOSS_CROSS_ENTROPY, ok);
    l = create(CULOSS_SUM, ok);
    if (dice)
      ok(culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 0), "INCLUDE_BACKGROUND");
    if (l && dice && ce) {
      ok(culoss_loss_add_term(l, dice, 1.0), "culoss_loss_add_term");
      ok(culoss_loss_add_term(l, ce, 1.0), "culoss_loss_add_term");
    }
    culoss_loss_destroy(dice);
    culoss_loss_destroy(ce);
  } else if (key == "focal") {
    l = create(CULOSS_FOCAL, ok);
    if (l) {
      ok(culoss_loss_set_int(l, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX), "ACTIVATION");
      ok(culoss_loss_set_float(l, CULOSS_PARAM_GAMMA, 2.0), "GAMMA");
    }
  } else if (key == "tversky") {
    l = create(CULOSS_TVERSKY, ok);
    if (l) {
      ok(culoss_loss_set_int(l, CULOSS_PARAM_INCLUDE_BACKGROUND, 0), "INCLUDE_BACKGROUND");
      ok(culoss_loss_set_float(l, CULOSS_PARAM_ALPHA, 0.3), "ALPHA");
      ok(culoss_loss_set_float(l, CULOSS_PARAM_BETA, 0.7), "BETA");
    }
  } else if (key == "lovasz") {
    l = create(CULOSS_LOVASZ_SOFTMAX, ok);
  } else if (key == "marginal") {
    l = create(CULOSS_MARGINAL_CE, ok);
  }
  if (ok.status != CULOSS_SUCCESS) {
    culoss_loss_destroy(l);
    return nullptr;
  }
  return l;
}

std::unique_ptr<LossRunner> make_cpu_runner(int64_t n, int64_t h, int64_t w, int64_t c) {
  return std::unique_ptr<LossRunner>(new CpuRunner(n, h, w, c));
}

#ifndef CULOSS_DEMO_WITH_CUDA
std::unique_ptr<LossRunner> make_cuda_runner(int64_t, int64_t, int64_t, int64_t,
                                             std::string* error) {
  *error =
      "this culoss-demo was built without CUDA (nvcc was not found when the project was "
      "configured, or CULOSS_ENABLE_CUDA=OFF); rebuild with CUDA or use --device cpu";
  return nullptr;
}
#endif

}  // namespace demo

// culoss-demo: the losses (culoss descriptors) and where they run (CPU, or a CUDA device).
#pragma once

#include <culoss/culoss.h>

#include <cstdint>
#include <memory>
#include <string>

namespace demo {

// One loss of the demo: a culoss descriptor built from a short key.
struct LossInfo {
  const char* key;          // command-line name: "ce", "dice", "dice+ce", ...
  const char* name;         // table name
  bool missing_labels;      // trained on the set with missing annotations
  const char* description;  // the culoss call, for --help and docs/demo.md
};
extern const LossInfo kLosses[];
extern const int kNumLosses;

// Creates the descriptor of kLosses[index] for channels-last logits (CLASS_AXIS = -1).
// Returns nullptr and sets *error on failure.
culoss_loss make_loss(int index, std::string* error);

struct LossTiming {
  double culoss_s = 0.0;  // inside culoss_compute (on CUDA: until the value is on the host)
  double copy_s = 0.0;    // host <-> device copies (CUDA only)
};

// Computes a loss and its gradient for one batch of channels-last logits (N, H, W, C) on the
// host, with class-index targets (N, H, W) uint8 on the host. The gradient comes back to the
// host. The CPU runner hands culoss the host buffers; the CUDA runner copies the logits and
// labels to the device, runs culoss there and copies the gradient back.
class LossRunner {
 public:
  virtual ~LossRunner() = default;
  virtual const std::string& description() const = 0;
  virtual bool compute(culoss_loss loss, const float* logits, const uint8_t* labels, float* grad,
                       float* value, LossTiming* timing, std::string* error) = 0;
};

// device: "cpu" or "cuda". Shapes are fixed for the runner's lifetime.
std::unique_ptr<LossRunner> make_cpu_runner(int64_t n, int64_t h, int64_t w, int64_t c);
// nullptr with *error set when CUDA is not built in or no device is usable.
std::unique_ptr<LossRunner> make_cuda_runner(int64_t n, int64_t h, int64_t w, int64_t c,
                                             std::string* error);

}  // namespace demo

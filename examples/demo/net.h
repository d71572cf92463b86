// culoss-demo: a small fully convolutional network, forward and backward written by hand.
//
// Layout: activations are channels-last (H, W, C) per image, so the logits of a batch are
// (N, H, W, classes) and culoss reads them with CLASS_AXIS = -1. Layers: 3x3 convolutions with
// dilations 1, 2, 4, 8, 1 (ReLU after each; receptive field 33 x 33 pixels) and a 1x1
// classifier. Zero padding keeps the image size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace demo {

struct LayerSpec {
  int ci, co, k, dil;  // input/output channels, kernel size (3 or 1), dilation
  bool relu;
};

class Net {
 public:
  // width: channels of the hidden layers (one of supported_widths()).
  Net(int width, int classes, uint64_t seed);
  static bool supported_width(int width);
  static const char* supported_widths();  // for messages: "8, 16, 24 or 32"

  // Per-image scratch memory (activations kept for the backward pass).
  struct Work {
    std::vector<std::vector<float>> act;  // act[l]: output of layer l-1 (post-ReLU), l >= 1
    std::vector<float> g, dx, wt;
  };

  // image: H x W (one channel); logits: H x W x classes.
  void forward(const float* image, int H, int W, Work* work, float* logits) const;
  // Accumulates d(loss)/d(params) into dparams (num_params() floats), given the logits'
  // gradient; needs the Work of the matching forward call.
  void backward(const float* image, int H, int W, const float* dlogits, Work* work,
                float* dparams) const;

  std::vector<float> params;  // per layer: weights [k*k][ci][co], then bias [co]
  size_t num_params() const { return params.size(); }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  int receptive_field() const;
  int64_t macs_per_pixel() const;  // multiply-adds of one forward pass, per pixel
  std::string describe() const;

 private:
  std::vector<LayerSpec> layers_;
  std::vector<size_t> woff_, boff_;
};

// Adam (Kingma & Ba) on a flat parameter vector.
class Adam {
 public:
  Adam(size_t n, double lr) : lr_(lr), m_(n, 0.0f), v_(n, 0.0f) {}
  void step(std::vector<float>* params, const std::vector<float>& grad);

 private:
  double lr_, b1_ = 0.9, b2_ = 0.999, eps_ = 1e-8;
  int64_t t_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace demo

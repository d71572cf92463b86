// culoss-demo: the synthetic segmentation set (in the spirit of seed 003: an ellipse, a
// rectangle and a circle on a background, three classes plus background).
#pragma once

#include <cstdint>
#include <vector>

namespace demo {

enum Class : uint8_t { kBackground = 0, kEllipse = 1, kRectangle = 2, kCircle = 3 };
constexpr int kClasses = 4;
extern const char* const kClassNames[kClasses];  // "background", "ellipse", ...

struct Dataset {
  int count = 0, size = 0;      // count images of size x size pixels
  std::vector<float> images;    // count x size x size, roughly zero mean, unit scale
  std::vector<uint8_t> labels;  // count x size x size, complete annotation
  int64_t pixels() const { return int64_t(size) * size; }
  const float* image(int i) const { return images.data() + i * pixels(); }
  const uint8_t* label(int i) const { return labels.data() + i * pixels(); }
};

// `count` images, each with one ellipse, one rectangle and one (small) circle at random
// positions and sizes on a noisy, textured background. Deterministic in `seed`.
Dataset make_dataset(int count, int size, uint64_t seed);

// Labels with missing annotations: in round(fraction * count) images (chosen with `seed`) the
// pixels of one class are labelled background. `cls` is that class (1..3), or 0 for a random
// class per image. dropped[i] is the class removed from image i (0: none).
std::vector<uint8_t> drop_annotations(const Dataset& set, double fraction, int cls, uint64_t seed,
                                      std::vector<int>* dropped);

}  // namespace demo

// culoss-demo: the synthetic segmentation set.
#include "data.h"

#include <cmath>

#include "rng.h"

namespace demo {

const char* const kClassNames[kClasses] = {"background", "ellipse", "rectangle", "circle"};

namespace {

constexpr double kPi = 3.14159265358979323846;

// Brightness added to the background inside each object. The ellipse and the circle are
// equally bright, so telling them apart needs their size and shape, not the pixel value.
constexpr float kContrast[kClasses] = {0.0f, 0.9f, -0.9f, 0.9f};
constexpr float kNoise = 0.45f;    // per-pixel Gaussian noise
constexpr float kTexture = 0.30f;  // amplitude of the background's texture

struct Shape {
  int cls;
  double cy, cx, radius;  // centre and a bounding radius (for placement)
  double a, b, angle;     // ellipse semi-axes / rectangle half-sides / circle radius
};

bool inside(const Shape& s, double y, double x) {
  const double dy = y - s.cy, dx = x - s.cx;
  switch (s.cls) {
    case kEllipse: {
      const double c = std::cos(s.angle), sn = std::sin(s.angle);
      const double u = (dx * c + dy * sn) / s.a, v = (-dx * sn + dy * c) / s.b;
      return u * u + v * v <= 1.0;
    }
    case kRectangle:
      return std::fabs(dx) <= s.a && std::fabs(dy) <= s.b;
    default:
      return dx * dx + dy * dy <= s.a * s.a;
  }
}

}  // namespace

Dataset make_dataset(int count, int size, uint64_t seed) {
  Dataset d;
  d.count = count;
  d.size = size;
  d.images.assign(size_t(count) * d.pixels(), 0.0f);
  d.labels.assign(size_t(count) * d.pixels(), kBackground);
  Rng rng(seed);
  const double S = size;
  for (int n = 0; n < count; ++n) {
    // Three objects, sizes relative to the image; the circle is small (class imbalance).
    Shape shapes[3];
    shapes[0] = {kEllipse,
                 0,
                 0,
                 0,
                 S * (0.14 + 0.10 * rng.uniform()),
                 S * (0.08 + 0.05 * rng.uniform()),
                 kPi * rng.uniform()};
    shapes[0].radius = shapes[0].a;
    shapes[1] = {
        kRectangle, 0, 0, 0, S * (0.07 + 0.08 * rng.uniform()), S * (0.07 + 0.08 * rng.uniform()),
        0};
    shapes[1].radius = std::hypot(shapes[1].a, shapes[1].b);
    shapes[2] = {kCircle, 0, 0, 0, S * (0.035 + 0.03 * rng.uniform()), 0, 0};
    shapes[2].radius = shapes[2].a;
    // Random positions, apart from each other when a few tries allow it.
    for (int tries = 0; tries < 200; ++tries) {
      for (Shape& s : shapes) {
        const double lo = s.radius + 1.0, hi = S - s.radius - 1.0;
        s.cy = lo + (hi - lo) * rng.uniform();
        s.cx = lo + (hi - lo) * rng.uniform();
      }
      bool apart = true;
      for (int i = 0; i < 3; ++i)
        for (int j = i + 1; j < 3; ++j)
          if (std::hypot(shapes[i].cy - shapes[j].cy, shapes[i].cx - shapes[j].cx) <
              shapes[i].radius + shapes[j].radius + 2.0)
            apart = false;
      if (apart) break;
    }
    // Background: a few random gratings and an illumination gradient.
    double fy[3], fx[3], ph[3];
    for (int k = 0; k < 3; ++k) {
      fy[k] = (rng.uniform() - 0.5) * 0.9;
      fx[k] = (rng.uniform() - 0.5) * 0.9;
      ph[k] = 2 * kPi * rng.uniform();
    }
    const double gy = (rng.uniform() - 0.5) * 0.6,
                 gx = (rng.uniform() - 0.5) * 0.6;  // +-0.3 at the edges
    float* img = d.images.data() + n * d.pixels();
    uint8_t* lab = d.labels.data() + n * d.pixels();
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        double t = 0.0;
        for (int k = 0; k < 3; ++k) t += std::sin(fy[k] * y + fx[k] * x + ph[k]);
        uint8_t c = kBackground;
        for (const Shape& s : shapes)  // later shapes are drawn on top
          if (inside(s, y + 0.5, x + 0.5)) c = uint8_t(s.cls);
        lab[y * size + x] = c;
        img[y * size + x] =
            float(kTexture / std::sqrt(3.0) * t + gy * (2 * y / S - 1) + gx * (2 * x / S - 1)) +
            kContrast[c] + kNoise * float(rng.normal());
      }
  }
  return d;
}

std::vector<uint8_t> drop_annotations(const Dataset& set, double fraction, int cls, uint64_t seed,
                                      std::vector<int>* dropped) {
  std::vector<uint8_t> labels = set.labels;
  dropped->assign(set.count, 0);
  std::vector<int> order(set.count);
  for (int i = 0; i < set.count; ++i) order[i] = i;
  Rng rng(seed);
  for (int i = set.count - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  const int k = int(std::lround(fraction * set.count));
  for (int j = 0; j < k; ++j) {
    const int n = order[j];
    const int c = cls > 0 ? cls : 1 + int(rng.below(kClasses - 1));
    (*dropped)[n] = c;
    uint8_t* lab = labels.data() + n * set.pixels();
    for (int64_t p = 0; p < set.pixels(); ++p)
      if (lab[p] == c) lab[p] = kBackground;
  }
  return labels;
}

}  // namespace demo

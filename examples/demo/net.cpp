// culoss-demo: the network's forward and backward passes.
//
// The convolutions are direct loops (no im2col) over channels-last tensors: for each tap of
// the kernel and each output pixel, the whole output-channel vector is updated at once
// (contiguous, vectorized by the compiler). Channel counts are template parameters so the inner
// loops have fixed trip counts.
#include "net.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "rng.h"

namespace demo {
namespace {

// Four floats: GCC/Clang vector extensions (SSE on x86-64, NEON on arm64). Loads and stores
// go through memcpy, so no alignment is assumed.
typedef float v4 __attribute__((vector_size(16)));
inline v4 load4(const float* p) {
  v4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, v4 v) { std::memcpy(p, &v, sizeof v); }

// out[p][o] += sum_t sum_i in[p + sign * off_t][i] * w[t][i][o], zero outside the image.
// CO is a multiple of 4. Two output pixels at a time share each weight load when the
// accumulators of both fit in registers.
template <int CI, int CO>
void conv_acc(const float* __restrict in, float* __restrict out, const float* __restrict w, int H,
              int W, int k, int dil, int sign) {
  static_assert(CO % 4 == 0, "output channels must be a multiple of 4");
  constexpr int V = CO / 4, PB = V <= 4 ? 2 : 1;
  const int r = k / 2;
  for (int t = 0; t < k * k; ++t) {
    const int dy = sign * (t / k - r) * dil, dx = sign * (t % k - r) * dil;
    const float* __restrict wt = w + t * CI * CO;
    const int y0 = std::max(0, -dy), y1 = std::min(H, H - dy);
    const int x0 = std::max(0, -dx), x1 = std::min(W, W - dx);
    for (int y = y0; y < y1; ++y) {
      float* o = out + (size_t(y) * W + x0) * CO;
      const float* s = in + (size_t(y + dy) * W + x0 + dx) * CI;
      int x = x0;
      for (; x + PB <= x1; x += PB, o += PB * CO, s += PB * CI) {
        v4 acc[PB][V];
#pragma GCC unroll 16
        for (int b = 0; b < PB; ++b)
#pragma GCC unroll 16
          for (int j = 0; j < V; ++j) acc[b][j] = load4(o + b * CO + 4 * j);
        for (int i = 0; i < CI; ++i) {
          v4 xv[PB];
#pragma GCC unroll 16
          for (int b = 0; b < PB; ++b) xv[b] = v4{} + s[b * CI + i];
#pragma GCC unroll 16
          for (int j = 0; j < V; ++j) {
            const v4 wv = load4(wt + i * CO + 4 * j);
#pragma GCC unroll 16
            for (int b = 0; b < PB; ++b) acc[b][j] += wv * xv[b];
          }
        }
#pragma GCC unroll 16
        for (int b = 0; b < PB; ++b)
#pragma GCC unroll 16
          for (int j = 0; j < V; ++j) store4(o + b * CO + 4 * j, acc[b][j]);
      }
      for (; x < x1; ++x, o += CO, s += CI) {
        v4 acc[V];
#pragma GCC unroll 16
        for (int j = 0; j < V; ++j) acc[j] = load4(o + 4 * j);
        for (int i = 0; i < CI; ++i) {
          const v4 xv = v4{} + s[i];
#pragma GCC unroll 16
          for (int j = 0; j < V; ++j) acc[j] += load4(wt + i * CO + 4 * j) * xv;
        }
#pragma GCC unroll 16
        for (int j = 0; j < V; ++j) store4(o + 4 * j, acc[j]);
      }
    }
  }
}

// dw[t][i][o] += sum_p in[p + off_t][i] * dout[p][o]: for each tap, IB input channels at a
// time, with their rows of dw in registers over the whole image.
template <int CI, int CO>
void conv_wgrad(const float* __restrict in, const float* __restrict dout, float* __restrict dw,
                int H, int W, int k, int dil) {
  static_assert(CO % 4 == 0, "output channels must be a multiple of 4");
  constexpr int V = CO / 4;
  constexpr int IB0 = V >= 8 ? 1 : 8 / V;
  constexpr int IB = CI % IB0 == 0 ? IB0 : 1;
  const int r = k / 2;
  for (int t = 0; t < k * k; ++t) {
    const int dy = (t / k - r) * dil, dx = (t % k - r) * dil;
    const int y0 = std::max(0, -dy), y1 = std::min(H, H - dy);
    const int x0 = std::max(0, -dx), x1 = std::min(W, W - dx);
    if (y0 >= y1 || x0 >= x1) continue;
    for (int i0 = 0; i0 < CI; i0 += IB) {
      v4 acc[IB][V];
#pragma GCC unroll 16
      for (int b = 0; b < IB; ++b)
#pragma GCC unroll 16
        for (int j = 0; j < V; ++j) acc[b][j] = v4{};
      for (int y = y0; y < y1; ++y) {
        const float* g = dout + (size_t(y) * W + x0) * CO;
        const float* s = in + (size_t(y + dy) * W + x0 + dx) * CI + i0;
        for (int x = x0; x < x1; ++x, g += CO, s += CI) {
          v4 gv[V];
#pragma GCC unroll 16
          for (int j = 0; j < V; ++j) gv[j] = load4(g + 4 * j);
#pragma GCC unroll 16
          for (int b = 0; b < IB; ++b) {
            const v4 xv = v4{} + s[b];
#pragma GCC unroll 16
            for (int j = 0; j < V; ++j) acc[b][j] += gv[j] * xv;
          }
        }
      }
      float* d = dw + (size_t(t) * CI + i0) * CO;
#pragma GCC unroll 16
      for (int b = 0; b < IB; ++b)
#pragma GCC unroll 16
        for (int j = 0; j < V; ++j)
          store4(d + b * CO + 4 * j, load4(d + b * CO + 4 * j) + acc[b][j]);
    }
  }
}

using ConvFn = void (*)(const float*, float*, const float*, int, int, int, int, int);
using WGradFn = void (*)(const float*, const float*, float*, int, int, int, int);

template <int CI>
ConvFn conv_for(int co) {
  switch (co) {
    case 4:
      return conv_acc<CI, 4>;
    case 8:
      return conv_acc<CI, 8>;
    case 16:
      return conv_acc<CI, 16>;
    case 24:
      return conv_acc<CI, 24>;
    case 32:
      return conv_acc<CI, 32>;
  }
  return nullptr;
}
ConvFn conv_for(int ci, int co) {
  switch (ci) {
    case 1:
      return conv_for<1>(co);
    case 4:
      return conv_for<4>(co);
    case 8:
      return conv_for<8>(co);
    case 16:
      return conv_for<16>(co);
    case 24:
      return conv_for<24>(co);
    case 32:
      return conv_for<32>(co);
  }
  return nullptr;
}
template <int CI>
WGradFn wgrad_for(int co) {
  switch (co) {
    case 4:
      return conv_wgrad<CI, 4>;
    case 8:
      return conv_wgrad<CI, 8>;
    case 16:
      return conv_wgrad<CI, 16>;
    case 24:
      return conv_wgrad<CI, 24>;
    case 32:
      return conv_wgrad<CI, 32>;
  }
  return nullptr;
}
WGradFn wgrad_for(int ci, int co) {
  switch (ci) {
    case 1:
      return wgrad_for<1>(co);
    case 8:
      return wgrad_for<8>(co);
    case 16:
      return wgrad_for<16>(co);
    case 24:
      return wgrad_for<24>(co);
    case 32:
      return wgrad_for<32>(co);
  }
  return nullptr;
}

}  // namespace

bool Net::supported_width(int width) {
  return width == 8 || width == 16 || width == 24 || width == 32;
}
const char* Net::supported_widths() { return "8, 16, 24 or 32"; }

Net::Net(int width, int classes, uint64_t seed) {
  layers_ = {{1, width, 3, 1, true},     {width, width, 3, 2, true}, {width, width, 3, 4, true},
             {width, width, 3, 8, true}, {width, width, 3, 1, true}, {width, classes, 1, 1, false}};
  Rng rng(seed);
  size_t off = 0;
  for (const LayerSpec& l : layers_) {
    woff_.push_back(off);
    off += size_t(l.k) * l.k * l.ci * l.co;
    boff_.push_back(off);
    off += l.co;
  }
  params.assign(off, 0.0f);
  for (size_t li = 0; li < layers_.size(); ++li) {
    const LayerSpec& l = layers_[li];
    const int fan_in = l.k * l.k * l.ci;
    // He initialization for ReLU layers; small logits (near-uniform softmax) at the start.
    const float sd = l.relu ? std::sqrt(2.0f / fan_in) : 0.1f * std::sqrt(1.0f / fan_in);
    for (int j = 0; j < fan_in * l.co; ++j) params[woff_[li] + j] = sd * float(rng.normal());
  }
}

int Net::receptive_field() const {
  int rf = 1;
  for (const LayerSpec& l : layers_) rf += (l.k - 1) * l.dil;
  return rf;
}

int64_t Net::macs_per_pixel() const {
  int64_t m = 0;
  for (const LayerSpec& l : layers_) m += int64_t(l.k) * l.k * l.ci * l.co;
  return m;
}

std::string Net::describe() const {
  std::ostringstream s;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& l = layers_[i];
    s << (i ? " -> " : "") << l.k << "x" << l.k;
    if (l.dil > 1) s << "/d" << l.dil;
    s << " " << l.co;
  }
  s << " (" << params.size() << " parameters, receptive field " << receptive_field() << "x"
    << receptive_field() << ")";
  return s.str();
}

void Net::forward(const float* image, int H, int W, Work* work, float* logits) const {
  const size_t P = size_t(H) * W;
  const size_t L = layers_.size();
  work->act.resize(L);
  const float* in = image;
  for (size_t li = 0; li < L; ++li) {
    const LayerSpec& l = layers_[li];
    float* out;
    if (li + 1 == L) {
      out = logits;
    } else {
      work->act[li + 1].resize(P * l.co);
      out = work->act[li + 1].data();
    }
    const float* b = params.data() + boff_[li];
    for (size_t p = 0; p < P; ++p) std::memcpy(out + p * l.co, b, sizeof(float) * l.co);
    conv_for(l.ci, l.co)(in, out, params.data() + woff_[li], H, W, l.k, l.dil, +1);
    if (l.relu)
      for (size_t j = 0; j < P * l.co; ++j) out[j] = std::max(out[j], 0.0f);
    in = out;
  }
}

void Net::backward(const float* image, int H, int W, const float* dlogits, Work* work,
                   float* dparams) const {
  const size_t P = size_t(H) * W;
  const size_t L = layers_.size();
  const float* g = dlogits;  // d(loss)/d(output of layer li), after the ReLU's mask
  for (size_t li = L; li-- > 0;) {
    const LayerSpec& l = layers_[li];
    const float* in = li == 0 ? image : work->act[li].data();
    wgrad_for(l.ci, l.co)(in, g, dparams + woff_[li], H, W, l.k, l.dil);
    float* db = dparams + boff_[li];
    for (size_t p = 0; p < P; ++p)
      for (int o = 0; o < l.co; ++o) db[o] += g[p * l.co + o];
    if (li == 0) break;
    // d(input) = transposed convolution: weights transposed per tap, offsets mirrored.
    const int taps = l.k * l.k;
    work->wt.resize(size_t(taps) * l.ci * l.co);
    const float* w = params.data() + woff_[li];
    for (int t = 0; t < taps; ++t)
      for (int i = 0; i < l.ci; ++i)
        for (int o = 0; o < l.co; ++o)
          work->wt[(size_t(t) * l.co + o) * l.ci + i] = w[(size_t(t) * l.ci + i) * l.co + o];
    work->dx.assign(P * l.ci, 0.0f);
    conv_for(l.co, l.ci)(g, work->dx.data(), work->wt.data(), H, W, l.k, l.dil, -1);
    const float* a = work->act[li].data();  // the input of this layer: post-ReLU
    for (size_t j = 0; j < P * l.ci; ++j)
      if (a[j] <= 0.0f) work->dx[j] = 0.0f;
    work->g.swap(work->dx);
    g = work->g.data();
  }
}

void Adam::step(std::vector<float>* params, const std::vector<float>& grad) {
  ++t_;
  const double c1 = 1.0 - std::pow(b1_, double(t_)), c2 = 1.0 - std::pow(b2_, double(t_));
  const float a = float(lr_ * std::sqrt(c2) / c1);
  const float b1 = float(b1_), b2 = float(b2_), eps = float(eps_ * std::sqrt(c2));
  float* p = params->data();
  for (size_t j = 0; j < params->size(); ++j) {
    m_[j] = b1 * m_[j] + (1.0f - b1) * grad[j];
    v_[j] = b2 * v_[j] + (1.0f - b2) * grad[j] * grad[j];
    p[j] -= a * m_[j] / (std::sqrt(v_[j]) + eps);
  }
}

}  // namespace demo

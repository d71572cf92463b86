// culoss-demo --check-gradients: checks the hand-written backward pass of the network two ways.
//
// 1. Against a plain double-precision reference: the same network written as naive loops over
//    pixels, taps and channels (no blocking, no vectors), with its own forward and backward.
//    For the same weights and a random upstream gradient, every parameter's gradient must agree
//    to 1e-4 (relative to max(1, |g|)).
// 2. End to end with culoss: the cross-entropy of culoss (float64 value) on the network's
//    logits, differentiated by central differences for a sample of parameters. A ReLU switching
//    inside [-h, h] spoils a difference now and then, so this one is statistical: at most 2%
//    of the sampled parameters may disagree by more than 5% at both step sizes tried.
#include "check.h"

#include <culoss/culoss.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "data.h"
#include "net.h"
#include "rng.h"

namespace demo {
namespace {

// The reference: forward keeps every layer's pre-activation; backward returns the gradient of
// sum(upstream * logits) with respect to all parameters (the Net's layout).
std::vector<double> reference_gradient(const Net& net, const float* image, int S,
                                       const std::vector<float>& upstream,
                                       std::vector<double>* logits) {
  const std::vector<LayerSpec>& layers = net.layers();
  std::vector<size_t> woff, boff;
  size_t off = 0;
  for (const LayerSpec& l : layers) {
    woff.push_back(off);
    off += size_t(l.k) * l.k * l.ci * l.co;
    boff.push_back(off);
    off += l.co;
  }
  const std::vector<float>& w = net.params;
  auto tap = [&](const LayerSpec& l, int t, int y, int x, int* sy, int* sx) {
    const int r = l.k / 2;
    *sy = y + (t / l.k - r) * l.dil;
    *sx = x + (t % l.k - r) * l.dil;
    return *sy >= 0 && *sy < S && *sx >= 0 && *sx < S;
  };
  std::vector<std::vector<double>> act(layers.size() + 1), pre(layers.size());
  act[0].assign(image, image + S * S);
  for (size_t li = 0; li < layers.size(); ++li) {
    const LayerSpec& l = layers[li];
    pre[li].assign(size_t(S) * S * l.co, 0.0);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        for (int o = 0; o < l.co; ++o) {
          double s = w[boff[li] + o];
          for (int t = 0; t < l.k * l.k; ++t) {
            int sy, sx;
            if (!tap(l, t, y, x, &sy, &sx)) continue;
            for (int i = 0; i < l.ci; ++i)
              s += act[li][(size_t(sy) * S + sx) * l.ci + i] *
                   w[woff[li] + (size_t(t) * l.ci + i) * l.co + o];
          }
          pre[li][(size_t(y) * S + x) * l.co + o] = s;
        }
    act[li + 1] = pre[li];
    if (l.relu)
      for (double& v : act[li + 1]) v = std::max(v, 0.0);
  }
  *logits = act.back();
  std::vector<double> grad(w.size(), 0.0), g(upstream.begin(), upstream.end());
  for (size_t li = layers.size(); li-- > 0;) {
    const LayerSpec& l = layers[li];
    if (l.relu)
      for (size_t j = 0; j < g.size(); ++j)
        if (pre[li][j] <= 0.0) g[j] = 0.0;
    std::vector<double> dx(size_t(S) * S * l.ci, 0.0);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x)
        for (int o = 0; o < l.co; ++o) {
          const double go = g[(size_t(y) * S + x) * l.co + o];
          grad[boff[li] + o] += go;
          for (int t = 0; t < l.k * l.k; ++t) {
            int sy, sx;
            if (!tap(l, t, y, x, &sy, &sx)) continue;
            for (int i = 0; i < l.ci; ++i) {
              const size_t wi = woff[li] + (size_t(t) * l.ci + i) * l.co + o;
              const size_t xi = (size_t(sy) * S + sx) * l.ci + i;
              grad[wi] += act[li][xi] * go;
              dx[xi] += w[wi] * go;
            }
          }
        }
    g.swap(dx);
  }
  return grad;
}

bool check_reference(uint64_t seed) {
  bool all_ok = true;
  for (int width : {8, 16}) {
    const int S = 14;
    const Dataset d = make_dataset(1, S, seed);
    Net net(width, kClasses, seed);
    Rng rng(seed + 1);
    for (float& p : net.params) p = p == 0.0f ? 0.1f * float(2 * rng.uniform() - 1) : 1.5f * p;
    std::vector<float> upstream(size_t(S) * S * kClasses);
    for (float& v : upstream) v = float(rng.normal());
    std::vector<double> ref_logits;
    const std::vector<double> ref = reference_gradient(net, d.image(0), S, upstream, &ref_logits);
    Net::Work work;
    std::vector<float> logits(upstream.size()), grad(net.num_params(), 0.0f);
    net.forward(d.image(0), S, S, &work, logits.data());
    net.backward(d.image(0), S, S, upstream.data(), &work, grad.data());
    double worst_logit = 0, worst = 0;
    for (size_t j = 0; j < logits.size(); ++j)
      worst_logit = std::max(worst_logit, std::fabs(logits[j] - ref_logits[j]) /
                                              std::max(1.0, std::fabs(ref_logits[j])));
    for (size_t j = 0; j < grad.size(); ++j)
      worst = std::max(worst, std::fabs(grad[j] - ref[j]) / std::max(1.0, std::fabs(ref[j])));
    const bool ok = worst_logit < 1e-4 && worst < 1e-4;
    std::printf(
        "reference check, width %d: %zu parameters; largest relative difference: logits "
        "%.2g, gradient %.2g%s\n",
        width, grad.size(), worst_logit, worst, ok ? "" : "  <- too large");
    all_ok = all_ok && ok;
  }
  return all_ok;
}

bool check_finite_differences(uint64_t seed) {
  const int S = 12, N = 2;
  const Dataset d = make_dataset(N, S, seed);
  Net net(8, kClasses, seed);
  // Larger logits than the initialization's, so the gradients are well above the noise;
  // nonzero biases (they start at 0), so that no ReLU sits exactly at its kink, where a
  // central difference averages the two one-sided slopes.
  Rng rng(seed);
  for (float& p : net.params) p = p == 0.0f ? 0.1f * float(2 * rng.uniform() - 1) : 1.5f * p;
  culoss_loss loss = nullptr;
  if (culoss_loss_create(&loss, CULOSS_CROSS_ENTROPY) != CULOSS_SUCCESS ||
      culoss_loss_set_int(loss, CULOSS_PARAM_CLASS_AXIS, -1) != CULOSS_SUCCESS) {
    std::printf("culoss: %s\n", culoss_last_error());
    culoss_loss_destroy(loss);
    return false;
  }
  std::vector<float> logits(size_t(N) * S * S * kClasses), grad(logits.size());
  std::vector<Net::Work> work(N);
  int64_t in_shape[4] = {N, S, S, kClasses}, lab_shape[3] = {N, S, S};
  const DLDevice cpu{kDLCPU, 0};
  DLTensor input{logits.data(), cpu, 4, {kDLFloat, 32, 1}, in_shape, nullptr, 0};
  DLTensor target{
      const_cast<uint8_t*>(d.labels.data()), cpu, 3, {kDLUInt, 8, 1}, lab_shape, nullptr, 0};
  DLTensor grad_t{grad.data(), cpu, 4, {kDLFloat, 32, 1}, in_shape, nullptr, 0};
  double v = 0;  // a float64 value: float32 would quantize the differences
  DLTensor out{&v, cpu, 0, {kDLFloat, 64, 1}, nullptr, nullptr, 0};
  bool failed = false;
  auto value = [&](std::vector<float>* dparams) -> double {
    for (int n = 0; n < N; ++n)
      net.forward(d.image(n), S, S, &work[n], &logits[size_t(n) * S * S * kClasses]);
    const culoss_status s = culoss_compute(loss, &input, &target, nullptr, &out,
                                           dparams ? &grad_t : nullptr, 1.0, nullptr, 0, nullptr);
    if (s != CULOSS_SUCCESS) {
      std::printf("culoss_compute: %s: %s\n", culoss_status_string(s), culoss_last_error());
      failed = true;
      return 0.0;
    }
    if (dparams)
      for (int n = 0; n < N; ++n)
        net.backward(d.image(n), S, S, &grad[size_t(n) * S * S * kClasses], &work[n],
                     dparams->data());
    return v;
  };
  std::vector<float> analytic(net.num_params(), 0.0f);
  value(&analytic);
  auto difference = [&](size_t j, float h) {
    const float keep = net.params[j];
    net.params[j] = keep + h;
    const double up = value(nullptr);
    net.params[j] = keep - h;
    const double down = value(nullptr);
    net.params[j] = keep;
    return (up - down) / (double(keep + h) - double(keep - h));
  };
  int checked = 0, bad = 0;
  double worst = 0;
  for (int k = 0; k < 300 && !failed; ++k) {
    const size_t j = size_t(rng.below(int64_t(net.num_params())));
    if (std::fabs(analytic[j]) < 2e-3) continue;
    double rel = 1e300;
    for (float h : {5e-4f, 1e-4f}) {
      const double numeric = difference(j, h);
      rel = std::min(rel, std::fabs(numeric - analytic[j]) / std::max(std::fabs(numeric), 1e-3));
      if (rel <= 0.05) break;
    }
    worst = std::max(worst, rel);
    ++checked;
    if (rel > 0.05) ++bad;
  }
  culoss_loss_destroy(loss);
  const bool ok = !failed && checked >= 50 && bad <= checked / 50;
  std::printf(
      "finite differences through culoss's cross-entropy: %d parameters, %d off by more "
      "than 5%% (largest relative difference %.3g)\n",
      checked, bad, worst);
  return ok;
}

}  // namespace

int check_gradients(uint64_t seed) {
  const bool a = check_reference(seed);
  const bool b = check_finite_differences(seed);
  std::printf("%s\n", a && b ? "PASS" : "FAIL");
  return a && b ? 0 : 1;
}

}  // namespace demo

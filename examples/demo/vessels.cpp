// culoss-demo --scene vessels: thin curvilinear structures, where overlap losses tolerate breaks.
//
// Each image holds 2 to 4 "vessels": smooth random curves 1 to 3 pixels wide, crossing the image,
// drawn brighter than a noisy background. Along every vessel one or two stretches are faint (a
// fifth of the contrast) but still labelled: a prediction that drops them splits one vessel into
// pieces, which costs Dice little (a few pixels) and topology a lot. The same network is trained
// from the same initial weights on the same batches with
//   - Dice (CULOSS_DICE on the vessel class), and
//   - Dice + clDice: one CULOSS_SUM of 0.99 Dice and 0.01 CULOSS_CLDICE (3 skeleton
//     iterations; MONAI's SoftDiceclDiceLoss with alpha = 0.01; see kClDiceWeight),
// and compared on held-out images: Dice of the vessel class, the number of connected components of
// the predicted vessels against the truth (8-connectivity), and the share of the true skeleton
// the prediction covers (topology sensitivity, from the soft skeleton of the labels).
#include "vessels.h"

#include <culoss/culoss.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "loss_runner.h"
#include "net.h"
#include "render.h"
#include "rng.h"

namespace demo {

namespace {

constexpr double kPi = 3.14159265358979323846;
// The demo network's classifier has 4 outputs (its kernels come in widths of 4 and more):
// labels are 0 (background) and 1 (vessel), classes 2 and 3 are never present and are learnt
// away by both losses alike. A pixel is predicted a vessel when class 1 has the largest logit.
constexpr int kVesselClasses = 4;

struct VesselSet {
  int count = 0, size = 0;
  std::vector<float> images;
  std::vector<uint8_t> labels;
  int64_t pixels() const { return int64_t(size) * size; }
  const float* image(int i) const { return images.data() + i * pixels(); }
  const uint8_t* label(int i) const { return labels.data() + i * pixels(); }
};

VesselSet make_vessels(int count, int size, uint64_t seed) {
  VesselSet d;
  d.count = count;
  d.size = size;
  d.images.assign(size_t(count) * d.pixels(), 0.0f);
  d.labels.assign(size_t(count) * d.pixels(), 0);
  Rng rng(seed);
  const int S = size;
  std::vector<float> contrast(d.pixels());
  for (int n = 0; n < count; ++n) {
    std::fill(contrast.begin(), contrast.end(), 0.0f);
    uint8_t* lab = d.labels.data() + n * d.pixels();
    const int vessels = 2 + int(rng.below(3));
    for (int v = 0; v < vessels; ++v) {
      // Start on a random border, head inwards, bend smoothly.
      double y, x, a;
      const int side = int(rng.below(4));
      const double t = rng.uniform() * (S - 1);
      if (side == 0) y = 0, x = t, a = kPi / 2;
      else if (side == 1) y = S - 1, x = t, a = -kPi / 2;
      else if (side == 2) y = t, x = 0, a = 0;
      else y = t, x = S - 1, a = kPi;
      a += (rng.uniform() - 0.5) * 1.2;
      const double radius = 0.6 + 0.9 * rng.uniform();  // 1 to 3 pixels wide
      const int steps = int(3 * S);
      // One or two faint stretches, 5 to 9 pixels long, somewhere along the vessel.
      const int faint = 1 + int(rng.below(2));
      int faint_at[2], faint_len[2];
      for (int f = 0; f < 2; ++f) {
        faint_at[f] = int(S * 0.4 + rng.uniform() * S * 1.2);
        faint_len[f] = 10 + int(rng.below(8));  // half-pixel steps
      }
      double da = 0;
      for (int s = 0; s < steps; ++s) {
        da = 0.85 * da + 0.06 * rng.normal();
        a += da;
        y += 0.5 * std::sin(a);
        x += 0.5 * std::cos(a);
        if (y < -2 || y > S + 1 || x < -2 || x > S + 1) break;
        bool dim = false;
        for (int f = 0; f < faint; ++f) dim = dim || (s >= faint_at[f] && s < faint_at[f] + faint_len[f]);
        const float c = dim ? 0.18f : 0.9f;
        const int r = int(std::ceil(radius));
        for (int py = int(y) - r; py <= int(y) + r; ++py)
          for (int px = int(x) - r; px <= int(x) + r; ++px) {
            if (py < 0 || py >= S || px < 0 || px >= S) continue;
            if ((py - y) * (py - y) + (px - x) * (px - x) > radius * radius) continue;
            lab[py * S + px] = 1;
            contrast[py * S + px] = std::max(contrast[py * S + px], c);
          }
      }
    }
    float* img = d.images.data() + n * d.pixels();
    const double gy = rng.normal() * 0.3, gx = rng.normal() * 0.3;
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px)
        img[py * S + px] = float(contrast[py * S + px] + 0.4 * rng.normal() +
                                 gy * (py / double(S) - 0.5) + gx * (px / double(S) - 0.5));
  }
  return d;
}

// Connected components of mask == 1 (8-connectivity).
int components(const uint8_t* mask, int S) {
  std::vector<int> seen(size_t(S) * S, 0), stack;
  int count = 0;
  for (int i = 0; i < S * S; ++i) {
    if (!mask[i] || seen[i]) continue;
    ++count;
    seen[i] = 1;
    stack.push_back(i);
    while (!stack.empty()) {
      const int j = stack.back();
      stack.pop_back();
      const int y = j / S, x = j % S;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= S || xx < 0 || xx >= S) continue;
          const int k = yy * S + xx;
          if (mask[k] && !seen[k]) {
            seen[k] = 1;
            stack.push_back(k);
          }
        }
    }
  }
  return count;
}

// The soft skeleton of a 0/1 mask (the clDice definition, 3 iterations): 1 on its skeleton.
std::vector<uint8_t> skeleton(const uint8_t* mask, int S) {
  auto morph = [&](const std::vector<float>& x, bool dilate) {
    std::vector<float> y(x.size());
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px) {
        float best = x[py * S + px];
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            if (!dilate && dy != 0 && dx != 0) continue;  // erosion: the cross
            const int yy = py + dy, xx = px + dx;
            if (yy < 0 || yy >= S || xx < 0 || xx >= S) continue;
            const float v = x[yy * S + xx];
            best = dilate ? std::max(best, v) : std::min(best, v);
          }
        y[py * S + px] = best;
      }
    return y;
  };
  std::vector<float> x(mask, mask + S * S), s(x.size());
  for (int it = 0; it <= 3; ++it) {
    if (it > 0) x = morph(x, false);
    const std::vector<float> open = morph(morph(x, false), true);
    for (size_t i = 0; i < x.size(); ++i) {
      const float delta = std::max(0.0f, x[i] - open[i]);
      s[i] = it == 0 ? delta : s[i] + std::max(0.0f, delta - s[i] * delta);
    }
  }
  std::vector<uint8_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = s[i] > 0.5f;
  return out;
}

struct Metrics {
  double dice = 0, component_error = 0, same_components = 0, skeleton_recall = 0;
};

struct Trained {
  std::string name;
  Metrics m;
  double seconds = 0;
  std::vector<uint8_t> predictions;  // the first grid images
};

// Both losses on the vessel class alone (class weights 0, 1, 0, 0: the MEAN divides by their
// sum); clDice with weight kClDiceWeight in the sum. Its per-pixel gradients are about 100 times
// Dice's here (ratios of skeleton sums of a few dozen pixels, smoothing 1), and an image-filling
// prediction has an empty soft skeleton, so Tprec = Tsens = 1 and clDice = 0: with weights of
// 0.05 and more (0.3, 0.5 tried) the sum collapses to predicting vessel everywhere (docs/demo.md).
constexpr double kClDiceWeight = 0.01;

culoss_loss make_vessel_loss(bool with_cldice) {
  const double only_vessels[kVesselClasses] = {0.0, 1.0, 0.0, 0.0};
  culoss_loss dice = nullptr, cl = nullptr, sum = nullptr;
  culoss_loss_create(&dice, CULOSS_DICE);
  culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, -1);
  culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, only_vessels, kVesselClasses);
  culoss_loss_set_int(dice, CULOSS_PARAM_CHECK_TARGETS, 0);
  if (!with_cldice) return dice;
  culoss_loss_create(&cl, CULOSS_CLDICE);
  culoss_loss_set_int(cl, CULOSS_PARAM_CLASS_AXIS, -1);
  culoss_loss_set_floats(cl, CULOSS_PARAM_CLASS_WEIGHTS, only_vessels, kVesselClasses);
  culoss_loss_create(&sum, CULOSS_SUM);
  culoss_loss_set_int(sum, CULOSS_PARAM_CHECK_TARGETS, 0);
  culoss_loss_add_term(sum, dice, 1.0 - kClDiceWeight);
  culoss_loss_add_term(sum, cl, kClDiceWeight);
  culoss_loss_destroy(dice);
  culoss_loss_destroy(cl);
  return sum;
}

Metrics evaluate(const Net& net, const VesselSet& set, std::vector<uint8_t>* keep, int keep_n) {
  const int S = set.size;
  const int64_t P = set.pixels();
  Metrics m;
  Net::Work work;
  std::vector<float> logits(size_t(P) * kVesselClasses);
  std::vector<uint8_t> pred(P);
  for (int n = 0; n < set.count; ++n) {
    net.forward(set.image(n), S, S, &work, logits.data());
    for (int64_t i = 0; i < P; ++i) {
      const float* l = &logits[size_t(i) * kVesselClasses];
      pred[i] = l[1] > l[0] && l[1] >= l[2] && l[1] >= l[3];
    }
    const uint8_t* t = set.label(n);
    double inter = 0, sp = 0, st = 0;
    for (int64_t i = 0; i < P; ++i) {
      inter += pred[i] && t[i];
      sp += pred[i];
      st += t[i];
    }
    m.dice += sp + st > 0 ? 2 * inter / (sp + st) : 1.0;
    const int cp = components(pred.data(), S), ct = components(t, S);
    m.component_error += std::abs(cp - ct);
    m.same_components += cp == ct;
    const std::vector<uint8_t> sk = skeleton(t, S);
    double on = 0, all = 0;
    for (int64_t i = 0; i < P; ++i) {
      all += sk[i];
      on += sk[i] && pred[i];
    }
    m.skeleton_recall += all > 0 ? on / all : 1.0;
    if (keep && n < keep_n) keep->insert(keep->end(), pred.begin(), pred.end());
  }
  m.dice /= set.count;
  m.component_error /= set.count;
  m.same_components /= set.count;
  m.skeleton_recall /= set.count;
  return m;
}

bool train(const VesselOptions& o, const VesselSet& train_set, const VesselSet& test, bool cldice,
           int grid, Trained* out) {
  const int S = train_set.size, N = o.batch;
  const int64_t P = train_set.pixels();
  std::unique_ptr<LossRunner> runner = make_cpu_runner(N, S, S, kVesselClasses);
  culoss_loss loss = make_vessel_loss(cldice);
  Net net(o.width, kVesselClasses, o.seed * 7919 + 17);  // the same start for both losses
  Adam adam(net.num_params(), o.lr);
  Rng batch_rng(o.seed * 104729 + 3);  // the same batches
  std::vector<std::vector<float>> dparams(N, std::vector<float>(net.num_params()));
  std::vector<float> logits(size_t(N) * P * kVesselClasses), grad(logits.size());
  std::vector<uint8_t> labels(size_t(N) * P);
  std::vector<int> idx(N);
  std::vector<Net::Work> work(N);
  const auto t0 = std::chrono::steady_clock::now();
  for (int step = 1; step <= o.steps; ++step) {
    for (int b = 0; b < N; ++b) {
      idx[b] = int(batch_rng.below(train_set.count));
      std::memcpy(&labels[size_t(b) * P], train_set.label(idx[b]), P);
      net.forward(train_set.image(idx[b]), S, S, &work[b], &logits[size_t(b) * P * kVesselClasses]);
    }
    float value = 0;
    LossTiming lt;
    std::string error;
    if (!runner->compute(loss, logits.data(), labels.data(), grad.data(), &value, &lt, &error)) {
      std::fprintf(stderr, "culoss-demo: %s\n", error.c_str());
      culoss_loss_destroy(loss);
      return false;
    }
    for (int b = 0; b < N; ++b) {
      std::fill(dparams[b].begin(), dparams[b].end(), 0.0f);
      net.backward(train_set.image(idx[b]), S, S, &grad[size_t(b) * P * kVesselClasses], &work[b],
                   dparams[b].data());
    }
    for (int b = 1; b < N; ++b)
      for (size_t j = 0; j < net.num_params(); ++j) dparams[0][j] += dparams[b][j];
    adam.step(&net.params, dparams[0]);
  }
  culoss_loss_destroy(loss);
  out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out->name = cldice ? "Dice + clDice" : "Dice";
  out->m = evaluate(net, test, &out->predictions, grid);
  return true;
}

void picture(const VesselOptions& o, const VesselSet& test, const std::vector<Trained>& runs,
             int grid) {
  const int S = test.size, scale = std::max(1, 96 / S), cell = S * scale, gap = 6, margin = 8;
  const int cols = 2 + int(runs.size());
  const Rgb white{255, 255, 255}, ink{30, 30, 30}, vessel{230, 85, 60}, back{24, 24, 28};
  Canvas cv(margin * 2 + cols * (cell + gap) - gap, margin * 2 + 24 + grid * (cell + gap) - gap,
            white);
  const char* titles[] = {"INPUT", "TRUTH"};
  for (int c = 0; c < cols; ++c)
    cv.text(margin + c * (cell + gap), margin, c < 2 ? titles[c] : runs[c - 2].name, ink);
  for (int r = 0; r < grid; ++r) {
    const int y0 = margin + 24 + r * (cell + gap);
    const float* img = test.image(r);
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px) {
        const int v = std::clamp(int(128 + 90 * img[py * S + px]), 0, 255);
        cv.fill(margin + px * scale, y0 + py * scale, scale, scale,
                Rgb{uint8_t(v), uint8_t(v), uint8_t(v)});
        cv.fill(margin + (cell + gap) + px * scale, y0 + py * scale, scale, scale,
                test.label(r)[py * S + px] ? vessel : back);
        for (size_t k = 0; k < runs.size(); ++k)
          cv.fill(margin + int(2 + k) * (cell + gap) + px * scale, y0 + py * scale, scale, scale,
                  runs[k].predictions[size_t(r) * S * S + py * S + px] ? vessel : back);
      }
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  std::string error;
  const std::string path = o.out + "/vessels.png";
  if (write_png(cv, path, &error))
    std::printf("wrote %s\n", path.c_str());
  else
    std::printf("no picture: %s\n", error.c_str());
}

}  // namespace

int run_vessels(const VesselOptions& o) {
  std::printf(
      "culoss-demo --scene vessels: thin curves with faint stretches (labelled), Dice against "
      "Dice + clDice\n(the same network, initial weights and batches; %d steps of %d images of "
      "%dx%d)\n\n",
      o.steps, o.batch, o.size, o.size);
  const VesselSet train_set = make_vessels(o.train, o.size, o.seed);
  const VesselSet test = make_vessels(o.test, o.size, o.seed + 1000003);
  const int grid = std::min(4, o.test);
  std::vector<Trained> runs(2);
  for (int k = 0; k < 2; ++k)
    if (!train(o, train_set, test, k == 1, grid, &runs[k])) return 1;
  double truth_components = 0;
  for (int n = 0; n < test.count; ++n) truth_components += components(test.label(n), test.size);
  std::printf("held-out: %d images, %.2f vessel components per image in the truth\n\n", test.count,
              truth_components / test.count);
  std::printf("| loss | vessel Dice | skeleton recall | |components - truth| | same count | s |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (const Trained& r : runs)
    std::printf("| %s | %.3f | %.3f | %.2f | %.0f%% | %.0f |\n", r.name.c_str(), r.m.dice,
                r.m.skeleton_recall, r.m.component_error, 100 * r.m.same_components, r.seconds);
  if (!o.out.empty()) picture(o, test, runs, grid);
  return 0;
}

}  // namespace demo

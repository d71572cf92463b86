// culoss-demo: trains a small fully convolutional network on a synthetic segmentation set with
// each of several culoss losses (same data, same initial weights, same batches, same step
// budget) and compares them on held-out images.
//
// The points it measures (see docs/demo.md):
//  - with missing annotations (one class labelled background in a fraction of the training
//    images), cross-entropy learns to suppress that class; MARGINAL_CE does not punish a
//    prediction of a class the image's annotator left out, and recovers it;
//  - on a small object, the region losses (Dice, Tversky, Lovasz) and their combination with
//    cross-entropy behave differently from plain cross-entropy.
#include <culoss/culoss.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "data.h"
#include "loss_runner.h"
#include "net.h"
#include "render.h"
#include "rng.h"
#include "vessels.h"

namespace demo {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------------------------------------
// Options

struct Options {
  int steps = 400, batch = 8, size = 48, width = 8, train = 512, test = 64;
  double lr = 0.01, missing = 0.5;
  int missing_class = kRectangle;  // 0: a random class per image
  std::vector<int> losses;         // indices into kLosses; empty: all
  uint64_t seed = 1;
  std::string device = "cpu", out;
  int threads = 0;    // 0: one per core (at most 8)
  int progress = -1;  // -1: when stdout is a terminal
  bool quick = false, check_gradients = false;
  std::string scene = "shapes";  // or "vessels" (vessels.cpp)
};

void usage(std::FILE* f) {
  std::fprintf(
      f,
      "usage: culoss-demo [options]\n"
      "\n"
      "Trains a small fully convolutional network (five 3x3 convolutions with ReLU, dilations\n"
      "1-2-4-8-1, and a 1x1 classifier; forward and backward written in this example) on a seeded\n"
      "synthetic segmentation set (an ellipse, a rectangle and a small circle on a noisy textured\n"
      "background) with each loss below, for the same number of steps from the same initial\n"
      "weights, and prints held-out Dice and IoU per class, the final loss, and the time per\n"
      "step spent inside culoss.\n"
      "\n"
      "options:\n"
      "  --scene NAME       shapes (the losses compared on shapes) or vessels (thin curves:\n"
      "                     Dice against Dice + clDice) [shapes]\n"
      "  --steps N          training steps per loss [400]\n"
      "  --batch N          images per step [8]\n"
      "  --size N           image side in pixels, 16..256 [48]\n"
      "  --width N          channels of the hidden layers: %s [8]\n"
      "  --lr X             Adam learning rate [0.01]\n"
      "  --train N          training images [512]\n"
      "  --test N           held-out images [64]\n"
      "  --missing X        fraction of training images whose annotation of one class is missing\n"
      "                     (its pixels labelled background), for the losses ce-missing and\n"
      "                     marginal; 0 leaves those two out [0.5]\n"
      "  --missing-class C  the class left out: ellipse, rectangle, circle, or random (one per\n"
      "                     image) [rectangle]\n"
      "  --losses LIST      comma-separated subset of the losses below [all]\n"
      "  --seed N           seed of the data, the initial weights and the batches [1]\n"
      "  --device D         cpu, or cuda: culoss computes the loss and its gradient on the GPU\n"
      "                     (the network stays on the CPU; logits and gradients are copied) [cpu]\n"
      "  --threads N        CPU threads for the network [one per core, at most 8]\n"
      "  --out DIR          write predictions.png and curves.png into DIR (needs libpng)\n"
      "  --quick            a tiny budget for CI: 8 steps, batch 4, 32 training and 8 held-out\n"
      "                     images of 32x32 (options given explicitly still apply)\n"
      "  --progress, --no-progress\n"
      "                     progress bar on stdout [only when stdout is a terminal]\n"
      "  --check-gradients  check the network's hand-written backward pass against a plain\n"
      "                     double-precision reference and finite differences, then exit\n"
      "  --help             this text\n"
      "\n"
      "losses:\n",
      Net::supported_widths());
  for (int i = 0; i < kNumLosses; ++i)
    std::fprintf(f, "  %-11s %s\n", kLosses[i].key, kLosses[i].description);
}

[[noreturn]] void bad_option(const std::string& msg) {
  std::fprintf(stderr, "culoss-demo: %s\n(culoss-demo --help lists the options)\n", msg.c_str());
  std::exit(2);
}

long long parse_int(const std::string& opt, const std::string& text, long long lo, long long hi) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
    bad_option(opt + " expects an integer from " + std::to_string(lo) + " to " +
               std::to_string(hi) + ", got '" + text + "'");
  return v;
}

double parse_real(const std::string& opt, const std::string& text, double lo, double hi,
                  bool lo_open) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  char range[96];
  std::snprintf(range, sizeof range, "a number %s %g and <= %g", lo_open ? ">" : ">=", lo, hi);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v) ||
      (lo_open ? v <= lo : v < lo) || v > hi)
    bad_option(opt + " expects " + range + ", got '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  bool given_steps = false, given_train = false, given_test = false, given_batch = false;
  bool given_size = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i], value;
    const size_t eq = arg.find('=');
    bool has_value = false;
    if (arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) bad_option(arg + " needs a value");
      return argv[++i];
    };
    auto no_value = [&]() {
      if (has_value) bad_option(arg + " takes no value");
    };
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    } else if (arg == "--scene") {
      o.scene = next();
      if (o.scene != "shapes" && o.scene != "vessels")
        bad_option("--scene takes shapes or vessels; got " + o.scene);
    } else if (arg == "--steps") {
      o.steps = int(parse_int(arg, next(), 1, 1000000));
      given_steps = true;
    } else if (arg == "--batch") {
      o.batch = int(parse_int(arg, next(), 1, 1024));
      given_batch = true;
    } else if (arg == "--size") {
      o.size = int(parse_int(arg, next(), 16, 256));
      given_size = true;
    } else if (arg == "--width") {
      const std::string v = next();
      o.width = int(parse_int(arg, v, 1, 1024));
      if (!Net::supported_width(o.width))
        bad_option(arg + " expects " + Net::supported_widths() + ", got '" + v + "'");
    } else if (arg == "--lr") {
      o.lr = parse_real(arg, next(), 0.0, 10.0, true);
    } else if (arg == "--train") {
      o.train = int(parse_int(arg, next(), 1, 1000000));
      given_train = true;
    } else if (arg == "--test") {
      o.test = int(parse_int(arg, next(), 1, 1000000));
      given_test = true;
    } else if (arg == "--missing") {
      o.missing = parse_real(arg, next(), 0.0, 1.0, false);
    } else if (arg == "--missing-class") {
      const std::string v = next();
      if (v == "random") {
        o.missing_class = 0;
      } else {
        int c = 0;
        for (int k = 1; k < kClasses; ++k)
          if (v == kClassNames[k]) c = k;
        if (!c) bad_option(arg + " expects ellipse, rectangle, circle or random, got '" + v + "'");
        o.missing_class = c;
      }
    } else if (arg == "--losses") {
      const std::string v = next();
      o.losses.clear();
      size_t start = 0;
      while (start <= v.size()) {
        const size_t comma = std::min(v.find(',', start), v.size());
        const std::string key = v.substr(start, comma - start);
        int found = -1;
        for (int k = 0; k < kNumLosses; ++k)
          if (key == kLosses[k].key) found = k;
        if (found < 0) {
          std::string names;
          for (int k = 0; k < kNumLosses; ++k) names += std::string(k ? ", " : "") + kLosses[k].key;
          bad_option("--losses: unknown loss '" + key + "' (known: " + names + ")");
        }
        if (std::find(o.losses.begin(), o.losses.end(), found) == o.losses.end())
          o.losses.push_back(found);
        start = comma + 1;
      }
    } else if (arg == "--seed") {
      o.seed = uint64_t(parse_int(arg, next(), 0, (1LL << 62)));
    } else if (arg == "--device") {
      o.device = next();
      if (o.device != "cpu" && o.device != "cuda")
        bad_option("--device expects cpu or cuda, got '" + o.device + "'");
    } else if (arg == "--threads") {
      o.threads = int(parse_int(arg, next(), 1, 256));
    } else if (arg == "--out") {
      o.out = next();
      if (o.out.empty()) bad_option("--out needs a directory");
    } else if (arg == "--quick") {
      no_value();
      o.quick = true;
    } else if (arg == "--progress") {
      no_value();
      o.progress = 1;
    } else if (arg == "--no-progress") {
      no_value();
      o.progress = 0;
    } else if (arg == "--check-gradients") {
      no_value();
      o.check_gradients = true;
    } else {
      bad_option("unknown option '" + std::string(argv[i]) + "'");
    }
  }
  if (o.quick) {  // a tiny budget: seconds, for CI
    if (!given_steps) o.steps = 8;
    if (!given_train) o.train = 32;
    if (!given_test) o.test = 8;
    if (!given_batch) o.batch = 4;
    if (!given_size) o.size = 32;
  }
  if (o.losses.empty())
    for (int k = 0; k < kNumLosses; ++k) o.losses.push_back(k);
  if (o.missing == 0.0) {
    std::vector<int> kept;
    for (int k : o.losses)
      if (!kLosses[k].missing_labels) kept.push_back(k);
    if (kept.empty())
      bad_option(
          "--missing 0 leaves no loss to train (the selected ones need missing annotations)");
    o.losses = kept;
  }
  if (o.batch > o.train)
    bad_option("--batch (" + std::to_string(o.batch) + ") is larger than --train (" +
               std::to_string(o.train) + ")");
  if (o.threads == 0) o.threads = std::clamp(int(std::thread::hardware_concurrency()), 1, 8);
  return o;
}

// ---------------------------------------------------------------------------------------------
// Threads: images of a batch are independent in the network, so they are split over threads.

template <class F>
void parallel_for(int n, int threads, F&& f) {
  threads = std::max(1, std::min(threads, n));
  if (threads == 1) {
    for (int i = 0; i < n; ++i) f(i, 0);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = t; i < n; i += threads) f(i, t);
    });
  for (int i = 0; i < n; i += threads) f(i, 0);
  for (std::thread& th : pool) th.join();
}

// ---------------------------------------------------------------------------------------------
// Evaluation: argmax prediction, Dice and IoU per image and class, averaged over images.

struct Scores {
  double dice[kClasses] = {}, iou[kClasses] = {};
  // Pixel counts of the smallest class pooled over the images: true positives, predicted, true.
  int64_t tp[kClasses] = {}, pred[kClasses] = {}, truth[kClasses] = {};
  double mean_dice() const { return (dice[1] + dice[2] + dice[3]) / 3.0; }
  double mean_iou() const { return (iou[1] + iou[2] + iou[3]) / 3.0; }
};

Scores evaluate(const Net& net, const Dataset& set, int count, int threads,
                std::vector<uint8_t>* predictions) {
  const int S = set.size;
  const int64_t P = set.pixels();
  std::vector<Net::Work> work(threads);
  std::vector<std::vector<float>> logits(threads, std::vector<float>(P * kClasses));
  std::vector<int64_t> counts(size_t(count) * kClasses * 3, 0);  // tp, pred, truth per image
  if (predictions) predictions->assign(size_t(count) * P, 0);
  parallel_for(count, threads, [&](int n, int t) {
    net.forward(set.image(n), S, S, &work[t], logits[t].data());
    const uint8_t* lab = set.label(n);
    int64_t* c = &counts[size_t(n) * kClasses * 3];
    for (int64_t p = 0; p < P; ++p) {
      const float* l = &logits[t][p * kClasses];
      int k = 0;
      for (int j = 1; j < kClasses; ++j)
        if (l[j] > l[k]) k = j;
      if (predictions) (*predictions)[size_t(n) * P + p] = uint8_t(k);
      c[k * 3 + 1]++;
      c[lab[p] * 3 + 2]++;
      if (k == lab[p]) c[k * 3]++;
    }
  });
  Scores s;
  for (int n = 0; n < count; ++n)
    for (int k = 0; k < kClasses; ++k) {
      const int64_t* c = &counts[(size_t(n) * kClasses + k) * 3];
      const int64_t tp = c[0], pr = c[1], tr = c[2];
      s.dice[k] += pr + tr ? 2.0 * tp / double(pr + tr) : 1.0;
      s.iou[k] += pr + tr - tp ? tp / double(pr + tr - tp) : 1.0;
      s.tp[k] += tp;
      s.pred[k] += pr;
      s.truth[k] += tr;
    }
  for (int k = 0; k < kClasses; ++k) {
    s.dice[k] /= count;
    s.iou[k] /= count;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Progress bar (stdout, only on a terminal unless asked for).

class Progress {
 public:
  explicit Progress(bool on) : on_(on) {}
  void update(const std::string& name, int step, int steps, double loss, double eta_s) {
    if (!on_) return;
    const auto now = Clock::now();
    if (step != steps && step > 1 && now - last_ < std::chrono::milliseconds(80)) return;
    last_ = now;
    const int w = 30, fill = int(double(step) / steps * w);
    width_ = std::printf("\r  %-16s [%s%s] %6d/%-6d loss %8.4f  eta %3.0f s ", name.c_str(),
                         std::string(fill, '#').c_str(), std::string(w - fill, '.').c_str(), step,
                         steps, loss, eta_s);
    std::fflush(stdout);
  }
  void clear() {
    if (!on_) return;
    std::printf("\r%*s\r", width_, "");
    std::fflush(stdout);
  }

 private:
  bool on_;
  int width_ = 0;
  Clock::time_point last_{};
};

// ---------------------------------------------------------------------------------------------
// One training run.

struct Run {
  int loss = 0;                                                    // index into kLosses
  std::vector<double> train_loss;                                  // per step
  std::vector<std::pair<double, double>> curve_dice, curve_class;  // held-out subset over steps
  double final_loss = 0, culoss_ms = 0, step_ms = 0, copy_ms = 0, seconds = 0;
  Scores scores;
  std::vector<uint8_t> predictions;  // the first grid images
};

struct Context {
  const Options* opt;
  const Dataset* train;
  const Dataset* test;
  const std::vector<uint8_t>* clean_labels;
  const std::vector<uint8_t>* missing_labels;
  LossRunner* runner;
  int curve_images, grid_images, watch_class;
};

bool train_one(const Context& cx, int loss_index, Progress* progress, Run* run,
               std::string* error) {
  const Options& o = *cx.opt;
  const Dataset& train = *cx.train;
  const int S = train.size, N = o.batch;
  const int64_t P = train.pixels();
  const std::vector<uint8_t>& labels =
      kLosses[loss_index].missing_labels ? *cx.missing_labels : *cx.clean_labels;
  culoss_loss loss = make_loss(loss_index, error);
  if (!loss) return false;

  Net net(o.width, kClasses, o.seed * 7919 + 17);  // the same initial weights for every loss
  Adam adam(net.num_params(), o.lr);
  Rng batch_rng(o.seed * 104729 + 3);  // the same batches for every loss
  const int threads = o.threads;
  // One gradient buffer per image, summed in image order: results do not depend on --threads.
  std::vector<std::vector<float>> dparams(N, std::vector<float>(net.num_params()));
  std::vector<float> logits(size_t(N) * P * kClasses), grad(logits.size());
  std::vector<uint8_t> batch_labels(size_t(N) * P);
  std::vector<int> idx(N);
  std::vector<Net::Work> batch_work(N);
  const int eval_every = std::max(1, o.steps / 20);
  run->loss = loss_index;
  double culoss_s = 0, step_s = 0, copy_s = 0;
  int timed = 0;
  const auto t_run = Clock::now();
  auto record_curve = [&](int step) {
    const Scores s = evaluate(net, *cx.test, cx.curve_images, threads, nullptr);
    run->curve_dice.push_back({double(step), s.mean_dice()});
    run->curve_class.push_back({double(step), s.dice[cx.watch_class]});
  };
  record_curve(0);
  bool ok = true;
  for (int step = 1; step <= o.steps && ok; ++step) {
    for (int b = 0; b < N; ++b) {
      idx[b] = int(batch_rng.below(train.count));
      std::memcpy(&batch_labels[size_t(b) * P], &labels[size_t(idx[b]) * P], P);
    }
    const auto t0 = Clock::now();
    parallel_for(N, threads, [&](int b, int) {
      net.forward(train.image(idx[b]), S, S, &batch_work[b], &logits[size_t(b) * P * kClasses]);
    });
    float value = 0.0f;
    LossTiming lt;
    if (!cx.runner->compute(loss, logits.data(), batch_labels.data(), grad.data(), &value, &lt,
                            error)) {
      ok = false;
      break;
    }
    for (auto& d : dparams) std::fill(d.begin(), d.end(), 0.0f);
    parallel_for(N, threads, [&](int b, int) {
      net.backward(train.image(idx[b]), S, S, &grad[size_t(b) * P * kClasses], &batch_work[b],
                   dparams[b].data());
    });
    for (int b = 1; b < N; ++b)
      for (size_t j = 0; j < net.num_params(); ++j) dparams[0][j] += dparams[b][j];
    adam.step(&net.params, dparams[0]);
    const double dt = seconds_since(t0);
    if (step > 1 || o.steps == 1) {  // the first step warms caches (and the GPU) up
      culoss_s += lt.culoss_s;
      copy_s += lt.copy_s;
      step_s += dt;
      ++timed;
    }
    if (!std::isfinite(value)) {
      *error = "the loss is not finite at step " + std::to_string(step) + " (try a smaller --lr)";
      ok = false;
      break;
    }
    run->train_loss.push_back(value);
    if (step % eval_every == 0 || step == o.steps) record_curve(step);
    const double elapsed = seconds_since(t_run);
    progress->update(kLosses[loss_index].name, step, o.steps, value,
                     elapsed / step * (o.steps - step));
  }
  culoss_loss_destroy(loss);
  progress->clear();
  if (!ok) return false;
  const int tail = std::max(1, o.steps / 10);  // the final loss: mean of the last 10% of steps
  double sum = 0;
  for (int s = o.steps - tail; s < o.steps; ++s) sum += run->train_loss[s];
  run->final_loss = sum / tail;
  run->culoss_ms = 1e3 * culoss_s / timed;
  run->copy_ms = 1e3 * copy_s / timed;
  run->step_ms = 1e3 * step_s / timed;
  run->scores = evaluate(net, *cx.test, cx.test->count, threads, &run->predictions);
  run->predictions.resize(size_t(cx.grid_images) * P);
  run->seconds = seconds_since(t_run);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Output

std::string row_label(int loss_index, const Options& o) {
  if (!kLosses[loss_index].missing_labels) return "complete";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.0f%% miss.", 100.0 * o.missing);
  return buf;
}

std::string center(const std::string& s, size_t width) {
  if (s.size() >= width) return s;
  const size_t left = (width - s.size()) / 2;
  return std::string(left, ' ') + s + std::string(width - s.size() - left, ' ');
}

void print_table(const std::vector<Run>& runs, const Options& o, bool cuda) {
  std::printf(
      "\nheld-out results (%d images; Dice and IoU of the argmax prediction per image, "
      "averaged):\n\n",
      o.test);
  const std::string group = " %7s %7s %7s %6s ";  // 32 characters between the bars
  std::printf("%-10s %-15s|%s|%s|%9s|%s\n", "", "", center("Dice", 32).c_str(),
              center("IoU", 32).c_str(), "final ", cuda ? " ms per step (mean)" : " ms per step");
  std::printf("%-10s %-15s|", "labels", "loss");
  for (int g = 0; g < 2; ++g)
    std::printf((g ? "|" + group : group).c_str(), "ellipse", "rect.", "circle", "mean");
  std::printf("|%8s |%8s%8s%s\n", "loss", "culoss", "step", cuda ? "    copy" : "");
  std::printf("%s\n", std::string(cuda ? 121 : 113, '-').c_str());
  for (const Run& r : runs) {
    const Scores& s = r.scores;
    std::printf("%-10s %-15s| %7.3f %7.3f %7.3f %6.3f | %7.3f %7.3f %7.3f %6.3f |%8.4f |%8.2f%8.1f",
                row_label(r.loss, o).c_str(), kLosses[r.loss].name, s.dice[1], s.dice[2], s.dice[3],
                s.mean_dice(), s.iou[1], s.iou[2], s.iou[3], s.mean_iou(), r.final_loss,
                r.culoss_ms, r.step_ms);
    if (cuda) std::printf("%8.2f", r.copy_ms);
    std::printf("\n");
  }
  std::printf(
      "\n'final loss': mean training loss over the last 10%% of steps (each loss on its "
      "own scale). 'culoss': time\ninside culoss_compute per step; 'step': the whole "
      "step (forward, loss, backward, Adam); means over\nthe steps after the first.");
  if (cuda)
    std::printf(
        " 'copy': host<->device copies of the logits, labels and gradient (the network "
        "runs on the CPU).");
  std::printf("\n");
}

void print_small_object_table(const std::vector<Run>& runs, const Dataset& test, const Options& o) {
  const int64_t total = int64_t(test.count) * test.pixels();
  int64_t circle = 0;
  for (uint8_t v : test.labels) circle += v == kCircle;
  std::printf(
      "\nthe small object: circle pixels pooled over the held-out images (%.2f%% of all "
      "pixels)\n\n",
      100.0 * circle / total);
  std::printf("%-10s %-15s| %9s %9s %11s\n", "labels", "loss", "precision", "recall", "pred./true");
  std::printf("%s\n", std::string(59, '-').c_str());
  for (const Run& r : runs) {
    const Scores& s = r.scores;
    const double prec = s.pred[kCircle] ? double(s.tp[kCircle]) / s.pred[kCircle] : 0.0;
    const double rec = s.truth[kCircle] ? double(s.tp[kCircle]) / s.truth[kCircle] : 0.0;
    const double ratio = s.truth[kCircle] ? double(s.pred[kCircle]) / s.truth[kCircle] : 0.0;
    std::printf("%-10s %-15s| %9.3f %9.3f %11.2f\n", row_label(r.loss, o).c_str(),
                kLosses[r.loss].name, prec, rec, ratio);
  }
}

// The two comparisons the demo is about, as numbers (whatever they turn out to be).
void print_summary(const std::vector<Run>& runs, const Options& o, int missing_class) {
  auto find = [&](const char* key) -> const Run* {
    for (const Run& r : runs)
      if (!std::strcmp(kLosses[r.loss].key, key)) return &r;
    return nullptr;
  };
  std::printf("\nsummary (held-out Dice):\n");
  const Run *ce = find("ce"), *ce_m = find("ce-missing"), *marg = find("marginal");
  if (ce_m && marg) {
    const int c = missing_class;
    auto dice = [&](const Run* r) { return c > 0 ? r->scores.dice[c] : r->scores.mean_dice(); };
    std::printf("  missing annotations (%s):\n",
                c > 0 ? kClassNames[c] : "a random class per image; mean Dice");
    char label[64];
    if (ce) std::printf("    %-42s %.3f\n", "cross-entropy, complete labels", dice(ce));
    std::snprintf(label, sizeof label, "cross-entropy, %.0f%% of images unlabelled",
                  100.0 * o.missing);
    std::printf("    %-42s %.3f\n", label, dice(ce_m));
    std::snprintf(label, sizeof label, "marginal CE, %.0f%% of images unlabelled",
                  100.0 * o.missing);
    std::printf("    %-42s %.3f\n", label, dice(marg));
  }
  int n = 0;
  for (const Run& r : runs) {
    if (kLosses[r.loss].missing_labels) continue;
    if (n == 0)
      std::printf("  small object (circle), complete labels:\n   ");
    else if (n % 3 == 0)
      std::printf(",\n   ");
    else
      std::printf(",");
    std::printf(" %s %.3f", kLosses[r.loss].name, r.scores.dice[kCircle]);
    ++n;
  }
  if (n) std::printf("\n");
}

bool write_pictures(const std::vector<Run>& runs, const Options& o, const Dataset& test,
                    int grid_images, int watch_class) {
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) {
    std::fprintf(stderr, "culoss-demo: cannot create %s: %s\n", o.out.c_str(),
                 ec.message().c_str());
    return false;
  }
  const int64_t P = test.pixels();
  std::vector<GridColumn> cols;
  GridColumn truth{"ground truth", "complete", {}};
  for (int n = 0; n < grid_images; ++n) truth.maps.emplace_back(test.label(n), test.label(n) + P);
  cols.push_back(truth);
  for (const Run& r : runs) {
    GridColumn c{
        kLosses[r.loss].name,
        kLosses[r.loss].missing_labels ? "trained: " + row_label(r.loss, o) : "trained: complete",
        {}};
    for (int n = 0; n < grid_images; ++n)
      c.maps.emplace_back(r.predictions.begin() + n * P, r.predictions.begin() + (n + 1) * P);
    cols.push_back(c);
  }
  std::vector<int> rows(grid_images);
  for (int n = 0; n < grid_images; ++n) rows[n] = n;
  std::string error;
  const std::string grid_path = o.out + "/predictions.png";
  if (!write_png(render_grid(test, rows, cols), grid_path, &error)) {
    std::fprintf(stderr, "culoss-demo: %s\n", error.c_str());
    return false;
  }
  // Curves: relative training loss (smoothed), held-out mean Dice, held-out Dice of one class.
  static const Rgb palette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                {148, 103, 189}, {140, 86, 75},  {127, 127, 127}, {23, 190, 207}};
  std::vector<Curve> loss_curves, dice_curves, class_curves;
  double ymax_loss = 1.0;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    const Rgb color = palette[r.loss % 8];
    const std::string name =
        std::string(kLosses[r.loss].name) + (kLosses[r.loss].missing_labels ? " (missing)" : "");
    const bool dashed = kLosses[r.loss].missing_labels;
    Curve lc{name, color, dashed, {}};
    const double first = std::max(std::fabs(r.train_loss.front()), 1e-12);
    const double a = 2.0 / (std::max(2, o.steps / 15) + 1);  // exponential moving average
    double ema = r.train_loss.front();
    for (size_t s = 0; s < r.train_loss.size(); ++s) {
      ema = s ? a * r.train_loss[s] + (1 - a) * ema : ema;
      lc.points.push_back({double(s + 1), ema / first});
      ymax_loss = std::max(ymax_loss, std::min(ema / first, 1.5));
    }
    loss_curves.push_back(lc);
    dice_curves.push_back({name, color, dashed, r.curve_dice});
    class_curves.push_back({name, color, dashed, r.curve_class});
  }
  const int pw = 400, ph = 280;
  const std::string cls = std::string("held-out Dice: ") + kClassNames[watch_class];
  Canvas a = render_plot("training loss / loss at step 1", "step", o.steps, 0.0, ymax_loss,
                         loss_curves, pw, ph);
  Canvas b =
      render_plot("held-out mean Dice (3 classes)", "step", o.steps, 0.0, 1.0, dice_curves, pw, ph);
  Canvas c = render_plot(cls, "step", o.steps, 0.0, 1.0, class_curves, pw, ph);
  Canvas legend = render_legend(loss_curves, 3 * pw);
  Canvas all(3 * pw, ph + legend.height(), Rgb{255, 255, 255});
  all.blit(a, 0, 0);
  all.blit(b, pw, 0);
  all.blit(c, 2 * pw, 0);
  all.blit(legend, 0, ph);
  const std::string curves_path = o.out + "/curves.png";
  if (!write_png(all, curves_path, &error)) {
    std::fprintf(stderr, "culoss-demo: %s\n", error.c_str());
    return false;
  }
  std::printf(
      "\nwrote %s (input, ground truth and each loss's prediction for %d held-out "
      "images)\nwrote %s (training curves)\n",
      grid_path.c_str(), grid_images, curves_path.c_str());
  return true;
}

}  // namespace
}  // namespace demo

int main(int argc, char** argv) {
  using namespace demo;
  const Options o = parse(argc, argv);
  if (o.check_gradients) return check_gradients(o.seed);
  if (o.scene == "vessels")
    return run_vessels(VesselOptions{o.steps, o.batch, o.size, o.width, o.train, o.test, o.lr,
                                     o.seed, o.out});
  const auto t_start = Clock::now();

  std::unique_ptr<LossRunner> runner;
  std::string error;
  if (o.device == "cuda") {
    runner = make_cuda_runner(o.batch, o.size, o.size, kClasses, &error);
    if (!runner) {
      std::fprintf(stderr, "culoss-demo: --device cuda: %s\n", error.c_str());
      return 1;
    }
  } else {
    runner = make_cpu_runner(o.batch, o.size, o.size, kClasses);
  }
  const bool cuda = o.device == "cuda";
  const bool progress_on = o.progress < 0 ? isatty(STDOUT_FILENO) != 0 : o.progress == 1;
  const bool want_png = !o.out.empty();

  const int v = culoss_version();
  std::printf(
      "culoss-demo (culoss %d.%d.%d): a small CNN trained with each loss on the same "
      "data, from the same\ninitial weights, with the same batches%s\n\n",
      v / 10000, v / 100 % 100, v % 100, o.quick ? " (--quick: a tiny budget)" : "");
  const Dataset train = make_dataset(o.train, o.size, o.seed);
  const Dataset test = make_dataset(o.test, o.size, o.seed + 1000003);
  std::vector<int> dropped;
  const std::vector<uint8_t> missing_labels =
      drop_annotations(train, o.missing, o.missing_class, o.seed + 7, &dropped);
  int64_t per_class[kClasses] = {};
  for (uint8_t c : train.labels) per_class[c]++;
  std::printf(
      "data     %d training and %d held-out images of %dx%d, seed %llu; pixels per "
      "class:\n        ",
      o.train, o.test, o.size, o.size, (unsigned long long)o.seed);
  for (int k = 0; k < kClasses; ++k)
    std::printf(" %s %.1f%%%s", kClassNames[k], 100.0 * per_class[k] / train.labels.size(),
                k + 1 < kClasses ? "," : "\n");
  int n_dropped = 0;
  for (int c : dropped) n_dropped += c != 0;
  bool any_missing = false;
  for (int k : o.losses) any_missing |= kLosses[k].missing_labels;
  if (any_missing)
    std::printf(
        "missing  %s labelled background in %d of %d training images (--missing %g) "
        "for the 'miss.' rows\n",
        o.missing_class ? (std::string("the ") + kClassNames[o.missing_class]).c_str()
                        : "one random class",
        n_dropped, o.train, o.missing);
  Net probe(o.width, kClasses, 0);
  std::printf(
      "network  %s\n         %.1f M multiply-adds per image forward; Adam lr %g, "
      "batch %d, %d steps per loss, %d CPU thread%s\n",
      probe.describe().c_str(), probe.macs_per_pixel() * double(o.size * o.size) / 1e6, o.lr,
      o.batch, o.steps, o.threads, o.threads > 1 ? "s" : "");
  std::printf("device   %s\n", runner->description().c_str());
  std::printf("losses   ");
  for (size_t i = 0; i < o.losses.size(); ++i)
    std::printf("%s%s", i ? ", " : "", kLosses[o.losses[i]].key);
  std::printf("\n\n");
  if (want_png && !png_supported())
    std::printf(
        "note: this culoss-demo was built without libpng, so no PNG will be written "
        "(install libpng-dev and rebuild)\n\n");
  std::fflush(stdout);

  Context cx;
  cx.opt = &o;
  cx.train = &train;
  cx.test = &test;
  cx.clean_labels = &train.labels;
  cx.missing_labels = &missing_labels;
  cx.runner = runner.get();
  cx.curve_images = std::min(o.test, 16);
  cx.grid_images = std::min(o.test, 4);
  cx.watch_class = o.missing_class ? o.missing_class : kCircle;
  Progress progress(progress_on);
  std::vector<Run> runs;
  for (int k : o.losses) {
    Run r;
    if (!train_one(cx, k, &progress, &r, &error)) {
      std::fprintf(stderr, "culoss-demo: %s: %s\n", kLosses[k].name, error.c_str());
      return 1;
    }
    std::printf("  trained %-15s %-20s in %5.1f s: held-out mean Dice %.3f\n", kLosses[k].name,
                ("(labels: " + row_label(k, o) + ")").c_str(), r.seconds, r.scores.mean_dice());
    std::fflush(stdout);
    runs.push_back(std::move(r));
  }
  print_table(runs, o, cuda);
  print_small_object_table(runs, test, o);
  print_summary(runs, o, o.missing_class);
  bool pictures_ok = true;
  if (want_png && png_supported())
    pictures_ok = write_pictures(runs, o, test, cx.grid_images, cx.watch_class);
  std::printf("\ntotal %.1f s\n", seconds_since(t_start));
  return pictures_ok ? 0 : 1;
}

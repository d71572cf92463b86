// Region losses (DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, GENERALIZED_DICE) on the CUDA backend,
// compared with the CPU backend through the same public API: the same host data is run once
// with kDLCPU tensors and once with kDLCUDA tensors.
//
// Every device output buffer starts poisoned (0xff bytes = NaN), and every device tensor sits
// between guard bytes, so an element the library forgets to write, or a write out of bounds,
// fails the comparison. Every test starts with require_device() and skips without a GPU.
//
// Seeds are fixed so failures reproduce; set CULOSS_TEST_SEED to run other inputs.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <limits>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/compare.hpp"
#include "cuda/cuda_run.hpp"
#include "cuda/cuda_tensor.hpp"

namespace {

using testing_util::bf16;
using testing_util::CallData;
using testing_util::close;
using testing_util::cuda_view;
using testing_util::CudaRunOptions;
using testing_util::CudaStream;
using testing_util::CudaTensor;
using testing_util::f16;
using testing_util::f32;
using testing_util::f64;
using testing_util::i32;
using testing_util::i64;
using testing_util::Loss;
using testing_util::offsets;
using testing_util::PinnedBuffer;
using testing_util::RunResult;
using testing_util::same_bits;
using testing_util::still_poisoned;
using testing_util::TestTensor;
using testing_util::Tol;
using testing_util::u8;
using testing_util::Ws;

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

enum class Tgt { DenseF32, DenseU8, DenseIn, IdxU8, IdxI32, IdxI64 };
bool is_index(Tgt t) { return t == Tgt::IdxU8 || t == Tgt::IdxI32 || t == Tgt::IdxI64; }

constexpr int64_t kDefaultIgnore = std::numeric_limits<int64_t>::min();  // "leave the default"

const culoss_kind kKinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                              CULOSS_GENERALIZED_DICE};


uint64_t seed_base() {
  static const uint64_t base = [] {
    const char* s = std::getenv("CULOSS_TEST_SEED");
    return s != nullptr ? static_cast<uint64_t>(std::strtoull(s, nullptr, 10)) : 0ull;
  }();
  return base;
}

// One culoss_compute call, described with plain values.
struct Case {
  std::string name;
  culoss_kind kind = CULOSS_DICE;
  std::vector<int64_t> shape;
  int class_axis = 1;
  DLDataType in = f32();
  bool grad_f32 = false;  // grad dtype float32 instead of the input's
  int activation = CULOSS_ACTIVATION_SOFTMAX;
  Tgt tgt = Tgt::IdxI64;
  double ignore_frac = 0.05;  // index: IGNORE_INDEX labels; dense: pixel weight 0
  bool pixel_weight = false;
  bool class_weights = false;
  int include_bg = 1, batch = 0, average = CULOSS_AVERAGE_MACRO, squared = 0, skip_empty = 0;
  int soft_label = 0;  // DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, MCC
  int reduction = CULOSS_REDUCTION_MEAN;
  int weight_type = -1;  // generalized Dice; -1 leaves the default
  double alpha = NAN, beta = NAN, gamma = NAN, smooth_nr = NAN, smooth_dr = NAN;  // NAN: default
  int64_t ignore_index = kDefaultIgnore;
  int check_targets = 1;
  bool empty_class = true;         // class C-1 (or the C = 1 mask) is empty in image 0
  bool absent_everywhere = false;  // ... and in every image
  double grad_scale = 1.0;
  DLDataType loss_dtype = f64();
  bool host_loss_out = false;  // CUDA run writes loss_out to a kDLCPU tensor
  uint64_t seed = 1;
};

const char* kind_name(culoss_kind k) {
  switch (k) {
    case CULOSS_DICE: return "DICE";
    case CULOSS_JACCARD: return "JACCARD";
    case CULOSS_TVERSKY: return "TVERSKY";
    case CULOSS_FOCAL_TVERSKY: return "FOCALTV";
    case CULOSS_GENERALIZED_DICE: return "GDICE";
    case CULOSS_MCC: return "MCC";
    default: return "KIND";
  }
}
std::string dtype_name(DLDataType d) {
  if (d.code == kDLBfloat) return "bf16";
  if (d.code == kDLFloat) return "f" + std::to_string(d.bits);
  if (d.code == kDLUInt) return "u" + std::to_string(d.bits);
  if (d.code == kDLInt) return "i" + std::to_string(d.bits);
  return "dt";
}
const char* tgt_name(Tgt t) {
  switch (t) {
    case Tgt::DenseF32: return "denseF32";
    case Tgt::DenseU8: return "denseU8";
    case Tgt::DenseIn: return "denseIn";
    case Tgt::IdxU8: return "idxU8";
    case Tgt::IdxI32: return "idxI32";
    case Tgt::IdxI64: return "idxI64";
  }
  return "tgt";
}
const char* act_name(int a) {
  return a == CULOSS_ACTIVATION_NONE ? "none" : a == CULOSS_ACTIVATION_SIGMOID ? "sigmoid" : "softmax";
}
const char* red_name(int r) {
  return r == CULOSS_REDUCTION_MEAN ? "mean" : r == CULOSS_REDUCTION_SUM ? "sum" : "none";
}

int resolved_axis(const Case& c) {
  const int nd = static_cast<int>(c.shape.size());
  return c.class_axis < 0 ? nd + c.class_axis : c.class_axis;
}
int64_t num_classes(const Case& c) { return c.shape[static_cast<size_t>(resolved_axis(c))]; }
DLDataType grad_dtype(const Case& c) { return c.grad_f32 ? f32() : c.in; }

std::string describe(const Case& c) {
  std::ostringstream os;
  os << kind_name(c.kind) << " shape=(";
  for (size_t i = 0; i < c.shape.size(); ++i) os << (i ? "," : "") << c.shape[i];
  os << ") axis=" << c.class_axis << " in=" << dtype_name(c.in)
     << " grad=" << dtype_name(grad_dtype(c)) << " act=" << act_name(c.activation)
     << " target=" << tgt_name(c.tgt) << " ignore_frac=" << c.ignore_frac
     << " pw=" << c.pixel_weight << " cw=" << c.class_weights << " include_bg=" << c.include_bg
     << " batch=" << c.batch << " micro=" << c.average << " squared=" << c.squared
     << " skip_empty=" << c.skip_empty << " soft_label=" << c.soft_label
     << " reduction=" << red_name(c.reduction)
     << " weight_type=" << c.weight_type << " alpha=" << c.alpha << " beta=" << c.beta
     << " gamma=" << c.gamma << " s_nr=" << c.smooth_nr << " s_dr=" << c.smooth_dr
     << " ignore_index=" << (c.ignore_index == kDefaultIgnore ? std::string("default") : std::to_string(c.ignore_index))
     << " check_targets=" << c.check_targets << " empty_class=" << c.empty_class
     << " absent_everywhere=" << c.absent_everywhere << " grad_scale=" << c.grad_scale
     << " loss=" << dtype_name(c.loss_dtype) << " host_loss_out=" << c.host_loss_out
     << " seed=" << c.seed << " (+CULOSS_TEST_SEED " << seed_base() << ")";
  return os.str();
}

// gtest prints parameters in test listings (and ctest names): the case name, not raw bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Makes a case valid for its kind (parameters that do not apply are left unset) and names it.
Case finish(Case c, const std::string& tag) {
  const int64_t C = num_classes(c);
  // A softmax over one class is refused (constant loss): a one-class model takes SIGMOID.
  if (c.activation == CULOSS_ACTIVATION_SOFTMAX && C == 1) c.activation = CULOSS_ACTIVATION_SIGMOID;
  if (c.activation == CULOSS_ACTIVATION_SIGMOID && is_index(c.tgt) && C != 1) c.tgt = Tgt::DenseF32;
  if (c.kind != CULOSS_DICE && c.kind != CULOSS_JACCARD) c.squared = 0;
  if (c.kind == CULOSS_GENERALIZED_DICE) c.soft_label = 0;
  if (c.soft_label) c.squared = 0;  // refused together
  if (c.kind == CULOSS_MCC) c.smooth_nr = NAN;  // MCC has no numerator smoothing
  if (c.kind == CULOSS_GENERALIZED_DICE) c.average = CULOSS_AVERAGE_MACRO;
  if (c.kind != CULOSS_GENERALIZED_DICE) c.weight_type = -1;
  if (c.kind != CULOSS_TVERSKY && c.kind != CULOSS_FOCAL_TVERSKY) c.alpha = c.beta = NAN;
  if (c.kind != CULOSS_FOCAL_TVERSKY) c.gamma = NAN;
  // float16 gradients of big images are far below float16's normal range; scale them up by a
  // power of two (exact) so the comparison is not all subnormals.
  const DLDataType g = grad_dtype(c);
  if (g.code == kDLFloat && g.bits == 16) {
    int64_t numel = 1;
    for (int64_t d : c.shape) numel *= d;
    const double e = std::round(std::log2(std::max(1.0, static_cast<double>(numel) / 8.0)));
    c.grad_scale *= std::ldexp(1.0, static_cast<int>(std::min(e, 20.0)));
  }
  std::ostringstream os;
  os << tag << "_" << kind_name(c.kind) << "_" << dtype_name(c.in) << "_g" << dtype_name(g) << "_"
     << act_name(c.activation) << "_" << tgt_name(c.tgt) << "_" << red_name(c.reduction);
  std::string n = os.str();
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  c.name = n;
  return c;
}

// ---------------------------------------------------------------------------------------------
// Problems: host data for a case
// ---------------------------------------------------------------------------------------------

struct Problem {
  Case c;
  int axis = 1;
  int64_t N = 0, C = 0, pre = 1, inner = 1, outer = 0;
  std::vector<int64_t> pix_shape, loss_shape;
  TestTensor input, target, weight;
  bool has_weight = false;
  int64_t ignore_value = -100;  // the label stored for ignored pixels
  bool set_ignore = false;      // whether CULOSS_PARAM_IGNORE_INDEX is set
  std::vector<double> class_weights;

  int64_t in_index(int64_t o, int64_t k, int64_t i) const { return (o * C + k) * inner + i; }
  int64_t pix_index(int64_t o, int64_t i) const { return o * inner + i; }
};

DLDataType target_dtype(const Case& c) {
  switch (c.tgt) {
    case Tgt::DenseF32: return f32();
    case Tgt::DenseU8: return u8();
    case Tgt::DenseIn: return c.in;
    case Tgt::IdxU8: return u8();
    case Tgt::IdxI32: return i32();
    case Tgt::IdxI64: return i64();
  }
  return f32();
}

Problem make_problem(const Case& c) {
  Problem p;
  p.c = c;
  const int nd = static_cast<int>(c.shape.size());
  p.axis = resolved_axis(c);
  p.N = c.shape[0];
  p.C = c.shape[static_cast<size_t>(p.axis)];
  for (int d = 1; d < p.axis; ++d) p.pre *= c.shape[static_cast<size_t>(d)];
  for (int d = p.axis + 1; d < nd; ++d) p.inner *= c.shape[static_cast<size_t>(d)];
  p.outer = p.N * p.pre;
  for (int d = 0; d < nd; ++d)
    if (d != p.axis) p.pix_shape.push_back(c.shape[static_cast<size_t>(d)]);

  const bool pooled = c.kind == CULOSS_GENERALIZED_DICE || c.average == CULOSS_AVERAGE_MICRO;
  if (c.reduction != CULOSS_REDUCTION_NONE) p.loss_shape = {};
  else if (pooled) p.loss_shape = c.batch ? std::vector<int64_t>{1} : std::vector<int64_t>{p.N};
  else p.loss_shape = c.batch ? std::vector<int64_t>{p.C} : std::vector<int64_t>{p.N, p.C};

  const bool idx = is_index(c.tgt);
  const bool sig = c.activation == CULOSS_ACTIVATION_SIGMOID;
  const bool mask = sig || p.C == 1;  // per-element 0/1 labels (C = 1: a binary mask)
  if (c.ignore_index != kDefaultIgnore) {
    p.ignore_value = c.ignore_index;
    p.set_ignore = true;
  } else if (c.tgt == Tgt::IdxU8) {
    p.ignore_value = 255;
    p.set_ignore = true;
  }

  std::mt19937_64 rng(c.seed * 0x9E3779B97F4A7C15ull + seed_base());
  std::uniform_real_distribution<double> U(0.0, 1.0);
  std::normal_distribution<double> G(0.0, 1.0);

  const int64_t npix = p.outer * p.inner;
  const int64_t C = p.C;
  auto absent = [&](int64_t n, int64_t k) {
    return c.empty_class && k == C - 1 && (n == 0 || c.absent_everywhere) &&
           (C > 1 || mask || !idx);
  };
  std::vector<double> t(static_cast<size_t>(npix * C));
  std::vector<int64_t> label(static_cast<size_t>(npix));
  std::vector<char> ignored(static_cast<size_t>(npix));
  const bool soft = c.tgt == Tgt::DenseF32 || c.tgt == Tgt::DenseIn;
  for (int64_t o = 0; o < p.outer; ++o) {
    const int64_t n = o / p.pre;
    for (int64_t i = 0; i < p.inner; ++i) {
      const int64_t px = p.pix_index(o, i);
      int64_t lab =
          mask ? (U(rng) < 0.35 ? 1 : 0) : static_cast<int64_t>(rng() % static_cast<uint64_t>(C));
      if (!mask && absent(n, lab)) lab = 0;
      if (C == 1 && absent(n, 0)) lab = 0;
      label[static_cast<size_t>(px)] = lab;
      ignored[static_cast<size_t>(px)] = U(rng) < c.ignore_frac;
      for (int64_t k = 0; k < C; ++k) {
        double v;
        if (C == 1) {
          v = static_cast<double>(lab);
        } else if (sig) {
          v = U(rng) < 0.35 ? 1.0 : 0.0;
        } else {
          v = k == lab ? 1.0 : 0.0;
        }
        if (soft && U(rng) < 0.2) v = U(rng);
        if (absent(n, k)) v = 0.0;
        t[static_cast<size_t>(px * C + k)] = v;
      }
    }
  }

  p.input = TestTensor(c.shape, c.in);
  for (int64_t o = 0; o < p.outer; ++o)
    for (int64_t k = 0; k < C; ++k)
      for (int64_t i = 0; i < p.inner; ++i) {
        const double tv = t[static_cast<size_t>(p.pix_index(o, i) * C + k)];
        double x;
        if (c.activation == CULOSS_ACTIVATION_NONE) {
          x = 0.55 * tv + 0.45 * U(rng);
          if (U(rng) < 0.02) x = U(rng) < 0.5 ? 0.0 : 1.0;  // exact 0 and 1 are valid
        } else {
          x = 1.5 * G(rng) + 2.0 * tv - (sig ? 1.0 : 0.0);
          if (U(rng) < 0.02) x = -12.0 + 24.0 * U(rng);
        }
        p.input.set(p.in_index(o, k, i), x);
      }

  if (idx) {
    p.target = TestTensor(p.pix_shape, target_dtype(c));
    for (int64_t px = 0; px < npix; ++px)
      p.target.set(px, ignored[static_cast<size_t>(px)] ? static_cast<double>(p.ignore_value)
                                                        : static_cast<double>(label[static_cast<size_t>(px)]));
  } else {
    p.target = TestTensor(c.shape, target_dtype(c));
    for (int64_t o = 0; o < p.outer; ++o)
      for (int64_t k = 0; k < C; ++k)
        for (int64_t i = 0; i < p.inner; ++i) {
          double v = t[static_cast<size_t>(p.pix_index(o, i) * C + k)];
          if (c.tgt == Tgt::DenseU8) v = v >= 0.5 ? 1.0 : 0.0;
          p.target.set(p.in_index(o, k, i), v);
        }
  }

  p.has_weight = c.pixel_weight || (!idx && c.ignore_frac > 0.0);
  if (p.has_weight) {
    p.weight = TestTensor(p.pix_shape, f32());
    for (int64_t px = 0; px < npix; ++px) {
      double w = 1.0;
      if (c.pixel_weight) w = U(rng) < 0.1 ? 0.0 : 0.25 + 2.25 * U(rng);
      if (!idx && ignored[static_cast<size_t>(px)]) w = 0.0;
      p.weight.set(px, w);
    }
  }

  if (c.class_weights) {
    p.class_weights.resize(static_cast<size_t>(C));
    for (auto& w : p.class_weights) w = 0.2 + 1.8 * U(rng);
    if (C > 2) p.class_weights[1] = 0.0;
  }
  return p;
}

// Sets every parameter of the case on the descriptor. Returns false (with failures recorded) when
// the library refuses one.
bool configure(culoss_loss h, const Problem& p) {
  const Case& c = p.c;
  bool ok = true;
  auto seti = [&](culoss_param k, int64_t v) {
    const culoss_status s = culoss_loss_set_int(h, k, v);
    EXPECT_EQ(CULOSS_SUCCESS, s) << "set_int(param " << k << ", " << v << "): " << culoss_last_error();
    ok = ok && s == CULOSS_SUCCESS;
  };
  auto setf = [&](culoss_param k, double v) {
    if (std::isnan(v)) return;
    const culoss_status s = culoss_loss_set_float(h, k, v);
    EXPECT_EQ(CULOSS_SUCCESS, s) << "set_float(param " << k << ", " << v << "): " << culoss_last_error();
    ok = ok && s == CULOSS_SUCCESS;
  };
  seti(CULOSS_PARAM_ACTIVATION, c.activation);
  seti(CULOSS_PARAM_CLASS_AXIS, c.class_axis);
  seti(CULOSS_PARAM_REDUCTION, c.reduction);
  seti(CULOSS_PARAM_INCLUDE_BACKGROUND, c.include_bg);
  seti(CULOSS_PARAM_BATCH, c.batch);
  seti(CULOSS_PARAM_SKIP_EMPTY, c.skip_empty);
  seti(CULOSS_PARAM_CHECK_TARGETS, c.check_targets);
  if (p.set_ignore) seti(CULOSS_PARAM_IGNORE_INDEX, p.ignore_value);
  if (c.kind == CULOSS_DICE || c.kind == CULOSS_JACCARD) seti(CULOSS_PARAM_SQUARED_DENOMINATOR, c.squared);
  if (c.kind != CULOSS_GENERALIZED_DICE) seti(CULOSS_PARAM_AVERAGE, c.average);
  if (c.soft_label) seti(CULOSS_PARAM_SOFT_LABEL, 1);
  if (c.kind == CULOSS_GENERALIZED_DICE && c.weight_type >= 0) seti(CULOSS_PARAM_WEIGHT_TYPE, c.weight_type);
  setf(CULOSS_PARAM_ALPHA, c.alpha);
  setf(CULOSS_PARAM_BETA, c.beta);
  setf(CULOSS_PARAM_GAMMA, c.gamma);
  setf(CULOSS_PARAM_SMOOTH_NR, c.smooth_nr);
  setf(CULOSS_PARAM_SMOOTH_DR, c.smooth_dr);
  if (!p.class_weights.empty()) {
    const culoss_status s = culoss_loss_set_floats(h, CULOSS_PARAM_CLASS_WEIGHTS, p.class_weights.data(),
                                                   static_cast<int64_t>(p.class_weights.size()));
    EXPECT_EQ(CULOSS_SUCCESS, s) << "set_floats(CLASS_WEIGHTS): " << culoss_last_error();
    ok = ok && s == CULOSS_SUCCESS;
  }
  return ok;
}

// ---------------------------------------------------------------------------------------------
// Running a problem
// ---------------------------------------------------------------------------------------------

void run_cpu(Problem& p, culoss_loss h, RunResult* r, bool with_grad = true) {
  r->loss = TestTensor(p.loss_shape, p.c.loss_dtype);
  r->loss.poison();
  r->grad = TestTensor(p.c.shape, grad_dtype(p.c));
  r->grad.poison();
  r->status = culoss_compute(h, p.input.dl(), p.target.dl(), p.has_weight ? p.weight.dl() : nullptr,
                             r->loss.dl(), with_grad ? r->grad.dl() : nullptr, p.c.grad_scale,
                             nullptr, 0, nullptr);
  r->error = culoss_last_error();
}

CallData call_data(const Problem& p) {
  CallData d;
  d.input = &p.input;
  d.target = &p.target;
  d.weight = p.has_weight ? &p.weight : nullptr;
  d.loss_shape = p.loss_shape;
  d.loss_dtype = p.c.loss_dtype;
  d.grad_dtype = grad_dtype(p.c);
  d.grad_scale = p.c.grad_scale;
  return d;
}

void run_cuda(Problem& p, culoss_loss h, const CudaRunOptions& o, RunResult* r) {
  testing_util::run_cuda(call_data(p), h, o, r);
}

// ---------------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------------

Tol value_tol(const Case& c) { return testing_util::value_tol(c.in, c.loss_dtype); }
Tol grad_tol(const Case& c) { return testing_util::grad_tol(c.in, grad_dtype(c)); }

// ---------------------------------------------------------------------------------------------
// Case lists
// ---------------------------------------------------------------------------------------------

Case base_case(culoss_kind k, std::vector<int64_t> shape, uint64_t seed) {
  Case c;
  c.kind = k;
  c.shape = std::move(shape);
  c.seed = seed;
  return c;
}

// Every kind x input dtype x grad dtype, rotating activation, target kind and layout so each of
// those meets every dtype.
std::vector<Case> dtype_sweep() {
  std::vector<Case> out;
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  const Tgt tgts[] = {Tgt::IdxI64, Tgt::DenseF32, Tgt::IdxU8, Tgt::DenseU8, Tgt::IdxI32, Tgt::DenseIn};
  int r = 0;
  for (culoss_kind k : kKinds)
    for (DLDataType d : dts)
      for (int gf = 0; gf < 2; ++gf, ++r) {
        Case c = base_case(k, {2, 4, 24, 20}, 100 + r);
        if (r % 3 == 1) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; }
        if (r % 3 == 2) { c.shape = {2, 3, 6, 8, 10}; }
        c.in = d;
        c.grad_f32 = gf == 1;
        c.activation = r % 5 == 3 ? CULOSS_ACTIVATION_NONE : r % 5 == 4 ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_SOFTMAX;
        c.tgt = tgts[r % 6];
        c.pixel_weight = r % 4 == 1;
        c.reduction = r % 7 == 5 ? CULOSS_REDUCTION_NONE : r % 7 == 6 ? CULOSS_REDUCTION_SUM : CULOSS_REDUCTION_MEAN;
        out.push_back(finish(c, "D" + std::to_string(r)));
      }
  return out;
}

// One option at a time, for every kind.
std::vector<Case> option_sweep() {
  std::vector<Case> out;
  int r = 0;
  for (culoss_kind k : kKinds) {
    auto add = [&](const std::string& tag, auto mutate) {
      Case c = base_case(k, {2, 4, 24, 20}, 1000 + r);
      mutate(c);
      out.push_back(finish(c, "O" + std::to_string(r++) + "_" + tag));
    };
    add("base", [](Case&) {});
    add("actNone", [](Case& c) { c.activation = CULOSS_ACTIVATION_NONE; c.tgt = Tgt::IdxI32; });
    add("actSigDense", [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::DenseF32; });
    add("actSigDenseU8", [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::DenseU8; });
    add("actSigBinaryIdx", [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; });
    add("actSigBinaryIdxI64", [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxI64; });
    add("actSigBinaryDensePw", [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.shape = {3, 1, 20, 20}; c.tgt = Tgt::DenseF32; c.pixel_weight = true; });
    add("denseF32", [](Case& c) { c.tgt = Tgt::DenseF32; });
    add("denseU8", [](Case& c) { c.tgt = Tgt::DenseU8; });
    add("denseBf16", [](Case& c) { c.in = bf16(); c.tgt = Tgt::DenseIn; });
    add("idxU8", [](Case& c) { c.tgt = Tgt::IdxU8; });
    add("idxI32", [](Case& c) { c.tgt = Tgt::IdxI32; });
    add("noIgnored", [](Case& c) { c.ignore_frac = 0.0; });
    add("pixelWeight", [](Case& c) { c.pixel_weight = true; });
    add("classWeights", [](Case& c) { c.class_weights = true; });
    add("noBackground", [](Case& c) { c.include_bg = 0; });
    add("batch", [](Case& c) { c.batch = 1; });
    add("micro", [](Case& c) { c.average = CULOSS_AVERAGE_MICRO; });
    add("microBatch", [](Case& c) { c.average = CULOSS_AVERAGE_MICRO; c.batch = 1; });
    add("microCw", [](Case& c) { c.average = CULOSS_AVERAGE_MICRO; c.class_weights = true; c.include_bg = 0; });
    add("squared", [](Case& c) { c.squared = 1; });
    add("squaredDense", [](Case& c) { c.squared = 1; c.tgt = Tgt::DenseF32; c.activation = CULOSS_ACTIVATION_SIGMOID; });
    add("skipEmpty", [](Case& c) { c.skip_empty = 1; });
    add("skipEmptyBatchAbsent", [](Case& c) { c.skip_empty = 1; c.batch = 1; c.absent_everywhere = true; });
    add("skipEmptyAbsent", [](Case& c) { c.skip_empty = 1; c.absent_everywhere = true; });
    add("skipEmptyMicro", [](Case& c) { c.skip_empty = 1; c.average = CULOSS_AVERAGE_MICRO; c.shape = {3, 2, 10, 10}; });
    add("sum", [](Case& c) { c.reduction = CULOSS_REDUCTION_SUM; });
    add("none", [](Case& c) { c.reduction = CULOSS_REDUCTION_NONE; });
    add("noneBatch", [](Case& c) { c.reduction = CULOSS_REDUCTION_NONE; c.batch = 1; });
    add("noneMicro", [](Case& c) { c.reduction = CULOSS_REDUCTION_NONE; c.average = CULOSS_AVERAGE_MICRO; });
    add("noneMicroBatch", [](Case& c) { c.reduction = CULOSS_REDUCTION_NONE; c.average = CULOSS_AVERAGE_MICRO; c.batch = 1; });
    add("noneSkipCwNoBg", [](Case& c) { c.reduction = CULOSS_REDUCTION_NONE; c.skip_empty = 1; c.class_weights = true; c.include_bg = 0; });
    add("NCDHW", [](Case& c) { c.shape = {2, 3, 6, 8, 10}; });
    add("NHWC", [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; });
    add("NHWCdense", [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.tgt = Tgt::DenseF32; });
    add("NDHWC", [](Case& c) { c.shape = {2, 4, 5, 6, 3}; c.class_axis = -1; c.pixel_weight = true; });
    add("NC", [](Case& c) { c.shape = {64, 5}; });
    add("NCsig", [](Case& c) { c.shape = {64, 5}; c.activation = CULOSS_ACTIVATION_SIGMOID; });
    add("axis2", [](Case& c) { c.shape = {2, 3, 4, 10}; c.class_axis = 2; c.pixel_weight = true; });
    add("axisM2", [](Case& c) { c.shape = {2, 3, 4, 10}; c.class_axis = -2; c.tgt = Tgt::DenseU8; });
    add("wtSimple", [](Case& c) { c.weight_type = CULOSS_WEIGHT_SIMPLE; });
    add("wtUniform", [](Case& c) { c.weight_type = CULOSS_WEIGHT_UNIFORM; });
    add("wtSquareAbsentCw", [](Case& c) { c.weight_type = CULOSS_WEIGHT_SQUARE; c.absent_everywhere = true; c.class_weights = true; });
    add("alphaBeta", [](Case& c) { c.alpha = 0.3; c.beta = 0.7; });
    add("alphaBetaSkewed", [](Case& c) { c.alpha = 0.9; c.beta = 0.05; });
    add("gamma2", [](Case& c) { c.gamma = 2.0; });
    add("gammaHalf", [](Case& c) { c.gamma = 0.5; });
    add("gamma1", [](Case& c) { c.gamma = 1.0; });
    add("smooth0", [](Case& c) { c.smooth_nr = 0.0; c.smooth_dr = 0.0; });
    add("smooth0AllIgnored", [](Case& c) { c.smooth_nr = 0.0; c.smooth_dr = 0.0; c.ignore_frac = 1.0; });
    add("smooth1", [](Case& c) { c.smooth_nr = 1.0; c.smooth_dr = 1.0; });
    add("allIgnored", [](Case& c) { c.ignore_frac = 1.0; });
    add("allIgnoredDense", [](Case& c) { c.ignore_frac = 1.0; c.tgt = Tgt::DenseF32; });
    add("ignoreInRange", [](Case& c) { c.ignore_index = 1; });
    add("ignoreI32Custom", [](Case& c) { c.tgt = Tgt::IdxI32; c.ignore_index = 77; });
    add("gradScaleNeg", [](Case& c) { c.grad_scale = -2.5; });
    add("gradScale0", [](Case& c) { c.grad_scale = 0.0; });
    add("lossF32", [](Case& c) { c.loss_dtype = f32(); });
    add("lossF32none", [](Case& c) { c.loss_dtype = f32(); c.reduction = CULOSS_REDUCTION_NONE; });
    add("hostLossOut", [](Case& c) { c.host_loss_out = true; });
    add("hostLossOutNone", [](Case& c) { c.host_loss_out = true; c.reduction = CULOSS_REDUCTION_NONE; c.loss_dtype = f32(); });
    add("noCheck", [](Case& c) { c.check_targets = 0; });
    add("everything", [](Case& c) {
      c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.in = bf16(); c.grad_f32 = true; c.pixel_weight = true;
      c.class_weights = true; c.include_bg = 0; c.batch = 1; c.skip_empty = 1; c.absent_everywhere = true;
      c.reduction = CULOSS_REDUCTION_SUM; c.tgt = Tgt::IdxU8;
    });
    add("everythingNone", [](Case& c) {
      c.shape = {3, 5, 9, 11}; c.in = f64(); c.grad_f32 = true; c.pixel_weight = true; c.class_weights = true;
      c.include_bg = 0; c.skip_empty = 1; c.reduction = CULOSS_REDUCTION_NONE; c.tgt = Tgt::DenseF32;
      c.activation = CULOSS_ACTIVATION_NONE; c.squared = 1; c.smooth_nr = 0.0; c.smooth_dr = 1e-3;
    });
  }
  return out;
}

// Big shapes (multi-block reductions), many classes, C = 1, classification, and tiny shapes.
std::vector<Case> shape_sweep() {
  std::vector<Case> out;
  int r = 0;
  for (culoss_kind k : kKinds) {
    auto add = [&](const std::string& tag, std::vector<int64_t> shape, auto mutate) {
      Case c = base_case(k, std::move(shape), 5000 + r);
      mutate(c);
      out.push_back(finish(c, "S" + std::to_string(r++) + "_" + tag));
    };
    add("big2x4x300x300", std::vector<int64_t>{2, 4, 300, 300}, [](Case& c) { c.pixel_weight = true; });
    add("big2x4x300x300bf16sig", std::vector<int64_t>{2, 4, 300, 300}, [](Case& c) {
      c.in = bf16(); c.grad_f32 = true; c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::DenseU8;
      c.reduction = CULOSS_REDUCTION_NONE; c.ignore_frac = 0.0;
    });
    add("big2x4x300x300microBatch", std::vector<int64_t>{2, 4, 300, 300}, [](Case& c) {
      c.average = CULOSS_AVERAGE_MICRO; c.batch = 1; c.tgt = Tgt::IdxU8; c.class_weights = true; c.reduction = CULOSS_REDUCTION_SUM;
    });
    add("big2x4x300x300f64", std::vector<int64_t>{2, 4, 300, 300}, [](Case& c) { c.in = f64(); c.tgt = Tgt::IdxI32; c.batch = 1; c.reduction = CULOSS_REDUCTION_NONE; });
    add("bigNHWC", std::vector<int64_t>{2, 300, 300, 4}, [](Case& c) { c.class_axis = -1; c.tgt = Tgt::IdxI32; c.skip_empty = 1; });
    add("vol2x3x16x16x16f16", std::vector<int64_t>{2, 3, 16, 16, 16}, [](Case& c) { c.in = f16(); c.tgt = Tgt::IdxI32; });
    add("vol2x3x16x16x16bf16dense", std::vector<int64_t>{2, 3, 16, 16, 16}, [](Case& c) {
      c.in = bf16(); c.tgt = Tgt::DenseF32; c.activation = CULOSS_ACTIVATION_SIGMOID; c.pixel_weight = true;
    });
    add("volNDHWC", std::vector<int64_t>{2, 16, 16, 16, 3}, [](Case& c) { c.class_axis = -1; c.reduction = CULOSS_REDUCTION_NONE; });
    add("C150", std::vector<int64_t>{2, 150, 12, 12}, [](Case& c) { c.tgt = Tgt::IdxI32; c.class_weights = true; c.include_bg = 0; c.reduction = CULOSS_REDUCTION_NONE; });
    add("C150f16", std::vector<int64_t>{2, 150, 12, 12}, [](Case& c) { c.in = f16(); c.grad_f32 = true; c.skip_empty = 1; });
    add("C150none", std::vector<int64_t>{2, 150, 12, 12}, [](Case& c) { c.in = f64(); c.activation = CULOSS_ACTIVATION_NONE; c.tgt = Tgt::DenseF32; });
    add("C150NHWC", std::vector<int64_t>{2, 12, 12, 150}, [](Case& c) { c.class_axis = -1; c.tgt = Tgt::IdxU8; c.average = CULOSS_AVERAGE_MICRO; });
    add("C1sigmoid", std::vector<int64_t>{2, 1, 64, 64}, [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::IdxU8; });
    add("C1sigmoidBig", std::vector<int64_t>{4, 1, 256, 256}, [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::DenseF32; c.pixel_weight = true; });
    // (A softmax over one class is refused; C = 1 with probabilities and index labels reads them as
    // a binary mask.)
    add("C1noneMask", std::vector<int64_t>{2, 1, 64, 64}, [](Case& c) {
      c.activation = CULOSS_ACTIVATION_NONE;
      c.tgt = Tgt::IdxI64;
    });
    add("C1none", std::vector<int64_t>{2, 1, 64, 64}, [](Case& c) { c.activation = CULOSS_ACTIVATION_NONE; c.tgt = Tgt::DenseU8; });
    add("cls1000x10", std::vector<int64_t>{1000, 10}, [](Case&) {});
    add("cls1000x10batch", std::vector<int64_t>{1000, 10}, [](Case& c) { c.batch = 1; c.reduction = CULOSS_REDUCTION_NONE; });
    add("cls1000x10sig", std::vector<int64_t>{1000, 10}, [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::DenseU8; c.in = f16(); });
    add("onePixel", std::vector<int64_t>{1, 3, 1, 1}, [](Case& c) { c.ignore_frac = 0.0; });
    add("onePixelNone", std::vector<int64_t>{1, 3, 1, 1}, [](Case& c) { c.ignore_frac = 0.0; c.reduction = CULOSS_REDUCTION_NONE; c.in = f64(); });
    add("onePixelNC", std::vector<int64_t>{1, 3}, [](Case& c) { c.ignore_frac = 0.0; });
    add("onePixelC1", std::vector<int64_t>{1, 1, 1, 1}, [](Case& c) { c.activation = CULOSS_ACTIVATION_SIGMOID; c.tgt = Tgt::IdxU8; c.ignore_frac = 0.0; c.empty_class = false; });
    add("onePixelNHWC", std::vector<int64_t>{1, 1, 1, 2}, [](Case& c) { c.class_axis = -1; c.ignore_frac = 0.0; c.in = bf16(); });
    add("longRow", std::vector<int64_t>{1, 5, 4096 * 33 + 7}, [](Case& c) { c.tgt = Tgt::IdxU8; });
    add("manyImages", std::vector<int64_t>{64, 3, 7, 9}, [](Case& c) { c.reduction = CULOSS_REDUCTION_NONE; c.pixel_weight = true; });
    add("oddSizes", std::vector<int64_t>{3, 7, 33, 17}, [](Case& c) { c.in = f16(); c.tgt = Tgt::DenseIn; c.activation = CULOSS_ACTIVATION_SIGMOID; });
    add("inner1", std::vector<int64_t>{5, 4, 1}, [](Case& c) { c.ignore_frac = 0.0; });
  }
  return out;
}

// Random valid combinations of everything.
std::vector<Case> random_sweep() {
  std::vector<Case> out;
  std::mt19937_64 rng(20260101);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto coin = [&](double p) { return U(rng) < p; };
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  for (int r = 0; r < 100; ++r) {
    Case c;
    c.seed = 9000 + r;
    c.kind = kKinds[pick(5)];
    c.in = dts[pick(4)];
    c.grad_f32 = coin(0.5);
    c.activation = pick(3);
    const int64_t N = 1 + pick(3);
    const int64_t C = coin(0.1) ? 1 : 2 + pick(6);
    // One class: SIGMOID instead of the (refused) softmax; NONE reads index labels as a mask.
    if (C == 1 && c.activation == CULOSS_ACTIVATION_SOFTMAX)
      c.activation = CULOSS_ACTIVATION_SIGMOID;
    auto d = [&] { return static_cast<int64_t>(1 + pick(24)); };
    switch (pick(6)) {
      case 0: c.shape = {N, C, d(), d()}; break;
      case 1: c.shape = {N, C, 1 + pick(8), 1 + pick(8), 1 + pick(8)}; break;
      case 2: c.shape = {N, d(), d(), C}; c.class_axis = -1; break;
      case 3: c.shape = {N * (1 + pick(200)), C}; break;
      case 4: c.shape = {N, 1 + pick(5), C, d()}; c.class_axis = 2; break;
      default: c.shape = {N, 1 + pick(6), 1 + pick(6), 1 + pick(6), C}; c.class_axis = -1; break;
    }
    c.tgt = static_cast<Tgt>(pick(6));
    c.ignore_frac = coin(0.3) ? 0.0 : coin(0.05) ? 1.0 : 0.25 * U(rng);
    c.pixel_weight = coin(0.4);
    c.class_weights = coin(0.3);
    c.include_bg = coin(0.3) ? 0 : 1;
    c.batch = coin(0.3) ? 1 : 0;
    c.average = coin(0.3) ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
    c.squared = coin(0.3) ? 1 : 0;
    c.skip_empty = coin(0.3) ? 1 : 0;
    c.absent_everywhere = coin(0.2);
    c.empty_class = coin(0.8);
    c.reduction = pick(3);
    c.weight_type = pick(3);
    c.alpha = U(rng);
    c.beta = U(rng);
    c.gamma = coin(0.5) ? 0.75 : 0.5 + 2.0 * U(rng);
    if (coin(0.2)) c.smooth_nr = c.smooth_dr = coin(0.5) ? 0.0 : 1.0;
    c.check_targets = coin(0.5) ? 1 : 0;
    c.grad_scale = coin(0.7) ? 1.0 : coin(0.5) ? -0.5 : 3.0;
    c.loss_dtype = coin(0.5) ? f32() : f64();
    c.host_loss_out = coin(0.3);
    out.push_back(finish(c, "R" + std::to_string(r)));
  }
  return out;
}

// MCC (every dtype, layout, option) and soft labels (DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, MCC).
std::vector<Case> mcc_soft_sweep() {
  std::vector<Case> out;
  std::mt19937_64 rng(20261214);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto coin = [&](double p) { return U(rng) < p; };
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  const culoss_kind soft_kinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY,
                                    CULOSS_FOCAL_TVERSKY, CULOSS_MCC};
  for (int r = 0; r < 60; ++r) {
    Case c;
    c.seed = 14000 + r;
    c.kind = r % 2 ? CULOSS_MCC : soft_kinds[pick(5)];
    c.soft_label = r % 2 ? (coin(0.5) ? 1 : 0) : 1;
    c.in = dts[r % 4];
    c.grad_f32 = coin(0.5);
    c.activation = pick(3);
    const int64_t N = 1 + pick(3);
    const int64_t C = coin(0.15) ? 1 : 2 + pick(5);
    if (C == 1 && c.activation == CULOSS_ACTIVATION_SOFTMAX) c.activation = CULOSS_ACTIVATION_SIGMOID;
    auto d = [&] { return static_cast<int64_t>(1 + pick(40)); };
    switch (r % 4) {
      case 0: c.shape = {N, C, d(), d()}; break;
      case 1: c.shape = {N, d(), d(), C}; c.class_axis = -1; break;
      case 2: c.shape = {N * (1 + pick(200)), C}; break;
      default: c.shape = {N, C, 1 + pick(8), 1 + pick(8), 1 + pick(8)}; break;
    }
    c.tgt = static_cast<Tgt>(pick(6));
    c.ignore_frac = coin(0.3) ? 0.0 : coin(0.05) ? 1.0 : 0.25 * U(rng);
    c.pixel_weight = coin(0.4);
    c.class_weights = coin(0.3);
    c.include_bg = coin(0.3) ? 0 : 1;
    c.batch = coin(0.4) ? 1 : 0;
    c.average = coin(0.3) ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
    c.skip_empty = coin(0.3) ? 1 : 0;
    c.absent_everywhere = coin(0.2);
    c.empty_class = coin(0.8);
    c.reduction = pick(3);
    c.alpha = U(rng);
    c.beta = U(rng);
    c.gamma = coin(0.5) ? 0.75 : 0.5 + 2.0 * U(rng);
    // MCC with ε = 0 on tiny images has gradients that are rounding residues of exact zeros
    // (tests/losses/mcc_soft_label_test.cpp covers ε = 0): no backend comparison can judge them.
    if (coin(0.2)) c.smooth_nr = c.smooth_dr = coin(0.5) && c.kind != CULOSS_MCC ? 0.0 : 1.0;
    c.grad_scale = coin(0.7) ? 1.0 : -0.5;
    c.loss_dtype = coin(0.5) ? f32() : f64();
    c.host_loss_out = coin(0.3);
    out.push_back(finish(c, "M" + std::to_string(r)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The CUDA backend against the CPU backend
// ---------------------------------------------------------------------------------------------

class RegionCudaVsCpu : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

// Runs `p` on both backends and compares. Optionally returns the CUDA result.
void check_against_cpu(Problem& p, const CudaRunOptions& o, RunResult* cuda_out = nullptr) {
  SCOPED_TRACE(describe(p.c));
  Loss loss(p.c.kind);
  ASSERT_NE(nullptr, loss.h);
  ASSERT_TRUE(configure(loss, p));
  RunResult ref;
  ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &ref));
  ASSERT_EQ(CULOSS_SUCCESS, ref.status) << "CPU backend: " << ref.error;
  RunResult got;
  ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &got));
  ASSERT_EQ(CULOSS_SUCCESS, got.status) << "CUDA backend: " << got.error;
  EXPECT_STREQ("", culoss_last_error());
  EXPECT_TRUE(got.guards_ok) << "a write outside a tensor (guard bytes or byte_offset gap changed)";
  EXPECT_TRUE(got.host_loss_ready) << "host loss_out changed after culoss_compute returned";
  EXPECT_TRUE(close(ref.loss, got.loss, value_tol(p.c), "loss"));
  if (o.with_grad) EXPECT_TRUE(close(ref.grad, got.grad, grad_tol(p.c), "gradient"));
  else EXPECT_TRUE(still_poisoned(got.grad)) << "forward-only call wrote a gradient buffer it was not given";
  if (cuda_out != nullptr) *cuda_out = std::move(got);
}

TEST_P(RegionCudaVsCpu, MatchesCpuBackend) {
  Problem p = make_problem(GetParam());
  CudaRunOptions o;
  o.host_loss_out = p.c.host_loss_out;
  check_against_cpu(p, o);
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Dtypes, RegionCudaVsCpu, ::testing::ValuesIn(dtype_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Options, RegionCudaVsCpu, ::testing::ValuesIn(option_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, RegionCudaVsCpu, ::testing::ValuesIn(shape_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Random, RegionCudaVsCpu, ::testing::ValuesIn(random_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(MccSoftLabel, RegionCudaVsCpu, ::testing::ValuesIn(mcc_soft_sweep()),
                         case_name);

// ---------------------------------------------------------------------------------------------
// Call plumbing: loss_out location, workspace, streams, in-place, determinism, offsets
// ---------------------------------------------------------------------------------------------

class RegionCuda : public ::testing::Test {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

// A few representative cases used by the plumbing tests.
std::vector<Case> plumbing_cases() {
  std::vector<Case> v;
  int r = 0;
  for (culoss_kind k : kKinds) {
    Case a = base_case(k, {2, 4, 300, 300}, 20000 + r++);
    a.pixel_weight = true;
    v.push_back(finish(a, "P"));
    Case b = base_case(k, {2, 3, 16, 16, 16}, 20000 + r++);
    b.in = bf16();
    b.reduction = CULOSS_REDUCTION_NONE;
    b.tgt = Tgt::IdxU8;
    b.class_weights = true;
    v.push_back(finish(b, "P"));
    Case c = base_case(k, {2, 40, 30, 5}, 20000 + r++);
    c.class_axis = -1;
    c.in = f16();
    c.activation = CULOSS_ACTIVATION_SIGMOID;
    c.tgt = Tgt::DenseF32;
    c.batch = 1;
    c.average = CULOSS_AVERAGE_MICRO;
    v.push_back(finish(c, "P"));
  }
  return v;
}

TEST_F(RegionCuda, LossOutOnDeviceAndOnHostGiveTheSameBits) {
  for (const Case& c0 : plumbing_cases()) {
    for (DLDataType ld : {f32(), f64()}) {
      Case c = c0;
      c.loss_dtype = ld;
      Problem p = make_problem(c);
      SCOPED_TRACE(describe(c));
      RunResult dev, host;
      CudaRunOptions o;
      ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o, &dev));
      o.host_loss_out = true;
      ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o, &host));
      EXPECT_TRUE(same_bits(dev.loss, host.loss, "loss (device vs host loss_out)"));
      EXPECT_TRUE(same_bits(dev.grad, host.grad, "gradient (device vs host loss_out)"));
    }
  }
}

// The workspace depends on the backend (CUDA adds per-block partials), never on the device model.
TEST_F(RegionCuda, WorkspaceSizeCoversTheCpuLayoutAndIsStable) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));
    CudaTensor din(p.input), dtg(p.target);
    size_t cpu_bytes = 0, cuda_bytes = 0, again = 0;
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, p.input.dl(), p.target.dl(), &cpu_bytes)) << culoss_last_error();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &cuda_bytes)) << culoss_last_error();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &again)) << culoss_last_error();
    EXPECT_GE(cuda_bytes, cpu_bytes);
    EXPECT_EQ(cuda_bytes, again);
    EXPECT_GT(cuda_bytes, 0u);
  }
}

TEST_F(RegionCuda, CallerWorkspaceGivesTheSameBitsAsLibraryAllocation) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));
    RunResult lib, exact, large;
    CudaRunOptions o;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &lib));
    ASSERT_EQ(CULOSS_SUCCESS, lib.status) << lib.error;
    o.ws = Ws::Exact;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &exact));
    ASSERT_EQ(CULOSS_SUCCESS, exact.status) << exact.error;
    EXPECT_TRUE(exact.guards_ok) << "the library wrote past the workspace (or another tensor)";
    EXPECT_TRUE(same_bits(lib.loss, exact.loss, "loss (NULL vs exact workspace)"));
    EXPECT_TRUE(same_bits(lib.grad, exact.grad, "gradient (NULL vs exact workspace)"));
    o.ws = Ws::Large;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &large));
    ASSERT_EQ(CULOSS_SUCCESS, large.status) << large.error;
    EXPECT_TRUE(same_bits(lib.loss, large.loss, "loss (NULL vs larger workspace)"));
    EXPECT_TRUE(same_bits(lib.grad, large.grad, "gradient (NULL vs larger workspace)"));
  }
}

// culoss_workspace_size includes up to 256 bytes of alignment slack, so a workspace of exactly
// that size works at any address.
TEST_F(RegionCuda, ExactWorkspaceAtAnUnalignedAddressWorks) {
  const std::vector<Case> cases = plumbing_cases();
  for (size_t i = 0; i < cases.size(); i += 2) {
    Problem p = make_problem(cases[i]);
    SCOPED_TRACE(describe(p.c));
    Loss loss(p.c.kind);
    ASSERT_TRUE(configure(loss, p));
    RunResult lib;
    CudaRunOptions o;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &lib));
    ASSERT_EQ(CULOSS_SUCCESS, lib.status) << lib.error;
    for (uint64_t mis : {1u, 8u, 200u}) {
      SCOPED_TRACE("workspace address = 256-aligned + " + std::to_string(mis));
      RunResult r;
      o.ws = Ws::ExactMisaligned;
      o.ws_misalign = mis;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &r));
      ASSERT_EQ(CULOSS_SUCCESS, r.status) << r.error;
      EXPECT_TRUE(r.guards_ok);
      EXPECT_TRUE(same_bits(lib.loss, r.loss, "loss"));
      EXPECT_TRUE(same_bits(lib.grad, r.grad, "gradient"));
    }
  }
}

TEST_F(RegionCuda, InsufficientWorkspaceIsRefusedAndWritesNothing) {
  for (const Case& c0 : plumbing_cases()) {
    for (bool host_loss : {false, true}) {
      Case c = c0;
      Problem p = make_problem(c);
      SCOPED_TRACE(describe(c) + (host_loss ? " [host loss_out]" : ""));
      Loss loss(c.kind);
      ASSERT_TRUE(configure(loss, p));
      RunResult r;
      CudaRunOptions o;
      o.ws = Ws::Short;
      o.host_loss_out = host_loss;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &r));
      EXPECT_EQ(CULOSS_ERROR_INSUFFICIENT_WORKSPACE, r.status) << r.error;
      EXPECT_STRNE("", r.error.c_str());
      EXPECT_TRUE(still_poisoned(r.loss)) << "loss_out written by a refused call";
      EXPECT_TRUE(still_poisoned(r.grad)) << "grad_input written by a refused call";
      EXPECT_TRUE(r.guards_ok);
    }
  }
}

// A non-default stream is used for all the work: the input is uploaded on that stream behind a
// host callback that holds the stream for a while, and the results are read back on the same
// stream. Work issued on any other stream would see the stale input and give other numbers.
void CUDART_CB hold_stream(void*) { std::this_thread::sleep_for(std::chrono::milliseconds(100)); }

TEST_F(RegionCuda, NonDefaultStreamOrdersTheWork) {
  const std::vector<Case> cases = plumbing_cases();
  for (size_t ci = 0; ci < cases.size(); ci += 2) {
    for (int check : {0, 1}) {
      for (bool blocking : {false, true}) {
        Case c = cases[ci];
        c.check_targets = check;
        Problem p = make_problem(c);
        SCOPED_TRACE(describe(c) + (blocking ? " [blocking stream]" : " [non-blocking stream]"));
        Loss loss(c.kind);
        ASSERT_TRUE(configure(loss, p));

        // Reference: the default stream.
        RunResult ref;
        ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &ref));
        ASSERT_EQ(CULOSS_SUCCESS, ref.status) << ref.error;

        CudaStream s(blocking ? cudaStreamDefault : cudaStreamNonBlocking);
        CudaTensor din(p.input.shape, p.input.dtype), dtg(p.target);
        std::unique_ptr<CudaTensor> dw;
        if (p.has_weight) dw = std::make_unique<CudaTensor>(p.weight);
        CudaTensor dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, grad_dtype(c));
        CUDA_ASSERT_OK(cudaMemset(din.data_ptr(), 0, din.nbytes()));  // stale input: zeros
        dloss.poison();
        dgrad.poison();
        PinnedBuffer hin(din.nbytes()), hgrad(dgrad.nbytes()), hloss(dloss.nbytes());
        std::memcpy(hin.get(), p.input.bytes.data(), din.nbytes());
        CUDA_ASSERT_OK(cudaDeviceSynchronize());

        CUDA_ASSERT_OK(cudaLaunchHostFunc(s.get(), hold_stream, nullptr));
        CUDA_ASSERT_OK(cudaMemcpyAsync(din.data_ptr(), hin.get(), din.nbytes(), cudaMemcpyHostToDevice, s.get()));
        const culoss_status st = culoss_compute(loss, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(),
                                                dgrad.dl(), c.grad_scale, nullptr, 0, s.get());
        ASSERT_EQ(CULOSS_SUCCESS, st) << culoss_last_error();
        CUDA_ASSERT_OK(cudaMemcpyAsync(hgrad.get(), dgrad.data_ptr(), dgrad.nbytes(), cudaMemcpyDeviceToHost, s.get()));
        CUDA_ASSERT_OK(cudaMemcpyAsync(hloss.get(), dloss.data_ptr(), dloss.nbytes(), cudaMemcpyDeviceToHost, s.get()));
        CUDA_ASSERT_OK(cudaStreamSynchronize(s.get()));

        TestTensor g(c.shape, grad_dtype(c)), l(p.loss_shape, c.loss_dtype);
        std::memcpy(g.bytes.data(), hgrad.get(), dgrad.nbytes());
        std::memcpy(l.bytes.data(), hloss.get(), dloss.nbytes());
        EXPECT_TRUE(same_bits(ref.loss, l, "loss (default stream vs user stream)"));
        EXPECT_TRUE(same_bits(ref.grad, g, "gradient (default stream vs user stream)"));
        CUDA_EXPECT_OK(cudaDeviceSynchronize());
      }
    }
  }
}

// With a workspace and CHECK_TARGETS=0 a call can be captured into a CUDA graph; replaying the
// graph on new input data gives what a direct call gives.
TEST_F(RegionCuda, CapturedIntoACudaGraphAndReplayed) {
  const std::vector<Case> cases = plumbing_cases();
  for (size_t ci = 0; ci < cases.size(); ci += 2) {  // every plumbing shape, some with class weights
    Case c = cases[ci];
    c.check_targets = 0;
    Problem p = make_problem(c);
    Case c2 = c;
    c2.seed += 777;
    Problem p2 = make_problem(c2);
    p2.target = p.target;  // replay changes only the logits
    if (p.has_weight) p2.weight = p.weight;
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));

    RunResult direct;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p2, loss, CudaRunOptions{}, &direct));
    ASSERT_EQ(CULOSS_SUCCESS, direct.status) << direct.error;

    CudaStream s(cudaStreamNonBlocking);
    CudaTensor din(p.input), dtg(p.target);
    std::unique_ptr<CudaTensor> dw;
    if (p.has_weight) dw = std::make_unique<CudaTensor>(p.weight);
    CudaTensor dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, grad_dtype(c));
    size_t ws = 0;
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(loss, din.dl(), dtg.dl(), &ws));
    CudaTensor wsbuf({static_cast<int64_t>(ws)}, u8());
    CUDA_ASSERT_OK(cudaDeviceSynchronize());

    cudaGraph_t graph = nullptr;
    CUDA_ASSERT_OK(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeThreadLocal));
    const culoss_status st = culoss_compute(loss, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(),
                                            dgrad.dl(), c.grad_scale, wsbuf.data_ptr(), ws, s.get());
    const std::string err = culoss_last_error();
    const cudaError_t end = cudaStreamEndCapture(s.get(), &graph);
    ASSERT_EQ(CULOSS_SUCCESS, st) << err;
    ASSERT_EQ(cudaSuccess, end) << cudaGetErrorString(end);
    ASSERT_NE(nullptr, graph);
    cudaGraphExec_t exec = nullptr;
    CUDA_ASSERT_OK(cudaGraphInstantiate(&exec, graph, 0));

    din.upload(p2.input);
    dloss.poison();
    dgrad.poison();
    CUDA_ASSERT_OK(cudaDeviceSynchronize());
    CUDA_EXPECT_OK(cudaGraphLaunch(exec, s.get()));
    CUDA_EXPECT_OK(cudaStreamSynchronize(s.get()));
    EXPECT_TRUE(same_bits(direct.loss, dloss.download(), "loss (graph replay vs direct call)"));
    EXPECT_TRUE(same_bits(direct.grad, dgrad.download(), "gradient (graph replay vs direct call)"));
    EXPECT_TRUE(wsbuf.guards_intact());
    CUDA_EXPECT_OK(cudaGraphExecDestroy(exec));
    CUDA_EXPECT_OK(cudaGraphDestroy(graph));
  }
}

TEST_F(RegionCuda, InPlaceGradientMatchesOutOfPlace) {
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  const int acts[] = {CULOSS_ACTIVATION_SOFTMAX, CULOSS_ACTIVATION_SIGMOID, CULOSS_ACTIVATION_NONE};
  const std::vector<std::pair<std::vector<int64_t>, int>> layouts = {
      {{2, 5, 40, 40}, 1}, {{2, 40, 40, 5}, -1}, {{300, 7}, 1}, {{2, 3, 8, 8, 8}, 1}};
  int r = 0;
  for (culoss_kind k : kKinds)
    for (DLDataType d : dts)
      for (int a : acts) {
        const auto& lay = layouts[static_cast<size_t>(r % 4)];
        Case c = base_case(k, lay.first, 30000 + r);
        c.class_axis = lay.second;
        c.in = d;
        c.activation = a;
        c.tgt = a == CULOSS_ACTIVATION_SIGMOID ? Tgt::DenseF32 : (r % 2 ? Tgt::IdxI32 : Tgt::DenseU8);
        c.pixel_weight = r % 3 == 0;
        c.reduction = r % 5 == 0 ? CULOSS_REDUCTION_NONE : CULOSS_REDUCTION_MEAN;
        ++r;
        c = finish(c, "I");
        Problem p = make_problem(c);
        SCOPED_TRACE(describe(c));
        Loss loss(c.kind);
        ASSERT_TRUE(configure(loss, p));
        RunResult out, in1, in2;
        CudaRunOptions o;
        ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &out));
        ASSERT_EQ(CULOSS_SUCCESS, out.status) << out.error;
        o.in_place = true;
        ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &in1));
        ASSERT_EQ(CULOSS_SUCCESS, in1.status) << in1.error;
        EXPECT_TRUE(in1.guards_ok);
        EXPECT_TRUE(same_bits(out.loss, in1.loss, "loss (in-place, same DLTensor)"));
        EXPECT_TRUE(same_bits(out.grad, in1.grad, "gradient (in-place, same DLTensor)"));
        o.in_place = false;
        o.in_place_copy = true;
        ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &in2));
        ASSERT_EQ(CULOSS_SUCCESS, in2.status) << in2.error;
        EXPECT_TRUE(same_bits(out.loss, in2.loss, "loss (in-place, separate DLTensor)"));
        EXPECT_TRUE(same_bits(out.grad, in2.grad, "gradient (in-place, separate DLTensor)"));
      }
}

TEST_F(RegionCuda, InPlaceWithByteOffsetAndHostLossOut) {
  for (culoss_kind k : kKinds) {
    Case c = finish([&] {
      Case x = base_case(k, {2, 4, 100, 100}, 31000 + k);
      x.in = bf16();
      x.host_loss_out = true;
      return x;
    }(), "IO");
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));
    RunResult out, in;
    CudaRunOptions o = offsets(64);
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &out));
    ASSERT_EQ(CULOSS_SUCCESS, out.status) << out.error;
    o.in_place = true;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &in));
    ASSERT_EQ(CULOSS_SUCCESS, in.status) << in.error;
    EXPECT_TRUE(in.guards_ok);
    EXPECT_TRUE(same_bits(out.loss, in.loss, "loss"));
    EXPECT_TRUE(same_bits(out.grad, in.grad, "gradient"));
  }
}

TEST_F(RegionCuda, RepeatedCallsAreBitwiseDeterministic) {
  std::vector<Case> cases = plumbing_cases();
  for (culoss_kind k : kKinds) {
    Case c = base_case(k, {1, 5, 4096 * 33 + 7}, 32000 + k);
    c.in = f16();
    c.grad_f32 = true;
    c.class_weights = true;
    c.batch = 1;
    cases.push_back(finish(c, "Det"));
  }
  for (const Case& c : cases) {
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));
    RunResult a, b, d;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &a));
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &b));
    CudaRunOptions ws;
    ws.ws = Ws::Exact;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, ws, &d));
    ASSERT_EQ(CULOSS_SUCCESS, a.status) << a.error;
    ASSERT_EQ(CULOSS_SUCCESS, b.status) << b.error;
    ASSERT_EQ(CULOSS_SUCCESS, d.status) << d.error;
    EXPECT_TRUE(same_bits(a.loss, b.loss, "loss (call 1 vs 2)"));
    EXPECT_TRUE(same_bits(a.grad, b.grad, "gradient (call 1 vs 2)"));
    EXPECT_TRUE(same_bits(a.loss, d.loss, "loss (call 1 vs 3)"));
    EXPECT_TRUE(same_bits(a.grad, d.grad, "gradient (call 1 vs 3)"));
  }
}

// Several calls in one buffer set without re-poisoning: the second call must overwrite, not
// accumulate into, loss_out and grad_input.
TEST_F(RegionCuda, OutputsAreOverwrittenNotAccumulated) {
  for (culoss_kind k : kKinds) {
    Case c = finish(base_case(k, {2, 4, 64, 64}, 33000 + k), "Acc");
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));
    CudaTensor din(p.input), dtg(p.target);
    CudaTensor dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, grad_dtype(c));
    CUDA_ASSERT_OK(cudaMemset(dgrad.data_ptr(), 0x3c, dgrad.nbytes()));  // finite garbage
    CUDA_ASSERT_OK(cudaMemset(dloss.data_ptr(), 0x3c, dloss.nbytes()));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(loss, din.dl(), dtg.dl(), nullptr, dloss.dl(), dgrad.dl(),
                                             c.grad_scale, nullptr, 0, nullptr)) << culoss_last_error();
    const TestTensor l1 = dloss.download(), g1 = dgrad.download();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_compute(loss, din.dl(), dtg.dl(), nullptr, dloss.dl(), dgrad.dl(),
                                             c.grad_scale, nullptr, 0, nullptr)) << culoss_last_error();
    EXPECT_TRUE(same_bits(l1, dloss.download(), "loss"));
    EXPECT_TRUE(same_bits(g1, dgrad.download(), "gradient"));
    RunResult ref;
    ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &ref));
    EXPECT_TRUE(close(ref.loss, l1, value_tol(c), "loss vs CPU"));
    EXPECT_TRUE(close(ref.grad, g1, grad_tol(c), "gradient vs CPU"));
  }
}

TEST_F(RegionCuda, ForwardOnlyLeavesTheGradientBufferAlone) {
  for (const Case& c : plumbing_cases()) {
    Problem p = make_problem(c);
    CudaRunOptions o;
    o.with_grad = false;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
  }
}

TEST_F(RegionCuda, ByteOffsetsAreHonoured) {
  for (const Case& c0 : plumbing_cases()) {
    Case c = c0;
    c.pixel_weight = true;
    Problem p = make_problem(c);
    SCOPED_TRACE(describe(c));
    Loss loss(c.kind);
    ASSERT_TRUE(configure(loss, p));
    RunResult zero, aligned;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &zero));
    ASSERT_EQ(CULOSS_SUCCESS, zero.status) << zero.error;
    // 256-byte offsets keep every vector alignment: the same bits as without an offset.
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, offsets(256), &aligned));
    ASSERT_EQ(CULOSS_SUCCESS, aligned.status) << aligned.error;
    EXPECT_TRUE(aligned.guards_ok);
    EXPECT_TRUE(same_bits(zero.loss, aligned.loss, "loss (offset 256 vs 0)"));
    EXPECT_TRUE(same_bits(zero.grad, aligned.grad, "gradient (offset 256 vs 0)"));
    // One element of each tensor's own dtype (breaks vector alignment): same values as the CPU.
    CudaRunOptions o;
    o.off_in = static_cast<uint64_t>(p.input.elem_size());
    o.off_tg = static_cast<uint64_t>(p.target.elem_size()) * 3;
    o.off_w = 4;
    o.off_loss = c.loss_dtype.bits / 8;
    o.off_grad = grad_dtype(c).bits / 8;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
  }
}

TEST_F(RegionCuda, MisalignedByteOffsetIsRefused) {
  Case c = finish(base_case(CULOSS_DICE, {2, 4, 16, 16}, 34000), "Mis");
  c.pixel_weight = true;
  Problem p = make_problem(c);
  Loss loss(c.kind);
  ASSERT_TRUE(configure(loss, p));
  for (int which = 0; which < 5; ++which) {
    SCOPED_TRACE("misaligned tensor #" + std::to_string(which) + " (input, target, pixel_weight, grad, loss_out)");
    CudaRunOptions o;
    (which == 0 ? o.off_in : which == 1 ? o.off_tg : which == 2 ? o.off_w : which == 3 ? o.off_grad : o.off_loss) = 1;
    RunResult r;
    ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &r));
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.status) << r.error;
    EXPECT_STRNE("", r.error.c_str());
    EXPECT_TRUE(still_poisoned(r.loss));
    EXPECT_TRUE(still_poisoned(r.grad));
  }
}

// ---------------------------------------------------------------------------------------------
// Targets: CHECK_TARGETS=1 refuses, CHECK_TARGETS=0 treats out-of-range labels as ignored
// ---------------------------------------------------------------------------------------------

// Writes an integer label exactly (TestTensor::set goes through double, which cannot hold every
// int64).
void set_label(TestTensor& t, int64_t i, int64_t label) {
  uint8_t* p = t.bytes.data() + i * t.elem_size();
  if (t.dtype.code == kDLInt && t.dtype.bits == 64) std::memcpy(p, &label, 8);
  else if (t.dtype.code == kDLInt && t.dtype.bits == 32) { const int32_t v = static_cast<int32_t>(label); std::memcpy(p, &v, 4); }
  else *p = static_cast<uint8_t>(label);
}

struct BadLabel {
  Tgt tgt;
  int64_t value;
};

std::vector<int64_t> positions_for(const Problem& p) {
  const int64_t n = p.target.numel();
  return {0, n / 2 + 1, n - 1};
}

TEST_F(RegionCuda, CheckTargetsRefusesOutOfRangeLabelsAndWritesNothing) {
  // Softmax with C = 4 (labels in [0, 4) or IGNORE_INDEX), and the C = 1 sigmoid binary mask
  // (labels 0/1 or IGNORE_INDEX). uint8 targets use IGNORE_INDEX 255, the others -100.
  const std::vector<BadLabel> softmax_bad = {{Tgt::IdxU8, 4}, {Tgt::IdxU8, 254}, {Tgt::IdxI32, 4},
                                             {Tgt::IdxI32, -1}, {Tgt::IdxI32, -101}, {Tgt::IdxI64, 5},
                                             {Tgt::IdxI64, -7}, {Tgt::IdxI64, int64_t{1} << 40}};
  const std::vector<BadLabel> binary_bad = {{Tgt::IdxU8, 2}, {Tgt::IdxI32, 2}, {Tgt::IdxI32, -1},
                                            {Tgt::IdxI64, 3}, {Tgt::IdxI64, -(int64_t{1} << 40)}};
  int r = 0;
  for (culoss_kind k : kKinds) {
    for (bool sigmoid_binary : {false, true}) {
      for (const BadLabel& b : sigmoid_binary ? binary_bad : softmax_bad) {
        Case c = base_case(k, sigmoid_binary ? std::vector<int64_t>{2, 1, 160, 150} : std::vector<int64_t>{2, 4, 160, 150},
                           35000 + r);
        c.tgt = b.tgt;
        c.pixel_weight = r % 2 == 0;
        ++r;
        if (sigmoid_binary) c.activation = CULOSS_ACTIVATION_SIGMOID;
        c = finish(c, "Chk");
        const Problem p0 = make_problem(c);
        for (int64_t pos : positions_for(p0)) {
          for (bool host_loss : {false, true}) {
            Problem p = p0;
            set_label(p.target, pos, b.value);
            ASSERT_EQ(b.value, p.target.get_int(pos));
            SCOPED_TRACE(describe(c) + " bad label " + std::to_string(b.value) + " at " + std::to_string(pos) +
                         (host_loss ? " [host loss_out]" : ""));
            Loss loss(c.kind);
            ASSERT_TRUE(configure(loss, p));
            RunResult res;
            CudaRunOptions o;
            o.host_loss_out = host_loss;
            ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, o, &res));
            EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, res.status) << res.error;
            EXPECT_STRNE("", res.error.c_str());
            EXPECT_TRUE(still_poisoned(res.grad)) << "gradient written by a refused call";
            EXPECT_TRUE(still_poisoned(res.loss)) << "loss_out written by a refused call";
            EXPECT_TRUE(res.guards_ok);
            if (!host_loss) {
              // The CPU backend agrees that the target is invalid.
              RunResult cpu;
              ASSERT_NO_FATAL_FAILURE(run_cpu(p, loss, &cpu));
              EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, cpu.status) << cpu.error;
            }
          }
        }
        // The same call on the unmodified target succeeds (the check is not over-eager).
        Problem ok = p0;
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(ok, CudaRunOptions{}));
      }
    }
  }
}

TEST_F(RegionCuda, CheckTargetsRefusesBadDenseValues) {
  const double bad_values[] = {1.5, -0.25, NAN, INFINITY};
  int r = 0;
  for (culoss_kind k : kKinds) {
    for (Tgt t : {Tgt::DenseF32, Tgt::DenseU8, Tgt::DenseIn}) {
      for (double v : bad_values) {
        if (t == Tgt::DenseU8 && !(v > 1.0)) continue;  // uint8 can only be too large
        Case c = base_case(k, {2, 4, 64, 64}, 36000 + r++);
        c.tgt = t;
        c.in = t == Tgt::DenseIn ? bf16() : f32();
        c.activation = CULOSS_ACTIVATION_SIGMOID;
        c = finish(c, "ChkD");
        Problem p = make_problem(c);
        const int64_t pos = p.target.numel() - 3;
        p.target.set(pos, t == Tgt::DenseU8 ? 2.0 : v);
        SCOPED_TRACE(describe(c) + " bad dense value " + std::to_string(p.target.get(pos)));
        Loss loss(c.kind);
        ASSERT_TRUE(configure(loss, p));
        RunResult res;
        ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &res));
        EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, res.status) << res.error;
        EXPECT_TRUE(still_poisoned(res.grad));
        EXPECT_TRUE(still_poisoned(res.loss));
      }
    }
  }
}

TEST_F(RegionCuda, CheckTargetsRefusesBadPixelWeights) {
  const double bad_values[] = {-1.0, NAN, INFINITY};
  int r = 0;
  for (culoss_kind k : kKinds) {
    for (double v : bad_values) {
      Case c = base_case(k, {2, 4, 64, 64}, 37000 + r++);
      c.pixel_weight = true;
      c = finish(c, "ChkW");
      Problem p = make_problem(c);
      p.weight.set(p.weight.numel() - 1, v);
      SCOPED_TRACE(describe(c) + " bad pixel weight " + std::to_string(v));
      Loss loss(c.kind);
      ASSERT_TRUE(configure(loss, p));
      RunResult res;
      ASSERT_NO_FATAL_FAILURE(run_cuda(p, loss, CudaRunOptions{}, &res));
      EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, res.status) << res.error;
      EXPECT_TRUE(still_poisoned(res.grad));
      EXPECT_TRUE(still_poisoned(res.loss));
    }
  }
}

TEST_F(RegionCuda, UncheckedOutOfRangeLabelsAreIgnoredLikeOnTheCpu) {
  const std::vector<BadLabel> bads = {{Tgt::IdxU8, 4}, {Tgt::IdxU8, 200}, {Tgt::IdxI32, 4},
                                      {Tgt::IdxI32, -1}, {Tgt::IdxI32, std::numeric_limits<int32_t>::min()},
                                      {Tgt::IdxI32, std::numeric_limits<int32_t>::max()},
                                      {Tgt::IdxI64, int64_t{1} << 40}, {Tgt::IdxI64, -(int64_t{1} << 40)},
                                      {Tgt::IdxI64, std::numeric_limits<int64_t>::max()},
                                      {Tgt::IdxI64, std::numeric_limits<int64_t>::min()}};
  int r = 0;
  for (culoss_kind k : kKinds) {
    for (const BadLabel& b : bads) {
      for (bool sigmoid_binary : {false, true}) {
        Case c = base_case(k, sigmoid_binary ? std::vector<int64_t>{2, 1, 120, 130} : std::vector<int64_t>{2, 4, 120, 130},
                           38000 + r++);
        c.tgt = b.tgt;
        c.check_targets = 0;
        c.reduction = r % 3 == 0 ? CULOSS_REDUCTION_NONE : CULOSS_REDUCTION_MEAN;
        c.pixel_weight = r % 2 == 0;
        if (sigmoid_binary) c.activation = CULOSS_ACTIVATION_SIGMOID;
        c = finish(c, "NoChk");
        Problem p = make_problem(c);
        Problem ignored = p;  // the same problem with the bad labels written as IGNORE_INDEX
        std::mt19937_64 rng(c.seed);
        const int64_t bad = (sigmoid_binary && b.value == 4) ? 2 : b.value;
        for (int j = 0; j < 200; ++j) {
          const int64_t pos = j == 0 ? 0 : j == 1 ? p.target.numel() - 1 : static_cast<int64_t>(rng() % static_cast<uint64_t>(p.target.numel()));
          set_label(p.target, pos, bad);
          set_label(ignored.target, pos, p.ignore_value);
        }
        SCOPED_TRACE(describe(c) + " unchecked label " + std::to_string(bad));
        // CUDA vs CPU, both unchecked and fed the bad labels.
        RunResult got;
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}, &got));
        // ... and the same as marking those pixels ignored.
        Loss loss(c.kind);
        ASSERT_TRUE(configure(loss, ignored));
        RunResult ref;
        ASSERT_NO_FATAL_FAILURE(run_cpu(ignored, loss, &ref));
        ASSERT_EQ(CULOSS_SUCCESS, ref.status) << ref.error;
        EXPECT_TRUE(close(ref.loss, got.loss, value_tol(c), "loss (bad labels vs ignored labels)"));
        EXPECT_TRUE(close(ref.grad, got.grad, grad_tol(c), "gradient (bad labels vs ignored labels)"));
      }
    }
  }
}

TEST_F(RegionCuda, UncheckedDenseValuesAreUsedAsGiven) {
  int r = 0;
  for (culoss_kind k : kKinds) {
    Case c = base_case(k, {2, 3, 50, 40}, 39000 + r++);
    c.tgt = Tgt::DenseF32;
    c.check_targets = 0;
    c = finish(c, "NoChkD");
    Problem p = make_problem(c);
    for (int64_t i = 0; i < p.target.numel(); i += 97) p.target.set(i, i % 2 ? 1.5 : -0.25);
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}));
  }
}

// ---------------------------------------------------------------------------------------------
// Devices, overlap, arguments
// ---------------------------------------------------------------------------------------------

TEST_F(RegionCuda, MixedDevicesAreRefused) {
  Case c = finish(base_case(CULOSS_DICE, {2, 4, 32, 32}, 40000), "Mix");
  c.pixel_weight = true;
  Problem p = make_problem(c);
  Loss loss(c.kind);
  ASSERT_TRUE(configure(loss, p));
  CudaTensor din(p.input), dtg(p.target), dw(p.weight);
  TestTensor hgrad(c.shape, grad_dtype(c)), hloss(p.loss_shape, c.loss_dtype);
  CudaTensor dgrad(c.shape, grad_dtype(c)), dloss(p.loss_shape, c.loss_dtype);

  struct Combo {
    const char* what;
    DLTensor *in, *tg, *w, *loss, *grad;
  };
  auto fresh = [&] {
    hgrad.poison();
    hloss.poison();
    dgrad.poison();
    dloss.poison();
    CUDA_EXPECT_OK(cudaDeviceSynchronize());
  };
  const std::vector<Combo> combos = {
      {"input CUDA, target CPU", din.dl(), p.target.dl(), dw.dl(), dloss.dl(), dgrad.dl()},
      {"input CUDA, pixel_weight CPU", din.dl(), dtg.dl(), p.weight.dl(), dloss.dl(), dgrad.dl()},
      {"input CUDA, grad_input CPU", din.dl(), dtg.dl(), dw.dl(), dloss.dl(), hgrad.dl()},
      {"input CPU, target CUDA", p.input.dl(), dtg.dl(), p.weight.dl(), hloss.dl(), hgrad.dl()},
      {"input CPU, pixel_weight CUDA", p.input.dl(), p.target.dl(), dw.dl(), hloss.dl(), hgrad.dl()},
      {"input CPU, grad_input CUDA", p.input.dl(), p.target.dl(), p.weight.dl(), hloss.dl(), dgrad.dl()},
      {"input CPU, loss_out CUDA", p.input.dl(), p.target.dl(), p.weight.dl(), dloss.dl(), hgrad.dl()},
  };
  for (const Combo& m : combos) {
    SCOPED_TRACE(m.what);
    fresh();
    const culoss_status s = culoss_compute(loss, m.in, m.tg, m.w, m.loss, m.grad, 1.0, nullptr, 0, nullptr);
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, s) << culoss_last_error();
    EXPECT_STRNE("", culoss_last_error());
    CUDA_EXPECT_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(still_poisoned(hgrad));
    EXPECT_TRUE(still_poisoned(hloss));
    EXPECT_TRUE(still_poisoned(dgrad.download()));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }

  // A different device id than the input's (the memory is on device 0 either way: the library
  // must refuse from the descriptors alone).
  {
    SCOPED_TRACE("target on device 1, input on device 0");
    fresh();
    DLTensor tg = *dtg.dl();
    tg.device.device_id = 1;
    const culoss_status s = culoss_compute(loss, din.dl(), &tg, dw.dl(), dloss.dl(), dgrad.dl(), 1.0, nullptr, 0, nullptr);
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, s) << culoss_last_error();
    EXPECT_TRUE(still_poisoned(dgrad.download()));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }
  {
    SCOPED_TRACE("grad_input on device 1, input on device 0");
    fresh();
    DLTensor g = *dgrad.dl();
    g.device.device_id = 1;
    const culoss_status s = culoss_compute(loss, din.dl(), dtg.dl(), dw.dl(), dloss.dl(), &g, 1.0, nullptr, 0, nullptr);
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, s) << culoss_last_error();
    EXPECT_TRUE(still_poisoned(dgrad.download()));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }
  // Device types other than kDLCPU and kDLCUDA.
  for (DLDeviceType t : {kDLCUDAHost, kDLCUDAManaged, kDLROCM}) {
    SCOPED_TRACE("input device type " + std::to_string(static_cast<int>(t)));
    fresh();
    DLTensor in = *din.dl(), tg = *dtg.dl(), w = *dw.dl(), g = *dgrad.dl(), l = *dloss.dl();
    in.device.device_type = tg.device.device_type = w.device.device_type = g.device.device_type =
        l.device.device_type = t;
    const culoss_status s = culoss_compute(loss, &in, &tg, &w, &l, &g, 1.0, nullptr, 0, nullptr);
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, s) << culoss_last_error();
    EXPECT_TRUE(still_poisoned(dgrad.download()));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }
  // A device id that does not exist.
  {
    SCOPED_TRACE("all tensors on a device id that does not exist");
    fresh();
    const int bogus = testing_util::cuda_device_count();
    DLTensor in = *din.dl(), tg = *dtg.dl(), w = *dw.dl(), g = *dgrad.dl(), l = *dloss.dl();
    in.device.device_id = tg.device.device_id = w.device.device_id = g.device.device_id = l.device.device_id = bogus;
    const culoss_status s = culoss_compute(loss, &in, &tg, &w, &l, &g, 1.0, nullptr, 0, nullptr);
    EXPECT_TRUE(s == CULOSS_ERROR_UNSUPPORTED_DEVICE || s == CULOSS_ERROR_CUDA || s == CULOSS_ERROR_INVALID_ARGUMENT)
        << culoss_status_string(s) << ": " << culoss_last_error();
    EXPECT_STRNE("", culoss_last_error());
    CUDA_EXPECT_OK(cudaGetLastError());  // the library leaves no sticky runtime error behind
    EXPECT_TRUE(still_poisoned(dgrad.download()));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }
  // Still fully usable afterwards.
  ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}));
}

TEST_F(RegionCuda, OverlappingOutputsAreRefused) {
  Case c = base_case(CULOSS_DICE, {2, 4, 32, 32}, 41000);
  c.tgt = Tgt::DenseF32;
  c.in = f16();
  c = finish(c, "Ovl");
  Problem p = make_problem(c);
  Loss loss(c.kind);
  ASSERT_TRUE(configure(loss, p));
  CudaTensor din(p.input), dtg(p.target);
  CudaTensor dgrad(c.shape, c.in), dloss(p.loss_shape, c.loss_dtype);
  auto check_refused = [&](const char* what, DLTensor* l, DLTensor* g) {
    SCOPED_TRACE(what);
    din.upload(p.input);
    dtg.upload(p.target);
    dgrad.poison();
    dloss.poison();
    const culoss_status s = culoss_compute(loss, din.dl(), dtg.dl(), nullptr, l, g, 1.0, nullptr, 0, nullptr);
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, s) << culoss_last_error();
    EXPECT_STRNE("", culoss_last_error());
    EXPECT_TRUE(same_bits(p.input, din.download(), "input after a refused call"));
    EXPECT_TRUE(same_bits(p.target, dtg.download(), "target after a refused call"));
    EXPECT_TRUE(still_poisoned(dgrad.download()));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  };
  {
    // A float32 gradient at the address of a float16 input: the buffer is sized for the
    // float32 view, so even a wrongly accepted call stays inside device memory we own.
    SCOPED_TRACE("grad_input float32 at the float16 input's address");
    CudaTensor room(c.shape, f32());
    CUDA_ASSERT_OK(cudaMemcpy(room.data_ptr(), p.input.bytes.data(), static_cast<size_t>(p.input.numel() * 2),
                              cudaMemcpyHostToDevice));
    DLTensor in = cuda_view(room.data_base(), 0, p.c.shape, c.in);
    DLTensor g = cuda_view(room.data_base(), 0, p.c.shape, f32());
    dloss.poison();
    const culoss_status s = culoss_compute(loss, &in, dtg.dl(), nullptr, dloss.dl(), &g, 1.0, nullptr, 0, nullptr);
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, s) << culoss_last_error();
    TestTensor back(c.shape, c.in);
    CUDA_ASSERT_OK(cudaMemcpy(back.bytes.data(), room.data_ptr(), static_cast<size_t>(p.input.numel() * 2),
                              cudaMemcpyDeviceToHost));
    EXPECT_TRUE(same_bits(p.input, back, "input after a refused call"));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }
  {
    DLTensor g = cuda_view(din.data_base(), 2, p.c.shape, c.in);
    check_refused("grad_input one element into the input's buffer", dloss.dl(), &g);
  }
  {
    DLTensor g = cuda_view(dtg.data_base(), 0, p.c.shape, f32());
    check_refused("grad_input on the dense float32 target's buffer", dloss.dl(), &g);
  }
  {
    DLTensor l = cuda_view(dgrad.data_base(), 0, p.loss_shape, c.loss_dtype);
    check_refused("loss_out inside grad_input", &l, dgrad.dl());
  }
  {
    DLTensor l = cuda_view(din.data_base(), 0, p.loss_shape, c.loss_dtype);
    check_refused("loss_out over the input", &l, dgrad.dl());
  }
}

TEST_F(RegionCuda, NonFiniteGradScaleIsRefused) {
  Case c = finish(base_case(CULOSS_TVERSKY, {2, 4, 32, 32}, 42000), "Gs");
  Problem p = make_problem(c);
  Loss loss(c.kind);
  ASSERT_TRUE(configure(loss, p));
  for (double gs : {NAN, INFINITY, -INFINITY}) {
    Problem q = p;
    q.c.grad_scale = gs;
    RunResult r;
    ASSERT_NO_FATAL_FAILURE(run_cuda(q, loss, CudaRunOptions{}, &r));
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, r.status) << r.error;
    EXPECT_TRUE(still_poisoned(r.grad));
    EXPECT_TRUE(still_poisoned(r.loss));
  }
}

// ---------------------------------------------------------------------------------------------
// Edge inputs
// ---------------------------------------------------------------------------------------------

TEST_F(RegionCuda, EmptyTensorsGiveZeroLoss) {
  for (culoss_kind k : kKinds) {
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{0, 4, 8, 8}, std::vector<int64_t>{2, 4, 0, 8},
                                             std::vector<int64_t>{0, 3}}) {
      for (int red : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE}) {
        Case c = base_case(k, shape, 43000);
        c.reduction = red;
        c = finish(c, "Empty");
        Problem p = make_problem(c);
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}));
        if (red != CULOSS_REDUCTION_NONE) {
          // MEAN and SUM of nothing: exactly 0, and NULL data is allowed for empty tensors.
          SCOPED_TRACE(describe(c) + " [NULL data]");
          Loss loss(c.kind);
          ASSERT_TRUE(configure(loss, p));
          CudaTensor din(p.input), dtg(p.target), dloss(p.loss_shape, c.loss_dtype), dgrad(c.shape, c.in);
          dloss.poison();
          DLTensor in = *din.dl(), tg = *dtg.dl(), g = *dgrad.dl();
          in.data = nullptr;
          tg.data = nullptr;
          g.data = nullptr;
          const culoss_status s = culoss_compute(loss, &in, &tg, nullptr, dloss.dl(), &g, 1.0, nullptr, 0, nullptr);
          EXPECT_EQ(CULOSS_SUCCESS, s) << culoss_last_error();
          EXPECT_EQ(0.0, dloss.download().get(0));
        }
      }
    }
  }
}

TEST_F(RegionCuda, SaturatedInputsStayFiniteAndMatchTheCpu) {
  int r = 0;
  for (culoss_kind k : kKinds) {
    for (int act : {CULOSS_ACTIVATION_SOFTMAX, CULOSS_ACTIVATION_SIGMOID, CULOSS_ACTIVATION_NONE}) {
      for (DLDataType d : {f32(), f16(), f64()}) {
        Case c = base_case(k, {2, 3, 40, 40}, 44000 + r++);
        c.activation = act;
        c.in = d;
        c.tgt = act == CULOSS_ACTIVATION_SIGMOID ? Tgt::DenseU8 : Tgt::IdxI64;
        c.skip_empty = r % 2;
        c = finish(c, "Sat");
        Problem p = make_problem(c);
        std::mt19937_64 rng(c.seed);
        const double big = d.bits == 16 ? 6.0e4 : 1.0e4;
        for (int64_t i = 0; i < p.input.numel(); ++i) {
          const uint64_t u = rng() % 4;
          double x;
          if (act == CULOSS_ACTIVATION_NONE) x = u < 2 ? static_cast<double>(u) : (u == 2 ? 0.0 : 1.0);
          else x = u == 0 ? big : u == 1 ? -big : u == 2 ? 0.0 : (rng() % 2 ? 30.0 : -30.0);
          p.input.set(i, x);
        }
        ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, CudaRunOptions{}));
      }
    }
  }
}

// A tensor of more than 2^31 elements: known statistics, every gradient element checked.
// Logits 0 (p = 1/2), one channel, sigmoid, target 0 below A and 1 from A on (A < 2^31 < P).
TEST_F(RegionCuda, MoreThan2Pow31ElementsUse64BitIndexing) {
  const int64_t H = (int64_t{1} << 15) + 1, W = int64_t{1} << 16;
  const int64_t P = H * W;                              // 2^31 + 2^16
  const int64_t A = (int64_t{1} << 31) - (int64_t{1} << 16);  // first positive pixel
  const int64_t K = P - A;                              // positives
  size_t free_b = 0, total_b = 0;
  CUDA_ASSERT_OK(cudaMemGetInfo(&free_b, &total_b));
  const size_t need = static_cast<size_t>(P) * (2 + 1 + 4) + (size_t{2} << 30);
  if (free_b < need) GTEST_SKIP() << "needs " << (need >> 30) << " GiB of free device memory";

  Loss loss(CULOSS_DICE);
  ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  CudaTensor din({1, 1, H, W}, f16()), dtg({1, H, W}, u8()), dgrad({1, 1, H, W}, f32()), dloss({}, f64());
  CUDA_ASSERT_OK(cudaMemset(din.data_ptr(), 0, din.nbytes()));
  CUDA_ASSERT_OK(cudaMemset(dtg.data_ptr(), 0, static_cast<size_t>(A)));
  CUDA_ASSERT_OK(cudaMemset(static_cast<uint8_t*>(dtg.data_ptr()) + A, 1, static_cast<size_t>(K)));
  dgrad.poison();
  dloss.poison();
  CUDA_ASSERT_OK(cudaDeviceSynchronize());
  const culoss_status s = culoss_compute(loss, din.dl(), dtg.dl(), nullptr, dloss.dl(), dgrad.dl(), 1.0, nullptr, 0, nullptr);
  ASSERT_EQ(CULOSS_SUCCESS, s) << culoss_last_error();
  CUDA_ASSERT_OK(cudaDeviceSynchronize());

  const double snr = 1e-5, sdr = 1e-5;
  const double I = 0.5 * static_cast<double>(K), SP = 0.5 * static_cast<double>(P), ST = static_cast<double>(K);
  const double D = SP + ST + sdr;
  const double loss_expected = 1.0 - (2.0 * I + snr) / D;
  // d loss / d p_i = -(2 t_i D - (2I + s_nr)) / D^2, times sigma'(0) = 1/4.
  const double g1 = -0.25 * (2.0 * D - (2.0 * I + snr)) / (D * D);
  const double g0 = 0.25 * (2.0 * I + snr) / (D * D);
  EXPECT_NEAR(loss_expected, dloss.download().get(0), 1e-5);

  const int64_t chunk = int64_t{1} << 26;
  PinnedBuffer host(static_cast<size_t>(chunk) * 4);
  int64_t bad = 0, first_bad = -1;
  float first_val = 0.0f;
  for (int64_t start = 0; start < P; start += chunk) {
    const int64_t n = std::min(chunk, P - start);
    CUDA_ASSERT_OK(cudaMemcpy(host.get(), static_cast<float*>(dgrad.data_ptr()) + start, static_cast<size_t>(n) * 4,
                              cudaMemcpyDeviceToHost));
    const float* g = static_cast<const float*>(host.get());
    for (int64_t i = 0; i < n; ++i) {
      const double want = start + i < A ? g0 : g1;
      if (!(std::fabs(static_cast<double>(g[i]) - want) <= 1e-4 * std::fabs(want))) {
        if (bad++ == 0) {
          first_bad = start + i;
          first_val = g[i];
        }
      }
    }
  }
  EXPECT_EQ(0, bad) << "first wrong gradient element " << first_bad << ": " << first_val << " (expected "
                    << (first_bad < A ? g0 : g1) << ")";
  EXPECT_TRUE(din.guards_intact() && dtg.guards_intact() && dgrad.guards_intact() && dloss.guards_intact());
}

// With more than one device, tensors on device 1 run there (and the caller's current device is
// left alone).
TEST_F(RegionCuda, SecondDeviceWorks) {
  if (testing_util::cuda_device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  for (culoss_kind k : kKinds) {
    Case c = finish(base_case(k, {2, 4, 100, 100}, 45000 + k), "Dev1");
    Problem p = make_problem(c);
    CudaRunOptions o;
    o.device_id = 1;
    CUDA_ASSERT_OK(cudaSetDevice(0));
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    o.host_loss_out = true;
    ASSERT_NO_FATAL_FAILURE(check_against_cpu(p, o));
    int cur = -1;
    CUDA_ASSERT_OK(cudaGetDevice(&cur));
    EXPECT_EQ(0, cur);
  }
}

}  // namespace

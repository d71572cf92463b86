// Cases of the element-wise CUDA tests (BCE, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE and fused
// CULOSS_SUMs): a call described with plain values, its host data, the descriptor it configures,
// and the CPU run the CUDA run is compared with. Host-only (no CUDA headers): a scratch program
// can run the CPU half of every case.
//
// Seeds are fixed so failures reproduce; set CULOSS_TEST_SEED to run other inputs.
#pragma once

#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/compare.hpp"

namespace elementwise_test {

using testing_util::bf16;
using testing_util::f16;
using testing_util::f32;
using testing_util::f64;
using testing_util::i32;
using testing_util::i64;
using testing_util::Loss;
using testing_util::RunResult;
using testing_util::TestTensor;
using testing_util::Tol;
using testing_util::u8;

inline uint64_t seed_base() {
  static const uint64_t base = [] {
    const char* s = std::getenv("CULOSS_TEST_SEED");
    return s != nullptr ? static_cast<uint64_t>(std::strtoull(s, nullptr, 10)) : 0ull;
  }();
  return base;
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

enum class Tgt { DenseF32, DenseU8, DenseIn, IdxU8, IdxI32, IdxI64 };
inline bool is_index(Tgt t) { return t == Tgt::IdxU8 || t == Tgt::IdxI32 || t == Tgt::IdxI64; }

constexpr int64_t kDefaultIgnore = std::numeric_limits<int64_t>::min();  // "leave the default"
constexpr int kDefault = -1;                                            // int option: default

// One loss (a single call's loss, or one term of a CULOSS_SUM). NAN / kDefault leave a
// parameter at its default (it is then not set at all).
struct Term {
  culoss_kind kind = CULOSS_BCE;
  double weight = 1.0;  // weight in the SUM
  int activation = kDefault;
  int reduction = CULOSS_REDUCTION_MEAN;
  bool class_weights = false;  // random per-class weights (class 1 gets 0 when C > 2)
  bool pos_weight = false;     // BCE: random POS_WEIGHT per class
  int class_balance = kDefault;
  double label_smoothing = NAN, alpha = NAN, beta = NAN, gamma = NAN, ce_ratio = NAN;
  double top_fraction = NAN;  // TOPK_CE
  // region options (region kinds and COMBO)
  int include_bg = kDefault, batch = kDefault, squared = kDefault, skip_empty = kDefault,
      average = kDefault, weight_type = kDefault;
  double smooth_nr = NAN, smooth_dr = NAN;
};

inline Term term(culoss_kind k) {
  Term t;
  t.kind = k;
  return t;
}

// One culoss_compute call.
struct Case {
  std::string name;
  std::vector<Term> terms;  // one: that loss; several (or sum = true): a CULOSS_SUM of them
  bool sum = false;
  std::vector<int64_t> shape;
  int class_axis = 1;
  DLDataType in = f32();
  bool grad_f32 = false;  // grad dtype float32 instead of the input's
  Tgt tgt = Tgt::IdxI64;
  double ignore_frac = 0.05;  // index: IGNORE_INDEX labels; dense: pixel weight 0
  bool pixel_weight = false;
  int64_t ignore_index = kDefaultIgnore;
  int check_targets = 1;
  bool empty_class = true;         // class C-1 is absent from image 0 (or the C = 1 mask is empty)
  bool absent_everywhere = false;  // ... and from every image
  bool partial_annotation = false; // class C-2 also absent from the last image (C > 3)
  double grad_scale = 1.0;
  DLDataType loss_dtype = f64();
  bool host_loss_out = false;  // the CUDA run writes loss_out to a kDLCPU tensor
  uint64_t seed = 1;
};

inline bool is_region(culoss_kind k) {
  return k == CULOSS_DICE || k == CULOSS_JACCARD || k == CULOSS_TVERSKY ||
         k == CULOSS_FOCAL_TVERSKY || k == CULOSS_GENERALIZED_DICE;
}

inline int default_activation(culoss_kind k) {
  return k == CULOSS_BCE || k == CULOSS_FOCAL || k == CULOSS_COMBO ? CULOSS_ACTIVATION_SIGMOID
                                                                   : CULOSS_ACTIVATION_SOFTMAX;
}
inline int activation_of(const Term& t) {
  return t.activation == kDefault ? default_activation(t.kind) : t.activation;
}

// Binary (per-element) terms read class-index targets as a C = 1 mask (docs/SEMANTICS.md).
inline bool is_binary(const Term& t) {
  switch (t.kind) {
    case CULOSS_BCE:
    case CULOSS_COMBO:
      return true;
    case CULOSS_FOCAL:
      return activation_of(t) != CULOSS_ACTIVATION_SOFTMAX;
    case CULOSS_CROSS_ENTROPY:
    case CULOSS_MARGINAL_CE:
    case CULOSS_TOPK_CE:
      return false;
    default:
      return activation_of(t) == CULOSS_ACTIVATION_SIGMOID;
  }
}
inline bool any_binary(const Case& c) {
  for (const Term& t : c.terms)
    if (is_binary(t)) return true;
  return false;
}
inline bool all_binary(const Case& c) {
  for (const Term& t : c.terms)
    if (!is_binary(t)) return false;
  return true;
}
inline bool is_sum(const Case& c) { return c.sum || c.terms.size() != 1; }

inline const char* kind_name(culoss_kind k) {
  switch (k) {
    case CULOSS_DICE: return "Dice";
    case CULOSS_JACCARD: return "Jaccard";
    case CULOSS_TVERSKY: return "Tversky";
    case CULOSS_FOCAL_TVERSKY: return "FocalTv";
    case CULOSS_GENERALIZED_DICE: return "GDice";
    case CULOSS_BCE: return "BCE";
    case CULOSS_CROSS_ENTROPY: return "CE";
    case CULOSS_FOCAL: return "Focal";
    case CULOSS_COMBO: return "Combo";
    case CULOSS_MARGINAL_CE: return "Marginal";
    case CULOSS_TOPK_CE: return "TopK";
    default: return "Kind";
  }
}
inline std::string dtype_name(DLDataType d) {
  if (d.code == kDLBfloat) return "bf16";
  if (d.code == kDLFloat) return "f" + std::to_string(d.bits);
  if (d.code == kDLUInt) return "u" + std::to_string(d.bits);
  if (d.code == kDLInt) return "i" + std::to_string(d.bits);
  return "dt";
}
inline const char* tgt_name(Tgt t) {
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
inline const char* act_name(int a) {
  return a == CULOSS_ACTIVATION_NONE ? "none" : a == CULOSS_ACTIVATION_SIGMOID ? "sig" : "soft";
}
inline const char* red_name(int r) {
  return r == CULOSS_REDUCTION_MEAN ? "mean" : r == CULOSS_REDUCTION_SUM ? "sum" : "none";
}

inline int resolved_axis(const Case& c) {
  const int nd = static_cast<int>(c.shape.size());
  return c.class_axis < 0 ? nd + c.class_axis : c.class_axis;
}
inline int64_t num_classes(const Case& c) { return c.shape[static_cast<size_t>(resolved_axis(c))]; }
inline DLDataType grad_dtype(const Case& c) { return c.grad_f32 ? f32() : c.in; }

inline std::string describe_term(const Term& t) {
  std::ostringstream os;
  os << kind_name(t.kind) << "{w=" << t.weight << " act=" << act_name(activation_of(t))
     << " red=" << red_name(t.reduction) << " cw=" << t.class_weights << " pw=" << t.pos_weight
     << " balance=" << t.class_balance << " ls=" << t.label_smoothing << " alpha=" << t.alpha
     << " beta=" << t.beta << " gamma=" << t.gamma << " ce_ratio=" << t.ce_ratio
     << " top=" << t.top_fraction
     << " include_bg=" << t.include_bg << " batch=" << t.batch << " squared=" << t.squared
     << " skip_empty=" << t.skip_empty << " average=" << t.average
     << " weight_type=" << t.weight_type << " s_nr=" << t.smooth_nr << " s_dr=" << t.smooth_dr
     << "}";
  return os.str();
}

inline std::string describe(const Case& c) {
  std::ostringstream os;
  os << c.name << ": " << (is_sum(c) ? "SUM[" : "");
  for (size_t i = 0; i < c.terms.size(); ++i) os << (i ? " + " : "") << describe_term(c.terms[i]);
  os << (is_sum(c) ? "]" : "") << " shape=(";
  for (size_t i = 0; i < c.shape.size(); ++i) os << (i ? "," : "") << c.shape[i];
  os << ") axis=" << c.class_axis << " in=" << dtype_name(c.in)
     << " grad=" << dtype_name(grad_dtype(c)) << " target=" << tgt_name(c.tgt)
     << " ignore_frac=" << c.ignore_frac << " pixel_weight=" << c.pixel_weight << " ignore_index="
     << (c.ignore_index == kDefaultIgnore ? std::string("default") : std::to_string(c.ignore_index))
     << " check_targets=" << c.check_targets << " empty_class=" << c.empty_class
     << " absent_everywhere=" << c.absent_everywhere << " partial=" << c.partial_annotation
     << " grad_scale=" << c.grad_scale << " loss=" << dtype_name(c.loss_dtype)
     << " host_loss_out=" << c.host_loss_out << " seed=" << c.seed << " (+CULOSS_TEST_SEED "
     << seed_base() << ")";
  return os.str();
}

// gtest prints parameters in test listings: the case name, not raw bytes.
inline void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Makes a case valid (parameters that do not apply are left unset, activations the kind accepts,
// targets the terms can read, reductions the kind has) and names it.
inline Case finish(Case c, const std::string& tag) {
  const int64_t C = num_classes(c);
  const bool sum = is_sum(c);
  for (Term& t : c.terms) {
    const culoss_kind k = t.kind;
    int a = activation_of(t);
    if ((k == CULOSS_BCE || k == CULOSS_COMBO) && a == CULOSS_ACTIVATION_SOFTMAX)
      a = CULOSS_ACTIVATION_SIGMOID;
    const bool softmax_only =
        k == CULOSS_CROSS_ENTROPY || k == CULOSS_MARGINAL_CE || k == CULOSS_TOPK_CE;
    if (softmax_only && a == CULOSS_ACTIVATION_SIGMOID) a = CULOSS_ACTIVATION_SOFTMAX;
    // A softmax over one class is refused (constant loss): SIGMOID where the kind takes it, else
    // probabilities.
    if (C == 1 && a == CULOSS_ACTIVATION_SOFTMAX)
      a = softmax_only ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SIGMOID;
    t.activation = a == default_activation(k) && t.activation == kDefault ? kDefault : a;
    if (k == CULOSS_COMBO || k == CULOSS_TOPK_CE || sum) {  // (COMBO and TOPK_CE: MEAN only)
      if (t.reduction == CULOSS_REDUCTION_NONE || k == CULOSS_COMBO || k == CULOSS_TOPK_CE)
        t.reduction = CULOSS_REDUCTION_MEAN;
    }
    if (k == CULOSS_MARGINAL_CE) t.class_weights = false;
    if (k != CULOSS_BCE) {
      t.pos_weight = false;
      t.class_balance = kDefault;
    }
    if (k != CULOSS_BCE && k != CULOSS_CROSS_ENTROPY && k != CULOSS_TOPK_CE)
      t.label_smoothing = NAN;
    if (k != CULOSS_TOPK_CE) t.top_fraction = NAN;
    if (k != CULOSS_FOCAL && k != CULOSS_COMBO && k != CULOSS_TVERSKY && k != CULOSS_FOCAL_TVERSKY)
      t.alpha = NAN;
    if (k != CULOSS_TVERSKY && k != CULOSS_FOCAL_TVERSKY) t.beta = NAN;
    if (k != CULOSS_FOCAL && k != CULOSS_FOCAL_TVERSKY) t.gamma = NAN;
    if (k != CULOSS_COMBO) t.ce_ratio = NAN;
    const bool region_like = is_region(k) || k == CULOSS_COMBO;
    if (!region_like) {
      t.include_bg = t.batch = t.skip_empty = t.average = kDefault;
      t.smooth_nr = t.smooth_dr = NAN;
    }
    if (k != CULOSS_DICE && k != CULOSS_JACCARD && k != CULOSS_COMBO) t.squared = kDefault;
    if (k == CULOSS_GENERALIZED_DICE) t.average = kDefault;
    if (k != CULOSS_GENERALIZED_DICE) t.weight_type = kDefault;
  }
  // Index targets: binary terms read them as a C = 1 mask (and with C = 1 every term does);
  // with C > 1 binary terms need a dense target.
  if (is_index(c.tgt) && any_binary(c) && C != 1) c.tgt = Tgt::DenseF32;
  // float16 gradients of big tensors are far below float16's normal range when every term is a
  // MEAN; scale them up by a power of two (exact) so the comparison is not all subnormals.
  const DLDataType g = grad_dtype(c);
  bool all_mean = true;
  for (const Term& t : c.terms) all_mean = all_mean && t.reduction == CULOSS_REDUCTION_MEAN;
  if (g.code == kDLFloat && g.bits == 16 && all_mean) {
    int64_t numel = 1;
    for (int64_t d : c.shape) numel *= d;
    const double e = std::round(std::log2(std::max(1.0, static_cast<double>(numel) / 8.0)));
    c.grad_scale *= std::ldexp(1.0, static_cast<int>(std::min(e, 20.0)));
  }
  std::ostringstream os;
  os << tag << "_";
  if (sum) os << "Sum";
  for (const Term& t : c.terms) os << kind_name(t.kind) << act_name(activation_of(t));
  os << "_" << dtype_name(c.in) << "_g" << dtype_name(g) << "_" << tgt_name(c.tgt) << "_"
     << red_name(c.terms[0].reduction);
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
  std::vector<std::vector<double>> class_weights, pos_weights;  // per term (empty: not set)

  int64_t in_index(int64_t o, int64_t k, int64_t i) const { return (o * C + k) * inner + i; }
  int64_t pix_index(int64_t o, int64_t i) const { return o * inner + i; }
};

inline DLDataType target_dtype(const Case& c) {
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

// loss_out shape: one element, or for a single NONE term the input's shape (BCE, binary focal)
// or the pixel shape (cross-entropy, softmax focal, marginal CE).
inline std::vector<int64_t> loss_shape_of(const Case& c, const std::vector<int64_t>& pix_shape) {
  if (is_sum(c) || c.terms[0].reduction != CULOSS_REDUCTION_NONE) return {};
  return is_binary(c.terms[0]) ? c.shape : pix_shape;
}

inline Problem make_problem(const Case& c) {
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
  p.loss_shape = loss_shape_of(c, p.pix_shape);

  const bool idx = is_index(c.tgt);
  // Binary-style targets (every element its own 0/1 problem) when every term is binary;
  // otherwise one class per pixel (one-hot), which binary terms in a SUM read per element.
  const bool bin = all_binary(c);
  const bool mask = bin || p.C == 1;  // per-element 0/1 labels (C = 1: a binary mask for all)
  bool probs = false;  // some term reads the input as probabilities
  for (const Term& t : c.terms) probs = probs || activation_of(t) == CULOSS_ACTIVATION_NONE;
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
    if (c.empty_class && k == C - 1 && (n == 0 || c.absent_everywhere) && (C > 1 || mask || !idx))
      return true;
    return c.partial_annotation && C > 3 && k == C - 2 && n == p.N - 1;
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
        } else if (bin) {
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
        if (probs) {
          x = 0.55 * tv + 0.45 * U(rng);
          if (U(rng) < 0.02) x = U(rng) < 0.5 ? 0.0 : 1.0;  // exact 0 and 1 are valid (clamped)
        } else {
          x = 1.5 * G(rng) + 2.0 * tv - (bin ? 1.0 : 0.0);
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

  for (const Term& tm : c.terms) {
    std::vector<double> cw, pw;
    if (tm.class_weights) {
      cw.resize(static_cast<size_t>(C));
      for (auto& w : cw) w = 0.2 + 1.8 * U(rng);
      if (C > 2) cw[1] = 0.0;
    }
    if (tm.pos_weight) {
      pw.resize(static_cast<size_t>(C));
      for (auto& w : pw) w = 0.5 + 2.5 * U(rng);
      if (C > 3) pw[2] = 0.0;
    }
    p.class_weights.push_back(cw);
    p.pos_weights.push_back(pw);
  }
  return p;
}

// Sets every parameter of one term on its descriptor. Returns false (with failures recorded)
// when the library refuses one.
inline bool configure_term(culoss_loss h, const Problem& p, size_t ti, bool single) {
  const Case& c = p.c;
  const Term& t = c.terms[ti];
  bool ok = true;
  auto seti = [&](culoss_param k, int64_t v) {
    if (v == kDefault && k != CULOSS_PARAM_CLASS_AXIS && k != CULOSS_PARAM_IGNORE_INDEX) return;
    const culoss_status s = culoss_loss_set_int(h, k, v);
    EXPECT_EQ(CULOSS_SUCCESS, s) << kind_name(t.kind) << " set_int(param " << k << ", " << v
                                 << "): " << culoss_last_error();
    ok = ok && s == CULOSS_SUCCESS;
  };
  auto setf = [&](culoss_param k, double v) {
    if (std::isnan(v)) return;
    const culoss_status s = culoss_loss_set_float(h, k, v);
    EXPECT_EQ(CULOSS_SUCCESS, s) << kind_name(t.kind) << " set_float(param " << k << ", " << v
                                 << "): " << culoss_last_error();
    ok = ok && s == CULOSS_SUCCESS;
  };
  auto setv = [&](culoss_param k, const std::vector<double>& v) {
    if (v.empty()) return;
    const culoss_status s = culoss_loss_set_floats(h, k, v.data(), static_cast<int64_t>(v.size()));
    EXPECT_EQ(CULOSS_SUCCESS, s) << kind_name(t.kind) << " set_floats(param " << k
                                 << "): " << culoss_last_error();
    ok = ok && s == CULOSS_SUCCESS;
  };
  seti(CULOSS_PARAM_ACTIVATION, t.activation);
  seti(CULOSS_PARAM_CLASS_AXIS, c.class_axis);
  seti(CULOSS_PARAM_REDUCTION, t.kind == CULOSS_COMBO ? kDefault : t.reduction);
  if (p.set_ignore) seti(CULOSS_PARAM_IGNORE_INDEX, p.ignore_value);
  if (single) seti(CULOSS_PARAM_CHECK_TARGETS, c.check_targets);
  seti(CULOSS_PARAM_CLASS_BALANCE, t.class_balance);
  setf(CULOSS_PARAM_LABEL_SMOOTHING, t.label_smoothing);
  setf(CULOSS_PARAM_ALPHA, t.alpha);
  setf(CULOSS_PARAM_BETA, t.beta);
  setf(CULOSS_PARAM_GAMMA, t.gamma);
  setf(CULOSS_PARAM_CE_RATIO, t.ce_ratio);
  setf(CULOSS_PARAM_TOP_FRACTION, t.top_fraction);
  seti(CULOSS_PARAM_INCLUDE_BACKGROUND, t.include_bg);
  seti(CULOSS_PARAM_BATCH, t.batch);
  seti(CULOSS_PARAM_SQUARED_DENOMINATOR, t.squared);
  seti(CULOSS_PARAM_SKIP_EMPTY, t.skip_empty);
  seti(CULOSS_PARAM_AVERAGE, t.average);
  seti(CULOSS_PARAM_WEIGHT_TYPE, t.weight_type);
  setf(CULOSS_PARAM_SMOOTH_NR, t.smooth_nr);
  setf(CULOSS_PARAM_SMOOTH_DR, t.smooth_dr);
  setv(CULOSS_PARAM_CLASS_WEIGHTS, p.class_weights[ti]);
  setv(CULOSS_PARAM_POS_WEIGHT, p.pos_weights[ti]);
  return ok;
}

// The descriptor of a case: the loss itself, or a CULOSS_SUM of its terms.
struct CaseLoss {
  culoss_loss h = nullptr;
  bool ok = false;
  explicit CaseLoss(const Problem& p) {
    const Case& c = p.c;
    if (!is_sum(c)) {
      EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_create(&h, c.terms[0].kind)) << culoss_last_error();
      ok = h != nullptr && configure_term(h, p, 0, true);
      return;
    }
    EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_create(&h, CULOSS_SUM)) << culoss_last_error();
    ok = h != nullptr;
    if (!ok) return;
    const culoss_status s = culoss_loss_set_int(h, CULOSS_PARAM_CHECK_TARGETS, c.check_targets);
    EXPECT_EQ(CULOSS_SUCCESS, s) << "SUM set CHECK_TARGETS: " << culoss_last_error();
    ok = s == CULOSS_SUCCESS;
    for (size_t i = 0; i < c.terms.size(); ++i) {
      Loss term(c.terms[i].kind);
      ok = ok && term.h != nullptr && configure_term(term, p, i, false);
      const culoss_status a = culoss_loss_add_term(h, term, c.terms[i].weight);
      EXPECT_EQ(CULOSS_SUCCESS, a) << "add_term " << kind_name(c.terms[i].kind) << ": "
                                   << culoss_last_error();
      ok = ok && a == CULOSS_SUCCESS;
    }
  }
  ~CaseLoss() { culoss_loss_destroy(h); }
  CaseLoss(const CaseLoss&) = delete;
  CaseLoss& operator=(const CaseLoss&) = delete;
  operator culoss_loss() const { return h; }
};

// ---------------------------------------------------------------------------------------------
// The CPU run
// ---------------------------------------------------------------------------------------------

inline void run_cpu(Problem& p, culoss_loss h, RunResult* r, bool with_grad = true) {
  r->loss = TestTensor(p.loss_shape, p.c.loss_dtype);
  r->loss.poison();
  r->grad = TestTensor(p.c.shape, grad_dtype(p.c));
  r->grad.poison();
  r->status = culoss_compute(h, p.input.dl(), p.target.dl(), p.has_weight ? p.weight.dl() : nullptr,
                             r->loss.dl(), with_grad ? r->grad.dl() : nullptr, p.c.grad_scale,
                             nullptr, 0, nullptr);
  r->error = culoss_last_error();
}

inline Tol value_tol(const Case& c) { return testing_util::value_tol(c.in, c.loss_dtype); }
inline Tol grad_tol(const Case& c) { return testing_util::grad_tol(c.in, grad_dtype(c)); }

// ---------------------------------------------------------------------------------------------
// Case lists
// ---------------------------------------------------------------------------------------------

inline Case base_case(std::vector<Term> terms, std::vector<int64_t> shape, uint64_t seed) {
  Case c;
  c.terms = std::move(terms);
  c.shape = std::move(shape);
  c.seed = seed;
  return c;
}

inline Term with_act(Term t, int a) {
  t.activation = a;
  return t;
}
inline Term weighted(Term t, double w) {
  t.weight = w;
  return t;
}

// The losses of this file, one configuration each: every element-wise kind and activation, and
// the fused SUMs.
struct Flavour {
  const char* tag;
  std::vector<Term> terms;
  bool softmax_style;  // reads one class per pixel (index targets with any C)
  bool has_none;       // REDUCTION_NONE exists (single element-wise terms)
};

inline std::vector<Flavour> flavours() {
  Term focal_soft = with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX);
  Term tversky_sig = with_act(term(CULOSS_TVERSKY), CULOSS_ACTIVATION_SIGMOID);
  Term dice_sig = with_act(term(CULOSS_DICE), CULOSS_ACTIVATION_SIGMOID);
  Term ce_w = term(CULOSS_CROSS_ENTROPY);
  ce_w.class_weights = true;
  Term topk = term(CULOSS_TOPK_CE);
  topk.top_fraction = 0.3;
  return {
      {"bce", {term(CULOSS_BCE)}, false, true},
      {"bceNone", {with_act(term(CULOSS_BCE), CULOSS_ACTIVATION_NONE)}, false, true},
      {"ce", {term(CULOSS_CROSS_ENTROPY)}, true, true},
      {"ceNone", {with_act(term(CULOSS_CROSS_ENTROPY), CULOSS_ACTIVATION_NONE)}, true, true},
      {"focalSig", {term(CULOSS_FOCAL)}, false, true},
      {"focalNone", {with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_NONE)}, false, true},
      {"focalSoft", {focal_soft}, true, true},
      {"combo", {term(CULOSS_COMBO)}, false, false},
      {"marginal", {term(CULOSS_MARGINAL_CE)}, true, true},
      {"diceBce", {term(CULOSS_DICE), weighted(term(CULOSS_BCE), 0.5)}, false, false},
      {"diceSigBce", {dice_sig, term(CULOSS_BCE)}, false, false},
      {"diceCe", {term(CULOSS_DICE), weighted(term(CULOSS_CROSS_ENTROPY), 0.7)}, true, false},
      {"focalTversky", {term(CULOSS_FOCAL), weighted(tversky_sig, 2.0)}, false, false},
      {"gdiceMarginal", {term(CULOSS_GENERALIZED_DICE), term(CULOSS_MARGINAL_CE)}, true, false},
      {"comboCe", {term(CULOSS_COMBO), weighted(ce_w, 0.25)}, false, false},
      {"topk", {topk}, true, false},
      {"topkNone", {with_act(topk, CULOSS_ACTIVATION_NONE)}, true, false},
      {"diceTopk", {term(CULOSS_DICE), topk}, true, false},
  };
}

// Every flavour x input dtype x grad dtype, rotating target kind, reduction and layout.
inline std::vector<Case> dtype_sweep() {
  std::vector<Case> out;
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  int r = 0;
  for (const Flavour& fl : flavours())
    for (DLDataType d : dts)
      for (int gf = 0; gf < 2; ++gf, ++r) {
        Case c = base_case(fl.terms, {2, 4, 24, 20}, 100 + r);
        if (r % 4 == 1) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; }
        if (r % 4 == 2) { c.shape = {2, 3, 6, 8, 10}; }
        if (r % 4 == 3) { c.shape = {96, 5}; }
        c.in = d;
        c.grad_f32 = gf == 1;
        const Tgt soft_tgts[] = {Tgt::IdxI64, Tgt::DenseF32, Tgt::IdxU8, Tgt::DenseU8, Tgt::IdxI32, Tgt::DenseIn};
        const Tgt bin_tgts[] = {Tgt::DenseF32, Tgt::DenseU8, Tgt::DenseIn};
        c.tgt = fl.softmax_style ? soft_tgts[r % 6] : bin_tgts[r % 3];
        c.pixel_weight = r % 4 == 1;
        const int red = r % 3 == 1 ? CULOSS_REDUCTION_SUM
                        : (r % 3 == 2 && fl.has_none) ? CULOSS_REDUCTION_NONE
                                                      : CULOSS_REDUCTION_MEAN;
        for (Term& t : c.terms) t.reduction = red == CULOSS_REDUCTION_NONE && fl.terms.size() > 1 ? CULOSS_REDUCTION_MEAN : red;
        out.push_back(finish(c, "D" + std::to_string(r) + "_" + fl.tag));
      }
  return out;
}

// One option at a time, per kind.
inline std::vector<Case> option_sweep() {
  std::vector<Case> out;
  int r = 0;
  auto add = [&](const std::string& tag, std::vector<Term> terms, auto mutate) {
    Case c = base_case(std::move(terms), {2, 4, 24, 20}, 1000 + r);
    mutate(c);
    out.push_back(finish(c, "O" + std::to_string(r++) + "_" + tag));
  };
  auto nop = [](Case&) {};
  const int reds[] = {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE};

  // ---- BCE
  const Term bce = term(CULOSS_BCE);
  for (int red : reds) {
    add(std::string("bce_") + red_name(red), {bce}, [&](Case& c) { c.terms[0].reduction = red; c.tgt = Tgt::DenseF32; });
    add(std::string("bcePosWeight_") + red_name(red), {bce}, [&](Case& c) { c.terms[0].reduction = red; c.terms[0].pos_weight = true; c.tgt = Tgt::DenseU8; });
    add(std::string("bceBatchFreq_") + red_name(red), {bce}, [&](Case& c) {
      c.terms[0].reduction = red; c.terms[0].class_balance = CULOSS_BALANCE_BATCH_FREQUENCY; c.tgt = Tgt::DenseF32; });
    add(std::string("bceSmooth_") + red_name(red), {bce}, [&](Case& c) { c.terms[0].reduction = red; c.terms[0].label_smoothing = 0.1; c.tgt = Tgt::DenseU8; });
    add(std::string("bceMaskIdxU8_") + red_name(red), {bce}, [&](Case& c) { c.terms[0].reduction = red; c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; c.ignore_frac = 0.1; });
    add(std::string("bceMaskIdxI64_") + red_name(red), {bce}, [&](Case& c) { c.terms[0].reduction = red; c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxI64; c.ignore_frac = 0.1; });
  }
  add("bceMaskIdxI32Custom", {bce}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxI32; c.ignore_index = 7; c.terms[0].pos_weight = true; });
  add("bceMaskIdxBatchFreq", {bce}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; c.terms[0].class_balance = CULOSS_BALANCE_BATCH_FREQUENCY; c.terms[0].label_smoothing = 0.2; });
  add("bceMaskIdxAllIgnored", {bce}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxI64; c.ignore_frac = 1.0; });
  add("bceMaskIdxBatchFreqEmpty", {bce}, [](Case& c) {
    c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; c.absent_everywhere = true; c.terms[0].class_balance = CULOSS_BALANCE_BATCH_FREQUENCY; });
  add("bceEverything", {bce}, [](Case& c) {
    c.terms[0].pos_weight = true; c.terms[0].class_weights = true; c.terms[0].class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
    c.terms[0].label_smoothing = 0.05; c.pixel_weight = true; c.tgt = Tgt::DenseIn; c.in = bf16(); });
  add("bceNoneAct", {with_act(bce, CULOSS_ACTIVATION_NONE)}, [](Case& c) { c.terms[0].pos_weight = true; c.terms[0].label_smoothing = 0.3; c.tgt = Tgt::DenseF32; });
  add("bceNoneActNoneRed", {with_act(bce, CULOSS_ACTIVATION_NONE)}, [](Case& c) { c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.tgt = Tgt::DenseU8; c.in = f64(); });
  add("bceClassWeights", {bce}, [](Case& c) { c.terms[0].class_weights = true; c.tgt = Tgt::DenseF32; });
  add("bcePixelWeight", {bce}, [](Case& c) { c.pixel_weight = true; c.tgt = Tgt::DenseF32; });
  add("bceNHWC", {bce}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.terms[0].pos_weight = true; c.tgt = Tgt::DenseU8; });
  add("bceNC", {bce}, [](Case& c) { c.shape = {64, 5}; c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.tgt = Tgt::DenseF32; });
  add("bceAxis2", {bce}, [](Case& c) { c.shape = {2, 3, 4, 10}; c.class_axis = 2; c.pixel_weight = true; c.tgt = Tgt::DenseF32; });

  // ---- CROSS_ENTROPY
  const Term ce = term(CULOSS_CROSS_ENTROPY);
  for (int red : reds) {
    add(std::string("ce_") + red_name(red), {ce}, [&](Case& c) { c.terms[0].reduction = red; });
    add(std::string("ceClassWeights_") + red_name(red), {ce}, [&](Case& c) { c.terms[0].reduction = red; c.terms[0].class_weights = true; });
    add(std::string("ceSmooth_") + red_name(red), {ce}, [&](Case& c) { c.terms[0].reduction = red; c.terms[0].label_smoothing = 0.1; });
    add(std::string("ceDense_") + red_name(red), {ce}, [&](Case& c) { c.terms[0].reduction = red; c.tgt = Tgt::DenseF32; });
    add(std::string("ceDenseCwSmooth_") + red_name(red), {ce}, [&](Case& c) {
      c.terms[0].reduction = red; c.tgt = Tgt::DenseIn; c.terms[0].class_weights = true; c.terms[0].label_smoothing = 0.25; });
  }
  add("ceIdxU8", {ce}, [](Case& c) { c.tgt = Tgt::IdxU8; c.terms[0].class_weights = true; });
  add("ceIdxI32", {ce}, [](Case& c) { c.tgt = Tgt::IdxI32; });
  add("ceIgnoreCustom", {ce}, [](Case& c) { c.tgt = Tgt::IdxI32; c.ignore_index = 77; c.ignore_frac = 0.2; });
  add("ceIgnoreInRange", {ce}, [](Case& c) { c.ignore_index = 1; c.terms[0].class_weights = true; });
  add("ceAllIgnored", {ce}, [](Case& c) { c.ignore_frac = 1.0; });
  add("ceAllIgnoredNone", {ce}, [](Case& c) { c.ignore_frac = 1.0; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("ceDenseU8", {ce}, [](Case& c) { c.tgt = Tgt::DenseU8; c.pixel_weight = true; });
  add("cePixelWeight", {ce}, [](Case& c) { c.pixel_weight = true; c.terms[0].class_weights = true; c.terms[0].label_smoothing = 0.2; });
  add("ceNoneAct", {with_act(ce, CULOSS_ACTIVATION_NONE)}, [](Case& c) { c.terms[0].class_weights = true; c.terms[0].label_smoothing = 0.1; });
  add("ceNoneActNoneRed", {with_act(ce, CULOSS_ACTIVATION_NONE)}, [](Case& c) { c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.tgt = Tgt::DenseF32; });
  add("ceNHWC", {ce}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.terms[0].class_weights = true; });
  add("ceNHWCnone", {ce}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.tgt = Tgt::DenseF32; });
  add("ceNCDHW", {ce}, [](Case& c) { c.shape = {2, 3, 6, 8, 10}; c.terms[0].label_smoothing = 0.1; });
  add("ceNC", {ce}, [](Case& c) { c.shape = {200, 7}; c.terms[0].class_weights = true; });
  add("ceNCnone", {ce}, [](Case& c) { c.shape = {200, 7}; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("ceAxisM2", {ce}, [](Case& c) { c.shape = {2, 3, 4, 10}; c.class_axis = -2; c.tgt = Tgt::DenseU8; });
  // One class: probabilities (a softmax over one class is refused), labels a 0/1 mask.
  add("ceC1", {with_act(ce, CULOSS_ACTIVATION_NONE)}, [](Case& c) {
    c.shape = {2, 1, 10, 10};
    c.empty_class = false;
  });

  // ---- FOCAL: gamma x alpha x activation
  int fr = 0;
  for (int act : {CULOSS_ACTIVATION_SIGMOID, CULOSS_ACTIVATION_NONE, CULOSS_ACTIVATION_SOFTMAX})
    for (double gamma : {0.0, 0.5, 2.0})
      for (double alpha : {0.25, -1.0, 0.0, 1.0}) {
        Term f = with_act(term(CULOSS_FOCAL), act);
        f.gamma = gamma;
        f.alpha = alpha;
        std::ostringstream tag;
        tag << "focal_" << act_name(act) << "_g" << gamma << "_a" << alpha;
        const int k = fr++;
        add(tag.str(), {f}, [&](Case& c) {
          c.terms[0].reduction = reds[k % 3];
          c.terms[0].class_weights = k % 4 == 1;
          c.pixel_weight = k % 5 == 2;
          if (act == CULOSS_ACTIVATION_SOFTMAX) c.tgt = k % 2 ? Tgt::IdxI32 : Tgt::DenseF32;
          else c.tgt = k % 2 ? Tgt::DenseF32 : Tgt::DenseU8;
        });
      }
  add("focalMaskIdx", {term(CULOSS_FOCAL)}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; c.ignore_frac = 0.1; });
  add("focalMaskIdxNone", {term(CULOSS_FOCAL)}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxI64; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("focalSoftIdxCustomIgnore", {with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX)}, [](Case& c) {
    c.tgt = Tgt::IdxI64; c.ignore_index = -1; c.terms[0].class_weights = true; c.terms[0].gamma = 0.5; });
  add("focalSoftNHWC", {with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX)}, [](Case& c) {
    c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("focalNC", {term(CULOSS_FOCAL)}, [](Case& c) { c.shape = {200, 7}; c.tgt = Tgt::DenseU8; c.terms[0].gamma = 0.5; });

  // ---- COMBO (MEAN only)
  const Term combo = term(CULOSS_COMBO);
  add("combo", {combo}, nop);
  add("comboNoneAct", {with_act(combo, CULOSS_ACTIVATION_NONE)}, nop);
  add("comboAlpha", {combo}, [](Case& c) { c.terms[0].alpha = 0.8; c.terms[0].ce_ratio = 0.3; });
  add("comboRatio0", {combo}, [](Case& c) { c.terms[0].ce_ratio = 0.0; });
  add("comboRatio1", {combo}, [](Case& c) { c.terms[0].ce_ratio = 1.0; c.terms[0].alpha = 0.0; });
  add("comboRegionOpts", {combo}, [](Case& c) {
    c.terms[0].include_bg = 0; c.terms[0].batch = 1; c.terms[0].squared = 1; c.terms[0].skip_empty = 1; c.terms[0].class_weights = true; });
  add("comboMicro", {combo}, [](Case& c) { c.terms[0].average = CULOSS_AVERAGE_MICRO; c.terms[0].smooth_nr = 0.0; c.terms[0].smooth_dr = 1.0; });
  add("comboMaskIdx", {combo}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; c.ignore_frac = 0.1; });
  add("comboPixelWeightNHWC", {combo}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.pixel_weight = true; c.tgt = Tgt::DenseU8; });
  add("comboNCDHW", {combo}, [](Case& c) { c.shape = {2, 3, 6, 8, 10}; c.tgt = Tgt::DenseIn; c.in = f16(); });

  // ---- MARGINAL_CE
  const Term marg = term(CULOSS_MARGINAL_CE);
  for (int red : reds) {
    add(std::string("marginal_") + red_name(red), {marg}, [&](Case& c) { c.terms[0].reduction = red; c.partial_annotation = true; });
    add(std::string("marginalDense_") + red_name(red), {marg}, [&](Case& c) { c.terms[0].reduction = red; c.tgt = Tgt::DenseF32; c.partial_annotation = true; });
  }
  add("marginalAbsentEverywhere", {marg}, [](Case& c) { c.absent_everywhere = true; c.shape = {3, 5, 16, 16}; c.partial_annotation = true; });
  add("marginalNoneAct", {with_act(marg, CULOSS_ACTIVATION_NONE)}, [](Case& c) { c.partial_annotation = true; c.shape = {3, 5, 16, 16}; });
  add("marginalPixelWeight", {marg}, [](Case& c) { c.pixel_weight = true; c.tgt = Tgt::IdxU8; c.shape = {3, 5, 16, 16}; c.partial_annotation = true; });
  add("marginalIgnoreCustom", {marg}, [](Case& c) { c.tgt = Tgt::IdxI32; c.ignore_index = 3; c.ignore_frac = 0.2; });
  add("marginalAllIgnored", {marg}, [](Case& c) { c.ignore_frac = 1.0; });
  add("marginalNHWC", {marg}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("marginalNC", {marg}, [](Case& c) { c.shape = {200, 6}; c.partial_annotation = true; });
  add("marginalDenseU8", {marg}, [](Case& c) { c.tgt = Tgt::DenseU8; c.shape = {3, 5, 16, 16}; c.partial_annotation = true; });

  // ---- TOPK_CE (MEAN only)
  Term topk = term(CULOSS_TOPK_CE);
  for (double f : {0.1, 1e-6, 0.5, 1.0}) {
    topk.top_fraction = f;
    add("topk_f" + std::to_string(f), {topk}, [](Case& c) { c.terms[0].class_weights = true; });
  }
  topk.top_fraction = 0.25;
  add("topkSmoothDense", {topk}, [](Case& c) { c.tgt = Tgt::DenseF32; c.terms[0].label_smoothing = 0.1; });
  add("topkPixelWeightU8", {topk}, [](Case& c) { c.tgt = Tgt::IdxU8; c.pixel_weight = true; c.ignore_frac = 0.3; });
  add("topkAllIgnored", {topk}, [](Case& c) { c.ignore_frac = 1.0; });
  add("topkNHWC", {topk}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.in = bf16(); c.grad_f32 = true; });
  add("topkNC", {topk}, [](Case& c) { c.shape = {200, 7}; c.in = f16(); });
  add("topkNCDHW", {with_act(topk, CULOSS_ACTIVATION_NONE)}, [](Case& c) { c.shape = {2, 3, 6, 8, 10}; c.in = f64(); });
  add("topkScale", {topk}, [](Case& c) { c.grad_scale = -2.5; c.tgt = Tgt::IdxI32; });

  // ---- SUMs
  Term dice = term(CULOSS_DICE), gd = term(CULOSS_GENERALIZED_DICE);
  Term tv_sig = with_act(term(CULOSS_TVERSKY), CULOSS_ACTIVATION_SIGMOID);
  Term ce_cw = ce;
  ce_cw.class_weights = true;
  Term bce_full = bce;
  bce_full.pos_weight = true;
  bce_full.label_smoothing = 0.1;
  add("sumDiceBce", {dice, bce}, [](Case& c) { c.tgt = Tgt::DenseF32; });
  add("sumDiceSigBceMaskIdx", {with_act(dice, CULOSS_ACTIVATION_SIGMOID), bce_full}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxU8; c.ignore_frac = 0.1; });
  add("sumDiceSigBceDense", {with_act(dice, CULOSS_ACTIVATION_SIGMOID), bce_full}, [](Case& c) { c.tgt = Tgt::DenseU8; c.pixel_weight = true; });
  add("sumDiceBceSumRed", {dice, bce}, [](Case& c) { c.tgt = Tgt::DenseF32; for (Term& t : c.terms) t.reduction = CULOSS_REDUCTION_SUM; });
  add("sumDiceCe", {dice, ce_cw}, nop);
  add("sumDiceCeU8", {dice, ce}, [](Case& c) { c.tgt = Tgt::IdxU8; c.pixel_weight = true; });
  add("sumDiceCeDense", {dice, ce_cw}, [](Case& c) { c.tgt = Tgt::DenseF32; c.terms[1].label_smoothing = 0.1; });
  add("sumDiceCeNegWeight", {dice, weighted(ce, -0.5)}, [](Case& c) { c.terms[0].include_bg = 0; });
  add("sumDiceCeSharedCw", {dice, ce_cw}, [](Case& c) { c.terms[0].class_weights = true; c.ignore_index = 2; });
  add("sumFocalTversky", {term(CULOSS_FOCAL), tv_sig}, [](Case& c) { c.tgt = Tgt::DenseF32; });
  add("sumFocalTverskyMaskIdx", {term(CULOSS_FOCAL), tv_sig}, [](Case& c) { c.shape = {3, 1, 20, 20}; c.tgt = Tgt::IdxI64; c.ignore_frac = 0.1; });
  add("sumFocalSoftTversky", {with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX), term(CULOSS_TVERSKY)}, [](Case& c) { c.terms[0].gamma = 0.5; c.terms[1].alpha = 0.7; c.terms[1].beta = 0.3; });
  add("sumGdiceMarginal", {gd, term(CULOSS_MARGINAL_CE)}, [](Case& c) { c.partial_annotation = true; });
  add("sumGdiceMarginalDense", {gd, term(CULOSS_MARGINAL_CE)}, [](Case& c) { c.tgt = Tgt::DenseF32; c.partial_annotation = true; c.shape = {3, 5, 16, 16}; });
  add("sumGdiceMarginalSumRed", {gd, term(CULOSS_MARGINAL_CE)}, [](Case& c) { c.tgt = Tgt::IdxI32; for (Term& t : c.terms) t.reduction = CULOSS_REDUCTION_SUM; });
  add("sumComboCe", {combo, ce_cw}, [](Case& c) { c.tgt = Tgt::DenseF32; });
  add("sumDiceTopk", {dice, weighted(topk, 0.5)}, [](Case& c) { c.terms[1].class_weights = true; });
  add("sumComboCeU8", {combo, ce}, [](Case& c) { c.tgt = Tgt::DenseU8; c.pixel_weight = true; c.terms[0].class_weights = true; });
  add("sumSingleTerm", {ce}, [](Case& c) { c.sum = true; c.terms[0].class_weights = true; });
  add("sumEightTerms", {combo, dice, ce_cw, term(CULOSS_MARGINAL_CE), weighted(bce_full, 0.3),
                        with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX), with_act(tv_sig, CULOSS_ACTIVATION_NONE)},
      [](Case& c) { c.tgt = Tgt::DenseF32; c.pixel_weight = true; });
  add("sumSameKindTwice", {ce, weighted(ce_cw, 2.0)}, [](Case& c) { c.terms[1].label_smoothing = 0.2; c.tgt = Tgt::IdxI64; });
  add("sumBceFocalNHWC", {bce, term(CULOSS_FOCAL)}, [](Case& c) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; c.tgt = Tgt::DenseU8; });
  add("sumCeMarginalNC", {ce, term(CULOSS_MARGINAL_CE)}, [](Case& c) { c.shape = {200, 6}; c.partial_annotation = true; });

  // ---- call options
  add("gradScaleNeg", {ce_cw}, [](Case& c) { c.grad_scale = -2.5; });
  add("gradScale0", {bce}, [](Case& c) { c.grad_scale = 0.0; c.tgt = Tgt::DenseF32; });
  add("lossF32", {term(CULOSS_FOCAL)}, [](Case& c) { c.loss_dtype = f32(); c.tgt = Tgt::DenseF32; });
  add("lossF32none", {ce}, [](Case& c) { c.loss_dtype = f32(); c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("hostLossOut", {marg}, [](Case& c) { c.host_loss_out = true; c.partial_annotation = true; });
  add("hostLossOutNoneBce", {bce}, [](Case& c) { c.host_loss_out = true; c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.loss_dtype = f32(); c.tgt = Tgt::DenseF32; });
  add("hostLossOutNoneCe", {ce}, [](Case& c) { c.host_loss_out = true; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add("hostLossOutSum", {dice, ce_cw}, [](Case& c) { c.host_loss_out = true; c.loss_dtype = f32(); });
  add("noCheck", {ce_cw}, [](Case& c) { c.check_targets = 0; });
  add("noCheckSum", {term(CULOSS_FOCAL), tv_sig}, [](Case& c) { c.check_targets = 0; c.tgt = Tgt::DenseF32; });
  return out;
}

// Big shapes (multi-block reductions), many classes, classification, tiny shapes.
inline std::vector<Case> shape_sweep() {
  std::vector<Case> out;
  int r = 0;
  auto add = [&](const std::string& tag, std::vector<Term> terms, std::vector<int64_t> shape, auto mutate) {
    Case c = base_case(std::move(terms), std::move(shape), 5000 + r);
    mutate(c);
    out.push_back(finish(c, "S" + std::to_string(r++) + "_" + tag));
  };
  for (const Flavour& fl : flavours()) {
    const std::string f = fl.tag;
    const bool none = fl.has_none;
    add(f + "_big2x4x300x300", fl.terms, {2, 4, 300, 300}, [&](Case& c) {
      c.pixel_weight = true;
      c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseF32;
    });
    add(f + "_big2x4x300x300bf16", fl.terms, {2, 4, 300, 300}, [&](Case& c) {
      c.in = bf16(); c.grad_f32 = true; c.tgt = fl.softmax_style ? Tgt::IdxU8 : Tgt::DenseU8;
      if (none) c.terms[0].reduction = CULOSS_REDUCTION_NONE;
    });
    add(f + "_big2x4x300x300f16sum", fl.terms, {2, 4, 300, 300}, [&](Case& c) {
      c.in = f16(); c.tgt = Tgt::DenseIn;
      for (Term& t : c.terms) t.reduction = CULOSS_REDUCTION_SUM;
    });
    add(f + "_big2x4x300x300f64", fl.terms, {2, 4, 300, 300}, [&](Case& c) { c.in = f64(); c.tgt = fl.softmax_style ? Tgt::IdxI32 : Tgt::DenseF32; });
    add(f + "_bigNHWC", fl.terms, {2, 300, 300, 4}, [&](Case& c) {
      c.class_axis = -1; c.tgt = fl.softmax_style ? Tgt::IdxI32 : Tgt::DenseU8;
      if (none) c.terms[0].reduction = CULOSS_REDUCTION_NONE;
    });
    add(f + "_cls1000x10", fl.terms, {1000, 10}, [&](Case& c) { c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseU8; });
    add(f + "_cls1000x10none", fl.terms, {1000, 10}, [&](Case& c) {
      c.in = f16(); c.tgt = fl.softmax_style ? Tgt::IdxU8 : Tgt::DenseF32;
      if (none) c.terms[0].reduction = CULOSS_REDUCTION_NONE;
    });
    add(f + "_vol2x3x16x16x16", fl.terms, {2, 3, 16, 16, 16}, [&](Case& c) { c.tgt = fl.softmax_style ? Tgt::IdxI32 : Tgt::DenseF32; c.pixel_weight = true; });
    add(f + "_C150", fl.terms, {2, 150, 12, 12}, [&](Case& c) {
      c.tgt = fl.softmax_style ? Tgt::IdxI32 : Tgt::DenseU8;
      for (Term& t : c.terms) t.class_weights = true;
      c.partial_annotation = true;
    });
    // Weight tables beyond one upload kernel's 480 entries (several launches, kInlineTable).
    add(f + "_C1000weighted", fl.terms, {4, 1000, 3, 3}, [&](Case& c) {
      c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseU8;
      for (Term& t : c.terms) t.class_weights = true;
    });
    add(f + "_onePixel", fl.terms, {1, 3, 1, 1}, [&](Case& c) { c.ignore_frac = 0.0; c.tgt = fl.softmax_style ? Tgt::IdxI64 : Tgt::DenseF32; });
    add(f + "_onePixelNC", fl.terms, {1, 3}, [&](Case& c) {
      c.ignore_frac = 0.0; c.in = f64(); c.tgt = fl.softmax_style ? Tgt::IdxU8 : Tgt::DenseU8;
      if (none) c.terms[0].reduction = CULOSS_REDUCTION_NONE;
    });
    add(f + "_onePixelC1", fl.terms, {1, 1, 1, 1}, [&](Case& c) { c.ignore_frac = 0.0; c.empty_class = false; c.tgt = Tgt::IdxU8; });
    add(f + "_longRow", fl.terms, {1, 5, 4096 * 33 + 7}, [&](Case& c) { c.tgt = fl.softmax_style ? Tgt::IdxU8 : Tgt::DenseF32; });
    add(f + "_manyImages", fl.terms, {64, 3, 7, 9}, [&](Case& c) { c.pixel_weight = true; c.tgt = Tgt::DenseF32; });
  }
  add("bceMaskC1big", {term(CULOSS_BCE)}, {4, 1, 256, 256}, [](Case& c) { c.tgt = Tgt::IdxU8; c.ignore_frac = 0.1; c.terms[0].class_balance = CULOSS_BALANCE_BATCH_FREQUENCY; });
  add("focalMaskC1bigNone", {term(CULOSS_FOCAL)}, {4, 1, 256, 256}, [](Case& c) { c.tgt = Tgt::IdxI64; c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.in = f16(); });
  return out;
}

// Random valid combinations of everything.
inline std::vector<Case> random_sweep() {
  std::vector<Case> out;
  std::mt19937_64 rng(20260202);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  auto coin = [&](double p) { return U(rng) < p; };
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  const culoss_kind elem[] = {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_COMBO, CULOSS_MARGINAL_CE};
  const culoss_kind region[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE};
  auto random_term = [&](bool allow_region) {
    Term t;
    t.kind = allow_region && coin(0.35) ? region[pick(5)] : elem[pick(5)];
    t.activation = pick(3);
    t.reduction = pick(3);
    t.class_weights = coin(0.3);
    t.pos_weight = coin(0.3);
    if (coin(0.3)) t.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
    if (coin(0.3)) t.label_smoothing = 0.3 * U(rng);
    const double gammas[] = {0.0, 0.5, 1.0, 2.0, 3.5};
    t.gamma = t.kind == CULOSS_FOCAL_TVERSKY ? 0.5 + 2.0 * U(rng) : gammas[pick(5)];
    t.alpha = t.kind == CULOSS_FOCAL ? (coin(0.2) ? -1.0 : U(rng)) : U(rng);
    t.beta = U(rng);
    if (coin(0.4)) t.ce_ratio = U(rng);
    t.include_bg = coin(0.3) ? 0 : 1;
    t.batch = coin(0.3) ? 1 : 0;
    t.squared = coin(0.3) ? 1 : 0;
    t.skip_empty = coin(0.3) ? 1 : 0;
    t.average = coin(0.3) ? CULOSS_AVERAGE_MICRO : CULOSS_AVERAGE_MACRO;
    t.weight_type = pick(3);
    if (coin(0.2)) t.smooth_nr = t.smooth_dr = coin(0.5) ? 0.0 : 1.0;
    t.weight = coin(0.7) ? 0.25 + U(rng) : -0.5;
    return t;
  };
  for (int r = 0; r < 120; ++r) {
    Case c;
    c.seed = 9000 + r;
    if (coin(0.4)) {
      c.sum = true;
      const int n = 1 + pick(4);
      int slots = 0;
      for (int i = 0; i < n; ++i) {
        Term t = random_term(true);
        const int need = t.kind == CULOSS_COMBO ? 2 : 1;
        if (slots + need > 8) break;
        slots += need;
        c.terms.push_back(t);
      }
    } else {
      c.terms.push_back(random_term(false));
    }
    c.in = dts[pick(4)];
    c.grad_f32 = coin(0.5);
    const int64_t N = 1 + pick(3);
    const int64_t C = coin(0.1) ? 1 : 2 + pick(6);
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
    c.absent_everywhere = coin(0.2);
    c.empty_class = coin(0.8);
    c.partial_annotation = coin(0.5);
    c.check_targets = coin(0.5) ? 1 : 0;
    c.grad_scale = coin(0.7) ? 1.0 : coin(0.5) ? -0.5 : 3.0;
    c.loss_dtype = coin(0.5) ? f32() : f64();
    c.host_loss_out = coin(0.3);
    out.push_back(finish(c, "R" + std::to_string(r)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Cases of the plumbing tests
// ---------------------------------------------------------------------------------------------

// A few representative cases (every kind, a SUM with a region term, multi-block shapes) used by
// the plumbing tests.
inline std::vector<Case> plumbing_cases() {
  std::vector<Case> v;
  int r = 0;
  auto add = [&](std::vector<Term> terms, std::vector<int64_t> shape, auto mutate) {
    Case c = base_case(std::move(terms), std::move(shape), 20000 + r);
    mutate(c);
    v.push_back(finish(c, "P" + std::to_string(r++)));
  };
  Term bce = term(CULOSS_BCE);
  bce.pos_weight = true;
  bce.label_smoothing = 0.1;
  Term ce = term(CULOSS_CROSS_ENTROPY);
  ce.class_weights = true;
  Term focal_soft = with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX);
  focal_soft.gamma = 0.5;
  Term dice = term(CULOSS_DICE);
  dice.class_weights = true;
  add({bce}, {2, 4, 300, 300}, [](Case& c) { c.tgt = Tgt::DenseF32; c.pixel_weight = true; });
  add({ce}, {2, 3, 16, 16, 16}, [](Case& c) {
    c.in = bf16(); c.tgt = Tgt::IdxU8; c.terms[0].reduction = CULOSS_REDUCTION_NONE; c.terms[0].label_smoothing = 0.1; });
  add({focal_soft}, {2, 40, 30, 5}, [](Case& c) { c.class_axis = -1; c.in = f16(); c.tgt = Tgt::IdxI32; });
  add({term(CULOSS_FOCAL)}, {1000, 10}, [](Case& c) { c.tgt = Tgt::DenseU8; c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add({term(CULOSS_COMBO)}, {2, 4, 300, 300}, [](Case& c) { c.tgt = Tgt::DenseU8; c.in = f64(); c.grad_f32 = true; });
  add({term(CULOSS_MARGINAL_CE)}, {2, 5, 120, 100}, [](Case& c) { c.partial_annotation = true; c.tgt = Tgt::IdxI64; });
  add({dice, ce}, {2, 4, 300, 300}, [](Case& c) { c.tgt = Tgt::IdxI64; c.pixel_weight = true; });
  add({term(CULOSS_COMBO), ce}, {2, 4, 64, 64}, [](Case& c) { c.tgt = Tgt::DenseF32; c.in = bf16(); });
  add({term(CULOSS_GENERALIZED_DICE), term(CULOSS_MARGINAL_CE)}, {2, 5, 64, 64}, [](Case& c) {
    c.partial_annotation = true; c.tgt = Tgt::IdxU8; });
  return v;
}

// CUDA graph capture: fused SUMs with class weights (the contract's case) and single kinds.
inline std::vector<Case> graph_cases() {
  Term dice = term(CULOSS_DICE), ce = term(CULOSS_CROSS_ENTROPY), bce = term(CULOSS_BCE);
  dice.class_weights = true;
  ce.class_weights = true;
  ce.label_smoothing = 0.1;
  bce.class_weights = true;
  bce.pos_weight = true;
  bce.class_balance = CULOSS_BALANCE_BATCH_FREQUENCY;
  Term combo = term(CULOSS_COMBO);
  combo.class_weights = true;
  Term focal = with_act(term(CULOSS_FOCAL), CULOSS_ACTIVATION_SOFTMAX);
  focal.class_weights = true;
  std::vector<Case> cases;
  int r = 0;
  auto add = [&](std::vector<Term> terms, std::vector<int64_t> shape, auto mutate) {
    Case c = base_case(std::move(terms), std::move(shape), 21000 + r);
    mutate(c);
    cases.push_back(finish(c, "G" + std::to_string(r++)));
  };
  add({dice, ce}, {2, 4, 300, 300}, [](Case& c) { c.tgt = Tgt::IdxI64; c.pixel_weight = true; });
  add({dice, weighted(ce, 0.5)}, {2, 40, 30, 5}, [](Case& c) { c.class_axis = -1; c.in = f16(); c.tgt = Tgt::IdxU8; });
  add({combo, ce, bce}, {2, 4, 64, 64}, [](Case& c) { c.tgt = Tgt::DenseF32; c.in = bf16(); });
  add({term(CULOSS_GENERALIZED_DICE), term(CULOSS_MARGINAL_CE), focal}, {2, 5, 48, 48}, [](Case& c) {
    c.tgt = Tgt::IdxI32; c.partial_annotation = true; });
  add({ce}, {1000, 10}, [](Case& c) { c.sum = true; c.in = f64(); });
  // single element-wise kinds too
  add({bce}, {2, 4, 100, 100}, [](Case& c) { c.tgt = Tgt::DenseU8; });
  add({ce}, {2, 4, 100, 100}, [](Case& c) { c.terms[0].reduction = CULOSS_REDUCTION_NONE; });
  add({focal}, {2, 4, 100, 100}, [](Case& c) { c.tgt = Tgt::IdxU8; });
  add({combo}, {2, 4, 100, 100}, [](Case& c) { c.tgt = Tgt::DenseF32; });
  add({term(CULOSS_MARGINAL_CE)}, {2, 4, 100, 100}, [](Case& c) { c.partial_annotation = true; });
  return cases;
}

// In-place gradients: every flavour x input dtype, rotating layouts.
inline std::vector<Case> inplace_cases() {
  std::vector<Case> out;
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  const std::vector<std::pair<std::vector<int64_t>, int>> layouts = {
      {{2, 5, 40, 40}, 1}, {{2, 40, 40, 5}, -1}, {{300, 7}, 1}, {{2, 3, 8, 8, 8}, 1}};
  int r = 0;
  for (const Flavour& fl : flavours())
    for (DLDataType d : dts) {
      const auto& lay = layouts[static_cast<size_t>(r % 4)];
      Case c = base_case(fl.terms, lay.first, 30000 + r);
      c.class_axis = lay.second;
      c.in = d;
      c.tgt = fl.softmax_style ? (r % 2 ? Tgt::IdxI32 : Tgt::DenseU8) : (r % 2 ? Tgt::DenseF32 : Tgt::DenseU8);
      c.pixel_weight = r % 3 == 0;
      if (fl.has_none && r % 5 == 0) c.terms[0].reduction = CULOSS_REDUCTION_NONE;
      ++r;
      out.push_back(finish(c, "I" + std::to_string(r)));
    }
  return out;
}

// Determinism: the plumbing cases and a long row (many blocks) of every flavour in float16.
inline std::vector<Case> determinism_cases() {
  std::vector<Case> cases = plumbing_cases();
  int r = 0;
  for (const Flavour& fl : flavours()) {
    Case c = base_case(fl.terms, {1, 5, 4096 * 33 + 7}, 32000 + r++);
    c.in = f16();
    c.grad_f32 = true;
    for (Term& t : c.terms) t.class_weights = true;
    c.tgt = fl.softmax_style ? Tgt::IdxU8 : Tgt::DenseF32;
    c.partial_annotation = true;
    cases.push_back(finish(c, "Det" + std::to_string(r)));
  }
  return cases;
}

}  // namespace elementwise_test

// Test harness of the Lovász losses (LOVASZ_HINGE, LOVASZ_SOFTMAX), shared by the CPU tests
// (tests/losses/lovasz_test.cpp) and the CUDA tests (tests/cuda/lovasz_cuda_test.cpp):
// a case described with plain values, its host data (input, target, pixel weight in the case's
// dtypes), the descriptor set-up, a CPU run through the public API, the independent reference
// (tests/reference/lovasz_reference.hpp) fed with the values as stored, and comparisons.
//
// Seeds are fixed so failures reproduce; CULOSS_TEST_SEED adds to every seed.
#pragma once

#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"
#include "reference/lovasz_reference.hpp"

namespace lovasz_test {

using testing_util::bf16;
using testing_util::f16;
using testing_util::f32;
using testing_util::f64;
using testing_util::i32;
using testing_util::i64;
using testing_util::Loss;
using testing_util::TestTensor;
using testing_util::u8;

inline uint64_t seed_base() {
  static const uint64_t base = [] {
    const char* s = std::getenv("CULOSS_TEST_SEED");
    return s != nullptr ? static_cast<uint64_t>(std::strtoull(s, nullptr, 10)) : 0ull;
  }();
  return base;
}

// Target kinds: dense in a float dtype (DenseIn: the input's dtype) or uint8, or class indices.
enum class Tgt { DenseF64, DenseF32, DenseU8, DenseIn, IdxU8, IdxI32, IdxI64 };
inline bool is_index(Tgt t) { return t == Tgt::IdxU8 || t == Tgt::IdxI32 || t == Tgt::IdxI64; }

constexpr int64_t kNoIgnoreParam = INT64_MIN;  // leave IGNORE_INDEX at its default

struct LCase {
  culoss_kind kind = CULOSS_LOVASZ_SOFTMAX;
  std::vector<int64_t> shape{2, 3, 5, 4};
  int class_axis = 1;
  int activation = CULOSS_ACTIVATION_SOFTMAX;  // softmax only: SOFTMAX or NONE
  DLDataType in = f64();
  bool grad_f32 = false;
  Tgt tgt = Tgt::IdxI64;
  int per_image = 0;
  int classes = CULOSS_CLASSES_PRESENT;  // softmax only
  int reduction = CULOSS_REDUCTION_MEAN;
  double ignore_frac = 0.1;  // index: IGNORE_INDEX labels; dense: pixel weight 0
  bool pixel_weight = false;  // a weight map: 0 on ~15% of the pixels, varied positives elsewhere
  int64_t ignore_index = kNoIgnoreParam;
  bool absent_class = true;  // the last class (hinge: channel) has no positive in image 0
  double soft_frac = 0.2;    // dense targets: fraction of soft values (binarized at 0.5)
  double grad_scale = 1.0;
  DLDataType loss_dtype = f64();
  bool loss_1d = false;  // one-element outputs as shape [1] instead of ndim 0
  double logit_scale = 1.5;
  uint64_t seed = 1;
};

inline std::string dtype_name(DLDataType d) {
  if (d.code == kDLBfloat) return "bf16";
  if (d.code == kDLFloat) return "f" + std::to_string(d.bits);
  if (d.code == kDLUInt) return "u" + std::to_string(d.bits);
  if (d.code == kDLInt) return "i" + std::to_string(d.bits);
  return "dt";
}
inline const char* tgt_name(Tgt t) {
  switch (t) {
    case Tgt::DenseF64: return "denseF64";
    case Tgt::DenseF32: return "denseF32";
    case Tgt::DenseU8: return "denseU8";
    case Tgt::DenseIn: return "denseIn";
    case Tgt::IdxU8: return "idxU8";
    case Tgt::IdxI32: return "idxI32";
    case Tgt::IdxI64: return "idxI64";
  }
  return "tgt";
}
inline const char* red_name(int r) {
  return r == CULOSS_REDUCTION_MEAN ? "mean" : r == CULOSS_REDUCTION_SUM ? "sum" : "none";
}
inline DLDataType grad_dtype(const LCase& c) { return c.grad_f32 ? f32() : c.in; }
inline int resolved_axis(const LCase& c) {
  const int nd = static_cast<int>(c.shape.size());
  return c.class_axis < 0 ? nd + c.class_axis : c.class_axis;
}
inline int64_t num_classes(const LCase& c) { return c.shape[static_cast<size_t>(resolved_axis(c))]; }

inline std::string describe(const LCase& c) {
  std::ostringstream os;
  os << (c.kind == CULOSS_LOVASZ_HINGE ? "LOVASZ_HINGE" : "LOVASZ_SOFTMAX") << " shape=(";
  for (size_t i = 0; i < c.shape.size(); ++i) os << (i ? "," : "") << c.shape[i];
  os << ") axis=" << c.class_axis << " in=" << dtype_name(c.in)
     << " grad=" << dtype_name(grad_dtype(c));
  if (c.kind == CULOSS_LOVASZ_SOFTMAX)
    os << " act=" << (c.activation == CULOSS_ACTIVATION_NONE ? "none" : "softmax")
       << " classes=" << (c.classes == CULOSS_CLASSES_ALL ? "all" : "present");
  os << " target=" << tgt_name(c.tgt) << " per_image=" << c.per_image
     << " reduction=" << red_name(c.reduction) << " ignore_frac=" << c.ignore_frac
     << " pixel_weight=" << c.pixel_weight << " ignore_index="
     << (c.ignore_index == kNoIgnoreParam ? std::string("default") : std::to_string(c.ignore_index))
     << " absent_class=" << c.absent_class << " soft_frac=" << c.soft_frac
     << " grad_scale=" << c.grad_scale << " loss=" << dtype_name(c.loss_dtype)
     << " loss_1d=" << c.loss_1d << " logit_scale=" << c.logit_scale << " seed=" << c.seed
     << " (+CULOSS_TEST_SEED " << seed_base() << ")";
  return os.str();
}

// Makes a case valid: the hinge reads index targets only as a C = 1 mask; a softmax over one
// class is refused, so LOVASZ_SOFTMAX with C = 1 takes probabilities (ACTIVATION_NONE).
inline LCase normalized(LCase c) {
  if (c.kind == CULOSS_LOVASZ_HINGE) {
    c.activation = CULOSS_ACTIVATION_NONE;  // not set on the descriptor; the reference ignores it
    if (is_index(c.tgt) && num_classes(c) != 1) c.tgt = Tgt::DenseF32;
  } else if (num_classes(c) == 1) {
    c.activation = CULOSS_ACTIVATION_NONE;
  }
  return c;
}

// Host data of a case.
struct LData {
  LCase c;
  int64_t N = 0, C = 0, pre = 1, inner = 1, P = 0;
  std::vector<int64_t> pix_shape, loss_shape;
  TestTensor input, target, weight;
  bool has_weight = false;
  bool set_ignore = false;
  int64_t ignore_value = -100;
  lovasz_ref::Spec spec;  // the reference's view of the stored values

  int64_t element(int64_t n, int64_t q, int64_t k) const {
    return ((n * pre + q / inner) * C + k) * inner + q % inner;
  }
  int64_t pixel(int64_t n, int64_t q) const { return n * P + q; }
  int64_t problems() const { return c.per_image ? N : 1; }
};

inline DLDataType target_dtype(const LCase& c) {
  switch (c.tgt) {
    case Tgt::DenseF64: return f64();
    case Tgt::DenseF32: return f32();
    case Tgt::DenseU8: return u8();
    case Tgt::DenseIn: return c.in;
    case Tgt::IdxU8: return u8();
    case Tgt::IdxI32: return i32();
    case Tgt::IdxI64: return i64();
  }
  return f32();
}

inline std::vector<int64_t> loss_shape_of(const LCase& c, int64_t N, int64_t C) {
  const std::vector<int64_t> one = c.loss_1d ? std::vector<int64_t>{1} : std::vector<int64_t>{};
  if (c.reduction != CULOSS_REDUCTION_NONE) return one;
  if (c.kind == CULOSS_LOVASZ_HINGE)
    return c.per_image ? std::vector<int64_t>{N, C} : std::vector<int64_t>{C};
  return c.per_image ? std::vector<int64_t>{N} : one;
}

// Fills the reference spec from the tensors as stored.
inline void refresh_spec(LData& d) {
  lovasz_ref::Spec& s = d.spec;
  s = lovasz_ref::Spec{};
  s.kind = d.c.kind == CULOSS_LOVASZ_HINGE ? lovasz_ref::HINGE : lovasz_ref::SOFTMAX;
  s.shape = d.c.shape;
  s.class_axis = d.c.class_axis;
  s.activation = d.c.activation == CULOSS_ACTIVATION_NONE ? lovasz_ref::ACT_NONE : lovasz_ref::ACT_SOFTMAX;
  s.input = d.input.values();
  s.index_target = is_index(d.c.tgt);
  if (s.index_target) {
    s.labels.resize(static_cast<size_t>(d.target.numel()));
    for (int64_t i = 0; i < d.target.numel(); ++i) s.labels[static_cast<size_t>(i)] = d.target.get_int(i);
  } else {
    s.dense_target = d.target.values();
  }
  s.ignore_index = d.ignore_value;
  if (d.has_weight) s.pixel_weight = d.weight.values();
  s.per_image = d.c.per_image != 0;
  s.classes_all = d.c.classes == CULOSS_CLASSES_ALL;
  s.reduction = d.c.reduction;
  s.grad_scale = d.c.grad_scale;
}

inline LData make_data(const LCase& case_in) {
  LData d;
  d.c = normalized(case_in);
  const LCase& c = d.c;
  const int nd = static_cast<int>(c.shape.size());
  const int axis = resolved_axis(c);
  d.N = c.shape[0];
  d.C = c.shape[static_cast<size_t>(axis)];
  for (int k = 1; k < axis; ++k) d.pre *= c.shape[static_cast<size_t>(k)];
  for (int k = axis + 1; k < nd; ++k) d.inner *= c.shape[static_cast<size_t>(k)];
  d.P = d.pre * d.inner;
  for (int k = 0; k < nd; ++k)
    if (k != axis) d.pix_shape.push_back(c.shape[static_cast<size_t>(k)]);
  d.loss_shape = loss_shape_of(c, d.N, d.C);

  const bool hinge = c.kind == CULOSS_LOVASZ_HINGE;
  const bool idx = is_index(c.tgt);
  // One class (the hinge's masks, or LOVASZ_SOFTMAX with C = 1): labels are a 0/1 mask.
  const bool mask = hinge || d.C == 1;
  if (c.ignore_index != kNoIgnoreParam) {
    d.ignore_value = c.ignore_index;
    d.set_ignore = true;
  } else if (c.tgt == Tgt::IdxU8) {
    d.ignore_value = 255;
    d.set_ignore = true;
  }

  std::mt19937_64 rng(c.seed * 0x9E3779B97F4A7C15ull + 0x1234567ull + seed_base());
  std::uniform_real_distribution<double> U(0.0, 1.0);
  std::normal_distribution<double> G(0.0, 1.0);
  const int64_t C = d.C, npix = d.N * d.P;

  // Labels / dense values per (pixel, class) and which pixels are left out.
  std::vector<double> t(static_cast<size_t>(npix * C), 0.0);
  std::vector<int64_t> label(static_cast<size_t>(npix), 0);
  std::vector<char> left_out(static_cast<size_t>(npix), 0);
  const bool soft = c.tgt == Tgt::DenseF64 || c.tgt == Tgt::DenseF32 || c.tgt == Tgt::DenseIn;
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t q = 0; q < d.P; ++q) {
      const int64_t px = d.pixel(n, q);
      const bool absent_here = c.absent_class && n == 0;
      int64_t lab;
      if (mask) {
        lab = U(rng) < 0.4 ? 1 : 0;
      } else {
        lab = static_cast<int64_t>(rng() % static_cast<uint64_t>(C));
        if (absent_here && C > 1 && lab == C - 1) lab = 0;
      }
      label[static_cast<size_t>(px)] = lab;
      left_out[static_cast<size_t>(px)] = U(rng) < c.ignore_frac;
      for (int64_t k = 0; k < C; ++k) {
        double v;
        if (hinge) {
          v = idx ? static_cast<double>(lab) : (U(rng) < 0.4 ? 1.0 : 0.0);
        } else if (mask) {
          v = static_cast<double>(lab);  // LOVASZ_SOFTMAX, C = 1
        } else {
          v = k == lab ? 1.0 : 0.0;
        }
        if (soft && U(rng) < c.soft_frac) {
          const double r = U(rng);
          v = r < 0.1 ? 0.5 : r < 0.2 ? 0.49 : U(rng);  // 0.5 is a positive, 0.49 a negative
        }
        if (absent_here && k == C - 1 && (C > 1 || !idx)) v = std::min(v, 0.3);
        t[static_cast<size_t>(px * C + k)] = v;
      }
      if (mask && idx && absent_here) {
        label[static_cast<size_t>(px)] = 0;
        t[static_cast<size_t>(px * C)] = 0.0;
      }
    }

  d.input = TestTensor(c.shape, c.in);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t q = 0; q < d.P; ++q) {
      const int64_t px = d.pixel(n, q);
      if (!hinge && c.activation == CULOSS_ACTIVATION_NONE && C == 1) {
        // One class: the probability of the foreground, a sigmoid of a random logit.
        const double z = c.logit_scale * G(rng) + (t[static_cast<size_t>(px)] >= 0.5 ? 1.0 : -1.0);
        d.input.set(d.element(n, q, 0), 1.0 / (1.0 + std::exp(-z)));
      } else if (!hinge && c.activation == CULOSS_ACTIVATION_NONE) {
        // Probabilities: a softmax of random logits (rows sum to ~1 after rounding).
        std::vector<double> z(static_cast<size_t>(C));
        double m = -1e300, s = 0.0;
        for (int64_t k = 0; k < C; ++k) {
          z[static_cast<size_t>(k)] = c.logit_scale * G(rng) + 1.5 * (t[static_cast<size_t>(px * C + k)] >= 0.5);
          m = std::max(m, z[static_cast<size_t>(k)]);
        }
        for (double& v : z) s += (v = std::exp(v - m));
        for (int64_t k = 0; k < C; ++k) d.input.set(d.element(n, q, k), z[static_cast<size_t>(k)] / s);
      } else {
        for (int64_t k = 0; k < C; ++k) {
          const bool fg = t[static_cast<size_t>(px * C + k)] >= 0.5;
          const double x = c.logit_scale * G(rng) + (hinge ? (fg ? 0.5 : -0.5) : (fg ? 1.5 : 0.0));
          d.input.set(d.element(n, q, k), x);
        }
      }
    }

  if (idx) {
    d.target = TestTensor(d.pix_shape, target_dtype(c));
    for (int64_t px = 0; px < npix; ++px)
      d.target.set(px, left_out[static_cast<size_t>(px)] ? static_cast<double>(d.ignore_value)
                                                         : static_cast<double>(label[static_cast<size_t>(px)]));
  } else {
    d.target = TestTensor(c.shape, target_dtype(c));
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t q = 0; q < d.P; ++q)
        for (int64_t k = 0; k < C; ++k) {
          double v = t[static_cast<size_t>(d.pixel(n, q) * C + k)];
          if (c.tgt == Tgt::DenseU8) v = v >= 0.5 ? 1.0 : 0.0;
          d.target.set(d.element(n, q, k), v);
        }
  }

  d.has_weight = c.pixel_weight || (!idx && c.ignore_frac > 0.0);
  if (d.has_weight) {
    d.weight = TestTensor(d.pix_shape, f32());
    const double levels[] = {0.25, 1.0, 3.5, 1e-3, 40.0};
    for (int64_t px = 0; px < npix; ++px) {
      double w = 1.0;
      if (c.pixel_weight) {
        const double r = U(rng);
        w = r < 0.15 ? 0.0 : r < 0.6 ? levels[rng() % 5] : 0.01 + 5.0 * U(rng);
      }
      if (!idx && left_out[static_cast<size_t>(px)]) w = 0.0;
      d.weight.set(px, w);
    }
  }
  refresh_spec(d);
  return d;
}

// Sets the case's parameters on a descriptor (only those that apply to the kind).
inline ::testing::AssertionResult configure(culoss_loss h, const LData& d) {
  const LCase& c = d.c;
  auto seti = [&](culoss_param k, int64_t v) -> bool {
    return culoss_loss_set_int(h, k, v) == CULOSS_SUCCESS;
  };
  bool ok = seti(CULOSS_PARAM_CLASS_AXIS, c.class_axis) && seti(CULOSS_PARAM_REDUCTION, c.reduction) &&
            seti(CULOSS_PARAM_PER_IMAGE, c.per_image);
  if (ok && c.kind == CULOSS_LOVASZ_SOFTMAX)
    ok = seti(CULOSS_PARAM_ACTIVATION, c.activation) && seti(CULOSS_PARAM_CLASSES, c.classes);
  if (ok && d.set_ignore) ok = seti(CULOSS_PARAM_IGNORE_INDEX, d.ignore_value);
  if (!ok) return ::testing::AssertionFailure() << "a setter failed: " << culoss_last_error();
  return ::testing::AssertionSuccess();
}

// What one call returned and wrote.
struct LRun {
  culoss_status status = CULOSS_ERROR_INTERNAL;
  std::string error;
  TestTensor loss, grad;
};

enum class CpuWs { Null, Exact, ExactMisaligned };

struct CpuRunOptions {
  bool with_grad = true;
  bool in_place = false;  // grad_input is the input's own buffer (input copied first)
  CpuWs ws = CpuWs::Null;
  bool configure_loss = true;
};

// Runs the case on the CPU backend with freshly poisoned outputs.
inline LRun run_cpu(const LData& d, const CpuRunOptions& o = CpuRunOptions{}) {
  Loss h(d.c.kind);
  LRun r;
  if (o.configure_loss) {
    const ::testing::AssertionResult ok = configure(h, d);
    EXPECT_TRUE(ok);
    if (!ok) return r;
  }
  TestTensor input = d.input, target = d.target, weight = d.weight;
  r.loss = TestTensor(d.loss_shape, d.c.loss_dtype);
  r.loss.poison();
  r.grad = TestTensor(d.c.shape, grad_dtype(d.c));
  r.grad.poison();
  std::vector<uint8_t> ws;
  void* wsp = nullptr;
  size_t wsn = 0;
  if (o.ws != CpuWs::Null) {
    size_t bytes = 0;
    EXPECT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, input.dl(), target.dl(), &bytes)) << culoss_last_error();
    ws.assign(bytes + 16, 0xcd);
    wsp = ws.data() + (o.ws == CpuWs::ExactMisaligned ? 3 : 0);
    wsn = bytes;
  }
  DLTensor* grad_dl = nullptr;
  if (o.with_grad) grad_dl = o.in_place ? input.dl() : r.grad.dl();
  DLTensor* in_dl = input.dl();
  r.status = culoss_compute(h, in_dl, target.dl(), d.has_weight ? weight.dl() : nullptr, r.loss.dl(),
                            grad_dl, d.c.grad_scale, wsp, wsn, nullptr);
  r.error = culoss_last_error();
  if (o.in_place) r.grad = input;
  return r;
}

// |got − want| <= rel·|want| + abs_frac·max|want| + abs, element-wise, with a readable failure.
struct Tol {
  double rel = 1e-9;
  double abs_frac = 1e-12;
  double abs = 1e-300;
};

inline ::testing::AssertionResult close_to(const char* what, const std::vector<double>& got,
                                           const std::vector<double>& want, Tol tol,
                                           const std::vector<char>* skip = nullptr) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": " << got.size() << " elements, expected " << want.size();
  double maxabs = 0.0;
  for (double w : want)
    if (std::isfinite(w)) maxabs = std::max(maxabs, std::fabs(w));
  int64_t bad = 0;
  std::ostringstream os;
  os << std::setprecision(17);
  for (size_t i = 0; i < got.size(); ++i) {
    if (skip != nullptr && (*skip)[i]) continue;
    const double lim = tol.rel * std::fabs(want[i]) + tol.abs_frac * maxabs + tol.abs;
    const bool ok = std::isfinite(got[i]) && std::isfinite(want[i]) && std::fabs(got[i] - want[i]) <= lim;
    if (!ok) {
      if (bad < 8)
        os << "\n  [" << i << "] got " << got[i] << " want " << want[i] << " |diff| "
           << std::fabs(got[i] - want[i]) << " > " << lim;
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << got.size()
                                       << " elements differ (max |want| " << maxabs << ")" << os.str();
}

inline ::testing::AssertionResult same_bytes(const char* what, const TestTensor& a, const TestTensor& b) {
  const size_t n = static_cast<size_t>(a.numel() * a.elem_size());
  if (a.numel() != b.numel() || a.elem_size() != b.elem_size())
    return ::testing::AssertionFailure() << what << ": different sizes";
  for (size_t i = 0; i < n; ++i)
    if (a.bytes[i] != b.bytes[i]) {
      const int64_t e = static_cast<int64_t>(i) / a.elem_size();
      return ::testing::AssertionFailure() << what << ": element " << e << " differs in its bits ("
                                           << std::setprecision(17) << a.get(e) << " vs " << b.get(e) << ")";
    }
  return ::testing::AssertionSuccess();
}

inline bool still_poisoned(const TestTensor& t) {
  const size_t n = static_cast<size_t>(t.numel() * t.elem_size());
  for (size_t i = 0; i < n; ++i)
    if (t.bytes[i] != 0xff) return false;
  return true;
}

// Tolerances of a CPU result against the long double reference: the library works in double,
// then rounds to the output dtype.
inline Tol dtype_tol(DLDataType out) {
  Tol t;
  if (out.code == kDLFloat && out.bits == 64) {
    t.rel = 1e-9;
    t.abs_frac = 1e-12;
  } else if (out.code == kDLFloat && out.bits == 32) {
    t.rel = 1.2e-7;  // 2 × half an ulp
    t.abs_frac = 1e-12;
    t.abs = 1e-44;
  } else if (out.code == kDLBfloat) {
    t.rel = 1.0 / 128;  // one bfloat16 ulp
    t.abs_frac = 1e-12;
    t.abs = 1e-40;
  } else {  // float16: half an ulp is 2^-11 relative; subnormals below 2^-14
    t.rel = 1.0 / 1024;
    t.abs_frac = 1e-12;
    t.abs = 6e-8;
  }
  return t;
}

// Runs the case on the CPU and compares values and gradient with the reference.
inline ::testing::AssertionResult matches_reference(const LData& d, const CpuRunOptions& o = CpuRunOptions{}) {
  const LRun r = run_cpu(d, o);
  if (r.status != CULOSS_SUCCESS)
    return ::testing::AssertionFailure() << "status " << culoss_status_string(r.status) << ": " << r.error
                                         << "\n  case: " << describe(d.c);
  const lovasz_ref::Result ref = lovasz_ref::reference(d.spec);
  const ::testing::AssertionResult v = close_to("loss", r.loss.values(), ref.values, dtype_tol(d.c.loss_dtype));
  if (!v) return ::testing::AssertionFailure() << v.message() << "\n  case: " << describe(d.c);
  if (o.with_grad) {
    const ::testing::AssertionResult g = close_to("grad", r.grad.values(), ref.grad, dtype_tol(grad_dtype(d.c)));
    if (!g) return ::testing::AssertionFailure() << g.message() << "\n  case: " << describe(d.c);
  } else if (!still_poisoned(r.grad)) {
    return ::testing::AssertionFailure() << "a forward-only call wrote the unused gradient buffer";
  }
  return ::testing::AssertionSuccess();
}

}  // namespace lovasz_test

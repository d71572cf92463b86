// Call plumbing for the loss tests (region losses DICE, JACCARD, TVERSKY, FOCAL_TVERSKY,
// GENERALIZED_DICE; element-wise BCE, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE): describe a call
// with plain values (RegionCase), run culoss_compute on CPU tensors through the public API only,
// and get the loss values and the gradient back as doubles.
// RegionOptions/configure()/loss_shape()/describe_case() do not depend on the device and can be
// reused by a CUDA test that builds device tensors itself; run_region() is the CPU path.
// Companions: region_random.hpp (seeded random cases), region_check.hpp (reference comparison);
// elementwise_check.hpp does the same for the element-wise kinds. run_with() runs a descriptor the
// caller built (a CULOSS_SUM) on the tensors of a case.
#pragma once

#include <culoss/culoss.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"

namespace region_test {

using testing_util::TestTensor;

// Every option of a region loss. Use default_options(kind) for the library's defaults.
struct RegionOptions {
  culoss_kind kind = CULOSS_DICE;
  int activation = CULOSS_ACTIVATION_SOFTMAX;
  int class_axis = 1;
  int reduction = CULOSS_REDUCTION_MEAN;
  int64_t ignore_index = -100;
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  bool squared = false;             // DICE, JACCARD
  bool batch = false;
  bool include_background = true;
  std::vector<double> class_weights;  // empty: not set (all 1)
  double alpha = 0.5, beta = 0.5;   // TVERSKY, FOCAL_TVERSKY
  double gamma = 0.75;              // FOCAL_TVERSKY
  int weight_type = CULOSS_WEIGHT_SQUARE;  // GENERALIZED_DICE
  bool skip_empty = false;
  int average = CULOSS_AVERAGE_MACRO;  // not GENERALIZED_DICE
  bool check_targets = true;
  bool soft_label = false;          // DICE, JACCARD, TVERSKY, FOCAL_TVERSKY, MCC
  // Element-wise kinds (alpha/gamma above also serve FOCAL and COMBO).
  std::vector<double> pos_weight;   // BCE; empty: not set (all 1)
  int class_balance = CULOSS_BALANCE_NONE;  // BCE
  double label_smoothing = 0.0;     // BCE, CROSS_ENTROPY
  double ce_ratio = 0.5;            // COMBO
  double top_fraction = 0.1;        // TOPK_CE
};

inline RegionOptions default_options(culoss_kind kind) {
  RegionOptions o;
  o.kind = kind;
  if (kind == CULOSS_FOCAL_TVERSKY) { o.alpha = 0.3; o.beta = 0.7; o.gamma = 0.75; }
  if (kind == CULOSS_BCE || kind == CULOSS_FOCAL || kind == CULOSS_COMBO)
    o.activation = CULOSS_ACTIVATION_SIGMOID;
  if (kind == CULOSS_FOCAL) { o.alpha = 0.25; o.gamma = 2.0; }
  return o;
}

inline bool is_elementwise_kind(culoss_kind k) {
  return k == CULOSS_BCE || k == CULOSS_CROSS_ENTROPY || k == CULOSS_FOCAL || k == CULOSS_COMBO ||
         k == CULOSS_MARGINAL_CE || k == CULOSS_TOPK_CE;
}

inline bool is_region_kind(culoss_kind k) {
  return k == CULOSS_DICE || k == CULOSS_JACCARD || k == CULOSS_TVERSKY ||
         k == CULOSS_FOCAL_TVERSKY || k == CULOSS_GENERALIZED_DICE || k == CULOSS_MCC;
}

// Whether a parameter applies to an element-wise kind (docs/reference.md, docs/SEMANTICS.md).
inline bool elementwise_param_applies(culoss_kind k, culoss_param p) {
  switch (p) {
    case CULOSS_PARAM_ACTIVATION:
    case CULOSS_PARAM_CLASS_AXIS:
    case CULOSS_PARAM_REDUCTION:
    case CULOSS_PARAM_IGNORE_INDEX:
    case CULOSS_PARAM_CHECK_TARGETS: return true;
    case CULOSS_PARAM_CLASS_WEIGHTS: return k != CULOSS_MARGINAL_CE;
    case CULOSS_PARAM_POS_WEIGHT:
    case CULOSS_PARAM_CLASS_BALANCE: return k == CULOSS_BCE;
    case CULOSS_PARAM_LABEL_SMOOTHING:
      return k == CULOSS_BCE || k == CULOSS_CROSS_ENTROPY || k == CULOSS_TOPK_CE;
    case CULOSS_PARAM_TOP_FRACTION: return k == CULOSS_TOPK_CE;
    case CULOSS_PARAM_ALPHA: return k == CULOSS_FOCAL || k == CULOSS_COMBO;
    case CULOSS_PARAM_GAMMA: return k == CULOSS_FOCAL;
    case CULOSS_PARAM_CE_RATIO:
    case CULOSS_PARAM_SMOOTH_NR:
    case CULOSS_PARAM_SMOOTH_DR:
    case CULOSS_PARAM_SQUARED_DENOMINATOR:
    case CULOSS_PARAM_BATCH:
    case CULOSS_PARAM_INCLUDE_BACKGROUND:
    case CULOSS_PARAM_SKIP_EMPTY:
    case CULOSS_PARAM_AVERAGE: return k == CULOSS_COMBO;  // its Dice part
    default: return false;
  }
}

// Whether a parameter applies to a region kind (docs/reference.md and docs/SEMANTICS.md), or, for
// an element-wise kind, elementwise_param_applies.
inline bool param_applies(culoss_kind k, culoss_param p) {
  if (is_elementwise_kind(k)) return elementwise_param_applies(k, p);
  switch (p) {
    case CULOSS_PARAM_SQUARED_DENOMINATOR: return k == CULOSS_DICE || k == CULOSS_JACCARD;
    case CULOSS_PARAM_ALPHA:
    case CULOSS_PARAM_BETA: return k == CULOSS_TVERSKY || k == CULOSS_FOCAL_TVERSKY;
    case CULOSS_PARAM_GAMMA: return k == CULOSS_FOCAL_TVERSKY;
    case CULOSS_PARAM_WEIGHT_TYPE: return k == CULOSS_GENERALIZED_DICE;
    case CULOSS_PARAM_AVERAGE: return k != CULOSS_GENERALIZED_DICE;
    case CULOSS_PARAM_SOFT_LABEL: return k != CULOSS_GENERALIZED_DICE;
    case CULOSS_PARAM_SMOOTH_NR: return k != CULOSS_MCC;  // MCC: SMOOTH_DR is its ε
    case CULOSS_PARAM_ACTIVATION:
    case CULOSS_PARAM_CLASS_AXIS:
    case CULOSS_PARAM_REDUCTION:
    case CULOSS_PARAM_IGNORE_INDEX:
    case CULOSS_PARAM_SMOOTH_DR:
    case CULOSS_PARAM_BATCH:
    case CULOSS_PARAM_INCLUDE_BACKGROUND:
    case CULOSS_PARAM_CLASS_WEIGHTS:
    case CULOSS_PARAM_SKIP_EMPTY:
    case CULOSS_PARAM_CHECK_TARGETS: return true;
    default: return false;
  }
}

// Sets every parameter that applies to o.kind (class weights only when given).
// Returns the first failing status; *err gets culoss_last_error() with the parameter named.
inline culoss_status configure(culoss_loss h, const RegionOptions& o, std::string* err = nullptr) {
  culoss_status st = CULOSS_SUCCESS;
  auto fail = [&](const char* what) {
    if (err) *err = std::string(what) + ": " + culoss_last_error();
    return st;
  };
  struct IntP { culoss_param p; int64_t v; const char* name; };
  const IntP ints[] = {
      {CULOSS_PARAM_ACTIVATION, o.activation, "ACTIVATION"},
      {CULOSS_PARAM_CLASS_AXIS, o.class_axis, "CLASS_AXIS"},
      {CULOSS_PARAM_REDUCTION, o.reduction, "REDUCTION"},
      {CULOSS_PARAM_IGNORE_INDEX, o.ignore_index, "IGNORE_INDEX"},
      {CULOSS_PARAM_SQUARED_DENOMINATOR, o.squared ? 1 : 0, "SQUARED_DENOMINATOR"},
      {CULOSS_PARAM_BATCH, o.batch ? 1 : 0, "BATCH"},
      {CULOSS_PARAM_INCLUDE_BACKGROUND, o.include_background ? 1 : 0, "INCLUDE_BACKGROUND"},
      {CULOSS_PARAM_WEIGHT_TYPE, o.weight_type, "WEIGHT_TYPE"},
      {CULOSS_PARAM_SKIP_EMPTY, o.skip_empty ? 1 : 0, "SKIP_EMPTY"},
      {CULOSS_PARAM_AVERAGE, o.average, "AVERAGE"},
      {CULOSS_PARAM_CHECK_TARGETS, o.check_targets ? 1 : 0, "CHECK_TARGETS"},
      {CULOSS_PARAM_CLASS_BALANCE, o.class_balance, "CLASS_BALANCE"},
      {CULOSS_PARAM_SOFT_LABEL, o.soft_label ? 1 : 0, "SOFT_LABEL"},
  };
  for (const IntP& ip : ints) {
    if (!param_applies(o.kind, ip.p)) continue;
    if ((st = culoss_loss_set_int(h, ip.p, ip.v)) != CULOSS_SUCCESS) return fail(ip.name);
  }
  struct FloatP { culoss_param p; double v; const char* name; };
  const FloatP floats[] = {
      {CULOSS_PARAM_SMOOTH_NR, o.smooth_nr, "SMOOTH_NR"},
      {CULOSS_PARAM_SMOOTH_DR, o.smooth_dr, "SMOOTH_DR"},
      {CULOSS_PARAM_ALPHA, o.alpha, "ALPHA"},
      {CULOSS_PARAM_BETA, o.beta, "BETA"},
      {CULOSS_PARAM_GAMMA, o.gamma, "GAMMA"},
      {CULOSS_PARAM_LABEL_SMOOTHING, o.label_smoothing, "LABEL_SMOOTHING"},
      {CULOSS_PARAM_CE_RATIO, o.ce_ratio, "CE_RATIO"},
      {CULOSS_PARAM_TOP_FRACTION, o.top_fraction, "TOP_FRACTION"},
  };
  for (const FloatP& fp : floats) {
    if (!param_applies(o.kind, fp.p)) continue;
    if ((st = culoss_loss_set_float(h, fp.p, fp.v)) != CULOSS_SUCCESS) return fail(fp.name);
  }
  if (!o.class_weights.empty()) {
    st = culoss_loss_set_floats(h, CULOSS_PARAM_CLASS_WEIGHTS, o.class_weights.data(),
                                static_cast<int64_t>(o.class_weights.size()));
    if (st != CULOSS_SUCCESS) return fail("CLASS_WEIGHTS");
  }
  if (!o.pos_weight.empty()) {
    st = culoss_loss_set_floats(h, CULOSS_PARAM_POS_WEIGHT, o.pos_weight.data(),
                                static_cast<int64_t>(o.pos_weight.size()));
    if (st != CULOSS_SUCCESS) return fail("POS_WEIGHT");
  }
  return CULOSS_SUCCESS;
}

// One call: the tensors as plain values plus the options.
struct RegionCase {
  RegionOptions opt;
  std::vector<int64_t> shape;               // input shape
  std::vector<double> input;                // row-major, before rounding to input_dtype
  DLDataType input_dtype = testing_util::f64();
  bool index_target = false;
  std::vector<double> target;               // dense: input's shape
  std::vector<int64_t> labels;              // index: input's shape without the class axis
  DLDataType target_dtype = testing_util::f64();
  std::vector<double> pixel_weight;         // empty: NULL; else float32, shape without class axis
  double grad_scale = 1.0;
};

inline int64_t resolved_axis(const std::vector<int64_t>& shape, int axis) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  return axis < 0 ? axis + nd : axis;
}
inline std::vector<int64_t> without_axis(const std::vector<int64_t>& shape, int axis) {
  std::vector<int64_t> r;
  const int64_t a = resolved_axis(shape, axis);
  for (size_t d = 0; d < shape.size(); ++d)
    if (static_cast<int64_t>(d) != a) r.push_back(shape[d]);
  return r;
}
inline int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
inline int64_t num_classes(const RegionCase& rc) {
  return rc.shape[static_cast<size_t>(resolved_axis(rc.shape, rc.opt.class_axis))];
}

// Shape of loss_out per SEMANTICS.md ({} = one element).
inline std::vector<int64_t> loss_shape(const RegionCase& rc) {
  const RegionOptions& o = rc.opt;
  if (o.reduction != CULOSS_REDUCTION_NONE || o.kind == CULOSS_SUM) return {};
  if (o.kind == CULOSS_BCE || (o.kind == CULOSS_FOCAL && o.activation != CULOSS_ACTIVATION_SOFTMAX))
    return rc.shape;  // per element
  if (o.kind == CULOSS_CROSS_ENTROPY || o.kind == CULOSS_FOCAL || o.kind == CULOSS_MARGINAL_CE)
    return without_axis(rc.shape, o.class_axis);  // per pixel
  const bool pooled = o.kind == CULOSS_GENERALIZED_DICE || o.average == CULOSS_AVERAGE_MICRO;
  const int64_t N = rc.shape[0], C = num_classes(rc);
  if (pooled) return o.batch ? std::vector<int64_t>{} : std::vector<int64_t>{N};
  return o.batch ? std::vector<int64_t>{C} : std::vector<int64_t>{N, C};
}

// Values as the library sees them (rounded to the tensors' dtypes).
inline std::vector<double> rounded(const std::vector<double>& v, DLDataType d) {
  TestTensor t({static_cast<int64_t>(v.size())}, d);
  for (size_t i = 0; i < v.size(); ++i) t.set(static_cast<int64_t>(i), v[i]);
  return t.values();
}
inline std::vector<double> stored_input(const RegionCase& rc) { return rounded(rc.input, rc.input_dtype); }
inline std::vector<double> stored_target(const RegionCase& rc) { return rounded(rc.target, rc.target_dtype); }
inline std::vector<double> stored_pixel_weight(const RegionCase& rc) {
  return rounded(rc.pixel_weight, testing_util::f32());
}

struct RunConfig {
  bool grad = true;              // false: forward only (grad_input = NULL)
  bool grad_f32 = false;         // grad_input in float32 (else the input's dtype)
  bool in_place = false;         // grad_input is the input's own DLTensor
  DLDataType loss_dtype = testing_util::f64();
  bool scalar_as_1d = false;     // one-element loss_out as shape [1] instead of ndim 0
  enum Workspace { kNull, kExact, kShort } workspace = kNull;  // kShort: exact size − 1
};

struct RunResult {
  culoss_status status = CULOSS_ERROR_INTERNAL;
  std::string error;                 // culoss_last_error() (or the failing setter) on failure
  std::vector<double> loss;          // loss_out values
  std::vector<double> grad;          // grad_input values (empty without a gradient)
  std::vector<uint8_t> loss_bytes, grad_bytes;  // raw outputs, for bitwise comparisons
  // After a refusal: whether the outputs still hold their poison and the input its values.
  bool untouched_on_failure = false;
  size_t workspace_bytes = 0;
  bool workspace_guard_ok = true;    // bytes after the caller's workspace untouched
  bool ok() const { return status == CULOSS_SUCCESS; }
};

// Builds the tensors of `rc` and runs culoss_compute once on the CPU with the descriptor `loss`
// as given (rc.opt is only used for the tensor shapes: class axis, and the loss_out shape); reads
// the outputs back.
inline RunResult run_with(culoss_loss loss, const RegionCase& rc, const RunConfig& cfg = RunConfig()) {
  RunResult res;
  TestTensor in(rc.shape, rc.input_dtype);
  for (int64_t i = 0; i < in.numel() && i < static_cast<int64_t>(rc.input.size()); ++i)
    in.set(i, rc.input[static_cast<size_t>(i)]);
  TestTensor tgt;
  if (rc.index_target) {
    tgt = TestTensor(without_axis(rc.shape, rc.opt.class_axis), rc.target_dtype);
    for (int64_t i = 0; i < tgt.numel() && i < static_cast<int64_t>(rc.labels.size()); ++i)
      tgt.set(i, static_cast<double>(rc.labels[static_cast<size_t>(i)]));
    if (rc.target_dtype.code == kDLInt && rc.target_dtype.bits == 64)  // exact for any int64
      for (int64_t i = 0; i < tgt.numel() && i < static_cast<int64_t>(rc.labels.size()); ++i)
        std::memcpy(tgt.bytes.data() + 8 * i, &rc.labels[static_cast<size_t>(i)], 8);
  } else {
    tgt = TestTensor(rc.shape, rc.target_dtype);
    for (int64_t i = 0; i < tgt.numel() && i < static_cast<int64_t>(rc.target.size()); ++i)
      tgt.set(i, rc.target[static_cast<size_t>(i)]);
  }
  TestTensor pw;
  const bool has_pw = !rc.pixel_weight.empty();
  if (has_pw) {
    pw = TestTensor(without_axis(rc.shape, rc.opt.class_axis), testing_util::f32());
    for (int64_t i = 0; i < pw.numel(); ++i) pw.set(i, rc.pixel_weight[static_cast<size_t>(i)]);
  }
  std::vector<int64_t> lshape = loss_shape(rc);
  if (lshape.empty() && cfg.scalar_as_1d) lshape = {1};
  TestTensor out(lshape, cfg.loss_dtype);
  out.poison();
  TestTensor grad;
  DLTensor* grad_dl = nullptr;
  if (cfg.grad && !cfg.in_place) {
    grad = TestTensor(rc.shape, cfg.grad_f32 ? testing_util::f32() : rc.input_dtype);
    grad.poison();
    grad_dl = grad.dl();
  }
  DLTensor* in_dl = in.dl();
  if (cfg.grad && cfg.in_place) grad_dl = in_dl;  // the very same DLTensor

  std::vector<uint8_t> ws;
  void* ws_ptr = nullptr;
  size_t ws_bytes = 0;
  static const uint8_t kGuard = 0xA5;
  const size_t kGuardBytes = 64;
  if (cfg.workspace != RunConfig::kNull) {
    res.status = culoss_workspace_size(loss, in_dl, tgt.dl(), &ws_bytes);
    if (res.status != CULOSS_SUCCESS) {
      res.error = std::string("culoss_workspace_size: ") + culoss_last_error();
      return res;
    }
    res.workspace_bytes = ws_bytes;
    if (cfg.workspace == RunConfig::kShort && ws_bytes > 0) --ws_bytes;
    ws.assign(ws_bytes + kGuardBytes, kGuard);
    ws_ptr = ws.data();
  }
  res.status = culoss_compute(loss, in_dl, tgt.dl(), has_pw ? pw.dl() : nullptr, out.dl(), grad_dl,
                              rc.grad_scale, ws_ptr, ws_bytes, nullptr);
  if (res.status != CULOSS_SUCCESS) {
    res.error = culoss_last_error();
    TestTensor fresh_in(rc.shape, rc.input_dtype), fresh_out(lshape, cfg.loss_dtype);
    for (int64_t i = 0; i < fresh_in.numel() && i < static_cast<int64_t>(rc.input.size()); ++i)
      fresh_in.set(i, rc.input[static_cast<size_t>(i)]);
    fresh_out.poison();
    res.untouched_on_failure = in.bytes == fresh_in.bytes && out.bytes == fresh_out.bytes;
    if (cfg.grad && !cfg.in_place) {
      TestTensor fresh_grad(rc.shape, grad.dtype);
      fresh_grad.poison();
      res.untouched_on_failure = res.untouched_on_failure && grad.bytes == fresh_grad.bytes;
    }
    return res;
  }
  for (size_t i = ws_bytes; i < ws.size(); ++i)
    if (ws[i] != kGuard) res.workspace_guard_ok = false;
  res.loss = out.values();
  res.loss_bytes.assign(out.bytes.begin(), out.bytes.begin() + static_cast<std::ptrdiff_t>(out.numel() * out.elem_size()));
  if (cfg.grad) {
    const TestTensor& g = cfg.in_place ? in : grad;
    res.grad = g.values();
    res.grad_bytes.assign(g.bytes.begin(), g.bytes.begin() + static_cast<std::ptrdiff_t>(g.numel() * g.elem_size()));
  }
  return res;
}

// Builds the descriptor of rc.opt and runs it on the tensors of `rc` (see run_with).
inline RunResult run_region(const RegionCase& rc, const RunConfig& cfg = RunConfig()) {
  RunResult res;
  testing_util::Loss loss(rc.opt.kind);
  if (loss.h == nullptr) {
    res.error = std::string("culoss_loss_create failed: ") + culoss_last_error();
    return res;
  }
  res.status = configure(loss, rc.opt, &res.error);
  if (res.status != CULOSS_SUCCESS) return res;
  return run_with(loss, rc, cfg);
}

inline std::string describe_case(const RegionCase& rc) {
  std::ostringstream os;
  const RegionOptions& o = rc.opt;
  os << "kind=" << o.kind << " shape=(";
  for (size_t i = 0; i < rc.shape.size(); ++i) os << (i ? "," : "") << rc.shape[i];
  os << ") axis=" << o.class_axis << " act=" << o.activation << " red=" << o.reduction
     << " target=" << (rc.index_target ? "index" : "dense") << "(code " << int(rc.target_dtype.code)
     << " bits " << int(rc.target_dtype.bits) << ") ignore=" << o.ignore_index
     << " pw=" << !rc.pixel_weight.empty() << " cw=" << o.class_weights.size()
     << " incl_bg=" << o.include_background << " batch=" << o.batch << " avg=" << o.average
     << " sq=" << o.squared << " skip_empty=" << o.skip_empty << " smooth=(" << o.smooth_nr << ","
     << o.smooth_dr << ") a=" << o.alpha << " b=" << o.beta << " g=" << o.gamma
     << " wt=" << o.weight_type << " check=" << o.check_targets << " scale=" << rc.grad_scale
     << " posw=" << o.pos_weight.size() << " balance=" << o.class_balance
     << " ls=" << o.label_smoothing << " ce_ratio=" << o.ce_ratio << " soft=" << o.soft_label
     << " top=" << o.top_fraction
     << " in_dtype=(" << int(rc.input_dtype.code) << "," << int(rc.input_dtype.bits) << ")";
  return os.str();
}

// The objective the gradient belongs to: the single MEAN/SUM value, or the sum of the NONE outputs.
inline double objective(const RunResult& r) {
  double s = 0;
  for (double v : r.loss) s += v;
  return s;
}

}  // namespace region_test

// Lovász losses (LOVASZ_HINGE, LOVASZ_SOFTMAX) on the CUDA backend, compared with the CPU backend
// through the public API: the same host data (tests/losses/lovasz_harness.hpp) runs once with
// kDLCPU tensors and once with kDLCUDA tensors.
//
// Device outputs start poisoned (0xff bytes = NaN) and sit between guard bytes, so an element the
// library forgets to write, or a write out of bounds, fails the comparison. Every test skips
// without a CUDA device (require_device()).
//
// Sort keys. The CUDA backend sorts float32 error keys (ties by element index), the CPU backend
// double errors; with float32 / float16 / bfloat16 inputs the CUDA backend also computes the
// errors in float32. Items whose errors are that close may come out in another order, which
// changes their own Jacobian weights g (and nothing else: g at a position depends only on the
// counts before it). The comparison therefore
//   * finds, per sorted list, the runs ("clusters") of neighbouring items (in the CPU's order)
//     whose errors are closer than the float precision of the CUDA computation,
//   * skips the exact gradient comparison for those items (softmax: for their whole pixel, as
//     the softmax Jacobian mixes the classes), and
//   * checks instead, where the gradient is d(loss)/d(error) up to a sign (hinge; softmax on
//     probabilities), that the cluster's Σ ±grad agrees: Σ g over a cluster is J(end) − J(start),
//     which no reordering inside the cluster changes.
// Random continuous inputs keep such clusters rare; every comparison also requires that most
// elements were compared exactly.
//
// Seeds are fixed; CULOSS_TEST_SEED adds to every seed.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"
#include "cuda/cuda_tensor.hpp"
#include "losses/lovasz_harness.hpp"
#include "reference/lovasz_reference.hpp"

namespace {

using namespace lovasz_test;
using testing_util::CudaStream;
using testing_util::CudaTensor;

constexpr culoss_kind kHinge = CULOSS_LOVASZ_HINGE;
constexpr culoss_kind kSoftmax = CULOSS_LOVASZ_SOFTMAX;

bool is_f64(DLDataType d) { return d.code == kDLFloat && d.bits == 64; }

// ---------------------------------------------------------------------------------------------
// A CUDA run
// ---------------------------------------------------------------------------------------------

enum class Ws { Null, Exact, ExactMisaligned, Short };

struct GpuOpts {
  bool host_loss_out = false;
  uint64_t offset = 0;  // byte_offset of every tensor
  Ws ws = Ws::Null;
  bool in_place = false;
  bool with_grad = true;
  cudaStream_t stream = nullptr;
  int check_targets = -1;  // -1: the default
};

struct GpuRun {
  culoss_status status = CULOSS_ERROR_INTERNAL;
  std::string error;
  TestTensor loss, grad;
  bool guards_ok = true;
  bool host_loss_ready = true;  // a host loss_out held its value when the call returned
  bool other_loss_untouched = true;  // the loss_out not passed (host or device) stayed poisoned
  size_t ws_bytes = 0;
};

GpuRun run_gpu(const LData& d, const GpuOpts& o = GpuOpts{}) {
  GpuRun r;
  Loss h(d.c.kind);
  {
    const ::testing::AssertionResult ok = configure(h, d);
    EXPECT_TRUE(ok);
    if (!ok) return r;
  }
  if (o.check_targets >= 0) {
    EXPECT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_CHECK_TARGETS, o.check_targets));
  }
  CudaTensor din(d.input, o.offset), dtg(d.target, o.offset);
  std::unique_ptr<CudaTensor> dw;
  if (d.has_weight) dw = std::make_unique<CudaTensor>(d.weight, o.offset);
  CudaTensor dloss(d.loss_shape, d.c.loss_dtype, o.offset), dgrad(d.c.shape, grad_dtype(d.c), o.offset);
  dloss.poison();
  dgrad.poison();
  TestTensor hloss(d.loss_shape, d.c.loss_dtype);
  hloss.poison();

  std::unique_ptr<CudaTensor> wsbuf;
  void* wsp = nullptr;
  size_t wsn = 0;
  if (o.ws != Ws::Null) {
    EXPECT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, din.dl(), dtg.dl(), &r.ws_bytes)) << culoss_last_error();
    const size_t bytes = o.ws == Ws::Short ? (r.ws_bytes > 0 ? r.ws_bytes - 1 : 0) : r.ws_bytes;
    wsbuf = std::make_unique<CudaTensor>(std::vector<int64_t>{static_cast<int64_t>(bytes)}, testing_util::u8(),
                                         o.ws == Ws::ExactMisaligned ? 3 : 0);
    wsp = wsbuf->data_ptr();
    wsn = bytes;
  }
  CUDA_EXPECT_OK(cudaDeviceSynchronize());
  DLTensor* grad_dl = nullptr;
  if (o.with_grad) grad_dl = o.in_place ? din.dl() : dgrad.dl();
  r.status = culoss_compute(h, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, o.host_loss_out ? hloss.dl() : dloss.dl(),
                            grad_dl, d.c.grad_scale, wsp, wsn, o.stream);
  r.error = culoss_last_error();
  const TestTensor hloss_at_return = hloss;
  CUDA_EXPECT_OK(cudaGetLastError());
  CUDA_EXPECT_OK(cudaDeviceSynchronize());
  TestTensor dl = dloss.download();
  if (o.host_loss_out) {
    r.loss = hloss;
    r.host_loss_ready = hloss_at_return.bytes == hloss.bytes;
    r.other_loss_untouched = still_poisoned(dl);
  } else {
    r.loss = dl;
    r.other_loss_untouched = still_poisoned(hloss);
  }
  r.grad = o.in_place ? din.download() : dgrad.download();
  r.guards_ok = din.guards_intact() && dtg.guards_intact() && (!dw || dw->guards_intact()) &&
                dloss.guards_intact() && dgrad.guards_intact() && (!wsbuf || wsbuf->guards_intact());
  return r;
}

// ---------------------------------------------------------------------------------------------
// Tolerances and the tie-aware comparison
// ---------------------------------------------------------------------------------------------

double ulp_of(DLDataType d, double x) {
  int mant = 52, emin = -1022;
  if (d.code == kDLBfloat) { mant = 7; emin = -126; }
  else if (d.bits == 16) { mant = 10; emin = -14; }
  else if (d.bits == 32) { mant = 23; emin = -126; }
  x = std::fabs(x);
  int e = (x > 0.0 && std::isfinite(x)) ? std::ilogb(x) : emin;
  e = std::max(e, emin);
  return std::ldexp(1.0, e - mant);
}
double ulp_f32(double x) { return ulp_of(f32(), x); }

struct GTol {
  double rel = 0, abs_frac = 0, ulps = 0;
  DLDataType fmt = f64();
  double limit(double want, double maxabs) const {
    return rel * std::fabs(want) + abs_frac * maxabs + ulps * ulp_of(fmt, want) + 1e-300;
  }
};

GTol value_tol(const LCase& c) {
  GTol t;
  t.fmt = c.loss_dtype;
  t.ulps = 2;
  if (is_f64(c.in)) {
    t.rel = 1e-6;  // float32 sort keys: items closer than a float ulp may swap
    t.abs_frac = 1e-7;
  } else {
    t.rel = 1e-5;
    t.abs_frac = 2e-6;
  }
  return t;
}

GTol grad_tol(const LCase& c) {
  GTol t;
  const DLDataType g = grad_dtype(c);
  t.fmt = g;
  if (is_f64(c.in)) {
    t.rel = 1e-9;
    t.abs_frac = 1e-10;
    t.ulps = is_f64(g) ? 0 : 2;
  } else {
    t.rel = 2e-5;
    t.abs_frac = 2e-6;
    t.ulps = g.bits == 16 ? 3 : 4;
  }
  return t;
}

struct Ambiguity {
  std::vector<char> skip;                      // per element: no exact comparison
  std::vector<std::vector<int64_t>> clusters;  // element indices, CPU order
  int64_t items = 0, ambiguous_items = 0;
};

// Equal errors are ties on both backends (broken by element index on both) when they come out
// equal on both: always for the hinge (e = 1 − x·s in double, or rounded from it in float), for
// float64 inputs (equal doubles give equal float keys), and for probabilities; through a float32
// softmax only when the pixels are identical, or when the error is exactly 0 or 1 (saturated, which
// float32 reaches first). Other equal errors are ambiguous unless exact_ties says otherwise.
Ambiguity find_ambiguity(const LData& d, const lovasz_ref::Result& ref, bool exact_ties) {
  const bool hinge = d.c.kind == kHinge;
  const bool f64_in = is_f64(d.c.in);
  const bool float_softmax = !hinge && !f64_in && d.c.activation == CULOSS_ACTIVATION_SOFTMAX;
  auto same_pixel_values = [&](int64_t ea, int64_t eb) {
    const lovasz_ref::Item& a = ref.items[static_cast<size_t>(ea)];
    const lovasz_ref::Item& b = ref.items[static_cast<size_t>(eb)];
    const int64_t na = a.pixel / d.P, qa = a.pixel % d.P, nb = b.pixel / d.P, qb = b.pixel % d.P;
    for (int64_t k = 0; k < d.C; ++k)
      if (d.input.get(d.element(na, qa, k)) != d.input.get(d.element(nb, qb, k))) return false;
    return true;
  };
  const int64_t numel = d.input.numel();
  Ambiguity a;
  a.skip.assign(static_cast<size_t>(numel), 0);
  struct It {
    double e, p;
    int64_t el;
  };
  std::vector<std::vector<It>> lists(static_cast<size_t>(d.problems() * d.C));
  for (int64_t el = 0; el < numel; ++el) {
    const lovasz_ref::Item& it = ref.items[static_cast<size_t>(el)];
    if (!it.counted) continue;
    lists[static_cast<size_t>(it.list)].push_back(
        It{static_cast<double>(it.e), std::fabs(static_cast<double>(it.p)), el});
  }
  for (auto& v : lists) {
    a.items += static_cast<int64_t>(v.size());
    std::sort(v.begin(), v.end(), [](const It& x, const It& y) { return x.e != y.e ? x.e > y.e : x.el < y.el; });
    std::vector<int64_t> cur;
    for (size_t k = 0; k < v.size(); ++k) {
      bool link = false;
      if (k + 1 < v.size()) {
        const It& x = v[k];
        const It& y = v[k + 1];
        const double emax = std::max(std::fabs(x.e), std::fabs(y.e));
        double thr;
        if (f64_in || hinge) thr = 1.5 * ulp_f32(emax);  // float keys (and float hinge errors)
        else thr = std::ldexp(24.0 * std::max(x.p, y.p), -23) + 2.0 * ulp_f32(emax) + 1e-37;  // float softmax
        const double gap = std::fabs(x.e - y.e);
        if (gap > 0.0) link = gap <= thr;
        else link = float_softmax && !exact_ties && x.e != 0.0 && x.e != 1.0 && !same_pixel_values(x.el, y.el);
      }
      cur.push_back(v[k].el);
      if (!link) {
        if (cur.size() > 1) {
          a.clusters.push_back(cur);
          for (int64_t el : cur) a.skip[static_cast<size_t>(el)] = 1;
          a.ambiguous_items += static_cast<int64_t>(cur.size());
        }
        cur.clear();
      }
    }
  }
  // Through the softmax every class of a pixel shares the gradient of the others.
  if (!hinge && d.c.activation == CULOSS_ACTIVATION_SOFTMAX) {
    for (int64_t n = 0; n < d.N; ++n)
      for (int64_t q = 0; q < d.P; ++q) {
        bool any = false;
        for (int64_t k = 0; k < d.C; ++k) any = any || a.skip[static_cast<size_t>(d.element(n, q, k))];
        if (any)
          for (int64_t k = 0; k < d.C; ++k) a.skip[static_cast<size_t>(d.element(n, q, k))] = 1;
      }
  }
  return a;
}

struct CompareOpts {
  bool exact_ties = false;
  double min_compared = 0.5;  // fraction of the gradient elements compared exactly
  bool with_grad = true;
};

::testing::AssertionResult matches_cpu(const LData& d, const LRun& cpu, const GpuRun& gpu,
                                       const CompareOpts& co = CompareOpts{}) {
  std::ostringstream os;
  os << std::setprecision(17);
  if (cpu.status != CULOSS_SUCCESS)
    return ::testing::AssertionFailure() << "CPU backend: " << culoss_status_string(cpu.status) << ": " << cpu.error;
  if (gpu.status != CULOSS_SUCCESS)
    return ::testing::AssertionFailure() << "CUDA backend: " << culoss_status_string(gpu.status) << ": " << gpu.error;
  if (!gpu.guards_ok) return ::testing::AssertionFailure() << "a write outside a tensor (guard bytes changed)";
  if (!gpu.host_loss_ready) return ::testing::AssertionFailure() << "host loss_out changed after the call returned";
  if (!gpu.other_loss_untouched) return ::testing::AssertionFailure() << "the loss_out not passed was written";

  // Values.
  const GTol vt = value_tol(d.c);
  double vmax = 0.0;
  for (int64_t i = 0; i < cpu.loss.numel(); ++i) vmax = std::max(vmax, std::fabs(cpu.loss.get(i)));
  int64_t bad = 0;
  for (int64_t i = 0; i < cpu.loss.numel(); ++i) {
    const double w = cpu.loss.get(i), g = gpu.loss.get(i);
    const double lim = vt.limit(w, vmax);
    if (!(std::isfinite(g) && std::fabs(g - w) <= lim)) {
      if (bad < 8) os << "\n  loss[" << i << "] cpu " << w << " cuda " << g << " |diff| " << std::fabs(g - w) << " > " << lim;
      ++bad;
    }
  }
  if (bad) return ::testing::AssertionFailure() << bad << " of " << cpu.loss.numel() << " loss values differ" << os.str();
  if (!co.with_grad) {
    if (!still_poisoned(gpu.grad)) return ::testing::AssertionFailure() << "forward-only call wrote the gradient buffer";
    return ::testing::AssertionSuccess();
  }

  // Gradient: exact where the order is certain.
  const lovasz_ref::Result ref = lovasz_ref::reference(d.spec);
  const Ambiguity amb = find_ambiguity(d, ref, co.exact_ties);
  const GTol gt = grad_tol(d.c);
  const int64_t numel = cpu.grad.numel();
  double gmax = 0.0;
  for (int64_t i = 0; i < numel; ++i) gmax = std::max(gmax, std::fabs(cpu.grad.get(i)));
  int64_t compared = 0;
  for (int64_t i = 0; i < numel; ++i) {
    const double w = cpu.grad.get(i), g = gpu.grad.get(i);
    if (!std::isfinite(g)) {  // every element is written, also the skipped ones
      if (bad < 8) os << "\n  grad[" << i << "] not finite: " << g;
      ++bad;
      continue;
    }
    if (amb.skip[static_cast<size_t>(i)]) continue;
    ++compared;
    const double lim = gt.limit(w, gmax);
    if (!(std::fabs(g - w) <= lim)) {
      if (bad < 8) os << "\n  grad[" << i << "] cpu " << w << " cuda " << g << " |diff| " << std::fabs(g - w) << " > " << lim;
      ++bad;
    }
  }
  // Clusters: Σ ±grad is order independent where the gradient is ±d(loss)/d(error).
  const bool hinge = d.c.kind == kHinge;
  const bool by_error = hinge || d.c.activation == CULOSS_ACTIVATION_NONE;
  int64_t clusters_checked = 0;
  if (by_error) {
    for (const auto& cl : amb.clusters) {
      bool pos = false, nonpos = false;
      double sc = 0.0, sg = 0.0, lim = 0.0;
      for (int64_t el : cl) {
        const lovasz_ref::Item& it = ref.items[static_cast<size_t>(el)];
        (it.e > 0 ? pos : nonpos) = true;
        const double sign = hinge ? (it.fg ? -1.0 : 1.0) : (it.fg ? -1.0 : 1.0);
        sc += sign * cpu.grad.get(el);
        sg += sign * gpu.grad.get(el);
        lim += gt.limit(cpu.grad.get(el), gmax);
      }
      if (hinge && pos && nonpos) continue;  // straddles the hinge's kink
      ++clusters_checked;
      if (!(std::fabs(sc - sg) <= lim)) {
        if (bad < 8) os << "\n  cluster of " << cl.size() << " items from element " << cl[0] << ": Σ±grad cpu " << sc
                        << " cuda " << sg << " |diff| " << std::fabs(sc - sg) << " > " << lim;
        ++bad;
      }
    }
  }
  if (bad)
    return ::testing::AssertionFailure() << bad << " gradient checks failed (" << compared << " of " << numel
                                         << " elements compared exactly, " << amb.clusters.size()
                                         << " near-tie clusters)" << os.str();
  if (numel > 0 && static_cast<double>(compared) < co.min_compared * static_cast<double>(numel))
    return ::testing::AssertionFailure() << "only " << compared << " of " << numel
                                         << " gradient elements could be compared exactly (" << amb.ambiguous_items
                                         << " of " << amb.items << " items in near-tie clusters)";
  return ::testing::AssertionSuccess();
}

// Runs the case on both backends and compares.
::testing::AssertionResult cuda_matches_cpu(const LData& d, const GpuOpts& o = GpuOpts{},
                                            const CompareOpts& co = CompareOpts{}) {
  CpuRunOptions co_cpu;
  co_cpu.with_grad = o.with_grad;
  const LRun cpu = run_cpu(d, co_cpu);
  const GpuRun gpu = run_gpu(d, o);
  CompareOpts c2 = co;
  c2.with_grad = o.with_grad;
  const ::testing::AssertionResult r = matches_cpu(d, cpu, gpu, c2);
  if (!r) return ::testing::AssertionFailure() << r.message() << "\n  case: " << describe(d.c);
  return r;
}

::testing::AssertionResult same_bits(const char* what, const TestTensor& a, const TestTensor& b) {
  return same_bytes(what, a, b);
}

// ---------------------------------------------------------------------------------------------
// Case lists (parameterized)
// ---------------------------------------------------------------------------------------------

struct Named {
  std::string name;
  LCase c;
  bool host_loss_out = false;
  double min_compared = 0.5;
};
void PrintTo(const Named& n, std::ostream* os) { *os << n.name; }

Named named(const std::string& tag, LCase c, bool host = false, double min_compared = 0.5) {
  c = normalized(c);
  std::ostringstream os;
  os << tag << "_" << (c.kind == kHinge ? "hinge" : "softmax") << "_" << dtype_name(c.in) << "_g"
     << dtype_name(grad_dtype(c)) << "_" << tgt_name(c.tgt) << "_" << red_name(c.reduction)
     << (c.per_image ? "_perimage" : "_pooled");
  std::string s = os.str();
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return Named{s, c, host, min_compared};
}

// float16 gradients of many items are far below float16's normal range: scale them up (exact).
LCase scaled_for_half(LCase c) {
  const DLDataType g = grad_dtype(c);
  if (g.bits == 16) {
    int64_t numel = 1;
    for (int64_t v : c.shape) numel *= v;
    c.grad_scale *= std::ldexp(1.0, static_cast<int>(std::min(20.0, std::round(std::log2(std::max(1.0, numel / 8.0))))));
  }
  return c;
}

// Both kinds × every input dtype × both gradient dtypes × per-image / pooled × CLASSES, rotating
// layouts, targets, activation and reduction.
std::vector<Named> dtype_sweep() {
  std::vector<Named> v;
  const Tgt tgts[] = {Tgt::IdxI64, Tgt::DenseF32, Tgt::IdxU8, Tgt::DenseU8, Tgt::IdxI32, Tgt::DenseIn};
  int r = 0;
  for (culoss_kind k : {kHinge, kSoftmax})
    for (DLDataType in : {f32(), f64(), f16(), bf16()})
      for (int gf = 0; gf < 2; ++gf)
        for (int per_image = 0; per_image < 2; ++per_image, ++r) {
          LCase c;
          c.kind = k;
          c.in = in;
          c.grad_f32 = gf == 1;
          c.per_image = per_image;
          c.shape = {2, 4, 24, 20};
          if (r % 3 == 1) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; }
          if (r % 3 == 2) c.shape = {2, 3, 6, 8, 10};
          c.tgt = tgts[r % 6];
          if (k == kHinge && r % 4 == 0) {  // a binary mask with index labels
            c.shape[static_cast<size_t>(resolved_axis(c))] = 1;
            c.tgt = r % 8 == 0 ? Tgt::IdxU8 : Tgt::IdxI64;
          }
          c.classes = (r / 2) % 2 ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
          c.activation = r % 5 == 3 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
          c.reduction = r % 7 == 5 ? CULOSS_REDUCTION_NONE : r % 7 == 6 ? CULOSS_REDUCTION_SUM : CULOSS_REDUCTION_MEAN;
          c.pixel_weight = r % 4 == 1;
          c.seed = 100 + static_cast<uint64_t>(r);
          v.push_back(named("D" + std::to_string(r), scaled_for_half(c), r % 5 == 2));
        }
  return v;
}

// One option at a time, for both kinds.
std::vector<Named> option_sweep() {
  std::vector<Named> v;
  int r = 0;
  for (culoss_kind k : {kHinge, kSoftmax}) {
    auto add = [&](const std::string& tag, auto mutate) {
      LCase c;
      c.kind = k;
      c.shape = {2, 4, 24, 20};
      c.tgt = Tgt::DenseF32;
      c.in = f32();
      c.seed = 1000 + static_cast<uint64_t>(r);
      bool host = false;
      mutate(c, host);
      v.push_back(named("O" + std::to_string(r++) + "_" + tag, scaled_for_half(c), host));
    };
    add("base", [](LCase&, bool&) {});
    add("f64", [](LCase& c, bool&) { c.in = f64(); });
    add("perImage", [](LCase& c, bool&) { c.per_image = 1; });
    add("classesAll", [](LCase& c, bool&) { c.classes = CULOSS_CLASSES_ALL; });
    add("classesAllPerImage", [](LCase& c, bool&) { c.classes = CULOSS_CLASSES_ALL; c.per_image = 1; });
    add("actNone", [](LCase& c, bool&) { c.activation = CULOSS_ACTIVATION_NONE; });
    add("actNoneF64", [](LCase& c, bool&) { c.activation = CULOSS_ACTIVATION_NONE; c.in = f64(); });
    add("idxI64", [](LCase& c, bool&) { c.tgt = Tgt::IdxI64; c.shape[1] = c.kind == CULOSS_LOVASZ_HINGE ? 1 : 4; });
    add("idxI32", [](LCase& c, bool&) { c.tgt = Tgt::IdxI32; c.shape[1] = c.kind == CULOSS_LOVASZ_HINGE ? 1 : 4; });
    add("idxU8", [](LCase& c, bool&) { c.tgt = Tgt::IdxU8; c.shape[1] = c.kind == CULOSS_LOVASZ_HINGE ? 1 : 4; });
    add("ignoreIndexCustom", [](LCase& c, bool&) { c.tgt = Tgt::IdxI32; c.ignore_index = -1; c.ignore_frac = 0.3; c.shape[1] = c.kind == CULOSS_LOVASZ_HINGE ? 1 : 4; });
    add("ignoreIndexIsAClass", [](LCase& c, bool&) { c.tgt = Tgt::IdxI64; c.ignore_index = 0; c.shape[1] = c.kind == CULOSS_LOVASZ_HINGE ? 1 : 4; });
    add("denseU8", [](LCase& c, bool&) { c.tgt = Tgt::DenseU8; });
    add("denseF64", [](LCase& c, bool&) { c.tgt = Tgt::DenseF64; c.soft_frac = 0.5; });
    add("denseBf16", [](LCase& c, bool&) { c.in = bf16(); c.tgt = Tgt::DenseIn; });
    add("pixelWeight", [](LCase& c, bool&) { c.pixel_weight = true; });
    add("noIgnored", [](LCase& c, bool&) { c.ignore_frac = 0.0; });
    add("mostlyIgnored", [](LCase& c, bool&) { c.ignore_frac = 0.9; });
    add("allIgnored", [](LCase& c, bool&) { c.ignore_frac = 1.0; });
    add("allIgnoredPerImageNone", [](LCase& c, bool&) { c.ignore_frac = 1.0; c.per_image = 1; c.reduction = CULOSS_REDUCTION_NONE; });
    add("noAbsentClass", [](LCase& c, bool&) { c.absent_class = false; });
    add("sum", [](LCase& c, bool&) { c.reduction = CULOSS_REDUCTION_SUM; });
    add("none", [](LCase& c, bool&) { c.reduction = CULOSS_REDUCTION_NONE; });
    add("nonePerImage", [](LCase& c, bool&) { c.reduction = CULOSS_REDUCTION_NONE; c.per_image = 1; });
    add("nonePerImageHost", [](LCase& c, bool& h) { c.reduction = CULOSS_REDUCTION_NONE; c.per_image = 1; h = true; });
    add("sumPerImageAll", [](LCase& c, bool&) { c.reduction = CULOSS_REDUCTION_SUM; c.per_image = 1; c.classes = CULOSS_CLASSES_ALL; });
    add("hostLossOut", [](LCase&, bool& h) { h = true; });
    add("hostLossOutF32", [](LCase& c, bool& h) { h = true; c.loss_dtype = f32(); });
    add("lossF32", [](LCase& c, bool&) { c.loss_dtype = f32(); });
    add("loss1d", [](LCase& c, bool&) { c.loss_1d = true; });
    add("gradScaleNeg", [](LCase& c, bool&) { c.grad_scale = -2.5; });
    add("gradScaleZero", [](LCase& c, bool&) { c.grad_scale = 0.0; });
    add("gradF32", [](LCase& c, bool&) { c.grad_f32 = true; c.in = f16(); });
    add("saturated", [](LCase& c, bool&) { c.logit_scale = 40.0; });
    add("NHWC", [](LCase& c, bool&) { c.shape = {2, 20, 24, 4}; c.class_axis = -1; });
    add("NHWCidx", [](LCase& c, bool&) { c.shape = {2, 20, 24, c.kind == CULOSS_LOVASZ_HINGE ? 1 : 4}; c.class_axis = -1; c.tgt = Tgt::IdxI64; });
    add("NCDHW", [](LCase& c, bool&) { c.shape = {2, 3, 6, 8, 10}; });
    add("NDHWC", [](LCase& c, bool&) { c.shape = {2, 4, 5, 6, 3}; c.class_axis = -1; c.pixel_weight = true; });
    add("NC", [](LCase& c, bool&) { c.shape = {300, 5}; });
    add("NCperImage", [](LCase& c, bool&) { c.shape = {300, 5}; c.per_image = 1; c.reduction = CULOSS_REDUCTION_NONE; });
    add("axis2", [](LCase& c, bool&) { c.shape = {2, 3, 4, 10}; c.class_axis = 2; c.pixel_weight = true; });
    add("onePixel", [](LCase& c, bool&) { c.shape = {1, 3, 1, 1}; c.ignore_frac = 0.0; });
    add("onePixelNC", [](LCase& c, bool&) { c.shape = {1, 4}; c.ignore_frac = 0.0; c.reduction = CULOSS_REDUCTION_NONE; });
    add("oneClass", [](LCase& c, bool&) { c.shape = {2, 1, 9, 7}; });
    add("twoClassesPerImage", [](LCase& c, bool&) { c.shape = {3, 2, 9, 7}; c.per_image = 1; });
    add("manyClasses", [](LCase& c, bool&) { c.shape = {2, 33, 9, 7}; c.tgt = Tgt::IdxI64; if (c.kind == CULOSS_LOVASZ_HINGE) c.tgt = Tgt::DenseU8; });
    add("manyImagesPerImage", [](LCase& c, bool&) { c.shape = {300, 2, 3, 2}; c.per_image = 1; c.reduction = CULOSS_REDUCTION_NONE; });
    add("emptyBatch", [](LCase& c, bool&) { c.shape = {0, 4, 5, 5}; });
    add("emptyBatchNone", [](LCase& c, bool&) { c.shape = {0, 4, 5, 5}; c.reduction = CULOSS_REDUCTION_NONE; c.per_image = 1; });
    add("emptySpatial", [](LCase& c, bool&) { c.shape = {2, 4, 0, 5}; c.reduction = CULOSS_REDUCTION_NONE; });
  }
  // Saturated softmax pixels all have errors near 0 or 1 (one big near-tie cluster each): their
  // gradients are ~0 on both backends, and few elements are left for the exact comparison.
  for (Named& n : v)
    if (n.name.find("saturated") != std::string::npos) n.min_compared = 0.0;
  return v;
}

// Shapes from one pixel to several 8192-item chunks per sorted list.
std::vector<Named> shape_sweep() {
  std::vector<Named> v;
  int r = 0;
  auto add = [&](culoss_kind k, std::vector<int64_t> shape, DLDataType in, int per_image, int act, double min_cmp) {
    LCase c;
    c.kind = k;
    c.shape = std::move(shape);
    c.in = in;
    c.per_image = per_image;
    c.activation = act;
    c.tgt = k == kHinge ? Tgt::DenseU8 : Tgt::IdxU8;
    c.pixel_weight = r % 2 == 1;
    c.classes = r % 3 == 1 ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
    c.reduction = r % 4 == 3 ? CULOSS_REDUCTION_NONE : CULOSS_REDUCTION_MEAN;
    c.seed = 3000 + static_cast<uint64_t>(r);
    v.push_back(named("S" + std::to_string(r++), scaled_for_half(c), false, min_cmp));
  };
  const int SM = CULOSS_ACTIVATION_SOFTMAX, NO = CULOSS_ACTIVATION_NONE;
  for (DLDataType in : {f32(), f64(), bf16()}) {
    add(kHinge, {2, 4, 300, 300}, in, 0, SM, 0.8);  // 180000 items per list: 22 chunks
    add(kHinge, {2, 4, 300, 300}, in, 1, SM, 0.8);
  }
  add(kHinge, {1, 1, 8192}, f32(), 0, SM, 0.8);    // exactly one chunk
  add(kHinge, {1, 1, 8193}, f32(), 0, SM, 0.8);    // one item into the second
  add(kHinge, {3, 1, 8191}, f32(), 0, SM, 0.8);    // pooled 24573
  add(kSoftmax, {2, 4, 300, 300}, f64(), 0, SM, 0.5);
  add(kSoftmax, {2, 4, 300, 300}, f64(), 1, NO, 0.5);
  add(kSoftmax, {2, 4, 96, 96}, f32(), 0, SM, 0.25);  // 18432 items per list
  add(kSoftmax, {2, 4, 96, 96}, f16(), 0, NO, 0.25);
  add(kSoftmax, {2, 4, 96, 96}, bf16(), 0, SM, 0.25);
  add(kSoftmax, {4, 19, 64, 64}, f32(), 1, SM, 0.25);  // 4096 items per list, 19 classes
  add(kSoftmax, {4, 19, 64, 64}, bf16(), 1, SM, 0.25);
  add(kSoftmax, {4, 19, 64, 64}, f64(), 0, SM, 0.5);
  add(kSoftmax, {2, 64, 64, 19}, f32(), 1, SM, 0.25);  // channels-last
  v.back().c.class_axis = -1;
  add(kSoftmax, {2, 3, 16, 16, 16}, f32(), 0, SM, 0.25);
  add(kHinge, {2, 3, 16, 16, 16}, f16(), 1, SM, 0.8);
  return v;
}

std::vector<Named> random_sweep() {
  std::vector<Named> v;
  std::mt19937_64 rng(77 + seed_base());
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const DLDataType dts[] = {f32(), f64(), f16(), bf16()};
  const Tgt tgts[] = {Tgt::DenseF64, Tgt::DenseF32, Tgt::DenseU8, Tgt::DenseIn, Tgt::IdxU8, Tgt::IdxI32, Tgt::IdxI64};
  for (int r = 0; r < 40; ++r) {
    LCase c;
    c.kind = pick(2) ? kHinge : kSoftmax;
    const int64_t N = 1 + pick(4), C = c.kind == kHinge && pick(3) == 0 ? 1 : 1 + pick(6);
    const int64_t H = 1 + pick(40), W = 1 + pick(40);
    switch (pick(4)) {
      case 0: c.shape = {N, C, H, W}; break;
      case 1: c.shape = {N, H, W, C}; c.class_axis = -1; break;
      case 2: c.shape = {N * 50 + pick(100), C}; break;
      default: c.shape = {N, C, 1 + pick(8), H / 4 + 1, W / 4 + 1}; break;
    }
    c.in = dts[pick(4)];
    c.grad_f32 = pick(3) == 0;
    c.tgt = tgts[pick(7)];
    c.per_image = pick(2);
    c.classes = pick(2) ? CULOSS_CLASSES_ALL : CULOSS_CLASSES_PRESENT;
    c.activation = pick(3) == 0 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
    // A softmax over one class is refused: probabilities (index labels a 0/1 mask).
    if (c.kind == kSoftmax && C == 1) c.activation = CULOSS_ACTIVATION_NONE;
    c.reduction = pick(3);
    c.ignore_frac = pick(3) == 0 ? 0.0 : 0.15;
    c.pixel_weight = pick(3) == 0;
    c.grad_scale = pick(2) ? 1.0 : -0.75;
    c.loss_dtype = pick(4) == 0 ? f32() : f64();
    c.loss_1d = pick(2);
    c.seed = 5000 + static_cast<uint64_t>(r);
    v.push_back(named("R" + std::to_string(r), scaled_for_half(c), pick(4) == 0, 0.3));
  }
  return v;
}

class LovaszCudaVsCpu : public ::testing::TestWithParam<Named> {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

TEST_P(LovaszCudaVsCpu, MatchesCpuBackend) {
  const Named& n = GetParam();
  const LData d = make_data(n.c);
  GpuOpts o;
  o.host_loss_out = n.host_loss_out;
  CompareOpts co;
  co.min_compared = n.min_compared;
  EXPECT_TRUE(cuda_matches_cpu(d, o, co));
}

std::string case_name(const ::testing::TestParamInfo<Named>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Dtypes, LovaszCudaVsCpu, ::testing::ValuesIn(dtype_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Options, LovaszCudaVsCpu, ::testing::ValuesIn(option_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Shapes, LovaszCudaVsCpu, ::testing::ValuesIn(shape_sweep()), case_name);
INSTANTIATE_TEST_SUITE_P(Random, LovaszCudaVsCpu, ::testing::ValuesIn(random_sweep()), case_name);

// ---------------------------------------------------------------------------------------------
// Call plumbing and edge cases
// ---------------------------------------------------------------------------------------------

class LovaszCuda : public ::testing::Test {
 protected:
  void SetUp() override { testing_util::require_device(); }
};

std::vector<LCase> plumbing_cases() {
  std::vector<LCase> v;
  LCase a;
  a.kind = kHinge;
  a.shape = {2, 4, 300, 300};
  a.in = f32();
  a.tgt = Tgt::DenseU8;
  a.pixel_weight = true;
  a.seed = 20001;
  v.push_back(a);
  LCase b;
  b.kind = kSoftmax;
  b.shape = {2, 4, 96, 96};
  b.in = bf16();
  b.tgt = Tgt::IdxU8;
  b.per_image = 1;
  b.reduction = CULOSS_REDUCTION_NONE;
  b.seed = 20002;
  v.push_back(scaled_for_half(b));
  LCase c;
  c.kind = kSoftmax;
  c.shape = {2, 40, 30, 5};
  c.class_axis = -1;
  c.in = f64();
  c.activation = CULOSS_ACTIVATION_NONE;
  c.tgt = Tgt::DenseF32;
  c.classes = CULOSS_CLASSES_ALL;
  c.seed = 20003;
  v.push_back(c);
  LCase e;
  e.kind = kHinge;
  e.shape = {3, 1, 33, 17};
  e.in = f16();
  e.tgt = Tgt::IdxI64;
  e.per_image = 1;
  e.reduction = CULOSS_REDUCTION_SUM;
  e.seed = 20004;
  v.push_back(scaled_for_half(e));
  return v;
}

TEST_F(LovaszCuda, LossOutOnDeviceAndOnHostGiveTheSameBits) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    SCOPED_TRACE(describe(d.c));
    const GpuRun dev = run_gpu(d);
    GpuOpts o;
    o.host_loss_out = true;
    const GpuRun host = run_gpu(d, o);
    ASSERT_EQ(CULOSS_SUCCESS, dev.status) << dev.error;
    ASSERT_EQ(CULOSS_SUCCESS, host.status) << host.error;
    EXPECT_TRUE(host.host_loss_ready);
    EXPECT_TRUE(host.other_loss_untouched);
    EXPECT_TRUE(same_bits("loss", dev.loss, host.loss));
    EXPECT_TRUE(same_bits("grad", dev.grad, host.grad));
  }
}

TEST_F(LovaszCuda, CallerWorkspaceGivesTheSameBitsAsLibraryAllocation) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    SCOPED_TRACE(describe(d.c));
    const GpuRun null_ws = run_gpu(d);
    ASSERT_EQ(CULOSS_SUCCESS, null_ws.status) << null_ws.error;
    for (Ws ws : {Ws::Exact, Ws::ExactMisaligned}) {
      GpuOpts o;
      o.ws = ws;
      const GpuRun r = run_gpu(d, o);
      ASSERT_EQ(CULOSS_SUCCESS, r.status) << r.error;
      EXPECT_GT(r.ws_bytes, 0u);
      EXPECT_TRUE(r.guards_ok) << "a write outside the workspace or a tensor";
      EXPECT_TRUE(same_bits("loss", null_ws.loss, r.loss));
      EXPECT_TRUE(same_bits("grad", null_ws.grad, r.grad));
    }
  }
}

TEST_F(LovaszCuda, InsufficientWorkspaceIsRefusedAndWritesNothing) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    SCOPED_TRACE(describe(d.c));
    GpuOpts o;
    o.ws = Ws::Short;
    const GpuRun r = run_gpu(d, o);
    EXPECT_EQ(CULOSS_ERROR_INSUFFICIENT_WORKSPACE, r.status) << r.error;
    EXPECT_TRUE(still_poisoned(r.loss));
    EXPECT_TRUE(still_poisoned(r.grad));
  }
}

// The workspace size depends on the shapes and the descriptor only: the same for repeated
// queries, and the same for loss_out on the host (it is not an argument of the query).
TEST_F(LovaszCuda, WorkspaceSizeIsStable) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    Loss h(d.c.kind);
    ASSERT_TRUE(configure(h, d));
    CudaTensor din(d.input), dtg(d.target);
    size_t a = 0, b = 0;
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, din.dl(), dtg.dl(), &a)) << culoss_last_error();
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, din.dl(), dtg.dl(), &b)) << culoss_last_error();
    EXPECT_EQ(a, b);
    EXPECT_GE(a, static_cast<size_t>(d.input.numel()) * 16u) << "sort keys and values live in the workspace";
  }
}

TEST_F(LovaszCuda, InPlaceGradientMatchesOutOfPlace) {
  int r = 0;
  for (culoss_kind k : {kHinge, kSoftmax})
    for (DLDataType in : {f32(), f64(), f16(), bf16()}) {
      LCase c;
      c.kind = k;
      c.in = in;
      c.shape = r % 2 ? std::vector<int64_t>{2, 30, 20, 3} : std::vector<int64_t>{2, 3, 30, 20};
      c.class_axis = r % 2 ? -1 : 1;
      c.tgt = Tgt::DenseF32;
      c.pixel_weight = true;
      c.activation = r % 3 == 2 ? CULOSS_ACTIVATION_NONE : CULOSS_ACTIVATION_SOFTMAX;
      c.seed = 21000 + static_cast<uint64_t>(r++);
      const LData d = make_data(scaled_for_half(c));
      SCOPED_TRACE(describe(d.c));
      const GpuRun out = run_gpu(d);
      ASSERT_EQ(CULOSS_SUCCESS, out.status) << out.error;
      for (uint64_t off : {uint64_t(0), uint64_t(64)}) {
        GpuOpts o;
        o.in_place = true;
        o.offset = off;
        o.host_loss_out = off != 0;
        const GpuRun in_place = run_gpu(d, o);
        ASSERT_EQ(CULOSS_SUCCESS, in_place.status) << in_place.error;
        EXPECT_TRUE(in_place.guards_ok);
        EXPECT_TRUE(same_bits("loss", out.loss, in_place.loss));
        EXPECT_TRUE(same_bits("grad", out.grad, in_place.grad));
      }
    }
}

TEST_F(LovaszCuda, ByteOffsetsAreHonoured) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    SCOPED_TRACE(describe(d.c));
    const GpuRun plain = run_gpu(d);
    ASSERT_EQ(CULOSS_SUCCESS, plain.status) << plain.error;
    GpuOpts o;
    o.offset = 256;
    o.ws = Ws::Exact;
    const GpuRun off = run_gpu(d, o);
    ASSERT_EQ(CULOSS_SUCCESS, off.status) << off.error;
    EXPECT_TRUE(off.guards_ok);
    EXPECT_TRUE(same_bits("loss", plain.loss, off.loss));
    EXPECT_TRUE(same_bits("grad", plain.grad, off.grad));
  }
}

TEST_F(LovaszCuda, RepeatedCallsAreBitwiseDeterministic) {
  std::vector<LCase> cases = plumbing_cases();
  // Ties everywhere: logits on a coarse grid.
  LCase t;
  t.kind = kHinge;
  t.shape = {2, 3, 200, 100};
  t.in = f32();
  t.tgt = Tgt::DenseF32;
  t.seed = 22000;
  cases.push_back(t);
  for (size_t i = 0; i < cases.size(); ++i) {
    LData d = make_data(cases[i]);
    if (i + 1 == cases.size()) {
      for (int64_t e = 0; e < d.input.numel(); ++e) d.input.set(e, std::round(d.input.get(e) * 4) / 4);
      refresh_spec(d);
    }
    SCOPED_TRACE(describe(d.c));
    const GpuRun first = run_gpu(d);
    ASSERT_EQ(CULOSS_SUCCESS, first.status) << first.error;
    CudaStream s(cudaStreamNonBlocking);
    for (int rep = 0; rep < 3; ++rep) {
      GpuOpts o;
      o.stream = rep == 2 ? s.get() : nullptr;
      o.ws = rep == 1 ? Ws::Exact : Ws::Null;
      const GpuRun again = run_gpu(d, o);
      ASSERT_EQ(CULOSS_SUCCESS, again.status) << again.error;
      EXPECT_TRUE(same_bits("loss", first.loss, again.loss));
      EXPECT_TRUE(same_bits("grad", first.grad, again.grad));
    }
  }
}

TEST_F(LovaszCuda, ForwardOnlyMatchesAndLeavesTheGradientBufferAlone) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    GpuOpts o;
    o.with_grad = false;
    EXPECT_TRUE(cuda_matches_cpu(d, o));
    const GpuRun both = run_gpu(d), fwd = run_gpu(d, o);
    EXPECT_TRUE(same_bits("loss", both.loss, fwd.loss));
  }
}

// Exact ties (errors computed identically by both backends) are broken by element index on both.
TEST_F(LovaszCuda, TiesAreBrokenByElementIndexLikeTheCpu) {
  int r = 0;
  for (culoss_kind k : {kHinge, kSoftmax})
    for (DLDataType in : {f32(), f64(), f16()})
      for (int per_image = 0; per_image < 2; ++per_image) {
        LCase c;
        c.kind = k;
        c.in = in;
        c.per_image = per_image;
        c.shape = r % 2 ? std::vector<int64_t>{2, 40, 30, 3} : std::vector<int64_t>{2, 3, 40, 30};
        c.class_axis = r % 2 ? -1 : 1;
        c.tgt = Tgt::IdxI64;
        if (k == kHinge) c.shape[static_cast<size_t>(resolved_axis(c))] = 1;
        c.seed = 23000 + static_cast<uint64_t>(r++);
        LData d = make_data(scaled_for_half(c));
        std::mt19937_64 rng(c.seed);
        const double logits[] = {-1.0, -0.5, 0.0, 0.5, 1.0, 2.0};
        std::vector<double> proto(static_cast<size_t>(4 * d.C));
        std::normal_distribution<double> G(0.0, 1.0);
        for (double& v : proto) v = G(rng);
        for (int64_t n = 0; n < d.N; ++n)
          for (int64_t q = 0; q < d.P; ++q) {
            const uint64_t which = rng() % 4;
            for (int64_t kk = 0; kk < d.C; ++kk)
              d.input.set(d.element(n, q, kk), k == kHinge ? logits[rng() % 6]
                                                           : proto[static_cast<size_t>(which * static_cast<uint64_t>(d.C) + static_cast<uint64_t>(kk))]);
          }
        refresh_spec(d);
        CompareOpts co;
        co.exact_ties = true;
        co.min_compared = 0.9;
        EXPECT_TRUE(cuda_matches_cpu(d, GpuOpts{}, co));
      }
}

// −0 and +0 are equal errors: a tie, broken by element index (softmax on probabilities, where
// a background probability of −0 is an error of −0).
TEST_F(LovaszCuda, SignedZeroErrorsTieByElementIndex) {
  LCase c;
  c.kind = kSoftmax;
  c.activation = CULOSS_ACTIVATION_NONE;
  c.classes = CULOSS_CLASSES_ALL;
  c.shape = {1, 2, 4};
  c.tgt = Tgt::IdxI64;
  c.ignore_frac = 0.0;
  c.absent_class = false;
  LData d = make_data(c);
  // Class 0 everywhere with p = 1; class 1 (no positive: its loss is its first item's error, g = 1
  // for that item only) has p = −0, +0, −0, +0.
  const double p1[] = {-0.0, 0.0, -0.0, 0.0};
  for (int64_t q = 0; q < 4; ++q) {
    d.target.set(q, 0.0);
    d.input.set(d.element(0, q, 0), 1.0);
    d.input.set(d.element(0, q, 1), p1[q]);
  }
  refresh_spec(d);
  const LRun cpu = run_cpu(d);
  ASSERT_EQ(CULOSS_SUCCESS, cpu.status) << cpu.error;
  // CPU: the first item of class 1 is element 4 (pixel 0): gradient w·g = 1/2 there only.
  EXPECT_EQ(cpu.grad.get(d.element(0, 0, 1)), 0.5);
  EXPECT_EQ(cpu.grad.get(d.element(0, 1, 1)), 0.0);
  const GpuRun gpu = run_gpu(d);
  ASSERT_EQ(CULOSS_SUCCESS, gpu.status) << gpu.error;
  EXPECT_TRUE(same_bits("loss", cpu.loss, gpu.loss));
  EXPECT_TRUE(same_bits("grad", cpu.grad, gpu.grad));
}

TEST_F(LovaszCuda, CheckTargetsRefusesBadLabelsAndWritesNothing) {
  for (culoss_kind k : {kHinge, kSoftmax})
    for (int host = 0; host < 2; ++host) {
      LCase c;
      c.kind = k;
      c.shape = k == kHinge ? std::vector<int64_t>{2, 1, 50, 40} : std::vector<int64_t>{2, 4, 50, 40};
      c.tgt = Tgt::IdxI64;
      c.seed = 24000;
      LData d = make_data(c);
      d.target.set(d.target.numel() - 7, k == kHinge ? 2.0 : 4.0);
      refresh_spec(d);
      GpuOpts o;
      o.host_loss_out = host == 1;
      const GpuRun r = run_gpu(d, o);
      EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, r.status) << r.error;
      EXPECT_NE(std::string(r.error), "");
      EXPECT_TRUE(still_poisoned(r.loss)) << "loss_out written by a refused call";
      EXPECT_TRUE(still_poisoned(r.grad)) << "grad_input written by a refused call";
      EXPECT_TRUE(r.guards_ok);
      // Dense values outside [0, 1] too.
      LCase cd = c;
      cd.shape = {2, 3, 50, 40};
      cd.tgt = Tgt::DenseF32;
      LData dd = make_data(cd);
      dd.target.set(11, 1.25);
      refresh_spec(dd);
      const GpuRun rd = run_gpu(dd, o);
      EXPECT_EQ(CULOSS_ERROR_INVALID_TARGET, rd.status) << rd.error;
      EXPECT_TRUE(still_poisoned(rd.loss));
      EXPECT_TRUE(still_poisoned(rd.grad));
      // CHECK_TARGETS = 0: the bad label is left out, like on the CPU (and in the reference).
      GpuOpts u = o;
      u.check_targets = 0;
      const GpuRun ru = run_gpu(d, u);
      ASSERT_EQ(CULOSS_SUCCESS, ru.status) << ru.error;
      LRun cpu;
      {
        Loss h(d.c.kind);
        ASSERT_TRUE(configure(h, d));
        ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_CHECK_TARGETS, 0));
        TestTensor in = d.input, tg = d.target, w = d.weight;
        cpu.loss = TestTensor(d.loss_shape, d.c.loss_dtype);
        cpu.grad = TestTensor(d.c.shape, grad_dtype(d.c));
        cpu.status = culoss_compute(h, in.dl(), tg.dl(), d.has_weight ? w.dl() : nullptr, cpu.loss.dl(),
                                    cpu.grad.dl(), d.c.grad_scale, nullptr, 0, nullptr);
        cpu.error = culoss_last_error();
      }
      EXPECT_TRUE(matches_cpu(d, cpu, ru)) << describe(d.c);
    }
}

TEST_F(LovaszCuda, RefusalsWriteNothing) {
  LCase c;
  c.kind = kSoftmax;
  c.shape = {2, 3, 20, 10};
  c.tgt = Tgt::DenseF32;
  const LData d = make_data(c);
  CudaTensor din(d.input), dtg(d.target), dw(d.weight);
  CudaTensor dgrad(d.c.shape, f32());
  // A SUM with a Lovász term.
  for (culoss_kind k : {kHinge, kSoftmax}) {
    Loss sum(CULOSS_SUM), term(k);
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_add_term(sum, term, 1.0));
    CudaTensor dloss(std::vector<int64_t>{}, f64());
    dloss.poison();
    dgrad.poison();
    EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, culoss_compute(sum, din.dl(), dtg.dl(), dw.dl(), dloss.dl(), dgrad.dl(),
                                                         1.0, nullptr, 0, nullptr));
    EXPECT_TRUE(still_poisoned(dloss.download()));
    EXPECT_TRUE(still_poisoned(dgrad.download()));
  }
  // NONE with a wrong loss_out shape.
  for (culoss_kind k : {kHinge, kSoftmax})
    for (int per_image = 0; per_image < 2; ++per_image) {
      Loss h(k);
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
      ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_PER_IMAGE, per_image));
      const std::vector<int64_t> wrong = k == kHinge ? (per_image ? std::vector<int64_t>{2} : std::vector<int64_t>{2, 3})
                                                     : (per_image ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2});
      CudaTensor dloss(wrong, f64());
      dloss.poison();
      dgrad.poison();
      EXPECT_EQ(CULOSS_ERROR_SHAPE_MISMATCH, culoss_compute(h, din.dl(), dtg.dl(), dw.dl(), dloss.dl(), dgrad.dl(),
                                                            1.0, nullptr, 0, nullptr));
      EXPECT_TRUE(still_poisoned(dloss.download()));
      EXPECT_TRUE(still_poisoned(dgrad.download()));
    }
  // Hinge with class-index targets and C > 1.
  {
    Loss h(kHinge);
    TestTensor labels(d.pix_shape, i64());
    CudaTensor dlab(labels), dloss(std::vector<int64_t>{}, f64());
    dloss.poison();
    EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT,
              culoss_compute(h, din.dl(), dlab.dl(), nullptr, dloss.dl(), nullptr, 1.0, nullptr, 0, nullptr));
    EXPECT_TRUE(still_poisoned(dloss.download()));
  }
}

// 2^31 or more input elements are refused (NOT_SUPPORTED) before any memory is touched. The
// tensors point at addresses that are never dereferenced; just below the limit the workspace
// query succeeds.
TEST_F(LovaszCuda, TwoPow31ElementsAreNotSupported) {
  for (culoss_kind k : {kHinge, kSoftmax})
    for (int64_t numel : {(int64_t(1) << 31) - 1, int64_t(1) << 31, (int64_t(1) << 31) + 7}) {
      std::vector<int64_t> shape{1, 1, numel}, pix{1, numel};
      DLTensor in{}, tg{};
      in.data = reinterpret_cast<void*>(uintptr_t(1) << 44);
      in.device = DLDevice{kDLCUDA, 0};
      in.ndim = 3;
      in.dtype = f16();
      in.shape = shape.data();
      tg = in;
      tg.data = reinterpret_cast<void*>(uintptr_t(1) << 45);
      tg.dtype = testing_util::u8();
      tg.ndim = 2;
      tg.shape = pix.data();
      Loss h(k);
      size_t bytes = 0;
      const culoss_status s = culoss_workspace_size(h, &in, &tg, &bytes);
      if (numel < (int64_t(1) << 31)) {
        EXPECT_EQ(CULOSS_SUCCESS, s) << culoss_last_error();
        continue;
      }
      EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED, s) << culoss_last_error();
      TestTensor hloss(std::vector<int64_t>{}, f64());
      hloss.poison();
      EXPECT_EQ(CULOSS_ERROR_NOT_SUPPORTED,
                culoss_compute(h, &in, &tg, nullptr, hloss.dl(), nullptr, 1.0, nullptr, 0, nullptr))
          << culoss_last_error();
      EXPECT_TRUE(still_poisoned(hloss));
      CUDA_EXPECT_OK(cudaGetLastError());
    }
}

// With a caller workspace, CHECK_TARGETS = 0 and a device loss_out a call is capturable into a
// CUDA graph; replaying it gives what a direct call gives.
TEST_F(LovaszCuda, CapturedIntoACudaGraphAndReplayed) {
  for (const LCase& c : plumbing_cases()) {
    const LData d = make_data(c);
    SCOPED_TRACE(describe(d.c));
    GpuOpts direct_o;
    direct_o.check_targets = 0;
    const GpuRun direct = run_gpu(d, direct_o);
    ASSERT_EQ(CULOSS_SUCCESS, direct.status) << direct.error;

    Loss h(d.c.kind);
    ASSERT_TRUE(configure(h, d));
    ASSERT_EQ(CULOSS_SUCCESS, culoss_loss_set_int(h, CULOSS_PARAM_CHECK_TARGETS, 0));
    CudaTensor din(d.input), dtg(d.target);
    std::unique_ptr<CudaTensor> dw;
    if (d.has_weight) dw = std::make_unique<CudaTensor>(d.weight);
    CudaTensor dloss(d.loss_shape, d.c.loss_dtype), dgrad(d.c.shape, grad_dtype(d.c));
    size_t bytes = 0;
    ASSERT_EQ(CULOSS_SUCCESS, culoss_workspace_size(h, din.dl(), dtg.dl(), &bytes)) << culoss_last_error();
    CudaTensor ws(std::vector<int64_t>{static_cast<int64_t>(bytes)}, testing_util::u8());
    CudaStream s(cudaStreamNonBlocking);
    dloss.poison();
    dgrad.poison();
    CUDA_ASSERT_OK(cudaDeviceSynchronize());
    cudaGraph_t graph = nullptr;
    CUDA_ASSERT_OK(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeThreadLocal));
    const culoss_status st = culoss_compute(h, din.dl(), dtg.dl(), dw ? dw->dl() : nullptr, dloss.dl(), dgrad.dl(),
                                            d.c.grad_scale, ws.data_ptr(), bytes, s.get());
    const cudaError_t end = cudaStreamEndCapture(s.get(), &graph);
    ASSERT_EQ(CULOSS_SUCCESS, st) << culoss_last_error();
    CUDA_ASSERT_OK(end);
    cudaGraphExec_t exec = nullptr;
    CUDA_ASSERT_OK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_ASSERT_OK(cudaGraphLaunch(exec, s.get()));
    CUDA_ASSERT_OK(cudaStreamSynchronize(s.get()));
    EXPECT_TRUE(same_bits("loss", direct.loss, dloss.download()));
    EXPECT_TRUE(same_bits("grad", direct.grad, dgrad.download()));
    // Replay on poisoned outputs.
    dloss.poison();
    dgrad.poison();
    CUDA_ASSERT_OK(cudaGraphLaunch(exec, s.get()));
    CUDA_ASSERT_OK(cudaStreamSynchronize(s.get()));
    EXPECT_TRUE(same_bits("loss (replay)", direct.loss, dloss.download()));
    EXPECT_TRUE(same_bits("grad (replay)", direct.grad, dgrad.download()));
    CUDA_EXPECT_OK(cudaGraphExecDestroy(exec));
    CUDA_EXPECT_OK(cudaGraphDestroy(graph));
  }
}

}  // namespace

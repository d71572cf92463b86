// Harness of the data-parallel tests (the statistics API: culoss_stats_size, culoss_compute_stats,
// culoss_compute_from_stats), shared by the CPU tests (tests/losses/distributed_test.cpp) and the
// CUDA tests (tests/cuda/distributed_cuda_test.cpp).
//
// A global batch (host tensors, N along axis 0) is split into shards of consecutive images, one
// per simulated rank. Each rank computes its statistics; the vectors are summed element-wise (the
// all-reduce, done here in rank order); each rank then finishes with culoss_compute_from_stats.
// The results are compared with one culoss_compute call on the whole batch:
//   - MEAN/SUM (and outputs without an image axis): every rank writes the same bits, close to
//     the single call's value;
//   - per-image / per-pixel / per-element NONE outputs: each rank writes its own rows, close to
//     those rows of the single call;
//   - the concatenated shard gradients are close to the single call's gradient;
//   - every rank reports the same statistics count (the whole batch's too), and the shards'
//     statistics add up to the whole batch's.
// Where the calls run is a Runner: CpuRunner here (with a NULL, exact or misaligned caller
// workspace, one buffer shared by a rank's calls), a CUDA runner in the CUDA test.
#pragma once

#include <gtest/gtest.h>

#include <culoss/culoss.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iomanip>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/test_tensor.hpp"

namespace dist_test {

using testing_util::TestTensor;

// One global batch (or one shard of it) as host tensors.
struct Batch {
  TestTensor input, target, weight;  // weight: float32 pixel weights when has_weight
  bool has_weight = false;
  // loss_out shape of a call on n images ({} = one element).
  std::function<std::vector<int64_t>(int64_t)> loss_shape;
  DLDataType loss_dtype = testing_util::f64();
  DLDataType grad_dtype = testing_util::f64();
  double grad_scale = 1.0;
  std::string what;  // the case, for failure messages

  int64_t N() const { return input.shape.empty() ? 0 : input.shape[0]; }
};

// Rows [begin, begin + count) of a row-major tensor along axis 0 (a contiguous byte range).
inline TestTensor slice_rows(const TestTensor& t, int64_t begin, int64_t count) {
  std::vector<int64_t> s = t.shape;
  if (s.empty() || begin < 0 || count < 0 || begin + count > s[0]) {
    ADD_FAILURE() << "slice_rows: rows [" << begin << ", " << begin + count << ") of a tensor with "
                  << (s.empty() ? 0 : s[0]) << " rows";
    begin = count = 0;
  }
  int64_t per_row = 1;
  for (size_t d = 1; d < s.size(); ++d) per_row *= s[d];
  s[0] = count;
  TestTensor r(s, t.dtype);
  const size_t es = static_cast<size_t>(t.elem_size());
  const size_t n = static_cast<size_t>(count * per_row) * es;
  if (n > 0) std::memcpy(r.bytes.data(), t.bytes.data() + static_cast<size_t>(begin * per_row) * es, n);
  return r;
}

inline Batch shard_of(const Batch& b, int64_t begin, int64_t count) {
  Batch s;
  s.input = slice_rows(b.input, begin, count);
  s.target = slice_rows(b.target, begin, count);
  s.has_weight = b.has_weight;
  if (b.has_weight) s.weight = slice_rows(b.weight, begin, count);
  s.loss_shape = b.loss_shape;
  s.loss_dtype = b.loss_dtype;
  s.grad_dtype = b.grad_dtype;
  s.grad_scale = b.grad_scale;
  s.what = b.what;
  return s;
}

// Whether the loss_out of this batch has one row per image (NONE of a per-image, per-pixel or
// per-element loss), as opposed to one element or a batch-wide shape (BATCH=1).
inline bool per_image_rows(const Batch& b) {
  const int64_t N = b.N();
  const std::vector<int64_t> a = b.loss_shape(N), c = b.loss_shape(N + 7);
  return !a.empty() && !c.empty() && a[0] == N && c[0] == N + 7;
}

// What a call returned and wrote.
struct CallOut {
  culoss_status status = CULOSS_ERROR_INTERNAL;
  std::string error;
  std::string call;  // which call failed
  TestTensor loss, grad;
  std::vector<double> stats;  // culoss_compute_stats
  int64_t count = -1;         // culoss_stats_size
  bool workspace_ok = true;   // guard bytes after a caller workspace untouched
  bool ok() const { return status == CULOSS_SUCCESS; }
};

// Where the calls of a check run.
struct Runner {
  virtual ~Runner() = default;
  // culoss_compute on the whole batch.
  virtual CallOut compute(culoss_loss h, const Batch& b) = 0;
  // Starts a rank (a fresh workspace for its calls).
  virtual void begin_rank() {}
  // culoss_stats_size, then culoss_compute_stats (out.count, out.stats).
  virtual CallOut stats(culoss_loss h, const Batch& b) = 0;
  // culoss_compute_from_stats with the summed vector (out.loss, out.grad).
  virtual CallOut from_stats(culoss_loss h, const Batch& b, const std::vector<double>& global) = 0;
};

enum class Ws { Null, Exact, ExactMisaligned };

// The CPU backend. With a caller workspace, one buffer of culoss_workspace_size(shard) bytes is
// used by the rank's compute_stats and compute_from_stats calls, refilled with 0xff bytes (NaN)
// between them: from_stats may not rely on what compute_stats left there.
struct CpuRunner : Runner {
  Ws ws = Ws::Null;
  bool with_grad = true;
  explicit CpuRunner(Ws w = Ws::Null) : ws(w) {}

  static constexpr size_t kGuard = 64;
  static constexpr uint8_t kGuardByte = 0xA5;
  std::vector<uint8_t> buf;
  size_t ws_bytes = 0;
  size_t ws_shift = 0;

  // Prepares the workspace of `b` (or nothing for Ws::Null); false with out->error on failure.
  bool prepare(culoss_loss h, Batch& b, CallOut* out) {
    if (ws == Ws::Null) return true;
    size_t bytes = 0;
    const culoss_status st = culoss_workspace_size(h, b.input.dl(), b.target.dl(), &bytes);
    if (st != CULOSS_SUCCESS) {
      out->status = st;
      out->call = "culoss_workspace_size";
      out->error = culoss_last_error();
      return false;
    }
    if (buf.empty() || bytes != ws_bytes) {
      ws_bytes = bytes;
      ws_shift = ws == Ws::ExactMisaligned ? 3 : 0;
      buf.assign(ws_shift + ws_bytes + kGuard, kGuardByte);
    }
    std::memset(buf.data() + ws_shift, 0xff, ws_bytes);
    return true;
  }
  void* ws_ptr() { return ws == Ws::Null ? nullptr : buf.data() + ws_shift; }
  size_t ws_size() const { return ws == Ws::Null ? 0 : ws_bytes; }
  bool guard_ok() const {
    if (ws == Ws::Null) return true;
    for (size_t i = ws_shift + ws_bytes; i < buf.size(); ++i)
      if (buf[i] != kGuardByte) return false;
    for (size_t i = 0; i < ws_shift; ++i)
      if (buf[i] != kGuardByte) return false;
    return true;
  }

  void begin_rank() override { buf.clear(); }

  CallOut compute(culoss_loss h, const Batch& in) override {
    Batch b = in;
    CallOut r;
    buf.clear();
    if (!prepare(h, b, &r)) return r;
    r.loss = TestTensor(b.loss_shape(b.N()), b.loss_dtype);
    r.loss.poison();
    r.grad = TestTensor(b.input.shape, b.grad_dtype);
    r.grad.poison();
    r.call = "culoss_compute";
    r.status = culoss_compute(h, b.input.dl(), b.target.dl(), b.has_weight ? b.weight.dl() : nullptr,
                              r.loss.dl(), with_grad ? r.grad.dl() : nullptr, b.grad_scale, ws_ptr(),
                              ws_size(), nullptr);
    r.error = culoss_last_error();
    r.workspace_ok = guard_ok();
    buf.clear();
    return r;
  }

  CallOut stats(culoss_loss h, const Batch& in) override {
    Batch b = in;
    CallOut r;
    r.call = "culoss_stats_size";
    r.status = culoss_stats_size(h, b.input.dl(), b.target.dl(), &r.count);
    if (r.status != CULOSS_SUCCESS) {
      r.error = culoss_last_error();
      return r;
    }
    if (!prepare(h, b, &r)) return r;
    TestTensor s({r.count}, testing_util::f64());
    s.poison();
    r.call = "culoss_compute_stats";
    r.status = culoss_compute_stats(h, b.input.dl(), b.target.dl(),
                                    b.has_weight ? b.weight.dl() : nullptr, s.dl(), ws_ptr(),
                                    ws_size(), nullptr);
    r.error = culoss_last_error();
    r.workspace_ok = guard_ok();
    r.stats = s.values();
    return r;
  }

  CallOut from_stats(culoss_loss h, const Batch& in, const std::vector<double>& global) override {
    Batch b = in;
    CallOut r;
    if (!prepare(h, b, &r)) return r;
    TestTensor s({static_cast<int64_t>(global.size())}, testing_util::f64());
    for (size_t i = 0; i < global.size(); ++i) s.set(static_cast<int64_t>(i), global[i]);
    const std::vector<uint8_t> stats_before = s.bytes;
    r.loss = TestTensor(b.loss_shape(b.N()), b.loss_dtype);
    r.loss.poison();
    r.grad = TestTensor(b.input.shape, b.grad_dtype);
    r.grad.poison();
    r.call = "culoss_compute_from_stats";
    r.status = culoss_compute_from_stats(h, b.input.dl(), b.target.dl(),
                                         b.has_weight ? b.weight.dl() : nullptr, s.dl(), r.loss.dl(),
                                         with_grad ? r.grad.dl() : nullptr, b.grad_scale, ws_ptr(),
                                         ws_size(), nullptr);
    r.error = culoss_last_error();
    r.workspace_ok = guard_ok();
    if (r.status == CULOSS_SUCCESS && s.bytes != stats_before) {
      r.status = CULOSS_ERROR_INTERNAL;
      r.error = "culoss_compute_from_stats wrote into its (const) stats tensor";
    }
    return r;
  }
};

// Tolerances of a comparison: |got − want| <= rel·|want| + abs_frac·max|want| + abs + ulps·ulp.
struct Tol {
  double rel = 1e-12;
  double abs_frac = 1e-13;
  double abs = 1e-300;
  double ulps = 0.0;                     // ulps of `dtype` at |want|
  DLDataType dtype = testing_util::f64();  // of the compared output
};

inline double ulp_of(DLDataType d, double x) {
  int mant = 52, emin = -1022;
  if (d.code == kDLBfloat) { mant = 7; emin = -126; }
  else if (d.bits == 16) { mant = 10; emin = -14; }
  else if (d.bits == 32) { mant = 23; emin = -126; }
  x = std::fabs(x);
  int e = (x > 0.0 && std::isfinite(x)) ? std::ilogb(x) : emin;
  e = std::max(e, emin);
  return std::ldexp(1.0, e - mant);
}

inline ::testing::AssertionResult close_values(const char* what, const std::vector<double>& got,
                                               const std::vector<double>& want, const Tol& tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << what << ": " << got.size() << " values, expected "
                                         << want.size();
  double maxabs = 0.0;
  for (double w : want)
    if (std::isfinite(w)) maxabs = std::max(maxabs, std::fabs(w));
  int64_t bad = 0;
  double worst = 0.0;
  std::ostringstream os;
  os << std::setprecision(17);
  for (size_t i = 0; i < got.size(); ++i) {
    const double lim = tol.rel * std::fabs(want[i]) + tol.abs_frac * maxabs + tol.abs +
                       tol.ulps * ulp_of(tol.dtype, want[i]);
    const bool ok = std::isfinite(got[i]) && std::isfinite(want[i]) && std::fabs(got[i] - want[i]) <= lim;
    if (!ok) {
      if (bad < 8)
        os << "\n  [" << i << "] got " << got[i] << " want " << want[i] << " |diff| "
           << std::fabs(got[i] - want[i]) << " > " << lim;
      if (std::isfinite(got[i]) && lim > 0) worst = std::max(worst, std::fabs(got[i] - want[i]) / lim);
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << bad << " of " << got.size()
                                       << " values differ (max |want| " << maxabs << ", worst "
                                       << worst << "x the tolerance)" << os.str();
}

struct CheckTols {
  Tol loss, grad;
  Tol stats{1e-12, 1e-12};  // the shards' statistics summed vs the whole batch's
  bool grad_checked = true;  // false: the runner passes no grad_input
};

inline std::string split_string(const std::vector<int64_t>& sizes) {
  std::ostringstream os;
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? "+" : "") << sizes[i];
  return os.str();
}

// The results of one distributed run (for tests that compare two runs).
struct SplitResult {
  std::vector<CallOut> ranks;
  std::vector<double> global;
};

// Splits `b` into shards of `sizes` images (in order), runs the three calls per rank on `runner`
// and compares with one culoss_compute call on the whole batch (see the top of this file).
// `single`, when given, runs the whole-batch culoss_compute instead of `runner` (the CUDA test
// compares CUDA shards with the CPU backend's single call too).
inline ::testing::AssertionResult check_split(culoss_loss h, const Batch& b,
                                              const std::vector<int64_t>& sizes, Runner& runner,
                                              const CheckTols& tol, SplitResult* keep = nullptr,
                                              Runner* single = nullptr) {
  const std::string where = "\n  split " + split_string(sizes) + " of N=" + std::to_string(b.N()) +
                            "\n  case: " + b.what;
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  if (total != b.N()) return ::testing::AssertionFailure() << "bad split" << where;

  const CallOut full = (single != nullptr ? *single : runner).compute(h, b);
  if (!full.ok())
    return ::testing::AssertionFailure() << full.call << " (whole batch) failed: "
                                         << culoss_status_string(full.status) << ": " << full.error
                                         << where;
  runner.begin_rank();
  const CallOut whole_stats = runner.stats(h, b);
  if (!whole_stats.ok())
    return ::testing::AssertionFailure() << whole_stats.call << " (whole batch) failed: "
                                         << culoss_status_string(whole_stats.status) << ": "
                                         << whole_stats.error << where;

  // 1. Statistics per rank.
  std::vector<Batch> shards;
  std::vector<int64_t> begins;
  int64_t begin = 0;
  for (int64_t s : sizes) {
    shards.push_back(shard_of(b, begin, s));
    begins.push_back(begin);
    begin += s;
  }
  std::vector<CallOut> st(shards.size());
  for (size_t k = 0; k < shards.size(); ++k) {
    runner.begin_rank();
    st[k] = runner.stats(h, shards[k]);
    if (!st[k].ok())
      return ::testing::AssertionFailure() << st[k].call << " on rank " << k << " (" << sizes[k]
                                           << " images) failed: " << culoss_status_string(st[k].status)
                                           << ": " << st[k].error << where;
    if (!st[k].workspace_ok)
      return ::testing::AssertionFailure() << "culoss_compute_stats wrote past its workspace on rank "
                                           << k << where;
    if (st[k].count != whole_stats.count)
      return ::testing::AssertionFailure() << "culoss_stats_size: rank " << k << " (" << sizes[k]
                                           << " images) reports " << st[k].count
                                           << ", the whole batch " << whole_stats.count << where;
  }
  // 2. The all-reduce: element-wise sums in rank order.
  std::vector<double> global(static_cast<size_t>(whole_stats.count), 0.0);
  for (const CallOut& s : st)
    for (size_t i = 0; i < global.size(); ++i) global[i] += s.stats[i];
  {
    ::testing::AssertionResult r =
        close_values("statistics summed over the shards vs the whole batch's", global,
                     whole_stats.stats, tol.stats);
    if (!r) return r << where;
  }
  // 3. Finish per rank.
  std::vector<CallOut> fin(shards.size());
  for (size_t k = 0; k < shards.size(); ++k) {
    runner.begin_rank();
    fin[k] = runner.from_stats(h, shards[k], global);
    if (!fin[k].ok())
      return ::testing::AssertionFailure() << fin[k].call << " on rank " << k << " (" << sizes[k]
                                           << " images) failed: " << culoss_status_string(fin[k].status)
                                           << ": " << fin[k].error << where;
    if (!fin[k].workspace_ok)
      return ::testing::AssertionFailure()
             << "culoss_compute_from_stats wrote past its workspace on rank " << k << where;
  }

  // 4. Loss values.
  const std::vector<double> full_loss = full.loss.values();
  if (per_image_rows(b)) {
    const int64_t per_row = b.N() > 0 ? full.loss.numel() / b.N() : 0;
    for (size_t k = 0; k < shards.size(); ++k) {
      const std::vector<double> want(full_loss.begin() + begins[k] * per_row,
                                     full_loss.begin() + (begins[k] + sizes[k]) * per_row);
      const std::string what = "loss_out rows of rank " + std::to_string(k);
      ::testing::AssertionResult r = close_values(what.c_str(), fin[k].loss.values(), want, tol.loss);
      if (!r) return r << where;
    }
  } else {
    for (size_t k = 1; k < shards.size(); ++k)
      if (fin[k].loss.bytes != fin[0].loss.bytes) {
        ::testing::AssertionResult r = ::testing::AssertionFailure();
        r << "loss_out differs between rank 0 and rank " << k << std::setprecision(17);
        for (int64_t i = 0; i < fin[0].loss.numel(); ++i)
          r << "\n  [" << i << "] " << fin[0].loss.get(i) << " vs " << fin[k].loss.get(i);
        return r << where;
      }
    if (!shards.empty()) {
      ::testing::AssertionResult r = close_values(
          "loss_out (rank 0) vs the whole batch's", fin[0].loss.values(), full_loss, tol.loss);
      if (!r) return r << where;
    }
  }
  // 5. The gradient: the ranks' slices, concatenated.
  if (!tol.grad_checked) {
    if (keep != nullptr) {
      keep->ranks = std::move(fin);
      keep->global = std::move(global);
    }
    return ::testing::AssertionSuccess();
  }
  std::vector<double> grad;
  for (const CallOut& f : fin) {
    const std::vector<double> g = f.grad.values();
    grad.insert(grad.end(), g.begin(), g.end());
  }
  ::testing::AssertionResult r =
      close_values("gradient (shards concatenated) vs the whole batch's", grad, full.grad.values(),
                   tol.grad);
  if (!r) return r << where;
  if (keep != nullptr) {
    keep->ranks = std::move(fin);
    keep->global = std::move(global);
  }
  return ::testing::AssertionSuccess();
}

// Splits of N images to try: one rank, then several (unequal sizes, single images), up to
// `max_splits` in all, at most 4 ranks each; shards are never empty.
inline std::vector<std::vector<int64_t>> splits_for(int64_t N, std::mt19937& rng, int max_splits = 4) {
  std::vector<std::vector<int64_t>> out;
  auto add = [&](std::vector<int64_t> s) {
    if (static_cast<int>(out.size()) >= max_splits) return;
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(std::move(s));
  };
  add({N});
  if (N >= 2) add({1, N - 1});
  if (N >= 2 && N <= 4) add(std::vector<int64_t>(static_cast<size_t>(N), 1));
  if (N >= 3) {
    // A random composition into 2 to min(4, N) non-empty parts.
    const int parts = std::uniform_int_distribution<int>(2, static_cast<int>(std::min<int64_t>(4, N)))(rng);
    std::vector<int64_t> cuts;
    while (static_cast<int>(cuts.size()) < parts - 1) {
      const int64_t c = std::uniform_int_distribution<int64_t>(1, N - 1)(rng);
      if (std::find(cuts.begin(), cuts.end(), c) == cuts.end()) cuts.push_back(c);
    }
    std::sort(cuts.begin(), cuts.end());
    std::vector<int64_t> s;
    int64_t prev = 0;
    for (int64_t c : cuts) { s.push_back(c - prev); prev = c; }
    s.push_back(N - prev);
    add(s);
  }
  if (N >= 2) add({N - 1, 1});
  return out;
}

}  // namespace dist_test

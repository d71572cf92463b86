// CPU backend: the four steps (docs/reference.md), accumulating in double. The element math, the
// passes and finalize are the shared code of kernels/common and kernels/terms, the same the CUDA
// kernels run; the passes run in chunks on the thread pool (thread_pool.hpp), bitwise the same
// for any number of threads.
#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "core/dispatch.hpp"
#include "cpu/backend.hpp"
#include "cpu/fast_path.hpp"
#include "cpu/geometry_cpu.hpp"
#include "cpu/thread_pool.hpp"
#include "cpu/topk.hpp"
#include "kernels/common/finalize.cuh"
#include "kernels/common/passes.cuh"

namespace culoss::cpu {

void check_targets(const Call& call) {
  // In chunks, in parallel: the lowest failing chunk's error, the first bad element, is the one
  // reported, and every target is checked before any pixel weight.
  const TargetView tv = call.target_view();
  const Layout& L = call.layout;
  const auto raw = [&](int64_t i) {
    return static_cast<const char*>(tv.data) + i * dtype_bytes(tv.dtype);
  };
  for_each_chunk(Partition(call.target.numel, kChunkElements), [&](int64_t, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const bool valid = call.index_target
                             ? label_is_valid(load_label(tv.data, tv.dtype, i), L.C, tv.binary_mask,
                                              tv.ignore_index)
                             : dense_target_is_valid(load_as<double>(tv.data, tv.dtype, i));
      if (!valid) fail_invalid_target(call, i, raw(i));
    }
  });
  if (const float* w = call.pixel_weight_data())
    for_each_chunk(Partition(call.pixel_weight.numel, kChunkElements),
                   [&](int64_t, int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i)
                       if (!pixel_weight_is_valid(w[i])) fail_invalid_pixel_weight(i, w[i]);
                   });
}

namespace {

ElementArgs element_args(const Call& call) {
  return ElementArgs{call.layout, call.target_view(), call.pixel_weight_data()};
}

// The chunks of the passes: of one image's pixels (statistics), of all pixels (element pass).
Partition image_chunks(const Layout& L) { return Partition(L.P, chunk_pixels(L.C)); }
Partition pixel_chunks(const Layout& L) { return Partition(L.N * L.P, chunk_pixels(L.C)); }

// Per-chunk partial sums, carved from the workspace after the plan's buffers: statistics rows
// per (image, chunk) when an image has several chunks, and the element pass's loss per chunk.
// Their size depends on the shapes and the descriptor only (culoss_workspace_size).
struct Partials {
  double* stats;
  double* loss;
};

Partials carve_partials(Carver& carver, const Call& call, const Plan& plan) {
  const Layout& L = call.layout;
  const int64_t K = image_chunks(L).count();
  const bool stat_partials = plan.prog.has_stats && K > 1;
  Partials p;
  p.stats = carver.take<double>(stat_partials ? L.N * K * L.C * plan.prog.stat_width : 0);
  p.loss = carver.take<double>(pixel_chunks(L).count());  // with or without a gradient
  return p;
}

// The work of one chunk, as functions of their own into which the element math is inlined
// whole (flatten): the compiler's inlining budget would otherwise stop inside it.
#if defined(__GNUC__)
#define CULOSS_CPU_FLATTEN __attribute__((flatten))
#else
#define CULOSS_CPU_FLATTEN
#endif

// Statistics of pixels [q0, q1) of image n into the row `out` (C x S). A short row is summed in
// a buffer of the task's own, then stored: rows of neighbouring tasks may share a cache line,
// which the additions would otherwise bounce between cores.
template <class T>
CULOSS_CPU_FLATTEN void stats_chunk(const Program& prog, const ElementArgs& a, const T* x,
                                    int64_t n, int64_t q0, int64_t q1, double* out) {
  constexpr int64_t kLocalRow = 64;
  const int64_t S = prog.stat_width, row = a.L.C * S;
  double local[kLocalRow];
  double* r = row <= kLocalRow ? local : out;
  std::fill(r, r + row, 0.0);
  for (int64_t q = q0; q < q1; ++q)
    pixel_stats<double>(prog, a, x, n, q, true,
                        [&](int64_t c, int k, double value) { r[c * S + k] += value; });
  if (r != out) std::copy(r, r + row, out);
}

// Step 4 for pixels [begin, end) of the batch (n * P + q); returns their loss sum.
template <class T, class G>
CULOSS_CPU_FLATTEN double element_chunk(const Program& prog, const ElementArgs& a, const T* x,
                                        G* grad, const Call& call, const Buffers& b, int64_t begin,
                                        int64_t end) {
  const int64_t P = a.L.P;
  double sum = 0.0;
  for (int64_t pix = begin, n = begin / P, q = begin % P; pix < end; ++pix) {
    sum += pixel_element<double>(prog, a, x, grad, call.loss_out.data, call.loss_out.dtype, b.coefs,
                                 b.scale, call.grad_scale, n, q);
    if (++q == P) {
      q = 0;
      ++n;
    }
  }
  return sum;
}

// Step 2: per-(image, class) sums; chunk(n, q0, q1, row) sums pixels [q0, q1) of image n into
// `row` (the generic stats_chunk or the fast path's). An image of one chunk is summed straight
// into its row; larger images into one partial row per (image, chunk), which are then added in
// chunk order. Either way the order of the additions depends on the shape alone.
template <class Chunk>
void statistics(const Call& call, const Program& prog, double* stats, double* partial,
                Chunk&& chunk) {
  const Layout& L = call.layout;
  const int64_t row = L.C * prog.stat_width;
  const Partition pixels = image_chunks(L);
  const int64_t K = pixels.count();
  if (K <= 1) {  // whole images, several to a task when they are small
    for_each_chunk(Partition(L.N, chunk_pixels(L.C) / std::max<int64_t>(L.P, 1)),
                   [&](int64_t, int64_t n0, int64_t n1) {
                     for (int64_t n = n0; n < n1; ++n) chunk(n, int64_t(0), L.P, stats + n * row);
                   });
    return;
  }
  for_each_chunk(Partition(L.N * K, 1), [&](int64_t u, int64_t, int64_t) {
    const int64_t k = u % K;
    chunk(u / K, pixels.begin(k), pixels.end(k), partial + u * row);
  });
  for (int64_t n = 0; n < L.N; ++n)
    for (int64_t j = 0; j < row; ++j) {
      double sum = 0.0;
      for (int64_t k = 0; k < K; ++k) sum += partial[(n * K + k) * row + j];
      stats[n * row + j] = sum;
    }
}

// Step 4: one pass writing dℓ/dx and the NONE outputs; chunk(begin, end) does pixels [begin,
// end) and returns their loss sum, which is added over the chunks in order.
template <class Chunk>
double element_pass(const Call& call, double* partial, Chunk&& chunk) {
  const Partition pixels = pixel_chunks(call.layout);
  for_each_chunk(pixels,
                 [&](int64_t i, int64_t begin, int64_t end) { partial[i] = chunk(begin, end); });
  double total = 0.0;
  for (int64_t i = 0; i < pixels.count(); ++i) total += partial[i];
  return total;
}

// The workspace of a call that passes none. It is left uninitialised, as a caller's is (every
// slice is written before it is read): zeroing would cost a pass over all of it. And it is the
// one buffer the library keeps for such calls (the largest asked for so far, up to
// kKeptWorkspaceBytes; never freed before exit), so that a call does not fault in fresh pages:
// glibc hands allocations above 32 MiB (clDice keeps about 18 planes of N·C·P doubles: 48 MiB
// at 1×3×48³) to the kernel and back on every call, and faulting 48 MiB in took 18 ms on a
// 2-core VM. A call that finds the kept buffer in use by another thread, or needs more than the
// bound, allocates its own.
constexpr size_t kKeptWorkspaceBytes = size_t(256) << 20;

class OwnWorkspace {
 public:
  void* get(size_t bytes) {
    if (bytes <= kKeptWorkspaceBytes) {
      Kept& k = kept();
      std::unique_lock<std::mutex> lock(k.mutex, std::try_to_lock);
      if (lock.owns_lock()) {
        if (k.bytes < bytes) {
          k.buffer.reset();
          k.bytes = 0;
          k.buffer.reset(new unsigned char[bytes]);
          k.bytes = bytes;
        }
        lock_ = std::move(lock);
        return k.buffer.get();
      }
    }
    own_.reset(new unsigned char[bytes]);
    return own_.get();
  }

 private:
  struct Kept {
    std::mutex mutex;
    std::unique_ptr<unsigned char[]> buffer;
    size_t bytes = 0;
  };
  // Never destroyed: a call on a detached thread may still hold it while the process exits.
  static Kept& kept() {
    static Kept* k = new Kept;
    return *k;
  }
  std::unique_lock<std::mutex> lock_;  // holds the kept buffer for this call
  std::unique_ptr<unsigned char[]> own_;
};

}  // namespace

size_t compute_workspace_bytes(const Call& call, const Plan& plan) {
  Carver measure(nullptr);
  carve(measure, call, plan);
  carve_partials(measure, call, plan);
  carve_top_k(measure, call, plan);
  return measure.required();
}

void compute(const Call& call, const Plan& plan) {
  const bool fast = fast_covers(call, plan);
  // Before anything is written; the fast path checks the targets itself (below).
  if (call.check_targets && !fast) check_targets(call);
  OwnWorkspace owned;
  void* base = call.workspace ? call.workspace : owned.get(compute_workspace_bytes(call, plan));
  Carver carver(base);
  const Buffers b = carve(carver, call, plan);
  const Partials partials = carve_partials(carver, call, plan);
  const TopKScratch topk = carve_top_k(carver, call, plan);
  for (size_t i = 0; i < plan.weight_table.size(); ++i) b.weights[i] = plan.weight_table[i];
  const Program prog = bind_program(plan, b, call);
  const Layout& L = call.layout;
  const FastCall fc = fast ? make_fast_call(call, prog, b) : FastCall{};
  if (fc.check_first) fast_check_targets(fc);  // before anything is written
  if (plan.top_k >= 0)                         // before the passes read `selected`
    select_top_k(call, plan, b, topk, fast ? &fc : nullptr);

  // maps of distance / skeleton terms (geometry_cpu.cpp)
  geometry_forward(call, prog, b.geo, fast ? &fc : nullptr);
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    const ElementArgs a = element_args(call);
    const T* x = static_cast<const T*>(call.input.data);
    if (prog.has_stats) {
      if (fast)
        statistics(call, prog, b.stats, partials.stats,
                   [&](int64_t n, int64_t q0, int64_t q1, double* row) {
                     fast_stats_chunk(fc, n, q0, q1, row);
                   });
      else
        statistics(call, prog, b.stats, partials.stats,
                   [&](int64_t n, int64_t q0, int64_t q1, double* row) {
                     stats_chunk(prog, a, x, n, q0, q1, row);
                   });
    }
    finalize_program(
        prog, finalize_buffers(b, call, call.loss_out.data, call.loss_out.dtype), L.N, L.C,
        call.grad_scale, 0, 1, [] {}, [](double v) { return v; });
    if (call.export_stats) return;  // culoss_compute_stats: the statistics are the result
    geometry_backward(call, prog, b.coefs, b.geo, fast ? &fc : nullptr);
    double element_total = 0.0;
    if (plan.element_pass) {
      if (fast)
        element_total = element_pass(call, partials.loss, [&](int64_t begin, int64_t end) {
          return fast_element_chunk(fc, begin, end);
        });
      else
        element_total =
            dispatch_grad<T>(call.grad.present, call.grad.dtype, call.grad.data, [&](auto* grad) {
              return element_pass(call, partials.loss, [&](int64_t begin, int64_t end) {
                return element_chunk(prog, a, x, grad, call, b, begin, end);
              });
            });
    }
    if (prog.none_mode == NONE_OFF)
      store_as(call.loss_out.data, call.loss_out.dtype, 0, b.value[0] + element_total);
  });
}

}  // namespace culoss::cpu

// CPU executor of the geometry steps (kernels/geometry/geometry.cuh: seeds, exact distance
// transforms, soft skeletons and their backward). The algorithms are the shared ones; here each
// data-parallel op runs in fixed chunks on the thread pool, every element (or line) written by
// exactly one task, so any thread count gives the same bits.
#include "cpu/geometry_cpu.hpp"

#include <algorithm>
#include <cstring>

#include "core/dispatch.hpp"
#include "cpu/fast_path.hpp"
#include "cpu/thread_pool.hpp"
#include "kernels/geometry/geometry.cuh"

namespace culoss::cpu {

namespace {

// The iterations of a row loop are independent (see run_grid): GCC may vectorise without
// checking for overlaps.
#if defined(__GNUC__) && !defined(__clang__)
#define CULOSS_IVDEP _Pragma("GCC ivdep")
#else
#define CULOSS_IVDEP
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#define CULOSS_GEOMETRY_AVX2 1
// Whether the rows may run their AVX2 copy: the instruction set the fast path chose for this
// CPU (fast_passes.cpp: CPUID, capped by CULOSS_CPU_SIMD) is AVX2 or wider. One choice for both;
// without Highway the fast path chooses nothing and the rows keep their baseline code.
bool use_avx2() {
  static const bool yes = [] {
    const char* t = fast_target_name();
    return std::strcmp(t, "AVX3") == 0 || std::strcmp(t, "AVX2") == 0;
  }();
  return yes;
}
#else
#define CULOSS_GEOMETRY_AVX2 0
#endif

struct CpuExec {
  static constexpr int kLineTile = 32;  // adjacent lines of axis 0 walked together
#if CULOSS_GEOMETRY_AVX2
  bool avx2 = use_avx2();
#endif
  template <class Op>
  void run(int64_t count, const Op& op, int64_t grain) const {
    for_each_chunk(Partition(count, grain), [&](int64_t, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) op(i);
    });
  }
  // The skeleton's images per group (geometry.cuh): about kSkeletonGroupPixels pixels, whose
  // planes (about 100 bytes a pixel in the backward) stay in the cores' caches from one op to
  // the next, and at least a chunk of rows for each thread. The grouping changes no value.
  static constexpr int64_t kSkeletonGroupPixels = int64_t(1) << 15;
  int64_t skeleton_group(int64_t, int64_t P) const {
    const int64_t pixels = std::max<int64_t>(kSkeletonGroupPixels, num_threads() * kGeometryGrain);
    return std::max<int64_t>(1, pixels / P);
  }
  template <class Op>
  void run_ranges(int64_t count, const Op& op, int64_t grain) const {
    for_each_chunk(Partition(count, grain), [&](int64_t, int64_t b, int64_t e) { op.range(b, e); });
  }
  // Rows along the last axis. A chunk of rows finds the coordinates of its first row once
  // (divisions) and counts them along from row to row; the first and last pixel of a row take
  // their in-range tests from them (Bounds<K>). A row away from the borders of the other axes
  // visits its inner pixels with compile-time bounds (Interior<K>) in a loop of its own, which
  // the compiler vectorises: every grid op writes only element i of its outputs and reads planes
  // it does not write (geometry.cuh), so the iterations are independent (ivdep).
  template <class Op>
  void run_grid(const Grid& g, int64_t images, const Op& op) const {
    switch (g.k) {
      case 1:
        return rows<1>(g, images, op);
      case 2:
        return rows<2>(g, images, op);
      default:
        return rows<3>(g, images, op);
    }
  }
  // The inner pixels of a row (H: Interior<K>, or RowEdge<K> on a row at the border of another
  // axis); compiled a second time for AVX2 where the compiler can (the same operations on wider
  // vectors: the same bits), chosen at run time.
  template <class H, class Op>
  static void inner_row(const Op& op_in, const H& inner_in, int64_t start, int64_t n) {
    // Local copies: the stores of selections cannot alias them, so the strides and
    // pointers stay in registers and the loads along the row are contiguous vectors.
    const Op op = op_in;
    const H inner = inner_in;
    CULOSS_IVDEP
    for (int64_t c = 1; c < n - 1; ++c) op(start + c, inner);
  }
#if CULOSS_GEOMETRY_AVX2
  template <class H, class Op>
  __attribute__((target("avx2"))) static void inner_row_avx2(const Op& op_in, const H& inner_in,
                                                             int64_t start, int64_t n) {
    const Op op = op_in;
    const H inner = inner_in;
    CULOSS_IVDEP
    for (int64_t c = 1; c < n - 1; ++c) op(start + c, inner);
  }
#endif
  template <int K, class Op>
  void rows(const Grid& g, int64_t images, const Op& op_in) const {
    const int last = K - 1;
    const int64_t n = g.extent[last], count = images * (g.P / n);
    Interior<K> inner{};
    for (int a = 0; a < K; ++a) inner.stride[a] = g.stride[a];
    for_each_chunk(Partition(count, kGeometryGrain / n + 1), [&](int64_t, int64_t b, int64_t e) {
      // A local copy: the stores of the selections could alias the caller's op, not this.
      const Op op = op_in;
      int64_t coord[kMaxSpatialAxes] = {};  // of row r along the axes before the last
      for (int a = 0; a < last; ++a) coord[a] = (b * n % g.P / g.stride[a]) % g.extent[a];
      Bounds<K> ends{};
      for (int a = 0; a < K; ++a) ends.stride[a] = g.stride[a];
      for (int64_t r = b; r < e; ++r) {
        const int64_t start = r * n;
        bool interior_row = true;
        for (int a = 0; a < last; ++a) {
          ends.before[a] = coord[a] > 0;
          ends.after[a] = coord[a] + 1 < g.extent[a];
          interior_row = interior_row && ends.before[a] && ends.after[a];
        }
        for (int a = last - 1; a >= 0; --a) {  // the next row's coordinates
          if (++coord[a] < g.extent[a]) break;
          coord[a] = 0;
        }
        if (n < 3) {  // no inner pixels
          for (int64_t c = 0; c < n; ++c) {
            ends.before[last] = c > 0;
            ends.after[last] = c + 1 < n;
            op(start + c, ends);
          }
          continue;
        }
        // The first pixel, the inner ones in a loop of their own, the last pixel.
        auto along = [&](const auto& inner_h) {
          ends.before[last] = false;
          ends.after[last] = true;
          op(start, ends);
#if CULOSS_GEOMETRY_AVX2
          if (avx2) {
            inner_row_avx2(op, inner_h, start, n);
          } else
#endif
            inner_row(op, inner_h, start, n);
          ends.before[last] = true;
          ends.after[last] = false;
          op(start + n - 1, ends);
        };
        if (interior_row) {
          along(inner);
        } else {  // a row at the border of another axis: its tests are the row's
          RowEdge<K> edge{};
          static_cast<Bounds<K>&>(edge) = ends;
          along(edge);
        }
      }
    });
  }
};

ElementArgs args(const Call& call) {
  return ElementArgs{call.layout, call.target_view(), call.pixel_weight_data()};
}

}  // namespace

void geometry_forward(const Call& call, const Program& prog, const GeometryBuffers& geo,
                      const FastCall* fast) {
  if (prog.map_width == 0) return;
  CpuExec ex;
  const Layout& L = call.layout;
  if (fast) {
    for_each_chunk(Partition(L.N * L.P, chunk_pixels(L.C)),
                   [&](int64_t, int64_t b, int64_t e) { fast_seed_chunk(*fast, b, e); });
    return geometry_transform(ex, prog, geo);
  }
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    ex.run(L.N * L.P,
           SeedOp<T, double>{prog, args(call), static_cast<const T*>(call.input.data), geo.maps},
           chunk_pixels(L.C));
  });
  geometry_transform(ex, prog, geo);
}

void geometry_backward(const Call& call, const Program& prog, const double* coefs,
                       const GeometryBuffers& geo, const FastCall* fast) {
  if (!prog.any_map_grad || !call.grad.present) return;
  CpuExec ex;
  const Layout& L = call.layout;
  if (fast) {  // a covered call's one map-gradient term is its CLDICE term
    for_each_chunk(Partition(L.N * L.P, chunk_pixels(L.C)),
                   [&](int64_t, int64_t b, int64_t e) { fast_upstream_chunk(*fast, b, e); });
    return geometry_backward(ex, prog, geo);
  }
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    ex.run(L.N * L.P,
           UpstreamOp<T, double>{prog, args(call), static_cast<const T*>(call.input.data), geo.maps,
                                 coefs},
           chunk_pixels(L.C));
  });
  geometry_backward(ex, prog, geo);
}

}  // namespace culoss::cpu

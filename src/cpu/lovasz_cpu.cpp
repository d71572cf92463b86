// CPU backend of the Lovász losses: per segment, the counted items sorted by error (descending,
// ties by element index; a NaN error first), then the Jaccard gradient along the order. Double
// precision; the sort buffers are host vectors. Items and the gradient are computed in chunks of
// pixels, the segments one task each (or a few small ones), on the thread pool: every result is
// written by one task, so any number of threads gives the same bits.
#include <algorithm>
#include <vector>

#include "core/dispatch.hpp"
#include "cpu/backend.hpp"
#include "cpu/radix_sort.hpp"
#include "cpu/thread_pool.hpp"

namespace culoss::cpu {

void compute(const Call& call, const LovaszPlan& lp) {
  if (call.check_targets) check_targets(call);
  if (call.input.numel == 0) {  // nothing to sort: every problem's loss is 0 (and C may be huge)
    if (call.export_stats) {
      call.export_stats[0] = 0.0;
      call.export_stats[1] = static_cast<double>(lp.shape.problems());
    } else if (call.global_stats && lp.reduction != RED_NONE) {
      store_as(call.loss_out.data, call.loss_out.dtype, 0,
               lovasz_loss_from_stats(lp.hinge, lp.reduction, call.global_stats, lp.shape.C));
    } else {
      for (int64_t i = 0; i < call.loss_out.numel; ++i)
        store_as(call.loss_out.data, call.loss_out.dtype, i, 0.0);
    }
    return;
  }
  const Layout& L = call.layout;
  const LovaszShape& sh = lp.shape;
  const int64_t numel = call.input.numel, segments = sh.segments();
  const TargetView tv = call.target_view();

  // Every element's item (its segment is implied by its image and class).
  std::vector<LovaszItem<double>> items(static_cast<size_t>(numel));
  const Partition pixels(L.N * L.P, chunk_pixels(L.C));
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    const T* x = static_cast<const T*>(call.input.data);
    for_each_chunk(pixels, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t pix = begin; pix < end; ++pix)
        lovasz_pixel<double>(
            lp.hinge, lp.activation, L, tv, call.pixel_weight_data(), x, pix / L.P, pix % L.P,
            [&](int64_t, int64_t e, const LovaszItem<double>& it) { items[e] = it; });
    });
  });

  // Per segment: sort, Jaccard gradient g of every item, the segment's loss.
  std::vector<double> seg_loss(static_cast<size_t>(segments), 0.0), seg_gts(seg_loss);
  std::vector<double> slope_g(static_cast<size_t>(numel), 0.0);  // g · d(error)/d(p or x)
  const int64_t length = sh.segment_length();
  const Partition segment_tasks(segments, kChunkElements / std::max<int64_t>(length, 1));
  for_each_chunk(segment_tasks, [&](int64_t, int64_t seg_begin, int64_t seg_end) {
    std::vector<KeyedElement> order, scratch;
    for (int64_t seg = seg_begin; seg < seg_end; ++seg) {
      const int64_t problem = seg / L.C, c = seg % L.C;
      order.clear();
      for (int64_t n = sh.per_image ? problem : 0; n < (sh.per_image ? problem + 1 : L.N); ++n)
        for (int64_t q = 0; q < L.P; ++q) {  // ascending elements: ties keep this order
          const int64_t e = L.base(n, q) + c * L.class_stride();
          if (items[e].counted) order.push_back(KeyedElement{descending_key(items[e].e), e});
        }
      radix_sort(order, scratch);
      double gts = 0.0;
      for (const KeyedElement& k : order) gts += items[k.element].fg ? 1.0 : 0.0;
      double cum_t = 0.0, cum_f = 0.0, loss = 0.0;
      for (const KeyedElement& k : order) {
        const LovaszItem<double>& it = items[k.element];
        (it.fg ? cum_t : cum_f) += 1.0;
        const double g = lovasz_grad(gts, cum_t, cum_f, it.fg);
        loss += (lp.hinge ? max_r(it.e, 0.0) : it.e) * g;
        slope_g[k.element] = g * lovasz_error_slope(lp.hinge, it);
      }
      seg_loss[seg] = loss;
      seg_gts[seg] = gts;
    }
  });

  // Segment weights and the loss. Distributed: the statistics are [Σ of the problems' losses,
  // number of problems]; finishing from summed statistics divides by every rank's problems.
  const int64_t problems = sh.problems();
  const double all_problems =
      call.global_stats ? call.global_stats[1] : static_cast<double>(problems);
  std::vector<double> weight(static_cast<size_t>(segments));
  for (int64_t seg = 0; seg < segments; ++seg) {
    const int64_t problem = seg / L.C;
    int64_t present = 0;
    for (int64_t c = 0; c < L.C; ++c)
      if (lp.classes_all || seg_gts[problem * L.C + c] > 0.0) ++present;
    weight[seg] = lovasz_segment_weight(lp.hinge, lp.reduction, lp.classes_all, seg_gts[seg],
                                        present, all_problems, L.C);
  }
  void* out = call.loss_out.data;
  if (lp.reduction == RED_NONE) {
    if (lp.hinge) {
      for (int64_t seg = 0; seg < segments; ++seg)
        store_as(out, call.loss_out.dtype, seg, seg_loss[seg]);
    } else {
      for (int64_t pr = 0; pr < problems; ++pr) {
        double v = 0.0;
        for (int64_t c = 0; c < L.C; ++c) v += weight[pr * L.C + c] * seg_loss[pr * L.C + c];
        store_as(out, call.loss_out.dtype, pr, v);
      }
    }
  } else {
    double total = 0.0;
    for (int64_t seg = 0; seg < segments; ++seg) total += weight[seg] * seg_loss[seg];
    if (call.export_stats) {  // planned with SUM weights
      call.export_stats[0] = total;
      call.export_stats[1] = static_cast<double>(problems);
      return;
    }
    if (call.global_stats) {
      total = lovasz_loss_from_stats(lp.hinge, lp.reduction, call.global_stats, L.C);
    }
    store_as(out, call.loss_out.dtype, 0, total);
  }
  if (!call.grad.present) return;

  // Gradient: the hinge's slope is d/dx already; the softmax's goes through the activation.
  dispatch_float(call.input.dtype, [&](auto t) {
    using T = decltype(t);
    auto write = [&](auto* grad) {
      using G = std::remove_pointer_t<decltype(grad)>;
      for_each_chunk(pixels, [&](int64_t, int64_t begin, int64_t end) {
        std::vector<double> G_c(static_cast<size_t>(L.C));
        for (int64_t pix = begin; pix < end; ++pix) {
          const int64_t n = pix / L.P, q = pix % L.P;
          const int64_t base = L.base(n, q), stride = L.class_stride();
          double dot = 0.0;
          for (int64_t c = 0; c < L.C; ++c) {
            const int64_t e = base + c * stride;
            G_c[c] = call.grad_scale * weight[sh.segment(n, c)] * slope_g[e];
            dot += items[e].p * G_c[c];
          }
          for (int64_t c = 0; c < L.C; ++c) {
            const int64_t e = base + c * stride;
            const bool softmax = !lp.hinge && lp.activation == ACT_SOFTMAX;
            grad[e] = StoreAs<G>::from(softmax ? items[e].p * (G_c[c] - dot) : G_c[c]);
          }
        }
      });
    };
    dispatch_grad<T>(true, call.grad.dtype, call.grad.data, write);
  });
}

}  // namespace culoss::cpu

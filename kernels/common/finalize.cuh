// Step 3 of DESIGN.md §1: from the per-(image, class) statistics to the loss value(s) and the
// coefficients the element pass needs. Written once for both backends: the CPU runs it as one
// thread, a CUDA kernel as one block (tid/threads, a barrier and a deterministic block sum are
// passed in). Terms are finalized one after another; each uses all threads.
#pragma once

#include "kernels/common/dtype.cuh"  // DType, store_as
#include "kernels/common/terms.cuh"

namespace culoss {

struct FinalizeBuffers {
  const double* stats;    // [N][C][stat_width]
  const double* weights;  // class and positive weights of all terms (weight table)
  double* coefs;          // [N][C][coef_width]
  double* scale;          // [kMaxTerms]: value scale of each element-wise term
  double* scratch_a;      // region coefficients / per-class weights, max(groups x C, C)
  double* scratch_b;
  double* ell;  // region group losses, max groups
  double* wgt;
  double* region_value;  // [1]: Σ weight · value of the region terms, plus the constant
  void* none_out;        // NONE of a region term: its per-group outputs
  DType none_dtype;
  // Distributed: `global` is the statistics vector summed over all ranks (culoss_compute_
  // from_stats); `export_vec` receives this rank's vector (culoss_compute_stats). Both NULL
  // for a plain culoss_compute.
  const double* global;
  double* export_vec;
  int64_t pixels;  // this rank's N x P
};

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class Sync, class Total>
CULOSS_HD void finalize_program(const Program& prog, const FinalizeBuffers& b, int64_t N, int64_t C,
                                double grad_scale, int64_t tid, int64_t threads, Sync&& sync,
                                Total&& total) {
  const int64_t W = prog.coef_width, S = prog.stat_width;
  double region_value = prog.constant;
  if (b.export_vec) {  // this rank's per-class totals and pixel count; term slots follow
    for (int64_t j = tid; j < C * S; j += threads) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) sum += b.stats[n * C * S + j];
      b.export_vec[j] = sum;
    }
    for (int64_t j = C * S + tid; j < prog.export_count; j += threads) b.export_vec[j] = 0.0;
    sync();
    if (tid == 0) b.export_vec[prog.export_pixels] = static_cast<double>(b.pixels);
  }
  // A statistic of class c summed over the batch: over every rank when distributed.
  auto class_total = [&](int64_t c, int64_t slot) {
    if (b.global) return b.global[c * S + slot];
    double sum = 0.0;
    for (int64_t n = 0; n < N; ++n) sum += b.stats[(n * C + c) * S + slot];
    return sum;
  };
  for (int i = 0; i < prog.count; ++i) {
    const TermSpec& ts = prog.term[i];
    if (ts.kind == TK_REGION) {
      const RegionParams& rp = ts.region;
      const int64_t groups = rp.groups();
      for (int64_t g = tid; g < groups; g += threads)
        region_finalize_group(rp, b.stats, g, b.scratch_a, b.scratch_b, b.ell, b.wgt);
      sync();
      double s = 0.0, w = 0.0;
      for (int64_t g = tid; g < groups; g += threads) {
        s += b.wgt[g] * b.ell[g];
        w += b.wgt[g];
      }
      double weighted_sum = total(s), weight_total = total(w);
      if (!rp.batch) {  // per-image groups: the mean's sums run over every rank's images
        if (b.export_vec && tid == 0) {
          b.export_vec[ts.export_offset] = weighted_sum;
          b.export_vec[ts.export_offset + 1] = weight_total;
        }
        if (b.global) {
          weighted_sum = b.global[ts.export_offset];
          weight_total = b.global[ts.export_offset + 1];
        }
      }
      region_value += ts.weight * region_reduced_loss(rp.reduction, weighted_sum, weight_total);
      for (int64_t j = tid; j < N * C; j += threads) {
        const int64_t n = j / C, c = j % C, gn = rp.batch ? 0 : n;
        const double f =
            ts.weight * region_group_scale(rp.reduction, b.wgt[region_group_of(rp, gn, c)],
                                           weight_total, grad_scale);
        b.coefs[j * W + ts.coef_offset + 0] = f * b.scratch_a[gn * C + c];
        b.coefs[j * W + ts.coef_offset + 1] = f * b.scratch_b[gn * C + c];
      }
      if (rp.reduction == RED_NONE && b.none_out)  // culoss_compute_stats writes no outputs
        for (int64_t g = tid; g < groups; g += threads)
          store_as(b.none_out, b.none_dtype, g, b.wgt[g] * b.ell[g]);
      sync();
      continue;
    }

    // Element-wise terms: per-class weights, then the divisor of MEAN (and, distributed, the
    // value from its statistics).
    const double* cw = ts.class_weight_offset >= 0 ? b.weights + ts.class_weight_offset : nullptr;
    const double* pw = ts.pos_weight_offset >= 0 ? b.weights + ts.pos_weight_offset : nullptr;
    const int64_t off = ts.stat_offset, vo = ts.value_offset;
    double divisor_part = 0.0, value_part = 0.0;
    for (int64_t c = tid; c < C; c += threads) {
      const double wc = cw ? cw[c] : 1.0;
      const double tsum = ts.stat_count > 0 ? class_total(c, off) : 0.0;      // Σ m t
      const double msum = ts.stat_count > 1 ? class_total(c, off + 1) : 0.0;  // Σ m
      double pos = wc, neg = wc;
      if (ts.kind == TK_BCE) {
        pos = (pw ? pw[c] : 1.0) * wc * ts.pos_scale;
        neg = wc * ts.neg_scale;
        if (ts.batch_frequency) {  // ω⁺ = mean(1 − t), ω⁻ = mean(t) over the counted elements
          pos *= msum > 0.0 ? 1.0 - tsum / msum : 0.0;
          neg *= msum > 0.0 ? tsum / msum : 0.0;
        }
      }
      b.scratch_a[c] = pos;
      b.scratch_b[c] = neg;
      if (ts.kind == TK_CE || ts.kind == TK_FOCAL_SOFTMAX)
        divisor_part += wc * tsum;
      else if (ts.kind == TK_MARGINAL)
        divisor_part += c == 0 ? msum : 0.0;
      else
        divisor_part += msum;
      if (prog.value_in_stats) {
        if (ts.kind == TK_BCE)
          value_part += pos * class_total(c, vo) + neg * class_total(c, vo + 1);
        else if (ts.kind == TK_MARGINAL)
          value_part += c >= 1 ? class_total(c, vo) : 0.0;
        else
          value_part += wc * class_total(c, vo);
      }
    }
    const double divisor = ts.needs_target_stats
                               ? total(divisor_part)
                               : (b.global ? b.global[prog.export_pixels] * static_cast<double>(C)
                                           : static_cast<double>(ts.static_count));
    double scale = ts.weight;
    if (ts.reduction == RED_MEAN) scale = divisor > 0.0 ? ts.weight / divisor : 0.0;
    if (prog.value_in_stats) {
      double value = total(value_part);
      if (ts.kind == TK_MARGINAL) {
        // The background is charged where the argmax class is annotated in the pixel's image:
        // an image-local sum, added up over the ranks like the rest.
        double bg = 0.0;
        for (int64_t j = tid; j < N * C; j += threads)
          if (j % C == 0 || b.stats[j * S + off] > 0.0) bg += b.stats[j * S + vo + 1];
        bg = total(bg);
        if (b.export_vec && tid == 0) b.export_vec[ts.export_offset] = bg;
        value += b.global ? b.global[ts.export_offset] : bg;
      }
      region_value += scale * value;
    }
    sync();
    for (int64_t j = tid; j < N * C; j += threads) {
      const int64_t c = j % C;
      double* coef = b.coefs + j * W + ts.coef_offset;
      if (ts.kind == TK_MARGINAL) {
        coef[0] = b.stats[j * S + off + 0] > 0.0 ? 1.0 : 0.0;  // class c annotated in image n
      } else {
        coef[0] = b.scratch_a[c];
        if (ts.kind == TK_BCE) coef[1] = b.scratch_b[c];
      }
    }
    if (tid == 0) b.scale[i] = scale;
    sync();
  }
  if (tid == 0) b.region_value[0] = region_value;
  sync();
}

}  // namespace culoss

// The reduction of a region-style term's per-group losses to its value, shared by the units whose
// finalize computes one loss per (image, class) group (region.cuh, cldice.cuh): the weighted mean
// or sum over the groups, exported and replaced by the all-rank sums in the statistics API.
#pragma once

#include "kernels/common/region_math.cuh"
#include "kernels/common/terms.cuh"

namespace culoss {

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
// After every group's b.group_loss and b.group_weight are written: adds the term's reduced loss to
// f.value and returns the total group weight (over every rank when distributed), which the
// gradient's scale divides by. Every thread of the step calls it (it synchronises).
template <class Step>
CULOSS_HD double reduce_region_groups(const TermSpec& ts, const RegionParams& rp, Step& f) {
  const FinalizeBuffers& b = f.b;
  const int64_t groups = rp.groups();
  f.sync();
  double s = 0.0, w = 0.0;
  for (int64_t g = f.tid; g < groups; g += f.threads) {
    s += b.group_weight[g] * b.group_loss[g];
    w += b.group_weight[g];
  }
  double weighted_sum = f.total(s), weight_total = f.total(w);
  if (!rp.batch) {  // per-image groups: the mean's sums run over every rank's images
    if (b.export_vec && f.tid == 0) {
      b.export_vec[ts.export_offset] = weighted_sum;
      b.export_vec[ts.export_offset + 1] = weight_total;
    }
    if (b.global) {
      weighted_sum = b.global[ts.export_offset];
      weight_total = b.global[ts.export_offset + 1];
    }
  }
  f.value += ts.weight * region_reduced_loss(rp.reduction, weighted_sum, weight_total);
  return weight_total;
}

}  // namespace culoss

// Step 3 of the four steps (docs/reference.md): from the per-(image, class) statistics to the
// loss value(s) and the coefficients the element pass needs. Written once for both backends:
// the CPU runs it as one thread, a CUDA kernel as one block (tid/threads, a barrier and a
// deterministic block sum are passed in). Terms are finalized one after another by their units
// (kernels/terms); each uses all threads.
#pragma once

#include "kernels/terms/all.cuh"

namespace culoss {

#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class Sync, class Total>
CULOSS_HD void finalize_program(const Program& prog, const FinalizeBuffers& b, int64_t N, int64_t C,
                                double grad_scale, int64_t tid, int64_t threads, Sync&& sync,
                                Total&& total) {
  const int64_t S = prog.stat_width;
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
  FinalizeStep<Sync, Total> step{prog, b,       N,    C,     grad_scale,
                                 tid,  threads, sync, total, prog.constant};
  for (int i = 0; i < prog.count; ++i)
    visit_term(prog.term[i].kind,
               [&](auto unit) { decltype(unit)::finalize(prog.term[i], i, step); });
  if (tid == 0) b.value[0] = step.value;
  sync();
}

}  // namespace culoss

// The selection predicate of the CPU's fast path and the preparation of a covered call
// (fast_path.hpp). The vector passes themselves are in fast_passes.cpp.
#include "cpu/fast_path.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/registry.hpp"
#include "cpu/thread_pool.hpp"
#include "kernels/terms/cldice.cuh"  // its statistics slots

namespace culoss::cpu {

namespace {

// The kinds whose element math the vector passes implement.
bool kind_covered(culoss_kind kind) {
  switch (kind) {
    case CULOSS_DICE:
    case CULOSS_JACCARD:
    case CULOSS_TVERSKY:
    case CULOSS_FOCAL_TVERSKY:
    case CULOSS_GENERALIZED_DICE:
    case CULOSS_MCC:
    case CULOSS_CROSS_ENTROPY:
    case CULOSS_TOPK_CE:
    case CULOSS_BCE:
    case CULOSS_FOCAL:
    case CULOSS_MARGINAL_CE:
    case CULOSS_COMBO:  // planned as a BCE term and a Dice term (plan.cpp)
    case CULOSS_HAUSDORFF_DT:
    case CULOSS_BOUNDARY:
    case CULOSS_CLDICE:
      return true;
    default:
      return false;
  }
}

// Parameters the fast path takes at any value: each is either checked on the call or program
// (activation, class axis, reduction) or used by planning and finalize only, which both paths
// share. Any other parameter must be at its default.
bool param_handled(int param) {
  switch (param) {
    case CULOSS_PARAM_ACTIVATION:       // the terms must use the softmax (checked on the program)
    case CULOSS_PARAM_CLASS_AXIS:       // channels-first or channels-last (checked on the call)
    case CULOSS_PARAM_REDUCTION:        // NONE per element or pixel is refused by none_mode
    case CULOSS_PARAM_IGNORE_INDEX:     // read per pixel
    case CULOSS_PARAM_CLASS_WEIGHTS:    // in the coefficients
    case CULOSS_PARAM_POS_WEIGHT:       // in the coefficients (BCE)
    case CULOSS_PARAM_LABEL_SMOOTHING:  // read per term
    case CULOSS_PARAM_SQUARED_DENOMINATOR:  // read per term
    case CULOSS_PARAM_SMOOTH_NR:            // finalize only, from here on
    case CULOSS_PARAM_SMOOTH_DR:
    case CULOSS_PARAM_BATCH:
    case CULOSS_PARAM_INCLUDE_BACKGROUND:
    case CULOSS_PARAM_ALPHA:
    case CULOSS_PARAM_BETA:
    case CULOSS_PARAM_GAMMA:
    case CULOSS_PARAM_WEIGHT_TYPE:
    case CULOSS_PARAM_SKIP_EMPTY:
    case CULOSS_PARAM_AVERAGE:
    case CULOSS_PARAM_CHECK_TARGETS:  // the fast path's own checks
    case CULOSS_PARAM_TOP_FRACTION:   // the selection only (select_top_k)
    case CULOSS_PARAM_CE_RATIO:       // COMBO's term weights, from planning
    case CULOSS_PARAM_SPACING:        // the distance transforms only (the shared geometry step)
    case CULOSS_PARAM_ITERATIONS:     // the skeletons only (the shared geometry step)
      return true;
    default:
      return false;
  }
}

// Whether a distance term's map values fit float32 with room to spare, as the element pass reads
// them: a distance is at most the grid's diagonal (in SPACING units), HAUSDORFF_DT's value is
// (d + d̄)^ALPHA ≤ diagonal^ALPHA, BOUNDARY's |φ| ≤ diagonal. Larger ones (a huge ALPHA or
// spacing) stay in double on the generic passes.
bool maps_fit_float(const Grid& g, const TermSpec& t) {
  double diagonal2 = 0.0;
  for (int a = 0; a < g.k; ++a)
    diagonal2 +=
        static_cast<double>(g.extent[a]) * static_cast<double>(g.extent[a]) * t.spacing2[a];
  const double diagonal = std::sqrt(diagonal2);
  const double largest = t.kind == TK_HAUSDORFF_DT ? std::pow(diagonal, t.alpha) : diagonal;
  return largest <= 1e30;
}

bool at_default(const culoss_loss_s& loss, const ParamInfo& info, const ParamRule& rule) {
  switch (info.type) {
    case ParamType::Int:
      return static_cast<double>(int_value(loss.params, info)) == rule.default_value;
    case ParamType::Float:
      return float_value(loss.params, info) == rule.default_value;
    case ParamType::Floats: {
      Params copy = loss.params;  // list_value reads a mutable descriptor; lists default empty
      return list_value(copy, info).empty();
    }
  }
  return false;
}

bool descriptor_covered(const culoss_loss_s& loss) {
  if (loss.kind == CULOSS_SUM) {
    for (const culoss_loss_s& term : loss.terms)
      if (!descriptor_covered(term)) return false;
    return !loss.terms.empty();
  }
  if (!kind_covered(loss.kind)) return false;
  for (int p = 1; p <= param_count(); ++p) {
    const ParamInfo* info = find_param(p);
    const ParamRule* rule = find_rule(loss.kind, p);
    if (!info || !rule || param_handled(p)) continue;
    if (!at_default(loss, *info, *rule)) return false;
  }
  return true;
}

}  // namespace

bool fast_covers(const Call& call, const Plan& plan) {
#if !defined(CULOSS_HAVE_HWY)
  (void)call;
  (void)plan;
  return false;
#else
  // CULOSS_CPU_FAST_PATH=0 sends every call to the generic passes: for comparing the two paths
  // (tests/losses/fast_path_test.cpp, benchmarks). Read per call, so a test can switch it.
  const char* env = std::getenv("CULOSS_CPU_FAST_PATH");
  if (env && std::strcmp(env, "0") == 0) return false;
  const Layout& L = call.layout;
  const Program& prog = plan.prog;
  if (!call.loss || !descriptor_covered(*call.loss)) return false;
  if (call.distributed || call.export_stats || call.global_stats || prog.value_in_stats)
    return false;
  const bool channels_first = L.pre == 1 && L.inner == L.P;
  if (call.input.dtype != DType::F32 && call.input.dtype != DType::F16 &&
      call.input.dtype != DType::BF16)
    return false;
  if (call.grad.present && call.grad.dtype != DType::F32 && call.grad.dtype != DType::F16 &&
      call.grad.dtype != DType::BF16)
    return false;
  if (prog.count < 1 || prog.count > kMaxTerms) return false;
  if (!call.index_target || call.binary_mask) {  // dense targets or a mask: the sigmoid passes
    const DType td = call.target.dtype;
    const bool target_ok = call.binary_mask
                               ? td == DType::U8 || td == DType::I32 || td == DType::I64
                               : td == DType::F32 || td == DType::U8;
    if (!channels_first || L.C > kFastMaxClasses || !target_ok) return false;
    // a mask's MEAN counts its counted pixels (Σ m t, Σ m); dense targets count every element
    const int counts = call.binary_mask ? 2 : 0;
    int bce_terms = 0, focal_terms = 0;
    for (int i = 0; i < prog.count; ++i) {
      const TermSpec& t = prog.term[i];
      if (t.activation != ACT_SIGMOID) return false;
      const bool counts_ok = t.stat_count == 0 || t.stat_count == counts;
      if (t.kind == TK_BCE) {
        if (t.batch_frequency || !counts_ok || ++bce_terms > 1) return false;
      } else if (t.kind == TK_FOCAL_BINARY) {
        if (!counts_ok || ++focal_terms > 1) return false;
      } else if (t.kind != TK_REGION || t.stat_count != t.region.stat_slots()) {
        return false;
      }
    }
    return prog.none_mode == NONE_OFF ||
           (prog.none_mode == NONE_GROUPS && bce_terms + focal_terms == 0);
  }
  if (call.target.dtype != DType::I64 && call.target.dtype != DType::I32 &&
      call.target.dtype != DType::U8)
    return false;
  const bool channels_last = L.inner == 1 && L.pre == L.P;
  if (!(channels_first || channels_last) || L.C < 2 || L.C > kFastMaxClasses) return false;
  if (prog.none_mode != NONE_OFF && prog.none_mode != NONE_GROUPS) return false;
  int softmax_focal_terms = 0, marginal_terms = 0, hd_terms = 0, boundary_terms = 0,
      cldice_terms = 0;
  for (int i = 0; i < prog.count; ++i) {
    const TermSpec& t = prog.term[i];
    if (t.activation != ACT_SOFTMAX) return false;
    if (t.kind == TK_HAUSDORFF_DT || t.kind == TK_BOUNDARY) {  // maps are channels-first planes
      int& terms = t.kind == TK_HAUSDORFF_DT ? hd_terms : boundary_terms;
      if (!channels_first || t.stat_count > 2 || ++terms > 1 || !maps_fit_float(prog.grid, t))
        return false;
      continue;
    }
    if (t.kind == TK_CLDICE) {  // its five sums (ClDiceTerm::stats), channels-first maps
      if (!channels_first || t.stat_count != 5 || ++cldice_terms > 1) return false;
      continue;
    }
    if (t.kind == TK_REGION) {
      if (t.stat_count != t.region.stat_slots()) return false;
    } else if (t.kind == TK_CE || (t.kind == TK_TOPK_CE && prog.count == 1)) {
      if (t.stat_count > 1) return false;  // Σ m t only (no distributed value slots)
    } else if (t.kind == TK_FOCAL_SOFTMAX) {
      if (t.stat_count > 1 || ++softmax_focal_terms > 1) return false;
    } else if (t.kind == TK_MARGINAL) {  // Σ m [t ≥ ½], Σ m; its value from the element pass
      if (t.stat_count != 2 || ++marginal_terms > 1) return false;
    } else {
      return false;
    }
  }
  return true;
#endif
}

void fast_check_targets(const FastCall& f) {
  const Call& call = *f.call;
  for_each_chunk(Partition(call.target.numel, kChunkElements),
                 [&](int64_t, int64_t b, int64_t e) { fast_check_targets_chunk(f, b, e); });
  if (f.pixel_weight)
    for_each_chunk(Partition(call.pixel_weight.numel, kChunkElements),
                   [&](int64_t, int64_t b, int64_t e) { fast_check_weights_chunk(f, b, e); });
}

FastCall make_fast_call(const Call& call, const Program& prog, const Buffers& b) {
  const Layout& L = call.layout;
  FastCall f{};
  f.call = &call;
  f.x = call.input.data;
  f.x_dtype = call.input.dtype;
  f.labels = call.target.data;
  f.label_dtype = call.target.dtype;
  f.pixel_weight = call.pixel_weight_data();
  f.N = L.N;
  f.C = L.C;
  f.P = L.P;
  f.ignore_index = call.ignore_index;
  const bool channels_first = L.pre == 1 && L.inner == L.P;  // (N, C) counts as channels-first
  f.class_stride = channels_first ? L.P : 1;
  f.pixel_stride = channels_first ? 1 : L.C;
  f.stat_width = prog.stat_width;
  f.slot_count = 0;
  f.sigmoid_dense = !call.index_target || call.binary_mask;
  f.mask_labels = call.binary_mask;
  f.bce_term = -1;
  f.topk_term = -1;
  f.focal_term = -1;
  f.marginal_term = -1;
  f.hd_term = -1;
  f.boundary_term = -1;
  f.cldice_term = -1;
  f.maps = b.geo.maps;
  const int64_t plane = L.N * L.C * L.P;  // of the maps
  for (int i = 0; i < prog.count; ++i) {
    const TermSpec& t = prog.term[i];
    auto add = [&](int slot, int q) {
      f.slot[f.slot_count] = slot;
      f.quantity[f.slot_count++] = q;
      f.need[q] = true;
    };
    if (t.kind == TK_REGION) {  // region_element_stats: I, SP (or Σ v p²), ST (or Σ v t²), SV
      add(t.stat_offset + kStatI, FQ_VPT);
      add(t.stat_offset + kStatSP, t.region.squared ? FQ_VPP : FQ_VP);
      add(t.stat_offset + kStatST, t.region.squared && !call.index_target ? FQ_VTT : FQ_VT);
      if (t.region.kind == RK_MCC) add(t.stat_offset + kStatSV, FQ_V);
      f.stats_need_p = true;
    } else if (t.kind == TK_CLDICE) {  // ClDiceTerm::stats
      add(t.stat_offset + kClStatA, FQ_CL_A);
      add(t.stat_offset + kClStatB, FQ_CL_B);
      add(t.stat_offset + kClStatCs, FQ_CL_CS);
      add(t.stat_offset + kClStatD, FQ_CL_D);
      add(t.stat_offset + kClStatT, FQ_VT);
      f.stats_need_p = true;
    } else if (t.stat_count >= 1) {  // CrossEntropyTerm::counts, ElementwiseTerm::counts
      add(t.stat_offset, FQ_MT);     // Σ m t
      if (t.stat_count == 2) add(t.stat_offset + 1, FQ_M);  // Σ m
    }
    if (t.kind == TK_CE || t.kind == TK_TOPK_CE || t.kind == TK_FOCAL_SOFTMAX ||
        t.kind == TK_MARGINAL)
      f.any_ce = f.need_log = true;
    if (t.kind == TK_HAUSDORFF_DT) {
      f.any_ce = true;  // an element value
      f.hd_term = i;
      f.hd_maps[0] = b.geo.maps + static_cast<int64_t>(t.map_offset) * plane;
      f.hd_maps[1] = f.hd_maps[0] + plane;
    }
    if (t.kind == TK_CLDICE) {
      f.cldice_term = i;
      f.cldice_maps = b.geo.maps + static_cast<int64_t>(t.map_offset) * plane;
    }
    if (t.kind == TK_BOUNDARY) {
      f.any_ce = true;
      f.boundary_term = i;
      f.boundary_map = b.geo.maps + static_cast<int64_t>(t.map_offset) * plane;
    }
    if (t.kind == TK_MARGINAL) f.marginal_term = i;
    if (t.kind == TK_TOPK_CE) {
      f.topk_term = i;
      f.selected = b.selected;
      f.topk_class_weights =
          t.class_weight_offset >= 0 ? b.weights + t.class_weight_offset : nullptr;
    }
    if (t.kind == TK_REGION) f.any_region = true;
    if (t.kind == TK_BCE) f.bce_term = i;
    if (t.kind == TK_FOCAL_BINARY || t.kind == TK_FOCAL_SOFTMAX) f.focal_term = i;
  }
  f.stats_label_counts = !f.sigmoid_dense && !f.stats_need_p;
  for (int q = 0; q < FQ_COUNT; ++q)
    if (f.need[q] && q != FQ_MT && q != FQ_M) f.stats_label_counts = false;
  f.cache_p = f.any_region && !f.any_ce && f.cldice_term < 0 && !f.sigmoid_dense &&
              call.grad.present && call.grad.dtype == DType::F32 && f.pixel_stride == 1;
  // Without pixel weights (to be checked after every label) the statistics pass reads every
  // label before anything is written and refuses a bad one itself, the same chunk-ordered error
  // as check_targets; unless it writes the probabilities (cache_p).
  f.check_labels = call.check_targets && call.index_target && !f.sigmoid_dense && prog.has_stats &&
                   !f.pixel_weight && !f.cache_p;
  f.check_first = call.check_targets && !f.check_labels;
  f.prog = &prog;
  f.coefs = b.coefs;
  f.scale = b.scale;
  f.grad_scale = call.grad_scale;
  f.grad = call.grad.present ? call.grad.data : nullptr;
  f.grad_dtype = call.grad.dtype;
  return f;
}

}  // namespace culoss::cpu

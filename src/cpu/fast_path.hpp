// The CPU's fast path: passes specialised for the common calls, in float SIMD (Google Highway,
// the instruction set chosen at run time), beside the generic passes of kernels/common/passes.cuh
// that interpret any Program in double.
//
// What it covers is decided in ONE place, fast_covers (fast_path.cpp), on an allow-list: softmax
// cross-entropy and the softmax region kinds (Dice, Jaccard, Tversky, focal Tversky, generalized
// Dice, MCC), the softmax focal loss, MARGINAL_CE, and (channels-first) the geometry kinds
// HAUSDORFF_DT, BOUNDARY and CLDICE, alone or in a CULOSS_SUM of them, and top-k cross-entropy
// alone; channels-first input
// (NCHW, NCDHW; channels-last too, gathered lane by lane) of float32, float16 or bfloat16,
// class-index targets (int64, int32, uint8), 2 <= C <= kFastMaxClasses, float32, float16 or
// bfloat16 gradient, not distributed; every other parameter of the descriptor at its default (a
// parameter the fast path does not know is "not covered" until someone teaches it). Everything else
// runs the generic passes. Steps 1 and 3 (planning, finalize) are the same code for both.
//
// Also dense float32 or uint8 targets with ACTIVATION_SIGMOID, channels-first: the region kinds
// (MCC too), binary cross-entropy (BceTerm, kernels/terms/bce.cuh; no BATCH_FREQUENCY) and the
// binary focal loss (FocalBinaryTerm, kernels/terms/focal_binary.cuh), at most one term of each
// of the last two, alone or in a CULOSS_SUM, per (image, class) runs of pixels. MCC with the
// softmax and index targets is covered as the other region kinds.
//
// Precision: probabilities, losses and gradients in float; the statistics and the loss summed in
// float per SIMD lane over at most kFastFlush vectors, then in double per lane and over the lanes
// in a fixed order (label counts alone, the cross-entropy kinds' divisors, are counted in
// integers: the same exact sums); chunks as in the generic passes. So the result is bitwise the
// same for any thread count on one machine (it may differ in the last bits between instruction
// sets, whose vectors have different widths). docs/reference.md gives the tolerance against the
// long-double references.
#pragma once

#include <cstdint>

#include "core/plan.hpp"
#include "core/tensor.hpp"

namespace culoss::cpu {

constexpr int64_t kFastMaxClasses = 64;
constexpr int kFastFlush = 64;  // vectors summed in float before a flush to double

// Per-class sums the statistics pass can produce (index targets: t is 0 or 1, so t² = t).
// Dense targets add Σ v t² (squared denominators); MCC adds Σ v; the element-wise terms' MEAN
// counts Σ m t and, for a binary mask and MARGINAL_CE, Σ m (m: 1 where the pixel counts).
// CLDICE (ClDiceTerm::stats) sums Σ v S_p t, Σ v S_p, Σ v S_t p, Σ v S_t over its skeleton maps
// (and Σ v t: FQ_VT).
enum FastQuantity : int {
  FQ_VPT,
  FQ_VP,
  FQ_VPP,
  FQ_VT,
  FQ_VTT,
  FQ_V,
  FQ_MT,
  FQ_M,
  FQ_CL_A,
  FQ_CL_B,
  FQ_CL_CS,
  FQ_CL_D,
  FQ_COUNT
};

// A call the fast path covers, prepared once per call for the vector passes.
struct FastCall {
  const Call* call;
  const void* x;
  DType x_dtype;
  const void* labels;
  DType label_dtype;
  const float* pixel_weight;  // NULL: all 1
  int64_t N, C, P, ignore_index;
  // Where class c of pixel q of image n is: element(n, q) + c * class_stride, the next pixel
  // pixel_stride further (channels-first: P and 1; channels-last: 1 and C).
  int64_t class_stride, pixel_stride;
  int64_t element(int64_t n, int64_t q) const {
    return class_stride == 1 ? (n * P + q) * C : n * C * P + q;
  }
  // CHECK_TARGETS: fused into the statistics pass (index targets without pixel weights, when
  // nothing is written there), else in passes of their own before any other (check_first:
  // every target, then every pixel weight, as the generic check_targets).
  bool check_labels, check_first;
  // Region terms alone, a float32 gradient, channels-first: the statistics pass stores each
  // probability in the gradient's place and the element pass reads it back from there, so a
  // call takes one softmax instead of two (the same float bits either way: the element pass
  // would compute them exactly so). The gradient may be the input itself: each vector of pixels
  // is read whole before its probabilities are stored, and the element pass needs no logit.
  // Nothing may be written before every label is checked, so with CHECK_TARGETS the labels are
  // checked first (check_first), not inside the statistics pass.
  bool cache_p;
  // Statistics: row slot `slot[j]` of every class receives quantity `quantity[j]` (a term
  // sums at most kFastSlotsPerTerm of them: CLDICE's five).
  static constexpr int kFastSlotsPerTerm = 5;
  int stat_width, slot_count;
  int slot[kFastSlotsPerTerm * kMaxTerms], quantity[kFastSlotsPerTerm * kMaxTerms];
  bool need[FQ_COUNT];
  bool stats_need_p;
  bool stats_label_counts;  // the statistics are FQ_MT and FQ_M alone (label_counts_chunk_t)
  // Element pass.
  const Program* prog;
  const double* coefs;  // [N][C][coef_width] from finalize
  const double* scale;  // per term
  double grad_scale;
  void* grad;        // NULL: no gradient
  DType grad_dtype;  // F32, F16 or BF16 (store_grad); F32 with cache_p
  float* grad_f32() const { return static_cast<float*>(grad); }
  bool any_ce;  // some term has an element value (the pass sums a loss)
  // TOPK_CE (the program's one term): its selection, N x P flags (compute selects before the
  // passes, the keys from fast_topk_keys_chunk); a pixel not selected counts as not counted.
  const unsigned char* selected;
  int topk_term;                     // −1: none
  const double* topk_class_weights;  // its class weights (NULL: all 1)
  bool any_region;  // some term is a region term (the element pass needs its coefficients)
  // Dense targets with a sigmoid (`labels` holds the targets, of the input's shape): region
  // terms, at most one binary cross-entropy term `bce_term` and one focal term `focal_term`
  // (−1: none). With a softmax and index targets, `focal_term` is the one softmax focal term.
  // A binary mask (class-index labels of one class with a sigmoid, `mask_labels`) runs the same
  // passes: t = 1 where the label is 1, and a pixel counts where it is 0 or 1 and not the ignore
  // index.
  bool sigmoid_dense, mask_labels;
  int bce_term, focal_term;
  int marginal_term;  // the MARGINAL_CE term (softmax, index targets; −1: none)
  bool need_log;      // some term takes log p (the cross-entropy kinds): the softmax keeps log Σ
  // Distance terms (HAUSDORFF_DT, BOUNDARY; softmax, index targets, channels-first), at most one
  // of each (−1: none). The fast path seeds their masks (fast_seed_chunk); the transforms are
  // the shared geometry step; the element pass reads the term's maps at the element's own index
  // (maps are channels-first planes of N·C·P doubles): f_P̂^α and f_T̂^α, or φ.
  int hd_term, boundary_term;
  double* maps;          // the program's geometry maps (the workspace)
  double* hd_maps[2];    // the HAUSDORFF_DT term's two maps
  double* boundary_map;  // the BOUNDARY term's map
  // The CLDICE term (at most one; −1: none; softmax, index targets, channels-first): the fast
  // path seeds p and t, sums its statistics and runs its element pass (dℓ/dp from S_t and the
  // backward's map); the skeletons and their backward are the shared geometry steps.
  int cldice_term;
  double* cldice_maps;  // its kSkelMaps maps, a plane apart
};

// Whether the fast path covers this call (the one selection predicate).
bool fast_covers(const Call& call, const Plan& plan);
// The fast call of a covered call, over the bound program and carved buffers.
FastCall make_fast_call(const Call& call, const Program& prog, const Buffers& b);

// Statistics of pixels [q0, q1) of image n into the row `row` (C x stat_width), as stats_chunk
// of the generic pass.
void fast_stats_chunk(const FastCall& f, int64_t n, int64_t q0, int64_t q1, double* row);
// Step 4 for flat pixels [begin, end) (n * P + q); returns their loss sum, as element_chunk.
// Before it, the statistics pass must have run over every pixel when `cache_p` is set.
double fast_element_chunk(const FastCall& f, int64_t begin, int64_t end);
// The geometry seeds of the distance terms for flat pixels [begin, end) (n * P + q), as
// pixel_seed with the softmax in float: HAUSDORFF_DT's masks {p > ½} and {t = 1}, BOUNDARY's
// {t = 1}, 0 where the pixel does not count.
void fast_seed_chunk(const FastCall& f, int64_t begin, int64_t end);
// CLDICE's upstream map for flat pixels [begin, end), as pixel_upstream: dℓ/dS_p = v (dℓ/dA t +
// dℓ/dB) from the coefficients of (image, class), before the skeleton's backward.
void fast_upstream_chunk(const FastCall& f, int64_t begin, int64_t end);
// TOPK_CE's sort keys of flat pixels [begin, end): topk_key32 of each counted pixel's cross-
// entropy, summed over the classes in float, kTopKLeftOut32 elsewhere; returns how many count.
int64_t fast_topk_keys_chunk(const FastCall& f, int64_t begin, int64_t end, uint32_t* keys);
// CHECK_TARGETS of a covered call when `check_first` (before anything is written): the
// targets, then the pixel weights, refused with check_targets's status and message (the first
// bad element).
void fast_check_targets(const FastCall& f);
// The vector checks behind it, for elements [begin, end) of the target or the pixel weights.
void fast_check_targets_chunk(const FastCall& f, int64_t begin, int64_t end);
void fast_check_weights_chunk(const FastCall& f, int64_t begin, int64_t end);

// The instruction set the vector passes run on this machine ("AVX3", "AVX2", "SSE4", "baseline"),
// chosen once per process from CPUID (the environment variable CULOSS_CPU_SIMD=AVX2, SSE4 or
// baseline caps it), or "none" when the library was built without Highway (nothing covered).
const char* fast_target_name();

}  // namespace culoss::cpu

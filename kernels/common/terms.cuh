// A loss call as a program of terms, and what every term unit (kernels/terms/<term>.cuh) is
// built from: the probabilities of one element, the pixel a term sees, and the finalize step.
//
// Every kind is one term (COMBO is expanded into a binary cross-entropy term, a Dice term and a
// constant; a CULOSS_SUM is the concatenation of its terms' programs). A term owns:
//   - statistics slots in the per-(image, class) statistics row (step 2; docs/reference.md),
//   - coefficient slots in the per-(image, class) coefficient row, filled by finalize (step 3),
//   - element math: its loss at one element and its derivative (step 4).
// The term units share one static interface (kernels/terms/all.cuh lists them and dispatches).
// Derivatives come in two forms. A softmax-style term returns h_c = p_c · dℓ/dp_c (finite even
// where p_c underflows); the pixel pass turns the sum H of all such terms into
// dℓ/dx_k = H_k − p_k Σ_c H_c. Every other term returns dℓ/dx (or dℓ/dp for probabilities)
// directly.
#pragma once

#include <cstdint>

#include "kernels/common/dtype.cuh"   // DType
#include "kernels/common/layout.cuh"  // ACT_* activations
#include "kernels/common/math.cuh"
#include "kernels/common/region_math.cuh"

namespace culoss {

constexpr int kMaxTerms = 8;
constexpr int kMaxTermStats = 8;  // statistics slots of one term per (image, class) (MCC: 4)

// Term kinds inside a program (COMBO and SUM never appear: they are expanded).
enum TermKind : int {
  TK_REGION = 0,  // Dice, Jaccard, Tversky, focal Tversky, generalized Dice (RegionParams)
  TK_BCE = 1,     // binary cross-entropy per element (also COMBO's weighted CE)
  TK_CE = 2,      // softmax cross-entropy
  TK_FOCAL_BINARY = 3,
  TK_FOCAL_SOFTMAX = 4,
  TK_MARGINAL = 5,  // cross-entropy tolerant of missing annotations
  TK_TOPK_CE = 6,       // cross-entropy of the selected (hardest) pixels
  TK_HAUSDORFF_DT = 7,  // squared error weighted by distance transforms (kernels/terms/distance.cuh)
  TK_BOUNDARY = 8,      // prediction times the target's signed distance (kernels/terms/distance.cuh)
  TK_CLDICE = 9,        // soft clDice on soft skeletons (kernels/terms/cldice.cuh)
};

// Geometry maps (docs/adding-a-loss.md, "Geometry maps"): a term may keep per-element maps of
// every (image, class) in the workspace, seeded per element before step 2 and transformed per
// (image, class) by one of the algorithms of kernels/geometry. Which algorithm is the unit's
// kGeometry; the backends run it without knowing the kind.
enum GeometryOp : int {
  GEO_NONE = 0,
  GEO_DISTANCE = 1,  // each map is a 0/1 mask, replaced by a function of its two distance maps
  GEO_SKELETON = 2,  // soft skeletons of the seeded prediction and target, and their backward
};
constexpr int kMaxSpatialAxes = 3;

// The spatial grid of one (image, class): k axes, row-major, P = Π extent pixels.
struct Grid {
  int k;
  int64_t extent[kMaxSpatialAxes];
  int64_t stride[kMaxSpatialAxes];  // of each axis in the flat pixel index
  int64_t P;
};

struct TermSpec {
  int kind;
  int activation;  // ACT_*
  int reduction;   // RED_*
  double weight;   // weight in the sum (1 for a single loss)
  int stat_offset, stat_count;
  int coef_offset, coef_count;
  bool needs_target_stats;  // element-wise term whose finalize needs counts from step 2
  // element-wise parameters
  double alpha, gamma, label_smoothing;
  bool batch_frequency;         // BCE class balance from the batch
  double pos_scale, neg_scale;  // BCE: factors of ω⁺ and ω⁻ (COMBO: α and 1 − α)
  int64_t static_count;         // MEAN divisor when no statistics are needed (N·C·P elements)
  int64_t class_weight_offset;  // into the weight table; -1: all 1
  int64_t pos_weight_offset;    // BCE positive weight; -1: all 1
  RegionParams region;          // TK_REGION only
  int value_offset;             // distributed: first slot of the value sums in the stats row
  int64_t export_offset;        // distributed: region (Σ wgt·ℓ, Σ wgt) or marginal background
  double top_fraction;          // TK_TOPK_CE: share of the counted pixels selected
  const unsigned char* selected;  // TK_TOPK_CE: 1 per selected pixel (bound per call)
  bool include_background;      // element-wise terms that take INCLUDE_BACKGROUND
  // Geometry maps (kMaps > 0): this term's first map and their count; distance transforms are
  // weighted by spacing² per axis; skeletons iterate `iterations` times.
  int map_offset, map_count;
  double spacing2[kMaxSpatialAxes];
  int iterations;
};

// Where a NONE reduction writes: per (image, class) group (region), per element, per pixel.
enum NoneMode : int { NONE_OFF = 0, NONE_GROUPS = 1, NONE_ELEMENTS = 2, NONE_PIXELS = 3 };

struct Program {
  int count;
  TermSpec term[kMaxTerms];
  int stat_width, coef_width;  // slots per (image, class)
  double constant;             // added to the loss value (COMBO's −(1 − ce_ratio))
  int none_mode;
  bool stats_need_prediction;  // some term's statistics read the input
  bool has_stats;              // step 2 runs
  bool any_softmax;            // some term uses the softmax of the input
  bool any_marginal;           // some term needs the pixel's argmax
  bool any_elementwise;        // some term's value is summed in the element pass
  // Distributed (culoss_compute_stats / _from_stats): element-wise values are statistics too,
  // so that they can be summed across ranks; the exported vector is C x stat_width class
  // totals, then each term's export slots, then the pixel count.
  bool value_in_stats;
  int64_t export_count, export_pixels;
  // Geometry maps: map_width planes of N x C x P doubles (plane m, image (n, c), pixel q at
  // m·N·C·P + (n·C + c)·P + q), over the grid of one (image, class).
  int map_width;
  Grid grid;
  bool any_map_grad;  // some term's gradient flows back through its maps (after step 3)
  const double* maps;  // bound per call: the maps in the workspace (NULL when map_width = 0)
};

// ---- probabilities of a binary (per-element) term --------------------------------------------

constexpr double kProbClamp = 1e-7;  // ACTIVATION_NONE: p is clamped to [1e-7, 1 − 1e-7]
constexpr double kLogProbClamp = -16.11809565095832;         // log(1e-7)
constexpr double kLog1mProbClamp = -1.0000000500000033e-07;  // log(1 − 1e-7)

template <class R>
struct BinaryProb {
  R p, q;        // p and 1 − p, each computed without cancellation
  R logp, logq;  // log p, log(1 − p)
  bool live;     // false where a probability input was clamped: zero gradient there
};

template <class R>
CULOSS_HD BinaryProb<R> binary_prob(int activation, R x) {
  BinaryProb<R> b;
  if (activation == ACT_SIGMOID) {
    b.p = sigmoid(x);
    b.q = sigmoid(-x);
    b.logp = log_sigmoid(x);
    b.logq = log_sigmoid(-x);
    b.live = true;
    return b;
  }
  // The bounds are compared and their logs taken in double: in float, 1 − 1e-7 would round to
  // 1 − 1.19e-7 and the clamped loss would differ between backends.
  const double xd = static_cast<double>(x);
  b.live = xd >= kProbClamp && xd <= 1.0 - kProbClamp;
  if (xd < kProbClamp) {
    b.p = R(kProbClamp);
    b.q = R(1.0 - kProbClamp);
    b.logp = R(kLogProbClamp);
    b.logq = R(kLog1mProbClamp);
  } else if (xd > 1.0 - kProbClamp) {
    b.p = R(1.0 - kProbClamp);
    b.q = R(kProbClamp);
    b.logp = R(kLog1mProbClamp);
    b.logq = R(kLogProbClamp);
  } else {
    b.p = x;
    b.q = R(1) - x;
    b.logp = log_r(x);
    b.logq = log1p_r(-x);
  }
  return b;
}

// Probability of a softmax-style term: the pixel's softmax, or a clamped probability input.
template <class R>
struct ClassProb {
  R p, logp;
  bool live;
};

// Probability of a softmax-style term: the pixel's softmax, or a clamped probability input.
template <class R>
CULOSS_HD ClassProb<R> class_prob(int activation, const PixelActivation<R>& soft, R xc) {
  ClassProb<R> cp;
  if (activation == ACT_SOFTMAX) {
    cp.logp = xc - soft.max - soft.log_sum;
    cp.p = exp_r(xc - soft.max) * soft.inv_sum;
    cp.live = true;
    return cp;
  }
  const double xd = static_cast<double>(xc);  // bounds in double, as in binary_prob
  cp.live = xd >= kProbClamp && xd <= 1.0 - kProbClamp;
  if (xd < kProbClamp) {
    cp.p = R(kProbClamp);
    cp.logp = R(kLogProbClamp);
  } else if (xd > 1.0 - kProbClamp) {
    cp.p = R(1.0 - kProbClamp);
    cp.logp = R(kLog1mProbClamp);
  } else {
    cp.p = xc;
    cp.logp = log_r(xc);
  }
  return cp;
}

// dℓ/dp of a term on the activated input p → what the element pass takes: h_c = p · dℓ/dp for a
// softmax, dℓ/dx for a sigmoid, dℓ/dp for probabilities.
template <class R>
CULOSS_HD R activation_chain(int activation, R p, R dl_dp) {
  if (activation == ACT_SOFTMAX) return p * dl_dp;
  if (activation == ACT_SIGMOID) return dl_dp * p * (R(1) - p);
  return dl_dp;
}

// ---- the interface of a term unit -------------------------------------------------------------

// What a term sees of class c of one pixel.
template <class R>
struct TermPixel {
  int64_t c, C;
  R x, t;                   // input and target at class c
  R v, m;                   // the pixel's weight (m · pixel_weight) and mask
  PixelActivation<R> soft;  // the pixel's softmax (when some term needs it)
  int64_t argmax;           // the pixel's lowest class with the largest input
  R x0, t0;                 // class 0 of the pixel
  int64_t pix;              // the flat pixel n * P + q
  // Geometry maps at this element: map m of the program is map[m * map_plane] (NULL when the
  // program has none).
  const double* map;
  int64_t map_plane;
};

template <class R>
struct TermOut {
  R loss;  // ℓ at this element (before the term's scale)
  R d;     // h_c for softmax-style terms, else dℓ/dx (dℓ/dp for probability inputs)
};

// Defaults of the geometry hooks for units without maps (kernels/terms/all.cuh lists them).
struct NoMaps {
  static constexpr int kMaps = 0;
  static constexpr int kGeometry = GEO_NONE;
  static constexpr int kMinAxes = 0;          // fewest spatial axes the term accepts
  static constexpr bool kMapGrad = false;     // its gradient flows back through its maps
  static constexpr int kUpstreamMap = 0;      // kMapGrad: the map that receives dℓ/d(map)
  static constexpr bool kRegionParams = false;  // planning fills TermSpec::region
  static constexpr bool kIncludeBackground = false;  // it takes INCLUDE_BACKGROUND itself
  template <class R>
  CULOSS_HD static void seed(const TermSpec&, const TermPixel<R>&, R*) {}
  CULOSS_HD static double distance_value(const TermSpec&, int, double, double) { return 0.0; }
  // dℓ/d(map) from the target, v and the coefficients (pixel_upstream computes no activation).
  template <class R>
  CULOSS_HD static R upstream(const TermSpec&, const TermPixel<R>&, const double*) {
    return R(0);
  }
};

// The workspace of step 3.
struct FinalizeBuffers {
  const double* stats;    // [N][C][stat_width]
  const double* weights;  // class and positive weights of all terms (weight table)
  double* coefs;          // [N][C][coef_width]
  double* scale;          // [kMaxTerms]: value scale of each element-wise term
  double* class_coef_a;   // per class (and region group): a term's first coefficient
  double* class_coef_b;   //   and its second (sizes max(groups x C, C))
  double* group_loss;     // region group losses, max groups
  double* group_weight;   //   and their weights in the reduction
  double* value;          // [1]: Σ weight · value of the terms finished here, plus the constant
  void* none_out;         // NONE of a region term: its per-group outputs
  DType none_dtype;
  // Distributed: `global` is the statistics vector summed over all ranks (culoss_compute_
  // from_stats); `export_vec` receives this rank's vector (culoss_compute_stats). Both NULL
  // for a plain culoss_compute.
  const double* global;
  double* export_vec;
  int64_t pixels;  // this rank's N x P
};

// One finalize step (step 3) as a term sees it: the buffers, the threads that run it (the CPU:
// one; CUDA: a block, with a barrier `sync` and a deterministic block sum `total`) and the value
// the terms add to.
template <class Sync, class Total>
struct FinalizeStep {
  const Program& prog;
  const FinalizeBuffers& b;
  int64_t N, C;
  double grad_scale;
  int64_t tid, threads;
  Sync& sync;
  Total& total;
  double value;  // Σ weight · value of the terms finished so far, plus the constant

  // A statistic of class c summed over the batch: over every rank when distributed.
  CULOSS_HD double class_total(int64_t c, int64_t slot) const {
    const int64_t S = prog.stat_width;
    if (b.global) return b.global[c * S + slot];
    double sum = 0.0;
    for (int64_t n = 0; n < N; ++n) sum += b.stats[(n * C + c) * S + slot];
    return sum;
  }
};

}  // namespace culoss

/*
 * culoss — fused loss functions (value and gradient) for segmentation and
 * imbalanced classification, on DLPack tensors, with CPU and CUDA backends.
 *
 * Copyright 2026 the culoss authors. Licensed under the Apache License 2.0.
 *
 * The whole public API. Plain C99; needs only <dlpack/dlpack.h>.
 *
 * Usage, in short:
 *
 *     culoss_loss dice;
 *     culoss_loss_create(&dice, CULOSS_DICE);
 *     culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 0);
 *     culoss_compute(dice, &logits, &labels, NULL, &loss, &grad, 1.0, NULL, 0, stream);
 *     culoss_loss_destroy(dice);
 *
 * Every function returns a culoss_status; on failure culoss_last_error() holds
 * a sentence naming the offending tensor or parameter. No function aborts,
 * exits or lets an exception escape.
 *
 * Threads: distinct descriptors may be used concurrently from any threads; one
 * descriptor may be shared by concurrent culoss_compute calls as long as no
 * thread changes it (setters, add_term, destroy) meanwhile.
 */
#ifndef CULOSS_CULOSS_H_
#define CULOSS_CULOSS_H_

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#define CULOSS_VERSION_MAJOR 0
#define CULOSS_VERSION_MINOR 1
#define CULOSS_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH, the same encoding as culoss_version(). */
#define CULOSS_VERSION \
  (CULOSS_VERSION_MAJOR * 10000 + CULOSS_VERSION_MINOR * 100 + CULOSS_VERSION_PATCH)

#if defined(_WIN32) && defined(CULOSS_BUILDING_SHARED)
#define CULOSS_API __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define CULOSS_API __attribute__((visibility("default")))
#else
#define CULOSS_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. Values are frozen; new codes are only appended. */
typedef enum {
  CULOSS_SUCCESS = 0,
  CULOSS_ERROR_INVALID_ARGUMENT = 1,
  CULOSS_ERROR_SHAPE_MISMATCH = 2,
  CULOSS_ERROR_UNSUPPORTED_DTYPE = 3,
  CULOSS_ERROR_UNSUPPORTED_DEVICE = 4,
  CULOSS_ERROR_INVALID_TARGET = 5,
  CULOSS_ERROR_OUT_OF_MEMORY = 6,
  CULOSS_ERROR_INSUFFICIENT_WORKSPACE = 7,
  CULOSS_ERROR_CUDA = 8,
  CULOSS_ERROR_NOT_SUPPORTED = 9,
  CULOSS_ERROR_INTERNAL = 10
} culoss_status;

/* Loss kinds. Values are frozen. */
typedef enum {
  CULOSS_DICE = 1,
  CULOSS_JACCARD = 2,
  CULOSS_TVERSKY = 3,
  CULOSS_FOCAL_TVERSKY = 4,
  CULOSS_GENERALIZED_DICE = 5,
  CULOSS_BCE = 6,
  CULOSS_CROSS_ENTROPY = 7,
  CULOSS_FOCAL = 8,
  CULOSS_COMBO = 9,
  CULOSS_MARGINAL_CE = 10,
  CULOSS_LOVASZ_HINGE = 11,
  CULOSS_LOVASZ_SOFTMAX = 12,
  CULOSS_SUM = 13,
  CULOSS_MCC = 14, /* Matthews correlation coefficient loss (a region loss) (0.2) */
  CULOSS_HAUSDORFF_DT = 15, /* distance-transform Hausdorff loss (Karimi & Salcudean) (0.2) */
  CULOSS_BOUNDARY = 16,     /* boundary loss on the target's signed distance (Kervadec) (0.2) */
  CULOSS_CLDICE = 17,       /* soft clDice on soft skeletons (Shit et al.), 2-D and 3-D (0.2) */
  CULOSS_TOPK_CE = 18 /* cross-entropy of the hardest TOP_FRACTION of the pixels (0.2) */
} culoss_kind;

/* Parameters of a loss descriptor. Values are frozen. The default of each is
 * in brackets; setting one that does not apply to the kind is refused. */
typedef enum {
  CULOSS_PARAM_ACTIVATION = 1,          /* int, culoss_activation [SIGMOID for BCE, FOCAL,
                                           COMBO; SOFTMAX otherwise] */
  CULOSS_PARAM_CLASS_AXIS = 2,          /* int, negative counts from the end [1] */
  CULOSS_PARAM_REDUCTION = 3,           /* int, culoss_reduction [MEAN] */
  CULOSS_PARAM_IGNORE_INDEX = 4,        /* int, label excluded everywhere [-100] */
  CULOSS_PARAM_SMOOTH_NR = 5,           /* float >= 0, numerator smoothing [1e-5; CLDICE 1] */
  CULOSS_PARAM_SMOOTH_DR = 6,           /* float >= 0, denominator smoothing [1e-5; CLDICE 1] */
  CULOSS_PARAM_SQUARED_DENOMINATOR = 7, /* int 0/1, sum p^2 and t^2 (V-Net) [0] */
  CULOSS_PARAM_BATCH = 8,               /* int 0/1, statistics summed over the batch [0] */
  CULOSS_PARAM_INCLUDE_BACKGROUND = 9,  /* int 0/1, 0 leaves class 0 out [1] */
  CULOSS_PARAM_CLASS_WEIGHTS = 10,      /* floats >= 0, one per class [all 1] */
  CULOSS_PARAM_ALPHA = 11,              /* float, Tversky FP weight [0.5; 0.3 focal Tversky],
                                           focal alpha [0.25, < 0 disables], Combo [0.5],
                                           Hausdorff DT distance exponent [2] */
  CULOSS_PARAM_BETA = 12,               /* float, Tversky FN weight [0.5; 0.7 focal Tversky] */
  CULOSS_PARAM_GAMMA = 13,              /* float, focal [2]; focal Tversky [0.75] */
  CULOSS_PARAM_WEIGHT_TYPE = 14,        /* int, culoss_weight_type [SQUARE] */
  CULOSS_PARAM_POS_WEIGHT = 15,         /* floats >= 0, BCE positive weight per class [all 1] */
  CULOSS_PARAM_CLASS_BALANCE = 16,      /* int, culoss_class_balance [NONE] */
  CULOSS_PARAM_LABEL_SMOOTHING = 17,    /* float in [0, 1) [0] */
  CULOSS_PARAM_CE_RATIO = 18,           /* float in [0, 1], Combo CE weight [0.5] */
  CULOSS_PARAM_PER_IMAGE = 19,          /* int 0/1, Lovasz per image [0] */
  CULOSS_PARAM_CLASSES = 20,            /* int, culoss_classes [PRESENT] */
  CULOSS_PARAM_SKIP_EMPTY = 21,         /* int 0/1, empty-target pairs leave the mean [0] */
  CULOSS_PARAM_AVERAGE = 22,            /* int, culoss_average [MACRO] */
  CULOSS_PARAM_CHECK_TARGETS = 23,      /* int 0/1, validate targets (CUDA: syncs) [1] */
  CULOSS_PARAM_SOFT_LABEL = 24,         /* int 0/1, soft-label statistics (DICE, JACCARD, TVERSKY,
                                           FOCAL_TVERSKY, MCC); not with SQUARED_DENOMINATOR [0] */
  CULOSS_PARAM_SPACING = 25,           /* floats > 0, pixel size per spatial axis, HAUSDORFF_DT
                                           and BOUNDARY [all 1] */
  CULOSS_PARAM_ITERATIONS = 26,        /* int in [1, 50], CLDICE skeleton iterations [3] */
  CULOSS_PARAM_TOP_FRACTION = 27        /* float in (0, 1], TOPK_CE: fraction of the counted
                                           pixels kept [0.1] */
} culoss_param;

typedef enum {
  CULOSS_ACTIVATION_NONE = 0, /* input holds probabilities */
  CULOSS_ACTIVATION_SIGMOID = 1,
  CULOSS_ACTIVATION_SOFTMAX = 2 /* over the class axis */
} culoss_activation;

typedef enum {
  CULOSS_REDUCTION_MEAN = 0,
  CULOSS_REDUCTION_SUM = 1,
  CULOSS_REDUCTION_NONE = 2
} culoss_reduction;

typedef enum {
  CULOSS_WEIGHT_SQUARE = 0, /* generalized Dice w_c = 1 / ST_c^2 */
  CULOSS_WEIGHT_SIMPLE = 1, /* w_c = 1 / ST_c */
  CULOSS_WEIGHT_UNIFORM = 2 /* w_c = 1 */
} culoss_weight_type;

typedef enum { CULOSS_BALANCE_NONE = 0, CULOSS_BALANCE_BATCH_FREQUENCY = 1 } culoss_class_balance;

typedef enum { CULOSS_CLASSES_ALL = 0, CULOSS_CLASSES_PRESENT = 1 } culoss_classes;

typedef enum { CULOSS_AVERAGE_MACRO = 0, CULOSS_AVERAGE_MICRO = 1 } culoss_average;

/* Opaque loss descriptor. */
typedef struct culoss_loss_s* culoss_loss;

/* MAJOR*10000 + MINOR*100 + PATCH of the linked library. */
CULOSS_API int culoss_version(void);
/* A static English name for a status, e.g. "CULOSS_ERROR_SHAPE_MISMATCH". */
CULOSS_API const char* culoss_status_string(culoss_status status);
/* Detail of this thread's last failing call; "" after a success; never NULL. */
CULOSS_API const char* culoss_last_error(void);

CULOSS_API culoss_status culoss_loss_create(culoss_loss* out, culoss_kind kind);
/* Destroying NULL is a no-op that succeeds. */
CULOSS_API culoss_status culoss_loss_destroy(culoss_loss loss);
CULOSS_API culoss_status culoss_loss_set_int(culoss_loss loss, culoss_param param, int64_t value);
CULOSS_API culoss_status culoss_loss_set_float(culoss_loss loss, culoss_param param, double value);
CULOSS_API culoss_status culoss_loss_set_floats(culoss_loss loss, culoss_param param,
                                                const double* values, int64_t count);
CULOSS_API culoss_status culoss_loss_get_int(culoss_loss loss, culoss_param param, int64_t* value);
CULOSS_API culoss_status culoss_loss_get_float(culoss_loss loss, culoss_param param, double* value);
/* Appends a copy of `term` to the CULOSS_SUM descriptor `sum` with `weight`. */
CULOSS_API culoss_status culoss_loss_add_term(culoss_loss sum, culoss_loss term, double weight);

/* Bytes of workspace that suffice for culoss_compute, culoss_compute_stats and
 * culoss_compute_from_stats with these tensors: the largest of their needs. */
CULOSS_API culoss_status culoss_workspace_size(culoss_loss loss, const DLTensor* input,
                                               const DLTensor* target, size_t* bytes);

/*
 * Computes the loss and, when grad_input is not NULL, grad_scale times its
 * gradient with respect to `input` (logits when an activation is set).
 *
 * input        (N, C, d1, ..., dk) with the classes on CLASS_AXIS; float32,
 *              float64, float16 or bfloat16.
 * target       dense (input's shape; float dtypes or uint8, values in [0, 1])
 *              or class indices (input's shape without the class axis; uint8,
 *              int32 or int64; values in [0, C) or IGNORE_INDEX).
 * pixel_weight NULL or float32 of the input's shape without the class axis.
 * loss_out     float32 or float64 on the input's device or the CPU; one element
 *              for MEAN/SUM, the per-item shape for NONE (docs/reference.md).
 * grad_input   NULL, or the input's shape in the input's dtype or float32; may
 *              be the input's own buffer (the gradient overwrites the input).
 * workspace    NULL (the library allocates, stream-ordered on CUDA) or at
 *              least culoss_workspace_size() bytes.
 * stream       cudaStream_t for CUDA tensors (NULL: the default stream);
 *              ignored on the CPU.
 *
 * With REDUCTION_NONE the gradient is that of the sum of the written values.
 */
CULOSS_API culoss_status culoss_compute(culoss_loss loss, const DLTensor* input,
                                        const DLTensor* target, const DLTensor* pixel_weight,
                                        DLTensor* loss_out, DLTensor* grad_input, double grad_scale,
                                        void* workspace, size_t workspace_bytes, void* stream);

/*
 * Losses across processes and GPUs (data parallelism). Ranks hold shards of one global batch,
 * split along N. Each rank:
 *   1. culoss_stats_size: the length `count` of the statistics vector (float64). It depends on
 *      the loss and C, never on the shard's N, so every rank reduces vectors of one length;
 *   2. culoss_compute_stats: its shard's statistics, into `stats` (float64 [count], on the
 *      input's device);
 *   3. sums `stats` element-wise across ranks (any all-reduce: NCCL, MPI, torch.distributed);
 *   4. culoss_compute_from_stats with the summed vector: loss_out receives the loss of the whole
 *      global batch (the same on every rank) and grad_input the shard's slice of its gradient,
 *      as one process computing on the concatenated batch would (up to the rounding of the
 *      reduction). REDUCTION_NONE writes the shard's own rows.
 * Every kind and option works this way except pooled Lovász (PER_IMAGE=0) and CULOSS_TOPK_CE
 * (its threshold is global), which are refused with CULOSS_ERROR_NOT_SUPPORTED. culoss_compute_from_stats recomputes the shard's own
 * statistics (it does not reuse the workspace of culoss_compute_stats), so the workspace of
 * either call may be any buffer of culoss_workspace_size() bytes.
 */
CULOSS_API culoss_status culoss_stats_size(culoss_loss loss, const DLTensor* input,
                                           const DLTensor* target, int64_t* count);
CULOSS_API culoss_status culoss_compute_stats(culoss_loss loss, const DLTensor* input,
                                              const DLTensor* target, const DLTensor* pixel_weight,
                                              DLTensor* stats, void* workspace,
                                              size_t workspace_bytes, void* stream);
CULOSS_API culoss_status culoss_compute_from_stats(culoss_loss loss, const DLTensor* input,
                                                   const DLTensor* target,
                                                   const DLTensor* pixel_weight,
                                                   const DLTensor* stats, DLTensor* loss_out,
                                                   DLTensor* grad_input, double grad_scale,
                                                   void* workspace, size_t workspace_bytes,
                                                   void* stream);

/*
 * The registry of kinds and parameters (appended in 0.2). The setters validate against these
 * same tables, so a binding can build its own checks and documentation from them instead of
 * copying them, in the way of zstd's ZSTD_cParam_getBounds:
 *
 *     for (int p = 1; p <= 255; ++p)
 *       if (culoss_param_name((culoss_param)p) &&
 *           culoss_param_applies(CULOSS_DICE, (culoss_param)p)) {
 *         double lo, hi, def;
 *         int open;
 *         culoss_param_get_bounds(CULOSS_DICE, (culoss_param)p, &lo, &hi, &open);
 *         culoss_param_get_default(CULOSS_DICE, (culoss_param)p, &def);
 *       }
 */

/* Which setter and getter a parameter takes. Values are frozen. */
typedef enum {
  CULOSS_TYPE_INT = 0,   /* culoss_loss_set_int / culoss_loss_get_int */
  CULOSS_TYPE_FLOAT = 1, /* culoss_loss_set_float / culoss_loss_get_float */
  CULOSS_TYPE_FLOATS = 2 /* culoss_loss_set_floats (one value per class, or per spatial axis
                            for CULOSS_PARAM_SPACING; not readable back) */
} culoss_param_type;

/* The name of a kind, e.g. "CULOSS_DICE"; NULL for a value that is no culoss_kind. Kinds are
 * numbered from 1 (a binding may scan the values up to 255; a build holding only some of the
 * kinds of a release leaves NULLs between them). */
CULOSS_API const char* culoss_kind_name(culoss_kind kind);
/* The name of a parameter, e.g. "CULOSS_PARAM_ALPHA"; NULL for a value that is no
 * culoss_param. Parameters are numbered from 1, as kinds are. */
CULOSS_API const char* culoss_param_name(culoss_param param);
/* The name of one value of an enum-valued int parameter, without its prefix: "SIGMOID" for
 * (CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID), "BATCH_FREQUENCY" for
 * (CULOSS_PARAM_CLASS_BALANCE, 1). NULL when the parameter takes no enum or the value has no
 * name. */
CULOSS_API const char* culoss_param_value_name(culoss_param param, int64_t value);
/* 1 when `param` applies to `kind` (its setters and getters accept it), else 0; 0 for unknown
 * kinds and parameters too. */
CULOSS_API int culoss_param_applies(culoss_kind kind, culoss_param param);
/* The type of `param`. INVALID_ARGUMENT for an unknown parameter. */
CULOSS_API culoss_status culoss_param_get_type(culoss_param param, culoss_param_type* type);
/*
 * The values `kind` accepts for `param`: lower <= value <= upper, or value < upper when
 * *upper_open is 1; -HUGE_VAL / HUGE_VAL where a side is unbounded (a strictly positive
 * parameter, CULOSS_PARAM_SPACING, reports the smallest positive double). Float values must also be
 * finite; CULOSS_TYPE_FLOATS bounds each element. An enum parameter may accept only some of
 * the values in its bounds (e.g. CULOSS_ACTIVATION_NONE and _SOFTMAX for CULOSS_CROSS_ENTROPY),
 * and a float parameter may exclude its lower bound (CULOSS_PARAM_TOP_FRACTION: 0 < value <= 1):
 * culoss_param_accepts tells. Any output pointer may be NULL. INVALID_ARGUMENT when the kind or
 * parameter is unknown or the parameter does not apply to the kind.
 */
CULOSS_API culoss_status culoss_param_get_bounds(culoss_kind kind, culoss_param param,
                                                 double* lower, double* upper, int* upper_open);
/* The default of `param` for `kind` (CULOSS_TYPE_FLOATS: of each element). Errors as for
 * culoss_param_get_bounds. */
CULOSS_API culoss_status culoss_param_get_default(culoss_kind kind, culoss_param param,
                                                  double* value);
/* 1 when a `kind` descriptor's setter accepts `value` for `param` (an int parameter: an
 * integral value; CULOSS_TYPE_FLOATS: one element), else 0 (also when the parameter does not
 * apply). */
CULOSS_API int culoss_param_accepts(culoss_kind kind, culoss_param param, double value);
/*
 * The axes of an input of `ndim` dimensions that loss_out's axes stand for, in order, with this
 * descriptor's parameters: *count = 0 for one value (MEAN, SUM, or NONE reduced to one value);
 * for REDUCTION_NONE e.g. (0, class axis) for a per-(image, class) region loss or every axis but
 * the class axis for CULOSS_CROSS_ENTROPY. `axes` has room for `ndim` entries. loss_out of
 * culoss_compute has the input's extents along these axes. SHAPE_MISMATCH when CLASS_AXIS does
 * not name an axis in [1, ndim).
 */
CULOSS_API culoss_status culoss_loss_output_axes(culoss_loss loss, int64_t ndim, int64_t* axes,
                                                 int64_t* count);

/*
 * Threads of the CPU backend (appended in 0.2). CPU calls split their work into chunks and run them on a pool of
 * threads shared by the whole process (the calling thread is one of them). The chunks depend on
 * the tensors' shapes only, and partial sums are added in a fixed order, so the loss, the
 * gradient and the statistics are bitwise the same for every thread count. CUDA calls do not
 * use these threads.
 *
 * culoss_set_num_threads: the number of threads CPU calls use, n >= 1, or 0 for the default:
 * the environment variable CULOSS_NUM_THREADS (read once, at the first call that needs it; a
 * whole number from 1 to 1024, anything else is ignored) when set, else the number of CPUs this
 * process may run on (its affinity mask). n < 0 or n > 1024 is refused with
 * CULOSS_ERROR_INVALID_ARGUMENT and the setting is left as it was. The setting is process-wide;
 * it may be changed from any thread at any time, and calls already running finish with either
 * count. Threads are started when first needed (or by culoss_set_num_threads) and kept, idle,
 * for later calls; a child made by fork() starts its own. Idle threads sleep, and waking one
 * takes tens of microseconds: culoss_set_num_threads also wakes them to watch for work for a
 * short while, so a caller that sets the count just before a call finds them ready.
 *
 * culoss_get_num_threads: the number of threads CPU calls use now (>= 1).
 */
CULOSS_API culoss_status culoss_set_num_threads(int n);
CULOSS_API int culoss_get_num_threads(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CULOSS_CULOSS_H_ */

/*
 * mpi_dice: a Dice loss over a batch split across MPI ranks (data parallelism), with culoss's
 * statistics API:
 *
 *   culoss_stats_size          the length of the statistics vector (the same on every rank)
 *   culoss_compute_stats       this rank's statistics (float64)
 *   MPI_Allreduce(MPI_SUM)     the statistics of the whole batch, on every rank
 *   culoss_compute_from_stats  the loss of the whole batch and this rank's slice of its gradient
 *
 * Each rank builds its shard of one deterministic synthetic batch (distributed_batch.h: 5 images
 * of 4 classes, split along N; the shards need not be of equal size). Rank 0 also computes the
 * whole batch in one culoss_compute call; every rank checks its loss and gradient slice against it and the
 * program exits with a non-zero status on a mismatch.
 *
 *   mpirun -np 2 ./mpi_dice            (Open MPI as root: add --allow-run-as-root)
 *
 * Copyright 2026 the culoss authors. Licensed under the Apache License 2.0.
 */
#include <mpi.h>

#include <culoss/culoss.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distributed_batch.h"

static DLTensor cpu_tensor(void* data, int32_t ndim, int64_t* shape, DLDataTypeCode code,
                           uint8_t bits) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.device.device_id = 0;
  t.ndim = ndim;
  t.dtype.code = (uint8_t)code;
  t.dtype.bits = bits;
  t.dtype.lanes = 1;
  t.shape = shape;
  return t;
}

#define CHECK_CULOSS(call)                                                                     \
  do {                                                                                         \
    const culoss_status st_ = (call);                                                          \
    if (st_ != CULOSS_SUCCESS) {                                                               \
      fprintf(stderr, "rank %d: %s failed: %s: %s\n", rank, #call, culoss_status_string(st_),  \
              culoss_last_error());                                                            \
      MPI_Abort(MPI_COMM_WORLD, 2);                                                            \
    }                                                                                          \
  } while (0)

int main(int argc, char** argv) {
  int rank = 0, size = 1;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > DIST_N) {
    if (rank == 0) fprintf(stderr, "mpi_dice: at most %d ranks (one image each)\n", DIST_N);
    MPI_Finalize();
    return 2;
  }

  /* This rank's shard: images [first, first + count), sizes as even as possible (2 + 3 on two
   * ranks). */
  const int64_t first = dist_shard_first(rank, size);
  const int64_t count = dist_shard_count(rank, size);

  culoss_loss dice;
  CHECK_CULOSS(culoss_loss_create(&dice, CULOSS_DICE));
  CHECK_CULOSS(culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 0));

  float* input = malloc((size_t)(count * DIST_IMAGE_ELEMENTS) * sizeof(float));
  int64_t* labels = malloc((size_t)(count * DIST_PIXELS) * sizeof(int64_t));
  float* grad = malloc((size_t)(count * DIST_IMAGE_ELEMENTS) * sizeof(float));
  dist_fill_images(first, count, input, labels);
  int64_t in_shape[4] = {count, DIST_C, DIST_H, DIST_W}, label_shape[3] = {count, DIST_H, DIST_W};
  DLTensor in_t = cpu_tensor(input, 4, in_shape, kDLFloat, 32);
  DLTensor label_t = cpu_tensor(labels, 3, label_shape, kDLInt, 64);
  DLTensor grad_t = cpu_tensor(grad, 4, in_shape, kDLFloat, 32);
  double loss = 0.0;
  DLTensor loss_t = cpu_tensor(&loss, 0, NULL, kDLFloat, 64);

  /* 1. The statistics vector: its length depends on the loss and C only. */
  int64_t n_stats = 0;
  CHECK_CULOSS(culoss_stats_size(dice, &in_t, &label_t, &n_stats));
  double* stats = malloc((size_t)n_stats * sizeof(double));
  DLTensor stats_t = cpu_tensor(stats, 1, &n_stats, kDLFloat, 64);
  /* One workspace of culoss_workspace_size bytes serves both calls (NULL works too). */
  size_t ws_bytes = 0;
  CHECK_CULOSS(culoss_workspace_size(dice, &in_t, &label_t, &ws_bytes));
  void* ws = malloc(ws_bytes);

  /* 2. This shard's statistics. */
  CHECK_CULOSS(culoss_compute_stats(dice, &in_t, &label_t, NULL, &stats_t, ws, ws_bytes, NULL));
  /* 3. Summed over the ranks. */
  MPI_Allreduce(MPI_IN_PLACE, stats, (int)n_stats, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  /* 4. The whole batch's loss and this shard's gradient. */
  CHECK_CULOSS(culoss_compute_from_stats(dice, &in_t, &label_t, NULL, &stats_t, &loss_t, &grad_t,
                                         1.0, ws, ws_bytes, NULL));

  /* The check: rank 0 computes the whole batch in one process and sends each rank its slice. */
  double ref_loss = 0.0;
  float* ref_all = NULL;
  if (rank == 0) {
    float* all_input = malloc((size_t)(DIST_N * DIST_IMAGE_ELEMENTS) * sizeof(float));
    int64_t* all_labels = malloc((size_t)(DIST_N * DIST_PIXELS) * sizeof(int64_t));
    ref_all = malloc((size_t)(DIST_N * DIST_IMAGE_ELEMENTS) * sizeof(float));
    dist_fill_images(0, DIST_N, all_input, all_labels);
    int64_t all_shape[4] = {DIST_N, DIST_C, DIST_H, DIST_W};
    int64_t all_label_shape[3] = {DIST_N, DIST_H, DIST_W};
    DLTensor a_in = cpu_tensor(all_input, 4, all_shape, kDLFloat, 32);
    DLTensor a_lab = cpu_tensor(all_labels, 3, all_label_shape, kDLInt, 64);
    DLTensor a_grad = cpu_tensor(ref_all, 4, all_shape, kDLFloat, 32);
    DLTensor a_loss = cpu_tensor(&ref_loss, 0, NULL, kDLFloat, 64);
    CHECK_CULOSS(culoss_compute(dice, &a_in, &a_lab, NULL, &a_loss, &a_grad, 1.0, NULL, 0, NULL));
    free(all_input);
    free(all_labels);
  }
  MPI_Bcast(&ref_loss, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  int* counts = malloc((size_t)size * sizeof(int));
  int* displs = malloc((size_t)size * sizeof(int));
  for (int r = 0; r < size; ++r) {
    counts[r] = (int)(dist_shard_count(r, size) * DIST_IMAGE_ELEMENTS);
    displs[r] = (int)(dist_shard_first(r, size) * DIST_IMAGE_ELEMENTS);
  }
  float* ref_grad = malloc((size_t)(count * DIST_IMAGE_ELEMENTS) * sizeof(float) + 1);
  MPI_Scatterv(ref_all, counts, displs, MPI_FLOAT, ref_grad, counts[rank], MPI_FLOAT, 0,
               MPI_COMM_WORLD);

  /* The loss: the same on every rank, equal to the single process's up to float32 rounding
   * (the single call may run the CPU's float32 SIMD fast path, the statistics API runs the
   * double passes: docs/reference.md). The gradient (float32): within a few float32 ulps. */
  double loss_min = loss, loss_max = loss;
  MPI_Allreduce(MPI_IN_PLACE, &loss_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &loss_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  double grad_scale = 0.0, grad_err = 0.0;
  for (int64_t i = 0; i < count * DIST_IMAGE_ELEMENTS; ++i)
    if (fabs(ref_grad[i]) > grad_scale) grad_scale = fabs(ref_grad[i]);
  MPI_Allreduce(MPI_IN_PLACE, &grad_scale, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  int bad = 0;
  for (int64_t i = 0; i < count * DIST_IMAGE_ELEMENTS; ++i) {
    const double d = fabs((double)grad[i] - (double)ref_grad[i]);
    if (d > grad_err) grad_err = d;
    if (!(d <= 4e-7 * fabs(ref_grad[i]) + 1e-6 * grad_scale)) ++bad;
  }
  const double loss_err = fabs(loss - ref_loss);
  if (!(loss_err <= 1e-5 * fabs(ref_loss) + 1e-7)) ++bad;
  if (loss_min != loss_max) ++bad;
  printf("mpi_dice: rank %d of %d: images [%lld, %lld), %lld statistics, loss %.15f, "
         "|loss - single| %.3g, max |grad - single| %.3g\n",
         rank, size, (long long)first, (long long)(first + count), (long long)n_stats, loss,
         loss_err, grad_err);
  fflush(stdout);
  int bad_total = 0;
  MPI_Allreduce(&bad, &bad_total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    printf("mpi_dice: single process: loss %.15f\n", ref_loss);
    if (bad_total == 0)
      printf("mpi_dice: PASS: %d ranks agree with the single-process loss and gradient\n", size);
    else
      printf("mpi_dice: FAIL: %d mismatches (loss on the ranks in [%.17g, %.17g])\n", bad_total,
             loss_min, loss_max);
    fflush(stdout);
  }

  free(ref_grad);
  free(ref_all);
  free(counts);
  free(displs);
  free(ws);
  free(stats);
  free(input);
  free(labels);
  free(grad);
  culoss_loss_destroy(dice);
  MPI_Finalize();
  return bad_total == 0 ? 0 : 1;
}

/*
 * The deterministic synthetic batch of the data-parallel examples (mpi_dice.c, nccl_dice.cpp):
 * DIST_N images of DIST_C classes, DIST_H x DIST_W pixels, float32 NCHW logits and int64 labels.
 * Every process (or device) can build any image by itself, so each builds only its shard, and
 * the single-process check builds the whole batch. C99 and C++.
 *
 * Copyright 2026 the culoss authors. Licensed under the Apache License 2.0.
 */
#ifndef CULOSS_EXAMPLES_DISTRIBUTED_BATCH_H_
#define CULOSS_EXAMPLES_DISTRIBUTED_BATCH_H_

#include <stdint.h>

enum { DIST_N = 5, DIST_C = 4, DIST_H = 24, DIST_W = 24 };
#define DIST_PIXELS ((int64_t)DIST_H * DIST_W)
#define DIST_IMAGE_ELEMENTS ((int64_t)DIST_C * DIST_H * DIST_W)
#define DIST_IGNORE_INDEX (-100)

/* The first image and the number of images of shard `rank` of `ranks`: consecutive images, sizes
 * as even as possible (2 + 3 for two ranks). */
static inline int64_t dist_shard_first(int rank, int ranks) { return (int64_t)rank * DIST_N / ranks; }
static inline int64_t dist_shard_count(int rank, int ranks) {
  return (int64_t)(rank + 1) * DIST_N / ranks - dist_shard_first(rank, ranks);
}

/* A reproducible pseudo-random number in [0, 1) for an integer key (splitmix64). */
static inline double dist_unit_hash(uint64_t key) {
  uint64_t z = key + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Label of pixel (y, x) of image n: background with a disc of one or two foreground classes,
 * the top row ignored (DIST_IGNORE_INDEX). Class 3 is absent from image 0. */
static inline int64_t dist_label(int64_t n, int64_t y, int64_t x) {
  const double cy = 6.0 + 12.0 * dist_unit_hash((uint64_t)n * 7 + 1);
  const double cx = 6.0 + 12.0 * dist_unit_hash((uint64_t)n * 7 + 2);
  const double r = 3.0 + 5.0 * dist_unit_hash((uint64_t)n * 7 + 3);
  const int64_t fg = 1 + (n + (x > DIST_W / 2)) % (n == 0 ? 2 : 3);
  if (y == 0) return DIST_IGNORE_INDEX;
  return (y - cy) * (y - cy) + (x - cx) * (x - cx) < r * r ? fg : 0;
}

/* Logit of class c at pixel (y, x) of image n: noise, the labelled class favoured. */
static inline float dist_logit(int64_t n, int64_t c, int64_t y, int64_t x) {
  const uint64_t key =
      (((uint64_t)n * DIST_C + (uint64_t)c) * DIST_H + (uint64_t)y) * DIST_W + (uint64_t)x;
  const double noise = 4.0 * dist_unit_hash(key) - 2.0;
  return (float)(noise + (dist_label(n, y, x) == c ? 1.5 : 0.0));
}

/* Images [first, first + count) as (count, C, H, W) logits and (count, H, W) labels. */
static inline void dist_fill_images(int64_t first, int64_t count, float* input, int64_t* labels) {
  int64_t i, y, x, c;
  for (i = 0; i < count; ++i)
    for (y = 0; y < DIST_H; ++y)
      for (x = 0; x < DIST_W; ++x) {
        labels[(i * DIST_H + y) * DIST_W + x] = dist_label(first + i, y, x);
        for (c = 0; c < DIST_C; ++c)
          input[((i * DIST_C + c) * DIST_H + y) * DIST_W + x] = dist_logit(first + i, c, y, x);
      }
}

#endif /* CULOSS_EXAMPLES_DISTRIBUTED_BATCH_H_ */

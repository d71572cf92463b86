/*
 * The public header is plain C99: this program includes it under
 * -std=c99 -Wall -Wextra -Werror -pedantic and runs a small Dice loss on the CPU.
 * Every check prints what failed; the exit status is the number of failures (capped).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <culoss/culoss.h>

static int g_failures = 0;

#define CHECK(cond, ...)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "c99_test.c:%d: check failed: %s: ", __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                          \
      fprintf(stderr, "\n");                                                 \
      ++g_failures;                                                          \
    }                                                                        \
  } while (0)

/* Checks a status; on failure prints the status name and culoss_last_error(). */
#define CHECK_STATUS(call, expected)                                                            \
  do {                                                                                          \
    culoss_status status_ = (call);                                                             \
    if (status_ != (expected)) {                                                                \
      const char* name_ = culoss_status_string(status_);                                        \
      const char* detail_ = culoss_last_error();                                                \
      fprintf(stderr, "c99_test.c:%d: %s returned %s (%d), expected %s: %s\n", __LINE__, #call, \
              name_ ? name_ : "(null)", (int)status_, culoss_status_string(expected),           \
              detail_ ? detail_ : "(null)");                                                    \
      ++g_failures;                                                                             \
    }                                                                                           \
  } while (0)

/* The test target links only culoss (no -lm), so the few math helpers are local. */
static double abs_d(double x) { return x < 0.0 ? -x : x; }

/* exp(x) for moderate |x|: x = k ln2 + r with |r| <= ln2 / 2, Taylor series for e^r. */
static double exp_d(double x) {
  const double ln2 = 0.69314718055994530942;
  double k = (double)(long)(x / ln2 + (x < 0.0 ? -0.5 : 0.5));
  double r = x - k * ln2, term = 1.0, sum = 1.0;
  int i;
  for (i = 1; i < 30; ++i) {
    term *= r / i;
    sum += term;
  }
  for (; k > 0.0; k -= 1.0) sum *= 2.0;
  for (; k < 0.0; k += 1.0) sum *= 0.5;
  return sum;
}

static DLTensor make_cpu_tensor(void* data, int ndim, int64_t* shape, uint8_t code, uint8_t bits) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.device.device_id = 0;
  t.ndim = ndim;
  t.dtype.code = code;
  t.dtype.bits = bits;
  t.dtype.lanes = 1;
  t.shape = shape;
  t.strides = NULL;
  t.byte_offset = 0;
  return t;
}

static void test_version_and_strings(void) {
  static const culoss_status all[] = {CULOSS_SUCCESS,
                                      CULOSS_ERROR_INVALID_ARGUMENT,
                                      CULOSS_ERROR_SHAPE_MISMATCH,
                                      CULOSS_ERROR_UNSUPPORTED_DTYPE,
                                      CULOSS_ERROR_UNSUPPORTED_DEVICE,
                                      CULOSS_ERROR_INVALID_TARGET,
                                      CULOSS_ERROR_OUT_OF_MEMORY,
                                      CULOSS_ERROR_INSUFFICIENT_WORKSPACE,
                                      CULOSS_ERROR_CUDA,
                                      CULOSS_ERROR_NOT_SUPPORTED,
                                      CULOSS_ERROR_INTERNAL};
  const size_t n = sizeof all / sizeof all[0];
  size_t i, j;

  CHECK(culoss_version() == CULOSS_VERSION, "culoss_version() = %d, header CULOSS_VERSION = %d",
        culoss_version(), CULOSS_VERSION);

  for (i = 0; i < n; ++i) {
    const char* s = culoss_status_string(all[i]);
    CHECK(s != NULL, "culoss_status_string(%d) is NULL", (int)all[i]);
    if (s == NULL) continue;
    CHECK(s[0] != '\0', "culoss_status_string(%d) is empty", (int)all[i]);
    for (j = 0; j < i; ++j) {
      const char* t = culoss_status_string(all[j]);
      CHECK(t == NULL || strcmp(s, t) != 0, "statuses %d and %d share the string \"%s\"",
            (int)all[i], (int)all[j], s);
    }
  }
  CHECK(strcmp(culoss_status_string(CULOSS_SUCCESS), "CULOSS_SUCCESS") == 0,
        "culoss_status_string(CULOSS_SUCCESS) = \"%s\"", culoss_status_string(CULOSS_SUCCESS));
  CHECK(culoss_last_error() != NULL, "culoss_last_error() is NULL");
}

/* The contract's Dice (softmax, index target, MEAN over (n, c), default smoothing) in double. */
static double reference_dice(const float* logits, const int64_t* labels, int classes, int pixels) {
  const double s_nr = 1e-5, s_dr = 1e-5;
  double total = 0.0;
  int c, i;
  for (c = 0; c < classes; ++c) {
    double inter = 0.0, sp = 0.0, st = 0.0;
    for (i = 0; i < pixels; ++i) {
      double mx = logits[i], denom = 0.0, p, t;
      int k;
      for (k = 1; k < classes; ++k)
        if (logits[k * pixels + i] > mx) mx = logits[k * pixels + i];
      for (k = 0; k < classes; ++k) denom += exp_d(logits[k * pixels + i] - mx);
      p = exp_d(logits[c * pixels + i] - mx) / denom;
      t = labels[i] == c ? 1.0 : 0.0;
      inter += p * t;
      sp += p;
      st += t;
    }
    total += 1.0 - (2.0 * inter + s_nr) / (sp + st + s_dr);
  }
  return total / classes;
}

static void test_dice_cpu(void) {
  enum { N = 1, C = 2, H = 2, W = 2, PIXELS = H * W };
  /* (N, C, H, W) logits and (N, H, W) class indices. */
  float logits[N * C * H * W] = {2.0f, -1.0f, 0.5f, 0.0f, -0.5f, 1.5f, 0.25f, 3.0f};
  int64_t labels[N * H * W] = {0, 1, 0, 1};
  float grad[N * C * H * W];
  float loss_value = -1.0f;
  int64_t input_shape[4] = {N, C, H, W};
  int64_t target_shape[3] = {N, H, W};
  int64_t loss_shape[1] = {1};
  DLTensor input = make_cpu_tensor(logits, 4, input_shape, kDLFloat, 32);
  DLTensor target = make_cpu_tensor(labels, 3, target_shape, kDLInt, 64);
  DLTensor loss_out = make_cpu_tensor(&loss_value, 1, loss_shape, kDLFloat, 32);
  DLTensor grad_out = make_cpu_tensor(grad, 4, input_shape, kDLFloat, 32);
  culoss_loss dice = NULL;
  int64_t got_int = -1;
  double got_float = -1.0;
  size_t workspace_bytes = 0;
  double expected;
  int i;

  for (i = 0; i < N * C * H * W; ++i) grad[i] = NAN;

  CHECK_STATUS(culoss_loss_create(&dice, CULOSS_DICE), CULOSS_SUCCESS);
  CHECK(dice != NULL, "culoss_loss_create gave a NULL descriptor");
  if (dice == NULL) return;

  CHECK_STATUS(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX),
               CULOSS_SUCCESS);
  CHECK_STATUS(culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 1), CULOSS_SUCCESS);
  CHECK_STATUS(culoss_loss_set_float(dice, CULOSS_PARAM_SMOOTH_NR, 1e-5), CULOSS_SUCCESS);
  CHECK_STATUS(culoss_loss_set_float(dice, CULOSS_PARAM_SMOOTH_DR, 1e-5), CULOSS_SUCCESS);
  CHECK_STATUS(culoss_loss_get_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, &got_int),
               CULOSS_SUCCESS);
  CHECK(got_int == 1, "INCLUDE_BACKGROUND reads back as %ld", (long)got_int);
  CHECK_STATUS(culoss_loss_get_float(dice, CULOSS_PARAM_SMOOTH_NR, &got_float), CULOSS_SUCCESS);
  CHECK(abs_d(got_float - 1e-5) < 1e-12, "SMOOTH_NR reads back as %g", got_float);

  /* A parameter that does not apply to Dice is refused with a message. */
  CHECK_STATUS(culoss_loss_set_float(dice, CULOSS_PARAM_GAMMA, 2.0), CULOSS_ERROR_INVALID_ARGUMENT);
  CHECK(culoss_last_error() != NULL && culoss_last_error()[0] != '\0',
        "no message after a refused parameter");

  CHECK_STATUS(culoss_workspace_size(dice, &input, &target, &workspace_bytes), CULOSS_SUCCESS);

  CHECK_STATUS(
      culoss_compute(dice, &input, &target, NULL, &loss_out, &grad_out, 1.0, NULL, 0, NULL),
      CULOSS_SUCCESS);
  CHECK(culoss_last_error() != NULL && culoss_last_error()[0] == '\0',
        "culoss_last_error() after a success is \"%s\", expected \"\"",
        culoss_last_error() ? culoss_last_error() : "(null)");
  CHECK(isfinite(loss_value), "loss is not finite: %g", (double)loss_value);
  CHECK(loss_value >= 0.0f && loss_value <= 1.0f, "Dice loss %g is outside [0, 1]",
        (double)loss_value);
  expected = reference_dice(logits, labels, C, PIXELS);
  CHECK(abs_d(loss_value - expected) <= 1e-5, "Dice loss %.8f, reference %.8f", (double)loss_value,
        expected);
  for (i = 0; i < N * C * H * W; ++i) {
    CHECK(isfinite(grad[i]), "gradient[%d] is not finite: %g", i, (double)grad[i]);
  }
  /* A softmax gradient sums to zero over the classes of each pixel. */
  for (i = 0; i < PIXELS; ++i) {
    double sum = (double)grad[i] + (double)grad[PIXELS + i];
    CHECK(abs_d(sum) <= 1e-6, "gradient over the classes of pixel %d sums to %g", i, sum);
  }

  /* Refusals: a NULL input is an invalid argument, with a message. */
  CHECK_STATUS(culoss_compute(dice, NULL, &target, NULL, &loss_out, NULL, 1.0, NULL, 0, NULL),
               CULOSS_ERROR_INVALID_ARGUMENT);
  CHECK(culoss_last_error() != NULL && culoss_last_error()[0] != '\0',
        "culoss_last_error() is empty after a NULL input");

  CHECK_STATUS(culoss_loss_destroy(dice), CULOSS_SUCCESS);
  CHECK_STATUS(culoss_loss_destroy(NULL), CULOSS_SUCCESS);
}

int main(void) {
  test_version_and_strings();
  test_dice_cpu();
  if (g_failures != 0) {
    fprintf(stderr, "c99_test: %d check(s) failed\n", g_failures);
    return g_failures > 100 ? 100 : g_failures;
  }
  printf("c99_test: all checks passed (culoss %d)\n", culoss_version());
  return 0;
}

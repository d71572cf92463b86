/* A minimal culoss user: a soft Dice loss and its gradient on a 1x2x2x2 CPU tensor. */
#include <stdio.h>
#include <string.h>

#include <culoss/culoss.h>

static DLTensor cpu_tensor(void* data, int ndim, int64_t* shape, uint8_t code, uint8_t bits) {
  DLTensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = kDLCPU;
  t.ndim = ndim;
  t.dtype.code = code;
  t.dtype.bits = bits;
  t.dtype.lanes = 1;
  t.shape = shape;
  return t;
}

int main(void) {
  float logits[8] = {2.0f, -1.0f, 0.5f, 0.0f, -0.5f, 1.5f, 0.25f, 3.0f};
  int64_t labels[4] = {0, 1, 0, 1};
  float grad[8];
  float loss = -1.0f;
  int64_t input_shape[4] = {1, 2, 2, 2};
  int64_t target_shape[3] = {1, 2, 2};
  int64_t loss_shape[1] = {1};
  DLTensor input = cpu_tensor(logits, 4, input_shape, kDLFloat, 32);
  DLTensor target = cpu_tensor(labels, 3, target_shape, kDLInt, 64);
  DLTensor loss_out = cpu_tensor(&loss, 1, loss_shape, kDLFloat, 32);
  DLTensor grad_out = cpu_tensor(grad, 4, input_shape, kDLFloat, 32);
  culoss_loss dice = NULL;
  culoss_status st;
  int i;

  if (culoss_version() != CULOSS_VERSION) {
    fprintf(stderr, "consumer: library version %d, header version %d\n", culoss_version(),
            CULOSS_VERSION);
    return 1;
  }
  st = culoss_loss_create(&dice, CULOSS_DICE);
  if (st == CULOSS_SUCCESS) st = culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 1);
  if (st == CULOSS_SUCCESS) {
    st = culoss_compute(dice, &input, &target, NULL, &loss_out, &grad_out, 1.0, NULL, 0, NULL);
  }
  if (st != CULOSS_SUCCESS) {
    fprintf(stderr, "consumer: %s: %s\n", culoss_status_string(st), culoss_last_error());
    culoss_loss_destroy(dice);
    return 1;
  }
  culoss_loss_destroy(dice);
  /* x == x is false for NaN; the bounds reject infinities. */
  if (!(loss == loss) || loss < 0.0f || loss > 1.0f) {
    fprintf(stderr, "consumer: Dice loss %g is not in [0, 1]\n", (double)loss);
    return 1;
  }
  for (i = 0; i < 8; ++i) {
    if (!(grad[i] == grad[i]) || grad[i] > 1e30f || grad[i] < -1e30f) {
      fprintf(stderr, "consumer: gradient[%d] = %g is not finite\n", i, (double)grad[i]);
      return 1;
    }
  }
  printf("consumer: culoss %d, Dice loss %.6f\n", culoss_version(), (double)loss);
  return 0;
}

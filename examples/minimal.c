/* The smallest complete culoss program: Dice loss and its gradient for a 1x2x2x2 softmax
 * prediction against class indices, on the CPU. */
#include <culoss/culoss.h>
#include <stdio.h>

int main(void) {
  float logits[8] = {2, -1, 0.5f, 0, /* class 0 */ -2, 1, 0, 3 /* class 1 */};
  int64_t labels[4] = {0, 1, 0, 1};
  float grad[8], loss = 0;
  int64_t in_shape[4] = {1, 2, 2, 2}, lab_shape[3] = {1, 2, 2};
  DLTensor input = {logits, {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, in_shape, NULL, 0};
  DLTensor target = {labels, {kDLCPU, 0}, 3, {kDLInt, 64, 1}, lab_shape, NULL, 0};
  DLTensor grad_t = {grad, {kDLCPU, 0}, 4, {kDLFloat, 32, 1}, in_shape, NULL, 0};
  DLTensor loss_t = {&loss, {kDLCPU, 0}, 0, {kDLFloat, 32, 1}, NULL, NULL, 0};
  culoss_loss dice;
  culoss_status s = culoss_loss_create(&dice, CULOSS_DICE);
  if (s == CULOSS_SUCCESS) s = culoss_loss_set_int(dice, CULOSS_PARAM_INCLUDE_BACKGROUND, 0);
  if (s == CULOSS_SUCCESS)
    s = culoss_compute(dice, &input, &target, NULL, &loss_t, &grad_t, 1.0, NULL, 0, NULL);
  if (s != CULOSS_SUCCESS) {
    fprintf(stderr, "culoss: %s: %s\n", culoss_status_string(s), culoss_last_error());
    culoss_loss_destroy(dice);
    return 1;
  }
  printf("dice loss %.6f, d/dlogit[0] %.6f\n", loss, grad[0]);
  culoss_loss_destroy(dice);
  return 0;
}

// The option enums the kernels read, with the values of the public C enums (culoss.h): one
// header for activations, reductions and generalized-Dice weight types.
#pragma once

#include <culoss/culoss.h>

namespace culoss {

enum Activation : int {
  ACT_NONE = CULOSS_ACTIVATION_NONE,
  ACT_SIGMOID = CULOSS_ACTIVATION_SIGMOID,
  ACT_SOFTMAX = CULOSS_ACTIVATION_SOFTMAX
};
enum Reduction : int {
  RED_MEAN = CULOSS_REDUCTION_MEAN,
  RED_SUM = CULOSS_REDUCTION_SUM,
  RED_NONE = CULOSS_REDUCTION_NONE
};
enum WeightType : int {
  WT_SQUARE = CULOSS_WEIGHT_SQUARE,
  WT_SIMPLE = CULOSS_WEIGHT_SIMPLE,
  WT_UNIFORM = CULOSS_WEIGHT_UNIFORM
};

}  // namespace culoss

// The registry queries of the public API (culoss_kind_name ... culoss_loss_output_axes): names,
// which parameters apply, types, bounds, defaults, accepted values and output axes, checked
// against the documented table and against what the setters and culoss_compute do.
#include <cmath>
#include <string>
#include <vector>

#include "api/api_util.hpp"

namespace {

using namespace api_test;
using testing_util::Loss;

constexpr double kInf = HUGE_VAL;

TEST(ApiRegistry, NamesOfKindsAndParameters) {
  EXPECT_STREQ("CULOSS_DICE", culoss_kind_name(CULOSS_DICE));
  EXPECT_STREQ("CULOSS_MARGINAL_CE", culoss_kind_name(CULOSS_MARGINAL_CE));
  EXPECT_STREQ("CULOSS_SUM", culoss_kind_name(CULOSS_SUM));
  EXPECT_EQ(nullptr, culoss_kind_name(static_cast<culoss_kind>(0)));
  EXPECT_STREQ("CULOSS_MCC", culoss_kind_name(CULOSS_MCC));
  EXPECT_STREQ("CULOSS_TOPK_CE", culoss_kind_name(CULOSS_TOPK_CE));
  EXPECT_EQ(nullptr, culoss_kind_name(static_cast<culoss_kind>(200)));
  EXPECT_EQ(nullptr, culoss_kind_name(static_cast<culoss_kind>(-3)));
  EXPECT_STREQ("CULOSS_PARAM_ACTIVATION", culoss_param_name(CULOSS_PARAM_ACTIVATION));
  EXPECT_STREQ("CULOSS_PARAM_CHECK_TARGETS", culoss_param_name(CULOSS_PARAM_CHECK_TARGETS));
  EXPECT_EQ(nullptr, culoss_param_name(static_cast<culoss_param>(0)));
  EXPECT_STREQ("CULOSS_PARAM_TOP_FRACTION", culoss_param_name(CULOSS_PARAM_TOP_FRACTION));
  EXPECT_EQ(nullptr, culoss_param_name(static_cast<culoss_param>(200)));
  EXPECT_STREQ("CULOSS_CLDICE", culoss_kind_name(CULOSS_CLDICE));
  EXPECT_STREQ("CULOSS_PARAM_ITERATIONS", culoss_param_name(CULOSS_PARAM_ITERATIONS));
  // numbered from 1 without gaps (a binding may scan 1..255), every name well formed
  int kinds = 0, params = 0;
  while (culoss_kind_name(static_cast<culoss_kind>(kinds + 1))) ++kinds;
  while (culoss_param_name(static_cast<culoss_param>(params + 1))) ++params;
  for (int v = kinds + 1; v <= 255; ++v)
    EXPECT_EQ(nullptr, culoss_kind_name(static_cast<culoss_kind>(v)));
  for (int v = params + 1; v <= 255; ++v)
    EXPECT_EQ(nullptr, culoss_param_name(static_cast<culoss_param>(v)));
  EXPECT_EQ(18, kinds);
  EXPECT_EQ(27, params);
}

TEST(ApiRegistry, EnumValueNames) {
  EXPECT_STREQ("NONE", culoss_param_value_name(CULOSS_PARAM_ACTIVATION, 0));
  EXPECT_STREQ("SOFTMAX", culoss_param_value_name(CULOSS_PARAM_ACTIVATION, 2));
  EXPECT_STREQ("NONE", culoss_param_value_name(CULOSS_PARAM_REDUCTION, 2));
  EXPECT_STREQ("UNIFORM", culoss_param_value_name(CULOSS_PARAM_WEIGHT_TYPE, 2));
  EXPECT_STREQ("BATCH_FREQUENCY", culoss_param_value_name(CULOSS_PARAM_CLASS_BALANCE, 1));
  EXPECT_STREQ("PRESENT", culoss_param_value_name(CULOSS_PARAM_CLASSES, 1));
  EXPECT_STREQ("MICRO", culoss_param_value_name(CULOSS_PARAM_AVERAGE, 1));
  EXPECT_EQ(nullptr, culoss_param_value_name(CULOSS_PARAM_ACTIVATION, 3));
  EXPECT_EQ(nullptr, culoss_param_value_name(CULOSS_PARAM_ACTIVATION, -1));
  EXPECT_EQ(nullptr, culoss_param_value_name(CULOSS_PARAM_BATCH, 0));  // a flag, no enum
  EXPECT_EQ(nullptr, culoss_param_value_name(static_cast<culoss_param>(99), 0));
}

TEST(ApiRegistry, AppliesMatchesTheSetters) {
  for (int k = 1; k <= 255; ++k) {
    const culoss_kind kind = static_cast<culoss_kind>(k);
    if (!culoss_kind_name(kind)) continue;
    Loss loss(kind);
    for (int p = 1; p <= 255; ++p) {
      const culoss_param param = static_cast<culoss_param>(p);
      if (!culoss_param_name(param)) continue;
      SCOPED_TRACE(std::string(culoss_kind_name(kind)) + " " + culoss_param_name(param));
      culoss_param_type type;
      ASSERT_OK(culoss_param_get_type(param, &type));
      culoss_status got = CULOSS_ERROR_INTERNAL;
      int64_t iv = 0;
      double fv = 0;
      if (type == CULOSS_TYPE_INT) got = culoss_loss_get_int(loss, param, &iv);
      if (type == CULOSS_TYPE_FLOAT) got = culoss_loss_get_float(loss, param, &fv);
      if (type == CULOSS_TYPE_FLOATS) {
        const double one = 1.0;
        got = culoss_loss_set_floats(loss, param, &one, 1);
      }
      const int applies = culoss_param_applies(kind, param);
      EXPECT_EQ(applies ? CULOSS_SUCCESS : CULOSS_ERROR_INVALID_ARGUMENT, got);
      double def = -1;
      if (!applies) {
        EXPECT_REFUSED(culoss_param_get_default(kind, param, &def), CULOSS_ERROR_INVALID_ARGUMENT,
                       "does not apply", culoss_kind_name(kind));
        EXPECT_EQ(0, culoss_param_accepts(kind, param, 0.0));
        continue;
      }
      ASSERT_OK(culoss_param_get_default(kind, param, &def));
      // a descriptor starts at the default, which the setter accepts
      if (type == CULOSS_TYPE_INT) {
        EXPECT_EQ(static_cast<int64_t>(def), iv);
      } else if (type == CULOSS_TYPE_FLOAT) {
        EXPECT_EQ(def, fv);
      }
      EXPECT_EQ(1, culoss_param_accepts(kind, param, def));
    }
  }
  EXPECT_EQ(0, culoss_param_applies(static_cast<culoss_kind>(0), CULOSS_PARAM_ACTIVATION));
  EXPECT_EQ(0, culoss_param_applies(CULOSS_DICE, static_cast<culoss_param>(99)));
  EXPECT_EQ(0, culoss_param_applies(CULOSS_DICE, static_cast<culoss_param>(200)));
  EXPECT_EQ(0, culoss_param_applies(CULOSS_DICE, CULOSS_PARAM_TOP_FRACTION));
  EXPECT_EQ(1, culoss_param_applies(CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION));
  EXPECT_EQ(1, culoss_param_applies(CULOSS_DICE, CULOSS_PARAM_SOFT_LABEL));
  EXPECT_EQ(0, culoss_param_applies(CULOSS_GENERALIZED_DICE, CULOSS_PARAM_SOFT_LABEL));
  EXPECT_EQ(1, culoss_param_applies(CULOSS_MCC, CULOSS_PARAM_SOFT_LABEL));
  EXPECT_EQ(0, culoss_param_applies(CULOSS_MCC, CULOSS_PARAM_SMOOTH_NR));
  EXPECT_EQ(1, culoss_param_applies(CULOSS_SUM, CULOSS_PARAM_CHECK_TARGETS));
  EXPECT_EQ(0, culoss_param_applies(CULOSS_LOVASZ_HINGE, CULOSS_PARAM_ACTIVATION));
}

TEST(ApiRegistry, Types) {
  culoss_param_type t;
  ASSERT_OK(culoss_param_get_type(CULOSS_PARAM_CLASS_AXIS, &t));
  EXPECT_EQ(CULOSS_TYPE_INT, t);
  ASSERT_OK(culoss_param_get_type(CULOSS_PARAM_GAMMA, &t));
  EXPECT_EQ(CULOSS_TYPE_FLOAT, t);
  ASSERT_OK(culoss_param_get_type(CULOSS_PARAM_POS_WEIGHT, &t));
  EXPECT_EQ(CULOSS_TYPE_FLOATS, t);
  EXPECT_REFUSED(culoss_param_get_type(static_cast<culoss_param>(0), &t),
                 CULOSS_ERROR_INVALID_ARGUMENT, "parameter");
  EXPECT_REFUSED(culoss_param_get_type(CULOSS_PARAM_GAMMA, nullptr), CULOSS_ERROR_INVALID_ARGUMENT,
                 "NULL");
}

struct Bounds {
  culoss_kind kind;
  culoss_param param;
  double lower, upper;
  int open;
  double def;
};

const Bounds kBounds[] = {
    {CULOSS_DICE, CULOSS_PARAM_CLASS_AXIS, -64, 64, 0, 1},
    {CULOSS_DICE, CULOSS_PARAM_IGNORE_INDEX, -kInf, kInf, 0, -100},
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, 0, kInf, 0, 1e-5},
    {CULOSS_DICE, CULOSS_PARAM_BATCH, 0, 1, 0, 0},
    {CULOSS_DICE, CULOSS_PARAM_INCLUDE_BACKGROUND, 0, 1, 0, 1},
    {CULOSS_DICE, CULOSS_PARAM_CLASS_WEIGHTS, 0, kInf, 0, 1},
    {CULOSS_DICE, CULOSS_PARAM_ACTIVATION, 0, 2, 0, CULOSS_ACTIVATION_SOFTMAX},
    {CULOSS_TVERSKY, CULOSS_PARAM_ALPHA, 0, kInf, 0, 0.5},
    {CULOSS_FOCAL_TVERSKY, CULOSS_PARAM_ALPHA, 0, kInf, 0, 0.3},
    {CULOSS_FOCAL_TVERSKY, CULOSS_PARAM_BETA, 0, kInf, 0, 0.7},
    {CULOSS_FOCAL_TVERSKY, CULOSS_PARAM_GAMMA, 0, kInf, 0, 0.75},
    {CULOSS_FOCAL, CULOSS_PARAM_ALPHA, -kInf, 1, 0, 0.25},
    {CULOSS_FOCAL, CULOSS_PARAM_GAMMA, 0, kInf, 0, 2},
    {CULOSS_FOCAL, CULOSS_PARAM_ACTIVATION, 0, 2, 0, CULOSS_ACTIVATION_SIGMOID},
    {CULOSS_COMBO, CULOSS_PARAM_ALPHA, 0, 1, 0, 0.5},
    {CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, 0, 1, 0, 0.5},
    {CULOSS_BCE, CULOSS_PARAM_LABEL_SMOOTHING, 0, 1, 1, 0},
    {CULOSS_BCE, CULOSS_PARAM_POS_WEIGHT, 0, kInf, 0, 1},
    {CULOSS_GENERALIZED_DICE, CULOSS_PARAM_WEIGHT_TYPE, 0, 2, 0, CULOSS_WEIGHT_SQUARE},
    {CULOSS_LOVASZ_SOFTMAX, CULOSS_PARAM_CLASSES, 0, 1, 0, CULOSS_CLASSES_PRESENT},
    {CULOSS_SUM, CULOSS_PARAM_CHECK_TARGETS, 0, 1, 0, 1},
    // an open lower bound is reported as the next double above it
    {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 4.9406564584124654e-324, 1, 0, 0.1},
    {CULOSS_TOPK_CE, CULOSS_PARAM_REDUCTION, 0, 2, 0, CULOSS_REDUCTION_MEAN},
};

TEST(ApiRegistry, BoundsAndDefaults) {
  for (const Bounds& b : kBounds) {
    SCOPED_TRACE(std::string(culoss_kind_name(b.kind)) + " " + culoss_param_name(b.param));
    double lower = 7, upper = 7, def = 7;
    int open = 7;
    ASSERT_OK(culoss_param_get_bounds(b.kind, b.param, &lower, &upper, &open));
    EXPECT_EQ(b.lower, lower);
    EXPECT_EQ(b.upper, upper);
    EXPECT_EQ(b.open, open);
    ASSERT_OK(culoss_param_get_default(b.kind, b.param, &def));
    EXPECT_EQ(b.def, def);
  }
  // NULL outputs are skipped
  EXPECT_OK(
      culoss_param_get_bounds(CULOSS_DICE, CULOSS_PARAM_SMOOTH_DR, nullptr, nullptr, nullptr));
  double v = 0;
  EXPECT_REFUSED(culoss_param_get_bounds(CULOSS_DICE, CULOSS_PARAM_GAMMA, &v, &v, nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_GAMMA", "CULOSS_DICE");
  EXPECT_REFUSED(
      culoss_param_get_bounds(static_cast<culoss_kind>(99), CULOSS_PARAM_GAMMA, &v, &v, nullptr),
      CULOSS_ERROR_INVALID_ARGUMENT, "culoss_kind", "99");
  EXPECT_REFUSED(culoss_param_get_default(CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "NULL");
}

TEST(ApiRegistry, AcceptsMatchesTheSetters) {
  struct Case {
    culoss_kind kind;
    culoss_param param;
    double value;
    int accepted;
  };
  const Case cases[] = {
      {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX, 1},
      {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID, 0},
      {CULOSS_BCE, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX, 0},
      {CULOSS_FOCAL, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX, 1},
      {CULOSS_COMBO, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM, 0},
      {CULOSS_DICE, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE, 1},
      {CULOSS_DICE, CULOSS_PARAM_CLASS_AXIS, -64, 1},
      {CULOSS_DICE, CULOSS_PARAM_CLASS_AXIS, 65, 0},
      {CULOSS_DICE, CULOSS_PARAM_CLASS_AXIS, 1.5, 0},
      {CULOSS_DICE, CULOSS_PARAM_IGNORE_INDEX, -1e18, 1},
      {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, 0, 1},
      {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, -1e-9, 0},
      {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, kInf, 0},
      {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, NAN, 0},
      {CULOSS_FOCAL, CULOSS_PARAM_ALPHA, -3, 1},
      {CULOSS_FOCAL, CULOSS_PARAM_ALPHA, 1.5, 0},
      {CULOSS_BCE, CULOSS_PARAM_LABEL_SMOOTHING, 0.999, 1},
      {CULOSS_BCE, CULOSS_PARAM_LABEL_SMOOTHING, 1, 0},
      {CULOSS_DICE, CULOSS_PARAM_CLASS_WEIGHTS, 2.5, 1},
      {CULOSS_DICE, CULOSS_PARAM_CLASS_WEIGHTS, -1, 0},
      {CULOSS_DICE, CULOSS_PARAM_GAMMA, 1, 0},  // does not apply
      {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 0, 0},  // (0, 1]
      {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 5e-324, 1},
      {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 1, 1},
      {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 1.0000001, 0},
      {CULOSS_TOPK_CE, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM, 0},
      {CULOSS_TOPK_CE, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(culoss_kind_name(c.kind)) + " " + culoss_param_name(c.param) + " " +
                 std::to_string(c.value));
    culoss_param_type type;
    ASSERT_OK(culoss_param_get_type(c.param, &type));
    EXPECT_EQ(c.accepted, culoss_param_accepts(c.kind, c.param, c.value));
    EXPECT_STREQ("", culoss_last_error()) << "a predicate sets no error";
    if (!culoss_param_applies(c.kind, c.param) || std::isnan(c.value)) continue;
    Loss loss(c.kind);
    culoss_status got;
    if (type == CULOSS_TYPE_INT) {
      if (c.value != std::floor(c.value)) continue;  // not an int64 to pass
      got = culoss_loss_set_int(loss, c.param, static_cast<int64_t>(c.value));
    } else if (type == CULOSS_TYPE_FLOAT) {
      got = culoss_loss_set_float(loss, c.param, c.value);
    } else {
      got = culoss_loss_set_floats(loss, c.param, &c.value, 1);
    }
    EXPECT_EQ(c.accepted ? CULOSS_SUCCESS : CULOSS_ERROR_INVALID_ARGUMENT, got);
  }
}

std::vector<int64_t> axes_of(culoss_loss loss, int64_t ndim) {
  std::vector<int64_t> axes(static_cast<size_t>(ndim), -7);
  int64_t count = -1;
  EXPECT_OK(culoss_loss_output_axes(loss, ndim, axes.data(), &count));
  axes.resize(static_cast<size_t>(count < 0 ? 0 : count));
  return axes;
}

using Axes = std::vector<int64_t>;

TEST(ApiRegistry, OutputAxes) {
  Loss dice(CULOSS_DICE);
  EXPECT_EQ(Axes{}, axes_of(dice, 4));  // MEAN
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ((Axes{0, 1}), axes_of(dice, 4));
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, -1));
  EXPECT_EQ((Axes{0, 3}), axes_of(dice, 4));
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_BATCH, 1));
  EXPECT_EQ((Axes{3}), axes_of(dice, 4));
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_AVERAGE, CULOSS_AVERAGE_MICRO));
  EXPECT_EQ(Axes{}, axes_of(dice, 4));

  Loss gdl(CULOSS_GENERALIZED_DICE);
  ASSERT_OK(culoss_loss_set_int(gdl, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ((Axes{0}), axes_of(gdl, 3));

  Loss bce(CULOSS_BCE);
  ASSERT_OK(culoss_loss_set_int(bce, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ((Axes{0, 1, 2}), axes_of(bce, 3));
  Loss ce(CULOSS_CROSS_ENTROPY);
  ASSERT_OK(culoss_loss_set_int(ce, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ((Axes{0, 2, 3}), axes_of(ce, 4));
  Loss focal(CULOSS_FOCAL);
  ASSERT_OK(culoss_loss_set_int(focal, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ((Axes{0, 1, 2}), axes_of(focal, 3));
  ASSERT_OK(culoss_loss_set_int(focal, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
  EXPECT_EQ((Axes{0, 2}), axes_of(focal, 3));

  Loss hinge(CULOSS_LOVASZ_HINGE);
  ASSERT_OK(culoss_loss_set_int(hinge, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ((Axes{1}), axes_of(hinge, 4));
  ASSERT_OK(culoss_loss_set_int(hinge, CULOSS_PARAM_PER_IMAGE, 1));
  EXPECT_EQ((Axes{0, 1}), axes_of(hinge, 4));
  Loss lovasz(CULOSS_LOVASZ_SOFTMAX);
  ASSERT_OK(culoss_loss_set_int(lovasz, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_EQ(Axes{}, axes_of(lovasz, 4));
  ASSERT_OK(culoss_loss_set_int(lovasz, CULOSS_PARAM_PER_IMAGE, 1));
  EXPECT_EQ((Axes{0}), axes_of(lovasz, 4));

  Loss sum(CULOSS_SUM);
  EXPECT_EQ(Axes{}, axes_of(sum, 4));

  int64_t axes[4], count = 0;
  EXPECT_REFUSED(culoss_loss_output_axes(ce, 1, axes, &count), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_CLASS_AXIS");
  EXPECT_REFUSED(culoss_loss_output_axes(nullptr, 4, axes, &count), CULOSS_ERROR_INVALID_ARGUMENT,
                 "loss");
  EXPECT_REFUSED(culoss_loss_output_axes(ce, 4, axes, nullptr), CULOSS_ERROR_INVALID_ARGUMENT,
                 "count");
  EXPECT_REFUSED(culoss_loss_output_axes(ce, 4, nullptr, &count), CULOSS_ERROR_INVALID_ARGUMENT,
                 "axes");
}

}  // namespace

// Refusals of the element-wise kinds (BCE, CROSS_ENTROPY, FOCAL, COMBO, MARGINAL_CE) and of
// CULOSS_SUM through the public API, on the CPU: docs/reference.md and docs/SEMANTICS.md
// ("Element-wise losses", "Targets and CHECK_TARGETS"). Every refusal checks the status, the key
// words of culoss_last_error(), and that the outputs (filled with a sentinel) are untouched; a
// refused setter leaves the parameter as it was. The defaults of the new kinds are read back
// through the getters.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "api/api_util.hpp"

namespace {

using namespace api_test;
using namespace testing_util;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const char* kind_name(culoss_kind k) {
  switch (k) {
    case CULOSS_DICE: return "CULOSS_DICE";
    case CULOSS_JACCARD: return "CULOSS_JACCARD";
    case CULOSS_TVERSKY: return "CULOSS_TVERSKY";
    case CULOSS_FOCAL_TVERSKY: return "CULOSS_FOCAL_TVERSKY";
    case CULOSS_GENERALIZED_DICE: return "CULOSS_GENERALIZED_DICE";
    case CULOSS_BCE: return "CULOSS_BCE";
    case CULOSS_CROSS_ENTROPY: return "CULOSS_CROSS_ENTROPY";
    case CULOSS_FOCAL: return "CULOSS_FOCAL";
    case CULOSS_COMBO: return "CULOSS_COMBO";
    case CULOSS_MARGINAL_CE: return "CULOSS_MARGINAL_CE";
    case CULOSS_LOVASZ_HINGE: return "CULOSS_LOVASZ_HINGE";
    case CULOSS_LOVASZ_SOFTMAX: return "CULOSS_LOVASZ_SOFTMAX";
    case CULOSS_SUM: return "CULOSS_SUM";
    case CULOSS_MCC: return "CULOSS_MCC";
    case CULOSS_TOPK_CE: return "CULOSS_TOPK_CE";
    case CULOSS_HAUSDORFF_DT: return "CULOSS_HAUSDORFF_DT";
    case CULOSS_BOUNDARY: return "CULOSS_BOUNDARY";
    case CULOSS_CLDICE: return "CULOSS_CLDICE";
  }
  return "?";
}

const char* param_name(culoss_param p) {
  switch (p) {
    case CULOSS_PARAM_ACTIVATION: return "CULOSS_PARAM_ACTIVATION";
    case CULOSS_PARAM_CLASS_AXIS: return "CULOSS_PARAM_CLASS_AXIS";
    case CULOSS_PARAM_REDUCTION: return "CULOSS_PARAM_REDUCTION";
    case CULOSS_PARAM_IGNORE_INDEX: return "CULOSS_PARAM_IGNORE_INDEX";
    case CULOSS_PARAM_SMOOTH_NR: return "CULOSS_PARAM_SMOOTH_NR";
    case CULOSS_PARAM_SMOOTH_DR: return "CULOSS_PARAM_SMOOTH_DR";
    case CULOSS_PARAM_SQUARED_DENOMINATOR: return "CULOSS_PARAM_SQUARED_DENOMINATOR";
    case CULOSS_PARAM_BATCH: return "CULOSS_PARAM_BATCH";
    case CULOSS_PARAM_INCLUDE_BACKGROUND: return "CULOSS_PARAM_INCLUDE_BACKGROUND";
    case CULOSS_PARAM_CLASS_WEIGHTS: return "CULOSS_PARAM_CLASS_WEIGHTS";
    case CULOSS_PARAM_ALPHA: return "CULOSS_PARAM_ALPHA";
    case CULOSS_PARAM_BETA: return "CULOSS_PARAM_BETA";
    case CULOSS_PARAM_GAMMA: return "CULOSS_PARAM_GAMMA";
    case CULOSS_PARAM_WEIGHT_TYPE: return "CULOSS_PARAM_WEIGHT_TYPE";
    case CULOSS_PARAM_POS_WEIGHT: return "CULOSS_PARAM_POS_WEIGHT";
    case CULOSS_PARAM_CLASS_BALANCE: return "CULOSS_PARAM_CLASS_BALANCE";
    case CULOSS_PARAM_LABEL_SMOOTHING: return "CULOSS_PARAM_LABEL_SMOOTHING";
    case CULOSS_PARAM_CE_RATIO: return "CULOSS_PARAM_CE_RATIO";
    case CULOSS_PARAM_PER_IMAGE: return "CULOSS_PARAM_PER_IMAGE";
    case CULOSS_PARAM_CLASSES: return "CULOSS_PARAM_CLASSES";
    case CULOSS_PARAM_SKIP_EMPTY: return "CULOSS_PARAM_SKIP_EMPTY";
    case CULOSS_PARAM_AVERAGE: return "CULOSS_PARAM_AVERAGE";
    case CULOSS_PARAM_CHECK_TARGETS: return "CULOSS_PARAM_CHECK_TARGETS";
    case CULOSS_PARAM_SOFT_LABEL: return "CULOSS_PARAM_SOFT_LABEL";
    case CULOSS_PARAM_TOP_FRACTION: return "CULOSS_PARAM_TOP_FRACTION";
    case CULOSS_PARAM_SPACING: return "CULOSS_PARAM_SPACING";
    case CULOSS_PARAM_ITERATIONS: return "CULOSS_PARAM_ITERATIONS";
  }
  return "?";
}

enum class Type { Int, Float, Floats };

const culoss_kind kElementwise[] = {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_COMBO,
                                    CULOSS_MARGINAL_CE};

// ---------------------------------------------------------------------------------------------
// defaults (docs/reference.md)
// ---------------------------------------------------------------------------------------------

int64_t get_int(culoss_loss h, culoss_param p) {
  int64_t v = -12345;
  EXPECT_OK(culoss_loss_get_int(h, p, &v));
  return v;
}
double get_float(culoss_loss h, culoss_param p) {
  double v = -12345.0;
  EXPECT_OK(culoss_loss_get_float(h, p, &v));
  return v;
}

TEST(ApiElementwiseDefaults, ActivationSigmoidForBinaryKindsSoftmaxOtherwise) {
  for (culoss_kind k : {CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO}) {
    Loss loss(k);
    EXPECT_EQ(CULOSS_ACTIVATION_SIGMOID, get_int(loss, CULOSS_PARAM_ACTIVATION)) << kind_name(k);
  }
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE}) {
    Loss loss(k);
    EXPECT_EQ(CULOSS_ACTIVATION_SOFTMAX, get_int(loss, CULOSS_PARAM_ACTIVATION)) << kind_name(k);
  }
}

TEST(ApiElementwiseDefaults, SharedParameters) {
  for (culoss_kind k : kElementwise) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    EXPECT_EQ(1, get_int(loss, CULOSS_PARAM_CLASS_AXIS));
    EXPECT_EQ(CULOSS_REDUCTION_MEAN, get_int(loss, CULOSS_PARAM_REDUCTION));
    EXPECT_EQ(-100, get_int(loss, CULOSS_PARAM_IGNORE_INDEX));
    EXPECT_EQ(1, get_int(loss, CULOSS_PARAM_CHECK_TARGETS));
    EXPECT_STREQ("", culoss_last_error());
  }
}

TEST(ApiElementwiseDefaults, FocalAlphaGamma) {
  Loss focal(CULOSS_FOCAL);
  EXPECT_EQ(0.25, get_float(focal, CULOSS_PARAM_ALPHA));
  EXPECT_EQ(2.0, get_float(focal, CULOSS_PARAM_GAMMA));
}

TEST(ApiElementwiseDefaults, ComboAlphaCeRatioAndRegionOptions) {
  Loss combo(CULOSS_COMBO);
  EXPECT_EQ(0.5, get_float(combo, CULOSS_PARAM_ALPHA));
  EXPECT_EQ(0.5, get_float(combo, CULOSS_PARAM_CE_RATIO));
  EXPECT_EQ(1e-5, get_float(combo, CULOSS_PARAM_SMOOTH_NR));
  EXPECT_EQ(1e-5, get_float(combo, CULOSS_PARAM_SMOOTH_DR));
  EXPECT_EQ(1, get_int(combo, CULOSS_PARAM_INCLUDE_BACKGROUND));
  EXPECT_EQ(0, get_int(combo, CULOSS_PARAM_BATCH));
}

TEST(ApiElementwiseDefaults, LabelSmoothingZeroAndBceBalanceNone) {
  Loss bce(CULOSS_BCE), ce(CULOSS_CROSS_ENTROPY);
  EXPECT_EQ(0.0, get_float(bce, CULOSS_PARAM_LABEL_SMOOTHING));
  EXPECT_EQ(0.0, get_float(ce, CULOSS_PARAM_LABEL_SMOOTHING));
  EXPECT_EQ(CULOSS_BALANCE_NONE, get_int(bce, CULOSS_PARAM_CLASS_BALANCE));
}

// ---------------------------------------------------------------------------------------------
// setters: activations, reductions, ranges
// ---------------------------------------------------------------------------------------------

// A refused set_int leaves the value; the message names the parameter and the value.
void expect_int_refused(culoss_kind k, culoss_param p, int64_t v, std::vector<std::string> words) {
  SCOPED_TRACE(std::string(param_name(p)) + " = " + std::to_string(v) + " on " + kind_name(k));
  Loss loss(k);
  int64_t before = 0, after = 0;
  ASSERT_OK(culoss_loss_get_int(loss, p, &before));
  const culoss_status s = culoss_loss_set_int(loss, p, v);
  const std::string msg = last_error();
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, s) << msg;
  EXPECT_THAT(msg, ::testing::HasSubstr(param_name(p)));
  for (const std::string& w : words) EXPECT_THAT(msg, ::testing::HasSubstr(w));
  ASSERT_OK(culoss_loss_get_int(loss, p, &after));
  EXPECT_EQ(before, after) << "a refused set must not change the descriptor";
}

void expect_float_refused(culoss_kind k, culoss_param p, double v, std::vector<std::string> words) {
  SCOPED_TRACE(std::string(param_name(p)) + " = " + std::to_string(v) + " on " + kind_name(k));
  Loss loss(k);
  double before = 0, after = 0;
  ASSERT_OK(culoss_loss_get_float(loss, p, &before));
  const culoss_status s = culoss_loss_set_float(loss, p, v);
  const std::string msg = last_error();
  EXPECT_EQ(CULOSS_ERROR_INVALID_ARGUMENT, s) << msg;
  EXPECT_THAT(msg, ::testing::HasSubstr(param_name(p)));
  for (const std::string& w : words) EXPECT_THAT(msg, ::testing::HasSubstr(w));
  ASSERT_OK(culoss_loss_get_float(loss, p, &after));
  EXPECT_EQ(before, after) << "a refused set must not change the descriptor";
}

void expect_float_accepted(culoss_kind k, culoss_param p, double v) {
  SCOPED_TRACE(std::string(param_name(p)) + " = " + std::to_string(v) + " on " + kind_name(k));
  Loss loss(k);
  EXPECT_OK(culoss_loss_set_float(loss, p, v));
  EXPECT_STREQ("", culoss_last_error());
  double back = kNaN;
  EXPECT_OK(culoss_loss_get_float(loss, p, &back));
  EXPECT_EQ(v, back);
}

TEST(ApiElementwiseSetters, SoftmaxStyleKindsRefuseSigmoid) {
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE}) {
    expect_int_refused(k, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID, {"SOFTMAX"});
    Loss loss(k);
    EXPECT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
    EXPECT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
  }
}

TEST(ApiElementwiseSetters, BinaryKindsRefuseSoftmax) {
  for (culoss_kind k : {CULOSS_BCE, CULOSS_COMBO}) {
    expect_int_refused(k, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX, {"SIGMOID"});
    Loss loss(k);
    EXPECT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
    EXPECT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  }
  // FOCAL takes all three (softmax focal is its own loss).
  Loss focal(CULOSS_FOCAL);
  for (int a : {CULOSS_ACTIVATION_NONE, CULOSS_ACTIVATION_SIGMOID, CULOSS_ACTIVATION_SOFTMAX})
    EXPECT_OK(culoss_loss_set_int(focal, CULOSS_PARAM_ACTIVATION, a));
  for (culoss_kind k : kElementwise)
    for (int64_t a : {int64_t{-1}, int64_t{3}})
      expect_int_refused(k, CULOSS_PARAM_ACTIVATION, a, {std::to_string(a)});
}

TEST(ApiElementwiseSetters, ComboIsMeanOnly) {
  expect_int_refused(CULOSS_COMBO, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM, {"MEAN", "CULOSS_COMBO"});
  expect_int_refused(CULOSS_COMBO, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE, {"MEAN", "CULOSS_COMBO"});
  Loss combo(CULOSS_COMBO);
  EXPECT_OK(culoss_loss_set_int(combo, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_MEAN));
  // The other element-wise kinds have all three reductions.
  for (culoss_kind k : {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_MARGINAL_CE}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    for (int r : {CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE, CULOSS_REDUCTION_MEAN})
      EXPECT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, r));
  }
}

TEST(ApiElementwiseSetters, LabelSmoothingIsInZeroOne) {
  for (culoss_kind k : {CULOSS_BCE, CULOSS_CROSS_ENTROPY}) {
    expect_float_refused(k, CULOSS_PARAM_LABEL_SMOOTHING, 1.0, {"[0, 1)"});
    expect_float_refused(k, CULOSS_PARAM_LABEL_SMOOTHING, 1.5, {"[0, 1)"});
    expect_float_refused(k, CULOSS_PARAM_LABEL_SMOOTHING, -0.1, {"[0, 1)"});
    expect_float_refused(k, CULOSS_PARAM_LABEL_SMOOTHING, -1e-300, {"[0, 1)"});
    expect_float_refused(k, CULOSS_PARAM_LABEL_SMOOTHING, kNaN, {"[0, 1)"});
    expect_float_refused(k, CULOSS_PARAM_LABEL_SMOOTHING, kInf, {"[0, 1)"});
    expect_float_accepted(k, CULOSS_PARAM_LABEL_SMOOTHING, 0.0);
    expect_float_accepted(k, CULOSS_PARAM_LABEL_SMOOTHING, 0.999);
  }
}

TEST(ApiElementwiseSetters, CeRatioIsInZeroOne) {
  for (double v : {-0.1, 1.0000001, 2.0, kNaN, kInf, -kInf})
    expect_float_refused(CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, v, {"[0, 1]"});
  expect_float_accepted(CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, 0.0);
  expect_float_accepted(CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, 1.0);
  expect_float_accepted(CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, 0.3);
}

TEST(ApiElementwiseSetters, FocalAlphaAtMostOneAndNegativeDisables) {
  for (double v : {1.0000001, 1.5, 100.0, kNaN, kInf, -kInf})
    expect_float_refused(CULOSS_FOCAL, CULOSS_PARAM_ALPHA, v, {"must be"});
  for (double v : {-1.0, -0.5, -1e-9, 0.0, 0.25, 1.0})  // < 0 disables alpha (docs/reference.md)
    expect_float_accepted(CULOSS_FOCAL, CULOSS_PARAM_ALPHA, v);
}

TEST(ApiElementwiseSetters, ComboAlphaIsInZeroOne) {
  for (double v : {-0.1, -1.0, 1.5, kNaN, kInf})
    expect_float_refused(CULOSS_COMBO, CULOSS_PARAM_ALPHA, v, {"[0, 1]"});
  for (double v : {0.0, 0.5, 1.0}) expect_float_accepted(CULOSS_COMBO, CULOSS_PARAM_ALPHA, v);
}

TEST(ApiElementwiseSetters, GammaIsFiniteAndNonNegative) {
  for (double v : {-0.5, -1e-12, kNaN, kInf, -kInf})
    expect_float_refused(CULOSS_FOCAL, CULOSS_PARAM_GAMMA, v, {"must be"});
  for (double v : {0.0, 0.5, 2.0, 5.0}) expect_float_accepted(CULOSS_FOCAL, CULOSS_PARAM_GAMMA, v);
}

TEST(ApiElementwiseSetters, WeightListsMustBeFiniteAndNonNegative) {
  const double neg[] = {1.0, -0.5}, nan[] = {kNaN}, inf[] = {1.0, 1.0, kInf};
  for (culoss_kind k : {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_COMBO}) {
    Loss loss(k);
    EXPECT_REFUSED(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, neg, 2),
                   CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS[1]", ">= 0");
    EXPECT_REFUSED(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, nan, 1),
                   CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS[0]", "finite");
  }
  Loss bce(CULOSS_BCE);
  EXPECT_REFUSED(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, inf, 3),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_POS_WEIGHT[2]", "finite");
  EXPECT_REFUSED(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, neg, 2),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_POS_WEIGHT[1]", ">= 0");
  EXPECT_REFUSED(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, neg, 0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_POS_WEIGHT");
  EXPECT_REFUSED(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, nullptr, 2),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_POS_WEIGHT", "NULL");
}

TEST(ApiElementwiseSetters, ClassBalanceRange) {
  expect_int_refused(CULOSS_BCE, CULOSS_PARAM_CLASS_BALANCE, 2, {"2"});
  expect_int_refused(CULOSS_BCE, CULOSS_PARAM_CLASS_BALANCE, -1, {"-1"});
  Loss bce(CULOSS_BCE);
  EXPECT_OK(culoss_loss_set_int(bce, CULOSS_PARAM_CLASS_BALANCE, CULOSS_BALANCE_BATCH_FREQUENCY));
  EXPECT_EQ(CULOSS_BALANCE_BATCH_FREQUENCY, get_int(bce, CULOSS_PARAM_CLASS_BALANCE));
}

// ---------------------------------------------------------------------------------------------
// parameters that do not apply to a kind
// ---------------------------------------------------------------------------------------------

struct NotApplicable {
  culoss_kind kind;
  culoss_param param;
  Type type;
};

const NotApplicable kNotApplicable[] = {
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
    {CULOSS_FOCAL, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
    {CULOSS_COMBO, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
    {CULOSS_MARGINAL_CE, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
    {CULOSS_FOCAL, CULOSS_PARAM_LABEL_SMOOTHING, Type::Float},
    {CULOSS_COMBO, CULOSS_PARAM_LABEL_SMOOTHING, Type::Float},
    {CULOSS_MARGINAL_CE, CULOSS_PARAM_LABEL_SMOOTHING, Type::Float},
    {CULOSS_BCE, CULOSS_PARAM_CE_RATIO, Type::Float},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_CE_RATIO, Type::Float},
    {CULOSS_FOCAL, CULOSS_PARAM_CE_RATIO, Type::Float},
    {CULOSS_MARGINAL_CE, CULOSS_PARAM_CLASS_WEIGHTS, Type::Floats},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_BCE, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_FOCAL, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_CLASS_BALANCE, Type::Int},
    {CULOSS_FOCAL, CULOSS_PARAM_CLASS_BALANCE, Type::Int},
    {CULOSS_COMBO, CULOSS_PARAM_CLASS_BALANCE, Type::Int},
    {CULOSS_BCE, CULOSS_PARAM_ALPHA, Type::Float},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_ALPHA, Type::Float},
    {CULOSS_MARGINAL_CE, CULOSS_PARAM_ALPHA, Type::Float},
    {CULOSS_BCE, CULOSS_PARAM_GAMMA, Type::Float},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_GAMMA, Type::Float},
    {CULOSS_COMBO, CULOSS_PARAM_GAMMA, Type::Float},
    {CULOSS_COMBO, CULOSS_PARAM_BETA, Type::Float},
    {CULOSS_FOCAL, CULOSS_PARAM_BETA, Type::Float},
    {CULOSS_BCE, CULOSS_PARAM_SMOOTH_NR, Type::Float},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_SMOOTH_DR, Type::Float},
    {CULOSS_FOCAL, CULOSS_PARAM_SMOOTH_NR, Type::Float},
    {CULOSS_MARGINAL_CE, CULOSS_PARAM_SMOOTH_DR, Type::Float},
    {CULOSS_BCE, CULOSS_PARAM_BATCH, Type::Int},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_INCLUDE_BACKGROUND, Type::Int},
    {CULOSS_MARGINAL_CE, CULOSS_PARAM_INCLUDE_BACKGROUND, Type::Int},
    {CULOSS_FOCAL, CULOSS_PARAM_SKIP_EMPTY, Type::Int},
    {CULOSS_BCE, CULOSS_PARAM_AVERAGE, Type::Int},
    {CULOSS_COMBO, CULOSS_PARAM_WEIGHT_TYPE, Type::Int},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_WEIGHT_TYPE, Type::Int},
    {CULOSS_BCE, CULOSS_PARAM_PER_IMAGE, Type::Int},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_CLASSES, Type::Int},
    {CULOSS_SUM, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
    {CULOSS_SUM, CULOSS_PARAM_LABEL_SMOOTHING, Type::Float},
    {CULOSS_SUM, CULOSS_PARAM_IGNORE_INDEX, Type::Int},
    {CULOSS_SUM, CULOSS_PARAM_CE_RATIO, Type::Float},
};

TEST(ApiElementwiseSetters, ParameterThatDoesNotApplyIsRefused) {
  for (const NotApplicable& c : kNotApplicable) {
    SCOPED_TRACE(std::string(param_name(c.param)) + " on " + kind_name(c.kind));
    Loss loss(c.kind);
    const char* pn = param_name(c.param);
    const char* kn = kind_name(c.kind);
    const double one[] = {1.0};
    int64_t iv = 777;
    double fv = 777.0;
    switch (c.type) {
      case Type::Int:
        EXPECT_REFUSED(culoss_loss_set_int(loss, c.param, 0), CULOSS_ERROR_INVALID_ARGUMENT, pn, kn);
        EXPECT_REFUSED(culoss_loss_get_int(loss, c.param, &iv), CULOSS_ERROR_INVALID_ARGUMENT, pn, kn);
        EXPECT_EQ(777, iv) << "a refused getter leaves *value alone";
        break;
      case Type::Float:
        EXPECT_REFUSED(culoss_loss_set_float(loss, c.param, 0.5), CULOSS_ERROR_INVALID_ARGUMENT, pn, kn);
        EXPECT_REFUSED(culoss_loss_get_float(loss, c.param, &fv), CULOSS_ERROR_INVALID_ARGUMENT, pn, kn);
        EXPECT_EQ(777.0, fv) << "a refused getter leaves *value alone";
        break;
      case Type::Floats:
        EXPECT_REFUSED(culoss_loss_set_floats(loss, c.param, one, 1), CULOSS_ERROR_INVALID_ARGUMENT, pn, kn);
        break;
    }
  }
}

// The parameters docs/reference.md gives these kinds are accepted.
TEST(ApiElementwiseSetters, ParametersThatApplyAreAccepted) {
  const double w[] = {1.0, 0.5, 2.0};
  Loss bce(CULOSS_BCE), ce(CULOSS_CROSS_ENTROPY), focal(CULOSS_FOCAL), combo(CULOSS_COMBO),
      marg(CULOSS_MARGINAL_CE);
  EXPECT_OK(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, w, 3));
  EXPECT_OK(culoss_loss_set_floats(bce, CULOSS_PARAM_CLASS_WEIGHTS, w, 3));
  EXPECT_OK(culoss_loss_set_float(bce, CULOSS_PARAM_LABEL_SMOOTHING, 0.1));
  EXPECT_OK(culoss_loss_set_floats(ce, CULOSS_PARAM_CLASS_WEIGHTS, w, 3));
  EXPECT_OK(culoss_loss_set_float(ce, CULOSS_PARAM_LABEL_SMOOTHING, 0.1));
  EXPECT_OK(culoss_loss_set_floats(focal, CULOSS_PARAM_CLASS_WEIGHTS, w, 3));
  EXPECT_OK(culoss_loss_set_float(focal, CULOSS_PARAM_GAMMA, 0.5));
  EXPECT_OK(culoss_loss_set_float(focal, CULOSS_PARAM_ALPHA, 0.75));
  EXPECT_OK(culoss_loss_set_floats(combo, CULOSS_PARAM_CLASS_WEIGHTS, w, 3));
  EXPECT_OK(culoss_loss_set_float(combo, CULOSS_PARAM_CE_RATIO, 0.7));
  EXPECT_OK(culoss_loss_set_float(combo, CULOSS_PARAM_SMOOTH_NR, 0.0));
  EXPECT_OK(culoss_loss_set_int(combo, CULOSS_PARAM_INCLUDE_BACKGROUND, 0));
  EXPECT_OK(culoss_loss_set_int(combo, CULOSS_PARAM_BATCH, 1));
  for (culoss_kind k : kElementwise) {
    SCOPED_TRACE(kind_name(k));
    Loss l(k);
    EXPECT_OK(culoss_loss_set_int(l, CULOSS_PARAM_IGNORE_INDEX, 255));
    EXPECT_OK(culoss_loss_set_int(l, CULOSS_PARAM_CLASS_AXIS, -1));
    EXPECT_OK(culoss_loss_set_int(l, CULOSS_PARAM_CHECK_TARGETS, 0));
  }
  EXPECT_OK(culoss_loss_set_int(marg, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_STREQ("", culoss_last_error());
}

// ---------------------------------------------------------------------------------------------
// compute-time refusals: a (N, C, P) = (2, 3, 4) problem on the CPU
// ---------------------------------------------------------------------------------------------

class ApiElementwise : public ::testing::Test {
 protected:
  static constexpr int64_t N = 2, C = 3, P = 4;

  ApiElementwise()
      : input({N, C, P}, f32()),
        labels({N, P}, i64()),
        dense({N, C, P}, f32()),
        scalar({}, f64()),
        grad({N, C, P}, f32()) {
    fill_logits(input);
    const int lab[N * P] = {0, 1, 2, 1, 2, 2, 0, 1};
    for (int64_t i = 0; i < N * P; ++i) labels.set(i, lab[i]);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t q = 0; q < P; ++q) dense.set((n * C + c) * P + q, lab[n * P + q] == c ? 1.0 : 0.0);
    scalar.fill(kSentinel);
    grad.fill(kSentinel);
    untouched.watch(input, "input");
    untouched.watch(labels, "labels");
    untouched.watch(dense, "dense target");
    untouched.watch(scalar, "loss_out");
    untouched.watch(grad, "grad_input");
  }

  culoss_status compute(culoss_loss loss, const DLTensor* tg, DLTensor* out, DLTensor* gr = nullptr,
                        const DLTensor* in = nullptr) {
    return culoss_compute(loss, in ? in : input.dl(), tg, nullptr, out, gr ? gr : grad.dl(), 1.0,
                          nullptr, 0, nullptr);
  }
  // A call expected to succeed: its gradient goes to a buffer nobody watches.
  culoss_status compute_ok(culoss_loss loss, const DLTensor* tg, DLTensor* out,
                           const DLTensor* in = nullptr) {
    TestTensor g({N, C, P}, f32());
    return culoss_compute(loss, in ? in : input.dl(), tg, nullptr, out, g.dl(), 1.0, nullptr, 0,
                          nullptr);
  }
  // culoss_workspace_size refuses the same calls (it validates and plans too) and leaves *bytes.
  void expect_workspace_refused(culoss_loss loss, const DLTensor* tg, culoss_status want,
                                std::vector<std::string> words, const DLTensor* in = nullptr) {
    size_t bytes = 4242;
    const culoss_status s = culoss_workspace_size(loss, in ? in : input.dl(), tg, &bytes);
    const std::string msg = last_error();
    EXPECT_EQ(static_cast<int>(want), static_cast<int>(s)) << msg;
    for (const std::string& w : words) EXPECT_THAT(msg, ::testing::HasSubstr(w));
    EXPECT_EQ(4242u, bytes);
  }

  TestTensor input, labels, dense, scalar, grad;
  Untouched untouched;
};

TEST_F(ApiElementwise, DefaultCallsSucceed) {
  Loss ce(CULOSS_CROSS_ENTROPY), marg(CULOSS_MARGINAL_CE), bce(CULOSS_BCE), focal(CULOSS_FOCAL),
      combo(CULOSS_COMBO);
  TestTensor out({}, f64()), g({N, C, P}, f32());
  for (culoss_loss h : {ce.h, marg.h}) {
    EXPECT_OK(culoss_compute(h, input.dl(), labels.dl(), nullptr, out.dl(), g.dl(), 1.0, nullptr, 0, nullptr));
    EXPECT_TRUE(std::isfinite(out.get(0)));
  }
  for (culoss_loss h : {ce.h, marg.h, bce.h, focal.h, combo.h}) {
    EXPECT_OK(culoss_compute(h, input.dl(), dense.dl(), nullptr, out.dl(), g.dl(), 1.0, nullptr, 0, nullptr));
    EXPECT_TRUE(std::isfinite(out.get(0)));
  }
}

TEST_F(ApiElementwise, PosWeightCountMustBeC) {
  Loss bce(CULOSS_BCE);
  const double w2[] = {1.0, 2.0}, w4[] = {1.0, 2.0, 3.0, 4.0}, w3[] = {1.0, 2.0, 3.0};
  ASSERT_OK(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, w2, 2));
  EXPECT_REFUSED(compute(bce, dense.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_POS_WEIGHT", "2 values", "C = 3");
  expect_workspace_refused(bce, dense.dl(), CULOSS_ERROR_SHAPE_MISMATCH, {"CULOSS_PARAM_POS_WEIGHT"});
  ASSERT_OK(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, w4, 4));
  EXPECT_REFUSED(compute(bce, dense.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_POS_WEIGHT", "4 values", "C = 3");
  // Inside a SUM too.
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE);
  ASSERT_OK(culoss_loss_add_term(sum, dice, 1.0));
  ASSERT_OK(culoss_loss_add_term(sum, bce, 1.0));
  EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_POS_WEIGHT", "4 values", "C = 3");
  untouched.check();
  ASSERT_OK(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, w3, 3));
  TestTensor out({}, f64());
  EXPECT_OK(compute_ok(bce, dense.dl(), out.dl()));
}

TEST_F(ApiElementwise, ClassWeightCountMustBeC) {
  const double w2[] = {1.0, 2.0}, w5[] = {1, 1, 1, 1, 1}, w3[] = {1.0, 0.0, 2.0};
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    ASSERT_OK(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, w2, 2));
    EXPECT_REFUSED(compute(loss, dense.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "CULOSS_PARAM_CLASS_WEIGHTS", "2 values", "C = 3");
    ASSERT_OK(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, w5, 5));
    EXPECT_REFUSED(compute(loss, dense.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "CULOSS_PARAM_CLASS_WEIGHTS", "5 values", "C = 3");
    expect_workspace_refused(loss, dense.dl(), CULOSS_ERROR_SHAPE_MISMATCH, {"CULOSS_PARAM_CLASS_WEIGHTS"});
    untouched.check();
    ASSERT_OK(culoss_loss_set_floats(loss, CULOSS_PARAM_CLASS_WEIGHTS, w3, 3));
    TestTensor out({}, f64());
    EXPECT_OK(compute_ok(loss, dense.dl(), out.dl()));
  }
  // CROSS_ENTROPY with index targets, and inside a SUM.
  Loss ce(CULOSS_CROSS_ENTROPY), sum(CULOSS_SUM);
  ASSERT_OK(culoss_loss_set_floats(ce, CULOSS_PARAM_CLASS_WEIGHTS, w2, 2));
  EXPECT_REFUSED(compute(ce, labels.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_CLASS_WEIGHTS", "C = 3");
  ASSERT_OK(culoss_loss_add_term(sum, ce, 0.5));
  EXPECT_REFUSED(compute(sum, labels.dl(), scalar.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "CULOSS_PARAM_CLASS_WEIGHTS", "C = 3");
  untouched.check();
}

// REDUCTION_NONE: BCE and binary focal write the input's shape; cross-entropy, softmax focal and
// marginal CE the input's shape without the class axis (docs/reference.md).
TEST_F(ApiElementwise, LossOutShapesForNone) {
  struct Kind {
    culoss_kind kind;
    int activation;
    bool per_element;  // input's shape (else pixel shape)
  };
  const Kind kinds[] = {{CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, true},
                        {CULOSS_BCE, CULOSS_ACTIVATION_NONE, true},
                        {CULOSS_FOCAL, CULOSS_ACTIVATION_SIGMOID, true},
                        {CULOSS_FOCAL, CULOSS_ACTIVATION_NONE, true},
                        {CULOSS_FOCAL, CULOSS_ACTIVATION_SOFTMAX, false},
                        {CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX, false},
                        {CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_NONE, false},
                        {CULOSS_MARGINAL_CE, CULOSS_ACTIVATION_SOFTMAX, false}};
  TestTensor s0({}, f32()), s1({1}, f32()), el({N, C, P}, f32()), px({N, P}, f64()), pxT({P, N}, f32()),
      nc({N, C}, f32()), n({N}, f32());
  for (TestTensor* t : {&s0, &s1, &el, &px, &pxT, &nc, &n}) t->fill(kSentinel);
  for (const Kind& k : kinds) {
    SCOPED_TRACE(std::string(kind_name(k.kind)) + " activation " + std::to_string(k.activation));
    Loss loss(k.kind);
    ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, k.activation));
    ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
    TestTensor in({N, C, P}, f32());
    if (k.activation == CULOSS_ACTIVATION_NONE)
      for (int64_t i = 0; i < in.numel(); ++i) in.set(i, 0.1 + 0.8 * std::fabs(std::sin(0.37 * i)));
    else
      fill_logits(in);
    const std::string want = k.per_element ? "(2, 3, 4)" : "(2, 4)";
    Untouched u;
    for (TestTensor* t : {&s0, &s1, &el, &px, &pxT, &nc, &n}) u.watch(*t, "loss_out candidate");
    EXPECT_REFUSED(compute(loss, dense.dl(), s0.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "loss_out", "()", want.c_str());
    EXPECT_REFUSED(compute(loss, dense.dl(), s1.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "loss_out", "(1,)", want.c_str());
    EXPECT_REFUSED(compute(loss, dense.dl(), pxT.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "loss_out", "(4, 2)", want.c_str());
    EXPECT_REFUSED(compute(loss, dense.dl(), nc.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "loss_out", "(2, 3)", want.c_str());
    EXPECT_REFUSED(compute(loss, dense.dl(), n.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "loss_out", "(2,)", want.c_str());
    if (k.per_element)
      EXPECT_REFUSED(compute(loss, dense.dl(), px.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                     "loss_out", "(2, 4)", want.c_str());
    else
      EXPECT_REFUSED(compute(loss, dense.dl(), el.dl(), nullptr, in.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                     "loss_out", "(2, 3, 4)", want.c_str());
    u.check();
    untouched.check();
    // The right shape works (float32 and float64 both).
    TestTensor ok(k.per_element ? std::vector<int64_t>{N, C, P} : std::vector<int64_t>{N, P}, f64());
    ok.poison();
    EXPECT_OK(compute_ok(loss, dense.dl(), ok.dl(), in.dl()));
    for (int64_t i = 0; i < ok.numel(); ++i) EXPECT_TRUE(std::isfinite(ok.get(i))) << i;
    TestTensor ok32(ok.shape, f32());
    EXPECT_OK(compute_ok(loss, dense.dl(), ok32.dl(), in.dl()));
  }
  // MEAN and SUM write one element: a NONE-shaped loss_out is refused.
  for (culoss_kind k : kElementwise) {
    for (int red : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM}) {
      if (k == CULOSS_COMBO && red == CULOSS_REDUCTION_SUM) continue;
      SCOPED_TRACE(std::string(kind_name(k)) + " reduction " + std::to_string(red));
      Loss loss(k);
      ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, red));
      Untouched u;
      u.watch(el, "(N, C, P)");
      u.watch(px, "(N, P)");
      EXPECT_REFUSED(compute(loss, dense.dl(), el.dl()), CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "one element");
      EXPECT_REFUSED(compute(loss, dense.dl(), px.dl()), CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "one element");
      u.check();
      EXPECT_OK(compute_ok(loss, dense.dl(), s1.dl()));
    }
  }
  untouched.check();
}

// Classification (N, C): cross-entropy NONE writes (N), BCE NONE writes (N, C).
TEST_F(ApiElementwise, LossOutShapesForNoneOnClassification) {
  TestTensor in({6, 4}, f32()), lab({6}, i32()), tgt({6, 4}, u8()), outN({6}, f32()), outNC({6, 4}, f32()),
      bad({}, f32());
  fill_logits(in);
  for (int64_t i = 0; i < 6; ++i) {
    lab.set(i, i % 4);
    for (int64_t c = 0; c < 4; ++c) tgt.set(i * 4 + c, c == i % 4 ? 1 : 0);
  }
  bad.fill(kSentinel);
  Untouched u;
  u.watch(bad, "scalar loss_out");
  Loss ce(CULOSS_CROSS_ENTROPY), bce(CULOSS_BCE);
  ASSERT_OK(culoss_loss_set_int(ce, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  ASSERT_OK(culoss_loss_set_int(bce, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_REFUSED(culoss_compute(ce, in.dl(), lab.dl(), nullptr, bad.dl(), nullptr, 1.0, nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(6,)");
  EXPECT_REFUSED(culoss_compute(ce, in.dl(), lab.dl(), nullptr, outNC.dl(), nullptr, 1.0, nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(6, 4)", "(6,)");
  EXPECT_REFUSED(culoss_compute(bce, in.dl(), tgt.dl(), nullptr, bad.dl(), nullptr, 1.0, nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(6, 4)");
  EXPECT_REFUSED(culoss_compute(bce, in.dl(), tgt.dl(), nullptr, outN.dl(), nullptr, 1.0, nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(6,)", "(6, 4)");
  u.check();
  EXPECT_OK(culoss_compute(ce, in.dl(), lab.dl(), nullptr, outN.dl(), nullptr, 1.0, nullptr, 0, nullptr));
  EXPECT_OK(culoss_compute(bce, in.dl(), tgt.dl(), nullptr, outNC.dl(), nullptr, 1.0, nullptr, 0, nullptr));
}

// Binary losses read class indices as a C = 1 mask; with C > 1 the call is refused.
TEST_F(ApiElementwise, IndexTargetsWithABinaryLossNeedOneClass) {
  struct Kind {
    culoss_kind kind;
    int activation;
  };
  const Kind kinds[] = {{CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID}, {CULOSS_BCE, CULOSS_ACTIVATION_NONE},
                        {CULOSS_FOCAL, CULOSS_ACTIVATION_SIGMOID}, {CULOSS_FOCAL, CULOSS_ACTIVATION_NONE},
                        {CULOSS_COMBO, CULOSS_ACTIVATION_SIGMOID}, {CULOSS_COMBO, CULOSS_ACTIVATION_NONE}};
  TestTensor in01({N, C, P}, f32());
  for (int64_t i = 0; i < in01.numel(); ++i) in01.set(i, 0.5);
  for (const Kind& k : kinds) {
    SCOPED_TRACE(std::string(kind_name(k.kind)) + " activation " + std::to_string(k.activation));
    Loss loss(k.kind);
    ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, k.activation));
    EXPECT_REFUSED(compute(loss, labels.dl(), scalar.dl(), nullptr, in01.dl()), CULOSS_ERROR_INVALID_ARGUMENT,
                   "C = 1", "C = 3", "dense");
    expect_workspace_refused(loss, labels.dl(), CULOSS_ERROR_INVALID_ARGUMENT, {"C = 1", "C = 3"}, in01.dl());
    // With C = 1 the labels are the mask.
    TestTensor in1({N, 1, P}, f32()), mask({N, P}, u8()), g1({N, 1, P}, f32()), out({}, f64());
    for (int64_t i = 0; i < in1.numel(); ++i) in1.set(i, 0.3 + 0.05 * i);
    for (int64_t i = 0; i < mask.numel(); ++i) mask.set(i, i % 3 == 0 ? 1 : 0);
    EXPECT_OK(culoss_compute(loss, in1.dl(), mask.dl(), nullptr, out.dl(), g1.dl(), 1.0, nullptr, 0, nullptr));
  }
  untouched.check();
  // Softmax focal reads class indices as classes.
  Loss focal(CULOSS_FOCAL);
  ASSERT_OK(culoss_loss_set_int(focal, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
  TestTensor out({}, f64());
  EXPECT_OK(compute_ok(focal, labels.dl(), out.dl()));
}

// ---------------------------------------------------------------------------------------------
// CULOSS_SUM
// ---------------------------------------------------------------------------------------------

TEST_F(ApiElementwise, EmptySumIsRefused) {
  Loss sum(CULOSS_SUM);
  EXPECT_REFUSED(compute(sum, labels.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_SUM",
                 "no terms");
  expect_workspace_refused(sum, labels.dl(), CULOSS_ERROR_INVALID_ARGUMENT, {"CULOSS_SUM", "no terms"});
  Loss empty(CULOSS_SUM);
  ASSERT_OK(culoss_loss_add_term(sum, empty, 1.0));  // flattening an empty SUM adds nothing
  EXPECT_REFUSED(compute(sum, labels.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT, "no terms");
  untouched.check();
}

TEST_F(ApiElementwise, SumRefusesATermWithReductionNone) {
  for (culoss_kind k : {CULOSS_BCE, CULOSS_CROSS_ENTROPY, CULOSS_FOCAL, CULOSS_MARGINAL_CE}) {
    SCOPED_TRACE(kind_name(k));
    Loss sum(CULOSS_SUM), term(k);
    ASSERT_OK(culoss_loss_set_int(term, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
    EXPECT_REFUSED(culoss_loss_add_term(sum, term, 1.0), CULOSS_ERROR_INVALID_ARGUMENT, "REDUCTION", "NONE",
                   kind_name(k));
    // Nothing was added: the SUM is still empty.
    EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT, "no terms");
    // MEAN and SUM terms are fine.
    ASSERT_OK(culoss_loss_set_int(term, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM));
    EXPECT_OK(culoss_loss_add_term(sum, term, 1.0));
  }
  untouched.check();
}

TEST_F(ApiElementwise, SumHoldsAtMostEightTermsComboCountsTwo) {
  Loss ce(CULOSS_CROSS_ENTROPY), combo(CULOSS_COMBO), dice(CULOSS_DICE);
  TestTensor out({}, f64());
  {  // 8 plain terms: fine; a 9th: refused
    Loss sum(CULOSS_SUM);
    for (int i = 0; i < 8; ++i) ASSERT_OK(culoss_loss_add_term(sum, i % 2 ? ce.h : dice.h, 0.125));
    EXPECT_OK(compute_ok(sum, dense.dl(), out.dl()));
    const culoss_status s = culoss_loss_add_term(sum, ce, 1.0);
    if (s == CULOSS_SUCCESS) {  // refused when the program is built (compute / workspace_size)
      EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_NOT_SUPPORTED, "8", "COMBO");
      expect_workspace_refused(sum, dense.dl(), CULOSS_ERROR_NOT_SUPPORTED, {"8"});
    } else {
      EXPECT_THAT(last_error(), ::testing::HasSubstr("8"));
    }
  }
  {  // 4 COMBOs = 8 terms: fine; 4 COMBOs + 1: refused
    Loss sum(CULOSS_SUM);
    for (int i = 0; i < 4; ++i) ASSERT_OK(culoss_loss_add_term(sum, combo, 0.25));
    EXPECT_OK(compute_ok(sum, dense.dl(), out.dl()));
    const culoss_status s = culoss_loss_add_term(sum, ce, 1.0);
    if (s == CULOSS_SUCCESS) {
      EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_NOT_SUPPORTED, "8", "COMBO");
    } else {
      EXPECT_THAT(last_error(), ::testing::HasSubstr("8"));
    }
  }
  {  // 7 plain terms + COMBO = 9: refused
    Loss sum(CULOSS_SUM);
    for (int i = 0; i < 7; ++i) ASSERT_OK(culoss_loss_add_term(sum, ce, 0.1));
    const culoss_status s = culoss_loss_add_term(sum, combo, 1.0);
    if (s == CULOSS_SUCCESS) {
      EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_NOT_SUPPORTED, "8", "COMBO");
    } else {
      EXPECT_THAT(last_error(), ::testing::HasSubstr("8"));
    }
  }
  {  // a SUM of SUMs is flattened before counting
    Loss inner(CULOSS_SUM), outer(CULOSS_SUM);
    for (int i = 0; i < 5; ++i) ASSERT_OK(culoss_loss_add_term(inner, ce, 0.1));
    ASSERT_OK(culoss_loss_add_term(outer, inner, 1.0));
    const culoss_status s = culoss_loss_add_term(outer, inner, 1.0);
    if (s == CULOSS_SUCCESS) {
      EXPECT_REFUSED(compute(outer, dense.dl(), scalar.dl()), CULOSS_ERROR_NOT_SUPPORTED, "8");
    } else {
      EXPECT_THAT(last_error(), ::testing::HasSubstr("8"));
    }
  }
  untouched.check();
}

TEST_F(ApiElementwise, SumTermsMustShareClassAxisAndIgnoreIndex) {
  {
    Loss sum(CULOSS_SUM), ce(CULOSS_CROSS_ENTROPY), dice(CULOSS_DICE);
    ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, 2));
    ASSERT_OK(culoss_loss_add_term(sum, ce, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum, dice, 1.0));
    EXPECT_REFUSED(compute(sum, labels.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT,
                   "CULOSS_PARAM_CLASS_AXIS", "1", "2");
    EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT,
                   "CULOSS_PARAM_CLASS_AXIS");
    expect_workspace_refused(sum, labels.dl(), CULOSS_ERROR_INVALID_ARGUMENT, {"CULOSS_PARAM_CLASS_AXIS"});
  }
  {
    Loss sum(CULOSS_SUM), ce(CULOSS_CROSS_ENTROPY), marg(CULOSS_MARGINAL_CE);
    ASSERT_OK(culoss_loss_set_int(marg, CULOSS_PARAM_IGNORE_INDEX, 255));
    ASSERT_OK(culoss_loss_add_term(sum, ce, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum, marg, 1.0));
    EXPECT_REFUSED(compute(sum, labels.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT,
                   "CULOSS_PARAM_IGNORE_INDEX", "-100", "255");
    // dense targets too: the shared parameters are a property of the SUM, not of the target
    EXPECT_REFUSED(compute(sum, dense.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT,
                   "CULOSS_PARAM_IGNORE_INDEX");
  }
  untouched.check();
  {  // shared values are fine
    Loss sum(CULOSS_SUM), ce(CULOSS_CROSS_ENTROPY), marg(CULOSS_MARGINAL_CE);
    for (culoss_loss h : {ce.h, marg.h}) ASSERT_OK(culoss_loss_set_int(h, CULOSS_PARAM_IGNORE_INDEX, 255));
    ASSERT_OK(culoss_loss_add_term(sum, ce, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum, marg, 1.0));
    TestTensor out({}, f64());
    EXPECT_OK(compute_ok(sum, labels.dl(), out.dl()));
  }
}

// Binary terms read class indices as a mask, softmax-style ones as classes: with C >= 2 a SUM of
// both needs a dense target. With C = 1 the softmax term is refused (a softmax over one class is
// constant); on probabilities (ACTIVATION_NONE) every term reads the labels as the same binary
// mask, so the SUM is accepted and equals the one on the dense 0/1 target.
TEST_F(ApiElementwise, SumMixingBinaryAndSoftmaxTermsNeedsADenseTarget) {
  struct Pair {
    culoss_kind a;
    int act_a;
    culoss_kind b;
    int act_b;
  };
  const Pair pairs[] = {
      {CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX},
      {CULOSS_DICE, CULOSS_ACTIVATION_SOFTMAX, CULOSS_BCE, CULOSS_ACTIVATION_SIGMOID},
      {CULOSS_COMBO, CULOSS_ACTIVATION_SIGMOID, CULOSS_CROSS_ENTROPY, CULOSS_ACTIVATION_SOFTMAX},
      {CULOSS_FOCAL, CULOSS_ACTIVATION_SIGMOID, CULOSS_MARGINAL_CE, CULOSS_ACTIVATION_SOFTMAX},
      {CULOSS_TVERSKY, CULOSS_ACTIVATION_SIGMOID, CULOSS_FOCAL, CULOSS_ACTIVATION_SOFTMAX},
  };
  for (const Pair& pr : pairs) {
    SCOPED_TRACE(std::string(kind_name(pr.a)) + " + " + kind_name(pr.b));
    Loss sum(CULOSS_SUM), a(pr.a), b(pr.b);
    ASSERT_OK(culoss_loss_set_int(a, CULOSS_PARAM_ACTIVATION, pr.act_a));
    ASSERT_OK(culoss_loss_set_int(b, CULOSS_PARAM_ACTIVATION, pr.act_b));
    ASSERT_OK(culoss_loss_add_term(sum, a, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum, b, 1.0));
    EXPECT_REFUSED(compute(sum, labels.dl(), scalar.dl()), CULOSS_ERROR_INVALID_ARGUMENT, "binary",
                   "dense");
    expect_workspace_refused(sum, labels.dl(), CULOSS_ERROR_INVALID_ARGUMENT, {"dense"});
    untouched.check();
    TestTensor out({}, f64());
    EXPECT_OK(compute_ok(sum, dense.dl(), out.dl()));
    EXPECT_TRUE(std::isfinite(out.get(0)));

    // C = 1: the softmax term is refused, by name.
    const culoss_kind softmax_kind = pr.act_a == CULOSS_ACTIVATION_SOFTMAX ? pr.a : pr.b;
    TestTensor in1({N, 1, P}, f32()), lab1({N, P}, u8()), dense1({N, 1, P}, f32()),
        g1({N, 1, P}, f32());
    for (int64_t i = 0; i < N * P; ++i) {
      in1.set(i, 0.15 + 0.1 * static_cast<double>(i));  // probabilities in (0, 1)
      lab1.set(i, i % 3 == 0 ? 1 : 0);
      dense1.set(i, i % 3 == 0 ? 1.0 : 0.0);
    }
    g1.fill(kSentinel);
    Untouched u;
    u.watch(g1, "grad (C = 1)");
    EXPECT_REFUSED(culoss_compute(sum, in1.dl(), lab1.dl(), nullptr, scalar.dl(), g1.dl(), 1.0,
                                  nullptr, 0, nullptr),
                   CULOSS_ERROR_INVALID_ARGUMENT, kind_name(softmax_kind),
                   "CULOSS_ACTIVATION_SIGMOID");
    u.check();
    untouched.check();
    // On probabilities both terms read the labels as the same 0/1 mask.
    Loss sum1(CULOSS_SUM), a1(pr.a), b1(pr.b);
    ASSERT_OK(culoss_loss_set_int(
        a1, CULOSS_PARAM_ACTIVATION,
        pr.act_a == CULOSS_ACTIVATION_SOFTMAX ? CULOSS_ACTIVATION_NONE : pr.act_a));
    ASSERT_OK(culoss_loss_set_int(
        b1, CULOSS_PARAM_ACTIVATION,
        pr.act_b == CULOSS_ACTIVATION_SOFTMAX ? CULOSS_ACTIVATION_NONE : pr.act_b));
    ASSERT_OK(culoss_loss_add_term(sum1, a1, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum1, b1, 1.0));
    TestTensor out_lab({}, f64()), out_dense({}, f64()), g_lab({N, 1, P}, f32()),
        g_dense({N, 1, P}, f32());
    ASSERT_OK(culoss_compute(sum1, in1.dl(), lab1.dl(), nullptr, out_lab.dl(), g_lab.dl(), 1.0,
                             nullptr, 0, nullptr));
    ASSERT_OK(culoss_compute(sum1, in1.dl(), dense1.dl(), nullptr, out_dense.dl(), g_dense.dl(),
                             1.0, nullptr, 0, nullptr));
    EXPECT_TRUE(std::isfinite(out_lab.get(0)));
    EXPECT_NEAR(out_dense.get(0), out_lab.get(0), 1e-12);
    for (int64_t i = 0; i < N * P; ++i) EXPECT_NEAR(g_dense.get(i), g_lab.get(i), 1e-7) << i;
  }
}

// ---------------------------------------------------------------------------------------------
// CHECK_TARGETS
// ---------------------------------------------------------------------------------------------

TEST_F(ApiElementwise, CheckTargetsRefusesLabelsOutsideTheClassesForSoftmaxKinds) {
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE, CULOSS_FOCAL}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    if (k == CULOSS_FOCAL) ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
    TestTensor bad = labels;
    bad.set(5, 3);  // C itself
    EXPECT_REFUSED(compute(loss, bad.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[5]", "3",
                   "[0, 3)");
    bad.set(5, 17);
    EXPECT_REFUSED(compute(loss, bad.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[5]", "17");
    bad.set(5, labels.get(5));
    bad.set(2, -1);
    EXPECT_REFUSED(compute(loss, bad.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[2]", "-1");
    TestTensor bad8({N, P}, u8());
    for (int64_t i = 0; i < N * P; ++i) bad8.set(i, labels.get(i));
    bad8.set(7, 255);  // not the ignore index (-100 by default)
    EXPECT_REFUSED(compute(loss, bad8.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[7]", "255");
    untouched.check();
    // IGNORE_INDEX itself is valid.
    TestTensor ign = labels;
    ign.set(5, -100);
    TestTensor out({}, f64());
    EXPECT_OK(compute_ok(loss, ign.dl(), out.dl()));
  }
  // Inside a SUM (the SUM's CHECK_TARGETS decides).
  Loss sum(CULOSS_SUM), ce(CULOSS_CROSS_ENTROPY), dice(CULOSS_DICE);
  ASSERT_OK(culoss_loss_set_int(ce, CULOSS_PARAM_CHECK_TARGETS, 0));
  ASSERT_OK(culoss_loss_add_term(sum, ce, 1.0));
  ASSERT_OK(culoss_loss_add_term(sum, dice, 1.0));
  TestTensor bad = labels;
  bad.set(4, 3);
  EXPECT_REFUSED(compute(sum, bad.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[4]", "3");
  untouched.check();
}

TEST_F(ApiElementwise, CheckTargetsRefusesABadBinaryMaskLabel) {
  TestTensor in1({N, 1, P}, f32()), g1({N, 1, P}, f32());
  fill_logits(in1);
  g1.fill(kSentinel);
  Untouched u;
  u.watch(g1, "grad_input (C = 1)");
  for (culoss_kind k : {CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    for (DLDataType dt : {u8(), i32(), i64()}) {
      TestTensor mask({N, P}, dt);
      for (int64_t i = 0; i < mask.numel(); ++i) mask.set(i, i % 2);
      mask.set(3, 2);
      EXPECT_REFUSED(culoss_compute(loss, in1.dl(), mask.dl(), nullptr, scalar.dl(), g1.dl(), 1.0, nullptr, 0, nullptr),
                     CULOSS_ERROR_INVALID_TARGET, "target[3]", "2", "binary mask");
      if (dt.code == kDLInt) {
        mask.set(3, -1);
        EXPECT_REFUSED(culoss_compute(loss, in1.dl(), mask.dl(), nullptr, scalar.dl(), g1.dl(), 1.0, nullptr, 0, nullptr),
                       CULOSS_ERROR_INVALID_TARGET, "target[3]", "-1");
      }
      // 0, 1 and IGNORE_INDEX are valid.
      mask.set(3, dt.code == kDLUInt ? 1 : -100);
      TestTensor out({}, f64()), g({N, 1, P}, f32());
      EXPECT_OK(culoss_compute(loss, in1.dl(), mask.dl(), nullptr, out.dl(), g.dl(), 1.0, nullptr, 0, nullptr));
    }
  }
  u.check();
  untouched.check();
}

TEST_F(ApiElementwise, CheckTargetsRefusesBadDenseValues) {
  for (culoss_kind k : kElementwise) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    for (double v : {1.5, -0.25, kNaN, kInf}) {
      TestTensor bad = dense;
      bad.set(9, v);
      EXPECT_REFUSED(compute(loss, bad.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[9]");
    }
    TestTensor bad8({N, C, P}, u8());
    for (int64_t i = 0; i < bad8.numel(); ++i) bad8.set(i, dense.get(i));
    bad8.set(11, 2);
    EXPECT_REFUSED(compute(loss, bad8.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[11]", "2");
  }
  untouched.check();
}

// The SUM's own CHECK_TARGETS decides; the terms' are not consulted (SEMANTICS.md "SUM").
TEST_F(ApiElementwise, TheSumsCheckTargetsDecides) {
  TestTensor bad = labels;
  bad.set(6, 9);
  {
    Loss sum(CULOSS_SUM), ce(CULOSS_CROSS_ENTROPY), marg(CULOSS_MARGINAL_CE);
    for (culoss_loss h : {ce.h, marg.h}) ASSERT_OK(culoss_loss_set_int(h, CULOSS_PARAM_CHECK_TARGETS, 0));
    ASSERT_OK(culoss_loss_add_term(sum, ce, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum, marg, 1.0));
    EXPECT_REFUSED(compute(sum, bad.dl(), scalar.dl()), CULOSS_ERROR_INVALID_TARGET, "target[6]", "9");
    untouched.check();
  }
  {
    Loss sum(CULOSS_SUM), ce(CULOSS_CROSS_ENTROPY), marg(CULOSS_MARGINAL_CE);
    ASSERT_OK(culoss_loss_set_int(sum, CULOSS_PARAM_CHECK_TARGETS, 0));
    ASSERT_OK(culoss_loss_add_term(sum, ce, 1.0));
    ASSERT_OK(culoss_loss_add_term(sum, marg, 1.0));
    TestTensor out({}, f64());
    EXPECT_OK(compute_ok(sum, bad.dl(), out.dl()));  // unchecked: the bad label is ignored
    // ... exactly as if it were IGNORE_INDEX
    TestTensor ign = labels;
    ign.set(6, -100);
    TestTensor out2({}, f64());
    EXPECT_OK(compute_ok(sum, ign.dl(), out2.dl()));
    EXPECT_EQ(out2.get(0), out.get(0));
  }
}

}  // namespace

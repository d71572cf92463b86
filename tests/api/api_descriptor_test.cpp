// Loss descriptors through the public API: create/destroy, defaults of every kind
// (docs/reference.md), the parameter table (which parameter applies to which kind, its type, its
// range), add_term, and the refusal of kinds this version does not compute.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "api/api_util.hpp"

namespace {

using namespace api_test;
using testing_util::f32;
using testing_util::Loss;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

const culoss_kind kAllKinds[] = {
    CULOSS_DICE,         CULOSS_JACCARD,       CULOSS_TVERSKY,        CULOSS_FOCAL_TVERSKY,
    CULOSS_GENERALIZED_DICE, CULOSS_BCE,       CULOSS_CROSS_ENTROPY,  CULOSS_FOCAL,
    CULOSS_COMBO,        CULOSS_MARGINAL_CE,   CULOSS_LOVASZ_HINGE,   CULOSS_LOVASZ_SOFTMAX,
    CULOSS_SUM,          CULOSS_MCC,           CULOSS_TOPK_CE};

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

// ---------------------------------------------------------------------------------------------
// create / destroy

TEST(ApiDescriptor, CreateEveryKind) {
  for (culoss_kind k : kAllKinds) {
    culoss_loss h = nullptr;
    EXPECT_OK(culoss_loss_create(&h, k));
    EXPECT_NE(nullptr, h) << kind_name(k);
    EXPECT_STREQ("", culoss_last_error());
    EXPECT_OK(culoss_loss_destroy(h));
  }
}

TEST(ApiDescriptor, CreateRefusesUnknownKinds) {
  for (int k : {0, 99, -1, 1000}) {
    culoss_loss h = nullptr;
    EXPECT_REFUSED(culoss_loss_create(&h, static_cast<culoss_kind>(k)),
                   CULOSS_ERROR_INVALID_ARGUMENT, "culoss_kind", std::to_string(k).c_str());
    EXPECT_EQ(nullptr, h) << "no descriptor for kind " << k;
  }
}

TEST(ApiDescriptor, CreateRefusesNullOut) {
  EXPECT_REFUSED(culoss_loss_create(nullptr, CULOSS_DICE), CULOSS_ERROR_INVALID_ARGUMENT, "out",
                 "NULL");
}

TEST(ApiDescriptor, DestroyNullIsANoOp) {
  EXPECT_OK(culoss_loss_destroy(nullptr));
  EXPECT_STREQ("", culoss_last_error());
}

// ---------------------------------------------------------------------------------------------
// defaults (docs/reference.md)

struct Default {
  culoss_param param;
  Type type;
  double value;
};

std::vector<Default> expected_defaults(culoss_kind k) {
  std::vector<Default> d;
  const bool region = k == CULOSS_DICE || k == CULOSS_JACCARD || k == CULOSS_TVERSKY ||
                      k == CULOSS_FOCAL_TVERSKY || k == CULOSS_GENERALIZED_DICE ||
                      k == CULOSS_MCC;
  if (k != CULOSS_SUM) {
    d.push_back({CULOSS_PARAM_CLASS_AXIS, Type::Int, 1});
    d.push_back({CULOSS_PARAM_REDUCTION, Type::Int, CULOSS_REDUCTION_MEAN});
    d.push_back({CULOSS_PARAM_IGNORE_INDEX, Type::Int, -100});
    // The Lovász hinge takes logits and has no activation parameter (docs/reference.md).
    if (k != CULOSS_LOVASZ_HINGE) {
      const bool sigmoid = k == CULOSS_BCE || k == CULOSS_FOCAL || k == CULOSS_COMBO;
      d.push_back({CULOSS_PARAM_ACTIVATION, Type::Int,
                   double(sigmoid ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_SOFTMAX)});
    }
  }
  d.push_back({CULOSS_PARAM_CHECK_TARGETS, Type::Int, 1});
  if (region || k == CULOSS_COMBO) {
    if (k != CULOSS_MCC) d.push_back({CULOSS_PARAM_SMOOTH_NR, Type::Float, 1e-5});
    d.push_back({CULOSS_PARAM_SMOOTH_DR, Type::Float, 1e-5});  // MCC's ε
    d.push_back({CULOSS_PARAM_BATCH, Type::Int, 0});
    d.push_back({CULOSS_PARAM_INCLUDE_BACKGROUND, Type::Int, 1});
    d.push_back({CULOSS_PARAM_SKIP_EMPTY, Type::Int, 0});
  }
  if (k == CULOSS_DICE || k == CULOSS_JACCARD)
    d.push_back({CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int, 0});
  if (region && k != CULOSS_GENERALIZED_DICE) {
    d.push_back({CULOSS_PARAM_AVERAGE, Type::Int, CULOSS_AVERAGE_MACRO});
    d.push_back({CULOSS_PARAM_SOFT_LABEL, Type::Int, 0});
  }
  switch (k) {
    case CULOSS_TVERSKY:
      d.push_back({CULOSS_PARAM_ALPHA, Type::Float, 0.5});
      d.push_back({CULOSS_PARAM_BETA, Type::Float, 0.5});
      break;
    case CULOSS_FOCAL_TVERSKY:
      d.push_back({CULOSS_PARAM_ALPHA, Type::Float, 0.3});
      d.push_back({CULOSS_PARAM_BETA, Type::Float, 0.7});
      d.push_back({CULOSS_PARAM_GAMMA, Type::Float, 0.75});
      break;
    case CULOSS_GENERALIZED_DICE:
      d.push_back({CULOSS_PARAM_WEIGHT_TYPE, Type::Int, CULOSS_WEIGHT_SQUARE});
      break;
    case CULOSS_BCE:
      d.push_back({CULOSS_PARAM_CLASS_BALANCE, Type::Int, CULOSS_BALANCE_NONE});
      d.push_back({CULOSS_PARAM_LABEL_SMOOTHING, Type::Float, 0.0});
      break;
    case CULOSS_CROSS_ENTROPY:
      d.push_back({CULOSS_PARAM_LABEL_SMOOTHING, Type::Float, 0.0});
      break;
    case CULOSS_TOPK_CE:
      d.push_back({CULOSS_PARAM_LABEL_SMOOTHING, Type::Float, 0.0});
      d.push_back({CULOSS_PARAM_TOP_FRACTION, Type::Float, 0.1});
      break;
    case CULOSS_FOCAL:
      d.push_back({CULOSS_PARAM_ALPHA, Type::Float, 0.25});
      d.push_back({CULOSS_PARAM_GAMMA, Type::Float, 2.0});
      break;
    case CULOSS_COMBO:
      d.push_back({CULOSS_PARAM_ALPHA, Type::Float, 0.5});
      d.push_back({CULOSS_PARAM_CE_RATIO, Type::Float, 0.5});
      break;
    case CULOSS_LOVASZ_HINGE:
      d.push_back({CULOSS_PARAM_PER_IMAGE, Type::Int, 0});
      break;
    case CULOSS_LOVASZ_SOFTMAX:
      d.push_back({CULOSS_PARAM_PER_IMAGE, Type::Int, 0});
      d.push_back({CULOSS_PARAM_CLASSES, Type::Int, CULOSS_CLASSES_PRESENT});
      break;
    default: break;
  }
  return d;
}

TEST(ApiDescriptor, DefaultsOfEveryKind) {
  for (culoss_kind k : kAllKinds) {
    Loss loss(k);
    ASSERT_NE(nullptr, loss.h);
    for (const Default& d : expected_defaults(k)) {
      SCOPED_TRACE(std::string(kind_name(k)) + " " + param_name(d.param));
      if (d.type == Type::Int) {
        int64_t v = -12345;
        EXPECT_OK(culoss_loss_get_int(loss, d.param, &v));
        EXPECT_EQ(static_cast<int64_t>(d.value), v);
      } else {
        double v = -12345.0;
        EXPECT_OK(culoss_loss_get_float(loss, d.param, &v));
        EXPECT_DOUBLE_EQ(d.value, v);
      }
      EXPECT_STREQ("", culoss_last_error());
    }
  }
}

TEST(ApiDescriptor, SetThenGetRoundTrips) {
  Loss dice(CULOSS_DICE);
  int64_t i = 0;
  double f = 0;
  EXPECT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, -1));
  EXPECT_OK(culoss_loss_get_int(dice, CULOSS_PARAM_CLASS_AXIS, &i));
  EXPECT_EQ(-1, i);
  EXPECT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_IGNORE_INDEX, 255));
  EXPECT_OK(culoss_loss_get_int(dice, CULOSS_PARAM_IGNORE_INDEX, &i));
  EXPECT_EQ(255, i);
  EXPECT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
  EXPECT_OK(culoss_loss_get_int(dice, CULOSS_PARAM_ACTIVATION, &i));
  EXPECT_EQ(CULOSS_ACTIVATION_NONE, i);
  EXPECT_OK(culoss_loss_set_float(dice, CULOSS_PARAM_SMOOTH_NR, 0.0));
  EXPECT_OK(culoss_loss_get_float(dice, CULOSS_PARAM_SMOOTH_NR, &f));
  EXPECT_EQ(0.0, f);
  EXPECT_OK(culoss_loss_set_float(dice, CULOSS_PARAM_SMOOTH_DR, 0.25));
  EXPECT_OK(culoss_loss_get_float(dice, CULOSS_PARAM_SMOOTH_DR, &f));
  EXPECT_EQ(0.25, f);
  const double w[] = {0.0, 1.0, 2.5};
  EXPECT_OK(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, w, 3));

  // Edge values inside the ranges are accepted.
  Loss focal(CULOSS_FOCAL);
  EXPECT_OK(culoss_loss_set_float(focal, CULOSS_PARAM_ALPHA, -1.0));  // < 0 disables alpha
  EXPECT_OK(culoss_loss_get_float(focal, CULOSS_PARAM_ALPHA, &f));
  EXPECT_EQ(-1.0, f);
  EXPECT_OK(culoss_loss_set_float(focal, CULOSS_PARAM_GAMMA, 0.0));
  Loss bce(CULOSS_BCE);
  EXPECT_OK(culoss_loss_set_float(bce, CULOSS_PARAM_LABEL_SMOOTHING, 0.999));
  EXPECT_OK(culoss_loss_set_int(bce, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
  const double pw[] = {3.0};
  EXPECT_OK(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, pw, 1));
  Loss combo(CULOSS_COMBO);
  EXPECT_OK(culoss_loss_set_float(combo, CULOSS_PARAM_CE_RATIO, 0.0));
  EXPECT_OK(culoss_loss_set_float(combo, CULOSS_PARAM_CE_RATIO, 1.0));
  Loss ce(CULOSS_CROSS_ENTROPY);
  EXPECT_OK(culoss_loss_set_int(ce, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
  Loss gd(CULOSS_GENERALIZED_DICE);
  EXPECT_OK(culoss_loss_set_int(gd, CULOSS_PARAM_WEIGHT_TYPE, CULOSS_WEIGHT_UNIFORM));
  EXPECT_OK(culoss_loss_get_int(gd, CULOSS_PARAM_WEIGHT_TYPE, &i));
  EXPECT_EQ(CULOSS_WEIGHT_UNIFORM, i);
}

// ---------------------------------------------------------------------------------------------
// parameters that do not apply to a kind

struct NotApplicable {
  culoss_kind kind;
  culoss_param param;
  Type type;
};

const NotApplicable kNotApplicable[] = {
    {CULOSS_DICE, CULOSS_PARAM_GAMMA, Type::Float},
    {CULOSS_TVERSKY, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_FOCAL_TVERSKY, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_GENERALIZED_DICE, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_GENERALIZED_DICE, CULOSS_PARAM_AVERAGE, Type::Int},
    {CULOSS_DICE, CULOSS_PARAM_ALPHA, Type::Float},
    {CULOSS_JACCARD, CULOSS_PARAM_BETA, Type::Float},
    {CULOSS_FOCAL, CULOSS_PARAM_BETA, Type::Float},
    {CULOSS_DICE, CULOSS_PARAM_WEIGHT_TYPE, Type::Int},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
    {CULOSS_DICE, CULOSS_PARAM_CLASS_BALANCE, Type::Int},
    {CULOSS_DICE, CULOSS_PARAM_LABEL_SMOOTHING, Type::Float},
    {CULOSS_DICE, CULOSS_PARAM_CE_RATIO, Type::Float},
    {CULOSS_DICE, CULOSS_PARAM_PER_IMAGE, Type::Int},
    {CULOSS_LOVASZ_HINGE, CULOSS_PARAM_CLASSES, Type::Int},
    {CULOSS_LOVASZ_HINGE, CULOSS_PARAM_ACTIVATION, Type::Int},
    {CULOSS_BCE, CULOSS_PARAM_SMOOTH_NR, Type::Float},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_SKIP_EMPTY, Type::Int},
    {CULOSS_SUM, CULOSS_PARAM_ACTIVATION, Type::Int},
    {CULOSS_SUM, CULOSS_PARAM_REDUCTION, Type::Int},
    {CULOSS_SUM, CULOSS_PARAM_CLASS_AXIS, Type::Int},
    {CULOSS_SUM, CULOSS_PARAM_CLASS_WEIGHTS, Type::Floats},
    {CULOSS_MCC, CULOSS_PARAM_SMOOTH_NR, Type::Float},
    {CULOSS_MCC, CULOSS_PARAM_SQUARED_DENOMINATOR, Type::Int},
    {CULOSS_MCC, CULOSS_PARAM_ALPHA, Type::Float},
    {CULOSS_GENERALIZED_DICE, CULOSS_PARAM_SOFT_LABEL, Type::Int},
    {CULOSS_COMBO, CULOSS_PARAM_SOFT_LABEL, Type::Int},
    {CULOSS_BCE, CULOSS_PARAM_SOFT_LABEL, Type::Int},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_TOP_FRACTION, Type::Float},
    {CULOSS_TOPK_CE, CULOSS_PARAM_GAMMA, Type::Float},
    {CULOSS_TOPK_CE, CULOSS_PARAM_POS_WEIGHT, Type::Floats},
};

TEST(ApiDescriptor, ParameterThatDoesNotApplyIsRefused) {
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
        EXPECT_REFUSED(culoss_loss_set_float(loss, c.param, 0.5), CULOSS_ERROR_INVALID_ARGUMENT,
                       pn, kn);
        EXPECT_REFUSED(culoss_loss_get_float(loss, c.param, &fv), CULOSS_ERROR_INVALID_ARGUMENT,
                       pn, kn);
        EXPECT_EQ(777.0, fv) << "a refused getter leaves *value alone";
        break;
      case Type::Floats:
        EXPECT_REFUSED(culoss_loss_set_floats(loss, c.param, one, 1), CULOSS_ERROR_INVALID_ARGUMENT,
                       pn, kn);
        break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// wrong type

TEST(ApiDescriptor, WrongTypeIsRefused) {
  Loss dice(CULOSS_DICE);
  const double w[] = {1.0, 1.0};
  int64_t iv = 777;
  double fv = 777.0;
  // set_float on int parameters
  EXPECT_REFUSED(culoss_loss_set_float(dice, CULOSS_PARAM_CLASS_AXIS, 1.0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_AXIS", "int");
  EXPECT_REFUSED(culoss_loss_set_float(dice, CULOSS_PARAM_REDUCTION, 0.0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_REDUCTION", "int");
  // set_int on float parameters
  EXPECT_REFUSED(culoss_loss_set_int(dice, CULOSS_PARAM_SMOOTH_NR, 0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_SMOOTH_NR", "float");
  // set_floats on a scalar
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_SMOOTH_DR, w, 1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_SMOOTH_DR", "float");
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_BATCH, w, 1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_BATCH", "int");
  // a list parameter through the scalar setters
  EXPECT_REFUSED(culoss_loss_set_float(dice, CULOSS_PARAM_CLASS_WEIGHTS, 1.0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS", "floats");
  EXPECT_REFUSED(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_WEIGHTS, 1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS", "floats");
  // getters of the wrong type
  EXPECT_REFUSED(culoss_loss_get_int(dice, CULOSS_PARAM_SMOOTH_NR, &iv),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_SMOOTH_NR", "float");
  EXPECT_REFUSED(culoss_loss_get_float(dice, CULOSS_PARAM_BATCH, &fv),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_BATCH", "int");
  EXPECT_REFUSED(culoss_loss_get_float(dice, CULOSS_PARAM_CLASS_WEIGHTS, &fv),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS", "floats");
  EXPECT_EQ(777, iv);
  EXPECT_EQ(777.0, fv);
  // Nothing changed.
  EXPECT_OK(culoss_loss_get_int(dice, CULOSS_PARAM_CLASS_AXIS, &iv));
  EXPECT_EQ(1, iv);
  EXPECT_OK(culoss_loss_get_float(dice, CULOSS_PARAM_SMOOTH_NR, &fv));
  EXPECT_EQ(1e-5, fv);
}

// ---------------------------------------------------------------------------------------------
// out-of-range values

struct BadInt {
  culoss_kind kind;
  culoss_param param;
  int64_t value;
};

const BadInt kBadInts[] = {
    {CULOSS_DICE, CULOSS_PARAM_ACTIVATION, 3},
    {CULOSS_DICE, CULOSS_PARAM_ACTIVATION, -1},
    {CULOSS_DICE, CULOSS_PARAM_REDUCTION, 5},
    {CULOSS_DICE, CULOSS_PARAM_REDUCTION, 3},
    {CULOSS_DICE, CULOSS_PARAM_REDUCTION, -1},
    {CULOSS_DICE, CULOSS_PARAM_SQUARED_DENOMINATOR, 2},
    {CULOSS_DICE, CULOSS_PARAM_BATCH, 2},
    {CULOSS_DICE, CULOSS_PARAM_BATCH, -1},
    {CULOSS_DICE, CULOSS_PARAM_INCLUDE_BACKGROUND, 2},
    {CULOSS_DICE, CULOSS_PARAM_SKIP_EMPTY, 2},
    {CULOSS_DICE, CULOSS_PARAM_CHECK_TARGETS, 2},
    {CULOSS_DICE, CULOSS_PARAM_AVERAGE, 2},
    {CULOSS_DICE, CULOSS_PARAM_CLASS_AXIS, 65},
    {CULOSS_DICE, CULOSS_PARAM_CLASS_AXIS, -65},
    {CULOSS_GENERALIZED_DICE, CULOSS_PARAM_WEIGHT_TYPE, 3},
    {CULOSS_GENERALIZED_DICE, CULOSS_PARAM_WEIGHT_TYPE, -1},
    {CULOSS_BCE, CULOSS_PARAM_CLASS_BALANCE, 2},
    {CULOSS_BCE, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID},
    {CULOSS_LOVASZ_SOFTMAX, CULOSS_PARAM_CLASSES, 2},
    {CULOSS_LOVASZ_HINGE, CULOSS_PARAM_PER_IMAGE, 2},
    {CULOSS_COMBO, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE},
    {CULOSS_COMBO, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM},  // COMBO: MEAN only
    {CULOSS_TOPK_CE, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM},  // TOPK_CE: MEAN only
    {CULOSS_TOPK_CE, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE},
    {CULOSS_TOPK_CE, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID},
    {CULOSS_SUM, CULOSS_PARAM_CHECK_TARGETS, 2},
};

TEST(ApiDescriptor, OutOfRangeIntIsRefusedAndLeavesTheValue) {
  for (const BadInt& c : kBadInts) {
    SCOPED_TRACE(std::string(param_name(c.param)) + " = " + std::to_string(c.value) + " on " +
                 kind_name(c.kind));
    Loss loss(c.kind);
    int64_t before = 0, after = 0;
    ASSERT_OK(culoss_loss_get_int(loss, c.param, &before));
    EXPECT_REFUSED(culoss_loss_set_int(loss, c.param, c.value), CULOSS_ERROR_INVALID_ARGUMENT,
                   param_name(c.param), "must be", std::to_string(c.value).c_str());
    ASSERT_OK(culoss_loss_get_int(loss, c.param, &after));
    EXPECT_EQ(before, after) << "a refused set must not change the descriptor";
  }
}

struct BadFloat {
  culoss_kind kind;
  culoss_param param;
  double value;
};

const BadFloat kBadFloats[] = {
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, -1e-3},
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, kNaN},
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_NR, kInf},
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_DR, -1e-3},
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_DR, -kInf},
    {CULOSS_DICE, CULOSS_PARAM_SMOOTH_DR, kNaN},
    {CULOSS_TVERSKY, CULOSS_PARAM_ALPHA, -0.1},
    {CULOSS_TVERSKY, CULOSS_PARAM_ALPHA, kNaN},
    {CULOSS_TVERSKY, CULOSS_PARAM_BETA, kInf},
    {CULOSS_TVERSKY, CULOSS_PARAM_BETA, -0.5},
    {CULOSS_FOCAL_TVERSKY, CULOSS_PARAM_GAMMA, kInf},
    {CULOSS_FOCAL_TVERSKY, CULOSS_PARAM_GAMMA, -1.0},
    {CULOSS_FOCAL, CULOSS_PARAM_GAMMA, kNaN},
    {CULOSS_FOCAL, CULOSS_PARAM_GAMMA, -0.5},
    {CULOSS_FOCAL, CULOSS_PARAM_ALPHA, 1.5},
    {CULOSS_FOCAL, CULOSS_PARAM_ALPHA, kNaN},
    {CULOSS_FOCAL, CULOSS_PARAM_ALPHA, -kInf},
    {CULOSS_COMBO, CULOSS_PARAM_ALPHA, 1.5},
    {CULOSS_COMBO, CULOSS_PARAM_ALPHA, -0.5},
    {CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, 1.5},
    {CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, -0.1},
    {CULOSS_COMBO, CULOSS_PARAM_CE_RATIO, kNaN},
    {CULOSS_BCE, CULOSS_PARAM_LABEL_SMOOTHING, 1.0},
    {CULOSS_BCE, CULOSS_PARAM_LABEL_SMOOTHING, -0.1},
    {CULOSS_BCE, CULOSS_PARAM_LABEL_SMOOTHING, kNaN},
    {CULOSS_CROSS_ENTROPY, CULOSS_PARAM_LABEL_SMOOTHING, 1.0},
    {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 0.0},  // (0, 1]: at least some pixel
    {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, 1.5},
    {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, -0.1},
    {CULOSS_TOPK_CE, CULOSS_PARAM_TOP_FRACTION, kNaN},
    {CULOSS_TOPK_CE, CULOSS_PARAM_LABEL_SMOOTHING, 1.0},
};

TEST(ApiDescriptor, OutOfRangeFloatIsRefusedAndLeavesTheValue) {
  for (const BadFloat& c : kBadFloats) {
    SCOPED_TRACE(std::string(param_name(c.param)) + " = " + std::to_string(c.value) + " on " +
                 kind_name(c.kind));
    Loss loss(c.kind);
    double before = 0, after = 0;
    ASSERT_OK(culoss_loss_get_float(loss, c.param, &before));
    EXPECT_REFUSED(culoss_loss_set_float(loss, c.param, c.value), CULOSS_ERROR_INVALID_ARGUMENT,
                   param_name(c.param), "must be");
    ASSERT_OK(culoss_loss_get_float(loss, c.param, &after));
    EXPECT_EQ(before, after) << "a refused set must not change the descriptor";
  }
}

TEST(ApiDescriptor, BadFloatListsAreRefused) {
  Loss dice(CULOSS_DICE);
  const double negative[] = {1.0, -1.0, 1.0};
  const double nan[] = {1.0, kNaN};
  const double inf[] = {kInf};
  const double ok[] = {1.0, 1.0, 1.0};
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, negative, 3),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS[1]", ">= 0");
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, nan, 2),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS[1]", "finite");
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, inf, 1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS[0]", "finite");
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, ok, 0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS", "values");
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, ok, -1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS", "values");
  EXPECT_REFUSED(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, nullptr, 3),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_CLASS_WEIGHTS", "NULL");
  Loss bce(CULOSS_BCE);
  EXPECT_REFUSED(culoss_loss_set_floats(bce, CULOSS_PARAM_POS_WEIGHT, negative, 3),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_PARAM_POS_WEIGHT[1]", ">= 0");
}

// ---------------------------------------------------------------------------------------------
// unknown parameters, NULL handles, NULL value pointers

TEST(ApiDescriptor, UnknownParameterIsRefused) {
  Loss dice(CULOSS_DICE);
  const double one[] = {1.0};
  int64_t iv = 777;
  double fv = 777.0;
  for (int id : {999, 0, 99, -1}) {
    const culoss_param p = static_cast<culoss_param>(id);
    const std::string s = std::to_string(id);
    EXPECT_REFUSED(culoss_loss_set_int(dice, p, 0), CULOSS_ERROR_INVALID_ARGUMENT, "parameter",
                   s.c_str());
    EXPECT_REFUSED(culoss_loss_set_float(dice, p, 0.0), CULOSS_ERROR_INVALID_ARGUMENT, "parameter",
                   s.c_str());
    EXPECT_REFUSED(culoss_loss_set_floats(dice, p, one, 1), CULOSS_ERROR_INVALID_ARGUMENT,
                   "parameter", s.c_str());
    EXPECT_REFUSED(culoss_loss_get_int(dice, p, &iv), CULOSS_ERROR_INVALID_ARGUMENT, "parameter",
                   s.c_str());
    EXPECT_REFUSED(culoss_loss_get_float(dice, p, &fv), CULOSS_ERROR_INVALID_ARGUMENT, "parameter",
                   s.c_str());
  }
  EXPECT_EQ(777, iv);
  EXPECT_EQ(777.0, fv);
}

TEST(ApiDescriptor, NullLossIsRefusedEverywhere) {
  const double one[] = {1.0};
  int64_t iv = 777;
  double fv = 777.0;
  EXPECT_REFUSED(culoss_loss_set_int(nullptr, CULOSS_PARAM_BATCH, 1), CULOSS_ERROR_INVALID_ARGUMENT,
                 "loss", "NULL");
  EXPECT_REFUSED(culoss_loss_set_float(nullptr, CULOSS_PARAM_SMOOTH_NR, 1.0),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss", "NULL");
  EXPECT_REFUSED(culoss_loss_set_floats(nullptr, CULOSS_PARAM_CLASS_WEIGHTS, one, 1),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss", "NULL");
  EXPECT_REFUSED(culoss_loss_get_int(nullptr, CULOSS_PARAM_BATCH, &iv),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss", "NULL");
  EXPECT_REFUSED(culoss_loss_get_float(nullptr, CULOSS_PARAM_SMOOTH_NR, &fv),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss", "NULL");
  EXPECT_EQ(777, iv);
  EXPECT_EQ(777.0, fv);

  TestTensor input({2, 3, 4}, f32()), target({2, 3, 4}, f32()), out({}, f32());
  out.fill(kSentinel);
  Untouched untouched;
  untouched.watch(out, "loss_out");
  size_t bytes = 4242;
  EXPECT_REFUSED(culoss_workspace_size(nullptr, input.dl(), target.dl(), &bytes),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss", "NULL");
  EXPECT_EQ(4242u, bytes);
  EXPECT_REFUSED(culoss_compute(nullptr, input.dl(), target.dl(), nullptr, out.dl(), nullptr, 1.0,
                                nullptr, 0, nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss", "NULL");
  untouched.check();
}

TEST(ApiDescriptor, NullValuePointerOnGettersIsRefused) {
  Loss dice(CULOSS_DICE);
  EXPECT_REFUSED(culoss_loss_get_int(dice, CULOSS_PARAM_BATCH, nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "value", "NULL");
  EXPECT_REFUSED(culoss_loss_get_float(dice, CULOSS_PARAM_SMOOTH_NR, nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "value", "NULL");
}

// ---------------------------------------------------------------------------------------------
// add_term

TEST(ApiDescriptor, AddTermBuildsASum) {
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE), gd(CULOSS_GENERALIZED_DICE);
  EXPECT_OK(culoss_loss_add_term(sum, dice, 1.0));
  EXPECT_OK(culoss_loss_set_int(gd, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_SUM));
  EXPECT_OK(culoss_loss_add_term(sum, gd, 0.5));
  EXPECT_OK(culoss_loss_add_term(sum, dice, -2.0));  // negative weights are finite: allowed
  EXPECT_STREQ("", culoss_last_error());
}

TEST(ApiDescriptor, AddTermCopiesTheTerm) {
  culoss_loss sum = nullptr, dice = nullptr;
  ASSERT_OK(culoss_loss_create(&sum, CULOSS_SUM));
  ASSERT_OK(culoss_loss_create(&dice, CULOSS_DICE));
  EXPECT_OK(culoss_loss_add_term(sum, dice, 1.0));
  EXPECT_OK(culoss_loss_destroy(dice));  // the sum keeps its own copy
  EXPECT_OK(culoss_loss_destroy(sum));
}

TEST(ApiDescriptor, AddTermToANonSumIsRefused) {
  Loss dice(CULOSS_DICE), jaccard(CULOSS_JACCARD);
  EXPECT_REFUSED(culoss_loss_add_term(dice, jaccard, 1.0), CULOSS_ERROR_INVALID_ARGUMENT,
                 "CULOSS_SUM", "CULOSS_DICE");
}

TEST(ApiDescriptor, AddTermWithReductionNoneIsRefused) {
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE);
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  EXPECT_REFUSED(culoss_loss_add_term(sum, dice, 1.0), CULOSS_ERROR_INVALID_ARGUMENT, "REDUCTION",
                 "CULOSS_DICE", "NONE");
}

TEST(ApiDescriptor, AddTermWithNonFiniteWeightIsRefused) {
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE);
  for (double w : {kNaN, kInf, -kInf})
    EXPECT_REFUSED(culoss_loss_add_term(sum, dice, w), CULOSS_ERROR_INVALID_ARGUMENT, "weight",
                   "finite");
}

TEST(ApiDescriptor, AddTermNullIsRefused) {
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE);
  EXPECT_REFUSED(culoss_loss_add_term(sum, nullptr, 1.0), CULOSS_ERROR_INVALID_ARGUMENT, "term",
                 "NULL");
  // The header names the first parameter `sum`; the message should name it too.
  EXPECT_REFUSED(culoss_loss_add_term(nullptr, dice, 1.0), CULOSS_ERROR_INVALID_ARGUMENT, "sum",
                 "NULL");
}

TEST(ApiDescriptor, AddTermOfASumToItselfIsRefused) {
  Loss sum(CULOSS_SUM), dice(CULOSS_DICE);
  ASSERT_OK(culoss_loss_add_term(sum, dice, 1.0));
  EXPECT_REFUSED(culoss_loss_add_term(sum, sum, 1.0), CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_SUM");
}

TEST(ApiDescriptor, SumOfASumFlattens) {
  Loss inner(CULOSS_SUM), outer(CULOSS_SUM), dice(CULOSS_DICE), jaccard(CULOSS_JACCARD);
  ASSERT_OK(culoss_loss_add_term(inner, dice, 1.0));
  ASSERT_OK(culoss_loss_add_term(inner, jaccard, 2.0));
  EXPECT_OK(culoss_loss_add_term(outer, inner, 0.5));
  EXPECT_OK(culoss_loss_add_term(outer, dice, 1.0));
  Loss empty(CULOSS_SUM);
  EXPECT_OK(culoss_loss_add_term(outer, empty, 1.0));  // an empty sum adds nothing
  EXPECT_STREQ("", culoss_last_error());
}

// ---------------------------------------------------------------------------------------------
// what this version does not compute

// Every kind computes; a Lovász term inside a SUM is refused (a sort-based kind is not fused).
TEST(ApiNotImplementedSum, LovaszTermIsNotSupported) {
  Loss sum(CULOSS_SUM), lovasz(CULOSS_LOVASZ_SOFTMAX), dice(CULOSS_DICE);
  ASSERT_OK(culoss_loss_add_term(sum, dice, 1.0));
  ASSERT_OK(culoss_loss_add_term(sum, lovasz, 0.5));
  TestTensor input({2, 3, 4}, f32()), target({2, 4}, testing_util::i64()), out({}, f32());
  fill_logits(input);
  size_t bytes = 4242;
  EXPECT_REFUSED(culoss_workspace_size(sum, input.dl(), target.dl(), &bytes),
                 CULOSS_ERROR_NOT_SUPPORTED, "CULOSS_LOVASZ_SOFTMAX");
  EXPECT_EQ(4242u, bytes);
}

// A SUM without terms cannot compute.
TEST(ApiDescriptor, EmptySumIsRefused) {
  Loss sum(CULOSS_SUM);
  TestTensor input({2, 3, 4}, f32()), target({2, 4}, testing_util::i64()), out({}, f32());
  fill_logits(input);
  EXPECT_REFUSED(culoss_compute(sum, input.dl(), target.dl(), nullptr, out.dl(), nullptr, 1.0,
                                nullptr, 0, nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "CULOSS_SUM", "no terms");
}

}  // namespace

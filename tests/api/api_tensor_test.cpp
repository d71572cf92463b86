// Tensor validation through culoss_compute / culoss_workspace_size (docs/reference.md and
// docs/SEMANTICS.md "Tensors", "Targets and CHECK_TARGETS"), with CULOSS_DICE on the CPU; the
// C = 1 rules (a softmax over one class is refused, labels are a binary mask) with every kind.
// Every refusal checks the status, the key words of culoss_last_error(), and that loss_out and
// grad_input (filled with a sentinel) are untouched.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "api/api_util.hpp"
#include "common/cpu_passes.hpp"

namespace {

using namespace api_test;
using namespace testing_util;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// The default call: DICE, input (N, C, P) = (2, 3, 4) float32 logits, int64 class indices (2, 4),
// a scalar float32 loss_out and a float32 gradient, all on the CPU.
class ApiTensor : public ::testing::Test {
 protected:
  static constexpr int64_t N = 2, C = 3, P = 4;

  ApiTensor()
      : dice(CULOSS_DICE),
        input({N, C, P}, f32()),
        target({N, P}, i64()),
        loss_out({}, f32()),
        grad({N, C, P}, f32()) {
    fill_logits(input);
    const int labels[N * P] = {0, 1, 2, 1, 2, 2, 0, 1};
    for (int64_t i = 0; i < N * P; ++i) target.set(i, labels[i]);
    loss_out.fill(kSentinel);
    grad.fill(kSentinel);
    untouched.watch(input, "input");
    untouched.watch(loss_out, "loss_out");
    untouched.watch(grad, "grad_input");
  }

  culoss_status compute(const DLTensor* in, const DLTensor* tg, const DLTensor* pw, DLTensor* out,
                        DLTensor* gr, double scale = 1.0, void* ws = nullptr, size_t wsb = 0) {
    return culoss_compute(dice, in, tg, pw, out, gr, scale, ws, wsb, nullptr);
  }
  culoss_status compute_with(const DLTensor* tg) {
    return compute(input.dl(), tg, nullptr, loss_out.dl(), grad.dl());
  }

  // Runs the default call on fresh outputs and returns (loss, gradient).
  struct Result {
    double loss = kNaN;
    std::vector<double> grad;
  };
  Result reference(const DLTensor* tg = nullptr, const DLTensor* pw = nullptr) {
    TestTensor out({}, f32()), g({N, C, P}, f32());
    out.poison();
    g.poison();
    Result r;
    const culoss_status s =
        compute(input.dl(), tg ? tg : target.dl(), pw, out.dl(), g.dl());
    EXPECT_EQ(CULOSS_SUCCESS, s) << last_error();
    r.loss = out.get(0);
    r.grad = g.values();
    return r;
  }

  Loss dice;
  TestTensor input, target, loss_out, grad;
  Untouched untouched;
};

void expect_same(const std::vector<double>& a, const std::vector<double>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << what << " [" << i << "]";
}

// ---------------------------------------------------------------------------------------------
// the default call works (the refusals below are refusals of something specific)

TEST_F(ApiTensor, DefaultCallSucceeds) {
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()));
  EXPECT_STREQ("", culoss_last_error());
  EXPECT_TRUE(std::isfinite(loss_out.get(0)));
  EXPECT_GT(loss_out.get(0), 0.0);
  for (double g : grad.values()) EXPECT_TRUE(std::isfinite(g));
  size_t bytes = 0;
  EXPECT_OK(culoss_workspace_size(dice, input.dl(), target.dl(), &bytes));
  EXPECT_GT(bytes, 0u);
}

// ---------------------------------------------------------------------------------------------
// NULL tensors and malformed tensors

TEST_F(ApiTensor, NullInputTargetLossOut) {
  EXPECT_REFUSED(compute(nullptr, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "NULL");
  EXPECT_REFUSED(compute(input.dl(), nullptr, nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "target", "NULL");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, nullptr, grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss_out", "NULL");
  size_t bytes = 4242;
  EXPECT_REFUSED(culoss_workspace_size(dice, nullptr, target.dl(), &bytes),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "NULL");
  EXPECT_REFUSED(culoss_workspace_size(dice, input.dl(), nullptr, &bytes),
                 CULOSS_ERROR_INVALID_ARGUMENT, "target", "NULL");
  EXPECT_EQ(4242u, bytes);
  untouched.check();
}

TEST_F(ApiTensor, InputNeedsTwoDimensions) {
  TestTensor in1({4}, f32()), t0({}, i64());
  EXPECT_REFUSED(compute(in1.dl(), t0.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "input", "(4,)", "2 dimensions");
  TestTensor in0({}, f32());
  EXPECT_REFUSED(compute(in0.dl(), t0.dl(), nullptr, loss_out.dl(), nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "input", "2 dimensions");
  untouched.check();
}

TEST_F(ApiTensor, ClassAxisOutOfRange) {
  // 3-D input: valid axes are 1, 2 (or -2, -1).
  for (int64_t axis : {3, 64, -4, -64}) {
    SCOPED_TRACE(axis);
    ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, axis));
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                   CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_CLASS_AXIS",
                   std::to_string(axis).c_str(), "(2, 3, 4)");
  }
  // Axis 0 is the batch, also when a negative axis resolves to it.
  for (int64_t axis : {0, -3}) {
    SCOPED_TRACE(axis);
    ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, axis));
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                   CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_CLASS_AXIS", "batch");
  }
  size_t bytes = 4242;
  EXPECT_REFUSED(culoss_workspace_size(dice, input.dl(), target.dl(), &bytes),
                 CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_CLASS_AXIS");
  EXPECT_EQ(4242u, bytes);
  untouched.check();
}

TEST_F(ApiTensor, NegativeClassAxisCountsFromTheEnd) {
  // (N, P, C) with CLASS_AXIS = -1 equals the (N, C, P) call on the transposed data.
  const Result ref = reference();
  TestTensor nhwc({N, P, C}, f32()), g({N, P, C}, f32()), out({}, f32());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t q = 0; q < P; ++q) nhwc.set((n * P + q) * C + c, input.get((n * C + c) * P + q));
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, -1));
  ASSERT_OK(compute(nhwc.dl(), target.dl(), nullptr, out.dl(), g.dl()));
  EXPECT_NEAR(ref.loss, out.get(0), 1e-6);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t q = 0; q < P; ++q)
        EXPECT_NEAR(ref.grad[(n * C + c) * P + q], g.get((n * P + q) * C + c), 1e-7);
}

TEST_F(ApiTensor, ZeroClassesIsRefused) {
  TestTensor in({N, 0, P}, f32()), g({N, 0, P}, f32());
  EXPECT_REFUSED(compute(in.dl(), target.dl(), nullptr, loss_out.dl(), g.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "input", "0 classes");
  untouched.check();
}

TEST_F(ApiTensor, NegativeExtentIsRefused) {
  DLTensor* in = input.dl();
  int64_t shape[] = {N, C, -4};
  in->shape = shape;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "negative extent", "-4");
  DLTensor* tg = target.dl();
  int64_t tshape[] = {N, -1};
  tg->shape = tshape;
  EXPECT_REFUSED(compute(input.dl(), tg, nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "target", "negative extent", "-1");
  untouched.check();
}

TEST_F(ApiTensor, NullShapeIsRefused) {
  DLTensor* in = input.dl();
  in->shape = nullptr;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "NULL shape");
  DLTensor* g = grad.dl();
  g->shape = nullptr;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "NULL shape");
  untouched.check();
}

TEST_F(ApiTensor, BadNdimIsRefused) {
  DLTensor* in = input.dl();
  in->ndim = -1;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "ndim");
  std::vector<int64_t> shape65(65, 1);
  in = input.dl();
  in->ndim = 65;
  in->shape = shape65.data();
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "ndim", "65");
  untouched.check();
}

TEST_F(ApiTensor, NullDataOnANonEmptyTensorIsRefused) {
  DLTensor* in = input.dl();
  in->data = nullptr;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "NULL data");
  DLTensor* tg = target.dl();
  tg->data = nullptr;
  EXPECT_REFUSED(compute(input.dl(), tg, nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "target", "NULL data");
  DLTensor* g = grad.dl();
  g->data = nullptr;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "NULL data");
  DLTensor* out = loss_out.dl();
  out->data = nullptr;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, out, grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss_out", "NULL data");
  untouched.check();
}

TEST_F(ApiTensor, ElementCountOverflowIsRefused) {
  DLTensor* in = input.dl();
  int64_t shape[] = {int64_t(1) << 32, int64_t(1) << 31, 2};  // 2^64 elements
  in->shape = shape;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "2^62");
  int64_t shape2[] = {int64_t(1) << 31, int64_t(1) << 31, 3};  // 3 * 2^62
  in->shape = shape2;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "2^62");
  untouched.check();
}

// ---------------------------------------------------------------------------------------------
// dtypes

TEST_F(ApiTensor, UnsupportedInputDtype) {
  const DLDataType bad[] = {i32(), DLDataType{kDLFloat, 32, 2}, DLDataType{kDLComplex, 64, 1},
                            u8(), DLDataType{kDLFloat, 8, 1}};
  for (DLDataType d : bad) {
    DLTensor* in = input.dl();
    in->dtype = d;
    EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), nullptr),
                   CULOSS_ERROR_UNSUPPORTED_DTYPE, "input", "dtype", "float32");
  }
  untouched.check();
}

TEST_F(ApiTensor, AcceptedInputDtypes) {
  for (DLDataType d : {f32(), f64(), f16(), bf16()}) {
    TestTensor in({N, C, P}, d), g({N, C, P}, d), out({}, f64());
    fill_logits(in);
    EXPECT_OK(compute(in.dl(), target.dl(), nullptr, out.dl(), g.dl()));
    EXPECT_TRUE(std::isfinite(out.get(0)));
  }
}

TEST_F(ApiTensor, DenseTargetDtypes) {
  // The input's shape makes it a dense target; the message also gives the index shape (no
  // "squeeze": (2, 3, 4) has no class axis of extent 1).
  TestTensor t({N, C, P}, i64());
  EXPECT_REFUSED(compute_with(t.dl()), CULOSS_ERROR_UNSUPPORTED_DTYPE, "target (2, 3, 4)", "int64",
                 "dense", "float32", "(2, 4)");
  EXPECT_THAT(last_error(), ::testing::Not(::testing::HasSubstr("squeeze")));
  TestTensor t32({N, C, P}, i32());
  EXPECT_REFUSED(compute_with(t32.dl()), CULOSS_ERROR_UNSUPPORTED_DTYPE, "target", "int32",
                 "dense");
  untouched.check();
  // float32/64/16, bfloat16 and uint8 dense targets are accepted.
  for (DLDataType d : {f32(), f64(), f16(), bf16(), u8()}) {
    TestTensor ok({N, C, P}, d);
    for (int64_t i = 0; i < ok.numel(); ++i) ok.set(i, i % 2);
    TestTensor out({}, f32());
    EXPECT_OK(compute(input.dl(), ok.dl(), nullptr, out.dl(), nullptr));
  }
}

TEST_F(ApiTensor, IndexTargetDtypes) {
  // The index shape (the input's without the class axis) makes it class indices: a float
  // target of that shape is told the index dtypes and the dense shape.
  for (DLDataType d : {f32(), f64(), f16(), bf16()}) {
    TestTensor t({N, P}, d);
    EXPECT_REFUSED(compute_with(t.dl()), CULOSS_ERROR_UNSUPPORTED_DTYPE, "target (2, 4)", "float",
                   "class indices", "uint8, int32 or int64", "(2, 3, 4)");
  }
  untouched.check();
  for (DLDataType d : {u8(), i32(), i64()}) {
    TestTensor ok({N, P}, d);
    for (int64_t i = 0; i < ok.numel(); ++i) ok.set(i, target.get(i));
    TestTensor out({}, f32());
    EXPECT_OK(compute(input.dl(), ok.dl(), nullptr, out.dl(), nullptr));
  }
}

// ---------------------------------------------------------------------------------------------
// shapes

TEST_F(ApiTensor, TargetShapeMismatch) {
  TestTensor dense({N, C, P + 1}, f32());
  EXPECT_REFUSED(compute_with(dense.dl()), CULOSS_ERROR_SHAPE_MISMATCH, "target", "(2, 3, 5)",
                 "(2, 3, 4)");
  TestTensor index({N, P + 1}, i64());
  EXPECT_REFUSED(compute_with(index.dl()), CULOSS_ERROR_SHAPE_MISMATCH, "target", "(2, 5)",
                 "(2, 4)");
  TestTensor index2({N, C}, i64());  // the class axis removed is the wrong one
  EXPECT_REFUSED(compute_with(index2.dl()), CULOSS_ERROR_SHAPE_MISMATCH, "target", "(2, 4)");
  TestTensor too_many({N, C, P, 1}, f32());
  EXPECT_REFUSED(compute_with(too_many.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "target (2, 3, 4, 1) does not match input (2, 3, 4)",
                 "a dense target has the input's shape (2, 3, 4)",
                 "class indices the input's shape without the class axis (2, 4)");
  TestTensor too_few({N * P}, i64());
  EXPECT_REFUSED(compute_with(too_few.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                 "target (8,) does not match input (2, 3, 4)",
                 "a dense target has the input's shape (2, 3, 4)",
                 "class indices the input's shape without the class axis (2, 4)");
  // The shape is checked before the dtype: a mismatched target of any dtype gets the same message.
  for (DLDataType d : {f32(), u8(), i32(), i64()}) {
    TestTensor wrong({N, C + 1, P}, d);
    EXPECT_REFUSED(compute_with(wrong.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "target (2, 4, 4) does not match input (2, 3, 4)",
                   "a dense target has the input's shape (2, 3, 4)",
                   "class indices the input's shape without the class axis (2, 4)");
  }
  untouched.check();
}

// Labels that kept a class axis of extent 1, (N, 1, P), for an input with C = 3 classes: told the
// index shape (N, P) and to squeeze, whatever their dtype.
TEST_F(ApiTensor, IndexTargetWithASingletonClassAxisIsToldToSqueeze) {
  for (DLDataType d : {i64(), i32(), u8(), f32()}) {
    TestTensor lab({N, 1, P}, d);
    for (int64_t i = 0; i < lab.numel(); ++i) lab.set(i, target.get(i));
    EXPECT_REFUSED(compute_with(lab.dl()), CULOSS_ERROR_SHAPE_MISMATCH,
                   "target (2, 1, 4) does not match input (2, 3, 4)", "(2, 4)", "squeeze");
  }
  {  // (N, 1, H, W) int64 labels for an (N, 4, H, W) input: the index shape is (N, H, W).
    TestTensor in4({N, 4, 3, 5}, f32()), lab4({N, 1, 3, 5}, i64()), g4({N, 4, 3, 5}, f32());
    fill_logits(in4);
    g4.fill(kSentinel);
    Untouched u4;
    u4.watch(g4, "grad");
    EXPECT_REFUSED(compute(in4.dl(), lab4.dl(), nullptr, loss_out.dl(), g4.dl()),
                   CULOSS_ERROR_SHAPE_MISMATCH,
                   "target (2, 1, 3, 5) does not match input (2, 4, 3, 5)", "(2, 3, 5)", "squeeze");
    u4.check();
  }
  // Channels-last: (N, P, 1) labels for an (N, P, C) input.
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CLASS_AXIS, -1));
  TestTensor in({N, P, C}, f32()), lab({N, P, 1}, i64()), g({N, P, C}, f32());
  fill_logits(in);
  g.fill(kSentinel);
  Untouched u;
  u.watch(g, "grad");
  EXPECT_REFUSED(compute(in.dl(), lab.dl(), nullptr, loss_out.dl(), g.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "target (2, 4, 1) does not match input (2, 4, 3)",
                 "(2, 4)", "squeeze");
  u.check();
  untouched.check();
}

// With C = 1 the input's shape and the shape with a singleton class axis coincide: (N, 1, P)
// integer labels have the input's shape, so they are a dense target of the wrong dtype, told the
// index shape (N, P) and to squeeze.
TEST_F(ApiTensor, IndexTargetWithASingletonClassAxisAndOneClassIsToldToSqueeze) {
  // to 1e-12: both calls on the generic passes (the fast path takes the dense target only)
  const culoss_test::GenericCpuPasses generic_passes;
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  TestTensor in({N, 1, P}, f32()), g({N, 1, P}, f32());
  fill_logits(in);
  g.fill(kSentinel);
  Untouched u;
  u.watch(g, "grad");
  for (DLDataType d : {i64(), i32()}) {
    TestTensor lab({N, 1, P}, d);
    for (int64_t i = 0; i < lab.numel(); ++i) lab.set(i, i % 2);
    EXPECT_REFUSED(compute(in.dl(), lab.dl(), nullptr, loss_out.dl(), g.dl()),
                   CULOSS_ERROR_UNSUPPORTED_DTYPE, "target (2, 1, 4)", "dense",
                   d.bits == 64 ? "int64" : "int32", "(2, 4)", "squeeze");
  }
  {  // (N, 1, H, W) int64 labels for an (N, 1, H, W) input: the index shape is (N, H, W).
    TestTensor in4({N, 1, 3, 5}, f32()), lab4({N, 1, 3, 5}, i64()), g4({N, 1, 3, 5}, f32());
    fill_logits(in4);
    g4.fill(kSentinel);
    Untouched u4;
    u4.watch(g4, "grad");
    EXPECT_REFUSED(compute(in4.dl(), lab4.dl(), nullptr, loss_out.dl(), g4.dl()),
                   CULOSS_ERROR_UNSUPPORTED_DTYPE, "target (2, 1, 3, 5)", "int64", "(2, 3, 5)",
                   "squeeze");
    u4.check();
  }
  u.check();
  untouched.check();
  // uint8 of that shape is a dense 0/1 mask: accepted, and equal to the squeezed labels.
  TestTensor m8({N, 1, P}, u8()), lab({N, P}, i64());
  for (int64_t i = 0; i < N * P; ++i) {
    m8.set(i, i % 2);
    lab.set(i, i % 2);
  }
  TestTensor oa({}, f64()), ob({}, f64()), ga({N, 1, P}, f32()), gb({N, 1, P}, f32());
  ASSERT_OK(compute(in.dl(), m8.dl(), nullptr, oa.dl(), ga.dl()));
  ASSERT_OK(compute(in.dl(), lab.dl(), nullptr, ob.dl(), gb.dl()));
  EXPECT_NEAR(ob.get(0), oa.get(0), 1e-12);
  for (int64_t i = 0; i < ga.numel(); ++i) EXPECT_NEAR(gb.get(i), ga.get(i), 1e-7) << i;
}

TEST_F(ApiTensor, IndexTargetWithSigmoidNeedsOneClass) {
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  EXPECT_REFUSED(compute_with(target.dl()), CULOSS_ERROR_INVALID_ARGUMENT, "SIGMOID", "C = 1",
                 "C = 3", "dense");
  untouched.check();
}

TEST_F(ApiTensor, IndexTargetWithSigmoidAndOneClassIsABinaryMask) {
  // to 1e-12: both calls on the generic passes (the fast path takes the dense target only)
  const culoss_test::GenericCpuPasses generic_passes;
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  TestTensor in({N, 1, P}, f32()), mask({N, P}, u8()), dense({N, 1, P}, f32());
  fill_logits(in);
  const int bits[N * P] = {0, 1, 1, 0, 1, 0, 0, 1};
  for (int64_t i = 0; i < N * P; ++i) {
    mask.set(i, bits[i]);
    dense.set(i, bits[i]);
  }
  TestTensor out_mask({}, f64()), out_dense({}, f64()), g_mask({N, 1, P}, f32()),
      g_dense({N, 1, P}, f32());
  ASSERT_OK(compute(in.dl(), mask.dl(), nullptr, out_mask.dl(), g_mask.dl()));
  ASSERT_OK(compute(in.dl(), dense.dl(), nullptr, out_dense.dl(), g_dense.dl()));
  EXPECT_NEAR(out_dense.get(0), out_mask.get(0), 1e-12);
  for (int64_t i = 0; i < g_mask.numel(); ++i) EXPECT_NEAR(g_dense.get(i), g_mask.get(i), 1e-7);
}

TEST_F(ApiTensor, PixelWeightDtypeAndShape) {
  TestTensor pw64({N, P}, f64());
  pw64.fill(1.0);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw64.dl(), loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DTYPE, "pixel_weight", "float64", "float32");
  TestTensor pw_shape({N, C, P}, f32());
  pw_shape.fill(1.0);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw_shape.dl(), loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "pixel_weight", "(2, 3, 4)", "(2, 4)");
  TestTensor pw_short({N, P - 1}, f32());
  pw_short.fill(1.0);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw_short.dl(), loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "pixel_weight", "(2, 3)", "(2, 4)");
  untouched.check();
  // A weight map of ones is the same as none.
  TestTensor ones({N, P}, f32());
  ones.fill(1.0);
  const Result a = reference(), b = reference(nullptr, ones.dl());
  EXPECT_EQ(a.loss, b.loss);
  expect_same(a.grad, b.grad, "grad");
}

TEST_F(ApiTensor, GradInputDtype) {
  TestTensor g16({N, C, P}, f16()), g64({N, C, P}, f64()), gi({N, C, P}, i32());
  g16.fill(kSentinel);
  g64.fill(kSentinel);
  untouched.watch(g16, "grad f16");
  untouched.watch(g64, "grad f64");
  untouched.watch(gi, "grad i32");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g16.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DTYPE, "grad_input", "float16", "float32");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g64.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DTYPE, "grad_input", "float64", "float32");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), gi.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DTYPE, "grad_input", "int32");
  untouched.check();
  // float32 is accepted for any input dtype, and the input's own dtype too.
  TestTensor in64({N, C, P}, f64()), gf32({N, C, P}, f32()), gf64({N, C, P}, f64()),
      out({}, f32());
  fill_logits(in64);
  EXPECT_OK(compute(in64.dl(), target.dl(), nullptr, out.dl(), gf32.dl()));
  EXPECT_OK(compute(in64.dl(), target.dl(), nullptr, out.dl(), gf64.dl()));
  for (int64_t i = 0; i < gf32.numel(); ++i) EXPECT_NEAR(gf64.get(i), gf32.get(i), 1e-7);
}

TEST_F(ApiTensor, GradInputShape) {
  TestTensor g({N, C, P + 1}, f32()), g2({N, P}, f32());
  g.fill(kSentinel);
  untouched.watch(g, "grad (2, 3, 5)");
  untouched.watch(g2, "grad (2, 4)");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "grad_input", "(2, 3, 5)", "(2, 3, 4)");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g2.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "grad_input", "(2, 4)", "(2, 3, 4)");
  untouched.check();
}

TEST_F(ApiTensor, LossOutDtype) {
  for (DLDataType d : {f16(), bf16(), i32()}) {
    TestTensor out({}, d);
    out.fill(7);
    Untouched u;
    u.watch(out, "loss_out");
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, out.dl(), grad.dl()),
                   CULOSS_ERROR_UNSUPPORTED_DTYPE, "loss_out", "float32 or float64");
    u.check();
  }
  untouched.check();
  TestTensor out64({}, f64());
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, out64.dl(), nullptr));
  EXPECT_NEAR(reference().loss, out64.get(0), 1e-6);
}

TEST_F(ApiTensor, LossOutShapeForMeanAndSum) {
  for (int red : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM}) {
    SCOPED_TRACE(red);
    ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_REDUCTION, red));
    TestTensor two({2}, f32()), nc({N, C}, f32());
    two.fill(kSentinel);
    nc.fill(kSentinel);
    Untouched u;
    u.watch(two, "loss_out (2,)");
    u.watch(nc, "loss_out (2, 3)");
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, two.dl(), grad.dl()),
                   CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2,)", "one element");
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, nc.dl(), grad.dl()),
                   CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2, 3)", "one element");
    u.check();
    untouched.check();
    // ndim 0 and shape (1,) are both one element, with the same value.
    TestTensor scalar({}, f32()), one({1}, f32());
    scalar.poison();
    one.poison();
    EXPECT_OK(compute(input.dl(), target.dl(), nullptr, scalar.dl(), nullptr));
    EXPECT_OK(compute(input.dl(), target.dl(), nullptr, one.dl(), nullptr));
    EXPECT_TRUE(std::isfinite(scalar.get(0)));
    EXPECT_EQ(scalar.get(0), one.get(0));
  }
}

TEST_F(ApiTensor, LossOutShapeForNone) {
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  TestTensor scalar({}, f32()), n({N}, f32()), cn({C, N}, f32()), c({C}, f32()), nc({N, C}, f32());
  for (TestTensor* t : {&scalar, &n, &cn, &c, &nc}) t->fill(kSentinel);
  Untouched u;
  u.watch(scalar, "scalar");
  u.watch(n, "(N)");
  u.watch(cn, "(C, N)");
  // MACRO: (N, C)
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, scalar.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "()", "(2, 3)");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, cn.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(3, 2)", "(2, 3)");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, n.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2,)", "(2, 3)");
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, nc.dl(), nullptr));
  // MACRO with BATCH: (C)
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_BATCH, 1));
  TestTensor nc2({N, C}, f32());
  nc2.fill(kSentinel);
  u.watch(nc2, "(N, C) with BATCH");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, nc2.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2, 3)", "(3,)");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, n.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2,)", "(3,)");
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, c.dl(), nullptr));
  // MICRO with BATCH: one element, ndim 0 or (1,)
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_AVERAGE, CULOSS_AVERAGE_MICRO));
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, n.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2,)", "one element");
  TestTensor one({1}, f32()), zero_d({}, f32());
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, one.dl(), nullptr));
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, zero_d.dl(), nullptr));
  // MICRO without BATCH: (N)
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_BATCH, 0));
  TestTensor nc3({N, C}, f32());
  nc3.fill(kSentinel);
  u.watch(nc3, "(N, C) MICRO");
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, nc3.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2, 3)", "(2,)");
  u.check();
  untouched.check();

  // GENERALIZED_DICE: (N)
  Loss gd(CULOSS_GENERALIZED_DICE);
  ASSERT_OK(culoss_loss_set_int(gd, CULOSS_PARAM_REDUCTION, CULOSS_REDUCTION_NONE));
  TestTensor gnc({N, C}, f32()), gn({N}, f32());
  gnc.fill(kSentinel);
  Untouched ug;
  ug.watch(gnc, "(N, C) generalized Dice");
  EXPECT_REFUSED(culoss_compute(gd, input.dl(), target.dl(), nullptr, gnc.dl(), grad.dl(), 1.0,
                                nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2, 3)", "(2,)");
  EXPECT_REFUSED(culoss_compute(gd, input.dl(), target.dl(), nullptr, scalar.dl(), grad.dl(), 1.0,
                                nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2,)");
  ug.check();
  u.check();
  untouched.check();
  EXPECT_OK(culoss_compute(gd, input.dl(), target.dl(), nullptr, gn.dl(), nullptr, 1.0, nullptr, 0,
                           nullptr));
  // GENERALIZED_DICE with BATCH: one element
  ASSERT_OK(culoss_loss_set_int(gd, CULOSS_PARAM_BATCH, 1));
  TestTensor gn2({N}, f32());
  gn2.fill(kSentinel);
  Untouched ug2;
  ug2.watch(gn2, "(N) generalized Dice with BATCH");
  EXPECT_REFUSED(culoss_compute(gd, input.dl(), target.dl(), nullptr, gn2.dl(), grad.dl(), 1.0,
                                nullptr, 0, nullptr),
                 CULOSS_ERROR_SHAPE_MISMATCH, "loss_out", "(2,)", "one element");
  ug2.check();
  untouched.check();
  TestTensor g1({1}, f64());
  EXPECT_OK(culoss_compute(gd, input.dl(), target.dl(), nullptr, g1.dl(), nullptr, 1.0, nullptr, 0,
                           nullptr));
}

// ---------------------------------------------------------------------------------------------
// strides, byte offsets

TEST_F(ApiTensor, NonCompactStridesAreNotSupported) {
  int64_t transposed[] = {C * P, 1, C};  // (N, C, P) stored as (N, P, C)
  DLTensor* in = input.dl();
  in->strides = transposed;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_NOT_SUPPORTED, "input", "strides", "compact");
  int64_t padded[] = {2 * C * P, P, 1};  // every image padded to twice its size
  in = input.dl();
  in->strides = padded;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_NOT_SUPPORTED, "input", "strides", "compact");
  int64_t ttrans[] = {1, N};
  DLTensor* tg = target.dl();
  tg->strides = ttrans;
  EXPECT_REFUSED(compute(input.dl(), tg, nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_NOT_SUPPORTED, "target", "strides", "compact");
  DLTensor* g = grad.dl();
  g->strides = transposed;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_NOT_SUPPORTED, "grad_input", "strides", "compact");
  TestTensor pw({N, P}, f32());
  pw.fill(1.0);
  DLTensor* pwd = pw.dl();
  pwd->strides = ttrans;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pwd, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_NOT_SUPPORTED, "pixel_weight", "strides", "compact");
  untouched.check();
}

TEST_F(ApiTensor, CompactExplicitStridesAreAccepted) {
  const Result ref = reference();
  int64_t is[] = {C * P, P, 1}, ts[] = {P, 1}, os[] = {1};
  DLTensor* in = input.dl();
  in->strides = is;
  DLTensor* tg = target.dl();
  tg->strides = ts;
  DLTensor* g = grad.dl();
  g->strides = is;
  TestTensor out({1}, f32());
  DLTensor* o = out.dl();
  o->strides = os;
  ASSERT_OK(compute(in, tg, nullptr, o, g));
  EXPECT_EQ(ref.loss, out.get(0));
  expect_same(ref.grad, grad.values(), "grad");
}

TEST_F(ApiTensor, StrideOfAnExtentOneAxisIsIgnored) {
  // (N, C, 1, P) with any stride on the extent-1 axis, and a (1,) loss_out with stride 7.
  const Result ref = reference();
  int64_t ishape[] = {N, C, 1, P}, istr[] = {C * P, P, 99, 1};
  int64_t tshape[] = {N, 1, P}, tstr[] = {P, -5, 1};
  DLTensor* in = input.dl();
  in->ndim = 4;
  in->shape = ishape;
  in->strides = istr;
  DLTensor* tg = target.dl();
  tg->ndim = 3;
  tg->shape = tshape;
  tg->strides = tstr;
  DLTensor* g = grad.dl();
  g->ndim = 4;
  g->shape = ishape;
  g->strides = istr;
  TestTensor out({1}, f32());
  int64_t ostr[] = {7};
  DLTensor* o = out.dl();
  o->strides = ostr;
  ASSERT_OK(compute(in, tg, nullptr, o, g));
  EXPECT_EQ(ref.loss, out.get(0));
  expect_same(ref.grad, grad.values(), "grad");
}

TEST_F(ApiTensor, MisalignedByteOffsetIsRefused) {
  std::vector<float> buf(N * C * P + 2);
  DLTensor* in = input.dl();
  in->data = buf.data();
  in->byte_offset = 1;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "input", "byte_offset", "aligned", "4-byte");
  std::vector<int64_t> tbuf(N * P + 1);
  DLTensor* tg = target.dl();
  tg->data = tbuf.data();
  tg->byte_offset = 4;
  EXPECT_REFUSED(compute(input.dl(), tg, nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "target", "byte_offset", "8-byte");
  std::vector<float> gbuf(N * C * P + 2, 9.0f);
  untouched.watch(gbuf, "misaligned grad buffer");
  DLTensor* g = grad.dl();
  g->data = gbuf.data();
  g->byte_offset = 2;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "byte_offset");
  // A misaligned data pointer is the same refusal.
  std::vector<uint8_t> raw(sizeof(float) * 3);
  DLTensor* o = loss_out.dl();
  o->data = raw.data() + ((reinterpret_cast<uintptr_t>(raw.data()) % 4 == 0) ? 1 : 0);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, o, grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss_out", "aligned");
  untouched.check();
}

TEST_F(ApiTensor, AlignedByteOffsetIsHonoured) {
  const Result ref = reference();
  // Every tensor lives behind a prefix of poison that the call must neither read nor write.
  const int64_t ni = N * C * P, nt = N * P;
  std::vector<float> ibuf(4 + ni, kNaN), gbuf(4 + ni, 5.0f), obuf(3, 5.0f), wbuf(2 + nt, -1.0f);
  std::vector<int64_t> tbuf(1 + nt, 99);
  for (int64_t i = 0; i < ni; ++i) ibuf[4 + i] = static_cast<float>(input.get(i));
  for (int64_t i = 0; i < nt; ++i) tbuf[1 + i] = target.get_int(i);
  for (int64_t i = 0; i < nt; ++i) wbuf[2 + i] = 1.0f;
  DLTensor* in = input.dl();
  in->data = ibuf.data();
  in->byte_offset = 16;
  DLTensor* tg = target.dl();
  tg->data = tbuf.data();
  tg->byte_offset = 8;
  TestTensor pw({N, P}, f32());
  DLTensor* w = pw.dl();
  w->data = wbuf.data();
  w->byte_offset = 8;
  DLTensor* g = grad.dl();
  g->data = gbuf.data();
  g->byte_offset = 16;
  DLTensor* o = loss_out.dl();
  o->data = obuf.data();
  o->byte_offset = 4;
  ASSERT_OK(compute(in, tg, w, o, g));
  EXPECT_EQ(ref.loss, obuf[1]);
  EXPECT_EQ(5.0f, obuf[0]);
  EXPECT_EQ(5.0f, obuf[2]);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(5.0f, gbuf[k]) << "grad prefix " << k;
  for (int64_t i = 0; i < ni; ++i) EXPECT_EQ(ref.grad[i], gbuf[4 + i]) << i;
}

// ---------------------------------------------------------------------------------------------
// devices

TEST_F(ApiTensor, UnsupportedDeviceTypes) {
  for (DLDeviceType t : {kDLOpenCL, kDLCUDAHost, kDLVulkan, kDLROCM}) {
    SCOPED_TRACE(static_cast<int>(t));
    DLTensor* in = input.dl();
    in->device = DLDevice{t, 0};
    EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), grad.dl()),
                   CULOSS_ERROR_UNSUPPORTED_DEVICE, "input", "device type",
                   std::to_string(static_cast<int>(t)).c_str(), "kDLCPU");
    DLTensor* g = grad.dl();
    g->device = DLDevice{t, 0};
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g),
                   CULOSS_ERROR_UNSUPPORTED_DEVICE, "grad_input", "device type");
    DLTensor* o = loss_out.dl();
    o->device = DLDevice{t, 0};
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, o, grad.dl()),
                   CULOSS_ERROR_UNSUPPORTED_DEVICE, "loss_out", "device type");
  }
  untouched.check();
}

// Whether this culoss was built with CUDA: culoss_workspace_size validates and plans without
// touching memory, and refuses kDLCUDA tensors only in a CPU-only build.
bool library_has_cuda() {
  TestTensor in({2, 3, 4}, f32()), tg({2, 4}, i64());
  DLTensor* a = in.dl();
  a->device = DLDevice{kDLCUDA, 0};
  DLTensor* b = tg.dl();
  b->device = DLDevice{kDLCUDA, 0};
  Loss dice(CULOSS_DICE);
  size_t bytes = 0;
  const culoss_status s = culoss_workspace_size(dice, a, b, &bytes);
  if (s == CULOSS_SUCCESS) return true;
  EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, s) << last_error();
  EXPECT_THAT(last_error(), ::testing::HasSubstr("built without CUDA"));
  return false;
}

TEST_F(ApiTensor, CudaTensorsAreRefusedCleanlyWithoutCuda) {
  // Every tensor of the call on CUDA (loss_out may stay on the host). The host pointers are
  // never dereferenced: a CPU-only build refuses the device, a CUDA build fails to select it
  // (no device at all, or no device 9999) — a clean status either way, never a crash.
  const bool has_cuda = library_has_cuda();
  const int device_id = has_cuda ? 9999 : 0;
  DLTensor* in = input.dl();
  in->device = DLDevice{kDLCUDA, device_id};
  DLTensor* tg = target.dl();
  tg->device = DLDevice{kDLCUDA, device_id};
  DLTensor* g = grad.dl();
  g->device = DLDevice{kDLCUDA, device_id};
  const culoss_status s = compute(in, tg, nullptr, loss_out.dl(), g);
  const std::string msg = last_error();
  if (!has_cuda) {
    EXPECT_EQ(CULOSS_ERROR_UNSUPPORTED_DEVICE, s) << msg;
    EXPECT_THAT(msg, ::testing::HasSubstr("input"));
    EXPECT_THAT(msg, ::testing::HasSubstr("built without CUDA"));
  } else {
    EXPECT_TRUE(s == CULOSS_ERROR_UNSUPPORTED_DEVICE || s == CULOSS_ERROR_CUDA)
        << culoss_status_string(s) << ": " << msg;
    EXPECT_FALSE(msg.empty());
  }
  untouched.check();
}

TEST_F(ApiTensor, MixedDevicesAreRefused) {
  // CUDA target with a CPU input (in a CPU-only build the CUDA tensor itself is refused).
  DLTensor* tg = target.dl();
  tg->device = DLDevice{kDLCUDA, 0};
  EXPECT_REFUSED(compute(input.dl(), tg, nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DEVICE, "target", "CUDA");
  TestTensor pw({N, P}, f32());
  pw.fill(1.0);
  DLTensor* w = pw.dl();
  w->device = DLDevice{kDLCUDA, 0};
  EXPECT_REFUSED(compute(input.dl(), target.dl(), w, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DEVICE, "pixel_weight", "CUDA");
  DLTensor* g = grad.dl();
  g->device = DLDevice{kDLCUDA, 0};
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_UNSUPPORTED_DEVICE, "grad_input", "CUDA");
  DLTensor* o = loss_out.dl();
  o->device = DLDevice{kDLCUDA, 0};
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, o, grad.dl()),
                 CULOSS_ERROR_UNSUPPORTED_DEVICE, "loss_out", "CUDA");
  untouched.check();
}

// ---------------------------------------------------------------------------------------------
// overlapping outputs

TEST_F(ApiTensor, GradOverlappingInputIsRefused) {
  const int64_t ni = N * C * P;
  std::vector<float> buf(2 * ni);
  for (int64_t i = 0; i < ni; ++i) buf[i] = static_cast<float>(input.get(i));
  untouched.watch(buf, "shared buffer");
  DLTensor* in = input.dl();
  in->data = buf.data();
  TestTensor gview({N, C, P}, f32());
  // one element further into the same buffer
  DLTensor* g = gview.dl();
  g->data = buf.data() + 1;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "overlaps input");
  // the same data pointer with a different byte_offset is not the same buffer either
  g = gview.dl();
  g->data = buf.data();
  g->byte_offset = 8;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "overlaps input");
  // grad starting before the input and ending inside it
  DLTensor* in2 = input.dl();
  in2->data = buf.data() + 1;
  g = gview.dl();
  g->data = buf.data();
  EXPECT_REFUSED(compute(in2, target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "overlaps input");
  untouched.check();
}

TEST_F(ApiTensor, AdjacentBuffersDoNotOverlap) {
  const Result ref = reference();
  const int64_t ni = N * C * P;
  std::vector<float> buf(2 * ni + 1, 0.0f);
  for (int64_t i = 0; i < ni; ++i) buf[i] = static_cast<float>(input.get(i));
  DLTensor* in = input.dl();
  in->data = buf.data();
  DLTensor* g = grad.dl();
  g->data = buf.data() + ni;  // starts right where the input ends
  DLTensor* o = loss_out.dl();
  o->data = buf.data() + 2 * ni;
  ASSERT_OK(compute(in, target.dl(), nullptr, o, g));
  EXPECT_EQ(ref.loss, buf[2 * ni]);
  for (int64_t i = 0; i < ni; ++i) EXPECT_EQ(ref.grad[i], buf[ni + i]) << i;
}

TEST_F(ApiTensor, GradInPlaceIsAccepted) {
  const Result ref = reference();
  TestTensor inout = input;  // the gradient overwrites these logits
  ASSERT_OK(compute(inout.dl(), target.dl(), nullptr, loss_out.dl(), inout.dl()));
  EXPECT_EQ(ref.loss, loss_out.get(0));
  expect_same(ref.grad, inout.values(), "in-place grad");
  // the same buffer through byte_offset on both views is the same buffer as well
  TestTensor inout2 = input;
  std::vector<float> buf(2 + N * C * P, 3.0f);
  for (int64_t i = 0; i < N * C * P; ++i) buf[2 + i] = static_cast<float>(input.get(i));
  DLTensor* in = inout2.dl();
  in->data = buf.data();
  in->byte_offset = 8;
  DLTensor g = *in;
  TestTensor out({}, f32());
  ASSERT_OK(compute(in, target.dl(), nullptr, out.dl(), &g));
  EXPECT_EQ(ref.loss, out.get(0));
  for (int64_t i = 0; i < N * C * P; ++i) EXPECT_EQ(ref.grad[i], buf[2 + i]) << i;
  EXPECT_EQ(3.0f, buf[0]);
  EXPECT_EQ(3.0f, buf[1]);
}

TEST_F(ApiTensor, GradInPlaceForEveryDtype) {
  for (DLDataType d : {f32(), f64(), f16(), bf16()}) {
    SCOPED_TRACE(static_cast<int>(d.bits) * 10 + d.code);
    TestTensor in({N, C, P}, d), g({N, C, P}, d), out_a({}, f64()), out_b({}, f64());
    fill_logits(in);
    ASSERT_OK(compute(in.dl(), target.dl(), nullptr, out_a.dl(), g.dl()));
    TestTensor inout = in;
    ASSERT_OK(compute(inout.dl(), target.dl(), nullptr, out_b.dl(), inout.dl()));
    EXPECT_EQ(out_a.get(0), out_b.get(0));
    EXPECT_TRUE(g.bytes == inout.bytes) << "in-place gradient differs from the out-of-place one";
  }
}

TEST_F(ApiTensor, GradSamePointerDifferentDtypeIsRefused) {
  TestTensor in64({N, C, P}, f64());
  fill_logits(in64);
  untouched.watch(in64, "float64 input");
  DLTensor* in = in64.dl();
  TestTensor gv({N, C, P}, f32());
  DLTensor* g = gv.dl();
  g->data = in64.data();  // float32 view over the float64 logits
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "overlaps input", "dtype");
  untouched.check();
}

TEST_F(ApiTensor, LossOutInsideInputIsRefused) {
  const int64_t ni = N * C * P;
  std::vector<float> buf(ni);
  for (int64_t i = 0; i < ni; ++i) buf[i] = static_cast<float>(input.get(i));
  untouched.watch(buf, "input buffer");
  DLTensor* in = input.dl();
  in->data = buf.data();
  DLTensor* o = loss_out.dl();
  o->data = buf.data() + 5;
  EXPECT_REFUSED(compute(in, target.dl(), nullptr, o, grad.dl()), CULOSS_ERROR_INVALID_ARGUMENT,
                 "loss_out", "overlaps input");
  untouched.check();
}

TEST_F(ApiTensor, OutputsOverlappingTargetOrPixelWeightAreRefused) {
  TestTensor dense({N, C, P}, f32());
  for (int64_t i = 0; i < dense.numel(); ++i) dense.set(i, i % 2);
  untouched.watch(dense, "dense target");
  TestTensor gv({N, C, P}, f32());
  DLTensor* g = gv.dl();
  g->data = dense.data();
  EXPECT_REFUSED(compute(input.dl(), dense.dl(), nullptr, loss_out.dl(), g),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "overlaps target");

  // pixel_weight inside the gradient's buffer
  std::vector<float> buf(N * C * P, 1.0f);
  untouched.watch(buf, "shared grad/weight buffer");
  TestTensor pw({N, P}, f32());
  DLTensor* w = pw.dl();
  w->data = buf.data() + 16;
  DLTensor* g2 = grad.dl();
  g2->data = buf.data();
  EXPECT_REFUSED(compute(input.dl(), target.dl(), w, loss_out.dl(), g2),
                 CULOSS_ERROR_INVALID_ARGUMENT, "grad_input", "overlaps pixel_weight");

  // loss_out on the target, on the weight, on the gradient
  DLTensor* o = loss_out.dl();
  o->data = target.data();
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, o, grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss_out", "overlaps target");
  TestTensor pw2({N, P}, f32());
  pw2.fill(1.0);
  untouched.watch(pw2, "pixel_weight");
  o = loss_out.dl();
  o->data = static_cast<float*>(pw2.data()) + 3;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw2.dl(), o, grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss_out", "overlaps pixel_weight");
  o = loss_out.dl();
  o->data = static_cast<float*>(grad.data()) + 7;
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, o, grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "loss_out", "overlaps grad_input");
  untouched.check();
}

// ---------------------------------------------------------------------------------------------
// scalars, class weights, workspace

TEST_F(ApiTensor, NonFiniteGradScaleIsRefused) {
  for (double s : {kNaN, kInf, -kInf}) {
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl(), s),
                   CULOSS_ERROR_INVALID_ARGUMENT, "grad_scale", "finite");
    EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), nullptr, s),
                   CULOSS_ERROR_INVALID_ARGUMENT, "grad_scale", "finite");
  }
  untouched.check();
}

TEST_F(ApiTensor, ClassWeightCountMustBeC) {
  const double w2[] = {1.0, 2.0}, w4[] = {1.0, 2.0, 3.0, 4.0};
  ASSERT_OK(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, w2, 2));
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_CLASS_WEIGHTS", "2 values", "C = 3");
  ASSERT_OK(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, w4, 4));
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_CLASS_WEIGHTS", "4 values", "C = 3");
  untouched.check();
  const double w3[] = {1.0, 1.0, 1.0};
  ASSERT_OK(culoss_loss_set_floats(dice, CULOSS_PARAM_CLASS_WEIGHTS, w3, 3));
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()));
}

TEST_F(ApiTensor, WorkspaceTooSmall) {
  size_t need = 0;
  ASSERT_OK(culoss_workspace_size(dice, input.dl(), target.dl(), &need));
  ASSERT_GT(need, 0u);
  std::vector<uint8_t> ws(need, 0xab);
  untouched.watch(ws, "workspace");  // nothing is carved before the size check
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl(), 1.0,
                         ws.data(), need - 1),
                 CULOSS_ERROR_INSUFFICIENT_WORKSPACE, "workspace", std::to_string(need - 1).c_str(),
                 std::to_string(need).c_str());
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl(), 1.0,
                         ws.data(), 0),
                 CULOSS_ERROR_INSUFFICIENT_WORKSPACE, "workspace");
  untouched.check();
}

TEST_F(ApiTensor, WorkspaceOfTheReportedSizeIsEnough) {
  const Result ref = reference();
  size_t need = 0;
  ASSERT_OK(culoss_workspace_size(dice, input.dl(), target.dl(), &need));
  // Any base alignment works with exactly the reported bytes (the size includes the slack).
  std::vector<uint8_t> ws(need + 256);
  for (size_t shift : {size_t(0), size_t(1), size_t(8), size_t(255)}) {
    SCOPED_TRACE(shift);
    TestTensor out({}, f32()), g({N, C, P}, f32());
    ASSERT_OK(compute(input.dl(), target.dl(), nullptr, out.dl(), g.dl(), 1.0, ws.data() + shift,
                      need));
    EXPECT_EQ(ref.loss, out.get(0));
    expect_same(ref.grad, g.values(), "grad");
  }
  // NULL workspace with a byte count: the library allocates.
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl(), 1.0, nullptr, 1));
}

TEST_F(ApiTensor, WorkspaceSizeNeedsABytesPointer) {
  EXPECT_REFUSED(culoss_workspace_size(dice, input.dl(), target.dl(), nullptr),
                 CULOSS_ERROR_INVALID_ARGUMENT, "bytes", "NULL");
}

TEST_F(ApiTensor, WorkspaceSizeValidatesTensors) {
  size_t bytes = 4242;
  TestTensor bad({N, P + 1}, i64());
  EXPECT_REFUSED(culoss_workspace_size(dice, input.dl(), bad.dl(), &bytes),
                 CULOSS_ERROR_SHAPE_MISMATCH, "target");
  DLTensor* in = input.dl();
  in->dtype = i32();
  EXPECT_REFUSED(culoss_workspace_size(dice, in, target.dl(), &bytes),
                 CULOSS_ERROR_UNSUPPORTED_DTYPE, "input");
  EXPECT_EQ(4242u, bytes);
}

// ---------------------------------------------------------------------------------------------
// CHECK_TARGETS

TEST_F(ApiTensor, CheckTargetsRefusesAnOutOfRangeLabel) {
  target.set(5, 7);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[5]", "7", "[0, 3)", "IGNORE_INDEX");
  target.set(5, -1);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[5]", "-1", "[0, 3)");
  target.set(5, 3);  // C itself
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[5]", "3", "[0, 3)");
  TestTensor t8({N, P}, u8());
  for (int64_t i = 0; i < N * P; ++i) t8.set(i, target.get(i));
  t8.set(2, 255);
  t8.set(5, 0);
  EXPECT_REFUSED(compute(input.dl(), t8.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[2]", "255");
  untouched.check();
}

TEST_F(ApiTensor, CheckTargetsNamesTheFirstBadElement) {
  target.set(3, 9);
  target.set(6, 8);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[3]", "9");
  untouched.check();
}

TEST_F(ApiTensor, CheckTargetsRefusesBadDenseValues) {
  TestTensor dense({N, C, P}, f32());
  for (int64_t i = 0; i < dense.numel(); ++i) dense.set(i, (i % 3) * 0.5);
  dense.set(4, 1.5);
  EXPECT_REFUSED(compute(input.dl(), dense.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[4]", "1.5", "[0, 1]");
  dense.set(4, 0.0);
  dense.set(9, kNaN);
  EXPECT_REFUSED(compute(input.dl(), dense.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[9]", "nan", "[0, 1]");
  dense.set(9, -0.25);
  EXPECT_REFUSED(compute(input.dl(), dense.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[9]", "-0.25");
  TestTensor d8({N, C, P}, u8());
  for (int64_t i = 0; i < d8.numel(); ++i) d8.set(i, i % 2);
  d8.set(11, 2);
  EXPECT_REFUSED(compute(input.dl(), d8.dl(), nullptr, loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[11]", "2", "[0, 1]");
  untouched.check();
}

TEST_F(ApiTensor, CheckTargetsRefusesABadBinaryMaskLabel) {
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  TestTensor in({N, 1, P}, f32()), mask({N, P}, i32()), g({N, 1, P}, f32());
  fill_logits(in);
  for (int64_t i = 0; i < N * P; ++i) mask.set(i, i % 2);
  mask.set(6, 2);
  g.fill(kSentinel);
  Untouched u;
  u.watch(g, "grad");
  EXPECT_REFUSED(compute(in.dl(), mask.dl(), nullptr, loss_out.dl(), g.dl()),
                 CULOSS_ERROR_INVALID_TARGET, "target[6]", "2", "binary mask");
  u.check();
  untouched.check();
}

TEST_F(ApiTensor, CheckTargetsRefusesABadPixelWeight) {
  TestTensor pw({N, P}, f32());
  pw.fill(1.0);
  pw.set(3, -1.0);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw.dl(), loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "pixel_weight[3]", "-1", ">= 0");
  pw.set(3, 1.0);
  pw.set(6, kNaN);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw.dl(), loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "pixel_weight[6]", "finite");
  pw.set(6, kInf);
  EXPECT_REFUSED(compute(input.dl(), target.dl(), pw.dl(), loss_out.dl(), grad.dl()),
                 CULOSS_ERROR_INVALID_ARGUMENT, "pixel_weight[6]", "finite");
  untouched.check();
}

TEST_F(ApiTensor, IgnoreIndexIsAValidLabel) {
  target.set(1, -100);
  EXPECT_OK(compute(input.dl(), target.dl(), nullptr, loss_out.dl(), grad.dl()));
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_IGNORE_INDEX, 255));
  TestTensor t8({N, P}, u8());
  for (int64_t i = 0; i < N * P; ++i) t8.set(i, i % 3);
  t8.set(4, 255);
  EXPECT_OK(compute(input.dl(), t8.dl(), nullptr, loss_out.dl(), grad.dl()));
}

// With CHECK_TARGETS=0 an out-of-range label is an ignored pixel: the call equals the one with
// that label replaced by IGNORE_INDEX, bit for bit.
TEST_F(ApiTensor, UncheckedBadLabelsAreIgnored) {
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CHECK_TARGETS, 0));
  for (int64_t bad : {int64_t(7), int64_t(3), int64_t(-1), int64_t(-101), INT64_MAX, INT64_MIN}) {
    SCOPED_TRACE(bad);
    TestTensor with_bad = target, with_ignore = target;
    with_bad.set(5, static_cast<double>(0));
    {  // set exactly (int64 through double would round INT64_MAX)
      std::memcpy(with_bad.bytes.data() + 5 * 8, &bad, 8);
    }
    with_ignore.set(5, -100);
    const Result a = reference(with_bad.dl()), b = reference(with_ignore.dl());
    EXPECT_EQ(b.loss, a.loss);
    expect_same(b.grad, a.grad, "grad");
  }
  // uint8 labels beyond C
  TestTensor t8({N, P}, u8()), t8i({N, P}, i64());
  for (int64_t i = 0; i < N * P; ++i) {
    t8.set(i, target.get(i));
    t8i.set(i, target.get(i));
  }
  t8.set(2, 200);
  t8i.set(2, -100);
  const Result a = reference(t8.dl()), b = reference(t8i.dl());
  EXPECT_EQ(b.loss, a.loss);
  expect_same(b.grad, a.grad, "grad");
}

TEST_F(ApiTensor, UncheckedBadBinaryMaskLabelsAreIgnored) {
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SIGMOID));
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CHECK_TARGETS, 0));
  TestTensor in({N, 1, P}, f32()), bad({N, P}, i32()), ign({N, P}, i32());
  fill_logits(in);
  for (int64_t i = 0; i < N * P; ++i) {
    bad.set(i, i % 2);
    ign.set(i, i % 2);
  }
  bad.set(6, 2);
  ign.set(6, -100);
  TestTensor oa({}, f64()), ob({}, f64()), ga({N, 1, P}, f32()), gb({N, 1, P}, f32());
  ASSERT_OK(compute(in.dl(), bad.dl(), nullptr, oa.dl(), ga.dl()));
  ASSERT_OK(compute(in.dl(), ign.dl(), nullptr, ob.dl(), gb.dl()));
  EXPECT_EQ(ob.get(0), oa.get(0));
  expect_same(gb.values(), ga.values(), "grad");
}

TEST_F(ApiTensor, UncheckedBadDenseValuesAndWeightsAreAccepted) {
  ASSERT_OK(culoss_loss_set_int(dice, CULOSS_PARAM_CHECK_TARGETS, 0));
  TestTensor dense({N, C, P}, f32());
  for (int64_t i = 0; i < dense.numel(); ++i) dense.set(i, (i % 3) * 0.5);
  dense.set(4, 1.5);
  EXPECT_OK(compute(input.dl(), dense.dl(), nullptr, loss_out.dl(), grad.dl()));
  EXPECT_TRUE(std::isfinite(loss_out.get(0)));
  TestTensor d8({N, C, P}, u8());
  d8.set(11, 2);
  EXPECT_OK(compute(input.dl(), d8.dl(), nullptr, loss_out.dl(), grad.dl()));
  TestTensor pw({N, P}, f32());
  pw.fill(1.0);
  pw.set(3, -1.0);
  EXPECT_OK(compute(input.dl(), target.dl(), pw.dl(), loss_out.dl(), grad.dl()));
}

// ---------------------------------------------------------------------------------------------
// C = 1 (docs/reference.md): SOFTMAX over a class axis of extent 1 is refused by every kind
// (also inside a CULOSS_SUM); with any other activation, index labels are a binary mask: 0
// background, 1 foreground, IGNORE_INDEX ignored, anything else an invalid target.

const char* kind_name(culoss_kind k) {
  switch (k) {
    case CULOSS_DICE:
      return "CULOSS_DICE";
    case CULOSS_JACCARD:
      return "CULOSS_JACCARD";
    case CULOSS_TVERSKY:
      return "CULOSS_TVERSKY";
    case CULOSS_FOCAL_TVERSKY:
      return "CULOSS_FOCAL_TVERSKY";
    case CULOSS_GENERALIZED_DICE:
      return "CULOSS_GENERALIZED_DICE";
    case CULOSS_BCE:
      return "CULOSS_BCE";
    case CULOSS_CROSS_ENTROPY:
      return "CULOSS_CROSS_ENTROPY";
    case CULOSS_FOCAL:
      return "CULOSS_FOCAL";
    case CULOSS_COMBO:
      return "CULOSS_COMBO";
    case CULOSS_MARGINAL_CE:
      return "CULOSS_MARGINAL_CE";
    case CULOSS_LOVASZ_HINGE:
      return "CULOSS_LOVASZ_HINGE";
    case CULOSS_LOVASZ_SOFTMAX:
      return "CULOSS_LOVASZ_SOFTMAX";
    case CULOSS_SUM:
      return "CULOSS_SUM";
    case CULOSS_MCC:
      return "CULOSS_MCC";
    case CULOSS_TOPK_CE:
      return "CULOSS_TOPK_CE";
    case CULOSS_HAUSDORFF_DT:
      return "CULOSS_HAUSDORFF_DT";
    case CULOSS_BOUNDARY:
      return "CULOSS_BOUNDARY";
    case CULOSS_CLDICE:
      return "CULOSS_CLDICE";
  }
  return "?";
}

// The kinds that take CULOSS_ACTIVATION_SOFTMAX (BCE, COMBO and LOVASZ_HINGE do not).
const culoss_kind kSoftmaxKinds[] = {
    CULOSS_DICE,          CULOSS_JACCARD,          CULOSS_TVERSKY,
    CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE, CULOSS_CROSS_ENTROPY,
    CULOSS_FOCAL,         CULOSS_MARGINAL_CE,      CULOSS_LOVASZ_SOFTMAX};
const culoss_kind kRegionKinds[] = {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY,
                                    CULOSS_FOCAL_TVERSKY, CULOSS_GENERALIZED_DICE};

bool takes_sigmoid(culoss_kind k) {
  return k != CULOSS_CROSS_ENTROPY && k != CULOSS_MARGINAL_CE && k != CULOSS_LOVASZ_SOFTMAX;
}

// Probabilities in (0, 1), deterministic.
void fill_probabilities(TestTensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    t.set(i, 0.5 + 0.45 * std::sin(1.3 * static_cast<double>(i) + 0.2));
}

// A one-class call with a softmax term: refused with INVALID_ARGUMENT naming `kind` (the kind that
// takes the softmax), the constant loss and CULOSS_ACTIVATION_SIGMOID; no output is written, and
// culoss_workspace_size refuses it too.
void expect_one_class_softmax_refused(culoss_loss loss, const char* kind, TestTensor& in,
                                      TestTensor& tg) {
  TestTensor out({}, f64()), g(in.shape, f32());
  out.fill(kSentinel);
  g.fill(kSentinel);
  Untouched u;
  u.watch(in, "input");
  u.watch(tg, "target");
  u.watch(out, "loss_out");
  u.watch(g, "grad_input");
  EXPECT_REFUSED(
      culoss_compute(loss, in.dl(), tg.dl(), nullptr, out.dl(), g.dl(), 1.0, nullptr, 0, nullptr),
      CULOSS_ERROR_INVALID_ARGUMENT, kind, "CULOSS_ACTIVATION_SOFTMAX", "extent 1", "constant",
      "zero", "CULOSS_ACTIVATION_SIGMOID", "CULOSS_ACTIVATION_NONE");
  u.check();
  size_t bytes = 4242;
  EXPECT_REFUSED(culoss_workspace_size(loss, in.dl(), tg.dl(), &bytes),
                 CULOSS_ERROR_INVALID_ARGUMENT, kind, "CULOSS_ACTIVATION_SIGMOID");
  EXPECT_EQ(4242u, bytes);
  // The statistics API (data-parallel training) validates the same way.
  int64_t count = -7;
  EXPECT_REFUSED(culoss_stats_size(loss, in.dl(), tg.dl(), &count), CULOSS_ERROR_INVALID_ARGUMENT,
                 kind, "CULOSS_ACTIVATION_SIGMOID");
  EXPECT_EQ(-7, count);
  u.check();
}

// Input (n, 1, P) (or (n, P, 1) channels-last) and a 0/1 target: labels (n, P) or dense.
struct OneClassTensors {
  TestTensor in, tg;
  OneClassTensors(int64_t n, int64_t P, bool channels_last, bool index, bool probabilities) {
    in = TestTensor(channels_last ? std::vector<int64_t>{n, P, 1} : std::vector<int64_t>{n, 1, P},
                    f32());
    if (probabilities)
      fill_probabilities(in);
    else
      fill_logits(in);
    tg = index ? TestTensor({n, P}, i64()) : TestTensor(in.shape, f32());
    for (int64_t i = 0; i < tg.numel(); ++i) tg.set(i, (i % 3) == 1 ? 1.0 : 0.0);
  }
};

TEST(ApiOneClass, SoftmaxIsRefusedByEveryKind) {
  for (culoss_kind k : kSoftmaxKinds)
    for (bool channels_last : {false, true})
      for (int64_t n : {int64_t(2), int64_t(0)})
        for (bool index : {true, false})
          for (bool set_explicitly : {true, false}) {
            if (!set_explicitly && k == CULOSS_FOCAL) continue;  // FOCAL's default is SIGMOID
            SCOPED_TRACE(std::string(kind_name(k)) + (channels_last ? " channels-last" : " NCL") +
                         " N=" + std::to_string(n) + (index ? " labels" : " dense") +
                         (set_explicitly ? " SOFTMAX set" : " default activation"));
            Loss loss(k);
            if (set_explicitly)
              ASSERT_OK(
                  culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_SOFTMAX));
            if (channels_last) ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_CLASS_AXIS, -1));
            OneClassTensors t(n, 4, channels_last, index, false);
            expect_one_class_softmax_refused(loss, kind_name(k), t.in, t.tg);
            // The message names the input and its (resolved) class axis.
            const std::string where =
                channels_last ? "class axis 2 of input (" + std::to_string(n) + ", 4, 1)"
                              : "class axis 1 of input (" + std::to_string(n) + ", 1, 4)";
            EXPECT_THAT(last_error(), ::testing::HasSubstr(where));
            // What the message advises works: SIGMOID where the kind takes it, else probabilities.
            const bool sigmoid = takes_sigmoid(k);
            ASSERT_OK(
                culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION,
                                    sigmoid ? CULOSS_ACTIVATION_SIGMOID : CULOSS_ACTIVATION_NONE));
            OneClassTensors ok(n, 4, channels_last, index, !sigmoid);
            TestTensor out({}, f64()), g(ok.in.shape, f32());
            EXPECT_OK(culoss_compute(loss, ok.in.dl(), ok.tg.dl(), nullptr, out.dl(), g.dl(), 1.0,
                                     nullptr, 0, nullptr));
            EXPECT_TRUE(std::isfinite(out.get(0)));
          }
}

// Kinds that do not take SIGMOID are pointed to their binary counterparts.
TEST(ApiOneClass, RefusalOfAKindWithoutSigmoidNamesTheBinaryKinds) {
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE, CULOSS_LOVASZ_SOFTMAX}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    OneClassTensors t(2, 4, false, true, false);
    expect_one_class_softmax_refused(loss, kind_name(k), t.in, t.tg);
    EXPECT_THAT(last_error(),
                ::testing::HasSubstr(k == CULOSS_LOVASZ_SOFTMAX
                                         ? "use its binary counterpart CULOSS_LOVASZ_HINGE"
                                         : "use its binary counterpart CULOSS_BCE"));
  }
  for (culoss_kind k : kRegionKinds) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    OneClassTensors t(2, 4, false, true, false);
    expect_one_class_softmax_refused(loss, kind_name(k), t.in, t.tg);
    EXPECT_THAT(last_error(), ::testing::HasSubstr("CULOSS_PARAM_ACTIVATION"));
  }
}

// A CULOSS_SUM with one softmax term is refused the same way, naming that term's kind (the first
// softmax term when there are several).
TEST(ApiOneClass, SumWithASoftmaxTermIsRefused) {
  struct Term {
    culoss_kind kind;
    int activation;
  };
  struct Case {
    std::vector<Term> terms;
    culoss_kind named;
  };
  const int S = CULOSS_ACTIVATION_SOFTMAX, G = CULOSS_ACTIVATION_SIGMOID,
            Z = CULOSS_ACTIVATION_NONE;
  const Case cases[] = {
      {{{CULOSS_BCE, G}, {CULOSS_DICE, S}}, CULOSS_DICE},
      {{{CULOSS_DICE, G}, {CULOSS_CROSS_ENTROPY, S}}, CULOSS_CROSS_ENTROPY},
      {{{CULOSS_FOCAL, G}, {CULOSS_MARGINAL_CE, S}}, CULOSS_MARGINAL_CE},
      {{{CULOSS_COMBO, G}, {CULOSS_FOCAL, S}}, CULOSS_FOCAL},
      {{{CULOSS_CROSS_ENTROPY, Z}, {CULOSS_GENERALIZED_DICE, S}, {CULOSS_BCE, G}},
       CULOSS_GENERALIZED_DICE},
      {{{CULOSS_JACCARD, G}, {CULOSS_TVERSKY, S}, {CULOSS_FOCAL_TVERSKY, S}}, CULOSS_TVERSKY},
  };
  for (const Case& c : cases)
    for (bool channels_last : {false, true})
      for (int64_t n : {int64_t(2), int64_t(0)})
        for (bool index : {true, false}) {
          SCOPED_TRACE(std::string("SUM naming ") + kind_name(c.named) +
                       (channels_last ? " channels-last" : " NCL") + " N=" + std::to_string(n) +
                       (index ? " labels" : " dense"));
          Loss sum(CULOSS_SUM);
          for (const Term& term : c.terms) {
            Loss t(term.kind);
            ASSERT_OK(culoss_loss_set_int(t, CULOSS_PARAM_ACTIVATION, term.activation));
            if (channels_last) ASSERT_OK(culoss_loss_set_int(t, CULOSS_PARAM_CLASS_AXIS, -1));
            ASSERT_OK(culoss_loss_add_term(sum, t, 0.5));
          }
          OneClassTensors t(n, 4, channels_last, index, false);
          expect_one_class_softmax_refused(sum, kind_name(c.named), t.in, t.tg);
          // Without the softmax terms (each on SIGMOID or probabilities) the SUM is accepted.
          Loss fixed(CULOSS_SUM);
          bool all_sigmoid = true;
          for (const Term& term : c.terms)
            all_sigmoid = all_sigmoid && (term.activation == G ||
                                          (term.activation == S && takes_sigmoid(term.kind)));
          for (const Term& term : c.terms) {
            Loss t2(term.kind);
            const int act = term.activation != S ? term.activation : (all_sigmoid ? G : Z);
            ASSERT_OK(culoss_loss_set_int(t2, CULOSS_PARAM_ACTIVATION, act));
            if (channels_last) ASSERT_OK(culoss_loss_set_int(t2, CULOSS_PARAM_CLASS_AXIS, -1));
            ASSERT_OK(culoss_loss_add_term(fixed, t2, 0.5));
          }
          OneClassTensors ok(n, 4, channels_last, index, !all_sigmoid);
          TestTensor out({}, f64()), g(ok.in.shape, f32());
          EXPECT_OK(culoss_compute(fixed, ok.in.dl(), ok.tg.dl(), nullptr, out.dl(), g.dl(), 1.0,
                                   nullptr, 0, nullptr));
          EXPECT_TRUE(std::isfinite(out.get(0)));
        }
}

// Runs `loss` on the CPU and returns (loss values, float32 gradient); the call must succeed.
struct Outputs {
  std::vector<double> loss, grad;
};
Outputs run_one_class(culoss_loss loss, TestTensor& in, TestTensor& tg, TestTensor* pw,
                      std::vector<int64_t> out_shape) {
  TestTensor out(std::move(out_shape), f64()), g(in.shape, f32());
  out.poison();
  g.poison();
  const culoss_status s = culoss_compute(loss, in.dl(), tg.dl(), pw ? pw->dl() : nullptr, out.dl(),
                                         g.dl(), 1.0, nullptr, 0, nullptr);
  EXPECT_EQ(CULOSS_SUCCESS, s) << last_error();
  return Outputs{out.values(), g.values()};
}

void expect_close(const std::vector<double>& want, const std::vector<double>& got, double rel,
                  const char* what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << " [" << i << "]";
    EXPECT_NEAR(want[i], got[i], rel * (1.0 + std::fabs(want[i]))) << what << " [" << i << "]";
  }
}

// C = 1, ACTIVATION_NONE, labels {0, 1, IGNORE_INDEX}: the region kinds equal the same loss on the
// dense 0/1 target with pixel_weight 0 on the ignored pixels (values and gradients), for every
// reduction and label dtype.
TEST(ApiOneClass, RegionKindsReadLabelsAsABinaryMaskWithActivationNone) {
  const int64_t N = 3, H = 3, W = 4, P = H * W;
  const DLDataType label_dtypes[] = {i64(), i32(), u8()};
  for (culoss_kind k : kRegionKinds)
    for (DLDataType ld : label_dtypes)
      for (int red : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM, CULOSS_REDUCTION_NONE}) {
        SCOPED_TRACE(std::string(kind_name(k)) + " label bits " + std::to_string(ld.bits) +
                     " reduction " + std::to_string(red));
        const int64_t ignore = ld.bits == 8 ? 255 : (ld.bits == 32 ? -1 : -100);
        Loss loss(k);
        ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
        ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, red));
        ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_IGNORE_INDEX, ignore));
        TestTensor in({N, 1, H, W}, f32()), labels({N, H, W}, ld), dense({N, 1, H, W}, f32()),
            pw({N, H, W}, f32());
        fill_probabilities(in);
        for (int64_t i = 0; i < N * P; ++i) {
          // image 0: mixed; image 1: mixed with ignored pixels; image 2: background only.
          const int64_t n = i / P, q = i % P;
          int64_t lab = n == 2 ? 0 : (q % 3 == 1 || q == 0 ? 1 : 0);
          if (n == 1 && q % 4 == 2) lab = ignore;
          labels.set(i, static_cast<double>(lab));
          dense.set(i, lab == 1 ? 1.0 : 0.0);
          pw.set(i, lab == ignore ? 0.0 : 1.0);
        }
        std::vector<int64_t> out_shape;
        if (red == CULOSS_REDUCTION_NONE)
          out_shape =
              k == CULOSS_GENERALIZED_DICE ? std::vector<int64_t>{N} : std::vector<int64_t>{N, 1};
        const Outputs a = run_one_class(loss, in, labels, nullptr, out_shape);
        const Outputs b = run_one_class(loss, in, dense, &pw, out_shape);
        expect_close(b.loss, a.loss, 1e-9, "loss");
        expect_close(b.grad, a.grad, 1e-6, "grad");
      }
}

// C = 1 labels {0, 1} equal the dense 0/1 target for every other kind and activation that takes
// one class: SIGMOID (region kinds, BCE, FOCAL, COMBO), NONE (every kind that takes it) and the
// Lovász hinge.
TEST(ApiOneClass, EveryKindReadsLabelsAsABinaryMask) {
  // to 1e-12: both calls on the generic passes (the fast path takes dense targets only)
  const culoss_test::GenericCpuPasses generic_passes;
  struct Case {
    culoss_kind kind;
    int activation;  // -1: leave it (LOVASZ_HINGE has none)
  };
  std::vector<Case> cases;
  for (culoss_kind k : {CULOSS_DICE, CULOSS_JACCARD, CULOSS_TVERSKY, CULOSS_FOCAL_TVERSKY,
                        CULOSS_GENERALIZED_DICE, CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO}) {
    cases.push_back({k, CULOSS_ACTIVATION_SIGMOID});
    cases.push_back({k, CULOSS_ACTIVATION_NONE});
  }
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE, CULOSS_LOVASZ_SOFTMAX})
    cases.push_back({k, CULOSS_ACTIVATION_NONE});
  cases.push_back({CULOSS_LOVASZ_HINGE, -1});
  const int64_t N = 2, P = 6;
  for (const Case& c : cases)
    for (int red : {CULOSS_REDUCTION_MEAN, CULOSS_REDUCTION_SUM}) {
      if (c.kind == CULOSS_COMBO && red != CULOSS_REDUCTION_MEAN) continue;
      SCOPED_TRACE(std::string(kind_name(c.kind)) + " activation " + std::to_string(c.activation) +
                   " reduction " + std::to_string(red));
      Loss loss(c.kind);
      if (c.activation >= 0)
        ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, c.activation));
      ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_REDUCTION, red));
      TestTensor in({N, 1, P}, f32()), labels({N, P}, u8()), dense({N, 1, P}, u8());
      if (c.activation == CULOSS_ACTIVATION_NONE)
        fill_probabilities(in);
      else
        fill_logits(in);
      const int bits[N * P] = {1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0};
      for (int64_t i = 0; i < N * P; ++i) {
        labels.set(i, bits[i]);
        dense.set(i, bits[i]);
      }
      const Outputs a = run_one_class(loss, in, labels, nullptr, {});
      const Outputs b = run_one_class(loss, in, dense, nullptr, {});
      expect_close(b.loss, a.loss, 1e-12, "loss");
      expect_close(b.grad, a.grad, 1e-7, "grad");
    }
}

// With C = 1 any label other than 0, 1 and IGNORE_INDEX is an invalid target ("binary mask"), for
// every activation; with CHECK_TARGETS = 0 it counts as ignored (bit for bit).
TEST(ApiOneClass, LabelOutsideTheMaskIsAnInvalidTarget) {
  struct Case {
    culoss_kind kind;
    int activation;
  };
  std::vector<Case> cases;
  for (culoss_kind k : kRegionKinds) {
    cases.push_back({k, CULOSS_ACTIVATION_NONE});
    cases.push_back({k, CULOSS_ACTIVATION_SIGMOID});
  }
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE, CULOSS_LOVASZ_SOFTMAX})
    cases.push_back({k, CULOSS_ACTIVATION_NONE});
  for (culoss_kind k : {CULOSS_BCE, CULOSS_FOCAL, CULOSS_COMBO})
    cases.push_back({k, CULOSS_ACTIVATION_SIGMOID});
  cases.push_back({CULOSS_LOVASZ_HINGE, -1});
  const int64_t N = 2, P = 4;
  for (const Case& c : cases)
    for (int64_t bad : {int64_t(2), int64_t(-1), int64_t(7)}) {
      SCOPED_TRACE(std::string(kind_name(c.kind)) + " activation " + std::to_string(c.activation) +
                   " label " + std::to_string(bad));
      Loss loss(c.kind);
      if (c.activation >= 0)
        ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, c.activation));
      TestTensor in({N, 1, P}, f32()), labels({N, P}, i64()), out({}, f64()), g({N, 1, P}, f32());
      if (c.activation == CULOSS_ACTIVATION_NONE)
        fill_probabilities(in);
      else
        fill_logits(in);
      for (int64_t i = 0; i < N * P; ++i) labels.set(i, i % 2);
      labels.set(5, static_cast<double>(bad));
      out.fill(kSentinel);
      g.fill(kSentinel);
      Untouched u;
      u.watch(out, "loss_out");
      u.watch(g, "grad_input");
      EXPECT_REFUSED(culoss_compute(loss, in.dl(), labels.dl(), nullptr, out.dl(), g.dl(), 1.0,
                                    nullptr, 0, nullptr),
                     CULOSS_ERROR_INVALID_TARGET, "target[5]", std::to_string(bad), "binary mask");
      u.check();
      // Unchecked: the same as IGNORE_INDEX there.
      ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_CHECK_TARGETS, 0));
      TestTensor ignored = labels;
      ignored.set(5, -100);
      const Outputs a = run_one_class(loss, in, labels, nullptr, {});
      const Outputs b = run_one_class(loss, in, ignored, nullptr, {});
      EXPECT_EQ(b.loss, a.loss);
      EXPECT_EQ(b.grad, a.grad);
    }
}

// All-background labels are an empty foreground, not "every pixel is class 0": with C = 1 and
// probabilities p, per image Dice = 1 − s / (Σ p + s) (I = 0, ST = 0), Jaccard the same, and
// CROSS_ENTROPY has no foreground term at all (MEAN over no foreground: 0).
TEST(ApiOneClass, AllBackgroundLabelsAreAnEmptyForeground) {
  const int64_t N = 2, P = 5;
  TestTensor in({N, 1, P}, f64()), labels({N, P}, i64());
  fill_probabilities(in);
  labels.fill(0);
  const double s = 1.0;
  std::vector<double> sp(N, 0.0);
  for (int64_t i = 0; i < N * P; ++i) sp[static_cast<size_t>(i / P)] += in.get(i);
  for (culoss_kind k : {CULOSS_DICE, CULOSS_JACCARD}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
    ASSERT_OK(culoss_loss_set_float(loss, CULOSS_PARAM_SMOOTH_NR, s));
    ASSERT_OK(culoss_loss_set_float(loss, CULOSS_PARAM_SMOOTH_DR, s));
    const Outputs r = run_one_class(loss, in, labels, nullptr, {});
    ASSERT_EQ(1u, r.loss.size());
    double want = 0;
    for (double v : sp) want += (1.0 - s / (v + s)) / N;  // MEAN over the N images
    EXPECT_NEAR(want, r.loss[0], 1e-12);
    for (int64_t i = 0; i < N * P; ++i) {  // ∂/∂p = s / (Σp + s)² / N: push every p down
      const double v = sp[static_cast<size_t>(i / P)];
      EXPECT_NEAR(s / ((v + s) * (v + s)) / N, r.grad[static_cast<size_t>(i)], 1e-6) << i;
    }
  }
  for (culoss_kind k : {CULOSS_CROSS_ENTROPY, CULOSS_MARGINAL_CE}) {
    SCOPED_TRACE(kind_name(k));
    Loss loss(k);
    ASSERT_OK(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, CULOSS_ACTIVATION_NONE));
    const Outputs r = run_one_class(loss, in, labels, nullptr, {});
    ASSERT_EQ(1u, r.loss.size());
    EXPECT_EQ(0.0, r.loss[0]);
    for (double g : r.grad) EXPECT_EQ(0.0, g);
  }
}

}  // namespace

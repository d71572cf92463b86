// Tensor validation. Every refusal names the tensor and what was expected (docs/reference.md).
#include "core/tensor.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.hpp"

namespace culoss {

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

namespace {

enum DTypeSet : unsigned {
  kFloats = 1u << 0,  // f32 f64 f16 bf16
  kU8 = 1u << 1,
  kIndex = 1u << 2,  // u8 i32 i64
  kF32 = 1u << 3,
  kF64 = 1u << 4,
};

bool to_dtype(DLDataType d, DType* out) {
  if (d.lanes != 1) return false;
  if (d.code == kDLFloat && d.bits == 32)
    *out = DType::F32;
  else if (d.code == kDLFloat && d.bits == 64)
    *out = DType::F64;
  else if (d.code == kDLFloat && d.bits == 16)
    *out = DType::F16;
  else if (d.code == kDLBfloat && d.bits == 16)
    *out = DType::BF16;
  else if (d.code == kDLUInt && d.bits == 8)
    *out = DType::U8;
  else if (d.code == kDLInt && d.bits == 32)
    *out = DType::I32;
  else if (d.code == kDLInt && d.bits == 64)
    *out = DType::I64;
  else
    return false;
  return true;
}

bool is_float(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}

std::string dtype_string(DLDataType d) {
  std::ostringstream os;
  switch (d.code) {
    case kDLFloat:
      os << "float";
      break;
    case kDLBfloat:
      os << "bfloat";
      break;
    case kDLInt:
      os << "int";
      break;
    case kDLUInt:
      os << "uint";
      break;
    default:
      os << "code" << int(d.code) << "_";
      break;
  }
  os << int(d.bits);
  if (d.lanes != 1) os << "x" << d.lanes;
  return os.str();
}

bool dtype_in(DType t, unsigned set) {
  return ((set & kFloats) && is_float(t)) || ((set & kU8) && t == DType::U8) ||
         ((set & kIndex) && (t == DType::U8 || t == DType::I32 || t == DType::I64)) ||
         ((set & kF32) && t == DType::F32) || ((set & kF64) && t == DType::F64);
}

// Structure of one tensor: pointer, shape, dtype in `allowed`, compact strides, alignment,
// device. Shape agreement with other tensors is checked by the caller.
TensorRef parse(const char* name, const DLTensor* t, unsigned allowed, const char* allowed_text) {
  TensorRef r;
  if (!t) fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " is NULL");
  if (t->ndim < 0 || t->ndim > 64)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " has ndim ", t->ndim, "; expected 0 to 64");
  if (t->ndim > 0 && !t->shape) fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " has a NULL shape");
  r.shape.assign(t->shape, t->shape + t->ndim);
  int64_t numel = 1;
  for (int i = 0; i < t->ndim; ++i) {
    const int64_t d = t->shape[i];
    if (d < 0)
      fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " has a negative extent ", d, " on axis ", i);
    if (d != 0 && numel > (int64_t(1) << 62) / d)
      fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " ", shape_string(r.shape),
           " has more than 2^62 elements");
    numel *= d;
  }
  r.numel = numel;
  if (!to_dtype(t->dtype, &r.dtype) || !dtype_in(r.dtype, allowed))
    fail(CULOSS_ERROR_UNSUPPORTED_DTYPE, name, " has dtype ", dtype_string(t->dtype), "; expected ",
         allowed_text);
  if (t->strides && numel > 0) {  // compact row-major only; extents of 1 may carry any stride
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; --i) {
      if (t->shape[i] != 1 && t->strides[i] != expected)
        fail(CULOSS_ERROR_NOT_SUPPORTED, name, " has strides that are not compact row-major (axis ",
             i, " has stride ", t->strides[i], ", expected ", expected,
             "); pass a contiguous tensor");
      expected *= t->shape[i];
    }
  }
  // A C caller may store any int in the enum field: read its bytes, not an enum value that
  // DLDeviceType may not be able to hold.
  int32_t device_type = 0;
  static_assert(sizeof(t->device.device_type) == sizeof(device_type), "DLDeviceType is 32-bit");
  std::memcpy(&device_type, &t->device.device_type, sizeof(device_type));
  if (device_type != kDLCPU && device_type != kDLCUDA)
    fail(CULOSS_ERROR_UNSUPPORTED_DEVICE, name, " is on DLPack device type ", device_type,
         "; expected kDLCPU (1) or kDLCUDA (2)");
  if (device_type == kDLCUDA && !cuda_backend_built())
    fail(CULOSS_ERROR_UNSUPPORTED_DEVICE, name,
         " is a CUDA tensor but this culoss was built without CUDA");
  r.device = t->device;
  if (!t->data && numel > 0) fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " has NULL data");
  // NULL + byte_offset is undefined even for an empty tensor: an empty tensor's data stays NULL.
  r.data = t->data ? static_cast<char*>(t->data) + t->byte_offset : nullptr;
  // Alignment of the address data + byte_offset would have, also for NULL data (computed on
  // integers: forming the pointer would be undefined).
  if ((reinterpret_cast<uintptr_t>(t->data) + t->byte_offset) % dtype_bytes(r.dtype) != 0)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, name, " data + byte_offset is not aligned to its ",
         dtype_bytes(r.dtype), "-byte elements");
  r.present = true;
  return r;
}

// Product of shape[begin, end): 0 when an extent is 0 (whatever the others), -1 when the
// product of non-zero extents passes 2^62 (possible only for empty tensors).
int64_t extent_product(const std::vector<int64_t>& shape, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i)
    if (shape[i] == 0) return 0;
  int64_t product = 1;
  for (int64_t i = begin; i < end; ++i) {
    if (product > (int64_t(1) << 62) / shape[i]) return -1;
    product *= shape[i];
  }
  return product;
}

bool same_device(const DLDevice& a, const DLDevice& b) {
  return a.device_type == b.device_type && (a.device_type == kDLCPU || a.device_id == b.device_id);
}

std::string device_string(const DLDevice& d) {
  std::ostringstream os;
  if (d.device_type == kDLCPU)
    os << "the CPU";
  else
    os << "CUDA device " << d.device_id;
  return os.str();
}

void require_same_device(const char* name, const TensorRef& t, const TensorRef& input) {
  if (!same_device(t.device, input.device))
    fail(CULOSS_ERROR_UNSUPPORTED_DEVICE, name, " is on ", device_string(t.device),
         " but input is on ", device_string(input.device),
         "; all tensors of a call share a device");
}

bool overlaps(const TensorRef& a, const TensorRef& b) {
  if (!a.present || !b.present || a.bytes() == 0 || b.bytes() == 0) return false;
  if (!same_device(a.device, b.device)) return false;
  const char* a0 = static_cast<const char*>(a.data);
  const char* b0 = static_cast<const char*>(b.data);
  return a0 < b0 + b.bytes() && b0 < a0 + a.bytes();
}

}  // namespace

int64_t resolve_class_axis(int64_t class_axis, int64_t ndim, const std::string& input) {
  const int64_t axis = class_axis < 0 ? class_axis + ndim : class_axis;
  if (axis < 1 || axis >= ndim)
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "CULOSS_PARAM_CLASS_AXIS ", class_axis,
         " does not name a class axis of ", input, "; expected an axis in [1, ", ndim,
         ") (axis 0 is the batch)");
  return axis;
}

Call validate_call(const culoss_loss_s& loss, const DLTensor* input, const DLTensor* target,
                   const DLTensor* pixel_weight, DLTensor* grad_input, double grad_scale) {
  Call call;
  call.loss = &loss;
  call.input = parse("input", input, kFloats, "float32, float64, float16 or bfloat16");
  const std::vector<int64_t>& ishape = call.input.shape;
  const int64_t ndim = static_cast<int64_t>(ishape.size());
  const CallParams cp = resolve_call_params(loss, ndim);
  call.ignore_index = cp.ignore_index;
  call.check_targets = cp.check_targets;
  if (ndim < 2)
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "input ", shape_string(ishape),
         " needs at least 2 dimensions (N, C, ...)");
  const int64_t axis = resolve_class_axis(cp.class_axis, ndim, "input " + shape_string(ishape));
  Layout& L = call.layout;
  L.N = ishape[0];
  L.C = ishape[axis];
  L.pre = extent_product(ishape, 1, axis);
  L.inner = extent_product(ishape, axis + 1, ndim);
  if (L.pre < 0 || L.inner < 0 || (L.inner > 0 && L.pre > (int64_t(1) << 62) / L.inner))
    fail(CULOSS_ERROR_NOT_SUPPORTED, "input ", shape_string(ishape),
         " has more than 2^62 pixels per image");  // only an empty batch (N = 0) gets here
  L.P = L.pre * L.inner;
  if (L.C == 0)
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "input ", shape_string(ishape), " has 0 classes on axis ",
         axis);
  // Per-(image, class) statistics, coefficients and sort segments are sized N x C x slots: keep
  // every such product far from int64 overflow (an empty tensor may declare any N and C).
  constexpr int64_t kMaxPairs = int64_t(1) << 40;
  if (L.N > kMaxPairs || L.C > kMaxPairs || (L.N > 0 && L.C > kMaxPairs / L.N))
    fail(CULOSS_ERROR_NOT_SUPPORTED, "input ", shape_string(ishape), " has N x C = ", L.N, " x ",
         L.C, " (image, class) pairs; culoss supports up to 2^40");
  std::vector<int64_t> pixel_shape = ishape;
  pixel_shape.erase(pixel_shape.begin() + axis);
  call.backend = call.input.device.device_type == kDLCUDA ? Backend::CUDA : Backend::CPU;
  call.device_id = call.input.device.device_id;
  if (L.C == 1 && cp.softmax_kind != 0)
    fail(CULOSS_ERROR_INVALID_ARGUMENT, kind_name(cp.softmax_kind),
         " takes CULOSS_ACTIVATION_SOFTMAX over the class axis ", axis, " of input ",
         shape_string(ishape),
         ", which has extent 1: the softmax of a single class is 1, so the loss would be "
         "constant and its gradient zero. A one-channel (binary) model needs "
         "CULOSS_ACTIVATION_SIGMOID",
         accepts_sigmoid(cp.softmax_kind)
             ? ": set CULOSS_PARAM_ACTIVATION to it (or to CULOSS_ACTIVATION_NONE for "
               "probabilities)"
             : std::string(", which ") + kind_name(cp.softmax_kind) +
                   " does not take: use its binary counterpart " +
                   (cp.softmax_kind == CULOSS_LOVASZ_SOFTMAX ? "CULOSS_LOVASZ_HINGE (on logits)"
                                                             : "CULOSS_BCE") +
                   ", or CULOSS_ACTIVATION_NONE for probabilities");

  // target: dense (input's shape) or class indices (input's shape without the class axis).
  // The shape says which; it is checked before the dtype, so that a target of the wrong form
  // (e.g. labels with a singleton class axis) is told what shape it needs.
  if (!target) fail(CULOSS_ERROR_INVALID_ARGUMENT, "target is NULL");
  std::vector<int64_t> singleton_axis = ishape;  // labels that kept a class axis of extent 1
  singleton_axis[axis] = 1;
  call.target = parse("target", target, kFloats | kIndex,
                      "float32, float64, float16, bfloat16 or uint8 (dense) or uint8, int32 or "
                      "int64 (class indices)");
  const std::vector<int64_t>& tshape = call.target.shape;
  const bool squeezable = tshape == singleton_axis;
  // Message parts, built only on the way to a refusal.
  const auto squeeze_hint = [&] {
    return squeezable ? " (squeeze its axis " + std::to_string(axis) + " of extent 1)"
                      : std::string();
  };
  if (target->ndim == ndim && tshape == ishape) {
    if (!dtype_in(call.target.dtype, kFloats | kU8))
      fail(CULOSS_ERROR_UNSUPPORTED_DTYPE, "target ", shape_string(tshape),
           " has the input's shape, so it is a dense target, which needs dtype float32, float64, "
           "float16, bfloat16 or uint8 (values in [0, 1]); got ",
           dtype_string(target->dtype), ". Class indices have the input's shape without the class ",
           "axis, ", shape_string(pixel_shape), squeeze_hint());
  } else if (target->ndim == ndim - 1 && tshape == pixel_shape) {
    if (!dtype_in(call.target.dtype, kIndex))
      fail(CULOSS_ERROR_UNSUPPORTED_DTYPE, "target ", shape_string(tshape),
           " has the input's shape without the class axis, so it holds class indices, which "
           "need dtype uint8, int32 or int64; got ",
           dtype_string(target->dtype), ". A dense target (probabilities) has the input's shape ",
           shape_string(ishape));
    call.index_target = true;
  } else if (squeezable) {
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "target ", shape_string(tshape), " does not match input ",
         shape_string(ishape), ": it has a class axis of extent 1 where the input has ", L.C,
         " classes. Class indices have the input's shape without the class axis, ",
         shape_string(pixel_shape), squeeze_hint(), "; a dense target has the input's shape ",
         shape_string(ishape));
  } else {
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "target ", shape_string(tshape), " does not match input ",
         shape_string(ishape), "; a dense target has the input's shape ", shape_string(ishape),
         ", class indices the input's shape without the class axis ", shape_string(pixel_shape));
  }
  require_same_device("target", call.target, call.input);
  if (call.index_target && L.C == 1) {
    // One class: the labels are a binary mask (0 background, 1 foreground) whatever the
    // activation (SOFTMAX is refused above).
    call.binary_mask = true;
  } else if (call.index_target && cp.binary) {
    if (cp.class_index)
      fail(CULOSS_ERROR_INVALID_ARGUMENT,
           "this CULOSS_SUM mixes binary (sigmoid-style) and class-index (softmax-style) terms; "
           "with class-index targets they would read the labels differently: pass a dense target");
    fail(CULOSS_ERROR_INVALID_ARGUMENT,
         "class-index targets with SIGMOID (or another binary loss: BCE, COMBO, sigmoid FOCAL) "
         "need C = 1 (a binary mask); input has C = ",
         L.C, ": pass a dense (one-hot) target");
  }

  if (pixel_weight) {
    call.pixel_weight = parse("pixel_weight", pixel_weight, kF32, "float32");
    if (call.pixel_weight.shape != pixel_shape)
      fail(CULOSS_ERROR_SHAPE_MISMATCH, "pixel_weight ", shape_string(call.pixel_weight.shape),
           " does not match input ", shape_string(ishape), "; expected ",
           shape_string(pixel_shape));
    require_same_device("pixel_weight", call.pixel_weight, call.input);
  }

  if (grad_input) {
    call.grad = parse("grad_input", grad_input, kFloats, "the input's dtype or float32");
    if (call.grad.dtype != call.input.dtype && call.grad.dtype != DType::F32)
      fail(CULOSS_ERROR_UNSUPPORTED_DTYPE, "grad_input has dtype ", dtype_string(grad_input->dtype),
           "; expected ",
           call.input.dtype == DType::F32
               ? std::string("float32 (the input's dtype)")
               : "the input's dtype " + dtype_string(input->dtype) + " or float32");
    if (call.grad.shape != ishape)
      fail(CULOSS_ERROR_SHAPE_MISMATCH, "grad_input ", shape_string(call.grad.shape),
           " does not match input ", shape_string(ishape));
    require_same_device("grad_input", call.grad, call.input);
    call.in_place = call.grad.data == call.input.data && call.grad.dtype == call.input.dtype;
    if (!call.in_place && overlaps(call.grad, call.input))
      fail(CULOSS_ERROR_INVALID_ARGUMENT,
           "grad_input overlaps input without being the very same "
           "buffer (same data, byte_offset and dtype)");
    if (overlaps(call.grad, call.target))
      fail(CULOSS_ERROR_INVALID_ARGUMENT, "grad_input overlaps target");
    if (overlaps(call.grad, call.pixel_weight))
      fail(CULOSS_ERROR_INVALID_ARGUMENT, "grad_input overlaps pixel_weight");
  }

  if (!std::isfinite(grad_scale))
    fail(CULOSS_ERROR_INVALID_ARGUMENT, "grad_scale must be finite; got ", grad_scale);
  call.grad_scale = grad_scale;
  call.class_axis = axis;
  call.pixel_shape = pixel_shape;
  return call;
}

TensorRef validate_stats(const Call& call, const DLTensor* stats, int64_t count, bool output) {
  TensorRef r = parse("stats", stats, kF64, "float64");
  if (r.shape != std::vector<int64_t>{count})
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "stats ", shape_string(r.shape),
         " has the wrong shape; "
         "expected (",
         count, ",) (culoss_stats_size)");
  require_same_device("stats", r, call.input);
  const char* names[] = {"input", "target", "pixel_weight", "grad_input", "loss_out"};
  const TensorRef* refs[] = {&call.input, &call.target, &call.pixel_weight, &call.grad,
                             &call.loss_out};
  for (int i = 0; i < 5; ++i) {
    const bool conflict = output || i >= 3;  // an output may not overlap anything; outputs not it
    if (conflict && overlaps(r, *refs[i]))
      fail(CULOSS_ERROR_INVALID_ARGUMENT, "stats overlaps ", names[i]);
  }
  return r;
}

void validate_loss_out(Call& call, const DLTensor* loss_out, const std::vector<int64_t>& shape) {
  call.loss_out = parse("loss_out", loss_out, kF32 | kF64, "float32 or float64");
  const TensorRef& o = call.loss_out;
  const bool scalar_ok = shape.empty() && (o.shape.empty() || o.shape == std::vector<int64_t>{1});
  if (!scalar_ok && o.shape != shape)
    fail(CULOSS_ERROR_SHAPE_MISMATCH, "loss_out ", shape_string(o.shape),
         " has the wrong shape; "
         "expected ",
         shape.empty() ? std::string("one element (ndim 0 or (1,))") : shape_string(shape),
         " for this reduction");
  if (o.device.device_type == kDLCPU) {
    call.loss_out_on_host = call.backend == Backend::CUDA;
  } else {
    require_same_device("loss_out", o, call.input);
  }
  const char* inputs[] = {"input", "target", "pixel_weight"};
  const TensorRef* refs[] = {&call.input, &call.target, &call.pixel_weight};
  for (int i = 0; i < 3; ++i)
    if (overlaps(o, *refs[i])) fail(CULOSS_ERROR_INVALID_ARGUMENT, "loss_out overlaps ", inputs[i]);
  if (overlaps(o, call.grad)) fail(CULOSS_ERROR_INVALID_ARGUMENT, "loss_out overlaps grad_input");
}

}  // namespace culoss

namespace culoss {

void fail_invalid_target(const Call& call, int64_t element, const void* raw) {
  if (call.index_target) {
    const long long label = load_label(raw, call.target.dtype, 0);  // exact, as an integer
    if (call.binary_mask)
      fail(CULOSS_ERROR_INVALID_TARGET, "target[", element, "] = ", label,
           " is not a binary mask value (0 or 1) or IGNORE_INDEX ", call.ignore_index);
    fail(CULOSS_ERROR_INVALID_TARGET, "target[", element, "] = ", label,
         " is not a class index in [0, ", call.layout.C, ") or IGNORE_INDEX ", call.ignore_index);
  }
  fail(CULOSS_ERROR_INVALID_TARGET, "target[", element,
       "] = ", load_as<double>(raw, call.target.dtype, 0),
       " is outside [0, 1] (dense targets hold probabilities)");
}

void fail_invalid_pixel_weight(int64_t element, double value) {
  fail(CULOSS_ERROR_INVALID_ARGUMENT, "pixel_weight[", element, "] = ", value,
       " must be finite and >= 0");
}

}  // namespace culoss

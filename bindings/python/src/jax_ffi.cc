// XLA FFI handlers behind culoss.jax: culoss_compute as a custom call inside a JAX computation.
//
// Built into culoss/libculoss_jax.so against the FFI headers that jaxlib ships
// (jax.ffi.include_dir()); it links libculoss through the public C API only, so the library
// itself never depends on XLA. culoss/jax.py loads this file with ctypes and registers its
// handler symbols with jax.ffi.register_ffi_target.
//
// Operands: input, target[, pixel_weight]. Results: the loss value, the workspace (uint8, at
// least culoss_workspace_size() bytes, sized by culoss/jax.py when it traces the call)[, the
// gradient]. Every buffer, the workspace included, is allocated by XLA; on CUDA the call runs on
// XLA's stream and neither allocates nor synchronises (unless CHECK_TARGETS=1), so it can be
// captured in a CUDA graph.
//
// The loss descriptor travels in two attributes, `spec_ints` (int64) and `spec_floats` (float64),
// written by culoss/jax.py (_encode):
//
//   spec_ints   = [kSpecFormat, n_terms, sum_check_targets,         (-1: a single loss)
//                  per term: kind, n_int, n_float,
//                            n_int x (param, value), n_float x (param, count)]
//   spec_floats = per term: weight, then the values of its float parameters in order
//                 (count -1: one value, set with culoss_loss_set_float; count >= 1: that many,
//                 set with culoss_loss_set_floats)
//
// The handler builds a culoss_loss from them the first time it sees a spec and keeps it for the
// life of the process (one per distinct loss; a descriptor may be shared by concurrent calls).
// kSpecFormat changes whenever this layout does, so that a module lowered (or exported) by
// another version of culoss.jax is refused with a message rather than misread.
#include <culoss/culoss.h>
#include <dlpack/dlpack.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kSpecFormat = 1;  // culoss/jax.py: _SPEC_FORMAT

ffi::ErrorCode error_code(culoss_status status) {
  switch (status) {
    case CULOSS_ERROR_OUT_OF_MEMORY:
      return ffi::ErrorCode::kResourceExhausted;
    case CULOSS_ERROR_NOT_SUPPORTED:
      return ffi::ErrorCode::kUnimplemented;
    case CULOSS_ERROR_CUDA:
    case CULOSS_ERROR_INTERNAL:
      return ffi::ErrorCode::kInternal;
    default:
      return ffi::ErrorCode::kInvalidArgument;
  }
}

// "CULOSS_ERROR_INVALID_TARGET in culoss_compute: <culoss_last_error()>": the status name and
// the library's sentence naming the offending tensor, as the Python exceptions word it.
ffi::Error culoss_error(culoss_status status, const char* function) {
  return ffi::Error(error_code(status), std::string(culoss_status_string(status)) + " in " +
                                            function + ": " + culoss_last_error());
}

ffi::Error spec_error(const char* what) {
  return ffi::Error::InvalidArgument(std::string("culoss: malformed loss spec attributes (") +
                                     what + "); rebuild the call with culoss.jax");
}

// Reads the spec attributes in order; every read is bounds-checked.
class SpecReader {
 public:
  SpecReader(ffi::Span<const int64_t> ints, ffi::Span<const double> floats)
      : ints_(ints), floats_(floats) {}
  bool next_int(int64_t* out) {
    if (i_ >= ints_.size()) return false;
    *out = ints_[i_++];
    return true;
  }
  const double* take_floats(int64_t count) {
    if (count < 0 || static_cast<size_t>(count) > floats_.size() - f_) return nullptr;
    const double* p = floats_.begin() + f_;
    f_ += static_cast<size_t>(count);
    return p;
  }
  bool done() const { return i_ == ints_.size() && f_ == floats_.size(); }

 private:
  ffi::Span<const int64_t> ints_;
  ffi::Span<const double> floats_;
  size_t i_ = 0, f_ = 0;
};

// Owns a descriptor until it is handed over.
struct Owned {
  culoss_loss loss = nullptr;
  ~Owned() { culoss_loss_destroy(loss); }
  culoss_loss release() {
    culoss_loss l = loss;
    loss = nullptr;
    return l;
  }
};

// One term: kind, its int and float parameters. Its weight is read first (into *weight).
ffi::Error build_term(SpecReader& r, Owned* term, double* weight) {
  int64_t kind = 0, n_int = 0, n_float = 0;
  const double* w = r.take_floats(1);
  if (!w || !r.next_int(&kind) || !r.next_int(&n_int) || !r.next_int(&n_float) || n_int < 0 ||
      n_float < 0)
    return spec_error("term header");
  *weight = *w;
  culoss_status s = culoss_loss_create(&term->loss, static_cast<culoss_kind>(kind));
  if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_create");
  for (int64_t k = 0; k < n_int; ++k) {
    int64_t param = 0, value = 0;
    if (!r.next_int(&param) || !r.next_int(&value)) return spec_error("int parameter");
    s = culoss_loss_set_int(term->loss, static_cast<culoss_param>(param), value);
    if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_set_int");
  }
  for (int64_t k = 0; k < n_float; ++k) {
    int64_t param = 0, count = 0;
    if (!r.next_int(&param) || !r.next_int(&count)) return spec_error("float parameter");
    const double* values = r.take_floats(count < 0 ? 1 : count);
    if (!values || count == 0 || count < -1) return spec_error("float values");
    if (count < 0) {
      s = culoss_loss_set_float(term->loss, static_cast<culoss_param>(param), *values);
      if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_set_float");
    } else {
      s = culoss_loss_set_floats(term->loss, static_cast<culoss_param>(param), values, count);
      if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_set_floats");
    }
  }
  return ffi::Error::Success();
}

ffi::Error build_descriptor(ffi::Span<const int64_t> ints, ffi::Span<const double> floats,
                            Owned* out) {
  SpecReader r(ints, floats);
  int64_t format = 0, n_terms = 0, sum_check = 0;
  if (!r.next_int(&format) || format != kSpecFormat)
    return ffi::Error::InvalidArgument(
        "culoss: this custom call was made by another version of culoss.jax (loss spec format " +
        std::to_string(format) + "; this handler reads " + std::to_string(kSpecFormat) +
        "); lower it again with the installed culoss");
  if (!r.next_int(&n_terms) || !r.next_int(&sum_check) || n_terms < 1 ||
      (sum_check < 0 && n_terms != 1))
    return spec_error("header");
  if (sum_check < 0) {  // a single loss
    double weight = 0;
    if (ffi::Error e = build_term(r, out, &weight); e.failure()) return e;
  } else {
    culoss_status s = culoss_loss_create(&out->loss, CULOSS_SUM);
    if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_create");
    for (int64_t k = 0; k < n_terms; ++k) {
      Owned term;
      double weight = 0;
      if (ffi::Error e = build_term(r, &term, &weight); e.failure()) return e;
      s = culoss_loss_add_term(out->loss, term.loss, weight);  // copies the term
      if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_add_term");
    }
    s = culoss_loss_set_int(out->loss, CULOSS_PARAM_CHECK_TARGETS, sum_check);
    if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_loss_set_int");
  }
  if (!r.done()) return spec_error("trailing values");
  return ffi::Error::Success();
}

// The descriptor for a spec: built on first use, then shared (never destroyed: XLA may run a
// compiled call until the process exits).
ffi::Error descriptor_for(ffi::Span<const int64_t> ints, ffi::Span<const double> floats,
                          culoss_loss* out) {
  static std::mutex mutex;
  static std::unordered_map<std::string, culoss_loss> cache;
  std::string key(reinterpret_cast<const char*>(ints.begin()), ints.size() * sizeof(int64_t));
  key.append(reinterpret_cast<const char*>(floats.begin()), floats.size() * sizeof(double));
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) {
    Owned built;
    if (ffi::Error e = build_descriptor(ints, floats, &built); e.failure()) return e;
    it = cache.emplace(std::move(key), built.release()).first;
  }
  *out = it->second;
  return ffi::Error::Success();
}

// The XLA element types culoss reads. A boolean mask is one byte of 0/1: culoss reads it as
// uint8. Any other type becomes an opaque one, which culoss refuses with a message naming the
// tensor (culoss/jax.py has refused it already when the call was traced).
struct DTypePair {
  ffi::DataType xla;
  DLDataType dl;
};
constexpr DTypePair kDTypes[] = {
    {ffi::DataType::F32, {kDLFloat, 32, 1}}, {ffi::DataType::F64, {kDLFloat, 64, 1}},
    {ffi::DataType::F16, {kDLFloat, 16, 1}}, {ffi::DataType::BF16, {kDLBfloat, 16, 1}},
    {ffi::DataType::S32, {kDLInt, 32, 1}},   {ffi::DataType::S64, {kDLInt, 64, 1}},
    {ffi::DataType::U8, {kDLUInt, 8, 1}},    {ffi::DataType::PRED, {kDLUInt, 8, 1}},
};

DLDataType dl_dtype(ffi::DataType t) {
  for (const DTypePair& p : kDTypes)
    if (p.xla == t) return p.dl;
  return {kDLOpaqueHandle, 0, 1};
}

// A DLTensor over an XLA buffer: dense, row-major (the layout ffi_call asks for).
DLTensor dl_tensor(const ffi::AnyBuffer& b, DLDevice device) {
  DLTensor t{};
  t.data = b.untyped_data();
  t.device = device;
  t.ndim = static_cast<int32_t>(b.dimensions().size());
  t.dtype = dl_dtype(b.element_type());
  t.shape = const_cast<int64_t*>(b.dimensions().begin());  // culoss only reads it
  t.strides = nullptr;
  t.byte_offset = 0;
  return t;
}

ffi::Error compute(DLDevice device, void* stream, ffi::AnyBuffer input, ffi::AnyBuffer target,
                   std::optional<ffi::AnyBuffer> pixel_weight, ffi::Result<ffi::AnyBuffer> value,
                   ffi::Result<ffi::AnyBuffer> workspace,
                   std::optional<ffi::Result<ffi::AnyBuffer>> grad,
                   ffi::Span<const int64_t> spec_ints, ffi::Span<const double> spec_floats) {
  culoss_loss loss = nullptr;
  if (ffi::Error e = descriptor_for(spec_ints, spec_floats, &loss); e.failure()) return e;
  DLTensor in = dl_tensor(input, device);
  DLTensor tg = dl_tensor(target, device);
  DLTensor pw{};
  if (pixel_weight) pw = dl_tensor(*pixel_weight, device);
  DLTensor out = dl_tensor(*value, device);
  DLTensor g{};
  if (grad) g = dl_tensor(**grad, device);
  const culoss_status s =
      culoss_compute(loss, &in, &tg, pixel_weight ? &pw : nullptr, &out, grad ? &g : nullptr, 1.0,
                     workspace->untyped_data(), workspace->size_bytes(), stream);
  if (s != CULOSS_SUCCESS) return culoss_error(s, "culoss_compute");
  return ffi::Error::Success();
}

ffi::Error compute_cpu(ffi::AnyBuffer input, ffi::AnyBuffer target,
                       std::optional<ffi::AnyBuffer> pixel_weight,
                       ffi::Result<ffi::AnyBuffer> value, ffi::Result<ffi::AnyBuffer> workspace,
                       std::optional<ffi::Result<ffi::AnyBuffer>> grad,
                       ffi::Span<const int64_t> spec_ints, ffi::Span<const double> spec_floats) {
  return compute(DLDevice{kDLCPU, 0}, nullptr, input, target, pixel_weight, value, workspace, grad,
                 spec_ints, spec_floats);
}

#ifdef CULOSS_JAX_CUDA
ffi::Error compute_cuda(void* stream, int32_t device_ordinal, ffi::AnyBuffer input,
                        ffi::AnyBuffer target, std::optional<ffi::AnyBuffer> pixel_weight,
                        ffi::Result<ffi::AnyBuffer> value, ffi::Result<ffi::AnyBuffer> workspace,
                        std::optional<ffi::Result<ffi::AnyBuffer>> grad,
                        ffi::Span<const int64_t> spec_ints, ffi::Span<const double> spec_floats) {
  return compute(DLDevice{kDLCUDA, device_ordinal}, stream, input, target, pixel_weight, value,
                 workspace, grad, spec_ints, spec_floats);
}
#endif

// Every target: its context, then input, target[, pixel_weight] -> value, workspace[, grad],
// and the spec attributes.
template <typename Binding>
auto bind_operands(Binding binding) {
  return std::move(binding)
      .template Arg<ffi::AnyBuffer>()          // input
      .template Arg<ffi::AnyBuffer>()          // target
      .template OptionalArg<ffi::AnyBuffer>()  // pixel_weight
      .template Ret<ffi::AnyBuffer>()          // value
      .template Ret<ffi::AnyBuffer>()          // workspace
      .template OptionalRet<ffi::AnyBuffer>()  // grad
      .template Attr<ffi::Span<const int64_t>>("spec_ints")
      .template Attr<ffi::Span<const double>>("spec_floats");
}

}  // namespace

#define CULOSS_JAX_EXPORT extern "C" __attribute__((visibility("default")))

CULOSS_JAX_EXPORT XLA_FFI_Error* culoss_jax_compute_cpu(XLA_FFI_CallFrame* call_frame);
XLA_FFI_DEFINE_HANDLER_SYMBOL(culoss_jax_compute_cpu, compute_cpu, bind_operands(ffi::Ffi::Bind()));

#ifdef CULOSS_JAX_CUDA
// On XLA's CUDA stream. Two symbols: the second carries the command-buffer (CUDA graph) trait and
// is the target of losses with CHECK_TARGETS=0, whose call neither allocates nor synchronises;
// with CHECK_TARGETS=1 culoss waits for the target check, which a graph cannot hold.
CULOSS_JAX_EXPORT XLA_FFI_Error* culoss_jax_compute_cuda(XLA_FFI_CallFrame* call_frame);
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    culoss_jax_compute_cuda, compute_cuda,
    bind_operands(ffi::Ffi::Bind().Ctx<ffi::PlatformStream<void*>>().Ctx<ffi::DeviceOrdinal>()));

CULOSS_JAX_EXPORT XLA_FFI_Error* culoss_jax_compute_cuda_graph(XLA_FFI_CallFrame* call_frame);
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    culoss_jax_compute_cuda_graph, compute_cuda,
    bind_operands(ffi::Ffi::Bind().Ctx<ffi::PlatformStream<void*>>().Ctx<ffi::DeviceOrdinal>()),
    {ffi::Traits::kCmdBufferCompatible});
#endif

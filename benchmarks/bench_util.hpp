// Shared setup of the culoss benchmarks: a synthetic problem (shape, dtypes, target kind,
// ignored pixels), its tensors on the host or on a CUDA device (generated once and reused by the
// benchmarks that follow), the roofline byte counts of benchmarks/README.md (performance targets)
// and the counters.
//
// Plain C++; the CUDA parts use the runtime API only and are compiled with
// CULOSS_BENCH_WITH_CUDA (set by benchmarks/CMakeLists.txt when culoss is built with CUDA).
#pragma once

#include <benchmark/benchmark.h>
#include <culoss/culoss.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#ifdef CULOSS_BENCH_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace culoss_bench {

// ---------------------------------------------------------------------------------------------
// dtypes

enum class Dtype { F32, BF16, F16 };
// Target of a problem: class indices (int64 or uint8, input's shape without the class axis) or
// a dense uint8 mask (input's shape).
enum class Target { I64, U8, MaskU8 };

inline DLDataType dl_dtype(Dtype d) {
  switch (d) {
    case Dtype::BF16:
      return DLDataType{kDLBfloat, 16, 1};
    case Dtype::F16:
      return DLDataType{kDLFloat, 16, 1};
    case Dtype::F32:
      break;
  }
  return DLDataType{kDLFloat, 32, 1};
}
inline int64_t dtype_bytes(Dtype d) { return d == Dtype::F32 ? 4 : 2; }
inline const char* dtype_name(Dtype d) {
  return d == Dtype::F32 ? "f32" : d == Dtype::BF16 ? "bf16" : "f16";
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even (inputs here are finite)
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline uint16_t float_to_f16(float f) {  // IEEE binary16, round to nearest even
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const int32_t biased = static_cast<int32_t>((x >> 23) & 0xffu);
  uint32_t mant = x & 0x7fffffu;
  if (biased == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0u));
  const int32_t e = biased - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {  // subnormal half (or zero)
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry rounds into the exponent
  return static_cast<uint16_t>(h);
}

// ---------------------------------------------------------------------------------------------
// Problems

struct Problem {
  std::vector<int64_t> shape;  // input (N, C, d1, ..., dk), classes on axis 1
  Dtype dtype = Dtype::F32;
  Target target = Target::I64;
  culoss_activation activation = CULOSS_ACTIVATION_SOFTMAX;
  int ignore_percent = 0;  // ignored pixels: IGNORE_INDEX labels, or pixel_weight 0 for masks
  bool geometry = false;   // a problem of the geometry kinds (they run on these only)

  int64_t N() const { return shape[0]; }
  int64_t C() const { return shape[1]; }
  int64_t P() const {  // pixels per image
    int64_t p = 1;
    for (size_t i = 2; i < shape.size(); ++i) p *= shape[i];
    return p;
  }
  int64_t numel() const { return N() * C() * P(); }
  bool index_target() const { return target != Target::MaskU8; }
  bool has_pixel_weight() const { return target == Target::MaskU8 && ignore_percent > 0; }
  int64_t ignore_label() const { return target == Target::U8 ? 255 : -100; }

  std::vector<int64_t> pixel_shape() const {  // input's shape without the class axis
    std::vector<int64_t> s = shape;
    s.erase(s.begin() + 1);
    return s;
  }

  // e.g. "16x4x512x512/f32/i64/softmax/ign5"
  std::string name() const {
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
    s += std::string("/") + dtype_name(dtype);
    s += target == Target::I64 ? "/i64" : target == Target::U8 ? "/u8" : "/mask_u8";
    s += activation == CULOSS_ACTIVATION_SIGMOID   ? "/sigmoid"
         : activation == CULOSS_ACTIVATION_SOFTMAX ? "/softmax"
                                                   : "/probs";
    if (ignore_percent > 0) s += "/ign" + std::to_string(ignore_percent);
    return s;
  }

  // Roofline bytes (benchmarks/README.md (performance targets)): read input + target (+ pixel
  // weight), write grad (input's dtype).
  int64_t input_bytes() const { return numel() * dtype_bytes(dtype); }
  int64_t target_bytes() const {
    if (target == Target::MaskU8) return numel();
    return N() * P() * (target == Target::I64 ? 8 : 1);
  }
  int64_t weight_bytes() const { return has_pixel_weight() ? N() * P() * 4 : 0; }
  int64_t grad_bytes() const { return input_bytes(); }
  int64_t read_bytes() const { return input_bytes() + target_bytes() + weight_bytes(); }
  // One pass: every tensor touched once.
  int64_t one_pass_bytes(bool backward) const {
    return read_bytes() + (backward ? grad_bytes() : 0);
  }
  // Two passes (statistics, then gradient): the inputs are read twice, the gradient written
  // once. Forward only needs the statistics pass, so it equals the one-pass bytes.
  int64_t two_pass_bytes(bool backward) const {
    return backward ? 2 * read_bytes() + grad_bytes() : read_bytes();
  }
};

// ---------------------------------------------------------------------------------------------
// Synthetic data: a counter-based hash, so any element can be generated on its own (in parallel,
// in chunks) and the logits agree with the labels without storing them.

inline uint64_t mix64(uint64_t x) {  // splitmix64 finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Label of pixel q = n * P + p: -1 when ignored; else a class in [0, C), or 0/1 (30% ones) when
// C == 1.
inline int64_t synth_label(const Problem& pr, int64_t q) {
  const uint64_t h = mix64(static_cast<uint64_t>(q) * 2u + 1u);
  if (pr.ignore_percent > 0 && h % 100u < static_cast<uint64_t>(pr.ignore_percent)) return -1;
  const uint64_t r = h >> 20;
  if (pr.C() == 1) return r % 10u < 3u ? 1 : 0;
  return static_cast<int64_t>(r % static_cast<uint64_t>(pr.C()));
}

// Logit of input element e: a "model" that is right most of the time, plus noise in [-1, 1).
inline float synth_logit(const Problem& pr, int64_t e) {
  const int64_t P = pr.P(), C = pr.C();
  const int64_t n = e / (C * P), c = e / P % C, p = e % P;
  const int64_t label = synth_label(pr, n * P + p);
  const float noise = static_cast<float>(mix64(static_cast<uint64_t>(e) * 2u + 0x5bd1e995u) >> 40) *
                          (2.0f / 16777216.0f) -
                      1.0f;
  if (C == 1) return (label == 1 ? 1.5f : label == 0 ? -1.5f : 0.0f) + noise;
  return (label == c ? 2.0f : 0.0f) + noise;
}

// Runs f(begin, end) over [0, count) split across the hardware threads.
template <class F>
void parallel_for(int64_t count, F f) {
  const int64_t threads = std::min<int64_t>(std::max(1u, std::thread::hardware_concurrency()),
                                            std::max<int64_t>(1, count >> 16));
  if (threads <= 1) {
    f(int64_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t step = (count + threads - 1) / threads;
  for (int64_t lo = 0; lo < count; lo += step) pool.emplace_back(f, lo, std::min(count, lo + step));
  for (std::thread& t : pool) t.join();
}

// ---------------------------------------------------------------------------------------------
// Memory

#ifdef CULOSS_BENCH_WITH_CUDA
inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
  }
}
#endif

// A host (64-byte aligned) or device allocation; move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(size_t bytes, bool device) : bytes_(bytes), device_(device) {
    const size_t size = std::max<size_t>(64, (bytes + 63) / 64 * 64);
    if (device) {
#ifdef CULOSS_BENCH_WITH_CUDA
      cuda_check(cudaMalloc(&ptr_, size), "cudaMalloc");
#else
      throw std::runtime_error("no CUDA support in this build");
#endif
    } else {
      ptr_ = std::aligned_alloc(64, size);
      if (!ptr_) throw std::runtime_error("host allocation failed");
    }
  }
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer(std::move(o)).swap(*this);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (!ptr_) return;
#ifdef CULOSS_BENCH_WITH_CUDA
    if (device_) {
      (void)cudaFree(ptr_);
      return;
    }
#endif
    std::free(ptr_);
  }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  bool device() const { return device_; }

 private:
  void swap(Buffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
    std::swap(device_, o.device_);
  }
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  bool device_ = false;
};

// Fills `count` elements of `elem_bytes` each of dst with gen(out, begin, end), which writes
// elements [begin, end) to out[0 .. end - begin). Device buffers go through a host staging chunk.
template <class Gen>
void fill(const Buffer& dst, int64_t count, int64_t elem_bytes, Gen gen) {
  auto run = [&](char* out, int64_t begin, int64_t n) {
    parallel_for(
        n, [&](int64_t lo, int64_t hi) { gen(out + lo * elem_bytes, begin + lo, begin + hi); });
  };
  if (!dst.device()) {
    run(static_cast<char*>(dst.get()), 0, count);
    return;
  }
#ifdef CULOSS_BENCH_WITH_CUDA
  const int64_t chunk = int64_t{1} << 24;
  std::vector<char> staging(static_cast<size_t>(std::min(count, chunk) * elem_bytes));
  for (int64_t begin = 0; begin < count; begin += chunk) {
    const int64_t n = std::min(chunk, count - begin);
    run(staging.data(), begin, n);
    cuda_check(cudaMemcpy(static_cast<char*>(dst.get()) + begin * elem_bytes, staging.data(),
                          static_cast<size_t>(n * elem_bytes), cudaMemcpyHostToDevice),
               "cudaMemcpy (upload)");
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// Tensors of one problem on one device

struct Dataset {
  Problem problem;
  bool device = false;
  std::vector<int64_t> input_shape, target_shape, pixel_shape;
  Buffer input, target, weight, grad, loss;
  DLTensor t_input{}, t_target{}, t_weight{}, t_grad{}, t_loss{};

  const DLTensor* pixel_weight() const { return problem.has_pixel_weight() ? &t_weight : nullptr; }
};

inline DLTensor dl_view(void* data, bool device, DLDataType dt, std::vector<int64_t>& shape) {
  DLTensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.device = DLDevice{device ? kDLCUDA : kDLCPU, 0};
  t.ndim = static_cast<int32_t>(shape.size());
  t.dtype = dt;
  t.shape = shape.empty() ? nullptr : shape.data();
  return t;
}

inline std::unique_ptr<Dataset> make_dataset(const Problem& pr, bool device) {
  auto ds = std::make_unique<Dataset>();
  ds->problem = pr;
  ds->device = device;
  ds->input_shape = pr.shape;
  ds->pixel_shape = pr.pixel_shape();
  ds->target_shape = pr.index_target() ? pr.pixel_shape() : pr.shape;
  const int64_t numel = pr.numel(), pixels = pr.N() * pr.P();

  ds->input = Buffer(static_cast<size_t>(pr.input_bytes()), device);
  ds->grad = Buffer(static_cast<size_t>(pr.grad_bytes()), device);
  ds->target = Buffer(static_cast<size_t>(pr.target_bytes()), device);
  ds->loss = Buffer(sizeof(float), device);

  const Dtype dt = pr.dtype;
  fill(ds->input, numel, dtype_bytes(dt), [&pr, dt](char* out, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i, out += dtype_bytes(dt)) {
      const float v = synth_logit(pr, i);
      if (dt == Dtype::F32) {
        std::memcpy(out, &v, 4);
      } else {
        const uint16_t h = dt == Dtype::BF16 ? float_to_bf16(v) : float_to_f16(v);
        std::memcpy(out, &h, 2);
      }
    }
  });
  if (pr.target == Target::I64) {
    const int64_t ignore = pr.ignore_label();
    fill(ds->target, pixels, 8, [&pr, ignore](char* out, int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q, out += 8) {
        const int64_t l = synth_label(pr, q);
        const int64_t v = l < 0 ? ignore : l;
        std::memcpy(out, &v, 8);
      }
    });
  } else if (pr.target == Target::U8) {
    const int64_t ignore = pr.ignore_label();
    fill(ds->target, pixels, 1, [&pr, ignore](char* out, int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q, ++out) {
        const int64_t l = synth_label(pr, q);
        *out = static_cast<char>(static_cast<uint8_t>(l < 0 ? ignore : l));
      }
    });
  } else {  // dense 0/1 mask (one-hot of the label when C > 1); ignored pixels get weight 0
    const int64_t C = pr.C(), P = pr.P();
    fill(ds->target, numel, 1, [&pr, C, P](char* out, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i, ++out) {
        const int64_t n = i / (C * P), c = i / P % C, p = i % P;
        const int64_t l = synth_label(pr, n * P + p);
        *out = static_cast<char>(C == 1 ? l == 1 : l == c);
      }
    });
  }
  if (pr.has_pixel_weight()) {
    ds->weight = Buffer(static_cast<size_t>(pr.weight_bytes()), device);
    fill(ds->weight, pixels, 4, [&pr](char* out, int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q, out += 4) {
        const float w = synth_label(pr, q) < 0 ? 0.0f : 1.0f;
        std::memcpy(out, &w, 4);
      }
    });
  }

  const DLDataType f32{kDLFloat, 32, 1};
  const DLDataType target_dt =
      pr.target == Target::I64 ? DLDataType{kDLInt, 64, 1} : DLDataType{kDLUInt, 8, 1};
  std::vector<int64_t> scalar;  // ndim 0: shape is not read
  ds->t_input = dl_view(ds->input.get(), device, dl_dtype(dt), ds->input_shape);
  ds->t_grad = dl_view(ds->grad.get(), device, dl_dtype(dt), ds->input_shape);
  ds->t_target = dl_view(ds->target.get(), device, target_dt, ds->target_shape);
  ds->t_weight = dl_view(ds->weight.get(), device, f32, ds->pixel_shape);
  ds->t_loss = dl_view(ds->loss.get(), device, f32, scalar);
  return ds;
}

// The benchmarks of one problem are registered one after the other; keep the last problem's
// tensors per device so that they are generated (and uploaded) once.
inline std::unique_ptr<Dataset>& dataset_slot(bool device) {
  static std::unique_ptr<Dataset> slots[2];
  return slots[device ? 1 : 0];
}
inline Dataset& dataset_for(const Problem& pr, bool device) {
  std::unique_ptr<Dataset>& slot = dataset_slot(device);
  if (!slot || slot->problem.name() != pr.name()) {
    slot.reset();  // free the previous one first
    slot = make_dataset(pr, device);
  }
  return *slot;
}
inline void release_datasets() {
  dataset_slot(false).reset();
  dataset_slot(true).reset();
}

// ---------------------------------------------------------------------------------------------
// Loss descriptors

class Loss {
 public:
  Loss() = default;
  Loss(const Loss&) = delete;
  Loss& operator=(const Loss&) = delete;
  ~Loss() { culoss_loss_destroy(h_); }
  culoss_loss* out() { return &h_; }
  culoss_loss get() const { return h_; }

 private:
  culoss_loss h_ = nullptr;
};

inline std::string culoss_error(const char* what, culoss_status s) {
  return std::string(what) + ": " + culoss_status_string(s) + ": " + culoss_last_error();
}

inline void culoss_check(culoss_status s, const char* what) {
  if (s != CULOSS_SUCCESS) throw std::runtime_error(culoss_error(what, s));
}

// A descriptor of `kind` for problem `pr`, as a trainer's hot path would use it: the problem's
// activation and ignore label, no target checks (CHECK_TARGETS=0: no synchronization).
// Sets a descriptor up for a problem: its activation, ignore label, no target check.
inline void configure_one(culoss_loss loss, culoss_kind kind, const Problem& pr) {
  // Lovász hinge takes logits: it has no ACTIVATION parameter.
  if (kind != CULOSS_SUM && kind != CULOSS_LOVASZ_HINGE)
    culoss_check(culoss_loss_set_int(loss, CULOSS_PARAM_ACTIVATION, pr.activation),
                 "set ACTIVATION");
  if (pr.index_target() && kind != CULOSS_SUM)
    culoss_check(culoss_loss_set_int(loss, CULOSS_PARAM_IGNORE_INDEX, pr.ignore_label()),
                 "set IGNORE_INDEX");
  culoss_check(culoss_loss_set_int(loss, CULOSS_PARAM_CHECK_TARGETS, 0), "set CHECK_TARGETS");
}

// CULOSS_SUM stands for the usual composite: Dice + cross-entropy (softmax problems) or
// Dice + BCE (sigmoid problems), fused into one call.
inline void configure_loss(Loss& loss, culoss_kind kind, const Problem& pr) {
  culoss_check(culoss_loss_create(loss.out(), kind), "culoss_loss_create");
  configure_one(loss.get(), kind, pr);
  if (kind != CULOSS_SUM) return;
  const culoss_kind second =
      pr.activation == CULOSS_ACTIVATION_SOFTMAX ? CULOSS_CROSS_ENTROPY : CULOSS_BCE;
  for (culoss_kind k : {CULOSS_DICE, second}) {
    Loss term;
    culoss_check(culoss_loss_create(term.out(), k), "culoss_loss_create");
    configure_one(term.get(), k, pr);
    culoss_check(culoss_loss_add_term(loss.get(), term.get(), 1.0), "culoss_loss_add_term");
  }
}

// ---------------------------------------------------------------------------------------------
// Counters

// Sets the bandwidth counters from `seconds`, the measured time of all state.iterations() calls.
// copy_GBps > 0 (CUDA) adds the device copy bandwidth and the fractions of it.
inline void report_bandwidth(benchmark::State& state, const Problem& pr, bool backward,
                             double seconds, double copy_GBps) {
  const int64_t iters = static_cast<int64_t>(state.iterations());
  if (iters <= 0 || !(seconds > 0.0)) return;
  state.SetBytesProcessed(iters * pr.one_pass_bytes(backward));
  const double one = static_cast<double>(pr.one_pass_bytes(backward)) * iters / seconds / 1e9;
  const double two = static_cast<double>(pr.two_pass_bytes(backward)) * iters / seconds / 1e9;
  state.counters["roofline_GBps"] = one;
  state.counters["two_pass_GBps"] = two;
  if (copy_GBps > 0.0) {
    state.counters["copy_GBps"] = copy_GBps;
    state.counters["roofline_fraction"] = one / copy_GBps;
    state.counters["two_pass_fraction"] = two / copy_GBps;
  }
}

// ---------------------------------------------------------------------------------------------
// CUDA environment: stream, events, L2 flush buffer, device copy bandwidth

#ifdef CULOSS_BENCH_WITH_CUDA
// Number of usable CUDA devices; 0 when the runtime reports an error (no driver, no device).
inline int cuda_device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      n = 0;
    }
    return n;
  }();
  return count;
}

class CudaEnv {
 public:
  static constexpr size_t kFlushBytes = size_t{64} << 20;  // > the 50 MB L2 of an H100

  // The process-wide environment on device 0; nullptr without a device.
  static CudaEnv* get() {
    std::unique_ptr<CudaEnv>& env = slot();
    if (!env && cuda_device_count() > 0) env.reset(new CudaEnv());
    return env.get();
  }
  static void release() { slot().reset(); }

  ~CudaEnv() {
    (void)cudaStreamSynchronize(stream);
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    (void)cudaStreamDestroy(stream);
  }

  // Overwrites the flush buffer on the stream, evicting the previous iteration's data from L2.
  void flush_l2() {
    cuda_check(cudaMemsetAsync(scratch_.get(), ++flush_value_ & 0xff, kFlushBytes, stream),
               "cudaMemsetAsync (L2 flush)");
  }

  // Device copy bandwidth in GB/s (1e9 bytes), measured once per process: the best of 5 timed
  // 1 GiB cudaMemcpy device-to-device, counting the bytes read and written (2 GiB per copy).
  double copy_GBps() {
    if (copy_GBps_ < 0.0) copy_GBps_ = measure_copy();
    return copy_GBps_;
  }

  // Milliseconds between the start and stop events (after waiting for stop).
  float elapsed_ms() {
    cuda_check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0.0f;
    cuda_check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    return ms;
  }

  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;

 private:
  CudaEnv() {
    cuda_check(cudaSetDevice(0), "cudaSetDevice");
    cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    cuda_check(cudaEventCreate(&start), "cudaEventCreate");
    cuda_check(cudaEventCreate(&stop), "cudaEventCreate");
    scratch_ = Buffer(kFlushBytes, true);
  }
  static std::unique_ptr<CudaEnv>& slot() {
    static std::unique_ptr<CudaEnv> env;
    return env;
  }

  double measure_copy() {
    size_t bytes = size_t{1} << 30;
    Buffer src, dst;
    while (true) {  // 1 GiB, or less if the device is short of memory
      try {
        src = Buffer(bytes, true);
        dst = Buffer(bytes, true);
        break;
      } catch (const std::runtime_error&) {
        src = Buffer();
        dst = Buffer();
        if (bytes <= (size_t{64} << 20)) return 0.0;
        bytes /= 2;
      }
    }
    cuda_check(cudaMemsetAsync(src.get(), 1, bytes, stream), "cudaMemsetAsync");
    cuda_check(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream),
               "cudaMemcpyAsync");  // warm-up
    float best = std::numeric_limits<float>::max();
    for (int i = 0; i < 5; ++i) {
      cuda_check(cudaEventRecord(start, stream), "cudaEventRecord");
      cuda_check(cudaMemcpyAsync(dst.get(), src.get(), bytes, cudaMemcpyDeviceToDevice, stream),
                 "cudaMemcpyAsync");
      cuda_check(cudaEventRecord(stop, stream), "cudaEventRecord");
      best = std::min(best, elapsed_ms());
    }
    return 2.0 * static_cast<double>(bytes) / (static_cast<double>(best) * 1e-3) / 1e9;
  }

  Buffer scratch_;
  int flush_value_ = 0;
  double copy_GBps_ = -1.0;
};
#endif  // CULOSS_BENCH_WITH_CUDA

}  // namespace culoss_bench

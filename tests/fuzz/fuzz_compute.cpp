// libFuzzer target for the whole culoss C API (LLVMFuzzerTestOneInput).
//
// One input decodes, byte by byte, into one scenario: a descriptor (any kind number, any
// parameter number and value, NaN and infinities included, class and positive weights, CULOSS_SUM
// terms), up to six tensors (input, target, pixel_weight, loss_out, grad_input, and the
// statistics vector of the distributed API) with arbitrary ndim, extents (0, and huge ones whose
// product overflows), dtype codes/bits/lanes, strides, byte offsets, misalignment, devices and
// NULLs, deliberate aliasing between tensors, a workspace of some size, and which entry point is
// called. Exhausted input reads as zeros and every table's first entry is the ordinary choice, so
// short inputs are ordinary calls. Tensor values come from a PRNG seeded by the input.
//
// Memory is honest: every tensor the library receives lies in its own mmap'd region between two
// PROT_NONE guard pages, sized exactly for its declared shape and dtype, with canary bytes in the
// rest of its pages. The one deliberate lie is NULL data for a shape with elements (or a shape
// too large to allocate), which must be refused. Tensors the library may only read are mapped
// read-only during the call, so any write to them faults.
//
// Oracles, checked after every call (a violation aborts with a message):
//   - no crash, no sanitizer report (the build adds ASan + UBSan), no guard-page fault;
//   - the status is one of the 11 culoss_status values;
//   - culoss_last_error() is never NULL, "" after a success, a sentence after a failure;
//   - canaries intact; on failure every buffer is byte-for-byte as before the call;
//   - calls that must fail do (NULL handle, NULL required tensor, NULL data with elements,
//     negative extents, bad ndim, dtype outside the role's set, non-CPU device in a CPU build,
//     misaligned data, non-compact strides, illegal overlap of an output with another tensor,
//     non-finite grad_scale or parameter, too small a workspace);
//   - on success with finite, in-range ("tame") inputs and parameters, every output is finite;
//   - with the determinism flag, a successful call repeated (other workspace) gives bitwise the
//     same outputs; with the stats round trip, compute_from_stats agrees with compute.
//
// The same file builds without libFuzzer: replay_main.cpp runs it over files (the corpus and the
// regressions) in the normal test suite. CULOSS_FUZZ_VERBOSE=1 prints each decoded scenario.
#include <culoss/culoss.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "c_shim.h"

namespace {

// ------------------------------------------------------------------------------------------
// Reporting

bool verbose() {
  static const bool v = std::getenv("CULOSS_FUZZ_VERBOSE") != nullptr;
  return v;
}

void note(const char* fmt, ...) {
  if (!verbose()) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
}

[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fprintf(stderr, "\nculoss fuzz: ORACLE FAILED: ");
  std::vfprintf(stderr, fmt, ap);
  std::fprintf(stderr, "\n  culoss_last_error(): \"%s\"\n",
               culoss_last_error() ? culoss_last_error() : "(NULL)");
  va_end(ap);
  std::fflush(stderr);
  std::abort();
}

#define FUZZ_CHECK(cond, ...)      \
  do {                             \
    if (!(cond)) die(__VA_ARGS__); \
  } while (0)

// ------------------------------------------------------------------------------------------
// Input decoding

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  uint8_t byte() { return pos_ < n_ ? d_[pos_++] : 0; }
  size_t pick(size_t n) { return byte() % n; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(byte()) << (8 * i);
    return v;
  }
  uint64_t u64() { return u32() | (static_cast<uint64_t>(u32()) << 32); }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

struct Rng {  // splitmix64
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double range(double lo, double hi) { return lo + (hi - lo) * unit(); }
};

template <class T, size_t N>
constexpr size_t count_of(const T (&)[N]) {
  return N;
}

int64_t pick_int(Reader& r) {
  static const int64_t small[] = {0, 1, 2, -1, 3, -2, 4, 5};
  static const int64_t special[] = {-100,
                                    255,
                                    64,
                                    -64,
                                    65,
                                    -65,
                                    std::numeric_limits<int32_t>::max(),
                                    std::numeric_limits<int32_t>::min(),
                                    int64_t(1) << 31,
                                    int64_t(1) << 32,
                                    std::numeric_limits<int64_t>::max(),
                                    std::numeric_limits<int64_t>::min(),
                                    23,
                                    24,
                                    1000,
                                    -3};
  const uint8_t s = r.byte();
  if (s < 200) return small[s % count_of(small)];
  if (s < 200 + count_of(special)) return special[s - 200];
  return static_cast<int64_t>(r.u64());
}

double pick_double(Reader& r) {
  static const double common[] = {0.5, 0.0,  1.0,  1e-5, 0.25, 0.75, 2.0,  0.3,
                                  0.7, 1e-7, 10.0, 0.1,  0.9,  3.0,  1e-3, 5.0};
  static const double extreme[] = {NAN,   INFINITY, -INFINITY, -0.0,      -1.0,      -0.5,
                                   1e308, -1e308,   1e-300,    5e-324,    1 - 1e-16, 1e4,
                                   100.0, 1e30,     0.9999999, 1.0000001, 50.0,      1e-30};
  const uint8_t s = r.byte();
  if (s < 128) return common[s % count_of(common)];
  if (s < 192) return (s - 128) / 63.0;
  if (s < 192 + count_of(extreme)) return extreme[s - 192];
  const uint64_t bits = r.u64();
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// Kinds and parameters of 0.2, reached by bytes of their own (appended, so that every other
// byte keeps its meaning and the corpus its scenarios).
const int kAddedKinds[] = {CULOSS_TOPK_CE, CULOSS_MCC, CULOSS_HAUSDORFF_DT, CULOSS_BOUNDARY,
                           CULOSS_CLDICE};  // bytes 0xf8, ...
const int kAddedParams[] = {CULOSS_PARAM_TOP_FRACTION, CULOSS_PARAM_SOFT_LABEL,
                            CULOSS_PARAM_SPACING, CULOSS_PARAM_ITERATIONS};  // bytes 237, ...

int pick_param(Reader& r) {
  static const int odd[] = {
      0, 99, -1, 100, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(), 255};
  const uint8_t s = r.byte();
  if (s < 230) return 1 + s % 23;
  if (s >= 237 && s - 237 < static_cast<int>(count_of(kAddedParams))) return kAddedParams[s - 237];
  return odd[(s - 230) % count_of(odd)];
}

int pick_kind(Reader& r) {
  static const int odd[] = {0, 99, -1, 100, std::numeric_limits<int>::min(), 13, 12, 11};
  const uint8_t s = r.byte();
  if (s < 0xf0) return 1 + s % 13;
  if (s >= 0xf8 && s - 0xf8 < static_cast<int>(count_of(kAddedKinds))) return kAddedKinds[s - 0xf8];
  return odd[(s - 0xf0) % count_of(odd)];
}

int64_t pick_extent(Reader& r) {
  static const int64_t small[] = {2, 1, 3, 4, 2, 1, 5, 0, 3, 7, 8, 16, 1, 2, 6, 0};
  static const int64_t huge[] = {int64_t(1) << 31,
                                 (int64_t(1) << 31) + 1,
                                 int64_t(1) << 32,
                                 int64_t(1) << 40,
                                 int64_t(1) << 61,
                                 int64_t(1) << 62,
                                 (int64_t(1) << 62) + 1,
                                 std::numeric_limits<int64_t>::max(),
                                 -1,
                                 std::numeric_limits<int64_t>::min(),
                                 int64_t(1) << 20,
                                 65536,
                                 (int64_t(1) << 61) + 1,
                                 int64_t(1) << 33,
                                 -2,
                                 4096};
  const uint8_t s = r.byte();
  if (s < 224) return small[s % count_of(small)];
  return huge[(s - 224) % count_of(huge)];
}

// ------------------------------------------------------------------------------------------
// Guarded memory: [PROT_NONE page][body pages][PROT_NONE page]. The tensor's bytes sit at the
// end of the body (an overrun faults at once) or at its start (an underrun faults at once); the
// rest of the body holds canary bytes.

constexpr uint8_t kCanary = 0xa5;
constexpr uint8_t kPoison = 0xff;  // fill of outputs: NaN in every float dtype

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

class Guarded {
 public:
  Guarded(size_t len, bool at_end) : len_(len) {
    const size_t page = page_size();
    body_len_ = (len + page - 1) / page * page;
    if (body_len_ == 0) body_len_ = page;
    map_len_ = body_len_ + 2 * page;
    void* m = mmap(nullptr, map_len_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) die("mmap of %zu bytes failed", map_len_);
    map_ = static_cast<uint8_t*>(m);
    body_ = map_ + page;
    if (mprotect(map_, page, PROT_NONE) != 0 || mprotect(body_ + body_len_, page, PROT_NONE) != 0)
      die("mprotect of a guard page failed");
    std::memset(body_, kCanary, body_len_);
    user_ = at_end ? body_ + body_len_ - len : body_;
  }
  ~Guarded() { munmap(map_, map_len_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;

  uint8_t* data() const { return user_; }
  size_t size() const { return len_; }
  void access(int prot) {
    if (mprotect(body_, body_len_, prot) != 0) die("mprotect of a body failed");
  }
  void read_only(bool ro) {
    if (mprotect(body_, body_len_, ro ? PROT_READ : PROT_READ | PROT_WRITE) != 0)
      die("mprotect of a body failed");
  }
  bool canaries_intact() const {
    for (const uint8_t* p = body_; p < user_; ++p)
      if (*p != kCanary) return false;
    for (const uint8_t* p = user_ + len_; p < body_ + body_len_; ++p)
      if (*p != kCanary) return false;
    return true;
  }
  std::vector<uint8_t> snapshot() const { return std::vector<uint8_t>(user_, user_ + len_); }
  bool equals(const std::vector<uint8_t>& s) const {
    return s.size() == len_ && (len_ == 0 || std::memcmp(user_, s.data(), len_) == 0);
  }
  void restore(const std::vector<uint8_t>& s) {
    if (len_) std::memcpy(user_, s.data(), len_);
  }

 private:
  uint8_t* map_ = nullptr;
  uint8_t* body_ = nullptr;
  uint8_t* user_ = nullptr;
  size_t map_len_ = 0, body_len_ = 0, len_ = 0;
};

// ------------------------------------------------------------------------------------------
// Dtypes

enum class DT { F32, F64, F16, BF16, U8, I32, I64, Bad };

DT classify(DLDataType d) {
  if (d.lanes != 1) return DT::Bad;
  if (d.code == kDLFloat && d.bits == 32) return DT::F32;
  if (d.code == kDLFloat && d.bits == 64) return DT::F64;
  if (d.code == kDLFloat && d.bits == 16) return DT::F16;
  if (d.code == kDLBfloat && d.bits == 16) return DT::BF16;
  if (d.code == kDLUInt && d.bits == 8) return DT::U8;
  if (d.code == kDLInt && d.bits == 32) return DT::I32;
  if (d.code == kDLInt && d.bits == 64) return DT::I64;
  return DT::Bad;
}

bool is_float(DT t) { return t == DT::F32 || t == DT::F64 || t == DT::F16 || t == DT::BF16; }

size_t storage_bytes(DLDataType d) {  // bytes per element used for allocation, any dtype
  const size_t bits = static_cast<size_t>(d.bits) * (d.lanes ? d.lanes : 1);
  const size_t b = (bits + 7) / 8;
  return b ? b : 1;
}

uint16_t to_half(float f) {  // round to nearest, subnormals flushed to zero: good enough for data
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;
  const int e = static_cast<int>(ax >> 23) - 127 + 15;
  if (e >= 31) return sign | 0x7c00u;
  if (e <= 0) return sign;
  uint32_t m = (ax & 0x7fffffu) + 0x1000u;  // round the dropped 13 bits
  uint32_t out = (static_cast<uint32_t>(e) << 10) + (m >> 13);
  if (out >= 0x7c00u) out = 0x7c00u;
  return static_cast<uint16_t>(sign | out);
}

uint16_t to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x8000u) >> 16);
}

int64_t to_int(double v) {  // saturating, NaN -> 0 (a float out of range is UB to convert)
  if (!(v == v)) return 0;
  if (v >= 9.2e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

void store(uint8_t* base, DT t, int64_t i, double v) {
  switch (t) {
    case DT::F32: {
      const float f = static_cast<float>(v);
      std::memcpy(base + 4 * i, &f, 4);
      return;
    }
    case DT::F64:
      std::memcpy(base + 8 * i, &v, 8);
      return;
    case DT::F16: {
      const uint16_t h = to_half(static_cast<float>(v));
      std::memcpy(base + 2 * i, &h, 2);
      return;
    }
    case DT::BF16: {
      const uint16_t h = to_bf16(static_cast<float>(v));
      std::memcpy(base + 2 * i, &h, 2);
      return;
    }
    case DT::U8:
      base[i] = static_cast<uint8_t>(to_int(v));
      return;
    case DT::I32: {
      const int32_t x = static_cast<int32_t>(to_int(v));
      std::memcpy(base + 4 * i, &x, 4);
      return;
    }
    case DT::I64: {
      const int64_t x = to_int(v);
      std::memcpy(base + 8 * i, &x, 8);
      return;
    }
    case DT::Bad:
      return;
  }
}

bool element_finite(const uint8_t* base, DT t, int64_t i) {
  switch (t) {
    case DT::F32: {
      float f;
      std::memcpy(&f, base + 4 * i, 4);
      return std::isfinite(f);
    }
    case DT::F64: {
      double d;
      std::memcpy(&d, base + 8 * i, 8);
      return std::isfinite(d);
    }
    case DT::F16: {
      uint16_t h;
      std::memcpy(&h, base + 2 * i, 2);
      return (h & 0x7c00u) != 0x7c00u;
    }
    case DT::BF16: {
      uint16_t h;
      std::memcpy(&h, base + 2 * i, 2);
      return (h & 0x7f80u) != 0x7f80u;
    }
    default:
      return true;
  }
}

double element_value(const uint8_t* base, DT t, int64_t i) {
  if (t == DT::F32) {
    float f;
    std::memcpy(&f, base + 4 * i, 4);
    return f;
  }
  if (t == DT::F64) {
    double d;
    std::memcpy(&d, base + 8 * i, 8);
    return d;
  }
  return NAN;
}

// ------------------------------------------------------------------------------------------
// Descriptors

struct Desc {
  culoss_loss h = nullptr;
  int kind = 0;
  bool tame = true;         // every parameter set is in the range where outputs stay finite
  int64_t activation = -1;  // -1: the kind's default
  int64_t class_axis = 1;
  int64_t ignore_index = -100;
  int64_t reduction = CULOSS_REDUCTION_MEAN;
  int64_t check_targets = 1;
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  bool any_probability_input = false;  // some term takes probabilities (ACTIVATION_NONE)
  int terms = 0;                       // CULOSS_SUM: terms added
  bool axis_known = false;             // CULOSS_SUM: class axis and ignore index from a term
  std::vector<culoss_loss> owned;      // term descriptors to destroy

  bool smoothing_tame() const {
    // A zero denominator smoothing with a positive numerator one makes the ratio unbounded when
    // nothing is predicted: that is the formula, not a defect.
    return (smooth_dr >= 1e-6 && smooth_dr <= 10 && smooth_nr <= 10) ||
           (smooth_dr == 0 && smooth_nr == 0);
  }
};

void check_status_range(culoss_status s, const char* what) {
  const int v = static_cast<int>(s);
  FUZZ_CHECK(v >= 0 && v <= 10, "%s returned %d, not a culoss_status", what, v);
  const char* e = culoss_last_error();
  FUZZ_CHECK(e != nullptr, "%s: culoss_last_error() is NULL", what);
  if (v == 0)
    FUZZ_CHECK(e[0] == '\0', "%s succeeded but culoss_last_error() is \"%s\"", what, e);
  else
    FUZZ_CHECK(e[0] != '\0', "%s failed (%s) with an empty culoss_last_error()", what,
               culoss_status_string(s));
}

void expect_failed(culoss_status s, bool must_fail, const char* what, const char* why) {
  if (must_fail) FUZZ_CHECK(s != CULOSS_SUCCESS, "%s succeeded but must be refused: %s", what, why);
}

bool float_param_tame(int param, double v) {
  switch (param) {
    case CULOSS_PARAM_ALPHA:
      return std::fabs(v) <= 10;
    case CULOSS_PARAM_BETA:
    case CULOSS_PARAM_GAMMA:
      return v <= 10;
    default:
      return true;
  }
}

void apply_ops(Reader& r, Desc& d) {
  const int nops = static_cast<int>(r.pick(8));
  for (int i = 0; i < nops; ++i) {
    const int op = static_cast<int>(r.pick(8));
    const int param = pick_param(r);
    switch (op) {
      case 0:
      case 1:
      case 2: {  // set_int
        const int64_t v = pick_int(r);
        const culoss_status s = fz_set_int(d.h, param, v);
        check_status_range(s, "culoss_loss_set_int");
        note("  set_int(%d, %lld) -> %d\n", param, static_cast<long long>(v), s);
        expect_failed(s, d.h == nullptr, "culoss_loss_set_int", "NULL descriptor");
        expect_failed(s, !culoss_param_name(static_cast<culoss_param>(param)),
                      "culoss_loss_set_int", "unknown parameter");
        if (s != CULOSS_SUCCESS) break;
        if (param == CULOSS_PARAM_ACTIVATION) d.activation = v;
        if (param == CULOSS_PARAM_CLASS_AXIS) d.class_axis = v;
        if (param == CULOSS_PARAM_IGNORE_INDEX) d.ignore_index = v;
        if (param == CULOSS_PARAM_REDUCTION) d.reduction = v;
        if (param == CULOSS_PARAM_CHECK_TARGETS) d.check_targets = v;
        break;
      }
      case 3: {  // set_float
        const double v = pick_double(r);
        const culoss_status s = fz_set_float(d.h, param, v);
        check_status_range(s, "culoss_loss_set_float");
        note("  set_float(%d, %g) -> %d\n", param, v, s);
        expect_failed(s, d.h == nullptr, "culoss_loss_set_float", "NULL descriptor");
        expect_failed(s, !std::isfinite(v), "culoss_loss_set_float", "non-finite value");
        if (s != CULOSS_SUCCESS) break;
        if (param == CULOSS_PARAM_SMOOTH_NR) d.smooth_nr = v;
        if (param == CULOSS_PARAM_SMOOTH_DR) d.smooth_dr = v;
        if (!float_param_tame(param, v)) d.tame = false;
        // Distance exponents above 2 make HAUSDORFF_DT's values and half gradients overflow.
        if (param == CULOSS_PARAM_ALPHA && d.kind == CULOSS_HAUSDORFF_DT && v > 2) d.tame = false;
        break;
      }
      case 4: {  // set_floats from a guarded read-only array of exactly `count` values
        static const int64_t counts[] = {
            1, 2, 3, 4, 5, 0, -1, int64_t(1) << 24, (int64_t(1) << 24) + 1, 64, 6, 8};
        const int64_t count = counts[r.pick(count_of(counts))];
        const int how = static_cast<int>(r.pick(4));  // 0 tame values, 1 fuzzed values, 2 NULL
        const bool null_values = how == 2 || count > 64 || count < 1;
        std::unique_ptr<Guarded> buf;
        bool values_tame = true, values_valid = true;
        if (!null_values) {
          buf.reset(new Guarded(static_cast<size_t>(count) * sizeof(double), r.byte() & 1));
          for (int64_t k = 0; k < count; ++k) {
            const double v = how == 0 ? static_cast<double>(r.pick(9)) * 0.5 : pick_double(r);
            if (!(std::isfinite(v) && v >= 0)) values_valid = false;
            if (!(v <= 100)) values_tame = false;
            std::memcpy(buf->data() + k * sizeof(double), &v, sizeof v);
          }
          buf->read_only(true);
        }
        const double* values = null_values ? nullptr : reinterpret_cast<const double*>(buf->data());
        const culoss_status s = fz_set_floats(d.h, param, values, count);
        check_status_range(s, "culoss_loss_set_floats");
        note("  set_floats(%d, count %lld, %s) -> %d\n", param, static_cast<long long>(count),
             null_values ? "NULL" : "values", s);
        expect_failed(s, d.h == nullptr, "culoss_loss_set_floats", "NULL descriptor");
        expect_failed(s, count < 1 || count > (int64_t(1) << 24), "culoss_loss_set_floats",
                      "count out of range");
        expect_failed(s, values == nullptr, "culoss_loss_set_floats", "NULL values");
        expect_failed(s, !values_valid, "culoss_loss_set_floats", "negative or non-finite value");
        if (buf) FUZZ_CHECK(buf->canaries_intact(), "set_floats wrote around its values");
        if (s == CULOSS_SUCCESS && !values_tame) d.tame = false;
        if (s == CULOSS_SUCCESS && param == CULOSS_PARAM_SPACING)  // distances grow with it
          for (int64_t k = 0; k < count; ++k)
            if (!(values[k] <= 1.0)) d.tame = false;
        break;
      }
      case 5: {  // get_int (sometimes into NULL)
        int64_t v = 0x5a5a5a5a;
        const bool null_out = r.byte() == 0xff;
        const culoss_status s = fz_get_int(d.h, param, null_out ? nullptr : &v);
        check_status_range(s, "culoss_loss_get_int");
        expect_failed(s, d.h == nullptr || null_out, "culoss_loss_get_int", "NULL argument");
        if (s == CULOSS_SUCCESS) {
          if (param == CULOSS_PARAM_CLASS_AXIS)
            FUZZ_CHECK(v == d.class_axis, "get_int(CLASS_AXIS) = %lld, set %lld",
                       static_cast<long long>(v), static_cast<long long>(d.class_axis));
          if (param == CULOSS_PARAM_IGNORE_INDEX)
            FUZZ_CHECK(v == d.ignore_index, "get_int(IGNORE_INDEX) = %lld, set %lld",
                       static_cast<long long>(v), static_cast<long long>(d.ignore_index));
          if (param == CULOSS_PARAM_CHECK_TARGETS)
            FUZZ_CHECK(v == d.check_targets, "get_int(CHECK_TARGETS) = %lld, set %lld",
                       static_cast<long long>(v), static_cast<long long>(d.check_targets));
        }
        break;
      }
      case 6: {  // get_float
        double v = 0;
        const bool null_out = r.byte() == 0xff;
        const culoss_status s = fz_get_float(d.h, param, null_out ? nullptr : &v);
        check_status_range(s, "culoss_loss_get_float");
        expect_failed(s, d.h == nullptr || null_out, "culoss_loss_get_float", "NULL argument");
        if (s == CULOSS_SUCCESS) {
          FUZZ_CHECK(std::isfinite(v), "get_float(%d) returned a non-finite %g", param, v);
          if (param == CULOSS_PARAM_SMOOTH_NR)
            FUZZ_CHECK(v == d.smooth_nr, "get_float(SMOOTH_NR) = %g, set %g", v, d.smooth_nr);
          if (param == CULOSS_PARAM_SMOOTH_DR)
            FUZZ_CHECK(v == d.smooth_dr, "get_float(SMOOTH_DR) = %g, set %g", v, d.smooth_dr);
        }
        break;
      }
      default: {  // setters and getters on a NULL descriptor
        int64_t iv = 0;
        double fv = 0;
        const culoss_status a = fz_set_int(nullptr, param, 1);
        check_status_range(a, "culoss_loss_set_int(NULL)");
        FUZZ_CHECK(a != CULOSS_SUCCESS, "set_int on a NULL descriptor succeeded");
        const culoss_status b = fz_get_float(nullptr, param, &fv);
        check_status_range(b, "culoss_loss_get_float(NULL)");
        FUZZ_CHECK(b != CULOSS_SUCCESS, "get_float on a NULL descriptor succeeded");
        const culoss_status c = fz_get_int(nullptr, param, &iv);
        check_status_range(c, "culoss_loss_get_int(NULL)");
        FUZZ_CHECK(c != CULOSS_SUCCESS, "get_int on a NULL descriptor succeeded");
        break;
      }
    }
  }
}

// Creates a descriptor (kind and parameters from the input); CULOSS_SUM gets terms.
void build_desc(Reader& r, Desc& d, int depth) {
  d.kind = pick_kind(r);
  const bool null_out = r.byte() == 0xfe;
  const culoss_status s = fz_create(null_out ? nullptr : &d.h, d.kind);
  check_status_range(s, "culoss_loss_create");
  note("%*screate(kind %d) -> %d\n", depth * 2, "", d.kind, s);
  expect_failed(s, null_out, "culoss_loss_create", "NULL out");
  expect_failed(s, !culoss_kind_name(static_cast<culoss_kind>(d.kind)), "culoss_loss_create",
                "unknown kind");
  if (s != CULOSS_SUCCESS) {
    FUZZ_CHECK(d.h == nullptr, "a failed culoss_loss_create left a non-NULL handle");
    d.h = nullptr;
  }
  // The smoothing defaults differ by kind (CLDICE: 1 and 1): the model starts from the library's.
  if (d.h) {
    const culoss_kind k = static_cast<culoss_kind>(d.kind);
    if (culoss_param_applies(k, CULOSS_PARAM_SMOOTH_NR))
      culoss_param_get_default(k, CULOSS_PARAM_SMOOTH_NR, &d.smooth_nr);
    if (culoss_param_applies(k, CULOSS_PARAM_SMOOTH_DR))
      culoss_param_get_default(k, CULOSS_PARAM_SMOOTH_DR, &d.smooth_dr);
  }
  apply_ops(r, d);
  if (d.kind != CULOSS_SUM && d.h && r.byte() == 0xfc) {  // terms go into sums only
    const culoss_status st = culoss_loss_add_term(d.h, d.h, 1.0);
    check_status_range(st, "culoss_loss_add_term");
    FUZZ_CHECK(st != CULOSS_SUCCESS, "culoss_loss_add_term into a non-SUM descriptor succeeded");
  }
  if (d.kind != CULOSS_SUM || depth >= 2) return;
  const int nterms = static_cast<int>(r.pick(5));
  for (int i = 0; i < nterms; ++i) {
    Desc t;
    build_desc(r, t, depth + 1);
    const int how = static_cast<int>(r.pick(8));  // 6: NULL term, 7: the sum itself
    const double w = r.pick(4) == 3 ? pick_double(r) : 1.0;
    culoss_loss term = how == 6 ? nullptr : how == 7 ? d.h : t.h;
    const culoss_status st = culoss_loss_add_term(d.h, term, w);
    check_status_range(st, "culoss_loss_add_term");
    note("%*sadd_term(weight %g, %s) -> %d\n", depth * 2, "", w,
         how == 6   ? "NULL"
         : how == 7 ? "itself"
                    : "term",
         st);
    expect_failed(st, d.h == nullptr || term == nullptr, "culoss_loss_add_term", "NULL argument");
    expect_failed(st, !std::isfinite(w), "culoss_loss_add_term", "non-finite weight");
    expect_failed(st, term == d.h, "culoss_loss_add_term", "a sum added to itself");
    expect_failed(st, d.kind != CULOSS_SUM, "culoss_loss_add_term", "not a CULOSS_SUM");
    if (st == CULOSS_SUCCESS && term == t.h) {
      if (!d.axis_known && (t.kind != CULOSS_SUM || t.axis_known)) {
        d.class_axis = t.class_axis;
        d.ignore_index = t.ignore_index;
        d.axis_known = true;
      }
      d.tame = d.tame && t.tame && std::fabs(w) <= 100 && t.smoothing_tame();
      d.any_probability_input = d.any_probability_input || t.any_probability_input ||
                                t.activation == CULOSS_ACTIVATION_NONE;
      ++d.terms;
    }
    if (t.h) d.owned.push_back(t.h);
    for (culoss_loss o : t.owned) d.owned.push_back(o);
    t.owned.clear();
  }
}

void destroy_desc(Desc& d) {
  for (culoss_loss o : d.owned) {
    const culoss_status s = culoss_loss_destroy(o);
    FUZZ_CHECK(s == CULOSS_SUCCESS, "culoss_loss_destroy of a term failed");
  }
  d.owned.clear();
  const culoss_status s = culoss_loss_destroy(d.h);
  FUZZ_CHECK(s == CULOSS_SUCCESS, "culoss_loss_destroy failed");
  d.h = nullptr;
}

// ------------------------------------------------------------------------------------------
// Tensors

enum Role { IN, TG, PW, LO, GR, ST, kRoles };
const char* const kRoleName[kRoles] = {"input",    "target",     "pixel_weight",
                                       "loss_out", "grad_input", "stats"};

constexpr int64_t kMaxElements = 6144;  // larger declared shapes get NULL data (must be refused)
bool g_cuda_built = false;

struct Tensor {
  bool pass = false;  // hand a DLTensor* to the library (else NULL)
  DLTensor t{};
  std::vector<int64_t> shape, strides;
  bool shape_null = false;
  int strides_mode = 0;
  bool negative = false, bad_ndim = false, overflow = false;
  int64_t numel = 0;  // honest element count (0 when an extent is 0)
  size_t esize = 1;
  DT dt = DT::F32;
  bool null_data = false;  // chosen: NULL data
  uint64_t byte_offset = 0;
  size_t misalign = 0;
  bool at_end = true;
  int fill = 0;
  uint64_t seed = 0;
  // after placement
  bool honest = false;
  size_t bytes = 0;
  Guarded* region = nullptr;  // its own or its alias host's
  uint8_t* start = nullptr;   // data + byte_offset
  int alias_host = -1;
  size_t alias_shift = 0;
  int device_type = kDLCPU;

  void set_shape(std::vector<int64_t> s) {
    shape = std::move(s);
    t.ndim = static_cast<int32_t>(shape.size());
  }
};

void pick_dtype(Reader& r, Tensor& x, Role role, DLDataType natural) {
  static const DLDataType floats[] = {
      {kDLFloat, 32, 1}, {kDLFloat, 64, 1}, {kDLFloat, 16, 1}, {kDLBfloat, 16, 1}};
  static const DLDataType indices[] = {{kDLInt, 64, 1}, {kDLUInt, 8, 1}, {kDLInt, 32, 1}};
  static const DLDataType odd[] = {
      {kDLInt, 64, 1},    {kDLUInt, 8, 1},  {kDLFloat, 32, 2}, {kDLFloat, 8, 1},
      {7, 32, 1},         {kDLFloat, 0, 1}, {kDLFloat, 32, 0}, {5, 64, 1},
      {6, 8, 1},          {kDLInt, 16, 1},  {kDLUInt, 64, 1},  {kDLBfloat, 32, 1},
      {kDLFloat, 128, 1}, {kDLInt, 8, 1},   {kDLFloat, 32, 4}, {255, 255, 65535}};
  const uint8_t s = r.byte();
  DLDataType d = natural;
  if (s < 160) {
    d = natural;
  } else if (s < 200) {
    // A target picks among index dtypes (odd) or float dtypes (even); other roles floats.
    d = role != TG ? floats[s % 4] : (s & 1) ? indices[(s >> 1) % 3] : floats[(s >> 1) % 4];
  } else {
    d = odd[s % count_of(odd)];
  }
  x.t.dtype = d;
  x.dt = classify(d);
  x.esize = storage_bytes(d);
}

// Device types are ints here and stored into the DLDevice's bytes as a C caller would: a value
// outside the C++ enum's range must not be loaded as a DLDeviceType by this file.
void set_device(Tensor& x, int type, int32_t id) {
  x.device_type = type;
  static_assert(sizeof(x.t.device.device_type) == sizeof(int), "DLDeviceType is int-sized");
  std::memcpy(&x.t.device.device_type, &type, sizeof type);
  x.t.device.device_id = id;
}

void pick_device(Reader& r, Tensor& x) {
  static const int devices[][2] = {
      {kDLCPU, 0},         {kDLCUDA, 0}, {kDLCPU, 3},  {kDLCUDA, 1}, {0, 0},  {kDLCUDAHost, 0},
      {kDLCUDAManaged, 0}, {255, 0},     {kDLCPU, -1}, {kDLROCM, 0}, {17, 0}, {-1, 0}};
  const uint8_t s = r.byte();
  const int k = s < 240 ? 0 : 1 + (s - 240) % static_cast<int>(count_of(devices) - 1);
  set_device(x, devices[k][0], devices[k][1]);
}

void pick_layout(Reader& r, Tensor& x) {
  const uint8_t a = r.byte(), b = r.byte();
  x.strides_mode =
      a < 200 ? 0 : 1 + (a - 200) % 5;  // NULL, compact, odd on 1s, random, zero, reversed
  x.null_data = b >= 250;
  x.at_end = (b & 1) == 0;
  x.misalign = (b & 0x70) == 0x70 ? (b >> 1 & 3) + 1 : 0;
  static const uint64_t offsets[] = {0, 0, 0, 0, 8, 16, 64, 4096, 1u << 20, 3, uint64_t(1) << 40,
                                     1};
  x.byte_offset = offsets[r.pick(count_of(offsets))];
}

// A different extent (for shapes that must not match).
void bump(int64_t& e) { e = e == std::numeric_limits<int64_t>::max() ? e - 1 : e + 1; }

// Element count and structural validity of a declared shape.
void measure(Tensor& x) {
  const int nd = x.t.ndim;
  x.bad_ndim = nd < 0 || nd > 64;
  x.negative = false;
  x.overflow = false;
  x.numel = 1;
  if (x.bad_ndim) return;
  bool zero = false;
  for (int i = 0; i < nd; ++i) {
    const int64_t e = x.shape[static_cast<size_t>(i)];
    if (e < 0) x.negative = true;
    if (e == 0) zero = true;
  }
  if (x.negative) return;
  if (zero) {
    x.numel = 0;
    return;
  }
  for (int i = 0; i < nd; ++i) {
    const int64_t e = x.shape[static_cast<size_t>(i)];
    if (x.numel > (int64_t(1) << 62) / e) {
      x.overflow = true;
      x.numel = int64_t(1) << 62;
      return;
    }
    x.numel *= e;
  }
}

void make_strides(Reader& r, Tensor& x) {
  const int nd = x.t.ndim;
  if (x.strides_mode == 0 || nd <= 0 || nd > 64) return;
  x.strides.assign(static_cast<size_t>(nd), 0);
  int64_t expected = 1;
  for (int i = nd - 1; i >= 0; --i) {
    const size_t k = static_cast<size_t>(i);
    switch (x.strides_mode) {
      case 1:
        x.strides[k] = expected;
        break;
      case 2:
        x.strides[k] = x.shape[k] == 1 ? pick_int(r) : expected;
        break;
      case 3:
        x.strides[k] = pick_int(r);
        break;
      case 4:
        x.strides[k] = 0;
        break;
      default:
        x.strides[k] = expected * 2 + 1;
        break;
    }
    const int64_t e = x.shape[k];
    if (e > 0) expected = expected > (int64_t(1) << 40) / e ? int64_t(1) << 40 : expected * e;
  }
}

bool strides_compact(const Tensor& x) {
  if (x.strides.empty()) return true;
  int64_t expected = 1;
  for (int i = x.t.ndim - 1; i >= 0; --i) {
    const size_t k = static_cast<size_t>(i);
    if (x.shape[k] != 1 && x.strides[k] != expected) return false;
    expected *= x.shape[k];
  }
  return true;
}

bool role_dtype_ok(Role role, DT dt, DT input_dt, bool index_target) {
  switch (role) {
    case IN:
      return is_float(dt);
    case TG:
      return index_target ? (dt == DT::U8 || dt == DT::I32 || dt == DT::I64)
                          : (is_float(dt) || dt == DT::U8);
    case PW:
      return dt == DT::F32;
    case LO:
      return dt == DT::F32 || dt == DT::F64;
    case GR:
      return is_float(dt) && (dt == input_dt || dt == DT::F32);
    case ST:
      return dt == DT::F64;
    default:
      return false;
  }
}

// Fills the values of a tensor's bytes. Returns whether they are "tame" (in the documented
// range, where finite outputs are promised).
bool fill_values(Tensor& x, Role role, int64_t C, int64_t ignore_index, bool* probabilities) {
  uint8_t* p = x.start;
  const int64_t n = x.numel;
  Rng g{x.seed};
  if (probabilities) *probabilities = false;
  if (n == 0 || !p) return true;
  if (role == LO || role == GR || (role == ST && x.fill < 0)) {
    std::memset(p, kPoison, x.bytes);
    return true;
  }
  if (x.dt == DT::Bad || x.fill == 99) {  // raw bytes
    for (size_t i = 0; i < x.bytes; ++i) p[i] = static_cast<uint8_t>(g.next());
    return false;
  }
  const bool index =
      role == TG && (x.dt == DT::U8 || x.dt == DT::I32 || x.dt == DT::I64) && x.fill >= 100;
  if (index) {  // labels
    const int64_t c = C > 0 && C <= 1024 ? C : 2;
    for (int64_t i = 0; i < n; ++i) {
      int64_t v;
      switch (x.fill - 100) {
        case 0:
          v = static_cast<int64_t>(g.next() % static_cast<uint64_t>(c));
          break;
        case 1:
          v = g.next() % 8 == 0 ? ignore_index
                                : static_cast<int64_t>(g.next() % static_cast<uint64_t>(c));
          break;
        case 2:
          v = static_cast<int64_t>(g.next() % 2);
          break;
        case 3:
          v = static_cast<int64_t>(g.next());
          break;
        case 5: {  // the extremes of the label types
          static const int64_t ext[] = {std::numeric_limits<int64_t>::max(),
                                        std::numeric_limits<int64_t>::min(),
                                        std::numeric_limits<int32_t>::max(),
                                        std::numeric_limits<int32_t>::min(),
                                        int64_t(1) << 31,
                                        -(int64_t(1) << 31) - 1};
          v = ext[g.next() % count_of(ext)];
          if (i == 0) v = ext[x.seed % count_of(ext)];  // the first bad label is the reported one
          break;
        }
        default: {
          static const int64_t bad[] = {-1, 255, -100, 1 << 20};
          v = g.next() % 4 == 0 ? (g.next() % 2 ? c : bad[g.next() % 4])
                                : static_cast<int64_t>(g.next() % static_cast<uint64_t>(c));
        }
      }
      if (x.dt == DT::I64)  // exact, also beyond 2^53
        std::memcpy(p + 8 * i, &v, 8);
      else
        store(p, x.dt, i, static_cast<double>(v));
    }
    return true;  // any label is safe: out-of-range ones are refused or ignored
  }
  bool tame = true, prob = true;
  for (int64_t i = 0; i < n; ++i) {
    double v = 0;
    if (role == IN) {
      switch (x.fill) {
        case 0:
          v = g.range(-4, 4);
          prob = false;
          break;
        case 1:
          v = g.unit();
          break;
        case 2: {
          static const double sat[] = {20, -20, 100, -100, 400, -400, 1e4, -1e4, 0, 1};
          v = sat[g.next() % 10];
          prob = false;
          break;
        }
        case 3:
          v = 0;
          break;
        case 4: {  // one saturated logit everywhere (all-background or all-foreground batches)
          static const double sat[] = {-1e4, -745, -400, -100, -20, 20, 100, 400, 745, 1e4};
          v = sat[x.seed % count_of(sat)];
          prob = false;
          break;
        }
        case 5:
          v = static_cast<double>(g.next() % 2);
          break;
        default: {
          static const double special[] = {NAN,   INFINITY, -INFINITY, 1e30,
                                           -1e30, 0.5,      65504,     1e-40};
          v = special[g.next() % 8];
          tame = false;
          prob = false;
        }
      }
    } else if (role == TG) {  // dense values
      switch (x.fill) {
        case 0:
          v = g.unit();
          break;
        case 1:
          v = static_cast<double>(g.next() % 2);
          break;
        case 2:
          v = 0;
          break;
        case 3:
          v = 1;
          break;
        default: {
          static const double bad[] = {NAN, -0.5, 1.5, INFINITY, 2, -1e-3, 0.5, 255};
          v = bad[g.next() % 8];
          tame = false;
        }
      }
      if (x.dt == DT::U8 && x.fill == 0) v = static_cast<double>(g.next() % 2);
    } else if (role == PW) {
      switch (x.fill) {
        case 0:
          v = g.range(0, 2);
          break;
        case 1:
          v = 1;
          break;
        case 2:
          v = 0;
          break;
        default: {
          static const double bad[] = {-1, NAN, INFINITY, 1e30, -0.0, 3.4e38, 0.5, 1};
          v = bad[g.next() % 8];
          tame = false;
        }
      }
    } else {  // ST (input of compute_from_stats): garbage statistics
      static const double any[] = {0, 1, -1, 1e300, NAN, 0.5, 1e-300, 3};
      v = x.fill == 0 ? g.range(0, 10) : any[g.next() % 8];
      tame = false;
    }
    store(p, x.dt, i, v);
  }
  if (probabilities) *probabilities = prob && tame;
  return tame;
}

// ------------------------------------------------------------------------------------------
// One scenario

struct Scenario {
  Tensor ten[kRoles];
  std::vector<std::unique_ptr<Guarded>> regions;
  std::unique_ptr<Guarded> workspace;
  size_t workspace_bytes = 0;
  bool in_place = false;
};

DLTensor* arg(Tensor& x) { return x.pass ? &x.t : nullptr; }

// Why a passed tensor must make the call fail, or NULL.
const char* tensor_must_fail(const Tensor& x, Role role, DT input_dt, bool index_target) {
  if (!x.pass) return nullptr;
  if (x.bad_ndim) return "ndim outside [0, 64]";
  if (x.shape_null && x.t.ndim > 0) return "NULL shape";
  if (x.negative) return "negative extent";
  if (!role_dtype_ok(role, x.dt, input_dt, index_target)) return "dtype outside the role's set";
  if (x.numel > 0 && !x.overflow && !strides_compact(x)) return "non-compact strides";
  if (x.device_type != kDLCPU) return "not a CPU tensor (CPU build, or bogus device)";
  if (x.numel > 0 && x.t.data == nullptr) return "NULL data with elements";
  if (x.dt != DT::Bad) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(x.start);
    const size_t es = storage_bytes(x.t.dtype);
    if (x.start ? at % es != 0 : x.byte_offset % es != 0) return "misaligned data";
  }
  return nullptr;
}

bool ranges_overlap(const Tensor& a, const Tensor& b) {
  if (!a.pass || !b.pass || !a.honest || !b.honest || !a.start || !b.start) return false;
  const size_t ab = static_cast<size_t>(a.numel) * a.esize,
               bb = static_cast<size_t>(b.numel) * b.esize;
  if (ab == 0 || bb == 0) return false;
  return a.start < b.start + bb && b.start < a.start + ab;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Built with CUDA? An input with a CUDA device and NULL data is refused for the device in a
  // CPU-only build and for the NULL data otherwise; no GPU is touched either way.
  culoss_loss l = nullptr;
  if (culoss_loss_create(&l, CULOSS_DICE) != CULOSS_SUCCESS) die("cannot create a Dice loss");
  int64_t shape[2] = {1, 1};
  DLTensor t{};
  t.device = DLDevice{kDLCUDA, 0};
  t.ndim = 2;
  t.dtype = DLDataType{kDLFloat, 32, 1};
  t.shape = shape;
  size_t bytes = 0;
  g_cuda_built = culoss_workspace_size(l, &t, &t, &bytes) != CULOSS_ERROR_UNSUPPORTED_DEVICE;
  culoss_loss_destroy(l);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool initialized = (LLVMFuzzerInitialize(nullptr, nullptr), true);
  (void)initialized;
  Reader r(data, size);

  // Header: entry point and flags.
  const int mode = static_cast<int>(r.pick(8));  // 0-4 compute, 5 stats, 6 round trip, 7 garbage
  const uint8_t flags = r.byte();
  const bool recheck = flags & 1, use_workspace = flags & 2, poke = flags & 4;
  const bool bogus_stream = (flags & 0x18) == 0x18;
  note("scenario: mode %d flags 0x%02x (cuda built: %d)\n", mode, flags, g_cuda_built);

  if (poke) {  // small API calls whose results are fixed
    FUZZ_CHECK(culoss_version() == CULOSS_VERSION, "culoss_version() disagrees with the header");
    const int v = static_cast<int>(pick_int(r));
    const char* s = fz_status_string(v);
    FUZZ_CHECK(s != nullptr && s[0] != '\0', "culoss_status_string(%d) is NULL or empty", v);
    const culoss_status d = culoss_loss_destroy(nullptr);
    check_status_range(d, "culoss_loss_destroy(NULL)");
    FUZZ_CHECK(d == CULOSS_SUCCESS, "culoss_loss_destroy(NULL) failed");
  }

  Desc desc;
  build_desc(r, desc, 0);
  if (desc.kind != CULOSS_SUM) {
    desc.any_probability_input = desc.activation == CULOSS_ACTIVATION_NONE;
  }
  const bool desc_tame = desc.tame && desc.smoothing_tame();

  Scenario sc;
  Tensor* T = sc.ten;

  // Input.
  {
    Tensor& x = T[IN];
    static const int ndims[] = {3, 2, 4, 2, 3, 5, 1, 0, 6, 65, -1, 64, 3, 4, 2, 70};
    const int nd = ndims[r.pick(count_of(ndims))];
    x.pass = r.byte() != 0xff;
    std::vector<int64_t> s;
    if (nd >= 0 && nd <= 8) {
      for (int i = 0; i < nd; ++i) s.push_back(pick_extent(r));
    } else if (nd > 0) {
      s.assign(static_cast<size_t>(nd), 1);
      s[0] = pick_extent(r);
      s[1] = pick_extent(r);
    }
    x.shape = s;
    x.t.ndim = nd;
    pick_dtype(r, x, IN, DLDataType{kDLFloat, 32, 1});
    pick_device(r, x);
    pick_layout(r, x);
    x.shape_null = r.byte() == 0xfd;
    x.fill = static_cast<int>(r.pick(8));
    if (x.fill == 7) x.fill = 99;  // raw bytes: any bit pattern
    x.seed = r.u64();
  }
  // The class axis and class count as the library will resolve them.
  const int in_nd = T[IN].t.ndim;
  int64_t axis = desc.class_axis < 0 ? desc.class_axis + in_nd : desc.class_axis;
  const bool axis_ok = in_nd >= 2 && in_nd <= 64 && axis >= 1 && axis < in_nd;
  if (!axis_ok) axis = in_nd >= 2 ? 1 : 0;
  const int64_t C = in_nd >= 1 && in_nd <= 64 ? T[IN].shape[static_cast<size_t>(axis)] : 0;
  std::vector<int64_t> pixel_shape = T[IN].shape;
  if (!pixel_shape.empty() && in_nd <= 64) pixel_shape.erase(pixel_shape.begin() + axis);
  int64_t N = in_nd >= 1 && in_nd <= 64 ? T[IN].shape[0] : 0;

  // Target: class indices (the ordinary case), dense, NULL, or a shape that does not fit.
  bool index_target = true;
  {
    Tensor& x = T[TG];
    const int how = static_cast<int>(r.pick(8));
    x.pass = how != 3;
    index_target = how == 0 || how == 2 || how == 4 || how == 6;
    std::vector<int64_t> s = index_target ? pixel_shape : T[IN].shape;
    if (how == 4 && !s.empty()) bump(s[r.pick(s.size())]);
    if (how == 5) s.push_back(2);
    if (how == 6 && !s.empty()) s.pop_back();
    if (s.size() > 64) s.resize(64);
    x.set_shape(s);
    pick_dtype(r, x, TG, index_target ? DLDataType{kDLInt, 64, 1} : DLDataType{kDLFloat, 32, 1});
    pick_device(r, x);
    pick_layout(r, x);
    x.fill = static_cast<int>(r.pick(6)) + (index_target ? 100 : 0);
    x.seed = r.u64();
  }
  // The library decides index vs dense from ndim.
  index_target = T[TG].t.ndim == in_nd - 1;

  // Pixel weight: mostly absent.
  {
    Tensor& x = T[PW];
    const int how = static_cast<int>(r.pick(8));
    x.pass = how >= 5;
    std::vector<int64_t> s = pixel_shape;
    if (how == 7 && !s.empty()) bump(s[0]);
    x.set_shape(s);
    pick_dtype(r, x, PW, DLDataType{kDLFloat, 32, 1});
    pick_device(r, x);
    pick_layout(r, x);
    x.fill = static_cast<int>(r.pick(5));
    x.seed = r.u64();
  }
  // Loss output: the candidate shapes of every reduction.
  {
    Tensor& x = T[LO];
    const int how = static_cast<int>(r.pick(10));
    x.pass = how != 9;
    std::vector<int64_t> s;
    switch (how) {
      case 1:
        s = {1};
        break;
      case 2:
        s = pixel_shape;
        break;
      case 3:
        s = T[IN].shape;
        break;
      case 4:
        s = {N, C};
        break;
      case 5:
        s = {C};
        break;
      case 6:
        s = {N};
        break;
      case 7:
        s = {2};
        break;
      case 8:
        s = {1, 1};
        break;
      default:
        break;
    }
    if (s.size() > 64) s.resize(64);
    x.set_shape(s);
    pick_dtype(r, x, LO, DLDataType{kDLFloat, 32, 1});
    if (x.dt == DT::F32 && (r.byte() & 1)) {
      x.t.dtype = DLDataType{kDLFloat, 64, 1};
      x.dt = DT::F64;
      x.esize = 8;
    }
    pick_device(r, x);
    pick_layout(r, x);
  }
  // Gradient: mostly the input's shape and dtype (or float32); sometimes absent or wrong.
  {
    Tensor& x = T[GR];
    const int how = static_cast<int>(r.pick(8));
    x.pass = how != 0 && how != 7;
    std::vector<int64_t> s = T[IN].shape;
    if (how == 6 && !s.empty()) bump(s.back());
    if (s.size() > 64) s.resize(64);
    x.set_shape(s);
    pick_dtype(r, x, GR, how == 2 ? DLDataType{kDLFloat, 32, 1} : T[IN].t.dtype);
    pick_device(r, x);
    pick_layout(r, x);
  }

  // The entry point's own arguments.
  static const double scales[] = {1.0,       0.5,   -1.0,   0.0,  2.0,   1e3,  NAN,  INFINITY,
                                  -INFINITY, 1e308, 5e-324, -0.0, 100.0, 1e-3, 0.25, 3.0};
  const double grad_scale = scales[r.pick(count_of(scales))];
  const bool scale_tame = std::fabs(grad_scale) <= 100;
  const int alias = static_cast<int>(r.pick(16));  // 0 and >= 12: none
  const size_t alias_shift_elems = r.pick(4);
  const int ws_choice = static_cast<int>(r.pick(6));

  // Shapes, strides and honest sizes.
  auto size_up = [&](Tensor& x) {
    if (!x.pass) return;
    measure(x);
    make_strides(r, x);
    x.honest = !x.bad_ndim && !x.negative && !(x.shape_null && x.t.ndim > 0) &&
               (x.numel == 0 || (!x.overflow && x.numel <= kMaxElements));
    if (x.honest && static_cast<uint64_t>(x.numel) * x.esize > (uint64_t(1) << 20))
      x.honest = false;  // odd dtypes of thousands of bits: too big to back honestly
    x.bytes = x.honest ? static_cast<size_t>(x.numel) * x.esize : 0;
    if (g_cuda_built && x.device_type == kDLCUDA) {
      // Host memory must never reach a CUDA kernel: refuse by NULL data, or by a bogus device.
      x.null_data = true;
      if (x.numel == 0) set_device(x, kDLCUDAHost, 0);
    }
  };
  for (int k = IN; k <= GR; ++k) size_up(T[k]);

  // Aliasing: place one tensor inside another's memory.
  static const int alias_pairs[][2] = {{GR, IN}, {GR, IN}, {GR, IN}, {GR, TG}, {GR, PW}, {LO, IN},
                                       {LO, TG}, {LO, GR}, {TG, IN}, {ST, IN}, {LO, PW}, {ST, GR}};
  const int alias_child = alias >= 1 && alias <= 12 ? alias_pairs[alias - 1][0] : -1;
  const int alias_host = alias >= 1 && alias <= 12 ? alias_pairs[alias - 1][1] : -1;
  auto can_alias = [&](const Tensor& c, const Tensor& h) {
    return c.pass && h.pass && c.honest && h.honest && !c.null_data && !h.null_data;
  };
  if (alias_child >= 0 && alias_child != ST && can_alias(T[alias_child], T[alias_host])) {
    Tensor &c = T[alias_child], &h = T[alias_host];
    c.alias_host = alias_host;
    // 1, 2: the input's very address; 3: one or more elements into the input; else anywhere.
    c.alias_shift = alias <= 2 ? 0 : (alias_shift_elems + (alias == 3 ? 1 : 0)) * c.esize;
    if (alias == 1) {  // the exact in-place gradient
      c.t.dtype = h.t.dtype;
      c.dt = h.dt;
      c.esize = h.esize;
      c.bytes = static_cast<size_t>(c.numel) * c.esize;
      c.byte_offset = h.byte_offset;
    }
    if (alias == 2 && c.dt != DT::F32) {  // same address, float32 gradient over a 16-bit input
      c.t.dtype = DLDataType{kDLFloat, 32, 1};
      c.dt = DT::F32;
      c.esize = 4;
      c.bytes = static_cast<size_t>(c.numel) * 4;
    }
  }

  // Allocation: hosts large enough for what they host; then the DLTensor fields.
  auto allocate = [&](int k) {
    Tensor& x = T[k];
    if (!x.pass || x.alias_host >= 0) return;
    if (!x.honest || x.null_data) {
      x.start = nullptr;
      return;
    }
    size_t need = x.bytes + x.misalign;
    for (int j = 0; j < kRoles; ++j)
      if (T[j].alias_host == k) need = std::max(need, x.misalign + T[j].alias_shift + T[j].bytes);
    sc.regions.emplace_back(new Guarded(need, x.at_end && need == x.bytes + x.misalign));
    x.region = sc.regions.back().get();
    x.start = x.region->data() + x.misalign;
  };
  auto describe = [&](int k) {
    Tensor& x = T[k];
    if (x.alias_host >= 0) {
      const Tensor& h = T[x.alias_host];
      x.region = h.region;
      x.start = h.start + x.alias_shift;
    }
    if (!x.pass) return;
    x.t.shape = x.shape_null ? nullptr : (x.shape.empty() ? nullptr : x.shape.data());
    x.t.strides = x.strides.empty() ? nullptr : x.strides.data();
    x.t.byte_offset = x.byte_offset;
    x.t.data = x.start
                   ? reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(x.start) - x.byte_offset)
                   : nullptr;
  };
  for (int k = IN; k <= GR; ++k) allocate(k);
  for (int k = IN; k <= GR; ++k) describe(k);
  sc.in_place = T[GR].pass && T[IN].pass && T[GR].alias_host == IN && T[GR].start == T[IN].start &&
                T[GR].dt == T[IN].dt && T[GR].start != nullptr;
  // The size queries read shapes only: the tensors' memory is inaccessible meanwhile.
  auto inaccessible = [&](bool on) {
    for (auto& g : sc.regions) g->access(on ? PROT_NONE : PROT_READ | PROT_WRITE);
  };

  // Statistics vector (stats modes), sized by culoss_stats_size.
  int64_t stats_count = -1;
  const bool stats_mode = mode >= 5;
  if (stats_mode) {
    const bool null_count = r.byte() == 0xff;
    int64_t count = -7;
    inaccessible(true);
    const culoss_status s =
        culoss_stats_size(desc.h, arg(T[IN]), arg(T[TG]), null_count ? nullptr : &count);
    inaccessible(false);
    check_status_range(s, "culoss_stats_size");
    note("stats_size -> %d (count %lld)\n", s, static_cast<long long>(count));
    expect_failed(s, null_count || desc.h == nullptr, "culoss_stats_size", "NULL argument");
    if (s == CULOSS_SUCCESS) {
      FUZZ_CHECK(count >= 0, "culoss_stats_size gave a negative count %lld",
                 static_cast<long long>(count));
      stats_count = count;
    }
    Tensor& x = T[ST];
    const int how = static_cast<int>(r.pick(8));
    x.pass = how != 7;
    const int64_t n = stats_count >= 0 ? stats_count : static_cast<int64_t>(r.pick(40));
    std::vector<int64_t> sh = {n};
    if (how == 6) bump(sh[0]);
    if (how == 5) sh = {1, n};
    x.set_shape(sh);
    pick_dtype(r, x, ST, DLDataType{kDLFloat, 64, 1});
    pick_device(r, x);
    pick_layout(r, x);
    x.fill = mode == 7 ? static_cast<int>(r.pick(2)) : -1;  // outputs are poisoned
    x.seed = r.u64();
    size_up(x);
    if (alias_child == ST && can_alias(x, T[alias_host]) && T[alias_host].alias_host < 0) {
      const Tensor& h = T[alias_host];  // inside the host's existing region only
      const size_t shift = alias_shift_elems * 8;
      if (h.region && shift + x.bytes <= h.region->size() - h.misalign) {
        x.alias_host = alias_host;
        x.alias_shift = shift;
      }
    }
    allocate(ST);
    describe(ST);
  }

  // Values (aliases share their host's bytes: filled once, by the host).
  bool input_prob = false;
  bool values_tame = true;
  for (int k = 0; k < kRoles; ++k) {
    Tensor& x = T[k];
    if (!x.pass || !x.start || x.alias_host >= 0) continue;
    if (k == ST && mode != 7) x.fill = -1;
    bool prob = false;
    const bool tame =
        fill_values(x, static_cast<Role>(k), C, desc.ignore_index, k == IN ? &prob : nullptr);
    if (k == IN) input_prob = prob;
    if (k == IN || k == TG || (k == PW && x.pass)) values_tame = values_tame && tame;
  }
  for (int k = 0; k < kRoles; ++k)
    if (T[k].pass && T[k].alias_host >= 0 && (k == TG || k == ST)) values_tame = false;
  if (mode == 7) values_tame = false;  // garbage statistics

  if (verbose()) {
    for (int k = 0; k < kRoles; ++k) {
      const Tensor& x = T[k];
      if (!x.pass) {
        note("  %s: NULL\n", kRoleName[k]);
        continue;
      }
      std::string s;
      for (int64_t e : x.shape) s += std::to_string(e) + ",";
      note(
          "  %s: ndim %d shape (%s) dtype %d/%d/%d dev %d:%d strides %s off %llu mis %zu data %s "
          "numel %lld alias %d+%zu fill %d\n",
          kRoleName[k], x.t.ndim, s.c_str(), x.t.dtype.code, x.t.dtype.bits, x.t.dtype.lanes,
          x.device_type, x.t.device.device_id, x.strides.empty() ? "NULL" : "set",
          static_cast<unsigned long long>(x.byte_offset), x.misalign, x.t.data ? "real" : "NULL",
          static_cast<long long>(x.numel), x.alias_host, x.alias_shift, x.fill);
    }
  }

  // Workspace.
  size_t reported = 0;
  bool reported_ok = false;
  {
    const bool null_bytes = ws_choice == 5 && r.byte() == 0xff;
    inaccessible(true);
    const culoss_status s =
        culoss_workspace_size(desc.h, arg(T[IN]), arg(T[TG]), null_bytes ? nullptr : &reported);
    inaccessible(false);
    check_status_range(s, "culoss_workspace_size");
    expect_failed(s, null_bytes || desc.h == nullptr, "culoss_workspace_size", "NULL argument");
    reported_ok = s == CULOSS_SUCCESS;
    note("workspace_size -> %d (%zu bytes)\n", s, reported);
  }
  if (use_workspace) {
    size_t want = 4096;
    if (reported_ok) {
      switch (ws_choice) {
        case 1:
          want = reported + 17;
          break;
        case 2:
          want = reported ? reported - 1 : 0;
          break;
        case 3:
          want = reported / 2;
          break;
        case 4:
          want = 0;
          break;
        default:
          want = reported;
          break;
      }
    }
    if (want <= (size_t(64) << 20)) {
      sc.workspace.reset(new Guarded(want, (flags & 0x20) != 0));
      sc.workspace_bytes = want;
    }
  }
  void* ws = sc.workspace ? sc.workspace->data() : nullptr;
  void* stream = bogus_stream ? reinterpret_cast<void*>(uintptr_t(0x1000)) : nullptr;

  // What must make the call fail.
  const DT input_dt = T[IN].dt;
  std::string must_fail;
  if (desc.h == nullptr) must_fail = "NULL descriptor";
  if (!T[IN].pass) must_fail = "NULL input";
  if (!T[TG].pass) must_fail = "NULL target";
  const bool uses_loss_out = mode <= 4 || mode >= 6;
  const bool uses_grad = mode != 5;
  if (uses_loss_out && !T[LO].pass) must_fail = "NULL loss_out";
  if (stats_mode && !T[ST].pass) must_fail = "NULL stats";
  if (uses_grad && !std::isfinite(grad_scale)) must_fail = "non-finite grad_scale";
  for (int k = 0; k < kRoles; ++k) {
    if (k == LO && !uses_loss_out) continue;
    if (k == GR && !uses_grad) continue;
    if (k == ST && !stats_mode) continue;
    const char* why =
        tensor_must_fail(T[k], static_cast<Role>(k), input_dt, k == TG ? index_target : false);
    if (why) must_fail = std::string(kRoleName[k]) + ": " + why;
  }
  if (uses_grad && T[GR].pass && !sc.in_place) {
    if (ranges_overlap(T[GR], T[IN])) must_fail = "grad_input overlaps input";
    if (ranges_overlap(T[GR], T[TG])) must_fail = "grad_input overlaps target";
    if (T[PW].pass && ranges_overlap(T[GR], T[PW])) must_fail = "grad_input overlaps pixel_weight";
  }
  if (uses_loss_out)
    for (int k : {IN, TG, PW, GR})
      if ((k != GR || uses_grad) && ranges_overlap(T[LO], T[k]))
        must_fail = std::string("loss_out overlaps ") + kRoleName[k];
  if (stats_mode && mode == 5)
    for (int k : {IN, TG, PW})
      if (ranges_overlap(T[ST], T[k])) must_fail = std::string("stats overlaps ") + kRoleName[k];
  if (stats_mode && mode != 5)
    for (int k : {GR, LO})
      if (ranges_overlap(T[ST], T[k])) must_fail = std::string("stats overlaps ") + kRoleName[k];

  bool tame = desc_tame && scale_tame && values_tame && (!desc.any_probability_input || input_prob);

  if (verbose())
    note("  grad_scale %g workspace %s (%zu bytes) tame %d must_fail \"%s\"\n", grad_scale,
         ws ? "given" : "NULL", sc.workspace_bytes, tame, must_fail.c_str());

  // Protection: what the call may only read is mapped read-only.
  auto protect = [&](bool ro) {
    for (int k : {IN, TG, PW, ST}) {
      Tensor& x = T[k];
      if (!x.pass || !x.region || x.alias_host >= 0) continue;
      if (k == ST && mode == 5) continue;  // an output there
      bool hosts_output = false;
      for (int j : {LO, GR, ST})
        if (T[j].pass && T[j].alias_host == k && (j != ST || mode == 5)) hosts_output = true;
      if (k == IN && sc.in_place) continue;
      if (hosts_output && !must_fail.empty()) hosts_output = false;  // refused: nothing writes
      if (!hosts_output) x.region->read_only(ro);
    }
  };

  auto snapshot_all = [&]() {
    std::vector<std::vector<uint8_t>> s;
    for (auto& g : sc.regions) s.push_back(g->snapshot());
    return s;
  };
  auto call = [&](void* workspace, size_t workspace_bytes, const char* what) -> culoss_status {
    protect(true);
    culoss_status s;
    if (mode <= 4)
      s = culoss_compute(desc.h, arg(T[IN]), arg(T[TG]), arg(T[PW]), arg(T[LO]), arg(T[GR]),
                         grad_scale, workspace, workspace_bytes, stream);
    else if (mode == 5)
      s = culoss_compute_stats(desc.h, arg(T[IN]), arg(T[TG]), arg(T[PW]), arg(T[ST]), workspace,
                               workspace_bytes, stream);
    else
      s = culoss_compute_from_stats(desc.h, arg(T[IN]), arg(T[TG]), arg(T[PW]), arg(T[ST]),
                                    arg(T[LO]), arg(T[GR]), grad_scale, workspace, workspace_bytes,
                                    stream);
    protect(false);
    check_status_range(s, what);
    return s;
  };
  auto check_canaries = [&](const char* what) {
    for (auto& g : sc.regions) FUZZ_CHECK(g->canaries_intact(), "%s wrote next to a tensor", what);
    for (int k = 0; k < kRoles; ++k) {  // the bytes skipped to misalign a tensor
      const Tensor& x = T[k];
      if (!x.pass || !x.region || x.alias_host >= 0) continue;
      for (const uint8_t* p = x.region->data(); p < x.start; ++p)
        FUZZ_CHECK(*p == kCanary, "%s wrote just before %s", what, kRoleName[k]);
    }
    if (sc.workspace)
      FUZZ_CHECK(sc.workspace->canaries_intact(), "%s wrote outside its workspace", what);
  };
  auto outputs_finite = [&](const char* what) {
    for (int k : {LO, GR, ST}) {
      const Tensor& x = T[k];
      if (!x.pass || !x.start) continue;
      if (k == ST && mode != 5) continue;
      if (k == LO && mode == 5) continue;
      if (k == GR && (mode == 5 || x.dt == DT::F16)) continue;  // fp16 may overflow legitimately
      for (int64_t i = 0; i < x.numel; ++i)
        FUZZ_CHECK(element_finite(x.start, x.dt, i), "%s: %s[%lld] is not finite for tame inputs",
                   what, kRoleName[k], static_cast<long long>(i));
    }
  };

  // Round trip: this rank's statistics first (into the stats tensor), then from_stats.
  bool round_trip_stats = false;
  if (mode == 6 && T[ST].pass && T[ST].start && stats_count >= 0 && T[ST].numel == stats_count &&
      T[ST].alias_host < 0) {
    const culoss_status s = culoss_compute_stats(desc.h, arg(T[IN]), arg(T[TG]), arg(T[PW]),
                                                 arg(T[ST]), nullptr, 0, stream);
    check_status_range(s, "culoss_compute_stats (round trip)");
    note("compute_stats (round trip) -> %d\n", s);
    round_trip_stats = s == CULOSS_SUCCESS;
  }
  if (mode == 6 && !round_trip_stats) tame = false;  // the statistics are poison bytes

  const auto before = snapshot_all();
  const char* what = mode <= 4   ? "culoss_compute"
                     : mode == 5 ? "culoss_compute_stats"
                                 : "culoss_compute_from_stats";
  const culoss_status s = call(ws, sc.workspace_bytes, what);
  note("%s -> %d %s\n", what, s, culoss_last_error());
  check_canaries(what);
  if (s != CULOSS_SUCCESS) {
    for (size_t i = 0; i < sc.regions.size(); ++i)
      FUZZ_CHECK(sc.regions[i]->equals(before[i]), "%s failed (%s) but changed a tensor's bytes",
                 what, culoss_status_string(s));
  } else {
    FUZZ_CHECK(must_fail.empty(), "%s succeeded but must be refused: %s", what, must_fail.c_str());
    if (tame) outputs_finite(what);
  }
  if (ws && reported_ok && sc.workspace_bytes >= reported)
    FUZZ_CHECK(s != CULOSS_ERROR_INSUFFICIENT_WORKSPACE,
               "%s: workspace of %zu bytes refused though culoss_workspace_size said %zu", what,
               sc.workspace_bytes, reported);

  // Determinism: the same call again (with the other workspace choice) writes the same bytes.
  if (s == CULOSS_SUCCESS && recheck) {
    const auto first = snapshot_all();
    for (size_t i = 0; i < sc.regions.size(); ++i) sc.regions[i]->restore(before[i]);
    const bool swap = reported_ok && reported <= (size_t(64) << 20);
    std::unique_ptr<Guarded> other;
    void* ws2 = nullptr;
    size_t ws2_bytes = 0;
    if (swap && !ws) {
      other.reset(new Guarded(reported, true));
      ws2 = other->data();
      ws2_bytes = reported;
    }
    const culoss_status s2 = call(ws2, ws2_bytes, what);
    check_canaries(what);
    if (other) FUZZ_CHECK(other->canaries_intact(), "%s wrote outside its workspace", what);
    // Without a caller workspace the library allocates its own, which alloc_cap.cpp refuses
    // above its cap: the first call, given a workspace, may succeed where this one cannot.
    if (s2 != CULOSS_ERROR_OUT_OF_MEMORY || ws2) {
      FUZZ_CHECK(s2 == CULOSS_SUCCESS, "%s succeeded, then failed (%s) on the same tensors", what,
                 culoss_status_string(s2));
      for (size_t i = 0; i < sc.regions.size(); ++i)
        FUZZ_CHECK(sc.regions[i]->equals(first[i]),
                   "%s is not deterministic: a second call wrote different bytes", what);
    } else {
      for (size_t i = 0; i < sc.regions.size(); ++i) sc.regions[i]->restore(first[i]);
    }
  }

  // Round trip: compute_from_stats on this rank's own statistics equals culoss_compute.
  if (mode == 6 && s == CULOSS_SUCCESS && tame && T[LO].pass && T[LO].start &&
      T[LO].alias_host < 0 && T[LO].numel == 1 && T[LO].dt == DT::F64 && !sc.in_place) {
    const double from_stats = element_value(T[LO].start, DT::F64, 0);
    std::memset(T[LO].start, kPoison, T[LO].bytes);
    // The statistics API runs the CPU's generic passes; so does this call (its float32 fast
    // path agrees with them to 1e-5 only, which is not what this round trip checks).
    const char* fast_env = std::getenv("CULOSS_CPU_FAST_PATH");
    const std::string fast_saved = fast_env ? fast_env : "";
    setenv("CULOSS_CPU_FAST_PATH", "0", 1);
    const culoss_status s3 = culoss_compute(desc.h, arg(T[IN]), arg(T[TG]), arg(T[PW]), arg(T[LO]),
                                            nullptr, grad_scale, nullptr, 0, stream);
    if (fast_env)
      setenv("CULOSS_CPU_FAST_PATH", fast_saved.c_str(), 1);
    else
      unsetenv("CULOSS_CPU_FAST_PATH");
    check_status_range(s3, "culoss_compute (round trip)");
    if (s3 == CULOSS_SUCCESS) {
      const double direct = element_value(T[LO].start, DT::F64, 0);
      FUZZ_CHECK(std::fabs(from_stats - direct) <= 1e-9 + 1e-6 * std::fabs(direct),
                 "compute_from_stats(own statistics) = %.17g but compute = %.17g", from_stats,
                 direct);
    }
  }

  destroy_desc(desc);
  return 0;
}

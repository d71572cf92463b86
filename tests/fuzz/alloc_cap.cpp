// Replaces the global operator new/delete of the fuzz executables so that a request above
// kCap (32 MiB) throws std::bad_alloc, as it would on a machine without that much memory.
//
// Why: shapes with no element (an extent of 0) may still have huge N x C, and the library then
// asks for a huge workspace, which it must report as CULOSS_ERROR_OUT_OF_MEMORY. AddressSanitizer's
// own operator new aborts on impossible sizes instead of throwing (allocator_may_return_null does
// not apply to it), and without ASan an allocation of some GiB could succeed and be zero-filled.
// The cap also bounds the work of one call: the library's work on an empty tensor is linear in
// its N x C statistics, so the fuzzer cannot spend seconds per input on a legal 2^20 x 2^5 batch
// of nothing (the fuzz tensors themselves need a few KiB). Every allocation still goes through
// malloc/free, which the sanitizers track.
#include <cstdlib>
#include <new>

namespace {
constexpr std::size_t kCap = std::size_t(32) << 20;  // far below libFuzzer's malloc limit

void* allocate(std::size_t n) {
  if (n > kCap) throw std::bad_alloc();
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* allocate_nothrow(std::size_t n) noexcept {
  if (n > kCap) return nullptr;
  return std::malloc(n ? n : 1);
}
void* allocate_aligned(std::size_t n, std::align_val_t a) {
  if (n > kCap) throw std::bad_alloc();
  const std::size_t al = static_cast<std::size_t>(a);
  void* p = nullptr;
  if (posix_memalign(&p, al < sizeof(void*) ? sizeof(void*) : al, n ? n : 1) != 0) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return allocate_nothrow(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return allocate_nothrow(n); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

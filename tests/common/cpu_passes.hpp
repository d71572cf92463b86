// The CPU's generic passes (double precision) instead of its float32 SIMD fast path, for the scope
// of a guard: identities that hold to the last bit (or to 1e-12) between two calls hold only when
// both run the same passes, and a fast-path call and a generic one differ by the fast path's
// documented tolerance (docs/reference.md, "CPU fast path"). The switch is the library's own
// environment variable, read on every call.
#pragma once

#include <cstdlib>

namespace culoss_test {

struct GenericCpuPasses {
  GenericCpuPasses() { setenv("CULOSS_CPU_FAST_PATH", "0", 1); }
  ~GenericCpuPasses() { unsetenv("CULOSS_CPU_FAST_PATH"); }
  GenericCpuPasses(const GenericCpuPasses&) = delete;
  GenericCpuPasses& operator=(const GenericCpuPasses&) = delete;
};

}  // namespace culoss_test

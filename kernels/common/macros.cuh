// Portability macros for code shared by the CPU backend (host C++) and CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define CULOSS_HD __host__ __device__ __forceinline__
#else
#define CULOSS_HD inline
#endif

#!/usr/bin/env bash
# Installs what building and testing culoss needs, from Debian's packages, when it is missing.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail
need=()
[ -f /usr/include/dlpack/dlpack.h ] || need+=(libdlpack-dev)
# Google Highway (headers only): the CPU backend's SIMD fast path (without it, generic passes only).
[ -f /usr/include/hwy/contrib/math/math-inl.h ] || need+=(libhwy-dev)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ "${CULOSS_NEED_GTEST:-0}" = 1 ] && [ ! -f /usr/include/gtest/gtest.h ]; then need+=(libgtest-dev); fi
if [ "${CULOSS_NEED_BENCH:-0}" = 1 ] && [ ! -f /usr/include/benchmark/benchmark.h ]; then need+=(libbenchmark-dev); fi
if [ "${CULOSS_NEED_PNG:-0}" = 1 ] && [ ! -f /usr/include/png.h ]; then need+=(libpng-dev); fi
# CULOSS_NEED_MPI=1: Open MPI for examples/mpi_dice.c and its ctest mpi_two_ranks.
if [ "${CULOSS_NEED_MPI:-0}" = 1 ]; then
  if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null ||
    [ ! -f "/usr/lib/$(uname -m)-linux-gnu/openmpi/include/mpi.h" ]; then
    need+=(openmpi-bin libopenmpi-dev)
  fi
fi
# CULOSS_NEED_CLANG=1: clang with libFuzzer and the sanitizer runtimes (tests/fuzz, CULOSS_FUZZ).
if [ "${CULOSS_NEED_CLANG:-0}" = 1 ]; then
  command -v clang >/dev/null && command -v clang++ >/dev/null || need+=(clang)
  if ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-"$(uname -m)".a >/dev/null 2>&1; then
    need+=(libclang-rt-dev)
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "culoss: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

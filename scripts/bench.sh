#!/usr/bin/env bash
# Builds culoss with the Google Benchmark suite and runs culoss_bench; every argument is passed
# to it (e.g. --benchmark_filter='^cpu/' --benchmark_min_time=0.05). CUDA is built for
# CMAKE_CUDA_ARCHITECTURES (default 90) when nvcc is found; the CUDA benchmarks skip without a
# device. See benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
if [ ! -f /usr/include/benchmark/benchmark.h ]; then
  echo "culoss: installing libbenchmark-dev"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libbenchmark-dev >/dev/null
fi
BUILD=${BUILD:-build-bench}
configure_log=$(cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCULOSS_BUILD_BENCHMARKS=ON \
  -DCULOSS_BUILD_TESTS=OFF -DCULOSS_BUILD_EXAMPLES=OFF \
  -DCMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90}" ${CMAKE_ARGS:-})
if grep -q "Google Benchmark not found" <<<"$configure_log"; then
  echo "culoss: CMake did not find Google Benchmark (pass -Dbenchmark_DIR=... in CMAKE_ARGS)" >&2
  exit 1
fi
cmake --build "$BUILD" -j"$(nproc)" --target culoss_bench >/dev/null
exec "$BUILD/benchmarks/culoss_bench" "$@"

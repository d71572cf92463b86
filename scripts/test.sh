#!/usr/bin/env bash
# Builds culoss with its tests and runs them all (ctest). CUDA is built for one architecture
# (CMAKE_CUDA_ARCHITECTURES, default 90) when nvcc is found; CUDA tests skip without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
CULOSS_NEED_GTEST=1 CULOSS_NEED_BENCH=1 source scripts/deps.sh
BUILD=${BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCULOSS_BUILD_TESTS=ON -DCULOSS_BUILD_BENCHMARKS=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90}" ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)"

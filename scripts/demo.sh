#!/usr/bin/env bash
# Builds culoss and runs the demo: each loss (region, element-wise, a fused sum) and its gradient on a
# synthetic batch, on the CPU, and on the GPU too when one is present.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCULOSS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target region_demo >/dev/null
exec "$BUILD/examples/region_demo" "$@"

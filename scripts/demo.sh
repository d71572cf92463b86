#!/usr/bin/env bash
# Builds culoss and runs culoss-demo (examples/demo, docs/demo.md): a small CNN trained on a
# synthetic segmentation set with each loss (cross-entropy, Dice, Dice + CE, focal, Tversky,
# Lovasz-Softmax, and marginal cross-entropy on labels with missing annotations), then a table of
# held-out Dice/IoU per class and the time spent inside culoss. About a minute on 2 CPU cores.
# Every argument goes to culoss-demo (e.g. --quick, --device cuda, --steps 800, --help); the
# pictures go to $BUILD/demo unless --out says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
CULOSS_NEED_PNG=1 source scripts/deps.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCULOSS_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90}" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target culoss-demo >/dev/null
exec "$BUILD/examples/culoss-demo" --out "$BUILD/demo" "$@"

#!/usr/bin/env bash
# Builds culoss with its tests and runs them all (ctest). CUDA is built for one architecture
# (CMAKE_CUDA_ARCHITECTURES, default 90) when nvcc is found; CUDA tests skip without a device.
set -euo pipefail
cd "$(dirname "$0")/.."
CULOSS_NEED_GTEST=1 CULOSS_NEED_BENCH=1 CULOSS_NEED_MPI=1 CULOSS_NEED_PNG=1 source scripts/deps.sh
BUILD=${BUILD:-build-test}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCULOSS_BUILD_TESTS=ON -DCULOSS_BUILD_BENCHMARKS=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-90}" ${CMAKE_ARGS:-}
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)"

# Python package: `pip install ./bindings/python` builds libculoss with this repository's CMake
# (CMAKE_ARGS carries over, e.g. a CPU-only build) and bundles it; then its pytest suite runs.
# The venv sees the system's packages, so PyTorch/CuPy/JAX tests run where those are installed
# (they are never installed here). CULOSS_SKIP_PYTHON=1 skips this step.
if [ "${CULOSS_SKIP_PYTHON:-0}" != 1 ]; then
  PY_VENV="$(cd "$BUILD" && pwd)/python-venv"
  if [ ! -x "$PY_VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv --system-site-packages "$PY_VENV"
  fi
  PY="$PY_VENV/bin/python"
  "$PY" -c "import numpy, pytest" 2>/dev/null || "$PY" -m pip install -q numpy pytest
  "$PY" -m pip install -q -C build-dir="$(cd "$BUILD" && pwd)/python-build" ./bindings/python
  (cd / && "$PY" -c "import culoss; print('culoss', culoss.__version__, 'from', culoss.library_path())")
  set +e
  "$PY" -m pytest tests/python -q -p no:cacheprovider
  rc=$?
  set -e
  if [ "$rc" = 5 ]; then
    echo "culoss: pytest collected no Python tests" >&2
    exit 1
  fi
  [ "$rc" = 0 ] || exit "$rc"
fi

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
# (CMAKE_ARGS carries over, e.g. a CPU-only build) and bundles it; then its pytest suite runs in
# one virtual environment shared by every build (CULOSS_VENV, default build-venv/), which also
# sees the system's packages. The suite cross-checks culoss against the libraries users compare
# it with, so they are installed into that environment when missing: PyTorch, torchvision,
# MONAI, segmentation-models-pytorch, kornia and JAX (CPU), about 3 GB from PyPI the first time
# (PyPI's PyTorch wheel brings its CUDA libraries). CULOSS_SKIP_FRAMEWORKS=1 skips that (an
# offline machine: their tests are then skipped); CULOSS_SKIP_PYTHON=1 skips the Python step.
if [ "${CULOSS_SKIP_PYTHON:-0}" != 1 ]; then
  PY_VENV="${CULOSS_VENV:-build-venv}"
  mkdir -p "$(dirname "$PY_VENV")"
  PY_VENV="$(cd "$(dirname "$PY_VENV")" && pwd)/$(basename "$PY_VENV")"
  if [ ! -x "$PY_VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv --system-site-packages "$PY_VENV"
  fi
  PY="$PY_VENV/bin/python"
  "$PY" -c "import numpy, pytest" 2>/dev/null || "$PY" -m pip install -q numpy pytest
  if [ "${CULOSS_SKIP_FRAMEWORKS:-0}" != 1 ]; then
    missing=()
    for module_package in torch:torch torchvision:torchvision monai:monai \
      segmentation_models_pytorch:segmentation-models-pytorch kornia:kornia jax:jax; do
      "$PY" -c "import ${module_package%%:*}" 2>/dev/null || missing+=("${module_package#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "culoss: installing ${missing[*]} for the cross-checks (CULOSS_SKIP_FRAMEWORKS=1 skips)"
      "$PY" -m pip install -q "${missing[@]}"
    fi
  fi
  "$PY" -m pip install -q -C build-dir="$(cd "$BUILD" && pwd)/python-build" "./bindings/python[test]"
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

#!/usr/bin/env bash
# Builds culoss on this machine (no GPU needed) for a GPU machine (by default sm_90: H100/H200)
# that has the CUDA toolkit but may lack GoogleTest, Google Benchmark and a network
# (docs/gpu-check.md describes the whole procedure):
#   - configures a Release build in BUILD (default build-gpu) with the CUDA backend for
#     CMAKE_CUDA_ARCHITECTURES (default 90), the tests (culoss_cuda_tests, GoogleTest linked
#     statically from Debian's libgtest-dev) and the benchmarks (culoss_bench);
#   - builds libculoss, culoss_cuda_tests and culoss_bench;
#   - copies Debian's libbenchmark.so.1debian beside culoss_bench (cp -L: a copied link would
#     dangle on the other machine);
#   - prints the command to run there, tools/gpu_check.sh.
# Usage: tools/prepare_gpu_build.sh [BUILD_DIR]      (env: CMAKE_CUDA_ARCHITECTURES, JOBS)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build-gpu}}
ARCH=${CMAKE_CUDA_ARCHITECTURES:-90}
JOBS=${JOBS:-$(nproc)}

command -v nvcc >/dev/null || { echo "prepare_gpu_build: nvcc is not on the PATH" >&2; exit 1; }
[ -f /usr/include/benchmark/benchmark.h ] || {
  echo "prepare_gpu_build: Google Benchmark is missing: apt-get install libbenchmark-dev" >&2; exit 1; }
[ -d /usr/include/gtest ] || {
  echo "prepare_gpu_build: GoogleTest is missing: apt-get install libgtest-dev" >&2; exit 1; }

start=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCULOSS_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCULOSS_BUILD_TESTS=ON -DCULOSS_BUILD_BENCHMARKS=ON \
  -DCULOSS_BUILD_EXAMPLES=OFF >"$BUILD.configure.log" 2>&1 || {
  cat "$BUILD.configure.log" >&2; exit 1; }
grep -q "CMAKE_CUDA_COMPILER:.*nvcc" "$BUILD/CMakeCache.txt" || {
  echo "prepare_gpu_build: CMake did not enable CUDA (see $BUILD.configure.log)" >&2; exit 1; }
cmake --build "$BUILD" -j"$JOBS" --target culoss culoss_cuda_tests culoss_bench

bench_dir="$BUILD/benchmarks"
[ -x "$bench_dir/culoss_bench" ] || { echo "prepare_gpu_build: culoss_bench was not built" >&2; exit 1; }
lib=$(ls /usr/lib/*/libbenchmark.so.1debian 2>/dev/null | head -n1 || true)
if [ -n "$lib" ]; then
  cp -L "$lib" "$bench_dir/"
else
  echo "prepare_gpu_build: WARNING: libbenchmark.so.1debian not found; culoss_bench will not start there" >&2
fi
rm -f "$BUILD.configure.log"

# A GPU machine without network may have PyTorch and torchvision but not MONAI,
# segmentation_models_pytorch or kornia: fetch their wheels (without dependencies) into
# BUILD/wheels, which is copied with the build; tools/gpu_check.sh installs them offline.
# NO_WHEELS=1 skips this; a failure only costs those benchmark rows.
if [ -z "${NO_WHEELS:-}" ]; then
  mkdir -p "$BUILD/wheels"
  PY=${PYTHON:-python3}
  ver() { $PY -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }
  specs=()
  for pkg in monai segmentation_models_pytorch kornia kornia_rs; do
    v=$(ver "$pkg"); specs+=("$pkg${v:+==$v}")
  done
  if $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
       --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
       --platform manylinux2014_x86_64 --platform any -d "$BUILD/wheels" "${specs[@]}"; then
    echo "prepare_gpu_build: wheels for the GPU machine: $(cd "$BUILD/wheels" && ls | tr '\n' ' ')"
  else
    echo "prepare_gpu_build: WARNING: could not download ${specs[*]}; those rows will be skipped there" >&2
  fi
fi

# CMake's object files are not needed on the GPU machine: drop them if the folder gets big.
size_mib=$(du -sm "$BUILD" | cut -f1)
if [ "$size_mib" -gt 48 ]; then
  find "$BUILD" -name '*.o' -delete
  size_mib=$(du -sm "$BUILD" | cut -f1)
fi
echo
echo "prepare_gpu_build: $BUILD built for sm_$ARCH in $(( $(date +%s) - start )) s, ${size_mib} MiB"
ls -l "$BUILD/src/libculoss.so"* "$BUILD/tests/culoss_cuda_tests" "$bench_dir/culoss_bench" \
      "$bench_dir"/libbenchmark.so.1debian 2>/dev/null | sed 's/^/  /'
cat <<EOF

Copy this checkout together with $BUILD/ (keeping its symbolic links) to the GPU machine, then
run there, from the checkout (OUTPUT_DIR: any folder; the run keeps within GPU_CHECK_BUDGET, 560 s):
  bash tools/gpu_check.sh $BUILD OUTPUT_DIR
Only the Python benchmark, on more shapes:
  GPU_CHECK_STEPS=bench_vs_torch GPU_CHECK_BUDGET=560 BENCH_VS_TORCH_ARGS='--shapes 16x4x512x512,8x19x512x1024,2x4x128x128x128,32x1x1024x1024,2x4x64x64' bash tools/gpu_check.sh $BUILD OUTPUT_DIR
EOF

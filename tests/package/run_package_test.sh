#!/usr/bin/env bash
# Installs an already-built culoss tree into a temporary prefix and checks it as a user would:
#   1. the installed files are there (header, shared + static library, CMake package, .pc);
#   2. libculoss.so exports only culoss_* symbols;
#   3. a consumer project finds the package with find_package(culoss) via CMAKE_PREFIX_PATH,
#      links culoss::culoss (and culoss::culoss_static), builds and runs;
#   4. the same main.c builds and runs with `pkg-config --cflags --libs culoss` (and --static).
#
# Usage: run_package_test.sh BUILD_DIR [--cmake PATH] [--cc PATH] [--cxx PATH] [--config CFG]
#                                      [--cuda-root DIR] [--keep]
# The work directory is BUILD_DIR/package-test.XXXXXX; it is removed on success unless --keep.
set -euo pipefail

fail() {
  echo "run_package_test.sh: FAILED: $*" >&2
  exit 1
}
step() { echo "==> $*"; }

[[ $# -ge 1 ]] || fail "usage: $0 BUILD_DIR [--cmake PATH] [--cc PATH] [--cxx PATH] [--config CFG] [--cuda-root DIR] [--keep]"
build_dir=$1
shift
cmake_cmd=cmake
cc=${CC:-cc}
cxx=${CXX:-c++}
config=
cuda_root=
keep=0
while [[ $# -gt 0 ]]; do
  case $1 in
    # ctest may drop an empty value (e.g. --config with no build type): take only a non-option.
    --cmake | --cc | --cxx | --config | --cuda-root)
      opt=$1
      val=
      shift
      if [[ $# -gt 0 && $1 != --* ]]; then val=$1; shift; fi
      case $opt in
        --cmake) if [[ -n $val ]]; then cmake_cmd=$val; fi ;;
        --cc) if [[ -n $val ]]; then cc=$val; fi ;;
        --cxx) if [[ -n $val ]]; then cxx=$val; fi ;;
        --config) config=$val ;;
        --cuda-root) cuda_root=$val ;;
      esac
      ;;
    --keep) keep=1; shift ;;
    *) fail "unknown argument '$1'" ;;
  esac
done

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[[ -d $build_dir ]] || fail "build directory '$build_dir' does not exist"
build_dir=$(cd "$build_dir" && pwd)
[[ -f $build_dir/CMakeCache.txt ]] || fail "'$build_dir' is not a configured CMake build directory"
[[ -f $build_dir/cmake_install.cmake ]] || fail "'$build_dir' has no install rules (cmake_install.cmake)"

# Work directories of earlier failed runs are kept for inspection; remove them now.
rm -rf "$build_dir"/package-test.*
work=$(mktemp -d "$build_dir/package-test.XXXXXX")
cleanup() {
  local rc=$?
  if [[ $rc -eq 0 && $keep -eq 0 ]]; then
    rm -rf "$work"
  else
    echo "run_package_test.sh: work directory kept: $work" >&2
  fi
}
trap cleanup EXIT
prefix=$work/prefix

config_args=()
build_config_args=()
if [[ -n $config ]]; then
  config_args=(--config "$config")
  build_config_args=(--config "$config")
fi

# ---------------------------------------------------------------------------------------------
step "installing $build_dir into $prefix"
"$cmake_cmd" --install "$build_dir" --prefix "$prefix" "${config_args[@]}" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "cmake --install failed"; }

header=$prefix/include/culoss/culoss.h
[[ -f $header ]] || fail "the header was not installed at $header"
so=$(find "$prefix" -name 'libculoss.so' \( -type f -o -type l \) | head -n 1)
[[ -n $so ]] || fail "libculoss.so was not installed under $prefix"
libdir=$(dirname "$so")
[[ -f $libdir/libculoss.a ]] || fail "libculoss.a was not installed beside $so"
[[ -f $libdir/cmake/culoss/culossConfig.cmake ]] || fail "culossConfig.cmake not installed in $libdir/cmake/culoss"
[[ -f $libdir/cmake/culoss/culossConfigVersion.cmake ]] || fail "culossConfigVersion.cmake not installed"
[[ -f $libdir/cmake/culoss/culossTargets.cmake ]] || fail "culossTargets.cmake not installed"
[[ -f $libdir/pkgconfig/culoss.pc ]] || fail "culoss.pc not installed in $libdir/pkgconfig"
so_real=$(readlink -f "$so")
soname=$(objdump -p "$so_real" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
[[ -n $soname ]] || fail "libculoss.so has no SONAME"
[[ -e $libdir/$soname ]] || fail "the SONAME link $soname was not installed"

major=$(awk '$1 == "#define" && $2 == "CULOSS_VERSION_MAJOR" {print $3}' "$header")
minor=$(awk '$1 == "#define" && $2 == "CULOSS_VERSION_MINOR" {print $3}' "$header")
patch=$(awk '$1 == "#define" && $2 == "CULOSS_VERSION_PATCH" {print $3}' "$header")
version=$major.$minor.$patch
echo "    culoss $version, $so_real (SONAME $soname)"

# ---------------------------------------------------------------------------------------------
step "checking that libculoss.so exports only culoss_* symbols"
command -v nm >/dev/null || fail "nm (binutils) is needed for the exported-symbol check"
nm -D --defined-only "$so_real" >"$work/dynsym.txt" ||
  fail "nm -D --defined-only $so_real failed"
# Lines are "ADDRESS TYPE NAME[@VERSION]"; keep code and data symbols (not 'A' version nodes).
awk 'NF >= 3 && $2 ~ /^[TtDdBbRrVvWwGgSsiu]$/ {sub(/@.*/, "", $3); print $3}' \
  "$work/dynsym.txt" | sort -u >"$work/exported.txt"
offenders=$(grep -v '^culoss_' "$work/exported.txt" || true)
if [[ -n $offenders ]]; then
  echo "libculoss.so exports symbols outside the culoss_ namespace:" >&2
  while IFS= read -r name; do echo "    $name" >&2; done <<<"$offenders"
  fail "$(wc -l <<<"$offenders") exported symbol(s) do not start with culoss_ (check src/exports.map and visibility)"
fi
for sym in culoss_version culoss_status_string culoss_last_error culoss_loss_create \
  culoss_loss_destroy culoss_compute culoss_workspace_size; do
  grep -qx "$sym" "$work/exported.txt" || fail "libculoss.so does not export $sym"
done
echo "    $(wc -l <"$work/exported.txt") exported symbols, all culoss_*"

# ---------------------------------------------------------------------------------------------
step "building the find_package(culoss) consumer"
cuda_args=()
if [[ -n $cuda_root ]]; then cuda_args=("-DCUDAToolkit_ROOT=$cuda_root"); fi
build_type_args=()
if [[ -n $config ]]; then build_type_args=("-DCMAKE_BUILD_TYPE=$config"); fi
"$cmake_cmd" -S "$script_dir" -B "$work/consumer" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  "${build_type_args[@]}" "${cuda_args[@]}" >"$work/consumer-configure.log" 2>&1 ||
  { cat "$work/consumer-configure.log" >&2; fail "configuring the consumer project failed"; }
found_dir=$(sed -n 's/^culoss_DIR:PATH=//p' "$work/consumer/CMakeCache.txt")
case $found_dir in
  "$prefix"/*) ;;
  *) fail "find_package(culoss) found '$found_dir', not the package installed in $prefix" ;;
esac
"$cmake_cmd" --build "$work/consumer" "${build_config_args[@]}" >"$work/consumer-build.log" 2>&1 ||
  { cat "$work/consumer-build.log" >&2; fail "building the consumer project failed"; }
for exe in consumer consumer_static; do
  path=$(find "$work/consumer" -name "$exe" -type f -perm -u+x | head -n 1)
  [[ -n $path ]] || fail "the consumer build produced no '$exe' executable"
  "$path" || fail "$exe (find_package) failed"
done
consumer_libs=$(ldd "$(find "$work/consumer" -name consumer -type f -perm -u+x | head -n 1)")
grep -q "libculoss\.so.* => $prefix/" <<<"$consumer_libs" ||
  fail "the find_package consumer does not load libculoss.so from $prefix:"$'\n'"$consumer_libs"

# ---------------------------------------------------------------------------------------------
if ! command -v pkg-config >/dev/null; then
  echo "NOTE: pkg-config is not installed; the pkg-config part of this test is skipped" >&2
  exit 0
fi
step "building main.c with pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pc_version=$(pkg-config --modversion culoss) || fail "pkg-config does not find culoss in $libdir/pkgconfig"
[[ $pc_version == "$version" ]] || fail "pkg-config says culoss $pc_version, the header says $version"
pc_libdir=$(pkg-config --variable=libdir culoss)
[[ $(readlink -f "$pc_libdir") == $(readlink -f "$libdir") ]] ||
  fail "culoss.pc libdir is '$pc_libdir', expected $libdir (is the .pc file relocatable?)"
read -r -a pc_flags <<<"$(pkg-config --cflags --libs culoss)"
echo "    pkg-config --cflags --libs culoss: ${pc_flags[*]}"
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic "$script_dir/main.c" "${pc_flags[@]}" \
  -Wl,-rpath,"$libdir" -o "$work/consumer_pc" ||
  fail "compiling main.c with \$(pkg-config --cflags --libs culoss) failed"
"$work/consumer_pc" || fail "consumer_pc (pkg-config, shared) failed"

# Static: the same flags with --static, libculoss.a instead of -lculoss; checks Libs.private.
read -r -a pc_static_flags <<<"$(pkg-config --static --cflags --libs culoss)"
static_flags=()
for f in "${pc_static_flags[@]}"; do
  if [[ $f == -lculoss ]]; then static_flags+=("$libdir/libculoss.a"); else static_flags+=("$f"); fi
done
echo "    pkg-config --static (libculoss.a): ${static_flags[*]}"
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic "$script_dir/main.c" "${static_flags[@]}" \
  -o "$work/consumer_pc_static" ||
  fail "linking main.c to libculoss.a with \$(pkg-config --static --libs culoss) failed (Libs.private incomplete?)"
"$work/consumer_pc_static" || fail "consumer_pc_static (pkg-config, static) failed"

step "package test passed"

#!/usr/bin/env bash
# Installs what building and testing culoss needs, from Debian's packages, when it is missing.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail
need=()
[ -f /usr/include/dlpack/dlpack.h ] || need+=(libdlpack-dev)
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ "${CULOSS_NEED_GTEST:-0}" = 1 ] && [ ! -f /usr/include/gtest/gtest.h ]; then need+=(libgtest-dev); fi
if [ "${CULOSS_NEED_BENCH:-0}" = 1 ] && [ ! -f /usr/include/benchmark/benchmark.h ]; then need+=(libbenchmark-dev); fi
if [ ${#need[@]} -gt 0 ]; then
  echo "culoss: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

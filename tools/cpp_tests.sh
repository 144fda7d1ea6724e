#!/usr/bin/env bash
# Builds the C++ engine tests (tests/cpp, CMake option SPX_BUILD_TESTS) and runs them with
# ctest at every SIMD level this CPU supports (SUBPIXEL_EXT_SIMD per run).
#
#   bash tools/cpp_tests.sh [extra cmake -D options, e.g. -DSPX_SANITIZE=ON]
#
# Needs a C++17 compiler and CMake only: the Python module is not built (SPX_BUILD_MODULE=OFF).
# SPX_CPP_TESTS_DIR overrides the build directory (default build/cpptests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SPX_CPP_TESTS_DIR:-$ROOT/build/cpptests}"
start=$(date +%s)

generator=()
if [[ ! -e "$BUILD/CMakeCache.txt" ]] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DSPX_BUILD_TESTS=ON -DSPX_BUILD_MODULE=OFF "$@" >/dev/null
cmake --build "$BUILD" --parallel

levels="$("$BUILD/spx_engine_tests" --supported-simd | tr ',' ' ')"
[[ -n "$levels" ]] || { echo "cpp_tests: the test executable reports no SIMD level" >&2; exit 2; }
for level in $levels; do
  echo "=== C++ engine tests, SUBPIXEL_EXT_SIMD=$level"
  (cd "$BUILD" && SUBPIXEL_EXT_SIMD="$level" ctest --output-on-failure --parallel 2)
done
echo "cpp_tests: passed at ${levels% } in $(( $(date +%s) - start )) s"

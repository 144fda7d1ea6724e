#!/usr/bin/env bash
# Build subpixel_ext with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# SPX_SANITIZE=ON) into a private virtualenv and run the test suite against that build.
#
#   bash tools/sanitize.sh [extra pytest arguments]
#
# Exits non-zero when the build fails, a test fails, or a sanitizer reports an error. Both
# sanitizers stop the process at the first error (halt_on_error, -fno-sanitize-recover); ASan
# writes its reports to log files (child processes' included) that are checked at the end and
# printed, UBSan writes to stderr and exits with status 87.
#
# Environment:
#   PYTHON               interpreter to build for (default: python3); its site-packages must
#                        hold numpy, pytest and hypothesis, and should hold scikit-build-core,
#                        pybind11, cmake and ninja (else pip fetches them for an isolated build)
#   SPX_SANITIZE_ISOLATED_BUILD  set to force that isolated build
#   CXX                  C++ compiler (default: g++); its libasan/libubsan are preloaded
#   SPX_SANITIZE_DIR     work directory (default: build/sanitize in the repository); the
#                        CMake build directory inside it is reused by later runs
#   SPX_SANITIZE_TESTS   test files/node ids to run instead of the default selection (every
#                        tests/test_*.py but the benchmarks)
#   SPX_SANITIZE_LEVELS  SIMD levels at which the kernel tests run again (default: every
#                        supported level but the best, which the main run uses; "" for none)
#   HYPOTHESIS_PROFILE   passed through (default: ci)
#   SPX_PROPERTY_EXAMPLES  examples per property test of tests/test_robustness.py (default
#                        here 1000: random shapes are what finds out-of-bounds accesses)
#   Extra arguments go to every pytest run.
#
# Why a virtualenv: an editable install of the package (pip install -e .) registers an import
# hook in the interpreter's site-packages that would win over anything on PYTHONPATH. The
# venv is created without the system site-packages (so no .pth hook runs) and gets those
# directories back as plain sys.path entries, after its own site-packages that holds the
# sanitized build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
export CXX="${CXX:-g++}"
WORK="${SPX_SANITIZE_DIR:-$ROOT/build/sanitize}"
VENV="$WORK/venv"
LOGS="$WORK/logs"
start=$(date +%s)

log() { printf '[sanitize] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# --- Sanitizer runtimes of the compiler that builds the extension ---------------------------
ASAN_LIB="$("$CXX" -print-file-name=libasan.so)"
UBSAN_LIB="$("$CXX" -print-file-name=libubsan.so)"
for lib in "$ASAN_LIB" "$UBSAN_LIB"; do
  [[ "$lib" == /* && -e "$lib" ]] || die "$CXX has no sanitizer runtime ($lib); install libasan/libubsan for it"
done
ASAN_LIB="$(readlink -f "$ASAN_LIB")"
UBSAN_LIB="$(readlink -f "$UBSAN_LIB")"
log "compiler: $("$CXX" --version | head -n1)"
log "runtimes: $ASAN_LIB $UBSAN_LIB"

# --- What the base interpreter must have ----------------------------------------------------
"$PY" -c 'import numpy, pytest, hypothesis' 2>/dev/null \
  || die "$PY lacks numpy/pytest/hypothesis: pip install '.[test]' first"
# The build tools are used from the base interpreter when it has them (fast, offline, reuses
# the build directory); otherwise pip fetches them into an isolated build environment.
build_env=(--no-build-isolation)
if [[ -n "${SPX_SANITIZE_ISOLATED_BUILD:-}" ]] || ! "$PY" -c 'import scikit_build_core, pybind11' 2>/dev/null; then
  log "building in pip's isolated build environment (scikit-build-core/pybind11 from the index)"
  build_env=()
fi

# --- Private virtualenv ---------------------------------------------------------------------
mkdir -p "$WORK"
"$PY" -m venv --clear --without-pip "$VENV"
VPY="$VENV/bin/python"
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# The base interpreter's package directories, as plain paths (their .pth files do not run).
"$PY" - "$ROOT" > "$SITE/_spx_base_site.pth" <<'PYEOF'
import os, site, sys
root = os.path.realpath(sys.argv[1])
dirs = list(site.getsitepackages())
if site.ENABLE_USER_SITE:
    dirs.append(site.getusersitepackages())
seen = set()
for d in dirs:
    real = os.path.realpath(d)
    if os.path.isdir(real) and real not in seen and not real.startswith(root + os.sep):
        seen.add(real)
        print(real)
PYEOF
log "venv: $VENV (base packages from: $(tr '\n' ' ' < "$SITE/_spx_base_site.pth"))"

# --- Sanitized build, installed into the venv -----------------------------------------------
# RelWithDebInfo: not stripped, so reports have function names and lines; SPX_SANITIZE adds
# -O1 -g -fno-omit-frame-pointer after the build type's flags.
log "building with SPX_SANITIZE=ON (build dir $WORK/cmake) ..."
PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet "${build_env[@]}" --no-deps --no-cache-dir --upgrade \
  --target "$SITE" \
  -Ccmake.define.SPX_SANITIZE=ON \
  -Ccmake.build-type=RelWithDebInfo \
  -Cbuild-dir="$WORK/cmake" \
  "$ROOT"

CORE="$(ls "$SITE"/subpixel_ext/_core*.so 2>/dev/null | head -n1)"
[[ -n "$CORE" ]] || die "no _core extension in $SITE/subpixel_ext"
if ! readelf -d "$CORE" | grep -q 'NEEDED.*libasan'; then
  die "$CORE does not link libasan: SPX_SANITIZE=ON had no effect"
fi

# --- Run --------------------------------------------------------------------------------------
rm -rf "$LOGS"
mkdir -p "$LOGS"
# detect_leaks=0: CPython leaks on purpose at exit. allocator_may_return_null=1: an impossible
# malloc (numpy's np.empty of 2**62 bytes in the bad-input tests) returns NULL, i.e. MemoryError,
# as it does without ASan, instead of a fatal report. (A throwing `new` that fails is still one.)
run_env=(
  env -u PYTHONPATH -u PYTHONHOME
  LD_PRELOAD="$ASAN_LIB $UBSAN_LIB"
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:allocator_may_return_null=1:strict_string_checks=1:check_initialization_order=1:log_path=$LOGS/asan"
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87"
  HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
  SPX_PROPERTY_EXAMPLES="${SPX_PROPERTY_EXAMPLES:-1000}"
  PYTHONFAULTHANDLER=1
  PYTHONDONTWRITEBYTECODE=1
)

# The package under test must be the sanitized one.
where="$(cd "$ROOT" && "${run_env[@]}" "$VPY" -c 'import subpixel_ext._core as c; print(c.__file__)')"
[[ "$where" == "$SITE"/* ]] || die "the venv imports subpixel_ext from $where, not from $SITE"
log "testing $where"

if [[ -n "${SPX_SANITIZE_TESTS:-}" ]]; then
  read -r -a tests <<< "$SPX_SANITIZE_TESTS"
else
  # Everything except the benchmark tests (timings mean nothing under ASan, and they are slow)
  # and the tests whose subject is another framework or the oracle (TensorFlow, JAX, ONNX
  # Runtime, Dask clusters, PyTorch comparisons of the oracle, the PyTorch integration and its
  # torch.compile: no native path of ours that the rest (test_backward.py for the gradients) do
  # not exercise, and foreign runtimes under an LD_PRELOADed ASan).
  tests=()
  for f in "$ROOT"/tests/test_*.py; do
    case "$(basename "$f")" in
      test_bench*.py | test_conventions.py | test_dask.py | test_reference.py | test_torch_nd.py | \
      test_torch_training.py) ;;
      *) tests+=("tests/$(basename "$f")") ;;
    esac
  done
fi

# Each SIMD level is its own microkernel unit with its own tile sizes (so its own edge and
# tail handling): the kernel-heavy tests run again at every supported level but the best.
read -r supported active < <(cd "$ROOT" && "${run_env[@]}" "$VPY" -c \
  'import subpixel_ext as s; c = s.show_config(); print(c["simd_supported"], c["simd_active"])')
levels="${SPX_SANITIZE_LEVELS-$(tr ',' '\n' <<< "$supported" | grep -vx "$active" | tr '\n' ' ')}"
kernel_tests=()
for f in test_conv_transpose2d.py test_conv2d.py test_subpixel.py test_weights.py test_nd_ops.py test_layers.py \
         test_activations.py test_non_finite.py; do
  [[ -e "$ROOT/tests/$f" ]] && kernel_tests+=("tests/$f")
done
for t in test_property_conv_transpose2d test_property_conv2d test_property_subpixel_conv2d; do
  [[ -e "$ROOT/tests/test_properties.py" ]] && kernel_tests+=("tests/test_properties.py::$t")
done

# --capture=sys: pytest's default fd-level capture would swallow a report written to fd 2 by
# a process that the sanitizer then kills. (UBSan ignores log_path when it runs inside the ASan
# runtime, so its reports only ever go to stderr; ASan's go to $LOGS.)
overall=0
run_pytest() {  # label, SIMD request ("" = default), pytest arguments...
  local label="$1" simd="$2" status
  shift 2
  log "[$label] pytest $*"
  set +e
  (cd "$ROOT" && "${run_env[@]}" ${simd:+SUBPIXEL_EXT_SIMD="$simd"} \
     "$VPY" -m pytest -q -p no:cacheprovider --capture=sys "$@")
  status=$?
  set -e
  case "$status" in
    0) ;;
    86) log "[$label] FAILED: AddressSanitizer stopped the test run (exit status 86)" ;;
    87) log "[$label] FAILED: UndefinedBehaviorSanitizer stopped the test run (exit status 87; report above)" ;;
    *) log "[$label] FAILED: pytest exit status $status" ;;
  esac
  (( status == 0 )) || overall=1
}

run_pytest "simd ${SUBPIXEL_EXT_SIMD:-$active}" "" "${tests[@]}" "$@"
for level in $levels; do
  [[ ${#kernel_tests[@]} -gt 0 ]] && run_pytest "simd $level" "$level" "${kernel_tests[@]}" "$@"
done

# ASan's log files: errors fail the run; allocation-failure warnings (allocator_may_return_null)
# are only shown.
errors=0
for r in "$LOGS"/*; do
  [[ -e "$r" ]] || continue
  if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: |runtime error' "$r"; then
    errors=$((errors + 1))
    log "sanitizer report $r:"
    cat "$r" >&2
  else
    log "sanitizer warnings (not errors) in $r: $(sort -u "$r" | head -n 3 | tr '\n' ' ')"
  fi
done
if (( errors )); then
  log "FAILED: $errors sanitizer report(s)"
  overall=1
fi
log "$( ((overall)) && echo FAILED || echo passed), $(( $(date +%s) - start )) s in total"
exit "$overall"

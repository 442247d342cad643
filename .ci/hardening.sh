#!/usr/bin/env bash
# Hardening checks of bnpy's C core, run by .ci/run after the main tests:
#  1. the fuzz campaign (tests/fuzz/fuzz_core.py, 100,000 inputs over every function of bnpy._core
#     and bnpy.ops) under AddressSanitizer + UBSan: any crash, sanitizer report, hang or contract
#     violation fails;
#  2. valgrind memcheck of the C-core entry points on the normal build: zero "definitely lost"
#     blocks and zero memory errors with a frame in bnpy's _core*.so.
# Usage: .ci/hardening.sh [SANITIZER_SITE_DIR]
#   SANITIZER_SITE_DIR (or $BNPY_SAN_SITE): a directory holding an ASan/UBSan build of bnpy (as
#   .ci/run makes with `BNPY_SANITIZE=1 pip install --target DIR .`); without one it is built here.
#   `python` must be an interpreter with numpy and the normal build of bnpy importable from outside
#   the source tree (the CI venv), or set $PYTHON. FUZZ_INPUTS (default 100000) and FUZZ_JOBS
#   (default 2) size the campaign.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
py=${PYTHON:-python}
inputs=${FUZZ_INPUTS:-100000}
jobs=${FUZZ_JOBS:-2}
started=$(date +%s)

# ---- 1. fuzz campaign under ASan + UBSan ------------------------------------------------------------
san_dir=${1:-${BNPY_SAN_SITE:-}}
if [ -z "$san_dir" ] || ! ls "$san_dir"/bnpy/_core*.so >/dev/null 2>&1; then
  san_dir=$(mktemp -d)/site
  rm -rf build  # stale un-instrumented objects would be reused otherwise
  echo "hardening: building the ASan/UBSan extension into $san_dir"
  BNPY_SANITIZE=1 "$py" -m pip install -q --no-deps --no-cache-dir --no-build-isolation --target "$san_dir" . \
    || BNPY_SANITIZE=1 "$py" -m pip install -q --no-deps --no-cache-dir --target "$san_dir" .
  rm -rf build
fi
asan_runtime=$(${CC:-gcc} -print-file-name=libasan.so)
if [ ! -e "$asan_runtime" ]; then
  echo "hardening: no ASan runtime found for ${CC:-gcc} (libasan.so)"; exit 1
fi
# detect_leaks=0: CPython keeps memory until exit by design (leaks are valgrind's part, below).
# allocator_may_return_null + max_allocation_size_mb: an honest-but-huge request (a padding of 2**31
# asks for a 64 GiB column matrix) becomes a MemoryError, as RLIMIT_AS makes it without ASan.
# halt_on_error/abort_on_error: the first report kills the worker, which fails the campaign.
echo "hardening: fuzz campaign, $inputs inputs, $jobs workers, under ASan+UBSan"
(cd / && env LD_PRELOAD="$asan_runtime" PYTHONPATH="$san_dir" \
    ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=6144 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$py" "$root/tests/fuzz/fuzz_core.py" --inputs "$inputs" --jobs "$jobs" --timeout 60 \
    --require-core-under "$san_dir")

# ---- 2. valgrind memcheck on the normal build --------------------------------------------------------
if ! command -v valgrind >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind) >/tmp/bnpy-valgrind-apt.log 2>&1 || true
  fi
fi
if ! command -v valgrind >/dev/null 2>&1; then
  echo "hardening: valgrind is not installed and could not be installed"; exit 1
fi
echo "hardening: valgrind memcheck of every C entry point (normal build)"
log=$(mktemp)
# PYTHONMALLOC=malloc: every Python allocation goes through malloc, so valgrind sees them all
# (pymalloc's arenas would hide blocks and give false "uninitialised" reports).
(cd / && env PYTHONMALLOC=malloc BNPY_LEAK_ITERATIONS=${BNPY_LEAK_ITERATIONS:-50} OMP_NUM_THREADS=2 \
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --num-callers=30 --log-file="$log" \
    "$py" "$root/tests/fuzz/leak_check.py")
"$py" "$root/tests/fuzz/valgrind_report.py" "$log"
echo "hardening: done in $(( $(date +%s) - started )) s"

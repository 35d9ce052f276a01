#!/bin/bash
# Builds the libFuzzer targets of the core (fuzz/fuzz_*.c) with clang 14,
# ASan and UBSan, runs each for FUZZ_SECONDS and prints one summary table.
# Exits non-zero when any target reports a crash, leak, timeout or UB.
#
#   FUZZ_SECONDS=60      seconds per target (libFuzzer -max_total_time)
#   FUZZ_TARGETS="..."   a subset, e.g. "fuzz_form fuzz_verify"
#   FUZZ_MERGE=1         merge new interesting inputs into fuzz/corpus/
#   FUZZ_WORK=DIR        scratch directory (default: a new one under /tmp)
#   FUZZ_ARGS="..."      extra libFuzzer flags, e.g. "-jobs=2 -workers=2"
#   FUZZ_COVERAGE=1      also report the line coverage of each target's
#                        parser file over the final corpus (needs llvm-14)
#   CC=clang-14          the compiler
#
# The committed corpus is copied to the scratch directory and fuzzed there,
# so it only grows with FUZZ_MERGE=1. Needs the Debian packages clang-14 and
# libclang-rt-14-dev, plus the build dependencies of the module.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
CC=${CC:-clang-14}
[[ "$CC" == clang* ]] || CC=clang-14
ALL_TARGETS=$(for f in fuzz/fuzz_*.c; do basename "${f%.c}"; done)
TARGETS=${FUZZ_TARGETS:-$ALL_TARGETS}
WORK=${FUZZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/rt_fuzz.XXXXXX")}
mkdir -p "$WORK"/{bin,obj,corpus,artifacts,logs}

command -v "$CC" >/dev/null ||
    { echo "fuzz: $CC not found: install clang-14 and libclang-rt-14-dev" >&2; exit 2; }
if [ "${FUZZ_COVERAGE:-0}" = 1 ] && ! command -v llvm-cov-14 >/dev/null; then
    echo "fuzz: llvm-cov-14 not found (Debian package llvm-14): no line coverage" >&2
    FUZZ_COVERAGE=0
fi

# The core sources are the Makefile's CORE list (src/core): the very code
# the module links, nothing copied. -o config.mk: reading it must not run ./configure.
# shellcheck disable=SC2016
CORE=$(make -s --no-print-directory -o config.mk -f Makefile \
    --eval 'print-core: ; @echo $(CORE)' print-core)
[ -n "$CORE" ] || { echo "fuzz: no CORE sources in the Makefile" >&2; exit 2; }
PKGS="apr-1 apr-util-1 jansson libjwt hiredis libssl libcrypto"
# shellcheck disable=SC2086
DEP_CFLAGS=$(pkg-config --cflags $PKGS)
# shellcheck disable=SC2086
DEP_LIBS=$(pkg-config --libs $PKGS)
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
CFLAGS="-g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror $SAN"

echo "== building fuzz targets with $CC into $WORK/bin"
objs=()
for src in $CORE; do
    obj="$WORK/obj/$(basename "${src%.c}").o"
    # shellcheck disable=SC2086
    $CC $CFLAGS $DEP_CFLAGS -Isrc/core -c "$src" -o "$obj"
    objs+=("$obj")
done
for t in $TARGETS; do
    [ -f "fuzz/$t.c" ] || { echo "fuzz: no target fuzz/$t.c" >&2; exit 2; }
    # shellcheck disable=SC2086
    $CC $CFLAGS $DEP_CFLAGS -Isrc/core -o "$WORK/bin/$t" "fuzz/$t.c" "${objs[@]}" \
        $DEP_LIBS
done

# The core file each target is about, for the line coverage column.
parser_of() {
    case "$1" in
    fuzz_json_request) echo src/core/rt_request.c ;;
    fuzz_form) echo src/core/rt_form.c ;;
    fuzz_verify) echo src/core/rt_jwt.c ;;
    fuzz_record) echo src/core/rt_record.c ;;
    fuzz_shmtable) echo src/core/rt_shmtable.c ;;
    fuzz_authreq) echo src/core/rt_authreq.c ;;
    esac
}

# Line coverage of the parser file after running the corpus once through a
# build with source-based coverage (no sanitizers): "87.5%", or "-".
line_coverage() {
    local t=$1 corpus=$2 file bin prof
    file=$(parser_of "$t")
    if [ "${FUZZ_COVERAGE:-0}" != 1 ] || [ -z "$file" ]; then
        echo -
        return
    fi
    bin="$WORK/cov/$t"
    prof="$WORK/cov/$t.profdata"
    mkdir -p "$WORK/cov"
    # shellcheck disable=SC2086
    $CC -g -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
        $DEP_CFLAGS -Isrc/core -o "$bin" "fuzz/$t.c" $CORE $DEP_LIBS
    LLVM_PROFILE_FILE="$WORK/cov/$t.profraw" "$bin" -runs=0 "$corpus" \
        >"$WORK/logs/$t.cov.log" 2>&1 || true
    llvm-profdata-14 merge -sparse -o "$prof" "$WORK/cov/$t.profraw"
    llvm-cov-14 report "$bin" -instr-profile="$prof" "$file" |
        awk '$1 == "TOTAL" { print $10 }'
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
rows=()
for t in $TARGETS; do
    corpus="$WORK/corpus/$t"
    art="$WORK/artifacts/$t/"
    log="$WORK/logs/$t.log"
    mkdir -p "$corpus" "$art"
    [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$corpus/"
    echo "== $t: ${SECONDS_EACH}s (log $log)"
    start=$(date +%s)
    set +e
    dict=()
    [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
    # shellcheck disable=SC2086
    "$WORK/bin/$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$art" \
        "${dict[@]}" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
    rc=$?
    elapsed=$(($(date +%s) - start))
    set -e
    # A run that died early has no final stats: those columns show "?".
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -n 1 | sed 's/cov: //')
    ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -n 1 | sed 's/ft: //')
    crashes=$(find "$art" -type f | wc -l)
    if [ "$rc" != 0 ] || [ "$crashes" != 0 ] ||
        grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        failed=1
        # 72: libFuzzer was stopped by a signal before its time was up.
        if [ "$crashes" = 0 ]; then
            [ "$rc" = 72 ] && crashes=interrupted || crashes="rc=$rc"
        fi
        echo "!! $t failed; last lines of $log:"
        tail -n 40 "$log"
    fi
    lines=$(line_coverage "$t" "$corpus")
    rows+=("$t $elapsed ${execs:-?} ${rate:-?} ${cov:-?} ${ft:-?} ${lines:--} $crashes")
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$rc" = 0 ]; then
        mkdir -p "fuzz/corpus/$t"
        "$WORK/bin/$t" -merge=1 "fuzz/corpus/$t" "$corpus" \
            >"$WORK/logs/$t.merge.log" 2>&1 ||
            { echo "!! merge of $t failed (see $WORK/logs/$t.merge.log)"; failed=1; }
    fi
done

echo
printf '%-18s %8s %12s %9s %6s %7s %7s %8s\n' \
    target seconds executions execs/s cov ft lines crashes
for r in "${rows[@]}"; do
    # shellcheck disable=SC2086
    printf '%-18s %8s %12s %9s %6s %7s %7s %8s\n' $r
done
echo "cov/ft: libFuzzer's edges/features in the instrumented core (system"
echo "libraries are not instrumented); lines: of the parser file, FUZZ_COVERAGE=1"
echo
echo "logs: $WORK/logs"
if [ "$failed" != 0 ]; then
    echo "artifacts (reproduce with $WORK/bin/<target> <file>): $WORK/artifacts"
    find "$WORK/artifacts" -type f
    exit 1
fi
echo "artifacts: none ($WORK/artifacts is empty)"

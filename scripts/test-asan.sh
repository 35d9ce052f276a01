#!/bin/bash
# make test-asan: the whole Apache::Test suite (t/TEST.PL, exactly as
# `make check` runs it) against a build of the module with AddressSanitizer
# and UndefinedBehaviorSanitizer. Passes only when every test passes AND no
# sanitizer wrote a report. See docs/sanitizers.md.
#
# The Makefile passes APXS, CORE_CFLAGS, DEP_LIBS, APR_LIBS and WARN (from
# config.mk); TEST_FLAGS go to t/TEST.PL. The module is built by the
# Makefile's own rules with clang and the sanitizers.
#
# Everything goes to build/asan/ (the normal build in .libs/ is not touched):
#   build/asan/.libs/mod_runai_token.so  the instrumented module
#   build/asan/core_test                 the instrumented unit-test binary
#   build/asan/bin/apache2               httpd with the sanitizer runtime preloaded
#   build/asan/logs/                     sanitizer reports (any file = failure)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

for v in APXS; do
    [ -n "${!v:-}" ] || { echo "test-asan.sh: $v is not set: run it through 'make test-asan'" >&2; exit 2; }
done
CORE_CFLAGS=${CORE_CFLAGS:-}
DEP_LIBS=${DEP_LIBS:-}
APR_LIBS=${APR_LIBS:-}
WARN=${WARN:--Wall -Wextra -Werror}
TEST_FLAGS=${TEST_FLAGS:-}

# clang-14, whose ASan runtime (libclang_rt.asan-x86_64.so) carries UBSan
# too: one runtime, one set of options, one log_path for both. (gcc 12 keeps
# them in two libraries, libasan.so.8 and libubsan.so.1, that interpose each
# other's __sanitizer_set_report_path: UBSan then ignores log_path and
# writes to httpd's error log.) The module names the runtime at link time
# (-lclang_rt.asan-x86_64, with an rpath); httpd gets it preloaded.
CC=${SAN_CC:-clang-14}
command -v "$CC" >/dev/null 2>&1 ||
    { echo "test-asan: $CC not found (Debian packages clang-14 libclang-rt-14-dev llvm-14)" >&2; exit 1; }
SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
runtime=$("$CC" -print-file-name=libclang_rt.asan-x86_64.so)
[ -f "$runtime" ] ||
    { echo "test-asan: $CC has no libclang_rt.asan-x86_64.so (Debian package libclang-rt-14-dev)" >&2; exit 1; }
rtdir=$(dirname "$runtime")
symbolizer=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)

out=$top/build/asan
logs=$out/logs
rm -rf "$out"
mkdir -p "$out/bin" "$logs"

# --- the module: the Makefile's own rules, objects in build/asan/obj -------
echo "== test-asan: building the module with $CC $SAN_FLAGS"
# The warnings of the normal build, minus two that clang has and gcc has
# not, both about httpd idioms: APR_OFFSETOF in the command table
# (null-pointer-subtraction) and its {NULL} terminator.
CLANG_WARN="$WARN -Wno-null-pointer-subtraction -Wno-missing-field-initializers"
if ! make -s --no-print-directory CC="$CC" OBJ="$out/obj" SO="$out/.libs/mod_runai_token.so" \
        XCFLAGS="-Wno-null-pointer-subtraction -Wno-missing-field-initializers $SAN_FLAGS" \
        XLDFLAGS="-L$rtdir -Wl,-rpath,$rtdir -lclang_rt.asan-x86_64" \
        "$out/.libs/mod_runai_token.so" >"$out/build.log" 2>&1; then
    cat "$out/build.log"
    echo "test-asan: the sanitizer build of the module failed" >&2
    exit 1
fi
so=$out/.libs/mod_runai_token.so
if ! readelf -d "$so" | grep -q 'NEEDED.*libclang_rt\.asan-x86_64\.so'; then
    readelf -d "$so"
    echo "test-asan: $so does not name the ASan runtime" >&2
    exit 1
fi

# --- the unit tests: an instrumented executable needs no preloading -------
echo "== test-asan: building the unit tests with the sanitizers"
# shellcheck disable=SC2086
"$CC" $CLANG_WARN $SAN_FLAGS $CORE_CFLAGS -Isrc/core -o "$out/core_test" t/unit/core_test.c \
    src/core/*.c $DEP_LIBS $APR_LIBS

httpd_bin=$("$APXS" -q SBINDIR)/$("$APXS" -q TARGET)
[ -x "$httpd_bin" ] || { echo "test-asan: $httpd_bin not found" >&2; exit 1; }

# Children run as nobody: the report directory must be writable by them.
chmod 1777 "$logs"

# Options common to httpd and core_test. log_path: each process writes its
# reports to logs/sanitizer.PID (UBSan's too: they share the runtime).
# handle_segv with allow_user_segv_handler=0 keeps ASan's SIGSEGV handler
# although httpd installs its own, so a crash becomes a report with a stack.
common="log_path=$logs/sanitizer:halt_on_error=1:abort_on_error=0:print_summary=1"
common="$common:handle_segv=1:handle_sigbus=1:handle_sigill=1:handle_sigfpe=1:allow_user_segv_handler=0"
common="$common:detect_stack_use_after_return=1:strict_string_checks=1"
# httpd of the suite: no leak detection. Its children exit without
# destroying the configuration pool, whose memory holds the only pointers
# to what the module loaded at start (keys, JWKS): LSan calls that lost,
# and so it does httpd's own PCRE2 and APR allocations. The single-process
# run below, whose exit destroys every pool, checks leaks instead.
# fast_unwind_on_malloc stays on (the default) for httpd: the slow
# unwinder crashes (SEGV, empty stack) when httpd frees memory after it
# has unloaded its modules at exit.
httpd_asan="$common:detect_leaks=0"
# The leak run below keeps its modules loaded (no-dlclose.so), so it can
# afford full allocation stacks through libjwt, jansson and OpenSSL, which
# are built without frame pointers.
httpd_lsan="$common:detect_leaks=1:fast_unwind_on_malloc=0"
ubsan="print_stacktrace=1:halt_on_error=1:print_summary=1:log_path=$logs/sanitizer"
preload=$runtime

# Every httpd of the suite is started through this wrapper: Apache::Test's
# (-httpd), the hosts of t/lib/RunaiHosts.pm and the configtests (RUNAI_HTTPD).
# The variables reach the children: httpd forks them without exec.
wrapper() { # file asan-options preload
    cat >"$1" <<EOF
#!/bin/sh
# Written by scripts/test-asan.sh: $httpd_bin with the sanitizer runtime.
LD_PRELOAD="$3\${LD_PRELOAD:+ \$LD_PRELOAD}"
ASAN_OPTIONS="$2"
UBSAN_OPTIONS="$ubsan"
ASAN_SYMBOLIZER_PATH="$symbolizer"
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS ASAN_SYMBOLIZER_PATH
exec "$httpd_bin" "\$@"
EOF
    chmod 755 "$1"
}
wrapper "$out/bin/apache2" "$httpd_asan" "$preload"
# LSan reports at exit, when httpd has unloaded the modules: their frames
# would read "<unknown module>". For the leak run, dlclose does nothing.
cat >"$out/no-dlclose.c" <<'EOF'
/* Written by scripts/test-asan.sh: keeps every shared object loaded, so
 * that LeakSanitizer can name the module's frames when httpd exits. */
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
EOF
"$CC" -shared -fPIC -O1 -o "$out/no-dlclose.so" "$out/no-dlclose.c"
wrapper "$out/bin/apache2-lsan" "$httpd_lsan" "$preload $out/no-dlclose.so"

# The wrapper really loads the instrumented module (without the preload,
# the loader refuses it: "ASan runtime does not come first").
cat >"$out/smoke.conf" <<EOF
ServerRoot "$out"
ServerName localhost
Listen 127.0.0.1:1
PidFile "$out/smoke.pid"
ErrorLog "$out/smoke_error_log"
DefaultRuntimeDir "$out"
LoadModule mpm_event_module $("$APXS" -q LIBEXECDIR)/mod_mpm_event.so
LoadModule authz_core_module $("$APXS" -q LIBEXECDIR)/mod_authz_core.so
LoadModule runai_token_module "$so"
EOF
if ! smoke=$("$out/bin/apache2" -t -f "$out/smoke.conf" 2>&1); then
    echo "$smoke"
    echo "test-asan: httpd does not load the instrumented module through $out/bin/apache2" >&2
    exit 1
fi

# --- the suite ---------------------------------------------------------------
export RUNAI_TOKEN_MODULE=$so
export RUNAI_HTTPD=$out/bin/apache2
export RUNAI_CORE_TEST=$out/core_test
# Only instrumented executables read these: core_test, with leak detection
# on (a plain process that frees what it allocates).
# fast_unwind_on_malloc=0: allocation stacks through libjwt, jansson and
# OpenSSL, which are built without frame pointers.
export ASAN_OPTIONS="$common:detect_leaks=1:fast_unwind_on_malloc=0"
export UBSAN_OPTIONS="$ubsan"
export ASAN_SYMBOLIZER_PATH="$symbolizer"
export APACHE_TEST_ULIMIT_SET=1

echo "== test-asan: t/TEST.PL against $so"
echo "==   httpd: $httpd_bin with LD_PRELOAD=$preload"
perl t/TEST.PL -clean >/dev/null 2>&1 || true
set +e
# shellcheck disable=SC2086
perl t/TEST.PL -apxs "$APXS" -httpd "$out/bin/apache2" $TEST_FLAGS 2>&1 | tee "$out/suite.log"
suite_rc=${PIPESTATUS[0]}
set -e

# --- the request mix of make leakcheck, single process, with LSan ------------
# httpd -X destroys every pool at exit, so what LSan finds then is lost.
echo
echo "== test-asan: the request mix of scripts/leakcheck.py against httpd -X with LeakSanitizer"
set +e
RUNAI_HTTPD=$out/bin/apache2-lsan LEAKCHECK_NO_VALGRIND=1 LEAKCHECK_ROUNDS=${TEST_ASAN_MIX_ROUNDS:-3} \
    APXS="$APXS" scripts/leakcheck.sh 2>&1 | tee "$out/mix.log"
mix_rc=${PIPESTATUS[0]}
set -e

# --- the verdict ----------------------------------------------------------------
reports=$(find "$logs" -type f | sort)
echo
echo "== test-asan: sanitizer reports in $logs"
if [ -n "$reports" ]; then
    shown=0
    for f in $reports; do
        shown=$((shown + 1))
        if [ "$shown" -gt 10 ]; then
            echo "---- $f (not shown: only the first 10 reports are printed)"
            continue
        fi
        echo "---- $f"
        head -n 150 "$f"
    done
    echo "----"
fi
problems=()
[ "$suite_rc" = 0 ] || problems+=("the suite failed (t/TEST.PL exit $suite_rc)")
grep -qE '^Result: PASS' "$out/suite.log" || problems+=("no 'Result: PASS' from the suite")
# a child that died of a signal httpd caught before ASan could
if grep -hn 'exit signal' t/logs/error_log 2>/dev/null; then
    problems+=("a child of the test server died of a signal (t/logs/error_log)")
fi
[ "$mix_rc" = 0 ] || problems+=("the request mix failed (scripts/leakcheck.sh exit $mix_rc)")
n=$(printf '%s' "$reports" | grep -c . || true)
[ "$n" = 0 ] || problems+=("$n sanitizer report(s)")

summary=$(grep -E '^(Files=[0-9]+, Tests=[0-9]+|Result: )' "$out/suite.log" | tail -n 2 | tr '\n' ' ' || true)
if [ ${#problems[@]} -eq 0 ]; then
    echo "none"
    echo "test-asan: PASS: $summary- no sanitizer report"
    exit 0
fi
for p in "${problems[@]}"; do
    echo "test-asan: FAILED: $p"
done
echo "test-asan: $summary"
exit 1

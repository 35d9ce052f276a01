#!/bin/sh
# Install the Debian packages mod_runai_token needs, and only those missing.
#
#   scripts/deps.sh               everything: build, `make run` and `make test`
#   scripts/deps.sh --build-only  what `make` and `make run` need
#   scripts/deps.sh --sanitizers  everything, and what `make test-asan` and
#                                 `make leakcheck` need (clang, valgrind)
#   scripts/deps.sh --deb         what `make` and `make run` need, and what
#                                 `make deb` and `make deb-test` need
#   scripts/deps.sh --check       only report; exit 1 if something is missing
#
# As root it installs the missing packages with apt-get (running
# `apt-get update` first, and only when something is missing). As another
# user it prints the exact apt-get command to run and exits 1. When nothing
# is missing it prints nothing and exits 0, so it is safe to run every time.
set -eu

# The one list of packages. Keep README.md in step with it.
BUILD_PKGS="apache2 apache2-dev libjwt-dev libjansson-dev libssl-dev libhiredis-dev pkg-config gcc make"
RUN_PKGS="apache2-utils openssl curl"
# python3-jwt only recommends python3-cryptography, which it needs for RS/ES keys.
# golang-go and go-oidc build t/bin/kube_verify, kube-apiserver's verifier
# (make test-tools, GOPATH mode).
TEST_PKGS="clang-format sqlite3 libaprutil1-dbd-sqlite3 libapache2-mod-perl2 libwww-perl libhttp-message-perl liburi-perl libcrypt-jwt-perl python3-jwt python3-cryptography golang-go golang-github-coreos-go-oidc-dev redis-server memcached wrk python3-prometheus-client"
# t/39_ldap.t runs its own slapd (/usr/sbin/slapd with a generated
# configuration, never the system service) and loads it with ldapadd.
TEST_PKGS="$TEST_PKGS slapd ldap-utils"
# libapache2-mod-auth-openidc: t/41_sso.t loads it in an httpd of its own
# (LoadModule with its path); it is never enabled in the system's apache2.
TEST_PKGS="$TEST_PKGS libapache2-mod-auth-openidc"
# The conformance tests run npm packages (t/node); Debian's nodejs only
# when the machine has no node of its own.
command -v node >/dev/null 2>&1 || TEST_PKGS="$TEST_PKGS nodejs npm"
# make test-asan: clang 14 with its ASan/UBSan runtime, llvm-symbolizer-14
# for the reports; make leakcheck: valgrind. See docs/sanitizers.md.
SAN_PKGS="clang-14 libclang-rt-14-dev llvm-14 valgrind"
# make deb, make deb-test: dpkg-buildpackage (build-essential brings
# dpkg-dev), dh with dh_apache2 (apache2-dev, in BUILD_PKGS), lintian.
DEB_PKGS="build-essential debhelper lintian"

usage() {
    sed -n '2,15s/^# \{0,1\}//p' "$0"
}

mode=all
check_only=0
for arg in "$@"; do
    case "$arg" in
        --build-only) mode=build ;;
        --all) mode=all ;;
        --sanitizers) mode=sanitizers ;;
        --deb) mode=deb ;;
        --check) check_only=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "deps.sh: unknown option '$arg'" >&2; usage >&2; exit 2 ;;
    esac
done

wanted="$BUILD_PKGS $RUN_PKGS"
if [ "$mode" = all ] || [ "$mode" = sanitizers ]; then
    wanted="$wanted $TEST_PKGS"
fi
if [ "$mode" = sanitizers ]; then
    wanted="$wanted $SAN_PKGS"
fi
if [ "$mode" = deb ]; then
    wanted="$wanted $DEB_PKGS"
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: dpkg-query not found; this script is for Debian 12 (bookworm)." >&2
    echo "deps.sh: install these packages by other means: $wanted" >&2
    exit 1
fi

missing=""
for pkg in $wanted; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != installed ]; then
        missing="$missing $pkg"
    fi
done
missing=${missing# }

[ -z "$missing" ] && exit 0

install_cmd="apt-get install -y --no-install-recommends $missing"

if [ "$check_only" = 1 ]; then
    echo "deps.sh: missing Debian packages: $missing" >&2
    exit 1
fi

if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing Debian packages: $missing" >&2
    echo "deps.sh: install them with:" >&2
    echo "    sudo apt-get update && sudo $install_cmd"
    exit 1
fi

echo "deps.sh: installing: $missing" >&2

# Installing apache2 (or a module package) would start or restart the
# system's apache2 service, which may then sit on port 80 and disturb the
# tests. A policy-rc.d that answers 101 tells invoke-rc.d and
# deb-systemd-invoke not to start anything. Put one in place only for the
# duration of the install, and only if the machine has none already.
policy=/usr/sbin/policy-rc.d
own_policy=0
# shellcheck disable=SC2317 # called from the traps
cleanup() {
    if [ "$own_policy" = 1 ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from mod_runai_token scripts/deps.sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
fi

# Was a system apache2 running before we started?
apache_pidfile=/run/apache2/apache2.pid
apache_was_running=0
if [ -s "$apache_pidfile" ] && kill -0 "$(cat "$apache_pidfile")" 2>/dev/null; then
    apache_was_running=1
fi

# A module package enables itself in the system's apache2 (its postinst
# runs a2enmod) unless the administrator disabled it before. The tests load
# mod_auth_openidc by path and the system's apache2 must not change: mark it
# disabled by the administrator, as `a2dismod` would, when nothing says
# otherwise yet.
case " $missing " in
*" libapache2-mod-auth-openidc "*)
    state=/var/lib/apache2/module
    if [ -z "$(find "$state" -type f -name auth_openidc 2>/dev/null)" ]; then
        mkdir -p "$state/disabled_by_admin"
        : >"$state/disabled_by_admin/auth_openidc"
    fi
    ;;
esac

export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086 # $missing is a list of words
apt-get install -q -y --no-install-recommends \
    -o DPkg::Lock::Timeout=300 $missing >&2

# Belt and braces: if the install started a system apache2 anyway, stop it
# again (it was not running before, so nobody relies on it).
if [ "$apache_was_running" = 0 ] && [ -s "$apache_pidfile" ] &&
    kill -0 "$(cat "$apache_pidfile")" 2>/dev/null; then
    echo "deps.sh: stopping the system apache2 that the install started" >&2
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl stop apache2 >&2 || true
    else
        apache2ctl -k stop >&2 || true
    fi
fi

# Verify: everything wanted must now be installed.
still=""
for pkg in $missing; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || still="$still $pkg"
done
if [ -n "$still" ]; then
    echo "deps.sh: still missing after apt-get install:$still" >&2
    exit 1
fi
exit 0

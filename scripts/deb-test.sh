#!/bin/bash
# `make deb-test`: the Debian package in the system's apache2, end to end.
#
#   1. builds the package and checks it with lintian (scripts/deb-build.sh,
#      which installs what is missing first: scripts/deps.sh --deb);
#   2. installs it (apt-get install ./FILE.deb) and checks that the module
#      is installed but NOT enabled;
#   3. a2enmod runai_token, and a test configuration (conf-available, a
#      Listen on a free 127.0.0.1 port, a virtual host with a signing key
#      made by openssl and an htpasswd user); apache2ctl -t;
#   4. starts the system's apache2 with apache2ctl and gets a token from it
#      (the password grant: HTTP 200 and an accessToken; a wrong password:
#      401);
#   5. stops apache2, a2dismod, purges the package, removes the test
#      configuration, and checks that nothing is left: no module, no
#      mods-available or mods-enabled file, no test file, no package in
#      dpkg's database, and the same enabled modules, sites, configurations
#      and a2enmod state as before (a2enmod also enabled the modules that
#      runai_token.load depends on; those it did are disabled again).
#
# apache2 ends as it was: running again (without the test) if it was
# running before, stopped otherwise. On failure or interruption the same
# clean-up runs (a trap), so the script can run again. Root only: it
# changes the system's apache2 for the time of the test. It refuses to run
# when the package or a module file of `make install` is already there.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pkg=libapache2-mod-runai-token
etc=/etc/apache2
state_lib=/var/lib/apache2
module_so=/usr/lib/apache2/modules/mod_runai_token.so
conf_name=runai-token-deb-test
conf_file=$etc/conf-available/$conf_name.conf

say() { echo "deb-test: $*"; }
fail() {
    echo "deb-test: FAILED: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] ||
    fail "must run as root (it installs the package into the system's apache2, starts and stops it): sudo make deb-test"
for tool in dpkg-query apt-get apache2ctl a2enmod; do
    command -v "$tool" >/dev/null 2>&1 ||
        fail "'$tool' not found: this test is for Debian 12 with apache2 (scripts/deps.sh --deb)"
done

# --- what must not be there already ------------------------------------------

pkg_status() {
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true
}
case "$(pkg_status)" in
    "" | not-installed) ;;
    *) fail "$pkg is already on this machine ($(pkg_status)): the test would remove it; purge it first (apt-get purge $pkg)" ;;
esac
for f in "$module_so" "$etc"/mods-available/runai_token.* "$etc"/mods-enabled/runai_token.*; do
    if [ -e "$f" ] || [ -L "$f" ]; then
        fail "$f exists (make install?); the package would replace it and the test remove it: remove it first"
    fi
done

# --- the state to come back to -----------------------------------------------

# shellcheck disable=SC1091 # Debian's apache2 environment: pid file, user
apache_env() { (set +u && . "$etc/envvars" && eval "echo \"\$$1\""); }
pidfile=$(apache_env APACHE_PID_FILE)
run_group=$(apache_env APACHE_RUN_GROUP)
apache_pid() {
    local pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}
was_running=0
if apache_pid >/dev/null; then
    was_running=1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mod_runai_token-deb-test.XXXXXX")
# What apache2's children read (the htpasswd file) must be reachable for
# www-data: a directory of its own under /tmp, not under $TMPDIR.
site=$(mktemp -d /tmp/runai-token-deb-test.XXXXXX)
# Until the full clean-up below is in place.
trap 'rm -rf -- "$tmp" "$site"' EXIT

# Symlinks of *-enabled and the markers a2enmod keeps in /var/lib/apache2.
snapshot() {
    find "$etc/mods-enabled" "$etc/conf-enabled" "$etc/sites-enabled" "$state_lib" \
        \( -type l -printf '%p -> %l\n' \) -o \( ! -type l -printf '%p\n' \) 2>/dev/null | sort
}
snapshot >"$tmp/state.before"
cp -a "$state_lib" "$tmp/state-lib.before"
enabled_mods() {
    find "$etc/mods-enabled" -name '*.load' -printf '%f\n' | sed 's/\.load$//' | sort
}
enabled_mods >"$tmp/mods.before"

# --- clean-up: on success, failure or interruption ----------------------------

stop_apache() {
    local pid
    pid=$(apache_pid) || return 0
    apache2ctl stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    echo "deb-test: apache2 (pid $pid) did not stop within 10 s" >&2
    return 1
}

# Every step tolerates having been done already.
cleanup() {
    set +e
    stop_apache
    # -p: a2enconf's marker goes too.
    a2disconf -q -p "$conf_name" >/dev/null 2>&1
    rm -f "$conf_file"
    if [ -e "$etc/mods-enabled/runai_token.load" ]; then
        a2dismod -q runai_token
    fi
    case "$(pkg_status)" in
        "" | not-installed) ;;
        *)
            DEBIAN_FRONTEND=noninteractive apt-get purge -q -y -o DPkg::Lock::Timeout=300 "$pkg" \
                >"$tmp/purge.log" 2>&1 || cat "$tmp/purge.log" >&2
            ;;
    esac
    # What a2enmod enabled besides runai_token (its dependencies): disable
    # it again, purging a2enmod's marker, then bring back the markers that
    # were there before.
    local mod marker
    for mod in $(enabled_mods | comm -13 "$tmp/mods.before" -); do
        say "disabling $mod again (a2enmod runai_token enabled it)"
        a2dismod -q -f -p "$mod" >/dev/null
        find "$tmp/state-lib.before" -type f -name "$mod" | while read -r marker; do
            mkdir -p "$(dirname "$state_lib/${marker#"$tmp/state-lib.before/"}")"
            cp -a "$marker" "$state_lib/${marker#"$tmp/state-lib.before/"}"
        done
    done
    # a2enmod and a2enconf make marker directories as they need them.
    local dir
    find "$state_lib" -mindepth 1 -type d -empty | while read -r dir; do
        grep -qxF "$dir" "$tmp/state.before" || rmdir "$dir"
    done
    rm -rf -- "$site"
    if [ "$was_running" = 1 ] && ! apache_pid >/dev/null; then
        say "starting apache2 again (it was running before the test)"
        apache2ctl start
    fi
    set -e
}
on_exit() {
    local rc=$?
    if [ "$rc" != 0 ]; then
        echo "deb-test: cleaning up after the failure" >&2
        if [ -n "${error_log_lines:-}" ] && [ -f /var/log/apache2/error.log ]; then
            echo "deb-test: apache2's error log during the test:" >&2
            tail -n +"$((error_log_lines + 1))" /var/log/apache2/error.log | tail -n 30 >&2
        fi
        cleanup
    fi
    rm -rf -- "$tmp"
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- 1. build ------------------------------------------------------------------

"$repo/scripts/deb-build.sh" "$tmp/deb"
deb=$(find "$tmp/deb" -name "${pkg}_*.deb" | head -n 1)
[ -n "$deb" ] || fail "deb-build.sh wrote no $pkg .deb"

# --- 2. install: installed, not enabled ------------------------------------------

say "apt-get install $(basename "$deb")"
DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "$deb" >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "apt-get install $deb"; }
[ "$(pkg_status)" = installed ] || fail "$pkg is not installed after apt-get install ($(pkg_status))"
for f in "$module_so" "$etc/mods-available/runai_token.load" "$etc/mods-available/runai_token.conf"; do
    [ -f "$f" ] || fail "$f is not installed"
done
grep -qx "LoadModule runai_token_module $module_so" "$etc/mods-available/runai_token.load" ||
    fail "runai_token.load does not load $module_so: $(cat "$etc/mods-available/runai_token.load")"
if [ -e "$etc/mods-enabled/runai_token.load" ] || a2query -q -m runai_token; then
    fail "the package enabled the module; only the administrator's a2enmod may"
fi
say "installed, not enabled: $(dpkg-query -W -f='${Package} ${Version}' "$pkg")"

# --- 3. enable, configure --------------------------------------------------------

a2enmod runai_token

# A free port on 127.0.0.1 (nothing answers a connection to it).
port=
for try in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        port=$p
        break
    fi
done
[ -n "$port" ] || fail "no free port on 127.0.0.1 after $try tries"
base="http://127.0.0.1:$port"

# The key: root only (apache2 reads it at start, as root). The htpasswd
# file: read by the children, which run as APACHE_RUN_USER.
chmod 755 "$site"
(umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$site/signing.pem" 2>/dev/null) || fail "openssl genpkey"
user="deb-test"
password=$(openssl rand -hex 16)
printf '%s\n' "$password" | htpasswd -c -i -B "$site/users.htpasswd" "$user" 2>/dev/null ||
    fail "htpasswd"
chgrp "$run_group" "$site/users.htpasswd"
chmod 640 "$site/users.htpasswd"

cat >"$conf_file" <<EOF
# Written by mod_runai_token's scripts/deb-test.sh; removed when it ends.
Listen 127.0.0.1:$port
<IfModule !authn_file_module>
    LoadModule authn_file_module /usr/lib/apache2/modules/mod_authn_file.so
</IfModule>
# The store's state file in the test's directory, not /var/run/apache2.
RunaiTokenStateDir $site/state
<AuthnProviderAlias file deb-test-users>
    AuthUserFile $site/users.htpasswd
</AuthnProviderAlias>
<VirtualHost 127.0.0.1:$port>
    ServerName 127.0.0.1
    RunaiTokenIssuer $base
    RunaiTokenSigningKey $site/signing.pem
    <Location /api/v1/token>
        SetHandler runai-token
        Require all granted
        RunaiTokenPasswordProvider deb-test-users
    </Location>
</VirtualHost>
EOF
a2enconf -q "$conf_name"
say "apache2ctl -t"
apache2ctl -t 2>&1 | sed 's/^/    /'
apache2ctl -t >/dev/null 2>&1 || fail "apache2ctl -t"

# --- 4. start apache2, get a token ----------------------------------------------

error_log_lines=0
[ -f /var/log/apache2/error.log ] && error_log_lines=$(wc -l </var/log/apache2/error.log)
if [ "$was_running" = 1 ]; then
    say "apache2ctl restart (apache2 was running before the test)"
    apache2ctl restart
else
    say "apache2ctl start"
    apache2ctl start
fi
up=0
for _ in $(seq 1 100); do
    if curl -s -o /dev/null "$base/"; then
        up=1
        break
    fi
    sleep 0.1
done
[ "$up" = 1 ] || fail "apache2 does not answer on $base after 10 s"

token_request() { # password -> the body in $tmp/body, prints the HTTP status
    curl -sS -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "{\"grantType\":\"password\",\"username\":\"$user\",\"password\":\"$1\"}" \
        "$base/api/v1/token"
}
say "POST $base/api/v1/token (password grant)"
status=$(token_request "$password")
[ "$status" = 200 ] || fail "password grant: HTTP $status, not 200: $(cat "$tmp/body")"
access=$(sed -n 's/.*"accessToken" *: *"\([^"]*\)".*/\1/p' "$tmp/body")
[ -n "$access" ] || fail "no accessToken in the answer: $(cat "$tmp/body")"
[ "$(printf %s "$access" | tr -cd . | wc -c)" = 2 ] || fail "the accessToken is not a JWT: $access"
# Its payload names this server as the issuer and the user as the subject.
payload=$(printf %s "$access" | cut -d. -f2 | tr '_-' '/+')
while [ $((${#payload} % 4)) != 0 ]; do payload="$payload="; done
claims=$(printf %s "$payload" | base64 -d 2>/dev/null) || fail "cannot decode the token's payload"
case "$claims" in
    *"\"iss\":\"$base\""*) ;;
    *) fail "the token's iss is not $base: $claims" ;;
esac
case "$claims" in
    *"\"sub\":\"$user\""*) ;;
    *) fail "the token's sub is not $user: $claims" ;;
esac
say "HTTP 200, accessToken issued by $base for $user"
status=$(token_request "not-$password")
[ "$status" = 401 ] || fail "a wrong password: HTTP $status, not 401: $(cat "$tmp/body")"
say "a wrong password: HTTP 401"

# --- 5. stop, disable, purge, check that nothing is left ---------------------------

say "stopping apache2, a2dismod runai_token, apt-get purge $pkg, removing the test configuration"
stop_apache || fail "apache2 did not stop"
a2dismod -q runai_token
cleanup

left=""
for f in "$module_so" "$etc"/mods-available/runai_token.* "$etc"/mods-enabled/runai_token.* \
    "$conf_file" "$etc/conf-enabled/$conf_name.conf" "$site"; do
    if [ -e "$f" ] || [ -L "$f" ]; then left="$left $f"; fi
done
[ -z "$left" ] || fail "left behind:$left"
case "$(pkg_status)" in
    "" | not-installed) ;;
    *) fail "$pkg is still in dpkg's database: $(pkg_status)" ;;
esac
# dpkg -l: no line for it, or one that says "un" (unknown, not installed).
if dpkg -l "$pkg" 2>/dev/null | grep -E "^[a-z]{2,3} +${pkg}[ :]" | grep -qv '^un'; then
    fail "dpkg -l still lists $pkg: $(dpkg -l "$pkg" | tail -n 1)"
fi
if ! snapshot | diff -u "$tmp/state.before" - >"$tmp/state.diff"; then
    cat "$tmp/state.diff" >&2
    fail "apache2's enabled modules, sites, configurations or a2enmod state differ from before the test (diff above)"
fi
if [ "$was_running" = 1 ]; then
    apache_pid >/dev/null || fail "apache2 was running before the test and is not now"
else
    ! apache_pid >/dev/null || fail "apache2 is running, and was not before the test"
fi
say "purged: no module, no mods-available or mods-enabled file, no test file, not in dpkg -l;"
say "apache2's enabled modules, sites and configurations as before; apache2 $([ "$was_running" = 1 ] && echo running || echo stopped) as before"
say "PASS"

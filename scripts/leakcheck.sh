#!/bin/bash
# make leakcheck: httpd single-process (-X) under valgrind memcheck with the
# module as built by `make` (.libs/mod_runai_token.so), driven through every
# route and every error path of the module by scripts/leakcheck.py, then
# valgrind's leak report is read. Fails on any "definitely lost" or
# "indirectly lost" block whose stack has a frame of mod_runai_token,
# libjwt or jansson, on any memcheck error in them, and on any answer of
# the mix that is not the one it expects. See docs/sanitizers.md.
#
# Two runs (phases), each its own httpd under valgrind:
#   default  the default store (runai-shm): the whole mix LEAKCHECK_ROUNDS
#            times, and one refresh-token reuse that revokes its session;
#   redis    RunaiTokenCache redis: the mix, redis killed in the middle (the
#            503 answers of a dead store), restarted (recovery).
#
# Environment: LEAKCHECK_KEEP=1 keeps the server's files; LEAKCHECK_ROUNDS (default 15: about 3,000 requests a
# phase), LEAKCHECK_PHASES (default "default redis"), APXS (from the
# Makefile). Logs and the report stay in build/leakcheck/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
top=$(pwd)

APXS=${APXS:-apxs}
rounds=${LEAKCHECK_ROUNDS:-15}
phases=${LEAKCHECK_PHASES:-default redis}
# RUNAI_TOKEN_MODULE and RUNAI_HTTPD as in the suite (make test-asan runs
# this mix, without valgrind, against its sanitizer build).
so=${RUNAI_TOKEN_MODULE:-$top/.libs/mod_runai_token.so}
[ -f "$so" ] || { echo "leakcheck: $so is not built (make)" >&2; exit 1; }
for tool in valgrind openssl htpasswd /usr/bin/python3; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "leakcheck: $tool not found (Debian packages valgrind apache2-utils openssl python3)" >&2; exit 1; }
done
case " $phases " in *" redis "*)
    [ -x /usr/bin/redis-server ] ||
        { echo "leakcheck: /usr/bin/redis-server not found (Debian package redis-server)" >&2; exit 1; } ;;
esac

httpd_bin=${RUNAI_HTTPD:-$("$APXS" -q SBINDIR)/$("$APXS" -q TARGET)}
mods=$("$APXS" -q LIBEXECDIR)
out=$top/build/leakcheck
rm -rf "$out"
mkdir -p "$out"

# The server's files live in /tmp: httpd's child (nobody after -X drops
# privileges) must read the htpasswd files and the guard's page.
work=$(mktemp -d "${TMPDIR:-/tmp}/runai-leakcheck.XXXXXX")
chmod 755 "$work"
vpid=
redis_pid=
# shellcheck disable=SC2317 # called from the trap
cleanup() {
    if [ -n "$vpid" ] && kill -0 "$vpid" 2>/dev/null; then
        kill -KILL "$vpid" 2>/dev/null || true
    fi
    if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
        kill -KILL "$redis_pid" 2>/dev/null || true
    fi
    if [ -n "${LEAKCHECK_KEEP:-}" ]; then
        echo "leakcheck: kept $work (LEAKCHECK_KEEP)"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# --- fixtures: keys, htpasswd files, secrets -----------------------------------
echo "== leakcheck: fixtures in $work"
(
    umask 077
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ec256.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$work/ec384.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$work/ec521.pem" 2>/dev/null
    openssl pkey -in "$work/ec521.pem" -pubout -out "$work/ec521.pub.pem"
    openssl rand 48 >"$work/hmac.key"
)
/usr/bin/python3 - "$work" <<'PY'
import base64, json, os, secrets, subprocess, sys
work = sys.argv[1]
def secret():
    return base64.urlsafe_b64encode(secrets.token_bytes(18)).decode().rstrip("=")
s = {"app-md5": secret(), "app-bcrypt": secret(), "alice": secret() + '"\\/\u00e9\u2713',
     "bob": secret(), "carol": secret(), "wrong": secret()}
def htpasswd(f, hash_, user):
    args = ["htpasswd", "-i", hash_] + ([] if os.path.exists(f) else ["-c"]) + [f, user]
    subprocess.run(args, input=s[user].encode(), check=True, capture_output=True)
htpasswd(f"{work}/apps.htpasswd", "-m", "app-md5")
htpasswd(f"{work}/apps.htpasswd", "-B", "app-bcrypt")
htpasswd(f"{work}/users.htpasswd", "-m", "alice")
htpasswd(f"{work}/users.htpasswd", "-B", "bob")
htpasswd(f"{work}/users2.htpasswd", "-m", "carol")
old = os.umask(0o077)
with open(f"{work}/secrets.json", "w") as f:
    json.dump(s, f)
os.umask(old)
PY
chmod 644 "$work"/*.htpasswd
mkdir -p "$work/htdocs"
echo '<p>guarded</p>' >"$work/htdocs/index.html"
chmod -R a+rX "$work/htdocs"

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port=$(free_port)
redis_port=
redis_pid=

# --- the configuration ------------------------------------------------------------
write_conf() { # phase
    local cache='' user=''
    [ "$1" = redis ] && cache="RunaiTokenCache redis:127.0.0.1:$redis_port"
    [ "$(id -u)" = 0 ] && user=$'User nobody\nGroup nogroup'
    cat >"$work/httpd-$1.conf" <<EOF
# written by scripts/leakcheck.sh (phase $1)
ServerRoot "$work"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$work/httpd.pid"
DefaultRuntimeDir "$work"
ErrorLog "$out/error_log-$1"
LogLevel info
$user
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authn_file_module $mods/mod_authn_file.so
LoadModule auth_basic_module $mods/mod_auth_basic.so
LoadModule env_module $mods/mod_env.so
LoadModule alias_module $mods/mod_alias.so
LoadModule socache_shmcb_module $mods/mod_socache_shmcb.so
LoadModule socache_redis_module $mods/mod_socache_redis.so
LoadModule runai_token_module "$so"
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 60
Timeout 300
# the module's own limit on bearer tokens (16 KiB) must be reachable
LimitRequestFieldSize 32768
DocumentRoot "$work/htdocs"
<Directory "$work/htdocs">
    Require all granted
</Directory>
$cache

<AuthnProviderAlias file apps>
    AuthUserFile "$work/apps.htpasswd"
</AuthnProviderAlias>
<AuthnProviderAlias file users>
    AuthUserFile "$work/users.htpasswd"
</AuthnProviderAlias>
<AuthnProviderAlias file users2>
    AuthUserFile "$work/users2.htpasswd"
</AuthnProviderAlias>
<AuthnProviderAlias file broken>
    AuthUserFile "$work/no-such-file.htpasswd"
</AuthnProviderAlias>

RunaiTokenSigningKey "$work/rsa.pem"

# rs.test: RS256, a verify-only EC key, registered clients, the authorize
# endpoint behind Basic, claims of every type, the guard.
<VirtualHost 127.0.0.1:$port>
    ServerName rs.test
    RunaiTokenIssuer http://rs.test/auth/realms/runai
    RunaiTokenSigningKey "$work/rsa.pem"
    RunaiTokenSigningKey "$work/ec521.pub.pem" rotated-ec
    RunaiTokenClient runai-cli
    RunaiTokenClient webapp https://app.example.test/callback "http://localhost:8000/cb?tenant=a"
    RunaiTokenClient kubelogin public device
    RunaiTokenAudience runai kube-apiserver
    RunaiTokenThrottle off
    # the driver shows a rotated token after 2.2 s: a reuse by then
    RunaiTokenRefreshRetry 2
    SetEnv LEAK_TENANT 1001
    <Location />
        SetHandler runai-token
        RunaiTokenAppProvider apps
        RunaiTokenPasswordProvider users users2
        RunaiTokenMaxBody 4096
        RunaiTokenClaim email "%{REMOTE_USER}@example.com"
        RunaiTokenClaim groups "%{REMOTE_USER}-team, devs,, ops " list
        RunaiTokenClaim uid "1000" number
        RunaiTokenClaim ratio "-2.5" number
        RunaiTokenClaim tenant "%{env:LEAK_TENANT}" number
        RunaiTokenClaim admin "yes" bool
        RunaiTokenClaim suspended "off" bool
        RunaiTokenClaim badnumber "12abc" number
        RunaiTokenClaim badbool "maybe" bool
        RunaiTokenClaim unset "%{env:LEAK_UNSET}"
        RunaiTokenClaim name "Zoë ✓ >?~"
        RunaiTokenAppClaim kind "service-%{REMOTE_USER}"
        RunaiTokenAppClaim scopes "read, write" list
        RunaiTokenRefreshRequire user alice bob carol
    </Location>
    <Location /api/v1/users>
        AuthType Basic
        AuthName "runai admins"
        AuthBasicProvider users
        Require user alice
    </Location>
    <Location /auth/realms/runai/device>
        AuthType Basic
        AuthName "runai device"
        AuthBasicProvider users
        Require valid-user
    </Location>
    <Location /api/v1/authorize>
        AuthType Basic
        AuthName "runai login"
        AuthBasicProvider users
        Require valid-user
        SetEnv UPSTREAM_TOKEN upstream-access-token
        RunaiTokenExternalTokenVar UPSTREAM_TOKEN
    </Location>
    AliasMatch "^/guard(/.*)?\$" "$work/htdocs/index.html"
    <Location /guard>
        SetHandler none
        AuthType RunaiToken
        AuthName "runai guard"
        Require valid-user
    </Location>
    <Location /guard/team>
        Require runai-claim groups alice-team platform-admins
    </Location>
    <Location /guard/named>
        Require runai-claim preferred_username bob carol
    </Location>
    <Location /guard/other>
        RunaiTokenAudience other-api
    </Location>
    <Location /guard/by-email>
        RunaiTokenUserClaim email
    </Location>
</VirtualHost>

# es.test: ES256 with an HMAC key second; no app cache.
<VirtualHost 127.0.0.1:$port>
    ServerName es.test
    RunaiTokenIssuer https://es.test
    RunaiTokenSigningKey "$work/ec256.pem"
    RunaiTokenSigningKey "hmac:$work/hmac.key" hs-second
    RunaiTokenThrottle off
    RunaiTokenAppCache off
    <Location />
        SetHandler runai-token
        RunaiTokenAppProvider apps
        RunaiTokenPasswordProvider users
        RunaiTokenAccessLifetime 600
    </Location>
</VirtualHost>

# hs.test: HS256 (the driver forges guard tokens with this key); ES384
# verify key second.
<VirtualHost 127.0.0.1:$port>
    ServerName hs.test
    RunaiTokenIssuer https://hs.test/realm
    RunaiTokenSigningKey "hmac:$work/hmac.key"
    RunaiTokenThrottle off
    <Location />
        SetHandler runai-token
        RunaiTokenAppProvider apps
        RunaiTokenPasswordProvider users
    </Location>
    AliasMatch "^/guard(/.*)?\$" "$work/htdocs/index.html"
    <Location /guard>
        SetHandler none
        AuthType RunaiToken
        AuthName "hs guard"
        Require valid-user
    </Location>
    <Location /guard/uid>
        Require runai-claim uid 1000
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:$port>
    ServerName throttle.test
    RunaiTokenIssuer https://throttle.test
    RunaiTokenSigningKey "$work/ec384.pem"
    RunaiTokenThrottle 3 60
    <Location />
        SetHandler runai-token
        RunaiTokenAppProvider apps
        RunaiTokenPasswordProvider users
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:$port>
    ServerName pw.test
    RunaiTokenIssuer https://pw.test
    <Location />
        SetHandler runai-token
        RunaiTokenPasswordProvider users
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:$port>
    ServerName app.test
    RunaiTokenIssuer https://app.test
    <Location />
        SetHandler runai-token
        RunaiTokenAppProvider apps
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:$port>
    ServerName broken.test
    RunaiTokenIssuer https://broken.test
    <Location />
        SetHandler runai-token
        RunaiTokenAppProvider broken
        RunaiTokenPasswordProvider broken
    </Location>
</VirtualHost>

# the authorize endpoint where no authentication runs: 500
<VirtualHost 127.0.0.1:$port>
    ServerName open.test
    RunaiTokenIssuer https://open.test
    RunaiTokenClient webapp https://app.example.test/callback
    <Location />
        SetHandler runai-token
        RunaiTokenPasswordProvider users
    </Location>
</VirtualHost>
EOF
    chmod 644 "$work/httpd-$1.conf"
}

# --- one phase: httpd under valgrind, the mix, a clean stop ---------------------
supp=$top/scripts/leakcheck.supp
logs=()
drive_rc=0
for phase in $phases; do
    if [ "$phase" = redis ]; then
        # redis first, on a port chosen now, so that nothing takes it
        # before httpd is configured with it; the driver kills and
        # restarts it on the same port.
        redis_port=$(free_port)
        /usr/bin/redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
            --appendonly no --dir "$work" >>"$out/redis.log" 2>&1 &
        redis_pid=$!
        disown "$redis_pid"   # the driver kills it: no "Killed" notice
        for _ in $(seq 1 200); do
            /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $redis_port), 1)" \
                2>/dev/null && break
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $redis_port), 1)" \
            2>/dev/null || { cat "$out/redis.log" >&2; echo "leakcheck: redis-server did not start" >&2; exit 1; }
    fi
    write_conf "$phase"
    "$httpd_bin" -t -f "$work/httpd-$phase.conf" >/dev/null 2>&1 || {
        "$httpd_bin" -t -f "$work/httpd-$phase.conf"
        exit 1
    }
    log=$out/valgrind-$phase.log
    logs+=("$log")
    if [ -n "${LEAKCHECK_NO_VALGRIND:-}" ]; then
        echo "== leakcheck[$phase]: $httpd_bin -X (no valgrind)"
    else
        echo "== leakcheck[$phase]: $httpd_bin -X under valgrind (log: $log)"
    fi
    # shellcheck disable=SC2054 # the commas belong to valgrind's options
    vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=all
        --errors-for-leak-kinds=definite,indirect --num-callers=40 --vgdb=no --keep-debuginfo=yes
        --suppressions="$supp" --gen-suppressions=all --log-file="$log")
    # LEAKCHECK_NO_VALGRIND=1: the same run without valgrind (to try the mix)
    [ -z "${LEAKCHECK_NO_VALGRIND:-}" ] || vg=()
    "${vg[@]}" "$httpd_bin" -X -d "$work" -f "$work/httpd-$phase.conf" </dev/null &
    vpid=$!
    up=0
    for _ in $(seq 1 600); do
        if /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "$vpid" 2>/dev/null || break
        sleep 0.2
    done
    if [ "$up" != 1 ]; then
        echo "leakcheck: httpd under valgrind did not listen on $port" >&2
        tail -n 30 "$out/error_log-$phase" "$log" >&2 || true
        exit 1
    fi
    set +e
    /usr/bin/python3 scripts/leakcheck.py drive --port "$port" --work "$work" --phase "$phase" \
        --rounds "$rounds" --stats "$out/requests-$phase.txt" \
        ${redis_port:+--redis-port "$redis_port" --redis-pid "$redis_pid" --redis-log "$out/redis.log"}
    rc=$?
    set -e
    [ "$rc" = 0 ] || drive_rc=$rc
    # SIGTERM: httpd -X stops, frees its pools and exits; valgrind then
    # writes the leak report.
    kill -TERM "$vpid"
    stopped=0
    for _ in $(seq 1 600); do
        kill -0 "$vpid" 2>/dev/null || { stopped=1; break; }
        sleep 0.2
    done
    if [ "$stopped" != 1 ]; then
        echo "leakcheck: httpd did not stop within 120 s of SIGTERM" >&2
        kill -KILL "$vpid" 2>/dev/null || true
        exit 1
    fi
    wait "$vpid" 2>/dev/null || true
    vpid=
done

# --- the verdict -------------------------------------------------------------------
if [ -n "${LEAKCHECK_NO_VALGRIND:-}" ]; then
    echo "leakcheck: LEAKCHECK_NO_VALGRIND is set: no valgrind report"
    exit "$drive_rc"
fi
echo "== leakcheck: valgrind's reports"
set +e
/usr/bin/python3 scripts/leakcheck.py report "${logs[@]}" | tee "$out/report.txt"
report_rc=${PIPESTATUS[0]}
set -e
if [ "$drive_rc" != 0 ]; then
    echo "leakcheck: FAILED: the request mix got answers it did not expect (above)"
    exit 1
fi
exit "$report_rc"

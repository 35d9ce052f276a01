#!/bin/bash
# Run mod_runai_token in a throw-away Apache on 127.0.0.1:8080 (`make run`).
#
#   MODULE=/abs/path/.libs/mod_runai_token.so APXS=/usr/bin/apxs scripts/run-demo.sh
#   scripts/run-demo.sh [/abs/path/mod_runai_token.so]
#
# Creates demo/ in the repository (git-ignored): a signing key, htpasswd
# files with a demo application and a demo user (random secrets, saved in
# demo/credentials), and a complete httpd.conf. Checks the configuration
# with `apache2 -t`, prints curl commands to try (JSON and OAuth 2.0 form
# dialects, refresh, authorize -> exchange, the deprecated routes, discovery,
# JWKS, the bearer guard), then runs Apache in the foreground until Ctrl-C.
#
# Where the files live. demo/ keeps what only the user who starts Apache
# reads, once, at start: the private key, the credentials, httpd.conf, the
# master htpasswd files; the logs and the pid file, which that process
# opens. Started as root, Apache runs its children as nobody, and they read
# the htpasswd files on every login and serve the guarded file: those get
# copied, for this run only, into a directory made with mktemp under /tmp
# (mode 0755; the htpasswd copies 0640, group nogroup), which also holds
# DocumentRoot and DefaultRuntimeDir. So the demo works in a clone that
# nobody can reach (root's home is 0700) without changing the permissions
# of any of the user's directories. That directory is removed when the demo
# ends (Ctrl-C, SIGINT, SIGTERM, SIGHUP, or a failed start); the signing key
# never leaves demo/.
#
# A second run reuses the key and the credentials; `rm -rf demo` starts
# afresh. Environment: PORT (default 8080), MODULE, APXS, HTTPD (the httpd
# binary; default: the one apxs names).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
demo="$repo/demo"
port=${PORT:-8080}
host=127.0.0.1
base="http://$host:$port"
# A Keycloak-style issuer path: the token endpoint is also served at
# $issuer/protocol/openid-connect/token, discovery and JWKS under it.
issuer="$base/auth/realms/runai"
# The redirect URI of the demo web client (nothing listens there: the demo
# reads the code from the 302's Location header).
redirect_uri="http://$host:$port/callback"

die() {
    echo "run-demo: $*" >&2
    exit 1
}

module=${1:-${MODULE:-$repo/.libs/mod_runai_token.so}}
case "$module" in
    /*) ;;
    *) module="$(pwd)/$module" ;;
esac
[ -f "$module" ] || die "module '$module' not found: run 'make' first (or 'make run')"

apxs=${APXS:-$(command -v apxs 2>/dev/null || command -v apxs2 2>/dev/null || true)}
moddir=/usr/lib/apache2/modules
httpd=/usr/sbin/apache2
if [ -n "$apxs" ] && [ -x "$apxs" ]; then
    moddir=$("$apxs" -q LIBEXECDIR)
    httpd="$("$apxs" -q SBINDIR)/$("$apxs" -q PROGNAME)"
fi
httpd=${HTTPD:-$httpd}
[ -x "$httpd" ] || die "httpd binary '$httpd' not found: run scripts/deps.sh --build-only"
[ -f "$moddir/mod_mpm_event.so" ] || die "no Apache modules in '$moddir': run scripts/deps.sh --build-only"
for tool in openssl htpasswd curl; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "'$tool' not found: run scripts/deps.sh --build-only"
done

pidfile="$demo/run/httpd.pid"
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    die "a demo server is already running (pid $(cat "$pidfile")); stop it first"
fi
if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    die "$host:$port is already in use; choose another port with PORT=NNNN make run"
fi

# --- files -----------------------------------------------------------------

mkdir -p "$demo" "$demo/logs" "$demo/run"
chmod 755 "$demo"
(umask 077 && mkdir -p "$demo/keys")

key="$demo/keys/signing.pem"
pub="$demo/keys/signing.pub"
if [ ! -s "$key" ]; then
    (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
        -out "$key" 2>/dev/null) || die "openssl genpkey failed"
    rm -f "$pub"
fi
chmod 600 "$key"
if [ ! -s "$pub" ]; then
    openssl pkey -in "$key" -pubout -out "$pub" 2>/dev/null || die "openssl pkey -pubout failed"
fi
# The public key is public; let anyone read it (and reach it, for verifiers).
chmod 711 "$demo/keys"
chmod 644 "$pub"

# Letters and digits only: nothing to escape in JSON or shell quotes.
random_secret() {
    local s=""
    while [ ${#s} -lt 32 ]; do
        s="$s$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9')"
    done
    printf '%s' "${s:0:32}"
}

creds="$demo/credentials"
apps="$demo/apps.htpasswd"
users="$demo/users.htpasswd"
fresh=0
unset DEMO_APP_ID DEMO_APP_SECRET DEMO_USER DEMO_USER_PASSWORD
if [ -s "$creds" ] && [ -s "$apps" ] && [ -s "$users" ]; then
    # shellcheck source=/dev/null
    . "$creds"
fi
if [ -z "${DEMO_APP_SECRET:-}" ] || [ -z "${DEMO_USER_PASSWORD:-}" ]; then
    fresh=1
    DEMO_APP_ID="demo-app"
    DEMO_APP_SECRET=$(random_secret)
    DEMO_USER=demo
    DEMO_USER_PASSWORD=$(random_secret)
    rm -f "$apps" "$users"
    # -i: read the secret from stdin, never from the command line (ps).
    printf '%s\n' "$DEMO_APP_SECRET" | htpasswd -c -i -B "$apps" "$DEMO_APP_ID" 2>/dev/null ||
        die "htpasswd failed"
    printf '%s\n' "$DEMO_USER_PASSWORD" | htpasswd -c -i -B "$users" "$DEMO_USER" 2>/dev/null ||
        die "htpasswd failed"
    (
        umask 077
        cat >"$creds" <<EOF
# mod_runai_token demo credentials (written by scripts/run-demo.sh).
# Shell syntax: '. demo/credentials' sets these variables.
DEMO_APP_ID=$DEMO_APP_ID
DEMO_APP_SECRET=$DEMO_APP_SECRET
DEMO_USER=$DEMO_USER
DEMO_USER_PASSWORD=$DEMO_USER_PASSWORD
EOF
    )
fi
chmod 600 "$creds"

chmod 600 "$apps" "$users"

# --- what the children read, for this run only -------------------------------

# Under /tmp rather than $TMPDIR, which may be private to the user.
tmp=$(mktemp -d /tmp/mod_runai_token-demo.XXXXXX) || die "mktemp -d under /tmp failed"
cleanup() {
    case "$tmp" in
        /tmp/mod_runai_token-demo.?*) rm -rf -- "$tmp" ;;
    esac
}
# A signal ends the script through exit, so that the EXIT trap runs.
on_signals() {
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}
trap cleanup EXIT
on_signals
chmod 755 "$tmp"
mkdir -p "$tmp/run" "$tmp/htdocs/guarded"
chmod 755 "$tmp/run" "$tmp/htdocs" "$tmp/htdocs/guarded"
printf 'hello from a location guarded by AuthType RunaiToken\n' >"$tmp/htdocs/guarded/hello.txt"
chmod 644 "$tmp/htdocs/guarded/hello.txt"
run_apps="$tmp/apps.htpasswd"
run_users="$tmp/users.htpasswd"
(umask 077 && cp "$apps" "$run_apps" && cp "$users" "$run_users") || die "cannot copy the htpasswd files to $tmp"

# Apache reads the htpasswd files in its children, which run as nobody when
# the server is started as root.
user_lines=""
if [ "$(id -u)" = 0 ]; then
    user_lines=$'User nobody\nGroup nogroup'
    chgrp nogroup "$run_apps" "$run_users"
    chmod 640 "$run_apps" "$run_users"
    runuser -u nobody -- test -r "$run_users" ||
        die "user nobody cannot read $run_users; is /tmp mounted for root only?"
fi

conf="$demo/httpd.conf"
cat >"$conf" <<EOF
# mod_runai_token demo server. Written by scripts/run-demo.sh on every run:
# edit the script, not this file.
ServerRoot "$demo"
ServerName $host:$port
Listen $host:$port
# What the children read or use lives in $tmp
# (removed when run-demo.sh ends).
DefaultRuntimeDir "$tmp/run"
PidFile "$demo/run/httpd.pid"
$user_lines

LoadModule mpm_event_module $moddir/mod_mpm_event.so
LoadModule authz_core_module $moddir/mod_authz_core.so
LoadModule authn_core_module $moddir/mod_authn_core.so
LoadModule authn_file_module $moddir/mod_authn_file.so
# Basic authentication in front of the authorize endpoint, and
# Require valid-user there and on the guarded location.
LoadModule auth_basic_module $moddir/mod_auth_basic.so
LoadModule authz_user_module $moddir/mod_authz_user.so
LoadModule mime_module $moddir/mod_mime.so
<IfModule !log_config_module>
    # built into Debian's apache2; a module elsewhere
    LoadModule log_config_module $moddir/mod_log_config.so
</IfModule>
# Shared memory for the module's store of refresh sessions, one-time codes
# and throttle counters (RunaiTokenCache defaults to shmcb). Sessions kept
# there end when this server stops.
LoadModule socache_shmcb_module $moddir/mod_socache_shmcb.so
LoadModule runai_token_module $module

# A small server: one process to start with.
StartServers 1
ServerLimit 4
ThreadsPerChild 10
MinSpareThreads 10
MaxSpareThreads 30
MaxRequestWorkers 40

TypesConfig /etc/mime.types
DocumentRoot "$tmp/htdocs"
ErrorLog logs/error_log
# One info line per token request from runai_token; warnings from the rest.
LogLevel warn runai_token:info
LogFormat "%h %l %u %t \"%r\" %>s %b \"%{User-Agent}i\"" demo
CustomLog logs/access_log demo

# Token signing: issuer and the RSA key (RS256). The key is read once, at
# start, as the user who starts Apache. The issuer's path makes the module
# answer Keycloak-era scripts at $issuer/protocol/openid-connect/token.
RunaiTokenIssuer $issuer
RunaiTokenSigningKey keys/signing.pem

# Registered public clients. Once one is registered, the clientID of a
# password grant must name a registered client (or be left out).
#   cli, runai-cli  the Run:ai CLI and Keycloak-era scripts (password grant)
#   demo-web        a web application that sends users to /api/v1/authorize
#                   with a PKCE challenge (pkce: codes only with one)
#                   and redeems the code (exchange_token)
RunaiTokenClient cli public
RunaiTokenClient runai-cli public
RunaiTokenClient demo-web public pkce $redirect_uri

# Users for the password grant live in their own file, behind an alias
# (defined before it is used).
<AuthnProviderAlias file demo-users>
    AuthUserFile "$run_users"
</AuthnProviderAlias>

<Location />
    SetHandler runai-token
    Require all granted

    # Applications (app_token, client_credentials, the legacy apptoken
    # route) are checked by mod_authn_file against this file.
    RunaiTokenAppProvider file
    AuthUserFile "$run_apps"

    # Users (password grant) through the alias above.
    RunaiTokenPasswordProvider demo-users

    RunaiTokenAudience runai
    RunaiTokenAccessLifetime 3600

    # Claims of user tokens: ap_expr strings, evaluated after the password
    # is checked, with REMOTE_USER set to the user.
    RunaiTokenClaim email "%{REMOTE_USER}@example.com"
    RunaiTokenClaim name "Demo User"
    RunaiTokenClaim groups "runai-users, demo" list
    RunaiTokenClaim tenant_id 1001 number
    # Claims of application tokens (REMOTE_USER is the app ID).
    RunaiTokenAppClaim groups "runai-apps" list

    # A refresh session ends 8 hours after its login, however often it is
    # refreshed.
    RunaiTokenRefreshLifetime 28800
    # 5 wrong passwords (or app secrets) for one name within 60 s: 429.
    RunaiTokenThrottle 5 60
</Location>

# The authorize endpoint behind Basic authentication of the demo user (any
# AuthType works: Kerberos, client certificates, mod_auth_openidc, ...).
<Location /api/v1/authorize>
    AuthType Basic
    AuthName "mod_runai_token demo"
    AuthBasicProvider demo-users
    Require valid-user
</Location>

# A location guarded by the tokens this server issues: a static file here,
# an API server behind ProxyPass in real life.
<Location /guarded/>
    SetHandler none
    AuthType RunaiToken
    AuthName "demo api"
    Require valid-user
</Location>
EOF

if ! check=$("$httpd" -f "$conf" -t 2>&1); then
    echo "$check" >&2
    die "configuration test failed ($conf)"
fi
# Show what the check had to say besides "Syntax OK" (warnings, say).
if warnings=$(printf '%s\n' "$check" | grep -v '^Syntax OK$'); then
    printf '%s\n' "$warnings" >&2
fi

# --- what to try -----------------------------------------------------------

json="-H 'Content-Type: application/json'"
app_body="{\"grantType\":\"app_token\",\"appID\":\"$DEMO_APP_ID\",\"appSecret\":\"$DEMO_APP_SECRET\"}"
cc_body="{\"grantType\":\"client_credentials\",\"clientId\":\"$DEMO_APP_ID\",\"clientSecret\":\"$DEMO_APP_SECRET\"}"
pw_body="{\"grantType\":\"password\",\"username\":\"$DEMO_USER\",\"password\":\"$DEMO_USER_PASSWORD\",\"clientID\":\"cli\"}"
legacy_body="{\"id\":\"$DEMO_APP_ID\",\"name\":\"$DEMO_APP_ID\",\"secret\":\"$DEMO_APP_SECRET\"}"
# Prints one member of the JSON reply on stdin.
field() {
    printf "/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[\"%s\"])'" "$1"
}
# The redirect URI as a query parameter value.
redirect_q=$(printf %s "$redirect_uri" | sed 's/:/%3A/g; s#/#%2F#g')
authorize="$base/api/v1/authorize?client_id=demo-web&redirect_uri=$redirect_q&state=xyz&nonce=n-0S6&code_challenge=\$C&code_challenge_method=S256"
form_pw="-d grant_type=password -d client_id=runai-cli -d username=$DEMO_USER -d password=$DEMO_USER_PASSWORD"

if [ "$fresh" = 1 ]; then
    creds_note="new credentials, saved in $creds (mode 600)"
else
    creds_note="credentials of an earlier run, from $creds; rm -rf demo for new ones"
fi

cat <<EOF

mod_runai_token demo: $base   ($("$httpd" -v | sed -n 's/^Server version: //p'))
  module   $module
  config   $conf
  logs     $demo/logs/error_log, access_log
  key      $key (RS256), public key $pub
  issuer   $issuer
  runtime  $tmp
           (what the children read: htpasswd copies, htdocs; removed when the demo stops)

Credentials ($creds_note):
  application  $DEMO_APP_ID   secret   $DEMO_APP_SECRET
  user         $DEMO_USER       password $DEMO_USER_PASSWORD
  clients      cli, runai-cli; demo-web with redirect URI $redirect_uri

Try these from another terminal (bash).

### Run:ai JSON dialect

# app_token grant -> {"accessToken", "expiresIn"}
curl -sS $base/api/v1/token $json -d '$app_body'

# client_credentials in the JSON body (same as app_token)
curl -sS $base/api/v1/token $json -d '$cc_body'

# password grant -> {"accessToken", "idToken", "refreshToken", "expiresIn"}
curl -sS $base/api/v1/token $json -d '$pw_body'

# refresh: keep the refresh token of a password grant, trade it for new tokens
R=\$(curl -sS $base/api/v1/token $json -d '$pw_body' | $(field refreshToken))
curl -sS $base/api/v1/token $json -d "{\"grantType\":\"refresh_token\",\"refreshToken\":\"\$R\"}"
# R is spent now: again -> 401; after more than 2 s that also revokes the session
curl -sS $base/api/v1/token $json -d "{\"grantType\":\"refresh_token\",\"refreshToken\":\"\$R\"}"

# authorize -> exchange, with PKCE S256: a verifier, its challenge, the demo
# user's login (Basic) at /api/v1/authorize, the code from the 302's Location
V=\$(openssl rand -base64 48 | tr '+/' '-_' | tr -d '=\n')
C=\$(printf %s "\$V" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
LOC=\$(curl -sS -o /dev/null -w '%{redirect_url}' -u '$DEMO_USER:$DEMO_USER_PASSWORD' "$authorize"); echo "\$LOC"
CODE=\$(printf %s "\$LOC" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
# -> {"accessToken", "idToken" (with the nonce), "refreshToken", "expiresIn"}
curl -sS $base/api/v1/token $json -d "{\"grantType\":\"exchange_token\",\"code\":\"\$CODE\",\"redirectUri\":\"$redirect_uri\",\"codeVerifier\":\"\$V\"}"

# the legacy app token route (deprecated: see the Deprecation and Link headers)
curl -sS -i $base/v1/k8s/auth/oauth/apptoken $json -d '$legacy_body'

# the legacy refresh route (deprecated); the access log shows ?redacted
R=\$(curl -sS $base/api/v1/token $json -d '$pw_body' | $(field refreshToken))
curl -sS -i -X POST "$base/v1/k8s/auth/oauth/tokens/refresh?refresh_token=\$R"

# the legacy code exchange route (deprecated): a fresh code first
LOC=\$(curl -sS -o /dev/null -w '%{redirect_url}' -u '$DEMO_USER:$DEMO_USER_PASSWORD' "$authorize"); CODE=\$(printf %s "\$LOC" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
curl -sS -i "$base/v1/k8s/auth/token/exchange?redirect_uri=$redirect_q&code=\$CODE&code_verifier=\$V"

### OAuth 2.0 dialect (form bodies, RFC 6749 replies)

# client_credentials, client_secret_basic -> {"access_token", "token_type", "expires_in"}
curl -sS -u '$DEMO_APP_ID:$DEMO_APP_SECRET' -d grant_type=client_credentials $base/api/v1/token

# the password grant as Keycloak-era scripts send it, at the Keycloak path
curl -sS $form_pw $issuer/protocol/openid-connect/token

# refresh_token as a form
RF=\$(curl -sS $form_pw $issuer/protocol/openid-connect/token | $(field refresh_token))
curl -sS -d grant_type=refresh_token -d client_id=runai-cli -d refresh_token=\$RF $issuer/protocol/openid-connect/token

### OIDC discovery, JWKS, verifying, the bearer guard

curl -sS $issuer/.well-known/openid-configuration
curl -sS -i $issuer/protocol/openid-connect/certs

# keep an access token in a shell variable
TOKEN=\$(curl -sS $base/api/v1/token $json -d '$app_body' | $(field accessToken))

# decode its payload (plain base64 works: the payload holds no - or _)
p=\$(printf %s "\$TOKEN" | cut -d. -f2); while [ \$((\${#p} % 4)) -ne 0 ]; do p="\$p="; done; printf %s "\$p" | base64 -d; echo

# verify it with PyJWT: with the public key, then with the key found in the JWKS
/usr/bin/python3 -c 'import sys, jwt; print(jwt.decode(sys.argv[1], open("$pub").read(), algorithms=["RS256"], audience="runai", issuer="$issuer"))' "\$TOKEN"
/usr/bin/python3 -c 'import sys, jwt; k = jwt.PyJWKClient("$issuer/protocol/openid-connect/certs").get_signing_key_from_jwt(sys.argv[1]); print(jwt.decode(sys.argv[1], k.key, algorithms=["RS256"], audience="runai", issuer="$issuer"))' "\$TOKEN"

# a location guarded by AuthType RunaiToken: 401 without a token, 200 with one
curl -sS -i $base/guarded/hello.txt
curl -sS -H "Authorization: Bearer \$TOKEN" $base/guarded/hello.txt

Press Ctrl-C to stop the server.
EOF

# Run httpd in the foreground. Ctrl-C reaches httpd directly (it shuts down
# and removes its pid file); a TERM, INT or HUP sent to this script alone is
# passed on. Either way the script waits for httpd to end, then removes
# $tmp (the EXIT trap). If httpd fails to start, show why: the reason is in
# the error log, which the terminal would not otherwise see.
cd "$demo"
log="$demo/logs/error_log"
log_lines=0
[ -f "$log" ] && log_lines=$(wc -l <"$log")
"$httpd" -f "$conf" -DFOREGROUND &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' INT TERM HUP
rc=0
# kill -0 also succeeds on a zombie, so the loop ends only after wait has
# collected httpd's own exit status.
while kill -0 "$pid" 2>/dev/null; do
    rc=0
    wait "$pid" || rc=$?
done
on_signals
if [ "$rc" != 0 ]; then
    echo "run-demo: apache2 exited with status $rc; from $log:" >&2
    [ -f "$log" ] && tail -n +"$((log_lines + 1))" "$log" | tail -n 20 >&2
    exit "$rc"
fi
echo
echo "run-demo: server stopped."

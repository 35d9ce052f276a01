# The refresh_token grant on the Apache::Test server (the default
# store): rotation, reuse detection revoking the whole session, the absolute
# RunaiTokenRefreshLifetime, the legacy route with its redacted access log
# line, and requests refused as malformed that must leave the token alone.
#
# A rotated token presented again within RunaiTokenRefreshRetry (2 s on
# this vhost) of its rotation gets the same successor again (a client that
# lost the answer, or refreshed from two threads); presented later, it
# revokes the session. So the reuse checks are collected in @later and run
# once, after that window.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use MIME::Base64 qw(encode_base64url);
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $port = vhost_port('sess');
my $short = vhost_port('sessshort');
my $iss = 'https://sess.example.test/realms/runai';
my $kid = thumbprint('ec256');
my %jti;
my $logs = Apache::Test::vars('t_logs');
my $error_log = catfile($logs, 'error_log');
my $access_log = catfile($logs, 'access_log');
my $GRACE = 2.2;      # RunaiTokenRefreshRetry 2, and a little
my @later;            # reuse checks, run once the retry window is over
my $last_rotation = time;

# The sessshort login starts first: its refresh lifetime (4 s) runs while
# the rest of the file does its work.
my $short_login = password_login($short, 'bob', $s->{users}{bob});
my $t_short_login = time;

sub random_token { encode_base64url(join '', map { chr int rand 256 } 1 .. 32) }

# --- password login, then rotation -------------------------------------------
my($r0, $r1, $login_auth_time);
{
    my $res = password_login($port, 'alice', $s->{users}{alice}, clientID => 'cli',
                             headers => ['X-Dept' => 'physics']);
    my $body = tokens_ok($res, 'password login');
    $r0 = $body->{refreshToken};
    my $id = check_token_basics($body->{idToken}, name => 'login id token', alg => 'ES256', kid => $kid,
        iss => $iss, sub => 'alice', aud => 'cli');
    $login_auth_time = $id->{auth_time};
    is($id->{auth_time}, $id->{iat}, 'login id token: auth_time == iat');
    my $at = check_token_basics($body->{accessToken}, name => 'login access token', alg => 'ES256',
        kid => $kid, iss => $iss, sub => 'alice', aud => 'runai', lifetime => 3600, jti => \%jti);
    is($at->{dept}, 'physics', 'login: claim from a request header');

    sleep 1.1;    # the refreshed tokens get a later iat than the login
    # the header differs now: claims come from the login, not this request
    $res = refresh_call($port, $r0, headers => ['X-Dept' => 'chemistry']);
    $body = tokens_ok($res, 'refresh');
    $r1 = $body->{refreshToken};
    isnt($r1, $r0, 'refresh: a new refresh token');
    is($body->{expiresIn}, 3600, 'refresh: expiresIn 3600');
    my $c = check_token_basics($body->{accessToken}, name => 'refreshed access token', alg => 'ES256',
        kid => $kid, iss => $iss, sub => 'alice', aud => 'runai', lifetime => 3600, jti => \%jti);
    is($c->{azp}, 'cli', 'refreshed access token: azp is the login client');
    is($c->{preferred_username}, 'alice', 'refreshed access token: preferred_username');
    is($c->{email}, 'alice@sess.example.test', 'refreshed access token: claims of the login');
    is($c->{dept}, 'physics', 'refreshed access token: claims evaluated at login, not at refresh');
    ok(!exists $c->{groups}, 'refreshed access token: no claim the login did not have');
    my $i = check_token_basics($body->{idToken}, name => 'refreshed id token', alg => 'ES256', kid => $kid,
        iss => $iss, sub => 'alice', aud => 'cli');
    is($i->{azp}, 'cli', 'refreshed id token: azp');
    is($i->{auth_time}, $login_auth_time, 'refreshed id token: auth_time of the original login');
    cmp_ok($i->{iat}, '>', $i->{auth_time}, 'refreshed id token: iat after auth_time');
    is($i->{dept}, 'physics', 'refreshed id token: claims of the login');
    my($claims, $err) = verify_crypt_jwt($body->{accessToken}, 'ec256', 'ES256', aud => 'runai', iss => $iss);
    ok($claims, 'refreshed access token verifies (Crypt::JWT)') or diag($err);
    ($claims, $err) = verify_libjwt($body->{idToken}, 'ec256');
    ok($claims, 'refreshed id token verifies (libjwt)') or diag($err);

    $last_rotation = time;

    # presented again at once: the same successor again, the session kept
    # (a client that lost the answer, or two threads of one client)
    $res = refresh_call($port, $r0);
    $body = tokens_ok($res, 'rotated token presented again at once');
    is($body->{refreshToken}, $r1, 'presented again at once: the same successor as the first time');
    $res = refresh_call($port, $r1);
    $body = tokens_ok($res, 'the successor after a retry: session kept');
    my $r2 = $body->{refreshToken} // '';
    $last_rotation = time;
    ok(wait_until(5, 0.1, sub { (slurp($error_log) // '') =~ /presented again within the retry window/ }),
       'the retry is logged');
    my $forged = $r2 =~ s/.$/$& eq 'A' ? 'B' : 'A'/er;
    check_error(refresh_call($port, $forged), 401, qr/^invalid refresh token$/,
                'the newest token with its MAC altered');
    (my $later_gen = $r2) =~ s/\.(\d+)\./'.' . ($1 + 5) . '.'/e;
    check_error(refresh_call($port, $later_gen), 401, qr/^invalid refresh token$/,
                'the newest token with a later generation but its own MAC');

    # presented after the retry window: refused, and the session is revoked
    push @later, sub {
        check_error(refresh_call($port, $r0), 401, qr/^invalid refresh token$/,
                    'the first token presented after the retry window');
        check_error(refresh_call($port, $r2), 401, qr/^invalid refresh token$/,
                    'the newest token after that reuse: the session is revoked');
    };
}

# --- a longer chain: reuse of an older token kills the newest -------------------
{
    my $body = reply_of(password_login($port, 'bob', $s->{users}{bob})) || {};
    my @chain = ($body->{refreshToken} // '');
    for my $n (1 .. 4) {
        my $res = refresh_call($port, $chain[-1]);
        is($res->code, 200, "chain: refresh $n") or diag($res->content);
        push @chain, (reply_of($res) || {})->{refreshToken} // '';
    }
    $last_rotation = time;
    my %uniq = map { $_ => 1 } @chain;
    is(scalar keys %uniq, 5, 'chain: five distinct refresh tokens');
    # an unrelated session of the same user
    my $other = reply_of(password_login($port, 'bob', $s->{users}{bob})) || {};
    push @later, sub {
        check_error(refresh_call($port, $chain[1]), 401, qr/^invalid refresh token$/,
                    'chain: the second token presented again');
        check_error(refresh_call($port, $chain[4]), 401, qr/^invalid refresh token$/,
                    'chain: the newest token is revoked with its session');
        check_error(refresh_call($port, $chain[3]), 401, qr/^invalid refresh token$/,
                    'chain: so is every other token of the session');
        is(refresh_call($port, $other->{refreshToken} // '')->code, 200,
           'another session of the same user is not revoked');
    };
}

# --- unknown, missing, empty, not a string ---------------------------------------
check_error(refresh_call($port, random_token()), 401, qr/^invalid refresh token$/, 'unknown refresh token');
check_error(refresh_call($port, 'short'), 401, qr/^invalid refresh token$/, 'garbage refresh token');
check_error(token_call($port, { grantType => 'refresh_token' }), 400, qr/^missing field 'refreshToken'$/,
            'refresh without refreshToken');
check_error(token_call($port, { grantType => 'refresh_token', refreshToken => '' }), 400,
            qr/refreshToken/, 'refresh with an empty refreshToken');
check_error(token_call($port, '{"grantType":"refresh_token","refreshToken":42}'), 400,
            qr/refreshToken/, 'refresh with a number as refreshToken');

# --- a request refused as malformed changes no stored state ---------------------
{
    my $body = reply_of(password_login($port, 'bob', $s->{users}{bob})) || {};
    my $r = $body->{refreshToken} // '';
    my $q = qq{"grantType":"refresh_token","refreshToken":"$r"};
    my @bad = (
        ['duplicate key',        400, qq({$q,"REFRESHTOKEN":"$r"})],
        ['truncated JSON',       400, qq({$q)],
        ['trailing garbage',     400, qq({$q} x)],
        ['a JSON array',         400, qq([{$q}])],
        ['grantType not a string', 400, qq({"grantType":["refresh_token"],"refreshToken":"$r"})],
        ['an unknown grant type', 400, qq({"grantType":"refresh","refreshToken":"$r"})],
        ['text/plain',           415, qq({$q}), type => 'text/plain'],
        ['a multipart body', 415, "grant=1", type => 'multipart/form-data'],
        ['too large',            413, qq({$q,"pad":") . ('x' x 17000) . '"}'],
    );
    for my $case (@bad) {
        my($name, $status, $bytes, %o) = @$case;
        my $res = token_call($port, $bytes, %o);
        is($res->code, $status, "malformed refresh ($name): $status") or diag($res->content);
    }
    my $res = refresh_call($port, $r);
    my $next = tokens_ok($res, 'the token after the malformed requests: still valid, never rotated');
    is(refresh_call($port, $next->{refreshToken} // '')->code, 200,
       'and its session was not revoked');
}

# --- the legacy route: POST /v1/k8s/auth/oauth/tokens/refresh?refresh_token= ----
{
    my $body = reply_of(password_login($port, 'alice', $s->{users}{alice})) || {};
    my $r = $body->{refreshToken} // '';
    my $res = http_request(port => $port, method => 'POST',
                           path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . url_encode($r));
    my $legacy = tokens_ok($res, 'legacy refresh');
    check_legacy_headers($res, 'legacy refresh', 1);
    check_token_basics($legacy->{accessToken}, name => 'legacy refresh access token', alg => 'ES256',
        kid => $kid, iss => $iss, sub => 'alice', aud => 'runai', lifetime => 3600, jti => \%jti);
    my $next = $legacy->{refreshToken} // '';
    isnt($next, $r, 'legacy refresh: rotated');

    $res = refresh_call($port, $next);
    my $third = tokens_ok($res, 'the legacy route\'s token on /api/v1/token');
    $last_rotation = time;
    push @later, sub {
        my $res = http_request(port => $port, method => 'POST',
                               path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . url_encode($r));
        check_error($res, 401, qr/^invalid refresh token$/, 'legacy refresh of a rotated token');
        check_legacy_headers($res, 'legacy refresh of a rotated token', 1);
        check_error(refresh_call($port, $third->{refreshToken} // ''), 401, qr/^invalid refresh token$/,
                    'reuse through the legacy route revokes the session');
    };

    $res = http_request(port => $port, method => 'POST', path => '/v1/k8s/auth/oauth/tokens/refresh');
    check_error($res, 400, qr/refresh/i, 'legacy refresh without refresh_token');
    check_legacy_headers($res, 'legacy refresh without refresh_token', 1);
    $res = http_request(port => $port, method => 'POST',
                        path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . random_token());
    check_error($res, 401, qr/^invalid refresh token$/, 'legacy refresh of an unknown token');

    # the access log shows the route with its query redacted
    my $line = qr{"POST /v1/k8s/auth/oauth/tokens/refresh\?redacted HTTP/1\.1" 200 };
    ok(wait_until(5, 0.1, sub { (slurp($access_log) // '') =~ $line }),
       'access_log: the legacy refresh request line is "...?redacted HTTP/1.1"')
        or diag(log_tail($access_log, 10));
    my $log = slurp($access_log) // '';
    ok(index($log, $r) < 0 && index($log, url_encode($r)) < 0, 'access_log: the refresh token is not there');
    # (httpd itself refuses an overlong request line with 414 before the
    # module runs; t/30_hostile.t sends such lines on purpose)
    unlike($log, qr{tokens/refresh\?refresh_token[^\n]*" (?!414 )}, 'access_log: no legacy refresh query at all');
}

# --- RunaiTokenRefreshLifetime 4: absolute from the login, not sliding -------------
my $short_next;
{
    my $body = tokens_ok($short_login, 'sessshort login');
    my $wait = 2.2 - (time - $t_short_login);
    sleep $wait if $wait > 0;
    my $res = refresh_call($short, $body->{refreshToken} // '');
    $short_next = tokens_ok($res, 'sessshort refresh within the lifetime');
}

# --- the reuse checks, once the retry window after the last rotation is over -------
{
    my $wait = $GRACE - (time - $last_rotation);
    sleep $wait if $wait > 0;
    $_->() for @later;
    ok(wait_until(5, 0.1, sub { (slurp($error_log) // '') =~ /refresh token reused: its session is revoked/ }),
       'the reuse is logged as a warning');
}

# --- RunaiTokenRefreshIdle 2 (sessidle): idle sessions end, busy ones go on ------------
{
    my $idle = vhost_port('sessidle');
    my $busy = (reply_of(password_login($idle, 'bob', $s->{users}{bob})) || {})->{refreshToken} // 'none';
    my $quiet = (reply_of(password_login($idle, 'bob', $s->{users}{bob})) || {})->{refreshToken} // 'none';
    my $t0 = time;
    my $n = 0;
    # refreshed every 0.7 s for three times the limit
    while (time - $t0 < 6.2) {
        sleep 0.7;
        my $res = refresh_call($idle, $busy);
        last unless $res->code == 200;
        $busy = (reply_of($res) || {})->{refreshToken} // 'none';
        $n++;
    }
    cmp_ok($n, '>=', 8, "sessidle: a session refreshed every 0.7 s goes on past three idle limits ($n refreshes)");
    check_error(refresh_call($idle, $quiet), 401, qr/^invalid refresh token$/,
                'sessidle: a session not refreshed for more than RunaiTokenRefreshIdle');
    ok(wait_until(5, 0.1, sub { (slurp($error_log) // '') =~ /not refreshed for 2 s \(RunaiTokenRefreshIdle\): ended/ }),
       'sessidle: the end is logged at info');
    is(refresh_call($idle, $busy)->code, 200, 'sessidle: the busy session still refreshes');
}

# --- the sessshort session has passed its absolute lifetime --------------------------
{
    # a sliding lifetime would keep this token valid until >= 6 s after the login
    my $wait = 4.3 - (time - $t_short_login);
    sleep $wait if $wait > 0;
    check_error(refresh_call($short, $short_next->{refreshToken} // ''), 401, qr/^invalid refresh token$/,
                'sessshort: refresh past RunaiTokenRefreshLifetime from the login');
}

# --- no refresh token, code or password reached a log ---------------------------
assert_logs_clean('10_refresh', $error_log, $access_log);

done_testing();

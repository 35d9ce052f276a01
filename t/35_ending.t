# Ending sessions on demand (issue 13) on the "ending" host of
# t/conf/logout.conf.in: the runai CLI's logout (the legacy redirect_uri),
# RP-initiated logout with id_token_hint (GET and POST), RFC 7009
# revocation of refresh and access tokens with each client authentication
# (public client_id, client_secret_post, client_secret_basic), force logout
# of every session of a user behind Basic auth (and refused with 403 where
# no AuthType is set: the "ending-open" host), the guard (AuthType
# RunaiToken on /guard) refusing the access tokens of an ended session
# within RunaiTokenSessionCheck (2 s here), and the discovery document
# naming the new endpoints. Every refused request is followed by a check
# that it changed no stored state: the session it aimed at still refreshes.
#
# The guard delays are measured from the answer that ended the session to
# the first 401 of the guard, polling every 100 ms (each token was shown to
# the guard just before, so its process remembered the session as live).
#
# RunaiTokenRefreshIdle: t/10_refresh.t (sessidle) already shows both a
# session idle past the limit refused and one refreshed every 0.7 s going
# on past three limits; nothing of it is repeated here.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use List::Util qw(min max);
use MIME::Base64 qw(encode_base64url);
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $APP = 'app-bcrypt';
my $APP_SECRET = $s->{apps}{$APP};
my $P = vhost_port('ending');
my $OPEN = vhost_port('ending-open');
my $origin = "http://127.0.0.1:$P";
my $realm = '/auth/realms/runai';
my $issuer = "$origin$realm";
my $REVOKE = "$realm/protocol/openid-connect/revoke";
my $LOGOUT = "$realm/protocol/openid-connect/logout";
my $CLI_URI = 'http://localhost:8000/logout';    # what the runai CLI sends
my $BOUND = 2;                                  # RunaiTokenSessionCheck on "ending"
my $invalid_token = qr/^Bearer realm="runai guard", error="invalid_token"$/;
my $logs = Apache::Test::vars('t_logs');
my $error_log = catfile($logs, 'error_log');
my $access_log = catfile($logs, 'access_log');
my @delays;    # [what, seconds]: the guard delays measured, for the summary

# --- requests ------------------------------------------------------------------

sub form_post {
    my($path, $body, %o) = @_;
    return http_request(port => $o{port} // $P, method => 'POST', path => $path, body => $body,
                        type => 'application/x-www-form-urlencoded', headers => $o{headers} || []);
}

# revoke([NAME => VALUE, ...], headers => [...])
sub revoke { my($params, %o) = @_; return form_post($REVOKE, form_body(@$params), %o) }
sub logout_get { my @q = @_; http_request(port => $P, method => 'GET', path => $LOGOUT . (@q ? '?' . form_body(@q) : '')) }
sub logout_post { return form_post($LOGOUT, form_body(@_)) }
sub guard {
    my($token, $path) = @_;
    return http_request(port => $P, method => 'GET', path => $path // '/guard/',
                        headers => [Authorization => "Bearer $token"]);
}
sub force_logout {
    my($port, $user, @cred) = @_;
    return http_request(port => $port, method => 'POST', path => "/api/v1/users/$user/logout",
                        headers => [@cred ? (Authorization => basic_auth(@cred)) : ()]);
}

# A token made here: recorded for t/99_logs.t and noted for the log check below.
sub made_here {
    my($what, $token) = @_;
    record_token($token);
    note_secret($what, $token);
    return $token;
}

# --- answers ---------------------------------------------------------------------

# RFC 6749 §5.2 / RFC 7009 §2.2.1 error (RunaiTest::check_oauth_error).
sub oauth_error {
    my($res, $status, $error, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return check_oauth_error($res, $status, $error, $name);
}

# RFC 7009 §2.2: 200, nothing in the body, nothing to cache.
sub empty_200 {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    is($res->content, '', "$name: empty body");
    like($res->header('Cache-Control') // '', qr/\bno-store\b/, "$name: Cache-Control no-store");
}

sub redirected {
    my($res, $want, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 302, "$name: 302") or diag($res->as_string);
    is($res->header('Location'), $want, "$name: Location $want");
    like($res->header('Cache-Control') // '', qr/\bno-store\b/, "$name: Cache-Control no-store");
}

sub logged_out_page {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    like($res->header('Content-Type') // '', qr{^text/html\b}i, "$name: text/html");
    like($res->header('Cache-Control') // '', qr/\bno-store\b/, "$name: Cache-Control no-store");
    like($res->content, qr/logged out/i, "$name: the page says so");
    ok(!defined $res->header('Location'), "$name: no Location");
}

# --- sessions --------------------------------------------------------------------

sub claims_of { my(undef, $c) = jwt_parts(shift); return $c || {} }

# login(USER, CLIENT or undef, NAME, port => P): a password login; the
# session: {name, user, client, port, rt, at, id, sid}. app-bcrypt proves
# its secret (clientSecret), as every grant naming it must.
sub login {
    my($user, $client, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my %extra = defined $client ? (clientID => $client) : ();
    $extra{clientSecret} = $APP_SECRET if ($client // '') eq $APP;
    my $port = $o{port} // $P;
    my $b = tokens_ok(password_login($port, $user, $s->{users}{$user}, %extra), "$name: login");
    my($at, $id) = (claims_of($b->{accessToken}), claims_of($b->{idToken}));
    ok(defined $at->{sid} && length $at->{sid}, "$name: the access token names its session (sid)");
    is($id->{sid}, $at->{sid}, "$name: the id token names the same session");
    is($at->{azp}, $client, "$name: azp " . ($client // 'absent')) if $port == $P;
    return { name => $name, user => $user, client => $client, port => $port, rt => $b->{refreshToken},
             at => $b->{accessToken}, id => $b->{idToken}, sid => $at->{sid} };
}

sub refresh_of {
    my $sess = shift;
    my %body = (grantType => 'refresh_token', refreshToken => $sess->{rt});
    @body{qw(clientID clientSecret)} = ($APP, $APP_SECRET) if ($sess->{client} // '') eq $APP;
    return token_call($sess->{port}, \%body);
}

# The session still refreshes (its newest refresh token is kept).
sub refreshes {
    my($sess, $why) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = refresh_of($sess);
    my $b = reply_of($res) || {};
    is($res->code, 200, "$sess->{name}: still refreshes ($why)") or diag($res->content);
    $sess->{rt} = $b->{refreshToken} if $res->code == 200 && defined $b->{refreshToken};
    $sess->{at} = $b->{accessToken} if $res->code == 200 && defined $b->{accessToken};
    return $res->code == 200;
}

sub ended {
    my($sess, $why) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = refresh_of($sess);
    reply_of($res);
    check_error($res, 401, qr/^invalid refresh token$/, "$sess->{name}: its refresh token is refused ($why)");
}

# Shows a session's access token to the guard (so its process remembers
# the session as live for RunaiTokenSessionCheck seconds).
sub accepted {
    my($token, $name, $path) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = guard($token, $path);
    is($res->code, 200, "$name: the guard accepts it" . ($path ? " at $path" : '')) or diag($res->as_string);
}
sub prime { my($sess) = @_; accepted($sess->{at}, "$sess->{name} before its end") for 1 .. 3 }

# settle(ITEMS): ITEMS are [name, access token, time the session ended];
# polls the guard every 100 ms until it refuses each token, for at most
# RunaiTokenSessionCheck + 2 s after its end. Asserts the delay is within
# the bound (plus 1 s for request latency) and notes it.
sub settle {
    my @pending = map { { name => $_->[0], token => $_->[1], t0 => $_->[2] } } @_;
    my(%delay, %last);
    while (@pending) {
        my @still;
        for my $w (@pending) {
            my $res = guard($w->{token});
            my $now = time;
            if ($res->code == 401) {
                $delay{ $w->{name} } = $now - $w->{t0};
                like($res->header('WWW-Authenticate') // '', $invalid_token,
                     "$w->{name}: the guard's challenge says invalid_token");
            }
            elsif ($now - $w->{t0} > $BOUND + 2) {
                $last{ $w->{name} } = $res;
                $delay{ $w->{name} } = undef;
            }
            else {
                push @still, $w;
            }
        }
        @pending = @still;
        sleep 0.1 if @pending;
    }
    for my $item (@_) {
        my $name = $item->[0];
        my $d = $delay{$name};
        ok(defined $d, "$name: the guard refuses the access token within ${BOUND} s + 2 s")
            or diag("last answer: " . $last{$name}->as_string);
        next unless defined $d;
        cmp_ok($d, '<=', $BOUND + 1, "$name: refused within RunaiTokenSessionCheck ($BOUND s, +1 s latency)");
        note(sprintf '%s: the guard refused the access token %.2f s after the end', $name, $d);
        push @delays, [$name, $d];
    }
}

# ==================================================================================
# Discovery: the endpoints, where a Keycloak-configured client looks for them
{
    my $res = http_request(port => $P, method => 'GET', path => "$realm/.well-known/openid-configuration");
    is($res->code, 200, 'discovery: 200') or diag($res->as_string);
    my $d = json_decode($res->content) || {};
    is($d->{issuer}, $issuer, 'discovery: issuer');
    is($d->{revocation_endpoint}, "$issuer/protocol/openid-connect/revoke", 'discovery: revocation_endpoint');
    is($d->{end_session_endpoint}, "$issuer/protocol/openid-connect/logout", 'discovery: end_session_endpoint');
    is_deeply([sort @{ $d->{revocation_endpoint_auth_methods_supported} || [] }],
              [qw(client_secret_basic client_secret_post none)],
              'discovery: revocation_endpoint_auth_methods_supported: basic, post, none');
    is_deeply($d->{revocation_endpoint_auth_methods_supported}, $d->{token_endpoint_auth_methods_supported},
              'discovery: the same methods as at the token endpoint');
    ok((grep { $_ eq 'sid' } @{ $d->{claims_supported} || [] }), 'discovery: claims_supported has sid');
    # the advertised URLs are served (by path: the issuer's origin is this host)
    oauth_error(revoke([]), 400, 'invalid_request', 'the advertised revocation endpoint without token');
}

# ==================================================================================
# The runai CLI's logout: GET logout?redirect_uri=http://localhost:8000/logout
{
    my $cli = login(bob => 'runai-cli', 'CLI session');
    # as the CLI writes it (nothing escaped) and escaped
    my $res = http_request(port => $P, method => 'GET', path => "$LOGOUT?redirect_uri=$CLI_URI");
    redirected($res, $CLI_URI, 'CLI logout, redirect_uri as the CLI sends it');
    redirected(logout_get(redirect_uri => $CLI_URI), $CLI_URI, 'CLI logout, redirect_uri escaped');
    redirected(logout_get(redirect_uri => $CLI_URI, client_id => 'runai-cli'), $CLI_URI,
               'CLI logout naming client_id runai-cli');
    redirected(logout_get(redirect_uri => $CLI_URI, post_logout_redirect_uri => $CLI_URI), $CLI_URI,
               'redirect_uri and post_logout_redirect_uri, the same');
    redirected(logout_get(redirect_uri => $CLI_URI, state => 'cli-1'), "$CLI_URI?state=cli-1",
               'CLI logout with a state');
    # a loopback URI on another port (the CLI's --listen-port): RFC 8252 §7.3
    redirected(logout_get(redirect_uri => 'http://localhost:8001/logout'), 'http://localhost:8001/logout',
               'CLI logout on another loopback port');
    # otherwise byte for byte: nothing close to the registered URI
    for my $bad ('http://localhost:8000/logout/', "$CLI_URI?x=1", 'http://localhost:8001/logout/',
                 'http://LOCALHOST:8000/logout', 'http://evil.example/logout', "$CLI_URI#f") {
        oauth_error(logout_get(redirect_uri => $bad), 400, 'invalid_request', "CLI logout to $bad (unregistered)");
    }
    oauth_error(http_request(port => $P, method => 'GET', path => "$LOGOUT?redirect_uri=http://localhost:8001/logout/x"),
                400, 'invalid_request', 'unregistered redirect_uri as the CLI sends it');
    oauth_error(logout_get(redirect_uri => $CLI_URI, client_id => 'runai-web'), 400, 'invalid_request',
                "the CLI's URI named with another client (runai-web)");
    oauth_error(logout_get(redirect_uri => $CLI_URI, post_logout_redirect_uri => "$origin/bye"), 400,
                'invalid_request', 'redirect_uri and post_logout_redirect_uri differ');
    # no id_token_hint: no session is named, none ends
    refreshes($cli, 'a logout without id_token_hint names no session');
    accepted($cli->{at}, 'CLI session after the hint-less logouts', '/guard/');
}

# ==================================================================================
# RP-initiated logout with id_token_hint
{
    my $web1 = login(bob => 'runai-web', 'bob web 1');
    my $web2 = login(bob => 'runai-web', 'bob web 2');
    my $cli = login(bob => 'runai-cli', 'bob cli');
    my $alice = login(alice => 'runai-web', 'alice web');

    # --- bad inputs: refused, and nothing ends ---
    my $tampered = made_here('tampered id token', flip_signature($web1->{id}));
    oauth_error(logout_get(id_token_hint => $tampered, post_logout_redirect_uri => "$origin/bye"),
                400, 'invalid_request', 'logout with a tampered id_token_hint (signature)');
    oauth_error(logout_get(id_token_hint => $tampered), 400, 'invalid_request',
                'logout with a tampered id_token_hint, no redirect');
    {
        # web1's signature over web2's claims (another sid)
        my($h, undef, $sig) = split /\./, $web1->{id};
        my(undef, $p2) = split /\./, $web2->{id};
        my $swapped = made_here('claims-swapped id token', "$h.$p2.$sig");
        oauth_error(logout_post(id_token_hint => $swapped), 400, 'invalid_request',
                    'logout with a tampered id_token_hint (payload of another session)');
        # the same claims signed with a key this host does not have
        my $c = claims_of($web1->{id});
        my $forged = made_here('foreign-key id token', forge_jwt({ alg => 'ES256', typ => 'JWT', kid => thumbprint('ec256') },
                                                                 $c, 'ES256', 'ec521.pem'));
        oauth_error(logout_get(id_token_hint => $forged), 400, 'invalid_request',
                    'logout with an id_token_hint signed by another key');
        my $none = made_here('unsigned id token', forge_jwt({ alg => 'none', typ => 'JWT' }, $c, 'none') . encode_base64url(join '', map { chr int rand 256 } 1 .. 21));
        oauth_error(logout_get(id_token_hint => $none), 400, 'invalid_request',
                    'logout with an id_token_hint of alg none');
    }
    oauth_error(logout_get(id_token_hint => $web1->{id}, post_logout_redirect_uri => "$origin/evil"),
                400, 'invalid_request', 'logout to an unregistered post_logout_redirect_uri');
    oauth_error(logout_get(id_token_hint => $web1->{id}, post_logout_redirect_uri => $CLI_URI),
                400, 'invalid_request', "logout to a URI of another client (runai-cli's) with a runai-web hint");
    oauth_error(logout_get(id_token_hint => $web1->{id}, post_logout_redirect_uri => "$origin/app-bye"),
                400, 'invalid_request', "logout to app-bcrypt's URI with a runai-web hint");
    oauth_error(logout_get(id_token_hint => $web1->{id}, client_id => 'runai-cli'),
                400, 'invalid_grant', 'logout whose client_id differs from the hint\'s azp');
    oauth_error(logout_post(id_token_hint => $web1->{id}, client_id => 'runai-cli', post_logout_redirect_uri => $CLI_URI),
                400, 'invalid_grant', 'logout (POST) whose client_id differs, to that client\'s URI');
    oauth_error(logout_get(id_token_hint => $web1->{id}, post_logout_redirect_uri => "$origin/bye",
                           redirect_uri => "$origin/bye?x=1"),
                400, 'invalid_request', 'logout with post_logout_redirect_uri and a different redirect_uri');
    refreshes($web1, 'after eight refused logouts naming it');
    accepted($web1->{at}, 'bob web 1 after the refused logouts');

    # --- GET, post_logout_redirect_uri and state ---
    prime($web1);
    my $res = logout_get(id_token_hint => $web1->{id}, post_logout_redirect_uri => "$origin/bye", state => 'st-123');
    my $t_web1 = time;
    redirected($res, "$origin/bye?state=st-123", 'RP-initiated logout (GET)');
    is($res->content, '', 'RP-initiated logout (GET): no body');
    ended($web1, 'logged out');
    refreshes($web2, "the same user's other session is not ended");
    refreshes($cli, "the same user's session of another client is not ended");
    refreshes($alice, "another user's session is untouched");
    settle(["RP-initiated logout (GET)", $web1->{at}, $t_web1]);
    accepted($web1->{at}, 'bob web 1 after its logout (RunaiTokenSessionCheck off)', '/guard/stateless');
    accepted($web2->{at}, 'bob web 2 after the logout of web 1');
    accepted($alice->{at}, 'alice web after the logout of bob web 1');

    # the same hint again: its session is already over, the answer the same
    redirected(logout_get(id_token_hint => $web1->{id}, post_logout_redirect_uri => "$origin/bye", state => 'again'),
               "$origin/bye?state=again", 'the same logout again');

    # --- a state with reserved and non-ASCII characters comes back as sent ---
    {
        my $state = "a b&c=d/e?f+g%h\x{e9}\x{2713}";
        my $res = logout_get(id_token_hint => $web2->{id}, post_logout_redirect_uri => "$origin/bye",
                             client_id => 'runai-web', state => $state);
        is($res->code, 302, 'logout with a state of reserved characters: 302') or diag($res->as_string);
        my $loc = $res->header('Location') // '';
        like($loc, qr{^\Q$origin\E/bye\?state=[^&#?]*$}, 'that Location: the URI and one state parameter');
        my @q = query_params($loc);
        my $bytes = $state;
        utf8::encode($bytes);
        is_deeply(\@q, [[state => $bytes]], 'that state decodes to the bytes sent');
        ended($web2, 'logged out naming client_id runai-web');
    }

    # --- a registered URI that has a query: &state= ---
    {
        my $web3 = login(bob => 'runai-web', 'bob web 3');
        redirected(logout_get(id_token_hint => $web3->{id}, post_logout_redirect_uri => "$origin/bye?x=1",
                              state => 'q-1'),
                   "$origin/bye?x=1&state=q-1", 'logout to a registered URI with a query');
        ended($web3, 'logged out to bye?x=1');
        my $web3b = login(bob => 'runai-web', 'bob web 3b');
        redirected(logout_get(id_token_hint => $web3b->{id}, post_logout_redirect_uri => "$origin/bye?x=1"),
                   "$origin/bye?x=1", 'logout to a registered URI with a query, no state');
        ended($web3b, 'logged out to bye?x=1 without state');
    }

    # --- the same by POST (a form) ---
    {
        my $web4 = login(bob => 'runai-web', 'bob web 4');
        my $other = login(bob => 'runai-web', 'bob web 5');
        oauth_error(logout_post(id_token_hint => $web4->{id}, post_logout_redirect_uri => "$origin/nope"),
                    400, 'invalid_request', 'logout (POST) to an unregistered URI');
        oauth_error(logout_post(id_token_hint => flip_signature($web4->{id})), 400, 'invalid_request',
                    'logout (POST) with a tampered hint');
        refreshes($web4, 'after refused POST logouts');
        redirected(logout_post(id_token_hint => $web4->{id}, post_logout_redirect_uri => "$origin/bye",
                               state => 'post-1', client_id => 'runai-web'),
                   "$origin/bye?state=post-1", 'RP-initiated logout (POST)');
        ended($web4, 'logged out by POST');
        refreshes($other, 'not the session of the POST logout');
        redirected(logout_post(id_token_hint => $other->{id}, redirect_uri => "$origin/bye?x=1", state => 'p2'),
                   "$origin/bye?x=1&state=p2", 'logout (POST) with the legacy redirect_uri');
        ended($other, 'logged out by POST with redirect_uri');
    }

    # --- no redirect asked: a small page ---
    {
        my $cli2 = login(bob => 'runai-cli', 'bob cli 2');
        prime($cli2);
        my $res = logout_get(id_token_hint => $cli2->{id});
        my $t = time;
        logged_out_page($res, 'logout without redirect');
        ended($cli2, 'logged out without redirect');
        refreshes($cli, 'not the session of the page logout');
        logged_out_page(logout_get(id_token_hint => $cli2->{id}), 'the same logout again');
        logged_out_page(logout_post(state => 'only-a-state'), 'logout (POST) naming no session, no redirect');
        # every parameter of RP-Initiated Logout is optional, and GET
        # without any answers the page: so does an empty POST
        logged_out_page(logout_post(), 'logout (POST) with an empty body, as GET without parameters');
        settle(['logout without redirect', $cli2->{at}, $t]);
    }

    # --- the confidential client and a login of no client ---
    {
        my $conf = login(bob => $APP, 'bob app-bcrypt (logout)');
        oauth_error(logout_get(id_token_hint => $conf->{id}, post_logout_redirect_uri => "$origin/bye"),
                    400, 'invalid_request', "logout of an app-bcrypt session to runai-web's URI");
        refreshes($conf, 'after a refused logout');
        redirected(logout_get(id_token_hint => $conf->{id}, post_logout_redirect_uri => "$origin/app-bye"),
                   "$origin/app-bye", 'logout of an app-bcrypt session to its URI');
        ended($conf, 'logged out');
        my $plain = login(bob => undef, 'bob, no client');
        oauth_error(logout_get(id_token_hint => $plain->{id}, post_logout_redirect_uri => "$origin/nowhere"),
                    400, 'invalid_request', 'no client: a URI registered for none');
        refreshes($plain, 'after a refused logout');
        redirected(logout_get(id_token_hint => $plain->{id}, post_logout_redirect_uri => "$origin/bye"),
                   "$origin/bye", 'no client: a URI registered for some client');
        ended($plain, 'logged out');
    }
    refreshes($cli, 'after every logout above');
    refreshes($alice, 'after every logout above');
}

# ==================================================================================
# Revocation (RFC 7009)
{
    my $basic = [Authorization => basic_auth($APP, $APP_SECRET)];
    my %how = (
        'public client_id' => { client => 'runai-cli', auth => sub { ([client_id => 'runai-cli'], []) } },
        client_secret_post => { client => $APP,
                                auth => sub { ([client_id => $APP, client_secret => $APP_SECRET], []) } },
        client_secret_basic => { client => $APP, auth => sub { ([], $basic) } },
    );
    my @watch;
    for my $method ('public client_id', 'client_secret_post', 'client_secret_basic') {
        my($params, $headers) = $how{$method}{auth}->();
        for my $kind (qw(refresh_token access_token)) {
            my $name = "revoke $kind ($method)";
            my $sess = login(bob => $how{$method}{client}, $name);
            my $bystander = login(bob => $how{$method}{client}, "$name, other session");
            my $token = $kind eq 'refresh_token' ? $sess->{rt} : $sess->{at};
            prime($sess);
            my $res = revoke([token => $token, token_type_hint => $kind, @$params], headers => $headers);
            my $t = time;
            empty_200($res, $name);
            ended($sess, "$kind revoked");
            refreshes($bystander, "not the revoked session");
            push @watch, [$name, $sess->{at}, $t];
            empty_200(revoke([token => $token, @$params], headers => $headers), "$name, again");
        }
    }
    settle(@watch);
    accepted($watch[0][1], 'a revoked session\'s access token', '/guard/stateless');

    # the hint is only a hint: both kinds are found under the wrong one
    for my $kind (qw(refresh_token access_token)) {
        my $sess = login(bob => 'runai-cli', "wrong hint for $kind");
        my $hint = $kind eq 'refresh_token' ? 'access_token' : 'refresh_token';
        empty_200(revoke([token => $kind eq 'refresh_token' ? $sess->{rt} : $sess->{at},
                          token_type_hint => $hint, client_id => 'runai-cli']),
                  "revoke a $kind with token_type_hint=$hint");
        ended($sess, "revoked under the wrong hint");
    }

    # a rotated refresh token presented within RunaiTokenRefreshRetry after
    # the revocation gets no successor
    {
        my $sess = login(bob => 'runai-cli', 'revoke after a rotation');
        my $old = $sess->{rt};
        refreshes($sess, 'rotated once');
        empty_200(revoke([token => $sess->{rt}, client_id => 'runai-cli']), 'revoke the newest refresh token');
        my $res = refresh_call($P, $old);
        reply_of($res);
        check_error($res, 401, qr/^invalid refresh token$/,
                    'its predecessor, within the retry window: refused too');
        ended($sess, 'revoked after a rotation');
    }

    # unknown, garbage, forged: 200 and nothing else
    {
        my $random_rt = made_here('random refresh token',
            encode_base64url(join '', map { chr int rand 256 } 1 .. 16) . '.1.'
            . encode_base64url(join '', map { chr int rand 256 } 1 .. 32));
        my $victim = login(bob => 'runai-cli', 'bystander of unknown tokens');
        (my $wrong_mac = $victim->{rt}) =~ s/.$/$& eq 'A' ? 'B' : 'A'/e;
        made_here('refresh token with a wrong MAC', $wrong_mac);
        (my $later_gen = $victim->{rt}) =~ s/\.(\d+)\./'.' . ($1 + 3) . '.'/e;
        made_here('refresh token with a later generation', $later_gen);
        my $forged = made_here('foreign-key access token',
            forge_jwt({ alg => 'ES256', typ => 'JWT', kid => thumbprint('ec256') }, claims_of($victim->{at}),
                      'ES256', 'ec521.pem'));
        for my $case (['an unknown refresh token', $random_rt], ['garbage', 'not-a-token'],
                      ['three dots of garbage', 'a.b.c'], ['a refresh token with a wrong MAC', $wrong_mac],
                      ['a refresh token with a later generation', $later_gen],
                      ['a JWT signed by another key', $forged],
                      ['a tampered access token', made_here('tampered access token', flip_signature($victim->{at}))]) {
            empty_200(revoke([token => $case->[1], client_id => 'runai-cli']), "revoke $case->[0]");
        }
        refreshes($victim, 'the look-alike tokens revoked nothing');
        accepted($victim->{at}, 'bystander of unknown tokens');
    }

    # a public client cannot revoke another client's token
    {
        my $cli = login(bob => 'runai-cli', 'runai-cli session (owner check)');
        for my $kind (qw(refresh_token access_token)) {
            my $token = $kind eq 'refresh_token' ? $cli->{rt} : $cli->{at};
            oauth_error(revoke([token => $token, client_id => 'runai-web']), 400, 'invalid_grant',
                        "runai-web revokes runai-cli's $kind");
            oauth_error(revoke([token => $token]), 400, 'invalid_grant',
                        "runai-cli's $kind revoked naming no client");
            oauth_error(revoke([token => $token, client_id => $APP, client_secret => $APP_SECRET]),
                        400, 'invalid_grant', "app-bcrypt (authenticated) revokes runai-cli's $kind");
            refreshes($cli, "after the refused revocations of its $kind");
        }
        accepted($cli->{at}, 'runai-cli session after refused revocations');
    }

    # a confidential client proves its secret; a refusal changes nothing
    {
        my $conf = login(bob => $APP, 'app-bcrypt session (secret check)');
        for my $kind (qw(refresh_token access_token)) {
            my $token = $kind eq 'refresh_token' ? $conf->{rt} : $conf->{at};
            oauth_error(revoke([token => $token, client_id => $APP, client_secret => $s->{wrong}]),
                        401, 'invalid_client', "revoke app-bcrypt's $kind with a wrong secret (post)");
            oauth_error(revoke([token => $token], headers => [Authorization => basic_auth($APP, $s->{wrong})]),
                        401, 'invalid_client', "revoke app-bcrypt's $kind with a wrong secret (basic)");
            oauth_error(revoke([token => $token, client_id => $APP]), 401, 'invalid_client',
                        "revoke app-bcrypt's $kind naming the confidential client without its secret");
            oauth_error(revoke([token => $token, client_id => 'runai-cli']), 400, 'invalid_grant',
                        "runai-cli revokes app-bcrypt's $kind");
            refreshes($conf, "after the refused revocations of its $kind");
        }
        accepted($conf->{at}, 'app-bcrypt session after refused revocations');
    }

    # an app token belongs to no session
    {
        my $res = token_call($P, { appID => $APP, appSecret => $APP_SECRET });
        is($res->code, 200, 'app token on the ending host') or diag($res->content);
        my $app = (reply_of($res) || {})->{accessToken} // '';
        ok(!exists claims_of($app)->{sid}, 'the app token has no sid');
        oauth_error(revoke([token => $app, token_type_hint => 'access_token', client_id => $APP,
                                    client_secret => $APP_SECRET]),
                            400, 'unsupported_token_type', 'revoke an app token');
        oauth_error(revoke([token => $app], headers => $basic), 400, 'unsupported_token_type',
                    'revoke an app token (basic)');
        accepted($app, 'the app token after its refused revocation');
    }

    # malformed requests: the OAuth shape
    oauth_error(revoke([client_id => 'runai-cli']), 400, 'invalid_request', 'revoke without token');
    oauth_error(revoke([token => '', client_id => 'runai-cli']), 400, 'invalid_request', 'revoke with an empty token');
    oauth_error(revoke([token => 'a', token => 'b', client_id => 'runai-cli']), 400, 'invalid_request',
                'revoke with token twice');
    {
        my $res = http_request(port => $P, method => 'GET', path => $REVOKE);
        is($res->code, 405, 'GET on the revocation endpoint: 405');
        is($res->header('Allow'), 'POST', 'GET on the revocation endpoint: Allow POST');
        my $b = json_decode($res->content) || {};
        is_deeply([sort keys %$b], [qw(error error_description)], 'GET on the revocation endpoint: OAuth error shape');
        is($b->{error}, 'invalid_request', 'GET on the revocation endpoint: invalid_request');
    }
}

# ==================================================================================
# Force logout: POST /api/v1/users/{user}/logout
{
    # "ending-open" has no AuthType on it: refused, nothing ends there
    my $open = login(bob => 'runai-cli', 'bob on ending-open', port => $OPEN);
    check_error(force_logout($OPEN, 'bob', alice => $s->{users}{alice}), 403, qr/not enabled/,
                'force logout where no AuthType is set');
    check_error(force_logout($OPEN, 'bob'), 403, qr/not enabled/, 'force logout where no AuthType is set, no credentials');
    refreshes($open, 'a refused force logout ends nothing');

    my @bob = (login(bob => 'runai-cli', 'bob session 1'), login(bob => 'runai-web', 'bob session 2'),
               login(bob => $APP, 'bob session 3'));
    my $carol = login(carol => 'runai-cli', 'carol session');

    # Basic auth, Require user alice: httpd answers 401 itself
    for my $case (['no credentials'], ['bob\'s credentials', bob => $s->{users}{bob}],
                  ['alice with a wrong password', alice => $s->{wrong}],
                  ['carol (another file)', carol => $s->{users}{carol}]) {
        my($what, @cred) = @$case;
        my $res = force_logout($P, 'bob', @cred);
        is($res->code, 401, "force logout with $what: 401") or diag($res->as_string);
        is($res->header('WWW-Authenticate'), 'Basic realm="runai admins"', "force logout with $what: Basic challenge");
    }
    refreshes($_, 'the refused force logouts ended nothing') for @bob;

    prime($_) for @bob, $carol;
    my $res = force_logout($P, 'bob', alice => $s->{users}{alice});
    my $t = time;
    empty_200($res, 'force logout of bob by alice');
    my $fresh = login(bob => 'runai-cli', 'bob after the force logout');    # at once: the same second
    ended($_, 'force logout') for @bob;
    refreshes($carol, 'another user is not logged out');
    refreshes($fresh, 'a session begun after the force logout');
    settle(map { ["force logout, $_->{name}", $_->{at}, $t] } @bob);
    accepted($bob[0]{at}, 'bob session 1 after the force logout (RunaiTokenSessionCheck off)', '/guard/stateless');
    accepted($carol->{at}, 'carol after the force logout of bob');
    accepted($fresh->{at}, 'bob\'s session begun after the force logout');
    my $later = login(bob => 'runai-web', 'bob logging in later');
    refreshes($later, 'a login after the force logout');
    accepted($later->{at}, 'a login after the force logout');
    ended($bob[0], 'still ended later');

    empty_200(force_logout($P, 'nobody-at-all', alice => $s->{users}{alice}), 'force logout of a user with no session');
    refreshes($carol, 'after the force logout of someone else');

    # Every host of this server shares one store, but a force logout ends
    # the users of its issuer: bob of ending-open (another issuer), whose
    # session began before the force logout on "ending", is another user.
    refreshes($open, 'bob of another issuer (ending-open) is not logged out by a force logout on ending');
}

# --- review findings: each location's own bound, id tokens only as hints, codes ---------
{
    # /guard/lazy remembers a live look for 300 s (in the process that
    # answered it); /guard must still see the end within its own 2 s
    my $sess = login(bob => 'runai-cli', 'bob, seen by a lazy location');
    accepted($sess->{at}, 'before the revocation', '/guard/lazy/');
    accepted($sess->{at}, 'before the revocation');
    empty_200(revoke([token => $sess->{rt}, client_id => 'runai-cli']), 'revocation seen by two locations');
    my $t = time;
    ok(wait_until($BOUND + 1.5, 0.1, sub { guard($sess->{at})->code == 401 }),
       'the 2 s location refuses within its bound although a 300 s location looked at the session');
    note(sprintf 'refused by /guard after %.2f s', time - $t);

    # an access token is no id_token_hint: a resource server that received
    # it must not log its user out
    my $hinted = login(bob => 'runai-cli', 'bob, access token as a hint');
    oauth_error(logout_get(id_token_hint => $hinted->{at}), 400, 'invalid_request',
                'logout with an access token as id_token_hint');
    refreshes($hinted, 'an access token is no hint');

    # a code minted before a force logout is spent, not redeemed, after it
    my $redirect = "http://127.0.0.1:$P/bye";
    my $code = code_of(authorize_call($P, 'bob', $s->{users}{bob},
                                      { client_id => 'runai-web', redirect_uri => $redirect,
                                        response_type => 'code', state => 'st' }));
    ok(defined $code, 'bob gets a code before the force logout');
    empty_200(force_logout($P, 'bob', alice => $s->{users}{alice}), 'force logout of bob after his code');
    my $res = exchange_call($P, $code // 'none', $redirect, clientID => 'runai-web');
    reply_of($res);
    check_error($res, 401, qr/^invalid or expired code$/, 'a code minted before the force logout');
    my $code2 = code_of(authorize_call($P, 'bob', $s->{users}{bob},
                                       { client_id => 'runai-web', redirect_uri => $redirect,
                                         response_type => 'code', state => 'st2' }));
    my $res2 = exchange_call($P, $code2 // 'none', $redirect, clientID => 'runai-web');
    tokens_ok($res2, 'a code minted after the force logout');
}

# --- force logout with an administrator's bearer token (ending-bearer) ----------------
{
    my $BEARER = vhost_port('ending-bearer');
    my $bob = login(bob => 'runai-cli', 'bob before the bearer force logout');
    my $admin = login(alice => 'runai-cli', 'alice, the administrator');
    my $other = login(carol => 'runai-cli', 'carol, no administrator');
    my $by = sub {
        my($sess) = @_;
        http_request(port => $BEARER, method => 'POST', path => '/api/v1/users/bob/logout',
                     headers => [$sess ? (Authorization => "Bearer $sess->{at}") : ()]);
    };
    my $res = $by->(undef);
    is($res->code, 401, 'bearer force logout without a token: 401');
    like($res->header('WWW-Authenticate') // '', qr/^Bearer realm="runai admins"/, 'bearer force logout: Bearer challenge');
    $res = $by->($other);
    is($res->code, 403, 'bearer force logout with a token the Require refuses (carol): 403');
    like($res->header('WWW-Authenticate') // '', qr/error="insufficient_scope"/, 'carol: insufficient_scope');
    refreshes($bob, 'the refused bearer force logouts ended nothing');
    empty_200($by->($admin), 'force logout of bob with alice\'s bearer token');
    ended($bob, 'force logout with a bearer token, on another host of the same issuer');
    refreshes($admin, 'the administrator is not logged out');
}

# --- the logout query (it carries id tokens) is redacted in the access log ------------
ok(wait_until(5, 0.1, sub { (slurp($access_log) // '') =~ m{"GET \Q$LOGOUT\E\?redacted HTTP/1\.1" 302 } }),
   'access_log: the logout request line is "...logout?redacted HTTP/1.1"');
unlike(slurp($access_log) // '', qr/id_token_hint|post_logout_redirect_uri/, 'access_log: no logout parameter');
ok(wait_until(5, 0.1, sub { (slurp($error_log) // '') =~ /every session of user 'bob' ended by 'alice'/ }),
   'error_log: the force logout is logged with who did it');

diag(sprintf 'guard delays after %d ends of a session (RunaiTokenSessionCheck %d s): min %.2f s, max %.2f s (%s)',
     scalar @delays, $BOUND, min(map { $_->[1] } @delays), max(map { $_->[1] } @delays),
     join ', ', map { sprintf '%.2f', $_->[1] } @delays) if @delays;

assert_logs_clean('35_ending', $error_log, $access_log);

done_testing();

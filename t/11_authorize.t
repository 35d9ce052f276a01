# The authorize endpoint and exchange_token on the Apache::Test
# server: Basic authentication in front of /api/v1/authorize, the 302 with
# code and state, every refusal without a redirect, PKCE S256, nonce,
# aud/azp, claims and externalToken captured at authorize time, code expiry,
# codes spent by a mismatch but not by a malformed request, the legacy GET
# route, and registered clients for the password grant.
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
my $noauth = vhost_port('sessnoauth');
my $iss = 'https://sess.example.test/realms/runai';
my $kid = thumbprint('ec256');
my $cb = 'https://app.example.test/callback';
my $cbq = 'https://app.example.test/cb?tenant=7';
my $cli_cb = 'http://localhost:8000/auth/callback';
my %jti;
my $logs = Apache::Test::vars('t_logs');
my $error_log = catfile($logs, 'error_log');
my $access_log = catfile($logs, 'access_log');
my $alice = $s->{users}{alice};

sub authorize {
    my(%p) = @_;
    my $user = exists $p{user} ? delete $p{user} : 'alice';
    my $pw = exists $p{password} ? delete $p{password} : $s->{users}{$user // 'alice'};
    my $headers = delete $p{headers};
    my $port_ = delete $p{port} || $port;
    my $order = delete $p{order};
    my %q = (client_id => 'webapp', redirect_uri => $cb, %p);
    delete @q{ grep { !defined $q{$_} } keys %q };
    return authorize_call($port_, $user, $pw, \%q, ($headers ? (headers => $headers) : ()));
}

# A 302 to the client; returns the code.
sub code_ok {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 302, "$name: 302") or diag($res->content);
    my $code = code_of($res);
    like($code // '', qr/^[A-Za-z0-9_-]{43}$/, "$name: code of 43 base64url characters (256 bits)");
    return $code;
}

sub no_redirect {
    my($res, $status, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    check_error($res, $status, $re, $name);
    ok(!defined $res->header('Location'), "$name: no Location header");
}

# --- codes that wait: expiry (sessshort, 2 s) and auth_time (sess) ----------------
my $t_minted = time;
my $expiring = code_ok(authorize(port => $short), 'sessshort authorize');
my $fresh = code_ok(authorize(port => $short), 'sessshort authorize again');
tokens_ok(exchange_call($short, $fresh, $cb), 'sessshort: a code redeemed within its lifetime');
my $late = code_ok(authorize(nonce => 'late-nonce'), 'authorize for a later exchange');
my $late_time = time;

# --- Basic authentication guards the endpoint --------------------------------------
{
    my $res = authorize(user => undef);
    is($res->code, 401, 'authorize without credentials: 401 from mod_auth_basic');
    like($res->header('WWW-Authenticate') // '', qr/^Basic realm="runai sessions"/,
         'authorize without credentials: Basic challenge');
    ok(!defined $res->header('Location'), 'authorize without credentials: no Location');
    $res = authorize(password => $s->{wrong});
    is($res->code, 401, 'authorize with a wrong password: 401');
    ok(!defined $res->header('Location'), 'authorize with a wrong password: no Location');
    $res = http_request(port => $port, method => 'POST', path => '/api/v1/authorize?client_id=webapp',
                        headers => [Authorization => basic_auth('alice', $alice)], body => '{}');
    check_error($res, 405, undef, 'POST authorize');
    is($res->header('Allow'), 'GET, HEAD', 'POST authorize: Allow GET, HEAD');
}

# --- success: 302 to the registered URI with code and state --------------------------
my $state = qq{a b&c=d/\x{e9}\x{2713}+%?#'"<>;};
my $state_bytes = $state;
utf8::encode($state_bytes);
my($code, $verifier, $challenge);
{
    ($verifier, $challenge) = pkce_pair(64);
    note_secret('PKCE verifier', $verifier);
    my $res = authorize(state => $state, nonce => 'n-0S6_WzA2Mj', response_type => 'code',
                        code_challenge => $challenge, code_challenge_method => 'S256',
                        headers => ['X-Dept' => 'physics', 'X-Upstream-Token' => 'upstream-' . encode_base64url(join '', map { chr int rand 256 } 1 .. 24)]);
    $code = code_ok($res, 'authorize');
    my $loc = $res->header('Location') // '';
    like($loc, qr{^\Q$cb\E\?code=[A-Za-z0-9_-]{43}&state=}, 'Location: the registered URI, then ?code=..&state=..');
    is_deeply([map { $_->[0] } query_params($loc)], [qw(code state)], 'Location: exactly code and state');
    my($got) = map { $_->[1] } grep { $_->[0] eq 'state' } query_params($loc);
    is($got, $state_bytes, 'state comes back, URL-encoded (it decodes to what was sent)');
    unlike($loc, qr/[ "#<>\x80-\xff]/, 'Location holds no raw space, quote, #, <, > or non-ASCII byte');
    like($res->header('Cache-Control') // '', qr/\bno-store\b/, 'authorize 302: Cache-Control no-store');
}

# a redirect URI with a query gets &code=
{
    my $res = authorize(redirect_uri => $cbq);
    my $c = code_ok($res, 'authorize to a URI with a query');
    like($res->header('Location') // '', qr{^\Q$cbq\E&code=[A-Za-z0-9_-]{43}$},
         'Location: "&code=" after the registered query, no state when none was sent');
    tokens_ok(exchange_call($port, $c, $cbq), 'exchange for the URI with a query');
}

# --- exchange: tokens of the authorized user, for the client -----------------------
my $upstream;
{
    my $res = exchange_call($port, $code, $cb, codeVerifier => $verifier);
    my $body = tokens_ok($res, 'exchange (PKCE S256, nonce, upstream token)', more => ['externalToken']);
    $upstream = $body->{externalToken};
    like($upstream // '', qr/^upstream-[A-Za-z0-9_-]{32}$/, 'externalToken: the variable set at authorize time');
    my $at = check_token_basics($body->{accessToken}, name => 'exchange access token', alg => 'ES256',
        kid => $kid, iss => $iss, sub => 'alice', aud => 'runai', lifetime => 3600, jti => \%jti);
    is($at->{azp}, 'webapp', 'exchange access token: azp = client');
    is($at->{preferred_username}, 'alice', 'exchange access token: preferred_username');
    is($at->{email}, 'alice@sess.example.test', 'exchange access token: claim of REMOTE_USER at authorize');
    is($at->{dept}, 'physics', 'exchange access token: claim from a header of the authorize request');
    is_deeply($at->{groups}, [qw(authorized via-browser)],
              'exchange access token: claim from a variable only the authorize location sets');
    ok(!exists $at->{nonce}, 'exchange access token: no nonce');
    my $id = check_token_basics($body->{idToken}, name => 'exchange id token', alg => 'ES256', kid => $kid,
        iss => $iss, sub => 'alice', aud => 'webapp');
    is($id->{azp}, 'webapp', 'exchange id token: azp = client');
    is($id->{nonce}, 'n-0S6_WzA2Mj', 'exchange id token: nonce of the authorize request');
    is($id->{dept}, 'physics', 'exchange id token: claims of the authorize request');
    my($claims, $err) = verify_crypt_jwt($body->{idToken}, 'ec256', 'ES256', aud => 'webapp', iss => $iss);
    ok($claims, 'exchange id token verifies (Crypt::JWT, aud webapp)') or diag($err);

    # the session it started refreshes, still for the client, claims kept
    $res = refresh_call($port, $body->{refreshToken} // '', headers => ['X-Dept' => 'chemistry']);
    my $r = tokens_ok($res, 'refresh of an exchanged session');
    my(undef, $rid) = jwt_parts($r->{idToken});
    is($rid->{aud}, 'webapp', 'refreshed id token: aud = client');
    is($rid->{dept}, 'physics', 'refreshed id token: claims of the authorize request');
    is_deeply($rid->{groups}, [qw(authorized via-browser)], 'refreshed id token: groups kept');

    check_error(exchange_call($port, $code, $cb, codeVerifier => $verifier), 401,
                qr/^invalid or expired code$/, 'the same code again');
}

# no upstream token variable at authorize time: no externalToken; no nonce
{
    my $c = code_ok(authorize(), 'authorize without upstream token');
    my $body = tokens_ok(exchange_call($port, $c, $cb), 'exchange without upstream token');
    ok(!exists $body->{externalToken}, 'no externalToken when the variable was not set');
    my(undef, $id) = jwt_parts($body->{idToken});
    ok($id && !exists $id->{nonce}, 'no nonce in the id token when authorize had none');
    ok($id && !exists $id->{dept}, 'no dept claim when the authorize request had no such header');
}

# another user, another client
{
    my $c = code_ok(authorize(user => 'bob', client_id => 'cli', redirect_uri => $cli_cb), 'authorize bob for cli');
    my $body = tokens_ok(exchange_call($port, $c, $cli_cb, clientID => 'cli'), 'exchange bob for cli');
    my(undef, $at) = jwt_parts($body->{accessToken});
    my(undef, $id) = jwt_parts($body->{idToken});
    is($at && $at->{sub}, 'bob', 'bob: sub');
    is($at && $at->{azp}, 'cli', 'bob: access azp cli');
    is($id && $id->{aud}, 'cli', 'bob: id aud cli');
    is($at && $at->{email}, 'bob@sess.example.test', 'bob: claims of bob');
}

# --- refusals: 400 with the Error body, never a redirect ----------------------------
{
    my($v, $ch) = pkce_pair(50);
    my @cases = (
        ['missing client_id',       { client_id => undef },                  qr/client_id/],
        ['empty client_id',         { client_id => '' },                     qr/client_id/],
        ['unknown client',          { client_id => 'nope' },                 qr/^unknown client$/],
        ['unknown client, foreign redirect', { client_id => 'evil', redirect_uri => 'https://evil.example/cb' },
                                                                            qr/^unknown client$/],
        ['missing redirect_uri',    { redirect_uri => undef },               qr/^redirect URI not registered for this client$/],
        ['unregistered redirect_uri', { redirect_uri => 'https://evil.example/callback' },
                                                                            qr/^redirect URI not registered for this client$/],
        ['redirect_uri with a trailing slash', { redirect_uri => "$cb/" },  qr/^redirect URI not registered/],
        ['redirect_uri in another case', { redirect_uri => 'https://APP.example.test/callback' },
                                                                            qr/^redirect URI not registered/],
        ['redirect_uri with an added query', { redirect_uri => "$cb?x=1" }, qr/^redirect URI not registered/],
        ['redirect_uri with a fragment', { redirect_uri => "$cb#x" },       qr/^redirect URI not registered/],
        ['redirect_uri of another client', { redirect_uri => $cli_cb },     qr/^redirect URI not registered/],
        ['response_type token',     { response_type => 'token' },            qr/response_type/],
        ['code_challenge_method plain', { code_challenge => $v, code_challenge_method => 'plain' },
                                                                            qr/code_challenge/],
        ['code_challenge_method s256 (case)', { code_challenge => $ch, code_challenge_method => 's256' },
                                                                            qr/code_challenge/],
        ['S256 without a challenge', { code_challenge_method => 'S256' },   qr/code_challenge/],
        ['a challenge without a method', { code_challenge => $ch },         qr/code_challenge/],
        ['a challenge of 42 characters', { code_challenge => 'a' x 42, code_challenge_method => 'S256' },
                                                                            qr/code_challenge/],
        ['a challenge of 129 characters', { code_challenge => 'a' x 129, code_challenge_method => 'S256' },
                                                                            qr/code_challenge/],
        ['a challenge with + and /', { code_challenge => ('a' x 41) . '+/', code_challenge_method => 'S256' },
                                                                            qr/code_challenge/],
        ['state of 1025 bytes',     { state => 's' x 1025 },                 qr/state/],
        ['nonce of 1025 bytes',     { nonce => 'n' x 1025 },                 qr/nonce/],
    );
    for my $case (@cases) {
        my($name, $p, $re) = @$case;
        no_redirect(authorize(%$p), 400, $re, "authorize refused: $name");
    }
    my $res = authorize(state => 's' x 1024, nonce => 'n' x 1024);
    is($res->code, 302, 'state and nonce of 1024 bytes are accepted');
    code_of($res);
    $res = authorize(code_challenge => 'a' x 128, code_challenge_method => 'S256');
    is($res->code, 302, 'a challenge of 128 characters is accepted');
    code_of($res);
}

# --- no authentication configured: 500, logged -----------------------------------------
{
    my $res = authorize(port => $noauth, user => undef);
    no_redirect($res, 500, qr/^internal error$/, 'authorize on a location without AuthType');
    ok(wait_until(5, 0.1, sub { (slurp($error_log) // '') =~ /reached without authentication/ }),
       'the misconfiguration is logged');
}

# --- PKCE -------------------------------------------------------------------------------
{
    my($v, $ch) = pkce_pair(43);
    note_secret('PKCE verifier', $v);
    my $c = code_ok(authorize(code_challenge => $ch, code_challenge_method => 'S256'), 'PKCE authorize');
    my($other) = pkce_pair(43);
    check_error(exchange_call($port, $c, $cb, codeVerifier => $other), 401, qr/^invalid code verifier$/,
                'PKCE: wrong verifier');
    check_error(exchange_call($port, $c, $cb, codeVerifier => $v), 401, qr/^invalid or expired code$/,
                'PKCE: the right verifier after a wrong one: the code is spent');

    $c = code_ok(authorize(code_challenge => $ch, code_challenge_method => 'S256'), 'PKCE authorize 2');
    check_error(exchange_call($port, $c, $cb), 401, qr/^invalid code verifier$/, 'PKCE: no verifier');
    check_error(exchange_call($port, $c, $cb, codeVerifier => $v), 401, qr/^invalid or expired code$/,
                'PKCE: the right verifier after a missing one: the code is spent');

    $c = code_ok(authorize(code_challenge => $ch, code_challenge_method => 'S256'), 'PKCE authorize 3');
    check_error(exchange_call($port, $c, $cb, codeVerifier => $ch), 401, qr/^invalid code verifier$/,
                'PKCE: the challenge itself as verifier (plain) is refused');

    my($v128, $ch128) = pkce_pair(128);
    note_secret('PKCE verifier', $v128);
    $c = code_ok(authorize(code_challenge => $ch128, code_challenge_method => 'S256'), 'PKCE authorize 128');
    tokens_ok(exchange_call($port, $c, $cb, codeVerifier => $v128), 'PKCE: a verifier of 128 characters');
}

# --- a presented code is spent by a mismatch ----------------------------------------------
{
    my $c = code_ok(authorize(), 'authorize for a redirect mismatch');
    check_error(exchange_call($port, $c, 'https://evil.example/callback'), 400, qr/^redirect URI mismatch$/,
                'exchange with another redirect URI');
    check_error(exchange_call($port, $c, $cb), 401, qr/^invalid or expired code$/,
                'exchange with the right redirect URI afterwards: the code is spent');

    $c = code_ok(authorize(), 'authorize for a client mismatch');
    check_error(exchange_call($port, $c, $cb, clientID => 'cli'), 400, qr/^client mismatch$/,
                'exchange naming another client');
    check_error(exchange_call($port, $c, $cb, clientID => 'webapp'), 401, qr/^invalid or expired code$/,
                'exchange naming the right client afterwards: the code is spent');

    $c = code_ok(authorize(), 'authorize for the right client');
    tokens_ok(exchange_call($port, $c, $cb, clientID => 'webapp'), 'exchange naming its own client');
}

# --- a request refused as malformed spends nothing --------------------------------------
{
    my $c = code_ok(authorize(), 'authorize for malformed exchanges');
    my $q = qq{"grantType":"exchange_token","code":"$c"};
    my @bad = (
        ['missing redirectUri',   400, qq({$q}),                                 qr/^missing field 'redirectUri'$/],
        ['empty redirectUri',     400, qq({$q,"redirectUri":""}),                qr/redirectUri/],
        ['redirectUri an array',  400, qq({$q,"redirectUri":["$cb"]}),           qr/redirectUri/],
        ['codeVerifier a number', 400, qq({$q,"redirectUri":"$cb","codeVerifier":1}), qr/codeVerifier/],
        ['bad JSON',              400, qq({$q,"redirectUri":"$cb"),             undef],
        ['duplicate key',         400, qq({$q,"redirectUri":"$cb","Code":"$c"}), qr/duplicate/i],
        ['not an object',         400, qq(["$c"]),                               undef],
        ['text/plain',            415, qq({$q,"redirectUri":"$cb"}),            undef, type => 'text/plain'],
        ['too large',             413, qq({$q,"redirectUri":"$cb","pad":") . ('x' x 17000) . '"}', undef],
    );
    for my $case (@bad) {
        my($name, $status, $bytes, $re, %o) = @$case;
        check_error(token_call($port, $bytes, %o), $status, $re, "malformed exchange ($name)");
    }
    check_error(token_call($port, { grantType => 'exchange_token', redirectUri => $cb }), 400,
                qr/^missing field 'code'$/, 'exchange without code');
    my $res = http_request(port => $port, method => 'GET',
                           path => '/v1/k8s/auth/token/exchange?code=' . url_encode($c));
    check_error($res, 400, qr/redirect/i, 'legacy exchange without redirect_uri');
    tokens_ok(exchange_call($port, $c, $cb), 'the code after the malformed requests still works');
}

# --- the legacy route: GET /v1/k8s/auth/token/exchange ------------------------------------
{
    my($v, $ch) = pkce_pair(60);
    note_secret('PKCE verifier', $v);
    my $c = code_ok(authorize(code_challenge => $ch, code_challenge_method => 'S256', nonce => 'legacy-n'),
                    'authorize for the legacy route');
    my $path = '/v1/k8s/auth/token/exchange?redirect_uri=' . url_encode($cb) . '&code=' . url_encode($c)
             . '&code_verifier=' . url_encode($v);
    my $res = http_request(port => $port, method => 'GET', path => $path);
    my $body = tokens_ok($res, 'legacy exchange');
    check_legacy_headers($res, 'legacy exchange', 1);
    my(undef, $id) = jwt_parts($body->{idToken});
    is($id && $id->{nonce}, 'legacy-n', 'legacy exchange: nonce');
    is($id && $id->{aud}, 'webapp', 'legacy exchange: id aud = client');
    $res = http_request(port => $port, method => 'GET', path => $path);
    check_error($res, 401, qr/^invalid or expired code$/, 'legacy exchange of a spent code');
    check_legacy_headers($res, 'legacy exchange of a spent code', 1);
    check_error(exchange_call($port, $c, $cb, codeVerifier => $v), 401, qr/^invalid or expired code$/,
                'a code spent on the legacy route is spent on /api/v1/token too');

    my $line = qr{"GET /v1/k8s/auth/token/exchange\?redacted HTTP/1\.1" 200 };
    ok(wait_until(5, 0.1, sub { (slurp($access_log) // '') =~ $line }),
       'access_log: the legacy exchange request line is "...?redacted HTTP/1.1"')
        or diag(log_tail($access_log, 10));
    unlike(slurp($access_log) // '', qr{token/exchange\?(redirect_uri|code)[^\n]*" (?!414 )},
           'access_log: no exchange query (other than in lines httpd refused with 414)');
}

# --- the password grant once clients are registered --------------------------------------
{
    my $res = password_login($port, 'alice', $alice, clientID => 'webapp');
    my $body = tokens_ok($res, 'password with a registered clientID');
    my(undef, $id) = jwt_parts($body->{idToken});
    is($id && $id->{aud}, 'webapp', 'password with a registered clientID: id aud');
    check_error(password_login($port, 'alice', $alice, clientID => 'cli-unregistered'), 400,
                qr/^unknown client$/, 'password with an unregistered clientID');
    tokens_ok(password_login($port, 'alice', $alice), 'password without clientID');
    # where no client is registered (main), any clientID is still taken
    is(token_request({ grantType => 'password', username => 'alice', password => $alice,
                       clientID => 'cli-unregistered' })->code, 200,
       'password with any clientID where no client is registered');
}

# --- the codes that waited ----------------------------------------------------------------
{
    my $wait = 3.1 - (time - $t_minted);
    sleep $wait if $wait > 0;
    check_error(exchange_call($short, $expiring, $cb), 401, qr/^invalid or expired code$/,
                'a code past RunaiTokenCodeLifetime (2 s)');
    my $res = exchange_call($port, $late, $cb);
    my $body = tokens_ok($res, 'a code redeemed 3 s after authorize (lifetime 60 s)');
    my(undef, $id) = jwt_parts($body->{idToken});
    ok($id && abs($id->{auth_time} - $late_time) <= 1, 'its auth_time is the time of authorize');
    cmp_ok($id ? $id->{iat} - $id->{auth_time} : 0, '>=', 2, 'its iat is the time of the exchange');
    is($id && $id->{nonce}, 'late-nonce', 'its nonce');
}

note_secret('upstream token', $upstream);
assert_logs_clean('11_authorize', $error_log, $access_log);

done_testing();

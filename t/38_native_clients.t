# The clients researchers use to reach the cluster, shaped as they send
# their requests: public CLIs that authenticate with Basic and an empty
# secret (Go's golang.org/x/oauth2 tries that first, requests-oauthlib's
# LegacyApplicationClient always does), loopback redirect URIs on whatever
# port the CLI listens on (RFC 8252 §7.3), the out-of-band code page of
# remote-browser logins, the id token's extra audience for kube-apiserver,
# OIDC UserInfo, and Run:ai API 2.20's OAuth token endpoint /api/v2/token.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $P = vhost_port('native');
my $PLAIN = vhost_port('native_plain');
my $ISS = "http://127.0.0.1:$P/auth/realms/runai";
my $KC_TOKEN = '/auth/realms/runai/protocol/openid-connect/token';
my $USERINFO = '/auth/realms/runai/protocol/openid-connect/userinfo';
my $logs = Apache::Test::vars('t_logs');
my $error_log = catfile($logs, 'error_log');
my $access_log = catfile($logs, 'access_log');

sub form_post { my($path, $params, %o) = @_; return form_post_to($o{port} // $P, $path, $params, %o) }
sub claims_of { my(undef, $c) = jwt_parts(shift); return $c || {} }
sub oauth_tokens {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    my $b = reply_of($res) || {};
    ok(defined $b->{access_token}, "$name: access_token");
    is(lc($b->{token_type} // ''), 'bearer', "$name: token_type Bearer");
    return $b;
}
sub throttled_lines { scalar(() = (slurp($error_log) // '') =~ /throttled: too many failed attempts/g) }

# --- 0. Basic with an empty secret: a public client names itself ------------
# Users and an address of this file's own: the throttle counts by user and
# by address, and other files fail passwords of alice, bob and carol from
# 127.0.0.1.
my %nu = map { ($_ => random_secret()) } qw(nina omar pia);
htpasswd_file(catfile($logs, 'native-users.htpasswd'), %nu);
note_secret("password of $_", $nu{$_}) for sort keys %nu;
{
    my $before = throttled_lines();
    my $post = sub { my($path, $params, @h) = @_; form_post($path, $params, headers => [@h], local_addr => '127.0.0.38') };
    # header first (requests-oauthlib, and Go's first try), three users in a
    # row: with RunaiTokenThrottle 2 60 a counted failure would show by the third
    for my $user (qw(nina omar pia)) {
        my $b = oauth_tokens($post->($KC_TOKEN, [grant_type => 'password', username => $user,
                                                   password => $nu{$user}], Authorization => basic_auth('runai-cli', '')),
                             "Basic runai-cli: (empty secret), password grant of $user");
        is(claims_of($b->{access_token})->{azp}, 'runai-cli', "$user: the client is identified (azp runai-cli)");
        ok(defined $b->{refresh_token}, "$user: a refresh token");
    }
    # body first (Go's second try), and both agreeing
    oauth_tokens($post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                       password => $nu{nina}, client_id => 'runai-cli']),
                 'client_id in the body, no Basic');
    oauth_tokens($post->($KC_TOKEN, [grant_type => 'password', username => 'omar',
                                     password => $nu{omar}, client_id => 'runai-cli'],
                         Authorization => basic_auth('runai-cli', '')),
                 'Basic with an empty secret and the same client_id in the body');
    # the refresh grant the same way
    my $b = oauth_tokens($post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                               password => $nu{nina}], Authorization => basic_auth('runai-cli', '')),
                         'login for a refresh with an empty Basic secret');
    oauth_tokens($post->($KC_TOKEN, [grant_type => 'refresh_token', refresh_token => $b->{refresh_token}], Authorization => basic_auth('runai-cli', '')),
                 'refresh with Basic runai-cli: (empty secret)');
    # a confidential client is identified too, and then asked for its secret:
    # refused, and nothing counted against anyone
    for (1 .. 3) {
        my $res = $post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                        password => $nu{nina}], Authorization => basic_auth('app-bcrypt', ''));
        check_oauth_error($res, 401, 'invalid_client', "Basic app-bcrypt: (confidential, empty secret), try $_",
                          desc => qr/client authentication required/);
    }
    oauth_tokens($post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                       password => $nu{nina}], Authorization => basic_auth('app-bcrypt', $s->{apps}{'app-bcrypt'})),
                 'app-bcrypt with its secret, after three empty ones: not throttled');
    # the name in the header, the secret in the body: one set of credentials
    oauth_tokens($post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                       password => $nu{nina}, client_secret => $s->{apps}{'app-bcrypt'}], Authorization => basic_auth('app-bcrypt', '')),
                 'Basic app-bcrypt: with client_secret in the body');
    check_oauth_error($post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                            password => $nu{nina}, client_secret => $s->{apps}{'app-bcrypt'}], Authorization => basic_auth('app-bcrypt', $s->{apps}{'app-bcrypt'})),
                      400, 'invalid_request', 'a secret in the header and in the body');
    # a conflict is still one
    check_oauth_error($post->($KC_TOKEN, [grant_type => 'password', username => 'nina',
                                            password => $nu{nina}, client_id => 'kubelogin'], Authorization => basic_auth('runai-cli', '')),
                      400, 'invalid_request', 'Basic runai-cli: and client_id kubelogin in the body');
    is(throttled_lines(), $before, 'no throttled line was written (nothing was counted against anyone)');
}

# --- 1. loopback redirect URIs on any port ------------------------------------
{
    my %params = (client_id => 'runai-cli', response_type => 'code', state => 'st');
    for my $uri ('http://localhost:43121/callback', 'http://localhost:51234/callback', 'http://localhost/callback') {
        my $res = authorize_call($P, 'alice', $s->{users}{alice}, { %params, redirect_uri => $uri });
        is($res->code, 302, "authorize to $uri: 302") or diag($res->as_string);
        like($res->header('Location') // '', qr/^\Q$uri\E\?code=[\w-]+&state=st$/, "authorize to $uri: Location is that URI");
        my $code = code_of($res);
        my $other = $uri =~ /43121/ ? 'http://localhost:43122/callback' : undef;
        if ($other) {
            # the code is bound to the exact URI used
            my $x = exchange_call($P, $code, $other, clientID => 'runai-cli');
            reply_of($x);
            check_error($x, 400, qr/redirect URI mismatch/, 'the code of port 43121 redeemed for port 43122');
        }
        else {
            tokens_ok(exchange_call($P, $code, $uri, clientID => 'runai-cli'), "exchange for $uri");
        }
    }
    my $k = authorize_call($P, 'bob', $s->{users}{bob},
                           { client_id => 'kubelogin', response_type => 'code', redirect_uri => 'http://127.0.0.1:18000/' });
    is($k->code, 302, 'kubelogin on its fallback port 18000 (registered on 8000)');
    for my $bad ('http://localhost:43121/callback/', 'http://localhost.evil.test:43121/callback',
                 'http://localhost:43121@evil.test/callback', 'https://localhost:43121/callback',
                 'http://127.0.0.1:43121/callback') {
        my $res = authorize_call($P, 'alice', $s->{users}{alice}, { %params, redirect_uri => $bad });
        reply_of($res);
        check_error($res, 400, qr/redirect URI not registered/, "authorize to $bad: refused");
        ok(!defined $res->header('Location'), "authorize to $bad: no redirect");
    }
    # the runai CLI's logout on another port
    my $res = http_request(port => $P, method => 'GET',
                           path => '/auth/realms/runai/protocol/openid-connect/logout?'
                                 . form_body(redirect_uri => 'http://localhost:43121/logout'));
    is($res->code, 302, 'logout to the registered loopback URI on another port: 302');
    is($res->header('Location'), 'http://localhost:43121/logout', 'logout: Location as asked');
}

# --- 3. the out-of-band code page ---------------------------------------------
{
    my $oob = 'urn:ietf:wg:oauth:2.0:oob';
    my $res = authorize_call($P, 'alice', $s->{users}{alice},
                             { client_id => 'runai-cli', response_type => 'code', redirect_uri => $oob });
    is($res->code, 200, 'oob: the code on a page (200)') or diag($res->as_string);
    like($res->header('Content-Type') // '', qr{^text/html}, 'oob: text/html');
    like($res->header('Cache-Control') // '', qr/no-store/, 'oob: no-store');
    is($res->header('Referrer-Policy'), 'no-referrer', 'oob: no-referrer');
    ok(!defined $res->header('Location'), 'oob: no redirect');
    my($code) = ($res->content // '') =~ m{<code id="code">([\w-]+)</code>};
    ok(defined $code, 'oob: the page shows the code');
    note_secret('oob code', $code) if defined $code;
    tokens_ok(exchange_call($P, $code // 'none', $oob, clientID => 'runai-cli'), 'oob: the exchange names the same URI');
    my $k = authorize_call($P, 'alice', $s->{users}{alice},
                           { client_id => 'kubelogin', response_type => 'code', redirect_uri => $oob });
    reply_of($k);
    check_error($k, 400, qr/redirect URI not registered/, 'oob for a client that did not register it');
}

# --- 2. the id token's audience -----------------------------------------------
{
    my $b = tokens_ok(password_login($P, 'nina', $nu{nina}, clientID => 'runai-cli'), 'runai-cli login');
    my $id = claims_of($b->{idToken});
    is_deeply($id->{aud}, ['runai-cli', 'runai'], 'id token aud: the client, then RunaiTokenIdTokenAudience');
    is($id->{azp}, 'runai-cli', 'id token azp: the client');
    is(claims_of($b->{accessToken})->{aud}, 'runai', 'access token aud: RunaiTokenAudience alone');
    my $k = tokens_ok(password_login($P, 'omar', $nu{omar}, clientID => 'kubelogin'), 'kubelogin login');
    is_deeply(claims_of($k->{idToken})->{aud}, ['kubelogin', 'runai'], 'kubelogin id token aud');
    my $n = tokens_ok(password_login($P, 'omar', $nu{omar}), 'login without a client');
    is(claims_of($n->{idToken})->{aud}, 'runai', 'no client: aud is the audience, not repeated');
    my $p = tokens_ok(password_login($PLAIN, 'alice', $s->{users}{alice}, clientID => 'runai-cli'), 'plain host');
    is(claims_of($p->{idToken})->{aud}, 'runai-cli', 'without the directive: aud is the client alone');
    # an independent verifier with kube-apiserver's question: aud holds "runai"
    my @v = verify_pyjwt_batch(map { [$_, 'rsa', 'RS256', aud => 'runai', iss => $ISS] }
                               $b->{idToken}, $k->{idToken});
    is(scalar(grep { defined $_->[0] } @v), 2, 'PyJWT verifies both id tokens for audience runai')
        or diag(join '; ', map { $_->[1] } @v);
    my @w = verify_pyjwt_batch([$p->{idToken}, 'rsa', 'RS256', aud => 'runai']);
    ok(!defined $w[0][0], 'PyJWT refuses the plain host\'s id token for audience runai');
}

# --- 5. UserInfo ------------------------------------------------------------------
{
    my $b = tokens_ok(password_login($P, 'pia', $nu{pia}, clientID => 'runai-cli'), 'login for userinfo');
    for my $m (qw(GET POST)) {
        my $res = http_request(port => $P, method => $m, path => $USERINFO,
                               headers => [Authorization => "Bearer $b->{accessToken}"]);
        is($res->code, 200, "userinfo $m: 200") or diag($res->as_string);
        like($res->header('Cache-Control') // '', qr/no-store/, "userinfo $m: no-store");
        my $u = response_json($res) || {};
        is($u->{sub}, 'pia', "userinfo $m: sub");
        is($u->{email}, 'pia@example.com', "userinfo $m: a configured claim");
        is($u->{preferred_username}, 'pia', "userinfo $m: preferred_username");
        is(join(',', grep { exists $u->{$_} } qw(iss aud exp iat jti azp sid)), '', "userinfo $m: no token claims");
    }
    my $res = http_request(port => $P, method => 'GET', path => $USERINFO);
    is($res->code, 401, 'userinfo without a token: 401');
    like($res->header('WWW-Authenticate') // '', qr/^Bearer realm="[^"]*"$/, 'userinfo without a token: a bare Bearer challenge');
    $res = http_request(port => $P, method => 'GET', path => $USERINFO,
                        headers => [Authorization => 'Bearer ' . flip_signature($b->{accessToken})]);
    is($res->code, 401, 'userinfo with a bad signature: 401');
    like($res->header('WWW-Authenticate') // '', qr/error="invalid_token"/, 'userinfo with a bad signature: invalid_token');
    is((response_json($res) || {})->{error}, 'invalid_token', 'userinfo with a bad signature: the body says invalid_token');
    # a session revoked: refused at once (this process has not looked yet)
    my $r2 = form_post('/auth/realms/runai/protocol/openid-connect/revoke',
                       [token => $b->{refreshToken}, client_id => 'runai-cli']);
    is($r2->code, 200, 'the session revoked');
    ok(wait_until(7, 0.2, sub {
        http_request(port => $P, method => 'GET', path => $USERINFO,
                     headers => [Authorization => "Bearer $b->{accessToken}"])->code == 401 }),
       'userinfo refuses the token of a revoked session within RunaiTokenSessionCheck');
    my $d = response_json(http_request(port => $P, method => 'GET',
                                       path => '/auth/realms/runai/.well-known/openid-configuration')) || {};
    is($d->{userinfo_endpoint}, "$ISS/protocol/openid-connect/userinfo", 'discovery lists userinfo_endpoint');
}

# --- 6. API 2.20: /api/v2/token and JSON client_credentials -------------------
{
    my $b = oauth_tokens(form_post('/api/v2/token', [grant_type => 'client_credentials', client_id => 'app-bcrypt',
                                                     client_secret => $s->{apps}{'app-bcrypt'}]),
                         '/api/v2/token client_credentials (form)');
    is_deeply([sort keys %$b], [qw(access_token expires_in token_type)], '/api/v2/token: the RFC 6749 answer');
    is(claims_of($b->{access_token})->{sub}, 'app-bcrypt', '/api/v2/token: sub is the client');
    $b = oauth_tokens(form_post('/api/v2/token', [grant_type => 'client_credentials'],
                                headers => [Authorization => basic_auth('app-bcrypt', $s->{apps}{'app-bcrypt'})]),
                      '/api/v2/token client_credentials (Basic)');
    my $j = post_json_to($P, '/api/v2/token', { grantType => 'client_credentials', clientID => 'app-bcrypt',
                                                clientSecret => $s->{apps}{'app-bcrypt'} });
    # JSON fields of the Run:ai dialect, answered in the OAuth dialect
    my $jb = reply_of($j) || {};
    is($j->code, 200, '/api/v2/token with a JSON body: 200') or diag($j->as_string);
    ok(defined $jb->{access_token}, '/api/v2/token with a JSON body: an RFC 6749 answer');
    check_oauth_error(form_post('/api/v2/token', [grant_type => 'client_credentials', client_id => 'app-bcrypt',
                                                  client_secret => $s->{wrong}]),
                      401, 'invalid_client', '/api/v2/token with a wrong secret');
    check_oauth_error(http_request(port => $P, method => 'GET', path => '/api/v2/token'),
                      405, 'invalid_request', 'GET /api/v2/token');
    my $v1 = post_json_to($P, '/api/v1/token', { grantType => 'client_credentials', clientID => 'app-bcrypt',
                                                 clientSecret => $s->{apps}{'app-bcrypt'} });
    my $vb = reply_of($v1) || {};
    is($v1->code, 200, 'JSON client_credentials with clientID/clientSecret on /api/v1/token: 200');
    ok(defined $vb->{accessToken} && !defined $vb->{refreshToken}, '... an access token, no session');
    is(claims_of($vb->{accessToken} // '')->{sub}, 'app-bcrypt', '... for the client');
}

assert_logs_clean('38_native_clients', $error_log, $access_log);
done_testing();

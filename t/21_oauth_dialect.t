# The OAuth 2.0 dialect (RFC 6749): form bodies on /api/v1/token and on the
# Keycloak path {issuer}/protocol/openid-connect/token. client_credentials
# with client_secret_basic and client_secret_post, the password grant as
# Keycloak-era scripts send it (client_id=runai-cli), refresh_token,
# authorization_code with PKCE after a real trip through /api/v1/authorize
# behind Basic auth, and every error shape: status, error code,
# WWW-Authenticate, duplicate parameters, bad escapes, throttling.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Digest::SHA qw(sha256);
use File::Spec::Functions qw(catfile);
use HTTP::Response ();
use IO::Socket::INET ();
use LWP::UserAgent ();
use MIME::Base64 qw(encode_base64 encode_base64url);
use Time::HiRes qw(sleep);
use URI ();
use URI::QueryParam ();
use RunaiTest;

my $s = secrets();
my $port = Apache::Test::vars('oidc_port');
my $origin = "http://127.0.0.1:$port";
my $issuer = "$origin/auth/realms/runai";
my $keycloak = '/auth/realms/runai/protocol/openid-connect/token';
my @endpoints = ('/api/v1/token', $keycloak);
my $web_redirect = "$origin/callback";
my $rsa_kid = thumbprint('rsa');
my(%jti, @codes, @refresh_tokens);

# application/x-www-form-urlencoded: every byte but the unreserved ones escaped
sub enc {
    my $v = shift;
    utf8::encode($v) if utf8::is_utf8($v);
    $v =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
    return $v;
}
sub form { my @kv = @_; my @p; while (my($k, $v) = splice @kv, 0, 2) { push @p, enc($k) . '=' . enc($v) } join '&', @p }

sub basic { my($id, $secret) = @_; 'Basic ' . encode_base64(enc($id) . ':' . enc($secret), '') }

sub form_post {
    my($path, $body, %a) = @_;
    return http(POST => $path, vhost => $a{vhost} // 'oidc', body => $body,
                type => $a{type} // 'application/x-www-form-urlencoded',
                headers => $a{headers} || []);
}

# An RFC 6749 §5.2 error (RunaiTest::check_oauth_error).
sub oauth_error {
    my($res, $status, $error, $desc_re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return check_oauth_error($res, $status, $error, $name, desc => $desc_re);
}

# An RFC 6749 §5.1 success; returns the body.
sub oauth_ok {
    my($res, $name, @keys) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    unless (is($res->code, 200, "$name: 200")) {
        diag($res->as_string);
        return {};
    }
    like($res->header('Content-Type') // '', qr{^application/json\b}i, "$name: application/json");
    like($res->header('Cache-Control') // '', qr/\bno-store\b/, "$name: Cache-Control no-store");
    like($res->header('Pragma') // '', qr/\bno-cache\b/, "$name: Pragma no-cache");
    my $b = response_json($res) || {};
    is_deeply([sort keys %$b], [sort(qw(access_token token_type expires_in), @keys)],
              "$name: members access_token token_type expires_in @keys");
    is($b->{token_type}, 'Bearer', "$name: token_type Bearer");
    is(json_type($b->{expires_in}), 'number', "$name: expires_in is a number");
    is($b->{expires_in}, 3600, "$name: expires_in 3600");
    if (exists $b->{refresh_token}) {
        like($b->{refresh_token}, $REFRESH_TOKEN_RE, "$name: refresh_token of the session format");
        push @refresh_tokens, $b->{refresh_token};
    }
    record_token($_) for grep { defined } values %$b;
    return $b;
}

sub verified {
    my($token, $aud, $name) = @_;
    my($c, $err) = verify_crypt_jwt($token, 'rsa', 'RS256', aud => $aud, iss => $issuer);
    ok($c, "$name: verifies (Crypt::JWT, RSA key, iss, aud $aud)") or diag($err);
    return $c || {};
}

# ---------------------------------------------------------------------------
# client_credentials
for my $ep (@endpoints) {
    for my $case (
        ['client_secret_basic', 'app-bcrypt', sub { (headers => [Authorization => basic($_[0], $s->{apps}{$_[0]})]) },
         sub { form(grant_type => 'client_credentials') }],
        ['client_secret_post', 'app-md5', sub { () },
         sub { form(grant_type => 'client_credentials', client_id => $_[0], client_secret => $s->{apps}{$_[0]}) }],
        # RFC 6749 §2.3.1: id and secret are form-encoded before base64; escape what need not be
        ['client_secret_basic, percent-encoded', 'app-bcrypt',
         sub { my $e = sub { join '', map { sprintf '%%%02X', ord } split //, $_[0] };
               (headers => [Authorization => 'Basic ' . encode_base64($e->($_[0]) . ':' . $e->($s->{apps}{$_[0]}), '')]) },
         sub { form(grant_type => 'client_credentials') }],
        ['client_secret_post, percent-encoded', 'app-md5', sub { () },
         sub { 'grant_type=client_credentials&client_id=' . join('', map { sprintf '%%%02x', ord } split //, $_[0])
               . '&client_secret=' . join('', map { sprintf '%%%02X', ord } split //, $s->{apps}{$_[0]}) }],
    ) {
        my($how, $app, $auth, $body) = @$case;
        my $name = "$ep client_credentials ($how)";
        my $b = oauth_ok(form_post($ep, $body->($app), $auth->($app)), $name);
        my $c = check_token_basics($b->{access_token}, name => "$name access token", alg => 'RS256',
            kid => $rsa_kid, iss => $issuer, sub => $app, aud => [qw(runai kube-apiserver)],
            lifetime => 3600, jti => \%jti);
        is($c->{azp}, $app, "$name: azp is the app");
        verified($b->{access_token}, 'kube-apiserver', $name);
    }
    # content type with a charset parameter, as openid-client sends it
    oauth_ok(form_post($ep, form(grant_type => 'client_credentials', client_id => 'app-md5',
                                 client_secret => $s->{apps}{'app-md5'}),
                       type => 'application/x-www-form-urlencoded;charset=UTF-8'),
             "$ep: Content-Type with charset");

    # client authentication failures
    my %bodies;
    for my $case (
        ['wrong secret (basic)', form(grant_type => 'client_credentials'),
         [Authorization => basic('app-bcrypt', $s->{wrong})]],
        ['wrong secret (post)', form(grant_type => 'client_credentials', client_id => 'app-bcrypt',
                                     client_secret => $s->{wrong}), []],
        ['unknown client (basic)', form(grant_type => 'client_credentials'),
         [Authorization => basic('no-such-app', $s->{wrong})]],
        ['unknown client (post)', form(grant_type => 'client_credentials', client_id => 'no-such-app',
                                       client_secret => $s->{apps}{'app-md5'}), []],
        ['secret of the other app', form(grant_type => 'client_credentials', client_id => 'app-md5',
                                         client_secret => $s->{apps}{'app-bcrypt'}), []],
        ['a user is no client', form(grant_type => 'client_credentials'),
         [Authorization => basic('alice', $s->{users}{alice})]],
    ) {
        my($what, $body, $h) = @$case;
        my $res = form_post($ep, $body, headers => $h);
        oauth_error($res, 401, 'invalid_client', undef, "$ep client_credentials: $what");
        $bodies{$res->content}++;
    }
    is(scalar keys %bodies, 1, "$ep: one invalid_client body for unknown client and wrong secret")
        or diag(join "\n", keys %bodies);

    # both methods at once, malformed Basic credentials, missing parts
    oauth_error(form_post($ep, form(grant_type => 'client_credentials', client_id => 'app-md5',
                                    client_secret => $s->{apps}{'app-md5'}),
                          headers => [Authorization => basic('app-md5', $s->{apps}{'app-md5'})]),
                400, 'invalid_request', undef, "$ep: client_secret_basic and client_secret_post at once");
    oauth_error(form_post($ep, form(grant_type => 'client_credentials', client_secret => $s->{apps}{'app-md5'}),
                          headers => [Authorization => basic('app-md5', $s->{apps}{'app-md5'})]),
                400, 'invalid_request', undef, "$ep: Basic and a client_secret in the body");
    for my $bad ('Basic ' . encode_base64('no-colon', ''), 'Basic !!!not-base64!!!',
                 'Basic ' . encode_base64(':' . $s->{apps}{'app-md5'}, '')) {
        my $res = form_post($ep, form(grant_type => 'client_credentials'), headers => [Authorization => $bad]);
        ok($res->code == 400 || $res->code == 401, "$ep: malformed Basic '$bad' is refused (400/401)")
            or diag($res->as_string);
        my $b = response_json($res) || {};
        like($b->{error} // '', qr/^(invalid_client|invalid_request)$/, "$ep: malformed Basic: RFC 6749 error");
    }
    oauth_error(form_post($ep, form(grant_type => 'client_credentials')), 400, 'invalid_request',
                qr/'client_id'/, "$ep: client_credentials without a client");
    oauth_error(form_post($ep, form(grant_type => 'client_credentials', client_id => 'app-md5')), 400,
                'invalid_request', qr/'client_secret'/, "$ep: client_credentials without a secret");
}

# ---------------------------------------------------------------------------
# password, as Keycloak-era scripts send it
sub check_user_tokens {
    my($b, $user, $client, $name) = @_;
    my $at = check_token_basics($b->{access_token}, name => "$name access token", alg => 'RS256',
        kid => $rsa_kid, iss => $issuer, sub => $user, aud => [qw(runai kube-apiserver)],
        lifetime => 3600, jti => \%jti);
    is($at->{azp}, $client, "$name: access token azp $client");
    is($at->{preferred_username}, $user, "$name: preferred_username");
    is($at->{email}, "$user\@example.com", "$name: email claim");
    is_deeply($at->{groups}, ["$user-team", 'devs', 'ops'], "$name: groups claim");
    my $id = check_token_basics($b->{id_token}, name => "$name id token", alg => 'RS256',
        kid => $rsa_kid, iss => $issuer, sub => $user, aud => $client);
    is($id->{azp}, $client, "$name: id token azp $client");
    verified($b->{access_token}, 'runai', "$name access token");
    verified($b->{id_token}, $client, "$name id token");
    return ($at, $id);
}

for my $ep (@endpoints) {
    for my $user (qw(alice bob)) {
        my $name = "$ep password $user (client_id=runai-cli)";
        my $b = oauth_ok(form_post($ep, form(grant_type => 'password', client_id => 'runai-cli',
                                              username => $user, password => $s->{users}{$user},
                                              scope => 'openid')),
                         $name, qw(id_token refresh_token));
        check_user_tokens($b, $user, 'runai-cli', $name);
    }
    my %bodies;
    for my $case (['wrong password', 'alice', $s->{wrong}], ['unknown user', 'nobody-here', $s->{wrong}],
                  ['password of another user', 'bob', $s->{users}{alice}]) {
        my($what, $user, $pw) = @$case;
        my $res = form_post($ep, form(grant_type => 'password', client_id => 'runai-cli',
                                      username => $user, password => $pw));
        oauth_error($res, 400, 'invalid_grant', undef, "$ep password: $what");
        $bodies{$res->content}++;
    }
    is(scalar keys %bodies, 1, "$ep password: one invalid_grant body for unknown user and wrong password");
    oauth_error(form_post($ep, form(grant_type => 'password', client_id => 'not-registered',
                                    username => 'alice', password => $s->{users}{alice})),
                401, 'invalid_client', undef, "$ep password: unregistered client_id");
    oauth_error(form_post($ep, form(grant_type => 'password', client_id => 'runai-cli', username => 'alice')),
                400, 'invalid_request', qr/missing parameter 'password'/, "$ep password: no password");
    oauth_error(form_post($ep, form(grant_type => 'password', client_id => 'runai-cli',
                                    password => $s->{users}{alice})),
                400, 'invalid_request', qr/missing parameter 'username'/, "$ep password: no username");
    # a confidential client may run a user grant; its secret is checked
    {
        my $name = "$ep password by a confidential client (basic)";
        my $b = oauth_ok(form_post($ep, form(grant_type => 'password', username => 'bob',
                                              password => $s->{users}{bob}),
                                   headers => [Authorization => basic('app-bcrypt', $s->{apps}{'app-bcrypt'})]),
                         $name, qw(id_token refresh_token));
        check_user_tokens($b, 'bob', 'app-bcrypt', $name) if $b->{id_token};
    }
    oauth_error(form_post($ep, form(grant_type => 'password', username => 'bob', password => $s->{users}{bob}),
                          headers => [Authorization => basic('app-bcrypt', $s->{wrong})]),
                401, 'invalid_client', undef, "$ep password: wrong client secret (basic)");
    oauth_error(form_post($ep, form(grant_type => 'password', username => 'bob', password => $s->{users}{bob},
                                    client_id => 'app-bcrypt', client_secret => $s->{wrong})),
                401, 'invalid_client', undef, "$ep password: wrong client secret (post)");
}

# Exactly as a shell script calls Keycloak: curl -d (values as typed, not
# escaped: alice's password holds " \ / and non-ASCII bytes) and --data-urlencode.
{
    my $url = "$origin$keycloak";
    my $pw = $s->{users}{alice};
    utf8::encode($pw);
    # the password goes through stdin (@-), not the command line
    for my $case (['curl -d', "password=$pw", '-d', '@-'],
                  ['curl --data-urlencode', $pw, '--data-urlencode', 'password@-']) {
        my($name, $stdin, @opt) = @$case;
        my($rc, $out, $err) = RunaiTest::run_capture([$stdin], 'curl', '-sS', '--max-time', '20',
            '-d', 'grant_type=password', '-d', 'client_id=runai-cli', '-d', 'username=alice',
            @opt, $url);
        is($rc, 0, "$name: curl ran") or diag($err);
        my $b = json_decode($out) || {};
        ok($b->{access_token} && $b->{id_token} && $b->{refresh_token}, "$name: access, id and refresh tokens")
            or diag($out);
        is($b->{token_type}, 'Bearer', "$name: token_type Bearer");
        record_token($_) for grep { defined } values %$b;
        push @refresh_tokens, $b->{refresh_token} if $b->{refresh_token};
        my(undef, $c) = jwt_parts($b->{access_token});
        is(($c || {})->{sub}, 'alice', "$name: token for alice");
    }
}

# ---------------------------------------------------------------------------
# refresh_token
for my $ep (@endpoints) {
    my $first = oauth_ok(form_post($ep, form(grant_type => 'password', client_id => 'runai-cli',
                                              username => 'bob', password => $s->{users}{bob})),
                         "$ep refresh: login", qw(id_token refresh_token));
    my $name = "$ep refresh_token";
    my $second = oauth_ok(form_post($ep, form(grant_type => 'refresh_token', client_id => 'runai-cli',
                                               refresh_token => $first->{refresh_token})),
                          $name, qw(id_token refresh_token));
    isnt($second->{refresh_token}, $first->{refresh_token}, "$name: a new refresh token");
    my($at, $id) = check_user_tokens($second, 'bob', 'runai-cli', $name);
    my(undef, $id1) = jwt_parts($first->{id_token});
    is($id->{auth_time}, $id1->{auth_time}, "$name: id token keeps the login's auth_time");
    my $third = oauth_ok(form_post($ep, form(grant_type => 'refresh_token',
                                              refresh_token => $second->{refresh_token})),
                         "$name without client_id", qw(id_token refresh_token));
    # (older than the token before the newest: a reuse, whatever the retry
    # window; t/10_refresh.t owns what it does to the session)
    oauth_error(form_post($ep, form(grant_type => 'refresh_token', refresh_token => $first->{refresh_token})),
                400, 'invalid_grant', undef, "$name: a rotated refresh token");
    oauth_error(form_post($ep, form(grant_type => 'refresh_token', refresh_token => encode_base64url('x' x 32))),
                400, 'invalid_grant', undef, "$name: an unknown refresh token");
    oauth_error(form_post($ep, form(grant_type => 'refresh_token')), 400, 'invalid_request',
                qr/missing parameter 'refresh_token'/, "$name: none given");
}

# ---------------------------------------------------------------------------
# authorization_code: GET /api/v1/authorize with Basic auth, then the form
my $ua = LWP::UserAgent->new(timeout => 20, max_redirect => 0);

sub pkce {
    my $verifier = encode_base64url(join '', map { chr int rand 256 } 1 .. 32);
    return ($verifier, encode_base64url(sha256($verifier)));
}

# authorize(user, client_id, redirect_uri, extra params) → (response, code, state)
sub authorize {
    my($user, %q) = @_;
    my $u = "$origin/api/v1/authorize?" . form(map { ($_ => $q{$_}) } sort keys %q);
    my $login = "$user:$s->{users}{$user}";    # HTTP Basic: UTF-8, not form-encoded
    utf8::encode($login);
    my $res = $ua->get($u, Authorization => 'Basic ' . encode_base64($login, ''));
    my $loc = $res->header('Location');
    my($code, $state);
    if ($loc) {
        my $l = URI->new($loc);
        $code = $l->query_param('code');
        $state = $l->query_param('state');
        push @codes, $code if defined $code;
    }
    return ($res, $code, $state, $loc);
}

for my $ep (@endpoints) {
    my($verifier, $challenge) = pkce();
    my $state = "st \x{e9}&=/?" . int rand 1e9;
    my $nonce = 'n-' . int rand 1e9;
    my($res, $code, $got_state, $loc) = authorize('alice', client_id => 'runai-web', redirect_uri => $web_redirect,
        response_type => 'code', scope => 'openid', state => $state, nonce => $nonce,
        code_challenge => $challenge, code_challenge_method => 'S256');
    is($res->code, 302, "$ep authorize: 302") or diag($res->as_string);
    like($loc // '', qr/^\Q$web_redirect\E\?code=/, "$ep authorize: back to the redirect URI with a code");
    like($code // '', qr/^[A-Za-z0-9_-]{43,}$/, "$ep authorize: the code is opaque base64url");
    my $st = $got_state // '';
    utf8::decode($st);
    is($st, $state, "$ep authorize: state comes back unchanged");
    like($res->header('Cache-Control') // '', qr/no-store/, "$ep authorize: no-store");

    my $name = "$ep authorization_code";
    my $body = form(grant_type => 'authorization_code', code => $code, redirect_uri => $web_redirect,
                    code_verifier => $verifier, client_id => 'runai-web');
    my $b = oauth_ok(form_post($ep, $body), $name, qw(id_token refresh_token));
    my($at, $id) = check_user_tokens($b, 'alice', 'runai-web', $name);
    is($id->{nonce}, $nonce, "$name: id token nonce");
    oauth_error(form_post($ep, $body), 400, 'invalid_grant', undef, "$name: the code a second time");

    # every failed redemption spends the code
    for my $case (
        ['a wrong code_verifier', sub { (code_verifier => (pkce())[0]) }],
        ['no code_verifier', sub { () }],
        ['another redirect_uri', sub { (code_verifier => $_[0], redirect_uri => "$web_redirect/") }],
        ['another client_id', sub { (code_verifier => $_[0], client_id => 'runai-cli') }],
    ) {
        my($what, $extra) = @$case;
        my($v, $ch) = pkce();
        my(undef, $c) = authorize('bob', client_id => 'runai-web', redirect_uri => $web_redirect,
            code_challenge => $ch, code_challenge_method => 'S256');
        my %p = (grant_type => 'authorization_code', code => $c, redirect_uri => $web_redirect,
                 client_id => 'runai-web', $extra->($v));
        oauth_error(form_post($ep, form(map { ($_ => $p{$_}) } sort keys %p)), 400, 'invalid_grant', undef,
                    "$name: $what");
        oauth_error(form_post($ep, form(grant_type => 'authorization_code', code => $c,
                                        redirect_uri => $web_redirect, client_id => 'runai-web',
                                        code_verifier => $v)),
                    400, 'invalid_grant', undef, "$name: the right request after $what (code spent)");
    }
    oauth_error(form_post($ep, form(grant_type => 'authorization_code', code => encode_base64url('y' x 32),
                                    redirect_uri => $web_redirect, client_id => 'runai-web')),
                400, 'invalid_grant', undef, "$name: an unknown code");
    oauth_error(form_post($ep, form(grant_type => 'authorization_code', redirect_uri => $web_redirect,
                                    client_id => 'runai-web')),
                400, 'invalid_request', qr/missing parameter 'code'/, "$name: no code");
    {
        # a refused request spends nothing: the code still works after it
        my($v, $ch) = pkce();
        my(undef, $c) = authorize('bob', client_id => 'runai-web', redirect_uri => $web_redirect,
            code_challenge => $ch, code_challenge_method => 'S256');
        oauth_error(form_post($ep, form(grant_type => 'authorization_code', code => $c,
                                        client_id => 'runai-web', code_verifier => $v)),
                    400, 'invalid_request', qr/missing parameter 'redirect_uri'/, "$name: no redirect_uri");
        oauth_ok(form_post($ep, form(grant_type => 'authorization_code', code => $c, redirect_uri => $web_redirect,
                                     client_id => 'runai-web', code_verifier => $v)),
                 "$name: the code after a request without redirect_uri", qw(id_token refresh_token));
    }
    {
        # registered redirect URI with a query; no PKCE
        my $ruri = 'http://localhost:8000/cb?tenant=a';
        my($r2, $c, undef, $l) = authorize('bob', client_id => 'runai-web', redirect_uri => $ruri, state => 's1');
        like($l // '', qr/^\Q$ruri\E&code=[A-Za-z0-9_-]+&state=s1$/, "$name: a redirect URI with a query gets &code=");
        my $b2 = oauth_ok(form_post($ep, form(grant_type => 'authorization_code', code => $c, redirect_uri => $ruri,
                                              client_id => 'runai-web')),
                          "$name without PKCE", qw(id_token refresh_token));
        my(undef, $idc) = jwt_parts($b2->{id_token});
        ok(!exists(($idc || {})->{nonce}), "$name without nonce: no nonce claim");
        is(($idc || {})->{aud}, 'runai-web', "$name: id token aud is the code's client");
        # RFC 6749 4.1.3: a public client names itself when it redeems a code
        (undef, $c) = authorize('bob', client_id => 'runai-web', redirect_uri => $ruri);
        oauth_error(form_post($ep, form(grant_type => 'authorization_code', code => $c, redirect_uri => $ruri)),
                    400, 'invalid_request', qr/missing parameter 'client_id'/,
                    "$name: a public client's code without client_id");
    }
}

# ---------------------------------------------------------------------------
# Malformed requests
for my $ep (@endpoints) {
    oauth_error(form_post($ep, form(client_id => 'runai-cli', username => 'alice')), 400, 'invalid_request',
                qr/^missing parameter 'grant_type'$/, "$ep: no grant_type");
    oauth_error(form_post($ep, ''), 400, 'invalid_request', undef, "$ep: empty form body");
    for my $g ('implicit', 'urn:ietf:params:oauth:grant-type:saml2-bearer', 'urn:ietf:params:oauth:grant-type:jwt-bearer',
               'Password', 'client_credentials ') {
        oauth_error(form_post($ep, form(grant_type => $g, client_id => 'runai-cli', username => 'alice',
                                        password => $s->{users}{alice})),
                    400, 'unsupported_grant_type', undef, "$ep: grant_type '$g'");
    }
    my $pw = enc($s->{users}{alice});
    for my $case (
        ['grant_type twice', "grant_type=password&grant_type=password&client_id=runai-cli&username=alice&password=$pw"],
        ['client_id twice', "grant_type=password&client_id=runai-cli&client_id=runai-cli&username=alice&password=$pw"],
        ['username twice', "grant_type=password&client_id=runai-cli&username=alice&username=bob&password=$pw"],
        ['password twice', "grant_type=password&client_id=runai-cli&username=alice&password=$pw&password=$pw"],
        ['client_secret twice', 'grant_type=client_credentials&client_id=app-md5&client_secret=a&client_secret=b'],
        ['refresh_token twice', 'grant_type=refresh_token&refresh_token=a&refresh_token=a'],
        ['code twice', "grant_type=authorization_code&code=a&code=b&redirect_uri=" . enc($web_redirect)],
        ['an escaped name given twice', "grant_type=password&client%5Fid=runai-cli&client_id=runai-cli&username=alice&password=$pw"],
    ) {
        my($what, $body) = @$case;
        oauth_error(form_post($ep, $body), 400, 'invalid_request', undef, "$ep: $what");
    }
    for my $case (
        ['%zz', 'grant_type=pass%zzword'], ['%4 at the end', 'grant_type=password&username=%4'],
        ['% at the end', 'grant_type=password&username=alice%'], ['%00', 'grant_type=password&username=al%00ice'],
        ['invalid UTF-8 %ff', 'grant_type=password&username=%ff'],
        ['truncated UTF-8 %C3', 'grant_type=password&username=al%C3'],
        ['bad escape in a name', 'grant%zztype=password'],
    ) {
        my($what, $body) = @$case;
        oauth_error(form_post($ep, "$body&client_id=runai-cli&password=$pw"), 400, 'invalid_request', undef,
                    "$ep: bad escape ($what)");
    }
    # '+' is a space: "runai+cli" is "runai cli", not a registered client
    oauth_error(form_post($ep, "grant_type=password&client_id=runai+cli&username=alice&password=$pw"),
                401, 'invalid_client', undef, "$ep: '+' decodes to a space");
    # unknown parameters are ignored, also when repeated
    oauth_ok(form_post($ep, "scope=openid&scope=profile&grant_type=password&client_id=runai-cli"
                            . "&username=alice&password=$pw&x=1"),
             "$ep: unknown parameters ignored", qw(id_token refresh_token));
    my $get = http(GET => $ep, vhost => 'oidc');
    is($get->code, 405, "$ep: GET is 405");
    is($get->header('Allow'), 'POST', "$ep: Allow: POST");
}

# ---------------------------------------------------------------------------
# Throttling: 429 with Retry-After and the RFC 6749 code a wrong credential
# of the kind answers (slow_down is not one of §5.2's). oidcsolo allows 3 failures;
# the requests come from a random loopback address and name a principal of
# their own, so no other test's failures count.
{
    my $src = join '.', 127, map { 1 + int rand 250 } 1 .. 3;
    my $solo = Apache::Test::vars('oidcsolo_port');
    my $who = "ghost-$$-" . int rand 1e6;
    my $post = sub {
        my $body = shift;
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $solo, LocalAddr => $src,
                                         Proto => 'tcp', Timeout => 10) or die "connect from $src: $!";
        print $sock "POST /api/v1/token HTTP/1.1\r\nHost: 127.0.0.1:$solo\r\nConnection: close\r\n"
            . "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " . length($body)
            . "\r\n\r\n$body";
        local $/;
        my $raw = <$sock>;
        close $sock;
        return HTTP::Response->parse($raw // '');
    };
    my $body = form(grant_type => 'password', username => $who, password => $s->{wrong});
    for my $n (1 .. 3) {
        oauth_error($post->($body), 400, 'invalid_grant', undef, "throttle: failure $n of 3");
    }
    my $res = $post->($body);
    oauth_error($res, 429, 'invalid_grant', undef, 'throttle: the 4th attempt');
    like($res->header('Retry-After') // '', qr/^[1-9]\d*$/, 'throttle: Retry-After in seconds');
    cmp_ok($res->header('Retry-After') // 0, '<=', 60, 'throttle: Retry-After within the window');

    # A confidential client whose secret keeps failing on a user grant.
    my $client = "ghost-client-$$-" . int rand 1e6;
    my $basic = form(grant_type => 'password', username => $who, password => $s->{wrong},
                     client_id => $client, client_secret => $s->{wrong});
    for my $n (1 .. 3) {
        oauth_error($post->($basic), 401, 'invalid_client', undef,
                    "throttle: client secret failure $n of 3");
    }
    $res = $post->($basic);
    oauth_error($res, 429, 'invalid_client', undef, 'throttle: the client\'s 4th attempt');
    like($res->header('Retry-After') // '', qr/^[1-9]\d*$/, 'throttle: the client\'s Retry-After');
}

# ---------------------------------------------------------------------------
# Codes and refresh tokens never reach a log.
{
    my $logs = Apache::Test::vars('t_logs');
    sleep 0.3;
    my $text = '';
    for my $f (qw(error_log access_log)) {
        open my $fh, '<:raw', catfile($logs, $f) or next;
        local $/;
        $text .= <$fh> // '';
    }
    cmp_ok(scalar @codes, '>=', 10, 'codes were issued (' . scalar(@codes) . ')');
    my @leaked = grep { index($text, $_) >= 0 } @codes, @refresh_tokens;
    is(scalar @leaked, 0, 'no code or refresh token is in the logs') or diag("leaked: $leaked[0]");
}

done_testing();

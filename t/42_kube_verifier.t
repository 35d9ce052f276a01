# kube-apiserver's check, by the library its OIDC authenticator used:
# go-oidc v2 (Debian golang-github-coreos-go-oidc-dev) in t/bin/kube_verify
# (t/tools/kube_verify.go, built by `make test-tools`). Like kube-apiserver
# it discovers the provider from --oidc-issuer-url (discovery must name that
# issuer exactly), fetches the JWKS, and verifies signature, iss, aud
# (--oidc-client-id), exp and the algorithm (--oidc-signing-algs), then
# reads the username and groups claims. Issue 14: the id tokens of the
# runai CLI (password grant) and of kubelogin (authorization code with
# PKCE) with RunaiTokenIdTokenAudience on ("native") and off
# ("native_plain"), access tokens, ES256, and tokens it must refuse. Without
# the tool this test fails (it never skips).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use Time::HiRes ();
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $JSON = JSON::PP->new->utf8->canonical;
my $P = vhost_port('native');
my $PLAIN = vhost_port('native_plain');
my $OIDC = vhost_port('oidc');
my $ISS = "http://127.0.0.1:$P/auth/realms/runai";
my $ISS_PLAIN = "http://127.0.0.1:$PLAIN/auth/realms/runai";
my $ISS_OIDC = "http://127.0.0.1:$OIDC/auth/realms/runai";
my $KC_TOKEN = '/auth/realms/runai/protocol/openid-connect/token';
my $tool = catfile(t_dir(), 'bin', 'kube_verify');
my $logs = Apache::Test::vars('t_logs');

sub form { my @kv = @_; my @p; while (my($k, $v) = splice @kv, 0, 2) { push @p, url_encode($k) . '=' . url_encode($v) } join '&', @p }
sub form_post {
    my($port, $path, $params, %o) = @_;
    return http_request(port => $port, method => 'POST', path => $path, body => form(@$params),
                        type => 'application/x-www-form-urlencoded', headers => $o{headers} || []);
}
sub claims_of { my(undef, $c) = jwt_parts(shift // ''); return $c || {} }
sub oauth_tokens {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    return reply_of($res) || {};
}

ok(-x $tool, "$tool is built (make test-tools)") or BAIL_OUT("no $tool");
{
    my($rc, $out) = RunaiTest::run_capture($tool, '-version');
    chomp $out;
    my $pkg = `dpkg-query -W -f='\${Version}' golang-github-coreos-go-oidc-dev 2>/dev/null` // '';
    ok($rc == 0 && $out =~ /^go\d/, 'kube_verify reports its Go version');
    diag("go-oidc $pkg (Debian golang-github-coreos-go-oidc-dev), built with $out");
}

# --- tokens ----------------------------------------------------------------------
# native_plain's /api/v2/token mints tokens of one second: first, so that
# they have expired when the verifier runs
my $short = oauth_tokens(form_post($PLAIN, '/api/v2/token', [grant_type => 'password', username => 'bob',
                                                              password => $s->{users}{bob}]),
                         'native_plain: a token of one second (RunaiTokenAccessLifetime 1)');
my $short_at = Time::HiRes::time();
my $sc = claims_of($short->{access_token});
is(($sc->{exp} // 0) - ($sc->{iat} // 0), 1, 'its exp is iat + 1');

# the runai CLI: the password grant of the Run:ai dialect
my $cli = tokens_ok(password_login($P, 'alice', $s->{users}{alice}, clientID => 'runai-cli'), 'native: runai-cli login');
# kubelogin: authorization code with PKCE on its fallback port, redeemed at
# the Keycloak token path as a public client
my $kl = do {
    my($verifier, $challenge) = pkce_pair();
    my $redirect = 'http://127.0.0.1:18000/';
    my $res = authorize_call($P, 'bob', $s->{users}{bob},
                             { client_id => 'kubelogin', response_type => 'code', redirect_uri => $redirect,
                               scope => 'openid', code_challenge => $challenge, code_challenge_method => 'S256',
                               state => 'kl', nonce => 'n-kl' });
    is($res->code, 302, 'native: kubelogin authorize: 302') or diag($res->as_string);
    my $code = code_of($res) // 'none';
    oauth_tokens(form_post($P, $KC_TOKEN, [grant_type => 'authorization_code', code => $code,
                                           redirect_uri => $redirect, client_id => 'kubelogin',
                                           code_verifier => $verifier]),
                 'native: kubelogin authorization_code');
};
ok($kl->{id_token}, 'kubelogin got an id token');
my $plain = tokens_ok(password_login($PLAIN, 'alice', $s->{users}{alice}, clientID => 'runai-cli'),
                      'native_plain: runai-cli login');
my $grp = tokens_ok(password_login($OIDC, 'alice', $s->{users}{alice}, clientID => 'runai-cli'), 'oidc: login');
# oidcnext: the same issuer, signing with the EC key that oidc's JWKS lists
my $es = tokens_ok(password_login(vhost_port('oidcnext'), 'bob', $s->{users}{bob}, clientID => 'cli'),
                   'oidcnext: login (ES256)');

is_deeply(claims_of($cli->{idToken})->{aud}, ['runai-cli', 'runai'], 'runai-cli id token: aud [runai-cli, runai]');
is_deeply(claims_of($kl->{id_token})->{aud}, ['kubelogin', 'runai'], 'kubelogin id token: aud [kubelogin, runai]');
is(claims_of($plain->{idToken})->{aud}, 'runai-cli', 'native_plain id token: aud runai-cli alone');
my $cli_exp = claims_of($cli->{idToken})->{exp} // 0;

# --- kube-apiserver's check ------------------------------------------------------
# name, job, expected (ok => {field => value}, or error => qr//)
my $kube = { username_claim => 'preferred_username', groups_claim => 'groups' };
my @cases = (
    # RunaiTokenIdTokenAudience runai: --oidc-client-id=runai takes every client's id token
    ['runai-cli id token, --oidc-client-id=runai', { issuer => $ISS, client_id => 'runai', token => $cli->{idToken}, %$kube },
     ok => { aud => ['runai-cli', 'runai'], sub => 'alice', username => 'alice', iss => $ISS, alg => 'RS256' }],
    ['runai-cli id token, --oidc-client-id=runai-cli', { issuer => $ISS, client_id => 'runai-cli', token => $cli->{idToken} },
     ok => { sub => 'alice' }],
    ['kubelogin id token, --oidc-client-id=runai', { issuer => $ISS, client_id => 'runai', token => $kl->{id_token}, %$kube },
     ok => { aud => ['kubelogin', 'runai'], sub => 'bob', username => 'bob' }],
    ['kubelogin id token, --oidc-client-id=kubelogin', { issuer => $ISS, client_id => 'kubelogin', token => $kl->{id_token} },
     ok => { sub => 'bob' }],
    ['runai-cli id token, --oidc-client-id=kubelogin', { issuer => $ISS, client_id => 'kubelogin', token => $cli->{idToken} },
     error => qr/expected audience "kubelogin"/],
    # access tokens: RunaiTokenAudience
    ['runai-cli access token, --oidc-client-id=runai', { issuer => $ISS, client_id => 'runai', token => $cli->{accessToken}, %$kube },
     ok => { aud => ['runai'], sub => 'alice', username => 'alice' }],
    ['kubelogin access token, --oidc-client-id=runai', { issuer => $ISS, client_id => 'runai', token => $kl->{access_token} },
     ok => { aud => ['runai'], sub => 'bob' }],
    # without the directive, the id token names its client alone
    ['native_plain runai-cli id token, --oidc-client-id=runai', { issuer => $ISS_PLAIN, client_id => 'runai', token => $plain->{idToken} },
     error => qr/expected audience "runai" got \["runai-cli"\]/],
    ['native_plain runai-cli id token, --oidc-client-id=runai-cli', { issuer => $ISS_PLAIN, client_id => 'runai-cli', token => $plain->{idToken} },
     ok => { aud => ['runai-cli'], sub => 'alice', iss => $ISS_PLAIN }],
    ['native_plain access token, --oidc-client-id=runai', { issuer => $ISS_PLAIN, client_id => 'runai', token => $plain->{accessToken} },
     ok => { aud => ['runai'], sub => 'alice' }],
    # refusals, each for its own reason (the audience is the client's)
    ['a flipped signature bit', { issuer => $ISS, client_id => 'runai-cli', token => flip_signature($cli->{idToken}) },
     error => qr/failed to verify signature/],
    ['a token of another issuer with the same key', { issuer => $ISS_PLAIN, client_id => 'runai-cli', token => $cli->{idToken} },
     error => qr/issued by a different provider/],
    ['an issuer URL that differs by a trailing slash', { issuer => "$ISS/", client_id => 'runai', token => $cli->{idToken} },
     error => qr/issuer did not match/],
    ['the verifier\'s clock one second before exp', { issuer => $ISS, client_id => 'runai-cli', token => $cli->{idToken}, now => $cli_exp - 1 },
     ok => { sub => 'alice' }],
    ['the verifier\'s clock one second after exp', { issuer => $ISS, client_id => 'runai-cli', token => $cli->{idToken}, now => $cli_exp + 1 },
     error => qr/token is expired/],
    ['a token of one second, 2 s later', { issuer => $ISS_PLAIN, client_id => 'runai', token => $short->{access_token} },
     error => qr/token is expired/],
    # claims as kube-apiserver reads them; ES256
    ['oidc access token, --oidc-client-id=kube-apiserver, groups', { issuer => $ISS_OIDC, client_id => 'kube-apiserver', token => $grp->{accessToken}, %$kube },
     ok => { username => 'alice', groups => ['alice-team', 'devs', 'ops'], alg => 'RS256' }],
    ['oidc id token, --oidc-username-claim=email', { issuer => $ISS_OIDC, client_id => 'runai-cli', token => $grp->{idToken}, username_claim => 'email' },
     ok => { username => 'alice@example.com' }],
    ['ES256 access token, --oidc-signing-algs=RS256,ES256', { issuer => $ISS_OIDC, client_id => 'runai', token => $es->{accessToken}, %$kube },
     ok => { alg => 'ES256', sub => 'bob', groups => ['bob-team', 'devs', 'ops'] }],
    ['ES256 access token, kube-apiserver\'s default RS256 alone', { issuer => $ISS_OIDC, client_id => 'runai', token => $es->{accessToken}, signing_algs => ['RS256'] },
     error => qr/unsupported algorithm/],
);

my $wait = $short_at + 2.2 - Time::HiRes::time();
Time::HiRes::sleep($wait) if $wait > 0;
my $input = join '', map { $JSON->encode($_->[1]) . "\n" } @cases;
my($rc, $out, $err) = RunaiTest::run_capture([$input], 'timeout', '60', $tool);
is($rc, 0, 'kube_verify ran') or diag($err);
my @r = map { RunaiTest::json_decode($_) || {} } split /\n/, $out;
is(scalar @r, scalar @cases, 'one answer per job');
for my $i (0 .. $#cases) {
    my($name, undef, $kind, $want) = @{ $cases[$i] };
    my $r = $r[$i] || {};
    if ($kind eq 'ok') {
        ok($r->{ok}, "go-oidc accepts: $name") or diag($r->{error} // 'no answer');
        for my $k (sort keys %$want) {
            is_deeply($r->{$k}, $want->{$k}, "go-oidc: $name: $k");
        }
    }
    else {
        ok(!$r->{ok} && ($r->{error} // '') =~ $want, "go-oidc refuses: $name") or diag($JSON->encode($r));
    }
}

assert_logs_clean('42_kube_verifier', map { catfile($logs, $_) } qw(error_log access_log));
done_testing();

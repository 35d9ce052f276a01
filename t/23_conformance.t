# Conformance with client libraries nobody here wrote (issue 4, deliverable 6):
#  - PyJWT's PyJWKClient (Debian python3-jwt, /usr/bin/python3) verifies
#    access and id tokens with keys it fetches from the served JWKS URLs;
#  - npm jose: createRemoteJWKSet + jwtVerify;
#  - npm openid-client 6: discovery from the issuer, client_credentials with
#    client_secret_basic and client_secret_post, the authorization code flow
#    with PKCE driven end to end (authorization URL built by the library,
#    Basic login at the authorize endpoint, Location handed back to the
#    library), refresh, and the Keycloak-era password grant.
# The npm packages are pinned in t/node/package.json; install them with
# `npm ci --prefix t/node`. Without them this test fails (it never skips).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use URI ();
use RunaiTest;

my $s = secrets();
my $JSON = JSON::PP->new->utf8->canonical;
my $node_dir = catfile(t_dir(), 'node');
my %port = map { $_ => Apache::Test::vars("${_}_port") } qw(oidc oidcnext oidcmix);
my $issuer = "http://127.0.0.1:$port{oidc}/auth/realms/runai";
my $mix_issuer = 'https://oidcmix.example.test/realm';
my %jwks = (
    oidc     => "$issuer/protocol/openid-connect/certs",
    oidcnext => "http://127.0.0.1:$port{oidcnext}/.well-known/jwks.json",
    oidcmix  => "http://127.0.0.1:$port{oidcmix}/realm/protocol/openid-connect/certs",
);

sub tokens_of {
    my($res, $name) = @_;
    is($res->code, 200, "$name: 200") or diag($res->content);
    my $b = response_json($res) || {};
    record_token($_) for grep { defined } values %$b;
    return $b;
}

# --- tokens from the module ---------------------------------------------------
my $discovery = response_json(http(GET => '/auth/realms/runai/.well-known/openid-configuration', vhost => 'oidc')) || {};
is($discovery->{jwks_uri}, $jwks{oidc}, 'discovery names the JWKS URL the clients use');
my $pw = tokens_of(token_request({ grantType => 'password', username => 'alice', password => $s->{users}{alice},
                                   clientID => 'runai-cli' }, vhost => 'oidc'), 'oidc password grant (RS256)');
my $app = tokens_of(token_request({ grantType => 'client_credentials', clientId => 'app-md5',
                                    clientSecret => $s->{apps}{'app-md5'} }, vhost => 'oidc'), 'oidc app token');
my $es = tokens_of(token_request({ grantType => 'password', username => 'bob', password => $s->{users}{bob},
                                   clientID => 'cli' }, vhost => 'oidcnext'), 'oidcnext password grant (ES256)');
my $mix = tokens_of(token_request({ appID => 'app-bcrypt', appSecret => $s->{apps}{'app-bcrypt'} },
                                  vhost => 'oidcmix'), 'oidcmix app token (RS256 beside an HMAC key)');

# name, token, jwks, issuer, audience, alg, expected sub
my @cases = (
    ['RS256 access token',             $pw->{accessToken},  'oidc',     $issuer, 'runai',          'RS256', 'alice'],
    ['RS256 access token, 2nd aud',    $pw->{accessToken},  'oidc',     $issuer, 'kube-apiserver', 'RS256', 'alice'],
    ['RS256 id token',                 $pw->{idToken},      'oidc',     $issuer, 'runai-cli',      'RS256', 'alice'],
    ['RS256 app token',                $app->{accessToken}, 'oidc',     $issuer, 'runai',          'RS256', 'app-md5'],
    ['ES256 access token',             $es->{accessToken},  'oidcnext', $issuer, 'runai',          'ES256', 'bob'],
    ['ES256 id token',                 $es->{idToken},      'oidcnext', $issuer, 'cli',            'ES256', 'bob'],
    ['ES256 token, JWKS before the rotation', $es->{accessToken}, 'oidc', $issuer, 'runai',        'ES256', 'bob'],
    ['RS256 token, JWKS after the rotation',  $pw->{accessToken}, 'oidcnext', $issuer, 'runai',    'RS256', 'alice'],
    ['RS256 token of a host with an HMAC key', $mix->{accessToken}, 'oidcmix', $mix_issuer, 'runai', 'RS256', 'app-bcrypt'],
);
# tokens a verifier must refuse: it can say no
my @bad = (
    ['tampered signature', flip_signature($pw->{accessToken}), 'oidc', $issuer, 'runai', 'RS256'],
    ['wrong audience',     $pw->{idToken},                     'oidc', $issuer, 'runai', 'RS256'],
);

# --- PyJWT: PyJWKClient -------------------------------------------------------
my $PY = <<'PY';
import json, sys
import jwt
from jwt import PyJWKClient
print(json.dumps({"version": jwt.__version__}), flush=True)
clients = {}
for line in sys.stdin:
    job = json.loads(line)
    try:
        c = clients.setdefault(job["jwks"], PyJWKClient(job["jwks"]))
        key = c.get_signing_key_from_jwt(job["token"])
        claims = jwt.decode(job["token"], key.key, algorithms=[job["alg"]],
                            audience=job["aud"], issuer=job["iss"],
                            options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        print(json.dumps({"claims": claims, "kid": key.key_id}), flush=True)
    except Exception as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}), flush=True)
PY

sub pyjwt_run {
    my @jobs = @_;
    my $input = join '', map {
        my(undef, $tok, $host, $iss, $aud, $alg) = @$_;
        $JSON->encode({ token => $tok // '', jwks => $jwks{$host}, iss => $iss, aud => $aud, alg => $alg }) . "\n";
    } @jobs;
    my($rc, $out, $err) = RunaiTest::run_capture([$input], 'timeout', '60', '/usr/bin/python3', '-c', $PY);
    is($rc, 0, 'PyJWT: /usr/bin/python3 ran') or diag($err);
    my($head, @lines) = split /\n/, $out;
    my $version = (RunaiTest::json_decode($head // '') || {})->{version};
    return ($version, map { RunaiTest::json_decode($_ // '') || {} } @lines);
}

{
    my($version, @r) = pyjwt_run(@cases, @bad);
    ok($version, 'PyJWT reports its version');
    diag("PyJWT $version (Debian python3-jwt, /usr/bin/python3): PyJWKClient") if $version;
    for my $i (0 .. $#cases) {
        my($name, undef, $host, undef, $aud, $alg, $sub) = @{ $cases[$i] };
        my $r = $r[$i] || {};
        ok($r->{claims}, "PyJWKClient ($host JWKS): $name verifies") or diag($r->{error} // 'no answer');
        is(($r->{claims} || {})->{sub}, $sub, "PyJWKClient: $name: sub");
    }
    for my $i (0 .. $#bad) {
        my $r = $r[@cases + $i] || {};
        ok(!$r->{claims} && $r->{error}, "PyJWKClient refuses: $bad[$i][0]") or diag($JSON->encode($r));
    }
}

# --- npm packages ---------------------------------------------------------------
sub node_json {
    my($script, $job) = @_;
    my($rc, $out, $err) = RunaiTest::run_capture([$JSON->encode($job)], 'timeout', '90', 'node',
                                                  catfile($node_dir, $script));
    is($rc, 0, "node $script ran") or diag("exit $rc\n$err\n$out");
    my $r = RunaiTest::json_decode((split /\n/, $out)[-1] // '');
    ok(ref $r eq 'HASH', "node $script answered JSON") or diag($out);
    return $r || {};
}

my $node_ok = 1;
{
    my($rc, $out) = RunaiTest::run_capture('node', '--version');
    chomp $out;
    $node_ok = ok($rc == 0, "node is installed ($out)") || diag('install node (20 or later) and npm');
    # jose 6 and openid-client 6 need the global WebCrypto API of node 20+
    my($major) = $out =~ /^v(\d+)\./;
    $node_ok &&= ok(($major // 0) >= 20, "node is version 20 or later ($out)")
        || diag("node $out is too old for jose 6 / openid-client 6: install node 20 or later");
    my $pins = do {
        open my $fh, '<', catfile($node_dir, 'package.json') or die "t/node/package.json: $!";
        local $/;
        RunaiTest::json_decode(<$fh>) || {};
    };
    for my $pkg (qw(jose openid-client)) {
        my $file = catfile($node_dir, 'node_modules', $pkg, 'package.json');
        my $installed = -f $file ? do { open my $fh, '<', $file; local $/; (RunaiTest::json_decode(<$fh>) || {})->{version} }
                                 : undef;
        $node_ok &&= ok(defined $installed, "npm package $pkg is installed under t/node")
            || diag("t/node/node_modules/$pkg is missing: run `npm ci --prefix t/node`");
        is($installed, $pins->{dependencies}{$pkg}, "$pkg is the version pinned in t/node/package.json")
            if defined $installed;
    }
}

if ($node_ok) {
    # --- jose ---
    my @jobs = map {
        my($name, $tok, $host, $iss, $aud, $alg) = @$_;
        { name => $name, token => $tok, jwks_uri => $jwks{$host}, issuer => $iss, audience => $aud,
          algorithms => [$alg] };
    } @cases, @bad;
    my $r = node_json('jose_verify.mjs', { cases => \@jobs });
    my $v = $r->{versions} || {};
    diag("jose $v->{jose} (createRemoteJWKSet + jwtVerify) on node $v->{node}") if $v->{jose};
    my %res = map { $_->{name} => $_ } @{ $r->{results} || [] };
    for my $c (@cases) {
        my($name, undef, $host, undef, undef, $alg, $sub) = @$c;
        my $x = $res{$name} || {};
        ok($x->{ok}, "jose ($host JWKS): $name verifies") or diag($JSON->encode($x->{error} || {}));
        is(($x->{header} || {})->{alg}, $alg, "jose: $name: alg $alg");
        is(($x->{payload} || {})->{sub}, $sub, "jose: $name: sub");
    }
    for my $c (@bad) {
        my $x = $res{ $c->[0] } || {};
        ok(exists $x->{ok} && !$x->{ok}, "jose refuses: $c->[0]") or diag($JSON->encode($x));
    }

    # --- openid-client ---
    my $redirect = "http://127.0.0.1:$port{oidc}/callback";
    $r = node_json('oidc_flow.mjs', {
        issuer => $issuer, audience => 'runai',
        confidential => { id => 'app-bcrypt', secret => $s->{apps}{'app-bcrypt'} },
        public => { id => 'runai-web', redirect_uri => $redirect },
        cli => { id => 'runai-cli' },
        user => { name => 'alice', password => $s->{users}{alice} },
    });
    $v = $r->{versions} || {};
    diag("openid-client $v->{'openid-client'} (oauth4webapi $v->{oauth4webapi}, jose $v->{jose}) on node $v->{node}")
        if $v->{'openid-client'};
    my %st = %{ $r->{steps} || {} };
    my $show = sub { my $x = shift; diag($JSON->encode($x->{error} || $x)) };

    my $d = $st{discovery} || {};
    ok($d->{ok}, 'openid-client: discovery from the issuer') or $show->($d);
    my $m = $d->{metadata} || {};
    is($m->{issuer}, $issuer, 'openid-client: discovered issuer');
    is($m->{token_endpoint}, "$issuer/protocol/openid-connect/token", 'openid-client: discovered token endpoint');
    is($m->{authorization_endpoint}, "http://127.0.0.1:$port{oidc}/api/v1/authorize",
       'openid-client: discovered authorization endpoint');
    ok($d->{supportsPKCE}, 'openid-client: the server supports PKCE (S256)');

    for my $how (qw(client_secret_basic client_secret_post)) {
        my $x = $st{"client_credentials_$how"} || {};
        ok($x->{ok}, "openid-client: client_credentials with $how") or $show->($x);
        is_deeply($x->{members}, [qw(access_token expires_in token_type)],
                  "openid-client: client_credentials ($how): access_token, expires_in, token_type");
        is(lc($x->{token_type} // ''), 'bearer', "openid-client: client_credentials ($how): Bearer");
        is((($x->{verified} || {})->{payload} || {})->{sub}, 'app-bcrypt',
           "openid-client: client_credentials ($how): jose verifies the access token");
        record_token($x->{access_token});
    }
    {
        my $x = $st{client_credentials_wrong_secret} || {};
        ok(!$x->{ok}, 'openid-client: a wrong client secret fails');
        my $e = $x->{error} || {};
        is($e->{status}, 401, 'openid-client: wrong client secret: status 401');
        is_deeply($e->{cause}, [{ scheme => 'basic', parameters => { realm => 'runai-token' } }],
                  'openid-client: wrong client secret: the Basic challenge is parsed') or $show->($x);
    }
    {
        my $x = $st{authorization_code} || {};
        ok($x->{ok}, 'openid-client: authorization code flow with PKCE, end to end') or $show->($x);
        is($x->{authorize_status}, 302, 'openid-client: the authorize endpoint redirects after the Basic login');
        like($x->{location} // '', qr/^\Q$redirect\E\?code=[A-Za-z0-9_-]+&state=/, 'openid-client: Location has code and state');
        my $u = URI->new($x->{authorization_url} // '');
        my %q = $u->query_form;
        is($q{code_challenge_method}, 'S256', 'openid-client: authorization URL uses S256');
        is($q{client_id}, 'runai-web', 'openid-client: authorization URL names the client');
        is_deeply($x->{members}, [qw(access_token expires_in id_token refresh_token token_type)],
                  'openid-client: authorization code: access, id and refresh tokens');
        my $c = $x->{id_claims} || {};
        is($c->{sub}, 'alice', 'openid-client: id token sub');
        is($c->{aud}, 'runai-web', 'openid-client: id token aud is the client');
        is($c->{iss}, $issuer, 'openid-client: id token iss');
        ok($c->{nonce}, 'openid-client: id token carries the nonce it checked');
        is((($x->{verified} || {})->{payload} || {})->{sub}, 'alice', 'openid-client: jose verifies the access token');
        my $rf = $x->{refreshed} || {};
        ok($rf->{new_refresh_token}, 'openid-client: refresh grant rotates the refresh token');
        is(($rf->{id_claims} || {})->{auth_time}, $c->{auth_time}, 'openid-client: refreshed id token keeps auth_time');
        is((($rf->{verified} || {})->{payload} || {})->{sub}, 'alice', 'openid-client: refreshed access token verifies');
        record_token($_) for grep { defined } $x->{access_token}, $x->{id_token}, $rf->{access_token}, $rf->{id_token};
        # and the same tokens through the other verifiers
        if ($x->{id_token}) {
            my($claims, $err) = verify_crypt_jwt($x->{id_token}, 'rsa', 'RS256', aud => 'runai-web', iss => $issuer);
            ok($claims, 'Crypt::JWT verifies the id token openid-client received') or diag($err);
            my(undef, $py) = pyjwt_run(['id token of the code flow', $x->{id_token}, 'oidc', $issuer,
                                        'runai-web', 'RS256']);
            ok(($py || {})->{claims}, 'PyJWKClient verifies the id token openid-client received')
                or diag(($py || {})->{error});
        }
    }
    {
        my $x = $st{authorization_code_replayed} || {};
        ok(!$x->{ok}, 'openid-client: a replayed code fails');
        my $e = $x->{error} || {};
        is($e->{error}, 'invalid_grant', 'openid-client: replayed code: invalid_grant') or $show->($x);
        is($e->{status}, 400, 'openid-client: replayed code: status 400');
    }
    {
        my $x = $st{password} || {};
        ok($x->{ok}, 'openid-client: password grant as the public client runai-cli') or $show->($x);
        is(($x->{id_claims} || {})->{aud}, 'runai-cli', 'openid-client: password: id token aud runai-cli');
        is((($x->{verified} || {})->{payload} || {})->{sub}, 'alice', 'openid-client: password: access token verifies');
        record_token($_) for grep { defined } $x->{access_token}, $x->{id_token};
        my $w = $st{password_wrong} || {};
        ok(!$w->{ok}, 'openid-client: a wrong password fails');
        is(($w->{error} || {})->{error}, 'invalid_grant', 'openid-client: wrong password: invalid_grant') or $show->($w);
    }
}
else {
    fail('the npm conformance clients did not run: run `npm ci --prefix t/node` (needs node and npm)');
}

done_testing();

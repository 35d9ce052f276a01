# The bearer guard: AuthType RunaiToken on static locations. Tokens the
# module issued (RS256 and ES256) and tokens signed here with the fixture
# keys (so that exp, nbf, iat, iss, aud, kid and alg are ours to choose) are
# accepted or refused; REMOTE_USER, RunaiTokenUserClaim, the RUNAI_TOKEN_*
# exports (seen through mod_headers), Require runai-claim, RunaiTokenLeeway
# and RunaiTokenAudience per location; the challenges of RFC 6750: 401
# invalid_token for a missing or bad token, 403 insufficient_scope when a
# Require refuses a valid one.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Crypt::PK::RSA ();
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use MIME::Base64 qw(encode_base64 encode_base64url decode_base64url);
use Time::HiRes qw(sleep);
use RunaiTest;

my $s = secrets();
my $port = Apache::Test::vars('oidc_port');
my $issuer = "http://127.0.0.1:$port/auth/realms/runai";
my $JSON = JSON::PP->new->canonical;
my %kid = map { $_ => thumbprint($_) } qw(rsa rsa2 ec256 ec521 hmac);
my $invalid = qr/^Bearer realm="runai guard", error="invalid_token"$/;

# --- tokens -------------------------------------------------------------------

# forge(header => {...}, claims => {...}, how => ALG, key => FIXTURE|BYTES)
sub forge {
    my %o = @_;
    my $tok = forge_jwt($o{header}, $o{claims}, $o{how}, $o{key});
    record_token($tok);
    return $tok;
}

# Claims the oidc host accepts, with overrides; undef values delete a claim.
sub claims {
    my %over = @_;
    my $now = time;
    my %c = (iss => $issuer, sub => 'svc-forged', aud => 'runai', iat => $now + 0, exp => $now + 300);
    for my $k (keys %over) {
        if (defined $over{$k}) { $c{$k} = $over{$k} } else { delete $c{$k} }
    }
    return \%c;
}

sub rs256 { forge(header => { alg => 'RS256', typ => 'JWT', kid => $kid{rsa} }, claims => claims(@_),
                  how => 'RS256', key => 'rsa.pem') }
sub es256 { forge(header => { alg => 'ES256', typ => 'JWT', kid => $kid{ec256} }, claims => claims(@_),
                  how => 'ES256', key => 'ec256.pem') }

sub module_tokens {
    my($vhost, $user) = @_;
    my $res = token_request({ grantType => 'password', username => $user, password => $s->{users}{$user},
                              clientID => 'runai-cli' }, vhost => $vhost);
    is($res->code, 200, "$vhost: password grant for $user") or diag($res->content);
    my $b = response_json($res) || {};
    record_token($_) for grep { defined } values %$b;
    return $b;
}

# --- requests -----------------------------------------------------------------

sub guard {
    my($path, $token, %a) = @_;
    my @h = defined $token ? (Authorization => ($a{scheme} // 'Bearer') . " $token") : ();
    return http(GET => $path, vhost => $a{vhost} // 'oidc', headers => \@h);
}

sub accepted {
    my($path, $token, $name, %a) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = guard($path, $token, %a);
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    return $res;
}

sub refused {
    my($path, $token, $name, %a) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = guard($path, $token, %a);
    is($res->code, 401, "$name: 401") or diag($res->as_string);
    like($res->header('WWW-Authenticate') // '', $a{challenge} // $invalid,
         "$name: WWW-Authenticate " . ($a{challenge} ? 'Bearer' : 'Bearer error="invalid_token"'));
    ok(!defined $res->header('X-Runai-User'), "$name: nothing exported");
    return $res;
}

# --- accepted: the module's own tokens ----------------------------------------
my $alice = module_tokens(oidc => 'alice');
my $bob = module_tokens(oidc => 'bob');
my $alice_es = module_tokens(oidcnext => 'alice');
{
    my(undef, $c) = jwt_parts($alice->{accessToken});
    my $res = accepted('/guard/', $alice->{accessToken}, 'RS256 access token of the module');
    is($res->content, do { open my $fh, '<', catfile(Apache::Test::vars('documentroot'), 'index.html'); local $/; <$fh> },
       'the guarded file is served');
    my %want = (
        'X-Runai-User' => 'alice', 'X-Runai-Auth-Type' => 'RunaiToken',
        'X-Runai-Sub' => 'alice', 'X-Runai-Iss' => $issuer, 'X-Runai-Aud' => 'runai,kube-apiserver',
        'X-Runai-Exp' => $c->{exp}, 'X-Runai-Azp' => 'runai-cli',
        'X-Runai-Preferred-Username' => 'alice', 'X-Runai-Email' => 'alice@example.com',
        'X-Runai-Groups' => 'alice-team,devs,ops', 'X-Runai-Uid' => '1000', 'X-Runai-Admin' => 'true',
        'X-Runai-X-Tenant' => 'acme',
    );
    for my $h (sort keys %want) {
        is($res->header($h), $want{$h}, "RS256 access token: $h");
    }
    my($eh) = jwt_parts($alice_es->{accessToken});
    is(($eh || {})->{alg}, 'ES256', 'the oidcnext host signs ES256');
    $res = accepted('/guard/', $alice_es->{accessToken}, 'ES256 access token of the module');
    is($res->header('X-Runai-User'), 'alice', 'ES256 access token: REMOTE_USER');
    is($res->header('X-Runai-Groups'), 'alice-team,devs,ops', 'ES256 access token: groups');
    accepted('/guard/', $alice_es->{accessToken}, 'ES256 access token at its own host', vhost => 'oidcnext');

    # the id token's aud is the client: not an audience of the guard
    refused('/guard/', $alice->{idToken}, 'id token (aud runai-cli)');

    $res = accepted('/guard/username', $alice->{accessToken}, 'RunaiTokenUserClaim preferred_username');
    is($res->header('X-Runai-User'), 'alice', 'RunaiTokenUserClaim preferred_username: REMOTE_USER');
    $res = accepted('/guard/by-email', $alice->{accessToken}, 'RunaiTokenUserClaim email');
    is($res->header('X-Runai-User'), 'alice@example.com', 'RunaiTokenUserClaim email: REMOTE_USER');
    accepted('/guard/kube', $alice->{accessToken}, 'RunaiTokenAudience kube-apiserver, token for runai and it');
    refused('/guard/other', $alice->{accessToken}, 'RunaiTokenAudience other-api');

    # an app token has no email: no user at a location that takes it from email
    my $app = token_request({ grantType => 'client_credentials', clientId => 'app-md5',
                              clientSecret => $s->{apps}{'app-md5'} }, vhost => 'oidc');
    my $app_token = (response_json($app) || {})->{accessToken};
    record_token($app_token);
    $res = accepted('/guard/', $app_token, 'app access token');
    is($res->header('X-Runai-User'), 'app-md5', 'app access token: REMOTE_USER is the app');
    refused('/guard/by-email', $app_token, 'RunaiTokenUserClaim email, token without email');

    # scheme name is case-insensitive (RFC 7235)
    accepted('/guard/', $alice->{accessToken}, 'scheme "bearer"', scheme => 'bearer');
    accepted('/guard/', $alice->{accessToken}, 'scheme "BEARER"', scheme => 'BEARER');
}

# --- accepted: tokens signed here ---------------------------------------------
{
    my $res = accepted('/guard/', rs256(sub => 'forged-rsa'), 'RS256 token signed with the fixture key');
    is($res->header('X-Runai-User'), 'forged-rsa', 'forged RS256: REMOTE_USER');
    $res = accepted('/guard/', es256(sub => 'forged-ec'), 'ES256 token signed with the second (EC) key');
    is($res->header('X-Runai-User'), 'forged-ec', 'forged ES256: REMOTE_USER');

    my $tok = rs256(sub => 'exporter', groups => ['a b', 'c'], mixed => [1, JSON::PP::true, 'x', 2.5],
                    ratio => 0.1, flag => JSON::PP::false, uid => 1000, admin => JSON::PP::true,
                    'dotted.name-1' => 'dots and dashes', 'x-tenant' => 'zeta',
                    aud => ['other-api', 'runai']);
    $res = accepted('/guard/', $tok, 'custom claims');
    my %want = ('X-Runai-Groups' => 'a b,c', 'X-Runai-Mixed' => '1,true,x,2.5', 'X-Runai-Ratio' => '0.1',
                'X-Runai-Flag' => 'false', 'X-Runai-Uid' => '1000', 'X-Runai-Admin' => 'true',
                'X-Runai-Dotted' => 'dots and dashes', 'X-Runai-X-Tenant' => 'zeta',
                'X-Runai-Aud' => 'other-api,runai');
    for my $h (sort keys %want) {
        is($res->header($h), $want{$h}, "custom claims: $h");
    }

    # leeway: default 30 s here, 0 at /guard/strict, 300 at /guard/lenient
    my $now = time;
    accepted('/guard/', rs256(exp => $now - 10), 'expired 10 s ago, within the 30 s leeway');
    refused('/guard/strict', rs256(exp => $now - 10), 'expired 10 s ago, leeway 0');
    refused('/guard/', rs256(exp => $now - 120), 'expired 120 s ago, leeway 30');
    accepted('/guard/lenient', rs256(exp => $now - 120), 'expired 120 s ago, leeway 300');
    refused('/guard/lenient', rs256(exp => $now - 600), 'expired 600 s ago, leeway 300');
    # The module remembers tokens whose signature verified; expiry is still
    # checked on every request.
    my $short = rs256(exp => time + 2, sub => 'svc-short');
    accepted('/guard/strict', $short, 'short-lived token while valid');
    accepted('/guard/strict', $short, 'short-lived token again (signature remembered)');
    sleep 3;
    refused('/guard/strict', $short, 'the same token once expired, although its signature verified before');
    accepted('/guard/', rs256(nbf => $now + 10), 'nbf 10 s ahead, within the leeway');
    refused('/guard/strict', rs256(nbf => $now + 10), 'nbf 10 s ahead, leeway 0');
    refused('/guard/', rs256(nbf => $now + 120), 'not yet valid (nbf 120 s ahead)');
    accepted('/guard/', rs256(nbf => $now - 5), 'nbf in the past');
    # iat: a token issued in the future beyond the leeway is refused
    accepted('/guard/', rs256(iat => $now + 10), 'iat 10 s ahead, within the leeway');
    refused('/guard/strict', rs256(iat => $now + 10), 'iat 10 s ahead, leeway 0');
    refused('/guard/', rs256(iat => $now + 120), 'issued in the future (iat 120 s ahead)');
    accepted('/guard/lenient', rs256(iat => $now + 120), 'iat 120 s ahead, leeway 300');
    refused('/guard/lenient', rs256(iat => $now + 600), 'iat 600 s ahead, leeway 300');
    accepted('/guard/strict', rs256(iat => $now - 5), 'iat in the past, leeway 0');
    accepted('/guard/strict', rs256(iat => undef), 'no iat (optional), leeway 0');

    # audience
    accepted('/guard/', rs256(aud => 'kube-apiserver'), 'aud kube-apiserver (one of the guard audiences)');
    accepted('/guard/kube', rs256(aud => 'kube-apiserver'), '/guard/kube: aud kube-apiserver');
    refused('/guard/kube', rs256(aud => 'runai'), '/guard/kube: aud runai');
    accepted('/guard/other', rs256(aud => ['x', 'other-api']), '/guard/other: aud array holding other-api');
}

# --- refused --------------------------------------------------------------------
{
    my $res = guard('/guard/', undef);
    is($res->code, 401, 'no Authorization header: 401');
    is($res->header('WWW-Authenticate'), 'Bearer realm="runai guard"',
       'no Authorization header: Bearer challenge without an error');
    $res = guard('/guard/', encode_base64('alice:' . $s->{users}{bob}, ''), scheme => 'Basic');
    is($res->code, 401, 'Basic credentials: 401');
    like($res->header('WWW-Authenticate') // '', qr/^Bearer realm="runai guard"/, 'Basic credentials: Bearer challenge');

    my $now = time;
    my $good = claims();
    my $rsa_h = { alg => 'RS256', typ => 'JWT', kid => $kid{rsa} };
    my @cases = (
        ['empty Bearer token', ''],
        ['alg none, RSA kid', forge(header => { alg => 'none', typ => 'JWT', kid => $kid{rsa} }, claims => $good, how => 'none')],
        ['alg none, no kid', forge(header => { alg => 'none', typ => 'JWT' }, claims => $good, how => 'none')],
        ['alg "None"', forge(header => { alg => 'None', kid => $kid{rsa} }, claims => $good, how => 'none')],
        ['alg none with an RS256 signature',
         do { my $t = rs256(); my($h, $p, $sg) = split /\./, $t;
              b64json({ alg => 'none', typ => 'JWT', kid => $kid{rsa} }) . ".$p.$sg" }],
        ['HS256 signed with the RSA public PEM, RSA kid',
         forge(header => { alg => 'HS256', typ => 'JWT', kid => $kid{rsa} }, claims => $good, how => 'HS256',
               key => fixture_bytes('rsa.pub.pem'))],
        ['HS256 signed with the RSA public PEM, no kid',
         forge(header => { alg => 'HS256', typ => 'JWT' }, claims => $good, how => 'HS256', key => fixture_bytes('rsa.pub.pem'))],
        ['HS256 signed with the EC public PEM, EC kid',
         forge(header => { alg => 'HS256', typ => 'JWT', kid => $kid{ec256} }, claims => $good, how => 'HS256',
               key => fixture_bytes('ec256.pub.pem'))],
        ['HS256 signed with the RSA JWK n, RSA kid',
         forge(header => { alg => 'HS256', typ => 'JWT', kid => $kid{rsa} }, claims => $good, how => 'HS256',
               key => Crypt::PK::RSA->new(fixture('rsa.pub.pem'))->export_key_jwk('public'))],
        ['RS384 with the RSA key (alg other than the key\'s)',
         forge(header => { alg => 'RS384', typ => 'JWT', kid => $kid{rsa} }, claims => $good, how => 'RS384', key => 'rsa.pem')],
        ['PS256 with the RSA key',
         forge(header => { alg => 'PS256', typ => 'JWT', kid => $kid{rsa} }, claims => $good, how => 'PS256', key => 'rsa.pem')],
        ['RS256 signature labelled ES256 with the RSA kid',
         forge(header => { alg => 'ES256', typ => 'JWT', kid => $kid{rsa} }, claims => $good, how => 'RS256', key => 'rsa.pem')],
        ['ES384 label on the P-256 key',
         forge(header => { alg => 'ES384', typ => 'JWT', kid => $kid{ec256} }, claims => $good, how => 'ES384', key => 'ec256.pem')],
        ['ES256 with a DER signature (not R||S)',
         forge(header => { alg => 'ES256', typ => 'JWT', kid => $kid{ec256} }, claims => $good, how => 'ES256-DER', key => 'ec256.pem')],
        ['RS256 by the RSA key labelled with the EC kid',
         forge(header => { alg => 'RS256', typ => 'JWT', kid => $kid{ec256} }, claims => $good, how => 'RS256', key => 'rsa.pem')],
        ['bad signature (one bit)', flip_signature(rs256())],
        ['bad signature (ES256, one bit)', flip_signature(es256())],
        ['signature of other claims', do { my($h, $p) = split /\./, rs256(sub => 'admin');
                                           my(undef, undef, $sg) = split /\./, rs256(sub => 'x'); "$h.$p.$sg" }],
        ['empty signature', do { my($h, $p) = split /\./, rs256(); "$h.$p." }],
        ['truncated signature', do { my $t = rs256(); substr($t, 0, -4) }],
        ['signed by an unlisted key with a listed kid',
         forge(header => $rsa_h, claims => $good, how => 'RS256', key => 'rsa2.pem')],
        ['unknown kid', forge(header => { %$rsa_h, kid => 'no-such-kid' }, claims => $good, how => 'RS256', key => 'rsa.pem')],
        ['kid of an unlisted key', forge(header => { %$rsa_h, kid => $kid{rsa2} }, claims => $good, how => 'RS256', key => 'rsa2.pem')],
        ['no kid with two keys', forge(header => { alg => 'RS256', typ => 'JWT' }, claims => $good, how => 'RS256', key => 'rsa.pem')],
        ['kid is a number', forge(header => { %$rsa_h, kid => 7 }, claims => $good, how => 'RS256', key => 'rsa.pem')],
        ['crit header', forge(header => { %$rsa_h, crit => ['exp'] }, claims => $good, how => 'RS256', key => 'rsa.pem')],
        ['expired', rs256(exp => $now - 3600)],
        ['not yet valid', rs256(nbf => $now + 3600)],
        ['missing exp', rs256(exp => undef)],
        ['exp as a string', rs256(exp => '' . ($now + 300))],
        ['nbf as a string', rs256(nbf => '' . ($now - 300))],
        ['issued in the future', rs256(iat => $now + 3600)],
        ['iat as a string', rs256(iat => '' . ($now - 300))],
        ['wrong issuer', rs256(iss => 'https://idp.example.test/auth/realms/runai')],
        ['issuer with a trailing slash', rs256(iss => "$issuer/")],
        ['issuer of another realm', rs256(iss => "http://127.0.0.1:$port/auth/realms/other")],
        ['missing iss', rs256(iss => undef)],
        ['wrong audience', rs256(aud => 'other-api')],
        ['wrong audiences (array)', rs256(aud => ['other-api', 'runai-cli'])],
        ['empty audience array', rs256(aud => [])],
        ['audience in other case', rs256(aud => 'RUNAI')],
        ['missing aud', rs256(aud => undef)],
        ['no sub (the user claim)', rs256(sub => undef)],
        ['empty sub', rs256(sub => '')],
        ['sub is a number', rs256(sub => 42)],
        ['two segments', do { my($h, $p) = split /\./, rs256(); "$h.$p" }],
        ['four segments', rs256() . '.x'],
        ['five segments (JWE shape)', join('.', map { encode_base64url("part$_") } 1 .. 5)],
        ['one segment', encode_base64url('{"alg":"RS256"}')],
        ['header not base64url', do { my($h, $p, $sg) = split /\./, rs256(); "$h*.$p.$sg" }],
        ['padded segments', do { my($h, $p, $sg) = split /\./, rs256(); "$h==.$p.$sg" }],
        ['header not JSON', do { my(undef, $p, $sg) = split /\./, rs256(); encode_base64url('not json') . ".$p.$sg" }],
        ['header a JSON array', do { my(undef, $p, $sg) = split /\./, rs256(); encode_base64url('["RS256"]') . ".$p.$sg" }],
        ['claims not JSON', forge(header => $rsa_h, claims => 'not json', how => 'RS256', key => 'rsa.pem')],
        ['claims a JSON array', forge(header => $rsa_h, claims => '[1,2]', how => 'RS256', key => 'rsa.pem')],
        ['duplicate claim (two iss)', forge(header => $rsa_h, how => 'RS256', key => 'rsa.pem',
            claims => '{"iss":"https://evil.example.test","iss":' . $JSON->encode($issuer) . ',"sub":"dup","aud":"runai","exp":' . ($now + 300) . '}')],
        ['a token that is not a JWT', 'abc'],
    );
    for my $case (@cases) {
        my($what, $tok) = @$case;
        refused('/guard/', $tok, $what);
    }

    # one key only (oidcsolo): an HS256 token without kid meets the RSA key
    my $solo = qr/^Bearer realm="runai solo", error="invalid_token"$/;
    my $solo_claims = claims(iss => 'https://oidcsolo.example.test');
    refused('/guard/', forge(header => { alg => 'HS256', typ => 'JWT' }, claims => $solo_claims, how => 'HS256',
                             key => fixture_bytes('rsa2.pub.pem')),
            'single key: HS256 signed with its public PEM, no kid', vhost => 'oidcsolo', challenge => $solo);
    refused('/guard/', forge(header => { alg => 'none' }, claims => $solo_claims, how => 'none'),
            'single key: alg none, no kid', vhost => 'oidcsolo', challenge => $solo);

    # an HMAC key among public keys (oidcmix): it verifies its own HS256
    # tokens, and the public keys' tokens cannot be turned into HS256
    my $mix = qr/^Bearer realm="runai mix", error="invalid_token"$/;
    my $mix_claims = claims(iss => 'https://oidcmix.example.test/realm');
    my $hmac = key_info('hmac')->{key};
    $res = accepted('/guard/', forge(header => { alg => 'HS256', typ => 'JWT', kid => $kid{hmac} },
                                        claims => $mix_claims, how => 'HS256', key => $hmac),
                       'HS256 token with the HMAC key and its kid', vhost => 'oidcmix');
    is($res->header('X-Runai-User'), 'svc-forged', 'HS256 token: REMOTE_USER');
    accepted('/guard/', forge(header => { alg => 'ES512', typ => 'JWT', kid => 'mix-es512' }, claims => $mix_claims,
                              how => 'ES512', key => 'ec521.pem'),
             'ES512 token of the verify-only P-521 key', vhost => 'oidcmix');
    for my $case (
        ['HS256 with the RSA public PEM, RSA kid', { alg => 'HS256', kid => $kid{rsa2} }, fixture_bytes('rsa2.pub.pem')],
        ['HS256 with the EC public PEM, EC kid', { alg => 'HS256', kid => 'mix-es512' }, fixture_bytes('ec521.pub.pem')],
        ['HS256 with the HMAC key, RSA kid', { alg => 'HS256', kid => $kid{rsa2} }, $hmac],
    ) {
        my($what, $h, $key) = @$case;
        refused('/guard/', forge(header => $h, claims => $mix_claims, how => 'HS256', key => $key),
                "mixed keys: $what", vhost => 'oidcmix', challenge => $mix);
    }
    refused('/guard/', forge(header => { alg => 'RS256', kid => $kid{hmac} }, claims => $mix_claims,
                             how => 'RS256', key => 'rsa2.pem'),
            'mixed keys: RS256 labelled with the HMAC kid', vhost => 'oidcmix', challenge => $mix);
}

# --- Require runai-claim, and other Require lines -----------------------------
# A valid token that a Require refuses: 403 with error="insufficient_scope"
# (RFC 6750 section 3.1), without AuthzSendForbiddenOnFailure; a new token
# for the same user would not help, so no 401 that makes clients refresh.
sub forbidden {
    my($path, $token, $name, %a) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = guard($path, $token, %a);
    is($res->code, 403, "$name: 403") or diag($res->as_string);
    is($res->header('WWW-Authenticate') // '', 'Bearer realm="runai guard", error="insufficient_scope"',
       "$name: WWW-Authenticate Bearer error=\"insufficient_scope\"");
    ok(!defined $res->header('X-Runai-User'), "$name: nothing exported");
    return $res;
}

{
    accepted('/guard/team', $alice->{accessToken}, 'runai-claim groups: array holding alice-team');
    forbidden('/guard/team', $bob->{accessToken}, 'runai-claim groups: bob is not in alice-team');
    accepted('/guard/team', rs256(groups => 'platform-admins'), 'runai-claim groups: a string equal to a value');
    accepted('/guard/team', rs256(groups => ['x', 'platform-admins']), 'runai-claim groups: second value in an array');
    forbidden('/guard/team', rs256(groups => ['platform-admin', 'Alice-team']), 'runai-claim groups: near misses');
    forbidden('/guard/team', rs256(groups => undef), 'runai-claim groups: no such claim');
    accepted('/guard/uid', $alice->{accessToken}, 'runai-claim uid: the number 1000');
    accepted('/guard/uid', rs256(uid => '1000'), 'runai-claim uid: the string "1000"');
    forbidden('/guard/uid', rs256(uid => 1001), 'runai-claim uid: 1001');
    accepted('/guard/named', $bob->{accessToken}, 'runai-claim preferred_username: bob');
    forbidden('/guard/named', $alice->{accessToken}, 'runai-claim preferred_username: alice');
    # a fresh token of the same user is refused the same way: nothing to retry
    my $again = module_tokens(oidc => 'bob');
    forbidden('/guard/team', $again->{accessToken}, 'runai-claim groups: bob again, with a new token');

    # the same for a plain Require user, and within <RequireAny>/<RequireAll>
    accepted('/guard/only-bob', $bob->{accessToken}, 'Require user bob: bob');
    forbidden('/guard/only-bob', $alice->{accessToken}, 'Require user bob: alice');
    forbidden('/guard/only-bob', $alice_es->{accessToken}, 'Require user bob: alice, ES256 token');
    accepted('/guard/any', $bob->{accessToken}, 'RequireAny (claim or user bob): bob');
    accepted('/guard/any', rs256(groups => ['platform-admins']), 'RequireAny (claim or user bob): the claim');
    forbidden('/guard/any', $alice->{accessToken}, 'RequireAny (claim or user bob): alice');
    accepted('/guard/all', $alice->{accessToken}, 'RequireAll (method GET and uid 1000): alice');
    forbidden('/guard/all', rs256(uid => 7), 'RequireAll (method GET and uid 1000): uid 7');
    # a Require that refuses whoever the user is: Apache's plain 403, before
    # any token is looked at
    my $res = http(POST => '/guard/all', vhost => 'oidc', body => '',
                   headers => [Authorization => "Bearer $alice->{accessToken}"]);
    is($res->code, 403, 'RequireAll with Require method GET, a POST: 403');
    ok(!defined $res->header('WWW-Authenticate'), 'RequireAll with Require method GET, a POST: no challenge');
    # AuthzSendForbiddenOnFailure On changes nothing but is harmless
    accepted('/guard/team-forbid', $alice->{accessToken}, 'AuthzSendForbiddenOnFailure On: alice');
    forbidden('/guard/team-forbid', $bob->{accessToken}, 'AuthzSendForbiddenOnFailure On: bob');

    # missing and invalid tokens keep their 401 at every authz-protected location
    for my $path (qw(/guard/team /guard/only-bob /guard/any /guard/all /guard/team-forbid)) {
        refused($path, flip_signature($alice->{accessToken}), "$path: bad signature");
        refused($path, rs256(exp => time - 3600, groups => 'platform-admins', uid => 1000, sub => 'bob'),
                "$path: expired token that would be granted");
        my $res = guard($path, undef);
        is($res->code, 401, "$path without a token: 401");
        is($res->header('WWW-Authenticate'), 'Bearer realm="runai guard"', "$path without a token: challenge");
    }
}

# --- the refusals are logged at info, without the token -----------------------
{
    sleep 0.3;    # the log line is written when the request ends
    my $log = do {
        open my $fh, '<:raw', catfile(Apache::Test::vars('t_logs'), 'error_log') or die "error_log: $!";
        local $/;
        <$fh> // '';
    };
    my @lines = grep { /\[runai_token:info\].*bearer token refused: \S/ } split /\n/, $log;
    cmp_ok(scalar @lines, '>=', 50, 'refused bearer tokens are logged at info ("bearer token refused: <reason>")');
    for my $reason (qw(expired), 'not yet valid', 'issued in the future', 'bad signature', 'wrong issuer', 'wrong audience') {
        ok((grep { /bearer token refused: .*\Q$reason\E/i } @lines), "a refusal is logged with reason '$reason'");
    }
}

done_testing();

# Tokens of every signing-key type, verified by three independent verifiers:
# Crypt::JWT (perl), t/bin/jwt_verify (libjwt) and PyJWT (/usr/bin/python3).
# A token with one flipped signature bit must fail each of them, and so must
# a token checked against another key.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use MIME::Base64 qw(encode_base64url);
use RunaiTest;

my $s = secrets();
my %jti;

my @hosts = (
    { vhost => 'main', alg => 'RS256', key => 'rsa', other => 'rsa2', sig => 256,
      kid => thumbprint('rsa'), iss => qr{^https://localhost(:\d+)?$}, aud => 'runai',
      lifetime => 3600 },
    { vhost => 'es256', alg => 'ES256', key => 'ec256', other => 'ec384', sig => 64,
      kid => thumbprint('ec256'), iss => 'https://idp.example.test/auth/realms/es256',
      aud => [qw(runai kube-apiserver)], lifetime => 600 },
    { vhost => 'es384', alg => 'ES384', key => 'ec384', other => 'ec521', sig => 96,
      kid => 'es384-explicit-kid', iss => 'http://127.0.0.1:8080', aud => 'api',
      lifetime => 3600 },
    { vhost => 'es512', alg => 'ES512', key => 'ec521', other => 'ec256', sig => 132,
      kid => thumbprint('ec521'), iss => 'https://es512.example.test', aud => 'runai',
      lifetime => 3600 },
    { vhost => 'hs256', alg => 'HS256', key => 'hmac', other => 'rsa', sig => 32,
      kid => thumbprint('hmac'), iss => 'https://hs256.example.test/realm', aud => 'runai',
      lifetime => 31536000 },
);

# the verifiers can fail: an unsigned token and a token signed by the suite
# with another key are refused by each of them
{
    my $none = encode_base64url('{"alg":"none","typ":"JWT"}') . '.'
        . encode_base64url('{"sub":"x","aud":"runai","iss":"https://localhost","exp":9999999999,"iat":1}') . '.';
    ok(!(verify_crypt_jwt($none, 'rsa', 'RS256'))[0], 'Crypt::JWT refuses alg none');
    ok(!(verify_libjwt($none, 'rsa'))[0], 'jwt_verify refuses alg none');
    ok(!(verify_pyjwt($none, 'rsa', 'RS256', aud => 'runai', iss => 'https://localhost'))[0],
       'PyJWT refuses alg none');
}

# PyJWT jobs: [name, must verify, verify_pyjwt arguments], run in one batch
my @py;

for my $h (@hosts) {
    my $v = $h->{vhost};
    my %common = (alg => $h->{alg}, kid => $h->{kid}, jti => \%jti,
                  (ref $h->{iss} ? (iss_re => $h->{iss}) : (iss => $h->{iss})));
    my $app = 'app-bcrypt';

    my $res = token_request({ appID => $app, appSecret => $s->{apps}{$app} }, vhost => $v);
    check_success_headers($res, "$v app_token");
    my $access = (response_json($res) || {})->{accessToken};
    my $c = check_token_basics($access, name => "$v app_token", %common, sub => $app,
                               aud => $h->{aud}, lifetime => $h->{lifetime});
    my $iss = $c->{iss} // '';

    $res = token_request({ grantType => 'password', username => 'alice',
                           password => $s->{users}{alice}, clientID => 'cli' }, vhost => $v);
    check_success_headers($res, "$v password");
    my $body = response_json($res) || {};
    check_token_basics($body->{accessToken}, name => "$v password access", %common,
                       sub => 'alice', aud => $h->{aud}, lifetime => $h->{lifetime});
    check_token_basics($body->{idToken}, name => "$v password id", %common, jti => undef,
                       sub => 'alice', aud => 'cli');

    my @tokens = (["app_token", $access, $h->{aud}],
                  ["password access", $body->{accessToken}, $h->{aud}],
                  ["password id", $body->{idToken}, 'cli']);
    for my $t (@tokens) {
        my($what, $token, $aud) = @$t;
        my $name = "$v $what";
        my(undef, undef, undef, undef, $sig) = jwt_parts($token);
        is(length($sig // ''), $h->{sig}, "$name: signature of $h->{sig} bytes"
           . ($h->{alg} =~ /^ES/ ? ' (raw R||S)' : ''));
        my $one_aud = ref $aud ? $aud->[-1] : $aud;

        my($claims, $err) = verify_crypt_jwt($token, $h->{key}, $h->{alg},
                                             aud => $one_aud, iss => $iss);
        ok($claims, "$name: Crypt::JWT verifies") or diag($err);
        my $alg;
        ($claims, $err, $alg) = verify_libjwt($token, $h->{key});
        ok($claims, "$name: jwt_verify (libjwt) verifies") or diag($err);
        is($alg, $h->{alg}, "$name: jwt_verify reports $h->{alg}");
        is(($claims || {})->{sub}, ($what =~ /^app/ ? $app : 'alice'), "$name: libjwt reads sub");
        push @py, [$name, 1, [$token, $h->{key}, $h->{alg}, aud => $aud, iss => $iss]];

        my $bad = flip_signature($token);
        isnt($bad, $token, "$name: one signature bit flipped");
        ok(!(verify_crypt_jwt($bad, $h->{key}, $h->{alg}, aud => $one_aud))[0],
           "$name: Crypt::JWT refuses the flipped signature");
        ok(!(verify_libjwt($bad, $h->{key}))[0], "$name: jwt_verify refuses the flipped signature");
        push @py, ["$name, flipped signature", 0,
                   [$bad, $h->{key}, $h->{alg}, aud => $aud, iss => $iss]];

        ok(!(verify_crypt_jwt($token, $h->{other}, $h->{alg}, aud => $one_aud))[0],
           "$name: Crypt::JWT refuses it with another key ($h->{other})");
        ok(!(verify_libjwt($token, $h->{other}))[0],
           "$name: jwt_verify refuses it with another key ($h->{other})");
        push @py, ["$name, other key $h->{other}", 0,
                   [$token, $h->{other}, $h->{alg}, aud => $aud, iss => $iss]];
    }
}

my @results = verify_pyjwt_batch(map { $_->[2] } @py);
is(scalar @results, scalar @py, 'PyJWT answered every job');
for my $i (0 .. $#py) {
    my($name, $good, $job) = @{ $py[$i] };
    my($claims, $err) = @{ $results[$i] || [] };
    if ($good) {
        ok($claims, "$name: PyJWT verifies") or diag($err);
        is_deeply($claims, (jwt_parts($job->[0]))[1], "$name: PyJWT reads the same claims");
    }
    else {
        ok(!$claims && $err, "$name: PyJWT refuses it") or diag("PyJWT accepted $name");
    }
}

# main signs with its first key only: the second (verify-only) key neither
# names nor verifies its tokens
{
    my $res = token_request({ appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} });
    my $token = (response_json($res) || {})->{accessToken};
    my($header) = jwt_parts($token);
    record_token($token);
    isnt(($header || {})->{kid}, 'rotated-rsa-key', 'main: the verify-only key does not sign');
    is(($header || {})->{kid}, thumbprint('rsa'), 'main: kid is the first key\'s thumbprint');
    ok(!(verify_crypt_jwt($token, 'rsa2', 'RS256'))[0], 'main: the second key does not verify it');
}

done_testing();

# The password grant: bcrypt and apr1 entries, the AuthnProviderAlias chain
# (next provider only when the user is not found), wrong credentials, the
# access and id tokens and the configured claims of every type.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use RunaiTest;

my $s = secrets();
my %jti;
my $rsa_kid = thumbprint('rsa');
my $default_iss = qr{^https://localhost(:\d+)?$};

sub password_grant {
    my($user, $password, %a) = @_;
    my $vhost = delete $a{vhost};
    return token_request({ grantType => 'password', username => $user, password => $password, %a },
                         ($vhost ? (vhost => $vhost) : ()));
}

# The claims the main vhost configures for users, with their JSON types.
sub check_user_claims {
    my($token, $user, $name) = @_;
    my(undef, $c) = jwt_parts($token);
    $c ||= {};
    my %type = map { $_ => json_type($c->{$_}) } keys %$c;
    my %want = (
        org       => [string => 'acme'],
        tier      => [string => 'location'],
        email     => [string => "$user\@example.com"],
        groups    => [array  => [qw(admins devs ops)]],
        uid       => [number => 1000],
        ratio     => [number => -2.5],
        tenant_id => [number => 1001],
        admin     => [bool   => 1],
        suspended => [bool   => 0],
        weird     => [string => 'a>b?c~d<e&f'],
        name      => [string => "Zo\x{eb} \x{dc}nal \x{2713}"],
    );
    for my $claim (sort keys %want) {
        my($jtype, $value) = @{ $want{$claim} };
        is($type{$claim} // 'absent', $jtype, "$name: $claim is a $jtype");
        if ($jtype eq 'bool') {
            ok(defined $c->{$claim} && ($c->{$claim} ? 1 : 0) == $value, "$name: $claim value");
        }
        else {
            is_deeply($c->{$claim}, $value, "$name: $claim value");
        }
    }
    for my $absent (qw(nothing badnumber badbool kind scopes quota)) {
        ok(!exists $c->{$absent}, "$name: no $absent claim");
    }
}

# --- the chain and both hash formats ---
my %file = (alice => 'primary, bcrypt', bob => 'primary, apr1', carol => 'secondary, bcrypt');
for my $user (sort keys %file) {
    my $name = "password $user ($file{$user})";
    my $res = password_grant($user, $s->{users}{$user});
    check_success_headers($res, $name);
    check_legacy_headers($res, $name, 0);
    my $body = response_json($res) || {};
    is_deeply([sort keys %$body], [qw(accessToken expiresIn idToken refreshToken)],
              "$name: body has accessToken, idToken, refreshToken, expiresIn");
    like($body->{refreshToken} // '', $REFRESH_TOKEN_RE,
         "$name: refresh token of the session format");
    is(json_type(response_json($res)->{expiresIn}), 'number', "$name: expiresIn is a number");
    is($body->{expiresIn}, 3600, "$name: expiresIn 3600");

    my $c = check_token_basics($body->{accessToken}, name => "$name access", alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => $user, aud => 'runai',
        lifetime => 3600, jti => \%jti);
    ok(!exists $c->{azp}, "$name access: no azp without clientID");
    is($c->{preferred_username}, $user, "$name access: preferred_username");
    check_user_claims($body->{accessToken}, $user, "$name access");

    my $id = check_token_basics($body->{idToken}, name => "$name id", alg => 'RS256',
        kid => $rsa_kid, iss => $c->{iss}, sub => $user, aud => 'runai');
    is($id->{auth_time}, $id->{iat}, "$name id: auth_time == iat");
    ok(!exists $id->{azp}, "$name id: no azp without clientID");
    is($id->{preferred_username}, $user, "$name id: preferred_username");
    check_user_claims($body->{idToken}, $user, "$name id");
}

# --- clientID (any casing) becomes azp and the id token's audience ---
for my $key (qw(clientID clientId CLIENTID)) {
    my $name = "password with $key";
    my $res = password_grant('bob', $s->{users}{bob}, $key => 'cli');
    check_success_headers($res, $name);
    my $body = response_json($res) || {};
    my $c = check_token_basics($body->{accessToken}, name => "$name access", alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => 'bob', aud => 'runai',
        lifetime => 3600, jti => \%jti);
    is($c->{azp}, 'cli', "$name access: azp is the client");
    my $id = check_token_basics($body->{idToken}, name => "$name id", alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => 'bob', aud => 'cli');
    is($id->{azp}, 'cli', "$name id: azp is the client");
    is($id->{auth_time}, $id->{iat}, "$name id: auth_time == iat");
}

# --- two audiences (es256: RunaiTokenAudience runai kube-apiserver, lifetime 600) ---
{
    my $iss = 'https://idp.example.test/auth/realms/es256';
    my $res = password_grant('alice', $s->{users}{alice}, vhost => 'es256');
    check_success_headers($res, 'es256 password');
    my $body = response_json($res) || {};
    is($body->{expiresIn}, 600, 'es256 password: expiresIn 600');
    my $c = check_token_basics($body->{accessToken}, name => 'es256 access', alg => 'ES256',
        iss => $iss, sub => 'alice', aud => [qw(runai kube-apiserver)], lifetime => 600,
        jti => \%jti);
    my $id = check_token_basics($body->{idToken}, name => 'es256 id', alg => 'ES256',
        iss => $iss, sub => 'alice', aud => [qw(runai kube-apiserver)]);
    ok(!exists $c->{email}, 'es256: no claims configured there');

    $res = password_grant('alice', $s->{users}{alice}, vhost => 'es256', clientID => 'cli');
    $body = response_json($res) || {};
    check_token_basics($body->{accessToken}, name => 'es256 access, clientID', alg => 'ES256',
        iss => $iss, sub => 'alice', aud => [qw(runai kube-apiserver)], lifetime => 600,
        jti => \%jti);
    check_token_basics($body->{idToken}, name => 'es256 id, clientID', alg => 'ES256',
        iss => $iss, sub => 'alice', aud => 'cli');
}

# --- wrong credentials: 401 and one body whatever was wrong ---
{
    my %bodies;
    for my $case (
        ['wrong password (bcrypt)',   'alice', $s->{wrong}],
        ['wrong password (apr1)',     'bob',   $s->{wrong}],
        ['wrong password (second file)', 'carol', $s->{wrong}],
        # alice is found in the first file: the second one is never asked
        ["alice with her second file's password", 'alice', $s->{alice_secondary}],
        ['password of another user',  'bob',   $s->{users}{alice}],
        ['unknown user',              'mallory', $s->{wrong}],
        ['unknown user, real password', 'mallory', $s->{users}{alice}],
        ['an app is no user',         'app-md5', $s->{apps}{'app-md5'}],
        ['user name in other case',   'Alice', $s->{users}{alice}],
        ['password truncated',        'alice', substr($s->{users}{alice}, 0, -1)],
    ) {
        my($name, $user, $pw) = @$case;
        my $res = password_grant($user, $pw);
        check_error($res, 401, qr/^invalid credentials$/, "password: $name");
        $bodies{$res->content}++;
    }
    is(scalar(keys %bodies), 1, 'password 401 bodies are byte-identical for unknown user and wrong password')
        or diag(join "\n", keys %bodies);

    # the same between the app and the password grant
    my $app = token_request({ appID => 'no-such-app', appSecret => $s->{wrong} });
    is($app->content, (keys %bodies)[0], 'app and password 401 bodies are identical');
}

# --- many tokens: every jti differs ---
{
    my %seen;
    my $n = 0;
    for my $i (1 .. 20) {
        my $body = response_json(password_grant('bob', $s->{users}{bob})) || {};
        for my $t (grep { defined } @$body{qw(accessToken idToken)}) {
            record_token($t);
            my(undef, $c) = jwt_parts($t);
            next unless $c && defined $c->{jti};
            $seen{$c->{jti}}++;
            $n++;
        }
    }
    cmp_ok($n, '>=', 20, 'jti collected from 20 grants');
    is(scalar(grep { $_ > 1 } values %seen), 0, 'no jti repeats across 20 grants');
}

done_testing();

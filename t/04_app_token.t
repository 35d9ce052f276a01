# The app_token grant (appID/appSecret and client_credentials), the legacy
# apptoken route, wrong credentials and grants disabled per location.
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
my @user_claims = qw(email groups uid ratio tenant_id admin suspended weird name org tier nothing);

# The app claims configured on the main server, with their JSON types.
sub check_app_claims {
    my($token, $app, $name) = @_;
    my(undef, $c) = jwt_parts($token);
    $c ||= {};
    my %type = map { $_ => json_type($c->{$_}) } keys %$c;
    is($type{kind}, 'string', "$name: kind is a string");
    is($c->{kind}, "service-$app", "$name: kind from %{REMOTE_USER}");
    is($type{scopes}, 'array', "$name: scopes is an array");
    is_deeply($c->{scopes}, [qw(read write)], "$name: scopes list");
    is($type{quota}, 'number', "$name: quota is a number");
    is($c->{quota}, 42, "$name: quota value");
    my @leaked = grep { exists $c->{$_} } @user_claims;
    is("@leaked", '', "$name: no user-token claims in an app token");
}

# --- app_token, bcrypt and apr1 entries ---
for my $app (sort keys %{ $s->{apps} }) {
    my $res = token_request({ grantType => 'app_token', appID => $app,
                              appSecret => $s->{apps}{$app} });
    check_success_headers($res, "app_token $app");
    my $body = response_json($res) || {};
    is_deeply([sort keys %$body], [qw(accessToken expiresIn)],
              "app_token $app: body has accessToken and expiresIn only");
    is(json_type(response_json($res)->{expiresIn}), 'number', "app_token $app: expiresIn is a number");
    is($body->{expiresIn}, 3600, "app_token $app: expiresIn 3600");
    my $c = check_token_basics($body->{accessToken}, name => "app_token $app", alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => $app, aud => 'runai',
        lifetime => 3600, jti => \%jti);
    is($c->{azp}, $app, "app_token $app: azp is the app");
    is($c->{preferred_username}, $app, "app_token $app: preferred_username is the app");
    check_app_claims($body->{accessToken}, $app, "app_token $app");

    my($v, $err) = verify_crypt_jwt($body->{accessToken}, 'rsa', 'RS256', aud => 'runai');
    ok($v, "app_token $app: Crypt::JWT verifies") or diag($err);
}

# --- client_credentials ---
{
    my $app = 'app-bcrypt';
    my $res = token_request({ grantType => 'client_credentials', clientId => $app,
                              clientSecret => $s->{apps}{$app} });
    check_success_headers($res, 'client_credentials');
    my $body = response_json($res) || {};
    is_deeply([sort keys %$body], [qw(accessToken expiresIn)], 'client_credentials: body keys');
    my $c = check_token_basics($body->{accessToken}, name => 'client_credentials', alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => $app, aud => 'runai',
        lifetime => 3600, jti => \%jti);
    is($c->{azp}, $app, 'client_credentials: azp is the app');
    check_app_claims($body->{accessToken}, $app, 'client_credentials');
}

# --- wrong credentials: 401, one body whatever was wrong ---
{
    my $app = 'app-bcrypt';
    my %bodies;
    for my $case (
        ['wrong secret (bcrypt)', { appID => 'app-bcrypt', appSecret => $s->{wrong} }],
        ['wrong secret (apr1)',   { appID => 'app-md5', appSecret => $s->{wrong} }],
        ['secret of the other app', { appID => 'app-md5', appSecret => $s->{apps}{'app-bcrypt'} }],
        ['secret in swapped case', { appID => $app, appSecret => $s->{apps}{$app} =~ tr/a-zA-Z/A-Za-z/r }],
        ['secret with a suffix',  { appID => $app, appSecret => $s->{apps}{$app} . ' ' }],
        ['unknown app',           { appID => 'no-such-app', appSecret => $s->{wrong} }],
        ['unknown app, real secret', { appID => 'no-such-app', appSecret => $s->{apps}{$app} }],
        ['a user is no app',      { appID => 'alice', appSecret => $s->{users}{alice} }],
        ['app ID in other case',  { appID => uc $app, appSecret => $s->{apps}{$app} }],
    ) {
        my($name, $data) = @$case;
        my $res = token_request($data);
        check_error($res, 401, qr/^invalid credentials$/, "app_token: $name");
        $bodies{$res->content}++;
        my $res2 = token_request({ grantType => 'client_credentials',
                                   clientId => $data->{appID}, clientSecret => $data->{appSecret} });
        check_error($res2, 401, qr/^invalid credentials$/, "client_credentials: $name");
        $bodies{$res2->content}++;
    }
    is(scalar(keys %bodies), 1, 'app 401 bodies are byte-identical for unknown app and wrong secret')
        or diag(join "\n", keys %bodies);

    my %legacy;
    for my $data ({ id => 'app-md5', name => 'x', secret => $s->{wrong} },
                  { id => 'no-such-app', name => 'x', secret => $s->{wrong} }) {
        my $res = post_json('/v1/k8s/auth/oauth/apptoken', json_bytes($data));
        check_error($res, 401, qr/^invalid credentials$/, "legacy apptoken: 401 for $data->{id}");
        $legacy{$res->content}++;
    }
    is(scalar(keys %legacy), 1, 'legacy 401 bodies are byte-identical');
}

# --- the legacy apptoken route ---
for my $app (sort keys %{ $s->{apps} }) {
    my $name = "legacy apptoken $app";
    my $res = post_json('/v1/k8s/auth/oauth/apptoken',
        json_bytes({ id => $app, name => 'any name, not checked', secret => $s->{apps}{$app} }));
    check_success_headers($res, $name);
    check_legacy_headers($res, $name, 1);
    my $body = response_json($res) || {};
    is_deeply([sort keys %$body], [qw(access_token id_token)], "$name: access_token and id_token only");

    my $c = check_token_basics($body->{access_token}, name => "$name access", alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => $app, aud => 'runai',
        lifetime => 3600, jti => \%jti);
    is($c->{azp}, $app, "$name access: azp");
    is($c->{preferred_username}, $app, "$name access: preferred_username");
    check_app_claims($body->{access_token}, $app, "$name access");

    my $id = check_token_basics($body->{id_token}, name => "$name id", alg => 'RS256',
        kid => $rsa_kid, iss_re => $default_iss, sub => $app, aud => $app);
    is($id->{auth_time}, $id->{iat}, "$name id: auth_time == iat");
    is($id->{azp}, $app, "$name id: azp");
    is($id->{preferred_username}, $app, "$name id: preferred_username");
    check_app_claims($body->{id_token}, $app, "$name id");
    my($v, $err) = verify_crypt_jwt($body->{id_token}, 'rsa', 'RS256', aud => $app);
    ok($v, "$name id: Crypt::JWT verifies") or diag($err);
}
{
    # the name is required but any value is accepted
    my $res = post_json('/v1/k8s/auth/oauth/apptoken',
        json_bytes({ ID => 'app-md5', Name => 'x', SECRET => $s->{apps}{'app-md5'} }));
    check_success_headers($res, 'legacy apptoken, keys in other casing');
    record_token($_) for grep { defined } values %{ response_json($res) || {} };
}

# --- grants disabled per location ---
my %full = (
    app_token => { grantType => 'app_token', appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} },
    implicit_app => { appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} },
    client_credentials => { grantType => 'client_credentials', clientId => 'app-md5',
                            clientSecret => $s->{apps}{'app-md5'} },
    password => { grantType => 'password', username => 'alice', password => $s->{users}{alice} },
);
my $legacy = json_bytes({ id => 'app-md5', name => 'x', secret => $s->{apps}{'app-md5'} });
for my $case ([passonly => [qw(app_token implicit_app client_credentials)], 1],
              [nogrant  => [qw(app_token implicit_app client_credentials password)], 1],
              [apponly  => [qw(password)], 0]) {
    my($vhost, $grants, $legacy_disabled) = @$case;
    for my $grant (@$grants) {
        check_error(token_request($full{$grant}, vhost => $vhost), 400,
                    qr/grant type not enabled/i, "$vhost: $grant disabled");
    }
    if ($legacy_disabled) {
        my $res = post_json('/v1/k8s/auth/oauth/apptoken', $legacy, vhost => $vhost);
        check_error($res, 400, qr/grant type not enabled/i, "$vhost: legacy apptoken disabled");
        check_legacy_headers($res, "$vhost: legacy apptoken disabled", 1);
    }
}
{
    my $res = token_request($full{app_token}, vhost => 'apponly');
    check_success_headers($res, 'apponly: app_token enabled');
    my $body = response_json($res) || {};
    check_token_basics($body->{accessToken}, name => 'apponly app_token', alg => 'RS256',
        kid => $rsa_kid, iss => 'https://apponly.example.test', sub => 'app-md5',
        aud => 'runai', lifetime => 1, jti => \%jti);
    my(undef, $c) = jwt_parts($body->{accessToken});
    ok(!exists(($c || {})->{kind}), 'apponly: the main server location claims do not apply');

    $res = post_json('/v1/k8s/auth/oauth/apptoken', $legacy, vhost => 'apponly');
    check_success_headers($res, 'apponly: legacy apptoken enabled');
    record_token($_) for grep { defined } values %{ response_json($res) || {} };

    $res = token_request($full{password}, vhost => 'passonly');
    check_success_headers($res, 'passonly: password enabled');
    record_token($_) for grep { defined } values %{ response_json($res) || {} };
}

# --- a provider that cannot answer: 503 with Retry-After, the detail only in the log ---
for my $case (['app_token', $full{app_token}], ['password', $full{password}]) {
    my($grant, $data) = @$case;
    my $res = token_request($data, vhost => 'broken');
    check_error($res, 503, qr/^the user directory is unavailable$/, "broken provider: $grant");
    is($res->header('Retry-After'), 5, "broken provider: $grant: Retry-After 5");
    unlike($res->content, qr/htpasswd|no-such-file|fixtures/,
           "broken provider: $grant: no detail in the answer");
}
{
    my $res = post_json('/v1/k8s/auth/oauth/apptoken', $legacy, vhost => 'broken');
    check_error($res, 503, qr/^the user directory is unavailable$/, 'broken provider: legacy apptoken');
    check_legacy_headers($res, 'broken provider: legacy apptoken', 1);
}

done_testing();

# Request rules of the Run:ai JSON dialect on POST /api/v1/token: media
# types, body limits, encoding, key casing, duplicates, field types, grant
# selection and required fields. Every refusal must be the Error body.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use RunaiTest;

my $s = secrets();
my $app = 'app-md5';
my $secret = $s->{apps}{$app};
my $app_body = json_bytes({ appID => $app, appSecret => $secret });

# A request that must be granted an app token for $app.
sub granted {
    my($res, $name, $sub) = @_;
    $sub //= $app;
    check_success_headers($res, $name);
    my $body = response_json($res) || {};
    my(undef, $claims) = jwt_parts($body->{accessToken});
    record_token($body->{accessToken});
    is($claims && $claims->{sub}, $sub, "$name: token for $sub");
}

# JSON text with keys in the given order (duplicates allowed).
sub obj {
    my @kv = @_;
    my @pairs;
    while (my($k, $v) = splice @kv, 0, 2) {
        push @pairs, json_bytes($k) . ':' . (ref $v eq 'SCALAR' ? $$v : json_bytes($v));
    }
    return '{' . join(',', @pairs) . '}';
}

# --- media types ---
granted(post_json('/api/v1/token', $app_body), 'application/json');
for my $type ('application/json; charset=utf-8', 'Application/JSON;charset=UTF-8',
              'APPLICATION/JSON') {
    granted(http(POST => '/api/v1/token', body => $app_body, type => $type), "type '$type'");
}
for my $type ('text/plain', 'text/plain; charset=utf-8',
              'multipart/form-data; boundary=x', 'application/jsonx', 'application/xml') {
    check_error(http(POST => '/api/v1/token', body => $app_body, type => $type), 415, undef,
                "type '$type'");
}
# A form body is the OAuth 2.0 dialect: Run:ai field names mean nothing
# there, so this is a request without grant_type, answered in RFC 6749 shape.
{
    my $res = http(POST => '/api/v1/token', body => "appID=$app&appSecret=x",
                   type => 'application/x-www-form-urlencoded');
    is($res->code, 400, 'form body with Run:ai names: 400');
    is_deeply(response_json($res), { error => 'invalid_request',
                                     error_description => "missing parameter 'grant_type'" },
              'form body with Run:ai names: OAuth error naming grant_type');
}
{
    my $res = raw_http('main', "POST /api/v1/token HTTP/1.1\r\nHost: localhost\r\n"
        . "Connection: close\r\nContent-Length: " . length($app_body) . "\r\n\r\n$app_body");
    granted($res, 'no Content-Type, JSON body');
}

# --- the Authorization header is ignored ---
for my $auth ('Bearer', 'Bearer ', 'Bearer not-a-token', 'Basic Zm9vOmJhcg==') {
    granted(post_json('/api/v1/token', $app_body, headers => [Authorization => $auth]),
            "Authorization: $auth");
}

# --- body size: main server 16384 (default), smallbody 256 ---
for my $case ([main => 16384], [smallbody => 256]) {
    my($vhost, $limit) = @$case;
    my $base = obj(appID => $app, appSecret => $secret, pad => '');
    my $pad = 'p' x ($limit - length $base);
    my $exact = obj(appID => $app, appSecret => $secret, pad => $pad);
    is(length $exact, $limit, "$vhost: padded body is exactly $limit bytes");
    granted(post_json('/api/v1/token', $exact, vhost => $vhost), "$vhost: body of exactly $limit bytes");
    my $over = obj(appID => $app, appSecret => $secret, pad => "${pad}p");
    check_error(post_json('/api/v1/token', $over, vhost => $vhost), 413, undef,
                "$vhost: body of $limit + 1 bytes");

    # chunked bodies: no Content-Length, the limit applies while reading
    my $chunked = sub {
        my $body = shift;
        my $half = int(length($body) / 2);
        my $req = "POST /api/v1/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        for my $part (substr($body, 0, $half), substr($body, $half)) {
            $req .= sprintf("%x\r\n%s\r\n", length $part, $part);
        }
        return raw_http($vhost, "${req}0\r\n\r\n");
    };
    granted($chunked->($app_body), "$vhost: chunked body under the limit");
    granted($chunked->($exact), "$vhost: chunked body of exactly $limit bytes");
    check_error($chunked->($over), 413, undef, "$vhost: chunked body of $limit + 1 bytes");
    check_error($chunked->($over . (' ' x (4 * $limit))), 413, undef,
                "$vhost: chunked body far over the limit");
}

# --- encoding and syntax ---
for my $case (
    ['invalid UTF-8 (0xff)',         qq({"appID":"$app\xff","appSecret":"x"})],
    ['overlong UTF-8 (0xc0 0xaf)',   qq({"appID":"\xc0\xaf","appSecret":"x"})],
    ['UTF-8 surrogate (ed a0 80)',   qq({"appID":"a","appSecret":"x","note":"\xed\xa0\x80"})],
    ['truncated UTF-8 sequence',     qq({"appID":"a","appSecret":"x\xe2\x82"})],
    ['invalid UTF-8 in unknown key', qq({"appID":"a","appSecret":"x","n\xfe":"y"})],
    ['raw NUL in a string',          qq({"appID":"a\x00b","appSecret":"x"})],
    ['raw NUL between tokens',       qq({"appID":"a",\x00"appSecret":"x"})],
    ['raw NUL after the object',     qq({"appID":"$app","appSecret":"$secret"}\x00)],
    ['\\u0000 in a known field',     qq({"appID":"a\\u0000b","appSecret":"x"})],
    ['\\u0000 in an unknown field',  qq({"appID":"$app","appSecret":"$secret","x":"\\u0000"})],
    ['\\u0000 in a key',             qq({"appID":"$app","appSecret":"$secret","x\\u0000":"y"})],
    ['truncated JSON',               qq({"appID":)],
    ['trailing garbage',             qq({"appID":"$app","appSecret":"$secret"} x)],
    ['two objects',                  qq({"appID":"$app","appSecret":"$secret"}{})],
    ['trailing comma',               qq({"appID":"$app","appSecret":"$secret",})],
    ['single quotes',                qq({'appID':'$app','appSecret':'$secret'})],
    ['bare word',                    qq(appID)],
    ['array',                        qq([{"appID":"$app","appSecret":"$secret"}])],
    ['empty array',                  qq([])],
    ['string',                       qq("appID")],
    ['number',                       qq(42)],
    ['null',                         qq(null)],
    ['true',                         qq(true)],
    ['whitespace only',              qq( \r\n\t )],
) {
    my($name, $body) = @$case;
    check_error(post_json('/api/v1/token', $body), 400, undef, $name);
}
check_error(http(POST => '/api/v1/token', body => '', type => 'application/json'), 400, undef,
            'empty body (Content-Length: 0)');
check_error(raw_http('main', "POST /api/v1/token HTTP/1.1\r\nHost: localhost\r\n"
                . "Connection: close\r\nContent-Type: application/json\r\n\r\n"),
            400, undef, 'no body at all');

# escapes are decoded before the credentials are checked
{
    my $user = 'alice';
    my $pw = $s->{users}{$user};
    my $escaped = JSON::PP->new->ascii->encode($pw) =~ s{/}{\\/}gr;   # \u00e9, \u2713, \/
    like($escaped, qr/\\u00e9/, 'password sent with \u escapes');
    my $res = post_json('/api/v1/token',
        '{"grantType":"password","username":"al\u0069ce","password":' . $escaped . '}');
    check_success_headers($res, 'escaped username and password');
    record_token($_) for grep { defined } values %{ response_json($res) || {} };
}

# --- key casing ---
for my $keys (['appID', 'appSecret'], ['AppId', 'AppSecret'], ['appId', 'appsecret'],
              ['appid', 'APPSECRET'], ['APPID', 'AppSECRET']) {
    my($id, $sec) = @$keys;
    granted(post_json('/api/v1/token', obj($id => $app, $sec => $secret)), "keys $id/$sec");
}
granted(post_json('/api/v1/token',
        obj(GrantType => 'app_token', AppID => $app, appSECRET => $secret)), 'GrantType casing');
granted(post_json('/api/v1/token',
        obj(appID => $app, appSecret => $secret, unknown => 1, other => { a => [1] })),
        'unknown keys are ignored');

# --- duplicates, in any casing, also of unknown keys ---
for my $case (
    ['appID twice',              [appID => $app, appID => $app, appSecret => $secret]],
    ['appID and appid',          [appID => $app, appid => $app, appSecret => $secret]],
    ['AppSecret and appSecret',  [appID => $app, AppSecret => $secret, appSecret => $secret]],
    ['grantType and GRANTTYPE',  [grantType => 'app_token', GRANTTYPE => 'app_token',
                                  appID => $app, appSecret => $secret]],
    ['clientId and clientID',    [grantType => 'client_credentials', clientId => $app,
                                  clientID => $app, clientSecret => $secret]],
    ['unknown key twice',        [appID => $app, appSecret => $secret, foo => 1, foo => 1]],
    ['unknown key, two casings', [appID => $app, appSecret => $secret, Foo => 'a', fOO => 'b']],
    ['username and UserName',    [grantType => 'password', username => 'alice',
                                  UserName => 'alice', password => $s->{users}{alice}]],
) {
    my($name, $kv) = @$case;
    check_error(post_json('/api/v1/token', obj(@$kv)), 400, qr/duplicate/i, "duplicate: $name");
}

# --- every known field must be a JSON string; the message names the field ---
my @fields = qw(grantType appID appSecret username password clientID clientSecret code
                redirectUri refreshToken codeVerifier);
my %wrong = (number => \'1', null => \'null', object => \'{"a":"b"}', array => \'["x"]',
             bool => \'true', false => \'false', float => \'1.5');
for my $field (@fields) {
    for my $type (sort keys %wrong) {
        my @kv = (appID => $app, appSecret => $secret);
        @kv = () if $field =~ /^app/;   # keep the field once
        my $body = obj(@kv, $field => $wrong{$type},
                       ($field eq 'appID' ? (appSecret => $secret) : ()),
                       ($field eq 'appSecret' ? (appID => $app) : ()));
        check_error(post_json('/api/v1/token', $body), 400, qr/\Q$field\E/,
                    "$field as $type");
    }
}
# the message uses the canonical spelling whatever casing was sent
check_error(post_json('/api/v1/token', obj(appID => $app, APPSECRET => \'7')), 400,
            qr/appSecret/, 'APPSECRET as number names appSecret');
check_error(post_json('/api/v1/token',
            obj(grantType => 'client_credentials', clientid => \'7', clientSecret => $secret)),
            400, qr/clientI[dD]/, 'clientid as number names clientID');
for my $field (qw(id name secret)) {
    my %body = (id => $app, name => 'ci', secret => $secret);
    my $body = obj((map { $_ => ($_ eq $field ? \'12' : $body{$_}) } qw(id name secret)));
    my $res = post_json('/v1/k8s/auth/oauth/apptoken', $body);
    check_error($res, 400, qr/\b\Q$field\E\b/, "legacy: $field as number");
}

# --- grant selection and required fields ---
granted(post_json('/api/v1/token', obj(appID => $app, appSecret => $secret)),
        'no grantType, appID and appSecret: app_token');
check_error(post_json('/api/v1/token', obj(appSecret => $secret)), 400, qr/appID/,
            'no grantType, only appSecret: app_token missing appID');
check_error(post_json('/api/v1/token', obj(appID => $app)), 400, qr/appSecret/,
            'no grantType, only appID: app_token missing appSecret');
check_error(post_json('/api/v1/token', obj(username => 'alice', password => $s->{users}{alice})),
            400, qr/grantType/, 'no grantType and no app fields: names grantType');
check_error(post_json('/api/v1/token', '{}'), 400, qr/grantType/, 'empty object names grantType');
# an empty field counts as a missing one (as for every required field)
granted(post_json('/api/v1/token', obj(grantType => '', appID => $app, appSecret => $secret)),
        'empty grantType with appID/appSecret: app_token');
check_error(post_json('/api/v1/token', obj(grantType => '', username => 'alice', password => 'x')),
            400, qr/grantType/, 'empty grantType without app fields names grantType');
for my $keys (['clientId', 'clientSecret'], ['clientID', 'clientSecret'],
              ['ClientId', 'CLIENTSECRET']) {
    my($id, $sec) = @$keys;
    granted(post_json('/api/v1/token',
            obj(grantType => 'client_credentials', $id => $app, $sec => $secret)),
            "client_credentials with $id/$sec");
}
granted(post_json('/api/v1/token',
        obj(grantType => 'app_token', appID => $app, appSecret => $secret,
            clientId => 'someone-else', clientSecret => 'other')),
        'appID/appSecret win over clientId/clientSecret');
granted(post_json('/api/v1/token',
        obj(grantType => 'client_credentials', clientId => $app, clientSecret => $secret)),
        'client_credentials');
for my $case (
    ['app_token without appSecret',  [grantType => 'app_token', appID => $app], 'appSecret'],
    ['app_token with empty appSecret', [grantType => 'app_token', appID => $app, appSecret => ''],
     'appSecret'],
    ['app_token without appID',      [grantType => 'app_token', appSecret => $secret], 'appID'],
    ['app_token with empty appID',   [grantType => 'app_token', appID => '', appSecret => $secret],
     'appID'],
    ['password without username',    [grantType => 'password', password => 'x'], 'username'],
    ['password with empty username', [grantType => 'password', username => '', password => 'x'],
     'username'],
    ['password without password',    [grantType => 'password', username => 'alice'], 'password'],
    ['password with empty password', [grantType => 'password', username => 'alice', password => ''],
     'password'],
) {
    my($name, $kv, $field) = @$case;
    check_error(post_json('/api/v1/token', obj(@$kv)), 400, qr/\Q$field\E/, $name);
}
for my $field (qw(id name secret)) {
    my %body = (id => $app, name => 'ci', secret => $secret);
    delete $body{$field};
    check_error(post_json('/v1/k8s/auth/oauth/apptoken', json_bytes(\%body)), 400,
                qr/\b\Q$field\E\b/, "legacy: missing $field");
    $body{$field} = '';
    check_error(post_json('/v1/k8s/auth/oauth/apptoken', json_bytes(\%body)), 400,
                qr/\b\Q$field\E\b/, "legacy: empty $field");
}

# --- grants that are not supported ---
for my $case (
    ['unknown grant',   [grantType => 'magic', appID => $app, appSecret => $secret]],
    ['authorization_code', [grantType => 'authorization_code', code => 'abc']],
) {
    my($name, $kv) = @$case;
    check_error(post_json('/api/v1/token', obj(@$kv)), 400, qr/grant type not supported/i, $name);
}

# --- session grants with secrets nobody issued ---
check_error(post_json('/api/v1/token', obj(grantType => 'refresh_token', refreshToken => 'abc')),
            401, qr/^invalid refresh token$/, 'refresh_token never issued');
check_error(post_json('/api/v1/token', obj(grantType => 'exchange_token', code => 'abc',
                                           redirectUri => 'https://x.test/cb')),
            401, qr/^invalid or expired code$/, 'exchange_token code never issued');

done_testing();

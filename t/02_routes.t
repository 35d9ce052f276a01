# Routes: the four paths, 404 for any other path under the handler, 405 with
# Allow for a wrong method, the deprecation headers of the legacy routes on
# every answer, and the two routes that belong to the sessions issue.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use RunaiTest;
use File::Spec::Functions qw(catfile);

my $s = secrets();
my $app = 'app-md5';
my $app_body = json_bytes({ appID => $app, appSecret => $s->{apps}{$app} });
my $legacy_body = json_bytes({ id => $app, name => 'ci', secret => $s->{apps}{$app} });

# --- 405 with Allow, on the main server and on a vhost whose handler is on / ---
for my $vhost (qw(main es256)) {
    for my $case (
        [GET    => '/api/v1/token',                      'POST',      0],
        [PUT    => '/api/v1/token',                      'POST',      0],
        [DELETE => '/api/v1/token',                      'POST',      0],
        [GET    => '/v1/k8s/auth/oauth/apptoken',        'POST',      1],
        [PUT    => '/v1/k8s/auth/oauth/apptoken',        'POST',      1],
        [GET    => '/v1/k8s/auth/oauth/tokens/refresh',  'POST',      1],
        [POST   => '/v1/k8s/auth/token/exchange',        'GET, HEAD', 1],
        [DELETE => '/v1/k8s/auth/token/exchange',        'GET, HEAD', 1],
    ) {
        my($method, $path, $allow, $legacy) = @$case;
        my $name = "$vhost: $method $path";
        my $res = http($method, $path, vhost => $vhost,
                       ($method =~ /^(POST|PUT)$/ ? (body => '{}') : ()));
        check_error($res, 405, undef, $name);
        my $got = join ', ', sort map { s/^\s+|\s+$//gr } split /,/, $res->header('Allow') // '';
        is($got, join(', ', sort split /, /, $allow), "$name: Allow: $allow");
        check_legacy_headers($res, $name, $legacy);
    }
}

# --- the device authorization grant's routes (es256: issuer path
# /auth/realms/es256): 405 with Allow ---
{
    my $res = http(GET => '/auth/realms/es256/protocol/openid-connect/auth/device', vhost => 'es256');
    check_oauth_error($res, 405, 'invalid_request', 'es256: GET of the device authorization endpoint');
    is($res->header('Allow'), 'POST', 'device authorization: Allow: POST');
    $res = http(PUT => '/auth/realms/es256/device', vhost => 'es256', body => '{}');
    check_error($res, 405, undef, 'es256: PUT of the device page');
    is($res->header('Allow'), 'GET, HEAD, POST', 'device page: Allow: GET, HEAD, POST');
}

# --- 404 for every other path where the handler applies ---
for my $case (
    [main    => POST => '/api/v1/nothing'],
    [main    => POST => '/api/v1/token/'],
    [main    => POST => '/api/v1/token/extra'],
    [main    => POST => '/api/v1/Token'],
    [main    => GET  => '/v1/k8s/auth/unknown'],
    [main    => POST => '/v1/k8s/auth/oauth/apptoken/x'],
    [es256   => GET  => '/'],
    [es256   => POST => '/token'],
) {
    my($vhost, $method, $path) = @$case;
    my $res = http($method, $path, vhost => $vhost,
                   ($method eq 'POST' ? (body => $app_body) : ()));
    check_error($res, 404, undef, "$vhost: $method $path");
}

# --- the routes of the sessions issue exist and refuse the grant ---
{
    my $res = http(GET => '/v1/k8s/auth/token/exchange?redirect_uri=https%3A%2F%2Fx.test%2Fcb&code=abc');
    check_error($res, 401, qr/^invalid or expired code$/, 'GET exchange');
    check_legacy_headers($res, 'GET exchange', 1);

    $res = http(HEAD => '/v1/k8s/auth/token/exchange?redirect_uri=https%3A%2F%2Fx.test%2Fcb&code=abc');
    is($res->code, 401, 'HEAD exchange: 401 like GET');
    is($res->content, '', 'HEAD exchange: no body');
    check_legacy_headers($res, 'HEAD exchange', 1);

    $res = http(POST => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=abc', body => '{}');
    check_error($res, 401, qr/^invalid refresh token$/, 'POST refresh');
    check_legacy_headers($res, 'POST refresh', 1);
}

# --- the legacy apptoken route carries the headers on success and on errors ---
{
    my $res = post_json('/v1/k8s/auth/oauth/apptoken', $legacy_body);
    check_success_headers($res, 'legacy apptoken');
    check_legacy_headers($res, 'legacy apptoken', 1);
    my $body = response_json($res) || {};
    record_token($_) for grep { defined } @$body{qw(access_token id_token)};

    $res = post_json('/v1/k8s/auth/oauth/apptoken',
        json_bytes({ id => $app, name => 'ci', secret => $s->{wrong} }));
    check_error($res, 401, qr/^invalid credentials$/, 'legacy apptoken, wrong secret');
    check_legacy_headers($res, 'legacy apptoken, wrong secret', 1);

    $res = post_json('/v1/k8s/auth/oauth/apptoken', '{"id":');
    check_error($res, 400, undef, 'legacy apptoken, bad JSON');
    check_legacy_headers($res, 'legacy apptoken, bad JSON', 1);

    $res = http(POST => '/v1/k8s/auth/oauth/apptoken', body => 'id=x', type => 'text/plain');
    check_error($res, 415, undef, 'legacy apptoken, text/plain');
    check_legacy_headers($res, 'legacy apptoken, text/plain', 1);
}

# --- the current route carries no deprecation header ---
{
    my $res = post_json('/api/v1/token', $app_body);
    check_success_headers($res, 'POST /api/v1/token');
    check_legacy_headers($res, 'POST /api/v1/token', 0);
    my $body = response_json($res) || {};
    record_token($body->{accessToken});

    # the route is the decoded path (r->uri): a query string or an escaped
    # character does not change it
    for my $path ('/api/v1/token?x=1', '/api/v1/%74oken') {
        $res = post_json($path, $app_body);
        check_success_headers($res, "POST $path");
        record_token((response_json($res) || {})->{accessToken});
    }

    $res = post_json('/api/v1/token', '[]');
    check_error($res, 400, undef, 'POST /api/v1/token, non-object');
    check_legacy_headers($res, 'POST /api/v1/token, non-object', 0);
}
# --- a secret in the query stays out of the access log, whatever the answer ---
{
    my $marker = 'QuerySecret' . int(rand(1e9)) . 'X' x 20;
    for my $case (
        [GET  => "/v1/k8s/auth/oauth/tokens/refresh?refresh_token=$marker", 405, 'refresh, wrong method'],
        [POST => "/v1/k8s/auth/token/exchange?code=$marker&redirect_uri=x", 405, 'exchange, wrong method'],
        [POST => "/v1/k8s/auth/oauth/tokens/refreshx?refresh_token=$marker", 404, 'mistyped path'],
    ) {
        my($method, $path, $status, $name) = @$case;
        my $res = http($method => $path, body => '{}');
        is($res->code, $status, "query secret, $name: $status");
    }
    my $log = catfile(Apache::Test::vars('t_logs'), 'access_log');
    my $text = '';
    for (1 .. 50) {
        open my $fh, '<', $log or last;
        local $/;
        $text = <$fh>;
        last if ($text =~ tr/\n//) && $text =~ /refreshx\?redacted/;
        select undef, undef, undef, 0.1;
    }
    unlike($text, qr/\Q$marker\E/, 'query secrets of 404 and 405 answers are not in the access log');
    like($text, qr{"POST /v1/k8s/auth/oauth/tokens/refreshx\?redacted HTTP/1\.1" 404 },
         'the access log shows the mistyped path with its query redacted');
}

done_testing();

# The device authorization grant (RFC 8628) at Keycloak's paths, as
# kubelogin's device-code mode uses it: the device authorization endpoint,
# the user's page behind Basic (approve, deny, wrong codes, the throttle, a
# cross-site POST), the polls (authorization_pending, slow_down,
# access_denied, expired_token), the tokens of the one poll that redeems an
# approval (also when N poll at once), the client rules, discovery.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use Time::HiRes qw(sleep);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $P = vhost_port('device');
my $SHORT = vhost_port('deviceshort');
my $NOAUTH = vhost_port('devicenoauth');
my $BASE = '/auth/realms/runai';
my $ISS = "http://127.0.0.1:$P$BASE";
my $DEVICE_AUTH = "$BASE/protocol/openid-connect/auth/device";
my $PAGE = "$BASE/device";
my $KC_TOKEN = "$BASE/protocol/openid-connect/token";
my $GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
my $USER_CODE_RE = qr/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;
# The page's posts come from an address of their own: the throttle's
# counter of an address is shared with every other test.
my $ADDR = '127.0.0.40';
my $logs = Apache::Test::vars('t_logs');
my $error_log = catfile($logs, 'error_log');
my $access_log = catfile($logs, 'access_log');

sub claims_of { my(undef, $c) = jwt_parts(shift); return $c || {} }

# POST the device authorization endpoint; returns (response, body).
sub device_auth {
    my($port, $params, %o) = @_;
    my $res = form_post_to($port, $o{path} // $DEVICE_AUTH, $params, %o);
    my $b = json_decode($res->content);
    $b = {} unless ref $b eq 'HASH';
    note_secret('device_code', $b->{device_code}) if defined $b->{device_code};
    # the user code too: the page's query is redacted in the access log
    note_secret('user_code', $b->{user_code}) if defined $b->{user_code};
    return ($res, $b);
}
# A device code of kubelogin (or of the client given), checked to be issued.
sub new_device {
    my($port, $name, @params) = @_;
    my($res, $b) = device_auth($port // $P, [client_id => 'kubelogin', @params]);
    is($res->code, 200, "$name: device authorization 200") or diag($res->as_string);
    return $b;
}
sub page_post {
    my($user, $code, $action, %o) = @_;
    my @h = @{ $o{headers} || [] };
    push @h, Authorization => basic_auth($user, $s->{users}{$user}) if defined $user;
    return form_post_to($o{port} // $P, $PAGE, [(defined $code ? (user_code => $code) : ()),
                                             (defined $action ? (action => $action) : ())],
                     headers => \@h, local_addr => $o{local_addr} // $ADDR);
}
sub page_ok {
    my($res, $status, $re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, $status, "$name: $status") or diag($res->as_string);
    like($res->header('Content-Type') // '', qr{^text/html}, "$name: text/html");
    like($res->header('Cache-Control') // '', qr/no-store/, "$name: no-store");
    like($res->content, $re, "$name: the page says so");
}
sub poll {
    my($dc, %o) = @_;
    my $client = exists $o{client} ? $o{client} : 'kubelogin';
    return form_post_to($o{port} // $P, $o{path} // $KC_TOKEN,
                     [grant_type => $GRANT, device_code => $dc,
                      (defined $client ? (client_id => $client) : ()), @{ $o{extra} || [] }],
                     headers => $o{headers} || []);
}
sub oauth_tokens {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    my $b = reply_of($res) || {};
    ok(defined $b->{access_token} && defined $b->{id_token} && defined $b->{refresh_token},
       "$name: access, id and refresh tokens");
    is(lc($b->{token_type} // ''), 'bearer', "$name: token_type Bearer");
    return $b;
}

# --- discovery ------------------------------------------------------------------
{
    my $res = http_request(port => $P, method => 'GET', path => "$BASE/.well-known/openid-configuration");
    is($res->code, 200, 'discovery 200');
    my $d = json_decode($res->content) || {};
    is($d->{device_authorization_endpoint}, "$ISS/protocol/openid-connect/auth/device",
       'discovery: device_authorization_endpoint at the Keycloak path');
    ok((grep { $_ eq $GRANT } @{ $d->{grant_types_supported} || [] }), 'discovery: the device grant is supported');
}

# --- the device authorization endpoint ---------------------------------------------
my $first;
{
    my($res, $b) = device_auth($P, [client_id => 'kubelogin', scope => 'openid profile']);
    check_success_headers($res, 'device authorization of kubelogin');
    is_deeply([sort keys %$b], [sort qw(device_code user_code verification_uri verification_uri_complete expires_in interval)],
              'the RFC 8628 §3.2 fields');
    like($b->{device_code} // '', qr/^[A-Za-z0-9_-]{43}$/, 'device_code: 256 bits in base64url');
    like($b->{user_code} // '', $USER_CODE_RE, 'user_code: XXXX-XXXX of unambiguous letters');
    is($b->{verification_uri}, "$ISS/device", 'verification_uri under the issuer');
    is($b->{verification_uri_complete}, "$ISS/device?user_code=$b->{user_code}", 'verification_uri_complete');
    is($b->{expires_in}, 600, 'expires_in: 600 by default');
    is($b->{interval}, 5, 'interval: 5');
    is(json_type($b->{expires_in}), 'number', 'expires_in is a number');
    $first = $b;
    my %seen;
    for (1 .. 20) {
        my(undef, $o) = device_auth($P, [client_id => 'kubelogin']);
        $seen{$o->{user_code} // ''}++;
    }
    is(scalar(grep { $_ > 1 } values %seen), 0, '20 user codes, all different');

    check_oauth_error(form_post_to($P, $DEVICE_AUTH, [scope => 'openid']), 400, 'invalid_request', 'without client_id');
    check_oauth_error(form_post_to($P, $DEVICE_AUTH, [client_id => 'nobody']), 401, 'invalid_client', 'an unregistered client');
    check_oauth_error(form_post_to($P, $DEVICE_AUTH, [client_id => 'runai-cli']), 400, 'unauthorized_client',
                      'a client registered without the device flag');
    check_oauth_error(form_post_to($P, $DEVICE_AUTH, [client_id => 'app-bcrypt']), 401, 'invalid_client',
                      'a confidential client without its secret');
    check_oauth_error(form_post_to($P, $DEVICE_AUTH, [client_id => 'app-bcrypt'],
                                headers => [Authorization => basic_auth('app-bcrypt', $s->{wrong})]),
                      401, 'invalid_client', 'a confidential client with a wrong secret');
    my($ok) = device_auth($P, [scope => 'openid'], headers => [Authorization => basic_auth('app-bcrypt', $s->{apps}{'app-bcrypt'})]);
    is($ok->code, 200, 'a confidential client with its secret (Basic): 200');
    check_oauth_error(http_request(port => $P, method => 'GET', path => $DEVICE_AUTH), 405, 'invalid_request',
                      'GET on the device authorization endpoint');
}

# --- polls before a decision ----------------------------------------------------------
{
    check_oauth_error(poll($first->{device_code}), 400, 'authorization_pending', 'first poll: authorization_pending');
    check_oauth_error(poll($first->{device_code}), 400, 'slow_down', 'a poll right after: slow_down');
    check_oauth_error(poll($first->{device_code}), 400, 'slow_down', 'and again: slow_down');
    check_oauth_error(poll('A' x 43), 400, 'invalid_grant', 'an unknown device code: invalid_grant');
    check_oauth_error(poll($first->{device_code}, client => undef), 400, 'invalid_request',
                      'a public client must name itself');
    check_oauth_error(poll($first->{device_code}, client => 'runai-cli'), 400, 'invalid_grant',
                      'another client: invalid_grant');
    my $j = post_json_to($P, '/api/v1/token', { grantType => $GRANT, deviceCode => $first->{device_code},
                                                clientID => 'kubelogin' });
    check_error($j, 400, qr/^(authorization_pending|slow_down)$/, 'JSON dialect on /api/v1/token: pending');
    check_oauth_error(form_post_to($P, '/api/v2/token', [grant_type => $GRANT, client_id => 'kubelogin']),
                      400, 'invalid_request', '/api/v2/token without device_code');
}

# --- the user's page --------------------------------------------------------------------
{
    my $res = http_request(port => $P, method => 'GET', path => $PAGE);
    is($res->code, 401, 'the page without credentials: 401 (Basic)');
    $res = http_request(port => $P, method => 'GET', path => "$PAGE?user_code=$first->{user_code}",
                        headers => [Authorization => basic_auth('alice', $s->{users}{alice})]);
    page_ok($res, 200, qr/<form method="post"/, 'GET the page as alice');
    like($res->content, qr/value="\Q$first->{user_code}\E"/, 'the page: the code prefilled from user_code');
    is($res->header('X-Frame-Options'), 'DENY', 'the page: not framed');
    $res = http_request(port => $P, method => 'GET', path => "$PAGE?user_code=%22%3E%3Cscript%3E",
                        headers => [Authorization => basic_auth('alice', $s->{users}{alice})]);
    unlike($res->content, qr/<script>/, 'the page: a prefilled value is escaped');

    $res = http_request(port => $NOAUTH, method => 'GET', path => $PAGE);
    is($res->code, 500, 'the page without an AuthType: 500');
    sleep 0.2;
    like(slurp($error_log) // '', qr/device reached without authentication: put an AuthType/,
         'the page without an AuthType: the error log says what to do');

    page_ok(page_post('alice', $first->{user_code}, undef), 400, qr/approve or deny/, 'no action');
    page_ok(page_post('alice', undef, 'approve'), 400, qr/Enter the code/, 'no code');
    page_ok(page_post('alice', $first->{user_code}, 'approve', headers => [Origin => 'http://evil.example']),
            403, qr/another site/, 'a cross-site POST (Origin)');
    page_ok(page_post('alice', $first->{user_code}, 'approve', headers => [Origin => "http://127.0.0.1:$P",
                                                                            'Sec-Fetch-Site' => 'cross-site']),
            403, qr/another site/, 'a cross-site POST (Sec-Fetch-Site)');
}

# --- approve: one poll gets alice's tokens -------------------------------------------------
{
    # typed in lower case and without the dash
    (my $typed = lc $first->{user_code}) =~ s/-//;
    my $res = page_post('alice', $typed, 'approve', headers => [Origin => "http://127.0.0.1:$P"]);
    page_ok($res, 200, qr/Approved: the device of kubelogin/, 'alice approves (same-origin POST)');
    unlike($res->content, qr/<form/, 'the approval page has no form');
    page_ok(page_post('alice', $first->{user_code}, 'approve'), 400, qr/wrong, used or expired/,
            'the same user code again: spent');
    # polled too early after the slow_downs, but approved: the tokens
    my $b = oauth_tokens(poll($first->{device_code}), 'the poll after the approval');
    my $c = claims_of($b->{access_token});
    is($c->{sub}, 'alice', 'access token: sub alice');
    is($c->{azp}, 'kubelogin', 'access token: azp the client');
    is($c->{email}, 'alice@example.com', 'access token: the claims evaluated at the approval');
    is($c->{iss}, $ISS, 'access token: iss');
    my $i = claims_of($b->{id_token});
    is($i->{aud}, 'kubelogin', 'id token: aud the client');
    ok(defined $c->{sid} && $c->{sid} eq ($i->{sid} // ''), 'a session (sid) like a password grant');
    check_oauth_error(poll($first->{device_code}), 400, 'invalid_grant', 'a second poll: the code is spent');
    my $r = oauth_tokens(form_post_to($P, $KC_TOKEN, [grant_type => 'refresh_token', refresh_token => $b->{refresh_token},
                                                   client_id => 'kubelogin']),
                         'the refresh token of the device session');
    is(claims_of($r->{access_token})->{sub}, 'alice', 'refreshed: sub alice');
}

# --- deny --------------------------------------------------------------------------------
{
    my $d = new_device($P, 'deny');
    page_ok(page_post('alice', $d->{user_code}, 'deny'), 200, qr/Denied/, 'alice denies');
    check_oauth_error(poll($d->{device_code}), 400, 'access_denied', 'poll after a denial: access_denied');
    sleep 0.1;
    check_oauth_error(poll($d->{device_code}), 400, 'access_denied', 'and it stays denied');
}

# --- expiry ------------------------------------------------------------------------------------
{
    my $d = new_device($SHORT, 'short lifetime');
    is($d->{expires_in}, 2, 'RunaiTokenDeviceCodeLifetime 2: expires_in 2');
    sleep 3;
    check_oauth_error(poll($d->{device_code}, port => $SHORT), 400, 'expired_token', 'a poll after expiry: expired_token');
    page_ok(page_post('alice', $d->{user_code}, 'approve', port => $SHORT), 400, qr/wrong, used or expired/,
            'approving an expired code: refused');
    my $a = new_device($SHORT, 'short lifetime, approved in time');
    page_ok(page_post('alice', $a->{user_code}, 'approve', port => $SHORT), 200, qr/Approved/, 'approved in time');
    sleep 3;
    check_oauth_error(poll($a->{device_code}, port => $SHORT), 400, 'expired_token',
                      'approved but polled after expiry: expired_token');
}

# --- a confidential client proves its secret at the poll -----------------------------------------
{
    my($res, $d) = device_auth($P, [client_id => 'app-bcrypt', client_secret => $s->{apps}{'app-bcrypt'}]);
    is($res->code, 200, 'device authorization of app-bcrypt (client_secret_post)');
    page_ok(page_post('alice', $d->{user_code}, 'approve'), 200, qr/Approved: the device of app-bcrypt/, 'approved');
    check_oauth_error(poll($d->{device_code}, client => 'app-bcrypt'), 401, 'invalid_client',
                      'poll without the secret: invalid_client');
    check_oauth_error(poll($d->{device_code}, client => 'kubelogin'), 400, 'invalid_grant',
                      'poll by another client: invalid_grant');
    my $b = oauth_tokens(poll($d->{device_code}, client => undef,
                              headers => [Authorization => basic_auth('app-bcrypt', $s->{apps}{'app-bcrypt'})]),
                         'poll with the secret (Basic): the approval was kept');
    is(claims_of($b->{access_token})->{azp}, 'app-bcrypt', 'azp app-bcrypt');
}

# --- the JSON dialect ------------------------------------------------------------------------------
{
    my $d = new_device($P, 'JSON');
    page_ok(page_post('alice', $d->{user_code}, 'approve'), 200, qr/Approved/, 'approved (JSON poll)');
    my $b = tokens_ok(post_json_to($P, '/api/v1/token', { grantType => $GRANT, deviceCode => $d->{device_code},
                                                          clientID => 'kubelogin' }),
                      'JSON poll on /api/v1/token after the approval');
    is(claims_of($b->{accessToken})->{sub}, 'alice', 'JSON: sub alice');
    my $d2 = new_device($P, '/api/v2/token');
    page_ok(page_post('alice', $d2->{user_code}, 'approve'), 200, qr/Approved/, 'approved (/api/v2/token)');
    oauth_tokens(poll($d2->{device_code}, path => '/api/v2/token'), '/api/v2/token poll after the approval');
}

# --- N polls at once after the approval: one gets the tokens ---------------------------------------
{
    my $N = 8;
    my $d = new_device($P, 'race');
    page_ok(page_post('alice', $d->{user_code}, 'approve'), 200, qr/Approved/, 'approved (race)');
    my @res = race(map { +{ port => $P, method => 'POST', path => $KC_TOKEN,
                            type => 'application/x-www-form-urlencoded',
                            body => form_body(grant_type => $GRANT, device_code => $d->{device_code},
                                         client_id => 'kubelogin') } } 1 .. $N);
    my @ok = grep { $_->code == 200 } @res;
    is(scalar @ok, 1, "$N concurrent polls: exactly one 200")
        or diag(join "\n", map { $_->code . ' ' . $_->content } @res);
    reply_of($_) for @ok;
    my @others = grep { $_->code != 200 } @res;
    is(scalar(grep { $_->code == 400 && (json_decode($_->content) || {})->{error} eq 'invalid_grant' } @others),
       $N - 1, 'the others: 400 invalid_grant');
}

# --- wrong user codes and the throttle -------------------------------------------------------------
{
    my $d = new_device($P, 'throttle');
    my $addr = '127.0.0.41';
    page_ok(page_post('bob', 'BBBB-BBBB', 'approve', local_addr => $addr), 400, qr/wrong, used or expired/,
            'bob: a wrong code');
    page_ok(page_post('bob', 'hello', 'approve', local_addr => $addr), 400, qr/wrong, used or expired/,
            'bob: not a code at all');
    page_ok(page_post('bob', 'CCCC-CCCC', 'deny', local_addr => $addr), 400, qr/wrong, used or expired/,
            'bob: a third wrong code');
    my $res = page_post('bob', $d->{user_code}, 'approve', local_addr => $addr);
    page_ok($res, 429, qr/too many failed attempts/, 'bob: the fourth attempt, even right, is throttled');
    like($res->header('Retry-After') // '', qr/^[1-9][0-9]*$/, 'throttled: Retry-After');
    check_oauth_error(poll($d->{device_code}), 400, 'authorization_pending', 'the code was not spent');
    page_ok(page_post('alice', $d->{user_code}, 'approve', local_addr => $addr), 200, qr/Approved/,
            'alice from the same address is not throttled');
    sleep 0.2;
    like(slurp($error_log) // '', qr/throttled: too many failed attempts from \Q$addr\E for principal bob/,
         'the throttle line for fail2ban');
    my $b = oauth_tokens(poll($d->{device_code}), 'poll after alice approved');
    is(claims_of($b->{access_token})->{sub}, 'alice', 'the tokens are alice\'s');
}

# --- two hosts sharing redis: approved on one, N polls split between both -------------------------
my @hosts;
{
    my $N = 12;
    my $svc = start_redis();
    my $site = RunaiHosts::session_site() . <<'EOF_SITE';
RunaiTokenClient kubelogin public device
<Location /device>
    AuthType Basic
    AuthName "runai device"
    AuthBasicProvider runai-users-primary
    Require valid-user
</Location>
EOF_SITE
    my $ha = start_httpd(name => 'device-a', cache => "redis:127.0.0.1:$svc->{port}", site => $site);
    my $hb = start_httpd(name => 'device-b', cache => "redis:127.0.0.1:$svc->{port}", site => $site);
    push @hosts, $ha, $hb;
    my($pa, $pb) = ($ha->{port}, $hb->{port});
    for my $round (1 .. 2) {
        my($res, $d) = device_auth($pa, [client_id => 'kubelogin'], path => '/protocol/openid-connect/auth/device');
        is($res->code, 200, "redis, round $round: device code from host A") or diag($res->as_string);
        check_oauth_error(form_post_to($pb, '/protocol/openid-connect/token',
                                       [grant_type => $GRANT, device_code => $d->{device_code}, client_id => 'kubelogin']),
                          400, 'authorization_pending', "redis, round $round: pending on host B");
        page_ok(form_post_to($pb, '/device', [user_code => $d->{user_code}, action => 'approve'],
                             headers => [Authorization => basic_auth('alice', $s->{users}{alice})]),
                200, qr/Approved/, "redis, round $round: approved on host B's page");
        my @res = race(map { +{ port => ($_ % 2 ? $pa : $pb), method => 'POST',
                                path => '/protocol/openid-connect/token',
                                type => 'application/x-www-form-urlencoded',
                                body => form_body(grant_type => $GRANT, device_code => $d->{device_code},
                                                  client_id => 'kubelogin') } } 1 .. $N);
        my @ok = grep { $_->code == 200 } @res;
        is(scalar @ok, 1, "redis, round $round: $N concurrent polls on two hosts: exactly one 200")
            or diag(join "\n", map { $_->code . ' ' . $_->content } @res);
        my $tok = reply_of($ok[0] // HTTP::Response->new(599)) || {};
        is(claims_of($tok->{access_token} // '')->{sub}, 'alice', "redis, round $round: alice's tokens");
        # a poll that finds the approval gone finds the spent mark the
        # winner wrote before it took the approval, on either host
        my %err;
        $err{ $_->code . ' ' . ((json_decode($_->content) || {})->{error} // '-') }++ for grep { $_->code != 200 } @res;
        is_deeply(\%err, { '400 invalid_grant' => $N - 1 }, "redis, round $round: the others 400 invalid_grant")
            or diag(join ', ', map { "$_: $err{$_}" } sort keys %err);
        check_oauth_error(poll($d->{device_code}, port => $pb, path => '/protocol/openid-connect/token'),
                          400, 'invalid_grant', "redis, round $round: a poll afterwards: invalid_grant");
    }
}

# --- openid-client: initiateDeviceAuthorization + pollDeviceAuthorizationGrant ---------------------
{
    my $JSON = JSON::PP->new->utf8->canonical;
    my $job = { issuer => $ISS, client => 'kubelogin', approve_after => 6,
                user => { name => 'alice', password => $s->{users}{alice} } };
    my($rc, $out, $err) = RunaiTest::run_capture([$JSON->encode($job)], 'timeout', '90', 'node',
                                                  catfile(t_dir(), 'node', 'oidc_device.mjs'));
    is($rc, 0, 'node oidc_device.mjs ran (npm ci --prefix t/node installs openid-client)')
        or diag("exit $rc\n$err\n$out");
    my $r = json_decode((split /\n/, $out // '')[-1] // '') || {};
    my $v = $r->{versions} || {};
    diag("openid-client $v->{'openid-client'} on node $v->{node}") if $v->{'openid-client'};
    my $a = ($r->{steps} || {})->{approved} || {};
    ok($a->{ok}, 'openid-client: the device flow end to end, approved on the page')
        or diag($JSON->encode($a->{error} || $a));
    is($a->{page}, 200, 'openid-client: the page approved');
    like(($a->{device} || {})->{user_code} // '', $USER_CODE_RE, 'openid-client: the user code');
    cmp_ok($a->{seconds} // 0, '>=', 9.5, 'openid-client: polled twice (pending, then the tokens)');
    is(($a->{id_claims} || {})->{sub}, 'alice', 'openid-client: the id token it validated: sub alice');
    is(($a->{id_claims} || {})->{aud}, 'kubelogin', 'openid-client: ... aud the client');
    note_secret('openid-client refresh token', $a->{refresh_token});
    record_token($_) for grep { defined } $a->{access_token}, $a->{id_token};
    my $d = ($r->{steps} || {})->{denied} || {};
    ok(!$d->{ok}, 'openid-client: a denied device fails');
    is(($d->{error} || {})->{error}, 'access_denied', 'openid-client: access_denied') or diag($JSON->encode($d));
}

# --- log lines -------------------------------------------------------------------------------------
{
    sleep 0.2;
    my $log = slurp($error_log) // '';
    like($log, qr/grant=device_authorization principal=kubelogin client=kubelogin .*outcome=device_code_issued/,
         'log: device authorization');
    like($log, qr/grant=device_verification principal=alice client=kubelogin .*outcome=device_approved/,
         'log: approval');
    like($log, qr/grant=device_code principal=- client=kubelogin .*outcome=pending/, 'log: pending');
    like($log, qr/grant=device_code principal=- client=kubelogin .*outcome=slow_down/, 'log: slow_down');
    like($log, qr/grant=device_code principal=alice client=kubelogin .*outcome=granted/, 'log: granted');
}

stop_httpd(@hosts);    # their logs are complete once they stopped
assert_logs_clean('40_device', $error_log, $access_log, map { ($_->{error_log}, $_->{access_log}) } @hosts);
done_testing();

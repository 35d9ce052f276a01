# The throttle's policy (issue 11, items 3, 4 and 5) on httpd instances of
# its own, with RunaiTokenThrottle 3 60 and htpasswd files written here:
#   - an attempt is counted before the providers are asked: of 32 wrong
#     passwords for one user sent at once from one address, exactly 3 reach
#     the provider (counted from the log lines "outcome=invalid_credentials")
#     and 29 answer 429; on two hosts sharing one redis-server, at most
#     2 x 3 (each host's own count is exact; docs/operations.md states the
#     bound); 32 right passwords at once all succeed;
#   - counters per principal and source address: the right password from
#     an address that has not failed is granted while the first one is
#     locked; past the principal's ceiling (10 x 3 failures) only the
#     addresses that failed for it are refused;
#   - users, applications and clients count apart: a user named like an
#     application and client keeps working while the client is locked, and
#     the other way round;
#   - case variants and white space around a name share its counters;
#   - the OAuth dialect answers RFC 6749 codes (invalid_grant for a user,
#     invalid_client for a client), with 429 and Retry-After;
#   - a provider that fails (503) leaves no count behind.
# Requests leave from 127.18.N.x (N from the PID), one address per case.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use JSON::PP ();
use RunaiHosts;

my $LIMIT = 3;
my $N = 32;
my $json = JSON::PP->new->utf8->canonical;
my $net = 1 + $$ % 250;
my $next_addr = 0;
sub fresh_addr { $next_addr++; return "127.18.$net." . (1 + $next_addr) }

# --- credentials of our own --------------------------------------------------------
sub secret { random_secret('S', 't18 secret') }
my %pw = map { $_ => secret() } qw(dave svc erin hank ivy);
my $app_secret = secret();
my $wrong = secret();
my $dir = tempdir('runai-t18-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $htpasswd = find_binary('htpasswd', 'apache2-utils');
sub add_user {
    my($file, $user, $password, @how) = @_;
    my $path = catfile($dir, $file);
    open my $p, '|-', $htpasswd, '-i', @how, (-e $path ? () : '-c'), $path, $user
        or die "htpasswd: $!";
    print $p $password;
    close $p or die "htpasswd $user failed";
    chmod 0644, $path;
}
# dave's bcrypt is slow on purpose: without a reservation, concurrent guesses
# all pass the check before the first one is counted.
add_user('users', 'dave', $pw{dave}, '-B', '-C', 10);
add_user('users', 'svc',  $pw{svc},  '-B', '-C', 5);
add_user('users', 'erin', $pw{erin}, '-m');
add_user('users', 'hank', $pw{hank}, '-B', '-C', 5);
add_user('users', 'ivy',  $pw{ivy},  '-m');
add_user('apps',  'svc',  $app_secret, '-B', '-C', 5);

my $site = <<"EOF";
RunaiTokenIssuer https://t18.example.test
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
RunaiTokenClient webapp https://app.example.test/callback
<AuthnProviderAlias file t18-users>
    AuthUserFile "$dir/users"
</AuthnProviderAlias>
<AuthnProviderAlias file t18-apps>
    AuthUserFile "$dir/apps"
</AuthnProviderAlias>
<AuthnProviderAlias file t18-missing>
    AuthUserFile "$dir/no-such-file"
</AuthnProviderAlias>
<Location />
    SetHandler runai-token
    RunaiTokenAppProvider t18-apps
    RunaiTokenPasswordProvider t18-users
    RunaiTokenThrottle $LIMIT 60
</Location>
# a provider that fails: every check answers 503
<Location /v1/k8s/auth/oauth/apptoken>
    RunaiTokenAppProvider t18-missing
</Location>
EOF

# --- requests ------------------------------------------------------------------------
sub json_req {
    my($port, $data, $addr, $path) = @_;
    return { port => $port, method => 'POST', path => $path || '/api/v1/token',
             body => $json->encode($data), local_addr => $addr };
}
sub password_req { my($port, $user, $password, $addr) = @_;
    json_req($port, { grantType => 'password', username => $user, password => $password }, $addr) }
sub app_req { my($port, $id, $secret, $addr) = @_;
    json_req($port, { appID => $id, appSecret => $secret }, $addr) }
# The OAuth dialect: a form.
sub form_req {
    my($port, $addr, @kv) = @_;
    my @q;
    while (my($k, $v) = splice @kv, 0, 2) { push @q, url_encode($k) . '=' . url_encode($v) }
    return { port => $port, method => 'POST', path => '/api/v1/token', body => join('&', @q),
             type => 'application/x-www-form-urlencoded', local_addr => $addr };
}
sub send_req { my $res = http_request(%{ $_[0] }); reply_of($res); return $res }
sub login { send_req(password_req(@_)) }
sub app   { send_req(app_req(@_)) }
sub client_login {    # dave's password grant through the confidential client svc
    my($port, $client_secret, $addr) = @_;
    return send_req(form_req($port, $addr, grant_type => 'password', username => 'dave',
                             password => $pw{dave}, client_id => 'svc', client_secret => $client_secret));
}

sub body_of { my $b = eval { $json->decode($_[0]->content) }; return ref $b eq 'HASH' ? $b : {} }

sub throttled {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 429, "$name: 429") or diag($res->as_string);
    my $ra = $res->header('Retry-After') // '';
    ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 60, "$name: Retry-After 1..60 (got '$ra')");
}

sub oauth_throttled {
    my($res, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    throttled($res, $name);
    is(body_of($res)->{error}, $code, "$name: error $code (RFC 6749 §5.2, not slow_down)")
        or diag($res->content);
}

# Provider checks that failed, as the log lines count them.
sub checks {
    my($principal, $addr, @hosts) = @_;
    my $re = qr/grant=\S+ principal=\Q$principal\E client=\S+ remote=\Q$addr\E outcome=invalid_credentials/;
    my $n = 0;
    for my $h (@hosts) {
        $n += () = (slurp($h->{error_log}) // '') =~ /$re/g;
    }
    return $n;
}

sub tally { my %by; $by{ $_->code }++ for @_; return \%by }
sub codes { my $by = shift; join ', ', map { "$_ x$by->{$_}" } sort keys %$by }

# =====================================================================================
# One host (the default shmcb store).
my $one = start_httpd(name => 't18-one', site => $site);
my $p = $one->{port};

# --- item 4: 32 concurrent wrong passwords, one user, one address ---------------------
my $locked = fresh_addr();
{
    my @res = race(map { password_req($p, 'dave', $wrong, $locked) } 1 .. $N);
    my $by = tally(@res);
    my $checked = checks('dave', $locked, $one);
    diag("one host: $N concurrent wrong passwords for dave, limit $LIMIT: $checked provider checks; "
         . codes($by));
    is($checked, $LIMIT, "one host: of $N concurrent wrong passwords exactly $LIMIT reach the provider");
    is($by->{401} // 0, $LIMIT, "one host: $LIMIT answer 401") or diag(codes($by));
    is($by->{429} // 0, $N - $LIMIT, 'one host: the other ' . ($N - $LIMIT) . ' answer 429');
    my @ra = grep { ($_->header('Retry-After') // '') =~ /^[1-9]\d*$/ } grep { $_->code == 429 } @res;
    is(scalar @ra, $by->{429} // 0, 'one host: every 429 has Retry-After');
    throttled(login($p, 'dave', $pw{dave}, $locked), 'dave, right password from the locked address');
    is(checks('dave', $locked, $one), $LIMIT, 'one host: the refused attempts asked no provider');
}

# --- item 5: a correct credential from an address that has not failed --------------------
{
    my $res = login($p, 'dave', $pw{dave}, fresh_addr());
    is($res->code, 200, 'dave from a second address, while the first is locked: granted')
        or diag($res->content);
}

# --- the OAuth dialect: an RFC 6749 code -------------------------------------------------
{
    my $res = send_req(form_req($p, $locked, grant_type => 'password', username => 'dave', password => $pw{dave}));
    oauth_throttled($res, 'invalid_grant', 'OAuth password grant from the locked address');
    is(body_of($res)->{error_description}, 'too many failed attempts', 'OAuth: error_description');
}

# --- item 3: case variants and white space share the counters ----------------------------
{
    my $addr = fresh_addr();
    my @v = ('Ivy', ' IVY', "iVY\t");
    for my $name (@v) {
        is(login($p, $name, $wrong, $addr)->code, 401, "case variant '$name', wrong password: 401");
    }
    throttled(login($p, 'ivy', $pw{ivy}, $addr), "ivy's right password after 3 failures as 'Ivy', ' IVY', 'iVY\\t'");
    throttled(login($p, 'IvY', $pw{ivy}, $addr), 'IvY after them');
    is(login($p, 'ivy', $pw{ivy}, fresh_addr())->code, 200, 'ivy from an address that has not failed: granted');

    my $addr2 = fresh_addr();
    for my $name ("\x{c9}LODIE", "\x{e9}lodie", "\x{c9}lodie ") {
        is(login($p, $name, $wrong, $addr2)->code, 401, 'a non-ASCII name in another case: 401');
    }
    throttled(login($p, "\x{e9}LODIE", $wrong, $addr2), 'a fourth spelling of elodie');
}

# --- item 5: users, applications and clients count apart ------------------------------------
{
    # the client svc locked from one address by wrong client secrets
    my $addr = fresh_addr();
    for my $i (1 .. $LIMIT) {
        my $res = client_login($p, $wrong, $addr);
        is($res->code, 401, "client svc, wrong secret $i: 401");
        is(body_of($res)->{error}, 'invalid_client', "client svc, wrong secret $i: invalid_client");
    }
    oauth_throttled(client_login($p, $app_secret, $addr), 'invalid_client',
                    'client svc, right secret from the address that failed');
    my $res = login($p, 'svc', $pw{svc}, $addr);
    is($res->code, 200, 'the user svc, from the same address, while the client svc is locked: granted')
        or diag($res->content);
    $res = app($p, 'svc', $app_secret, $addr);
    is($res->code, 200, 'the application svc (app_token), same address: granted') or diag($res->content);
    $res = client_login($p, $app_secret, fresh_addr());
    is($res->code, 200, 'the client svc with its secret from another address: granted') or diag($res->content);

    # and the other way round: the user svc locked
    my $addr2 = fresh_addr();
    is(login($p, 'svc', $wrong, $addr2)->code, 401, "user svc, wrong password $_: 401") for 1 .. $LIMIT;
    throttled(login($p, 'svc', $pw{svc}, $addr2), 'user svc, right password from the address that failed');
    $res = app($p, 'svc', $app_secret, $addr2);
    is($res->code, 200, 'the application svc, same address, while the user svc is locked: granted')
        or diag($res->content);
    $res = client_login($p, $app_secret, $addr2);
    is($res->code, 200, 'the client svc, same address, while the user svc is locked: granted')
        or diag($res->content);
}

# --- item 5: the principal's ceiling spares the addresses that have not failed --------------
{
    my $ceiling = 10 * $LIMIT;
    my @codes;
    for my $a (1 .. 10) {
        my $addr = fresh_addr();
        push @codes, login($p, 'erin', $wrong, $addr)->code for 1 .. $LIMIT;
    }
    is(scalar(grep { $_ == 401 } @codes), $ceiling, "erin: $ceiling failures from 10 addresses, all 401")
        or diag("@codes");
    my $b = fresh_addr();
    is(login($p, 'erin', $wrong, $b)->code, 401,
       'past the ceiling, an address that has not failed for erin is still asked (401)');
    throttled(login($p, 'erin', $pw{erin}, $b), 'past the ceiling, that address after its one failure');
    my $res = login($p, 'erin', $pw{erin}, fresh_addr());
    is($res->code, 200, 'past the ceiling, erin from an address that has not failed: granted')
        or diag($res->content);
}

# --- no false refusals: 32 right passwords (and app secrets) at once ------------------------
{
    my $addr = fresh_addr();
    my $by = tally(race(map { password_req($p, 'hank', $pw{hank}, $addr) } 1 .. $N));
    is($by->{200} // 0, $N, "$N concurrent right passwords for hank from one address: all 200 "
       . '(attempts in flight wait for the outcome instead of being refused)') or diag(codes($by));
    $by = tally(race(map { app_req($p, 'svc', $app_secret, $addr) } 1 .. $N));
    is($by->{200} // 0, $N, "$N concurrent app_token requests of svc: all 200") or diag(codes($by));
}

# --- a provider that fails leaves no count -------------------------------------------------
{
    my $addr = fresh_addr();
    my @codes = map {
        send_req(json_req($p, { id => 'svc', name => 'x', secret => $app_secret }, $addr,
                          '/v1/k8s/auth/oauth/apptoken'))->code
    } 1 .. $LIMIT + 2;
    is("@codes", join(' ', (503) x ($LIMIT + 2)),
       'a failing provider: ' . ($LIMIT + 2) . ' attempts, each a 503, none throttled');
    is(app($p, 'svc', $app_secret, $addr)->code, 200, 'and the same address is then granted');
}

# =====================================================================================
# Two hosts sharing one redis-server: A keeps its own counts in a shmcb of
# its own, B (without mod_socache_shmcb) in redis under keys naming it.
my $redis = start_redis();
my $cache = "redis:127.0.0.1:$redis->{port}";
my $ha = start_httpd(name => 't18-redis-a', cache => $cache, site => $site);
my $hb = start_httpd(name => 't18-redis-b', cache => $cache, site => $site, no_socache => 1,
                     global => 'LoadModule socache_redis_module /usr/lib/apache2/modules/mod_socache_redis.so');
my @ports = ($ha->{port}, $hb->{port});
{
    my $addr = fresh_addr();
    my @res = race(map { password_req($ports[$_ % 2], 'dave', $wrong, $addr) } 0 .. $N - 1);
    my $by = tally(@res);
    my $checked = checks('dave', $addr, $ha, $hb);
    my($ca, $cb) = (checks('dave', $addr, $ha), checks('dave', $addr, $hb));
    diag("two hosts, redis: $N concurrent wrong passwords for dave (half to each host), limit $LIMIT: "
         . "$checked provider checks ($ca on A, $cb on B); " . codes($by));
    cmp_ok($checked, '<=', 2 * $LIMIT,
           "two hosts: at most 2 x $LIMIT of $N concurrent wrong passwords reach a provider");
    cmp_ok($ca, '<=', $LIMIT, "two hosts: at most $LIMIT on host A");
    cmp_ok($cb, '<=', $LIMIT, "two hosts: at most $LIMIT on host B");
    is($by->{401} // 0, $checked, 'two hosts: one 401 per provider check');
    is(($by->{401} // 0) + ($by->{429} // 0), $N, 'two hosts: the others answer 429') or diag(codes($by));
    throttled(login($ports[0], 'dave', $pw{dave}, $addr), 'two hosts: afterwards host A refuses that address');
    throttled(login($ports[1], 'dave', $pw{dave}, $addr), 'two hosts: and so does host B');

    # one attempt at a time, the shared count holds across hosts
    my $seq = fresh_addr();
    my @codes = map { login($ports[$_ % 2], 'dave', $wrong, $seq)->code } 0 .. $LIMIT - 1;
    is("@codes", join(' ', (401) x $LIMIT), "two hosts: $LIMIT wrong passwords, alternating hosts: 401");
    throttled(login($ports[$LIMIT % 2], 'dave', $pw{dave}, $seq),
              'two hosts: the next attempt, on the other host, is refused (the shared count)');
    my $res = login($ports[1], 'dave', $pw{dave}, fresh_addr());
    is($res->code, 200, 'two hosts: dave from an address that has not failed: granted') or diag($res->content);
}

stop_httpd($one, $ha, $hb);
assert_logs_clean('18_throttle_policy', map { ($_->{error_log}, $_->{access_log}) } $one, $ha, $hb);
done_testing();

# The session store going away and coming back (issue 3, deliverable 5),
# against independent httpd instances: with redis, then memcached, killed
# under a running httpd every grant that needs the store answers 503 with
# the Error body while app_token keeps working; restarted on the same port,
# the password grant works again within a bounded poll, without touching
# httpd. Sessions survive an httpd restart (-k restart, and stop + start)
# with an external store, and with shmcb (through its state file,
# RunaiTokenStateDir; t/32_restart_drills.t drills that store further).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use Time::HiRes qw(time);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $cb = 'https://app.example.test/callback';
my $RECOVERY = 20;    # seconds the grants get to work again
my @hosts;
my @summary;

sub mint_refresh {
    my($port, $name) = @_;
    my $res = password_login($port, 'bob', $s->{users}{bob});
    is($res->code, 200, "$name: password grant") or diag($res->content);
    return (reply_of($res) || {})->{refreshToken} // 'none';
}

sub mint_code {
    my($port, $name) = @_;
    my $res = authorize_call($port, 'alice', $s->{users}{alice}, { client_id => 'webapp', redirect_uri => $cb });
    is($res->code, 302, "$name: authorize") or diag($res->content);
    return code_of($res) // 'none';
}

sub store_down {
    my($res, $name, $legacy) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    check_error($res, 503, qr/^session store unavailable$/, $name);
    is($res->content, '{"code":503,"message":"session store unavailable"}', "$name: the Error body")
        if !$legacy;
    check_legacy_headers($res, $name, 1) if $legacy;
}

for my $store (qw(redis memcached)) {
    my $svc = $store eq 'redis' ? start_redis() : start_memcached();
    my $provider = $store eq 'redis' ? 'redis' : 'memcache';
    # Pooled connections dropped after a second of idleness, as
    # docs/operations.md ("When the store fails") tells operators: with the
    # default TTL a child can keep a stale connection past the recovery and
    # answer 503 once more after the others work (APR's client, issue 16).
    my $ttl = $store eq 'redis' ? 'RedisConnPoolTTL 1' : 'MemcacheConnTTL 1';
    my $h = start_httpd(name => $store, cache => "$provider:127.0.0.1:$svc->{port}",
                        global => $ttl, site => RunaiHosts::session_site());
    push @hosts, $h;
    my $p = $h->{port};

    # --- up ---
    my $r_before = mint_refresh($p, "$store up");
    my $c_before = mint_code($p, "$store up");

    # --- the store dies under a running httpd ---
    kill_service($svc);
    ok(httpd_running($h), "$store killed: httpd still runs");
    store_down(password_login($p, 'bob', $s->{users}{bob}), "$store down: password grant");
    is(password_login($p, 'bob', $s->{wrong})->code, 401,
       "$store down: a wrong password is still 401 (throttling fails open)");
    store_down(refresh_call($p, $r_before), "$store down: refresh_token");
    store_down(exchange_call($p, $c_before, $cb), "$store down: exchange_token");
    my $res = authorize_call($p, 'alice', $s->{users}{alice}, { client_id => 'webapp', redirect_uri => $cb });
    store_down($res, "$store down: authorize");
    ok(!defined $res->header('Location'), "$store down: authorize does not redirect");
    store_down(http_request(port => $p, method => 'POST',
                            path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . url_encode($r_before)),
               "$store down: legacy refresh", 1);
    store_down(http_request(port => $p, method => 'GET',
                            path => '/v1/k8s/auth/token/exchange?redirect_uri=' . url_encode($cb)
                                  . '&code=' . url_encode($c_before)),
               "$store down: legacy exchange", 1);
    $res = token_call($p, { appID => 'app-bcrypt', appSecret => $s->{apps}{'app-bcrypt'} });
    is($res->code, 200, "$store down: app_token still 200") or diag($res->content);
    ok((reply_of($res) || {})->{accessToken}, "$store down: app_token carries an access token");
    $res = post_json_to($p, '/v1/k8s/auth/oauth/apptoken',
                        { id => 'app-md5', name => 'x', secret => $s->{apps}{'app-md5'} });
    is($res->code, 200, "$store down: legacy apptoken still 200") or diag($res->content);
    reply_of($res);
    ok(wait_until(5, 0.1, sub { (slurp($h->{error_log}) // '') =~ /\[runai_token:error\].*session store \(\Q$provider\E\) is down: / }),
       "$store down: the outage is logged at error level, naming the provider and why");
    my @down = (slurp($h->{error_log}) // '') =~ /\[runai_token:error\].*session store \(\Q$provider\E\) is down/g;
    is(scalar @down, 1, "$store down: one line for the outage, not one per refused request");

    # --- the store comes back on the same port: no httpd restart ---
    my $t0 = time;
    restart_service($svc);
    my $tries = 0;
    # Back means back for every child: each child's store client retries a
    # dead server on its own clock, so wait for several grants in a row.
    my $streak = 0;
    my $back = wait_until($RECOVERY, 0.25, sub {
        $tries++;
        my $r = password_login($p, 'bob', $s->{users}{bob});
        reply_of($r);
        $streak = $r->code == 200 ? $streak + 1 : 0;
        return $streak >= 6;
    });
    my $took = time - $t0;
    ok($back, "$store back: the password grant answers 200 again within $RECOVERY s, httpd untouched");
    my($refused) = (slurp($h->{error_log}) // '') =~ /\[runai_token:notice\].*session store \(\Q$provider\E\) is back after [0-9.]+ s; (\d+) requests were refused meanwhile/;
    ok(defined $refused && $refused >= 5,
       "$store back: one line says so, with the number of refused requests (at least the 5 above)")
        or diag("refused: " . ($refused // 'no line'));
    my $line = sprintf('%s restarted: grants worked again after %.1f s (%d password attempts)', $store, $took, $tries);
    diag($line);
    push @summary, $line;
    my $r = mint_refresh($p, "$store back");
    is(refresh_call($p, $r)->code, 200, "$store back: refresh_token");
    my $c = mint_code($p, "$store back");
    is(exchange_call($p, $c, $cb)->code, 200, "$store back: authorize and exchange_token");
    # a store without persistence lost what it held
    check_error(refresh_call($p, $r_before), 401, qr/^invalid refresh token$/,
                "$store back: a session from before the crash is gone (no persistence configured)");

    # --- sessions survive an httpd restart with an external store ---
    my $r1 = mint_refresh($p, "$store before -k restart");
    my $c1 = mint_code($p, "$store before -k restart");
    restart_httpd($h);
    $res = refresh_call($p, $r1);
    is($res->code, 200, "$store: a refresh token minted before apache2 -k restart works after it")
        or diag($res->content);
    my $r2 = (reply_of($res) || {})->{refreshToken} // '';
    is(exchange_call($p, $c1, $cb)->code, 200, "$store: a code minted before apache2 -k restart works after it");
    restart_httpd($h, 'stop');
    $res = refresh_call($p, $r2);
    is($res->code, 200, "$store: a refresh token minted before httpd stop + start works after it")
        or diag($res->content);
    reply_of($res);
}

# --- shmcb (the default) keeps its records across a restart (state file) -----------
{
    my $h = start_httpd(name => 'shmcb', site => RunaiHosts::session_site());
    push @hosts, $h;
    my $p = $h->{port};
    my $ra = mint_refresh($p, 'shmcb');
    my $rb = mint_refresh($p, 'shmcb');
    is(refresh_call($p, $rb)->code, 200, 'shmcb: refresh before any restart');
    my $rc = mint_refresh($p, 'shmcb');
    restart_httpd($h);
    my $res = refresh_call($p, $ra);
    is($res->code, 200, 'shmcb: a refresh token minted before apache2 -k restart works after it')
        or diag($res->content);
    reply_of($res);
    my $rd = mint_refresh($p, 'shmcb after -k restart');
    restart_httpd($h, 'stop');
    $res = refresh_call($p, $rd);
    is($res->code, 200, 'shmcb: a refresh token minted before stop + start works after it')
        or diag($res->content);
    reply_of($res);
    $res = refresh_call($p, $rc);
    is($res->code, 200, 'shmcb: so does an older one') or diag($res->content);
    reply_of($res);
}

my $logs = Apache::Test::vars('t_logs');
stop_httpd(@hosts);
assert_logs_clean('13_store_failure', catfile($logs, 'error_log'),
                  map { ($_->{error_log}, $_->{access_log}) } @hosts);
diag('summary: ' . join('; ', @summary));
done_testing();

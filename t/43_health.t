# SetHandler runai-token-health: 200 and a small JSON document when the
# signing keys are loaded and the session store answers, 503 with the
# reason otherwise; checked on the Apache::Test server (the default store)
# and on httpd instances of its own: over a redis-server that is stopped and
# started again under it, and without a signing key.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Time::HiRes qw(time);
use RunaiTest;
use RunaiHosts;

sub health {
    my($port, %o) = @_;
    return http_request(port => $port, method => $o{method} // 'GET', path => '/health');
}

sub healthy {
    my($res, $name, $provider) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    like($res->header('Cache-Control') // '', qr/no-store/, "$name: no-store");
    my $b = response_json($res) || {};
    is($b->{status}, 'ok', "$name: status ok");
    cmp_ok($b->{keys} // 0, '>=', 1, "$name: keys loaded");
    is_deeply($b->{store}, { provider => $provider, ok => JSON::PP::true() }, "$name: the store answers");
    ok(!exists $b->{reason}, "$name: no reason");
}

sub unhealthy {
    my($res, $name, $reason) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 503, "$name: 503") or diag($res->as_string);
    my $b = response_json($res) || {};
    is($b->{status}, 'unavailable', "$name: status unavailable");
    like($b->{reason} // '', $reason, "$name: the reason");
    return $b;
}

# --- the Apache::Test server: the default store ---------------------------------
healthy(health(vhost_port('health')), 'default store', 'runai-shm');
is(health(vhost_port('health'), method => 'HEAD')->code, 200, 'HEAD: 200');
is(health(vhost_port('health'), method => 'POST')->code, 405, 'POST: 405');

# --- redis stopped and started under a running httpd ------------------------------
my $svc = start_redis();
my $site = RunaiHosts::session_site() . "<Location /health>\n    SetHandler runai-token-health\n</Location>\n";
my $h = start_httpd(name => 'health', cache => "redis:127.0.0.1:$svc->{port}", global => 'RedisConnPoolTTL 1',
                    site => $site);
my $p = $h->{port};
healthy(health($p), 'redis up', 'redis');
kill_service($svc);
my $b = unhealthy(health($p), 'redis killed', qr/session store did not answer/);
is_deeply($b->{store}, { provider => 'redis', ok => JSON::PP::false() }, 'redis killed: store ok false');
# app_token needs no store: the health says the server cannot serve sessions
is(token_call($p, { appID => 'app-md5', appSecret => load_secrets()->{apps}{'app-md5'} })->code, 200,
   'redis killed: app_token still works (the health is about sessions too)');
restart_service($svc);
my $t0 = time;
# Every child must have reconnected: APR's client marks a server dead in
# each child apart, and retries it only after 5 s (issue 16).
ok(wait_until(30, 0.2, sub { !grep { health($p)->code != 200 } 1 .. 8 }),
   'redis back: the health answers 200 again, eight times in a row')
    or diag(health($p)->as_string);
note(sprintf 'healthy again in every child %.1f s after redis restarted', time - $t0);
healthy(health($p), 'redis back', 'redis');

stop_httpd($h);

# --- an httpd without a signing key (and so without a store) ----------------------
my $bare = start_httpd(name => 'health-bare', site => "<Location /health>\n    SetHandler runai-token-health\n</Location>\n");
my $nb = unhealthy(health($bare->{port}), 'an httpd without a signing key', qr/no signing key/);
is($nb->{keys}, 0, 'without a key: keys 0');
is_deeply($nb->{store}, { provider => undef, ok => JSON::PP::true() }, 'without a key: no store to ask');
stop_httpd($bare);
done_testing();

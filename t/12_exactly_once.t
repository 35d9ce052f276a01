# Exactly once: of N concurrent redemptions of one code, exactly one
# succeeds and every other gets 401; N concurrent copies of one refresh
# token all get the same successor (one successor, never a fork: the
# session's tokens are fixed per generation), and that successor works. On
# one host (the Apache::Test server, shmcb store, the module's global
# mutex) and across two independent httpd instances sharing redis, then
# sharing memcached (a code minted on host A redeemed on host B; the
# concurrent requests split between both hosts). The counts go to diag()
# for the issue's closing note.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

my $N = 24;        # concurrent clients per round
my $ROUNDS = 2;    # rounds per backend and kind
my $s = load_secrets();
my $cb = 'https://app.example.test/callback';
my $json = JSON::PP->new->utf8->canonical;
my @summary;

sub exchange_req {
    my($port, $code) = @_;
    return { port => $port, method => 'POST', path => '/api/v1/token',
             body => $json->encode({ grantType => 'exchange_token', code => $code, redirectUri => $cb }) };
}

sub refresh_req {
    my($port, $token) = @_;
    return { port => $port, method => 'POST', path => '/api/v1/token',
             body => $json->encode({ grantType => 'refresh_token', refreshToken => $token }) };
}

# A code of alice for webapp from PORT's authorize endpoint.
sub mint_code {
    my $port = shift;
    my $res = authorize_call($port, 'alice', $s->{users}{alice}, { client_id => 'webapp', redirect_uri => $cb });
    my $code = code_of($res);
    ok(defined $code, "authorize on port $port: a code") or diag($res->code . ' ' . $res->content);
    return $code // 'none';
}

sub mint_refresh {
    my $port = shift;
    my $res = password_login($port, 'bob', $s->{users}{bob});
    my $body = reply_of($res) || {};
    ok(defined $body->{refreshToken}, "password on port $port: a refresh token") or diag($res->content);
    return $body->{refreshToken} // 'none';
}

# Runs one round of a code: every request at once. Exactly one 200, the
# others 401.
sub code_round {
    my($name, @reqs) = @_;
    my $message = 'invalid or expired code';
    my @res = race(@reqs);
    my %by;
    $by{ $_->code }++ for @res;
    my $won = $by{200} // 0;
    is($won, 1, "$name: exactly one of " . scalar(@reqs) . ' concurrent redemptions succeeds')
        or diag('statuses: ' . join(', ', map { "$_ x$by{$_}" } sort keys %by));
    is($by{401} // 0, @reqs - 1, "$name: the other " . (@reqs - 1) . ' get 401');
    my @other = grep { $_->code == 401 } @res;
    is(scalar(grep { (eval { $json->decode($_->content)->{message} } // '') eq $message } @other),
       scalar(@other), "$name: each 401 says '$message'");
    my($winner) = grep { $_->code == 200 } @res;
    my $body = $winner ? reply_of($winner) : undef;
    return ($won, scalar @reqs, $body);
}

# Runs one round of a refresh token: every request at once. Each gets 200
# and the same successor. Returns (1 for one successor, requests, a body).
sub refresh_round {
    my($name, @reqs) = @_;
    my @res = race(@reqs);
    my %by;
    $by{ $_->code }++ for @res;
    is($by{200} // 0, scalar @reqs, "$name: each of " . scalar(@reqs) . ' concurrent copies gets 200')
        or diag('statuses: ' . join(', ', map { "$_ x$by{$_}" } sort keys %by));
    my %next;
    for my $res (grep { $_->code == 200 } @res) {
        my $body = reply_of($res) || {};
        $next{ $body->{refreshToken} // '' }++;
    }
    is(scalar keys %next, 1, "$name: one successor for all of them, never a fork")
        or diag('successors: ' . join(', ', map { "x$_" } values %next));
    my($one) = keys %next;
    return (keys %next == 1 ? 1 : 0, scalar @reqs, { refreshToken => $one });
}

# ROUNDS rounds of N for codes and for refresh tokens; PORTS are used in turn.
sub backend {
    my($label, $mint_port, @ports) = @_;
    for my $kind (qw(code refresh)) {
        my($tried, $won) = (0, 0);
        for my $r (1 .. $ROUNDS) {
            my $secret = $kind eq 'code' ? mint_code($mint_port) : mint_refresh($mint_port);
            my @reqs = map {
                my $port = $ports[$_ % @ports];
                $kind eq 'code' ? exchange_req($port, $secret) : refresh_req($port, $secret);
            } 0 .. $N - 1;
            my($w, $t, $body) = $kind eq 'code' ? code_round("$label, $kind, round $r", @reqs)
                                                : refresh_round("$label, $kind, round $r", @reqs);
            my $res = refresh_call($ports[-1], ($body || {})->{refreshToken} // 'none');
            is($res->code, 200, "$label, $kind, round $r: the new refresh token works");
            reply_of($res);
            $won += $w;
            $tried += $t;
        }
        my $line = $kind eq 'code'
            ? sprintf('exactly once, %s, authorization code: %d concurrent redemptions (%d rounds of %d), %d succeeded',
                      $label, $tried, $ROUNDS, $N, $won)
            : sprintf('exactly one successor, %s, refresh token: %d concurrent copies (%d rounds of %d), %d rounds with exactly one successor',
                      $label, $tried, $ROUNDS, $N, $won);
        diag($line);
        push @summary, $line;
    }
}

# --- one host: the Apache::Test server (shmcb) ------------------------------------------
my $sess = vhost_port('sess');
backend('default store, one host (Apache::Test server)', $sess, $sess);

# --- two hosts sharing a store --------------------------------------------------------------
my @hosts;
for my $store (qw(redis memcached)) {
    my $svc = $store eq 'redis' ? start_redis() : start_memcached();
    my $cache = ($store eq 'redis' ? 'redis' : 'memcache') . ":127.0.0.1:$svc->{port}";
    my $site = RunaiHosts::session_site(extra => 'RunaiTokenRefreshRetry 2');
    my $a = start_httpd(name => "$store-a", cache => $cache, site => $site);
    my $b = start_httpd(name => "$store-b", cache => $cache, site => $site);
    push @hosts, $a, $b;
    my($pa, $pb) = ($a->{port}, $b->{port});

    # one at a time first: a code of A redeemed on B, a session of A refreshed on B
    my $code = mint_code($pa);
    my $res = exchange_call($pb, $code, $cb);
    is($res->code, 200, "$store: a code minted on host A is redeemed on host B") or diag($res->content);
    my $body = reply_of($res) || {};
    my(undef, $at) = jwt_parts($body->{accessToken});
    is($at && $at->{sub}, 'alice', "$store: host B's token is alice's");
    is(exchange_call($pa, $code, $cb)->code, 401, "$store: the same code on host A afterwards: 401");
    is(exchange_call($pb, $code, $cb)->code, 401, "$store: and on host B again: 401");

    my $r0 = mint_refresh($pa);
    $res = refresh_call($pb, $r0);
    is($res->code, 200, "$store: a refresh token of host A is refreshed on host B") or diag($res->content);
    my $r1 = (reply_of($res) || {})->{refreshToken} // '';
    # a client that lost host B's answer retries on host A: the same successor
    $res = refresh_call($pa, $r0);
    is((reply_of($res) || {})->{refreshToken} // $res->code, $r1,
       "$store: the same token retried on host A: host B's successor again");
    $res = refresh_call($pa, $r1);
    is($res->code, 200, "$store: host B's new token refreshes on host A") or diag($res->content);
    my $r2 = (reply_of($res) || {})->{refreshToken} // '';
    my $rotated = time;

    backend("$store shared by two hosts (A mints, A and B redeem)", $pa, $pa, $pb);

    # a rotated token presented after the retry window (2 s here) revokes
    # the session, across hosts
    my $wait = 2.2 - (time - $rotated);
    sleep $wait if $wait > 0;
    is(refresh_call($pa, $r0)->code, 401, "$store: the first token presented again on host A: 401");
    is(refresh_call($pb, $r2)->code, 401, "$store: the newest token on host B: revoked with its session");
}

# --- no secret in any log ---------------------------------------------------------------------
my $logs = Apache::Test::vars('t_logs');
stop_httpd(@hosts);    # their logs are complete once they stopped
assert_logs_clean('12_exactly_once',
    catfile($logs, 'error_log'), catfile($logs, 'access_log'),
    map { ($_->{error_log}, $_->{access_log}) } @hosts);

diag('summary: ' . join('; ', @summary));
done_testing();

# Redis outages and failover under load (issue 16), with two independent
# httpd hosts (t/lib/RunaiHosts.pm) sharing redis through the module's own
# client, and strictly periodic clients: each holds one session (a refresh
# chain) and refreshes it every PERIOD seconds, alternating between the
# hosts, presenting the same token again after a 503 (as Run:ai's clients
# do) and the new one after a 200.
#   (a) redis (append-only file on) stopped and started three times: on
#       each host the first 200 comes within 1 s of redis answering PING,
#       and every answer to a request sent later than that is a 200;
#   (b) sentinel failover: a primary, two replicas, three sentinels
#       (RunaiTokenCache redis-sentinel:..., RunaiTokenRedisReplicas 1):
#       the primary killed under load, then started again as operators do
#       (its own configuration, a master until the sentinels demote it):
#       grants work again within 1 s of the sentinels naming the new
#       primary, and no request fails after that, also while the old
#       primary answers as a master.
# In both: no chain lost (no 401 to a token its client legitimately holds),
# no token redeemed twice (every 200 to one token names one successor),
# every session still refreshes at the end, and an earlier token of each
# chain, presented again, answers 401. The 503 windows are reported.
# Every wait polls for its event; everything started here is stopped in
# RunaiHosts' END block, also when the test dies.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

$SIG{PIPE} = 'IGNORE';
my $s = load_secrets();
my $JSON = JSON::PP->new->utf8->canonical;
my $CHAINS = 12;
my $PERIOD = 0.2;    # each client's pace: 60 refreshes/s in all
my $BOUND = 1.0;     # grants work again within this of the store answering
my(@summary, @logs);
# Clients refresh faster than RunaiTokenRefreshRate's default allows.
my $SITE = session_site(extra => 'RunaiTokenRefreshRate off');

# --- the periodic clients ----------------------------------------------------

# One client: refreshes its chain every PERIOD s on the hosts in turn until
# the stop file exists; one line per answer: start, end, host, status,
# token presented, successor (or -).
sub chain_loop {
    my($id, $token, $ports, $file, $stop) = @_;
    open my $out, '>', $file or POSIX::_exit(2);
    $out->autoflush(1);
    my $i = $id;
    my $next = time;
    while (!-e $stop) {
        my $port = $ports->[$i++ % @$ports];
        my $t = time;
        my $res = refresh_call($port, $token, timeout => 5);
        my $body = eval { $JSON->decode($res->content) } || {};
        my $succ = $res->code == 200 ? ($body->{refreshToken} // '-') : '-';
        printf $out "%.4f %.4f %d %d %s %s\n", $t, time, $port, $res->code, $token, $succ;
        $token = $succ if $res->code == 200 && $succ ne '-';
        last if $res->code == 401;     # lost: the drill fails on it
        $next += $PERIOD;
        my $wait = $next - time;
        sleep $wait if $wait > 0;
        $next = time if $wait < -$PERIOD;
    }
    close $out;
}

# start_load(TOKENS, PORTS): one client per token; returns the load.
sub start_load {
    my($tokens, $ports) = @_;
    my $dir = tempdir('runai-failover-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $load = { dir => $dir, stop => catfile($dir, 'stop'), pids => [], n => scalar @$tokens };
    for my $i (0 .. $#$tokens) {
        my $pid = fork // die "fork: $!";
        unless ($pid) {
            local $SIG{ALRM} = sub { POSIX::_exit(3) };
            alarm 300;
            chain_loop($i, $tokens->[$i], $ports, catfile($dir, $i), $load->{stop});
            POSIX::_exit(0);
        }
        push @{ $load->{pids} }, $pid;
    }
    return $load;
}

# The answers so far: [start, end, port, status, token, successor, chain].
sub answers {
    my $load = shift;
    my @a;
    for my $i (0 .. $load->{n} - 1) {
        for my $line (split /\n/, slurp(catfile($load->{dir}, $i)) // '') {
            my @f = split / /, $line;
            push @a, [@f, $i] if @f == 6;
        }
    }
    return sort { $a->[0] <=> $b->[0] } @a;
}

# Waits (bounded) until every host answered a 200 to a request sent after
# time T; returns 1 when they did.
sub each_host_granted_after {
    my($load, $t, $ports, $seconds) = @_;
    return wait_until($seconds, 0.05, sub {
        my %ok;
        $ok{ $_->[2] } = 1 for grep { $_->[0] > $t && $_->[3] == 200 } answers($load);
        return @$ports == grep { $ok{$_} } @$ports;
    });
}

sub stop_load {
    my $load = shift;
    open my $fh, '>', $load->{stop} or die "stop: $!";
    close $fh;
    my @killed = reap(30, @{ $load->{pids} });
    ok(!@killed, 'the clients stopped when told') or diag("killed @killed");
    return answers($load);
}

# The checks common to both drills, on the answers of one load and the
# chains' last tokens.
sub check_chains {
    my($name, $answers, $ports) = @_;
    my(%succ, %last, %first, %by);
    for my $a (@$answers) {
        my(undef, undef, $port, $code, $tok, $next, $chain) = @$a;
        $by{$code}++;
        if ($code == 200) {
            $succ{$tok}{$next}++;
            $last{$chain} = $next;
            $first{$chain} //= $tok;
        }
    }
    diag("$name: answers " . join(', ', map { "$_ x$by{$_}" } sort keys %by));
    is(join(',', grep { $_ != 200 && $_ != 503 } sort keys %by), '',
       "$name: every answer is 200 or 503 (no 401: no chain lost; no other 5xx)");
    my @forks = grep { keys %{ $succ{$_} } > 1 } keys %succ;
    is(scalar @forks, 0, "$name: no token redeemed twice (one successor for every token)");
    is(scalar keys %last, $CHAINS, "$name: every chain rotated");
    my $alive = 0;
    for my $chain (sort keys %last) {
        my $res = refresh_call($ports->[$chain % @$ports], $last{$chain});
        my $body = reply_of($res) || {};
        $alive++ if $res->code == 200;
        $last{$chain} = $body->{refreshToken} if $res->code == 200;
    }
    is($alive, $CHAINS, "$name: every session still refreshes afterwards");
    my $refused = 0;
    for my $chain (sort keys %first) {
        # The chain's first token: rotated long ago, past the retry window
        # of the one before the newest.
        my $res = refresh_call($ports->[($chain + 1) % @$ports], $first{$chain});
        reply_of($res);
        $refused++ if $res->code == 401;
    }
    is($refused, scalar keys %first, "$name: an earlier token of each chain, presented again, answers 401");
}

# Per host: the 503s (count, from, to) relative to T0.
sub window {
    my($answers, $port, $t0, $t1) = @_;
    my @f = grep { $_->[2] == $port && $_->[3] == 503 && $_->[0] >= $t0 && (!$t1 || $_->[0] < $t1) } @$answers;
    return @f ? sprintf('%d x 503 from %+.2f to %+.2f s', scalar @f, $f[0][0] - $t0, $f[-1][1] - $t0) : 'no 503';
}

sub logins {
    my($ports) = @_;
    my @tokens;
    for my $i (1 .. $CHAINS) {
        my $user = $i % 2 ? 'bob' : 'alice';
        my $res = password_login($ports->[$i % @$ports], $user, $s->{users}{$user});
        my $body = reply_of($res) || {};
        push @tokens, $body->{refreshToken} if $res->code == 200 && $body->{refreshToken};
        diag("login of $user: " . $res->code . ' ' . $res->content) unless $res->code == 200;
    }
    is(scalar @tokens, $CHAINS, "$CHAINS logins");
    return @tokens;
}

sub host_lines {
    my($h, $re) = @_;
    my @l = grep { /$re/ } split /\n/, slurp($h->{error_log}) // '';
    return scalar @l;
}

# --- (a) redis stopped and started under load --------------------------------
{
    my $redis = start_redis(persist => 1);
    my %common = (cache => "redis:127.0.0.1:$redis->{port}", site => $SITE);
    my $A = start_httpd(name => 'failover-a', %common);
    my $B = start_httpd(name => 'failover-b', %common);
    push @logs, map { ($_->{error_log}, $_->{access_log}) } $A, $B;
    my @ports = ($A->{port}, $B->{port});
    my @tokens = logins(\@ports);
    my $load = start_load(\@tokens, \@ports);
    ok(each_host_granted_after($load, time, \@ports, 10), 'restart: the load runs on both hosts');
    my @ups;
    for my $round (1 .. 3) {
        my $t_down = time;
        stop_service($redis);
        # Down until both hosts have refused a few requests.
        ok(wait_until(10, 0.02, sub {
            my %n;
            $n{ $_->[2] }++ for grep { $_->[0] > $t_down && $_->[3] == 503 } answers($load);
            return 2 == grep { ($n{$_} // 0) >= 3 } @ports;
        }), "restart $round: both hosts answer 503 while redis is down");
        restart_service($redis);    # returns once redis answers PING
        my $t_up = time;
        push @ups, [$t_down, $t_up];
        ok(each_host_granted_after($load, $t_up, \@ports, 10), "restart $round: both hosts grant again");
        # What came after: the first 200 on each host, and no 503 later
        # than BOUND after redis answered.
        ok(wait_until(10, 0.05, sub { scalar grep { $_->[0] > $t_up + $BOUND + $PERIOD } answers($load) }),
           "restart $round: the load went on past the bound");
        my @a = answers($load);
        for my $port (@ports) {
            my($first) = grep { $_->[2] == $port && $_->[3] == 200 && $_->[1] > $t_up } @a;
            my $late = grep { $_->[2] == $port && $_->[3] != 200 && $_->[0] > $t_up + $BOUND } @a;
            my $after = $first ? $first->[1] - $t_up : 99;
            ok($after <= $BOUND, sprintf('restart %d: host %s: first 200 %.2f s after redis answered (bound %.1f s)',
                                         $round, $port == $A->{port} ? 'A' : 'B', $after, $BOUND));
            is($late, 0, "restart $round: host " . ($port == $A->{port} ? 'A' : 'B')
                         . ": every request sent more than $BOUND s after redis answered got 200");
            push @summary, sprintf('restart %d, host %s: %s; first 200 %.2f s after PING', $round,
                                   $port == $A->{port} ? 'A' : 'B', window(\@a, $port, $t_down, $t_up + 5), $after);
        }
    }
    my @a = stop_load($load);
    check_chains('restart', \@a, \@ports);
    for my $h ($A, $B) {
        my $down = host_lines($h, qr/\[runai_token:error\].*session store \(redis\) is down/);
        my $back = host_lines($h, qr/\[runai_token:notice\].*session store \(redis\) is back after/);
        is($down, 3, "restart: $h->{name} logged each of the 3 outages once");
        is($back, 3, "restart: $h->{name} logged each return once");
    }
    stop_httpd($_) for $A, $B;
    stop_service($redis);
}

# --- (b) sentinel failover ----------------------------------------------------
{
    my $primary = start_redis(persist => 1);
    my @replicas = map {
        start_redis(persist => 1, args => ['--replicaof', '127.0.0.1', $primary->{port}])
    } 1 .. 2;
    ok(wait_until(15, 0.05, sub { my @on = (redis_cmd($primary->{port}, 'INFO', 'replication') // '') =~ /state=online/g; @on == 2 }),
       'sentinel: the primary has its two replicas, in sync');
    my $conf = "sentinel monitor mymaster 127.0.0.1 $primary->{port} 2\n"
             . "sentinel down-after-milliseconds mymaster 1000\n"
             . "sentinel failover-timeout mymaster 5000\n"
             . "sentinel parallel-syncs mymaster 1\n";
    my @sentinels = map { start_sentinel(conf => $conf) } 1 .. 3;
    ok(wait_until(20, 0.1, sub {
        3 == grep { (redis_cmd($_->{port}, 'SENTINEL', 'ckquorum', 'mymaster') // '') =~ /^OK 3 usable/ } @sentinels
    }), 'sentinel: the three sentinels see each other (ckquorum)');
    my $list = join ',', map { "127.0.0.1:$_->{port}" } @sentinels;
    my %common = (cache => "redis-sentinel:mymaster\@$list", global => "RunaiTokenRedisReplicas 1 500",
                  site => $SITE);
    my $A = start_httpd(name => 'sentinel-a', %common);
    my $B = start_httpd(name => 'sentinel-b', %common);
    push @logs, map { ($_->{error_log}, $_->{access_log}) } $A, $B;
    my @ports = ($A->{port}, $B->{port});
    my @tokens = logins(\@ports);
    my $load = start_load(\@tokens, \@ports);
    ok(each_host_granted_after($load, time, \@ports, 10), 'sentinel: the load runs on both hosts');

    my $master_port = sub {
        my $r = redis_cmd($sentinels[0]{port}, 'SENTINEL', 'get-master-addr-by-name', 'mymaster');
        return ref $r eq 'ARRAY' ? $r->[1] : 0;
    };
    my $t_kill = time;
    kill_service($primary);
    my $new;
    ok(wait_until(30, 0.02, sub { my $p = $master_port->(); $new = $p if $p && $p != $primary->{port}; $new }),
       'sentinel: the sentinels promoted a replica');
    my $t_promoted = time;
    ok(wait_until(10, 0.02, sub { (redis_cmd($new, 'ROLE') // [''])->[0] eq 'master' }),
       'sentinel: the new primary answers as a master');
    ok(each_host_granted_after($load, $t_promoted, \@ports, 10), 'sentinel: both hosts grant again');

    # The old primary started again as operators do: its own configuration,
    # a master alone until the sentinels turn it into a replica.
    my $t_back = time;
    restart_service($primary);
    my $alone = (redis_cmd($primary->{port}, 'ROLE') // [''])->[0];
    diag("sentinel: the old primary answers as '$alone' when it comes back");
    ok(wait_until(40, 0.05, sub { (redis_cmd($primary->{port}, 'ROLE') // [''])->[0] eq 'slave' }),
       'sentinel: the sentinels demote the old primary');
    my $t_demoted = time;
    ok(each_host_granted_after($load, $t_demoted, \@ports, 10), 'sentinel: the load went on after the demotion');
    my @a = stop_load($load);
    for my $port (@ports) {
        my $h = $port == $A->{port} ? 'A' : 'B';
        my $late = grep { $_->[2] == $port && $_->[3] != 200 && $_->[0] > $t_promoted + $BOUND } @a;
        is($late, 0, "sentinel: host $h: every request sent more than $BOUND s after the promotion got 200 "
                     . '(also while the old primary answered as a master)');
        push @summary, sprintf('sentinel, host %s: %s (kill at 0, promotion seen at %+.2f s, old primary back at %+.2f s, demoted at %+.2f s)',
                               $h, window(\@a, $port, $t_kill), $t_promoted - $t_kill, $t_back - $t_kill, $t_demoted - $t_kill);
    }
    check_chains('sentinel', \@a, \@ports);
    stop_httpd($_) for $A, $B;
}

diag("summary: $_") for @summary;
assert_logs_clean('failover drills', @logs);
done_testing();

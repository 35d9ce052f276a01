# A fault drill for refresh-token rotation behind a faulty TCP proxy
# (t/lib/RunaiFaultProxy.pm) between an independent httpd and a real
# redis-server. One clean refresh through the proxy tells which redis
# commands a rotation sends; then, for each of those commands and each
# fault (the request dropped, the reply dropped after the write happened,
# the command cut in half, the command held within and beyond the client's
# timeout), bob logs in, the fault is armed on that command, and the client
# refreshes and retries the SAME refresh token as a real client does (on a
# 503 or a failed connection, a bounded number of times, a small pause).
# Checked for every session:
#   - it is not lost: a retry answers 200 with a new refresh token, and
#     that token refreshes again with 200 once every request of the drill
#     (an abandoned one too) has finished on the server;
#   - the same token presented again within the retry window, at once and
#     after the drill settled, returns the SAME refresh token as the 200
#     before it (one successor, never a fork);
#   - no 401 for a token the client legitimately holds; every failure is
#     the store's 503 Error body (or the client's own timeout);
#   - no false alarm: no "refresh token reused" in the error log.
# Then reuse detection still works: on a site with RunaiTokenRefreshRetry 2,
# a rotated token presented after the window answers 401, logs
# "refresh token reused: its session is revoked", and the session's current
# token answers 401 too.
#
# The store client's timeout: mod_socache_redis passes RedisTimeout to APR
# in microseconds and apr_redis multiplies it by 10^6 again, so a held redis
# command is waited for practically forever (a 6 s hold answered 200 here).
# The timeout that matters is the client's: the "beyond" hold outlasts it,
# the client gives up and retries while the first request still runs.
# A failed store command makes APR treat the server as dead for 5 s in that
# child; the host runs one child so each retry meets that same state, and
# the client's retries cover those 5 s.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use JSON::PP ();
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;
use RunaiFaultProxy;

my $s = load_secrets();
my $STORE_DOWN = '{"code":503,"message":"session store unavailable"}';
my $CLIENT_TIMEOUT = 1.5;    # seconds the client waits for an answer
my $RETRY_PAUSE = 0.25;      # seconds between a client's retries
my $RETRY_MAX = 48;          # attempts per refresh, the first included
my $RETRY_SECONDS = 14;      # and at most this long (APR's dead server: 5 s)
my $WITHIN_MS = 300;         # a hold the client waits out
my $BEYOND_MS = 2500;        # a hold beyond the client's timeout (and the retry's pause)
my $REUSE_WINDOW = 2;        # RunaiTokenRefreshRetry of the reuse site

my @ACTIONS = (
    { name => 'drop_request', action => 'drop_request' },
    { name => 'drop_reply',   action => 'drop_reply' },
    { name => 'cut',          action => 'cut' },
    { name => "delay ${WITHIN_MS} ms (within the client's timeout)", action => 'delay', ms => $WITHIN_MS },
    { name => "delay ${BEYOND_MS} ms (beyond the client's timeout)", action => 'delay', ms => $BEYOND_MS },
);

# One child, so APR's per-child view of the store is the one every retry meets.
my $ONE_CHILD = "<IfModule mpm_event_module>\n    StartServers 1\n    ServerLimit 1\n"
              . "    MaxRequestWorkers 25\n</IfModule>\n";
# Every refresh rotates (the drill refreshes one session often); the retry
# window as asked.
sub site_extra {
    my %o = @_;
    my $extra = "    RunaiTokenRefreshRate off\n";
    $extra .= "    RunaiTokenRefreshRetry $o{retry}\n" if defined $o{retry};
    return $extra;
}

my $redis = start_redis();
my $proxy = RunaiFaultProxy->start(upstream_port => $redis->{port});
my $cache = 'redis:127.0.0.1:' . $proxy->port;
my $h = start_httpd(name => 'fault', cache => $cache, global => $ONE_CHILD,
                    site => RunaiHosts::session_site(extra => site_extra()));
my $p = $h->{port};

# A client's refresh: the same token again on a 503 or a failed connection
# (599: refused, reset, or the client's timeout), a bounded number of times.
# Returns (the last answer, [status of each attempt]). A failure other
# than the store's 503 with its Error body or the client's own failed
# connection goes to @ODD.
my @ODD;
my $SENT = 0;    # requests sent to the drill host
sub refresh_with_retries {
    my($token, %o) = @_;
    my(@codes, $res);
    my $deadline = time + $RETRY_SECONDS;
    for my $attempt (1 .. $RETRY_MAX) {
        $SENT++;
        $res = refresh_call($p, $token, timeout => $o{timeout} || $CLIENT_TIMEOUT);
        push @codes, $res->code;
        push @ODD, $res->code . ' ' . $res->content
            unless $res->code == 200 || $res->code == 599
                || ($res->code == 503 && $res->content eq $STORE_DOWN);
        last unless $res->code == 503 || $res->code == 599;
        last if time + $RETRY_PAUSE >= $deadline;
        sleep $RETRY_PAUSE;
    }
    return ($res, \@codes);
}

# bob's password grant, retried while the store is still failing from the
# drill before (APR's dead-server interval); dies when it never works.
sub login {
    my $name = shift;
    my $res;
    my $ok = wait_until($RETRY_SECONDS, $RETRY_PAUSE, sub {
        $SENT++;
        $res = password_login($p, 'bob', $s->{users}{bob});
        $res->code == 200 || ($res->code != 503 && $res->code != 599 ? -1 : 0);
    });
    is($ok, 1, "$name: bob logs in") or diag($res->code . ' ' . $res->content);
    my $rt = (reply_of($res) || {})->{refreshToken};
    die "$name: no session to drill\n" unless defined $rt;
    return $rt;
}

# Every request sent to the drill host has finished there (its access log
# line is written when it ends, also for a request whose client gave up),
# and the proxy holds no command: nothing of a drill is still running.
sub settled {
    my $done = wait_until(20, 0.05, sub {
        my @n = (slurp($h->{access_log}) // '') =~ /\n/g;
        return @n >= $SENT;
    });
    return $done && $proxy->wait_idle(10);
}

sub codes_text {
    my $codes = shift;
    my @out;
    for my $c (@$codes) {
        if (@out && $out[-1][0] == $c) { $out[-1][1]++ } else { push @out, [$c, 1] }
    }
    return join ', ', map { $_->[1] > 1 ? "$_->[0] x$_->[1]" : $_->[0] } @out;
}

sub log_size { -s $h->{error_log} || 0 }
sub log_since {
    my $from = shift;
    my $text = slurp($h->{error_log}) // '';
    return substr($text, $from);
}
sub reuse_lines { my @l = ($_[0] // '') =~ /^.*refresh token reused.*$/mg; return @l }

# --- the commands of one clean rotation ------------------------------------------------
my @seq;
for my $round (1, 2) {
    my $rt = login("clean refresh $round");
    ok($proxy->wait_idle(5), "clean refresh $round: the proxy holds nothing");
    $proxy->reset;
    $SENT++;
    my $res = refresh_call($p, $rt);
    is($res->code, 200, "clean refresh $round through the proxy: 200") or diag($res->content);
    reply_of($res);
    my $st = $proxy->status;
    if ($round == 1) {
        @seq = @{ $st->{seq} };
        cmp_ok(scalar @seq, '>', 0, 'a clean refresh sends redis commands through the proxy');
        diag('the commands of one clean rotation: ' . join(' ', @seq) . ' (by verb: '
             . join(', ', map { "$_ $st->{counts}{$_}" } sort keys %{ $st->{counts} }) . ')');
    }
    else {
        is(join(' ', @{ $st->{seq} }), join(' ', @seq),
           'a second clean refresh sends the same commands (the drill arms them by order)');
    }
}
die "no redis command seen during a refresh: nothing to drill\n" unless @seq;

# --- the drill: every step x every fault -------------------------------------------------
my(%count, @lines, $FIRED);
$count{$_} = 0 for qw(tried lost alarms forks denied fired);

# The armed fault fired (a held command fires when it is forwarded).
sub fired {
    my $name = shift;
    $FIRED = $proxy->wait_fired($BEYOND_MS / 1000 + 5);
    ok($FIRED->{fired}, "$name: the fault fired")
        or diag('proxy: ' . JSON::PP->new->canonical->encode($FIRED));
    $count{fired}++ if $FIRED->{fired};
}

# The client presents TOKEN again (it lost the answer, or retries to be
# sure): within the retry window the answer is SUCCESSOR again. Returns
# what happened, for the summary; counts 401s in $$denied and forks.
sub same_again {
    my($name, $token, $successor, $when, $denied) = @_;
    my $t1 = time;
    my($again) = refresh_with_retries($token);
    my $token2 = $again->code == 200 ? (reply_of($again) || {})->{refreshToken} // '' : undef;
    my $what;
    if (!defined $token2) {
        $$denied++ if $again->code == 401;
        $what = 'answered ' . $again->code;
        diag("$name: the same token again $when: " . $again->code . ' ' . $again->content);
    }
    elsif ($token2 eq $successor) {
        $what = 'same';
    }
    else {
        $what = 'FORK';
        $count{forks}++;
    }
    is($again->code, 200, "$name: the same token again $when, within the retry window: 200");
    is($token2 // '', $successor,
       "$name: ... and the same refresh token as the first 200 (one successor, no fork)");
    return sprintf('%s %s (%.2f s)', $when, $what, time - $t1);
}

for my $i (0 .. $#seq) {
    my $verb = $seq[$i];
    my $nth = grep { $_ eq $verb } @seq[0 .. $i];
    for my $a (@ACTIONS) {
        my $name = "step $i ($verb #$nth of the rotation), $a->{name}";
        $count{tried}++;
        my $rt = login($name);
        my $log_from = log_size();
        $proxy->reset;
        $proxy->arm(verbs => [$verb], nth => $nth, action => $a->{action}, ms => $a->{ms} || 0);

        # the refresh, retried by the client until it gets through
        my $t0 = time;
        my($res, $codes) = refresh_with_retries($rt);
        my $took = time - $t0;
        my($lost, $denied, @same, $next) = (0, 0);
        my $successor = $res->code == 200 ? (reply_of($res) || {})->{refreshToken} : undef;
        unless (defined $successor) {
            $lost = 1;
            $denied++ if $res->code == 401;
            diag("$name: the refresh ended with " . $res->code . ' ' . $res->content);
        }
        isnt($res->code, 401, "$name: no 401 for the token the client holds");
        # the same token again at once (while an abandoned request may
        # still run) ...
        push @same, same_again($name, $rt, $successor, 'at once', \$denied) if defined $successor;
        # ... and once every request of this drill, the abandoned ones too,
        # has finished on the server
        fired($name);
        ok(settled(), "$name: every request of the drill has finished, the proxy holds nothing");
        if (defined $successor) {
            push @same, same_again($name, $rt, $successor, 'after the drill settled', \$denied);
            # the successor keeps the session going
            my($n) = refresh_with_retries($successor);
            $next = $n->code;
            reply_of($n);
            $denied++ if $n->code == 401;
            $lost = 1 if $n->code != 200;
            is($n->code, 200, "$name: the new refresh token refreshes again: 200") or diag($n->content);
        }
        ok(!$lost, "$name: the session is not lost");
        $count{lost} += $lost;
        $count{denied} += $denied;
        my @alarm = reuse_lines(log_since($log_from));
        is(scalar @alarm, 0, "$name: no 'refresh token reused' in the error log (no false alarm)")
            or diag(join "\n", @alarm[0 .. ($#alarm < 2 ? $#alarm : 2)]);
        $count{alarms} += @alarm;
        push @lines, sprintf('%s: attempts %s (%.2f s); same token again: %s; successor refreshes: %s; fault: %s',
                             $name, codes_text($codes), $took, join(', ', @same) || '-', $next // '-',
                             $FIRED->{fired_detail} || 'did not fire');
    }
}

# --- reuse detection still works -----------------------------------------------------------
my $h2 = start_httpd(name => 'reuse', cache => $cache, global => $ONE_CHILD,
                     site => RunaiHosts::session_site(extra => site_extra(retry => $REUSE_WINDOW)));
{
    my $p2 = $h2->{port};
    my $res = password_login($p2, 'bob', $s->{users}{bob});
    is($res->code, 200, 'reuse site: bob logs in') or diag($res->content);
    my $t0 = (reply_of($res) || {})->{refreshToken} // 'none';
    $res = refresh_call($p2, $t0);
    my $rotated = time;
    is($res->code, 200, 'reuse site: the first refresh') or diag($res->content);
    my $t1 = (reply_of($res) || {})->{refreshToken} // 'none';
    $res = refresh_call($p2, $t0);
    is($res->code, 200, 'reuse site: the same token again within the window: 200') or diag($res->content);
    is((reply_of($res) || {})->{refreshToken} // '', $t1, 'reuse site: ... the same successor');
    is(scalar reuse_lines(slurp($h2->{error_log})), 0, 'reuse site: no alarm within the window');
    # past the window (whole seconds, either way they are compared)
    my $wait = $REUSE_WINDOW + 1.3 - (time - $rotated);
    sleep $wait if $wait > 0;
    $res = refresh_call($p2, $t0);
    is($res->code, 401, "reuse site: the rotated token presented after the ${REUSE_WINDOW} s window: 401")
        or diag($res->content);
    ok(wait_until(5, 0.05, sub {
        (slurp($h2->{error_log}) // '') =~ /refresh token reused: its session is revoked/ }),
       "reuse site: the error log says 'refresh token reused: its session is revoked'");
    $res = refresh_call($p2, $t1);
    is($res->code, 401, "reuse site: the session's current token answers 401 (the session is revoked)")
        or diag($res->content);
}

# --- the summary ---------------------------------------------------------------------------
my $all_alarms = scalar reuse_lines(slurp($h->{error_log}));
is($all_alarms, 0, "drill host: no 'refresh token reused' line in its whole error log");
diag($_) for @lines;
my $summary = sprintf('fault drill: %d steps (%s) x %d faults = %d tried, %d fired; '
                    . 'sessions lost %d, 401s to a legitimate holder %d, false alarms %d, forks %d',
                      scalar @seq, join(' ', @seq), scalar @ACTIONS, $count{tried}, $count{fired},
                      $count{lost}, $count{denied}, $count{alarms}, $count{forks});
diag($summary);
is($count{tried}, @seq * @ACTIONS, 'every step was drilled with every fault');
is($count{fired}, $count{tried}, 'every armed fault fired');
is($count{lost}, 0, 'sessions lost: 0');
is($count{denied}, 0, '401s for a token the client legitimately holds: 0');
is($count{alarms}, 0, 'false reuse alarms: 0');
is($count{forks}, 0, 'forks (two successors of one token): 0');
is(scalar @ODD, 0, "every failed attempt was the store's 503 Error body or the client's own failed connection")
    or diag('other answers: ' . join('; ', map { substr($_, 0, 120) } @ODD[0 .. ($#ODD < 4 ? $#ODD : 4)]));

stop_httpd($h, $h2);
assert_logs_clean('33_fault_drill', map { ($_->{error_log}, $_->{access_log}) } $h, $h2);
$proxy->stop;
done_testing();

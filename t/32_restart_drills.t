# Restart drills on the default store (issue 12, item 1), on an httpd of
# its own with the default configuration (runai-shm, RunaiTokenStateDir unset):
#   - N live sessions, N outstanding codes and a throttle counter at its
#     limit, then apache2 -k graceful, -k restart, and -k stop followed by a
#     start: N of N refresh tokens and N of N codes work after each, and the
#     counter still refuses (429);
#   - SIGKILL of the whole process tree: every change older than the stated
#     bound ($BOUND s, docs/operations.md) survives; the changes of the last
#     moment before the kill are counted (the loss measured); sessions
#     refreshed in that last moment (a rotation the state file missed) go
#     on with the tokens their clients hold;
#   - the state file: 0600, no refresh token or code in it;
#   - a truncated, then a garbage state file at start: a warning naming it,
#     the file set aside, a clean start with an empty store;
#   - the store itself outlives graceful and restart (no state file needed),
#     not a stop; a new store size at graceful is filled from the state file.
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
my $N = 10;
my $BOUND = 5;    # seconds: a change this old at a crash is on disk
my $ATTEMPTS = 10;    # the default RunaiTokenThrottle 10 60
my $addr = 20;        # each drill fails carol from an address of its own
my @summary;

my $h = start_httpd(name => 'durable', site => session_site());
my $p = $h->{port};
my $state = catfile($h->{dir}, 'runai-token', 'runai-token.state');
my @minted;    # every token and code, to look for in the state file

sub mint {
    my($what) = @_;
    my(@r, @c);
    for my $i (1 .. $N) {
        my $res = password_login($p, 'bob', $s->{users}{bob});
        push @r, (reply_of($res) || {})->{refreshToken} // 'none';
        my $code = code_of(authorize_call($p, 'alice', $s->{users}{alice},
                                          { client_id => 'webapp', redirect_uri => $cb }));
        push @c, $code // 'none';
    }
    is(scalar(grep { $_ ne 'none' } @r, @c), 2 * $N, "$what: $N sessions and $N codes minted");
    push @minted, @r, @c;
    return (\@r, \@c);
}

# A throttle counter at its limit: ATTEMPTS wrong passwords for carol from
# an address of its own; returns that address.
sub fail_to_limit {
    my($what) = @_;
    my $from = '127.0.0.' . $addr++;
    my @codes = map { password_login($p, 'carol', $s->{wrong}, local_addr => $from)->code } 1 .. $ATTEMPTS;
    is(scalar(grep { $_ == 401 } @codes), $ATTEMPTS, "$what: $ATTEMPTS wrong passwords for carol from $from");
    return $from;
}

# 1 when the counter of fail_to_limit still refuses carol's right password.
sub still_throttled {
    my $from = shift;
    return password_login($p, 'carol', $s->{users}{carol}, local_addr => $from)->code == 429 ? 1 : 0;
}

# How many of the refresh tokens and codes still work (each used once).
sub survivors {
    my($r, $c) = @_;
    my $rok = grep { refresh_call($p, $_)->code == 200 } @$r;
    my $cok = grep { exchange_call($p, $_, $cb)->code == 200 } @$c;
    return ($rok, $cok);
}

sub drill {
    my($what, $do) = @_;
    my($r, $c) = mint($what);
    my $from = fail_to_limit($what);
    $do->();
    my($rok, $cok) = survivors($r, $c);
    is($rok, $N, "$what: $N of $N refresh tokens work after it");
    is($cok, $N, "$what: $N of $N codes are redeemed after it");
    my $kept = still_throttled($from);
    ok($kept, "$what: the throttle counter is kept (carol's right password from $from: 429)");
    push @summary, "$what: sessions $N before, $rok after; codes $N before, $cok after; throttle counter "
                   . ($kept ? 'kept' : 'lost');
}

drill('apache2 -k graceful', sub {
    my($rc, $out) = graceful_httpd($h);
    is($rc, 0, 'graceful restart') or diag($out);
});
drill('apache2 -k restart', sub { restart_httpd($h) });
drill('apache2 -k stop + start', sub { restart_httpd($h, 'stop') });

# --- the state file ---------------------------------------------------------------
ok(-f $state, "the state file is $state (under DefaultRuntimeDir)");
my $mode = (stat $state)[2] // 0;
is(sprintf('%04o', $mode & 07777), '0600', 'the state file is 0600');
my $bytes = slurp($state) // '';
is(scalar(grep { index($bytes, $_) >= 0 } @minted), 0,
   'no refresh token or code appears in the state file (keys are hashes)');

# --- SIGKILL: changes older than the bound survive ------------------------------
{
    my($r, $c) = mint('SIGKILL, older');
    my $from = fail_to_limit('SIGKILL, older');
    my $done = time;
    # The bound is the claim under test: a change $BOUND s old when the
    # process tree dies is on disk. The first write after the changes is
    # timed while the bound runs out.
    my $written;
    wait_until($BOUND, 0.05, sub {
        $written //= time if ((Time::HiRes::stat($state))[9] // 0) > $done;
        return 0;
    });
    my $last = time;
    my($rl, $cl) = mint('SIGKILL, last moment');
    # the older sessions refreshed now: the clients hold generation 2, the
    # state file (at best) generation 1
    my @rotated = map { (reply_of(refresh_call($p, $_)) || {})->{refreshToken} // 'none' } @$r;
    is(scalar(grep { $_ ne 'none' } @rotated), $N, "SIGKILL: $N older sessions refreshed in the last moment");
    my $kill_at = time;
    my $n = kill_httpd($h);
    ok($n >= 2, "SIGKILL to the parent and its children ($n processes)");
    # what a writer killed in the middle of its write leaves behind
    my $tmp = "$state.99999.tmp";
    open my $fh, '>', $tmp or die "$tmp: $!";
    print $fh 'half a state file';
    close $fh or die "$tmp: $!";
    start_httpd_again($h);
    ok(!-e $tmp, 'SIGKILL: the temporary file of a killed writer is removed at start');
    my($rok, $cok) = survivors(\@rotated, $c);
    is($rok, $N, "SIGKILL: $N of $N sessions older than $BOUND s go on with the token "
                 . 'of their last-moment refresh');
    is($cok, $N, "SIGKILL: $N of $N codes older than $BOUND s are redeemed after it");
    ok(still_throttled($from), "SIGKILL: a throttle counter older than $BOUND s is kept (429 from $from)");
    my($rlok, $clok) = survivors($rl, $cl);
    my $caught = () = (slurp($h->{error_log}) // '') =~ /session record was behind its refresh token/g;
    my $lat = defined $written ? sprintf('%.1f s', $written - $done) : "not within $BOUND s";
    ok(defined $written, "SIGKILL: the state file was written within $BOUND s of the changes ($lat)");
    push @summary, sprintf('SIGKILL: %d of %d sessions and %d of %d codes older than %d s kept; '
                           . 'of those made in the %.2f s before the kill, %d of %d sessions and %d of %d codes lost; '
                           . 'first write after the changes %s; %d of %d last-moment rotations missed by the '
                           . 'file and caught up',
                           $rok, $N, $cok, $N, $BOUND, $kill_at - $last,
                           $N - $rlok, $N, $N - $clok, $N, $lat, $caught, $N);
}

# --- a damaged state file at start -------------------------------------------------
for my $case (['truncated', sub { my $b = slurp($state) // ''; substr($b, 0, int(length($b) / 2)) }],
              ['garbage', sub { "not a state file\n" x 100 }]) {
    my($kind, $make) = @$case;
    my($r, $c) = mint("$kind state file");
    stop_httpd($h);
    ok(-s $state, "$kind: a state file after stop");
    my $bad = $make->();
    open my $fh, '>', $state or die "$state: $!";
    print $fh $bad;
    close $fh or die "$state: $!";
    my $log_before = length(slurp($h->{error_log}) // '');
    start_httpd_again($h);
    my $log = substr(slurp($h->{error_log}) // '', $log_before);
    like($log, qr/\[runai_token:warn\].*the state file \Q$state\E is unusable \(.+\): set aside as \Q$state\E\.corrupt-\d+/,
         "$kind: a warning names the state file and where it was set aside");
    my @aside = glob("$state.corrupt-*");
    is(scalar(@aside), 1, "$kind: the damaged file is kept aside");
    my($rok) = survivors([$r->[0]], []);
    is($rok, 0, "$kind: a clean start, with an empty store");
    my $res = password_login($p, 'bob', $s->{users}{bob});
    is($res->code, 200, "$kind: the server serves logins");
    unlink glob("$state.corrupt-*");
}

# --- the store itself outlives graceful and restart ------------------------------
# With no state file at all, only the kept segment can carry the sessions:
# graceful and restart keep them; stop + start, which ends the segment,
# does not. A new store size at graceful makes a new store, which the state
# file fills.
{
    my $k = start_httpd(name => 'kept', site => session_site(), global => 'RunaiTokenStateDir off');
    my $kp = $k->{port};
    my @t = map { (reply_of(password_login($kp, 'bob', $s->{users}{bob})) || {})->{refreshToken} // 'none' } 1 .. $N;
    my $alive = sub {
        my @next = map { (reply_of(refresh_call($kp, $_)) || {})->{refreshToken} // 'none' } @t;
        my $n = grep { $_ ne 'none' } @next;
        @t = @next;
        return $n;
    };
    my($rc, $out) = graceful_httpd($k);
    is($rc, 0, 'kept store: graceful') or diag($out);
    is($alive->(), $N, "kept store, no state file: $N of $N sessions after graceful");
    restart_httpd($k);
    is($alive->(), $N, "kept store, no state file: $N of $N sessions after restart");
    restart_httpd($k, 'stop');
    is($alive->(), 0, 'no state file: stop + start ends the sessions (the segment went with the process)');
    stop_httpd($k);
    assert_logs_clean('32_restart_drills kept', $k->{error_log}, $k->{access_log});
    push @summary, "kept store without a state file: $N of $N sessions across graceful and restart, 0 across stop + start";
}
{
    my($r, $c) = mint('a new store size at graceful');
    my $offset = -s $h->{error_log};
    $h->{global} = 'RunaiTokenCache runai-shm:33554432';
    RunaiHosts::write_conf($h);
    my($rc, $out) = graceful_httpd($h);
    is($rc, 0, 'a new store size: graceful') or diag($out);
    my($rok, $cok) = survivors($r, $c);
    is($rok, $N, "a new store size at graceful: $N of $N refresh tokens work (the state file filled it)");
    is($cok, $N, "a new store size at graceful: $N of $N codes are redeemed");
    my $log = slurp($h->{error_log}) // '';
    like(substr($log, $offset), qr/records restored from/, 'a new store size: the state file was read');
}

my $logs = Apache::Test::vars('t_logs');
stop_httpd($h);
assert_logs_clean('32_restart_drills', catfile($logs, 'error_log'), $h->{error_log}, $h->{access_log});
diag('summary: ' . join('; ', @summary));
done_testing();

# Failure drills (issue 6, deliverable 5) with independent httpd instances
# (t/lib/RunaiHosts.pm), each under a bounded load of forked clients that
# loop over the password, refresh_token and app_token grants:
#   (a) redis, the session store, is killed mid-load and restarted on the
#       same port: only 200, 401 and 503 answers, a 503 only for the grants
#       that need the store, app_token never fails, no connection is lost,
#       the children live, and the grants work again without touching
#       httpd;
#   (b) apache2 -k graceful under load: no failed request beyond the
#       connections the restart itself closes (counted and bounded), no 5xx;
#       sessions are kept with redis and with the default store (its
#       segment is kept across generations; t/32_restart_drills.t tests
#       the state file);
#       no refresh token is refused, as cut requests are retried;
#   (c) a signing key file removed after start changes nothing (tokens are
#       issued and verify) until httpd reads its configuration again: then
#       apache2 -k restart / graceful / start fail with a line naming the
#       file, and a running server told to restart by signal stops with
#       that line in its error log.
# Every loop is bounded in count and in time; everything started here is
# stopped in RunaiHosts' END block, also when a test dies.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Copy qw(copy);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

$SIG{PIPE} = 'IGNORE';
my $T0 = time;
my $s = load_secrets();
my $pw = $s->{users}{bob};
my $cb = 'https://app.example.test/callback';
my $JSON = JSON::PP->new->canonical;
my $CLIENTS = 4;
my $MAX_PER_CLIENT = 3000;     # requests; the time bound comes first
my @hosts;
my @summary;

sub why {
    my $res = shift;
    return 'got ' . $res->code . ': ' . substr($res->content // '', 0, 300);
}

sub dead_children {
    my $h = shift;
    return grep { /exit signal|Segmentation|AH00052/ } split /\n/, slurp($h->{error_log}) // '';
}

# --- the load ------------------------------------------------------------------------

# One client: password, refresh_token (with the latest refresh token it
# holds), app_token, again and again until the deadline. Each answer is a
# line "op status start end note minted first" in $file: for a refresh,
# when its token was received and whether this was its first use.
sub client_loop {
    my($port, $deadline, $file) = @_;
    open my $out, '>', $file or POSIX::_exit(2);
    $out->autoflush(1);
    my($refresh, $minted, $uses, $n) = (undef, 0, 0, 0);
    while (time < $deadline && $n < $MAX_PER_CLIENT) {
        for my $op (qw(password refresh app_token)) {
            my $body = $op eq 'password' ? { grantType => 'password', username => 'bob', password => $pw }
                     : $op eq 'app_token' ? { appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} }
                     : $refresh ? { grantType => 'refresh_token', refreshToken => $refresh } : undef;
            next unless $body;
            my $t = time;
            my($tok_minted, $first) = ($minted, $uses == 0 ? 1 : 0);
            $uses++ if $op eq 'refresh';
            my $res = token_call($port, $body, timeout => 10);
            $n++;
            my $reply = eval { $JSON->decode($res->content) } || {};
            if ($op ne 'app_token' && $res->code == 200 && $reply->{refreshToken}) {
                ($refresh, $minted, $uses) = ($reply->{refreshToken}, time, 0);
            }
            undef $refresh if $op eq 'refresh' && $res->code == 401;
            my $note = $res->code == 503 ? ($res->content eq '{"code":503,"message":"session store unavailable"}' ? 'store' : 'other')
                     : $res->code == 599 ? ($res->message // '') =~ s/\s+/_/gr : '-';
            printf $out "%s %d %.3f %.3f %s %.3f %d\n", $op, $res->code, $t, time, $note,
                $op eq 'refresh' ? $tok_minted : 0, $op eq 'refresh' ? $first : 0;
        }
    }
    close $out;
}

# load(port => P, seconds => S, events => [[AT, NAME, CODE], ...]): runs the
# clients for S seconds while the parent runs each event AT seconds after
# the start. Returns (answers: [op, status, start, end, note, client],
# event times: {NAME => [start, end]}, start time); an answer is
# [op, status, start, end, note, minted, first use, client].
sub load {
    my(%o) = @_;
    my $dir = tempdir('runai-drill-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $start = time + 0.2;
    my $deadline = $start + $o{seconds};
    my @pids;
    for my $c (1 .. $CLIENTS) {
        my $pid = fork // die "fork: $!";
        unless ($pid) {
            local $SIG{ALRM} = sub { POSIX::_exit(3) };
            alarm $o{seconds} + 30;
            sleep($start - time) if $start > time;
            client_loop($o{port}, $deadline, catfile($dir, $c));
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    my %when;
    for my $ev (@{ $o{events} || [] }) {
        my($at, $name, $code) = @$ev;
        my $wait = $start + $at - time;
        sleep $wait if $wait > 0;
        my $t = time;
        $code->();
        $when{$name} = [$t, time];
    }
    my @killed = reap($o{seconds} + 40, @pids);
    ok(!@killed, "load: all $CLIENTS clients ended within the time bound") or diag("killed @killed");
    my @answers;
    for my $c (1 .. $CLIENTS) {
        for my $line (split /\n/, slurp(catfile($dir, $c)) // '') {
            my @f = split / /, $line;
            push @answers, [@f, $c] if @f == 7;
        }
    }
    return (\@answers, \%when, $start);
}

sub tally {
    my($answers, $filter) = @_;
    my %n;
    $n{"$_->[0] $_->[1]"}++ for grep { !$filter || $filter->($_) } @$answers;
    return join ', ', map { "$_ x $n{$_}" } sort keys %n;
}

sub count { my($answers, $f) = @_; return scalar grep { $f->($_) } @$answers }

# ====================================================================================
# (a) the store dies mid-load
# ====================================================================================
{
    my $redis = start_redis();
    # The module's own redis client (t/45_redis_failover.t measures its
    # recovery on two hosts).
    my $h = start_httpd(name => 'drill-redis', cache => "redis:127.0.0.1:$redis->{port}",
                        site => session_site());
    push @hosts, $h;
    my $p = $h->{port};
    my $parent = httpd_pid($h);
    my @kids_before = httpd_children($h);
    is(password_login($p, 'bob', $pw)->code, 200, '(a) before: the password grant works');

    # The drill bounds the recovery at 60 s and reports how long it took.
    my($answers, $when, $start) = load(port => $p, seconds => 9, events => [
        [1.0, 'kill',    sub { kill_service($redis) }],
        [2.5, 'restart', sub { restart_service($redis) }],
    ]);
    my($killed, $restarted) = ($when->{kill}[0], $when->{restart}[1]);
    my $line = '(a) redis killed at ' . sprintf('%.1f', $killed - $start) . ' s, back at '
             . sprintf('%.1f', $restarted - $start) . ' s: ' . scalar(@$answers) . ' answers: ' . tally($answers);
    diag($line);
    push @summary, $line;

    cmp_ok(scalar @$answers, '>=', 40, '(a) the load sent requests (' . scalar(@$answers) . ')');
    is(count($answers, sub { $_[0][1] !~ /^(200|401|503)$/ }), 0, '(a) every answer is 200, 401 or 503 (no 500, no lost connection)')
        or diag(tally($answers, sub { $_[0][1] !~ /^(200|401|503)$/ }));
    is(count($answers, sub { $_[0][1] == 599 }), 0, '(a) no connection was closed or reset without an answer');
    is(count($answers, sub { $_[0][0] eq 'app_token' && $_[0][1] != 200 }), 0,
       '(a) app_token never failed, before, during or after the outage')
        or diag(tally($answers, sub { $_[0][0] eq 'app_token' }));
    cmp_ok(count($answers, sub { $_[0][0] eq 'app_token' && $_[0][2] > $killed && $_[0][3] < $restarted }), '>', 0,
       '(a) app tokens were issued while redis was down');
    my $down = count($answers, sub { $_[0][1] == 503 });
    cmp_ok($down, '>', 0, "(a) the outage was seen: $down answers were 503");
    is(count($answers, sub { $_[0][1] == 503 && $_[0][4] ne 'store' }), 0,
       '(a) every 503 is the Error body "session store unavailable"');
    is(count($answers, sub { $_[0][1] == 503 && $_[0][3] < $killed }), 0, '(a) no 503 before the kill');
    is(count($answers, sub { $_[0][1] == 401 && $_[0][0] ne 'refresh' }), 0, '(a) a 401 only for a refresh token');
    # a refresh token received after redis came back, used for the first
    # time, is in the store: 200, or 503 while the store flaps, never 401
    my @false = grep { $_->[0] eq 'refresh' && $_->[1] == 401 && $_->[6] && $_->[5] > $restarted } @$answers;
    is(scalar @false, 0, '(a) no refresh token minted after the restart was refused as invalid on its first use')
        or diag(scalar(@false) . ' such 401s, e.g. at ' . sprintf('%.2f s', $false[0][2] - $start));
    my($last503) = sort { $b <=> $a } map { $_->[3] } grep { $_->[1] == 503 } @$answers;
    my($first_ok) = sort { $a <=> $b } map { $_->[3] } grep { $_->[0] eq 'password' && $_->[1] == 200 && $_->[2] > $restarted } @$answers;

    # recovery without touching httpd: login + refresh pairs all good for
    # 6 s in a row. Each stale connection a child uses makes APR mark redis
    # dead in that child for 5 s, during which the other child may well
    # answer six pairs in a row (seen here): a good streak longer than that
    # covers both children.
    my($streak, $pairs, $false401, $t_back, $since) = (0, 0, 0, time, time);
    my $stable = wait_until(60, 0.1, sub {
        $pairs++;
        my $res = password_login($p, 'bob', $pw);
        my $tok = $res->code == 200 ? (reply_of($res) || {})->{refreshToken} : undef;
        my $ref = $tok ? refresh_call($p, $tok) : undef;
        reply_of($ref) if $ref;
        $false401++ if $ref && $ref->code == 401;
        if ($ref && $ref->code == 200) {
            $since = time if $streak++ == 0;
        } else {
            $streak = 0;
        }
        return $streak >= 6 && time - $since > 6;
    });
    my $settled = time;
    ok($stable, '(a) after: the grants are stable again (login + refresh pairs good for 6 s in a row) within 60 s, httpd untouched');
    is($false401, 0, "(a) after: no fresh refresh token was refused as invalid ($pairs pairs)");
    my $rec = sprintf('(a) recovery: first password 200 %.1f s after redis was back; last 503 of the load %.1f s after it; '
                      . 'stable %.1f s after it (%d login + refresh pairs polled after the load)',
                      ($first_ok // $settled) - $restarted, ($last503 // $restarted) - $restarted, $settled - $restarted, $pairs);
    diag($rec);
    push @summary, $rec;
    my $res = password_login($p, 'bob', $pw);
    is($res->code, 200, '(a) after: password grant') or diag(why($res));
    $res = refresh_call($p, (reply_of($res) || {})->{refreshToken} // 'none');
    is($res->code, 200, '(a) after: refresh_token works') or diag(why($res));
    reply_of($res);
    $res = authorize_call($p, 'bob', $pw, { client_id => 'webapp', redirect_uri => $cb });
    is($res->code, 302, '(a) after: authorize') or diag(why($res));
    $res = exchange_call($p, code_of($res) // 'none', $cb);
    is($res->code, 200, '(a) after: exchange_token works') or diag(why($res));
    reply_of($res);
    is(httpd_pid($h), $parent, '(a) after: the same httpd parent runs (no restart)');
    my @kids = httpd_children($h);
    ok(@kids > 0, "(a) after: httpd has live children (@kids)");
    sleep 1.1;
    is(scalar(dead_children($h)), 0, '(a) no child died (no "exit signal" in its error_log)')
        or diag(join "\n", dead_children($h));
    like(slurp($h->{error_log}) // '', qr/\[runai_token:error\].*session store \(redis\) is down: /,
         '(a) the outage is logged at error level, naming the provider');
    like(slurp($h->{error_log}) // '', qr/\[runai_token:notice\].*session store \(redis\) is back after /,
         '(a) its end is logged too');
    unlike(slurp($h->{error_log}) // '', qr/\[runai_token:error\].*(cannot lock|cannot unlock)/,
           '(a) the mutex never failed');
    diag('(a) children before: ' . join(' ', @kids_before) . '; after: ' . join(' ', httpd_children($h)));
    stop_httpd($h);
    stop_service($redis);
}

# ====================================================================================
# (b) graceful restart under load
# ====================================================================================
for my $store (qw(redis default)) {
    # a fresh host (and redis): (a) leaves its store flapping for a while
    my $redis = $store eq 'redis' ? start_redis() : undef;
    my $h = start_httpd(name => "drill-graceful-$store", site => session_site(),
                        ($redis ? (cache => "redis:127.0.0.1:$redis->{port}") : ()));
    push @hosts, $h;
    my $p = $h->{port};
    my $parent = httpd_pid($h);
    my $res = password_login($p, 'bob', $pw);
    is($res->code, 200, "(b) $store: a session before the restarts") or diag(why($res));
    my $before = (reply_of($res) || {})->{refreshToken} // 'none';
    my $errlog_start = -s $h->{error_log};

    my @graceful;
    my($answers, $when, $start) = load(port => $p, seconds => 5, events => [
        [1.2, 'graceful 1', sub { push @graceful, [graceful_httpd($h)] }],
        [3.0, 'graceful 2', sub { push @graceful, [graceful_httpd($h)] }],
    ]);
    is_deeply([map { $_->[0] } @graceful], [0, 0], "(b) $store: two apache2 -k graceful under load succeeded")
        or diag(join "\n", map { $_->[1] } @graceful);
    my $lost = count($answers, sub { $_[0][1] == 599 });
    my $line = "(b) $store: " . scalar(@$answers) . ' answers across 2 graceful restarts: ' . tally($answers)
             . "; connections lost: $lost";
    diag($line);
    push @summary, $line;
    cmp_ok(scalar @$answers, '>=', 40, "(b) $store: the load sent requests");
    is(count($answers, sub { $_[0][1] >= 500 && $_[0][1] != 599 }), 0, "(b) $store: no 5xx answer")
        or diag(tally($answers, sub { $_[0][1] >= 500 }));
    # a request cut by the restart itself: at most one per client and restart
    cmp_ok($lost, '<=', 2 * $CLIENTS, "(b) $store: connections the restarts closed: $lost (at most 2 x $CLIENTS)");
    is(count($answers, sub { $_[0][0] eq 'app_token' && $_[0][1] != 200 && $_[0][1] != 599 }), 0,
       "(b) $store: app_token answered 200 whenever it got an answer");
    is(count($answers, sub { $_[0][0] eq 'password' && $_[0][1] != 200 && $_[0][1] != 599 }), 0,
       "(b) $store: the password grant answered 200 whenever it got an answer")
        or diag(tally($answers, sub { $_[0][0] eq 'password' }));
    # A client whose refresh was cut in flight retries its token and gets
    # the same successor (RunaiTokenRefreshRetry); old and new children
    # share the store (redis, or the default store kept across generations).
    my $r401 = count($answers, sub { $_[0][0] eq 'refresh' && $_[0][1] == 401 });
    is($r401, 0, "(b) $store: no refresh token refused across the graceful restarts ($lost cut in flight)")
        or diag(tally($answers, sub { $_[0][0] eq 'refresh' }));
    $res = refresh_call($p, $before);
    is($res->code, 200, "(b) $store: a refresh token minted before the restarts works after them (sessions kept)")
        or diag(why($res));
    reply_of($res);
    is(httpd_pid($h), $parent, "(b) $store: the same parent runs");
    my @kids = httpd_children($h);
    ok(@kids > 0, "(b) $store: httpd has live children (@kids)");
    $res = password_login($p, 'bob', $pw);
    is($res->code, 200, "(b) $store: grants work after the restarts") or diag(why($res));
    reply_of($res);
    sleep 1.1;
    is(scalar(dead_children($h)), 0, "(b) $store: no child died") or diag(join "\n", dead_children($h));
    my $new_log = substr(slurp($h->{error_log}) // '', $errlog_start);
    unlike($new_log, qr/\[runai_token:(error|crit)\]/, "(b) $store: the restarts caused no error line of the module")
        or diag(join "\n", grep { /runai_token:(error|crit)/ } split /\n/, $new_log);
}

# ====================================================================================
# (c) a signing key file removed after start
# ====================================================================================
{
    my $keydir = tempdir('runai-drill-key-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $docroot = tempdir('runai-drill-doc-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    mkdir catfile($docroot, 'guard') or die "mkdir: $!";
    chmod 0755, $docroot, catfile($docroot, 'guard');
    open my $fh, '>', catfile($docroot, 'guard', 'index.html') or die "index.html: $!";
    print $fh "guarded\n";
    close $fh;
    chmod 0644, catfile($docroot, 'guard', 'index.html');
    my $key = catfile($keydir, 'signing-key.pem');
    copy(fixture('ec256.pem'), $key) or die "copy: $!";
    chmod 0600, $key;
    my $iss = 'https://drill-key.example.test';
    my $h = start_httpd(name => 'drill-key', site => <<"EOF");
RunaiTokenIssuer $iss
RunaiTokenSigningKey "$key"
DocumentRoot "$docroot"
<Location /api>
    SetHandler runai-token
    RunaiTokenAppProvider runai-apps
    RunaiTokenPasswordProvider runai-users-primary
</Location>
<Location /guard>
    AuthType RunaiToken
    AuthName "drill"
    Require valid-user
</Location>
EOF
    push @hosts, $h;
    my $p = $h->{port};
    my $parent = httpd_pid($h);

    my $issue_and_verify = sub {
        my $name = shift;
        my $res = token_call($p, { appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} });
        is($res->code, 200, "(c) $name: app_token is issued") or diag(why($res));
        my $tok = (reply_of($res) || {})->{accessToken} // 'none';
        my($claims, $err) = verify_crypt_jwt($tok, 'ec256', 'ES256', aud => 'runai', iss => $iss);
        ok($claims, "(c) $name: the token verifies (Crypt::JWT, ES256, the public key of the file)") or diag($err);
        $res = password_login($p, 'bob', $pw);
        is($res->code, 200, "(c) $name: the password grant signs access and id tokens") or diag(why($res));
        my $reply = reply_of($res) || {};
        my($id_claims, $id_err) = verify_crypt_jwt($reply->{idToken} // 'none', 'ec256', 'ES256', iss => $iss);
        ok($id_claims, "(c) $name: its id token verifies") or diag($id_err);
        $res = http_request(port => $p, method => 'GET', path => '/guard/index.html',
                            headers => [Authorization => "Bearer $tok"]);
        is($res->code, 200, "(c) $name: the guard of the same server accepts the token") or diag(why($res));
        $res = http_request(port => $p, method => 'GET', path => '/guard/index.html',
                            headers => [Authorization => 'Bearer ' . flip_signature($tok)]);
        is($res->code, 401, "(c) $name: and refuses it with a flipped signature bit");
    };
    $issue_and_verify->('key file present');
    ok(unlink($key), '(c) the key file is removed while httpd runs');
    ok(!-e $key, '(c) the key file is gone');
    $issue_and_verify->('key file removed');
    sleep 1.1;    # another second: still no re-read
    $issue_and_verify->('key file removed, a second later');

    # a new configuration read: refused, naming the file
    my $named = qr/RunaiTokenSigningKey.*\Q$key\E|\Q$key\E.*RunaiTokenSigningKey/;
    for my $how (qw(restart graceful)) {
        my($rc, $out) = httpd_ctl($h, $how);
        isnt($rc, 0, "(c) apache2 -k $how with the key file missing fails (exit $rc)");
        like($out, $named, "(c) apache2 -k $how: the error names RunaiTokenSigningKey and the file")
            or diag($out);
        diag("(c) apache2 -k $how said: " . join(' | ', grep { /\S/ } split /\n/, $out));
        is(httpd_pid($h), $parent, "(c) apache2 -k $how refused before signalling: the server still runs");
        is(token_call($p, { appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} })->code, 200,
           "(c) after the refused -k $how: tokens are still issued");
    }
    my($rc, $o1, $e1) = RunaiTest::run_capture($ENV{RUNAI_HTTPD} || '/usr/sbin/apache2', '-f', $h->{conf}, '-t');
    my $out = "$o1$e1";
    isnt($rc, 0, '(c) apache2 -t (configtest) fails');
    like($out, $named, '(c) configtest names the directive and the file') or diag($out);

    # the running parent told to restart by a signal reads the configuration
    # itself: it cannot, and stops, with the line in its error log
    my $log_before = -s $h->{error_log};
    ok(kill('HUP', $parent), '(c) SIGHUP (restart) sent to the running parent');
    my $gone = wait_until(20, 0.1, sub { !kill(0, $parent) });
    ok($gone, '(c) the parent stops: it cannot load its configuration (within 20 s)');
    my $tail = substr(slurp($h->{error_log}) // '', $log_before);
    like($tail, $named, '(c) its error_log has a line naming RunaiTokenSigningKey and the file') or diag($tail);
    diag('(c) error_log after SIGHUP: ' . join(' | ', grep { /\S/ } split /\n/, $tail));
    ($rc, $out) = httpd_ctl($h, 'start');
    isnt($rc, 0, '(c) apache2 -k start with the key file missing fails');
    like($out, $named, '(c) apache2 -k start: stderr names RunaiTokenSigningKey and the file') or diag($out);
    ok(!httpd_running($h), '(c) no server runs');

    # the file back: the same configuration starts
    copy(fixture('ec256.pem'), $key) or die "copy: $!";
    chmod 0600, $key;
    ok(eval { restart_httpd($h, 'stop'); 1 }, '(c) with the file restored the same configuration starts') or diag($@);
    $issue_and_verify->('key file restored') if httpd_running($h);
}

stop_httpd(@hosts);
is(scalar(map { dead_children($_) } @hosts), 0, 'no child of any drill host died');
assert_logs_clean('31_drills', map { ($_->{error_log}, $_->{access_log}) } @hosts);
diag('summary: ' . join('; ', @summary));
diag(sprintf('31_drills: %.1f s', time - $T0));
done_testing();

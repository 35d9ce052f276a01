# A flood drill: one user refreshing as fast as it can must cost the store
# nothing that grows with its refreshes, and must not push other users'
# sessions or throttle counters out of it. Once per store, on an httpd
# instance of its own (the default runai-shm of 16 MiB, shmcb of 16 MiB,
# redis, memcached):
#   - user A logs in and keeps its refresh token; A's user name has
#     RunaiTokenThrottle's limit of wrong passwords (5 in 600 s) on record
#     from one address; 64 bystander users do the same (4 sessions each);
#   - user B refreshes FLOOD (20,000) times in chains (each answer's
#     refreshToken is the next request's), on keep-alive connections of
#     WORKERS forked clients, each with its own session of B; the site has
#     RunaiTokenRefreshRate off, so every refresh rotates, except on shmcb,
#     where the default rate holds (see @stores);
#   - afterwards A's token and every bystander's still refresh, A's and
#     every bystander's next wrong password from its address answers 429
#     (the counter is intact, not 401), a third user C logs in and
#     refreshes, B's newest tokens refresh;
#   - the store's record count (redis DBSIZE over RESP, memcached's
#     curr_items, the state file's count at a graceful restart for a store
#     of this host) after 1,000 refreshes equals the count after 20,000,
#     and both are
#     within a small constant of the count before the flood.
# Then the per-session refresh rate, on the default store: with the
# default (60 in 60 s) the 61st refresh of a session in a minute answers
# 429 with Retry-After and the Error body, changes nothing (the same token
# again: 429, not 401), while another session keeps refreshing; with
# RunaiTokenRefreshRate 5 3 the limited session's latest token refreshes
# again once Retry-After has passed.
# RUNAI_FLOOD_ROTATIONS changes FLOOD (at least 2,000).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use RunaiTest qw(check_error);
use RunaiHosts;
use RunaiHTTP qw(keep_alive_open keep_alive_request);

my $FLOOD = $ENV{RUNAI_FLOOD_ROTATIONS} || 20_000;
my $CHECKPOINT = 1_000;
my $WORKERS = 2;          # forked clients, one session of B each
my $LIMIT = 5;            # RunaiTokenThrottle 5 600
my $SMALL = 2 * $WORKERS + 4;   # how far a record count may move for a reason other than refreshes
die "RUNAI_FLOOD_ROTATIONS must be at least 2000\n" if $FLOOD < 2 * $CHECKPOINT;

my $json = JSON::PP->new->utf8->canonical;
my $net = 1 + $$ % 200;
my $next_addr = 1;
# a loopback address no other drill of this run uses (the last two octets
# count up, each within 1..250)
sub fresh_addr {
    my $n = $next_addr++;
    return sprintf '127.34.%d.%d', $net + int($n / 250), 1 + $n % 250;
}

# --- users of our own: A, B, C ------------------------------------------------------
load_secrets();
sub secret { random_secret('F', 't34 secret') }
my %pw = map { $_ => secret() } qw(flood-a flood-b flood-c);
my $wrong = secret();
my $dir = tempdir('runai-t34-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $users = htpasswd_file(catfile($dir, 'users'), %pw);
# The bystanders: BYSTANDERS more users (MD5 entries: quick to check), each
# with SESSIONS_EACH sessions and the throttle's limit of failures from an
# address of its own. shmcb spreads records over its subcaches (128 at
# 16 MiB with the module's hints) by the key's first byte, and reclaims the
# room of a removed or replaced record only once it is the subcache's
# oldest: records written over and over push out the older records of
# their subcache. One user A could escape that by luck; 256 sessions and
# 64 counters of 64 users in all subcaches cannot.
my $BYSTANDERS = 64;
my $SESSIONS_EACH = 4;
my @by = map { sprintf 'by-%02d', $_ } 1 .. $BYSTANDERS;
my $by_pw = secret();
{
    my $htpasswd = find_binary('htpasswd', 'apache2-utils');
    for my $u (@by) {
        system($htpasswd, '-b', '-m', $users, $u, $by_pw) == 0 or die "htpasswd $users $u failed\n";
    }
    chmod 0644, $users;
}
$pw{$_} = $by_pw for @by;

my $PROVIDER = <<"EOF";
MaxKeepAliveRequests 0
<AuthnProviderAlias file t34-users>
    AuthUserFile "$users"
</AuthnProviderAlias>
EOF

sub site {
    my $rate = shift;
    return RunaiHosts::session_site(extra => join "\n",
        '    RunaiTokenPasswordProvider t34-users',
        "    RunaiTokenThrottle $LIMIT 600",
        (defined $rate ? "    RunaiTokenRefreshRate $rate" : ()));
}

# --- small helpers --------------------------------------------------------------------
sub body_of { my $b = eval { $json->decode($_[0]->content) }; return ref $b eq 'HASH' ? $b : {} }

# An answer in a few lines, for diag.
sub show {
    my $res = shift;
    return $res->status_line . (defined $res->header('Retry-After') ? ', Retry-After ' . $res->header('Retry-After') : '')
         . ': ' . substr($res->content // '', 0, 200);
}

# POST /api/v1/token on a keep-alive connection.
sub ka_token {
    my($c, $data) = @_;
    return keep_alive_request($c, method => 'POST', path => '/api/v1/token', body => $json->encode($data));
}

# The record count of a store of this host: the number in the first line
# "RunaiTokenStateDir: N records saved" logged after byte OFFSET of the
# error log. Undef when none comes within 8 s.
sub saved_records {
    my($h, $offset) = @_;
    return wait_until(8, 0.1, sub {
        open my $fh, '<', $h->{error_log} or return undef;
        seek $fh, $offset, 0;
        local $/;
        my $text = <$fh> // '';
        close $fh;
        return $text =~ /RunaiTokenStateDir: (\d+) records saved/ ? "$1" : undef;
    });
}

# A password login: the refresh token (undef on a failure, with a diag).
sub login_ok {
    my($port, $user, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = password_login($port, $user, $pw{$user}, %o);
    my $body = reply_of($res) || {};
    my $ok = is($res->code, 200, "$name: $user logs in") && ok(defined $body->{refreshToken}
        && !ref $body->{refreshToken} && length $body->{refreshToken}, "$name: $user has a refresh token");
    diag(show($res)) unless $ok;
    return $ok ? $body->{refreshToken} : undef;
}

# One refresh; returns (response, next token or undef).
sub refresh {
    my($port, $token) = @_;
    my $res = refresh_call($port, $token // 'none');
    my $body = $res->code == 200 ? reply_of($res) || {} : {};
    return ($res, $body->{refreshToken});
}

sub throttled {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, 429, "$name: 429") or diag(show($res));
    my $ra = $res->header('Retry-After') // '';
    ok($ra =~ /^[1-9]\d*$/ && $ra <= 600, "$name: Retry-After 1..600 (got '$ra')");
}

# One line to a store, the whole answer up to a line matching END.
sub store_talk {
    my($port, $bytes, $end) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                                  Timeout => 5) or die "connect to 127.0.0.1:$port: $!";
    syswrite $s, $bytes;
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = time + 5;
    while ($buf !~ $end && time < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread $s, $buf, 65536, length $buf;
        last unless $n;
    }
    close $s;
    return $buf;
}

# Records in the store: redis DBSIZE (RESP), memcached's curr_items, the
# state file line of a store of this host.
sub record_count {
    my($kind, $svc, $h) = @_;
    if (!$svc) {
        # a store of this host: a graceful restart writes the state file
        # whether or not the records changed (the store itself is kept)
        my $offset = -s $h->{error_log};
        my($rc, $out) = graceful_httpd($h);
        is($rc, 0, "$kind: graceful restart to count the records") or diag($out);
        my $n = saved_records($h, $offset);
        ok(defined $n, "$kind: the graceful restart logged the store's record count");
        return $n // -1;
    }
    if ($kind eq 'redis') {
        my $a = store_talk($svc->{port}, "*1\r\n\$6\r\nDBSIZE\r\n", qr/\r\n/);
        $a =~ /^:(\d+)\r\n/ or die "redis DBSIZE: unexpected answer '$a'";
        return $1;
    }
    my $a = store_talk($svc->{port}, "stats\r\n", qr/^END\r\n/m);
    $a =~ /^STAT curr_items (\d+)\r$/m or die "memcached stats: no curr_items in '$a'";
    return $1;
}

# The refreshToken of an answer's body without decoding all of it (the
# flood's hot loop): the JSON string, unescaped.
my $plain = JSON::PP->new->utf8->allow_nonref;
sub next_token {
    my $content = shift;
    return undef unless $content =~ /"refreshToken"\s*:\s*("(?:[^"\\]|\\.)*")/;
    return eval { $plain->decode($1) };
}

# flood(PORT, TOKENS, COUNT): COUNT rotations split over the chains that
# start at TOKENS (one forked client each, on a keep-alive connection).
# Each chain stops at its first answer that is not 200 with a next token.
# Returns the chains' results: { ok, token, status, body, connects, secs }.
sub flood {
    my($port, $tokens, $count, $limited) = @_;
    my $out = tempdir('runai-t34-flood-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my @pids;
    for my $i (0 .. $#$tokens) {
        my $n = int($count / @$tokens) + ($i < $count % @$tokens ? 1 : 0);
        my $pid = fork // die "fork: $!";
        unless ($pid) {
            my %r = (ok => 0, rotated => 0, token => $tokens->[$i], status => 0, body => '');
            eval {
                local $SIG{ALRM} = sub { die "chain $i timed out\n" };
                alarm 300;
                my $c = keep_alive_open(port => $port, timeout => 30);
                my $t0 = time;
                while ($r{ok} < $n) {
                    my $res = keep_alive_request($c, method => 'POST', path => '/api/v1/token',
                        body => $json->encode({ grantType => 'refresh_token', refreshToken => $r{token} }));
                    my $next = $res->code == 200 ? next_token($res->content) : undef;
                    if ($limited && $res->code == 429) {
                        $r{ok}++;    # an attempt the rate refused: the token stays good
                        next;
                    }
                    unless (defined $next && length $next) {
                        @r{qw(status body retry)} = ($res->code, $res->content, $res->header('Retry-After'));
                        last;
                    }
                    $r{token} = $next;
                    $r{ok}++;
                    $r{rotated}++;
                }
                $r{secs} = time - $t0;
                $r{connects} = $c->{connects};
                alarm 0;
                1;
            } or @r{qw(status body)} = (599, "client: $@");
            if (open my $fh, '>:raw', catfile($out, $i)) {
                print $fh $json->encode(\%r);
                close $fh;
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    my @killed = reap(320, @pids);
    die "flood clients killed after 320 s: @killed\n" if @killed;
    return map {
        my $text = slurp(catfile($out, $_));
        my $r = defined $text ? eval { $json->decode($text) } : undef;
        $r || { ok => 0, token => $tokens->[$_], status => 599, body => 'the client left no result' };
    } 0 .. $#$tokens;
}

# Runs a flood of COUNT, asserts it whole; returns (tokens, seconds).
sub flood_ok {
    my($name, $port, $tokens, $count, $limited) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $t0 = time;
    my @r = flood($port, $tokens, $count, $limited);
    my $secs = time - $t0;
    my($ok, $rotated) = (0, 0);
    $ok += $_->{ok} for @r;
    $rotated += $_->{rotated} for @r;
    if ($limited) {
        # RunaiTokenRefreshRate's default: 60 rotations a minute per session
        cmp_ok($rotated, '<=', 60 * @r * (1 + int($secs / 60)),
               "$name: $rotated of $count refreshes rotated, the rest refused by the rate (429)");
    }
    is($ok, $count, "$name: $count refreshes in " . @r . ' chains, each answered 200 with the next token'
                    . ($limited ? ' or 429' : ''))
        or diag(join "\n", map { "chain: $_->{ok} rotations, then $_->{status} "
                                 . ($_->{retry} ? "Retry-After $_->{retry} " : '') . substr($_->{body} // '', 0, 300) }
                           grep { $_->{status} } @r);
    # the newest token of each chain: a secret for the log check
    note_secret('flood token', $_->{token}) for @r;
    return ([map { $_->{token} } @r], $secs);
}

sub log_levels {
    my $h = shift;
    my $text = slurp($h->{error_log}) // '';
    my %n;
    $n{$1}++ while $text =~ /^\[[^\]]*\] \[(?:[a-z_]+:)?(emerg|alert|crit|error|warn)\]/mg;
    my @signals = $text =~ /(exit signal \S+[^\n]*)/g;
    return (\%n, \@signals);
}

# =====================================================================================
my @hosts;
# The default store (runai-shm) rewrites a record in place: the flood is
# 20,000 rotations with the rate off, as on redis and memcached. shmcb
# keeps each of its subcaches as a ring: a record rewritten again and again
# leaves its old copies behind until they reach the ring's head, and when
# the ring is full its oldest records go, live or not. So on shmcb the
# flood is one user's 20,000 attempts under the default
# RunaiTokenRefreshRate (which bounds the rewrites).
my @stores = (
    ['runai-shm' => undef, 0],
    [shmcb => undef, 1, 'shmcb:runai-t34(16777216)'],
    [redis => sub { start_redis() }, 0],
    [memcached => sub { start_memcached() }, 0],
);
for my $store (@stores) {
    my($kind, $start, $limited, $cache) = @$store;
    my $svc = $start ? $start->() : undef;
    $cache = $kind eq 'redis' ? "redis:127.0.0.1:$svc->{port}" : "memcache:127.0.0.1:$svc->{port}"
        if $svc;
    my $h = start_httpd(name => "t34-$kind", site => site($limited ? undef : 'off'), global => $PROVIDER,
                        (defined $cache ? (cache => $cache) : ()));
    push @hosts, $h;
    my $p = $h->{port};
    my $tag = "$kind";

    # A: a session, and the throttle's limit of failures from one address
    my $ra = login_ok($p, 'flood-a', "$tag, before");
    my $a_addr = fresh_addr();
    my @codes = map { password_login($p, 'flood-a', $wrong, local_addr => $a_addr)->code } 1 .. $LIMIT;
    is("@codes", join(' ', (401) x $LIMIT), "$tag: $LIMIT wrong passwords for flood-a from $a_addr: 401 each");

    # B: one session per flood client
    my @chains = map { login_ok($p, 'flood-b', "$tag, flood session $_") // 'none' } 1 .. $WORKERS;

    # the bystanders: sessions, and the throttle's limit from an address each
    my(%by_tokens, %by_addr, %by_codes);
    {
        my $c = keep_alive_open(port => $p);
        for my $u (@by) {
            for my $i (1 .. $SESSIONS_EACH) {
                my $res = ka_token($c, { grantType => 'password', username => $u, password => $by_pw });
                my $t = $res->code == 200 ? next_token($res->content) : undef;
                $by_codes{ $res->code }++;
                push @{ $by_tokens{$u} }, $t // 'none';
                note_secret('bystander token', $t) if defined $t;
            }
        }
        for my $u (@by) {
            $by_addr{$u} = fresh_addr();
            my $ca = keep_alive_open(port => $p, local_addr => $by_addr{$u});
            $by_codes{ ka_token($ca, { grantType => 'password', username => $u, password => $wrong })->code }++
                for 1 .. $LIMIT;
        }
    }
    is(join(', ', map { "$_ x$by_codes{$_}" } sort keys %by_codes),
       '200 x' . ($BYSTANDERS * $SESSIONS_EACH) . ', 401 x' . ($BYSTANDERS * $LIMIT),
       "$tag: $BYSTANDERS bystanders log in $SESSIONS_EACH times each and fail $LIMIT times each from an address of their own");

    my $count0 = record_count($kind, $svc, $h);
    my($t1, $s1) = flood_ok("$tag, flood to $CHECKPOINT", $p, \@chains, $CHECKPOINT, $limited);
    my $count1 = record_count($kind, $svc, $h);
    my($t2, $s2) = flood_ok("$tag, flood to $FLOOD", $p, $t1, $FLOOD - $CHECKPOINT, $limited);
    my $count2 = record_count($kind, $svc, $h);
    my $rate = $FLOOD / ($s1 + $s2);
    my $what = $kind eq 'redis' ? 'DBSIZE' : $kind eq 'memcached' ? 'curr_items' : 'records in the state file';
    my $line = sprintf('%s: %d refreshes in %.1f s, %.0f refreshes/s (%d keep-alive clients)',
                       $tag, $FLOOD, $s1 + $s2, $rate, $WORKERS)
             . "; $what before the flood $count0, after $CHECKPOINT $count1, after $FLOOD $count2";
    diag($line);

    # A's session and throttle counter are still there; C starts a session
    my($res, $next) = refresh($p, $ra);
    is($res->code, 200, "$tag, after the flood: A's refresh token still refreshes") or diag(show($res));
    ($res) = refresh($p, $next);
    is($res->code, 200, "$tag, after the flood: and A's next one too") or diag(show($res));
    $res = password_login($p, 'flood-a', $wrong, local_addr => $a_addr);
    throttled($res, "$tag, after the flood: A's counter is intact, the next wrong password from $a_addr");
    $res = password_login($p, 'flood-a', $pw{'flood-a'}, local_addr => $a_addr);
    throttled($res, "$tag, after the flood: and A's right password from $a_addr");
    my $rc = login_ok($p, 'flood-c', "$tag, after the flood");
    ($res) = refresh($p, $rc);
    is($res->code, 200, "$tag, after the flood: C's refresh token refreshes") or diag(show($res));
    for my $i (0 .. $#$t2) {
        ($res) = refresh($p, $t2->[$i]);
        ok($res->code == 200 || ($limited && $res->code == 429),
           "$tag, after the flood: B's newest token of chain $i refreshes"
           . ($limited ? ' (or waits for the rate: 429)' : '')) or diag(show($res));
    }

    # the bystanders: every session refreshes, every counter still refuses
    {
        my(%codes, %ctr, @lost, @forgotten);
        my $c = keep_alive_open(port => $p);
        for my $u (@by) {
            for my $t (@{ $by_tokens{$u} }) {
                my $res = ka_token($c, { grantType => 'refresh_token', refreshToken => $t });
                $codes{ $res->code }++;
                push @lost, $u if $res->code != 200;
            }
            my $ca = keep_alive_open(port => $p, local_addr => $by_addr{$u});
            my $res = ka_token($ca, { grantType => 'password', username => $u, password => $wrong });
            $ctr{ $res->code }++;
            push @forgotten, $u if $res->code != 429;
        }
        my $n = $BYSTANDERS * $SESSIONS_EACH;
        my $line = "$tag, after the flood: bystander sessions refreshed: "
                 . join(', ', map { "$_ x$codes{$_}" } sort keys %codes)
                 . "; bystander counters (next wrong password): " . join(', ', map { "$_ x$ctr{$_}" } sort keys %ctr);
        diag($line);
        is($codes{200} // 0, $n, "$tag, after the flood: all $n bystander sessions still refresh")
            or diag('sessions lost of: ' . join ' ', @lost);
        is($ctr{429} // 0, $BYSTANDERS,
           "$tag, after the flood: all $BYSTANDERS bystander counters are intact (their next wrong password: 429)")
            or diag('counters lost of: ' . join ' ', @forgotten);
    }

    is($count2, $count1, "$tag: $what after $FLOOD rotations ($count2) equals $what after $CHECKPOINT ($count1)");
    cmp_ok(abs($count2 - $count0), '<=', $SMALL,
           "$tag: $what after the flood ($count2) is within $SMALL of $what before it ($count0)");
    my($levels, $signals) = log_levels($h);
    is(join(', ', @$signals), '', "$tag: no httpd child died of a signal");
    is(($levels->{crit} // 0) + ($levels->{alert} // 0) + ($levels->{emerg} // 0), 0,
       "$tag: no crit, alert or emerg line in the error log");
    diag("$tag: error log lines by level: "
         . (join(', ', map { "$_ $levels->{$_}" } sort keys %$levels) || 'none above info'));

    stop_httpd($h);
    stop_service($svc) if $svc;
}

# =====================================================================================
# The per-session refresh rate, on the default store.
{
    my $h = start_httpd(name => 't34-rate', site => site(undef), global => $PROVIDER);
    push @hosts, $h;
    my $p = $h->{port};
    my $d = login_ok($p, 'flood-b', 'default rate');
    my $e = login_ok($p, 'flood-c', 'default rate, another session');
    my $c = keep_alive_open(port => $p);
    my(@codes, $limited);
    for my $i (1 .. 61) {
        my $res = keep_alive_request($c, method => 'POST', path => '/api/v1/token',
            body => $json->encode({ grantType => 'refresh_token', refreshToken => $d }));
        push @codes, $res->code;
        if ($res->code == 200) {
            $d = next_token($res->content) // 'none';
            note_secret('rate token', $d);
        }
        else {
            $limited = $res;
            last;
        }
    }
    my %by;
    $by{$_}++ for @codes;
    my $line = 'default RunaiTokenRefreshRate: ' . join(', ', map { "$_ x$by{$_}" } sort keys %by)
             . ' in ' . scalar(@codes) . ' refreshes of one session';
    diag($line);
    is(scalar(grep { $_ == 200 } @codes), 60, 'default rate: 60 refreshes of one session in a minute: 200 each')
        or diag("@codes");
    ok($limited, 'default rate: the 61st answers') or $limited = RunaiHTTP::failed_response('none');
    check_error($limited, 429, undef, 'default rate: the 61st refresh');
    my $ra = $limited->header('Retry-After') // '';
    ok($ra =~ /^[1-9]\d*$/ && $ra <= 60, "default rate: Retry-After is 1..60 (got '$ra')");
    for my $i (1 .. 3) {
        my($res, $next) = refresh($p, $e);
        is($res->code, 200, "default rate: another session refreshes meanwhile ($i)") or diag(show($res));
        $e = $next;
    }
    my($res) = refresh($p, $d);
    is($res->code, 429, 'default rate: the limited session, again at once: 429 (not 401: its token is kept)')
        or diag(show($res));
    my $f = login_ok($p, 'flood-b', 'default rate, the same user again');
    ($res) = refresh($p, $f);
    is($res->code, 200, "default rate: a new session of the limited session's user refreshes")
        or diag(show($res));
    stop_httpd($h);
}
{
    my $h = start_httpd(name => 't34-rate53', site => site('5 3'), global => $PROVIDER);
    push @hosts, $h;
    my $p = $h->{port};
    my $d = login_ok($p, 'flood-b', 'rate 5 3');
    my $e = login_ok($p, 'flood-c', 'rate 5 3, another session');
    my @codes;
    my $res;
    for my $i (1 .. 6) {
        ($res, my $next) = refresh($p, $d);
        push @codes, $res->code;
        last unless $res->code == 200;
        $d = $next;
    }
    is("@codes", '200 200 200 200 200 429', 'rate 5 3: 5 refreshes answer 200, the 6th 429')
        or diag(show($res));
    check_error($res, 429, undef, 'rate 5 3: the 6th refresh');
    my $ra = $res->header('Retry-After') // '';
    ok($ra =~ /^[1-9]\d*$/ && $ra <= 3, "rate 5 3: Retry-After is 1..3 (got '$ra')");
    ($res, my $next) = refresh($p, $e);
    is($res->code, 200, 'rate 5 3: another session refreshes while the first is limited') or diag(show($res));
    my $waited = $ra =~ /^[1-9]\d*$/ && $ra <= 3 ? $ra : 3;
    sleep $waited + 0.2;
    ($res, $next) = refresh($p, $d);
    is($res->code, 200, "rate 5 3: after Retry-After ($waited s) the limited session's latest token refreshes")
        or diag(show($res));
    ($res) = refresh($p, $next);
    is($res->code, 200, 'rate 5 3: and its next token too') or diag(show($res));
    diag("RunaiTokenRefreshRate 5 3: refreshes @codes; Retry-After $ra; after it 200");
    stop_httpd($h);
}

assert_logs_clean('34_flood_drill', map { ($_->{error_log}, $_->{access_log}) } @hosts);
done_testing();

# Several memcached servers shard the store, they do not replicate (issue
# 16): with two servers and one killed, the sessions whose records live on
# the dead one answer 503 (never 401: the module's memcache client does not
# look for a record on another server, where it is not), the others 200;
# the error log says once, for the host, that this server is down, and
# once that it is back; restarted empty, it has lost its share of the
# sessions (401 from then on) and the others still work.
#
# A refresh reads three records: its session's record and end marker (one
# server: the client picks a server by the record's digest, which the two
# share) and its user's logout-all marker (the server of the user). The
# drill kills the server that does not hold bob's marker, so that each
# session's answer depends on its own server only; which server holds
# what is computed here as the module does it: APR's hash ((CRC32 >> 16)
# & 0x7fff) of the hex SHA-256 of the record's material, modulo the
# number of servers.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Compress::Zlib qw(crc32);
use Digest::SHA qw(sha256_hex);
use IO::Socket::INET;
use RunaiTest;
use RunaiHosts;

my $SESSIONS = 40;
my $s = load_secrets();
my @mc = (start_memcached(), start_memcached());
my @addr = map { "127.0.0.1:$_->{port}" } @mc;
my $h = start_httpd(name => 'memcache-shards', cache => 'memcache:' . join(',', @addr),
                    site => RunaiHosts::session_site());
my $p = $h->{port};

sub server_of {
    my $material = shift;
    return ((crc32(sha256_hex($material)) >> 16) & 0x7fff) % @mc;
}

# memcached's count of the records it holds.
sub items {
    my $svc = shift;
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $svc->{port}, Timeout => 5)
        or return undef;
    print $c "stats\r\n";
    my $n;
    while (my $line = <$c>) {
        $n = $1 if $line =~ /^STAT curr_items (\d+)/;
        last if $line =~ /^END/;
    }
    close $c;
    return $n;
}

sub log_lines {
    my $re = shift;
    my @l = grep { /$re/ } split /\n/, slurp($h->{error_log}) // '';
    return scalar @l;
}

# --- sessions over both servers ---
my(@rt, $user);
for my $i (1 .. $SESSIONS) {
    my $res = password_login($p, 'bob', $s->{users}{bob});
    is($res->code, 200, "login $i") or diag($res->content);
    my $body = reply_of($res) || {};
    push @rt, $body->{refreshToken} // 'none';
    my(undef, $claims) = jwt_parts($body->{accessToken});
    $user //= "$claims->{iss}\n$claims->{sub}" if $claims;
}
ok(defined $user, 'the access token names the issuer and the user');
my @home = map { server_of((split /\./, $_)[0]) } @rt;
my @on = map { my $i = $_; scalar grep { $_ == $i } @home } 0 .. $#mc;
my @items = map { items($_) // 0 } @mc;
diag(sprintf('%d sessions: %d and %d on the two servers; the servers hold %d and %d records',
             $SESSIONS, @on, @items));
ok($items[0] > 0 && $items[1] > 0, 'both servers hold records (the store shards)');

my $dead = 1 - server_of($user // '');
my $live = 1 - $dead;
my $name = $addr[$dead];
kill_service($mc[$dead]);

# --- one server dead: its sessions 503, the others 200, never 401 ---
my(%code, @next);
for my $i (0 .. $#rt) {
    my $res = refresh_call($p, $rt[$i]);
    my $c = $res->code;
    $code{$c}++;
    my $want = $home[$i] == $dead ? 503 : 200;
    is($c, $want, "server $name dead: session $i (on " . ($home[$i] == $dead ? 'the dead' : 'the live')
                  . " server) answers $want") or diag($res->content);
    $next[$i] = $c == 200 ? (reply_of($res) || {})->{refreshToken} : $rt[$i];
}
my $refused = $code{503} // 0;
my $share = $refused / $SESSIONS;
diag(sprintf('one of two servers dead: %d of %d refreshes answered 503 (%.0f%%), %d answered 200',
             $refused, $SESSIONS, 100 * $share, $code{200} // 0));
ok($share >= 0.2 && $share <= 0.8, 'the dead server took about half of the sessions (20% to 80%)');
is(scalar(grep { $_ != 200 && $_ != 503 } keys %code), 0, 'no answer but 200 and 503 (no 401, no 500)')
    or diag(join ', ', map { "$_: $code{$_}" } sort keys %code);

my $down_re = qr/\[runai_token:error\].*session store \(memcache\): server \Q$name\E is down: /;
ok(wait_until(5, 0.1, sub { log_lines($down_re) >= 1 }), 'the error log names the dead server');
is(log_lines($down_re), 1, "one line for it after $refused refused requests, not one per request");
is(log_lines(qr/server \Q$addr[$live]\E is down/), 0, 'nothing about the live server');
is(log_lines(qr/session store \(memcache\) is (down|back)/), 0,
   'the store as a whole is not said to be down (one server of two answers), nor back');

# --- restarted, empty: its sessions are gone (401), the others still 200 ---
restart_service($mc[$dead]);
my($first) = grep { $home[$_] == $dead } 0 .. $#rt;
my $after = 0;
ok(wait_until(10, 0.05, sub { $after = refresh_call($p, $rt[$first])->code; $after != 503 }),
   'the restarted server answers again within 10 s');
is($after, 401, 'a session it held is gone with it: 401');
my $back_re = qr/\[runai_token:notice\].*session store \(memcache\): server \Q$name\E is back after [0-9.]+ s; (\d+) requests were refused/;
ok(wait_until(5, 0.1, sub { log_lines($back_re) >= 1 }), 'the error log says it is back');
my($n_refused) = (slurp($h->{error_log}) // '') =~ $back_re;
cmp_ok($n_refused // 0, '>=', $refused, "the line counts the refused requests ($refused or more)");
my(%again, $lost);
for my $i (0 .. $#rt) {
    my $res = refresh_call($p, $next[$i]);
    $again{ $res->code }++;
    my $want = $home[$i] == $dead ? 401 : 200;
    $lost++ if $res->code == 401;
    is($res->code, $want, "server $name back empty: session $i answers $want") or diag($res->content);
    reply_of($res);
}
diag(sprintf('after the restart: %d of %d sessions lost with the server (%.0f%%)',
             $lost // 0, $SESSIONS, 100 * ($lost // 0) / $SESSIONS));
is(log_lines($back_re), 1, 'one line says it is back, after all those requests');
is(log_lines($down_re), 1, 'and no new line says it is down');
is(log_lines(qr/\[runai_token:error\]/), 1, 'no other error line');
diag($_) for map { s/^\[[^]]*\] //r } grep { /$down_re|$back_re/ } split /\n/, slurp($h->{error_log}) // '';
unlike(slurp($h->{error_log}) // '', qr/exit signal|Segmentation/, 'no child died');
RunaiHosts::assert_logs_clean('memcache shards', $h->{error_log}, $h->{access_log});
stop_httpd($h);

done_testing();

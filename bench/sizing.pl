#!/usr/bin/perl
# Sessions per MiB of a store of this host, measured: an httpd of its own
# (the test suite's t/lib/RunaiHosts.pm, the session site of the tests: one
# email claim) with RunaiTokenCache of SIZE bytes, then SIZE/100 logins
# (more than fit), then a count of the sessions still there:
#   - runai-shm (the default) rewrites in place, so every token is tried;
#   - shmcb (--shmcb) evicts its oldest records first and a refresh moves a
#     record to the front, so a binary search finds the oldest session that
#     still refreshes, and the sessions from it on are what it holds.
# Prints one line per size.
#   perl bench/sizing.pl [--shmcb] [SIZE ...]     (default 1048576 4194304)
use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/../t/lib";
use JSON::PP ();
use RunaiHosts;

my $shmcb = @ARGV && $ARGV[0] eq '--shmcb' ? shift @ARGV : undef;
my @sizes = @ARGV ? @ARGV : (1048576, 4194304);
my $s = load_secrets();

for my $size (@sizes) {
    my $cache = $shmcb ? "shmcb:runai-sizing($size)" : "runai-shm:$size";
    my $h = start_httpd(name => "sizing-$size", cache => $cache,
                        site => RunaiHosts::session_site(extra => 'RunaiTokenThrottle off'));
    my $n = int($size / 100);
    my @tokens;
    for my $i (1 .. $n) {
        my $res = password_login($h->{port}, 'bob', $s->{users}{bob});
        die "login $i: " . $res->code . "\n" unless $res->code == 200;
        push @tokens, JSON::PP::decode_json($res->content)->{refreshToken};
    }
    my $held;
    if ($shmcb) {
        my($lo, $hi) = (0, $n - 1);
        while ($lo < $hi) {
            my $mid = int(($lo + $hi) / 2);
            if (refresh_call($h->{port}, $tokens[$mid])->code == 200) { $hi = $mid } else { $lo = $mid + 1 }
        }
        $held = $n - $lo;
    } else {
        $held = grep { refresh_call($h->{port}, $_)->code == 200 } @tokens;
    }
    printf "%s %d bytes: %d of %d sessions held (%.0f per MiB)\n",
        $shmcb ? 'shmcb' : 'runai-shm', $size, $held, $n, $held / ($size / 1048576);
    stop_httpd($h);
}

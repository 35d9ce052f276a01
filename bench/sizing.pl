#!/usr/bin/perl
# Sessions per MiB of a shmcb store, measured: an httpd of its own (the
# test suite's t/lib/RunaiHosts.pm, the session site of the tests: one
# email claim) with RunaiTokenCache shmcb of SIZE bytes; SIZE/100 logins
# (more than fit), then a binary search for the oldest session that still
# refreshes (shmcb evicts the oldest first): the sessions from it on are
# what the store holds. Prints one line per size.
#   perl bench/sizing.pl [SIZE ...]     (default 1048576 4194304)
use strict;
use warnings;
use FindBin ();
use lib "$FindBin::Bin/../t/lib";
use JSON::PP ();
use RunaiHosts;

my @sizes = @ARGV ? @ARGV : (1048576, 4194304);
my $s = load_secrets();

for my $size (@sizes) {
    my $h = start_httpd(name => "sizing-$size", cache => "shmcb:runai-sizing($size)",
                        site => RunaiHosts::session_site(extra => 'RunaiTokenThrottle off'));
    my $n = int($size / 100);
    my @tokens;
    for my $i (1 .. $n) {
        my $res = password_login($h->{port}, 'bob', $s->{users}{bob});
        die "login $i: " . $res->code . "\n" unless $res->code == 200;
        push @tokens, JSON::PP::decode_json($res->content)->{refreshToken};
    }
    # the oldest live session: every one before it is gone, every one
    # from it on is there (a refresh rewrites only the one it tries)
    my($lo, $hi) = (0, $n - 1);
    while ($lo < $hi) {
        my $mid = int(($lo + $hi) / 2);
        if (refresh_call($h->{port}, $tokens[$mid])->code == 200) { $hi = $mid } else { $lo = $mid + 1 }
    }
    my $held = $n - $lo;
    printf "shmcb %d bytes: %d of %d sessions held (%.0f per MiB)\n",
        $size, $held, $n, $held / ($size / 1048576);
    stop_httpd($h);
}

#!/usr/bin/perl
# Runs the C unit tests of the core (t/unit/core_test.c); their TAP output is
# this test's output. `make test` builds the binary first.
use strict;
use warnings;
use FindBin;
# RUNAI_CORE_TEST: another build of it (make test-asan's sanitizer build)
my $bin = $ENV{RUNAI_CORE_TEST} || "$FindBin::Bin/bin/core_test";
if (!-x $bin) {
    print "1..1\nnot ok 1 - $bin is built (run make unit)\n";
    exit 1;
}
exec $bin or die "cannot run $bin: $!";

#!/usr/bin/perl
# Every field of the configuration records (rt_server_conf, rt_dir_conf in
# src/httpd/rt_config.h) has a default in its create function and a rule in
# its merge function (src/httpd/rt_config.c): assigned as `c->FIELD = ...`,
# or named first in a macro call such as PICK(FIELD, ...). A field added to
# a struct without both fails here, before it can be left half set.
use strict;
use warnings;
use FindBin;
use Test::More;

my $top = "$FindBin::Bin/../..";

sub slurp {
    my $f = shift;
    open my $fh, '<', $f or die "cannot read $f: $!";
    local $/;
    my $s = <$fh>;
    $s =~ s{/\*.*?\*/}{}gs;    # comments hold field names too
    return $s;
}

my $h = slurp("$top/src/httpd/rt_config.h");
my $c = slurp("$top/src/httpd/rt_config.c");

sub fields_of {
    my $type = shift;
    $h =~ /typedef\s+struct\s+$type\s*\{(.*?)\}\s*$type\s*;/s
        or die "struct $type not found in rt_config.h";
    my @f;
    for my $decl (split /;/, $1) {
        next unless $decl =~ /\S/;
        # the declarator: the last identifier, before any array bounds
        $decl =~ s/\[[^\]]*\]//g;
        $decl =~ /(\w+)\s*$/ or die "cannot read a field in '$decl'";
        push @f, $1;
    }
    return @f;
}

sub body_of {
    my $fn = shift;
    $c =~ /^\S[^\n]*\b$fn\s*\([^)]*\)\s*\{(.*?)^\}/ms
        or die "function $fn not found in rt_config.c";
    return $1;
}

sub names_field {
    my ($body, $f) = @_;
    return $body =~ /\bc->\Q$f\E\s*=[^=]/ || $body =~ /\b[A-Z_]+\(\s*\Q$f\E\s*,/;
}

for my $rec (['rt_server_conf', 'rt_config_create_server', 'rt_config_merge_server'],
             ['rt_dir_conf', 'rt_config_create_dir', 'rt_config_merge_dir']) {
    my ($type, $create, $merge) = @$rec;
    my @fields = fields_of($type);
    ok(@fields >= 5, "$type: its fields are found (" . scalar(@fields) . ")");
    my ($cb, $mb) = (body_of($create), body_of($merge));
    for my $f (@fields) {
        ok(names_field($cb, $f), "$type.$f has a default in $create");
        ok(names_field($mb, $f), "$type.$f has a rule in $merge");
    }
}

done_testing();

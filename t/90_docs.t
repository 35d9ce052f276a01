#!/usr/bin/perl
# The docs against the code, without httpd:
#   - every directive of the module's command table (the AP_INIT_* entries
#     of mod_runai_token.c) has a "## Name" block in docs/directives.md, and
#     no block names a RunaiToken* directive the module does not have;
#   - each block has Description, Syntax, Default, Context and Module, and
#     its Context is the one the code allows;
#   - every relative link of README.md, SECURITY.md, bench/README.md,
#     fuzz/README.md and docs/*.md names a file that exists and, with a
#     #anchor, a heading of that file (GitHub's slugs);
#   - no doc cites a document that is not in the repository.
use strict;
use warnings;
use FindBin ();
use File::Basename qw(dirname);
use File::Find ();
use File::Spec::Functions qw(catfile abs2rel);
use Cwd qw(abs_path);
use Test::More;

my $TOP = abs_path("$FindBin::Bin/..");
binmode(Test::More->builder->$_, ':encoding(UTF-8)') for qw(output failure_output todo_output);

# Sections of docs/directives.md for what httpd's own directives do with the
# module; they are not in its command table.
my %EXTRA = map { $_ => 1 } (
    'SetHandler runai-token',
    'AuthType RunaiToken',
    'Require runai-claim',
    'Mutex runai-token',
);
my @FIELDS = qw(Description Syntax Default Context Module);

# Each handler the code serves (#define ..._HANDLER "runai-token...") has
# its SetHandler section too.
for my $src (catfile($TOP, 'mod_runai_token.c'), glob(catfile($TOP, 'src', 'httpd', '*.c'))) {
    open my $fh, '<', $src or die "$src: $!";
    while (<$fh>) {
        $EXTRA{"SetHandler $1"} = 1 if /^#define\s+\w*HANDLER\w*\s+"(runai-token[^"]*)"/;
    }
}

sub slurp {
    my $file = shift;
    open my $fh, '<:encoding(UTF-8)', $file or die "$file: $!";
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text;
}

sub rel { abs2rel($_[0], $TOP) }

# --- the command table -------------------------------------------------------

sub strip_c_comments {
    my $c = shift;
    # strings first, so that "/*" inside one is not a comment
    $c =~ s{("(?:\\.|[^"\\])*")|/\*.*?\*/|//[^\n]*}{defined $1 ? $1 : ' '}gse;
    return $c;
}

# The text of each AP_INIT_*( ... ) entry, up to its matching parenthesis.
sub init_entries {
    my $table = shift;
    my @entries;
    while ($table =~ /\bAP_INIT_\w+\s*\(/g) {
        my($start, $depth) = (pos($table), 1);
        my $i = $start;
        while ($i < length $table && $depth > 0) {
            my $ch = substr $table, $i++, 1;
            if ($ch eq '"') {                       # skip a string literal
                while ($i < length $table) {
                    my $s = substr $table, $i++, 1;
                    if ($s eq '\\') { $i++; next }
                    last if $s eq '"';
                }
                next;
            }
            $depth++ if $ch eq '(';
            $depth-- if $ch eq ')';
        }
        push @entries, substr $table, $start, $i - $start - 1;
        pos($table) = $i;
    }
    return @entries;
}

my @sources = (catfile($TOP, 'mod_runai_token.c'));
File::Find::find(sub { push @sources, $File::Find::name if /\.c\z/ },
                 catfile($TOP, 'src')) if -d catfile($TOP, 'src');
my %code = map { $_ => strip_c_comments(slurp($_)) } @sources;

my $front = $code{ catfile($TOP, 'mod_runai_token.c') };
my($table) = $front =~ /\bcommand_rec\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\}\s*;/s;
# Without it nothing below can be checked: stop here, failed.
ok(defined $table, 'mod_runai_token.c has a command_rec table') or do { done_testing(); exit };

my %directive;    # name => { setter, flags }
for my $entry (init_entries($table)) {
    my($name, $setter) = $entry =~ /\A\s*"([^"]+)"\s*,\s*(\w+)/ or next;
    my $flags = join ' ', $entry =~ /\b(RSRC_CONF|ACCESS_CONF|OR_\w+)\b/g;
    $directive{$name} = { setter => $setter, flags => $flags };
}
cmp_ok(scalar(keys %directive), '>=', 10,
       'the command table has the directives (parsed ' . scalar(keys %directive) . ')');

# The context the code allows, in the words of Apache's manual.
sub expected_context {
    my $d = shift;
    my $body = '';
    for my $c (values %code) {
        if ($c =~ /\b\Q$d->{setter}\E\s*\([^;{]*\)\s*\{/) {
            my($start, $depth) = ($+[0], 1);
            my $i = $start;
            while ($i < length $c && $depth > 0) {
                my $ch = substr $c, $i++, 1;
                $depth++ if $ch eq '{';
                $depth-- if $ch eq '}';
            }
            $body = substr $c, $start, $i - $start;
            last;
        }
    }
    return 'server config' if $body =~ /\bGLOBAL_ONLY\b/;
    my @ctx;
    push @ctx, 'server config', 'virtual host' if $d->{flags} =~ /RSRC_CONF/;
    push @ctx, 'directory' if $d->{flags} =~ /ACCESS_CONF/ && $body !~ /\bNOT_IN_DIR_LOC_FILE\b/;
    push @ctx, '.htaccess' if $d->{flags} =~ /\bOR_/;
    return join ', ', @ctx;
}

# --- markdown ----------------------------------------------------------------

# Lines outside fenced code blocks, with their line numbers.
sub prose_lines {
    my $text = shift;
    my($fence, $n, @out) = (undef, 0);
    for my $line (split /\n/, $text, -1) {
        $n++;
        if ($line =~ /^\s{0,3}(`{3,}|~{3,})/) {
            my $mark = $1;
            if (!defined $fence) { $fence = substr $mark, 0, 1; next }
            if (substr($mark, 0, 1) eq $fence) { undef $fence; next }
        }
        push @out, [$n, $line] unless defined $fence;
    }
    return @out;
}

# GitHub's anchor of a heading: lowercase, punctuation dropped except - and
# _, spaces as -; a repeated slug gets -1, -2, ...
sub anchors {
    my $text = shift;
    my(%seen, %anchor);
    for (prose_lines($text)) {
        my $line = $_->[1];
        $line =~ /^\s{0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/ or next;
        my $h = $1;
        $h =~ s/!?\[([^\]]*)\]\([^)]*\)/$1/g;    # a link: its text
        $h =~ s/<[^>]+>//g;                     # inline HTML
        my $slug = lc $h;
        $slug =~ s/[^\w\- ]//g;
        $slug =~ s/ /-/g;
        my $n = $seen{$slug}++;
        $anchor{ $n ? "$slug-$n" : $slug } = 1;
    }
    return \%anchor;
}

# --- 1-4: directive blocks ---------------------------------------------------

my $dfile = catfile($TOP, 'docs', 'directives.md');
ok(-f $dfile, 'docs/directives.md exists') or do { done_testing(); exit };

my(%block, @order, $current);
for (prose_lines(slurp($dfile))) {
    my($n, $line) = @$_;
    if ($line =~ /^##\s+(.+?)\s*$/) {
        $current = $1;
        push @order, $current;
        $block{$current} = { line => $n, text => '' };
        next;
    }
    if ($line =~ /^#\s/) { undef $current; next }
    $block{$current}{text} .= "$line\n" if defined $current;
}

for my $name (sort keys %directive) {
    ok(exists $block{$name}, "$name (command table) has a block in docs/directives.md");
}
for my $name (grep { /^RunaiToken/ && !$directive{$_} } @order) {
    fail("docs/directives.md line $block{$name}{line}: the block '$name' names a directive the module has");
}
for my $name (sort keys %EXTRA) {
    ok(exists $block{$name}, "docs/directives.md has a section '$name'");
}

# A field: a table row "| Name: | value |" or a list item "- Name: value".
sub field {
    my($text, $f) = @_;
    $text =~ /^\s*(?:\|\s*|[-*]\s+)?\**\Q$f\E\**\s*:\**\s*\|?\s*(.*?)\s*\|?\s*$/m or return;
    (my $v = $1) =~ s/\*\*//g;
    return $v;
}

for my $name (grep { $directive{$_} || $EXTRA{$_} } @order) {
    my $text = $block{$name}{text};
    for my $f (@FIELDS) {
        ok(defined field($text, $f), "docs/directives.md, block '$name': has $f");
    }
    my $module = field($text, 'Module') // '';
    if ($directive{$name}) {
        is($module, 'mod_runai_token', "block '$name': Module is mod_runai_token");
        is(field($text, 'Context') // '', expected_context($directive{$name}),
           "block '$name': Context is what the code allows");
    } else {
        like($module, qr/mod_runai_token/, "block '$name': Module names mod_runai_token");
    }
}

# --- 5 and 6: links and citations --------------------------------------------

my @docs = grep { -f } map { catfile($TOP, $_) } qw(README.md SECURITY.md bench/README.md fuzz/README.md);
opendir my $dh, catfile($TOP, 'docs') or die "docs/: $!";
push @docs, map { catfile($TOP, 'docs', $_) } sort grep { /\.md\z/ } readdir $dh;
closedir $dh;

my %anchors_of;
sub anchors_of {
    my $file = shift;
    return $anchors_of{$file} //= anchors(slurp($file));
}

for my $doc (@docs) {
    my $text = slurp($doc);
    my $name = rel($doc);
    for my $cite ("SPEC \x{a7}", 'SPEC.md', 'TESTING.md', 'STYLE.md') {
        my @lines = split /\n/, $text, -1;
        my @at = grep { index($lines[$_ - 1], $cite) >= 0 } 1 .. @lines;
        ok(!@at, "$name does not cite '$cite' (not in the repository)")
            or diag("$name: lines @at");
    }
    for (prose_lines($text)) {
        my($n, $line) = @$_;
        $line =~ s/(`+).*?\1/`code`/g;             # links inside code spans are text
        while ($line =~ /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g) {
            my $target = $1;
            next if $target =~ m{^(?:https?:|mailto:)}i;
            my($path, $anchor) = $target =~ /^([^#]*)(?:#(.*))?$/;
            my $file = $path eq '' ? $doc : catfile(dirname($doc), $path);
            my $to = $path eq '' ? 'this file' : $path;
            my $where = "$name line $n: link to $to" . (defined $anchor ? ", anchor '$anchor'" : '');
            if (!-e $file) {
                fail("$where: $path exists");
                next;
            }
            if (defined $anchor && $anchor ne '') {
                if (-f $file && $file =~ /\.md\z/) {
                    ok(anchors_of(abs_path($file))->{$anchor},
                       "$where: " . rel(abs_path($file)) . " has that heading");
                } else {
                    fail("$where: an anchor into a file that is not markdown");
                }
            } else {
                pass("$where: $path exists");
            }
        }
    }
}

done_testing();

# Loading the module changes nothing until it is used: with LoadModule and
# no directive of the module, httpd creates no session store (no shared memory
# segment) and no runai-token mutex (no lock file), logs nothing of the
# module, and a plain site answers as it does without it. The same server
# with a site that configures grants does create them, which shows that
# this test sees them when they are there.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Temp qw(tempdir);
use File::Spec::Functions qw(catfile);
use RunaiHosts;

my $docroot = tempdir('runai-plain-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $docroot;
open my $fh, '>', catfile($docroot, 'hello.txt') or die "$docroot: $!";
print $fh "hello from a plain site\n";
close $fh;
my $plain = <<"EOF";
DocumentRoot "$docroot"
<Directory "$docroot">
    Require all granted
</Directory>
EOF

# What of the module's exists in httpd's parent: the runai-token mutex
# (a lock file, unlinked once open, so seen among the open files) and the
# store (its segment, a shared mapping of 16 MiB; the scoreboard, the
# only other shared mapping here, is far smaller).
sub traces {
    my $h = shift;
    no warnings 'portable';    # 64-bit addresses
    my $pid = RunaiHosts::httpd_pid($h);
    my @files = grep { m{/runai-token[^/]*$} }
        map { readlink($_) // '' } glob("/proc/$pid/fd/*");
    my @segments;
    for (split /\n/, (slurp("/proc/$pid/maps") // '')) {
        my($lo, $hi, $perm) = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)/ or next;
        push @segments, $_ if $perm =~ /s/ && hex($hi) - hex($lo) >= 1 << 20;
    }
    return (\@files, \@segments);
}

my $h = start_httpd(name => 'unused', site => $plain);
my($files, $maps) = traces($h);
is_deeply($files, [], 'no directive: no runai-token mutex file')
    or diag("@$files");
is_deeply($maps, [], 'no directive: no shared memory segment for a store')
    or diag(join "\n", @$maps);

my $res = http_request(port => $h->{port}, path => '/hello.txt');
is($res->code, 200, 'plain site: a static file is served');
is($res->content, "hello from a plain site\n", 'plain site: with its content');
$res = http_request(port => $h->{port}, path => '/api/v1/token', method => 'POST',
                    body => '{"grantType":"password"}');
is($res->code, 404, 'plain site: the token path is an ordinary missing file');
unlike($res->content, qr/"code"/, 'plain site: answered by httpd, not by the module');
my $log = slurp($h->{error_log}) // '';
unlike($log, qr/runai_token:|runai-token|RunaiToken/,
       'no directive: the module logs nothing')
    or diag(log_tail($h->{error_log}));
stop_httpd($h);

# The control: the same server with grants configured creates both.
my $used = start_httpd(name => 'used', site => RunaiHosts::session_site());
($files, $maps) = traces($used);
ok(scalar(@$files) >= 1, 'grants configured: the runai-token mutex file is open')
    or diag("@$files");
ok(scalar(@$maps) >= 1, 'grants configured: the store segment is mapped')
    or diag(slurp('/proc/' . RunaiHosts::httpd_pid($used) . '/maps'));
stop_httpd($used);

done_testing();

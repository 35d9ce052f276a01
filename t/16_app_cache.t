# RunaiTokenAppCache, the verified-credential cache for app secrets: a
# secret removed from the provider keeps working at most the TTL (the
# documented revocation bound) and then fails, from the last quarter of the
# TTL on when the app keeps asking; with `off` it fails at once; a wrong
# secret is never cached. Independent httpd instances, each with its
# own copy of the htpasswd file so the test can change it.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Copy qw(copy);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use Time::HiRes ();
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $app = 'app-bcrypt';
my $secret = $s->{apps}{$app};
my $dir = tempdir('runai-appcache-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my @logs;

sub host {
    my($name, $ttl) = @_;
    my $file = catfile($dir, "$name.htpasswd");
    copy(RunaiHosts::fixture_path('apps.htpasswd'), $file) or die "copy: $!";
    chmod 0644, $file;
    my $site = join "\n",
        'RunaiTokenSigningKey @FIXTURES@/ec256.pem',
        '<Location />',
        '    SetHandler runai-token',
        qq(    AuthUserFile "$file"),
        '    RunaiTokenAppProvider file',
        "    RunaiTokenAppCache $ttl",
        '    RunaiTokenThrottle off',
        '</Location>', '';
    my $h = start_httpd(name => $name, site => $site);
    push @logs, $h->{error_log}, $h->{access_log};
    return ($h, $file);
}

sub app_call {
    my($h, $sec) = @_;
    my $res = token_call($h->{port}, { appID => $app, appSecret => $sec });
    reply_of($res);
    return $res->code;
}

# Removes the app from the file the provider reads.
sub revoke { htpasswd_remove($_[0], $app) }

{
    my($h, $file) = host('cache3', 3);
    is(app_call($h, $s->{wrong}), 401, 'TTL 3: a wrong secret is refused');
    # Each process keeps its own cache: ask often enough that every child
    # has verified the secret once.
    my %codes;
    $codes{ app_call($h, $secret) }++ for 1 .. 8;
    is_deeply(\%codes, { 200 => 8 }, 'TTL 3: the right secret is granted (and remembered)');
    revoke($file);
    %codes = ();
    $codes{ app_call($h, $secret) }++ for 1 .. 6;
    ok($codes{200}, 'TTL 3: right after the app is removed, a remembered secret still works')
        or diag(explain \%codes);
    is(app_call($h, $s->{wrong}), 401, 'TTL 3: a wrong secret is still refused (failures are never cached)');
    sleep 4;
    %codes = ();
    $codes{ app_call($h, $secret) }++ for 1 .. 6;
    is_deeply(\%codes, { 401 => 6 }, 'TTL 3: after the TTL the removed app is refused everywhere');
    stop_httpd($h);
}

{
    # Renewal: in the last quarter of an entry's life (here from 8 s after
    # the check, in whole seconds, to 10 s) the first request of each
    # process asks the provider again while the others keep the entry, so
    # a busy app does not have all its requests pay bcrypt at once when the
    # entry expires. An app removed meanwhile is refused from then on,
    # before the TTL is over.
    my($h, $file) = host('cache10', 10);
    my %codes;
    $codes{ app_call($h, $secret) }++ for 1 .. 8;
    my $t0 = Time::HiRes::time();
    is_deeply(\%codes, { 200 => 8 }, 'TTL 10: the right secret is granted (and remembered)');
    revoke($file);
    %codes = ();
    $codes{ app_call($h, $secret) }++ for 1 .. 6;
    ok($codes{200}, 'TTL 10: right after the app is removed, a remembered secret still works')
        or diag(explain \%codes);
    Time::HiRes::sleep($t0 + 8.5 - Time::HiRes::time());
    %codes = ();
    $codes{ app_call($h, $secret) }++ for 1 .. 6;
    is_deeply(\%codes, { 401 => 6 },
              'TTL 10: 8.5 s after the check, the entry is checked again: the removed app is refused before the TTL is over');
    stop_httpd($h);
}

{
    my($h, $file) = host('cacheoff', 'off');
    is(app_call($h, $secret), 200, 'off: the right secret is granted');
    revoke($file);
    my %codes;
    $codes{ app_call($h, $secret) }++ for 1 .. 6;
    is_deeply(\%codes, { 401 => 6 }, 'off: the removed app is refused at once');
    stop_httpd($h);
}

RunaiHosts::assert_logs_clean('app cache', @logs);
done_testing();

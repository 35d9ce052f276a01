# The scope of RunaiTokenAppCache (issue 11, item 1): a secret verified in
# one section of the configuration is remembered only for requests made of
# the same sections, not at another <Location>, under an .htaccess file or
# in a virtual host whose provider reads other settings (AuthUserFile,
# DBDParams), whether or not that place repeats a directive of this module;
# and a remembered secret is served at most the RunaiTokenAppCache of the
# section that answers. Independent httpd instances with their own user
# files, made here with htpasswd(1), and sqlite databases made with
# sqlite3(1) for mod_authn_dbd (Debian packages sqlite3 and
# libaprutil1-dbd-sqlite3).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use Time::HiRes ();
use RunaiTest;
use RunaiHosts;

load_secrets();    # the noted secrets of the suite, for the log check
my $dir = tempdir('runai-appscope-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $htpasswd = find_binary('htpasswd', 'apache2-utils');
my $app = 'svc';
my $secret = 'svc-' . join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 24;
note_secret('secret of svc', $secret);
my @logs;

# An htpasswd file with the given users (bcrypt).
sub htfile {
    my($name, %users) = @_;
    return htpasswd_file(catfile($dir, $name), %users);
}

sub without_app { htpasswd_remove($_[0], $app) }

# apps-b never holds svc; each case below makes the files that do.
my $apps_b = htfile('apps-b', 'other' => 'other-secret-2');
note_secret('secret of other', $_) for qw(other-secret-1 other-secret-2);

sub legacy_call {
    my($port) = @_;
    my $res = post_json_to($port, '/v1/k8s/auth/oauth/apptoken',
                           { id => $app, name => 'scope test', secret => $secret });
    reply_of($res);
    return $res->code;
}

sub app_call {
    my($port) = @_;
    my $res = token_call($port, { appID => $app, appSecret => $secret });
    reply_of($res);
    return $res->code;
}

sub keycloak_call {
    my($port, $path) = @_;
    my $res = http_request(port => $port, method => 'POST', path => $path,
                           body => 'grant_type=client_credentials',
                           type => 'application/x-www-form-urlencoded',
                           headers => [Authorization => basic_auth($app, $secret)]);
    reply_of($res);
    return $res->code;
}

# <Location /> with the app provider, its user file and a 600 s cache;
# <Location /v1/k8s/auth/> with another user file and a 2 s cache.
sub two_locations {
    my($root_file, $legacy_file) = @_;
    return ('<Location />',
            '    SetHandler runai-token',
            qq(    AuthUserFile "$root_file"),
            '    RunaiTokenAppProvider file',
            '    RunaiTokenAppCache 600',
            '    RunaiTokenThrottle off',
            '</Location>',
            '<Location /v1/k8s/auth/>',
            qq(    AuthUserFile "$legacy_file"),
            '    RunaiTokenAppCache 2',
            '</Location>');
}

# Codes of N calls: each process keeps its own cache, so ask often enough
# that every child (StartServers 2) is reached.
sub codes {
    my($n, $call) = @_;
    my %c;
    $c{ $call->() }++ for 1 .. $n;
    return \%c;
}

{
    # The reproduction of the review: the provider list is set once, in
    # <Location />; /v1/k8s/auth/ reads another user file and a shorter
    # cache; /realms/ and a virtual host's <Location /> only name another
    # user file, with no directive of this module at all.
    my $apps_a = htfile('scope-apps-a', $app => $secret, 'other' => 'other-secret-1');
    my $port2 = free_port();
    my $site = join "\n",
        'RunaiTokenSigningKey @FIXTURES@/ec256.pem',
        'RunaiTokenIssuer https://127.0.0.1/realms/runai',
        two_locations($apps_a, $apps_b),
        '<Location /realms/>',
        qq(    AuthUserFile "$apps_b"),
        '</Location>',
        "Listen 127.0.0.1:$port2",
        "<VirtualHost 127.0.0.1:$port2>",
        "    ServerName 127.0.0.1:$port2",
        '    <Location />',
        qq(        AuthUserFile "$apps_b"),
        '    </Location>',
        '</VirtualHost>', '';
    my $h = start_httpd(name => 'scope', site => $site);
    push @logs, $h->{error_log}, $h->{access_log};
    my $kc = '/realms/runai/protocol/openid-connect/token';

    is(legacy_call($h->{port}), 401, 'svc is refused at the legacy route (not in its user file)');
    is(keycloak_call($h->{port}, $kc), 401, 'svc is refused at the issuer path (not in its user file)');
    is(app_call($port2), 401, 'svc is refused by the virtual host (not in its user file)');
    is_deeply(codes(8, sub { app_call($h->{port}) }), { 200 => 8 },
              'svc is granted at /api/v1/token (and remembered there for 600 s)');
    is_deeply(codes(8, sub { legacy_call($h->{port}) }), { 401 => 8 },
              'the legacy route still refuses svc: a <Location> with its own user file and cache does not share the entry');
    is_deeply(codes(8, sub { keycloak_call($h->{port}, $kc) }), { 401 => 8 },
              'the issuer path still refuses svc: a <Location> that only sets AuthUserFile does not share the entry');
    is_deeply(codes(8, sub { app_call($port2) }), { 401 => 8 },
              'the virtual host still refuses svc: its <Location /> only sets AuthUserFile');
    # The scope is the same from one request to the next: removed from
    # apps-a, svc is still remembered at /api/v1/token (600 s).
    without_app($apps_a);
    my $c = codes(8, sub { app_call($h->{port}) });
    ok($c->{200}, 'svc removed from apps-a is still remembered at /api/v1/token (the cache works)')
        or diag(explain $c);
    stop_httpd($h);
}

{
    # The bound: svc is in both user files; <Location /> remembers it for
    # 600 s, /v1/k8s/auth/ for 2 s. Removed from the file of /v1/k8s/auth/,
    # it is refused there once 2 s have passed since it was checked there,
    # however recently the root checked it.
    my $apps_a = htfile('bound-apps-a', $app => $secret);
    my $apps_c = htfile('bound-apps-c', $app => $secret);
    my $site = join "\n",
        'RunaiTokenSigningKey @FIXTURES@/ec256.pem',
        two_locations($apps_a, $apps_c), '';
    my $h = start_httpd(name => 'bound', site => $site);
    push @logs, $h->{error_log}, $h->{access_log};

    is_deeply(codes(8, sub { app_call($h->{port}) }), { 200 => 8 },
              'TTL bound: svc is granted at /api/v1/token (remembered for 600 s)');
    is_deeply(codes(8, sub { legacy_call($h->{port}) }), { 200 => 8 },
              'TTL bound: svc is granted at the legacy route (its own user file has it)');
    without_app($apps_c);
    my $t0 = Time::HiRes::time();
    my $refused = wait_until(6, 0.2, sub {
        my $c = codes(4, sub { legacy_call($h->{port}) });
        return ($c->{401} // 0) == 4;
    });
    my $took = Time::HiRes::time() - $t0;
    ok($refused, 'TTL bound: removed from the file of /v1/k8s/auth/, svc is refused at the legacy route')
        or diag(explain codes(4, sub { legacy_call($h->{port}) }));
    # 2 s counted in whole seconds from the check: under 3 s after it,
    # plus the time of the calls (far from the root's 600 s).
    cmp_ok($took, '<', 5, sprintf('TTL bound: ... within the 2 s of that location (%.1f s)', $took));
    # Each process counts the TTL from its own last check, which may be a
    # little later than the one that refused first: every process refuses
    # within the TTL and a second of its granularity of the removal.
    my $all = wait_until(4, 0.2, sub { (codes(8, sub { legacy_call($h->{port}) })->{401} // 0) == 8 });
    my $took_all = Time::HiRes::time() - $t0;
    ok($all && $took_all < 4.5,
       sprintf('TTL bound: ... in every process within the TTL of the removal (%.1f s)', $took_all));
    is_deeply(codes(8, sub { legacy_call($h->{port}) }), { 401 => 8 },
              'TTL bound: ... and from then on, in every process');
    is_deeply(codes(4, sub { app_call($h->{port}) }), { 200 => 4 },
              'TTL bound: svc is still granted at /api/v1/token (its file still has it)');
    stop_httpd($h);
}

{
    # An .htaccess file: the user file is set per <Directory>, and an
    # .htaccess file in DocumentRoot/v1 (which the legacy routes map to)
    # names another one.
    my $apps_a = htfile('htaccess-apps-a', $app => $secret);
    my $docroot = catfile($dir, 'htdocs');
    mkdir $docroot;
    mkdir catfile($docroot, 'v1');
    chmod 0755, $docroot, catfile($docroot, 'v1');
    my $ht = catfile($docroot, 'v1', '.htaccess');
    open my $fh, '>', $ht or die "$ht: $!";
    print $fh qq(AuthUserFile "$apps_b"\n);
    close $fh or die "$ht: $!";
    chmod 0644, $ht;
    my $site = join "\n",
        'RunaiTokenSigningKey @FIXTURES@/ec256.pem',
        qq(DocumentRoot "$docroot"),
        'SetHandler runai-token',
        'RunaiTokenAppProvider file',
        'RunaiTokenAppCache 600',
        'RunaiTokenThrottle off',
        qq(<Directory "$docroot">),
        '    AllowOverride AuthConfig',
        qq(    AuthUserFile "$apps_a"),
        '</Directory>', '';
    my $h = start_httpd(name => 'htaccess', site => $site);
    push @logs, $h->{error_log}, $h->{access_log};

    is(legacy_call($h->{port}), 401, '.htaccess: svc is refused at the legacy route (not in the user file the .htaccess names)');
    is_deeply(codes(8, sub { app_call($h->{port}) }), { 200 => 8 },
              '.htaccess: svc is granted at /api/v1/token (in the user file of the <Directory>)');
    is_deeply(codes(8, sub { legacy_call($h->{port}) }), { 401 => 8 },
              '.htaccess: the legacy route still refuses svc: the same sections read with an .htaccess file do not share the entry');
    stop_httpd($h);
}

{
    # A virtual host that changes only server-level settings the provider
    # reads: mod_authn_dbd's query comes from the main server's
    # <Location />, the database from each server's DBDParams.
    my $sqlite = find_binary('sqlite3', 'sqlite3');
    -f '/usr/lib/x86_64-linux-gnu/apr-util-1/apr_dbd_sqlite3-1.so'
        or die "APR's sqlite3 driver is missing: install the Debian package libaprutil1-dbd-sqlite3\n";
    my %db;
    for my $name (qw(a b)) {
        my %users = $name eq 'a' ? ($app => $secret) : (other => 'other-secret-2');
        my $sql = "CREATE TABLE apps (id TEXT PRIMARY KEY, password TEXT);\n";
        for my $user (sort keys %users) {
            my $line = qx($htpasswd -nbB $user $users{$user});
            $? == 0 or die "htpasswd -n failed";
            $line =~ s/\s+\z//;
            my(undef, $hash) = split /:/, $line, 2;
            $sql .= "INSERT INTO apps VALUES ('$user', '$hash');\n";
        }
        $db{$name} = catfile($dir, "apps-$name.db");
        open my $fh, '|-', $sqlite, $db{$name} or die "sqlite3: $!";
        print $fh $sql;
        close $fh or die "sqlite3 $db{$name} failed";
        chmod 0644, $db{$name};
    }
    my $port2 = free_port();
    my $modules = '/usr/lib/apache2/modules';
    my $global = join "\n",
        "LoadModule dbd_module $modules/mod_dbd.so",
        "LoadModule authn_dbd_module $modules/mod_authn_dbd.so", '';
    my $site = join "\n",
        'RunaiTokenSigningKey @FIXTURES@/ec256.pem',
        'DBDriver sqlite3',
        qq(DBDParams "$db{a}"),
        '<Location />',
        '    SetHandler runai-token',
        '    RunaiTokenAppProvider dbd',
        '    AuthDBDUserPWQuery "SELECT password FROM apps WHERE id = %s"',
        '    RunaiTokenAppCache 600',
        '    RunaiTokenThrottle off',
        '</Location>',
        "Listen 127.0.0.1:$port2",
        "<VirtualHost 127.0.0.1:$port2>",
        "    ServerName 127.0.0.1:$port2",
        '    DBDriver sqlite3',
        qq(    DBDParams "$db{b}"),
        '</VirtualHost>', '';
    my $h = start_httpd(name => 'dbdvhost', site => $site, global => $global);
    push @logs, $h->{error_log}, $h->{access_log};

    is(app_call($port2), 401, 'virtual host: svc is refused (not in its database)');
    is_deeply(codes(8, sub { app_call($h->{port}) }), { 200 => 8 },
              'main server: svc is granted (in its database, remembered for 600 s)');
    is_deeply(codes(8, sub { app_call($port2) }), { 401 => 8 },
              'virtual host: svc is still refused: a server with its own DBDParams does not share the entry');
    stop_httpd($h);
}

RunaiHosts::assert_logs_clean('app cache scope', @logs);
done_testing();

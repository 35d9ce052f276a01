# `make run` from a fresh clone under a directory only its owner can enter
# (root's home on Debian is 0700): scripts/run-demo.sh, started as root,
# must serve the demo although its children (user nobody) cannot reach the
# clone, without changing the permissions of the user's directories.
#
# The test copies what the demo needs (scripts/run-demo.sh and the built
# module) into <0700 temp dir>/mod_runai_token/, runs the script there on
# a free port, waits until it answers, then:
#   - password and app_token grants with the credentials it saved and
#     printed, the printed curl lines, a file of the guarded location;
#   - the children run as nobody; what they read is in the script's
#     temporary directory (0755), the signing key is not;
#   - Ctrl-C (SIGINT to the process group, as a terminal sends it): httpd
#     is gone, the temporary directory removed, the 0700 parent untouched;
#   - a second run reuses the key and the credentials, and stops on a
#     SIGTERM to the script alone.
# RUNAI_DEMO_SCRIPT runs the test against another copy of the script (to
# see it fail on an older one); RUNAI_TOKEN_MODULE and RUNAI_HTTPD (make
# test-asan) are passed on as the module and the httpd binary.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Digest::SHA ();
use File::Copy qw(copy);
use File::Find qw(find);
use File::Path qw(make_path remove_tree);
use File::Spec::Functions qw(catdir catfile);
use File::Temp qw(tempdir);
use POSIX ();
use RunaiTest;
use RunaiHosts;

# Only a server started as root switches its children to nobody.
plan skip_all => 'needs root: run-demo.sh runs the children as nobody only when started as root '
    . '(this test covers that case; CI runs as root)' unless $> == 0;

my $top = Apache::Test::vars('top_dir');
my $script = $ENV{RUNAI_DEMO_SCRIPT} || catfile($top, 'scripts', 'run-demo.sh');
my $so = $ENV{RUNAI_TOKEN_MODULE} || catfile($top, '.libs', 'mod_runai_token.so');
-f $so or die "the module is not built: $so (run make)\n";
-f $script or die "$script is missing\n";

# --- a clone under a 0700 directory -------------------------------------------------

my $home = tempdir('runai-demo-home-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0700, $home or die "chmod $home: $!";
my $clone = catdir($home, 'mod_runai_token');
make_path(catdir($clone, 'scripts'), catdir($clone, '.libs'));
copy($script, catfile($clone, 'scripts', 'run-demo.sh')) or die "copy $script: $!";
chmod 0755, catfile($clone, 'scripts', 'run-demo.sh');
copy($so, catfile($clone, '.libs', 'mod_runai_token.so')) or die "copy $so: $!";
chmod 0755, catfile($clone, '.libs', 'mod_runai_token.so');
my $demo = catdir($clone, 'demo');
my $conf = catfile($demo, 'httpd.conf');
my %mode_before = map { $_ => (stat $_)[2] & 07777 } $home, $clone;
my $nobody = getpwnam('nobody') // die "no user nobody";

my $port = free_port();
my $base = "http://127.0.0.1:$port";
my %running;    # pid => process group of a script still running

# A test that died half-way, or was stopped, leaves no demo running: the
# script has a process group of its own, which a signal to the test's
# group does not reach.
sub stop_left {
    for my $pid (keys %running) {
        kill 'INT', -$pid;
        RunaiHosts::reap(10, $pid);
        kill 'KILL', -$pid;
        delete $running{$pid};
    }
}
END { stop_left() }
for my $sig (qw(INT TERM)) {
    my $next = $SIG{$sig};    # RunaiHosts' handler: it ends the process
    $SIG{$sig} = sub {
        stop_left();
        remove_tree($home);    # File::Temp's cleanup does not run on _exit
        ref $next eq 'CODE' ? $next->(@_) : POSIX::_exit(1);
    };
}

# The processes whose command line names the demo's httpd.conf: the httpd
# parent and its children.
sub demo_httpds {
    my @pids;
    for my $dir (glob '/proc/[0-9]*') {
        my $cmd = slurp("$dir/cmdline") // next;
        push @pids, $dir =~ s{^/proc/}{}r if index($cmd, "\0$conf\0") >= 0;
    }
    return @pids;
}

sub uid_of {
    my $status = slurp("/proc/$_[0]/status") // return undef;
    return $status =~ /^Uid:\s+(\d+)/m ? $1 : undef;
}

# Starts run-demo.sh in its own process group; returns the run (a hash)
# once the server answers, or after the script exited or 60 s passed.
sub start_demo {
    my $label = shift;
    my $out = catfile($home, "$label.out");
    my $pid = fork // die "fork: $!";
    unless ($pid) {
        POSIX::setpgid(0, 0);
        # as in a terminal, whatever the harness ignores (a background
        # make ignores SIGINT, and bash could then not trap it)
        $SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);
        delete $ENV{MODULE};
        $ENV{PORT} = $port;
        $ENV{HTTPD} = $ENV{RUNAI_HTTPD} if $ENV{RUNAI_HTTPD};
        chdir $clone;
        open(STDIN, '<', '/dev/null') && open(STDOUT, '>', $out) && open(STDERR, '>&', \*STDOUT)
            && exec 'scripts/run-demo.sh';
        print STDERR "cannot run scripts/run-demo.sh: $!\n";
        POSIX::_exit(127);
    }
    $running{$pid} = $pid;
    my $run = { label => $label, pid => $pid, out => $out };
    my $up = wait_until(60, 0.1, sub {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            $run->{status} = $?;
            delete $running{$pid};
            return -1;
        }
        return http_request(port => $port, method => 'GET', path => '/guarded/hello.txt',
                            timeout => 2)->code != 599;
    });
    $run->{up} = $up && $up > 0;
    $run->{text} = slurp($out) // '';
    ok($run->{up}, "$label: run-demo.sh serves $base")
        or diag("run-demo.sh " . (defined $run->{status} ? "exited with status " . ($run->{status} >> 8)
                                                         : 'did not answer within 60 s')
                . ", its output:\n" . $run->{text});
    ($run->{tmp}) = $run->{text} =~ /^\s+runtime\s+(\/\S+)/m;
    return $run;
}

# Signals the run (INT to its process group, or SIGNAL to the script
# alone), then checks that the script, httpd and the temporary directory
# are gone.
sub stop_demo {
    my($run, $signal, $group) = @_;
    my $label = $run->{label};
    my @httpd = demo_httpds();
    my $how = $group ? "SIG$signal to the process group (Ctrl-C)" : "SIG$signal to the script";
    my($done, $status) = (0, $run->{status});
    if (defined $status) {
        fail("$label: run-demo.sh runs until $how, then ends: it had ended before");
    }
    else {
        kill $signal, $group ? -$run->{pid} : $run->{pid};
        $done = wait_until(30, 0.05, sub {
            return 0 unless waitpid($run->{pid}, POSIX::WNOHANG()) == $run->{pid};
            $status = $?;
            return 1;
        });
        delete $running{ $run->{pid} } if $done;
        ok($done, "$label: run-demo.sh runs until $how, then ends");
    }
    is(defined $status ? $status >> 8 : 'still running', 0, "$label: run-demo.sh exits with status 0")
        or diag(slurp($run->{out}));
    like(slurp($run->{out}) // '', qr/^run-demo: server stopped\.$/m, "$label: it says the server stopped");
    ok(wait_until(10, 0.05, sub { !demo_httpds() && !grep { kill 0, $_ } @httpd }),
       "$label: no httpd of the demo is left") or diag('left: ' . join ' ', demo_httpds());
    ok(defined $run->{tmp} && !-e $run->{tmp}, "$label: the temporary directory is removed")
        or diag('left: ' . ($run->{tmp} // '(not printed)'));
    is_deeply({ map { $_ => (stat $_)[2] & 07777 } $home, $clone }, \%mode_before,
              "$label: the modes of the 0700 parent and of the clone are unchanged");
}

sub credentials {
    my %c = (slurp(catfile($demo, 'credentials')) // '') =~ /^(DEMO_\w+)=(\S*)$/mg;
    return \%c;
}

sub grants {
    my($run, $c) = @_;
    my $label = $run->{label};
    my $res = token_call($port, { grantType => 'password', username => $c->{DEMO_USER},
                                  password => $c->{DEMO_USER_PASSWORD}, clientID => 'cli' });
    is($res->code, 200, "$label: password grant of " . ($c->{DEMO_USER} // "?") . ": 200") or diag($res->as_string);
    my $body = response_json($res) || {};
    like($body->{accessToken} // '', qr/^[\w-]+\.[\w-]+\.[\w-]+$/, "$label: password grant: an accessToken");
    like($body->{refreshToken} // '', $REFRESH_TOKEN_RE, "$label: password grant: a refreshToken");
    $res = token_call($port, { grantType => 'app_token', appID => $c->{DEMO_APP_ID},
                               appSecret => $c->{DEMO_APP_SECRET} });
    is($res->code, 200, "$label: app_token grant of " . ($c->{DEMO_APP_ID} // "?") . ": 200") or diag($res->as_string);
    $body = response_json($res) || {};
    like($body->{accessToken} // '', qr/^[\w-]+\.[\w-]+\.[\w-]+$/, "$label: app_token grant: an accessToken");
    return $body->{accessToken};
}

# A printed command (or commands) run by bash: its output.
sub printed {
    my($label, $name, @lines) = @_;
    my($rc, $out, $err) = RunaiTest::run_capture('/bin/bash', '-c', join("\n", 'set -e', @lines));
    is($rc, 0, "$label: printed $name: exit status 0") or diag(join("\n", @lines) . "\n$err");
    return $out;
}

my(%key1, $creds1);
{
    my $run = start_demo('first run');
    my $text = $run->{text};
    if ($run->{up}) {
        my $c = $creds1 = credentials();
        ok($c->{DEMO_APP_SECRET} && $c->{DEMO_USER_PASSWORD}, 'first run: credentials saved in demo/credentials');
        like($text, qr/^\s+application\s+\Q$c->{DEMO_APP_ID}\E\s+secret\s+\Q$c->{DEMO_APP_SECRET}\E$/m,
             'first run: the app secret is printed');
        like($text, qr/^\s+user\s+\Q$c->{DEMO_USER}\E\s+password\s+\Q$c->{DEMO_USER_PASSWORD}\E$/m,
             'first run: the user password is printed');
        like($text, qr/new credentials/, 'first run: new credentials');
        my $token = grants($run, $c);

        my $res = http_request(port => $port, method => 'GET', path => '/guarded/hello.txt',
                               headers => [Authorization => "Bearer $token"]);
        is($res->code, 200, 'first run: a child serves the guarded file with the token') or diag($res->as_string);
        like($res->content, qr/^hello from a location guarded/, 'first run: the file of the demo');

        # the printed curl lines, as a user pastes them
        my @curl = $text =~ /^(curl -sS \Q$base\E\/api\/v1\/token -H 'Content-Type: application\/json' -d '\{"grantType":"(?:app_token|password)".*)$/mg;
        is(scalar @curl, 2, 'first run: curl lines of the app_token and password grants are printed');
        for my $line (@curl) {
            my $grant = $line =~ /"grantType":"(\w+)"/ ? $1 : '?';
            like(printed('first run', "curl line of the $grant grant", $line), qr/"accessToken":"[\w-]+\.[\w-]+\.[\w-]+"/,
                 "first run: the printed curl line of the $grant grant gets an accessToken");
        }
        my @guard = grep { /^TOKEN=\$\(curl / || /Authorization: Bearer \$TOKEN/ } split /\n/, $text;
        is(scalar @guard, 2, 'first run: the lines of the guarded location are printed');
        like(printed('first run', 'TOKEN= and guarded file lines', @guard), qr/^hello from a location guarded/,
             'first run: the printed lines fetch the guarded file');

        # who reads what
        my @httpd = demo_httpds();
        my($parent) = grep { (uid_of($_) // -1) == 0 } @httpd;
        my @children = grep { $_ != ($parent // 0) } @httpd;
        ok($parent && @children, 'first run: an httpd parent and its children') or diag("httpd: @httpd");
        is_deeply([map { uid_of($_) } @children], [map { $nobody } @children], 'first run: the children run as nobody');
        ok($run->{tmp} && -d $run->{tmp}, 'first run: the temporary directory is printed and exists')
            or diag($text);
        if ($run->{tmp} && -d $run->{tmp}) {
            is((stat $run->{tmp})[2] & 07777, 0755, 'first run: the temporary directory has mode 0755');
            like($run->{tmp}, qr{^/tmp/}, 'first run: the temporary directory is under /tmp');
            my @private;
            find(sub { push @private, $File::Find::name if -f && (slurp($_) // '') =~ /PRIVATE KEY/ }, $run->{tmp});
            is("@private", '', 'first run: no private key in the temporary directory');
        }
        %key1 = map { $_ => Digest::SHA::sha256_hex(slurp(catfile($demo, 'keys', $_)) // '') } qw(signing.pem signing.pub);
        ok(system('runuser', '-u', 'nobody', '--', 'test', '-r', catfile($demo, 'keys', 'signing.pem')) != 0,
           'first run: nobody cannot read the signing key');
    }
    stop_demo($run, 'INT', 1);
}

SKIP: {
    skip 'the first run did not come up', 1 unless $creds1 && %$creds1;
    my $run = start_demo('second run');
    if ($run->{up}) {
        like($run->{text}, qr/credentials of an earlier run/, 'second run: says it reuses the credentials');
        is_deeply(credentials(), $creds1, 'second run: the same credentials');
        is_deeply({ map { $_ => Digest::SHA::sha256_hex(slurp(catfile($demo, 'keys', $_)) // '') } keys %key1 },
                  \%key1, 'second run: the same signing key');
        grants($run, $creds1);
    }
    stop_demo($run, 'TERM', 0);
}


done_testing();

package RunaiHosts;
# Everything the session tests run besides the Apache::Test server:
#   - redis-server and memcached on 127.0.0.1 with free ports, stopped,
#     killed and restarted by PID;
#   - independent httpd instances (/usr/sbin/apache2 -f CONF -k start) with
#     their own ServerRoot in a temp dir, the event MPM, absolute LoadModule
#     lines, the module built in this tree and the suite's fixtures;
#   - HTTP/1.1 requests that can pick their source address (throttling
#     counts per remote address) and talk to either kind of server, on the
#     raw client of t/lib/RunaiHTTP.pm;
#   - race(): N forked clients held at one barrier, then released at once.
# Whatever a test started is stopped in an END block, also when it dies.
# Every wait is bounded in attempts and in time.
use strict;
use warnings;

use Exporter 'import';
use Cwd qw(abs_path);
use Errno ();
use File::Path qw(remove_tree);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64 encode_base64url);
use POSIX ();
use Time::HiRes ();
use RunaiTest qw(slurp);
use RunaiHTTP qw(request_bytes connect_to send_bytes read_response failed_response);

our @EXPORT = qw(
  find_binary free_port start_redis start_memcached start_sentinel redis_cmd stop_service kill_service
  restart_service start_httpd stop_httpd restart_httpd graceful_httpd httpd_running
  httpd_children httpd_ctl httpd_pid session_site http_request raw_request vhost_port basic_auth url_encode query_params race
  slurp log_tail logs_clean pkce_pair wait_until reap
  post_json_to token_call password_login refresh_call authorize_call
  code_of exchange_call reply_of tokens_ok note_secret noted_secrets assert_logs_clean
  load_secrets htpasswd_file htpasswd_remove random_secret
);

my $OWNER = $$;                 # END only acts in the process that started things
my(%SERVICES, %HTTPDS);         # what is running, by PID / by name
my @DIRS;                       # temp dirs, removed at the end
my $KEEP = $ENV{RUNAI_KEEP_HOSTS};   # keep temp dirs (logs) for debugging
my $MODULES = '/usr/lib/apache2/modules';
# RUNAI_HTTPD: another httpd binary or a wrapper (make test-asan's preloads
# the sanitizer runtime).
my $HTTPD = $ENV{RUNAI_HTTPD} || '/usr/sbin/apache2';

# --- small utilities --------------------------------------------------------

sub log_tail {
    my($file, $lines) = @_;
    my @all = split /\n/, slurp($file) // "($file: $!)";
    splice @all, 0, @all - ($lines || 40) if @all > ($lines || 40);
    return join '', map { "  $_\n" } @all;
}

# wait_until(SECONDS, STEP, CODE): calls CODE until it returns true or the
# time is up; returns CODE's last value. At most SECONDS/STEP + 1 calls.
sub wait_until {
    my($seconds, $step, $code) = @_;
    my $deadline = Time::HiRes::time() + $seconds;
    my $max = int($seconds / $step) + 1;
    my $v;
    for my $try (1 .. $max) {
        $v = $code->();
        return $v if $v;
        last if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($step);
    }
    return $v;
}

# A binary the tests need: missing is an error (the test fails), never a skip.
sub find_binary {
    my($name, $package) = @_;
    for my $dir (split(/:/, $ENV{PATH} // ''), qw(/usr/bin /usr/sbin /usr/local/bin)) {
        my $f = catfile($dir, $name);
        return $f if -f $f && -x _;
    }
    die "$name not found: install the Debian package " . ($package || $name) . "\n";
}

# A port nobody listens on now (the kernel picks it); never the same twice
# in one test process.
my %given;
sub free_port {
    for my $try (1 .. 50) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or die "cannot bind a free port on 127.0.0.1: $!";
        my $port = $s->sockport;
        close $s;
        next if $given{$port}++;
        return $port;
    }
    die "no free port found in 50 attempts";
}

sub port_open {
    my $port = shift;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

# Sends one line and reads the answer's first line (redis PING, memcached
# version): the server is up when the answer matches.
sub probe {
    my($port, $line, $want) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1) or return 0;
    syswrite $s, $line;
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = Time::HiRes::time() + 2;
    while ($buf !~ /\n/ && Time::HiRes::time() < $deadline) {
        last unless $sel->can_read(0.2);
        my $n = sysread $s, $buf, 256, length $buf;
        last unless $n;
    }
    close $s;
    return $buf =~ $want;
}

sub pid_alive { my $pid = shift; return $pid && kill(0, $pid) }

# --- redis-server and memcached ----------------------------------------------

my %KIND = (
    redis => {
        binary => 'redis-server', package => 'redis-server',
        argv => sub {
            my($svc) = @_;
            return ('--port', $svc->{port}, '--bind', '127.0.0.1',
                    '--protected-mode', 'no', '--daemonize', 'no',
                    '--dir', $svc->{dir}, '--logfile', '',
                    ($svc->{persist}
                        ? ('--appendonly', 'yes', '--appendfsync', 'always')
                        : ('--save', '', '--appendonly', 'no')),
                    @{ $svc->{args} || [] });
        },
        probe => ["PING\r\n", qr/^\+PONG/],
    },
    # A sentinel: redis-server in sentinel mode (what Debian's
    # redis-sentinel runs), its configuration file its own to rewrite.
    sentinel => {
        binary => 'redis-server', package => 'redis-server',
        argv => sub {
            my($svc) = @_;
            my $conf = catfile($svc->{dir}, 'sentinel.conf');
            unless (-e $conf) {
                open my $fh, '>', $conf or die "$conf: $!";
                print $fh "port $svc->{port}\nbind 127.0.0.1\nprotected-mode no\n"
                        . "dir $svc->{dir}\n" . ($svc->{conf} // '');
                close $fh;
            }
            return ($conf, '--sentinel', @{ $svc->{args} || [] });
        },
        probe => ["PING\r\n", qr/^\+PONG/],
    },
    memcached => {
        binary => 'memcached', package => 'memcached',
        argv => sub {
            my($svc) = @_;
            return ('-l', '127.0.0.1', '-p', $svc->{port}, '-U', '0', '-m', '16',
                    '-c', '1024', ($> == 0 ? ('-u', 'nobody') : ()));
        },
        probe => ["version\r\n", qr/^VERSION /],
    },
);

sub spawn_service {
    my $svc = shift;
    my $kind = $KIND{ $svc->{kind} };
    my @cmd = ($svc->{binary}, $kind->{argv}->($svc));
    my $log = catfile($svc->{dir}, "$svc->{kind}.log");
    my $pid = fork // die "fork: $!";
    unless ($pid) {
        chdir $svc->{dir};
        open(STDIN, '<', '/dev/null') && open(STDOUT, '>>', $log)
            && open(STDERR, '>&', \*STDOUT) && exec { $cmd[0] } @cmd;
        print STDERR "cannot run $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    $svc->{pid} = $pid;
    $SERVICES{$pid} = $svc;
    my($line, $want) = @{ $kind->{probe} };
    my $up = wait_until(10, 0.05, sub {
        return -1 if waitpid($pid, POSIX::WNOHANG()) == $pid;   # it died
        return probe($svc->{port}, $line, $want) ? 1 : 0;
    });
    if (!$up || $up < 0) {
        delete $SERVICES{$pid};
        kill 'KILL', $pid if $up;   # still running but never answered
        waitpid $pid, 0 if $up;
        die "$svc->{kind} on port $svc->{port} did not start:\n" . log_tail($log);
    }
    return $svc;
}

sub start_service {
    my($kind, %o) = @_;
    my $k = $KIND{$kind} or die "unknown service kind $kind";
    my $svc = {
        kind    => $kind,
        binary  => find_binary($k->{binary}, $k->{package}),
        port    => $o{port} || free_port(),
        persist => $o{persist},
        args    => $o{args},
        conf    => $o{conf},
        dir     => tempdir("runai-$kind-XXXXXX", TMPDIR => 1, CLEANUP => 0),
    };
    push @DIRS, $svc->{dir};
    chmod 0777, $svc->{dir};    # memcached drops to nobody
    return spawn_service($svc);
}

sub start_redis     { start_service('redis', @_) }
sub start_memcached { start_service('memcached', @_) }
sub start_sentinel  { start_service('sentinel', @_) }

# redis_cmd(PORT, WORD...): one command to a redis server or sentinel; its
# reply decoded (a string, a number, undef for nil, an array ref; an error
# as "-ERR ..."), or undef when the server does not answer within 2 s.
sub redis_cmd {
    my($port, @words) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 2) or return undef;
    $s->autoflush(1);
    print $s '*' . scalar(@words) . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @words);
    my $buf = '';
    my $sel = IO::Select->new($s);
    my $deadline = Time::HiRes::time() + 2;
    my $reply;
    while (Time::HiRes::time() < $deadline) {
        my $pos = 0;
        my $ok = eval { $reply = resp_parse(\$buf, \$pos); 1 };
        last if $ok;
        last unless $sel->can_read($deadline - Time::HiRes::time());
        my $n = sysread($s, $buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    return $reply;
}

# One RESP value from $$buf at $$pos; dies when the buffer is incomplete.
sub resp_parse {
    my($buf, $pos) = @_;
    my $eol = index($$buf, "\r\n", $$pos);
    die "incomplete\n" if $eol < 0;
    my $type = substr($$buf, $$pos, 1);
    my $line = substr($$buf, $$pos + 1, $eol - $$pos - 1);
    $$pos = $eol + 2;
    return $line if $type eq '+';
    return "-$line" if $type eq '-';
    return 0 + $line if $type eq ':';
    if ($type eq '$') {
        return undef if $line < 0;
        die "incomplete\n" if length($$buf) < $$pos + $line + 2;
        my $v = substr($$buf, $$pos, $line);
        $$pos += $line + 2;
        return $v;
    }
    if ($type eq '*') {
        return undef if $line < 0;
        return [map { resp_parse($buf, $pos) } 1 .. $line];
    }
    die "not RESP\n";
}

# reap(SECONDS, PID...): waits (bounded) until each of these children has
# exited; KILLs the ones still there after SECONDS and reaps them (bounded
# again). Returns the PIDs that had to be killed.
sub reap {
    my($seconds, @pids) = @_;
    my %left = map { $_ => 1 } @pids;
    my $exited = sub {
        for my $pid (keys %left) {
            my $r = waitpid($pid, POSIX::WNOHANG());
            delete $left{$pid} if $r == $pid || $r == -1;
        }
        return !%left;
    };
    wait_until($seconds, 0.02, $exited);
    my @killed = sort { $a <=> $b } keys %left;
    if (@killed) {
        kill 'KILL', @killed;
        wait_until(5, 0.02, $exited);
    }
    return @killed;
}

# end_service(SVC, SIGNAL): sends SIGNAL and waits (bounded) for the exit;
# KILL when SIGNAL was not enough.
sub end_service {
    my($svc, $signal) = @_;
    return unless $svc && $svc->{pid};
    my $pid = delete $svc->{pid};
    delete $SERVICES{$pid};
    kill $signal, $pid;
    reap(10, $pid);
}

sub stop_service { end_service(shift, 'TERM') }

# A crash: SIGKILL, nothing saved.
sub kill_service { end_service(shift, 'KILL') }

# The same service again, on the same port.
sub restart_service {
    my $svc = shift;
    stop_service($svc) if $svc->{pid};
    return spawn_service($svc);
}

# --- httpd instances -----------------------------------------------------------

sub t_dir { RunaiTest::t_dir() }
sub fixture_path { RunaiTest::fixture(@_) }

# The module built in this tree, found from the test file (t/NN_x.t), or
# the one RUNAI_TOKEN_MODULE names (see t/TEST.PL).
sub module_path {
    my $so = $ENV{RUNAI_TOKEN_MODULE} || catfile(t_dir(), '..', '.libs', 'mod_runai_token.so');
    die "the module is not built: $so (run make)\n" unless -f $so;
    return abs_path($so);
}

# start_httpd(name => NAME, site => CONFIG TEXT, cache => PROVIDER:ARGS,
#             port => PORT, global => TEXT, no_socache => 1)
# no_socache leaves every mod_socache_* module out.
# site goes at the end of the main server config; cache becomes
# RunaiTokenCache (absent: the default shmcb). @FIXTURES@ in site is the
# absolute path of t/fixtures. Returns the host (a hash).
sub start_httpd {
    my(%o) = @_;
    my $name = $o{name} || 'host';
    die "httpd instance $name is already running" if $HTTPDS{$name};
    -x $HTTPD or die "$HTTPD not found: install the Debian package apache2\n";
    my $dir = tempdir("runai-httpd-$name-XXXXXX", TMPDIR => 1, CLEANUP => 0);
    push @DIRS, $dir;
    chmod 0755, $dir;
    my $h = {
        name       => $name,
        dir        => $dir,
        port       => $o{port} || free_port(),
        conf       => catfile($dir, 'httpd.conf'),
        pidfile    => catfile($dir, 'httpd.pid'),
        error_log  => catfile($dir, 'error_log'),
        access_log => catfile($dir, 'access_log'),
        site       => $o{site} // '',
        cache      => $o{cache},
        global     => $o{global} // '',
        no_socache => $o{no_socache},
    };
    write_conf($h);
    $HTTPDS{$name} = $h;
    httpd_start($h);
    return $h;
}

sub write_conf {
    my $h = shift;
    my $so = module_path();
    my $fix = fixture_path();
    (my $site = $h->{site}) =~ s/\@FIXTURES\@/$fix/g;
    my $user = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
    my $cache = defined $h->{cache} ? "RunaiTokenCache $h->{cache}\n" : '';
    my $socache = $h->{no_socache} ? '' : join '', map {
        "LoadModule socache_${_}_module $MODULES/mod_socache_$_.so\n"
    } qw(shmcb redis memcache dbm);
    my $conf = <<"EOF";
# generated by t/lib/RunaiHosts.pm for instance $h->{name}
ServerRoot "$h->{dir}"
ServerName 127.0.0.1:$h->{port}
Listen 127.0.0.1:$h->{port}
PidFile "$h->{pidfile}"
ErrorLog "$h->{error_log}"
LogLevel info runai_token:trace8
DefaultRuntimeDir "$h->{dir}"
${user}LoadModule mpm_event_module $MODULES/mod_mpm_event.so
LoadModule authz_core_module $MODULES/mod_authz_core.so
LoadModule authz_user_module $MODULES/mod_authz_user.so
LoadModule authn_core_module $MODULES/mod_authn_core.so
LoadModule authn_file_module $MODULES/mod_authn_file.so
LoadModule auth_basic_module $MODULES/mod_auth_basic.so
LoadModule env_module $MODULES/mod_env.so
LoadModule setenvif_module $MODULES/mod_setenvif.so
${socache}LoadModule runai_token_module "$so"
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "$h->{access_log}" common
KeepAlive On
Timeout 30
<IfModule mpm_event_module>
    StartServers 2
    ServerLimit 4
    ThreadsPerChild 25
    MinSpareThreads 25
    MaxSpareThreads 100
    MaxRequestWorkers 100
    MaxConnectionsPerChild 0
</IfModule>
$h->{global}
$cache
<AuthnProviderAlias file runai-apps>
    AuthUserFile "$fix/apps.htpasswd"
</AuthnProviderAlias>
<AuthnProviderAlias file runai-users-primary>
    AuthUserFile "$fix/users-primary.htpasswd"
</AuthnProviderAlias>

$site
EOF
    open my $fh, '>', $h->{conf} or die "$h->{conf}: $!";
    print $fh $conf;
    close $fh or die "$h->{conf}: $!";
    chmod 0644, $h->{conf};
}

sub httpd_ctl {
    my($h, $signal) = @_;
    my $out = catfile($h->{dir}, 'ctl.out');
    my $pid = fork // die "fork: $!";
    unless ($pid) {
        open(STDIN, '<', '/dev/null') && open(STDOUT, '>>', $out)
            && open(STDERR, '>&', \*STDOUT)
            && exec { $HTTPD } $HTTPD, '-f', $h->{conf}, '-k', $signal;
        POSIX::_exit(127);
    }
    # -k start returns once httpd has detached
    my $done = wait_until(30, 0.05, sub { waitpid($pid, POSIX::WNOHANG()) == $pid });
    unless ($done) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
        return (255, "apache2 -k $signal did not return within 30 s");
    }
    return ($? >> 8, slurp($out) // '');
}

sub httpd_pid {
    my $h = shift;
    my $pid = slurp($h->{pidfile});
    return defined $pid && $pid =~ /^(\d+)/ ? $1 : undef;
}

sub httpd_running { my $h = shift; return pid_alive(httpd_pid($h)) }

sub generations {
    my $h = shift;
    my @n = (slurp($h->{error_log}) // '') =~ /resuming normal operations/g;
    return scalar @n;
}

sub httpd_start {
    my $h = shift;
    unlink $h->{pidfile};
    my $before = generations($h);
    my($rc, $out) = httpd_ctl($h, 'start');
    die "httpd $h->{name} did not start (exit $rc): $out\n" . log_tail($h->{error_log}) if $rc;
    my $up = wait_until(15, 0.05, sub {
        httpd_running($h) && generations($h) > $before && port_open($h->{port});
    });
    die "httpd $h->{name} is not listening on $h->{port} after 15 s:\n$out\n"
        . log_tail($h->{error_log}) unless $up;
    return $h;
}

# stop_httpd(HOST...): apache2 -k stop for each, then waits (bounded) until
# every parent and its port are gone; KILL for one that does not go.
sub stop_httpd {
    my @hosts = grep { $_ && $HTTPDS{ $_->{name} } } @_;
    my %pid;
    for my $h (@hosts) {
        $pid{ $h->{name} } = httpd_pid($h);
        httpd_ctl($h, 'stop') if pid_alive($pid{ $h->{name} });
    }
    for my $h (@hosts) {
        my $pid = $pid{ $h->{name} };
        my $gone = wait_until(20, 0.05, sub { !pid_alive($pid) });
        if (!$gone && $pid) {
            kill 'KILL', -$pid;    # its process group: parent and children
            kill 'KILL', $pid;
            wait_until(5, 0.05, sub { !pid_alive($pid) });
        }
        # the children that still served a request when the parent left
        wait_until(5, 0.05, sub { !port_open($h->{port}) });
        delete $HTTPDS{ $h->{name} };
    }
}

# restart_httpd(HOST, 'graceless'): apache2 -k restart (SIGHUP: the parent
# stays, children and the configuration are renewed); 'stop': stop and start
# the same configuration on the same port.
sub restart_httpd {
    my($h, $how) = @_;
    if (($how // 'graceless') eq 'stop') {
        stop_httpd($h);
        $HTTPDS{ $h->{name} } = $h;
        return httpd_start($h);
    }
    my $before = generations($h);
    my $pid = httpd_pid($h);
    my($rc, $out) = httpd_ctl($h, 'restart');
    die "apache2 -k restart failed (exit $rc): $out" if $rc;
    my $ok = wait_until(20, 0.05, sub {
        generations($h) > $before && port_open($h->{port});
    });
    die "httpd $h->{name} did not come back after -k restart:\n" . log_tail($h->{error_log})
        unless $ok;
    die "httpd $h->{name}: the parent changed during -k restart" if httpd_pid($h) ne $pid;
    return $h;
}

# graceful_httpd(HOST): apache2 -k graceful (SIGUSR1: the parent stays,
# idle children go at once, busy ones finish their requests). Waits
# (bounded) until the new generation is up. Returns (exit status, output of
# apache2 -k graceful) without dying, so a caller can test a failing one.
sub graceful_httpd {
    my $h = shift;
    my $before = generations($h);
    my($rc, $out) = httpd_ctl($h, 'graceful');
    return ($rc, $out) if $rc;
    my $ok = wait_until(20, 0.05, sub { generations($h) > $before && port_open($h->{port}) });
    return ($ok ? 0 : 254, $ok ? $out : "no new generation within 20 s:\n" . log_tail($h->{error_log}));
}

# The PIDs of the children of a host's parent (from /proc).
sub httpd_children {
    my $h = shift;
    my $parent = httpd_pid($h) or return ();
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $text = slurp($stat) // next;
        # pid (comm) state ppid ...: comm may hold blanks and parentheses
        my($pid, $ppid) = $text =~ /^(\d+) \(.*\) \S+ (\d+) / or next;
        push @kids, $pid if $ppid == $parent;
    }
    return sort { $a <=> $b } @kids;
}

sub cleanup {
    return unless $$ == $OWNER;
    eval { stop_httpd(values %HTTPDS); 1 } or warn "stopping httpd: $@";
    for my $svc (values %SERVICES) {
        eval { stop_service($svc); 1 } or warn "stopping $svc->{kind}: $@";
    }
    if ($KEEP) {
        print STDERR "# kept for inspection: @DIRS\n" if @DIRS;
    }
    else {
        remove_tree(@DIRS);
    }
}

# A TERM (the harness or CI timing out) or INT ends the test through exit,
# so the END block below still stops everything.
$SIG{TERM} = $SIG{INT} = sub { cleanup(); POSIX::_exit(1) };

END {
    my $status = $?;
    cleanup();
    $? = $status;
}

# The site of the independent hosts: one issuer and key for all of them,
# so a token or code of one host is good on the other.
sub session_site {
    my(%o) = @_;
    my $extra = $o{extra} // '';
    return <<"EOF";
RunaiTokenIssuer https://shared.example.test
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
RunaiTokenClient webapp https://app.example.test/callback
<Location />
    SetHandler runai-token
    RunaiTokenAppProvider runai-apps
    RunaiTokenPasswordProvider runai-users-primary
    RunaiTokenClaim email "%{REMOTE_USER}\@shared.example.test"
$extra
</Location>
<Location /api/v1/authorize>
    AuthType Basic
    AuthName "runai shared"
    AuthBasicProvider runai-users-primary
    Require valid-user
</Location>
EOF
}

# --- HTTP ----------------------------------------------------------------------

# The port Apache::Test gave a <VirtualHost NAME>.
sub vhost_port {
    my $name = shift;
    require Apache::Test;
    my $hp = Apache::Test::config()->{vhosts}{$name}{hostport}
        or die "no Apache::Test virtual host named $name";
    my($port) = $hp =~ /:(\d+)$/ or die "no port in '$hp'";
    return $port;
}

sub basic_auth {
    my($user, $password) = @_;
    my $bytes = "$user:$password";
    utf8::encode($bytes) if utf8::is_utf8($bytes);
    return 'Basic ' . encode_base64($bytes, '');
}

# RFC 3986 unreserved characters stay, every other byte is %XX.
sub url_encode {
    my $s = shift;
    utf8::encode($s) if utf8::is_utf8($s);
    $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge;
    return $s;
}

sub url_decode {
    my $s = shift;
    $s =~ tr/+/ /;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

# The query of a URL as a list of [name, value] pairs (decoded bytes).
sub query_params {
    my $url = shift;
    my($q) = $url =~ /\?([^#]*)/ or return ();
    return map { my($k, $v) = split /=/, $_, 2; [url_decode($k), url_decode($v // '')] }
           split /&/, $q;
}

# A PKCE verifier (43 to 128 unreserved characters) and its S256 challenge.
sub pkce_pair {
    my $len = shift || 64;
    require Digest::SHA;
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($fh, my $raw, 96) == 96 or die 'short read';
    close $fh;
    my $verifier = substr(encode_base64url($raw), 0, $len);
    return ($verifier, encode_base64url(Digest::SHA::sha256($verifier)));
}

# http_request(port => P, method => M, path => '/x', headers => [..],
#              body => BYTES, type => CT, local_addr => '127.0.0.9',
#              timeout => S): an HTTP::Response; status 599 when the
# connection failed or timed out.
sub http_request {
    my(%a) = @_;
    my $sock = connect_to(%a) or return failed_response("connect to $a{port}: $!");
    $sock->autoflush(1);
    my($sent, $err) = send_bytes($sock, request_bytes(%a), $a{timeout});
    return failed_response("write: $err") if defined $err;
    return read_response($sock, $a{timeout} || 30, $a{method});
}

# raw_request(bytes => BYTES, port => P, local_addr => A, timeout => S,
#             method => M) sends BYTES verbatim; without bytes it sends what
# http_request would (same arguments). Unlike http_request it still reads
# the answer when the server stops reading early (a 413 sent before the
# whole body arrived): the answer then carries X-Test-Write-Error.
sub raw_request {
    my(%a) = @_;
    my $bytes = defined $a{bytes} ? $a{bytes} : request_bytes(%a);
    my $sock = connect_to(%a) or return failed_response("connect to $a{port}: $!");
    $sock->autoflush(1);
    local $SIG{PIPE} = 'IGNORE';
    my($off, $werr) = send_bytes($sock, $bytes, $a{timeout});
    my $res = read_response($sock, $a{timeout} || 30, $a{method});
    $res->header('X-Test-Write-Error' => "$werr after $off of " . length($bytes) . ' bytes')
        if defined $werr;
    return $res;
}

# race(REQUEST, ...): one forked client per request (http_request
# arguments). Every client connects, then all wait at one barrier (a pipe
# the parent closes); released together, they send and read. Returns one
# HTTP::Response per request, in order (599 for a client that failed).
sub race {
    my @reqs = @_;
    my $dir = tempdir('runai-race-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    pipe(my $gate_r, my $gate_w) or die "pipe: $!";
    pipe(my $ready_r, my $ready_w) or die "pipe: $!";
    my @pids;
    for my $i (0 .. $#reqs) {
        my $pid = fork;
        unless (defined $pid) {
            kill 'KILL', @pids;
            die "fork: $!";
        }
        unless ($pid) {
            close $gate_w;
            close $ready_r;
            my $res = eval {
                local $SIG{ALRM} = sub { die "client timed out\n" };
                alarm 60;
                my %a = %{ $reqs[$i] };
                my $sock = connect_to(%a);
                syswrite $ready_w, 'r';
                my $x;
                sysread $gate_r, $x, 1;     # returns at EOF: the gate opened
                my $r;
                if ($sock) {
                    $sock->autoflush(1);
                    my($sent, $err) = send_bytes($sock, request_bytes(%a));
                    die "write: $err" if defined $err;
                    $r = read_response($sock, 50, $a{method});
                }
                alarm 0;
                $r;
            };
            my $out = catfile($dir, $i);
            if (open my $fh, '>:raw', $out) {
                print $fh $res ? $res->as_string("\r\n") : "HTTP/1.1 599 client failed: $@\r\n\r\n";
                close $fh;
            }
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $gate_r;
    close $ready_w;
    # hold the gate until every client is connected (bounded)
    my $ready = 0;
    my $sel = IO::Select->new($ready_r);
    my $deadline = Time::HiRes::time() + 20;
    while ($ready < @reqs && Time::HiRes::time() < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread $ready_r, my $buf, 64;
        last unless $n;
        $ready += $n;
    }
    close $gate_w;    # open the gate
    reap(90, @pids);
    return map {
        my $text = slurp(catfile($dir, $_));
        defined $text && length $text ? HTTP::Response->parse($text)
            : failed_response('client left no answer');
    } 0 .. $#reqs;
}

# --- the grants, against any server ---------------------------------------------

my $JSON = JSON::PP->new->utf8->canonical;

# The suite's secrets (t/fixtures/secrets.json, written by t/TEST.PL).
my $SECRETS;
sub load_secrets {
    return $SECRETS if $SECRETS;
    $SECRETS = RunaiTest::secrets();
    note_secret("password of $_", $SECRETS->{users}{$_}) for sort keys %{ $SECRETS->{users} };
    note_secret("secret of $_", $SECRETS->{apps}{$_}) for sort keys %{ $SECRETS->{apps} };
    note_secret('the wrong secret', $SECRETS->{wrong});
    return $SECRETS;
}

# Every secret a test used or received: logs_clean looks for them all.
my @NOTED;
my %NOTED;
sub note_secret {
    my($name, $value) = @_;
    return unless defined $value && length $value && !$NOTED{$value}++;
    push @NOTED, [$name, $value];
}
sub noted_secrets { @NOTED }

# The decoded JSON body of an answer (undef when it is not JSON); the
# tokens in it are noted as secrets, and the JWTs recorded for t/99_logs.t.
sub reply_of {
    my $res = shift;
    my $body = eval { $JSON->decode($res->content) };
    return undef unless ref $body eq 'HASH';
    for my $k (qw(accessToken idToken refreshToken externalToken access_token id_token refresh_token)) {
        next unless defined $body->{$k} && !ref $body->{$k};
        note_secret($k, $body->{$k});
        RunaiTest::record_token($body->{$k});
    }
    return $body;
}

# tokens_ok(RESPONSE, NAME, more => [KEY, ...]): Test::More assertions on
# the 200 answer of a grant that opens or continues a session (password,
# refresh_token, exchange_token): the success headers, exactly the fields
# accessToken, idToken, refreshToken, expiresIn (and those of more), a
# refresh token of the session format ($RunaiTest::REFRESH_TOKEN_RE).
# Returns the body (tokens noted by reply_of).
sub tokens_ok {
    my($res, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    RunaiTest::check_success_headers($res, $name);
    my $body = reply_of($res) || {};
    my @fields = (qw(accessToken idToken refreshToken expiresIn), @{ $o{more} || [] });
    Test::More::is_deeply([sort keys %$body], [sort @fields], "$name: fields " . join(', ', @fields))
        or Test::More::diag('body: ' . $res->content);
    Test::More::like($body->{refreshToken} // '', $RunaiTest::REFRESH_TOKEN_RE,
        "$name: refresh token of the session format");
    return $body;
}

# POST PATH with a JSON body (a hash ref is encoded, a string sent as is).
sub post_json_to {
    my($port, $path, $data, %o) = @_;
    return http_request(port => $port, method => 'POST', path => $path,
                        body => ref $data ? $JSON->encode($data) : $data, %o);
}

sub token_call {
    my($port, $data, %o) = @_;
    return post_json_to($port, '/api/v1/token', $data, %o);
}

sub password_login {
    my($port, $user, $password, %o) = @_;
    my $headers = delete $o{headers};
    my %extra = %o;
    my $local = delete $extra{local_addr};
    return token_call($port, { grantType => 'password', username => $user,
                               password => $password, %extra },
                      ($headers ? (headers => $headers) : ()),
                      ($local ? (local_addr => $local) : ()));
}

sub refresh_call {
    my($port, $token, %o) = @_;
    return token_call($port, { grantType => 'refresh_token', refreshToken => $token }, %o);
}

# authorize_call(PORT, USER, PASSWORD, PARAMS (hash ref, in the given order
# when an array ref), headers => [...]): GET /api/v1/authorize with Basic
# credentials (none when USER is undef).
sub authorize_call {
    my($port, $user, $password, $params, %o) = @_;
    my @p = ref $params eq 'ARRAY' ? @$params : map { ($_ => $params->{$_}) } sort keys %$params;
    my @q;
    while (my($k, $v) = splice @p, 0, 2) {
        push @q, url_encode($k) . '=' . url_encode($v);
    }
    my @h = @{ $o{headers} || [] };
    push @h, Authorization => basic_auth($user, $password) if defined $user;
    return http_request(port => $port, method => 'GET',
                        path => '/api/v1/authorize' . (@q ? '?' . join('&', @q) : ''),
                        headers => \@h);
}

# The code of a 302 from authorize (noted as a secret), or undef.
sub code_of {
    my $res = shift;
    return undef unless $res->code == 302;
    my @code = map { $_->[1] } grep { $_->[0] eq 'code' } query_params($res->header('Location') // '');
    return undef unless @code == 1;
    note_secret('code', $code[0]);
    return $code[0];
}

sub exchange_call {
    my($port, $code, $redirect, %extra) = @_;
    my %o;
    $o{local_addr} = delete $extra{local_addr} if exists $extra{local_addr};
    return token_call($port, { grantType => 'exchange_token', code => $code,
                               redirectUri => $redirect, %extra }, %o);
}

# Test::More assertions: no noted secret appears in any of FILES.
sub assert_logs_clean {
    my($what, @files) = @_;
    my @secrets = noted_secrets();
    my @found = logs_clean(\@secrets, @files);
    Test::More::cmp_ok(scalar @secrets, '>', 0, "$what: secrets were noted (" . scalar(@secrets) . ')');
    Test::More::is(scalar @found, 0,
        "$what: none of the " . scalar(@secrets) . ' passwords, codes, refresh, access and id tokens is in '
        . join(', ', map { s{.*/t/logs/}{t/logs/}r } @files))
        or Test::More::diag('found: ' . join ', ', map { $_->[0] } @found);
}

# logs_clean(SECRETS, FILES): the [name, value] pairs of SECRETS found in
# any of FILES (empty: the logs are clean). Values are compared as UTF-8
# bytes; a value of fewer than 8 bytes is not looked for.
sub logs_clean {
    my($secrets, @files) = @_;
    my $text = join "\n", map { slurp($_) // '' } @files;
    my @found;
    for my $s (@$secrets) {
        my($name, $value) = @$s;
        next unless defined $value;
        my $bytes = $value;
        utf8::encode($bytes) if utf8::is_utf8($bytes);
        next if length $bytes < 8;
        push @found, $s if index($text, $bytes) >= 0;
    }
    return @found;
}

# random_secret(PREFIX, WHAT): PREFIX and 144 random bits in hex, noted
# (note_secret) so that the log checks look for it.
sub random_secret {
    my($prefix, $what) = @_;
    open my $fh, '<:raw', '/dev/urandom' or die "/dev/urandom: $!";
    read($fh, my $raw, 18) == 18 or die 'short read';
    my $s = $prefix . unpack('H*', $raw);
    note_secret($what, $s);
    return $s;
}

# htpasswd_file(PATH, USER => PASSWORD, ...): a new htpasswd file of bcrypt
# entries, readable by httpd's children; returns PATH.
sub htpasswd_file {
    my($file, %users) = @_;
    my $htpasswd = find_binary('htpasswd', 'apache2-utils');
    my $create = 1;
    for my $user (sort keys %users) {
        system("'$htpasswd' -bB " . ($create ? '-c ' : '') . "'$file' '$user' '$users{$user}' >/dev/null 2>&1") == 0
            or die "htpasswd $file $user failed\n";
        $create = 0;
    }
    chmod 0644, $file;
    return $file;
}

# htpasswd_remove(PATH, USER): USER's line taken out of an htpasswd file.
sub htpasswd_remove {
    my($file, $user) = @_;
    open my $in, '<', $file or die "$file: $!";
    my @keep = grep { !/^\Q$user\E:/ } <$in>;
    close $in;
    open my $out, '>', $file or die "$file: $!";
    print $out @keep;
    close $out or die "$file: $!";
}


# kill_httpd(HOST): SIGKILL to the parent and every child at once (a crash
# of the whole process tree: no cleanup runs), then waits (bounded) until
# they and the port are gone. The host stays known, for start_httpd_again.
sub kill_httpd {
    my $h = shift;
    my $parent = httpd_pid($h) or die "httpd $h->{name} has no PID\n";
    my @pids = ($parent, httpd_children($h));
    kill 'KILL', @pids;
    wait_until(10, 0.05, sub { !grep { pid_alive($_) } @pids })
        or die "httpd $h->{name}: still alive after SIGKILL: @pids\n";
    wait_until(5, 0.05, sub { !port_open($h->{port}) });
    return scalar @pids;
}

# start_httpd_again(HOST): starts a host stopped by stop_httpd or killed by
# kill_httpd, with the same configuration and port.
sub start_httpd_again {
    my $h = shift;
    $HTTPDS{ $h->{name} } = $h;
    return httpd_start($h);
}
push @EXPORT, qw(kill_httpd start_httpd_again);

# form_body(NAME => VALUE, ...): an application/x-www-form-urlencoded body,
# in the order given.
sub form_body {
    my @kv = @_;
    my @p;
    while (my($k, $v) = splice @kv, 0, 2) {
        push @p, url_encode($k) . '=' . url_encode($v);
    }
    return join '&', @p;
}

# form_post_to(PORT, PATH, [NAME => VALUE, ...], headers => [...],
#              local_addr => A): POST of a form (http_request).
sub form_post_to {
    my($port, $path, $params, %o) = @_;
    return http_request(port => $port, method => 'POST', path => $path, body => form_body(@$params),
                        type => 'application/x-www-form-urlencoded', headers => $o{headers} || [],
                        ($o{local_addr} ? (local_addr => $o{local_addr}) : ()));
}
push @EXPORT, qw(form_body form_post_to);

1;

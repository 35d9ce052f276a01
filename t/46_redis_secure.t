# The module's redis client against real redis-servers (issue 16): TLS
# with the server's certificate checked, an ACL user with only the commands
# the docs list, the password read from a file, and what it refuses:
#   (a) TLS (a CA and a certificate for 127.0.0.1 made here) and an ACL
#       user: logins, refreshes, a code and the health check work;
#   (b) a wrong password, a CA that did not sign the server's certificate,
#       plain TCP to the TLS port: 503, a line saying why, and never the
#       password in a log;
#   (c) ROLE: an address that is a replica is not used (503, "not a
#       master"); listed with the master, the master is used;
#   (d) a master demoted under the module (REPLICAOF): 503 at once (its
#       READONLY drops the connection, ROLE refuses the next), and grants
#       again within 1 s of REPLICAOF NO ONE.
# Everything started here is stopped in RunaiHosts' END block.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

$SIG{PIPE} = 'IGNORE';
my $s = load_secrets();
my $pw = $s->{users}{bob};
my @logs;

my $dir = tempdir('runai-redis-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;

sub openssl {
    my @cmd = ('openssl', @_);
    my $out = qx{@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1};
    die "openssl @_: $out" if $?;
}

# Two CAs; the server's certificate (subjectAltName IP 127.0.0.1) signed by
# the first.
for my $ca (qw(ca other)) {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-keyout', "$dir/$ca.key", '-out', "$dir/$ca.pem", '-days', '2', '-subj', "/CN=runai test $ca");
}
openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', "$dir/server.key", '-out', "$dir/server.csr", '-subj', '/CN=redis');
{
    open my $fh, '>', "$dir/ext" or die $!;
    print $fh "subjectAltName=IP:127.0.0.1\n";
    close $fh;
}
openssl('x509', '-req', '-in', "$dir/server.csr", '-CA', "$dir/ca.pem", '-CAkey', "$dir/ca.key",
        '-CAcreateserial', '-out', "$dir/server.pem", '-days', '2', '-extfile', "$dir/ext");
chmod 0644, map { "$dir/$_" } qw(ca.pem other.pem server.pem server.key);

my $secret = random_secret('redis-', 'redis password');
my $wrong = random_secret('wrong-', 'wrong redis password');
my $pwfile = catfile($dir, 'redis.password');
{
    open my $fh, '>', $pwfile or die $!;
    print $fh "$secret\n";
    close $fh;
    chmod 0600, $pwfile;
}

my $tls_port = free_port();
# The ACL user has the commands docs/directives.md lists, no more.
my $redis = start_redis(args => [
    '--tls-port', $tls_port, '--tls-cert-file', "$dir/server.pem", '--tls-key-file', "$dir/server.key",
    '--tls-ca-cert-file', "$dir/ca.pem", '--tls-auth-clients', 'no',
    '--user', 'runai', 'on', ">$secret", '~*',
    map({ "+$_" } qw(get set getdel del watch unwatch multi exec wait role)),
]);

sub host {
    my($name, $cache, $global) = @_;
    my $h = start_httpd(name => $name, cache => $cache, global => $global,
                        site => session_site() . "<Location /health>\n    SetHandler runai-token-health\n</Location>\n");
    push @logs, $h->{error_log}, $h->{access_log};
    return $h;
}

sub login { my $h = shift; return password_login($h->{port}, 'bob', $pw) }

sub log_has { my($h, $re) = @_; return wait_until(5, 0.05, sub { (slurp($h->{error_log}) // '') =~ $re }) }

# --- (a) TLS and an ACL user ----------------------------------------------------
{
    my $h = host('tls', "redis:127.0.0.1:$tls_port",
                 "RunaiTokenRedisTLS $dir/ca.pem\nRunaiTokenRedisAuth runai file:$pwfile\n");
    my $res = login($h);
    is($res->code, 200, '(a) TLS + ACL user: the password grant') or diag($res->content);
    my $body = reply_of($res) || {};
    $res = refresh_call($h->{port}, $body->{refreshToken} // 'none');
    is($res->code, 200, '(a) TLS + ACL user: refresh_token') or diag($res->content);
    my $next = (reply_of($res) || {})->{refreshToken};
    is(refresh_call($h->{port}, $body->{refreshToken})->code, 200,
       '(a) the same token again within the retry window: its successor again');
    $res = authorize_call($h->{port}, 'bob', $pw, { client_id => 'webapp', redirect_uri => 'https://app.example.test/callback' });
    my $code = code_of($res);
    ok($code, '(a) authorize mints a code');
    is(exchange_call($h->{port}, $code // 'none', 'https://app.example.test/callback')->code, 200,
       '(a) the code is redeemed (GETDEL over TLS)');
    is(exchange_call($h->{port}, $code // 'none', 'https://app.example.test/callback')->code, 401,
       '(a) and only once');
    is(http_request(port => $h->{port}, path => '/health')->code, 200, '(a) the health check says the store answers');
    my $keys = redis_cmd($redis->{port}, 'DBSIZE');
    ok(defined $keys && $keys >= 1, "(a) the records are in redis ($keys keys)");
    stop_httpd($h);
}

# --- (b) refusals -------------------------------------------------------------------
{
    my @cases = (
        ['wrongpw', "RunaiTokenRedisTLS $dir/ca.pem\nRunaiTokenRedisAuth runai $wrong\n", qr/AUTH refused: WRONGPASS/,
         'a wrong password'],
        ['wrongca', "RunaiTokenRedisTLS $dir/other.pem\nRunaiTokenRedisAuth runai file:$pwfile\n",
         qr/TLS: the server's certificate: /, 'a CA that did not sign the certificate'],
        ['plain', "RunaiTokenRedisAuth runai file:$pwfile\n", qr/cannot connect: /, 'plain TCP to the TLS port'],
    );
    for my $c (@cases) {
        my($name, $global, $why, $what) = @$c;
        my $h = host($name, "redis:127.0.0.1:$tls_port", $global);
        my $res = login($h);
        is($res->code, 503, "(b) $what: 503") or diag($res->content);
        is(http_request(port => $h->{port}, path => '/health')->code, 503, "(b) $what: the health check says 503");
        ok(log_has($h, qr/\[runai_token:error\].*session store \(redis\) is down: .*$why/),
           "(b) $what: the error log says why, once") or diag(log_tail($h->{error_log}, 10));
        stop_httpd($h);
    }
}

# --- (c) ROLE: replicas are not used ----------------------------------------------
my $primary = start_redis();
my $replica = start_redis(args => ['--replicaof', '127.0.0.1', $primary->{port}]);
ok(wait_until(15, 0.05, sub { (redis_cmd($primary->{port}, 'INFO', 'replication') // '') =~ /state=online/ }),
   '(c) the replica is in sync');
{
    my $h = host('replica', "redis:127.0.0.1:$replica->{port}");
    is(login($h)->code, 503, '(c) a replica alone: 503');
    ok(log_has($h, qr/is down: cannot connect: not a master \(ROLE: slave\)/), '(c) ... "not a master"');
    stop_httpd($h);
    $h = host('both', "redis:127.0.0.1:$replica->{port},127.0.0.1:$primary->{port}");
    my $res = login($h);
    is($res->code, 200, '(c) the replica and the master listed: the master is used');
    reply_of($res);
    stop_httpd($h);
}

# --- (d) a master demoted under the module ------------------------------------------
{
    my $h = host('demoted', "redis:127.0.0.1:$primary->{port}");
    my $res = login($h);
    is($res->code, 200, '(d) before: 200');
    my $tok = (reply_of($res) || {})->{refreshToken} // 'none';
    is(redis_cmd($primary->{port}, 'REPLICAOF', '127.0.0.1', $replica->{port}), 'OK', '(d) REPLICAOF: the master becomes a replica');
    is(login($h)->code, 503, '(d) demoted: 503');
    ok(log_has($h, qr/is down: .*(READONLY|not a master)/), '(d) ... the log says it is no master');
    is(redis_cmd($primary->{port}, 'REPLICAOF', 'NO', 'ONE'), 'OK', '(d) REPLICAOF NO ONE');
    my $t = time;
    my $back = wait_until(5, 0.02, sub { login($h)->code == 200 });
    my $took = time - $t;
    ok($back && $took <= 1.0, sprintf('(d) grants again %.2f s after it is a master again (bound 1 s)', $took));
    ok(log_has($h, qr/\[runai_token:notice\].*session store \(redis\) is back after/), '(d) ... and the log says so');
    stop_httpd($h);
}

assert_logs_clean('redis TLS and AUTH', @logs);
done_testing();

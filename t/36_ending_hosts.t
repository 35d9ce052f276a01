# Ending sessions across hosts (issue 13): two independent httpd instances
# (t/lib/RunaiHosts.pm) with one issuer and signing key, sharing one
# redis-server as their session store (RunaiTokenCache redis:...). Each has
# the password grant, the public client runai-cli, force logout at
# /api/v1/users/{userId}/logout for the administrator alice (AuthType Basic,
# Require user alice), and a guarded location /guard (AuthType RunaiToken,
# Require valid-user) with RunaiTokenSessionCheck left unset: its default,
# 5 s, is the bound on how long the guard of a process may still accept an
# access token of an ended session.
#   (a) force logout of bob on host A: each of bob's refresh tokens, minted
#       on A or on B, is refused on both hosts; carol's go on refreshing on
#       both; the guard of both hosts refuses bob's access tokens within the
#       bound (polled every 100 ms, the delays measured and reported); a new
#       login of bob afterwards works on both hosts;
#   (b) force logout without credentials (and with a non-administrator's)
#       on host B: 401, and nothing ended;
#   (c) revocation (RFC 7009) on host A of an access token of runai-cli:
#       its refresh token is refused on host B, and host B's guard refuses
#       the access token within the bound;
#   (d) (run last: it stops the store) redis stopped: the guard of both
#       hosts still accepts a live session's access token after its cached
#       look expired (a store outage refuses no token), then redis starts
#       again;
#   (e) openid-client (t/node/oidc_logout.mjs) against host A: discovery
#       names the revocation and end-session endpoints; tokenRevocation of a
#       refresh token and of an access token, and buildEndSessionUrl with
#       id_token_hint, post_logout_redirect_uri and state (302 to the
#       registered URI with the state) end their sessions on both hosts.
# Every wait polls for its event; everything started here is stopped in
# RunaiHosts' END block, also when the test dies.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use JSON::PP ();
use URI ();
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

$SIG{PIPE} = 'IGNORE';
my $T0 = time;
my $BOUND = 5;       # RunaiTokenSessionCheck unset: the default, 5 s
my $SLACK = 1.5;     # what a refusal may take beyond the bound
my $STEP = 0.1;      # the guard is polled every 100 ms
my $s = load_secrets();
my %pw = %{ $s->{users} };
my $CLI = 'runai-cli';
my $CLI_LOGOUT = 'http://localhost:8000/logout';
my $JSON = JSON::PP->new->utf8->canonical;
my @summary;

# --- the hosts -------------------------------------------------------------------

my $redis = start_redis();
my $port_a = free_port();
my $issuer = "http://127.0.0.1:$port_a/auth/realms/runai";
my $issuer_path = '/auth/realms/runai';

# What the guarded location serves once a token is accepted.
my $docroot = tempdir('runai-ending-docs-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $docroot;
{
    open my $fh, '>', catfile($docroot, 'guard') or die "guard: $!";
    print $fh "guarded\n";
    close $fh;
    chmod 0644, catfile($docroot, 'guard');
}

my $site = <<"EOF";
RunaiTokenIssuer $issuer
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
RunaiTokenClient $CLI $CLI_LOGOUT
DocumentRoot "$docroot"
<AuthnProviderAlias file runai-users-secondary>
    AuthUserFile "\@FIXTURES\@/users-secondary.htpasswd"
</AuthnProviderAlias>
<Location />
    SetHandler runai-token
    RunaiTokenPasswordProvider runai-users-primary runai-users-secondary
</Location>
<Location /api/v1/users>
    AuthType Basic
    AuthName "runai admins"
    AuthBasicProvider runai-users-primary
    Require user alice
</Location>
<Location /guard>
    SetHandler none
    AuthType RunaiToken
    AuthName "runai guard"
    Require valid-user
</Location>
EOF

# RedisConnPoolTTL 1, as docs/operations.md recommends (see t/31_drills.t).
my %common = (cache => "redis:127.0.0.1:$redis->{port}", global => 'RedisConnPoolTTL 1', site => $site);
my $A = start_httpd(name => 'ending-a', port => $port_a, %common);
my $B = start_httpd(name => 'ending-b', %common);
my @hosts = ($A, $B);
my %name_of = ($A->{port} => 'A', $B->{port} => 'B');

# --- helpers ---------------------------------------------------------------------

sub why {
    my $res = shift;
    return 'got ' . $res->code . ': ' . substr($res->content // '', 0, 300);
}

# A password login of USER on HOST (more: JSON fields, e.g. clientID):
# the token answer, its tokens noted and recorded.
sub login {
    my($h, $user, %more) = @_;
    my $res = password_login($h->{port}, $user, $pw{$user}, %more);
    my $body = reply_of($res) || {};
    ok($res->code == 200 && $body->{refreshToken} && $body->{accessToken},
       "login of $user on host $name_of{$h->{port}}") or diag(why($res));
    return $body;
}

# A refresh on HOST: (status, the answer's body).
sub refresh {
    my($h, $token) = @_;
    my $res = refresh_call($h->{port}, $token);
    return ($res->code, reply_of($res) || {}, $res);
}

sub guard_code {
    my($port, $token) = @_;
    return http_request(port => $port, method => 'GET', path => '/guard',
                        headers => [Authorization => "Bearer $token"], timeout => 10)->code;
}

sub force_logout {
    my($h, $user, @auth) = @_;
    return http_request(port => $h->{port}, method => 'POST', path => "/api/v1/users/$user/logout",
                        headers => [@auth ? (Authorization => basic_auth(@auth)) : ()],
                        body => '', type => 'application/json', timeout => 10);
}

sub revoke {
    my($h, @pairs) = @_;
    return http_request(port => $h->{port}, method => 'POST', path => "$issuer_path/protocol/openid-connect/revoke",
                        body => form_body(@pairs), type => 'application/x-www-form-urlencoded', timeout => 10);
}

# watch(t0 => TIME, items => [{name, port, token}], done => CODE, max => S):
# one guard request per item every STEP seconds, from t0 on, until done
# (called with the seconds since t0 and the items) is true or max seconds
# have passed. Each item gets codes (status => count), first_401 and
# last_200 (seconds after t0) and run (401s in a row at the end).
sub watch {
    my(%o) = @_;
    my $items = $o{items};
    @$_{qw(codes run first_401 last_200)} = ({}, 0, undef, undef) for @$items;
    while (1) {
        my $round = time;
        for my $it (@$items) {
            my $code = guard_code($it->{port}, $it->{token});
            my $at = time - $o{t0};
            $it->{codes}{$code}++;
            if ($code == 401) {
                $it->{first_401} //= $at;
                $it->{run}++;
            }
            else {
                $it->{run} = 0;
                $it->{last_200} = $at if $code == 200;
            }
        }
        my $elapsed = time - $o{t0};
        last if $o{done}->($elapsed, $items) || $elapsed > $o{max};
        my $rest = $STEP - (time - $round);
        sleep $rest if $rest > 0;
    }
    return $items;
}

# Every item refused, 3 times in a row (on fresh connections).
sub all_refused { my(undef, $items) = @_; return !grep { $_->{run} < 3 } @$items }

sub secs { my $t = shift; return $t >= 99 ? 'never' : sprintf('%.2f s', $t) }

sub tally { my $it = shift; return join ', ', map { "$_ x $it->{codes}{$_}" } sort keys %{ $it->{codes} } }

# The figures of a watch for the items on one port; asserts that the
# guard there refused every one of them within the bound and accepted none
# afterwards. Returns the summary line.
sub refusal_ok {
    my($what, $port, @items) = @_;
    my $host = $name_of{$port};
    my @mine = grep { $_->{port} == $port } @items;
    my @never = grep { !defined $_->{first_401} } @mine;
    is(scalar @never, 0, "$what: host ${host}'s guard refused each of the " . scalar(@mine) . ' access tokens')
        or diag(join '; ', map { "$_->{name}: " . tally($_) } @never);
    my($first) = sort { $a <=> $b } map { $_->{first_401} // 99 } @mine;
    my($all) = sort { $b <=> $a } map { $_->{first_401} // 99 } @mine;
    my($last_ok) = sort { $b <=> $a } map { $_->{last_200} // 0 } @mine;
    my $line = sprintf('%s, host %s: first 401 after %s, every token refused after %s, last 200 %s (bound %d s)',
                       $what, $host, secs($first), secs($all), $last_ok ? 'at ' . secs($last_ok) : 'never', $BOUND);
    diag($line);
    cmp_ok($all, '<=', $BOUND + $SLACK, "$what: host ${host}'s guard refused every token within the bound + $SLACK s");
    cmp_ok($last_ok, '<=', $BOUND + $SLACK, "$what: host ${host}'s guard accepted none of them later than the bound + $SLACK s");
    is(scalar(grep { $_->{run} < 3 } @mine), 0, "$what: host $host: refused to the end (3 times in a row each)");
    return $line;
}

# ====================================================================================
# (a) force logout of one user's sessions on every host
# ====================================================================================
my(@bob, @carol);   # sessions: {access, refresh, made_on}
for my $h (@hosts) {
    for my $i (1 .. 3) {
        my $t = login($h, 'bob');
        push @bob, { access => $t->{accessToken}, refresh => $t->{refreshToken}, made_on => $name_of{$h->{port}} };
    }
    for my $i (1 .. 2) {
        my $t = login($h, 'carol');
        push @carol, { access => $t->{accessToken}, refresh => $t->{refreshToken}, made_on => $name_of{$h->{port}} };
    }
}
# each session refreshes on the other host first: the store is shared
for my $sess (@bob, @carol) {
    my $other = $sess->{made_on} eq 'A' ? $B : $A;
    my($code, $body, $res) = refresh($other, $sess->{refresh});
    is($code, 200, "(a) before: a session made on host $sess->{made_on} refreshes on host $name_of{$other->{port}}")
        or diag(why($res));
    $sess->{refresh} = $body->{refreshToken} // 'none';
}
# each access token accepted by both guards, several times (the processes
# remember the session as live: what the bound is about)
{
    my @codes = map { my $t = $_->{access}; map { my $h = $_; map { guard_code($h->{port}, $t) } 1 .. 4 } @hosts } @bob, @carol;
    is(scalar(grep { $_ != 200 } @codes), 0, '(a) before: both guards accept every access token of bob and carol (' . scalar(@codes) . ' requests)')
        or diag(join ' ', @codes);
}
{
    my $res = force_logout($A, 'bob', 'alice', $pw{alice});
    my $t0 = time;
    is($res->code, 200, '(a) force logout of bob by alice on host A: 200') or diag(why($res));
    is($res->content, '', '(a) force logout: an empty body');
    is($res->header('Cache-Control'), 'no-store', '(a) force logout: Cache-Control no-store');
    # the guard first: its clock starts at the answer
    my @items = ((map { my $i = $_; map { +{ name => "bob #$i ($bob[$i]{made_on}) on $name_of{$_->{port}}", port => $_->{port},
                                              token => $bob[$i]{access} } } @hosts } 0 .. $#bob));
    my @control = map { my $c = $_; map { +{ name => "carol ($c->{made_on}) on $name_of{$_->{port}}", port => $_->{port},
                                             token => $c->{access} } } @hosts } @carol[0, -1];
    watch(t0 => $t0, items => [@items, @control], max => $BOUND + 5,
          done => sub { all_refused($_[0], \@items) });
    push @summary, refusal_ok('(a) force logout', $_->{port}, @items) for @hosts;
    is(scalar(grep { $_->{codes}{401} } @control), 0, "(a) the guards kept accepting carol's access tokens on both hosts")
        or diag(join '; ', map { "$_->{name}: " . tally($_) } @control);

    # every refresh token of bob, minted on A or on B, on both hosts
    my @refused;
    for my $sess (@bob) {
        for my $h (@hosts) {
            my($code, undef, $r) = refresh($h, $sess->{refresh});
            push @refused, $code;
            diag("(a) bob's refresh after the force logout: " . why($r)) if $code != 401;
        }
    }
    is(scalar(grep { $_ == 401 } @refused), 2 * @bob,
       '(a) each of bob\'s ' . scalar(@bob) . ' refresh tokens (made on A and on B) is refused (401) on both hosts');
    # carol's go on, on both hosts
    my $ok = 0;
    for my $sess (@carol) {
        for my $h (@hosts) {
            my($code, $body) = refresh($h, $sess->{refresh});
            $ok++ if $code == 200;
            $sess->{refresh} = $body->{refreshToken} // 'none';
            $sess->{access} = $body->{accessToken} // $sess->{access};
        }
    }
    is($ok, 2 * @carol, "(a) carol's " . scalar(@carol) . ' sessions refresh on host A, then on host B');
    like(slurp($A->{error_log}) // '', qr/every session of user 'bob' ended by 'alice'/,
         "(a) host A's error log names the user ended and the administrator");
}
# bob again, on each host: a session begun after the force logout lives
my @bob_new;
for my $h (@hosts) {
    my $t = login($h, 'bob');
    my $other = $h == $A ? $B : $A;
    my($code, $body) = refresh($other, $t->{refreshToken} // 'none');
    is($code, 200, "(a) after: bob's new session of host $name_of{$h->{port}} refreshes on host $name_of{$other->{port}}");
    my @g = map { guard_code($_->{port}, $body->{accessToken} // 'none') } @hosts;
    is("@g", '200 200', "(a) after: both guards accept the access token of bob's new session of host $name_of{$h->{port}}");
    push @bob_new, { access => $body->{accessToken} // 'none', refresh => $body->{refreshToken} // 'none' };
}

# ====================================================================================
# (b) force logout needs the administrator: nothing ends without
# ====================================================================================
{
    my $res = force_logout($B, 'bob');
    is($res->code, 401, '(b) force logout of bob without credentials on host B: 401') or diag(why($res));
    like($res->header('WWW-Authenticate') // '', qr/^Basic realm="runai admins"/, '(b) ... with a Basic challenge');
    $res = force_logout($B, 'bob', 'bob', $pw{bob});
    is($res->code, 401, '(b) force logout of bob by bob himself (not the administrator) on host B: 401') or diag(why($res));
    $res = force_logout($B, 'bob', 'alice', $s->{wrong});
    is($res->code, 401, '(b) force logout with a wrong password of alice on host B: 401') or diag(why($res));
    # the refresh looks at the store on every use: no cache to wait for
    my @codes;
    for my $sess (@bob_new) {
        for my $h ($B, $A) {
            my($code, $body) = refresh($h, $sess->{refresh});
            push @codes, $code;
            $sess->{refresh} = $body->{refreshToken} // 'none';
            $sess->{access} = $body->{accessToken} // $sess->{access};
        }
    }
    is("@codes", '200 200 200 200', "(b) bob's sessions still refresh on host B and on host A: nothing ended");
    my @g = map { my $t = $_->{access}; map { guard_code($_->{port}, $t) } @hosts } @bob_new;
    is("@g", '200 200 200 200', "(b) both guards still accept bob's access tokens");
}

# ====================================================================================
# (c) revocation of an access token on host A: its session ends on host B
# ====================================================================================
{
    my $t = login($B, 'bob', clientID => $CLI);
    my $access = $t->{accessToken} // 'none';
    my(undef, $claims) = jwt_parts($access);
    is(($claims || {})->{azp}, $CLI, "(c) bob's access token was issued to $CLI (azp)");
    ok(defined(($claims || {})->{sid}), '(c) it names its session (sid)');
    my @g = map { guard_code($B->{port}, $access) } 1 .. 6;
    is("@g", join(' ', (200) x 6), "(c) before: host B's guard accepts it");

    # the client that got the token must be named
    my $res = revoke($A, token => $access, token_type_hint => 'access_token');
    isnt($res->code, 200, '(c) revocation on host A naming no client is refused') or diag(why($res));
    diag('(c) revocation naming no client: ' . why($res));
    my($code, $body) = refresh($B, $t->{refreshToken} // 'none');
    is($code, 200, '(c) ... and the session goes on (refresh on host B)');
    my $refresh = $body->{refreshToken} // 'none';

    $res = revoke($A, token => $access, token_type_hint => 'access_token', client_id => $CLI);
    my $t0 = time;
    is($res->code, 200, "(c) revocation of the access token on host A (client_id $CLI): 200") or diag(why($res));
    is($res->content, '', '(c) revocation: an empty body');
    ($code) = refresh($B, $refresh);
    is($code, 401, '(c) its refresh token is refused on host B');
    my @items = map { +{ name => "bob's revoked access token on $name_of{$_->{port}}", port => $_->{port}, token => $access } } $B, $A;
    watch(t0 => $t0, items => \@items, max => $BOUND + 5, done => \&all_refused);
    push @summary, refusal_ok('(c) revocation', $B->{port}, @items);
    push @summary, refusal_ok('(c) revocation', $A->{port}, @items);
    # an unknown token: 200 all the same (RFC 7009 section 2.2)
    $res = revoke($B, token => 'no-such-token-' . time, client_id => $CLI);
    is($res->code, 200, '(c) revocation of an unknown token: 200') or diag(why($res));
}

# ====================================================================================
# (e) openid-client: discovery, tokenRevocation, buildEndSessionUrl
# ====================================================================================
my $node_dir = catfile($FindBin::Bin, 'node');
sub node_json {
    my($script, $job) = @_;
    my($rc, $out, $err) = RunaiTest::run_capture([$JSON->encode($job)], 'timeout', '90', 'node',
                                                  catfile($node_dir, $script));
    is($rc, 0, "node $script ran") or diag("exit $rc\n$err\n$out");
    my $r = RunaiTest::json_decode((split /\n/, $out // '')[-1] // '');
    ok(ref $r eq 'HASH', "node $script answered JSON") or diag($out);
    return $r || {};
}
{
    my $installed = -f catfile($node_dir, 'node_modules', 'openid-client', 'package.json');
    ok($installed, 'openid-client is installed under t/node') or diag('run: npm ci --prefix t/node');
    my $state = 'st-' . unpack('H*', pack('N', int(rand(2**32)))) . '-x y';
    my $r = node_json('oidc_logout.mjs', {
        issuer => $issuer, cli => { id => $CLI, logout_uri => $CLI_LOGOUT },
        user => { name => 'carol', password => $pw{carol} }, state => $state,
        guards => [map { "http://127.0.0.1:$_->{port}/guard" } @hosts],
    });
    my $v = $r->{versions} || {};
    diag("(e) openid-client $v->{'openid-client'} on node $v->{node}") if $v->{'openid-client'};
    my %st = %{ $r->{steps} || {} };
    my $show = sub { diag($JSON->encode($_[0]{error} || $_[0])) };
    # every token received, noted for the log checks (here and t/99_logs.t)
    for my $x (values %st) {
        for my $set (grep { ref eq 'HASH' } $x->{tokens}, $x->{refreshed_before}, $x->{after}, $x->{after_first_token}) {
            for my $k (qw(access_token id_token refresh_token)) {
                next unless defined $set->{$k};
                note_secret("openid-client $k", $set->{$k});
                record_token($set->{$k});
            }
        }
    }

    my $d = $st{discovery} || {};
    ok($d->{ok}, '(e) client.discovery succeeds') or $show->($d);
    my $m = $d->{metadata} || {};
    is($m->{revocation_endpoint}, "$issuer/protocol/openid-connect/revoke", '(e) discovery: revocation_endpoint');
    is($m->{end_session_endpoint}, "$issuer/protocol/openid-connect/logout", '(e) discovery: end_session_endpoint');
    ok(ref $m->{revocation_endpoint_auth_methods_supported} eq 'ARRAY'
       && grep({ $_ eq 'none' } @{ $m->{revocation_endpoint_auth_methods_supported} }),
       '(e) discovery: revocation_endpoint_auth_methods_supported names none (public clients)')
        or diag($JSON->encode($m->{revocation_endpoint_auth_methods_supported}));

    my @items;
    my $ended = sub {
        my($name, $x, $access) = @_;
        ok($x->{ok}, "(e) $name: openid-client succeeded") or $show->($x);
        is(join(' ', @{ $x->{guards_before} || [] }), '200 200', "(e) $name: before, both guards accepted the access token");
        my $after = $x->{after} || {};
        ok(defined $after->{refreshed} && !$after->{refreshed}, "(e) $name: client.refreshTokenGrant afterwards fails")
            or diag($JSON->encode($after));
        is(($after->{error} || {})->{error}, 'invalid_grant', "(e) $name: ... with invalid_grant")
            or diag($JSON->encode($after));
        push @items, map { +{ name => "$name on $name_of{$_->{port}}", port => $_->{port}, token => $access,
                              t0 => ($x->{ended_at} // 0) / 1000 } } @hosts;
    };
    my $rr = $st{revoke_refresh} || {};
    $ended->('tokenRevocation of a refresh token', $rr, ($rr->{refreshed_before} || {})->{access_token} // 'none');
    ok(!(($rr->{after_first_token} || {})->{refreshed} // 1), '(e) ... the session\'s earlier refresh token is refused too');
    my $ra = $st{revoke_access} || {};
    $ended->('tokenRevocation of an access token', $ra, ($ra->{tokens} || {})->{access_token} // 'none');
    ok(($st{revoke_unknown} || {})->{ok}, '(e) tokenRevocation of an unknown token resolves (200)')
        or $show->($st{revoke_unknown} || {});

    my $es = $st{end_session} || {};
    $ended->('buildEndSessionUrl', $es, ($es->{tokens} || {})->{access_token} // 'none');
    ok(defined(($es->{tokens} || {})->{sid}), '(e) the id token given as id_token_hint names its session (sid)');
    my $url = URI->new($es->{url} // '');
    is($url->scheme . '://' . $url->host_port . $url->path, "$issuer/protocol/openid-connect/logout",
       '(e) buildEndSessionUrl: the end_session_endpoint');
    my %q = $url->query_form;
    is($q{post_logout_redirect_uri}, $CLI_LOGOUT, '(e) buildEndSessionUrl: post_logout_redirect_uri');
    is($q{state}, $state, '(e) buildEndSessionUrl: state');
    is($q{client_id}, $CLI, '(e) buildEndSessionUrl: client_id');
    ok(defined $q{id_token_hint}, '(e) buildEndSessionUrl: id_token_hint');
    is($es->{status}, 302, '(e) the module answers the end-session URL with 302');
    my $loc = URI->new($es->{location} // '');
    is(($es->{location} // '') =~ s/\?.*//r, $CLI_LOGOUT, '(e) ... to the URI registered for runai-cli');
    is({ $loc->query_form }->{state}, $state, '(e) ... with the same state');

    my $un = $st{end_session_unregistered} || {};
    ok($un->{ok}, '(e) an unregistered post_logout_redirect_uri: openid-client built the URL') or $show->($un);
    is($un->{status}, 400, '(e) the module refuses an unregistered post_logout_redirect_uri: 400')
        or diag($JSON->encode($un));
    ok(!defined $un->{location}, '(e) ... with no redirect');
    ok(($un->{after} || {})->{refreshed}, '(e) ... and that session goes on (it refreshes)')
        or diag($JSON->encode($un->{after} || {}));

    # the guard of both hosts, for the three ended sessions' access tokens
    my $t0 = time;
    watch(t0 => $t0, items => \@items, max => $BOUND + 5, done => \&all_refused);
    for my $it (@items) {
        # from the end of the session (node's clock, the same host's)
        my $delay = defined $it->{first_401} ? $it->{first_401} + ($t0 - $it->{t0}) : 99;
        my $last = defined $it->{last_200} ? $it->{last_200} + ($t0 - $it->{t0}) : 0;
        my $line = sprintf('(e) %s: guard refused after %s, last 200 %s', $it->{name}, secs($delay),
                           defined $it->{last_200} ? 'at ' . secs($last) : 'never');
        diag($line);
        push @summary, $line;
        cmp_ok($delay, '<=', $BOUND + $SLACK, "(e) $it->{name}: the guard refused the access token within the bound + $SLACK s");
        cmp_ok($last, '<=', $BOUND + $SLACK, "(e) $it->{name}: ... and accepted it no later");
    }
    # the refresh tokens of the ended sessions, on host B
    for my $x ($rr, $ra, $es) {
        my $tok = ($x->{refreshed_before} || $x->{tokens} || {})->{refresh_token} // 'none';
        my($code) = refresh($B, $tok);
        is($code, 401, '(e) on host B too, the refresh token of a session ended through host A is refused');
    }
}

# ====================================================================================
# (d) a store outage refuses no token
# ====================================================================================
{
    my $sess = $carol[0];
    my @g = map { my $h = $_; map { guard_code($h->{port}, $sess->{access}) } 1 .. 6 } @hosts;
    is("@g", join(' ', (200) x 12), "(d) before: both guards accept carol's access token");
    my %log_at = map { $_->{name} => -s $_->{error_log} } @hosts;
    stop_service($redis);
    my $t0 = time;
    my $since = sub { my $h = shift; return substr(slurp($h->{error_log}) // '', $log_at{ $h->{name} }) };
    # Evidence that a guard asked the store and got no answer: the module's
    # own line, or mod_socache_redis's failed retrieve (only guard requests
    # reach the hosts until the watch ends).
    my $asked = sub { $since->($_[0]) =~ /session not looked at: the session store did not answer|AH03479: scache_rd: 'retrieve' FAIL/ };
    # past the bound, each process's cached look has expired: the guards
    # look at the store again, find it down, and let the signature decide
    my @items = map { +{ name => "carol on $name_of{$_->{port}}", port => $_->{port}, token => $sess->{access} } } @hosts;
    watch(t0 => $t0, items => \@items, max => $BOUND + 4, done => sub {
        my($elapsed) = @_;
        return $elapsed > $BOUND + 1 && !grep { !$asked->($_) } @hosts;
    });
    for my $it (@items) {
        is(join(', ', map { "$_ x $it->{codes}{$_}" } sort keys %{ $it->{codes} }),
           '200 x ' . ($it->{codes}{200} // 0), "(d) $it->{name}: every guard answer during the outage is 200 (" . tally($it) . ')');
        cmp_ok($it->{last_200} // 0, '>', $BOUND + 1, "(d) $it->{name}: accepted still more than 1 s past the bound ($BOUND s), the cached look gone");
    }
    ok($asked->($_), "(d) host $name_of{$_->{port}}: a guard look found the store down (error log)") for @hosts;
    for my $h (@hosts) {
        my $line = $since->($h) =~ /session not looked at/ ? 'yes' : 'no';
        diag("(d) host $name_of{$h->{port}}: the module's line \"session not looked at: the session store did not answer\" logged: $line");
    }
    my($code, undef, $res) = refresh($A, $sess->{refresh});
    is($code, 503, '(d) redis stopped: a refresh is 503 (the store is needed)') or diag(why($res));
    push @summary, sprintf('(d) redis down for %.1f s: guard answers %s', time - $t0, join('; ', map { "$_->{name}: " . tally($_) } @items));
    ok(eval { restart_service($redis); 1 }, '(d) redis starts again on the same port') or diag($@);
}

stop_httpd(@hosts);
is(scalar(grep { /exit signal|Segmentation|AH00052/ } map { split /\n/, slurp($_->{error_log}) // '' } @hosts), 0,
   'no child of either host died');
assert_logs_clean('36_ending_hosts', map { ($_->{error_log}, $_->{access_log}) } @hosts);
diag('summary: ' . join('; ', @summary));
diag(sprintf('36_ending_hosts: %.1f s', time - $T0));
done_testing();

# SSO through an upstream IdP, end to end (issue 14): mod_auth_openidc
# (Debian libapache2-mod-auth-openidc) in front of /api/v1/authorize on an
# httpd of its own, an upstream OpenID Provider on loopback (the npm package
# oidc-provider, t/node/upstream_idp.mjs), and a client without a browser
# that keeps a cookie jar and follows the redirects:
#   authorize → 302 to the upstream → its login form, posted → back to
#   mod_auth_openidc's redirect URI → 302 to the authorize URL → 302 with a
#   code to the downstream client's redirect URI → exchange_token.
# The tokens carry the upstream's user (OIDCRemoteUserClaim) and claims
# (OIDC_CLAIM_* through RunaiTokenClaim, groups as a list), externalToken is
# the upstream access token (its UserInfo answers it); a second authorize
# in the same mod_auth_openidc session needs no upstream trip. Refused: a
# wrong password and an unknown account (the upstream answers
# access_denied), a user the upstream knows but `Require claim` does not
# admit, and a request that is no browser's (401); none of them yields a
# code. No secret reaches the logs (the tokens are noted and recorded by
# reply_of, the passwords and secrets by random_secret).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use HTTP::Cookies ();
use HTTP::Request ();
use HTTP::Request::Common qw(POST);
use IO::Select ();
use JSON::PP ();
use LWP::UserAgent ();
use POSIX ();
use Time::HiRes ();
use URI ();
use RunaiHosts;
use RunaiTest qw(jwt_parts verify_crypt_jwt);

# What this test needs and cannot do without: a failure, never a skip.
sub give_up {
    fail(shift);
    done_testing();
    exit 1;
}
my $MODULES = '/usr/lib/apache2/modules';
my $OIDC_SO = "$MODULES/mod_auth_openidc.so";
-f $OIDC_SO or give_up("$OIDC_SO not found: install the Debian package libapache2-mod-auth-openidc");
my $node_dir = catfile(RunaiTest::t_dir(), 'node');
-f catfile($node_dir, 'node_modules', 'oidc-provider', 'package.json')
    or give_up('t/node/node_modules/oidc-provider is missing: run `npm ci --prefix t/node`');

my $JSON = JSON::PP->new->utf8->canonical;
my $dir = tempdir('runai-sso-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{RUNAI_KEEP_HOSTS});
my $idp_port = free_port();
my $port = free_port();
my $issuer = 'https://sso.example.test';
my $cb = 'https://ui.example.test/auth/callback';
my $rp_redirect = "http://127.0.0.1:$port/api/v1/authorize/redirect_uri";
my $client_secret = random_secret('rp-', 'secret of the mod_auth_openidc client');
my $passphrase = random_secret('crypto-', 'OIDCCryptoPassphrase');
my %account = (
    alice => { password => random_secret('pw-alice-', 'upstream password of alice'),
               claims => { email => 'alice@upstream.example.test', name => 'Alice Liddell',
                           groups => ['runai-users', 'ml-team'] } },
    eve   => { password => random_secret('pw-eve-', 'upstream password of eve'),
               claims => { email => 'eve@upstream.example.test', name => 'Eve', groups => ['visitors'] } },
);

# --- the upstream IdP -----------------------------------------------------------
# Its stdin stays open while this test runs: when the test ends, however it
# ends, the pipe closes and the IdP exits.
my %idp;
{
    my $log = "$dir/idp.log";
    pipe(my $in_r, my $in_w) or die "pipe: $!";
    pipe(my $out_r, my $out_w) or die "pipe: $!";
    my $pid = fork // die "fork: $!";
    unless ($pid) {
        close $in_w;
        close $out_r;
        open(STDIN, '<&', $in_r) && open(STDOUT, '>&', $out_w) && open(STDERR, '>>', $log)
            && exec 'node', catfile($node_dir, 'upstream_idp.mjs'), $idp_port;
        print STDERR "cannot run node: $!\n";
        POSIX::_exit(127);
    }
    close $in_r;
    close $out_w;
    $in_w->autoflush(1);
    print $in_w $JSON->encode({
        client => { id => 'runai-sso', secret => $client_secret, redirect_uri => $rp_redirect },
        accounts => \%account,
    }), "\n";
    my $sel = IO::Select->new($out_r);
    my $line = '';
    my $deadline = Time::HiRes::time() + 30;
    while ($line !~ /\n/ && Time::HiRes::time() < $deadline) {
        next unless $sel->can_read(0.2);
        last unless sysread $out_r, $line, 4096, length $line;
    }
    my $ready = eval { $JSON->decode((split /\n/, $line)[0] // '') } || {};
    %idp = (pid => $pid, stdin => $in_w, stdout => $out_r, log => $log, ready => $ready);
    $ready->{ready} or give_up("the upstream IdP did not start:\n" . log_tail($log));
    pass('the upstream IdP is ready');
    is($ready->{issuer}, "http://127.0.0.1:$idp_port", 'the upstream issuer is on loopback');
    my $v = $ready->{versions} || {};
    diag("upstream: oidc-provider $v->{'oidc-provider'} (jose $v->{jose}) on node $v->{node}");
    my $pins = eval { $JSON->decode(slurp(catfile($node_dir, 'package.json'))) } || {};
    is($v->{'oidc-provider'}, $pins->{dependencies}{'oidc-provider'},
       'oidc-provider is the version pinned in t/node/package.json');
}
END {
    if ($idp{pid}) {
        close $idp{stdin};
        reap(10, $idp{pid});
    }
}
my $up = "http://127.0.0.1:$idp_port";

# --- the module's httpd, with mod_auth_openidc in front of authorize ------------
my $site = <<"EOF";
RunaiTokenIssuer $issuer
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
RunaiTokenClient runai-ui public pkce $cb

OIDCProviderMetadataURL $up/.well-known/openid-configuration
OIDCClientID runai-sso
OIDCClientSecret $client_secret
OIDCRedirectURI $rp_redirect
OIDCCryptoPassphrase $passphrase
OIDCScope "openid email profile groups"
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCPassClaimsAs environment
OIDCSessionType server-cache

<Location />
    SetHandler runai-token
</Location>
<Location /api/v1/authorize>
    AuthType openid-connect
    Require claim groups:runai-users
    RunaiTokenExternalTokenVar OIDC_access_token
    RunaiTokenClaim email  "%{env:OIDC_CLAIM_email}"
    RunaiTokenClaim name   "%{env:OIDC_CLAIM_name}"
    RunaiTokenClaim groups "%{env:OIDC_CLAIM_groups}" list
    RunaiTokenClaim idp    "%{env:OIDC_CLAIM_iss}"
</Location>
EOF
my $h = start_httpd(name => 'sso', port => $port, site => $site,
                    global => "LoadModule auth_openidc_module $OIDC_SO\n");

# --- a client without a browser -------------------------------------------------

# A browser's Accept header: without one, mod_auth_openidc takes the request
# for one that cannot complete a login (an XHR) and answers 401.
sub agent {
    my $ua = LWP::UserAgent->new(max_redirect => 0, timeout => 15, agent => 'runai-sso-test/1',
                                 cookie_jar => HTTP::Cookies->new);
    $ua->default_header(Accept => 'text/html,application/xhtml+xml,*/*;q=0.8');
    return $ua;
}

# follow(UA, REQUEST): sends it and follows every redirect on loopback; stops
# at an answer that is not a redirect, or at one that leaves loopback (the
# downstream client's redirect URI, where nothing listens). Returns the last
# answer and the hops: {method, url, status, location}.
sub follow {
    my($ua, $req) = @_;
    my @hops;
    for (1 .. 20) {
        my $res = $ua->request($req);
        my $loc = $res->header('Location');
        push @hops, { method => $req->method, url => $req->uri->as_string, status => $res->code,
                      location => $loc };
        my $next = defined $loc ? URI->new_abs($loc, $req->uri) : undef;
        return ($res, \@hops) unless $res->is_redirect && $next && $next->can('host') && $next->host eq '127.0.0.1';
        $req = HTTP::Request->new(GET => $next);
    }
    die "more than 20 redirects:\n" . join '', map { "  $_->{status} $_->{url}\n" } @hops;
}

# login(UA, URL, USER, PASSWORD): GET URL and follow; where the upstream's
# login form comes, post USER and PASSWORD to its action and follow again.
# Returns the last answer, the hops, and whether the form was shown.
sub login {
    my($ua, $url, $user, $password) = @_;
    my($res, $hops) = follow($ua, HTTP::Request->new(GET => $url));
    my @hops = @$hops;
    my $form = 0;
    if ($res->code == 200 && $res->content =~ m{<form method="post" action="(/interaction/[A-Za-z0-9_-]+/login)"}) {
        $form = 1;
        my $action = URI->new_abs($1, $hops[-1]{url});
        ($res, $hops) = follow($ua, POST($action, [login => $user, password => $password]));
        push @hops, @$hops;
    }
    return ($res, \@hops, $form);
}

sub authorize_url {
    my(%q) = @_;
    my $u = URI->new("http://127.0.0.1:$port/api/v1/authorize");
    $u->query_form(client_id => 'runai-ui', redirect_uri => $cb, response_type => 'code',
                   code_challenge_method => 'S256', %q);
    return $u->as_string;
}

sub query_of { my $u = URI->new(shift // ''); return { $u->query_form } }
sub claims_of { my(undef, $c) = jwt_parts(shift); return $c || {} }
sub hops_text { my $hops = shift; return join '', map { "  $_->{method} $_->{url} -> $_->{status} " . ($_->{location} // '') . "\n" } @$hops }

my $discovery = eval { $JSON->decode(agent()->get("$up/.well-known/openid-configuration")->content) } || {};
ok($discovery->{userinfo_endpoint}, "the upstream's discovery names its UserInfo endpoint");

# --- alice: the whole trip ------------------------------------------------------
my $ua = agent();
my($verifier, $challenge) = pkce_pair();
my $state = 'st-' . int(rand(1e9));
my $nonce = 'n-' . int(rand(1e9));
my $start = Time::HiRes::time();
my($res, $hops, $form) = login($ua, authorize_url(state => $state, nonce => $nonce, code_challenge => $challenge),
                               'alice', $account{alice}{password});
diag(sprintf 'the login took %d redirects, %.2f s', scalar(@$hops), Time::HiRes::time() - $start);

my $first = $hops->[0] || {};
is($first->{status}, 302, 'authorize without a session: 302');
like($first->{location} // '', qr{^\Q$up\E/}, '... to the upstream IdP');
my $aq = query_of($first->{location});
is($aq->{client_id}, 'runai-sso', '... as the mod_auth_openidc client');
is($aq->{redirect_uri}, $rp_redirect, "... with mod_auth_openidc's redirect URI");
is($aq->{code_challenge_method}, 'S256', '... with PKCE S256');
is_deeply([sort split / /, $aq->{scope} // ''], [qw(email groups openid profile)], '... for the scopes of OIDCScope');
ok($form, "the upstream's login form was shown");
my($callback) = grep { $_->{url} =~ /^\Q$rp_redirect\E\?/ } @$hops;
ok($callback, "the upstream sent the browser back to mod_auth_openidc's redirect URI") or diag(hops_text($hops));
ok(query_of($callback->{url})->{code}, '... with an upstream code') if $callback;
like($callback->{location} // '', qr{^http://127\.0\.0\.1:$port/api/v1/authorize\?}, '... which redirects to the authorize URL')
    if $callback;
is($res->code, 302, 'the authorize endpoint answers 302 at the end')
    or diag(hops_text($hops), $res->content, "upstream IdP's log:\n", log_tail($idp{log}));
like($res->header('Location') // '', qr{^\Q$cb\E\?code=}, "... to the downstream client's redirect URI with a code");
is(query_of($res->header('Location'))->{state}, $state, '... and its state');
my $code = code_of($res);
ok($code, 'a code for the upstream login');

my $ex = exchange_call($port, $code, $cb, codeVerifier => $verifier, clientID => 'runai-ui');
is($ex->code, 200, 'exchange_token with the code: 200') or diag($ex->content);
my $t = tokens_ok($ex, 'exchange_token after SSO', more => ['externalToken']);
my $access = claims_of($t->{accessToken});
my $id = claims_of($t->{idToken});
my($verified, $err) = verify_crypt_jwt($t->{accessToken} // '', 'ec256', 'ES256', iss => $issuer);
ok($verified, 'the access token verifies with the module key') or diag($err);
for my $c ([access => $access], [id => $id]) {
    my($what, $claims) = @$c;
    is($claims->{sub}, 'alice', "$what token: sub is the upstream user (OIDCRemoteUserClaim preferred_username)");
    is($claims->{preferred_username}, 'alice', "$what token: preferred_username");
    is($claims->{email}, $account{alice}{claims}{email}, "$what token: email from OIDC_CLAIM_email");
    is($claims->{name}, 'Alice Liddell', "$what token: name from OIDC_CLAIM_name");
    is_deeply($claims->{groups}, ['runai-users', 'ml-team'], "$what token: groups, a list from OIDC_CLAIM_groups");
    is($claims->{idp}, $up, "$what token: idp is the upstream id token's iss (OIDC_CLAIM_iss)");
    is($claims->{iss}, $issuer, "$what token: iss is the module's");
}
is($id->{aud}, 'runai-ui', 'id token aud is the downstream client');
is($id->{nonce}, $nonce, 'id token carries the downstream nonce');

# externalToken: the upstream's access token, good at the upstream's UserInfo
my $ext = $t->{externalToken} // '';
cmp_ok(length $ext, '>=', 20, 'externalToken is there');
isnt($ext, $t->{accessToken}, "externalToken is not the module's access token");
my $ui = agent()->get($discovery->{userinfo_endpoint} // "$up/me", Authorization => "Bearer $ext");
is($ui->code, 200, "the upstream's UserInfo accepts externalToken") or diag($ui->content);
my $uc = eval { $JSON->decode($ui->content) } || {};
is($uc->{sub}, 'alice', "... as alice's token");
is($uc->{email}, $account{alice}{claims}{email}, '... with her email');
my $bad = agent()->get($discovery->{userinfo_endpoint} // "$up/me", Authorization => 'Bearer x' . $ext);
is($bad->code, 401, "the upstream's UserInfo refuses a token it did not issue (the check can fail)");

# The same browser again: mod_auth_openidc's session, no upstream trip.
($verifier, $challenge) = pkce_pair();
($res, $hops, $form) = login($ua, authorize_url(state => 'again', code_challenge => $challenge), 'alice', 'unused');
is(scalar @$hops, 1, 'a second authorize in the mod_auth_openidc session: one request') or diag(hops_text($hops));
ok(!$form, '... no login form');
$code = code_of($res);
ok($code, '... and a code');
$ex = exchange_call($port, $code // '', $cb, codeVerifier => $verifier);
is($ex->code, 200, '... that exchange_token redeems') or diag($ex->content);
my $t2 = reply_of($ex) || {};
is(claims_of($t2->{accessToken})->{sub}, 'alice', '... for alice');
is($t2->{externalToken}, $ext, '... with the same upstream access token');

# --- refusals: no code ----------------------------------------------------------
for my $case (['alice', 'wrong-' . $account{alice}{password}, 'a wrong upstream password'],
              ['mallory', 'whatever-password-1', 'an account the upstream does not know']) {
    my($user, $password, $what) = @$case;
    my $ua2 = agent();
    ($verifier, $challenge) = pkce_pair();
    my($r, $hh, $f) = login($ua2, authorize_url(state => 'no', code_challenge => $challenge), $user, $password);
    ok($f, "$what: the upstream's login form was shown");
    my($cbk) = grep { $_->{url} =~ /^\Q$rp_redirect\E\?/ } @$hh;
    is(query_of($cbk && $cbk->{url})->{error}, 'access_denied',
       "$what: the upstream answers error=access_denied to mod_auth_openidc") or diag(hops_text($hh));
    ok(!(grep { ($_->{location} // '') =~ /^\Q$cb\E/ } @$hh), "$what: no redirect to the downstream client");
    # mod_auth_openidc's error page (the client sees 200, the access log
    # 500). mod_auth_openidc 2.4.12.3 takes an error response that carries
    # iss (RFC 9207, which oidc-provider sends) for a discovery response, so
    # the page says "Invalid Request", not access_denied.
    ok(!$r->is_redirect, "$what: the last answer is no redirect (" . $r->code . ')');
    like($r->content, qr{<title>Error</title>}, "$what: it is mod_auth_openidc's error page") or diag($r->content);
    ok(!(grep { $_->{url} =~ m{/api/v1/authorize\?} && $_->{method} eq 'GET' } @$hh[1 .. $#$hh]),
       "$what: mod_auth_openidc does not go back to the authorize URL");
}

# A request that is no browser's (no Accept: text/html): 401, no trip.
{
    my $r = http_request(port => $port, method => 'GET',
                         path => URI->new(authorize_url(state => 'xhr', code_challenge => (pkce_pair())[1]))->path_query);
    is($r->code, 401, 'authorize without a session, from a client that is no browser: 401') or diag($r->content);
    ok(!defined $r->header('Location'), '... without a redirect');
}

# eve: the upstream logs her in, `Require claim groups:runai-users` does not admit her
{
    my $ua2 = agent();
    ($verifier, $challenge) = pkce_pair();
    my($r, $hh, $f) = login($ua2, authorize_url(state => 'eve', code_challenge => $challenge), 'eve', $account{eve}{password});
    my($cbk) = grep { $_->{url} =~ /^\Q$rp_redirect\E\?/ } @$hh;
    ok($cbk && query_of($cbk->{url})->{code}, 'eve: the upstream login succeeds') or diag(hops_text($hh));
    ok(!(grep { ($_->{location} // '') =~ /^\Q$cb\E/ } @$hh), 'eve: no redirect to the downstream client');
    ok($r->code == 401 || $r->code == 403, 'eve: Require claim groups:runai-users refuses her (' . $r->code . ')')
        or diag(hops_text($hh), $r->content);
    ok(!code_of($r), 'eve: no code');
}

my $elapsed = Time::HiRes::time() - $start;
cmp_ok($elapsed, '<', 60, sprintf('the SSO trips took %.1f s', $elapsed));

stop_httpd($h);
like(slurp($h->{access_log}) // '', qr{"GET /api/v1/authorize/redirect_uri\?error=access_denied&},
     "the access log shows the upstream's access_denied at mod_auth_openidc's redirect URI");
assert_logs_clean('sso', $h->{error_log}, $h->{access_log});
done_testing();

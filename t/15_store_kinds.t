# Stores beyond the default, redis and memcached: without any socache
# module loaded and without RunaiTokenCache, the default store (the
# module's own runai-shm) serves sessions and codes; mod_socache_dbm must
# serve sessions, with a spent token or code answered 401 (dbm reports a
# missing key as an error, not "not found").
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $cb = 'https://app.example.test/callback';

# --- no socache module loaded: the default store is the module's own ---
{
    my $h = start_httpd(name => 'nosocache', no_socache => 1, site => RunaiHosts::session_site());
    my $p = $h->{port};
    my $app = (sort keys %{ $s->{apps} })[0];
    my $res = token_call($p, { appID => $app, appSecret => $s->{apps}{$app} });
    is($res->code, 200, 'no socache module: app_token works') or diag($res->content);
    reply_of($res);
    $res = password_login($p, 'bob', $s->{users}{bob});
    is($res->code, 200, 'no socache module: password grant') or diag($res->content);
    $res = refresh_call($p, (reply_of($res) || {})->{refreshToken} // 'none');
    is($res->code, 200, 'no socache module: refresh_token grant') or diag($res->content);
    reply_of($res);
    my $code = code_of(authorize_call($p, 'alice', $s->{users}{alice},
                                      { client_id => 'webapp', redirect_uri => $cb }));
    $res = exchange_call($p, $code // 'none', $cb);
    is($res->code, 200, 'no socache module: a code is minted and redeemed') or diag($res->content);
    reply_of($res);
    is(exchange_call($p, $code // 'none', $cb)->code, 401, 'no socache module: the code once only');
    unlike(RunaiHosts::slurp($h->{error_log}) // '', qr/exit signal|Segmentation/,
           'no socache module: no child died');
    RunaiHosts::assert_logs_clean('no socache module', $h->{error_log}, $h->{access_log});
    stop_httpd($h);
}

# --- dbm ---
{
    my $h = start_httpd(name => 'dbm', site => RunaiHosts::session_site(),
                        cache => 'dbm:' . catfile(RunaiHosts::t_dir(), 'logs', 'runai-dbm-' . $$));
    my $p = $h->{port};
    my $res = password_login($p, 'alice', $s->{users}{alice});
    is($res->code, 200, 'dbm: password grant') or diag($res->content);
    my $rt = (reply_of($res) || {})->{refreshToken} // 'none';
    $res = refresh_call($p, $rt);
    is($res->code, 200, 'dbm: refresh') or diag($res->content);
    my $rt2 = (reply_of($res) || {})->{refreshToken} // 'none';
    isnt($rt2, $rt, 'dbm: the refresh token rotated');
    $res = refresh_call($p, $rt);
    is((reply_of($res) || {})->{refreshToken} // $res->code, $rt2,
       'dbm: the rotated token again within the retry window: the same successor');
    check_error(refresh_call($p, 'z' x 43), 401, qr/^invalid refresh token$/,
                'dbm: a token never issued is 401, not 503');
    is(refresh_call($p, $rt2)->code, 200, 'dbm: the newest token still works');

    $res = authorize_call($p, 'alice', $s->{users}{alice}, { client_id => 'webapp', redirect_uri => $cb });
    is($res->code, 302, 'dbm: authorize') or diag($res->content);
    my $code = code_of($res) // 'none';
    $res = exchange_call($p, $code, $cb);
    is($res->code, 200, 'dbm: exchange') or diag($res->content);
    reply_of($res);
    check_error(exchange_call($p, $code, $cb), 401, qr/^invalid or expired code$/,
                'dbm: the spent code is 401, not 503');
    RunaiHosts::assert_logs_clean('dbm', $h->{error_log}, $h->{access_log});
    stop_httpd($h);
}

done_testing();

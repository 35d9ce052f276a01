# Stores beyond shmcb, redis and memcached: no store at all (the module is
# loaded without mod_socache_shmcb and without RunaiTokenCache) must start
# and keep app_token working while every grant that needs a store answers
# 503; mod_socache_dbm must serve sessions, with a spent token or code
# answered 401 (dbm reports a missing key as an error, not "not found").
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

# --- no store ---
{
    my $h = start_httpd(name => 'nostore', no_socache => 1, site => RunaiHosts::session_site());
    my $p = $h->{port};
    like(RunaiHosts::slurp($h->{error_log}) // '', qr/there is no session store/,
         'no store: the start-up warning says so');
    my $app = (sort keys %{ $s->{apps} })[0];
    my $res = token_call($p, { appID => $app, appSecret => $s->{apps}{$app} });
    is($res->code, 200, 'no store: app_token still works') or diag($res->content);
    reply_of($res);
    $res = password_login($p, 'alice', $s->{users}{alice});
    check_error($res, 503, qr/^session store unavailable$/, 'no store: password grant');
    check_error(refresh_call($p, 'x' x 43), 503, qr/^session store unavailable$/,
                'no store: refresh_token grant');
    check_error(exchange_call($p, 'y' x 43, $cb), 503, qr/^session store unavailable$/,
                'no store: exchange_token grant');
    check_error(authorize_call($p, 'alice', $s->{users}{alice},
                               { client_id => 'webapp', redirect_uri => $cb }),
                503, qr/^session store unavailable$/, 'no store: authorize');
    ok(RunaiHosts::httpd_running($h), 'no store: httpd still runs');
    unlike(RunaiHosts::slurp($h->{error_log}) // '', qr/exit signal|Segmentation/,
           'no store: no child died');
    RunaiHosts::assert_logs_clean('no store', $h->{error_log}, $h->{access_log});
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

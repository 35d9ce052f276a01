# Throttling (issue 3, deliverable 6) on the Apache::Test server:
# RunaiTokenThrottle ATTEMPTS SECONDS counts wrong credentials per principal
# and source address (ATTEMPTS), per principal (a ceiling of 10 x ATTEMPTS
# that spares the addresses that have not failed) and per remote address
# (10 x ATTEMPTS); over the limit 429 with Retry-After, also for the right
# password, and a warn line fail2ban can match; the same principal from an
# address that has not failed is let in (issue 11, item 5: t/18 has the
# rest of that policy); the window ending lets the user in; a success
# resets the count; app secrets count too; "off" counts nothing.
# Every request here comes from its own 127.0.x.y source address, so the
# per-address counters of the rest of the suite (127.0.0.1) are untouched;
# principals are cleared first with a success on the sess host.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $thr = vhost_port('throttle');          # 3 failures in 30 s
my $short = vhost_port('throttleshort');   # 3 failures in 3 s
my $off = vhost_port('throttleoff');
my $sess = vhost_port('sess');             # 1000 in 60 s: its successes clear counts
my $error_log = catfile(Apache::Test::vars('t_logs'), 'error_log');
my $net = 1 + $$ % 250;
sub addr { "127.0.$net.$_[0]" }
my $wrong = $s->{wrong};
my $tag = "$$-" . time;

sub login {
    my($port, $user, $pw, $n) = @_;
    my $res = password_login($port, $user, $pw, local_addr => addr($n));
    reply_of($res);
    return $res;
}

sub app {
    my($port, $id, $secret, $n) = @_;
    my $res = token_call($port, { appID => $id, appSecret => $secret }, local_addr => addr($n));
    reply_of($res);
    return $res;
}

# A success on sess (limit 1000) clears whatever count other tests left.
sub clear {
    my $who = shift;
    my $res = $who =~ /^app-/ ? app($sess, $who, $s->{apps}{$who}, 250)
                              : login($sess, $who, $s->{users}{$who}, 250);
    is($res->code, 200, "${who}'s count cleared by a success on the sess host") or diag($res->content);
}

sub throttled {
    my($res, $name, $max) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    check_error($res, 429, qr/^too many failed attempts$/, $name);
    is($res->content, '{"code":429,"message":"too many failed attempts"}', "$name: the Error body");
    my $ra = $res->header('Retry-After') // '';
    ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= $max, "$name: Retry-After is 1..$max seconds (got '$ra')");
    return $ra;
}

sub warned {
    my($ip, $who) = @_;
    my $re = qr/\[runai_token:warn\] .*throttled: too many failed attempts from \Q$ip\E for principal \Q$who\E; retry after \d+ s/;
    return wait_until(5, 0.1, sub { (slurp($error_log) // '') =~ $re });
}

# --- per principal: ATTEMPTS failures, then 429 even for the right password -------------
{
    clear('carol');
    for my $i (1 .. 3) {
        check_error(login($thr, 'carol', $wrong, 1), 401, qr/^invalid credentials$/, "carol wrong password $i");
    }
    throttled(login($thr, 'carol', $wrong, 1), 'carol, 4th wrong password', 30);
    my $ra = throttled(login($thr, 'carol', $s->{users}{carol}, 1), 'carol, right password while throttled', 30);
    cmp_ok($ra, '>=', 25, 'Retry-After counts down from the 30 s window');
    is(login($thr, 'carol', $s->{users}{carol}, 2)->code, 200,
       'carol from another address, which has not failed: the right password is granted');
    is(login($thr, 'alice', $s->{users}{alice}, 1)->code, 200,
       'another principal from the same address is not throttled (3 < 30 failures)');
    ok(warned(addr(1), 'carol'), 'error_log: "throttled: too many failed attempts from <ip> for principal carol; retry after <n> s"');
    clear('carol');
}

# --- the window ends (throttleshort: 3 s) -------------------------------------------------
{
    clear('alice');
    check_error(login($short, 'alice', $wrong, 3), 401, undef, "alice wrong password $_") for 1 .. 3;
    my $ra = throttled(login($short, 'alice', $s->{users}{alice}, 3), 'alice on throttleshort', 3);
    sleep(($ra =~ /^\d+$/ && $ra <= 3 ? $ra : 3) + 0.3);
    my $res = login($short, 'alice', $s->{users}{alice}, 3);
    is($res->code, 200, 'after Retry-After seconds the window has ended: the right password is granted')
        or diag($res->content);
}

# --- a success resets the principal's count ---------------------------------------------------
{
    clear('bob');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 1');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 2');
    is(login($thr, 'bob', $s->{users}{bob}, 4)->code, 200, 'bob: right (resets the count)');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 1 after the reset');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 2 after the reset');
    is(login($thr, 'bob', $s->{users}{bob}, 4)->code, 200,
       'bob: right again (without the reset this would be the 5th failure in the window: 429)');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 1');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 2');
    is(login($thr, 'bob', $wrong, 4)->code, 401, 'bob: wrong 3');
    throttled(login($thr, 'bob', $s->{users}{bob}, 4), 'bob: right after 3 failures in a row', 30);
    clear('bob');
}

# --- per remote address: 10 x ATTEMPTS failures across principals -------------------------------
{
    my @codes = map { login($thr, "ghost-$tag-$_", $wrong, 5)->code } 1 .. 30;
    is(scalar(grep { $_ == 401 } @codes), 30, '30 wrong passwords for 30 different unknown users: all 401')
        or diag("@codes");
    throttled(login($thr, "ghost-$tag-31", $wrong, 5), 'the 31st failure from that address', 30);
    throttled(login($thr, 'bob', $s->{users}{bob}, 5), 'bob with the right password from that address', 30);
    ok(warned(addr(5), 'bob'), 'error_log: the address throttle line names the address and bob');
    is(login($thr, 'bob', $s->{users}{bob}, 6)->code, 200, 'bob from another address is granted');
}

# --- app secrets count too --------------------------------------------------------------------------
{
    clear('app-md5');
    for my $i (1 .. 3) {
        check_error(app($thr, 'app-md5', $wrong, 7), 401, qr/^invalid credentials$/, "app-md5 wrong secret $i");
    }
    throttled(app($thr, 'app-md5', $s->{apps}{'app-md5'}, 7), 'app-md5 with the right secret after 3 wrong ones', 30);
    my $res = post_json_to($thr, '/v1/k8s/auth/oauth/apptoken',
                           { id => 'app-md5', name => 'x', secret => $s->{apps}{'app-md5'} }, local_addr => addr(7));
    throttled($res, 'app-md5 on the legacy apptoken route, from the same address', 30);
    ok(warned(addr(7), 'app-md5'), 'error_log: the throttle line for the app');
    is(app($thr, 'app-md5', $s->{apps}{'app-md5'}, 8)->code, 200,
       'app-md5 from another address, which has not failed: granted');
    clear('app-md5');
}

# --- a secret the app cache holds as verified is refused all the same -------------------------
{
    is(app($thr, 'app-bcrypt', $s->{apps}{'app-bcrypt'}, 9)->code, 200,
       'app-bcrypt: the right secret, now in the app cache of this host');
    for my $i (1 .. 3) {
        check_error(app($thr, 'app-bcrypt', $wrong, 9), 401, qr/^invalid credentials$/,
                    "app-bcrypt wrong secret $i");
    }
    throttled(app($thr, 'app-bcrypt', $s->{apps}{'app-bcrypt'}, 9),
              'app-bcrypt: the cached right secret after 3 wrong ones, same address', 30);
    is(app($thr, 'app-bcrypt', $s->{apps}{'app-bcrypt'}, 10)->code, 200,
       'app-bcrypt: the cached right secret from another address: granted');
    clear('app-bcrypt');
}

# --- RunaiTokenThrottle off ---------------------------------------------------------------------------
{
    clear('bob');
    my @codes = map { login($off, 'bob', $wrong, 9)->code } 1 .. 12;
    is(scalar(grep { $_ == 401 } @codes), 12, 'throttle off: 12 wrong passwords, all 401') or diag("@codes");
    is(login($off, 'bob', $s->{users}{bob}, 9)->code, 200, 'throttle off: the right password is granted');
}

assert_logs_clean('14_throttle', $error_log);
done_testing();

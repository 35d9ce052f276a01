# RunaiTokenRefreshRequire: a refresh asks Apache's authz providers whether
# the user is still admitted, as a Require line would ask them for a user
# Apache just authenticated. Here mod_authz_groupfile's group file (which
# it reads at every check) and mod_authz_user's list decide: a user
# removed from the group stops refreshing at once; re-added, the same
# token works again (a refusal changes nothing in the store). mod_authz_dbd
# asks an SQL table: a provider that cannot decide (no database yet) answers
# 503 and keeps the session; a row deleted refuses the user.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use RunaiTest;
use RunaiHosts;

my $s = load_secrets();
my $port = vhost_port('recheck');
my $users = vhost_port('recheck-users');
my $dbd = vhost_port('recheck-dbd');
my $logs = Apache::Test::vars('t_logs');
my $error_log = catfile($logs, 'error_log');
my $access_log = catfile($logs, 'access_log');
my $groups = catfile($logs, 'recheck.groups');

sub write_groups {
    my $text = shift;
    open my $fh, '>', "$groups.new" or die "$groups.new: $!";
    print $fh $text;
    close $fh or die "$groups.new: $!";
    rename "$groups.new", $groups or die "$groups: $!";
}

sub login {
    my($p, $user) = @_;
    return tokens_ok(password_login($p, $user, $s->{users}{$user}), "$user logs in on $p")->{refreshToken};
}

# Refreshes and returns the next token, or undef after checking the error.
sub refresh_ok {
    my($p, $token, $name) = @_;
    my $res = refresh_call($p, $token);
    return tokens_ok($res, $name)->{refreshToken};
}

sub refresh_refused {
    my($p, $token, $status, $name) = @_;
    my $res = refresh_call($p, $token);
    reply_of($res);
    check_error($res, $status, $status == 401 ? qr/^invalid refresh token$/ : qr/unavailable/, $name);
}

sub log_has {
    my $re = shift;
    return wait_until(5, 0.05, sub { (slurp($error_log) // '') =~ $re });
}

write_groups("runai-users: alice bob carol\n");

# --- the group decides -------------------------------------------------------
my $alice = login($port, 'alice');
my $bob = login($port, 'bob');
$alice = refresh_ok($port, $alice, 'alice, in the group, refreshes');
$bob = refresh_ok($port, $bob, 'bob, in the group, refreshes');

write_groups("runai-users: alice carol\n");
refresh_refused($port, $bob, 401, 'bob, removed from the group: refused');
ok(log_has(qr/user 'bob' no longer passes RunaiTokenRefreshRequire group: refresh refused/),
   'the error log says why, naming the provider')
    or diag(log_tail($error_log));
ok(log_has(qr/grant=refresh_token principal=bob \S+ remote=\S+ outcome=user_refused/),
   'the request line says user_refused');
$alice = refresh_ok($port, $alice, 'alice, still in the group, refreshes');
refresh_refused($port, $bob, 401, 'bob, asked again: still refused');

write_groups("runai-users: alice bob carol\n");
$bob = refresh_ok($port, $bob, 'bob, back in the group: the same token refreshes (nothing was changed)');

# --- a provider that decides no when its file is gone ------------------------
unlink $groups or die "$groups: $!";
refresh_refused($port, $alice, 401, 'the group file gone: mod_authz_groupfile says no');
write_groups("runai-users: alice bob carol\n");
$alice = refresh_ok($port, $alice, 'the file back: the same token refreshes');

# --- two lines: both must pass -----------------------------------------------
{
    my $a2 = login($users, 'alice');
    my $b2 = login($users, 'bob');
    my $c2 = login($users, 'carol');
    $a2 = refresh_ok($users, $a2, 'two lines: alice in the list and the group');
    refresh_refused($users, $b2, 401, 'two lines: bob is not in the user list');
    write_groups("runai-users: alice bob\n");
    refresh_refused($users, $c2, 401, 'two lines: carol in the list, not in the group');
    write_groups("runai-users: alice bob carol\n");
    $c2 = refresh_ok($users, $c2, 'two lines: carol back in the group');
}

# --- SQL (mod_authz_dbd): a provider that cannot decide, then decides -------
{
    my $db = catfile($logs, 'recheck.db');
    unlink $db;    # a database of an earlier run
    my $sql = sub {
        my $out = `sqlite3 '$db' "$_[0]" 2>&1`;
        $? == 0 or die "sqlite3: $out";
    };
    my $a3 = login($dbd, 'alice');
    my $c3 = login($dbd, 'carol');
    refresh_refused($dbd, $a3, 503, 'dbd: no database yet, the provider cannot decide: 503');
    ok(log_has(qr/RunaiTokenRefreshRequire dbd-group could not decide for 'alice': refresh refused, session kept/),
       'dbd: the error log says the provider could not decide')
        or diag(log_tail($error_log));
    ok(log_has(qr/principal=alice \S+ remote=\S+ outcome=directory_unavailable/),
       'dbd: the request line says directory_unavailable');
    $sql->("CREATE TABLE groups (user TEXT, grp TEXT); "
         . "INSERT INTO groups VALUES ('alice', 'runai-users'), ('carol', 'runai-users');");
    $a3 = refresh_ok($dbd, $a3, 'dbd: the database exists, alice in the group: the same token refreshes');
    $c3 = refresh_ok($dbd, $c3, 'dbd: carol in the group refreshes');
    $sql->("DELETE FROM groups WHERE user = 'carol';");
    refresh_refused($dbd, $c3, 401, 'dbd: carol removed from the table: refused');
    $a3 = refresh_ok($dbd, $a3, 'dbd: alice still refreshes');
}

# --- a password login is not a refresh: not asked ----------------------------
write_groups("runai-users: alice\n");
login($port, 'carol');
write_groups("runai-users: alice bob carol\n");

assert_logs_clean('37_refresh_require', $error_log, $access_log);
done_testing();

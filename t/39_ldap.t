# LDAP against a real directory: a private slapd (t/lib/RunaiLdap.pm) and
# an httpd of its own whose token location authenticates with
# mod_authnz_ldap (RunaiTokenPasswordProvider ldap + AuthLDAPURL) and whose
# authorize location uses AuthType Basic + AuthBasicProvider ldap.
#   - the password grant through LDAP; claims from the attributes of
#     AuthLDAPURL (AUTHENTICATE_*): mail, displayName, uidNumber, and the
#     multi-valued departmentNumber as a JSON array of its values;
#   - the authorize endpoint minting a code whose tokens carry the same claims;
#   - a wrong password and an unknown user answered alike; a disabled
#     account (employeeType: disabled, excluded by the URL's filter) refused;
#   - RunaiTokenRefreshRequire ldap-filter: an account disabled with
#     ldapmodify stops refreshing, enabled again refreshes with the same token;
#   - slapd stopped: the password grant answers 503 with Retry-After (not
#     500), app_token (an htpasswd provider) still works, a refresh is
#     refused and its session kept; slapd started again: logins and the
#     kept refresh token work without touching httpd.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use RunaiTest;
use RunaiHosts;
use RunaiLdap;

my $MODULES = '/usr/lib/apache2/modules';
-f "$MODULES/$_" or BAIL_OUT("$MODULES/$_ not found") for qw(mod_ldap.so mod_authnz_ldap.so);

my $s = load_secrets();
my $ldap = start_ldap();
my %pw = %{ $ldap->{passwords} };
my $callback = 'https://app.example.test/callback';

# The user's entry: under ou=people, enabled, with these attributes as
# AUTHENTICATE_UID, AUTHENTICATE_MAIL, ...
my $filter = '(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))';
my $url = ldap_url($ldap, "$ldap->{base}?uid,mail,displayName,departmentNumber,uidNumber?one?$filter");

my $site = <<"EOF";
# every search and bind reaches the directory (see docs/operations.md#ldap)
LDAPCacheEntries 0
LDAPOpCacheEntries 0
LDAPConnectionTimeout 2
LDAPTimeout 5
RunaiTokenIssuer https://ldap.example.test
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
RunaiTokenClient webapp $callback
<Location />
    SetHandler runai-token
    AuthLDAPURL "$url"
    AuthLDAPBindDN "$ldap->{bind_dn}"
    AuthLDAPBindPassword "$ldap->{bind_password}"
    RunaiTokenAppProvider runai-apps
    RunaiTokenPasswordProvider ldap
    RunaiTokenClaim email  "%{env:AUTHENTICATE_MAIL}"
    RunaiTokenClaim name   "%{env:AUTHENTICATE_DISPLAYNAME}"
    RunaiTokenClaim groups "%{env:AUTHENTICATE_DEPARTMENTNUMBER}" list
    RunaiTokenClaim uid    "%{env:AUTHENTICATE_UIDNUMBER}" number
    RunaiTokenRefreshRequire ldap-filter !(employeeType=disabled)
    RunaiTokenThrottle 100 60
</Location>
<Location /api/v1/authorize>
    AuthType Basic
    AuthName "runai ldap"
    AuthBasicProvider ldap
    Require valid-user
</Location>
EOF
my $h = start_httpd(name => 'ldap', site => $site, global => <<"EOF");
LoadModule ldap_module $MODULES/mod_ldap.so
LoadModule authnz_ldap_module $MODULES/mod_authnz_ldap.so
EOF
my $p = $h->{port};

sub claims_of {
    my $token = shift;
    my(undef, $claims) = jwt_parts($token);
    return $claims || {};
}

my %want = (
    ada   => { email => 'ada@runai.test', name => 'Ada Lovelace', uid => 2001,
               groups => ['ml-team', 'research', 'gpu users'] },
    grace => { email => 'grace@runai.test', name => 'Grace Hopper', uid => 2002,
               groups => ['research'] },
    ken   => { email => 'ken@runai.test', name => 'Ken Thompson', uid => 2003,
               groups => ['systems'] },
);

# The claims of the access and id tokens of a reply, against %want.
sub claims_ok {
    my($body, $user, $name) = @_;
    for my $kind (qw(accessToken idToken)) {
        my $c = claims_of($body->{$kind});
        is(json_type($c->{uid}), 'number', "$name: $kind uid is a JSON number");
        is($c->{sub}, $user, "$name: $kind sub");
        is_deeply({ map { ($_ => $c->{$_}) } qw(email name uid groups) }, $want{$user},
                  "$name: $kind carries email, name, uid (a number) and groups (an array) from LDAP")
            or diag(explain($c));
    }
}

sub login_ok {
    my($user, $name) = @_;
    my $body = tokens_ok(password_login($p, $user, $pw{$user}), $name);
    claims_ok($body, $user, $name);
    return $body->{refreshToken};
}

sub refresh_ok {
    my($token, $name) = @_;
    return tokens_ok(refresh_call($p, $token), $name)->{refreshToken};
}

sub log_has {
    my $re = shift;
    return wait_until(5, 0.05, sub { (slurp($h->{error_log}) // '') =~ $re });
}

# --- the password grant through LDAP, claims from the entry ------------------
my $ada = login_ok('ada', 'ada logs in through LDAP');
my $grace = login_ok('grace', 'grace (one departmentNumber) logs in');
my $ken = login_ok('ken', 'ken logs in');

# --- refusals: one answer for a wrong password and an unknown user -----------
{
    my $wrong = password_login($p, 'ada', $s->{wrong});
    my $unknown = password_login($p, 'nobody-in-ldap', $s->{wrong});
    check_error($wrong, 401, qr/^invalid credentials$/, 'ada with a wrong password');
    is($unknown->code, $wrong->code, 'an unknown user: the same status as a wrong password');
    is($unknown->content, $wrong->content, 'an unknown user: the same body as a wrong password');
    my $disabled = password_login($p, 'linus', $pw{linus});
    is($disabled->code, 401, 'linus (employeeType: disabled) with his right password: 401');
    is($disabled->content, $wrong->content, 'linus: the same body as a wrong password');
    my $empty = password_login($p, 'ada', '');
    ok($empty->code == 400 || $empty->code == 401, 'an empty password is refused (' . $empty->code . ')');
}

# --- the authorize endpoint: Basic through LDAP, a code with the claims ------
{
    my $res = authorize_call($p, 'ada', $pw{ada}, { client_id => 'webapp', redirect_uri => $callback });
    my $code = code_of($res);
    ok($code, 'authorize with ada\'s LDAP password: 302 with a code') or diag($res->status_line);
    my $body = tokens_ok(exchange_call($p, $code, $callback),
                         'the code of an LDAP login is redeemed');
    claims_ok($body, 'ada', 'tokens of the code');
    is(authorize_call($p, 'ada', $s->{wrong}, { client_id => 'webapp', redirect_uri => $callback })->code,
       401, 'authorize with a wrong LDAP password: 401');
    is(authorize_call($p, 'linus', $pw{linus}, { client_id => 'webapp', redirect_uri => $callback })->code,
       401, 'authorize as the disabled linus: 401');
}

# --- RunaiTokenRefreshRequire ldap-filter --------------------------------------
$ada = refresh_ok($ada, 'ada, enabled, refreshes');
my $ken_dn = "uid=ken,$ldap->{base}";
ldap_modify($ldap, "dn: $ken_dn\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n");
{
    my $res = refresh_call($p, $ken);
    check_error($res, 401, qr/^invalid refresh token$/, 'ken disabled with ldapmodify: his refresh is refused');
    ok(log_has(qr/user 'ken' no longer passes RunaiTokenRefreshRequire ldap-filter: refresh refused/),
       'the error log names the ldap-filter line') or diag(log_tail($h->{error_log}));
    is(password_login($p, 'ken', $pw{ken})->code, 401, 'ken disabled: his password login is refused too');
}
ldap_modify($ldap, "dn: $ken_dn\nchangetype: modify\ndelete: employeeType\n");
$ken = refresh_ok($ken, 'ken enabled again: the same refresh token refreshes');

# --- the directory down ----------------------------------------------------------
stop_ldap($ldap);
{
    my $res = password_login($p, 'ada', $pw{ada});
    check_error($res, 503, qr/^the user directory is unavailable$/,
                'slapd stopped: the password grant answers 503, not 500');
    is($res->header('Retry-After'), 5, 'slapd stopped: Retry-After 5');
    ok(log_has(qr/grant=password principal=ada \S+ remote=\S+ outcome=directory_unavailable/),
       'the request line says directory_unavailable') or diag(log_tail($h->{error_log}));
    my $app = token_call($p, { appID => 'app-bcrypt', appSecret => $s->{apps}{'app-bcrypt'} });
    is($app->code, 200, 'slapd stopped: app_token (htpasswd) still works') or diag($app->content);
    reply_of($app);
    # mod_authnz_ldap's authz providers answer "denied", never "cannot
    # decide", when the directory does not answer: the refresh is refused
    # (401) and the session kept.
    my $r = refresh_call($p, $ada);
    check_error($r, 401, qr/^invalid refresh token$/,
                'slapd stopped: the refresh is refused (ldap-filter cannot find the entry)');
    my $oauth = http_request(port => $p, method => 'POST', path => '/api/v1/token',
                             type => 'application/x-www-form-urlencoded',
                             body => 'grant_type=password&username=grace&password=' . url_encode($pw{grace}));
    is($oauth->code, 503, 'slapd stopped: the OAuth password grant answers 503');
    like($oauth->content, qr/"error":"temporarily_unavailable"/, 'OAuth: temporarily_unavailable');
    is($oauth->header('Retry-After'), 5, 'OAuth: Retry-After 5');
    # mod_auth_basic's own answer to a provider error
    is(authorize_call($p, 'ada', $pw{ada}, { client_id => 'webapp', redirect_uri => $callback })->code,
       500, 'slapd stopped: authorize (mod_auth_basic) answers 500');
}

start_ldap($ldap);
{
    my $t0 = time;
    my $res = wait_until(20, 0.2, sub {
        my $r = password_login($p, 'grace', $pw{grace});
        return $r->code == 200 ? $r : undef;
    });
    ok($res, 'slapd started again: grace logs in without touching httpd (' . (time - $t0) . ' s)');
    claims_ok(reply_of($res) || {}, 'grace', 'after the outage') if $res;
    $ada = refresh_ok($ada, 'after the outage: ada\'s kept refresh token refreshes');
    login_ok('ada', 'after the outage: ada logs in');
}

stop_httpd($h);
assert_logs_clean('39_ldap', $h->{error_log}, $h->{access_log}, $ldap->{log});
done_testing();

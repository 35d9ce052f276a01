# OIDC discovery and JWKS: both discovery paths with every required field,
# absolute endpoints on the issuer's origin that answer, JWKS members
# (kty/kid/alg/use, public parts only, no HMAC key), RFC 7638 kids, caching
# headers; key rotation inside the suite (two hosts with one issuer and the
# keys swapped) and for real (an httpd of our own, rotated by graceful
# restarts: add the new key, let it sign, drop the old one).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use Crypt::JWT ();
use Digest::SHA qw(sha256);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use LWP::UserAgent ();
use MIME::Base64 qw(encode_base64url decode_base64url);
use POSIX ();
use Time::HiRes qw(sleep time);
use URI ();
use RunaiTest;

my $s = secrets();
my $port = Apache::Test::vars('oidc_port');
my $origin = "http://127.0.0.1:$port";
my $issuer = "$origin/auth/realms/runai";

sub get_json {
    my($url, $vhost, $name) = @_;
    my $res = http(GET => $url, vhost => $vhost);
    is($res->code, 200, "$name: 200") or diag($res->as_string);
    like($res->header('Content-Type') // '', qr{^application/json\b}i, "$name: application/json");
    my $doc = response_json($res);
    ok(ref $doc eq 'HASH', "$name: a JSON object") or diag($res->content);
    return ($doc || {}, $res);
}

sub check_cacheable {
    my($res, $name) = @_;
    my $cc = $res->header('Cache-Control') // '';
    like($cc, qr/(?:^|[\s,])max-age=([1-9]\d*)(?:$|[\s,])/, "$name: Cache-Control has a max-age > 0 ($cc)");
    unlike($cc, qr/no-store|no-cache|private/, "$name: Cache-Control allows caching");
}

sub form_body {
    my @kv = @_;
    my @pairs;
    while (my($k, $v) = splice @kv, 0, 2) {
        my $b = $v;
        utf8::encode($b) if utf8::is_utf8($b);
        $b =~ s/([^A-Za-z0-9._~-])/sprintf('%%%02X', ord $1)/ge;
        push @pairs, "$k=$b";
    }
    return join '&', @pairs;
}

# ---------------------------------------------------------------------------
# Discovery at the issuer's path and at the root: one document.
my($disc, $disc_res) = get_json('/auth/realms/runai/.well-known/openid-configuration', 'oidc',
                                'discovery under the issuer path');
my($root_disc, $root_res) = get_json('/.well-known/openid-configuration', 'oidc', 'discovery at the root');
is($root_res->content, $disc_res->content, 'both discovery paths serve the same document');
check_cacheable($disc_res, 'discovery');

is($disc->{issuer}, $issuer, 'discovery: issuer is RunaiTokenIssuer, byte for byte');
is($disc->{authorization_endpoint}, "$origin/api/v1/authorize", 'discovery: authorization_endpoint');
is($disc->{token_endpoint}, "$issuer/protocol/openid-connect/token", 'discovery: token_endpoint (Keycloak path)');
is($disc->{jwks_uri}, "$issuer/protocol/openid-connect/certs", 'discovery: jwks_uri (Keycloak path)');
is($disc->{device_authorization_endpoint}, "$issuer/protocol/openid-connect/auth/device",
   'discovery: device_authorization_endpoint (Keycloak path)');
for my $field (qw(authorization_endpoint token_endpoint jwks_uri device_authorization_endpoint)) {
    my $u = URI->new($disc->{$field} // '');
    ok($u->scheme && $u->scheme eq 'http' && $u->host eq '127.0.0.1' && $u->port == $port,
       "discovery: $field is absolute, on the issuer's origin");
}
my %set = (
    grant_types_supported => [qw(authorization_code client_credentials password refresh_token
                                 urn:ietf:params:oauth:grant-type:device_code)],
    response_types_supported => ['code'],
    code_challenge_methods_supported => ['S256'],
    token_endpoint_auth_methods_supported => [qw(client_secret_basic client_secret_post none)],
    subject_types_supported => ['public'],
    id_token_signing_alg_values_supported => [qw(ES256 RS256)],
);
for my $field (sort keys %set) {
    is(ref $disc->{$field}, 'ARRAY', "discovery: $field is an array");
    is_deeply([sort @{ $disc->{$field} || [] }], $set{$field}, "discovery: $field");
}
is(ref $disc->{scopes_supported}, 'ARRAY', 'discovery: scopes_supported is an array');
ok((grep { $_ eq 'openid' } @{ $disc->{scopes_supported} || [] }), 'discovery: scopes_supported has openid');
{
    my %claims = map { $_ => 1 } @{ $disc->{claims_supported} || [] };
    my @missing = grep { !$claims{$_} }
        qw(iss sub aud exp iat auth_time nonce preferred_username email groups uid admin x-tenant);
    is("@missing", '', 'discovery: claims_supported has the standard and the configured claims');
}

# The advertised endpoints are live on this server.
{
    my $res = http(GET => $disc->{jwks_uri}, vhost => 'oidc');
    is($res->code, 200, 'jwks_uri answers 200');
    my $root = http(GET => '/.well-known/jwks.json', vhost => 'oidc');
    is($res->content, $root->content, 'jwks_uri and /.well-known/jwks.json serve the same document');

    $res = http(POST => $disc->{token_endpoint}, vhost => 'oidc',
        type => 'application/x-www-form-urlencoded',
        body => form_body(grant_type => 'password', client_id => 'runai-cli',
                          username => 'bob', password => $s->{users}{bob}));
    is($res->code, 200, 'token_endpoint grants a password form request') or diag($res->content);
    record_token($_) for values %{ response_json($res) || {} };

    $res = http(GET => $disc->{authorization_endpoint} . '?client_id=runai-web', vhost => 'oidc');
    is($res->code, 401, 'authorization_endpoint asks for a login (Basic)');
    like($res->header('WWW-Authenticate') // '', qr/^Basic realm="runai login"/,
         'authorization_endpoint: Basic challenge of its location');
}

# Discovery of a host whose issuer is another origin: everything on that origin.
{
    my($d) = get_json('/realm/.well-known/openid-configuration', 'hs256', 'hs256 discovery');
    is($d->{issuer}, 'https://hs256.example.test/realm', 'hs256: issuer');
    is($d->{jwks_uri}, 'https://hs256.example.test/realm/protocol/openid-connect/certs', 'hs256: jwks_uri');
    is($d->{authorization_endpoint}, 'https://hs256.example.test/api/v1/authorize',
       'hs256: authorization_endpoint on the issuer origin');
}

# Methods and paths that are not documents.
{
    for my $path ('/auth/realms/runai/.well-known/openid-configuration',
                  '/auth/realms/runai/protocol/openid-connect/certs', '/.well-known/jwks.json') {
        my $head = http(HEAD => $path, vhost => 'oidc');
        is($head->code, 200, "HEAD $path: 200");
        is($head->content, '', "HEAD $path: no body");
        my $post = http(POST => $path, vhost => 'oidc', body => '{}');
        check_error($post, 405, undef, "POST $path");
        is($post->header('Allow'), 'GET, HEAD', "POST $path: Allow: GET, HEAD");
    }
    for my $path ('/auth/realms/other/.well-known/openid-configuration',
                  '/auth/realms/other/protocol/openid-connect/certs',
                  '/auth/realms/runai/.well-known/jwks.json',
                  '/auth/realms/runai/protocol/openid-connect/certs/',
                  '/auth/realms/runai/protocol/openid-connect/keys') {
        check_error(http(GET => $path, vhost => 'oidc'), 404, undef, "GET $path");
    }
}

# ---------------------------------------------------------------------------
# JWKS of each kind of key set.
my %members = (
    RSA => [qw(alg e kid kty n use)],
    EC  => [qw(alg crv kid kty use x y)],
);
my %coord_bytes = ('P-256' => 32, 'P-384' => 48, 'P-521' => 66);

# RFC 7638 computed here from the served members (not from the module).
sub jwk_thumbprint {
    my $k = shift;
    my @req = $k->{kty} eq 'RSA' ? qw(e kty n) : qw(crv kty x y);
    my $json = '{' . join(',', map { qq{"$_":"$k->{$_}"} } @req) . '}';
    return encode_base64url(sha256($json));
}

# check_jwks(VHOST, PATH, [FIXTURE, ALG, KID-or-undef]...)
sub check_jwks {
    my($vhost, $path, @want) = @_;
    my($doc, $res) = get_json($path, $vhost, "$vhost JWKS");
    check_cacheable($res, "$vhost JWKS");
    is_deeply([sort keys %$doc], ['keys'], "$vhost JWKS: an object with 'keys' only");
    my @keys = @{ $doc->{keys} || [] };
    is(scalar @keys, scalar @want, "$vhost JWKS: " . scalar(@want) . ' keys');
    my %by_kid = map { ($_->{kid} // '') => $_ } @keys;
    for my $w (@want) {
        my($fixture, $alg, $kid) = @$w;
        my $name = "$vhost JWKS $fixture";
        $kid //= thumbprint($fixture);
        my $k = $by_kid{$kid};
        ok($k, "$name: published with kid $kid") or next;
        my @priv = grep { exists $k->{$_} } qw(d p q dp dq qi oth k);
        is("@priv", '', "$name: no private members");
        is($k->{alg}, $alg, "$name: alg $alg");
        is($k->{use}, 'sig', "$name: use sig");
        my $kty = $fixture =~ /^rsa/ ? 'RSA' : 'EC';
        is($k->{kty}, $kty, "$name: kty $kty");
        is_deeply([sort keys %$k], $members{$kty}, "$name: members are exactly @{ $members{$kty} }");
        my $pub = key_info($fixture)->{key}->export_key_jwk('public', 1);
        for my $m ($kty eq 'RSA' ? qw(n e) : qw(crv x y)) {
            is($k->{$m}, $pub->{$m}, "$name: $m is the fixture's");
        }
        if ($kty eq 'EC') {
            my $len = $coord_bytes{ $k->{crv} // '' } // -1;
            is(length(decode_base64url($k->{x} // '')), $len, "$name: x is $len bytes");
            is(length(decode_base64url($k->{y} // '')), $len, "$name: y is $len bytes");
        }
        is(jwk_thumbprint($k), thumbprint($fixture), "$name: RFC 7638 thumbprint of the served key");
        is($k->{kid}, jwk_thumbprint($k), "$name: default kid is the RFC 7638 thumbprint")
            unless defined $w->[2];
    }
    my @oct = grep { ($_->{kty} // '') eq 'oct' || exists $_->{k} } @keys;
    is(scalar @oct, 0, "$vhost JWKS: no symmetric key");
    ok(index($res->content, $s->{hmac_b64url}) < 0, "$vhost JWKS: the HMAC secret is not in it");
    return $doc;
}

my $jwks_oidc = check_jwks(oidc => '/auth/realms/runai/protocol/openid-connect/certs',
                           [rsa => 'RS256'], [ec256 => 'ES256']);
my $jwks_next = check_jwks(oidcnext => '/.well-known/jwks.json', [ec256 => 'ES256'], [rsa => 'RS256']);
check_jwks(oidcmix => '/realm/protocol/openid-connect/certs',
           [rsa2 => 'RS256'], [ec521 => 'ES512', 'mix-es512']);
check_jwks(hs256 => '/.well-known/jwks.json');
check_jwks(es256 => '/auth/realms/es256/protocol/openid-connect/certs', [ec256 => 'ES256']);
check_jwks(es384 => '/.well-known/jwks.json', [ec384 => 'ES384', 'es384-explicit-kid']);
check_jwks(es512 => '/.well-known/jwks.json', [ec521 => 'ES512']);
{
    my $res = http(GET => '/realm/.well-known/openid-configuration', vhost => 'oidcmix');
    ok(index($res->content, $s->{hmac_b64url}) < 0, 'oidcmix discovery: the HMAC secret is not in it');
}

# ---------------------------------------------------------------------------
# Rotation inside the suite: oidc (RSA signs, EC second) and oidcnext (the
# same issuer after the swap: EC signs, RSA second).
sub password_token {
    my($vhost) = @_;
    my $res = http(POST => '/api/v1/token', vhost => $vhost, type => 'application/x-www-form-urlencoded',
                   body => form_body(grant_type => 'password', username => 'alice',
                                     password => $s->{users}{alice}));
    is($res->code, 200, "$vhost: password grant") or diag($res->content);
    my $b = response_json($res) || {};
    record_token($_) for grep { defined } values %$b;
    return $b->{access_token};
}

sub jwks_verify {
    my($token, $jwks, $name) = @_;
    my $claims = eval {
        Crypt::JWT::decode_jwt(token => $token, kid_keys => $jwks,
            accepted_alg => qr/^(RS256|ES256)$/, verify_iss => $issuer,
            verify_aud => sub { grep { $_ eq 'runai' } ref $_[0] ? @{ $_[0] } : $_[0] },
            verify_exp => 1);
    };
    ok($claims, "$name: verifies with the served JWKS (Crypt::JWT, key by kid)") or diag($@);
}

sub guard_status {
    my($vhost, $token) = @_;
    return http(GET => '/guard/', vhost => $vhost, headers => [Authorization => "Bearer $token"])->code;
}

{
    my $old = password_token('oidc');
    my $new = password_token('oidcnext');
    my($oh) = jwt_parts($old);
    my($nh) = jwt_parts($new);
    is_deeply([@{ $oh || {} }{qw(alg kid)}], ['RS256', thumbprint('rsa')], 'before rotation: RSA signs');
    is_deeply([@{ $nh || {} }{qw(alg kid)}], ['ES256', thumbprint('ec256')], 'after rotation: EC signs');
    jwks_verify($old, $jwks_oidc, 'token signed before the rotation, JWKS before');
    jwks_verify($old, $jwks_next, 'token signed before the rotation, JWKS after');
    jwks_verify($new, $jwks_next, 'token signed after the rotation, JWKS after');
    jwks_verify($new, $jwks_oidc, 'token signed after the rotation, JWKS before (key published early)');
    is(guard_status(oidcnext => $old), 200, 'after rotation the guard accepts a token signed before it');
    is(guard_status(oidcnext => $new), 200, 'after rotation the guard accepts a new token');
    is(guard_status(oidc => $new), 200, 'before rotation the guard accepts a token of the next key');
    # a key that is not listed: refused although the issuer and claims are right
    my(undef, $claims) = jwt_parts($old);
    my $stranger = Crypt::JWT::encode_jwt(payload => $claims, alg => 'RS256',
        key => Crypt::PK::RSA->new(fixture('rsa2.pem')),
        extra_headers => { kid => thumbprint('rsa2'), typ => 'JWT' });
    record_token($stranger);
    is(guard_status(oidcnext => $stranger), 401, 'a token signed by a key that is not listed: 401');
}

# ---------------------------------------------------------------------------
# Rotation for real: an httpd of our own, reconfigured by graceful restarts.
my $httpd = Apache::Test::vars('httpd');
my $so = $ENV{RUNAI_TOKEN_MODULE} || catfile(Apache::Test::vars('top_dir'), '.libs', 'mod_runai_token.so');
my $t = t_dir();
my $rot_dir = tempdir('runai-rotation-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $rot_dir;
my $rot_pid;

END {
    if ($rot_pid && kill 0, $rot_pid) {
        kill 'TERM', $rot_pid;
        for (1 .. 100) { last unless kill 0, $rot_pid; sleep 0.05 }
    }
}

sub free_port {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 1) or die "no free port: $!";
    my $p = $sock->sockport;
    close $sock;
    return $p;
}

my $rot_port = free_port();
my $rot_issuer = "http://127.0.0.1:$rot_port/auth/realms/rotation";

sub rot_config {
    my(@keys) = @_;
    my $user = $> == 0 ? "User nobody\nGroup nogroup\n" : '';
    my $keylines = join '', map { "RunaiTokenSigningKey \"$t/fixtures/$_\"\n" } @keys;
    my $conf = <<"CONF";
ServerRoot "$rot_dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$rot_port
PidFile "$rot_dir/httpd.pid"
DefaultRuntimeDir "$rot_dir"
ErrorLog "$rot_dir/error_log"
LogLevel info
${user}Include "$t/conf/modules.conf"
TypesConfig "$t/conf/mime.types"
LoadModule runai_token_module "$so"
<AuthnProviderAlias file rotation-apps>
    AuthUserFile "$t/fixtures/apps.htpasswd"
</AuthnProviderAlias>
RunaiTokenIssuer $rot_issuer
$keylines
<Location />
    SetHandler runai-token
    RunaiTokenAppProvider rotation-apps
    RunaiTokenThrottle off
</Location>
Alias /guard "$t/htdocs/index.html"
<Location /guard>
    SetHandler none
    AuthType RunaiToken
    AuthName rotation
    Require valid-user
</Location>
CONF
    open my $fh, '>', "$rot_dir/httpd.conf" or die "$rot_dir/httpd.conf: $!";
    print $fh $conf;
    close $fh or die "$!";
}

my $ua = LWP::UserAgent->new(timeout => 10, max_redirect => 0);
sub rot_get { $ua->get("http://127.0.0.1:$rot_port$_[0]", @_[1 .. $#_]) }

sub rot_kids {
    my $res = rot_get('/.well-known/jwks.json');
    return undef unless $res->code == 200;
    my $doc = json_decode($res->content) || {};
    return join ' ', map { $_->{kid} } @{ $doc->{keys} || [] };
}

# Waits until the JWKS lists exactly these kids (after a start or a restart).
sub wait_kids {
    my($want, $name) = @_;
    my $got = '';
    my $until = time + 15;
    while (time < $until) {
        $got = rot_kids() // '';
        last if $got eq $want;
        sleep 0.1;
    }
    is($got, $want, "rotation: $name") or diag(rot_log());
}

sub rot_log {
    open my $fh, '<', "$rot_dir/error_log" or return '';
    local $/;
    return "error_log of the rotation httpd:\n" . (<$fh> // '');
}

sub rot_token {
    my $res = $ua->post("http://127.0.0.1:$rot_port/api/v1/token",
        Content_Type => 'application/x-www-form-urlencoded',
        Content => form_body(grant_type => 'client_credentials', client_id => 'app-md5',
                             client_secret => $s->{apps}{'app-md5'}));
    is($res->code, 200, 'rotation: client_credentials') or diag($res->as_string);
    my $tok = (json_decode($res->content) || {})->{access_token};
    record_token($tok);
    return $tok;
}

sub rot_guard { rot_get('/guard', Authorization => "Bearer $_[0]")->code }

sub graceful {
    my $name = shift;
    ok(kill('USR1', $rot_pid), "rotation: graceful restart ($name)");
}

{
    rot_config('rsa.pem');
    my($rc, $out, $err) = RunaiTest::run_capture($httpd, '-d', $rot_dir, '-f', "$rot_dir/httpd.conf",
                                                  '-k', 'start');
    is($rc, 0, 'rotation: an httpd of our own starts') or diag("$out$err");
    for (1 .. 100) {
        last if -s "$rot_dir/httpd.pid";
        sleep 0.05;
    }
    ($rot_pid) = do { open my $fh, '<', "$rot_dir/httpd.pid"; <$fh> // '' } =~ /(\d+)/;
    ok($rot_pid, 'rotation: httpd wrote its pid');
    my($rsa, $ec) = (thumbprint('rsa'), thumbprint('ec256'));

    wait_kids($rsa, 'step 0, one RSA key published');
    my $t0 = rot_token();
    is(rot_guard($t0), 200, 'rotation step 0: the RSA token is accepted');

    # 1. the new key is published first (it does not sign yet)
    rot_config('rsa.pem', 'ec256.pub.pem');
    graceful('publish the EC key');
    wait_kids("$rsa $ec", 'step 1, the EC key is published beside the RSA key');
    my $t1 = rot_token();
    is(((jwt_parts($t1))[0] || {})->{kid}, $rsa, 'rotation step 1: the RSA key still signs');

    # 2. the new key signs, the old one stays listed
    rot_config('ec256.pem', 'rsa.pub.pem');
    graceful('let the EC key sign');
    wait_kids("$ec $rsa", 'step 2, the EC key signs, the RSA key is kept');
    my $t2 = rot_token();
    is(((jwt_parts($t2))[0] || {})->{alg}, 'ES256', 'rotation step 2: new tokens are ES256');
    is(rot_guard($t0), 200, 'rotation step 2: a token signed before the rotation is accepted');
    is(rot_guard($t2), 200, 'rotation step 2: a new token is accepted');
    {
        my $jwks = rot_get('/auth/realms/rotation/protocol/openid-connect/certs')->content;
        for my $case ([$t0, 'old token'], [$t2, 'new token']) {
            my $c = eval { Crypt::JWT::decode_jwt(token => $case->[0], kid_keys => $jwks,
                                                  verify_iss => $rot_issuer) };
            ok($c, "rotation step 2: the $case->[1] verifies with the served JWKS") or diag($@);
        }
    }

    # 3. the old key is dropped: its tokens stop working
    rot_config('ec256.pem');
    graceful('drop the RSA key');
    wait_kids($ec, 'step 3, only the EC key is published');
    my $res = rot_get('/guard', Authorization => "Bearer $t0");
    is($res->code, 401, 'rotation step 3: a token of the dropped key is refused');
    like($res->header('WWW-Authenticate') // '', qr/error="invalid_token"/,
         'rotation step 3: invalid_token');
    is(rot_guard($t2), 200, 'rotation step 3: the EC token is still accepted');

    kill 'TERM', $rot_pid;
    my $gone = 0;
    for (1 .. 100) { $gone = 1, last unless kill 0, $rot_pid; sleep 0.05 }
    ok($gone, 'rotation: our httpd stopped');
    $rot_pid = undef if $gone;
}

done_testing();

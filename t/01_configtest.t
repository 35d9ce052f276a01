# Configuration errors surface at `apache2 -t`: small standalone configs,
# one good and each bad value of every directive. A bad one must fail with
# a message naming the directive and the offending value (or file).
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Copy qw(copy);
use File::Spec::Functions qw(catfile);
use File::Temp qw(tempdir);
use RunaiTest;

my $httpd = $ENV{RUNAI_HTTPD} || '/usr/sbin/apache2';
my $mods = '/usr/lib/apache2/modules';
my $so = $ENV{RUNAI_TOKEN_MODULE} || catfile(Apache::Test::vars('top_dir'), '.libs', 'mod_runai_token.so');
ok(-f $so, "the built module exists: $so") or BAIL_OUT("build the module first (make)");

my $dir = tempdir('runai-configtest-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;

sub write_file {
    my($name, $bytes, $mode) = @_;
    my $file = catfile($dir, $name);
    open my $fh, '>:raw', $file or die "$file: $!";
    print $fh $bytes;
    close $fh or die "$file: $!";
    chmod $mode // 0600, $file;
    return $file;
}

sub openssl {
    my($out, @args) = @_;
    my $file = catfile($dir, $out);
    my($rc, undef, $err) = RunaiTest::run_capture('openssl', 'genpkey', @args, '-out', $file);
    die "openssl genpkey @args: $err" if $rc;
    chmod 0600, $file;
    return $file;
}

# keys: the suite's fixtures where they are valid, generated here otherwise
my %key;
for my $k (qw(rsa.pem ec256.pem ec384.pem ec521.pem rsa2.pub.pem hmac.key)) {
    copy(fixture($k), catfile($dir, $k)) or die "copy $k: $!";
    chmod 0600, catfile($dir, $k);
    $key{$k} = catfile($dir, $k);
}
$key{rsa1024}   = openssl('rsa1024.pem', qw(-algorithm RSA -pkeyopt rsa_keygen_bits:1024));
$key{secp256k1} = openssl('k1.pem', qw(-algorithm EC -pkeyopt ec_paramgen_curve:secp256k1));
$key{ed25519}   = openssl('ed25519.pem', qw(-algorithm ED25519));
$key{hmac32}    = write_file('hmac32.key', 'k' x 32);
$key{hmac31}    = write_file('hmac31.key', 'k' x 31);
$key{garbage}   = write_file('garbage.pem', "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
$key{empty}     = write_file('empty.pem', '');
$key{missing}   = catfile($dir, 'no-such-key.pem');
write_file('apps.htpasswd', "app:\$apr1\$abcdefgh\$0123456789012345678901\n", 0644);

my $n = 0;
sub configtest {
    my($body, %o) = @_;
    my $keys = exists $o{keys} ? $o{keys} : qq(RunaiTokenSigningKey "$key{'rsa.pem'}"\n);
    $n++;
    my $conf = write_file("httpd-$n.conf", <<"EOF", 0644);
ServerRoot "$dir"
ServerName localhost
Listen 127.0.0.1:1
PidFile "$dir/httpd-$n.pid"
ErrorLog "$dir/error_log-$n"
DefaultRuntimeDir "$dir"
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule authz_user_module $mods/mod_authz_user.so
LoadModule authn_core_module $mods/mod_authn_core.so
LoadModule authn_file_module $mods/mod_authn_file.so
LoadModule runai_token_module "$so"
$keys
$body
EOF
    my($rc, $out, $err) = RunaiTest::run_capture($httpd, '-t', '-f', $conf);
    return ($rc, "$out$err");
}

sub good {
    my($name, $body, %o) = @_;
    my($rc, $out) = configtest($body, %o);
    ok($rc == 0 && $out =~ /Syntax OK/, "good: $name") or diag("exit $rc: $out");
}

sub bad {
    my($directive, $line, $value, %o) = @_;
    my $name = "bad: $line";
    $name =~ s/\s+/ /g;
    my($rc, $out) = configtest($line, %o);
    isnt($rc, 0, "$name: apache2 -t fails");
    unlike($out, qr/Syntax OK/, "$name: no Syntax OK");
    like($out, qr/\Q$directive\E/, "$name: output names $directive") or diag($out);
    # the contract's form: RunaiTokenX: '<value>' <reason>
    like($out, qr/\Q$directive\E\b.*'\Q$value\E'/, "$name: output names '$value'") or diag($out)
        if defined $value;
    like($out, qr/not allowed|cannot occur/i, "$name: output says where it is not allowed")
        or diag($out) if $o{context};
}

# --- good configurations ---
good('every directive, boundary values', <<"EOF", keys => <<"KEYS");
<AuthnProviderAlias file runai-apps>
    AuthUserFile "$dir/apps.htpasswd"
</AuthnProviderAlias>
RunaiTokenIssuer https://idp.example.test/auth/realms/runai
RunaiTokenAudience runai kube
RunaiTokenAccessLifetime 31536000
RunaiTokenMaxBody 16777216
RunaiTokenRefreshRetry 3600
RunaiTokenRefreshIdle 31536000
RunaiTokenSessionCheck 3600
RunaiTokenRefreshRate 100000 86400
RunaiTokenDeviceCodeLifetime 3600
RunaiTokenClaim email "%{REMOTE_USER}\@example.com"
RunaiTokenClaim groups "a,b" list
RunaiTokenClaim uid "1000" number
RunaiTokenClaim admin "true" bool
RunaiTokenClaim plain "text" string
RunaiTokenClaim preferred_username "%{REMOTE_USER}"
RunaiTokenAppClaim kind "service" string
<Location /api>
    SetHandler runai-token
    AuthUserFile "$dir/apps.htpasswd"
    RunaiTokenAppProvider file runai-apps
    RunaiTokenPasswordProvider runai-apps file
    RunaiTokenAudience single
    RunaiTokenAccessLifetime 1
    RunaiTokenMaxBody 64
    RunaiTokenRefreshRetry 0
    RunaiTokenRefreshIdle off
    RunaiTokenSessionCheck off
    RunaiTokenRefreshRequire user alice bob
    RunaiTokenRefreshRequire valid-user
    RunaiTokenRefreshRate off
    RunaiTokenClaim email "override"
</Location>
<Directory "$dir">
    RunaiTokenAccessLifetime 60
</Directory>
EOF
RunaiTokenSigningKey "$key{'rsa.pem'}"
RunaiTokenSigningKey "$key{'rsa2.pub.pem'}" rotated
RunaiTokenSigningKey "$key{'ec256.pem'}" ec-kid
RunaiTokenSigningKey hmac:$key{hmac32}
KEYS
good('relative key path (ServerRoot)', 'RunaiTokenIssuer http://127.0.0.1:8080',
     keys => 'RunaiTokenSigningKey rsa.pem');
good('EC P-384 key', '', keys => qq(RunaiTokenSigningKey "$key{'ec384.pem'}"));
good('EC P-521 key', '', keys => qq(RunaiTokenSigningKey "$key{'ec521.pem'}"));
good('hmac key of exactly 32 bytes', '', keys => "RunaiTokenSigningKey hmac:$key{hmac32}");
good('hmac key relative to ServerRoot', '', keys => 'RunaiTokenSigningKey hmac:hmac.key');

good('clients, PKCE and the subject', <<"EOF", keys => qq(RunaiTokenSigningKey "$key{'ec256.pem'}"));
RunaiTokenClient cli public
RunaiTokenClient portal confidential https://portal.example.test/cb
RunaiTokenClient native pkce com.example.app:/cb
RunaiTokenClient kubelogin PUBLIC PKCE http://127.0.0.1:8000 http://localhost:8000
RunaiTokenClient probe-me https://probe.example.test/cb
RunaiTokenClient headless public device
RunaiTokenClient device-app confidential DEVICE
RunaiTokenDeviceCodeLifetime 1
RunaiTokenRequirePKCE On
RunaiTokenSubject "%{env:AUTHENTICATE_UID}"
<Location /api>
    RunaiTokenSubject "%{tolower:%{REMOTE_USER}}"
</Location>
EOF
# --- bad values ---
bad('RunaiTokenClient', 'RunaiTokenClient c1 secret https://x.test/cb', 'secret');
bad('RunaiTokenClient', 'RunaiTokenClient c2 public confidential', 'confidential');
bad('RunaiTokenClient', 'RunaiTokenClient c3 https://x.test/cb#frag', 'https://x.test/cb#frag');
bad('RunaiTokenClient', "RunaiTokenClient c4\nRunaiTokenClient c4", 'c4');
bad('RunaiTokenClient', 'RunaiTokenClient c5 devices', 'devices');
for my $v ('abc', '0', '-5', '3601', '1.5', '') {
    bad('RunaiTokenDeviceCodeLifetime', qq(RunaiTokenDeviceCodeLifetime "$v"), length $v ? $v : undef);
}
bad('RunaiTokenDeviceCodeLifetime', "<Location /x>\nRunaiTokenDeviceCodeLifetime 60\n</Location>", undef,
    context => 1);
bad('RunaiTokenRequirePKCE', 'RunaiTokenRequirePKCE maybe', undef);
bad('RunaiTokenRequirePKCE', "<Location /x>\nRunaiTokenRequirePKCE On\n</Location>", undef, context => 1);
bad('RunaiTokenSubject', 'RunaiTokenSubject "%{env:"', '%{env:');
for my $v ('abc', '0', '-5', '31536001', '12x', '1.5', '99999999999999999999', '') {
    bad('RunaiTokenAccessLifetime', qq(RunaiTokenAccessLifetime "$v"), length $v ? $v : undef);
}
bad('RunaiTokenAccessLifetime', "<Location /x>\nRunaiTokenAccessLifetime 0\n</Location>", '0');
for my $v ('abc', '0', '-1', '63', '16777217', '1k', '99999999999999999999') {
    bad('RunaiTokenMaxBody', "RunaiTokenMaxBody $v", $v);
}
bad('RunaiTokenMaxBody', "<Location /x>\nRunaiTokenMaxBody 10\n</Location>", '10');
for my $v ('abc', '-1', '3601', '1m') {
    bad('RunaiTokenRefreshRetry', "RunaiTokenRefreshRetry $v", $v);
}
for my $v (['0', '60'], ['100001', '60'], ['10', '0'], ['10', '86401'], ['ten', '60'], ['off', '60']) {
    bad('RunaiTokenRefreshRate', "RunaiTokenRefreshRate @$v", $v->[0] =~ /^\d+$/ && $v->[0] >= 1 && $v->[0] <= 100000
                                                                 ? $v->[1] : $v->[0]);
}
bad('RunaiTokenRefreshRate', 'RunaiTokenRefreshRate 10', undef);
for my $v ('0', '-1', '31536001', 'never') {
    bad('RunaiTokenRefreshIdle', "RunaiTokenRefreshIdle $v", $v);
}
for my $v ('0', '-1', '3601', 'never', '5s') {
    bad('RunaiTokenSessionCheck', "RunaiTokenSessionCheck $v", $v);
}
bad('RunaiTokenRefreshRequire', 'RunaiTokenRefreshRequire no-such-provider x', 'no-such-provider');
bad('RunaiTokenClaim', 'RunaiTokenClaim sid "x"', 'sid');
bad('RunaiTokenRefreshRequire', "<Location /x>\nRunaiTokenRefreshRequire ldap-user alice\n</Location>", 'ldap-user');
for my $v ('not a url', 'ftp://idp.example.test/x', 'https://', 'https:///path',
           'https://idp.example.test/x?y=1', 'https://idp.example.test/#frag', '/relative',
           'idp.example.test') {
    bad('RunaiTokenIssuer', qq(RunaiTokenIssuer "$v"), $v);
}
bad('RunaiTokenAppProvider', 'RunaiTokenAppProvider no-such-provider', 'no-such-provider');
bad('RunaiTokenAppProvider', 'RunaiTokenAppProvider file no-such-provider', 'no-such-provider');
bad('RunaiTokenPasswordProvider', 'RunaiTokenPasswordProvider no-such-provider', 'no-such-provider');
bad('RunaiTokenPasswordProvider',
    "<Location /x>\nRunaiTokenPasswordProvider ldap\n</Location>", 'ldap');
bad('RunaiTokenAppProvider', <<"EOF", 'later-alias');
RunaiTokenAppProvider later-alias
<AuthnProviderAlias file later-alias>
    AuthUserFile "$dir/apps.htpasswd"
</AuthnProviderAlias>
EOF
for my $claim (qw(iss sub aud exp iat nbf jti azp auth_time nonce)) {
    bad('RunaiTokenClaim', qq(RunaiTokenClaim $claim "x"), $claim);
}
bad('RunaiTokenAppClaim', 'RunaiTokenAppClaim sub "x"', 'sub');
bad('RunaiTokenAppClaim', 'RunaiTokenAppClaim exp "1" number', 'exp');
bad('RunaiTokenClaim', 'RunaiTokenClaim uid "1" integer', 'integer');
bad('RunaiTokenClaim', 'RunaiTokenClaim groups "a,b" lists', 'lists');
bad('RunaiTokenAppClaim', 'RunaiTokenAppClaim flag "on" boolean', 'boolean');
bad('RunaiTokenClaim', 'RunaiTokenClaim email "%{REMOTE_USER"', '%{REMOTE_USER');
bad('RunaiTokenClaim', 'RunaiTokenClaim email "%{no_such_function:x}"', '%{no_such_function:x}');
bad('RunaiTokenAppClaim', 'RunaiTokenAppClaim kind "%{env:"', '%{env:');
bad('RunaiTokenClaim', 'RunaiTokenClaim onlyname', undef);
bad('RunaiTokenClaim', 'RunaiTokenClaim a "b" string extra', undef);
bad('RunaiTokenAudience', 'RunaiTokenAudience', undef);
bad('RunaiTokenSigningKey', '', $key{missing},
    keys => qq(RunaiTokenSigningKey "$key{missing}"));
bad('RunaiTokenSigningKey', '', $key{garbage},
    keys => qq(RunaiTokenSigningKey "$key{garbage}"));
bad('RunaiTokenSigningKey', '', $key{empty},
    keys => qq(RunaiTokenSigningKey "$key{empty}"));
bad('RunaiTokenSigningKey', '', $key{rsa1024},
    keys => qq(RunaiTokenSigningKey "$key{rsa1024}"));
bad('RunaiTokenSigningKey', '', $key{secp256k1},
    keys => qq(RunaiTokenSigningKey "$key{secp256k1}"));
bad('RunaiTokenSigningKey', '', $key{ed25519},
    keys => qq(RunaiTokenSigningKey "$key{ed25519}"));
bad('RunaiTokenSigningKey', '', $key{hmac31},
    keys => "RunaiTokenSigningKey hmac:$key{hmac31}");
bad('RunaiTokenSigningKey', '', $key{missing},
    keys => "RunaiTokenSigningKey hmac:$key{missing}");
bad('RunaiTokenSigningKey', '', $key{'rsa2.pub.pem'},
    keys => qq(RunaiTokenSigningKey "$key{'rsa2.pub.pem'}"));
bad('RunaiTokenSigningKey', '', $key{missing},
    keys => qq(RunaiTokenSigningKey "$key{'rsa.pem'}"\nRunaiTokenSigningKey "$key{missing}"));
bad('RunaiTokenIssuer', "<Location /x>\nRunaiTokenIssuer https://idp.example.test\n</Location>", undef,
    context => 1);
bad('RunaiTokenIssuer', qq(<Directory "$dir">\nRunaiTokenIssuer https://idp.example.test\n</Directory>),
    undef, context => 1);
bad('RunaiTokenSigningKey', qq(<Location /x>\nRunaiTokenSigningKey "$key{'ec256.pem'}"\n</Location>),
    undef, context => 1);

# --- the signing key is required where grants are configured ---
good('module loaded without a key and without grants', '', keys => '');
bad('RunaiTokenSigningKey', qq(<Location /t>\nSetHandler runai-token\nAuthUserFile "$dir/apps.htpasswd"\nRunaiTokenAppProvider file\n</Location>),
    undef, keys => '');
bad('RunaiTokenSigningKey', "<VirtualHost 127.0.0.1:1>\nRunaiTokenClient cli https://x.test/cb\n</VirtualHost>",
    undef, keys => '');


# --- RunaiTokenStateDir: where the shmcb store keeps its state file ---
good('RunaiTokenStateDir off', "RunaiTokenStateDir off");
good('RunaiTokenStateDir OFF (any case)', "RunaiTokenStateDir OFF");
good('RunaiTokenStateDir an existing directory', qq(RunaiTokenStateDir "$dir"));
good('RunaiTokenStateDir a directory still to be made', qq(RunaiTokenStateDir "$dir/state/runai"));
good('RunaiTokenStateDir beside an explicit shmcb store',
     qq(LoadModule socache_shmcb_module $mods/mod_socache_shmcb.so\n)
     . qq(RunaiTokenCache "shmcb:$dir/cache(1048576)"\nRunaiTokenStateDir "$dir"));
bad('RunaiTokenStateDir', qq(RunaiTokenStateDir "$dir/apps.htpasswd"), "$dir/apps.htpasswd");
bad('RunaiTokenStateDir', "RunaiTokenStateDir", undef);
bad('RunaiTokenStateDir', "<VirtualHost 127.0.0.1:1>\nRunaiTokenStateDir off\n</VirtualHost>", undef,
    context => 1);
bad('RunaiTokenStateDir', "<Location /x>\nRunaiTokenStateDir off\n</Location>", undef, context => 1);

done_testing();

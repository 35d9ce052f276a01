# One account, one subject, one throttle: against mod_authn_dbd on an
# SQLite table whose names compare case-insensitively (COLLATE NOCASE, as
# LDAP's caseIgnoreMatch and MySQL's default collation do), every spelling
# of a user name reaches the same account. RunaiTokenSubject takes the
# subject from the directory's own spelling (an extra column of
# AuthDBDUserPWQuery, exported as AUTHENTICATE_UID), so dave, Dave and daVE
# get tokens with one sub; and failed attempts under any spelling count
# toward one throttle.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Temp qw(tempdir);
use JSON::PP ();
use MIME::Base64 qw(decode_base64);
use RunaiHosts;

my $MODULES = '/usr/lib/apache2/modules';
my $sqlite = find_binary('sqlite3');
-f "$MODULES/mod_authn_dbd.so" or BAIL_OUT("$MODULES/mod_authn_dbd.so not found");

my $dir = tempdir('runai-subject-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my $password = 'pw-' . int(rand(1e9));
note_secret('password of dave', $password);
my $hash = `htpasswd -nbB dave '$password'`;
$hash =~ s/^dave://;
$hash =~ s/\s+$//;
my $db = "$dir/users.db";
open my $sql, '|-', $sqlite, $db or die "sqlite3: $!";
print $sql "CREATE TABLE users (name TEXT COLLATE NOCASE PRIMARY KEY, password TEXT);\n",
           "INSERT INTO users VALUES ('dave', '$hash');\n";
close $sql or die "sqlite3 failed";
chmod 0644, $db;

my $site = <<"EOF";
RunaiTokenIssuer https://subject.example.test
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
DBDriver sqlite3
DBDParams "$db"
<Location />
    SetHandler runai-token
    AuthDBDUserPWQuery "SELECT password, name AS uid FROM users WHERE name = %s"
    RunaiTokenPasswordProvider dbd
    RunaiTokenSubject %{env:AUTHENTICATE_UID}
    RunaiTokenThrottle 5 60
</Location>
EOF
my $h = start_httpd(name => 'subject', site => $site, global => <<"EOF");
LoadModule dbd_module $MODULES/mod_dbd.so
LoadModule authn_dbd_module $MODULES/mod_authn_dbd.so
EOF
my $p = $h->{port};

sub sub_of {
    my $res = shift;
    my $b = reply_of($res) // {};
    my(undef, $payload) = split /\./, $b->{accessToken} // '';
    $payload //= '';
    $payload =~ tr/-_/+\//;
    return (eval { JSON::PP->new->decode(decode_base64($payload)) } // {})->{sub};
}

for my $name (qw(dave Dave daVE)) {
    my $res = password_login($p, $name, $password);
    is($res->code, 200, "$name: the directory accepts it") or diag($res->content);
    is(sub_of($res), 'dave', "$name: sub is the directory's spelling");
}

# Five wrong passwords under five spellings: the sixth spelling is throttled.
for my $name (qw(dave Dave DAVE dAve daVe)) {
    my $res = password_login($p, $name, 'wrong');
    is($res->code, 401, "$name with a wrong password: 401");
}
my $res = password_login($p, 'daVE', 'wrong');
is($res->code, 429, 'a sixth spelling after five failures: 429, one counter for every spelling');
$res = password_login($p, ' dave ', $password);
is($res->code, 429, 'a spelling with blanks around it shares the counter too');

stop_httpd($h);
assert_logs_clean('subject', $h->{error_log}, $h->{access_log});
done_testing();

# Runs last: the logs of the whole run hold no secret, password or token,
# and every token request left its one info line.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use File::Spec::Functions qw(catfile);
use MIME::Base64 qw(decode_base64url);
use Time::HiRes qw(sleep);
use RunaiTest;

my $s = secrets();
my $logs = Apache::Test::vars('t_logs');

# Requests of our own, so the file holds each kind of line even when run alone.
my $granted = token_request({ appID => 'app-bcrypt', appSecret => $s->{apps}{'app-bcrypt'} });
is($granted->code, 200, 'an app token is granted');
record_token((response_json($granted) || {})->{accessToken});
my $pw = token_request({ grantType => 'password', username => 'carol',
                         password => $s->{users}{carol}, clientID => 'log-test-cli' });
is($pw->code, 200, 'a password grant succeeds');
record_token($_) for grep { defined } values %{ response_json($pw) || {} };
is(token_request({ grantType => 'password', username => 'alice', password => $s->{wrong} })->code,
   401, 'a wrong password is refused');
is(token_request({ grantType => 'password', username => 'nobody-here', password => $s->{wrong} })->code,
   401, 'an unknown user is refused');
is(post_json('/api/v1/token', '{"appID":')->code, 400, 'a malformed request is refused');
my $legacy = post_json('/v1/k8s/auth/oauth/apptoken',
    json_bytes({ id => 'app-md5', name => 'x', secret => $s->{apps}{'app-md5'} }));
is($legacy->code, 200, 'a legacy app token is granted');
record_token($_) for grep { defined } values %{ response_json($legacy) || {} };

my $marker = 'once-' . time . "-$$";
is(token_request({ grantType => 'password', username => $marker, password => $s->{wrong} })->code,
   401, 'an unknown user with a unique name is refused');
is(token_request({ appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} }, vhost => 'broken')->code,
   503, 'a failing provider answers 503');

# the module writes its line when the request ends: wait for the last one
my $error_log = catfile($logs, 'error_log');
my $log = '';
for (1 .. 50) {
    $log = slurp($error_log) // '';
    last if $log =~ /grant=app_token principal=app-md5 .*outcome=granted/
         && $log =~ /principal=nobody-here/ && $log =~ /\Q$marker\E/;
    sleep 0.1;
}
ok(length $log, "$error_log is not empty");
my $all_logs = $log . (slurp(catfile($logs, 'access_log')) // '');

# --- no secret, password or token anywhere ---
my @secrets = (
    (map { ["app secret $_", $s->{apps}{$_}] } sort keys %{ $s->{apps} }),
    (map { ["password of $_", $s->{users}{$_}] } sort keys %{ $s->{users} }),
    ['second-file password of alice', $s->{alice_secondary}],
    ['wrong secret', $s->{wrong}],
    ['HMAC key (base64url)', $s->{hmac_b64url}],
    ['HMAC key (bytes)', decode_base64url($s->{hmac_b64url})],
);
for my $secret (@secrets) {
    my($what, $value) = @$secret;
    my $bytes = $value;
    utf8::encode($bytes);
    ok(index($all_logs, $bytes) < 0, "the logs do not hold the $what");
    # the random core alone, in case the punctuation was escaped in a log
    my($core) = $value =~ /^([A-Za-z0-9_-]{16,})/;
    ok(index($all_logs, $core) < 0, "the logs do not hold the $what (random part)") if $core;
}
my @tokens = do {
    open my $fh, '<', fixture('received-tokens.txt') or die "received-tokens.txt: $!";
    my %uniq = map { chomp; ($_ => 1) } grep { /^[\w-]+\.[\w-]+\.[\w-]{20,}$/ } <$fh>;
    sort keys %uniq;
};
cmp_ok(scalar @tokens, '>=', 5, 'tokens were received and recorded (' . scalar(@tokens) . ')');
my @leaked = grep {
    my $sig = (split /\./)[2] // '';
    index($all_logs, $_) >= 0 || (length $sig && index($all_logs, $sig) >= 0);
} @tokens;
is(scalar @leaked, 0, 'no received token (nor its signature) is in the logs')
    or diag("leaked: $leaked[0]");

# --- one info line per token request ---
my $line = qr/\[runai_token:info\] .*\bgrant=(\S+) principal=(\S+) client=(\S+) remote=(\S+) outcome=(\S+)/;
my @lines = grep { /$line/ } split /\n/, $log;
cmp_ok(scalar @lines, '>=', 6, 'grant lines are logged at info level');
my @fields = map { [ /$line/ ] } @lines;
ok((grep { $_->[0] eq 'app_token' && $_->[1] eq 'app-bcrypt' && $_->[2] eq 'app-bcrypt'
           && $_->[3] eq '127.0.0.1' && $_->[4] eq 'granted' } @fields),
   'app_token granted: grant, principal, client, remote, outcome');
ok((grep { $_->[0] eq 'password' && $_->[1] eq 'carol' && $_->[2] eq 'log-test-cli'
           && $_->[4] eq 'granted' } @fields), 'password granted, with its client');
ok((grep { $_->[0] eq 'password' && $_->[1] eq 'alice' && $_->[4] eq 'invalid_credentials' } @fields),
   'wrong password: outcome=invalid_credentials');
ok((grep { $_->[0] eq 'password' && $_->[1] eq 'nobody-here' && $_->[4] eq 'invalid_credentials' }
    @fields), 'unknown user: outcome=invalid_credentials');
ok((grep { $_->[4] eq 'bad_request' } @fields), 'malformed request: outcome=bad_request');
ok((grep { $_->[1] eq 'app-md5' && $_->[4] eq 'granted' } @fields), 'legacy apptoken is logged');
is(scalar(grep { $_->[1] eq $marker } @fields), 1, 'exactly one line for one request');
is(scalar(grep { /\Q$marker\E/ } split /\n/, $log), 1, 'and no other line names its principal');
ok(scalar(grep { /\[runai_token:error\]/ } split /\n/, $log),
   'the failing provider is logged at error level (the answer has no detail)');

# --- warnings: at start for key files, at request time for claims ---
my @warn = grep { /\[runai_token:warn\]/ } split /\n/, $log;
sub warned { my $re = shift; return grep { /$re/ } @warn }
ok(scalar(warned(qr/ec384\.pem/)), 'a group-readable private key (ec384.pem) is warned about');
is(join("\n", warned(qr/rsa2\.pub\.pem/)), '',
   'a public key file (rsa2.pub.pem) readable by others is not warned about');
ok(scalar(warned(qr/badnumber/)), 'a claim that is not a number is warned about');
ok(scalar(warned(qr/badbool/)), 'a claim that is not a boolean is warned about');

done_testing();

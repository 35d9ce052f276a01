# Client rules (RFC 6749 §2.3, §4.1.3) on an httpd of its own: a client
# that has a secret, because the application provider knows it or its
# RunaiTokenClient line says confidential, proves it for every grant that
# names it or redeems a code or refresh token issued to it; a public client
# names itself when it redeems a code in the OAuth dialect (the Run:ai JSON
# dialect's exchange_token does not need it); PKCE required per client
# (pkce) and for a whole server (RunaiTokenRequirePKCE On); a refresh
# refused for its client leaves the session as it was.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Test::More;
use File::Temp qw(tempdir);
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use RunaiHosts;

my $JSON = JSON::PP->new->canonical;
my $cb = 'https://app.example.test/cb';
my $dir = tempdir('runai-clients-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $dir;
my %secret = ('conf-client' => 'conf-secret-' . rand(), 'svc-public' => 'svc-secret-' . rand());
my $password = 'pw-' . rand();
note_secret($_, $secret{$_}) for keys %secret;
note_secret('password', $password);

htpasswd_file("$dir/apps", %secret);
htpasswd_file("$dir/users", dana => $password);

sub site {
    my $extra = shift // '';
    return <<"EOF";
RunaiTokenIssuer https://clients.example.test
RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
# conf-client: the application provider holds its secret
RunaiTokenClient conf-client $cb
RunaiTokenClient decl-client confidential $cb
RunaiTokenClient pub-client public $cb
RunaiTokenClient svc-public public $cb
RunaiTokenClient pkce-client pkce $cb
$extra
<AuthnProviderAlias file client-apps>
    AuthUserFile "$dir/apps"
</AuthnProviderAlias>
<AuthnProviderAlias file client-users>
    AuthUserFile "$dir/users"
</AuthnProviderAlias>
<Location />
    SetHandler runai-token
    RunaiTokenAppProvider client-apps
    RunaiTokenPasswordProvider client-users
</Location>
<Location /api/v1/authorize>
    AuthType Basic
    AuthName "clients"
    AuthBasicProvider client-users
    Require valid-user
</Location>
EOF
}

my $h = start_httpd(name => 'clients', site => site());
my $p = $h->{port};

sub form_call {
    my($body, %o) = @_;
    my $form = join '&', map { url_encode($_) . '=' . url_encode($body->{$_}) } sort keys %$body;
    return http_request(port => $p, method => 'POST', path => '/api/v1/token', body => $form,
                        type => 'application/x-www-form-urlencoded', %o);
}
sub basic { return (headers => [Authorization => 'Basic ' . encode_base64("$_[0]:$_[1]", '')]) }
sub body_of { my $r = shift; return reply_of($r) // {} }
sub code_for {
    my($client, %q) = @_;
    my $res = authorize_call($p, 'dana', $password, { client_id => $client, redirect_uri => $cb, %q });
    return ($res, code_of($res));
}
sub oauth_is {
    my($res, $status, $error, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($res->code, $status, "$name: $status") or diag($res->content);
    is(body_of($res)->{error}, $error, "$name: $error");
}
sub claims_of {
    my $jwt = shift // '';
    my(undef, $payload) = split /\./, $jwt;
    $payload //= '';
    $payload =~ tr/-_/+\//;
    return eval { $JSON->decode(MIME::Base64::decode_base64($payload)) } // {};
}

# --- a client the application provider knows: its secret is required ---
{
    my(undef, $code) = code_for('conf-client');
    oauth_is(form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb }),
             401, 'invalid_client', 'conf-client code, no client_id, no secret');
    oauth_is(form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb,
                         client_id => 'conf-client' }, basic('conf-client', $secret{'conf-client'})),
             400, 'invalid_grant', 'conf-client code after an anonymous try: spent');
    (undef, $code) = code_for('conf-client');
    oauth_is(form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb,
                         client_id => 'conf-client' }),
             401, 'invalid_client', 'conf-client code, client_id without secret');
    (undef, $code) = code_for('conf-client');
    oauth_is(form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb },
                       basic('conf-client', 'wrong')),
             401, 'invalid_client', 'conf-client code, wrong secret');
    # the wrong secret was refused before the code was looked up
    my $res = form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb },
                        basic('conf-client', $secret{'conf-client'}));
    is($res->code, 200, 'conf-client code after a wrong secret, with the right one: 200')
        or diag($res->content);
    (undef, $code) = code_for('conf-client');
    my $json = token_call($p, { grantType => 'exchange_token', code => $code, redirectUri => $cb });
    is($json->code, 401, 'conf-client code in the JSON dialect without clientSecret: 401');
    (undef, $code) = code_for('conf-client');
    $json = token_call($p, { grantType => 'exchange_token', code => $code, redirectUri => $cb,
                             clientID => 'conf-client', clientSecret => $secret{'conf-client'} });
    is($json->code, 200, 'conf-client code in the JSON dialect with clientSecret: 200')
        or diag($json->content);
}

# --- the password grant naming a client with a secret ---
{
    oauth_is(form_call({ grant_type => 'password', username => 'dana', password => $password,
                         client_id => 'conf-client' }),
             401, 'invalid_client', 'password grant naming conf-client without its secret');
    my $res = password_login($p, 'dana', $password, clientID => 'conf-client');
    is($res->code, 401, 'JSON password grant naming conf-client without its secret: 401');
    $res = form_call({ grant_type => 'password', username => 'dana', password => $password },
                     basic('conf-client', $secret{'conf-client'}));
    is($res->code, 200, 'password grant with conf-client authenticated: 200') or diag($res->content);
    my $b = body_of($res);
    my $id = claims_of($b->{id_token});
    is($id->{aud}, 'conf-client', 'its id token: aud conf-client');
    is($id->{azp}, 'conf-client', 'its id token: azp conf-client');

    # a refresh of that session needs the secret too, and a refused one
    # leaves the token good for the client
    my $rt = $b->{refresh_token};
    oauth_is(form_call({ grant_type => 'refresh_token', refresh_token => $rt }),
             401, 'invalid_client', 'refresh of a conf-client session without its secret');
    $res = refresh_call($p, $rt);
    is($res->code, 401, 'JSON refresh of a conf-client session without its secret: 401');
    $res = form_call({ grant_type => 'refresh_token', refresh_token => $rt },
                     basic('conf-client', $secret{'conf-client'}));
    is($res->code, 200, 'the same refresh token with the secret: 200 (the refusals spent nothing)')
        or diag($res->content);
}

# --- declared confidential: refused without a secret even unknown to the provider ---
{
    my(undef, $code) = code_for('decl-client');
    my $res = token_call($p, { grantType => 'exchange_token', code => $code, redirectUri => $cb });
    is($res->code, 401, 'decl-client (confidential) code without a secret: 401');
    $res = password_login($p, 'dana', $password, clientID => 'decl-client');
    is($res->code, 401, 'password grant naming decl-client without a secret: 401');
}

# --- public clients ---
{
    my(undef, $code) = code_for('pub-client');
    my $res = token_call($p, { grantType => 'exchange_token', code => $code, redirectUri => $cb });
    is($res->code, 200, 'pub-client code in the JSON dialect without clientID: 200 (the Run:ai UI)')
        or diag($res->content);
    is(claims_of(body_of($res)->{idToken})->{aud}, 'pub-client', 'its id token: aud pub-client');
    (undef, $code) = code_for('pub-client');
    oauth_is(form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb }),
             400, 'invalid_request', 'pub-client code in a form without client_id');
    (undef, $code) = code_for('pub-client');
    $res = form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb,
                       client_id => 'pub-client' });
    is($res->code, 200, 'pub-client code in a form with client_id: 200') or diag($res->content);
    my $rt = body_of($res)->{refresh_token};
    $res = form_call({ grant_type => 'refresh_token', refresh_token => $rt });
    is($res->code, 200, 'a pub-client session refreshes without client authentication');
    (undef, $code) = code_for('svc-public');
    $res = form_call({ grant_type => 'authorization_code', code => $code, redirect_uri => $cb,
                       client_id => 'svc-public' });
    is($res->code, 200, 'svc-public: declared public although the provider knows it: no secret asked')
        or diag($res->content);
}

# --- PKCE required for one client ---
{
    my($res) = code_for('pkce-client');
    is($res->code, 400, 'pkce-client without code_challenge: 400');
    ok(!defined $res->header('Location'), 'pkce-client without code_challenge: no redirect');
    my($v, $ch) = pkce_pair();
    ($res) = code_for('pkce-client', code_challenge => $ch, code_challenge_method => 'S256');
    is($res->code, 302, 'pkce-client with a challenge: 302');
    ($res) = code_for('pub-client');
    is($res->code, 302, 'another client without a challenge: 302 while the server does not require it');
}
stop_httpd($h);

# --- PKCE required for every client of a server ---
{
    my $h2 = start_httpd(name => 'clients-pkce', site => site('RunaiTokenRequirePKCE On'));
    $p = $h2->{port};
    my($res) = code_for('pub-client');
    is($res->code, 400, 'RunaiTokenRequirePKCE On: a code without a challenge is refused');
    my($v, $ch) = pkce_pair();
    ($res) = code_for('pub-client', code_challenge => $ch, code_challenge_method => 'S256');
    is($res->code, 302, 'RunaiTokenRequirePKCE On: with a challenge: 302');
    stop_httpd($h2);
    assert_logs_clean('client rules', $h->{error_log}, $h->{access_log}, $h2->{error_log}, $h2->{access_log});
}

done_testing();

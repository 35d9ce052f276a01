# The hostile input battery (issue 6, deliverable 4) against the
# Apache::Test server: the "hostile" virtual host (default 16 KiB body
# limit, raised httpd request-line and header limits, registered clients,
# an authorize location, a guarded location with RSA, EC and HMAC keys,
# RunaiTokenThrottle 1 600) and "hostilebig" (RunaiTokenMaxBody 2 MiB),
# see t/conf/hostile.conf.in.
#
# Sent: random bytes (fixed seed), JSON nested 10,000 deep, huge numbers,
# invalid UTF-8, NUL inside strings (raw and \u0000), 1 MB keys, bodies at
# the limit and one byte over, chunked bodies without a length, broken
# form escapes, CR/LF, #, @, //, \ and userinfo tricks in redirect_uri and
# state, tokens with 5 or empty segments, 100 KB headers, kid path
# traversal, alg none and HS256 confusion, huge query strings on the legacy
# routes, and malformed requests aimed at a refresh token and a code.
#
# Asserted: each answer is the expected client error (or success), never a
# 5xx (a 503 only with the store-unavailable body); no connection dies
# without an answer; no redirect to anything but a registered URI byte for
# byte, no header injection; afterwards no child died (error_log), the
# refresh tokens and codes minted before the battery still work (nothing
# malformed rotated or spent them), and no malformed request moved a
# throttle counter (one failure throttles a principal on this host, ten an
# address: the checks at the end would show a single one).
#
# Every request leaves from 127.3.N.x (N from the PID): the address
# counters of the rest of the suite (127.0.0.1) are never touched.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time sleep);
use RunaiTest;
use RunaiHosts;

$SIG{PIPE} = 'IGNORE';
my $T0 = time;
my $s = load_secrets();
my $H = vhost_port('hostile');
my $BIG = vhost_port('hostilebig');
my $MAIN = vhost_port('main');
my $OIDC = vhost_port('oidc');
my $SESS = vhost_port('sess');
my $issuer = "http://127.0.0.1:$H/realms/hostile";
my $error_log = catfile(Apache::Test::vars('t_logs'), 'error_log');
my $log_start = -s $error_log // 0;
my $LIMIT = 16384;
my $BIG_LIMIT = 2097152;
my $cb = 'https://app.example.test/callback';
my $cbq = 'https://app.example.test/cb?tenant=7';
my @REGISTERED = ($cb, $cbq, 'http://127.0.0.1:8000/cb');
my $JSON = JSON::PP->new->canonical->utf8;
my $net = 1 + $$ % 250;
sub addr { "127.3.$net.$_[0]" }
# malformed requests leave from MAL, well-formed ones from OK
my($MAL, $OK, $MINT) = (1, 3, 200);
my $tag = "$$-" . int(time);
my $ghost = "ghost-$tag";          # a principal only malformed requests name
my $pw_bob = $s->{users}{bob};
my $app_secret = $s->{apps}{'app-md5'};
my $WRONG = $s->{wrong};

# --- requests and the record of every answer ------------------------------------

my @answers;    # [name, status, write error, body head]

sub hit {
    my($name, %a) = @_;
    $a{port} //= $H;
    $a{local_addr} //= addr($MAL);
    $a{timeout} //= 30;
    my $res = raw_request(%a);
    # an answer without a status line (httpd answers an HTTP/0.9 request so)
    $res->code(0) unless defined $res->code && $res->code =~ /^\d+$/;
    push @answers, [$name, $res->code, scalar $res->header('X-Test-Write-Error'),
                    substr($res->content // '', 0, 200)];
    return $res;
}

sub why {
    my $res = shift;
    my $w = $res->header('X-Test-Write-Error');
    return 'got ' . ($res->code // 'no status') . ' ' . ($res->message // '') . ': '
        . substr($res->content // '', 0, 300) . ($w ? " [$w]" : '');
}

# expect(NAME, STATUS or [STATUS...], request arguments)
sub expect {
    my($name, $want, %a) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = hit($name, %a);
    my @want = ref $want ? @$want : ($want);
    ok((grep { $res->code == $_ } @want), "$name: " . join(' or ', @want)) or diag(why($res));
    return $res;
}

sub post_body {
    my($name, $want, $body, %a) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    return expect($name, $want, method => 'POST', path => $a{path} // '/api/v1/token',
                  body => $body, %a);
}

# A request with a chunked body (no Content-Length), sent in pieces of at
# most $piece bytes.
sub chunked_bytes {
    my(%a) = @_;
    my $piece = $a{piece} || 4000;
    my $port = $a{port} // $H;
    my $bytes = "POST " . ($a{path} // '/api/v1/token') . " HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
        . "Connection: close\r\nContent-Type: " . ($a{type} // 'application/json') . "\r\n"
        . "Transfer-Encoding: chunked\r\n\r\n";
    my $body = $a{body};
    for (my $off = 0; $off < length $body; $off += $piece) {
        my $c = substr($body, $off, $piece);
        $bytes .= sprintf("%x", length $c) . ($a{ext} // '') . "\r\n$c\r\n";
    }
    return $bytes . "0\r\n\r\n";
}

# Bodies: JSON text of a hash (keys sorted), padded with blanks to a length.
sub jbody { $JSON->encode($_[0]) }
sub pad_to {
    my($text, $len) = @_;
    die "body already longer than $len" if length($text) > $len;
    return $text . (' ' x ($len - length $text));
}
sub bob_wrong  { { grantType => 'password', username => 'bob', password => $WRONG, @_ } }
sub ghost_wrong { { grantType => 'password', username => $ghost, password => $WRONG, @_ } }
sub app_right  { { appID => 'app-md5', appSecret => $app_secret, @_ } }
my $form_app = 'grant_type=client_credentials&client_id=app-md5&client_secret=' . url_encode($app_secret);
my $form_bob_wrong = 'grant_type=password&username=bob&password=' . url_encode($WRONG);

# --- before the battery: clean counters, then the state the battery must not touch ---

{
    # a success on sess (limit 1000) clears what earlier tests left for these principals
    my $res = password_login($SESS, 'bob', $pw_bob, local_addr => addr(250));
    is($res->code, 200, "bob's throttle count cleared by a success on sess") or diag(why($res));
    reply_of($res);
    $res = token_call($SESS, app_right(), local_addr => addr(250));
    is($res->code, 200, "app-md5's throttle count cleared by a success on sess") or diag(why($res));
    reply_of($res);
}

my %R;    # refresh tokens minted before the battery, by purpose
for my $purpose (qw(json form legacy_nul legacy_dup)) {
    my $res = password_login($H, 'bob', $pw_bob, local_addr => addr($MINT));
    is($res->code, 200, "before: password grant for the $purpose refresh token") or diag(why($res));
    $R{$purpose} = (reply_of($res) || {})->{refreshToken} // "none-$purpose";
}
my %C;    # codes minted before the battery
for my $purpose (qw(json form legacy_nul legacy_ruri)) {
    my $res = authorize_call($H, 'bob', $pw_bob, { client_id => 'webapp', redirect_uri => $cb });
    is($res->code, 302, "before: authorize for the $purpose code") or diag(why($res));
    $C{$purpose} = code_of($res) // "none-$purpose";
}
my $access;
{
    my $res = token_call($H, app_right(), local_addr => addr($OK));
    is($res->code, 200, 'before: an app token of the hostile host') or diag(why($res));
    $access = (reply_of($res) || {})->{accessToken} // 'none';
}

# --- random bytes (fixed seed) -----------------------------------------------------------

{
    srand(0x5eed);
    my @unexpected;
    my %dist;
    for my $i (1 .. 300) {
        my $len = $i <= 10 ? $i - 1 : int(rand(700));
        my $body = join '', map { chr int rand 256 } 1 .. $len;
        my $form = $i % 2;
        my $legacy = $i % 7 == 0;
        my $res = hit("random body $i", method => 'POST',
                      path => $legacy ? '/v1/k8s/auth/oauth/apptoken' : '/api/v1/token', body => $body,
                      type => $form ? 'application/x-www-form-urlencoded' : 'application/json');
        my $want = $legacy && $form ? 415 : 400;
        $dist{ $res->code }++;
        push @unexpected, "random body $i ($len bytes, " . ($form ? 'form' : 'json') . "): " . why($res)
            unless $res->code == $want;
    }
    is(scalar @unexpected, 0, '300 random-byte bodies (seed 0x5eed): 400 each (415 for a form on the JSON-only route)')
        or diag(join "\n", @unexpected[0 .. ($#unexpected > 9 ? 9 : $#unexpected)]);
    diag('random bodies: ' . join(', ', map { "$_ x $dist{$_}" } sort keys %dist));

    my @bad;
    for my $i (1 .. 100) {
        my $tok;
        if ($i % 2) {
            my @alpha = ('A' .. 'Z', 'a' .. 'z', 0 .. 9, '-', '_', '.', '.', '=', '+', '/');
            $tok = join '', map { $alpha[rand @alpha] } 1 .. 1 + int rand 400;
        }
        else {
            # any byte but CR, LF and NUL (httpd itself refuses those in a header)
            $tok = join '', map { my $c; do { $c = int rand 256 } while ($c == 10 || $c == 13 || $c == 0); chr $c }
                1 .. 1 + int rand 300;
        }
        my $res = hit("random bearer token $i", method => 'GET', path => '/guard/',
                      headers => [Authorization => "Bearer $tok"]);
        push @bad, "random bearer token $i: " . why($res) unless $res->code == 401 || $res->code == 400;
    }
    is(scalar @bad, 0, '100 random bearer tokens on the guard: 401 (or 400 from httpd for bytes it refuses)')
        or diag(join "\n", @bad[0 .. ($#bad > 9 ? 9 : $#bad)]);

    my @bad_q;
    for my $i (1 .. 60) {
        my $q = join '', map { sprintf '%%%02X', int rand 256 } 1 .. int rand 200;
        my($path, $method) = $i % 3 == 0 ? ("/api/v1/authorize?client_id=webapp&state=$q", 'GET')
                           : $i % 3 == 1 ? ("/v1/k8s/auth/oauth/tokens/refresh?refresh_token=$q", 'POST')
                           :               ("/v1/k8s/auth/token/exchange?redirect_uri=$q&code=$q", 'GET');
        my $res = hit("random query $i", method => $method, path => $path,
                      headers => [Authorization => basic_auth('bob', $pw_bob)]);
        push @bad_q, "random query $i ($path): " . why($res) unless $res->code == 400 || $res->code == 401;
    }
    is(scalar @bad_q, 0, '60 random percent-encoded queries on authorize and the legacy routes: 400 or 401')
        or diag(join "\n", @bad_q[0 .. ($#bad_q > 9 ? 9 : $#bad_q)]);
}

# --- JSON nested 10,000 deep ------------------------------------------------------------------

{
    my $d = 10_000;
    my %deep = (
        'arrays'           => ('[' x $d) . (']' x $d),
        'objects'          => ('{"a":' x $d) . '1' . ('}' x $d),
        'inside appID'     => '{"appSecret":"x","appID":' . ('[' x $d) . (']' x $d) . '}',
        'inside an unknown key' => '{"grantType":"password","username":"bob","password":"' . $WRONG . '","x":'
                                   . ('{"a":[' x ($d / 2)) . (']}' x ($d / 2)) . '}',
        'unclosed'         => '{"x":' . ('[' x $d),
    );
    for my $name (sort keys %deep) {
        post_body("JSON nested $d deep ($name), 2 MiB limit", 400, $deep{$name}, port => $BIG);
        post_body("JSON nested $d deep ($name), default limit", length $deep{$name} > $LIMIT ? 413 : 400, $deep{$name});
    }
    post_body("JSON nested $d deep on the legacy apptoken route", 400, $deep{arrays}, port => $BIG,
              path => '/v1/k8s/auth/oauth/apptoken');
    # 1,000 deep is within jansson's limit: the unknown key is ignored
    my $ok_deep = substr(jbody(app_right()), 0, -1) . ',"x":' . ('[' x 1000) . (']' x 1000) . '}';
    post_body('JSON nested 1,000 deep in an unknown key, right secret', [200, 400], $ok_deep,
              port => $BIG, local_addr => addr($OK));
}

# --- huge numbers -------------------------------------------------------------------------------

{
    my $bw = substr(jbody(bob_wrong()), 0, -1);
    for my $n ('1e400', '-1e400', '1E+99999', '99999999999999999999999', '-99999999999999999999999',
               '18446744073709551616', '9' x 5000) {
        my $short = length $n > 30 ? substr($n, 0, 10) . '... (' . length($n) . ' digits)' : $n;
        post_body("huge number $short in an unknown key", 400, "$bw,\"n\":$n}");
        post_body("huge number $short as the password", 400,
                  '{"grantType":"password","username":"bob","password":' . $n . '}');
        post_body("huge number $short as the whole body", 400, $n);
    }
    post_body('huge number as appID', 400, qq({"appID":99999999999999999999999,"appSecret":"$WRONG"}));
    # representable, if extreme: the request is well formed (right secret)
    my $ar = substr(jbody(app_right()), 0, -1);
    for my $n ('1e-400', '1e308', '-0', '0.' . ('0' x 5000) . '1', '9223372036854775807', '-9223372036854775808') {
        my $short = length $n > 30 ? substr($n, 0, 10) . '...' : $n;
        post_body("extreme but valid number $short in an unknown key, right secret", 200, "$ar,\"n\":$n}",
                  local_addr => addr($OK));
    }
}

# --- invalid UTF-8 ------------------------------------------------------------------------------------

{
    my %bad = (
        'overlong /'           => "\xC0\xAF",
        'overlong NUL'         => "\xC0\x80",
        'overlong 3 bytes'     => "\xE0\x80\xAF",
        'surrogate D800'       => "\xED\xA0\x80",
        'above U+10FFFF'       => "\xF4\x90\x80\x80",
        'lone continuation'    => "\x80",
        'truncated 3-byte'     => "\xE2\x82",
        '5-byte form'          => "\xF8\x88\x80\x80\x80",
        'FF'                   => "\xFF",
        'FE FF'                => "\xFE\xFF",
        'Latin-1 e-acute'      => "\xE9",
    );
    for my $name (sort keys %bad) {
        my $b = $bad{$name};
        post_body("invalid UTF-8 ($name) in the password", 400,
                  qq({"grantType":"password","username":"bob","password":"$WRONG$b"}));
        post_body("invalid UTF-8 ($name) in a key", 400,
                  qq({"grantType":"password","user${b}name":"bob","username":"bob","password":"$WRONG"}));
        post_body("invalid UTF-8 ($name) in the form password", 400, "$form_bob_wrong$b",
                  type => 'application/x-www-form-urlencoded');
        (my $esc = $b) =~ s/(.)/sprintf '%%%02X', ord $1/gse;
        post_body("invalid UTF-8 ($name), percent-encoded, in the form password", 400, "$form_bob_wrong$esc",
                  type => 'application/x-www-form-urlencoded');
        my $res = expect("invalid UTF-8 ($name) in client_id on authorize", 400, method => 'GET',
                         path => "/api/v1/authorize?client_id=web$esc&redirect_uri=" . url_encode($cb),
                         headers => [Authorization => basic_auth('bob', $pw_bob)]);
        ok(!defined $res->header('Location'), "invalid UTF-8 ($name) in client_id: no redirect");
    }
    post_body('a body that ends inside a UTF-8 sequence', 400,
              qq({"grantType":"password","username":"bob","password":"$WRONG"}\xE2\x82));
    for my $u ('\\ud800', '\\udc00', '\\ud800\\u0041', '\\udbff') {
        post_body("lone surrogate escape $u in the password", 400,
                  qq({"grantType":"password","username":"bob","password":"$WRONG$u"}));
    }
    post_body('UTF-16 body under charset=utf-16', 400,
              join('', map { "$_\0" } split //, jbody(bob_wrong())), type => 'application/json; charset=utf-16');
    post_body('a byte order mark before the JSON, right secret', [200, 400], "\xEF\xBB\xBF" . jbody(app_right()),
              local_addr => addr($OK));
}

# --- NUL inside strings ---------------------------------------------------------------------------------

{
    post_body('raw NUL inside the password', 400, qq({"grantType":"password","username":"bob","password":"WR\0$WRONG"}));
    post_body('raw NUL inside the username', 400, qq({"grantType":"password","username":"bob\0admin","password":"$WRONG"}));
    post_body('raw NUL after the object', 400, jbody(bob_wrong()) . "\0");
    post_body('raw NUL before the object', 400, "\0" . jbody(bob_wrong()));
    post_body('\\u0000 inside the password', 400, qq({"grantType":"password","username":"bob","password":"$WRONG\\u0000"}));
    post_body('\\u0000 inside the username', 400, qq({"grantType":"password","username":"bob\\u0000admin","password":"$WRONG"}));
    post_body('\\u0000 inside an unknown key', 400, qq({"grantType":"password","x\\u0000":1,"username":"bob","password":"$WRONG"}));
    post_body('\\u0000 inside a known key', 400, qq({"grantType":"password","username\\u0000":"x","username":"bob","password":"$WRONG"}));
    post_body('\\u0000 inside appID (legacy apptoken)', 400, qq({"id":"app-md5\\u0000","name":"x","secret":"$WRONG"}),
              path => '/v1/k8s/auth/oauth/apptoken');
    for my $f ("password=WR%00ONG", "pass%00word=x", "password=\0", "password=a\0b") {
        (my $shown = $f) =~ s/\0/<NUL>/g;
        post_body("NUL in a form body ($shown)", 400, "grant_type=password&username=bob&$f",
                  type => 'application/x-www-form-urlencoded');
    }
    for my $p (['state', 'a%00b'], ['client_id', 'webapp%00'], ['redirect_uri', url_encode($cb) . '%00'],
               ['nonce', 'n%00'], ['code_challenge', ('A' x 43) . '%00']) {
        my $q = "client_id=webapp&redirect_uri=" . url_encode($cb) . "&$p->[0]=$p->[1]";
        $q = "redirect_uri=" . url_encode($cb) . "&$p->[0]=$p->[1]" if $p->[0] eq 'client_id';
        $q = "client_id=webapp&$p->[0]=$p->[1]" if $p->[0] eq 'redirect_uri';
        my $res = expect("%00 in $p->[0] on authorize", 400, method => 'GET', path => "/api/v1/authorize?$q",
                         headers => [Authorization => basic_auth('bob', $pw_bob)]);
        ok(!defined $res->header('Location'), "%00 in $p->[0] on authorize: no redirect");
    }
    # junk tokens here; the ones aimed at live tokens come further down
    expect('%00 in a junk refresh_token (legacy refresh)', [400, 401], method => 'POST',
           path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=junk%00junk');
    expect('%00 in a junk code (legacy exchange)', [400, 401], method => 'GET',
           path => '/v1/k8s/auth/token/exchange?redirect_uri=' . url_encode($cb) . '&code=junk%00junk');
}

# --- 1 MB keys -------------------------------------------------------------------------------------

{
    my $k = 'k' x 1_048_576;
    my $ar = substr(jbody(app_right()), 1);
    post_body('a 1 MB key (2 MiB limit), right secret', 200, qq({"$k":"v",$ar), port => $BIG, local_addr => addr($OK));
    post_body('a 1 MB key of multibyte UTF-8 (2 MiB limit), right secret', 200,
              '{"' . ("\xC3\xA9" x 400_000) . qq(":"v",$ar), port => $BIG, local_addr => addr($OK));
    post_body('two 900 KB keys that differ in case only (2 MiB limit)', 400,
              '{"' . ('k' x 900_000) . '":1,"' . ('K' x 900_000) . qq(":2,$ar), port => $BIG);
    post_body('a 1 MB value as appID (2 MiB limit)', 401,
              '{"appID":"' . ('a' x 1_048_576) . qq(","appSecret":"$WRONG"}), port => $BIG, local_addr => addr($OK));
    post_body('a 1 MB key in a form body (2 MiB limit), right secret', 200, "$k=v&$form_app",
              type => 'application/x-www-form-urlencoded', port => $BIG, local_addr => addr($OK));
    post_body('100,000 small keys (2 MiB limit), right secret', 200,
              '{' . join(',', map { qq("k$_":$_) } 1 .. 100_000) . ",$ar", port => $BIG, local_addr => addr($OK));
    my $res = hit('a 1 MB key, chunked without a length (2 MiB limit), right secret', port => $BIG,
                  local_addr => addr($OK), bytes => chunked_bytes(port => $BIG, body => qq({"$k":"v",$ar), piece => 65536));
    is($res->code, 200, 'a 1 MB key, chunked without a length (2 MiB limit), right secret: 200') or diag(why($res));

    my $bw = substr(jbody(bob_wrong()), 1);
    post_body('a 1 MB key at the default limit', 413, qq({"$k":"v",$bw));
    post_body('a 1 MB key in a form body at the default limit', 413, "$k=v&$form_bob_wrong",
              type => 'application/x-www-form-urlencoded');
    $res = hit('a 1 MB key, chunked without a length, at the default limit',
               bytes => chunked_bytes(body => qq({"$k":"v",$bw), piece => 65536));
    is($res->code, 413, 'a 1 MB key, chunked without a length, at the default limit: 413') or diag(why($res));
}

# --- bodies at the limit and one byte over; chunked bodies --------------------------------------------

{
    my $at = pad_to(jbody(app_right()), $LIMIT);
    my $over = pad_to(jbody(bob_wrong()), $LIMIT + 1);
    is(length($at), $LIMIT, "the body at the limit is $LIMIT bytes");
    post_body("JSON body of exactly $LIMIT bytes, right secret", 200, $at, local_addr => addr($OK));
    post_body("JSON body of $LIMIT + 1 bytes", 413, $over);
    my $fat = "$form_app&pad=" . ('x' x ($LIMIT - length("$form_app&pad=")));
    is(length($fat), $LIMIT, "the form body at the limit is $LIMIT bytes");
    post_body("form body of exactly $LIMIT bytes, right secret", 200, $fat, type => 'application/x-www-form-urlencoded',
              local_addr => addr($OK));
    post_body("form body of $LIMIT + 1 bytes", 413,
              "$form_bob_wrong&pad=" . ('x' x ($LIMIT + 1 - length("$form_bob_wrong&pad="))),
              type => 'application/x-www-form-urlencoded');
    my $legacy = jbody({ id => 'app-md5', name => 'x', secret => $app_secret });
    post_body("legacy apptoken body of exactly $LIMIT bytes, right secret", 200, pad_to($legacy, $LIMIT),
              path => '/v1/k8s/auth/oauth/apptoken', local_addr => addr($OK));
    post_body("legacy apptoken body of $LIMIT + 1 bytes", 413,
              pad_to(jbody({ id => 'app-md5', name => 'x', secret => $WRONG }), $LIMIT + 1),
              path => '/v1/k8s/auth/oauth/apptoken');
    post_body('2 MiB limit: a body of exactly 2 MiB, right secret', 200, pad_to(jbody(app_right()), $BIG_LIMIT),
              port => $BIG, local_addr => addr($OK));
    post_body('2 MiB limit: a body of 2 MiB + 1', 413, pad_to(jbody(app_right()), $BIG_LIMIT + 1), port => $BIG);

    # chunked and a Content-Length: httpd drops the length and reads the
    # chunks (RFC 9112), so the request is well formed: right secret
    my $ar = jbody(app_right());
    my $r0 = hit('chunked and a Content-Length, right secret', local_addr => addr($OK), bytes =>
        "POST /api/v1/token HTTP/1.1\r\nHost: 127.0.0.1:$H\r\nConnection: close\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n" . sprintf('%x', length $ar) . "\r\n$ar\r\n0\r\n\r\n");
    ok($r0->code == 200 || $r0->code == 400, 'chunked and a Content-Length, right secret: 200 or 400') or diag(why($r0));
    my %chunked = (
        'small, chunked without a length, right secret'             => [200, jbody(app_right()), 7, $OK],
        "exactly $LIMIT bytes chunked, right secret"                => [200, $at, 1000, $OK],
        "exactly $LIMIT bytes in one chunk, right secret"           => [200, $at, $LIMIT, $OK],
        "$LIMIT + 1 bytes chunked"                                  => [413, $over, 1000, $MAL],
        "$LIMIT + 1 bytes in one chunk"                             => [413, $over, $LIMIT + 1, $MAL],
        '100 KB chunked'                                            => [413, pad_to(jbody(bob_wrong()), 102_400), 8192, $MAL],
    );
    for my $name (sort keys %chunked) {
        my($want, $body, $piece, $from) = @{ $chunked{$name} };
        my $res = hit($name, local_addr => addr($from), bytes => chunked_bytes(body => $body, piece => $piece));
        is($res->code, $want, "$name: $want") or diag(why($res));
    }
    my $res = hit('chunked with chunk extensions, right secret', local_addr => addr($OK),
                  bytes => chunked_bytes(body => jbody(app_right()), piece => 10, ext => ';x=1'));
    is($res->code, 200, 'chunked with chunk extensions, right secret: 200') or diag(why($res));
    my $head = "POST /api/v1/token HTTP/1.1\r\nHost: 127.0.0.1:$H\r\nConnection: close\r\n"
             . "Content-Type: application/json\r\n";
    my $bw = jbody(bob_wrong());
    my %raw = (
        'a chunk size that is not hex'       => [[400], "${head}Transfer-Encoding: chunked\r\n\r\nzz\r\n$bw\r\n0\r\n\r\n"],
        'a negative chunk size'              => [[400], "${head}Transfer-Encoding: chunked\r\n\r\n-1\r\n$bw\r\n0\r\n\r\n"],
        'a chunk size of 2^64 - 1'           => [[400, 413], "${head}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n$bw\r\n0\r\n\r\n"],
        'a chunk size of 2^68'               => [[400, 413], "${head}Transfer-Encoding: chunked\r\n\r\n100000000000000000\r\n$bw\r\n0\r\n\r\n"],
        'a Content-Length of 10^20'          => [[400, 413], "${head}Content-Length: 100000000000000000000\r\n\r\n$bw"],
        'a negative Content-Length'          => [[400], "${head}Content-Length: -1\r\n\r\n$bw"],
        'a Content-Length of 1 MB, no body'  => [[413], "${head}Content-Length: 1048576\r\n\r\n"],
        'two different Content-Lengths'      => [[400], "${head}Content-Length: " . length($bw) . "\r\nContent-Length: 5\r\n\r\n$bw"],
    );
    for my $name (sort keys %raw) {
        my($want, $bytes) = @{ $raw{$name} };
        my $r = hit($name, bytes => $bytes, timeout => 15);
        ok((grep { $r->code == $_ } @$want), "$name: " . join(' or ', @$want)) or diag(why($r));
    }
}

# --- form bodies with broken escapes ----------------------------------------------------------------------

{
    for my $bad ('%', '%z', '%zz', '%0', '%G0', '%%41', '%u0041', '%2', '%C3%28', '%ED%A0%80', '%FF', '%00',
                 '%E2%82', '%F4%90%80%80', '%C0%AF') {
        post_body("form password ending in $bad", 400, "$form_bob_wrong$bad", type => 'application/x-www-form-urlencoded');
        post_body("form parameter name with $bad", 400, "$form_bob_wrong&x$bad=1", type => 'application/x-www-form-urlencoded');
    }
    post_body('form body of only separators', 400, '&&&===&&', type => 'application/x-www-form-urlencoded');
    post_body('form body with grant_type twice', 400, "$form_bob_wrong&grant_type=password",
              type => 'application/x-www-form-urlencoded');
    post_body('form body with 20,000 empty pairs', 400, '&' x 20_000, type => 'application/x-www-form-urlencoded',
              port => $BIG);
    post_body('form body that is JSON', 400, jbody(bob_wrong()), type => 'application/x-www-form-urlencoded');
    post_body('JSON body sent as a form to the legacy apptoken route', 415, 'id=app-md5&name=x&secret=y',
              type => 'application/x-www-form-urlencoded', path => '/v1/k8s/auth/oauth/apptoken');
    post_body('a 10 KB Content-Type', 415, jbody(bob_wrong()), type => 'application/' . ('x' x 10_000));
    post_body('Content-Type application/jsonx', 415, jbody(bob_wrong()), type => 'application/jsonx');
    my $huge_basic = 'Basic ' . ('QUJD' x 25_600);
    post_body('a 100 KB Basic Authorization on a form request', [400, 401], $form_bob_wrong,
              type => 'application/x-www-form-urlencoded', headers => [Authorization => $huge_basic]);
    post_body('a Basic Authorization that is not base64', [400, 401], $form_bob_wrong,
              type => 'application/x-www-form-urlencoded', headers => [Authorization => "Basic !!!\x7f==="]);
    post_body('a Basic Authorization of a NUL', [400, 401], $form_bob_wrong,
              type => 'application/x-www-form-urlencoded', headers => [Authorization => 'Basic ' . encode_base64("app-md5\0:x", '')]);
    post_body('a 100 KB bearer token beside a JSON request is ignored, right secret', 200, jbody(app_right()),
              headers => [Authorization => 'Bearer ' . ('a' x 102_400)], local_addr => addr($OK));
}

# --- redirect_uri and state tricks on /api/v1/authorize ------------------------------------------------------

my $basic_bob = basic_auth('bob', $pw_bob);

# The only acceptable redirect: a registered URI byte for byte, then
# ?code= (&code= when it has a query), then optionally &state=.
sub redirect_ok {
    my($loc) = @_;
    return 0 unless defined $loc;
    for my $u (@REGISTERED) {
        my $sep = $u =~ /\?/ ? '&' : '?';
        return 1 if $loc =~ /\A\Q$u$sep\Ecode=[A-Za-z0-9_-]{43}(?:&state=[A-Za-z0-9%._~-]*)?\z/;
    }
    return 0;
}

sub no_injection {
    my($name, $res) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @names = $res->headers->header_field_names;
    ok(!(grep { /^(set-cookie|x-injected|refresh)$/i } @names), "$name: no injected header")
        or diag('headers: ' . join(', ', @names));
    my $bad = grep { my $v = join "\n", $res->header($_); $v =~ /[\r\n]/ } @names;
    ok(!$bad, "$name: no header value holds CR or LF");
}

# authz(NAME, QUERY (raw, already encoded), redirect => 1|0, state => BYTES)
sub authz {
    my($name, $q, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = hit("authorize: $name", method => 'GET', path => "/api/v1/authorize?$q",
                  headers => [Authorization => $basic_bob], local_addr => addr($OK));
    my $loc = $res->header('Location');
    if ($o{redirect}) {
        is($res->code, 302, "authorize: $name: 302") or diag(why($res));
        ok(redirect_ok($loc), "authorize: $name: Location is a registered URI byte for byte + code (+ state)")
            or diag('Location: ' . ($loc // 'none'));
        if (exists $o{state}) {
            my @st = map { $_->[1] } grep { $_->[0] eq 'state' } query_params($loc // '');
            is_deeply(\@st, [$o{state}], "authorize: $name: state comes back exactly, percent-encoded");
            my @codes = grep { $_->[0] eq 'code' } query_params($loc // '');
            is(scalar @codes, 1, "authorize: $name: exactly one code parameter");
        }
    }
    else {
        is($res->code, $o{status} // 400, "authorize: $name: " . ($o{status} // 400)) or diag(why($res));
        ok(!defined $loc, "authorize: $name: no Location") or diag("Location: $loc");
    }
    no_injection("authorize: $name", $res);
    return $res;
}

{
    my $ok_q = 'client_id=webapp&redirect_uri=' . url_encode($cb);
    authz('control: registered redirect_uri', $ok_q, redirect => 1);
    my @refused = (
        "$cb\r\nLocation: https://evil.example/",
        "$cb\r\n",
        "$cb\n",
        "$cb%0d%0a",
        "$cb%0D%0ASet-Cookie:%20a=b",
        "$cb#",
        "$cb#\@evil.example",
        "$cb#https://evil.example/",
        'https://app.example.test@evil.example/callback',
        'https://evil.example@app.example.test/callback',
        'https://evil.example\\@app.example.test/callback',
        "$cb\@evil.example",
        'https://user:pass@app.example.test/callback',
        'https://app.example.test:443/callback',
        'https://app.example.test.evil.example/callback',
        'https://app.example.test/callback.evil.example',
        '//evil.example/callback',
        '//app.example.test/callback',
        'https://app.example.test//evil.example/',
        "$cb//evil.example",
        'https:/\\evil.example/callback',
        'https:\\\\app.example.test\\callback',
        'https://app.example.test\\callback',
        'https://app.example.test/callback/../callback',
        'https://app.example.test/./callback',
        'https://app.example.test/%63allback',
        'HTTPS://app.example.test/callback',
        'https://APP.example.test/callback',
        "$cb/",
        "$cb?",
        "$cb?x=1",
        "$cb ",
        " $cb",
        "$cb\t",
        "$cbq&tenant=8",
        "$cbq#",
        'https://app.example.test/cb?tenant=7%26x=1',
        'https://app.example.test/cb?tenant%3D7',
        'http://app.example.test/callback',
        'javascript:alert(1)//https://app.example.test/callback',
        'data:text/html,https://app.example.test/callback',
        '',
    );
    for my $uri (@refused) {
        (my $shown = $uri) =~ s/([\r\n\t])/sprintf '\\x%02x', ord $1/ge;
        authz("redirect_uri '$shown'", 'client_id=webapp&redirect_uri=' . url_encode($uri), redirect => 0);
    }
    # double-encoded: the module decodes once and compares
    authz('redirect_uri double-encoded', 'client_id=webapp&redirect_uri=' . url_encode(url_encode($cb)), redirect => 0);
    authz('redirect_uri given twice (registered, then evil)',
          "$ok_q&redirect_uri=" . url_encode('https://evil.example/'), redirect => 0);
    authz('redirect_uri given twice (evil, then registered)',
          'client_id=webapp&redirect_uri=' . url_encode('https://evil.example/') . '&redirect_uri=' . url_encode($cb),
          redirect => 0);
    authz('redirect_uri of another client', 'client_id=webapp&redirect_uri=' . url_encode('http://127.0.0.1:8000/cb'),
          redirect => 0);
    authz('unknown client with an evil redirect_uri', 'client_id=evil&redirect_uri=' . url_encode('https://evil.example/'),
          redirect => 0);
    authz('client_id given twice', "$ok_q&client_id=cli", redirect => 0);
    # unencoded characters in the request target (httpd itself refuses a
    # fragment there)
    authz('raw # in the query (evil before it)', 'client_id=webapp&redirect_uri=https://evil.example/#' . $cb,
          redirect => 0);
    authz('raw # in the query (registered before it)', "client_id=webapp&redirect_uri=$cb#\@evil.example",
          redirect => 0);
    authz('raw @ and // in the query', 'client_id=webapp&redirect_uri=https://app.example.test@evil.example//callback',
          redirect => 0);
    authz('raw backslash in the query', 'client_id=webapp&redirect_uri=https://app.example.test\\@evil.example/',
          redirect => 0);
    authz('+ for a blank in redirect_uri', 'client_id=webapp&redirect_uri=' . url_encode($cb) . '+', redirect => 0);

    # state: any bytes but NUL come back percent-encoded, never as headers
    my %states = (
        'CR/LF and a header'     => "a\r\nSet-Cookie: pwn=1\r\nX-Injected: 1",
        'LF only'                => "a\nRefresh: 0; url=https://evil.example/",
        'the text %0d%0a'        => 'a%0d%0aSet-Cookie:%20x=1',
        '# and @'                => "#\@evil.example/#",
        '// and \\'              => '//evil.example\\x',
        '&code= inside'          => 'x&code=AAAA&redirect_uri=https://evil.example/',
        'invalid UTF-8'          => "\xFF\xFE\xC0\xAF",
        'quotes and brackets'    => qq{"'<script>alert(1)</script>},
        '1024 bytes'             => 'S' x 1024,
        'every byte but NUL'     => join('', map { chr } 1 .. 255),
    );
    for my $name (sort keys %states) {
        authz("state with $name", "$ok_q&state=" . url_encode($states{$name}), redirect => 1,
              state => $states{$name});
    }
    authz('state with 1025 bytes', "$ok_q&state=" . ('S' x 1025), redirect => 0);
    authz('state of 100 KB', "$ok_q&state=" . ('S' x 102_400), redirect => 0);
    authz('state with a raw #', "$ok_q&state=abc#def", redirect => 0);
    authz('the registered URI with a query, state with CR/LF',
          'client_id=webapp&redirect_uri=' . url_encode($cbq) . '&state=' . url_encode("x\r\nX-Injected: 1"),
          redirect => 1, state => "x\r\nX-Injected: 1");

    # CR/LF raw in the request line: a bare CR is refused by httpd; a CR/LF
    # or LF ends the line, which then has no protocol: httpd takes it as
    # HTTP/0.9 and answers without any header (status 0 here) or refuses it
    for my $case (["raw CR/LF in state", "state=a\r\nX-Injected: 1"],
                  ["raw LF in redirect_uri", "redirect_uri=$cb\nX-Injected: 1"],
                  ["bare CR in state", "state=a\rX-Injected:%201"]) {
        my $bytes = "GET /api/v1/authorize?client_id=webapp&redirect_uri=" . url_encode($cb) . "&$case->[1] HTTP/1.1\r\n"
                  . "Host: 127.0.0.1:$H\r\nAuthorization: $basic_bob\r\nConnection: close\r\n\r\n";
        my $res = hit("authorize: $case->[0]", bytes => $bytes, local_addr => addr($OK), timeout => 15);
        ok($res->code == 0 || ($res->code >= 400 && $res->code < 500),
           "authorize: $case->[0]: refused with a 4xx (or an HTTP/0.9 answer without headers)") or diag(why($res));
        ok(!defined $res->header('Location'), "authorize: $case->[0]: no redirect");
        no_injection("authorize: $case->[0]", $res);
    }
}

# --- the bearer guard: broken and forged tokens ----------------------------------------------------------------

my %kid = map { $_ => thumbprint($_) } qw(rsa ec256 hmac);

# forge(HEADER (hash or JSON text), CLAIMS (hash or JSON text), HOW, KEY):
# RS256 with rsa.pem and ES256 with ec256.pem unless KEY names another.
my %key_of = (RS256 => 'rsa.pem', ES256 => 'ec256.pem');
sub forge {
    my($header, $claims, $how, $key) = @_;
    return forge_jwt($header, $claims, $how, $key // $key_of{$how});
}

# Claims the hostile host accepts, with overrides; an undef value deletes a claim.
sub good_claims {
    my %c = (iss => $issuer, sub => 'svc-hostile', aud => 'runai', iat => time + 0, exp => time + 300, @_);
    defined $c{$_} or delete $c{$_} for keys %c;
    return \%c;
}
my $rs_header = { alg => 'RS256', typ => 'JWT', kid => $kid{rsa} };

sub guard {
    my($name, $token, $want, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $res = hit("guard: $name", method => 'GET', path => '/guard/', port => $o{port} // $H,
                  headers => [Authorization => $o{raw_auth} // "Bearer $token"], local_addr => addr($OK));
    my @want = ref $want ? @$want : ($want);
    ok((grep { $res->code == $_ } @want), "guard: $name: " . join(' or ', @want)) or diag(why($res));
    if ($res->code == 401) {
        like($res->header('WWW-Authenticate') // '', qr/^Bearer realm=/, "guard: $name: Bearer challenge");
    }
    return $res;
}

{
    guard('control: an access token of this host', $access, 200);
    my $forged_ok = forge($rs_header, good_claims(), 'RS256');
    guard('control: a token signed here with the RSA key', $forged_ok, 200);
    guard('control: a token signed here with the EC key',
          forge({ alg => 'ES256', typ => 'JWT', kid => $kid{ec256} }, good_claims(), 'ES256'), 200);
    guard('control: a token signed here with the HMAC key',
          forge({ alg => 'HS256', typ => 'JWT', kid => $kid{hmac} }, good_claims(), 'HS256', fixture_bytes('hmac.key')), 200);

    my($h, $p, $sig) = split /\./, $forged_ok;
    my %broken = (
        '5 segments'                     => "$h.$p.$sig.$h.$p",
        '5 segments, last two empty'     => "$h.$p.$sig..",
        '4 segments'                     => "$h.$p.$sig.",
        '2 segments'                     => "$h.$p",
        '1 segment'                      => $h,
        'empty header segment'           => ".$p.$sig",
        'empty payload segment'          => "$h..$sig",
        'empty signature segment'        => "$h.$p.",
        'all segments empty'             => '..',
        'only dots'                      => '....',
        'a single dot'                   => '.',
        'base64 padding'                 => "$h==.$p.$sig",
        'standard base64 characters'     => "$h.$p.+/" . substr($sig, 2),
        'a blank inside'                 => "$h. $p.$sig",
        'a tab inside'                   => "$h.\t$p.$sig",
        'signature with one extra char'  => "$h.$p.${sig}A",
        'signature cut short'            => "$h.$p." . substr($sig, 0, -2),
        'payload 1 mod 4 long'           => "$h.${p}A.$sig",
        'non-ASCII bytes'                => "$h.$p.$sig\xC3\xA9",
        '16 KB + 1 token'                => "$h.$p." . ('A' x (16385 - length("$h.$p."))),
        '100 KB token'                   => "$h.$p." . ('A' x 102_400),
        '100 KB of dots'                 => '.' x 102_400,
    );
    for my $name (sort keys %broken) {
        guard("token with $name", $broken{$name}, 401);
    }
    guard('a 100 KB token on a host with the default header limit', $broken{'100 KB token'}, 400, port => $OIDC);
    guard('lower-case scheme, tab separator', $forged_ok, [200, 401], raw_auth => "bearer\t$forged_ok");
    guard('scheme only', '', 401, raw_auth => 'Bearer');
    guard('100 KB Basic credentials', '', 401, raw_auth => 'Basic ' . ('QUJD' x 25_600));
    guard('a NUL byte in the header', '', [400, 401], raw_auth => "Bearer $h.$p\0.$sig");

    # kid path traversal: the kid names no file, only a configured key
    for my $k ('../../etc/passwd', '/etc/passwd', '../../../../../../etc/shadow', 'fixtures/rsa.pem',
               '@ServerRoot@/fixtures/rsa.pem', fixture('rsa.pem'), 'rsa.pem', '..%2f..%2fetc%2fpasswd',
               "$kid{rsa}/../$kid{rsa}", "$kid{rsa}\\u0000", "../$kid{rsa}", "$kid{rsa} ", '', 'x' x 100_000 . '') {
        my $shown = length $k > 60 ? substr($k, 0, 20) . '... (' . length($k) . ' bytes)' : $k;
        guard("kid '$shown', RS256 signature of the right key",
              forge({ alg => 'RS256', typ => 'JWT', kid => $k }, good_claims(), 'RS256'), 401);
    }
    guard('kid with a raw \\u0000 in the header JSON',
          forge(qq({"alg":"RS256","typ":"JWT","kid":"$kid{rsa}\\u0000x"}), good_claims(), 'RS256'), 401);
    guard('kid as a number', forge({ alg => 'RS256', kid => 1 }, good_claims(), 'RS256'), 401);
    guard('kid as an array holding the right kid', forge({ alg => 'RS256', kid => [$kid{rsa}] }, good_claims(), 'RS256'), 401);
    guard('kid as an object', forge({ alg => 'RS256', kid => { '../../etc/passwd' => 1 } }, good_claims(), 'RS256'), 401);
    guard('jku pointing elsewhere (ignored; unsigned by a known key)',
          forge({ alg => 'RS256', kid => 'attacker', jku => 'https://evil.example/jwks.json' }, good_claims(), 'RS256'), 401);

    # alg none and HS256 confusion
    guard('alg none with the RSA kid', forge({ alg => 'none', typ => 'JWT', kid => $kid{rsa} }, good_claims(), 'none'), 401);
    guard('alg none without kid', forge({ alg => 'none' }, good_claims(), 'none'), 401);
    guard('alg None with the RSA kid', forge({ alg => 'None', kid => $kid{rsa} }, good_claims(), 'none'), 401);
    guard('alg NONE, signature of the real token', "$h.$p.$sig" =~ s/^[^.]+/b64json({ alg => 'NONE', kid => $kid{rsa} })/er, 401);
    guard('alg none, no signature segment', b64json({ alg => 'none' }) . '.' . b64json(good_claims()) . '.', 401);
    for my $case (['RSA public key PEM', 'rsa.pub.pem', 'rsa'], ['RSA private key PEM', 'rsa.pem', 'rsa'],
                  ['EC public key PEM', 'ec256.pub.pem', 'ec256']) {
        my($what, $file, $k) = @$case;
        guard("HS256 keyed with the $what, kid of that key",
              forge({ alg => 'HS256', typ => 'JWT', kid => $kid{$k} }, good_claims(), 'HS256', fixture_bytes($file)), 401);
        guard("HS256 keyed with the $what, no kid",
              forge({ alg => 'HS256', typ => 'JWT' }, good_claims(), 'HS256', fixture_bytes($file)), 401);
    }
    guard('HS256 keyed with the JWKS document of the host', forge({ alg => 'HS256', kid => $kid{rsa} }, good_claims(), 'HS256',
          http_request(port => $H, method => 'GET', path => '/.well-known/jwks.json', local_addr => addr($OK))->content), 401);
    # a host with one key: a token without kid meets that key, and only with its algorithm
    {
        my $solo_iss = 'https://oidcsolo.example.test';
        my %sc = (iss => $solo_iss, sub => 'svc-solo', aud => 'runai', iat => time + 0, exp => time + 300);
        my $solo = vhost_port('oidcsolo');
        guard('one-key host, control: RS256 without kid',
              forge({ alg => 'RS256', typ => 'JWT' }, \%sc, 'RS256', 'rsa2.pem'), 200, port => $solo);
        guard('one-key host: alg none without kid', forge({ alg => 'none' }, \%sc, 'none'), 401, port => $solo);
        guard('one-key host: HS256 keyed with its public key PEM, no kid',
              forge({ alg => 'HS256', typ => 'JWT' }, \%sc, 'HS256', fixture_bytes('rsa2.pub.pem')), 401, port => $solo);
    }
    guard('RS256 with the HMAC kid', forge({ alg => 'RS256', kid => $kid{hmac} }, good_claims(), 'RS256'), 401);
    guard('ES256 with the RSA kid', forge({ alg => 'ES256', kid => $kid{rsa} }, good_claims(), 'ES256'), 401);
    guard('RS256 header, ES256 signature', forge($rs_header, good_claims(), 'ES256'), 401);
    guard('alg as an array', forge({ alg => ['RS256'], kid => $kid{rsa} }, good_claims(), 'RS256'), 401);
    guard('crit header', forge({ %$rs_header, crit => ['exp'] }, good_claims(), 'RS256'), 401);

    # hostile JSON inside correctly signed tokens
    my $deep = '{"alg":"RS256","kid":"' . $kid{rsa} . '","x":' . ('[' x 4000) . (']' x 4000) . '}';
    guard('header nested 4,000 deep, signed', forge($deep, good_claims(), 'RS256'), 401);
    my $deep_claims = substr($JSON->encode(good_claims()), 0, -1) . ',"x":' . ('[' x 4000) . (']' x 4000) . '}';
    guard('claims nested 4,000 deep, signed', forge($rs_header, $deep_claims, 'RS256'), 401);
    my $gc = substr($JSON->encode(good_claims(exp => undef)), 0, -1);
    for my $exp ('1e400', '99999999999999999999999', '-1e400', '"9999999999"', 'null', 'true', '[9999999999]', 'NaN') {
        guard("exp $exp, signed", forge($rs_header, "$gc,\"exp\":$exp}", 'RS256'), 401);
    }
    guard('nbf 1e400, signed', forge($rs_header, substr($JSON->encode(good_claims()), 0, -1) . ',"nbf":1e400}', 'RS256'), 401);
    guard('duplicate exp, signed', forge($rs_header, substr($JSON->encode(good_claims()), 0, -1) . ',"exp":1}', 'RS256'), 401);
    guard('duplicate alg in the header, signed',
          forge(qq({"alg":"none","kid":"$kid{rsa}","alg":"RS256"}), good_claims(), 'RS256'), 401);
    guard('invalid UTF-8 in a claim, signed',
          forge($rs_header, substr($JSON->encode(good_claims()), 0, -1) . ",\"name\":\"\xC0\xAF\"}", 'RS256'), 401);
    guard('invalid UTF-8 in the kid, signed', forge(qq({"alg":"RS256","kid":"$kid{rsa}\xFF"}), good_claims(), 'RS256'), 401);
    guard('\\u0000 in sub, signed', forge($rs_header, substr($JSON->encode(good_claims(sub => undef)), 0, -1)
          . ',"sub":"admin\\u0000x"}', 'RS256'), 401);
    guard('sub a number, signed', forge($rs_header, good_claims(sub => 12345), 'RS256'), 401);
    guard('sub an object, signed', forge($rs_header, good_claims(sub => { a => 1 }), 'RS256'), 401);
    guard('claims an array, signed', forge($rs_header, '[1,2,3]', 'RS256'), 401);
    guard('claims a string, signed', forge($rs_header, '"x"', 'RS256'), 401);
    guard('aud an object, signed', forge($rs_header, good_claims(aud => { runai => 1 }), 'RS256'), 401);
    guard('aud an array of junk and numbers, signed', forge($rs_header, good_claims(aud => [1, undef, {}, []]), 'RS256'), 401);
    guard('iss with a NUL suffix, signed', forge($rs_header, substr($JSON->encode(good_claims(iss => undef)), 0, -1)
          . ',"iss":"' . $issuer . '\\u0000x"}', 'RS256'), 401);
    # valid, with odd but legal contents: accepted, and the child lives
    guard('200 claims with odd values, signed', forge($rs_header, good_claims(
        map { ("c$_" => ($_ % 4 == 0 ? [1, 'a', { x => 1 }, [2]] : $_ % 4 == 1 ? 1e308 : $_ % 4 == 2 ? { deep => [[[1]]] }
                                     : "v\x{1F600}\x{7f}")) } 1 .. 200), 'RS256'), 200);
}

# --- huge query strings on the legacy routes ----------------------------------------------------------------

{
    my $junk = 'A' x 262_144;
    expect('legacy refresh with a 256 KB refresh_token', 401, method => 'POST',
           path => "/v1/k8s/auth/oauth/tokens/refresh?refresh_token=$junk");
    expect('legacy exchange with a 256 KB code', 401, method => 'GET',
           path => '/v1/k8s/auth/token/exchange?redirect_uri=' . url_encode($cb) . "&code=$junk");
    expect('legacy exchange with a 256 KB redirect_uri', 401, method => 'GET',
           path => "/v1/k8s/auth/token/exchange?code=junk&redirect_uri=$junk");
    my $t = time;
    expect('legacy refresh with 40,000 distinct parameters', [400, 401], method => 'POST', timeout => 60,
           path => '/v1/k8s/auth/oauth/tokens/refresh?' . join('&', map { "p$_=$_" } 1 .. 40_000) . '&refresh_token=x');
    my $took = time - $t;
    cmp_ok($took, '<', 20, sprintf('40,000 query parameters are answered in %.1f s (< 20 s)', $took));
    expect('legacy exchange with 40,000 copies of one parameter', [400, 401], method => 'GET', timeout => 60,
           path => '/v1/k8s/auth/token/exchange?' . ('code=x&' x 40_000) . 'redirect_uri=' . url_encode($cb));
    expect('legacy refresh with a query of 256 KB of %XX escapes', [400, 401], method => 'POST',
           path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . ('%41' x 87_381));
    expect('legacy refresh, 64 KB query on a host with the default limit', 414, method => 'POST', port => $MAIN,
           path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . ('A' x 65_536));
    expect('legacy exchange, 64 KB query on a host with the default limit', 414, method => 'GET', port => $MAIN,
           path => '/v1/k8s/auth/token/exchange?code=' . ('A' x 65_536));
    expect('legacy refresh with a JWT of 5 segments as refresh_token', 401, method => 'POST',
           path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=a.b.c.d.e');
    post_body('refresh_token grant with 5 segments and empty ones', 401,
              jbody({ grantType => 'refresh_token', refreshToken => "$access.." }));
    post_body('exchange_token grant with a 100 KB code', 401,
              jbody({ grantType => 'exchange_token', code => 'c' x 10_000, redirectUri => $cb }));
    expect('legacy apptoken with a 256 KB query (ignored), right secret', 200, method => 'POST',
           path => "/v1/k8s/auth/oauth/apptoken?x=$junk", body => jbody({ id => 'app-md5', name => 'x', secret => $app_secret }),
           local_addr => addr($OK));
}

# --- methods, paths ----------------------------------------------------------------------------------------------

{
    for my $m (qw(PUT DELETE PATCH OPTIONS)) {
        expect("$m on the token endpoint", [405], method => $m, path => '/api/v1/token', body => jbody(bob_wrong()));
    }
    expect('GET on the token endpoint', 405, method => 'GET', path => '/api/v1/token');
    expect('POST on authorize', 405, method => 'POST', path => '/api/v1/authorize', body => jbody(bob_wrong()),
           headers => [Authorization => $basic_bob]);
    expect('token path with a trailing slash', 404, method => 'POST', path => '/api/v1/token/', body => jbody(bob_wrong()));
    expect('token path with %00', [400, 404], method => 'POST', path => '/api/v1/token%00', body => jbody(bob_wrong()));
    expect('token path with ;params', 404, method => 'POST', path => '/api/v1/token;x=1', body => jbody(bob_wrong()));
    # httpd may normalise these to the token path: right secret
    expect('token path with // inside, right secret', [200, 404], method => 'POST', path => '/api//v1/token',
           body => jbody(app_right()), local_addr => addr($OK));
    expect('token path with %2e%2e, right secret', [200, 400, 404], method => 'POST', path => '/api/v1/x/%2e%2e/token',
           body => jbody(app_right()), local_addr => addr($OK));
}

# --- malformed requests aimed at live refresh tokens and codes ------------------------------------------------

{
    my $form = 'application/x-www-form-urlencoded';
    for my $kind (qw(refresh code)) {
        my $live = $kind eq 'refresh' ? $R{json} : $C{json};
        my $flive = $kind eq 'refresh' ? $R{form} : $C{form};
        my %base = $kind eq 'refresh' ? (grantType => 'refresh_token', refreshToken => $live)
                                      : (grantType => 'exchange_token', code => $live, redirectUri => $cb);
        my $ok = substr(jbody(\%base), 0, -1);
        my %json = (
            'a huge number beside it'        => "$ok,\"n\":1e400}",
            'a key given twice'              => $kind eq 'refresh' ? "$ok,\"RefreshToken\":\"$live\"}" : "$ok,\"CODE\":\"$live\"}",
            'invalid UTF-8 beside it'        => "$ok,\"x\":\"\xFF\"}",
            'a raw NUL after it'             => "$ok}\0",
            'a \\u0000 appended to it'       => $ok =~ s/\Q$live\E/$live\\u0000/r . '}',
            'a number as grantType'          => $ok =~ s/"grantType":"[^"]+"/"grantType":5/r . '}',
            'a known field not a string'     => "$ok,\"codeVerifier\":[1]}",
            'an unclosed object'             => $ok,
            'JSON nested 10,000 deep beside it (413)' => "$ok,\"x\":" . ('[' x 10_000) . (']' x 10_000) . '}',
            'one byte over the limit'        => pad_to("$ok}", $LIMIT + 1),
        );
        for my $name (sort keys %json) {
            my $want = $name =~ /413|over the limit/ ? 413 : 400;
            post_body("$kind aimed at: JSON, $name", $want, $json{$name});
        }
        post_body("$kind aimed at: JSON as text/plain", 415, "$ok}", type => 'text/plain');
        my $res = hit("$kind aimed at: chunked, over the limit",
                      bytes => chunked_bytes(body => pad_to("$ok}", $LIMIT + 100), piece => 3000));
        is($res->code, 413, "$kind aimed at: chunked, over the limit: 413") or diag(why($res));

        my $fok = $kind eq 'refresh' ? 'grant_type=refresh_token&refresh_token=' . url_encode($flive)
                                     : 'grant_type=authorization_code&code=' . url_encode($flive)
                                       . '&redirect_uri=' . url_encode($cb);
        my %forms = (
            'a broken escape after it'      => "$fok&x=%zz",
            'a trailing %'                  => "$fok%",
            '%00 appended to it'            => "$fok%00",
            'invalid UTF-8 beside it'       => "$fok&x=%FF",
            'the parameter twice'           => $kind eq 'refresh' ? "$fok&refresh_token=" . url_encode($flive)
                                                                  : "$fok&code=" . url_encode($flive),
            'grant_type twice'              => "$fok&grant_type=password",
            'a raw NUL'                     => "$fok&\0",
        );
        for my $name (sort keys %forms) {
            post_body("$kind aimed at: form, $name", 400, $forms{$name}, type => $form);
        }
        post_body("$kind aimed at: form, one byte over the limit", 413,
                  "$fok&pad=" . ('x' x ($LIMIT + 1 - length("$fok&pad="))), type => $form);
    }

    # the legacy routes read the query with httpd's ap_args_to_table, which
    # cuts a value at a decoded %00: a NUL inside the token is as malformed
    # here as in a form body (400, refused before any lookup)
    my $res = expect('legacy refresh aimed at a live token: %00 and junk appended', 400, method => 'POST',
                     path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . url_encode($R{legacy_nul}) . '%00junk');
    reply_of($res);
    $res = expect('legacy exchange aimed at a live code: %00 and junk appended', 400, method => 'GET',
                  path => '/v1/k8s/auth/token/exchange?redirect_uri=' . url_encode($cb) . '&code=' . url_encode($C{legacy_nul}) . '%00junk');
    reply_of($res);
    $res = expect('legacy exchange: redirect_uri not registered byte for byte (registered + %00.evil.example)', 400,
                  method => 'GET', path => '/v1/k8s/auth/token/exchange?redirect_uri=' . url_encode($cb)
                  . '%00.evil.example&code=' . url_encode($C{legacy_ruri}));
    reply_of($res);
    expect('legacy refresh aimed at a live token: a broken escape appended', 400, method => 'POST',
           path => '/v1/k8s/auth/oauth/tokens/refresh?refresh_token=' . url_encode($R{legacy_dup}) . '%zz');
}

# --- after the battery ------------------------------------------------------------------------------------------

my $battery_end = time;

# not one 5xx but a deliberate 503, and every request got an answer
{
    my @five = grep { $_->[1] >= 500 && $_->[1] != 599
                      && !($_->[1] == 503 && $_->[3] =~ /session store unavailable/) } @answers;
    is(scalar @five, 0, 'not one answer of the ' . scalar(@answers) . ' is a 5xx (a 503 only when the store is down)')
        or diag(join "\n", map { "$_->[0]: $_->[1] $_->[3]" } @five[0 .. ($#five > 19 ? 19 : $#five)]);
    my @lost = grep { $_->[1] == 599 } @answers;
    is(scalar @lost, 0, 'every request got an answer (no connection closed or reset without one)')
        or diag(join "\n", map { "$_->[0]: $_->[3]" } @lost[0 .. ($#lost > 19 ? 19 : $#lost)]);
    my @write = grep { defined $_->[2] } @answers;
    diag(scalar(@write) . ' requests were answered before their whole body was sent')
        if @write;
    my %dist;
    $dist{ $_->[1] }++ for @answers;
    diag('battery: ' . scalar(@answers) . ' requests in ' . sprintf('%.1f s', $battery_end - $T0) . '; statuses: '
         . join(', ', map { "$_ x $dist{$_}" } sort keys %dist));
}

# the server still answers, the state minted before is intact
{
    my $res = token_call($H, app_right(), local_addr => addr($OK));
    is($res->code, 200, 'after: the hostile host still issues app tokens') or diag(why($res));
    reply_of($res);
    for my $p (qw(json form legacy_nul legacy_dup)) {
        $res = refresh_call($H, $R{$p}, local_addr => addr($MINT));
        is($res->code, 200, "after: the $p refresh token minted before the battery still works (not rotated)")
            or diag(why($res));
        my $next = (reply_of($res) || {})->{refreshToken};
        ok($next && $next ne $R{$p}, "after: the $p refresh token rotates now");
    }
    for my $p (qw(json form legacy_nul legacy_ruri)) {
        $res = exchange_call($H, $C{$p}, $cb, local_addr => addr($MINT));
        is($res->code, 200, "after: the $p code minted before the battery still works (not spent)")
            or diag(why($res));
        reply_of($res);
    }
}

# throttle counters: one failure throttles a principal here, ten an address
{
    my $res = password_login($H, 'bob', $pw_bob, local_addr => addr($MAL));
    is($res->code, 200, 'after: bob (named by many malformed requests with a wrong password) is not throttled')
        or diag(why($res));
    reply_of($res);
    $res = token_call($H, app_right(), local_addr => addr($MAL));
    is($res->code, 200, 'after: app-md5 (named by malformed requests with a wrong secret) is not throttled')
        or diag(why($res));
    reply_of($res);
    $res = token_call($H, ghost_wrong(), local_addr => addr($MAL));
    check_error($res, 401, qr/^invalid credentials$/, "after: the first counted failure of $ghost is a 401, not a 429");
    my @codes = map { token_call($H, ghost_wrong(username => "$ghost-$_"), local_addr => addr($MAL))->code } 2 .. 10;
    is("@codes", join(' ', (401) x 9),
       'after: nine more wrong passwords from the address of the malformed requests are 401: its counter was 0');
    $res = token_call($H, ghost_wrong(username => "$ghost-11"), local_addr => addr($MAL));
    is($res->code, 429, 'after: the eleventh failure from that address is throttled (the counter works)')
        or diag(why($res));
}

# no child died
{
    sleep 1.2;    # the parent logs a dead child when it reaps it (once a second)
    my $log = slurp($error_log) // '';
    my $mine = substr($log, $log_start);
    my @dead = grep { /exit signal|Segmentation|AH00052|child pid \d+ exit|double free|stack smashing|AddressSanitizer/i }
               split /\n/, $log;
    is(scalar @dead, 0, 't/logs/error_log: no child died (no "exit signal", no "Segmentation")')
        or diag(join "\n", @dead[0 .. ($#dead > 9 ? 9 : $#dead)]);
    ok(length $mine, 'the battery left lines in the error log (it was read)');
    my @err = grep { /\[runai_token:(error|crit|alert|emerg)\]/ } split /\n/, $mine;
    is(scalar @err, 0, 'the battery caused no error-level line of the module') or diag(join "\n", @err[0 .. ($#err > 9 ? 9 : $#err)]);
}

assert_logs_clean('30_hostile', $error_log, catfile(Apache::Test::vars('t_logs'), 'access_log'));
diag(sprintf('30_hostile: %.1f s', time - $T0));
done_testing();

package RunaiTest;
# Shared helpers of the mod_runai_token Apache::Test suite: requests against
# the test server and its virtual hosts, checks of the Error body and of the
# success headers, JWT decoding, the three independent verifiers (Crypt::JWT,
# t/bin/jwt_verify on libjwt, PyJWT under /usr/bin/python3) and the fixtures
# t/TEST.PL writes. Assertions go through Test::More, which the .t files load
# with `use Apache::Test qw(-withtestmore)`.
use strict;
use warnings;

use Exporter 'import';
use Apache::Test ();
use Apache::TestRequest ();
use B ();
use Crypt::JWT ();
use Time::HiRes ();
use Crypt::Mac::HMAC ();
use Crypt::PK::ECC ();
use Crypt::PK::RSA ();
use Digest::SHA qw(sha256);
use File::Spec::Functions qw(catfile);
use HTTP::Request ();
use File::Temp ();
use JSON::PP ();
use MIME::Base64 qw(decode_base64 decode_base64url encode_base64url);
use POSIX ();
use RunaiHTTP ();

our @EXPORT = qw(
  t_dir fixture fixture_bytes slurp secrets json_bytes json_decode json_type
  http raw_http post_json token_request
  check_error check_oauth_error check_success_headers check_legacy_headers response_json
  jwt_parts check_token_basics check_payload_encoding record_token
  verify_crypt_jwt verify_libjwt verify_pyjwt verify_pyjwt_batch flip_signature
  b64json jws_signature forge_jwt key_info thumbprint $REFRESH_TOKEN_RE
);

# A refresh token: a session handle (128 bits), its generation, and a MAC
# (256 bits), in base64url and decimal.
our $REFRESH_TOKEN_RE = qr/^[A-Za-z0-9_-]{22}\.[1-9][0-9]*\.[A-Za-z0-9_-]{43}$/;

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

sub t_dir { Apache::Test::vars('t_dir') }
sub fixture { catfile(t_dir(), 'fixtures', @_) }

# The bytes of a file; undef when it cannot be read ($! says why).
sub slurp {
    my $file = shift;
    open my $fh, '<:raw', $file or return undef;
    local $/;
    my $text = <$fh>;
    return $text // '';
}

# The bytes of a fixture file (t/fixtures/NAME); dies when it is missing.
sub fixture_bytes {
    my $name = shift;
    return slurp(fixture($name)) // die "$name: $!";
}

my $secrets;
sub secrets {
    return $secrets if $secrets;
    my $text = slurp(fixture('secrets.json'))
        // die "t/fixtures/secrets.json: $! (start the suite with t/TEST.PL)";
    return $secrets = $JSON->decode($text);
}

# UTF-8 JSON text of a Perl structure (keys sorted, so bodies are stable).
sub json_bytes { $JSON->encode($_[0]) }
sub json_decode {
    my $r = eval { $JSON->decode($_[0]) };
    return $r;
}

# The JSON type a freshly decoded value had: object array string number bool
# null. Call it before the value is used as a string: perl then caches a
# string form and a number can no longer be told from a string.
sub json_type {
    my $v = shift;
    return 'null' unless defined $v;
    return 'bool' if JSON::PP::is_bool($v);
    return ref $v eq 'HASH' ? 'object' : 'array' if ref $v;
    my $flags = B::svref_2object(\$v)->FLAGS;
    return 'string' if $flags & B::SVp_POK;
    return 'number' if $flags & (B::SVp_IOK | B::SVp_NOK);
    return 'unknown';
}

# http(METHOD, PATH, vhost => NAME, body => BYTES, type => CONTENT-TYPE,
#      headers => [NAME => VALUE, ...]) through Apache::TestRequest (LWP).
# type defaults to application/json when there is a body.
sub http {
    my($method, $path, %a) = @_;
    local $Apache::TestRequest::Module = $a{vhost} || 'main';
    my @h = @{ $a{headers} || [] };
    my $type = exists $a{type} ? $a{type} : (defined $a{body} ? 'application/json' : undef);
    push @h, 'Content-Type' => $type if defined $type;
    if (defined $a{body}) {
        # Apache::TestRequest rewrites a body of the form x<digits>
        die "body would be rewritten by Apache::TestRequest" if $a{body} =~ /^x\d+$/;
        push @h, content => $a{body};
    }
    if ($method =~ /^(GET|HEAD|POST|PUT)$/) {
        no strict 'refs';
        return &{"Apache::TestRequest::$method"}($path, @h);
    }
    # methods Apache::TestRequest has no function for: its user agent
    my %h = @h;
    my $body = delete $h{content};
    my $req = HTTP::Request->new($method => Apache::TestRequest::resolve_url($path),
                                 [%h], $body);
    $req->header('Content-Length' => length($body // ''));
    return Apache::TestRequest::user_agent()->request($req);
}

sub post_json { my($path, $body, %a) = @_; http('POST', $path, body => $body, %a) }

# POST /api/v1/token with the JSON text of $data (a hash ref) or raw bytes.
sub token_request {
    my($data, %a) = @_;
    my $body = ref $data ? json_bytes($data) : $data;
    return post_json($a{path} || '/api/v1/token', $body, %a);
}

# raw_http(VHOST, BYTES): sends BYTES verbatim on a new connection (the
# caller writes the whole request, with Connection: close) and parses the
# answer, decoding a chunked body (t/lib/RunaiHTTP.pm). Dies when the
# server closes without answering or does not close within 30 s.
sub raw_http {
    my($vhost, $bytes) = @_;
    my $sock = Apache::TestRequest::vhost_socket($vhost || 'main')
        or die "cannot connect to vhost " . ($vhost || 'main') . ": $!";
    $sock->autoflush(1);
    print $sock $bytes;
    my($raw, $err) = RunaiHTTP::read_raw($sock, 30);
    die "no answer from the server" . (defined $err ? " ($err)" : '') if defined $err || !length $raw;
    return RunaiHTTP::parse_response($raw);
}

sub response_json {
    my $res = shift;
    return json_decode($res->content);
}

# The Error body: status, JSON media type, no-store, an object holding only
# code (== status), a non-empty message and optionally a string details.
sub check_error {
    my($res, $status, $message_re, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = 1;
    $ok &&= Test::More::is($res->code, $status, "$name: status $status");
    $ok &&= Test::More::like($res->header('Content-Type') || '',
        qr{^application/json\b}i, "$name: Content-Type application/json");
    $ok &&= Test::More::like($res->header('Cache-Control') || '', qr/\bno-store\b/,
        "$name: Cache-Control no-store");
    my $body = response_json($res);
    unless (Test::More::ok(ref $body eq 'HASH', "$name: body is a JSON object")) {
        Test::More::diag("body: " . $res->content);
        return 0;
    }
    my %type = map { $_ => json_type($body->{$_}) } keys %$body;
    $ok &&= Test::More::ok(($type{code} // '') eq 'number' && $body->{code} == $status,
        "$name: code is the number $status") || Test::More::diag("body: " . $res->content);
    $ok &&= Test::More::ok(($type{message} // '') eq 'string' && length $body->{message},
        "$name: message is a non-empty string");
    if (defined $message_re) {
        $ok &&= Test::More::like($body->{message} // '', $message_re, "$name: message");
    }
    my @extra = grep { !/^(code|message|details)$/ } sort keys %$body;
    $ok &&= Test::More::is("@extra", '', "$name: no keys besides code/message/details");
    if (exists $body->{details}) {
        $ok &&= Test::More::is($type{details}, 'string', "$name: details is a string");
    }
    return $ok;
}

# check_oauth_error(RES, STATUS, ERROR, NAME, desc => RE): an RFC 6749
# §5.2 (or RFC 7009 §2.2.1) error: the status, JSON {error,
# error_description} alone, no-store, no redirect, and for 401 the Basic
# challenge of the token endpoint (no challenge otherwise). Returns the body.
sub check_oauth_error {
    my($res, $status, $error, $name, %o) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is($res->code, $status, "$name: status $status") or Test::More::diag($res->as_string);
    Test::More::like($res->header('Content-Type') // '', qr{^application/json\b}i, "$name: application/json");
    Test::More::like($res->header('Cache-Control') // '', qr/\bno-store\b/, "$name: Cache-Control no-store");
    my $b = response_json($res);
    Test::More::ok(ref $b eq 'HASH', "$name: JSON object") or return;
    Test::More::is_deeply([sort keys %$b], [qw(error error_description)], "$name: error and error_description only");
    Test::More::is($b->{error}, $error, "$name: error $error");
    Test::More::ok(json_type($b->{error_description}) eq 'string' && length $b->{error_description},
                   "$name: error_description is a non-empty string");
    Test::More::like($b->{error_description} // '', $o{desc}, "$name: error_description") if $o{desc};
    Test::More::ok(!defined $res->header('Location'), "$name: no Location");
    if ($status == 401) {
        Test::More::is($res->header('WWW-Authenticate'), 'Basic realm="runai-token"', "$name: WWW-Authenticate Basic");
    }
    else {
        Test::More::ok(!defined $res->header('WWW-Authenticate'), "$name: no WWW-Authenticate");
    }
    return $b;
}

sub check_success_headers {
    my($res, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    Test::More::is($res->code, 200, "$name: status 200")
        or Test::More::diag("body: " . $res->content);
    Test::More::like($res->header('Content-Type') || '', qr{^application/json\b}i,
        "$name: Content-Type application/json");
    Test::More::like($res->header('Cache-Control') || '', qr/\bno-store\b/,
        "$name: Cache-Control no-store");
    Test::More::like($res->header('Pragma') || '', qr/\bno-cache\b/, "$name: Pragma no-cache");
}

sub check_legacy_headers {
    my($res, $name, $legacy) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if ($legacy) {
        Test::More::is($res->header('Deprecation'), '@1725148800', "$name: Deprecation");
        Test::More::is($res->header('Link'), '</api/v1/token>; rel="successor-version"',
            "$name: Link successor-version");
    }
    else {
        Test::More::ok(!defined $res->header('Deprecation'), "$name: no Deprecation header");
    }
}

# Splits a compact JWT: (header, claims, signing input, payload segment,
# signature bytes), or () when it is not three base64url segments of JSON.
sub jwt_parts {
    my $token = shift;
    return () unless defined $token
        && $token =~ /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;
    my($h, $p, $s) = ($1, $2, $3);
    my $header = json_decode(decode_base64url($h));
    my $claims = json_decode(decode_base64url($p));
    return () unless ref $header eq 'HASH' && ref $claims eq 'HASH';
    return ($header, $claims, "$h.$p", $p, decode_base64url($s));
}

# Appends a received token to t/fixtures/received-tokens.txt (the log test
# checks that none of them reached a log).
sub record_token {
    my $token = shift;
    # callers pass every value of a token answer: keep the JWTs only
    return unless defined $token && $token =~ /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
    open my $fh, '>>', fixture('received-tokens.txt') or die "received-tokens.txt: $!";
    print $fh "$token\n";
    close $fh;
}

# The payload segment holds no '-' or '_', so standard base64 (after '='
# padding) decodes it to the same claims; the JSON text is ASCII only.
sub check_payload_encoding {
    my($token, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my(undef, $claims, undef, $seg) = jwt_parts($token);
    Test::More::like($seg // '', qr/^[A-Za-z0-9]+$/, "$name: payload segment is [A-Za-z0-9]+");
    my $padded = ($seg // '') . ('=' x ((4 - length($seg // '') % 4) % 4));
    my $text = decode_base64($padded);
    Test::More::unlike($text, qr/[^\x20-\x7e]/, "$name: payload JSON is printable ASCII");
    Test::More::unlike($text, qr/[>?~\x7f]/, "$name: > ? ~ DEL are escaped in the payload");
    Test::More::is_deeply(json_decode($text), $claims,
        "$name: standard base64 decoding gives the same claims");
}

# Checks the parts every access or id token shares and returns the claims.
#   alg, kid, iss, sub, aud (string or array ref), lifetime, jti (hash ref
#   collecting seen jti values), name
sub check_token_basics {
    my($token, %e) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $name = $e{name};
    my($header, $claims) = jwt_parts($token);
    unless (Test::More::ok($header, "$name: compact JWT with JSON header and claims")) {
        Test::More::diag("token: " . ($token // 'undef'));
        return {};
    }
    record_token($token);
    Test::More::is_deeply([sort keys %$header], [qw(alg kid typ)], "$name: header has alg, typ, kid");
    Test::More::is($header->{alg}, $e{alg}, "$name: alg $e{alg}");
    Test::More::is($header->{typ}, 'JWT', "$name: typ JWT");
    Test::More::is($header->{kid}, $e{kid}, "$name: kid") if defined $e{kid};
    Test::More::is($claims->{iss}, $e{iss}, "$name: iss") if exists $e{iss};
    Test::More::like($claims->{iss} // '', $e{iss_re}, "$name: iss") if $e{iss_re};
    Test::More::is($claims->{sub}, $e{sub}, "$name: sub");
    Test::More::is_deeply($claims->{aud}, $e{aud}, "$name: aud");
    my $now = time;
    Test::More::ok(defined $claims->{iat} && !ref $claims->{iat} && $claims->{iat} =~ /^\d+$/
        && abs($claims->{iat} - $now) <= 10, "$name: iat is now (integer)")
        or Test::More::diag("iat " . ($claims->{iat} // 'undef') . ", now $now");
    Test::More::ok(defined $claims->{exp} && !ref $claims->{exp} && $claims->{exp} =~ /^\d+$/,
        "$name: exp is an integer");
    if (defined $e{lifetime}) {
        Test::More::is(($claims->{exp} // 0) - ($claims->{iat} // 0), $e{lifetime},
            "$name: exp - iat == $e{lifetime}");
    }
    elsif (defined $claims->{exp} && defined $claims->{iat}) {
        Test::More::cmp_ok($claims->{exp}, '>', $claims->{iat}, "$name: exp > iat");
    }
    if ($e{jti}) {
        my $jti = $claims->{jti} // '';
        Test::More::like($jti, qr/^[A-Za-z0-9_-]{22}$/, "$name: jti is 22 base64url characters");
        Test::More::is(length(decode_base64url($jti)), 16, "$name: jti holds 128 bits");
        Test::More::ok(!$e{jti}{$jti}++, "$name: jti is unique");
    }
    check_payload_encoding($token, $name);
    return $claims;
}

# --- keys -----------------------------------------------------------------

# key_info(NAME): what the suite knows about a fixture key:
#   public => file for the verifiers, key => Crypt::PK object or HMAC bytes
sub key_info {
    my $name = shift;
    if ($name eq 'hmac') {
        return { public => fixture('hmac.key'), key => fixture_bytes('hmac.key'), hmac => 1 };
    }
    my $pub = fixture("$name.pub.pem");
    my $class = $name =~ /^rsa/ ? 'Crypt::PK::RSA' : 'Crypt::PK::ECC';
    return { public => $pub, key => $class->new($pub) };
}

# RFC 7638 thumbprint (SHA-256, base64url): Crypt::PK for RSA and EC keys,
# {"k":..,"kty":"oct"} for the HMAC secret.
sub thumbprint {
    my $info = key_info(shift);
    return encode_base64url(sha256(
        '{"k":"' . encode_base64url($info->{key}) . '","kty":"oct"}')) if $info->{hmac};
    return $info->{key}->export_key_jwk_thumbprint('SHA256');
}

# Flips one bit of the first signature byte.
sub flip_signature {
    my $token = shift;
    my($h, $p, $s) = split /\./, $token;
    my $sig = decode_base64url($s);
    substr($sig, 0, 1) = chr(ord(substr($sig, 0, 1)) ^ 0x01);
    return "$h.$p." . encode_base64url($sig);
}

# --- tokens signed here ------------------------------------------------------

# base64url of the JSON text of a structure (keys sorted), or of a text as is.
sub b64json { encode_base64url(ref $_[0] ? json_bytes($_[0]) : $_[0]) }

# jws_signature(INPUT, HOW, KEY): the signature bytes of a JWS signing
# input. RS256, RS384, PS256 with the RSA fixture KEY (a file name in
# t/fixtures), ES256, ES384, ES512 (R||S, RFC 7518) and ES256-DER with the EC
# fixture KEY, HS256 keyed with the bytes KEY, none: no signature.
sub jws_signature {
    my($input, $how, $key) = @_;
    return Crypt::PK::RSA->new(fixture($key))->sign_message($input, 'SHA256', 'v1.5') if $how eq 'RS256';
    return Crypt::PK::RSA->new(fixture($key))->sign_message($input, 'SHA384', 'v1.5') if $how eq 'RS384';
    return Crypt::PK::RSA->new(fixture($key))->sign_message($input, 'SHA256', 'pss', 32) if $how eq 'PS256';
    return Crypt::PK::ECC->new(fixture($key))->sign_message_rfc7518($input, 'SHA256') if $how eq 'ES256';
    return Crypt::PK::ECC->new(fixture($key))->sign_message_rfc7518($input, 'SHA384') if $how eq 'ES384';
    return Crypt::PK::ECC->new(fixture($key))->sign_message_rfc7518($input, 'SHA512') if $how eq 'ES512';
    return Crypt::PK::ECC->new(fixture($key))->sign_message($input, 'SHA256') if $how eq 'ES256-DER';
    return Crypt::Mac::HMAC::hmac('SHA256', $key, $input) if $how eq 'HS256';
    return '' if $how eq 'none';
    die "unknown signing $how";
}

# forge_jwt(HEADER, CLAIMS, HOW, KEY): a compact JWS signed here; HEADER
# and CLAIMS are structures or JSON text sent as is; HOW and KEY as for
# jws_signature.
sub forge_jwt {
    my($header, $claims, $how, $key) = @_;
    my $input = b64json($header) . '.' . b64json($claims);
    return "$input." . encode_base64url(jws_signature($input, $how, $key));
}

# --- the three verifiers ----------------------------------------------------
# Each returns the verified claims (hash ref) or undef, and the error.

sub verify_crypt_jwt {
    my($token, $keyname, $alg, %o) = @_;
    my $info = key_info($keyname);
    # iat is checked here, not by Crypt::JWT: it compares with Perl's
    # time(), which reads the kernel's coarse clock and can still say the
    # previous second for a few ms after the server (gettimeofday) is in
    # the next one, so a token just issued looked issued in the future.
    my $claims = eval {
        my $c = Crypt::JWT::decode_jwt(token => $token, key => $info->{key},
            accepted_alg => $alg, verify_exp => 1, verify_iat => 0,
            # RFC 7519: aud is a string or an array holding the audience
            (defined $o{aud} ? (verify_aud => sub {
                my $aud = shift;
                return grep { defined && !ref && $_ eq $o{aud} } ref $aud eq 'ARRAY' ? @$aud : $aud;
            }) : ()),
            (defined $o{iss} ? (verify_iss => $o{iss}) : ()));
        die "JWT: no iat claim\n" unless defined $c->{iat} && !ref $c->{iat};
        die "JWT: iat $c->{iat} is in the future\n" if $c->{iat} > int(Time::HiRes::time());
        $c;
    };
    return ($claims, $@);
}

# run_capture([STDIN], CMD...) or run_capture(CMD...): (exit, stdout, stderr).
# Files, not pipes, carry the three streams: nothing can block.
sub run_capture {
    my $stdin = ref $_[0] ? shift->[0] : '';
    my(@cmd) = @_;
    my($in, $out, $err) = map { File::Temp->new } 1 .. 3;
    print $in $stdin;
    close $in;
    my $pid = fork // die "fork: $!";
    unless ($pid) {
        # the child must not run the test's END blocks: _exit on any failure
        open(STDIN, '<', $in->filename) && open(STDOUT, '>', $out->filename)
            && open(STDERR, '>', $err->filename) && exec { $cmd[0] } @cmd;
        print STDERR "cannot run $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? >> 8;
    my @text = map { slurp($_->filename) // die "$!" } $out, $err;
    return ($rc, @text);
}

sub verify_libjwt {
    my($token, $keyname) = @_;
    my $tool = catfile(t_dir(), 'bin', 'jwt_verify');
    return (undef, "$tool is missing (make test-tools)") unless -x $tool;
    my($rc, $out, $err) = run_capture($tool, key_info($keyname)->{public}, $token);
    return (undef, "exit $rc: $err") if $rc;
    my($json, $alg) = split /\n/, $out;
    my $claims = json_decode($json // '');
    return (undef, "unparsable output: $out") unless ref $claims eq 'HASH';
    return ($claims, '', $alg);
}

# PyJWT reads jobs (one JSON object a line: keyfile token alg aud iss) on
# stdin and answers one line each: {"claims": ...} or {"error": ...}. One
# interpreter serves a whole batch: starting python costs ~0.15 s.
my $PYJWT = <<'PY';
import json, sys
import jwt
for line in sys.stdin:
    job = json.loads(line)
    try:
        with open(job["keyfile"], "rb") as f:
            key = f.read()
        claims = jwt.decode(job["token"], key, algorithms=[job["alg"]],
                            audience=job["aud"], issuer=job["iss"],
                            options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        print(json.dumps({"claims": claims}))
    except Exception as e:
        print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
PY

# verify_pyjwt_batch([TOKEN, KEYNAME, ALG, aud => AUD, iss => ISS], ...)
# returns one [claims or undef, error] per job.
sub verify_pyjwt_batch {
    my @jobs = @_;
    my $input = join '', map {
        my($token, $keyname, $alg, %o) = @$_;
        $JSON->encode({ keyfile => key_info($keyname)->{public}, token => $token,
                        alg => $alg, aud => $o{aud}, iss => $o{iss} }) . "\n";
    } @jobs;
    my($rc, $out, $err) = run_capture([$input], '/usr/bin/python3', '-c', $PYJWT);
    my @lines = split /\n/, $out;
    return map {
        my $r = $rc ? undef : json_decode($lines[$_] // '');
        ref $r eq 'HASH' && ref $r->{claims} eq 'HASH' ? [$r->{claims}, '']
            : [undef, ref $r eq 'HASH' ? $r->{error} : "python exit $rc: $err"];
    } 0 .. $#jobs;
}

sub verify_pyjwt { @{ (verify_pyjwt_batch([@_]))[0] } }

1;

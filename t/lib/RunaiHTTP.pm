package RunaiHTTP;
# The suite's one raw HTTP/1.1 client, below both t/lib/RunaiTest.pm
# (raw_http, on an Apache::Test virtual host) and t/lib/RunaiHosts.pm
# (http_request, raw_request, race, on any port):
#   - request_bytes: the bytes of a request (Connection: close unless
#     keep_alive is given);
#   - connect_to / send_bytes: a connection, optionally from a chosen source
#     address, and a bounded write of the whole request;
#   - read_raw / parse_response / read_response: the whole answer until the
#     server closes (bounded), parsed into an HTTP::Response with a chunked
#     body decoded.
# It needs nothing of Apache::Test. Failures that are not errors of the
# suite (a refused connection, a timeout, no answer) are answers of status
# 599 with the reason as message, so callers record them like any other.
use strict;
use warnings;

use Exporter 'import';
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use Time::HiRes ();

our @EXPORT_OK = qw(
  request_bytes connect_to send_bytes read_raw parse_response read_response
  failed_response keep_alive_open keep_alive_request
);

# request_bytes(method => M, path => '/x', port => P, host => H,
#               headers => [NAME => VALUE, ...], body => BYTES, type => CT,
#               keep_alive => 1)
# keep_alive leaves Connection: close out (see keep_alive_request). A body gets Content-Length and a Content-Type (type, default
# application/json) unless headers name one or type is given as undef.
sub request_bytes {
    my(%a) = @_;
    my $method = $a{method} || 'GET';
    my $host = $a{host} || '127.0.0.1';
    my $bytes = "$method $a{path} HTTP/1.1\r\nHost: $host:$a{port}\r\n"
        . ($a{keep_alive} ? '' : "Connection: close\r\n");
    my @h = @{ $a{headers} || [] };
    while (my($k, $v) = splice @h, 0, 2) {
        $bytes .= "$k: $v\r\n";
    }
    if (defined $a{body}) {
        my $body = $a{body};
        utf8::encode($body) if utf8::is_utf8($body);
        my %named = map { lc($_) => 1 } @{ $a{headers} || [] };
        $bytes .= 'Content-Type: ' . ($a{type} // 'application/json') . "\r\n"
            unless $named{'content-type'} || (exists $a{type} && !defined $a{type});
        $bytes .= 'Content-Length: ' . length($body) . "\r\n\r\n$body";
    }
    else {
        $bytes .= "\r\n";
    }
    return $bytes;
}

# connect_to(port => P, host => H, local_addr => A): a connected socket or
# undef ($! says why).
sub connect_to {
    my(%a) = @_;
    return IO::Socket::INET->new(
        PeerAddr => $a{host} || '127.0.0.1', PeerPort => $a{port}, Proto => 'tcp',
        Timeout => 10, ($a{local_addr} ? (LocalAddr => $a{local_addr}) : ()));
}

sub failed_response {
    my $why = shift;
    my $res = HTTP::Response->new(599, $why);
    $res->content('');
    return $res;
}

# send_bytes(SOCK, BYTES, TIMEOUT): writes BYTES in pieces of at most
# 64 KiB, each once the socket can take it (waiting at most TIMEOUT
# seconds, default 30). Returns (bytes written, error): the error is the
# errno text of a failed write, undef when all was written or when the
# socket stayed full for TIMEOUT (the caller then reads what the server
# answered so far).
sub send_bytes {
    my($sock, $bytes, $timeout) = @_;
    my $sel = IO::Select->new($sock);
    my $off = 0;
    while ($off < length $bytes) {
        last unless $sel->can_write($timeout || 30);
        my $left = length($bytes) - $off;
        my $n = syswrite $sock, $bytes, ($left > 65536 ? 65536 : $left), $off;
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            return ($off, "$!");
        }
        $off += $n;
    }
    return ($off, undef);
}

# read_raw(SOCK, TIMEOUT): every byte until the server closes, then closes
# SOCK. Returns (bytes, error): error is "timeout after Ns" when the server
# did not close within TIMEOUT seconds (default 30), else undef.
sub read_raw {
    my($sock, $timeout) = @_;
    $timeout ||= 30;
    my $sel = IO::Select->new($sock);
    my $raw = '';
    my $deadline = Time::HiRes::time() + $timeout;
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            close $sock;
            return ($raw, "timeout after ${timeout}s");
        }
        next unless $sel->can_read($left > 1 ? 1 : $left);
        my $n = sysread $sock, $raw, 65536, length $raw;
        next if !defined $n && $!{EINTR};
        last unless $n;
    }
    close $sock;
    return ($raw, undef);
}

# parse_response(BYTES, METHOD): the HTTP::Response of an answer read to
# the end; a chunked body is decoded (trailers dropped); the answer to
# HEAD has an empty content.
sub parse_response {
    my($raw, $method) = @_;
    my($head, $body) = split /\r\n\r\n/, $raw, 2;
    my $res = HTTP::Response->parse("$head\r\n\r\n");
    $body //= '';
    if (lc($res->header('Transfer-Encoding') || '') eq 'chunked') {
        my $plain = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $plain .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $body = $plain;
    }
    $res->content(($method // '') eq 'HEAD' ? '' : $body);
    return $res;
}

# read_response(SOCK, TIMEOUT, METHOD): read_raw, then parse_response; a
# 599 answer on a timeout or when the server closed without a byte.
sub read_response {
    my($sock, $timeout, $method) = @_;
    my($raw, $err) = read_raw($sock, $timeout);
    return failed_response($err) if defined $err;
    return failed_response('no answer') unless length $raw;
    return parse_response($raw, $method);
}

# --- keep-alive: many requests on one connection ------------------------------

# keep_alive_open(port => P, host => H, local_addr => A, timeout => S): a
# connection (a hash) for keep_alive_request; it connects on first use.
sub keep_alive_open {
    my(%a) = @_;
    return { %a, sock => undef, buf => '', connects => 0 };
}

# keep_alive_request(CONN, method => M, path => '/x', body => BYTES, ...):
# sends one request (request_bytes with keep_alive) on CONN and reads
# exactly its answer (Content-Length or chunked). A new connection is made
# when there is none or the last answer said Connection: close; a request
# is never sent twice. Returns an HTTP::Response (599 on a failure: the
# connection is then dropped).
sub keep_alive_request {
    my($c, %a) = @_;
    my $timeout = $c->{timeout} || 30;
    unless ($c->{sock}) {
        $c->{sock} = connect_to(%$c) or return failed_response("connect to $c->{port}: $!");
        $c->{sock}->autoflush(1);
        $c->{sel} = IO::Select->new($c->{sock});
        $c->{buf} = '';
        $c->{connects}++;
    }
    my $drop = sub { close $c->{sock} if $c->{sock}; $c->{sock} = undef; failed_response(shift) };
    local $SIG{PIPE} = 'IGNORE';
    my(undef, $err) = send_bytes($c->{sock}, request_bytes(port => $c->{port}, host => $c->{host},
                                                             %a, keep_alive => 1), $timeout);
    return $drop->("write: $err") if defined $err;
    my $deadline = Time::HiRes::time() + $timeout;
    # more bytes into $c->{buf}; false at EOF, on an error or at the deadline
    my $more = sub {
        while (1) {
            my $left = $deadline - Time::HiRes::time();
            return 0 if $left <= 0;
            next unless $c->{sel}->can_read($left > 1 ? 1 : $left);
            my $n = sysread $c->{sock}, $c->{buf}, 65536, length $c->{buf};
            next if !defined $n && $!{EINTR};
            return $n ? 1 : 0;
        }
    };
    my $end;
    until (($end = index $c->{buf}, "\r\n\r\n") >= 0) {
        $more->() or return $drop->(length $c->{buf} ? 'answer cut short' : 'no answer');
    }
    my $head = substr $c->{buf}, 0, $end + 4, '';
    my $res = HTTP::Response->parse($head);
    my $body = '';
    if (lc($res->header('Transfer-Encoding') || '') eq 'chunked') {
        while (1) {
            my $eol;
            until (($eol = index $c->{buf}, "\r\n") >= 0) {
                $more->() or return $drop->('chunked body cut short');
            }
            my($size) = substr($c->{buf}, 0, $eol) =~ /^([0-9a-fA-F]+)/
                or return $drop->('bad chunk size');
            my $n = hex $size;
            if ($n == 0) {    # the last chunk: trailer lines up to a blank one
                substr $c->{buf}, 0, $eol + 2, '';
                while (1) {
                    until (($eol = index $c->{buf}, "\r\n") >= 0) {
                        $more->() or return $drop->('chunked trailer cut short');
                    }
                    substr $c->{buf}, 0, $eol + 2, '';
                    last if $eol == 0;
                }
                last;
            }
            while (length($c->{buf}) < $eol + 2 + $n + 2) {
                $more->() or return $drop->('chunk cut short');
            }
            $body .= substr $c->{buf}, $eol + 2, $n;
            substr $c->{buf}, 0, $eol + 2 + $n + 2, '';
        }
    }
    elsif (defined(my $len = $res->header('Content-Length'))) {
        while (length $c->{buf} < $len) {
            $more->() or return $drop->('body cut short');
        }
        $body = substr $c->{buf}, 0, $len, '';
    }
    elsif (($a{method} // '') ne 'HEAD' && $res->code !~ /^(1|204|304)/) {
        1 while $more->();    # no length: the body ends when the server closes
        $body = $c->{buf};
        $c->{buf} = '';
        $drop->('closed');
    }
    $res->content(($a{method} // '') eq 'HEAD' ? '' : $body);
    if (lc($res->header('Connection') || '') eq 'close' || $res->protocol ne 'HTTP/1.1') {
        close $c->{sock} if $c->{sock};
        $c->{sock} = undef;
    }
    return $res;
}

1;

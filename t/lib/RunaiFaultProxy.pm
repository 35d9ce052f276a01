package RunaiFaultProxy;
# A faulty TCP proxy between httpd and redis-server, both on 127.0.0.1, for
# fault drills (t/33_fault_drill.t). A forked child process, pure Perl, one
# IO::Select loop over every socket:
#   - it parses the redis protocol both ways: commands from httpd (RESP
#     arrays of bulk strings, "*N\r\n$len\r\nbytes\r\n..."; an inline
#     command, one line, is understood too) and redis's replies (simple
#     strings, errors, integers, bulk strings, arrays), so it counts
#     commands by verb and knows which reply answers which command;
#   - the test arms ONE fault for the Nth command, counted from arming,
#     whose verb is in a given set, with one of these actions:
#       drop_request  close both sides; the command never reaches redis;
#       drop_reply    forward the command, read redis's whole reply, then
#                     close the httpd side without sending it (the write
#                     happened, its reply is lost);
#       delay MS      hold the command MS milliseconds, then forward it;
#                     like bytes in flight on a network, it is delivered
#                     even when httpd has given up and closed meanwhile;
#       cut           forward the first part of the command only, then
#                     close both sides (redis sees half a command);
#   - it reports the commands it saw (counts by verb and their order) and
#     whether the armed fault fired.
# The test talks to it on a control port of its own: one connection per
# request, one line each way (the answer is JSON). Every wait is bounded;
# the child ends when told to, when its parent is gone, and is killed by
# PID in an END block (and on TERM/INT) of the process that started it.
use strict;
use warnings;

use Errno ();
use IO::Select ();
use IO::Socket::INET ();
use JSON::PP ();
use POSIX ();
use Time::HiRes ();
use RunaiHosts ();    # wait_until; loaded first, so its TERM handler is chained below

my $JSON = JSON::PP->new->utf8->canonical;
my $OWNER = $$;
my %RUNNING;    # pid => proxy, in the process that started them

my %ACTIONS = map { $_ => 1 } qw(drop_request drop_reply delay cut);

# --- the redis protocol ---------------------------------------------------------

# resp_value(BUF, OFFSET): the length of the one complete RESP value at
# OFFSET of BUF, 0 when more bytes are needed, undef when the bytes are no
# RESP value.
sub resp_value {
    my($buf, $off) = @_;
    my $eol = index($$buf, "\r\n", $off);
    return 0 if $eol < 0;
    my $type = substr($$buf, $off, 1);
    my $head = substr($$buf, $off + 1, $eol - $off - 1);
    my $after = $eol + 2;
    if ($type eq '+' || $type eq '-' || $type eq ':') {
        return $after - $off;
    }
    if ($type eq '$') {
        return undef unless $head =~ /^-?\d+$/;
        return $after - $off if $head < 0;    # the null bulk string
        return 0 if length($$buf) < $after + $head + 2;
        return undef unless substr($$buf, $after + $head, 2) eq "\r\n";
        return $after + $head + 2 - $off;
    }
    if ($type eq '*') {
        return undef unless $head =~ /^-?\d+$/;
        my $at = $after;
        for (1 .. ($head < 0 ? 0 : $head)) {
            my $n = resp_value($buf, $at);
            return $n unless $n;    # incomplete or not RESP
            $at += $n;
        }
        return $at - $off;
    }
    return undef;
}

# next_command(BUF): removes the first complete command from BUF; returns
# (its bytes, its verb in upper case), () when more bytes are needed. A
# command that is no RESP array is taken as one inline line.
sub next_command {
    my $buf = shift;
    return () unless length $$buf;
    if (substr($$buf, 0, 1) eq '*') {
        my $n = resp_value($buf, 0);
        return () if defined $n && $n == 0;
        if (defined $n) {
            my $bytes = substr($$buf, 0, $n, '');
            my($verb) = $bytes =~ /^\*\d+\r\n\$\d+\r\n([^\r\n]*)\r\n/;
            return ($bytes, uc($verb // '?'));
        }
    }
    my $eol = index($$buf, "\n");
    return () if $eol < 0;
    my $bytes = substr($$buf, 0, $eol + 1, '');
    my($verb) = $bytes =~ /^\s*(\S+)/;
    return ($bytes, uc($verb // '?'));
}

# --- the parent's side: start, control, stop --------------------------------------

# RunaiFaultProxy->start(upstream_port => P): a running proxy; its port
# (where httpd connects) is $proxy->port.
sub start {
    my($class, %o) = @_;
    my $upstream = $o{upstream_port} or die "RunaiFaultProxy: upstream_port is required\n";
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                                       Listen => 128, ReuseAddr => 1)
        or die "RunaiFaultProxy: cannot listen on 127.0.0.1: $!\n";
    my $control = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
                                        Listen => 16, ReuseAddr => 1)
        or die "RunaiFaultProxy: cannot listen on 127.0.0.1: $!\n";
    my $self = bless {
        port         => $listen->sockport,
        control_port => $control->sockport,
        upstream     => $upstream,
    }, $class;
    my $parent = $$;
    my $pid = fork // die "RunaiFaultProxy: fork: $!\n";
    unless ($pid) {
        # The child: never the parent's END blocks or test output.
        $SIG{TERM} = $SIG{INT} = sub { POSIX::_exit(0) };
        open(STDIN, '<', '/dev/null');
        open(STDOUT, '>', '/dev/null');
        my $ok = eval { serve($listen, $control, $upstream, $parent); 1 };
        print STDERR "# RunaiFaultProxy: $@" unless $ok;
        POSIX::_exit($ok ? 0 : 1);
    }
    close $listen;
    close $control;
    $self->{pid} = $pid;
    $RUNNING{$pid} = $self;
    # up when the control port answers (or gone when the child died)
    my $up;
    RunaiHosts::wait_until(10, 0.02, sub {
        $up = eval { $self->call('ping') };
        return 1 if $up && $up->{pong};
        return waitpid($pid, POSIX::WNOHANG()) == $pid;
    });
    unless ($up && $up->{pong}) {
        $self->stop;
        die "RunaiFaultProxy: the proxy did not answer on its control port within 10 s\n";
    }
    return $self;
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

# call(WORDS...): one control request; the decoded answer (dies when the
# proxy does not answer within 5 s).
sub call {
    my($self, @words) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{control_port},
                                  Proto => 'tcp', Timeout => 2)
        or die "RunaiFaultProxy: control port $self->{control_port}: $!\n";
    local $SIG{PIPE} = 'IGNORE';
    syswrite($s, join(' ', @words) . "\n") or die "RunaiFaultProxy: control write: $!\n";
    my $sel = IO::Select->new($s);
    my $buf = '';
    my $deadline = Time::HiRes::time() + 5;
    while ($buf !~ /\n/) {
        my $left = $deadline - Time::HiRes::time();
        die "RunaiFaultProxy: no answer to '@words' within 5 s\n" if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread $s, $buf, 65536, length $buf;
        next if !defined $n && $!{EINTR};
        last unless $n;
    }
    close $s;
    my($line) = $buf =~ /^([^\n]*)\n/ or die "RunaiFaultProxy: no answer to '@words'\n";
    my $res = $JSON->decode($line);
    die "RunaiFaultProxy: '@words': $res->{error}\n" if $res->{error};
    return $res;
}

# reset(): counts and order of commands back to zero, no fault armed.
sub reset { $_[0]->call('reset') }

# arm(verbs => [VERB...], nth => N, action => A, ms => MS): one fault for
# the Nth command from now whose verb is one of VERBS (replaces an earlier
# armed fault; counts are kept).
sub arm {
    my($self, %o) = @_;
    my $verbs = join ',', map { uc } @{ $o{verbs} || [] };
    die "RunaiFaultProxy: arm needs verbs\n" unless length $verbs;
    die "RunaiFaultProxy: unknown action '" . ($o{action} // '') . "'\n" unless $ACTIONS{ $o{action} // '' };
    my $nth = $o{nth} || 1;
    my $ms = $o{ms} || 0;
    return $self->call('arm', $verbs, $nth, $o{action}, $ms);
}

sub disarm { $_[0]->call('disarm') }

# status(): { counts => {VERB => N}, seq => [VERB...] (at most the last
# 1000), armed => 0|1, fired => 0|1, fault => 'what was armed',
# fired_detail => 'what happened', connections => N accepted since reset,
# late => N commands forwarded after httpd had closed }.
sub status { $_[0]->call('status') }

# wait_fired(SECONDS): the status once the armed fault fired, or the last
# status when SECONDS passed first.
sub wait_fired {
    my($self, $seconds) = @_;
    my $st;
    RunaiHosts::wait_until($seconds, 0.02, sub { ($st = $self->status)->{fired} });
    return $st;
}

# wait_idle(SECONDS): true once no command is held and no connection is
# waiting for a late delivery (a delayed command whose httpd side closed).
sub wait_idle {
    my($self, $seconds) = @_;
    return RunaiHosts::wait_until($seconds, 0.02, sub { !$self->status->{held} }) ? 1 : 0;
}

sub stop {
    my $self = shift;
    my $pid = delete $self->{pid} or return;
    delete $RUNNING{$pid};
    kill 'TERM', $pid;
    RunaiHosts::reap(5, $pid);    # KILLs it when TERM was not enough
}

sub stop_all {
    return unless $$ == $OWNER;
    $_->stop for values %RUNNING;
}

END { my $status = $?; stop_all(); $? = $status; }

# A TERM or INT (a harness timeout) stops the proxies, then does what was
# done before (RunaiHosts stops its services and exits).
for my $sig (qw(TERM INT)) {
    my $before = $SIG{$sig};
    $SIG{$sig} = sub {
        stop_all();
        if (ref $before eq 'CODE') { $before->(@_) }
        else { POSIX::_exit(1) }
    };
}

# --- the child: the proxy itself -----------------------------------------------------

# One proxied connection:
#   c, u         httpd's socket and redis's (u undef once closed)
#   c_in, u_in   bytes read and not yet parsed
#   c_out, u_out bytes to write
#   queue        commands not yet forwarded: {bytes, verb, at (not before this
#                time), and its fault: drop_request, drop_reply, cut or delay}
#   waiting      per forwarded command, in order: 1 when its reply is to be dropped
#   c_gone       httpd closed its side: deliver what is queued, then close
sub serve {
    my($listen, $control, $upstream, $parent) = @_;
    $SIG{PIPE} = 'IGNORE';
    $_->blocking(0) for $listen, $control;
    my %state = (counts => {}, seq => [], connections => 0, late => 0);
    my $fault;            # {verbs => {V => 1}, nth, action, ms, seen, fired, detail}
    my @pairs;
    my %ctl;              # control connections: fileno => {s, in}
    my $stop = 0;

    my $close_pair = sub {
        my $p = shift;
        for my $k (qw(c u)) {
            close $p->{$k} if $p->{$k};
            $p->{$k} = undef;
        }
        $p->{dead} = 1;
    };
    my $fire = sub {
        my($detail) = @_;
        $fault->{fired} = 1;
        $fault->{detail} = $detail;
    };
    my $status = sub {
        my $held = grep { !$_->{dead} && (@{ $_->{queue} } || ($_->{c_gone} && $_->{u})) } @pairs;
        return {
            counts      => $state{counts},
            seq         => $state{seq},
            connections => $state{connections},
            late        => $state{late},
            held        => $held + 0,
            armed       => ($fault && !$fault->{fired}) ? 1 : 0,
            fired       => ($fault && $fault->{fired}) ? 1 : 0,
            fault       => $fault ? join(' ', join(',', sort keys %{ $fault->{verbs} }),
                                         $fault->{nth}, $fault->{action}, $fault->{ms}) : '',
            fired_detail => $fault ? ($fault->{detail} // '') : '',
        };
    };
    my $control_line = sub {
        my $line = shift;
        my @w = split ' ', $line;
        my $cmd = shift(@w) // '';
        if ($cmd eq 'ping') { return { pong => 1 } }
        if ($cmd eq 'status') { return $status->() }
        if ($cmd eq 'reset') {
            %state = (counts => {}, seq => [], connections => 0, late => 0);
            $fault = undef;
            return $status->();
        }
        if ($cmd eq 'disarm') { $fault = undef; return $status->() }
        if ($cmd eq 'arm') {
            my($verbs, $nth, $action, $ms) = @w;
            return { error => 'arm VERBS NTH ACTION MS' }
                unless defined $ms && $nth =~ /^\d+$/ && $nth > 0 && $ms =~ /^\d+$/ && $ACTIONS{$action};
            $fault = { verbs => { map { uc($_) => 1 } split /,/, $verbs },
                       nth => $nth, action => $action, ms => $ms, seen => 0, fired => 0 };
            return $status->();
        }
        if ($cmd eq 'quit') { $stop = 1; return { bye => 1 } }
        return { error => "unknown control request '$cmd'" };
    };

    # The commands httpd sent, parsed, counted, faulted and queued.
    my $take_commands = sub {
        my $p = shift;
        while (!$p->{dead}) {
            my($bytes, $verb) = next_command(\$p->{c_in});
            last unless defined $bytes;
            $state{counts}{$verb}++;
            push @{ $state{seq} }, $verb;
            shift @{ $state{seq} } if @{ $state{seq} } > 1000;
            my $item = { bytes => $bytes, at => 0, verb => $verb };
            if ($fault && !$fault->{fired} && $fault->{verbs}{$verb}
                && ++$fault->{seen} == $fault->{nth}) {
                my $a = $fault->{action};
                $item->{drop_request} = 1 if $a eq 'drop_request';
                $item->{drop_reply} = 1 if $a eq 'drop_reply';
                $item->{cut} = 1 if $a eq 'cut';
                $item->{delay} = $fault->{ms} if $a eq 'delay';
                $item->{at} = Time::HiRes::time() + $fault->{ms} / 1000 if $a eq 'delay';
            }
            push @{ $p->{queue} }, $item;
        }
    };
    # A connection-ending fault at the head of the queue waits until the
    # commands before it are answered and their replies sent to httpd.
    my $blocked = sub {
        my $p = shift;
        my $head = $p->{queue}[0] or return 0;
        return ($head->{drop_request} || $head->{cut})
            && (@{ $p->{waiting} } || length $p->{u_out} || length $p->{c_out});
    };
    # Forwards the queued commands whose time has come, in order.
    my $forward = sub {
        my $p = shift;
        my $now = Time::HiRes::time();
        while (!$p->{dead} && @{ $p->{queue} } && $p->{queue}[0]{at} <= $now) {
            return if $blocked->($p);
            my $item = shift @{ $p->{queue} };
            $state{late}++ if $p->{c_gone};
            if ($item->{drop_request}) {
                $fire->("$item->{verb} dropped before redis, connection closed");
                $close_pair->($p);
                return;
            }
            if ($item->{cut}) {
                # the array header and about half of the rest
                my $part = substr($item->{bytes}, 0, int(length($item->{bytes}) / 2) || 1);
                my $n = syswrite $p->{u}, $part;    # small: the socket takes it
                $fire->("$item->{verb} cut after " . ($n // 0) . ' of ' . length($item->{bytes})
                        . ' bytes, connection closed');
                $close_pair->($p);
                return;
            }
            $p->{u_out} .= $item->{bytes};
            push @{ $p->{waiting} }, $item->{drop_reply} ? 1 : 0;
            $fire->("$item->{verb} held $item->{delay} ms, then forwarded"
                    . ($p->{c_gone} ? ' (httpd had closed: delivered late)' : ''))
                if defined $item->{delay};
        }
    };
    # redis's replies: each answers the oldest forwarded command.
    my $take_replies = sub {
        my $p = shift;
        while (!$p->{dead} && length $p->{u_in}) {
            my $n = resp_value(\$p->{u_in}, 0);
            if (!defined $n) {    # not RESP: pass it on as it is
                $p->{c_out} .= $p->{u_in} if $p->{c};
                $p->{u_in} = '';
                last;
            }
            last unless $n;
            my $reply = substr($p->{u_in}, 0, $n, '');
            my $drop = shift @{ $p->{waiting} };
            if ($drop) {
                (my $shown = substr($reply, 0, 40)) =~ s/\r\n/ /g;
                $fire->("reply dropped after redis answered ($shown), connection closed");
                # the replies before it still go out (best effort)
                syswrite $p->{c}, $p->{c_out} if $p->{c} && length $p->{c_out};
                $close_pair->($p);
                last;
            }
            $p->{c_out} .= $reply if $p->{c};
        }
    };

    my $last_parent_check = 0;
    until ($stop) {
        my $now = Time::HiRes::time();
        if ($now - $last_parent_check > 0.5) {
            $last_parent_check = $now;
            last if getppid() != $parent;    # the test is gone
        }
        # a late delivery is not waited for forever
        for my $p (grep { !$_->{dead} && $_->{c_gone} } @pairs) {
            $close_pair->($p) if $now > $p->{gone_deadline};
        }
        @pairs = grep { !$_->{dead} } @pairs;
        my $r = IO::Select->new($listen, $control);
        my $w = IO::Select->new;
        my $timeout = 0.2;
        for my $p (@pairs) {
            $r->add($p->{c}) if $p->{c};
            $r->add($p->{u}) if $p->{u};
            $w->add($p->{c}) if $p->{c} && length $p->{c_out};
            $w->add($p->{u}) if $p->{u} && length $p->{u_out};
            if (@{ $p->{queue} } && !$blocked->($p)) {
                my $left = $p->{queue}[0]{at} - $now;
                $timeout = $left if $left < $timeout;
            }
        }
        for my $c (values %ctl) {
            $r->add($c->{s});
            $w->add($c->{s}) if length $c->{out};
        }
        $timeout = 0 if $timeout < 0;
        my($readable, $writable) = IO::Select->select($r, $w, undef, $timeout);
        my %can_r = map { fileno($_) => 1 } @{ $readable || [] };
        my %can_w = map { fileno($_) => 1 } @{ $writable || [] };

        if ($can_r{ fileno $listen }) {
            while (my $c = $listen->accept) {
                $c->blocking(0);
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $upstream,
                                              Proto => 'tcp', Timeout => 2);
                unless ($u) {
                    close $c;
                    next;
                }
                $u->blocking(0);
                $state{connections}++;
                push @pairs, { c => $c, u => $u, c_in => '', u_in => '', c_out => '', u_out => '',
                               queue => [], waiting => [] };
            }
        }
        if ($can_r{ fileno $control }) {
            while (my $s = $control->accept) {
                $s->blocking(0);
                $ctl{ fileno $s } = { s => $s, in => '', out => '', born => $now };
            }
        }
        for my $fd (keys %ctl) {
            my $c = $ctl{$fd};
            if ($can_r{$fd}) {
                my $n = sysread $c->{s}, $c->{in}, 4096, length $c->{in};
                if (defined $n && $n == 0 && !length $c->{out}) {
                    close $c->{s};
                    delete $ctl{$fd};
                    next;
                }
            }
            if ($c->{in} =~ s/^([^\n]*)\n//) {
                my $res = eval { $control_line->($1) } || { error => "$@" };
                $c->{out} .= $JSON->encode($res) . "\n";
                $c->{done} = 1;
            }
            if ($can_w{$fd} && length $c->{out}) {
                my $n = syswrite $c->{s}, $c->{out};
                substr($c->{out}, 0, $n, '') if $n;
            }
            if (($c->{done} && !length $c->{out}) || $now - $c->{born} > 10) {
                close $c->{s};
                delete $ctl{$fd};
            }
        }
        for my $p (@pairs) {
            next if $p->{dead};
            if ($p->{c} && $can_r{ fileno $p->{c} }) {
                my $n = sysread $p->{c}, $p->{c_in}, 65536, length $p->{c_in};
                if (defined $n && $n == 0 || !defined $n && !$!{EAGAIN} && !$!{EINTR}) {
                    # httpd closed: what it sent is still delivered
                    close $p->{c};
                    $p->{c} = undef;
                    $p->{c_out} = '';
                    $p->{c_gone} = 1;
                    $p->{gone_deadline} = $now + 30;
                }
                $take_commands->($p);
            }
            next if $p->{dead};
            if ($p->{u} && $can_r{ fileno $p->{u} }) {
                my $n = sysread $p->{u}, $p->{u_in}, 65536, length $p->{u_in};
                if (defined $n && $n == 0 || !defined $n && !$!{EAGAIN} && !$!{EINTR}) {
                    $take_replies->($p);
                    $p->{c_gone} ? $close_pair->($p) : do {
                        # redis closed: httpd gets what redis sent, then EOF
                        close $p->{u};
                        $p->{u} = undef;
                        $p->{queue} = [];
                        $p->{u_closed} = 1;
                    };
                    next if $p->{dead};
                }
                else {
                    $take_replies->($p);
                }
            }
            next if $p->{dead};
            $forward->($p) if $p->{u};
            next if $p->{dead};
            for my $k (qw(u c)) {
                my $s = $p->{$k} or next;
                next unless length $p->{"${k}_out"};
                my $n = syswrite $s, $p->{"${k}_out"};
                if (defined $n) {
                    substr($p->{"${k}_out"}, 0, $n, '');
                }
                elsif (!$!{EAGAIN} && !$!{EINTR}) {
                    $close_pair->($p);
                    last;
                }
            }
            next if $p->{dead};
            # httpd gone and nothing left to deliver or to wait for
            $close_pair->($p) if $p->{c_gone} && !@{ $p->{queue} } && !length $p->{u_out}
                                 && !@{ $p->{waiting} };
            $close_pair->($p) if $p->{u_closed} && $p->{c} && !length $p->{c_out};
        }
    }
    close $_->{s} for values %ctl;
    $close_pair->($_) for @pairs;
}

1;

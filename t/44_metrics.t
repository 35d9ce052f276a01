# The counters (issue 15): a known mix of requests on a virtual host of its
# own (t/conf/metrics.conf.in), then the counts asserted exactly on both
# pages: mod_status's /server-status?auto lines and the Prometheus page of
# SetHandler runai-token-metrics, parsed by the reference parser (Debian's
# python3-prometheus-client, t/tools/prom_parse.py); the two pages agree
# sample for sample, the latency histogram keeps its invariants, and
# another host's counts do not move. On an httpd of its own: the counts
# survive apache2 -k graceful and -k restart, a new virtual host at a
# graceful restart carries the others' counts, and a store that does not
# answer is counted.
use strict;
use warnings FATAL => 'all';
use FindBin ();
use lib "$FindBin::Bin/lib";

use Apache::Test qw(-withtestmore);
use File::Spec::Functions qw(catfile);
use IPC::Open3 qw(open3);
use RunaiTest;
use RunaiHosts;

my $PARSER = catfile($FindBin::Bin, 'tools', 'prom_parse.py');
my $PYTHON = '/usr/bin/python3';
my $A = vhost_port('metrics_a');
my $B = vhost_port('metrics_b');
my $logs = Apache::Test::vars('t_logs');

# --- the pages -------------------------------------------------------------------

# The Prometheus page through the reference parser: { "name|k=v|..." => value }
# (labels sorted by name), and the families by name.
sub prometheus {
    my($port) = @_;
    my $res = http_request(port => $port, method => 'GET', path => '/metrics');
    is($res->code, 200, 'metrics page: 200') or diag($res->as_string);
    my($in, $out);
    my $pid = open3($in, $out, undef, $PYTHON, $PARSER);
    print $in $res->content;
    close $in;
    my $json = do { local $/; <$out> };
    waitpid $pid, 0;
    is($? >> 8, 0, 'the reference parser reads the page') or diag($res->content);
    my $fams = eval { JSON::PP->new->decode($json) } || [];
    my(%v, %fam);
    for my $f (@$fams) {
        $fam{ $f->{name} } = $f;
        for my $s (@{ $f->{samples} }) {
            $v{ key($s->{name}, %{ $s->{labels} }) } = $s->{value};
        }
    }
    return (\%v, \%fam, $res);
}

# /server-status?auto: the module's lines, in the same shape.
sub auto_lines {
    my($port) = @_;
    my $res = http_request(port => $port, method => 'GET', path => '/server-status?auto');
    is($res->code, 200, 'server-status?auto: 200') or diag($res->as_string);
    my %v;
    for my $line (split /\n/, $res->content) {
        next unless $line =~ /^(runai_token_\w+)((?: [a-z]+=\S*)*): (\S+)$/;
        my($name, $labels, $value) = ($1, $2, $3);
        $v{ key($name, map { split /=/, $_, 2 } grep { length } split / /, $labels) } = $value + 0;
    }
    return \%v;
}

sub key {
    my($name, %l) = @_;
    return join '|', $name, map { "$_=$l{$_}" } sort keys %l;
}

# Counts of one host from a page, without its vhost label.
sub of_host {
    my($v, $host) = @_;
    my %h;
    for my $k (keys %$v) {
        next unless $k =~ /\|vhost=\Q$host\E(?:\||$)/;
        (my $short = $k) =~ s/\|vhost=\Q$host\E(?=\||$)//;
        $h{$short} = $v->{$k};
    }
    return \%h;
}

# after - before, the samples that moved; histogram buckets and sum apart.
sub moved {
    my($before, $after) = @_;
    my %d;
    for my $k (keys %$after) {
        next if $k =~ /^runai_token_store_latency_seconds|^runai_token_store_(?:records|slots|evictions)/;
        my $n = $after->{$k} - ($before->{$k} // 0);
        $d{$k} = $n if $n;
    }
    return \%d;
}

# The vhost label of a port's host (server_hostname:port).
sub host_label {
    my($v, $port) = @_;
    my %names = map { /\|vhost=([^|]*:\Q$port\E)(?:\||$)/ ? ($1 => 1) : () } keys %$v;
    my @n = keys %names;
    is(scalar @n, 1, "one host's label ends in :$port") or diag(join ', ', @n);
    return $n[0] // "none:$port";
}

# The histogram of a host: cumulative buckets, +Inf == _count.
sub histogram_ok {
    my($v, $host, $what) = @_;
    my @le = qw(0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 1 +Inf);
    my @b = map { $v->{ key('runai_token_store_latency_seconds_bucket', le => $_, vhost => $host) } } @le;
    is(scalar(grep { defined } @b), scalar @le, "$what: every bucket, +Inf last") or return;
    ok(!grep({ $b[$_] < $b[$_ - 1] } 1 .. $#b), "$what: the buckets are cumulative");
    is($b[-1], $v->{ key('runai_token_store_latency_seconds_count', vhost => $host) }, "$what: +Inf == _count");
    cmp_ok($v->{ key('runai_token_store_latency_seconds_sum', vhost => $host) }, '>=', 0, "$what: _sum");
    return $b[-1];
}

# --- the principals of this file ----------------------------------------------------

my $tag = sprintf '%x%x', time, $$;
my %p = (app => "mapp$tag", victim => "mvictim$tag", user => "muser$tag");
my %pw = map { ($_ => random_secret("m-$_-")) } keys %p;
htpasswd_file(catfile($logs, 'metrics-principals.htpasswd'), map { ($p{$_} => $pw{$_}) } keys %p);
my $wrong = random_secret('m-wrong-');

my($v0) = prometheus($A);
my $a0 = auto_lines($A);
my $HA = host_label($v0, $A);
my $HB = host_label($v0, $B);

# --- the mix on metrics_a ------------------------------------------------------------

my @app;
for my $i (1 .. 3) {
    my $res = token_call($A, { grantType => 'app_token', appID => $p{app}, appSecret => $pw{app} });
    is($res->code, 200, "app_token $i: 200") or diag($res->as_string);
    push @app, (reply_of($res) || {})->{accessToken} // 'none';
}
for my $i (1 .. 2) {
    is(token_call($A, { grantType => 'app_token', appID => $p{victim}, appSecret => $wrong })->code, 401,
       "a wrong secret $i: 401");
}
is(token_call($A, { grantType => 'app_token', appID => $p{victim}, appSecret => $pw{victim} })->code, 429,
   'after two failures: throttled (429)');
my @rt;
for my $i (1 .. 2) {
    my $res = password_login($A, $p{user}, $pw{user});
    is($res->code, 200, "password $i: 200") or diag($res->as_string);
    push @rt, (reply_of($res) || {})->{refreshToken} // 'none';
}
my $r1 = refresh_call($A, $rt[0]);
is($r1->code, 200, 'refresh 1: 200');
my $next = (reply_of($r1) || {})->{refreshToken} // 'none';
is(refresh_call($A, $next)->code, 200, 'refresh 2 (its successor): 200');
is(refresh_call($A, $rt[0])->code, 401, 'the first token again: 401, its session revoked');
my $rev = http_request(port => $A, method => 'POST', path => '/protocol/openid-connect/revoke',
                       type => 'application/x-www-form-urlencoded', body => 'token=' . url_encode($rt[1]));
is($rev->code, 200, 'revocation: 200') or diag($rev->as_string);
is(http_request(port => $A, method => 'GET', path => '/protocol/openid-connect/logout')->code, 200, 'logout: 200');

sub guarded {
    my($path, @auth) = @_;
    return http_request(port => $A, method => 'GET', path => $path,
                        headers => [@auth ? (Authorization => "@auth") : ()])->code;
}
is(guarded('/guarded/x', Bearer => $app[0]), 404, 'guard: a token accepted (then no such file)');
is(guarded('/guarded/y', Bearer => $app[1]), 404, 'guard: another accepted');
is(guarded('/guarded/x'), 401, 'guard: no token');
is(guarded('/guarded/x', Bearer => 'abc'), 401, 'guard: not a JWS');
is(guarded('/guarded/x', Bearer => flip_signature($app[2])), 401, 'guard: a bad signature');
is(guarded('/guarded-admins/x', Bearer => $app[2]), 403, 'guard: accepted, then insufficient_scope');

# --- the counts -------------------------------------------------------------------

my($v1, $fam1, $page) = prometheus($A);
my $a1 = auto_lines($A);
is($page->header('Content-Type'), 'text/plain; version=0.0.4; charset=utf-8', 'the exposition format 0.0.4');
is_deeply($a1, $v1, 'server-status?auto and the Prometheus page have the same samples');
my $ans = 'runai_token_answers_total';
my $tok = 'route=/api/v1/token';
is_deeply(of_host(moved($v0, $v1), $HA), {
    "$ans|grant=app_token|outcome=granted|$tok"             => 3,
    "$ans|grant=app_token|outcome=invalid_credentials|$tok" => 2,
    "$ans|grant=app_token|outcome=throttled|$tok"           => 1,
    "$ans|grant=password|outcome=granted|$tok"              => 2,
    "$ans|grant=refresh_token|outcome=granted|$tok"         => 2,
    "$ans|grant=refresh_token|outcome=reused|$tok"          => 1,
    "$ans|grant=revoke|outcome=revoked|route=/protocol/openid-connect/revoke" => 1,
    "$ans|grant=logout|outcome=logged_out|route=/protocol/openid-connect/logout" => 1,
    'runai_token_refresh_rotations_total' => 2,
    'runai_token_reuse_revocations_total' => 1,
    'runai_token_revocations_total'       => 1,
    'runai_token_logouts_total'           => 1,
    'runai_token_throttled_total'         => 1,
    'runai_token_guard_accepted_total'    => 3,
    'runai_token_guard_refused_total|reason=no_token'           => 1,
    'runai_token_guard_refused_total|reason=not_jws'            => 1,
    'runai_token_guard_refused_total|reason=bad_signature'      => 1,
    'runai_token_guard_refused_total|reason=insufficient_scope' => 1,
}, 'metrics_a: exactly the mix sent') or diag(explain(of_host(moved($v0, $v1), $HA)));
is($v1->{ key('runai_token_store_errors_total', vhost => $HA) }, $v0->{ key('runai_token_store_errors_total', vhost => $HA) },
   'metrics_a: no store error');
my $calls0 = histogram_ok($v0, $HA, 'before') // 0;
my $calls1 = histogram_ok($v1, $HA, 'after');
cmp_ok($calls1 - $calls0, '>=', 10, 'the store calls of the mix are in the histogram');
is_deeply(of_host(moved($v0, $v1), $HB), {}, 'metrics_b: nothing moved');
is($fam1->{runai_token_answers}{type}, 'counter', 'answers: a counter family');
is($fam1->{runai_token_store_latency_seconds}{type}, 'histogram', 'latency: a histogram family');
is($fam1->{runai_token_store_records}{type}, 'gauge', 'the default store reports its fill');
cmp_ok($v1->{'runai_token_store_records'}, '>=', 1, 'the store holds records');
cmp_ok($v1->{'runai_token_store_slots_used'}, '<=', $v1->{'runai_token_store_slots'}, 'slots used <= slots');

# metrics_b counts its own; metrics_a does not move
is(token_call($B, { grantType => 'app_token', appID => $p{app}, appSecret => $pw{app} })->code, 200, 'metrics_b: app_token');
my($v2) = prometheus($B);
is_deeply(of_host(moved($v1, $v2), $HB), { "$ans|grant=app_token|outcome=granted|$tok" => 1 },
          'metrics_b: its one answer');
is_deeply(of_host(moved($v1, $v2), $HA), {}, 'metrics_a: unchanged by metrics_b');

my $html = http_request(port => $A, method => 'GET', path => '/server-status');
like($html->content, qr{<h2>mod_runai_token</h2>.*runai_token_answers_total}s, 'server-status: the HTML section');
is(http_request(port => $A, method => 'HEAD', path => '/metrics')->code, 200, 'HEAD: 200');
my $post = http_request(port => $A, method => 'POST', path => '/metrics', body => '');
is($post->code, 405, 'POST: 405');
# httpd lists the allowed methods in no fixed order (and adds TRACE).
my %allow = map { $_ => 1 } split /\s*,\s*/, $post->header('Allow') // '';
ok($allow{GET} && $allow{HEAD} && !$allow{POST}, 'POST: Allow names GET and HEAD, not POST')
    or diag('Allow: ' . ($post->header('Allow') // 'none'));
for my $page ($html->content, $page->content, join "\n", %$a1) {
    ok(index($page, $pw{app}) < 0 && index($page, $app[0]) < 0 && index($page, $p{app}) < 0,
       'no secret, token or principal on the pages');
}

# --- an httpd of its own: graceful, restart, a new host, a store down -----------------

my $mod = '/usr/lib/apache2/modules';
my $pages = <<"EOF";
<Location /metrics>
    SetHandler runai-token-metrics
</Location>
<Location /server-status>
    SetHandler server-status
</Location>
EOF
my $s = load_secrets();
my $h = start_httpd(name => 'metrics', global => "LoadModule status_module $mod/mod_status.so",
                    site => session_site() . $pages);
my $hp = $h->{port};
my $hn = "127.0.0.1:$hp";
my $granted = key($ans, grant => 'app_token', outcome => 'granted', route => '/api/v1/token', vhost => $hn);
my $app_call = sub { token_call($hp, { grantType => 'app_token', appID => 'app-md5', appSecret => $s->{apps}{'app-md5'} }) };
$app_call->() for 1 .. 2;
is((prometheus($hp))[0]{$granted}, 2, 'own httpd: 2 answers');
my($rc, $out) = graceful_httpd($h);
is($rc, 0, 'apache2 -k graceful') or diag($out);
is((prometheus($hp))[0]{$granted}, 2, 'after graceful: still 2');
$app_call->();
is(auto_lines($hp)->{$granted}, 3, 'after graceful: 3 (?auto)');
restart_httpd($h);
is((prometheus($hp))[0]{$granted}, 3, 'after -k restart: still 3');

# a new virtual host: a new layout, the counts carried by name
my $p2 = free_port();
$h->{site} .= <<"EOF";
Listen 127.0.0.1:$p2
<VirtualHost 127.0.0.1:$p2>
    ServerName metrics-new.example.test
    RunaiTokenSigningKey \@FIXTURES\@/ec256.pem
</VirtualHost>
EOF
RunaiHosts::write_conf($h);
($rc, $out) = graceful_httpd($h);
is($rc, 0, 'graceful with a new virtual host') or diag($out);
my($v3) = prometheus($hp);
is($v3->{$granted}, 3, 'a new virtual host: the counts of the others carried');
is($v3->{ key('runai_token_refresh_rotations_total', vhost => "metrics-new.example.test:$p2") }, 0,
   'the new host starts at 0');
stop_httpd($h);

# a store that does not answer: counted as errors, the answer as store_unavailable
my $dead = free_port();
my $d = start_httpd(name => 'metrics-down', cache => "redis:127.0.0.1:$dead",
                    site => session_site() . $pages);
is(password_login($d->{port}, 'bob', $s->{users}{bob})->code, 503, 'store down: password 503');
my($vd) = prometheus($d->{port});
my $dn = "127.0.0.1:$d->{port}";
is($vd->{ key($ans, grant => 'password', outcome => 'store_unavailable', route => '/api/v1/token', vhost => $dn) }, 1,
   'store down: one answer store_unavailable');
cmp_ok($vd->{ key('runai_token_store_errors_total', vhost => $dn) }, '>=', 1, 'store down: store errors counted');
ok(!exists $vd->{runai_token_store_records}, 'redis: no fill reported');
histogram_ok($vd, $dn, 'store down');
stop_httpd($d);

done_testing();

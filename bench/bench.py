#!/usr/bin/python3
"""make bench: mod_runai_token under wrk on loopback.

Starts httpd (event MPM, access log on) with the built module, runs wrk for
each scenario after a warm-up, and prints one table: requests/s, p50/p99
latency, server CPU per request, and the ratio to the scenario's base
(the ceiling, the machine's RSA or bcrypt rate, the unguarded GET)
measured in the same run, side by side in alternating rounds.
BENCH_SECONDS (per scenario, default 10), BENCH_ROUNDS (default 5) and
BENCH_LOADS (wrk connections, default 32) tune it. Everything listens on
127.0.0.1 only.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(TOP, ".libs", "mod_runai_token.so")
MODS = "/usr/lib/apache2/modules"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
LOADS = int(os.environ.get("BENCH_LOADS", "32"))
WARMUP = 2
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One httpd with one child process, so RSS and CPU are easy to read."""

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.secret = "bench-app-secret"
        self.password = "bench-user-password"
        k = os.path.join(root, "keys")
        os.makedirs(k)
        os.makedirs(os.path.join(root, "logs"))
        os.makedirs(os.path.join(root, "htdocs"))
        with open(os.path.join(root, "htdocs", "hello.txt"), "w") as f:
            f.write("hello\n")
        run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
             "rsa_keygen_bits:2048", "-out", f"{k}/rsa.pem"])
        run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-out", f"{k}/ec.pem"])
        with open(f"{k}/hs.key", "wb") as f:
            f.write(os.urandom(32))
        for name in ("rsa.pem", "ec.pem", "hs.key"):
            os.chmod(f"{k}/{name}", 0o600)
        # Secrets as an administrator stores them: bcrypt, cost 10.
        run(["htpasswd", "-cbB", "-C", "10", f"{root}/apps", "bench-app",
             self.secret])
        run(["htpasswd", "-cbB", "-C", "10", f"{root}/users", "bench-user",
             self.password])
        self.bcrypt_hash = open(f"{root}/apps").read().split(":", 1)[1].strip()
        user = "User nobody\nGroup nogroup\n" if os.geteuid() == 0 else ""
        if os.geteuid() == 0:
            shutil.chown(root, "nobody", "nogroup")
        conf = f"""
ServerRoot {root}
ServerName 127.0.0.1
Listen 127.0.0.1:{self.port}
PidFile {root}/httpd.pid
ErrorLog {root}/logs/error_log
LogLevel warn
DefaultRuntimeDir {root}/logs
{user}
LoadModule mpm_event_module {MODS}/mod_mpm_event.so
LoadModule authz_core_module {MODS}/mod_authz_core.so
LoadModule authz_user_module {MODS}/mod_authz_user.so
LoadModule authn_core_module {MODS}/mod_authn_core.so
LoadModule authn_file_module {MODS}/mod_authn_file.so
LoadModule alias_module {MODS}/mod_alias.so
LoadModule mime_module {MODS}/mod_mime.so
LoadModule socache_shmcb_module {MODS}/mod_socache_shmcb.so
LoadModule socache_redis_module {MODS}/mod_socache_redis.so
LoadModule runai_token_module {MODULE}
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog {root}/logs/access_log common
StartServers 1
ServerLimit 1
ThreadsPerChild 64
MaxRequestWorkers 64
MinSpareThreads 1
MaxSpareThreads 64
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
TypesConfig /etc/mime.types
DocumentRoot {root}/htdocs
# As Debian's apache2.conf: no .htaccess lookups, nothing served by default.
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
<Directory {root}/htdocs>
    Require all granted
</Directory>
RunaiTokenIssuer http://127.0.0.1:{self.port}
RunaiTokenSigningKey keys/ec.pem
RunaiTokenSigningKey keys/rsa.pem
RunaiTokenSigningKey hmac:keys/hs.key hs
RunaiTokenCache runai-shm
<AuthnProviderAlias file apps>
    AuthUserFile {root}/apps
</AuthnProviderAlias>
<AuthnProviderAlias file users>
    AuthUserFile {root}/users
</AuthnProviderAlias>
<LocationMatch "^/(api|v1|\\.well-known)/">
    SetHandler runai-token
    RunaiTokenAppProvider apps
    RunaiTokenPasswordProvider users
    RunaiTokenClaim email "%{{REMOTE_USER}}@example.com"
    RunaiTokenClaim groups "runai-users,ml" list
    # the refresh chains rotate each session hundreds of times a second
    RunaiTokenRefreshRate off
</LocationMatch>
Alias /static {root}/htdocs
<Location /static>
    Require all granted
</Location>
<Location /guarded>
    AuthType RunaiToken
    AuthName bench
    Require valid-user
</Location>
Alias /guarded {root}/htdocs
"""
        self.conf = os.path.join(root, "httpd.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        run(["/usr/sbin/apache2", "-f", self.conf, "-k", "start"])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("httpd did not start; see " + self.root + "/logs/error_log")

    def stop(self):
        pid = self.master_pid()
        subprocess.run(["/usr/sbin/apache2", "-f", self.conf, "-k", "stop"],
                       capture_output=True)
        for _ in range(100):
            if pid is None or not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.1)

    def master_pid(self):
        try:
            return int(open(os.path.join(self.root, "httpd.pid")).read())
        except (OSError, ValueError):
            return None

    def pids(self):
        master = self.master_pid()
        out = [master]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    st = open(f"/proc/{d}/stat").read()
                except OSError:
                    continue
                if int(st.rsplit(")", 1)[1].split()[1]) == master:
                    out.append(int(d))
        return out

    def cpu_seconds(self):
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for p in self.pids():
            try:
                f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])
            except OSError:
                pass
        return total / tick

    def child_rss_kb(self):
        kids = [p for p in self.pids() if p != self.master_pid()]
        rss = 0
        for p in kids:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        return rss

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, path, body):
        req = urllib.request.Request(self.url(path), data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            return json.load(r)


def wrk(server, path, seconds, conns, script=None, env=None, headers=()):
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency",
           "--timeout", "10s"]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", os.path.join(TOP, "bench", script)]
    cmd.append(server.url(path))
    e = dict(os.environ)
    e.update(env or {})
    cpu0 = server.cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, env=e).stdout
    cpu = server.cpu_seconds() - cpu0
    m = re.search(r"(\d+) requests in", out)
    reqs = int(m.group(1)) if m else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    return {"rps": rps, "p50": pct(50), "p99": pct(99), "requests": reqs,
            "cpu_us": cpu * 1e6 / reqs if reqs else float("nan"),
            "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errors.group(1) if errors else ""}


def measure(server, name, path, conns=LOADS, **kw):
    """One scenario, alone: a warm-up, then SECONDS."""
    wrk(server, path, WARMUP, conns, **kw)
    r = wrk(server, path, SECONDS, conns, **kw)
    r["name"] = name
    print(f"  {name}: {r['rps']:.0f} req/s", file=sys.stderr)
    return r


def paired(server, name, path, base, conns=LOADS, env_fn=None, **kw):
    """The scenario and its base in ROUNDS alternating rounds of
    SECONDS / ROUNDS each, after a warm-up. This machine's speed drifts by
    tens of percent within minutes (a shared VM), so a ratio is only
    meaningful between figures taken side by side: each round gives one,
    and the median of the rounds is the scenario's ratio. base() measures
    the base and returns its rate; env_fn(round) gives wrk's environment
    for a round (fresh refresh tokens)."""
    per = max(1, round(SECONDS / ROUNDS))
    env = kw.pop("env", None)

    def env_of(i):
        return env_fn(i) if env_fn else env

    wrk(server, path, WARMUP, conns, env=env_of(-1), **kw)
    rounds, bases = [], []
    for i in range(ROUNDS):
        bases.append(base(per))
        r = wrk(server, path, per, conns, env=env_of(i), **kw)
        r["ratio"] = r["rps"] / bases[-1]
        rounds.append(r)
    reqs = sum(r["requests"] for r in rounds)
    out = {
        "name": name,
        "rps": reqs / (per * ROUNDS),
        "p50": sorted(r["p50"] for r in rounds)[ROUNDS // 2],
        "p99": max(r["p99"] for r in rounds),
        "cpu_us": sum(r["cpu_us"] * r["requests"] for r in rounds) / reqs if reqs else float("nan"),
        "non2xx": sum(r["non2xx"] for r in rounds),
        "requests": reqs,
        "ratio": sorted(r["ratio"] for r in rounds)[ROUNDS // 2],
        "ratios": [r["ratio"] for r in rounds],
        "base": sum(bases) / len(bases),
    }
    print(f"  {name}: {out['rps']:.0f} req/s; ratio per round "
          + ", ".join(f"{x:.2f}" for x in out["ratios"]), file=sys.stderr)
    return out


def openssl_rsa_multi2(seconds):
    out = run(["openssl", "speed", "-seconds", str(seconds), "-multi", "2",
               "rsa2048"]).stdout
    m = re.search(r"rsa 2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)
    return float(m.group(1))


def bcrypt_tool(server, tmp):
    """A function of seconds giving bcrypt verifications/s on 2 threads."""
    exe = os.path.join(tmp, "bcrypt_speed")
    cflags = run(["pkg-config", "--cflags", "--libs", "apr-1", "apr-util-1"]).stdout.split()
    run(["cc", "-O2", "-o", exe, os.path.join(TOP, "bench", "bcrypt_speed.c"),
         "-lpthread"] + cflags)
    return lambda seconds: float(run([exe, server.secret, server.bcrypt_hash, "2",
                                      str(seconds)]).stdout)


def seed_refresh_tokens(server, path, per_thread):
    """Refresh tokens to start the chains of one run: one password login
    each (4 at a time), written to path1 and path2, one file per wrk
    thread."""

    def login(_):
        return server.post("/api/v1/token", {"grantType": "password",
                                             "username": "bench-user",
                                             "password": server.password})["refreshToken"]

    with ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(login, range(2 * per_thread)))
    for n in (1, 2):
        with open(f"{path}{n}", "w") as f:
            f.write("\n".join(tokens[(n - 1) * per_thread:n * per_thread]) + "\n")
    return path


def restart_with_keys(server, keys):
    """Restarts httpd with these RunaiTokenSigningKey lines, the first signs."""
    server.stop()
    conf = open(server.conf).read()
    conf = re.sub(r"RunaiTokenSigningKey .*\n", "", conf)
    lines = "".join(f"RunaiTokenSigningKey {k}\n" for k in keys)
    conf = conf.replace("RunaiTokenCache", lines + "RunaiTokenCache", 1)
    open(server.conf, "w").write(conf)
    server.start()


def restart_with_cache(server, cache, extra=""):
    """Restarts httpd with this RunaiTokenCache (and extra server lines)."""
    server.stop()
    conf = open(server.conf).read()
    conf = re.sub(r"RunaiTokenRedis\w+ .*\n", "", conf)
    conf = re.sub(r"RunaiTokenCache .*\n", f"{extra}RunaiTokenCache {cache}\n", conf)
    open(server.conf, "w").write(conf)
    server.start()


def start_redis(port, root, primary=None):
    """A redis-server on loopback without persistence (the client's cost is
    measured, not the disk's); a replica of primary when given."""
    os.makedirs(root)
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", root, "--logfile", f"{root}/log"]
    if primary:
        cmd += ["--replicaof", "127.0.0.1", str(primary)]
    proc = subprocess.Popen(cmd)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as c:
                c.sendall(b"INFO replication\r\n")
                if not primary or b"master_link_status:up" in c.recv(4096):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"redis-server on {port} did not start; see {root}/log")


def main():
    if not os.path.exists(MODULE):
        sys.exit("build the module first: make")
    tmp = tempfile.mkdtemp(prefix="runai-bench-")
    os.chmod(tmp, 0o755)
    server = Server(os.path.join(tmp, "srv"))
    server.start()
    rows = []
    ceilings = []
    jwks = "/.well-known/jwks.json"
    es, rs, hs = "keys/ec.pem", "keys/rsa.pem", "hmac:keys/hs.key hs"

    def ceiling(seconds):
        r = wrk(server, jwks, seconds, LOADS)["rps"]
        ceilings.append(r)
        return r

    app = {"BENCH_BODY": json.dumps({"appID": "bench-app", "appSecret": server.secret})}
    try:
        print(f"each scenario: {ROUNDS} rounds, alternating with its base", file=sys.stderr)
        jwks_row = measure(server, "ceiling: GET JWKS", jwks)
        ceilings.append(jwks_row["rps"])
        static_row = measure(server, "GET static file", "/static/hello.txt")

        rows.append(paired(server, "app_token ES256", "/api/v1/token", ceiling,
                           script="post.lua", env=app))
        restart_with_keys(server, [hs, es])
        rows.append(paired(server, "app_token HS256", "/api/v1/token", ceiling,
                           script="post.lua", env=app))
        restart_with_keys(server, [rs, es])
        rsa_rates = []

        def rsa(seconds):
            r = openssl_rsa_multi2(2)
            rsa_rates.append(r)
            return min(ceiling(seconds), r)

        rows.append(paired(server, "app_token RS256", "/api/v1/token", rsa,
                           script="post.lua", env=app))
        token_rs = server.post("/api/v1/token", {"appID": "bench-app",
                                                 "appSecret": server.secret})
        restart_with_keys(server, [es, rs, hs])

        def seeds(i):
            return {"BENCH_SEEDS": seed_refresh_tokens(
                server, os.path.join(tmp, f"seeds-{i + 1}-"), LOADS)}

        rows.append(paired(server, "refresh_token ES256 (runai-shm)", "/api/v1/token", ceiling,
                           script="refresh.lua", env_fn=seeds))

        bcrypt = bcrypt_tool(server, tmp)
        rows.append(paired(server, "password (bcrypt cost 10)", "/api/v1/token", bcrypt,
                           conns=4, script="post.lua",
                           env={"BENCH_BODY": json.dumps({"grantType": "password",
                                                          "username": "bench-user",
                                                          "password": server.password})}))

        token_es = server.post("/api/v1/token", {"appID": "bench-app",
                                                 "appSecret": server.secret})

        def plain(seconds):
            return wrk(server, "/static/hello.txt", seconds, LOADS)["rps"]

        # A user's token names its session (sid): the guard also looks at
        # the session in the store, once per process every
        # RunaiTokenSessionCheck (5) seconds.
        token_user = server.post("/api/v1/token", {"grantType": "password",
                                                   "username": "bench-user",
                                                   "password": server.password})
        for name, tok in (("RS256 token", token_rs), ("ES256 token", token_es),
                          ("ES256 user token (session looked at)", token_user)):
            rows.append(paired(server, f"GET guarded, {name}", "/guarded/hello.txt", plain,
                               headers=[f"Authorization: Bearer {tok['accessToken']}"]))

        # The redis stores: the module's own client, alone and waiting for a
        # replica at each write (RunaiTokenRedisReplicas 1), beside
        # mod_socache_redis through the same store code (socache:redis:).
        rp, rr = free_port(), free_port()
        redis = [start_redis(rp, os.path.join(tmp, "redis-p"))]
        redis.append(start_redis(rr, os.path.join(tmp, "redis-r"), primary=rp))
        try:
            for name, cache, extra in (
                    ("redis", f"redis:127.0.0.1:{rp}", ""),
                    ("redis, 1 replica waited for", f"redis:127.0.0.1:{rp}",
                     "RunaiTokenRedisReplicas 1\n"),
                    ("mod_socache_redis", f"socache:redis:127.0.0.1:{rp}", "")):
                restart_with_cache(server, cache, extra)
                rows.append(paired(server, f"refresh_token ES256 ({name})", "/api/v1/token",
                                   ceiling, script="refresh.lua", env_fn=seeds))
        finally:
            for proc in redis:
                proc.kill()
                proc.wait()
        restart_with_cache(server, "runai-shm")

        # Soak: RSS of the child after 10,000 and after 200,000 app_token requests.
        done = 0
        rss = {}
        while done < 200000:
            r = wrk(server, "/api/v1/token", 2, LOADS, script="post.lua", env=app)
            done += r["requests"]
            if "10k" not in rss and done >= 10000:
                rss["10k"] = (done, server.child_rss_kb())
        rss["200k"] = (done, server.child_rss_kb())
    finally:
        server.stop()

    goals = {
        "app_token ES256": ("ceiling", 0.50),
        "app_token HS256": ("ceiling", 0.70),
        "app_token RS256": ("min(ceiling, openssl rsa2048 -multi 2)", 0.70),
        "refresh_token ES256 (runai-shm)": ("ceiling", 0.35),
        "refresh_token ES256 (redis)": ("ceiling", 0.15),
        "refresh_token ES256 (redis, 1 replica waited for)": ("ceiling", 0.15),
        "refresh_token ES256 (mod_socache_redis)": ("ceiling", 0.0),
        "password (bcrypt cost 10)": ("bcrypt on 2 threads", 0.90),
        "GET guarded, RS256 token": ("unguarded GET", 0.75),
        "GET guarded, ES256 token": ("unguarded GET", 0.75),
        "GET guarded, ES256 user token (session looked at)": ("unguarded GET", 0.75),
    }
    print()
    print(f"mod_runai_token bench, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"wrk -t2 -c{LOADS}, {ROUNDS} rounds of {max(1, round(SECONDS / ROUNDS))} s "
          f"per scenario (password: -c4)")
    print(f"ceiling (GET JWKS) {min(ceilings):.0f}-{max(ceilings):.0f} req/s over the run; "
          f"openssl speed -multi 2 rsa2048 {min(rsa_rates):.0f}-{max(rsa_rates):.0f} sign/s")
    print("ratio: the median over the rounds of scenario / base, each round measuring both "
          "side by side; base: the mean of the base's rounds")
    print()
    print("| scenario | req/s | p50 ms | p99 ms | CPU µs/req | ratio (rounds) | goal | met |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    failed = False
    for r in [jwks_row, static_row]:
        print(f"| {r['name']} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['cpu_us']:.0f} | {r['rps'] / jwks_row['rps']:.2f} | | |")
    for r in rows:
        what, want = goals[r["name"]]
        met = r["ratio"] >= want and r["non2xx"] == 0
        failed |= not met
        extra = f" ({r['non2xx']} non-2xx)" if r["non2xx"] else ""
        rounds = " / ".join(f"{x:.2f}" for x in r["ratios"])
        print(f"| {r['name']}{extra} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['cpu_us']:.0f} | **{r['ratio']:.2f}** ({rounds}) | "
              f"≥ {want:.2f} × {what} ({r['base']:.0f}/s) | {'yes' if met else 'NO'} |")
    grow = rss["200k"][1] - rss["10k"][1]
    ok = grow <= 2048
    failed |= not ok
    print(f"| worker RSS after {rss['10k'][0]} → {rss['200k'][0]} requests | "
          f"{rss['10k'][1] / 1024:.1f} → {rss['200k'][1] / 1024:.1f} MB | | | | "
          f"{grow / 1024:+.1f} MB | within 2 MB | {'yes' if ok else 'NO'} |")
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

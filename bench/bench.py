#!/usr/bin/python3
"""make bench: mod_runai_token under wrk on loopback.

Starts httpd (event MPM, access log on) with the built module, runs wrk for
each scenario after a warm-up, and prints one table: requests/s, p50/p99
latency, server CPU per request, and the ratio to the ceiling measured in
the same run. BENCH_SECONDS (default 10) and BENCH_LOADS (wrk connections,
default 32) tune it. Everything listens on 127.0.0.1 only.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = os.path.join(TOP, ".libs", "mod_runai_token.so")
MODS = "/usr/lib/apache2/modules"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
LOADS = int(os.environ.get("BENCH_LOADS", "32"))
WARMUP = 2


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
RunaiTokenCache shmcb:{root}/logs/cache(16777216)
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
    wrk(server, path, WARMUP, conns, **kw)
    r = wrk(server, path, SECONDS, conns, **kw)
    r["name"] = name
    print(f"  {name}: {r['rps']:.0f} req/s", file=sys.stderr)
    return r


def openssl_rsa_multi2():
    out = run(["openssl", "speed", "-seconds", str(max(1, SECONDS // 3)), "-multi", "2",
               "rsa2048"]).stdout
    m = re.search(r"rsa 2048 bits\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)", out)
    return float(m.group(1))


def bcrypt_per_second(server, tmp):
    exe = os.path.join(tmp, "bcrypt_speed")
    cflags = run(["pkg-config", "--cflags", "--libs", "apr-1", "apr-util-1"]).stdout.split()
    run(["cc", "-O2", "-o", exe, os.path.join(TOP, "bench", "bcrypt_speed.c"),
         "-lpthread"] + cflags)
    return float(run([exe, server.secret, server.bcrypt_hash, "2", str(SECONDS / 2)]).stdout)


def seed_refresh_tokens(server, tmp, per_thread):
    """Refresh tokens to start the chains: one login each, then split."""
    tokens = []
    first = server.post("/api/v1/token", {"grantType": "password",
                                          "username": "bench-user",
                                          "password": server.password})
    tokens.append(first["refreshToken"])
    while len(tokens) < 2 * per_thread:
        r = server.post("/api/v1/token", {"grantType": "password",
                                          "username": "bench-user",
                                          "password": server.password})
        tokens.append(r["refreshToken"])
    for n in (1, 2):
        with open(os.path.join(tmp, f"seeds{n}"), "w") as f:
            f.write("\n".join(tokens[(n - 1) * per_thread:n * per_thread]) + "\n")
    return os.path.join(tmp, "seeds")


def main():
    if not os.path.exists(MODULE):
        sys.exit("build the module first: make")
    tmp = tempfile.mkdtemp(prefix="runai-bench-")
    os.chmod(tmp, 0o755)
    server = Server(os.path.join(tmp, "srv"))
    server.start()
    rows = []
    try:
        print("running the scenarios (the machine's RSA and bcrypt limits are measured next to the runs they bound)...", file=sys.stderr)

        ceiling_jwks = measure(server, "ceiling: GET JWKS", "/.well-known/jwks.json")
        ceiling_static = measure(server, "ceiling: GET static file", "/static/hello.txt")
        ceiling = max(ceiling_jwks["rps"], ceiling_static["rps"])
        rows += [ceiling_jwks, ceiling_static]

        def app(alg_path):
            return {"BENCH_BODY": json.dumps({"appID": "bench-app",
                                              "appSecret": server.secret})}

        es = measure(server, "app_token ES256", "/api/v1/token", script="post.lua",
                     env=app("es"))
        rows.append(es)
        # HS256 and RS256 need their key first: restart with it listed first.
        for alg, key in (("HS256", "hmac:keys/hs.key hs"), ("RS256", "keys/rsa.pem")):
            server.stop()
            conf = open(server.conf).read()
            conf = re.sub(r"RunaiTokenSigningKey .*\n", "", conf)
            conf = conf.replace("RunaiTokenCache", f"RunaiTokenSigningKey {key}\n"
                                "RunaiTokenSigningKey keys/ec.pem\nRunaiTokenCache", 1)
            open(server.conf, "w").write(conf)
            server.start()
            if alg == "RS256":
                # The machine's RSA signing rate, just before and just after
                # the RS256 run: the mean is its limit.
                rsa_before = openssl_rsa_multi2()
            rows.append(measure(server, f"app_token {alg}", "/api/v1/token",
                                script="post.lua", env=app(alg)))
            if alg == "RS256":
                rsa_after = openssl_rsa_multi2()
                rsa_limit = (rsa_before + rsa_after) / 2
                print(f"  openssl speed -multi 2 rsa2048: {rsa_before:.0f} sign/s before, "
                      f"{rsa_after:.0f} after", file=sys.stderr)
                token_rs = server.post("/api/v1/token", {"appID": "bench-app",
                                                         "appSecret": server.secret})
        # back to ES256 signing for the rest
        server.stop()
        conf = open(server.conf).read()
        conf = re.sub(r"RunaiTokenSigningKey .*\n", "", conf)
        conf = conf.replace("RunaiTokenCache", "RunaiTokenSigningKey keys/ec.pem\n"
                            "RunaiTokenSigningKey keys/rsa.pem\n"
                            "RunaiTokenSigningKey hmac:keys/hs.key hs\nRunaiTokenCache", 1)
        open(server.conf, "w").write(conf)
        server.start()

        seeds = seed_refresh_tokens(server, tmp, LOADS)
        wrk_env = {"BENCH_SEEDS": seeds}
        r = wrk(server, "/api/v1/token", SECONDS, LOADS, script="refresh.lua",
                env=wrk_env)
        r["name"] = "refresh_token ES256 (shmcb)"
        print(f"  {r['name']}: {r['rps']:.0f} req/s", file=sys.stderr)
        rows.append(r)

        # The bcrypt rate of the machine, just before and just after the
        # password grant's own run: the mean is its ceiling.
        bcrypt_before = bcrypt_per_second(server, tmp)
        pw = measure(server, "password (bcrypt cost 10)", "/api/v1/token", conns=4,
                     script="post.lua",
                     env={"BENCH_BODY": json.dumps({"grantType": "password",
                                                    "username": "bench-user",
                                                    "password": server.password})})
        rows.append(pw)
        bcrypt_after = bcrypt_per_second(server, tmp)
        bcrypt_limit = (bcrypt_before + bcrypt_after) / 2
        print(f"  bcrypt cost 10 on 2 threads: {bcrypt_before:.1f}/s before, "
              f"{bcrypt_after:.1f}/s after", file=sys.stderr)

        token_es = server.post("/api/v1/token", {"appID": "bench-app",
                                                 "appSecret": server.secret})
        plain = measure(server, "GET static file (unguarded)", "/static/hello.txt")
        g_rs = measure(server, "GET guarded, RS256 token", "/guarded/hello.txt",
                       headers=[f"Authorization: Bearer {token_rs['accessToken']}"])
        g_es = measure(server, "GET guarded, ES256 token", "/guarded/hello.txt",
                       headers=[f"Authorization: Bearer {token_es['accessToken']}"])
        rows += [plain, g_rs, g_es]

        # Soak: RSS of the child after 10,000 and after 200,000 app_token requests.
        body = {"BENCH_BODY": json.dumps({"appID": "bench-app", "appSecret": server.secret})}
        done = 0
        rss = {}
        while done < 200000:
            r = wrk(server, "/api/v1/token", 2, LOADS, script="post.lua", env=body)
            done += r["requests"]
            if "10k" not in rss and done >= 10000:
                rss["10k"] = (done, server.child_rss_kb())
        rss["200k"] = (done, server.child_rss_kb())
    finally:
        server.stop()

    goals = {
        "app_token ES256": ("ceiling", 0.50),
        "app_token HS256": ("ceiling", 0.70),
        "app_token RS256": ("rsa", 0.70),
        "refresh_token ES256 (shmcb)": ("ceiling", 0.35),
        "password (bcrypt cost 10)": ("bcrypt", 0.90),
        "GET guarded, RS256 token": ("plain", 0.75),
        "GET guarded, ES256 token": ("plain", 0.75),
    }
    bases = {"ceiling": ceiling, "rsa": min(ceiling, rsa_limit),
             "bcrypt": bcrypt_limit, "plain": plain["rps"]}
    print()
    print(f"mod_runai_token bench, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"wrk -t2 -c{LOADS} -d{SECONDS}s (password: -c4)")
    print(f"ceiling = {ceiling:.0f} req/s; openssl rsa2048 -multi 2 = {rsa_limit:.0f}/s "
          f"(mean of {rsa_before:.0f} before and {rsa_after:.0f} after the RS256 run); "
          f"bcrypt cost 10 on 2 threads = {bcrypt_limit:.1f}/s "
          f"(mean of {bcrypt_before:.1f} before and {bcrypt_after:.1f} after the password run)")
    print()
    print(f"| scenario | req/s | p50 ms | p99 ms | CPU µs/req | ratio | goal | met |")
    print(f"|---|---:|---:|---:|---:|---:|---|---|")
    failed = False
    for r in rows:
        g = goals.get(r["name"])
        if g:
            base = bases[g[0]]
            ratio = r["rps"] / base
            goal = f"≥ {g[1]:.2f} × {g[0]}"
            met = "yes" if ratio >= g[1] and r["non2xx"] == 0 else "NO"
            failed |= met != "yes"
        else:
            ratio = r["rps"] / ceiling
            goal, met = "", ""
        extra = f" ({r['non2xx']} non-2xx)" if r["non2xx"] else ""
        print(f"| {r['name']}{extra} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['cpu_us']:.0f} | {ratio:.2f} | {goal} | {met} |")
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

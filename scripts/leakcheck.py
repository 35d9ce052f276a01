#!/usr/bin/python3
"""Request driver and report of `make leakcheck` (scripts/leakcheck.sh).

  leakcheck.py drive --port P --work DIR --phase default|redis [--rounds N]
                     [--redis-port R]
      Sends the request mix to the httpd that leakcheck.sh runs under
      valgrind: every route and every error path of the module, ROUNDS
      times. Each request states the status it must get; a request that
      gets another one is reported and the run fails (the mix must really
      walk the paths it claims to). In the redis phase the driver kills
      the redis-server that leakcheck.sh started (--redis-pid) in the
      middle (the 503 paths of a store that died) and starts it again on
      the same port (recovery).

  leakcheck.py report LOG...
      Reads valgrind's logs: prints the leak totals, every "definitely
      lost" or "indirectly lost" record whose stack has a frame of
      mod_runai_token, libjwt or jansson, and every memcheck error (invalid
      read/write, use of uninitialised values...) in those; exits 1 when
      there is one.

Only the standard library: this runs under Debian's /usr/bin/python3.
"""

import argparse
import base64
import collections
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets as rnd
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

# --------------------------------------------------------------------------
# HTTP


class Client:
    """Keep-alive HTTP/1.1 to one port; Host picks the virtual host."""

    def __init__(self, port, source="127.0.0.1"):
        self.port = port
        self.source = source
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=120, source_address=(self.source, 0))

    def request(self, method, host, path, body=None, headers=None, chunked=False):
        hdrs = {"Host": host}
        hdrs.update(headers or {})
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                if chunked:
                    self.conn.request(method, path, body=iter([body[:7], body[7:]]),
                                      headers=hdrs, encode_chunked=True)
                else:
                    self.conn.request(method, path, body=body, headers=hdrs)
                res = self.conn.getresponse()
                data = res.read()
                if res.getheader("Connection", "").lower() == "close":
                    self.close()
                return res.status, res, data
            except (http.client.RemoteDisconnected, ConnectionResetError,
                    BrokenPipeError, http.client.CannotSendRequest):
                # the server closed a kept-alive connection: once more
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def form(pairs):
    return "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in pairs).encode()


def pkce_pair():
    verifier = b64u(rnd.token_bytes(32))
    challenge = b64u(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge


def hs256(key, header, claims):
    """A compact JWS signed with KEY; header and claims as given (raw
    strings are used as they are, so malformed JSON can be sent)."""
    h = header if isinstance(header, (bytes, str)) else json.dumps(header)
    c = claims if isinstance(claims, (bytes, str)) else json.dumps(claims)
    h = h.encode() if isinstance(h, str) else h
    c = c.encode() if isinstance(c, str) else c
    signing = b64u(h) + "." + b64u(c)
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64u(sig)


# --------------------------------------------------------------------------
# the mix


class Mix:
    def __init__(self, args):
        self.args = args
        self.port = args.port
        with open(os.path.join(args.work, "secrets.json")) as f:
            self.s = json.load(f)
        with open(os.path.join(args.work, "hmac.key"), "rb") as f:
            self.hmac_key = f.read()
        self.c = Client(self.port)
        self.stats = collections.Counter()      # (label, status) -> n
        self.wrong = []                         # unexpected answers
        self.n = 0
        self.store_down = False
        self.src = 0                            # rotates the throttle's source address

    # one request with the status it must get
    def want(self, label, status, method, host, path, body=None, headers=None,
             client=None, chunked=False):
        cl = client or self.c
        got, res, data = cl.request(method, host, path, body, headers, chunked)
        self.n += 1
        self.stats[(label, got)] += 1
        ok = got == status if isinstance(status, int) else got in status
        if not ok:
            self.wrong.append(f"{label}: {method} {host}{path} -> {got}, "
                              f"expected {status}: {data[:200]!r}")
        return got, res, data

    def json_of(self, data):
        try:
            return json.loads(data)
        except ValueError:
            return {}

    def token(self, label, status, host, obj, **kw):
        body = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        body = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": kw.pop("ctype", "application/json")}
        headers.update(kw.pop("headers", {}))
        return self.want(label, status, "POST", host, kw.pop("path", "/api/v1/token"),
                         body, headers, **kw)

    def oauth(self, label, status, host, pairs, path="/api/v1/token", headers=None):
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        body = pairs if isinstance(pairs, bytes) else form(pairs)
        return self.want(label, status, "POST", host, path, body, h)

    # ---- the grants, Run:ai JSON dialect -----------------------------------
    def app_token(self):
        s = self.s
        self.token("app_token md5", 200, "rs.test",
                   {"grantType": "app_token", "appID": "app-md5", "appSecret": s["app-md5"]})
        self.token("app_token bcrypt", 200, "rs.test",
                   {"appId": "app-bcrypt", "appSecret": s["app-bcrypt"]})
        self.token("client_credentials json", 200, "es.test",
                   {"grantType": "client_credentials", "clientId": "app-md5",
                    "clientSecret": s["app-md5"]})
        self.token("app_token wrong secret", 401, "rs.test",
                   {"grantType": "app_token", "appID": "app-md5", "appSecret": s["wrong"]})
        self.token("app_token unknown app", 401, "rs.test",
                   {"grantType": "app_token", "appID": "nobody-app", "appSecret": s["wrong"]})
        self.token("app_token missing secret", 400, "rs.test",
                   {"grantType": "app_token", "appID": "app-md5"})
        self.token("app_token missing id", 400, "rs.test",
                   {"grantType": "app_token", "appSecret": "x"})
        self.token("app_token not enabled", 400, "pw.test",
                   {"grantType": "app_token", "appID": "app-md5", "appSecret": s["app-md5"]})
        self.token("app_token provider fails", 503, "broken.test",
                   {"grantType": "app_token", "appID": "app-md5", "appSecret": s["app-md5"]})
        self.token("app_token chunked body", 200, "rs.test",
                   {"appID": "app-md5", "appSecret": s["app-md5"]}, chunked=True)

    def password(self):
        s = self.s
        want = 503 if self.store_down else 200
        _, _, d1 = self.token("password md5", want, "rs.test",
                              {"grantType": "password", "username": "alice",
                               "password": s["alice"], "clientID": "runai-cli"})
        self.token("password bcrypt", want, "rs.test",
                   {"grantType": "password", "username": "bob", "password": s["bob"]})
        self.token("password second provider", want, "rs.test",
                   {"grantType": "password", "username": "carol", "password": s["carol"]})
        self.token("password es256", want, "es.test",
                   {"grantType": "password", "username": "alice", "password": s["alice"]})
        self.token("password hs256", want, "hs.test",
                   {"grantType": "password", "username": "alice", "password": s["alice"]})
        self.token("password wrong", 401, "rs.test",
                   {"grantType": "password", "username": "alice", "password": s["wrong"]})
        self.token("password unknown user", 401, "rs.test",
                   {"grantType": "password", "username": "mallory", "password": s["wrong"]})
        self.token("password unknown client", 400, "rs.test",
                   {"grantType": "password", "username": "alice", "password": s["alice"],
                    "clientID": "no-such-client"})
        self.token("password missing password", 400, "rs.test",
                   {"grantType": "password", "username": "alice"})
        self.token("password missing username", 400, "rs.test",
                   {"grantType": "password", "password": "x"})
        self.token("password not enabled", 400, "app.test",
                   {"grantType": "password", "username": "alice", "password": s["alice"]})
        self.token("password provider fails", 503, "broken.test",
                   {"grantType": "password", "username": "alice", "password": s["alice"]})
        return self.json_of(d1)

    def refresh(self, login):
        if self.store_down:
            self.token("refresh store down", 503, "rs.test",
                       {"grantType": "refresh_token", "refreshToken": b64u(rnd.token_bytes(32))})
            self.want("legacy refresh store down", 503, "POST", "rs.test",
                      "/v1/k8s/auth/oauth/tokens/refresh?refresh_token=" + b64u(rnd.token_bytes(32)))
            return
        rt = login.get("refreshToken")
        if not rt:
            return
        _, _, d = self.token("refresh", 200, "rs.test",
                             {"grantType": "refresh_token", "refreshToken": rt})
        nxt = self.json_of(d).get("refreshToken", "")
        # the rotated token again, within the retry window: the same
        # successor again, the session kept
        self.token("refresh retried within the window", 200, "rs.test",
                   {"grantType": "refresh_token", "refreshToken": rt})
        _, _, d = self.want("legacy refresh", 200, "POST", "rs.test",
                            "/v1/k8s/auth/oauth/tokens/refresh?refresh_token="
                            + urllib.parse.quote(nxt))
        self.token("refresh unknown", 401, "rs.test",
                   {"grantType": "refresh_token", "refreshToken": b64u(rnd.token_bytes(32))})
        self.token("refresh missing", 400, "rs.test", {"grantType": "refresh_token"})
        self.want("legacy refresh missing", 400, "POST", "rs.test",
                  "/v1/k8s/auth/oauth/tokens/refresh")
        self.want("legacy refresh GET", 405, "GET", "rs.test",
                  "/v1/k8s/auth/oauth/tokens/refresh?refresh_token=x")
        return self.json_of(d).get("refreshToken")

    def revoke(self, login):
        """Reuse after the retry window revokes the whole session."""
        rt = login.get("refreshToken")
        if not rt or self.store_down:
            return
        _, _, d = self.token("refresh before revocation", 200, "rs.test",
                             {"grantType": "refresh_token", "refreshToken": rt})
        newest = self.json_of(d).get("refreshToken", "")
        time.sleep(2.2)
        self.token("refresh reused: revokes", 401, "rs.test",
                   {"grantType": "refresh_token", "refreshToken": rt})
        self.token("refresh of a revoked session", 401, "rs.test",
                   {"grantType": "refresh_token", "refreshToken": newest})

    def ending(self):
        """Revocation, logout, force logout, and the guard seeing the ends."""
        s, base = self.s, "/auth/realms/runai/protocol/openid-connect"
        down = self.store_down

        def logout_url(pairs):
            return base + "/logout?" + form(pairs).decode()

        self.want("logout without parameters", 200, "GET", "rs.test", base + "/logout")
        self.oauth("logout empty POST", 200, "rs.test", b"", path=base + "/logout")
        self.want("logout legacy redirect_uri", 302, "GET", "rs.test",
                  logout_url([("redirect_uri", "http://localhost:8000/cb?tenant=a"),
                              ("state", "s")]))
        self.want("logout unregistered", 400, "GET", "rs.test",
                  logout_url([("post_logout_redirect_uri", "https://evil.test/")]))
        self.want("revoke GET", 405, "GET", "rs.test", base + "/revoke")
        self.oauth("revoke missing token", 400, "rs.test", [("client_id", "runai-cli")],
                   path=base + "/revoke")
        self.want("force logout elsewhere", 403, "POST", "es.test", "/api/v1/users/bob/logout")
        self.want("force logout unauthenticated", 401, "POST", "rs.test", "/api/v1/users/bob/logout")
        self.want("force logout", 503 if down else 200, "POST", "rs.test",
                  "/api/v1/users/nobody/logout", headers={"Authorization": basic("alice", s["alice"])})
        if down:
            self.oauth("revoke store down", 503, "rs.test",
                       [("token", "A" * 22 + ".1." + "B" * 43)], path=base + "/revoke")
            return
        self.oauth("revoke unknown", 200, "rs.test",
                   [("token", b64u(rnd.token_bytes(32))), ("client_id", "runai-cli")],
                   path=base + "/revoke")
        logins = []
        for i in range(4):
            _, _, d = self.token("login to end", 200, "rs.test",
                                 {"grantType": "password", "username": "carol",
                                  "password": s["carol"], "clientID": "runai-cli"})
            logins.append(self.json_of(d))
        a, b, c, d = logins
        self.oauth("revoke of another client", 400, "rs.test",
                   [("token", a.get("refreshToken", "")), ("client_id", "webapp")],
                   path=base + "/revoke")
        self.oauth("revoke refresh token", 200, "rs.test",
                   [("token", a.get("refreshToken", "")), ("client_id", "runai-cli")],
                   path=base + "/revoke")
        self.token("refresh of a revoked session", 401, "rs.test",
                   {"grantType": "refresh_token", "refreshToken": a.get("refreshToken", "")})
        self.oauth("revoke access token", 200, "rs.test",
                   [("token", b.get("accessToken", "")), ("token_type_hint", "access_token"),
                    ("client_id", "runai-cli")], path=base + "/revoke")
        self.want("guard: a revoked session's token", 401, "GET", "rs.test", "/guard/",
                  headers={"Authorization": "Bearer " + b.get("accessToken", "")})
        self.want("logout with id_token_hint", 200, "GET", "rs.test",
                  logout_url([("id_token_hint", c.get("idToken", ""))]))
        _, _, ad = self.token("app token to revoke", 200, "rs.test",
                              {"appID": "app-md5", "appSecret": s["app-md5"]})
        self.oauth("revoke app token", 400, "rs.test",
                   [("token", self.json_of(ad).get("accessToken", ""))], path=base + "/revoke")
        self.want("force logout of carol", 200, "POST", "rs.test", "/api/v1/users/carol/logout",
                  headers={"Authorization": basic("alice", s["alice"])})
        self.token("refresh after a force logout", 401, "rs.test",
                   {"grantType": "refresh_token", "refreshToken": d.get("refreshToken", "")})
        self.want("guard after a force logout", 401, "GET", "rs.test", "/guard/",
                  headers={"Authorization": "Bearer " + d.get("accessToken", "")})

    def authorize(self, params, user="alice", host="rs.test", status=302, label="authorize"):
        q = urllib.parse.urlencode(params)
        headers = {"Authorization": basic(user, self.s[user])} if user else {}
        _, res, _ = self.want(label, status, "GET", host, "/api/v1/authorize?" + q,
                              headers=headers)
        loc = res.getheader("Location") or ""
        code = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query).get("code", [None])[0]
        # no code (the answer was wrong, and is reported): the flow goes on
        return code or "no-code-" + b64u(rnd.token_bytes(8))

    def code_flow(self):
        cb = "https://app.example.test/callback"
        down = self.store_down
        if down:
            self.authorize({"client_id": "webapp", "redirect_uri": cb}, status=503,
                           label="authorize store down")
            self.token("exchange store down", 503, "rs.test",
                       {"grantType": "exchange_token", "code": b64u(rnd.token_bytes(32)),
                        "redirectUri": cb})
            self.want("legacy exchange store down", 503, "GET", "rs.test",
                      "/v1/k8s/auth/token/exchange?" + urllib.parse.urlencode(
                          {"redirect_uri": cb, "code": "x" * 43}))
            return
        v, ch = pkce_pair()
        base = {"client_id": "webapp", "redirect_uri": cb, "state": "st&=?#x\u00e9",
                "nonce": "n-" + b64u(rnd.token_bytes(6)), "response_type": "code"}
        # PKCE, then the exchange (JSON), with the external token captured
        code = self.authorize(dict(base, code_challenge=ch, code_challenge_method="S256"))
        self.token("exchange with PKCE", 200, "rs.test",
                   {"grantType": "exchange_token", "code": code, "redirectUri": cb,
                    "codeVerifier": v, "clientID": "webapp"})
        self.token("exchange code reused", 401, "rs.test",
                   {"grantType": "exchange_token", "code": code, "redirectUri": cb,
                    "codeVerifier": v})
        code = self.authorize(dict(base, code_challenge=ch, code_challenge_method="S256"))
        self.token("exchange wrong verifier", 401, "rs.test",
                   {"grantType": "exchange_token", "code": code, "redirectUri": cb,
                    "codeVerifier": pkce_pair()[0]})
        code = self.authorize(dict(base, code_challenge=ch, code_challenge_method="S256"))
        self.token("exchange missing verifier", 401, "rs.test",
                   {"grantType": "exchange_token", "code": code, "redirectUri": cb})
        code = self.authorize(base)
        self.token("exchange redirect mismatch", 400, "rs.test",
                   {"grantType": "exchange_token", "code": code,
                    "redirectUri": cb + "/other"})
        code = self.authorize(base)
        self.token("exchange client mismatch", 400, "rs.test",
                   {"grantType": "exchange_token", "code": code, "redirectUri": cb,
                    "clientID": "runai-cli"})
        code = self.authorize(dict(base, redirect_uri="http://localhost:8000/cb?tenant=a"),
                              user="bob")
        self.want("legacy exchange", 200, "GET", "rs.test",
                  "/v1/k8s/auth/token/exchange?" + urllib.parse.urlencode(
                      {"redirect_uri": "http://localhost:8000/cb?tenant=a", "code": code}))
        code = self.authorize(dict(base, code_challenge=ch, code_challenge_method="S256"))
        self.want("legacy exchange with PKCE", 200, "GET", "rs.test",
                  "/v1/k8s/auth/token/exchange?" + urllib.parse.urlencode(
                      {"redirect_uri": cb, "code": code, "code_verifier": v}))
        self.want("legacy exchange missing code", 400, "GET", "rs.test",
                  "/v1/k8s/auth/token/exchange?redirect_uri=" + urllib.parse.quote(cb))
        self.want("legacy exchange POST", 405, "POST", "rs.test",
                  "/v1/k8s/auth/token/exchange", b"", {"Content-Type": "application/json"})
        self.token("exchange unknown code", 401, "rs.test",
                   {"grantType": "exchange_token", "code": b64u(rnd.token_bytes(32)),
                    "redirectUri": cb})
        self.token("exchange missing code", 400, "rs.test",
                   {"grantType": "exchange_token", "redirectUri": cb})
        self.token("exchange missing redirect", 400, "rs.test",
                   {"grantType": "exchange_token", "code": "x"})
        # the authorize endpoint's own refusals (never a redirect)
        for label, p in (
                ("authorize missing client_id", {"redirect_uri": cb}),
                ("authorize unknown client", {"client_id": "nope", "redirect_uri": cb}),
                ("authorize redirect not registered",
                 {"client_id": "webapp", "redirect_uri": cb + "#frag"}),
                ("authorize no redirect", {"client_id": "webapp"}),
                ("authorize response_type", dict(base, response_type="token")),
                ("authorize method plain", dict(base, code_challenge=ch,
                                                code_challenge_method="plain")),
                ("authorize method without challenge", dict(base, code_challenge_method="S256")),
                ("authorize short challenge", dict(base, code_challenge="abc",
                                                   code_challenge_method="S256")),
                ("authorize state too long", dict(base, state="s" * 1025)),
                ("authorize nonce too long", dict(base, nonce="n" * 1025))):
            self.authorize(p, status=400, label=label)
        self.want("authorize duplicate parameter", 400, "GET", "rs.test",
                  "/api/v1/authorize?client_id=webapp&client_id=webapp&redirect_uri="
                  + urllib.parse.quote(cb, safe=""),
                  headers={"Authorization": basic("alice", self.s["alice"])})
        self.want("authorize bad escape", 400, "GET", "rs.test",
                  "/api/v1/authorize?client_id=web%zzapp",
                  headers={"Authorization": basic("alice", self.s["alice"])})
        self.want("authorize NUL", 400, "GET", "rs.test",
                  "/api/v1/authorize?client_id=web%00app",
                  headers={"Authorization": basic("alice", self.s["alice"])})
        self.want("authorize bad UTF-8", 400, "GET", "rs.test",
                  "/api/v1/authorize?client_id=webapp&state=%ff%fe",
                  headers={"Authorization": basic("alice", self.s["alice"])})
        self.authorize(base, user=None, status=401, label="authorize without login")
        self.authorize(base, host="open.test", user=None, status=500,
                       label="authorize without AuthType")
        self.want("authorize POST", 405, "POST", "rs.test", "/api/v1/authorize", b"",
                  {"Content-Type": "application/json",
                   "Authorization": basic("alice", self.s["alice"])})

    def legacy_apptoken(self):
        s = self.s
        p = "/v1/k8s/auth/oauth/apptoken"
        self.token("legacy apptoken", 200, "rs.test",
                   {"id": "app-md5", "name": "ci", "secret": s["app-md5"]}, path=p)
        self.token("legacy apptoken wrong", 401, "rs.test",
                   {"id": "app-md5", "name": "ci", "secret": s["wrong"]}, path=p)
        self.token("legacy apptoken missing name", 400, "rs.test",
                   {"id": "app-md5", "secret": s["app-md5"]}, path=p)
        self.token("legacy apptoken form", 415, "rs.test", b"id=app-md5", path=p,
                   ctype="application/x-www-form-urlencoded")
        self.want("legacy apptoken GET", 405, "GET", "rs.test", p)

    # ---- the OAuth 2.0 form dialect ---------------------------------------
    def oauth_dialect(self):
        s = self.s
        kc = "/auth/realms/runai/protocol/openid-connect/token"
        want = 503 if self.store_down else 200
        _, _, d = self.oauth("oauth password", want, "rs.test",
                             [("grant_type", "password"), ("client_id", "runai-cli"),
                              ("username", "alice"), ("password", s["alice"]),
                              ("scope", "openid")], path=kc)
        rt = self.json_of(d).get("refresh_token")
        if rt:
            self.oauth("oauth refresh", 200, "rs.test",
                       [("grant_type", "refresh_token"), ("refresh_token", rt),
                        ("client_id", "runai-cli")])
            self.oauth("oauth refresh retried", 200, "rs.test",
                       [("grant_type", "refresh_token"), ("refresh_token", rt),
                        ("client_id", "runai-cli")])
        self.oauth("oauth client_credentials basic", 200, "rs.test",
                   [("grant_type", "client_credentials")],
                   headers={"Authorization": basic("app-md5", s["app-md5"])})
        self.oauth("oauth client_credentials post", 200, "rs.test",
                   [("grant_type", "client_credentials"), ("client_id", "app-md5"),
                    ("client_secret", s["app-md5"])], path=kc)
        self.oauth("oauth client credentials twice", 400, "rs.test",
                   [("grant_type", "client_credentials"), ("client_id", "app-md5"),
                    ("client_secret", s["app-md5"])],
                   headers={"Authorization": basic("app-md5", s["app-md5"])})
        self.oauth("oauth client_credentials wrong", 401, "rs.test",
                   [("grant_type", "client_credentials"), ("client_id", "app-md5"),
                    ("client_secret", s["wrong"])])
        self.oauth("oauth malformed basic", 401, "rs.test",
                   [("grant_type", "client_credentials")],
                   headers={"Authorization": "Basic !!!not-base64"})
        self.oauth("oauth password wrong", 400, "rs.test",
                   [("grant_type", "password"), ("username", "alice"),
                    ("password", s["wrong"])])
        self.oauth("oauth password with app secret", want, "rs.test",
                   [("grant_type", "password"), ("username", "bob"), ("password", s["bob"]),
                    ("client_id", "app-md5"), ("client_secret", s["app-md5"])])
        self.oauth("oauth password wrong client secret", 401, "rs.test",
                   [("grant_type", "password"), ("username", "bob"), ("password", s["bob"]),
                    ("client_id", "app-md5"), ("client_secret", s["wrong"])])
        self.oauth("oauth unregistered client", 401, "rs.test",
                   [("grant_type", "password"), ("username", "bob"), ("password", s["bob"]),
                    ("client_id", "stranger")])
        if not self.store_down:
            v, ch = pkce_pair()
            cb = "https://app.example.test/callback"
            code = self.authorize({"client_id": "webapp", "redirect_uri": cb,
                                   "code_challenge": ch, "code_challenge_method": "S256"})
            self.oauth("oauth authorization_code", 200, "rs.test",
                       [("grant_type", "authorization_code"), ("code", code),
                        ("redirect_uri", cb), ("client_id", "webapp"), ("code_verifier", v)],
                       path=kc)
            self.oauth("oauth authorization_code reused", 400, "rs.test",
                       [("grant_type", "authorization_code"), ("code", code),
                        ("redirect_uri", cb), ("client_id", "webapp"), ("code_verifier", v)])
        self.oauth("oauth unsupported grant", 400, "rs.test",
                   [("grant_type", "implicit"), ("client_id", "runai-cli")])
        self.oauth("oauth grant not enabled", 400, "app.test",
                   [("grant_type", "password"), ("username", "alice"), ("password", "x")])
        self.oauth("oauth missing grant_type", 400, "rs.test", [("client_id", "runai-cli")])
        self.oauth("oauth missing username", 400, "rs.test",
                   [("grant_type", "password"), ("password", "x")])
        self.oauth("oauth duplicate", 400, "rs.test",
                   [("grant_type", "password"), ("grant_type", "password")])
        self.oauth("oauth bad escape", 400, "rs.test", b"grant_type=pass%zzword")
        self.oauth("oauth NUL", 400, "rs.test", b"grant_type=password&username=a%00b")
        self.oauth("oauth bad UTF-8", 400, "rs.test", b"grant_type=password&username=%c3%28")
        self.oauth("oauth empty body", 400, "rs.test", b"")
        self.oauth("oauth provider fails", 503, "broken.test",
                   [("grant_type", "client_credentials"), ("client_id", "app-md5"),
                    ("client_secret", s["app-md5"])])

    # ---- malformed requests, every kind --------------------------------------
    def malformed(self):
        s = self.s
        for label, body in (
                ("json empty body", b""),
                ("json invalid", b'{"grantType": "app_token",'),
                ("json not an object", b'["app_token"]'),
                ("json bad UTF-8", b'{"grantType": "app_token", "appID": "\xc3\x28"}'),
                ("json NUL escape", b'{"grantType": "app_token", "appID": "a\\u0000b"}'),
                ("json raw NUL", b'{"grantType": "app\x00token"}'),
                ("json duplicate key", b'{"appID": "a", "APPID": "b", "appSecret": "c"}'),
                ("json number field", b'{"grantType": "app_token", "appID": 5, "appSecret": "x"}'),
                ("json null field", b'{"grantType": null}'),
                ("json object field", b'{"grantType": "password", "username": {"a": 1}}'),
                ("json array field", b'{"grantType": ["password"]}'),
                ("json bool field", b'{"grantType": "password", "password": true}'),
                ("json missing grantType", b'{"username": "alice"}'),
                ("json unknown grant", b'{"grantType": "device_code"}'),
                ("json deep nesting", b'{"x": ' + b"[" * 1500 + b"]" * 1500 + b"}"),
                ("json huge number", b'{"x": 1e999999, "grantType": "app_token"}'),
                ("json surrogate escape", b'{"grantType": "app_token", "appID": "\\ud800"}')):
            self.token(label, 400, "rs.test", body)
        self.token("json unknown keys ignored", 200, "rs.test",
                   {"appID": "app-md5", "appSecret": s["app-md5"], "extra": [1, {"a": None}]})
        self.token("json charset parameter", 200, "rs.test",
                   {"appID": "app-md5", "appSecret": s["app-md5"]},
                   ctype="Application/JSON; charset=utf-8")
        self.want("json no content type", 200, "POST", "rs.test", "/api/v1/token",
                  json.dumps({"appID": "app-md5", "appSecret": s["app-md5"]}).encode())
        self.token("text/plain", 415, "rs.test", b"{}", ctype="text/plain")
        self.token("multipart", 415, "rs.test", b"--x--", ctype="multipart/form-data; boundary=x")
        self.token("body over the limit", 413, "rs.test",
                   json.dumps({"appID": "app-md5", "appSecret": "x" * 5000}))
        head = b'{"grantType":"app_token","appID":"app-md5","appSecret":"'
        self.token("body at the limit", 401, "rs.test",
                   head + b"y" * (4096 - len(head) - 2) + b'"}')
        self.token("chunked body over the limit", 413, "rs.test",
                   json.dumps({"appID": "app-md5", "appSecret": "x" * 5000}), chunked=True)
        self.want("GET token", 405, "GET", "rs.test", "/api/v1/token")
        self.want("PUT token", 405, "PUT", "rs.test", "/api/v1/token", b"{}",
                  {"Content-Type": "application/json"})
        self.want("unknown path", 404, "GET", "rs.test", "/api/v1/nothing")
        self.want("unknown path POST", 404, "POST", "rs.test", "/api/v1/tokens", b"{}",
                  {"Content-Type": "application/json"})
        self.want("unknown realm", 404, "GET", "rs.test",
                  "/auth/realms/other/protocol/openid-connect/certs")

    # ---- discovery and JWKS ------------------------------------------------
    def documents(self):
        for host, paths in (
                ("rs.test", ("/auth/realms/runai/.well-known/openid-configuration",
                             "/.well-known/openid-configuration",
                             "/auth/realms/runai/protocol/openid-connect/certs",
                             "/.well-known/jwks.json")),
                ("es.test", ("/.well-known/openid-configuration", "/.well-known/jwks.json")),
                ("hs.test", ("/realm/.well-known/openid-configuration",
                             "/realm/protocol/openid-connect/certs"))):
            for p in paths:
                self.want("document GET", 200, "GET", host, p)
                self.want("document HEAD", 200, "HEAD", host, p)
        self.want("document POST", 405, "POST", "rs.test", "/.well-known/jwks.json", b"{}",
                  {"Content-Type": "application/json"})

    # ---- the bearer guard ----------------------------------------------------
    def guard(self, tokens):
        for t in tokens:
            self.want("guard good token", 200, "GET", "rs.test", "/guard/",
                      headers={"Authorization": "Bearer " + t})
        if tokens:
            t = tokens[0]
            self.want("guard require claim met", 200, "GET", "rs.test", "/guard/team",
                      headers={"Authorization": "Bearer " + t})
            self.want("guard require claim not met", 403, "GET", "rs.test", "/guard/named",
                      headers={"Authorization": "Bearer " + t})
            self.want("guard other audience", 401, "GET", "rs.test", "/guard/other",
                      headers={"Authorization": "Bearer " + t})
            self.want("guard user claim email", 200, "GET", "rs.test", "/guard/by-email",
                      headers={"Authorization": "Bearer " + t})
            head, body, sig = t.split(".")
            flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
            self.want("guard bad signature", 401, "GET", "rs.test", "/guard/",
                      headers={"Authorization": f"Bearer {head}.{body}.{flipped}"})
            self.want("guard five segments", 401, "GET", "rs.test", "/guard/",
                      headers={"Authorization": f"Bearer {t}.a.b"})
            self.want("guard two segments", 401, "GET", "rs.test", "/guard/",
                      headers={"Authorization": f"Bearer {head}.{body}"})
            self.want("guard empty signature", 401, "GET", "rs.test", "/guard/",
                      headers={"Authorization": f"Bearer {head}.{body}."})
            self.want("guard bad base64", 401, "GET", "rs.test", "/guard/",
                      headers={"Authorization": f"Bearer {head}.{body}.!!!"})
        for label, auth in (("guard no header", None), ("guard basic", "Basic eDp5"),
                            ("guard empty bearer", "Bearer "),
                            ("guard garbage", "Bearer not-a-jwt"),
                            ("guard too long", "Bearer " + "a" * 17000 + ".b.c")):
            self.want(label, 401, "GET", "rs.test", "/guard/",
                      headers={"Authorization": auth} if auth else {})
        # HS256 tokens forged with the hs.test key: every claim check
        now = int(time.time())
        iss = "https://hs.test/realm"
        good = {"iss": iss, "sub": "alice", "aud": "runai", "exp": now + 300,
                "iat": now, "groups": ["a", "b", 3, 1.5, True, None],
                "nested": {"x": [1, {"y": "z"}]}, "ratio": 0.25, "flag": False,
                "big": 2 ** 62, "odd name!": "v", "email": "alice@example.test"}
        hdr = {"alg": "HS256", "typ": "JWT"}
        cases = [
            ("guard hs good", 200, hdr, good),
            ("guard hs aud list", 200, hdr, dict(good, aud=["x", "runai"])),
            ("guard hs nbf past", 200, hdr, dict(good, nbf=now - 10)),
            ("guard hs real exp", 200, hdr, dict(good, exp=now + 300.5)),
            ("guard hs expired", 401, hdr, dict(good, exp=now - 3600)),
            ("guard hs not yet valid", 401, hdr, dict(good, nbf=now + 3600)),
            ("guard hs nbf not a number", 401, hdr, dict(good, nbf="soon")),
            ("guard hs no exp", 401, hdr, {k: v for k, v in good.items() if k != "exp"}),
            ("guard hs exp string", 401, hdr, dict(good, exp="tomorrow")),
            ("guard hs wrong issuer", 401, hdr, dict(good, iss="https://evil.test")),
            ("guard hs issuer not a string", 401, hdr, dict(good, iss=5)),
            ("guard hs wrong audience", 401, hdr, dict(good, aud="other")),
            ("guard hs audience list of non-strings", 401, hdr, dict(good, aud=[1, None])),
            ("guard hs no sub", 401, hdr, {k: v for k, v in good.items() if k != "sub"}),
            ("guard hs empty sub", 401, hdr, dict(good, sub="")),
            ("guard hs sub not a string", 401, hdr, dict(good, sub=42)),
            ("guard hs crit", 401, dict(hdr, crit=["exp"]), good),
            ("guard hs no alg", 401, {"typ": "JWT"}, good),
            ("guard hs alg none", 401, dict(hdr, alg="none"), good),
            ("guard hs alg RS256", 401, dict(hdr, alg="RS256"), good),
            ("guard hs kid unknown", 401, dict(hdr, kid="../../etc/passwd"), good),
            ("guard hs kid not a string", 401, dict(hdr, kid=7), good),
            ("guard hs header not an object", 401, "[1,2]", good),
            ("guard hs header not JSON", 401, "{nope", good),
            ("guard hs duplicate header key", 401, '{"alg":"HS256","alg":"HS256"}', good),
            ("guard hs claims not JSON", 401, hdr, "{nope"),
            ("guard hs claims array", 401, hdr, "[1]"),
            ("guard hs claims NUL", 401, hdr, '{"sub":"a\\u0000b"}'),
        ]
        for label, status, h, c in cases:
            t = hs256(self.hmac_key, h, c)
            self.want(label, status, "GET", "hs.test", "/guard/",
                      headers={"Authorization": "Bearer " + t})
        self.want("guard hs user claim number", 200, "GET", "hs.test", "/guard/uid",
                  headers={"Authorization": "Bearer " + hs256(self.hmac_key, hdr,
                                                              dict(good, uid=1000))})

    # ---- throttling ----------------------------------------------------------
    def throttle(self, rnd_id):
        """throttle.test allows 3 failures per principal and 30 per
        address in 60 s: a fresh principal and a fresh source address each
        round, so that the rounds do not lock each other out."""
        s = self.s
        self.src += 1
        src = f"127.0.{(self.src // 250) % 250 + 1}.{self.src % 250 + 2}"
        cl = Client(self.port, src)
        user = f"victim-{rnd_id}"
        status_fail = 401
        for i in range(3):
            self.token("throttle failure", status_fail, "throttle.test",
                       {"grantType": "password", "username": user, "password": s["wrong"]},
                       client=cl)
        self.token("throttled 429", 429, "throttle.test",
                   {"grantType": "password", "username": user, "password": s["wrong"]},
                   client=cl)
        self.oauth_via(cl, "throttled form dialect", 429, "throttle.test",
                       [("grant_type", "password"), ("username", user), ("password", "x")])
        app = f"app-{rnd_id}"
        for i in range(3):
            self.token("throttle app failure", 401, "throttle.test",
                       {"appID": app, "appSecret": s["wrong"]}, client=cl)
        self.token("throttled app 429", 429, "throttle.test",
                   {"appID": app, "appSecret": s["wrong"]}, client=cl)
        # a success resets the principal's counter
        self.token("throttle failure before success", 401, "throttle.test",
                   {"grantType": "password", "username": "alice", "password": s["wrong"]},
                   client=cl)
        self.token("throttle success", 200, "throttle.test",
                   {"grantType": "password", "username": "alice", "password": s["alice"]},
                   client=cl)
        cl.close()

    def oauth_via(self, cl, label, status, host, pairs):
        return self.want(label, status, "POST", host, "/api/v1/token", form(pairs),
                         {"Content-Type": "application/x-www-form-urlencoded"}, client=cl)

    # ---- the device authorization grant (RFC 8628) -------------------------------
    def device(self):
        base = "/auth/realms/runai"
        dev, tok, page = (base + "/protocol/openid-connect/auth/device",
                          base + "/protocol/openid-connect/token", base + "/device")
        grant = "urn:ietf:params:oauth:grant-type:device_code"
        h = {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": basic("alice", self.s["alice"])}
        if self.store_down:
            self.oauth("device authorization, store down", 503, "rs.test",
                       [("client_id", "kubelogin")], path=dev)
            self.want("device page, store down", 503, "POST", "rs.test", page,
                      form([("user_code", "BBBB-BBBB"), ("action", "approve")]), h)
            self.oauth("device poll, store down", 503, "rs.test",
                       [("grant_type", grant), ("device_code", "x" * 43),
                        ("client_id", "kubelogin")], path=tok)
            return
        self.oauth("device authorization unknown client", 401, "rs.test",
                   [("client_id", "nope")], path=dev)
        self.oauth("device authorization without the flag", 400, "rs.test",
                   [("client_id", "webapp")], path=dev)
        self.want("device page without credentials", 401, "GET", "rs.test", page)
        for action, final, again in (("approve", 200, 400), ("deny", 400, 400)):
            _, _, d = self.oauth(f"device authorization ({action})", 200, "rs.test",
                                 [("client_id", "kubelogin"), ("scope", "openid")], path=dev)
            j = self.json_of(d)
            dc, uc = j.get("device_code", "none"), j.get("user_code", "none")
            poll = [("grant_type", grant), ("device_code", dc), ("client_id", "kubelogin")]
            self.oauth("device poll pending", 400, "rs.test", poll, path=tok)
            self.oauth("device poll slow_down", 400, "rs.test", poll, path=tok)
            self.want("device page", 200, "GET", "rs.test",
                      page + "?user_code=" + urllib.parse.quote(uc), headers=h)
            self.want("device page wrong code", 400, "POST", "rs.test", page,
                      form([("user_code", "BBBB-BBBB"), ("action", action)]), h)
            self.want("device page cross-site", 403, "POST", "rs.test", page,
                      form([("user_code", uc), ("action", action)]),
                      dict(h, Origin="https://evil.example"))
            self.want(f"device page {action}", 200, "POST", "rs.test", page,
                      form([("user_code", uc), ("action", action)]), h)
            self.oauth(f"device poll after {action}", final, "rs.test", poll, path=tok)
            self.oauth(f"device poll again after {action}", again, "rs.test", poll, path=tok)

    # ---- a round -------------------------------------------------------------
    def round(self, i):
        self.app_token()
        login = self.password()
        self.refresh(login)
        self.code_flow()
        self.legacy_apptoken()
        self.oauth_dialect()
        self.malformed()
        self.documents()
        self.ending()
        self.device()
        tokens = []   # alice's access token first: the claim checks use it
        if not self.store_down:
            _, _, d = self.token("token for the guard", 200, "rs.test",
                                 {"grantType": "password", "username": "alice",
                                  "password": self.s["alice"]})
            tokens.append(self.json_of(d).get("accessToken", ""))
            _, _, d = self.token("app token for the guard", 200, "rs.test",
                                 {"appID": "app-md5", "appSecret": self.s["app-md5"]})
            tokens.append(self.json_of(d).get("accessToken", ""))
        self.guard([t for t in tokens if t])
        if not self.store_down:
            self.throttle(f"{self.args.phase}-{i}")


def start_redis(port, workdir, log):
    exe = "/usr/bin/redis-server"
    with open(log, "ab") as out:
        p = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", workdir],
                             stdout=out, stderr=subprocess.STDOUT)
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.05)
    p.kill()
    raise SystemExit(f"redis-server did not listen on {port} (see {log})")


def stop_redis(p, port):
    """p: a Popen, or the PID of the redis-server leakcheck.sh started
    (not our child: gone is when its port refuses connections)."""
    if isinstance(p, int):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            except OSError:
                return
            time.sleep(0.05)
    elif p and p.poll() is None:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)


def drive(args):
    mix = Mix(args)
    redis = None
    t0 = time.time()
    if args.phase == "redis":
        # started by leakcheck.sh before httpd, on the port of its config
        redis = args.redis_pid
    try:
        rounds = args.rounds
        # redis: killed before round DOWN, back before round UP (3 rounds
        # or more)
        down = rounds // 2 if rounds >= 3 else -1
        up = min(down + 2, rounds - 1) if rounds >= 3 else -1
        for i in range(rounds):
            if args.phase == "redis" and i == down:
                # the store dies: only 503s for what needs it
                stop_redis(redis, args.redis_port)
                redis = None
                mix.store_down = True
            if args.phase == "redis" and i == up:
                # back: pooled connections to the dead server may fail
                # once each; then everything works again without a restart
                redis = start_redis(args.redis_port, args.work, args.redis_log)
                mix.store_down = False
                # (APR's redis client retries a dead server after 5 s)
                deadline = time.time() + 30
                while True:
                    got, _, _ = mix.token("recovery", (200, 503), "rs.test",
                                          {"grantType": "password", "username": "alice",
                                           "password": mix.s["alice"]})
                    if got == 200:
                        break
                    if time.time() > deadline:
                        mix.wrong.append("the store did not recover within 30 s of redis's return")
                        break
                    time.sleep(0.25)
            mix.round(i)
        if args.phase == "default":
            login = mix.password()
            mix.revoke(login)
    finally:
        mix.c.close()
        stop_redis(redis, args.redis_port)
    dt = time.time() - t0
    by_label = collections.defaultdict(collections.Counter)
    for (label, status), n in mix.stats.items():
        by_label[label][status] += n
    statuses = collections.Counter()
    for (label, status), n in mix.stats.items():
        statuses[status] += n
    print(f"leakcheck[{args.phase}]: {mix.n} requests in {dt:.0f} s, "
          f"{len(by_label)} kinds; by status: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    if args.stats:
        with open(args.stats, "w") as f:
            for label in sorted(by_label):
                f.write(f"{label}: " + ", ".join(
                    f"{st} x{n}" for st, n in sorted(by_label[label].items())) + "\n")
    if mix.wrong:
        print(f"leakcheck[{args.phase}]: {len(mix.wrong)} unexpected answers:")
        for w in mix.wrong[:40]:
            print("  " + w)
        return 1
    return 0


# --------------------------------------------------------------------------
# valgrind's log

OURS = re.compile(r"mod_runai_token|\brt_\w+\.c:|libjwt|libjansson")
RECORD = re.compile(r"^==\d+== (\S+ bytes in \S+ blocks) are (definitely|indirectly|possibly) "
                    r"lost in loss record")
UNKNOWN = re.compile(r"^==\d+== +(at|by) 0x[0-9A-F]+: \?\?\?$")
ERROR = re.compile(r"^==\d+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised"
                   r"|Syscall param|Mismatched free|Source and destination overlap"
                   r"|Argument '\w+' of function)")


def blocks(lines, start):
    out = [lines[start]]
    for line in lines[start + 1:]:
        if re.match(r"^==\d+== ?$", line):
            break
        out.append(line)
    return out


def report(args):
    bad = others = 0
    for log in args.logs:
        with open(log, errors="replace") as f:
            lines = f.read().splitlines()
        summary = [l.split("== ", 1)[-1] for l in lines
                   if re.search(r"(definitely|indirectly|possibly) lost:|still reachable:"
                                r"|suppressed:|ERROR SUMMARY", l)]
        print(f"{log}:")
        for s in summary:
            print("    " + s.strip())
        if not any("definitely lost:" in s for s in summary) and not any(
                "All heap blocks were freed" in l for l in lines):
            print("    no LEAK SUMMARY in the log: httpd did not exit normally")
            bad += 1
        for i, line in enumerate(lines):
            m = RECORD.match(line)
            e = ERROR.match(line)
            if m and m.group(2) in ("definitely", "indirectly"):
                b = blocks(lines, i)
                if any(OURS.search(x) for x in b):
                    bad += 1
                    print("  LEAK attributable to the module, libjwt or jansson:")
                    print("\n".join("    " + x for x in b))
                elif any(UNKNOWN.search(x) for x in b):
                    # a frame of code that is gone (unloaded without
                    # --keep-debuginfo): it may be ours
                    bad += 1
                    print("  LEAK with a frame of unknown code (cannot tell whose):")
                    print("\n".join("    " + x for x in b))
                else:
                    others += 1
                    print("  not ours (httpd, APR, OpenSSL): " + line.split("== ", 1)[-1])
            elif e:
                b = blocks(lines, i)
                if any(OURS.search(x) for x in b):
                    bad += 1
                    print("  MEMCHECK ERROR in the module, libjwt or jansson:")
                    print("\n".join("    " + x for x in b))
    print("leakcheck: " + ("FAILED: %d finding(s)" % bad if bad else
                           "nothing lost by the module, libjwt or jansson; no memcheck error in them"))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drive")
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--work", required=True)
    d.add_argument("--phase", choices=("default", "redis"), required=True)
    d.add_argument("--rounds", type=int, default=15)
    d.add_argument("--redis-port", type=int)
    d.add_argument("--redis-pid", type=int, help="the redis-server of the redis phase")
    d.add_argument("--redis-log", default="/dev/null")
    d.add_argument("--stats", help="file for the count of answers per kind of request")
    r = sub.add_parser("report")
    r.add_argument("logs", nargs="+")
    args = ap.parse_args()
    sys.exit(drive(args) if args.cmd == "drive" else report(args))


if __name__ == "__main__":
    main()

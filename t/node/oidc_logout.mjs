// openid-client v6 ending sessions at the module: RFC 7009 revocation
// (client.tokenRevocation) of a refresh token and of an access token, and
// RP-initiated logout (client.buildEndSessionUrl). t/36_ending_hosts.t runs
// it against one of its hosts. The job on stdin:
//   {"issuer","cli":{"id","logout_uri"},"user":{"name","password"},
//    "guards":["http://127.0.0.1:PORT/guard", ...], "state"}
// Tokens come from the password grant (client.genericGrantRequest), as
// the Keycloak-era CLI gets them. Every step records {"ok":true,...} or
// {"ok":false,"error":{...}}; the answer is {"versions":{...},"steps":{...}}
// on stdout. Each token received is in the answer, for the .t to record.
// Times (ended_at) are Date.now() in milliseconds, right after the answer
// that ended the session, for the .t to measure the guard's delay from.
import * as client from 'openid-client';
import { readJob, versions, describe, answer, stepper } from './lib.mjs';

const job = await readJob();
const issuer = new URL(job.issuer);
const steps = {};
const step = stepper(steps);

// plain http on loopback: allowed explicitly, before discovery runs
const insecure = { execute: [client.allowInsecureRequests], timeout: 15 };

let config;
await step('discovery', async () => {
  config = await client.discovery(issuer, job.cli.id, undefined, client.None(), insecure);
  return { metadata: config.serverMetadata() };
});

async function login() {
  const tokens = await client.genericGrantRequest(config, 'password', {
    username: job.user.name, password: job.user.password, scope: 'openid',
  });
  return {
    access_token: tokens.access_token, id_token: tokens.id_token,
    refresh_token: tokens.refresh_token, sid: tokens.claims()?.sid,
  };
}

// What each guard answers for an access token (status codes).
async function guards(accessToken) {
  const out = [];
  for (const url of job.guards) {
    const res = await fetch(url, { headers: { authorization: `Bearer ${accessToken}` } });
    await res.arrayBuffer();
    out.push(res.status);
  }
  return out;
}

// A refresh that must fail now: the library's error (or what it got).
async function refreshAfter(refreshToken) {
  try {
    const t = await client.refreshTokenGrant(config, refreshToken);
    return { refreshed: true, access_token: t.access_token, id_token: t.id_token, refresh_token: t.refresh_token };
  } catch (err) {
    return { refreshed: false, error: describe(err) };
  }
}

if (config) {
  // The refresh token revoked: the session ends (its access token with it,
  // through the guard).
  await step('revoke_refresh', async () => {
    const t = await login();
    const refreshed = await client.refreshTokenGrant(config, t.refresh_token);   // it works before
    const before = await guards(refreshed.access_token);
    await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
    const ended_at = Date.now();
    return {
      tokens: t, refreshed_before: { access_token: refreshed.access_token, id_token: refreshed.id_token,
                                     refresh_token: refreshed.refresh_token },
      guards_before: before, ended_at, after: await refreshAfter(refreshed.refresh_token),
      after_first_token: await refreshAfter(t.refresh_token),
    };
  });

  // The access token revoked: its session ends too (RFC 7009 §2.1: the
  // server may end the grant), so its refresh token is refused.
  await step('revoke_access', async () => {
    const t = await login();
    const before = await guards(t.access_token);
    await client.tokenRevocation(config, t.access_token, { token_type_hint: 'access_token' });
    const ended_at = Date.now();
    return { tokens: t, guards_before: before, ended_at, after: await refreshAfter(t.refresh_token) };
  });

  // A token the server never issued: 200 all the same (RFC 7009 §2.2),
  // so the library resolves.
  await step('revoke_unknown', async () => {
    await client.tokenRevocation(config, 'not-a-token-of-this-server', { token_type_hint: 'refresh_token' });
    return {};
  });

  // RP-initiated logout: the URL the library builds, followed by hand (no
  // redirect following: the Location is what the module answered).
  await step('end_session', async () => {
    const t = await login();
    const before = await guards(t.access_token);
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: t.id_token, post_logout_redirect_uri: job.cli.logout_uri, state: job.state,
    });
    const res = await fetch(url, { redirect: 'manual' });
    await res.arrayBuffer();
    const ended_at = Date.now();
    return {
      tokens: t, guards_before: before, url: url.href, status: res.status,
      location: res.headers.get('location'), ended_at, after: await refreshAfter(t.refresh_token),
    };
  });

  // A post_logout_redirect_uri not registered for the client: refused, and
  // the session named by the hint goes on.
  await step('end_session_unregistered', async () => {
    const t = await login();
    const url = client.buildEndSessionUrl(config, {
      id_token_hint: t.id_token, post_logout_redirect_uri: 'https://evil.example.test/logout', state: job.state,
    });
    const res = await fetch(url, { redirect: 'manual' });
    const body = await res.text();
    return { tokens: t, url: url.href, status: res.status, location: res.headers.get('location'),
             body: body.slice(0, 300), after: await refreshAfter(t.refresh_token) };
  });
}

answer({ versions: versions(), steps });

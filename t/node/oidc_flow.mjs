// openid-client v6 against the module, driven end to end. The job on stdin:
//   {"issuer","confidential":{"id","secret"},"public":{"id","redirect_uri"},
//    "cli":{"id"},"user":{"name","password"},"audience"}
// Every step records {"ok":true,...} or {"ok":false,"error":{...}}; the
// answer is {"versions":{...},"steps":{...}} on stdout.
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { readJob, versions, answer, stepper } from './lib.mjs';

const job = await readJob();
const issuer = new URL(job.issuer);
const steps = {};
const step = stepper(steps);

// plain http on loopback: allowed explicitly, before discovery runs
const insecure = { execute: [client.allowInsecureRequests], timeout: 15 };
const strict = { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks], timeout: 15 };

let jwks;
async function verifyAccess(token, audience) {
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: job.issuer, audience });
  return { header: protectedHeader, payload };
}
function members(tokens) {
  return Object.keys(tokens).filter((k) => typeof tokens[k] !== 'function').sort();
}

let meta;
await step('discovery', async () => {
  const config = await client.discovery(issuer, job.cli.id, undefined, client.None(), insecure);
  meta = config.serverMetadata();
  jwks = createRemoteJWKSet(new URL(meta.jwks_uri), { timeoutDuration: 10000 });
  return { metadata: meta, supportsPKCE: meta.supportsPKCE() };
});

for (const [name, auth] of [['client_secret_basic', client.ClientSecretBasic], ['client_secret_post', client.ClientSecretPost]]) {
  await step(`client_credentials_${name}`, async () => {
    const config = await client.discovery(issuer, job.confidential.id, job.confidential.secret, auth(), insecure);
    const tokens = await client.clientCredentialsGrant(config);
    return { members: members(tokens), token_type: tokens.token_type, expires_in: tokens.expires_in,
             access_token: tokens.access_token, verified: await verifyAccess(tokens.access_token, job.audience) };
  });
}

await step('client_credentials_wrong_secret', async () => {
  const config = await client.discovery(issuer, job.confidential.id, 'wrong-' + job.confidential.secret,
                                        client.ClientSecretBasic(), insecure);
  await client.clientCredentialsGrant(config);
  return { unexpected: 'a wrong secret was accepted' };
});

// Authorization code with PKCE: the authorization URL is built by the
// library, the login is Basic auth at the authorize endpoint, the redirect
// is not followed: its Location is the callback URL the library processes.
let code_location;
await step('authorization_code', async () => {
  const config = await client.discovery(issuer, job.public.id, undefined, client.None(), strict);
  const verifier = client.randomPKCECodeVerifier();
  const challenge = await client.calculatePKCECodeChallenge(verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: job.public.redirect_uri, scope: 'openid profile email',
    code_challenge: challenge, code_challenge_method: 'S256', state, nonce,
  });
  const login = Buffer.from(`${job.user.name}:${job.user.password}`, 'utf8').toString('base64');
  const res = await fetch(url, { redirect: 'manual', headers: { authorization: `Basic ${login}` } });
  const location = res.headers.get('location');
  if (res.status !== 302 || !location) throw new Error(`authorize answered ${res.status}, Location ${location}`);
  code_location = location;
  const tokens = await client.authorizationCodeGrant(config, new URL(location), {
    pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
  });
  const claims = tokens.claims();
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  return {
    authorization_url: url.href, authorize_status: res.status, location,
    members: members(tokens), token_type: tokens.token_type, expires_in: tokens.expires_in,
    id_token: tokens.id_token, access_token: tokens.access_token, id_claims: claims,
    verified: await verifyAccess(tokens.access_token, job.audience),
    refreshed: { members: members(refreshed), id_claims: refreshed.claims(),
                 new_refresh_token: refreshed.refresh_token !== tokens.refresh_token,
                 access_token: refreshed.access_token, id_token: refreshed.id_token,
                 verified: await verifyAccess(refreshed.access_token, job.audience) },
  };
});

// The same code again: the server's invalid_grant reaches the library.
await step('authorization_code_replayed', async () => {
  const config = await client.discovery(issuer, job.public.id, undefined, client.None(), strict);
  const url = new URL(code_location);
  await client.authorizationCodeGrant(config, url, { expectedState: url.searchParams.get('state') ?? undefined });
  return { unexpected: 'a used code was accepted' };
});

// The Keycloak-era CLI: password grant as the public client runai-cli.
await step('password', async () => {
  const config = await client.discovery(issuer, job.cli.id, undefined, client.None(), strict);
  const tokens = await client.genericGrantRequest(config, 'password', {
    username: job.user.name, password: job.user.password, scope: 'openid',
  });
  return { members: members(tokens), token_type: tokens.token_type, id_claims: tokens.claims(),
           access_token: tokens.access_token, id_token: tokens.id_token,
           verified: await verifyAccess(tokens.access_token, job.audience) };
});

await step('password_wrong', async () => {
  const config = await client.discovery(issuer, job.cli.id, undefined, client.None(), insecure);
  await client.genericGrantRequest(config, 'password', { username: job.user.name, password: 'wrong' });
  return { unexpected: 'a wrong password was accepted' };
});

answer({ versions: versions(), steps });

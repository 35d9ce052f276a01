// openid-client v6's device authorization grant (RFC 8628) against the
// module (t/40_device.t). The job on stdin:
//   {"issuer","client","user":{"name","password"},"approve_after"}
// The user's part is played here too: the page at verification_uri, with
// Basic credentials, approves (or denies) while the library polls. The
// answer is {"versions":{...},"steps":{...}} on stdout.
import * as client from 'openid-client';
import { readJob, versions, answer, stepper } from './lib.mjs';

const job = await readJob();
const steps = {};
const step = stepper(steps);
const insecure = { execute: [client.allowInsecureRequests], timeout: 15 };
const sleep = (s) => new Promise((res) => setTimeout(res, s * 1000));

// The user's decision on the page: user_code and action, posted with Basic.
async function decide(uri, userCode, action) {
  const basic = Buffer.from(`${job.user.name}:${job.user.password}`).toString('base64');
  const res = await fetch(uri, {
    method: 'POST',
    // as a browser posts the page's own form: from the page's origin
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded',
               origin: new URL(uri).origin },
    body: new URLSearchParams({ user_code: userCode, action }),
  });
  await res.text();
  return res.status;
}

const config = await client.discovery(new URL(job.issuer), job.client, undefined, client.None(), insecure);

await step('approved', async () => {
  const da = await client.initiateDeviceAuthorization(config, { scope: 'openid' });
  const started = Date.now();
  // the library waits one interval before each poll: approve after the
  // first, so that it hears authorization_pending once
  const polling = client.pollDeviceAuthorizationGrant(config, da);
  await sleep(job.approve_after);
  const page = await decide(da.verification_uri, da.user_code, 'approve');
  const tokens = await polling;
  return {
    device: { user_code: da.user_code, verification_uri: da.verification_uri, interval: da.interval,
              expires_in: da.expires_in },
    page, seconds: (Date.now() - started) / 1000,
    access_token: tokens.access_token, id_token: tokens.id_token, refresh_token: tokens.refresh_token,
    token_type: tokens.token_type, id_claims: tokens.claims(),
  };
});

await step('denied', async () => {
  const da = await client.initiateDeviceAuthorization(config, {});
  const page = await decide(da.verification_uri, da.user_code, 'deny');
  await client.pollDeviceAuthorizationGrant(config, da);
  return { page, unexpected: 'tokens after a denial' };
});

answer({ versions: versions(), steps });

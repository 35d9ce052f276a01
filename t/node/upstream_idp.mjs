// An upstream OpenID Provider for t/41_sso.t: the npm package oidc-provider
// on 127.0.0.1, with one client (mod_auth_openidc in front of the module's
// authorize endpoint) and a few accounts. The job is the first line on
// stdin:
//   {"port":N, "client":{"id","secret","redirect_uri"},
//    "accounts":{"NAME":{"password","claims":{"email","name","groups":[...]}}}}
// (a port in argv[2] wins over the job's). When it listens it prints one
// line on stdout: {"ready":true,"issuer":"http://127.0.0.1:N","versions":{...}}.
// It exits when its stdin closes (the test ended, however it ended).
//
// The login is a plain HTML form, so a client without a browser can do it:
//   GET  /interaction/UID        the form: <form action="/interaction/UID/login">
//                                with the fields login and password
//   POST /interaction/UID/login  the right password: the login is done; an
//                                unknown account or a wrong password: the
//                                authorization request ends with
//                                error=access_denied at the client's
//                                redirect URI
// Consent is given at once (GET /interaction/UID of a consent prompt
// answers the redirect), for the scopes and claims the client asked.
import { createInterface } from 'node:readline';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

// stdout carries the ready line only: oidc-provider's notices (console.log)
// go to stderr, with its warnings.
console.log = console.info = (...args) => console.error(...args);

const rl = createInterface({ input: process.stdin });
const first = await new Promise((resolve, reject) => {
  rl.once('line', resolve);
  rl.once('close', () => reject(new Error('stdin closed before the job line')));
});
const job = JSON.parse(first);
// the test's end (its end of the pipe closed) is ours
rl.on('close', () => process.exit(0));

const port = Number(process.argv[2] || job.port);
if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`bad port ${port}`);
const issuer = `http://127.0.0.1:${port}`;
const accounts = job.accounts || {};

function version(name) {
  try {
    const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
    return JSON.parse(readFileSync(url, 'utf8')).version;
  } catch {
    return null;
  }
}

function samePassword(given, wanted) {
  const a = Buffer.from(String(given ?? ''), 'utf8');
  const b = Buffer.from(String(wanted ?? ''), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'upstream-1' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: job.client.id,
    client_secret: job.client.secret,
    redirect_uris: [job.client.redirect_uri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // the claims of the scopes go into the id token too, not only UserInfo
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(accounts, id)) return undefined;
    const a = accounts[id];
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, email_verified: true, ...(a.claims || {}) };
      },
    };
  },
});

function html(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const c of req) {
    size += c.length;
    if (size > 65536) throw new Error('form too large');
    chunks.push(c);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// The interaction routes, in front of the provider's own.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/);
  if (!m) return next();
  ctx.set('Cache-Control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== m[1]) ctx.throw(400, 'interaction mismatch');
  const { prompt, params, session } = details;
  if (ctx.method === 'GET' && !m[2]) {
    if (prompt.name === 'login') {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html><head><title>Sign in</title></head><body>
<form method="post" action="/interaction/${html(m[1])}/login">
<input name="login" value="${html(params.login_hint ?? '')}"><input name="password" type="password">
<button type="submit">Sign in</button></form></body></html>\n`;
      return undefined;
    }
    if (prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const d = prompt.details;
      if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
      if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
      if (d.missingResourceScopes) {
        for (const [indicator, scope] of Object.entries(d.missingResourceScopes)) {
          grant.addResourceScope(indicator, scope.join(' '));
        }
      }
      const grantId = await grant.save();
      const to = await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } });
      ctx.status = 303;
      ctx.redirect(to);
      return undefined;
    }
    ctx.throw(501, `prompt ${prompt.name} not implemented`);
  }
  if (ctx.method === 'POST' && m[2] && prompt.name === 'login') {
    const form = await readForm(ctx.req);
    const name = form.get('login') ?? '';
    const ok = Object.hasOwn(accounts, name) && samePassword(form.get('password'), accounts[name].password);
    const result = ok
      ? { login: { accountId: name } }
      : { error: 'access_denied', error_description: 'unknown account or wrong password' };
    const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(to);
    return undefined;
  }
  ctx.throw(405, 'method not allowed');
  return undefined;
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({
    ready: true,
    issuer,
    versions: { node: process.version, 'oidc-provider': version('oidc-provider'), jose: version('jose') },
  }) + '\n');
});
server.on('error', (err) => {
  process.stderr.write(`upstream_idp: ${err.message}\n`);
  process.exit(1);
});

// jose: createRemoteJWKSet + jwtVerify for each case of the job on stdin:
//   {"cases":[{"name","token","jwks_uri","issuer","audience","algorithms"?}]}
// answers {"versions":{...},"results":[{"name","ok","header","payload"} |
//                                       {"name","ok":false,"error":{...}}]}
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { readJob, versions, describe, answer } from './lib.mjs';

const job = await readJob();
const sets = new Map();
const results = [];
for (const c of job.cases) {
  if (!sets.has(c.jwks_uri)) {
    sets.set(c.jwks_uri, createRemoteJWKSet(new URL(c.jwks_uri), { timeoutDuration: 10000 }));
  }
  try {
    const { payload, protectedHeader } = await jwtVerify(c.token, sets.get(c.jwks_uri), {
      issuer: c.issuer,
      audience: c.audience,
      ...(c.algorithms ? { algorithms: c.algorithms } : {}),
    });
    results.push({ name: c.name, ok: true, header: protectedHeader, payload });
  } catch (err) {
    results.push({ name: c.name, ok: false, error: describe(err) });
  }
}
answer({ versions: versions(), results });

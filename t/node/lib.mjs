// Helpers shared by the conformance scripts that t/23_conformance.t runs:
// reading the job from stdin, the installed versions, and the JSON answer.
import { readFileSync } from 'node:fs';

export async function readJob() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

export function versions() {
  const v = { node: process.version };
  for (const name of ['jose', 'openid-client', 'oauth4webapi']) {
    try {
      const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
      v[name] = JSON.parse(readFileSync(url, 'utf8')).version;
    } catch {
      v[name] = null;
    }
  }
  return v;
}

// What the .t needs to know of an error thrown by a library.
export function describe(err) {
  const d = { name: err?.name, code: err?.code, message: String(err?.message ?? err) };
  if (err?.error !== undefined) d.error = err.error;
  if (err?.status !== undefined) d.status = err.status;
  if (err?.cause && typeof err.cause === 'object' && !(err.cause instanceof Error)) {
    try { d.cause = JSON.parse(JSON.stringify(err.cause)); } catch { /* not JSON */ }
  }
  return d;
}

// step(name, fn) runs fn and records into steps[name] {"ok":true,...its
// result} or {"ok":false,"error":{...}}: one failing step does not stop
// the others.
export function stepper(steps) {
  return async function step(name, fn) {
    try {
      steps[name] = { ok: true, ...(await fn()) };
    } catch (err) {
      steps[name] = { ok: false, error: describe(err) };
    }
  };
}

export function answer(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

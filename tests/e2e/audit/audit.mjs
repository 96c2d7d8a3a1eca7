// graphql-http's auditServer against a running BudgetBridge: `node audit.mjs URL TOKEN`.
// Every request carries the bearer token (anonymous callers only ever get UNAUTHENTICATED).
// Prints one line per audit that is not ok and a JSON summary last; exits 1 on any warning or error.
import { auditServer } from "graphql-http";

const [url, token] = process.argv.slice(2);

function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: fetchWithToken });
const summary = { ok: 0, warn: 0, error: 0 };
for (const result of results) {
  summary[result.status] += 1;
  if (result.status !== "ok") {
    console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}`);
  }
}
console.log(JSON.stringify(summary));
process.exit(summary.warn || summary.error ? 1 : 0);

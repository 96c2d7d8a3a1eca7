// Sign-in: with the company's identity provider (single sign-on, oidc.js), or with a token, which is
// checked against the server (`viewer`) before it is kept for the tab.

import { useState } from "preact/hooks";

import { gql } from "../api.js";
import { ssoConfig, ssoSupported, startSignIn } from "../oidc.js";
import { ROOT, setToken } from "../session.js";
import { html } from "../ui.js";

const VIEWER = `query SignIn { viewer { id name } }`;

/** The app path to come back to after the identity provider (the address without the app's root). */
function currentPath() {
  const path = window.location.pathname.startsWith(ROOT) ? window.location.pathname.slice(ROOT.length) : "/";
  return (path || "/") + window.location.search;
}

function SingleSignOn() {
  const [email, setEmail] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  if (!ssoSupported()) return null;

  async function submit(event) {
    event.preventDefault();
    const value = email.trim();
    if (!/^[^@\s]+@[^@\s]+$/.test(value)) {
      setError("Enter your work email address, e.g. pat@example.com.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await startSignIn(await ssoConfig(value), currentPath());
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  }

  return html`<section aria-labelledby="sso-title">
    <h2 id="sso-title">With your company account</h2>
    <form onSubmit=${submit} novalidate>
      <label for="sso-email">Work email</label>
      <input
        id="sso-email"
        name="email"
        type="email"
        autocomplete="username"
        required
        aria-required="true"
        aria-invalid=${error ? "true" : undefined}
        aria-describedby=${error ? "sso-error sso-help" : "sso-help"}
        value=${email}
        onInput=${(e) => setEmail(e.currentTarget.value)}
      />
      ${error && html`<p id="sso-error" class="field-error" role="alert">${error}</p>`}
      <p id="sso-help" class="hint">You sign in on your company's sign-in page; BudgetBridge never sees your password.</p>
      <button type="submit" class="button primary" aria-busy=${busy ? "true" : undefined}>
        ${busy ? "Continuing…" : "Continue with single sign-on"}
      </button>
    </form>
  </section>`;
}

export function SignIn({ reason, onSignedIn }) {
  const [token, setTokenText] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  async function submit(event) {
    event.preventDefault();
    const value = token.trim().replace(/^Bearer\s+/i, "");
    if (!value) {
      setError("Paste a token first.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await gql(VIEWER, {}, { token: value });
      setToken(value);
      onSignedIn();
    } catch (e) {
      setError(e.unauthenticated ? "This token is not valid here (expired, mistyped, or for another server)." : e.message);
    } finally {
      setBusy(false);
    }
  }

  return html`<main id="main" class="signin" tabindex="-1">
    <h1 id="page-title" tabindex="-1">Sign in to BudgetBridge</h1>
    ${reason && html`<p class="notice warning" role="alert">${reason}</p>`}
    <${SingleSignOn} />
    <h2>With an access token</h2>
    <p>
      Paste your access token. An administrator prints one with
      <code>budgetbridge token --user USER_ID</code>; <code>budgetbridge serve --demo</code> prints one for each demo user.
    </p>
    <form onSubmit=${submit} novalidate>
      <label for="token">Access token</label>
      <textarea
        id="token"
        name="token"
        rows="4"
        autocomplete="off"
        autocapitalize="off"
        spellcheck="false"
        required
        aria-required="true"
        aria-invalid=${error ? "true" : undefined}
        aria-describedby=${error ? "token-error token-help" : "token-help"}
        value=${token}
        onInput=${(e) => setTokenText(e.currentTarget.value)}
      ></textarea>
      ${error && html`<p id="token-error" class="field-error" role="alert">${error}</p>`}
      <p id="token-help" class="hint">Kept in this browser tab only (session storage) until you sign out or close the tab.</p>
      <button type="submit" class="button primary" aria-busy=${busy ? "true" : undefined}>${busy ? "Signing in…" : "Sign in"}</button>
    </form>
    <p class="muted">Integration partners: the API and its documentation are in <a href=${`${ROOT}/graphql`}>GraphiQL</a>.</p>
  </main>`;
}

// Sign-in with a token: checked against the server (`viewer`) before it is kept for the tab.

import { useState } from "preact/hooks";

import { gql } from "../api.js";
import { ROOT, setToken } from "../session.js";
import { html } from "../ui.js";

const VIEWER = `query SignIn { viewer { id name } }`;

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

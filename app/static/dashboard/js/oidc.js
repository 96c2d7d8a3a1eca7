// Single sign-on with the company's OpenID Connect issuer: Authorization Code + PKCE (RFC 7636), done by the
// browser itself with WebCrypto; the server only says which issuer and client to use (GET /auth/config) and
// never sees a password. The access token is kept like a pasted one (session.js); the refresh token and the
// token endpoint in this tab's session storage, and the access token is refreshed a minute before it
// expires. Signing out forgets both.

import { gql } from "./api.js";
import { ROOT, getToken, onSignOut, setToken, signOut } from "./session.js";

const PENDING = "budgetbridge.oidc.pending"; // between leaving for the issuer and coming back
const SESSION = "budgetbridge.oidc.session"; // refresh token, token endpoint, client id, expiry
const REFRESH_EARLY_MS = 60_000;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

function read(key) {
  const store = storage();
  try {
    return store ? JSON.parse(store.getItem(key) || "null") : null;
  } catch {
    return null;
  }
}

function write(key, value) {
  const store = storage();
  if (!store) return;
  if (value === null) store.removeItem(key);
  else store.setItem(key, JSON.stringify(value));
}

function base64url(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size = 32) {
  return base64url(window.crypto.getRandomValues(new Uint8Array(size)));
}

export function redirectUri() {
  return `${window.location.origin}${ROOT}/`;
}

/** Whether this browser can do PKCE (WebCrypto needs https, or http on localhost). */
export function ssoSupported() {
  return Boolean(window.crypto && window.crypto.subtle && storage());
}

/** Which issuer signs in the person with this email: the server's answer, or an Error to show. */
export async function ssoConfig(email) {
  let response;
  try {
    response = await fetch(`${ROOT}/auth/config?email=${encodeURIComponent(email)}`, { headers: { accept: "application/json" } });
  } catch {
    throw new Error("The server could not be reached. Check the connection and try again.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `The server answered ${response.status}.`);
  if (!body.authorizationEndpoint || !body.tokenEndpoint || !body.clientId) {
    throw new Error("Single sign-on is not fully set up for your company (no client id). Ask an administrator.");
  }
  return body;
}

/** Leave for the issuer's sign-in page; it comes back to the dashboard with ?code=...&state=..., and then
 * shows `returnTo` (an app path such as "/requests/req_..."). */
export async function startSignIn(config, returnTo) {
  const verifier = randomText(32);
  const digest = await window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const state = randomText(16);
  write(PENDING, {
    state, verifier, returnTo, clientId: config.clientId, tokenEndpoint: config.tokenEndpoint, issuer: config.issuer,
  });
  const url = new URL(config.authorizationEndpoint);
  const params = {
    response_type: "code", client_id: config.clientId, redirect_uri: redirectUri(), scope: config.scope,
    state, code_challenge: base64url(new Uint8Array(digest)), code_challenge_method: "S256",
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  window.location.assign(url.toString());
}

/** Is this page the issuer's answer to our sign-in? */
export function isSignInCallback() {
  const params = new URLSearchParams(window.location.search);
  return Boolean(read(PENDING)) && (params.has("code") || params.has("error")) && params.has("state");
}

async function tokenRequest(endpoint, form) {
  let response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: new URLSearchParams(form).toString(),
    });
  } catch {
    throw new Error("Your company's sign-in service could not be reached. Try again.");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) {
    throw new Error(`Your company's sign-in service refused: ${body.error_description || body.error || response.status}.`);
  }
  return body;
}

function keep(tokens, pending) {
  const lifetime = Number(tokens.expires_in) > 0 ? Number(tokens.expires_in) * 1000 : 300_000;
  const previous = read(SESSION) || {};
  write(SESSION, {
    refreshToken: tokens.refresh_token || previous.refreshToken || null,
    tokenEndpoint: pending.tokenEndpoint,
    clientId: pending.clientId,
    expiresAt: Date.now() + lifetime,
  });
  setToken(tokens.access_token);
  scheduleRefresh();
}

/** Finish the sign-in on the way back from the issuer: exchange the code for tokens. Returns the path to
 * show next; throws an Error to show on the sign-in form. */
export async function completeSignIn() {
  const pending = read(PENDING);
  write(PENDING, null);
  const params = new URLSearchParams(window.location.search);
  window.history.replaceState(null, "", window.location.pathname); // the code is single-use: off the address
  if (!pending || params.get("state") !== pending.state) throw new Error("The sign-in answer did not match this tab's request. Sign in again.");
  if (params.has("error")) throw new Error(`Sign-in was not completed: ${params.get("error_description") || params.get("error")}.`);
  const tokens = await tokenRequest(pending.tokenEndpoint, {
    grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(),
    client_id: pending.clientId, code_verifier: pending.verifier,
  });
  // Checked here before it is kept: a person the server does not know sees why (and what an admin can do).
  await gql("query SignIn { viewer { id } }", {}, { token: tokens.access_token });
  keep(tokens, pending);
  return pending.returnTo || "/";
}

let refreshTimer = null;

/** Refresh the access token a minute before it expires (at once if that is past); sign out if it fails. */
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const session = read(SESSION);
  if (!session || !session.refreshToken) return;
  const wait = Math.max(0, session.expiresAt - Date.now() - REFRESH_EARLY_MS);
  refreshTimer = setTimeout(refreshNow, wait);
}

export async function refreshNow() {
  const session = read(SESSION);
  if (!session || !session.refreshToken || !getToken()) return;
  try {
    const tokens = await tokenRequest(session.tokenEndpoint, {
      grant_type: "refresh_token", refresh_token: session.refreshToken, client_id: session.clientId,
    });
    keep(tokens, session);
  } catch {
    signOut("Your sign-in has ended. Sign in again.");
  }
}

onSignOut(() => {
  clearTimeout(refreshTimer);
  write(SESSION, null);
  write(PENDING, null);
});

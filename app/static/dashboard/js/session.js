// The signed-in token (sessionStorage: gone when the tab closes) and who is listening for sign-out.

const KEY = "budgetbridge.token";
const listeners = new Set();

export const ROOT = (document.querySelector('meta[name="budgetbridge-root"]') || { content: "" }).content;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the token lives as long as the page
  }
}

let memoryToken = null;

export function getToken() {
  const store = storage();
  return store ? store.getItem(KEY) : memoryToken;
}

export function setToken(token) {
  const store = storage();
  if (store) store.setItem(KEY, token);
  else memoryToken = token;
}

/** Forget the token; `reason` is shown on the sign-in form (null for a deliberate sign-out). */
export function signOut(reason = null) {
  const store = storage();
  if (store) store.removeItem(KEY);
  memoryToken = null;
  for (const listener of listeners) listener(reason);
}

export function onSignOut(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** A token handed over in the address's fragment (#token=...) signs in and is removed from the address at
 * once (a fragment never reaches the server or a Referer header). */
export function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return false;
  setToken(decodeURIComponent(match[1]));
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  return true;
}

/** A UUID per click, also where crypto.randomUUID is missing (plain http on a LAN address). */
export function newIdempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

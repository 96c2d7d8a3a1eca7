// A history-API router for the app's few routes. Every route is also a real address the server answers
// with the app (deep links, reloads, bookmarks).

import { useEffect, useState } from "preact/hooks";

import { ROOT } from "./session.js";

const listeners = new Set();

export const ROUTES = [
  { name: "home", pattern: /^\/$/ },
  { name: "budgets", pattern: /^\/budgets$/ },
  { name: "budget", pattern: /^\/budgets\/([^/]+)$/ },
  { name: "request", pattern: /^\/requests\/([^/]+)$/ },
];

function current() {
  let path = window.location.pathname;
  if (ROOT && path.startsWith(ROOT)) path = path.slice(ROOT.length) || "/";
  const search = window.location.search;
  const query = new URLSearchParams(search);
  for (const route of ROUTES) {
    const match = route.pattern.exec(path);
    if (match) return { name: route.name, id: match[1] ? decodeURIComponent(match[1]) : null, path, search, query };
  }
  return { name: "notFound", id: null, path, search, query };
}

let route = current();
let focusOnChange = false;

function changed(keepFocus) {
  route = current();
  focusOnChange = !keepFocus;
  for (const listener of listeners) listener(route);
}

/** Go to an app path ("/requests/abc"); `replace` for tab and filter changes that need no history entry. */
export function navigate(path, { replace = false, keepFocus = false } = {}) {
  const url = `${ROOT}${path}`;
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  if (!keepFocus) window.scrollTo(0, 0);
  changed(keepFocus);
}

/** Whether the last route change should move focus to the new page's title (not for tab switches). */
export function takeFocusRequest() {
  const wanted = focusOnChange;
  focusOnChange = false;
  return wanted;
}

export function useRoute() {
  const [state, setState] = useState(route);
  useEffect(() => {
    listeners.add(setState);
    return () => listeners.delete(setState);
  }, []);
  return state;
}

window.addEventListener("popstate", () => {
  // A change of the fragment alone (an in-page link) is not a new page.
  const next = current();
  if (next.path !== route.path || next.search !== route.search) changed(false);
});

/** Links to app routes are followed in place; everything else (GraphiQL, new tabs, modified clicks) as usual. */
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const anchor = event.target.closest && event.target.closest("a[href]");
  if (!anchor || anchor.target || anchor.hasAttribute("download")) return;
  const url = new URL(anchor.href, window.location.href);
  if (url.origin !== window.location.origin) return;
  let path = url.pathname;
  if (ROOT) {
    if (!path.startsWith(ROOT)) return;
    path = path.slice(ROOT.length) || "/";
  }
  if (!ROUTES.some((r) => r.pattern.test(path))) return;
  if (url.hash && path === route.path) return; // in-page anchor
  event.preventDefault();
  navigate(path + url.search);
});

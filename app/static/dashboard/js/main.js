// The BudgetBridge dashboard: sign-in, the app shell (landmarks, navigation, live region) and the routes.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { detectCapabilities, gql } from "./api.js";
import { completeSignIn, isSignInCallback, scheduleRefresh } from "./oidc.js";
import { navigate, takeFocusRequest, useRoute } from "./router.js";
import { ROOT, getToken, onSignOut, signOut, takeTokenFromFragment } from "./session.js";
import { announce, announcements, baselineSequence, getLiveState, liveState, startLive, stopLive } from "./store.js";
import { Loading, LoadError, PageTitle, href, html, useLoad } from "./ui.js";
import { BudgetView, BudgetsView } from "./views/budgets.js";
import { QueueView } from "./views/queue.js";
import { RequestView } from "./views/request.js";
import { SignIn } from "./views/signin.js";

const VIEWER = `query Viewer {
  viewer { id name email isAccountingApprover erpIntegrationsPermission company { id name currency } }
}`;

function seesQueue(viewer) {
  return viewer.isAccountingApprover || viewer.erpIntegrationsPermission !== "NONE";
}

function App() {
  // Coming back from the company's identity provider: the code is exchanged for tokens before anything loads.
  const [finishing, setFinishing] = useState(() => isSignInCallback());
  const [signedIn, setSignedIn] = useState(() => {
    takeTokenFromFragment();
    return !isSignInCallback() && Boolean(getToken());
  });
  const [reason, setReason] = useState(null);
  useEffect(() => {
    if (!finishing) {
      scheduleRefresh(); // a reloaded tab keeps refreshing a single sign-on token
      return;
    }
    completeSignIn()
      .then((path) => {
        navigate(path, { replace: true });
        setSignedIn(true);
      })
      .catch((error) => setReason(error.message))
      .finally(() => setFinishing(false));
  }, []);
  useEffect(
    () =>
      onSignOut((why) => {
        stopLive();
        setReason(why);
        setSignedIn(false);
      }),
    [],
  );
  useEffect(() => {
    if (!signedIn) {
      document.title = "Sign in · BudgetBridge";
      const title = document.getElementById("page-title");
      if (title && reason) title.focus();
    }
  }, [signedIn, reason]);
  if (finishing) {
    return html`<main id="main" tabindex="-1"><${PageTitle}>BudgetBridge<//><${Loading} what="Signing in" /></main>`;
  }
  if (!signedIn) {
    return html`<${SignIn}
      reason=${reason}
      onSignedIn=${() => {
        setReason(null);
        setSignedIn(true);
      }}
    />`;
  }
  return html`<${Shell} />`;
}

function Shell() {
  const session = useLoad(async () => {
    const [data, caps, after] = await Promise.all([gql(VIEWER), detectCapabilities(), baselineSequence(gql)]);
    return { viewer: data.viewer, caps, after };
  }, []);
  const route = useRoute();
  const ready = Boolean(session.data);

  useEffect(() => {
    if (!ready) return undefined;
    startLive(session.data.after);
    return () => stopLive();
  }, [ready]);

  useEffect(() => {
    const title = document.getElementById("page-title");
    if (title) document.title = `${title.textContent.trim()} · BudgetBridge`;
  });
  useEffect(() => {
    if (!takeFocusRequest()) return;
    const title = document.getElementById("page-title");
    if (title) title.focus();
  }, [route]);

  if (!session.data) {
    return html`<main id="main" tabindex="-1">
      <${PageTitle}>BudgetBridge<//>
      ${session.error ? html`<${LoadError} error=${session.error} retry=${session.reload} />` : html`<${Loading} what="Signing in" />`}
    </main>`;
  }
  const { viewer, caps } = session.data;
  const queue = seesQueue(viewer);
  const current = route.name === "home" ? (queue ? "queue" : "budgets") : route.name === "budget" ? "budgets" : route.name;

  let view;
  if (route.name === "home") view = queue ? html`<${QueueView} caps=${caps} query=${route.query} />` : html`<${BudgetsView} />`;
  else if (route.name === "budgets") view = html`<${BudgetsView} />`;
  else if (route.name === "budget") view = html`<${BudgetView} key=${route.id} caps=${caps} id=${route.id} />`;
  else if (route.name === "request") view = html`<${RequestView} key=${route.id} caps=${caps} id=${route.id} />`;
  else view = html`<section><${PageTitle}>Page not found<//><p><a href=${href("/")}>Go to the start page</a></p></section>`;

  return html`<div class="shell">
    <a class="skip-link" href="#main" onClick=${skipToMain}>Skip to main content</a>
    <header class="topbar">
      <div class="brand">
        <a href=${href("/")} class="brand-name">BudgetBridge</a>
        <span class="company">${viewer.company.name}</span>
      </div>
      <nav aria-label="Main">
        <ul>
          ${queue && html`<li><a href=${href("/")} aria-current=${current === "queue" ? "page" : undefined}>ERP Integrations</a></li>`}
          <li><a href=${href("/budgets")} aria-current=${current === "budgets" ? "page" : undefined}>Budgets</a></li>
          <li><a href=${`${ROOT}/graphql`}>GraphiQL</a></li>
        </ul>
      </nav>
      <div class="who">
        <${LiveIndicator} />
        <span class="user" title=${viewer.email}>${viewer.name}</span>
        <button type="button" class="button link" onClick=${() => signOut(null)}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1">${view}</main>
    <${Announcer} />
  </div>`;
}

function skipToMain(event) {
  event.preventDefault();
  const main = document.getElementById("main");
  if (main) main.focus();
}

const LIVE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

function LiveIndicator() {
  const [state, setState] = useState(getLiveState());
  useEffect(() => {
    let previous = getLiveState().state;
    setState(getLiveState()); // a change between the first render and this effect
    return liveState.on((next) => {
      if (previous === "live" && next.state === "reconnecting") announce("Live updates interrupted; reconnecting…", "warning");
      if (next.state === "live" && next.resumed) announce("Live updates resumed; nothing was missed.", "info");
      previous = next.state;
      setState(next);
    });
  }, []);
  return html`<span class=${`live-state ${state.state}`} data-state=${state.state}>
    <span class="dot" aria-hidden="true"></span>${LIVE_LABELS[state.state] || state.state}
  </span>`;
}

/** The page's one polite live region: every announcement is read out and shown as a toast for a while. */
function Announcer() {
  const [items, setItems] = useState([]);
  useEffect(
    () =>
      announcements.on((item) => {
        setItems((list) => [...list.slice(-3), item]);
        setTimeout(() => setItems((list) => list.filter((x) => x.id !== item.id)), 10000);
      }),
    [],
  );
  return html`<div class="toasts" role="status" aria-live="polite" aria-relevant="additions text">
    ${items.map((item) => html`<p key=${item.id} class=${`toast ${item.kind}`}>${item.text}</p>`)}
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));

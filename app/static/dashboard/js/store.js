// App-wide state shared by views: the announcer (an aria-live region and toasts), the live event stream
// over one WebSocket, and its connection state.

import { GRAPHQL_PATH } from "./api.js";
import { eventLabel, statusLabel } from "./format.js";
import { LiveClient, graphqlWebSocketUrl } from "./live.js";
import { getToken, signOut } from "./session.js";

function emitter() {
  const listeners = new Set();
  return {
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    emit(value) {
      for (const listener of [...listeners]) listener(value);
    },
  };
}

// --- announcements ------------------------------------------------------------------------------------

export const announcements = emitter();
let announcementId = 0;

/** Say something to everyone: screen readers hear it (aria-live), sighted users see a toast. */
export function announce(text, kind = "info") {
  announcementId += 1;
  announcements.emit({ id: announcementId, text, kind });
}

// --- the live stream ----------------------------------------------------------------------------------

export const LIVE_SUBSCRIPTION = `subscription DashboardLive($after: String) {
  exportStatusChanged(after: $after) {
    sequence occurredAt type status previousStatus reason
    actor { id name }
    project { id name number }
    budget { id version exportStatus }
    erpRequest { id sequence status }
  }
}`;

export const liveEvents = emitter();
export const resynced = emitter(); // after a reconnect: views reload
export const liveState = emitter();
let client = null;
let lastSequence = null; // the newest BudgetEvent.sequence seen, the `after` of a resumed subscription
let currentState = { state: "closed" };

export function getLiveState() {
  return currentState;
}

export function getLastSequence() {
  return lastSequence;
}

function setState(state, detail = {}) {
  currentState = { state, ...detail };
  liveState.emit(currentState);
}

export function describeEvent(event) {
  const request = event.erpRequest ? ` request #${event.erpRequest.sequence}` : "";
  const who = event.actor ? ` by ${event.actor.name}` : "";
  const why = event.reason ? `, reason: \u201c${event.reason}\u201d` : "";
  return `${eventLabel(event.type)}: ${event.project.name}${request}${who}${why}. Now ${statusLabel(event.status)}.`;
}

/** The newest event sequence among the viewer's budgets, read before any view loads its data: subscribing
 * with `after` = this replays whatever happens between that read and the subscription, so nothing is missed.
 * (Any lower number is as correct, only replays more.) Null when the viewer's budgets have no events. */
export async function baselineSequence(gql) {
  const data = await gql(`query LiveBaseline {
    projects(first: 50) { edges { node { budget { history(first: 1) { edges { node { sequence } } } } } } }
  }`);
  let newest = null;
  for (const edge of data.projects.edges) {
    for (const event of edge.node.budget.history.edges) {
      if (newest === null || BigInt(event.node.sequence) > BigInt(newest)) newest = event.node.sequence;
    }
  }
  return newest;
}

// Announcements of live events are batched: a burst (a replay after a reconnect) is one sentence, not many.
let pendingAnnouncements = [];
let announceTimer = null;

function announceEvent(event) {
  pendingAnnouncements.push(event);
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => {
    const events = pendingAnnouncements;
    pendingAnnouncements = [];
    if (events.length <= 2) events.forEach((e) => announce(describeEvent(e), "live"));
    else announce(`${events.length} export updates. Latest: ${describeEvent(events[events.length - 1])}`, "live");
  }, 300);
}

/** Start following exportStatusChanged for the signed-in user (company-wide; the server filters to what
 * the user may see), from `after` (see baselineSequence). After a reconnect the subscription resumes with
 * `after` = the last sequence seen, and views reload (`resynced`) in case the replay was cut short. */
export function startLive(after = null) {
  stopLive();
  lastSequence = after;
  client = new LiveClient({
    url: graphqlWebSocketUrl(GRAPHQL_PATH),
    token: getToken,
    onState: (state, detail) => {
      setState(state, detail);
      if (state === "live" && detail && detail.resumed) resynced.emit(null);
    },
    onFatal: () => signOut("The live connection refused your sign-in (the token expired or was replaced)."),
  });
  client.subscribe(
    LIVE_SUBSCRIPTION,
    () => (lastSequence === null ? {} : { after: lastSequence }),
    {
      next(payload) {
        const event = payload && payload.data && payload.data.exportStatusChanged;
        if (!event) return;
        if (lastSequence !== null && BigInt(event.sequence) <= BigInt(lastSequence)) return; // already seen
        lastSequence = event.sequence;
        liveEvents.emit(event);
        announceEvent(event);
      },
      error(errors, id) {
        // e.g. SUBSCRIBER_TOO_SLOW: the server ended the stream; pick it up again from the last event seen.
        const resumeAfter = (errors || []).map((e) => e.extensions && e.extensions.resumeAfter).find(Boolean);
        if (resumeAfter && lastSequence === null) lastSequence = resumeAfter;
        setTimeout(() => client && client.resubscribe(id), 1000);
      },
    },
  );
}

export function stopLive() {
  if (client) client.close();
  client = null;
}

// Shared pieces of the views: htm bound to Preact, data loading, actions, and small accessible components.

import htm from "htm";
import { h } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";

import { ApiError, gql } from "./api.js";
import { dateTime, eventLabel, money, sentence, statusLabel } from "./format.js";
import { ROOT, newIdempotencyKey } from "./session.js";
import { announce, liveEvents, resynced } from "./store.js";

export const html = htm.bind(h);

/** An in-app link (the router handles the click; the address is the real deep link). */
export function href(path) {
  return `${ROOT}${path}`;
}

// --- data ----------------------------------------------------------------------------------------------

/** Load with `loader()`; `reload()` keeps showing the old data until the new arrives. */
export function useLoad(loader, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await loader();
      if (mine === generation.current) setState({ data, error: null, loading: false });
      return data;
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ ...s, error, loading: false }));
      return null;
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    setState({ data: null, error: null, loading: true });
    reload();
  }, [reload]);
  return { ...state, reload };
}

/** Call `handler(event)` for live events that `matches(event)`, and `handler(null)` after a reconnect;
 * coalesces bursts into one call. */
export function useLiveEvents(matches, handler, deps) {
  useEffect(() => {
    let timer = null;
    let latest = null;
    const schedule = (event) => {
      latest = event;
      clearTimeout(timer);
      timer = setTimeout(() => handler(latest), 50);
    };
    const offEvents = liveEvents.on((event) => matches(event) && schedule(event));
    const offResync = resynced.on(() => schedule(null));
    return () => {
      offEvents();
      offResync();
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}

// --- actions -------------------------------------------------------------------------------------------

export const CONFLICT_NOTICE =
  "Someone changed this while you were looking at it, so nothing was done. It has been reloaded with the " +
  "latest state: check it and try again.";

async function withNetworkRetry(call) {
  // The same idempotency key makes a retried click safe: the server answers with the first result.
  const delays = [400, 1200];
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof ApiError) || !error.network || attempt >= delays.length) throw error;
      await new Promise((resolve) => setTimeout(resolve, delays[attempt]));
    }
  }
}

/**
 * Run mutations for one item. `perform(name, mutation, input, successText)` sends `input` plus a fresh
 * idempotencyKey (one per click), shows userErrors, and on VERSION_CONFLICT reloads the item and says so.
 */
export function useActions(reload) {
  const [busy, setBusy] = useState(null);
  const [result, setResult] = useState(null); // { kind: "success"|"warning"|"error", text, errors }
  const perform = useCallback(
    async (name, mutation, input, successText) => {
      if (busy) return null;
      const idempotencyKey = newIdempotencyKey();
      setBusy(name);
      setResult(null);
      try {
        const data = await withNetworkRetry(() => gql(mutation, { input: { ...input, idempotencyKey } }));
        const payload = Object.values(data)[0];
        const errors = payload.userErrors || [];
        if (errors.some((e) => e.code === "VERSION_CONFLICT")) {
          await reload();
          setResult({ kind: "warning", text: CONFLICT_NOTICE, errors: [] });
          announce(CONFLICT_NOTICE, "warning");
        } else if (errors.length) {
          setResult({ kind: "error", text: "Nothing was changed:", errors });
          announce(`Nothing was changed: ${errors.map((e) => sentence(e.message)).join(" ")}`, "error");
        } else {
          await reload();
          setResult({ kind: "success", text: successText, errors: [] });
          announce(successText, "success");
        }
        return payload;
      } catch (error) {
        setResult({ kind: "error", text: error.message, errors: [] });
        return null;
      } finally {
        setBusy(null);
      }
    },
    [busy, reload],
  );
  return { busy, result, perform, clear: () => setResult(null) };
}

// --- components ----------------------------------------------------------------------------------------

export function PageTitle({ children }) {
  return html`<h1 id="page-title" tabindex="-1">${children}</h1>`;
}

export function Money({ value, currency }) {
  return html`<span class="money">${money(value, currency)}</span>`;
}

export function When({ value }) {
  if (!value) return html`<span class="muted">—</span>`;
  return html`<time datetime=${value}>${dateTime(value)}</time>`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${String(status).toLowerCase().replace(/_/g, "-")}`}>${statusLabel(status)}</span>`;
}

export function Loading({ what = "Loading" }) {
  return html`<p class="loading" role="status">${what}…</p>`;
}

export function LoadError({ error, retry }) {
  return html`<div class="notice error" role="alert">
    <p>${error.message || String(error)}</p>
    ${retry && html`<button type="button" onClick=${retry}>Try again</button>`}
  </div>`;
}

/** The outcome of the last action: success, the conflict reload, or the server's userErrors. */
export function ActionResult({ result }) {
  if (!result) return null;
  const role = result.kind === "error" ? "alert" : "status";
  return html`<div class=${`notice ${result.kind}`} role=${role}>
    <p>${result.text}</p>
    ${result.errors.length > 0 &&
    html`<ul>
      ${result.errors.map((e) => html`<li key=${e.code + e.message}>${sentence(e.message)}</li>`)}
    </ul>`}
  </div>`;
}

/** A button that stays focusable and announces why it cannot act (aria-disabled, not disabled). */
export function ActionButton({ onClick, disabled, busy, describedBy, kind = "primary", children, type = "button" }) {
  return html`<button
    type=${type}
    class=${`button ${kind}`}
    aria-disabled=${disabled || busy ? "true" : undefined}
    aria-busy=${busy ? "true" : undefined}
    aria-describedby=${describedBy}
    onClick=${(event) => {
      if (disabled || busy) {
        event.preventDefault();
        return;
      }
      if (onClick) onClick(event);
    }}
  >
    ${busy ? "Working…" : children}
  </button>`;
}

/** A wide table that scrolls sideways on a phone, reachable and labelled for keyboard users. */
export function TableScroller({ label, children }) {
  return html`<div class="table-scroller" role="region" aria-label=${label} tabindex="0">${children}</div>`;
}

/** Blockers as plain sentences: what stops an action right now, shown before anyone clicks. */
export function BlockerList({ id, blockers, lineLink }) {
  return html`<ul id=${id} class="blockers">
    ${blockers.map(
      (b, i) => html`<li key=${i} data-code=${b.code}>
        ${sentence(b.message)}
        ${b.lineItem && lineLink && html`${" "}<a href=${lineLink(b.lineItem)}>Go to line ${lineLabel(b.lineItem)}</a>`}
      </li>`,
    )}
  </ul>`;
}

export function lineLabel(line) {
  const parts = [line.costCode && line.costCode.code, line.costType && line.costType.code, line.subJob];
  return parts.filter(Boolean).join(" · ");
}

/** Lines of an export (a request's frozen lines or a budget's pending export) with totals. */
export function ExportLines({ lines, currency, caption, totals }) {
  return html`<${TableScroller} label=${caption}>
    <table class="data lines">
      <caption>${caption}</caption>
      <thead>
        <tr>
          <th scope="col">Cost code</th>
          <th scope="col">Cost type</th>
          <th scope="col">Sub job</th>
          <th scope="col">Description</th>
          <th scope="col" class="num">Original</th>
          <th scope="col" class="num">Changes</th>
          <th scope="col" class="num">Revised</th>
        </tr>
      </thead>
      <tbody>
        ${lines.map(
          (line, i) => html`<tr key=${i}>
            <td data-label="Cost code">${line.costCode}${line.isNewLine ? html`${" "}<span class="tag">new</span>` : ""}</td>
            <td data-label="Cost type">${line.costType}</td>
            <td data-label="Sub job">${line.subJob || html`<span class="muted">—</span>`}</td>
            <td data-label="Description">${line.description || ""}</td>
            <td data-label="Original" class="num"><${Money} value=${line.originalBudget} currency=${currency} /></td>
            <td data-label="Changes" class="num"><${Money} value=${line.budgetChanges} currency=${currency} /></td>
            <td data-label="Revised" class="num"><${Money} value=${line.revisedEstimate} currency=${currency} /></td>
          </tr>`,
        )}
      </tbody>
      <tfoot>
        <tr>
          <th scope="row" colspan="4">Total (${lines.length} ${lines.length === 1 ? "line" : "lines"})</th>
          <td data-label="Original" class="num"><${Money} value=${totals.original} currency=${currency} /></td>
          <td data-label="Changes" class="num"><${Money} value=${totals.changes} currency=${currency} /></td>
          <td data-label="Revised" class="num"><${Money} value=${totals.revised} currency=${currency} /></td>
        </tr>
      </tfoot>
    </table>
  <//>`;
}

export const EVENT_FIELDS = `sequence occurredAt type status previousStatus reason actor { name } erpRequest { id sequence }`;

/** The budget's audit trail, newest first. */
export function History({ events, label = "Event history" }) {
  if (!events.length) return html`<p class="muted">No events yet.</p>`;
  return html`<ol class="history" aria-label=${label}>
    ${events.map(
      (e) => html`<li key=${e.sequence}>
        <${When} value=${e.occurredAt} />
        <span class="event-type">${eventLabel(e.type)}</span>
        ${e.actor && html`<span class="actor">by ${e.actor.name}</span>`}
        ${e.previousStatus &&
        e.previousStatus !== e.status &&
        html`<span class="transition">${statusLabel(e.previousStatus)} → ${statusLabel(e.status)}</span>`}
        ${e.erpRequest && html`<a href=${href(`/requests/${e.erpRequest.id}`)}>request #${e.erpRequest.sequence}</a>`}
        ${e.reason && html`<q class="reason">${e.reason}</q>`}
      </li>`,
    )}
  </ol>`;
}

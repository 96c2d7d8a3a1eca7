// The ERP Integrations queue: one tab per export status, live over exportStatusChanged.

import { useEffect, useRef, useState } from "preact/hooks";

import { gql } from "../api.js";
import { KIND_LABELS } from "../format.js";
import { navigate } from "../router.js";
import {
  Loading,
  LoadError,
  Money,
  PageTitle,
  StatusBadge,
  TableScroller,
  When,
  href,
  html,
  useLiveEvents,
  useLoad,
} from "../ui.js";

export const TABS = [
  { status: "PENDING_ACCEPTANCE", alias: "pending", label: "Ready to export", empty: "Nothing is waiting for a decision." },
  { status: "EXPORTING", alias: "exporting", label: "Exporting", empty: "Nothing is being exported right now." },
  { status: "AWAITING_POSTING", alias: "awaiting", label: "Awaiting posting", empty: "Nothing is waiting to be posted." },
  { status: "EXPORT_FAILED", alias: "failed", label: "Failed", empty: "No failed exports." },
  { status: "SYNCED", alias: "synced", label: "Synced", empty: "No synced requests yet." },
  { status: "REJECTED", alias: "rejected", label: "Rejected", empty: "No rejected requests." },
  { status: "RETRIEVED", alias: "retrieved", label: "Retrieved", empty: "No retrieved requests." },
];

const ORDERS = [
  { key: "newest", label: "Newest sent first", value: { field: "SENT_AT", direction: "DESC" } },
  { key: "oldest", label: "Oldest sent first", value: { field: "SENT_AT", direction: "ASC" } },
  { key: "largest", label: "Largest total first", value: { field: "TOTAL_ORIGINAL_BUDGET", direction: "DESC" } },
  { key: "decided", label: "Most recently decided", value: { field: "DECIDED_AT", direction: "DESC" } },
];

const PAGE = 25;

const ROW_FIELDS = `id sequence kind status sentAt sentBy { name } decidedAt decidedBy { name }
  rejectionReason failureMessage erpReference totalOriginalBudget totalBudgetChanges
  project { id name number } budget { id currency }`;

function queueQuery(caps) {
  const vars = ["$status: [ExportStatus!]", "$projectId: ID", "$first: Int", "$after: String"];
  let selection = "status: $status, projectId: $projectId";
  if (caps.queueFilter) selection = "filter: {status: $status, projectId: $projectId}";
  if (caps.queueOrder) {
    vars.push("$orderBy: ErpRequestOrder");
    selection += ", orderBy: $orderBy";
  }
  const counts = TABS.map(
    (t) => `${t.alias}: erpRequests(status: [${t.status}], projectId: $projectId, first: 0) { totalCount }`,
  ).join("\n  ");
  return `query Queue(${vars.join(", ")}) {
  ${counts}
  list: erpRequests(${selection}, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { ${ROW_FIELDS} } }
  }
}`;
}

const PROJECTS = `query QueueProjects { projects(first: 200) { edges { node { id name number } } } }`;

export function QueueView({ caps, query }) {
  const tab = TABS.find((t) => t.status === query.get("status")) || TABS[0];
  const order = ORDERS.find((o) => o.key === query.get("order")) || ORDERS[0];
  const projectId = query.get("project") || null;
  const [extra, setExtra] = useState({ edges: [], pageInfo: null }); // pages loaded with "Show more"
  const [fresh, setFresh] = useState(new Set());
  const seen = useRef(null);
  const tabRefs = useRef({});

  const load = useLoad(async () => {
    const variables = { status: [tab.status], projectId, first: PAGE, after: null };
    if (caps.queueOrder) variables.orderBy = order.value;
    return gql(queueQuery(caps), variables);
  }, [tab.status, order.key, projectId, caps]);
  const projects = useLoad(async () => (await gql(PROJECTS)).projects.edges.map((e) => e.node), []);

  useEffect(() => setExtra({ edges: [], pageInfo: null }), [tab.status, order.key, projectId]);

  // Rows that arrived through a live update are highlighted once.
  useEffect(() => {
    if (!load.data) return;
    const ids = load.data.list.edges.map((e) => e.node.id);
    if (seen.current && seen.current.tab === tab.status) {
      setFresh(new Set(ids.filter((id) => !seen.current.ids.has(id))));
    } else {
      setFresh(new Set());
    }
    seen.current = { tab: tab.status, ids: new Set(ids) };
  }, [load.data]);

  useLiveEvents(() => true, () => load.reload(), [load.reload]);

  function select(next, focus = false) {
    const params = new URLSearchParams(query);
    if (next.status === TABS[0].status) params.delete("status");
    else params.set("status", next.status);
    const search = params.toString();
    navigate(search ? `/?${search}` : "/", { replace: true, keepFocus: true });
    if (focus) setTimeout(() => tabRefs.current[next.status] && tabRefs.current[next.status].focus(), 0);
  }

  function setParam(name, value) {
    const params = new URLSearchParams(query);
    if (value) params.set(name, value);
    else params.delete(name);
    const search = params.toString();
    navigate(search ? `/?${search}` : "/", { replace: true, keepFocus: true });
  }

  function onTabKey(event) {
    const index = TABS.indexOf(tab);
    const moves = { ArrowRight: index + 1, ArrowLeft: index - 1, Home: 0, End: TABS.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    select(TABS[(moves[event.key] + TABS.length) % TABS.length], true);
  }

  async function showMore() {
    const pageInfo = extra.pageInfo || load.data.list.pageInfo;
    const variables = { status: [tab.status], projectId, first: PAGE, after: pageInfo.endCursor };
    if (caps.queueOrder) variables.orderBy = order.value;
    const data = await gql(queueQuery(caps), variables);
    setExtra({ edges: [...extra.edges, ...data.list.edges], pageInfo: data.list.pageInfo });
  }

  const data = load.data;
  const edges = data ? [...data.list.edges, ...extra.edges.filter((e) => !data.list.edges.some((d) => d.node.id === e.node.id))] : [];
  const pageInfo = extra.pageInfo || (data && data.list.pageInfo);

  return html`<section aria-labelledby="page-title">
    <${PageTitle}>ERP Integrations<//>
    <p class="lede">Budgets sent by project teams, by where they stand. The list updates by itself.</p>

    <div class="filters">
      <label>
        Project
        <select value=${projectId || ""} onChange=${(e) => setParam("project", e.currentTarget.value)}>
          <option value="">All projects</option>
          ${(projects.data || []).map((p) => html`<option key=${p.id} value=${p.id}>${p.number} · ${p.name}</option>`)}
        </select>
      </label>
      ${caps.queueOrder &&
      html`<label>
        Order
        <select value=${order.key} onChange=${(e) => setParam("order", e.currentTarget.value === "newest" ? "" : e.currentTarget.value)}>
          ${ORDERS.map((o) => html`<option key=${o.key} value=${o.key}>${o.label}</option>`)}
        </select>
      </label>`}
    </div>

    <div role="tablist" aria-label="Requests by status" class="tabs" onKeyDown=${onTabKey}>
      ${TABS.map((t) => {
        const selected = t === tab;
        const count = data ? data[t.alias].totalCount : null;
        return html`<button
          key=${t.status}
          type="button"
          role="tab"
          id=${`tab-${t.status}`}
          aria-selected=${selected ? "true" : "false"}
          aria-controls="queue-panel"
          tabindex=${selected ? "0" : "-1"}
          ref=${(el) => (tabRefs.current[t.status] = el)}
          onClick=${() => select(t)}
        >
          ${t.label}${count !== null && html` <span class="count" aria-label=${`${count} requests`}>${count}</span>`}
        </button>`;
      })}
    </div>

    <div role="tabpanel" id="queue-panel" aria-labelledby=${`tab-${tab.status}`} tabindex="0" aria-busy=${load.loading ? "true" : "false"}>
      ${load.error && html`<${LoadError} error=${load.error} retry=${load.reload} />`}
      ${!data && !load.error && html`<${Loading} what="Loading the queue" />`}
      ${data && edges.length === 0 && html`<p class="empty">${tab.empty}</p>`}
      ${data &&
      edges.length > 0 &&
      html`<${QueueTable} edges=${edges} tab=${tab} fresh=${fresh} />
        <p class="muted">${edges.length} of ${data.list.totalCount} shown.</p>
        ${pageInfo && pageInfo.hasNextPage && html`<button type="button" class="button secondary" onClick=${showMore}>Show more</button>`}`}
    </div>
  </section>`;
}

function QueueTable({ edges, tab, fresh }) {
  return html`<${TableScroller} label=${`${tab.label} requests`}>
    <table class="data queue">
      <caption class="visually-hidden">${tab.label}: requests, one per row</caption>
      <thead>
        <tr>
          <th scope="col">Request</th>
          <th scope="col">Sent by</th>
          <th scope="col">Sent</th>
          <th scope="col" class="num">Original</th>
          <th scope="col" class="num">Changes</th>
          <th scope="col">Status</th>
        </tr>
      </thead>
      <tbody>
        ${edges.map(({ node: r }) => {
          const currency = r.budget.currency;
          return html`<tr key=${r.id} class=${fresh.has(r.id) ? "fresh" : ""} data-request-id=${r.id}>
            <th scope="row" data-label="Request">
              <a href=${href(`/requests/${r.id}`)}>${r.project.name}</a>
              <span class="sub">#${r.sequence} · ${KIND_LABELS[r.kind] || r.kind} · ${r.project.number}</span>
            </th>
            <td data-label="Sent by">${r.sentBy.name}</td>
            <td data-label="Sent"><${When} value=${r.sentAt} /></td>
            <td data-label="Original" class="num"><${Money} value=${r.totalOriginalBudget} currency=${currency} /></td>
            <td data-label="Changes" class="num"><${Money} value=${r.totalBudgetChanges} currency=${currency} /></td>
            <td data-label="Status">
              <${StatusBadge} status=${r.status} />
              ${r.status === "REJECTED" && r.rejectionReason && html`<q class="reason">${r.rejectionReason}</q>`}
              ${r.status === "EXPORT_FAILED" && r.failureMessage && html`<span class="sub">${r.failureMessage}</span>`}
              ${r.decidedBy && html`<span class="sub">by ${r.decidedBy.name}</span>`}
            </td>
          </tr>`;
        })}
      </tbody>
    </table>
  <//>`;
}

// Project users' side: their budgets, each with what stops Send and Unlock, the pending export, and
// Lock / Send / Retrieve / Unlock.

import { gql } from "../api.js";
import { permissionAtLeast, sumCents } from "../format.js";
import {
  ActionButton,
  ActionResult,
  BlockerList,
  EVENT_FIELDS,
  ExportLines,
  History,
  Loading,
  LoadError,
  Money,
  PageTitle,
  StatusBadge,
  TableScroller,
  When,
  href,
  html,
  useActions,
  useLiveEvents,
  useLoad,
} from "../ui.js";

const BUDGETS = `query Budgets {
  projects(first: 200) {
    totalCount
    edges { node {
      id name number erpSynced viewerPermission
      budget { id currency locked exportStatus revisedBudgetTotal lineItemCount sendBlockers { code } }
    } }
  }
}`;

export function BudgetsView() {
  const load = useLoad(async () => (await gql(BUDGETS)).projects, []);
  useLiveEvents(() => true, () => load.reload(), [load.reload]);
  const projects = load.data ? load.data.edges.map((e) => e.node) : [];
  return html`<section aria-labelledby="page-title">
    <${PageTitle}>Budgets<//>
    <p class="lede">The project budgets you can see. Open one to lock it, send it to the ERP, retrieve or unlock it.</p>
    ${load.error && html`<${LoadError} error=${load.error} retry=${load.reload} />`}
    ${!load.data && !load.error && html`<${Loading} what="Loading budgets" />`}
    ${load.data && projects.length === 0 && html`<p class="empty">You have no projects yet.</p>`}
    ${projects.length > 0 &&
    html`<${TableScroller} label="Budgets">
      <table class="data budgets">
        <caption class="visually-hidden">Budgets, one per project</caption>
        <thead>
          <tr>
            <th scope="col">Project</th>
            <th scope="col">Status</th>
            <th scope="col">Lines</th>
            <th scope="col" class="num">Revised total</th>
            <th scope="col">Send</th>
          </tr>
        </thead>
        <tbody>
          ${projects.map((p) => {
            const b = p.budget;
            const blockers = b.sendBlockers.length;
            return html`<tr key=${p.id}>
              <th scope="row" data-label="Project">
                <a href=${href(`/budgets/${b.id}`)}>${p.name}</a>
                <span class="sub">${p.number}${b.locked ? " · locked" : ""}</span>
              </th>
              <td data-label="Status"><${StatusBadge} status=${b.exportStatus} /></td>
              <td data-label="Lines">${b.lineItemCount}</td>
              <td data-label="Revised total" class="num"><${Money} value=${b.revisedBudgetTotal} currency=${b.currency} /></td>
              <td data-label="Send">${blockers === 0 ? "Ready to send" : `${blockers} ${blockers === 1 ? "thing stops" : "things stop"} a send`}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    <//>`}
  </section>`;
}

function blockerSelection(caps) {
  const extras = [
    caps.blockerField ? "field" : "",
    caps.blockerLineItem ? "lineItem { id subJob costCode { code } costType { code } }" : "",
  ].join(" ");
  return `code message ${extras}`;
}

function budgetQuery(caps) {
  const viewerCan = caps.budgetViewerCan.length ? `viewerCan { ${caps.budgetViewerCan.join(" ")} }` : "";
  return `query Budget($id: ID!) {
  budget(id: $id) {
    id version currency locked lockedAt lockedBy { name } exportStatus ${viewerCan}
    originalBudgetTotal modificationsTotal revisedBudgetTotal lineItemCount
    project { id name number erpSynced erpJobId viewerPermission }
    sendBlockers { ${blockerSelection(caps)} }
    unlockBlockers { ${blockerSelection(caps)} }
    pendingExport { costCode costType subJob description originalBudget budgetChanges revisedEstimate isNewLine }
    erpRequests { id sequence kind status sentAt sentBy { name } decidedBy { name } rejectionReason failureMessage totalOriginalBudget totalBudgetChanges }
    lineItems(first: 200) { totalCount edges { node {
      id subJob description originalAmount modificationsAmount revisedAmount erpSynced
      costCode { code description } costType { code name }
    } } }
    history(first: 30) { edges { node { ${EVENT_FIELDS} } } }
  }
}`;
}

const USER_ERRORS = "userErrors { code message field }";
const MUTATIONS = {
  LOCK: `mutation Lock($input: BudgetActionInput!) { lockBudget(input: $input) { budget { id version } ${USER_ERRORS} } }`,
  UNLOCK: `mutation Unlock($input: BudgetActionInput!) { unlockBudget(input: $input) { budget { id version } ${USER_ERRORS} } }`,
  SEND: `mutation Send($input: BudgetActionInput!) { sendToERP(input: $input) { erpRequest { id } ${USER_ERRORS} } }`,
  RETRIEVE: `mutation Retrieve($input: BudgetActionInput!) { retrieveBudget(input: $input) { erpRequest { id } ${USER_ERRORS} } }`,
};

export function BudgetView({ caps, id }) {
  const load = useLoad(async () => (await gql(budgetQuery(caps), { id })).budget, [id, caps]);
  useLiveEvents((event) => event.budget.id === id, () => load.reload(), [id, load.reload]);
  const back = html`<p class="back"><a href=${href("/budgets")}>← Budgets</a></p>`;
  if (load.error && !load.data) return html`<section>${back}<${PageTitle}>Budget<//><${LoadError} error=${load.error} retry=${load.reload} /></section>`;
  if (!load.data) {
    if (load.loading) return html`<section>${back}<${PageTitle}>Budget<//><${Loading} what="Loading the budget" /></section>`;
    return html`<section>${back}<${PageTitle}>Budget not found<//><p>There is no such budget, or you may not see it.</p></section>`;
  }
  const b = load.data;
  const pendingTotals = {
    original: sumCents(b.pendingExport.map((l) => l.originalBudget)),
    changes: sumCents(b.pendingExport.map((l) => l.budgetChanges)),
    revised: sumCents(b.pendingExport.map((l) => l.revisedEstimate)),
  };
  const lines = b.lineItems.edges.map((e) => e.node);
  return html`<section aria-labelledby="page-title" class="budget">
    ${back}
    <${PageTitle}>${b.project.name} — budget<//>
    <p class="status-line">
      <${StatusBadge} status=${b.exportStatus} />
      ${b.locked
        ? html`<span class="lock">Locked${b.lockedBy ? ` by ${b.lockedBy.name}` : ""}, <${When} value=${b.lockedAt} /></span>`
        : html`<span class="lock">Not locked</span>`}
    </p>
    <dl class="facts totals">
      <div><dt>Project</dt><dd>${b.project.number}${b.project.erpJobId ? `, ERP job ${b.project.erpJobId}` : b.project.erpSynced ? "" : ", not synced with the ERP"}</dd></div>
      <div><dt>Original</dt><dd><${Money} value=${b.originalBudgetTotal} currency=${b.currency} /></dd></div>
      <div><dt>Modifications</dt><dd><${Money} value=${b.modificationsTotal} currency=${b.currency} /></dd></div>
      <div><dt>Revised</dt><dd><${Money} value=${b.revisedBudgetTotal} currency=${b.currency} /></dd></div>
    </dl>

    <${BudgetActions} caps=${caps} budget=${b} reload=${load.reload} />

    <h2>What a send would contain</h2>
    ${b.pendingExport.length === 0
      ? html`<p class="muted">Nothing: everything in this budget has been sent already.</p>`
      : html`<${ExportLines} lines=${b.pendingExport} currency=${b.currency} totals=${pendingTotals} caption="Pending export: only what is not yet exported" />`}

    <h2>Requests to the ERP</h2>
    ${b.erpRequests.length === 0
      ? html`<p class="muted">This budget has not been sent yet.</p>`
      : html`<ul class="requests">
          ${b.erpRequests.map(
            (r) => html`<li key=${r.id} data-request-id=${r.id}>
              <a href=${href(`/requests/${r.id}`)}>Request #${r.sequence}</a>
              <${StatusBadge} status=${r.status} />
              <span class="sub">sent by ${r.sentBy.name}, <${When} value=${r.sentAt} /></span>
              ${r.status === "REJECTED" && html`<span class="rejection">Rejected${r.decidedBy ? ` by ${r.decidedBy.name}` : ""}: <q class="reason">${r.rejectionReason}</q></span>`}
              ${r.failureMessage && html`<span class="sub failure">${r.failureMessage}</span>`}
            </li>`,
          )}
        </ul>`}

    <h2>Lines</h2>
    <${BudgetLines} lines=${lines} total=${b.lineItems.totalCount} currency=${b.currency} />

    <h2>History</h2>
    <${History} events=${b.history.edges.map((e) => e.node)} label="Budget history, newest first" />
  </section>`;
}

function BudgetLines({ lines, total, currency }) {
  if (!lines.length) return html`<p class="muted">No lines yet.</p>`;
  return html`<${TableScroller} label="Budget lines">
    <table class="data lines">
      <caption class="visually-hidden">Budget lines${total > lines.length ? ` (first ${lines.length} of ${total})` : ""}</caption>
      <thead>
        <tr>
          <th scope="col">Cost code</th>
          <th scope="col">Cost type</th>
          <th scope="col">Sub job</th>
          <th scope="col">Description</th>
          <th scope="col" class="num">Original</th>
          <th scope="col" class="num">Changes</th>
          <th scope="col" class="num">Revised</th>
          <th scope="col">In ERP</th>
        </tr>
      </thead>
      <tbody>
        ${lines.map(
          (l) => html`<tr key=${l.id} id=${`line-${l.id}`}>
            <td data-label="Cost code" title=${l.costCode.description}>${l.costCode.code}</td>
            <td data-label="Cost type" title=${l.costType.name}>${l.costType.code}</td>
            <td data-label="Sub job">${l.subJob || html`<span class="muted">—</span>`}</td>
            <td data-label="Description">${l.description || ""}</td>
            <td data-label="Original" class="num"><${Money} value=${l.originalAmount} currency=${currency} /></td>
            <td data-label="Changes" class="num"><${Money} value=${l.modificationsAmount} currency=${currency} /></td>
            <td data-label="Revised" class="num"><${Money} value=${l.revisedAmount} currency=${currency} /></td>
            <td data-label="In ERP">${l.erpSynced ? "Synced" : "Not yet"}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  <//>
  ${total > lines.length && html`<p class="muted">Showing the first ${lines.length} of ${total} lines.</p>`}`;
}

function can(budget, name, fallback) {
  // Once the server has Budget.viewerCan, it decides; until then the budget's state and the permission do.
  if (budget.viewerCan && name in budget.viewerCan) return budget.viewerCan[name];
  return fallback;
}

function BudgetActions({ caps, budget: b, reload }) {
  const actions = useActions(reload);
  const editor = permissionAtLeast(b.project.viewerPermission, "STANDARD");
  const input = { budgetId: b.id, expectedVersion: b.version };
  const lineLink = caps.blockerLineItem ? (line) => `#line-${line.id}` : null;
  const sendable = can(b, "send", b.sendBlockers.length === 0);
  const unlockable = can(b, "unlock", b.unlockBlockers.length === 0);
  const lockable = can(b, "lock", !b.locked && editor);
  const retrievable = can(b, "retrieve", b.exportStatus === "PENDING_ACCEPTANCE" && editor);
  const pendingCount = b.pendingExport.length;

  return html`<section class="actions" aria-labelledby="actions-title">
    <h2 id="actions-title">Actions</h2>
    <${ActionResult} result=${actions.result} />
    <div class="action-group">
      ${!b.locked &&
      html`<div class="action">
        <${ActionButton}
          disabled=${!lockable}
          describedBy="lock-hint"
          busy=${actions.busy === "LOCK"}
          onClick=${() => actions.perform("LOCK", MUTATIONS.LOCK, input, "Budget locked.")}
        >Lock budget<//>
        <p id="lock-hint" class="hint">
          ${lockable
            ? "Locking freezes the original amounts; later changes go through modifications."
            : "You cannot lock this budget: it needs the lock permission on this project."}
        </p>
      </div>`}

      <div class="action">
        <${ActionButton}
          disabled=${!sendable}
          describedBy="send-why"
          busy=${actions.busy === "SEND"}
          onClick=${() => actions.perform("SEND", MUTATIONS.SEND, input, "Sent to the ERP: the request now waits for an approver.")}
        >Send to ERP<//>
        <div id="send-why" class="why">
          ${b.sendBlockers.length > 0
            ? html`<p class="blocked-title">Send is not possible yet:</p>
                <${BlockerList} id="send-blockers" blockers=${b.sendBlockers} lineLink=${lineLink} />`
            : html`<p class="hint">Ready: sends ${pendingCount} ${pendingCount === 1 ? "line" : "lines"} for an approver to accept (preview below).</p>`}
        </div>
      </div>

      ${retrievable &&
      html`<div class="action">
        <${ActionButton}
          kind="secondary"
          busy=${actions.busy === "RETRIEVE"}
          describedBy="retrieve-hint"
          onClick=${() => actions.perform("RETRIEVE", MUTATIONS.RETRIEVE, input, "Request retrieved: it is back with the project team.")}
        >Retrieve<//>
        <p id="retrieve-hint" class="hint">Takes the request back before an approver decides.</p>
      </div>`}

      ${b.locked &&
      html`<div class="action">
        <${ActionButton}
          kind="secondary"
          disabled=${!unlockable}
          describedBy="unlock-why"
          busy=${actions.busy === "UNLOCK"}
          onClick=${() => actions.perform("UNLOCK", MUTATIONS.UNLOCK, input, "Budget unlocked.")}
        >Unlock budget<//>
        <div id="unlock-why" class="why">
          ${b.unlockBlockers.length > 0
            ? html`<p class="blocked-title">Unlock is not possible now:</p>
                <${BlockerList} id="unlock-blockers" blockers=${b.unlockBlockers} lineLink=${lineLink} />`
            : html`<p class="hint">Unlocking lets original amounts be edited again.</p>`}
        </div>
      </div>`}
    </div>
  </section>`;
}

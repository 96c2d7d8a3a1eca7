// One ERP request: what it exports, who sent it, its budget's history, and the approver's actions.

import { useRef, useState } from "preact/hooks";

import { gql } from "../api.js";
import { KIND_LABELS, sumCents } from "../format.js";
import {
  ActionButton,
  ActionResult,
  EVENT_FIELDS,
  ExportLines,
  History,
  Loading,
  LoadError,
  Money,
  PageTitle,
  StatusBadge,
  When,
  href,
  html,
  useActions,
  useLiveEvents,
  useLoad,
} from "../ui.js";

const USER_ERRORS = "userErrors { code message field }";

function requestQuery(caps) {
  const viewerCan = caps.requestViewerCan.length ? `viewerCan { ${caps.requestViewerCan.join(" ")} }` : "";
  const entries = caps.requestEntries ? "entryCount entriesTotal" : "";
  return `query Request($id: ID!) {
  erpRequest(id: $id) {
    id sequence kind status sentAt decidedAt rejectionReason retrievedAt exportedAt postedAt erpReference failureMessage
    sentBy { name email } decidedBy { name } retrievedBy { name }
    totalOriginalBudget totalBudgetChanges ${entries} ${viewerCan}
    project { id name number erpJobId }
    budget { id version currency exportStatus history(first: 50) { totalCount edges { node { ${EVENT_FIELDS} } } } }
    lines { costCode costType subJob description originalBudget budgetChanges revisedEstimate isNewLine }
  }
}`;
}

const DECIDE = `mutation Decide($input: DecideExportInput!) {
  decideExport(input: $input) { erpRequest { id status } ${USER_ERRORS} } }`;
const RETRY = `mutation Retry($input: ErpRequestActionInput!) {
  retryExport(input: $input) { erpRequest { id status } ${USER_ERRORS} } }`;
const CONFIRM = `mutation ConfirmPosting($input: ErpRequestActionInput!) {
  confirmJobCostPosting(input: $input) { erpRequest { id status } ${USER_ERRORS} } }`;

export function RequestView({ caps, id }) {
  const load = useLoad(async () => (await gql(requestQuery(caps), { id })).erpRequest, [id, caps]);
  useLiveEvents(
    (event) => load.data && event.budget.id === load.data.budget.id,
    () => load.reload(),
    [load.data && load.data.budget.id, load.reload],
  );
  const back = html`<p class="back"><a href=${href("/")}>← ERP Integrations</a></p>`;
  if (load.error && !load.data) return html`<section>${back}<${PageTitle}>Request<//><${LoadError} error=${load.error} retry=${load.reload} /></section>`;
  if (!load.data) {
    if (load.loading) return html`<section>${back}<${PageTitle}>Request<//><${Loading} what="Loading the request" /></section>`;
    return html`<section>${back}<${PageTitle}>Request not found<//><p>There is no such request, or you may not see it.</p></section>`;
  }
  const r = load.data;
  const currency = r.budget.currency;
  const totals = {
    original: r.totalOriginalBudget,
    changes: r.totalBudgetChanges,
    revised: sumCents(r.lines.map((l) => l.revisedEstimate)),
  };
  return html`<section aria-labelledby="page-title" class="request">
    ${back}
    <${PageTitle}>${r.project.name} — request #${r.sequence}<//>
    <p class="status-line"><${StatusBadge} status=${r.status} /> ${KIND_LABELS[r.kind] || r.kind}</p>

    <dl class="facts">
      <div><dt>Project</dt><dd>${r.project.name} (${r.project.number})${r.project.erpJobId ? `, ERP job ${r.project.erpJobId}` : ""}${" · "}<a href=${href(`/budgets/${r.budget.id}`)}>open the budget</a></dd></div>
      <div><dt>Sent by</dt><dd>${r.sentBy.name} <span class="muted">${r.sentBy.email}</span>, <${When} value=${r.sentAt} /></dd></div>
      ${r.decidedBy && html`<div><dt>${r.status === "REJECTED" ? "Rejected by" : "Decided by"}</dt><dd>${r.decidedBy.name}, <${When} value=${r.decidedAt} /></dd></div>`}
      ${r.rejectionReason && html`<div><dt>Reason</dt><dd><q class="reason">${r.rejectionReason}</q></dd></div>`}
      ${r.retrievedBy && html`<div><dt>Retrieved by</dt><dd>${r.retrievedBy.name}, <${When} value=${r.retrievedAt} /></dd></div>`}
      ${r.exportedAt && html`<div><dt>Exported</dt><dd><${When} value=${r.exportedAt} /></dd></div>`}
      ${r.postedAt && html`<div><dt>Posted</dt><dd><${When} value=${r.postedAt} /></dd></div>`}
      ${r.erpReference && html`<div><dt>ERP reference</dt><dd>${r.erpReference}</dd></div>`}
      ${r.failureMessage && html`<div><dt>Failure</dt><dd class="failure">${r.failureMessage}</dd></div>`}
      ${caps.requestEntries && r.entryCount > 0 && html`<div><dt>Exported entries</dt><dd>${r.entryCount}, total <${Money} value=${r.entriesTotal} currency=${currency} /></dd></div>`}
    </dl>

    <${RequestActions} caps=${caps} request=${r} reload=${load.reload} />

    <h2>Lines</h2>
    <${ExportLines} lines=${r.lines} currency=${currency} totals=${totals} caption=${`Lines in request #${r.sequence}`} />

    <h2>Budget history</h2>
    <${History} events=${r.budget.history.edges.map((e) => e.node)} label="Budget history, newest first" />
  </section>`;
}

function allowed(request, name, fallback) {
  // Once the server has ErpRequest.viewerCan, it decides; until then, the status does.
  if (request.viewerCan && name in request.viewerCan) return request.viewerCan[name];
  return fallback;
}

function RequestActions({ caps, request: r, reload }) {
  const actions = useActions(reload);
  const [reason, setReason] = useState("");
  const [reasonError, setReasonError] = useState(null);
  const [reference, setReference] = useState("");
  const [entryCount, setEntryCount] = useState("");
  const [totalAmount, setTotalAmount] = useState("");
  const reasonRef = useRef(null);
  const pending = r.status === "PENDING_ACCEPTANCE";
  const canAccept = allowed(r, "accept", pending);
  const canReject = allowed(r, "reject", pending);
  const canRetry = allowed(r, "retryExport", r.status === "EXPORT_FAILED");
  const canConfirm = allowed(r, "confirmPosting", r.status === "AWAITING_POSTING");
  const versioned = (input, flag) => (flag ? { ...input, expectedVersion: r.budget.version } : input);

  function decide(decision) {
    const input = { erpRequestId: r.id, decision };
    if (decision === "REJECT") {
      if (!reason.trim()) {
        setReasonError("Enter a reason: the project team reads it to fix the budget.");
        reasonRef.current && reasonRef.current.focus();
        return;
      }
      input.reason = reason.trim();
    }
    setReasonError(null);
    const text = decision === "ACCEPT" ? `Request #${r.sequence} accepted; the export starts now.` : `Request #${r.sequence} rejected.`;
    actions.perform(decision, DECIDE, versioned(input, caps.decideExpectedVersion), text).then((payload) => {
      const serverReason = payload && payload.userErrors.find((e) => e.code === "REASON_REQUIRED");
      if (serverReason) setReasonError(serverReason.message);
      else if (payload && !payload.userErrors.length) setReason("");
    });
  }

  function confirm(event) {
    event.preventDefault();
    const input = { erpRequestId: r.id };
    if (reference.trim()) input.erpReference = reference.trim();
    if (caps.postingTotals) {
      if (entryCount.trim()) input.entryCount = Number.parseInt(entryCount, 10);
      if (totalAmount.trim()) input.totalAmount = totalAmount.trim();
    }
    actions.perform("CONFIRM", CONFIRM, versioned(input, caps.requestActionExpectedVersion), `Posting of request #${r.sequence} confirmed.`);
  }

  const anything = canAccept || canReject || canRetry || canConfirm;
  return html`<section class="actions" aria-labelledby="actions-title">
    <h2 id="actions-title">Actions</h2>
    <${ActionResult} result=${actions.result} />
    ${!anything && html`<p class="muted">No action is open on this request in its current status.</p>`}
    ${(canAccept || canReject) &&
    html`<div class="action-group">
      ${canAccept &&
      html`<div class="action">
        <${ActionButton} busy=${actions.busy === "ACCEPT"} onClick=${() => decide("ACCEPT")}>Accept and export<//>
        <p class="hint">Writes the lines to the ERP as job-cost budget entries.</p>
      </div>`}
      ${canReject &&
      html`<form class="action reject" onSubmit=${(e) => { e.preventDefault(); decide("REJECT"); }} novalidate>
        <label for="reject-reason">Reason for rejecting <span class="required">(required)</span></label>
        <textarea
          id="reject-reason"
          ref=${reasonRef}
          rows="3"
          required
          aria-required="true"
          aria-invalid=${reasonError ? "true" : undefined}
          aria-describedby=${reasonError ? "reject-reason-error" : "reject-reason-hint"}
          value=${reason}
          onInput=${(e) => setReason(e.currentTarget.value)}
        ></textarea>
        ${reasonError
          ? html`<p id="reject-reason-error" class="field-error" role="alert">${reasonError}</p>`
          : html`<p id="reject-reason-hint" class="hint">The project team sees this reason on their budget.</p>`}
        <${ActionButton} type="submit" kind="danger" busy=${actions.busy === "REJECT"}>Reject<//>
      </form>`}
    </div>`}
    ${canRetry &&
    html`<div class="action">
      <${ActionButton}
        busy=${actions.busy === "RETRY"}
        onClick=${() => actions.perform("RETRY", RETRY, versioned({ erpRequestId: r.id }, caps.requestActionExpectedVersion), `Export of request #${r.sequence} queued again.`)}
      >Retry export<//>
      <p class="hint">Exports the same entries again; the ERP ignores entries it already has.</p>
    </div>`}
    ${canConfirm &&
    html`<form class="action confirm" onSubmit=${confirm}>
      <label for="erp-reference">ERP reference <span class="muted">(optional: the batch or document number)</span></label>
      <input id="erp-reference" type="text" autocomplete="off" value=${reference} onInput=${(e) => setReference(e.currentTarget.value)} />
      ${caps.postingTotals &&
      html`<label for="entry-count">Entries posted (control total)</label>
        <input id="entry-count" type="number" inputmode="numeric" min="0" step="1" value=${entryCount} onInput=${(e) => setEntryCount(e.currentTarget.value)} />
        <label for="total-amount">Amount posted (control total)</label>
        <input id="total-amount" type="text" inputmode="decimal" pattern="-?[0-9]+(\\.[0-9]{1,2})?" value=${totalAmount} onInput=${(e) => setTotalAmount(e.currentTarget.value)} />`}
      <${ActionButton} type="submit" busy=${actions.busy === "CONFIRM"}>Confirm posting<//>
      <p class="hint">Confirms the exported entries are posted in the ERP's Job Cost.</p>
    </form>`}
  </section>`;
}

"""GraphQL enums and what each value means to a client.

ErrorCode, ExportStatus, PermissionLevel and ExportEntryKind are the domain's own enums, served as they are:
`strawberry.enum` registers the domain class itself, so a code or status cannot exist on one side only, and
resolvers hand the domain's members straight to the schema. Every enum, the domain's and the schema's own
(here and in schema/queue.py), is served through `served_enum` with one description per member, written
here next to the enum it describes: the domain stays free of API wording, and a member without a
description is listed by tests/schema/test_descriptions.py."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

import strawberry

from domain.errors import ErrorCode
from domain.export import EntryKind as ExportEntryKind
from domain.permissions import PermissionLevel
from domain.status import ExportStatus

E = TypeVar("E", bound=enum.Enum)


def served_enum(cls: type[E], *, name: str, description: str, values: Mapping[E, str]) -> type[E]:
    """Register `cls` as the GraphQL enum `name`, each member described by `values` (served under its name)."""
    strawberry.enum(cls, name=name, description=description)
    for value in cls.__strawberry_definition__.values:  # type: ignore[attr-defined]
        value.description = values.get(cls[value.name])
    return cls


served_enum(
    ErrorCode,
    name="ErrorCode",
    description=(
        "Why a mutation was refused (`userErrors[].code`) or why an action is not possible now (`Blocker.code`). "
        "Codes are stable; messages are for people and may change. When a mutation returns any userError, "
        "nothing at all changed."
    ),
    values={
        ErrorCode.NOT_FOUND: (
            "The id names nothing the viewer may see: it does not exist, is in another company, or is on a "
            "project the viewer cannot see (indistinguishable on purpose). `field` names the input."
        ),
        ErrorCode.FORBIDDEN: (
            "The viewer lacks the permission the action needs; the message names it (e.g. Admin on the Budget "
            "tool, or the accounting approver flag with ERP Integrations Standard)."
        ),
        ErrorCode.VALIDATION_FAILED: (
            "An input is invalid; `field` names it and the message says why. For example: blank or too long text, "
            "NUL or an unpaired surrogate in text, a project number or code already used, more fraction digits "
            "than allowed, a modification amount not above 0, deleting a line that was sent or has "
            "modifications, an idempotencyKey reused with other input, a posting total the connection requires "
            "left out. Also a send the ERP connector cannot carry (it exports no original budgets)."
        ),
        ErrorCode.VERSION_CONFLICT: (
            "The budget changed since the version the caller gave as expectedVersion (`field` "
            "[\"input\", \"expectedVersion\"]), or a concurrent change won: reload and try again."
        ),
        ErrorCode.DUPLICATE_LINE_ITEM: (
            "The budget already has a line with this cost code, cost type and sub job (or an import names the "
            "same key twice)."
        ),
        ErrorCode.BUDGET_LOCKED: (
            "The budget is locked: original amounts are read-only and it only takes new lines of amount 0 (use a "
            "budget modification instead); or lockBudget on a budget already locked."
        ),
        ErrorCode.BUDGET_NOT_LOCKED: (
            "The budget is not locked: lock it before sending it or creating modifications; unlockBudget on an "
            "unlocked budget."
        ),
        ErrorCode.EXPORT_IN_PROGRESS: (
            "The budget's latest ERP request is PENDING_ACCEPTANCE or EXPORTING (lines and modifications are "
            "frozen), or, for sending and unlocking, also EXPORT_FAILED: retrieve it, wait for the export or retry "
            "it."
        ),
        ErrorCode.NOT_PENDING: (
            "The request is not in the status the action needs: retrieveBudget and decideExport need "
            "PENDING_ACCEPTANCE, confirmJobCostPosting needs AWAITING_POSTING."
        ),
        ErrorCode.ALREADY_DECIDED: (
            "decideExport on a request an approver already accepted or rejected (EXPORTING, EXPORT_FAILED, "
            "AWAITING_POSTING, SYNCED or REJECTED)."
        ),
        ErrorCode.REASON_REQUIRED: "decideExport REJECT without a non-blank reason.",
        ErrorCode.ERP_NOT_CONNECTED: "The company has no ERP connection (an administrator sets one with the CLI).",
        ErrorCode.PROJECT_NOT_SYNCED: "The project is not synced with the ERP as a job: run syncProjectToERP.",
        ErrorCode.COST_CODE_NOT_SYNCED: (
            "A cost code the budget uses is not synced with the ERP (one per code): run syncProjectToERP."
        ),
        ErrorCode.COST_TYPE_NOT_SYNCED: (
            "A cost type the budget uses is not synced with the ERP (one per type): run syncProjectToERP."
        ),
        ErrorCode.SUB_JOB_NOT_SUPPORTED: (
            "A line that would be sent has a sub job, which the company's ERP connector does not support (one per "
            "line; Blocker.lineItem names it)."
        ),
        ErrorCode.MODIFICATIONS_NOT_SUPPORTED: (
            "The send would carry budget modifications, which the company's ERP connector cannot export."
        ),
        ErrorCode.NOTHING_TO_SEND: "Everything in the budget has already been exported: there is nothing to send.",
        ErrorCode.AWAITING_POSTING: (
            "The latest request's entries were exported but are not yet posted in the ERP's Job Cost: no send or "
            "unlock until confirmJobCostPosting (or the connector's posting detection) makes it SYNCED."
        ),
        ErrorCode.NOT_FAILED: "retryExport on a request whose export has not failed (only EXPORT_FAILED is retried).",
        ErrorCode.ERP_SYNC_FAILED: (
            "syncProjectToERP: the ERP connector refused the job sync or did not answer within 30 seconds (the "
            "message says why); nothing changed."
        ),
        ErrorCode.AMOUNT_OUT_OF_RANGE: (
            "The change would take an amount or a total past 13 integer digits (±9999999999999.99): a line's "
            "original, modifications or revised amount, a budget total, or a value a send would carry."
        ),
        ErrorCode.ERP_FORMAT_INVALID: (
            "A value the ERP's import format cannot carry as it is (field size, number range, code format); one "
            "per line and field, with Blocker.lineItem / Blocker.field naming the cell (as a userError, `field` "
            "is [\"lineItem\", \"<line id>\", \"<field>\"], or [\"project\", \"<field>\"] for the project's number "
            "or job id)."
        ),
        ErrorCode.POSTING_TOTALS_MISMATCH: (
            "confirmJobCostPosting: entryCount or totalAmount differs from the request's exported entries "
            "(entryCount / entriesTotal); the request stays AWAITING_POSTING."
        ),
    },
)

served_enum(
    ExportStatus,
    name="ExportStatus",
    description=(
        "Where an ERP request stands; a budget's exportStatus is its latest request's (NOT_SENT before the first "
        "send). PENDING_ACCEPTANCE -> EXPORTING (accepted) -> AWAITING_POSTING -> SYNCED; EXPORTING -> "
        "EXPORT_FAILED -> EXPORTING (retried); PENDING_ACCEPTANCE -> RETRIEVED or REJECTED."
    ),
    values={
        ExportStatus.NOT_SENT: "The budget has never been sent (budgets only; a request is never NOT_SENT).",
        ExportStatus.PENDING_ACCEPTANCE: (
            "Sent: waits in the ERP Integrations queue for an approver to accept or reject it; the sender may "
            "retrieve it. Lines and modifications are frozen."
        ),
        ExportStatus.RETRIEVED: "Taken back by its sender before a decision; nothing was exported (final).",
        ExportStatus.REJECTED: (
            "Rejected by an approver with a reason (ErpRequest.rejectionReason); nothing was exported (final)."
        ),
        ExportStatus.EXPORTING: (
            "Accepted: the ERP connector is writing the entries (in the background, retried, never twice). "
            "Lines and modifications are frozen."
        ),
        ExportStatus.EXPORT_FAILED: (
            "The export failed (ErpRequest.failureMessage says why); nothing was written. An approver can "
            "retryExport it."
        ),
        ExportStatus.AWAITING_POSTING: (
            "The entries are in the ERP and wait to be posted in its Job Cost (confirmJobCostPosting, an "
            "integrator's posted callback, or the connector's own posting detection). The budget can be neither "
            "re-sent nor unlocked meanwhile."
        ),
        ExportStatus.SYNCED: (
            "The entries are posted in the ERP's Job Cost (final). ERPs that post at once go straight here from "
            "EXPORTING."
        ),
    },
)

served_enum(
    ExportEntryKind,
    name="ExportEntryKind",
    description="What an exported entry carries.",
    values={
        ExportEntryKind.ORIGINAL_BUDGET: (
            "A line's original budget amount (on a re-send, the signed change since the last export)."
        ),
        ExportEntryKind.BUDGET_MODIFICATION: (
            "A budget modification's effect on one line (negative on the line the money moves out of)."
        ),
    },
)

served_enum(
    PermissionLevel,
    name="PermissionLevel",
    description=(
        "A user's level on one tool: the Budget tool of a project (Project.viewerPermission) or the company's "
        "ERP Integrations tool (User.erpIntegrationsPermission). Each level includes the ones below it."
    ),
    values={
        PermissionLevel.NONE: (
            "No access. A project whose Budget tool a user has NONE on is visible to them only if they are a "
            "company admin or have ERP Integrations READ_ONLY or more."
        ),
        PermissionLevel.READ_ONLY: "Sees what the tool shows, changes nothing.",
        PermissionLevel.STANDARD: (
            "Budget tool: edits lines and creates modifications. ERP Integrations: with the accounting approver "
            "flag, accepts, rejects and retries exports."
        ),
        PermissionLevel.ADMIN: (
            "Budget tool: also locks, sends, retrieves and unlocks the budget and syncs the project to the ERP "
            "(a STANDARD user may hold the Lock Budget or the Send and Retrieve grant). ERP Integrations: also "
            "confirms Job Cost posting and syncs projects to the ERP."
        ),
    },
)


class ErpRequestKind(enum.Enum):
    CREATE_BUDGET = "CREATE_BUDGET"
    UPDATE_BUDGET = "UPDATE_BUDGET"


served_enum(
    ErpRequestKind,
    name="ErpRequestKind",
    description="Whether a request creates the budget in the ERP or updates it.",
    values={
        ErpRequestKind.CREATE_BUDGET: (
            "No earlier request of the budget was accepted: a first send, or every earlier one was retrieved or "
            "rejected."
        ),
        ErpRequestKind.UPDATE_BUDGET: (
            "An earlier request of the budget was accepted: this one carries only what is not exported yet (new "
            "lines, changed original amounts as signed deltas, new modifications)."
        ),
    },
)


class ErpDecision(enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


served_enum(
    ErpDecision,
    name="ErpDecision",
    description="An approver's decision on a request pending acceptance (decideExport).",
    values={
        ErpDecision.ACCEPT: "Export it: the request becomes EXPORTING and the ERP connector writes its entries.",
        ErpDecision.REJECT: "Do not export it: the request becomes REJECTED; a reason is required.",
    },
)


__all__ = [
    "ErpDecision",
    "ErpRequestKind",
    "ErrorCode",
    "ExportEntryKind",
    "ExportStatus",
    "PermissionLevel",
    "served_enum",
]

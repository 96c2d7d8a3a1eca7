"""The one interface every ERP connector implements. The workflow asks a connector what it can do
(capabilities), to create the job with its cost codes/types, to export one request's entries, and -- where
the target allows -- whether those entries have been posted in Job Cost.

Exactly-once: every ExportBatch carries `export_id`, stable for its request across retries, crashes and
workers. A connector must make a second export of the same export_id write nothing new (de-duplicate on
it, or on the entry ids inside it) and return the same reference.

Format validation: `validate(batch)` lists every value the target's import format cannot carry as it is (a
code too long, an amount beyond the field's range, a quantity with more decimals than the field holds, ...),
one `FormatViolation` per offending line and field. It is pure and fast (no I/O), so it can run for
`sendBlockers` and `sendToERP` on a batch built from what *would* be sent (resolvers.budget_state.send_batch),
and again in the worker right before writing (resolvers.export_pipeline.check_format).
The file connectors' `export()` runs it too and refuses (ConnectorError, not retryable) a batch that does not
validate, so a bad file is never written. Capability limits (sub jobs on a target without them, ...) are not
repeated here: `sendBlockers` already lists them from the connector's capabilities.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from domain.export import Capabilities


class ConnectorError(Exception):
    """The ERP refused or failed. The message is shown to the approver as the request's failureMessage.
    `retryable` errors (timeouts, 5xx, a drop folder briefly unavailable) are retried with backoff;
    the others (4xx, invalid data) fail the export at once."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class ConnectorConfigError(ValueError):
    """The company's connector options are wrong (missing drop folder, bad URL, ...)."""


class ViolationField(enum.StrEnum):
    """`FormatViolation.field`: a line field as the GraphQL API names it (BudgetLineItem), or a job field
    (Project) when the violation has no line."""

    COST_CODE = "costCode"
    COST_TYPE = "costType"
    SUB_JOB = "subJob"
    DESCRIPTION = "description"
    UNIT_OF_MEASURE = "unitOfMeasure"
    QUANTITY = "quantity"
    UNIT_COST = "unitCost"
    ORIGINAL_AMOUNT = "originalAmount"
    # A budget modification's amount on this line (one side of the modification, signed).
    MODIFICATIONS_AMOUNT = "modificationsAmount"
    # Job level (line_item_id is None): Project.number, or Project.erpJobId when the job was synced.
    JOB_NUMBER = "number"
    ERP_JOB_ID = "erpJobId"


@dataclass(frozen=True)
class FormatViolation:
    """One value the target's import format cannot carry as it is. `message` is a whole sentence for the
    user, naming the line, the value and the limit (and where the limit comes from)."""

    line_item_id: str | None  # None for a job-level field
    field: str  # a ViolationField value
    message: str


def unique_violations(violations: Iterable[FormatViolation]) -> list[FormatViolation]:
    """One violation per (line, field): the first found, in the order found."""
    seen: set[tuple[str | None, str]] = set()
    result = []
    for violation in violations:
        key = (violation.line_item_id, str(violation.field))
        if key not in seen:
            seen.add(key)
            result.append(violation)
    return result


MAX_VIOLATIONS_IN_MESSAGE = 10


def violations_message(target: str, violations: list[FormatViolation]) -> str:
    """The failure message of an export refused for its format (shown to the approver)."""
    shown = [v.message for v in violations[:MAX_VIOLATIONS_IN_MESSAGE]]
    more = len(violations) - len(shown)
    tail = f"; and {more} more" if more > 0 else ""
    return f"{target} cannot import this export as it is: {'; '.join(shown)}{tail}"


class FormatInvalidError(ConnectorError):
    """An export refused before anything was written because the batch does not fit the target's import
    format. Not retryable: the content must change (a new send) or the connection's options."""

    def __init__(self, target: str, violations: list[FormatViolation], note: str = "") -> None:
        message = violations_message(target, violations)
        super().__init__(f"{message}. {note}" if note else message, retryable=False)
        self.violations = violations


@dataclass(frozen=True)
class JobSpec:
    company_id: str
    project_id: str
    number: str
    name: str
    cost_codes: tuple[tuple[str, str], ...] = ()  # (code, description)
    cost_types: tuple[tuple[str, str], ...] = ()  # (code, name)
    pairs: tuple[tuple[str, str], ...] = ()  # (cost code, cost type) used on the job


@dataclass(frozen=True)
class ExportItem:
    entry_id: str  # stable id of one exported amount; unique across all exports
    line_item_id: str
    cost_code: str
    cost_code_description: str
    cost_type: str
    sub_job: str | None
    description: str | None
    kind: str  # ORIGINAL_BUDGET or BUDGET_MODIFICATION
    amount: Decimal  # signed
    quantity: Decimal | None = None
    unit_of_measure: str | None = None
    unit_cost: Decimal | None = None
    # The line's current estimate (descriptive, not deltas): quantity, unit of measure and unit cost above.
    modification_number: int | None = None  # for BUDGET_MODIFICATION entries
    modification_notes: str | None = None
    is_new_line: bool = False  # the line's first export: quantities and units travel with it
    # The line's original amount once this request is exported: its new *total*, not the change. Targets whose
    # import replaces the estimate (Vista JC Original Estimates) write this instead of `amount`. The batch
    # builder fills it on ORIGINAL_BUDGET entries (= the line's original_amount when the request was sent;
    # original amounts are read-only while a request is in flight). When it is None, a connector may use
    # `amount` only for a line's first export (is_new_line, or any entry of a CREATE_BUDGET request).
    line_original_amount: Decimal | None = None

    @property
    def line_label(self) -> str:
        """`cost code/cost type[/sub job]`, as the workflow names a line in messages."""
        return "/".join([self.cost_code, self.cost_type] + ([self.sub_job] if self.sub_job else []))


@dataclass(frozen=True)
class ExportBatch:
    export_id: str  # stable per request: targets de-duplicate on it
    company_id: str
    request_id: str
    request_sequence: int  # 1 for a budget's first send, 2, 3, ... (retrieved and rejected sends count)
    # CREATE_BUDGET when nothing of the budget has reached the ERP before this request (every earlier request
    # was retrieved or rejected), else UPDATE_BUDGET; see domain.export.request_kind and erp.webhook.
    request_kind: str
    erp_job_id: str
    job_number: str
    job_name: str
    export_date: date
    items: tuple[ExportItem, ...] = field(default_factory=tuple)

    @property
    def originals(self) -> tuple[ExportItem, ...]:
        return tuple(i for i in self.items if i.kind == "ORIGINAL_BUDGET")

    @property
    def modifications(self) -> tuple[ExportItem, ...]:
        return tuple(i for i in self.items if i.kind == "BUDGET_MODIFICATION")


@dataclass(frozen=True)
class ExportReceipt:
    """What the ERP said. `deferred`: the target accepted the batch for processing and will report the
    outcome later (a webhook integrator's callback); the request then stays EXPORTING until it does."""

    erp_reference: str | None
    deferred: bool = False


class Connector(Protocol):
    name: str
    display_name: str
    capabilities: Capabilities
    # True when posted() can actually see Job Cost posting; the worker polls only those connectors.
    detects_posting: bool
    # The option `require_posting_totals`: a confirmation of posting (confirmJobCostPosting, the webhook's
    # `posted` callback) must carry the posting journal's entry count and total (see domain.posting).
    # Default true for the file connectors, whose posting nothing else can see; false for the others.
    requires_posting_totals: bool

    async def check_settings(self) -> None:
        """When the connection is saved (`company set-erp`): the checks of the options that need I/O, raising
        ConnectorConfigError with what to fix (the webhook's URL resolves to public addresses only, a drop
        folder is an existing writable directory). The constructor checks the options' form, without I/O."""
        ...

    async def sync_job(self, job: JobSpec) -> str:
        """Create or link the job and its cost codes/types; return the ERP's job id."""
        ...

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        """Every value of the batch the target's import format cannot carry as it is, one per offending line
        and field (empty when the batch fits). Pure: no I/O."""
        ...

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        """Write the batch to the ERP; calling it again with the same export_id writes nothing new. A batch
        that does not validate is refused (FormatInvalidError) by the file connectors."""
        ...

    async def posted(self, export_id: str) -> bool | None:
        """Whether the batch's entries are posted in Job Cost: True/False, or None when this target
        cannot tell (then an integrator confirms posting)."""
        ...

    async def mark_posted(self, export_id: str) -> None:
        """Record that the batch's entries were posted (where the target keeps that state; else no-op)."""
        ...


# Every connector class also declares `options: ConnectorOptions`, each option it reads from
# `companies.erp_settings` with what it sets (`budgetbridge company set-erp --help` shows them): a name it does
# not declare is refused when the options are saved (erp.registry.check_option_names).
ConnectorOptions = Mapping[str, str]

REQUIRE_POSTING_TOTALS = "require_posting_totals"
# Stored by `company set-erp --allow-private-network`: the webhook may use http and non-public addresses.
ALLOW_PRIVATE_NETWORK = "allow_private_network"
POSTING_TOTALS_HELP = "true/false: a confirmation of posting must carry the posting journal's entry count and total"
TRUE_WORDS = frozenset({"true", "yes", "1"})
FALSE_WORDS = frozenset({"false", "no", "0"})


def flag_option(settings: dict[str, Any], name: str, default: bool) -> bool:
    """A true/false option: a bool, or text true/yes/1 or false/no/0 (any case), as `--option K=V` gives it."""
    value = settings.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ConnectorConfigError(f"the option {name!r} must be true or false")


def option(settings: dict[str, Any], name: str, *, required: bool = True, default: Any = None) -> Any:
    value = settings.get(name, default)
    if required and (value is None or value == ""):
        raise ConnectorConfigError(f"the connector needs the option {name!r}")
    return value

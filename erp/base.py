"""The one interface every ERP connector implements. The workflow asks a connector what it can do
(capabilities), to create the job with its cost codes/types, to export one request's entries, and -- where
the target allows -- whether those entries have been posted in Job Cost.

Exactly-once: every ExportBatch carries `export_id`, stable for its request across retries, crashes and
workers. A connector must make a second export of the same export_id write nothing new (de-duplicate on
it, or on the entry ids inside it) and return the same reference.
"""

from __future__ import annotations

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
    modification_number: int | None = None  # for BUDGET_MODIFICATION entries
    modification_notes: str | None = None
    is_new_line: bool = False  # the line's first export: quantities and units travel with it


@dataclass(frozen=True)
class ExportBatch:
    export_id: str  # stable per request: targets de-duplicate on it
    company_id: str
    request_id: str
    request_sequence: int  # 1 for a budget's first send, 2, 3, ...
    request_kind: str  # CREATE_BUDGET or UPDATE_BUDGET
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

    async def sync_job(self, job: JobSpec) -> str:
        """Create or link the job and its cost codes/types; return the ERP's job id."""
        ...

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        """Write the batch to the ERP; calling it again with the same export_id writes nothing new."""
        ...

    async def posted(self, export_id: str) -> bool | None:
        """Whether the batch's entries are posted in Job Cost: True/False, or None when this target
        cannot tell (then an integrator confirms posting)."""
        ...

    async def mark_posted(self, export_id: str) -> None:
        """Record that the batch's entries were posted (where the target keeps that state; else no-op)."""
        ...


def option(settings: dict[str, Any], name: str, *, required: bool = True, default: Any = None) -> Any:
    value = settings.get(name, default)
    if required and (value is None or value == ""):
        raise ConnectorConfigError(f"the connector needs the option {name!r}")
    return value

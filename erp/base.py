"""The one interface every ERP connector implements. The workflow asks a connector three things: what it
can do (capabilities), to create the job with its cost codes/types, and to export one request's entries."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from domain.export import Capabilities


class ConnectorError(Exception):
    """The ERP refused or failed; the message is shown to the approver as the request's failureMessage."""


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
    entry_id: str
    cost_code: str
    cost_type: str
    sub_job: str | None
    description: str | None
    kind: str
    amount: Decimal
    quantity: Decimal | None = None
    unit_of_measure: str | None = None
    unit_cost: Decimal | None = None


@dataclass(frozen=True)
class ExportBatch:
    export_id: str  # stable per request: targets de-duplicate on it
    company_id: str
    request_id: str
    request_kind: str
    erp_job_id: str
    job_number: str
    items: tuple[ExportItem, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ExportReceipt:
    erp_reference: str


class Connector(Protocol):
    name: str
    display_name: str
    capabilities: Capabilities

    async def sync_job(self, job: JobSpec) -> str:
        """Create or link the job and its cost codes/types; return the ERP's job id."""
        ...

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        """Write the batch to the ERP; calling it again with the same export_id writes nothing new."""
        ...

    async def mark_posted(self, export_id: str) -> None:
        """Record that the batch's entries were posted in Job Cost (where the target keeps that state)."""
        ...

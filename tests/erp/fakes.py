"""A scripted connector for pipeline tests: each export() takes the next scripted outcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from domain.export import Capabilities
from erp.base import ConnectorError, ExportBatch, ExportReceipt, FormatViolation, JobSpec


@dataclass
class ScriptedConnector:
    outcomes: list[Any] = field(default_factory=list)  # ExportReceipt or an exception to raise
    capabilities: Capabilities = field(default_factory=Capabilities)
    name: str = "scripted"
    display_name: str = "Scripted test ERP"
    detects_posting: bool = True
    requires_posting_totals: bool = False
    exported: list[ExportBatch] = field(default_factory=list)
    posted_exports: set[str] = field(default_factory=set)
    sync_error: ConnectorError | None = None
    violations: list[FormatViolation] = field(default_factory=list)  # what validate() reports

    async def check_settings(self) -> None:
        return None

    async def sync_job(self, job: JobSpec) -> str:
        if self.sync_error is not None:
            raise self.sync_error
        return f"JOB-{job.number}"

    def validate(self, batch: ExportBatch) -> list[FormatViolation]:
        return list(self.violations)

    async def export(self, batch: ExportBatch) -> ExportReceipt:
        self.exported.append(batch)
        outcome = self.outcomes.pop(0) if self.outcomes else ExportReceipt(f"REF-{batch.export_id}")
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def posted(self, export_id: str) -> bool | None:
        return export_id in self.posted_exports

    async def mark_posted(self, export_id: str) -> None:
        self.posted_exports.add(export_id)


class SingleConnectorRegistry:
    """Stands in for ConnectorRegistry: every connected company uses the one connector."""

    def __init__(self, connector: Any) -> None:
        self.connector = connector

    def get(self, name: str | None, options: dict[str, Any] | None = None) -> Any:
        return None if name is None else self.connector

    async def aclose(self) -> None:
        return None


def failures(*messages: str, retryable: bool = True) -> Iterable[ConnectorError]:
    return [ConnectorError(m, retryable=retryable) for m in messages]

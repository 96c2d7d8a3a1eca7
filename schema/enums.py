"""GraphQL enums. ErrorCode, ExportStatus, PermissionLevel and ExportEntryKind are the domain's own enums,
exposed as they are (a code cannot exist on one side only)."""

from __future__ import annotations

import enum

import strawberry

from domain.errors import ErrorCode as DomainErrorCode
from domain.export import EntryKind
from domain.permissions import PermissionLevel as DomainPermissionLevel
from domain.status import ExportStatus as DomainExportStatus

ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode")
ExportStatus = strawberry.enum(DomainExportStatus, name="ExportStatus")
ExportEntryKind = strawberry.enum(EntryKind, name="ExportEntryKind")
PermissionLevel = strawberry.enum(DomainPermissionLevel, name="PermissionLevel")


@strawberry.enum
class ErpRequestKind(enum.Enum):
    CREATE_BUDGET = "CREATE_BUDGET"
    UPDATE_BUDGET = "UPDATE_BUDGET"


@strawberry.enum
class ErpDecision(enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"

"""GraphQL enums. ErrorCode, ExportStatus, PermissionLevel and ExportEntryKind are the domain's own enums,
served as they are: `strawberry.enum` registers the domain class itself, so a code or status cannot exist
on one side only, and resolvers hand the domain's members straight to the schema."""

from __future__ import annotations

import enum

import strawberry

from domain.errors import ErrorCode
from domain.export import EntryKind as ExportEntryKind
from domain.permissions import PermissionLevel
from domain.status import ExportStatus

strawberry.enum(ErrorCode, name="ErrorCode")
strawberry.enum(ExportStatus, name="ExportStatus")
strawberry.enum(ExportEntryKind, name="ExportEntryKind")
strawberry.enum(PermissionLevel, name="PermissionLevel")


@strawberry.enum
class ErpRequestKind(enum.Enum):
    CREATE_BUDGET = "CREATE_BUDGET"
    UPDATE_BUDGET = "UPDATE_BUDGET"


@strawberry.enum
class ErpDecision(enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


__all__ = ["ErpDecision", "ErpRequestKind", "ErrorCode", "ExportEntryKind", "ExportStatus", "PermissionLevel"]

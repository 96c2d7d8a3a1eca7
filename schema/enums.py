"""GraphQL enums. ExportStatus and PermissionLevel are the domain's own enums, exposed as they are."""

from __future__ import annotations

import enum

import strawberry

from domain.errors import ErrorCode as DomainErrorCode
from domain.export import EntryKind
from domain.permissions import PermissionLevel as DomainPermissionLevel
from domain.status import ExportStatus as DomainExportStatus

ExportStatus = strawberry.enum(DomainExportStatus, name="ExportStatus")
ExportEntryKind = strawberry.enum(EntryKind, name="ExportEntryKind")


@strawberry.enum
class PermissionLevel(enum.Enum):
    NONE = "NONE"
    READ_ONLY = "READ_ONLY"
    STANDARD = "STANDARD"
    ADMIN = "ADMIN"

    @classmethod
    def of(cls, level: DomainPermissionLevel) -> PermissionLevel:
        return cls[level.name]


@strawberry.enum
class ErpRequestKind(enum.Enum):
    CREATE_BUDGET = "CREATE_BUDGET"
    UPDATE_BUDGET = "UPDATE_BUDGET"


@strawberry.enum
class ErpDecision(enum.Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"


# Generated from the domain's list: a code cannot exist on one side only.
ErrorCode = strawberry.enum(DomainErrorCode, name="ErrorCode")

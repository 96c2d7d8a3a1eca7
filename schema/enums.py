"""GraphQL enums. ExportStatus and PermissionLevel are the domain's own enums, exposed as they are."""

from __future__ import annotations

import enum

import strawberry

from domain.budget import ExportStatus as DomainExportStatus
from domain.export import EntryKind
from domain.permissions import PermissionLevel as DomainPermissionLevel

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


@strawberry.enum
class ErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    DUPLICATE_LINE_ITEM = "DUPLICATE_LINE_ITEM"
    BUDGET_LOCKED = "BUDGET_LOCKED"
    BUDGET_NOT_LOCKED = "BUDGET_NOT_LOCKED"
    EXPORT_IN_PROGRESS = "EXPORT_IN_PROGRESS"
    NOT_PENDING = "NOT_PENDING"
    ALREADY_DECIDED = "ALREADY_DECIDED"
    REASON_REQUIRED = "REASON_REQUIRED"
    ERP_NOT_CONNECTED = "ERP_NOT_CONNECTED"
    PROJECT_NOT_SYNCED = "PROJECT_NOT_SYNCED"
    COST_CODE_NOT_SYNCED = "COST_CODE_NOT_SYNCED"
    COST_TYPE_NOT_SYNCED = "COST_TYPE_NOT_SYNCED"
    SUB_JOB_NOT_SUPPORTED = "SUB_JOB_NOT_SUPPORTED"
    MODIFICATIONS_NOT_SUPPORTED = "MODIFICATIONS_NOT_SUPPORTED"
    NOTHING_TO_SEND = "NOTHING_TO_SEND"
    AWAITING_POSTING = "AWAITING_POSTING"
    NOT_FAILED = "NOT_FAILED"
    # Added to the contract's codes: the connector refused or failed to create the job (message says why).
    ERP_SYNC_FAILED = "ERP_SYNC_FAILED"

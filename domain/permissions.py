"""Who may do what (DOMAIN.md's table), as pure functions over an actor and their project access."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from domain.errors import DomainError, ErrorCode


class PermissionLevel(enum.IntEnum):
    NONE = 0
    READ_ONLY = 1
    STANDARD = 2
    ADMIN = 3


class Grant(enum.Enum):
    LOCK_BUDGET = "LOCK_BUDGET"
    SEND_AND_RETRIEVE = "SEND_AND_RETRIEVE"


class TokenScope(enum.Enum):
    """What an API token (a company's service principal) may do, on top of its principal's permissions.
    Every scope reads (queries and subscriptions); `workflow` adds the budget mutations, `erp-callback` the
    integrator's posting confirmation and callbacks. Nothing else: company setup, approvals and a person's
    own settings stay with people."""

    READ = "read"
    WORKFLOW = "workflow"
    ERP_CALLBACK = "erp-callback"


BUDGET_MUTATIONS = frozenset({
    "createBudgetLineItem", "updateBudgetLineItem", "deleteBudgetLineItem", "importBudgetLineItems",
    "createBudgetModification", "lockBudget", "unlockBudget", "sendToERP", "retrieveBudget",
})
POSTING_MUTATIONS = frozenset({"confirmJobCostPosting"})
SCOPE_MUTATIONS: dict[TokenScope, frozenset[str]] = {
    TokenScope.READ: frozenset(),
    TokenScope.WORKFLOW: BUDGET_MUTATIONS,
    TokenScope.ERP_CALLBACK: POSTING_MUTATIONS,
}


@dataclass(frozen=True)
class Actor:
    """The authenticated user, with their company-level rights. `scope` is set for an API token's service
    principal only (a person's actor has None: their permissions alone decide)."""

    user_id: str
    company_id: str
    is_company_admin: bool = False
    is_accounting_approver: bool = False
    erp_permission: PermissionLevel = PermissionLevel.NONE
    scope: TokenScope | None = None


@dataclass(frozen=True)
class ProjectAccess:
    """The actor's Budget tool permission on one project, plus granular grants."""

    budget_permission: PermissionLevel = PermissionLevel.NONE
    grants: frozenset[Grant] = field(default_factory=frozenset)

    def has(self, level: PermissionLevel) -> bool:
        return self.budget_permission >= level


NO_ACCESS = ProjectAccess()


def _refuse(message: str) -> DomainError:
    return DomainError(ErrorCode.FORBIDDEN, message)


def scope_refusal(actor: Actor, mutation: str) -> DomainError | None:
    """An API token may run a mutation only if its scope names it (checked before anything is loaded)."""
    if actor.scope is None or mutation in SCOPE_MUTATIONS[actor.scope]:
        return None
    return _refuse(f"{mutation} is not allowed for an API token with the {actor.scope.value!r} scope")


def can_read_budget(access: ProjectAccess) -> bool:
    return access.has(PermissionLevel.READ_ONLY)


def edit_lines_refusal(access: ProjectAccess) -> DomainError | None:
    if access.has(PermissionLevel.STANDARD):
        return None
    return _refuse("changing budget lines or modifications needs Standard or Admin on the Budget tool")


def lock_refusal(access: ProjectAccess) -> DomainError | None:
    if access.has(PermissionLevel.ADMIN) or Grant.LOCK_BUDGET in access.grants:
        return None
    return _refuse("locking a budget needs Admin on the Budget tool or the Lock Budget grant")


def send_refusal(access: ProjectAccess) -> DomainError | None:
    if access.has(PermissionLevel.ADMIN) or Grant.SEND_AND_RETRIEVE in access.grants:
        return None
    return _refuse("sending or retrieving needs Admin on the Budget tool or the Send and Retrieve grant")


def unlock_refusal(access: ProjectAccess) -> DomainError | None:
    if access.has(PermissionLevel.ADMIN):
        return None
    return _refuse("unlocking a budget needs Admin on the Budget tool")


def decide_refusal(actor: Actor) -> DomainError | None:
    if actor.is_accounting_approver and actor.erp_permission >= PermissionLevel.STANDARD:
        return None
    return _refuse("deciding exports needs Standard or Admin on ERP Integrations and the accounting approver flag")


def confirm_posting_refusal(actor: Actor) -> DomainError | None:
    if actor.erp_permission >= PermissionLevel.ADMIN:
        return None
    return _refuse("confirming Job Cost posting needs Admin on ERP Integrations")


def sync_project_refusal(actor: Actor, access: ProjectAccess) -> DomainError | None:
    if actor.erp_permission >= PermissionLevel.ADMIN or actor.is_company_admin or access.has(PermissionLevel.ADMIN):
        return None
    return _refuse("syncing a project to the ERP needs Admin on ERP Integrations or on the project's Budget tool")


def company_admin_refusal(actor: Actor, what: str) -> DomainError | None:
    if actor.is_company_admin:
        return None
    return _refuse(f"{what} needs a company admin")


def can_read_erp_queue(actor: Actor) -> bool:
    return actor.erp_permission >= PermissionLevel.READ_ONLY or actor.is_accounting_approver


def can_view_project(actor: Actor, access: ProjectAccess) -> bool:
    """Project members with any Budget permission see it; company admins and ERP Integrations users see
    every project of the company (approvers must see what a request would export)."""
    return (
        access.has(PermissionLevel.READ_ONLY)
        or actor.is_company_admin
        or actor.erp_permission >= PermissionLevel.READ_ONLY
    )

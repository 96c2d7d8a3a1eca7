"""Who may do what: every role against every permission function, expectations from DOMAIN.md's table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from domain import permissions
from domain.errors import DomainError
from domain.permissions import NO_ACCESS, Actor, Grant, PermissionLevel, ProjectAccess

L = PermissionLevel


@dataclass(frozen=True)
class Role:
    actor: Actor
    access: ProjectAccess


def budget_user(level: PermissionLevel, *grants: Grant) -> Role:
    return Role(Actor("u1", "c1"), ProjectAccess(level, frozenset(grants)))


def erp_user(level: PermissionLevel, *, approver: bool) -> Role:
    return Role(Actor("u1", "c1", is_accounting_approver=approver, erp_permission=level), NO_ACCESS)


ROLES: dict[str, Role] = {
    "budget_none": budget_user(L.NONE),
    "budget_read_only": budget_user(L.READ_ONLY),
    "budget_standard": budget_user(L.STANDARD),
    "budget_admin": budget_user(L.ADMIN),
    "read_only_with_lock_grant": budget_user(L.READ_ONLY, Grant.LOCK_BUDGET),
    "standard_with_lock_grant": budget_user(L.STANDARD, Grant.LOCK_BUDGET),
    "read_only_with_send_grant": budget_user(L.READ_ONLY, Grant.SEND_AND_RETRIEVE),
    "standard_with_send_grant": budget_user(L.STANDARD, Grant.SEND_AND_RETRIEVE),
    "standard_with_both_grants": budget_user(L.STANDARD, Grant.LOCK_BUDGET, Grant.SEND_AND_RETRIEVE),
    "approver_erp_none": erp_user(L.NONE, approver=True),
    "approver_erp_read_only": erp_user(L.READ_ONLY, approver=True),
    "approver_erp_standard": erp_user(L.STANDARD, approver=True),
    "approver_erp_admin": erp_user(L.ADMIN, approver=True),
    "erp_read_only": erp_user(L.READ_ONLY, approver=False),
    "erp_standard": erp_user(L.STANDARD, approver=False),
    "erp_admin_integrator": erp_user(L.ADMIN, approver=False),
    "company_admin": Role(Actor("u1", "c1", is_company_admin=True), NO_ACCESS),
}


# Each permission function reduced to "is it allowed?"; a refusal must be a FORBIDDEN DomainError.
def _allowed(refusal: DomainError | None) -> bool:
    if refusal is None:
        return True
    assert isinstance(refusal, DomainError)
    assert refusal.code == "FORBIDDEN"
    assert refusal.message
    return False


CHECKS: dict[str, Callable[[Role], bool]] = {
    "read_budget": lambda r: permissions.can_read_budget(r.access),
    "edit_lines": lambda r: _allowed(permissions.edit_lines_refusal(r.access)),
    "lock": lambda r: _allowed(permissions.lock_refusal(r.access)),
    "send_and_retrieve": lambda r: _allowed(permissions.send_refusal(r.access)),
    "unlock": lambda r: _allowed(permissions.unlock_refusal(r.access)),
    "decide": lambda r: _allowed(permissions.decide_refusal(r.actor)),
    "confirm_posting": lambda r: _allowed(permissions.confirm_posting_refusal(r.actor)),
    "sync_project": lambda r: _allowed(permissions.sync_project_refusal(r.actor, r.access)),
    "company_admin": lambda r: _allowed(permissions.company_admin_refusal(r.actor, "connecting the ERP")),
    "read_erp_queue": lambda r: permissions.can_read_erp_queue(r.actor),
    "view_project": lambda r: permissions.can_view_project(r.actor, r.access),
}

# Written from DOMAIN.md's table ("who" column) and the people section:
# - read budget: any Budget permission from Read-only up; view project: that, a company admin, or any
#   ERP Integrations permission (approvers must see what a request would export)
# - edit lines / modifications: Budget STANDARD or ADMIN
# - lock: Budget ADMIN or the LOCK_BUDGET grant; send/retrieve: Budget ADMIN or the SEND_AND_RETRIEVE grant
# - unlock: Budget ADMIN only (no grant)
# - decide (accept/reject/retry): ERP Integrations STANDARD or ADMIN *and* the approver flag
# - confirm Job Cost posting: ERP Integrations ADMIN (the integrator)
# - sync a project: ERP Integrations ADMIN, Budget ADMIN on the project, or a company admin
# - company-level settings: company admin; ERP queue: any ERP Integrations permission or the approver flag
Y, N = True, False
COLUMNS = tuple(CHECKS)
# fmt: off
#                                  read  edit  lock  send  unlk  decd  post  sync  cadm  queue view
EXPECTED_ROWS: dict[str, tuple[bool, ...]] = {
    "budget_none":                (N,    N,    N,    N,    N,    N,    N,    N,    N,    N,    N),
    "budget_read_only":           (Y,    N,    N,    N,    N,    N,    N,    N,    N,    N,    Y),
    "budget_standard":            (Y,    Y,    N,    N,    N,    N,    N,    N,    N,    N,    Y),
    "budget_admin":               (Y,    Y,    Y,    Y,    Y,    N,    N,    Y,    N,    N,    Y),
    "read_only_with_lock_grant":  (Y,    N,    Y,    N,    N,    N,    N,    N,    N,    N,    Y),
    "standard_with_lock_grant":   (Y,    Y,    Y,    N,    N,    N,    N,    N,    N,    N,    Y),
    "read_only_with_send_grant":  (Y,    N,    N,    Y,    N,    N,    N,    N,    N,    N,    Y),
    "standard_with_send_grant":   (Y,    Y,    N,    Y,    N,    N,    N,    N,    N,    N,    Y),
    "standard_with_both_grants":  (Y,    Y,    Y,    Y,    N,    N,    N,    N,    N,    N,    Y),
    "approver_erp_none":          (N,    N,    N,    N,    N,    N,    N,    N,    N,    Y,    N),
    "approver_erp_read_only":     (N,    N,    N,    N,    N,    N,    N,    N,    N,    Y,    Y),
    "approver_erp_standard":      (N,    N,    N,    N,    N,    Y,    N,    N,    N,    Y,    Y),
    "approver_erp_admin":         (N,    N,    N,    N,    N,    Y,    Y,    Y,    N,    Y,    Y),
    "erp_read_only":              (N,    N,    N,    N,    N,    N,    N,    N,    N,    Y,    Y),
    "erp_standard":               (N,    N,    N,    N,    N,    N,    N,    N,    N,    Y,    Y),
    "erp_admin_integrator":       (N,    N,    N,    N,    N,    N,    Y,    Y,    N,    Y,    Y),
    "company_admin":              (N,    N,    N,    N,    N,    N,    N,    Y,    Y,    N,    Y),
}
# fmt: on

CASES = [(role, check) for role in ROLES for check in COLUMNS]


def test_the_expectation_table_has_a_row_per_role_and_a_column_per_permission_function() -> None:
    assert set(EXPECTED_ROWS) == set(ROLES)
    assert all(len(row) == len(COLUMNS) for row in EXPECTED_ROWS.values())
    public = {
        name
        for name in vars(permissions)
        if name.endswith("_refusal") or (name.startswith("can_") and callable(getattr(permissions, name)))
    }
    covered = {
        "can_read_budget", "edit_lines_refusal", "lock_refusal", "send_refusal", "unlock_refusal",
        "decide_refusal", "confirm_posting_refusal", "sync_project_refusal", "company_admin_refusal",
        "can_read_erp_queue", "can_view_project",
        "scope_refusal",  # API token scopes: test_an_api_token_runs_exactly_the_mutations_of_its_scope
    }  # fmt: skip
    assert public == covered


MUTATIONS = sorted(permissions.BUDGET_MUTATIONS | permissions.POSTING_MUTATIONS | {
    "createProject", "create_costCode", "create_costType", "syncProjectToERP", "decideExport", "retryExport",
    "updateNotificationSettings",
})
SCOPE_ALLOWS = {
    permissions.TokenScope.READ: set(),
    permissions.TokenScope.WORKFLOW: {
        "createBudgetLineItem", "updateBudgetLineItem", "deleteBudgetLineItem", "importBudgetLineItems",
        "createBudgetModification", "lockBudget", "unlockBudget", "sendToERP", "retrieveBudget",
    },
    permissions.TokenScope.ERP_CALLBACK: {"confirmJobCostPosting"},
}


@pytest.mark.parametrize("scope", list(permissions.TokenScope), ids=lambda s: s.value)
def test_an_api_token_runs_exactly_the_mutations_of_its_scope(scope: permissions.TokenScope) -> None:
    token = Actor("svc", "c1", erp_permission=PermissionLevel.ADMIN, is_company_admin=True, scope=scope)
    person = Actor("u1", "c1")
    for mutation in MUTATIONS:
        refusal = permissions.scope_refusal(token, mutation)
        assert (refusal is None) is (mutation in SCOPE_ALLOWS[scope]), mutation
        if refusal is not None:
            assert refusal.code.value == "FORBIDDEN" and scope.value in refusal.message
        assert permissions.scope_refusal(person, mutation) is None  # people: their permissions alone decide


@pytest.mark.parametrize(("role", "check"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_every_role_gets_exactly_the_rights_of_the_permission_table(role: str, check: str) -> None:
    expected = EXPECTED_ROWS[role][COLUMNS.index(check)]
    assert CHECKS[check](ROLES[role]) is expected


def test_a_standard_budget_user_cannot_unlock_even_with_every_grant() -> None:
    role = ROLES["standard_with_both_grants"]
    refusal = permissions.unlock_refusal(role.access)
    assert refusal is not None
    assert refusal.code == "FORBIDDEN"


def test_an_erp_admin_without_the_approver_flag_cannot_decide_exports() -> None:
    assert permissions.decide_refusal(ROLES["erp_admin_integrator"].actor) is not None


def test_the_approver_flag_alone_does_not_allow_deciding() -> None:
    assert permissions.decide_refusal(ROLES["approver_erp_read_only"].actor) is not None


def test_a_budget_admin_cannot_decide_their_own_export() -> None:
    assert permissions.decide_refusal(ROLES["budget_admin"].actor) is not None


def test_company_admin_refusal_names_what_was_attempted() -> None:
    refusal = permissions.company_admin_refusal(Actor("u1", "c1"), "connecting the ERP")
    assert refusal is not None
    assert "connecting the ERP" in refusal.message


def test_permission_levels_are_ordered_from_none_to_admin() -> None:
    assert L.NONE < L.READ_ONLY < L.STANDARD < L.ADMIN


@pytest.mark.parametrize("level", list(PermissionLevel))
def test_project_access_has_every_level_up_to_its_own(level: PermissionLevel) -> None:
    access = ProjectAccess(level)
    assert [other for other in PermissionLevel if access.has(other)] == [
        other for other in PermissionLevel if other <= level
    ]


def test_no_access_is_no_permission_and_no_grant() -> None:
    assert NO_ACCESS.budget_permission is L.NONE
    assert NO_ACCESS.grants == frozenset()

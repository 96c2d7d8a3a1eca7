"""Browser-test support: a company with named people and realistic budgets, pages signed in to the dashboard,
and a guard that fails a test when a page reaches for anything but the server under test."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app import admin
from domain.permissions import PermissionLevel
from resolvers.context import Services
from tests.live_server import LiveServer
from tests.support import Tenant

CHROMIUM = os.environ.get("BUDGETBRIDGE_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BUDGETBRIDGE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
# Generous for a loaded CI machine; every wait ends as soon as the DOM shows what it waits for.
LIVE_TIMEOUT_MS = 10_000

USER_ERRORS = "userErrors { code message }"
IMPORT_LINES = f"""mutation($i: ImportBudgetLineItemsInput!) {{
  importBudgetLineItems(input: $i) {{ budget {{ id version }} {USER_ERRORS} }} }}"""
SYNC_PROJECT = f"mutation($p: ID!) {{ syncProjectToERP(projectId: $p) {{ project {{ id }} {USER_ERRORS} }} }}"
LOCK = f"mutation($i: BudgetActionInput!) {{ lockBudget(input: $i) {{ budget {{ id version }} {USER_ERRORS} }} }}"
SEND = f"""mutation($i: BudgetActionInput!) {{
  sendToERP(input: $i) {{ erpRequest {{ id sequence }} budget {{ id version }} {USER_ERRORS} }} }}"""
DECIDE = f"""mutation($i: DecideExportInput!) {{
  decideExport(input: $i) {{ erpRequest {{ id status }} {USER_ERRORS} }} }}"""
CREATE_LINE = f"""mutation($i: CreateBudgetLineItemInput!) {{
  createBudgetLineItem(input: $i) {{ lineItem {{ id }} budget {{ id version }} {USER_ERRORS} }} }}"""

PEOPLE = {
    # role: (name, email, company admin, accounting approver, ERP Integrations permission, budget permission)
    "pm": ("Pat Morgan", "pm@summit.example", True, False, PermissionLevel.NONE, PermissionLevel.ADMIN),
    "approver": ("Alex Rivera", "alex@summit.example", False, True, PermissionLevel.ADMIN, PermissionLevel.READ_ONLY),
    "viewer": ("Robin Lee", "robin@summit.example", False, False, PermissionLevel.NONE, PermissionLevel.READ_ONLY),
}
COST_CODES = {"03-300": "Cast-in-place concrete", "05-120": "Structural steel", "09-900": "Painting", "23-000": "HVAC"}
COST_TYPES = {"L": "Labor", "M": "Material", "S": "Subcontract"}
PROJECTS = {
    "riverside": ("Riverside Medical Office Building", "2026-014"),
    "harbor": ("Harbor Point Parking Structure", "2026-021"),
    "mesa": ("Mesa Verde Elementary School", "2026-009"),
}
LINES: dict[str, list[tuple[str, str, str | None, str, str]]] = {
    # project: (cost code, cost type, sub job, description, amount)
    "riverside": [
        ("03-300", "M", "BLDG-A", "Ready-mix concrete, building A", "142500.00"),
        ("03-300", "L", "BLDG-A", "Placing and finishing, building A", "96800.00"),
        ("05-120", "S", None, "Structural steel, furnish and erect", "486900.00"),
        ("23-000", "S", None, "HVAC subcontract", "512750.00"),
    ],
    "harbor": [
        ("03-300", "M", None, "Post-tensioned decks, concrete", "1218400.00"),
        ("05-120", "S", None, "Stair towers and rails", "184250.00"),
        ("09-900", "S", None, "Traffic coatings and striping", "73400.00"),
    ],
    "mesa": [
        ("03-300", "L", None, "Foundations and slab on grade", "264300.00"),
        ("09-900", "S", None, "Painting subcontract", "61300.00"),
        ("23-000", "S", None, "HVAC subcontract", "389600.00"),
    ],
}


@dataclass
class Company:
    """A company with named people (pm, approver, viewer), three projects and their budgets."""

    tenant: Tenant
    projects: dict[str, str] = field(default_factory=dict)  # key -> project id
    budgets: dict[str, str] = field(default_factory=dict)  # key -> budget id
    names: dict[str, str] = field(default_factory=dict)  # key -> project name

    def token(self, role: str) -> str:
        return self.tenant.token(role)

    async def ok(self, role: str, query: str, **variables: Any) -> dict[str, Any]:
        return await self.tenant.ok(role, query, **variables)

    async def version(self, key: str) -> int:
        data = await self.ok("pm", "query($id: ID!) { budget(id: $id) { version } }", id=self.budgets[key])
        version: int = data["budget"]["version"]
        return version

    async def ready_to_send(self, key: str) -> None:
        """Project synced with the ERP and budget locked (directly, before any page is open)."""
        await self.ok("pm", SYNC_PROJECT, p=self.projects[key])
        await self.ok("pm", LOCK, i={"budgetId": self.budgets[key]})

    async def send(self, key: str) -> str:
        data = await self.ok("pm", SEND, i={"budgetId": self.budgets[key]})
        request_id: str = data["sendToERP"]["erpRequest"]["id"]
        return request_id


async def make_company(services: Services, *, connector: str | None = "embedded") -> Company:
    async with services.db.unit_of_work() as uow:
        company_id = await admin.create_company(uow, "Summit Ridge Builders", "USD", connector)
        tenant = Tenant(services=services, company_id=company_id)
        for role, (name, email, company_admin, approver, erp, _) in PEOPLE.items():
            local, _, domain = email.partition("@")
            tenant.users[role] = await admin.create_user(
                uow,
                company_id,
                f"{local}+{company_id[-8:]}@{domain}",  # emails are unique across the shared test database
                name,
                company_admin=company_admin,
                approver=approver,
                erp_permission=erp,
            )
        await uow.commit()
    company = Company(tenant=tenant)
    for code, description in COST_CODES.items():
        data = await company.ok(
            "pm",
            "mutation($i: CreateCostCodeInput!) { createCostCode(input: $i) { costCode { id } userErrors { code } } }",
            i={"code": code, "description": description},
        )
        tenant.cost_codes[code] = data["createCostCode"]["costCode"]["id"]
    for code, name in COST_TYPES.items():
        data = await company.ok(
            "pm",
            "mutation($i: CreateCostTypeInput!) { createCostType(input: $i) { costType { id } userErrors { code } } }",
            i={"code": code, "name": name},
        )
        tenant.cost_types[code] = data["createCostType"]["costType"]["id"]
    for key, (name, number) in PROJECTS.items():
        data = await company.ok(
            "pm",
            "mutation($i: CreateProjectInput!) { createProject(input: $i) "
            "{ project { id budget { id } } userErrors { code } } }",
            i={"name": name, "number": f"{number}-{company_id[-4:]}"},
        )
        company.projects[key] = data["createProject"]["project"]["id"]
        company.budgets[key] = data["createProject"]["project"]["budget"]["id"]
        company.names[key] = name
        items = [
            {
                "costCodeId": tenant.cost_codes[code],
                "costTypeId": tenant.cost_types[ctype],
                "subJob": sub_job,
                "description": description,
                "originalAmount": amount,
            }
            for code, ctype, sub_job, description, amount in LINES[key]
        ]
        await company.ok("pm", IMPORT_LINES, i={"budgetId": company.budgets[key], "items": items})
    async with services.db.unit_of_work() as uow:
        for role, (*_, budget_permission) in PEOPLE.items():
            if role == "pm":
                continue  # company admin: every project
            for project_id in company.projects.values():
                await admin.grant(uow, tenant.users[role], project_id, budget_permission, [])
        await uow.commit()
    tenant.project_id, tenant.budget_id = company.projects["riverside"], company.budgets["riverside"]
    return company


async def over_http(server: LiveServer, token: str, query: str, **variables: Any) -> dict[str, Any]:
    """A mutation through the running server (so its live stream hears of it at once); insists on success."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            server.http_url,
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body = response.json()
    assert "errors" not in body, body
    for value in body["data"].values():
        if isinstance(value, dict) and "userErrors" in value:
            assert value["userErrors"] == [], value["userErrors"]
    data: dict[str, Any] = body["data"]
    return data


def graphql_body(post_data: str | None) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(post_data or "{}")
    return body

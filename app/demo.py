"""The demo data of `budgetbridge serve --demo`: a company, three users, a project synced to the embedded
ERP and a realistic budget. Seeded once per database through the same service layer GraphQL uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from app import admin, auth
from domain.permissions import PermissionLevel
from persistence.tables import budgets, server_settings, users
from resolvers import budget_lines, company_setup
from resolvers.context import Context, Services
from resolvers.input_validation import LineFields
from resolvers.service import Changed, Outcome

DEMO_KEY = "demo_company_id"

COST_CODES = [
    ("01-100", "General requirements"),
    ("01-500", "Temporary facilities"),
    ("02-200", "Site preparation"),
    ("02-300", "Earthwork"),
    ("03-100", "Concrete formwork"),
    ("03-200", "Concrete reinforcement"),
    ("03-300", "Cast-in-place concrete"),
    ("04-200", "Unit masonry"),
    ("05-120", "Structural steel"),
    ("06-100", "Rough carpentry"),
    ("07-200", "Thermal protection"),
    ("07-500", "Membrane roofing"),
    ("08-100", "Doors and frames"),
    ("08-800", "Glazing"),
    ("09-250", "Gypsum board"),
    ("09-900", "Painting"),
    ("22-000", "Plumbing"),
    ("23-000", "HVAC"),
    ("26-000", "Electrical"),
]
COST_TYPES = [("L", "Labor"), ("M", "Material"), ("E", "Equipment"), ("S", "Subcontract"), ("O", "Other")]
# (cost code, cost type, sub job, description, amount, quantity, unit, unit cost)
LINES = [
    ("01-100", "L", None, "Project management and supervision", "186000.00", "12", "MO", "15500"),
    ("01-100", "O", None, "Permits and fees", "24850.00", None, None, None),
    ("01-500", "E", None, "Site trailer and temporary utilities", "38400.00", "12", "MO", "3200"),
    ("02-200", "S", None, "Clearing and demolition", "42750.00", None, None, None),
    ("02-300", "E", None, "Excavation equipment", "67300.00", "410", "HR", "164.1463"),
    ("02-300", "L", None, "Excavation crew", "51200.00", "640", "HR", "80"),
    ("03-100", "L", "BLDG-A", "Formwork labor, building A", "88600.00", "1108", "HR", "79.9639"),
    ("03-100", "M", "BLDG-A", "Form lumber and ties, building A", "31400.00", None, None, None),
    ("03-200", "M", "BLDG-A", "Rebar, building A", "74250.00", "45", "TON", "1650"),
    ("03-300", "M", "BLDG-A", "Ready-mix concrete, building A", "142500.00", "950", "CY", "150"),
    ("03-300", "L", "BLDG-A", "Placing and finishing, building A", "96800.00", "1210", "HR", "80"),
    ("03-300", "M", "BLDG-B", "Ready-mix concrete, building B", "98750.00", "658", "CY", "150.0760"),
    ("03-300", "L", "BLDG-B", "Placing and finishing, building B", "67100.00", "839", "HR", "79.9762"),
    ("04-200", "S", None, "Masonry subcontract", "214300.00", None, None, None),
    ("05-120", "S", None, "Structural steel, furnish and erect", "486900.00", "212", "TON", "2296.6981"),
    ("06-100", "M", None, "Blocking and rough hardware", "18650.00", None, None, None),
    ("06-100", "L", None, "Rough carpentry labor", "27400.00", "365", "HR", "75.0685"),
    ("07-200", "S", None, "Insulation subcontract", "58300.00", None, None, None),
    ("07-500", "S", None, "TPO roofing system", "132800.00", "24500", "SF", "5.4204"),
    ("08-100", "M", None, "Hollow metal doors and frames", "46200.00", "84", "EA", "550"),
    ("08-800", "S", None, "Curtain wall and storefront", "318400.00", None, None, None),
    ("09-250", "S", None, "Drywall and framing subcontract", "247600.00", None, None, None),
    ("09-900", "S", None, "Painting subcontract", "61300.00", None, None, None),
    ("22-000", "S", None, "Plumbing subcontract", "289500.00", None, None, None),
    ("23-000", "S", None, "HVAC subcontract", "512750.00", None, None, None),
    ("26-000", "S", None, "Electrical subcontract", "438200.00", None, None, None),
    ("26-000", "M", None, "Owner-furnished fixtures allowance", "35000.00", None, None, None),
    ("01-100", "E", None, "Small tools and consumables", "14600.00", None, None, None),
]


@dataclass(frozen=True)
class DemoUser:
    role: str
    name: str
    email: str
    user_id: str
    token: str


async def seed(services: Services, jwt_secret: str, token_ttl: timedelta = auth.DEFAULT_TTL) -> list[DemoUser]:
    db = services.db
    async with db.read() as conn:
        company_id = (
            await conn.execute(select(server_settings.c.value).where(server_settings.c.key == DEMO_KEY))
        ).scalar_one_or_none()
    if company_id is None:
        company_id = await _create(services)
    async with db.read() as conn:
        rows = (
            await conn.execute(select(users).where(users.c.company_id == company_id).order_by(users.c.created_at))
        ).all()
    roles = {
        "pm@demo.budgetbridge.dev": "budget admin",
        "approver@demo.budgetbridge.dev": "accounting approver",
        "viewer@demo.budgetbridge.dev": "read-only user",
    }
    return [
        DemoUser(
            roles.get(r.email, "user"), r.name, r.email, r.id, auth.issue_token(jwt_secret, r.id, company_id, token_ttl)
        )
        for r in rows
    ]


async def _create(services: Services) -> str:
    async with services.db.unit_of_work() as uow:
        company_id = await admin.create_company(uow, "Summit Ridge Builders (demo)", "USD", "embedded")
        pm = await admin.create_user(uow, company_id, "pm@demo.budgetbridge.dev", "Pat Morgan", company_admin=True)
        approver = await admin.create_user(
            uow,
            company_id,
            "approver@demo.budgetbridge.dev",
            "Alex Rivera",
            approver=True,
            erp_permission=PermissionLevel.ADMIN,
        )
        viewer = await admin.create_user(uow, company_id, "viewer@demo.budgetbridge.dev", "Robin Lee")
        await uow.connection.execute(insert(server_settings).values(key=DEMO_KEY, value=company_id))
        await uow.commit()
    async with services.db.read() as conn:
        pm_viewer = await auth.viewer_for(conn, pm)
    ctx = Context(services=services, viewer_or_none=pm_viewer)

    def ok(outcome: Outcome) -> Changed:
        if outcome.errors:
            raise RuntimeError(f"demo seeding refused: {outcome.errors}")
        return outcome.changed

    project_id = ok(await company_setup.create_project(ctx, "Riverside Medical Office Building", "2026-014")).project_id
    assert project_id is not None
    codes = {
        c: ok(await company_setup.create_cost_list_entry(ctx, "costCode", c, d)).cost_code_id for c, d in COST_CODES
    }
    types = {
        c: ok(await company_setup.create_cost_list_entry(ctx, "costType", c, n)).cost_type_id for c, n in COST_TYPES
    }
    async with services.db.read() as conn:
        budget_id = (await conn.execute(select(budgets.c.id).where(budgets.c.project_id == project_id))).scalar_one()
    items = [
        LineFields(
            cost_code_id=str(codes[code]),
            cost_type_id=str(types[ctype]),
            sub_job=sub,
            description=desc,
            original_amount=Decimal(amount),
            quantity=Decimal(qty) if qty else None,
            unit_of_measure=unit,
            unit_cost=Decimal(cost) if cost else None,
        )
        for code, ctype, sub, desc, amount, qty, unit, cost in LINES
    ]
    ok(await budget_lines.import_line_items(ctx, budget_id, items, None))
    ok(await company_setup.sync_project_to_erp(ctx, project_id))
    async with services.db.unit_of_work() as uow:
        await admin.grant(uow, viewer, project_id, PermissionLevel.READ_ONLY, [])
        await admin.grant(uow, approver, project_id, PermissionLevel.READ_ONLY, [])
        await uow.commit()
    return company_id

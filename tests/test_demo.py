"""`serve --demo` seeds a usable demo once per database and prints working tokens."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from app import auth, demo
from persistence.tables import server_settings
from resolvers.context import Services
from schema.build import schema
from tests.support import JWT_SECRET, make_services


async def test_demo_seed_creates_a_ready_budget_once_and_its_tokens_work(services: Services) -> None:
    async with services.db.unit_of_work() as uow:  # another test may have seeded this shared database
        await uow.connection.execute(delete(server_settings).where(server_settings.c.key == demo.DEMO_KEY))
        await uow.commit()
    people = await demo.seed(services, JWT_SECRET)
    assert [p.role for p in people] == ["budget admin", "accounting approver", "read-only user"]
    again = await demo.seed(make_services(services.db), JWT_SECRET)
    assert [p.user_id for p in again] == [p.user_id for p in people]

    pm = people[0]
    claims = auth.read_token(JWT_SECRET, pm.token, 30 * 24 * 3600)
    user_id = claims.user_id if claims is not None else None
    async with services.db.read() as conn:
        viewer = await auth.viewer_for(conn, str(user_id))
    from resolvers.context import Context

    result = await schema.execute(
        "{ projects { totalCount edges { node { erpSynced viewerPermission budget { lineItemCount locked "
        "sendBlockers { code } } } } } }",
        context_value=Context(services=services, viewer_or_none=viewer),
    )
    assert result.errors is None and result.data is not None
    project = result.data["projects"]["edges"][0]["node"]
    assert result.data["projects"]["totalCount"] == 1
    assert project["erpSynced"] is True and project["viewerPermission"] == "ADMIN"
    assert project["budget"]["lineItemCount"] == len(demo.LINES)
    assert [b["code"] for b in project["budget"]["sendBlockers"]] == ["BUDGET_NOT_LOCKED"]


async def test_serve_demo_prints_the_dashboard_and_a_sign_in_link_per_user(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace
    from typing import cast

    from app.main import Runtime, print_demo_users
    from app.settings import Settings

    settings = Settings(public_url="https://budgets.example.com/")
    runtime = SimpleNamespace(settings=settings, services=services, jwt_secret=JWT_SECRET)
    await print_demo_users(cast(Runtime, runtime))
    printed = capsys.readouterr().out
    assert "dashboard at https://budgets.example.com/ " in printed
    links = [line.split("sign in directly: ", 1)[1] for line in printed.splitlines() if "sign in directly: " in line]
    assert len(links) == 3
    for link in links:
        prefix, _, token = link.partition("#token=")
        assert prefix == "https://budgets.example.com/"
        assert auth.read_token(JWT_SECRET, token, settings.max_token_seconds) is not None

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from persistence.database import Database
from resolvers.context import Services
from tests.support import Tenant, fresh_database, make_services, make_tenant, suite_database_url


@pytest.fixture(scope="session")
async def db() -> AsyncIterator[Database]:
    database = await fresh_database(suite_database_url())
    yield database
    await database.dispose()


@pytest.fixture
async def services(db: Database) -> AsyncIterator[Services]:
    built = make_services(db)
    yield built
    await built.connectors.aclose()  # connectors may hold HTTP clients


@pytest.fixture
async def tenant(services: Services) -> Tenant:
    return await make_tenant(services)

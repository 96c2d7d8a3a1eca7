"""The dependency rule: only persistence/ speaks SQL. The service layer (resolvers/) and the schema reach
storage through the unit of work and the read store, so no module there imports SQLAlchemy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.domain.test_purity import imported_roots

ROOT = Path(__file__).resolve().parent.parent
ABOVE_PERSISTENCE = sorted(path for layer in ("resolvers", "schema") for path in (ROOT / layer).rglob("*.py"))


def test_there_are_service_and_schema_modules_to_check() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in ABOVE_PERSISTENCE}
    assert {"resolvers/service.py", "resolvers/erp_requests.py", "schema/mutation.py"} <= names


@pytest.mark.parametrize("path", ABOVE_PERSISTENCE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_above_persistence_imports_sqlalchemy(path: Path) -> None:
    roots = imported_roots(path.read_text(encoding="utf-8"))
    assert "sqlalchemy" not in roots, f"{path.relative_to(ROOT)} imports sqlalchemy: go through a repository"


@pytest.mark.parametrize("path", ABOVE_PERSISTENCE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_above_persistence_names_a_table(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert "persistence.tables" not in source, f"{path.relative_to(ROOT)} reaches into the table definitions"

"""The domain layer is pure: it imports the standard library and itself, nothing else."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import domain

DOMAIN_DIR = Path(domain.__file__).resolve().parent
DOMAIN_FILES = sorted(DOMAIN_DIR.glob("*.py"))
ALLOWED_ROOTS = set(sys.stdlib_module_names) | {"domain"}
# The other layers and the third-party libraries they wrap; named so a failure reads plainly.
FORBIDDEN_ROOTS = {
    "sqlalchemy", "strawberry", "starlette", "uvicorn", "aiosqlite", "asyncpg", "alembic", "broadcaster",
    "jwt", "orjson", "httpx", "persistence", "resolvers", "schema", "app", "erp", "tests",
}  # fmt: skip


def imported_roots(source: str) -> set[str]:
    """Top-level names of every module a source imports, anywhere in it (also inside functions or
    TYPE_CHECKING blocks). Relative imports stay inside the package and count as `domain`."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add("domain" if node.level else (node.module or "").split(".")[0])
    return roots


def dynamic_imports(source: str) -> list[str]:
    """Calls that import by name at run time, which `imported_roots` cannot see."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in {"__import__", "import_module"}:
                found.append(ast.unparse(node))
    return found


def test_the_domain_package_has_modules_to_check() -> None:
    names = {path.stem for path in DOMAIN_FILES}
    assert {"budget", "permissions", "export", "money", "errors"} <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: p.name)
def test_a_domain_module_imports_only_the_standard_library_and_domain(path: Path) -> None:
    roots = imported_roots(path.read_text(encoding="utf-8"))
    assert not roots & FORBIDDEN_ROOTS, f"{path.name} imports another layer: {sorted(roots & FORBIDDEN_ROOTS)}"
    assert roots <= ALLOWED_ROOTS, f"{path.name} imports outside stdlib/domain: {sorted(roots - ALLOWED_ROOTS)}"


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda p: p.name)
def test_a_domain_module_does_not_import_by_name_at_run_time(path: Path) -> None:
    assert dynamic_imports(path.read_text(encoding="utf-8")) == []


def test_the_import_check_catches_every_kind_of_foreign_import() -> None:
    source = (
        "import sqlalchemy.orm\n"
        "from strawberry import type\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from persistence.tables import budgets\n"
        "def f():\n"
        "    import erp.registry\n"
        "from . import money\n"
        "from .errors import DomainError\n"
    )
    assert imported_roots(source) == {"sqlalchemy", "strawberry", "typing", "persistence", "erp", "domain"}
    assert dynamic_imports("import importlib\nimportlib.import_module('app')\n__import__('x')\n") == [
        "importlib.import_module('app')",
        "__import__('x')",
    ]


def test_importing_the_domain_loads_no_other_layer_or_library() -> None:
    modules = ", ".join(f"domain.{path.stem}" for path in DOMAIN_FILES if path.stem != "__init__")
    roots = ", ".join(repr(root) for root in sorted(FORBIDDEN_ROOTS))
    code = (
        f"import sys, {modules}\n"
        f"loaded = sorted({{name.split('.')[0] for name in sys.modules}} & {{{roots}}})\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr

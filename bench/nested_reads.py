"""Nested reads: what a deep, wide query costs in BudgetBridge, against the floor of GraphQL execution.

    python bench/nested_reads.py [--lines 2000] [--repeat 5] [--projects 1] [--first 500] [--database-url URL]

Builds a fresh migrated database (a temporary SQLite file unless --database-url is given; a PostgreSQL
database given there is WIPED, as tests.support.fresh_database drops its public schema), a tenant and
--projects budgets of --lines line items each (imported through the importBudgetLineItems mutation), then
times, after one warm-up run each:

  * the nested query through the real schema (`schema.execute`), counting SQL statements;
  * the same request end to end through the ASGI app (httpx.ASGITransport + asgi_lifespan);
  * the same query shape over the same objects held in memory, executed by graphql-core with its sync
    default resolvers (the cost floor: no database, no async loaders, no strawberry), and by a strawberry
    schema with sync fields over dataclasses (what strawberry itself adds on top of that floor);
  * serialising the response with orjson against stdlib json.

Figures are printed, never asserted: wall times depend on the machine. The statement count is the number to
watch: it must not grow with the number of lines or projects (tests/bench guards that).
"""

# ruff: noqa: E402  (the project root has to be importable before tests.support can be imported)

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/nested_reads.py` puts bench/ on the path, not the project root
    sys.path.insert(0, str(ROOT))

import graphql
import httpx
import orjson
import strawberry
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.main import create_app
from app.settings import Settings
from domain.money import format_decimal, parse_decimal
from persistence.database import Database
from resolvers.context import Context
from schema.build import schema
from schema.scalars import DecimalScalar
from tests.support import JWT_SECRET, Tenant, fresh_database, make_services, make_tenant

IMPORT_CHUNK = 500
ROLE = "admin"  # a company admin sees every project of the company

QUERY_TEMPLATE = """{ projects { edges { node { budget { lineItems(first: %d) { edges { node {
  id originalAmount revisedAmount subJob description erpSynced costCode { code } costType { code }
} } } } } } } }"""

IMPORT_MUTATION = """mutation($i: ImportBudgetLineItemsInput!) {
  importBudgetLineItems(input: $i) { budget { id lineItemCount } userErrors { code message field } }
}"""

CREATE_PROJECT = """mutation($i: CreateProjectInput!) {
  createProject(input: $i) { project { id budget { id } } userErrors { code message } }
}"""


# --------------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Timing:
    label: str
    samples: list[float]  # seconds

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        """Nearest-rank 90th percentile (with few samples this is the slowest or second slowest run)."""
        ordered = sorted(self.samples)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]

    def line(self, extra: str = "") -> str:
        return (f"{self.label:<40} median {self.median * 1000:9.2f} ms   p90 {self.p90 * 1000:9.2f} ms"
                f"   (n={len(self.samples)}){extra}")


class StatementCounter:
    """Counts the statements an engine sends (SQLAlchemy's before_cursor_execute)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.count = 0
        self.statements: list[str] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        self.statements.append(statement)

    def reset(self) -> None:
        self.count = 0
        self.statements = []

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


async def time_async(
    label: str, run: Callable[[Any], Awaitable[Any]], repeat: int, prepare: Callable[[], Awaitable[Any]] | None = None
) -> Timing:
    """Times `run(await prepare())` (prepare is not timed); one warm-up run first, for first-use costs
    (statement compilation caches, pool connections, lazy imports)."""

    async def argument() -> Any:
        value = await prepare() if prepare is not None else None
        gc.collect()  # every sample starts from the same collector state, not mid-way to a full collection
        return value

    await run(await argument())
    samples = []
    for _ in range(repeat):
        arg = await argument()
        start = time.perf_counter()
        await run(arg)
        samples.append(time.perf_counter() - start)
    return Timing(label, samples)


def time_sync(label: str, run: Callable[[], Any], repeat: int, inner: int = 1) -> Timing:
    run()
    samples = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(inner):
            run()
        samples.append((time.perf_counter() - start) / inner)
    return Timing(label, samples)


# --------------------------------------------------------------------------------------------------------
# Data


def line_item(i: int, codes: Sequence[str], types: Sequence[str]) -> dict[str, Any]:
    """Line i: keys (cost code, cost type, sub job) unique through the sub job, codes and types varied."""
    return {
        "costCodeId": codes[i % len(codes)],
        "costTypeId": types[(i // len(codes)) % len(types)],
        "subJob": f"SJ-{i}",
        "description": f"Bench line {i}",
        "originalAmount": f"{(i * 7919) % 1_000_000}.{i % 100:02d}",
    }


async def seed(tenant: Tenant, projects: int, lines: int) -> list[str]:
    """--projects budgets (the tenant's own first) of --lines line items each; returns the budget ids."""
    budget_ids = [tenant.budget_id]
    for p in range(1, projects):
        data = await tenant.ok(ROLE, CREATE_PROJECT, i={"name": f"Bench project {p}", "number": f"B-{p}"})
        budget_ids.append(data["createProject"]["project"]["budget"]["id"])
    codes, types = list(tenant.cost_codes.values()), list(tenant.cost_types.values())
    for budget_id in budget_ids:
        for start in range(0, lines, IMPORT_CHUNK):
            items = [line_item(i, codes, types) for i in range(start, min(lines, start + IMPORT_CHUNK))]
            data = await tenant.ok(ROLE, IMPORT_MUTATION, i={"budgetId": budget_id, "items": items})
            assert data["importBudgetLineItems"]["budget"]["lineItemCount"] == min(lines, start + IMPORT_CHUNK)
    return budget_ids


# --------------------------------------------------------------------------------------------------------
# The in-memory baselines: the same response built from plain objects by sync default resolvers


BASELINE_SDL = """
scalar Decimal
type Query { projects: ProjectConnection! }
type ProjectConnection { edges: [ProjectEdge!]! }
type ProjectEdge { node: Project! }
type Project { budget: Budget! }
type Budget { lineItems(first: Int): BudgetLineItemConnection! }
type BudgetLineItemConnection { edges: [BudgetLineItemEdge!]! }
type BudgetLineItemEdge { node: BudgetLineItem! }
type BudgetLineItem {
  id: ID!
  originalAmount: Decimal!
  revisedAmount: Decimal!
  subJob: String
  description: String
  erpSynced: Boolean!
  costCode: CostCode!
  costType: CostType!
}
type CostCode { code: String! }
type CostType { code: String! }
"""


class Obj:
    """A plain attribute bag: graphql-core's default resolver reads the camelCase field names with getattr."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)


def graphql_core_baseline(response: dict[str, Any]) -> tuple[graphql.GraphQLSchema, Obj]:
    """A graphql-core schema for the query's types and a root value holding the response's objects."""
    built = graphql.build_schema(BASELINE_SDL)
    decimal_type = built.type_map["Decimal"]
    assert isinstance(decimal_type, graphql.GraphQLScalarType)
    # The app's wire form. graphql-core 3.3 calls coerce_output_value (serialize is its legacy name).
    decimal_type.serialize = format_decimal  # type: ignore[method-assign]
    if hasattr(decimal_type, "coerce_output_value"):
        decimal_type.coerce_output_value = format_decimal
    codes: dict[str, Obj] = {}
    types: dict[str, Obj] = {}
    project_edges = []
    for project_edge in response["projects"]["edges"]:
        line_edges = []
        for line_edge in project_edge["node"]["budget"]["lineItems"]["edges"]:
            n = line_edge["node"]
            code = codes.setdefault(n["costCode"]["code"], Obj(code=n["costCode"]["code"]))
            kind = types.setdefault(n["costType"]["code"], Obj(code=n["costType"]["code"]))
            line = Obj(id=n["id"], originalAmount=parse_decimal(n["originalAmount"]),
                       revisedAmount=parse_decimal(n["revisedAmount"]), subJob=n["subJob"],
                       description=n["description"], erpSynced=n["erpSynced"], costCode=code, costType=kind)
            line_edges.append(Obj(node=line))
        budget = Obj(lineItems=Obj(edges=line_edges))  # `first` is ignored: the list is already the page
        project_edges.append(Obj(node=Obj(budget=budget)))
    return built, Obj(projects=Obj(edges=project_edges))


@strawberry.type
class SCode:
    code: str


@strawberry.type
class SLine:
    id: strawberry.ID
    original_amount: Decimal
    revised_amount: Decimal
    sub_job: str | None
    description: str | None
    erp_synced: bool
    cost_code: SCode
    cost_type: SCode


@strawberry.type
class SLineEdge:
    node: SLine


@strawberry.type
class SLineConnection:
    edges: list[SLineEdge]


@strawberry.type
class SBudget:
    lines: strawberry.Private[list[SLineEdge]]

    @strawberry.field
    def line_items(self, first: int | None = 100) -> SLineConnection:
        return SLineConnection(edges=self.lines)


@strawberry.type
class SProject:
    budget: SBudget


@strawberry.type
class SProjectEdge:
    node: SProject


@strawberry.type
class SProjectConnection:
    edges: list[SProjectEdge]


@strawberry.type
class SQuery:
    @strawberry.field
    def projects(self, info: strawberry.Info) -> SProjectConnection:
        return info.root_value  # type: ignore[no-any-return]


def strawberry_baseline(response: dict[str, Any]) -> tuple[strawberry.Schema, SProjectConnection]:
    """A strawberry schema with sync fields over dataclasses, holding the response's objects."""
    built = strawberry.Schema(query=SQuery, scalar_overrides={Decimal: DecimalScalar})
    codes: dict[str, SCode] = {}
    project_edges = []
    for project_edge in response["projects"]["edges"]:
        lines = []
        for line_edge in project_edge["node"]["budget"]["lineItems"]["edges"]:
            n = line_edge["node"]
            lines.append(SLineEdge(node=SLine(
                id=strawberry.ID(n["id"]), original_amount=parse_decimal(n["originalAmount"]),
                revised_amount=parse_decimal(n["revisedAmount"]), sub_job=n["subJob"], description=n["description"],
                erp_synced=n["erpSynced"],
                cost_code=codes.setdefault("c" + n["costCode"]["code"], SCode(code=n["costCode"]["code"])),
                cost_type=codes.setdefault("t" + n["costType"]["code"], SCode(code=n["costType"]["code"])),
            )))
        project_edges.append(SProjectEdge(node=SProject(budget=SBudget(lines=lines))))
    return built, SProjectConnection(edges=project_edges)


# --------------------------------------------------------------------------------------------------------
# The run


@dataclass
class Report:
    nodes: int
    statements: int
    statements_asgi: int
    ratio: float
    lines: list[str]


@contextmanager
def counting(engine: Engine) -> Iterator[StatementCounter]:
    counter = StatementCounter(engine)
    try:
        yield counter
    finally:
        counter.close()


def node_count(data: dict[str, Any]) -> int:
    return sum(len(e["node"]["budget"]["lineItems"]["edges"]) for e in data["projects"]["edges"])


async def bench(url: str, *, lines: int, repeat: int, projects: int, first: int, asgi: bool,
                out: Callable[[str], None]) -> Report:
    query = QUERY_TEMPLATE % first
    report: list[str] = []

    def say(text: str) -> None:
        report.append(text)
        out(text)

    setup_start = time.perf_counter()
    db = await fresh_database(url)
    try:
        tenant = await make_tenant(make_services(db))
        with counting(db.engine.sync_engine) as counter:
            await seed(tenant, projects, lines)
            import_statements = counter.count
        say(f"setup: {projects} project(s) x {lines} line items imported in {time.perf_counter() - setup_start:.2f} s"
            f" ({import_statements} sql statements for the imports, {db.url.split(':', 1)[0]})")

        # 1. The real schema, in process. The context (viewer lookup, fresh loaders) is built untimed, as
        # Tenant.execute builds it; what is timed and counted is schema.execute alone.
        async def run_schema(context: Context) -> Any:
            result = await schema.execute(query, context_value=context)
            assert result.errors is None, result.errors
            return result

        data: dict[str, Any] = (await run_schema(await tenant.context(ROLE))).data
        assert data == (await tenant.execute(ROLE, query)).data
        nodes = node_count(data)
        assert nodes == projects * min(lines, first), nodes
        with counting(db.engine.sync_engine) as counter:
            per_run: list[int] = []

            async def fresh_context() -> Context:
                context = await tenant.context(ROLE)
                counter.reset()
                return context

            async def counted(context: Context) -> Any:
                result = await run_schema(context)
                per_run.append(counter.count)
                return result

            in_process = await time_async("budgetbridge schema.execute", counted, repeat, fresh_context)
        statements = max(per_run)
        say(in_process.line(f"   {nodes} line items, {statements} sql statements"))

        # 2. End to end through the ASGI app.
        statements_asgi = -1
        if asgi:
            statements_asgi = await bench_asgi(db.url, tenant, query, data, repeat, say)

        # 3. The in-memory floor, same objects, same response.
        core_schema, core_root = graphql_core_baseline(data)

        def run_core() -> Any:
            result = graphql.graphql_sync(core_schema, query, root_value=core_root)
            assert result.errors is None, result.errors
            return result

        assert run_core().data == data, "the graphql-core baseline does not answer what the app answers"
        baseline = time_sync("in-memory baseline (graphql-core, sync)", run_core, repeat)
        say(baseline.line(f"   {nodes} line items"))

        straw_schema, straw_root = strawberry_baseline(data)

        def run_straw() -> Any:
            result = straw_schema.execute_sync(query, root_value=straw_root)
            assert result.errors is None, result.errors
            return result

        assert run_straw().data == data, "the strawberry baseline does not answer what the app answers"
        straw = time_sync("in-memory strawberry (sync fields)", run_straw, repeat)
        say(straw.line(f"   {nodes} line items"))

        # 4. Serialising the response.
        payload = {"data": data}
        inner = max(1, 20_000 // max(nodes, 1))
        assert json.loads(orjson.dumps(payload)) == json.loads(json.dumps(payload))
        fast = time_sync("serialise response with orjson", lambda: orjson.dumps(payload), repeat, inner)
        slow = time_sync("serialise response with stdlib json", lambda: json.dumps(payload).encode(), repeat, inner)
        say(fast.line(f"   {len(orjson.dumps(payload))} bytes"))
        say(slow.line())

        ratio = in_process.median / baseline.median
        say(f"strawberry sync / graphql-core baseline: {straw.median / baseline.median:.2f}")
        say(f"serialisation ratio (stdlib json / orjson): {slow.median / fast.median:.2f}")
        say(f"ratio (budgetbridge / in-memory baseline): {ratio:.2f}")
        say(f"sql statements per query: {statements}")
        return Report(nodes=nodes, statements=statements, statements_asgi=statements_asgi, ratio=ratio,
                      lines=report)
    finally:
        await db.dispose()


async def bench_asgi(url: str, tenant: Tenant, query: str, expected: dict[str, Any], repeat: int,
                     say: Callable[[str], None]) -> int:
    """POST /graphql through the whole app: auth, context, strawberry's view, orjson encoding."""
    app = create_app(Settings(database_url=url, jwt_secret=JWT_SECRET), run_worker=False)
    headers = {"Authorization": f"Bearer {tenant.token(ROLE)}"}
    async with LifespanManager(app) as manager:
        runtime_db: Database = app.state.runtime.db
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def post() -> Any:
                response = await client.post("/graphql", json={"query": query}, headers=headers)
                response.raise_for_status()
                body = response.json()
                assert "errors" not in body, body["errors"]
                return body

            assert (await post())["data"] == expected, "the ASGI app answers differently from schema.execute"
            with counting(runtime_db.engine.sync_engine) as counter:
                per_run: list[int] = []

                async def counted(_: None) -> Any:
                    counter.reset()
                    body = await post()
                    per_run.append(counter.count)
                    return body

                timing = await time_async("budgetbridge ASGI POST /graphql (httpx)", counted, repeat)
    statements = max(per_run)
    say(timing.line(f"   {statements} sql statements incl. the viewer lookup"))
    return statements


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=2000, help="line items per budget (default 2000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement, after a warm-up")
    parser.add_argument("--projects", type=int, default=1, help="projects (each with one budget), default 1")
    parser.add_argument("--first", type=int, default=500, help="lineItems(first:) of the query, default 500")
    parser.add_argument("--database-url", default=None,
                        help="default: a temporary SQLite file. A PostgreSQL database given here is WIPED.")
    parser.add_argument("--no-asgi", action="store_true", help="skip the end-to-end ASGI measurement")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.repeat < 1 or args.projects < 1 or not 1 <= args.first <= 1000:
        parser.error("--lines, --repeat and --projects must be >= 1; --first between 1 and 1000")
    return args


async def amain(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> Report:
    args = parse_args(argv)
    options = dict(lines=args.lines, repeat=args.repeat, projects=args.projects, first=args.first,
                   asgi=not args.no_asgi, out=out)
    if args.database_url:
        return await bench(args.database_url, **options)
    with tempfile.TemporaryDirectory(prefix="budgetbridge-bench-") as directory:
        return await bench(f"sqlite+aiosqlite:///{directory}/bench.db", **options)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(amain(argv, out=lambda text: print(text, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

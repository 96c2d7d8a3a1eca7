"""Nested reads: BudgetBridge against a raw floor that answers the same JSON, on PostgreSQL, in one interleaved
run.

    python bench/nested_reads.py --database-url postgresql://postgres@127.0.0.1:5432/bb_perf \\
        [--samples 200] [--windows 4] [--seconds 3] [--small]

The database given is WIPED (tests.support.fresh_database drops its public schema); the default URL is
BUDGETBRIDGE_BENCH_DATABASE_URL. Two cases, each its own company, imported through importBudgetLineItems:

  * one budget of 500 lines, all asked for (`lineItems(first: 500)`);
  * 20 projects x 100 lines, all asked for.

The query is QUERY below (line id, amounts, sub job, description, erpSynced, cost code and type). The floor
(bench/floor.py: Starlette + asyncpg + orjson, JWT check, company-scoped SQL) must answer the same bytes:
that is asserted before anything is timed. Then, servers in their own processes (bench/servers.py):

  * c=1: `--samples` requests to each by turns: p50 and p99, and their ratios;
  * c=16: `--windows` windows of `--seconds` by turns: requests per second, and floor / BudgetBridge;
  * per request: SQL statements and round trips to PostgreSQL of each side (counted in process);
  * warm: the same again against a server with its response cache on (app.response_cache, WARM_CACHE_BYTES):
    every request after the first is served from memory after one lookup of the company's validator. The
    cached bytes must still equal the floor's; the server process's resident memory (RSS) is printed
    before and after.

The load average is printed before and after: the machine may be shared. Figures are printed, never
asserted. --small runs tiny cases (the smoke test).
"""

# ruff: noqa: E402  (the project root has to be importable before tests.support can be imported)

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/nested_reads.py` puts bench/ on the path, not the project root
    sys.path.insert(0, str(ROOT))

import httpx

from bench.measure import Tally, bench_parser, load_average, parse_bench_args
from bench.servers import (
    Call,
    Comparison,
    compare,
    count_one,
    counted_servers,
    rss_bytes,
    timed_servers,
)
from persistence.database import Database
from tests.support import JWT_SECRET, Tenant, fresh_database, make_services, make_tenant

IMPORT_CHUNK = 500
WARM_CACHE_BYTES = 64 * 1024 * 1024  # the warm server's BUDGETBRIDGE_RESPONSE_CACHE_BYTES
MIB = 1024 * 1024
ROLE = "admin"  # a company admin sees every project of the company

QUERY = """query($first: Int) { projects { edges { node { budget { lineItems(first: $first) { edges { node {
  id originalAmount revisedAmount subJob description erpSynced costCode { code } costType { code }
} } } } } } } }"""

IMPORT_MUTATION = """mutation($i: ImportBudgetLineItemsInput!) {
  importBudgetLineItems(input: $i) { budget { id lineItemCount } userErrors { code message field } }
}"""

CREATE_PROJECT = """mutation($i: CreateProjectInput!) {
  createProject(input: $i) { project { id budget { id } } userErrors { code message } }
}"""


@dataclass(frozen=True)
class Case:
    name: str
    projects: int
    lines: int


CASES = (Case("one budget, 500 lines", 1, 500), Case("20 projects x 100 lines", 20, 100))
SMALL_CASES = (Case("one budget, 12 lines", 1, 12), Case("3 projects x 4 lines", 3, 4))


@dataclass
class CaseReport:
    case: Case
    nodes: int
    bytes: int
    timing: Comparison
    ours: Tally
    floor: Tally

    def lines(self) -> list[str]:
        name = self.case.name
        return [f"{name}: {self.nodes} lines, {self.bytes} bytes, identical to the floor's answer",
                *self.timing.lines(name, self.ours, self.floor)]


@dataclass
class WarmReport:
    """The same case against a server with its response cache on: after the first request, a hit."""

    case: Case
    timing: Comparison
    ours: Tally
    rss_before: int
    rss_after: int

    def lines(self) -> list[str]:
        name = f"{self.case.name} (warm)"
        return [*self.timing.lines(name, self.ours, None),
                f"{name}: server RSS {self.rss_before / MIB:.1f} MiB before the case, {self.rss_after / MIB:.1f} MiB "
                "after it"]


@dataclass
class Report:
    cases: list[CaseReport]
    warm: list[WarmReport] | None = None


def line_item(i: int, codes: Sequence[str], types: Sequence[str]) -> dict[str, Any]:
    """Line i: keys (cost code, cost type, sub job) unique through the sub job, codes and types varied."""
    return {
        "costCodeId": codes[i % len(codes)],
        "costTypeId": types[(i // len(codes)) % len(types)],
        # The first lines have no sub job (null in the answer): their code and type alone keep them unique.
        "subJob": f"SJ-{i}" if i >= len(codes) * len(types) else "",
        "description": f"Bench line {i}" if i % 7 else None,
        "originalAmount": f"{(i * 7919) % 1_000_000}.{i % 100:02d}",
    }


async def seed(db: Database, case: Case) -> Tenant:
    """A company with the case's projects (the tenant's own first), each budget with the case's lines."""
    tenant = await make_tenant(make_services(db))
    budget_ids = [tenant.budget_id]
    for p in range(1, case.projects):
        data = await tenant.ok(ROLE, CREATE_PROJECT, i={"name": f"Bench project {p}", "number": f"B-{p}"})
        budget_ids.append(data["createProject"]["project"]["budget"]["id"])
    codes, types = list(tenant.cost_codes.values()), list(tenant.cost_types.values())
    for budget_id in budget_ids:
        for start in range(0, case.lines, IMPORT_CHUNK):
            items = [line_item(i, codes, types) for i in range(start, min(case.lines, start + IMPORT_CHUNK))]
            await tenant.ok(ROLE, IMPORT_MUTATION, i={"budgetId": budget_id, "items": items})
    return tenant


def calls(tenant: Tenant, case: Case, ours_url: str, floor_url: str) -> tuple[Call, Call]:
    headers = {"Authorization": f"Bearer {tenant.token(ROLE)}"}
    graphql = {"query": QUERY, "variables": {"first": case.lines}}
    raw = {"first": case.lines}

    async def ours(client: httpx.AsyncClient, _worker: int = 0) -> bytes:
        response = await client.post(f"{ours_url}/graphql", json=graphql, headers=headers)
        response.raise_for_status()
        return response.content

    async def floor(client: httpx.AsyncClient, _worker: int = 0) -> bytes:
        response = await client.post(f"{floor_url}/nested", json=raw, headers=headers)
        response.raise_for_status()
        return response.content

    return ours, floor


async def run(args: argparse.Namespace, out: Callable[[str], None]) -> Report:
    cases = SMALL_CASES if args.small else CASES
    db = await fresh_database(args.database_url)
    try:
        tenants = [await seed(db, case) for case in cases]
    finally:
        await db.dispose()
    out(f"setup: {', '.join(c.name for c in cases)}; {load_average()}")

    counts: list[tuple[Tally, Tally]] = []
    async with counted_servers(args.database_url, JWT_SECRET) as (ours_client, floor_client, ours_tally, floor_tally):
        for tenant, case in zip(tenants, cases, strict=True):
            ours, _ = calls(tenant, case, "", "")
            _, floor = calls(tenant, case, "", "")
            counts.append((await count_one(ours_client, ours, ours_tally),
                           await count_one(floor_client, floor, floor_tally)))

    reports = []
    async with timed_servers(args.database_url, JWT_SECRET) as (client, ours_url, floor_url):
        for (tenant, case), (ours_count, floor_count) in zip(zip(tenants, cases, strict=True), counts, strict=True):
            ours, floor = calls(tenant, case, ours_url, floor_url)
            answer, floor_answer = await ours(client, 0), await floor(client, 0)
            assert answer == floor_answer, f"{case.name}: the floor answers other bytes than BudgetBridge"
            nodes = answer.count(b'"erpSynced"')
            assert nodes == case.projects * case.lines, (case, nodes)
            timing = await compare(client, ours, floor, args)
            report = CaseReport(case, nodes, len(answer), timing, ours_count, floor_count)
            reports.append(report)
            for line in report.lines():
                out(line)
            out(load_average())
    return Report(reports, await warm(args, tenants, cases, out))


async def warm(args: argparse.Namespace, tenants: list[Tenant], cases: Sequence[Case], out: Callable[[str], None]
               ) -> list[WarmReport]:
    """Each case again, against a server whose response cache is on (interleaved with the floor)."""
    counts: list[Tally] = []
    async with counted_servers(args.database_url, JWT_SECRET, WARM_CACHE_BYTES) as (ours_client, _, ours_tally, _t):
        for tenant, case in zip(tenants, cases, strict=True):
            ours, _ = calls(tenant, case, "", "")
            counts.append(await count_one(ours_client, ours, ours_tally))

    reports = []
    async with timed_servers(args.database_url, JWT_SECRET, WARM_CACHE_BYTES) as (client, ours_url, floor_url):
        for tenant, case, ours_count in zip(tenants, cases, counts, strict=True):
            ours, floor = calls(tenant, case, ours_url, floor_url)
            rss_before = rss_bytes(ours_url)
            first, again, floor_answer = await ours(client, 0), await ours(client, 0), await floor(client, 0)
            assert first == again == floor_answer, f"{case.name}: the cached answer differs from the floor's"
            timing = await compare(client, ours, floor, args)
            report = WarmReport(case, timing, ours_count, rss_before, rss_bytes(ours_url))
            reports.append(report)
            for line in report.lines():
                out(line)
            out(load_average())
    return reports


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--samples", type=int, default=200, help="c=1 requests to each side (default 200)")
    parser.add_argument("--windows", type=int, default=4, help="c=16 windows per side (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a c=16 window (default 3)")
    parser.add_argument("--small", action="store_true", help="tiny cases (the smoke test)")
    args = parse_bench_args(parser, argv)
    if args.samples < 1 or args.windows < 1 or args.seconds <= 0:
        parser.error("--samples and --windows must be >= 1, --seconds > 0")
    return args


async def amain(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> Report:
    return await run(parse_args(argv), out)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(amain(argv, out=lambda text: print(text, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

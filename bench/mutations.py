"""Mutations: BudgetBridge's line update and lock/unlock against a raw transaction with the same writes, on
PostgreSQL, in one interleaved run.

    python bench/mutations.py --database-url postgresql://postgres@127.0.0.1:5432/bb_perf \\
        [--samples 200] [--windows 4] [--seconds 3] [--clients 8] [--small]

The database given is WIPED; the default URL is BUDGETBRIDGE_BENCH_DATABASE_URL. Each side gets budgets of
its own (one per client, one line each), so the two never contend for a row and no client waits on
another's lock. The floor (bench/floor.py) checks the token and the viewer's rights in its SQL and writes what
BudgetBridge writes: the line (or the budget's lock), the budget's version, the company's event sequence and
the event, in one transaction.

  * updateBudgetLineItem (the amount, alternating between two values) and lockBudget/unlockBudget (in turn);
  * c=1: `--samples` requests to each by turns: p50 and p99;
  * c=`--clients`: `--windows` windows of `--seconds` by turns: requests per second;
  * per request: SQL statements and round trips to PostgreSQL of each side (counted in process).

Figures are printed, never asserted; the load average is printed with them. --small is the smoke test's size.
"""

# ruff: noqa: E402  (the project root has to be importable before tests.support can be imported)

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/mutations.py` puts bench/ on the path, not the project root
    sys.path.insert(0, str(ROOT))

import httpx

from bench.measure import Tally, bench_parser, load_average, parse_bench_args
from bench.servers import Call, Comparison, compare, count_one, counted_servers, timed_servers
from persistence.database import Database
from tests.support import JWT_SECRET, Tenant, fresh_database, make_services, make_tenant

ROLE = "admin"
UPDATE = """mutation($i: UpdateBudgetLineItemInput!) { updateBudgetLineItem(input: $i) {
  lineItem { id originalAmount } userErrors { code message } } }"""
LOCK = "mutation($b: ID!) { lockBudget(input: {budgetId: $b}) { budget { id locked } userErrors { code message } } }"
UNLOCK = """mutation($b: ID!) { unlockBudget(input: {budgetId: $b}) {
  budget { id locked } userErrors { code message } } }"""
CREATE_PROJECT = """mutation($i: CreateProjectInput!) {
  createProject(input: $i) { project { id budget { id } } userErrors { code message } } }"""
ADD_LINE = """mutation($i: CreateBudgetLineItemInput!) { createBudgetLineItem(input: $i) {
  lineItem { id } userErrors { code message } } }"""
AMOUNTS = ("1200.00", "1300.50")


@dataclass
class Target:
    budget_id: str
    line_id: str
    updates: int = 0  # which amount next
    lockings: int = 0  # lock or unlock next


@dataclass
class Side:
    """One side's targets: one per client."""

    targets: list[Target] = field(default_factory=list)


@dataclass
class WorkReport:
    name: str
    timing: Comparison
    ours: Tally
    floor: Tally

    def lines(self) -> list[str]:
        return self.timing.lines(self.name, self.ours, self.floor)


@dataclass
class Report:
    works: list[WorkReport]


async def seed(db: Database, clients: int) -> tuple[Tenant, Side, Side]:
    tenant = await make_tenant(make_services(db))
    sides = (Side(), Side())
    for n in range(2 * clients):
        data = await tenant.ok(ROLE, CREATE_PROJECT, i={"name": f"Bench {n}", "number": f"M-{n}"})
        budget_id = data["createProject"]["project"]["budget"]["id"]
        line = await tenant.ok(ROLE, ADD_LINE, i={"budgetId": budget_id, "item": {
            "costCodeId": tenant.cost_codes["03-300"], "costTypeId": tenant.cost_types["L"],
            "originalAmount": AMOUNTS[0]}})
        sides[n % 2].targets.append(Target(budget_id, line["createBudgetLineItem"]["lineItem"]["id"]))
    return tenant, sides[0], sides[1]


def checked(response: httpx.Response, name: str) -> None:
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body and body["data"][name]["userErrors"] == [], body


def update_calls(tenant: Tenant, ours_side: Side, floor_side: Side, ours_url: str, floor_url: str
                 ) -> tuple[Call, Call]:
    headers = {"Authorization": f"Bearer {tenant.token(ROLE)}"}

    async def ours(client: httpx.AsyncClient, worker: int) -> Any:
        target = ours_side.targets[worker]
        target.updates += 1
        variables = {"i": {"id": target.line_id, "originalAmount": AMOUNTS[target.updates % 2]}}
        checked(await client.post(f"{ours_url}/graphql", json={"query": UPDATE, "variables": variables},
                                  headers=headers), "updateBudgetLineItem")

    async def floor(client: httpx.AsyncClient, worker: int) -> Any:
        target = floor_side.targets[worker]
        target.updates += 1
        body = {"id": target.line_id, "originalAmount": AMOUNTS[target.updates % 2]}
        checked(await client.post(f"{floor_url}/update-line", json=body, headers=headers), "updateBudgetLineItem")

    return ours, floor


def locking_calls(tenant: Tenant, ours_side: Side, floor_side: Side, ours_url: str, floor_url: str
                  ) -> tuple[Call, Call]:
    headers = {"Authorization": f"Bearer {tenant.token(ROLE)}"}

    async def ours(client: httpx.AsyncClient, worker: int) -> Any:
        target = ours_side.targets[worker]
        lock = target.lockings % 2 == 0
        target.lockings += 1
        query = LOCK if lock else UNLOCK
        checked(await client.post(f"{ours_url}/graphql", json={"query": query, "variables": {"b": target.budget_id}},
                                  headers=headers), "lockBudget" if lock else "unlockBudget")

    async def floor(client: httpx.AsyncClient, worker: int) -> Any:
        target = floor_side.targets[worker]
        lock = target.lockings % 2 == 0
        target.lockings += 1
        checked(await client.post(f"{floor_url}/{'lock' if lock else 'unlock'}", json={"budgetId": target.budget_id},
                                  headers=headers), "lockBudget" if lock else "unlockBudget")

    return ours, floor


WORKS = (("updateBudgetLineItem", update_calls), ("lockBudget / unlockBudget", locking_calls))


async def run(args: argparse.Namespace, out: Callable[[str], None]) -> Report:
    db = await fresh_database(args.database_url)
    try:
        tenant, ours_side, floor_side = await seed(db, args.clients)
    finally:
        await db.dispose()
    out(f"setup: {args.clients} budgets with one line for each side; {load_average()}")

    counts: list[tuple[Tally, Tally]] = []
    async with counted_servers(args.database_url, JWT_SECRET) as (ours_client, floor_client, ours_tally, floor_tally):
        for _, make in WORKS:
            ours, floor = make(tenant, ours_side, floor_side, "", "")
            # Four more of each: lock/unlock ends where it started, and the counted request is a lock.
            counts.append((await count_one(ours_client, ours, ours_tally),
                           await count_one(floor_client, floor, floor_tally)))
            await ours(ours_client, 0)
            await floor(floor_client, 0)

    works = []
    async with timed_servers(args.database_url, JWT_SECRET) as (client, ours_url, floor_url):
        for (name, make), (ours_count, floor_count) in zip(WORKS, counts, strict=True):
            ours, floor = make(tenant, ours_side, floor_side, ours_url, floor_url)
            work = WorkReport(name, await compare(client, ours, floor, args, args.clients), ours_count, floor_count)
            works.append(work)
            for line in work.lines():
                out(line)
            out(load_average())
    return Report(works)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(__doc__)
    parser.add_argument("--samples", type=int, default=200, help="c=1 requests to each side (default 200)")
    parser.add_argument("--windows", type=int, default=4, help="throughput windows per side (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a throughput window (default 3)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients for throughput (default 8)")
    parser.add_argument("--small", action="store_true", help="the smoke test's size: few samples, short windows")
    args = parse_bench_args(parser, argv)
    if args.samples < 1 or args.windows < 1 or args.seconds <= 0 or args.clients < 1:
        parser.error("--samples, --windows and --clients must be >= 1, --seconds > 0")
    if args.small:
        args.samples, args.windows, args.seconds, args.clients = min(args.samples, 6), 2, 0.3, min(args.clients, 2)
    return args


async def amain(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> Report:
    return await run(parse_args(argv), out)


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(amain(argv, out=lambda text: print(text, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

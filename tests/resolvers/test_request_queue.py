"""The ERP Integrations queue for SPAs: `erpRequests(filter:, orderBy:)` with keyset cursors. Every filter and
order is checked page by page against the same rows filtered and sorted here; pages stay stable while
requests are added; tenancy and visibility are those of the plain queue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from erp.base import ConnectorError
from persistence.database import Database
from resolvers.context import Services
from schema.build import schema
from tests.resolvers.spa_support import (
    DECIDE,
    MODIFY,
    RETRIEVE,
    SEND,
    T0,
    Case,
    Session,
    World,
    _locked,
    fresh_case,
    new_world,
)
from tests.resolvers.test_nested_reads import counted
from tests.support import make_services

QUEUE = """query($status: [ExportStatus!], $projectId: ID, $filter: ErpRequestFilter, $orderBy: ErpRequestOrder,
    $first: Int, $after: String) {
  erpRequests(status: $status, projectId: $projectId, filter: $filter, orderBy: $orderBy, first: $first,
      after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id status kind sentAt decidedAt totalOriginalBudget project { id } sentBy { id } } } } }"""
CONFIRM = """mutation($r: ID!) { confirmJobCostPosting(input: {erpRequestId: $r}) { userErrors { code } } }"""

ORDERS = [
    {"field": field, "direction": direction}
    for field in ("SENT_AT", "DECIDED_AT", "TOTAL_ORIGINAL_BUDGET")
    for direction in ("ASC", "DESC")
]


def at(minutes: float) -> str:
    return datetime.fromtimestamp(T0.timestamp() + minutes * 60, T0.tzinfo).isoformat()


@dataclass
class Queue:
    world: World
    session: Session
    cases: dict[str, Case]
    requests: dict[str, str]  # name -> id

    async def send(self, name: str, case: str, role: str, minutes: float) -> None:
        self.world.clock.at(minutes)
        sent = await self.session.run(role, SEND, b=self.cases[case].budget_id)
        assert sent["userErrors"] == [], sent
        self.requests[name] = sent["erpRequest"]["id"]
        self.cases[case].request_id = sent["erpRequest"]["id"]

    async def decide(self, name: str, decision: str, minutes: float) -> None:
        self.world.clock.at(minutes)
        why = "over budget" if decision == "REJECT" else None
        decided = await self.session.run("approver", DECIDE, r=self.requests[name], d=decision, why=why)
        assert decided["userErrors"] == [], decided


async def queue_of(services: Services) -> Queue:
    """Six requests of four budgets in every status the queue shows, with ties on every order column:

    name  budget  status              kind           sent  decided  total    sent by
    r1a   c1      REJECTED            CREATE_BUDGET  10    20       350.00   admin
    r1b   c1      PENDING_ACCEPTANCE  CREATE_BUDGET  30    -        350.00   sender
    r2a   c2      SYNCED              CREATE_BUDGET  10    15       1350.00  sender
    r2b   c2      PENDING_ACCEPTANCE  UPDATE_BUDGET  40    -        0.00     admin
    r3    c3      RETRIEVED           CREATE_BUDGET  30    -        350.00   admin
    r4    c4      EXPORT_FAILED       CREATE_BUDGET  5     20       75.00    sender
    """
    world = await new_world(services)
    amounts = {"c1": ("100.00", "250.00"), "c2": ("1000.00", "350.00"), "c3": ("100.00", "250.00"),
               "c4": ("50.00", "25.00")}
    cases = {name: await fresh_case(world, pair) for name, pair in amounts.items()}
    for case in cases.values():
        await _locked(world, case)
    q = Queue(world, Session(world.tenant), cases, {})
    await q.send("r1a", "c1", "admin", 10)
    await q.send("r2a", "c2", "sender", 10)
    await q.send("r4", "c4", "sender", 5)
    await q.decide("r2a", "ACCEPT", 15)
    assert await world.worker().run_once() == 1
    world.clock.at(25)
    assert (await q.session.run("integrator", CONFIRM, r=q.requests["r2a"]))["userErrors"] == []
    await q.decide("r1a", "REJECT", 20)
    await q.decide("r4", "ACCEPT", 20)
    world.connector.outcomes = [ConnectorError("cost code closed", retryable=False)]
    assert await world.worker().run_once() == 1
    await q.send("r1b", "c1", "sender", 30)
    await q.send("r3", "c3", "admin", 30)
    world.clock.at(35)
    assert (await q.session.run("admin", RETRIEVE, b=cases["c3"].budget_id))["userErrors"] == []
    c2 = cases["c2"]
    assert (await q.session.run("admin", MODIFY, b=c2.budget_id, f=c2.lines[0], t=c2.lines[1]))["userErrors"] == []
    await q.send("r2b", "c2", "admin", 40)
    return q


@pytest.fixture(scope="module")
async def queue(db: Database) -> Queue:
    """One company's queue for the tests that only read it."""
    return await queue_of(make_services(db))


Row = dict[str, Any]


async def everything(q: Queue, role: str = "approver") -> list[Row]:
    data = await q.session.execute(role, QUEUE, first=200)
    return [edge["node"] for edge in data["erpRequests"]["edges"]]


async def walk(q: Queue, role: str = "approver", page: int = 2, **variables: Any) -> tuple[list[str], int]:
    """Every id the query lists, page by page with the cursors it hands out; and its totalCount."""
    ids: list[str] = []
    after = None
    totals = set()
    while True:
        data = (await q.session.execute(role, QUEUE, first=page, after=after, **variables))["erpRequests"]
        totals.add(data["totalCount"])
        ids += [edge["node"]["id"] for edge in data["edges"]]
        assert [edge["cursor"] for edge in data["edges"]][-1:] == [data["pageInfo"]["endCursor"]] or not data["edges"]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
        assert len(ids) <= 200, "paging does not end"
    (total,) = totals
    return ids, total


def sort_value(row: Row, field: str) -> tuple[int, Any]:
    """The order the API promises: by value, then id; requests not decided yet after all decided ones."""
    if field == "SENT_AT":
        return (0, datetime.fromisoformat(row["sentAt"]))
    if field == "DECIDED_AT":
        decided = row["decidedAt"]
        return (1, datetime.min) if decided is None else (0, datetime.fromisoformat(decided).replace(tzinfo=None))
    return (0, Decimal(row["totalOriginalBudget"]))


def ordered(rows: list[Row], order: dict[str, str]) -> list[str]:
    by = sorted(rows, key=lambda row: (sort_value(row, order["field"]), row["id"]))
    return [row["id"] for row in (reversed(by) if order["direction"] == "DESC" else by)]


async def test_the_queue_holds_what_was_built(queue: Queue) -> None:
    q = queue
    rows = {row["id"]: row for row in await everything(q)}
    named = {name: rows[request_id] for name, request_id in q.requests.items()}
    summary = {
        name: (row["status"], row["kind"], row["sentAt"], row["decidedAt"], row["totalOriginalBudget"])
        for name, row in named.items()
    }
    assert summary == {
        "r1a": ("REJECTED", "CREATE_BUDGET", at(10), at(20), "350.00"),
        "r1b": ("PENDING_ACCEPTANCE", "CREATE_BUDGET", at(30), None, "350.00"),
        "r2a": ("SYNCED", "CREATE_BUDGET", at(10), at(15), "1350.00"),
        "r2b": ("PENDING_ACCEPTANCE", "UPDATE_BUDGET", at(40), None, "0.00"),
        "r3": ("RETRIEVED", "CREATE_BUDGET", at(30), None, "350.00"),
        "r4": ("EXPORT_FAILED", "CREATE_BUDGET", at(5), at(20), "75.00"),
    }
    assert len(rows) == 6
    # The default order is the newest sent first.
    assert [row["id"] for row in await everything(q)] == ordered(list(rows.values()), ORDERS[1])


async def test_every_order_pages_through_every_request_once(queue: Queue) -> None:
    rows = await everything(queue)
    for order in ORDERS:
        expected = ordered(rows, order)
        for page in (1, 2, 4, 6):
            assert await walk(queue, page=page, orderBy=order) == (expected, 6), (order, page)


def by_name(q: Queue, *names: str) -> set[str]:
    return {q.requests[name] for name in names}


FILTERS: list[tuple[str, Callable[[Queue], dict[str, Any]], tuple[str, ...]]] = [
    ("status", lambda q: {"filter": {"status": ["PENDING_ACCEPTANCE"]}}, ("r1b", "r2b")),
    ("statuses", lambda q: {"filter": {"status": ["REJECTED", "RETRIEVED"]}}, ("r1a", "r3")),
    ("project", lambda q: {"filter": {"projectId": q.cases["c1"].project_id}}, ("r1a", "r1b")),
    ("kind", lambda q: {"filter": {"kind": ["UPDATE_BUDGET"]}}, ("r2b",)),
    ("sent after, inclusive", lambda q: {"filter": {"sentAfter": at(30)}}, ("r1b", "r3", "r2b")),
    ("sent before, exclusive", lambda q: {"filter": {"sentBefore": at(10)}}, ("r4",)),
    ("sent between", lambda q: {"filter": {"sentAfter": at(10), "sentBefore": at(40)}}, ("r1a", "r2a", "r1b", "r3")),
    ("sender", lambda q: {"filter": {"sentById": q.world.tenant.users["sender"]}}, ("r2a", "r4", "r1b")),
    (
        "status and sender",
        lambda q: {"filter": {"status": ["PENDING_ACCEPTANCE"], "sentById": q.world.tenant.users["admin"]}},
        ("r2b",),
    ),
    (
        "status argument and filter status",
        lambda q: {"status": ["PENDING_ACCEPTANCE", "REJECTED"], "filter": {"status": ["REJECTED", "SYNCED"]}},
        ("r1a",),
    ),
    ("status argument alone", lambda q: {"status": ["SYNCED"]}, ("r2a",)),
    (
        "projectId argument and the same filter project",
        lambda q: {"projectId": q.cases["c2"].project_id, "filter": {"projectId": q.cases["c2"].project_id}},
        ("r2a", "r2b"),
    ),
    (
        "projectId argument and another filter project",
        lambda q: {"projectId": q.cases["c2"].project_id, "filter": {"projectId": q.cases["c1"].project_id}},
        (),
    ),
    (
        "project, kind and time",
        lambda q: {
            "projectId": q.cases["c1"].project_id,
            "filter": {"kind": ["CREATE_BUDGET"], "sentAfter": at(11)},
        },
        ("r1b",),
    ),
    ("empty lists filter nothing", lambda q: {"status": [], "filter": {"status": [], "kind": []}}, ("r1a", "r1b",
                                                                                                   "r2a", "r2b",
                                                                                                   "r3", "r4")),
    ("nobody", lambda q: {"filter": {"sentById": q.world.tenant.users["reader"]}}, ()),
]


async def test_every_filter_in_every_order_lists_exactly_its_requests(queue: Queue) -> None:
    q = queue
    rows = {row["id"]: row for row in await everything(q)}
    for label, variables, names in FILTERS:
        expected_ids = by_name(q, *names)
        for order in (ORDERS[1], ORDERS[2], ORDERS[4]):
            expected = ordered([rows[i] for i in expected_ids], order)
            assert await walk(q, orderBy=order, **variables(q)) == (expected, len(expected)), (label, order)


async def test_pages_stay_stable_while_requests_are_added(services: Services) -> None:
    """Requests sent between two page fetches, sorting before and after the cursor, repeat no row and
    skip none: the newest-first queue and the largest-first queue both."""
    for order in (ORDERS[1], ORDERS[5]):
        q = await queue_of(services)
        before = ordered(await everything(q), order)
        first = (await q.session.execute("approver", QUEUE, first=3, orderBy=order))["erpRequests"]
        seen = [edge["node"]["id"] for edge in first["edges"]]
        assert seen == before[:3]
        # New requests: the newest of all (sorts first) and one sent earlier than any (sorts last newest-first);
        # the largest and the smallest (a budget of 9000.00, one of 1.00).
        extra = {"c5": ("4000.00", "5000.00"), "c6": ("0.50", "0.50")}
        for name, amounts in extra.items():
            q.cases[name] = await fresh_case(q.world, amounts)
            await _locked(q.world, q.cases[name])
        await q.send("new", "c5", "admin", 100)
        await q.send("old", "c6", "admin", 1)
        after = first["pageInfo"]["endCursor"]
        while True:
            page = (await q.session.execute("approver", QUEUE, first=2, after=after, orderBy=order))["erpRequests"]
            seen += [edge["node"]["id"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert len(seen) == len(set(seen)), "a row came twice"
        assert set(before) <= set(seen), "a row was skipped"
        now = ordered(await everything(q), order)
        assert seen == before[:3] + now[now.index(before[2]) + 1 :]  # on from the last row seen, as it is now
        assert page["totalCount"] == 8


async def test_visibility_is_the_plain_queues(queue: Queue) -> None:
    """Approvers and ERP users see the company's queue; others see one project they can see at a time."""
    q = queue
    c1 = q.cases["c1"].project_id
    assert (await walk(q, "integrator"))[1] == 6
    assert await walk(q, "reader") == ([], 0)  # without a project: nothing
    mine, total = await walk(q, "reader", filter={"projectId": c1})
    assert (set(mine), total) == (by_name(q, "r1a", "r1b"), 2)
    assert await walk(q, "reader", projectId=c1) == (mine, 2)
    assert await walk(q, "outsider", filter={"projectId": c1}) == ([], 0)  # no access to the project
    assert await walk(q, "outsider", projectId=c1, filter={"status": ["REJECTED"]}) == ([], 0)


async def test_another_companys_requests_never_appear(queue: Queue, services: Services) -> None:
    ours, theirs = queue, await queue_of(services)
    our_ids, their_ids = set(ours.requests.values()), set(theirs.requests.values())
    for order in ORDERS:
        assert set((await walk(ours, orderBy=order))[0]) == our_ids
        assert set((await walk(theirs, orderBy=order))[0]) == their_ids
    foreign: list[dict[str, Any]] = [
        {"filter": {"projectId": theirs.cases["c1"].project_id}},
        {"projectId": theirs.cases["c1"].project_id},
        {"filter": {"sentById": theirs.world.tenant.users["sender"]}},
    ]
    for variables in foreign:
        assert await walk(ours, **variables) == ([], 0)
    # Their cursor is only a position: in our queue it lists our requests after that position, never theirs.
    their_page = (await theirs.session.execute("approver", QUEUE, first=1))["erpRequests"]
    found = (await ours.session.execute("approver", QUEUE, first=50, after=their_page["pageInfo"]["endCursor"]))
    assert {edge["node"]["id"] for edge in found["erpRequests"]["edges"]} <= our_ids


async def test_a_cursor_of_another_list_or_order_or_a_time_without_zone_is_bad_user_input(queue: Queue) -> None:
    q = queue
    newest = (await q.session.execute("approver", QUEUE, first=1))["erpRequests"]["pageInfo"]["endCursor"]
    projects = await q.session.execute("approver", "{ projects(first: 1) { pageInfo { endCursor } } }")
    refused: dict[str, dict[str, Any]] = {
        "garbage": {"after": "%%%"},
        "an old offset cursor": {"after": "bzow"},  # "o:0", as offset cursors were
        "a cursor of projects": {"after": projects["projects"]["pageInfo"]["endCursor"]},
        "another order": {"after": newest, "orderBy": {"field": "TOTAL_ORIGINAL_BUDGET", "direction": "DESC"}},
        "another direction": {"after": newest, "orderBy": {"field": "SENT_AT", "direction": "ASC"}},
        "a time without zone": {"filter": {"sentAfter": "2026-03-02T08:00:00"}},
    }
    for label, variables in refused.items():
        result = await q.session.result("approver", QUEUE, first=2, **variables)
        assert result.errors is not None and len(result.errors) == 1, label
        assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}, label
        expected = "time zone" if label == "a time without zone" else "invalid cursor"
        assert expected in result.errors[0].message, (label, result.errors[0].message)


ACTIONS = """query($n: Int, $orderBy: ErpRequestOrder) { erpRequests(first: $n, orderBy: $orderBy) { totalCount
  edges { cursor node { id viewerCan { accept reject retrieve retryExport confirmPosting } } } } }"""


async def test_a_page_of_the_queue_with_its_actions_costs_the_same_for_one_request_as_for_six(queue: Queue) -> None:
    ctx = await queue.world.tenant.context("approver")

    async def statements_for(requests: int, order: dict[str, str]) -> int:
        ctx.reset_loaders()
        with counted(queue.world.services.db) as statements:
            result = await schema.execute(ACTIONS, variable_values={"n": requests, "orderBy": order}, context_value=ctx)
        assert result.errors is None and result.data is not None, result.errors
        assert len(result.data["erpRequests"]["edges"]) == requests
        return len(statements)

    for order in ORDERS:
        # The page and its count, then the budgets and the viewer's access for `retrieve` (not read when no
        # request on the page is its budget's latest).
        assert await statements_for(1, order) <= await statements_for(6, order) == 4

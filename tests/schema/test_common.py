"""The one connection helper and the refusal types, without a database."""

from __future__ import annotations

from domain.errors import DomainError, ErpFormatInvalidError, ErrorCode, NotFoundError, VersionConflictError
from resolvers.pagination import Page
from schema.build import schema
from schema.common import Blocker, Connection, Edge, PageInfo, UserError, blockers, connection, user_errors


def test_a_connection_has_an_edge_per_item_with_its_cursor_and_the_page_info() -> None:
    page = Page.of([3, 4, 5], lambda n: f"c{n}", has_next=True, total=9)
    built = connection(page, lambda n: n * 10)
    assert built == Connection(
        edges=[Edge(node=30, cursor="c3"), Edge(node=40, cursor="c4"), Edge(node=50, cursor="c5")],
        page_info=PageInfo(has_next_page=True, end_cursor="c5"),
        total_count=9,
    )


def test_an_empty_page_has_no_end_cursor_and_keeps_its_total() -> None:
    built = connection(Page.of([], str, has_next=False, total=4), str)
    assert built.edges == []
    assert built.page_info == PageInfo(has_next_page=False, end_cursor=None)
    assert built.total_count == 4


def test_a_fetched_page_drops_the_extra_row_that_only_says_more_follow() -> None:
    page = Page.fetched(["a", "b", "c"], 2, lambda item: f"c-{item}", total=8)
    assert (page.items, page.cursors, page.end_cursor) == (["a", "b"], ["c-a", "c-b"], "c-b")
    assert (page.has_next, page.total) == (True, 8)
    assert Page.fetched(["a", "b"], 2, str, total=2).has_next is False
    zero = Page.fetched(["a"], 0, str, total=1)
    assert (zero.items, zero.end_cursor, zero.has_next, zero.total) == ([], None, True, 1)
    empty: Page[str] = Page.empty()
    assert (empty.items, empty.cursors, empty.end_cursor, empty.has_next, empty.total) == ([], [], None, False, 0)


def test_refusals_keep_the_domain_code_message_and_field() -> None:
    errors: list[DomainError] = [NotFoundError("budget", ["input", "budgetId"]), VersionConflictError(actual=None)]
    assert user_errors(errors) == [
        UserError(code=ErrorCode.NOT_FOUND, message="budget not found", field=["input", "budgetId"]),
        UserError(code=ErrorCode.VERSION_CONFLICT, message=errors[1].message, field=None),
    ]
    assert blockers(errors) == [  # an input field is not a cell of the budget: blockers point at none
        Blocker(code=ErrorCode.NOT_FOUND, message="budget not found", field=None, line_item_id=None),
        Blocker(code=ErrorCode.VERSION_CONFLICT, message=errors[1].message, field=None, line_item_id=None),
    ]


def test_a_refusal_about_a_cell_points_at_the_line_and_its_field() -> None:
    on_line = ErpFormatInvalidError("li_1", "costCode", "Line 03-300/L: the cost code is too long.")
    on_job = ErpFormatInvalidError(None, "number", "The job '24-017-BLDG-A' is too long.")
    assert blockers([on_line, on_job]) == [
        Blocker(code=ErrorCode.ERP_FORMAT_INVALID, message=on_line.message, field=["costCode"], line_item_id="li_1"),
        Blocker(code=ErrorCode.ERP_FORMAT_INVALID, message=on_job.message, field=["project", "number"],
                line_item_id=None),
    ]
    # A userError has no lineItem: its path names the line.
    assert user_errors([on_line, on_job]) == [
        UserError(code=ErrorCode.ERP_FORMAT_INVALID, message=on_line.message, field=["lineItem", "li_1", "costCode"]),
        UserError(code=ErrorCode.ERP_FORMAT_INVALID, message=on_job.message, field=["project", "number"]),
    ]


def test_the_graphql_enums_are_the_domains_own() -> None:
    served = schema._schema.type_map
    assert set(served["ErrorCode"].values) == {code.name for code in ErrorCode}  # type: ignore[attr-defined]
    assert list(served["PermissionLevel"].values) == ["NONE", "READ_ONLY", "STANDARD", "ADMIN"]  # type: ignore[attr-defined]
    for name in ("ProjectConnection", "BudgetLineItemConnection", "ErpRequestConnection", "BudgetEventConnection"):
        assert list(served[name].fields) == ["edges", "pageInfo", "totalCount"]  # type: ignore[attr-defined]

"""What every aggregate's types share: the Node interface, refusals (UserError, Blocker), PageInfo and the
one generic connection (`Connection[T]` is served as `TConnection`, its edges as `TEdge`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Generic, Optional, TypeVar, cast

import strawberry
from strawberry.types import Info

from domain.errors import DomainError
from resolvers.context import Context
from resolvers.pagination import Page
from schema.enums import ErrorCode

if TYPE_CHECKING:
    from schema.budgets import BudgetLineItem

Ctx = Info[Context, None]

S = TypeVar("S")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def described(description: str) -> Callable[[F], F]:
    """`@strawberry.field(description=...)`, typed: strawberry's keyword-only overload returns Any, which
    would leave the resolver untyped for mypy."""
    return cast("Callable[[F], F]", strawberry.field(description=description))


def described_mutation(description: str | None, *, name: str | None = None) -> Callable[[F], F]:
    """`@strawberry.mutation(description=..., name=...)`, typed (see `described`)."""
    return cast("Callable[[F], F]", strawberry.mutation(description=description, name=name))


def described_subscription(description: str) -> Callable[[F], F]:
    """`@strawberry.subscription(description=...)`, typed (see `described`)."""
    return cast("Callable[[F], F]", strawberry.subscription(description=description))


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class UserError:
    code: ErrorCode
    message: str
    field: Annotated[Optional[list[str]], strawberry.field(description="Path to the input field at fault, if any.")]

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=list(error.field) if error.field else None)


def user_errors(errors: Sequence[DomainError]) -> list[UserError]:
    return [UserError.of(e) for e in errors]


@strawberry.type(description="A reason an action is not possible right now (same codes as userErrors).")
class Blocker:
    code: ErrorCode
    message: str
    field: Annotated[
        Optional[list[str]],
        strawberry.field(
            description="The cell at fault, when there is one: a field of lineItem (e.g. [\"costCode\"]) or, without "
            'a line, a path from the budget (e.g. ["project", "number"]).'
        ),
    ]
    line_item_id: strawberry.Private[Optional[str]]

    @described("The line at fault, when there is one.")
    async def line_item(self, info: Ctx) -> Optional[Annotated[BudgetLineItem, strawberry.lazy("schema.budgets")]]:
        from schema.budgets import load_line

        return await load_line(info, self.line_item_id)

    @classmethod
    def of(cls, error: DomainError) -> Blocker:
        return cls(
            code=error.code,
            message=error.message,
            field=list(error.cell) if error.cell else None,
            line_item_id=error.line_item_id,
        )


def blockers(errors: Sequence[DomainError]) -> list[Blocker]:
    return [Blocker.of(e) for e in errors]


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: Optional[str]


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int


def connection(page: Page[S], node: Callable[[S], T]) -> Connection[T]:
    """The connection of a page, each item shaped by `node`."""
    edges = [Edge(node=node(item), cursor=cursor) for item, cursor in zip(page.items, page.cursors, strict=True)]
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None),
        total_count=page.total,
    )

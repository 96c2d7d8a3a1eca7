"""What every aggregate's types share: the Node interface, refusals (UserError, Blocker), PageInfo and the
one generic connection (`Connection[T]` is served as `TConnection`, its edges as `TEdge`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Generic, Optional, TypeVar, cast

import strawberry
from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.types import Info

from domain.errors import DomainError
from persistence.ids import PREFIXES
from resolvers.context import Context
from resolvers.pagination import DEFAULT_UNPAGED_MAXIMUM, UNPAGED_MAXIMA, Page
from schema.enums import ErrorCode

if TYPE_CHECKING:
    from schema.budgets import BudgetLineItem

Ctx = Info[Context, None]

S = TypeVar("S")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _selects(
    selection_set: SelectionSetNode | None, path: Sequence[str], fragments: Mapping[str, FragmentDefinitionNode]
) -> bool:
    for selection in selection_set.selections if selection_set is not None else ():
        if isinstance(selection, FieldNode):
            if selection.name.value == path[0] and (
                len(path) == 1 or _selects(selection.selection_set, path[1:], fragments)
            ):
                return True
        elif isinstance(selection, InlineFragmentNode):  # a fragment: its fields are the field's own
            if _selects(selection.selection_set, path, fragments):
                return True
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None and _selects(fragment.selection_set, path, fragments):
                return True
    return False


def selects(info: Ctx, *path: str) -> bool:
    """Whether the field being resolved selects `path` (GraphQL names, under any alias, through fragments):
    what is not asked for is not read or computed. Directives are not evaluated: a field under
    `@include(if: false)` counts as selected, which only costs the work. Read off the document itself:
    strawberry's `info.selected_fields` converts the whole sub-selection on every call (a page of 20
    budgets asks three times each)."""
    raw = info._raw_info
    return any(_selects(node.selection_set, path, raw.fragments) for node in raw.field_nodes)


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


def at_most(list_field: str) -> str:
    """How many items the unpaged list `list_field` ("Type.field") returns at most (resolvers.pagination)."""
    return f"At most {UNPAGED_MAXIMA.get(list_field, DEFAULT_UNPAGED_MAXIMUM):,} items; the rest are cut."


# The arguments every paged field takes, described once: `first` with its own default and maximum.
AFTER = (
    "Start after the item with this cursor (an `endCursor` or `cursor` this list gave, in the same order); null: "
    'from the start. Any other string is BAD_USER_INPUT "invalid cursor".'
)


def first_argument(default: int, maximum: int) -> str:
    return f"How many items to return: 0 to at most {maximum:,}; null means the default, {default}."


def node_id(type_name: str) -> Any:
    """The `id` field of a Node type, described with the prefix its ids carry (persistence.ids)."""
    return strawberry.field(
        description=f"Opaque id; it starts with `{PREFIXES[type_name]}_`. Pass it back as is (`node(id:)` finds it)."
    )


@strawberry.interface(
    description="An object with an opaque id that `node(id:)` finds again (null when the viewer may not see it)."
)
class Node:
    id: strawberry.ID = strawberry.field(
        description="Opaque, stable id: a type prefix, `_` and 32 hex digits (e.g. `prj_...`). Do not parse it."
    )


@strawberry.type(
    description="Why a mutation was refused, one per reason. When a payload's userErrors is non-empty, nothing "
    "changed."
)
class UserError:
    code: ErrorCode = strawberry.field(description="The stable reason (see ErrorCode).")
    message: str = strawberry.field(description="For people; may change: branch on `code`, never on the text.")
    field: Annotated[
        Optional[list[str]],
        strawberry.field(
            description='Path to the input at fault, if any, e.g. ["input", "items", "3", "originalAmount"]; for a '
            'cell of the budget ["lineItem", "<line id>", "<field>"].'
        ),
    ]

    @classmethod
    def of(cls, error: DomainError) -> UserError:
        return cls(code=error.code, message=error.message, field=list(error.field) if error.field else None)


def user_errors_field() -> Any:
    """A payload's `userErrors`, described once for every payload."""
    return strawberry.field(
        description="Why the mutation was refused (one entry per reason); empty on success. When it is not empty, "
        "nothing changed."
    )


def user_errors(errors: Sequence[DomainError]) -> list[UserError]:
    return [UserError.of(e) for e in errors]


@strawberry.type(description="A reason an action is not possible right now (same codes as userErrors).")
class Blocker:
    code: ErrorCode = strawberry.field(description="The stable reason (see ErrorCode).")
    message: str = strawberry.field(description="The reason in a sentence a person can act on; may change.")
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


@strawberry.type(description="Where a page ends and whether more follow.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    end_cursor: Optional[str] = strawberry.field(
        description="The cursor of this page's last item, to pass as `after` for the next page; null when the page "
        "is empty."
    )


@strawberry.type(description="One item of a page, with its cursor.")
class Edge(Generic[T]):
    node: T = strawberry.field(description="The item.")
    cursor: str = strawberry.field(
        description="Opaque keyset cursor of this item: pass it as `after` to continue after it. Valid for the same "
        "list and order only; stays valid while items are added."
    )


@strawberry.type(
    description="One page of a list, in the list's order. Page with `first` / `after`: the next page starts after "
    "the item whose cursor is `after`, so items added meanwhile neither repeat nor shift the pages."
)
class Connection(Generic[T]):
    edges: list[Edge[T]] = strawberry.field(description="The items of this page (at most `first`).")
    page_info: PageInfo = strawberry.field(description="Whether more items follow, and the cursor to continue from.")
    total_count: int = strawberry.field(description="How many items the whole list holds (filters applied).")


def connection(page: Page[S], node: Callable[[S], T], info: Ctx | None = None) -> Connection[T]:
    """The connection of a page, each item shaped by `node`. With the field's `info`, each edge's cursor is
    made only when the query selects `edges { cursor }` (an edge's cursor is otherwise never sent)."""
    if info is None or selects(info, "edges", "cursor"):
        edges = [Edge(node=node(item), cursor=page.cursor_of(item)) for item in page.items]
    else:
        edges = [Edge(node=node(item), cursor="") for item in page.items]
    return Connection(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.end_cursor),
        total_count=page.total if page.total is not None else 0,  # None: not selected, so never sent
    )

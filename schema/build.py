"""The assembled strawberry.Schema: the one object the app serves and the tests execute against."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors, MaxTokensLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig

from resolvers.context import MAX_NODES, Context, UnauthenticatedError
from resolvers.pagination import QueryLimitError
from resolvers.subscriptions import SubscriberTooSlowError, SubscriptionInputError
from schema.budgets import Budget, BudgetLineItem, BudgetModification
from schema.enums import ExportEntryKind
from schema.mutation import Mutation
from schema.people import Company, User
from schema.projects import CostCode, CostType, Project
from schema.query import Query
from schema.requests import ErpRequest
from schema.scalars import DecimalInputError, DecimalScalar
from schema.subscription import Subscription

MAX_DEPTH = 12
MAX_TOKENS = 10_000  # bounds the cost of parsing a document before anything else runs
PUBLIC_ERRORS = (
    UnauthenticatedError,
    QueryLimitError,
    DecimalInputError,
    SubscriptionInputError,
    SubscriberTooSlowError,
)


class PerOperationAllowance(SchemaExtension):
    """Every operation starts with the full list-item allowance, also the second query on a WebSocket
    connection (whose context lives as long as the connection)."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            context.node_allowance = MAX_NODES
        yield


def should_mask(error: GraphQLError) -> bool:
    """Show errors about the request itself (validation, bad scalars, auth, limits); mask the rest, which
    are bugs or outages whose text could carry SQL or internals."""
    original = error.original_error
    if original is None:
        return False
    # graphql-core (3.3+) reports a bad variable value as a GraphQLError wrapping its own GraphQLError
    # that describes the input; those are request errors, not internals.
    return not isinstance(original, (*PUBLIC_ERRORS, GraphQLError))


def build_schema(subscription: type | None = None) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=subscription,
        types=[
            ExportEntryKind,
            Company,
            User,
            Project,
            Budget,
            BudgetLineItem,
            BudgetModification,
            ErpRequest,
            CostCode,
            CostType,
        ],
        config=StrawberryConfig(scalar_map={Decimal: DecimalScalar}),
        extensions=[
            PerOperationAllowance,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
            lambda: MaskErrors(should_mask_error=should_mask),
        ],
    )


schema = build_schema(Subscription)

"""The assembled strawberry.Schema: the one object the app serves and the tests execute against."""

from __future__ import annotations

import functools
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import MaskErrors, MaxTokensLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import validate_document

from resolvers.context import (
    Context,
    QueryLimits,
    ServiceUnavailableError,
    UnauthenticatedError,
    never_an_outage,
)
from resolvers.pagination import QueryLimitError
from resolvers.shared_execution import SharingExecutor
from resolvers.subscriptions import SubscriberTooSlowError, SubscriptionInputError
from schema.budgets import Budget, BudgetLineItem, BudgetModification
from schema.cost import CostAnalysis
from schema.enums import ExportEntryKind
from schema.mutation import Mutation
from schema.people import Company, User
from schema.projects import CostCode, CostType, Project
from schema.query import Query
from schema.requests import ErpRequest
from schema.scalars import SCALAR_OVERRIDES, DecimalInputError
from schema.subscription import Subscription

MAX_TOKENS = 10_000  # bounds the cost of parsing a document before anything else runs
PUBLIC_ERRORS = (
    UnauthenticatedError,
    ServiceUnavailableError,
    QueryLimitError,
    DecimalInputError,
    SubscriptionInputError,
    SubscriberTooSlowError,
)
log = logging.getLogger("budgetbridge.graphql")
_analyses: dict[int, CostAnalysis] = {}


def _analysis(graphql_schema: GraphQLSchema) -> CostAnalysis:
    found = _analyses.get(id(graphql_schema))
    if found is None:
        found = _analyses[id(graphql_schema)] = CostAnalysis(graphql_schema)
    return found


# Parsing and validating depend only on the document's text (and the schema), and clients repeat the same
# few documents (every SPA, dashboard and integration does): both are kept, by text, for the most recent
# DOCUMENTS_KEPT documents, so graphql-core's validation (milliseconds for a small mutation) runs once per
# document instead of once per request. The cost check still runs on every request: it depends on variables.
DOCUMENTS_KEPT = 512


@functools.lru_cache(maxsize=DOCUMENTS_KEPT)
def _parsed(query: str, max_tokens: int | None) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


_validated: OrderedDict[tuple[int, str, tuple[Any, ...]], list[GraphQLError]] = OrderedDict()


def _validation_errors(
    graphql_schema: GraphQLSchema, query: str, document: DocumentNode, rules: tuple[Any, ...]
) -> list[GraphQLError]:
    """graphql-core's validation of `document` (parsed from `query`), remembered by the query's text (hashing
    the document itself would walk the whole tree)."""
    key = (id(graphql_schema), query, rules)
    errors = _validated.get(key)
    if errors is None:
        errors = _validated[key] = validate_document(graphql_schema, document, rules)
        if len(_validated) > DOCUMENTS_KEPT:
            _validated.popitem(last=False)
    else:
        _validated.move_to_end(key)
    return errors


class DocumentGuard(SchemaExtension):
    """Before graphql-core validates a document: reuse a trusted document's parse, then check the query's
    cost (schema/cost.py: depth, list items, selections, repeats, mutations), linear in the document.
    Over a limit, the operation is refused with BAD_USER_INPUT and graphql-core never walks it. A document
    seen recently is neither parsed nor validated again (DOCUMENTS_KEPT)."""

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        query = execution.query
        if isinstance(context, Context) and query is not None:
            trusted = context.services.trusted_documents.get(query)
            execution.graphql_document = trusted or _parsed(query, execution.parse_options.get("max_tokens"))
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        document = execution.graphql_document
        if document is not None:
            services = context.services if isinstance(context, Context) else None
            limits = services.query_limits if services is not None else QueryLimits()
            errors = _analysis(execution.schema._schema).check(document, limits, execution.variables)
            if errors:
                execution.pre_execution_errors = errors
            elif services is not None and execution.query in services.trusted_documents:
                execution.pre_execution_errors = []  # validated once, at start
            elif execution.query is not None and execution.validation_rules:
                execution.pre_execution_errors = _validation_errors(
                    execution.schema._schema, execution.query, document, tuple(execution.validation_rules)
                )
        yield


class ReportErrors(MaskErrors):
    """Each error is logged once: a client's mistake at DEBUG (its code is in the operation's access line at
    INFO), an outage as one WARNING (answered SERVICE_UNAVAILABLE), anything else with its traceback and an
    error id, answered "Unexpected error." with that id in `extensions.errorId` (no stack trace or SQL ever
    reaches the client)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=should_mask)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        context = self.execution_context.context
        is_outage = context.services.is_outage if isinstance(context, Context) else never_an_outage
        processed: list[GraphQLError] = []
        for error in errors:
            original = error.original_error
            if isinstance(original, ServiceUnavailableError) or (
                original is not None and not isinstance(original, GraphQLError) and is_outage(original)
            ):
                log.warning("service unavailable at %s: %r", error.path, original)
                replaced = ServiceUnavailableError()
                processed.append(
                    GraphQLError(replaced.message, nodes=error.nodes, path=error.path, extensions=replaced.extensions)
                )
            elif self.should_mask_error(error):
                error_id = uuid.uuid4().hex[:16]
                log.error(
                    "unexpected error %s at %s", error_id, error.path,
                    exc_info=(type(original), original, original.__traceback__) if original else None,
                )
                processed.append(
                    GraphQLError(
                        "Unexpected error.", nodes=error.nodes, path=error.path,
                        extensions={"code": "INTERNAL_SERVER_ERROR", "errorId": error_id},
                    )
                )
            else:
                # The access line (app.operations) has the code at INFO; the message may quote variables.
                code = (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
                log.debug("request error %s: %s", code, error.message)
                processed.append(error)
        return processed


class AppSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Logged once, by ReportErrors (strawberry's default logs every error with a traceback)."""


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
    return AppSchema(
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
        config=StrawberryConfig(scalar_map=SCALAR_OVERRIDES),
        execution_context_class=SharingExecutor,  # live subscriptions share identical executions
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            DocumentGuard,
            ReportErrors,
        ],
    )


schema = build_schema(Subscription)

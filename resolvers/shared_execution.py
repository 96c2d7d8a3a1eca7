"""One GraphQL execution shared by the live subscriptions that would all compute the same answer.

A status change seen by N subscribers used to cost N graphql-core executions of the same selection over the
same rows. Subscriptions whose answer to an event cannot differ share one: the first to take the event
executes it, the others await that result (single flight) and send the same data.

When two answers cannot differ (the key): the same event (company and sequence), the same operation text and
fragments, the same values of the variables used below the root field (the root field's own arguments only
choose which events are streamed: `after`, `projectId`), and the same visibility scope, which captures every
viewer-dependent input of the selection: the company, the viewer's company-level flags (admin, approver, ERP
permission) and their access to the event's project (permission level and grants: viewerCan, viewerPermission).
Fields whose answer depends on WHO asks (PERSONAL_FIELDS) add the user to the key when selected.

What stays per subscriber: whether the event is sent at all (resolvers.subscriptions checks visibility and
the project filter before yielding it), and the access it recorded at its last permission read, which the
executing subscriber's loaders are seeded with so the shared answer is exactly what that scope gives.

A result with errors is never shared: the others execute for themselves, as they would have. Nor is one
older than `max_age`: a subscriber replaying an old event later reads the rows as they are then, as it would
on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, Awaitable, Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from graphql import ExecutionResult, FieldNode, print_ast
from graphql.language import VariableNode, Visitor, visit
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from persistence.reads import ReadStore
from resolvers.planned_execution import PlannedExecutor

# Fields whose answer depends on the viewer's identity, not only on their rights: selecting one makes the
# key per user. A new field of that kind, reachable from a subscription, must be listed here.
PERSONAL_FIELDS = frozenset({"notificationSettings"})

Key = tuple[Hashable, ...]


@dataclass(frozen=True)
class LiveScope:
    """Set on the context by a subscription just before it yields `event`: what its answer depends on."""

    event: object  # the record yielded (the executor checks its root value wraps this very object)
    key: Key  # company, sequence, company-level flags, access to the event's project
    user_id: str


class SharedExecutions:
    """In-flight and recent shared results, bounded by count and age."""

    def __init__(self, capacity: int = 4096, max_age: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._max_age = max_age
        self._clock = clock
        self._results: OrderedDict[Key, asyncio.Future[ExecutionResult]] = OrderedDict()
        self._started: dict[Key, float] = {}
        self.executed = 0  # executions run (for tests and the bench)
        self.shared = 0  # answers taken from another subscriber's execution

    async def run(self, key: Key, execute: Callable[[], Awaitable[ExecutionResult]]) -> ExecutionResult:
        found = self._results.get(key)
        if found is not None and self._clock() - self._started[key] > self._max_age:
            self._forget(key, found)
            found = None
        if found is not None:
            if not found.done():
                await asyncio.wait([found])  # not the future itself: its owner's cancellation is not ours
            if not found.cancelled() and found.exception() is None and not found.result().errors:
                self.shared += 1
                return found.result()
            return await self._execute(execute)
        future: asyncio.Future[ExecutionResult] = asyncio.get_running_loop().create_future()
        self._results[key] = future
        self._started[key] = self._clock()
        while len(self._results) > self._capacity:
            oldest, _ = self._results.popitem(last=False)
            del self._started[oldest]
        try:
            result = await self._execute(execute)
        except BaseException:
            future.cancel()
            self._forget(key, future)
            raise
        future.set_result(result)
        if result.errors:
            self._forget(key, future)
        return result

    async def _execute(self, execute: Callable[[], Awaitable[ExecutionResult]]) -> ExecutionResult:
        self.executed += 1
        return await execute()

    def _forget(self, key: Key, future: asyncio.Future[ExecutionResult]) -> None:
        if self._results.get(key) is future:
            del self._results[key]
            del self._started[key]


@dataclass(frozen=True)
class _Document:
    """What of a subscription's document decides the answer to one event, computed once per subscription."""

    text: str  # the operation and its fragments, printed
    variables: tuple[str, ...]  # the variables used below the root fields
    personal: bool


class _Usage(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.variables: set[str] = set()
        self.personal = False

    def enter_variable(self, node: VariableNode, *_args: Any) -> None:
        self.variables.add(node.name.value)

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value in PERSONAL_FIELDS:
            self.personal = True


_DOCUMENTS: OrderedDict[tuple[str, str | None], _Document] = OrderedDict()
DOCUMENTS_KEPT = 256


def _document_of(executor: StrawberryGraphQLCoreExecutionContext) -> _Document:
    """By the document's text when the parser kept it (it does by default): thousands of subscriptions of
    the same document walk and print it once, not once each."""
    operation = executor.operation
    source = operation.loc.source.body if operation.loc is not None else None
    if source is None:
        return _analyse(executor)
    key = (source, operation.name.value if operation.name is not None else None)
    found = _DOCUMENTS.get(key)
    if found is None:
        found = _DOCUMENTS[key] = _analyse(executor)
        while len(_DOCUMENTS) > DOCUMENTS_KEPT:
            _DOCUMENTS.popitem(last=False)
    return found


def _analyse(executor: StrawberryGraphQLCoreExecutionContext) -> _Document:
    usage = _Usage()
    for selection in executor.operation.selection_set.selections:
        if isinstance(selection, FieldNode):  # the root field: its arguments choose events, not answers
            for directive in selection.directives or ():
                visit(directive, usage)
            if selection.selection_set is not None:
                visit(selection.selection_set, usage)
        else:
            visit(selection, usage)
    fragments = [executor.fragment_definitions[name] for name in sorted(executor.fragment_definitions)]
    for fragment in fragments:
        visit(fragment, usage)
    text = "\n".join(print_ast(node) for node in [executor.operation, *fragments])
    return _Document(text, tuple(sorted(usage.variables)), usage.personal)


def _stable(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)


# The executor of the subscription whose event stream is starting in this task: set when graphql-core wraps
# the stream (just before the stream's first step, in the same task), read by the stream when it starts, so
# that it can have its events executed by resolvers.live_fanout.
subscription_executor: ContextVar[SharingExecutor | None] = ContextVar("budgetbridge_subscription", default=None)


class SharingExecutor(PlannedExecutor):
    """The planned executor (resolvers.planned_execution), with subscription events answered through
    SharedExecutions."""

    _document: _Document | None = None
    _answer_key: tuple[str, tuple[tuple[str, bytes], ...], bool] | None = None  # the document's part of keys

    def build_per_event_executor(self, payload: Any) -> Any:
        self._analysed()  # on the subscription's executor: every event's copy has it
        return super().build_per_event_executor(payload)

    def cancellable_iterable(self, iterable: AsyncIterable[Any]) -> AsyncIterable[Any]:
        subscription_executor.set(self)
        return super().cancellable_iterable(iterable)

    def _analysed(self) -> _Document | None:
        if self._document is None and self.operation.selection_set is not None:
            self._document = _document_of(self)
        return self._document

    def shared_key_of(self, scope: LiveScope) -> Key | None:
        """The key of this subscription's answer to `scope.event`: equal keys, equal answers."""
        found = self._answer_key
        if found is None:
            document = self._analysed()
            if document is None:
                return None
            coerced = self.variable_values.coerced
            variables = tuple((name, _stable(coerced.get(name))) for name in document.variables)
            found = self._answer_key = (document.text, variables, document.personal)  # the same for every event
        text, variables, personal = found
        return text, variables, scope.key, scope.user_id if personal else None

    def execute_operation(self, serially: bool | None = None) -> Any:
        found = self._shared_key()
        reads = self._reads()
        if found is None and reads is None:
            return super().execute_operation(serially)
        inner = super().execute_operation

        async def execute() -> ExecutionResult:
            # An operation (or one event of a subscription) reads on one connection, returned when it is done;
            # a mutation's unit of work borrows it (persistence.reads.ReadSession.lend).
            scope = contextlib.nullcontext() if reads is None else reads.session()
            async with scope:
                result: Any = inner(serially)
                done: ExecutionResult = await result if self.is_awaitable(result) else result
                return done

        if found is None:
            return execute()
        executions, key = found
        return executions.run(key, execute)

    def _reads(self) -> ReadStore | None:
        reads = getattr(getattr(self.context_value, "services", None), "reads", None)
        return reads if isinstance(reads, ReadStore) else None

    def _shared_key(self) -> tuple[SharedExecutions, Key] | None:
        context, document = self.context_value, self._document
        scope: LiveScope | None = getattr(context, "live_scope", None)
        if document is None or scope is None or getattr(self.root_value, "record", None) is not scope.event:
            return None
        executions: SharedExecutions | None = getattr(context.services, "shared_executions", None)
        key = self.shared_key_of(scope)
        if executions is None or key is None:
            return None
        return executions, key

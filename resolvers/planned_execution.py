"""Planned execution: graphql-core's executor with a direct path for the plain parts of a selection.

graphql-core executes every field the same way: a resolve-info object, the resolver through strawberry's
wrapper, an awaitable check, then value completion by type. That costs about 10 us per field, so a page of
500 budget lines with ten fields each spends most of its time there, although almost every one of those
fields is a plain attribute of an object already built from rows (strawberry marks such a field's resolver
`_is_default`).

So, once per selection set and request, a plan is made: for each field whose whole sub-selection is plain
(default resolvers, no arguments, no directives, object types whose type check ignores the resolve info,
leaf values of ordinary Python types), a function that builds its JSON value straight from the object. The
other fields (resolvers, loaders, abstract types, @defer/@stream) run through graphql-core as before, and
their children are planned again in turn.

graphql-core stays the reference: whenever a planned field meets anything its plan does not expect (a null
in a non-null position, an exception instance, an awaitable, a value of another type), it gives up on that
field and graphql-core executes it again from the start, which is exactly what happens without a plan.
Plain fields are attribute reads, so executing one twice changes nothing. tests/resolvers/
test_planned_execution.py compares both executions over every field of the schema.
"""

from __future__ import annotations

import datetime
import enum
import keyword
from collections import OrderedDict
from collections.abc import Callable, Mapping
from decimal import Decimal
from operator import attrgetter
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.language import BREAK, Visitor, visit
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

DOCUMENTS_PLANNED = 512  # as many as schema.build keeps parsed (DOCUMENTS_KEPT)

Complete = Callable[[Any], Any]
Read = Callable[[Any], Any]
# (the field's value read off its parent, completion of that value, the attribute read when it is one)
FieldPlan = tuple[Read, Complete, str | None]
Key = tuple[Any, ...]  # (parent type, id of each field node)
Kept = tuple[tuple[Any, ...], FieldPlan | None]  # (the field nodes, kept alive, their plan)

# Leaf values the direct path coerces itself; anything else (awaitables, exceptions, exotic values) is left
# to graphql-core, which knows what to do with it.
_PLAIN_LEAVES = (str, bool, int, float, Decimal, datetime.datetime, datetime.date, enum.Enum)


class _GiveUp(Exception):
    """The plan does not cover this value: graphql-core executes the field instead."""


_GIVE_UP = _GiveUp()


def _absent(non_null: bool) -> None:
    if non_null:  # graphql-core reports this one, with its path
        raise _GIVE_UP


def _list_of(item: Complete, non_null: bool) -> Complete:
    def complete(value: Any) -> Any:
        if value is None or value is Undefined:
            return _absent(non_null)
        if type(value) is not list and type(value) is not tuple:  # generators, async iterables: graphql-core
            raise _GIVE_UP
        return [item(element) for element in value]

    return complete


# graphql-core's own scalars answer a value of exactly this type with the value itself
_AS_IS: dict[GraphQLLeafType, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}


def _leaf(type_: GraphQLLeafType, non_null: bool) -> Complete:
    coerce = type_.coerce_output_value
    as_is = _AS_IS.get(type_)

    def complete(value: Any) -> Any:
        if type(value) is as_is:
            return value
        if value is None or value is Undefined:
            return _absent(non_null)
        if not isinstance(value, _PLAIN_LEAVES):
            raise _GIVE_UP
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise _GIVE_UP
        return coerced

    return complete


def _object(type_check: Callable[[Any, Any], Any] | None, fields: list[tuple[str, FieldPlan]], non_null: bool
            ) -> Complete:
    """One function per object of the selection, written out: a dict display of its fields, each read by
    attribute where it can be (no loop, no call per field but its completion)."""
    namespace: dict[str, Any] = {"Undefined": Undefined, "absent": _absent, "GIVE_UP": _GIVE_UP, "check": type_check}
    entries = []
    for index, (key, (read, complete, attribute)) in enumerate(fields):
        namespace[f"complete{index}"] = complete
        if attribute is not None:
            value = f"value.{attribute}"
        else:
            namespace[f"read{index}"] = read
            value = f"read{index}(value)"
        entries.append(f"{key!r}: complete{index}({value})")
    source = "\n".join([
        "def complete(value):",
        "    if value is None or value is Undefined:",
        f"        return absent({non_null})",
        *(["    if check(value, None) is not True:", "        raise GIVE_UP"] if type_check is not None else []),
        f"    return {{{', '.join(entries)}}}",
    ])
    # Only our own text is compiled: response keys are GraphQL names, attributes checked identifiers.
    exec(compile(source, "<planned object>", "exec"), namespace)
    completion: Complete = namespace["complete"]
    return completion


def _type_name(name: str) -> Read:
    def read(_source: Any) -> str:
        return name

    return read


def _reader(field_def: GraphQLField) -> tuple[Read, str | None]:
    """How a plain field's value is read: strawberry's own resolver reads the attribute through two calls;
    reading the attribute itself does the same, when strawberry's default resolver is getattr."""
    definition = (field_def.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if isinstance(definition, StrawberryField) and definition.base_resolver is None and (
        definition.default_resolver is getattr
    ):
        name = definition.python_name
        if name.isidentifier() and not keyword.iskeyword(name):
            return attrgetter(name), name
    resolve = field_def.resolve
    assert resolve is not None

    def read(source: Any) -> Any:
        return resolve(source, None)

    return read, None


def _strawberry_type_check(check: Callable[..., Any]) -> bool:
    """strawberry's generated is_type_of (an isinstance test) never reads the resolve info; a custom one might."""
    return check.__qualname__.endswith("_get_is_type_of.<locals>.is_type_of")


class _KeptPlans:
    """Field plans kept across requests, per document, for documents whose plans cannot depend on variables.

    A plan depends on its parent type, its field nodes (with their sub-selections and the document's
    fragments) and, through @skip/@include/@defer, on variables. For a document without directives, the
    parsed document's nodes (the document cache and the trusted documents hand out the same ones each time)
    name the plan: the next request with the same document builds none. Kept per operation, for as many
    operations as schema.build keeps parsed documents, so memory is bounded by documents, not by fields.
    """

    def __init__(self, capacity: int = DOCUMENTS_PLANNED) -> None:
        self._capacity = capacity
        # id(operation) -> (the operation, kept alive so its id stays its own; its plans, None: not kept)
        self._documents: OrderedDict[int, tuple[OperationDefinitionNode, dict[Key, Kept] | None]] = OrderedDict()

    def of(self, operation: OperationDefinitionNode, fragments: Mapping[str, Any]) -> dict[Key, Kept] | None:
        """The kept plans of this operation's document; None when they would depend on variables."""
        found = self._documents.get(id(operation))
        if found is not None and found[0] is operation:
            self._documents.move_to_end(id(operation))
            return found[1]
        nodes = [operation, *(getattr(f, "definition", f) for f in fragments.values())]
        plans: dict[Key, Kept] | None = None if any(_has_directive(node) for node in nodes) else {}
        self._documents[id(operation)] = (operation, plans)
        if len(self._documents) > self._capacity:
            self._documents.popitem(last=False)
        return plans


class _Directives(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_directive(self, *_args: Any) -> Any:
        self.found = True
        return BREAK


def _has_directive(node: Any) -> bool:
    finder = _Directives()
    visit(node, finder)
    return finder.found


KEPT_PLANS = _KeptPlans()


class PlannedExecutor(StrawberryGraphQLCoreExecutionContext):
    """strawberry's graphql-core executor, building plain sub-selections directly (see the module doc)."""

    planned = True  # False: graphql-core executes everything (the reference, for the comparison tests)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Keyed by id() of graphql-core's memoized field groups, each kept alive beside its plan so that its
        # id cannot be reused during this execution.
        self._field_plans: dict[int, tuple[Any, FieldPlan | None]] = {}
        self._set_plans: dict[int, tuple[Any, list[tuple[str, Any, FieldPlan | None]] | None]] = {}
        self._kept: dict[Key, Kept] | None = None  # this document's plans kept across requests, if it has any
        self._kept_looked_up = False

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        plans = self._plan_set(parent_type, grouped_field_set)
        if plans is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, plan in plans:
                if plan is not None:
                    read, complete, _attribute = plan
                    try:
                        results[response_name] = complete(read(source_value))
                        continue
                    except Exception:  # graphql-core executes it again, and reports what it finds its own way
                        pass
                result = self.execute_field(
                    parent_type, source_value, field_details_list, Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        # The rest, as graphql-core does it: the awaitable fields concurrently, then the same dict.
        return self._gather_fields(results, awaitable_fields)

    async def _gather_fields(self, results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
        if len(awaitable_fields) == 1:
            field = awaitable_fields[0]
            results[field] = await results[field]
        else:
            awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
            results.update(zip(awaitable_fields, awaited, strict=True))
        return results

    def _plan_set(
        self, parent_type: GraphQLObjectType, grouped_field_set: Any
    ) -> list[tuple[str, Any, FieldPlan | None]] | None:
        """The fields of one selection set with a plan each (None: graphql-core's); None when none has one."""
        manager = self.middleware_manager  # strawberry always passes one; it has middlewares only for extensions
        if not self.planned or (manager is not None and manager.middlewares):  # that hook every field's resolve
            return None
        found = self._set_plans.get(id(grouped_field_set))
        if found is not None:
            return found[1]
        plans: list[tuple[str, Any, FieldPlan | None]] | None = [
            (name, details, self._plan_field(parent_type, details)) for name, details in grouped_field_set.items()
        ]
        if all(plan is None for _name, _details, plan in plans or ()):
            plans = None
        self._set_plans[id(grouped_field_set)] = (grouped_field_set, plans)
        return plans

    def _plan_field(self, parent_type: GraphQLObjectType, field_details_list: Any) -> FieldPlan | None:
        found = self._field_plans.get(id(field_details_list))
        if found is not None:
            return found[1]
        if not self._kept_looked_up:
            self._kept, self._kept_looked_up = KEPT_PLANS.of(self.operation, self.fragment_definitions), True
        if self._kept is not None:
            nodes = tuple(details.node for details in field_details_list)
            key = (parent_type, *map(id, nodes))
            kept = self._kept.get(key)
            if kept is None:
                plan = self._make_field_plan(parent_type, field_details_list)
                self._kept[key] = (nodes, plan)
            else:
                plan = kept[1]
        else:
            plan = self._make_field_plan(parent_type, field_details_list)
        self._field_plans[id(field_details_list)] = (field_details_list, plan)
        return plan

    def _make_field_plan(self, parent_type: GraphQLObjectType, field_details_list: Any) -> FieldPlan | None:
        if any(details.node.directives or details.node.arguments for details in field_details_list):
            return None  # @stream and friends, or arguments a default resolver would not read anyway
        name = field_details_list[0].node.name.value
        if name == "__typename":
            return _type_name(parent_type.name), _leaf(GraphQLString, True), None
        field_def = self.schema.get_field(parent_type, name)
        resolve = None if field_def is None else field_def.resolve
        if resolve is None or field_def is None or field_def.args or not getattr(resolve, "_is_default", False):
            return None
        complete = self._completion(field_def.type, field_details_list)
        if complete is None:
            return None
        read, attribute = _reader(field_def)
        return read, complete, attribute

    def _completion(self, type_: GraphQLOutputType, field_details_list: Any, non_null: bool = False
                    ) -> Complete | None:
        if is_non_null_type(type_):
            return self._completion(type_.of_type, field_details_list, True)
        if is_list_type(type_):
            item = self._completion(type_.of_type, field_details_list)
            return None if item is None else _list_of(item, non_null)
        if is_leaf_type(type_):
            return _leaf(type_, non_null)
        if not is_object_type(type_):
            return None  # interfaces and unions: graphql-core resolves the runtime type
        assert isinstance(type_, GraphQLObjectType)
        type_check = type_.is_type_of
        if type_check is not None and not _strawberry_type_check(type_check):
            return None
        grouped_field_set, defer_usages, forbidden = self.collect_subfields(type_, field_details_list)
        if defer_usages or forbidden:
            return None
        fields: list[tuple[str, FieldPlan]] = []
        for name, details in grouped_field_set.items():
            plan = self._plan_field(type_, details)
            if plan is None:
                return None  # the object is built by graphql-core; its plain fields are planned there
            fields.append((name, plan))
        return _object(type_check, fields, non_null)

"""What an operation may ask for, decided from the document alone, before graphql-core validates it and
before anything executes.

One walk over the document: every fragment is summarised once (memoised by name and, for fragments on a
connection type, by page size), and a spread adds the fragment's summary instead of walking it again. So a
document whose fragments each spread the previous one twice (2^n paths through n fragments) costs n steps,
not 2^n, and is refused for what its paths would add up to.

Refused with `BAD_USER_INPUT`, the first limit hit named:
- depth: nesting of fields (introspection fields do not count, as in strawberry's depth limiter);
- list items: every list an operation can return, with its worst case: a page field charges `first` (or its
  default) and multiplies what its `edges` select; an unpaged list charges its documented maximum
  (`UNPAGED_MAXIMA`; introspection lists their real maxima in this schema). Aliases, nesting and spreads
  multiply. Scalar lists are not charged;
- selections: fields counted once per path that reaches them (what execution and validation would touch);
- repeats: one response name selected too often in one selection set (graphql-core's
  OverlappingFieldsCanBeMerged compares such fields pairwise, quadratic in their number);
- root mutation fields per operation;
- fields nested too deeply to walk (beyond any depth limit), and fragment cycles.

Unknown fields, types and fragments are skipped here: graphql-core's validation reports them afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NullValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from resolvers.context import QueryLimits
from resolvers.pagination import DEFAULT_UNPAGED_MAXIMUM, UNPAGED_MAXIMA, QueryLimitError

# Fragment spreads, inline fragments and fields nested inside each other, beyond which the walk stops.
MAX_NESTING = 100
_CAP = 1 << 62  # sums saturate here: a refused document need not be counted exactly


def _add(a: int, b: int) -> int:
    return min(a + b, _CAP)


def _mul(a: int, b: int) -> int:
    return min(a * b, _CAP)


@dataclass
class Summary:
    """What one selection set adds up to, per object it is selected on."""

    depth: int = 0
    items: int = 0
    selections: int = 0
    names: dict[str, int] = field(default_factory=dict)  # response name -> times selected at this level

    def merge(self, other: Summary, times: int = 1) -> None:
        """Add a fragment's selections, as if written here `times` times."""
        self.depth = max(self.depth, other.depth)
        self.items = _add(self.items, _mul(other.items, times))
        self.selections = _add(self.selections, _mul(other.selections, times))
        for name, count in other.names.items():
            self.names[name] = _add(self.names.get(name, 0), _mul(count, times))


class _Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _list_sizes_of_introspection(schema: GraphQLSchema) -> dict[str, int]:
    """The longest each introspection list can be in this schema (charged like any other list)."""
    types = list(schema.type_map.values())
    fields_of = [t.fields for t in types if isinstance(t, (GraphQLObjectType, GraphQLInterfaceType))]
    input_fields = [len(getattr(t, "fields", {})) for t in types if type(t).__name__ == "GraphQLInputObjectType"]
    args = [len(f.args) for fs in fields_of for f in fs.values()] + [len(d.args) for d in schema.directives]
    return {
        "__Schema.types": len(types),
        "__Schema.directives": len(schema.directives),
        "__Type.fields": max((len(fs) for fs in fields_of), default=0),
        "__Type.inputFields": max(input_fields, default=0),
        "__Type.enumValues": max((len(getattr(t, "values", {})) for t in types), default=0),
        "__Type.interfaces": max((len(getattr(t, "interfaces", ())) for t in types), default=0),
        "__Type.possibleTypes": max((len(schema.get_possible_types(t)) for t in types
                                     if isinstance(t, GraphQLInterfaceType)), default=0),
        "__Field.args": max(args, default=0),
        "__Directive.args": max((len(d.args) for d in schema.directives), default=0),
        "__Directive.locations": 20,
    }


class CostAnalysis:
    """Built once per schema; `check` runs per request (variables change page sizes)."""

    def __init__(self, schema: GraphQLSchema, maxima: Mapping[str, int] | None = None) -> None:
        self.schema = schema
        self.maxima = {**_list_sizes_of_introspection(schema), **(maxima or UNPAGED_MAXIMA)}

    def check(
        self,
        document: DocumentNode,
        limits: QueryLimits,
        variables: Mapping[str, Any] | None = None,
    ) -> list[GraphQLError]:
        """No errors, or the one limit the document exceeds (BAD_USER_INPUT). Every operation and fragment of
        the document is checked, whichever one runs: graphql-core's validation walks them all."""
        walk = _Walk(self, document, limits, variables or {})
        try:
            walk.run()
        except _Refused as refused:
            return [QueryLimitError(refused.message)]
        except RecursionError:
            return [QueryLimitError("the query is nested too deeply")]
        return []

    def count_visits(self, document: DocumentNode) -> int:
        """How many selection nodes a whole walk looks at, with no limit stopping it early (the tests show it
        grows with the document, not with its paths)."""
        unlimited = QueryLimits(
            max_depth=_CAP, max_items=_CAP, max_selections=_CAP, max_field_repeats=_CAP, max_mutations=_CAP
        )
        walk = _Walk(self, document, unlimited, {})
        walk.run()
        return walk.visits


class _Walk:
    def __init__(
        self, analysis: CostAnalysis, document: DocumentNode, limits: QueryLimits, variables: Mapping[str, Any]
    ) -> None:
        self.analysis = analysis
        self.schema = analysis.schema
        self.maxima = analysis.maxima
        self.limits = limits
        self.variables = variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        self.memo: dict[tuple[str, int | None], Summary] = {}
        self.in_progress: set[tuple[str, int | None]] = set()
        self.defaults: dict[str, Any] = {}
        self.visits = 0
        self.nesting = 0

    def run(self) -> None:
        # Every definition is checked, used or not: graphql-core's validation walks them all. Fragments are
        # summarised after the fragments they spread, so a spread always finds its summary memoised and
        # the walk never recurses along a chain of spreads.
        for name in self.spread_order():
            self.fragment(name, None)
        for operation in self.operations:
            self.defaults = {
                v.variable.name.value: v.default_value for v in operation.variable_definitions or ()
            }
            root = self.schema.get_root_type(operation.operation)
            if root is None:
                continue
            summary = self.selection_set(operation.selection_set, root, None)
            self.enforce(summary)
            if operation.operation == OperationType.MUTATION and len(summary.names) > self.limits.max_mutations:
                raise _Refused(
                    f"an operation may run at most {self.limits.max_mutations} mutations "
                    f"(this one has {len(summary.names)}): send them in separate requests"
                )

    def spread_order(self) -> list[str]:
        """Fragment names, each after every fragment it spreads (an iterative depth-first post-order)."""
        spreads = {name: _spreads_in(definition.selection_set) for name, definition in self.fragments.items()}
        order: list[str] = []
        state: dict[str, int] = {}  # 1 = on the path, 2 = done
        for start in self.fragments:
            if state.get(start):
                continue
            stack: list[tuple[str, int]] = [(start, 0)]
            state[start] = 1
            while stack:
                name, index = stack[-1]
                children = spreads[name]
                if index < len(children):
                    stack[-1] = (name, index + 1)
                    child = children[index]
                    if child not in self.fragments:
                        continue
                    if state.get(child) == 1:
                        raise _Refused(f"the fragment {child!r} spreads itself")
                    if not state.get(child):
                        state[child] = 1
                        stack.append((child, 0))
                else:
                    stack.pop()
                    state[name] = 2
                    order.append(name)
        return order

    def enforce(self, summary: Summary) -> None:
        limits = self.limits
        if summary.depth > limits.max_depth:
            raise _Refused(f"the query is nested too deeply (at most {limits.max_depth} levels)")
        if summary.items > limits.max_items:
            raise _Refused(
                "the query asks for too many objects at once (at most "
                f"{limits.max_items} list items per operation): ask for smaller pages with first/after"
            )
        if summary.selections > limits.max_selections:
            raise _Refused(
                f"the query selects too many fields (at most {limits.max_selections}, counting each "
                "fragment spread): select fewer fields or spread fragments fewer times"
            )
        for name, count in summary.names.items():
            if count > limits.max_field_repeats:
                raise _Refused(
                    f"the field {name!r} is selected {count} times in one selection set (at most "
                    f"{limits.max_field_repeats}): use aliases or fewer fragment spreads"
                )

    def fragment(self, name: str, page: int | None) -> Summary | None:
        definition = self.fragments.get(name)
        if definition is None:
            return None  # validation reports the unknown fragment
        parent = self.schema.get_type(definition.type_condition.name.value)
        if not isinstance(parent, (GraphQLObjectType, GraphQLInterfaceType)):
            return None
        key = (name, page if _is_connection(parent) else None)
        found = self.memo.get(key)
        if found is not None:
            return found
        if key in self.in_progress:
            raise _Refused(f"the fragment {name!r} spreads itself")
        self.in_progress.add(key)
        summary = self.selection_set(definition.selection_set, parent, key[1])
        self.in_progress.discard(key)
        self.enforce(summary)
        self.memo[key] = summary
        return summary

    def selection_set(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, page: int | None
    ) -> Summary:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise _Refused(f"fields and fragments are nested too deeply (at most {MAX_NESTING} levels)")
        summary = Summary()
        for selection in selection_set.selections:
            self.visits += 1
            if isinstance(selection, FieldNode):
                self.add_field(summary, selection, parent, page)
            elif isinstance(selection, FragmentSpreadNode):
                spread = self.fragment(selection.name.value, page)
                if spread is not None:
                    summary.merge(spread)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    target = self.schema.get_type(selection.type_condition.name.value) or parent
                if isinstance(target, (GraphQLObjectType, GraphQLInterfaceType)):
                    summary.merge(self.selection_set(selection.selection_set, target, page))
        self.nesting -= 1
        self.enforce(summary)
        return summary

    def add_field(self, summary: Summary, node: FieldNode, parent: GraphQLNamedType, page: int | None) -> None:
        response_name = node.alias.value if node.alias else node.name.value
        summary.names[response_name] = _add(summary.names.get(response_name, 0), 1)
        summary.selections = _add(summary.selections, 1)
        name = node.name.value
        if name == "__typename":
            return
        if name == "__schema":
            field_type: Any = self.schema.get_type("__Schema")
        elif name == "__type":
            field_type = self.schema.get_type("__Type")
        else:
            fields = getattr(parent, "fields", None)
            definition = fields.get(name) if fields is not None else None
            if definition is None:
                return  # validation reports the unknown field
            field_type = definition.type
        named = get_named_type(field_type)
        introspection = name.startswith("__") or parent.name.startswith("__")
        own_items, times, child_page = 0, 1, None
        if isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)) and _is_connection(named):
            child_page = self.page_size(node, parent, name)
            own_items = child_page
        elif _is_list(field_type) and isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            if name == "edges" and _is_connection(parent) and page is not None:
                times = page  # the page's items were charged on the connection field
            else:
                times = own_items = self.maxima.get(f"{parent.name}.{name}", DEFAULT_UNPAGED_MAXIMUM)
        summary.items = _add(summary.items, own_items)
        if node.selection_set is None or not isinstance(named, (GraphQLObjectType, GraphQLInterfaceType)):
            return  # a leaf adds no depth (as in strawberry's depth limiter: `{ viewer { id } }` is 1)
        child = self.selection_set(node.selection_set, named, child_page)
        summary.depth = max(summary.depth, child.depth if introspection else child.depth + 1)
        summary.items = _add(summary.items, _mul(child.items, times))
        summary.selections = _add(summary.selections, child.selections)

    def page_size(self, node: FieldNode, parent: GraphQLNamedType, name: str) -> int:
        """The page a connection field returns: its `first` argument, else the field's default."""
        definition = getattr(parent, "fields", {}).get(name)
        argument = definition.args.get("first") if definition is not None else None
        default = argument.default_value if argument is not None else None
        value: Any = None
        for arg in node.arguments or ():
            if arg.name.value != "first":
                continue
            literal = arg.value
            if isinstance(literal, VariableNode):
                variable = literal.name.value
                if variable in self.variables:
                    value = self.variables[variable]
                else:
                    fallback = self.defaults.get(variable)
                    value = int(fallback.value) if isinstance(fallback, IntValueNode) else None
            elif isinstance(literal, IntValueNode):
                value = int(literal.value)
            elif isinstance(literal, NullValueNode):
                value = None
        if value is None:
            value = default if isinstance(default, int) else 0
        if not isinstance(value, int) or isinstance(value, bool):
            return 0  # not an Int: validation or coercion refuses it
        return max(value, 0)


def _spreads_in(selection_set: SelectionSetNode) -> list[str]:
    """The fragment names spread anywhere inside a selection set (iteratively: nesting may be deep)."""
    found: list[str] = []
    pending = [selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                found.append(selection.name.value)
            elif isinstance(selection, (FieldNode, InlineFragmentNode)) and selection.selection_set is not None:
                pending.append(selection.selection_set)
    return found


def _is_list(field_type: Any) -> bool:
    if isinstance(field_type, GraphQLNonNull):
        field_type = field_type.of_type
    return isinstance(field_type, GraphQLList)


def _is_connection(named: GraphQLNamedType) -> bool:
    return named.name.endswith("Connection") and "edges" in getattr(named, "fields", {})

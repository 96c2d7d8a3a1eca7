"""The query response cache of one server process: encoded answers kept in memory, served again while the
company has not changed.

Key: a digest of everything an answer depends on besides the stored data:
- the viewer as authenticated: user id, company, the company-level rights and token scope, and what the
  request's Viewer carries from the user and company rows (name, email, currency, ERP connector and
  settings). The user id is always in it: the project grants that decide visibility, `viewer`, `viewerCan`,
  `viewerPermission` and `notificationSettings` are per user, and are read lazily, so a key of "role plus
  grants" would need the grants read first. Two users never share an entry, so scopes never do;
- the document text (a trusted document's id resolves to its text), operationName, the canonical variables
  and extensions;
- the response media type (the bytes are served as stored, with their Content-Type);
- today's date (UTC, from the services' clock): `sendBlockers` checks a send against it, and no other field
  reads the clock.

Validator: the company's (event_sequence, revision), one primary-key lookup per request
(ReadStore.company_version). Every change of the budget workflow appends an event in its own transaction,
and every other write a query can see bumps the revision in its transaction (persistence.revisions), so an
equal pair means an unchanged company. It is read before execution: an answer computed while a change
commits is kept under the older pair and never served once the newer pair is visible. Each process has its
own cache; the pair lives in the shared database, so several processes stay correct.

What is kept: only queries, only complete answers (data and no errors), as the exact response bytes. The
same key and pair give the ETag (weak: two processes may encode an answer computed across a commit
differently), so a GET with a matching If-None-Match answers 304 after the one lookup, stored or not.

Memory: least recently used entries are evicted to keep the encoded bytes (plus a fixed overhead per entry)
within the budget; an answer larger than the budget is not kept. Budget 0: no cache and no ETags.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from graphql import GraphQLError, OperationType, get_operation_ast, parse

from resolvers.context import Viewer

# What an entry costs besides its body: the key digest, the tuple, the OrderedDict node, the ETag string.
ENTRY_OVERHEAD = 256
# How many documents' operation kinds are remembered (a digest and a bool each).
KNOWN_DOCUMENTS = 4096

Version = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Entry:
    version: Version
    body: bytes
    etag: str

    @property
    def size(self) -> int:
        return len(self.body) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cacheable request: its key, the company's pair now, the ETag of an answer under it, and the stored
    answer when there is one for this pair."""

    key: bytes
    version: Version
    etag: str
    entry: Entry | None


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def request_key(
    viewer: Viewer, media: str, text: str, operation_name: Any, variables: Any, extensions: Any, today: date
) -> bytes:
    actor = viewer.actor
    head = _canonical([
        actor.user_id, actor.company_id, actor.is_company_admin, actor.is_accounting_approver,
        int(actor.erp_permission), actor.scope.value if actor.scope is not None else None,
        viewer.name, viewer.email, viewer.currency, viewer.erp_connector, viewer.erp_settings,
        media, operation_name, variables, extensions, today.isoformat(),
    ])
    digest = hashlib.blake2b(head, digest_size=32)
    digest.update(b"\x00")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.digest()


def etag_of(key: bytes, version: Version) -> str:
    tag = hashlib.blake2b(key + b"%d.%d" % version, digest_size=16).hexdigest()
    return f'W/"{tag}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): `*`, or any listed tag with the same opaque part."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(","))


class ResponseCache:
    """LRU by bytes, used from the event loop of one process: no method awaits, so none interleaves."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget = max(0, budget_bytes)
        self.bytes = 0
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._kinds: OrderedDict[bytes, bool] = OrderedDict()
        self.hits = self.misses = self.stored = self.evicted = 0

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _document_key(text: str, operation_name: Any) -> bytes:
        name = operation_name if isinstance(operation_name, str) else None
        named = _canonical(name) + b"\x00" + text.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(named, digest_size=16).digest()

    def known_query(self, text: str, operation_name: Any, trusted: Mapping[str, Any]) -> bool | None:
        """Whether the request runs a query, when that is known without parsing: a trusted document (parsed
        at start), or a document this process already answered. None: not known yet."""
        if text in trusted:
            return self._kind(trusted[text], operation_name)
        return self._kinds.get(self._document_key(text, operation_name))

    def learn_query(self, text: str, operation_name: Any, trusted: Mapping[str, Any]) -> bool:
        """The same, once graphql-core answered the document without errors: it parsed within the schema's
        token limit and validated, so parsing it again here costs no more (once per document)."""
        known = self.known_query(text, operation_name, trusted)
        if known is not None:
            return known
        try:
            result = self._kind(parse(text), operation_name)
        except GraphQLError:
            result = False
        self._kinds[self._document_key(text, operation_name)] = result
        while len(self._kinds) > KNOWN_DOCUMENTS:
            self._kinds.popitem(last=False)
        return result

    @staticmethod
    def _kind(document: Any, operation_name: Any) -> bool:
        name = operation_name if isinstance(operation_name, str) else None
        operation = get_operation_ast(document, name)
        return operation is not None and operation.operation == OperationType.QUERY

    def lookup(self, key: bytes, version: Version) -> Lookup:
        entry = self._entries.get(key)
        if entry is not None and entry.version != version:
            self._drop(key)  # the company changed since: never served again
            entry = None
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return Lookup(key, version, etag_of(key, version), entry)

    def store(self, lookup: Lookup, body: bytes) -> bool:
        """Keep an answer computed after `lookup` (its pair read before execution). False: too large."""
        entry = Entry(lookup.version, body, lookup.etag)
        if entry.size > self.budget:
            return False
        if lookup.key in self._entries:
            self._drop(lookup.key)
        self._entries[lookup.key] = entry
        self.bytes += entry.size
        self.stored += 1
        while self.bytes > self.budget:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evicted += 1
        return True

    def _drop(self, key: bytes) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size

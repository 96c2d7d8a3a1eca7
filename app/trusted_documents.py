"""Trusted documents: a `{hash: document}` manifest, as client build tools produce (GraphQL Codegen's
persisted documents, Relay's persisted queries), read, parsed and validated once at start.

A request names a document with `documentId` (body or GET parameter, bare or as `sha256:<hash>`) or with
`extensions.persistedQuery.sha256Hash` (APQ style). Modes:
- `off`: ids are not looked up (a request with only an id has no document);
- `allow` (default): ids are looked up, and arbitrary documents are still accepted;
- `require`: only documents of the manifest run; anything else is PERSISTED_QUERY_REQUIRED.
An id not in the manifest is PERSISTED_QUERY_NOT_FOUND. A manifest document skips the per-request parse
and validation (the query cost limits, which depend on variables, are still checked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, validate

MODES = ("off", "allow", "require")


class TrustedDocumentsError(ValueError):
    """The manifest cannot be used: one line naming the document at fault."""


class DocumentLookupError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TrustedDocuments:
    mode: str = "allow"
    by_id: Mapping[str, str] = field(default_factory=dict)
    # document text -> its parsed, validated document (what the schema extension reuses)
    parsed: Mapping[str, DocumentNode] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | None, mode: str, schema: GraphQLSchema, rules: Any = None) -> TrustedDocuments:
        if mode not in MODES:
            raise TrustedDocumentsError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        if not path:
            if mode == "require":
                raise TrustedDocumentsError("mode require needs a manifest (BUDGETBRIDGE_TRUSTED_DOCUMENTS)")
            return cls(mode=mode)
        try:
            manifest = orjson.loads(Path(path).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise TrustedDocumentsError(f"cannot read the manifest {path}: {exc}") from None
        if not isinstance(manifest, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()
        ):
            raise TrustedDocumentsError(f"{path} is not a JSON object of document id -> document text")
        by_id: dict[str, str] = {}
        parsed: dict[str, DocumentNode] = {}
        for document_id, text in manifest.items():
            try:
                document = parse(text)
            except GraphQLError as exc:
                raise TrustedDocumentsError(f"document {document_id}: {exc.message}") from None
            errors = validate(schema, document, rules)
            if errors:
                raise TrustedDocumentsError(f"document {document_id} is not valid: {errors[0].message}")
            by_id[_bare(document_id)] = text
            parsed[text] = document
        return cls(mode=mode, by_id=by_id, parsed=parsed)

    def resolve(self, query: object, document_id: object, extensions: object) -> str | None:
        """The document text a request runs (None: it names none). Raises DocumentLookupError."""
        requested = document_id if isinstance(document_id, str) and document_id else _apq_hash(extensions)
        if requested is not None and self.mode != "off":
            text = self.by_id.get(_bare(requested))
            if text is None:
                raise DocumentLookupError(
                    "PERSISTED_QUERY_NOT_FOUND", f"no trusted document has the id {requested!r}"
                )
            return text
        if not isinstance(query, str) or not query:
            return None
        if self.mode == "require" and query not in self.parsed:
            raise DocumentLookupError(
                "PERSISTED_QUERY_REQUIRED",
                "this server runs only its trusted documents: send a documentId instead of a query",
            )
        return query


def _bare(document_id: str) -> str:
    return document_id.removeprefix("sha256:")


def _apq_hash(extensions: object) -> str | None:
    if not isinstance(extensions, dict):
        return None
    persisted = extensions.get("persistedQuery")
    value = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
    return value if isinstance(value, str) and value else None


def sha256_id(text: str) -> str:
    """The id client tools give a document: the hex SHA-256 of its text."""
    return hashlib.sha256(text.encode()).hexdigest()

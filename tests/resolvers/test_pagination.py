"""Keyset cursors: opaque, they carry the sort values of the last row and come back exactly; anything else
is BAD_USER_INPUT "invalid cursor"."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from resolvers import pagination as p
from resolvers.pagination import QueryLimitError

AT = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def raw(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def test_a_cursor_carries_its_sort_values_back_exactly() -> None:
    cursor = p.encode("request.sent_at.desc", AT, "req_1")
    assert "=" not in cursor and "req_1" not in cursor  # opaque, URL-safe
    assert p.decode("request.sent_at.desc", cursor, p.timestamp, p.text) == (AT, "req_1")
    total = p.encode("request.total.asc", Decimal("-1234567890123.45"), "req_2")
    assert p.decode("request.total.asc", total, p.decimal, p.text) == (Decimal("-1234567890123.45"), "req_2")
    undecided = p.encode("request.decided_at.asc", None, "req_3")
    assert p.decode("request.decided_at.asc", undecided, p.optional(p.timestamp), p.text) == (None, "req_3")
    assert p.decode("line", p.encode("line", 7, "li_1"), p.integer, p.text) == (7, "li_1")
    assert p.decode("line", None, p.integer, p.text) is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "bzo1",  # the old offset cursor "o:5"
        base64.b64encode(b"\xff\xfe").decode(),
        raw("line", 7),  # too few values
        raw("line", 7, "li_1", "x"),  # too many
        raw("project", 7, "li_1"),  # another list's cursor
        raw("line", "7", "li_1"),  # wrong type
        raw("line", True, "li_1"),
        raw("line", 7, ""),
        raw("request.sent_at.desc", "2026-03-01T12:30:45", "r"),  # no time zone
        raw("request.sent_at.desc", "yesterday", "r"),
        raw("request.total.asc", "NaN", "r"),
        raw("request.total.asc", "12e", "r"),
        raw("request.sent_at.desc", None, "r"),  # only DECIDED_AT has NULLs
        base64.urlsafe_b64encode(b'{"kind": "line"}').decode(),
    ],
)
def test_anything_else_is_an_invalid_cursor(cursor: str) -> None:
    parsers = {
        "line": (p.integer, p.text),
        "request.sent_at.desc": (p.timestamp, p.text),
        "request.total.asc": (p.decimal, p.text),
    }
    for kind, expected in parsers.items():
        with pytest.raises(QueryLimitError, match="invalid cursor") as refused:
            p.decode(kind, cursor, *expected)
        assert refused.value.extensions == {"code": "BAD_USER_INPUT"}

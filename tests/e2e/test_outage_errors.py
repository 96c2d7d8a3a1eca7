"""Which exceptions mean "the database cannot be reached now" (HTTP 503) and which are bugs (500)."""

from __future__ import annotations

import errno
import socket

import pytest
from sqlalchemy.exc import InterfaceError, OperationalError

from app.errors import is_database_outage


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('127.0.0.1', 5432)"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        socket.gaierror(-2, "Name or service not known"),
        TimeoutError(),
        InterfaceError("SELECT 1", {}, Exception("connection is closed")),
    ],
)
def test_unreachable_database_errors_are_outages(error: BaseException) -> None:
    assert is_database_outage(error)
    wrapped = RuntimeError("while loading")
    wrapped.__cause__ = error
    assert is_database_outage(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        PermissionError(errno.EACCES, "Permission denied: '/srv/erp-drop/x.csv'"),
        FileNotFoundError(errno.ENOENT, "No such file"),
        OperationalError("SELECT nope", {}, Exception("no such column: nope")),
        ValueError("a bug"),
    ],
)
def test_bugs_and_file_errors_are_not_outages(error: BaseException) -> None:
    assert not is_database_outage(error)

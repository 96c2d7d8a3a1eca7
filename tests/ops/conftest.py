"""Operations tests: the real app over httpx (the end-to-end fixtures), and logs captured as the operator
would read them: what app.logs writes, parsed line by line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app import logs
from tests.e2e.conftest import app, client, running_app  # noqa: F401 - fixtures, by name

__all__ = ["CapturedLog", "captured_log"]


class CapturedLog:
    """The lines app.logs wrote to a stream, each parsed (JSON) or kept (text)."""

    def __init__(self, stream: io.StringIO, log_format: str) -> None:
        self.stream = stream
        self.format = log_format

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, parsed: a line that is not one JSON object fails the test."""
        parsed = []
        for line in self.text().splitlines():
            value = json.loads(line)
            assert isinstance(value, dict), line
            parsed.append(value)
        return parsed

    def access(self, request_id: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "budgetbridge.access"
                and line.get("request_id") == request_id]


@pytest.fixture
def captured_log(request: pytest.FixtureRequest) -> Iterator[CapturedLog]:
    """Logging configured as `serve` does it (JSON unless the test says `text` through indirect
    parametrisation), into a stream; the root logger is put back afterwards."""
    log_format = getattr(request, "param", "json")
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = logs.configure(log_format, "INFO", stream)
    try:
        yield CapturedLog(stream, log_format)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

"""The nested-reads bench runs, prints its figures, and its statement count is flat (the N+1 guard).

No timing is asserted: wall times depend on the machine. Only the shape of the output and the number of
SQL statements, which must not grow with the number of line items or of budgets in the response."""

from __future__ import annotations

import re

import pytest

from bench import nested_reads

RATIO = re.compile(r"^ratio \(budgetbridge / in-memory baseline\): (\d+\.\d\d)$", re.MULTILINE)
STATEMENTS = re.compile(r"^sql statements per query: (\d+)$", re.MULTILINE)


async def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, nested_reads.Report]:
    report = await nested_reads.amain(["--repeat", "1", *args])
    return capsys.readouterr().out, report


async def test_bench_prints_its_figures_and_statements_do_not_grow_with_lines_or_budgets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    small, small_report = await run(capsys, "--lines", "20")
    assert RATIO.search(small), small
    found = STATEMENTS.search(small)
    assert found, small
    assert "serialisation ratio (stdlib json / orjson):" in small
    assert small_report.nodes == 20
    assert int(found.group(1)) == small_report.statements > 0

    large, large_report = await run(capsys, "--lines", "60", "--no-asgi")
    assert large_report.nodes == 60
    assert large_report.statements == small_report.statements, (small, large)

    wide, wide_report = await run(capsys, "--lines", "20", "--projects", "3", "--no-asgi")
    assert wide_report.nodes == 60
    assert wide_report.statements == small_report.statements, (small, wide)

    # End to end: the same statements plus the request's viewer lookup, whatever the size.
    assert small_report.statements_asgi == small_report.statements + 1, small

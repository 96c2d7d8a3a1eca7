"""The HTTP benches run tiny, end to end (both servers in their own processes), and print their figures.

No timing is asserted: wall times depend on the machine. What is asserted: the floor answers BudgetBridge's
bytes (nested_reads checks it before timing, and would stop), every line of figures is printed, and the
statement counts are flat: a read's statements do not grow with the lines or the budgets in the answer."""

from __future__ import annotations

import re

import pytest

from bench import mutations, nested_reads

RATIO = re.compile(r"^(.+): ratio p50: \d+\.\d\d  ratio p99: \d+\.\d\d  ratio throughput \(floor / budgetbridge\): "
                   r"\d+\.\d\d$", re.MULTILINE)
TIMING = ["--samples", "4", "--windows", "2", "--seconds", "0.3"]


async def test_nested_reads_bench_answers_the_floors_bytes_and_prints_its_figures(
    capsys: pytest.CaptureFixture[str], bench_database_url: str
) -> None:
    report = await nested_reads.amain(["--database-url", bench_database_url, "--small", *TIMING])
    out = capsys.readouterr().out
    names = [case.name for case in nested_reads.SMALL_CASES]
    assert RATIO.findall(out) == names + [f"{name} (warm)" for name in names], out
    assert out.count("identical to the floor's answer") == 2 and "load average" in out, out
    one, wide = report.cases
    assert (one.nodes, wide.nodes) == (12, 12)
    # The same statements for one budget of 12 lines and for 3 budgets of 4: no query per budget or line.
    assert one.ours.statements == wide.ours.statements > 0, out
    assert one.ours.round_trips >= one.ours.statements and one.floor.driver_statements > 0, out
    # Warm: served from the response cache after the authentication and the one validator lookup.
    assert report.warm is not None and len(report.warm) == 2, out
    for warm in report.warm:
        assert 0 < warm.ours.statements < one.ours.statements and warm.rss_after > 0, out


async def test_mutations_bench_runs_both_works_on_both_sides_and_prints_its_figures(
    capsys: pytest.CaptureFixture[str], bench_database_url: str
) -> None:
    report = await mutations.amain(["--database-url", bench_database_url, "--small"])
    out = capsys.readouterr().out
    assert RATIO.findall(out) == ["updateBudgetLineItem", "lockBudget / unlockBudget"], out
    for work in report.works:
        assert work.timing.throughput > 0 and work.timing.floor_throughput > 0
        # The floor writes in one transaction: at least its 4 writes (3 for a lock) and BEGIN/COMMIT.
        assert work.floor.driver_statements >= 3 and work.floor.round_trips >= work.floor.driver_statements + 2
        # BudgetBridge too: its statements (the user's read among them), with one BEGIN and one COMMIT.
        assert work.ours.statements >= 3 and work.ours.round_trips >= work.ours.statements + 2, out

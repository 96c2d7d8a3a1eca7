"""The subscriptions bench runs end to end with a handful of subscribers, at two counts, and prints its figures.

No timing is asserted: only that every subscriber got every status change on both sides of the comparison,
that the figures and the SQL counts are printed, and that the counts do not grow with the subscribers (the
event log and its related rows are read once per change, whoever listens)."""

from __future__ import annotations

import re

import pytest

from bench import subscriptions

RATIO = re.compile(r"^(\d+) subscribers: ratio p50: \d+\.\d\d  ratio p99: \d+\.\d\d$", re.MULTILINE)


async def test_subscriptions_bench_delivers_every_change_to_every_subscriber_and_prints_its_figures(
    capsys: pytest.CaptureFixture[str], bench_database_url: str
) -> None:
    report = await subscriptions.amain(["--database-url", bench_database_url, "--subscribers", "3", "8",
                                        "--rounds", "2", "--baseline-repeats", "2"])
    out = capsys.readouterr().out
    assert [int(n) for n in RATIO.findall(out)] == [3, 8], out
    assert "load average" in out and "round trips per change" in out, out
    assert [size.subscribers for size in report.sizes] == [3, 8]
    for size in report.sizes:
        assert size.delivered, out
        assert [len(r.latencies.samples) for r in size.rounds] == [size.subscribers] * 2
        assert len(size.baseline) == 4
        assert all(r.round_trips >= r.statements > 0 for r in size.rounds)
    small, large = ([r.statements for r in size.rounds] for size in report.sizes)
    assert max(large) <= max(small), out


def test_subscriptions_bench_refuses_more_subscribers_than_its_cap_and_needs_a_database() -> None:
    with pytest.raises(SystemExit):
        subscriptions.parse_args(["--database-url", "postgresql://x/y", "--subscribers", "10", "--max", "5"])
    with pytest.raises(SystemExit):
        subscriptions.parse_args(["--database-url", "postgresql://x/y", "--subscribers", "8", "3"])

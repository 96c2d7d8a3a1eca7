"""The subscriptions bench runs end to end with a handful of subscribers and prints its ratio line.

No timing is asserted: only that every subscriber got the one status change on both sides of the
comparison and that the figures are printed."""

from __future__ import annotations

import re

import pytest

from bench import subscriptions

RATIO = re.compile(r"^ratio p50: \d+\.\d\d  ratio p99: \d+\.\d\d$", re.MULTILINE)


async def test_subscriptions_bench_delivers_to_every_subscriber_and_prints_the_ratio_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = await subscriptions.amain(["--subscribers", "5"])
    out = capsys.readouterr().out
    assert RATIO.search(out), out
    assert "(delivered 5/5)" in out, out
    assert len(report.budgetbridge.samples) == len(report.baseline.samples) == 5


def test_subscriptions_bench_refuses_more_subscribers_than_its_cap() -> None:
    with pytest.raises(SystemExit):
        subscriptions.parse_args(["--subscribers", "10", "--max", "5"])

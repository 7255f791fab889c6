"""StageClock: each stage's time, the total, and one bar tick per finished stage."""

from __future__ import annotations

import itertools

import pytest

from backend.risk import stages
from backend.risk.stages import StageClock


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.monotonic() as seen by the clock: the next value of a list the test fills."""
    values: list[float] = []
    it = itertools.count()
    monkeypatch.setattr(stages, "monotonic", lambda: values[next(it)])
    return values


def test_each_stage_gets_the_time_since_the_previous_one_ended(
        ticks: list[float], capsys: pytest.CaptureFixture[str]) -> None:
    ticks.extend([100.0, 101.25, 104.5, 110.0])
    clock = StageClock(("load", "fit"), "train", progress=True)
    clock.begin("load")
    clock.end("load")
    clock.begin("fit")
    clock.end("fit")
    assert clock.timings == {"load": 1.25, "fit": 3.25}
    assert clock.runtime_seconds() == {"load": 1.25, "fit": 3.25, "total": 10.0}
    clock.close()
    assert "2/2" in capsys.readouterr().err  # the bar ticked once per stage


def test_a_run_that_stops_early_reports_only_the_finished_stages(ticks: list[float]) -> None:
    ticks.extend([0.0, 2.0, 3.0])
    clock = StageClock(("a", "b", "c"), "evaluate", progress=False)
    clock.begin("a")
    clock.end("a")
    clock.begin("b")
    assert clock.runtime_seconds() == {"a": 2.0, "total": 3.0}

"""The stream-stall rule, checked against a model that recomputes it from the whole
history of observations (webapp.live.stall)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.live.stall import Change, Stall, StallDetector

T0 = 1_760_000_000.0
THRESHOLD = 30.0


@dataclass
class Clock:
    t: float = T0

    def __call__(self) -> float:
        return self.t


def detector(clock: Clock, threshold: float = THRESHOLD) -> StallDetector:
    return StallDetector(threshold, clock=clock)


# ------------------------------------------------------------------ the model

# One observation: ("step", seconds) moves the clock; ("raw", total) is a probe of the raw
# end offsets; ("validated", None) is a batch of fresh validated records; ("rebase", None)
# a reconnect.
Op = tuple[str, int | None]


def expected_stall(ops: list[Op], threshold: float) -> tuple[float | None, list[str]]:
    """From the whole history: the open stall's start (or ``None``) and, per op, the
    change it made. A stall is open when, after the last validated arrival (or the start),
    some probe saw raw above the probe before it (no reconnect in between) and a probe
    came more than ``threshold`` after that arrival."""
    changes = []
    t = T0
    flow = T0
    probes: list[tuple[float, int] | None] = []  # since the last flow; None = a rebase
    open_since: float | None = None
    for kind, arg in ops:
        change = "none"
        if kind == "step":
            t += arg
        elif kind == "rebase":
            probes.append(None)
        elif kind == "validated":
            if open_since is not None:
                change = "ended"
            flow, probes, open_since = t, [], None
        else:
            probes.append((t, arg))
            pairs = pairwise(probes)
            grew = any(a is not None and b is not None and b[1] > a[1] for a, b in pairs)
            if open_since is None and grew and t - flow > threshold:
                open_since = flow
                change = "began"
        changes.append(change)
    return open_since, changes


@st.composite
def histories(draw) -> list[Op]:
    """Random interleavings: raw growing, idle, or reset; validated bursts; clock steps
    (whole seconds, so the threshold itself is hit exactly now and then)."""
    ops: list[Op] = []
    total = draw(st.integers(0, 10**9))
    for _ in range(draw(st.integers(0, 80))):
        kind = draw(st.sampled_from(["step", "step", "raw", "raw", "validated", "rebase"]))
        if kind == "step":
            ops.append(("step", draw(st.integers(0, 20))))
        elif kind == "raw":
            how = draw(st.sampled_from(["grow", "same", "same", "reset"]))
            if how == "grow":
                total += draw(st.integers(1, 5000))
            elif how == "reset":
                total = draw(st.integers(0, total))
            ops.append(("raw", total))
        else:
            ops.append((kind, None))
    return ops


def run(ops: list[Op], threshold: float = THRESHOLD) -> tuple[StallDetector, list[str],
                                                              list[Stall | None]]:
    clock = Clock()
    d = detector(clock, threshold)
    changes: list[str] = []
    stalls: list[Stall | None] = []
    for kind, arg in ops:
        change, stall = Change.NONE, None
        if kind == "step":
            clock.t += arg
        elif kind == "rebase":
            d.rebase()
        elif kind == "validated":
            change, stall = d.validated()
        else:
            change, stall = d.raw_probed(arg)
        changes.append(change.value)
        stalls.append(stall)
    return d, changes, stalls


@settings(max_examples=400, deadline=None)
@given(histories(), st.sampled_from([1.0, 5.0, THRESHOLD, 30.5]))
def test_the_detector_agrees_with_the_model(ops: list[Op], threshold: float) -> None:
    d, changes, _ = run(ops, threshold)
    since, want = expected_stall(ops, threshold)
    assert changes == want
    assert (d.stall.since if d.stall else None) == since


@settings(max_examples=200, deadline=None)
@given(histories())
def test_a_stall_begins_at_the_last_arrival_and_ends_with_the_next(ops: list[Op]) -> None:
    clock = Clock()
    d = detector(clock)
    for kind, arg in ops:
        before = d.last_flow
        if kind == "step":
            clock.t += arg
        elif kind == "rebase":
            d.rebase()
        elif kind == "validated":
            change, stall = d.validated()
            assert d.stall is None and d.last_flow == clock.t
            if change is Change.ENDED:
                assert stall is not None and stall.until == clock.t
                assert stall.seconds == clock.t - stall.since > THRESHOLD
        else:
            change, stall = d.raw_probed(arg)
            if change is Change.BEGAN:
                assert stall == Stall(before) and clock.t - before > THRESHOLD
        if d.stall is not None:  # open: never within the threshold of the last arrival
            assert clock.t - d.stall.since > THRESHOLD


@settings(max_examples=200, deadline=None)
@given(histories())
def test_a_silent_ward_never_stalls(ops: list[Op]) -> None:
    """Raw does not grow (devices silent, or only clock ticks, which go elsewhere)."""
    flat = [(k, 12345 if k == "raw" else a) for k, a in ops]
    _, changes, _ = run(flat)
    assert "began" not in changes


def test_stall_after_the_threshold_and_recovery_by_itself() -> None:
    clock = Clock()
    d = detector(clock)
    assert d.validated() == (Change.NONE, None)
    for total in range(100, 1700, 100):  # raw grows every 2 s, nothing is processed
        clock.t += 2
        change, _ = d.raw_probed(total)
        if clock.t - T0 <= THRESHOLD:
            assert change is Change.NONE and d.stall is None
    assert d.stall == Stall(T0)
    assert d.raw_probed(1800) == (Change.NONE, Stall(T0))  # once per stall
    clock.t += 1
    assert d.validated() == (Change.ENDED, Stall(T0, clock.t))
    assert d.stall is None
    clock.t += 29
    assert d.raw_probed(5000)[0] is Change.NONE  # the next probe is the new baseline


def test_growth_before_the_last_arrival_does_not_count() -> None:
    clock = Clock()
    d = detector(clock)
    d.raw_probed(10)
    clock.t += 1
    d.raw_probed(20)
    d.validated()  # that growth was processed
    clock.t += 60
    d.raw_probed(20)
    assert d.raw_probed(20)[0] is Change.NONE  # devices went quiet: not the stream


def test_no_arrival_yet_counts_from_the_start() -> None:
    clock = Clock()
    d = detector(clock)
    clock.t += 31
    assert d.raw_probed(5)[0] is Change.NONE  # a baseline, no growth yet
    assert d.raw_probed(6) == (Change.BEGAN, Stall(T0))


def test_a_reset_raw_topic_is_no_growth_but_growth_after_it_is() -> None:
    clock = Clock()
    d = detector(clock)
    clock.t += 40
    d.raw_probed(1_000_000)
    assert d.raw_probed(0)[0] is Change.NONE
    assert d.raw_probed(1)[0] is Change.BEGAN


def test_a_reconnect_forgets_the_baseline() -> None:
    clock = Clock()
    d = detector(clock)
    clock.t += 40
    d.raw_probed(100)
    d.rebase()
    assert d.raw_probed(200)[0] is Change.NONE
    assert d.raw_probed(201)[0] is Change.BEGAN


@pytest.mark.parametrize("threshold", [0.0, -1.0])
def test_the_threshold_must_be_positive(threshold: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        StallDetector(threshold, clock=Clock())

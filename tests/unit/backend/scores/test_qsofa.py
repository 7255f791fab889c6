"""qSOFA (Seymour et al., JAMA 2016): every criterion edge, every score, missing inputs."""

from __future__ import annotations

import math

import pytest

from backend.messages import Consciousness
from backend.scores import QsofaResult, qsofa

A, C, V, P, U = (Consciousness.ALERT, Consciousness.CONFUSION, Consciousness.VOICE,
                 Consciousness.PAIN, Consciousness.UNRESPONSIVE)


# --- each criterion on both sides of its threshold ---------------------------------------


@pytest.mark.parametrize(("rr", "met"), [
    pytest.param(21, False, id="21-no"),
    pytest.param(22, True, id="22-yes"),
    pytest.param(40, True, id="40-yes"),
    pytest.param(21.49, False, id="21.49->21-no"),
    pytest.param(21.5, True, id="21.5->22-yes"),
])
def test_respiratory_rate_at_least_22(rr: float, met: bool) -> None:
    result = qsofa(rr=rr, sbp=120, consciousness=A)
    assert result.score == int(met)
    assert ("rr" in result.met) is met


@pytest.mark.parametrize(("sbp", "met"), [
    pytest.param(100, True, id="100-yes"),
    pytest.param(101, False, id="101-no"),
    pytest.param(70, True, id="70-yes"),
    pytest.param(100.49, True, id="100.49->100-yes"),
    pytest.param(100.5, False, id="100.5->101-no"),
])
def test_systolic_at_most_100(sbp: float, met: bool) -> None:
    result = qsofa(rr=16, sbp=sbp, consciousness=A)
    assert result.score == int(met)
    assert ("sbp" in result.met) is met


@pytest.mark.parametrize(("gcs", "met"), [
    pytest.param(15, False, id="gcs15-no"),
    pytest.param(14, True, id="gcs14-yes"),
    pytest.param(3, True, id="gcs3-yes"),
])
def test_gcs_below_15(gcs: int, met: bool) -> None:
    result = qsofa(rr=16, sbp=120, gcs=gcs)
    assert result.score == int(met)
    assert result.complete


@pytest.mark.parametrize(("consciousness", "met"), [
    pytest.param(A, False, id="alert-no"),
    pytest.param(C, True, id="confusion-yes"),
    pytest.param(V, True, id="voice-yes"),
    pytest.param(P, True, id="pain-yes"),
    pytest.param(U, True, id="unresponsive-yes"),
    pytest.param("C", True, id="letter-C-yes"),
])
def test_acvpu_other_than_alert(consciousness: Consciousness, met: bool) -> None:
    result = qsofa(rr=16, sbp=120, consciousness=consciousness)
    assert result.score == int(met)
    assert result.complete


@pytest.mark.parametrize(("consciousness", "gcs", "altered"), [
    pytest.param(A, 15, False, id="A-gcs15"),
    pytest.param(C, 15, True, id="C-gcs15"),
    pytest.param(A, 14, True, id="A-gcs14"),
    pytest.param(V, 9, True, id="V-gcs9"),
])
def test_mentation_is_altered_if_either_scale_says_so(consciousness: Consciousness,
                                                      gcs: int, altered: bool) -> None:
    assert qsofa(rr=16, sbp=120, consciousness=consciousness, gcs=gcs).score == int(altered)


# --- the aggregate -----------------------------------------------------------------------


@pytest.mark.parametrize(("rr", "sbp", "consciousness", "score", "positive", "met"), [
    pytest.param(16, 120, A, 0, False, (), id="0-negative"),
    pytest.param(24, 120, A, 1, False, ("rr",), id="1-rr-negative"),
    pytest.param(16, 95, A, 1, False, ("sbp",), id="1-sbp-negative"),
    pytest.param(16, 120, V, 1, False, ("mentation",), id="1-mentation-negative"),
    pytest.param(24, 95, A, 2, True, ("rr", "sbp"), id="2-rr-sbp-positive"),
    pytest.param(24, 120, C, 2, True, ("rr", "mentation"), id="2-rr-mentation-positive"),
    pytest.param(16, 95, P, 2, True, ("sbp", "mentation"), id="2-sbp-mentation-positive"),
    pytest.param(30, 80, U, 3, True, ("rr", "sbp", "mentation"), id="3-positive"),
])
def test_score_and_positive(rr: float, sbp: float, consciousness: Consciousness, score: int,
                            positive: bool, met: tuple[str, ...]) -> None:
    result = qsofa(rr=rr, sbp=sbp, consciousness=consciousness)
    assert result == QsofaResult(score=score, positive=positive, complete=True, missing=(),
                                 met=met)
    assert not result.indeterminate


# --- missing inputs ----------------------------------------------------------------------


def test_nothing_known() -> None:
    result = qsofa(rr=None, sbp=None)
    assert (result.score, result.positive, result.complete) == (0, False, False)
    assert result.missing == ("rr", "sbp", "mentation")
    assert result.indeterminate


def test_positive_with_mentation_unknown() -> None:
    result = qsofa(rr=25, sbp=90)
    assert (result.score, result.positive, result.complete) == (2, True, False)
    assert result.missing == ("mentation",)
    assert not result.indeterminate


@pytest.mark.parametrize(("kwargs", "missing"), [
    pytest.param({"rr": None, "sbp": 95, "consciousness": V}, ("rr",), id="no-rr"),
    pytest.param({"rr": 25, "sbp": None, "gcs": 13}, ("sbp",), id="no-sbp"),
])
def test_positive_with_one_vital_missing(kwargs: dict, missing: tuple[str, ...]) -> None:
    result = qsofa(**kwargs)
    assert result.positive
    assert result.missing == missing
    assert not result.complete


@pytest.mark.parametrize(("kwargs", "indeterminate"), [
    pytest.param({"rr": 25, "sbp": None}, True, id="one-met-two-missing"),
    pytest.param({"rr": 25, "sbp": 120}, True, id="one-met-mentation-missing"),
    pytest.param({"rr": 16, "sbp": 120}, False, id="none-met-one-missing"),
    pytest.param({"rr": 16, "sbp": None}, True, id="none-met-two-missing"),
])
def test_incomplete_negative_may_be_indeterminate(kwargs: dict, indeterminate: bool) -> None:
    result = qsofa(**kwargs)
    assert not result.positive
    assert result.indeterminate is indeterminate


# --- invalid input -----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    pytest.param({"rr": -1, "sbp": 120}, id="negative-rr"),
    pytest.param({"rr": 16, "sbp": -5}, id="negative-sbp"),
    pytest.param({"rr": math.nan, "sbp": 120}, id="nan-rr"),
    pytest.param({"rr": 16, "sbp": 120, "gcs": 2}, id="gcs-2"),
    pytest.param({"rr": 16, "sbp": 120, "gcs": 16}, id="gcs-16"),
    pytest.param({"rr": 16, "sbp": 120, "gcs": 14.5}, id="gcs-fraction"),
    pytest.param({"rr": 16, "sbp": 120, "gcs": True}, id="gcs-bool"),
    pytest.param({"rr": 16, "sbp": 120, "consciousness": "X"}, id="unknown-acvpu"),
])
def test_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        qsofa(**kwargs)


# --- worked examples ---------------------------------------------------------------------


def test_worked_example_septic_and_confused() -> None:
    # RR 26 >= 22: 1; SBP 92 <= 100: 1; new confusion (not A): 1 -> 3, positive.
    result = qsofa(rr=26, sbp=92, consciousness=C)
    assert (result.score, result.positive, result.complete) == (3, True, True)


def test_worked_example_tachypnoeic_only() -> None:
    # RR 23 >= 22: 1; SBP 118 > 100: 0; GCS 15: 0 -> 1, negative.
    result = qsofa(rr=23, sbp=118, gcs=15)
    assert (result.score, result.positive, result.met) == (1, False, ("rr",))


def test_worked_example_monitor_values() -> None:
    # RR 21.6 -> 22 >= 22: 1; SBP 100.4 -> 100 <= 100: 1; Alert: 0 -> 2, positive.
    result = qsofa(rr=21.6, sbp=100.4, consciousness=A)
    assert (result.score, result.positive, result.met) == (2, True, ("rr", "sbp"))

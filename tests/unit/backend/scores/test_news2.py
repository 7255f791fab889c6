"""NEWS2 against the RCP 2017 chart: every row edge, every band, worked examples.

Expected scores are written out by hand from the published Chart 1, never derived from
``NEWS2_CHART``, so a typo in the table fails here.
"""

from __future__ import annotations

import math
from dataclasses import FrozenInstanceError, replace
from decimal import Decimal
from fractions import Fraction

import pytest

from backend.messages import Consciousness
from backend.scores import News2Band, News2Inputs, News2Result, news2, news2_band, parameter_score
from backend.scores.news2 import (
    CHART_DECIMALS,
    MONITORING,
    NEWS2_CHART,
    PARAMETERS,
    RESPONSE,
    measurement,
)
from backend.vitals import VITALS, Vital

A, C, V, P, U = (Consciousness.ALERT, Consciousness.CONFUSION, Consciousness.VOICE,
                 Consciousness.PAIN, Consciousness.UNRESPONSIVE)

# A patient who scores 0 on every parameter; tests replace() the fields they are about.
NORMAL = News2Inputs(rr=16, spo2=98, spo2_scale=1, o2_supplemental=False, sbp=125, pulse=70,
                     consciousness=A, temp=37.0)


def edges(*cases: tuple[float, int]) -> list:
    return [pytest.param(value, score, id=f"{value}->{score}") for value, score in cases]


# --- single parameters: both sides of every row boundary of Chart 1 ---------------------


@pytest.mark.parametrize(("value", "score"), edges(
    (0, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (60, 3),
))
def test_respiration_rate_rows(value: float, score: int) -> None:
    assert parameter_score("rr", value) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (70, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0),
))
@pytest.mark.parametrize("o2", [None, False, True], ids=["o2-unknown", "air", "oxygen"])
def test_spo2_scale1_rows_ignore_oxygen(value: float, score: int, o2: bool | None) -> None:
    assert parameter_score("spo2", value, spo2_scale=1, o2_supplemental=o2) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0),
    (93, 0), (94, 0), (95, 0), (96, 0), (97, 0), (100, 0),
))
def test_spo2_scale2_rows_on_air(value: float, score: int) -> None:
    assert parameter_score("spo2", value, spo2_scale=2, o2_supplemental=False) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (70, 3), (83, 3), (84, 2), (85, 2), (86, 1), (87, 1), (88, 0), (92, 0),
    (93, 1), (94, 1), (95, 2), (96, 2), (97, 3), (100, 3),
))
def test_spo2_scale2_rows_on_oxygen(value: float, score: int) -> None:
    assert parameter_score("spo2", value, spo2_scale=2, o2_supplemental=True) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (83, 3), (84, 2), (87, 1), (88, 0), (92, 0), (92.4, 0),
))
def test_spo2_scale2_at_or_below_92_needs_no_oxygen_status(value: float, score: int) -> None:
    assert parameter_score("spo2", value, spo2_scale=2) == score


@pytest.mark.parametrize("value", [92.5, 93, 96, 100])
def test_spo2_scale2_at_or_above_93_requires_oxygen_status(value: float) -> None:
    with pytest.raises(ValueError, match="o2_supplemental is required"):
        parameter_score("spo2", value, spo2_scale=2)


@pytest.mark.parametrize(("value", "score"), [
    pytest.param(True, 2, id="oxygen->2"), pytest.param(False, 0, id="air->0"),
])
def test_air_or_oxygen(value: bool, score: int) -> None:
    assert parameter_score("o2_supplemental", value) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (50, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0),
    (220, 3), (280, 3),
))
def test_systolic_bp_rows(value: float, score: int) -> None:
    assert parameter_score("sbp", value) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (20, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2),
    (130, 2), (131, 3), (220, 3),
))
def test_pulse_rows(value: float, score: int) -> None:
    assert parameter_score("pulse", value) == score


@pytest.mark.parametrize(("value", "score"), [
    pytest.param(A, 0, id="alert->0"), pytest.param(C, 3, id="new-confusion->3"),
    pytest.param(V, 3, id="voice->3"), pytest.param(P, 3, id="pain->3"),
    pytest.param(U, 3, id="unresponsive->3"), pytest.param("A", 0, id="letter-A->0"),
    pytest.param("U", 3, id="letter-U->3"),
])
def test_consciousness(value: Consciousness | str, score: int) -> None:
    assert parameter_score("consciousness", value) == score


@pytest.mark.parametrize(("value", "score"), edges(
    (30.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1),
    (39.1, 2), (42.0, 2),
))
def test_temperature_rows(value: float, score: int) -> None:
    assert parameter_score("temp", value) == score


# --- values between chart rows: round half-up to the chart's resolution ---------------


@pytest.mark.parametrize(("name", "value", "score"), [
    pytest.param("rr", 8.49, 3, id="rr-8.49->8->3"),
    pytest.param("rr", 8.5, 1, id="rr-8.5->9->1"),
    pytest.param("rr", 20.4, 0, id="rr-20.4->20->0"),
    pytest.param("rr", 20.5, 2, id="rr-20.5->21->2"),
    pytest.param("rr", 24.5, 3, id="rr-24.5->25->3"),
    pytest.param("spo2", 91.4, 3, id="spo2-91.4->91->3"),
    pytest.param("spo2", 91.5, 2, id="spo2-91.5->92->2"),
    pytest.param("spo2", 95.5, 0, id="spo2-95.5->96->0"),
    pytest.param("sbp", 90.4, 3, id="sbp-90.4->90->3"),
    pytest.param("sbp", 90.5, 2, id="sbp-90.5->91->2"),
    pytest.param("sbp", 110.5, 0, id="sbp-110.5->111->0"),
    pytest.param("sbp", 219.4, 0, id="sbp-219.4->219->0"),
    pytest.param("sbp", 219.5, 3, id="sbp-219.5->220->3"),
    pytest.param("pulse", 40.5, 1, id="pulse-40.5->41->1"),
    pytest.param("pulse", 90.4, 0, id="pulse-90.4->90->0"),
    pytest.param("pulse", 90.49, 0, id="pulse-90.49->90->0"),
    pytest.param("pulse", 90.5, 1, id="pulse-90.5->91->1"),
    pytest.param("pulse", 130.5, 3, id="pulse-130.5->131->3"),
    pytest.param("temp", 35.04, 3, id="temp-35.04->35.0->3"),
    pytest.param("temp", 35.05, 1, id="temp-35.05->35.1->1"),
    pytest.param("temp", 36.05, 0, id="temp-36.05->36.1->0"),
    pytest.param("temp", 38.04, 0, id="temp-38.04->38.0->0"),
    # 38.05 is stored as 38.04999...; it must still round like the displayed "38.05"
    pytest.param("temp", 38.05, 1, id="temp-38.05->38.1->1"),
    pytest.param("temp", 39.05, 2, id="temp-39.05->39.1->2"),
])
def test_values_between_rows_round_half_up(name: str, value: float, score: int) -> None:
    assert parameter_score(name, value) == score


@pytest.mark.parametrize(("value", "score"), [
    pytest.param(92.5, 1, id="92.5->93->1"), pytest.param(94.5, 2, id="94.5->95->2"),
    pytest.param(96.5, 3, id="96.5->97->3"), pytest.param(87.5, 0, id="87.5->88->0"),
])
def test_spo2_scale2_on_oxygen_between_rows(value: float, score: int) -> None:
    assert parameter_score("spo2", value, spo2_scale=2, o2_supplemental=True) == score


@pytest.mark.parametrize(("value", "expected"), [
    pytest.param(38.05, Decimal("38.1"), id="float-38.05"),
    pytest.param(Decimal("38.05"), Decimal("38.1"), id="decimal-38.05"),
    pytest.param(Fraction(7609, 200), Decimal("38.0"), id="fraction-38.045"),
    pytest.param(38, Decimal("38.0"), id="int-38"),
])
def test_measurement_rounds_number_types_alike(value: object, expected: Decimal) -> None:
    assert measurement("temp", value, decimals=1) == expected


def test_chart_resolution_matches_the_displayed_resolution() -> None:
    # A score must agree with the number the bed tile shows.
    shown = {name: VITALS[Vital(name)].decimals for name in CHART_DECIMALS}
    assert shown == CHART_DECIMALS


def test_chart_tables_are_ordered_and_open_ended() -> None:
    for name, rows in NEWS2_CHART.items():
        uppers = [row.upper for row in rows]
        assert uppers == sorted(set(uppers)), name
        assert uppers[-1] == Decimal("Infinity"), name


# --- invalid input ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [
    pytest.param("rr", -1, id="negative-rr"),
    pytest.param("pulse", -0.1, id="negative-pulse"),
    pytest.param("temp", -5.0, id="negative-temp"),
    pytest.param("sbp", math.nan, id="nan-sbp"),
    pytest.param("pulse", math.inf, id="inf-pulse"),
    pytest.param("spo2", 100.1, id="spo2-above-100"),
    pytest.param("rr", True, id="bool-rr"),
    pytest.param("rr", "16", id="string-rr"),
    pytest.param("rr", None, id="none-rr"),
    pytest.param("o2_supplemental", 1, id="int-oxygen"),
    pytest.param("o2_supplemental", "yes", id="string-oxygen"),
    pytest.param("consciousness", "X", id="unknown-acvpu"),
    pytest.param("gcs", 15, id="unknown-parameter"),
])
def test_parameter_score_rejects_nonsense(name: str, value: object) -> None:
    with pytest.raises(ValueError):
        parameter_score(name, value)


@pytest.mark.parametrize("scale", [0, 3, True, "1"])
def test_parameter_score_rejects_unknown_scale(scale: object) -> None:
    with pytest.raises(ValueError, match="spo2_scale"):
        parameter_score("spo2", 95, spo2_scale=scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("changes", [
    pytest.param({"spo2_scale": 0}, id="scale-0"),
    pytest.param({"spo2_scale": 3}, id="scale-3"),
    pytest.param({"rr": -2}, id="negative-rr"),
    pytest.param({"sbp": -80}, id="negative-sbp"),
    pytest.param({"temp": math.nan}, id="nan-temp"),
    pytest.param({"spo2": 101}, id="spo2-101"),
    pytest.param({"o2_supplemental": "no"}, id="string-oxygen"),
    pytest.param({"consciousness": "Z"}, id="unknown-acvpu"),
])
def test_inputs_reject_nonsense(changes: dict) -> None:
    with pytest.raises(ValueError):
        replace(NORMAL, **changes)


def test_inputs_accept_the_acvpu_letter() -> None:
    assert replace(NORMAL, consciousness="V").consciousness is V  # type: ignore[arg-type]


def test_inputs_and_result_are_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        NORMAL.rr = 30  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        news2(NORMAL).total = 9  # type: ignore[misc]


# --- the aggregate: every band of Chart 2, including the single-parameter-3 rule --------


@pytest.mark.parametrize(("changes", "total", "band", "red_flag"), [
    pytest.param({}, 0, News2Band.ZERO, False, id="0-zero"),
    pytest.param({"pulse": 95}, 1, News2Band.LOW, False, id="1-low"),
    pytest.param({"rr": 22, "pulse": 95, "temp": 38.5}, 4, News2Band.LOW, False,
                 id="4-low-no-3"),
    pytest.param({"consciousness": C}, 3, News2Band.LOW_MEDIUM, True, id="3-single-3"),
    pytest.param({"sbp": 85, "pulse": 95}, 4, News2Band.LOW_MEDIUM, True,
                 id="4-single-3"),
    pytest.param({"rr": 22, "sbp": 95, "pulse": 95}, 5, News2Band.MEDIUM, False,
                 id="5-medium"),
    pytest.param({"rr": 6, "spo2": 93}, 5, News2Band.MEDIUM, True,
                 id="5-medium-with-a-3"),
    pytest.param({"rr": 22, "sbp": 95, "pulse": 115}, 6, News2Band.MEDIUM, False,
                 id="6-medium"),
    pytest.param({"rr": 22, "sbp": 95, "pulse": 115, "temp": 38.5}, 7, News2Band.HIGH,
                 False, id="7-high"),
    pytest.param({"rr": 26, "spo2": 93, "o2_supplemental": True}, 7, News2Band.HIGH, True,
                 id="7-high-with-a-3"),
    pytest.param({"rr": 5, "spo2": 85, "o2_supplemental": True, "sbp": 80, "pulse": 140,
                  "consciousness": U, "temp": 34.0}, 20, News2Band.HIGH, True,
                 id="20-maximum"),
])
def test_aggregate_band(changes: dict, total: int, band: News2Band, red_flag: bool) -> None:
    result = news2(replace(NORMAL, **changes))
    assert (result.total, result.band, result.red_flag) == (total, band, red_flag)
    assert result.response == RESPONSE[band]
    assert result.complete


@pytest.mark.parametrize(("total", "red_flag", "band"), [
    pytest.param(0, False, News2Band.ZERO, id="0"),
    pytest.param(1, False, News2Band.LOW, id="1"),
    pytest.param(4, False, News2Band.LOW, id="4"),
    pytest.param(3, True, News2Band.LOW_MEDIUM, id="3-red"),
    pytest.param(4, True, News2Band.LOW_MEDIUM, id="4-red"),
    pytest.param(5, False, News2Band.MEDIUM, id="5"),
    pytest.param(5, True, News2Band.MEDIUM, id="5-red"),
    pytest.param(6, True, News2Band.MEDIUM, id="6-red"),
    pytest.param(7, False, News2Band.HIGH, id="7"),
    pytest.param(7, True, News2Band.HIGH, id="7-red"),
    pytest.param(20, True, News2Band.HIGH, id="20-red"),
])
def test_news2_band(total: int, red_flag: bool, band: News2Band) -> None:
    assert news2_band(total, red_flag) is band


def test_news2_band_rejects_negative_total() -> None:
    with pytest.raises(ValueError):
        news2_band(-1, False)


@pytest.mark.parametrize(("band", "response"), [
    pytest.param(News2Band.ZERO, "Continue routine NEWS monitoring", id="zero"),
    pytest.param(News2Band.LOW, "Ward-based response", id="low"),
    pytest.param(News2Band.LOW_MEDIUM, "Urgent ward-based response", id="low-medium"),
    pytest.param(News2Band.MEDIUM, "Key threshold for urgent response", id="medium"),
    pytest.param(News2Band.HIGH, "Urgent or emergency response", id="high"),
])
def test_rcp_response_wording(band: News2Band, response: str) -> None:
    assert RESPONSE[band] == response
    assert MONITORING[band]


def test_band_values_are_the_wire_strings() -> None:
    assert [b.value for b in News2Band] == ["zero", "low", "low-medium", "medium", "high"]


def test_oxygen_scores_two_on_its_own() -> None:
    result = news2(replace(NORMAL, o2_supplemental=True))
    assert (result.total, result.band, result.red_flag) == (2, News2Band.LOW, False)


# --- scale 2 in the aggregate ------------------------------------------------------------


@pytest.mark.parametrize(("spo2", "o2", "spo2_score", "total"), [
    pytest.param(90, False, 0, 0, id="90-air"),
    pytest.param(90, True, 0, 2, id="90-oxygen"),
    pytest.param(95, False, 0, 0, id="95-air"),
    pytest.param(95, True, 2, 4, id="95-oxygen"),
    pytest.param(98, False, 0, 0, id="98-air"),
    pytest.param(98, True, 3, 5, id="98-oxygen"),
    pytest.param(85, True, 2, 4, id="85-oxygen"),
])
def test_scale2_with_and_without_oxygen(spo2: float, o2: bool, spo2_score: int,
                                        total: int) -> None:
    result = news2(replace(NORMAL, spo2=spo2, spo2_scale=2, o2_supplemental=o2))
    assert result.components["spo2"] == spo2_score
    assert result.total == total
    assert result.complete


def test_scale2_over_oxygenation_is_a_red_score() -> None:
    result = news2(replace(NORMAL, spo2=97, spo2_scale=2, o2_supplemental=True))
    assert result.red_flag
    assert result.band is News2Band.MEDIUM  # 3 + 2 for oxygen = 5


def test_same_saturation_scores_differently_on_the_two_scales() -> None:
    on_scale1 = news2(replace(NORMAL, spo2=89, o2_supplemental=True))
    on_scale2 = news2(replace(NORMAL, spo2=89, spo2_scale=2, o2_supplemental=True))
    assert (on_scale1.components["spo2"], on_scale2.components["spo2"]) == (3, 0)


# --- missing parameters ------------------------------------------------------------------


def test_no_inputs_is_incomplete_and_lists_all_seven() -> None:
    result = news2(News2Inputs())
    assert result == News2Result(total=0, band=News2Band.ZERO, components={},
                                 red_flag=False, complete=False, missing=PARAMETERS,
                                 response="Continue routine NEWS monitoring")
    assert len(PARAMETERS) == 7


@pytest.mark.parametrize("name", PARAMETERS)
def test_each_missing_parameter_is_listed(name: str) -> None:
    result = news2(replace(NORMAL, **{name: None}))
    assert not result.complete
    assert result.missing == (name,)
    assert name not in result.components
    assert set(result.components) == set(PARAMETERS) - {name}


def test_missing_lists_parameters_in_chart_order() -> None:
    result = news2(News2Inputs(rr=30, pulse=120))
    assert result.missing == ("spo2", "o2_supplemental", "sbp", "consciousness", "temp")
    assert result.components == {"rr": 3, "pulse": 2}
    # a partial score is a lower bound, but what is present already counts
    assert (result.total, result.band, result.red_flag) == (5, News2Band.MEDIUM, True)


def test_scale2_high_saturation_without_oxygen_status_is_not_scored() -> None:
    result = news2(replace(NORMAL, spo2=95, spo2_scale=2, o2_supplemental=None))
    assert "spo2" not in result.components
    assert result.missing == ("spo2", "o2_supplemental")
    assert not result.complete


def test_scale2_low_saturation_without_oxygen_status_is_scored() -> None:
    result = news2(replace(NORMAL, spo2=86, spo2_scale=2, o2_supplemental=None))
    assert result.components["spo2"] == 1
    assert result.missing == ("o2_supplemental",)


def test_scale1_without_oxygen_status_still_scores_saturation() -> None:
    result = news2(replace(NORMAL, spo2=93, o2_supplemental=None))
    assert result.components["spo2"] == 2
    assert result.missing == ("o2_supplemental",)


# --- worked examples, computed by hand from Chart 1 --------------------------------------


def test_worked_example_pneumonia_on_oxygen() -> None:
    # RR 24          -> 21-24         2
    # SpO2 93, sc. 1 -> 92-93         2
    # on oxygen      -> oxygen        2
    # SBP 105        -> 101-110       1
    # pulse 112      -> 111-130       2
    # Alert          ->               0
    # temp 38.4      -> 38.1-39.0     1
    # total 10, no single 3 -> 7 or more: high, urgent or emergency response
    result = news2(News2Inputs(rr=24, spo2=93, o2_supplemental=True, sbp=105, pulse=112,
                               consciousness=A, temp=38.4))
    assert result.components == {"rr": 2, "spo2": 2, "o2_supplemental": 2, "sbp": 1,
                                 "pulse": 2, "consciousness": 0, "temp": 1}
    assert result.total == 10
    assert result.band is News2Band.HIGH
    assert not result.red_flag
    assert result.response == "Urgent or emergency response"
    assert result.complete and result.missing == ()


def test_worked_example_new_confusion_alone() -> None:
    # RR 18 -> 0, SpO2 97 -> 0, air -> 0, SBP 128 -> 0, pulse 76 -> 0, temp 37.2 -> 0,
    # new confusion -> 3. Total 3 < 5 with a single 3: low-medium, urgent ward-based.
    result = news2(News2Inputs(rr=18, spo2=97, o2_supplemental=False, sbp=128, pulse=76,
                               consciousness=C, temp=37.2))
    assert result.total == 3
    assert result.red_flag
    assert result.band is News2Band.LOW_MEDIUM
    assert result.response == "Urgent ward-based response"


def test_worked_example_copd_on_scale2() -> None:
    # RR 22                 -> 21-24             2
    # SpO2 90, scale 2, O2  -> 88-92 (target)    0
    # on oxygen             -> oxygen            2
    # SBP 135               -> 111-219           0
    # pulse 95              -> 91-110            1
    # Alert                 ->                   0
    # temp 37.8             -> 36.1-38.0         0
    # total 5 -> 5-6: medium, key threshold for urgent response
    # (on scale 1, SpO2 90 would score 3 and the total would be 8: high)
    inputs = News2Inputs(rr=22, spo2=90, spo2_scale=2, o2_supplemental=True, sbp=135,
                         pulse=95, consciousness=A, temp=37.8)
    result = news2(inputs)
    assert result.components["spo2"] == 0
    assert result.total == 5
    assert result.band is News2Band.MEDIUM
    assert result.response == "Key threshold for urgent response"
    assert news2(replace(inputs, spo2_scale=1)).total == 8


def test_worked_example_monitor_values_between_rows() -> None:
    # RR 20.5    -> 21    -> 21-24        2
    # SpO2 95.4  -> 95    -> 94-95        1
    # air                                 0
    # SBP 110.5  -> 111   -> 111-219      0
    # pulse 90.5 -> 91    -> 91-110       1
    # Alert                               0
    # temp 38.05 -> 38.1  -> 38.1-39.0    1
    # total 5 -> medium
    result = news2(News2Inputs(rr=20.5, spo2=95.4, o2_supplemental=False, sbp=110.5,
                               pulse=90.5, consciousness=A, temp=38.05))
    assert result.components == {"rr": 2, "spo2": 1, "o2_supplemental": 0, "sbp": 0,
                                 "pulse": 1, "consciousness": 0, "temp": 1}
    assert result.total == 5
    assert result.band is News2Band.MEDIUM


def test_worked_example_shocked_patient() -> None:
    # RR 28 -> >=25: 3; SpO2 91 -> <=91: 3; oxygen: 2; SBP 84 -> <=90: 3;
    # pulse 134 -> >=131: 3; responds to voice: 3; temp 35.5 -> 35.1-36.0: 1. Total 18.
    result = news2(News2Inputs(rr=28, spo2=91, o2_supplemental=True, sbp=84, pulse=134,
                               consciousness=V, temp=35.5))
    assert result.total == 18
    assert result.band is News2Band.HIGH
    assert result.red_flag

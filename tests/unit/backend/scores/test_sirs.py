"""SIRS (Bone et al., Chest 1992): both sides of every criterion, every score, missing inputs."""

from __future__ import annotations

import math

import pytest

from backend.scores import SirsResult, sirs

# Normal on the four criteria; tests override what they are about.
NORMAL = {"temp": 37.0, "hr": 75, "rr": 14, "wbc": 8.0}


def score_of(**changes: float | None) -> SirsResult:
    return sirs(**{**NORMAL, **changes})


# --- each criterion on both sides of its threshold ---------------------------------------


@pytest.mark.parametrize(("temp", "met"), [
    pytest.param(38.0, False, id="38.0-no"),
    pytest.param(38.1, True, id="38.1-yes"),
    pytest.param(36.0, False, id="36.0-no"),
    pytest.param(35.9, True, id="35.9-yes"),
    pytest.param(41.0, True, id="41.0-yes"),
    pytest.param(38.04, False, id="38.04->38.0-no"),
    pytest.param(38.05, True, id="38.05->38.1-yes"),
    pytest.param(35.95, False, id="35.95->36.0-no"),
    pytest.param(35.94, True, id="35.94->35.9-yes"),
])
def test_temperature_above_38_or_below_36(temp: float, met: bool) -> None:
    result = score_of(temp=temp)
    assert result.score == int(met)
    assert ("temp" in result.met) is met


@pytest.mark.parametrize(("hr", "met"), [
    pytest.param(90, False, id="90-no"),
    pytest.param(91, True, id="91-yes"),
    pytest.param(90.4, False, id="90.4->90-no"),
    pytest.param(90.5, True, id="90.5->91-yes"),
    pytest.param(40, False, id="40-no"),
])
def test_heart_rate_above_90(hr: float, met: bool) -> None:
    assert score_of(hr=hr).score == int(met)


@pytest.mark.parametrize(("rr", "paco2", "met"), [
    pytest.param(20, None, False, id="rr20-no"),
    pytest.param(21, None, True, id="rr21-yes"),
    pytest.param(20.4, None, False, id="rr20.4->20-no"),
    pytest.param(20.5, None, True, id="rr20.5->21-yes"),
    pytest.param(None, 32, False, id="paco2-32-no"),
    pytest.param(None, 31.9, True, id="paco2-31.9-yes"),
    pytest.param(16, 28, True, id="rr-normal-paco2-low-yes"),
    pytest.param(24, 40, True, id="rr-high-paco2-normal-yes"),
    pytest.param(16, 40, False, id="both-normal-no"),
])
def test_respiratory_rate_above_20_or_paco2_below_32(rr: float | None, paco2: float | None,
                                                     met: bool) -> None:
    result = score_of(rr=rr, paco2=paco2)
    assert result.score == int(met)
    assert result.complete


@pytest.mark.parametrize(("wbc", "bands", "met"), [
    pytest.param(12.0, None, False, id="wbc12-no"),
    pytest.param(12.1, None, True, id="wbc12.1-yes"),
    pytest.param(12.01, None, True, id="wbc12.01-not-rounded-yes"),
    pytest.param(4.0, None, False, id="wbc4-no"),
    pytest.param(3.9, None, True, id="wbc3.9-yes"),
    pytest.param(None, 10, False, id="bands10-no"),
    pytest.param(None, 10.5, True, id="bands10.5-yes"),
    pytest.param(8.0, 15, True, id="wbc-normal-bands-high-yes"),
    pytest.param(8.0, 5, False, id="both-normal-no"),
])
def test_white_cells_above_12_below_4_or_bands_above_10(wbc: float | None,
                                                        bands: float | None,
                                                        met: bool) -> None:
    result = score_of(wbc=wbc, bands_pct=bands)
    assert result.score == int(met)
    assert result.complete


@pytest.mark.parametrize(("paco2", "met"), [
    pytest.param(31.99, True, id="31.99-not-rounded-yes"),
    pytest.param(32.0, False, id="32.0-no"),
])
def test_lab_values_are_not_rounded(paco2: float, met: bool) -> None:
    assert score_of(rr=16, paco2=paco2).score == int(met)


# --- the aggregate -----------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "met"), [
    pytest.param({}, (), id="0"),
    pytest.param({"hr": 110}, ("hr",), id="1-hr"),
    pytest.param({"temp": 38.6, "hr": 110}, ("temp", "hr"), id="2-temp-hr"),
    pytest.param({"rr": 24, "wbc": 2.5}, ("rr", "wbc"), id="2-rr-wbc"),
    pytest.param({"temp": 35.2, "hr": 110, "rr": 24}, ("temp", "hr", "rr"), id="3"),
    pytest.param({"temp": 39.0, "hr": 120, "rr": 28, "wbc": 18.0},
                 ("temp", "hr", "rr", "wbc"), id="4"),
])
def test_score_and_positive(changes: dict, met: tuple[str, ...]) -> None:
    result = score_of(**changes)
    assert result == SirsResult(score=len(met), positive=len(met) >= 2, complete=True,
                                missing=(), met=met)


# --- missing inputs ----------------------------------------------------------------------


def test_nothing_known() -> None:
    result = sirs(temp=None, hr=None, rr=None)
    assert result == SirsResult(score=0, positive=False, complete=False,
                                missing=("temp", "hr", "rr", "wbc"))


def test_vitals_only_is_incomplete_without_white_cells() -> None:
    result = sirs(temp=37.0, hr=80, rr=14)
    assert result.missing == ("wbc",)
    assert not result.complete


def test_positive_with_labs_missing() -> None:
    result = sirs(temp=38.5, hr=104, rr=None)
    assert (result.score, result.positive, result.complete) == (2, True, False)
    assert result.missing == ("rr", "wbc")


@pytest.mark.parametrize("name", ["temp", "hr", "rr", "wbc"])
def test_each_missing_criterion_is_listed(name: str) -> None:
    result = score_of(**{name: None})
    assert result.missing == (name,)
    assert not result.complete


# --- invalid input -----------------------------------------------------------------------


@pytest.mark.parametrize("changes", [
    pytest.param({"temp": -1.0}, id="negative-temp"),
    pytest.param({"hr": -3}, id="negative-hr"),
    pytest.param({"rr": math.inf}, id="inf-rr"),
    pytest.param({"paco2": -30}, id="negative-paco2"),
    pytest.param({"wbc": math.nan}, id="nan-wbc"),
    pytest.param({"bands_pct": 101}, id="bands-above-100"),
    pytest.param({"hr": "90"}, id="string-hr"),
])
def test_rejects_nonsense(changes: dict) -> None:
    with pytest.raises(ValueError):
        score_of(**changes)


# --- worked examples ---------------------------------------------------------------------


def test_worked_example_febrile_tachycardic() -> None:
    # T 38.7 > 38: met; HR 112 > 90: met; RR 18 <= 20 and no gas: not met;
    # WBC 14.2 > 12: met -> 3 criteria, positive.
    result = sirs(temp=38.7, hr=112, rr=18, wbc=14.2)
    assert (result.score, result.positive, result.met) == (3, True, ("temp", "hr", "wbc"))


def test_worked_example_hypothermic_with_bandaemia() -> None:
    # T 35.6 < 36: met; HR 84: not met; RR 16 but PaCO2 30 < 32: met;
    # WBC 7.5 normal but bands 14 % > 10: met -> 3, positive.
    result = sirs(temp=35.6, hr=84, rr=16, paco2=30, wbc=7.5, bands_pct=14)
    assert (result.score, result.positive, result.met) == (3, True, ("temp", "rr", "wbc"))


def test_worked_example_borderline_monitor_values() -> None:
    # T 38.04 -> 38.0, not > 38; HR 90.4 -> 90, not > 90; RR 20.5 -> 21 > 20: met;
    # WBC 11.9: not met -> 1, negative.
    result = sirs(temp=38.04, hr=90.4, rr=20.5, wbc=11.9)
    assert (result.score, result.positive, result.met) == (1, False, ("rr",))

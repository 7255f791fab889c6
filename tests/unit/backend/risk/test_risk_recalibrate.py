"""Local recalibration (backend.risk.recalibrate) with the hand-made one-tree model of
tests/risk_fixture.py on generated stays whose sepsis rate differs from the model's:
a new version with the same trees, a calibration that fits the local stays, thresholds
that alert on exactly the same hours, and clear errors for what cannot be done."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend.risk import registry
from backend.risk.features import hourly_features
from backend.risk.recalibrate import RecalibrationError, choose_stays, recalibrate
from backend.settings import Settings
from tests.risk_fixture import HIGH_RISK, LOW_RISK, write_model

PARENT = "20260101T000000Z"


def site(n_stays: int = 400, seed: int = 0, p_high: float = 0.3,
         p_low: float = 0.002) -> pd.DataFrame:
    """Stays of 20 hours; tachycardic hours (HR 130: the model's HIGH_RISK 0.88) are
    labelled positive with probability ``p_high``, the others (LOW_RISK 0.018) with
    ``p_low``: the model's risks are about three times too high here."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_stays):
        hr = np.where(rng.random(20) < 0.2, 130.0, 80.0)
        label = (rng.random(20) < np.where(hr > 110, p_high, p_low)).astype(np.int8)
        rows.append(pd.DataFrame({"patient_id": f"p{i:05d}", "hour": np.arange(1, 21),
                                  "hr": hr, "age": 60.0, "sex": 1.0, "label": label}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(cache_dir=tmp_path)
    write_model(s, PARENT, threshold=0.5)
    return s


def test_choose_stays_in_id_order() -> None:
    ids = ["p3", "p1", "p2", "p1", "p4"]
    sample = choose_stays(ids, first=2)
    assert (sample.local, sample.held_out) == (("p1", "p2"), ("p3", "p4"))
    assert choose_stays(ids, fraction=0.5).local == ("p1", "p2")
    assert choose_stays(ids, fraction=1.0).held_out == ()
    with pytest.raises(RecalibrationError, match="fewer than"):
        choose_stays(ids, first=9)
    with pytest.raises(RecalibrationError):
        choose_stays(ids)


def test_recalibration_registers_a_new_version_that_fits_the_site(settings) -> None:
    frame = site()
    meta = recalibrate(settings, frame, source="generated site", first=250)
    child = meta["version"]
    assert child != PARENT and meta["parent_version"] == PARENT
    assert registry.active_version(settings) == PARENT  # not activated unless asked
    parent_dir, child_dir = (registry.version_dir(settings, v) for v in (PARENT, child))
    assert (child_dir / "trees.json").read_text() == (parent_dir / "trees.json").read_text()
    assert "calibration" not in registry.read_metadata(settings, PARENT)  # parent unchanged

    reports = json.loads((child_dir / "recalibration.json").read_text())["reports"]
    local, held = reports["local"], reports["held_out"]
    assert local["n_stays"] == 250 and held["n_stays"] == 150
    # before: the model's risks are far too high; after: calibrated in the large on the
    # fitted stays (exactly: maximum likelihood) and much closer on the held-out ones
    assert local["before"]["expected_over_observed"] > 2.5
    assert local["after"]["calibration_intercept"] == pytest.approx(0.0, abs=1e-6)
    assert local["after"]["expected_over_observed"] == pytest.approx(1.0, abs=1e-6)
    assert abs(held["after"]["calibration_intercept"]) < abs(
        held["before"]["calibration_intercept"])
    assert held["after"]["brier"] < held["before"]["brier"]

    # the new version scores the two kinds of hours with the fitted (lower) risks and
    # alerts on exactly the same hours as the parent
    old, new = registry.load(settings, PARENT), registry.load(settings, child)
    history = frame[frame["patient_id"] == "p00399"].drop(columns=["patient_id", "label"])
    x = hourly_features(history)
    assert set(np.round(old.predict_features(x, monitor_only=True), 6)) <= {
        round(LOW_RISK, 6), round(HIGH_RISK, 6)}
    risk_new = new.score_frame(history)
    assert risk_new.max() < HIGH_RISK
    assert list(new.score_frame(history) >= new.threshold_for(history)) == \
        list(old.score_frame(history) >= old.threshold_for(history))
    assert held["alarms"]["after"]["sensitivity_patient"] == \
        held["alarms"]["before"]["sensitivity_patient"]


def test_intercept_mode_keeps_the_slope_and_local_thresholds_are_rechosen(settings) -> None:
    meta = recalibrate(settings, site(seed=1), source="generated", fraction=0.5,
                       mode="intercept", thresholds="local", activate=True)
    assert meta["calibration"]["b"] == 1.0
    assert registry.active_version(settings) == meta["version"]
    assert "re-chosen on the local stays" in meta["threshold_rule"]
    assert 0 < meta["threshold"] < 1


def test_too_few_septic_stays_and_bad_options_are_refused(settings) -> None:
    quiet = site(n_stays=50, p_high=0.0, p_low=0.0)
    with pytest.raises(RecalibrationError, match="septic stays"):
        recalibrate(settings, quiet, source="quiet site", fraction=1.0)
    with pytest.raises(RecalibrationError, match="unknown mode"):
        recalibrate(settings, site(), source="x", first=10, mode="beta")
    assert [m["version"] for m in registry.list_versions(settings)] == [PARENT]

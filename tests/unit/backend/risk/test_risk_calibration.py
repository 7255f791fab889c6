"""Calibration maps and calibration metrics (backend.risk.calibration): the logistic fit
against scikit-learn's, the metrics on generated risks whose truth is known, hand-worked
ECE and Brier, and the threshold inverse of every map."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from backend.risk import calibration as calib


def generated(n: int = 100_000, seed: int = 0, shift: float = 0.0,
              spread: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True risks ``p``, outcomes drawn from them, and a miscalibrated ``q`` with
    ``logit(q) = shift + spread * logit(p)``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-3.0, 1.5, n)
    p = calib.expit(z)
    y = (rng.random(n) < p).astype(float)
    return p, y, calib.expit(shift + spread * z)


def test_logistic_fit_matches_scikit_learn_without_penalty() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    y = (rng.random(5000) < calib.expit(-1.0 + 0.7 * x)).astype(float)
    a, b = calib.logistic_fit(x, y)
    ref = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(x[:, None], y)
    assert a == pytest.approx(ref.intercept_[0], abs=1e-6)
    assert b == pytest.approx(ref.coef_[0, 0], abs=1e-6)


def test_logistic_fit_needs_both_outcomes() -> None:
    with pytest.raises(ValueError, match="both outcomes"):
        calib.logistic_fit(np.arange(5.0), np.zeros(5))


def test_well_calibrated_risks_have_slope_one_and_intercept_zero() -> None:
    p, y, _ = generated()
    r = calib.calibration_report(y, p)
    assert r["calibration_slope"] == pytest.approx(1.0, abs=0.03)
    assert r["calibration_intercept"] == pytest.approx(0.0, abs=0.03)
    assert r["expected_over_observed"] == pytest.approx(1.0, abs=0.03)
    assert r["brier"] < r["brier_base_rate"]
    assert r["ece"] < 0.005


def test_too_high_risks_have_a_negative_intercept() -> None:
    _, y, q = generated(shift=0.8)  # every odds 2.2 times too high
    r = calib.calibration_report(y, q)
    assert r["calibration_intercept"] == pytest.approx(-0.8, abs=0.05)
    assert r["calibration_slope"] == pytest.approx(1.0, abs=0.03)
    assert r["expected_over_observed"] > 1.5


def test_too_extreme_risks_have_a_slope_below_one_and_platt_repairs_them() -> None:
    _, y, q = generated(shift=0.8, spread=1.5)  # too extreme
    r = calib.calibration_report(y, q)
    assert r["calibration_slope"] == pytest.approx(1 / 1.5, abs=0.03)
    cal = calib.fit_platt(y, q)
    fixed = calib.calibration_report(y, cal.apply(q))
    assert fixed["calibration_slope"] == pytest.approx(1.0, abs=1e-6)
    assert fixed["calibration_intercept"] == pytest.approx(0.0, abs=1e-6)
    assert fixed["brier"] < r["brier"]
    # monotone: the ranking (and so the AUROC) is unchanged
    order = np.argsort(q)
    assert np.all(np.diff(cal.apply(q)[order]) >= 0)


def test_intercept_only_platt_keeps_the_slope() -> None:
    _, y, q = generated(shift=-0.5)
    cal = calib.fit_platt(y, q, slope=False)
    assert cal.b == 1.0 and cal.a == pytest.approx(0.5, abs=0.05)


def test_isotonic_is_monotone_and_round_trips() -> None:
    _, y, q = generated(n=20_000, shift=0.8, spread=1.5)
    cal = calib.fit_isotonic(y, q, fitted_on={"n": 20_000})
    assert list(cal.x) == sorted(cal.x) and list(cal.y) == sorted(cal.y)
    again = calib.Calibration.from_dict(cal.to_dict())
    assert again == cal
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(cal.apply(grid)) >= 0)
    assert calib.calibration_report(y, cal.apply(q))["ece"] < 0.002


def test_ece_and_brier_by_hand() -> None:
    # two equal-count bins: predicted 0.1 and 0.5, observed 0/2 and 2/2
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.1, 0.5, 0.5])
    assert calib.expected_calibration_error(y, p, bins=2) == pytest.approx(
        0.5 * 0.1 + 0.5 * 0.5)
    r = calib.calibration_report(y, p)
    assert r["brier"] == pytest.approx((0.01 * 2 + 0.25 * 2) / 4)
    assert r["brier_base_rate"] == pytest.approx(0.25)
    assert r["expected_over_observed"] == pytest.approx(0.3 / 0.5)


def test_identity_and_missing_calibration() -> None:
    assert calib.Calibration.from_dict(None) == calib.IDENTITY
    r = np.array([0.01, 0.2])
    assert list(calib.IDENTITY.apply(r)) == list(r)
    with pytest.raises(ValueError, match="unknown calibration"):
        calib.Calibration("beta")
    with pytest.raises(ValueError, match="unknown calibration"):
        calib.fit("beta", np.array([0, 1]), np.array([0.1, 0.2]))


@pytest.mark.parametrize("make", [
    lambda y, q: calib.fit_platt(y, q),
    lambda y, q: calib.fit_isotonic(y, q),
    lambda y, q: calib.IDENTITY,
])
def test_inverse_is_a_threshold_on_the_raw_scale(make) -> None:
    _, y, q = generated(n=20_000, shift=0.4, spread=1.2, seed=3)
    cal = make(y, q)
    calibrated = cal.apply(q)
    rng = np.random.default_rng(4)
    for th in rng.choice(calibrated, 25):
        raw = cal.inverse(float(th))
        if math.isfinite(raw):
            # every raw risk above the inverse alerts, every one clearly below does not
            assert np.all(calibrated[q > raw * (1 + 1e-9)] >= th - 1e-12)
            assert np.all(calibrated[q < raw * (1 - 1e-9)] < th + 1e-12)

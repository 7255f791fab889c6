"""Evaluation metrics and baselines of the risk model against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from backend.messages import Consciousness
from backend.risk.baselines import BASELINES, baseline_scores
from backend.risk.metrics import (
    alert_starts,
    alerts_per_patient_day,
    auprc,
    auroc,
    brier,
    lead_times,
    lead_window,
    median_lead_time,
    patient_scores,
    patient_sensitivity_specificity,
    reliability,
    sensitivity_specificity,
    threshold_for_hourly_sensitivity,
    threshold_for_patient_sensitivity,
)
from backend.risk.model_evaluation import _weighted_auroc, bootstrap_auroc
from backend.risk.utility import Cohort
from backend.scores import News2Inputs, news2, qsofa, sirs
from backend.settings import Settings

# --- ranking metrics -------------------------------------------------------------------


def test_auroc_hand_computed() -> None:
    # positives 0.35, 0.8; negatives 0.1, 0.4. Pairs won: 0.35>0.1, 0.8>0.1, 0.8>0.4;
    # lost: 0.35<0.4 -> 3/4
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # a tie counts one half: positive 0.5 vs negative 0.5 -> 0.5
    assert auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)


def test_auprc_is_average_precision_hand_computed() -> None:
    # ranked: 0.8 (pos) P=1 R=.5; 0.4 (neg); 0.35 (pos) P=2/3 R=1; 0.1 (neg)
    # AP = 0.5 * 1 + 0.5 * 2/3 = 0.8333
    assert auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5 + 1 / 3)


def test_ranking_metrics_undefined_with_one_class() -> None:
    assert np.isnan(auroc([0, 0], [0.1, 0.2]))
    assert np.isnan(auprc([1, 1], [0.1, 0.2]))


def test_sensitivity_specificity() -> None:
    # TP 1 of 2 positives; TN 2 of 3 negatives
    sens, spec = sensitivity_specificity([1, 1, 0, 0, 0], [1, 0, 1, 0, 0])
    assert (sens, spec) == (pytest.approx(0.5), pytest.approx(2 / 3))


def test_brier() -> None:
    # ((0.2 - 0)^2 + (0.6 - 1)^2) / 2 = (0.04 + 0.16) / 2 = 0.1
    assert brier([0, 1], [0.2, 0.6]) == pytest.approx(0.1)


def test_reliability_uniform_bins() -> None:
    y = [0, 0, 1, 1, 1]
    p = [0.05, 0.15, 0.15, 0.95, 0.85]
    r = reliability(y, p, bins=10, strategy="uniform")
    # bin [0,.1): 0.05 -> observed 0; bin [.1,.2): 0.15, 0.15 -> observed 1/2;
    # bin [.8,.9): 0.85 -> 1; bin [.9,1]: 0.95 -> 1
    assert r["count"] == [1, 2, 1, 1]
    assert r["observed"] == [0.0, 0.5, 1.0, 1.0]
    assert r["mean_predicted"] == pytest.approx([0.05, 0.15, 0.85, 0.95])


# --- alerts, patient level, lead time --------------------------------------------------


def cohort_ab() -> Cohort:
    # stay A: 6 non-septic hours; stay B: 3 non-septic hours
    return Cohort.from_rows(["A"] * 6 + ["B"] * 3, [0] * 9)


def test_alerts_are_starts_of_positive_runs_per_stay() -> None:
    c = cohort_ab()
    pred = np.array([0, 1, 1, 0, 1, 1, 1, 1, 0])  # A: 6 hours, B: 3 hours
    # A: runs starting at rows 1 and 4 -> 2 alerts; B starts positive right after A's
    # positive last row, but a new stay is a new alert -> 1 alert
    assert alert_starts(c, pred).tolist() == [0, 1, 0, 0, 1, 0, 1, 0, 0]
    # 3 alerts over 9 patient-hours = 9/24 patient-days -> 3 / 0.375 = 8 per patient-day
    assert alerts_per_patient_day(c, pred) == pytest.approx(8.0)


def septic20() -> Cohort:
    # 20 hours, first label at row 10 -> t_sepsis = 16
    return Cohort.from_rows(["S"] * 20, [0] * 10 + [1] * 10)


def test_lead_time_and_window() -> None:
    c = septic20()
    pred = np.zeros(20, dtype=int)
    pred[[5, 12]] = 1
    # default 48 h window [16-48, 16] holds rows 0..16: first alert row 5 -> lead 16-5 = 11
    assert lead_times(c, pred).tolist() == [11.0]
    # 8 h window [8, 16]: first alert in it is row 12 -> lead 4
    assert lead_times(c, pred, window=8).tolist() == [4.0]
    assert lead_window(c, window=8).tolist() == [False] * 8 + [True] * 9 + [False] * 3
    # an alert only after t_sepsis (row 17) is not a detection
    late = np.zeros(20, dtype=int)
    late[17] = 1
    assert np.isnan(lead_times(c, late)).all()
    assert np.isnan(median_lead_time(c, late))


def test_patient_level_sensitivity_specificity_and_scores() -> None:
    # stays: S septic (t_sepsis 16), N1 and N2 non-septic of 4 hours
    c = Cohort.from_rows(["S"] * 20 + ["N1"] * 4 + ["N2"] * 4, [0] * 10 + [1] * 10 + [0] * 8)
    pred = np.zeros(28, dtype=int)
    pred[14] = 1  # S detected 2 h before t_sepsis
    pred[21] = 1  # N1 false alarm
    sens, spec = patient_sensitivity_specificity(c, pred)
    assert (sens, spec) == (1.0, 0.5)
    score = np.linspace(0, 1, 28)
    y, best = patient_scores(c, score)
    # S counts rows <= 16 only -> max at row 16; N1 max row 23; N2 max row 27
    assert y.tolist() == [1, 0, 0]
    assert best == pytest.approx([16 / 27, 23 / 27, 1.0])


def test_threshold_for_sensitivity() -> None:
    # four septic stays with patient scores 0.9, 0.7, 0.4, 0.2 (one row each, label 1)
    c = Cohort.from_rows(["a", "b", "c", "d"], [1, 1, 1, 1])
    s = np.array([0.9, 0.7, 0.4, 0.2])
    # sensitivity 0.5 -> the 2nd highest (0.7); 0.6 -> ceil(2.4) = 3rd (0.4); 1 -> 0.2
    assert threshold_for_patient_sensitivity(c, s, 0.5) == 0.7
    assert threshold_for_patient_sensitivity(c, s, 0.6) == 0.4
    assert threshold_for_patient_sensitivity(c, s, 1.0) == 0.2
    assert threshold_for_hourly_sensitivity([1, 1, 0, 1], [0.9, 0.5, 0.8, 0.1], 2 / 3) == 0.5


def test_weighted_auroc_and_bootstrap() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 2)  # with ties
    _, codes = np.unique(s, return_inverse=True)
    got = _weighted_auroc(codes, codes.max() + 1, y.astype(float), np.ones(200))
    assert got == pytest.approx(roc_auc_score(y, s))
    # weight 2 on a row = the row twice
    w = np.ones(200)
    w[:10] = 2
    s2 = np.concatenate([s, s[:10]])
    y2 = np.concatenate([y, y[:10]])
    assert _weighted_auroc(codes, codes.max() + 1, y.astype(float), w) == pytest.approx(
        roc_auc_score(y2, s2))
    cohort = Cohort.from_rows(np.repeat(np.arange(40), 5).astype(str), y)
    boot = bootstrap_auroc(cohort, {"m": s}, n=30, seed=1)
    assert boot["hourly"]["m"].shape == (30,)
    assert 0.5 < np.nanmean(boot["hourly"]["m"]) < 1.0


# --- baselines on hourly data ------------------------------------------------------------


def test_baselines_use_the_platform_scores_on_last_observed_values() -> None:
    h = pd.DataFrame({
        "patient_id": ["p"] * 3,
        "hour": [1, 2, 3],
        "hr": [125.0, np.nan, 80.0],
        "spo2": [95.0, 88.0, np.nan],
        "temp": [38.5, np.nan, np.nan],
        "sbp": [95.0, np.nan, 130.0],
        "rr": [24.0, np.nan, 18.0],
        "wbc": [np.nan, 13.0, np.nan],
        "paco2": [np.nan, np.nan, np.nan],
        "fio2": [np.nan, 0.5, np.nan],
    })
    b = baseline_scores(h, Settings())
    # hour 2 carries hr 125, temp 38.5, sbp 95, rr 24 forward; fio2 0.5 -> oxygen
    expected_news2 = news2(News2Inputs(rr=24, spo2=88, o2_supplemental=True, sbp=95,
                                       pulse=125, temp=38.5,
                                       consciousness=Consciousness.ALERT)).total
    assert b["news2"].iloc[1] == expected_news2
    # hour 1: no FiO2 yet -> oxygen unscored (0 points)
    assert b["news2"].iloc[0] == news2(News2Inputs(
        rr=24, spo2=95, sbp=95, pulse=125, temp=38.5, consciousness=Consciousness.ALERT)).total
    assert b["qsofa"].tolist() == [qsofa(rr=24, sbp=95).score, 2, 0]
    assert b["sirs"].iloc[1] == sirs(temp=38.5, hr=125, rr=24, wbc=13).score == 4
    # reference rule: HR 125 > 120 (h1), SpO2 88 < 90 (h2), h3 HR 80 and SpO2 88 carried
    assert b["reference"].tolist() == [1, 1, 1]
    names = [x.name for x in BASELINES]
    assert names == ["NEWS2 >= 5", "NEWS2 >= 7", "qSOFA >= 2", "SIRS >= 2",
                     "HR > 120 or SpO2 < 90"]

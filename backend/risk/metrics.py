"""Evaluation metrics on hourly predictions of concatenated stays (see ``utility.Cohort``).

Definitions used throughout (docs/model.md repeats them):

* hourly: every patient-hour is a case, ``SepsisLabel`` is the truth.
* patient-level: a septic stay counts as detected when an alert falls in its *lead
  window*, the ``LEAD_WINDOW_HOURS`` hours before and including the onset hour
  ``t_sepsis`` (first label + 6); a non-septic stay is a false positive when any of its
  hours alerts. A continuous score's patient-level value is its maximum over the same
  hours, which gives patient-level ROC/PR curves.
* an *alert* is the start of a run of positive hours (the hour is positive and the
  previous hour of the stay was not), so a condition that stays true is one alert.
  Alerts per patient-day = alerts / (patient-hours / 24), over every hour of every stay.
* lead time = ``t_sepsis`` - hour of the first alert in the lead window, in hours.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from backend.risk.utility import Cohort

LEAD_WINDOW_HOURS = 48


def _two_classes(y: np.ndarray) -> bool:
    return 0 < int(np.sum(y)) < len(y)


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, score)) if _two_classes(y) else float("nan")


def auprc(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision (area under the step-wise precision-recall curve)."""
    y = np.asarray(y)
    return float(average_precision_score(y, score)) if _two_classes(y) else float("nan")


def sensitivity_specificity(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    y = np.asarray(y).astype(bool)
    p = np.asarray(pred).astype(bool)
    pos, neg = y.sum(), (~y).sum()
    sens = float((p & y).sum() / pos) if pos else float("nan")
    spec = float((~p & ~y).sum() / neg) if neg else float("nan")
    return sens, spec


def brier(y: np.ndarray, prob: np.ndarray) -> float:
    return float(np.mean((np.asarray(prob, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def reliability(y: np.ndarray, prob: np.ndarray, bins: int = 10,
                strategy: str = "quantile") -> dict[str, list[float]]:
    """Reliability curve: per bin the mean predicted risk, the observed rate and the count.

    ``strategy="quantile"`` uses equal-count bins (risks are skewed towards 0), "uniform"
    equal-width bins on [0, 1]. Empty bins are left out.
    """
    p = np.asarray(prob, dtype=float)
    yy = np.asarray(y, dtype=float)
    if strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    else:
        edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    out: dict[str, list[float]] = {"bin_lower": [], "bin_upper": [], "mean_predicted": [],
                                   "observed": [], "count": []}
    for b in range(len(edges) - 1):
        m = idx == b
        if not m.any():
            continue
        out["bin_lower"].append(float(edges[b]))
        out["bin_upper"].append(float(edges[b + 1]))
        out["mean_predicted"].append(float(p[m].mean()))
        out["observed"].append(float(yy[m].mean()))
        out["count"].append(int(m.sum()))
    return out


def alert_starts(cohort: Cohort, pred: np.ndarray) -> np.ndarray:
    """Rows where an alert starts: positive, and first row of the stay or previous negative."""
    p = np.asarray(pred).astype(bool)
    prev = np.zeros_like(p)
    prev[1:] = p[:-1]
    prev[cohort.pos == 0] = False
    return p & ~prev


def alerts_per_patient_day(cohort: Cohort, pred: np.ndarray) -> float:
    days = cohort.n_rows / 24.0
    return float(alert_starts(cohort, pred).sum() / days) if days else float("nan")


def lead_window(cohort: Cohort, window: int = LEAD_WINDOW_HOURS) -> np.ndarray:
    """Per row: does the row count for the patient-level result of its stay?

    Septic stays: rows with ``t_sepsis - window <= pos <= t_sepsis``. Non-septic: all rows.
    """
    t = cohort.row_t_sepsis
    septic = cohort.row_septic
    return ~septic | ((cohort.pos >= t - window) & (cohort.pos <= t))


def patient_scores(cohort: Cohort, score: np.ndarray,
                   window: int = LEAD_WINDOW_HOURS) -> tuple[np.ndarray, np.ndarray]:
    """(septic per stay, max score over the stay's counted rows); -inf if none counted."""
    s = np.where(lead_window(cohort, window), np.asarray(score, dtype=float), -np.inf)
    best = np.full(len(cohort.stay_ids), -np.inf)
    np.maximum.at(best, cohort.stay, s)
    return cohort.stay_septic.astype(int), best


def patient_sensitivity_specificity(cohort: Cohort, pred: np.ndarray,
                                    window: int = LEAD_WINDOW_HOURS) -> tuple[float, float]:
    y, best = patient_scores(cohort, np.asarray(pred, dtype=float), window)
    return sensitivity_specificity(y, best > 0)


def lead_times(cohort: Cohort, pred: np.ndarray,
               window: int = LEAD_WINDOW_HOURS) -> np.ndarray:
    """Per septic stay: t_sepsis - first alerting hour in its lead window; NaN if none."""
    p = np.asarray(pred).astype(bool) & lead_window(cohort, window) & cohort.row_septic
    first = np.full(len(cohort.stay_ids), np.inf)
    rows = np.flatnonzero(p)
    np.minimum.at(first, cohort.stay[rows], cohort.pos[rows].astype(float))
    lead = np.full(len(first), np.nan)
    hit = np.isfinite(first)
    lead[hit] = cohort.stay_t_sepsis[hit] - first[hit]
    return lead[cohort.stay_septic]


def median_lead_time(cohort: Cohort, pred: np.ndarray,
                     window: int = LEAD_WINDOW_HOURS) -> float:
    lt = lead_times(cohort, pred, window)
    lt = lt[~np.isnan(lt)]
    return float(np.median(lt)) if len(lt) else float("nan")


def threshold_for_patient_sensitivity(cohort: Cohort, score: np.ndarray, target: float,
                                      window: int = LEAD_WINDOW_HOURS) -> float:
    """The highest threshold whose patient-level sensitivity is at least ``target``."""
    y, best = patient_scores(cohort, score, window)
    septic_best = np.sort(best[y == 1])[::-1]
    if not len(septic_best) or not np.isfinite(target):
        return float("nan")
    k = max(1, math.ceil(round(target * len(septic_best), 9)))
    return float(septic_best[min(k, len(septic_best)) - 1])


def threshold_for_hourly_sensitivity(y: np.ndarray, score: np.ndarray, target: float) -> float:
    """The highest threshold whose hourly sensitivity is at least ``target``."""
    pos = np.sort(np.asarray(score, dtype=float)[np.asarray(y) == 1])[::-1]
    if not len(pos) or not np.isfinite(target):
        return float("nan")
    k = max(1, math.ceil(round(target * len(pos), 9)))
    return float(pos[min(k, len(pos)) - 1])


def downsample_curve(x: np.ndarray, y: np.ndarray, thresholds: np.ndarray | None = None,
                     max_points: int = 300) -> dict[str, list[float]]:
    """At most ``max_points`` points of a curve (always keeping both ends), for plotting."""
    n = len(x)
    keep = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)) if n else []
    out = {"x": [float(v) for v in np.asarray(x)[keep]],
           "y": [float(v) for v in np.asarray(y)[keep]]}
    if thresholds is not None:
        out["threshold"] = [_finite(v) for v in np.asarray(thresholds)[keep]]
    return out


def _finite(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def roc_points(y: np.ndarray, score: np.ndarray, max_points: int = 300) -> dict:
    if not _two_classes(np.asarray(y)):
        return {"x": [], "y": [], "threshold": []}
    fpr, tpr, th = roc_curve(y, score)
    return downsample_curve(fpr, tpr, th, max_points)


def pr_points(y: np.ndarray, score: np.ndarray, max_points: int = 300) -> dict:
    if not _two_classes(np.asarray(y)):
        return {"x": [], "y": [], "threshold": []}
    precision, recall, th = precision_recall_curve(y, score)
    # sklearn returns decreasing recall with one more point than thresholds
    return downsample_curve(recall[:-1][::-1], precision[:-1][::-1], th[::-1], max_points)

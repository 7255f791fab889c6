"""The PhysioNet/CinC 2019 utility score (Reyna et al., Crit Care Med 2020).

Implemented from the published definition and the Challenge's ``evaluate_sepsis_score.py``
(github.com/physionetchallenges/evaluation-2019):

* A septic stay's "sepsis time" is ``t_sepsis = (first row with SepsisLabel 1) + 6``
  (the labels were already shifted 6 h early), in rows (hours) from the stay's first row.
* With ``d = t - t_sepsis`` for the row at position ``t``:

  - positive prediction, septic stay: ``d <= -6``: ``max(1/6 * d + 2, -0.05)`` (0 at -12,
    rising to 1 at -6, never below the false-positive penalty); ``-6 < d <= 3``:
    ``-1/9 * d + 1/3`` (1 at -6 falling to 0 at +3);
  - negative prediction, septic stay: 0 while ``d <= -6``; ``-2/9 * d - 4/3`` for
    ``-6 < d <= 3`` (0 at -6 falling to -2 at +3);
  - any prediction on a septic stay after ``d > 3``: 0;
  - non-septic stay: -0.05 per positive prediction, 0 per negative.

* The cohort utility is normalised: ``(U - U_inaction) / (U_optimal - U_inaction)`` with
  ``U_inaction`` = every prediction negative, and ``U_optimal`` = positive exactly on the
  septic rows with ``-12 <= d <= 3``.

Everything works on a concatenation of stays (rows of one stay contiguous and in time
order), described by a ``Cohort``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DT_EARLY = -12
DT_OPTIMAL = -6
DT_LATE = 3
MAX_U_TP = 1.0
MIN_U_FN = -2.0
U_FP = -0.05
U_TN = 0.0

# u = m * d + b on the three linear pieces (same algebra as the Challenge's code)
_M1 = MAX_U_TP / (DT_OPTIMAL - DT_EARLY)  # 1/6
_B1 = -_M1 * DT_EARLY  # 2
_M2 = -MAX_U_TP / (DT_LATE - DT_OPTIMAL)  # -1/9
_B2 = -_M2 * DT_LATE  # 1/3
_M3 = MIN_U_FN / (DT_LATE - DT_OPTIMAL)  # -2/9
_B3 = -_M3 * DT_OPTIMAL  # -4/3


@dataclass(frozen=True)
class Cohort:
    """Row layout of several stays concatenated: ids, positions and sepsis times."""

    patient_ids: np.ndarray  # per row
    labels: np.ndarray  # per row, 0/1 (SepsisLabel)
    pos: np.ndarray  # per row: position in its stay (0 = first hour)
    start: np.ndarray  # per row: row index of its stay's first row
    stay: np.ndarray  # per row: index of its stay (0..n_stays-1)
    stay_ids: np.ndarray  # per stay
    stay_length: np.ndarray  # per stay
    stay_septic: np.ndarray  # per stay, bool
    stay_t_sepsis: np.ndarray  # per stay: first label + 6 (float, inf when not septic)

    @classmethod
    def from_rows(cls, patient_ids: np.ndarray | list, labels: np.ndarray | list) -> Cohort:
        pid = np.asarray(patient_ids)
        y = np.asarray(labels, dtype=np.int8)
        n = len(pid)
        if len(y) != n:
            raise ValueError("patient_ids and labels differ in length")
        new = np.ones(n, dtype=bool)
        if n > 1:
            new[1:] = pid[1:] != pid[:-1]
        firsts = np.flatnonzero(new)
        if len(firsts) != len(set(pid.tolist())):
            raise ValueError("each stay's rows must be contiguous")
        stay = np.cumsum(new) - 1
        r = np.arange(n)
        start = firsts[stay]
        pos = r - start
        length = np.diff(np.append(firsts, n))
        septic = np.zeros(len(firsts), dtype=bool)
        first_label = np.full(len(firsts), np.inf)
        pos_label = np.flatnonzero(y == 1)
        if len(pos_label):
            s = stay[pos_label]
            np.minimum.at(first_label, s, pos[pos_label].astype(float))
            septic[s] = True
        t_sepsis = np.where(septic, first_label - DT_OPTIMAL, np.inf)
        return cls(pid, y, pos, start, stay, pid[firsts], length, septic, t_sepsis)

    @property
    def n_rows(self) -> int:
        return len(self.pos)

    @property
    def row_t_sepsis(self) -> np.ndarray:
        return self.stay_t_sepsis[self.stay]

    @property
    def row_septic(self) -> np.ndarray:
        return self.stay_septic[self.stay]


def row_utilities(cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the utility of predicting positive, and of predicting negative."""
    septic = cohort.row_septic
    d = cohort.pos - np.where(septic, cohort.row_t_sepsis, 0.0)
    early = septic & (d <= DT_OPTIMAL)
    window = septic & (d > DT_OPTIMAL) & (d <= DT_LATE)
    u_pos = np.where(septic, 0.0, U_FP)
    u_neg = np.where(septic, 0.0, U_TN)
    u_pos = np.where(early, np.maximum(_M1 * d + _B1, U_FP), u_pos)
    u_pos = np.where(window, _M2 * d + _B2, u_pos)
    u_neg = np.where(window, _M3 * d + _B3, u_neg)
    return u_pos, u_neg


def optimal_predictions(cohort: Cohort) -> np.ndarray:
    """The Challenge's "best" predictor: positive on septic rows with -12 <= d <= 3."""
    d = cohort.pos - np.where(cohort.row_septic, cohort.row_t_sepsis, 0.0)
    return cohort.row_septic & (d >= DT_EARLY) & (d <= DT_LATE)


def total_utility(cohort: Cohort, predictions: np.ndarray) -> float:
    """Unnormalised utility: the sum over all rows (and stays)."""
    u_pos, u_neg = row_utilities(cohort)
    pred = np.asarray(predictions).astype(bool)
    return float(np.where(pred, u_pos, u_neg).sum())


def normalized_utility(cohort: Cohort, predictions: np.ndarray) -> float:
    """``(U - U_inaction) / (U_optimal - U_inaction)``; 1 = optimal, 0 = never alarm.

    NaN when the cohort has no septic stay (the optimal and inaction predictors agree).
    """
    u_pos, u_neg = row_utilities(cohort)
    pred = np.asarray(predictions).astype(bool)
    observed = np.where(pred, u_pos, u_neg).sum()
    best = np.where(optimal_predictions(cohort), u_pos, u_neg).sum()
    inaction = u_neg.sum()
    if best == inaction:
        return float("nan")
    return float((observed - inaction) / (best - inaction))


def utility_curve(cohort: Cohort, scores: np.ndarray, thresholds: np.ndarray,
                  row_weights: np.ndarray | None = None) -> np.ndarray:
    """Normalised utility of ``scores >= threshold`` for each threshold, in one pass.

    ``row_weights`` weighs each row's utility (e.g. septic stays up or down, to see the
    cohort as a site with another share of septic stays would be); none = the definition.
    """
    u_pos, u_neg = row_utilities(cohort)
    if row_weights is not None:
        w = np.asarray(row_weights, dtype=np.float64)
        u_pos, u_neg = u_pos * w, u_neg * w
    best = np.where(optimal_predictions(cohort), u_pos, u_neg).sum()
    inaction = u_neg.sum()
    gain = u_pos - u_neg
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(gain[order])])
    desc = s[order]
    # number of rows with score >= th == count of desc >= th
    k = np.searchsorted(-desc, -np.asarray(thresholds, dtype=np.float64), side="right")
    if best == inaction:
        return np.full(len(k), np.nan)
    return cum[k] / (best - inaction)

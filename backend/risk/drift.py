"""Population stability index (PSI): how far the live risk scores have moved from the
scores the model was validated on.

    PSI = sum over bins i of (a_i - e_i) * ln(a_i / e_i)

with ``e_i`` the reference share and ``a_i`` the live share of scores in bin *i*
(Siddiqi N. *Credit Risk Scorecards*, Wiley 2006; Yurdakul B, Western Michigan
University 2018, for its statistical properties). The bins are the deciles of the
reference scores, so each holds about a tenth of them. An empty bin would make the
logarithm infinite; shares are floored at ``EPSILON`` first (a common convention; it
caps one empty bin's contribution near 0.1 * ln(0.1 / 1e-4) = 0.69).

Thresholds (the conventional rule of thumb of the same sources):

* PSI < 0.10: stable;
* 0.10 <= PSI < 0.25: **watch**, a moderate shift (look at the case mix, the devices);
* PSI >= 0.25: **drift**, a major shift: the model's thresholds and performance no
  longer hold as measured, review before trusting its alerts.

A day with fewer than ``MIN_SCORES`` live scores gets no PSI: with few scores the
sampling noise alone exceeds the watch threshold.

The reference is the model's hourly risks on its held-out test patients with their labs
hidden (the stream carries no labs, see ``backend/risk/live.py``), stored in the
version's ``evaluation.json`` by ``icu model evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

EPSILON = 1e-4
N_BINS = 10
WATCH = 0.10
DRIFT = 0.25
MIN_SCORES = 50


class Stability(StrEnum):
    STABLE = "stable"
    WATCH = "watch"
    DRIFT = "drift"
    TOO_FEW = "too few scores"


@dataclass(frozen=True)
class Reference:
    """Bin edges (inner cut points, ascending) and the reference share of each bin."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]
    n: int

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "shares": list(self.shares), "n": self.n}

    @classmethod
    def from_dict(cls, d: dict) -> Reference:
        return cls(tuple(float(x) for x in d["edges"]), tuple(float(x) for x in d["shares"]),
                   int(d["n"]))


def bin_counts(scores: np.ndarray, edges: tuple[float, ...] | list[float]) -> np.ndarray:
    """Counts per bin; bin i is ``edges[i-1] <= score < edges[i]`` (first and last open)."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64),
                          np.asarray(scores, dtype=np.float64), side="right")
    return np.bincount(idx, minlength=len(edges) + 1)


def reference(scores: np.ndarray, n_bins: int = N_BINS) -> Reference:
    """Decile bins of the reference scores (ties can merge bins) and their shares."""
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise ValueError("no reference scores")
    cuts = np.unique(np.quantile(scores, np.linspace(0, 1, n_bins + 1)[1:-1]))
    counts = bin_counts(scores, cuts)
    return Reference(tuple(cuts.tolist()), tuple((counts / counts.sum()).tolist()),
                     int(scores.size))


def shares(scores: np.ndarray, ref: Reference) -> np.ndarray:
    counts = bin_counts(scores, ref.edges)
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(expected: np.ndarray | list[float], actual: np.ndarray | list[float],
        epsilon: float = EPSILON) -> float:
    """PSI of two share vectors over the same bins (each sums to 1)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), epsilon)
    a = np.maximum(np.asarray(actual, dtype=np.float64), epsilon)
    if e.shape != a.shape:
        raise ValueError(f"different bins: {e.shape} and {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def stability(value: float | None, n: int) -> Stability:
    if value is None or n < MIN_SCORES:
        return Stability.TOO_FEW
    if value >= DRIFT:
        return Stability.DRIFT
    return Stability.WATCH if value >= WATCH else Stability.STABLE


def psi_of_scores(scores: np.ndarray, ref: Reference) -> tuple[float | None, Stability]:
    """PSI of live ``scores`` against ``ref`` and what it means (None: too few scores)."""
    n = int(np.isfinite(np.asarray(scores, dtype=np.float64)).sum())
    if n < MIN_SCORES:
        return None, Stability.TOO_FEW
    value = psi(ref.shares, shares(scores, ref))
    return value, stability(value, n)

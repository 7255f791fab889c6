"""NEWS2, qSOFA, SIRS and the reference rule on the hourly PhysioNet data.

The scores are the platform's own (``backend.scores``), applied to each patient-hour's
*last observed* values (cleaned and carried forward within the stay, as a chart shows
them; ``features.last_observed``). What the data can and cannot give them:

* NEWS2: respiration rate, SpO2 (scale 1; scale 2 is a clinician's prescription that
  the data does not record), systolic BP, pulse (HR) and temperature are recorded.
  Consciousness (ACVPU) is not in the data and is taken as Alert (scores 0), so the total
  is a lower bound. Supplemental oxygen is taken from FiO2: a recorded FiO2 above 0.21 in
  the last ``FIO2_MAX_AGE_HOURS`` hours means oxygen (2 points); FiO2 <= 0.21 means air;
  no recent FiO2 leaves the parameter unscored (0 points; FiO2 is mostly charted for
  ventilated patients, so patients on nasal oxygen score as if on air).
* qSOFA: respiratory rate and systolic BP; mentation (GCS) is not in the data and is
  not scored, so qSOFA >= 2 needs both RR >= 22 and SBP <= 100.
* SIRS: temperature, heart rate, respiratory rate or PaCO2, and WBC (carried forward);
  band forms are not in the data.
* Reference rule (the system this platform replaces): HR > 120 or SpO2 < 90 with the
  thresholds of ``settings.alerting``, on the hourly values; the live rule's persistence
  delay cannot apply to hourly data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from backend.messages import Consciousness
from backend.risk.features import last_observed
from backend.scores import News2Inputs, news2, qsofa, sirs
from backend.settings import Settings

FIO2_MAX_AGE_HOURS = 24.0
_INPUTS = ("hr", "spo2", "temp", "sbp", "rr", "wbc", "paco2", "fio2")


@dataclass(frozen=True, slots=True)
class Baseline:
    name: str
    score: str  # column of ``baseline_scores``
    threshold: float  # alert when score >= threshold

    def alerts(self, scores: pd.DataFrame) -> np.ndarray:
        return scores[self.score].to_numpy() >= self.threshold


BASELINES: tuple[Baseline, ...] = (
    Baseline("NEWS2 >= 5", "news2", 5),
    Baseline("NEWS2 >= 7", "news2", 7),
    Baseline("qSOFA >= 2", "qsofa", 2),
    Baseline("SIRS >= 2", "sirs", 2),
    Baseline("HR > 120 or SpO2 < 90", "reference", 1),
)


def _none(v: float) -> float | None:
    return None if v != v else float(v)  # NaN -> None


@lru_cache(maxsize=1 << 18)
def _news2_total(rr: float | None, spo2: float | None, o2: bool | None, sbp: float | None,
                 pulse: float | None, temp: float | None) -> int:
    return news2(News2Inputs(rr=rr, spo2=spo2, spo2_scale=1, o2_supplemental=o2, sbp=sbp,
                             pulse=pulse, consciousness=Consciousness.ALERT, temp=temp)).total


@lru_cache(maxsize=1 << 18)
def _qsofa_score(rr: float | None, sbp: float | None) -> int:
    return qsofa(rr=rr, sbp=sbp, consciousness=None, gcs=None).score


@lru_cache(maxsize=1 << 18)
def _sirs_score(temp: float | None, hr: float | None, rr: float | None,
                paco2: float | None, wbc: float | None) -> int:
    return sirs(temp=temp, hr=hr, rr=rr, paco2=paco2, wbc=wbc).score


def baseline_scores(history: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per row of ``history``: ``news2``, ``qsofa``, ``sirs`` totals and ``reference`` (0/1)."""
    last = last_observed(history, _INPUTS, max_age_hours={"fio2": FIO2_MAX_AGE_HOURS})
    cols = {c: [_none(v) for v in last[c].to_numpy()] for c in _INPUTS}
    o2 = [None if f is None else f > 0.21 for f in cols["fio2"]]
    news = [_news2_total(*args) for args in zip(cols["rr"], cols["spo2"], o2, cols["sbp"],
                                                 cols["hr"], cols["temp"], strict=True)]
    qs = [_qsofa_score(rr, sbp) for rr, sbp in zip(cols["rr"], cols["sbp"], strict=True)]
    si = [_sirs_score(*args) for args in zip(cols["temp"], cols["hr"], cols["rr"],
                                              cols["paco2"], cols["wbc"], strict=True)]
    hr = last["hr"].to_numpy()
    spo2 = last["spo2"].to_numpy()
    with np.errstate(invalid="ignore"):
        ref = (hr > settings.alerting.reference_hr_above) | (
            spo2 < settings.alerting.reference_spo2_below)
    return pd.DataFrame({"news2": news, "qsofa": qs, "sirs": si, "reference": ref.astype(int)},
                        index=history.index)

"""Features per patient-hour from the hours up to and including that hour (no look-ahead).

One pure function, ``hourly_features(history)``, serves training, evaluation and the
streaming scorer. ``history`` has one row per hour of ICU stay:

* ``hour``: hours since ICU admission, 1 for the first hour (PhysioNet's ``ICULOS``);
  consecutive within a stay (an hour without data is a row of NaN, not a missing row);
* vitals, named as ``backend.vitals.Vital`` (``hr spo2 temp sbp map dbp rr``): the
  value for that hour (live: the hourly aggregate of the validated readings), NaN when
  nothing was measured;
* labs (optional; ``wbc platelets creatinine bun bilirubin lactate``): the result
  reported in that hour, NaN otherwise. A frame without lab columns is a monitor-only
  patient; the model was trained with a share of stays whose labs were hidden for that;
* ``age`` (years) and ``sex`` (1 male, 0 female), static;
* optionally ``patient_id``: several stays in one frame, each stay's rows contiguous.

Row *t* of the result depends on rows ``<= t`` of the same stay only; that is tested by
truncating histories (tests/unit/backend/risk/test_risk_features.py). Every computation is per row
over a fixed look-back, so scoring one patient gives exactly the numbers training saw.

The feature set and why (details in docs/model.md): for each vital the last observed
value, hours since it was measured, change over 1 h and 6 h, standard deviation over 6 h
and deviation from the patient's own mean so far; the worst value over 24 h of HR, RR,
temperature (max) and SBP, MAP, SpO2 (min); shock index (HR/SBP); last value and hours
since for six common labs; hour of stay, age and sex. Administrative fields that differ
between hospitals (Unit1, Unit2, HospAdmTime) are not used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backend.vitals import VITALS as VITAL_SPECS
from backend.vitals import Vital

VITALS: tuple[str, ...] = ("hr", "spo2", "temp", "sbp", "map", "dbp", "rr")
LABS: tuple[str, ...] = ("wbc", "platelets", "creatinine", "bun", "bilirubin", "lactate")
# Inputs of the baselines that are not model features.
EXTRA_LABS: tuple[str, ...] = ("paco2", "fio2")

# Adult reference values, used where a parameter has never been measured in the stay
# (trees need a number; "never measured" is carried by the hours-since feature).
NORMAL: dict[str, float] = {
    "hr": 80.0, "spo2": 97.0, "temp": 37.0, "sbp": 120.0, "map": 85.0, "dbp": 70.0,
    "rr": 16.0,
    "wbc": 8.0, "platelets": 250.0, "creatinine": 0.9, "bun": 14.0, "bilirubin": 0.7,
    "lactate": 1.0,
}
# Plausible lab ranges; values outside are data errors and dropped (labs are reported in
# the units of the Challenge: x10^9/L, x10^9/L, mg/dL, mg/dL, mg/dL, mmol/L, mmHg, fraction).
LAB_RANGES: dict[str, tuple[float, float]] = {
    "wbc": (0.01, 500.0), "platelets": (1.0, 2500.0), "creatinine": (0.05, 50.0),
    "bun": (0.5, 300.0), "bilirubin": (0.05, 80.0), "lactate": (0.1, 40.0),
    "paco2": (5.0, 200.0), "fio2": (0.21, 1.0),
}
VITAL_STALE_CAP_HOURS = 24.0  # hours-since is capped here; "never measured" = the cap
LAB_STALE_CAP_HOURS = 72.0
TREND_HOURS: tuple[int, ...] = (1, 6)
WINDOW_HOURS = 6
LONG_WINDOW_HOURS = 24
# the direction in which each vital is dangerous: its extreme over the long window
EXTREMES: dict[str, str] = {"hr": "max", "rr": "max", "temp": "max", "sbp": "min",
                            "map": "min", "spo2": "min"}
AGE_RANGE = (18.0, 89.0)  # PhysioNet ages are capped at 89 (de-identification)
DEFAULT_AGE = 65.0
DEFAULT_SEX = 0.5  # unknown


def _feature_names() -> tuple[str, ...]:
    names: list[str] = []
    for v in VITALS:
        names += [v, f"{v}_hours_since", *(f"{v}_d{k}" for k in TREND_HOURS),
                  f"{v}_std{WINDOW_HOURS}"]
    for v in VITALS:
        names.append(f"{v}_dev")
    for v, how in EXTREMES.items():
        names.append(f"{v}_{how}{LONG_WINDOW_HOURS}")
    names.append("shock_index")
    for lab in LABS:
        names += [lab, f"{lab}_hours_since"]
    names += ["hour", "age", "sex"]
    # added for transfer to other sites (appended, so the first 64 keep their positions)
    names += [f"{lab}_delta" for lab in LABS]
    names.append(f"hour{HOUR_CAP}")
    return tuple(names)


HOUR_CAP = 48
FEATURES: tuple[str, ...] = _feature_names()
LAB_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f.split("_")[0] in LABS)
VITAL_FEATURES: tuple[str, ...] = tuple(f for f in FEATURES if f not in LAB_FEATURES)
# The 64 features of the first versions.
V1_FEATURES: tuple[str, ...] = FEATURES[:64]


def without(base: tuple[str, ...], *drop: str) -> tuple[str, ...]:
    unknown = set(drop) - set(base)
    if unknown:
        raise ValueError(f"not in the feature set: {sorted(unknown)}")
    return tuple(f for f in base if f not in drop)


# Named feature sets a version can be trained on (``TrainConfig.feature_set``).
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "v1": V1_FEATURES,
}


class Rows:
    """Row positions and the first row of each row's stay, for contiguous stays."""

    def __init__(self, history: pd.DataFrame) -> None:
        if "hour" not in history.columns:
            raise ValueError("history needs an 'hour' column (hours since ICU admission)")
        n = len(history)
        self.n = n
        self.r = np.arange(n)
        hours = history["hour"].to_numpy(dtype=np.float64)
        if "patient_id" in history.columns:
            pid = history["patient_id"].to_numpy()
            new = np.ones(n, dtype=bool)
            if n > 1:
                new[1:] = pid[1:] != pid[:-1]
            if np.count_nonzero(new) != pd.unique(pid).size:
                raise ValueError("each patient's rows must be contiguous")
        else:
            new = np.zeros(n, dtype=bool)
            if n:
                new[0] = True
        steps = np.diff(hours)
        if np.any(steps[~new[1:]] != 1):
            raise ValueError("hours must be consecutive within a stay (one row per hour)")
        self.start = np.maximum.accumulate(np.where(new, self.r, 0))

    def lag(self, x: np.ndarray, k: int) -> np.ndarray:
        """``x`` k rows earlier in the same stay; NaN before the stay's first row."""
        out = np.full(self.n, np.nan)
        src = self.r - k
        ok = src >= self.start
        out[ok] = x[src[ok]]
        return out

    def last_observed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Last non-NaN value up to each row, and the hours since it (NaN if never)."""
        idx = np.where(np.isnan(x), -1, self.r)
        idx = np.maximum.accumulate(idx) if self.n else idx
        ok = idx >= self.start
        value = np.full(self.n, np.nan)
        value[ok] = x[idx[ok]]
        since = np.where(ok, self.r - idx, np.nan).astype(np.float64)
        return value, since

    def first_observed(self, x: np.ndarray) -> np.ndarray:
        """First non-NaN value of the stay up to each row (NaN until there is one)."""
        if np.isnan(x).all():  # a lab never measured (every live patient): no groupby
            return np.full(self.n, np.nan)
        idx = np.where(np.isnan(x), self.n, self.r)
        first = pd.Series(idx).groupby(self.start).cummin().to_numpy()
        out = np.full(self.n, np.nan)
        ok = first < self.n
        out[ok] = x[first[ok]]
        return out

    def stay_mean(self, x: np.ndarray) -> np.ndarray:
        """Mean of the non-NaN values from the stay's first row up to each row (NaN if
        none); ``x`` one column, or several side by side (one groupby for them all)."""
        m = x if x.ndim == 2 else x[:, None]
        ok = ~np.isnan(m)
        if not ok.any():
            return np.full(x.shape, np.nan)
        # The sums stay pandas' (compensated summation, so a stay's mean does not depend
        # on the rows before it in the frame); the counts are whole numbers, exact in a
        # plain cumulative sum less the count before the stay's first row.
        total = pd.DataFrame(np.where(ok, m, 0.0)).groupby(self.start).cumsum().to_numpy()
        seen = np.cumsum(ok, axis=0)
        before = np.zeros_like(seen)
        later = self.start > 0
        before[later] = seen[self.start[later] - 1]
        count = seen - before
        mean = np.divide(total, count, out=np.full(m.shape, np.nan), where=count > 0)
        return mean.reshape(x.shape)

    def window_extreme(self, x: np.ndarray, w: int, how: str) -> np.ndarray:
        """Max or min of the non-NaN values in the last ``w`` rows (NaN if none)."""
        f = np.fmax if how == "max" else np.fmin
        out = x.copy()
        for k in range(1, w):
            out = f(out, self.lag(x, k))
        return out

    def window_std(self, x: np.ndarray, w: int) -> np.ndarray:
        """Sample standard deviation of the non-NaN values in the last ``w`` rows (>= 2)."""
        m = np.stack([self.lag(x, k) if k else x for k in range(w)], axis=1)
        ok = ~np.isnan(m)
        count = ok.sum(axis=1)
        total = np.where(ok, m, 0.0).sum(axis=1)
        mean = np.divide(total, count, out=np.zeros(self.n), where=count > 0)
        dev = np.where(ok, m - mean[:, None], 0.0)
        var = np.divide((dev**2).sum(axis=1), count - 1, out=np.zeros(self.n), where=count > 1)
        return np.sqrt(var)


def _column(history: pd.DataFrame, name: str) -> np.ndarray:
    if name not in history.columns:
        return np.full(len(history), np.nan)
    col = history[name]
    if not pd.api.types.is_numeric_dtype(col.dtype):
        col = pd.to_numeric(col, errors="coerce")
    return col.to_numpy(dtype=np.float64, copy=True)


def clean(history: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as floats, values a device or lab cannot produce set to NaN.

    Vitals use the platform's plausible ranges (``backend.vitals.VITALS``, the same limits
    live validation applies), so 0 ("sensor off") and artefacts never reach the model.
    """
    x = _column(history, name)
    if name in VITALS:
        spec = VITAL_SPECS[Vital(name)]
        lo, hi = spec.plausible_min, spec.plausible_max
    elif name in LAB_RANGES:
        lo, hi = LAB_RANGES[name]
    else:
        return x
    with np.errstate(invalid="ignore"):
        x[(x < lo) | (x > hi)] = np.nan
    return x


def last_observed(history: pd.DataFrame, columns: tuple[str, ...] | list[str],
                  max_age_hours: dict[str, float] | None = None) -> pd.DataFrame:
    """Cleaned values carried forward within each stay (NaN before the first measurement).

    ``max_age_hours`` limits carrying forward for some columns (older -> NaN).
    """
    rows = Rows(history)
    out: dict[str, np.ndarray] = {}
    for name in columns:
        value, since = rows.last_observed(clean(history, name))
        if max_age_hours and name in max_age_hours:
            value = np.where(since <= max_age_hours[name], value, np.nan)
        out[name] = value
    return pd.DataFrame(out, index=history.index)


def hourly_features(history: pd.DataFrame) -> pd.DataFrame:
    """The feature matrix, one row per row of ``history`` (same index), columns FEATURES."""
    rows = Rows(history)
    out: dict[str, np.ndarray] = {}
    last: dict[str, np.ndarray] = {}
    cleaned = {v: clean(history, v) for v in VITALS}
    means = rows.stay_mean(np.column_stack([cleaned[v] for v in VITALS]))
    for i, v in enumerate(VITALS):
        x = cleaned[v]
        value, since = rows.last_observed(x)
        last[v] = value
        out[v] = np.where(np.isnan(value), NORMAL[v], value)
        out[f"{v}_hours_since"] = np.minimum(np.nan_to_num(since, nan=VITAL_STALE_CAP_HOURS),
                                             VITAL_STALE_CAP_HOURS)
        for k in TREND_HOURS:
            # change since k hours ago (or since the stay's first row if that is later)
            earlier = value[np.maximum(rows.r - k, rows.start)] if rows.n else value
            out[f"{v}_d{k}"] = np.nan_to_num(value - earlier, nan=0.0)
        out[f"{v}_std{WINDOW_HOURS}"] = rows.window_std(x, WINDOW_HOURS)
        # deviation of the last value from the patient's own mean so far (0 if unknown)
        out[f"{v}_dev"] = np.nan_to_num(value - means[:, i], nan=0.0)
        if v in EXTREMES:
            how = EXTREMES[v]
            ext = rows.window_extreme(x, LONG_WINDOW_HOURS, how)
            ext = np.where(np.isnan(ext), out[v], ext)
            out[f"{v}_{how}{LONG_WINDOW_HOURS}"] = ext
    with np.errstate(invalid="ignore", divide="ignore"):
        shock = last["hr"] / last["sbp"]
    out["shock_index"] = np.where(np.isnan(shock), NORMAL["hr"] / NORMAL["sbp"], shock)
    for lab in LABS:
        value, since = rows.last_observed(clean(history, lab))
        out[lab] = np.where(np.isnan(value), NORMAL[lab], value)
        out[f"{lab}_hours_since"] = np.minimum(np.nan_to_num(since, nan=LAB_STALE_CAP_HOURS),
                                               LAB_STALE_CAP_HOURS)
        # change since the stay's first result: Sepsis-3 counts a rise in SOFA (creatinine,
        # bilirubin up, platelets down) from the patient's own baseline
        first = rows.first_observed(clean(history, lab))
        out[f"{lab}_delta"] = np.nan_to_num(value - first, nan=0.0)
    out["hour"] = _column(history, "hour")
    out[f"hour{HOUR_CAP}"] = np.minimum(out["hour"], HOUR_CAP)
    age = _column(history, "age")
    out["age"] = np.clip(np.where(np.isnan(age), DEFAULT_AGE, age), *AGE_RANGE)
    sex = _column(history, "sex")
    out["sex"] = np.where(np.isin(sex, (0.0, 1.0)), sex, DEFAULT_SEX)
    matrix = np.column_stack([out[f] for f in FEATURES]) if rows.n else np.empty(
        (0, len(FEATURES)))
    return pd.DataFrame(matrix, index=history.index, columns=list(FEATURES))


def without_labs(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` as a monitor-only patient would have it: every lab column removed."""
    return history.drop(columns=[c for c in (*LABS, *EXTRA_LABS) if c in history.columns])

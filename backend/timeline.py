"""The patient timeline's data, at the resolution its window needs (patient page).

A physician looks at one hour or at three days. 72 h of 1 Hz readings are 259,200 rows
per patient; reading them all for every redraw takes far longer than the 1 s budget, and
a chart cannot show them anyway. So the source is chosen by the window:

* ``<= RAW_MAX_WINDOW_MS`` (2 h): the raw readings (``readings_by_patient_day``), at most
  7,200 rows;
* longer: the per-minute extremes (``readings_by_patient_minute``, written by the stream
  job's sink), at most 4,320 rows for 72 h; each minute contributes its minimum AND its
  maximum, so a 20-second desaturation is still there;

and then both are reduced to the screen width with the peak-preserving min/max buckets of
``backend.downsample``. Every extreme survives both steps (``tests/unit/backend/test_timeline.py``).

Per-minute parts: a micro-batch of the stream job writes one *part* per patient-minute it
touched (:func:`minute_parts`); a minute split over two batches has two parts, merged on
read (:func:`merge_parts`). A replayed batch rewrites the same parts (same key), and even
duplicated readings in another part cannot change a minimum, a maximum or the newest
value, so the table is safe on replay.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Literal

import numpy as np

from backend.downsample import buckets_for, min_max_buckets
from backend.messages import ValidatedReading
from backend.vitals import Vital

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
RAW_MAX_WINDOW_MS = 2 * HOUR_MS
MAX_WINDOW_MS = 7 * 24 * HOUR_MS  # a custom range longer than a week is refused
DEFAULT_MAX_POINTS = 1600  # per series: about one point per pixel of a 1920 px screen
NEWS2 = "news2"
# What the timeline draws, in the order of its rows (pulse is drawn with HR's row data
# only when HR is absent, so it is not a row of its own).
PARAMS: tuple[str, ...] = ("hr", "spo2", "rr", "sbp", "dbp", "map", "temp", NEWS2)
PRESETS_MS: dict[str, int] = {"1h": HOUR_MS, "8h": 8 * HOUR_MS, "24h": 24 * HOUR_MS,
                              "72h": 72 * HOUR_MS}

Resolution = Literal["raw", "minute"]


def resolution_for_window(window_ms: int) -> Resolution:
    """Raw readings for short windows, per-minute extremes beyond."""
    if window_ms <= 0:
        raise ValueError(f"window must be positive, got {window_ms} ms")
    return "raw" if window_ms <= RAW_MAX_WINDOW_MS else "minute"


def minute_of(ms: int) -> int:
    return ms - ms % MINUTE_MS


_NAME: dict[Vital, str] = {v: v.value for v in Vital}  # Enum.value is a slow descriptor


def _params_of(r: ValidatedReading) -> dict[str, float]:
    out = {_NAME[v]: float(x) for v, x in r.vitals.items() if x is not None}
    if r.news2 is not None:
        out[NEWS2] = float(r.news2)
    return out


@dataclass(frozen=True, slots=True)
class MinutePart:
    """One micro-batch's share of one patient-minute."""

    patient_id: str
    minute: int  # ms, start of the minute
    part_ts: int  # ms, the first reading of this batch in this minute (the part's key)
    n: int
    last_ts: int
    mins: dict[str, float]
    maxs: dict[str, float]
    lasts: dict[str, float]


def minute_parts(readings: Iterable[ValidatedReading]) -> list[MinutePart]:
    """The per-minute extremes of one micro-batch's readings."""
    groups: dict[tuple[str, int], list[ValidatedReading]] = defaultdict(list)
    for r in readings:
        groups[(r.patient_id, minute_of(r.ts))].append(r)
    parts = []
    for (patient_id, minute), rows in groups.items():
        rows.sort(key=lambda r: (r.ts, r.seq))
        mins: dict[str, float] = {}
        maxs: dict[str, float] = {}
        lasts: dict[str, float] = {}
        for r in rows:
            for name, value in _params_of(r).items():
                if name not in mins or value < mins[name]:
                    mins[name] = value
                if name not in maxs or value > maxs[name]:
                    maxs[name] = value
                lasts[name] = value
        parts.append(MinutePart(patient_id, minute, rows[0].ts, len(rows), rows[-1].ts,
                                mins, maxs, lasts))
    return parts


@dataclass(slots=True)
class MinuteExtremes:
    minute: int
    n: int = 0
    last_ts: int = -1
    mins: dict[str, float] = field(default_factory=dict)
    maxs: dict[str, float] = field(default_factory=dict)
    lasts: dict[str, float] = field(default_factory=dict)
    _last_at: dict[str, int] = field(default_factory=dict)


def merge_parts(parts: Iterable[MinutePart]) -> list[MinuteExtremes]:
    """Stored parts merged into one entry per minute, oldest first."""
    merged: dict[int, MinuteExtremes] = {}
    for p in parts:
        m = merged.get(p.minute)
        if m is None:
            m = merged[p.minute] = MinuteExtremes(p.minute)
        m.n += p.n
        m.last_ts = max(m.last_ts, p.last_ts)
        for name, value in p.mins.items():
            m.mins[name] = min(value, m.mins.get(name, value))
        for name, value in p.maxs.items():
            m.maxs[name] = max(value, m.maxs.get(name, value))
        for name, value in p.lasts.items():
            if p.last_ts >= m._last_at.get(name, -1):
                m.lasts[name] = value
                m._last_at[name] = p.last_ts
    return [merged[k] for k in sorted(merged)]


@dataclass(frozen=True, slots=True)
class Series:
    ts: np.ndarray  # int64 ms
    values: np.ndarray  # float64, NaN = gap

    def __len__(self) -> int:
        return int(self.ts.size)


def _empty() -> Series:
    return Series(np.empty(0, np.int64), np.empty(0, np.float64))


@dataclass(frozen=True, slots=True)
class RawPoint:
    """One raw reading as the timeline draws it: the time (ms since the epoch, UTC) and
    one field per name of ``PARAMS``, in its order (``None`` when absent)."""

    ts: int
    hr: float | None
    spo2: float | None
    rr: float | None
    sbp: float | None
    dbp: float | None
    map: float | None
    temp: float | None
    news2: float | None


def series_from_raw(rows: Sequence[RawPoint],
                    params: Sequence[str] = PARAMS) -> dict[str, Series]:
    """Raw points to one series per parameter (a parameter's absent values left out)."""
    out = {}
    ts = np.fromiter((r.ts for r in rows), dtype=np.int64, count=len(rows))
    for name in params:
        get = attrgetter(name)
        values = np.fromiter(
            (np.nan if (v := get(r)) is None else v for r in rows), dtype=np.float64,
            count=len(rows))
        keep = ~np.isnan(values)
        out[name] = Series(ts[keep], values[keep])
    return out


MIN_SUFFIX = ":min"


def series_from_minutes(minutes: Sequence[MinuteExtremes],
                        params: Sequence[str] = PARAMS) -> dict[str, Series]:
    """Per parameter two series at each minute's middle: ``name`` the minute maxima and
    ``name + MIN_SUFFIX`` the minute minima (drawn as a band between the two)."""
    out = {}
    for name in params:
        ts: list[int] = []
        lows: list[float] = []
        highs: list[float] = []
        for m in minutes:
            lo = m.mins.get(name)
            if lo is None:
                continue
            ts.append(m.minute + MINUTE_MS // 2)
            lows.append(lo)
            highs.append(m.maxs.get(name, lo))
        if not ts:
            out[name], out[name + MIN_SUFFIX] = _empty(), _empty()
            continue
        t = np.asarray(ts, np.int64)
        out[name] = Series(t, np.asarray(highs, np.float64))
        out[name + MIN_SUFFIX] = Series(t.copy(), np.asarray(lows, np.float64))
    return out


def reduce_to_width(series: Mapping[str, Series], start_ms: int, end_ms: int,
                    max_points: int = DEFAULT_MAX_POINTS) -> dict[str, Series]:
    """Every series down to at most ``max_points`` points, keeping each bucket's min and
    max (``backend.downsample.min_max_buckets``)."""
    buckets = buckets_for(end_ms - start_ms, max_points)
    return {
        name: Series(*min_max_buckets(s.ts, s.values, start_ms=start_ms, end_ms=end_ms,
                                      buckets=buckets))
        for name, s in series.items()
    }


def check_window(start_ms: int, end_ms: int) -> None:
    """A window the timeline can draw; ``ValueError`` with a message for the screen."""
    if end_ms <= start_ms:
        raise ValueError("The end of the range must be after its start.")
    if end_ms - start_ms > MAX_WINDOW_MS:
        raise ValueError("Choose a range of at most 7 days.")
    if end_ms - start_ms < MINUTE_MS:
        raise ValueError("Choose a range of at least one minute.")


__all__ = [
    "DEFAULT_MAX_POINTS", "HOUR_MS", "MINUTE_MS", "MIN_SUFFIX", "NEWS2", "PARAMS", "PRESETS_MS",
    "RAW_MAX_WINDOW_MS", "MinuteExtremes", "MinutePart", "RawPoint", "Series", "check_window",
    "merge_parts", "minute_parts", "reduce_to_width", "resolution_for_window",
    "series_from_minutes", "series_from_raw",
]

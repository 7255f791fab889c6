"""What the patient page shows, assembled from storage (no presentation here).

:func:`load_timeline` is the one entry point of the timeline: it picks the resolution for
the window (``backend.timeline``), reads only what that resolution needs and reduces it
to the screen width. :func:`load_timeline_naive` is the obvious alternative (every raw
row of the window, then the same reduction); it exists as the benchmark's baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cassandra.cluster import Session

from backend.storage.minutes import MinuteStore
from backend.timeline import (
    DEFAULT_MAX_POINTS,
    Resolution,
    Series,
    check_window,
    reduce_to_width,
    resolution_for_window,
    series_from_minutes,
    series_from_raw,
)


@dataclass(frozen=True, slots=True)
class Timeline:
    patient_id: str
    start_ms: int
    end_ms: int
    resolution: Resolution
    source_rows: int  # rows read from Cassandra
    series: dict[str, Series]
    read_ms: float  # time spent reading (for the page's footnote and the benchmark)


_stores: dict[int, MinuteStore] = {}


def minute_store(session: Session) -> MinuteStore:
    """One set of prepared statements per session."""
    store = _stores.get(id(session))
    if store is None or store.session is not session:
        store = _stores[id(session)] = MinuteStore(session)
    return store


def load_timeline(session: Session, patient_id: str, start_ms: int, end_ms: int,
                  max_points: int = DEFAULT_MAX_POINTS) -> Timeline:
    check_window(start_ms, end_ms)
    store = minute_store(session)
    started = time.perf_counter()
    resolution = resolution_for_window(end_ms - start_ms)
    if resolution == "raw":
        rows = store.raw_between(patient_id, start_ms, end_ms)
        series = series_from_raw(rows)
        n = len(rows)
    else:
        minutes = store.between(patient_id, start_ms, end_ms)
        series = series_from_minutes(minutes)
        n = len(minutes)
    read_ms = (time.perf_counter() - started) * 1000
    return Timeline(patient_id, start_ms, end_ms, resolution, n,
                    reduce_to_width(series, start_ms, end_ms, max_points), read_ms)


def load_timeline_naive(session: Session, patient_id: str, start_ms: int, end_ms: int,
                        max_points: int = DEFAULT_MAX_POINTS) -> Timeline:
    """Baseline: every raw reading of the window, whatever its length."""
    store = minute_store(session)
    started = time.perf_counter()
    rows = store.raw_between(patient_id, start_ms, end_ms)
    read_ms = (time.perf_counter() - started) * 1000
    return Timeline(patient_id, start_ms, end_ms, "raw", len(rows),
                    reduce_to_width(series_from_raw(rows), start_ms, end_ms, max_points),
                    read_ms)

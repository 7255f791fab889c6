"""What the patient page shows, assembled from storage (no presentation here).

:func:`load_timeline` is the one entry point of the timeline: it picks the resolution for
the window (``backend.timeline``), reads only what that resolution needs and reduces it
to the screen width. :func:`load_timeline_naive` is the obvious alternative (every raw
row of the window, then the same reduction); it exists as the benchmark's baseline.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from backend.alerting.status import AlertStatus
from backend.messages import ValidatedReading
from backend.storage.alerts import AlertRow, AlertStore
from backend.storage.cassandra import Session
from backend.storage.minutes import MinuteStore
from backend.storage.readings import ReadingStore
from backend.storage.risk_scores import RiskScoreStore
from backend.storage.statements import store as _store
from backend.storage.timestamps import to_ms
from backend.timeline import (
    DEFAULT_MAX_POINTS,
    HOUR_MS,
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


def minute_store(session: Session) -> MinuteStore:
    return _store(MinuteStore, session)


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


@dataclass(frozen=True, slots=True)
class RiskNow:
    risk: float
    threshold: float
    above: bool
    hour_ms: int
    model_version: str


def risk_series(session: Session, patient_id: str, start_ms: int, end_ms: int) -> Series:
    """The live sepsis-risk scores (one per patient-hour, ``streaming.risk_job``) whose
    hour starts in the window, oldest first."""
    store = _store(RiskScoreStore, session)
    rows = sorted(store.for_patient(patient_id, start_ms - HOUR_MS, end_ms),
                  key=lambda r: r.hour_ts)
    ts = np.array([r.hour_ts for r in rows], dtype=np.int64)
    values = np.array([r.risk for r in rows], dtype=np.float64)
    return Series(ts, values)


def latest_risk(session: Session, patient_id: str, now_ms: int,
                lookback_ms: int = 24 * HOUR_MS) -> RiskNow | None:
    """The newest live risk score of the last ``lookback_ms``, if the patient has one."""
    rows = _store(RiskScoreStore, session).for_patient(patient_id, now_ms - lookback_ms, now_ms + 1)
    newest = max(rows, key=lambda r: r.hour_ts, default=None)
    if newest is None or math.isnan(newest.risk):
        return None
    return RiskNow(risk=newest.risk, threshold=newest.threshold, above=newest.above,
                   hour_ms=newest.hour_ts, model_version=newest.model_version)


def newest_reading_ms(session: Session, patient_id: str, now_ms: int) -> int | None:
    return minute_store(session).newest_ts(patient_id, now_ms)


def window_end(newest_ms: int | None, now_ms: int) -> int:
    """Where the presets end: now while the patient is being monitored, otherwise just
    after the newest reading (a discharged or replayed stay still opens on its data)."""
    if newest_ms is None or now_ms - newest_ms <= 5 * 60_000:
        return now_ms
    return newest_ms + 60_000


FIT_MAX_MS = 8 * HOUR_MS  # the "fit" window shows at most one shift
FIT_MIN_MS = 10 * 60_000


def first_reading_ms(session: Session, patient_id: str, since_ms: int,
                     until_ms: int) -> int | None:
    """The time of the first reading in ``[since, until)``, or ``None``: one single-row
    query per day partition (readings are clustered by time), oldest day first."""
    return _store(ReadingStore, session).first_ts(patient_id, since_ms, until_ms)


def fit_window(first_ms: int | None, end_ms: int) -> tuple[int, int]:
    """The default timeline window: from just before the patient's first reading of the
    last eight hours to ``end_ms`` (a demo's quarter of an hour fills the chart instead
    of its right edge), at least ten minutes, at most eight hours."""
    if first_ms is None or first_ms >= end_ms:
        return end_ms - FIT_MAX_MS, end_ms
    span = end_ms - first_ms
    start = first_ms - max(10_000, span // 50)  # a little room before the first point
    start = max(start, end_ms - FIT_MAX_MS)
    return min(start, end_ms - FIT_MIN_MS), end_ms


def _ms(value: datetime | None) -> int | None:
    return None if value is None else to_ms(value)


@dataclass(frozen=True, slots=True)
class AlertHistory:
    alert_id: str
    rule: str
    priority: str
    message: str
    detected_ms: int
    onset_ms: int | None
    status: str
    status_by: str | None
    status_ms: int | None
    cleared_ms: int | None
    # who acknowledged, kept apart from status_by (an escalation or the system's
    # auto-resolve after the acknowledgement overwrites that)
    acknowledged_by: str | None = None
    acknowledged_ms: int | None = None
    escalation_level: int = 0
    resolved_ms: int | None = None

    @property
    def at_ms(self) -> int:
        """When the condition began (its onset), or when it was detected."""
        return self.onset_ms if self.onset_ms is not None else self.detected_ms


def alerts_between(session: Session, patient_id: str, start_ms: int, end_ms: int,
                   limit: int = 500) -> list[AlertHistory]:
    """The patient's alerts raised in ``[start, end)`` with their lifecycle (status, who
    acknowledged and when, when the condition ended), oldest first."""
    # placed at the onset of the condition (device time): a reading replayed late is
    # detected late, but the physician needs to see when the patient changed
    alerts = _store(AlertStore, session)
    index = [r for r in alerts.for_patient(patient_id, limit)
             if start_ms <= _ms(r.onset_ts or r.detected_ts) < end_ms]
    out = []
    for r, row in zip(index, alerts.get_many([r.alert_id for r in index]), strict=True):
        a = row or AlertRow(r.alert_id)
        status = a.status or AlertStatus.RAISED
        acked_by, acked_ts = a.acknowledged_by, a.acknowledged_ts
        if acked_by is None and status == AlertStatus.ACKNOWLEDGED:  # rows from before the column
            acked_by, acked_ts = a.status_by, a.status_ts
        out.append(AlertHistory(
            r.alert_id, r.rule, r.priority, r.message,
            to_ms(r.detected_ts), _ms(r.onset_ts),
            status, a.status_by, _ms(a.status_ts),
            _ms(a.cleared_ts or r.cleared_ts),
            acked_by, _ms(acked_ts), a.level,
            _ms(a.resolved_ts),
        ))
    out.sort(key=lambda h: h.at_ms)
    return out


def current_state(session: Session, ward: str, bed: str,
                  patient_id: str) -> ValidatedReading | None:
    """The bed's latest reading (NEWS2, its time), if it is this patient's."""
    for r in _store(ReadingStore, session).latest_for_ward(ward):
        if r.bed == bed and r.patient_id == patient_id:
            return r
    return None

"""Live risk scores (migration 0600_risk_scores): per patient, and per model version and
day for monitoring. Writes are idempotent upserts keyed by the hour scored."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from backend.risk.live import HourScore
from backend.storage.statements import prepared
from backend.storage.timestamps import aware, day_of, to_ms
from backend.storage.timestamps import to_datetime as _dt


def _float(value: float | None) -> float:
    """A score column; NaN when unset (the driver gives ``None``): a gap in a chart."""
    return math.nan if value is None else float(value)


def hour_score(row: Mapping[str, Any]) -> HourScore:
    """A ``risk_scores_by_patient`` row as the score it was written from. Unset columns
    (never written by :meth:`RiskScoreStore.write`, which sets them all): risk and
    threshold NaN, flags False, no inputs."""
    return HourScore(
        patient_id=row["patient_id"], hour=row["hour"] or 0, hour_ts=to_ms(row["hour_ts"]),
        risk=_float(row["risk"]), threshold=_float(row["threshold"]),
        above=bool(row["above"]), monitor_only=bool(row["monitor_only"]),
        model_version=row["model_version"] or "", n_readings=row["n_readings"] or 0,
        inputs=dict(row["inputs"] or {}))


@dataclass(frozen=True, slots=True)
class ModelScore:
    """One live score of a model version (``risk_scores_by_model_day``), for monitoring."""

    hour_ts: datetime  # start of the hour scored, aware UTC
    patient_id: str
    risk: float  # NaN when unset
    above: bool
    monitor_only: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModelScore:
        return cls(aware(row["hour_ts"]), row["patient_id"], _float(row["risk"]),
                   bool(row["above"]), bool(row["monitor_only"]))


def days_back(n: int, today: date | None = None) -> list[date]:
    """The last ``n`` UTC days, oldest first, ending today."""
    today = today or datetime.now(UTC).date()
    return [today - timedelta(days=k) for k in range(n - 1, -1, -1)]


class RiskScoreStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_patient = prepared(
            session,
            "INSERT INTO risk_scores_by_patient (patient_id, hour_ts, hour, risk, threshold,"
            " above, monitor_only, model_version, n_readings, inputs, scored_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self._by_model_day = prepared(
            session,
            "INSERT INTO risk_scores_by_model_day (model_version, day, hour_ts, patient_id,"
            " risk, above, monitor_only, scored_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        self._for_patient = prepared(
            session,
            "SELECT * FROM risk_scores_by_patient WHERE patient_id = ? AND hour_ts >= ?"
            " AND hour_ts < ?")
        self._for_model_day = prepared(
            session,
            "SELECT hour_ts, patient_id, risk, above, monitor_only"
            " FROM risk_scores_by_model_day WHERE model_version = ? AND day = ?")

    def write(self, scores: Sequence[HourScore], scored_ms: int) -> None:
        """Store scores (both tables); raises if any write fails, so the batch is retried."""
        if not scores:
            return
        scored = _dt(scored_ms)
        rows_p = [(s.patient_id, _dt(s.hour_ts), s.hour, s.risk, s.threshold, s.above,
                   s.monitor_only, s.model_version, s.n_readings, s.inputs, scored)
                  for s in scores]
        rows_m = [(s.model_version, day_of(s.hour_ts), _dt(s.hour_ts), s.patient_id, s.risk,
                   s.above, s.monitor_only, scored) for s in scores]
        for stmt, rows in ((self._by_patient, rows_p), (self._by_model_day, rows_m)):
            for ok, result in execute_concurrent_with_args(self.session, stmt, rows,
                                                           concurrency=32,
                                                           raise_on_first_error=True):
                if not ok:  # pragma: no cover - raise_on_first_error raises first
                    raise result

    def for_patient(self, patient_id: str, start_ms: int, end_ms: int) -> list[HourScore]:
        """Scores of hours starting in ``[start_ms, end_ms)``, newest first."""
        return [hour_score(r) for r in self.session.execute(
            self._for_patient, (patient_id, _dt(start_ms), _dt(end_ms)))]

    def for_model(self, version: str, days: Iterable[date]) -> list[ModelScore]:
        """Every score of ``version`` for the given days, in day order."""
        out: list[ModelScore] = []
        for d in days:
            out.extend(map(ModelScore.from_row,
                           self.session.execute(self._for_model_day, (version, d))))
        return out

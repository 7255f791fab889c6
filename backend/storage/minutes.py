"""Per-minute extremes of each patient's readings (``readings_by_patient_minute``).

The stream job's sink writes them next to the raw readings (:meth:`MinuteStore.write`);
the patient timeline reads them for windows longer than two hours. See
``backend.timeline`` for why a minute is stored in parts and how they merge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent

from backend.messages import ValidatedReading
from backend.storage.readings import Statement, run_concurrently
from backend.storage.statements import prepared
from backend.storage.timestamps import day_of, naive_to_ms
from backend.storage.timestamps import to_datetime as _dt
from backend.storage.timestamps import to_ms as _ms
from backend.timeline import (
    PARAMS,
    MinuteExtremes,
    MinutePart,
    RawPoint,
    merge_parts,
    minute_parts,
)

_RAW_COLUMNS = ("ts", *PARAMS)


def raw_points(colnames: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[RawPoint]:
    """The driver's row factory of the timeline's raw read: each row's values in the
    order selected (``ts``, then ``PARAMS``), straight into ``RawPoint``; no dict per row
    on the patient page's hottest read."""
    if tuple(colnames) != _RAW_COLUMNS:
        raise ValueError(f"raw timeline columns {tuple(colnames)}, expected {_RAW_COLUMNS}")
    ms = naive_to_ms
    return [RawPoint(ms(ts), hr, spo2, rr, sbp, dbp, map_, temp, news2)
            for ts, hr, spo2, rr, sbp, dbp, map_, temp, news2 in rows]


def minute_part(patient_id: str, row: Mapping[str, Any]) -> MinutePart:
    """A ``readings_by_patient_minute`` row; an empty map column is ``None`` in the driver
    (no values of that kind in the part), a part written without a count counts 0."""
    return MinutePart(patient_id, _ms(row["minute"]), _ms(row["part_ts"]), row["n"] or 0,
                      _ms(row["last_ts"]), row["mins"] or {}, row["maxs"] or {},
                      row["lasts"] or {})


class MinuteStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._insert = prepared(
            session,
            "INSERT INTO readings_by_patient_minute (patient_id, day, minute, part_ts, n,"
            " last_ts, mins, maxs, lasts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._range = prepared(
            session,
            "SELECT minute, part_ts, n, last_ts, mins, maxs, lasts"
            " FROM readings_by_patient_minute WHERE patient_id = ? AND day = ?"
            " AND minute >= ? AND minute < ?"
        )
        self._range.fetch_size = 5000
        cols = ", ".join(c for c in PARAMS)
        self._raw = prepared(
            session,
            f"SELECT ts, {cols} FROM readings_by_patient_day"
            " WHERE patient_id = ? AND day = ? AND ts >= ? AND ts < ?"
        )
        self._raw.fetch_size = 5000
        self._raw_profile: ExecutionProfile = session.execution_profile_clone_update(
            EXEC_PROFILE_DEFAULT, row_factory=raw_points)
        self._newest = prepared(
            session,
            "SELECT ts FROM readings_by_patient_day WHERE patient_id = ? AND day = ?"
            " ORDER BY ts DESC LIMIT 1"
        )

    def write(self, readings: Iterable[ValidatedReading]) -> int:
        """Upsert the per-minute parts of one batch of readings; returns the row count."""
        statements = self.statements(readings)
        run_concurrently(self.session, statements)
        return len(statements)

    def statements(self, readings: Iterable[ValidatedReading]) -> list[Statement]:
        """The upserts of the per-minute parts of one batch of readings."""
        return [
            (self._insert, (p.patient_id, day_of(p.minute), p.minute, p.part_ts, p.n,
                            p.last_ts, p.mins, p.maxs, p.lasts))
            for p in minute_parts(readings)
        ]

    def _per_day(self, stmt, patient_id: str, start_ms: int, end_ms: int,
                 profile: ExecutionProfile | str = EXEC_PROFILE_DEFAULT) -> list[Any]:
        """One query per day partition of ``[start, end)``, run concurrently: the rows as
        ``profile``'s row factory makes them (the session's: dicts)."""
        params = []
        day, last = day_of(start_ms), day_of(end_ms - 1)
        while day <= last:
            params.append((stmt, (patient_id, day, _dt(start_ms), _dt(end_ms))))
            day += timedelta(days=1)
        results = execute_concurrent(self.session, params, concurrency=8,
                                     raise_on_first_error=True, results_generator=False,
                                     execution_profile=profile)
        return [r for _ok, result in results for r in result]

    def raw_between(self, patient_id: str, start_ms: int, end_ms: int) -> list[RawPoint]:
        """The raw readings of ``[start, end)`` with the timeline's columns, oldest first."""
        return self._per_day(self._raw, patient_id, start_ms, end_ms, self._raw_profile)

    def between(self, patient_id: str, start_ms: int, end_ms: int) -> list[MinuteExtremes]:
        """Merged minutes of ``[start, end)`` (minutes that start in it), oldest first."""
        return merge_parts([minute_part(patient_id, r)
                            for r in self._per_day(self._range, patient_id, start_ms, end_ms)])

    def newest_ts(self, patient_id: str, now_ms: int, days_back: int = 7) -> int | None:
        """The time of the patient's newest reading within ``days_back`` days, in ms."""
        day = day_of(now_ms)
        for _ in range(days_back + 1):
            row = self.session.execute(self._newest, (patient_id, day)).one()
            if row is not None:
                return _ms(row["ts"])
            day -= timedelta(days=1)
        return None

"""Per-minute extremes of each patient's readings (``readings_by_patient_minute``).

The stream job's sink writes them next to the raw readings (:meth:`MinuteStore.write`);
the patient timeline reads them for windows longer than two hours. See
``backend.timeline`` for why a minute is stored in parts and how they merge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent

from backend.messages import ValidatedReading
from backend.storage.readings import Statement, run_concurrently
from backend.storage.statements import prepared
from backend.storage.timestamps import day_of
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

T = TypeVar("T")


def raw_point(row: Mapping[str, Any]) -> RawPoint:
    """A ``readings_by_patient_day`` row of the timeline's columns (``ts`` already in ms,
    selected as ``toUnixTimestamp(ts)``)."""
    return RawPoint(row["ts"], row["hr"], row["spo2"], row["rr"], row["sbp"], row["dbp"],
                    row["map"], row["temp"], row["news2"])


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
        # the time as ms straight from the server: no datetime per row on the hot path
        self._raw = prepared(
            session,
            f"SELECT toUnixTimestamp(ts) AS ts, {cols} FROM readings_by_patient_day"
            " WHERE patient_id = ? AND day = ? AND ts >= ? AND ts < ?"
        )
        self._raw.fetch_size = 5000
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
                 convert: Callable[[Mapping[str, Any]], T]) -> list[T]:
        """One query per day partition of ``[start, end)``, run concurrently; each row
        through ``convert``."""
        params = []
        day, last = day_of(start_ms), day_of(end_ms - 1)
        while day <= last:
            params.append((stmt, (patient_id, day, _dt(start_ms), _dt(end_ms))))
            day += timedelta(days=1)
        results = execute_concurrent(self.session, params, concurrency=8,
                                     raise_on_first_error=True, results_generator=False)
        return [convert(r) for _ok, result in results for r in result]

    def raw_between(self, patient_id: str, start_ms: int, end_ms: int) -> list[RawPoint]:
        """The raw readings of ``[start, end)`` with the timeline's columns, oldest first."""
        return self._per_day(self._raw, patient_id, start_ms, end_ms, raw_point)

    def between(self, patient_id: str, start_ms: int, end_ms: int) -> list[MinuteExtremes]:
        """Merged minutes of ``[start, end)`` (minutes that start in it), oldest first."""
        return merge_parts(self._per_day(self._range, patient_id, start_ms, end_ms,
                                         lambda r: minute_part(patient_id, r)))

    def newest_ts(self, patient_id: str, now_ms: int, days_back: int = 7) -> int | None:
        """The time of the patient's newest reading within ``days_back`` days, in ms."""
        day = day_of(now_ms)
        for _ in range(days_back + 1):
            row = self.session.execute(self._newest, (patient_id, day)).one()
            if row is not None:
                return _ms(row["ts"])
            day -= timedelta(days=1)
        return None

"""Per-minute extremes of each patient's readings (``readings_by_patient_minute``).

The stream job's sink writes them next to the raw readings (:meth:`MinuteStore.write`);
the patient timeline reads them for windows longer than two hours. See
``backend.timeline`` for why a minute is stored in parts and how they merge.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent

from backend.messages import ValidatedReading
from backend.storage.readings import Statement, run_concurrently
from backend.storage.statements import prepared
from backend.storage.timestamps import day_of
from backend.storage.timestamps import to_datetime as _dt
from backend.storage.timestamps import to_ms as _ms
from backend.timeline import PARAMS, MinuteExtremes, merge_parts, minute_parts


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
            f"SELECT ts, {cols} FROM readings_by_patient_day WHERE patient_id = ? AND day = ?"
            " AND ts >= ? AND ts < ?"
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

    def _per_day(self, stmt, patient_id: str, start_ms: int, end_ms: int) -> list[dict]:
        """One query per day partition of ``[start, end)``, run concurrently."""
        params = []
        day, last = day_of(start_ms), day_of(end_ms - 1)
        while day <= last:
            params.append((stmt, (patient_id, day, _dt(start_ms), _dt(end_ms))))
            day += timedelta(days=1)
        results = execute_concurrent(self.session, params, concurrency=8,
                                     raise_on_first_error=True, results_generator=False)
        return [r for ok, result in results for r in result]

    def raw_between(self, patient_id: str, start_ms: int, end_ms: int) -> list[dict]:
        """The raw readings of ``[start, end)``: ``ts`` in ms and the timeline's columns."""
        rows = self._per_day(self._raw, patient_id, start_ms, end_ms)
        for r in rows:
            r["ts"] = _ms(r["ts"])
        return rows

    def between(self, patient_id: str, start_ms: int, end_ms: int) -> list[MinuteExtremes]:
        """Merged minutes of ``[start, end)`` (minutes that start in it), oldest first."""
        rows = [
            {"minute": _ms(r["minute"]), "last_ts": _ms(r["last_ts"]), "n": r["n"],
             "mins": r["mins"], "maxs": r["maxs"], "lasts": r["lasts"]}
            for r in self._per_day(self._range, patient_id, start_ms, end_ms)
        ]
        return merge_parts(rows)

    def newest_ts(self, patient_id: str, now_ms: int, days_back: int = 7) -> int | None:
        """The time of the patient's newest reading within ``days_back`` days, in ms."""
        day = day_of(now_ms)
        for _ in range(days_back + 1):
            row = self.session.execute(self._newest, (patient_id, day)).one()
            if row is not None:
                return _ms(row["ts"])
            day -= timedelta(days=1)
        return None

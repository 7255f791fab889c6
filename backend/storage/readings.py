"""Accepted readings: the per-patient history and the latest state of each bed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from backend.messages import Consciousness, ValidatedReading
from backend.storage.statements import prepared
from backend.storage.timestamps import day_of, to_ms
from backend.storage.timestamps import to_datetime as _dt
from backend.vitals import Vital

VITAL_COLUMNS: tuple[str, ...] = tuple(v.value for v in Vital)
_VITALS: tuple[Vital, ...] = tuple(Vital)  # iterating the enum class each row is slow
# ``(statement, parameters)``, as ``execute_concurrent`` takes them. Timestamp columns are
# bound as ms-since-epoch ints, which the driver serialises as they are: no datetime per
# value on the sink's path (reads still go through ``backend.storage.timestamps``).
Statement = tuple[Any, Any]
# Rows per unlogged batch: one batch never spans partitions, and stays under
# Cassandra's default 5 KiB batch warning for typical rows.
_BATCH_ROWS = 40


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One row of a patient's reading history (``readings_by_patient_day``): what the
    device sent once validated, with the scores computed for it. Times are ms since the
    epoch (UTC). ``vitals`` holds the values present (a sensor off or an absent value
    has no entry); ``sensors_off`` the parameters the monitor reported as off."""

    patient_id: str
    ts: int
    device_id: str
    seq: int
    vitals: dict[Vital, float]
    sensors_off: frozenset[Vital]
    o2_supplemental: bool | None
    consciousness: Consciousness | None
    news2: int | None
    news2_band: str | None
    news2_complete: bool
    qsofa: int | None
    processed_ts: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredReading:
        """A driver row (``SELECT *``; unset columns are ``None``)."""
        consciousness = row["consciousness"]
        processed = row["processed_ts"]
        return cls(
            row["patient_id"], to_ms(row["ts"]), row["device_id"] or "", row["seq"] or 0,
            {v: float(x) for v in _VITALS if (x := row[v.value]) is not None},
            frozenset(Vital(s) for s in row["sensors_off"] or ()), row["o2_supplemental"],
            Consciousness(consciousness) if consciousness else None, row["news2"],
            row["news2_band"], bool(row["news2_complete"]), row["qsofa"],
            None if processed is None else to_ms(processed))


def _u(value):
    """None as "not set": in Cassandra an inserted null is a tombstone, and a history of
    sparse readings would otherwise fill the table with them."""
    return UNSET_VALUE if value is None else value


class ReadingStore:
    """The readings tables (``readings_by_patient_day``, ``latest_by_ward``). One per
    session: ``backend.storage.statements.store(ReadingStore, session)``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        cols = ", ".join(VITAL_COLUMNS)
        marks = ", ".join("?" for _ in VITAL_COLUMNS)
        self._insert: PreparedStatement = prepared(
            session,
            f"INSERT INTO readings_by_patient_day (patient_id, day, ts, device_id, seq, {cols},"
            " sensors_off, o2_supplemental, consciousness, news2, news2_band, news2_complete,"
            f" qsofa, processed_ts) VALUES (?, ?, ?, ?, ?, {marks}, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._latest: PreparedStatement = prepared(
            session,
            f"INSERT INTO latest_by_ward (ward, bed, patient_id, ts, {cols}, sensors_off, news2,"
            f" news2_band, news2_complete, qsofa, processed_ts)"
            f" VALUES (?, ?, ?, ?, {marks}, ?, ?, ?, ?, ?, ?)"
        )
        self._range: PreparedStatement = prepared(
            session,
            "SELECT * FROM readings_by_patient_day WHERE patient_id = ? AND day = ?"
            " AND ts >= ? AND ts < ?"
        )
        self._first: PreparedStatement = prepared(
            session, "SELECT ts FROM readings_by_patient_day WHERE patient_id = ? AND day = ?"
            " AND ts >= ? AND ts < ? LIMIT 1")
        self._ward: PreparedStatement = prepared(
            session,
            "SELECT * FROM latest_by_ward WHERE ward = ?"
        )

    def write(self, readings: Sequence[ValidatedReading]) -> None:
        """Append readings (idempotent: the key is patient, day, ts, device, seq)."""
        run_concurrently(self.session, self.history_statements(readings))

    def history_statements(self, readings: Sequence[ValidatedReading]) -> list[Statement]:
        """The unlogged per-partition batches that append ``readings`` to the history."""
        by_partition: dict[tuple[str, date], list[ValidatedReading]] = defaultdict(list)
        for r in readings:
            by_partition[(r.patient_id, day_of(r.ts))].append(r)
        insert = self._insert
        batches: list[Statement] = []
        for (patient_id, day), rows in by_partition.items():
            for i in range(0, len(rows), _BATCH_ROWS):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for r in rows[i : i + _BATCH_ROWS]:
                    vitals = r.vitals
                    batch.add(insert, (
                        patient_id, day, r.ts, r.device_id, r.seq,
                        *[_u(vitals.get(v)) for v in _VITALS],
                        _u({s.value for s in r.sensors_off} or None), _u(r.o2_supplemental),
                        _u(r.consciousness.value if r.consciousness else None),
                        _u(r.news2), _u(r.news2_band), r.news2_complete, _u(r.qsofa),
                        r.processed_ts,
                    ))
                batches.append((batch, None))
        return batches

    def write_latest(self, readings: Iterable[ValidatedReading]) -> None:
        run_concurrently(self.session, self.latest_statements(readings))

    def latest_statements(self, readings: Iterable[ValidatedReading]) -> list[Statement]:
        """Upserts of each bed's newest state among ``readings``: the carried-forward values,
        with explicit nulls so a sensor that went off never shows its last good value."""
        newest: dict[tuple[str, str], ValidatedReading] = {}
        for r in readings:
            key = (r.ward, r.bed)
            if key not in newest or r.ts >= newest[key].ts:
                newest[key] = r
        return [
            (self._latest, (
                r.ward, r.bed, r.patient_id, r.ts, *[r.carried.get(v) for v in _VITALS],
                {s.value for s in r.sensors_off} or None, r.news2, r.news2_band, r.news2_complete,
                r.qsofa, r.processed_ts,
            ))
            for r in newest.values()
        ]

    def between(self, patient_id: str, start_ms: int, end_ms: int) -> list[StoredReading]:
        """Readings of one patient in [start, end), oldest first, one query per day."""
        rows: list[StoredReading] = []
        day = day_of(start_ms)
        while day <= day_of(end_ms - 1):
            rows.extend(map(StoredReading.from_row, self.session.execute(
                self._range, (patient_id, day, _dt(start_ms), _dt(end_ms))
            )))
            day += timedelta(days=1)
        return rows

    def first_ts(self, patient_id: str, start_ms: int, end_ms: int) -> int | None:
        """The time (ms) of the patient's first reading in [start, end), or ``None``: one
        single-row query per day partition (readings are clustered by time), oldest
        day first."""
        day, last = day_of(start_ms), day_of(end_ms - 1)
        while day <= last:
            row = self.session.execute(
                self._first, (patient_id, day, _dt(start_ms), _dt(end_ms))).one()
            if row is not None:
                return to_ms(row["ts"])
            day += timedelta(days=1)
        return None

    def latest_for_ward(self, ward: str) -> list[ValidatedReading]:
        """Each bed's newest reading, as the web's live state takes it from
        ``vitals.validated`` (one way to apply a reading, whichever way it came)."""
        return [r for r in map(latest_reading, self.session.execute(self._ward, (ward,)))
                if r is not None]


def latest_reading(row: dict) -> ValidatedReading | None:
    """A ``latest_by_ward`` row as the reading it was written from. The row keeps what a
    screen shows (the carried values, scores, sensors off), not the device's sequence or
    raw values: ``vitals`` holds the carried values, ``device_id`` is empty."""
    if row.get("ts") is None:
        return None
    ts = to_ms(row["ts"])
    off = [Vital(s) for s in sorted(row.get("sensors_off") or ())]
    carried = {v: float(row[v.value]) for v in _VITALS
               if row.get(v.value) is not None and v not in off}
    # model_construct: the row was validated on its way in; a fill reads hundreds of beds
    return ValidatedReading.model_construct(
        patient_id=row.get("patient_id") or "", ward=row["ward"], bed=str(row["bed"]),
        device_id="", seq=0, ts=ts, vitals=dict(carried), carried=carried, sensors_off=off,
        news2=row.get("news2"), news2_band=row.get("news2_band"),
        news2_complete=bool(row.get("news2_complete")), qsofa=row.get("qsofa"),
        o2_supplemental=None, consciousness=None,
        processed_ts=to_ms(row["processed_ts"]) if row.get("processed_ts") else ts,
        source_partition=None, source_offset=None)


def run_concurrently(session: Session, statements: list[Statement],
                     concurrency: int = 64) -> None:
    """Execute ``(statement, params)`` pairs concurrently; raise on the first failure, so a
    lost write fails the micro-batch and Spark retries it instead of passing silently."""
    if statements:
        execute_concurrent(session, statements, concurrency=concurrency, raise_on_first_error=True)

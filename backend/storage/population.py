"""The population analytics tables (migration 0400): ``population_by_region``,
``population_by_ward``, ``population_days``, ``population_surges``, and the census and
alert rows the aggregation reads.

The Spark job (``streaming.population_job``) reads its sources through
:func:`load_stays` and :func:`load_alerts` and writes through :func:`write_aggregates`;
the population page reads through :func:`region_rows`, :func:`ward_rows` and
:func:`surges`. Aggregates carry no patient identifier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from backend.alerting.burden import WardAlarm
from backend.alerting.status import AlertStatus
from backend.population.surge import SurgeFlag
from backend.storage.census import PastStay
from backend.storage.statements import prepared
from backend.storage.timestamps import aware as _aware
from backend.storage.timestamps import aware_or_none as _utc

MEASURES = ("admissions", "patient_days", "alerts_high", "alerts_medium", "alerts_low",
            "news2_high_episodes", "sepsis_alerts", "acknowledged", "median_ack_seconds",
            "bed_days", "occupancy")
UNKNOWN_REGION = "unknown"
CONCURRENCY = 64
T = TypeVar("T")


def _day(value: object) -> date:
    """Cassandra ``date`` values come back as ``cassandra.util.Date``."""
    if isinstance(value, date):
        return value
    return value.date()


def past_stay(row: Mapping[str, Any]) -> PastStay:
    """An ``admissions`` row (``admitted_ts`` set) as a stay, times aware UTC."""
    return PastStay(row["patient_id"], row["ward"], str(row["bed"]), row["home_fips"],
                    _aware(row["admitted_ts"]), _utc(row["discharged_ts"]))


def load_stays(session: Session) -> list[PastStay]:
    """Every admission: the census is small (a few thousand stays a year). A row without
    an admission time (never written so by ``census.admit``) is no stay: left out."""
    rows = session.execute(prepared(session, "SELECT patient_id, ward, bed, home_fips,"
                                    " admitted_ts, discharged_ts FROM admissions"))
    return [past_stay(r) for r in rows if r["admitted_ts"] is not None]


def ward_alarm(row: Mapping[str, Any], ack_ts: datetime | None) -> WardAlarm:
    """An ``alerts_by_ward_day`` row with the time of its acknowledgement."""
    return WardAlarm(row["alert_id"], row["patient_id"], row["ward"], row["rule"],
                     row["priority"], _aware(row["detected_ts"]), row["status"], ack_ts)


def load_alerts(session: Session, wards: Iterable[str],
                days: Sequence[date]) -> list[WardAlarm]:
    """Alerts detected in ``wards`` on ``days`` (the per-ward-day index), with the time of
    their acknowledgement (``ack_ts``) from the alerts row when acknowledged."""
    keys = [(w, d) for w in sorted(set(wards)) for d in days]
    stmt = prepared(session, "SELECT alert_id, patient_id, ward, rule, priority, detected_ts,"
                           " status FROM alerts_by_ward_day WHERE ward = ? AND day = ?")
    rows: list[Mapping[str, Any]] = []
    for _ok, result in execute_concurrent_with_args(session, stmt, keys,
                                                   concurrency=CONCURRENCY,
                                                   raise_on_first_error=True):
        rows.extend(result)
    acked = [a["alert_id"] for a in rows if a["status"] == AlertStatus.ACKNOWLEDGED]
    get = prepared(session, "SELECT status, status_by, status_ts FROM alerts WHERE alert_id = ?")
    results = execute_concurrent_with_args(session, get, [(a,) for a in acked],
                                           concurrency=CONCURRENCY, raise_on_first_error=True)
    ack_ts: dict[str, datetime | None] = {}
    for alert_id, (_ok, result) in zip(acked, results, strict=True):
        row = result.one()
        ack_ts[alert_id] = _utc(row["status_ts"]) if row and row["status_by"] else None
    return [ward_alarm(r, ack_ts.get(r["alert_id"])) for r in rows]


def final_days(session: Session, years: Iterable[int]) -> dict[date, bool]:
    out: dict[date, bool] = {}
    for year in sorted(set(years)):
        for r in session.execute(
                prepared(session, "SELECT day, final FROM population_days WHERE year = ?"),
                (year,)):
            out[_day(r["day"])] = bool(r["final"])
    return out


def _clear(session: Session, table: str, grain: str, periods: Iterable[date]) -> None:
    stmt = prepared(session, f"DELETE FROM {table} WHERE grain = ? AND year = ?"
                           " AND period_start = ?")
    args = [(grain, p.year, p) for p in periods]
    execute_concurrent_with_args(session, stmt, args, concurrency=CONCURRENCY,
                                 raise_on_first_error=True)


def write_aggregates(session: Session, table: str, key: str, rows: Sequence[dict],
                     periods: dict[str, Sequence[date]], computed: datetime) -> None:
    """Replace the rows of ``periods`` (per grain) of ``table`` with ``rows``."""
    for grain, ps in periods.items():
        _clear(session, table, grain, ps)
    cols = ["grain", "year", "period_start", key, *MEASURES, "computed_ts"]
    if table == "population_by_ward":
        cols.insert(cols.index("bed_days"), "beds")
    stmt = prepared(session, f"INSERT INTO {table} ({', '.join(cols)})"
                           f" VALUES ({', '.join('?' * len(cols))})")
    args = []
    for r in rows:
        values = {**r, "year": r["period_start"].year, "computed_ts": computed}
        args.append(tuple(values.get(c) for c in cols))
    execute_concurrent_with_args(session, stmt, args, concurrency=CONCURRENCY,
                                 raise_on_first_error=True)


def record_days(session: Session, records: Sequence[tuple[date, bool, int, int]],
                computed: datetime) -> None:
    stmt = prepared(session, "INSERT INTO population_days (year, day, computed_ts, final,"
                           " stays, alerts) VALUES (?, ?, ?, ?, ?, ?)")
    execute_concurrent_with_args(
        session, stmt, [(d.year, d, computed, final, n_stays, n_alerts)
                        for d, final, n_stays, n_alerts in records],
        concurrency=CONCURRENCY, raise_on_first_error=True)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The measures (``MEASURES``) of one group over one period (a UTC day, or the week
    starting on ``period_start``). Counts of a column left unset read 0."""

    grain: str  # "day" | "week"
    period_start: date
    admissions: int
    patient_days: float
    alerts_high: int
    alerts_medium: int
    alerts_low: int
    news2_high_episodes: int
    sepsis_alerts: int
    acknowledged: int
    median_ack_seconds: float | None  # None: nothing acknowledged
    bed_days: float
    occupancy: float | None  # patient_days / bed_days; None without beds
    computed_ts: datetime | None  # when the aggregation wrote it, aware UTC


def _measures(row: Mapping[str, Any]) -> dict[str, Any]:
    return dict(
        grain=row["grain"], period_start=_day(row["period_start"]),
        admissions=row["admissions"] or 0, patient_days=row["patient_days"] or 0.0,
        alerts_high=row["alerts_high"] or 0, alerts_medium=row["alerts_medium"] or 0,
        alerts_low=row["alerts_low"] or 0, news2_high_episodes=row["news2_high_episodes"] or 0,
        sepsis_alerts=row["sepsis_alerts"] or 0, acknowledged=row["acknowledged"] or 0,
        median_ack_seconds=row["median_ack_seconds"], bed_days=row["bed_days"] or 0.0,
        occupancy=row["occupancy"], computed_ts=_utc(row["computed_ts"]))


@dataclass(frozen=True, slots=True)
class RegionAggregate(Aggregate):
    """A row of ``population_by_region``: ``region`` a county FIPS or ``UNKNOWN_REGION``."""

    region: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RegionAggregate:
        return cls(region=row["region"], **_measures(row))


@dataclass(frozen=True, slots=True)
class WardAggregate(Aggregate):
    """A row of ``population_by_ward``, with the ward's beds (``None``: not recorded)."""

    ward: str
    beds: int | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> WardAggregate:
        return cls(ward=row["ward"], beds=row["beds"], **_measures(row))


def _rows(session: Session, table: str, grain: str, start: date, end: date,
             convert: Callable[[Mapping[str, Any]], T]) -> list[T]:
    out: list[T] = []
    for year in range(start.year, end.year + 1):
        out.extend(map(convert, session.execute(prepared(
            session, f"SELECT * FROM {table} WHERE grain = ? AND year = ? AND period_start >= ?"
            " AND period_start <= ?"), (grain, year, start, end))))
    return out


def region_rows(session: Session, grain: str, start: date, end: date) -> list[RegionAggregate]:
    return _rows(session, "population_by_region", grain, start, end, RegionAggregate.from_row)


def ward_rows(session: Session, grain: str, start: date, end: date) -> list[WardAggregate]:
    return _rows(session, "population_by_ward", grain, start, end, WardAggregate.from_row)


@dataclass(frozen=True, slots=True)
class RegionSurge:
    """A surge flag of one measure's daily series in one region (``population_surges``)."""

    region: str
    measure: str
    flag: SurgeFlag

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RegionSurge:
        """Unset numbers read NaN; the magnitude is the flag's (observed - expected)."""
        def num(name: str) -> float:
            return math.nan if row[name] is None else float(row[name])
        return cls(row["region"], row["measure"], SurgeFlag(
            _day(row["day"]), num("observed"), num("expected"), num("baseline_sd"),
            num("cusum")))


def replace_surges(session: Session, days: Sequence[date], flags: Sequence[RegionSurge],
                   computed: datetime) -> None:
    """Flags of ``days`` replaced by ``flags``."""
    delete = prepared(session, "DELETE FROM population_surges WHERE year = ? AND day = ?")
    execute_concurrent_with_args(session, delete, [(d.year, d) for d in days],
                                 concurrency=CONCURRENCY, raise_on_first_error=True)
    insert = prepared(session,
        "INSERT INTO population_surges (year, day, region, measure, observed, expected,"
        " baseline_sd, cusum, magnitude, computed_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    execute_concurrent_with_args(session, insert, [
        (s.flag.day.year, s.flag.day, s.region, s.measure, s.flag.observed, s.flag.expected,
         s.flag.baseline_sd, s.flag.cusum, s.flag.magnitude, computed) for s in flags],
        concurrency=CONCURRENCY, raise_on_first_error=True)


def surges(session: Session, start: date, end: date) -> list[RegionSurge]:
    out: list[RegionSurge] = []
    for year in range(start.year, end.year + 1):
        out.extend(map(RegionSurge.from_row, session.execute(prepared(
            session, "SELECT * FROM population_surges WHERE year = ? AND day >= ? AND day <= ?"),
            (year, start, end))))
    return out


def last_computed(session: Session, year: int) -> datetime | None:
    """When the aggregation last ran for a day of ``year`` (``None``: never)."""
    rows = session.execute(
        prepared(session, "SELECT computed_ts FROM population_days WHERE year = ?"), (year,))
    return max((_utc(r["computed_ts"]) for r in rows if r["computed_ts"]), default=None)

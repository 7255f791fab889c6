"""The population analytics tables (migration 0400): ``population_by_region``,
``population_by_ward``, ``population_days``, ``population_surges``, and the census and
alert rows the aggregation reads.

The Spark job (``streaming.population_job``) reads its sources through
:func:`load_stays` and :func:`load_alerts` and writes through :func:`write_aggregates`;
the population page reads through :func:`region_rows`, :func:`ward_rows` and
:func:`surges`. Aggregates carry no patient identifier.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from backend.alerting.status import AlertStatus
from backend.storage.statements import prepared

MEASURES = ("admissions", "patient_days", "alerts_high", "alerts_medium", "alerts_low",
            "news2_high_episodes", "sepsis_alerts", "acknowledged", "median_ack_seconds",
            "bed_days", "occupancy")
UNKNOWN_REGION = "unknown"
CONCURRENCY = 64


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(value: object) -> date:
    """Cassandra ``date`` values come back as ``cassandra.util.Date``."""
    if isinstance(value, date):
        return value
    return value.date()


def load_stays(session: Session) -> list[dict]:
    """Every admission: the census is small (a few thousand stays a year)."""
    rows = session.execute(prepared(session, "SELECT patient_id, ward, bed, home_fips,"
                                    " admitted_ts, discharged_ts FROM admissions"))
    return [{**r, "admitted_ts": _utc(r["admitted_ts"]),
             "discharged_ts": _utc(r["discharged_ts"])} for r in rows]


def load_alerts(session: Session, wards: Iterable[str], days: Sequence[date]) -> list[dict]:
    """Alerts detected in ``wards`` on ``days`` (the per-ward-day index), with the time of
    their acknowledgement (``ack_ts``) from the alerts row when acknowledged."""
    keys = [(w, d) for w in sorted(set(wards)) for d in days]
    stmt = prepared(session, "SELECT alert_id, patient_id, ward, rule, priority, detected_ts,"
                           " status FROM alerts_by_ward_day WHERE ward = ? AND day = ?")
    alerts: list[dict] = []
    for _ok, result in execute_concurrent_with_args(session, stmt, keys,
                                                   concurrency=CONCURRENCY,
                                                   raise_on_first_error=True):
        alerts.extend(dict(r) for r in result)
    acked = [a for a in alerts if a["status"] == AlertStatus.ACKNOWLEDGED]
    get = prepared(session, "SELECT status, status_by, status_ts FROM alerts WHERE alert_id = ?")
    results = execute_concurrent_with_args(session, get, [(a["alert_id"],) for a in acked],
                                           concurrency=CONCURRENCY, raise_on_first_error=True)
    for a, (_ok, result) in zip(acked, results, strict=True):
        row = result.one()
        a["ack_ts"] = _utc(row["status_ts"]) if row and row["status_by"] else None
    for a in alerts:
        a.setdefault("ack_ts", None)
        a["detected_ts"] = _utc(a["detected_ts"])
    return alerts


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


def _rows(session: Session, table: str, grain: str, start: date, end: date) -> list[dict]:
    out: list[dict] = []
    for year in range(start.year, end.year + 1):
        out.extend(dict(r) for r in session.execute(prepared(
            session, f"SELECT * FROM {table} WHERE grain = ? AND year = ? AND period_start >= ?"
            " AND period_start <= ?"), (grain, year, start, end)))
    for r in out:
        r["period_start"] = _day(r["period_start"])
    return out


def region_rows(session: Session, grain: str, start: date, end: date) -> list[dict]:
    return _rows(session, "population_by_region", grain, start, end)


def ward_rows(session: Session, grain: str, start: date, end: date) -> list[dict]:
    return _rows(session, "population_by_ward", grain, start, end)


def replace_surges(session: Session, days: Sequence[date], flags: Sequence[dict],
                   computed: datetime) -> None:
    """Flags of ``days`` replaced by ``flags`` (dicts with day, region, measure, ...)."""
    delete = prepared(session, "DELETE FROM population_surges WHERE year = ? AND day = ?")
    execute_concurrent_with_args(session, delete, [(d.year, d) for d in days],
                                 concurrency=CONCURRENCY, raise_on_first_error=True)
    insert = prepared(session,
        "INSERT INTO population_surges (year, day, region, measure, observed, expected,"
        " baseline_sd, cusum, magnitude, computed_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    execute_concurrent_with_args(session, insert, [
        (f["day"].year, f["day"], f["region"], f["measure"], f["observed"], f["expected"],
         f["baseline_sd"], f["cusum"], f["magnitude"], computed) for f in flags],
        concurrency=CONCURRENCY, raise_on_first_error=True)


def surges(session: Session, start: date, end: date) -> list[dict]:
    out: list[dict] = []
    for year in range(start.year, end.year + 1):
        out.extend(dict(r) for r in session.execute(prepared(
            session, "SELECT * FROM population_surges WHERE year = ? AND day >= ? AND day <= ?"),
            (year, start, end)))
    for r in out:
        r["day"] = _day(r["day"])
    return out


def last_computed(session: Session, year: int) -> datetime | None:
    """When the aggregation last ran for a day of ``year`` (``None``: never)."""
    rows = session.execute(
        prepared(session, "SELECT computed_ts FROM population_days WHERE year = ?"), (year,))
    return max((_utc(r["computed_ts"]) for r in rows if r["computed_ts"]), default=None)

"""The alarm burden of every ward over a period, read from the alert tables.

Alarms come from the per-ward-day index (``alerts_by_ward_day``: one partition per ward
and day of the period); the time of an alarm's first acknowledgement from its
``alert_history`` (the ``acknowledge`` step), or, for rows written without a history
(a seeded history), from the ``alerts`` row of an alarm still acknowledged. Occupied
bed-days come from the admissions. Aggregation: ``backend.alerting.burden``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from backend.alerting.burden import WardAlarm, WardBurden, occupied_bed_days, ward_burden
from backend.alerting.status import AlertStatus
from backend.storage import census
from backend.storage.population import load_stays, ward_alarm
from backend.storage.statements import prepared
from backend.storage.timestamps import aware_or_none as _utc

CONCURRENCY = 64
# Statuses an alarm can only have reached through (or after) an acknowledgement, or in
# which it may have been acknowledged before it ended.
_MAY_BE_ACKED = (AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.AUTO_RESOLVED)


def _days(start: datetime, end: datetime) -> list:
    day, last = start.date(), (end - timedelta(microseconds=1)).date()
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=1)
    return out


def load_alerts(session: Session, wards: Iterable[str], start: datetime,
                end: datetime) -> list[WardAlarm]:
    """The alarms detected in ``wards`` in ``[start, end)`` with ``ack_ts``."""
    keys = [(w, d) for w in sorted(set(wards)) for d in _days(start, end)]
    stmt = prepared(session, "SELECT alert_id, patient_id, ward, rule, priority, detected_ts,"
                    " status FROM alerts_by_ward_day WHERE ward = ? AND day = ?")
    rows = []
    for _ok, result in execute_concurrent_with_args(session, stmt, keys,
                                                   concurrency=CONCURRENCY,
                                                   raise_on_first_error=True):
        for r in result:
            detected = _utc(r["detected_ts"])
            if detected is not None and start <= detected < end:
                rows.append(r)
    maybe = [r["alert_id"] for r in rows if r["status"] in _MAY_BE_ACKED]
    history = prepared(session, "SELECT ts, action FROM alert_history WHERE alert_id = ?")
    results = execute_concurrent_with_args(session, history, [(a,) for a in maybe],
                                           concurrency=CONCURRENCY, raise_on_first_error=True)
    ack_ts: dict[str, datetime | None] = {}
    for alert_id, (_ok, result) in zip(maybe, results, strict=True):
        steps = sorted(_utc(r["ts"]) for r in result if r["action"] == "acknowledge")
        if steps:
            ack_ts[alert_id] = steps[0]
    acked = {r["alert_id"] for r in rows if r["status"] == AlertStatus.ACKNOWLEDGED}
    without = [a for a in maybe if a not in ack_ts and a in acked]
    row = prepared(session, "SELECT status_by, status_ts FROM alerts WHERE alert_id = ?")
    results = execute_concurrent_with_args(session, row, [(a,) for a in without],
                                           concurrency=CONCURRENCY, raise_on_first_error=True)
    for alert_id, (_ok, result) in zip(without, results, strict=True):
        r = result.one()
        if r is not None and r["status_by"]:
            ack_ts[alert_id] = _utc(r["status_ts"])
    return [ward_alarm(r, ack_ts.get(r["alert_id"])) for r in rows]


def ward_burdens(session: Session, start: datetime, end: datetime) -> list[WardBurden]:
    """Every ward's burden in ``[start, end)``: the wards of the census and of the
    admissions of the period."""
    stays = load_stays(session)
    bed_days = occupied_bed_days(stays, start, end)
    wards = set(bed_days) | set(census.wards(session))
    return ward_burden(load_alerts(session, wards, start, end), bed_days, wards)

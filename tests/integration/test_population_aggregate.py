"""The population aggregation (Spark batch job) on real Cassandra, against a small
fixture whose every number was computed by hand (worked out in the comments below).

Week of Monday 2026-11-02; the job runs at NOW = 2026-11-10 00:00 UTC, so the days it
computes are final (over for more than 24 h) unless a test says otherwise.

Stays (ward icu-a has 4 configured beds; icu-b is not configured and used beds 7 and 8):
  p1 icu-a/1  25025  11-02 06:00 -> 11-03 06:00   day 02: 0.75 pd, day 03: 0.25 pd
  p2 icu-a/2  25017  11-01 12:00 -> 11-02 12:00   day 02: 0.5 pd (admitted the day before)
  p3 icu-b/7  25025  11-03 00:00 -> open          day 03..08: 1.0 pd each (6 in the week)
  p4 icu-b/8  none   11-02 23:00 -> 11-03 01:00   day 02: 1/24, day 03: 1/24
Alerts:
  a1 p1 icu-a news2_high      high    11-02 08:00  acknowledged after 60 s
  a2 p1 icu-a qsofa_positive  medium  11-02 09:00  acknowledged after 180 s
  a5 p2 icu-a ref_hr_high     medium  11-02 10:00  acknowledged after 120 s
  a3 p3 icu-b news2_high      high    11-03 10:00  cleared, never acknowledged
  a4 p3 icu-b sensor_off_spo2 low     11-03 11:00  acknowledged after 30 s
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest

from backend.admission import Admission
from backend.settings import Settings
from backend.storage import census
from backend.storage import population as store
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate

A = TypeVar("A", store.RegionAggregate, store.WardAggregate)

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 10, tzinfo=UTC)
MON, TUE, WED = date(2026, 11, 2), date(2026, 11, 3), date(2026, 11, 4)


def ts(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


STAYS = [("p1", "icu-a", "1", "25025", ts(2, 6), ts(3, 6)),
         ("p2", "icu-a", "2", "25017", ts(1, 12), ts(2, 12)),
         ("p3", "icu-b", "7", "25025", ts(3, 0), None),
         ("p4", "icu-b", "8", None, ts(2, 23), ts(3, 1))]
ALERTS = [("a1", "p1", "icu-a", "news2_high", "high", ts(2, 8), 60),
          ("a2", "p1", "icu-a", "qsofa_positive", "medium", ts(2, 9), 180),
          ("a5", "p2", "icu-a", "ref_hr_high", "medium", ts(2, 10), 120),
          ("a3", "p3", "icu-b", "news2_high", "high", ts(3, 10), None),
          ("a4", "p3", "icu-b", "sensor_off_spo2", "low", ts(3, 11), 30)]


def _load_fixture(db) -> None:
    for pid, ward, bed, fips, admitted, discharged in STAYS:
        census.admit(db, Admission(patient_id=pid, ward=ward, bed=bed, home_fips=fips,
                                   admitted_ts=ms(admitted)))
        if discharged:
            census.discharge(db, pid, ms(discharged))
    for aid, pid, ward, rule, prio, detected, ack_after in ALERTS:
        status = "acknowledged" if ack_after is not None else "cleared"
        status_ts = detected + timedelta(seconds=ack_after or 600)
        db.execute("INSERT INTO alerts (alert_id, patient_id, ward, bed, rule, priority,"
                   " detected_ts, status, status_by, status_ts) VALUES"
                   " (%s, %s, %s, 'x', %s, %s, %s, %s, %s, %s)",
                   (aid, pid, ward, rule, prio, detected, status,
                    "nurse1" if ack_after is not None else None, status_ts))
        db.execute("INSERT INTO alerts_by_ward_day (ward, day, detected_ts, alert_id,"
                   " patient_id, bed, rule, priority, message, status) VALUES"
                   " (%s, %s, %s, %s, %s, 'x', %s, %s, '', %s)",
                   (ward, detected.date(), detected, aid, pid, rule, prio, status))


@pytest.fixture(scope="module")
def spark():
    from streaming.population_job import spark_batch_session

    session = spark_batch_session(Settings(spark={"batch_master": "local[1]"}))
    yield session
    session.stop()


@pytest.fixture
def env(isolated_settings: Settings):
    settings = isolated_settings.model_copy(update={"population": isolated_settings.population
                                                    .model_copy(update={"ward_beds":
                                                                        {"icu-a": 4}})})
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    _load_fixture(db)
    yield settings, db
    db.cluster.shutdown()


def _by(rows: Sequence[A], key: str) -> dict[tuple[date, str], A]:
    return {(r.period_start, getattr(r, key)): r for r in rows}


def test_aggregates_match_the_hand_computed_fixture(spark, env) -> None:
    from streaming.population_job import run_aggregation

    settings, db = env
    report = run_aggregation(spark, db, settings, since=MON, until=TUE, now=NOW)
    assert report.days == [MON, TUE] and report.weeks == [MON]

    region = _by(store.region_rows(db, "day", MON, TUE), "region")
    assert set(region) == {(MON, "25025"), (MON, "25017"), (MON, "unknown"),
                           (TUE, "25025"), (TUE, "unknown")}
    r = region[(MON, "25025")]
    assert (r.admissions, r.alerts_high, r.alerts_medium, r.alerts_low,
            r.news2_high_episodes, r.sepsis_alerts, r.acknowledged) == \
        (1, 1, 1, 0, 1, 1, 2)
    assert r.patient_days == pytest.approx(0.75)
    assert r.median_ack_seconds == pytest.approx(120.0)  # median of 60, 180
    assert r.bed_days == 6.0 and r.occupancy == pytest.approx(0.75 / 6)
    r = region[(MON, "25017")]
    assert (r.admissions, r.alerts_medium, r.acknowledged) == (0, 1, 1)
    assert r.patient_days == pytest.approx(0.5) and r.median_ack_seconds == 120.0
    assert region[(MON, "unknown")].admissions == 1
    assert region[(MON, "unknown")].patient_days == pytest.approx(1 / 24)
    r = region[(TUE, "25025")]
    assert (r.admissions, r.alerts_high, r.alerts_low, r.news2_high_episodes,
            r.sepsis_alerts, r.acknowledged) == (1, 1, 1, 1, 0, 1)
    assert r.patient_days == pytest.approx(1.25) and r.median_ack_seconds == 30.0

    ward = _by(store.ward_rows(db, "day", MON, TUE), "ward")
    a = ward[(MON, "icu-a")]
    assert (a.admissions, a.alerts_high, a.alerts_medium, a.acknowledged,
            a.beds) == (1, 1, 2, 3, 4)
    assert a.patient_days == pytest.approx(1.25) and a.median_ack_seconds == 120.0
    assert a.occupancy == pytest.approx(1.25 / 4)
    b = ward[(MON, "icu-b")]
    assert b.beds == 2 and b.occupancy == pytest.approx((1 / 24) / 2)

    week = _by(store.region_rows(db, "week", MON, MON), "region")[(MON, "25025")]
    assert (week.admissions, week.alerts_high, week.alerts_medium,
            week.alerts_low, week.news2_high_episodes, week.sepsis_alerts,
            week.acknowledged) == (2, 2, 1, 1, 2, 1, 3)
    assert week.patient_days == pytest.approx(0.75 + 0.25 + 6.0)
    assert week.median_ack_seconds == 60.0  # median of 30, 60, 180
    assert week.bed_days == 42.0 and week.occupancy == pytest.approx(7.0 / 42)


def test_runs_are_incremental(spark, env) -> None:
    from streaming.population_job import run_aggregation

    settings, db = env
    # Computed at noon on Tuesday: Monday is not final yet (24 h grace), Tuesday partial.
    first = run_aggregation(spark, db, settings, since=MON, until=TUE, now=ts(3, 12))
    assert first.days == [MON, TUE]
    partial = _by(store.region_rows(db, "day", TUE, TUE), "region")[(TUE, "25025")]
    assert partial.patient_days == pytest.approx(0.25 + 0.5)  # p3 until 12:00
    # Later that day nothing is final yet: both days again.
    assert run_aggregation(spark, db, settings, since=MON, until=TUE,
                           now=ts(3, 18)).days == [MON, TUE]
    # A week later both are final: the second run computes them, a third computes nothing.
    assert run_aggregation(spark, db, settings, since=MON, until=TUE, now=NOW).days == \
        [MON, TUE]
    assert run_aggregation(spark, db, settings, since=MON, until=TUE, now=NOW).days == []
    # Extending the range computes only the new day; --force recomputes all.
    assert run_aggregation(spark, db, settings, since=MON, until=WED, now=NOW).days == [WED]
    assert run_aggregation(spark, db, settings, since=MON, until=WED, now=NOW,
                           force=True).days == [MON, TUE, WED]
    full = _by(store.region_rows(db, "day", TUE, TUE), "region")[(TUE, "25025")]
    assert full.patient_days == pytest.approx(1.25)

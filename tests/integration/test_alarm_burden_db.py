"""The alarm burden read from real Cassandra: alarms from the per-ward-day index, the
first acknowledgement from the alert history (or, for rows written without one, the
alerts row), occupied bed-days from the admissions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.admission import Admission
from backend.alerting.lifecycle import Lifecycle
from backend.messages import AlertEvent, Priority
from backend.storage import census
from backend.storage.alarm_burden import load_alerts, ward_burdens
from backend.storage.alerts import AlertStore

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def raise_(db, n: int, ward: str, at: datetime, priority: Priority = Priority.HIGH,
           rule: str = "limit_spo2_low") -> str:
    ms = int(at.timestamp() * 1000)
    AlertStore(db).raise_alert(AlertEvent(
        alert_id=f"ab-{n}", event="raised", patient_id=f"p-{ward}", ward=ward, bed="1",
        rule=rule, priority=priority, message="m", values={}, onset_ts=ms - 10_000,
        reading_ts=ms, detected_ts=ms))
    return f"ab-{n}"


def test_burden_from_the_alert_tables(db) -> None:
    start, end = NOW - timedelta(days=2), NOW
    census.admit(db, Admission(patient_id="p-BA", ward="BA", bed="1",
                               admitted_ts=int((NOW - timedelta(days=3)).timestamp() * 1000)))
    census.admit(db, Admission(patient_id="p-BB", ward="BB", bed="1",
                               admitted_ts=int((NOW - timedelta(days=1)).timestamp() * 1000)))
    lc = Lifecycle(db)
    t1 = NOW - timedelta(hours=30)  # the day before: another index partition
    a1 = raise_(db, 1, "BA", t1)
    assert lc.acknowledge(a1, "n.kim", "ward_screen", now=t1 + timedelta(seconds=40)).ok
    a2 = raise_(db, 2, "BA", NOW - timedelta(hours=5), Priority.MEDIUM, "stale_signal")
    assert lc.acknowledge(a2, "n.kim", "alerts_page",
                          now=NOW - timedelta(hours=5) + timedelta(seconds=100)).ok
    # acknowledged, then resolved: still an acknowledged alarm, timed at the acknowledgement
    assert lc.resolve(a2, "n.kim", "alerts_page", now=NOW - timedelta(hours=4)).ok
    raise_(db, 3, "BA", NOW - timedelta(hours=3), Priority.LOW, "sensor_off_spo2")
    raise_(db, 4, "BA", NOW - timedelta(days=3))  # before the period
    # a seeded row (devices.history) without a history: its alerts row says who and when
    t5 = NOW - timedelta(hours=2)
    db.execute("INSERT INTO alerts (alert_id, ward, rule, priority, detected_ts, status,"
               " status_by, status_ts) VALUES ('ab-5', 'BB', 'news2_high', 'high', %s,"
               " 'acknowledged', 'demo-nurse', %s)", (t5, t5 + timedelta(seconds=300)))
    db.execute("INSERT INTO alerts_by_ward_day (ward, day, detected_ts, alert_id, rule,"
               " priority, status) VALUES ('BB', %s, %s, 'ab-5', 'news2_high', 'high',"
               " 'acknowledged')", (t5.date(), t5))

    rows = {a.alert_id: a for a in load_alerts(db, ["BA", "BB"], start, end)}
    assert set(rows) == {"ab-1", "ab-2", "ab-3", "ab-5"}
    assert rows["ab-1"].ack_ts == t1 + timedelta(seconds=40)
    assert rows["ab-2"].status == "resolved"
    assert rows["ab-2"].ack_ts - rows["ab-2"].detected_ts == timedelta(seconds=100)
    assert rows["ab-3"].ack_ts is None
    assert rows["ab-5"].ack_ts == t5 + timedelta(seconds=300)

    by_ward = {b.ward: b for b in ward_burdens(db, start, end)}
    ba, bb = by_ward["BA"], by_ward["BB"]
    assert (ba.alarms, ba.acknowledged, ba.median_ack_seconds) == (3, 2, 70.0)
    assert ba.by_priority == {Priority.HIGH: 1, Priority.MEDIUM: 1, Priority.LOW: 1}
    assert ba.bed_days == pytest.approx(2.0, abs=0.01)  # admitted before the period
    assert bb.bed_days == pytest.approx(1.0, abs=0.01)
    assert (bb.alarms, bb.acknowledged, bb.median_ack_seconds) == (1, 1, 300.0)

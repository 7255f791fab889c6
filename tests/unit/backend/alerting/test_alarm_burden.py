"""backend.alerting.burden and its table on the population page: alarms per occupied
bed-day, share acknowledged, median time to the first acknowledgement, per ward."""

from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta

from backend.alerting.burden import WardAlarm, occupied_bed_days, ward_burden
from backend.messages import Priority
from backend.storage.census import PastStay
from webapp.population_view import burden_rows

START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=7)


def alarm(ward: str, rule: str, priority: str, at_h: float, ack_s: float | None) -> WardAlarm:
    detected = START + timedelta(hours=at_h)
    return WardAlarm(f"a-{ward}-{at_h}", None, ward, rule, priority, detected, "raised",
                     None if ack_s is None else detected + timedelta(seconds=ack_s))


def stay(ward: str, admitted: datetime, discharged: datetime | None) -> PastStay:
    return PastStay("p", ward, "1", None, admitted, discharged)


def test_occupied_bed_days_clip_stays_to_the_period() -> None:
    stays = [
        stay("A", START - timedelta(days=3), None),
        stay("A", START + timedelta(days=1), START + timedelta(days=2, hours=12)),
        stay("B", END + timedelta(hours=1), None),
        stay("B", START - timedelta(days=9), START - timedelta(days=8)),
    ]
    assert occupied_bed_days(stays, START, END) == {"A": 7 + 1.5}


def test_ward_burden_counts_rates_and_medians() -> None:
    alerts = [alarm("A", "stale_signal", "medium", 1, None),
              alarm("A", "stale_signal", "medium", 2, 30),
              alarm("A", "limit_spo2_low", "high", 3, 90),
              alarm("A", "sensor_off_spo2", "low", 4, 600),
              alarm("B", "news2_high", "high", 5, None)]
    a, b, c = ward_burden(alerts, {"A": 2.0, "B": 0.5}, wards=["C"])
    assert (a.ward, a.alarms, a.acknowledged, a.median_ack_seconds) == ("A", 4, 3, 90.0)
    assert a.per_bed_day == 2.0 and a.share_acknowledged == 0.75
    assert a.by_priority == {Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 1}
    assert a.top_rules[0] == ("stale_signal", 2)
    assert (b.alarms, b.acknowledged, b.median_ack_seconds, b.per_bed_day) == (1, 0, None, 2.0)
    assert (c.ward, c.alarms, c.per_bed_day, c.share_acknowledged) == ("C", 0, None, None)


def test_ward_burden_over_generated_alarms() -> None:
    rng = random.Random(14)
    alerts = [alarm(rng.choice("AB"), rng.choice(["r1", "r2", "r3", "r4"]),
                    rng.choice(["high", "medium", "low", "bogus"]), rng.uniform(0, 160),
                    rng.choice([None, rng.lognormvariate(4, 1)])) for _ in range(2000)]
    beds = {"A": 40.0, "B": 55.5}
    for b in ward_burden(alerts, beds):
        mine = [x for x in alerts if x.ward == b.ward]
        waits = [(x.ack_ts - x.detected_ts).total_seconds() for x in mine if x.ack_ts]
        assert b.alarms == len(mine) and b.per_bed_day == len(mine) / beds[b.ward]
        assert b.acknowledged == len(waits)
        assert b.median_ack_seconds == statistics.median(waits)
        assert sum(b.by_priority.values()) == len(mine)  # an unknown priority counts (high)


def test_the_population_table_suppresses_small_counts() -> None:
    alerts = ([alarm("A", "stale_signal", "medium", h / 10, 40) for h in range(30)]
              + [alarm("B", "news2_high", "high", 1, 120)])
    rows = {r["ward"]: r for r in burden_rows(ward_burden(alerts, {"A": 10.0, "B": 3.0}), 11)}
    assert rows["A"]["alarms"] == "30 (0 / 30 / 0)"
    assert rows["A"]["per_bed_day"] == "3.0 (30 / 10.0)"
    assert rows["A"]["acknowledged"] == "100 % (30 / 30)"
    assert rows["A"]["median_ack"] == "40 s"
    assert rows["A"]["top_rules"] == "stale_signal 30"
    assert rows["B"]["alarms"] == "<11 (<11 / 0 / 0)"
    assert rows["B"]["per_bed_day"] == "suppressed (<11)"
    assert rows["B"]["median_ack"] == "suppressed (<11 acknowledged)"
    assert rows["B"]["bed_days"] == "3.0"

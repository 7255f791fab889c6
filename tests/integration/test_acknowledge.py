"""Acknowledging alarms on real Cassandra and Kafka.

Two people acknowledging one alarm at the same moment (two threads, two sessions - as
two web processes would): the lightweight transaction lets exactly one win, the other is
told who and when; the alerts row, its indexes and the audit log agree. Then the
lifecycle message reaches a running ``LiveFollower``'s ward state through Kafka, and a
follower that starts later reads the same from Cassandra.
"""

from __future__ import annotations

import threading
import time

import pytest

from backend.admission import Admission
from backend.alerting.lifecycle import Lifecycle
from backend.audit import ALERT_ACKNOWLEDGED
from backend.messages import AlertEvent, Priority
from backend.settings import Settings
from backend.storage import census
from backend.storage.alerts import AlertStore, clock_text
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from harness import audit_trail
from webapp.live.follower import LiveFollower
from webapp.live.lifecycle import LifecyclePublisher, lifecycle_handler
from webapp.live.state import WardState

pytestmark = pytest.mark.integration

WARD = "ICU-ACK"
RACES = 12


def event(n: int, ms: int | None = None, kind: str = "raised") -> AlertEvent:
    ms = ms or int(time.time() * 1000)
    return AlertEvent(alert_id=f"ack-{n}", event=kind, patient_id=f"pt-{n}", ward=WARD,
                      bed=str(n), rule="ref_spo2_low", priority=Priority.HIGH,
                      message="SpO2 84 % below 90 %", values={"spo2": 84.0},
                      onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms)


@pytest.fixture
def db(isolated_settings: Settings):
    """Two sessions on one fresh keyspace: the two web processes of the race."""
    first = connect(isolated_settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(first, isolated_settings)
    first.set_keyspace(isolated_settings.cassandra.keyspace)
    second = connect(isolated_settings.cassandra, wait_seconds=60)
    yield first, second
    second.cluster.shutdown()
    first.cluster.shutdown()


def test_concurrent_acknowledgements_one_wins_the_other_is_told_who(db) -> None:
    first, second = db
    stores = (Lifecycle(first), Lifecycle(second))
    for n in range(RACES):
        assert stores[0].store.raise_alert(event(n))
    outcomes: dict[int, dict[str, object]] = {}

    def race(n: int) -> None:
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def ack(user: str, store: Lifecycle) -> None:
            barrier.wait()
            results[user] = store.acknowledge(f"ack-{n}", user, "ward_screen")

        threads = [threading.Thread(target=ack, args=(u, s))
                   for u, s in (("n.kim", stores[0]), ("j.doe", stores[1]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        outcomes[n] = results

    for n in range(RACES):
        race(n)

    audited = audit_trail.recent(first, action=ALERT_ACKNOWLEDGED)
    winners = []
    for n, results in outcomes.items():
        assert set(results) == {"n.kim", "j.doe"}, results
        won = [u for u, r in results.items() if r.ok]
        assert len(won) == 1, (n, results)  # exactly one of the two
        winner = won[0]
        loser = next(u for u in results if u != winner)
        winners.append(winner)
        row = stores[0].store.get(f"ack-{n}")
        assert (row.status, row.status_by) == ("acknowledged", winner)
        told = results[loser]
        assert told.message == f"Already acknowledged by {winner} at {clock_text(row.status_ts)}"
        assert (told.status, told.by, told.event) == ("acknowledged", winner, None)
        # the indexes follow the alerts row
        active = first.execute("SELECT status FROM active_alerts_by_ward WHERE ward = %s"
                               " AND alert_id = %s", (WARD, f"ack-{n}")).one()
        assert active["status"] == "acknowledged"
        day = first.execute("SELECT status FROM alerts_by_ward_day WHERE ward = %s AND day = %s",
                            (WARD, row.detected_ts.date())).all()
        assert all(r["status"] == "acknowledged" for r in day[:n + 1])
        # exactly one audit entry, by the winner, naming the patient and the channel
        entries = [e for e in audited if e.target_id == f"ack-{n}"]
        assert [(e.actor, e.target_type, e.via) for e in entries] == [
            (winner, "alert", "ward_screen")], entries
        assert f"patient pt-{n}" in entries[0].detail
    print("winners:", winners)


def test_ended_alarms_cannot_be_acknowledged_and_acknowledged_ones_outlive_their_condition(
        db) -> None:
    first, _ = db
    store, lifecycle = AlertStore(first), Lifecycle(first)
    store.raise_alert(event(100))
    store.clear_alert(event(100, kind="cleared"))
    r = lifecycle.acknowledge("ack-100", "n.kim", "ward_screen")
    assert not r.ok and r.status == "cleared" and "already ended" in r.message
    store.raise_alert(event(101))
    assert lifecycle.acknowledge("ack-101", "n.kim", "ward_screen").ok
    store.clear_alert(event(101, kind="cleared"))  # the condition ends: still acknowledged
    assert store.get("ack-101").status == "acknowledged"
    [active] = store.active_for_ward(WARD)
    assert (active.alert_id, active.status, active.status_by) == (
        "ack-101", "acknowledged", "n.kim")
    assert not lifecycle.acknowledge("nope", "n.kim", "ward_screen").ok


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_every_screen_learns_who_acknowledged(isolated_settings: Settings, db) -> None:
    first, _ = db
    store = AlertStore(first)
    followers = []

    def follow() -> WardState:
        state = WardState.from_settings(isolated_settings)
        f = LiveFollower(isolated_settings, state, poll_timeout_ms=200,
                         extra_handlers={isolated_settings.kafka.topic_lifecycle:
                                         lifecycle_handler(state)})
        followers.append(f.start())
        assert f.synced.wait(60), f.last_error
        return state

    publisher = LifecyclePublisher(isolated_settings)
    census.admit(first, Admission(patient_id="pt-200", ward=WARD, bed="200", label="Alder",
                                  admitted_ts=int(time.time() * 1000) - 3_600_000))
    try:
        store.raise_alert(event(200))
        running = follow()  # filled from Cassandra: raised
        assert running.alarm("ack-200").status == "raised"
        result = Lifecycle(first).acknowledge("ack-200", "n.kim", "ward_screen")
        assert result.ok
        t0 = time.monotonic()
        publisher.publish(result.event)
        assert _wait(lambda: running.alarm("ack-200").status == "acknowledged", 10)
        latency = time.monotonic() - t0
        alarm = running.alarm("ack-200")
        assert (alarm.status_by, alarm.status_ts) == ("n.kim", result.event.at)
        assert latency < 5, latency
        later = follow()  # started after the acknowledgement: from Cassandra
        assert later.alarm("ack-200").status == "acknowledged"
        assert later.alarm("ack-200").status_by == "n.kim"
    finally:
        publisher.close()
        for f in followers:
            f.stop()

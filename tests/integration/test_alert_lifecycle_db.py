"""The alert lifecycle on real Cassandra: two sessions acknowledging / resolving one alert
at the same moment (one wins, the other is told who), the full walk through silence,
escalation, acknowledgement and resolution with its history and audit trail."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from backend import audit
from backend.alerting.lifecycle import Lifecycle
from backend.messages import AlertEvent, Priority
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate

pytestmark = pytest.mark.integration
WARD = "ICU-LC"


def event(n: int, kind: str = "raised", ms: int | None = None) -> AlertEvent:
    ms = ms or int(time.time() * 1000)
    return AlertEvent(alert_id=f"lc-{n}", event=kind, patient_id=f"pt-{n}", ward=WARD,
                      bed=str(n), rule="ref_spo2_low", priority=Priority.HIGH,
                      message="SpO2 84 % below 90 %", values={"spo2": 84.0},
                      onset_ts=ms - 10_000, reading_ts=ms, detected_ts=ms)


@pytest.fixture
def sessions(isolated_settings: Settings):
    first = connect(isolated_settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(first, isolated_settings)
    first.set_keyspace(isolated_settings.cassandra.keyspace)
    second = connect(isolated_settings.cassandra, wait_seconds=60)
    yield first, second
    second.cluster.shutdown()
    first.cluster.shutdown()


def _race(calls) -> list:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_two_sessions_acknowledge_at_once_one_wins_the_other_is_told_who(sessions) -> None:
    first, second = sessions
    a, b = Lifecycle(first), Lifecycle(second)
    for n in range(8):
        AlertStore(first).raise_alert(event(n))
        r1, r2 = _race([
            lambda n=n: a.acknowledge(f"lc-{n}", "n.kim", "alerts_page", "on my way"),
            lambda n=n: b.acknowledge(f"lc-{n}", "j.doe", "email_link"),
        ])
        assert [r1.ok, r2.ok].count(True) == 1, (r1, r2)
        win, lose = (r1, r2) if r1.ok else (r2, r1)
        assert lose.message.startswith(f"Already acknowledged by {win.by} at ")
        assert (lose.status, lose.by, lose.event) == ("acknowledged", win.by, None)
        steps = a.history(f"lc-{n}")
        assert [(s.action, s.to_status, s.actor) for s in steps] == [
            ("raise", "raised", "system"), ("acknowledge", "acknowledged", win.by)]
        assert steps[1].via == ("alerts_page" if win.by == "n.kim" else "email_link")


def test_concurrent_resolutions_one_wins(sessions) -> None:
    first, second = sessions
    a, b = Lifecycle(first), Lifecycle(second)
    AlertStore(first).raise_alert(event(50))
    r1, r2 = _race([lambda: a.resolve("lc-50", "n.kim", "alerts_page"),
                    lambda: b.resolve("lc-50", "j.doe", "alerts_page")])
    assert [r1.ok, r2.ok].count(True) == 1
    win, lose = (r1, r2) if r1.ok else (r2, r1)
    assert lose.message.startswith(f"Already resolved by {win.by} at ")
    assert a.get("lc-50").status == "resolved"


def test_the_full_walk_is_stored_with_history_and_audit(sessions) -> None:
    db, _ = sessions
    lc = Lifecycle(db)
    AlertStore(db).raise_alert(event(1))
    t = datetime.now(UTC)
    with pytest.raises(ValueError, match="needs a reason"):
        lc.silence("lc-1", "n.kim", "alerts_page", 5, "")
    assert lc.get("lc-1").status == "raised"  # bad input changed nothing
    s = lc.silence("lc-1", "n.kim", "alerts_page", 5, "patient in CT", now=t)
    assert s.ok and s.event.status == "silenced"
    row = lc.get("lc-1")
    assert row.silence_reason == "patient in CT"
    assert abs(row.silenced_until - (t + timedelta(minutes=5))) \
        < timedelta(seconds=1)
    assert not lc.silence("lc-1", "j.doe", "alerts_page", 5, "again").ok
    assert not lc.escalate("lc-1", 1, "charge_nurse", now=t).ok  # silenced: paused
    with pytest.raises(ValueError, match="alert manager only"):  # not a person's move
        lc._transition("lc-1", "unsilence", "n.kim", "alerts_page", None, t)
    assert lc.unsilence("lc-1", now=t + timedelta(minutes=5)).status == "raised"
    assert lc.get("lc-1").silenced_until is None
    e1 = lc.escalate("lc-1", 1, "charge_nurse", now=t + timedelta(minutes=6))
    assert e1.ok and e1.event.status == "escalated"
    # the same escalation again (a restarted manager) is refused: it happened once
    assert not lc.escalate("lc-1", 1, "charge_nurse", now=t + timedelta(minutes=6)).ok
    assert lc.escalate("lc-1", 2, "physician", now=t + timedelta(minutes=7)).ok
    assert lc.acknowledge("lc-1", "dr.lee", "email_link", now=t + timedelta(minutes=8)).ok
    assert not lc.acknowledge("lc-1", "n.kim", "ward_screen").ok  # not twice
    r = lc.resolve("lc-1", "dr.lee", "alerts_page", "fluids given", now=t + timedelta(minutes=9))
    assert r.ok and r.status == "resolved"
    assert not lc.resolve("lc-1", "n.kim", "alerts_page").ok
    assert not lc.acknowledge("lc-1", "n.kim", "alerts_page").ok
    steps = lc.history("lc-1")
    assert [(s.action, s.from_status, s.to_status, s.actor, s.via) for s in steps] == [
        ("raise", None, "raised", "system", "pipeline"),
        ("silence", "raised", "silenced", "n.kim", "alerts_page"),
        ("unsilence", "silenced", "raised", "system", "system"),
        ("escalate", "raised", "escalated", "system", "system"),
        ("escalate", "escalated", "escalated", "system", "system"),
        ("acknowledge", "escalated", "acknowledged", "dr.lee", "email_link"),  # like every move
        ("resolve", "acknowledged", "resolved", "dr.lee", "alerts_page"),
    ]
    assert steps[1].comment == "patient in CT" and steps[-1].comment == "fluids given"
    assert lc.get("lc-1").escalation_level == 2
    day = t.date()
    events = [(e.action, e.actor, e.via) for e in reversed(
        audit.search(db, day, day + timedelta(days=1)) ) if e.target_id == "lc-1"]
    assert events == [
        ("alert.silenced", "n.kim", "alerts_page"),
        ("alert.unsilenced", "system", "system"),
        ("alert.escalated", "system", "system"),
        ("alert.escalated", "system", "system"),
        ("alert.acknowledged", "dr.lee", "email_link"),
        ("alert.resolved", "dr.lee", "alerts_page"),
    ]
    # the ward index no longer lists it
    assert db.execute("SELECT * FROM active_alerts_by_ward WHERE ward = %s AND alert_id = %s",
                      (WARD, "lc-1")).one() is None


def test_auto_resolve_and_unknown_alerts(sessions) -> None:
    db, _ = sessions
    lc = Lifecycle(db)
    store = AlertStore(db)
    store.raise_alert(event(2))
    assert lc.acknowledge("lc-2", "n.kim", "ward_screen").ok
    store.clear_alert(event(2, "cleared"))
    r = lc.auto_resolve("lc-2")
    assert r.ok and r.event.by == "system" and lc.get("lc-2").status == "auto_resolved"
    r = lc.resolve("nope", "n.kim", "alerts_page")
    assert not r.ok and "not known" in r.message
    with pytest.raises(ValueError, match="unknown channel"):
        lc.resolve("lc-2", "n.kim", "fax")

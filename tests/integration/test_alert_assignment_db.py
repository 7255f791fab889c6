"""The charge nurse's assignment on real Cassandra: assign, reassign and two charge
nurses reassigning at once (one wins, the other is told who holds it), the board's index,
the history and the audit trail; and who acknowledged, kept through an escalation and
the system's auto-resolve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend import audit
from backend.alerting.lifecycle import Lifecycle
from backend.auth_policy import Role
from backend.patient_record import alerts_between
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.users import create_user, disable_user, get_user
from tests.integration import test_alert_lifecycle_db as lifecycle_db
from tests.integration.test_alert_lifecycle_db import WARD, _race, event

pytestmark = pytest.mark.integration
sessions = lifecycle_db.sessions  # the fixture: two Cassandra sessions on a fresh keyspace


def nurse(db, name: str, role: Role = Role.NURSE, wards: str | None = None):
    create_user(db, name, "correct horse battery staple", role, actor="test", via="test",
                wards=wards)
    return get_user(db, name)


def test_assign_then_reassign_is_indexed_in_the_history_and_audited(sessions) -> None:
    db, _ = sessions
    lc = Lifecycle(db)
    ann, bea = nurse(db, "ann"), nurse(db, "bea", wards=WARD)
    raised = event(1)
    AlertStore(db).raise_alert(raised)
    t0 = datetime.fromtimestamp(raised.detected_ts / 1000, UTC) + timedelta(seconds=1)

    first = lc.assign("lc-1", ann, "cn.lee", "alerts_page", expected=None, now=t0)
    assert first.ok and first.message.startswith("Assigned to ann by cn.lee at ")
    assert first.event is None  # no status changed: nothing to publish to the screens
    row = lc.get("lc-1")
    assert (row.assigned_to, row.assigned_by, row.status) == ("ann", "cn.lee",
                                                                       "raised")
    [board] = [r for r in AlertStore(db).active_for_ward(WARD) if r.alert_id == "lc-1"]
    assert board.assigned_to == "ann" and board.assigned_ts is not None

    second = lc.assign("lc-1", bea, "cn.lee", "alerts_page", expected="ann",
                       now=t0 + timedelta(minutes=3))
    assert second.ok
    assert lc.assign("lc-1", bea, "cn.lee", "alerts_page").message == "Already assigned to bea."
    steps = [(s.action, s.from_status, s.to_status, s.actor, s.detail)
             for s in lc.history("lc-1")]
    assert steps[1:] == [("assign", "raised", "raised", "cn.lee", "to ann"),
                         ("assign", "raised", "raised", "cn.lee", "to bea (was ann)")]
    events = audit.search(db, t0.date() - timedelta(days=1), t0.date() + timedelta(days=1),
                          action=audit.ALERT_ASSIGNED)
    assert [(e.actor, e.target_id) for e in events] == [("cn.lee", "lc-1")] * 2
    assert "to bea (was ann)" in events[0].detail and "SpO2" not in events[0].detail

    # the status moves on; the holder stays
    assert lc.acknowledge("lc-1", "bea", "alerts_page").ok
    assert lc.get("lc-1").assigned_to == "bea"
    [board] = [r for r in AlertStore(db).active_for_ward(WARD) if r.alert_id == "lc-1"]
    assert board.assigned_to == "bea"
    assert lc.resolve("lc-1", "bea", "alerts_page").ok
    refused = lc.assign("lc-1", ann, "cn.lee", "alerts_page")
    assert not refused.ok and refused.message.startswith("Already resolved by bea")


def test_unsuitable_nurses_are_refused_and_nothing_changes(sessions) -> None:
    db, _ = sessions
    lc = Lifecycle(db)
    AlertStore(db).raise_alert(event(2))
    other = nurse(db, "olga", wards="ICU-ELSEWHERE")
    doc = nurse(db, "doc", Role.PHYSICIAN)
    gone = nurse(db, "gone")
    disable_user(db, "gone", actor="test", via="test")
    for who, message in ((other, "does not cover"), (doc, "not a nurse"),
                         (get_user(db, "gone"), "disabled"), (None, "No such user")):
        with pytest.raises(ValueError, match=message):
            lc.assign("lc-2", who, "cn.lee", "alerts_page")
    assert gone is not None and lc.get("lc-2").assigned_to is None
    assert [s.action for s in lc.history("lc-2")] == ["raise"]


def test_two_charge_nurses_reassign_at_once_one_wins_the_other_is_told_who(sessions) -> None:
    first, second = sessions
    a, b = Lifecycle(first), Lifecycle(second)
    ann, bea, cat = nurse(first, "ann2"), nurse(first, "bea2"), nurse(first, "cat2")
    for n in range(10, 16):
        AlertStore(first).raise_alert(event(n))
        assert a.assign(f"lc-{n}", ann, "cn.one", "alerts_page", expected=None).ok
        r1, r2 = _race([
            lambda n=n: a.assign(f"lc-{n}", bea, "cn.one", "alerts_page", expected="ann2"),
            lambda n=n: b.assign(f"lc-{n}", cat, "cn.two", "alerts_page", expected="ann2"),
        ])
        assert [r1.ok, r2.ok].count(True) == 1, (r1, r2)
        win, lose = (r1, r2) if r1.ok else (r2, r1)
        holder = "bea2" if win.by == "cn.one" else "cat2"
        assert lose.message.startswith(f"Meanwhile assigned to {holder} by {win.by} at ")
        assert a.get(f"lc-{n}").assigned_to == holder
        assert [s.action for s in a.history(f"lc-{n}")].count("assign") == 2


def test_who_acknowledged_survives_an_escalation_and_the_auto_resolve(
        sessions, isolated_settings: Settings) -> None:
    db, _ = sessions
    lc = Lifecycle(db, isolated_settings.alert_manager)
    e = event(20)
    AlertStore(db).raise_alert(e)
    t0 = datetime.fromtimestamp(e.detected_ts / 1000, UTC)
    assert lc.escalate("lc-20", 1, "charge_nurse", now=t0 + timedelta(minutes=2)).ok
    assert lc.acknowledge("lc-20", "n.kim", "email_link", now=t0 + timedelta(minutes=3)).ok
    AlertStore(db).clear_alert(event(20, "cleared", e.detected_ts + 60_000))
    assert lc.auto_resolve("lc-20", now=t0 + timedelta(minutes=10)).ok
    row = lc.get("lc-20")
    assert (row.status, row.status_by) == ("auto_resolved", "system")
    assert row.acknowledged_by == "n.kim"
    [h] = alerts_between(db, e.patient_id, e.onset_ts - 1, e.onset_ts + 1)
    assert (h.acknowledged_by, h.escalation_level, h.status) == ("n.kim", 1, "auto_resolved")

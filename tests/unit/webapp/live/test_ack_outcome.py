"""Acknowledging an alarm without servers: the lifecycle's flow on a fake session, the
refusal messages, the lifecycle message and its way into every screen's WardState, and
the authorisation of pattern-matching callbacks (the Acknowledge buttons)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from backend import localtime
from backend.alerting.lifecycle import Lifecycle
from backend.audit import ALERT_ACKNOWLEDGED
from backend.messages import AlertEvent, AlertLifecycle, Priority
from backend.settings import Settings
from backend.storage.alerts import AlertRow, clock_text, refusal
from webapp.live import lifecycle_handler, live_follower, live_state, stop_live
from webapp.live.follower import LiveFollower
from webapp.live.lifecycle import LifecyclePublisher
from webapp.live.state import WardState

AT = datetime(2026, 3, 1, 14, 5, 9, 123456, tzinfo=UTC)


class Stmt:
    def __init__(self, cql: str) -> None:
        self.cql = cql
        self.consistency_level = None
        self.fetch_size = None


class FakeSession:
    """Just enough of a Cassandra session for the lifecycle: one alerts row per id, the LWT
    semantics of the acknowledgement, every write recorded. ``audited`` collects the
    ``audit.record`` calls (patched by the ``db`` fixture)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.writes: list[tuple[str, tuple]] = []
        self.audited: list[tuple] = []
        self.fail_audit = False

    def prepare(self, cql: str) -> Stmt:
        return Stmt(cql)

    def record(self, session, actor, action, target_type=None, target_id=None, detail="",
               via="web", *, now=None):
        if self.fail_audit:
            raise ConnectionError("audit tables unavailable")
        assert session is self
        self.audited.append((actor, action, target_type, target_id, detail, via, now))

    def execute(self, stmt, params=()):
        cql = stmt.cql
        if cql.startswith("UPDATE alerts SET status = 'acknowledged'"):
            user, at, acked_by, acked_ts, alert_id = params
            row = self.rows.get(alert_id)
            if row is None:
                return Result([{"[applied]": False}])
            if row["status"] not in ("raised", "escalated", "silenced"):
                return Result([{"[applied]": False, "status": row["status"]}])
            row.update(status="acknowledged", status_by=user, status_ts=at,
                       acknowledged_by=acked_by, acknowledged_ts=acked_ts)
            return Result([{"[applied]": True}])
        if cql.startswith("SELECT * FROM alerts WHERE"):
            row = self.rows.get(params[0])
            return Result([dict(row)] if row else [])
        self.writes.append((cql, tuple(params)))
        return Result([])


class Result(list):
    def one(self):
        return self[0] if self else None


def alert_row(alert_id: str = "a1", status: str = "raised", **kw) -> dict:
    detected = datetime(2026, 3, 1, 14, 0, 0, tzinfo=UTC)
    return {"alert_id": alert_id, "patient_id": "p-7", "ward": "ICU-A", "bed": "7",
            "rule": "ref_spo2_low", "priority": "high", "message": "SpO2 84 % below 90 %",
            "vals": {}, "onset_ts": detected, "reading_ts": detected,
            "detected_ts": detected, "cleared_ts": None, "status": status,
            "status_by": None, "status_ts": detected, **kw}


@pytest.fixture
def db(monkeypatch) -> FakeSession:
    s = FakeSession()
    s.rows["a1"] = alert_row()
    monkeypatch.setattr("backend.alerting.lifecycle.audit.record", s.record)
    return s


def test_acknowledge_stores_refreshes_indexes_audits_and_returns_the_event(db) -> None:
    result = Lifecycle(db).acknowledge("a1", "n.kim", "ward_screen", now=AT)
    assert result.ok and result.problems == ()
    assert result.message == f"Acknowledged by n.kim at {clock_text(AT)}"
    row = db.rows["a1"]
    assert (row["status"], row["status_by"]) == ("acknowledged", "n.kim")
    # kept apart: a later escalation or auto-resolve overwrites status_by, not this
    assert (row["acknowledged_by"], row["acknowledged_ts"]) == ("n.kim", row["status_ts"])
    assert row["status_ts"].microsecond == 123000  # Cassandra keeps milliseconds
    # the indexes are written from the alerts row: the ward's active list shows the status
    active = [p for cql, p in db.writes if cql.startswith("INSERT INTO active_alerts_by_ward")]
    assert active and active[-1][8] == "acknowledged"  # (..., status, holder, since)
    by_day = [p for cql, p in db.writes if cql.startswith("INSERT INTO alerts_by_ward_day")]
    assert by_day and by_day[-1][9] == "acknowledged"  # (..., status, holder)
    # one audit entry: who, what, which alert, which patient, through which channel
    [(actor, action, target_type, target_id, detail, via, now)] = db.audited
    assert (actor, action, target_type, target_id, via, now) == (
        "n.kim", ALERT_ACKNOWLEDGED, "alert", "a1", "ward_screen", row["status_ts"])
    assert "patient p-7" in detail and "SpO2 84" not in detail  # no clinical values
    assert "raised -> acknowledged" in detail  # as every other move of the lifecycle
    # one history step, from the status it was acknowledged in
    [step] = [p for cql, p in db.writes if cql.startswith("INSERT INTO alert_history")]
    assert step[:7] == ("a1", row["status_ts"], "acknowledge", "raised", "acknowledged",
                        "n.kim", "ward_screen")
    # the lifecycle message every screen applies
    e = result.event
    assert e == AlertLifecycle(alert_id="a1", status="acknowledged", by="n.kim",
                               at=int(AT.replace(microsecond=0).timestamp()) * 1000 + 123,
                               via="ward_screen", patient_id="p-7", ward="ICU-A", bed="7")


def test_the_second_acknowledgement_is_told_who_was_first(db) -> None:
    store = Lifecycle(db)
    assert store.acknowledge("a1", "n.kim", "ward_screen", now=AT).ok
    late = store.acknowledge("a1", "j.doe", "alerts_page")
    assert not late.ok and late.event is None
    assert late.message == f"Already acknowledged by n.kim at {clock_text(AT)}"
    assert (late.status, late.by) == ("acknowledged", "n.kim")
    assert db.rows["a1"]["status_by"] == "n.kim"
    assert len(db.audited) == 1  # only the winner is audited


def test_escalated_and_silenced_alarms_can_be_acknowledged(db) -> None:
    db.rows["e"] = alert_row("e", status="escalated")
    db.rows["s"] = alert_row("s", status="silenced")
    store = Lifecycle(db)
    assert store.acknowledge("e", "u", "ward_screen").ok
    assert store.acknowledge("s", "u", "ward_screen").ok


def test_ended_and_unknown_alarms_are_refused_with_a_reason(db) -> None:
    ended = datetime(2026, 3, 1, 14, 3, 0, tzinfo=UTC)
    db.rows["c"] = alert_row("c", status="cleared", cleared_ts=ended)
    store = Lifecycle(db)
    r = store.acknowledge("c", "u", "ward_screen")
    assert not r.ok and r.message == f"This alarm already ended at {clock_text(ended)}"
    assert r.status == "cleared"
    r = store.acknowledge("nope", "u", "ward_screen")
    assert not r.ok and r.status is None and "not known" in r.message
    assert db.audited == []


def test_a_failing_audit_write_does_not_undo_the_acknowledgement(db) -> None:
    db.fail_audit = True
    result = Lifecycle(db).acknowledge("a1", "n.kim", "ward_screen", comment="seen")
    assert result.ok and result.event is not None
    assert any(p.startswith("audit:") for p in result.problems)
    assert db.rows["a1"]["status"] == "acknowledged"


def test_user_and_channel_are_required(db) -> None:
    with pytest.raises(ValueError):
        Lifecycle(db).acknowledge("a1", "", "ward_screen")
    with pytest.raises(ValueError):
        Lifecycle(db).acknowledge("a1", "u", "")


def test_refusal_texts() -> None:
    naive = datetime(2026, 3, 1, 9, 30, 0)  # Cassandra hands back naive UTC
    r = refusal("x", AlertRow.from_row({"alert_id": "x", "status": "acknowledged",
                                        "status_by": "a.b", "status_ts": naive}))
    assert r.message == f"Already acknowledged by a.b at {clock_text(naive)}"
    # the hospital's local time with the zone (backend.localtime), not the server's
    assert clock_text(naive) == localtime.clock(naive.replace(tzinfo=UTC))
    assert localtime.clock(naive, "Europe/Berlin") == "10:30:00 CET"
    assert refusal("x", AlertRow("x", status="resolved", status_ts=naive.replace(tzinfo=UTC))
                   ).message.startswith("Already resolved at ")
    assert "not known" in refusal("x", AlertRow("x")).message  # only its end is stored
    assert clock_text(None) == "--:--:--"


def test_a_comment_goes_into_the_audit_detail(db) -> None:
    assert Lifecycle(db).acknowledge("a1", "n.kim", "alerts_page", comment=" on my way ").ok
    assert db.audited[0][4].endswith("comment: on my way")
    assert ALERT_ACKNOWLEDGED == "alert.acknowledged"


# ------------------------------------------------------------- lifecycle into the screens


def raised(alert_id: str = "a1") -> AlertEvent:
    ms = int(time.time() * 1000)
    return AlertEvent(alert_id=alert_id, event="raised", patient_id="p-7", ward="ICU-A",
                      bed="7", rule="ref_spo2_low", priority=Priority.HIGH,
                      message="SpO2 84 % below 90 %", values={}, onset_ts=ms,
                      reading_ts=ms, detected_ts=ms)


def test_lifecycle_handler_applies_the_message_to_the_state() -> None:
    state = WardState()
    state.apply_alert(raised())
    handle = lifecycle_handler(state)
    msg = AlertLifecycle(alert_id="a1", status="acknowledged", by="n.kim",
                         at=1_800_000_000_000, via="ward_screen")
    assert handle(msg.model_dump_json().encode())
    a = state.alarm("a1")
    assert (a.status, a.status_by, a.status_ts) == ("acknowledged", "n.kim", 1_800_000_000_000)
    assert not a.needs_action
    # resolved takes it off the screen; unknown alerts change nothing
    assert handle(msg.model_copy(update={"status": "resolved"}).model_dump_json().encode())
    assert state.alarm("a1") is None
    assert not handle(msg.model_dump_json().encode())
    with pytest.raises(ValueError):  # the follower counts it as a bad message
        handle(b'{"alert_id": "a1"}')


class FakeProducer:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list = []
        self.fail = fail
        self.closed = False

    def send(self, topic, key=None, value=None):
        self.sent.append((topic, key, value))
        return SimpleNamespace(get=self._result)

    def _result(self, timeout=None):
        if self.fail:
            raise TimeoutError("no broker")
        return SimpleNamespace(offset=len(self.sent) - 1)

    def close(self, timeout=None):
        self.closed = True


def test_publisher_sends_keyed_by_alert_and_recreates_its_producer_after_a_failure() -> None:
    settings = Settings()
    made: list[FakeProducer] = []

    def factory() -> FakeProducer:
        made.append(FakeProducer(fail=len(made) == 0))
        return made[-1]

    pub = LifecyclePublisher(settings, producer_factory=factory)
    msg = AlertLifecycle(alert_id="a1", status="acknowledged", by="u", at=1, via="ward_screen")
    with pytest.raises(TimeoutError):
        pub.publish(msg)
    assert made[0].closed
    pub.publish(msg)
    topic, key, value = made[1].sent[0]
    assert topic == settings.kafka.topic_lifecycle and key == b"a1"
    assert AlertLifecycle.model_validate_json(value) == msg


def test_the_process_follower_follows_the_lifecycle_topic() -> None:
    settings = Settings()
    stop_live()
    try:
        state = live_state(settings, start=False)
        follower = live_follower()
        assert isinstance(follower, LiveFollower) and not follower.running
        assert set(follower.handlers) == {settings.kafka.topic_validated,
                                          settings.kafka.topic_alerts,
                                          settings.kafka.topic_lifecycle}
        state.apply_alert(raised())
        follower.handlers[settings.kafka.topic_lifecycle](AlertLifecycle(
            alert_id="a1", status="acknowledged", by="u", at=1, via="x").model_dump_json())
        assert state.alarm("a1").status_by == "u"
        assert live_state(start=False) is state  # one per process
    finally:
        stop_live()


# ---------------------------------------------------- authorisation of pattern callbacks


def test_pattern_matching_requests_are_checked_against_the_pattern() -> None:
    from webapp.security import _body_matches_declaration

    cb = {"inputs": [{"id": '{"alert":["ALL"],"type":"ward-ack"}', "property": "n_clicks"}],
          "state": []}

    def body(*items):
        return {"inputs": list(items), "state": []}

    def button(alert: str, prop: str = "n_clicks", kind: str = "ward-ack") -> dict:
        return {"id": {"alert": alert, "type": kind}, "property": prop, "value": 1}

    assert _body_matches_declaration(cb, body([]))
    assert _body_matches_declaration(cb, body([button("a1"), button("a2")]))
    assert not _body_matches_declaration(cb, body([button("a1", kind="admin-delete")]))
    assert not _body_matches_declaration(cb, body([button("a1", prop="children")]))
    assert not _body_matches_declaration(cb, body([{"id": "ward-ack", "property": "n_clicks"}]))
    assert not _body_matches_declaration(cb, body([{"id": {"alert": "a1", "type": "ward-ack",
                                                           "x": 1}, "property": "n_clicks"}]))
    assert not _body_matches_declaration(cb, body())

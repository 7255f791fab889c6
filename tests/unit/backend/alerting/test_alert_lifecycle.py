"""The alert lifecycle's transition table, refusals, silence input and the manager's
"what is due" decisions (pure logic; the Cassandra side is in
tests/integration/test_alert_lifecycle_db.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.alerting import lifecycle as lc
from backend.settings import AlertManagerSettings
from backend.storage.alerts import AlertRow

T0 = datetime(2026, 3, 1, 14, 0, 0, tzinfo=UTC)
POLICY = AlertManagerSettings(escalation_minutes={"high": [2, 5], "medium": [5], "low": []},
                              auto_resolve_after_seconds=300, silence_max_minutes=30)


def row(status: str | None = "raised", **kw) -> AlertRow:
    """An alerts row as the driver gives it (naive UTC times), read by the store."""
    naive = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v for k, v in kw.items()}
    return AlertRow.from_row({"alert_id": "a", "status": status, "priority": "high",
                              "detected_ts": T0.replace(tzinfo=None),
                              "status_ts": T0.replace(tzinfo=None), "status_by": None, **naive})


# The whole table, spelled out: (action, from) -> allowed?
EXPECTED = {
    "acknowledge": {"raised", "escalated", "silenced"},
    "silence": {"raised", "escalated"},
    "unsilence": {"silenced"},
    "escalate": {"raised", "escalated"},
    "resolve": {"raised", "escalated", "silenced", "acknowledged"},
    "auto_resolve": {"raised", "escalated", "silenced", "acknowledged"},
}


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("status", lc.STATUSES)
def test_transition_table(action: str, status: str) -> None:
    reason = lc.refusal_reason(action, row(status))
    if status in EXPECTED[action]:
        assert reason is None
    else:
        assert reason and reason.startswith(("Already", "This alarm already ended"))


def test_ended_states_accept_nothing_and_unknown_alerts_are_refused() -> None:
    for status in lc.ENDED:
        assert all(lc.refusal_reason(a, row(status)) for a in lc.TRANSITIONS)
    for action in lc.TRANSITIONS:
        assert "not known" in lc.refusal_reason(action, None)
    with pytest.raises(ValueError):
        lc.refusal_reason("delete", row())


def test_refusals_say_who_and_what() -> None:
    acked = row("acknowledged", status_by="n.kim")
    assert lc.refusal_reason("acknowledge", acked).startswith("Already acknowledged by n.kim at ")
    assert "nothing to silence" in lc.refusal_reason("silence", acked)
    silenced = row("silenced", status_by="j.doe", silenced_until=T0 + timedelta(minutes=5))
    assert lc.refusal_reason("silence", silenced).startswith("Already silenced by j.doe until ")
    resolved = row("resolved", status_by="j.doe")
    assert lc.refusal_reason("resolve", resolved).startswith("Already resolved by j.doe at ")
    auto = row("auto_resolved", status_by="system")
    assert lc.refusal_reason("acknowledge", auto).startswith("Already auto-resolved at ")
    cleared = row("cleared", cleared_ts=T0)
    assert lc.refusal_reason("acknowledge", cleared).startswith("This alarm already ended at ")


def test_targets() -> None:
    assert lc.target_status("acknowledge", row()) == "acknowledged"
    assert lc.target_status("unsilence", row("silenced")) == "raised"
    assert lc.target_status("unsilence", row("silenced", escalation_level=1)) == "escalated"
    assert lc.target_status("auto_resolve", row("acknowledged")) == "auto_resolved"
    # people cannot do what only the manager does
    assert {a for a, t in lc.TRANSITIONS.items() if t.by_system_only} == {
        "unsilence", "escalate", "auto_resolve"}


@pytest.mark.parametrize("minutes, reason, message", [
    ("", "x-ray", "Enter a number"),
    ("abc", "x-ray", "Enter a number"),
    (None, "x-ray", "Enter a number"),
    ("0", "x-ray", "more than 0"),
    ("-5", "x-ray", "more than 0"),
    ("nan", "x-ray", "more than 0"),
    ("31", "x-ray", "at most 30 minutes"),
    ("10", "", "needs a reason"),
    ("10", "  a ", "needs a reason"),
    ("10", None, "needs a reason"),
    ("10", "x" * 501, "too long"),
])
def test_silence_input_is_checked(minutes, reason, message) -> None:
    with pytest.raises(ValueError, match=message):
        lc.parse_silence(minutes, reason, 30)


def test_a_good_silence() -> None:
    request = lc.parse_silence("7.5", "  patient in CT  ", 30)
    assert request == lc.SilenceRequest(7.5, "patient in CT")
    assert lc.parse_silence(30, "max", 30).minutes == 30


def test_escalation_chain_timing() -> None:
    r = row()
    assert lc.due(r, T0 + timedelta(minutes=1, seconds=59), POLICY) is None
    assert lc.due(r, T0 + timedelta(minutes=2), POLICY) == lc.Due("escalate", 1, "charge_nurse")
    r1 = row("escalated", escalation_level=1)
    assert lc.due(r1, T0 + timedelta(minutes=4), POLICY) is None
    assert lc.due(r1, T0 + timedelta(minutes=5), POLICY) == lc.Due("escalate", 2, "physician")
    r2 = row("escalated", escalation_level=2)
    assert lc.due(r2, T0 + timedelta(hours=5), POLICY) is None  # end of the chain
    # medium has one step; low none
    assert lc.due(row(priority="medium"), T0 + timedelta(minutes=5), POLICY).role == "charge_nurse"
    assert lc.due(row("escalated", priority="medium", escalation_level=1),
                  T0 + timedelta(hours=1), POLICY) is None
    assert lc.due(row(priority="low"), T0 + timedelta(hours=1), POLICY) is None
    # acknowledged alerts never escalate
    assert lc.due(row("acknowledged"), T0 + timedelta(hours=1), POLICY) is None


def test_the_chain_is_bounded_by_the_roles() -> None:
    short = AlertManagerSettings(escalation_minutes={"high": [1, 2, 3, 4]},
                                 chain=["nurse", "physician"])
    assert lc.escalation_step("high", 0, short) == (1, "physician")
    assert lc.escalation_step("high", 1, short) is None


def test_silence_pauses_escalation_until_it_runs_out() -> None:
    s = row("silenced", silenced_until=T0 + timedelta(minutes=10))
    assert lc.due(s, T0 + timedelta(minutes=9), POLICY) is None
    assert lc.due(s, T0 + timedelta(minutes=10), POLICY) == lc.Due("unsilence")
    # naive timestamps (as Cassandra returns them) are UTC
    naive = row("silenced", silenced_until=(T0 + timedelta(minutes=1)).replace(tzinfo=None))
    assert naive.silenced_until == T0 + timedelta(minutes=1)
    assert lc.due(naive, T0 + timedelta(minutes=2), POLICY) == lc.Due("unsilence")


def test_auto_resolve_after_the_condition_stayed_clear() -> None:
    acked = row("acknowledged", cleared_ts=T0 + timedelta(minutes=1))
    assert lc.due(acked, T0 + timedelta(minutes=5, seconds=59), POLICY) is None
    assert lc.due(acked, T0 + timedelta(minutes=6), POLICY) == lc.Due("auto_resolve")
    esc = row("escalated", escalation_level=1, cleared_ts=T0)
    assert lc.due(esc, T0 + timedelta(minutes=5), POLICY) == lc.Due("auto_resolve")


def test_ended_alerts_leave_the_work_list() -> None:
    for status in lc.ENDED:
        assert lc.due(row(status), T0, POLICY) == lc.Due("close")
    assert lc.due(row(None), T0, POLICY) == lc.Due("close")  # only its end is stored

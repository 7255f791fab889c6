"""The charge nurse's assignment without servers: who may hold an alert, the board's
order, how long a hold is shown to last, the inbox's priority order, and the assignment's
place in the one transition table."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from backend import audit
from backend.alerting import lifecycle
from backend.alerting.inbox import inbox_order
from backend.auth_policy import Role, allowed
from backend.storage.alerts import ActiveAlert, AlertRow, WardDayAlert
from backend.users import User
from webapp.alerts_view import board_rows, held_for

T = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def user(name: str, role: Role = Role.NURSE, **kw) -> User:
    return User(name, name.title(), role, kw.pop("disabled", False), kw.pop("is_demo", False),
                T, T, **kw)


def test_alerts_are_assigned_to_enabled_nurses_of_the_alerts_ward() -> None:
    problem = lifecycle.assignee_problem
    assert problem(user("ann"), "ICU-A") is None  # no wards: every ward
    assert problem(user("ann", wards=frozenset({"ICU-A"})), "icu-a") is None
    assert problem(user("cat", Role.CHARGE_NURSE), "ICU-A") is None  # may take one herself
    assert "does not cover ICU-B" in problem(user("ann", wards=frozenset({"ICU-A"})), "ICU-B")
    assert "disabled" in problem(user("bob", disabled=True), "ICU-A")
    assert "not a nurse" in problem(user("doc", Role.PHYSICIAN), "ICU-A")
    assert "not a nurse" in problem(user("adm", Role.ADMIN), "ICU-A")
    assert "demo account" in problem(user("demo-nurse", is_demo=True), "ICU-A")
    assert problem(user("demo-nurse", is_demo=True), "ICU-A", demo_mode=True) is None
    assert problem(None, "ICU-A") == "No such user."


def test_assign_is_one_row_of_the_transition_table_and_keeps_the_status() -> None:
    t = lifecycle.TRANSITIONS["assign"]
    assert t.sources == lifecycle.ACTIVE and t.audit_action == audit.ALERT_ASSIGNED
    assert not t.by_system_only
    for status in lifecycle.ACTIVE:
        assert lifecycle.target_status("assign", AlertRow("a", status=status)) == status
        assert lifecycle.refusal_reason("assign", AlertRow("a", status=status)) is None
    ended = lifecycle.refusal_reason("assign", AlertRow("a", status="resolved",
                                                        status_by="n.kim", status_ts=T))
    assert ended.startswith("Already resolved by n.kim")
    assert audit.ALERT_ASSIGNED in audit.ACTIONS
    # only charge nurses hold the permission the page's assign callback is tagged with
    assert [r for r in Role if allowed(r, "alerts.assign")] == [Role.CHARGE_NURSE]


def test_a_hold_reads_in_seconds_minutes_or_hours() -> None:
    now = 10_000_000
    assert held_for(None, now) == ""
    assert held_for(now - 45_000, now) == "45 s"
    assert held_for(now - 12 * 60_000 - 5_000, now) == "12 min"
    assert held_for(now - (2 * 60 + 5) * 60_000, now) == "2 h 05 min"
    assert held_for(now + 5_000, now) == "0 s"  # a clock a little ahead never goes negative


def _row(i: int, priority: str, holder: str | None, minutes_ago: int | None) -> ActiveAlert:
    return ActiveAlert(
        "ICU-A", f"a{i}", f"p{i}", str(i), "rule", priority, "", T - timedelta(minutes=i),
        "raised", assigned_to=holder,
        assigned_ts=None if minutes_ago is None else T - timedelta(minutes=minutes_ago))


def test_the_board_groups_by_nurse_and_lists_the_unassigned_last() -> None:
    rows = [_row(1, "low", "bea", 5), _row(2, "high", None, None), _row(3, "high", "bea", 1),
            _row(4, "medium", "ann", 30), _row(5, "high", "bea", 9), _row(6, "low", None, None)]
    board = board_rows(rows, int(T.timestamp() * 1000))
    assert [h for h, _ in board] == ["ann", "bea", ""]
    bea = [r.alert_id for r in board[1][1]]
    assert bea == ["a5", "a3", "a1"]  # high first; of two highs the one held longer
    assert [r.alert_id for r in board[2][1]] == ["a2", "a6"]


def test_the_inbox_sorts_by_priority_then_newest_first() -> None:
    rng = random.Random(3)
    rows = []
    for i in range(300):
        detected = T - timedelta(seconds=rng.randrange(0, 86_400))
        rows.append(WardDayAlert("ICU-A", detected.date(), detected, f"a{i}",
                                 priority=rng.choice(["high", "medium", "low", "other"])))
    ordered = inbox_order(rows)
    rank = {"high": 0, "medium": 1, "low": 2}
    keys = [(rank.get(r.priority, 3), -r.detected_ts.timestamp()) for r in ordered]
    assert keys == sorted(keys)
    assert sorted(r.alert_id for r in ordered) == sorted(r.alert_id for r in rows)
    assert inbox_order(list(reversed(rows))) == ordered  # one order, whatever came first

"""The alert lifecycle: which status an alert may move to, and moving it.

Statuses::

    raised ──acknowledge──▶ acknowledged ──resolve──▶ resolved
      │  ▲                      ▲    │
      │  └─unsilence─ silenced ─┘    └─(condition clear for a while)─▶ auto_resolved
      │                 ▲  acknowledge
      ├──silence────────┘
      └──escalate──▶ escalated (level 1, 2, ...; escalate again, silence, acknowledge)
    raised ──(condition ended before anyone acted; the stream job)──▶ cleared

    any active status ──assign (to a nurse; again = reassign)──▶ the same status


THE transition table is :data:`TRANSITIONS` (action -> the statuses it acts on, the
status it leads to). Every move is one Cassandra lightweight transaction on the
``alerts`` row, conditional on the status (and escalation level) the move was decided
from: of two concurrent moves exactly one is applied, and the other is told what
happened instead and by whom. After the move: the indexes, one ``alert_history`` step
(who, when, how, comment), one audit event, and the ``AlertLifecycle`` message the caller
publishes so every screen updates.

Assigning (the charge nurse's ``alerts.assign``) gives an active alert to a nurse of its
ward without changing its status: a lightweight transaction conditional on the holder the
charge nurse saw, so of two concurrent reassignments one wins and the other is told who
holds it now. Who holds which alert since when is on the alert row and in the ward's
active-alert index (``assigned_to``, ``assigned_by``, ``assigned_ts``).

"How" (``via``) is one of :data:`CHANNELS`. Every channel (the ward screen's tile, the
alert inbox, the e-mail link, the alert manager) moves alerts through :class:`Lifecycle`,
so each move writes the same history step and audit event whatever the channel. The
statements themselves are ``backend.storage.alerts.AlertStore``'s.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from backend import audit
from backend.alerting.status import ACTIVE, ENDED, AlertStatus
from backend.messages import AlertLifecycle
from backend.settings import AlertManagerSettings
from backend.storage import alert_history
from backend.storage.alerts import AckResult, AlertRow, AlertStore, clock_text, refusal
from backend.storage.cassandra import Session
from backend.storage.statements import store as session_store

log = logging.getLogger(__name__)

RAISED = AlertStatus.RAISED
ESCALATED = AlertStatus.ESCALATED
SILENCED = AlertStatus.SILENCED
ACKNOWLEDGED = AlertStatus.ACKNOWLEDGED
RESOLVED = AlertStatus.RESOLVED
AUTO_RESOLVED = AlertStatus.AUTO_RESOLVED
CLEARED = AlertStatus.CLEARED
STATUSES = tuple(AlertStatus)

# How a person (or the system) acted.
WARD_SCREEN = "ward_screen"
ALERTS_PAGE = "alerts_page"
EMAIL_LINK = "email_link"
SYSTEM = "system"
CHANNELS = (WARD_SCREEN, ALERTS_PAGE, EMAIL_LINK, SYSTEM)
SYSTEM_ACTOR = "system"

UNSILENCE_TO = "(raised or escalated)"  # unsilence returns to where the alert was
UNCHANGED = "(unchanged)"  # assign keeps the status
ANY_HOLDER = object()  # assign without saying which holder the user saw
# Roles an alert may be assigned to (a charge nurse may take one herself).
ASSIGNABLE_ROLES = frozenset({"nurse", "charge_nurse"})


@dataclass(frozen=True, slots=True)
class Transition:
    sources: frozenset[str]
    target: str
    audit_action: str
    by_system_only: bool = False


TRANSITIONS: Mapping[str, Transition] = {
    "acknowledge": Transition(frozenset({RAISED, ESCALATED, SILENCED}), ACKNOWLEDGED,
                              audit.ALERT_ACKNOWLEDGED),
    "silence": Transition(frozenset({RAISED, ESCALATED}), SILENCED, audit.ALERT_SILENCED),
    "unsilence": Transition(frozenset({SILENCED}), UNSILENCE_TO, audit.ALERT_UNSILENCED,
                            by_system_only=True),
    "escalate": Transition(frozenset({RAISED, ESCALATED}), ESCALATED, audit.ALERT_ESCALATED,
                           by_system_only=True),
    "resolve": Transition(frozenset({RAISED, ESCALATED, SILENCED, ACKNOWLEDGED}), RESOLVED,
                          audit.ALERT_RESOLVED),
    "auto_resolve": Transition(frozenset({RAISED, ESCALATED, SILENCED, ACKNOWLEDGED}),
                               AUTO_RESOLVED, audit.ALERT_AUTO_RESOLVED, by_system_only=True),
    "assign": Transition(ACTIVE, UNCHANGED, audit.ALERT_ASSIGNED),
}

_VERB = {"acknowledge": "acknowledged", "silence": "silenced", "resolve": "resolved",
         "escalate": "escalated", "unsilence": "unsilenced", "auto_resolve": "resolved",
         "assign": "assigned"}


def target_status(action: str, row: AlertRow) -> str:
    t = TRANSITIONS[action]
    if t.target == UNSILENCE_TO:
        return ESCALATED if row.level > 0 else RAISED
    if t.target == UNCHANGED:
        return str(row.status)
    return t.target


def refusal_reason(action: str, row: AlertRow | None) -> str | None:
    """Why ``action`` cannot act on an alert in ``row``'s state (``None``: it can)."""
    if action not in TRANSITIONS:
        raise ValueError(f"unknown action {action!r}")
    if row is None or row.status is None:
        return "This alarm is not known (yet): please try again in a moment."
    status = row.status
    if status in TRANSITIONS[action].sources:
        return None
    by, at = row.status_by, row.status_ts
    who = f" by {by}" if by and by != SYSTEM_ACTOR else ""
    if status == CLEARED:
        return f"This alarm already ended at {clock_text(row.cleared_ts or at)}"
    if status in ENDED:
        return f"Already {status.replace('_', '-')}{who} at {clock_text(at)}"
    if action == "silence" and status == SILENCED:
        return (f"Already silenced{who} until {clock_text(row.silenced_until)}")
    if action == "assign":
        return f"This alarm has ended ({status.replace('_', '-')}{who} at {clock_text(at)})"
    if action == "silence" and status == ACKNOWLEDGED:
        return f"Already acknowledged{who} at {clock_text(at)}: there is nothing to silence"
    return f"Already {status}{who} at {clock_text(at)}"


@dataclass(frozen=True, slots=True)
class SilenceRequest:
    minutes: float
    reason: str


def parse_silence(minutes: Any, reason: Any, max_minutes: float) -> SilenceRequest:
    """A silence as typed in a form; ``ValueError`` with a message for the screen."""
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        raise ValueError("Silence for how many minutes? Enter a number.") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError("The silence must last more than 0 minutes.")
    if value > max_minutes:
        raise ValueError(f"A silence lasts at most {max_minutes:g} minutes.")
    text = reason.strip() if isinstance(reason, str) else ""
    if len(text) < 3:
        raise ValueError("A silence needs a reason (at least 3 characters).")
    if len(text) > alert_history.MAX_COMMENT:
        raise ValueError(f"The reason is too long (at most {alert_history.MAX_COMMENT} "
                         "characters).")
    return SilenceRequest(value, text)


def assignee_problem(user: Any, ward: str | None, *, demo_mode: bool = False) -> str | None:
    """Why ``user`` (a ``backend.users.User`` or ``None``) cannot hold an alert of
    ``ward``; ``None`` when they can: an enabled nurse or charge nurse covering the ward
    (``User.covers``: no wards = every ward), a demo account only in demo mode (it cannot
    sign in otherwise)."""
    if user is None:
        return "No such user."
    if user.disabled:
        return f"{user.username} is disabled."
    if user.is_demo and not demo_mode:
        return f"{user.username} is a demo account."
    if user.role.value not in ASSIGNABLE_ROLES:
        return f"{user.username} is not a nurse: alerts are assigned to nurses."
    if not user.covers(ward):
        return f"{user.username} does not cover {ward} (covers {', '.join(sorted(user.wards))})."
    return None


# --- what is due (the alert manager's decisions; pure) -----------------------------------
@dataclass(frozen=True, slots=True)
class Due:
    action: str  # "escalate", "unsilence", "auto_resolve", or "close" (drop from the work list)
    level: int = 0  # escalate: the level reached
    role: str | None = None  # escalate: the role notified


def escalation_step(priority: str, level: int, policy: AlertManagerSettings
                    ) -> tuple[float, str] | None:
    """(minutes after the raise, role) of the step after ``level``; ``None``: no more."""
    minutes: Sequence[float] = policy.escalation_minutes.get(priority, [])
    nxt = level + 1
    if level >= len(minutes) or nxt >= len(policy.chain):
        return None
    return minutes[level], policy.chain[nxt]


def due(row: AlertRow, now: datetime, policy: AlertManagerSettings) -> Due | None:
    """What the manager has to do about the alert in ``row`` at ``now``, if anything.

    - an ended alert: ``close`` (it needs nothing more);
    - its condition has been clear for ``auto_resolve_after_seconds``: ``auto_resolve``;
    - a silence that has run out: ``unsilence`` (escalation is paused while silenced);
    - raised / escalated and unacknowledged past the next step of its priority's
      escalation: ``escalate`` to the next level and role.
    """
    status = row.status
    if status is None or status in ENDED:
        return Due("close")
    cleared = row.cleared_ts
    if cleared is not None and now - cleared >= timedelta(
            seconds=policy.auto_resolve_after_seconds):
        return Due("auto_resolve")
    if status == SILENCED:
        until = row.silenced_until
        if until is None or now >= until:
            return Due("unsilence")
        return None
    if status in (RAISED, ESCALATED):
        level = row.level
        step = escalation_step(row.priority, level, policy)
        detected = row.detected_ts
        if step and detected is not None and now >= detected + timedelta(minutes=step[0]):
            return Due("escalate", level + 1, step[1])
    return None


# --- moving an alert (Cassandra) -----------------------------------------------------------
def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


def _now_ms_precision(now: datetime | None) -> datetime:
    at = now or datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


class Lifecycle:
    """Moves alerts through :data:`TRANSITIONS` on Cassandra. Thread-safe (the driver's
    session is); one per process is enough."""

    def __init__(self, session: Session, policy: AlertManagerSettings | None = None,
                 store: AlertStore | None = None) -> None:
        self.session = session
        self.policy = policy or AlertManagerSettings()
        self.store = store or session_store(AlertStore, session)

    def get(self, alert_id: str) -> AlertRow | None:
        return self.store.get_serial(alert_id)

    def history(self, alert_id: str) -> list[alert_history.Step]:
        return alert_history.for_alert(self.session, alert_id)

    # -- the people's actions --
    def acknowledge(self, alert_id: str, user: str, via: str, comment: str | None = None,
                    *, now: datetime | None = None) -> AckResult:
        """``user`` acknowledges through ``via``. One lightweight transaction decides: of
        concurrent acknowledgements (or an acknowledgement racing an escalation) exactly
        one is applied, and the others are told "Already acknowledged by <user> at
        hh:mm:ss". ``comment``, if any, goes into the history step and the audit."""
        if not user:
            raise ValueError("who acts is required")
        _check_channel(via)
        at = _now_ms_precision(now)
        row = self.get(alert_id)
        reason = refusal_reason("acknowledge", row)
        if reason is not None:
            return _refused(alert_id, reason, row)
        if not self.store.acknowledge_if_open(alert_id, user, at):
            return refusal(alert_id, self.get(alert_id))
        done = self._after_move(alert_id, "acknowledge", row, ACKNOWLEDGED, user, via,
                                comment, at, None)
        return AckResult(True, f"Acknowledged by {user} at {clock_text(at)}", alert_id,
                         ACKNOWLEDGED, user, at, done.event, done.problems)

    def silence(self, alert_id: str, user: str, via: str, minutes: Any, reason: Any,
                *, now: datetime | None = None) -> AckResult:
        """Silence for ``minutes`` (at most ``silence_max_minutes``) with a ``reason``;
        ``ValueError`` for bad input (nothing changed)."""
        request = parse_silence(minutes, reason, self.policy.silence_max_minutes)
        at = _now_ms_precision(now)
        until = at + timedelta(minutes=request.minutes)
        return self._transition(alert_id, "silence", user, via, request.reason, at,
                                silenced_until=until, silence_reason=request.reason,
                                detail=f"until {until.isoformat(timespec='seconds')}")

    def resolve(self, alert_id: str, user: str, via: str, comment: str | None = None,
                *, now: datetime | None = None) -> AckResult:
        return self._transition(alert_id, "resolve", user, via, comment,
                                _now_ms_precision(now))

    def assign(self, alert_id: str, nurse: Any, user: str, via: str, *,
               expected: object = ANY_HOLDER, demo_mode: bool = False,
               now: datetime | None = None) -> AckResult:
        """``user`` (a charge nurse) gives the active alert to ``nurse`` (a
        ``backend.users.User``; :func:`assignee_problem` must find nothing). Reassigning is
        the same call. ``expected``: the holder the user saw (``None`` = nobody); when
        somebody else changed it meanwhile, nothing happens and the message says who
        holds it now. ``ValueError`` for an unsuitable nurse (nothing changed)."""
        if not user:
            raise ValueError("who acts is required")
        _check_channel(via)
        at = _now_ms_precision(now)
        row = self.get(alert_id)
        reason = refusal_reason("assign", row)
        if reason is not None:
            return _refused(alert_id, reason, row)
        problem = assignee_problem(nurse, row.ward, demo_mode=demo_mode)
        if problem is not None:
            raise ValueError(problem)
        holder = row.assigned_to
        seen = holder if expected is ANY_HOLDER else expected
        if seen != holder:
            return _refused(alert_id, _holder_text(row), row)
        if nurse.username == holder:
            return _refused(alert_id, f"Already assigned to {holder}.", row)
        if not self.store.assign_if(alert_id, holder=holder, to=nurse.username, by=user,
                                    at=at):
            now_row = self.get(alert_id)
            return _refused(alert_id, refusal_reason("assign", now_row)
                            or _holder_text(now_row), now_row)
        detail = f"to {nurse.username}" + (f" (was {holder})" if holder else "")
        result = self._after_move(alert_id, "assign", row, str(row.status), user, via, None,
                                  at, detail)
        return AckResult(True, f"Assigned to {nurse.username} by {user} at {clock_text(at)}",
                         alert_id, row.status, user, at, result.event, result.problems)

    # -- the system's (the alert manager) --
    def escalate(self, alert_id: str, level: int, role: str, *,
                 now: datetime | None = None) -> AckResult:
        return self._transition(alert_id, "escalate", SYSTEM_ACTOR, SYSTEM, None,
                                _now_ms_precision(now), level=level,
                                detail=f"level {level}: notified {role}")

    def unsilence(self, alert_id: str, *, now: datetime | None = None) -> AckResult:
        return self._transition(alert_id, "unsilence", SYSTEM_ACTOR, SYSTEM, None,
                                _now_ms_precision(now), detail="silence ended")

    def auto_resolve(self, alert_id: str, *, now: datetime | None = None) -> AckResult:
        return self._transition(
            alert_id, "auto_resolve", SYSTEM_ACTOR, SYSTEM, None, _now_ms_precision(now),
            detail=f"condition clear for {self.policy.auto_resolve_after_seconds:g} s")

    def _transition(self, alert_id: str, action: str, actor: str, via: str,
                    comment: str | None, at: datetime, *, level: int | None = None,
                    silenced_until: datetime | None = None, silence_reason: str | None = None,
                    detail: str | None = None) -> AckResult:
        if not actor:
            raise ValueError("who acts is required")
        _check_channel(via)
        if TRANSITIONS[action].by_system_only and actor != SYSTEM_ACTOR:
            raise ValueError(f"{action} is done by the alert manager only")
        row = self.get(alert_id)
        reason = refusal_reason(action, row)
        if reason is None and action == "escalate" and level != row.level + 1:
            reason = f"Already escalated to level {row.level}"
        if reason is not None:
            return _refused(alert_id, reason, row)
        source = str(row.status)
        target = target_status(action, row)
        current_level = row.escalation_level
        new_level = level if level is not None else current_level
        keep_silence = target == SILENCED
        if not self.store.move_if(
                alert_id, source=source, level=current_level, target=target, actor=actor,
                at=at, new_level=new_level,
                silenced_until=silenced_until if keep_silence else None,
                silence_reason=silence_reason if keep_silence else None,
                resolved_ts=at if target in ENDED else None):
            # Somebody else moved it first: say what it is now and who did it.
            now_row = self.get(alert_id)
            reason = refusal_reason(action, now_row) or "The alarm changed meanwhile: try again."
            return _refused(alert_id, reason, now_row)

        done = self._after_move(alert_id, action, row, target, actor, via, comment, at,
                                detail)
        verb = _VERB[action]
        message = (f"Silenced by {actor} until {clock_text(silenced_until)}" if action == "silence"
                   else f"{verb.capitalize()} by {actor} at {clock_text(at)}")
        return AckResult(True, message, alert_id, target, actor, at, done.event, done.problems)

    def _after_move(self, alert_id: str, action: str, row: AlertRow, target: str,
                    actor: str, via: str, comment: str | None, at: datetime,
                    detail: str | None) -> AckResult:
        """What follows every applied move: the indexes, one history step, one audit
        event, and the lifecycle message (``event``) for the caller to publish. Failures
        here are logged and listed in ``problems``: the move itself stands."""
        source = row.status
        problems: list[str] = []
        alert = None
        try:
            alert = self.get(alert_id)
            self.store.write_indexes(alert)
        except Exception as exc:
            log.exception("alert %s %s, but refreshing its indexes failed", alert_id, action)
            problems.append(f"indexes: {exc!r}")
        problem = self.store.history(alert_history.Step(
            alert_id, at, action, source, target, actor, via, comment, detail))
        if problem:
            problems.append(problem)
        patient = row.patient_id
        text = "; ".join(x for x in (
            f"patient {patient}" if patient else "",
            f"{row.priority} {row.rule}",
            f"{source} -> {target}", detail or "",
            f"comment: {comment.strip()[:alert_history.MAX_COMMENT]}" if comment else "",
        ) if x)
        try:
            audit.record(self.session, actor, TRANSITIONS[action].audit_action, "alert",
                         alert_id, text, via, now=at)
        except Exception as exc:
            log.exception("alert %s %s, but the audit write failed", alert_id, action)
            problems.append(f"audit: {exc!r}")
        event = None
        if action != "assign":
            # an assignment changes no status, and the wire format has no holder: screens
            # other than the inbox have nothing to redraw
            event = AlertLifecycle(alert_id=alert_id, status=target, by=actor, at=_ms(at),
                                   via=via, patient_id=patient, ward=row.ward, bed=row.bed)
        return AckResult(True, "", alert_id, target, actor, at, event, tuple(problems))


def _holder_text(row: AlertRow | None) -> str:
    holder = row.assigned_to if row is not None else None
    if row is None or not holder:
        return "The assignment changed meanwhile: nobody holds this alarm now. Try again."
    return (f"Meanwhile assigned to {holder} by {row.assigned_by or '?'} at "
            f"{clock_text(row.assigned_ts)}. Try again if it should change.")


def _refused(alert_id: str, reason: str, row: AlertRow | None) -> AckResult:
    if row is None:
        return refusal(alert_id, None)
    return AckResult(False, reason, alert_id, row.status, row.status_by, row.status_ts)


def _check_channel(via: str) -> None:
    if via not in CHANNELS:
        raise ValueError(f"unknown channel {via!r} (one of {', '.join(CHANNELS)})")

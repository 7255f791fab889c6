"""The audit log: who did what, when, through which channel. Append-only.

Events are only ever appended; there is deliberately no update or delete function. Each
event is written, in one logged batch, to the tables the Admin page queries
(``backend.storage.audit``):

- ``audit_by_day``          every event, by UTC day, newest first
- ``audit_by_actor_day``    by user and day
- ``audit_by_patient_day``  events whose target is a patient, by patient and day

``detail`` is free text for context (request path, reason); it must not contain patient
names or clinical values - identifiers only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from backend.storage.audit import AuditEvent, AuditStore, as_date, event_id_at
from backend.storage.cassandra import Session
from backend.storage.statements import store

__all__ = ["AuditEvent", "record", "search"]

# Actions written by the platform. Other modules may add their own dotted names.
LOGIN_SUCCESS = "login.success"
LOGIN_FAILURE = "login.failure"
LOGIN_LOCKED = "login.locked"
LOGOUT = "logout"
SESSION_EXPIRED = "session.expired"
ACCESS_DENIED = "access.denied"
USER_CREATED = "user.created"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_PASSWORD_SET = "user.password_set"
DEMO_USERS_RESET = "user.demo_reset"
PATIENT_VIEWED = "patient.viewed"
# the patient page: notes, FHIR download, ECG strip
NOTE_ADDED = "note.added"
PATIENT_EXPORTED = "patient.exported"  # a FHIR Bundle of the patient's readings downloaded
WAVEFORM_VIEWED = "waveform.viewed"

ACTIONS = (
    LOGIN_SUCCESS, LOGIN_FAILURE, LOGIN_LOCKED, LOGOUT, SESSION_EXPIRED, ACCESS_DENIED,
    USER_CREATED, USER_DISABLED, USER_ENABLED, USER_PASSWORD_SET, DEMO_USERS_RESET,
    PATIENT_VIEWED, NOTE_ADDED, PATIENT_EXPORTED, WAVEFORM_VIEWED,
)

# Alert lifecycle (backend/alerting/lifecycle.py, which writes every one of them).
ALERT_ACKNOWLEDGED = "alert.acknowledged"
ALERT_SILENCED = "alert.silenced"
ALERT_UNSILENCED = "alert.unsilenced"
ALERT_RESOLVED = "alert.resolved"
ALERT_AUTO_RESOLVED = "alert.auto_resolved"
ALERT_ESCALATED = "alert.escalated"
ALERT_ASSIGNED = "alert.assigned"  # a charge nurse gave the alert to a nurse
ACTIONS = (
    *ACTIONS, ALERT_ACKNOWLEDGED, ALERT_SILENCED, ALERT_UNSILENCED, ALERT_RESOLVED,
    ALERT_AUTO_RESOLVED, ALERT_ESCALATED, ALERT_ASSIGNED,
)

# Users' e-mail address and wards (alert e-mail to the people on duty)
USER_CONTACT_SET = "user.contact_set"
ACTIONS = (*ACTIONS, USER_CONTACT_SET)

# Security and privacy
USER_UNLOCKED = "user.unlocked"  # an administrator lifted a sign-in lock
PATIENT_ERASED = "patient.erased"  # `icu patient erase`: target is the keyed pseudonym
RESEARCH_EXPORTED = "patient.research_export"  # a pseudonymised export was written
ACTIONS = (*ACTIONS, USER_UNLOCKED, PATIENT_ERASED, RESEARCH_EXPORTED)

PATIENT = "patient"  # target_type whose events are also indexed by patient

MAX_DETAIL = 2000
MAX_DAYS = 366


def record(
    session: Session,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    detail: str = "",
    via: str = "web",
    *,
    now: datetime | None = None,
) -> uuid.UUID:
    """Append one event; returns its id (a time UUID). ``actor`` is a username, or
    ``"-"`` when nobody is signed in (a failed login records the name that was tried)."""
    if not actor or not action:
        raise ValueError("actor and action are required")
    ts = now or datetime.now(UTC)
    event = AuditEvent(event_id_at(ts), ts, actor, action, target_type, target_id,
                       (detail or "")[:MAX_DETAIL], via)
    store(AuditStore, session).append(
        event, patient_id=target_id if target_type == PATIENT and target_id else None)
    return event.event_id


def _days_newest_first(day_from: date, day_to: date) -> Iterator[date]:
    if day_to < day_from:
        day_from, day_to = day_to, day_from
    if (day_to - day_from).days >= MAX_DAYS:
        raise ValueError(f"search at most {MAX_DAYS} days at a time")
    d = day_to
    while d >= day_from:
        yield d
        d -= timedelta(days=1)


def search(
    session: Session,
    day_from: date,
    day_to: date,
    actor: str | None = None,
    action: str | None = None,
    patient_id: str | None = None,
    *,
    limit: int = 1000,
    tz: str | None = None,
) -> list[AuditEvent]:
    """Events of days ``day_from``..``day_to`` (inclusive), newest first, at most
    ``limit``. Filters combine with AND; the most selective table is read.

    Days are UTC days, or with ``tz`` (an IANA zone, the hospital's) local calendar days:
    then the UTC day partitions overlapping them are read and events outside the local
    days dropped (a local day is 23, 24 or 25 hours)."""
    day_from, day_to = sorted((as_date(day_from), as_date(day_to)))
    since = until = None
    if tz is not None:
        from backend import localtime

        since, until = localtime.day_bounds(day_from, tz)[0], localtime.day_bounds(day_to, tz)[1]
        day_from, day_to = since.date(), (until - timedelta(milliseconds=1)).date()
    out: list[AuditEvent] = []
    tables = store(AuditStore, session)
    for day in _days_newest_first(day_from, day_to):
        if patient_id:
            events = tables.of_patient(patient_id, day)
        elif actor:
            events = tables.of_actor(actor, day)
        else:
            events = tables.of_day(day)
        for e in events:
            if since is not None and not since <= e.ts < until:  # type: ignore[operator]
                continue
            if actor and e.actor != actor:
                continue
            if action and e.action != action:
                continue
            out.append(e)
            if len(out) >= limit:
                return out
    return out

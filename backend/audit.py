"""The audit log: who did what, when, through which channel. Append-only.

This module only ever INSERTs; there is deliberately no update or delete function. Each
event is written, in one logged batch, to the tables the Admin page queries:

- ``audit_by_day``          every event, by UTC day, newest first
- ``audit_by_actor_day``    by user and day
- ``audit_by_patient_day``  events whose target is a patient, by patient and day

``detail`` is free text for context (request path, reason); it must not contain patient
names or clinical values - identifiers only.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType, PreparedStatement
from cassandra.util import Date, datetime_from_uuid1, uuid_from_time

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

# Alert lifecycle (backend/alerting/lifecycle.py); "alert.acknowledged" is written by
# backend.storage.alerts.AlertStore.acknowledge.
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


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event_id: uuid.UUID
    ts: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    detail: str
    via: str


_INSERT_DAY = (
    "INSERT INTO audit_by_day (day, event_id, actor, action, target_type, target_id, detail,"
    " via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ACTOR = (
    "INSERT INTO audit_by_actor_day (actor, day, event_id, action, target_type, target_id,"
    " detail, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PATIENT = (
    "INSERT INTO audit_by_patient_day (patient_id, day, event_id, actor, action, target_type,"
    " detail, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# No LIMIT: rows are paged lazily (fetch_size) and the scan stops once enough matched,
# so an ``action`` filter never misses events behind a LIMIT.
_SELECT_DAY = "SELECT * FROM audit_by_day WHERE day = ?"
_SELECT_ACTOR = "SELECT * FROM audit_by_actor_day WHERE actor = ? AND day = ?"
_SELECT_PATIENT = "SELECT * FROM audit_by_patient_day WHERE patient_id = ? AND day = ?"
_FETCH_SIZE = 500

_prepared: weakref.WeakKeyDictionary[Session, dict[str, PreparedStatement]] = (
    weakref.WeakKeyDictionary()
)


def _prep(session: Session, cql: str) -> PreparedStatement:
    cache = _prepared.setdefault(session, {})
    stmt = cache.get(cql)
    if stmt is None:
        stmt = cache[cql] = session.prepare(cql)
        stmt.fetch_size = _FETCH_SIZE
    return stmt


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
    event_id = uuid_from_time(ts)
    day = ts.astimezone(UTC).date()
    detail = (detail or "")[:MAX_DETAIL]
    batch = BatchStatement(batch_type=BatchType.LOGGED)
    batch.add(_prep(session, _INSERT_DAY),
              (day, event_id, actor, action, target_type, target_id, detail, via))
    batch.add(_prep(session, _INSERT_ACTOR),
              (actor, day, event_id, action, target_type, target_id, detail, via))
    if target_type == PATIENT and target_id:
        batch.add(_prep(session, _INSERT_PATIENT),
                  (target_id, day, event_id, actor, action, target_type, detail, via))
    session.execute(batch)
    return event_id


def _days_newest_first(day_from: date, day_to: date) -> Iterator[date]:
    if day_to < day_from:
        day_from, day_to = day_to, day_from
    if (day_to - day_from).days >= MAX_DAYS:
        raise ValueError(f"search at most {MAX_DAYS} days at a time")
    d = day_to
    while d >= day_from:
        yield d
        d -= timedelta(days=1)


def _event(row: dict, **fixed: str | None) -> AuditEvent:
    data = {**row, **fixed}
    return AuditEvent(
        event_id=data["event_id"],
        ts=datetime_from_uuid1(data["event_id"]).replace(tzinfo=UTC),
        actor=data["actor"],
        action=data["action"],
        target_type=data.get("target_type"),
        target_id=data.get("target_id"),
        detail=data.get("detail") or "",
        via=data.get("via") or "",
    )


def _as_date(d: date | Date) -> date:
    return d.date() if isinstance(d, Date) else d


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
    day_from, day_to = sorted((_as_date(day_from), _as_date(day_to)))
    since = until = None
    if tz is not None:
        from backend import localtime

        since, until = localtime.day_bounds(day_from, tz)[0], localtime.day_bounds(day_to, tz)[1]
        day_from, day_to = since.date(), (until - timedelta(milliseconds=1)).date()
    out: list[AuditEvent] = []
    for day in _days_newest_first(day_from, day_to):
        if patient_id:
            rows = session.execute(_prep(session, _SELECT_PATIENT), (patient_id, day))
            events = (_event(r, target_id=patient_id) for r in rows)
        elif actor:
            rows = session.execute(_prep(session, _SELECT_ACTOR), (actor, day))
            events = (_event(r) for r in rows)
        else:
            rows = session.execute(_prep(session, _SELECT_DAY), (day,))
            events = (_event(r) for r in rows)
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

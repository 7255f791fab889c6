"""The audit tables: ``audit_by_day`` (every event), ``audit_by_actor_day`` and
``audit_by_patient_day`` (events whose target is a patient). Append-only: there is
deliberately no update or delete here (erasure rewrites its own rows, see
``backend.storage.erasure``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType
from cassandra.util import Date, datetime_from_uuid1, uuid_from_time

from backend.storage.statements import prepared

# No LIMIT on reads: rows are paged lazily and a search stops once enough matched, so
# a filter never misses events behind a LIMIT.
_FETCH_SIZE = 500


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


def event_id_at(ts: datetime) -> uuid.UUID:
    """A time UUID for an event at ``ts`` (the tables order by it, newest first)."""
    return uuid_from_time(ts)


def as_date(d: date | Date) -> date:
    """A ``date`` column value as a ``datetime.date``."""
    return d.date() if isinstance(d, Date) else d


class AuditStore:
    """One per session: ``backend.storage.statements.store(AuditStore, session)``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        p = prepared
        self._day_insert = p(session,
            "INSERT INTO audit_by_day (day, event_id, actor, action, target_type, target_id,"
            " detail, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        self._actor_insert = p(session,
            "INSERT INTO audit_by_actor_day (actor, day, event_id, action, target_type,"
            " target_id, detail, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        self._patient_insert = p(session,
            "INSERT INTO audit_by_patient_day (patient_id, day, event_id, actor, action,"
            " target_type, detail, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        self._day = p(session, "SELECT * FROM audit_by_day WHERE day = ?",
                      fetch_size=_FETCH_SIZE)
        self._actor = p(session, "SELECT * FROM audit_by_actor_day WHERE actor = ? AND day = ?",
                        fetch_size=_FETCH_SIZE)
        self._patient = p(session,
                          "SELECT * FROM audit_by_patient_day WHERE patient_id = ? AND day = ?",
                          fetch_size=_FETCH_SIZE)

    def append(self, e: AuditEvent, *, patient_id: str | None = None) -> None:
        """One logged batch into every table the event belongs in (the patient's too
        when ``patient_id`` is given)."""
        day = e.ts.astimezone(UTC).date()
        batch = BatchStatement(batch_type=BatchType.LOGGED)
        batch.add(self._day_insert, (day, e.event_id, e.actor, e.action, e.target_type,
                                     e.target_id, e.detail, e.via))
        batch.add(self._actor_insert, (e.actor, day, e.event_id, e.action, e.target_type,
                                       e.target_id, e.detail, e.via))
        if patient_id:
            batch.add(self._patient_insert, (patient_id, day, e.event_id, e.actor, e.action,
                                             e.target_type, e.detail, e.via))
        self.session.execute(batch)

    def of_day(self, day: date) -> Iterator[AuditEvent]:
        return (_event(r) for r in self.session.execute(self._day, (day,)))

    def of_actor(self, actor: str, day: date) -> Iterator[AuditEvent]:
        return (_event(r) for r in self.session.execute(self._actor, (actor, day)))

    def of_patient(self, patient_id: str, day: date) -> Iterator[AuditEvent]:
        rows = self.session.execute(self._patient, (patient_id, day))
        return (_event(r, target_id=patient_id) for r in rows)


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

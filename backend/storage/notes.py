"""``notes_by_patient``: clinical notes, newest first per patient (never updated)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.cluster import Session
from cassandra.util import datetime_from_uuid1, uuid_from_time

from backend.storage.statements import prepared


@dataclass(frozen=True, slots=True)
class Note:
    note_id: uuid.UUID
    patient_id: str
    ts: datetime
    author: str
    author_role: str
    body: str

    @property
    def ts_ms(self) -> int:
        return round(self.ts.timestamp() * 1000)


class NoteStore:
    """One per session: ``backend.storage.statements.store(NoteStore, session)``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._insert = prepared(session, "INSERT INTO notes_by_patient (patient_id, note_id,"
                                " author, author_role, body) VALUES (?, ?, ?, ?, ?)")
        self._select = prepared(session, "SELECT note_id, author, author_role, body"
                                " FROM notes_by_patient WHERE patient_id = ? LIMIT ?")

    def add(self, patient_id: str, author: str, author_role: str, body: str,
            at: datetime) -> Note:
        note_id = uuid_from_time(at)
        self.session.execute(self._insert, (patient_id, note_id, author, author_role, body))
        return Note(note_id, patient_id, datetime_from_uuid1(note_id).replace(tzinfo=UTC),
                    author, author_role, body)

    def for_patient(self, patient_id: str, limit: int = 500) -> list[Note]:
        """The patient's notes, newest first."""
        rows = self.session.execute(self._select, (patient_id, limit))
        return [Note(r["note_id"], patient_id,
                     datetime_from_uuid1(r["note_id"]).replace(tzinfo=UTC), r["author"],
                     r["author_role"] or "", r["body"]) for r in rows]

"""Clinical notes on a patient's timeline: written by physicians, never edited, audited.

A note is plain text. It is stored exactly as typed (after trimming) and the web app
renders it as text, never as HTML or Markdown, so nothing typed into a note can inject
markup or script into another clinician's screen. A note is only for a patient the
census knows (admitted now or before), under a clean identifier
(``backend.identifiers``): a note can never create a patient.
"""

from __future__ import annotations

from datetime import UTC, datetime

from backend import audit
from backend.identifiers import identifier_problem
from backend.storage.cassandra import Session
from backend.storage.notes import Note, NoteStore
from backend.storage.statements import store

__all__ = ["MAX_NOTE_CHARS", "NOTE_ADDED", "Note", "NoteError", "add_note", "clean_body",
           "notes_for"]

MAX_NOTE_CHARS = 4000
NOTE_ADDED = audit.NOTE_ADDED


class NoteError(ValueError):
    """A note that cannot be stored; the message is for the screen."""


def clean_body(text: str | None) -> str:
    """The note as it will be stored, or ``NoteError`` saying what is wrong."""
    if text is not None and not isinstance(text, str):
        raise NoteError("A note is text.")
    body = (text or "").replace("\r\n", "\n").strip()
    if not body:
        raise NoteError("Write the note first: it is empty.")
    if len(body) > MAX_NOTE_CHARS:
        raise NoteError(f"A note holds at most {MAX_NOTE_CHARS} characters "
                        f"(this one has {len(body)}).")
    if any(ord(c) < 32 and c not in "\n\t" for c in body):
        raise NoteError("The note contains control characters; please retype it.")
    return body


def add_note(session: Session, patient_id: str, author: str, author_role: str,
             text: str | None, *, now: datetime | None = None, via: str = "web") -> Note:
    """Store a note and audit it (the audit detail names the note, not its text)."""
    body = clean_body(text)
    if not patient_id or not author:
        raise NoteError("A note needs a patient and an author.")
    problem = identifier_problem(patient_id, "Patient id")
    if problem:
        raise NoteError(problem + ".")
    from backend.storage import census

    if census.get(session, patient_id) is None:
        raise NoteError(f"No patient {patient_id} in the census: a note needs a known "
                        "patient.")
    ts = (now or datetime.now(UTC)).astimezone(UTC)
    note = store(NoteStore, session).add(patient_id, author, author_role, body, ts)
    audit.record(session, author, NOTE_ADDED, audit.PATIENT, patient_id,
                 f"note {note.note_id}", via, now=ts)
    return note


def notes_for(session: Session, patient_id: str, limit: int = 500) -> list[Note]:
    """The patient's notes, newest first."""
    return store(NoteStore, session).for_patient(patient_id, limit)

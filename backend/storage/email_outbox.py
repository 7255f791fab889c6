"""The alert e-mail tables: ``email_outbox`` (each message and its delivery state),
``email_outbox_pending`` (what is still to send) and ``alert_ack_links`` (which signed
acknowledgement link was followed, by whom). The delivery protocol built on them is
``backend.alerting.email_outbox``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.cluster import Session

from backend.storage.statements import prepared

SHARD = 0  # one pending list: a hospital's alert e-mail fits one partition


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    msg_id: str
    alert_id: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    created_ts: datetime | None
    status: str  # pending, sending, sent
    attempts: int
    next_attempt_ts: datetime | None
    claimed_by: str | None
    claimed_until: datetime | None
    sent_ts: datetime | None
    last_error: str | None


def _message(r: dict) -> OutboxMessage:
    return OutboxMessage(
        msg_id=r["msg_id"], alert_id=r.get("alert_id") or "",
        recipients=tuple(r.get("recipients") or ()), subject=r.get("subject") or "",
        body=r.get("body") or "", created_ts=_aware(r.get("created_ts")),
        status=r.get("status") or "", attempts=r.get("attempts") or 0,
        next_attempt_ts=_aware(r.get("next_attempt_ts")), claimed_by=r.get("claimed_by"),
        claimed_until=_aware(r.get("claimed_until")), sent_ts=_aware(r.get("sent_ts")),
        last_error=r.get("last_error"))


class EmailOutboxStore:
    """One per session: ``backend.storage.statements.store(EmailOutboxStore, session)``.
    Each conditional write returns whether it was applied."""

    def __init__(self, session: Session) -> None:
        self.session = session
        p = prepared
        self._insert = p(session,
            "INSERT INTO email_outbox (msg_id, alert_id, recipients, subject, body, created_ts,"
            " status, attempts) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0) IF NOT EXISTS")
        self._pend = p(session, "INSERT INTO email_outbox_pending (shard, msg_id) VALUES (?, ?)")
        self._unpend = p(session,
                         "DELETE FROM email_outbox_pending WHERE shard = ? AND msg_id = ?")
        self._pending = p(session, "SELECT msg_id FROM email_outbox_pending WHERE shard = ?")
        self._get = p(session, "SELECT * FROM email_outbox WHERE msg_id = ?")
        self._claim = p(session,
            "UPDATE email_outbox SET status = 'sending', claimed_by = ?, claimed_until = ?"
            " WHERE msg_id = ? IF status = ? AND claimed_until = ?")
        self._sent = p(session,
            "UPDATE email_outbox SET status = 'sent', sent_ts = ?, claimed_until = null"
            " WHERE msg_id = ? IF claimed_by = ?")
        self._failed = p(session,
            "UPDATE email_outbox SET status = 'pending', attempts = ?, next_attempt_ts = ?,"
            " last_error = ?, claimed_until = null WHERE msg_id = ? IF claimed_by = ?")

    def mark_pending(self, msg_id: str) -> None:
        self.session.execute(self._pend, (SHARD, msg_id))

    def unmark_pending(self, msg_id: str) -> None:
        self.session.execute(self._unpend, (SHARD, msg_id))

    def insert(self, msg_id: str, alert_id: str, recipients: list[str], subject: str,
               body: str, now: datetime) -> bool:
        row = self.session.execute(self._insert, (
            msg_id, alert_id, list(recipients), subject, body, now)).one()
        return bool(row["[applied]"])

    def get(self, msg_id: str) -> OutboxMessage | None:
        row = self.session.execute(self._get, (msg_id,)).one()
        return _message(row) if row else None

    def pending_ids(self) -> list[str]:
        return [r["msg_id"] for r in self.session.execute(self._pending, (SHARD,))]

    def claim(self, m: OutboxMessage, owner: str, until: datetime) -> bool:
        """``owner`` sends ``m`` until ``until``, if nobody claimed it since it was read."""
        row = self.session.execute(self._claim, (owner, until, m.msg_id, m.status,
                                                 m.claimed_until)).one()
        return bool(row["[applied]"])

    def sent(self, msg_id: str, owner: str, at: datetime) -> bool:
        return bool(self.session.execute(self._sent, (at, msg_id, owner)).one()["[applied]"])

    def failed(self, msg_id: str, owner: str, attempts: int, next_attempt: datetime,
               error: str) -> bool:
        row = self.session.execute(self._failed, (attempts, next_attempt, error, msg_id,
                                                  owner)).one()
        return bool(row["[applied]"])


@dataclass(frozen=True, slots=True)
class LinkUse:
    first: bool  # this call used the link
    used_by: str | None
    used_ts: datetime | None


class AckLinkStore:
    """``alert_ack_links``: each acknowledgement link works once."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._use = prepared(session, "INSERT INTO alert_ack_links (link_id, alert_id, used_by,"
                             " used_ts) VALUES (?, ?, ?, ?) IF NOT EXISTS")
        self._get = prepared(session,
                             "SELECT used_by, used_ts FROM alert_ack_links WHERE link_id = ?")

    def use(self, link_id: str, alert_id: str, user: str, now: datetime) -> LinkUse:
        """Record that ``user`` follows the link; only the first use counts."""
        row = self.session.execute(self._use, (link_id, alert_id, user, now)).one()
        if row["[applied]"]:
            return LinkUse(True, user, now)
        return LinkUse(False, row.get("used_by"), _aware(row.get("used_ts")))

    def used(self, link_id: str) -> LinkUse | None:
        """Who followed the link and when (``None``: nobody yet)."""
        row = self.session.execute(self._get, (link_id,)).one()
        if row is None:
            return None
        return LinkUse(False, row.get("used_by"), _aware(row.get("used_ts")))

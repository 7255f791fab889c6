"""Alert e-mail: what a message says, the signed acknowledgement link, and a durable
outbox in Cassandra that delivers every message exactly once.

Delivery protocol (``email_outbox`` + ``email_outbox_pending``):

1. ``enqueue``: ``INSERT ... IF NOT EXISTS`` under an idempotency key (``msg_id``, e.g.
   ``<alert>:L1`` for the level-1 escalation of an alert): enqueueing twice (a replayed
   Kafka message, a restarted manager) stores one message.
2. ``deliver_due``: for each pending message whose retry time has come, *claim* it with a
   lightweight transaction conditional on the state just read (status, claim), so two
   senders never both send it; send it over SMTP; then mark it ``sent`` (LWT on the
   claim) and drop it from the pending list. A failed send schedules the next attempt
   with exponential backoff (``email_retry_base_seconds * 2**(attempts-1)``, capped) and
   keeps the message: nothing is lost while SMTP is down.
3. A claim that was never marked sent (its sender died) is retried after
   ``email_claim_seconds``. The only window for a duplicate is a crash between the SMTP
   server accepting a message and the ``sent`` write; the message carries its key as
   ``Message-ID`` so receiving systems can drop such a duplicate.

Content: ward, bed, alert, values, time - no patient name unless
``alert_manager.email_include_name`` - and a signed, expiring, single-use link to
acknowledge (``AckLinks``; single use is enforced when the link is followed, in
``alert_ack_links``).

Each recipient gets a message of their own (key ``<alert>:L<level>:<address digest>``)
whose link is bound to them: a user's link acknowledges only when that user is signed
in; a distribution list's link only for a user of the notified role who covers the
alert's ward. A forwarded link is refused to anybody else. Links are HMAC-SHA-256
signed (``itsdangerous`` with SHA-256 instead of its SHA-1 default).
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from backend import localtime
from backend.settings import AlertManagerSettings, Settings, SmtpSettings
from backend.storage.alerts import AlertRow
from backend.storage.cassandra import Session
from backend.storage.email_outbox import (
    AckLinkStore,
    EmailOutboxStore,
    LinkUse,
    OutboxMessage,
)
from backend.storage.statements import store

log = logging.getLogger(__name__)

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
ACK_PATH = "/alerts/ack/"
_SALT = "icu-alert-ack-link"


# --- the acknowledgement link ---------------------------------------------------------------
class LinkInvalid(ValueError):
    """Not a link this system signed (or altered)."""


class LinkExpired(ValueError):
    """A genuine link, past its maximum age."""


@dataclass(frozen=True, slots=True)
class LinkClaim:
    alert_id: str
    link_id: str
    user: str | None = None  # bound to this user
    role: str | None = None  # or: to the users of this role covering ``ward``
    ward: str | None = None

    def allows(self, username: str, role: str, covers: Callable[[str | None], bool]) -> bool:
        """May the signed-in ``username`` (of ``role``; ``covers(ward)`` says whether they
        cover a ward) use this link? A link bound to nobody is refused."""
        if self.user is not None:
            return username == self.user
        if self.role is not None:
            return role == self.role and covers(self.ward)
        return False


class AckLinks:
    """Signed, expiring acknowledgement tokens (``itsdangerous``, HMAC-SHA-256), each
    bound to its recipient. ``clock`` (seconds since the epoch) replaces the time used
    for signing and checking, in tests."""

    def __init__(self, secret: str, max_age_seconds: float,
                 clock: Callable[[], float] | None = None) -> None:
        if not secret:
            raise ValueError("a secret key is required to sign acknowledgement links")
        self.max_age = max_age_seconds
        signer = TimestampSigner
        if clock is not None:
            signer = type("ClockSigner", (TimestampSigner,),
                          {"get_timestamp": lambda self: int(clock())})
        self._s = URLSafeTimedSerializer(
            secret, salt=_SALT, signer=signer,
            signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"})

    def make(self, alert_id: str, *, user: str | None = None, role: str | None = None,
             ward: str | None = None) -> str:
        """A token for ``alert_id`` bound to ``user``, or to ``role`` on ``ward``."""
        if (user is None) == (role is None):
            raise ValueError("a link is bound to a user or to a role (exactly one)")
        data: dict[str, str | None] = {"a": alert_id, "l": uuid.uuid4().hex}
        if user is not None:
            data["u"] = user
        else:
            data["r"], data["w"] = role, ward
        return self._s.dumps(data)

    def check(self, token: str) -> LinkClaim:
        try:
            data = self._s.loads(token, max_age=self.max_age)
        except SignatureExpired:
            raise LinkExpired("this acknowledgement link has expired") from None
        except BadSignature:
            raise LinkInvalid("this is not a valid acknowledgement link") from None
        if not isinstance(data, dict) or not isinstance(data.get("a"), str) \
                or not isinstance(data.get("l"), str):
            raise LinkInvalid("this is not a valid acknowledgement link")
        user, role, ward = data.get("u"), data.get("r"), data.get("w")
        if not (isinstance(user, str) or isinstance(role, str)):
            raise LinkInvalid("this is not a valid acknowledgement link")
        return LinkClaim(data["a"], data["l"], user if isinstance(user, str) else None,
                         role if isinstance(role, str) else None,
                         ward if isinstance(ward, str) else None)


def message_key(alert_id: str, level: int, address: str) -> str:
    """The idempotency key of the e-mail to ``address`` about ``alert_id`` at ``level``
    (the address as a short digest: the key is also the Message-ID)."""
    digest = hashlib.sha256(address.strip().casefold().encode()).hexdigest()[:12]
    return f"{alert_id}:L{level}:{digest}"


def links_from_settings(settings: Settings, clock: Callable[[], float] | None = None
                        ) -> AckLinks:
    return AckLinks(settings.secret_key.get_secret_value(),
                    settings.alert_manager.ack_link_max_age_minutes * 60, clock)


def ack_url(settings: Settings, token: str) -> str:
    return settings.web.public_url.rstrip("/") + ACK_PATH + token


def use_link(session: Session, claim: LinkClaim, user: str, now: datetime) -> LinkUse:
    """Record that ``user`` follows the link; only the first use counts."""
    return store(AckLinkStore, session).use(claim.link_id, claim.alert_id, user, now)


def link_used(session: Session, claim: LinkClaim) -> LinkUse | None:
    """Who followed the link before, and when (``None``: nobody)."""
    return store(AckLinkStore, session).used(claim.link_id)


# --- the message ------------------------------------------------------------------------------
ROLE_TEXT = {"nurse": "nurses", "charge_nurse": "charge nurse", "physician": "physician"}


def _fmt_value(v: Any) -> str:
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


SUBJECT_MAX = 110  # characters of the alarm text in a subject, so phones show the bed


def subject_line(alert: AlertRow, level: int, role: str) -> str:
    """What happened, in words, and where: ``[HIGH] SpO2 86 % below 90 % - ICU-A bed 2``;
    an escalation says so first (``[HIGH] Escalated to charge nurse: ...``)."""
    priority = alert.priority.upper()
    text = " ".join((alert.message or alert.rule or "alarm").split())
    if len(text) > SUBJECT_MAX:
        text = text[:SUBJECT_MAX - 1].rstrip() + "…"
    head = f"Escalated to {ROLE_TEXT.get(role, role)}: " if level else ""
    return f"[{priority}] {head}{text} - {alert.ward} bed {alert.bed}"


def compose(alert: AlertRow, level: int, role: str, link: str,
            policy: AlertManagerSettings, patient_name: str | None = None,
            tz: str | None = None) -> tuple[str, str]:
    """(subject, plain-text body) of the e-mail about ``alert`` at escalation ``level``.
    Minimal patient information: ward, bed, alert, values, time (the hospital's local
    time ``tz``, with the zone); the name only when ``policy.email_include_name``."""
    priority = alert.priority.upper()
    ward, bed = alert.ward, alert.bed
    detected = alert.detected_ts
    when = localtime.stamp(detected, tz) if detected is not None else "unknown"
    values = ", ".join(f"{k} {_fmt_value(v)}" for k, v in sorted(alert.values.items()))
    escalated = f" - escalated to the {ROLE_TEXT.get(role, role)}" if level else ""
    lines = [
        f"{priority} priority alarm{escalated}",
        "",
        f"Ward:   {ward}",
        f"Bed:    {bed}",
    ]
    if policy.email_include_name and patient_name:
        lines.append(f"Patient: {patient_name}")
    lines += [
        f"Alert:  {alert.message}",
        f"Values: {values or '-'}",
        f"Raised: {when}",
        "",
        "Acknowledge (sign-in required, single use, expires in "
        f"{policy.ack_link_max_age_minutes:g} minutes):",
        link,
        "",
        "Sent to the " + ROLE_TEXT.get(role, role) + " by the ICU alert manager "
        f"(alarm rule {alert.rule}).",
    ]
    return subject_line(alert, level, role), "\n".join(lines) + "\n"


def backoff_seconds(attempts: int, policy: AlertManagerSettings) -> float:
    """Wait before attempt ``attempts + 1`` after ``attempts`` failures."""
    if attempts <= 0:
        return 0.0
    return min(policy.email_retry_base_seconds * 2 ** (attempts - 1),
               policy.email_retry_max_seconds)


# --- sending ----------------------------------------------------------------------------------
def smtp_send(cfg: SmtpSettings, message: EmailMessage) -> None:
    """One message over SMTP as configured (implicit TLS, STARTTLS, auth)."""
    context = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_seconds,
                                                context=context)
    else:
        client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_seconds)
    with client:
        if cfg.starttls and not cfg.tls:
            client.starttls(context=context)
        if cfg.username and cfg.password:
            client.login(cfg.username, cfg.password.get_secret_value())
        client.send_message(message)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    waiting: int = 0


class Outbox:
    def __init__(self, session: Session, settings: Settings,
                 sender: Callable[[EmailMessage], None] | None = None,
                 owner: str | None = None) -> None:
        self.session = session
        self.settings = settings
        self.policy = settings.alert_manager
        self.sender = sender or (lambda m: smtp_send(settings.smtp, m))
        self.owner = owner or uuid.uuid4().hex
        self.store = store(EmailOutboxStore, session)

    def enqueue(self, msg_id: str, alert_id: str, recipients: list[str], subject: str,
                body: str, now: datetime) -> bool:
        """Store a message to send; ``False`` when one with this key exists already.
        The pending-list row is written first: a crash in between leaves a pending
        entry without a message (dropped on delivery), never a message nobody sends."""
        if not recipients:
            log.warning("alert %s: no e-mail recipients configured for %s", alert_id, msg_id)
            return False
        self.store.mark_pending(msg_id)
        return self.store.insert(msg_id, alert_id, list(recipients), subject, body, now)

    def get(self, msg_id: str) -> OutboxMessage | None:
        return self.store.get(msg_id)

    def pending_ids(self) -> list[str]:
        return self.store.pending_ids()

    def _message(self, row: OutboxMessage, now: datetime) -> EmailMessage:
        m = EmailMessage()
        m["From"] = self.settings.smtp.sender
        m["To"] = ", ".join(row.recipients)
        m["Subject"] = row.subject
        m["Date"] = format_datetime(localtime.to_local(now, self.settings.timezone))
        # The idempotency key as Message-ID: a receiver can drop a duplicate.
        m["Message-ID"] = make_msgid(idstring=row.msg_id.replace(":", "."),
                                     domain="icu-monitor")
        m["X-ICU-Message-Key"] = row.msg_id
        m.set_content(row.body)
        return m

    def deliver_due(self, now: datetime) -> DeliveryStats:
        stats = DeliveryStats()
        for msg_id in self.pending_ids():
            row = self.get(msg_id)
            if row is None:  # see enqueue: a pending entry whose insert never happened
                self.store.unmark_pending(msg_id)
                continue
            if row.status == SENT:
                self.store.unmark_pending(msg_id)
                continue
            nxt, claimed = row.next_attempt_ts, row.claimed_until
            if (nxt and nxt > now) or (row.status == SENDING and claimed and claimed > now):
                stats.waiting += 1
                continue
            until = now + timedelta(seconds=self.policy.email_claim_seconds)
            if not self.store.claim(row, self.owner, until):
                stats.waiting += 1  # another sender has it
                continue
            try:
                self.sender(self._message(row, now))
            except Exception as exc:
                attempts = row.attempts + 1
                wait = backoff_seconds(attempts, self.policy)
                log.warning("e-mail %s: attempt %d failed (%s); next in %.0f s", msg_id,
                            attempts, type(exc).__name__, wait)
                self.store.failed(msg_id, self.owner, attempts, now + timedelta(seconds=wait),
                                  repr(exc)[:500])
                stats.failed += 1
                continue
            self.store.sent(msg_id, self.owner, now)
            self.store.unmark_pending(msg_id)
            stats.sent += 1
            log.info("e-mail %s sent", msg_id)
        return stats


"""The alert manager: owns the lifecycle moves nobody presses a button for.

It follows the alerts topic (``on_alert_event``; the Kafka loop is
``streaming/alert_manager.py``) and, every tick (``tick``), looks at each open alert:

- escalation per priority (``alert_manager.escalation_minutes``): still unacknowledged N
  minutes after the raise -> the next role of ``chain`` (nurse -> charge nurse ->
  physician) is notified in the app (an ``escalated`` lifecycle event every screen shows)
  and by e-mail;
- a silence that has run out ends (back to raised / escalated);
- an alert whose condition has been clear for ``auto_resolve_after_seconds`` is resolved;
- ended alerts leave its work list.

Then it delivers the e-mail outbox. Time comes from ``clock`` (tests inject one).

Who is e-mailed when a role is notified: the enabled users of that role with an address
covering the alert's ward, plus the role's distribution list (``recipients.py``; the
users are cached for ``alert_manager.user_cache_seconds``). Each gets their own message
with an acknowledgement link bound to them (``email_outbox``).

Restart safety: the work list (``alert_manager_open``), every move (a lightweight
transaction: a repeated escalation is refused) and every e-mail (an idempotency key) are
in Cassandra; the Kafka loop commits offsets only after ``on_alert_event`` returned. An
escalation's e-mail is enqueued under its key right after the move, and again (a no-op
when it exists) once per escalated alert after a restart, so a crash between the two
loses nothing and sends nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from backend.alerting import email_outbox as mail
from backend.alerting.lifecycle import ESCALATED, Lifecycle, due
from backend.alerting.recipients import UserDirectory
from backend.messages import AlertEvent, AlertLifecycle
from backend.settings import Settings
from backend.storage import census
from backend.storage.alert_manager import OpenAlertStore
from backend.storage.alerts import AlertRow
from backend.storage.cassandra import Session
from backend.storage.statements import store
from backend.users import list_users

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def msg_key(alert_id: str, level: int, address: str) -> str:
    """The idempotency key of the e-mail to ``address`` about ``alert_id`` at escalation
    ``level``."""
    return mail.message_key(alert_id, level, address)


class AlertManager:
    def __init__(self, session: Session, settings: Settings,
                 publish: Callable[[AlertLifecycle], None], *,
                 clock: Callable[[], datetime] = _utcnow,
                 outbox: mail.Outbox | None = None,
                 links: mail.AckLinks | None = None,
                 directory: UserDirectory | None = None) -> None:
        self.session = session
        self.settings = settings
        self.policy = settings.alert_manager
        self.publish = publish
        self.clock = clock
        self.lifecycle = Lifecycle(session, self.policy)
        self.outbox = outbox or mail.Outbox(session, settings)
        self.links = links or mail.links_from_settings(settings)
        if directory is None:
            directory = UserDirectory(lambda: list_users(session),
                                      self.policy.user_cache_seconds)
        self.directory = directory
        self.open_list = store(OpenAlertStore, session)
        self._mailed: set[tuple[str, int]] = set()  # escalation e-mails known enqueued

    # -- input: the alerts topic --
    def on_alert_event(self, e: AlertEvent) -> None:
        """Durably take on a raised alert (idempotent: replays change nothing)."""
        if e.event != "raised":
            return  # a cleared condition: the tick decides (auto-resolve / close)
        now = self.clock()
        self.open_list.open(e.alert_id, datetime.fromtimestamp(e.detected_ts / 1000, UTC))
        if e.priority.value in self.policy.email_on_raise:
            alert = self.lifecycle.get(e.alert_id)
            if alert is not None:
                self._enqueue(alert, 0, self.policy.chain[0], now)

    # -- the periodic work --
    def open_alerts(self) -> list[str]:
        return self.open_list.alert_ids()

    def tick(self) -> mail.DeliveryStats:
        now = self.clock()
        for alert_id in self.open_alerts():
            try:
                self._handle(alert_id, now)
            except Exception:
                log.exception("alert %s: lifecycle step failed; retried next tick", alert_id)
        return self.outbox.deliver_due(now)

    def _handle(self, alert_id: str, now: datetime) -> None:
        row = self.lifecycle.get(alert_id)
        if row is None:
            return  # not readable yet (the sink writes before it publishes): next tick
        level = row.level
        if row.status == ESCALATED and (alert_id, level) not in self._mailed:
            # after a restart: the e-mail of the level reached exists (no-op) or is added
            self._enqueue(row, level, self._role(level), now)
        step = due(row, now, self.policy)
        if step is None:
            return
        if step.action == "close":
            self.open_list.close(alert_id)
            return
        if step.action == "escalate":
            result = self.lifecycle.escalate(alert_id, step.level, step.role or "", now=now)
            if result.ok:
                self._enqueue(self.lifecycle.get(alert_id) or row, step.level,
                              step.role or "", now)
        elif step.action == "unsilence":
            result = self.lifecycle.unsilence(alert_id, now=now)
        else:
            result = self.lifecycle.auto_resolve(alert_id, now=now)
        if result.ok and result.event is not None:
            log.info("alert %s: %s", alert_id, result.message)
            try:
                self.publish(result.event)
            except Exception:
                # Stored; screens read it from Cassandra at their next fill.
                log.exception("alert %s: publishing the lifecycle event failed", alert_id)

    def _role(self, level: int) -> str:
        chain = self.policy.chain
        return chain[min(level, len(chain) - 1)]

    def _enqueue(self, alert: AlertRow, level: int, role: str, now: datetime) -> None:
        ward = alert.ward
        recipients = self.directory.bound(role, ward, self.policy.recipients.get(role, []),
                                          demo_mode=self.settings.demo_mode)
        if not recipients:
            log.warning("alert %s: no e-mail recipients for %s", alert.alert_id, role)
        name = None
        if self.policy.email_include_name:
            admission = census.get(self.session, alert.patient_id)
            name = admission.label if admission else None
        for rcpt in recipients:
            key = msg_key(alert.alert_id, level, rcpt.address)
            if self.outbox.get(key) is not None:
                continue  # enqueued before (a replay): its link stays the one sent
            token = (self.links.make(alert.alert_id, user=rcpt.username)
                     if rcpt.username else
                     self.links.make(alert.alert_id, role=role, ward=ward))
            subject, body = mail.compose(alert, level, role, mail.ack_url(self.settings, token),
                                         self.policy, name,
                                         self.settings.timezone)
            self.outbox.enqueue(key, alert.alert_id, [rcpt.address], subject, body, now)
        self._mailed.add((alert.alert_id, level))

"""Alerts as the pipeline raises and clears them.

The ``alerts`` row is the single source of truth for an alert's status; the per-ward and
per-patient tables are indexes copied from it. Raising uses a lightweight transaction
(``IF NOT EXISTS``) so a replayed micro-batch can never reset an alert somebody has
already acknowledged.

Acknowledging is a lightweight transaction too (``IF status IN (...)``): when two people
press Acknowledge at the same moment, exactly one of them wins and the other is told
who did and when.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cassandra import ConsistencyLevel
from cassandra.cluster import Session

from backend import audit, localtime
from backend.messages import AlertEvent, AlertLifecycle
from backend.storage import alert_history
from backend.storage.timestamps import to_datetime as _dt
from backend.storage.timestamps import to_ms as _ms

log = logging.getLogger(__name__)

RAISED = "raised"
CLEARED = "cleared"
ACKNOWLEDGED = "acknowledged"
ACTIVE = (RAISED, ACKNOWLEDGED, "escalated", "silenced")
# Statuses an acknowledgement acts on: somebody still has to respond ("silenced" only
# paused the sound).
ACKNOWLEDGEABLE = (RAISED, "escalated", "silenced")
ALERT_ACKNOWLEDGED = audit.ALERT_ACKNOWLEDGED
AUDIT_TARGET = "alert"


def clock_text(value: datetime | None) -> str:
    """``hh:mm:ss ZONE`` in the hospital's local time (``backend.localtime``)."""
    return localtime.clock(value)


@dataclass(frozen=True, slots=True)
class AckResult:
    """The outcome of an acknowledgement.

    ``ok``: this call changed the alert. Otherwise ``message`` says why not, and
    ``status`` / ``by`` / ``at`` are what the alert shows instead (``None``: unknown
    alert). ``event`` is the lifecycle message to publish (only when ``ok``).
    ``problems`` lists follow-up writes that failed after the acknowledgement itself
    was stored (it stands; they are logged as errors)."""

    ok: bool
    message: str
    alert_id: str = ""
    status: str | None = None
    by: str | None = None
    at: datetime | None = None
    event: AlertLifecycle | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def refusal(alert_id: str, row: dict | None) -> AckResult:
    """What the loser of an acknowledgement (or a late click) is told."""
    if row is None or row.get("status") is None:
        return AckResult(False, "This alarm is not known (yet): please try again in a moment.",
                         alert_id)
    status, by, at = row["status"], row.get("status_by"), row.get("status_ts")
    if status == CLEARED:
        message = f"This alarm already ended at {clock_text(row.get('cleared_ts') or at)}"
    elif by:
        message = f"Already {status} by {by} at {clock_text(at)}"
    else:
        message = f"Already {status} at {clock_text(at)}"
    return AckResult(False, message, alert_id, status, by, at)


class AlertStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._insert = session.prepare(
            "INSERT INTO alerts (alert_id, patient_id, ward, bed, rule, priority, message, vals,"
            " onset_ts, reading_ts, detected_ts, status, status_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._get = session.prepare("SELECT * FROM alerts WHERE alert_id = ?")
        self._active = session.prepare(
            "INSERT INTO active_alerts_by_ward (ward, alert_id, patient_id, bed, rule, priority,"
            " message, detected_ts, status, assigned_to, assigned_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._unactive = session.prepare(
            "DELETE FROM active_alerts_by_ward WHERE ward = ? AND alert_id = ?"
        )
        self._by_day = session.prepare(
            "INSERT INTO alerts_by_ward_day (ward, day, detected_ts, alert_id, patient_id, bed,"
            " rule, priority, message, status, assigned_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)"
        )
        self._by_patient = session.prepare(
            "INSERT INTO alerts_by_patient (patient_id, detected_ts, alert_id, rule, priority,"
            " message, onset_ts, cleared_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._clear = session.prepare(
            "UPDATE alerts SET status = 'cleared', cleared_ts = ?, status_ts = ?"
            " WHERE alert_id = ? IF status = 'raised'"
        )
        self._cleared_ts = session.prepare(
            "UPDATE alerts SET cleared_ts = ? WHERE alert_id = ?"
        )
        self._active_for_ward = session.prepare(
            "SELECT * FROM active_alerts_by_ward WHERE ward = ?"
        )
        self._for_patient = session.prepare(
            "SELECT * FROM alerts_by_patient WHERE patient_id = ? LIMIT ?"
        )
        in_list = ", ".join(f"'{s}'" for s in ACKNOWLEDGEABLE)
        # acknowledged_by/_ts keep who acknowledged after later moves overwrite status_by
        self._ack = session.prepare(
            "UPDATE alerts SET status = 'acknowledged', status_by = ?, status_ts = ?,"
            " acknowledged_by = ?, acknowledged_ts = ?"
            f" WHERE alert_id = ? IF status IN ({in_list})"
        )
        self._get_serial_stmt = None  # prepared on first use (see _get_serial)

    def raise_alert(self, e: AlertEvent) -> bool:
        """Store a raised alert; ``False`` when it already existed (a replay)."""
        applied = self.session.execute(self._insert, (
            e.alert_id, e.patient_id, e.ward, e.bed, e.rule, e.priority.value, e.message,
            {k: v for k, v in e.values.items() if v is not None}, _dt(e.onset_ts),
            _dt(e.reading_ts), _dt(e.detected_ts), RAISED, _dt(e.detected_ts),
        )).one()["[applied]"]
        alert = self.get(e.alert_id)
        self._write_indexes(alert)
        if applied:
            self._history(alert_history.Step(e.alert_id, _dt(e.detected_ts), "raise", None,
                                             RAISED, "system", "pipeline",
                                             detail=f"{e.priority.value} {e.rule}"))
        return bool(applied)

    def _history(self, step: alert_history.Step) -> str | None:
        """Append a history step; a failure is logged and returned, never raised (the
        transition it describes is already stored)."""
        try:
            alert_history.append(self.session, step)
        except Exception as exc:
            log.exception("alert %s: writing its history step %s failed", step.alert_id,
                          step.action)
            return f"history: {exc!r}"
        return None

    def clear_alert(self, e: AlertEvent) -> None:
        """The condition ended. An alert nobody acted on becomes ``cleared``; one that was
        acknowledged keeps its status and only records when its condition ended."""
        row = self.session.execute(
            self._clear, (_dt(e.reading_ts), _dt(e.detected_ts), e.alert_id)
        ).one()
        if not row["[applied]"]:
            self.session.execute(self._cleared_ts, (_dt(e.reading_ts), e.alert_id))
        else:
            self._history(alert_history.Step(e.alert_id, _dt(e.detected_ts), "clear", RAISED,
                                             CLEARED, "system", "pipeline",
                                             detail="condition ended before anyone acted"))
        alert = self.get(e.alert_id)
        if alert is not None:
            self._write_indexes(alert)

    def acknowledge(self, alert_id: str, user: str, via: str, comment: str | None = None,
                    *, now: datetime | None = None) -> AckResult:
        """``user`` acknowledges the alert through channel ``via`` (e.g. "ward_screen").

        One lightweight transaction decides: of concurrent acknowledgements exactly one
        is applied; the others get ``ok=False`` and "Already acknowledged by <user> at
        hh:mm:ss". The winner's call then refreshes the index tables from the alerts row,
        writes the audit entry (``alert.acknowledged``; ``comment``, if any, goes into its
        detail) and returns the lifecycle message to publish in ``event``."""
        if not user or not via:
            raise ValueError("user and via are required")
        at = now or datetime.now(UTC)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # Cassandra keeps ms
        row = self.session.execute(self._ack, (user, at, user, at, alert_id)).one()
        if not row["[applied]"]:
            current = None
            if row.get("status") is not None:
                current = self.session.execute(self._get_serial(), (alert_id,)).one()
            return refusal(alert_id, current)

        problems: list[str] = []
        alert = None
        try:
            alert = self.get(alert_id)
            self._write_indexes(alert)
        except Exception as exc:
            log.exception("alert %s acknowledged, but refreshing its indexes failed", alert_id)
            problems.append(f"indexes: {exc!r}")
        patient = (alert or {}).get("patient_id")
        detail = f"patient {patient}" if patient else ""
        if alert:
            detail += f"; {alert.get('priority')} {alert.get('rule')}"
        if comment:
            detail += f"; comment: {comment.strip()[:500]}"
        try:
            audit.record(self.session, user, ALERT_ACKNOWLEDGED, AUDIT_TARGET, alert_id,
                         detail.strip("; "), via, now=at)
        except Exception as exc:
            log.exception("alert %s acknowledged by %s, but the audit write failed",
                          alert_id, user)
            problems.append(f"audit: {exc!r}")
        problem = self._history(alert_history.Step(
            alert_id, at, "acknowledge", None, ACKNOWLEDGED, user, via, comment))
        if problem:
            problems.append(problem)
        event = AlertLifecycle(
            alert_id=alert_id, status=ACKNOWLEDGED, by=user, at=_ms(at), via=via,
            patient_id=patient, ward=(alert or {}).get("ward"), bed=(alert or {}).get("bed"),
        )
        return AckResult(True, f"Acknowledged by {user} at {clock_text(at)}", alert_id,
                         ACKNOWLEDGED, user, at, event, tuple(problems))

    def _get_serial(self):
        """The alerts row read at SERIAL consistency: it sees every committed transaction
        (the outcome of the one an acknowledgement just lost)."""
        if self._get_serial_stmt is None:
            stmt = self.session.prepare("SELECT * FROM alerts WHERE alert_id = ?")
            stmt.consistency_level = ConsistencyLevel.SERIAL
            self._get_serial_stmt = stmt
        return self._get_serial_stmt

    def _write_indexes(self, a: dict) -> None:
        detected = a["detected_ts"]
        day = detected.date()
        s = self.session
        s.execute(self._by_day, (a["ward"], day, detected, a["alert_id"], a["patient_id"],
                                 a["bed"], a["rule"], a["priority"], a["message"], a["status"],
                                 a.get("assigned_to")))
        s.execute(self._by_patient, (a["patient_id"], detected, a["alert_id"], a["rule"],
                                     a["priority"], a["message"], a["onset_ts"], a["cleared_ts"]))
        if a["status"] in ACTIVE:
            s.execute(self._active, (a["ward"], a["alert_id"], a["patient_id"], a["bed"],
                                     a["rule"], a["priority"], a["message"], detected,
                                     a["status"], a.get("assigned_to"), a.get("assigned_ts")))
        else:
            s.execute(self._unactive, (a["ward"], a["alert_id"]))

    def get(self, alert_id: str) -> dict | None:
        return self.session.execute(self._get, (alert_id,)).one()

    def active_for_ward(self, ward: str) -> list[dict]:
        """The ward's active alerts. Those somebody acted on also carry ``status_by`` and
        ``status_ts`` from the alerts row (the index has no room for them), so a screen
        filled from here says who acknowledged."""
        rows = [dict(r) for r in self.session.execute(self._active_for_ward, (ward,))]
        for row in rows:
            if row.get("status") not in (None, RAISED):
                alert = self.get(row["alert_id"])
                if alert is not None:
                    row.update(status=alert["status"], status_by=alert.get("status_by"),
                               status_ts=alert.get("status_ts"))
        return rows

    def for_patient(self, patient_id: str, limit: int = 500) -> list[dict]:
        return list(self.session.execute(self._for_patient, (patient_id, limit)))

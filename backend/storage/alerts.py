"""Alerts as the pipeline raises and clears them.

The ``alerts`` row is the single source of truth for an alert's status; the per-ward and
per-patient tables are indexes copied from it. Raising uses a lightweight transaction
(``IF NOT EXISTS``) so a replayed micro-batch can never reset an alert somebody has
already acknowledged.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cassandra.cluster import Session

from backend.messages import AlertEvent

RAISED = "raised"
CLEARED = "cleared"


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


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
            " message, detected_ts, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._unactive = session.prepare(
            "DELETE FROM active_alerts_by_ward WHERE ward = ? AND alert_id = ?"
        )
        self._by_day = session.prepare(
            "INSERT INTO alerts_by_ward_day (ward, day, detected_ts, alert_id, patient_id, bed,"
            " rule, priority, message, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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

    def raise_alert(self, e: AlertEvent) -> bool:
        """Store a raised alert; ``False`` when it already existed (a replay)."""
        applied = self.session.execute(self._insert, (
            e.alert_id, e.patient_id, e.ward, e.bed, e.rule, e.priority.value, e.message,
            {k: v for k, v in e.values.items() if v is not None}, _dt(e.onset_ts),
            _dt(e.reading_ts), _dt(e.detected_ts), RAISED, _dt(e.detected_ts),
        )).one()["[applied]"]
        alert = self.get(e.alert_id)
        self._write_indexes(alert)
        return bool(applied)

    def clear_alert(self, e: AlertEvent) -> None:
        """The condition ended. An alert nobody acted on becomes ``cleared``; one that was
        acknowledged keeps its status and only records when its condition ended."""
        row = self.session.execute(
            self._clear, (_dt(e.reading_ts), _dt(e.detected_ts), e.alert_id)
        ).one()
        if not row["[applied]"]:
            self.session.execute(self._cleared_ts, (_dt(e.reading_ts), e.alert_id))
        alert = self.get(e.alert_id)
        if alert is not None:
            self._write_indexes(alert)

    def _write_indexes(self, a: dict) -> None:
        detected = a["detected_ts"]
        day = detected.date()
        s = self.session
        s.execute(self._by_day, (a["ward"], day, detected, a["alert_id"], a["patient_id"],
                                 a["bed"], a["rule"], a["priority"], a["message"], a["status"]))
        s.execute(self._by_patient, (a["patient_id"], detected, a["alert_id"], a["rule"],
                                     a["priority"], a["message"], a["onset_ts"], a["cleared_ts"]))
        if a["status"] in (RAISED, "acknowledged", "escalated", "silenced"):
            s.execute(self._active, (a["ward"], a["alert_id"], a["patient_id"], a["bed"],
                                     a["rule"], a["priority"], a["message"], detected,
                                     a["status"]))
        else:
            s.execute(self._unactive, (a["ward"], a["alert_id"]))

    def get(self, alert_id: str) -> dict | None:
        return self.session.execute(self._get, (alert_id,)).one()

    def active_for_ward(self, ward: str) -> list[dict]:
        return list(self.session.execute(self._active_for_ward, (ward,)))

    def for_patient(self, patient_id: str, limit: int = 500) -> list[dict]:
        return list(self.session.execute(self._for_patient, (patient_id, limit)))

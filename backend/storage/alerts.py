"""Alerts as the pipeline raises and clears them.

The ``alerts`` row is the single source of truth for an alert's status; the per-ward and
per-patient tables are indexes copied from it. Raising uses a lightweight transaction
(``IF NOT EXISTS``) so a replayed micro-batch can never reset an alert somebody has
already acknowledged.

Every later move (acknowledge, silence, resolve, escalate, assign) is a lightweight
transaction too, made here and decided in ``backend.alerting.lifecycle``: when two
people press Acknowledge at the same moment, exactly one of them wins and the other is
told who did and when.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args

from backend import localtime
from backend.alerting.status import ACTIVE, NEEDS_ACTION, AlertStatus
from backend.messages import AlertEvent, AlertLifecycle
from backend.storage import alert_history
from backend.storage.statements import SERIAL, prepared
from backend.storage.timestamps import aware_or_none as _aware
from backend.storage.timestamps import to_datetime as _dt

log = logging.getLogger(__name__)

RAISED = AlertStatus.RAISED
CLEARED = AlertStatus.CLEARED


def _in_list(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{s}'" for s in sorted(statuses))


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


def refusal(alert_id: str, row: AlertRow | None) -> AckResult:
    """What the loser of an acknowledgement (or a late click) is told."""
    if row is None or row.status is None:
        return AckResult(False, "This alarm is not known (yet): please try again in a moment.",
                         alert_id)
    status, by, at = row.status, row.status_by, row.status_ts
    if status == CLEARED:
        message = f"This alarm already ended at {clock_text(row.cleared_ts or at)}"
    elif by:
        message = f"Already {status} by {by} at {clock_text(at)}"
    else:
        message = f"Already {status} at {clock_text(at)}"
    return AckResult(False, message, alert_id, status, by, at)


def parse_status(value: str | None) -> AlertStatus | str | None:
    """A stored status as the enum; a value this version does not know (a newer writer's)
    stays the text it is, so it is shown rather than lost; ``None``: no status stored."""
    if value is None:
        return None
    try:
        return AlertStatus(value)
    except ValueError:
        return value


@dataclass(frozen=True, slots=True)
class AlertRow:
    """The ``alerts`` row: the alert as raised and every move made on it since. Times are
    aware UTC datetimes; ``values`` is read-only.

    ``status`` is ``None`` for a row that holds only a ``cleared_ts`` (its condition ended
    before its raise was stored): the alert is "not known (yet)". The text columns of the
    raise read ``""`` there. ``escalation_level`` stays ``None`` until the first
    escalation: the lifecycle's transactions are conditional on the stored value, and
    ``escalation_level = 0`` does not match a null column (use :attr:`level` to count).

    The lifecycle's read at SERIAL consistency (:meth:`AlertStore.get_serial`) gives the
    same type: the consistency is a property of the read, not of the row."""

    alert_id: str
    patient_id: str = ""
    ward: str = ""
    bed: str = ""
    rule: str = ""
    priority: str = ""
    message: str = ""
    status: AlertStatus | str | None = None
    values: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    onset_ts: datetime | None = None
    reading_ts: datetime | None = None
    detected_ts: datetime | None = None
    cleared_ts: datetime | None = None
    status_by: str | None = None
    status_ts: datetime | None = None
    escalation_level: int | None = None
    silenced_until: datetime | None = None
    silence_reason: str | None = None
    resolved_ts: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_ts: datetime | None = None
    assigned_to: str | None = None
    assigned_by: str | None = None
    assigned_ts: datetime | None = None

    @property
    def level(self) -> int:
        """The escalation level reached (0: never escalated)."""
        return self.escalation_level or 0

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> AlertRow:
        """From a driver row of ``SELECT * FROM alerts`` (naive datetimes are UTC;
        columns added by later migrations may be absent from old rows' readers)."""
        g = r.get
        return cls(
            alert_id=r["alert_id"], patient_id=g("patient_id") or "", ward=g("ward") or "",
            bed=str(g("bed") or ""), rule=g("rule") or "", priority=g("priority") or "",
            message=g("message") or "", status=parse_status(g("status")),
            values=MappingProxyType({str(k): float(v) for k, v in (g("vals") or {}).items()}),
            onset_ts=_aware(g("onset_ts")), reading_ts=_aware(g("reading_ts")),
            detected_ts=_aware(g("detected_ts")), cleared_ts=_aware(g("cleared_ts")),
            status_by=g("status_by"), status_ts=_aware(g("status_ts")),
            escalation_level=g("escalation_level"),
            silenced_until=_aware(g("silenced_until")), silence_reason=g("silence_reason"),
            resolved_ts=_aware(g("resolved_ts")), acknowledged_by=g("acknowledged_by"),
            acknowledged_ts=_aware(g("acknowledged_ts")), assigned_to=g("assigned_to"),
            assigned_by=g("assigned_by"), assigned_ts=_aware(g("assigned_ts")),
        )


@dataclass(frozen=True, slots=True)
class WardDayAlert:
    """One row of ``alerts_by_ward_day``: an alert of ``ward`` detected on UTC ``day``
    with the status and holder copied from its alerts row at its last move."""

    ward: str
    day: date
    detected_ts: datetime
    alert_id: str
    patient_id: str = ""
    bed: str = ""
    rule: str = ""
    priority: str = ""
    message: str = ""
    status: AlertStatus | str | None = None
    assigned_to: str | None = None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> WardDayAlert:
        g = r.get
        return cls(
            ward=r["ward"], day=_date(r["day"]), detected_ts=_aware(r["detected_ts"]),
            alert_id=r["alert_id"], patient_id=g("patient_id") or "", bed=str(g("bed") or ""),
            rule=g("rule") or "", priority=g("priority") or "", message=g("message") or "",
            status=parse_status(g("status")), assigned_to=g("assigned_to"),
        )


@dataclass(frozen=True, slots=True)
class PatientAlert:
    """One row of ``alerts_by_patient``: an alert of the patient as raised, with when
    its condition ended (the lifecycle is on the alerts row)."""

    patient_id: str
    detected_ts: datetime
    alert_id: str
    rule: str = ""
    priority: str = ""
    message: str = ""
    onset_ts: datetime | None = None
    cleared_ts: datetime | None = None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> PatientAlert:
        g = r.get
        return cls(
            patient_id=r["patient_id"], detected_ts=_aware(r["detected_ts"]),
            alert_id=r["alert_id"], rule=g("rule") or "", priority=g("priority") or "",
            message=g("message") or "", onset_ts=_aware(g("onset_ts")),
            cleared_ts=_aware(g("cleared_ts")),
        )


@dataclass(frozen=True, slots=True)
class ActiveAlert:
    """An alert still on its ward's screens (``active_alerts_by_ward``), with who moved
    it last (from the alerts row). Times are aware UTC datetimes."""

    ward: str
    alert_id: str
    patient_id: str
    bed: str
    rule: str
    priority: str
    message: str
    detected_ts: datetime | None
    status: str
    assigned_to: str | None = None
    assigned_ts: datetime | None = None
    status_by: str | None = None
    status_ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class HistoricAlert:
    """An alert of the past, imported whole (the demo's history): it ended long ago,
    acknowledged by ``acknowledged_by`` at ``status_ts`` or cleared by itself."""

    alert_id: str
    patient_id: str
    ward: str
    bed: str
    rule: str
    priority: str
    detected_ts: datetime
    status: AlertStatus
    status_by: str | None
    status_ts: datetime


class AlertStore:
    """The ``alerts`` row and its indexes (``active_alerts_by_ward``,
    ``alerts_by_ward_day``, ``alerts_by_patient``) and each alert's history steps.
    One per session: ``backend.storage.statements.store(AlertStore, session)``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        p = functools.partial(prepared, session)
        self._insert = p(
            "INSERT INTO alerts (alert_id, patient_id, ward, bed, rule, priority, message, vals,"
            " onset_ts, reading_ts, detected_ts, status, status_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"
        )
        self._get = p("SELECT * FROM alerts WHERE alert_id = ?")
        # SERIAL sees every committed transaction (the outcome of one a move just lost)
        self._get_serial = p("SELECT * FROM alerts WHERE alert_id = ?", SERIAL)
        self._active = p(
            "INSERT INTO active_alerts_by_ward (ward, alert_id, patient_id, bed, rule, priority,"
            " message, detected_ts, status, assigned_to, assigned_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._unactive = p("DELETE FROM active_alerts_by_ward WHERE ward = ? AND alert_id = ?")
        self._by_day = p(
            "INSERT INTO alerts_by_ward_day (ward, day, detected_ts, alert_id, patient_id, bed,"
            " rule, priority, message, status, assigned_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " ?, ?)"
        )
        self._by_patient = p(
            "INSERT INTO alerts_by_patient (patient_id, detected_ts, alert_id, rule, priority,"
            " message, onset_ts, cleared_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._clear = p(
            "UPDATE alerts SET status = 'cleared', cleared_ts = ?, status_ts = ?"
            " WHERE alert_id = ? IF status = 'raised'"
        )
        self._cleared_ts = p("UPDATE alerts SET cleared_ts = ? WHERE alert_id = ?")
        self._active_for_ward = p("SELECT * FROM active_alerts_by_ward WHERE ward = ?")
        self._for_patient = p("SELECT * FROM alerts_by_patient WHERE patient_id = ? LIMIT ?")
        self._ward_day = p("SELECT * FROM alerts_by_ward_day WHERE ward = ? AND day = ?"
                           " AND detected_ts >= ?")
        # acknowledged_by/_ts keep who acknowledged after later moves overwrite status_by
        self._ack = p(
            "UPDATE alerts SET status = 'acknowledged', status_by = ?, status_ts = ?,"
            " acknowledged_by = ?, acknowledged_ts = ?"
            f" WHERE alert_id = ? IF status IN ({_in_list(NEEDS_ACTION)})"
        )
        self._move = p(
            "UPDATE alerts SET status = ?, status_by = ?, status_ts = ?, escalation_level = ?,"
            " silenced_until = ?, silence_reason = ?, resolved_ts = ?"
            " WHERE alert_id = ? IF status = ? AND escalation_level = ?"
        )
        self._assign = p(
            "UPDATE alerts SET assigned_to = ?, assigned_by = ?, assigned_ts = ?"
            f" WHERE alert_id = ? IF status IN ({_in_list(ACTIVE)}) AND assigned_to = ?"
        )

    # -- the stream job's writes --
    def raise_alert(self, e: AlertEvent) -> bool:
        """Store a raised alert; ``False`` when it already existed (a replay)."""
        applied = self.session.execute(self._insert, (
            e.alert_id, e.patient_id, e.ward, e.bed, e.rule, e.priority.value, e.message,
            {k: v for k, v in e.values.items() if v is not None}, _dt(e.onset_ts),
            _dt(e.reading_ts), _dt(e.detected_ts), RAISED, _dt(e.detected_ts),
        )).one()["[applied]"]
        alert = self.get(e.alert_id)
        self.write_indexes(alert)
        if applied:
            self.history(alert_history.Step(e.alert_id, _dt(e.detected_ts), "raise", None,
                                            RAISED, "system", "pipeline",
                                            detail=f"{e.priority.value} {e.rule}"))
        return bool(applied)

    def clear_alert(self, e: AlertEvent) -> None:
        """The condition ended. An alert nobody acted on becomes ``cleared``; one that was
        acknowledged keeps its status and only records when its condition ended."""
        row = self.session.execute(
            self._clear, (_dt(e.reading_ts), _dt(e.detected_ts), e.alert_id)
        ).one()
        if not row["[applied]"]:
            self.session.execute(self._cleared_ts, (_dt(e.reading_ts), e.alert_id))
        else:
            self.history(alert_history.Step(e.alert_id, _dt(e.detected_ts), "clear", RAISED,
                                            CLEARED, "system", "pipeline",
                                            detail="condition ended before anyone acted"))
        alert = self.get(e.alert_id)
        if alert is not None:
            self.write_indexes(alert)

    def import_history(self, alerts: Sequence[HistoricAlert]) -> None:
        """Alerts of the past with their ward-day index (concurrent upserts; no history
        steps: nothing happened to them in this system)."""
        rows, index = [], []
        for a in alerts:
            rows.append((a.alert_id, a.patient_id, a.ward, a.bed, a.rule, a.priority,
                         a.detected_ts, a.detected_ts, a.status.value, a.status_by,
                         a.status_ts))
            index.append((a.ward, a.detected_ts.date(), a.detected_ts, a.alert_id,
                          a.patient_id, a.bed, a.rule, a.priority, a.status.value))
        insert = prepared(self.session,
                          "INSERT INTO alerts (alert_id, patient_id, ward, bed, rule, priority,"
                          " message, detected_ts, onset_ts, status, status_by, status_ts)"
                          " VALUES (?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?)")
        by_day = prepared(self.session,
                          "INSERT INTO alerts_by_ward_day (ward, day, detected_ts, alert_id,"
                          " patient_id, bed, rule, priority, message, status)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?)")
        for stmt, params in ((insert, rows), (by_day, index)):
            execute_concurrent_with_args(self.session, stmt, params, concurrency=128,
                                         raise_on_first_error=True)

    # -- the lifecycle's moves (decided in backend.alerting.lifecycle) --
    def acknowledge_if_open(self, alert_id: str, user: str, at: datetime) -> bool:
        """One lightweight transaction: acknowledged by ``user`` at ``at`` if it still
        needs somebody's action; ``False`` when another move came first."""
        row = self.session.execute(self._ack, (user, at, user, at, alert_id)).one()
        return bool(row["[applied]"])

    def move_if(self, alert_id: str, *, source: str, level: int | None, target: str,
                actor: str, at: datetime, new_level: int | None,
                silenced_until: datetime | None, silence_reason: str | None,
                resolved_ts: datetime | None) -> bool:
        """Status ``source`` (at escalation ``level``) to ``target``, only if the row is
        still as it was read; ``False`` when somebody moved it first."""
        row = self.session.execute(self._move, (
            target, actor, at, new_level, silenced_until, silence_reason, resolved_ts,
            alert_id, source, level)).one()
        return bool(row["[applied]"])

    def assign_if(self, alert_id: str, *, holder: str | None, to: str, by: str,
                  at: datetime) -> bool:
        """Give an active alert held by ``holder`` (``None``: nobody) to ``to``."""
        row = self.session.execute(self._assign, (to, by, at, alert_id, holder)).one()
        return bool(row["[applied]"])

    def history(self, step: alert_history.Step) -> str | None:
        """Append a history step; a failure is logged and returned, never raised (the
        transition it describes is already stored)."""
        try:
            alert_history.append(self.session, step)
        except Exception as exc:
            log.exception("alert %s: writing its history step %s failed", step.alert_id,
                          step.action)
            return f"history: {exc!r}"
        return None

    def write_indexes(self, a: AlertRow) -> None:
        """Copy the alerts row ``a`` into its indexes."""
        detected = a.detected_ts
        day = detected.date()
        s = self.session
        s.execute(self._by_day, (a.ward, day, detected, a.alert_id, a.patient_id, a.bed,
                                 a.rule, a.priority, a.message, a.status, a.assigned_to))
        s.execute(self._by_patient, (a.patient_id, detected, a.alert_id, a.rule, a.priority,
                                     a.message, a.onset_ts, a.cleared_ts))
        if a.status in ACTIVE:
            s.execute(self._active, (a.ward, a.alert_id, a.patient_id, a.bed, a.rule,
                                     a.priority, a.message, detected, a.status, a.assigned_to,
                                     a.assigned_ts))
        else:
            s.execute(self._unactive, (a.ward, a.alert_id))

    # -- reads --
    def get(self, alert_id: str) -> AlertRow | None:
        row = self.session.execute(self._get, (alert_id,)).one()
        return None if row is None else AlertRow.from_row(row)

    def get_many(self, alert_ids: Sequence[str]) -> list[AlertRow | None]:
        """The alerts rows of ``alert_ids`` (concurrent reads), in that order."""
        results = execute_concurrent(self.session, [(self._get, (a,)) for a in alert_ids],
                                     concurrency=32, raise_on_first_error=True,
                                     results_generator=False)
        rows = [result.one() for _ok, result in results]
        return [None if r is None else AlertRow.from_row(r) for r in rows]

    def get_serial(self, alert_id: str) -> AlertRow | None:
        """The alerts row as every committed transaction left it."""
        row = self.session.execute(self._get_serial, (alert_id,)).one()
        return None if row is None else AlertRow.from_row(row)

    def active_for_ward(self, ward: str) -> list[ActiveAlert]:
        """The ward's active alerts. Those somebody acted on also carry ``status_by`` and
        ``status_ts`` from the alerts row (the index has no room for them), so a screen
        filled from here says who acknowledged."""
        out = []
        for r in self.session.execute(self._active_for_ward, (ward,)):
            status = r.get("status") or RAISED
            by = at = None
            if status != RAISED:
                alert = self.get(r["alert_id"])
                if alert is not None:
                    status = alert.status or status
                    by, at = alert.status_by, alert.status_ts
            out.append(ActiveAlert(
                ward=r["ward"], alert_id=r["alert_id"], patient_id=r.get("patient_id") or "",
                bed=str(r.get("bed") or ""), rule=r.get("rule") or "",
                priority=r.get("priority") or "", message=r.get("message") or "",
                detected_ts=_aware(r.get("detected_ts")), status=status,
                assigned_to=r.get("assigned_to"), assigned_ts=_aware(r.get("assigned_ts")),
                status_by=by, status_ts=_aware(at)))
        return out

    def for_patient(self, patient_id: str, limit: int = 500) -> list[PatientAlert]:
        """The patient's alerts, newest first (at most ``limit``)."""
        return [PatientAlert.from_row(r)
                for r in self.session.execute(self._for_patient, (patient_id, limit))]

    def for_ward_day(self, ward: str, day: date, since: datetime) -> list[WardDayAlert]:
        """The ward's alerts of UTC ``day`` detected at or after ``since``, newest first."""
        return [WardDayAlert.from_row(r)
                for r in self.session.execute(self._ward_day, (ward, day, since))]


def _date(value: Any) -> date:
    """A ``date`` column as the driver gives it (``cassandra.util.Date``) or a date."""
    return value if isinstance(value, date) else value.date()

"""The live state of every bed, in memory: what the ward screens of one web process show.

One ``WardState`` per web process is fed by ``LiveFollower`` (Cassandra at start-up and
after a reconnect, then Kafka) and read by every ward screen once a second, so serving a
screen never queries Cassandra. Writers and readers share one lock; readers get immutable
``BedSnapshot`` copies.

Display rules that keep a nurse from reading old data as current:

* a bed whose last reading is older (by processing time) than its stale timeout is
  *stale*: its snapshot carries no values and no scores at all, only the age. The timeout
  is the alarm engine's (``backend.alerting.rules.stale_timeout_ms``): the settings' floor
  for a monitor sending every second, a few of its own reporting intervals for a source
  that sends once a minute, so such a bed does not flash "NO DATA" between its frames;
* the values beyond a limit or outside the NEWS2 normal band carry their ``ValueFlag``
  (``backend.alerting.rules.value_flag``, with the ward's limits and the patient's SpO2
  scale): the screen marks them with the same thresholds the alarms use;
* a parameter in ``sensors_off`` is *off*, never its last good value;
* a parameter absent from ``carried`` is *missing* ("--").

Versions: every change of a bed (new data, an alarm, a lifecycle step, going stale or
fresh again) gives the bed the next number of one process-wide counter, so a bed's
version only grows and ``ward_version`` tells whether anything in a ward changed.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

from backend.alerting.rules import (
    STALE_GAPS_KEPT,
    ValueFlag,
    reporting_interval_ms,
    stale_timeout_ms,
    value_flag,
)
from backend.alerting.status import ACTIVE, NEEDS_ACTION, AlertStatus
from backend.messages import AlertEvent, Priority, ValidatedReading
from backend.settings import AlertingSettings
from backend.storage.alerts import ActiveAlert
from backend.storage.census import Bed
from backend.vitals import Vital

Clock = Callable[[], float]
"""Seconds since the epoch, like ``time.time``; tests inject their own."""

# Statuses in which an alert is still on the ward screen, and those in which somebody
# still has to act (these show an "Acknowledge" button).
ACTIVE_STATUSES = ACTIVE
PRIORITY_RANK: dict[Priority, int] = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}
_STATUS_RANK = {AlertStatus.RAISED: 0, AlertStatus.ESCALATED: 0, AlertStatus.SILENCED: 1,
                AlertStatus.ACKNOWLEDGED: 2}
TREND_VITALS: tuple[Vital, ...] = (Vital.HR, Vital.SPO2)

ParamKind = Literal["value", "off", "missing", "stale"]


def to_ms(value: Any) -> int | None:
    """Epoch milliseconds from a Cassandra ``datetime`` (naive means UTC), an int (ms)
    or a float (seconds)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, float):
        return int(value * 1000)
    return int(value)


def alarm_priority(value: str) -> Priority:
    """The priority an alarm is shown with: an unknown one as HIGH, so that it is never
    hidden below the alarms the screen understands."""
    try:
        return Priority(value)
    except ValueError:
        return Priority.HIGH


def bed_sort_key(bed: str) -> tuple:
    """Natural order: bed 2 before bed 10, "B2" before "B10"."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in re.split(r"(\d+)", bed) if part
    )


@dataclass(frozen=True, slots=True)
class Alarm:
    alert_id: str
    patient_id: str
    ward: str
    bed: str
    rule: str
    priority: Priority
    message: str
    detected_ts: int
    status: str = AlertStatus.RAISED
    status_by: str | None = None
    status_ts: int | None = None
    # The condition that raised it has ended (only known from live events: an alert
    # somebody acknowledged stays active after its condition ends, as in AlertStore).
    condition_ended: bool = False
    values: Mapping[str, float | None] = field(default_factory=dict, compare=False)

    @classmethod
    def from_event(cls, e: AlertEvent) -> Alarm:
        """A raise from ``alerts.events``: raised, with the values that raised it."""
        return cls(alert_id=e.alert_id, patient_id=e.patient_id, ward=e.ward, bed=e.bed,
                   rule=e.rule, priority=alarm_priority(e.priority), message=e.message,
                   detected_ts=e.detected_ts, status_ts=e.detected_ts,
                   values=MappingProxyType(dict(e.values)))

    @classmethod
    def from_active(cls, row: ActiveAlert) -> Alarm:
        """A row of ``AlertStore.active_for_ward``: the stored status and who set it (the
        index keeps no values, and nothing says whether the condition has ended). A row
        that says nobody moved it carries no status time: its status dates from the raise,
        as a live raise's does."""
        detected = to_ms(row.detected_ts) or 0
        return cls(alert_id=row.alert_id, patient_id=row.patient_id, ward=row.ward,
                   bed=row.bed, rule=row.rule, priority=alarm_priority(row.priority),
                   message=row.message, detected_ts=detected, status=row.status,
                   status_by=row.status_by,
                   status_ts=detected if row.status_ts is None else to_ms(row.status_ts))

    @property
    def needs_action(self) -> bool:
        return self.status in NEEDS_ACTION

    def sort_key(self) -> tuple:
        """Highest priority first; within a priority, unacknowledged first, newest first."""
        return (PRIORITY_RANK[self.priority], _STATUS_RANK.get(self.status, 0),
                -self.detected_ts, self.alert_id)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    ts: int  # device time, ms
    hr: float | None
    spo2: float | None


@dataclass(frozen=True, slots=True)
class ParamState:
    kind: ParamKind
    value: float | None = None


@dataclass(frozen=True, slots=True)
class BedSnapshot:
    """One bed as a screen shows it at ``now``. Stale snapshots carry no values."""

    ward: str
    bed: str
    patient_id: str | None
    label: str
    version: int
    now: float
    last_ts: int | None  # device time of the newest reading, ms
    last_processed_ts: int | None  # processing time of the newest reading, ms
    stale: bool
    age_seconds: float | None  # since last_processed_ts; None if no reading ever
    values: Mapping[Vital, float]
    sensors_off: frozenset[Vital]
    news2: int | None
    news2_band: str | None
    news2_complete: bool
    qsofa: int | None
    trend: tuple[TrendPoint, ...]
    alarms: tuple[Alarm, ...]
    # the abnormal values among ``values``, by the alarm rules (absent: normal)
    flags: Mapping[Vital, ValueFlag] = field(default_factory=dict)

    @property
    def no_data(self) -> bool:
        """No reading was ever received for this bed (an empty or new bed)."""
        return self.last_processed_ts is None

    @property
    def top_alarm(self) -> Alarm | None:
        return self.alarms[0] if self.alarms else None

    def param(self, vital: Vital) -> ParamState:
        if self.stale:
            return ParamState("stale")
        if vital in self.sensors_off:
            return ParamState("off")
        value = self.values.get(vital)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ParamState("missing")
        return ParamState("value", value)


class _Bed:
    """Mutable per-bed record, only touched under the state's lock."""

    __slots__ = ("alarms", "bed", "flags", "gaps", "label", "last_processed_ts", "last_ts", "news2",
                 "news2_band", "news2_complete", "o2_supplemental", "patient_id", "qsofa",
                 "sensors_off", "shown_stale", "spo2_scale", "trend", "values", "version",
                 "ward")

    def __init__(self, ward: str, bed: str, trend_len: int) -> None:
        self.ward = ward
        self.bed = bed
        self.patient_id: str | None = None
        self.label = ""
        self.version = 0
        self.last_ts: int | None = None
        self.last_processed_ts: int | None = None
        self.values: dict[Vital, float] = {}
        self.sensors_off: frozenset[Vital] = frozenset()
        self.news2: int | None = None
        self.news2_band: str | None = None
        self.news2_complete = False
        self.qsofa: int | None = None
        self.trend: deque[TrendPoint] = deque(maxlen=trend_len)
        self.alarms: dict[str, Alarm] = {}
        self.shown_stale: bool | None = None
        # the source's recent gaps between readings (device time, ms): its interval
        self.gaps: deque[int] = deque(maxlen=STALE_GAPS_KEPT)
        self.spo2_scale = 1  # the admission's NEWS2 SpO2 scale (census)
        self.o2_supplemental: bool | None = None  # last charted
        self.flags: tuple[int, Mapping[Vital, ValueFlag]] | None = None  # (version, flags)

    def new_occupant(self, patient_id: str | None) -> None:
        """A different patient is in the bed: nothing of the previous one may show."""
        self.patient_id = patient_id
        self.label = ""
        self.last_ts = None
        self.last_processed_ts = None
        self.values = {}
        self.sensors_off = frozenset()
        self.news2 = self.news2_band = self.qsofa = None
        self.news2_complete = False
        self.trend.clear()
        self.gaps.clear()
        self.spo2_scale = 1
        self.o2_supplemental = None
        self.alarms = {a.alert_id: a for a in self.alarms.values()
                       if a.patient_id == patient_id}


class WardState:
    """Thread-safe latest state of every bed of every ward, with short HR/SpO2 trends and
    the active alarms. All times are epoch seconds from ``clock`` or epoch ms in data."""

    def __init__(
        self,
        *,
        stale_after_seconds: float = 30.0,
        trend_window_seconds: float = 600.0,
        trend_step_seconds: float = 5.0,
        clock: Clock = time.time,
        alerting: AlertingSettings | None = None,
    ) -> None:
        self.stale_after_seconds = stale_after_seconds
        # the stale timeouts and the wards' limits; the floor above wins over its own
        base = alerting or AlertingSettings()
        self.alerting = base.model_copy(update={"stale_after_seconds": stale_after_seconds})
        self.trend_window_ms = int(trend_window_seconds * 1000)
        self.trend_step_ms = max(1, int(trend_step_seconds * 1000))
        self._trend_len = math.ceil(trend_window_seconds / trend_step_seconds) + 1
        self.clock = clock
        self._lock = threading.RLock()
        self._beds: dict[tuple[str, str], _Bed] = {}
        self._alert_beds: dict[str, tuple[str, str]] = {}
        self._ward_versions: dict[str, int] = {}
        self._seq = 0
        self._down: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> WardState:
        kwargs.setdefault("stale_after_seconds", settings.alerting.stale_after_seconds)
        kwargs.setdefault("alerting", settings.alerting)
        return cls(**kwargs)

    # ------------------------------------------------------------------ writes

    def _bed(self, ward: str, bed: str) -> _Bed:
        key = (ward, bed)
        b = self._beds.get(key)
        if b is None:
            b = self._beds[key] = _Bed(ward, bed, self._trend_len)
            self._touch(b)
        return b

    def _touch(self, b: _Bed) -> None:
        self._seq += 1
        b.version = self._seq
        self._ward_versions[b.ward] = self._seq

    def _add_trend(self, b: _Bed, ts: int, values: Mapping[Vital, float],
                   off: frozenset[Vital]) -> None:
        point = TrendPoint(ts, *(None if v in off else values.get(v) for v in TREND_VITALS))
        trend = b.trend
        if trend and ts < trend[-1].ts:
            return
        if trend and ts // self.trend_step_ms == trend[-1].ts // self.trend_step_ms:
            trend[-1] = point  # at most one point per step: keep the newest
        else:
            trend.append(point)
        while trend and trend[0].ts < ts - self.trend_window_ms:
            trend.popleft()

    def apply_reading(self, r: ValidatedReading) -> bool:
        """Take a reading from ``vitals.validated``; ``False`` if it changed nothing
        (an older reading than the one shown, e.g. a replay)."""
        with self._lock:
            return self._apply_reading(self._bed(r.ward, r.bed), r)

    def _apply_reading(self, b: _Bed, r: ValidatedReading) -> bool:
        """The one way a reading reaches a bed, live from Kafka or filled from Cassandra
        (``ReadingStore.latest_for_ward`` gives the same type)."""
        if b.patient_id is not None and r.patient_id != b.patient_id:
            b.new_occupant(r.patient_id)
        b.patient_id = r.patient_id
        processed = max(r.processed_ts, b.last_processed_ts or r.processed_ts)
        if b.last_ts is not None and r.ts < b.last_ts:
            if processed != b.last_processed_ts:
                b.last_processed_ts = processed
                self._touch(b)
                return True
            return False
        values = {Vital(k): float(v) for k, v in r.carried.items() if v is not None}
        off = frozenset(Vital(s) for s in r.sensors_off)
        if (r.ts, processed, values, off, r.news2) == (
                b.last_ts, b.last_processed_ts, b.values, b.sensors_off, b.news2):
            return False  # the reading shown already (a refill, a replay)
        if b.last_ts is not None and r.ts > b.last_ts:
            b.gaps.append(r.ts - b.last_ts)
        b.last_ts = r.ts
        b.last_processed_ts = processed
        if r.o2_supplemental is not None:
            b.o2_supplemental = r.o2_supplemental
        b.values = values
        b.sensors_off = off
        b.news2 = r.news2
        b.news2_band = r.news2_band
        b.news2_complete = r.news2_complete
        b.qsofa = r.qsofa
        self._add_trend(b, r.ts, b.values, b.sensors_off)
        self._touch(b)
        return True

    def apply_alert(self, e: AlertEvent) -> bool:
        """Take a ``raised``/``cleared`` event from ``alerts.events`` (idempotent)."""
        with self._lock:
            b = self._bed(e.ward, e.bed)
            if b.patient_id is None:
                b.patient_id = e.patient_id
            if e.event == AlertStatus.RAISED:
                return self._place_alarm(b, Alarm.from_event(e), refill=False)
            current = b.alarms.get(e.alert_id)
            if current is None:
                return False
            if current.status == AlertStatus.RAISED:
                # Nobody acted on it: it ends with its condition.
                del b.alarms[e.alert_id]
                self._alert_beds.pop(e.alert_id, None)
            elif not current.condition_ended:
                b.alarms[e.alert_id] = replace(current, condition_ended=True)
            else:
                return False
            self._touch(b)
            return True

    def _place_alarm(self, b: _Bed, alarm: Alarm, *, refill: bool) -> bool:
        """The one way an alarm reaches a bed, raised live (``apply_alert``) or refilled
        from Cassandra (``load_ward``); ``False`` if the bed already showed it so.

        An alarm the bed already shows: a live raise is a replay, and the bed keeps
        whatever status the alarm has reached since. A refill brings the stored status
        and keeps what only live events know (the values, whether the condition ended,
        who moved it when the row does not say)."""
        old = b.alarms.get(alarm.alert_id)
        if old is not None:
            if not refill:
                return False
            alarm = replace(alarm, values=old.values, condition_ended=old.condition_ended,
                            status_by=alarm.status_by or old.status_by)
            if alarm == old:
                return False
        b.alarms[alarm.alert_id] = alarm
        self._alert_beds[alarm.alert_id] = (b.ward, b.bed)
        self._touch(b)
        return True

    def apply_lifecycle(self, alert_id: str, status: str, by: str | None, at: Any) -> bool:
        """An alert changed status (acknowledged, escalated, silenced, resolved...).
        Statuses outside ``ACTIVE_STATUSES`` take it off the screen. ``at`` is epoch ms,
        epoch seconds (float) or a datetime."""
        with self._lock:
            where = self._alert_beds.get(alert_id)
            b = self._beds.get(where) if where else None
            if b is None or alert_id not in b.alarms:
                return False
            if status not in ACTIVE_STATUSES:
                del b.alarms[alert_id]
                self._alert_beds.pop(alert_id, None)
            else:
                b.alarms[alert_id] = replace(
                    b.alarms[alert_id], status=status, status_by=by, status_ts=to_ms(at)
                )
            self._touch(b)
            return True

    def load_ward(
        self,
        ward: str,
        *,
        beds: Iterable[Bed] | None = None,
        latest: Iterable[ValidatedReading] | None = None,
        alerts: Iterable[ActiveAlert] | None = None,
    ) -> None:
        """(Re)fill one ward from Cassandra rows: ``beds`` from ``census.beds`` (who lies
        where), ``latest`` from ``ReadingStore.latest_for_ward``, ``alerts`` from
        ``AlertStore.active_for_ward``. ``None`` leaves that part as it is.

        Beds follow the census: a bed that left it is dropped unless it is still sending,
        and a latest row of another patient than the census one (the previous occupant)
        is ignored. The alarms of the ward are replaced by ``alerts``."""
        with self._lock:
            census: dict[str, Bed] | None = None
            if beds is not None:
                census = {row.bed: row for row in beds}
                for key in [k for k in self._beds if k[0] == ward and k[1] not in census]:
                    b = self._beds[key]
                    if self._is_stale(b, self.clock()):
                        for alert_id in b.alarms:
                            self._alert_beds.pop(alert_id, None)
                        del self._beds[key]
                        self._seq += 1
                        self._ward_versions[ward] = self._seq
                for name, row in census.items():
                    b = self._bed(ward, name)
                    patient = row.patient_id
                    label = row.label
                    if b.patient_id is not None and patient != b.patient_id:
                        b.new_occupant(patient)
                        self._touch(b)
                    scale = row.spo2_scale
                    if b.patient_id != patient or b.label != label or b.spo2_scale != scale:
                        b.patient_id, b.label, b.spo2_scale = patient, label, scale
                        self._touch(b)
            for r in latest or ():
                if census and (r.bed not in census
                               or census[r.bed].patient_id != r.patient_id):
                    continue
                self._apply_reading(self._bed(ward, r.bed), r)
            if alerts is not None:
                self._load_alerts(ward, alerts)

    def _load_alerts(self, ward: str, rows: Iterable[ActiveAlert]) -> None:
        """The ward's alarms become ``rows``: the others leave its beds, and each row
        reaches its bed through ``_place_alarm``."""
        fresh = {row.alert_id: Alarm.from_active(row) for row in rows
                 if row.status in ACTIVE_STATUSES}
        for b in [b for (w, _), b in self._beds.items() if w == ward]:
            gone = [a for a in b.alarms if a not in fresh or fresh[a].bed != b.bed]
            for alert_id in gone:
                del b.alarms[alert_id]
                self._alert_beds.pop(alert_id, None)
            if gone:
                self._touch(b)
        for alarm in fresh.values():
            self._place_alarm(self._bed(ward, alarm.bed), alarm, refill=True)

    # ------------------------------------------------------------ connection health

    def mark_delayed(self, source: str, at: float | None = None) -> None:
        """``source`` (e.g. "kafka", "cassandra") is unreachable since ``at``."""
        with self._lock:
            self._down.setdefault(source, self.clock() if at is None else at)

    def mark_recovered(self, source: str) -> None:
        with self._lock:
            self._down.pop(source, None)

    @property
    def delayed_since(self) -> float | None:
        """Epoch seconds since when live data may be delayed, or ``None`` if healthy."""
        with self._lock:
            return min(self._down.values()) if self._down else None

    @property
    def delayed_sources(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._down))

    # ------------------------------------------------------------------- reads

    def stale_after(self, b: _Bed) -> float:
        """Seconds of silence after which ``b`` is stale (module docstring)."""
        return stale_timeout_ms(self.alerting, reporting_interval_ms(b.gaps)) / 1000

    def _is_stale(self, b: _Bed, now: float) -> bool:
        if b.last_processed_ts is None:
            return True
        return now - b.last_processed_ts / 1000 > self.stale_after(b)

    def _flags(self, b: _Bed) -> Mapping[Vital, ValueFlag]:
        """The bed's abnormal values, computed once per version of the bed."""
        if b.flags is not None and b.flags[0] == b.version:
            return b.flags[1]
        cfg = self.alerting.for_ward(b.ward)
        flags = {}
        for vital, value in b.values.items():
            flag = value_flag(vital, value, cfg, spo2_scale=b.spo2_scale,
                              o2_supplemental=b.o2_supplemental)
            if flag is not None:
                flags[vital] = flag
        b.flags = (b.version, MappingProxyType(flags))
        return b.flags[1]

    def _snapshot(self, b: _Bed, now: float) -> BedSnapshot:
        stale = self._is_stale(b, now)
        if b.shown_stale is not None and stale != b.shown_stale:
            self._touch(b)  # going stale (or fresh again) is a change of the screen
        b.shown_stale = stale
        age = None if b.last_processed_ts is None else max(0.0, now - b.last_processed_ts / 1000)
        alarms = tuple(sorted(
            (a for a in b.alarms.values()
             if b.patient_id is None or not a.patient_id or a.patient_id == b.patient_id),
            key=Alarm.sort_key,
        ))
        return BedSnapshot(
            ward=b.ward, bed=b.bed, patient_id=b.patient_id, label=b.label,
            version=b.version, now=now, last_ts=b.last_ts,
            last_processed_ts=b.last_processed_ts, stale=stale, age_seconds=age,
            values=MappingProxyType({} if stale else dict(b.values)),
            sensors_off=frozenset() if stale else b.sensors_off,
            news2=None if stale else b.news2,
            news2_band=None if stale else b.news2_band,
            news2_complete=False if stale else b.news2_complete,
            qsofa=None if stale else b.qsofa,
            trend=tuple(b.trend),
            alarms=alarms,
            flags=MappingProxyType({}) if stale else self._flags(b),
        )

    def ward_snapshot(self, ward: str, now: float | None = None) -> list[BedSnapshot]:
        """Every bed of ``ward`` in natural bed order."""
        with self._lock:
            now = self.clock() if now is None else now
            beds = sorted((b for (w, _), b in self._beds.items() if w == ward),
                          key=lambda b: bed_sort_key(b.bed))
            return [self._snapshot(b, now) for b in beds]

    def bed_snapshot(self, ward: str, bed: str, now: float | None = None) -> BedSnapshot | None:
        with self._lock:
            b = self._beds.get((ward, bed))
            return None if b is None else self._snapshot(b, self.clock() if now is None else now)

    def wards(self) -> list[str]:
        with self._lock:
            return sorted({w for w, _ in self._beds} | set(self._ward_versions))

    def ward_version(self, ward: str) -> int:
        """Grows whenever anything in the ward changed (0: nothing known yet). Going
        stale is noticed when a snapshot is taken."""
        with self._lock:
            return self._ward_versions.get(ward, 0)

    def alarm(self, alert_id: str) -> Alarm | None:
        with self._lock:
            where = self._alert_beds.get(alert_id)
            b = self._beds.get(where) if where else None
            return None if b is None else b.alarms.get(alert_id)

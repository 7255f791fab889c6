"""Alarm burden per ward: how many alarms a ward's staff face, and how they answer them.

For a period: alarms per occupied bed-day (the measure of alarm-fatigue studies: e.g.
187 audible alarms per bed-day in a UCSF ICU, Drew BJ et al., PLoS One 2014;9:e110274),
by priority; the share acknowledged; the median time from the alarm to its first
acknowledgement; and the rules that raise most of them. Pure: the rows come from
``backend.storage.alarm_burden``; nothing identifies a patient.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from backend.messages import Priority

if TYPE_CHECKING:  # pure: the stays' type only, not the database driver
    from backend.storage.census import PastStay

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class WardAlarm:
    """An alarm of a ward's per-day index (``alerts_by_ward_day``) with the time of its
    acknowledgement. Times are aware UTC datetimes; a column the writer left unset is
    ``None`` (a seeded alarm may have no patient)."""

    alert_id: str
    patient_id: str | None
    ward: str
    rule: str | None
    priority: str | None
    detected_ts: datetime
    status: str | None
    ack_ts: datetime | None  # None: not acknowledged


@dataclass(frozen=True, slots=True)
class WardBurden:
    ward: str
    bed_days: float  # occupied bed-days in the period
    alarms: int
    by_priority: Mapping[Priority, int]
    acknowledged: int
    median_ack_seconds: float | None  # over the acknowledged ones
    top_rules: tuple[tuple[str, int], ...]  # most frequent first

    @property
    def per_bed_day(self) -> float | None:
        return self.alarms / self.bed_days if self.bed_days > 0 else None

    @property
    def share_acknowledged(self) -> float | None:
        return self.acknowledged / self.alarms if self.alarms else None


def occupied_bed_days(stays: Iterable[PastStay], start: datetime,
                      end: datetime) -> dict[str, float]:
    """Bed-days per ward in ``[start, end)``: each stay (``discharged_ts`` None while
    admitted) clipped to the period."""
    out: dict[str, float] = {}
    for s in stays:
        lo, hi = max(s.admitted_ts, start), min(s.discharged_ts or end, end)
        if hi > lo:
            out[s.ward] = out.get(s.ward, 0.0) + (hi - lo).total_seconds() / DAY_S
    return out


def ward_burden(alerts: Iterable[WardAlarm], bed_days: Mapping[str, float],
                wards: Iterable[str] = (), *, top: int = 3) -> list[WardBurden]:
    """One ``WardBurden`` per ward with alarms, occupied bed-days or listed in ``wards``,
    in ward order; ``ack_ts`` is an alarm's first acknowledgement."""
    by_ward: dict[str, list[WardAlarm]] = {}
    for a in alerts:
        by_ward.setdefault(a.ward, []).append(a)
    out = []
    for ward in sorted(set(by_ward) | set(bed_days) | set(wards)):
        rows = by_ward.get(ward, [])
        priorities = Counter(_priority(a.priority) for a in rows)
        waits = [(a.ack_ts - a.detected_ts).total_seconds() for a in rows
                 if a.ack_ts is not None]
        out.append(WardBurden(
            ward=ward, bed_days=bed_days.get(ward, 0.0), alarms=len(rows),
            by_priority={p: priorities.get(p, 0) for p in Priority},
            acknowledged=sum(1 for a in rows if a.ack_ts is not None),
            median_ack_seconds=statistics.median(max(0.0, w) for w in waits) if waits
            else None,
            top_rules=tuple(Counter(a.rule for a in rows).most_common(top)),
        ))
    return out


def _priority(value: object) -> Priority:
    try:
        return Priority(value)
    except ValueError:
        return Priority.HIGH  # an unknown priority must not make an alarm disappear

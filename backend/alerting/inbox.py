"""The alert inbox's query: alerts of some wards in a time window, filtered by status
and priority, highest priority first and newest first within a priority, with their
current status and holder (``alerts_by_ward_day`` carries a copy of both, refreshed on
every lifecycle move)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.storage.alerts import AlertStore, WardDayAlert
from backend.storage.cassandra import Session
from backend.storage.statements import store

WINDOWS_HOURS = {"1": 1, "8": 8, "24": 24, "72": 72, "168": 168}
MAX_ROWS = 500
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}  # IEC 60601-1-8 order


@dataclass(frozen=True, slots=True)
class InboxFilter:
    wards: tuple[str, ...]
    statuses: frozenset[str]
    priorities: frozenset[str]
    hours: int

    @classmethod
    def parse(cls, wards: Iterable[str] | str | None, statuses: Iterable[str] | None,
              priorities: Iterable[str] | None, hours: str | int | None,
              known_wards: Iterable[str]) -> InboxFilter:
        """From the page's controls; ``ValueError`` (message for the screen) when a value
        is not one the page offers."""
        known = list(known_wards)
        if isinstance(wards, str):
            wards = [wards]
        chosen = tuple(w for w in (wards or []) if w)
        unknown = [w for w in chosen if w not in known]
        if unknown:
            raise ValueError(f"Unknown ward: {', '.join(unknown)}")
        key = str(hours) if hours is not None else ""
        if key not in WINDOWS_HOURS:
            raise ValueError("Choose a time window.")
        return cls(chosen or tuple(known), frozenset(statuses or ()),
                   frozenset(priorities or ()), WINDOWS_HOURS[key])

    def keeps(self, row: WardDayAlert) -> bool:
        return (not self.statuses or row.status in self.statuses) and \
            (not self.priorities or row.priority in self.priorities)


def days_between(start: datetime, end: datetime) -> list:
    """UTC days from ``end`` back to ``start`` (newest first)."""
    d, first = end.astimezone(UTC).date(), start.astimezone(UTC).date()
    out = []
    while d >= first:
        out.append(d)
        d -= timedelta(days=1)
    return out


def query(session: Session, f: InboxFilter, now: datetime | None = None,
          limit: int = MAX_ROWS) -> list[WardDayAlert]:
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=f.hours)
    alerts = store(AlertStore, session)
    rows: list[WardDayAlert] = []
    for ward in f.wards:
        for day in days_between(since, now):
            rows.extend(r for r in alerts.for_ward_day(ward, day, since) if f.keeps(r))
    return inbox_order(rows)[:limit]


def inbox_order(rows: list[WardDayAlert]) -> list[WardDayAlert]:
    """High before medium before low (unknown priorities last), newest first within a
    priority, then by alert id so equal rows keep one order between refreshes."""
    by_time = sorted(rows, key=lambda r: (r.detected_ts, r.alert_id), reverse=True)
    return sorted(by_time, key=lambda r: PRIORITY_RANK.get(r.priority, 3))

"""Which days an incremental aggregation run computes (pure logic, unit-tested).

A day is *final* once it was computed ``final_after_hours`` after its end (UTC): by then
its alerts are acknowledged and late discharges recorded. Incremental runs compute every
day of the requested range that has no final record; ``force`` recomputes them all.
Weekly aggregates are recomputed for every ISO week (Monday start) that contains a
recomputed day, from all the days of that week.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta


def day_range(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def is_final(day: date, computed_at: datetime, final_after_hours: float) -> bool:
    return computed_at >= day_end(day) + timedelta(hours=final_after_hours)


def days_to_compute(start: date, end: date, final_days: Iterable[date], *,
                    force: bool = False) -> list[date]:
    """Days of ``[start, end]`` to (re)compute, given the days already final."""
    final = set() if force else set(final_days)
    return [d for d in day_range(start, end) if d not in final]


def weeks_of(days: Iterable[date]) -> list[date]:
    return sorted({week_start(d) for d in days})


def load_window(days: Iterable[date]) -> tuple[date, date] | None:
    """The span of source data a run needs: whole weeks around its days."""
    weeks = weeks_of(days)
    if not weeks:
        return None
    return weeks[0], weeks[-1] + timedelta(days=6)


def record_final(records: Mapping[date, bool]) -> list[date]:
    return [d for d, final in records.items() if final]

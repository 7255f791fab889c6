"""Cassandra ``timestamp`` / ``date`` columns <-> the ms-since-epoch ints of the domain.

The driver returns naive datetimes in UTC; every conversion goes through here so that no
store can read them as local time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


def to_datetime(ms: int) -> datetime:
    """An aware UTC datetime for a ``timestamp`` column."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def to_ms(value: datetime) -> int:
    """ms since the epoch of a column value (naive values are UTC, as the driver gives)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def day_of(ms: int) -> date:
    """The UTC day of an instant: the day component of the day-partitioned tables."""
    return to_datetime(ms).date()

"""The days (UTC) a test's rows are keyed by, wherever midnight fell during the test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def recent_days() -> tuple[date, date]:
    """Yesterday and today (UTC). A test that starts before midnight and reads its rows
    after it still finds them; its keyspace is new, so nothing older is there."""
    today = datetime.now(UTC).date()
    return today - timedelta(days=1), today

"""The audit search by the hospital's local days on real Cassandra: events stored under
UTC days are found on the local day they happened, including the 25-hour day the clocks
go back and the 23-hour day they go forward."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from backend import audit

pytestmark = pytest.mark.integration
BERLIN = "Europe/Berlin"


def test_local_days_find_events_across_utc_midnight_and_changes_of_clocks(db) -> None:
    # (UTC instant, local day in Berlin) - around the autumn and spring changes and an
    # ordinary winter midnight (23:30 UTC is already the next day in Berlin)
    cases = [
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), date(2026, 10, 25)),  # 00:30 CEST
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), date(2026, 10, 25)),   # 02:30 CEST
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), date(2026, 10, 25)),   # 02:30 CET
        (datetime(2026, 10, 25, 22, 59, tzinfo=UTC), date(2026, 10, 25)),  # 23:59 CET
        (datetime(2026, 10, 25, 23, 0, tzinfo=UTC), date(2026, 10, 26)),   # 00:00 CET
        (datetime(2026, 3, 28, 23, 30, tzinfo=UTC), date(2026, 3, 29)),    # 00:30 CET
        (datetime(2026, 3, 29, 21, 59, tzinfo=UTC), date(2026, 3, 29)),    # 23:59 CEST
        (datetime(2026, 12, 3, 23, 30, tzinfo=UTC), date(2026, 12, 4)),    # 00:30 CET
    ]
    for i, (ts, _day) in enumerate(cases):
        audit.record(db, "tz-tester", audit.PATIENT_VIEWED, audit.PATIENT, f"p-{i}",
                     "", "web", now=ts)
    for day in sorted({d for _, d in cases}):
        found = audit.search(db, day, day, actor="tz-tester", tz=BERLIN)
        expected = {f"p-{i}" for i, (_, d) in enumerate(cases) if d == day}
        assert {e.target_id for e in found} == expected, day
    # a range of local days, newest first; UTC days still work as before
    span = audit.search(db, date(2026, 10, 25), date(2026, 10, 26), actor="tz-tester",
                        tz=BERLIN)
    assert [e.target_id for e in span] == ["p-4", "p-3", "p-2", "p-1", "p-0"]
    utc = audit.search(db, date(2026, 10, 24), date(2026, 10, 24), actor="tz-tester")
    assert [e.target_id for e in utc] == ["p-0"]
    assert max(e.ts for e in span) - min(e.ts for e in span) < timedelta(hours=26)

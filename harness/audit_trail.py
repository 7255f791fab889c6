"""Reading the audit log back in tests: what the run did, wherever midnight fell."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from backend import audit
from backend.audit import AuditEvent


def recent_days() -> tuple[date, date]:
    """Yesterday and today (UTC). A test that starts before midnight and reads the log
    after it still finds its own entries; its keyspace is new, so nothing older is there."""
    today = datetime.now(UTC).date()
    return today - timedelta(days=1), today


def recent(session, actor: str | None = None, action: str | None = None,
           patient_id: str | None = None) -> list[AuditEvent]:
    """The audit entries of :func:`recent_days`, newest first, filtered as ``audit.search``."""
    return audit.search(session, *recent_days(), actor=actor, action=action,
                        patient_id=patient_id)

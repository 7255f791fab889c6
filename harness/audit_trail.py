"""Reading the audit log back in tests: what the run did, wherever midnight fell."""

from __future__ import annotations

from backend import audit
from backend.audit import AuditEvent
from harness.days import recent_days


def recent(session, actor: str | None = None, action: str | None = None,
           patient_id: str | None = None) -> list[AuditEvent]:
    """The audit entries of :func:`recent_days`, newest first, filtered as ``audit.search``."""
    return audit.search(session, *recent_days(), actor=actor, action=action,
                        patient_id=patient_id)

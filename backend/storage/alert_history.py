"""Every step of an alert's life (``alert_history``): who, when, how, from which status
to which, with an optional comment.

Written after the step's lightweight transaction on the ``alerts`` row succeeded; the
row key is (alert, time, action), so a retried write rewrites the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.cluster import Session

from backend.storage.statements import prepared

_INSERT = (
    "INSERT INTO alert_history (alert_id, ts, action, from_status, to_status, actor, via,"
    " comment, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = "SELECT * FROM alert_history WHERE alert_id = ?"
MAX_COMMENT = 500

@dataclass(frozen=True, slots=True)
class Step:
    alert_id: str
    ts: datetime
    action: str
    from_status: str | None
    to_status: str
    actor: str
    via: str
    comment: str | None = None
    detail: str | None = None


def append(session: Session, step: Step) -> None:
    comment = step.comment.strip()[:MAX_COMMENT] if step.comment else None
    session.execute(prepared(session, _INSERT), (
        step.alert_id, step.ts, step.action, step.from_status, step.to_status, step.actor,
        step.via, comment or None, step.detail,
    ))


def for_alert(session: Session, alert_id: str) -> list[Step]:
    """The alert's steps, oldest first."""
    out = []
    for r in session.execute(prepared(session, _SELECT), (alert_id,)):
        ts = r["ts"]
        if ts is not None and ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        out.append(Step(r["alert_id"], ts, r["action"], r.get("from_status"),
                        r.get("to_status") or "", r.get("actor") or "", r.get("via") or "",
                        r.get("comment"), r.get("detail")))
    return out

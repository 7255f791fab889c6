"""Pure pieces of the alert inbox (``webapp/pages/alerts.py``): the charge nurse's board
of who holds what, and how long a hold is shown to last."""

from __future__ import annotations

from datetime import datetime

from backend.alerting import inbox
from backend.storage.alerts import ActiveAlert
from backend.storage.timestamps import to_ms


def ms_or_none(value: datetime | None) -> int | None:
    return None if value is None else to_ms(value)


def held_for(since_ms: int | None, now_ms: int) -> str:
    """How long an alert has been held: ``45 s``, ``12 min``, ``2 h 05 min``."""
    if since_ms is None:
        return ""
    seconds = max(0, (now_ms - since_ms) // 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def board_rows(active: list[ActiveAlert], now_ms: int
               ) -> list[tuple[str, list[ActiveAlert]]]:
    """Active alerts by holder: nurses by name, each one's alerts highest priority and
    longest held first; the unassigned last (``""``)."""
    by: dict[str, list[ActiveAlert]] = {}
    for r in active:
        by.setdefault(r.assigned_to or "", []).append(r)
    out = []
    for holder in sorted(by, key=lambda h: (h == "", h)):
        rows = sorted(by[holder], key=lambda r: (inbox.PRIORITY_RANK.get(r.priority, 3),
                                                 ms_or_none(r.assigned_ts) or now_ms,
                                                 r.alert_id))
        out.append((holder, rows))
    return out

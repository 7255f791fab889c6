"""``alert_manager_open``: the alerts the alert manager still works on (escalation,
silences, auto-resolve); an alert leaves the list when it ended."""

from __future__ import annotations

from datetime import datetime

from cassandra.cluster import Session

from backend.storage.statements import prepared

SHARD = 0  # one list: the open alerts of a hospital fit one partition


class OpenAlertStore:
    """One per session: ``backend.storage.statements.store(OpenAlertStore, session)``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._open = prepared(session, "INSERT INTO alert_manager_open (shard, alert_id,"
                              " raised_ts) VALUES (?, ?, ?)")
        self._close = prepared(session,
                               "DELETE FROM alert_manager_open WHERE shard = ? AND alert_id = ?")
        self._list = prepared(session,
                              "SELECT alert_id FROM alert_manager_open WHERE shard = ?")

    def open(self, alert_id: str, raised: datetime) -> None:
        self.session.execute(self._open, (SHARD, alert_id, raised))

    def close(self, alert_id: str) -> None:
        self.session.execute(self._close, (SHARD, alert_id))

    def alert_ids(self) -> list[str]:
        return [r["alert_id"] for r in self.session.execute(self._list, (SHARD,))]

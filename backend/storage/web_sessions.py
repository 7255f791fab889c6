"""``web_sessions``: one row per signed-in browser (the browser holds only the random
id). Rows expire by TTL: the role's idle timeout, never past its absolute lifetime."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cassandra.cluster import Session

from backend.storage.statements import prepared
from backend.storage.users import utc


@dataclass(frozen=True, slots=True)
class WebSession:
    session_id: str
    username: str
    created_ts: datetime
    last_seen_ts: datetime
    ip: str | None
    role: str | None = None  # the user's role at sign-in: its session limits


class WebSessionStore:
    """One per session: ``backend.storage.statements.store(WebSessionStore, session)``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._put = prepared(session, "INSERT INTO web_sessions (session_id, username,"
                             " created_ts, last_seen_ts, ip, role) VALUES (?, ?, ?, ?, ?, ?)"
                             " USING TTL ?")
        self._get = prepared(session, "SELECT * FROM web_sessions WHERE session_id = ?")
        self._delete = prepared(session, "DELETE FROM web_sessions WHERE session_id = ?")

    def put(self, ws: WebSession, ttl_seconds: int) -> None:
        self.session.execute(self._put, (ws.session_id, ws.username, ws.created_ts,
                                         ws.last_seen_ts, ws.ip, ws.role, ttl_seconds))

    def get(self, session_id: str) -> WebSession | None:
        row = self.session.execute(self._get, (session_id,)).one()
        if not row or not row.get("username") or row.get("last_seen_ts") is None:
            return None
        return WebSession(session_id, row["username"], utc(row["created_ts"]),
                          utc(row["last_seen_ts"]), row.get("ip"), row.get("role"))

    def delete(self, session_id: str) -> None:
        self.session.execute(self._delete, (session_id,))

"""``login_throttle``: sign-in attempt counters, each changed only by a lightweight
transaction conditional on the state read (the decisions are ``backend.users.throttle``).
Rows expire by TTL once their window and lock are long over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cassandra.cluster import Session

from backend.storage.statements import SERIAL, prepared
from backend.storage.users import utc


@dataclass(frozen=True, slots=True)
class Counter:
    """A ``login_throttle`` row as read."""

    attempts: int
    window_start: datetime
    locked_until: datetime | None = None


class LoginThrottleStore:
    """One per session: ``backend.storage.statements.store(LoginThrottleStore, session)``.
    Conditional writes return whether they were applied."""

    def __init__(self, session: Session) -> None:
        self.session = session
        p = prepared
        # read the state the compare-and-set sees (committed Paxos rounds)
        self._read = p(session, "SELECT attempts, window_start, locked_until FROM login_throttle"
                       " WHERE key = ?", SERIAL)
        self._create = p(session, "INSERT INTO login_throttle (key, attempts, window_start)"
                         " VALUES (?, 1, ?) IF NOT EXISTS USING TTL ?")
        self._advance = p(session,
            "UPDATE login_throttle USING TTL ? SET attempts = ?, window_start = ?,"
            " locked_until = null WHERE key = ? IF attempts = ? AND window_start = ?")
        self._lock = p(session, "UPDATE login_throttle USING TTL ? SET locked_until = ?"
                       " WHERE key = ? IF EXISTS")
        self._attempts = p(session, "UPDATE login_throttle USING TTL ? SET attempts = ?"
                           " WHERE key = ? IF attempts = ? AND window_start = ?")
        self._delete = p(session, "DELETE FROM login_throttle WHERE key = ? IF EXISTS")

    def read(self, key: str) -> Counter | None:
        row = self.session.execute(self._read, (key,)).one()
        if row is None or row.get("window_start") is None:
            return None
        return Counter(int(row.get("attempts") or 0), utc(row["window_start"]),
                       utc(row.get("locked_until")))

    def create(self, key: str, now: datetime, ttl: int) -> bool:
        """The first attempt of ``key`` (no row yet)."""
        return _applied(self.session.execute(self._create, (key, now, ttl)))

    def advance(self, key: str, seen: Counter, attempts: int, window_start: datetime,
                ttl: int) -> bool:
        """``attempts`` in the window from ``window_start`` (lock lifted), if the row is
        still ``seen``."""
        return _applied(self.session.execute(self._advance, (
            ttl, attempts, window_start, key, seen.attempts, seen.window_start)))

    def lock(self, key: str, until: datetime, ttl: int) -> None:
        self.session.execute(self._lock, (ttl, until, key))

    def give_back(self, key: str, seen: Counter, ttl: int) -> bool:
        """One attempt fewer, if the row is still ``seen``."""
        return _applied(self.session.execute(self._attempts, (
            ttl, seen.attempts - 1, key, seen.attempts, seen.window_start)))

    def delete(self, key: str) -> None:
        """A lightweight transaction too: plain writes must not mix with them."""
        self.session.execute(self._delete, (key,))


def _applied(result) -> bool:
    return bool(result.one()["[applied]"])

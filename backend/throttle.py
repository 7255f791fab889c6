"""Sign-in throttling: attempt counters in Cassandra, taken with lightweight transactions.

Each counter (``login_throttle`` row) has a key - ``acct:<user>``, ``addr:<client
address>`` or ``dev:<known device>`` - the attempts of its current fixed window, when
the window started and, once locked, until when. An attempt **reserves a slot before the
password is checked**: a compare-and-set (``IF attempts = n``) from the count it read, so
concurrent guesses (one per web process or thread) each get a distinct slot and never
more than ``limit`` of them in a window get to the password check. What happens after
the check:

- wrong password: the slot stays used; the failure that fills the last slot locks the
  key for ``lockout`` from then;
- right password: an account or device counter is reset (the owner proved who they
  are); an address counter gives its slot back (many people sign in at one ward
  workstation at shift change: only failures count there).

Pure decision logic (:func:`plan`) is separate from the storage (:class:`Throttle`) so
it is unit-tested without a database; the concurrency guarantee is tested against
Cassandra (``tests/integration/test_signin_security.py``).
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import PreparedStatement

log = logging.getLogger(__name__)

MAX_TRIES = 25  # compare-and-set rounds under contention before giving up (fail closed)


@dataclass(frozen=True, slots=True)
class Counter:
    """A ``login_throttle`` row as read."""

    attempts: int
    window_start: datetime
    locked_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one attempt given the counter as read."""

    action: str  # "refuse", "create" (no row yet), "restart" (window over), "increment"
    attempt: int = 0  # the slot this attempt gets (1-based), for create/restart/increment
    locked_until: datetime | None = None  # for "refuse"


@dataclass(frozen=True, slots=True)
class Slot:
    key: str
    granted: bool
    attempt: int = 0
    locked_until: datetime | None = None


def plan(counter: Counter | None, limit: int, window: timedelta, now: datetime) -> Plan:
    """The next step for an attempt at ``now`` (pure)."""
    if counter is None:
        return Plan("create", 1)
    if counter.locked_until is not None and counter.locked_until > now:
        return Plan("refuse", locked_until=counter.locked_until)
    if now - counter.window_start >= window:
        return Plan("restart", 1)
    if counter.attempts >= limit:
        # the limit was reached without a lock recorded (its writer died): the window's end
        return Plan("refuse", locked_until=counter.window_start + window)
    return Plan("increment", counter.attempts + 1)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


_PREPARED: weakref.WeakKeyDictionary[Session, dict[str, PreparedStatement]] = (
    weakref.WeakKeyDictionary())


class Throttle:
    """Attempt counters of one kind (limit per window, lock length) on one session."""

    def __init__(self, session: Session, limit: int, window: timedelta,
                 lockout: timedelta | None = None) -> None:
        self.session = session
        self.limit = limit
        self.window = window
        self.lockout = lockout or window
        self.ttl = max(60, int((self.window + self.lockout).total_seconds()) * 2)

    def _prep(self, cql: str, serial: bool = False) -> PreparedStatement:
        cache = _PREPARED.setdefault(self.session, {})
        stmt = cache.get(cql)
        if stmt is None:
            stmt = cache[cql] = self.session.prepare(cql)
            if serial:
                # read the state the compare-and-set sees (committed Paxos rounds)
                stmt.consistency_level = ConsistencyLevel.SERIAL
        return stmt

    def read(self, key: str) -> Counter | None:
        row = self.session.execute(self._prep(
            "SELECT attempts, window_start, locked_until FROM login_throttle WHERE key = ?",
            serial=True), (key,)).one()
        if row is None or row.get("window_start") is None:
            return None
        return Counter(int(row.get("attempts") or 0), _utc(row["window_start"]),
                       _utc(row.get("locked_until")))

    def take(self, key: str, now: datetime | None = None) -> Slot:
        """Reserve an attempt on ``key``: granted, or refused with the lock's end."""
        if self.limit <= 0:
            return Slot(key, True)
        now = _ms(now or datetime.now(UTC))
        for _ in range(MAX_TRIES):
            counter = self.read(key)
            step = plan(counter, self.limit, self.window, now)
            if step.action == "refuse":
                return Slot(key, False, counter.attempts if counter else 0, step.locked_until)
            if step.action == "create":
                result = self.session.execute(self._prep(
                    "INSERT INTO login_throttle (key, attempts, window_start) VALUES (?, 1, ?)"
                    " IF NOT EXISTS USING TTL ?"), (key, now, self.ttl)).one()
            else:
                assert counter is not None
                result = self.session.execute(self._prep(
                    "UPDATE login_throttle USING TTL ? SET attempts = ?, window_start = ?,"
                    " locked_until = null WHERE key = ? IF attempts = ? AND window_start = ?"),
                    (self.ttl, step.attempt,
                     now if step.action == "restart" else counter.window_start,
                     key, counter.attempts, counter.window_start)).one()
            if result["[applied]"]:
                return Slot(key, True, step.attempt)
        log.warning("sign-in throttle: no slot after %d tries (heavy contention)", MAX_TRIES)
        return Slot(key, False, self.limit, now + timedelta(seconds=5))

    def failed(self, slot: Slot, now: datetime | None = None) -> datetime | None:
        """The attempt of ``slot`` failed; returns the lock's end when it filled the last
        slot."""
        if not slot.granted or slot.attempt < self.limit:
            return None
        until = _ms(now or datetime.now(UTC)) + self.lockout
        self.session.execute(self._prep(
            "UPDATE login_throttle USING TTL ? SET locked_until = ? WHERE key = ? IF EXISTS"),
            (self.ttl, until, slot.key))
        return until

    def release(self, slot: Slot) -> None:
        """Give the slot back (a successful attempt on an address counter)."""
        if not slot.granted or self.limit <= 0:
            return
        for _ in range(MAX_TRIES):
            counter = self.read(slot.key)
            if counter is None or counter.attempts <= 0:
                return
            result = self.session.execute(self._prep(
                "UPDATE login_throttle USING TTL ? SET attempts = ? WHERE key = ?"
                " IF attempts = ? AND window_start = ?"),
                (self.ttl, counter.attempts - 1, slot.key, counter.attempts,
                 counter.window_start)).one()
            if result["[applied]"]:
                return

    def reset(self, key: str) -> None:
        """Forget ``key``'s attempts and lock (a right password; an administrator's
        unlock). A lightweight transaction too: plain writes must not mix with them."""
        self.session.execute(self._prep("DELETE FROM login_throttle WHERE key = ? IF EXISTS"),
                             (key,))

    def state(self, key: str, now: datetime | None = None) -> datetime | None:
        """When the lock on ``key`` ends, ``None`` if it is not locked (read only)."""
        now = now or datetime.now(UTC)
        counter = self.read(key)
        step = plan(counter, self.limit, self.window, now)
        return step.locked_until if step.action == "refuse" else None

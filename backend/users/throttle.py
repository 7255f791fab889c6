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

Pure decision logic (:func:`plan`) is separate from the counters' moves
(:class:`Throttle`, on ``backend.storage.login_throttle``) so it is unit-tested without
a database; the concurrency guarantee is tested against Cassandra
(``tests/integration/test_signin_security.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.login_throttle import Counter, LoginThrottleStore

__all__ = ["Counter", "Plan", "Slot", "Throttle", "account_key", "account_throttle",
           "address_key", "address_throttle", "device_key", "locked_until", "plan",
           "reset_failures"]
from backend.storage.statements import store
from backend.users.validation import normalize_username

log = logging.getLogger(__name__)

MAX_TRIES = 25  # compare-and-set rounds under contention before giving up (fail closed)


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


def _ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


class Throttle:
    """Attempt counters of one kind (limit per window, lock length) on one session."""

    def __init__(self, session: Session, limit: int, window: timedelta,
                 lockout: timedelta | None = None) -> None:
        self.session = session
        self.limit = limit
        self.window = window
        self.lockout = lockout or window
        self.ttl = max(60, int((self.window + self.lockout).total_seconds()) * 2)
        self.counters = store(LoginThrottleStore, session)

    def read(self, key: str) -> Counter | None:
        return self.counters.read(key)

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
                applied = self.counters.create(key, now, self.ttl)
            else:
                assert counter is not None
                applied = self.counters.advance(
                    key, counter, step.attempt,
                    now if step.action == "restart" else counter.window_start, self.ttl)
            if applied:
                return Slot(key, True, step.attempt)
        log.warning("sign-in throttle: no slot after %d tries (heavy contention)", MAX_TRIES)
        return Slot(key, False, self.limit, now + timedelta(seconds=5))

    def failed(self, slot: Slot, now: datetime | None = None) -> datetime | None:
        """The attempt of ``slot`` failed; returns the lock's end when it filled the last
        slot."""
        if not slot.granted or slot.attempt < self.limit:
            return None
        until = _ms(now or datetime.now(UTC)) + self.lockout
        self.counters.lock(slot.key, until, self.ttl)
        return until

    def release(self, slot: Slot) -> None:
        """Give the slot back (a successful attempt on an address counter)."""
        if not slot.granted or self.limit <= 0:
            return
        for _ in range(MAX_TRIES):
            counter = self.read(slot.key)
            if counter is None or counter.attempts <= 0:
                return
            if self.counters.give_back(slot.key, counter, self.ttl):
                return

    def reset(self, key: str) -> None:
        """Forget ``key``'s attempts and lock (a right password; an administrator's
        unlock). A lightweight transaction too: plain writes must not mix with them."""
        self.counters.delete(key)

    def state(self, key: str, now: datetime | None = None) -> datetime | None:
        """When the lock on ``key`` ends, ``None`` if it is not locked (read only)."""
        now = now or datetime.now(UTC)
        counter = self.read(key)
        step = plan(counter, self.limit, self.window, now)
        return step.locked_until if step.action == "refuse" else None


# --- the sign-in counters (settings.web) ---------------------------------------------------
def _lockout(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.web.lockout_minutes)


def account_key(name: str) -> str:
    return "acct:" + name


def device_key(device_id: str) -> str:
    return "dev:" + device_id


def address_key(ip: str) -> str:
    return "addr:" + ip


def account_throttle(session: Session, settings: Settings) -> Throttle:
    """Per account and per known device: ``max_failed_logins`` per window."""
    return Throttle(session, settings.web.max_failed_logins, _lockout(settings))


def address_throttle(session: Session, settings: Settings) -> Throttle:
    """Per client address, whatever the account: ``max_failed_logins_per_address``."""
    return Throttle(session, settings.web.max_failed_logins_per_address, _lockout(settings))


def reset_failures(session: Session, username: str, settings: Settings | None = None) -> None:
    """Lift the lock and forget the failures of ``username``'s account counter."""
    account_throttle(session, settings or Settings()).reset(
        account_key(normalize_username(username)))


def locked_until(
    session: Session, username: str, settings: Settings, now: datetime | None = None
) -> datetime | None:
    """When the lock on the account ``username`` ends, or ``None`` (not locked)."""
    return account_throttle(session, settings).state(
        account_key(normalize_username(username)), now)

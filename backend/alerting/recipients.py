"""Who is e-mailed about an alert when a role is notified (the raise, each escalation).

For role R and an alert on ward W the recipients are:

1. the users with role R who are enabled, have an e-mail address and cover W (a user
   with no wards covers every ward; ``backend.users.User.covers``), by username;
2. PLUS R's distribution list from the settings (``alert_manager.recipients``). It is
   kept even when users match: it is the fallback when nobody matches (a ward nobody
   has been assigned to, accounts without addresses) and the ward's shared mailbox.

Addresses are de-duplicated ignoring case, first occurrence kept. Disabled users never
receive mail; demo accounts only in demo mode (outside it they cannot sign in, so a link
sent to them could never be used).

The users are read through :class:`UserDirectory`, which keeps the list for
``alert_manager.user_cache_seconds`` (30 s by default). Why a cache: the users table is a
full scan (small, but one per alert in an alert storm - a ward's monitors can raise
dozens within a minute - would be pointless load on the database the ward screens read
from). Why that short: an admin's change (a new address, a disabled account, another
ward) must reach the manager well before the first escalation (2 min for HIGH), so the
staleness is bounded by 30 s; sign-in of a disabled user is refused at once regardless
(``backend.users.authenticate`` reads the row each time). When the users cannot be read,
the last list read is used (and the failure logged); with no list at all the error
propagates so the caller retries the step (the alert manager's tick / Kafka redelivery).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from backend.users import User

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One address to e-mail, and who it is: a user (their acknowledgement link works
    for them only) or ``None`` for the role's distribution list (its link works for the
    role's users covering the alert's ward)."""

    address: str
    username: str | None = None


def select_bound(users: Iterable[User], role: str, ward: str | None,
                 fallback: Iterable[str], *, demo_mode: bool) -> list[Recipient]:
    """The recipients when ``role`` is notified about an alert on ``ward``: matching
    users (by username) then the role's ``fallback`` list, each address once (the first
    occurrence kept, so a user's own address stays bound to them)."""
    chosen = [
        Recipient(u.email, u.username) for u in sorted(users, key=lambda u: u.username)
        if u.email and not u.disabled and u.role.value == role and u.covers(ward)
        and (demo_mode or not u.is_demo)
    ]
    seen: set[str] = set()
    out: list[Recipient] = []
    for r in (*chosen, *(Recipient(a) for a in fallback)):
        address = r.address.strip()
        key = address.casefold()
        if key and key not in seen:
            seen.add(key)
            out.append(Recipient(address, r.username))
    return out


def select_recipients(users: Iterable[User], role: str, ward: str | None,
                      fallback: Iterable[str], *, demo_mode: bool) -> list[str]:
    """The addresses of :func:`select_bound`."""
    return [r.address for r in select_bound(users, role, ward, fallback,
                                            demo_mode=demo_mode)]


class UserDirectory:
    """The users, read at most once per ``ttl_seconds`` (see the module docstring).

    ``load`` reads every user (``backend.users.list_users`` on a session); ``clock`` is
    monotonic seconds (tests inject one). Thread-safe: the alert manager's Kafka loop and
    its tick may share it."""

    def __init__(self, load: Callable[[], list[User]], ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self.ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._users: list[User] | None = None
        self._loaded_at = 0.0
        self.loads = 0  # how often the table was read (observability, tests)

    def users(self) -> list[User]:
        with self._lock:
            now = self._clock()
            if self._users is not None and now - self._loaded_at < self.ttl:
                return self._users
            try:
                users = list(self._load())
            except Exception as exc:
                if self._users is None:
                    raise
                log.warning("reading the users failed (%s); using the list read %.0f s ago",
                            type(exc).__name__, now - self._loaded_at)
                return self._users
            self._users, self._loaded_at = users, now
            self.loads += 1
            return users

    def invalidate(self) -> None:
        """Read the table again at the next use."""
        with self._lock:
            self._users = None

    def recipients(self, role: str, ward: str | None, fallback: Iterable[str], *,
                   demo_mode: bool) -> list[str]:
        return select_recipients(self.users(), role, ward, fallback, demo_mode=demo_mode)

    def bound(self, role: str, ward: str | None, fallback: Iterable[str], *,
              demo_mode: bool) -> list[Recipient]:
        return select_bound(self.users(), role, ward, fallback, demo_mode=demo_mode)

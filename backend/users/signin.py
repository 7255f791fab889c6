"""Signing in: the password check, the attempt counters and the audit of every outcome.

Sign-in attempts are counted server-side (``backend.users.throttle``, shared by every
web process) per account, per client address and per known device, each slot reserved
with a lightweight transaction before the password is checked, so concurrent guesses
cannot exceed the limit. ``settings.web.max_failed_logins`` failures within
``lockout_minutes`` lock the account for that long - for browsers that have not signed
in to it before: a known device (signed cookie) is counted on its own, so a lock
somebody else caused cannot keep the owner out (see :func:`authenticate`). Attempts
while locked are refused without checking the password. Names that do not exist are
counted too, so a lock reveals nothing. An administrator can unlock
(``backend.users.accounts.unlock_user``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from backend import audit
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.statements import store
from backend.storage.users import User, UserStore
from backend.users.accounts import get_user, stored_now
from backend.users.passwords import DUMMY_HASH, unknown_user_key, verify_password
from backend.users.throttle import (
    Slot,
    Throttle,
    account_key,
    account_throttle,
    address_key,
    address_throttle,
    device_key,
)
from backend.users.validation import USERNAME_RE, normalize_username

log = logging.getLogger(__name__)


class LoginOutcome(StrEnum):
    OK = "ok"
    INVALID = "invalid"  # wrong name or password, disabled, or a demo user outside demo mode
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    user: User | None = None
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is LoginOutcome.OK


def authenticate(
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    *,
    ip: str | None = None,
    via: str = "web",
    known_device: str | None = None,
    now: datetime | None = None,
) -> LoginResult:
    """Check a sign-in attempt, apply throttling, and audit the outcome.

    Never tells the caller *which* of name and password was wrong: a missing user, a
    wrong password, a disabled account and a demo account outside demo mode are all
    ``INVALID``.

    Throttling (``backend.users.throttle``; each attempt reserves its slot atomically before
    the password is checked): a browser that signed in to this account before
    (``known_device``: the id from its signed device cookie) is counted on its own
    device counter only; any other attempt is counted on the client address's counter
    and on the account's. So failures from elsewhere lock the account for unknown
    browsers, but never keep its owner out of the browser they use.
    """
    now = stored_now(now)
    typed = normalize_username(username)
    user = get_user(session, typed) if USERNAME_RE.match(typed) else None
    # A name that is no account is often a password typed into the wrong field: it is
    # never stored or logged, only a keyed digest of it (enough to throttle and to see
    # repeated attempts in the audit log).
    name = user.username if user else unknown_user_key(typed, settings)
    actor = name if user else "unknown"
    where = f"ip={ip}" if ip else ""
    accounts = account_throttle(session, settings)
    addresses = address_throttle(session, settings)
    taken: list[tuple[Throttle, Slot]] = []
    if known_device and user is not None:
        keys = [(accounts, device_key(known_device))]
        where = f"{where} known-device".strip()
    else:
        keys = [(addresses, address_key(ip))] if ip else []
        keys.append((accounts, account_key(name)))
    for throttle, key in keys:
        slot = throttle.take(key, now)
        if not slot.granted:
            for t, s in taken:  # not checked: give back what this attempt reserved
                t.release(s)
            kind = key.split(":", 1)[0]
            audit.record(session, actor, audit.LOGIN_LOCKED, "user", name,
                         f"{where} counter={kind}".strip(), via, now=now)
            log.info("sign-in refused for %s: %s counter locked", name, kind)
            return LoginResult(LoginOutcome.LOCKED, locked_until=slot.locked_until)
        taken.append((throttle, slot))

    matches, new_hash = verify_password(user.password_hash if user else DUMMY_HASH,
                                        password or "")
    if not (user and matches):
        until = None
        for throttle, slot in taken:
            until = throttle.failed(slot, now) or until
        audit.record(session, actor, audit.LOGIN_FAILURE, "user", name, where, via, now=now)
        log.info("sign-in failed for %s", name)
        if until is not None:
            return LoginResult(LoginOutcome.LOCKED, locked_until=until)
        return LoginResult(LoginOutcome.INVALID)

    for throttle, slot in taken:  # the owner: reset their counter, give the address back
        if slot.key.startswith("addr:"):
            throttle.release(slot)
        else:
            throttle.reset(slot.key)
    if user.disabled or (user.is_demo and not settings.demo_mode):
        reason = "disabled" if user.disabled else "demo account outside demo mode"
        audit.record(session, name, audit.LOGIN_FAILURE, "user", name,
                     f"{where} reason={reason}".strip(), via, now=now)
        log.info("sign-in refused for %s: %s", name, reason)
        return LoginResult(LoginOutcome.INVALID)

    if new_hash:
        store(UserStore, session).upgrade_hash(name, new_hash)
        log.info("password hash of %s upgraded to current argon2 parameters", name)
    audit.record(session, name, audit.LOGIN_SUCCESS, "user", name, where, via, now=now)
    log.info("sign-in: %s (%s)", name, user.role.value)
    return LoginResult(LoginOutcome.OK, user=user)

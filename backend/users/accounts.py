"""Accounts in ``users``: create, change contact data, disable, set a password, unlock
(every change audited, ``backend.audit``). Users are disabled, never deleted."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from enum import Enum

from backend import audit
from backend.auth_policy import Role
from backend.identifiers import identifier_problem
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.statements import store
from backend.storage.users import User, UserStore
from backend.users.passwords import hash_password
from backend.users.throttle import locked_until, reset_failures
from backend.users.validation import (
    MAX_DISPLAY_NAME,
    UserError,
    UserExists,
    UserNotFound,
    contact_detail,
    normalize_email,
    normalize_username,
    parse_role,
    parse_wards,
    password_problems,
    username_problems,
    ward_role_problems,
)

log = logging.getLogger(__name__)


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # "leave this field as it is" in update_contact


def stored_now(now: datetime | None = None) -> datetime:
    # Cassandra timestamps have millisecond precision; round so values compare equal.
    t = now or datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def get_user(session: Session, username: str) -> User | None:
    return store(UserStore, session).get(normalize_username(username))


def list_users(session: Session) -> list[User]:
    """Every user, by username (a full scan of a small table)."""
    return store(UserStore, session).all()


def create_user(
    session: Session,
    username: str,
    password: str,
    role: Role | str,
    display_name: str | None = None,
    *,
    actor: str,
    via: str,
    is_demo: bool = False,
    email: str | None = None,
    wards: Iterable[str] | str | None = None,
    local_domains: Collection[str] = (),
) -> User:
    """Create a user; raises :class:`UserError` (with a message to show) when invalid.
    ``local_domains``: ``settings.smtp.local_domains`` (see :func:`normalize_email`)."""
    username = normalize_username(username)
    display_name = (display_name or "").strip() or username
    problems = username_problems(username) + password_problems(password, username)
    name_problem = identifier_problem(display_name, "Display name",
                                      max_length=MAX_DISPLAY_NAME, allow_space=True)
    if name_problem:
        problems.append(name_problem + ".")
    try:
        role = parse_role(role)
    except UserError as e:
        problems.append(str(e))
    try:
        email = normalize_email(email, local_domains)
    except UserError as e:
        problems.append(str(e))
    try:
        ward_set = parse_wards(wards)
        if isinstance(role, Role):
            problems += ward_role_problems(role, ward_set)
    except UserError as e:
        problems.append(str(e))
    if problems:
        raise UserError(" ".join(problems))
    now = stored_now()
    user = User(username, display_name, role, False, is_demo, now, now, email=email,
                wards=ward_set)
    if not store(UserStore, session).insert(user, hash_password(password), now):
        raise UserExists(f"User {username} already exists.")
    detail = f"role={role.value}"
    if email or ward_set:
        detail += " " + contact_detail(email, ward_set)
    audit.record(session, actor, audit.USER_CREATED, "user", username, detail, via)
    log.info("user %s created (role %s) by %s", username, role.value, actor)
    return user


def update_contact(
    session: Session,
    username: str,
    *,
    email: str | _Keep | None = KEEP,
    wards: Iterable[str] | str | _Keep | None = KEEP,
    local_domains: Collection[str] = (),
    actor: str,
    via: str,
) -> User:
    """Change a user's e-mail address and/or wards (``KEEP``: unchanged; ``None`` or
    blank: removed - no individual mail / every ward). Validated as in
    :func:`create_user`, audited with the values after the change."""
    username = normalize_username(username)
    values: dict[str, object] = {}
    problems: list[str] = []
    if email is not KEEP:
        try:
            values["email"] = normalize_email(email, local_domains)
        except UserError as e:
            problems.append(str(e))
    if wards is not KEEP:
        try:
            ward_set = parse_wards(wards)
            current = get_user(session, username)
            if current is not None:
                problems += ward_role_problems(current.role, ward_set)
            values["wards"] = set(ward_set)
        except UserError as e:
            problems.append(str(e))
    if problems:
        raise UserError(" ".join(problems))
    if not values:
        raise UserError("Nothing to change: give an e-mail address or wards.")
    if not store(UserStore, session).update(username, values, stored_now()):
        raise UserNotFound(f"No user {username}.")
    user = get_user(session, username)
    assert user is not None  # just updated (users are disabled, never deleted)
    audit.record(session, actor, audit.USER_CONTACT_SET, "user", username,
                 contact_detail(user.email, user.wards), via)
    # the address is staff contact data, kept out of the application log
    log.info("user %s: e-mail/wards changed by %s", username, actor)
    return user


def _set_disabled(session: Session, username: str, disabled: bool, actor: str, via: str) -> None:
    username = normalize_username(username)
    if not store(UserStore, session).set_disabled(username, disabled, stored_now()):
        raise UserNotFound(f"No user {username}.")
    action = audit.USER_DISABLED if disabled else audit.USER_ENABLED
    audit.record(session, actor, action, "user", username, "", via)
    log.info("user %s %s by %s", username, "disabled" if disabled else "enabled", actor)


def disable_user(session: Session, username: str, *, actor: str, via: str) -> None:
    """Disable a user: sign-in is refused and open sessions stop working at once."""
    _set_disabled(session, username, True, actor, via)


def enable_user(session: Session, username: str, *, actor: str, via: str) -> None:
    _set_disabled(session, username, False, actor, via)


def set_password(
    session: Session, username: str, password: str, *, actor: str, via: str
) -> None:
    username = normalize_username(username)
    problems = password_problems(password, username)
    if problems:
        raise UserError(" ".join(problems))
    if not store(UserStore, session).set_password_hash(username, hash_password(password),
                                                       stored_now()):
        raise UserNotFound(f"No user {username}.")
    reset_failures(session, username)
    audit.record(session, actor, audit.USER_PASSWORD_SET, "user", username, "", via)


def unlock_user(session: Session, username: str, settings: Settings, *, actor: str,
                via: str) -> bool:
    """An administrator lifts the sign-in lock of ``username``; audited. Returns whether
    it was locked."""
    username = normalize_username(username)
    if get_user(session, username) is None:
        raise UserNotFound(f"No user {username}.")
    was = locked_until(session, username, settings) is not None
    reset_failures(session, username, settings)
    audit.record(session, actor, audit.USER_UNLOCKED, "user", username,
                 "was locked" if was else "was not locked", via)
    log.info("user %s unlocked by %s", username, actor)
    return was

"""Users, passwords, sign-in throttling and web sessions, stored in Cassandra.

- Passwords are hashed with argon2id (``argon2.PasswordHasher`` with its defaults); a
  hash made with older parameters is replaced at the next successful sign-in.
- Failed sign-ins are rows in ``login_failures`` (server-side, shared by every web
  process). ``settings.web.max_failed_logins`` failures within ``lockout_minutes`` lock
  the name for ``lockout_minutes`` from the failure that reached the limit; attempts
  while locked are refused without checking the password and do not extend the lock.
  Failures are counted for names that do not exist too, so a lock reveals nothing.
- Web sessions are rows in ``web_sessions``: the browser holds only a random id; the
  server checks the last activity (idle timeout) and can end a session (logout).
- Every change and every sign-in is written to the audit log (``backend.audit``).
- A user may have an e-mail address and the wards they cover (none: every ward); the
  alert manager e-mails alerts to the users of the notified role covering the alert's
  ward (``backend.alerting.recipients``). Addresses are checked with ``email_validator``
  (syntax only, no DNS: the hospital's relay decides deliverability); domains the relay
  delivers that are not public names are listed in ``settings.smtp.local_domains``.

Functions take a Cassandra session bound to the platform keyspace.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cassandra.cluster import Session
from cassandra.query import PreparedStatement
from cassandra.util import datetime_from_uuid1, uuid_from_time
from email_validator import EmailNotValidError, validate_email

from backend import audit
from backend.auth_policy import Role
from backend.settings import Settings

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MAX_DISPLAY_NAME = 100
# A ward name as admissions carry it (backend.census.Admission.ward: 1-32 characters).
WARD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,31}$")
MAX_WARDS = 64
_HOST_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Stand-in public domain under which the local part of an address at one of
# ``settings.smtp.local_domains`` is checked (the library refuses those domains).
_PUBLIC_STAND_IN = "example.org"

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
# Verified against when the user does not exist, so both paths cost one argon2 hash.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    """A request about users that cannot be done; the message is safe to show."""


class UserExists(UserError):
    pass


class UserNotFound(UserError):
    pass


@dataclass(frozen=True, slots=True)
class User:
    username: str
    display_name: str
    role: Role
    disabled: bool
    is_demo: bool
    created_ts: datetime | None
    updated_ts: datetime | None
    password_hash: str = ""
    email: str | None = None
    wards: frozenset[str] = field(default_factory=frozenset)  # empty: every ward

    def __repr__(self) -> str:  # never print the hash
        return f"User({self.username!r}, role={self.role.value}, disabled={self.disabled})"

    def covers(self, ward: str | None) -> bool:
        """Does this user cover ``ward``? No wards = every ward; names match ignoring case
        (an admin typing "icu-a" means the ward the monitors call "ICU-A")."""
        if not self.wards:
            return True
        return ward is not None and ward.casefold() in {w.casefold() for w in self.wards}


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # "leave this field as it is" in update_contact


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


@dataclass(frozen=True, slots=True)
class WebSession:
    session_id: str
    username: str
    created_ts: datetime
    last_seen_ts: datetime
    ip: str | None


# --- demo accounts ----------------------------------------------------------------------
DEMO_USERS: tuple[tuple[str, str, Role], ...] = (
    ("demo-nurse", "Demo Nurse", Role.NURSE),
    # a second nurse, so the charge nurse has somebody to assign and reassign alerts to
    ("demo-nurse-b", "Demo Nurse B", Role.NURSE),
    ("demo-charge", "Demo Charge Nurse", Role.CHARGE_NURSE),
    ("demo-physician", "Demo Physician", Role.PHYSICIAN),
    ("demo-admin", "Demo Administrator", Role.ADMIN),
)


# --- pure helpers (unit-tested without Cassandra) ---------------------------------------
def normalize_username(username: str) -> str:
    return (username or "").strip().lower()


def username_problems(username: str) -> list[str]:
    if not USERNAME_RE.match(username or ""):
        return ["Username: 2-64 characters, lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit."]
    return []


def password_problems(password: str, username: str | None = None) -> list[str]:
    """Why ``password`` is not acceptable for a new or changed password (empty: fine)."""
    problems = []
    if len(password or "") < MIN_PASSWORD_LENGTH:
        problems.append(f"Password: at least {MIN_PASSWORD_LENGTH} characters.")
    elif len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Password: at most {MAX_PASSWORD_LENGTH} characters.")
    elif username and password.strip().lower() == normalize_username(username):
        problems.append("Password: must not be the username.")
    elif len(set(password)) < 4:
        problems.append("Password: too repetitive.")
    return problems


def parse_role(role: str | Role) -> Role:
    try:
        return Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise UserError(f"Role: one of {names}.") from None


def normalize_email(address: str | None, local_domains: Collection[str] = ()) -> str | None:
    """The address as stored (normalised: domain in lower case), ``None`` when blank.

    Raises :class:`UserError` with the validator's reason when it is not an address.
    Public domains are checked by ``email_validator`` (syntax only, no DNS lookup); an
    address at one of ``local_domains`` (or a subdomain) has its local part checked by the
    library and its domain checked as a host name here.
    """
    text = (address or "").strip()
    if not text:
        return None
    local, at, domain = text.rpartition("@")
    host = domain.lower()
    locals_ = {d.strip().lower().strip(".") for d in local_domains if d.strip()}
    try:
        if at and local and any(host == d or host.endswith("." + d) for d in locals_):
            if not all(_HOST_LABEL_RE.match(label) for label in host.split(".")):
                raise UserError(f"E-mail: {host!r} is not a valid domain name.")
            checked = validate_email(f"{local}@{_PUBLIC_STAND_IN}", check_deliverability=False)
            return f"{checked.local_part}@{host}"
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as e:
        raise UserError(f"E-mail: {e}") from None


def parse_wards(value: Iterable[str] | str | None) -> frozenset[str]:
    """Ward names from a comma-separated string or a list of them (each entry may itself
    hold commas); blanks dropped. Empty result: the user covers every ward. Raises
    :class:`UserError` naming each bad entry."""
    items = [value] if isinstance(value, str) else list(value or ())
    wards = {w.strip() for item in items for w in str(item).split(",") if w.strip()}
    bad = sorted(w for w in wards if not WARD_RE.match(w))
    if bad:
        shown = ", ".join(repr(w) for w in bad[:5])
        raise UserError(f"Ward {shown}: 1-32 characters, letters, digits, spaces, '.', '_', "
                        "'/' or '-', starting with a letter or digit.")
    if len(wards) > MAX_WARDS:
        raise UserError(f"Wards: at most {MAX_WARDS}.")
    return frozenset(wards)


def unknown_wards_note(wards: Collection[str], known: Collection[str]) -> str:
    """A warning for the wards of ``wards`` that the census does not know (ignoring
    case), empty when all are known. Not an error (a ward may open later), but a typo
    would silently keep the user's alert e-mail away, so it is said out loud."""
    known_cf = {k.casefold() for k in known}
    unknown = sorted(w for w in wards if w.casefold() not in known_cf)
    if not unknown:
        return ""
    return (f"Not a ward of the census (yet): {', '.join(unknown)} - check the spelling, "
            "alerts carry the census's ward names.")


def contact_detail(email: str | None, wards: Collection[str]) -> str:
    """How the audit log records a user's e-mail and wards."""
    return f"email={email or '(none)'} wards={','.join(sorted(wards)) or '(all)'}"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> tuple[bool, str | None]:
    """``(matches, new_hash)``; ``new_hash`` is set when the hash used outdated argon2
    parameters and should be stored instead (only on a match)."""
    try:
        _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if _hasher.check_needs_rehash(password_hash):
        return True, _hasher.hash(password)
    return True, None


def unknown_user_key(typed: str, settings: Settings) -> str:
    """Stand-in for a sign-in name that is no account: ``?`` and a digest keyed with the
    secret key, so the typed text cannot be recovered from logs or the database."""
    key = settings.secret_key.get_secret_value().encode() or b"icu-monitor"
    return "?" + hmac.new(key, typed.encode(), hashlib.sha256).hexdigest()[:16]


def lockout_until(
    failures: Sequence[datetime], max_failed: int, lockout: timedelta
) -> datetime | None:
    """End of the most recent lock implied by these failure times, or ``None``.

    Failures are counted in a sliding window of ``lockout``; the ``max_failed``-th
    failure inside the window locks until ``lockout`` after it, and counting starts
    afresh after a lock. Compare the result with "now" to know whether it still holds.
    """
    if max_failed <= 0:
        return None
    window: list[datetime] = []
    until: datetime | None = None
    for t in sorted(failures):
        if until is not None and t < until:
            continue  # attempts while locked are not counted (and are not stored)
        window = [x for x in window if t - x < lockout] + [t]
        if len(window) >= max_failed:
            until = t + lockout
            window = []
    return until


# --- storage ------------------------------------------------------------------------------
_prepared: weakref.WeakKeyDictionary[Session, dict[str, PreparedStatement]] = (
    weakref.WeakKeyDictionary()
)


def _prep(session: Session, cql: str) -> PreparedStatement:
    cache = _prepared.setdefault(session, {})
    stmt = cache.get(cql)
    if stmt is None:
        stmt = cache[cql] = session.prepare(cql)
    return stmt


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now(now: datetime | None = None) -> datetime:
    # Cassandra timestamps have millisecond precision; round so values compare equal.
    t = now or datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _user(row: dict) -> User:
    return User(
        username=row["username"],
        display_name=row.get("display_name") or row["username"],
        role=Role(row["role"]),
        disabled=bool(row.get("disabled")),
        is_demo=bool(row.get("is_demo")),
        created_ts=_utc(row.get("created_ts")),
        updated_ts=_utc(row.get("updated_ts")),
        password_hash=row.get("password_hash") or "",
        email=row.get("email") or None,
        wards=frozenset(row.get("wards") or ()),
    )


def get_user(session: Session, username: str) -> User | None:
    row = session.execute(
        _prep(session, "SELECT * FROM users WHERE username = ?"), (normalize_username(username),)
    ).one()
    return _user(row) if row else None


def list_users(session: Session) -> list[User]:
    """Every user, by username (a full scan of a small table)."""
    rows = session.execute(
        "SELECT username, display_name, role, disabled, is_demo, created_ts, updated_ts,"
        " email, wards FROM users"
    )
    return sorted((_user(r) for r in rows), key=lambda u: u.username)


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
    if len(display_name) > MAX_DISPLAY_NAME:
        problems.append(f"Display name: at most {MAX_DISPLAY_NAME} characters.")
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
    except UserError as e:
        problems.append(str(e))
    if problems:
        raise UserError(" ".join(problems))
    now = _now()
    applied = session.execute(
        _prep(session,
              "INSERT INTO users (username, display_name, role, password_hash, disabled, is_demo,"
              " created_ts, updated_ts, password_ts, email, wards)"
              " VALUES (?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?) IF NOT EXISTS"),
        (username, display_name, role.value, hash_password(password), is_demo, now, now, now,
         email, set(ward_set)),
    ).one()["[applied]"]
    if not applied:
        raise UserExists(f"User {username} already exists.")
    detail = f"role={role.value}"
    if email or ward_set:
        detail += " " + contact_detail(email, ward_set)
    audit.record(session, actor, audit.USER_CREATED, "user", username, detail, via)
    log.info("user %s created (role %s) by %s", username, role.value, actor)
    return User(username, display_name, role, False, is_demo, now, now, email=email,
                wards=ward_set)


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
    sets: list[str] = []
    values: list[object] = []
    problems: list[str] = []
    if email is not KEEP:
        try:
            email = normalize_email(email, local_domains)
            sets.append("email = ?")
            values.append(email)
        except UserError as e:
            problems.append(str(e))
    if wards is not KEEP:
        try:
            ward_set = parse_wards(wards)
            sets.append("wards = ?")
            values.append(set(ward_set))
        except UserError as e:
            problems.append(str(e))
    if problems:
        raise UserError(" ".join(problems))
    if not sets:
        raise UserError("Nothing to change: give an e-mail address or wards.")
    applied = session.execute(
        _prep(session, f"UPDATE users SET {', '.join(sets)}, updated_ts = ?"
                       " WHERE username = ? IF EXISTS"),
        (*values, _now(), username),
    ).one()["[applied]"]
    if not applied:
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
    applied = session.execute(
        _prep(session,
              "UPDATE users SET disabled = ?, updated_ts = ? WHERE username = ? IF EXISTS"),
        (disabled, _now(), username),
    ).one()["[applied]"]
    if not applied:
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
    now = _now()
    applied = session.execute(
        _prep(session, "UPDATE users SET password_hash = ?, password_ts = ?, updated_ts = ?"
                       " WHERE username = ? IF EXISTS"),
        (hash_password(password), now, now, username),
    ).one()["[applied]"]
    if not applied:
        raise UserNotFound(f"No user {username}.")
    reset_failures(session, username)
    audit.record(session, actor, audit.USER_PASSWORD_SET, "user", username, "", via)


# --- sign-in throttling -----------------------------------------------------------------
def _lockout(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.web.lockout_minutes)


def recent_failures(
    session: Session, username: str, settings: Settings, now: datetime | None = None
) -> list[datetime]:
    """Failure times of the last two lockout windows (all a lock decision needs)."""
    since = _now(now) - 2 * _lockout(settings)
    rows = session.execute(
        _prep(session, "SELECT ts FROM login_failures WHERE username = ? AND ts > minTimeuuid(?)"),
        (username, since),
    )
    return [datetime_from_uuid1(r["ts"]).replace(tzinfo=UTC) for r in rows]


def record_failure(
    session: Session, username: str, settings: Settings, ip: str | None = None,
    now: datetime | None = None,
) -> None:
    ttl = max(1, int(2 * _lockout(settings).total_seconds()))
    session.execute(
        _prep(session,
              "INSERT INTO login_failures (username, ts, ip) VALUES (?, ?, ?) USING TTL ?"),
        (username, uuid_from_time(_now(now)), ip, ttl),
    )


def reset_failures(session: Session, username: str) -> None:
    session.execute(
        _prep(session, "DELETE FROM login_failures WHERE username = ?"),
        (normalize_username(username),),
    )


def locked_until(
    session: Session, username: str, settings: Settings, now: datetime | None = None
) -> datetime | None:
    """When the lock on ``username`` ends, or ``None`` when it may sign in now."""
    now = _now(now)
    until = lockout_until(
        recent_failures(session, username, settings, now),
        settings.web.max_failed_logins, _lockout(settings),
    )
    return until if until is not None and until > now else None


def authenticate(
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    *,
    ip: str | None = None,
    via: str = "web",
    now: datetime | None = None,
) -> LoginResult:
    """Check a sign-in attempt, apply throttling, and audit the outcome.

    Never tells the caller *which* of name and password was wrong: a missing user, a
    wrong password, a disabled account and a demo account outside demo mode are all
    ``INVALID``.
    """
    now = _now(now)
    typed = normalize_username(username)
    user = get_user(session, typed) if USERNAME_RE.match(typed) else None
    # A name that is no account is often a password typed into the wrong field: it is
    # never stored or logged, only a keyed digest of it (enough to throttle and to see
    # repeated attempts in the audit log).
    name = user.username if user else unknown_user_key(typed, settings)
    actor = name if user else "unknown"
    where = f"ip={ip}" if ip else ""
    until = locked_until(session, name, settings, now)
    if until is not None:
        audit.record(session, actor, audit.LOGIN_LOCKED, "user", name, where, via, now=now)
        log.info("sign-in refused for %s: locked", name)
        return LoginResult(LoginOutcome.LOCKED, locked_until=until)

    matches, new_hash = verify_password(user.password_hash if user else _DUMMY_HASH,
                                        password or "")
    if not (user and matches):
        record_failure(session, name, settings, ip, now)
        audit.record(session, actor, audit.LOGIN_FAILURE, "user", name, where, via, now=now)
        log.info("sign-in failed for %s", name)
        until = locked_until(session, name, settings, now)
        if until is not None:
            return LoginResult(LoginOutcome.LOCKED, locked_until=until)
        return LoginResult(LoginOutcome.INVALID)

    if user.disabled or (user.is_demo and not settings.demo_mode):
        reason = "disabled" if user.disabled else "demo account outside demo mode"
        audit.record(session, name, audit.LOGIN_FAILURE, "user", name,
                     f"{where} reason={reason}".strip(), via, now=now)
        log.info("sign-in refused for %s: %s", name, reason)
        return LoginResult(LoginOutcome.INVALID)

    if new_hash:
        session.execute(
            _prep(session, "UPDATE users SET password_hash = ? WHERE username = ?"),
            (new_hash, name),
        )
        log.info("password hash of %s upgraded to current argon2 parameters", name)
    reset_failures(session, name)
    audit.record(session, name, audit.LOGIN_SUCCESS, "user", name, where, via, now=now)
    log.info("sign-in: %s (%s)", name, user.role.value)
    return LoginResult(LoginOutcome.OK, user=user)


# --- web sessions -------------------------------------------------------------------------
def _idle_ttl(settings: Settings) -> int:
    return max(60, settings.web.idle_timeout_minutes * 60)


def start_session(
    session: Session, username: str, settings: Settings, ip: str | None = None,
    now: datetime | None = None,
) -> WebSession:
    """A new server-side session for ``username``, with a fresh random id."""
    ws = WebSession(secrets.token_urlsafe(32), normalize_username(username), _now(now),
                    _now(now), ip)
    session.execute(
        _prep(session, "INSERT INTO web_sessions (session_id, username, created_ts, last_seen_ts,"
                       " ip) VALUES (?, ?, ?, ?, ?) USING TTL ?"),
        (ws.session_id, ws.username, ws.created_ts, ws.last_seen_ts, ip, _idle_ttl(settings)),
    )
    return ws


def get_session(
    session: Session, session_id: str, settings: Settings, now: datetime | None = None
) -> WebSession | None:
    """The live session ``session_id``; ``None`` when unknown, ended or idle too long."""
    if not session_id or len(session_id) > 128:
        return None
    row = session.execute(
        _prep(session, "SELECT * FROM web_sessions WHERE session_id = ?"), (session_id,)
    ).one()
    if not row or not row.get("username") or row.get("last_seen_ts") is None:
        return None
    s = WebSession(session_id, row["username"], _utc(row["created_ts"]),
                   _utc(row["last_seen_ts"]), row.get("ip"))
    idle = timedelta(minutes=settings.web.idle_timeout_minutes)
    if _now(now) - s.last_seen_ts >= idle:
        return None
    return s


def touch_session(
    session: Session, web_session: WebSession, settings: Settings, now: datetime | None = None
) -> WebSession:
    """Record activity: moves ``last_seen_ts`` to now and renews the row's TTL."""
    now = _now(now)
    session.execute(
        _prep(session, "INSERT INTO web_sessions (session_id, username, created_ts, last_seen_ts,"
                       " ip) VALUES (?, ?, ?, ?, ?) USING TTL ?"),
        (web_session.session_id, web_session.username, web_session.created_ts, now,
         web_session.ip, _idle_ttl(settings)),
    )
    return WebSession(web_session.session_id, web_session.username, web_session.created_ts,
                      now, web_session.ip)


def end_session(session: Session, session_id: str) -> None:
    session.execute(
        _prep(session, "DELETE FROM web_sessions WHERE session_id = ?"), (session_id,)
    )


# --- demo ---------------------------------------------------------------------------------
def demo_email(username: str) -> str:
    """A demo user's address: at localhost, where the demo's mail catcher
    (``icu mail catcher``) receives everything the alert manager sends."""
    return f"{username}@localhost"


def ensure_demo_users(session: Session, settings: Settings) -> list[tuple[str, str, str]]:
    """Create or reset one demo user per role with a fresh random password and an
    address at localhost (:func:`demo_email`; every ward).

    Only in demo mode. Returns ``[(username, password, role), ...]`` so the command that
    starts the demo can print the logins; the passwords are stored nowhere else.
    """
    if not settings.demo_mode:
        raise RuntimeError("demo users exist only in demo mode (ICU_DEMO_MODE=true)")
    logins = []
    for username, display_name, role in DEMO_USERS:
        password = secrets.token_urlsafe(12)  # 16 characters, 72 bits
        now = _now()
        existing = get_user(session, username)
        if existing is None:
            create_user(session, username, password, role, display_name,
                        actor="system", via="demo", is_demo=True,
                        email=demo_email(username), local_domains=("localhost",))
        else:
            session.execute(
                _prep(session,
                      "UPDATE users SET password_hash = ?, role = ?, display_name = ?,"
                      " disabled = false, is_demo = true, password_ts = ?, updated_ts = ?,"
                      " email = ? WHERE username = ?"),
                (hash_password(password), role.value, display_name, now, now,
                 demo_email(username), username),
            )
            reset_failures(session, username)
            audit.record(session, "system", audit.DEMO_USERS_RESET, "user", username,
                         "new demo password", "demo")
        logins.append((username, password, role.value))
    log.info("demo users ready: %s", ", ".join(u for u, _, _ in logins))
    return logins

"""Users, passwords, sign-in throttling and web sessions, stored in Cassandra.

- Passwords are hashed with argon2id (``argon2.PasswordHasher`` with its defaults); a
  hash made with older parameters is replaced at the next successful sign-in.
- Sign-in attempts are counted server-side (``backend.throttle``, shared by every web
  process) per account, per client address and per known device, each slot reserved
  with a lightweight transaction before the password is checked, so concurrent guesses
  cannot exceed the limit. ``settings.web.max_failed_logins`` failures within
  ``lockout_minutes`` lock the account for that long - for browsers that have not
  signed in to it before: a known device (signed cookie) is counted on its own, so a
  lock somebody else caused cannot keep the owner out (see :func:`authenticate`).
  Attempts while locked are refused without checking the password. Names that do not
  exist are counted too, so a lock reveals nothing. An administrator can unlock.
- Web sessions are rows in ``web_sessions``: the browser holds only a random id; the
  server checks the last activity (idle timeout, per role) and the age (absolute
  lifetime, per role) and can end a session (logout).
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
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cassandra.cluster import Session
from cassandra.query import PreparedStatement
from email_validator import EmailNotValidError, validate_email

from backend import audit
from backend.auth_policy import ONE_WARD, Role
from backend.identifiers import identifier_problem
from backend.settings import Settings
from backend.throttle import Slot, Throttle

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MAX_DISPLAY_NAME = 100
# A ward name as admissions carry it (backend.admission.Admission.ward: 1-32 characters).
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
    role: str | None = None  # the user's role at sign-in: its session limits


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


def ward_role_problems(role: Role, wards: Collection[str]) -> list[str]:
    """A ward display is signed in for exactly one ward (``auth_policy.ONE_WARD``)."""
    if role in ONE_WARD and len(wards) != 1:
        return [f"Wards: a {role.label.lower()} account shows exactly one ward "
                f"(got {len(wards) or 'none'})."]
    return []


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
            current = get_user(session, username)
            if current is not None:
                problems += ward_role_problems(current.role, ward_set)
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

    Throttling (``backend.throttle``; each attempt reserves its slot atomically before
    the password is checked): a browser that signed in to this account before
    (``known_device``: the id from its signed device cookie) is counted on its own
    device counter only; any other attempt is counted on the client address's counter
    and on the account's. So failures from elsewhere lock the account for unknown
    browsers, but never keep its owner out of the browser they use.
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

    matches, new_hash = verify_password(user.password_hash if user else _DUMMY_HASH,
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
        session.execute(
            _prep(session, "UPDATE users SET password_hash = ? WHERE username = ?"),
            (new_hash, name),
        )
        log.info("password hash of %s upgraded to current argon2 parameters", name)
    audit.record(session, name, audit.LOGIN_SUCCESS, "user", name, where, via, now=now)
    log.info("sign-in: %s (%s)", name, user.role.value)
    return LoginResult(LoginOutcome.OK, user=user)


# --- web sessions -------------------------------------------------------------------------
def _ttl(settings: Settings, role: str | None, created: datetime, now: datetime) -> int:
    """Row TTL: the role's idle timeout, never beyond the absolute lifetime."""
    idle = settings.web.idle_minutes(role) * 60
    left = created + timedelta(hours=settings.web.max_hours(role)) - now
    return max(60, int(min(idle, left.total_seconds())))


def session_deadline(ws: WebSession, settings: Settings) -> datetime:
    """When ``ws`` ends if nothing happens: idle timeout or absolute lifetime, first."""
    idle = ws.last_seen_ts + timedelta(minutes=settings.web.idle_minutes(ws.role))
    return min(idle, ws.created_ts + timedelta(hours=settings.web.max_hours(ws.role)))


def start_session(
    session: Session, username: str, settings: Settings, ip: str | None = None,
    now: datetime | None = None, role: Role | str | None = None,
) -> WebSession:
    """A new server-side session for ``username``, with a fresh random id. ``role``
    decides its idle timeout and absolute lifetime."""
    now = _now(now)
    role_name = Role(role).value if role else None
    ws = WebSession(secrets.token_urlsafe(32), normalize_username(username), now, now, ip,
                    role_name)
    session.execute(
        _prep(session, "INSERT INTO web_sessions (session_id, username, created_ts, last_seen_ts,"
                       " ip, role) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"),
        (ws.session_id, ws.username, ws.created_ts, ws.last_seen_ts, ip, role_name,
         _ttl(settings, role_name, now, now)),
    )
    return ws


def session_end_reason(ws: WebSession, settings: Settings,
                       now: datetime | None = None) -> str | None:
    """Why ``ws`` is over at ``now`` ("idle timeout", "session lifetime"), else ``None``."""
    now = _now(now)
    if now - ws.created_ts >= timedelta(hours=settings.web.max_hours(ws.role)):
        return "session lifetime"
    if now - ws.last_seen_ts >= timedelta(minutes=settings.web.idle_minutes(ws.role)):
        return "idle timeout"
    return None


def get_session(
    session: Session, session_id: str, settings: Settings, now: datetime | None = None
) -> WebSession | None:
    """The live session ``session_id``; ``None`` when unknown, ended, idle too long or
    older than its role's absolute lifetime."""
    ws = load_session(session, session_id)
    if ws is None or session_end_reason(ws, settings, now) is not None:
        return None
    return ws


def load_session(session: Session, session_id: str) -> WebSession | None:
    """The stored session ``session_id`` as it is (no time limits applied)."""
    if not session_id or len(session_id) > 128:
        return None
    row = session.execute(
        _prep(session, "SELECT * FROM web_sessions WHERE session_id = ?"), (session_id,)
    ).one()
    if not row or not row.get("username") or row.get("last_seen_ts") is None:
        return None
    return WebSession(session_id, row["username"], _utc(row["created_ts"]),
                      _utc(row["last_seen_ts"]), row.get("ip"), row.get("role"))


def touch_session(
    session: Session, web_session: WebSession, settings: Settings, now: datetime | None = None
) -> WebSession:
    """Record activity: moves ``last_seen_ts`` to now and renews the row's TTL (never
    past the absolute lifetime)."""
    now = _now(now)
    ws = web_session
    session.execute(
        _prep(session, "INSERT INTO web_sessions (session_id, username, created_ts, last_seen_ts,"
                       " ip, role) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"),
        (ws.session_id, ws.username, ws.created_ts, now, ws.ip, ws.role,
         _ttl(settings, ws.role, ws.created_ts, now)),
    )
    return WebSession(ws.session_id, ws.username, ws.created_ts, now, ws.ip, ws.role)


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

"""``users``: accounts (name, role, password hash, e-mail, wards). Users are disabled,
never deleted (the audit log names them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cassandra.cluster import Session

from backend.auth_policy import Role
from backend.storage.statements import prepared

# Columns an account update may set (update_contact and friends).
_SETTABLE = frozenset({"email", "wards"})


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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


def _user(row: dict) -> User:
    return User(
        username=row["username"],
        display_name=row.get("display_name") or row["username"],
        role=Role(row["role"]),
        disabled=bool(row.get("disabled")),
        is_demo=bool(row.get("is_demo")),
        created_ts=utc(row.get("created_ts")),
        updated_ts=utc(row.get("updated_ts")),
        password_hash=row.get("password_hash") or "",
        email=row.get("email") or None,
        wards=frozenset(row.get("wards") or ()),
    )


class UserStore:
    """One per session: ``backend.storage.statements.store(UserStore, session)``.
    Conditional writes return whether they were applied (the user exists / did not)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        p = prepared
        self._get = p(session, "SELECT * FROM users WHERE username = ?")
        self._all = p(session, "SELECT username, display_name, role, disabled, is_demo,"
                      " created_ts, updated_ts, email, wards FROM users")
        self._insert = p(session,
            "INSERT INTO users (username, display_name, role, password_hash, disabled, is_demo,"
            " created_ts, updated_ts, password_ts, email, wards)"
            " VALUES (?, ?, ?, ?, false, ?, ?, ?, ?, ?, ?) IF NOT EXISTS")
        self._disabled = p(session,
            "UPDATE users SET disabled = ?, updated_ts = ? WHERE username = ? IF EXISTS")
        self._password = p(session,
            "UPDATE users SET password_hash = ?, password_ts = ?, updated_ts = ?"
            " WHERE username = ? IF EXISTS")
        self._rehash = p(session, "UPDATE users SET password_hash = ? WHERE username = ?")
        self._demo = p(session,
            "UPDATE users SET password_hash = ?, role = ?, display_name = ?,"
            " disabled = false, is_demo = true, password_ts = ?, updated_ts = ?,"
            " email = ? WHERE username = ?")

    def get(self, username: str) -> User | None:
        row = self.session.execute(self._get, (username,)).one()
        return _user(row) if row else None

    def all(self) -> list[User]:
        """Every user, by username (a full scan of a small table)."""
        return sorted((_user(r) for r in self.session.execute(self._all)),
                      key=lambda u: u.username)

    def insert(self, user: User, password_hash: str, now: datetime) -> bool:
        row = self.session.execute(self._insert, (
            user.username, user.display_name, user.role.value, password_hash, user.is_demo,
            now, now, now, user.email, set(user.wards))).one()
        return bool(row["[applied]"])

    def update(self, username: str, values: dict[str, object], now: datetime) -> bool:
        """Set ``values`` (columns ``email``, ``wards``) of an existing user."""
        unknown = set(values) - _SETTABLE
        if unknown or not values:
            raise ValueError(f"cannot set {sorted(unknown) or 'nothing'}")
        columns = sorted(values)
        stmt = prepared(self.session, "UPDATE users SET "
                        + ", ".join(f"{c} = ?" for c in columns)
                        + ", updated_ts = ? WHERE username = ? IF EXISTS")
        row = self.session.execute(stmt, (*[values[c] for c in columns], now, username)).one()
        return bool(row["[applied]"])

    def set_disabled(self, username: str, disabled: bool, now: datetime) -> bool:
        return bool(self.session.execute(self._disabled, (disabled, now, username)).one()[
            "[applied]"])

    def set_password_hash(self, username: str, password_hash: str, now: datetime) -> bool:
        row = self.session.execute(self._password, (password_hash, now, now, username)).one()
        return bool(row["[applied]"])

    def upgrade_hash(self, username: str, password_hash: str) -> None:
        """A hash of the same password made with today's parameters."""
        self.session.execute(self._rehash, (password_hash, username))

    def reset_demo(self, username: str, password_hash: str, role: Role, display_name: str,
                   email: str, now: datetime) -> None:
        self.session.execute(self._demo, (password_hash, role.value, display_name, now, now,
                                          email, username))

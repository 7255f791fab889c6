"""Users: accounts, passwords, sign-in and its throttling, web sessions.

- ``validation``: account fields as typed (names, passwords' rules, roles, e-mail, wards);
- ``passwords``: argon2id hashing;
- ``accounts``: the ``users`` table's operations, each audited;
- ``throttle``: sign-in attempt counters per account, address and known device;
- ``signin``: :func:`authenticate`, the password check under those counters;
- ``web_sessions``: server-side sessions with idle timeout and absolute lifetime;
- ``demo``: the demo's accounts;
- ``cli``: ``icu users``.

A user may have an e-mail address and the wards they cover (none: every ward); the alert
manager e-mails alerts to the users of the notified role covering the alert's ward
(``backend.alerting.recipients``). Every change and every sign-in is written to the
audit log (``backend.audit``). Functions take a Cassandra session bound to the platform
keyspace. The names below are the package's public interface.
"""

from backend.storage.users import User
from backend.users.accounts import (
    KEEP,
    create_user,
    disable_user,
    enable_user,
    get_user,
    list_users,
    set_password,
    unlock_user,
    update_contact,
)
from backend.users.demo import DEMO_USERS, demo_email, ensure_demo_users
from backend.users.passwords import hash_password, unknown_user_key, verify_password
from backend.users.signin import LoginOutcome, LoginResult, authenticate
from backend.users.throttle import (
    account_key,
    account_throttle,
    address_key,
    address_throttle,
    device_key,
    locked_until,
    reset_failures,
)
from backend.users.validation import (
    MAX_DISPLAY_NAME,
    MAX_PASSWORD_LENGTH,
    MAX_WARDS,
    MIN_PASSWORD_LENGTH,
    USERNAME_RE,
    WARD_RE,
    UserError,
    UserExists,
    UserNotFound,
    contact_detail,
    normalize_email,
    normalize_username,
    parse_role,
    parse_wards,
    password_problems,
    unknown_wards_note,
    username_problems,
    ward_role_problems,
)
from backend.users.web_sessions import (
    WebSession,
    end_session,
    get_session,
    load_session,
    session_deadline,
    session_end_reason,
    start_session,
    touch_session,
)

__all__ = [
    "DEMO_USERS", "KEEP", "MAX_DISPLAY_NAME", "MAX_PASSWORD_LENGTH", "MAX_WARDS",
    "MIN_PASSWORD_LENGTH", "USERNAME_RE", "WARD_RE", "LoginOutcome", "LoginResult", "User",
    "UserError", "UserExists", "UserNotFound", "WebSession", "account_key",
    "account_throttle", "address_key", "address_throttle", "authenticate", "contact_detail",
    "create_user", "demo_email", "device_key", "disable_user", "enable_user", "end_session",
    "ensure_demo_users", "get_session", "get_user", "hash_password", "list_users",
    "load_session", "locked_until", "normalize_email", "normalize_username", "parse_role",
    "parse_wards", "password_problems", "reset_failures", "session_deadline",
    "session_end_reason", "set_password", "start_session", "touch_session",
    "unknown_user_key", "unknown_wards_note", "unlock_user", "update_contact",
    "username_problems", "verify_password", "ward_role_problems",
]

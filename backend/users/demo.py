"""The demo's accounts: one per role, with fresh random passwords (demo mode only)."""

from __future__ import annotations

import logging
import secrets

from backend import audit
from backend.auth_policy import Role
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.statements import store
from backend.storage.users import UserStore
from backend.users.accounts import create_user, get_user, stored_now
from backend.users.passwords import hash_password
from backend.users.throttle import reset_failures

log = logging.getLogger(__name__)

DEMO_USERS: tuple[tuple[str, str, Role], ...] = (
    ("demo-nurse", "Demo Nurse", Role.NURSE),
    # a second nurse, so the charge nurse has somebody to assign and reassign alerts to
    ("demo-nurse-b", "Demo Nurse B", Role.NURSE),
    ("demo-charge", "Demo Charge Nurse", Role.CHARGE_NURSE),
    ("demo-physician", "Demo Physician", Role.PHYSICIAN),
    ("demo-admin", "Demo Administrator", Role.ADMIN),
)


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
        now = stored_now()
        existing = get_user(session, username)
        if existing is None:
            create_user(session, username, password, role, display_name,
                        actor="system", via="demo", is_demo=True,
                        email=demo_email(username), local_domains=("localhost",))
        else:
            store(UserStore, session).reset_demo(username, hash_password(password), role,
                                                 display_name, demo_email(username), now)
            reset_failures(session, username)
            audit.record(session, "system", audit.DEMO_USERS_RESET, "user", username,
                         "new demo password", "demo")
        logins.append((username, password, role.value))
    log.info("demo users ready: %s", ", ".join(u for u, _, _ in logins))
    return logins

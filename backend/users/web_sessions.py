"""Web sessions (``web_sessions``): the browser holds only a random id; the server checks
the last activity (idle timeout, per role) and the age (absolute lifetime, per role) and
can end a session (logout)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from backend.auth_policy import Role
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.statements import store
from backend.storage.web_sessions import WebSession, WebSessionStore
from backend.users.accounts import stored_now
from backend.users.validation import normalize_username

__all__ = ["WebSession", "end_session", "get_session", "load_session", "session_deadline",
           "session_end_reason", "start_session", "touch_session"]


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
    now = stored_now(now)
    role_name = Role(role).value if role else None
    ws = WebSession(secrets.token_urlsafe(32), normalize_username(username), now, now, ip,
                    role_name)
    store(WebSessionStore, session).put(ws, _ttl(settings, role_name, now, now))
    return ws


def session_end_reason(ws: WebSession, settings: Settings,
                       now: datetime | None = None) -> str | None:
    """Why ``ws`` is over at ``now`` ("idle timeout", "session lifetime"), else ``None``."""
    now = stored_now(now)
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
    return store(WebSessionStore, session).get(session_id)


def touch_session(
    session: Session, web_session: WebSession, settings: Settings, now: datetime | None = None
) -> WebSession:
    """Record activity: moves ``last_seen_ts`` to now and renews the row's TTL (never
    past the absolute lifetime)."""
    now = stored_now(now)
    ws = web_session
    touched = WebSession(ws.session_id, ws.username, ws.created_ts, now, ws.ip, ws.role)
    store(WebSessionStore, session).put(touched, _ttl(settings, ws.role, ws.created_ts, now))
    return touched


def end_session(session: Session, session_id: str) -> None:
    store(WebSessionStore, session).delete(session_id)

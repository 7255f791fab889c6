"""The sign-in page's address: where an unauthenticated request is sent (the request hook
in ``webapp/security.py``) and where the sign-in form returns to (``webapp/auth.py``)."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a path on this site (no open redirect), else ``None``."""
    if not value or len(value) > 2000 or "\\" in value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//"):
        return None
    if parts.path in (LOGIN_PATH, LOGOUT_PATH):
        return None
    return value


def login_url(next_path: str | None = None, *, expired: bool = False,
              logged_out: bool = False) -> str:
    query: dict[str, str] = {}
    nxt = safe_next(next_path)
    if nxt and nxt != "/":
        query["next"] = nxt
    if expired:
        query["expired"] = "1"
    if logged_out:
        query["logged_out"] = "1"
    return LOGIN_PATH + ("?" + urlencode(query) if query else "")

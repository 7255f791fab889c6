"""Signing in and out (flask-login on a plain, server-rendered Flask form).

The browser's signed session cookie holds only the id of a server-side session
(``web_sessions`` in Cassandra) and the CSRF secret. Each request loads the session and
the user from Cassandra, so an idle timeout, a sign-out, or disabling the user take effect
at once in every web process.

- Session fixation: signing in clears the old cookie session and creates a new random
  server-side session id; flask-login's "strong" protection drops a session used from a
  different address or browser.
- The login form is CSRF-protected like every other POST (Flask-WTF).
- Errors never say which of username and password was wrong.
- Known devices: a successful sign-in leaves a signed cookie (``icu_device``, HMAC-SHA-256,
  bound to the username, only sent to ``/login``) naming this browser as a device of that
  account. Sign-ins from it are throttled on their own counter, so a lock caused by
  failures elsewhere does not keep the account's owner out of the browser they use
  (``backend.users.authenticate``).
- The client address recorded in the audit log is the socket peer's, or - behind
  ``settings.web.trusted_proxies`` reverse proxies - the one they forwarded (werkzeug
  ``ProxyFix``, installed by ``webapp.app``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets

import flask
from flask import Blueprint, Response, g, request
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from backend import audit
from backend.auth_policy import Role, home_path
from backend.users import (
    LoginOutcome,
    User,
    WebSession,
    authenticate,
    end_session,
    get_user,
    load_session,
    normalize_username,
    session_end_reason,
    start_session,
)
from webapp.documents import login_page
from webapp.security import IDLE_COOKIE, PUBLIC, SHELL, WebContext, route
from webapp.signin_urls import LOGIN_PATH, LOGOUT_PATH, login_url, safe_next

log = logging.getLogger(__name__)

MSG_INVALID = "Sign-in failed: the username or password is incorrect, or the account is disabled."
MSG_LOCKED = ("Too many failed sign-ins: sign-in is locked for up to {minutes} minutes "
              "here. Sign in from a computer you used before, try again later, or ask an "
              "administrator to unlock your account (Admin page).")
MSG_EXPIRED = ("Your session has ended (no activity for a while, or the longest session "
               "allowed for your role). Please sign in again.")
MSG_LOGGED_OUT = "You have signed out."
MSG_CSRF = "The sign-in form had expired. Please try again."


class WebUser(UserMixin):
    """The signed-in user of this request. ``get_id`` is the server-side session id."""

    def __init__(self, user: User, web_session: WebSession) -> None:
        self.user = user
        self.web_session = web_session

    def get_id(self) -> str:
        return self.web_session.session_id

    @property
    def username(self) -> str:
        return self.user.username

    @property
    def display_name(self) -> str:
        return self.user.display_name

    @property
    def role(self) -> Role:
        return self.user.role


DEVICE_COOKIE = "icu_device"
MAX_KNOWN_ACCOUNTS = 8  # accounts remembered per browser (a shared ward workstation)
_DEVICE_SALT = "icu-known-device"


def _client_ip() -> str | None:
    # The peer, or behind settings.web.trusted_proxies the forwarded client (ProxyFix).
    return request.remote_addr


class KnownDevices:
    """The signed ``icu_device`` cookie: ``{username: device id}`` of the accounts that
    signed in from this browser. HMAC-SHA-256 with the app's secret key; expires after
    ``known_device_days``."""

    def __init__(self, secret: str, max_age_days: int) -> None:
        self.max_age = max_age_days * 86_400
        self._s = URLSafeTimedSerializer(
            secret, salt=_DEVICE_SALT,
            signer_kwargs={"digest_method": hashlib.sha256, "key_derivation": "hmac"})

    def read(self, cookie: str | None) -> dict[str, str]:
        if not cookie or len(cookie) > 4000:
            return {}
        try:
            data = self._s.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items()
                if isinstance(k, str) and isinstance(v, str)}

    def add(self, devices: dict[str, str], username: str) -> tuple[dict[str, str], str]:
        """``devices`` with ``username`` (kept or given a new device id) most recent."""
        device = devices.get(username) or secrets.token_urlsafe(16)
        rest = [(u, d) for u, d in devices.items() if u != username]
        kept = dict([*rest[-(MAX_KNOWN_ACCOUNTS - 1):], (username, device)])
        return kept, self._s.dumps(kept)


def _login_page(*, error: str | None = None, info: str | None = None, status: int = 200,
                username: str = "") -> Response:
    from flask_wtf.csrf import generate_csrf

    html = login_page(csrf_token=generate_csrf(), error=error, info=info,
                      next_path=safe_next(request.values.get("next")) or "",
                      username=username)
    return Response(html, status=status, mimetype="text/html")


def init_auth(server: flask.Flask, ctx: WebContext) -> LoginManager:
    settings = ctx.settings
    manager = LoginManager()
    manager.session_protection = "strong"
    manager.login_view = "auth.login"
    manager.init_app(server)

    devices = KnownDevices(server.config["SECRET_KEY"], settings.web.known_device_days)

    @manager.user_loader
    def load_user(session_id: str) -> WebUser | None:
        ws = load_session(ctx.db, session_id)
        if ws is None:
            g.icu_session_end = "idle timeout or signed out"
            return None
        reason = session_end_reason(ws, settings)
        if reason is not None:
            g.icu_session_end = reason
            end_session(ctx.db, session_id)
            return None
        user = get_user(ctx.db, ws.username)
        if user is None or user.disabled or (user.is_demo and not settings.demo_mode):
            g.icu_session_end = "account disabled"
            end_session(ctx.db, session_id)
            return None
        if ws.role is not None and ws.role != user.role.value:
            g.icu_session_end = "role changed"
            end_session(ctx.db, session_id)
            return None
        return WebUser(user, ws)

    bp = Blueprint("auth", __name__)

    @bp.route(LOGIN_PATH, methods=["GET", "POST"])
    @route(PUBLIC)
    def login() -> Response:
        if request.method == "GET":
            if current_user.is_authenticated:
                return flask.redirect(safe_next(request.args.get("next"))
                                      or home_path(current_user.role) or "/")
            info = None
            if request.args.get("expired"):
                info = MSG_EXPIRED
            elif request.args.get("logged_out"):
                info = MSG_LOGGED_OUT
            return _login_page(info=info)

        username = request.form.get("username", "")[:200]
        password = request.form.get("password", "")[:2000]
        known = devices.read(request.cookies.get(DEVICE_COOKIE))
        result = authenticate(ctx.db, settings, username, password, ip=_client_ip(),
                              via="web", known_device=known.get(normalize_username(username)))
        if result.outcome is LoginOutcome.LOCKED:
            resp = _login_page(error=MSG_LOCKED.format(minutes=settings.web.lockout_minutes),
                               status=429, username=username)
            resp.headers["Retry-After"] = str(settings.web.lockout_minutes * 60)
            return resp
        if not result.ok or result.user is None:
            return _login_page(error=MSG_INVALID, status=401, username=username)

        user = result.user
        flask.session.clear()  # session fixation: nothing from before the sign-in survives
        ws = start_session(ctx.db, user.username, settings, ip=_client_ip(), role=user.role)
        login_user(WebUser(user, ws), remember=False, fresh=True)
        flask.session["icu_user"] = user.username
        g.icu_activity = True
        target = safe_next(request.form.get("next")) or home_path(user.role) or "/"
        resp = flask.redirect(target)
        _, cookie = devices.add(known, user.username)
        resp.set_cookie(DEVICE_COOKIE, cookie, max_age=settings.web.known_device_days * 86_400,
                        secure=settings.web.secure_cookies, httponly=True, samesite="Strict",
                        path=LOGIN_PATH)
        return resp

    @bp.route(LOGOUT_PATH, methods=["POST"])
    @route(SHELL)
    def logout() -> Response:
        username = current_user.username
        end_session(ctx.db, current_user.get_id())
        audit.record(ctx.db, username, audit.LOGOUT, "user", username, "", "web")
        log.info("sign-out: %s", username)
        logout_user()
        flask.session.clear()
        resp = flask.redirect(login_url(logged_out=True))
        resp.delete_cookie(IDLE_COOKIE)
        return resp

    server.register_blueprint(bp)

    @server.errorhandler(CSRFError)
    def _csrf_error(err: CSRFError) -> Response:
        log.info("CSRF check failed on %s %s: %s", request.method, request.path, err.description)
        if request.endpoint == "auth.login":
            return _login_page(error=MSG_CSRF, status=400)
        return Response('{"error": "CSRF token missing or invalid"}', status=400,
                        mimetype="application/json")

    return manager

"""Server-side authorisation of every request the web app answers.

One ``before_request`` hook (:func:`install`) decides every request *before* Dash or any
view runs, from the policy table in ``backend.auth_policy``:

========================================  ===============================================
request                                   rule
========================================  ===============================================
static assets, JS bundles, favicon,       public
``/login``
page routes (GET ``/``, ``/<path>``)      signed in, and the role may open the page the
                                          path belongs to (``page_for_path``)
``POST /_dash-update-component``          signed in, and the role holds the permission the
                                          callback was tagged with; untagged or unknown
                                          callbacks are denied. The Dash Pages router is
                                          checked against the page of the requested path
``/_dash-layout``, ``/_dash-dependencies``  signed in
any other Flask route                     signed in, and the role holds the permission the
                                          view was tagged with (:func:`route`); untagged
                                          routes are denied
========================================  ===============================================

Not signed in: ``401`` (JSON) for API requests, a redirect to the login page for pages.
Wrong role: ``403`` and an ``access.denied`` audit event. The event records the page
path, or for other routes the route's pattern (``/alerts/ack/<token>``), never the
values in it: a route may carry a secret.

JSON request bodies are parsed strictly before anything else reads them
(``backend.strictjson``: a duplicate key, ``NaN`` or a huge number is a 400) and may not
exceed ``settings.web.max_request_bytes`` (413).

Every response carries ``Content-Security-Policy`` (scripts from this origin and the
hashes of Dash's inline scripts only; see :func:`content_security_policy`), and once
the public URL is https ``Strict-Transport-Security``.

Pages register callbacks with :func:`secure_callback`::

    from webapp.security import secure_callback

    @secure_callback("patient.write", Output("note-msg", "children"),
                     Input("note-save", "n_clicks"), prevent_initial_call=True)
    def save_note(n): ...

and pages themselves with :func:`register_page` (path and title come from the policy).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import dash
import flask
from flask import Response, current_app, g, request
from flask_login import current_user

from backend import audit
from backend.auth_policy import (
    POLICY,
    SCREEN_KEEPS_SESSION,
    Role,
    allowed,
    home_path,
    permission,
)
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.strictjson import JsonError
from backend.strictjson import loads as strict_loads
from webapp.documents import forbidden_page
from webapp.signin_urls import login_url

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

PERMISSION_ATTR = "__icu_permission__"
PUBLIC = "public"  # pseudo-permission of routes anybody may fetch
SHELL = "shell"  # any signed-in user
DENY = "deny"  # pseudo-permission nobody holds
ROUTER_OUTPUT = "_pages_content.children"  # the Dash Pages router callback's output
PAGES_LOCATION = "_pages_location"
IDLE_COOKIE = "icu_idle_expires"  # UX hint for the browser; the server decides
CSRF_COOKIE = "_csrf_token"  # read by the Dash renderer, sent back as X-CSRFToken
TOUCH_EVERY_SECONDS = 10.0  # write last activity at most this often per session
SESSION_ENDED = "icu_session_ended"  # session key: it ended, no page has said so yet


class UntaggedCallbackError(RuntimeError):
    pass


@dataclass
class WebContext:
    settings: Settings
    db: Session
    router_callback: str | None = None
    csp: str = ""  # the Content-Security-Policy header (webapp.app sets it)


# --- what pages and views use -----------------------------------------------------------
def context(app: flask.Flask | None = None) -> WebContext:
    return (app or current_app).extensions["icu"]


def current_db() -> Session:
    """The Cassandra session of this app (bound to the platform keyspace)."""
    return context().db


def current_settings() -> Settings:
    return context().settings


def current_username() -> str:
    return current_user.username if current_user.is_authenticated else "-"


def current_role() -> Role | None:
    return current_user.role if current_user.is_authenticated else None


def tag(func: F, permission_key: str) -> F:
    """Mark a callback function or Flask view with the permission it needs."""
    permission(permission_key)  # unknown keys fail at import time, not at request time
    setattr(func, PERMISSION_ATTR, permission_key)
    return func


def secure_callback(permission_key: str, *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """``dash.callback`` for a page, restricted to the roles holding ``permission_key``.

    Arguments after the permission are those of ``dash.callback``. The tag travels with
    the function into the app's ``callback_map`` (``functools.wraps`` copies it), where
    the request hook looks it up by the callback's output id.
    """

    def decorate(func: F) -> F:
        tag(func, permission_key)
        return dash.callback(*args, **kwargs)(func)

    return decorate


def route(permission_key: str) -> Callable[[F], F]:
    """Tag a plain Flask view: ``@server.route(...)`` then ``@route("admin.audit")``.
    ``route(PUBLIC)`` makes a view public."""

    def decorate(func: F) -> F:
        if permission_key != PUBLIC:
            permission(permission_key)
        setattr(func, PERMISSION_ATTR, permission_key)
        return func

    return decorate


def register_page(module: str, permission_key: str, **kwargs: Any) -> None:
    """``dash.register_page`` with path, template and title taken from the policy."""
    p = permission(permission_key)
    if p.page is None:
        raise ValueError(f"{permission_key} is not a page")
    opts = {"path": p.page.path, "title": f"{p.page.title} - ICU Monitor", "name": p.page.title,
            "order": p.page.order, "permission": permission_key}
    if p.page.path_template:
        opts["path_template"] = p.page.path_template
    dash.register_page(module, **{**opts, **kwargs})


def callback_permission(app: dash.Dash, output_id: str) -> str | None:
    """The permission a POST for callback ``output_id`` needs; ``None``: deny."""
    cb = app.callback_map.get(output_id)
    if not cb or "callback" not in cb:
        return None
    return getattr(cb["callback"], PERMISSION_ATTR, None)


def server_callbacks(app: dash.Dash) -> dict[str, str | None]:
    """Every server-side callback of ``app``: output id -> permission (``None`` if
    untagged). Clientside callbacks never reach the server and are left out."""
    return {
        out: getattr(cb["callback"], PERMISSION_ATTR, None)
        for out, cb in app.callback_map.items()
        if "callback" in cb
    }


# --- responses ------------------------------------------------------------------------------
def _json(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}), status=status,
                    mimetype="application/json")


# A Flask view with this attribute set answers browsers with HTML pages (e.g. the e-mail
# acknowledgement link): not signed in -> the sign-in page and back, wrong role -> 403 page.
HTML_ROUTE_ATTR = "__icu_html_route__"


def _wants_page() -> bool:
    if request.method != "GET":
        return False
    if request.endpoint in {"/", "/<path:path>"}:
        return True
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, HTML_ROUTE_ATTR, False))


def _login_redirect(expired: bool) -> Response:
    return flask.redirect(login_url(next_path=request.full_path.rstrip("?"), expired=expired))


def _unauthenticated(expired: bool = False) -> Response:
    if _wants_page():
        return _login_redirect(expired)
    return _json(401, "session expired" if expired else "authentication required")


def recorded_path() -> str:
    """The request's path as logs and the audit trail may keep it: a page's path (its
    id is what an access review needs), or a route's pattern without the values."""
    if request.endpoint in {"/", "/<path:path>"} or request.url_rule is None:
        return request.path[:300]
    return request.url_rule.rule


def _deny(target_type: str, target_id: str, detail: str) -> Response:
    ctx = context()
    user = current_username()
    path = recorded_path()
    log.warning("access denied: user=%s role=%s %s %s (%s)", user,
                current_role() and current_role().value, request.method, path, target_id)
    try:
        audit.record(ctx.db, user, audit.ACCESS_DENIED, target_type, target_id,
                     f"{request.method} {path} {detail}".strip(), "web")
    except Exception:  # the denial stands even when the audit write fails
        log.exception("could not audit an access denial")
    if _wants_page():
        return Response(forbidden_page(current_user), status=403, mimetype="text/html")
    return _json(403, "forbidden")


# --- the request hook -----------------------------------------------------------------------
def _dash_infrastructure(app: dash.Dash) -> dict[str, str]:
    """Permissions of the routes Dash registers itself, by endpoint name."""
    prefix = app.config.routes_pathname_prefix
    bp_prefix = prefix.replace("/", "_").replace(".", "_")
    return {
        f"{bp_prefix}dash_assets.static": PUBLIC,
        "static": PUBLIC,
        f"{prefix}_dash-component-suites/<string:package_name>/<path:fingerprinted_path>": PUBLIC,
        f"{prefix}_favicon.ico": PUBLIC,
        f"{prefix}_dash-layout": SHELL,
        f"{prefix}_dash-dependencies": SHELL,
        f"{prefix}_reload-hash": SHELL,
    }


def _body_matches_declaration(cb: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Do the inputs and states of a callback request line up with what the callback
    declared? Dash passes them to the function by position, so a request that reorders
    or renames them could make the server read a different value than was checked."""
    for key, declared in (("inputs", cb.get("inputs") or []), ("state", cb.get("state") or [])):
        sent = body.get(key) or []
        if not isinstance(sent, list) or len(sent) != len(declared):
            return False
        for d, item in zip(declared, sent, strict=True):
            pattern = _pattern(d.get("id"))
            if pattern is not None:  # pattern-matching: the matching components
                items = item if isinstance(item, list) else [item]
                if not all(_matches_pattern(pattern, d.get("property"), i) for i in items):
                    return False
                continue
            if not isinstance(item, dict) or item.get("id") != d.get("id") \
                    or item.get("property") != d.get("property"):
                return False
    return True


def _pattern(ident: Any) -> dict | None:
    """The pattern of a pattern-matching id, ``None`` for a plain one. Dash keeps them
    in the callback map as JSON text (``'{"alert":["ALL"],"type":"ward-ack"}'``)."""
    if isinstance(ident, dict):
        return ident
    if isinstance(ident, str) and ident.startswith("{"):
        try:
            value = json.loads(ident)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def _matches_pattern(pattern: Mapping[str, Any], prop: Any, item: Any) -> bool:
    """Is ``item`` (one entry of a request) a component the pattern selects? Wildcard
    values (``["ALL"]``, ``["MATCH"]``, ``["ALLSMALLER"]``) match any value."""
    if not isinstance(item, dict) or item.get("property") != prop:
        return False
    ident = item.get("id")
    if not isinstance(ident, dict) or set(ident) != set(pattern):
        return False
    return all(isinstance(v, list) or ident[k] == v for k, v in pattern.items())


def page_permission(app: dash.Dash, pathname: str) -> str | None:
    """The permission of the page Dash Pages would render for ``pathname``, resolved
    exactly as the router resolves it (so ``//admin`` or ``/admin/`` are the admin page).

    ``None``: no page matches (Dash shows its 404 content; any signed-in user).
    ``DENY``: a page without a permission, or a path the router cannot handle.
    """
    from dash._pages import _path_to_page  # the router's own matcher

    try:
        page, _ = _path_to_page(app.strip_relative_path(pathname))
    except Exception:
        return DENY
    if not page:
        return None
    return page.get("permission") or DENY


def _router_pathname(cb: Mapping[str, Any], body: Mapping[str, Any]) -> str:
    """The pathname the Pages router will render (the value Dash will pass it)."""
    for i, d in enumerate(cb.get("inputs") or []):
        if d.get("id") == PAGES_LOCATION and d.get("property") == "pathname":
            value = body["inputs"][i].get("value")
            return value if isinstance(value, str) and value else "/"
    return "/"


def _timer_only(body: Mapping[str, Any]) -> bool:
    """A callback fired only by a ``dcc.Interval`` is not user activity."""
    changed = body.get("changedPropIds") or []
    return bool(changed) and all(str(c).endswith(".n_intervals") for c in changed)


def _strict_body() -> Response | None:
    """Refuse a JSON body that is not strictly JSON (before Dash or a view reads it).
    Reading it enforces the size limit (Flask answers 413)."""
    if not request.is_json:
        return None
    data = request.get_data(cache=True)
    if not data:  # Dash's renderer sends GETs (layout, dependencies) with a JSON type
        return None
    try:
        strict_loads(data, max_depth=200)
    except JsonError as exc:
        return _json(400, f"bad request body: {exc}")
    return None


def _authorise(app: dash.Dash, rules: Mapping[str, str]) -> Response | None:
    endpoint = request.endpoint
    if endpoint is None:
        return None  # no such route: Flask answers 404/405
    bad = _strict_body()
    if bad is not None:
        return bad
    rule = rules.get(endpoint)
    if rule is None:
        view = current_app.view_functions.get(endpoint)
        rule = getattr(view, PERMISSION_ATTR, None)
    if rule == PUBLIC:
        return None

    if not current_user.is_authenticated:
        # A session that was signed in but is no longer valid: idle timeout, ended
        # elsewhere, or the user was disabled (the reason comes from the user loader).
        expired = "icu_user" in flask.session
        if expired:
            user = str(flask.session["icu_user"])
            try:
                audit.record(context().db, user, audit.SESSION_EXPIRED, "user", user,
                             g.get("icu_session_end", "session ended"), "web")
            except Exception:
                log.exception("could not audit a session expiry")
            flask.session.clear()
            if not _wants_page():
                # Noticed by a background request (a screen's 1 s update): the page
                # reload that follows must still say why the user has to sign in again.
                flask.session[SESSION_ENDED] = True
        elif _wants_page() and flask.session.pop(SESSION_ENDED, False):
            expired = True
        return _unauthenticated(expired)
    role = current_user.role
    g.icu_activity = True

    if endpoint in {"/", "/<path:path>"}:
        if request.path == "/":
            home = home_path(role)
            return flask.redirect(home) if home else None
        key = page_permission(app, request.path)
        if key is not None and not allowed(role, key):
            return _deny("page", key, "")
        return None

    if endpoint == "/_dash-update-component":
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("output"), str):
            return _json(400, "bad callback request")
        output = body["output"]
        g.icu_activity = not _timer_only(body) or role in SCREEN_KEEPS_SESSION
        needed = callback_permission(app, output)
        if needed is None:
            return _deny("callback", output[:200], "untagged or unknown callback")
        if not allowed(role, needed):
            return _deny("callback", needed, output[:200])
        cb = app.callback_map[output]
        if not _body_matches_declaration(cb, body):
            return _json(400, "callback request does not match the callback")
        if output == context().router_callback:
            key = page_permission(app, _router_pathname(cb, body))
            if key is not None and not allowed(role, key):
                return _deny("page", key, "via router")
        return None

    if rule is None:
        return _deny("route", endpoint[:200], "untagged route")
    if not allowed(role, rule):
        return _deny("route", rule, endpoint[:200])
    return None


def install(app: dash.Dash, ctx: WebContext) -> None:
    """Register the authorisation hook and the response hardening on ``app.server``.

    Must run after Dash registered its own hooks (so the callback map is complete) and
    before ``CSRFProtect`` (so an anonymous request gets 401, not a CSRF error).
    """
    server = app.server
    rules = _dash_infrastructure(app)

    @server.before_request
    def _icu_authorise() -> Response | None:
        return _authorise(app, rules)

    @server.after_request
    def _icu_harden(response: Response) -> Response:
        from flask_wtf.csrf import generate_csrf

        ctx = context()
        settings = ctx.settings
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if ctx.csp:
            response.headers.setdefault("Content-Security-Policy", ctx.csp)
        if settings.web.public_url.startswith("https://") or request.is_secure:
            response.headers.setdefault(
                "Strict-Transport-Security",
                f"max-age={settings.web.hsts_seconds}; includeSubDomains")
        if rules.get(request.endpoint or "") == PUBLIC:  # static files: no cookies
            return response
        response.headers["Cache-Control"] = "no-store"
        secure = settings.web.secure_cookies
        response.set_cookie(CSRF_COOKIE, generate_csrf(), secure=secure, httponly=False,
                            samesite="Lax")
        if current_user.is_authenticated and g.get("icu_activity"):
            from backend.users import session_deadline

            _touch(ctx, settings)
            expires = int(session_deadline(current_user.web_session, settings).timestamp())
            response.set_cookie(IDLE_COOKIE, str(expires), secure=secure, httponly=False,
                                samesite="Lax")
        return response


def content_security_policy(app: dash.Dash, extra_script_hashes: list[str]) -> str:
    """The policy every response carries. Scripts: this origin and the sha256 of each
    inline script Dash writes (its renderer start and the clientside callbacks, so
    ``app.csp_hashes()`` is taken once every callback is registered) plus our own.
    Styles may be inline (Plotly writes ``<style>`` elements and style attributes);
    images from this origin, data: and blob: URLs (Plotly's images and downloads);
    everything else - connections, fonts, the offline map's shapes - from this origin."""
    scripts = " ".join(["'self'", *app.csp_hashes(), *extra_script_hashes])
    return "; ".join([
        "default-src 'self'",
        f"script-src {scripts}",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _touch(ctx: WebContext, settings: Settings) -> None:
    from backend.users import touch_session

    ws = current_user.web_session
    if time.time() - ws.last_seen_ts.timestamp() >= TOUCH_EVERY_SECONDS:
        current_user.web_session = touch_session(ctx.db, ws, settings)


def check_callbacks(app: dash.Dash) -> None:
    """Refuse to start with a server-side callback that carries no permission."""
    untagged = sorted(k for k, v in server_callbacks(app).items() if v is None)
    if untagged:
        raise UntaggedCallbackError(
            "callbacks without a permission (register them with "
            "webapp.security.secure_callback): " + ", ".join(untagged)
        )
    unknown = sorted(v for v in server_callbacks(app).values() if v not in POLICY)
    if unknown:
        raise UntaggedCallbackError(f"callbacks tagged with unknown permissions: {unknown}")

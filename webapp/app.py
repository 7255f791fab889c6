"""The Dash app factory: ``create_app(settings) -> Dash``.

Order matters and is fixed here:

0. outside demo mode, refuse to start without Secure cookies and an https public URL
   (:func:`check_transport`);
1. a Flask server with hardened cookie settings, the secret key, the request size
   limit and - behind ``trusted_proxies`` reverse proxies - werkzeug's ``ProxyFix``;
2. Dash with Dash Pages (``webapp/pages``), the shell layout and its clientside callbacks;
3. one warm-up request so Dash moves every page's ``dash.callback`` into this app and
   registers the Pages router - then every server-side callback must carry a permission
   (``webapp.security.check_callbacks``), or the app refuses to start;
4. flask-login and the sign-in routes (``webapp.auth``);
5. the authorisation hook (``webapp.security.install``), then Flask-WTF ``CSRFProtect``,
   so an anonymous request is answered 401 before any CSRF check;
6. the live state of the ward screens (``webapp.live.live_state``): created with these
   settings before Dash imports the pages (the ward page registers its callbacks on it)
   and started last - one per process, whatever number of screens it serves.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dash
import flask
from flask_wtf.csrf import CSRFProtect

from backend.settings import REPO_ROOT, Settings
from backend.storage.cassandra import Session
from webapp import auth, documents, layout, security

log = logging.getLogger(__name__)

PAGES_DIR = Path(__file__).with_name("pages")
ASSETS_DIR = REPO_ROOT / "assets"
MIN_SECRET_LENGTH = 32


class ConfigurationError(RuntimeError):
    pass


def secret_key(settings: Settings) -> str:
    """The session-signing key. Production: ``ICU_SECRET_KEY`` (at least 32 characters).
    Demo mode without one: a random key for this process only (``icu demo`` passes one
    key to all its processes through the environment)."""
    key = settings.secret_key.get_secret_value()
    if not key:
        if not settings.demo_mode:
            raise ConfigurationError(
                "ICU_SECRET_KEY is empty: refusing to start the web app without a secret "
                "key (generate one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))')"
            )
        log.warning("demo mode without ICU_SECRET_KEY: using a random key for this process; "
                    "sessions end on restart and are not shared with other processes")
        return secrets.token_urlsafe(48)
    if len(key) < MIN_SECRET_LENGTH and not settings.demo_mode:
        raise ConfigurationError(f"ICU_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters")
    return key


def _loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_transport(settings: Settings) -> None:
    """Outside demo mode: Kafka and Cassandra with credentials and TLS
    (``backend.clients.require_secure_services``), cookies ``Secure`` and the public
    URL https, so no session, password or patient data crosses a network in clear text.
    The one exception, ``web.allow_insecure_http``, is for a developer's machine and the
    tests: it is refused unless the app listens on, and is reached at, a loopback address
    only."""
    from backend.clients import ClientConfigError, require_secure_services

    try:
        require_secure_services(settings, "the web app")
    except ClientConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    web = settings.web
    if settings.demo_mode:
        return
    public = urlsplit(web.public_url)
    if web.allow_insecure_http:
        if not (_loopback(web.host) and _loopback(public.hostname)):
            raise ConfigurationError(
                "ICU_WEB__ALLOW_INSECURE_HTTP is only for loopback (127.0.0.1): it cannot "
                f"be used with host {web.host!r} and public URL {web.public_url!r}")
        log.warning("INSECURE: plain http on loopback (ICU_WEB__ALLOW_INSECURE_HTTP); "
                    "never use this for a deployment")
        return
    problems = []
    if not web.secure_cookies:
        problems.append("cookies must be Secure (ICU_WEB__SECURE_COOKIES=true)")
    if public.scheme != "https" or not public.hostname:
        problems.append(f"the public URL must be https (ICU_WEB__PUBLIC_URL is "
                        f"{web.public_url!r})")
    if problems:
        raise ConfigurationError(
            "refusing to start outside demo mode: " + "; ".join(problems)
            + ". Serve the app behind a TLS-terminating reverse proxy (and set "
            "ICU_WEB__TRUSTED_PROXIES), or use ICU_DEMO_MODE=true on a demo machine.")


def _server(settings: Settings) -> flask.Flask:
    # Paths given explicitly: under some editable installs ``webapp`` imports as a
    # namespace package, from which Flask cannot infer them (no instance folder is used).
    here = Path(__file__).parent
    server = flask.Flask("webapp", root_path=str(here), instance_path=str(here / "instance"))
    server.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_NAME="icu_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.web.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.web.secure_cookies,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # The CSRF token lives as long as the (idle-limited) session; Dash re-reads it
        # from the cookie the server refreshes on every response.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=settings.web.secure_cookies,
        # callback bodies carry page state; larger requests are answered 413
        MAX_CONTENT_LENGTH=settings.web.max_request_bytes,
        MAX_FORM_MEMORY_SIZE=settings.web.max_request_bytes,
    )
    n = settings.web.trusted_proxies
    if n:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Trust exactly the n proxies in front: the client address is the n-th from the
        # right of X-Forwarded-For, so a client cannot forge it by sending the header.
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n, x_host=n,  # type: ignore[method-assign]
                                   x_port=n, x_prefix=0)
    return server


def create_app(settings: Settings, db: Session | None = None, *,
               start_live: bool = True) -> dash.Dash:
    """The web app. ``db`` is a Cassandra session bound to the keyspace (connected from
    ``settings`` when omitted); the schema must exist (``icu db migrate``).
    ``start_live=False`` leaves the live follower stopped (tests that only inspect the
    app)."""
    check_transport(settings)
    if db is None:
        from backend.storage.cassandra import connect

        db = connect(settings.cassandra, wait_seconds=30)
    from webapp.live import live_state

    live_state(settings, start=False)  # before the pages import it
    server = _server(settings)
    ctx = security.WebContext(settings=settings, db=db)
    server.extensions["icu"] = ctx

    app = dash.Dash(
        __name__,  # a module with a file (see above); page modules are named "pages.<x>"
        server=server,
        use_pages=True,
        pages_folder=str(PAGES_DIR),
        assets_folder=str(ASSETS_DIR),
        title=documents.APP_NAME,
        update_title=None,
        suppress_callback_exceptions=True,
        serve_locally=True,
        compress=False,
    )
    app.layout = layout.shell
    layout.register_shell_callbacks(app)
    auth.init_auth(server, ctx)
    from webapp.email_ack import init_email_ack  # acknowledge from an e-mail link

    init_email_ack(server, ctx)

    # Warm-up: run Dash's first-request setup now (callbacks, Pages router) so the
    # callback map is complete and checked before the first real request.
    with server.test_request_context("/_favicon.ico"):
        server.preprocess_request()
    router = next((k for k in app.callback_map if security.ROUTER_OUTPUT in k), None)
    if router is None:
        raise ConfigurationError("the Dash Pages router callback was not registered")
    security.tag(app.callback_map[router]["callback"], security.SHELL)
    ctx.router_callback = router
    security.check_callbacks(app)

    ctx.csp = security.content_security_policy(app, documents.inline_script_hashes())
    security.install(app, ctx)
    CSRFProtect(server)
    if start_live:
        live_state(settings)  # starts its follower (Cassandra fill, then Kafka)
    log.info("web app ready: %d pages, %d server callbacks", len(dash.page_registry),
             len(security.server_callbacks(app)))
    return app

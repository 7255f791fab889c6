"""The app shell (header, navigation, page container); the server-rendered pages (sign-in,
403) are in ``webapp/documents.py``. Navigation is built from ``backend.auth_policy`` -
the same table the server enforces - so a user is shown exactly the pages they may open.

Stable element ids (used by the browser tests): ``shell-user``, ``shell-role``,
``nav-<permission>`` (e.g. ``nav-ward``), ``logout-button``, ``theme-toggle``.
"""

from __future__ import annotations

import time
from typing import Any

import dash
from dash import Input, Output, State, dcc, html
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from backend.auth_policy import home_path, navigation
from webapp.documents import APP_NAME
from webapp.security import IDLE_COOKIE

CLOCK_MS = 15_000  # how often the browser checks whether the session has ended


def _user_box() -> list[Any]:
    return [
        html.Span(current_user.display_name, id="shell-user", className="shell-user"),
        html.Span(current_user.role.label, id="shell-role",
                  className=f"role-badge role-{current_user.role.value}"),
        html.Button("◐", id="theme-toggle", className="icon-button", n_clicks=0,
                    title="Switch light / dark theme", **{"aria-label": "Switch theme"}),
        html.Form(
            [
                dcc.Input(type="hidden", name="csrf_token", value=generate_csrf(),
                          id="logout-csrf"),
                html.Button("Sign out", id="logout-button", type="submit",
                            className="button button-quiet"),
            ],
            action="/logout", method="POST", className="logout-form",
        ),
    ]


def shell() -> html.Div:
    """The layout of every page: a function, so it is built for the requesting user."""
    signed_in = current_user.is_authenticated
    role = current_user.role if signed_in else None
    links = [
        dcc.Link(p.page.title, href=p.page.path, id=f"nav-{p.key}", className="nav-link")
        for p in navigation(role)
    ]
    return html.Div(
        className="app",
        children=[
            dcc.Store(id="shell-theme", storage_type="local"),
            dcc.Store(id="shell-server-time", data=time.time()),
            dcc.Interval(id="shell-clock", interval=CLOCK_MS),
            html.Div(id="shell-sink-theme", hidden=True),
            html.Div(id="shell-sink-clock", hidden=True),
            html.Div(id="shell-sink-skew", hidden=True),
            html.Div(id="shell-sink-nav", hidden=True),
            html.Header(
                className="topbar",
                children=[
                    dcc.Link(APP_NAME, href=home_path(role) or "/", className="brand"),
                    html.Nav(links, id="nav", className="nav",
                             **{"aria-label": "Main navigation"}),
                    html.Div(_user_box() if signed_in else [], className="user-box"),
                ],
            ),
            html.Main(dash.page_container, className="content", id="content"),
        ],
    )


# --- clientside behaviour of the shell ------------------------------------------------------
_SKEW_JS = """
function(serverTime) {
    if (serverTime) { window.__icuSkew = Date.now() / 1000 - serverTime; }
    return window.dash_clientside.no_update;
}
"""

# The server alone decides whether a session is valid; the browser only notices that the
# idle deadline (cookie set by the server on activity) has passed and reloads, so the
# server's redirect to the sign-in page happens without anybody clicking.
_CLOCK_JS = """
function(n) {
    var m = document.cookie.match(/(?:^|; )COOKIE=(\\d+)/);
    var now = Date.now() / 1000 - (window.__icuSkew || 0);
    if (!m || now > parseInt(m[1], 10) + 2) { window.location.reload(); }
    return window.dash_clientside.no_update;
}
""".replace("COOKIE", IDLE_COOKIE)

_THEME_TOGGLE_JS = """
function(n, theme) {
    // The theme is chosen on the screen (night shift), not taken from the OS.
    var current = theme || 'light';
    return current === 'dark' ? 'light' : 'dark';
}
"""

_THEME_APPLY_JS = """
function(theme) {
    if (theme) { document.documentElement.setAttribute('data-theme', theme); }
    return window.dash_clientside.no_update;
}
"""

_NAV_JS = """
function(pathname) {
    var links = document.querySelectorAll('#nav a');
    for (var i = 0; i < links.length; i++) {
        var href = links[i].getAttribute('href');
        var on = pathname === href || (pathname || '').indexOf(href + '/') === 0;
        links[i].classList.toggle('active', on);
        if (on) { links[i].setAttribute('aria-current', 'page'); }
        else { links[i].removeAttribute('aria-current'); }
    }
    return window.dash_clientside.no_update;
}
"""


def register_shell_callbacks(app: dash.Dash) -> None:
    """Clientside callbacks of the shell (they never reach the server)."""
    app.clientside_callback(_SKEW_JS, Output("shell-sink-skew", "title"),
                            Input("shell-server-time", "data"))
    app.clientside_callback(_CLOCK_JS, Output("shell-sink-clock", "title"),
                            Input("shell-clock", "n_intervals"), prevent_initial_call=True)
    app.clientside_callback(_THEME_TOGGLE_JS, Output("shell-theme", "data"),
                            Input("theme-toggle", "n_clicks"), State("shell-theme", "data"),
                            prevent_initial_call=True)
    app.clientside_callback(_THEME_APPLY_JS, Output("shell-sink-theme", "title"),
                            Input("shell-theme", "data"))
    app.clientside_callback(_NAV_JS, Output("shell-sink-nav", "title"),
                            Input("_pages_location", "pathname"))

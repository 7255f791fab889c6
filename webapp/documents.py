"""The server-rendered pages outside Dash: sign-in, 403, and the plain document the e-mail
acknowledgement pages use. They import nothing of the web app, so the request hooks
(``webapp/security.py``) and the sign-in routes (``webapp/auth.py``) can both render them.

Stable element ids (used by the browser tests): on the sign-in page ``username``,
``password``, ``login-submit``, ``login-error``, ``login-info``; on the 403 page
``forbidden``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from markupsafe import Markup, escape

from backend.auth_policy import home_path

APP_NAME = "ICU Monitor"

# Applies the theme chosen in the app (Dash keeps dcc.Store data as JSON in localStorage).
THEME_JS = ("try{var t=JSON.parse(localStorage.getItem('shell-theme'));"
            "if(t){document.documentElement.setAttribute('data-theme',t);}}catch(e){}")
# A constant, so safe to mark up as it is: escaping its quotes would change the script
# that the CSP hash below allows.
_THEME_SCRIPT = Markup(f"<script>{THEME_JS}</script>")


def inline_script_hashes() -> list[str]:
    """CSP hashes of the inline scripts of the server-rendered pages."""
    digest = base64.b64encode(hashlib.sha256(THEME_JS.encode()).digest()).decode()
    return [f"'sha256-{digest}'"]


def document(title: str, body: Markup) -> str:
    return str(Markup(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>{title}</title>"
        "<link rel=\"stylesheet\" href=\"/assets/base.css\">{theme}</head>"
        "<body class=\"plain-page\">{body}</body></html>"
    ).format(title=title, theme=_THEME_SCRIPT, body=body))


def login_page(*, csrf_token: str, error: str | None = None, info: str | None = None,
               next_path: str = "", username: str = "") -> str:
    notice = Markup("")
    if error:
        notice = Markup('<div id="login-error" class="notice notice-error" role="alert">'
                        "{}</div>").format(error)
    elif info:
        notice = Markup('<div id="login-info" class="notice notice-info" role="status">'
                        "{}</div>").format(info)
    body = Markup(
        '<main class="login-card">'
        '<h1 class="login-title">{app}</h1>'
        '<p class="login-subtitle">Sign in with your hospital account</p>'
        "{notice}"
        '<form method="post" action="/login" class="login-form" autocomplete="on">'
        '<input type="hidden" name="csrf_token" value="{csrf}">'
        '<input type="hidden" name="next" value="{next}">'
        '<label for="username">Username</label>'
        '<input id="username" name="username" type="text" autocomplete="username" '
        'autocapitalize="none" spellcheck="false" required autofocus value="{username}">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" '
        'autocomplete="current-password" required>'
        '<button id="login-submit" type="submit" class="button button-primary">Sign in'
        "</button></form>"
        '<p class="login-footer">Authorised staff only. Access is recorded.</p>'
        "</main>"
    ).format(app=APP_NAME, notice=notice, csrf=csrf_token, next=next_path, username=username)
    return document(f"Sign in - {APP_NAME}", body)


def forbidden_page(user: Any = None) -> str:
    role = getattr(user, "role", None) if getattr(user, "is_authenticated", False) else None
    home = home_path(role) or "/login"
    who = ""
    if role is not None:
        who = f" Signed in as {user.username} ({role.label})."
    body = Markup(
        '<main id="forbidden" class="login-card">'
        '<h1 class="login-title">403 - Not allowed</h1>'
        '<p>Your role does not give access to this page.{who}</p>'
        '<p>This attempt has been recorded.</p>'
        '<p><a class="button button-primary" href="{home}">Back to my start page</a></p>'
        "</main>"
    ).format(who=escape(who), home=home)
    return document(f"403 - {APP_NAME}", body)

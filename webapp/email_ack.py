"""Acknowledging an alarm from the link in its e-mail: ``/alerts/ack/<token>``.

GET shows the alarm (ward, bed, alert, time) and an "Acknowledge" button; POST (CSRF
protected like every form) acknowledges it. Both need a signed-in user whose role holds
``alerts.acknowledge`` (``webapp.security`` enforces it; a visitor who is not signed in
is sent to the sign-in page and back here). The token is checked on both: a link that is
not ours, has expired, or was used before gets a clear page saying so. A link is bound
to its recipient (``LinkClaim.allows``): followed by anybody else it is refused (403) and
the refusal audited with the alert's id, never the token (a token in the audit log
could be replayed by whoever reads the log). Single use is a
Cassandra lightweight transaction (``alert_ack_links``); the acknowledgement itself is
the one of every channel (``Lifecycle.acknowledge``, via ``email_link``: history, audit,
lifecycle event).

Element ids (browser tests): ``ack-link-alert``, ``ack-link-confirm``,
``ack-link-result``, ``ack-link-refused``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import flask
from flask import Response, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

from backend import audit, localtime
from backend.alerting import email_outbox as mail
from backend.alerting.lifecycle import EMAIL_LINK, Lifecycle
from backend.storage.alerts import AlertRow, clock_text
from webapp.security import HTML_ROUTE_ATTR, WebContext, route

log = logging.getLogger(__name__)

PERMISSION = "alerts.acknowledge"


def _page(title: str, body: Markup, status: int = 200) -> Response:
    from webapp.documents import document as _document

    return Response(_document(f"{title} - ICU Monitor", Markup(
        '<main class="login-card ack-link-card">{}</main>').format(body)),
        status=status, mimetype="text/html")


def _refused(title: str, text: str, status: int) -> Response:
    return _page(title, Markup(
        '<h1 class="login-title">{}</h1>'
        '<div id="ack-link-refused" class="notice notice-error" role="alert">{}</div>'
        '<p><a class="button" href="/alerts">Open the alert inbox</a></p>').format(title, text),
        status)


def _alert_summary(row: AlertRow) -> Markup:
    return Markup(
        '<dl id="ack-link-alert" class="ack-link-alert">'
        "<dt>Ward</dt><dd>{}</dd><dt>Bed</dt><dd>{}</dd>"
        "<dt>Alert</dt><dd>{}</dd><dt>Priority</dt><dd>{}</dd>"
        "<dt>Raised</dt><dd>{}</dd><dt>Status</dt><dd>{}</dd></dl>"
    ).format(row.ward, row.bed, row.message, row.priority.upper(),
             localtime.day_clock(row.detected_ts), row.status)


def init_email_ack(server: flask.Flask, ctx: WebContext, *,
                   links: mail.AckLinks | None = None,
                   publish: Callable | None = None) -> None:
    """Register the route. ``links`` (signing key, maximum age, clock) defaults to the
    settings'; ``publish`` sends the lifecycle event (default: the process's publisher)."""
    if links is None:  # the manager signs with ICU_SECRET_KEY, the same key as the app's
        links = mail.AckLinks(server.config["SECRET_KEY"],
                              ctx.settings.alert_manager.ack_link_max_age_minutes * 60)

    def _publish(event) -> None:
        if publish is not None:
            publish(event)
            return
        from webapp.live import lifecycle_publisher

        lifecycle_publisher(ctx.settings).publish(event)

    @server.route(mail.ACK_PATH + "<token>", methods=["GET", "POST"],
                  endpoint="alert_email_ack")
    @route(PERMISSION)
    def email_ack(token: str) -> Response:
        try:
            claim = links.check(token)
        except mail.LinkExpired:
            return _refused("Link expired", "This acknowledgement link has expired. Open "
                            "the alert inbox to see and acknowledge the alarm.", 410)
        except mail.LinkInvalid:
            return _refused("Invalid link", "This is not a valid acknowledgement link.", 400)
        if not claim.allows(current_user.username, current_user.role.value,
                            current_user.user.covers):
            bound = f"user {claim.user}" if claim.user else f"role {claim.role} on {claim.ward}"
            log.warning("acknowledgement link for %s followed by %s: refused", bound,
                        current_user.username)
            try:
                audit.record(ctx.db, current_user.username, audit.ACCESS_DENIED, "alert",
                             claim.alert_id, f"e-mail link bound to {bound}", "email_link")
            except Exception:
                log.exception("could not audit a refused acknowledgement link")
            return _refused("Not your link", "This acknowledgement link was sent to somebody "
                            "else. Open the alert inbox to see and acknowledge the alarm.",
                            403)
        lifecycle = Lifecycle(ctx.db, ctx.settings.alert_manager)
        row = lifecycle.get(claim.alert_id)
        if row is None:
            return _refused("Unknown alarm", "This alarm is not known.", 404)
        used = mail.link_used(ctx.db, claim)
        if used is not None:
            return _used(used.used_by, used.used_ts)
        if request.method == "GET":
            return _page("Acknowledge alarm", Markup(
                '<h1 class="login-title">Acknowledge alarm</h1>{}'
                '<form method="post" class="login-form">'
                '<input type="hidden" name="csrf_token" value="{}">'
                '<label for="ack-link-comment">Comment (optional)</label>'
                '<input id="ack-link-comment" name="comment" type="text" maxlength="500">'
                '<button id="ack-link-confirm" type="submit" class="button button-primary">'
                "Acknowledge as {}</button></form>").format(
                    _alert_summary(row), generate_csrf(), current_user.username))
        user = current_user.username
        use = mail.use_link(ctx.db, claim, user, datetime.now(UTC))
        if not use.first:
            return _used(use.used_by, use.used_ts)
        comment = (request.form.get("comment") or "").strip()[:500] or None
        result = lifecycle.acknowledge(claim.alert_id, user, EMAIL_LINK, comment)
        if result.ok and result.event is not None:
            try:
                _publish(result.event)
            except Exception:
                log.exception("alert %s acknowledged via e-mail, but publishing the lifecycle "
                              "event failed", claim.alert_id)
        css = "notice-info" if result.ok else "notice-error"
        return _page("Acknowledge alarm", Markup(
            '<h1 class="login-title">{}</h1>{}'
            '<div id="ack-link-result" class="notice {}" role="status">{}</div>'
            '<p><a class="button" href="/alerts">Open the alert inbox</a></p>').format(
                "Acknowledged" if result.ok else "Not acknowledged",
                _alert_summary(lifecycle.get(claim.alert_id) or row), css,
                result.message + (" (via e-mail link)" if result.ok else "")),
            200 if result.ok else 409)

    setattr(email_ack, HTML_ROUTE_ATTR, True)


def _used(by: str | None, at: datetime | None) -> Response:
    return _refused("Link already used", f"This acknowledgement link was already used by "
                    f"{by or 'somebody'} at {clock_text(at)}. Each link works once.", 409)

"""Ward monitor: every bed of a ward at a glance, live.

``/ward?ward=ICU-A`` (the first ward of the census without it); ``&kiosk=1`` covers the
whole window (wall screens: no navigation, no picker); ``&theme=light|dark``.

The screen is ``webapp.ward`` (layout, tiles, the periodic update callback) on this web
process's one ``WardState`` (``webapp.live.live_state``), which ``create_app`` creates
with the app's settings before Dash imports this module and starts with the app. Its
callbacks carry the policy's permissions: "ward" for the update, "ward.acknowledge"
for the Acknowledge buttons (the server refuses other roles before the callback runs).

Acknowledge: ``backend.alerting.lifecycle.Lifecycle.acknowledge``, as from the alert
inbox and the e-mail link (one Cassandra lightweight transaction decides between
concurrent clicks; one history step, one audit event), then an ``alerts.lifecycle``
message so every screen of every process shows who acknowledged.

A ward display account (``auth_policy.ONE_WARD``) sees its one ward, whatever the
request asks for: the layout and the 1 s update are fixed to it and an alarm of another
ward is not acknowledged (the server decides, not the picker, which offers only that
ward). The patient label is not a link (the patient page is refused to that role
anyway). ``?kiosk=1`` covers the window as for any wall screen.
"""

from __future__ import annotations

import functools
import logging

import dash
from dash import html
from flask_login import current_user

from backend.alerting.lifecycle import WARD_SCREEN, Lifecycle
from backend.auth_policy import ward_scope
from backend.storage import census
from backend.storage.alerts import AckResult, AlertStore
from backend.storage.statements import store
from webapp.live import lifecycle_publisher, live_state
from webapp.security import current_db, current_settings, register_page, tag
from webapp.ward import register_ward_callbacks, ward_layout

log = logging.getLogger(__name__)

register_page(__name__, "ward")

VIA = WARD_SCREEN
TRUE = ("1", "true", "yes", "on")

# The process's live state (create_app made it with the app's settings).
STATE = live_state(start=False)

def known_wards() -> list[str]:
    """The census's wards, plus any the live state knows (a ward sending before its
    census rows arrive still gets a screen)."""
    wards = set(STATE.wards())
    try:
        wards |= set(census.wards(current_db()))
    except Exception as exc:  # the screen still works from the live state
        log.warning("ward picker: reading the census failed: %s", exc)
    return sorted(wards)


def user_scope() -> str | None:
    """The one ward the signed-in user may see (ward display), ``None`` if not bound."""
    if not current_user or not current_user.is_authenticated:
        return ""
    return ward_scope(current_user.role, current_user.user.wards)


def layout(ward: str | None = None, kiosk: str | None = None, theme: str | None = None,
           **_query: str) -> html.Div:
    scope = user_scope()
    if scope is not None:  # a ward display: its ward only
        return html.Div(ward_layout(scope or None, [scope] if scope else [],
                                    kiosk=(kiosk or "").lower() in TRUE, theme=theme),
                        className="page-ward ward-display-mode")
    wards = known_wards()
    ward = ward.strip() if isinstance(ward, str) and ward.strip() else None
    return html.Div(
        ward_layout(ward, wards, kiosk=(kiosk or "").lower() in TRUE, theme=theme,
                    update_ms=current_settings().web.ward_update_ms),
        className="page-ward",
    )


def _alert_ward(alert_id: str) -> str | None:
    row = store(AlertStore, current_db()).get(alert_id)
    return row.ward if row else None


def acknowledge(alert_id: str, user: str) -> AckResult:
    """The Acknowledge button: record it (the LWT decides), then tell every screen."""
    scope = user_scope()
    if scope is not None and (not scope or _alert_ward(alert_id) != scope):
        log.warning("ward display %s: acknowledging %s of another ward refused", user,
                    alert_id)
        return AckResult(False, "This alarm is not on this screen's ward.", alert_id)
    lifecycle = Lifecycle(current_db(), current_settings().alert_manager)
    result = lifecycle.acknowledge(alert_id, user, VIA)
    if result.ok and result.event is not None:
        try:
            lifecycle_publisher(current_settings()).publish(result.event)
        except Exception:
            # Stored and audited; this process's screens update at once (the view
            # applies it), other processes' screens at their next fill.
            log.exception("alert %s acknowledged, but publishing the lifecycle event failed",
                          alert_id)
    elif result.status is not None:
        # Somebody else was first: show their acknowledgement here right away.
        STATE.apply_lifecycle(alert_id, result.status, result.by, result.at)
    return result


def _scoped(key: str, function):
    """Tag each callback with its permission; the 1 s update of a ward display shows
    its own ward whatever ward the request names."""
    if key != "ward":
        return tag(function, key)

    @functools.wraps(function)
    def tick(n, ward, sent, options):
        scope = user_scope()
        if scope is None:
            return function(n, ward, sent, options)
        out = list(function(n, scope or None, sent, options))
        only = [{"label": scope, "value": scope}] if scope else []
        out[-2] = only if options != only else dash.no_update  # the picker's options
        return tuple(out)

    return tag(tick, key)


register_ward_callbacks(dash, STATE, on_acknowledge=acknowledge, wrap=_scoped)

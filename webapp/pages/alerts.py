"""Alert inbox of the clinical roles: ``/alerts``.

Filters (ward, status, priority, time window) -> the list (highest priority first, newest
first within a priority, refreshed every 5 s); "Details" opens one alert: its summary,
who holds it, the full history (who, when, how, comment) and the actions acknowledge /
silence (minutes + reason) / resolve, which go through ``backend.alerting.lifecycle``
(one lightweight transaction each, history, audit) and are then published on the
lifecycle topic so every screen updates. Bad input and refused moves ("Already
acknowledged by ...") are shown next to the buttons.

The charge nurse's view (``alerts.assign``): "Who holds what" lists the active alerts of
the chosen wards by nurse, with how long each has held them, and the unassigned ones;
the detail pane assigns the alert to a nurse of its ward or reassigns it
(``Lifecycle.assign``: conditional on the holder shown, audited, in the history).

Permissions (``backend.auth_policy``): "alerts" to see, "alerts.acknowledge" to act,
"alerts.assign" to assign. Priority is shown as text and shape as well as colour
(▲ high, ◆ medium, ● low). Times are the hospital's local time with the zone. Element
ids start with ``alerts-``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import dash
from dash import ALL, Input, Output, State, dcc, html
from flask_login import current_user

from backend import audit, localtime
from backend.alerting import inbox
from backend.alerting.lifecycle import (
    ACTIVE,
    ALERTS_PAGE,
    STATUSES,
    Lifecycle,
    assignee_problem,
)
from backend.auth_policy import allowed
from backend.storage import census
from backend.storage.alerts import AlertRow, AlertStore, WardDayAlert
from backend.storage.statements import store as session_store
from backend.users import get_user, list_users
from webapp.alerts_view import board_rows, held_for
from webapp.alerts_view import ms_or_none as _ms_or_none
from webapp.security import current_db, current_settings, register_page, secure_callback

log = logging.getLogger(__name__)

register_page(__name__, "alerts")

PRIORITIES = {"high": "▲ High", "medium": "◆ Medium", "low": "● Low"}
STATUS_TEXT = {"raised": "Raised", "escalated": "Escalated", "silenced": "Silenced",
               "acknowledged": "Acknowledged", "resolved": "Resolved",
               "auto_resolved": "Auto-resolved", "cleared": "Ended by itself"}
WINDOWS = {"1": "Last hour", "8": "Last 8 hours", "24": "Last 24 hours", "72": "Last 3 days",
           "168": "Last 7 days"}
VIA_TEXT = {"ward_screen": "ward screen", "alerts_page": "alerts page",
            "email_link": "e-mail link", "system": "system", "pipeline": "pipeline"}


def _wards() -> list[str]:
    try:
        return census.wards(current_db())
    except Exception as exc:
        log.warning("alert inbox: reading the wards failed: %s", exc)
        return []


def _tz() -> str:
    return current_settings().timezone


def _when(value) -> str:
    """``03 Dec 14:03:05 CET``: the list spans up to a week, so the day is shown."""
    return localtime.day_clock(value, _tz())


def _clock(value) -> str:
    return localtime.clock(value, _tz())


def _can_assign() -> bool:
    return current_user.is_authenticated and allowed(current_user.role, "alerts.assign")


def _assign_controls() -> list:
    return [
        html.H3("Assign to a nurse"),
        html.Div(className="alerts-buttons", children=[
            dcc.Dropdown(id="alerts-assign-nurse", placeholder="Choose a nurse",
                         className="alerts-assign-select", clearable=False),
            html.Button("Assign", id="alerts-assign", n_clicks=0,
                        className="button button-primary"),
        ]),
        dcc.Store(id="alerts-assign-seen"),
        html.Div(id="alerts-assign-msg", role="status"),
    ]


def _board_section() -> html.Section:
    return html.Section(className="alerts-board card", children=[
        html.H2("Who holds what"),
        html.P("Active alerts of the chosen wards by nurse, and for how long they have "
               "held them. Choose an alert below to assign or reassign it.",
               className="muted small"),
        html.Div(id="alerts-board"),
    ])


def layout(ward: str | None = None, **_query: str) -> html.Div:
    wards = _wards()
    assign = _can_assign()
    return html.Div(className="page page-alerts", children=[
        html.H1("Alerts"),
        html.Div(className="alerts-filters", children=[
            html.Label(["Ward", dcc.Dropdown(id="alerts-ward", multi=True,
                                             value=[ward] if ward in wards else [],
                                             options=wards, placeholder="All wards")]),
            html.Label(["Status", dcc.Checklist(
                id="alerts-status", inline=True, value=sorted(ACTIVE),
                options=[{"label": STATUS_TEXT[s], "value": s} for s in STATUSES])]),
            html.Label(["Priority", dcc.Checklist(
                id="alerts-priority", inline=True, value=list(PRIORITIES),
                options=[{"label": v, "value": k} for k, v in PRIORITIES.items()])]),
            html.Label(["Time", dcc.Dropdown(id="alerts-window", value="24", clearable=False,
                                             options=[{"label": v, "value": k}
                                                      for k, v in WINDOWS.items()])]),
        ]),
        dcc.Interval(id="alerts-refresh", interval=5_000),
        dcc.Store(id="alerts-selected"),
        dcc.Store(id="alerts-changed", data=0),
        *([_board_section()] if assign else []),
        html.Div(className="alerts-body", children=[
            html.Div(id="alerts-list", className="alerts-list"),
            html.Aside(className="alerts-detail-pane", children=[
                html.Div(id="alerts-detail",
                         children=html.P("Choose an alert to see its history.",
                                         className="muted")),
                html.Div(id="alerts-actions", className="alerts-actions", hidden=True,
                         children=[
                    *(_assign_controls() if assign else []),
                    html.H3("Act on this alert"),
                    dcc.Input(id="alerts-comment", type="text", maxLength=500,
                              placeholder="Comment (optional)", className="alerts-input"),
                    html.Div(className="alerts-buttons", children=[
                        html.Button("Acknowledge", id="alerts-ack", n_clicks=0,
                                    className="button button-primary"),
                        html.Button("Resolve", id="alerts-resolve", n_clicks=0,
                                    className="button"),
                    ]),
                    html.Div(className="alerts-silence", children=[
                        dcc.Input(id="alerts-silence-minutes", type="text",
                                  placeholder="Minutes", className="alerts-input short"),
                        dcc.Input(id="alerts-silence-reason", type="text", maxLength=500,
                                  placeholder="Reason for silencing (required)",
                                  className="alerts-input"),
                        html.Button("Silence", id="alerts-silence", n_clicks=0,
                                    className="button"),
                    ]),
                    html.Div(id="alerts-action-msg", role="status"),
                ]),
            ]),
        ]),
    ])


def _status_cell(r: AlertRow | WardDayAlert) -> html.Span:
    status = str(r.status or "raised")
    return html.Span(STATUS_TEXT.get(status, status), className=f"alert-status st-{status}")


def _row(r: WardDayAlert, selected: str | None) -> html.Tr:
    p = r.priority or "low"
    return html.Tr(className="alerts-row" + (" selected" if r.alert_id == selected else ""),
                   **{"data-alert": r.alert_id}, children=[
        html.Td(html.Span(PRIORITIES.get(p, p), className=f"prio prio-{p}")),
        html.Td(r.ward), html.Td(r.bed),
        html.Td(r.message),
        html.Td(_when(r.detected_ts), className="nowrap"),
        html.Td(_status_cell(r)),
        html.Td(r.assigned_to or "", className="alerts-holder"),
        html.Td(html.Button("Details", id={"type": "alerts-open", "alert": r.alert_id},
                            n_clicks=0, className="button button-quiet")),
    ])


@secure_callback(
    "alerts", Output("alerts-list", "children"),
    Input("alerts-ward", "value"), Input("alerts-status", "value"),
    Input("alerts-priority", "value"), Input("alerts-window", "value"),
    Input("alerts-refresh", "n_intervals"), Input("alerts-changed", "data"),
    Input("alerts-selected", "data"),
)
def list_alerts(wards, statuses, priorities, window, _n, _changed, selected):
    """The list; choosing an alert redraws it at once, so the highlight follows the
    click instead of waiting for the next refresh."""
    try:
        f = inbox.InboxFilter.parse(wards, statuses, priorities, window, _wards())
    except ValueError as exc:
        return html.Div(str(exc), className="notice notice-error", id="alerts-filter-error")
    try:
        rows = inbox.query(current_db(), f)
    except Exception:
        log.exception("alert inbox query failed")
        return html.Div("Data delayed: the alert list could not be read. Retrying...",
                        className="notice notice-error", id="alerts-delayed")
    if not rows:
        return html.P("No alerts match these filters.", className="muted", id="alerts-empty")
    return html.Table(className="alerts-table", children=[
        html.Thead(html.Tr([html.Th(h) for h in
                            ("Priority", "Ward", "Bed", "Alert", "Raised", "Status",
                             "Held by", "")])),
        html.Tbody([_row(r, selected) for r in rows]),
    ])


@secure_callback(
    "alerts.assign", Output("alerts-board", "children"),
    Input("alerts-ward", "value"), Input("alerts-refresh", "n_intervals"),
    Input("alerts-changed", "data"),
)
def show_board(wards, _n, _changed):
    known = _wards()
    chosen = [w for w in (wards or []) if w in known] or known
    try:
        store = session_store(AlertStore, current_db())
        active = [r for w in chosen for r in store.active_for_ward(w)]
    except Exception:
        log.exception("assignment board: reading the active alerts failed")
        return html.Div("Data delayed: the assignments could not be read. Retrying...",
                        className="notice notice-error")
    if not active:
        return html.P("No active alerts on these wards.", className="muted",
                      id="alerts-board-empty")
    now = int(datetime.now(UTC).timestamp() * 1000)
    body = []
    for holder, rows in board_rows(active, now):
        for i, r in enumerate(rows):
            p = r.priority or "low"
            since = _ms_or_none(r.assigned_ts)
            body.append(html.Tr(className="alerts-board-row", **{"data-holder": holder},
                                children=[
                html.Td(holder or "Unassigned", className="alerts-board-holder")
                if i == 0 else html.Td(""),
                html.Td(html.Span(PRIORITIES.get(p, p), className=f"prio prio-{p}")),
                html.Td(f"{r.ward} bed {r.bed}"),
                html.Td(r.message),
                html.Td(held_for(since, now) if holder else "", className="alerts-held-for"),
                html.Td(_clock(r.assigned_ts) if holder else ""),
            ]))
    return html.Table(className="alerts-table alerts-board-table", id="alerts-board-table",
                      children=[html.Thead(html.Tr([html.Th(h) for h in (
                          "Nurse", "Priority", "Bed", "Alert", "Held for", "Since")])),
                          html.Tbody(body)])


@secure_callback("alerts", Output("alerts-selected", "data"),
                 Input({"type": "alerts-open", "alert": ALL}, "n_clicks"),
                 prevent_initial_call=True)
def select_alert(clicks):
    trigger = dash.ctx.triggered_id
    if not trigger or not any(clicks or []):
        return dash.no_update
    return trigger["alert"]


def _step_text(s) -> str:
    """A history step in words: the status it led to, or what changed (an assignment
    keeps the status: "Assigned to n.kim (was j.doe)")."""
    if s.action == "assign":
        return f"Assigned {s.detail}" if s.detail else "Assigned"
    return (STATUS_TEXT.get(s.to_status, s.to_status)
            + (f" ({s.detail})" if s.detail and s.action != "raise" else ""))


def _history_table(steps) -> html.Table:
    return html.Table(className="alerts-history", id="alerts-history", children=[
        html.Thead(html.Tr([html.Th(h) for h in ("Time", "Step", "Who", "How", "Comment")])),
        html.Tbody([html.Tr([
            html.Td(_clock(s.ts), className="nowrap"),
            html.Td(_step_text(s)),
            html.Td(s.actor), html.Td(VIA_TEXT.get(s.via, s.via)), html.Td(s.comment or ""),
        ]) for s in steps]),
    ])


@secure_callback("alerts", Output("alerts-detail", "children"),
                 Output("alerts-actions", "hidden"),
                 Input("alerts-selected", "data"), Input("alerts-changed", "data"),
                 Input("alerts-refresh", "n_intervals"))
def show_alert(alert_id, _changed, _n):
    if not alert_id:
        return html.P("Choose an alert to see its history.", className="muted"), True
    lc = Lifecycle(current_db(), current_settings().alert_manager)
    row = lc.get(alert_id)
    if row is None:
        return html.P("This alert is not known.", className="notice notice-error"), True
    if dash.ctx.triggered_id == "alerts-selected" and row.patient_id:
        # opening an alert shows patient data: a view of the patient's record
        try:
            audit.record(current_db(), current_user.username, audit.PATIENT_VIEWED, "patient",
                         row.patient_id, f"alert {alert_id} details", "web")
        except Exception:
            log.exception("could not audit an alert detail view")
    status = row.status or "raised"
    by = f" by {row.status_by}" if row.status_by else ""
    if status == "escalated":
        by = f" to level {row.escalation_level or 1}"
    silence = ""
    if status == "silenced":
        silence = f" until {_clock(row.silenced_until)}: {row.silence_reason}"
    vals = ", ".join(f"{k} {v:g}" for k, v in sorted(row.values.items()))
    p = row.priority or "low"
    acked = ""
    if row.acknowledged_by and status != "acknowledged":
        acked = f" · acknowledged by {row.acknowledged_by} at {_clock(row.acknowledged_ts)}"
    now = int(datetime.now(UTC).timestamp() * 1000)
    holder = (f"Held by {row.assigned_to} since {_clock(row.assigned_ts)} "
              f"({held_for(_ms_or_none(row.assigned_ts), now)}; assigned by "
              f"{row.assigned_by})" if row.assigned_to else "Held by nobody yet")
    return html.Div([
        html.H2([html.Span(PRIORITIES.get(p, p), className=f"prio prio-{p}"), " ",
                 row.message]),
        html.P(f"{row.ward} bed {row.bed} · patient {row.patient_id}"
               f" · raised {_when(row.detected_ts)} · {vals}"),
        html.P([_status_cell(row), f"{by} at {_clock(row.status_ts)}{silence}{acked}"],
               id="alerts-detail-status"),
        html.P(holder, id="alerts-detail-holder"),
        html.H3("History"),
        _history_table(lc.history(alert_id)),
    ]), status not in ACTIVE


def _msg(text: str, ok: bool, element_id: str = "alerts-action-result") -> html.Div:
    return html.Div(text, className="notice " + ("notice-info" if ok else "notice-error"),
                    id=element_id)


@secure_callback(
    "alerts.acknowledge",
    Output("alerts-action-msg", "children"), Output("alerts-changed", "data"),
    Input("alerts-ack", "n_clicks"), Input("alerts-resolve", "n_clicks"),
    Input("alerts-silence", "n_clicks"),
    State("alerts-selected", "data"), State("alerts-comment", "value"),
    State("alerts-silence-minutes", "value"), State("alerts-silence-reason", "value"),
    State("alerts-changed", "data"),
    prevent_initial_call=True,
)
def act(_ack, _resolve, _silence, alert_id, comment, minutes, reason, changed):
    action = dash.ctx.triggered_id
    if not alert_id:
        return _msg("Choose an alert first.", False), dash.no_update
    user = current_user.username
    lc = Lifecycle(current_db(), current_settings().alert_manager)
    now = datetime.now(UTC)
    try:
        if action == "alerts-ack":
            result = lc.acknowledge(alert_id, user, ALERTS_PAGE, comment, now=now)
        elif action == "alerts-resolve":
            result = lc.resolve(alert_id, user, ALERTS_PAGE, comment, now=now)
        elif action == "alerts-silence":
            result = lc.silence(alert_id, user, ALERTS_PAGE, minutes, reason, now=now)
        else:
            return dash.no_update, dash.no_update
    except ValueError as exc:  # bad input: nothing changed
        return _msg(str(exc), False), dash.no_update
    except Exception:
        log.exception("alert %s: %s failed", alert_id, action)
        return _msg("The alert could not be changed: please try again.", False), dash.no_update
    if result.ok and result.event is not None:
        try:
            from webapp.live import lifecycle_publisher

            lifecycle_publisher(current_settings()).publish(result.event)
        except Exception:
            log.exception("alert %s changed, but publishing the lifecycle event failed",
                          alert_id)
    return _msg(result.message, result.ok), (changed or 0) + 1


def _nurse_options(ward: str | None) -> list[dict]:
    demo = current_settings().demo_mode
    users = [u for u in list_users(current_db())
             if assignee_problem(u, ward, demo_mode=demo) is None]
    return [{"label": f"{u.display_name} ({u.username}, {u.role.label.lower()})",
             "value": u.username} for u in users]


@secure_callback(
    "alerts.assign",
    Output("alerts-assign-nurse", "options"), Output("alerts-assign-nurse", "value"),
    Output("alerts-assign-seen", "data"),
    Input("alerts-selected", "data"), Input("alerts-changed", "data"),
)
def assign_choices(alert_id, _changed):
    """The nurses who may hold the chosen alert (enabled, covering its ward), and the
    holder the charge nurse sees now (the assignment is conditional on it)."""
    if not alert_id:
        return [], None, None
    row = Lifecycle(current_db(), current_settings().alert_manager).get(alert_id)
    if row is None:
        return [], None, None
    holder = row.assigned_to
    return _nurse_options(row.ward), holder, {"alert": alert_id, "holder": holder}


@secure_callback(
    "alerts.assign",
    Output("alerts-assign-msg", "children"),
    Output("alerts-changed", "data", allow_duplicate=True),
    Input("alerts-assign", "n_clicks"),
    State("alerts-selected", "data"), State("alerts-assign-nurse", "value"),
    State("alerts-assign-seen", "data"), State("alerts-changed", "data"),
    prevent_initial_call=True,
)
def assign(_n, alert_id, nurse, seen, changed):
    if not alert_id:
        return _msg("Choose an alert first.", False, "alerts-assign-result"), dash.no_update
    if not nurse:
        return _msg("Choose a nurse.", False, "alerts-assign-result"), dash.no_update
    db = current_db()
    settings = current_settings()
    lc = Lifecycle(db, settings.alert_manager)
    expected = seen.get("holder") if isinstance(seen, dict) and seen.get("alert") == alert_id \
        else None
    try:
        result = lc.assign(alert_id, get_user(db, str(nurse)[:64]), current_user.username,
                           ALERTS_PAGE, expected=expected, demo_mode=settings.demo_mode,
                           now=datetime.now(UTC))
    except ValueError as exc:  # not a nurse of this ward, disabled, ...: nothing changed
        return _msg(str(exc), False, "alerts-assign-result"), dash.no_update
    except Exception:
        log.exception("alert %s: assignment failed", alert_id)
        return (_msg("The alert could not be assigned: please try again.", False,
                     "alerts-assign-result"), dash.no_update)
    # refused or not, the pane and the board redraw with the holder as it is now
    return _msg(result.message, result.ok, "alerts-assign-result"), (changed or 0) + 1

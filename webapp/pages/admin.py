"""Administration: users (create, disable, enable, unlock sign-in, e-mail address and
wards) and the audit log search.

A user's e-mail address and wards decide which alert e-mail they receive (the alert
manager mails the users of the notified role who cover the alert's ward; no wards = every
ward). A bad address or ward name is refused with the reason next to the form.

Every change goes through ``backend.users`` (which audits it with the admin as actor);
validation errors are shown next to the form.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from dash import Input, Output, State, ctx, dcc, html, no_update

from backend import audit, localtime
from backend.auth_policy import Role
from backend.storage import census
from backend.users import (
    UserError,
    create_user,
    disable_user,
    enable_user,
    get_user,
    list_users,
    unknown_wards_note,
    unlock_user,
    update_contact,
)
from webapp.security import (
    current_db,
    current_settings,
    current_username,
    register_page,
    secure_callback,
)

register_page(__name__, "admin")

MAX_AUDIT_ROWS = 500
DEFAULT_AUDIT_DAYS = 7
WARDS_PLACEHOLDER = "every ward (or e.g. ICU-A, ICU-B)"


def _field(label: str, component: Any) -> html.Label:
    return html.Label([html.Span(label, className="field-label"), component], className="field")


def _contact_fields(id_prefix: str, label_suffix: str = "",
                    email_placeholder: str | None = None) -> list[html.Label]:
    """The e-mail and wards inputs, as the create and the change forms both show them."""
    return [
        _field(f"E-mail for alerts{label_suffix}", dcc.Input(
            id=f"{id_prefix}-email", type="text", autoComplete="off", maxLength=254,
            placeholder=email_placeholder)),
        _field(f"Wards covered{label_suffix}", dcc.Input(
            id=f"{id_prefix}-wards", type="text", autoComplete="off",
            placeholder=WARDS_PLACEHOLDER, maxLength=500)),
    ]


def layout(**_query: str) -> html.Div:
    tz = current_settings().timezone
    today = localtime.today(tz)
    roles = [{"label": r.label, "value": r.value} for r in Role]
    return html.Div(
        className="page page-admin",
        children=[
            html.H1("Administration"),
            html.Section(
                className="card",
                children=[
                    html.H2("Users"),
                    html.Div(id="admin-users-table", className="table-wrap"),
                    html.H3("Create a user"),
                    html.Div(
                        className="form-grid",
                        children=[
                            _field("Username", dcc.Input(id="admin-new-username", type="text",
                                                         autoComplete="off", maxLength=64)),
                            _field("Display name", dcc.Input(id="admin-new-display",
                                                             type="text", maxLength=100)),
                            _field("Role", dcc.Dropdown(id="admin-new-role", options=roles,
                                                        placeholder="Choose a role")),
                            _field("Initial password", dcc.Input(
                                id="admin-new-password", type="password",
                                autoComplete="new-password")),
                            _field("Repeat password", dcc.Input(
                                id="admin-new-password2", type="password",
                                autoComplete="new-password")),
                            *_contact_fields("admin-new", " (optional)"),
                        ],
                    ),
                    html.Button("Create user", id="admin-create", n_clicks=0,
                                className="button button-primary"),
                    html.Div(id="admin-create-msg", className="form-message", role="status"),
                    html.H3("Change a user"),
                    html.Div(
                        className="form-row",
                        children=[
                            dcc.Dropdown(id="admin-user-select", placeholder="Choose a user",
                                         className="user-select"),
                            html.Button("Disable", id="admin-disable", n_clicks=0,
                                        className="button button-danger"),
                            html.Button("Enable", id="admin-enable", n_clicks=0,
                                        className="button"),
                            html.Button("Unlock sign-in", id="admin-unlock", n_clicks=0,
                                        className="button",
                                        title="Lift a lock after too many failed sign-ins"),
                        ],
                    ),
                    html.Div(id="admin-toggle-msg", className="form-message", role="status"),
                    html.Div(
                        className="form-grid",
                        children=_contact_fields(
                            "admin-edit", email_placeholder="none: no individual alert e-mail"),
                    ),
                    html.Button("Save e-mail and wards", id="admin-contact-save", n_clicks=0,
                                className="button button-primary"),
                    html.Div(id="admin-contact-msg", className="form-message", role="status"),
                ],
            ),
            html.Section(
                className="card",
                children=[
                    html.H2("Audit log"),
                    html.Div(
                        className="form-grid",
                        children=[
                            _field(f"Days ({tz})", dcc.DatePickerRange(
                                id="audit-dates", display_format="YYYY-MM-DD",
                                start_date=(today - timedelta(days=DEFAULT_AUDIT_DAYS - 1)),
                                end_date=today, max_date_allowed=today)),
                            _field("User", dcc.Input(id="audit-actor", type="text",
                                                     maxLength=64)),
                            _field("Action", dcc.Dropdown(id="audit-action",
                                                          options=list(audit.ACTIONS),
                                                          placeholder="Any action")),
                            _field("Patient id", dcc.Input(id="audit-patient", type="text",
                                                           maxLength=64)),
                        ],
                    ),
                    html.Button("Search", id="audit-search", n_clicks=0,
                                className="button button-primary"),
                    html.Div(id="audit-msg", className="form-message", role="status"),
                    html.Div(id="audit-results", className="table-wrap"),
                ],
            ),
        ],
    )


def _table(header: list[str], rows: list[list[Any]], table_id: str) -> html.Table:
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])),
         html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])],
        className="table", id=table_id,
    )


def _ts(value: datetime | None) -> str:
    return localtime.stamp(value, current_settings().timezone, seconds=False) if value else ""


def _users_view() -> tuple[html.Table, list[dict[str, str]]]:
    users = list_users(current_db())
    rows = [[u.username, u.display_name, u.role.label,
             "disabled" if u.disabled else "active", u.email or "",
             ", ".join(sorted(u.wards)) or "all", "yes" if u.is_demo else "",
             _ts(u.created_ts)] for u in users]
    table = _table(["Username", "Display name", "Role", "State", "E-mail", "Wards", "Demo",
                    "Created"], rows, "admin-users")
    options = [{"label": f"{u.username} ({'disabled' if u.disabled else 'active'})",
                "value": u.username} for u in users]
    return table, options


def _msg(text: str, ok: bool) -> tuple[str, str]:
    return text, "form-message " + ("ok" if ok else "error")


@secure_callback(
    "admin.users",
    Output("admin-users-table", "children"),
    Output("admin-user-select", "options"),
    Output("admin-create-msg", "children"),
    Output("admin-create-msg", "className"),
    Output("admin-toggle-msg", "children"),
    Output("admin-toggle-msg", "className"),
    Output("admin-contact-msg", "children"),
    Output("admin-contact-msg", "className"),
    Output("admin-new-password", "value"),
    Output("admin-new-password2", "value"),
    Input("admin-create", "n_clicks"),
    Input("admin-disable", "n_clicks"),
    Input("admin-enable", "n_clicks"),
    Input("admin-unlock", "n_clicks"),
    Input("admin-contact-save", "n_clicks"),
    State("admin-new-username", "value"),
    State("admin-new-display", "value"),
    State("admin-new-role", "value"),
    State("admin-new-password", "value"),
    State("admin-new-password2", "value"),
    State("admin-new-email", "value"),
    State("admin-new-wards", "value"),
    State("admin-user-select", "value"),
    State("admin-edit-email", "value"),
    State("admin-edit-wards", "value"),
)
def manage_users(_create: int | None, _disable: int | None, _enable: int | None,
                 _unlock: int | None, _save: int | None, username: str | None, display: str | None,
                 role: str | None, password: str | None, password2: str | None,
                 new_email: str | None, new_wards: str | None, selected: str | None,
                 edit_email: str | None, edit_wards: str | None) -> tuple[Any, ...]:
    create_msg: tuple[Any, Any] = (no_update, no_update)
    toggle_msg: tuple[Any, Any] = (no_update, no_update)
    contact_msg: tuple[Any, Any] = (no_update, no_update)
    clear_pw: tuple[Any, Any] = (no_update, no_update)
    db, actor = current_db(), current_username()
    local_domains = current_settings().smtp.local_domains
    trigger = ctx.triggered_id

    if trigger == "admin-create":
        clear_pw = ("", "")
        if not role:
            create_msg = _msg("Role: choose a role.", False)
        elif (password or "") != (password2 or ""):
            create_msg = _msg("Passwords do not match.", False)
        else:
            try:
                user = create_user(db, username or "", password or "", role, display,
                                   actor=actor, via="web", email=new_email, wards=new_wards,
                                   local_domains=local_domains)
                note = unknown_wards_note(user.wards, census.wards(db)) if user.wards else ""
                create_msg = _msg(f"Created {user.username} ({user.role.label}). {note}"
                                  .strip(), True)
            except UserError as e:
                create_msg = _msg(str(e), False)
    elif trigger in ("admin-disable", "admin-enable"):
        if not selected:
            toggle_msg = _msg("Choose a user first.", False)
        elif trigger == "admin-disable" and selected == actor:
            toggle_msg = _msg("You cannot disable your own account.", False)
        else:
            try:
                if trigger == "admin-disable":
                    disable_user(db, selected, actor=actor, via="web")
                    toggle_msg = _msg(f"Disabled {selected}.", True)
                else:
                    enable_user(db, selected, actor=actor, via="web")
                    toggle_msg = _msg(f"Enabled {selected}.", True)
            except UserError as e:
                toggle_msg = _msg(str(e), False)
    elif trigger == "admin-unlock":
        if not selected:
            toggle_msg = _msg("Choose a user first.", False)
        else:
            try:
                was = unlock_user(db, selected, current_settings(), actor=actor, via="web")
                toggle_msg = _msg(f"Unlocked {selected}: they can sign in now." if was else
                                  f"{selected} was not locked; nothing to do.", True)
            except UserError as e:
                toggle_msg = _msg(str(e), False)
    elif trigger == "admin-contact-save":
        if not selected:
            contact_msg = _msg("Choose a user first.", False)
        else:
            try:
                user = update_contact(db, selected, email=edit_email, wards=edit_wards,
                                      local_domains=local_domains, actor=actor, via="web")
                wards = ", ".join(sorted(user.wards)) or "every ward"
                note = unknown_wards_note(user.wards, census.wards(db)) if user.wards else ""
                contact_msg = _msg(f"Saved {user.username}: e-mail {user.email or 'none'}, "
                                   f"{wards}. {note}".strip(), True)
            except UserError as e:
                contact_msg = _msg(str(e), False)

    table, options = _users_view()
    return (table, options, *create_msg, *toggle_msg, *contact_msg, *clear_pw)


@secure_callback(
    "admin.users",
    Output("admin-edit-email", "value"),
    Output("admin-edit-wards", "value"),
    Output("admin-contact-msg", "children", allow_duplicate=True),
    Input("admin-user-select", "value"),
    prevent_initial_call=True,
)
def show_contact(selected: str | None) -> tuple[str, str, str]:
    """The chosen user's current e-mail and wards, ready to edit."""
    user = get_user(current_db(), selected) if selected else None
    if user is None:
        return "", "", ""
    return user.email or "", ", ".join(sorted(user.wards)), ""


def _parse_day(value: str | None, default: date) -> date:
    if not value:
        return default
    return date.fromisoformat(str(value)[:10])


@secure_callback(
    "admin.audit",
    Output("audit-results", "children"),
    Output("audit-msg", "children"),
    Output("audit-msg", "className"),
    Input("audit-search", "n_clicks"),
    State("audit-dates", "start_date"),
    State("audit-dates", "end_date"),
    State("audit-actor", "value"),
    State("audit-action", "value"),
    State("audit-patient", "value"),
)
def search_audit(_n: int | None, start: str | None, end: str | None, actor: str | None,
                 action: str | None, patient_id: str | None) -> tuple[Any, str, str]:
    tz = current_settings().timezone
    today = localtime.today(tz)
    try:
        day_to = _parse_day(end, today)
        day_from = _parse_day(start, day_to - timedelta(days=DEFAULT_AUDIT_DAYS - 1))
        events = audit.search(current_db(), day_from, day_to,
                              actor=(actor or "").strip().lower() or None,
                              action=action or None,
                              patient_id=(patient_id or "").strip() or None,
                              limit=MAX_AUDIT_ROWS, tz=tz)
    except ValueError as e:
        return no_update, *_msg(f"Cannot search: {e}.", False)
    rows = [[localtime.stamp(e.ts, tz), e.actor, e.action,
             f"{e.target_type}:{e.target_id}" if e.target_type else "", e.detail, e.via]
            for e in events]
    note = f"{len(rows)} event(s)" + (" (first 500 shown)" if len(rows) >= MAX_AUDIT_ROWS else "")
    table = _table(["Time", "User", "Action", "Target", "Detail", "Via"], rows,
                   "audit-table")
    return table, *_msg(note, True)

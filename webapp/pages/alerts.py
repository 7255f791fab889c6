"""Alert inbox of the clinical roles (placeholder)."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from webapp.security import register_page, secure_callback

register_page(__name__, "alerts")

FILTERS = {"active": "Active", "mine": "Assigned to me", "all": "All of today"}


def layout(**_query: str) -> html.Div:
    return html.Div(
        className="page page-alerts",
        children=[
            html.H1("Alerts"),
            dcc.RadioItems(id="alerts-filter", value="active", inline=True,
                           options=[{"label": v, "value": k} for k, v in FILTERS.items()]),
            html.Div(id="alerts-list", className="muted"),
        ],
    )


@secure_callback("alerts", Output("alerts-list", "children"), Input("alerts-filter", "value"))
def list_alerts(which: str | None) -> str:
    label = FILTERS.get(which or "active", FILTERS["active"])
    return f"{label}: the alert inbox is not connected yet."

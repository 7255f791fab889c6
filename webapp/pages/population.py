"""Population view for administrators: aggregated counts only, never PHI (placeholder)."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from webapp.security import register_page, secure_callback

register_page(__name__, "population")

PERIODS = {"7": "Last 7 days", "30": "Last 30 days", "365": "Last year"}


def layout(**_query: str) -> html.Div:
    return html.Div(
        className="page page-population",
        children=[
            html.H1("Population"),
            dcc.RadioItems(id="population-period", value="30", inline=True,
                           options=[{"label": v, "value": k} for k, v in PERIODS.items()]),
            html.Div(id="population-summary", className="muted"),
        ],
    )


@secure_callback("population", Output("population-summary", "children"),
                 Input("population-period", "value"))
def summary(period: str | None) -> str:
    label = PERIODS.get(period or "30", PERIODS["30"])
    return f"{label}: aggregated statistics will appear here."

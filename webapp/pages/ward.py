"""Ward monitor: every bed of a ward at a glance. Placeholder grid until the live data
path (``webapp.live``) is wired in."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from webapp.security import register_page, secure_callback

register_page(__name__, "ward")

WARDS = ("ICU-A", "ICU-B")
BEDS_PER_WARD = 12


def layout(**_query: str) -> html.Div:
    return html.Div(
        className="page page-ward",
        children=[
            html.Div(
                className="page-header",
                children=[
                    html.H1("Ward monitor"),
                    dcc.Dropdown(
                        id="ward-select", options=list(WARDS), value=WARDS[0],
                        clearable=False, className="ward-select",
                    ),
                ],
            ),
            html.Div(id="ward-grid", className="bed-grid"),
        ],
    )


def _tile(ward: str, bed: int) -> html.Div:
    return html.Div(
        className="bed-tile placeholder",
        children=[
            html.Div(f"{ward} · Bed {bed:02d}", className="bed-name"),
            html.Div("--", className="bed-value"),
            html.Div("no live data yet", className="bed-note"),
        ],
    )


@secure_callback("ward", Output("ward-grid", "children"), Input("ward-select", "value"))
def render_grid(ward: str | None) -> list[html.Div]:
    ward = ward if ward in WARDS else WARDS[0]
    return [_tile(ward, n) for n in range(1, BEDS_PER_WARD + 1)]

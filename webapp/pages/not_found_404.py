"""Shown by Dash Pages for a path no page serves (for signed-in users)."""

from __future__ import annotations

import dash
from dash import dcc, html

# Any signed-in user may see it (it holds nothing); every page needs a permission.
dash.register_page(__name__, path="/404", title="Not found - ICU Monitor", permission="shell")


def layout(**_query: str) -> html.Div:
    return html.Div(
        className="page",
        children=[
            html.H1("Page not found"),
            dcc.Link("Back to the start page", href="/", className="button button-primary"),
        ],
    )

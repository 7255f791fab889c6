"""Risk-model registry and evaluation, for physicians and administrators (placeholder)."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from webapp.security import register_page, secure_callback

register_page(__name__, "models")

VIEWS = {"current": "Deployed model", "evaluation": "Evaluation", "history": "History"}


def layout(**_query: str) -> html.Div:
    return html.Div(
        className="page page-models",
        children=[
            html.H1("Models"),
            dcc.RadioItems(id="models-view", value="current", inline=True,
                           options=[{"label": v, "value": k} for k, v in VIEWS.items()]),
            html.Div(id="models-body", className="muted"),
        ],
    )


@secure_callback("models", Output("models-body", "children"), Input("models-view", "value"))
def show(view: str | None) -> str:
    label = VIEWS.get(view or "current", VIEWS["current"])
    return f"{label}: the model registry is not connected yet."

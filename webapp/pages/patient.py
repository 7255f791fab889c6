"""One patient: vitals, scores and alerts (placeholder). Nurses and charge nurses read;
physicians may also write (``patient.write``), which the server enforces per callback."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html
from flask_login import current_user

from backend import audit
from backend.auth_policy import allowed
from webapp.security import current_db, register_page, secure_callback

register_page(__name__, "patient")


def layout(patient_id: str | None = None, **_query: str) -> html.Div:
    if not patient_id:
        return html.Div(
            className="page page-patient",
            children=[
                html.H1("Patient"),
                html.P("Open a patient from the ward monitor or the alert inbox.",
                       className="muted"),
            ],
        )
    patient_id = patient_id[:64]
    if current_user.is_authenticated:
        audit.record(current_db(), current_user.username, audit.PATIENT_VIEWED,
                     audit.PATIENT, patient_id, "", "web")
    can_write = current_user.is_authenticated and allowed(current_user.role, "patient.write")
    return html.Div(
        className="page page-patient",
        children=[
            dcc.Store(id="patient-id", data=patient_id),
            html.H1(f"Patient {patient_id}"),
            html.P("Vitals, scores and alert timeline will appear here.", className="muted"),
            html.Section(
                className="card",
                children=[
                    html.H2("Clinical note"),
                    dcc.Textarea(id="patient-note", disabled=not can_write,
                                 placeholder="Physicians only" if not can_write else "",
                                 className="textarea"),
                    html.Button("Save note", id="patient-note-save", n_clicks=0,
                                disabled=not can_write, className="button button-primary"),
                    html.Div(id="patient-note-msg", className="form-message"),
                ],
            ),
        ],
    )


@secure_callback("patient.write", Output("patient-note-msg", "children"),
                 Input("patient-note-save", "n_clicks"), State("patient-id", "data"),
                 State("patient-note", "value"), prevent_initial_call=True)
def save_note(n_clicks: int | None, patient_id: str | None, note: str | None) -> str:
    if not n_clicks or not patient_id:
        return ""
    return "Notes are not stored yet (placeholder)."

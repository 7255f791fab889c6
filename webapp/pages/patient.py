"""One patient: header, synchronised timeline with alerts and notes, alert history, notes,
FHIR export. Clinical roles read (``patient``); physicians also write notes
(``patient.write``), which the server enforces on the callback, not only by hiding the
form. Every opening of the page, every note and every export is audited."""

from __future__ import annotations

import json
import time

from dash import Input, Output, State, clientside_callback, ctx, dash_table, dcc, html, no_update
from flask_login import current_user
from werkzeug.exceptions import BadRequest

from backend import audit, localtime
from backend.auth_policy import allowed
from backend.fhir import bundle_dict
from backend.identifiers import identifier_problem
from backend.notes import NoteError, add_note, notes_for
from backend.patient_record import (
    FIT_MAX_MS,
    alerts_between,
    current_state,
    first_reading_ms,
    fit_window,
    latest_risk,
    load_timeline,
    newest_reading_ms,
    risk_series,
    window_end,
)
from backend.storage import census
from backend.storage.readings import ReadingStore
from backend.storage.statements import store as session_store
from backend.storage.waveforms import WaveformStore
from backend.timeline import HOUR_MS, PRESETS_MS, check_window
from webapp.patient.ecg import ecg_figure
from webapp.patient.figure import HEIGHT_PX, iso, timeline_figure
from webapp.patient.parts import (
    ALERT_COLUMNS,
    alert_marks,
    alert_rows,
    freshness_text,
    header,
    news2_text,
    note_marks,
    notes_list,
    parse_typed,
    risk_text,
    zoom_range,
)
from webapp.security import current_db, current_settings, register_page, secure_callback

register_page(__name__, "patient")

REFRESH_MS = 15_000  # a live patient's preset window slides, and freshness is re-checked
ECG_SECONDS = 10.0  # one strip: 250 mm of paper
EXPORT_MAX_MS = HOUR_MS  # ~25,000 Observations; a longer range is refused with a message
FIT = "fit"  # the default: the patient's data of the last 8 h (patient_record.fit_window)
PRESET_OPTIONS = [{"label": "fit data (≤ 8 h)", "value": FIT}] + [
    {"label": k.replace("h", " h"), "value": k} for k in PRESETS_MS] + [
    {"label": "custom", "value": "custom"}]

# The graph's width in pixels, for placing the event labels (webapp.patient.labels);
# re-read at every refresh, so a resized window gets labels placed for its width. Its
# first value (always set, 0 if the graph is not laid out yet) draws the timeline once.
_WIDTH_JS = """
function(_n, _id, current) {
    var g = document.getElementById('patient-timeline');
    var w = g ? Math.round(g.getBoundingClientRect().width) : 0;
    if (current !== null && current !== undefined && (!w || w === current)) {
        return window.dash_clientside.no_update;
    }
    return w;
}
"""


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
    problem = identifier_problem(patient_id, "Patient id")
    if problem:
        return html.Div(className="page page-patient", children=[
            html.H1("Patient"), html.P(problem, className="form-message error",
                                       id="patient-bad-id")])
    db = current_db()
    if current_user.is_authenticated:
        audit.record(db, current_user.username, audit.PATIENT_VIEWED,
                     audit.PATIENT, patient_id, "", "web")
    can_write = current_user.is_authenticated and allowed(current_user.role, "patient.write")
    now_ms = int(time.time() * 1000)
    tz = current_settings().timezone
    admission = census.get(db, patient_id)
    newest = newest_reading_ms(db, patient_id, now_ms)
    state = current_state(db, admission.ward, admission.bed, patient_id) if admission else None
    end = window_end(newest, now_ms)
    start, _ = fit_window(first_reading_ms(db, patient_id, end - FIT_MAX_MS, end), end)
    zone_name = localtime.abbreviation(end, tz)
    return html.Div(
        className="page page-patient",
        children=[
            dcc.Store(id="patient-id", data=patient_id),
            dcc.Store(id="patient-anchor", data=end),
            # live: the presets follow the clock (refreshed every REFRESH_MS)
            dcc.Store(id="patient-live", data=end == now_ms),
            dcc.Interval(id="patient-refresh", interval=REFRESH_MS),
            dcc.Store(id="patient-range", data={"start": start, "end": end}),
            dcc.Store(id="patient-notes-version", data=0),
            dcc.Store(id="patient-width"),
            header(patient_id, admission, state, now_ms, newest,
                   latest_risk(db, patient_id, now_ms), tz),
            html.Section(className="card pt-timeline-card", children=[
                html.Div(className="pt-controls", children=[
                    dcc.RadioItems(id="patient-range-preset", options=PRESET_OPTIONS,
                                   value=FIT, inline=True, className="pt-presets"),
                    html.Label([f"from ({zone_name}) ", dcc.Input(
                        id="patient-from", type="text", debounce=True,
                        style={"width": "12rem"},
                        placeholder="YYYY-MM-DD HH:MM", value=localtime.field_text(start, tz))],
                        title=f"Local time, {tz}"),
                    html.Label(["to ", dcc.Input(
                        id="patient-to", type="text", debounce=True,
                        style={"width": "12rem"},
                        placeholder="YYYY-MM-DD HH:MM", value=localtime.field_text(end, tz))]),
                    html.Button("Show range", id="patient-range-apply", n_clicks=0,
                                className="button"),
                    html.Button("Download FHIR Bundle", id="patient-fhir", n_clicks=0,
                                className="button button-quiet",
                                title="The shown range (at most 1 h) as FHIR R4 Observations"),
                    dcc.Download(id="patient-fhir-download"),
                ]),
                html.Div(id="patient-range-msg", className="form-message", role="status"),
                html.Div(id="patient-fhir-msg", className="form-message", role="status"),
                dcc.Loading(dcc.Graph(id="patient-timeline",
                                      config={"displaylogo": False, "scrollZoom": False},
                                      figure={"data": [], "layout": {"height": HEIGHT_PX}}),
                            type="default"),
            ]),
            html.Section(className="card", children=[
                html.H2("Alert history"),
                html.P("Numbers match the markers on the timeline; choose a row to centre "
                       "the timeline on that alert.", className="muted"),
                dash_table.DataTable(id="patient-alerts-table", columns=ALERT_COLUMNS,
                                     data=[], page_size=12, style_as_list_view=True,
                                     style_cell={"textAlign": "left",
                                                 "backgroundColor": "transparent",
                                                 "color": "inherit"},
                                     style_header={"fontWeight": "bold"}),
            ]),
            _ecg_section(db, patient_id),
            html.Section(className="card", children=[
                html.H2("Clinical notes"),
                *(_note_form() if can_write else [html.P(
                    "Notes are written by physicians; you can read them here.",
                    className="muted", id="patient-notes-readonly")]),
                html.Div(id="patient-notes"),
            ]),
        ],
    )


def _ecg_sources(db, patient_id: str) -> dict[str, list]:
    """Recorded waveforms of the patient: source -> its channels (in stored order)."""
    out: dict[str, list] = {}
    channels = session_store(WaveformStore, db).channels(patient_id)
    for ch in sorted(channels, key=lambda c: c.channel):
        out.setdefault(ch.source or "monitor", []).append(ch)
    return out


def _ecg_section(db, patient_id: str) -> html.Section:
    sources = _ecg_sources(db, patient_id)
    if not sources:
        return html.Section(className="card", children=[
            html.H2("ECG strip"),
            html.P("No waveform recorded for this patient.", className="muted",
                   id="patient-ecg-none")])
    options = [{"label": f"{src} ({', '.join(c.channel for c in chs)})", "value": src}
               for src, chs in sources.items()]
    return html.Section(className="card", children=[
        html.H2("ECG strip"),
        html.Div(className="pt-ecg-controls", children=[
            dcc.Dropdown(id="patient-ecg-source", options=options,
                         value=options[0]["value"], clearable=False,
                         style={"minWidth": "24rem"}),
            html.Button("◀ 10 s", id="patient-ecg-prev", n_clicks=0, className="button"),
            html.Button("10 s ▶", id="patient-ecg-next", n_clicks=0, className="button"),
            html.Button("Go to alarm", id="patient-ecg-alarm", n_clicks=0,
                        className="button"),
            html.Span(id="patient-ecg-msg", className="form-message", role="status"),
        ]),
        dcc.Store(id="patient-ecg-at", data=0.0),
        html.Div(dcc.Graph(id="patient-ecg", config={"displayModeBar": False,
                                                     "responsive": False}),
                 style={"overflowX": "auto"}),
    ])


def _note_form() -> list:
    return [
        dcc.Textarea(id="patient-note", className="textarea", maxLength=4000,
                     placeholder="Observation, decision or plan (plain text)"),
        html.Button("Save note", id="patient-note-save", n_clicks=0,
                    className="button button-primary"),
        html.Div(id="patient-note-msg", className="form-message", role="status"),
    ]


def _preset_window(preset, anchor, patient_id):
    if preset in PRESETS_MS:
        return anchor - PRESETS_MS[preset], anchor
    return fit_window(first_reading_ms(current_db(), patient_id, anchor - FIT_MAX_MS, anchor),
                      anchor)


def _range_from_inputs(trigger, preset, anchor, from_text, to_text, relayout, active, rows,
                       current, patient_id, tz):
    """The window the user asked for, or ``None`` to keep the current one."""
    if trigger == "patient-range-preset" and (preset in PRESETS_MS or preset == FIT):
        return _preset_window(preset, anchor, patient_id)
    if trigger == "patient-range-apply" or (trigger == "patient-range-preset"
                                            and preset == "custom"):
        return parse_typed(from_text, tz), parse_typed(to_text, tz)
    if trigger == "patient-timeline":
        zoom = zoom_range(relayout)
        if zoom is True:
            return _preset_window(preset if preset in PRESETS_MS else FIT, anchor, patient_id)
        return zoom
    if trigger == "patient-alerts-table" and active and rows:
        row = rows[active["row"]] if active["row"] < len(rows) else None
        if row:
            return row["at_ms"] - 30 * 60_000, row["at_ms"] + 30 * 60_000
    if current:
        return current["start"], current["end"]
    return _preset_window(FIT, anchor, patient_id)


@secure_callback(
    "patient",
    Output("patient-timeline", "figure"), Output("patient-range", "data"),
    Output("patient-range-msg", "children"), Output("patient-alerts-table", "data"),
    Output("patient-notes", "children"), Output("patient-anchor", "data"),
    Output("patient-range-preset", "value"), Output("patient-from", "value"),
    Output("patient-to", "value"),
    Input("patient-range-preset", "value"), Input("patient-range-apply", "n_clicks"),
    Input("patient-timeline", "relayoutData"), Input("patient-alerts-table", "active_cell"),
    Input("patient-notes-version", "data"), Input("patient-refresh", "n_intervals"),
    Input("patient-width", "data"),
    State("patient-from", "value"), State("patient-to", "value"),
    State("patient-anchor", "data"), State("patient-id", "data"),
    State("patient-range", "data"), State("patient-alerts-table", "data"),
    State("patient-live", "data"),
    prevent_initial_call=True,  # the first draw follows the graph's width (_WIDTH_JS)
)
def draw_timeline(preset, _apply, relayout, active, _notes_version, _tick, width, from_text,
                  to_text, anchor, patient_id, current, table_rows, live):
    keep = (no_update,) * 9
    if not patient_id or not anchor:
        return keep
    tz = current_settings().timezone
    trigger = ctx.triggered_id
    sliding = (live and (preset in PRESETS_MS or preset == FIT) and current
               and current.get("end") == anchor)
    if trigger == "patient-width":
        trigger = None  # the same window, labels placed for the new width
    if trigger == "patient-refresh":
        # only a live patient on a preset window slides; a zoom or custom range stays put
        if not sliding:
            return keep
        anchor = int(time.time() * 1000)
        trigger = "patient-range-preset"
    elif trigger == "patient-notes-version" and sliding:
        anchor = int(time.time() * 1000)  # so the note just written is in the window
        trigger = "patient-range-preset"
    try:
        window = _range_from_inputs(trigger, preset, anchor, from_text, to_text,
                                    relayout, active, table_rows, current, patient_id, tz)
        if window is None:  # a relayout that was not a zoom (e.g. hover mode)
            return keep
        start, end = window
        check_window(start, end)
    except ValueError as exc:
        return (no_update, no_update, str(exc), *(no_update,) * 6)
    db = current_db()
    timeline = load_timeline(db, patient_id, start, end)
    alerts = alerts_between(db, patient_id, start, end)
    notes = notes_for(db, patient_id)
    in_window = [n for n in notes if start <= n.ts_ms < end]
    series = {**timeline.series, "risk": risk_series(db, patient_id, start, end)}
    risk_now = latest_risk(db, patient_id, end)
    fig = timeline_figure(series, start, end, alert_marks(alerts, tz),
                          note_marks(in_window), resolution=timeline.resolution,
                          risk_threshold=risk_now.threshold if risk_now else None, tz=tz,
                          graph_width_px=width)
    msg = (f"{localtime.stamp(start, tz)} – {localtime.stamp(end, tz)} · "
           f"{len(alerts)} alert(s) · "
           f"{'raw readings' if timeline.resolution == 'raw' else 'per-minute extremes'}")
    # a window that is not a preset's shows "custom", with its ends in the two fields
    is_preset = end == anchor and (
        any(end - start == ms for ms in PRESETS_MS.values())
        or (preset == FIT and (start, end) == _preset_window(FIT, anchor, patient_id)))
    return (fig, {"start": start, "end": end}, msg, alert_rows(alerts, tz),
            notes_list(notes, tz), anchor, no_update if is_preset else "custom",
            localtime.field_text(start, tz), localtime.field_text(end, tz))


clientside_callback(_WIDTH_JS, Output("patient-width", "data"),
                    Input("patient-refresh", "n_intervals"), Input("patient-id", "data"),
                    State("patient-width", "data"))


@secure_callback(
    "patient",
    Output("patient-freshness", "children"), Output("patient-freshness", "className"),
    Output("patient-news2", "children"), Output("patient-risk", "children"),
    Input("patient-refresh", "n_intervals"), State("patient-id", "data"),
    prevent_initial_call=True,
)
def freshness(_tick, patient_id):
    """The header's live facts: the newest reading's age (DATA DELAYED in words when it
    is old), the current NEWS2 and the newest hourly risk score."""
    if not patient_id:
        return no_update, no_update, no_update, no_update
    db = current_db()
    now = int(time.time() * 1000)
    newest = newest_reading_ms(db, patient_id, now)
    admission = census.get(db, patient_id)
    state = current_state(db, admission.ward, admission.bed, patient_id) if admission else None
    return (*freshness_text(newest, now, current_settings().timezone), news2_text(state),
            risk_text(latest_risk(db, patient_id, now)))


def _require(value, kinds: tuple[type, ...], what: str):
    """A callback argument of the type the page sends, else 400 (a hand-made request)."""
    if value is not None and not isinstance(value, kinds):
        raise BadRequest(f"{what}: expected {' or '.join(k.__name__ for k in kinds)}")
    return value


@secure_callback(
    "patient.write",
    Output("patient-note-msg", "children"), Output("patient-notes-version", "data"),
    Output("patient-note", "value"),
    Input("patient-note-save", "n_clicks"), State("patient-id", "data"),
    State("patient-note", "value"), State("patient-notes-version", "data"),
    prevent_initial_call=True,
)
def save_note(n_clicks, patient_id, text, version):
    _require(n_clicks, (int,), "n_clicks")
    _require(patient_id, (str,), "patient id")
    _require(text, (str,), "note")
    _require(version, (int,), "notes version")
    if not n_clicks or not patient_id:
        return "", no_update, no_update
    try:
        note = add_note(current_db(), patient_id, current_user.username,
                        current_user.role.value, text)
    except NoteError as exc:
        return str(exc), no_update, no_update
    return (f"Note saved at {localtime.stamp(note.ts_ms, current_settings().timezone)}.",
            (version or 0) + 1, "")


@secure_callback(
    "patient",
    Output("patient-fhir-download", "data"), Output("patient-fhir-msg", "children"),
    Input("patient-fhir", "n_clicks"), State("patient-id", "data"),
    State("patient-range", "data"), prevent_initial_call=True,
)
def export_fhir(n_clicks, patient_id, current):
    if not n_clicks or not patient_id or not current:
        return no_update, ""
    start, end = int(current["start"]), int(current["end"])
    if end - start > EXPORT_MAX_MS:
        return no_update, ("Zoom in to at most 1 hour to export: a FHIR Bundle holds one "
                           "Observation per value, and an hour of 1 Hz data is already "
                           "about 25,000.")
    db = current_db()
    tz = current_settings().timezone
    rows = session_store(ReadingStore, db).between(patient_id, start, end)
    bundle = bundle_dict(patient_id, rows, start_ms=start, end_ms=end, tz=tz)
    audit.record(db, current_user.username, audit.PATIENT_EXPORTED, audit.PATIENT,
                 patient_id, f"FHIR Bundle {iso(start)}..{iso(end)} UTC, "
                 f"{len(bundle['entry'])} observations", "web")
    local = localtime.to_local(start, tz)
    name = f"patient-{patient_id}-{local:%Y-%m-%dT%H%M}{local.tzname()}.fhir.json"
    return (dict(content=json.dumps(bundle), filename=name.replace(":", ""),
                 type="application/fhir+json"),
            f"Exported {len(bundle['entry'])} observations.")


@secure_callback(
    "patient",
    Output("patient-ecg", "figure"), Output("patient-ecg-at", "data"),
    Output("patient-ecg-msg", "children"),
    Input("patient-ecg-source", "value"), Input("patient-ecg-prev", "n_clicks"),
    Input("patient-ecg-next", "n_clicks"), Input("patient-ecg-alarm", "n_clicks"),
    State("patient-ecg-at", "data"), State("patient-id", "data"),
)
def draw_ecg(source, _prev, _next, _alarm, at, patient_id):
    if not patient_id or not source:
        return no_update, no_update, ""
    db = current_db()
    channels = _ecg_sources(db, patient_id).get(source)
    if not channels:
        return no_update, no_update, "This waveform is no longer available."
    store = session_store(WaveformStore, db)
    t0 = min(c.first_ts for c in channels)
    at = float(at or 0.0)
    trigger = ctx.triggered_id
    msg = ""
    if trigger == "patient-ecg-source":
        at = 0.0
    elif trigger == "patient-ecg-prev":
        at = max(0.0, at - ECG_SECONDS)
    elif trigger == "patient-ecg-next":
        at += ECG_SECONDS
    elif trigger == "patient-ecg-alarm":
        alarm_s = _first_alarm_s(store, patient_id, channels[0].channel, t0)
        if alarm_s is None:
            msg = "This recording has no bedside alarm."
        else:
            at = max(0.0, alarm_s - ECG_SECONDS * 0.6)
    start_ms = t0 + int(at * 1000)
    data = {c.channel: (c.units, store.between(patient_id, c.channel, start_ms,
                                               start_ms + int(ECG_SECONDS * 1000)))
            for c in channels}
    # ECG leads first, then the rest (pleth)
    data = dict(sorted(data.items(), key=lambda kv: kv[1][0].lower() != "mv"))
    fig = ecg_figure(data, t0, at, ECG_SECONDS,
                     title=f"{source} · {at:.0f}-{at + ECG_SECONDS:.0f} s")
    return fig, at, msg


def _first_alarm_s(store: WaveformStore, patient_id: str, channel: str,
                   t0: int) -> float | None:
    """Seconds from the recording's start to its first alarm annotation (first hour)."""
    for c in store.between(patient_id, channel, t0, t0 + HOUR_MS):
        for off, sym in zip(c.ann_offsets, c.ann_symbols, strict=True):
            if sym.startswith("alarm"):
                return (c.start_ts - t0) / 1000 + off / c.fs
    return None

"""Pieces of the patient page that are pure presentation: header, alert table rows, notes
list and the parsing of the range controls. Everything clinical comes from ``backend``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from dash import html

from backend.census import Admission
from backend.notes import Note
from backend.patient_record import AlertHistory
from webapp.patient.figure import AlertMark, NoteMark

SEX = {"F": "female", "M": "male", "U": "unknown sex"}
_RANGE_KEY = re.compile(r"^xaxis\d*\.range\[(0|1)\]$")


def clock(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%d %b %H:%M:%S")


def parse_when(text: str | None) -> int:
    """A date-time typed or sent by plotly (``2026-12-03 05:10:22.5``, ``...T05:10``),
    read as UTC, in ms; ``ValueError`` with a message for the screen."""
    if not text or not str(text).strip():
        raise ValueError("Enter both the start and the end of the range.")
    raw = str(text).strip().replace("T", " ")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"'{raw[:40]}' is not a date and time (YYYY-MM-DD HH:MM).") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def zoom_range(relayout: Mapping | None) -> tuple[int, int] | bool | None:
    """The x range a plotly zoom asked for; ``True`` for "reset axes" (autorange);
    ``None`` when the relayout event was not about the x range."""
    if not relayout:
        return None
    if any(k.endswith("autorange") and k.startswith("xaxis") for k in relayout):
        return True
    ends: dict[str, str] = {}
    for key, value in relayout.items():
        m = _RANGE_KEY.match(key)
        if m:
            ends[m.group(1)] = value
        elif re.match(r"^xaxis\d*\.range$", key) and isinstance(value, list) \
                and len(value) == 2:
            ends = {"0": value[0], "1": value[1]}
    if set(ends) != {"0", "1"}:
        return None
    return parse_when(ends["0"]), parse_when(ends["1"])


def header(patient_id: str, admission: Admission | None, state: dict | None,
           now_ms: int, newest_ms: int | None) -> html.Div:
    facts = []
    if admission is not None:
        facts += [("Ward", admission.ward), ("Bed", admission.bed)]
        if admission.age is not None:
            facts.append(("Age", str(admission.age)))
        if admission.sex:
            facts.append(("Sex", SEX.get(admission.sex, admission.sex)))
    news2 = state.get("news2") if state else None
    band = (state.get("news2_band") or "") if state else ""
    facts.append(("NEWS2", f"{news2} ({band})" if news2 is not None else "-"))
    # The sepsis model is trained and registered (issue 2) but not yet scored live: no
    # table of live risk scores exists, so the header says so instead of showing a number.
    facts.append(("Risk score", "not scored live yet"))
    text, css = freshness_text(newest_ms, now_ms)
    return html.Div(
        className="pt-header card",
        children=[
            html.H1([f"Patient {patient_id}",
                     html.Span(f" {admission.label}" if admission and admission.label else "",
                               className="pt-label")], id="patient-title"),
            html.Dl([item for k, v in facts for item in (html.Dt(k), html.Dd(v))],
                    className="pt-facts", id="patient-facts"),
            html.Div(text, className=css, id="patient-freshness", role="status"),
        ],
    )


DELAYED_AFTER_MS = 60_000
NOT_MONITORED_AFTER_MS = 24 * 3_600_000


def freshness_text(newest_ms: int | None, now_ms: int) -> tuple[str, str]:
    """What the header says about the newest reading, and its CSS class. A gap of over
    a minute (but under a day: then the patient is simply not monitored) is DATA
    DELAYED, in words, not only in colour."""
    if newest_ms is None:
        return "No readings in the last 7 days", "pt-fresh pt-fresh--none"
    age = max(0, now_ms - newest_ms)
    when = f"Last reading {clock(newest_ms)} UTC"
    if age <= DELAYED_AFTER_MS:
        return when, "pt-fresh"
    if age < NOT_MONITORED_AFTER_MS:
        return (f"DATA DELAYED: no reading for {age // 60_000} min ({when})",
                "pt-fresh pt-delayed")
    return f"Not monitored now ({when})", "pt-fresh pt-fresh--none"


def lifecycle(a: AlertHistory) -> str:
    parts = [f"onset {clock(a.at_ms)}", f"raised {clock(a.detected_ms)}"]
    if a.status == "acknowledged" or a.status_by:
        parts.append(f"acknowledged by {a.status_by or '?'} {clock(a.status_ms)}")
    if a.cleared_ms:
        parts.append(f"resolved {clock(a.cleared_ms)}")
    elif a.status not in ("cleared",):
        parts.append("still active")
    return " · ".join(parts)


def alert_marks(alerts: Sequence[AlertHistory]) -> list[AlertMark]:
    return [AlertMark(i, a.alert_id, a.at_ms, a.priority, a.rule, a.message,
                      lifecycle(a)) for i, a in enumerate(alerts, start=1)]


def alert_rows(alerts: Sequence[AlertHistory]) -> list[dict]:
    return [{"n": f"#{i}", "onset": clock(a.at_ms), "raised": clock(a.detected_ms),
             "priority": a.priority.upper(),
             "rule": a.rule, "message": a.message, "status": a.status,
             "by": a.status_by or "", "acknowledged": clock(a.status_ms)
             if a.status_by else "", "resolved": clock(a.cleared_ms) if a.cleared_ms else "",
             "at_ms": a.at_ms}
            for i, a in enumerate(alerts, start=1)]


ALERT_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("#", "n"), ("Onset (UTC)", "onset"), ("Raised", "raised"), ("Priority", "priority"),
    ("Rule", "rule"),
    ("Message", "message"), ("Status", "status"), ("Acknowledged by", "by"),
    ("at", "acknowledged"), ("Resolved", "resolved"))]


def note_marks(notes: Sequence[Note]) -> list[NoteMark]:
    return [NoteMark(n.ts_ms, n.author, n.body[:80]) for n in notes]


def notes_list(notes: Sequence[Note]) -> html.Ul | html.P:
    if not notes:
        return html.P("No notes yet.", className="muted", id="patient-notes-empty")
    # The body is a plain string child: Dash/React renders it as text, so markup typed
    # into a note is shown, never interpreted.
    return html.Ul([
        html.Li([html.Div(f"{clock(n.ts_ms)} UTC · {n.author}", className="pt-note-meta"),
                 html.Div(n.body, className="pt-note-body")], className="pt-note")
        for n in notes
    ], className="pt-notes")

"""Pieces of the patient page that are pure presentation: header, alert table rows, notes
list and the parsing of the range controls. Everything clinical comes from ``backend``.
Times are the hospital's local time with the zone (``backend.localtime``); ``tz`` is its
IANA name (``None``: the settings' zone)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from dash import html

from backend import localtime
from backend.admission import Admission
from backend.alerting.status import ENDED, AlertStatus
from backend.messages import ValidatedReading
from backend.notes import Note
from backend.patient_record import AlertHistory, RiskNow
from webapp.patient.figure import AlertMark, NoteMark

SEX = {"F": "female", "M": "male", "U": "unknown sex"}
_RANGE_KEY = re.compile(r"^xaxis\d*\.range\[(0|1)\]$")


def clock(ms: int | None, tz: str | None = None) -> str:
    """``03 Dec 14:03:05 CET``."""
    return localtime.day_clock(ms, tz)


def parse_when(text: str | None) -> int:
    """An x value sent by plotly (``2026-12-03 05:10:22.5``, ``...T05:10``): the timeline's
    x values are UTC instants, so it is read as UTC; in ms. ``ValueError`` with a
    message for the screen."""
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


def parse_typed(text: str | None, tz: str | None = None) -> int:
    """A date-time typed into the range fields, in the hospital's local time (see
    ``backend.localtime.parse``), in ms; ``ValueError`` with a message for the screen."""
    if not text or not str(text).strip():
        raise ValueError("Enter both the start and the end of the range.")
    return localtime.parse_ms(text, tz)


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


def risk_text(risk: RiskNow | None) -> str:
    """The header's risk fact: the newest hourly score against its model's threshold,
    in words as well as numbers (above / below)."""
    if risk is None:
        return "no live score in the last 24 h"
    side = "ABOVE" if risk.above else "below"
    return f"{risk.risk:.2f} ({side} threshold {risk.threshold:.2f}, model {risk.model_version})"


def news2_text(state: ValidatedReading | None) -> str:
    news2 = state.news2 if state else None
    band = (state.news2_band or "") if state else ""
    return f"{news2} ({band})" if news2 is not None else "-"


def header(patient_id: str, admission: Admission | None, state: ValidatedReading | None,
           now_ms: int, newest_ms: int | None, risk: RiskNow | None = None,
           tz: str | None = None) -> html.Div:
    """The header. NEWS2, the risk and the freshness line have ids: the page refreshes
    them (``patient-news2``, ``patient-risk``, ``patient-freshness``)."""
    facts: list[tuple[str, str, str | None]] = []
    if admission is not None:
        facts += [("Ward", admission.ward, None), ("Bed", admission.bed, None)]
        if admission.age is not None:
            facts.append(("Age", str(admission.age), None))
        if admission.sex:
            facts.append(("Sex", SEX.get(admission.sex, admission.sex), None))
    facts.append(("NEWS2", news2_text(state), "patient-news2"))
    facts.append(("Sepsis risk", risk_text(risk), "patient-risk"))
    text, css = freshness_text(newest_ms, now_ms, tz)
    return html.Div(
        className="pt-header card",
        children=[
            html.H1([f"Patient {patient_id}",
                     html.Span(f" {admission.label}" if admission and admission.label else "",
                               className="pt-label")], id="patient-title"),
            html.Dl([item for k, v, i in facts
                     for item in (html.Dt(k), html.Dd(v, id=i) if i else html.Dd(v))],
                    className="pt-facts", id="patient-facts"),
            html.Div(text, className=css, id="patient-freshness", role="status"),
        ],
    )


DELAYED_AFTER_MS = 60_000
NOT_MONITORED_AFTER_MS = 24 * 3_600_000


def freshness_text(newest_ms: int | None, now_ms: int,
                   tz: str | None = None) -> tuple[str, str]:
    """What the header says about the newest reading, and its CSS class. A gap of over
    a minute (but under a day: then the patient is simply not monitored) is DATA
    DELAYED, in words, not only in colour."""
    if newest_ms is None:
        return "No readings in the last 7 days", "pt-fresh pt-fresh--none"
    age = max(0, now_ms - newest_ms)
    when = f"Last reading {clock(newest_ms, tz)}"
    if age <= DELAYED_AFTER_MS:
        return when, "pt-fresh"
    if age < NOT_MONITORED_AFTER_MS:
        return (f"DATA DELAYED: no reading for {age // 60_000} min ({when})",
                "pt-fresh pt-delayed")
    return f"Not monitored now ({when})", "pt-fresh pt-fresh--none"


STATUS_WORDS = {AlertStatus.RAISED: "raised", AlertStatus.ESCALATED: "escalated",
                AlertStatus.SILENCED: "silenced", AlertStatus.ACKNOWLEDGED: "acknowledged",
                AlertStatus.RESOLVED: "resolved", AlertStatus.AUTO_RESOLVED: "auto-resolved",
                AlertStatus.CLEARED: "ended by itself"}


def status_text(a: AlertHistory) -> str:
    """The alert's status in words, with the escalation level reached."""
    text = STATUS_WORDS.get(a.status, a.status)
    if a.escalation_level and a.status != AlertStatus.ESCALATED:
        text += f" (escalated to level {a.escalation_level})"
    elif a.status == AlertStatus.ESCALATED:
        text += f" to level {a.escalation_level or 1}"
    return text


def lifecycle(a: AlertHistory, tz: str | None = None) -> str:
    """Onset, raise, escalation, who acknowledged (never the system: an escalation or
    the system's auto-resolve do not hide who acknowledged), and the end."""
    parts = [f"onset {clock(a.at_ms, tz)}", f"raised {clock(a.detected_ms, tz)}"]
    if a.escalation_level:
        parts.append(f"escalated to level {a.escalation_level}")
    if a.acknowledged_by:
        parts.append(f"acknowledged by {a.acknowledged_by} {clock(a.acknowledged_ms, tz)}")
    if a.status in ENDED:
        end = a.resolved_ms or a.cleared_ms or a.status_ms
        who = f" by {a.status_by}" if a.status == AlertStatus.RESOLVED and a.status_by else ""
        parts.append(f"{STATUS_WORDS[a.status]}{who} {clock(end, tz)}")
    else:
        parts.append("still active" + (f" (condition ended {clock(a.cleared_ms, tz)})"
                                       if a.cleared_ms else ""))
    return " · ".join(parts)


def alert_marks(alerts: Sequence[AlertHistory], tz: str | None = None) -> list[AlertMark]:
    return [AlertMark(i, a.alert_id, a.at_ms, a.priority, a.rule, a.message,
                      lifecycle(a, tz)) for i, a in enumerate(alerts, start=1)]


def alert_rows(alerts: Sequence[AlertHistory], tz: str | None = None) -> list[dict]:
    return [{"n": f"#{i}", "onset": clock(a.at_ms, tz), "raised": clock(a.detected_ms, tz),
             "priority": a.priority.upper(), "message": a.message, "status": status_text(a),
             "by": a.acknowledged_by or "",
             "acknowledged": clock(a.acknowledged_ms, tz) if a.acknowledged_by else "",
             "ended": clock(a.resolved_ms or a.cleared_ms or a.status_ms, tz)
             if a.status in ENDED else "",
             "at_ms": a.at_ms}
            for i, a in enumerate(alerts, start=1)]


ALERT_COLUMNS = [{"name": n, "id": i} for n, i in (
    ("#", "n"), ("Onset", "onset"), ("Raised", "raised"), ("Priority", "priority"),
    ("Message", "message"), ("Status", "status"), ("Acknowledged by", "by"),
    ("Acknowledged at", "acknowledged"), ("Ended", "ended"))]


def note_marks(notes: Sequence[Note]) -> list[NoteMark]:
    return [NoteMark(n.ts_ms, n.author, n.body[:80]) for n in notes]


def notes_list(notes: Sequence[Note], tz: str | None = None) -> html.Ul | html.P:
    if not notes:
        return html.P("No notes yet.", className="muted", id="patient-notes-empty")
    # The body is a plain string child: Dash/React renders it as text, so markup typed
    # into a note is shown, never interpreted.
    return html.Ul([
        html.Li([html.Div(f"{clock(n.ts_ms, tz)} · {n.author}", className="pt-note-meta"),
                 html.Div(n.body, className="pt-note-body")], className="pt-note")
        for n in notes
    ], className="pt-notes")

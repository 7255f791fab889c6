"""Presentation pieces of the patient page: range parsing, alert markers, notes as text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from backend.notes import MAX_NOTE_CHARS, Note, NoteError, clean_body
from backend.patient_record import AlertHistory, window_end
from backend.timeline import Series
from webapp.patient.figure import iso, timeline_figure
from webapp.patient.parts import (
    alert_marks,
    alert_rows,
    lifecycle,
    notes_list,
    parse_when,
    zoom_range,
)

T0 = 1_764_000_000_000


def test_plotly_zoom_and_reset_are_understood() -> None:
    assert zoom_range({"xaxis.range[0]": "2025-11-24 16:00:00",
                       "xaxis.range[1]": "2025-11-24 17:30:00.5"}) == (
        parse_when("2025-11-24T16:00"), parse_when("2025-11-24 17:30:00.5"))
    assert zoom_range({"xaxis.range": ["2025-11-24 16:00", "2025-11-24 17:00"]}) is not None
    assert zoom_range({"xaxis.autorange": True}) is True
    assert zoom_range({"autosize": True}) is None
    assert zoom_range(None) is None
    with pytest.raises(ValueError, match="not a date"):
        parse_when("yesterday")
    with pytest.raises(ValueError, match="Enter both"):
        parse_when("")


def test_presets_end_now_while_monitored_else_at_the_last_reading() -> None:
    assert window_end(T0 - 10_000, T0) == T0
    assert window_end(None, T0) == T0
    assert window_end(T0 - 86_400_000, T0) == T0 - 86_400_000 + 60_000


def _alert(status: str, by: str | None, cleared: int | None, **kw) -> AlertHistory:
    return AlertHistory("a1", "spo2_low", "high", "SpO2 86 %", T0, T0 - 10_000, status, by,
                        T0 + 60_000 if by else None, cleared, **kw)


def test_alert_lifecycle_text_names_who_acknowledged_and_when_it_ended() -> None:
    acked = _alert("acknowledged", "dr_house", T0 + 600_000, acknowledged_by="dr_house",
                   acknowledged_ms=T0 + 60_000)
    text = lifecycle(acked, "UTC")
    assert "raised 24 Nov 16:00:00 UTC" in text and "acknowledged by dr_house" in text
    assert "still active (condition ended 24 Nov 16:10:00 UTC)" in text
    assert "still active" in lifecycle(_alert("raised", None, None))
    resolved = _alert("resolved", "n.kim", T0 + 600_000, resolved_ms=T0 + 700_000)
    assert "resolved by n.kim 24 Nov 16:11:40 UTC" in lifecycle(resolved, "UTC")


def test_an_escalated_alert_names_who_acknowledged_never_the_system() -> None:
    """Escalated, then acknowledged by a nurse, then auto-resolved by the alert manager:
    status_by is "system" now, but the acknowledgement is the nurse's."""
    a = _alert("auto_resolved", "system", T0 + 600_000, acknowledged_by="n.kim",
               acknowledged_ms=T0 + 200_000, escalation_level=2, resolved_ms=T0 + 900_000)
    text = lifecycle(a, "UTC")
    assert "escalated to level 2" in text and "acknowledged by n.kim" in text
    assert "system" not in text and "auto-resolved 24 Nov 16:15:00 UTC" in text
    [row] = alert_rows([a], "UTC")
    assert (row["by"], row["acknowledged"]) == ("n.kim", "24 Nov 16:03:20 UTC")
    assert row["status"] == "auto-resolved (escalated to level 2)"
    never = _alert("escalated", "system", None, escalation_level=1)
    [row] = alert_rows([never], "UTC")
    assert row["by"] == "" and row["status"] == "escalated to level 1"


def test_alert_markers_carry_priority_and_number_as_text_not_only_colour() -> None:
    marks = alert_marks([_alert("raised", None, None)])
    fig = timeline_figure({"hr": Series(np.array([T0, T0 + 1000]), np.array([80.0, 90.0]))},
                          T0 - 60_000, T0 + 60_000, marks)
    trace = next(t for t in fig["data"] if t["name"] == "alerts")
    assert trace["text"] == ["H #1"] and trace["marker"]["symbol"] == ["triangle-up"]
    assert len(fig["layout"]["shapes"]) == 1
    hr = next(t for t in fig["data"] if t["name"] == "HR")
    assert hr["y"] == [80.0, 90.0] and hr["x"][0].startswith("2025-11-24")


def test_notes_are_rendered_as_text_children_never_html() -> None:
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    note = Note(uuid.uuid1(), "p1", datetime.now(UTC), "dr", "physician", evil)
    body = notes_list([note]).children[0].children[1]
    assert body.children == evil  # a string child: React escapes it
    assert type(body).__name__ == "Div"


def test_note_text_is_checked() -> None:
    assert clean_body("  plan: fluids \r\n") == "plan: fluids"
    with pytest.raises(NoteError, match="empty"):
        clean_body("   ")
    with pytest.raises(NoteError, match="at most"):
        clean_body("x" * (MAX_NOTE_CHARS + 1))
    with pytest.raises(NoteError, match="control"):
        clean_body("a\x00b")


def test_freshness_says_data_delayed_in_words() -> None:
    from webapp.patient.parts import freshness_text

    assert freshness_text(T0 - 5_000, T0)[0].startswith("Last reading")
    text, css = freshness_text(T0 - 5 * 60_000, T0)
    assert text.startswith("DATA DELAYED: no reading for 5 min") and "pt-delayed" in css
    assert freshness_text(T0 - 3 * 86_400_000, T0)[0].startswith("Not monitored now")
    assert freshness_text(None, T0)[0] == "No readings in the last 7 days"


def test_the_risk_score_says_above_or_below_its_threshold_in_words() -> None:
    from backend.patient_record import RiskNow
    from webapp.patient.parts import risk_text

    assert "no live score" in risk_text(None)
    above = risk_text(RiskNow(0.61, 0.42, True, T0, "v3"))
    assert above.startswith("0.61 (ABOVE threshold 0.42")
    assert "below threshold 0.42" in risk_text(RiskNow(0.12, 0.42, False, T0, "v3"))


def test_the_hourly_risk_has_its_own_stepped_row_on_the_shared_time_axis() -> None:
    hours = np.array([T0, T0 + 3_600_000], dtype=np.int64)
    fig = timeline_figure({"risk": Series(hours, np.array([0.2, 0.5]))},
                          T0, T0 + 7_200_000)
    (risk,) = [t for t in fig["data"] if t["name"] == "Risk"]
    # the newest hour's score holds to the end of that hour (a step, not a lone vertex)
    assert risk["y"] == [0.2, 0.5, 0.5] and risk["line"]["shape"] == "hv"
    assert risk["x"][-1] == iso(T0 + 7_200_000).replace(" ", "T")
    last_row = max(int(k[5:]) for k in fig["layout"] if k.startswith("yaxis") and k[5:])
    assert fig["layout"]["xaxis"]["anchor"] == f"y{last_row}"
    assert fig["layout"][f"yaxis{last_row}"]["title"]["text"] == "Sepsis risk"
    assert fig["layout"][f"yaxis{last_row}"]["rangemode"] == "tozero"  # a probability


def test_the_risk_row_draws_the_models_threshold_and_names_it() -> None:
    hours = np.array([T0], dtype=np.int64)
    fig = timeline_figure({"risk": Series(hours, np.array([0.05]))}, T0, T0 + 3_600_000,
                          risk_threshold=0.03)
    last_row = max(int(k[5:]) for k in fig["layout"] if k.startswith("yaxis") and k[5:])
    [line] = [s for s in fig["layout"]["shapes"] if s["yref"] == f"y{last_row}"]
    assert (line["y0"], line["y1"], line["x0"], line["x1"]) == (0.03, 0.03, 0, 1)
    assert "threshold 0.03" in [a["text"] for a in fig["layout"]["annotations"]]
    without = timeline_figure({"risk": Series(hours, np.array([0.05]))}, T0, T0 + 3_600_000)
    assert not [s for s in without["layout"]["shapes"] if s["yref"] == f"y{last_row}"]


def test_a_small_risk_keeps_its_digits_while_vital_signs_keep_one_decimal() -> None:
    """Rounded like a vital sign, a risk of 0.034 would be drawn (and hovered) as 0."""
    ts = np.array([T0], dtype=np.int64)
    fig = timeline_figure({"risk": Series(ts, np.array([0.0344])),
                           "temp": Series(ts, np.array([37.26]))}, T0, T0 + 3_600_000)
    by_name = {t["name"]: t for t in fig["data"]}
    assert by_name["Risk"]["y"][0] == 0.034
    assert by_name["Temp"]["y"] == [37.3]

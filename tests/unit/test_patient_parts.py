"""Presentation pieces of the patient page: range parsing, alert markers, notes as text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from backend.notes import MAX_NOTE_CHARS, Note, NoteError, clean_body
from backend.patient_record import AlertHistory, window_end
from backend.timeline import Series
from webapp.patient.figure import timeline_figure
from webapp.patient.parts import alert_marks, lifecycle, notes_list, parse_when, zoom_range

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


def _alert(status: str, by: str | None, cleared: int | None) -> AlertHistory:
    return AlertHistory("a1", "spo2_low", "high", "SpO2 86 %", T0, T0 - 10_000, status, by,
                        T0 + 60_000 if by else None, cleared)


def test_alert_lifecycle_text_names_who_acknowledged_and_when_it_resolved() -> None:
    text = lifecycle(_alert("acknowledged", "dr_house", T0 + 600_000))
    assert "raised" in text and "acknowledged by dr_house" in text and "resolved" in text
    assert "still active" in lifecycle(_alert("raised", None, None))


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

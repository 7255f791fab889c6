"""The patient timeline's events strip and default window: labels never overlap (checked
over generated bursts of alerts and notes at every zoom and width), every event is drawn
or counted in a label, the default window fits the patient's data, the axis is local."""

from __future__ import annotations

import random

import numpy as np
import pytest

from backend.patient_record import FIT_MAX_MS, FIT_MIN_MS, fit_window
from backend.timeline import HOUR_MS, MINUTE_MS, Series
from webapp.patient import labels
from webapp.patient.figure import (
    MARGIN,
    ROWS,
    AlertMark,
    NoteMark,
    plot_width,
    timeline_figure,
)

T0 = 1_764_000_000_000 - 1_764_000_000_000 % MINUTE_MS


def _events(rng: random.Random, n: int, start: int, end: int) -> list[labels.Event]:
    """Bursts (a run of alarms within seconds) and stragglers, as a deteriorating
    patient produces them; labels of every length the strip uses."""
    out = []
    while len(out) < n:
        centre = rng.randint(start, end)
        for _ in range(rng.choice([1, 1, 2, 5, 20])):
            ts = min(end, max(start, centre + rng.randint(-30_000, 30_000)))
            out.append(labels.Event(ts, rng.choice([f"H #{len(out) + 1}", f"M #{len(out) + 1}",
                                                    "note", f"L #{len(out) + 1}"])))
    return out[:n]


def test_generated_event_sets_never_overlap_and_lose_nothing() -> None:
    rng = random.Random(14)
    for _ in range(3000):
        start = T0
        end = start + rng.choice([MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 8 * HOUR_MS,
                                  72 * HOUR_MS, 7 * 24 * HOUR_MS])
        events = _events(rng, rng.randint(0, 250), start, end)
        width = rng.randint(150, 2400)
        placed = labels.place(events, start, end, width)
        assert labels.overlaps(placed) == []
        members = sorted(m for p in placed for m in p.members)
        assert members == list(range(len(events)))  # each event drawn or counted once
        for p in placed:
            assert 0 <= p.lane < labels.LANES
            assert len(p.text) <= labels.MAX_LABEL_CHARS
            # the count in a label is the number of events it stands for
            extra = len(p.members) - 1
            assert p.text.endswith(f" +{min(extra, 999)}") if extra else "+" not in p.text
            # a label may run into the right margin, never beyond it
            assert p.right_px <= width + labels.RIGHT_MARGIN_PX


def test_separate_events_keep_their_own_labels_in_the_first_lane() -> None:
    events = [labels.Event(T0 + k * 10 * MINUTE_MS, f"H #{k + 1}") for k in range(5)]
    placed = labels.place(events, T0, T0 + HOUR_MS, 1200)
    assert [p.text for p in placed] == ["H #1", "H #2", "H #3", "H #4", "H #5"]
    assert {p.lane for p in placed} == {0}


def test_a_burst_fills_the_lanes_then_counts_the_rest() -> None:
    events = [labels.Event(T0 + k * 1000, f"M #{k + 1}") for k in range(6)]
    placed = labels.place(events, T0, T0 + HOUR_MS, 1200)
    assert [p.lane for p in placed] == [0, 1, 2]
    assert sum(len(p.members) for p in placed) == 6
    assert any(p.text.endswith("+1") for p in placed)


def test_bad_strips_are_refused() -> None:
    for args in ((T0, T0, 100), (T0, T0 + 1, 0)):
        with pytest.raises(ValueError):
            labels.place([], *args)


def _alert(n: int, ts: int, priority: str = "high") -> AlertMark:
    return AlertMark(n, f"a{n}", ts, priority, "rule", "SpO2 84 % below 90 %", "raised")


def test_the_figure_draws_the_placed_labels_with_their_lane_and_hover() -> None:
    alerts = [_alert(k + 1, T0 + 600_000 + k * 2000, "high" if k % 2 else "medium")
              for k in range(5)]
    notes = [NoteMark(T0 + 601_000, "dr_x", "fluids <b>now</b>")]
    fig = timeline_figure({"hr": Series(np.array([T0, T0 + 1000]), np.array([80.0, 90.0]))},
                          T0, T0 + HOUR_MS, alerts, notes, tz="UTC", graph_width_px=1300)
    by_name = {t["name"]: t for t in fig["data"]}
    drawn = by_name["alerts"]["text"] + by_name.get("notes", {"text": []})["text"]
    counted = sum(1 + int(t.split("+")[1]) if "+" in t else 1 for t in drawn)
    assert counted == 6
    assert len(set(by_name["alerts"]["y"])) > 1  # a burst spreads over the lanes
    hovers = "".join(by_name["alerts"]["hovertext"])
    assert "&lt;b&gt;" in "".join(t.get("hovertext", [""])[0] for t in fig["data"]
                                  if t["name"] == "notes") or "&lt;b&gt;" in hovers
    assert by_name["alerts"]["cliponaxis"] is False
    assert fig["layout"]["margin"]["r"] >= labels.RIGHT_MARGIN_PX
    # every alert still has its dashed line through the rows
    assert len([s for s in fig["layout"]["shapes"] if s.get("yref") == "paper"]) == 5


def test_the_events_title_is_horizontal_and_row_titles_fit_their_rows() -> None:
    fig = timeline_figure({}, T0, T0 + HOUR_MS, tz="UTC")
    layout = fig["layout"]
    assert "title" not in layout["yaxis"]  # no rotated title spilling onto the HR row
    [events] = [a for a in layout["annotations"] if a["text"] == "Events"]
    assert events["xanchor"] == "right" and events["yref"] == "paper"
    plot_h = layout["height"] - MARGIN["t"] - MARGIN["b"]
    for i, (title, _key, _params) in enumerate(ROWS, start=2):
        axis = layout[f"yaxis{i}"]
        row_px = (axis["domain"][1] - axis["domain"][0]) * plot_h
        # rotated text runs along the row: about 0.62 em per character
        assert len(title) * 0.62 * axis["title"]["font"]["size"] < row_px, title


def test_the_time_axis_is_local_with_the_zone_and_hover_times_are_local() -> None:
    ts = np.array([T0, T0 + 60_000], dtype=np.int64)
    fig = timeline_figure({"hr": Series(ts, np.array([80.0, 90.0]))}, T0, T0 + HOUR_MS,
                          tz="Asia/Kolkata")
    x = fig["layout"]["xaxis"]
    assert x["tickmode"] == "array" and x["title"]["text"].endswith("(IST, Asia/Kolkata)")
    assert x["ticktext"][0].startswith(("21:", "22:"))  # 16:00 UTC is 21:30 IST
    hr = next(t for t in fig["data"] if t["name"] == "HR")
    assert hr["customdata"] == ["21:30:00 IST", "21:31:00 IST"]
    assert hr["x"][0].startswith("2025-11-24T16:00")  # x stays UTC


def test_plot_width_leaves_the_margins() -> None:
    assert plot_width(1900) == 1900 - MARGIN["l"] - MARGIN["r"]
    assert plot_width(None) > 500 and plot_width(10) == 100


def test_the_default_window_fits_the_data() -> None:
    end = T0 + 15 * MINUTE_MS
    start, stop = fit_window(T0, end)  # a demo's quarter of an hour
    assert stop == end and T0 - MINUTE_MS <= start < T0
    assert (T0 - start) / (end - start) < 0.05  # the data fill the chart
    assert fit_window(None, end) == (end - FIT_MAX_MS, end)
    assert fit_window(end - 24 * HOUR_MS, end) == (end - FIT_MAX_MS, end)  # a long stay
    assert fit_window(end - MINUTE_MS, end) == (end - FIT_MIN_MS, end)  # just admitted
    assert fit_window(end + MINUTE_MS, end) == (end - FIT_MAX_MS, end)


def test_every_row_exists_without_data_so_the_time_axis_stays_at_the_bottom() -> None:
    """A patient of a few minutes has no hourly risk score yet: without a trace on that
    row plotly would not draw it, and the time axis anchored to it would hang below the
    events strip, over the HR row."""
    ts = np.array([T0, T0 + 60_000], dtype=np.int64)
    fig = timeline_figure({"hr": Series(ts, np.array([80.0, 90.0]))}, T0, T0 + HOUR_MS,
                          tz="UTC")
    used = {t["yaxis"] for t in fig["data"]}
    assert used == {"y"} | {f"y{i}" for i in range(2, len(ROWS) + 2)}
    assert fig["layout"]["xaxis"]["anchor"] == f"y{len(ROWS) + 1}"
    notes = {a["yref"]: a["text"] for a in fig["layout"]["annotations"]
             if a.get("yref", "").endswith(" domain")}
    assert notes[f"y{len(ROWS) + 1} domain"] == "no hourly risk score in this range"
    assert "y2 domain" not in notes  # HR has data
    assert len(notes) == len(ROWS) - 1

"""The patient timeline as a plain plotly figure dict (no ``plotly.graph_objects``: building
and validating graph objects for 10,000+ points costs more than the whole data path).

One shared x axis, one y axis per row: zooming or panning any row moves all of them, and
``relayoutData`` only ever carries ``xaxis.range[...]``. Rows, top to bottom: events
(alerts and notes), HR, SpO2, RR, BP (systolic, diastolic, mean), temperature, NEWS2.

Alerts are told apart without colour: the marker shape and its text carry the priority
(``▲ H``, ``◆ M``, ``● L``) and the number that links it to the alert history table
(``#3``); a dashed vertical line through every row marks when it was raised. Labels are
placed by ``webapp.patient.labels`` so that none overlaps another.

Time: x values are UTC instants (so a window across a change of clocks is drawn without
a fold or a tear); the ticks and the hover text are the hospital's local time with its
zone (``backend.localtime.axis_ticks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from backend import localtime
from backend.timeline import HOUR_MS, MIN_SUFFIX, Series
from webapp.patient import labels

ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("HR /min", "hr", ("hr",)),
    ("SpO₂ %", "spo2", ("spo2",)),
    ("RR /min", "rr", ("rr",)),
    ("BP mmHg", "bp", ("sbp", "dbp", "map")),
    ("Temp °C", "temp", ("temp",)),
    ("NEWS2", "news2", ("news2",)),
    ("Sepsis risk", "risk", ("risk",)),
)
LABELS = {"hr": "HR", "spo2": "SpO₂", "rr": "RR", "sbp": "Systolic", "dbp": "Diastolic",
          "map": "Mean", "temp": "Temp", "news2": "NEWS2",
          "risk": "Risk"}
# Readable on the light and the dark theme (the dark theme re-colours text and grid
# through assets/patient.css: plotly writes inline styles, CSS !important wins).
COLOURS = {"hr": "#16a34a", "spo2": "#0284c7", "rr": "#ca8a04", "sbp": "#dc2626",
           "dbp": "#ea580c", "map": "#c026d3", "temp": "#65a30d", "news2": "#7c3aed",
           "risk": "#be185d"}
# Step lines: the value holds until the next one (a score per reading, a risk per hour).
STEPPED = frozenset({"news2", "risk"})
# A risk score is the score of one hour: its step is drawn to the end of that hour (else
# the newest score would be a single invisible vertex), with the precision of the
# probability (rounded to 0.1 a risk of 0.04 would read as 0), on an axis from 0 scaled
# to the scores and the model's threshold (drawn), which are small probabilities.
HOLD_MS = {"risk": HOUR_MS}
DECIMALS = {"risk": 3}
FROM_ZERO = frozenset({"risk"})
DASH = {"sbp": "solid", "dbp": "dot", "map": "dash"}
PRIORITY_MARK = {"high": ("triangle-up", "H", "#ef4444"),
                 "medium": ("diamond", "M", "#f59e0b"),
                 "low": ("circle", "L", "#38bdf8")}
EVENTS_ROW_HEIGHT = 0.1  # three lanes of labels (webapp.patient.labels.LANES)
GAP = 0.02
HEIGHT_PX = 860
EMPTY_ROW = {"risk": "no hourly risk score in this range", "news2": "no NEWS2 in this range"}
MARGIN = {"l": 76, "r": labels.RIGHT_MARGIN_PX, "t": 28, "b": 64}
TITLE_FONT = {"size": 12}  # row titles fit their row's height (about 80 px)
DEFAULT_PLOT_WIDTH_PX = 1200  # until the browser has reported the graph's width


@dataclass(frozen=True, slots=True)
class AlertMark:
    number: int  # the row number in the alert history table
    alert_id: str
    ts_ms: int
    priority: str
    rule: str
    message: str
    lifecycle: str  # "raised 10:02 · acknowledged by dr_x 10:03 · resolved 10:09"


@dataclass(frozen=True, slots=True)
class NoteMark:
    ts_ms: int
    author: str
    excerpt: str


def iso(ms: int | float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso_array(ts: np.ndarray) -> list[str]:
    # numpy's datetime64 formatting is ~20x faster than datetime per point
    return np.datetime_as_string(ts.astype("datetime64[ms]"), unit="s").tolist()


def _values(values: np.ndarray, decimals: int = 1) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), decimals) for v in values]


def _held(s: Series, hold_ms: int | None) -> Series:
    """The series with its last value repeated ``hold_ms`` later (the end of its step)."""
    if not hold_ms or len(s) == 0:
        return s
    return Series(np.append(s.ts, s.ts[-1] + hold_ms), np.append(s.values, s.values[-1]))


def _domains(n_rows: int) -> list[tuple[float, float]]:
    """Top to bottom: the events strip, then ``n_rows`` equal parameter rows."""
    top = 1.0
    out = [(top - EVENTS_ROW_HEIGHT, top)]
    top -= EVENTS_ROW_HEIGHT + GAP
    height = (top - GAP * (n_rows - 1)) / n_rows
    for _ in range(n_rows):
        out.append((max(top - height, 0.0), top))
        top -= height + GAP
    return out


def plot_width(graph_width_px: float | None) -> float:
    """The width of the plotting area inside a graph ``graph_width_px`` wide."""
    width = graph_width_px or DEFAULT_PLOT_WIDTH_PX + MARGIN["l"] + MARGIN["r"]
    return max(100.0, float(width) - MARGIN["l"] - MARGIN["r"])


def _local_times(ts: np.ndarray, tz: str | None) -> list[str]:
    """``HH:MM:SS ZONE`` of each instant, for the hover text: vectorised with the one UTC
    offset of the window, point by point only for a window across a change of clocks."""
    if len(ts) == 0:
        return []
    z = localtime.zone(tz)
    first, last = localtime.to_local(int(ts[0]), z), localtime.to_local(int(ts[-1]), z)
    if first.utcoffset() != last.utcoffset():
        return [localtime.clock(int(t), z) for t in ts]
    offset = int(first.utcoffset().total_seconds() * 1000)  # type: ignore[union-attr]
    wall = np.datetime_as_string((ts + offset).astype("datetime64[ms]"), unit="s")
    return [f"{w[11:]} {first.tzname()}" for w in wall.tolist()]


def timeline_figure(series: Mapping[str, Series], start_ms: int, end_ms: int,
                    alerts: Sequence[AlertMark] = (), notes: Sequence[NoteMark] = (),
                    *, resolution: str = "raw", dark: bool = False,
                    risk_threshold: float | None = None, tz: str | None = None,
                    graph_width_px: float | None = None) -> dict:
    domains = _domains(len(ROWS))
    fg, grid = ("#e5e7eb", "#374151") if dark else ("#1f2937", "#d1d5db")
    axis = localtime.axis_ticks(start_ms, end_ms, tz)
    layout: dict = {
        "height": HEIGHT_PX, "margin": MARGIN,
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        # "closest": the hover shows the point's value and local time; plotly's shared
        # x label of hovermode "x" could only show the x value, which is UTC
        "font": {"color": fg, "size": 14}, "showlegend": False, "hovermode": "closest",
        "uirevision": f"{start_ms}-{end_ms}",
        # the local ticks replace plotly's own (which would be UTC); a spike line through
        # the rows marks the hovered time
        "xaxis": {"type": "date", "range": [iso(start_ms), iso(end_ms)], "gridcolor": grid,
                  "anchor": f"y{len(ROWS) + 1}", "tickmode": "array",
                  "tickvals": axis.values, "ticktext": axis.texts,
                  "title": {"text": axis.title, "standoff": 8}, "automargin": False,
                  "showspikes": True, "spikemode": "across", "spikesnap": "data",
                  "spikethickness": 1, "spikedash": "dot", "spikecolor": grid},
        "yaxis": {"domain": list(domains[0]), "range": [0, 1], "showticklabels": False,
                  "fixedrange": True, "showgrid": False, "zeroline": False},
        "shapes": [],
        # the events strip is named horizontally: a rotated title would not fit its height
        "annotations": [{"text": "Events", "xref": "paper", "yref": "paper", "x": 0,
                         "y": sum(domains[0]) / 2, "xanchor": "right", "yanchor": "middle",
                         "xshift": -6, "showarrow": False, "font": TITLE_FONT}],
    }
    traces: list[dict] = []
    empty_rows: list[tuple[int, str]] = []
    for i, (title, key, params) in enumerate(ROWS, start=2):
        drawn = len(traces)
        axis_key = f"yaxis{i}"
        layout[axis_key] = {"domain": list(domains[i - 1]),
                            "title": {"text": title, "font": TITLE_FONT, "standoff": 4},
                            "gridcolor": grid, "zeroline": False, "fixedrange": True}
        if key in FROM_ZERO:
            layout[axis_key]["rangemode"] = "tozero"
        if key == "risk" and risk_threshold is not None:
            # the alert threshold across the row (autorange includes it), named in words
            layout["shapes"].append({
                "type": "line", "xref": "paper", "yref": f"y{i}", "x0": 0, "x1": 1,
                "y0": risk_threshold, "y1": risk_threshold,
                "line": {"color": COLOURS["risk"], "width": 1, "dash": "dot"}})
            layout["annotations"].append({
                "text": f"threshold {risk_threshold:.2f}", "xref": "paper",
                "yref": f"y{i}", "x": 1, "y": risk_threshold, "xanchor": "right",
                "yanchor": "bottom", "showarrow": False, "font": {"size": 12}})
        for p in params:
            s = series.get(p)
            if s is None or len(s) == 0:
                continue
            s = _held(s, HOLD_MS.get(p))
            low = series.get(p + MIN_SUFFIX)
            line = {"color": COLOURS[p], "width": 1.5, "dash": DASH.get(p, "solid"),
                    "shape": "hv" if p in STEPPED else "linear"}
            traces.append({
                "type": "scattergl" if len(s) > 2000 else "scatter", "mode": "lines",
                "name": LABELS[p], "x": _iso_array(s.ts),
                "y": _values(s.values, DECIMALS.get(p, 1)),
                "customdata": _local_times(s.ts, tz),
                "xaxis": "x", "yaxis": f"y{i}", "connectgaps": False, "line": line,
                "hovertemplate": f"{LABELS[p]}{' max' if low is not None else ''} "
                                 f"%{{y}} · %{{customdata}}<extra></extra>",
            })
            if low is not None and len(low):
                # the minute minima, filled up to the maxima: the band the value covered
                traces.append({
                    "type": "scatter", "mode": "lines", "name": LABELS[p] + " min",
                    "x": _iso_array(low.ts), "y": _values(low.values), "xaxis": "x",
                    "yaxis": f"y{i}", "connectgaps": False, "fill": "tonexty",
                    "fillcolor": COLOURS[p] + "55", "line": {**line, "width": 1},
                    "customdata": _local_times(low.ts, tz),
                    "hovertemplate": f"{LABELS[p]} min %{{y}} · %{{customdata}}<extra></extra>",
                })
        if len(traces) == drawn:
            empty_rows.append((i, key))
    for i, _key in empty_rows:  # no scale without values (plotly would invent 0..4)
        layout[f"yaxis{i}"].update(showticklabels=False, range=[0, 1])
    if traces:
        for i, key in empty_rows:  # said in the row, not left blank
            layout["annotations"].append({
                "text": EMPTY_ROW.get(key, "no readings in this range"), "xref": "paper",
                "yref": f"y{i} domain", "x": 0.5, "y": 0.5, "showarrow": False,
                "font": {"size": 12, "color": grid if dark else "#6b7280"}})
    else:
        layout["annotations"].append({
            "text": "No readings in this range", "xref": "paper", "yref": "paper",
            "x": 0.5, "y": 0.5, "showarrow": False, "font": {"size": 22},
        })
    for a in alerts:
        colour = PRIORITY_MARK.get(a.priority, ("x", "?", fg))[2]
        layout["shapes"].append({
            "type": "line", "xref": "x", "yref": "paper", "x0": iso(a.ts_ms),
            "x1": iso(a.ts_ms), "y0": 0, "y1": 1,
            "line": {"color": colour, "width": 1, "dash": "dash"},
        })
    traces += _event_traces(alerts, notes, start_ms, end_ms, plot_width(graph_width_px), fg,
                            tz)
    # an empty trace on every row: plotly draws a subplot only for axes that carry a
    # trace, and without the last row the shared time axis would hang below the events
    # strip, on top of the HR row, with the rows' titles missing
    traces += [{"type": "scatter", "mode": "lines", "x": [], "y": [], "xaxis": "x",
                "yaxis": f"y{i}" if i > 1 else "y", "hoverinfo": "skip", "name": "",
                "showlegend": False} for i in range(1, len(ROWS) + 2)]
    caption = ("raw 1 Hz readings" if resolution == "raw"
               else "per-minute minimum and maximum")
    layout["annotations"].append({
        "text": f"{caption}, reduced to screen width (extremes kept)", "xref": "paper",
        "yref": "paper", "x": 0, "y": 1, "xanchor": "left", "yanchor": "bottom",
        "showarrow": False,
        "font": {"size": 11},
    })
    return {"data": traces, "layout": layout}


def _lane_y(lane: int) -> float:
    """The events axis runs 0..1; lanes from the top, evenly spaced."""
    return 1 - (lane + 0.5) / labels.LANES


def _event_traces(alerts: Sequence[AlertMark], notes: Sequence[NoteMark], start_ms: int,
                  end_ms: int, width_px: float, fg: str, tz: str | None) -> list[dict]:
    """The markers and labels of the events strip: one trace of alerts and one of notes,
    placed together so that no label overlaps another (``webapp.patient.labels``)."""
    events = [labels.Event(a.ts_ms, f"{PRIORITY_MARK.get(a.priority, ('', '?', ''))[1]} "
                                    f"#{a.number}") for a in alerts]
    events += [labels.Event(n.ts_ms, "note") for n in notes]
    if not events:
        return []
    placed = labels.place(events, start_ms, end_ms, width_px)
    n_alerts = len(alerts)

    def hover(i: int) -> str:
        if i < n_alerts:
            a = alerts[i]
            return (f"#{a.number} {a.priority.upper()} {_escape(a.message)} "
                    f"({localtime.clock(a.ts_ms, tz)})<br>{_escape(a.lifecycle)}")
        n = notes[i - n_alerts]
        # hover text is plotly-rendered, which strips tags; escape anyway
        return (f"note {localtime.clock(n.ts_ms, tz)} · {_escape(n.author)}: "
                f"{_escape(n.excerpt)}")

    traces = []
    for name, chosen in (("alerts", [p for p in placed if p.index < n_alerts]),
                         ("notes", [p for p in placed if p.index >= n_alerts])):
        if not chosen:
            continue
        if name == "alerts":
            marks = [PRIORITY_MARK.get(alerts[p.index].priority, ("x", "?", fg))
                     for p in chosen]
            marker = {"size": labels.MARKER_PX, "symbol": [m[0] for m in marks],
                      "color": [m[2] for m in marks], "line": {"width": 1, "color": fg}}
            ids = [alerts[p.index].alert_id for p in chosen]
        else:
            marker = {"size": labels.MARKER_PX - 2, "symbol": "square", "color": fg}
            ids = ["" for _ in chosen]
        traces.append({
            "type": "scatter", "mode": "markers+text", "name": name,
            "x": [iso(p.ts_ms) for p in chosen], "y": [_lane_y(p.lane) for p in chosen],
            "xaxis": "x", "yaxis": "y", "text": [p.text for p in chosen],
            "textposition": "middle right", "cliponaxis": False,
            "textfont": {"size": labels.FONT_PX},
            "customdata": ids,
            "hovertext": ["<br>".join(hover(m) for m in p.members) for p in chosen],
            "hoverinfo": "text", "marker": marker,
        })
    return traces


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))

"""The ECG strip: stored waveform chunks drawn on ECG paper (plain plotly dict).

Paper speed 25 mm/s and gain 10 mm/mV, as printed ECGs: the figure has a fixed plot
width, so 1 mm on the time axis (40 ms) and 1 mm on a mV axis (0.1 mV) are the same
number of pixels. Small squares 1 mm, large squares 5 mm (0.2 s x 0.5 mV). Channels in
other units (pleth, "NU") get a row of their own without the mV grid. Beat annotations
are printed above the first channel at their sample; an alarm annotation is a dashed
line through every row with its text, so the physician sees what the monitor saw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from backend.storage.waveforms import StoredChunk

MM_PER_S = 25.0
MM_PER_MV = 10.0
PLOT_WIDTH_PX = 1600
MARGIN = {"l": 60, "r": 20, "t": 30, "b": 45}
PAPER, MINOR, MAJOR, TRACE = "#fff7f7", "#f6c9c9", "#e08a8a", "#111111"
PLETH_ROW_MM = 25.0
ROW_GAP_MM = 4.0


def strip_series(chunks: Sequence[StoredChunk], t0_ms: int, start_s: float,
                 end_s: float) -> tuple[np.ndarray, np.ndarray, list[tuple[float, str]]]:
    """Samples of the chunks as (seconds since ``t0_ms``, values) within the strip, and
    the annotations inside it as (seconds, symbol)."""
    ts_parts, val_parts, anns = [], [], []
    for c in chunks:
        t = (c.start_ts - t0_ms) / 1000 + np.arange(c.samples.size) / c.fs
        ts_parts.append(t)
        val_parts.append(c.samples)
        for off, sym in zip(c.ann_offsets, c.ann_symbols, strict=True):
            anns.append(((c.start_ts - t0_ms) / 1000 + off / c.fs, sym))
    if not ts_parts:
        return np.empty(0), np.empty(0), []
    t, v = np.concatenate(ts_parts), np.concatenate(val_parts)
    keep = (t >= start_s) & (t < end_s)
    return t[keep], v[keep], [(s, a) for s, a in anns if start_s <= s < end_s]


def _mv_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)] if values.size else values
    if finite.size == 0:
        return -1.0, 1.0
    lo = math.floor(float(finite.min()) * 2 - 0.5) / 2
    hi = math.ceil(float(finite.max()) * 2 + 0.5) / 2
    if hi - lo < 2.0:
        mid = (hi + lo) / 2
        lo, hi = mid - 1.0, mid + 1.0
    return lo, hi


def ecg_figure(channels: Mapping[str, tuple[str, Sequence[StoredChunk]]], t0_ms: int,
               start_s: float, seconds: float, title: str = "") -> dict:
    """``channels``: name -> (units, chunks), drawn top to bottom in the given order."""
    end_s = start_s + seconds
    px_per_mm = PLOT_WIDTH_PX / (seconds * MM_PER_S)
    rows = []
    for name, (units, chunks) in channels.items():
        t, v, anns = strip_series(chunks, t0_ms, start_s, end_s)
        is_mv = units.lower() == "mv"
        rng = _mv_range(v) if is_mv else (
            (float(np.nanmin(v)), float(np.nanmax(v))) if v.size else (0.0, 1.0))
        height_mm = (rng[1] - rng[0]) * MM_PER_MV if is_mv else PLETH_ROW_MM
        rows.append((name, units, is_mv, t, v, anns, rng, height_mm))
    total_mm = sum(r[7] for r in rows) + ROW_GAP_MM * max(0, len(rows) - 1)
    plot_h = max(total_mm, 10) * px_per_mm
    layout: dict = {
        "width": PLOT_WIDTH_PX + MARGIN["l"] + MARGIN["r"],
        "height": round(plot_h + MARGIN["t"] + MARGIN["b"]),
        "margin": MARGIN, "paper_bgcolor": PAPER, "plot_bgcolor": PAPER,
        "font": {"color": "#222", "size": 13}, "showlegend": False,
        "title": {"text": title, "x": 0.01, "font": {"size": 14}},
        # large squares every 0.2 s, labelled once a second only (legible at 25 mm/s)
        "xaxis": {"range": [start_s, end_s], "tickmode": "array",
                  "tickvals": [round(t, 2) for t in np.arange(
                      math.ceil(start_s / 0.2) * 0.2, end_s + 1e-9, 0.2)],
                  "ticktext": [f"{t:.0f} s" if abs(t - round(t)) < 1e-6 else "" for t in
                               np.arange(math.ceil(start_s / 0.2) * 0.2, end_s + 1e-9, 0.2)],
                  "gridcolor": MAJOR, "gridwidth": 1,
                  "showticklabels": True, "zeroline": False, "fixedrange": True,
                  "minor": {"dtick": 0.04, "gridcolor": MINOR, "showgrid": True},
                  "anchor": f"y{len(rows) if len(rows) > 1 else ''}",
                  "title": {"text": "25 mm/s · 10 mm/mV · time since the recording's start"}},
        "shapes": [], "annotations": [],
    }
    traces = []
    top_mm = total_mm
    for i, (name, units, is_mv, t, v, anns, rng, height_mm) in enumerate(rows, start=1):
        axis = "yaxis" if i == 1 else f"yaxis{i}"
        ref = "y" if i == 1 else f"y{i}"
        domain = [max(0.0, (top_mm - height_mm) / total_mm), top_mm / total_mm]
        top_mm -= height_mm + ROW_GAP_MM
        layout[axis] = {"domain": domain, "range": list(rng), "fixedrange": True,
                        "zeroline": False, "title": {"text": f"{name} ({units})"},
                        "anchor": "x"}
        if is_mv:
            layout[axis].update({"dtick": 0.5, "gridcolor": MAJOR,
                                 "minor": {"dtick": 0.1, "gridcolor": MINOR,
                                           "showgrid": True}})
        else:
            layout[axis].update({"showgrid": False, "showticklabels": False})
        if i > 1:
            # every row shows the paper's time grid; labels only on the bottom row
            layout[f"xaxis{i}"] = {**layout["xaxis"], "anchor": ref, "matches": "x",
                                   "showticklabels": False, "title": None}
        xref = "x" if i == 1 else f"x{i}"
        traces.append({"type": "scattergl" if t.size > 5000 else "scatter", "mode": "lines",
                       "x": np.round(t, 4).tolist(),
                       "y": [None if not np.isfinite(x) else round(float(x), 4) for x in v],
                       "xaxis": xref, "yaxis": ref, "name": name, "connectgaps": False,
                       "line": {"color": TRACE, "width": 1.3},
                       "hovertemplate": f"{name} %{{y}} {units} at %{{x:.3f}} s<extra></extra>"})
        if t.size == 0:
            layout["annotations"].append({"text": f"no {name} samples here", "xref": "paper",
                                          "yref": "paper", "x": 0.5,
                                          "y": (domain[0] + domain[1]) / 2,
                                          "showarrow": False})
        if i == 1:
            for s, sym in anns:
                if sym.startswith("alarm"):
                    continue
                layout["annotations"].append({"x": s, "y": rng[1], "xref": xref,
                                              "yref": ref, "text": sym, "showarrow": False,
                                              "yanchor": "top", "font": {"size": 13}})
    for s, sym in (a for r in rows[:1] for a in r[5]):
        if sym.startswith("alarm"):
            layout["shapes"].append({"type": "line", "xref": "x", "yref": "paper", "x0": s,
                                     "x1": s, "y0": 0, "y1": 1,
                                     "line": {"color": "#b91c1c", "width": 2, "dash": "dash"}})
            layout["annotations"].append({"x": s, "y": 1.0, "xref": "x", "yref": "paper",
                                          "text": f"⚠ bedside {sym}", "showarrow": False,
                                          "xanchor": "left", "yanchor": "bottom",
                                          "font": {"size": 14, "color": "#b91c1c"}})
    return {"data": traces, "layout": layout}

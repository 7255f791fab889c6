"""Live monitoring of a model version on the models page: pure functions of the stored
live scores (``risk_scores_by_model_day`` rows) and the version's reference distribution
(``evaluation.json`` -> ``score_reference``, see ``backend.risk.drift``). No Dash, no I/O.

Three figures: scoring volume per hour, the live score distribution against the
reference on the reference's decile bins, and the PSI per day with its watch (0.10) and
drift (0.25) lines. Nothing depends on colour alone: reference bars are hatched, each
day's PSI carries its status as a word and as a marker shape.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import pairwise

import numpy as np
import plotly.graph_objects as go

from backend import localtime
from backend.risk import drift
from backend.storage.risk_scores import ModelScore
from webapp.risk_models.evaluation_figures import BLUE, GREY, ORANGE, VERMILLION, _layout

STATUS_STYLE = {
    drift.Stability.STABLE: ("circle", BLUE),
    drift.Stability.WATCH: ("diamond", ORANGE),
    drift.Stability.DRIFT: ("x", VERMILLION),
    drift.Stability.TOO_FEW: ("circle-open", GREY),
}


@dataclass(frozen=True)
class DayPsi:
    day: date
    n: int
    psi: float | None
    status: drift.Stability


@dataclass
class LiveSummary:
    n_scores: int
    n_patients: int
    reference_kind: str  # "monitor_only" | "with_labs"
    reference: drift.Reference
    volume: dict[datetime, int] = field(default_factory=dict)  # hour -> scores
    days: list[DayPsi] = field(default_factory=list)
    live_shares: list[float] = field(default_factory=list)  # over the whole window
    latest: DayPsi | None = None  # the newest day that has a PSI


def pick_reference(score_reference: dict,
                   rows: list[ModelScore]) -> tuple[str, drift.Reference]:
    """The reference that matches how the live scores were made (labs or not)."""
    monitor = sum(1 for r in rows if r.monitor_only)
    kind = "monitor_only" if monitor * 2 >= len(rows) else "with_labs"
    if kind not in score_reference:
        kind = "monitor_only" if "monitor_only" in score_reference else "with_labs"
    return kind, drift.Reference.from_dict(score_reference[kind])


def summarize(rows: list[ModelScore], score_reference: dict) -> LiveSummary:
    """Volume per hour, PSI per day and the window's distribution of live ``rows``."""
    kind, ref = pick_reference(score_reference, rows)
    risks = np.array([r.risk for r in rows], dtype=np.float64)
    hours = [r.hour_ts for r in rows]
    by_day: dict[date, list[float]] = {}
    for h, risk in zip(hours, risks, strict=True):
        by_day.setdefault(h.date(), []).append(risk)
    days = []
    for d in sorted(by_day):
        value, status = drift.psi_of_scores(np.array(by_day[d]), ref)
        days.append(DayPsi(d, len(by_day[d]), value, status))
    latest = next((d for d in reversed(days) if d.psi is not None), None)
    return LiveSummary(
        n_scores=len(rows), n_patients=len({r.patient_id for r in rows}),
        reference_kind=kind, reference=ref, volume=dict(sorted(Counter(hours).items())),
        days=days, live_shares=drift.shares(risks, ref).tolist() if len(rows) else [],
        latest=latest)


def status_text(s: LiveSummary) -> tuple[str, str]:
    """(css level, sentence) for the warning line above the plots."""
    if s.latest is None:
        return "info", (f"{s.n_scores} live scores so far: too few for a drift measure "
                        f"(PSI needs {drift.MIN_SCORES} scores in a day).")
    d = s.latest
    when = f"PSI {d.psi:.2f} on {d.day.isoformat()} ({d.n} scores)"
    if d.status is drift.Stability.DRIFT:
        return "error", (f"⚠ DRIFT: {when} ≥ {drift.DRIFT:.2f}. The live scores no longer "
                         "look like the population the model was validated on; its "
                         "thresholds and measured performance may not hold. Review the "
                         "case mix and devices before relying on its alerts.")
    if d.status is drift.Stability.WATCH:
        return "warning", (f"⚠ WATCH: {when}, between {drift.WATCH:.2f} and "
                           f"{drift.DRIFT:.2f}: a moderate shift of the score distribution.")
    return "ok", f"✓ Stable: {when} < {drift.WATCH:.2f}."


def bin_labels(ref: drift.Reference) -> list[str]:
    """One label per bin, with as many decimals as it takes to tell them apart (risks of
    neighbouring deciles can differ in the fourth decimal)."""
    e = list(ref.edges)
    if not e:
        return ["all"]
    for digits in range(3, 8):
        labels = ([f"< {e[0]:.{digits}f}"]
                  + [f"{a:.{digits}f}–{b:.{digits}f}" for a, b in pairwise(e)]
                  + [f"≥ {e[-1]:.{digits}f}"])
        if len(set(labels)) == len(labels):
            break
    return labels


def volume_figure(s: LiveSummary, tz: str | None = None) -> go.Figure:
    """Scores per hour; the hours are UTC instants on the axis, labelled (ticks and hover)
    in the hospital's local time ``tz`` with its zone."""
    hours = list(s.volume)
    fig = go.Figure(go.Bar(
        x=[h.strftime("%Y-%m-%d %H:%M:%S") for h in hours], y=list(s.volume.values()),
        name="hourly scores", marker={"color": BLUE},
        customdata=[localtime.day_clock(h, tz, seconds=False) for h in hours],
        hovertemplate="%{customdata}: %{y} scores<extra></extra>"))
    title = "Hour scored"
    xaxis: dict = {}
    if hours:
        first = round(min(hours).timestamp() * 1000)
        last = round(max(hours).timestamp() * 1000)
        axis = localtime.axis_ticks(first - 1_800_000, last + 1_800_000, tz)
        xaxis = {"tickmode": "array", "tickvals": axis.values, "ticktext": axis.texts}
        title = axis.title.replace("time", "Hour scored", 1)
    fig = _layout(fig, f"Scoring volume: {s.n_scores} hourly scores of {s.n_patients} "
                  "patients", title, "Scores per hour", yaxis={"rangemode": "tozero"},
                  xaxis=xaxis)
    fig.update_layout(height=380, showlegend=False)
    return fig


def distribution_figure(s: LiveSummary) -> go.Figure:
    labels = bin_labels(s.reference)
    fig = go.Figure([
        go.Bar(x=labels, y=list(s.reference.shares), name="reference (test patients)",
               marker={"color": GREY, "pattern": {"shape": "/"}},
               hovertemplate="%{x}: %{y:.1%}<extra>reference</extra>"),
        go.Bar(x=labels, y=s.live_shares, name="live (this window)",
               marker={"color": BLUE},
               hovertemplate="%{x}: %{y:.1%}<extra>live</extra>"),
    ])
    kind = "labs hidden" if s.reference_kind == "monitor_only" else "with labs"
    fig = _layout(fig, f"Score distribution, live vs reference ({kind}; reference deciles)",
                  "Risk bin", "Share of scores", yaxis={"tickformat": ".0%",
                                                       "rangemode": "tozero"})
    # rotated bin labels need the room the legend takes by default
    fig.update_layout(barmode="group", height=460, legend={"y": -0.38})
    return fig


def psi_figure(s: LiveSummary) -> go.Figure:
    fig = go.Figure()
    shown = [d for d in s.days if d.psi is not None]
    top = max([drift.DRIFT * 1.6, *(d.psi * 1.15 for d in shown)])
    for level, name, dash in ((drift.WATCH, "watch", "dot"), (drift.DRIFT, "drift", "dash")):
        fig.add_hline(y=level, line={"color": GREY, "dash": dash, "width": 1.5},
                      annotation_text=f"{name} {level:.2f}",
                      annotation_position="top left")
    if shown:
        fig.add_trace(go.Scatter(
            x=[d.day.isoformat() for d in shown], y=[d.psi for d in shown],
            mode="lines+markers+text", name="PSI per day", line={"color": GREY, "width": 1},
            text=[d.status.value.upper() if d.status is drift.Stability.DRIFT
                  else d.status.value for d in shown], textposition="top center",
            marker={"size": 13, "symbol": [STATUS_STYLE[d.status][0] for d in shown],
                    "color": [STATUS_STYLE[d.status][1] for d in shown],
                    "line": {"width": 2, "color": [STATUS_STYLE[d.status][1]
                                                   for d in shown]}},
            customdata=[d.n for d in shown],
            hovertemplate="%{x}: PSI %{y:.3f} (%{customdata} scores)<extra></extra>"))
    few = [d for d in s.days if d.psi is None]
    if few:
        fig.add_trace(go.Scatter(
            x=[d.day.isoformat() for d in few], y=[0] * len(few), mode="markers+text",
            name=f"fewer than {drift.MIN_SCORES} scores", text=["too few"] * len(few),
            textposition="top center",
            marker={"size": 11, "symbol": "circle-open", "color": GREY}))
    fig = _layout(fig, "Population stability index per day (live vs reference)",
                  "Day (UTC)", "PSI", yaxis={"range": [0, top]},
                  xaxis={"type": "category"})
    fig.update_layout(height=420)
    return fig

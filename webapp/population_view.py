"""Pure builders of the population page: period totals, the map, the trend chart, the
ward table and the CSV export, from rows of ``backend.storage.population``. Every number
that leaves here has passed the small-count suppression of ``backend.population
.disclosure``; rates carry their denominators."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import plotly.graph_objects as go

from backend.messages import Priority
from backend.population import disclosure
from backend.storage.population import Aggregate, RegionAggregate, RegionSurge, WardAggregate

COUNTS = ("admissions", "alerts_high", "alerts_medium", "alerts_low", "news2_high_episodes",
          "sepsis_alerts", "acknowledged")


@dataclass(frozen=True, slots=True)
class Measure:
    key: str
    label: str
    kind: str  # "count" | "rate" | "duration"
    unit: str = ""


MEASURES: dict[str, Measure] = {m.key: m for m in (
    Measure("admissions", "ICU admissions", "count"),
    Measure("patient_days", "Patient-days", "count"),
    Measure("alerts_high", "High-priority alerts", "count"),
    Measure("news2_high_episodes", "NEWS2 high-risk episodes (NEWS2 ≥ 7)", "count"),
    Measure("sepsis_alerts", "Sepsis-risk alerts", "count"),
    Measure("alert_rate", "Alerts per 100 patient-days", "rate", "per 100 patient-days"),
    Measure("occupancy", "Share of ICU bed-days", "rate", "% of bed-days"),
    Measure("median_ack_seconds", "Median time to acknowledge", "duration", "s"),
)}
# Measures whose daily series feed the surge detector (streaming.population_job).
SURGE_MEASURES = ("admissions", "news2_high_episodes", "sepsis_alerts")


def totals(rows: Iterable[Aggregate], key: str) -> dict[str, dict]:
    """Period totals per ``key`` (region or ward) from daily rows. The median time to
    acknowledge of a period is the mean of the daily medians weighted by the number of
    acknowledgements (daily medians do not combine into an exact median). ``key``: the
    group's field, ``region`` or ``ward``."""
    out: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        t = out[getattr(r, key)]
        for c in (*COUNTS, "patient_days", "bed_days"):
            t[c] += getattr(r, c)
        if r.median_ack_seconds is not None and r.acknowledged:
            t["_ack_weighted"] += r.median_ack_seconds * r.acknowledged
        if isinstance(r, WardAggregate) and r.beds is not None:
            t["beds"] = max(t.get("beds", 0), r.beds)
    for t in out.values():
        t["alerts"] = t["alerts_high"] + t["alerts_medium"] + t["alerts_low"]
        t["median_ack_seconds"] = (t.pop("_ack_weighted", 0) / t["acknowledged"]
                                   if t["acknowledged"] else None)
    return {k: dict(v) for k, v in out.items()}


def value(t: dict, measure: str, threshold: int) -> tuple[float | None, str]:
    """(number for colour/CSV or ``None`` when suppressed, text with denominator)."""
    m = MEASURES[measure]
    if measure == "alert_rate":
        num, den = t.get("alerts", 0), t.get("patient_days", 0)
        text = disclosure.show_rate(num, den, threshold, per=100, unit=m.unit)
        ok = den and not (disclosure.is_suppressed(num, threshold)
                          or disclosure.is_suppressed(den, threshold))
        return (num / den * 100 if ok else None), text
    if measure == "occupancy":
        num, den = t.get("patient_days", 0), t.get("bed_days", 0)
        text = disclosure.show_rate(num, den, threshold, per=100, unit="% of bed-days")
        ok = den and not disclosure.is_suppressed(num, threshold)
        return (num / den * 100 if ok else None), text
    if measure == "median_ack_seconds":
        n = t.get("acknowledged", 0)
        if not n or t.get("median_ack_seconds") is None:
            return None, "no acknowledged alerts"
        if disclosure.is_suppressed(n, threshold):
            return None, f"suppressed (<{threshold} acknowledged)"
        v = t["median_ack_seconds"]
        return v, f"{v:.0f} s (over {n:,.0f} acknowledged alerts)"
    v = t.get(measure, 0)
    decimals = 1 if measure == "patient_days" else 0
    return disclosure.suppress_value(v, threshold), disclosure.show_count(v, threshold,
                                                                         decimals=decimals)


def map_figure(geojson: dict, names: dict[str, str], values: dict[str, tuple[float | None, str]],
               title: str, *, public: bool = False, selected: str | None = None) -> go.Figure:
    """Choropleth of the counties in ``geojson``. Suppressed or missing counties are drawn
    hatched-grey (value NaN) with their reason in the hover."""
    fips = [f["id"] for f in geojson["features"]]
    z = [values.get(f, (None, "no data"))[0] for f in fips]
    hover = [f"<b>{names.get(f, f)}</b><br>{values.get(f, (None, 'no data'))[1]}" for f in fips]
    fig = go.Figure()
    fig.add_trace(go.Choropleth(
        geojson=geojson, locations=fips, featureidkey="id",
        z=[math.nan if v is None else v for v in z], text=hover, hoverinfo="text",
        colorscale="Oranges" if public else "Blues", marker_line_color="#333",
        marker_line_width=[3 if f == selected else 0.8 for f in fips],
        colorbar={"title": {"text": title, "side": "right"}, "thickness": 14},
        name="public" if public else "hospital",
    ))
    # Albers USA cannot zoom to a few counties; a Mercator view of North America can
    # (base map north-america_110m.json, shipped in assets/topojson).
    fig.update_geos(scope="north america", projection_type="mercator", fitbounds="locations",
                    visible=True, showland=True, landcolor="#eeeeee", showlakes=False,
                    showocean=True, oceancolor="#dde8f0", subunitcolor="#999")
    fig.update_layout(margin={"l": 0, "r": 0, "t": 10, "b": 0}, height=460,
                      clickmode="event", dragmode=False)
    return fig


def daily_series(rows: Iterable[RegionAggregate], measure: str, days: Sequence[date],
                 region: str | None) -> list[float]:
    by_day: dict[date, float] = defaultdict(float)
    for r in rows:
        if region is None or r.region == region:
            by_day[r.period_start] += getattr(r, measure) or 0
    return [by_day.get(d, 0.0) for d in days]


def trend_figure(rows: Iterable[RegionAggregate], surges: Iterable[RegionSurge],
                 days: Sequence[date],
                 region: str | None, region_label: str, threshold: int) -> go.Figure:
    """Daily counts of the surge measures with the surge flags as labelled triangles.
    Daily counts below the threshold are drawn at 0 with "<N" in the hover."""
    rows = list(rows)
    fig = go.Figure()
    dashes = {"admissions": "solid", "news2_high_episodes": "dash", "sepsis_alerts": "dot"}
    for measure in SURGE_MEASURES:
        ys = daily_series(rows, measure, days, region)
        fig.add_trace(go.Scatter(
            x=list(days), y=[0 if disclosure.is_suppressed(y, threshold) else y for y in ys],
            text=[disclosure.show_count(y, threshold) for y in ys], hoverinfo="x+text+name",
            name=MEASURES[measure].label, mode="lines",
            line={"dash": dashes[measure], "width": 2.5}))
    flags = [s for s in surges if region is None or s.region == region]
    # Each flag sits on the line of the measure that surged (the line shown: one region's
    # or the sum of all), its own county and numbers in the hover.
    index = {d: i for i, d in enumerate(days)}
    lines = {t.name: list(t.y) for t in fig.data}
    flags = [s for s in flags if s.flag.day in index]
    if flags:
        fig.add_trace(go.Scatter(
            x=[s.flag.day for s in flags],
            y=[lines[MEASURES[s.measure].label][index[s.flag.day]] for s in flags],
            mode="markers+text", marker={"symbol": "triangle-down", "size": 16,
                                         "color": "#c0392b", "line": {"width": 1}},
            text=["SURGE"] * len(flags), textposition="top center",
            hovertext=[f"Surge {MEASURES[s.measure].label} in {s.region}: "
                       f"{disclosure.show_count(s.flag.observed, threshold)} vs expected "
                       f"{s.flag.expected:.1f} (+{s.flag.magnitude:.1f})" for s in flags],
            hoverinfo="text", name="Surge flag (CUSUM)"))
    fig.update_layout(margin={"l": 40, "r": 10, "t": 30, "b": 30}, height=320,
                      title={"text": f"Daily counts: {region_label}", "font": {"size": 15}},
                      legend={"orientation": "h", "y": -0.2}, yaxis={"rangemode": "tozero"})
    return fig


WARD_COLUMNS = [("ward", "Ward"), ("beds", "Beds"), ("admissions", "Admissions"),
                ("patient_days", "Patient-days"), ("occupancy", "Occupancy"),
                ("alert_rate", "Alerts / 100 patient-days"),
                ("alerts_high", "High alerts"), ("news2_high_episodes", "NEWS2 ≥ 7 episodes"),
                ("sepsis_alerts", "Sepsis-risk alerts"),
                ("median_ack_seconds", "Median time to acknowledge")]


def ward_table(ward_totals: dict[str, dict], threshold: int) -> list[dict]:
    out = []
    for ward in sorted(ward_totals):
        t = ward_totals[ward]
        row = {"ward": ward, "beds": f"{t.get('beds', 0):.0f}"}
        for key, _ in WARD_COLUMNS[2:]:
            row[key] = value(t, key, threshold)[1]
        out.append(row)
    return out


def _cell(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}"


def csv_text(region_totals: dict[str, dict], names: dict[str, str], threshold: int,
             start: date, end: date) -> str:
    """The current view as CSV: one row per region, suppressed cells empty with a flag."""
    buf = io.StringIO()
    w = csv.writer(buf)
    keys = list(MEASURES)
    w.writerow(["period_start", "period_end", "region_fips", "region_name",
                *keys, *(f"{k}_text" for k in keys)])
    for region in sorted(region_totals):
        vals = [value(region_totals[region], k, threshold) for k in keys]
        w.writerow([start.isoformat(), end.isoformat(), region, names.get(region, region),
                    *(_cell(v) for v, _ in vals),
                    *(text for _, text in vals)])
    return buf.getvalue()


# The alarm burden card (backend.alerting.burden): straight from the alert tables.
BURDEN_COLUMNS = [("ward", "Ward"), ("bed_days", "Occupied bed-days"),
                  ("alarms", "Alarms (high / medium / low)"),
                  ("per_bed_day", "Alarms per bed per day"),
                  ("acknowledged", "Acknowledged"),
                  ("median_ack", "Median time to acknowledge"),
                  ("top_rules", "Most frequent")]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def burden_rows(burdens: Iterable, threshold: int) -> list[dict]:
    """``WardBurden``s as the table's rows: text with denominators. Counts of alarms
    from 1 to ``threshold - 1`` are suppressed like every count of the page (with any
    rate or median built on them); occupied bed-days are a denominator, not a count of
    people, and are shown."""
    def count(n: float) -> str:
        return disclosure.show_count(n, threshold)

    rows = []
    for b in burdens:
        pri = b.by_priority
        acked = b.acknowledged
        median = b.median_ack_seconds
        if median is not None and disclosure.is_suppressed(acked, threshold):
            median_text = f"suppressed (<{threshold} acknowledged)"
        else:
            median_text = _duration(median)
        rows.append({
            "ward": b.ward,
            "bed_days": f"{b.bed_days:,.1f}",
            "alarms": f"{count(b.alarms)} ({count(pri[Priority.HIGH])} / "
                      f"{count(pri[Priority.MEDIUM])} / {count(pri[Priority.LOW])})",
            "per_bed_day": ("–" if b.per_bed_day is None
                            else f"suppressed (<{threshold})"
                            if disclosure.is_suppressed(b.alarms, threshold)
                            else f"{b.per_bed_day:,.1f} ({b.alarms:,} / {b.bed_days:,.1f})"),
            "acknowledged": disclosure.show_rate(acked, b.alarms, threshold, per=100,
                                                 unit="%", decimals=0),
            "median_ack": median_text,
            "top_rules": ", ".join(f"{rule} {count(n)}" for rule, n in b.top_rules) or "–",
        })
    return rows

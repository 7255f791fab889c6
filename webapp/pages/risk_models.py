"""Deterioration-risk model performance, for physicians and administrators.

The registered versions come from the file registry (``backend.risk.registry`` under
``settings.cache_dir / "models"``); the figures from each version's ``evaluation.json``
(``icu model evaluate``), drawn by the pure builders of
``webapp.risk_models.evaluation_figures``. The layout carries no data: everything arrives
through callbacks tagged ``"models"``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from dash import Input, Output, dcc, html

from backend import localtime
from backend.risk import drift, registry
from backend.risk.recalibrate import read_recalibration
from backend.storage.risk_scores import ModelScore, RiskScoreStore, days_back
from backend.storage.statements import store
from webapp.risk_models import evaluation_figures as mv
from webapp.risk_models import live_figures as lv
from webapp.security import current_db, current_settings, register_page, secure_callback

register_page(__name__, "models")
log = logging.getLogger(__name__)

GRAPH_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
GRAPHS = ("models-roc", "models-pr", "models-calibration", "models-burden",
          "models-sites-calibration", "models-recalibration-figure")
LIVE_GRAPHS = ("models-live-volume", "models-live-dist", "models-live-psi")
LIVE_DAYS = 7
LIVE_REFRESH_MS = 60_000


def _card(title: str, *children: Any, **kwargs: Any) -> html.Section:
    return html.Section(className="card models-card", children=[html.H2(title), *children],
                        **kwargs)


def _graph(graph_id: str) -> dcc.Loading:
    return dcc.Loading(dcc.Graph(id=graph_id, config=GRAPH_CONFIG, className="models-graph"),
                       type="circle", delay_show=150)


def layout(**_query: str) -> html.Div:
    return html.Div(
        className="page page-models",
        children=[
            html.H1("Deterioration risk model"),
            html.P("Hourly risk that a patient is septic or meets the Sepsis-3 onset "
                   "criteria within 6 hours, compared with NEWS2, qSOFA, SIRS and the "
                   "reference rule on the same held-out patients.", className="muted"),
            dcc.Store(id="models-init", data=0),
            _card(
                "Model version",
                html.Div(className="form-row models-picker", children=[
                    dcc.Dropdown(id="models-version", clearable=False,
                                 placeholder="Loading the registry…",
                                 className="models-version-select"),
                ]),
                dcc.Loading(html.Div(id="models-body", className="models-facts"),
                            type="dot"),
            ),
            _card(
                "Discrimination",
                dcc.RadioItems(id="models-level", value="hourly", inline=True,
                               className="models-radio",
                               options=[{"label": v, "value": k}
                                        for k, v in mv.LEVELS.items()]),
                html.Div(className="models-grid", children=[_graph("models-roc"),
                                                            _graph("models-pr")]),
                html.P("Baselines use their underlying score (NEWS2 total, qSOFA points, "
                       "SIRS criteria; the reference rule is 0/1), so their curves have "
                       "only a few steps. Filled markers: each method at its own "
                       "threshold.", className="muted small"),
            ),
            html.Div(className="models-grid", children=[
                _card(
                    "Calibration",
                    dcc.RadioItems(id="models-bins", value="quantile", inline=True,
                                   className="models-radio",
                                   options=[{"label": "Equal-count bins", "value": "quantile"},
                                            {"label": "Equal-width bins", "value": "uniform"}]),
                    _graph("models-calibration"),
                ),
                _card(
                    "Alert burden",
                    html.Div(className="models-radio-spacer"),
                    _graph("models-burden"),
                    html.P("The model's curve runs over all its thresholds; the ring is the "
                           "slider's threshold. At the lowest thresholds alerts merge into "
                           "long runs, so the count per day falls again (the fold at "
                           "sensitivity 1).", className="muted small"),
                ),
            ]),
            _card(
                "Operating point",
                html.P("Move the threshold: the confusion matrix and rates of the model on "
                       "the test patients at that threshold. Every position is a stored "
                       "point of the model's ROC curve.", className="muted small"),
                html.Div(className="models-slider", children=[
                    dcc.Slider(id="models-threshold", min=0, max=1, step=1, value=0,
                               included=False, updatemode="mouseup",
                               allow_direct_input=False),
                ]),
                dcc.Loading(html.Div(id="models-confusion"), type="dot"),
            ),
            _card(
                "Comparison on the test patients",
                dcc.Loading(html.Div(id="models-tables", className="table-wrap"),
                            type="dot"),
            ),
            _card(
                "Does it travel? Site-robust evaluation",
                html.P("The same recipe (features, trees, calibration, thresholds) judged on "
                       "stays unlike its training stays: retrained on hospital A's medical "
                       "ICU and tested on its surgical ICU, and the other way round, beside "
                       "the random split. Calibration, the alarm threshold and the "
                       "operating points are chosen on each split's own validation stays; "
                       "nothing is tuned on the held-out stays. Set A has no calendar "
                       "time, so no temporal split is possible.", className="muted small"),
                dcc.Loading(html.Div(id="models-sites"), type="dot"),
                _graph("models-sites-calibration"),
            ),
            _card(
                "Local recalibration",
                dcc.Loading(html.Div(id="models-recalibration"), type="dot"),
                html.Div(id="models-recalibration-graph", children=[
                    _graph("models-recalibration-figure")]),
            ),
            _card(
                "Live monitoring",
                dcc.Interval(id="models-live-refresh", interval=LIVE_REFRESH_MS),
                html.P(id="models-live-caption", className="muted small"),
                html.Div(id="models-live", role="status", className="notice notice-info",
                         children="Loading the live scores…"),
                _graph("models-live-volume"),
                html.Div(className="models-grid", children=[_graph("models-live-dist"),
                                                            _graph("models-live-psi")]),
                html.P([
                    "The stream job scores every patient each hour with the active model "
                    "(no labs on the stream, so the labs-hidden threshold applies). Drift: "
                    "the population stability index (PSI) of each day's scores against "
                    "the model's scores on its held-out test patients, on their decile "
                    f"bins. Below {drift.WATCH:.2f} stable; {drift.WATCH:.2f}–"
                    f"{drift.DRIFT:.2f} watch; {drift.DRIFT:.2f} or more drift (the "
                    "measured performance may no longer hold). A day with fewer than "
                    f"{drift.MIN_SCORES} scores gets no PSI. Last {LIVE_DAYS} days."],
                    className="muted small"),
            ),
            _card(
                "Data and limits",
                html.Div(id="models-data-note", children=[
                    html.P([
                        "Trained and evaluated on the PhysioNet/Computing in Cardiology "
                        "Challenge 2019 training set A (Reyna MA et al., ",
                        html.I("Crit Care Med"), " 2020;48(2):210–217, "
                        "doi:10.1097/CCM.0000000000004145; data doi:10.13026/v64v-d857), "
                        "from PhysioNet (Goldberger AL et al., ", html.I("Circulation"),
                        " 2000;101(23):e215–e220).",
                    ]),
                    html.P([
                        html.Strong("Evaluated on held-out patients of one hospital only. "),
                        "The test patients are new patients of the same hospital as the "
                        "training patients, with the same charting practice; performance "
                        "at another hospital is unmeasured and is usually worse. The "
                        "baselines lack consciousness/GCS, full oxygen information and "
                        "band forms, so their numbers are a lower bound of what they do at "
                        "a bedside. The risk is calibrated on hospital A's validation "
                        "patients: at another hospital, with another case mix and sepsis "
                        "rate, it can be too high or too low (see the site-robust "
                        "evaluation) until it is recalibrated on that hospital's first "
                        "labelled weeks (`icu model recalibrate`). Details: docs/model.md.",
                    ]),
                ]),
            ),
        ],
    )


# --- data access --------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _read_json(path: str, _mtime_ns: int) -> Any:
    return json.loads(Path(path).read_text())


def _evaluation(version: str) -> dict | None:
    """The version's evaluation document, or None (not evaluated, or not a version)."""
    try:
        path = registry.version_dir(current_settings(), version) / "evaluation.json"
        return _read_json(str(path), path.stat().st_mtime_ns)
    except (FileNotFoundError, registry.RegistryError):
        return None


def _version_json(version: str, name: str) -> dict | None:
    """Another JSON file of a version (``sites.json``), or None."""
    try:
        path = registry.version_dir(current_settings(), version) / name
        return _read_json(str(path), path.stat().st_mtime_ns)
    except (FileNotFoundError, registry.RegistryError):
        return None


def _empty_figure(message: str) -> dict:
    return {"data": [], "layout": {
        "xaxis": {"visible": False}, "yaxis": {"visible": False}, "height": 560,
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "annotations": [{"text": message, "showarrow": False, "xref": "paper",
                         "yref": "paper", "x": 0.5, "y": 0.5}]}}


def _table(header: list[str], rows: list[list[str]], table_id: str) -> html.Table:
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])),
         html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])],
        className="table models-table", id=table_id,
    )


# --- callbacks ----------------------------------------------------------------------------

@secure_callback("models", Output("models-version", "options"),
                 Output("models-version", "value"), Output("models-version", "placeholder"),
                 Input("models-init", "data"))
def load_registry(_init: Any) -> tuple[list, str | None, str]:
    settings = current_settings()
    metas = registry.list_versions(settings)
    active = registry.active_version(settings)
    if not metas:
        return [], None, f"No model registered in {registry.models_dir(settings)}"
    default = active if any(m["version"] == active for m in metas) else metas[-1]["version"]
    return mv.version_options(metas, active), default, "Choose a version"


@secure_callback(
    "models",
    Output("models-body", "children"),
    Output("models-tables", "children"),
    Output("models-threshold", "max"),
    Output("models-threshold", "value"),
    Output("models-threshold", "marks"),
    Input("models-version", "value"),
)
def show_version(version: str | None) -> tuple[Any, ...]:
    if not version:
        msg = html.P("No model version to show. Train one with `icu model train`.",
                     className="notice notice-info")
        return msg, "", 1, 0, {}
    settings = current_settings()
    try:
        meta = registry.read_metadata(settings, version)
    except registry.RegistryError as e:
        return html.P(str(e), className="notice notice-error"), "", 1, 0, {}
    active = registry.active_version(settings)
    facts = html.Dl(className="models-facts-list", children=[
        item for k, v in mv.version_facts(meta, active, current_settings().timezone)
        for item in (html.Dt(k), html.Dd(v, className="mono" if "SHA" in k else None))
    ])
    ev = _evaluation(version)
    if ev is None:
        note = html.P(f"Version {version} has not been evaluated yet: run "
                      f"`icu model evaluate {version}`.", className="notice notice-info")
        return [facts, note], "", 1, 0, {}
    evaluated = mv.local_stamp(ev["evaluated"], current_settings().timezone)
    cohort = html.P(mv.cohort_text(ev) + f"; evaluated {evaluated}.",
                    className="muted", id="models-cohort")
    tables = [
        html.H3("Ranking, calibration and lead time"),
        _table(mv.RANKING_HEADER, mv.ranking_rows(ev), "models-ranking"),
        html.H3("Operating points"),
        _table(mv.OPERATING_HEADER, mv.operating_rows(ev), "models-operating"),
        html.P("“Model − this”: paired patient-bootstrap 95 % interval of the AUROC "
               "difference. Last column: the model's alerts per patient-day at the "
               "baseline's patient-level sensitivity, read off the test curve / with the "
               "threshold matched on validation.", className="muted small"),
    ]
    ths = mv.slider_thresholds(ev, "hourly")
    if not ths:
        return [facts, cohort], tables, 1, 0, {}
    idx = mv.nearest_index(ths, float(ev["threshold"]))
    marks = {0: f"{ths[0]:.3f}", idx: f"validation threshold {ths[idx]:.4f}",
             len(ths) - 1: f"{ths[-1]:.2f}"}
    return [facts, cohort], tables, len(ths) - 1, idx, marks


@secure_callback(
    "models",
    Output("models-roc", "figure"),
    Output("models-pr", "figure"),
    Input("models-version", "value"),
    Input("models-level", "value"),
)
def show_discrimination(version: str | None, level: str | None) -> tuple[Any, Any]:
    ev = _evaluation(version) if version else None
    if ev is None:
        empty = _empty_figure("No evaluation for this version")
        return empty, empty
    level = level if level in mv.LEVELS else "hourly"
    return mv.curve_figure(ev, "roc", level), mv.curve_figure(ev, "pr", level)


@secure_callback("models", Output("models-calibration", "figure"),
                 Input("models-version", "value"), Input("models-bins", "value"))
def show_calibration(version: str | None, bins: str | None) -> Any:
    ev = _evaluation(version) if version else None
    if ev is None:
        return _empty_figure("No evaluation for this version")
    return mv.calibration_figure(ev, bins if bins in ("quantile", "uniform") else "quantile")


@secure_callback(
    "models",
    Output("models-confusion", "children"),
    Output("models-burden", "figure"),
    Input("models-threshold", "value"),
    Input("models-version", "value"),
)
def show_operating_point(index: int | None, version: str | None) -> tuple[Any, Any]:
    ev = _evaluation(version) if version else None
    if ev is None:
        return "", _empty_figure("No evaluation for this version")
    ths = mv.slider_thresholds(ev, "hourly")
    if not ths:
        return "", mv.burden_figure(ev)
    th = ths[min(max(int(index or 0), 0), len(ths) - 1)]
    hourly = mv.operating_point(ev, th, "hourly")
    patient = mv.operating_point(ev, th, "patient")
    blocks = [_confusion_block(hourly, "Patient-hours", "septic-label hours",
                               "models-confusion-hourly"),
              _confusion_block(patient, "Patients (stays)", "septic stays",
                               "models-confusion-patient")]
    burden = hourly["alerts_per_patient_day"]
    summary = html.P(
        [html.Strong(f"Threshold {th:.4f}: "),
         f"{mv.fmt(burden, '.2f')} alerts per patient-day "
         "(interpolated on the stored alert-burden curve)."],
        id="models-threshold-summary")
    current = {**patient, "alerts_per_patient_day": burden}
    return [summary, html.Div(blocks, className="models-grid")], mv.burden_figure(ev, current)


@secure_callback(
    "models",
    Output("models-sites", "children"),
    Output("models-sites-calibration", "figure"),
    Input("models-version", "value"),
)
def show_sites(version: str | None) -> tuple[Any, Any]:
    doc = _version_json(version, "sites.json") if version else None
    if doc is None:
        msg = (f"Version {version} has no site-robust evaluation yet: run `icu model sites "
               f"{version}` (it retrains the recipe on each ICU type, a few minutes)."
               if version else "No model version.")
        return (html.P(msg, className="notice notice-info"),
                _empty_figure("No site-robust evaluation for this version"))
    targets = [html.Li([html.Strong(f"{name}: "), text],
                       className="target-met" if met else "target-missed")
               for name, met, text in mv.target_lines(doc)]
    shortfalls = mv.site_baseline_shortfalls(doc)
    children = [
        html.P(f"Evaluated {doc['evaluated'].replace('T', ' ')}; "
               f"{len(doc['schemes'])} splits.", className="muted small",
               id="models-sites-caption"),
        html.H3("Targets on every held-out split (model with labs)"),
        html.Ul(targets, id="models-sites-targets"),
        html.Div(className="table-wrap", children=[
            _table(mv.SITES_HEADER, mv.sites_rows(doc), "models-sites-table")]),
        html.H3("Against each baseline, on every split"),
        html.P("“Meets”: at least the baseline's share of septic stays detected, with fewer "
               "alerts per patient-day. The matched operating point is the threshold that "
               "reached the baseline's validation sensitivity plus a margin.",
               className="muted small"),
        html.Div(className="table-wrap", children=[
            _table(mv.SITE_BASELINE_HEADER, mv.site_baseline_rows(doc),
                   "models-sites-baselines")]),
        html.Div(id="models-sites-shortfalls", children=(
            [html.P("Where the model does not beat a baseline even at the matched operating "
                    "point:"), html.Ul([html.Li(t) for t in shortfalls])] if shortfalls
            else [html.P("At the matched operating point the model beats every baseline on "
                         "every split.")]), className="notice notice-info"),
        html.H3("Calibration methods compared"),
        html.Div(className="table-wrap", children=[
            _table(mv.CALIBRATION_METHOD_HEADER, mv.calibration_method_rows(doc),
                   "models-sites-methods")]),
    ]
    return children, mv.sites_calibration_figure(doc)


@secure_callback(
    "models",
    Output("models-recalibration", "children"),
    Output("models-recalibration-figure", "figure"),
    Output("models-recalibration-graph", "hidden"),
    Input("models-version", "value"),
)
def show_recalibration(version: str | None) -> tuple[Any, Any, bool]:
    recal = None
    if version:
        try:
            recal = read_recalibration(current_settings(), version)
        except (OSError, ValueError, registry.RegistryError):
            log.exception("recalibration of %s could not be read", version)
    if recal is None:
        return (html.P("This version was not recalibrated locally. At a new hospital, "
                       "`icu model recalibrate --data EXPORT --first N` refits the "
                       "calibration on its first N labelled stays, keeps the trees, and "
                       "registers the result as a new version.",
                       className="muted small", id="models-recalibration-none"),
                _empty_figure(""), True)
    children = [html.P(mv.recalibration_text(recal), id="models-recalibration-text"),
                _table(mv.RECALIBRATION_HEADER, mv.recalibration_rows(recal),
                       "models-recalibration-table")]
    return children, mv.recalibration_figure(recal), False


def _scores(version: str) -> list[ModelScore]:
    return store(RiskScoreStore, current_db()).for_model(version, days_back(LIVE_DAYS))


@secure_callback(
    "models",
    Output("models-live", "children"),
    Output("models-live", "className"),
    Output("models-live-caption", "children"),
    Output("models-live-volume", "figure"),
    Output("models-live-dist", "figure"),
    Output("models-live-psi", "figure"),
    Input("models-version", "value"),
    Input("models-live-refresh", "n_intervals"),
)
def show_live(version: str | None, _tick: int | None) -> tuple[Any, ...]:
    empty = _empty_figure("No live scores")
    if not version:
        return "No model version.", "notice notice-info", "", empty, empty, empty
    active = registry.active_version(current_settings())
    caption = (f"Version {version} ({'active' if version == active else 'not active'}), "
               f"scores of the last {LIVE_DAYS} days (drift per UTC day); refreshed every "
               f"{LIVE_REFRESH_MS // 1000} s.")
    ev = _evaluation(version)
    reference = (ev or {}).get("score_reference")
    if not reference:
        return (f"No reference distribution for version {version}: run `icu model evaluate "
                f"{version}` to store it.", "notice notice-info", caption, empty, empty,
                empty)
    try:
        rows = _scores(version)
    except Exception:  # Cassandra unreachable: say so; the next refresh retries
        log.exception("live risk scores could not be read")
        now = localtime.clock(datetime.now(UTC), current_settings().timezone)
        return (f"DATA DELAYED: the live scores could not be read at {now}; retrying "
                "every minute.", "notice notice-error", caption, empty, empty, empty)
    if not rows:
        return (f"No live scores of version {version} in the last {LIVE_DAYS} days yet. "
                "The stream job scores each monitored patient once an hour, when the hour "
                "has ended, so the first scores come within an hour of monitoring"
                + ("" if version == active else f"; version {version} is not the active "
                   "one, the active one is scored") + ". If none come, the system "
                "administrator should check that the stream job runs.",
                "notice notice-info", caption, empty, empty, empty)
    summary = lv.summarize(rows, reference)
    level, text = lv.status_text(summary)
    return (text, f"notice notice-{level}", caption,
            lv.volume_figure(summary, current_settings().timezone),
            lv.distribution_figure(summary), lv.psi_figure(summary))


def _confusion_block(op: dict, unit: str, positive: str, block_id: str) -> html.Div:
    head = html.Tr([html.Th(""), html.Th("Alert"), html.Th("No alert")])
    rows = [html.Tr([html.Th(f"Positive ({positive})"), html.Td(f"{op['tp']:,}", title="TP"),
                     html.Td(f"{op['fn']:,}", title="FN")]),
            html.Tr([html.Th("Negative"), html.Td(f"{op['fp']:,}", title="FP"),
                     html.Td(f"{op['tn']:,}", title="TN")])]
    stats = html.Dl(className="models-rates", children=[
        html.Dt("Sensitivity"), html.Dd(mv.fmt(op["sensitivity"])),
        html.Dt("Specificity"), html.Dd(mv.fmt(op["specificity"])),
        html.Dt("PPV"), html.Dd(mv.fmt(op["ppv"])),
    ])
    level_note = ("an hour alerts when its risk ≥ threshold" if op["level"] == "hourly" else
                  "a septic stay counts when an alert falls in the 48 h up to onset; a "
                  "non-septic stay when it alerts at any hour")
    return html.Div(id=block_id, className="models-confusion-block", children=[
        html.H3(f"{unit}, threshold {op['threshold']:.4f}"),
        html.Table([html.Thead(head), html.Tbody(rows)], className="table models-cm"),
        stats,
        html.P(level_note, className="muted small"),
    ])


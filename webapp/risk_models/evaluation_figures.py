"""Figures and tables of the model-performance page: pure functions of the evaluation
document that ``icu model evaluate`` saves (``backend.risk.model_evaluation``) and of a version's
metadata. No Dash, no I/O, so they are unit-tested on a small hand-made document.

Conventions of ``evaluation.json`` relied on here:

* ``curves[method]["roc_<level>"]``: ``x`` = false-positive rate, ``y`` = sensitivity,
  ``threshold`` = predict positive when score >= threshold (``None`` = +inf, nobody).
* ``curves[method]["pr_<level>"]``: ``x`` = recall, ``y`` = precision.
* ``curves[model]["alert_burden"]``: ``threshold``, ``sensitivity_patient``,
  ``alerts_per_patient_day`` (thresholds ascending).
* ``curves[model]["reliability_quantile_bins" | "reliability_uniform_bins"]``.
* case counts: ``n_patient_hours`` / ``n_positive_hours`` (hourly),
  ``n_patients`` / ``n_septic_patients`` (patient level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import plotly.graph_objects as go

from backend import localtime

MODEL = "Model (GBT)"
MODEL_MONITOR = "Model, monitor only (no labs)"
LEVELS = {"hourly": "Hourly (every patient-hour)", "patient": "Per patient (stay)"}

# Okabe-Ito colours (safe for the common colour-vision deficiencies), and each method
# also has its own line dash and marker symbol so nothing depends on colour alone.
BLUE, SKY, VERMILLION, GREEN, PURPLE, ORANGE, GREY = (
    "#0072B2", "#56B4E9", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#7f7f7f")


@dataclass(frozen=True)
class Style:
    color: str
    dash: str
    symbol: str


STYLES: dict[str, Style] = {
    MODEL: Style(BLUE, "solid", "circle"),
    MODEL_MONITOR: Style(SKY, "dash", "circle-open"),
    "NEWS2 >= 5": Style(VERMILLION, "dot", "square"),
    "NEWS2 >= 7": Style(VERMILLION, "dot", "diamond"),
    "qSOFA >= 2": Style(GREEN, "dashdot", "triangle-up"),
    "SIRS >= 2": Style(PURPLE, "longdash", "triangle-down"),
    "HR > 120 or SpO2 < 90": Style(ORANGE, "longdashdot", "x"),
}
_FALLBACK = (Style(GREY, "dot", "star"), Style(BLUE, "dot", "cross"))


def style(method: str, i: int = 0) -> Style:
    return STYLES.get(method, _FALLBACK[i % len(_FALLBACK)])


def label(method: str) -> str:
    return method.replace(">=", "≥").replace("<=", "≤")


# --- numbers ------------------------------------------------------------------------------

def counts(ev: dict, level: str) -> tuple[int, int]:
    """(positives, negatives) at ``level``: patient-hours or stays."""
    if level == "hourly":
        pos = int(ev["n_positive_hours"])
        return pos, int(ev["n_patient_hours"]) - pos
    pos = int(ev["n_septic_patients"])
    return pos, int(ev["n_patients"]) - pos


def ppv(sens: float, spec: float, pos: int, neg: int) -> float | None:
    """Positive predictive value from sensitivity, specificity and the case counts."""
    tp, fp = sens * pos, (1.0 - spec) * neg
    return tp / (tp + fp) if tp + fp > 0 else None


def slider_thresholds(ev: dict, level: str, method: str = MODEL) -> list[float]:
    """The model thresholds of the stored ROC points at ``level``, ascending. The slider
    moves over these, so every position is an exact operating point of the curve."""
    roc = ev["curves"][method][f"roc_{level}"]
    return sorted({float(t) for t in roc["threshold"] if t is not None and math.isfinite(t)})


def nearest_index(thresholds: list[float], value: float) -> int:
    if not thresholds:
        return 0
    return int(np.argmin(np.abs(np.asarray(thresholds) - value)))


def operating_point(ev: dict, threshold: float, level: str, method: str = MODEL) -> dict:
    """Confusion matrix and rates of ``method`` alerting when its score >= ``threshold``.

    Read off the stored ROC curve at ``level`` (the stored point with the threshold
    nearest to ``threshold``; the slider only offers stored ones): TP = sensitivity x
    positives, FP = false-positive rate x negatives. Alerts per patient-day are linearly
    interpolated in the threshold on the stored alert-burden curve (clamped at its ends).
    """
    roc = ev["curves"][method][f"roc_{level}"]
    pts = [(float(t), float(x), float(y)) for t, x, y in
           zip(roc["threshold"], roc["x"], roc["y"], strict=True) if t is not None]
    if not pts:
        raise ValueError(f"no ROC points for {method} at level {level}")
    th, fpr, tpr = min(pts, key=lambda p: (abs(p[0] - threshold), -p[0]))
    pos, neg = counts(ev, level)
    tp = round(tpr * pos)
    fp = round(fpr * neg)
    fn, tn = pos - tp, neg - fp
    out: dict[str, Any] = {
        "level": level, "threshold": th, "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "sensitivity": tp / pos if pos else None,
        "specificity": tn / neg if neg else None,
        "ppv": tp / (tp + fp) if tp + fp else None,
        "alerts_per_patient_day": None,
    }
    burden = ev["curves"][method].get("alert_burden")
    if burden and burden.get("threshold"):
        xs = np.asarray(burden["threshold"], dtype=float)
        ys = np.asarray(burden["alerts_per_patient_day"], dtype=float)
        order = np.argsort(xs)
        out["alerts_per_patient_day"] = float(np.interp(th, xs[order], ys[order]))
    return out


# --- figures ------------------------------------------------------------------------------

def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, **axes: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 15}},
        xaxis={"title": {"text": xtitle}, "zeroline": False, **axes.get("xaxis", {})},
        yaxis={"title": {"text": ytitle}, "zeroline": False, **axes.get("yaxis", {})},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top",
                "font": {"size": 11}, "tracegroupgap": 2},
        margin={"l": 60, "r": 10, "t": 40, "b": 10},
        height=560, template="plotly_white",
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        font={"family": "Inter, Segoe UI, Helvetica Neue, Arial, sans-serif", "size": 12},
        hovermode="closest",
    )
    return fig


def _curve_groups(ev: dict, key: str) -> list[tuple[list[str], dict]]:
    """Methods with their ``key`` curve; methods whose curves are identical (NEWS2 >= 5
    and >= 7 share the NEWS2 total) are grouped, so each curve is drawn once."""
    groups: list[tuple[list[str], dict]] = []
    for name, c in ev["curves"].items():
        curve = c.get(key)
        if not curve or not curve.get("x"):
            continue
        for names, other in groups:
            if other["x"] == curve["x"] and other["y"] == curve["y"]:
                names.append(name)
                break
        else:
            groups.append(([name], curve))
    return groups


def _group_label(names: list[str]) -> str:
    if len(names) == 1:
        return label(names[0])
    stem = names[0].split(">=")[0].strip()
    if all(n.startswith(stem) for n in names):
        return f"{stem} score (" + ", ".join(label(n[len(stem):].strip()) for n in names) + ")"
    return " / ".join(label(n) for n in names)


def _rows(ev: dict) -> dict[str, dict]:
    return {r["method"]: r for r in ev.get("table", [])}


def _point(ev: dict, row: dict, kind: str, level: str) -> tuple[float, float] | None:
    sens, spec = row.get(f"sensitivity_{level}"), row.get(f"specificity_{level}")
    if sens is None or spec is None:
        return None
    if kind == "roc":
        return 1.0 - spec, sens
    prec = ppv(sens, spec, *counts(ev, level))
    return None if prec is None else (sens, prec)


def curve_figure(ev: dict, kind: str, level: str) -> go.Figure:
    """ROC (``kind="roc"``) or precision-recall (``"pr"``) at ``level``: the curve of
    every method (baselines from their underlying score, step-like as they have few
    values) and every method's operating point at its own threshold."""
    fig = go.Figure()
    area = "auroc" if kind == "roc" else "auprc"
    rows = _rows(ev)
    for i, (names, curve) in enumerate(_curve_groups(ev, f"{kind}_{level}")):
        st = style(names[0], i)
        auc = rows.get(names[0], {}).get(f"{area}_{level}")
        name = _group_label(names) + (f" ({area.upper()} {auc:.3f})" if auc is not None else "")
        shape = "hv" if kind == "pr" and len(curve["x"]) < 30 else "linear"
        fig.add_trace(go.Scatter(
            x=curve["x"], y=curve["y"], mode="lines", name=name, legendgroup=names[0],
            line={"color": st.color, "dash": st.dash, "width": 2.5 if names[0] == MODEL else 2,
                  "shape": shape},
            customdata=curve.get("threshold"),
            hovertemplate=("threshold %{customdata}<br>" if curve.get("threshold") else "")
            + ("FPR %{x:.3f}, sensitivity %{y:.3f}" if kind == "roc"
               else "recall %{x:.3f}, precision %{y:.3f}") + f"<extra>{label(names[0])}</extra>",
        ))
    for i, (name, row) in enumerate(rows.items()):
        p = _point(ev, row, kind, level)
        if p is None:
            continue
        st = style(name, i)
        fig.add_trace(go.Scatter(
            x=[p[0]], y=[p[1]], mode="markers", name=f"{label(name)} at its threshold",
            legendgroup=name, showlegend=True,
            marker={"color": st.color, "symbol": st.symbol, "size": 11,
                    "line": {"width": 1.5, "color": "#222"}},
            hovertemplate=f"{label(name)}, threshold {row.get('threshold'):.4g}<br>"
            + ("FPR %{x:.3f}, sensitivity %{y:.3f}" if kind == "roc"
               else "recall %{x:.3f}, precision %{y:.3f}") + "<extra></extra>",
        ))
    pos, neg = counts(ev, level)
    if kind == "roc":
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                 line={"color": GREY, "dash": "dot", "width": 1},
                                 hoverinfo="skip"))
        return _layout(fig, f"ROC, {LEVELS[level].lower()}",
                       "False-positive rate (1 − specificity)", "Sensitivity",
                       xaxis={"range": [-0.01, 1.01]}, yaxis={"range": [-0.01, 1.01]})
    prev = pos / (pos + neg) if pos + neg else 0.0
    fig.add_trace(go.Scatter(x=[0, 1], y=[prev, prev], mode="lines",
                             name=f"chance (prevalence {prev:.3f})",
                             line={"color": GREY, "dash": "dot", "width": 1},
                             hoverinfo="skip"))
    top = max([prev, *(y for t in fig.data for y in (t.y or ()) if y is not None)])
    return _layout(fig, f"Precision-recall, {LEVELS[level].lower()}", "Recall (sensitivity)",
                   "Precision (PPV)", xaxis={"range": [-0.01, 1.01]},
                   yaxis={"range": [0, min(1.01, top * 1.1)]})


def calibration_figure(ev: dict, bins: str = "quantile") -> go.Figure:
    """Reliability plot of the model(s): mean predicted risk against the observed rate
    per bin, with the diagonal of perfect calibration. ``bins``: "quantile" (equal
    count, log axes, as the risks crowd near 0) or "uniform" (equal width, linear)."""
    key = f"reliability_{bins}_bins"
    fig = go.Figure()
    lo, hi = 1.0, 0.0
    for i, (name, c) in enumerate(ev["curves"].items()):
        rel = c.get(key)
        if not rel or not rel.get("mean_predicted"):
            continue
        xs, ys, ns = rel["mean_predicted"], rel["observed"], rel["count"]
        if bins == "quantile":  # log axes: a bin with no positives cannot be drawn
            keep = [j for j, (x, y) in enumerate(zip(xs, ys, strict=True)) if x > 0 and y > 0]
            xs, ys, ns = [xs[j] for j in keep], [ys[j] for j in keep], [ns[j] for j in keep]
        st = style(name, i)
        brier = _rows(ev).get(name, {}).get("brier")
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", customdata=ns,
            name=label(name) + (f" (Brier {brier:.4f})" if brier is not None else ""),
            line={"color": st.color, "dash": st.dash, "width": 2},
            marker={"symbol": st.symbol, "size": 9, "color": st.color},
            hovertemplate="predicted %{x:.3f}, observed %{y:.3f}<br>%{customdata} hours"
            f"<extra>{label(name)}</extra>",
        ))
        if xs:
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
    raw = ev["curves"].get(MODEL, {}).get(f"{key}_raw")
    if raw and raw.get("mean_predicted"):  # the trees before calibration, for comparison
        brier_raw = ((_rows(ev).get(MODEL, {}).get("calibration_raw") or {}).get("brier"))
        xs, ys = _reliability_traces(
            fig, raw, label(MODEL) + " before calibration"
            + (f" (Brier {brier_raw:.4f})" if brier_raw is not None else ""),
            Style(GREY, "dot", "x"))
        if xs:
            lo, hi = min(lo, *xs, *ys), max(hi, *xs, *ys)
    if hi <= 0:
        lo, hi = 0.001, 1.0
    if bins == "quantile":
        lo, hi = lo / 1.5, min(1.0, hi * 1.5)
        diag = list(np.geomspace(lo, hi, 20))
        axes = {"xaxis": {"type": "log", "dtick": 1}, "yaxis": {"type": "log", "dtick": 1}}
    else:
        lo, hi = 0.0, 1.0
        diag = [0.0, 1.0]
        axes = {"xaxis": {"range": [0, 1]}, "yaxis": {"range": [0, 1]}}
    fig.add_trace(go.Scatter(x=diag, y=diag, mode="lines", name="perfect calibration",
                             line={"color": GREY, "dash": "dot", "width": 1.5},
                             hoverinfo="skip"))
    title = ("Calibration, equal-count bins (log axes)" if bins == "quantile"
             else "Calibration, equal-width bins")
    return _layout(fig, title, "Mean predicted risk", "Observed rate (SepsisLabel = 1)", **axes)


def burden_figure(ev: dict, current: dict | None = None) -> go.Figure:
    """Alert burden against patient-level sensitivity: the model's trade-off curve(s)
    over their thresholds, every method at its own threshold, and optionally the
    slider's current operating point (``current`` from :func:`operating_point`)."""
    fig = go.Figure()
    for i, (name, c) in enumerate(ev["curves"].items()):
        b = c.get("alert_burden")
        if not b or not b.get("threshold"):
            continue
        st = style(name, i)
        fig.add_trace(go.Scatter(
            x=b["alerts_per_patient_day"], y=b["sensitivity_patient"], mode="lines",
            name=f"{label(name)} (all thresholds)", legendgroup=name,
            customdata=b["threshold"],
            line={"color": st.color, "dash": st.dash, "width": 2.5 if name == MODEL else 2},
            hovertemplate="threshold %{customdata:.4f}<br>%{x:.2f} alerts/patient-day, "
            f"sensitivity %{{y:.3f}}<extra>{label(name)}</extra>",
        ))
    for i, (name, row) in enumerate(_rows(ev).items()):
        x, y = row.get("alerts_per_patient_day"), row.get("sensitivity_patient")
        if x is None or y is None:
            continue
        st = style(name, i)
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers", name=f"{label(name)} at its threshold",
            legendgroup=name,
            marker={"color": st.color, "symbol": st.symbol, "size": 12,
                    "line": {"width": 1.5, "color": "#222"}},
            hovertemplate=f"{label(name)}<br>%{{x:.2f}} alerts/patient-day, "
            "sensitivity %{y:.3f}<extra></extra>",
        ))
    if current and current.get("alerts_per_patient_day") is not None \
            and current.get("level") == "patient":
        fig.add_trace(go.Scatter(
            x=[current["alerts_per_patient_day"]], y=[current["sensitivity"]],
            mode="markers", name="slider threshold",
            marker={"color": "rgba(0,0,0,0)", "symbol": "circle", "size": 18,
                    "line": {"width": 2.5, "color": BLUE}},
            hoverinfo="skip",
        ))
    return _layout(fig, "Alert burden against sensitivity (per patient)",
                   "Alerts per patient-day", "Sensitivity (septic stays detected)",
                   xaxis={"rangemode": "tozero"}, yaxis={"range": [0, 1.02]})


# --- tables -------------------------------------------------------------------------------

def fmt(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, spec)


def _ci(row: dict, key: str) -> str:
    ci = row.get(f"{key}_ci95")
    base = fmt(row.get(key))
    return f"{base} ({fmt(ci[0], '.2f')}–{fmt(ci[1], '.2f')})" if ci else base


def _diff(row: dict, level: str) -> str:
    ci = row.get(f"model_minus_this_auroc_{level}_ci95")
    return f"{ci[0]:+.3f} to {ci[1]:+.3f}" if ci else ""


RANKING_HEADER = ["Method", "AUROC hourly (95 % CI)", "AUPRC hourly",
                  "AUROC patient (95 % CI)", "AUPRC patient", "Brier", "Median lead (h)",
                  "Model − this, AUROC hourly", "Model − this, AUROC patient",
                  "Brier base rate", "Calibration slope", "Calibration intercept", "ECE"]
OPERATING_HEADER = ["Method", "Threshold", "Sens hourly", "Spec hourly", "Sens patient",
                    "Spec patient", "Utility", "Alerts / patient-day",
                    "Model alerts / patient-day at this sensitivity: test curve / "
                    "operating point chosen on validation (its test sensitivity)"]


def ranking_rows(ev: dict) -> list[list[str]]:
    """Ranking, calibration and lead time per method (the first table of docs/model.md)."""
    return [[label(r["method"]), _ci(r, "auroc_hourly"), fmt(r.get("auprc_hourly")),
             _ci(r, "auroc_patient"), fmt(r.get("auprc_patient")),
             fmt(r.get("brier"), ".4f"), fmt(r.get("median_lead_hours"), ".1f"),
             _diff(r, "hourly"), _diff(r, "patient"),
             fmt((r.get("calibration") or {}).get("brier_base_rate"), ".4f"),
             fmt((r.get("calibration") or {}).get("calibration_slope"), ".2f"),
             fmt((r.get("calibration") or {}).get("calibration_intercept"), "+.2f"),
             fmt((r.get("calibration") or {}).get("ece"), ".4f")]
            for r in ev.get("table", [])]


def _equal(r: dict) -> str:
    eq = r.get("equal_sensitivity")
    if not eq:
        return ""
    vm = eq.get("validation_matched") or {}
    text = fmt((eq.get("test_curve") or {}).get("model_alerts_per_patient_day"), ".2f")
    if vm:
        verdict = {True: ": beats it", False: ": does not beat it"}.get(
            vm.get("beats_baseline"), "")
        text += (f" / {fmt(vm.get('model_alerts_per_patient_day'), '.2f')} "
                 f"(sens {fmt(vm.get('model_sensitivity_patient'), '.2f')}{verdict})")
    return text


def operating_rows(ev: dict) -> list[list[str]]:
    """Operating points per method (the second table of docs/model.md)."""
    return [[label(r["method"]), fmt(r.get("threshold"), ".4g"),
             fmt(r.get("sensitivity_hourly")), fmt(r.get("specificity_hourly")),
             fmt(r.get("sensitivity_patient")), fmt(r.get("specificity_patient")),
             fmt(r.get("utility")), fmt(r.get("alerts_per_patient_day"), ".2f"), _equal(r)]
            for r in ev.get("table", [])]


def local_stamp(iso_text: Any, tz: str | None) -> str:
    """An ISO timestamp of the registry as the hospital's local time with the zone."""
    try:
        return localtime.stamp(datetime.fromisoformat(str(iso_text)), tz)
    except ValueError:
        return str(iso_text or "–")


def version_facts(meta: dict, active: str | None,
                  tz: str | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs describing a registered version (times in ``tz``, the
    hospital's zone by default)."""
    feats = meta.get("features") or []
    facts = [
        ("Version", meta.get("version", "?") + (" (active)" if meta.get("version") == active
                                                else " (not active)")),
        ("Created", local_stamp(meta.get("created"), tz)),
        ("Training data", str(meta.get("training_data", "–"))),
        ("Training-data SHA-256", str(meta.get("training_data_sha256", "–"))),
        ("Features", str(len(feats))),
        ("Threshold", fmt(meta.get("threshold"), ".4f")
         + (f" (monitor only: {fmt(meta.get('threshold_monitor_only'), '.4f')})"
            if meta.get("threshold_monitor_only") is not None else "")),
    ]
    if meta.get("threshold_rule"):
        facts.append(("Threshold rule", str(meta["threshold_rule"])))
    if meta.get("evaluated"):
        facts.append(("Evaluated", local_stamp(meta["evaluated"], tz)))
    return facts


def version_options(metas: list[dict], active: str | None) -> list[dict[str, str]]:
    """Picker options, newest first; the active version is marked."""
    return [{"label": m["version"] + ("  ● active" if m["version"] == active else ""),
             "value": m["version"]} for m in reversed(metas)]


def cohort_text(ev: dict) -> str:
    return (f"{ev['n_patients']:,} held-out test patients ({ev['n_septic_patients']:,} septic), "
            f"{ev['n_patient_hours']:,} patient-hours ({ev['n_positive_hours']:,} positive), "
            f"{ev['patient_days']:,.0f} patient-days")


# --- site-robust evaluation (sites.json, backend.risk.sites) -------------------------------

TARGET_TEXT = {
    "utility_at_least_0.35": "utility ≥ 0.35",
    "brier_below_base_rate": "Brier below the base rate",
    "calibration_slope_0.8_to_1.2": "calibration slope 0.8–1.2",
    "auroc_hourly_at_least_0.799": "hourly AUROC ≥ 0.799",
}
SITES_HEADER = ["Held-out split", "Model", "Held-out stays (septic)", "AUROC hourly",
                "AUROC patient", "Utility", "Sens patient", "Alerts / patient-day",
                "Brier (base rate)", "Calibration slope", "Calibration intercept", "ECE"]
SITE_BASELINE_HEADER = ["Held-out split", "Baseline", "Baseline: sens patient, alerts/day",
                        "Model at its alarm threshold", "Model at the operating point matched "
                        "on validation"]
CALIBRATION_METHOD_HEADER = ["Held-out split", "Calibration (fitted on validation)",
                             "Brier (base rate)", "Slope", "Intercept", "ECE",
                             "Mean risk / observed", "AUROC hourly", "Utility at its threshold"]
METHOD_LABELS = {"none": "none (raw trees)", "platt": "Platt (logistic)",
                 "isotonic": "isotonic"}
SPLIT_STYLES = (Style(BLUE, "solid", "circle"), Style(VERMILLION, "dash", "square"),
                Style(GREEN, "dot", "triangle-up"), Style(PURPLE, "dashdot", "diamond"))


def _brier(c: dict) -> str:
    return f"{fmt(c.get('brier'), '.4f')} ({fmt(c.get('brier_base_rate'), '.4f')})"


def sites_rows(doc: dict) -> list[list[str]]:
    """One row per held-out split and model (with labs / monitor only)."""
    rows = []
    for e in doc.get("schemes", []):
        n = f"{e['n_patients']['test']:,} ({e['n_septic_patients']['test']:,})"
        for key, name in (("model", "with labs"), ("monitor_only", "monitor only")):
            m = e[key]
            c = m["calibration"]
            rows.append([e["label"], name, n, fmt(m["auroc_hourly"]), fmt(m["auroc_patient"]),
                         fmt(m["utility"]), fmt(m["sensitivity_patient"], ".2f"),
                         fmt(m["alerts_per_patient_day"], ".2f"), _brier(c),
                         fmt(c.get("calibration_slope"), ".2f"),
                         fmt(c.get("calibration_intercept"), "+.2f"), fmt(c.get("ece"), ".4f")])
    return rows


def target_lines(doc: dict) -> list[tuple[str, bool, str]]:
    """(split label, met, sentence) per split: which published targets it meets, with
    the numbers, in words (nothing depends on colour)."""
    labels = {e["scheme"]: e for e in doc.get("schemes", [])}
    out = []
    for scheme, checks in doc.get("targets", {}).items():
        e = labels.get(scheme)
        if e is None:
            continue
        m, c = e["model"], e["model"]["calibration"]
        value = {"utility_at_least_0.35": fmt(m["utility"]),
                 "brier_below_base_rate": f"{fmt(c['brier'], '.4f')} vs "
                                          f"{fmt(c['brier_base_rate'], '.4f')}",
                 "calibration_slope_0.8_to_1.2": fmt(c["calibration_slope"], ".2f"),
                 "auroc_hourly_at_least_0.799": fmt(m["auroc_hourly"])}
        met = [TARGET_TEXT.get(k, k) + f" ({value.get(k, '')})" for k, v in checks.items() if v]
        missed = [TARGET_TEXT.get(k, k) + f" ({value.get(k, '')})"
                  for k, v in checks.items() if not v]
        text = ("meets every target: " + "; ".join(met) if not missed else
                "MISSES " + "; ".join(missed) + (". Meets " + "; ".join(met) if met else ""))
        out.append((e["label"], not missed, text + "."))
    return out


def _verdict(point: dict) -> str:
    word = "meets" if point.get("beats") else "DOES NOT MEET"
    return (f"{word}: sens {fmt(point.get('sensitivity_patient'), '.2f')}, "
            f"{fmt(point.get('alerts_per_patient_day'), '.2f')} alerts/day")


def site_baseline_rows(doc: dict, key: str = "model") -> list[list[str]]:
    """Per split and baseline: does the model detect at least the baseline's share of
    septic stays with fewer alerts per patient-day, at its own threshold and at the
    operating point matched to that baseline on validation? Words, not colours."""
    rows = []
    for e in doc.get("schemes", []):
        for b in e[key]["baselines"]:
            rows.append([e["label"], label(b["baseline"]),
                         f"{fmt(b['baseline_sensitivity_patient'], '.2f')}, "
                         f"{fmt(b['baseline_alerts_per_patient_day'], '.2f')}",
                         _verdict(b["main"]), _verdict(b["matched"])])
    return rows


def site_baseline_shortfalls(doc: dict, key: str = "model") -> list[str]:
    """Sentences for every split and baseline where even the matched operating point does
    not reach the baseline's sensitivity with fewer alerts (the page must say so)."""
    out = []
    for e in doc.get("schemes", []):
        for b in e[key]["baselines"]:
            m = b["matched"]
            if m.get("beats"):
                continue
            why = []
            if m["sensitivity_patient"] < b["baseline_sensitivity_patient"]:
                why.append(f"sensitivity {fmt(m['sensitivity_patient'], '.2f')} below its "
                           f"{fmt(b['baseline_sensitivity_patient'], '.2f')}")
            if m["alerts_per_patient_day"] >= b["baseline_alerts_per_patient_day"]:
                why.append(f"{fmt(m['alerts_per_patient_day'], '.2f')} alerts/day, not fewer "
                           f"than its {fmt(b['baseline_alerts_per_patient_day'], '.2f')}")
            out.append(f"{e['label']}: the model does not beat {label(b['baseline'])} "
                       f"({'; '.join(why)}).")
    return out


def calibration_method_rows(doc: dict, key: str = "model") -> list[list[str]]:
    rows = []
    for e in doc.get("schemes", []):
        for method, c in e[key]["calibration_methods"].items():
            used = " (used)" if method == e[key]["calibration_method"] else ""
            rows.append([e["label"], METHOD_LABELS.get(method, method) + used, _brier(c),
                         fmt(c.get("calibration_slope"), ".2f"),
                         fmt(c.get("calibration_intercept"), "+.2f"), fmt(c.get("ece"), ".4f"),
                         fmt(c.get("expected_over_observed"), ".2f"),
                         fmt(c.get("auroc_hourly")), fmt(c.get("at_threshold_utility"))])
    return rows


def _reliability_traces(fig: go.Figure, rel: dict, name: str, st: Style,
                        hover: str = "hours") -> tuple[list[float], list[float]]:
    xs, ys, ns = rel.get("mean_predicted", []), rel.get("observed", []), rel.get("count", [])
    keep = [j for j, (x, y) in enumerate(zip(xs, ys, strict=True)) if x > 0 and y > 0]
    xs, ys, ns = [xs[j] for j in keep], [ys[j] for j in keep], [ns[j] for j in keep]
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="lines+markers", customdata=ns, name=name,
        line={"color": st.color, "dash": st.dash, "width": 2},
        marker={"symbol": st.symbol, "size": 9, "color": st.color},
        hovertemplate=f"predicted %{{x:.3f}}, observed %{{y:.3f}}<br>%{{customdata}} {hover}"
        f"<extra>{name}</extra>"))
    return xs, ys


def _log_diagonal(fig: go.Figure, values: list[float], title: str) -> go.Figure:
    lo, hi = (min(values), max(values)) if values else (0.001, 1.0)
    lo, hi = lo / 1.5, min(1.0, hi * 1.5)
    diag = list(np.geomspace(lo, hi, 20))
    fig.add_trace(go.Scatter(x=diag, y=diag, mode="lines", name="perfect calibration",
                             line={"color": GREY, "dash": "dot", "width": 1.5},
                             hoverinfo="skip"))
    return _layout(fig, title, "Mean predicted risk", "Observed rate (SepsisLabel = 1)",
                   xaxis={"type": "log", "dtick": 1}, yaxis={"type": "log", "dtick": 1})


def sites_calibration_figure(doc: dict, key: str = "model") -> go.Figure:
    """Reliability (equal-count bins, log axes) of the calibrated risks on every held-out
    split, each with its own colour, dash and marker."""
    fig = go.Figure()
    values: list[float] = []
    for i, e in enumerate(doc.get("schemes", [])):
        m = e[key]
        c = m["calibration"]
        name = (f"{e['label']} (slope {fmt(c.get('calibration_slope'), '.2f')}, "
                f"Brier {fmt(c.get('brier'), '.4f')} vs {fmt(c.get('brier_base_rate'), '.4f')})")
        xs, ys = _reliability_traces(fig, m.get("reliability", {}), name,
                                     SPLIT_STYLES[i % len(SPLIT_STYLES)])
        values += xs + ys
    return _log_diagonal(fig, values, "Calibration on every held-out split")


# --- local recalibration (recalibration.json, backend.risk.recalibrate) ---------------------

RECALIBRATION_HEADER = ["Stays", "Calibration", "Brier (base rate)", "Slope", "Intercept",
                        "ECE", "Mean risk / observed"]


def recalibration_rows(recal: dict) -> list[list[str]]:
    names = {"local": "used for fitting", "held_out": "held out",
             "local_monitor_only": "used for fitting, labs hidden",
             "held_out_monitor_only": "held out, labs hidden"}
    rows = []
    for part, title in names.items():
        r = recal.get("reports", {}).get(part)
        if not r:
            continue
        stays = f"{r['n_stays']:,} {title} ({r['n_septic_stays']:,} septic)"
        for when in ("before", "after"):
            c = r[when]
            rows.append([stays, when, _brier(c), fmt(c.get("calibration_slope"), ".2f"),
                         fmt(c.get("calibration_intercept"), "+.2f"), fmt(c.get("ece"), ".4f"),
                         fmt(c.get("expected_over_observed"), ".2f")])
    return rows


def recalibration_text(recal: dict) -> str:
    mode = ("intercept and slope" if recal.get("mode") == "platt" else "intercept only")
    keep = ("the same hours alert as before (thresholds mapped through)"
            if recal.get("thresholds") == "keep" else
            "the alarm thresholds were re-chosen on the local stays")
    return (f"Recalibrated from version {recal.get('parent_version')} on the first "
            f"{recal.get('n_local_stays', 0):,} stays of {recal.get('source')} ({mode}); "
            f"{recal.get('n_held_out_stays', 0):,} later stays held out. The trees are "
            f"unchanged; {keep}.")


def recalibration_figure(recal: dict) -> go.Figure:
    """Reliability before and after, on the held-out stays (else on the fitted ones)."""
    reports = recal.get("reports", {})
    part = "held_out" if "held_out" in reports else "local"
    r = reports.get(part, {})
    fig = go.Figure()
    values: list[float] = []
    for i, when in enumerate(("before", "after")):
        c = r.get(when, {})
        name = (f"{when} recalibration (Brier {fmt(c.get('brier'), '.4f')} vs "
                f"{fmt(c.get('brier_base_rate'), '.4f')}, slope "
                f"{fmt(c.get('calibration_slope'), '.2f')})")
        xs, ys = _reliability_traces(fig, c.get("reliability", {}), name,
                                     SPLIT_STYLES[(1, 0)[i]])
        values += xs + ys
    where = "held-out stays" if part == "held_out" else "stays used for fitting"
    return _log_diagonal(fig, values, f"Local recalibration, {where}")

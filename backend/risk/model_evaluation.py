"""Side-by-side evaluation on the held-out TEST patients of a model version.

Methods: the model on all data, the model on monitor data only (labs hidden), and the
baselines of ``backend.risk.baselines``. For each: hourly and patient-level AUROC/AUPRC
(with patient-bootstrap 95% intervals for AUROC), sensitivity and specificity at its
threshold, the normalised utility, alerts per patient-day, lead time before onset; for
the model also calibration (reliability bins, Brier). Baselines' AUROC/AUPRC use their
underlying score (NEWS2 total, qSOFA points, SIRS criteria; the reference rule is 0/1).

"At equal sensitivity": for each baseline, the model's alerts per patient-day at the
baseline's patient-level sensitivity, two ways:

* ``test_curve``: the model threshold read off the test curve so the model's test
  sensitivity equals the baseline's (a point on the model's curve, like AUROC itself);
* ``validation_matched``: the version's stored operating point for that baseline (the
  threshold that reached the baseline's validation sensitivity plus the recipe's margin;
  computed here on validation for versions that stored none), applied unchanged to test
  (nothing chosen on test).

Calibration: every model row carries ``calibration`` (slope, intercept, ECE, Brier and
the base-rate Brier of the calibrated risks, ``backend.risk.calibration``) and
``calibration_raw`` (the same for the trees' raw risks).

``evaluate_model(..., test_frame=...)`` evaluates on other stays (another hospital's
PhysioNet-format export, ``icu model evaluate --data``) with the thresholds of the
version, and saves ``evaluation-<name>.json`` without touching the version's own
evaluation.

Everything, including the curves (down-sampled for plotting), is saved as
``evaluation.json`` next to the model. Definitions: ``backend.risk.metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.risk import calibration as calib
from backend.risk import data as data_mod
from backend.risk import drift, registry
from backend.risk.baselines import BASELINES, baseline_scores
from backend.risk.features import LAB_FEATURES, hourly_features, without_labs
from backend.risk.metrics import (
    LEAD_WINDOW_HOURS,
    alerts_per_patient_day,
    auprc,
    auroc,
    brier,
    lead_times,
    patient_scores,
    patient_sensitivity_specificity,
    pr_points,
    reliability,
    roc_points,
    sensitivity_specificity,
    threshold_for_patient_sensitivity,
)
from backend.risk.model import RiskModel
from backend.risk.split import Split
from backend.risk.stages import StageClock
from backend.risk.utility import Cohort, normalized_utility, utility_curve
from backend.settings import Settings

log = logging.getLogger(__name__)

MODEL = "Model (GBT)"
MODEL_MONITOR = "Model, monitor only (no labs)"
STAGES = ("load model and data", "features and risks", "baselines", "metrics", "bootstrap",
          "save")


@dataclass(frozen=True)
class Method:
    name: str
    kind: str  # "model" | "baseline"
    score: np.ndarray  # continuous score per row (risk, or baseline total)
    pred: np.ndarray  # 0/1 per row at the method's threshold
    threshold: float
    raw: np.ndarray | None = None  # model: the trees' risk before calibration


def _weighted_auroc(codes: np.ndarray, n_codes: int, y: np.ndarray, w: np.ndarray) -> float:
    """AUROC (Mann-Whitney, ties count one half) with case weights; ``codes`` = score ranks."""
    wp = np.bincount(codes, weights=w * y, minlength=n_codes)
    wn = np.bincount(codes, weights=w * (1 - y), minlength=n_codes)
    below = np.cumsum(wn) - wn
    den = wp.sum() * wn.sum()
    return float(np.sum(wp * (below + 0.5 * wn)) / den) if den else float("nan")


def bootstrap_auroc(cohort: Cohort, scores: dict[str, np.ndarray], n: int,
                    seed: int) -> dict[str, dict[str, np.ndarray]]:
    """AUROC of each score on ``n`` patient resamples (the same resamples for every score,
    so differences between methods are paired). Returns level -> method -> values."""
    rng = np.random.default_rng(seed)
    n_stays = len(cohort.stay_ids)
    y_rows = cohort.labels.astype(float)
    prepared = {}
    for name, s in scores.items():
        _, codes = np.unique(s, return_inverse=True)
        y_p, s_p = patient_scores(cohort, s)
        _, codes_p = np.unique(s_p, return_inverse=True)
        prepared[name] = (codes, codes.max() + 1, codes_p, codes_p.max() + 1, y_p.astype(float))
    out: dict[str, dict[str, list[float]]] = {"hourly": {k: [] for k in scores},
                                              "patient": {k: [] for k in scores}}
    for _ in range(n):
        counts = np.bincount(rng.integers(0, n_stays, n_stays), minlength=n_stays).astype(float)
        w_rows = counts[cohort.stay]
        for name, (codes, k, codes_p, k_p, y_p) in prepared.items():
            out["hourly"][name].append(_weighted_auroc(codes, k, y_rows, w_rows))
            out["patient"][name].append(_weighted_auroc(codes_p, k_p, y_p, counts))
    return {lvl: {k: np.asarray(v) for k, v in d.items()} for lvl, d in out.items()}


def _ci(values: np.ndarray) -> list[float]:
    v = values[~np.isnan(values)]
    return [float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))] if len(v) else []


def method_row(cohort: Cohort, m: Method) -> dict:
    sens_h, spec_h = sensitivity_specificity(cohort.labels, m.pred)
    sens_p, spec_p = patient_sensitivity_specificity(cohort, m.pred)
    y_p, s_p = patient_scores(cohort, m.score)
    leads = lead_times(cohort, m.pred)
    detected = leads[~np.isnan(leads)]
    return {
        "method": m.name,
        "kind": m.kind,
        "threshold": float(m.threshold),
        "auroc_hourly": auroc(cohort.labels, m.score),
        "auprc_hourly": auprc(cohort.labels, m.score),
        "auroc_patient": auroc(y_p, s_p),
        "auprc_patient": auprc(y_p, s_p),
        "sensitivity_hourly": sens_h,
        "specificity_hourly": spec_h,
        "sensitivity_patient": sens_p,
        "specificity_patient": spec_p,
        "utility": normalized_utility(cohort, m.pred),
        "alerts_per_patient_day": alerts_per_patient_day(cohort, m.pred),
        "median_lead_hours": float(np.median(detected)) if len(detected) else float("nan"),
        "brier": brier(cohort.labels, m.score) if m.kind == "model" else None,
        **({"calibration": calib.calibration_report(cohort.labels, m.score),
            "calibration_raw": calib.calibration_report(cohort.labels, m.raw)}
           if m.kind == "model" and m.raw is not None else {}),
    }


def burden_curve(cohort: Cohort, risk: np.ndarray, points: int = 120) -> dict[str, list]:
    """Patient-level sensitivity vs alerts per patient-day over the model's thresholds."""
    y_p, s_p = patient_scores(cohort, risk)
    ths = np.unique(np.concatenate([np.quantile(risk, np.linspace(0, 1, points)),
                                    np.quantile(s_p[y_p == 1], np.linspace(0, 1, points))]))
    sens, burden = [], []
    for th in ths:
        pred = risk >= th
        sens.append(float(np.mean(s_p[y_p == 1] >= th)) if (y_p == 1).any() else float("nan"))
        burden.append(alerts_per_patient_day(cohort, pred))
    return {"threshold": ths.tolist(), "sensitivity_patient": sens,
            "alerts_per_patient_day": burden}


def _at_threshold(cohort: Cohort, risk: np.ndarray, th: float) -> dict:
    if not np.isfinite(th):
        return {"model_threshold": None, "model_sensitivity_patient": None,
                "model_alerts_per_patient_day": None}
    pred = risk >= th
    return {"model_threshold": th,
            "model_sensitivity_patient": patient_sensitivity_specificity(cohort, pred)[0],
            "model_specificity_patient": patient_sensitivity_specificity(cohort, pred)[1],
            "model_alerts_per_patient_day": alerts_per_patient_day(cohort, pred)}


def equal_sensitivity(test: Cohort, test_risk: np.ndarray, base_row: dict,
                      val: Cohort | None, val_risk: np.ndarray | None,
                      val_base_pred: np.ndarray | None, stored: dict | None = None,
                      monitor_only: bool = False) -> dict:
    """The model at the baseline's sensitivity (see the module docstring); ``stored``:
    the version's operating point for this baseline, if it has one."""
    target = base_row["sensitivity_patient"]
    out = {"baseline_sensitivity_patient": target,
           "baseline_alerts_per_patient_day": base_row["alerts_per_patient_day"]}
    th = threshold_for_patient_sensitivity(test, test_risk, target)
    out["test_curve"] = _at_threshold(test, test_risk, th)
    out["model_alerts_per_patient_day"] = out["test_curve"]["model_alerts_per_patient_day"]
    if stored is not None:
        th_v = stored["threshold_monitor_only" if monitor_only else "threshold"]
        val_target = stored["target_sensitivity_monitor_only" if monitor_only
                            else "target_sensitivity"]
        out["validation_matched"] = {
            "validation_baseline_sensitivity_patient": stored[
                "baseline_validation_sensitivity"],
            "validation_target_sensitivity": val_target, **_at_threshold(test, test_risk, th_v)}
    elif val is not None and val_risk is not None and val_base_pred is not None:
        val_target = patient_sensitivity_specificity(val, val_base_pred)[0]
        th_v = threshold_for_patient_sensitivity(val, val_risk, val_target)
        out["validation_matched"] = {"validation_baseline_sensitivity_patient": val_target,
                                     **_at_threshold(test, test_risk, th_v)}
    vm = out.get("validation_matched")
    if vm and vm.get("model_sensitivity_patient") is not None:
        # the question a ward asks: as many septic stays found, with fewer alerts?
        vm["beats_baseline"] = bool(
            vm["model_sensitivity_patient"] >= target
            and vm["model_alerts_per_patient_day"] < base_row["alerts_per_patient_day"])
    return out


def _frame_for(frame: pd.DataFrame, ids: tuple[str, ...]) -> pd.DataFrame:
    return frame[frame["patient_id"].isin(ids)].reset_index(drop=True)


def evaluate_model(settings: Settings, version: str | None = None, *, progress: bool = True,
             n_bootstrap: int = 200, seed: int = 0, test_frame: pd.DataFrame | None = None,
             name: str | None = None) -> dict:
    """Evaluate ``version`` (default: the active one) on its test patients, or on
    ``test_frame`` (every stay of another site, saved as ``evaluation-<name>.json``);
    save and return the evaluation document."""
    clock = StageClock(STAGES, "evaluate", progress=progress)

    clock.begin(STAGES[0])
    version = version or registry.active_version(settings)
    if version is None:
        raise registry.RegistryError("no active model; pass a version or train one")
    model: RiskModel = registry.load(settings, version)
    stored_points = model.metadata.get("operating_points")
    external = test_frame is not None
    val_frame: pd.DataFrame | None = None
    if external:
        assert test_frame is not None
        test_frame = test_frame.reset_index(drop=True)
        population = f"every stay of {name or 'the given data'}"
    else:
        split = Split.from_dict(registry.read_json_file(
            registry.version_dir(settings, version) / "split.json"))
        dataset = data_mod.load(settings)
        if dataset.source_sha256 != model.metadata.get("source_sha256"):
            log.warning("the data archive differs from the one version %s was trained on",
                        version)
        test_frame = _frame_for(dataset.frame, split.test)
        if test_frame["patient_id"].nunique() != len(split.test):
            raise registry.RegistryError("some test patients of the split are not in the data")
        if stored_points is None:  # older versions: match the baselines on validation here
            val_frame = _frame_for(dataset.frame, split.validation)
        population = "test patients, every hour"
    test = Cohort.from_rows(test_frame["patient_id"].to_numpy(), test_frame["label"].to_numpy())
    val = None if val_frame is None else Cohort.from_rows(val_frame["patient_id"].to_numpy(),
                                                          val_frame["label"].to_numpy())
    clock.end(STAGES[0])

    clock.begin(STAGES[1])
    x_test = hourly_features(test_frame)
    x_monitor = hourly_features(without_labs(test_frame))
    raw, raw_monitor = model.raw_risk(x_test), model.raw_risk(x_monitor)
    risk = model.calibration_for(False).apply(raw)
    risk_monitor = model.calibration_for(True).apply(raw_monitor)
    val_risk = None if val_frame is None else model.predict_features(hourly_features(val_frame))
    clock.end(STAGES[1])

    clock.begin(STAGES[2])
    base_test = baseline_scores(test_frame, settings)
    base_val = None if val_frame is None else baseline_scores(val_frame, settings)
    clock.end(STAGES[2])

    clock.begin(STAGES[3])
    th = model.threshold
    th_monitor = model.threshold_monitor_only if model.threshold_monitor_only is not None else th
    methods = [
        Method(MODEL, "model", risk, risk >= th, th, raw),
        Method(MODEL_MONITOR, "model", risk_monitor, model.alarm(risk_monitor, monitor_only=True),
               th_monitor, raw_monitor),
    ] + [
        Method(b.name, "baseline", base_test[b.score].to_numpy(dtype=float),
               b.alerts(base_test), b.threshold)
        for b in BASELINES
    ]
    table = [method_row(test, m) for m in methods]
    rows = {r["method"]: r for r in table}
    for b in BASELINES:
        stored = (stored_points or {}).get(b.name)
        row = rows[b.name]
        row["equal_sensitivity"] = equal_sensitivity(
            test, risk, row, val, val_risk,
            None if base_val is None else b.alerts(base_val), stored)
        row["equal_sensitivity_monitor_only"] = equal_sensitivity(
            test, risk_monitor, row, None, None, None, stored, monitor_only=True)
        # the model at its own alarm threshold against this baseline
        row["model_at_threshold"] = {
            key: {"model_sensitivity_patient": rows[key]["sensitivity_patient"],
                  "model_alerts_per_patient_day": rows[key]["alerts_per_patient_day"],
                  "beats_baseline": bool(
                      rows[key]["sensitivity_patient"] >= row["sensitivity_patient"]
                      and rows[key]["alerts_per_patient_day"] < row["alerts_per_patient_day"])}
            for key in (MODEL, MODEL_MONITOR)}
    curves: dict[str, dict] = {}
    for m in methods:
        y_p, s_p = patient_scores(test, m.score)
        curves[m.name] = {
            "roc_hourly": roc_points(test.labels, m.score),
            "pr_hourly": pr_points(test.labels, m.score),
            "roc_patient": roc_points(y_p, s_p),
            "pr_patient": pr_points(y_p, s_p),
            "lead_times_hours": [None if np.isnan(v) else float(v)
                                 for v in lead_times(test, m.pred)],
        }
    for mname, r, r_raw in ((MODEL, risk, raw), (MODEL_MONITOR, risk_monitor, raw_monitor)):
        ths = np.unique(np.quantile(r, np.linspace(0, 1, 200)))
        curves[mname]["reliability_quantile_bins"] = reliability(test.labels, r, 10, "quantile")
        curves[mname]["reliability_uniform_bins"] = reliability(test.labels, r, 10, "uniform")
        curves[mname]["reliability_quantile_bins_raw"] = reliability(test.labels, r_raw, 10,
                                                                     "quantile")
        curves[mname]["utility_vs_threshold"] = {
            "threshold": ths.tolist(), "utility": utility_curve(test, r, ths).tolist()}
        curves[mname]["alert_burden"] = burden_curve(test, r)
    clock.end(STAGES[3])

    clock.begin(STAGES[4])
    scores = {m.name: m.score for m in methods}
    boot = bootstrap_auroc(test, scores, n_bootstrap, seed) if n_bootstrap else None
    if boot is not None:
        for r in table:
            mname = r["method"]
            r["auroc_hourly_ci95"] = _ci(boot["hourly"][mname])
            r["auroc_patient_ci95"] = _ci(boot["patient"][mname])
            if mname != MODEL:
                for lvl in ("hourly", "patient"):
                    diff = boot[lvl][MODEL] - boot[lvl][mname]
                    r[f"model_minus_this_auroc_{lvl}_ci95"] = _ci(diff)
    clock.end(STAGES[4])

    clock.begin(STAGES[5])
    septic = int(test.stay_septic.sum())
    doc = {
        "version": version,
        "evaluated": registry.now_iso(),
        "split": f"external: {name}" if external else "test",
        "n_patients": len(test.stay_ids),
        "n_septic_patients": septic,
        "n_patient_hours": test.n_rows,
        "n_positive_hours": int(test.labels.sum()),
        "patient_days": test.n_rows / 24.0,
        "threshold": th,
        "threshold_monitor_only": th_monitor,
        "calibration": model.calibration.to_dict(),
        "calibration_monitor_only": model.calibration_for(True).to_dict(),
        "lead_window_hours": LEAD_WINDOW_HOURS,
        "n_bootstrap": n_bootstrap,
        "features": list(model.features),
        "monitor_only_hidden_features": [f for f in model.features if f in LAB_FEATURES],
        "table": table,
        "curves": curves,
        # what live monitoring compares the stream's scores with (backend/risk/drift.py):
        # the hourly risks of these test patients, with labs hidden as on the stream
        "score_reference": {
            "population": population,
            "monitor_only": drift.reference(risk_monitor).to_dict(),
            "with_labs": drift.reference(risk).to_dict(),
        },
        "definitions": {
            "alert": "start of a run of positive hours",
            "patient_sensitivity": f"septic stay with an alert in the {LEAD_WINDOW_HOURS} h "
                                   "before and including t_sepsis (first label + 6 h)",
            "patient_specificity": "non-septic stay without any alert",
            "lead_time": "t_sepsis - first alert hour in that window",
            "baseline_scores": "NEWS2 without consciousness (assumed Alert), qSOFA without "
                               "mentation, SIRS without bands; see backend/risk/baselines.py",
            "calibration": "slope and intercept (calibration-in-the-large) of a logistic "
                           "recalibration on the hours, ECE over 10 equal-count bins, Brier "
                           "against always predicting the prevalence; "
                           "backend/risk/calibration.py",
        },
    }
    doc["runtime_seconds"] = clock.runtime_seconds()
    directory = registry.version_dir(settings, version)
    if external:
        registry.write_json(directory / f"evaluation-{safe_name(name or 'external')}.json",
                            doc)
    else:
        registry.write_json(directory / "evaluation.json", doc)
        summary = {k: v for k, v in rows[MODEL].items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        summary.update({k: v for k, v in rows[MODEL]["calibration"].items()
                        if k != "brier"})
        meta = registry.read_metadata(settings, version)
        metrics = {**meta.get("metrics", {}), "test": summary}
        registry.update_metadata(settings, version, metrics=metrics, evaluated=doc["evaluated"])
    clock.end(STAGES[5])
    clock.close()
    return registry.jsonable(doc)


def safe_name(name: str) -> str:
    """A file-name-safe form of a data set's name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return cleaned[:60] or "external"


# --- the printed comparison table --------------------------------------------------------

def _f(v: object, fmt: str = "{:.3f}") -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else fmt.format(v)


def _ci_text(r: dict, key: str) -> str:
    ci = r.get(f"{key}_ci95")
    return f"{_f(r[key])} ({_f(ci[0], '{:.2f}')}-{_f(ci[1], '{:.2f}')})" if ci else _f(r[key])


def _equal_text(r: dict) -> str:
    eq = r.get("equal_sensitivity")
    if not eq:
        return ""
    vm = eq.get("validation_matched", {})
    verdict = {True: ", beats", False: ", does not beat"}.get(vm.get("beats_baseline"), "")
    return (f"{_f(eq['test_curve']['model_alerts_per_patient_day'], '{:.2f}')} / "
            f"{_f(vm.get('model_alerts_per_patient_day'), '{:.2f}')} "
            f"({_f(vm.get('model_sensitivity_patient'), '{:.2f}')}{verdict})")


def _cal(r: dict, key: str, fmt: str) -> str:
    return _f((r.get("calibration") or {}).get(key), fmt)


COLUMNS: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("Method", lambda r: r["method"]),
    ("AUROC hourly (95% CI)", lambda r: _ci_text(r, "auroc_hourly")),
    ("AUPRC hourly", lambda r: _f(r["auprc_hourly"])),
    ("AUROC patient (95% CI)", lambda r: _ci_text(r, "auroc_patient")),
    ("Sens hourly", lambda r: _f(r["sensitivity_hourly"])),
    ("Spec hourly", lambda r: _f(r["specificity_hourly"])),
    ("Sens patient", lambda r: _f(r["sensitivity_patient"])),
    ("Spec patient", lambda r: _f(r["specificity_patient"])),
    ("Utility", lambda r: _f(r["utility"])),
    ("Alerts/patient-day", lambda r: _f(r["alerts_per_patient_day"], "{:.2f}")),
    ("Median lead h", lambda r: _f(r["median_lead_hours"], "{:.1f}")),
    ("Brier", lambda r: _f(r.get("brier"), "{:.4f}")),
    ("Base-rate Brier", lambda r: _cal(r, "brier_base_rate", "{:.4f}")),
    ("Cal. slope", lambda r: _cal(r, "calibration_slope", "{:.2f}")),
    ("Cal. intercept", lambda r: _cal(r, "calibration_intercept", "{:+.2f}")),
    ("ECE", lambda r: _cal(r, "ece", "{:.4f}")),
    ("Model alerts/pt-day at this sens: test curve / stored operating point (its sens)",
     _equal_text),
)


def markdown_table(doc: dict) -> str:
    header = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, sep]
    for r in doc["table"]:
        lines.append("| " + " | ".join(fn(r) for _, fn in COLUMNS) + " |")
    return "\n".join(lines)

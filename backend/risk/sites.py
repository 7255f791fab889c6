"""Site-robust evaluation: does a training recipe hold on stays unlike its training stays?

A recipe (``TrainConfig``: features, trees, calibration, threshold rule) is trained on
each split of ``backend.risk.split.SCHEMES`` and judged on that split's held-out stays,
with everything (calibration, thresholds, operating points) chosen on the split's own
validation stays:

* ``random``: the registered version itself (its trees and its test patients);
* ``medical_to_surgical`` / ``surgical_to_medical``: the recipe retrained on one ICU type
  of hospital A and tested on every stay of the other, whose case mix, sepsis rate
  (10.7 % and 4.0 % of stays) and charting (temperature in 27 % and 50 % of hours) differ,
  as another hospital's would.

Set A has no calendar time, and its stay ids carry none either (docs/model.md: case mix
does not trend with the id), so a temporal split is not possible.

For each split and for the model with and without labs: AUROC, utility, patient
sensitivity and alerts per patient-day at the threshold; every calibration method of
``backend.risk.calibration`` fitted on validation and judged on the held-out stays
(slope, intercept, ECE, Brier against the base rate); and for every baseline, whether
the model at its main threshold and at the operating point matched to that baseline on
validation detects at least as many septic stays with fewer alerts per patient-day.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from backend.risk import calibration as calib
from backend.risk import data as data_mod
from backend.risk import registry
from backend.risk.baselines import BASELINES, baseline_scores
from backend.risk.features import hourly_features, without_labs
from backend.risk.metrics import (
    alerts_per_patient_day,
    auprc,
    auroc,
    median_lead_time,
    patient_scores,
    patient_sensitivity_specificity,
    reliability,
)
from backend.risk.model import RiskModel
from backend.risk.split import SCHEMES, SITE_SCHEMES, Split, site_split
from backend.risk.train import (
    TrainConfig,
    export_checked,
    fit_gbt,
    operating_points,
    rule_threshold,
    septic_by_patient,
    spark_session,
    training_rows,
)
from backend.risk.utility import Cohort, normalized_utility
from backend.settings import Settings

log = logging.getLogger(__name__)

SCHEME_LABELS = {
    "random": "Random patients (hospital A, 60/20/20)",
    "medical_to_surgical": "Medical ICU → surgical ICU",
    "surgical_to_medical": "Surgical ICU → medical ICU",
}


@dataclass
class Prepared:
    """Per-row inputs of every split, computed once (features and baselines are per
    stay, so a split's rows are a selection of these)."""

    frame: pd.DataFrame
    septic: dict[str, bool]
    units: dict[str, str | None]
    x_labs: pd.DataFrame  # hourly_features(frame)
    x_monitor: pd.DataFrame  # hourly_features(without_labs(frame))
    baselines: pd.DataFrame  # baseline_scores(frame)

    def rows(self, ids: tuple[str, ...]) -> np.ndarray:
        return self.frame["patient_id"].isin(set(ids)).to_numpy()

    def cohort(self, mask: np.ndarray) -> Cohort:
        """The stays and hourly labels of the rows ``mask`` selects."""
        f = self.frame[mask]
        return Cohort.from_rows(f["patient_id"].to_numpy(), f["label"].to_numpy())


def prepare(settings: Settings, frame: pd.DataFrame) -> Prepared:
    frame = frame.reset_index(drop=True)
    return Prepared(frame, septic_by_patient(frame), data_mod.stay_units(frame),
                    hourly_features(frame), hourly_features(without_labs(frame)),
                    baseline_scores(frame, settings))


@dataclass
class SplitRisks:
    """A model's raw (uncalibrated) risks on one split's validation and test stays."""

    scheme: str
    split: Split
    val: Cohort
    test: Cohort
    raw_val: np.ndarray
    raw_val_monitor: np.ndarray
    raw_test: np.ndarray
    raw_test_monitor: np.ndarray
    val_rows: np.ndarray  # boolean masks into Prepared.frame
    test_rows: np.ndarray
    retrained: bool
    fit_seconds: float | None = None
    n_training_rows: int | None = None

    def save(self, path: Path) -> None:
        np.savez_compressed(path, raw_val=self.raw_val, raw_val_monitor=self.raw_val_monitor,
                            raw_test=self.raw_test, raw_test_monitor=self.raw_test_monitor)


def risks_of(prepared: Prepared, model: RiskModel, scheme: str, split: Split, *,
             retrained: bool) -> SplitRisks:
    val_rows, test_rows = prepared.rows(split.validation), prepared.rows(split.test)
    return SplitRisks(
        scheme, split, prepared.cohort(val_rows), prepared.cohort(test_rows),
        model.raw_risk(prepared.x_labs[val_rows]), model.raw_risk(prepared.x_monitor[val_rows]),
        model.raw_risk(prepared.x_labs[test_rows]),
        model.raw_risk(prepared.x_monitor[test_rows]), val_rows, test_rows, retrained)


def fit_split(prepared: Prepared, config: TrainConfig, scheme: str, spark: Any,
              workdir: Path, split: Split | None = None) -> tuple[RiskModel, SplitRisks]:
    """Train ``config`` on ``scheme``'s training stays (Spark) and score its other stays
    (``split`` overrides the scheme's split, for studies)."""
    if split is None:
        split = site_split(scheme, prepared.septic, prepared.units, seed=config.seed,
                           fractions=config.fractions)
    train_mask = prepared.rows(split.train)
    train_frame = prepared.frame[train_mask].reset_index(drop=True)
    rows = training_rows(train_frame, config,
                         (prepared.x_labs[train_mask].reset_index(drop=True),
                          prepared.x_monitor[train_mask].reset_index(drop=True)))
    t0 = time.monotonic()
    gbt_model, assembler, n_rows = fit_gbt(spark, rows, config)
    fit_seconds = time.monotonic() - t0
    directory = workdir / scheme
    directory.mkdir(parents=True, exist_ok=True)
    val_mask = prepared.rows(split.validation)
    model, _ = export_checked(gbt_model, assembler, spark, directory, scheme, config.features,
                              prepared.x_labs[val_mask].reset_index(drop=True), config.seed)
    risks = risks_of(prepared, model, scheme, split, retrained=True)
    risks.fit_seconds, risks.n_training_rows = round(fit_seconds, 1), n_rows
    return model, risks


# --- assessment (no training: calibration, thresholds and comparisons) -----------------

def at_threshold(cohort: Cohort, risk: np.ndarray, threshold: float) -> dict[str, float]:
    pred = risk >= threshold
    sens, spec = patient_sensitivity_specificity(cohort, pred)
    return {"threshold": float(threshold), "sensitivity_patient": sens,
            "specificity_patient": spec, "utility": normalized_utility(cohort, pred),
            "alerts_per_patient_day": alerts_per_patient_day(cohort, pred),
            "median_lead_hours": median_lead_time(cohort, pred)}


def beats(model: dict, baseline: dict) -> bool:
    """At least the baseline's patient sensitivity with fewer alerts per patient-day."""
    return (model["sensitivity_patient"] >= baseline["sensitivity_patient"]
            and model["alerts_per_patient_day"] < baseline["alerts_per_patient_day"])


def assess_model(config: TrainConfig, val: Cohort, test: Cohort, raw_val: np.ndarray,
                 raw_test: np.ndarray, base_val: pd.DataFrame, base_test: pd.DataFrame,
                 baseline_rows: list[dict]) -> dict:
    """One model (with labs, or monitor only) on one split: every calibration method
    fitted on validation and judged on test; the configured one in detail."""
    methods: dict[str, dict] = {}
    used: dict[str, Any] = {}
    for method in calib.METHODS:
        cal = calib.fit(method, val.labels, raw_val)
        risk_val, risk_test = cal.apply(raw_val), cal.apply(raw_test)
        th = rule_threshold(config, val, risk_val)
        methods[method] = {**calib.calibration_report(test.labels, risk_test),
                           "auroc_hourly": auroc(test.labels, risk_test),
                           **{f"at_threshold_{k}": v
                              for k, v in at_threshold(test, risk_test, th).items()}}
        if method == config.calibration:
            used = {"cal": cal, "risk_val": risk_val, "risk_test": risk_test, "threshold": th}
    risk_test = used["risk_test"]
    y_p, s_p = patient_scores(test, risk_test)
    main = at_threshold(test, risk_test, used["threshold"])
    points = operating_points(config, val, used["risk_val"], base_val)
    comparisons = []
    for b, row in zip(BASELINES, baseline_rows, strict=True):
        at_main = {k: main[k] for k in ("sensitivity_patient", "alerts_per_patient_day")}
        point = points[b.name]
        matched = at_threshold(test, risk_test, point["threshold"])
        comparisons.append({
            "baseline": b.name,
            "baseline_sensitivity_patient": row["sensitivity_patient"],
            "baseline_alerts_per_patient_day": row["alerts_per_patient_day"],
            "main": {**at_main, "beats": beats(at_main, row)},
            "matched": {"validation_target": point["target_sensitivity"],
                        "threshold": point["threshold"],
                        "sensitivity_patient": matched["sensitivity_patient"],
                        "alerts_per_patient_day": matched["alerts_per_patient_day"],
                        "beats": beats(matched, row)},
        })
    return {
        "calibration_method": config.calibration,
        "auroc_hourly": auroc(test.labels, risk_test),
        "auprc_hourly": auprc(test.labels, risk_test),
        "auroc_patient": auroc(y_p, s_p),
        **main,
        "calibration": methods[config.calibration],
        "calibration_methods": methods,
        "reliability": reliability(test.labels, risk_test, 10, "quantile"),
        "baselines": comparisons,
    }


def assess(prepared: Prepared, config: TrainConfig, risks: SplitRisks) -> dict:
    """The per-split entry of the site evaluation."""
    base_val = prepared.baselines[risks.val_rows].reset_index(drop=True)
    base_test = prepared.baselines[risks.test_rows].reset_index(drop=True)
    test = risks.test
    baseline_rows = []
    for b in BASELINES:
        pred = b.alerts(base_test)
        sens, spec = patient_sensitivity_specificity(test, pred)
        baseline_rows.append({"method": b.name, "sensitivity_patient": sens,
                              "specificity_patient": spec,
                              "alerts_per_patient_day": alerts_per_patient_day(test, pred),
                              "utility": normalized_utility(test, pred)})
    split = risks.split
    return {
        "scheme": risks.scheme,
        "label": SCHEME_LABELS.get(risks.scheme, risks.scheme),
        "retrained": risks.retrained,
        "fit_seconds": risks.fit_seconds,
        "n_training_rows": risks.n_training_rows,
        "n_patients": {p: len(split.part(p)) for p in ("train", "validation", "test")},
        "n_septic_patients": {p: int(sum(prepared.septic[i] for i in split.part(p)))
                              for p in ("train", "validation", "test")},
        "test_patient_hours": test.n_rows,
        "test_positive_hours": int(test.labels.sum()),
        "test_patient_days": test.n_rows / 24.0,
        "model": assess_model(config, risks.val, test, risks.raw_val, risks.raw_test,
                              base_val, base_test, baseline_rows),
        "monitor_only": assess_model(config, risks.val, test, risks.raw_val_monitor,
                                     risks.raw_test_monitor, base_val, base_test,
                                     baseline_rows),
        "baselines": baseline_rows,
    }


def targets(entries: list[dict]) -> dict:
    """The published targets, checked on every held-out split (model with labs)."""
    out = {}
    for e in entries:
        m = e["model"]
        c = m["calibration"]
        out[e["scheme"]] = {
            "utility_at_least_0.35": m["utility"] >= 0.35,
            "brier_below_base_rate": c["brier"] < c["brier_base_rate"],
            "calibration_slope_0.8_to_1.2": 0.8 <= c["calibration_slope"] <= 1.2,
        }
    random = next((e for e in entries if e["scheme"] == "random"), None)
    if random is not None:
        out["random"]["auroc_hourly_at_least_0.799"] = random["model"]["auroc_hourly"] >= 0.799
    return out


def site_evaluation(settings: Settings, version: str | None = None, *,
                    schemes: tuple[str, ...] = SCHEMES, progress: bool = True,
                    keep_risks: Path | None = None) -> dict:
    """Run the recipe of ``version`` (default: the active one) on every split and save
    ``sites.json`` next to it. The split the version was trained on uses the version
    itself; the others retrain the same recipe (same seed)."""
    t0 = time.monotonic()
    version = version or registry.active_version(settings)
    if version is None:
        raise registry.RegistryError("no active model; pass a version or train one")
    model = registry.load(settings, version)
    meta = model.metadata
    config = TrainConfig.from_params(meta.get("params", {}))
    dataset = data_mod.load(settings, max_patients=config.max_patients, seed=config.seed)
    bar = tqdm(total=len(schemes) + 1, desc="prepare", unit="split", disable=not progress)
    prepared = prepare(settings, dataset.frame)
    bar.update(1)
    entries = run_schemes(settings, prepared, config, schemes, model, bar=bar,
                          keep_risks=keep_risks)
    bar.close()
    doc = {
        "version": version,
        "evaluated": registry.now_iso(),
        "recipe": meta.get("params", {}),
        "features": list(model.features),
        "schemes": entries,
        "targets": targets(entries),
        "temporal_split": "not possible: set A has no calendar time and its stay ids do "
                          "not follow admission order (docs/model.md)",
        "runtime_seconds": round(time.monotonic() - t0, 1),
    }
    registry.write_json(registry.version_dir(settings, version) / "sites.json", doc)
    return registry.jsonable(doc)


def run_schemes(settings: Settings, prepared: Prepared, config: TrainConfig,
                schemes: tuple[str, ...], model: RiskModel | None = None, *,
                bar: tqdm | None = None, keep_risks: Path | None = None,
                on_fit: Callable[[str, SplitRisks], None] | None = None,
                splits: dict[str, Split] | None = None) -> list[dict]:
    """Assess ``config`` on ``schemes``. The scheme ``model`` was trained on (``config.split``)
    uses ``model`` itself when given; the others are retrained with the same recipe.
    ``splits``: extra named splits (studies)."""
    splits = splits or {}
    entries = []
    spark = None
    with tempfile.TemporaryDirectory(prefix="icu-sites-") as tmp:
        for scheme in schemes:
            if bar is not None:
                bar.set_description(scheme)
            if scheme == config.split and model is not None:
                split = Split.from_dict(registry.read_json_file(
                    registry.version_dir(settings, model.version) / "split.json"))
                risks = risks_of(prepared, model, scheme, split, retrained=False)
            else:
                if scheme not in SCHEMES and scheme not in splits:
                    raise ValueError(f"unknown split scheme {scheme!r}")
                spark = spark or spark_session(settings, "icu-risk-sites")
                _, risks = fit_split(prepared, config, scheme, spark, Path(tmp),
                                     splits.get(scheme))
            if keep_risks is not None:
                keep_risks.mkdir(parents=True, exist_ok=True)
                risks.save(keep_risks / f"{scheme}.npz")
            if on_fit is not None:
                on_fit(scheme, risks)
            entries.append(assess(prepared, config, risks))
            if bar is not None:
                bar.update(1)
    return entries


def summary_rows(doc: dict) -> list[str]:
    """The site evaluation as printable lines (one per split and model)."""
    lines = []
    for e in doc["schemes"]:
        n = e["n_patients"]["test"]
        lines.append(f"{e['label']}: {n} held-out stays "
                     f"({e['n_septic_patients']['test']} septic)"
                     + ("" if e["retrained"] else ", the version itself"))
        for key, name in (("model", "with labs"), ("monitor_only", "monitor only")):
            m = e[key]
            c = m["calibration"]
            lines.append(
                f"  {name:<12} AUROC {m['auroc_hourly']:.3f} (patient {m['auroc_patient']:.3f}),"
                f" utility {m['utility']:.3f}, sensitivity {m['sensitivity_patient']:.2f} at "
                f"{m['alerts_per_patient_day']:.2f} alerts/patient-day; Brier {c['brier']:.4f} "
                f"(base rate {c['brier_base_rate']:.4f}), slope {c['calibration_slope']:.2f}, "
                f"intercept {c['calibration_intercept']:+.2f}, ECE {c['ece']:.4f}")
            for b in m["baselines"]:
                lines.append(
                    f"    vs {b['baseline']:<22} {b['baseline_sensitivity_patient']:.2f} at "
                    f"{b['baseline_alerts_per_patient_day']:.2f}/day; model at threshold "
                    f"{b['main']['sensitivity_patient']:.2f} at "
                    f"{b['main']['alerts_per_patient_day']:.2f} "
                    f"{'beats' if b['main']['beats'] else 'does not beat'}; matched "
                    f"{b['matched']['sensitivity_patient']:.2f} at "
                    f"{b['matched']['alerts_per_patient_day']:.2f} "
                    f"{'beats' if b['matched']['beats'] else 'does not beat'}")
    for scheme, checks in doc.get("targets", {}).items():
        lines.append(f"targets {scheme}: " + ", ".join(
            f"{k} {'yes' if v else 'NO'}" for k, v in checks.items()))
    return lines


__all__ = ["SCHEME_LABELS", "SITE_SCHEMES", "Prepared", "SplitRisks", "assess", "prepare",
           "run_schemes", "site_evaluation", "summary_rows"]

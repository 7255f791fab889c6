"""Local recalibration: fit a version's calibration to a new hospital's first labelled
stays, keep its trees, and register the result as a new version.

A hospital that starts with a model trained elsewhere gets its ranking (the trees) but
not its probabilities: with another case mix and sepsis rate, "risk 0.11" can mean 0.07
there. After the first weeks, once outcomes are known for those stays, this fits a
logistic (Platt) recalibration of the trees' raw risks to them:

* ``platt``: intercept and slope, ``logit(p) = a + b * logit(raw)``;
* ``intercept``: intercept only, keeping the version's slope (a small sample with few
  septic stays estimates one number far better than two).

Alarms (``thresholds="keep"``, the default): every threshold is mapped through the old
and the new calibration, so exactly the same hours alert as before and only the
displayed risk changes; changing who is alerted is a separate clinical decision.
``thresholds="local"`` instead re-chooses the alarm thresholds and the baseline-matched
operating points on the local stays with the version's rule.

The stays are taken in id order (the order a hospital's export numbers its stays; the
"first weeks"), the first ``n_local`` for fitting; the rest, if any, are held out, and
the before/after calibration on both is stored in the new version's
``recalibration.json`` for the Models page. The trees, Spark model and split are copied
unchanged, so the new version scores exactly as the old one before calibration.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backend.risk import calibration as calib
from backend.risk import registry
from backend.risk.baselines import baseline_scores
from backend.risk.features import hourly_features, without_labs
from backend.risk.metrics import auroc, reliability
from backend.risk.model import RiskModel
from backend.risk.sites import at_threshold
from backend.risk.train import TrainConfig, operating_points, rule_threshold
from backend.risk.utility import Cohort
from backend.settings import Settings

MODES = ("platt", "intercept")
THRESHOLD_MODES = ("keep", "local")
MIN_SEPTIC_STAYS = 5  # fewer septic stays than this cannot recalibrate anything


class RecalibrationError(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    """The stays used for fitting and those held out (ids in order)."""

    local: tuple[str, ...]
    held_out: tuple[str, ...]


def choose_stays(ids: list[str], *, first: int | None = None,
                 fraction: float | None = None) -> Sample:
    """The first ``first`` stays (or ``fraction`` of them) in id order, and the rest."""
    ordered = sorted(set(ids))
    if first is None:
        if fraction is None or not 0 < fraction <= 1:
            raise RecalibrationError("give the number of stays (--first) or a fraction in "
                                     "(0, 1] (--fraction)")
        first = max(1, round(len(ordered) * fraction))
    if first < 1:
        raise RecalibrationError("--first must be at least 1")
    if first > len(ordered):
        raise RecalibrationError(f"only {len(ordered)} stays, fewer than --first {first}")
    return Sample(tuple(ordered[:first]), tuple(ordered[first:]))


def _part(frame: pd.DataFrame, ids: tuple[str, ...]) -> pd.DataFrame:
    return frame[frame["patient_id"].isin(set(ids))].reset_index(drop=True)


def _refit(old: calib.Calibration, mode: str, y: np.ndarray, raw: np.ndarray,
           fitted_on: dict) -> calib.Calibration:
    if mode == "platt":
        new = calib.fit_platt(y, raw, fitted_on=fitted_on)
        if new.b <= 0:
            raise RecalibrationError(f"the local fit has slope {new.b:.2f} <= 0: the model "
                                     "does not rank these stays; do not recalibrate")
        return new
    slope = old.b if old.method == "platt" else 1.0
    a, _ = calib.logistic_fit(np.zeros(len(y)), y, slope=False,
                              offset=slope * calib.logit(raw))
    return calib.Calibration("platt", a=a, b=slope, fitted_on=fitted_on)


def _map(threshold: float | None, old: calib.Calibration,
         new: calib.Calibration) -> float | None:
    """The threshold on the new scale that alerts on exactly the same raw risks."""
    if threshold is None or not math.isfinite(threshold):
        return threshold
    raw = old.inverse(threshold)
    if not math.isfinite(raw):
        return raw
    mapped = float(new.apply(np.array([raw]))[0])
    return mapped * (1 - 1e-12)  # hours exactly at the old threshold keep alerting


def _report(cohort: Cohort, before: np.ndarray, after: np.ndarray) -> dict:
    return {"n_stays": len(cohort.stay_ids), "n_septic_stays": int(cohort.stay_septic.sum()),
            "n_hours": cohort.n_rows, "n_positive_hours": int(cohort.labels.sum()),
            "auroc_hourly": auroc(cohort.labels, after),
            "before": {**calib.calibration_report(cohort.labels, before),
                       "reliability": reliability(cohort.labels, before, 10, "quantile")},
            "after": {**calib.calibration_report(cohort.labels, after),
                      "reliability": reliability(cohort.labels, after, 10, "quantile")}}


def _alarm_report(cohort: Cohort, before: np.ndarray, th_before: float, after: np.ndarray,
                  th_after: float) -> dict:
    return {"before": at_threshold(cohort, before, th_before),
            "after": at_threshold(cohort, after, th_after)}


def recalibrate(settings: Settings, frame: pd.DataFrame, *, source: str,
                version: str | None = None, first: int | None = None,
                fraction: float | None = None, mode: str = "platt",
                thresholds: str = "keep", activate: bool = False) -> dict:
    """Recalibrate ``version`` (default: the active one) on the first stays of ``frame``
    (a site's labelled stays, ``backend.risk.data`` columns); returns the new metadata."""
    if mode not in MODES:
        raise RecalibrationError(f"unknown mode {mode!r}; expected one of {MODES}")
    if thresholds not in THRESHOLD_MODES:
        raise RecalibrationError(f"unknown thresholds {thresholds!r}; "
                                 f"expected one of {THRESHOLD_MODES}")
    parent = version or registry.active_version(settings)
    if parent is None:
        raise registry.RegistryError("no active model; pass a version")
    model: RiskModel = registry.load(settings, parent)
    sample = choose_stays(frame["patient_id"].astype(str).tolist(), first=first,
                          fraction=fraction)
    local = _part(frame, sample.local)
    cohort = Cohort.from_rows(local["patient_id"].to_numpy(), local["label"].to_numpy())
    septic = int(cohort.stay_septic.sum())
    if septic < MIN_SEPTIC_STAYS:
        raise RecalibrationError(
            f"the {len(sample.local)} local stays hold {septic} septic stays; at least "
            f"{MIN_SEPTIC_STAYS} are needed: use more stays (--first/--fraction)")

    fitted_on = {"population": f"first {len(sample.local)} stays of {source}",
                 "n_stays": len(sample.local), "n_septic_stays": septic,
                 "n_hours": cohort.n_rows, "n_positive_hours": int(cohort.labels.sum()),
                 "mode": mode}
    raw = model.raw_risk(hourly_features(local))
    raw_mon = model.raw_risk(hourly_features(without_labs(local)))
    old, old_mon = model.calibration_for(False), model.calibration_for(True)
    new = _refit(old, mode, cohort.labels, raw, fitted_on)
    new_mon = _refit(old_mon, mode, cohort.labels, raw_mon, {**fitted_on, "labs": "hidden"})

    meta = dict(model.metadata)
    config = TrainConfig.from_params(meta.get("params", {}))
    th_old = model.threshold
    th_mon_old = model.threshold_monitor_only if model.threshold_monitor_only is not None \
        else th_old
    points = {k: dict(v) for k, v in (meta.get("operating_points") or {}).items()}
    if thresholds == "keep":
        th_new, th_mon_new = _map(th_old, old, new), _map(th_mon_old, old_mon, new_mon)
        for p in points.values():
            p["threshold"] = _map(p.get("threshold"), old, new)
            p["threshold_monitor_only"] = _map(p.get("threshold_monitor_only"), old_mon,
                                               new_mon)
        rule = meta.get("threshold_rule", "") + " (mapped through the local recalibration: " \
            "the same hours alert)"
    else:
        risk_local, risk_local_mon = new.apply(raw), new_mon.apply(raw_mon)
        th_new = rule_threshold(config, cohort, risk_local)
        th_mon_new = rule_threshold(config, cohort, risk_local_mon)
        base = baseline_scores(local, settings)
        pts = operating_points(config, cohort, risk_local, base)
        pts_mon = operating_points(config, cohort, risk_local_mon, base)
        points = {k: {**v, "threshold_monitor_only": pts_mon[k]["threshold"],
                      "target_sensitivity_monitor_only": pts_mon[k]["target_sensitivity"]}
                  for k, v in pts.items()}
        rule = f"re-chosen on the local stays: {config.threshold_rule}"

    reports = {"local": {**_report(cohort, old.apply(raw), new.apply(raw)),
                         "alarms": _alarm_report(cohort, old.apply(raw), th_old,
                                                 new.apply(raw), th_new)},
               "local_monitor_only": _report(cohort, old_mon.apply(raw_mon),
                                             new_mon.apply(raw_mon))}
    if sample.held_out:
        held = _part(frame, sample.held_out)
        hc = Cohort.from_rows(held["patient_id"].to_numpy(), held["label"].to_numpy())
        hr = model.raw_risk(hourly_features(held))
        hr_mon = model.raw_risk(hourly_features(without_labs(held)))
        reports["held_out"] = {**_report(hc, old.apply(hr), new.apply(hr)),
                               "alarms": _alarm_report(hc, old.apply(hr), th_old,
                                                       new.apply(hr), th_new)}
        reports["held_out_monitor_only"] = {
            **_report(hc, old_mon.apply(hr_mon), new_mon.apply(hr_mon)),
            "alarms": _alarm_report(hc, old_mon.apply(hr_mon), th_mon_old,
                                    new_mon.apply(hr_mon), th_mon_new)}

    child = registry.new_version(settings)
    work = registry.partial_dir(settings, child)
    src = registry.version_dir(settings, parent)
    try:
        work.mkdir(parents=True)
        for name in ("trees.json", "split.json"):
            if (src / name).exists():
                shutil.copy2(src / name, work / name)
        if (src / "spark").is_dir():
            shutil.copytree(src / "spark", work / "spark")
        recal = {"parent_version": parent, "source": source, "mode": mode,
                 "thresholds": thresholds, "n_local_stays": len(sample.local),
                 "n_held_out_stays": len(sample.held_out),
                 "local_stays": list(sample.local), "held_out_stays": list(sample.held_out),
                 "calibration_before": old.to_dict(), "calibration_after": new.to_dict(),
                 "calibration_monitor_only_before": old_mon.to_dict(),
                 "calibration_monitor_only_after": new_mon.to_dict(),
                 "reports": reports}
        registry.write_json(work / "recalibration.json", recal)
        meta.update({
            "version": child,
            "created": registry.now_iso(),
            "parent_version": parent,
            "calibration": new.to_dict(),
            "calibration_monitor_only": new_mon.to_dict(),
            "threshold": th_new,
            "threshold_monitor_only": th_mon_new,
            "threshold_rule": rule,
            "operating_points": points or None,
            "recalibration": {k: v for k, v in recal.items()
                              if k not in ("local_stays", "held_out_stays", "reports")},
            "metrics_note": "validation/test metrics are the parent version's, before "
                            "this recalibration; recalibration.json has the local ones",
        })
        meta.pop("evaluated", None)
        if not points:
            meta.pop("operating_points", None)
        registry.write_json(work / "metadata.json", meta)
        registry.publish(settings, child)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if activate:
        registry.activate(settings, child)
    return registry.jsonable({**meta, "recalibration_reports": reports})


def read_recalibration(settings: Settings, version: str) -> dict | None:
    path = registry.version_dir(settings, version) / "recalibration.json"
    return registry.read_json_file(path) if path.exists() else None


__all__ = ["MODES", "THRESHOLD_MODES", "RecalibrationError", "Sample", "choose_stays",
           "read_recalibration", "recalibrate"]

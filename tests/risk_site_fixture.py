"""Hand-made ``sites.json`` and ``recalibration.json`` documents (the shapes written by
backend.risk.sites and backend.risk.recalibrate) for the model page's tests: a random split
that meets every target and a site split that misses them, with numbers worked by hand."""

from __future__ import annotations


def _cal(brier: float, base: float, slope: float, **kw: float) -> dict:
    return {"brier": brier, "brier_base_rate": base, "calibration_slope": slope,
            "calibration_intercept": kw.get("intercept", 0.1), "ece": 0.004,
            "expected_over_observed": kw.get("oe", 1.1), "auroc_hourly": 0.8,
            "at_threshold_utility": 0.3}


def _site_model(utility: float, cal: dict, beats: bool) -> dict:
    matched = {"sensitivity_patient": 0.8 if beats else 0.3, "alerts_per_patient_day": 0.5,
               "beats": beats, "threshold": 0.04, "validation_target": 0.85}
    return {"auroc_hourly": 0.81, "auroc_patient": 0.77, "utility": utility,
            "sensitivity_patient": 0.75, "alerts_per_patient_day": 0.55,
            "calibration_method": "platt", "calibration": cal,
            "calibration_methods": {"none": _cal(0.03, 0.02, 0.7), "platt": cal},
            "reliability": {"mean_predicted": [0.01, 0.1], "observed": [0.012, 0.09],
                            "count": [90, 10]},
            "baselines": [{"baseline": "qSOFA >= 2", "baseline_sensitivity_patient": 0.4,
                           "baseline_alerts_per_patient_day": 0.6,
                           "main": {"sensitivity_patient": 0.75,
                                    "alerts_per_patient_day": 0.55, "beats": True},
                           "matched": matched}]}


def make_sites() -> dict:
    """Random split: meets every target, beats qSOFA. Surgical -> medical: misses them."""
    good, bad = _cal(0.020, 0.021, 1.05), _cal(0.027, 0.026, 0.6, intercept=0.5, oe=0.6)
    return {"evaluated": "2026-01-02T00:00:00+00:00", "schemes": [
        {"scheme": "random", "label": "Random patients", "retrained": False,
         "n_patients": {"test": 3531}, "n_septic_patients": {"test": 310},
         "model": _site_model(0.38, good, True), "monitor_only": _site_model(0.36, good, True)},
        {"scheme": "surgical_to_medical", "label": "Surgical ICU → medical ICU",
         "retrained": True, "n_patients": {"test": 4615}, "n_septic_patients": {"test": 494},
         "model": _site_model(0.25, bad, False), "monitor_only": _site_model(0.2, bad, False)},
    ], "targets": {
        "random": {"utility_at_least_0.35": True, "brier_below_base_rate": True,
                   "calibration_slope_0.8_to_1.2": True, "auroc_hourly_at_least_0.799": True},
        "surgical_to_medical": {"utility_at_least_0.35": False, "brier_below_base_rate": False,
                                "calibration_slope_0.8_to_1.2": False}}}



def make_recalibration() -> dict:
    rel = {"mean_predicted": [0.02, 0.2], "observed": [0.01, 0.1], "count": [50, 5]}
    report = {"n_stays": 100, "n_septic_stays": 6,
              "before": {**_cal(0.012, 0.011, 1.3, oe=2.4), "reliability": rel},
              "after": {**_cal(0.010, 0.011, 1.0, intercept=0.0, oe=1.0), "reliability": rel}}
    return {"parent_version": "v0", "source": "site X", "mode": "platt", "thresholds": "keep",
            "n_local_stays": 100, "n_held_out_stays": 100,
            "reports": {"local": report, "held_out": report}}

"""Can a new site's share of septic hours be estimated without labels, so the model's
probabilities (and a probability threshold) follow it from the first day?

    .venv/bin/python bench/risk_prior_shift.py [--feature-set v1] [--out DIR]

Reads the raw risks ``bench/risk_site_study.py`` saved for each split (run it first),
fits the recipe's calibration (Platt) on the split's validation stays, and estimates the
held-out stays' positive-hour rate from their *unlabelled* risks in two standard ways:

* EM (Saerens, Latinne & Decaestecker 2002): re-weights the calibrated posteriors by the
  ratio of the new prior to the old until their mean is the new prior;
* adjusted classify-and-count (Forman 2008): the share of held-out hours over a
  validation-quantile threshold, corrected by that threshold's validation TPR and FPR.

Both assume label shift (the features of a septic hour look the same at both sites).
Each estimate is turned into posteriors by the same prior ratio and judged on the held-out
labels: the estimate against the true rate, Brier and expected/observed, and utility and
patient sensitivity at the validation thresholds of the "sensitivity" and "max_utility"
rules. Results: docs/model.md, "Label-free adaptation".
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from backend.risk import calibration as calib
from backend.risk import data as data_mod
from backend.risk.sites import at_threshold, prepare
from backend.risk.split import SCHEMES, site_split
from backend.risk.train import TrainConfig, rule_threshold
from backend.settings import get_settings

RULES = ("sensitivity", "max_utility")
ACC_QUANTILES = (0.8, 0.9)


def reweighted(p: np.ndarray, old: float, new: float) -> np.ndarray:
    """Posteriors under prior ``new`` of a classifier calibrated at prior ``old``."""
    a = (new / old) * p
    return a / (a + ((1 - new) / (1 - old)) * (1 - p))


def em_prior(p: np.ndarray, old: float, iterations: int = 500) -> float:
    new = old
    for _ in range(iterations):
        estimate = float(reweighted(p, old, new).mean())
        if abs(estimate - new) < 1e-9:
            break
        new = estimate
    return new


def acc_prior(p_val: np.ndarray, y_val: np.ndarray, p_test: np.ndarray,
              quantile: float) -> float:
    t = np.quantile(p_val, quantile)
    tpr, fpr = (p_val[y_val == 1] >= t).mean(), (p_val[y_val == 0] >= t).mean()
    return float(np.clip(((p_test >= t).mean() - fpr) / (tpr - fpr), 1e-4, 0.5))


def main() -> None:
    settings = get_settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--feature-set", default="v1")
    p.add_argument("--out", default=str(settings.cache_dir / "site-study"))
    args = p.parse_args()
    prepared = prepare(settings, data_mod.load(settings).frame)
    config = TrainConfig()

    print("| held-out split | estimator | rate: estimated / true | Brier / base rate "
          "| expected / observed | " + " | ".join(f"utility, sens at `{r}`" for r in RULES)
          + " |")
    print("|---|---|---|---|---|" + "---|" * len(RULES))
    for scheme in SCHEMES:
        saved = np.load(Path(args.out).expanduser() / args.feature_set / f"{scheme}.npz")
        split = site_split(scheme, prepared.septic, prepared.units, seed=config.seed)
        val = prepared.cohort(prepared.rows(split.validation))
        test = prepared.cohort(prepared.rows(split.test))
        cal = calib.fit(config.calibration, val.labels, saved["raw_val"])
        p_val, p_test = cal.apply(saved["raw_val"]), cal.apply(saved["raw_test"])
        thresholds = [rule_threshold(replace(config, threshold_rule=rule), val, p_val)
                      for rule in RULES]
        old = float(val.labels.mean())
        estimates = {"none (brought)": old, "EM": em_prior(p_test, old)}
        for q in ACC_QUANTILES:
            estimates[f"ACC, q{q:g}"] = acc_prior(p_val, val.labels, p_test, q)
        for name, new in estimates.items():
            risk = reweighted(p_test, old, new)
            r = calib.calibration_report(test.labels, risk)
            cells = []
            for th in thresholds:
                m = at_threshold(test, risk, th)
                cells.append(f"{m['utility']:.3f}, {m['sensitivity_patient']:.2f}")
            print(f"| {scheme} | {name} | {new:.4f} / {test.labels.mean():.4f} "
                  f"| {r['brier']:.4f} / {r['brier_base_rate']:.4f} "
                  f"| {r['expected_over_observed']:.2f} | " + " | ".join(cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()

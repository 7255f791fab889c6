"""Which features, calibration and threshold rule transfer between ICU types?

    flock /tmp/icu-heavy.lock .venv/bin/python bench/risk_site_study.py \
        --feature-sets v1,v1_no_hour [--schemes random,medical_to_surgical,...] \
        [--out ~/.cache/icu-monitor/site-study] [--max-iter 100]

For each candidate feature set it trains the recipe (``TrainConfig`` with that feature
set, everything else as configured) on every split of ``backend.risk.split.SCHEMES``
with Spark MLlib, keeps the raw risks of each split's validation and test stays
(``<out>/<feature set>/<scheme>.npz``) and the assessment of ``backend.risk.sites``
(``<out>/<feature set>.json``), and prints one line per split: AUROC, utility, Brier
against the base rate and the calibration slope on the held-out stays, with labs and
monitor only. Feature sets, calibration methods and threshold rules are then compared on
these files without refitting (``--analyse``). Results: docs/model.md.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from backend.risk import data as data_mod
from backend.risk import registry
from backend.risk.features import FEATURE_SETS, LABS, V1_FEATURES, without
from backend.risk.sites import SplitRisks, assess, prepare, run_schemes
from backend.risk.split import SCHEMES, Split, site_split
from backend.risk.train import TrainConfig
from backend.risk.utility import Cohort
from backend.settings import get_settings

LAB_TIMING = tuple(f"{lab}_hours_since" for lab in LABS)
VITAL_TIMING = tuple(f"{v}_hours_since" for v in ("hr", "spo2", "temp", "sbp", "map", "dbp",
                                                  "rr"))
DELTAS = tuple(f"{lab}_delta" for lab in LABS)

CANDIDATES: dict[str, tuple[str, ...]] = {
    "v1": V1_FEATURES,
    "v1_no_hour": without(V1_FEATURES, "hour"),
    "v1_hour48": (*without(V1_FEATURES, "hour"), "hour48"),
    "v1_no_lactate_timing": without(V1_FEATURES, "lactate_hours_since"),
    "v1_no_lab_timing": without(V1_FEATURES, *LAB_TIMING),
    "v1_no_hour_no_lab_timing": without(V1_FEATURES, "hour", *LAB_TIMING),
    "v1_no_timing": without(V1_FEATURES, "hour", *LAB_TIMING, *VITAL_TIMING),
    "v1_no_vital_timing": without(V1_FEATURES, *VITAL_TIMING),
    "v1_no_measurement_timing": without(V1_FEATURES, *VITAL_TIMING, *LAB_TIMING),
    "deltas_no_lab_timing": (*without(V1_FEATURES, *LAB_TIMING), *DELTAS),
    "deltas": (*V1_FEATURES, *DELTAS),
    "deltas_no_hour_no_lab_timing": (*without(V1_FEATURES, "hour", *LAB_TIMING), *DELTAS),
    "deltas_hour48_no_lab_timing": (*without(V1_FEATURES, "hour", *LAB_TIMING), *DELTAS,
                                    "hour48"),
}


def summary_line(fs: str, e: dict) -> str:
    parts = [f"{fs:<30} {e['scheme']:<20}"]
    for key in ("model", "monitor_only"):
        m = e[key]
        c = m["calibration"]
        parts.append(f"AUROC {m['auroc_hourly']:.3f}/{m['auroc_patient']:.3f} "
                     f"U {m['utility']:.3f} sens {m['sensitivity_patient']:.2f} "
                     f"al {m['alerts_per_patient_day']:.2f} "
                     f"Brier {c['brier']:.4f}/{c['brier_base_rate']:.4f} "
                     f"slope {c['calibration_slope']:.2f}")
    return " | ".join(parts)


def study_splits(prepared, seed: int = 0) -> dict[str, Split]:
    """``random_small``: the random split with its training stays cut (seeded) to the
    number a site split trains on, to tell the loss from fewer training stays apart from
    the loss from another ICU type."""
    base = site_split("random", prepared.septic, prepared.units, seed=0)
    medical = site_split("medical_to_surgical", prepared.septic, prepared.units, seed=0)
    rng = np.random.default_rng(seed)
    keep = tuple(sorted(rng.choice(base.train, len(medical.train), replace=False)))
    return {"random_small": Split(keep, base.validation, base.test, seed=0,
                                  fractions=base.fractions, scheme="random_small")}


def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    dataset = data_mod.load(settings)
    prepared = prepare(settings, dataset.frame)
    print(f"prepared {len(prepared.frame)} rows in {time.monotonic() - t0:.0f} s", flush=True)
    schemes = tuple(args.schemes.split(","))
    splits = study_splits(prepared, args.seed_small)
    for fs in args.feature_sets.split(","):
        FEATURE_SETS.setdefault(fs, CANDIDATES[fs])
        config = replace(TrainConfig(max_iter=args.max_iter), feature_set=fs,
                         calibration=args.calibration, label_lead_hours=args.label_lead)
        fits: dict[str, float] = {}

        def on_fit(scheme: str, risks: SplitRisks, fits: dict[str, float] = fits) -> None:
            fits[scheme] = risks.fit_seconds or 0.0

        entries = run_schemes(settings, prepared, config, schemes,
                              keep_risks=out / fs, on_fit=on_fit, splits=splits)
        registry.write_json(out / f"{fs}.json", {"feature_set": fs,
                                                 "features": list(config.features),
                                                 "params": config.__dict__, "schemes": entries})
        for e in entries:
            print(summary_line(fs, e) + f" | fit {fits[e['scheme']]:.0f} s", flush=True)


def analyse(args: argparse.Namespace) -> None:
    """Re-assess saved risks with other calibration methods / threshold rules."""
    settings = get_settings()
    out = Path(args.out).expanduser()
    dataset = data_mod.load(settings)
    prepared = prepare(settings, dataset.frame)
    overrides = json.loads(args.analyse)
    for fs in args.feature_sets.split(","):
        FEATURE_SETS.setdefault(fs, CANDIDATES[fs])
        config = replace(TrainConfig(), feature_set=fs, **overrides)
        for scheme in args.schemes.split(","):
            saved = np.load(out / fs / f"{scheme}.npz")
            split = (study_splits(prepared, args.seed_small)[scheme]
                     if scheme == "random_small" else
                     site_split(scheme, prepared.septic, prepared.units, seed=config.seed))
            vr, tr = prepared.rows(split.validation), prepared.rows(split.test)

            def cohort(mask: np.ndarray) -> Cohort:
                f = prepared.frame[mask]
                return Cohort.from_rows(f["patient_id"].to_numpy(), f["label"].to_numpy())

            risks = SplitRisks(scheme, split, cohort(vr), cohort(tr), saved["raw_val"],
                               saved["raw_val_monitor"], saved["raw_test"],
                               saved["raw_test_monitor"], vr, tr, retrained=True)
            print(summary_line(fs, assess(prepared, config, risks)), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--feature-sets", default="v1")
    p.add_argument("--schemes", default=",".join(SCHEMES))
    p.add_argument("--calibration", default="platt")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--seed-small", type=int, default=0, help="seed of random_small")
    p.add_argument("--label-lead", type=int, default=0,
                   help="train on SepsisLabel moved this many hours earlier")
    p.add_argument("--out", default=str(get_settings().cache_dir / "site-study"))
    p.add_argument("--analyse", default=None,
                   help="JSON of TrainConfig overrides, e.g. "
                        '\'{"threshold_rule": "sensitivity"}\'; re-assesses the saved risks '
                        "instead of training")
    args = p.parse_args()
    analyse(args) if args.analyse else run(args)


if __name__ == "__main__":
    main()

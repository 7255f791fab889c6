"""Which features, calibration and threshold rule transfer between ICU types?

    flock /tmp/icu-heavy.lock .venv/bin/python bench/risk_site_study.py \
        --feature-sets v1 [--schemes random,medical_to_surgical,...] \
        [--out ~/.cache/icu-monitor/site-study] [--max-iter 100] [--version V] \
        [--params '{"max_depth": 3, "max_iter": 200}' --tag d3_t200]
    flock /tmp/icu-heavy.lock .venv/bin/python bench/risk_site_study.py \
        --feature-sets v1,v1_no_hour --analyse '[{}, {"threshold_rule": "robust_utility"}]'
    .venv/bin/python bench/risk_site_study.py --table

For each candidate feature set it trains the recipe (``TrainConfig`` with that feature
set, everything else as configured) on every split of ``backend.risk.split.SCHEMES``
with Spark MLlib, keeps the raw risks of each split's validation and test stays
(``<out>/<feature set>/<scheme>.npz``) and the assessment of ``backend.risk.sites``
(``<out>/<feature set>.json``), and prints one line per split: AUROC, utility, Brier
against the base rate and the calibration slope on the held-out stays, with labs and
monitor only. ``--version``: a registered version of one candidate's recipe stands in
for the refit of its own split (the trees depend only on the recipe and the seed).

``--analyse`` compares calibration methods and threshold rules on these files without
refitting: per recipe variant and split the held-out assessment, the same numbers on the
split's own validation stays (what a choice may look at), and on the site splits a local
recalibration (the held-out ICU's first half of stays, in id order, refits the
calibration as ``icu model recalibrate`` does; judged on its second half). Saved as
``<out>/analyse/<feature set>__<variant>.json``; ``--table`` prints them as markdown.
Results: docs/model.md, "Site-robust study".
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from backend.risk import calibration as calib
from backend.risk import data as data_mod
from backend.risk import registry
from backend.risk.features import FEATURE_SETS, LABS, V1_FEATURES, without
from backend.risk.model import RiskModel
from backend.risk.recalibrate import choose_stays
from backend.risk.sites import SplitRisks, assess, at_threshold, prepare, run_schemes, targets
from backend.risk.split import SCHEMES, SITE_SCHEMES, Split, site_split
from backend.risk.train import TrainConfig, rule_threshold, summary_metrics
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


def reused_version(settings, version: str | None, config: TrainConfig) -> RiskModel | None:
    """The registered ``version`` when it was trained by ``config``'s recipe (the trees do
    not depend on the calibration or the threshold rule): its own split is then assessed
    on its trees instead of a refit, as ``icu model sites`` does."""
    if version is None:
        return None
    model = registry.load(settings, version)
    params = TrainConfig.from_params(registry.read_metadata(settings, version)["params"])
    tree_keys = ("seed", "max_patients", "fractions", "max_iter", "max_depth", "step_size",
                 "subsampling_rate", "min_instances_per_node", "max_bins", "negative_rate",
                 "lab_dropout", "split", "label_lead_hours")
    if model.features != config.features or any(
            getattr(params, k) != getattr(config, k) for k in tree_keys):
        return None
    return model


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
                         calibration=args.calibration, label_lead_hours=args.label_lead,
                         **json.loads(args.params))
        name = fs + (f"__{args.tag}" if args.tag else "")
        fits: dict[str, float] = {}

        def on_fit(scheme: str, risks: SplitRisks, fits: dict[str, float] = fits) -> None:
            fits[scheme] = risks.fit_seconds or 0.0

        model = reused_version(settings, args.version, config)
        entries = run_schemes(settings, prepared, config, schemes, model,
                              keep_risks=out / name, on_fit=on_fit, splits=splits)
        registry.write_json(out / f"{name}.json", {"feature_set": fs,
                                                 "features": list(config.features),
                                                 "params": config.__dict__, "schemes": entries})
        for e in entries:
            print(summary_line(name, e) + f" | fit {fits[e['scheme']]:.0f} s", flush=True)


def validation_summary(config: TrainConfig, risks: SplitRisks) -> dict:
    """The recipe on the split's own validation stays (what a choice may look at): the
    calibration and threshold fitted there, judged there."""
    out = {}
    for key, raw in (("model", risks.raw_val), ("monitor_only", risks.raw_val_monitor)):
        cal = calib.fit(config.calibration, risks.val.labels, raw)
        risk = cal.apply(raw)
        th = rule_threshold(config, risks.val, risk)
        out[key] = {**summary_metrics(risks.val, risk, th), "threshold": th,
                    **calib.calibration_report(risks.val.labels, risk)}
    return out


def local_recalibration(prepared, config: TrainConfig, risks: SplitRisks,
                        fraction: float = 0.5) -> dict:
    """What ``icu model recalibrate`` would do at the held-out ICU: its first ``fraction``
    of stays (id order) refit the calibration (intercept only, or intercept and slope)
    and re-choose the threshold by the recipe's rule; judged on the rest of its stays,
    beside the calibration and threshold brought from the training ICU."""
    pid = prepared.frame["patient_id"].to_numpy()[risks.test_rows]
    labels = prepared.frame["label"].to_numpy()[risks.test_rows]
    sample = choose_stays(list(risks.split.test), fraction=fraction)
    local, held = np.isin(pid, sample.local), np.isin(pid, sample.held_out)
    c_local = Cohort.from_rows(pid[local], labels[local])
    c_held = Cohort.from_rows(pid[held], labels[held])
    out: dict = {"n_local_stays": len(sample.local), "n_held_out_stays": len(sample.held_out),
                 "n_local_septic_stays": int(c_local.stay_septic.sum())}
    for key, raw_val, raw_test in (("model", risks.raw_val, risks.raw_test),
                                   ("monitor_only", risks.raw_val_monitor,
                                    risks.raw_test_monitor)):
        old = calib.fit(config.calibration, risks.val.labels, raw_val)
        th_old = rule_threshold(config, risks.val, old.apply(raw_val))
        rl, rh = raw_test[local], raw_test[held]
        slope = old.b if old.method == "platt" else 1.0
        a, _ = calib.logistic_fit(np.zeros(len(rl)), c_local.labels, slope=False,
                                  offset=slope * calib.logit(rl))
        maps = {"brought": old, "intercept": calib.Calibration("platt", a=a, b=slope),
                "platt": calib.fit_platt(c_local.labels, rl)}
        res = {}
        for name, cal in maps.items():
            th = th_old if name == "brought" else rule_threshold(config, c_local,
                                                                 cal.apply(rl))
            risk = cal.apply(rh)
            res[name] = {**calib.calibration_report(c_held.labels, risk),
                         **at_threshold(c_held, risk, th)}
        out[key] = res
    return out


def analyse(args: argparse.Namespace) -> None:
    """Re-assess saved risks with other calibration methods / threshold rules, write
    ``<out>/analyse/<feature set>__<tag>.json`` (held-out and validation numbers)."""
    settings = get_settings()
    out = Path(args.out).expanduser()
    dataset = data_mod.load(settings)
    prepared = prepare(settings, dataset.frame)
    variants = json.loads(args.analyse)
    variants = variants if isinstance(variants, list) else [variants]

    for fs in args.feature_sets.split(","):
        FEATURE_SETS.setdefault(fs, CANDIDATES[fs])
        for variant in variants:
            # "feature_sets": the variant applies to these sets only
            overrides = {k: v for k, v in variant.items() if k != "feature_sets"}
            if fs not in variant.get("feature_sets", [fs]):
                continue
            config = replace(TrainConfig(), feature_set=fs, **overrides)
            tag = "_".join(f"{k}-{v}" for k, v in sorted(overrides.items())) or "default"
            entries = []
            for scheme in args.schemes.split(","):
                saved = np.load(out / fs / f"{scheme}.npz")
                split = (study_splits(prepared, args.seed_small)[scheme]
                         if scheme == "random_small" else
                         site_split(scheme, prepared.septic, prepared.units, seed=config.seed))
                vr, tr = prepared.rows(split.validation), prepared.rows(split.test)
                risks = SplitRisks(scheme, split, prepared.cohort(vr), prepared.cohort(tr),
                                   saved["raw_val"],
                                   saved["raw_val_monitor"], saved["raw_test"],
                                   saved["raw_test_monitor"], vr, tr, retrained=True)
                entry = assess(prepared, config, risks)
                entry["validation"] = validation_summary(config, risks)
                if scheme in SITE_SCHEMES:
                    entry["local_recalibration"] = local_recalibration(prepared, config, risks)
                entries.append(entry)
                print(f"[{tag}] " + summary_line(fs, entry), flush=True)
            registry.write_json(out / "analyse" / f"{fs}__{tag}.json",
                                {"feature_set": fs, "overrides": overrides,
                                 "params": config.__dict__, "schemes": entries,
                                 "targets": targets(entries)})


def table(args: argparse.Namespace) -> None:
    """Markdown rows of every ``<out>/analyse/*.json``: held-out numbers, with labs and
    monitor only, and the validation utility the choice looks at."""
    out = Path(args.out).expanduser()
    print("| feature set | recipe | split | AUROC h/p | utility (val) | sens / alerts per day "
          "| Brier / base rate | slope | monitor only: AUROC, utility, Brier / base, slope |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted((out / "analyse").glob("*.json")):
        doc = json.loads(path.read_text())
        tag = path.stem.split("__", 1)[1]
        for e in doc["schemes"]:
            m, o, v = e["model"], e["monitor_only"], e["validation"]["model"]
            c, co = m["calibration"], o["calibration"]
            print(f"| {doc['feature_set']} | {tag} | {e['scheme']} | "
                  f"{m['auroc_hourly']:.3f} / {m['auroc_patient']:.3f} | "
                  f"{m['utility']:.3f} ({v['utility']:.3f}) | "
                  f"{m['sensitivity_patient']:.2f} / {m['alerts_per_patient_day']:.2f} | "
                  f"{c['brier']:.4f} / {c['brier_base_rate']:.4f} | "
                  f"{c['calibration_slope']:.2f} | {o['auroc_hourly']:.3f}, "
                  f"{o['utility']:.3f}, {co['brier']:.4f} / {co['brier_base_rate']:.4f}, "
                  f"{co['calibration_slope']:.2f} |")
    print()
    print("| feature set | recipe | split | calibration | utility | sens / alerts per day "
          "| Brier / base rate | slope | monitor only: utility, Brier / base, slope |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in sorted((out / "analyse").glob("*.json")):
        doc = json.loads(path.read_text())
        tag = path.stem.split("__", 1)[1]
        for e in doc["schemes"]:
            rec = e.get("local_recalibration")
            for name in rec["model"] if rec else ():
                m, o = rec["model"][name], rec["monitor_only"][name]
                print(f"| {doc['feature_set']} | {tag} | {e['scheme']} | {name} | "
                      f"{m['utility']:.3f} | {m['sensitivity_patient']:.2f} / "
                      f"{m['alerts_per_patient_day']:.2f} | {m['brier']:.4f} / "
                      f"{m['brier_base_rate']:.4f} | {m['calibration_slope']:.2f} | "
                      f"{o['utility']:.3f}, {o['brier']:.4f} / {o['brier_base_rate']:.4f}, "
                      f"{o['calibration_slope']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--feature-sets", default="v1")
    p.add_argument("--schemes", default=",".join(SCHEMES))
    p.add_argument("--calibration", default="platt")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--seed-small", type=int, default=0, help="seed of random_small")
    p.add_argument("--label-lead", type=int, default=0,
                   help="train on SepsisLabel moved this many hours earlier")
    p.add_argument("--params", default="{}",
                   help='JSON of other TrainConfig fields, e.g. \'{"max_depth": 3}\'')
    p.add_argument("--tag", default="",
                   help="results under <feature set>__<tag> (a recipe variant of --params)")
    p.add_argument("--version", default=None,
                   help="a registered version: for the feature set it was trained on, its "
                        "own split uses its trees instead of a refit")
    p.add_argument("--out", default=str(get_settings().cache_dir / "site-study"))
    p.add_argument("--analyse", default=None,
                   help="JSON of TrainConfig overrides (or a list of them), e.g. "
                        '\'{"threshold_rule": "sensitivity"}\'; re-assesses the saved risks '
                        "instead of training")
    p.add_argument("--table", action="store_true",
                   help="print the saved analyses as a markdown table")
    args = p.parse_args()
    if args.table:
        table(args)
    elif args.analyse:
        analyse(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

"""Alarm burden: the real MIMIC numerics and the generator's scenarios through validation
and the alarm engine (in-process, no Kafka or Spark), under five alarm policies.

    .venv/bin/python bench/bench_alarm_burden.py [--records s00001,s25047]
        [--per-scenario 4] [--hours 6] [--seed 7] [--out docs/alarm-burden.json]

Sources (``devices.alarm_replay``): the MIMIC stays at their recorded spacing (one frame
per minute, artefacts and all), and ``--per-scenario`` generated patients of every
scenario of ``devices.scenarios`` for ``--hours`` at 1 Hz. Policies: ``naive`` (values as
sent), ``raw`` (raw thresholds on validated readings), ``+ persistence``, ``+ clear
delay`` (the engine today), ``+ adaptive stale`` (the stale timeout this change proposes
for the engine). For every generated patient the scenario's noise-free physiology gives
the true deteriorations; each must have an alarm active while it lasts.

Prints the Markdown tables of docs/alarm-burden.md; ``--out`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.messages import Priority  # noqa: E402
from backend.settings import Settings  # noqa: E402
from devices.alarm_replay import (  # noqa: E402
    POLICIES,
    Result,
    detected,
    replay,
    stays_from_generator,
    stays_from_mimic,
    truth_episodes,
)
from devices.generator import GeneratorConfig  # noqa: E402
from devices.scenarios import SCENARIOS  # noqa: E402

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FINAL = "adaptive_stale"


def count(results: list[Result]) -> dict:
    bed_days = sum(r.stay.bed_days for r in results)
    alarms = [a for r in results for a in r.alarms]
    by_pri = Counter(a.priority.value for a in alarms)
    return {
        "stays": len(results), "bed_days": round(bed_days, 3), "alarms": len(alarms),
        "per_bed_day": round(len(alarms) / bed_days, 1) if bed_days else None,
        **{p.value: by_pri.get(p.value, 0) for p in Priority},
        "technical": sum(1 for a in alarms if a.kind == "technical"),
        "stale": sum(1 for a in alarms if a.rule == "stale_signal"),
        "rules": dict(Counter(a.rule for a in alarms).most_common()),
    }


def truth(results: list[Result], episodes: dict[str, list]) -> dict:
    out: dict[str, dict] = {}
    for r in results:
        eps = episodes[r.stay.admission.patient_id]
        row = out.setdefault(r.stay.scenario, {"episodes": 0, "detected": 0, "delays_s": [],
                                                "false_clinical": 0})
        clinical = [a for a in r.alarms if a.kind == "clinical"]
        matched = set()
        for e in eps:
            row["episodes"] += 1
            a = detected(e, clinical)
            if a is not None:
                row["detected"] += 1
                matched.add(id(a))
                row["delays_s"].append((a.raised_ms - e.start_ms) / 1000)
        # clinical alarms active during no true deterioration of this patient
        row["false_clinical"] += sum(
            1 for a in clinical
            if not any(detected(e, [a]) is not None for e in eps))
    for row in out.values():
        d = row.pop("delays_s")
        row["missed"] = row["episodes"] - row["detected"]
        row["delay_s"] = ({"median": round(statistics.median(d), 1), "min": round(min(d), 1),
                           "max": round(max(d), 1)} if d else None)
    return out


def run(args: argparse.Namespace) -> dict:
    settings = Settings()
    t0 = time.perf_counter()
    mimic = stays_from_mimic(args.records, settings.data_dir, start_ms=START_MS)
    gen_cfg = GeneratorConfig(start_ms=START_MS, patients=args.per_scenario * len(SCENARIOS),
                              wards=1, duration_s=args.hours * 3600, seed=args.seed,
                              scenario_mix={s: args.per_scenario for s in SCENARIOS})
    generated = stays_from_generator(gen_cfg)
    episodes = {s.admission.patient_id: truth_episodes(s, settings.alerting)
                for s in generated}
    t_build = time.perf_counter() - t0
    out: dict = {"policies": {}, "build_s": round(t_build, 1)}
    for policy in POLICIES:
        t = time.perf_counter()
        res_m = [replay(s, policy, settings.alerting) for s in mimic]
        res_g = [replay(s, policy, settings.alerting) for s in generated]
        by_scenario: dict[str, list[Result]] = defaultdict(list)
        for r in res_g:
            by_scenario[r.stay.scenario].append(r)
        out["policies"][policy.name] = {
            "text": policy.text,
            "mimic": count(res_m),
            "mimic_by_record": {r.stay.source: count([r]) for r in res_m},
            "generator": count(res_g),
            "generator_by_scenario": {k: count(v) for k, v in sorted(by_scenario.items())},
            "truth": truth(res_g, episodes),
            "readings_accepted": sum(r.accepted for r in res_m + res_g),
            "seconds": round(time.perf_counter() - t, 1),
        }
    out["sources"] = {
        "mimic": [{"stay": s.source, "frames": len(s.readings),
                   "bed_days": round(s.bed_days, 3)} for s in mimic],
        "generator": {"patients": len(generated), "hours": args.hours, "rate_hz": 1,
                      "seed": args.seed, "per_scenario": args.per_scenario,
                      "readings": sum(len(s.readings) for s in generated),
                      "bed_days": round(sum(s.bed_days for s in generated), 3),
                      "true_deteriorations": sum(len(e) for e in episodes.values())},
    }
    out["machine"] = {"python": platform.python_version(), "cpu": platform.machine()}
    return out


def _pct(n: int, base: int) -> str:
    return f"{100 * n / base:.0f} %" if base else "-"


def markdown(r: dict) -> str:
    pol = r["policies"]
    raw_m, raw_g = pol["raw"]["mimic"]["alarms"], pol["raw"]["generator"]["alarms"]
    src = r["sources"]
    lines = [
        "MIMIC: " + ", ".join(f"{m['stay']} ({m['frames']} frames)" for m in src["mimic"])
        + ", "
        f"{sum(m['bed_days'] for m in src['mimic']):.3f} bed-days. Generator: "
        f"{src['generator']['patients']} patients ({src['generator']['per_scenario']} per "
        f"scenario) x {src['generator']['hours']:g} h at 1 Hz, seed {src['generator']['seed']}"
        f", {src['generator']['readings']:,} readings, {src['generator']['bed_days']:.2f} "
        f"bed-days, {src['generator']['true_deteriorations']} true deteriorations.",
        "",
        "| policy | MIMIC alarms | per bed-day | high/med/low | of which stale | vs raw "
        "| generator alarms | per bed-day | high/med/low | technical | vs raw | missed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in pol.items():
        m, g = p["mimic"], p["generator"]
        missed = sum(t["missed"] for t in p["truth"].values())
        episodes = sum(t["episodes"] for t in p["truth"].values())
        lines.append(
            f"| {name}: {p['text']} | {m['alarms']:,} | {m['per_bed_day']:,} | "
            f"{m['high']}/{m['medium']}/{m['low']} | {m['stale']:,} | "
            f"{_pct(m['alarms'], raw_m)} | {g['alarms']:,} | {g['per_bed_day']:,} | "
            f"{g['high']}/{g['medium']}/{g['low']} | {g['technical']} | "
            f"{_pct(g['alarms'], raw_g)} | {missed} of {episodes} |")
    lines += ["", "Generator, per scenario (alarms per bed-day; clinical alarms outside any "
              "true deterioration in brackets):", "",
              "| scenario | " + " | ".join(pol) + " |",
              "|---|" + "---|" * len(pol)]
    scenarios = sorted(pol["raw"]["generator_by_scenario"])
    for sc in scenarios:
        cells = []
        for p in pol.values():
            c = p["generator_by_scenario"][sc]
            cells.append(f"{c['per_bed_day']:,} ({p['truth'][sc]['false_clinical']})")
        lines.append(f"| {sc} | " + " | ".join(cells) + " |")
    final = pol[FINAL]["truth"]
    lines += ["", f"True deteriorations under `{FINAL}` (an alarm active during each; "
              "delay from the truth crossing the threshold to the alarm, negative when "
              "the noisy measurement crossed first):", "",
              "| scenario | deteriorations | alarmed | missed | delay median (min-max) |",
              "|---|---|---|---|---|"]
    for sc in scenarios:
        t = final[sc]
        if not t["episodes"]:
            continue
        d = t["delay_s"]
        lines.append(f"| {sc} | {t['episodes']} | {t['detected']} | {t['missed']} | "
                     f"{d['median']} s ({d['min']} to {d['max']} s) |")
    lines += ["", "MIMIC alarms by rule under `raw` and `" + FINAL + "`:", ""]
    for name in ("raw", FINAL):
        rules = pol[name]["mimic"]["rules"]
        lines.append(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in rules.items()))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=lambda s: s.split(","), default=["s00001", "s25047"])
    ap.add_argument("--per-scenario", type=int, default=4)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    t = time.perf_counter()
    result = run(args)
    print(markdown(result))
    print(f"\n({time.perf_counter() - t:.0f} s)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

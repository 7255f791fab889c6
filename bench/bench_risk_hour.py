"""What the live risk scorer costs when a bed's hour closes: once an hour, every bed at once.

    .venv/bin/python bench/bench_risk_hour.py [--patients 1000] [--repeat 3]

The risk query (``streaming/risk_job.py``) calls ``backend.risk.live.process`` for each
patient with readings in a micro-batch. Most calls only add readings to the open hour;
the call that closes an hour also computes the stay's features and scores the hour. The
hours count from each bed's admission, so beds admitted together (a unit opening, or
this project's stream bench, which admits every bed at once) close their hours in the
same batch: a burst on the cores the alarm query needs (docs/benchmarks.md, "What froze
the alarm query", "The hourly risk scoring").

The bench takes ``--patients`` stays of the active model's test split (never seen in
training) from PhysioNet/CinC 2019 set A, places each at a random hour of its stay with
the hours before it already in the scorer's state (as the stream leaves it), and times
the one ``process`` call that closes that hour, in this process, one after another. It
reports milliseconds of CPU per hour closed; the same numbers for another commit come
from running this file there (``git stash``, or a worktree).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.risk.live import LiveReading, PatientRiskState, process  # noqa: E402
from backend.risk.registry import ActiveModel  # noqa: E402
from backend.settings import Settings  # noqa: E402
from bench.bench_risk_stream import plan, stays  # noqa: E402
from bench.support import dist, machine_info  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3, help="passes over the patients")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    settings = Settings()
    model = ActiveModel(settings, 3600).get()
    if model is None:
        print("no active model: train one first (icu model train)", file=sys.stderr)
        return 2
    frame = stays(settings, model.version, args.patients, args.seed)
    admissions, readings = plan(frame, days=14, seed=args.seed)
    by_patient: dict[str, list] = {}
    for r in readings:
        by_patient.setdefault(r.patient_id, []).append(r)
    rng = np.random.default_rng(args.seed)
    cases = []  # (state before the closing call, the reading that closes the hour)
    for a in admissions:
        live = [LiveReading(ts=r.ts, ward=r.ward, bed=r.bed, vitals=dict(r.vitals))
                for r in sorted(by_patient[a.patient_id], key=lambda r: r.ts)]
        if len(live) < 3:
            continue
        k = int(rng.integers(2, len(live)))  # readings k-1 and k are in adjacent hours
        state, _, _ = process(PatientRiskState(a.patient_id), live[:k], admission=a,
                              model=None, cfg=settings.risk, now_ms=0)
        cases.append((state.to_json(), live[k]))

    per_pass = []
    scored = 0
    for _ in range(args.repeat):
        states = [(PatientRiskState.from_json(s), r) for s, r in cases]
        started = time.process_time()
        for state, r in states:
            _, scores, _ = process(state, [r], admission=None, model=model,
                                   cfg=settings.risk, now_ms=0)
            scored += len(scores)
        per_pass.append((time.process_time() - started) * 1000 / len(states))
    hours = [len(PatientRiskState.from_json(s).rows) for s, _ in cases]
    print(machine_info())
    print(f"model {model.version}; {len(cases)} stays, kept history {dist(hours)} hours")
    print(f"hours scored: {scored} in {args.repeat} passes")
    print("CPU per hour closed and scored, ms, per pass: "
          + ", ".join(f"{ms:.2f}" for ms in per_pass))
    print(f"-> one hourly close of {len(cases)} beds: {min(per_pass) * len(cases) / 1000:.1f}"
          " CPU-seconds (best pass)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

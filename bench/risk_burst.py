"""The readings' latency around the hourly risk scoring batch, read from a stream bench run.

    .venv/bin/python bench/risk_burst.py /tmp/bench-stream-*/

Once an hour every bed's hour closes and the risk query scores them all in one batch
(``streaming.risk_job``: "risk batch N: 1000 hourly scores"), on the cores the alarm
query needs. This splits the readings ``bench/bench_stream.py`` saw on
``vitals.validated`` (its ``arrivals.jsonl``: arrival, device time) into those that
arrived from ``--before`` s before that batch was stored to ``--after`` s after it, and
the rest, and compares their latency. The first ``--warmup`` s of arrivals are left out,
as the bench leaves out its warm-up.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.persist_overlap import log_time  # noqa: E402
from bench.support import dist  # noqa: E402

SCORING = re.compile(r"streaming\.risk_job risk batch \d+: (\d+) hourly scores")


def scoring_batches(job_log: Path, min_scores: int) -> list[float]:
    """When each risk batch of at least ``min_scores`` scores was stored (epoch s)."""
    out = []
    for line in job_log.read_text(errors="replace").splitlines():
        m = SCORING.search(line)
        at = log_time(line) if m else None
        if m and at is not None and int(m.group(1)) >= min_scores:
            out.append(at)
    return out


def split_latency(run: Path, *, before: float, after: float, warmup: float,
                  min_scores: int) -> dict:
    batches = scoring_batches(run / "job.log", min_scores)
    near: list[float] = []
    rest: list[float] = []
    first: float | None = None
    with open(run / "arrivals.jsonl") as f:
        for line in f:
            kind, arrived_ms, ts_ms, *_ = json.loads(line)
            if kind != "v":
                continue
            arrived = arrived_ms / 1000
            first = arrived if first is None else first
            if arrived < first + warmup:
                continue
            hit = any(b - before <= arrived <= b + after for b in batches)
            (near if hit else rest).append(arrived_ms - ts_ms)
    return {"run": run.name, "scoring_batches": len(batches),
            "near_scoring_ms": dist(near), "rest_ms": dist(rest)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="bench_stream work directories")
    ap.add_argument("--before", type=float, default=20.0)
    ap.add_argument("--after", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--min-scores", type=int, default=500)
    args = ap.parse_args(argv)
    for run in args.runs:
        print(json.dumps(split_latency(run, before=args.before, after=args.after,
                                       warmup=args.warmup, min_scores=args.min_scores)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How the persist query's batches slow the alarm query, read from a stream job's log.

    .venv/bin/python bench/persist_overlap.py /tmp/bench-stream-*/job.log

The job logs one line per alarm micro-batch (``streaming.sink``: readings, time, Spark
job time) and one per persist batch (``streaming.persist_job``: rows, total time, time per
table). A reading waits for the alarm batch in progress and rides the next one, so the
interval between two alarm batches' ends is what the reading latency is made of. This
splits those intervals by whether a persist batch ran during them. The first five persist
batches (the cold start and the JIT's warm-up) are left out.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.support import percentile  # noqa: E402

ALARM = re.compile(r"streaming\.sink batch \d+: (\d+) readings.* in \d+ ms \(collect (\d+) ms")
PERSIST = re.compile(r"streaming\.persist_job persist batch \d+: .* in (\d+) ms")
WARMUP_PERSIST_BATCHES = 5


@dataclass(frozen=True)
class Interval:
    seconds: float
    readings: int
    spark_ms: int
    during_persist: bool


def log_time(line: str) -> float | None:
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def intervals(lines: list[str]) -> tuple[list[Interval], list[tuple[float, float]]]:
    """The alarm query's intervals after the warm-up, and the persist batches' spans."""
    alarm: list[tuple[float, int, int]] = []
    persist: list[tuple[float, float]] = []
    for line in lines:
        at = log_time(line)
        if at is None:
            continue
        if m := PERSIST.search(line):
            persist.append((at - int(m.group(1)) / 1000, at))
        elif m := ALARM.search(line):
            alarm.append((at, int(m.group(1)), int(m.group(2))))
    start = persist[WARMUP_PERSIST_BATCHES - 1][1] if len(persist) >= WARMUP_PERSIST_BATCHES else 0
    alarm = [a for a in alarm if a[0] > start]
    out = []
    for (t0, _, _), (t1, n, spark_ms) in itertools.pairwise(alarm):
        during = any(a <= t1 and t0 <= b for a, b in persist)
        out.append(Interval(t1 - t0, n, spark_ms, during))
    return out, [p for p in persist if p[1] > start]


def _q(values: list[float], q: float) -> float:
    return percentile(sorted(values), q)


def summary(lines: list[str]) -> dict:
    found, persist = intervals(lines)
    result: dict = {}
    for name, during in (("during_persist", True), ("outside_persist", False)):
        group = [i for i in found if i.during_persist == during]
        if not group:
            continue
        seconds = [i.seconds for i in group]
        result[name] = {
            "intervals": len(group),
            "interval_s": {f"p{q}": round(_q(seconds, q), 2) for q in (50, 90, 99)},
            "spark_ms_p50": round(_q([i.spark_ms for i in group], 50)),
            "readings_mean": round(sum(i.readings for i in group) / len(group)),
        }
    spans = [b - a for a, b in persist]
    if spans:
        covered = sum(spans) / (persist[-1][1] - persist[0][0])
        result["persist_batch_s"] = {"n": len(spans), "p50": round(_q(spans, 50), 2),
                                     "max": round(max(spans), 2),
                                     "share_of_time": round(covered, 2)}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("logs", nargs="+", type=Path)
    args = p.parse_args()
    for log in args.logs:
        print(log, json.dumps(summary(log.read_text(errors="replace").splitlines()), indent=1))


if __name__ == "__main__":
    main()

"""The stream job's stateful step outside Spark: one call per patient vs one call per
state bucket, on the same readings and in the same run.

    .venv/bin/python bench/bench_state_buckets.py [--patients 200] [--readings 1 10]

Runs ``streaming.alarm_evaluator.make_evaluator`` as Spark's Python workers run it, with an
in-memory census (no Cassandra) and pandas frames shaped as Spark passes them. It
measures only the Python side: pyspark's own per-call cost (Arrow conversion, state
packing, ~3-4 ms per call in the pipeline benchmark) comes on top of every call, which is
why fewer calls matter even more inside Spark than here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "unit"))

from test_bucket_evaluator import FakeCensus, FakeGroupState, _frame, _reading  # noqa: E402

from backend.settings import Settings  # noqa: E402
from streaming import alarm_evaluator as evaluator  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--readings", type=int, nargs="+", default=[1, 10],
                    help="readings per patient and micro-batch")
    args = ap.parse_args(argv)
    settings = Settings()
    patients = [f"p{i}" for i in range(args.patients)]
    evaluator._CACHES[settings.cassandra.keyspace] = FakeCensus(*patients)  # type: ignore[assignment]
    now = int(time.time() * 1000)
    print("| readings per patient | one call per patient | one call per bucket "
          "(all patients) | ratio |")
    print("|---|---|---|---|")
    for k in args.readings:
        frames = {p: _frame([_reading(p, j + 1, now - 60_000 + j * 1000) for j in range(k)])
                  for p in patients}
        evaluate = evaluator.make_evaluator(settings)
        states = {p: FakeGroupState() for p in patients}
        c0 = time.process_time()
        for p in patients:
            list(evaluate((p,), iter([frames[p]]), states[p]))
        per_patient = time.process_time() - c0
        evaluate = evaluator.make_evaluator(settings)
        bucket = FakeGroupState()
        together = pd.concat(frames.values())
        c0 = time.process_time()
        list(evaluate((0,), iter([together]), bucket))
        one_bucket = time.process_time() - c0
        print(f"| {k} | {per_patient * 1e3:.0f} ms | {one_bucket * 1e3:.0f} ms | "
              f"{per_patient / one_bucket:.1f}x |")


if __name__ == "__main__":
    main()

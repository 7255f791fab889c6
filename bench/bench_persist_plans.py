"""What building the persist query's writes costs per batch, with the column expressions
made anew each batch (as before) or once (``streaming.persist_job._built_once``).

    .venv/bin/python bench/bench_persist_plans.py [ROUNDS]

Builds (does not run) one batch's DataFrames for every table, ROUNDS times each way,
interleaved, on the job's own classpath (the connector jars: each failed class lookup
scans them). Reports wall time per batch and the CPU of the JVM and of this process.
No Kafka or Cassandra needed.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import psutil

from backend.settings import get_settings
from streaming import persist_job as pj
from streaming.session import spark_session

BUILDERS = ("_raw_columns", "_reading_columns", "_history_columns", "_latest_columns",
            "_minute_columns", "_dead_letter_columns")


def one_batch(records) -> None:
    pj.raw_rows(records)
    r = pj.readings(records)
    pj.history_rows(r)
    pj.minute_rows(r)
    pj.latest_rows(r)
    pj.dead_letter_rows(records)


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    settings = get_settings()
    settings = settings.model_copy(update={"spark": settings.spark.model_copy(
        update={"master": "local[1]"})})
    spark = spark_session(settings, app_name="bench-persist-plans")
    jvm = next(p for p in psutil.Process().children(recursive=True) if "java" in p.name())
    me = psutil.Process()
    records = spark.createDataFrame(
        [], "key binary, value binary, topic string, partition int, offset long,"
            " timestamp timestamp")
    one_batch(records)  # warm both paths' JVM code once
    cached = {name: getattr(pj, name) for name in BUILDERS}
    for get in cached.values():
        get.build()
    times: dict[str, list[tuple[float, float, float]]] = {"anew": [], "once": []}

    def measure(way: str) -> None:
        j0, p0, t0 = sum(jvm.cpu_times()[:2]), sum(me.cpu_times()[:2]), time.perf_counter()
        if way == "anew":  # the uncached builders in the cached ones' place
            for name, get in cached.items():
                setattr(pj, name, get.build)
        try:
            one_batch(records)
        finally:
            for name, get in cached.items():
                setattr(pj, name, get)
        times[way].append((time.perf_counter() - t0, sum(jvm.cpu_times()[:2]) - j0,
                           sum(me.cpu_times()[:2]) - p0))

    for _ in range(rounds):
        measure("anew")
        measure("once")
    for way, xs in times.items():
        wall, jcpu, pcpu = (statistics.median(x[i] for x in xs) * 1000 for i in range(3))
        print(f"{way:5s} per batch, median of {rounds}: wall {wall:6.1f} ms,"
              f" JVM CPU {jcpu:6.1f} ms, Python CPU {pcpu:5.1f} ms")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

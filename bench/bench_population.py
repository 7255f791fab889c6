"""Population aggregation time over 30 simulated days x 200 beds.

On its own keyspace ``icu_bench_pop_<hex>`` (dropped at the end unless --keep), it writes
a seeded history (``devices.history``: 10 wards x 20 beds, 30 days, ~34,000 alerts), then
times, in one run and one Spark session (local[2] unless --master):

1. full    ``run_aggregation(force=True)`` over all 31 days (the baseline),
2. noop    an incremental run right after it: nothing is due, so it only reads the census
           and the computed-days record,
3. one day an incremental run after one more day of history: only the new day (and its
           ISO week) is recomputed.

Each is run ``--repeat`` times; the median is reported with the split read / Spark /
write / surge detection, and the ratio against the full recompute.

    .venv/bin/python bench/bench_population.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.settings import Settings
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from devices.history import HistorySpec, end_of_today, generate, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--wards", type=int, default=10)
    ap.add_argument("--beds-per-ward", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--master", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    from streaming.population_job import run_aggregation, spark_batch_session

    base = Settings()
    settings = base.model_copy(update={"cassandra": base.cassandra.model_copy(
        update={"keyspace": f"icu_bench_pop_{uuid.uuid4().hex[:10]}"})})
    if args.master:
        settings = settings.model_copy(
            update={"spark": settings.spark.model_copy(update={"master": args.master})})
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    spark = None
    try:
        migrate(db, settings)
        db.set_keyspace(settings.cassandra.keyspace)
        spec = HistorySpec(days=args.days, wards=args.wards, beds_per_ward=args.beds_per_ward)
        end = end_of_today() - timedelta(days=1)
        t = time.perf_counter()
        stays, alerts = generate(spec, end)
        write(db, stays, alerts)
        print(f"history: {len(stays)} stays, {len(alerts)} alerts over {args.days} days, "
              f"{args.wards * args.beds_per_ward} beds, written in "
              f"{time.perf_counter() - t:.1f} s")
        spark = spark_batch_session(settings)
        spark.sparkContext.setLogLevel("WARN")
        run_aggregation(spark, db, settings, force=True)  # warm-up (JVM, Python workers)

        results: dict[str, list] = {"full": [], "incremental": [], "after a new day": []}
        for _ in range(args.repeat):
            results["full"].append(run_aggregation(spark, db, settings, force=True, now=end))
            results["incremental"].append(run_aggregation(spark, db, settings, now=end))
        # one more day of history, then incremental runs that each see one new day
        stays2, alerts2 = generate(HistorySpec(days=args.days + 1, wards=args.wards,
                                               beds_per_ward=args.beds_per_ward),
                                   end + timedelta(days=1))
        write(db, stays2, alerts2)
        for _ in range(args.repeat):
            # forget the newest day's record so it is due again
            day = (end + timedelta(days=1)).date() - timedelta(days=1)
            db.execute("DELETE FROM population_days WHERE year = %s AND day = %s",
                       (day.year, day))
            results["after a new day"].append(run_aggregation(
                spark, db, settings, until=day, now=end + timedelta(days=3)))
        full = statistics.median(r.seconds.get("total", 0) for r in results["full"])
        print(f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, Spark {spark.version}, "
              f"master {settings.spark.batch_master}")
        print("| run | days computed | region rows | ward rows | read s | Spark s | write s "
              "| surge s | total s (median) | vs full |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, reports in results.items():
            def med(key: str, reports=reports) -> float:
                return statistics.median(r.seconds.get(key, 0.0) for r in reports)
            r0 = reports[0]
            print(f"| {name} | {len(r0.days)} | {r0.region_rows} | {r0.ward_rows} | "
                  f"{med('read'):.2f} | {med('spark'):.2f} | {med('write'):.2f} | "
                  f"{med('surge'):.2f} | {med('total'):.2f} | "
                  f"{med('total') / full:.2f} |")
        print("\nall totals: " + "; ".join(
            f"{k}: {[round(r.seconds.get('total', 0), 2) for r in v]}"
            for k, v in results.items()))
    finally:
        if spark is not None:
            spark.stop()
        if not args.keep:
            db.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}", timeout=120)
        db.cluster.shutdown()


if __name__ == "__main__":
    main()

"""One persist batch of a drain, held for its several writes in different ways: what the
persist query's JVM spends per reading on each.

    .venv/bin/python bench/bench_persist_batch.py [--readings 100000] [--rounds 4]

The persist sink (``streaming.persist_job.PersistSink``) reads one Kafka batch (the raw
records and the validated readings), counts it per topic, then writes four tables from
it: ``raw_messages`` from the raw records, three tables from the parsed readings. Both
the batch and the parsed readings are read by several Spark jobs, so the sink computes
each once and holds it (``PersistSink.hold``). Ways compared, interleaved round by round
on the same batch (a static Kafka read of the same offsets: what a micro-batch reads):

* ``columnar``: ``DataFrame.persist()``, Spark's in-memory columnar cache (the sink
  before this bench);
* ``rows``: ``DataFrame.localCheckpoint()``, the rows as Spark computed them, kept in
  the block manager, no columnar encoding (the sink since);
* ``reread``: the batch not held (each write reads Kafka again), the readings held as
  rows.

Kafka and Cassandra must be running (``icu services start``). The batch is ``--readings``
generator readings (their raw records and the validated messages the alarm query makes
of them) on topics of their own, written to a keyspace of its own, both dropped at the
end. Every round rewrites the same rows (idempotent upserts). Reports per way the wall
time and the JVM's CPU per reading of each round after ``--warmup`` rounds of each.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psutil  # noqa: E402

from backend.settings import get_settings  # noqa: E402
from bench.bench_stream import backlog_records, produce, validated_messages  # noqa: E402
from bench.support import log, machine_info  # noqa: E402
from harness.isolation import Scratch  # noqa: E402


def sink_class(way: str):
    from pyspark.sql import DataFrame

    from streaming.persist_job import PersistSink

    class Columnar(PersistSink):
        """The sink as it was before this bench: Spark's columnar cache."""

        def hold(self, frame: DataFrame) -> DataFrame:
            return frame.persist()

        def release(self, held: DataFrame) -> None:
            held.unpersist()

    class Reread(PersistSink):
        """The Kafka batch not held: each write reads it again."""

        def hold(self, frame: DataFrame) -> DataFrame:
            return frame if "topic" in frame.columns else super().hold(frame)

        def release(self, held: DataFrame) -> None:
            if "topic" not in held.columns:
                super().release(held)

    return {"columnar": Columnar, "rows": PersistSink, "reread": Reread}[way]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--readings", type=int, default=100_000)
    p.add_argument("--patients", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--ways", default="columnar,rows,reread")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    ways = args.ways.split(",")

    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from streaming.kafka_io import spark_kafka_options
    from streaming.session import spark_session

    scratch = Scratch()
    workdir = Path(tempfile.mkdtemp(prefix="bench-persist-batch-"))
    settings = scratch.isolate(get_settings(), workdir / "vitals", marker="pb",
                               allow_insecure_services=True)
    result: dict = {"machine": machine_info(), "args": vars(args) | {"out": str(args.out)}}
    try:
        session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
        migrate(session, settings)
        session.cluster.shutdown()
        records = backlog_records(args.patients, args.readings, boot="persist")
        validated = validated_messages(settings, records)
        t = settings.kafka
        produce(t.bootstrap, t.topic_raw, records)
        produce(t.bootstrap, t.topic_validated, validated)
        log(f"{len(records):,} raw records, {len(validated):,} validated readings")

        spark = spark_session(settings, app_name="bench-persist-batch")
        spark.sparkContext.setLogLevel("WARN")
        jvm = next(c for c in psutil.Process().children(recursive=True)
                   if "java" in c.name())
        batch = (spark.read.format("kafka").options(**spark_kafka_options(t))
                 .option("subscribe", ",".join([t.topic_raw, t.topic_validated,
                                                t.topic_deadletter]))
                 .option("startingOffsets", "earliest").option("endingOffsets", "latest")
                 .option("kafka.isolation.level", "read_committed").load())
        sinks = {way: sink_class(way)(settings) for way in ways}
        runs: dict[str, list[dict]] = {way: [] for way in ways}
        for i in range(args.warmup + args.rounds):
            for way in ways:
                cpu0, t0 = sum(jvm.cpu_times()[:2]), time.monotonic()
                sinks[way](batch, i)
                wall, cpu = time.monotonic() - t0, sum(jvm.cpu_times()[:2]) - cpu0
                if i >= args.warmup:
                    runs[way].append({"s": round(wall, 2),
                                      "jvm_us_per_reading": round(cpu / len(records) * 1e6, 1),
                                      "tables_ms": dict(sinks[way].timings)})
                log(f"round {i} {way:9s} {wall:6.2f} s, JVM {cpu / len(records) * 1e6:5.1f} us"
                    f" per reading  {sinks[way].timings}")
        spark.stop()
        result["runs"] = runs
        result["summary"] = {
            way: {"readings_per_s": round(len(records) / statistics.median(r["s"] for r in rs)),
                  "jvm_us_per_reading": statistics.median(r["jvm_us_per_reading"] for r in rs)}
            for way, rs in runs.items()}
        print(json.dumps(result["summary"], indent=2))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        problems = scratch.drop(settings)
        if problems:
            log(f"clean-up: {problems}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

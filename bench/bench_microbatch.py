"""The floor of a Spark micro-batch on this machine: what a stateful pandas query costs
per batch and when idle, with a trivial Python step, before any of our logic.

    .venv/bin/python bench/bench_microbatch.py --rate 1000 --seconds 30
    .venv/bin/python bench/bench_microbatch.py --timeout none --state-store hdfs
    .venv/bin/python bench/bench_microbatch.py --mode stateless
    .venv/bin/python bench/bench_microbatch.py --daemon pyspark.daemon     # pyspark's own
    .venv/bin/python bench/bench_microbatch.py --sink cassandra            # + a connector write

One query: Kafka -> groupBy(bucket).applyInPandasWithState (the step parses each JSON
value and counts per key, nothing else) -> foreachBatch (collect to the driver; with
``--sink`` also a Cassandra connector write or a Kafka write of the batch). A producer
in this process sends ``--rate`` messages/s carrying their send time; the driver notes
when each comes back. Reported: latency p50/p99, batches, the CPU of the JVM, the Python
workers and this process, then the same CPU for ``--idle`` s with no input. These are
the numbers behind the stream job's design (docs/benchmarks.md, "Stream design").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.support import dist  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=1000, help="messages per second")
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--seconds", type=int, default=30)
    p.add_argument("--idle", type=int, default=20)
    p.add_argument("--state-store", choices=["rocksdb", "hdfs"], default="rocksdb")
    p.add_argument("--timeout", choices=["processing", "none"], default="processing")
    p.add_argument("--trigger", type=float, default=0.0, help="s; 0 = back to back")
    p.add_argument("--buckets", type=int, default=2)
    p.add_argument("--shuffle-partitions", type=int, default=2)
    p.add_argument("--kafka-partitions", type=int, default=4)
    p.add_argument("--mode", choices=["stateful", "stateless"], default="stateful")
    p.add_argument("--daemon", default="streaming.worker_daemon",
                   help="Python worker daemon module (pyspark.daemon: pyspark's own)")
    p.add_argument("--sink", choices=["collect", "cassandra", "kafka"], default="collect")
    p.add_argument("--jars", type=Path, default=None, help="default: the settings' jars_dir")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import pandas as pd
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.streaming.state import GroupStateTimeout
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    from backend.settings import Settings

    settings = Settings()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    run = uuid.uuid4().hex[:8]
    topic = f"bench.microbatch.{run}"
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(topic, args.kafka_partitions, 1),
                         NewTopic(topic + ".out", args.kafka_partitions, 1)])
    jars_dir = args.jars or settings.spark.jars_dir
    store = ("org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
             if args.state_store == "rocksdb" else
             "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider")
    spark = (
        SparkSession.builder.master("local[2]").appName("bench-microbatch")
        .config("spark.jars", ",".join(str(p) for p in sorted(jars_dir.glob("*.jar"))))
        .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.python.worker.reuse", "true")
        .config("spark.python.daemon.module", args.daemon)
        .config("spark.sql.streaming.stateStore.providerClass", store)
        .config("spark.cassandra.connection.host", settings.cassandra.hosts[0])
        .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")

    raw = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", args.bootstrap)
           .option("subscribe", topic).option("startingOffsets", "earliest").load())
    keyed = raw.select("key", "value",
                       F.pmod(F.xxhash64("key"), F.lit(args.buckets)).alias("bucket"))
    out_schema = StructType([StructField("pk", StringType()), StructField("t", LongType()),
                             StructField("n", LongType())])
    processing = args.timeout == "processing"

    def step(key, pdfs, state):
        counts = json.loads(state.get[0]) if state.exists else {}
        pks, ts = [], []
        if not state.hasTimedOut:
            for pdf in pdfs:
                for k, v in zip(pdf["key"].tolist(), pdf["value"].tolist(), strict=True):
                    pk = k.decode()
                    counts[pk] = counts.get(pk, 0) + 1
                    pks.append(pk)
                    ts.append(json.loads(v)["t"])
        state.update((json.dumps(counts),))
        if processing:
            state.setTimeoutDuration(30_000)
        if pks:
            yield pd.DataFrame({"pk": pks, "t": ts, "n": [counts[p] for p in pks]})

    def stateless(frames):
        for pdf in frames:
            yield pd.DataFrame({"pk": [k.decode() for k in pdf["key"]],
                                "t": [json.loads(v)["t"] for v in pdf["value"]], "n": 1})

    if args.mode == "stateful":
        timeout = GroupStateTimeout.ProcessingTimeTimeout if processing \
            else GroupStateTimeout.NoTimeout
        evaluated = keyed.groupBy("bucket").applyInPandasWithState(
            step, out_schema, StructType([StructField("json", StringType())]), "append",
            timeout)
    else:
        evaluated = keyed.mapInPandas(stateless, out_schema)

    latencies: list[float] = []
    batches: list[tuple[int, int, float]] = []

    def sink(df, batch_id: int) -> None:
        started = time.monotonic()
        df.persist()
        sent = df.select("t").toPandas()["t"]
        if args.sink == "cassandra" and len(sent):
            (df.select(F.col("pk").alias("patient_id"), F.current_date().alias("day"),
                       (F.col("t") / 1000).cast("timestamp").alias("ts"),
                       F.lit("d").alias("device_id"), F.col("n").alias("seq"))
             .write.format("org.apache.spark.sql.cassandra").mode("append")
             .options(keyspace=keyspace, table="readings").save())
        elif args.sink == "kafka" and len(sent):
            (df.select(F.col("pk").alias("key"), F.to_json(F.struct("*")).alias("value"))
             .write.format("kafka").option("kafka.bootstrap.servers", args.bootstrap)
             .option("topic", topic + ".out").save())
        df.unpersist()
        now = time.time() * 1000
        latencies.extend((now - sent).tolist())
        batches.append((batch_id, len(sent), time.monotonic() - started))

    keyspace = f"bench_microbatch_{run}"
    if args.sink == "cassandra":
        from backend.storage.cassandra import connect

        session = connect(settings.cassandra, keyspace=False)
        session.execute(f"CREATE KEYSPACE {keyspace} WITH replication ="
                        " {'class': 'SimpleStrategy', 'replication_factor': 1}")
        session.execute(f"CREATE TABLE {keyspace}.readings (patient_id text, day date,"
                        " ts timestamp, device_id text, seq bigint,"
                        " PRIMARY KEY ((patient_id, day), ts, device_id, seq))")

    writer = (evaluated.writeStream.foreachBatch(sink)
              .option("checkpointLocation", f"/tmp/bench-microbatch-{run}"))
    if args.trigger > 0:
        writer = writer.trigger(processingTime=f"{args.trigger} seconds")
    started = time.monotonic()
    query = writer.start()
    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)

    def send(n: int) -> None:
        producer.send(topic, key=f"p{n % args.keys}".encode(),
                      value=json.dumps({"t": int(time.time() * 1000)}).encode())

    for n in range(args.keys):
        send(n)
    producer.flush()
    while not batches:
        time.sleep(0.05)
    cold = time.monotonic() - started
    time.sleep(10)
    latencies.clear()
    batches.clear()
    me = psutil.Process()

    def cpu() -> dict[str, float]:
        out: dict[str, float] = {}
        for p in [me, *me.children(recursive=True)]:
            try:
                name = "jvm" if "java" in p.name() else ("driver" if p.pid == me.pid
                                                         else "python_workers")
                t = p.cpu_times()
                out[name] = out.get(name, 0.0) + t.user + t.system
            except psutil.Error:
                pass
        return out

    def cores(a: dict, b: dict, wall: float) -> dict[str, float]:
        return {k: round((b[k] - a.get(k, 0.0)) / wall, 2) for k in b}

    a, t0 = cpu(), time.monotonic()
    interval, due = 1.0 / args.rate, time.monotonic()
    i = 0
    while time.monotonic() - t0 < args.seconds:
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        send(i)
        i += 1
        due += interval
    producer.flush()
    time.sleep(5)
    b, t1 = cpu(), time.monotonic()
    paced = {"latency_ms": dist(latencies), "batches": len(batches),
             "batch_ms": dist(x[2] * 1000 for x in batches), "cores": cores(a, b, t1 - t0)}
    batches.clear()
    a, t0 = cpu(), time.monotonic()
    time.sleep(args.idle)
    b, t1 = cpu(), time.monotonic()
    idle = {"batches": len(batches), "cores": cores(a, b, t1 - t0)}
    query.stop()
    spark.stop()
    admin.delete_topics([topic, topic + ".out"])
    if args.sink == "cassandra":
        session.execute(f"DROP KEYSPACE {keyspace}")
        session.cluster.shutdown()
    print(json.dumps({"args": vars(args) | {"jars": str(jars_dir)}, "spark": spark.version,
                      "cold_start_s": round(cold, 1), "paced": paced, "idle": idle},
                     default=str))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the py4j gateway must not keep the process alive

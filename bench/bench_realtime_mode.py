"""Spark's Real-time Mode and continuous processing against the micro-batch trigger,
for the per-reading step of the stream: does the stateless half of the job (parse,
validate, score every reading, publish ``vitals.validated``) reach the issue's p50 <= 1 s
/ p99 <= 2 s on this machine when Spark runs it continuously instead of batch by batch?

Real-time Mode needs Spark 4.1+; its stateful operators (``dropDuplicates``,
aggregations, the JVM ``transformWithState``) need 4.3+, and no Python operator runs in it
(4.3.0: ``MapInPandasExec`` is not in its allowlist). The project ships Spark 3.5 for the
Cassandra connector, so this bench runs in a venv of its own; of the project it imports
only ``bench.support`` (standard library and psutil). Maven Central serves Spark 4.3.0
(2026-12-04) but its Kafka connector only up to 4.2.0, which runs on 4.3.0 (measured:
docs/benchmarks.md, "Spark 4.3.0"). The connector's jars come from Maven Central through
Maven (Ivy's ``spark.jars.packages`` also asks repos.spark-packages.org, which this
machine cannot reach): a ``pom.xml`` in /tmp/rtm-jars whose one dependency is
``org.apache.spark:spark-sql-kafka-0-10_2.13:4.2.0``, then

    python3 -m venv /tmp/rtm && /tmp/rtm/bin/pip install pyspark==4.3.0 kafka-python psutil
    (cd /tmp/rtm-jars && mvn -q dependency:copy-dependencies -DoutputDirectory=lib)
    /tmp/rtm/bin/python bench/bench_realtime_mode.py --patients 1000 --seconds 120 \
        --jars /tmp/rtm-jars/lib --master 'local[4]'
    ... --dedup      # + dropDuplicates, the stateful step: a Real-time Mode query's
                     # stages run at once, so local[N] needs N >= source + shuffle partitions
    ... --source vitals.raw.bs<hex> --modes realtime --dedup   # read the shipped job's
                     # input while bench_stream.py paces it, instead of its own publisher

``--modes continuous`` runs the same query under Spark's continuous processing
(``trigger(continuous=...)``, experimental since Spark 2.3 and in the shipped 3.5: map-only
queries, no state, no ``current_timestamp()``, so the time checks judge ``ts`` against the
Kafka record's timestamp), in the project's own venv:

    .venv/bin/python bench/bench_realtime_mode.py --modes continuous,microbatch \
        --jars ~/.cache/icu-monitor/jars --checkpoint-interval "60 seconds"
    ... --modes continuous --step udf --buffer-size 4096 --daemon streaming.worker_daemon
                     # the per-reading step in a row-at-a-time Python UDF, which
                     # continuous processing accepts (it runs no mapInPandas)

One query per mode, run one after the other on the same broker: Kafka -> ``from_json``
-> validation and per-reading NEWS2 points as Spark SQL expressions (no Python in the
path) -> ``to_json`` -> Spark's Kafka sink. With ``--dedup``, a ``dropDuplicates`` on
(device, seq, ts) within a 60 s watermark first, the stateful step of the real
validation; with ``--step python``, a ``mapInPandas`` in place of the SQL expressions.
A publisher sends ``--patients`` beds at 1 Hz, spread over each second, each value in
the device wire format carrying its send time as ``ts``; a consumer reads the output
topic and takes consume time - ``ts``. The same publisher -> consumer path through one
topic with no Spark in it is measured first: the floor of the measurement itself.

Reported per mode: cold start, latency p50/p95/p99/max, the JVM's cores while paced and
with no input for ``--idle`` s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.support import dist  # noqa: E402

# The Kafka connector's own jars; the rest of its dependencies are in pyspark's jars.
KAFKA_JARS = ("spark-sql-kafka-0-10_", "spark-token-provider-kafka-0-10_", "kafka-clients-",
              "commons-pool2-")
# The plausibility table of backend.vitals.VITALS (min, max, 0 = sensor off), restated
# here because this bench runs outside the project's venv.
RANGES = {"hr": (15, 300, True), "pulse": (20, 250, True), "spo2": (20, 100, True),
          "rr": (2, 80, True), "sbp": (30, 300, True), "dbp": (10, 200, True),
          "map": (20, 250, True), "temp": (25, 45, False)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=1000, help="beds, each at 1 Hz")
    p.add_argument("--seconds", type=int, default=120, help="paced seconds per mode")
    p.add_argument("--warmup", type=int, default=20, help="paced seconds not counted")
    p.add_argument("--idle", type=int, default=30)
    p.add_argument("--modes", default="realtime,microbatch")
    p.add_argument("--checkpoint-interval", default="5 seconds",
                   help="Real-time Mode's batch duration (a checkpoint interval)")
    p.add_argument("--partitions", type=int, default=2, help="Kafka partitions per topic")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--dedup", action="store_true")
    p.add_argument("--step", choices=["sql", "python", "udf"], default="sql",
                   help="python: the per-reading step in a mapInPandas (parse, check, "
                        "re-encode in Python) instead of SQL expressions; micro-batch only; "
                        "udf: the same in a row-at-a-time Python UDF, which continuous "
                        "processing accepts")
    p.add_argument("--daemon", default="pyspark.daemon",
                   help="Python worker daemon (streaming.worker_daemon: the job's own; "
                        "needs the project's venv)")
    p.add_argument("--buffer-size", type=int, default=65536,
                   help="spark.buffer.size: the buffer of the pipe to and from a Python "
                        "worker, flushed when full, so in continuous processing a "
                        "Python UDF's latency is the time its input takes to fill it")
    p.add_argument("--source", default=None,
                   help="an existing topic of device readings to read instead of this "
                        "bench's own publisher (e.g. the shipped job's vitals.raw while "
                        "bench_stream.py paces it): no floor, latency from each "
                        "reading's device time")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--jars", type=Path, required=True,
                   help="a directory with the connector's jars (mvn dependency:copy-"
                        "dependencies of spark-sql-kafka-0-10 for this pyspark)")
    return p.parse_args(argv)


def plausible(name: str, value: float) -> bool:
    low, high, zero_means_off = RANGES[name]
    return low <= value <= high or (zero_means_off and value == 0)


def reading(i: int, seq: int, ts: int, rng: random.Random) -> bytes:
    pid = f"bench-{i:04d}"
    return json.dumps({
        "schema_version": 1, "device_id": f"mon-{i}", "seq": seq, "patient_id": pid,
        "ward": f"ICU-{i % 8}", "bed": str(i), "ts": ts,
        "vitals": {"hr": rng.gauss(80, 15), "spo2": rng.gauss(96, 2), "rr": rng.gauss(16, 3),
                   "sbp": rng.gauss(120, 15), "dbp": 70.0, "map": 85.0, "temp": 37.0},
        "o2_supplemental": False, "consciousness": "A", "source": "bench"},
        separators=(",", ":")).encode()


class Paced:
    """``patients`` beds at 1 Hz, spread evenly over each second, from a thread."""

    def __init__(self, bootstrap: str, topic: str, patients: int) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, acks=1)
        self.topic, self.patients = topic, patients
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(7)
        step, due, n = 1.0 / self.patients, time.monotonic(), 0
        while not self.stop.is_set():
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            i = n % self.patients
            self.producer.send(self.topic, key=f"bench-{i:04d}".encode(),
                               value=reading(i, n // self.patients, int(time.time() * 1000),
                                             rng))
            n += 1
            due += step
        self.producer.flush()
        self.sent = n


class Latencies:
    """Consume time - ``ts`` of every record on ``topic``, from a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap,
                                      auto_offset_reset="earliest", fetch_max_wait_ms=5,
                                      enable_auto_commit=False)
        self.values: list[float] = []
        self.counting = False
        self.first_at: float | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=50).values():
                now = time.time() * 1000
                if self.first_at is None and records:
                    self.first_at = time.monotonic()
                if self.counting:
                    self.values.extend(now - json.loads(r.value)["ts"] for r in records)


def jvm_cpu(me: psutil.Process) -> float:
    total = 0.0
    for p in me.children(recursive=True):
        try:
            if "java" in p.name():
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def paced_run(args: argparse.Namespace, source: str, out: str, *, started: float,
              me: psutil.Process, publish: bool = True) -> dict:
    lat = Latencies(args.bootstrap, out)
    lat.thread.start()
    pub = Paced(args.bootstrap, source, args.patients) if publish else None
    if pub:
        pub.thread.start()
    while lat.first_at is None and time.monotonic() - started < 300:
        time.sleep(0.02)
    cold = None if lat.first_at is None else round(lat.first_at - started, 1)
    time.sleep(args.warmup)
    lat.counting = True
    c0, t0 = jvm_cpu(me), time.monotonic()
    time.sleep(args.seconds)
    c1, t1 = jvm_cpu(me), time.monotonic()
    if pub:
        pub.stop.set()
        pub.thread.join()
    time.sleep(5)
    lat.stop.set()
    lat.thread.join()
    lat.consumer.close()
    return {"cold_start_s": cold, "latency_ms": dist(lat.values),
            "jvm_cores_paced": round((c1 - c0) / (t1 - t0), 3),
            "sent": pub.sent if pub else None}


def query(spark, args: argparse.Namespace, source: str, out: str, mode: str, ckpt: str):
    raw = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", args.bootstrap)
           .option("subscribe", source).option("startingOffsets", "latest").load())
    validated = (_python_step(raw) if args.step == "python"
                 else _udf_step(raw) if args.step == "udf"
                 else _sql_step(raw, dedup=args.dedup, broker_clock=mode == "continuous"))
    writer = (validated.writeStream.format("kafka")
              .option("kafka.bootstrap.servers", args.bootstrap).option("topic", out)
              .option("kafka.linger.ms", "0")
              .option("checkpointLocation", ckpt).outputMode("update"))
    if mode == "realtime":
        writer = writer.trigger(realTime=args.checkpoint_interval)
    elif mode == "continuous":
        writer = writer.trigger(continuous=args.checkpoint_interval)
    return writer.start()


def _sql_step(raw, *, dedup: bool, broker_clock: bool = False):
    """Parse, validate and score every reading in Spark SQL expressions: no Python.

    ``broker_clock``: judge ``ts`` against the Kafka record's timestamp instead of
    ``current_timestamp()``, which continuous processing does not allow."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    vitals = T.StructType([T.StructField(k, T.DoubleType()) for k in RANGES])
    schema = T.StructType([
        T.StructField("schema_version", T.IntegerType()),
        T.StructField("device_id", T.StringType()), T.StructField("seq", T.LongType()),
        T.StructField("patient_id", T.StringType()), T.StructField("ward", T.StringType()),
        T.StructField("bed", T.StringType()), T.StructField("ts", T.LongType()),
        T.StructField("vitals", vitals),
        T.StructField("o2_supplemental", T.BooleanType()),
        T.StructField("consciousness", T.StringType()),
        T.StructField("source", T.StringType())])

    r = raw.select("key", "timestamp", F.from_json(F.col("value").cast("string"), schema)
                   .alias("r")).select("key", "timestamp", "r.*")
    if dedup:
        r = (r.withColumn("event_time", F.timestamp_millis("ts"))
             .withWatermark("event_time", "60 seconds")
             .dropDuplicates(["device_id", "seq", "event_time"]))
    now = F.unix_millis(F.col("timestamp") if broker_clock else F.current_timestamp())
    checks = [(F.col("patient_id").isNull() | F.col("ts").isNull(), "malformed"),
              (F.col("schema_version") != 1, "unsupported_schema"),
              (F.col("ts") > now + 120_000, "future_timestamp"),
              (F.col("ts") < now - 7 * 86_400_000, "stale_timestamp")]
    for k, (lo, hi, zero_means_off) in RANGES.items():
        v = F.col(f"vitals.{k}")
        ok = v.between(lo, hi) | (v == 0) if zero_means_off else v.between(lo, hi)
        checks.append((v.isNotNull() & ~ok, f"implausible_{k}"))
    reason = F.lit(None).cast("string")
    for cond, name in reversed(checks):
        reason = F.when(cond, F.lit(name)).otherwise(reason)
    hr, rr, spo2, sbp = (F.col(f"vitals.{k}") for k in ("hr", "rr", "spo2", "sbp"))
    # NEWS2 points of the four vitals that carry most alarms (RCP 2017 chart).
    news2 = (F.when(hr <= 40, 3).when(hr <= 50, 1).when(hr <= 90, 0).when(hr <= 110, 1)
             .when(hr <= 130, 2).otherwise(3)
             + F.when(rr <= 8, 3).when(rr <= 11, 1).when(rr <= 20, 0).when(rr <= 24, 2)
             .otherwise(3)
             + F.when(spo2 <= 91, 3).when(spo2 <= 93, 2).when(spo2 <= 95, 1).otherwise(0)
             + F.when(sbp <= 90, 3).when(sbp <= 100, 2).when(sbp <= 110, 1)
             .when(sbp <= 219, 0).otherwise(3))
    return r.select(F.col("key"), F.to_json(F.struct(
        "patient_id", "device_id", "seq", "ts", "vitals", reason.alias("reason"),
        news2.alias("news2_partial"))).alias("value"))


def checked(value: bytes) -> str:
    """One reading parsed, range-checked and re-encoded with its reason: the Python
    per-reading step of ``--step python`` and ``--step udf``."""
    r = json.loads(value)
    bad = [k for k, x in r.get("vitals", {}).items() if k in RANGES and not plausible(k, x)]
    r["reason"] = f"implausible_{bad[0]}" if bad else None
    return json.dumps(r, separators=(",", ":"))


def _python_step(raw):
    """The per-reading step crossing into Python once per batch, as the shipped job's
    validation does: Arrow columns in, each value parsed, range-checked and re-encoded."""
    import pandas as pd

    def step(frames):
        for pdf in frames:
            yield pd.DataFrame({"key": pdf["key"],
                                "value": [checked(v) for v in pdf["value"].tolist()]})

    return raw.select("key", "value").mapInPandas(step, "key binary, value string")


def _udf_step(raw):
    """The per-reading step of ``_python_step`` as a plain Python UDF in a projection:
    continuous processing runs no ``mapInPandas``, but a projection may call Python."""
    from pyspark.sql import functions as F

    return raw.select("key", F.udf(lambda v: checked(bytes(v)), "string")("value")
                      .alias("value"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import pyspark
    from kafka.admin import KafkaAdminClient, NewTopic
    from pyspark.sql import SparkSession

    me = psutil.Process()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # The workers import the daemon (``--daemon streaming.worker_daemon``) from the repo.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    run = uuid.uuid4().hex[:8]
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    modes = [m for m in args.modes.split(",") if m]
    topics = [f"bench.rtm.{run}.{x}" for x in ("floor", *[f"{m}.{d}" for m in modes
                                                             for d in ("in", "out")])
              if not (args.source and x.endswith((".in", "floor")))]
    admin.create_topics([NewTopic(t, args.partitions, 1) for t in topics])
    results: dict = {"args": vars(args), "spark": pyspark.__version__,
                     "load_avg_at_start": os.getloadavg()}

    if not args.source:  # the floor: publisher -> one topic -> consumer, no Spark
        results["floor"] = paced_run(args, topics[0], topics[0], started=time.monotonic(),
                                     me=me)
        print(json.dumps({"floor": results["floor"]}), flush=True)

    jars = sorted(str(j) for j in args.jars.rglob("*.jar") if j.name.startswith(KAFKA_JARS))
    spark = (SparkSession.builder.master(args.master).appName("bench-realtime-mode")
             .config("spark.jars", ",".join(jars))
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(args.partitions))
             .config("spark.sql.streaming.pollingDelay", "100ms")
             .config("spark.python.worker.reuse", "true")
             .config("spark.buffer.size", str(args.buffer_size))
             .config("spark.python.daemon.module", args.daemon)
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    tmp = tempfile.mkdtemp(prefix="bench-rtm-")
    try:
        for m in modes:
            source = args.source or f"bench.rtm.{run}.{m}.in"
            out = f"bench.rtm.{run}.{m}.out"
            started = time.monotonic()
            q = query(spark, args, source, out, m, f"{tmp}/{m}")
            res = paced_run(args, source, out, started=started, me=me,
                            publish=not args.source)
            c0, t0 = jvm_cpu(me), time.monotonic()
            time.sleep(args.idle)
            res["jvm_cores_idle"] = round((jvm_cpu(me) - c0) / (time.monotonic() - t0), 3)
            res["query_exception"] = str(q.exception()) if q.exception() else None
            q.stop()
            results[m] = res
            print(json.dumps({m: res}), flush=True)
    finally:
        spark.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        admin.delete_topics(topics)
    print(json.dumps(results, default=str))
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # the py4j gateway must not keep the process alive

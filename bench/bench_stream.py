"""The stream job at hospital scale, against its targets, with baselines from the same run.

    .venv/bin/python bench/bench_stream.py --patients 1000 --duration 600 \\
        --out docs/bench_stream-1000x1hz.json

Kafka and Cassandra must be running (``icu services start``). Everything the run writes
has its own topics, keyspace and checkpoints, dropped at the end. Phases, in order:

1. **ceiling**: the Cassandra-only ceiling of the rows the pipeline writes per reading
   (history, per-minute extremes, latest state, raw message), written by the same code
   as the persist query (``streaming.persist_job``) from a cached DataFrame, no Kafka.
2. **peer**: the architecture of the system we replace, as a baseline: one kafka-python
   consumer applying the reference rule (HR > 120 or SpO2 < 90) and writing each
   reading's history row with cassandra-driver (prepared, concurrent). Its sustained
   throughput: a backlog of ``--backlog`` readings produced as fast as possible while it
   runs, timed until the last row is written.
3. **cold**: ``icu stream run`` started with readings waiting; seconds from the command
   to the first reading on ``vitals.validated``.
4. **idle**: the job's CPU for ``--idle`` s with no device input (its clock still ticks),
   20 s after the cold start; and again after the latency phase, once its backlog is
   gone and ``--settle`` s have passed (``idle_after_load``: a ward gone quiet, with
   the JIT's compilation of the start-up behind it).
5. **latency**: ``--patients`` beds at 1 Hz, paced in real time for ``--duration`` s, with
   the web app's live state (``webapp.live``: a LiveFollower feeding a WardState, as in
   the web process) and the alert manager (``icu alerts manager``) running. Measured per
   reading: device ``ts`` -> on ``vitals.validated`` (a read_committed consumer), -> in
   the ward state a tile is drawn from; per alert event: the ``reading_ts`` of the
   reading that completed the persistence window -> on ``alerts.events``. Halfway, an
   alert storm: ``--storm`` beds cross HR 150 (to 160) in the same second; their raises are
   timed the same way and their rows checked in Cassandra. The backlog (``vitals.raw``
   end offsets minus the alarm query's committed offsets) is sampled every 5 s.
6. **drain**: the same ``--backlog`` as the peer, produced as fast as possible while the
   warm job runs; timed until the last reading is on ``vitals.validated`` and until the
   persist query has committed the batch holding it (every row in Cassandra).
   ``--drain-warmup N`` drains N other readings first, unmeasured (the JIT's warm-up,
   which the drain otherwise has only from the latency phase). ``trace`` holds both
   queries' committed progress every 0.5 s.
7. **alarm alone** (``--alarm-alone``): the same drain by a job without its persist query
   (``icu stream run --no-persist``): the alarm path's own rate. With the ceiling it
   bounds the whole job's drain on shared cores: 1 / (1 / ceiling + 1 / alarm alone).
8. **scale** (``--scale``): the drain again with ``--master local[1]``, a fresh job.

Variants (docs/benchmarks.md, "What the persist query costs the alarm path"):
``--split`` runs the prototype of a split evaluate query (``bench/split_job.py``);
``--no-persist`` the job without its persist query; ``--persist-apart NICE`` the persist
query as its own Spark application (``icu stream persist``) under ``nice``;
``--publisher librdkafka`` sends the paced readings through confluent-kafka instead of
kafka-python (the devices' side of the bench, ~0.1 instead of ~0.3 core).

psutil samples every process tree each second (the job's JVM, Python driver and Python
workers; Kafka; Cassandra; the bench's helpers) for CPU per phase and peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.settings import Settings, get_settings  # noqa: E402
from bench.risk_burst import scoring_batches  # noqa: E402
from bench.split_job import (  # noqa: E402
    alarm_settings,
    fast_checkpoint,
    fast_settings,
    split_topics,
)
from bench.support import (  # noqa: E402
    Sampler,
    cpu_between,
    dist,
    log,
    machine_info,
    now_ms,
)
from harness.isolation import Scratch  # noqa: E402
from harness.process import IcuProcess  # noqa: E402

FORK = multiprocessing.get_context("fork")
# above the default extreme-tachycardia limit (AlarmLimits.hr_above, 150/min): a
# high-priority raise on every storm bed once the persistence window closes
STORM_HR = 160.0
STORM_RULE = "limit_hr_high"
SCENARIOS = {"sepsis": 10, "desaturation": 10, "tachycardia": 10, "hypotension": 10,
             "sensor_disconnect": 5, "motion_artefact": 5}


# --- data --------------------------------------------------------------------------------

def generator_config(patients: int, start_ms: int, *, boot: str = "0", seed: int = 1,
                     duration_s: float | None = None):
    from devices.generator import GeneratorConfig

    return GeneratorConfig(start_ms=start_ms, patients=patients, wards=max(1, patients // 32),
                           rate_hz=1.0, scenario_mix=SCENARIOS if patients >= 100 else None,
                           seed=seed, boot=boot, duration_s=duration_s)


def admit(settings: Settings, patients: int, hour_closes_in: float | None = None) -> None:
    """Admit the beds an hour ago, or so that their first hour closes ``hour_closes_in``
    s from now (every bed at once: the risk query's hourly scoring batch)."""
    from concurrent.futures import ThreadPoolExecutor

    from backend.storage import census
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from devices.generator import plan_patients

    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    admitted = now_ms() - 3_600_000 + int((hour_closes_in or 0) * 1000)
    plans = plan_patients(generator_config(patients, admitted))
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda p: census.admit(session, p.admission(admitted)), plans))
    session.cluster.shutdown()


def backlog_records(patients: int, n: int, boot: str) -> list[tuple[bytes, bytes]]:
    """``n`` readings of the last ``n / patients`` seconds, from devices of their own."""
    from devices.generator import generate
    from devices.wire import to_outgoing

    seconds = n / patients
    cfg = generator_config(patients, now_ms() - int(seconds * 1000) - 5_000, boot=boot,
                           duration_s=seconds)
    return [(o.key, o.value) for o in to_outgoing(generate(cfg))][:n]


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> float:
    """Produce as fast as kafka-python goes; the rate."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                      batch_size=256 * 1024, compression_type="lz4")
    t0 = time.monotonic()
    for key, value in records:
        p.send(topic, key=key, value=value)
    p.flush(120)
    p.close()
    return len(records) / (time.monotonic() - t0)


# --- 1. Cassandra-only ceiling -----------------------------------------------------------

def validated_messages(settings: Settings,
                       records: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The ``vitals.validated`` messages (key, value) the alarm query makes of ``records``."""
    from backend.admission import Admission
    from backend.alerting.evaluation import PatientState, ScoredReading, process
    from backend.validation import Accepted, validate
    from streaming.alarm_evaluator import _Record, _validated_json

    census = {}
    by_patient: dict[str, list] = defaultdict(list)
    for key, value in records:
        pid = key.decode()
        msg = json.loads(value)
        census.setdefault(pid, Admission(patient_id=pid, ward=msg["ward"], bed=msg["bed"],
                                         admitted_ts=0))
        out = validate(value, received_ts=now_ms(), census=census, cfg=settings.alerting)
        if isinstance(out, Accepted):
            by_patient[pid].append(out.reading)
    t = now_ms()
    validated: list[tuple[bytes, bytes]] = []
    for pid, readings in by_patient.items():
        _, results = process(PatientState.new(pid), readings, admission=census[pid],
                             now_ms=t, cfg=settings.alerting)
        scored = [r for r in results if isinstance(r, ScoredReading)]
        # the raw record's place only labels the output; a running number stands in
        first = len(validated)
        validated.extend(
            (pid.encode(), _validated_json(
                r, _Record(None, None, None, None, None, settings.kafka.topic_raw, 0,
                           first + i, t), t))
            for i, r in enumerate(scored))
    return validated


def phase_ceiling(settings: Settings, patients: int, n: int) -> dict:
    """The persist query's own writes of ``n`` readings from memory (no Kafka)."""
    from pyspark.sql import functions as F

    from streaming import persist_job as pj
    from streaming.session import spark_session

    records = backlog_records(patients, n, boot="ceiling")
    validated = [v for _, v in validated_messages(settings, records)]
    t = now_ms()
    spark = spark_session(settings, app_name="bench-ceiling")
    spark.sparkContext.setLogLevel("WARN")
    try:
        raw = spark.createDataFrame(
            [(settings.kafka.topic_raw, 0, i, k, v, t) for i, (k, v) in enumerate(records)],
            "topic string, partition int, offset long, key binary, value binary, ts long",
        ).withColumn("timestamp", F.timestamp_millis("ts")).repartition(2).cache()
        val = spark.createDataFrame([(v,) for v in validated], "value binary") \
            .repartition(2).cache()
        raw.count()
        val.count()
        sink = pj.PersistSink(settings)
        rounds = []
        for _ in range(3):
            t0 = time.monotonic()
            r = sink.hold(pj.readings(val))
            # the rows the persist query writes, as it writes them
            sink.write_all(pj.table_writes(raw=raw, readings=r))
            sink.release(r)
            rounds.append(len(records) / (time.monotonic() - t0))
            log(f"  ceiling round: {rounds[-1]:,.0f} readings/s")
    finally:
        spark.stop()
    return {"readings": len(records), "readings_per_s_rounds": [round(x) for x in rounds],
            "readings_per_s": round(max(rounds)),
            "rows": "raw_messages + readings_by_patient_day + readings_by_patient_minute"
                    " + latest_by_ward, via the Spark Cassandra Connector"}


# --- 2. the peer -------------------------------------------------------------------------

def _peer(bootstrap: str, topic: str, keyspace: str, hosts: list[str], expected: int,
          ready, result) -> None:
    """A kafka-python consumer with the reference rule writing history rows with
    cassandra-driver: the naive design, written well (prepared, concurrent writes)."""
    import datetime as dt

    from cassandra.cluster import Cluster
    from cassandra.concurrent import execute_concurrent_with_args
    from kafka import KafkaConsumer

    session = Cluster(hosts).connect(keyspace)
    insert = session.prepare(
        "INSERT INTO readings_by_patient_day (patient_id, day, ts, device_id, seq, hr, pulse,"
        " spo2, rr, sbp, dbp, map, temp, o2_supplemental, consciousness, processed_ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             max_poll_records=2000)
    consumer.poll(timeout_ms=500)
    ready.set()
    done = alerts = 0
    first = None
    while done < expected:
        polled = consumer.poll(timeout_ms=1000)
        rows = []
        for recs in polled.values():
            for rec in recs:
                m = json.loads(rec.value)
                v = m["vitals"]
                hr, spo2 = v.get("hr"), v.get("spo2")
                if (hr is not None and hr > 120) or (spo2 is not None and 0 < spo2 < 90):
                    alerts += 1
                ts = m["ts"]
                rows.append((m["patient_id"], dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date(),
                             ts, m["device_id"], m["seq"], hr, v.get("pulse"), spo2, v.get("rr"),
                             v.get("sbp"), v.get("dbp"), v.get("map"), v.get("temp"),
                             m.get("o2_supplemental"), m.get("consciousness"), now_ms()))
        if rows:
            first = first or time.monotonic()
            execute_concurrent_with_args(session, insert, rows, concurrency=64,
                                         raise_on_first_error=True)
            done += len(rows)
    result.put({"done": done, "last": time.monotonic(), "first": first, "alerts": alerts})
    session.cluster.shutdown()


def phase_peer(settings: Settings, records: list, sampler: Sampler) -> dict:
    from kafka.admin import KafkaAdminClient, NewTopic

    from backend.storage.cassandra import connect

    topic = settings.kafka.topic_raw + ".peer"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    admin.create_topics([NewTopic(topic, settings.kafka.partitions, 1)])
    keyspace = settings.cassandra.keyspace + "_peer"
    session = connect(settings.cassandra, keyspace=False)
    session.execute(f"CREATE KEYSPACE {keyspace} WITH replication ="
                    " {'class': 'SimpleStrategy', 'replication_factor': 1}")
    ddl = session.execute(f"DESCRIBE TABLE {settings.cassandra.keyspace}.readings_by_patient_day"
                          ).one()["create_statement"]
    session.execute(ddl.replace(f"{settings.cassandra.keyspace}.", f"{keyspace}.", 1))
    ready, result = FORK.Event(), FORK.Queue()
    proc = FORK.Process(target=_peer, args=(settings.kafka.bootstrap, topic, keyspace,
                                            settings.cassandra.hosts, len(records), ready,
                                            result))
    proc.start()
    sampler.watch("peer", proc.pid)
    ready.wait(60)
    a = sampler.snapshot()
    t0 = time.monotonic()
    rate = produce(settings.kafka.bootstrap, topic, records)
    out = result.get(timeout=1800)
    b = sampler.snapshot()
    proc.join(30)
    session.execute(f"DROP KEYSPACE {keyspace}", timeout=120)
    session.cluster.shutdown()
    admin.delete_topics([topic])  # not one of the scratch's topics: its own to drop
    admin.close()
    return {"readings": out["done"], "produce_per_s": round(rate),
            "readings_per_s": round(out["done"] / (out["last"] - t0)),
            "reference_alerts": out["alerts"], "cpu": cpu_between(a, b)}


# --- measuring processes -----------------------------------------------------------------

def _arrivals(settings: Settings, topics: list[str], out_path: str, ready, stop) -> None:
    """Append (topic, arrival ms, patient, ts or reading_ts, extra) of every committed
    message on ``topics`` to ``out_path``, one JSON line per message."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(*topics, bootstrap_servers=settings.kafka.bootstrap,
                             group_id=None, auto_offset_reset="latest",
                             isolation_level="read_committed", fetch_max_wait_ms=20,
                             enable_auto_commit=False)
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    consumer.seek_to_end()
    for tp in consumer.assignment():
        consumer.position(tp)
    ready.set()
    validated = settings.kafka.topic_validated
    fast = split_topics(settings)[0]
    with open(out_path, "w") as f:
        while not stop.is_set():
            for tp, recs in consumer.poll(timeout_ms=200).items():
                arrived = now_ms()
                for rec in recs:
                    m = json.loads(rec.value)
                    if tp.topic == validated:
                        f.write(f'["v",{arrived},{m["ts"]},{rec.timestamp}]\n')
                    elif tp.topic == fast:
                        f.write(f'["f",{arrived},{m["ts"]},{rec.timestamp}]\n')
                    else:
                        f.write(json.dumps(["a", arrived, m["reading_ts"], rec.timestamp,
                                            m["event"], m["rule"], m["patient_id"],
                                            m["alert_id"]]) + "\n")
    consumer.close()


def _ward_state(settings: Settings, out_path: str, ready, stop) -> None:
    """The web process's live state (webapp.live), timed: when each reading is in the
    state a tile is drawn from."""
    from webapp.live.follower import LiveFollower
    from webapp.live.state import WardState

    state = WardState.from_settings(settings)
    f = open(out_path, "w")  # noqa: SIM115
    original = state.apply_reading

    def apply_reading(r):
        changed = original(r)
        if changed:
            f.write(f"{now_ms() - r.ts}\n")
        return changed

    state.apply_reading = apply_reading
    follower = LiveFollower(settings, state).start()
    follower.synced.wait(120)
    ready.set()
    stop.wait()
    follower.stop()
    f.close()


class _Librdkafka:
    """confluent-kafka's producer (librdkafka, C) with kafka-python's ``send`` and
    ``flush``: the same records, acks and compression at a fraction of the CPU."""

    def __init__(self, bootstrap: str, linger_ms: int) -> None:
        from confluent_kafka import Producer

        self._p = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                            "linger.ms": linger_ms, "compression.type": "lz4",
                            "enable.idempotence": False})

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._p.produce(topic, value=value, key=key)
                break
            except BufferError:  # its queue is full: let it deliver
                self._p.poll(0.01)
        self._p.poll(0)

    def flush(self, timeout: float) -> None:
        self._p.flush(timeout)

    def close(self) -> None:
        self._p.flush(10)


def _paced(settings: Settings, patients: int, seconds: float, storm: int, storm_at: float,
           ready, go, publisher: str = "kafka-python") -> None:
    """``patients`` at 1 Hz in real time: each reading sent when the wall clock reaches
    its device timestamp. From ``storm_at`` s on, ``storm`` stable beds read HR 160.
    ``publisher``: the Kafka client that sends them (kafka-python or librdkafka)."""
    from kafka import KafkaProducer

    from devices.generator import generate, plan_patients
    from devices.wire import encode

    start = (now_ms() // 1000 + 3) * 1000
    cfg = generator_config(patients, start, duration_s=seconds)
    stormers = {p.patient_id for p in plan_patients(cfg) if p.scenario == "stable"}
    stormers = set(sorted(stormers)[:storm])
    if publisher == "librdkafka":
        producer = _Librdkafka(settings.kafka.bootstrap, linger_ms=2)
    else:
        producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                                 linger_ms=2, compression_type="lz4")
    ready.set()
    go.wait()
    storm_ms = start + storm_at * 1000
    topic = settings.kafka.topic_raw
    for pid, reading in generate(cfg):
        if reading.ts >= storm_ms and pid in stormers:
            reading.vitals["hr"] = STORM_HR
        delay = (reading.ts - now_ms()) / 1000
        if delay > 0:
            time.sleep(delay)
        producer.send(topic, key=pid.encode(), value=encode(reading))
    producer.flush(60)
    producer.close()


# --- the job -----------------------------------------------------------------------------

def committed_offsets(checkpoint: Path) -> dict[str, int]:
    """Per topic, the sum of a query's committed end offsets (Spark's checkpoint)."""
    commits = max((int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")),
                  default=None)
    if commits is None:
        return {}
    lines = (checkpoint / "offsets" / str(commits)).read_text().splitlines()
    totals: dict[str, int] = defaultdict(int)
    for line in lines[2:]:
        with contextlib.suppress(ValueError):
            for topic, parts in json.loads(line).items():
                totals[topic] += sum(parts.values())
    return totals


def end_offsets(settings: Settings, topic: str) -> int:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    c = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap)
    tps = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic) or ()]
    total = sum(c.end_offsets(tps).values())
    c.close()
    return total


def job_process(settings: Settings, workdir: Path, name: str, *, split: bool = False,
                persist: bool = True) -> IcuProcess:
    if split:
        return IcuProcess(settings, [], workdir / f"{name}.log",
                          ready_text="alarm query running", module="bench.split_job")
    return IcuProcess(settings, ["stream", "run", *([] if persist else ["--no-persist"])],
                      workdir / f"{name}.log", ready_text="alarm query running")


def persist_process(settings: Settings, workdir: Path, nice: int) -> IcuProcess:
    """The persist query in a Spark application of its own, ``nice``d."""
    return IcuProcess(settings, ["stream", "persist"], workdir / "persist.log",
                      ready_text="persist query running", nice=nice)


def evaluate_checkpoint(settings: Settings) -> Path:
    from streaming.vitals_job import checkpoint_location

    return checkpoint_location(settings)


def persist_checkpoint(settings: Settings) -> Path:
    from streaming.persist_job import persist_checkpoint_dir

    return persist_checkpoint_dir(settings)


def phase_drain(settings: Settings, records: list, sampler: Sampler,
                timeout: float = 1800, *, persist_query: bool = True) -> dict:
    """The warm job drains a backlog produced as fast as possible. Without
    ``persist_query`` (a job run with ``--no-persist``) it is timed until the alarm query
    has evaluated the backlog, and ``readings_per_s`` is that rate."""
    raw_before = end_offsets(settings, settings.kafka.topic_raw)
    validated_before = end_offsets(settings, settings.kafka.topic_validated)
    a = sampler.snapshot()
    t0 = time.monotonic()
    rate = produce(settings.kafka.bootstrap, settings.kafka.topic_raw, records)
    raw_target = raw_before + len(records)
    evaluated_at = persisted_at = None
    # (s since the start, raw records evaluated, validated records persisted), both as
    # committed by their query: where in the drain each query was slower
    trace: list[tuple[float, int, int]] = []
    while time.monotonic() - t0 < timeout and persisted_at is None:
        time.sleep(0.5)
        evaluated = committed_offsets(evaluate_checkpoint(settings)).get(
            settings.kafka.topic_raw, 0)
        persisted = committed_offsets(persist_checkpoint(settings)).get(
            settings.kafka.topic_validated, validated_before) if persist_query else 0
        trace.append((round(time.monotonic() - t0, 1), evaluated - raw_before,
                      max(0, persisted - validated_before)))
        if evaluated_at is None and evaluated >= raw_target:
            evaluated_at = time.monotonic()
            validated_target = end_offsets(settings, settings.kafka.topic_validated)
        if evaluated_at is not None and (not persist_query or persisted >= validated_target):
            persisted_at = time.monotonic()
    b = sampler.snapshot()
    if persisted_at is None:
        raise RuntimeError("the drain did not finish in time")
    published = validated_target - validated_before
    return {"records": len(records), "produce_per_s": round(rate),
            "published_readings": published, "persist_query": persist_query,
            "evaluate_s": round(evaluated_at - t0, 1), "persist_s": round(persisted_at - t0, 1),
            "evaluate_per_s": round(len(records) / (evaluated_at - t0)),
            "readings_per_s": round(len(records) / (persisted_at - t0)),
            "cpu": cpu_between(a, b), "trace": trace}


def warm_up_drain(settings: Settings, args, sampler: Sampler, *, boot: str,
                  persist_query: bool = True) -> dict | None:
    """``--drain-warmup``: that many other readings drained, then ``--settle`` s of rest,
    before a measured drain by the same job."""
    if not args.drain_warmup:
        return None
    log(f"drain warm-up (not measured): {args.drain_warmup:,} readings")
    warm = phase_drain(settings, backlog_records(args.patients, args.drain_warmup, boot=boot),
                       sampler, persist_query=persist_query)
    time.sleep(args.settle)
    return {k: v for k, v in warm.items() if k != "trace"}


def phase_alarm_alone(settings: Settings, args, workdir: Path, sampler: Sampler) -> dict:
    """The same drain by a job without its persist query (``--no-persist``: the alarm and
    risk queries), warmed up the same way: the alarm path's own rate, which with the
    ceiling bounds what the whole job can drain on the same cores."""
    job = job_process(settings, workdir, "job-alarm-alone", persist=False)
    job.start()
    try:
        sampler.watch("job", job.pid)
        time.sleep(20)
        warm_up_drain(settings, args, sampler, boot="warm2", persist_query=False)
        log(f"alarm query alone: {args.backlog:,} readings")
        return phase_drain(settings, backlog_records(args.patients, args.backlog,
                                                     boot="alone"),
                           sampler, persist_query=False)
    finally:
        job.stop()


# --- 5. latency --------------------------------------------------------------------------

def phase_latency(settings: Settings, args, workdir: Path, sampler: Sampler,
                  job: IcuProcess) -> dict:
    from backend.storage.cassandra import connect

    arrivals = workdir / "arrivals.jsonl"
    ward = workdir / "ward.txt"
    stop = FORK.Event()
    ready = [FORK.Event() for _ in range(3)]
    go = FORK.Event()
    followed = [settings.kafka.topic_validated, settings.kafka.topic_alerts]
    screens = fast_settings(settings) if args.split else settings  # what the ward follows
    if args.split:
        followed.append(screens.kafka.topic_validated)
    consumer = FORK.Process(target=_arrivals, args=(settings, followed, str(arrivals),
                                                    ready[0], stop))
    web = FORK.Process(target=_ward_state, args=(screens, str(ward), ready[1], stop))
    storm_at = args.duration / 2
    paced = FORK.Process(target=_paced, args=(settings, args.patients, args.duration,
                                              args.storm, storm_at, ready[2], go,
                                              args.publisher))
    manager = IcuProcess(settings, ["alerts", "manager"], workdir / "manager.log")
    for p in (consumer, web, paced):
        p.start()
    manager.start()
    for name, p in (("consumer", consumer), ("ward_state", web), ("publisher", paced)):
        sampler.watch(name, p.pid)
    sampler.watch("alert_manager", manager.pid)
    for e in ready:
        e.wait(180)
    log(f"latency: {args.patients} beds at 1 Hz for {args.duration:.0f} s"
        f" (storm of {args.storm} beds at {storm_at:.0f} s)")
    a = sampler.snapshot()
    t_start = now_ms()
    go.set()
    lag: list[tuple[float, int]] = []
    first_query = fast_checkpoint(settings) if args.split else evaluate_checkpoint(settings)
    while paced.is_alive():
        time.sleep(5)
        lag.append((round((now_ms() - t_start) / 1000),
                    end_offsets(settings, settings.kafka.topic_raw)
                    - committed_offsets(first_query).get(settings.kafka.topic_raw, 0)))
    b = sampler.snapshot()
    time.sleep(args.tail)
    stop.set()
    for p in (consumer, web):
        p.join(60)
    manager.stop()

    warm = t_start + args.warmup * 1000
    to_validated, to_fast, raises, storm = [], [], [], []
    storm_ids = []
    for line in arrivals.read_text().splitlines():
        rec = json.loads(line)
        if rec[2] < warm:
            continue
        if rec[0] == "v":
            to_validated.append(rec[1] - rec[2])
        elif rec[0] == "f":
            to_fast.append(rec[1] - rec[2])
        elif rec[4] == "raised" and rec[5] != "stale_signal":
            raises.append(rec[1] - rec[2])
            if rec[5] == STORM_RULE and \
                    rec[2] >= t_start + storm_at * 1000:
                storm.append(rec[1] - rec[2])
                storm_ids.append((rec[7], rec[3]))
    tiles = [float(x) for x in ward.read_text().split()]
    session = connect(settings.cassandra)
    stored_first = 0
    for alert_id, published_ms in storm_ids:
        row = session.execute("SELECT detected_ts FROM alerts WHERE alert_id = %s",
                              (alert_id,)).one()
        if row is not None and row["detected_ts"].timestamp() * 1000 <= published_ms + 1:
            stored_first += 1
    session.cluster.shutdown()
    return {
        "patients": args.patients, "seconds": args.duration, "warmup_s": args.warmup,
        "device_to_validated_ms": dist(to_validated),
        **({"device_to_fast_ms": dist(to_fast)} if args.split else {}),
        "reading_to_alert_event_ms": dist(raises),
        "storm": {"beds": args.storm, "raise_events": len(storm),
                  "beds_raised": len({alert_id for alert_id, _ in storm_ids}),
                  "reading_to_alert_event_ms": dist(storm),
                  "stored_before_published": stored_first},
        "device_to_ward_state_ms": dist(tiles[len(tiles) // 20:]),
        # when the risk query stored an hourly scoring of (nearly) every bed, s into the phase
        "risk_scoring_batches_s": [round(t - t_start / 1000, 1) for t in
                                   scoring_batches(job.log_path, args.patients // 2)],
        "backlog_records_every_5s": lag,
        "cpu": cpu_between(a, b),
    }


def phase_idle_after_load(settings: Settings, args, sampler: Sampler) -> dict:
    """The job's CPU with no input once it has drained the paced phase's readings and
    rested ``--settle`` s."""
    deadline = time.monotonic() + 300
    # the alarm query's input: the split prototype's micro-batch variant feeds it <raw>.accepted
    source = (alarm_settings(settings) if args.split else settings).kafka.topic_raw
    while (end_offsets(settings, source)
           > committed_offsets(evaluate_checkpoint(settings)).get(source, 0)
           and time.monotonic() < deadline):
        time.sleep(1)
    time.sleep(args.settle)
    a = sampler.snapshot()
    time.sleep(args.idle)
    return cpu_between(a, sampler.snapshot()) | {"settle_s": args.settle}


# --- main --------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--patients", type=int, default=1000)
    p.add_argument("--duration", type=float, default=600, help="paced latency phase, s")
    p.add_argument("--warmup", type=float, default=30, help="not measured, s")
    p.add_argument("--tail", type=float, default=15, help="wait after the paced phase, s")
    p.add_argument("--storm", type=int, default=100, help="beds raising at once")
    p.add_argument("--backlog", type=int, default=200_000, help="readings to drain")
    p.add_argument("--drain-warmup", type=int, default=0, metavar="N",
                   help="drain N other readings first, not measured (the JIT's warm-up,"
                        " which the recorded drains had from the latency phase)")
    p.add_argument("--alarm-alone", action="store_true",
                   help="after the drain, drain again with a job without its persist query"
                        " (the alarm path's own rate; with the ceiling, the bound on the"
                        " whole job's drain)")
    p.add_argument("--ceiling-readings", type=int, default=100_000)
    p.add_argument("--idle", type=float, default=60)
    p.add_argument("--hour-close-at", type=float, default=None, metavar="S",
                   help="admit the beds so that every bed's hour closes about S s into the"
                        " paced phase (the risk query scores them all in one batch);"
                        " default: when the paced phase starts (the cold start's readings"
                        " are the first hour's)")
    p.add_argument("--settle", type=float, default=60,
                   help="rest after the paced phase's backlog is gone, before idle_after_load")
    p.add_argument("--skip", default="", help="comma-separated phases to skip")
    p.add_argument("--scale", action="store_true", help="also drain with local[1]")
    p.add_argument("--master", default=None)
    p.add_argument("--publisher", choices=["kafka-python", "librdkafka"],
                   default="kafka-python",
                   help="the paced devices' Kafka client: kafka-python (the recorded runs;"
                        " ~0.3 core at 1,000 readings/s) or librdkafka (confluent-kafka, C)")
    p.add_argument("--no-persist", action="store_true",
                   help="the job without its persist query (nothing reaches Cassandra: a"
                        " measurement of what the persist query costs the latency path)")
    p.add_argument("--persist-apart", type=int, default=None, metavar="NICE",
                   help="the persist query in a Spark application of its own (`icu stream"
                        " persist`) under this nice value, beside `icu stream run --no-persist`")
    p.add_argument("--split", nargs="?", const="microbatch", default=None,
                   choices=["microbatch", "continuous"],
                   help="run the split prototype (bench/split_job.py) instead of the shipped"
                        " job; the ward screens follow its fast topic (no drain or scale);"
                        " continuous: its fast query under continuous processing, beside the"
                        " shipped alarm query")
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    base = get_settings()
    from ops import services

    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    spark = {"master": args.master} if args.master else {}
    # Bed silence is not part of this bench: beds go quiet between phases.
    scratch = Scratch()
    settings = scratch.isolate(base, workdir / "checkpoint-s" / "vitals", marker="bs",
                               allow_insecure_services=True, spark=spark,
                               alerting={"stale_after_seconds": 3600.0})
    hour_closes_in = None
    if args.hour_close_at is not None:
        # when the paced phase will start: the cold start (~15-25 s), 20 s, the idle phase
        before_paced = 25 + 20 + (0 if "idle" in skip else args.idle) + 5
        hour_closes_in = before_paced + args.hour_close_at
    admit(settings, args.patients, hour_closes_in)
    if (args.split or args.no_persist) and not ({"drain"} <= skip and not args.scale):
        raise SystemExit("--split, --no-persist: the drain and scale phases measure the"
                         " shipped job's persisted rows; add --skip drain, leave out --scale")
    if args.split:
        os.environ["ICU_BENCH_FAST"] = args.split  # the job inherits it
        from ops.topics import ensure_topics

        ensure_topics(alarm_settings(settings))  # <raw>.accepted
        ensure_topics(fast_settings(settings))  # <validated>.fast
        scratch.topics.extend(split_topics(settings))
    result: dict = {"machine": machine_info(), "args": vars(args) | {"out": str(args.out)},
                    "settings": {"spark": settings.spark.model_dump(mode="json"),
                                 "alerting": settings.alerting.model_dump(mode="json")}}
    sampler = Sampler()
    for name, server in services.status(base).items():
        sampler.watch(name, server.pid)
    sampler.start()
    job = apart = None
    try:
        backlog = backlog_records(args.patients, args.backlog, boot="drain")
        if "ceiling" not in skip:
            log("ceiling: the persist query's writes from memory")
            result["ceiling"] = phase_ceiling(settings, args.patients, args.ceiling_readings)
        if "peer" not in skip:
            log(f"peer: plain consumer draining {len(backlog):,} readings")
            result["peer"] = phase_peer(settings, backlog, sampler)
            log(f"  peer: {result['peer']['readings_per_s']:,} readings/s")
        # 3. cold start, with one reading per patient waiting
        produce(settings.kafka.bootstrap, settings.kafka.topic_raw,
                backlog_records(args.patients, args.patients, boot="cold"))
        job = job_process(settings, workdir, "job", split=args.split,
                          persist=not (args.no_persist or args.persist_apart is not None))
        if args.persist_apart is not None:
            apart = persist_process(settings, workdir, args.persist_apart)
            apart.start()
            sampler.watch("job_persist", apart.pid)
        t0 = time.monotonic()
        ready = FORK.Event()
        stop = FORK.Event()
        first = workdir / "first.jsonl"
        cold_topic = (fast_settings(settings) if args.split else settings).kafka.topic_validated
        probe = FORK.Process(target=_arrivals, args=(settings, [cold_topic],
                                                     str(first), ready, stop))
        probe.start()
        ready.wait(60)
        t0 = time.monotonic()
        job.start()
        sampler.watch("job", job.pid)
        while not (first.exists() and first.stat().st_size):
            time.sleep(0.05)
        # the probe joined at the end: what it saw was published after the start
        result["cold_start_s"] = round(time.monotonic() - t0, 1)
        stop.set()
        probe.join(30)
        log(f"cold start to the first published reading: {result['cold_start_s']} s")
        time.sleep(20)
        if "idle" not in skip:
            a = sampler.snapshot()
            time.sleep(args.idle)
            result["idle"] = cpu_between(a, sampler.snapshot())
            log(f"idle: job {result['idle']['job_cores']} cores")
        if "latency" not in skip:
            result["latency"] = phase_latency(settings, args, workdir, sampler, job)
            lat = result["latency"]
            log(f"  to vitals.validated {lat['device_to_validated_ms']}")
            log(f"  to ward state {lat['device_to_ward_state_ms']}")
            log(f"  alerts {lat['reading_to_alert_event_ms']}; storm {lat['storm']}")
            if "idle" not in skip:
                result["idle_after_load"] = phase_idle_after_load(settings, args, sampler)
                log(f"idle after the load: job {result['idle_after_load']['job_cores']} cores")
        if "drain" not in skip:
            warm = warm_up_drain(settings, args, sampler, boot="warm")
            if warm is not None:
                result["drain_warmup"] = warm
            log(f"drain: {len(backlog):,} readings")
            result["drain"] = phase_drain(settings, backlog, sampler)
            log(f"  drain: {result['drain']['readings_per_s']:,} readings/s persisted,"
                f" {result['drain']['evaluate_per_s']:,}/s evaluated")
        result["peak_rss_mib"] = sampler.peaks_mib()
        job.stop()
        job = None
        if apart is not None:
            apart.stop()
            apart = None
        if args.alarm_alone:
            result["drain_alarm_alone"] = phase_alarm_alone(settings, args, workdir, sampler)
            log(f"  alarm query alone: {result['drain_alarm_alone']['readings_per_s']:,}"
                " readings/s evaluated")
        if args.scale:
            for master in ("local[1]", "local[2]"):
                s2 = scratch.isolate(base, workdir / f"checkpoint-{master}" / "vitals",
                                     marker="bx", allow_insecure_services=True,
                                     spark={"master": master},
                                     alerting={"stale_after_seconds": 3600.0})
                admit(s2, args.patients)
                j2 = job_process(s2, workdir, f"job-{master}")
                j2.start()
                sampler.watch("job", j2.pid)
                time.sleep(20)
                log(f"scale: drain with {master}")
                result.setdefault("scale", {})[master] = phase_drain(s2, backlog, sampler)
                j2.stop()
        summarize(result)
    finally:
        for proc in (job, apart):
            if proc is not None:
                proc.stop()
        sampler.stop()
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
            log(f"written {args.out}")
        scratch.drop(settings)
    return 0


def summarize(r: dict) -> None:
    rows = []
    if "peer" in r and "drain" in r:
        peer, drain = r["peer"]["readings_per_s"], r["drain"]["readings_per_s"]
        rows.append(("drain, readings/s (persisted)", f"{drain:,}",
                     f"peer {peer:,}: x{drain / peer:.2f} (target >= 1.5)"))
    if "ceiling" in r and "drain_alarm_alone" in r:
        c, a = r["ceiling"]["readings_per_s"], r["drain_alarm_alone"]["readings_per_s"]
        rows.append(("drain if the two shared the CPU", f"{1 / (1 / c + 1 / a):,.0f}",
                     f"1 / (1 / ceiling {c:,} + 1 / alarm query alone {a:,})"))
    if "ceiling" in r and "drain" in r:
        c = r["ceiling"]["readings_per_s"]
        rows.append(("ceiling of the same rows", f"{c:,}",
                     f"drain / ceiling {r['drain']['readings_per_s'] / c:.0%} (target >= 60 %)"))
    if "latency" in r:
        lat = r["latency"]
        rows.append(("device -> vitals.validated", json.dumps(lat["device_to_validated_ms"]),
                     "target p50 <= 1000, p99 <= 2000"))
        if "device_to_fast_ms" in lat:
            rows.append(("device -> fast topic (split)", json.dumps(lat["device_to_fast_ms"]),
                         "target p50 <= 1000, p99 <= 2000"))
        rows.append(("reading -> alerts.events", json.dumps(lat["reading_to_alert_event_ms"]),
                     "target p99 <= 2000"))
        rows.append(("storm", json.dumps(lat["storm"]), ""))
        rows.append(("device -> ward state", json.dumps(lat["device_to_ward_state_ms"]),
                     "target p99 <= 3000"))
    if "idle" in r:
        rows.append(("idle job cores", str(r["idle"]["job_cores"]), "target <= 0.15"))
    if "idle_after_load" in r:
        rows.append(("idle job cores after the load", str(r["idle_after_load"]["job_cores"]),
                     "target <= 0.15"))
    if "cold_start_s" in r:
        rows.append(("cold start, s", str(r["cold_start_s"]), "target <= 20"))
    if "peak_rss_mib" in r:
        rows.append(("peak RSS MiB", json.dumps(r["peak_rss_mib"]), ""))
    for name, value, note in rows:
        print(f"{name:34s} {value}  {note}")


if __name__ == "__main__":
    code = 1
    try:
        code = main()
    except KeyboardInterrupt:
        pass
    except SystemExit as exit_:  # --help, a refused combination of options
        code = exit_.code
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        for child in multiprocessing.active_children():
            child.kill()
        sys.stdout.flush()
        sys.stderr.flush()
        # the ceiling phase's py4j gateway and forked helpers must not keep us alive
        os._exit(code)

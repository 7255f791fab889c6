"""End-to-end benchmark of the real pipeline: devices -> Kafka -> Spark job -> Cassandra + Kafka.

    .venv/bin/python bench/bench_pipeline.py --patients 1000 --rate 1 --duration 60 \\
        --out docs/bench_pipeline-1000x1hz.json

Kafka and Cassandra must be running (``icu services start``; they are started if they are
local and down). Everything the run writes is isolated: its own topics
(``<topic>.bench<hex>``, created by ``ops.services.ensure_topics``), its own keyspace
(``icu_bench_pipe_<hex>``, created by ``backend.storage.migrate``) and Spark checkpoint, all
removed at the end (``--keep-data`` keeps them). The stream job is the real one:
``icu stream run`` in its own process, configured only through ``Settings``.

Phases, in this order (each bounded; the whole run takes 6-10 minutes):

1. **Cassandra-only ceiling**: ``ReadingStore.write`` of ``--cassandra-rows`` realistic
   ``ValidatedReading`` s (the simulator's readings validated and scored by
   ``backend.validation`` / ``backend.alerting.evaluation``, built as the evaluator builds
   them), in chunks of ``--chunk`` rows as the sink writes a micro-batch; then the whole
   per-reading Cassandra work of the sink (raw message + history + latest state), and
   ``AlertStore.raise_alert`` one alert after the other as the sink does. Then, outside
   Spark: ``VitalsSink.write`` of a ``--chunk`` batch, timed stage by stage and under
   cProfile (where the driver's time goes), and the job's per-patient function
   (``streaming.evaluator``) on pandas frames shaped as Spark passes them, with one and
   with many readings per call (its cost per call and per reading).
2. **Kafka-only ceiling**: ``--kafka-messages`` simulator messages (the real wire bytes of
   ``devices.generator``) produced to a topic of their own by ``--kafka-workers``
   processes with the simulator's producer settings (``devices.publisher.ProducerOptions``:
   acks=all, idempotent, linger 20 ms, 256 KiB batches, lz4), then consumed back by as many
   kafka-python consumers (read_committed).
3. The stream job starts (``icu stream run``, empty topics) and is primed: ``--prime-rounds``
   rounds of one normal reading per patient (from a device id of its own), each waited
   for, so that the Python workers, their census caches and the JIT are warm, as in a
   system that has been running. The first round's time is the cold-start cost; the last
   round's CPU per patient is what one call of the per-patient function costs in Spark.
   Then ``--idle`` s without input: what the job costs when nothing arrives.
4. **Latency**: ``--patients`` x ``--rate`` Hz paced in real time (each message sent when
   the wall clock reaches its device timestamp) for ``--warmup`` + ``--duration`` s. A
   read_committed consumer timestamps every validated reading and alert event on arrival;
   another process polls the ``alerts`` table by id for every alert the injected
   conditions must raise and notes when the row is first readable. Alerts come from the
   generator's scenarios and, regularly, from injected conditions: ``--alert-fraction``
   of the stable patients have HR/pulse 128/min for ``--alert-on`` s out of every
   ``--alert-period`` s (reference rule HR > 120). For the bench the alarm persistence is
   2 s and the clear delay 3 s (defaults 10 s / 30 s) and the stale-bed timeout 1 h (so
   patients going silent between phases raise no alarm storm); latency is measured from
   the triggering reading's device timestamp, so the persistence itself is not in it.
   Readings still unprocessed after ``--tail-timeout`` s are waited for (at most 150 s)
   before phase 5, outside the measurement.
5. **Paced load, then drain**: ``--load-patients`` at ``--load-rate`` readings/s in
   total, paced in real time for ``--load-duration`` s by ``--kafka-workers`` processes:
   the job's rate while the devices publish. When the rate is above what the pipeline
   sustains, the devices leave a backlog in Kafka; the rate at which the job drains it
   once they stop (nothing else of the bench running) is the sustained throughput. Both
   rates come from the sink's per-batch log lines (``batch N: R readings ... in T ms``,
   logged after the Kafka transaction commits, i.e. once the readings are in Cassandra
   and visible on vitals.validated); a batch is taken to start when the previous ends.

Throughout, psutil samples the stream job's process tree (Python driver, Spark JVM,
Python workers), Kafka, Cassandra and this benchmark's own processes every second: peak
RSS and CPU seconds per phase, plus the machine's total CPU, so that the share other
programs took from the cores is visible. Per micro-batch, the time from planning to the
sink call, the execution (``toPandas``: Kafka read, shuffle, Python workers, state store),
the sink's writes and the commit come from the checkpoint (``offsets/N``, ``commits/N``)
and the job's log. Java Flight Recorder profiles the Spark JVM in phases 4 and 5 (``jcmd``;
``--no-jfr`` skips it). Records are generated before any timed phase (the generator costs
~70 us per record); at send time only their device timestamp is shifted to the wall clock.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import heapq
import io
import itertools
import json
import math
import multiprocessing
import os
import platform
import pstats
import queue as queue_mod
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.settings import Settings  # noqa: E402
from backend.vitals import Vital  # noqa: E402

# Placeholder start of generated timelines: 13 digits like every real timestamp, so that
# shifting a message's timestamp never changes its length.
PLACEHOLDER_MS = 1_800_000_000_000
FORK = multiprocessing.get_context("fork")
ALERT_HR = 128.0  # > reference_hr_above (120), NEWS2 HR band 111-130 (2 points, no red flag)
BENCH_PERSISTENCE_S = 2.0
BENCH_CLEAR_S = 3.0
BENCH_STALE_S = 3600.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def now_ms() -> float:
    return time.time() * 1000.0


# ---------------------------------------------------------------------------------------
# Statistics


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    if lo == hi:
        return sorted_values[lo]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def dist(values: Iterable[float]) -> dict:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "mean": round(sum(v) / len(v), 1),
            **{f"p{q}": round(percentile(v, q), 1) for q in (50, 95, 99)},
            "max": round(v[-1], 1)}


# ---------------------------------------------------------------------------------------
# Machine and process sampling


def machine_info() -> dict:
    from ops import services as svc

    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True,
                              timeout=20).stderr.splitlines()[0]
    except Exception as exc:  # report, do not fail the run
        java = repr(exc)
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        commit = ""
    return {
        "hostname": platform.node(), "nproc": os.cpu_count(), "cpu_model": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "ram_available_gib": round(psutil.virtual_memory().available / 2**30, 1),
        "kernel": platform.release(), "python": platform.python_version(), "java": java,
        "kafka": svc.KAFKA_VERSION, "cassandra": svc.CASSANDRA_VERSION,
        "spark": svc.SPARK_VERSION, "git_commit": commit,
    }


def busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


GROUPS = ("job_driver_py", "job_jvm", "job_workers_py", "kafka", "cassandra", "bench")


class Sampler(threading.Thread):
    """Every ``interval`` s: RSS and CPU time of each process, grouped (``GROUPS``)."""

    def __init__(self, kafka_pid: int | None, cassandra_pid: int | None,
                 interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="sampler")
        self.interval = interval
        self.fixed = {"kafka": kafka_pid, "cassandra": cassandra_pid}
        self.job_root: int | None = None
        self._procs: dict[int, psutil.Process] = {}
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (group, last seen cpu s)
        self.peak: dict[str, float] = defaultdict(float)  # group -> peak RSS (bytes)
        self.load: list[tuple[float, float]] = []  # (time, 1-min load average)
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None:
            p = self._procs[pid] = psutil.Process(pid)
        return p

    def _members(self) -> list[tuple[str, psutil.Process]]:
        out: list[tuple[str, psutil.Process]] = []
        job_pids: set[int] = set()
        if self.job_root is not None:
            with contextlib.suppress(psutil.Error):
                root = self._proc(self.job_root)
                out.append(("job_driver_py", root))
                job_pids.add(root.pid)
                for child in root.children(recursive=True):
                    job_pids.add(child.pid)
                    try:
                        name = child.name()
                    except psutil.Error:
                        continue
                    group = "job_jvm" if "java" in name else "job_workers_py"
                    if group == "job_workers_py" and "python" not in name:
                        group = "job_driver_py"  # the shell spark-submit goes through
                    out.append((group, self._proc(child.pid)))
        for group, pid in self.fixed.items():
            if pid:
                with contextlib.suppress(psutil.Error):
                    out.append((group, self._proc(pid)))
        with contextlib.suppress(psutil.Error):
            me = self._proc(os.getpid())
            out.append(("bench", me))
            for child in me.children(recursive=True):
                if child.pid not in job_pids:
                    out.append(("bench", self._proc(child.pid)))
        return out

    def sample(self) -> None:
        rss: dict[str, float] = defaultdict(float)
        for group, proc in self._members():
            try:
                with proc.oneshot():
                    ct = proc.cpu_times()
                    mem = proc.memory_info().rss
            except psutil.Error:
                self._procs.pop(proc.pid, None)
                continue
            with self._lock:
                self.cpu[proc.pid] = (group, ct.user + ct.system)
            rss[group] += mem
        rss["job_total"] = sum(rss[g] for g in GROUPS if g.startswith("job_"))
        for group, value in rss.items():
            self.peak[group] = max(self.peak[group], value)
        self.load.append((time.time(), os.getloadavg()[0]))

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            with contextlib.suppress(Exception):
                self.sample()

    def stop(self) -> None:
        self._halt.set()

    def snapshot(self) -> dict:
        self.sample()
        with self._lock:
            cpu: dict[str, float] = defaultdict(float)
            for group, seconds in self.cpu.values():
                cpu[group] += seconds
        return {"t": time.time(), "cpu": dict(cpu), "busy": busy_seconds()}


def cpu_between(a: dict, b: dict, load: list[tuple[float, float]]) -> dict:
    """CPU seconds per group between two snapshots, machine total, and what others used."""
    wall = b["t"] - a["t"]
    groups = {g: round(b["cpu"].get(g, 0.0) - a["cpu"].get(g, 0.0), 2) for g in GROUPS}
    ours = sum(groups.values())
    busy = b["busy"] - a["busy"]
    loads = [v for t, v in load if a["t"] <= t <= b["t"]]
    return {
        "wall_s": round(wall, 2), "cpu_s": groups, "cpu_s_ours": round(ours, 2),
        "cpu_s_machine": round(busy, 2),
        "cpu_s_other_programs": round(max(0.0, busy - ours), 2),
        "cores_busy": round(busy / wall, 2) if wall > 0 else None,
        "load1_mean": round(sum(loads) / len(loads), 2) if loads else None,
        "load1_max": round(max(loads), 2) if loads else None,
    }


# ---------------------------------------------------------------------------------------
# Records: generated once, before any timed phase


@dataclass
class Overlay:
    """Injected alarm conditions: HR/pulse ``ALERT_HR`` for ``on_s`` of every ``period_s``."""

    patients: dict[str, float]  # patient id -> phase offset (s)
    period_s: float
    on_s: float
    persistence_ms: float
    clear_ms: float


def _gen_share(cfg, worker: int, workers: int, overlay: Overlay | None):
    """One share of a generator's records as (key, value, ts), and the alert changes the
    overlay must cause (the rule engine's persistence/clear logic for one rule)."""
    from devices.generator import generate, plan_patients
    from devices.wire import encode

    plans = plan_patients(cfg)[worker::workers]
    records: list[tuple[bytes, bytes, int]] = []
    expected: list[dict] = []
    state: dict[str, dict] = {}
    hr, pulse = Vital.HR, Vital.PULSE
    for pid, reading in generate(cfg, plans):
        ts = reading.ts
        if overlay is not None and pid in overlay.patients:
            rel = (ts - cfg.start_ms) / 1000.0 + overlay.patients[pid]
            holds = rel % overlay.period_s < overlay.on_s
            if holds:
                reading.vitals[hr] = ALERT_HR
                reading.vitals[pulse] = ALERT_HR
            st = state.setdefault(pid, {"active": False, "cond": None, "clear": None})
            if holds:
                st["clear"] = None
                if st["cond"] is None:
                    st["cond"] = ts
                if not st["active"] and ts - st["cond"] >= overlay.persistence_ms:
                    st["active"] = True
                    st["onset"] = st["cond"]
                    expected.append({"patient_id": pid, "event": "raised",
                                     "onset_ts": st["cond"], "reading_ts": ts})
            elif st["active"]:
                if st["clear"] is None:
                    st["clear"] = ts
                if ts - st["clear"] >= overlay.clear_ms:
                    expected.append({"patient_id": pid, "event": "cleared",
                                     "onset_ts": st["onset"], "reading_ts": ts})
                    st.update(active=False, cond=None, clear=None)
            else:
                st["cond"] = None
        records.append((pid.encode(), encode(reading), ts))
    return records, expected


def generate_shares(jobs: list[tuple]) -> list[tuple[list, list]]:
    """Run ``_gen_share`` for each (cfg, worker, workers, overlay), in parallel."""
    with FORK.Pool(min(len(jobs), os.cpu_count() or 1)) as pool:
        return pool.starmap(_gen_share, jobs)


def shifted(records: Iterable[tuple[bytes, bytes, int]], delta_ms: int):
    """``devices.wire.Outgoing`` records with the device timestamp moved by ``delta_ms``."""
    from devices.wire import Outgoing

    for key, value, ts in records:
        i = value.index(b'"ts":') + 5
        j = value.index(b",", i)
        new = ts + delta_ms
        yield Outgoing(key, value[:i] + str(new).encode() + value[j:], new)


# ---------------------------------------------------------------------------------------
# Publishing and consuming in separate processes


def _publish_worker(options, records, delta_ms: int, realtime: bool, results) -> None:
    from devices.publisher import Publisher

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pub = Publisher(options)
        pub.producer  # noqa: B018 - connect before the clock starts
        stats = pub.run(shifted(records, delta_ms), realtime=realtime, progress_every=0,
                        out=None)
        pub.close()
        results.put({"sent": stats.sent, "failed": stats.failed,
                     "elapsed_s": stats.elapsed_s, "max_lag_s": stats.max_lag_s,
                     "error": stats.first_error})
    except BaseException as exc:
        results.put({"sent": 0, "failed": 0, "elapsed_s": 0.0, "max_lag_s": 0.0,
                     "error": repr(exc)})


def publish_parallel(options, shares: list[list], delta_ms: int, *, realtime: bool,
                     timeout: float) -> dict:
    """Each share from its own process and producer; returns the combined statistics."""
    results = FORK.Queue()
    procs = [FORK.Process(target=_publish_worker, name=f"bench-publisher-{i}",
                          args=(options, share, delta_ms, realtime, results), daemon=True)
             for i, share in enumerate(shares)]
    for p in procs:
        p.start()
    parts = []
    deadline = time.monotonic() + timeout
    while len(parts) < len(procs) and time.monotonic() < deadline:
        with contextlib.suppress(queue_mod.Empty):
            parts.append(results.get(timeout=1.0))
        if not any(p.is_alive() for p in procs) and results.empty():
            break
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.kill()
    errors = [p["error"] for p in parts if p["error"]]
    return {
        "processes": len(procs), "sent": sum(p["sent"] for p in parts),
        "failed": sum(p["failed"] for p in parts),
        "elapsed_s": round(max((p["elapsed_s"] for p in parts), default=0.0), 3),
        "max_lag_s": round(max((p["max_lag_s"] for p in parts), default=0.0), 3),
        "errors": errors + ([f"{len(procs) - len(parts)} publisher(s) gave no report"]
                            if len(parts) < len(procs) else []),
    }


def _consume_worker(bootstrap: str, topic: str, partitions: list[int], expected: int,
                    results) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, isolation_level="read_committed",
                             max_poll_records=5000, fetch_max_bytes=64 * 2**20,
                             max_partition_fetch_bytes=16 * 2**20)
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    n = nbytes = 0
    t0 = time.perf_counter()
    idle_deadline = t0 + 30
    while n < expected and time.perf_counter() < idle_deadline:
        batch = consumer.poll(timeout_ms=500)
        for msgs in batch.values():
            n += len(msgs)
            nbytes += sum(len(m.value) for m in msgs)
        if batch:
            idle_deadline = time.perf_counter() + 10
    elapsed = time.perf_counter() - t0
    consumer.close()
    results.put({"consumed": n, "bytes": nbytes, "elapsed_s": elapsed})


def consume_parallel(settings: Settings, topic: str, per_partition: dict[int, int],
                     workers: int) -> dict:
    results = FORK.Queue()
    parts_of = [sorted(per_partition)[w::workers] for w in range(workers)]
    procs = [FORK.Process(target=_consume_worker, daemon=True,
                          args=(settings.kafka.bootstrap, topic, parts,
                                sum(per_partition[p] for p in parts), results))
             for parts in parts_of if parts]
    for p in procs:
        p.start()
    out = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(10)
    return {"processes": len(procs), "consumed": sum(o["consumed"] for o in out),
            "bytes": sum(o["bytes"] for o in out),
            "elapsed_s": round(max(o["elapsed_s"] for o in out), 3)}


def _latency_consumer(settings: Settings, prefix: bytes, fetch_wait_ms: int, ready, stop,
                      results) -> None:
    """Arrival time of every validated reading (of ``prefix`` patients) and alert event."""
    from kafka import KafkaConsumer, TopicPartition

    topics = settings.kafka
    consumer = KafkaConsumer(bootstrap_servers=topics.bootstrap, group_id=None,
                             enable_auto_commit=False, isolation_level="read_committed",
                             fetch_max_wait_ms=fetch_wait_ms, max_poll_records=5000)
    tps = [TopicPartition(t, p) for t in (topics.topic_validated, topics.topic_alerts)
           for p in sorted(consumer.partitions_for_topic(t) or [])]
    consumer.assign(tps)
    consumer.seek_to_end(*tps)
    for tp in tps:
        consumer.position(tp)
    ready.set()
    validated: list[tuple[int, int, float]] = []
    alerts: list[dict] = []
    while not stop.is_set():
        batch = consumer.poll(timeout_ms=100)
        t = now_ms()
        for tp, msgs in batch.items():
            if tp.topic == topics.topic_validated:
                for m in msgs:
                    if m.key and m.key.startswith(prefix):
                        d = json.loads(m.value)
                        validated.append((d["ts"], d["processed_ts"], t))
            else:
                for m in msgs:
                    d = json.loads(m.value)
                    alerts.append({k: d[k] for k in ("alert_id", "event", "patient_id", "rule",
                                                     "onset_ts", "reading_ts", "detected_ts")}
                                  | {"received": t})
    consumer.close()
    results.put({"validated": validated, "alerts": alerts})


def _alert_poller(settings: Settings, expected: list[tuple[str, int]], interval_s: float,
                  stop, results) -> None:
    """Poll the ``alerts`` table by id from each expected alert's triggering reading on;
    note when its row is first readable."""
    from backend.storage.cassandra import connect

    session = connect(settings.cassandra, wait_seconds=30)
    select = session.prepare("SELECT alert_id FROM alerts WHERE alert_id = ?")
    pending = sorted(expected, key=lambda e: e[1])
    next_poll = {e[0]: e[1] - 100.0 for e in pending}
    found: dict[str, float] = {}
    queries = 0
    while pending and not stop.is_set():
        t = now_ms()
        due = [e for e in pending if next_poll[e[0]] <= t]
        futures = [(e, session.execute_async(select, (e[0],))) for e in due]
        queries += len(futures)
        for e, fut in futures:
            try:
                row = fut.result().one()
            except Exception:
                continue
            if row is not None:
                found[e[0]] = now_ms()
            else:  # resolution: the poll interval, or 2 % of the time waited so far
                next_poll[e[0]] = t + max(interval_s * 1000, 0.02 * (t - e[1]))
        pending = [e for e in pending if e[0] not in found and e[1] + 600_000 > t]
        time.sleep(interval_s)
    session.cluster.shutdown()
    results.put({"found": found, "queries": queries})


# ---------------------------------------------------------------------------------------
# The stream job


BATCH_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) streaming\.sink batch (\d+): (\d+) readings, "
    r"(\d+) rejected, (\d+) alerts(.*?) in (\d+) ms")


@dataclass
class Batch:
    end: float  # epoch seconds (log time, ms resolution)
    batch_id: int
    readings: int
    rejected: int
    alerts: int
    sink_ms: int


class Job:
    """``icu stream run`` in its own process group (as tests/integration/support.py)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> float:
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "stream", "run"], cwd=REPO, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        t0 = time.monotonic()
        while "vitals stream running" not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"stream job exited {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"stream job not running after {timeout:.0f}s:\n"
                                   f"{self.tail()}")
            time.sleep(0.25)
        return time.monotonic() - t0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def batches(self) -> list[Batch]:
        out = []
        for line in self.text().splitlines():
            m = BATCH_RE.match(line)
            if m and "replay" not in m.group(6):
                end = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out.append(Batch(end, int(m.group(2)), int(m.group(3)), int(m.group(4)),
                                 int(m.group(5)), int(m.group(7))))
        return out

    def processed_since(self, t: float) -> int:
        return sum(b.readings for b in self.batches() if b.end >= t)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


CALLBACK_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) py4j\.clientserver "
                         r"Received command c on object id p0")


def _log_time(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def batch_timeline(job: Job) -> dict[int, dict]:
    """Per micro-batch, from the checkpoint and the job's log: when Spark planned it
    (``batchTimestampMs`` of ``offsets/N``), when it called the sink (py4j callback, in
    batch order), when the sink finished (its log line) and when Spark committed it
    (mtime of ``commits/N``). Seconds since the epoch."""
    from streaming.vitals_job import checkpoint_location

    ckpt = checkpoint_location(job.settings)
    out: dict[int, dict] = {}
    offsets = ckpt / "offsets"
    if not offsets.exists():
        return out
    for f in offsets.iterdir():
        if f.name.isdigit():
            with contextlib.suppress(Exception):
                meta = json.loads(f.read_text().splitlines()[1])
                out[int(f.name)] = {"planned": meta["batchTimestampMs"] / 1000}
    for f in (ckpt / "commits").iterdir():
        if f.name.isdigit() and int(f.name) in out:
            out[int(f.name)]["committed"] = f.stat().st_mtime
    callbacks = [_log_time(m.group(1)) for m in map(CALLBACK_RE.match, job.text().splitlines())
                 if m]
    for i, t in zip(sorted(out), callbacks, strict=False):
        out[i]["callback"] = t
    for b in job.batches():
        if b.batch_id in out:
            out[b.batch_id] |= {"sink_end": b.end, "sink_ms": b.sink_ms,
                                "readings": b.readings}
    return out


def timeline_report(timeline: dict[int, dict], t_from: float, t_to: float) -> dict:
    """Where the time of the non-empty batches planned in [t_from, t_to] went, in ms:
    planning (batch timestamp -> sink called), execution (Kafka read, shuffle, the
    Python evaluator, state store: sink called -> sink starts writing), the sink's
    writes, and the commit (sink done -> commit log written)."""
    parts: dict[str, list[float]] = defaultdict(list)
    empty = 0
    for _, b in sorted(timeline.items()):
        if not t_from <= b["planned"] <= t_to:
            continue
        if "sink_end" not in b:
            empty += 1
            if "committed" in b:
                parts["empty_batch_total"].append((b["committed"] - b["planned"]) * 1000)
            continue
        sink_start = b["sink_end"] - b["sink_ms"] / 1000
        if "callback" in b:
            parts["plan"].append((b["callback"] - b["planned"]) * 1000)
            parts["execute"].append((sink_start - b["callback"]) * 1000)
        parts["sink_write"].append(float(b["sink_ms"]))
        if "committed" in b:
            parts["commit"].append((b["committed"] - b["sink_end"]) * 1000)
            parts["total"].append((b["committed"] - b["planned"]) * 1000)
    return {"empty_batches": empty, **{k: dist(v) for k, v in parts.items()}}


# Where the samples of the Spark JVM fall: a sample counts for every group one of its
# frames belongs to (first matching pattern of each group), so groups overlap.
JFR_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("executor task: Kafka source (consumer)", ("org.apache.kafka.", "sql.kafka010.")),
    ("executor task: state store (RocksDB)", ("org.rocksdb.", "streaming.state.RocksDB")),
    ("executor task: Python runner, Arrow to/from the workers", (
        "org.apache.spark.api.python.", "python.streaming.ApplyInPandasWithState",
        "org.apache.arrow.", "sql.execution.arrow.")),
    ("executor task: shuffle", ("org.apache.spark.shuffle.", "ShuffledRowRDD",
                                "UnsafeShuffleWriter", "SortShuffleWriter")),
    # Scala closures are named after their enclosing method: the executor-side conversion
    # of the batch's rows to Arrow is in here as well as the driver's collect.
    ("toPandas: collectAsArrowToPython (executors' Arrow conversion + driver collect)", (
        "collectAsArrowToPython", "collectFromPlan", "executeCollect")),
    ("query analysis / optimisation / planning", (
        "sql.catalyst.optimizer.", "sql.catalyst.analysis.", "sql.catalyst.rules.",
        "sql.execution.QueryExecution", "IncrementalExecution", "SparkStrategies",
        "sql.catalyst.planning.")),
    ("code generation (Janino)", ("org.codehaus.janino.", "org.codehaus.commons.",
                                  "expressions.codegen.")),
    ("checkpoint and state files (Hadoop FS)", ("org.apache.hadoop.fs.", "HDFSMetadataLog",
                                               "CheckpointFileManager")),
    ("  of which forking a process (Hadoop Shell: readlink/stat)", (
        "org.apache.hadoop.util.Shell", "java.lang.ProcessImpl")),
    ("scheduler / RPC", ("DAGScheduler", "TaskSchedulerImpl", "TaskSetManager",
                         "org.apache.spark.rpc.", "io.netty.")),
    ("serialisation (Java/Kryo closures, tasks)", (
        "com.esotericsoftware.kryo.", "java.io.ObjectOutputStream", "java.io.ObjectInputStream")),
    ("py4j (driver Python <-> JVM)", ("py4j.",)),
)
FRAME_RE = re.compile(r"^\s+(\S+?)\(.*\)\s+line:")


def jvm_pid(root: int | None) -> int | None:
    if root is None:
        return None
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(root).children(recursive=True):
            if "java" in child.name():
                return child.pid
    return None


class Jfr:
    """Java Flight Recorder on the Spark JVM, one recording per phase (``jcmd``)."""

    def __init__(self, directory: Path, enabled: bool) -> None:
        self.directory = directory
        self.enabled = enabled and shutil.which("jcmd") is not None
        self.files: dict[str, Path] = {}

    def start(self, pid: int | None, name: str) -> None:
        if not self.enabled or pid is None:
            return
        path = self.directory / f"{name}.jfr"
        r = subprocess.run(["jcmd", str(pid), "JFR.start", f"name={name}", "settings=profile",
                            f"filename={path}"], capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            self.files[name] = path

    def stop(self, pid: int | None, name: str) -> None:
        if name in self.files and pid is not None:
            subprocess.run(["jcmd", str(pid), "JFR.stop", f"name={name}"],
                           capture_output=True, text=True, timeout=120)

    @staticmethod
    def _sum(path: Path, event: str, key: str) -> float:
        """Sum of a duration field over the events of one type, in ms."""
        text = subprocess.run(["jfr", "print", "--events", event, str(path)],
                              capture_output=True, text=True, timeout=300).stdout
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1000.0, "min": 60_000.0}
        total = 0.0
        for m in re.finditer(rf"^\s+{key} = ([\d.]+) (\w+)", text, re.M):
            total += float(m.group(1)) * unit.get(m.group(2), 0.0)
        return round(total, 1)

    def summary(self, name: str, top: int = 25) -> dict:
        path = self.files.get(name)
        if path is None or not path.exists() or shutil.which("jfr") is None:
            return {}
        proc = subprocess.Popen(["jfr", "print", "--events", "jdk.ExecutionSample",
                                 "--stack-depth", "96", str(path)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        samples = 0
        by_group: dict[str, int] = defaultdict(int)
        by_thread: dict[str, int] = defaultdict(int)
        self_frames: dict[str, int] = defaultdict(int)
        self_packages: dict[str, int] = defaultdict(int)
        frames: list[str] = []
        thread = ""

        def flush() -> None:
            nonlocal samples
            if not frames:
                return
            samples += 1
            self_frames[frames[0]] += 1
            self_packages[".".join(frames[0].split(".")[:-2][:6])] += 1
            by_thread[re.sub(r"\d+", "N", thread.split(" for ")[0])[:60]] += 1
            for group, patterns in JFR_GROUPS:
                if any(p in f for f in frames for p in patterns):
                    by_group[group] += 1

        for line in proc.stdout:
            if line.startswith("jdk.ExecutionSample"):
                flush()
                frames, thread = [], ""
            elif "sampledThread = " in line:
                thread = line.split("=", 1)[1].strip().strip('"').split('" (')[0]
            else:
                m = FRAME_RE.match(line)
                if m:
                    frames.append(m.group(1))
        flush()
        proc.wait()

        totals = {"gc_pause_ms": self._sum(path, "jdk.GarbageCollection", "sumOfPauses"),
                  "jit_compilation_ms": self._sum(path, "jdk.Compilation", "duration")}

        def share(d: dict[str, int], n: int | None = None) -> dict[str, float]:
            return {k: round(v / samples, 3) for k, v in
                    sorted(d.items(), key=lambda kv: -kv[1])[:n]} if samples else {}
        return {"samples": samples, **totals, "groups": share(by_group),
                "threads": share(by_thread, 12), "self_by_package": share(self_packages, 20),
                "top_self_frames": share(self_frames, top)}


def wait_processed(job: Job, since: float, target: int, timeout: float,
                   what: str) -> tuple[bool, int]:
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        done = job.processed_since(since)
        if done >= target:
            return True, done
        if not job.alive():
            raise RuntimeError(f"stream job died during {what}:\n{job.tail()}")
        if time.monotonic() > deadline:
            return False, done
        if time.monotonic() - last_report > 15:
            log(f"  {what}: {done:,}/{target:,} readings processed")
            last_report = time.monotonic()
        time.sleep(0.5)


def rate_over(batches: list[Batch], t_from: float, t_to: float) -> dict:
    """Processing rate from the batches that started at or after ``t_from`` (the previous
    batch's end) and ended by ``t_to``; a batch's start is the previous batch's end."""
    chosen = [(prev, b) for prev, b in itertools.pairwise(batches)
              if prev.end >= t_from and b.end <= t_to]
    if not chosen:
        return {"batches": 0}
    n = sum(b.readings for _, b in chosen)
    span = chosen[-1][1].end - chosen[0][0].end
    cycles = [(b.end - p.end) * 1000 for p, b in chosen]
    sink = [b.sink_ms for _, b in chosen]
    return {"batches": len(chosen), "readings": n, "seconds": round(span, 2),
            "readings_per_s": round(n / span, 1) if span > 0 else None,
            "batch_readings": dist(b.readings for _, b in chosen),
            "batch_cycle_ms": dist(cycles), "sink_write_ms": dist(sink),
            "sink_share_of_cycle": round(sum(sink) / sum(cycles), 3) if sum(cycles) else None}


# ---------------------------------------------------------------------------------------
# Phases


def bench_settings(base: Settings, args: argparse.Namespace, tmp: Path) -> Settings:
    suffix = uuid.uuid4().hex[:10]
    kafka = base.kafka
    topics = {name: f"{getattr(kafka, name)}.bench{suffix}"
              for name in type(kafka).model_fields if name.startswith("topic_")}
    spark_update: dict = {"checkpoint_dir": tmp / "checkpoint"}
    for key in ("trigger_seconds", "max_offsets_per_trigger", "shuffle_partitions", "master"):
        value = getattr(args, key)
        if value is not None:
            spark_update[key] = value
    return base.model_copy(update={
        "kafka": kafka.model_copy(update={**topics, **(
            {"partitions": args.kafka_partitions} if args.kafka_partitions else {})}),
        "cassandra": base.cassandra.model_copy(update={"keyspace": f"icu_bench_pipe_{suffix}"}),
        "spark": base.spark.model_copy(update=spark_update),
        "alerting": base.alerting.model_copy(update={
            "persistence_seconds": BENCH_PERSISTENCE_S, "clear_seconds": BENCH_CLEAR_S,
            "stale_after_seconds": BENCH_STALE_S}),
    })


def admit_all(session, admissions: list) -> float:
    from backend.storage import census

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda a: census.admit(session, a), admissions))
    return time.perf_counter() - t0


def validated_readings(records: list[tuple[bytes, bytes, int]], census: dict,
                       settings: Settings) -> list:
    """The ValidatedReadings the stream job would make of ``records``."""
    from backend.alerting.evaluation import PatientState, ScoredReading, process
    from backend.validation import Accepted, validate
    from streaming.evaluator import _validated

    by_patient: dict[str, list] = defaultdict(list)
    for _, value, ts in records:
        outcome = validate(value, received_ts=ts + 20, census=census, cfg=settings.alerting)
        if isinstance(outcome, Accepted):
            by_patient[outcome.reading.patient_id].append(outcome.reading)
    out = []
    t = int(now_ms())
    for pid, readings in by_patient.items():
        _, results = process(PatientState.new(pid), readings, admission=census[pid],
                             now_ms=t, cfg=settings.alerting)
        out.extend(_validated(r, t) for r in results if isinstance(r, ScoredReading))
    out.sort(key=lambda r: r.ts)
    return out


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall s, CPU s of this process, every thread)"""
    c0, w0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def phase_cassandra(settings: Settings, session, readings: list, raw: list, chunk: int,
                    n_alerts: int) -> dict:
    from backend.messages import AlertEvent, Priority
    from backend.storage.alerts import AlertStore
    from backend.storage.raw import RawMessage, RawStore
    from backend.storage.readings import ReadingStore

    store, raws = ReadingStore(session), RawStore(session)
    chunks = [readings[i:i + chunk] for i in range(0, len(readings), chunk)]
    n = len(readings)
    wall, cpu = timed(lambda: [store.write(c) for c in chunks])
    out: dict = {"rows": n, "chunk_rows": chunk,
                 "readings_write": {"rows_per_s": round(n / wall), "wall_s": round(wall, 2),
                                    "client_cpu_us_per_row": round(cpu / n * 1e6, 1)}}
    log(f"  ReadingStore.write: {n / wall:,.0f} rows/s ({cpu / n * 1e6:.0f} us client CPU/row)")

    raw_msgs = [RawMessage("bench-raw", i % 4, 5_000_000 + i, key, value, ts)
                for i, (key, value, ts) in enumerate(raw[:n])]
    raw_chunks = [raw_msgs[i:i + chunk] for i in range(0, n, chunk)]

    def sink_like() -> None:
        for c, r in zip(chunks, raw_chunks, strict=True):
            raws.write_raw(r)
            store.write(c)
            store.write_latest(c)

    wall, cpu = timed(sink_like)
    out["sink_cassandra_path"] = {
        "what": "RawStore.write_raw + ReadingStore.write + ReadingStore.write_latest",
        "readings_per_s": round(n / wall), "wall_s": round(wall, 2),
        "client_cpu_us_per_reading": round(cpu / n * 1e6, 1)}
    log(f"  raw + history + latest: {n / wall:,.0f} readings/s")

    alerts = AlertStore(session)
    t = int(now_ms())
    events = [AlertEvent(alert_id=str(uuid.uuid4()), event="raised",
                         patient_id=f"bench-alert-{i % 50}", ward="BENCH", bed=str(i % 50),
                         rule="ref_hr_high", priority=Priority.MEDIUM, message="HR 128/min",
                         values={"hr": 128.0}, onset_ts=t - 2000, reading_ts=t, detected_ts=t)
              for i in range(n_alerts)]
    wall, cpu = timed(lambda: [alerts.raise_alert(e) for e in events])
    cleared = [e.model_copy(update={"event": "cleared"}) for e in events]
    wall_c, _ = timed(lambda: [alerts.clear_alert(e) for e in cleared])
    out["alerts"] = {"n": n_alerts, "raise_per_s": round(n_alerts / wall, 1),
                     "raise_ms_each": round(wall / n_alerts * 1000, 2),
                     "clear_ms_each": round(wall_c / n_alerts * 1000, 2)}
    log(f"  AlertStore.raise_alert: {wall / n_alerts * 1000:.1f} ms each, "
        f"clear_alert {wall_c / n_alerts * 1000:.1f} ms each (sequential, as the sink)")
    return out


def phase_sink_profile(settings: Settings, readings: list, raw: list, chunk: int) -> dict:
    """One VitalsSink.write of ``chunk`` readings outside Spark: stage by stage, and cProfile."""
    import pandas as pd

    import streaming.sink as sink_module
    from backend.storage.readings import run_concurrently
    from streaming.evaluator import OUTPUT_COLUMNS
    from streaming.sink import VitalsSink

    sink = VitalsSink(settings, name="bench-profile")
    try:
        def frame(first: int) -> pd.DataFrame:
            rows = []
            for i, (r, (key, value, ts)) in enumerate(
                    zip(readings[first:first + chunk], raw[first:first + chunk], strict=True)):
                rows.append(("reading", r.patient_id, r.ts, r.model_dump_json(), "bench-raw",
                             i % 4, 9_000_000 + first + i, ts, key, value))
            return pd.DataFrame(rows, columns=OUTPUT_COLUMNS)

        stages: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

        def wrap(obj: object, name: str, label: str) -> None:
            fn = getattr(obj, name)

            def inner(*a, **kw):
                c0, w0 = time.process_time(), time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    stages[label][0] += time.perf_counter() - w0
                    stages[label][1] += time.process_time() - c0
            setattr(obj, name, inner)

        # The sink binds every Cassandra statement, runs them all concurrently, then
        # publishes one Kafka transaction.
        wrap(sink.raw, "raw_statements", "bind raw_messages")
        wrap(sink.readings, "history_statements", "bind readings_by_patient_day")
        wrap(sink.readings, "latest_statements", "bind latest_by_ward")
        wrap(sink.minutes, "statements", "bind readings_by_patient_minute (incl. extremes)")
        wrap(sink_module, "run_concurrently", "cassandra: execute all, wait")
        wrap(sink.publisher, "publish_batch", "kafka transaction (send + commit)")
        first = frame(0)
        n = len(first)
        sink.write(frame(chunk), 0)  # warm: prepared statements, connections, producer
        stages.clear()
        wall, cpu = timed(lambda: sink.write(first, 1))
        accounted = sum(w for w, _ in stages.values())
        result = {
            "readings": n, "wall_s": round(wall, 3), "readings_per_s": round(n / wall),
            "cpu_us_per_reading": round(cpu / n * 1e6, 1),
            "stages_us_per_reading": {
                label: {"wall": round(w / n * 1e6, 1), "cpu": round(c / n * 1e6, 1)}
                for label, (w, c) in stages.items()},
        }
        result["stages_us_per_reading"]["pandas, pydantic, alerts (rest)"] = {
            "wall": round((wall - accounted) / n * 1e6, 1)}
        prof = cProfile.Profile()
        second = frame(2 * chunk)
        prof.enable()
        sink.write(second, 2)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        result["cprofile_top_tottime"] = [
            line.rstrip() for line in buf.getvalue().splitlines()
            if re.match(r"\s*\d", line)][:18]
        return result
    finally:
        sink_module.run_concurrently = run_concurrently
        sink.close()


def prime_records(plans: list, seq: int, ts: int) -> list[tuple[bytes, bytes, int]]:
    """One normal reading per patient from a device of its own (so that the simulated
    monitors' sequence numbers are untouched): warms the job's workers and census caches."""
    from backend.messages import DeviceReading
    from devices.wire import encode

    vitals = {Vital.HR: 75.0, Vital.PULSE: 75.0, Vital.SPO2: 97.0, Vital.RR: 14.0}
    return [(p.patient_id.encode(), encode(DeviceReading(
        device_id=f"prime-{p.patient_id}", seq=seq, patient_id=p.patient_id, ward=p.ward,
        bed=p.bed, ts=ts + seq * 1000, vitals=vitals, source="bench-prime")), ts + seq * 1000)
        for p in plans]


class _FakeGroupState:
    """The part of Spark's ``GroupState`` the evaluator uses."""

    def __init__(self, value: str | None = None) -> None:
        self.value = value
        self.hasTimedOut = False

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple:
        return (self.value,)

    def update(self, row: tuple) -> None:
        self.value = row[0]

    def setTimeoutDuration(self, ms: int) -> None:  # Spark's name
        pass

    def remove(self) -> None:
        self.value = None


def phase_evaluator_profile(settings: Settings, records: list[tuple[bytes, bytes, int]],
                            topic: str, max_patients: int = 500) -> dict:
    """``streaming.evaluator``'s function outside Spark, on pandas frames shaped as Spark
    passes them: per-call (per patient and micro-batch) and per-reading CPU cost."""
    import pandas as pd

    from streaming.evaluator import make_evaluator

    evaluate = make_evaluator(settings)
    by_patient: dict[bytes, list] = defaultdict(list)
    for i, (key, value, ts) in enumerate(records):
        if key in by_patient or len(by_patient) < max_patients:
            by_patient[key].append((key.decode(), key, value, topic, i % 4, i, ts))
    states: dict[bytes, _FakeGroupState] = defaultdict(_FakeGroupState)
    cols = ["patient_key", "key_bytes", "value", "topic", "partition", "offset", "timestamp"]

    def frames(rows_per_group: int, start: int, patients: int) -> list:
        out = []
        for key, rows in list(by_patient.items())[:patients]:
            chunk = rows[start:start + rows_per_group]
            pdf = pd.DataFrame(chunk, columns=cols)
            pdf["timestamp"] = pd.to_datetime(pdf["timestamp"] + 5, unit="ms", utc=True)
            out.append((key, pdf))
        return out

    def run(groups: list) -> int:
        n = 0
        for key, pdf in groups:
            for res in evaluate((key.decode(),), iter([pdf]), states[key]):
                n += len(res)
        return n

    n_patients = len(by_patient)
    run(frames(1, 0, n_patients))  # warm: census cache, first state of every patient
    one = frames(1, 1, n_patients)
    _, c1 = timed(lambda: run(one))
    many_patients = max(1, n_patients // 5)
    per = max(2, min(20, (min(len(r) for r in by_patient.values()) - 2) // 2))
    many = frames(per, 2, many_patients)
    _, c2 = timed(lambda: run(many))
    n2 = many_patients * per
    # c1 = calls*g + calls*r ; c2 = calls2*g + n2*r  ->  per call g, per reading r
    r = (c2 - many_patients * c1 / n_patients) / (n2 - many_patients)
    g = c1 / n_patients - r
    def profile(groups: list, sort: str) -> list[str]:
        prof = cProfile.Profile()
        prof.enable()
        run(groups)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(sort).print_stats(18)
        return [line.rstrip() for line in buf.getvalue().splitlines()
                if re.match(r"\s*\d", line)][:18]

    top_many = profile(frames(per, 2 + per, many_patients), "tottime")
    top_one = profile(frames(1, 2 + 2 * per, n_patients), "cumulative")
    return {
        "calls_of_1_reading": {"calls": n_patients, "cpu_us_per_call": round(c1 / n_patients
                                                                            * 1e6, 1)},
        f"calls_of_{per}_readings": {"calls": many_patients,
                                     "cpu_us_per_reading": round(c2 / n2 * 1e6, 1)},
        "fit_cpu_us_per_call": round(g * 1e6, 1), "fit_cpu_us_per_reading": round(r * 1e6, 1),
        f"cprofile_calls_of_{per}_readings_top_tottime": top_many,
        "cprofile_calls_of_1_reading_top_cumulative": top_one,
    }


def latency_report(validated: list, alerts: list, found: dict[str, float],
                   expected: list[dict], t_measure: float, fetch_wait_ms: int,
                   poll_ms: float) -> dict:
    t_ms = t_measure * 1000
    v = [(ts, pts, recv) for ts, pts, recv in validated if ts >= t_ms]
    out: dict = {
        "validated_readings": len(v),
        "validated_ms": dist(recv - ts for ts, _, recv in v),
        "validated_device_to_processed_ms": dist(pts - ts for ts, pts, _ in v),
        "validated_processed_to_visible_ms": dist(recv - pts for _, pts, recv in v),
    }
    events = [a for a in alerts if a["reading_ts"] >= t_ms and a["rule"] != "stale_signal"
              and a["patient_id"].startswith("blat")]
    out["alerts_events"] = {
        "n": len(events),
        "by_rule": dict(sorted(defaultdict(int, {
            f"{r} {e}": sum(1 for a in events if a["rule"] == r and a["event"] == e)
            for r, e in {(a["rule"], a["event"]) for a in events}}).items())),
        "kafka_ms": dist(a["received"] - a["reading_ts"] for a in events),
        "kafka_raised_ms": dist(a["received"] - a["reading_ts"] for a in events
                                if a["event"] == "raised"),
    }
    exp = [e for e in expected if e["event"] == "raised" and e["reading_ts"] >= t_ms]
    seen_ids = {a["alert_id"] for a in alerts if a["event"] == "raised"}
    cass = [found[e["alert_id"]] - e["reading_ts"] for e in exp if e["alert_id"] in found]
    out["alerts_cassandra"] = {
        "expected_injected_raises": len(exp),
        "readable": len(cass),
        "on_kafka": sum(1 for e in exp if e["alert_id"] in seen_ids),
        "readable_ms": dist(cass),
        "poll_interval_ms": poll_ms,
    }
    out["consumer_fetch_max_wait_ms"] = fetch_wait_ms
    return out


# ---------------------------------------------------------------------------------------
# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("latency run (phase 4)")
    g.add_argument("--patients", type=int, default=1000)
    g.add_argument("--rate", type=float, default=1.0, help="Hz per patient")
    g.add_argument("--duration", type=float, default=60.0, help="measured seconds")
    g.add_argument("--warmup", type=float, default=10.0, help="seconds not measured")
    g.add_argument("--alert-fraction", type=float, default=0.05,
                   help="fraction of the patients given injected HR episodes")
    g.add_argument("--alert-period", type=float, default=20.0)
    g.add_argument("--alert-on", type=float, default=6.0)
    g.add_argument("--scenario-share", type=float, default=0.01,
                   help="share of the patients in each abnormal generator scenario")
    g.add_argument("--poll-ms", type=float, default=20.0,
                   help="interval of the alerts-table poll")
    g.add_argument("--fetch-wait-ms", type=int, default=20,
                   help="fetch_max_wait_ms of the measuring consumer")
    g = ap.add_argument_group("throughput (phases 2, 3, 5)")
    g.add_argument("--load-patients", type=int, default=2000)
    g.add_argument("--kafka-messages", type=int, default=150_000,
                   help="messages of the Kafka-only ceiling")
    g.add_argument("--load-rate", type=float, default=10_000.0, help="paced readings/s")
    g.add_argument("--load-duration", type=float, default=30.0)
    g.add_argument("--kafka-workers", type=int, default=2,
                   help="producer (and consumer) processes")
    g.add_argument("--catchup-timeout", type=float, default=90.0,
                   help="longest wait for the drain after the paced load")
    g.add_argument("--prime-rounds", type=int, default=2,
                   help="rounds of one reading per patient after the job starts")
    g.add_argument("--tail-timeout", type=float, default=60.0,
                   help="longest wait for the latency run's last readings")
    g = ap.add_argument_group("Cassandra (phase 1)")
    g.add_argument("--cassandra-rows", type=int, default=50_000)
    g.add_argument("--chunk", type=int, default=10_000, help="rows per write (a micro-batch)")
    g.add_argument("--alerts", type=int, default=200, help="alerts raised one by one")
    g = ap.add_argument_group("pipeline settings (defaults: Settings / ICU_* environment)")
    g.add_argument("--master", default=None)
    g.add_argument("--trigger-seconds", dest="trigger_seconds", type=float, default=None)
    g.add_argument("--max-offsets", dest="max_offsets_per_trigger", type=int, default=None)
    g.add_argument("--shuffle-partitions", dest="shuffle_partitions", type=int, default=None)
    g.add_argument("--kafka-partitions", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma list of phases to skip: "
                    "cassandra,profile,kafka,latency,load")
    ap.add_argument("--idle", type=float, default=12.0,
                    help="seconds the primed job runs without input (idle cost)")
    ap.add_argument("--no-jfr", action="store_true",
                    help="no Java Flight Recorder profile of the Spark JVM")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--keep-data", action="store_true",
                    help="keep the bench topics, keyspace and job log")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from devices.generator import GeneratorConfig, plan_patients
    from devices.publisher import ProducerOptions
    from ops import services as svc

    t_run = time.monotonic()
    base = Settings()
    result: dict = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "machine": machine_info(),
                    "load_before": [round(x, 2) for x in os.getloadavg()]}
    log(f"machine: {result['machine']['nproc']} cores, {result['machine']['ram_gib']} GiB; "
        f"load average {result['load_before']}")
    if all(svc.is_local(base).values()):
        svc.start_all(base, timeout=240)
    status = svc.status(base)
    tmp = Path(tempfile.mkdtemp(prefix="icu-bench-"))
    settings = bench_settings(base, args, tmp)
    result["settings"] = {
        "spark": {k: str(v) for k, v in settings.spark.model_dump().items()
                  if k not in ("jars_dir", "checkpoint_dir")} | {"driver_memory": "2g"},
        "kafka_partitions": settings.kafka.partitions,
        "alerting": {"persistence_seconds": BENCH_PERSISTENCE_S,
                     "clear_seconds": BENCH_CLEAR_S, "stale_after_seconds": BENCH_STALE_S},
        "topics_suffix": settings.kafka.topic_raw.rsplit(".", 1)[-1],
        "keyspace": settings.cassandra.keyspace,
    }
    sampler = Sampler(status["kafka"].pid, status["cassandra"].pid, interval=1.0)
    sampler.start()
    marks: dict[str, dict] = {"start": sampler.snapshot()}
    phases: dict[str, dict] = {}

    def phase_end(name: str, start: str) -> None:
        marks[name] = sampler.snapshot()
        phases.setdefault(name, {})["resources"] = cpu_between(marks[start], marks[name],
                                                               sampler.load)

    job = Job(settings, tmp / "stream.log")
    jfr = Jfr(tmp, not args.no_jfr)
    jpid: int | None = None
    session = None
    try:
        svc.ensure_topics(settings)
        session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
        migrate(session, settings)
        session.set_keyspace(settings.cassandra.keyspace)

        # -- data ---------------------------------------------------------------------------
        workers = max(1, args.kafka_workers)
        load_hz = args.load_rate / args.load_patients
        scen = ("sepsis", "desaturation", "tachycardia", "hypotension", "sensor_disconnect",
                "motion_artefact")
        load_cfg = GeneratorConfig(
            start_ms=PLACEHOLDER_MS, patients=args.load_patients,
            wards=max(1, args.load_patients // 25), rate_hz=load_hz,
            duration_s=args.load_duration,
            scenario_mix={s: max(1, round(args.load_patients * args.scenario_share))
                          for s in scen},
            seed=11, id_prefix="bload", ward_prefix="BL-")
        lat_total_s = args.warmup + args.duration
        lat_cfg = GeneratorConfig(
            start_ms=PLACEHOLDER_MS, patients=args.patients,
            wards=max(1, args.patients // 25), rate_hz=args.rate, duration_s=lat_total_s,
            scenario_mix={s: max(1, round(args.patients * args.scenario_share)) for s in scen},
            onset_range_s=(-180.0, 30.0), seed=12, id_prefix="blat", ward_prefix="LT-")
        lat_plans = plan_patients(lat_cfg)
        stable = [p for p in lat_plans if p.scenario == "stable"]
        n_overlay = min(len(stable), round(args.patients * args.alert_fraction))
        step = len(stable) / n_overlay if n_overlay else 1
        overlay = Overlay(
            patients={stable[int(i * step)].patient_id: (i * 7.3) % args.alert_period
                      for i in range(n_overlay)},
            period_s=args.alert_period, on_s=args.alert_on,
            persistence_ms=BENCH_PERSISTENCE_S * 1000, clear_ms=BENCH_CLEAR_S * 1000)
        t0 = time.perf_counter()
        shares = generate_shares(
            [(load_cfg, w, workers, None) for w in range(workers)]
            + [(lat_cfg, w, 2, overlay) for w in range(2)])
        load_shares = [s[0] for s in shares[:workers]]
        lat_records = list(heapq.merge(*(s[0] for s in shares[workers:]), key=lambda r: r[2]))
        lat_expected = [e for s in shares[workers:] for e in s[1]]
        del shares
        n_load = sum(map(len, load_shares))
        msg_bytes = sum(len(r[1]) for s in load_shares for r in s) / max(1, n_load)
        log(f"generated {n_load + len(lat_records):,} records in "
            f"{time.perf_counter() - t0:.0f}s (mean message {msg_bytes:.0f} B); "
            f"{len(overlay.patients)} patients with injected HR episodes")
        load_plans = plan_patients(load_cfg)
        admitted = int(now_ms()) - 86_400_000
        adm_s = admit_all(session, [p.admission(admitted)
                                    for p in (*load_plans, *lat_plans)])
        log(f"admitted {len(load_plans) + len(lat_plans):,} patients in {adm_s:.1f}s")
        result["data"] = {
            "message_bytes_mean": round(msg_bytes, 1),
            "load_patients": args.load_patients, "load_hz_per_patient": round(load_hz, 3),
            "load_readings": n_load,
            "latency_patients": args.patients, "latency_rate_hz": args.rate,
            "latency_readings": len(lat_records),
            "injected_alert_patients": len(overlay.patients),
            "patients_per_abnormal_scenario": {
                "load": max(load_cfg.scenario_mix.values()),
                "latency": max(lat_cfg.scenario_mix.values())},
        }
        marks["ready"] = sampler.snapshot()
        ordered = sorted((r for s in load_shares for r in s), key=lambda r: r[2])

        # -- 1. Cassandra ceiling ------------------------------------------------------------
        census = {p.patient_id: p.admission(admitted) for p in load_plans}
        if not skip >= {"cassandra", "profile"}:
            base_raw = ordered[:max(args.cassandra_rows, 3 * args.chunk)]
            shift = int(now_ms()) - base_raw[-1][2]
            raw_now = [(o.key, o.value, o.ts) for o in shifted(base_raw, shift)]
            readings = validated_readings(raw_now, census, settings)
            by_key = {(r.patient_id, r.ts): r for r in readings}
            pairs = [(by_key[(k.decode(), ts)], (k, v, ts)) for k, v, ts in raw_now
                     if (k.decode(), ts) in by_key]
            readings = [p[0] for p in pairs]
            raw_for = [p[1] for p in pairs]
            if "cassandra" not in skip:
                log("phase 1: Cassandra-only ceiling")
                phases["cassandra"] = phase_cassandra(
                    settings, session, readings[:args.cassandra_rows],
                    raw_for[:args.cassandra_rows], args.chunk, args.alerts)
                phase_end("cassandra", "ready")
            if "profile" not in skip:
                log("phase 1b: VitalsSink.write outside Spark")
                marks["sink_profile0"] = sampler.snapshot()
                phases["sink_profile"] = phase_sink_profile(settings, readings, raw_for,
                                                            args.chunk)
                phase_end("sink_profile", "sink_profile0")
                sp = phases["sink_profile"]
                log(f"  VitalsSink.write: {sp['readings_per_s']:,} readings/s, "
                    f"{sp['cpu_us_per_reading']:.0f} us CPU/reading")
            if "profile" not in skip:
                log("phase 1c: the evaluator (Spark Python worker code) outside Spark")
                marks["eval0"] = sampler.snapshot()
                phases["evaluator_profile"] = phase_evaluator_profile(
                    settings, raw_now, settings.kafka.topic_raw)
                phase_end("evaluator_profile", "eval0")
                ep = phases["evaluator_profile"]
                log(f"  evaluate(): {ep['fit_cpu_us_per_call']:.0f} us per call (patient and "
                    f"batch) + {ep['fit_cpu_us_per_reading']:.0f} us per reading")
            del readings, raw_for, raw_now, base_raw, by_key, pairs

        # -- 2. Kafka ceiling -----------------------------------------------------------------
        options = ProducerOptions(bootstrap=settings.kafka.bootstrap,
                                  topic=settings.kafka.topic_raw)
        if "kafka" not in skip:
            n_k = min(args.kafka_messages, n_load)
            ceiling_topic = settings.kafka.topic_raw.replace(".bench", ".ceiling.bench")
            svc.ensure_topics(settings.model_copy(update={"kafka": settings.kafka.model_copy(
                update={"topic_raw": ceiling_topic})}))
            log(f"phase 2: Kafka-only ceiling: {n_k:,} messages produced by {workers} "
                f"process(es) with the simulator's producer settings, then consumed")
            marks["kafka0"] = sampler.snapshot()
            k_shares = [ordered[w:n_k:workers] for w in range(workers)]
            produced = publish_parallel(
                ProducerOptions(bootstrap=settings.kafka.bootstrap, topic=ceiling_topic),
                k_shares, int(now_ms()) - ordered[n_k - 1][2], realtime=False, timeout=300)
            if produced["errors"] or produced["sent"] != n_k:
                raise RuntimeError(f"producing the Kafka ceiling messages failed: {produced}")
            phase_end("kafka_produce", "kafka0")
            from kafka import KafkaConsumer, TopicPartition

            probe = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None)
            parts = sorted(probe.partitions_for_topic(ceiling_topic) or [])
            ends = probe.end_offsets([TopicPartition(ceiling_topic, p) for p in parts])
            probe.close()
            marks["kafka1"] = sampler.snapshot()
            consumed = consume_parallel(settings, ceiling_topic,
                                        {tp.partition: off for tp, off in ends.items()},
                                        workers)
            phase_end("kafka_consume", "kafka1")
            prod_rate = produced["sent"] / produced["elapsed_s"]
            cons_rate = consumed["consumed"] / consumed["elapsed_s"]
            phases["kafka"] = {
                "messages": n_k, "message_bytes_mean": round(msg_bytes, 1),
                "producer": "devices.publisher.ProducerOptions defaults: " + json.dumps(
                    {k: v for k, v in options.producer_config().items()
                     if k in ("acks", "enable_idempotence", "linger_ms", "batch_size",
                              "compression_type")}),
                "produce": produced | {"messages_per_s": round(prod_rate)},
                "consume": consumed | {"messages_per_s": round(cons_rate)},
                "ceiling_messages_per_s": round(min(prod_rate, cons_rate)),
            }
            log(f"  produce {prod_rate:,.0f}/s, consume {cons_rate:,.0f}/s")
        del ordered

        # -- 3. the stream job -------------------------------------------------------------
        log("phase 3: stream job start")
        marks["job0"] = sampler.snapshot()
        start_s = job.start()
        assert job.proc is not None
        sampler.job_root = job.proc.pid
        log(f"  job running after {start_s:.0f}s (pid {job.proc.pid}); priming with "
            f"{args.prime_rounds} reading(s) per patient")
        primes: list[float] = []
        recs: list = []
        for k in range(args.prime_rounds):
            t_round = time.time()
            round_start = sampler.snapshot()
            recs = prime_records([*load_plans, *lat_plans], k, int(now_ms()) - 60_000)
            publish_parallel(options, [recs], 0, realtime=False, timeout=120)
            done_ok, _ = wait_processed(job, t_round, len(recs), 240, f"priming round {k + 1}")
            primes.append(round(time.time() - t_round, 1))
            if not done_ok:
                raise RuntimeError(f"priming round {k + 1} not processed in 240 s")
            last_round = cpu_between(round_start, sampler.snapshot(), sampler.load)
        phase_end("job_start", "job0")
        phases["job_start"] |= {"seconds_to_running": round(start_s, 1),
                                "prime_rounds_s": primes,
                                "prime_readings_per_round": len(recs)}
        if args.prime_rounds > 1:  # one reading per patient: the cost of a patient's call
            phases["job_start"]["last_prime_round"] = last_round | {
                "cpu_us_per_patient_call": {
                    g: round(v / len(recs) * 1e6) for g, v in last_round["cpu_s"].items()}}
        log(f"  primed: rounds took {primes} s; now {args.idle:g}s without input")
        jpid = jvm_pid(job.proc.pid)
        marks["idle0"] = sampler.snapshot()
        t_idle = time.time()
        time.sleep(args.idle)
        phase_end("idle", "idle0")
        phases["idle"]["batches"] = timeline_report(batch_timeline(job), t_idle, time.time())

        # -- 4. latency -------------------------------------------------------------------
        if "latency" not in skip:
            log(f"phase 4: latency, {args.patients} patients x {args.rate:g} Hz for "
                f"{args.warmup:g}+{args.duration:g}s")
            marks["lat0"] = sampler.snapshot()
            t_start = time.time() + 4.0
            delta = int(t_start * 1000) - PLACEHOLDER_MS
            from backend.alerting.ids import alert_id

            for e in lat_expected:
                e["onset_ts"] += delta
                e["reading_ts"] += delta
                e["alert_id"] = alert_id(e["patient_id"], "ref_hr_high", e["onset_ts"])
            ready, stop = FORK.Event(), FORK.Event()
            lat_q, poll_q = FORK.Queue(), FORK.Queue()
            consumer = FORK.Process(target=_latency_consumer, daemon=True, args=(
                settings, b"blat", args.fetch_wait_ms, ready, stop, lat_q))
            poller = FORK.Process(target=_alert_poller, daemon=True, args=(
                settings, [(e["alert_id"], e["reading_ts"]) for e in lat_expected
                           if e["event"] == "raised"], args.poll_ms / 1000, stop, poll_q))
            consumer.start()
            poller.start()
            if not ready.wait(60):
                raise RuntimeError("latency consumer did not start")
            jfr.start(jpid, "latency")
            pub = publish_parallel(options, [lat_records], delta, realtime=True,
                                   timeout=lat_total_s + 120)
            t_pub_end = time.time()
            jfr.stop(jpid, "latency")
            ok3, _ = wait_processed(job, t_start, pub["sent"], args.tail_timeout,
                                    "latency tail")
            time.sleep(2.0)
            stop.set()
            lat = lat_q.get(timeout=120)
            polled = poll_q.get(timeout=60)
            consumer.join(10)
            poller.join(10)
            phase_end("latency", "lat0")
            t_measure = t_start + args.warmup
            phases["latency"] |= latency_report(
                lat["validated"], lat["alerts"], polled["found"], lat_expected, t_measure,
                args.fetch_wait_ms, args.poll_ms)
            phases["latency"] |= {
                "publisher": pub,
                "readings_sent_in_window": sum(1 for r in lat_records
                                               if r[2] + delta >= t_measure * 1000),
                "offered_readings_per_s": round(pub["sent"] / max(1e-9, t_pub_end - t_start), 1),
                "all_processed": ok3, "cassandra_poll_queries": polled["queries"],
                "batches": rate_over(job.batches(), t_measure, t_pub_end),
                "batch_timeline_ms": timeline_report(batch_timeline(job), t_measure, t_pub_end),
            }
            lr = phases["latency"]
            log(f"  validated p50/p95/p99 {lr['validated_ms'].get('p50')}/"
                f"{lr['validated_ms'].get('p95')}/{lr['validated_ms'].get('p99')} ms; "
                f"alerts on Kafka p99 {lr['alerts_events']['kafka_ms'].get('p99')} ms, "
                f"in Cassandra p99 {lr['alerts_cassandra']['readable_ms'].get('p99')} ms")

        # -- 5. paced load, then drain of the backlog it left ------------------------------
        if "load" not in skip and "latency" not in skip and not phases["latency"]["all_processed"]:
            t_wait = time.time()
            ok5, _ = wait_processed(job, t_start, pub["sent"], 150, "rest of the latency run")
            phases["latency"]["all_processed_after_extra_s"] = (
                round(time.time() - t_wait, 1) if ok5 else None)
        if "load" not in skip:
            log(f"phase 5: paced load {args.load_rate:,.0f} readings/s for "
                f"{args.load_duration:g}s from {workers} process(es), then drain")
            marks["load0"] = sampler.snapshot()
            t_start = time.time() + 3.0
            before = job.processed_since(0)
            jfr.start(jpid, "load")
            pub = publish_parallel(options, load_shares, int(t_start * 1000) - PLACEHOLDER_MS,
                                   realtime=True, timeout=args.load_duration + 180)
            t_pub_end = time.time()
            at_end = job.processed_since(0) - before
            phase_end("load", "load0")
            jfr.stop(jpid, "load")
            jfr.start(jpid, "drain")
            ok4, done4 = wait_processed(job, t_start, pub["sent"], args.catchup_timeout,
                                        "drain")
            t_caught = time.time()
            phase_end("drain", "load")
            jfr.stop(jpid, "drain")
            timeline = batch_timeline(job)
            batches = job.batches()
            backlog = pub["sent"] - at_end
            phases["load"] |= {
                "offered": pub, "offered_readings_per_s": round(
                    pub["sent"] / max(1e-9, t_pub_end - t_start), 1),
                "processed_while_publishing": at_end,
                "processed_per_s_while_publishing": round(at_end / (t_pub_end - t_start), 1),
                "backlog_when_devices_stopped": backlog,
                "while_publishing": rate_over(batches, t_start + 10, t_pub_end),
                "batch_timeline_ms": timeline_report(timeline, t_start + 10, t_pub_end),
            }
            phases["drain"] |= {
                "backlog": backlog, "complete": ok4,
                "seconds": round(t_caught - t_pub_end, 1), "processed_total": done4,
                "rate": rate_over(batches, t_pub_end, t_caught),
                "batch_timeline_ms": timeline_report(timeline, t_pub_end, t_caught),
            }
            log(f"  offered {phases['load']['offered_readings_per_s']:,.0f}/s, processed "
                f"{phases['load']['while_publishing'].get('readings_per_s')}/s while "
                f"publishing; backlog {backlog:,} drained at "
                f"{phases['drain']['rate'].get('readings_per_s')}/s; complete: {ok4}")
        del load_shares
    finally:
        job.stop()
        sampler.stop()
        for name in jfr.files:
            with contextlib.suppress(Exception):
                phases.setdefault(name, {})["jvm_profile"] = jfr.summary(name)
        result["job_log_tail"] = job.tail(15).splitlines() if job.log_path.exists() else []
        if session is not None:
            session.cluster.shutdown()
        if not args.keep_data:
            with contextlib.suppress(Exception), svc.kafka_admin(settings, 30_000) as admin:
                mine = [t for t in admin.list_topics()
                        if t.endswith("." + result["settings"]["topics_suffix"])]
                if mine:
                    admin.delete_topics(mine, timeout_ms=30_000)
            with contextlib.suppress(Exception):
                s2 = connect(settings.cassandra, keyspace=False, wait_seconds=10)
                s2.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra.keyspace}",
                           timeout=120)
                s2.cluster.shutdown()
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept: job log and checkpoint under {tmp}")

    result["phases"] = phases
    result["peak_rss_mib"] = {g: round(v / 2**20) for g, v in sampler.peak.items()}
    result["load_while_running"] = {
        "mean": round(sum(v for _, v in sampler.load) / max(1, len(sampler.load)), 2),
        "max": round(max((v for _, v in sampler.load), default=0.0), 2)}
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["run_seconds"] = round(time.monotonic() - t_run, 1)
    for name, n in (("load", phases.get("load", {}).get("processed_while_publishing")),
                    ("drain", (phases.get("drain", {}).get("processed_total") or 0)
                     - (phases.get("load", {}).get("processed_while_publishing") or 0)),
                    ("latency", phases.get("latency", {}).get("publisher", {}).get("sent"))):
        if n and "resources" in phases.get(name, {}):
            phases[name]["cpu_per_reading"] = cpu_per_reading(
                phases[name]["resources"], n, result["machine"]["nproc"] or 2)
    pipeline = {"drain": phases.get("drain", {}).get("rate", {}).get("readings_per_s"),
                "paced": phases.get("load", {}).get("while_publishing", {}).get(
                    "readings_per_s")}
    ratios = {}
    for label, rate in pipeline.items():
        if not rate:
            continue
        if "kafka" in phases:
            ratios[f"{label}_vs_kafka_ceiling"] = round(
                rate / phases["kafka"]["ceiling_messages_per_s"], 3)
        if "cassandra" in phases:
            ratios[f"{label}_vs_cassandra_readings_write"] = round(
                rate / phases["cassandra"]["readings_write"]["rows_per_s"], 3)
            ratios[f"{label}_vs_cassandra_sink_path"] = round(
                rate / phases["cassandra"]["sink_cassandra_path"]["readings_per_s"], 3)
    result["ratios"] = ratios
    print_table(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        log(f"wrote {args.out}")
    return 0


def cpu_per_reading(res: dict, n: int, cores: int) -> dict:
    """CPU microseconds per processed reading, per process group, and the rate the
    pipeline's processes (job, Kafka, Cassandra) would reach if CPU-bound on ``cores``
    otherwise idle cores with perfect overlap (an upper bound: the job has serial parts)."""
    cpu = res["cpu_s"]
    out = {g: round(v / n * 1e6, 1) for g, v in cpu.items()}
    job = sum(v for g, v in cpu.items() if g.startswith("job_"))
    pipeline = job + cpu.get("kafka", 0.0) + cpu.get("cassandra", 0.0)
    out["job_total"] = round(job / n * 1e6, 1)
    out["job_kafka_cassandra"] = round(pipeline / n * 1e6, 1)
    out["cpu_bound_readings_per_s_upper_bound"] = round(cores * n / pipeline) if pipeline else None
    return out


def print_table(r: dict) -> None:
    p = r["phases"]
    rows: list[tuple[str, str]] = []
    m = r["machine"]
    rows.append(("machine", f"{m['nproc']} cores {m['cpu_model']}, {m['ram_gib']} GiB; load "
                            f"before {r['load_before']}, while running mean "
                            f"{r['load_while_running']['mean']} max "
                            f"{r['load_while_running']['max']}"))
    s = r["settings"]
    rows.append(("settings", f"spark {s['spark']}, kafka partitions {s['kafka_partitions']}"))
    if "kafka" in p:
        k = p["kafka"]
        rows.append(("Kafka-only ceiling", f"{k['ceiling_messages_per_s']:,} msg/s (produce "
                     f"{k['produce']['messages_per_s']:,}/s, consume "
                     f"{k['consume']['messages_per_s']:,}/s; {k['message_bytes_mean']:.0f} B)"))
    if "cassandra" in p:
        c = p["cassandra"]
        rows.append(("Cassandra-only ceiling", f"{c['readings_write']['rows_per_s']:,} rows/s "
                     f"ReadingStore.write; raw+history+latest "
                     f"{c['sink_cassandra_path']['readings_per_s']:,} readings/s; "
                     f"raise_alert {c['alerts']['raise_ms_each']} ms each"))
    lp = p.get("job_start", {}).get("last_prime_round")
    if lp:
        c = lp["cpu_us_per_patient_call"]
        rows.append(("in Spark, 1 reading/patient", f"CPU us per patient call: workers "
                     f"{c.get('job_workers_py')}, JVM {c.get('job_jvm')}, driver "
                     f"{c.get('job_driver_py')} (warm priming round, {lp['wall_s']} s)"))
    if "evaluator_profile" in p:
        ep = p["evaluator_profile"]
        rows.append(("evaluator alone (no Spark)", f"{ep['fit_cpu_us_per_call']} us CPU per "
                     f"call (patient x batch) + {ep['fit_cpu_us_per_reading']} us per reading"))
    if "sink_profile" in p:
        sp = p["sink_profile"]
        rows.append(("VitalsSink.write alone", f"{sp['readings_per_s']:,} readings/s "
                     f"({sp['cpu_us_per_reading']} us CPU/reading)"))
    if "load" in p:
        ld = p["load"]
        wp = ld["while_publishing"]
        rows.append(("pipeline, paced load", f"offered {ld['offered_readings_per_s']:,}/s, "
                     f"processed {ld['processed_per_s_while_publishing']}/s (over whole "
                     f"batches: {wp.get('readings_per_s')}/s); backlog when devices stopped "
                     f"{ld['backlog_when_devices_stopped']:,}"))
    if "drain" in p and "rate" in p["drain"]:
        d = p["drain"]
        rows.append(("pipeline, drain of that backlog",
                     f"{d['rate'].get('readings_per_s')} readings/s over "
                     f"{d['rate'].get('batches')} batches; complete {d['complete']} "
                     f"after {d['seconds']} s"))
        cpr = d.get("cpu_per_reading", {})
        if cpr:
            rows.append(("  CPU us per reading", ", ".join(
                f"{g} {cpr.get(g)}" for g in (*GROUPS, "job_kafka_cassandra"))))
            bound = cpr.get("cpu_bound_readings_per_s_upper_bound")
            rows.append(("  CPU-bound upper bound", f"{bound} readings/s on idle cores"))
    if "latency" in p:
        lt = p["latency"]

        def pp(d: dict) -> str:
            return (f"p50 {d.get('p50')} / p95 {d.get('p95')} / p99 {d.get('p99')} ms "
                    f"(n={d.get('n')})")
        rows.append(("latency -> vitals.validated", pp(lt["validated_ms"])
                     + f" of {lt.get('readings_sent_in_window')} sent"))
        rows.append(("latency -> alerts.events", pp(lt["alerts_events"]["kafka_ms"])))
        rows.append(("latency -> alert in Cassandra", pp(lt["alerts_cassandra"]["readable_ms"])))
    if "idle" in p:
        idle = p["idle"]
        job_cpu = sum(v for g, v in idle["resources"]["cpu_s"].items() if g.startswith("job_"))
        eb = idle.get("batches", {}).get("empty_batch_total", {})
        rows.append(("job without input", f"{idle['batches'].get('empty_batches')} empty "
                     f"batches in {idle['resources']['wall_s']} s (p50 {eb.get('p50')} ms "
                     f"each); job CPU {job_cpu / idle['resources']['wall_s']:.2f} cores"))
    for name in ("latency", "drain"):
        tl = p.get(name, {}).get("batch_timeline_ms")
        if tl:
            rows.append((f"{name}: batch p50 ms", ", ".join(
                f"{k} {tl[k].get('p50')}" for k in ("plan", "execute", "sink_write", "commit",
                                                    "total") if k in tl)))
        prof = p.get(name, {}).get("jvm_profile", {}).get("groups")
        if prof:
            rows.append((f"{name}: JVM samples", ", ".join(
                f"{k} {v:.0%}" for k, v in list(prof.items())[:6])))
    rows.append(("peak RSS MiB", ", ".join(f"{g} {v:,}" for g, v in r["peak_rss_mib"].items())))
    if r.get("ratios"):
        rows.append(("ratios", ", ".join(f"{k} {v:.1%}" for k, v in r["ratios"].items())))
    width = max(len(a) for a, _ in rows)
    print()
    for a, b in rows:
        print(f"{a:<{width}}  {b}")
    print()


if __name__ == "__main__":
    sys.exit(main())

"""The soak (issue 12, part 3): the single-node system under a steady paced load for hours,
the web app serving 8 ward screens, and what must not grow sampled throughout.

    .venv/bin/python bench/soak.py --minutes 120 --out docs/soak-2h.json --plot docs/soak-2h.png

What runs, each a real process as the demo runs it: one Kafka broker and one Cassandra
node of the run's own (a private cache directory, ports 25092 / 25042, so the soak is not
disturbed by, and does not disturb, anything on the shared servers), ``icu stream run``
(Spark local mode: the alarm, persist and risk queries), ``icu alerts manager``, ``icu
mail catcher``, ``icu web run``; the load is ``devices.generator`` (8 wards, deterioration
scenarios starting throughout the run) sent by ``devices.publisher`` paced in real time;
8 ward screens (``harness.ward_screen``, one per ward) poll the app as a browser does,
every ``web.ward_update_ms``.

Sampled every ``--every`` seconds:

* the job's memory: RSS of the stream job's process tree (JVM, Python driver, Python
  workers) and its JVM heap (``jstat -gc``); every 10 minutes the live heap, the heap
  used right after a full GC (``jcmd GC.run``), which is what grows if anything leaks;
* the Kafka lag: per streaming query, the raw or validated records on the topic beyond
  the query's last committed batch (its checkpoint's ``offsets`` / ``commits``), and the
  alert manager's consumer-group lag on the alerts topic;
* Cassandra's pending compactions (``nodetool compactionstats``) and its live data size;
* the checkpoint directory's size, and RSS of the web app, the alert manager, the broker
  and the node;

and continuously: each reading's delay (device time to ``vitals.validated``, per minute)
and each screen update's answer time.

The bounds (``BOUNDS``), judged after a 10-minute warm-up, compare the first and the last
30 minutes: a leak or a falling-behind shows as growth between them. Exit status 1 when
one is broken.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import Sampler, dist, log, machine_info, percentile

WARDS = 8
WARM_UP_S = 600.0
WINDOW_S = 1800.0
LIVE_HEAP_EVERY_S = 600.0
# per 25 patients; the rest stable. Onsets spread over the whole run (``--minutes``).
SCENARIOS = {"sepsis": 2, "desaturation": 2, "tachycardia": 2, "hypotension": 1,
             "motion_artefact": 1}
BOUNDS = {
    # the live heap of the last window at most this much above the first's
    "live_heap_growth": 0.15,
    # the stream tree's RSS of the last window at most this much above the first's
    "job_rss_growth": 0.15,
    # each query's lag in seconds of input: p99 of its samples in each window at most its
    # trigger interval plus this, and the last window's mean no more than 1 s above the
    # first's
    "query_lag_p99_beyond_trigger_s": 5.0,
    "alert_manager_lag_max": 50,  # records behind on the alerts topic
    # pending compactions: never above this after warm-up; last window's mean no more
    # than 2 above the first's
    "pending_compactions_max": 8,
    # a reading's delay, per window p99, in seconds, and the last no more than 1 s worse
    "reading_delay_p99_s": 5.0,
}


class Probe(threading.Thread):
    """Follows ``vitals.validated`` (read committed): each reading's delay, per minute."""

    def __init__(self, settings) -> None:
        super().__init__(name="soak-probe", daemon=True)
        self.settings = settings
        self.halt = threading.Event()
        self.minutes: dict[int, list[float]] = defaultdict(list)

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            self.settings.kafka.topic_validated, bootstrap_servers=self.settings.kafka.bootstrap,
            auto_offset_reset="latest", enable_auto_commit=False, group_id=None,
            isolation_level="read_committed", consumer_timeout_ms=500)
        try:
            while not self.halt.is_set():
                for m in consumer:
                    now = time.time()
                    ts = json.loads(m.value)["ts"] / 1000
                    self.minutes[int(now // 60)].append(now - ts)
                    if self.halt.is_set():
                        break
        finally:
            consumer.close()

    def per_minute(self) -> list[dict]:
        out = []
        for minute in sorted(self.minutes):
            v = sorted(self.minutes[minute])
            out.append({"t": minute * 60, "n": len(v), "p50": round(percentile(v, 50), 3),
                        "p99": round(percentile(v, 99), 3), "max": round(v[-1], 3)})
        return out


class ScreenPoller(threading.Thread):
    """One ward screen, polling at the browser's interval; answer times kept per minute."""

    def __init__(self, base: str, username: str, password: str, ward: str,
                 period_s: float) -> None:
        super().__init__(name=f"soak-screen-{ward}", daemon=True)
        self.args = (base, username, password, ward)
        self.period_s = period_s
        self.halt = threading.Event()
        self.minutes: dict[int, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.delayed_polls = 0
        self.sign_ins = 0

    def run(self) -> None:
        from harness.ward_screen import WardScreen

        screen = None
        while not self.halt.wait(self.period_s):
            try:
                if screen is None:
                    screen = WardScreen(*self.args)
                    screen.login(timeout=30)
                    self.sign_ins += 1
                t = time.monotonic()
                r = screen.tick(timeout=30)
                took = time.monotonic() - t
                if r.status_code in (200, 204):
                    self.minutes[int(time.time() // 60)].append(took)
                    self.delayed_polls += screen.delayed
                else:
                    self.errors[f"http {r.status_code}"] += 1
                    if r.status_code in (401, 403):
                        screen = None
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                screen = None


def checkpoint_lag(checkpoint_dir: Path, end_offsets: dict[tuple[str, int], int]) -> dict:
    """Per query (a directory with ``offsets`` and ``commits``) and source topic (its
    name without the run's suffix): records beyond the query's last committed batch."""
    out: dict[str, dict[str, int]] = {}
    for offsets in checkpoint_dir.rglob("offsets"):
        commits = offsets.parent / "commits"
        if not commits.is_dir():
            continue
        done = [int(p.name) for p in commits.iterdir() if p.name.isdigit()]
        if not done:
            continue
        try:
            positions = json.loads((offsets / str(max(done))).read_text().splitlines()[-1])
        except (OSError, ValueError, IndexError):
            continue
        lag: dict[str, int] = {}
        for topic, parts in positions.items():
            name = ".".join(topic.split(".")[:2])
            if name == "stream.ticks":
                continue  # the job's own clock, not input
            lag[name] = sum(max(0, end_offsets.get((topic, int(part)), committed) - committed)
                            for part, committed in parts.items())
        out[str(offsets.parent.relative_to(checkpoint_dir))] = lag
    return out


def lag_seconds(per_topic: dict[str, int], rate: float) -> float:
    """A query's lag in seconds of input: its readings topics (raw, validated) carry
    ``rate`` records a second; the dead letters (about 1 %) are too few to matter."""
    return max((n / rate for t, n in per_topic.items() if t != "vitals.deadletter"),
               default=0.0)


def end_offsets(consumer, topics: list[str]) -> dict[tuple[str, int], int]:
    from kafka import TopicPartition

    parts = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
    return {(tp.topic, tp.partition): o for tp, o in consumer.end_offsets(parts).items()}


def group_lag(settings, group: str, topic: str, ends: dict[tuple[str, int], int]) -> int:
    from ops.kafka_server import kafka_admin

    with kafka_admin(settings, 10_000) as admin:
        committed = admin.list_group_offsets({group: None}).get(group, {})
    return sum(max(0, ends.get((tp.topic, tp.partition), 0) - om.offset)
               for tp, om in committed.items() if tp.topic == topic)


def jvm_pid(root: int) -> int | None:
    import psutil

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(root).children(recursive=True):
            if "java" in child.name():
                return child.pid
    return None


def heap_used_mib(pid: int) -> float | None:
    """Heap in use (survivors, eden, old), from ``jstat -gc``."""
    out = subprocess.run(["jstat", "-gc", str(pid)], capture_output=True, text=True,
                         timeout=30).stdout.split("\n")
    if len(out) < 2:
        return None
    row = dict(zip(out[0].split(), out[1].split(), strict=False))
    with contextlib.suppress(KeyError, ValueError):
        return round(sum(float(row[k]) for k in ("S0U", "S1U", "EU", "OU")) / 1024, 1)
    return None


def live_heap_mib(pid: int) -> float | None:
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=60)
    return heap_used_mib(pid)


def pending_compactions(settings) -> int | None:
    from ops.backup import local_nodes, nodetool

    text = nodetool(settings, local_nodes(settings)[0], "compactionstats", timeout=120)
    m = re.search(r"pending tasks:?\s+(\d+)", text)
    return int(m.group(1)) if m else None


def dir_mib(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):  # compaction and Spark delete files meanwhile
            if p.is_file():
                total += p.stat().st_size
    return round(total / 2**20, 1)


class Soak:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.samples: list[dict] = []
        self.halt = threading.Event()
        self.procs: dict = {}
        self.screens: list[ScreenPoller] = []
        self.publish_stats = None

    def setup(self) -> None:
        from backend.auth_policy import Role
        from backend.settings import Settings
        from backend.storage import census
        from backend.storage.cassandra import connect
        from backend.storage.migrate import migrate
        from backend.users import create_user
        from devices.generator import GeneratorConfig, plan_patients
        from harness.campaign import platform_settings
        from harness.isolation import Scratch
        from harness.process import IcuProcess, StreamJob
        from harness.replicated_set import private_node
        from ops.services import start_all

        base = Settings().model_copy(update={"allow_insecure_services": True})  # loopback
        self.server_settings = private_node(base, self.work / "cache", 25000)
        t = time.monotonic()
        self.services = start_all(self.server_settings, timeout=300)
        log(f"Kafka and Cassandra up in {time.monotonic() - t:.0f} s")
        s = Scratch().isolate(self.server_settings, self.work / "checkpoint", marker="soak")
        s = self.settings = platform_settings(s, spark_cluster=False)
        self.db = connect(s.cassandra, keyspace=False, wait_seconds=60)
        migrate(self.db, s)
        self.db.set_keyspace(s.cassandra.keyspace)
        scale = max(1, self.args.patients // 25)
        run_s = self.args.minutes * 60
        self.gen_cfg = GeneratorConfig(
            start_ms=0, patients=self.args.patients, wards=WARDS, rate_hz=1.0, seed=11,
            id_prefix="soak", onset_range_s=(60.0, max(120.0, run_s - 600)),
            scenario_mix={k: v * scale for k, v in SCENARIOS.items()})
        self.plans = plan_patients(self.gen_cfg)
        admitted = int(time.time() * 1000) - 3_600_000
        for p in self.plans:
            census.admit(self.db, p.admission(admitted))
        wards = sorted({p.ward for p in self.plans})
        users = []
        for ward in wards:
            name, pw = f"soak-{ward.lower()}", secrets.token_urlsafe(16)
            create_user(self.db, name, pw, Role.NURSE, f"Ward screen {ward}", actor="soak",
                        via="soak")
            users.append((name, pw, ward))
        (self.work / "mail").mkdir()
        self.procs = {
            "smtp": IcuProcess(s, ["mail", "catcher", "--dir", str(self.work / "mail")],
                               self.work / "smtp.log", "mail catcher on"),
            "alert-manager": IcuProcess(s, ["alerts", "manager"], self.work / "manager.log",
                                        "alert manager running"),
            "job": StreamJob(s, self.work / "stream.log"),
            "web": IcuProcess(s, ["web", "run"], self.work / "web.log", "web app listening"),
        }
        for name, proc in self.procs.items():
            log(f"{name} ready in {proc.start(300):.1f} s")
        self.sampler = Sampler(interval=3600)  # sampled by ``_sample``, not its own loop
        for name, proc in self.procs.items():
            self.sampler.watch(name, proc.pid)
        for name, svc in self.services.items():
            self.sampler.watch(name, svc.pid)
        base_url = f"http://127.0.0.1:{s.web.port}"
        self.screens = [ScreenPoller(base_url, u, pw, ward, s.web.ward_update_ms / 1000)
                        for u, pw, ward in users]
        self.probe = Probe(s)

    def _records(self):
        from devices.faults import inject
        from devices.generator import generate

        cfg = replace(self.gen_cfg, start_ms=self.start_ms)
        # 1 % malformed (devices.faults): the dead-letter path runs for hours too
        for rec in inject(generate(cfg, self.plans), 0.01, seed=11):
            if self.halt.is_set():
                return
            yield rec

    def _load(self) -> None:
        from harness.campaign import publish_paced

        self.publish_stats = publish_paced(self.settings, self._records())

    def _sample(self, consumer, with_live_heap: bool) -> dict:
        from ops.cassandra_server import cassandra_spec
        from streaming.persist_job import persist_checkpoint_dir
        from streaming.risk_job import risk_checkpoint_dir

        s = self.settings
        t = s.kafka
        row: dict = {"t": round(time.time(), 1)}
        self.sampler.sample()
        rss = self.sampler.rss_series[-1][1]
        row["rss_mib"] = {k: round(v / 2**20, 1) for k, v in sorted(rss.items())}
        pid = jvm_pid(self.procs["job"].pid)
        if pid:
            row["heap_mib"] = heap_used_mib(pid)
            if with_live_heap:
                row["live_heap_mib"] = live_heap_mib(pid)
        ends = end_offsets(consumer, [t.topic_raw, t.topic_validated, t.topic_alerts])
        row["query_lag"] = {}
        for root in (s.spark.checkpoint_dir, persist_checkpoint_dir(s), risk_checkpoint_dir(s)):
            row["query_lag"].update({f"{root.name}/{q}".rstrip("/."): n
                                     for q, n in checkpoint_lag(root, ends).items()})
        try:
            row["alert_manager_lag"] = group_lag(s, s.alert_manager.consumer_group,
                                                 t.topic_alerts, ends)
        except Exception as exc:  # noted, and the next sample tries again
            row["alert_manager_lag_error"] = repr(exc)[:300]
        try:
            row["pending_compactions"] = pending_compactions(self.server_settings)
        except Exception as exc:
            row["pending_compactions_error"] = repr(exc)[:300]
        row["cassandra_data_mib"] = dir_mib(cassandra_spec(self.server_settings).var / "data")
        row["checkpoint_mib"] = dir_mib(s.spark.checkpoint_dir)
        row["raw_records"] = sum(v for (topic, _), v in ends.items() if topic == t.topic_raw)
        return row

    def run(self) -> None:
        from kafka import KafkaConsumer

        self.start_ms = int(time.time() * 1000) + 2000
        self.started_at = self.start_ms / 1000
        loader = threading.Thread(target=self._load, name="soak-load", daemon=True)
        loader.start()
        self.probe.start()
        for screen in self.screens:
            screen.start()
        consumer = KafkaConsumer(bootstrap_servers=self.settings.kafka.bootstrap,
                                 group_id=None)
        end = self.started_at + self.args.minutes * 60
        last_live = 0.0
        try:
            while time.time() < end:
                live = time.time() - last_live >= LIVE_HEAP_EVERY_S
                try:
                    row = self._sample(consumer, live)
                except Exception as exc:  # one bad sample must not end a two-hour run
                    log(f"sample failed: {exc!r}")
                    row = None
                if row is not None:
                    if live:
                        last_live = time.time()
                    self.samples.append(row)
                    log(f"{(row['t'] - self.started_at) / 60:5.1f} min: "
                        f"job {row['rss_mib'].get('job')} MiB, heap {row.get('heap_mib')} "
                        f"(live {row.get('live_heap_mib', '-')}), lag {row['query_lag']}, "
                        f"manager lag {row.get('alert_manager_lag')}, pending compactions "
                        f"{row.get('pending_compactions')}")
                for name, proc in self.procs.items():
                    if not proc.alive():
                        raise RuntimeError(f"{name} exited:\n{proc.tail()}")
                time.sleep(max(0.0, min(self.args.every, end - time.time())))
        finally:
            consumer.close()
            self.halt.set()
            loader.join(120)
            self.probe.halt.set()
            for screen in self.screens:
                screen.halt.set()
            for screen in self.screens:  # before the web app stops: no teardown errors
                screen.join(60)

    def stop(self) -> None:
        from ops.services import stop_all

        self.halt.set()
        for proc in reversed(list(self.procs.values())):
            with contextlib.suppress(Exception):
                proc.stop()
        if hasattr(self, "db"):
            self.db.cluster.shutdown()
        if hasattr(self, "server_settings"):
            stop_all(self.server_settings)

    def report(self) -> dict:
        from streaming.persist_job import persist_checkpoint_dir
        from streaming.risk_job import risk_checkpoint_dir
        from streaming.vitals_job import checkpoint_location

        screens_per_minute: dict[int, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        for screen in self.screens:
            for minute, v in screen.minutes.items():
                screens_per_minute[minute].extend(v)
            for k, n in screen.errors.items():
                errors[k] += n
        stats = self.publish_stats
        return {
            "machine": self.machine, "args": vars(self.args) | {"out": str(self.args.out),
                                                                "plot": str(self.args.plot)},
            "started_at": self.started_at, "patients": self.args.patients, "wards": WARDS,
            "publish": {"sent": stats.sent, "failed": stats.failed} if stats else {},
            "query_triggers_s": {
                f"{self.settings.spark.checkpoint_dir.name}/{checkpoint_location(self.settings).name}":
                    self.settings.spark.trigger_seconds,
                persist_checkpoint_dir(self.settings).name:
                    self.settings.spark.persist_trigger_seconds,
                risk_checkpoint_dir(self.settings).name: self.settings.risk.trigger_seconds},
            "samples": self.samples,
            "reading_delay_per_minute": self.probe.per_minute(),
            "screen_answer_per_minute": [
                {"t": m * 60, **dist(1000 * x for x in v)}
                for m, v in sorted(screens_per_minute.items())],
            "screen_errors": dict(errors),
            "screen_sign_ins": sum(s.sign_ins for s in self.screens),
            "screen_delayed_polls": sum(s.delayed_polls for s in self.screens),
        }


def judge(report: dict, warm_up_s: float = WARM_UP_S, window_s: float = WINDOW_S) -> dict:
    """Each bound of ``BOUNDS``: the measured values and whether it held."""
    t0 = report["started_at"] + warm_up_s
    samples = [s for s in report["samples"] if s["t"] >= t0]
    last_t = report["samples"][-1]["t"] if report["samples"] else t0
    first = [s for s in samples if s["t"] < t0 + window_s]
    last = [s for s in samples if s["t"] >= last_t - window_s]
    rate = report["patients"]  # records per second of input (1 Hz per bed)
    out: dict = {}

    def values(rows: list[dict], key: str, sub: str | None = None) -> list[float]:
        got = [(r.get(key) or {}).get(sub) if sub else r.get(key) for r in rows]
        return [v for v in got if v is not None]

    live_first, live_last = values(first, "live_heap_mib"), values(last, "live_heap_mib")
    if live_first and live_last:
        growth = max(live_last) / mean(live_first) - 1
        out["live_heap"] = {"first_mean_mib": round(mean(live_first), 1),
                            "last_max_mib": max(live_last), "growth": round(growth, 3),
                            "ok": growth <= BOUNDS["live_heap_growth"]}
    rss_first, rss_last = values(first, "rss_mib", "job"), values(last, "rss_mib", "job")
    if rss_first and rss_last:
        growth = mean(rss_last) / mean(rss_first) - 1
        out["job_rss"] = {"first_mean_mib": round(mean(rss_first), 1),
                          "last_mean_mib": round(mean(rss_last), 1),
                          "growth": round(growth, 3), "ok": growth <= BOUNDS["job_rss_growth"]}
    queries = sorted({q for s in samples for q in s.get("query_lag", {})})
    for q in queries:
        trigger = report["query_triggers_s"].get(q, 0.0)
        per_window = []
        for rows in (first, last):
            v = sorted(lag_seconds((r.get("query_lag") or {}).get(q, {}), rate) for r in rows)
            per_window.append((percentile(v, 99) if v else 0.0, mean(v) if v else 0.0))
        worst_p99 = max(p for p, _ in per_window)
        ok = worst_p99 <= trigger + BOUNDS["query_lag_p99_beyond_trigger_s"] \
            and per_window[1][1] <= per_window[0][1] + 1
        out[f"lag {q}"] = {"trigger_s": trigger,
                           "first_p99_s": round(per_window[0][0], 2),
                           "last_p99_s": round(per_window[1][0], 2),
                           "first_mean_s": round(per_window[0][1], 2),
                           "last_mean_s": round(per_window[1][1], 2), "ok": ok}
    am = values(samples, "alert_manager_lag")
    if am:
        out["alert_manager_lag"] = {"max": max(am),
                                    "ok": max(am) <= BOUNDS["alert_manager_lag_max"]}
    pc_all = values(samples, "pending_compactions")
    pc_first, pc_last = values(first, "pending_compactions"), values(last, "pending_compactions")
    if pc_all and pc_first and pc_last:
        out["pending_compactions"] = {
            "max": max(pc_all), "first_mean": round(mean(pc_first), 2),
            "last_mean": round(mean(pc_last), 2),
            "ok": max(pc_all) <= BOUNDS["pending_compactions_max"]
            and mean(pc_last) <= mean(pc_first) + 2}
    delays = [m for m in report["reading_delay_per_minute"] if m["t"] >= t0]
    if delays:
        def p99(rows: list[dict]) -> float:
            return max((r["p99"] for r in rows), default=0.0)

        d_first = [m for m in delays if m["t"] < t0 + window_s]
        d_last = [m for m in delays if m["t"] >= delays[-1]["t"] - window_s]
        med_first = percentile(sorted(r["p99"] for r in d_first), 50)
        med_last = percentile(sorted(r["p99"] for r in d_last), 50)
        out["reading_delay"] = {
            "first_worst_minute_p99_s": p99(d_first), "last_worst_minute_p99_s": p99(d_last),
            "first_median_minute_p99_s": round(med_first, 3),
            "last_median_minute_p99_s": round(med_last, 3),
            "ok": p99(d_first + d_last) <= BOUNDS["reading_delay_p99_s"]
            and med_last <= med_first + 1}
    return out


def markdown(report: dict) -> str:
    """The judged bounds as the table of docs/reliability.md."""
    rows = ["| measure | first 30 min | last 30 min | bound | held |", "|---|---|---|---|---|"]
    for name, v in report["judged"].items():
        ok = "yes" if v["ok"] else "**no**"
        if name == "live_heap":
            rows.append(f"| JVM live heap (after full GC) | {v['first_mean_mib']} MiB (mean) "
                        f"| {v['last_max_mib']} MiB (max) | +{BOUNDS['live_heap_growth']:.0%} "
                        f"| {ok} ({v['growth']:+.1%}) |")
        elif name == "job_rss":
            rows.append(f"| stream job RSS (JVM + Python) | {v['first_mean_mib']} MiB "
                        f"| {v['last_mean_mib']} MiB | +{BOUNDS['job_rss_growth']:.0%} "
                        f"| {ok} ({v['growth']:+.1%}) |")
        elif name.startswith("lag "):
            bound = v["trigger_s"] + BOUNDS["query_lag_p99_beyond_trigger_s"]
            rows.append(f"| lag of {name[4:]} (s of input), p99 / mean "
                        f"| {v['first_p99_s']} / {v['first_mean_s']} "
                        f"| {v['last_p99_s']} / {v['last_mean_s']} "
                        f"| p99 <= {bound:g}, mean +1 | {ok} |")
        elif name == "alert_manager_lag":
            rows.append(f"| alert manager lag (records), max | | {v['max']} "
                        f"| <= {BOUNDS['alert_manager_lag_max']} | {ok} |")
        elif name == "pending_compactions":
            rows.append(f"| pending compactions, mean (max {v['max']}) | {v['first_mean']} "
                        f"| {v['last_mean']} | max <= {BOUNDS['pending_compactions_max']}, "
                        f"mean +2 | {ok} |")
        elif name == "reading_delay":
            rows.append(f"| reading delay per minute p99: median / worst minute (s) "
                        f"| {v['first_median_minute_p99_s']} / {v['first_worst_minute_p99_s']} "
                        f"| {v['last_median_minute_p99_s']} / {v['last_worst_minute_p99_s']} "
                        f"| worst <= {BOUNDS['reading_delay_p99_s']:g}, median +1 | {ok} |")
    return "\n".join(rows)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = report["started_at"]
    s = report["samples"]
    minutes = [(r["t"] - t0) / 60 for r in s]
    fig, axes = plt.subplots(4, 1, figsize=(11, 13), sharex=True)
    ax = axes[0]
    ax.plot(minutes, [r["rss_mib"].get("job") for r in s], label="stream job RSS (JVM + Python)")
    ax.plot(minutes, [r.get("heap_mib") for r in s], label="JVM heap in use", alpha=0.6)
    live = [(m, r["live_heap_mib"]) for m, r in zip(minutes, s, strict=True)
            if r.get("live_heap_mib")]
    if live:
        ax.plot(*zip(*live, strict=True), "o-", label="JVM live heap (after full GC)")
    ax.plot(minutes, [r["rss_mib"].get("web") for r in s], label="web app RSS", ls="--")
    ax.set_ylabel("MiB")
    ax.set_title("Stream job memory")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    rate = report["patients"]
    for q in sorted({q for r in s for q in r.get("query_lag", {})}):
        ax.plot(minutes, [lag_seconds((r.get("query_lag") or {}).get(q, {}), rate) for r in s],
                label=f"query {q} (trigger {report['query_triggers_s'].get(q, 0):g} s)")
    ax.plot(minutes, [(r.get("alert_manager_lag") or 0) / rate for r in s],
            label="alert manager group (alerts topic records / readings rate)", ls=":")
    ax.set_ylabel("seconds of input behind")
    ax.set_title(f"Kafka lag per query, beyond its last committed batch ({rate} readings/s)")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    ax.plot(minutes, [r.get("pending_compactions") for r in s], "o-", ms=3,
            label="pending compactions")
    ax.set_ylabel("tasks")
    ax2 = ax.twinx()
    ax2.plot(minutes, [r.get("cassandra_data_mib") for r in s], color="grey", ls=":",
             label="Cassandra data (MiB)")
    ax2.set_ylabel("MiB")
    ax.set_title("Cassandra")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    ax = axes[3]
    d = report["reading_delay_per_minute"]
    ax.plot([(m["t"] - t0) / 60 for m in d], [m["p99"] for m in d], label="reading delay p99")
    ax.plot([(m["t"] - t0) / 60 for m in d], [m["p50"] for m in d], label="reading delay p50")
    sc = report["screen_answer_per_minute"]
    ax.plot([(m["t"] - t0) / 60 for m in sc], [m.get("p99", 0) / 1000 for m in sc],
            label="ward screen update p99", ls="--")
    ax.set_ylabel("seconds")
    ax.set_xlabel("minutes into the soak")
    ax.set_title("Per minute: device to vitals.validated; screen update answer")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=120.0)
    ap.add_argument("--patients", type=int, default=200, help="beds at 1 Hz, over 8 wards")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=Path("docs/soak.json"))
    ap.add_argument("--plot", type=Path, default=Path("docs/soak.png"))
    ap.add_argument("--warm-up", type=float, default=WARM_UP_S, help="seconds not judged")
    ap.add_argument("--window", type=float, default=WINDOW_S,
                    help="seconds of the first and last windows compared")
    ap.add_argument("--keep", action="store_true", help="leave the work directory")
    ap.add_argument("--table", type=Path, default=None,
                    help="print the markdown table of a finished run's JSON, and exit")
    args = ap.parse_args()
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return 0

    # SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so everything started is stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="icu-soak-"))
    soak = Soak(args, work)
    soak.machine = machine_info()
    log(f"work directory {work}")
    failure = None
    try:
        soak.setup()
        soak.run()
    except Exception as exc:  # a part died: what was measured until then is still reported
        failure = f"{type(exc).__name__}: {exc}"
        log(f"soak ended early: {failure}")
        if not soak.samples:
            raise
    finally:
        soak.stop()
    report = soak.report()
    report["failure"] = failure
    report["bounds"] = BOUNDS
    report["judged"] = judge(report, args.warm_up, args.window)
    args.out.write_text(json.dumps(report, indent=1))
    plot(report, args.plot)
    broken = {k: v for k, v in report["judged"].items() if not v["ok"]}
    print(json.dumps(report["judged"], indent=1))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if broken or failure else 0


if __name__ == "__main__":
    raise SystemExit(main())

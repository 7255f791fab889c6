"""N ward screens against one web process, as browsers would poll it.

    .venv/bin/python bench/bench_ward_screens.py [--screens 50] [--beds 32]
                                                [--duration 600] [--threads 8]

What runs (on its own Kafka topics and Cassandra keyspace, removed at the end unless
``--keep``):

* one web process: the real app (``icu web run``, waitress with ``--threads``), its one
  live follower reading ``vitals.validated`` / ``alerts.events`` / ``alerts.lifecycle``;
* a publisher: ``--beds`` beds x 1 Hz ``ValidatedReading`` on ``vitals.validated`` (what
  the stream job publishes; the job itself is not part of this benchmark), and alarms
  raised, acknowledged and cleared on a few beds;
* ``--screens`` screens, each its own signed-in user with its own session cookie, CSRF
  token and ``dcc.Store`` state: every second a ``POST /_dash-update-component`` for the
  ward's 1 s update callback, with exactly the body the Dash renderer sends (the tile
  ids it shows as the wildcard outputs, ``ward-sent`` as state, the interval as the
  changed input), keeping what the answers tell it, as the browser does. A screen never
  has two requests in flight (Dash does not either): a late answer delays its next tick.

Measured after ``--warmup`` seconds:

* update latency: the request's round trip (POST to parsed answer), p50/p95/p99/max;
* freshness: from the publisher sending a reading to a screen receiving its value (the
  heart rate is a per-bed code of the second it was sent in) - includes up to one
  polling interval, the follower and the round trip;
* the web process's CPU (% of one core; 200 % = both cores of a 2-core machine) and
  RSS, sampled every second with psutil; and the benchmark's own CPU (the screens and
  the publisher share the machine with the web process).

Prints a Markdown summary (``--out`` also writes the raw numbers as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from pydantic import SecretStr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.settings import Settings  # noqa: E402
from harness.ward_screen import WardScreen, classes, walk  # noqa: E402

WARD = "BENCH-A"
PARTS = ("ward-tile", "ward-vitals", "ward-alarm")
PART_PROP = {"ward-tile": "className", "ward-vitals": "children", "ward-alarm": "children"}
HR_CODES = 60  # HR = 60 + (second + bed) % 60: unique per bed within a minute


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


# ----------------------------------------------------------------------------- set-up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_settings(base: Settings, suffix: str, port: int) -> Settings:
    k = base.kafka
    topics = {n: f"{getattr(k, n)}.b{suffix}" for n in type(k).model_fields
              if n.startswith("topic_")}
    return base.model_copy(update={
        "secret_key": SecretStr(secrets.token_urlsafe(48)),
        "allow_insecure_services": True,  # the local servers (loopback)
        "kafka": k.model_copy(update=topics),
        "cassandra": base.cassandra.model_copy(update={"keyspace": f"icu_bench_{suffix}"}),
        "web": base.web.model_copy(update={"host": "127.0.0.1", "port": port,
                                           "idle_timeout_minutes": 60,
                                           "allow_insecure_http": True}),
    })


@dataclass
class Env:
    settings: Settings
    db: Any
    users: list[tuple[str, str]]
    web: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.settings.web.port}"


def setup(args: argparse.Namespace) -> Env:
    from backend.admission import Admission
    from backend.auth_policy import Role
    from backend.storage import census
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from backend.users import create_user
    from ops.topics import ensure_topics

    settings = bench_settings(Settings(), uuid.uuid4().hex[:10], args.port or _free_port())
    ensure_topics(settings)
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    now = int(time.time() * 1000)
    for b in range(1, args.beds + 1):
        census.admit(db, Admission(patient_id=f"bench-{b}", ward=WARD, bed=str(b),
                                   label=f"Bed{b:02d}", admitted_ts=now - 3_600_000))
    users = []
    for i in range(args.screens):
        name, pw = f"bench-screen-{i:03d}", secrets.token_urlsafe(16)
        create_user(db, name, pw, Role.NURSE, f"Ward screen {i}", actor="bench", via="bench")
        users.append((name, pw))
    return Env(settings, db, users)


def start_web(env: Env, args: argparse.Namespace, log_dir: Path) -> None:
    env.log = log_dir / "bench-web.log"
    proc_env = {**os.environ, **env.settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with open(env.log, "wb") as log:
        env.web = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", "web", "run", "--threads", str(args.threads)],
            cwd=REPO, env=proc_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    deadline = time.monotonic() + 90
    while True:
        if env.web.poll() is not None:
            raise SystemExit("web app exited:\n" + env.log.read_text(errors="replace")[-3000:])
        try:
            if requests.get(env.base + "/login", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("web app did not start:\n" + env.log.read_text()[-3000:])
        time.sleep(0.3)


def teardown(env: Env, keep: bool) -> None:
    if env.web is not None and env.web.poll() is None:
        os.killpg(env.web.pid, signal.SIGTERM)
        try:
            env.web.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(env.web.pid, signal.SIGKILL)
    if keep:
        print(f"kept keyspace {env.settings.cassandra.keyspace} and the .b* topics")
        return
    try:
        env.db.execute(f"DROP KEYSPACE IF EXISTS {env.settings.cassandra.keyspace}",
                       timeout=120)
    except Exception as exc:
        print(f"dropping the keyspace failed: {exc!r}")
    try:
        from ops.kafka_server import kafka_admin

        k = env.settings.kafka
        topics = [getattr(k, n) for n in type(k).model_fields if n.startswith("topic_")]
        with kafka_admin(env.settings, 30_000) as admin:
            admin.delete_topics(topics, timeout_ms=30_000)
    except Exception as exc:
        print(f"deleting the topics failed: {exc!r}")
    env.db.cluster.shutdown()


# -------------------------------------------------------------------------- publisher


class Publisher:
    """``beds`` x 1 Hz readings; alarms on a few beds (raised, acknowledged, cleared)."""

    def __init__(self, env: Env, beds: int) -> None:
        from kafka import KafkaProducer

        self.env = env
        self.beds = beds
        self.producer = KafkaProducer(bootstrap_servers=env.settings.kafka.bootstrap,
                                      acks=1, linger_ms=2)
        self.sent_at: dict[tuple[str, int], float] = {}  # (bed, hr code) -> send time
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="publisher", daemon=True)

    def reading(self, bed: int, second: int, now_ms: int) -> tuple[bytes, bytes, int]:
        from backend.messages import ValidatedReading
        from backend.vitals import Vital

        hr = 60 + (second + bed) % HR_CODES
        carried = {Vital.HR: float(hr), Vital.SPO2: 96.0 + bed % 3, Vital.RR: 14.0 + bed % 5,
                   Vital.SBP: 118.0 + bed % 9, Vital.DBP: 70.0, Vital.MAP: 86.0,
                   Vital.TEMP: 36.8}
        r = ValidatedReading(
            patient_id=f"bench-{bed}", ward=WARD, bed=str(bed), device_id=f"mon-{bed}",
            seq=second, ts=now_ms, vitals=dict(carried), carried=carried, news2=1,
            news2_band="low", news2_complete=True, processed_ts=now_ms)
        return r.patient_id.encode(), r.model_dump_json().encode(), hr

    def alarm(self, bed: int, second: int, event: str, now_ms: int) -> None:
        from backend.messages import AlertEvent, Priority

        pri = (Priority.HIGH, Priority.MEDIUM, Priority.LOW)[bed % 3]
        e = AlertEvent(alert_id=f"bench-{bed}-{second // 60}", event=event,
                       patient_id=f"bench-{bed}", ward=WARD, bed=str(bed), rule="bench",
                       priority=pri, message=f"bench alarm {bed}", values={},
                       onset_ts=now_ms, reading_ts=now_ms, detected_ts=now_ms)
        self.producer.send(self.env.settings.kafka.topic_alerts, key=e.patient_id.encode(),
                           value=e.model_dump_json().encode())

    def run(self) -> None:
        topic = self.env.settings.kafka.topic_validated
        start = int(time.time())
        second = start
        while not self.stop.is_set():
            now = time.time()
            now_ms = int(now * 1000)
            for bed in range(1, self.beds + 1):
                key, value, hr = self.reading(bed, second, now_ms)
                self.producer.send(topic, key=key, value=value)
                self.sent_at[(str(bed), hr)] = time.time()
                self.sent += 1
            # alarms on every fourth bed: raised at :10, cleared at :50 of each minute
            if second % 60 in (10, 50):
                for bed in range(4, self.beds + 1, 4):
                    self.alarm(bed, second, "raised" if second % 60 == 10 else "cleared",
                               now_ms)
            self.producer.flush(5)
            second += 1
            self.stop.wait(max(0.0, second - start - (time.time() - start)))

    def start(self) -> Publisher:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.producer.close(timeout=5)


# ----------------------------------------------------------------------------- screens


def hr_of(vitals_children: Any) -> int | None:
    """The heart rate shown by a tile's vitals part (Dash component JSON)."""
    for node in walk(vitals_children):
        if "wt-cell--hr" in classes(node):
            for inner in walk(node.get("props", {}).get("children")):
                if "wt-num" in classes(inner):
                    text = inner.get("props", {}).get("children")
                    return int(text) if isinstance(text, str) and text.isdigit() else None
    return None


@dataclass
class Screen(WardScreen):
    """One browser showing the ward, timing its updates."""

    index: int = 0
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (t, seconds)
    freshness: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    late: int = 0
    bytes: int = 0

    def timed_tick(self, sent_at: dict[tuple[str, int], float]) -> None:
        t0 = time.perf_counter()
        r = self.tick()
        if r.status_code not in (200, 204):
            self.errors.append(f"{r.status_code} {r.text[:200]}")
            return
        now = time.time()
        self.latencies.append((now, time.perf_counter() - t0))
        self.bytes += len(r.content)
        answer = r.json().get("response", {}) if r.status_code == 200 else {}
        self.time_values(answer, now, sent_at)

    def time_values(self, answer: dict, now: float,
                    sent_at: dict[tuple[str, int], float]) -> None:
        """Time the heart rates the answer shows (see the module docstring)."""
        shown: list[tuple[str, Any]] = []
        grid = answer.get("ward-grid", {}).get("children")
        for tile in grid if isinstance(grid, list) else []:
            ident = (tile.get("props") or {}).get("id") if isinstance(tile, dict) else None
            if isinstance(ident, dict) and ident.get("type") == "ward-tile":
                for child in tile["props"].get("children") or []:
                    cid = (child.get("props") or {}).get("id") or {}
                    if cid.get("type") == "ward-vitals":
                        shown.append((ident["bed"], child["props"].get("children")))
        for key, value in answer.items():
            if key.startswith("{") and '"ward-vitals"' in key:
                shown.append((json.loads(key)["bed"], value.get("children")))
        for bed, children in shown:
            hr = hr_of(children)
            t = sent_at.get((bed, hr)) if hr is not None else None
            if t is not None and now - t < HR_CODES / 2:
                self.freshness.append(now - t)


def run_screen(screen: Screen, stop: threading.Event, sent_at: dict, period: float) -> None:
    next_tick = time.monotonic() + (screen.index % 20) * period / 20  # spread the phases
    while not stop.is_set():
        delay = next_tick - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            if stop.is_set():
                return
        elif delay < -period / 2:
            screen.late += 1
            next_tick = time.monotonic()
        try:
            screen.timed_tick(sent_at)
        except Exception as exc:
            screen.errors.append(repr(exc)[:200])
        next_tick += period


# ----------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    t: float
    cpu: float  # % of one core
    rss_mb: float
    threads: int


def sample_process(pid: int, stop: threading.Event, out: list[Sample],
                   interval: float = 1.0) -> None:
    p = psutil.Process(pid)
    p.cpu_percent(None)
    while not stop.wait(interval):
        try:
            with p.oneshot():
                out.append(Sample(time.time(), p.cpu_percent(None),
                                  p.memory_info().rss / 2**20, p.num_threads()))
        except psutil.Error:
            return


# -------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screens", type=int, default=50)
    ap.add_argument("--beds", type=int, default=32)
    ap.add_argument("--duration", type=float, default=600.0,
                    help="seconds measured (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--period", type=float, default=1.0, help="seconds between updates")
    ap.add_argument("--threads", type=int, default=8, help="waitress threads of the app")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the raw results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the keyspace and topics")
    args = ap.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    # A killed benchmark must still stop its web server and drop its keyspace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    t_setup = time.monotonic()
    env = setup(args)
    publisher: Publisher | None = None
    try:
        start_web(env, args, log_dir)
        web_pid = env.web.pid
        publisher = Publisher(env, args.beds).start()
        screens = [Screen(env.base, name, pw, WARD, index=i)
                   for i, (name, pw) in enumerate(env.users)]
        for s in screens:
            s.login()
        print(f"set-up {time.monotonic() - t_setup:.0f} s: web pid {web_pid}, "
              f"{len(screens)} screens signed in", flush=True)

        stop = threading.Event()
        samples: list[Sample] = []
        sampler = threading.Thread(target=sample_process, args=(web_pid, stop, samples),
                                   daemon=True)
        me = psutil.Process()
        threads = [threading.Thread(target=run_screen,
                                    args=(s, stop, publisher.sent_at, args.period),
                                    name=f"screen-{s.index}", daemon=True) for s in screens]
        t_start = time.time()
        sampler.start()
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        t_measure = time.time()
        cpu0 = me.cpu_times()
        sent0 = publisher.sent
        progress_every = max(10.0, args.duration / 10)
        next_progress = t_measure + progress_every
        while time.time() < t_measure + args.duration:
            time.sleep(min(1.0, max(0.0, t_measure + args.duration - time.time())))
            if time.time() >= next_progress:
                recent = [lat for s in screens for (t, lat) in s.latencies
                          if t > time.time() - progress_every]
                cur = samples[-1] if samples else None
                print(f"  {time.time() - t_measure:5.0f} s: {len(recent) / progress_every:5.1f}"
                      f" updates/s, p50 {pct(recent, 50) * 1000:5.0f} ms, p95 "
                      f"{pct(recent, 95) * 1000:5.0f} ms"
                      + (f", web CPU {cur.cpu:4.0f} %, RSS {cur.rss_mb:5.0f} MB" if cur else ""),
                      flush=True)
                next_progress += progress_every
        t_end = time.time()
        cpu1 = me.cpu_times()
        stop.set()
        for t in threads:
            t.join(70)
        sampler.join(5)
        result = summarise(args, screens, samples, publisher.sent - sent0,
                           (t_measure, t_end, t_start), cpu0, cpu1)
        print(markdown(args, result))
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
    finally:
        if publisher is not None:
            publisher.close()
        teardown(env, args.keep)


def summarise(args, screens: list[Screen], samples: list[Sample], published: int,
              window: tuple[float, float, float], cpu0, cpu1) -> dict:
    t0, t1, _ = window
    lat = [lat for s in screens for (t, lat) in s.latencies if t0 <= t <= t1]
    fresh = list(s.freshness for s in screens)
    fresh_all = [x for f in fresh for x in f]
    window_samples = [x for x in samples if t0 <= x.t <= t1]
    cpu = [x.cpu for x in window_samples]
    rss = [x.rss_mb for x in window_samples]
    seconds = t1 - t0
    bench_cpu = ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / seconds * 100
    errors = [e for s in screens for e in s.errors]
    return {
        "machine": {"nproc": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total
                                                              / 2**30, 1),
                    "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(),
                    "load_avg_at_end": os.getloadavg()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "seconds": round(seconds, 1),
        "updates": len(lat),
        "updates_per_s": round(len(lat) / seconds, 2),
        "expected_per_s": round(args.screens / args.period, 2),
        "late_ticks": sum(s.late for s in screens),
        "errors": len(errors),
        "error_examples": errors[:5],
        "latency_ms": {k: round(pct(lat, q) * 1000, 1)
                       for k, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))},
        "latency_mean_ms": round(statistics.fmean(lat) * 1000, 1) if lat else None,
        "freshness_ms": {k: round(pct(fresh_all, q) * 1000, 1)
                         for k, q in (("p50", 50), ("p95", 95), ("max", 100))},
        "response_kb_mean": round(sum(s.bytes for s in screens) / max(1, sum(
            len(s.latencies) for s in screens)) / 1024, 1),
        "readings_published_per_s": round(published / seconds, 1),
        "web_cpu_pct": {"mean": round(statistics.fmean(cpu), 1) if cpu else None,
                        "p95": round(pct(cpu, 95), 1), "max": round(max(cpu, default=0), 1)},
        "web_rss_mb": {"start": round(rss[0], 1) if rss else None,
                       "end": round(rss[-1], 1) if rss else None,
                       "max": round(max(rss, default=0), 1)},
        "bench_cpu_pct": round(bench_cpu, 1),
        "cpu_samples": [(round(x.t - t0, 1), x.cpu, round(x.rss_mb, 1)) for x in samples],
    }


def markdown(args, r: dict) -> str:
    m = r["machine"]
    load = tuple(round(x, 1) for x in m["load_avg_at_end"])
    lat, fr = r["latency_ms"], r["freshness_ms"]
    cpu, rss = r["web_cpu_pct"], r["web_rss_mb"]
    return "\n".join([
        f"| machine | {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GiB RAM, Python "
        f"{m['python']}; load average at the end {load} |",
        "|---|---|",
        f"| screens x beds | {args.screens} x {args.beds}, one update per screen every "
        f"{args.period:g} s, waitress {args.threads} threads |",
        f"| measured | {r['seconds']:.0f} s after {args.warmup:g} s warm-up: {r['updates']} "
        f"updates ({r['updates_per_s']}/s of {r['expected_per_s']}/s), {r['late_ticks']} late "
        f"ticks, {r['errors']} errors |",
        f"| update latency (round trip) | p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, "
        f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms |",
        f"| freshness (reading sent -> on a screen) | p50 {fr['p50']:.0f} ms, p95 "
        f"{fr['p95']:.0f} ms, max {fr['max']:.0f} ms |",
        f"| web process CPU (100 % = one core) | mean {cpu['mean']} %, p95 {cpu['p95']} %, "
        f"max {cpu['max']} % |",
        f"| web process RSS | {rss['start']} MB at the start, {rss['end']} MB at the end, "
        f"max {rss['max']} MB |",
        f"| answer size | {r['response_kb_mean']} KiB per update (uncompressed) |",
        f"| benchmark's own CPU (screens + publisher) | {r['bench_cpu_pct']} % |",
    ])


if __name__ == "__main__":
    main()

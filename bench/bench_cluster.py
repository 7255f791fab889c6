"""The replicated set on this machine (ops/cluster.py): how long it takes to start (cold:
fresh data directories; warm: a restart), and what every member costs in memory and CPU
while the whole platform runs on it: the stream job submitted to the Spark master, the
web app, and the simulator at a steady load.

    .venv/bin/python bench/bench_cluster.py --patients 200 --duration 120 \\
        --out docs/bench_cluster.json

Runs in a private cache directory (the cached jars are linked), with Spark on port
17077 so a Spark cluster of `icu services start --spark` can run beside; the Kafka and
Cassandra ports are the set's defaults (``ClusterSettings``), so no other replicated set
may be running. Everything it starts is stopped at the end. Results: docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support import Sampler, cpu_between, log, machine_info
from harness.isolation import Scratch
from harness.process import IcuProcess


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of steady load")
    ap.add_argument("--spark-port", type=int, default=17077)
    ap.add_argument("--web-port", type=int, default=18050)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from backend.settings import Settings
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate
    from ops import cluster
    from ops.artefacts import cassandra_home, kafka_home
    from ops.topics import ensure_topics

    base = Settings()
    work = Path(tempfile.mkdtemp(prefix="icu-bench-cluster-"))
    cache = work / "cache"
    cache.mkdir()
    for home in (kafka_home(base), cassandra_home(base)):
        (cache / home.name).symlink_to(home)
    settings = base.model_copy(update={
        "cache_dir": cache,
        "spark": base.spark.model_copy(update={"cluster_port": args.spark_port}),
    })
    result: dict = {"machine": machine_info(), "command": " ".join(sys.argv),
                    "patients": args.patients, "duration_s": args.duration}
    procs: list[IcuProcess] = []
    try:
        log("cold start (fresh data directories)")
        t0 = time.monotonic()
        started = cluster.start_cluster(settings, spark=True, timeout=600)
        result["cold_start_s"] = round(time.monotonic() - t0, 1)
        result["cold_start_ready_s"] = {s.name: round(s.ready_seconds, 1) for s in started}
        log(f"cold start {result['cold_start_s']} s")
        idle = {s.name: round(s.rss_mib or 0) for s in cluster.cluster_status(settings)}
        result["idle_rss_mib"] = idle

        cs = Scratch().isolate(cluster.client_settings(settings), work / "checkpoints",
                               marker="cl", create_topics=False)
        cs = cs.model_copy(update={
            "secret_key": secrets.token_urlsafe(32),
            "web": cs.web.model_copy(update={"port": args.web_port,
                                             "allow_insecure_http": True,
                                             "public_url": f"http://127.0.0.1:{args.web_port}"}),
        })
        ensure_topics(cs)
        session = connect(cs.cassandra, keyspace=False, wait_seconds=60)
        migrate(session, cs)
        session.cluster.shutdown()

        sampler = Sampler(interval=2.0)
        for s in cluster.cluster_status(settings):
            sampler.watch(s.name, s.pid)
        job = IcuProcess(cs, ["stream", "run"], work / "stream.log", "alarm query running")
        web = IcuProcess(cs, ["web", "run"], work / "web.log", "web app listening")
        sim = IcuProcess(cs, ["simulate", "generate", "--patients", str(args.patients),
                           "--wards", "4", "--duration", str(args.duration + 60),
                           "--progress", "0"], work / "sim.log")
        procs += [job, web, sim]
        result["stream_job_start_s"] = round(job.start(timeout=300), 1)
        web.start(timeout=120)
        sampler.watch("job", job.pid)
        sampler.watch("web", web.pid)
        sim.start(timeout=60)
        sampler.watch("simulator", sim.pid)
        sampler.start()
        time.sleep(30)  # past the first micro-batches
        a = sampler.snapshot()
        time.sleep(args.duration)
        b = sampler.snapshot()
        sampler.stop()
        result["load_cpu"] = cpu_between(a, b)
        result["peak_rss_mib"] = sampler.peaks_mib()
        result["peak_rss_total_mib"] = round(sum(
            v for k, v in result["peak_rss_mib"].items() if k != "job"))
        for p in procs:
            p.stop()
        procs.clear()

        t0 = time.monotonic()
        cluster.stop_cluster(settings)
        result["stop_s"] = round(time.monotonic() - t0, 1)
        log("warm start (a restart on the same data)")
        t0 = time.monotonic()
        cluster.start_cluster(settings, spark=True, timeout=600)
        result["warm_start_s"] = round(time.monotonic() - t0, 1)
        log(f"warm start {result['warm_start_s']} s")
    finally:
        for p in procs:
            p.stop()
        cluster.stop_cluster(settings)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""A Spark standalone cluster on 127.0.0.1: one master and ``SparkSettings.cluster_workers``
workers, run from pyspark's own jars (no Spark download), managed like Kafka and
Cassandra (``ops/server_processes.py``: pidfiles, idempotent start, readiness waits, clean stop).

    var/spark-master/    spark-defaults.conf, spark-master.out
    var/spark-worker-N/  spark-defaults.conf, spark-worker-N.out, work/ (executors' dirs)

The stream job runs on it with ``icu stream run --master spark://127.0.0.1:7077`` (the
settings' ``SparkSettings.cluster_url``). Executors start the job's Python workers with
the same interpreter as the driver (``spark.pyspark.python``), so the cluster must run on
a machine with the project installed, as here.
"""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path

from backend.settings import Settings
from ops.artefacts import SPARK_SCALA_BINARY, pyspark_jars_dir
from ops.server_processes import (
    ServerSpec,
    Service,
    ServiceError,
    common_jvm_flags,
    find_pid,
    java,
    launch,
    locked,
    port_open,
    stop_server,
    var_dir,
    wait_ready,
)

MASTER_MAIN = "org.apache.spark.deploy.master.Master"
WORKER_MAIN = "org.apache.spark.deploy.worker.Worker"
DAEMON_HEAP = ("-Xms128m", "-Xmx256m")  # the daemons only schedule; executors do the work
CONF = "spark-defaults.conf"


def _master_spec(settings: Settings) -> ServerSpec:
    port = settings.spark.cluster_port
    return ServerSpec("spark-master", MASTER_MAIN, pyspark_jars_dir(),
                 var_dir(settings, "spark-master"), "127.0.0.1", port, [port + 1000],
                 config_name=CONF)


def _worker_spec(settings: Settings, n: int) -> ServerSpec:
    port = settings.spark.cluster_port + 1 + n
    return ServerSpec(f"spark-worker-{n}", WORKER_MAIN, pyspark_jars_dir(),
                 var_dir(settings, f"spark-worker-{n}"), "127.0.0.1", port,
                 [settings.spark.cluster_port + 1001 + n], config_name=CONF)


def _spark_home() -> str:
    return str(pyspark_jars_dir().parent)


def daemon_env() -> None:
    """What Spark's launcher needs to build an executor's command line (a Spark download
    sets it in bin/load-spark-env.sh; pyspark's wheel has no such script)."""
    os.environ["SPARK_HOME"] = _spark_home()
    os.environ["SPARK_SCALA_VERSION"] = SPARK_SCALA_BINARY


def _argv(spec: ServerSpec, args: list[str]) -> list[str]:
    spec.var.mkdir(parents=True, exist_ok=True)
    spec.config.write_text("# Written by `icu services start --spark`; edits are overwritten.\n"
                           "spark.ui.showConsoleProgress false\n")
    return [java(), *DAEMON_HEAP, *common_jvm_flags(), "-cp", f"{spec.home}/*",
            spec.main_class, *args, "--properties-file", str(spec.config)]


def _master_probe(spec: ServerSpec) -> str | None:
    """The master answers on its web UI's JSON endpoint with its state."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{spec.other_ports[0]}/json/",
                                    timeout=2) as resp:
            body = resp.read().decode()
    except OSError:
        return None
    workers = len(re.findall(r'"state"\s*:\s*"ALIVE"', body))
    return f"{workers} live worker(s)" if '"status" : "ALIVE"' in body or \
        '"status":"ALIVE"' in body else None


def start_spark(settings: Settings, *, timeout: float = 120) -> list[Service]:
    """Start the master, then the workers (idempotent); wait until every worker has
    registered with the master."""
    cfg = settings.spark
    daemon_env()
    master = _master_spec(settings)
    out = [_start_daemon(master, ["--host", "127.0.0.1", "--port", str(master.port),
                                  "--webui-port", str(master.other_ports[0])],
                         lambda: _master_probe(master), timeout)]
    for n in range(1, cfg.cluster_workers + 1):
        spec = _worker_spec(settings, n)
        args = ["--host", "127.0.0.1", "--port", str(spec.port),
                "--webui-port", str(spec.other_ports[0]), "--cores", str(cfg.worker_cores),
                "--memory", cfg.worker_memory, "--work-dir", str(spec.var / "work"),
                cfg.cluster_url]
        out.append(_start_daemon(spec, args, lambda s=spec: "worker" if port_open(
            s.host, s.port) else None, timeout))
    wait_ready(master, out[0].pid, lambda: _registered(master, cfg.cluster_workers), timeout)
    out[0].detail = _master_probe(master) or ""
    return out


def _registered(master: ServerSpec, workers: int) -> str | None:
    detail = _master_probe(master)
    if detail and int(detail.split()[0]) >= workers:
        return detail
    return None


def _start_daemon(spec: ServerSpec, args: list[str], probe, timeout: float) -> Service:
    with locked(spec):
        pid = find_pid(spec, repair=True)
        started = pid is None
        if started:
            if port_open(spec.host, spec.port):
                raise ServiceError(f"{spec.name}: port {spec.port} is in use by another program")
            pid = launch(spec, _argv(spec, args))
        waited, detail = wait_ready(spec, pid, probe, timeout)
    return Service(spec.name, spec.address, pid, spec.out, started=started,
                   ready_seconds=waited, detail=detail)


def stop_spark(settings: Settings) -> list[str]:
    """Stop the workers, then the master; the names of those that were running."""
    specs = [_worker_spec(settings, n) for n in range(settings.spark.cluster_workers, 0, -1)]
    specs.append(_master_spec(settings))
    return [s.name for s in specs if stop_server(s, timeout=30)]


def spark_status(settings: Settings) -> list[Service]:
    out = []
    master = _master_spec(settings)
    specs = [master] + [_worker_spec(settings, n)
                        for n in range(1, settings.spark.cluster_workers + 1)]
    for spec in specs:
        pid = find_pid(spec) if spec.var.exists() else None
        detail = ""
        if pid and port_open(spec.host, spec.port):
            detail = (_master_probe(master) or "") if spec is master else "running"
        out.append(Service(spec.name, spec.address, pid, spec.out, detail=detail))
    return out


def worker_pids(settings: Settings) -> list[int]:
    """The running workers' pids (for fault tests)."""
    return [p for n in range(1, settings.spark.cluster_workers + 1)
            if (p := find_pid(_worker_spec(settings, n))) is not None]


def executor_dirs(settings: Settings) -> list[Path]:
    return [_worker_spec(settings, n).var / "work"
            for n in range(1, settings.spark.cluster_workers + 1)]


def foreground_argv(settings: Settings, role: str, master_url: str | None = None,
                    host: str = "0.0.0.0") -> list[str]:
    """The command line of a master or a worker in the foreground (a container's
    process), with the settings' ports and the worker's share."""
    cfg = settings.spark
    if role == "master":
        spec = _master_spec(settings)
        args = ["--host", host, "--port", str(spec.port),
                "--webui-port", str(spec.other_ports[0])]
    else:
        spec = _worker_spec(settings, 1)
        args = ["--cores", str(cfg.worker_cores), "--memory", cfg.worker_memory,
                "--work-dir", str(spec.var / "work"), master_url or cfg.cluster_url]
    return _argv(spec, args)

"""The project's own local servers, without Docker: Kafka (single-node KRaft) and
Cassandra (single node) on 127.0.0.1, started, stopped and checked together.

Each server is in its own module (``ops/kafka_server.py``, ``ops/cassandra_server.py``),
run as a detached process by ``ops/server_processes.py``; the jars come from
``ops/artefacts.py``, the topics from ``ops/topics.py``; ``icu services`` is
``ops/services_cli.py``. Everything lives outside the repository, under
``Settings.cache_dir`` (default ``~/.cache/icu-monitor``).

From Python::

    from ops import artefacts, services, topics
    artefacts.fetch_all(settings)
    services.start_all(settings)          # or kafka_server.start_kafka / ...
    topics.ensure_topics(settings)
    services.stop_all(settings)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from backend.settings import Settings
from ops.cassandra_server import cassandra_probe, cassandra_spec, start_cassandra, stop_cassandra
from ops.kafka_server import kafka_probe, kafka_spec, start_kafka, stop_kafka
from ops.server_processes import Service, ServiceError, alive, find_pid, port_open

log = logging.getLogger(__name__)


def is_local(settings: Settings) -> dict[str, bool]:
    """Per server: do the settings point at this machine (so ``start`` can run it)?"""
    return {"kafka": kafka_spec(settings).local, "cassandra": cassandra_spec(settings).local}


SERVICES = ("kafka", "cassandra")


def start_all(settings: Settings, *, only: str | None = None, unsafe_system: bool = False,
              timeout: float = 180) -> dict[str, Service]:
    """Start Kafka and Cassandra (or ``only`` one), side by side; idempotent."""
    starters: dict[str, Callable[[], Service]] = {
        "kafka": lambda: start_kafka(settings, timeout=timeout),
        "cassandra": lambda: start_cassandra(settings, timeout=timeout,
                                             unsafe_system=unsafe_system),
    }
    names = [n for n in SERVICES if only in (None, n)]
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="start") as pool:
        futures = {n: pool.submit(starters[n]) for n in names}
        errors = []
        out: dict[str, Service] = {}
        for name, future in futures.items():
            try:
                out[name] = future.result()
            except ServiceError as exc:
                errors.append(str(exc))
    if errors:
        raise ServiceError("\n\n".join(errors))
    return out


def stop_all(settings: Settings, *, only: str | None = None) -> list[str]:
    """Stop the servers this tool runs (or ``only`` one), side by side; returns those
    that were running."""
    stoppers: dict[str, Callable[[], bool]] = {
        "kafka": lambda: stop_kafka(settings),
        "cassandra": lambda: stop_cassandra(settings),
    }
    names = [n for n in SERVICES if only in (None, n)]
    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="stop") as pool:
        futures = {n: pool.submit(stoppers[n]) for n in names}
        return [n for n, f in futures.items() if f.result()]


def status(settings: Settings) -> dict[str, Service]:
    """Each server: its pid (if we run it), and in ``detail`` whether it accepts clients
    (``detail`` empty = not accepting)."""
    out = {}
    for name, spec, probe in (
        ("kafka", kafka_spec(settings), kafka_probe),
        ("cassandra", cassandra_spec(settings), cassandra_probe),
    ):
        pid = find_pid(spec) if spec.local and spec.var.exists() else None
        detail = ""
        if port_open(spec.host, spec.port):
            try:
                detail = probe(settings) or ""
            except Exception as exc:
                detail = ""
                log.debug("%s probe failed: %s", name, exc)
        out[name] = Service(name, spec.address, pid, spec.server_log,
                            external=pid is None and bool(detail), detail=detail)
    return out


def wait_until_ready(settings: Settings, *, timeout: float = 120) -> dict[str, Service]:
    """Wait (without starting anything) until both servers accept clients: for servers
    run elsewhere (Docker, another host)."""
    deadline = time.monotonic() + timeout
    while True:
        result = status(settings)
        if all(s.detail for s in result.values()):
            return result
        if time.monotonic() > deadline:
            down = [f"{s.name} at {s.address}" for s in result.values() if not s.detail]
            raise ServiceError(f"not accepting clients after {timeout:.0f}s: {', '.join(down)}")
        time.sleep(1)


def running(settings: Settings) -> dict[str, bool]:
    """Which servers accept clients right now (ours or external)."""
    return {name: bool(s.detail) for name, s in status(settings).items()}


# ---------------------------------------------------------------------------------------
# Leases: several test sessions (or a demo) may share the servers; the one that started
# them stops them only when no other live holder remains.


def _lease_dir(settings: Settings) -> Path:
    return settings.cache_dir / "var" / "leases"


@contextlib.contextmanager
def lease(settings: Settings, holder: str) -> Iterator[Path]:
    """Register this process as a user of the servers while the block runs."""
    directory = _lease_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "holder": holder, "since": time.time()}))
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def other_lease_holders(settings: Settings, mine: Path | None = None) -> list[str]:
    """Live holders other than ``mine``; stale leases (dead pids) are removed."""
    holders = []
    directory = _lease_dir(settings)
    for path in sorted(directory.glob("*.json")) if directory.exists() else []:
        if mine is not None and path == mine:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if alive(int(data.get("pid", 0))):
            holders.append(f"{data.get('holder')} (pid {data['pid']})")
        else:
            path.unlink(missing_ok=True)
    return holders

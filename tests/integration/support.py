"""Helpers for integration tests that drive the real pipeline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from kafka import KafkaConsumer, KafkaProducer

from backend.settings import Settings

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


class Clock:
    """A settable clock for the code under test that takes a ``clock`` callable."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def wait_until(probe: Callable[[], T], *, timeout: float, interval: float = 0.5,
               what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
        last = probe()
    return last


class StreamJob:
    """``icu stream run`` in its own process group, so a test can kill it like a crash."""

    def __init__(self, settings: Settings, log_path: Path,
                 command: tuple[str, ...] = ("stream", "run"),
                 ready_text: str = "alarm query running") -> None:
        self.settings = settings
        self.log_path = log_path
        self.command = command  # e.g. ("stream", "risk") for the risk query alone
        self.ready_text = ready_text
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 180) -> None:
        env = {**os.environ, **self.settings.to_env(), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ops.cli", *self.command], cwd=REPO, env=env,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until(lambda: self._running(), timeout=ready_timeout, what="stream job start")

    def _running(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"stream job exited {self.proc.returncode}:\n{self.tail()}")
        return self.ready_text in self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process tree: no shutdown hook, no final commit."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def publish(settings: Settings, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                             linger_ms=5)
    n = 0
    for key, value in records:
        producer.send(settings.kafka.topic_raw, key=key, value=value)
        n += 1
    producer.flush(30)
    producer.close()
    return n


def consume_all(settings: Settings, topic: str, *, idle_seconds: float = 3.0) -> list[dict]:
    """Every committed message on ``topic`` from the beginning, as JSON."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=settings.kafka.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, isolation_level="read_committed",
        consumer_timeout_ms=int(idle_seconds * 1000), group_id=None,
    )
    out = [json.loads(m.value) for m in consumer]
    consumer.close()
    return out

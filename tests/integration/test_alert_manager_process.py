"""``icu alerts manager`` and ``icu mail catcher`` as real processes: alerts raised
through Kafka are e-mailed; the manager is killed (SIGKILL, no clean shutdown) while
more alerts arrive and restarted; every e-mail arrives exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from kafka import KafkaProducer

from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from harness import REPO
from harness.mailbox import free_port
from harness.waiting import wait_until
from tests.integration.test_alert_manager import configure, event

pytestmark = pytest.mark.integration


def spawn(args: list[str], settings: Settings, log: Path) -> subprocess.Popen:
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "ops.cli", *args], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def keys(mail_dir: Path) -> list[str]:
    return [message_from_bytes(p.read_bytes(), policy=policy.default)["X-ICU-Message-Key"]
            for p in sorted(mail_dir.glob("*.eml"))]


def test_manager_process_killed_and_restarted_sends_each_email_once(
        isolated_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    settings = configure(isolated_settings, port)
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    mail_dir = tmp_path / "mail"
    catcher = spawn(["mail", "catcher", "--dir", str(mail_dir)], settings, tmp_path / "mail.log")
    manager = spawn(["alerts", "manager"], settings, tmp_path / "manager.log")
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    store = AlertStore(db)
    now = datetime.now(UTC)

    def raise_(n: int) -> None:
        e = event(n, now)
        store.raise_alert(e)
        producer.send(settings.kafka.topic_alerts, key=e.alert_id.encode(),
                      value=e.model_dump_json().encode()).get(10)

    try:
        for n in range(3):
            raise_(n)
        wait_until(lambda: len(keys(mail_dir)) == 3, timeout=90, what="3 e-mails")
        stop(manager, signal.SIGKILL)
        for n in range(3, 6):
            raise_(n)
        producer.send(settings.kafka.topic_alerts, value=b"{not json").get(10)  # bad input
        time.sleep(1)
        assert len(keys(mail_dir)) == 3  # nobody sends while the manager is down
        manager = spawn(["alerts", "manager"], settings, tmp_path / "manager.log")
        wait_until(lambda: len(keys(mail_dir)) >= 6, timeout=90, what="6 e-mails")
        time.sleep(3)  # a few more ticks: nothing is sent twice
        levels = sorted(k.rsplit(":", 1)[0] for k in keys(mail_dir))
        assert levels == [f"m-{n}:L0" for n in range(6)]
        log = (tmp_path / "manager.log").read_text(errors="replace")
        assert "skipping a bad message" in log
    finally:
        producer.close()
        stop(manager)
        stop(catcher)
        db.cluster.shutdown()

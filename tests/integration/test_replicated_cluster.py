"""The replicated set (ops/cluster.py) under faults: the stream job runs against three
Kafka brokers and three Cassandra nodes while the simulator sends a paced ward; one
broker (the active KRaft controller) and one Cassandra node are killed with SIGKILL and
brought back. Every reading the producer had acknowledged must come out of the stream
exactly once (vitals.validated, read committed) and be stored exactly once
(readings_by_patient_day, read at LOCAL_QUORUM), and the set must be whole again.

The same set's durability settings are checked first: topics with replication factor 3
and min.insync.replicas 2, the keyspace with replication factor 3."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from devices.generator import GeneratorConfig, generate, plan_patients
from devices.publisher import ProducerOptions, Publisher
from devices.wire import to_outgoing
from harness.isolation import Scratch
from harness.process import StreamJob
from harness.topics import consume_all
from harness.waiting import wait_until
from ops import cluster
from ops.kafka_server import kafka_admin
from ops.topics import kafka_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.replicated]

PATIENTS = 24
SEND_SECONDS = 75.0


@pytest.fixture
def settings(replicated: Settings, tmp_path: Path) -> Settings:
    # Topics and keyspace of their own on the replicated set; the set goes with them.
    return Scratch().isolate(replicated, tmp_path)


def test_topics_and_keyspace_are_replicated(settings: Settings) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    topics = list(kafka_topics(settings))
    with kafka_admin(settings) as admin:
        described = admin.describe_topics(topics)  # type: ignore[attr-defined]
        configs = admin.describe_configs(  # type: ignore[attr-defined]
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in topics],
            config_filter="all")
    names = [d.get("name", d.get("topic")) for d in described]
    assert set(names) == set(topics)
    for name, d in zip(names, described, strict=True):
        for p in d["partitions"]:
            assert len(p.get("replica_nodes", p.get("replicas"))) == 3, (name, p)
            assert len(p.get("isr_nodes", p.get("isr"))) == 3, (name, p)
    min_isr = _topic_min_isr(configs)
    assert min_isr == {t: "2" for t in topics}

    session = connect(settings.cassandra, keyspace=False, wait_seconds=30)
    try:
        migrate(session, settings)
        ks = session.cluster.metadata.keyspaces[settings.cassandra.keyspace]
        assert ks.replication_strategy.replication_factor == 3
        assert len([h for h in session.cluster.metadata.all_hosts() if h.is_up]) == 3
    finally:
        session.cluster.shutdown()


def _topic_min_isr(configs: dict) -> dict[str, str]:
    """topic -> its min.insync.replicas, from kafka-python's describe_configs answer
    ({resource type: {name: {key: {config data}}}})."""
    out = {}
    for name, entries in configs.get("topic", {}).items():
        data = entries.get("min.insync.replicas") or {}
        out[name] = data.get("value", data.get("config_value"))
    return out


class Faults(threading.Thread):
    """The fault schedule, beside the publisher: at ``t_kafka`` SIGKILL the active
    controller's node, at ``t_cassandra`` one Cassandra node, at ``t_back`` start both
    again (``start_member``, as an operator would). Times from the start."""

    def __init__(self, settings: Settings, t_kafka: float, t_cassandra: float,
                 t_back: float) -> None:
        super().__init__(name="faults", daemon=True)
        self.settings = settings
        self.plan = (t_kafka, t_cassandra, t_back)
        self.log: list[str] = []
        self.error: BaseException | None = None
        self.killed: list[str] = []
        self.recovery_seconds: dict[str, float] = {}

    def _kill(self, name: str) -> None:
        pid = cluster.member_pid(self.settings, name)
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        self.killed.append(name)
        self.log.append(f"{time.monotonic() - self.t0:5.1f}s SIGKILL {name} (pid {pid})")

    def run(self) -> None:
        try:
            self.t0 = time.monotonic()
            t_kafka, t_cassandra, t_back = self.plan
            time.sleep(t_kafka)
            self._kill(f"kafka-{cluster.quorum_leader(self.settings)}")
            time.sleep(max(0.0, t_cassandra - (time.monotonic() - self.t0)))
            self._kill("cassandra-1")  # the first contact point of every client
            time.sleep(max(0.0, t_back - (time.monotonic() - self.t0)))
            for name in self.killed:
                t = time.monotonic()
                cluster.start_member(self.settings, name, timeout=240)
                self.recovery_seconds[name] = time.monotonic() - t
                self.log.append(f"{time.monotonic() - self.t0:5.1f}s {name} back after "
                                f"{self.recovery_seconds[name]:.1f}s")
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_every_reading_stored_exactly_once_through_broker_and_node_kills(
        settings: Settings, tmp_path: Path) -> None:
    session = connect(settings.cassandra, keyspace=False, wait_seconds=30)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    start_ms = int(time.time() * 1000) + 60_000  # after the stream job is up
    cfg = GeneratorConfig(start_ms=start_ms, patients=PATIENTS, wards=2, rate_hz=1.0,
                          duration_s=SEND_SECONDS, seed=12,
                          scenario_mix={"sepsis": 2, "desaturation": 2, "tachycardia": 2})
    plans = plan_patients(cfg)
    for plan in plans:
        census.admit(session, plan.admission(start_ms - 3_600_000))
    records = list(to_outgoing(generate(cfg, plans)))

    job = StreamJob(settings, tmp_path / "stream.log")
    job.start(ready_timeout=240)
    try:
        wait = start_ms / 1000 - time.time()
        assert wait > 0, "the stream job took longer to start than the head start"
        time.sleep(wait)
        faults = Faults(settings, t_kafka=15, t_cassandra=30, t_back=50)
        faults.start()
        publisher = Publisher(ProducerOptions(
            bootstrap=settings.kafka.bootstrap, topic=settings.kafka.topic_raw, acks="all",
            linger_ms=5))
        try:
            stats = publisher.run(records, realtime=True, out=None, flush_timeout_s=120)
        finally:
            publisher.close()
        faults.join(300)
        assert faults.error is None, f"fault schedule failed: {faults.error!r}\n{faults.log}"
        assert stats.failed == 0 and stats.sent == len(records), (
            f"the producer lost records: {stats}")
        print("\n".join(faults.log))
        assert job.proc is not None and job.proc.poll() is None, (
            f"the stream job died during the faults:\n{job.tail()}")

        expected = {_identity(r.value) for r in records}

        def evaluated() -> list[dict] | None:
            out = consume_all(settings, settings.kafka.topic_validated)
            return out if len(out) >= len(records) else None

        validated = wait_until(evaluated, timeout=240, interval=5,
                               what="every reading evaluated")
        letters = consume_all(settings, settings.kafka.topic_deadletter)
        counts = Counter((v["patient_id"], v["device_id"], v["seq"]) for v in validated)
        dupes = {k: n for k, n in counts.items() if n > 1}
        assert not dupes, f"{len(dupes)} readings published more than once: " \
                          f"{list(dupes.items())[:5]}"
        assert set(counts) == expected, (
            f"missing {len(expected - set(counts))}, unexpected "
            f"{len(set(counts) - expected)}; dead letters: {letters[:3]}")
        assert not letters, f"dead letters for well-formed readings: {letters[:3]}"
        assert len(validated) == len(records)

        days = {datetime.fromtimestamp(start_ms / 1000, UTC).date() + timedelta(days=d)
                for d in (0, 1)}

        def stored() -> list[tuple] | None:
            rows = [(r["patient_id"], r["device_id"], r["seq"]) for p in plans for d in days
                    for r in session.execute(
                        "SELECT patient_id, device_id, seq FROM readings_by_patient_day "
                        "WHERE patient_id = %s AND day = %s", (p.patient_id, d))]
            return rows if len(rows) >= len(expected) else None

        rows = wait_until(stored, timeout=180, interval=3, what="every reading stored")
        assert len(rows) == len(set(rows)) == len(expected)
        assert set(rows) == expected
        # whole again: three brokers in the metadata, three Cassandra nodes up
        with kafka_admin(settings) as admin:
            assert len(admin.describe_cluster()["brokers"]) == 3  # type: ignore[attr-defined]
        cluster.wait_for_ring(settings, timeout=120)
        print(f"{len(records)} readings, {sum(1 for _ in validated)} evaluated, "
              f"recovery {faults.recovery_seconds}")
    finally:
        job.stop()
        session.cluster.shutdown()


def _identity(value: bytes) -> tuple[str, str, int]:
    """A reading's identity as the stream de-duplicates it: patient, device, sequence."""
    d = json.loads(value)
    return d["patient_id"], d["device_id"], d["seq"]

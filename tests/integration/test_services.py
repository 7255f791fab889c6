"""The local servers (``ops/services.py`` and the server modules it runs): idempotent start,
real clients, topics, the jar cache, and a full start/stop life cycle of a second, private
broker."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from backend.settings import Settings
from backend.storage.cassandra import connect
from ops import artefacts, kafka_server, maven, topics
from ops import cassandra_server as cassandra
from ops import services as svc

pytestmark = pytest.mark.integration


def _server_pids(main_class: str, config: Path) -> list[int]:
    """Every process running ``main_class`` with ``config``, found in /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if main_class.encode() in args and any(a.endswith(str(config).encode()) for a in args):
            pids.append(int(entry.name))
    return pids


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_start_is_idempotent(services: Settings) -> None:
    before = svc.status(services)
    for name, s in before.items():
        assert s.detail, f"{name} does not accept clients"

    t0 = time.monotonic()
    again = svc.start_all(services)
    assert time.monotonic() - t0 < 60, "starting running servers should only probe them"

    for name in ("kafka", "cassandra"):
        assert not again[name].started, f"a second start launched another {name}"
        assert again[name].pid == before[name].pid
    var = services.cache_dir / "var"
    if before["kafka"].pid is not None:  # managed here, not an external server
        assert _server_pids(kafka_server.KAFKA_MAIN, var / "kafka" / "server.properties") == [
            before["kafka"].pid]
    if before["cassandra"].pid is not None:
        assert _server_pids(cassandra.CASSANDRA_MAIN, var / "cassandra" / "cassandra.yaml") == [
            before["cassandra"].pid]


def test_kafka_round_trip(isolated_settings: Settings) -> None:
    cfg = isolated_settings.kafka
    key, value = b"pt-1", f"hello {uuid.uuid4()}".encode()
    producer = KafkaProducer(bootstrap_servers=cfg.bootstrap, acks="all")
    meta = producer.send(cfg.topic_raw, key=key, value=value).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(cfg.topic_raw, bootstrap_servers=cfg.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, isolation_level="read_committed")
    got: list[tuple] = []
    deadline = time.monotonic() + 30
    while not got and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += [(m.partition, m.offset, m.key, m.value) for m in records]
    consumer.close()
    assert got == [(meta.partition, meta.offset, key, value)]


def test_cassandra_answers(services: Settings) -> None:
    session = connect(services.cassandra, keyspace=False, wait_seconds=30)
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
    finally:
        session.cluster.shutdown()
    assert row["release_version"].startswith("5.0")


def test_ensure_topics_is_idempotent(isolated_settings: Settings) -> None:
    wanted = topics.kafka_topics(isolated_settings)
    assert topics.ensure_topics(isolated_settings) == []  # the fixture created them all
    assert topics.ensure_topics(isolated_settings) == []
    with kafka_server.kafka_admin(isolated_settings) as admin:
        described = {t["name"]: len(t["partitions"])
                     for t in admin.describe_topics(list(wanted))}
    assert described == wanted
    assert wanted[isolated_settings.kafka.topic_raw] == isolated_settings.kafka.partitions
    assert wanted[isolated_settings.kafka.topic_sink_progress] == 1


def test_fetch_is_cached(services: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    first = artefacts.fetch_all(services)  # completes the cache if the spark jars were missing

    def no_maven(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"maven ran although the cache is complete: {args}")

    monkeypatch.setattr(maven.subprocess, "run", no_maven)
    assert artefacts.fetch_all(services) == first

    names = [p.name for p in first["spark"]]
    assert any(n.startswith("spark-sql-kafka-0-10_2.12-") for n in names)
    assert any(n.startswith("spark-cassandra-connector_2.12-") for n in names)
    assert any(n.startswith("kafka-clients-") for n in names)
    pyspark_jars = {p.name for p in artefacts.pyspark_jars_dir().glob("*.jar")}
    assert not pyspark_jars & set(names), "connector jars duplicate pyspark's own"
    assert {p.parent for p in first["spark"]} == {services.spark.jars_dir}


def _two_free_ports() -> int:
    """A port p with p and p + 1 free (broker and controller)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def test_private_broker_life_cycle(services: Settings, tmp_path: Path) -> None:
    """Start, start again, stop, stop again: a broker of its own (own cache dir and
    ports; the fetched jars are shared through a symlink), so the shared one is untouched."""
    port = _two_free_ports()
    settings = services.model_copy(update={
        "cache_dir": tmp_path / "cache",
        "kafka": services.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{port}"}),
    })
    settings.cache_dir.mkdir()
    artefacts.fetch_kafka(services)
    kafka_home = artefacts.kafka_home(services)
    (settings.cache_dir / kafka_home.name).symlink_to(kafka_home)
    pidfile = settings.cache_dir / "var" / "kafka" / "kafka.pid"
    try:
        first = kafka_server.start_kafka(settings, timeout=180)
        assert first.started and first.pid
        assert pidfile.read_text().strip() == str(first.pid)

        second = kafka_server.start_kafka(settings)
        assert not second.started and second.pid == first.pid

        assert sorted(topics.ensure_topics(settings)) == sorted(topics.kafka_topics(settings))
        assert topics.ensure_topics(settings) == []

        assert kafka_server.stop_kafka(settings) is True
        assert _gone(first.pid)
        assert not pidfile.exists()
        assert kafka_server.stop_kafka(settings) is False
        assert not svc.status(settings)["kafka"].detail
    finally:
        kafka_server.stop_kafka(settings)

"""The replicated set on one machine: three Kafka brokers (KRaft), three Cassandra nodes
and the Spark standalone master with its workers, started, probed and stopped like the
single-node servers (``ops/server_processes.py``: pidfiles, idempotent start, file
locks), each from the single server's own configuration (``ops/kafka_server.py``,
``ops/cassandra_server.py``) with what makes it a member changed.

Topology (``Settings.cluster``, defaults)::

    kafka-1..3       127.0.0.1:19092..19094   each broker is also a KRaft controller
                     (controllers on 19192..19194, a quorum of three voters)
    cassandra-1..3   127.0.0.1, 127.0.0.2, 127.0.0.3 : 19042 (native), 17000 (storage),
                     JMX 17199..17201 on 127.0.0.1 (nodetool)
    spark-master, spark-worker-1..2   ops/spark_cluster.py (SparkSettings ports)

Why combined broker+controller nodes rather than three more controller JVMs: on a
2-core, 24 GiB machine each extra JVM costs ~250 MiB and its threads; combined nodes
keep a real three-voter quorum (one node down: the other two still elect a leader and
accept writes), which is what the fault tests need. Kafka advises separate controllers
for large clusters, where a busy broker can delay the controller; that is not this one.

Why port 19042 for Cassandra: Linux routes all of 127.0.0.0/8 to loopback, so the nodes
differ by address and share ports, but the single-node server already holds
127.0.0.1:9042 and :7000, so node 1 cannot use them. Every node takes 19042/17000: the
Python driver and the Spark Cassandra Connector assume one native port for all nodes.

Data and logs live under ``cache_dir``/var/cluster/<member>/, apart from the single
node's. Topics have replication factor 3 and ``min.insync.replicas`` 2 (so acks=all
survives one broker down and refuses writes with two down rather than keep one copy);
the keyspace has replication factor 3 and clients read and write at LOCAL_QUORUM.
Clients are pointed at the set with :func:`client_settings` or the ICU_* variables of
``icu services env --cluster``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from backend.settings import Settings
from ops import cassandra_server, kafka_server
from ops.artefacts import cassandra_home, fetch_kafka, kafka_home
from ops.server_processes import (
    ServerSpec,
    Service,
    ServiceError,
    find_pid,
    port_open,
    quiet,
    start_server,
    stop_server,
)
from ops.topics import ensure_topics

# Evenly spaced Murmur3 tokens, one per node (num_tokens: 1): an even share of the ring
# for each node without waiting for token allocation.
_RING = 2**64


def _tokens(n: int) -> list[int]:
    return [-(2**63) + i * (_RING // n) for i in range(n)]


def cluster_var(settings: Settings) -> Path:
    return settings.cache_dir / "var" / "cluster"


@dataclass(frozen=True)
class Member:
    """One server of the set: its ``ServerSpec`` and what kind of server it is."""

    kind: str  # "kafka" or "cassandra"
    index: int  # 1-based
    spec: ServerSpec

    @property
    def name(self) -> str:
        return self.spec.name


def kafka_members(settings: Settings) -> list[Member]:
    c = settings.cluster
    out = []
    for i, port in enumerate(c.kafka_ports, start=1):
        spec = ServerSpec(f"kafka-{i}", kafka_server.KAFKA_MAIN, kafka_home(settings),
                          cluster_var(settings) / f"kafka-{i}", "127.0.0.1", port, [port + 100],
                          setting=f"ICU_CLUSTER__KAFKA_PORTS (kafka-{i})",
                          config_name="server.properties", log_name="logs/server.log")
        out.append(Member("kafka", i, spec))
    return out


def cassandra_members(settings: Settings) -> list[Member]:
    c = settings.cluster
    out = []
    for i, host in enumerate(c.cassandra_hosts, start=1):
        spec = ServerSpec(f"cassandra-{i}", cassandra_server.CASSANDRA_MAIN,
                          cassandra_home(settings), cluster_var(settings) / f"cassandra-{i}",
                          host, c.cassandra_port, [c.cassandra_storage_port, jmx_port(settings, i)],
                          setting=f"ICU_CLUSTER__CASSANDRA_HOSTS (cassandra-{i})",
                          config_name="cassandra.yaml", log_name="logs/system.log")
        out.append(Member("cassandra", i, spec))
    return out


def members(settings: Settings) -> list[Member]:
    return [*kafka_members(settings), *cassandra_members(settings)]


def member(settings: Settings, name: str) -> Member:
    for m in members(settings):
        if m.name == name:
            return m
    raise ServiceError(f"no cluster member {name!r} "
                       f"(members: {', '.join(m.name for m in members(settings))})")


def jmx_port(settings: Settings, index: int) -> int:
    return settings.cluster.cassandra_jmx_port + index - 1


def bootstrap(settings: Settings) -> str:
    return ",".join(f"127.0.0.1:{p}" for p in settings.cluster.kafka_ports)


def client_settings(settings: Settings, *, spark_cluster: bool = True) -> Settings:
    """``settings`` pointed at the replicated set: all brokers, all nodes, replication
    factor 3 (topics and keyspace), min.insync.replicas 2; the stream job on the Spark
    standalone master unless ``spark_cluster`` is False."""
    c = settings.cluster
    update: dict[str, object] = {
        "kafka": settings.kafka.model_copy(update={
            "bootstrap": bootstrap(settings), "replication_factor": c.replication_factor,
            "min_insync_replicas": c.min_insync_replicas}),
        "cassandra": settings.cassandra.model_copy(update={
            "hosts": list(c.cassandra_hosts), "port": c.cassandra_port,
            "replication_factor": c.replication_factor}),
    }
    if spark_cluster:
        update["spark"] = settings.spark.model_copy(
            update={"master": settings.spark.cluster_url})
    return settings.model_copy(update=update)


def env_lines(settings: Settings) -> list[str]:
    """``export`` lines that point the ``icu`` commands at the replicated set."""
    cs = client_settings(settings)
    values = {
        "ICU_KAFKA__BOOTSTRAP": cs.kafka.bootstrap,
        "ICU_KAFKA__REPLICATION_FACTOR": str(cs.kafka.replication_factor),
        "ICU_KAFKA__MIN_INSYNC_REPLICAS": str(cs.kafka.min_insync_replicas),
        "ICU_CASSANDRA__HOSTS": json.dumps(cs.cassandra.hosts),
        "ICU_CASSANDRA__PORT": str(cs.cassandra.port),
        "ICU_CASSANDRA__REPLICATION_FACTOR": str(cs.cassandra.replication_factor),
        "ICU_SPARK__MASTER": cs.spark.master,
    }
    return [f"export {k}='{v}'" for k, v in values.items()]


# ---------------------------------------------------------------------------------------
# Kafka members


def _replace(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced; fails loudly if the single-node template changed
    under us (one place for the shared configuration, checked at every start)."""
    if old not in text:
        raise ServiceError(f"cluster configuration: {old!r} not in the single-node template")
    return text.replace(old, new)


def kafka_properties(settings: Settings, m: Member) -> str:
    """Broker ``m``'s server.properties: the single broker's listeners, storage and
    retention, as one of three voters, with the set's replication."""
    c = settings.cluster
    voters = ",".join(f"{k.index}@127.0.0.1:{k.spec.other_ports[0]}"
                      for k in kafka_members(settings))
    controller_port = m.spec.other_ports[0]
    return (kafka_server.kraft_header(controller_port, "icu services start --cluster",
                                      node_id=m.index, voters=voters)
            + kafka_server.PLAIN_LISTENERS.format(port=m.spec.port,
                                                  controller_port=controller_port)
            + kafka_server.broker_properties(settings, m.spec.var / "data",
                                             replication_factor=c.replication_factor,
                                             min_insync_replicas=c.min_insync_replicas)
            # A replica that lost its data must never become leader (the default; stated).
            + "unclean.leader.election.enable=false\n")


def _shared_cluster_id(settings: Settings) -> str:
    """One cluster id for the three brokers (each formats its storage with it)."""
    var = cluster_var(settings)
    var.mkdir(parents=True, exist_ok=True)
    return kafka_server.kafka_cluster_id(var)


def _kafka_prepare(settings: Settings, m: Member) -> list[str]:
    if not list((m.spec.home / "lib").glob("kafka_*.jar")):
        fetch_kafka(settings)
    mb = settings.cluster.kafka_heap_mb
    base, _ = kafka_server.jvm_argv(m.spec, heap=(f"-Xms{mb // 2}m", f"-Xmx{mb}m"))
    m.spec.config.write_text(kafka_properties(settings, m))
    # format_storage reads the member's own cluster.id: the set's, so they form one cluster
    (m.spec.var / "cluster.id").write_text(_shared_cluster_id(settings) + "\n")
    kafka_server.format_storage(m.spec, base, [])
    return [*base, kafka_server.KAFKA_MAIN, str(m.spec.config)]


def _kafka_member_probe(settings: Settings, m: Member) -> str | None:
    """This broker serves metadata and is registered with the controller quorum."""
    one = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap": m.spec.address})})
    with quiet("kafka"), kafka_server.kafka_admin(one, 5_000) as admin:
        cluster = admin.describe_cluster()  # type: ignore[attr-defined]
    ids = sorted(int(b.get("broker_id", b.get("node_id", -1)))
                 for b in cluster.get("brokers", []))
    if m.index not in ids:
        return None
    return f"broker {m.index}, brokers {ids}"


def quorum_leader(settings: Settings) -> int | None:
    """The node id of the active KRaft controller (the metadata quorum's leader), or
    None without one. (Metadata's ``controller_id`` is any live broker under KRaft.)"""
    cs = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"bootstrap": bootstrap(settings)})})
    with quiet("kafka"), kafka_server.kafka_admin(cs, 5_000) as admin:
        quorum = admin.describe_metadata_quorum()  # type: ignore[attr-defined]
    leader = quorum["topics"][0]["partitions"][0].get("leader_id", -1)
    return leader if leader is not None and leader >= 0 else None


def _start_kafka_member(settings: Settings, m: Member, timeout: float) -> Service:
    return start_server(m.spec, settings, lambda: _kafka_member_probe(settings, m),
                        lambda: _kafka_prepare(settings, m), timeout)


# ---------------------------------------------------------------------------------------
# Cassandra members


def cassandra_yaml(settings: Settings, m: Member) -> str:
    c = settings.cluster
    seeds = ",".join(f"{h}:{c.cassandra_storage_port}" for h in c.cassandra_hosts)
    token = _tokens(len(c.cassandra_hosts))[m.index - 1]
    text = cassandra_server.CASSANDRA_YAML.format(var=m.spec.var, port=c.cassandra_port,
                                     storage_port=c.cassandra_storage_port)
    for old, new in (
        ("# A single local node: 127.0.0.1 only, small caches, no snapshots on DROP/TRUNCATE\n"
         "# (tests create and drop many keyspaces).\n",
         f"# Node {m.index} of the replicated set (ops/cluster.py).\n"),
        ("cluster_name: icu-local\n", "cluster_name: icu-replicated\n"),
        # Every node is a seed: a seed never bootstraps, so the three start together on a
        # fresh machine; each takes its fixed token, so the ring is even from the start.
        ("num_tokens: 1\n", f"num_tokens: 1\ninitial_token: {token}\n"),
        (f'- seeds: "127.0.0.1:{c.cassandra_storage_port}"', f'- seeds: "{seeds}"'),
        ("listen_address: 127.0.0.1\n", f"listen_address: {m.spec.host}\n"),
        ("rpc_address: 127.0.0.1\n", f"rpc_address: {m.spec.host}\n"),
        # Three nodes share the machine: half the single node's memtable space each.
        ("memtable_heap_space: 256MiB\n", "memtable_heap_space: 128MiB\n"),
        ("memtable_offheap_space: 256MiB\n", "memtable_offheap_space: 128MiB\n"),
        ("file_cache_size: 128MiB\n", "file_cache_size: 64MiB\n"),
        # A dropped or truncated table is kept as a snapshot, as in production.
        ("auto_snapshot: false\n", "auto_snapshot: true\n"),
    ):
        text = _replace(text, old, new)
    # sstable names unique across nodes, so a backup's files of one table from all three
    # nodes can share a directory (ops/backup.py).
    return text + "uuid_sstable_identifiers_enabled: true\n"


def _cassandra_member_probe(settings: Settings, m: Member) -> str | None:
    from cassandra.cluster import Cluster
    from cassandra.policies import WhiteListRoundRobinPolicy

    from backend.storage.cassandra import cassandra_security

    with quiet("cassandra"):
        cluster = Cluster([m.spec.host], port=m.spec.port, protocol_version=5,
                          load_balancing_policy=WhiteListRoundRobinPolicy([m.spec.host]),
                          connect_timeout=5, control_connection_timeout=5,
                          **cassandra_security(settings.cassandra))
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local").one()
        finally:
            cluster.shutdown()
    return f"Cassandra {row[0]} on {m.spec.host}" if row else None


def _start_cassandra_member(settings: Settings, m: Member, timeout: float,
                            unsafe_system: bool = False) -> Service:
    return start_server(m.spec, settings, lambda: _cassandra_member_probe(settings, m),
                        lambda: _cassandra_prepare(settings, m, unsafe_system), timeout)


def _cassandra_prepare(settings: Settings, m: Member, unsafe_system: bool) -> list[str]:
    mb = settings.cluster.cassandra_heap_mb
    argv = cassandra_server.cassandra_prepare(m.spec, settings, unsafe_system,
                                              heap=(f"-Xms{mb}m", f"-Xmx{mb}m"),
                                              jmx_port=m.spec.other_ports[1])
    m.spec.config.write_text(cassandra_yaml(settings, m))  # the member's, over the single's
    return argv


# ---------------------------------------------------------------------------------------
# The set


def start_member(settings: Settings, name: str, *, timeout: float = 240) -> Service:
    """Start one member (no-op if it runs): e.g. bring back a node after a fault."""
    m = member(settings, name)
    if m.kind == "kafka":
        return _start_kafka_member(settings, m, timeout)
    return _start_cassandra_member(settings, m, timeout)


def member_pid(settings: Settings, name: str) -> int | None:
    m = member(settings, name)
    return find_pid(m.spec) if m.spec.var.exists() else None


def _check_addresses(settings: Settings) -> None:
    import socket

    for host in settings.cluster.cassandra_hosts:
        try:
            with socket.socket() as s:
                s.bind((host, 0))
        except OSError as exc:
            raise ServiceError(f"cassandra node address {host} is not usable on this "
                               f"machine ({exc}); Linux routes 127.0.0.0/8 to loopback, "
                               "other systems need an alias (ifconfig lo0 alias)") from None


def start_cluster(settings: Settings, *, spark: bool = True, timeout: float = 300,
                  topics: bool = True, unsafe_system: bool = False) -> list[Service]:
    """Start every member (idempotent: running members are only probed), wait until the
    brokers form one cluster and every Cassandra node sees the others up, create the
    topics (replication factor 3); then the Spark master and workers if ``spark``.
    ``unsafe_system``: no fsync of Cassandra's system tables (tests: a schema change
    waits for three nodes' fsyncs otherwise, 1-10 s each on a busy 2-core machine)."""
    _check_addresses(settings)
    _shared_cluster_id(settings)  # once, before the brokers format their storage in parallel
    all_members = members(settings)
    starters: list[Callable[[], Service]] = [
        (lambda m=m: _start_kafka_member(settings, m, timeout)) if m.kind == "kafka"
        else (lambda m=m: _start_cassandra_member(settings, m, timeout, unsafe_system))
        for m in all_members]
    # All together: a KRaft quorum needs two voters up before any broker registers, and
    # every Cassandra node is a seed.
    with ThreadPoolExecutor(max_workers=len(starters), thread_name_prefix="cluster") as pool:
        futures = [pool.submit(f) for f in starters]
        out, errors = [], []
        for m, fut in zip(all_members, futures, strict=True):
            try:
                out.append(fut.result())
            except ServiceError as exc:
                errors.append(f"{m.name}: {exc}")
    if errors:
        raise ServiceError("\n\n".join(errors))
    cs = client_settings(settings, spark_cluster=False)
    wait_for_ring(cs, timeout=timeout)
    if topics:
        ensure_topics(cs)
    if spark:
        from ops.spark_cluster import start_spark

        out.extend(start_spark(settings, timeout=timeout))
    return out


def wait_for_ring(settings: Settings, *, timeout: float = 120,
                  expect: int | None = None) -> list[str]:
    """Wait until the driver sees ``expect`` (default: every) Cassandra node up and the
    nodes agree on the schema; the addresses up."""
    from backend.storage.cassandra import make_cluster

    want = expect if expect is not None else len(settings.cassandra.hosts)
    deadline = time.monotonic() + timeout
    last = "no connection"
    while True:
        cluster = make_cluster(settings.cassandra)
        try:
            with quiet("cassandra"):
                cluster.connect()
                up = sorted(h.address for h in cluster.metadata.all_hosts() if h.is_up)
                agreed = cluster.control_connection.wait_for_schema_agreement(wait_time=5)
            if len(up) >= want and agreed:
                return up
            last = f"{len(up)} node(s) up ({', '.join(up)}), schema agreed: {agreed}"
        except Exception as exc:
            last = repr(exc)[:300]
        finally:
            cluster.shutdown()
        if time.monotonic() > deadline:
            raise ServiceError(f"Cassandra ring not ready after {timeout:.0f}s: {last}")
        time.sleep(1)


def stop_cluster(settings: Settings, *, spark: bool = True) -> list[str]:
    """Stop every member that runs (SIGTERM, then SIGKILL after the timeout); returns
    their names. Spark first (its jobs use the others), then all servers together, so
    the KRaft quorum is there for each broker's controlled shutdown."""
    stopped: list[str] = []
    if spark:
        from ops.spark_cluster import stop_spark

        stopped += stop_spark(settings)
    all_members = members(settings)
    with ThreadPoolExecutor(max_workers=len(all_members), thread_name_prefix="stop") as pool:
        results = list(pool.map(lambda m: stop_server(m.spec, 90), all_members))
    return stopped + [m.name for m, was in zip(all_members, results, strict=True) if was]


def cluster_status(settings: Settings) -> list[Service]:
    """Every member, its pid (None: not running) and whether it answers (``detail``)."""
    out = []
    leader = None
    with contextlib.suppress(Exception):
        leader = quorum_leader(settings)
    for m in members(settings):
        pid = find_pid(m.spec) if m.spec.var.exists() else None
        detail = ""
        if pid and port_open(m.spec.host, m.spec.port):
            probe = _kafka_member_probe if m.kind == "kafka" else _cassandra_member_probe
            with contextlib.suppress(Exception):
                detail = probe(settings, m) or ""
            if detail and m.kind == "kafka" and m.index == leader:
                detail += ", active KRaft controller"
        out.append(Service(m.name, m.spec.address, pid, m.spec.server_log, detail=detail))
    from ops.spark_cluster import spark_status

    return out + spark_status(settings)


def any_running(settings: Settings) -> bool:
    return any(m.spec.var.exists() and find_pid(m.spec) for m in members(settings))

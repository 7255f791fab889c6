"""The single-node KRaft Kafka broker on 127.0.0.1 (no Docker): its configuration,
start, readiness probe and stop, and an admin client.

Lives under ``Settings.cache_dir``::

    var/kafka/                   server.properties, log4j2.xml, data/, logs/server.log,
                                 kafka.out (JVM stdout/stderr), kafka.pid

The client port is ``kafka.bootstrap``'s; its port + 1 is the KRaft controller. The
broker properties that do not depend on who may connect (storage, partitions,
replication, retention) are written by ``broker_properties`` for this broker and for the
secured one (``ops/secure_services.py``) alike.
"""

from __future__ import annotations

import base64
import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from backend.settings import Settings
from ops.artefacts import fetch_kafka, kafka_home
from ops.server_processes import (
    ServerSpec,
    Service,
    ServiceError,
    common_jvm_flags,
    host_port,
    is_loopback,
    java,
    quiet,
    start_server,
    stop_server,
    var_dir,
)

# Heap sized for a small shared machine (2 cores, Spark and the web app beside it).
KAFKA_HEAP = ("-Xms256m", "-Xmx512m")
KAFKA_MAIN = "kafka.Kafka"

# Who may connect: plain text on 127.0.0.1 (the secured broker writes its own listeners,
# SASL and ACL properties instead).
PLAIN_LISTENERS = """\
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""

# Storage, partitions, replication and retention: the same for every broker we run.
BROKER_PROPERTIES = """\
log.dirs={data}
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# Topics are created explicitly (ensure_topics), never by a typo in a producer.
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions={partitions}
default.replication.factor={replication_factor}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={replication_factor}
offsets.topic.num.partitions=4
transaction.state.log.replication.factor={replication_factor}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor={replication_factor}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
log.retention.hours={retention_hours}
log.segment.bytes=268435456
log.retention.check.interval.ms=300000
"""

KAFKA_LOG4J2 = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by `icu services start`. -->
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="{logs}/server.log" filePattern="{logs}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


def kraft_header(controller_port: int, written_by: str, *, node_id: int = 1,
                 voters: str | None = None) -> str:
    """The KRaft roles every broker we run starts with: a broker that is also a
    controller; alone (the default) or one of the ``voters`` (``id@host:port,...``)."""
    return (f"# Written by `{written_by}` on every start; edits are overwritten.\n"
            f"process.roles=broker,controller\nnode.id={node_id}\n"
            f"controller.quorum.voters={voters or f'1@127.0.0.1:{controller_port}'}\n")


def broker_properties(settings: Settings, data: Path, *, replication_factor: int = 1,
                      min_insync_replicas: int = 1) -> str:
    """Storage, partitions and retention from ``Settings.kafka``; the copies of every
    topic and of the internal ones (one broker: 1 and 1)."""
    return BROKER_PROPERTIES.format(
        data=data, partitions=settings.kafka.partitions,
        retention_hours=max(1, round(settings.kafka.retention_hours)),
        replication_factor=replication_factor, min_isr=min_insync_replicas)


def jvm_argv(spec: ServerSpec, heap: tuple[str, ...] = KAFKA_HEAP) -> tuple[list[str], Path]:
    """The broker's JVM command line up to the main class (log4j2 written), and its data
    directory (created)."""
    lib = spec.home / "lib"
    data, logs = spec.var / "data", spec.var / "logs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    log4j = spec.var / "log4j2.xml"
    log4j.write_text(KAFKA_LOG4J2.replace("{logs}", str(logs)))
    return [
        java(), *heap, *common_jvm_flags(),
        "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={logs}",
        "-cp", f"{lib}/*",
    ], data


def format_storage(spec: ServerSpec, base: list[str], extra: list[str],
                   secret: str | None = None) -> None:
    """Format the KRaft storage once (a new data directory); ``extra`` adds e.g. SCRAM
    users, and ``secret`` is masked in the error message."""
    if (spec.var / "data" / "meta.properties").exists():
        return
    # "--cluster-id=": a base64url id may start with "-" (argparse takes it for an option)
    fmt = [*base, "kafka.tools.StorageTool", "format",
           f"--cluster-id={kafka_cluster_id(spec.var)}", "-c", str(spec.config),
           "--ignore-formatted", *extra]
    proc = subprocess.run(fmt, capture_output=True, text=True, timeout=120, cwd=spec.var)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if secret:
            output = output.replace(secret, "***")
        raise ServiceError(f"{spec.name} storage format failed:\n{output}")


def kafka_spec(settings: Settings) -> ServerSpec:
    bootstrap = settings.kafka.bootstrap
    host, port = host_port(bootstrap.split(",")[0], 9092)
    local = is_loopback(host)
    return ServerSpec("kafka", KAFKA_MAIN, kafka_home(settings), var_dir(settings, "kafka"),
                      "127.0.0.1" if local else host, port, [port + 1],
                      local=local, setting=f"ICU_KAFKA__BOOTSTRAP={bootstrap}",
                      config_name="server.properties", log_name="logs/server.log")


def kafka_cluster_id(var: Path) -> str:
    """A fixed cluster id per installation (Kafka's base64url Uuid, no padding)."""
    path = var / "cluster.id"
    if not path.exists():
        raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(raw + "\n")
    return path.read_text().strip()


def _prepare(spec: ServerSpec, settings: Settings) -> list[str]:
    if not list((spec.home / "lib").glob("kafka_*.jar")):
        fetch_kafka(settings)
    base, data = jvm_argv(spec)
    spec.config.write_text(
        kraft_header(spec.other_ports[0], "icu services start")
        + PLAIN_LISTENERS.format(port=spec.port, controller_port=spec.other_ports[0])
        + broker_properties(settings, data))
    format_storage(spec, base, [])
    return [*base, KAFKA_MAIN, str(spec.config)]


def _kafka_admin_kwargs(bootstrap: str, timeout_ms: int) -> dict:
    from kafka import KafkaAdminClient

    kw: dict = {"bootstrap_servers": bootstrap, "client_id": "icu-services",
                "request_timeout_ms": timeout_ms}
    defaults = getattr(KafkaAdminClient, "DEFAULT_CONFIG", {})
    if "bootstrap_timeout_ms" in defaults:  # kafka-python 3
        kw["bootstrap_timeout_ms"] = timeout_ms
    elif "api_version_auto_timeout_ms" in defaults:  # kafka-python 2
        kw["api_version_auto_timeout_ms"] = timeout_ms
    return kw


@contextlib.contextmanager
def kafka_admin(settings: Settings, timeout_ms: int = 10_000) -> Iterator[object]:
    from kafka import KafkaAdminClient

    from backend.clients import kafka_security

    admin = KafkaAdminClient(**_kafka_admin_kwargs(settings.kafka.bootstrap, timeout_ms),
                             **kafka_security(settings.kafka))
    try:
        yield admin
    finally:
        admin.close()


def kafka_probe(settings: Settings) -> str | None:
    """A description if the broker serves metadata (a broker registered), else None."""
    with quiet("kafka"), kafka_admin(settings, 5_000) as admin:
        cluster = admin.describe_cluster()
        if not cluster.get("brokers"):
            return None
        return f"cluster {cluster.get('cluster_id')}, {len(cluster['brokers'])} broker(s)"


def start_kafka(settings: Settings, *, timeout: float = 120) -> Service:
    """Start the single-node KRaft broker (no-op if it already runs) and wait until it
    serves clients."""
    spec = kafka_spec(settings)
    return start_server(spec, settings, lambda: kafka_probe(settings),
                  lambda: _prepare(spec, settings), timeout)


def stop_kafka(settings: Settings, *, timeout: float = 60) -> bool:
    return stop_server(kafka_spec(settings), timeout)

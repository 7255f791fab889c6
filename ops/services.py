"""The project's own local servers, without Docker: Kafka (single-node KRaft) and
Cassandra (single node) on 127.0.0.1, plus the Spark Kafka connector jars.

Everything lives outside the repository, under ``Settings.cache_dir`` (default
``~/.cache/icu-monitor``)::

    kafka-<v>/lib/*.jar          cassandra-<v>/lib/*.jar       (fetched once from Maven Central)
    var/kafka/                   server.properties, log4j2.xml, data/, logs/server.log,
                                 kafka.out (JVM stdout/stderr), kafka.pid
    var/cassandra/               cassandra.yaml, logback.xml, data/, commitlog/, ...,
                                 logs/system.log, cassandra.out, cassandra.pid

The Spark connector jars go to ``Settings.spark.jars_dir``. Ports come from Settings
(``kafka.bootstrap``; its port + 1 is the KRaft controller; ``cassandra.port``).

Every operation is idempotent and safe to run from several processes at once (a file
lock per server): ``start`` finds a running server by its pidfile (or, if that was lost,
by its command line) and only waits for it; ``stop`` sends SIGTERM, waits, then SIGKILL.

From Python::

    from ops import services
    services.fetch_all(settings)
    services.start_all(settings)          # or start_kafka / start_cassandra
    services.ensure_topics(settings)
    services.stop_all(settings)
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import importlib.metadata
import importlib.util
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import click

from backend.settings import Settings, get_settings
from ops.maven import Artifact, provided_by, resolve

# ---------------------------------------------------------------------------------------
# Versions: the one place they are pinned.
KAFKA_VERSION = "4.1.1"
CASSANDRA_VERSION = "5.0.6"
# Spark 3.5, not 4.x: the Spark Cassandra Connector (the JVM writer of the persist query,
# docs/benchmarks.md "Stream design") exists for Spark 3.5 only, and 3.5.7 is the newest
# 3.5 whose Kafka connector is on Maven Central. pyspark 3.5's wheel is Scala 2.12.
SPARK_VERSION = "3.5.7"  # must equal the pinned pyspark
SPARK_SCALA_BINARY = "2.12"
CASSANDRA_CONNECTOR_VERSION = "3.5.1"  # for Spark 3.5 and Cassandra 5.0
KAFKA_SCALA_BINARY = "2.13"  # the Kafka broker's own build
LOG4J_VERSION = "2.24.3"  # the log4j2 of Kafka 4.1; its pom brings only slf4j-api 1.7

KAFKA_ARTIFACTS = (
    Artifact("org.apache.kafka", f"kafka_{KAFKA_SCALA_BINARY}", KAFKA_VERSION),
    Artifact("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
)
# cassandra-all brings its own logback binding.
CASSANDRA_ARTIFACTS = (Artifact("org.apache.cassandra", "cassandra-all", CASSANDRA_VERSION),)
SPARK_CONNECTOR_ARTIFACTS = (
    Artifact("org.apache.spark", f"spark-sql-kafka-0-10_{SPARK_SCALA_BINARY}", SPARK_VERSION),
    Artifact("com.datastax.spark", f"spark-cassandra-connector_{SPARK_SCALA_BINARY}",
             CASSANDRA_CONNECTOR_VERSION),
)

# Heaps sized for a small shared machine (2 cores, Spark and the web app beside them).
KAFKA_HEAP = ("-Xms256m", "-Xmx512m")
CASSANDRA_HEAP = ("-Xms1g", "-Xmx1g")
# Inter-node (gossip) port, bound to 127.0.0.1 only: 7000 beside the default native port
# 9042, and shifted along with it (19042 -> 17000), so a second node can run beside.
CASSANDRA_STORAGE_PORT_OFFSET = 9042 - 7000

KAFKA_MAIN = "kafka.Kafka"
CASSANDRA_MAIN = "org.apache.cassandra.service.CassandraDaemon"

# From Cassandra 5.0's conf/jvm17-server.options (JPMS section).
CASSANDRA_JVM17_MODULE_FLAGS = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
)

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A server could not be fetched, started, reached or stopped."""


# ---------------------------------------------------------------------------------------
# Paths


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}"


def cassandra_home(settings: Settings) -> Path:
    return settings.cache_dir / f"cassandra-{CASSANDRA_VERSION}"


def var_dir(settings: Settings, name: str) -> Path:
    return settings.cache_dir / "var" / name


def pyspark_jars_dir() -> Path:
    """pyspark's bundled jars, located without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("pyspark is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "jars"


# ---------------------------------------------------------------------------------------
# Fetching


def _say(message: str) -> None:
    click.echo(message, err=True)


def fetch_kafka(settings: Settings) -> list[Path]:
    return resolve(KAFKA_ARTIFACTS, kafka_home(settings) / "lib", log=_say)


def fetch_cassandra(settings: Settings) -> list[Path]:
    return resolve(CASSANDRA_ARTIFACTS, cassandra_home(settings) / "lib", log=_say)


def spark_jars(settings: Settings) -> list[Path]:
    """The Kafka and Cassandra connector jars for ``spark.jars`` (fetched if missing): the
    connectors and the runtime dependencies pyspark's wheel does not already ship."""
    installed = importlib.metadata.version("pyspark")
    if installed != SPARK_VERSION:
        raise ServiceError(f"pyspark {installed} installed, connector pinned to {SPARK_VERSION}")
    jars_dir = pyspark_jars_dir()
    return resolve(SPARK_CONNECTOR_ARTIFACTS, settings.spark.jars_dir,
                   exclude=provided_by(jars_dir, log=_say), log=_say)


def fetch_all(settings: Settings) -> dict[str, list[Path]]:
    """Kafka, Cassandra and the Spark connector, each fetched once and then reused."""
    return {
        "kafka": fetch_kafka(settings),
        "cassandra": fetch_cassandra(settings),
        "spark": spark_jars(settings),
    }


# ---------------------------------------------------------------------------------------
# Processes


@dataclass
class Service:
    """A server as seen by ``start_*``/``status``."""

    name: str
    address: str  # host:port clients use
    pid: int | None  # None: not running, or running but not started by us (``external``)
    log: Path
    started: bool = False  # this call launched the process
    external: bool = False  # something else (e.g. Docker) serves the port
    ready_seconds: float = 0.0  # how long this call waited for readiness
    detail: str = ""

    @property
    def rss_mib(self) -> float | None:
        return _rss_mib(self.pid) if self.pid else None


@dataclass
class _Spec:
    name: str
    main_class: str
    home: Path  # where the jars are
    var: Path
    host: str
    port: int  # the client port
    other_ports: list[int] = field(default_factory=list)
    local: bool = True  # the settings point at 127.0.0.1 (else: a remote server)
    setting: str = ""  # the setting that names the server, for messages
    config_name: str = ""  # the config file in ``var`` its command line names
    log_name: str = ""  # its log under ``var`` (default: its output file)

    @property
    def pidfile(self) -> Path:
        return self.var / f"{self.name}.pid"

    @property
    def out(self) -> Path:
        return self.var / f"{self.name}.out"

    @property
    def config(self) -> Path:
        return self.var / self.config_name

    @property
    def server_log(self) -> Path:
        return self.var / self.log_name if self.log_name else self.out

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def _host_port(address: str, default_port: int) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host:
        return address.strip(), default_port
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _kafka_spec(settings: Settings) -> _Spec:
    bootstrap = settings.kafka.bootstrap
    host, port = _host_port(bootstrap.split(",")[0], 9092)
    local = _is_loopback(host)
    return _Spec("kafka", KAFKA_MAIN, kafka_home(settings), var_dir(settings, "kafka"),
                 "127.0.0.1" if local else host, port, [port + 1],
                 local=local, setting=f"ICU_KAFKA__BOOTSTRAP={bootstrap}",
                 config_name="server.properties", log_name="logs/server.log")


def _cassandra_spec(settings: Settings) -> _Spec:
    hosts = settings.cassandra.hosts
    local = bool(hosts) and all(_is_loopback(h) for h in hosts)
    return _Spec("cassandra", CASSANDRA_MAIN, cassandra_home(settings),
                 var_dir(settings, "cassandra"), "127.0.0.1" if local else hosts[0],
                 settings.cassandra.port, [cassandra_storage_port(settings)],
                 local=local, setting=f"ICU_CASSANDRA__HOSTS={json.dumps(hosts)}",
                 config_name="cassandra.yaml", log_name="logs/system.log")


def is_local(settings: Settings) -> dict[str, bool]:
    """Per server: do the settings point at this machine (so ``start`` can run it)?"""
    return {"kafka": _kafka_spec(settings).local, "cassandra": _cassandra_spec(settings).local}


def cassandra_storage_port(settings: Settings) -> int:
    port = settings.cassandra.port
    return port - CASSANDRA_STORAGE_PORT_OFFSET if port > CASSANDRA_STORAGE_PORT_OFFSET + 1024 \
        else port + 1


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _is_ours(pid: int, spec: _Spec) -> bool:
    """``pid`` is a live JVM running our main class with our config file."""
    args = _cmdline(pid)
    config = str(spec.config)
    return (spec.main_class in args and any(a.endswith(config) for a in args)
            and _alive(pid))


def _find_pid(spec: _Spec, *, repair: bool = False) -> int | None:
    """Our server's pid: from the pidfile, else by scanning /proc (a lost pidfile).
    With ``repair`` (only under the lock) the pidfile is rewritten or removed to match."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(spec.pidfile.read_text().strip())
        if _is_ours(pid, spec):
            return pid
    found = next((int(e.name) for e in Path("/proc").iterdir()
                  if e.name.isdigit() and _is_ours(int(e.name), spec)), None)
    if repair:
        if found is None:
            spec.pidfile.unlink(missing_ok=True)
        else:
            spec.pidfile.write_text(f"{found}\n")
    return found


@contextlib.contextmanager
def _locked(spec: _Spec, timeout: float = 600) -> Iterator[None]:
    """One process at a time starts or stops a given server (other sessions wait)."""
    spec.var.mkdir(parents=True, exist_ok=True)
    with open(spec.var / f"{spec.name}.lock", "w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ServiceError(f"{spec.name}: lock held by another process for "
                                       f"{timeout:.0f}s ({spec.var / spec.name}.lock)") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def _failure(spec: _Spec, message: str) -> ServiceError:
    parts = [f"{spec.name}: {message}"]
    for path in (spec.out, spec.server_log):
        parts.append(f"--- last lines of {path} ---\n{tail(path)}")
    return ServiceError("\n".join(parts))


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        raise ServiceError("java not found; install a JDK/JRE 17+ (apt-get install "
                           "openjdk-17-jre-headless) or set JAVA_HOME")
    return java


def _launch(spec: _Spec, argv: list[str]) -> int:
    """Start ``argv`` detached (own session, reparented to init, stdin closed, output
    appended to ``spec.out``) and record its pid."""
    spec.out.parent.mkdir(parents=True, exist_ok=True)
    with open(spec.out, "ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n"
                  .encode())
    # A short-lived sh forks the server in the background and prints its pid, so the
    # server is not our child: no zombie, no ResourceWarning, survives this process.
    script = 'cd "$1" || exit 1; out="$2"; shift 2; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    proc = subprocess.run(
        ["/bin/sh", "-c", script, "sh", str(spec.var), str(spec.out), *argv],
        capture_output=True, text=True, start_new_session=True, check=True, timeout=30,
    )
    pid = int(proc.stdout.strip())
    spec.pidfile.write_text(f"{pid}\n")
    return pid


def _wait_ready(spec: _Spec, pid: int | None, probe: Callable[[], str | None],
                timeout: float) -> tuple[float, str]:
    """Poll ``probe`` (None = not yet, else a description) until it succeeds; fail fast
    if the process dies and with the log tail on timeout."""
    started = time.monotonic()
    deadline = started + timeout
    last = "port closed"
    while True:
        if pid is not None and not _alive(pid):
            spec.pidfile.unlink(missing_ok=True)
            raise _failure(spec, f"process {pid} exited during start-up")
        if _port_open(spec.host, spec.port):
            try:
                detail = probe()
                if detail is not None:
                    return time.monotonic() - started, detail
                last = "port open, server not serving yet"
            except Exception as exc:
                last = f"port open, client failed: {exc!r}"[:300]
        if time.monotonic() > deadline:
            raise _failure(spec, f"not accepting clients on {spec.address} after "
                                 f"{timeout:.0f}s (pid {pid}; last: {last})")
        time.sleep(0.25)


def _check_ports_free(spec: _Spec) -> None:
    for port in (spec.port, *spec.other_ports):
        if _port_open(spec.host, port):
            raise ServiceError(
                f"{spec.name}: port {spec.host}:{port} is in use by another program "
                f"(not a {spec.name} server this tool manages, and it does not answer as one)"
            )


def _start(spec: _Spec, settings: Settings, probe: Callable[[], str | None],
           prepare: Callable[[], list[str]], timeout: float) -> Service:
    if not spec.local:
        raise ServiceError(f"{spec.setting} is not this machine; the local servers listen "
                           "on 127.0.0.1 only (use wait_until_ready for remote servers)")
    with _locked(spec):
        pid = _find_pid(spec, repair=True)
        if pid is not None:
            waited, detail = _wait_ready(spec, pid, probe, timeout)
            return Service(spec.name, spec.address, pid, spec.server_log,
                           ready_seconds=waited, detail=detail)
        if _port_open(spec.host, spec.port):
            # Not ours, but maybe a real server (Docker, a package install): use it.
            with contextlib.suppress(Exception):
                detail = probe()
                if detail is not None:
                    return Service(spec.name, spec.address, None, spec.server_log,
                                   external=True, detail=detail)
        _check_ports_free(spec)
        argv = prepare()
        pid = _launch(spec, argv)
        waited, detail = _wait_ready(spec, pid, probe, timeout)
        return Service(spec.name, spec.address, pid, spec.server_log, started=True,
                       ready_seconds=waited, detail=detail)


def _stop(spec: _Spec, timeout: float) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL. True if something was stopped."""
    if not spec.local:
        return False
    with _locked(spec):
        pid = _find_pid(spec, repair=True)
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            _say(f"{spec.name} (pid {pid}) ignored SIGTERM for {timeout:.0f}s; SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        spec.pidfile.unlink(missing_ok=True)
        return True


def _common_jvm_flags() -> list[str]:
    return [
        "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-XX:+PerfDisableSharedMem",
        "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
        "-Dfile.encoding=UTF-8",
    ]


# ---------------------------------------------------------------------------------------
# Kafka

KAFKA_PROPERTIES = """\
# Written by `icu services start` on every start; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
# Topics are created explicitly (ensure_topics), never by a typo in a producer.
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions={partitions}
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
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


def _kafka_cluster_id(var: Path) -> str:
    """A fixed cluster id per installation (Kafka's base64url Uuid, no padding)."""
    path = var / "cluster.id"
    if not path.exists():
        raw = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        path.write_text(raw + "\n")
    return path.read_text().strip()


def _kafka_prepare(spec: _Spec, settings: Settings, *, properties: str | None = None,
                   heap: tuple[str, ...] = KAFKA_HEAP,
                   cluster_id: str | None = None) -> list[str]:
    """``properties``/``heap``/``cluster_id``: a member of the replicated set."""
    lib = spec.home / "lib"
    if not list(lib.glob("kafka_*.jar")):
        fetch_kafka(settings)
    data, logs = spec.var / "data", spec.var / "logs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    spec.config.write_text(properties if properties is not None else KAFKA_PROPERTIES.format(
        port=spec.port, controller_port=spec.other_ports[0], data=data,
        partitions=settings.kafka.partitions,
    ))
    log4j = spec.var / "log4j2.xml"
    log4j.write_text(KAFKA_LOG4J2.replace("{logs}", str(logs)))
    base = [
        _java(), *heap, *_common_jvm_flags(),
        "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={logs}",
        "-cp", f"{lib}/*",
    ]
    if not (data / "meta.properties").exists():
        cluster_id = cluster_id or _kafka_cluster_id(spec.var)
        fmt = [*base, "kafka.tools.StorageTool", "format", "-t", cluster_id,
               "-c", str(spec.config), "--ignore-formatted"]
        proc = subprocess.run(fmt, capture_output=True, text=True, timeout=120,
                              cwd=spec.var)
        if proc.returncode != 0:
            raise ServiceError(f"kafka storage format failed:\n{proc.stdout}{proc.stderr}")
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

    admin = KafkaAdminClient(**_kafka_admin_kwargs(settings.kafka.bootstrap, timeout_ms))
    try:
        yield admin
    finally:
        admin.close()


def _kafka_probe(settings: Settings) -> str | None:
    """A description if the broker serves metadata (a broker registered), else None."""
    with _quiet("kafka"), kafka_admin(settings, 5_000) as admin:
        cluster = admin.describe_cluster()
        if not cluster.get("brokers"):
            return None
        return f"cluster {cluster.get('cluster_id')}, {len(cluster['brokers'])} broker(s)"


def start_kafka(settings: Settings, *, timeout: float = 120) -> Service:
    """Start the single-node KRaft broker (no-op if it already runs) and wait until it
    serves clients."""
    spec = _kafka_spec(settings)
    return _start(spec, settings, lambda: _kafka_probe(settings),
                  lambda: _kafka_prepare(spec, settings), timeout)


def stop_kafka(settings: Settings, *, timeout: float = 60) -> bool:
    return _stop(_kafka_spec(settings), timeout)


def kafka_topics(settings: Settings) -> dict[str, int]:
    """Every topic in ``Settings.kafka`` and its partition count."""
    cfg = settings.kafka
    topics = {getattr(cfg, name): cfg.partitions
              for name in type(cfg).model_fields if name.startswith("topic_")}
    # One partition by design: its committed group offset is the stream job's progress.
    topics[cfg.topic_sink_progress] = 1
    # The stream job's clock: a few bytes every few seconds, read once.
    topics[cfg.topic_ticks] = 1
    return topics


# Per-topic configuration at creation; the clock's ticks are worthless after an hour.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {"topic_ticks": {"retention.ms": "3600000"}}


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    return {getattr(settings.kafka, field): conf for field, conf in TOPIC_CONFIGS.items()}


def ensure_topics(settings: Settings, *, timeout: float = 30) -> list[str]:
    """Create the missing topics of ``Settings.kafka`` (idempotent); returns those created.

    An existing topic is left as it is (a warning if it has fewer partitions)."""
    from kafka.admin import NewTopic

    wanted = kafka_topics(settings)
    with _quiet("kafka"), kafka_admin(settings, int(timeout * 1000)) as admin:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            cfg = settings.kafka
            durability = {"min.insync.replicas": str(cfg.min_insync_replicas)}
            result = admin.create_topics(
                [NewTopic(t, wanted[t], cfg.replication_factor,
                          topic_configs={**durability, **topic_configs(settings).get(t, {})})
                 for t in missing],
                timeout_ms=int(timeout * 1000), raise_errors=False,
            )
            for topic in result.get("topics", []):
                code = topic.get("error_code", 0)
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a concurrent creator)
                    raise ServiceError(f"creating topic {topic.get('name')}: error {code} "
                                       f"{topic.get('error_message') or ''}")
        _wait_for_topics(admin, list(wanted), timeout)
        for info in admin.describe_topics(list(wanted)):
            name = info.get("name") or info.get("topic")
            have = len(info.get("partitions") or [])
            if name in wanted and have < wanted[name]:
                _say(f"warning: topic {name} has {have} partitions, settings ask for "
                     f"{wanted[name]}")
    return missing


def _wait_for_topics(admin: object, topics: list[str], timeout: float) -> None:
    wait = getattr(admin, "wait_for_topics", None)
    if wait is not None:  # kafka-python 3
        wait(topics, timeout_ms=int(timeout * 1000))
        return
    deadline = time.monotonic() + timeout
    while not set(topics) <= set(admin.list_topics()):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise ServiceError(f"topics not visible after {timeout:.0f}s: {topics}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------
# Cassandra

CASSANDRA_YAML = """\
# Written by `icu services start` on every start; edits are overwritten.
# A single local node: 127.0.0.1 only, small caches, no snapshots on DROP/TRUNCATE
# (tests create and drop many keyspaces).
cluster_name: icu-local
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:{storage_port}"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage_port}
native_transport_port: {port}
start_native_transport: true
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
data_file_directories:
  - {var}/data
commitlog_directory: {var}/commitlog
saved_caches_directory: {var}/saved_caches
hints_directory: {var}/hints
cdc_raw_directory: {var}/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 32MiB
commitlog_total_space: 1024MiB
disk_failure_policy: stop
commit_failure_policy: stop
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 4
concurrent_compactors: 1
memtable_flush_writers: 1
memtable_heap_space: 256MiB
memtable_offheap_space: 256MiB
key_cache_size: 16MiB
file_cache_size: 128MiB
compaction_throughput: 64MiB/s
auto_snapshot: false
snapshot_before_compaction: false
incremental_backups: false
"""

CASSANDRA_LOGBACK = """\
<!-- Written by `icu services start`. -->
<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.rolling.RollingFileAppender">
    <file>{logs}/system.log</file>
    <rollingPolicy class="ch.qos.logback.core.rolling.FixedWindowRollingPolicy">
      <fileNamePattern>{logs}/system.log.%i</fileNamePattern>
      <minIndex>1</minIndex><maxIndex>3</maxIndex>
    </rollingPolicy>
    <triggeringPolicy class="ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy">
      <maxFileSize>50MB</maxFileSize>
    </triggeringPolicy>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""


def cassandra_jmx_port(storage_port: int) -> int:
    """The node's JMX port (nodetool: snapshots for backups), bound to 127.0.0.1 only:
    its storage port + 199 (7000 -> 7199, Cassandra's default)."""
    return storage_port + 199


def _cassandra_prepare(spec: _Spec, settings: Settings, unsafe_system: bool, *,
                       yaml: str | None = None, heap: tuple[str, ...] = CASSANDRA_HEAP,
                       jmx_port: int | None = None) -> list[str]:
    """``yaml``/``heap``/``jmx_port``: a member of the replicated set (ops/cluster.py)."""
    lib = spec.home / "lib"
    if not list(lib.glob("cassandra-all-*.jar")):
        fetch_cassandra(settings)
    logs = spec.var / "logs"
    for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "triggers"):
        (spec.var / sub).mkdir(parents=True, exist_ok=True)
    spec.config.write_text(yaml if yaml is not None else CASSANDRA_YAML.format(
        var=spec.var, port=spec.port, storage_port=spec.other_ports[0]))
    logback = spec.var / "logback.xml"
    logback.write_text(CASSANDRA_LOGBACK.format(logs=logs))
    jamm = sorted(lib.glob("jamm-*.jar"))
    argv = [
        _java(), *heap, *_common_jvm_flags(),
        # G1 settings of jvm17-server.options (with a 1 GiB heap, G1 sizes the young
        # generation itself; a fixed -Xmn would defeat its pause-time goal).
        "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
        "-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300",
        "-XX:InitiatingHeapOccupancyPercent=70",
        "-Xss256k", "-XX:+UseThreadPriorities", "-XX:+UseTLAB", "-XX:+ResizeTLAB",
        *CASSANDRA_JVM17_MODULE_FLAGS,
        *([f"-javaagent:{jamm[-1]}"] if jamm else []),
        "-Dio.netty.tryReflectionSetAccessible=true",
        "-Dio.netty.allocator.useCacheForAllThreads=true", "-Dio.netty.allocator.maxOrder=11",
        # JMX for nodetool on 127.0.0.1 only (cassandra.jmx.local.port), as Cassandra's
        # own cassandra-env.sh does by default; no remote JMX port.
        f"-Dcassandra.jmx.local.port="
        f"{jmx_port or cassandra_jmx_port(spec.other_ports[0])}",
        f"-Dcassandra.config=file://{spec.config}",
        f"-Dlogback.configurationFile={logback}",
        f"-Dcassandra.logdir={logs}", f"-Dcassandra.storagedir={spec.var}",
        f"-Dcassandra.triggers_dir={spec.var / 'triggers'}",
        "-Dcassandra-foreground=yes",
        # Fast start of a single seed node.
        "-Dcassandra.ring_delay_ms=1000", "-Dcassandra.skip_wait_for_gossip_to_settle=0",
        "-Dcassandra.superuser_setup_delay_ms=0",
        *(["-Dcassandra.unsafesystem=true"] if unsafe_system else []),
        "-cp", f"{lib}/*", CASSANDRA_MAIN,
    ]
    return argv


def _cassandra_probe(settings: Settings) -> str | None:
    from backend.storage.cassandra import connect

    with _quiet("cassandra"):
        session = connect(settings.cassandra, keyspace=False)
        try:
            row = session.execute("SELECT release_version FROM system.local").one()
        finally:
            session.cluster.shutdown()
    return f"Cassandra {row['release_version']}" if row else None


def start_cassandra(settings: Settings, *, timeout: float = 180,
                    unsafe_system: bool = False) -> Service:
    """Start the single local node (no-op if it already runs) and wait until
    cassandra-driver can connect and query it.

    ``unsafe_system`` skips fsync of the system keyspace (-Dcassandra.unsafesystem): a
    faster schema for test runs, at the price of the schema after a power loss.
    """
    spec = _cassandra_spec(settings)
    return _start(spec, settings, lambda: _cassandra_probe(settings),
                  lambda: _cassandra_prepare(spec, settings, unsafe_system), timeout)


def stop_cassandra(settings: Settings, *, timeout: float = 90) -> bool:
    return _stop(_cassandra_spec(settings), timeout)


# ---------------------------------------------------------------------------------------
# Both


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Silence client libraries' connection-refused noise while probing."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


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
        ("kafka", _kafka_spec(settings), _kafka_probe),
        ("cassandra", _cassandra_spec(settings), _cassandra_probe),
    ):
        pid = _find_pid(spec) if spec.local and spec.var.exists() else None
        detail = ""
        if _port_open(spec.host, spec.port):
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
        if _alive(int(data.get("pid", 0))):
            holders.append(f"{data.get('holder')} (pid {data['pid']})")
        else:
            path.unlink(missing_ok=True)
    return holders


# ---------------------------------------------------------------------------------------
# CLI


def _settings_or_exit() -> Settings:
    return get_settings()


def _echo_service(s: Service) -> None:
    if s.external:
        how = "already served by another program (not managed here)"
    elif s.started:
        how = f"started, pid {s.pid}, ready in {s.ready_seconds:.1f}s"
    else:
        how = f"already running, pid {s.pid}"
    click.echo(f"{s.name:<10} {s.address:<16} {how}; {s.detail}")


def _run(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def cli() -> None:
    """Local Kafka and Cassandra servers (no Docker), and the Spark connector jars."""


@cli.command()
def fetch() -> None:
    """Fetch Kafka, Cassandra and the Spark Kafka connector from Maven Central (cached)."""
    settings = _settings_or_exit()
    started = time.monotonic()
    got = _run(lambda: fetch_all(settings))
    assert isinstance(got, dict)
    for name, jars in got.items():
        click.echo(f"{name:<10} {len(jars):>3} jars in {jars[0].parent if jars else '-'}")
    click.echo(f"done in {time.monotonic() - started:.1f}s")


@cli.command()
@click.option("--only", type=click.Choice(SERVICES), help="start just this server")
@click.option("--timeout", default=180.0, show_default=True, help="seconds to wait per server")
@click.option("--unsafe-system", is_flag=True,
              help="Cassandra: no fsync of system tables (faster schema; for tests)")
@click.option("--topics/--no-topics", default=True, show_default=True,
              help="create the Kafka topics of the settings")
@click.option("--spark", "spark", is_flag=True,
              help="also a Spark standalone master and its workers (ops/spark_cluster.py)")
@click.option("--cluster", "cluster", is_flag=True,
              help="the replicated set instead: 3 Kafka brokers, 3 Cassandra nodes, Spark "
                   "master and workers (ops/cluster.py; `icu services env --cluster`)")
def start(only: str | None, timeout: float, unsafe_system: bool, topics: bool,
          spark: bool, cluster: bool) -> None:
    """Start the local servers (idempotent) and wait until they accept clients."""
    settings = _settings_or_exit()
    if cluster:
        from ops.cluster import env_lines, start_cluster

        t0 = time.monotonic()
        for s in _run(lambda: start_cluster(settings, timeout=max(timeout, 300),  # type: ignore[union-attr]
                                            topics=topics)):
            _echo_service(s)
        click.echo(f"replicated set ready in {time.monotonic() - t0:.0f}s; point the "
                   "clients at it with:")
        click.echo("\n".join(env_lines(settings)))
        return
    services = _run(lambda: start_all(settings, only=only, unsafe_system=unsafe_system,
                                      timeout=timeout))
    assert isinstance(services, dict)
    for s in services.values():
        _echo_service(s)
    if spark:
        from ops.spark_cluster import start_spark

        for s in _run(lambda: start_spark(settings, timeout=timeout)):  # type: ignore[union-attr]
            _echo_service(s)
        click.echo(f"stream job: icu stream run --master {settings.spark.cluster_url}")
    if topics and "kafka" in services:
        created = _run(lambda: ensure_topics(settings))
        click.echo(f"topics: created {', '.join(created)}" if created  # type: ignore[arg-type]
                   else "topics: all present")


@cli.command()
@click.option("--only", type=click.Choice(SERVICES), help="stop just this server")
@click.option("--cluster", "cluster", is_flag=True, help="the replicated set instead")
def stop(only: str | None, cluster: bool) -> None:
    """Stop the local servers this tool started (SIGTERM, then SIGKILL)."""
    from ops.spark_cluster import stop_spark

    settings = _settings_or_exit()
    if cluster:
        from ops.cluster import stop_cluster

        gone = _run(lambda: stop_cluster(settings))
        click.echo(f"stopped: {', '.join(gone)}" if gone  # type: ignore[arg-type]
                   else "nothing was running")
        return
    spark = [] if only else _run(lambda: stop_spark(settings))
    stopped = [*spark, *_run(lambda: stop_all(settings, only=only))]  # type: ignore[misc]
    click.echo(f"stopped: {', '.join(stopped)}" if stopped  # type: ignore[arg-type]
               else "nothing was running")


def _cluster_status(settings: Settings) -> bool:
    from ops.cluster import cluster_status

    ok = True
    for s in cluster_status(settings):
        proc = f"pid {s.pid}, RSS {s.rss_mib or 0:.0f} MiB" if s.pid else "not running"
        ok &= bool(s.detail)
        click.echo(f"{s.name:<14} {s.address:<16} {proc:<28} "
                   f"{s.detail or 'NOT accepting clients'}")
    return ok


@cli.command("status")
@click.option("--cluster", "cluster", is_flag=True,
              help="only the replicated set (exit 1 unless every member answers)")
def status_cmd(cluster: bool) -> None:
    """Each server, its pid and memory, and whether it accepts clients (exit 1 if not all
    do); the replicated set's members too when any of them runs."""
    settings = _settings_or_exit()
    if cluster:
        sys.exit(0 if _cluster_status(settings) else 1)
    result = _run(lambda: status(settings))
    assert isinstance(result, dict)
    ok = True
    for s in result.values():
        if s.pid:
            proc = f"pid {s.pid}, RSS {s.rss_mib or 0:.0f} MiB"
        elif s.external:
            proc = "not managed here"
        else:
            proc = "not running"
        accepting = f"accepting clients: {s.detail}" if s.detail else "NOT accepting clients"
        ok &= bool(s.detail)
        click.echo(f"{s.name:<10} {s.address:<16} {proc:<28} {accepting}")
    from ops.cluster import any_running
    from ops.spark_cluster import spark_status

    if any_running(settings):  # listed only when it runs (it is optional)
        click.echo("replicated set (`icu services status --cluster`):")
        _cluster_status(settings)
    else:
        for s in spark_status(settings):  # listed only when it runs (it is optional)
            if s.pid:
                click.echo(f"{s.name:<14} {s.address:<16} pid {s.pid}, RSS "
                           f"{s.rss_mib or 0:.0f} MiB  {s.detail or 'NOT ready'}")
    sys.exit(0 if ok else 1)


@cli.command("env")
@click.option("--cluster", "cluster", is_flag=True, required=True,
              help="the replicated set's client settings")
def env_cmd(cluster: bool) -> None:
    """Print the ICU_* variables that point every command at the replicated set:
    eval "$(icu services env --cluster)"."""
    from ops.cluster import env_lines

    click.echo("\n".join(env_lines(_settings_or_exit())))


@cli.command("spark-daemon")
@click.argument("role", type=click.Choice(["master", "worker"]))
@click.option("--master-url", default=None, help="the master a worker joins")
def spark_daemon(role: str, master_url: str | None) -> None:
    """Run a Spark standalone master or worker in the foreground (containers; on this
    machine `icu services start --spark` runs them detached)."""
    from ops.spark_cluster import daemon_env, foreground_argv

    settings = _settings_or_exit()
    argv = foreground_argv(settings, role, master_url)
    daemon_env()
    os.execv(argv[0], argv)


@cli.command()
def topics() -> None:
    """Create the Kafka topics of the settings (idempotent)."""
    settings = _settings_or_exit()
    created = _run(lambda: ensure_topics(settings))
    for name, parts in kafka_topics(settings).items():
        mark = "created" if name in created else "exists"  # type: ignore[operator]
        click.echo(f"{name:<28} {parts:>3} partitions  {mark}")


@cli.command("logs")
@click.argument("name")
@click.option("-n", "--lines", default=50, show_default=True)
def logs_cmd(name: str, lines: int) -> None:
    """The last lines of a server's log: kafka, cassandra, or a member of the replicated
    set (kafka-1, cassandra-2, ...)."""
    settings = _settings_or_exit()
    if name not in SERVICES:
        from ops.cluster import member

        spec = _run(lambda: member(settings, name)).spec  # type: ignore[union-attr]
    else:
        spec = _kafka_spec(settings) if name == "kafka" else _cassandra_spec(settings)
    click.echo(f"--- {spec.server_log}")
    click.echo(tail(spec.server_log, lines))

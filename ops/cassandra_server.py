"""The single Cassandra node on 127.0.0.1 (no Docker): its configuration, start,
readiness probe and stop.

Lives under ``Settings.cache_dir``::

    var/cassandra/               cassandra.yaml, logback.xml, data/, commitlog/, ...,
                                 logs/system.log, cassandra.out, cassandra.pid

The native port is ``cassandra.port``; the inter-node port is derived from it
(``cassandra_storage_port``).
"""

from __future__ import annotations

import json

from backend.settings import Settings
from ops.artefacts import cassandra_home, fetch_cassandra
from ops.server_processes import (
    ServerSpec,
    Service,
    common_jvm_flags,
    is_loopback,
    java,
    quiet,
    start_server,
    stop_server,
    var_dir,
)

# Heap sized for a small shared machine (2 cores, Spark and the web app beside it).
CASSANDRA_HEAP = ("-Xms1g", "-Xmx1g")
# Inter-node (gossip) port, bound to 127.0.0.1 only: 7000 beside the default native port
# 9042, and shifted along with it (19042 -> 17000), so a second node can run beside.
CASSANDRA_STORAGE_PORT_OFFSET = 9042 - 7000

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


def cassandra_spec(settings: Settings) -> ServerSpec:
    hosts = settings.cassandra.hosts
    local = bool(hosts) and all(is_loopback(h) for h in hosts)
    return ServerSpec("cassandra", CASSANDRA_MAIN, cassandra_home(settings),
                 var_dir(settings, "cassandra"), "127.0.0.1" if local else hosts[0],
                 settings.cassandra.port, [cassandra_storage_port(settings)],
                 local=local, setting=f"ICU_CASSANDRA__HOSTS={json.dumps(hosts)}",
                 config_name="cassandra.yaml", log_name="logs/system.log")


def cassandra_jmx_port(storage_port: int) -> int:
    """The node's JMX port (nodetool: the snapshots of `icu db backup`), bound to
    127.0.0.1 only: its storage port + 199 (7000 -> 7199, Cassandra's default)."""
    return storage_port + 199


def cassandra_storage_port(settings: Settings) -> int:
    port = settings.cassandra.port
    return port - CASSANDRA_STORAGE_PORT_OFFSET if port > CASSANDRA_STORAGE_PORT_OFFSET + 1024 \
        else port + 1


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


def cassandra_prepare(spec: ServerSpec, settings: Settings, unsafe_system: bool, *,
                      heap: tuple[str, ...] = CASSANDRA_HEAP,
                      jmx_port: int | None = None) -> list[str]:
    """The node's directories and configuration written; its command line. ``jmx_port``:
    JMX on 127.0.0.1 only, for nodetool (none without it)."""
    lib = spec.home / "lib"
    if not list(lib.glob("cassandra-all-*.jar")):
        fetch_cassandra(settings)
    logs = spec.var / "logs"
    for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "triggers"):
        (spec.var / sub).mkdir(parents=True, exist_ok=True)
    spec.config.write_text(CASSANDRA_YAML.format(
        var=spec.var, port=spec.port, storage_port=spec.other_ports[0]))
    logback = spec.var / "logback.xml"
    logback.write_text(CASSANDRA_LOGBACK.format(logs=logs))
    jamm = sorted(lib.glob("jamm-*.jar"))
    argv = [
        java(), *heap, *common_jvm_flags(),
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
        # JMX on 127.0.0.1 only when asked (cassandra.jmx.local.port, as Cassandra's own
        # cassandra-env.sh does); never a remote JMX port.
        *([f"-Dcassandra.jmx.local.port={jmx_port}"] if jmx_port else []),
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


def cassandra_probe(settings: Settings) -> str | None:
    from backend.storage.cassandra import connect

    with quiet("cassandra"):
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
    spec = cassandra_spec(settings)
    return start_server(spec, settings, lambda: cassandra_probe(settings),
                        lambda: cassandra_prepare(spec, settings, unsafe_system,
                                                  jmx_port=cassandra_jmx_port(spec.other_ports[0])),
                        timeout)


def stop_cassandra(settings: Settings, *, timeout: float = 90) -> bool:
    return stop_server(cassandra_spec(settings), timeout)

"""Building the SparkSession: local mode by default, any master URL by configuration."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

from backend.clients import SPARK_HOSTNAME_CHECKING_FACTORY, spark_cassandra_options
from backend.settings import Settings
from streaming.class_archive import ClassArchive
from streaming.connection_factory import factory_jar

# The scheduler pools (``spark.scheduler.mode=FAIR``): the alarm query's tasks go
# before the persist query's, so a large Cassandra write never queues the next
# readings behind it. Pools are chosen per thread (``use_pool``).
LATENCY_POOL = "latency"
THROUGHPUT_POOL = "throughput"
_POOLS_XML = f"""<?xml version="1.0"?>
<allocations>
  <pool name="{LATENCY_POOL}"><schedulingMode>FIFO</schedulingMode><weight>4</weight>
    <minShare>1</minShare></pool>
  <pool name="{THROUGHPUT_POOL}"><schedulingMode>FIFO</schedulingMode><weight>1</weight>
    <minShare>0</minShare></pool>
</allocations>
"""


class MissingConnectorJars(RuntimeError):
    pass


def connector_jars(settings: Settings) -> list[str]:
    """The Kafka and Cassandra connector jars fetched from Maven Central by
    ``icu services fetch``.

    Supplying them as files keeps the job from resolving packages over the network at
    start-up (hospital networks rarely allow it).
    """
    jars = sorted(str(p) for p in settings.spark.jars_dir.glob("*.jar"))
    for connector in ("spark-sql-kafka", "spark-cassandra-connector"):
        if not any(connector in j for j in jars):
            raise MissingConnectorJars(
                f"no {connector} jar in {settings.spark.jars_dir}; run `icu services fetch`"
            )
    return jars


def _pools_file(settings: Settings) -> Path:
    path = settings.cache_dir / "spark-scheduler-pools.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != _POOLS_XML:
        path.write_text(_POOLS_XML)
    return path


def cassandra_conf(settings: Settings) -> dict[str, str]:
    """The Spark Cassandra Connector's configuration from ``Settings.cassandra``."""
    c = settings.cassandra
    conf = {
        "spark.cassandra.connection.host": ",".join(c.hosts),
        "spark.cassandra.connection.port": str(c.port),
        "spark.cassandra.connection.localDC": "datacenter1",
        # Sparse readings: an unset column is not written (a null would be a tombstone).
        "spark.cassandra.output.ignoreNulls": "true",
        # Rows of one partition go to Cassandra as one unlogged batch (one mutation), up to
        # SparkSettings.persist_batch_bytes (the default 1 KiB is four history rows: a
        # statement per four readings).
        "spark.cassandra.output.batch.grouping.key": "partition",
        "spark.cassandra.output.batch.size.bytes": str(settings.spark.persist_batch_bytes),
        "spark.cassandra.output.concurrent.writes": "16",
        "spark.cassandra.output.consistency.level": c.write_consistency,
        "spark.cassandra.input.consistency.level": c.consistency,
    }
    conf.update(spark_cassandra_options(c, settings.cache_dir / "tls"))
    return conf


def spark_session(settings: Settings, app_name: str = "icu-vitals",
                  *, archive: ClassArchive | None = None,
                  java_options: str = "") -> SparkSession:
    """The session, in a new driver JVM unless this process already has one. With
    ``archive``, a new JVM maps that class-data archive, or writes it at exit
    (``job_session``); ``java_options`` go to that JVM before the configured
    ``SparkSettings.driver_java_options``."""
    cfg = settings.spark
    # Workers must run the driver's interpreter (the venv with pandas and pyarrow), not
    # whatever ``python3`` is first on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    jars = connector_jars(settings)
    cassandra = cassandra_conf(settings)
    if cassandra.get("spark.cassandra.connection.factory") == SPARK_HOSTNAME_CHECKING_FACTORY:
        jars.append(str(factory_jar(settings, jars)))
    store = ("org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
             if cfg.state_store == "rocksdb" else
             "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(cfg.master)
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.executor.memory", cfg.executor_memory)
        # On a cluster the executors' Python workers use this interpreter too.
        .config("spark.pyspark.python", sys.executable)
        # Python workers are reused, so each keeps its Cassandra session and census cache;
        # they fork from a daemon that keeps the per-task cost low (worker_daemon).
        .config("spark.python.worker.reuse", "true")
        .config("spark.python.daemon.module", "streaming.worker_daemon")
        .config("spark.sql.streaming.stateStore.providerClass", store)
        .config("spark.sql.streaming.checkpointFileManagerClass",
                f"org.apache.spark.sql.execution.streaming.{cfg.checkpoint_file_manager}")
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled",
                "true")
        # A query with no new input waits this long before asking Kafka again (default
        # 10 ms: a hundred offset requests a second from an idle job).
        .config("spark.sql.streaming.pollingDelay", "100ms")
        # Every Spark job posts its plan's description; "formatted" (the default) took a
        # third of the driver thread per job in a profile, "simple" is a fraction of it.
        .config("spark.sql.ui.explainMode", "simple")
        .config("spark.scheduler.mode", "FAIR")
        .config("spark.scheduler.allocation.file", str(_pools_file(settings)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions",
                " ".join(filter(None, ("-Dlog4j2.level=WARN", java_options,
                                       cfg.driver_java_options,
                                       archive and archive.java_options()))))
    )
    for key, value in cassandra.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def job_session(settings: Settings, app_name: str) -> tuple[SparkSession, Callable[[], None]]:
    """The session of a long-running job command, and how it stops: ``spark.stop()``, then
    the driver JVM is ended and waited for, so that a class-data archive it writes at exit
    (``SparkSettings.class_archive``) is whole before it is used."""
    archive = None
    if settings.spark.class_archive and SparkContext._gateway is None:
        archive = ClassArchive.for_app(settings.cache_dir, app_name, connector_jars(settings))
    spark = spark_session(settings, app_name, archive=archive,
                          java_options=settings.spark.job_jit_options)
    # The job's process group gets SIGTERM/SIGINT as one (systemd, a terminal's Ctrl-C).
    # Left to itself the JVM would run its shutdown hooks at once, tearing the context
    # down under the queries the driver is stopping (and writing no usable archive);
    # pyspark's launcher already has it ignore SIGINT. The driver stops it: its stdin
    # closes when the driver ends, whatever way that happens.
    jvm = spark.sparkContext._jvm
    jvm.sun.misc.Signal.handle(jvm.sun.misc.Signal("TERM"), jvm.sun.misc.SignalHandler.SIG_IGN)

    def stop() -> None:
        spark.stop()
        if archive is not None:
            archive.finish(SparkContext._gateway)

    return spark, stop


def use_pool(spark: SparkSession, pool: str) -> None:
    """Run the Spark jobs this thread starts (a query started from it: every micro-batch)
    in ``pool``."""
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)

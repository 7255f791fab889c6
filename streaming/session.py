"""Building the SparkSession: local mode by default, any master URL by configuration."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from backend.settings import Settings


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


def spark_session(settings: Settings, app_name: str = "icu-vitals") -> SparkSession:
    cfg = settings.spark
    # Workers must run the driver's interpreter (the venv with pandas and pyarrow), not
    # whatever ``python3`` is first on the PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        SparkSession.builder.appName(app_name)
        .master(cfg.master)
        .config("spark.jars", ",".join(connector_jars(settings)))
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        # Python workers are reused, so each keeps its Cassandra session and census cache;
        # they fork from a daemon that keeps the per-task cost low (worker_daemon).
        .config("spark.python.worker.reuse", "true")
        .config("spark.python.daemon.module", "streaming.worker_daemon")
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=WARN")
        .getOrCreate()
    )

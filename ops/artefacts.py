"""The servers' and connectors' jars: which versions, and fetching them from Maven Central
into ``Settings.cache_dir`` (once; later calls reuse them)::

    kafka-<v>/lib/*.jar          cassandra-<v>/lib/*.jar

The Spark connector jars go to ``Settings.spark.jars_dir``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from backend.settings import Settings
from ops.maven import Artifact, provided_by, resolve
from ops.server_processes import ServiceError, say

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


def kafka_home(settings: Settings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}"


def cassandra_home(settings: Settings) -> Path:
    return settings.cache_dir / f"cassandra-{CASSANDRA_VERSION}"


def pyspark_jars_dir() -> Path:
    """pyspark's bundled jars, located without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError("pyspark is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "jars"


def fetch_kafka(settings: Settings) -> list[Path]:
    return resolve(KAFKA_ARTIFACTS, kafka_home(settings) / "lib", log=say)


def fetch_cassandra(settings: Settings) -> list[Path]:
    return resolve(CASSANDRA_ARTIFACTS, cassandra_home(settings) / "lib", log=say)


def spark_jars(settings: Settings) -> list[Path]:
    """The Kafka and Cassandra connector jars for ``spark.jars`` (fetched if missing): the
    connectors and the runtime dependencies pyspark's wheel does not already ship."""
    installed = importlib.metadata.version("pyspark")
    if installed != SPARK_VERSION:
        raise ServiceError(f"pyspark {installed} installed, connector pinned to {SPARK_VERSION}")
    jars_dir = pyspark_jars_dir()
    return resolve(SPARK_CONNECTOR_ARTIFACTS, settings.spark.jars_dir,
                   exclude=provided_by(jars_dir, log=say), log=say)


def fetch_all(settings: Settings) -> dict[str, list[Path]]:
    """Kafka, Cassandra and the Spark connector, each fetched once and then reused."""
    return {
        "kafka": fetch_kafka(settings),
        "cassandra": fetch_cassandra(settings),
        "spark": spark_jars(settings),
    }

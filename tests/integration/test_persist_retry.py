"""The persist query's writes go through a passing Cassandra outage (streaming/cassandra_retry.py).

A real Spark driver writes through the Spark Cassandra Connector to the real Cassandra.
The only contact point is a relay that first turns every connection away, as a node that
is down would, and then lets connections through. The write must be retried and stored
once the node is back, and the job must not fail. A write that no retry can mend (a table
that does not exist) must still fail at once. The node kills themselves are in
tests/integration/test_replicated_cluster.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cassandra.cluster import Session
from pyspark.sql import DataFrame, SparkSession

from backend.settings import Settings
from harness.relay import Relay
from harness.spark import fresh_spark_jvm
from harness.waiting import wait_until
from streaming.persist_job import PersistSink, raw_rows
from streaming.session import spark_session

pytestmark = pytest.mark.integration

TOPIC = "vitals.raw.retry-test"


@pytest.fixture
def relay(isolated_settings: Settings) -> Iterator[Relay]:
    relay = Relay(("127.0.0.1", isolated_settings.cassandra.port), refusing=True)
    yield relay
    relay.close()


@pytest.fixture
def through_relay(isolated_settings: Settings, relay: Relay) -> Settings:
    """The stream job's settings with the relay as its only Cassandra contact point."""
    s = isolated_settings
    return s.model_copy(update={
        "cassandra": s.cassandra.model_copy(update={"hosts": [relay.host],
                                                    "port": relay.port}),
        "spark": s.spark.model_copy(update={"master": "local[1]",
                                            "persist_retry_seconds": 120.0}),
    })


@pytest.fixture
def spark(through_relay: Settings) -> Iterator[SparkSession]:
    fresh_spark_jvm()  # the connector's contact point is read when the JVM starts
    spark = spark_session(through_relay, app_name="icu-persist-retry")
    yield spark
    spark.stop()


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The retry policy's own log lines (the Python driver's warnings are captured too)."""
    return [r.getMessage() for r in caplog.records if r.name == "streaming.cassandra_retry"]


def _raw_frame(spark: SparkSession, n: int) -> tuple[list[tuple], DataFrame]:
    """``n`` records as the persist query reads them from Kafka, and their frame."""
    now = datetime.now(UTC).replace(tzinfo=None)
    records = [(TOPIC, 0, i, f"bed-{i}".encode(), f'{{"n": {i}}}'.encode(), now)
               for i in range(n)]
    return records, spark.createDataFrame(
        records, "topic string, partition int, offset long, key binary, value binary, "
                 "timestamp timestamp")


def test_a_write_during_an_outage_is_retried_and_stored_once_the_node_is_back(
        db: Session, relay: Relay, through_relay: Settings, spark: SparkSession,
        caplog: pytest.LogCaptureFixture) -> None:
    records, frame = _raw_frame(spark, 50)
    sink = PersistSink(through_relay)

    def back_after_two_refusals() -> None:
        wait_until(lambda: relay.turned_away >= 2, timeout=120, interval=0.1,
                   what="the connector dialling the node that is down")
        relay.refusing = False

    node = threading.Thread(target=back_after_two_refusals, daemon=True)
    node.start()
    with caplog.at_level(logging.WARNING, logger="streaming.cassandra_retry"):
        sink._write(raw_rows(frame), "raw_messages")
    node.join(5)

    retries = _retries(caplog)
    assert retries and all(m.startswith("persist raw_messages: attempt ") for m in retries)
    assert "Failed to open native connection" in retries[0]
    stored = db.execute("SELECT kafka_offset, msg_key, payload FROM raw_messages "
                        "WHERE topic = %s AND kafka_partition = 0 AND offset_bucket = 0",
                        (TOPIC,)).all()
    assert sorted((r["kafka_offset"], r["msg_key"], r["payload"]) for r in stored) == [
        (offset, key, value) for _, _, offset, key, value, _ in records]


def test_a_write_no_retry_can_mend_fails_at_once(
        db: Session, relay: Relay, through_relay: Settings, spark: SparkSession,
        caplog: pytest.LogCaptureFixture) -> None:
    relay.refusing = False
    _, frame = _raw_frame(spark, 3)
    with caplog.at_level(logging.WARNING, logger="streaming.cassandra_retry"), \
            pytest.raises(Exception, match="no_such_table"):
        PersistSink(through_relay)._write(raw_rows(frame), "no_such_table")
    assert _retries(caplog) == []

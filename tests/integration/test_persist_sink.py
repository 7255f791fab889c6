"""One batch of the persist query, through the real connector into the real Cassandra.

The sink holds the batch and its parsed readings for the several writes that read them
(``PersistSink.hold``); a batch must store every row and leave nothing held, or a job
that runs for months fills its executors' memory one batch at a time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from cassandra.cluster import Session
from pyspark.sql import DataFrame, SparkSession

from backend.messages import ValidatedReading
from backend.settings import Settings
from backend.storage.timestamps import day_of
from harness.spark import fresh_spark_jvm
from streaming.persist_job import PersistSink
from streaming.session import spark_session

pytestmark = pytest.mark.integration

WARD = "ICU-P"
# 2026-11-30 00:53:20 UTC: a batch of under 40 readings a second apart is one minute
T0 = 1_796_000_000_000


@pytest.fixture(scope="module")
def spark(services: Settings) -> Iterator[SparkSession]:
    fresh_spark_jvm()  # the connector's contact point is read when the JVM starts
    spark = spark_session(services.model_copy(update={
        "spark": services.spark.model_copy(update={"master": "local[2]"})}),
        app_name="icu-persist-sink")
    yield spark
    spark.stop()


def _reading(patient: int, i: int, hr: float, offset: int) -> ValidatedReading:
    return ValidatedReading(patient_id=f"pp-{patient}", ward=WARD, bed=f"b{patient}",
                            device_id=f"mon-{patient}", seq=i, ts=T0 + i * 1000,
                            vitals={"hr": hr, "spo2": 97.0}, carried={"hr": hr, "spo2": 97.0},
                            news2=1, processed_ts=T0 + i * 1000 + 50,
                            source_partition=0, source_offset=offset)


def _batch(spark: SparkSession, settings: Settings,
           readings: list[ValidatedReading]) -> DataFrame:
    """The records of one micro-batch as the persist query reads them from Kafka: each
    reading's raw record and its validated message."""
    t, now = settings.kafka, datetime.now(UTC).replace(tzinfo=None)
    records = [
        *[(t.topic_raw, 0, r.source_offset, r.patient_id.encode(), b'{"raw": true}', now)
          for r in readings],
        *[(t.topic_validated, 0, n, r.patient_id.encode(), r.model_dump_json().encode(), now)
          for n, r in enumerate(readings)],
    ]
    return spark.createDataFrame(records, "topic string, partition int, offset long, "
                                          "key binary, value binary, timestamp timestamp")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_batch_stores_every_row_and_leaves_nothing_held(
        spark: SparkSession, db: Session, isolated_settings: Settings, seed: int) -> None:
    rng = random.Random(seed)
    hrs = [[round(rng.uniform(30, 220), 1) for _ in range(rng.randint(1, 30))]
           for _ in range(rng.randint(1, 40))]
    beds = [(p, i, hr) for p, bed in enumerate(hrs) for i, hr in enumerate(bed)]
    readings = [_reading(p, i, hr, offset) for offset, (p, i, hr) in enumerate(beds)]
    PersistSink(isolated_settings)(_batch(spark, isolated_settings, readings), 0)

    # neither rows nor Spark's columnar cache: both are persisted RDDs
    assert spark.sparkContext._jsc.sc().getPersistentRDDs().isEmpty()
    for p, values in enumerate(hrs):
        key = (f"pp-{p}", day_of(T0))
        stored = db.execute("SELECT seq, hr FROM readings_by_patient_day WHERE patient_id = %s"
                            " AND day = %s", key).all()
        assert sorted((row["seq"], row["hr"]) for row in stored) == [
            (i, pytest.approx(hr, rel=1e-6)) for i, hr in enumerate(values)]
        minute = db.execute("SELECT n, maxs FROM readings_by_patient_minute"
                            " WHERE patient_id = %s AND day = %s", key).one()
        assert minute["n"] == len(values)
        assert minute["maxs"]["hr"] == pytest.approx(max(values), rel=1e-6)
        latest = db.execute("SELECT hr FROM latest_by_ward WHERE ward = %s AND bed = %s",
                            (WARD, f"b{p}")).one()
        assert latest["hr"] == pytest.approx(values[-1], rel=1e-6)
    raw = db.execute("SELECT count(*) AS n FROM raw_messages WHERE topic = %s"
                     " AND kafka_partition = 0 AND offset_bucket = 0",
                     (isolated_settings.kafka.topic_raw,)).one()
    assert raw["n"] == len(readings)

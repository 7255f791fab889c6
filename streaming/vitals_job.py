"""The alarm query: Kafka ``vitals.raw`` -> validate, score, alarm -> Kafka (exactly once).

    raw records + clock ticks --groupBy(state bucket = hash(patient key) mod N)-->
        applyInPandasWithState (streaming.alarm_evaluator) --foreachBatch--> AlarmSink:
        alerts into Cassandra, then one Kafka transaction for every output message

This is the latency path: one Spark job per micro-batch (read Kafka, shuffle, the Python
step, collect to the driver), and the driver only publishes. Cassandra's copy of the
readings, dead letters and raw records is written by the persist query
(``streaming.persist_job``) from the topics this one publishes.

State (per-patient alarm state, duplicate memory) and Kafka offsets are checkpointed
together, so a restart resumes at the first unprocessed record with the state it had.
The state has no Spark timeout: a timeout makes Spark run a micro-batch back to back
without input. The job's clock (``Ticker``) sends one record per state bucket every
``SparkSettings.tick_seconds`` instead, which calls every bucket's stale-bed check.

A record longer than ``SparkSettings.max_record_bytes`` never reaches Python whole: the
JVM passes its length, SHA-256 and first bytes, and the evaluator dead-letters it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kafka import KafkaProducer
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupStateTimeout

from backend.clients import kafka_config
from backend.settings import Settings
from streaming.alarm_evaluator import (
    BUCKET_STATE_VERSION,
    OUTPUT_SCHEMA,
    STATE_SCHEMA,
    make_evaluator,
)
from streaming.kafka_io import kafka_source
from streaming.sink import AlarmSink

log = logging.getLogger(__name__)


def checkpoint_location(settings: Settings) -> Path:
    """The checkpoint of this state layout: a job whose state layout or bucket count
    changed cannot resume an old checkpoint, so it starts a new one (from the earliest
    retained offsets; idempotent writes and deterministic alert ids absorb the replay)."""
    cfg = settings.spark
    return cfg.checkpoint_dir / f"evaluate-v{BUCKET_STATE_VERSION}-b{cfg.state_buckets}"


def start_vitals_query(
    spark: SparkSession, settings: Settings, *, name: str = "vitals"
) -> tuple[StreamingQuery, AlarmSink]:
    cfg = settings.spark
    topics = settings.kafka
    raw = kafka_source(spark, settings, [topics.topic_raw, topics.topic_ticks],
                       max_offsets=cfg.max_offsets_per_trigger)
    size = F.length("value")
    oversized = size > F.lit(cfg.max_record_bytes)
    is_tick = F.col("topic") == F.lit(topics.topic_ticks)
    keyed = raw.select(
        "key",
        F.when(~oversized, F.col("value")).alias("value"),
        size.alias("size"),
        F.when(oversized, F.substring("value", 1, cfg.deadletter_head_bytes)).alias("head"),
        F.when(oversized, F.sha2("value", 256)).alias("sha256"),
        "topic", "partition", "offset", "timestamp",
        F.when(is_tick, F.col("value").cast("string").cast("long"))
        .otherwise(F.pmod(F.xxhash64("key"), F.lit(cfg.state_buckets))).alias("bucket"),
    )
    evaluated = keyed.groupBy("bucket").applyInPandasWithState(
        make_evaluator(settings),
        outputStructType=OUTPUT_SCHEMA,
        stateStructType=STATE_SCHEMA,
        outputMode="append",
        timeoutConf=GroupStateTimeout.NoTimeout,
    )
    sink = AlarmSink(settings, name, checkpoint=checkpoint_location(settings))
    writer = (
        evaluated.writeStream.queryName(name)
        .foreachBatch(sink)
        .option("checkpointLocation", str(checkpoint_location(settings)))
    )
    if cfg.trigger_seconds > 0:
        writer = writer.trigger(processingTime=f"{cfg.trigger_seconds} seconds")
    return writer.start(), sink


class Ticker:
    """The job's clock: one record per state bucket to ``topic_ticks`` every
    ``tick_seconds``, each carrying its bucket number, so Spark calls every bucket and
    its silent beds are checked even when no device sends anything."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="icu-stream-ticker",
                                        daemon=True)
        self._producer: KafkaProducer | None = None

    def start(self) -> Ticker:
        self._producer = KafkaProducer(**kafka_config(self.settings.kafka, acks=1,
                                                      linger_ms=0))
        self._thread.start()
        return self

    def tick(self) -> None:
        assert self._producer is not None
        topic = self.settings.kafka.topic_ticks
        for bucket in range(self.settings.spark.state_buckets):
            self._producer.send(topic, key=b"tick", value=str(bucket).encode())
        self._producer.flush(10)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.spark.tick_seconds):
            try:
                self.tick()
            except Exception as exc:  # Kafka away: the next tick tries again
                log.warning("clock tick not sent: %r", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._producer is not None:
            self._producer.close(timeout=5)

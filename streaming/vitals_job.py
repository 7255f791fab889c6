"""The vitals stream: Kafka ``vitals.raw`` -> validate, score, alarm -> Cassandra + Kafka.

    raw records --groupBy(state bucket = hash(patient key) mod N)--> applyInPandasWithState
                --foreachBatch--> VitalsSink (Cassandra, then one Kafka transaction)

State (per-patient alarm state, dedup sequence numbers) and Kafka offsets are checkpointed
together, so a restart resumes at the first unprocessed record with the state it had.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupStateTimeout

from backend.settings import Settings
from streaming.evaluator import (
    BUCKET_STATE_VERSION,
    OUTPUT_SCHEMA,
    STATE_SCHEMA,
    make_evaluator,
)
from streaming.sink import VitalsSink

log = logging.getLogger(__name__)


def checkpoint_location(settings: Settings) -> Path:
    """The checkpoint of this state layout: a job whose state layout or bucket count
    changed cannot resume an old checkpoint, so it starts a new one (from the earliest
    retained offsets; idempotent writes and deterministic alert ids absorb the replay)."""
    cfg = settings.spark
    return cfg.checkpoint_dir / f"state-v{BUCKET_STATE_VERSION}-b{cfg.state_buckets}"


def start_vitals_query(
    spark: SparkSession, settings: Settings, *, name: str = "vitals"
) -> tuple[StreamingQuery, VitalsSink]:
    cfg = settings.spark
    raw = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap)
        .option("subscribe", settings.kafka.topic_raw)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", cfg.max_offsets_per_trigger)
        # A deleted or compacted offset range must stop the job, not be skipped.
        .option("failOnDataLoss", "true")
        .load()
    )
    keyed = raw.select(
        F.col("key").cast("string").alias("patient_key"),
        F.col("key").alias("key_bytes"),
        "value", "topic", "partition", "offset", "timestamp",
        F.pmod(F.xxhash64("key"), F.lit(cfg.state_buckets)).alias("bucket"),
    )
    evaluated = keyed.groupBy("bucket").applyInPandasWithState(
        make_evaluator(settings),
        outputStructType=OUTPUT_SCHEMA,
        stateStructType=STATE_SCHEMA,
        outputMode="append",
        timeoutConf=GroupStateTimeout.ProcessingTimeTimeout,
    )
    sink = VitalsSink(settings, name)
    writer = (
        evaluated.writeStream.queryName(name)
        .foreachBatch(sink)
        .option("checkpointLocation", str(checkpoint_location(settings)))
    )
    if cfg.trigger_seconds > 0:
        writer = writer.trigger(processingTime=f"{cfg.trigger_seconds} seconds")
    return writer.start(), sink

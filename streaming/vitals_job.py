"""The vitals stream: Kafka ``vitals.raw`` -> validate, score, alarm -> Cassandra + Kafka.

    raw records --groupBy(patient key)--> applyInPandasWithState(evaluate)
                --foreachBatch--> VitalsSink (Cassandra, then one Kafka transaction)

State (per-patient alarm state, dedup sequence numbers) and Kafka offsets are checkpointed
together, so a restart resumes at the first unprocessed record with the state it had.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupStateTimeout

from backend.settings import Settings
from streaming.evaluator import OUTPUT_SCHEMA, STATE_SCHEMA, make_evaluator
from streaming.sink import VitalsSink

log = logging.getLogger(__name__)


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
    )
    evaluated = keyed.groupBy("patient_key").applyInPandasWithState(
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
        .option("checkpointLocation", str(cfg.checkpoint_dir))
    )
    if cfg.trigger_seconds > 0:
        writer = writer.trigger(processingTime=f"{cfg.trigger_seconds} seconds")
    return writer.start(), sink

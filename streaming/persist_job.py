"""The persist query: Kafka -> Cassandra, from the JVM (Spark Cassandra Connector).

    vitals.raw        --> raw_messages                 (every record exactly as received)
    vitals.validated  --> readings_by_patient_day      (the history)
                          latest_by_ward               (each bed's newest state)
                          readings_by_patient_minute   (per-minute extremes, for long timelines)
    vitals.deadletter --> deadletters_by_day           (what was rejected, and why)

This is the throughput path. It reads what the alarm query published (committed
transactions only) and what the devices sent, and writes Cassandra in large micro-batches
(``SparkSettings.persist_trigger_seconds``): each table write is a Spark job with a fixed
cost (~0.15 s), so batches of seconds of data amortise it, and no row crosses into
Python (the connector writes ~4x cheaper per row than the Python driver; measured in
docs/benchmarks.md, "Stream design"). Every write is an idempotent upsert keyed by the
data itself, so a replayed micro-batch rewrites the same rows; the checkpoint keeps the
offsets. A write that fails on a passing fault of the cluster (a node lost) is retried
(``streaming.cassandra_retry``) rather than stopping the job. The screens never wait for
this query: they follow Kafka.

Column names here are the tables' (``backend/storage/migrations``); the JSON fields are
``backend.messages``'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pyspark import SparkContext
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from backend.settings import Settings
from backend.storage.raw import OFFSET_BUCKET
from backend.timeline import MINUTE_MS, NEWS2
from backend.vitals import Vital
from streaming.cassandra_retry import call_retrying
from streaming.kafka_io import kafka_source

log = logging.getLogger(__name__)

PERSIST_QUERY = "persist"
CASSANDRA_FORMAT = "org.apache.spark.sql.cassandra"
VITALS: tuple[str, ...] = tuple(v.value for v in Vital)

# backend.messages.ValidatedReading, as Spark reads its JSON.
READING_SCHEMA = StructType([
    StructField("patient_id", StringType()),
    StructField("ward", StringType()),
    StructField("bed", StringType()),
    StructField("device_id", StringType()),
    StructField("seq", LongType()),
    StructField("ts", LongType()),
    StructField("vitals", MapType(StringType(), DoubleType())),
    StructField("carried", MapType(StringType(), DoubleType())),
    StructField("sensors_off", ArrayType(StringType())),
    StructField("news2", IntegerType()),
    StructField("news2_band", StringType()),
    StructField("news2_complete", BooleanType()),
    StructField("qsofa", IntegerType()),
    StructField("o2_supplemental", BooleanType()),
    StructField("consciousness", StringType()),
    StructField("processed_ts", LongType()),
    StructField("source_partition", IntegerType()),
    StructField("source_offset", LongType()),
])
# backend.messages.DeadLetter, the fields deadletters_by_day keeps.
DEAD_LETTER_SCHEMA = StructType([
    StructField("reason", StringType()),
    StructField("detail", StringType()),
    StructField("field", StringType()),
    StructField("patient_key", StringType()),
    StructField("source_topic", StringType()),
    StructField("source_partition", IntegerType()),
    StructField("source_offset", LongType()),
    StructField("received_ts", LongType()),
    StructField("rejected_ts", LongType()),
])


def persist_checkpoint_dir(settings: Settings) -> Path:
    """Next to the alarm query's checkpoints (``.../vitals`` -> ``.../vitals-persist``)."""
    cp = settings.spark.checkpoint_dir
    return cp.with_name(f"{cp.name}-persist")


def _ts(ms: Column | str) -> Column:
    return F.timestamp_millis(F.col(ms) if isinstance(ms, str) else ms)


def _day(ms: Column | str) -> Column:
    return F.to_date(_ts(ms))


def _nonempty(array: Column) -> Column:
    """An empty collection as null: with ignoreNulls it is not written at all (an empty
    collection would be a tombstone)."""
    return F.when(F.size(array) > 0, array)


T = TypeVar("T")


def _built_once(build: Callable[[], T]) -> Callable[[], T]:
    """``build()``'s column expressions, made once per Spark gateway and reused by every
    batch. Each ``F.*`` call resolves ``functions`` through pyspark's wildcard imports (a
    failed ``Class.forName`` over every jar per import): the ~200 calls that built one
    batch's writes were 39 % of the persist query's driver thread (docs/benchmarks.md).
    The expressions are unresolved, so they are valid for any DataFrame of the schema."""
    built: dict[object, T] = {}

    def get() -> T:
        gateway = SparkContext._gateway
        if gateway not in built:
            built.clear()
            built[gateway] = build()
        return built[gateway]

    get.build = build  # type: ignore[attr-defined]  # uncached: bench/bench_persist_plans.py
    return get


@_built_once
def _raw_columns() -> list[Column]:
    return [
        F.col("topic"),
        F.col("partition").alias("kafka_partition"),
        F.floor(F.col("offset") / OFFSET_BUCKET).cast("long").alias("offset_bucket"),
        F.col("offset").alias("kafka_offset"),
        F.col("key").alias("msg_key"),
        F.col("value").alias("payload"),
        F.col("timestamp").alias("kafka_ts"),
    ]


@_built_once
def _reading_columns() -> tuple[Column, Column]:
    return (F.from_json(F.col("value").cast("string"), READING_SCHEMA).alias("r"),
            F.col("patient_id").isNotNull())


@_built_once
def _history_columns() -> list[Column | str]:
    return [
        "patient_id", _day("ts").alias("day"), _ts("ts").alias("ts"), "device_id", "seq",
        *[F.col("vitals")[v].cast("float").alias(v) for v in VITALS],
        _nonempty(F.col("sensors_off")).alias("sensors_off"),
        "o2_supplemental", "consciousness", "news2", "news2_band", "news2_complete", "qsofa",
        _ts("processed_ts").alias("processed_ts"),
        F.col("source_partition").alias("kafka_partition"),
        F.col("source_offset").alias("kafka_offset"),
    ]


@_built_once
def _latest_columns() -> tuple[Column, list[Column | str]]:
    newest = F.max_by(F.struct(*READING_SCHEMA.fieldNames()), F.struct("ts", "seq")).alias("n")
    return newest, [
        "ward", "bed", "patient_id", _ts("ts").alias("ts"),
        *[F.col("carried")[v].cast("float").alias(v) for v in VITALS],
        _nonempty(F.col("sensors_off")).alias("sensors_off"),
        "news2", "news2_band", "news2_complete", "qsofa",
        _ts("processed_ts").alias("processed_ts"),
        (F.col("ts") * 1000).alias("writetime_us"),
    ]


@_built_once
def _minute_columns() -> tuple[list[Column | str], list[Column], list[Column | str]]:
    params = [*VITALS, NEWS2]
    values = [
        "patient_id", "ts", "seq",
        (F.col("ts") - F.col("ts") % MINUTE_MS).alias("minute"),
        *[F.col("vitals")[v].cast("double").alias(v) for v in VITALS],
        F.col("news2").cast("double").alias(NEWS2),
    ]

    def as_map(agg) -> Column:
        pairs = [x for p in params for x in (F.lit(p), agg(p).cast("float"))]
        return F.map_filter(F.create_map(*pairs), lambda _, v: v.isNotNull())

    # The newest value of each parameter: max_by skips rows whose ordering is null.
    def newest(p: str) -> Column:
        return F.max_by(F.col(p), F.when(F.col(p).isNotNull(), F.struct("ts", "seq")))

    aggregates = [
        F.min("ts").alias("part_ts"), F.count(F.lit(1)).cast("int").alias("n"),
        F.max("ts").alias("last_ts"),
        *[F.min(p).alias(f"min_{p}") for p in params],
        *[F.max(p).alias(f"max_{p}") for p in params],
        *[newest(p).alias(f"last_{p}") for p in params],
    ]
    parts = [
        "patient_id", _day("minute").alias("day"), _ts("minute").alias("minute"),
        _ts("part_ts").alias("part_ts"), "n", _ts("last_ts").alias("last_ts"),
        as_map(lambda p: F.col(f"min_{p}")).alias("mins"),
        as_map(lambda p: F.col(f"max_{p}")).alias("maxs"),
        as_map(lambda p: F.col(f"last_{p}")).alias("lasts"),
    ]
    return values, aggregates, parts


@_built_once
def _dead_letter_columns() -> tuple[Column, Column, list[Column | str]]:
    return (
        F.from_json(F.col("value").cast("string"), DEAD_LETTER_SCHEMA).alias("d"),
        F.col("reason").isNotNull(),
        [
            _day("received_ts").alias("day"), _ts("received_ts").alias("received_ts"),
            F.col("source_topic").alias("topic"),
            F.col("source_partition").alias("kafka_partition"),
            F.col("source_offset").alias("kafka_offset"),
            F.coalesce("field", F.lit("")).alias("field"), "reason", "detail",
            F.col("patient_key").alias("patient_id"), _ts("rejected_ts").alias("rejected_ts"),
        ],
    )


def raw_rows(records: DataFrame) -> DataFrame:
    return records.select(*_raw_columns())


def readings(records: DataFrame) -> DataFrame:
    """The validated readings of a batch, one column per JSON field."""
    parsed, known = _reading_columns()
    return records.select(parsed).select("r.*").where(known)


def history_rows(r: DataFrame) -> DataFrame:
    return r.select(*_history_columns())


def latest_rows(r: DataFrame) -> DataFrame:
    """Each bed's newest reading of the batch (``r``: ``readings``'s columns), with its
    carried-forward values and explicit nulls (a sensor that went off must not keep
    showing its last value). Written with the reading's own time as the cell timestamp
    (``writetime``), so a batch that brings an older reading of a bed never overwrites a
    newer one."""
    newest, columns = _latest_columns()
    return r.groupBy("ward", "bed").agg(newest).select("n.*").select(*columns)


def minute_rows(r: DataFrame) -> DataFrame:
    """One part per patient-minute of the batch, as ``backend.timeline.minute_parts``
    computes it: minimum, maximum and newest value of each parameter and NEWS2."""
    values, aggregates, parts = _minute_columns()
    return (r.select(*values).groupBy("patient_id", "minute").agg(*aggregates)
            .select(*parts))


def dead_letter_rows(records: DataFrame) -> DataFrame:
    parsed, known, columns = _dead_letter_columns()
    return records.select(parsed).select("d.*").where(known).select(*columns)


@dataclass(frozen=True)
class TableWrite:
    """One connector write of a batch: its rows, its table, the connector's options."""

    rows: DataFrame
    table: str
    options: dict[str, str] = field(default_factory=dict)


def table_writes(*, raw: DataFrame | None = None, readings: DataFrame | None = None,
                 dead_letters: DataFrame | None = None) -> list[TableWrite]:
    """A batch's writes, one per table: ``raw`` and ``dead_letters`` are Kafka records
    of vitals.raw and vitals.deadletter, ``readings`` is ``readings()``'s frame (held
    by the caller: three writes read it)."""
    writes: list[TableWrite] = []
    if raw is not None:
        writes.append(TableWrite(raw_rows(raw), "raw_messages"))
    if readings is not None:
        writes += [
            TableWrite(history_rows(readings), "readings_by_patient_day"),
            TableWrite(minute_rows(readings), "readings_by_patient_minute"),
            # the reading's own time as the cell's: an older reading never overwrites
            TableWrite(latest_rows(readings), "latest_by_ward",
                       {"writetime": "writetime_us",
                        "spark.cassandra.output.ignoreNulls": "false"}),
        ]
    if dead_letters is not None:
        writes.append(TableWrite(dead_letter_rows(dead_letters), "deadletters_by_day"))
    return writes


class PersistSink:
    """foreachBatch of the persist query: one connector write per table."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keyspace = settings.cassandra.keyspace
        self.topics = settings.kafka
        self.timings: dict[str, int] = {}  # ms per table write of the last batch

    def _write(self, rows: DataFrame, table: str, **options: str) -> None:
        started = time.monotonic()
        writer = (rows.write.format(CASSANDRA_FORMAT).mode("append")
                  .options(keyspace=self.keyspace, table=table, **options))
        call_retrying(writer.save, f"persist {table}",
                      budget_seconds=self.settings.spark.persist_retry_seconds)
        self.timings[table] = round((time.monotonic() - started) * 1000)

    def write_all(self, writes: list[TableWrite]) -> None:
        """One write after another. Not several at once: on this two-core machine that
        drained no faster (3,987 and 3,889 readings/s against 4,032 and 3,884; the
        machine is at ~1.85 cores either way; docs/benchmarks.md, "The persist writes
        at once")."""
        for w in writes:
            self._write(w.rows, w.table, **w.options)

    def hold(self, frame: DataFrame) -> DataFrame:
        """``frame``, computed once for the several jobs of the batch that read it: the
        rows as Spark computed them, kept by the block manager (a local checkpoint), not
        Spark's columnar cache, whose encoding of every column cost the JVM 8-17 % more
        CPU per persisted reading (docs/benchmarks.md, "Holding the persist batch").
        Rows held on an executor that is lost fail the batch's later writes; the query
        then stops and is started again from its checkpoint, and the writes are upserts."""
        return frame.localCheckpoint(eager=False)

    def release(self, held: DataFrame) -> None:
        """Free ``hold``'s rows now: the block manager would keep them until the JVM's
        garbage collector finds the checkpointed RDD unreachable."""
        held._jdf.queryExecution().analyzed().rdd().unpersist(False)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        self.timings = {}
        batch = self.hold(batch)
        r: DataFrame | None = None
        try:
            counts = {row["topic"]: row["n"] for row in
                      batch.groupBy("topic").agg(F.count(F.lit(1)).alias("n")).collect()}
            if not counts:
                return
            t = self.topics

            def records(topic: str) -> DataFrame | None:
                return batch.where(F.col("topic") == topic) if counts.get(topic) else None

            validated = records(t.topic_validated)
            r = self.hold(readings(validated)) if validated is not None else None
            writes = table_writes(raw=records(t.topic_raw), readings=r,
                                  dead_letters=records(t.topic_deadletter))
            self.write_all(writes)
        finally:
            if r is not None:
                self.release(r)
            self.release(batch)
        log.info("persist batch %d: %s in %.0f ms (%s)", batch_id,
                 ", ".join(f"{n} {topic}" for topic, n in sorted(counts.items())),
                 (time.monotonic() - started) * 1000,
                 ", ".join(f"{t} {ms}" for t, ms in self.timings.items()))


def start_persist_query(spark: SparkSession, settings: Settings, *,
                        name: str = PERSIST_QUERY) -> StreamingQuery:
    t = settings.kafka
    records = kafka_source(spark, settings,
                           [t.topic_raw, t.topic_validated, t.topic_deadletter],
                           max_offsets=settings.spark.persist_max_offsets_per_trigger)
    return (
        records.writeStream.queryName(name)
        .foreachBatch(PersistSink(settings))
        .option("checkpointLocation", str(persist_checkpoint_dir(settings)))
        .trigger(processingTime=f"{settings.spark.persist_trigger_seconds} seconds")
        .start()
    )

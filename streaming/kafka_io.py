"""Kafka for the stream jobs: the Spark source, and the driver's transactional publisher.

Spark's foreachBatch is at-least-once: after a crash the last micro-batch runs again.
Cassandra writes are idempotent upserts, but Kafka appends. So each micro-batch is
published in one Kafka transaction that also commits a consumer-group offset of
``batch_id + 1`` on the sink-progress topic; a replayed batch finds its id already
committed and publishes nothing. Readers use ``isolation_level="read_committed"``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition
from pyspark.sql import DataFrame, SparkSession

from backend.settings import KafkaSettings, Settings


def kafka_source(spark: SparkSession, settings: Settings, topics: list[str], *,
                 max_offsets: int) -> DataFrame:
    """A streaming read of ``topics`` from the earliest retained offset, committed
    records only (the stream job publishes in transactions: an aborted one is never
    read), at most ``max_offsets`` records per micro-batch."""
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("kafka.isolation.level", "read_committed")
        .option("maxOffsetsPerTrigger", max_offsets)
        # A deleted or compacted offset range must stop the job, not be skipped.
        .option("failOnDataLoss", "true")
        .load()
    )


class TransactionalPublisher:
    def __init__(self, cfg: KafkaSettings, sink_name: str) -> None:
        self.cfg = cfg
        # Named after the progress topic too, so two deployments (or test runs) sharing a
        # broker never read each other's progress or fence each other's producer.
        self.group = f"icu-sink-{sink_name}-{cfg.topic_sink_progress}"
        self._progress_tp = TopicPartition(cfg.topic_sink_progress, 0)
        self._admin = KafkaAdminClient(bootstrap_servers=cfg.bootstrap)
        with contextlib.suppress(TopicAlreadyExistsError):
            self._admin.create_topics([NewTopic(
                cfg.topic_sink_progress, 1, cfg.replication_factor,
                topic_configs={"min.insync.replicas": str(cfg.min_insync_replicas)})])
        self._producer = KafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            transactional_id=self.group,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
        )
        # Fences any zombie producer of a previous run with the same transactional id.
        self._producer.init_transactions()

    def last_published_batch(self) -> int:
        """The id of the last micro-batch whose output is on Kafka, or -1."""
        for attempt in range(30):
            try:
                offsets = self._admin.list_group_offsets({self.group: [self._progress_tp]})
                break
            except KafkaError as exc:
                # The group coordinator is briefly unavailable on a fresh broker and
                # while it moves; anything else, or a long outage, fails the batch.
                if not getattr(exc, "retriable", False) or attempt == 29:
                    raise
                time.sleep(min(0.1 * 2**attempt, 2.0))
        committed = offsets.get(self.group, {}).get(self._progress_tp)
        return -1 if committed is None or committed.offset < 0 else committed.offset - 1

    def publish_batch(
        self, batch_id: int, messages: Iterable[tuple[str, bytes | None, bytes]], *,
        check: bool = True,
    ) -> bool:
        """Publish ``(topic, key, value)`` messages atomically; ``False`` if already done.
        ``check=False``: the caller has just asked ``last_published_batch`` itself."""
        if check and batch_id <= self.last_published_batch():
            return False
        p = self._producer
        p.begin_transaction()
        try:
            for topic, key, value in messages:
                p.send(topic, key=key, value=value)
            p.send_offsets_to_transaction(
                {self._progress_tp: OffsetAndMetadata(batch_id + 1, "", -1)}, self.group
            )
            p.commit_transaction()
        except Exception:
            p.abort_transaction()
            raise
        return True

    def close(self) -> None:
        self._producer.close(timeout=10)
        self._admin.close()

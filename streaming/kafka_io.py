"""Kafka for the stream jobs: the Spark source, and the driver's transactional publisher.

Spark's foreachBatch is at-least-once: after a crash the last micro-batch runs again.
Cassandra writes are idempotent upserts, but Kafka appends. So each micro-batch is
published in one Kafka transaction that also commits a consumer-group offset of
``batch_id + 1`` on the sink-progress topic; a replayed batch finds its id already
committed and publishes nothing. Readers use ``isolation_level="read_committed"``.

Batch ids count from 0 in every checkpoint, so the progress belongs to one checkpoint:
its group (and transactional id) carries the id Spark gave the checkpoint's query. A new
checkpoint (a changed state layout, a deleted directory) starts its own progress instead
of taking its first batches for replays of the old one's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition
from pyspark.sql import DataFrame, SparkSession

from backend.clients import kafka_config, spark_kafka_options
from backend.settings import KafkaSettings, Settings


def kafka_source(spark: SparkSession, settings: Settings, topics: list[str], *,
                 max_offsets: int) -> DataFrame:
    """A streaming read of ``topics`` from the earliest retained offset, committed
    records only (the stream job publishes in transactions: an aborted one is never
    read), at most ``max_offsets`` records per micro-batch."""
    return (
        spark.readStream.format("kafka")
        .options(**spark_kafka_options(settings.kafka))
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", "earliest")
        .option("kafka.isolation.level", "read_committed")
        .option("maxOffsetsPerTrigger", max_offsets)
        # A deleted or compacted offset range must stop the job, not be skipped.
        .option("failOnDataLoss", "true")
        .load()
    )


def checkpoint_query_id(checkpoint: Path) -> str:
    """The id of the query a Spark checkpoint belongs to: written to its ``metadata``
    file when the query first starts, the same on every restart from it."""
    return json.loads((checkpoint / "metadata").read_text())["id"]


log = logging.getLogger(__name__)

# A transaction that has not committed after this long is stuck, not slow (a healthy one
# takes well under a second; a partition leader or coordinator moves within ~10-20 s).
# kafka-python's commit has no timeout of its own, and its sender was seen waiting for
# ever on a transaction coordinator whose broker had been killed (the replicated set's
# fault test): the publisher then drops that producer, and a new one with the same
# transactional id fences it, aborts its open transaction and sends the batch again.
STALL_SECONDS = 60.0
STALL_ATTEMPTS = 3


class TransactionStalled(RuntimeError):
    """A Kafka transaction did not finish within ``STALL_SECONDS``."""


def _bounded(fn: Callable[[], object], seconds: float, what: str) -> None:
    """``fn()`` in a helper thread, re-raising its error; ``TransactionStalled`` if it has
    not returned after ``seconds`` (the thread ends with its producer's close)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            fn()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, name=f"kafka-{what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TransactionStalled(f"Kafka {what} did not finish in {seconds:.0f} s")
    if outcome[0] is not None:
        raise outcome[0]


class TransactionalPublisher:
    """``checkpoint``: the query's checkpoint directory; the publisher connects at its
    first use, when the started query has written the checkpoint's id."""

    def __init__(self, cfg: KafkaSettings, sink_name: str,
                 checkpoint: Path | None = None) -> None:
        self.cfg = cfg
        self.sink_name = sink_name
        self.checkpoint = checkpoint
        self._progress_tp = TopicPartition(cfg.topic_sink_progress, 0)
        self._admin: KafkaAdminClient | None = None
        self._producer: KafkaProducer | None = None
        self.group = ""

    def _connect(self) -> None:
        if self._producer is not None:
            return
        cfg = self.cfg
        # Named after the progress topic too, so two deployments (or test runs) sharing a
        # broker never read each other's progress or fence each other's producer.
        group = f"icu-sink-{self.sink_name}-{cfg.topic_sink_progress}"
        if self.checkpoint is not None:
            group += f"-{checkpoint_query_id(self.checkpoint)}"
        self.group = group
        if self._admin is None:
            self._admin = self._new_admin()
            with contextlib.suppress(TopicAlreadyExistsError):
                self._admin.create_topics([NewTopic(
                    cfg.topic_sink_progress, 1, cfg.replication_factor,
                    topic_configs={"min.insync.replicas": str(cfg.min_insync_replicas)})])
        self._producer = self._new_producer()
        # Fences any zombie producer of a previous run with the same transactional id.
        self._producer.init_transactions()

    def _new_admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**kafka_config(self.cfg))

    def _new_producer(self) -> KafkaProducer:
        cfg = self.cfg
        return KafkaProducer(**kafka_config(
            cfg,
            transactional_id=self.group,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
        ))

    def last_published_batch(self) -> int:
        """The id of the last micro-batch whose output is on Kafka, or -1."""
        self._connect()
        for attempt in range(30):
            try:
                offsets = self._admin.list_group_offsets({self.group: [self._progress_tp]})
                break
            except KafkaError as exc:
                # The group coordinator is briefly unavailable on a fresh broker and
                # while it moves; anything else, or a long outage, fails the batch.
                if not getattr(exc, "retriable", False) or attempt == 29:
                    raise
                # kafka-python's admin client keeps the coordinator it found first and
                # never looks again: after that broker failed it is asked for ever, and
                # answers NOT_COORDINATOR once back, or is not reachable at all while
                # down (NodeNotReady, connection errors) even though another broker
                # took the group over seconds later. A new client looks it up anew.
                with contextlib.suppress(Exception):
                    self._admin.close()
                self._admin = self._new_admin()
                time.sleep(min(0.1 * 2**attempt, 2.0))
        committed = offsets.get(self.group, {}).get(self._progress_tp)
        return -1 if committed is None or committed.offset < 0 else committed.offset - 1

    def publish_batch(
        self, batch_id: int, messages: Iterable[tuple[str, bytes | None, bytes]], *,
        check: bool = True,
    ) -> bool:
        """Publish ``(topic, key, value)`` messages atomically; ``False`` if already done.
        ``check=False``: the caller has just asked ``last_published_batch`` itself."""
        messages = list(messages)  # sent again if a stalled transaction is retried
        for attempt in range(1, STALL_ATTEMPTS + 1):
            # after a stall the transaction may have committed all the same
            if (check or attempt > 1) and batch_id <= self.last_published_batch():
                return False
            try:
                self._connect()
                self._transaction(batch_id, messages)
                return True
            except (TransactionStalled, KafkaTimeoutError) as exc:
                if attempt == STALL_ATTEMPTS:
                    raise
                log.warning("%s batch %d: %s; a new producer takes over (attempt %d of %d)",
                            self.sink_name, batch_id, exc, attempt + 1, STALL_ATTEMPTS)
                self._drop_producer()
        return True  # not reached: the last attempt returns or raises

    def _transaction(self, batch_id: int, messages: list[tuple[str, bytes | None, bytes]]) -> None:
        p = self._producer
        assert p is not None
        p.begin_transaction()
        try:
            for topic, key, value in messages:
                p.send(topic, key=key, value=value)

            def commit() -> None:
                p.send_offsets_to_transaction(
                    {self._progress_tp: OffsetAndMetadata(batch_id + 1, "", -1)}, self.group)
                p.commit_transaction()

            _bounded(commit, STALL_SECONDS, "commit")
        except TransactionStalled:
            raise
        except Exception:
            _bounded(p.abort_transaction, STALL_SECONDS, "abort")
            raise

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
        if self._admin is not None:
            self._admin.close()

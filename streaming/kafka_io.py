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
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as CTopicPartition
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import TopicPartition
from pyspark.sql import DataFrame, SparkSession

from backend.clients import kafka_config, librdkafka_config, spark_kafka_options
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
# librdkafka's own messages (a broker down, a coordinator moving) go to the job's log,
# not to stderr unformatted.
_librdkafka_log = logging.getLogger(f"{__name__}.librdkafka")

# A transaction that has not committed after this long is stuck, not slow (a healthy one
# takes well under a second; a partition leader or coordinator moves within ~10-20 s).
# The publisher then drops that producer, and a new one with the same transactional id
# fences it, aborts its open transaction and sends the batch again.
STALL_SECONDS = 60.0
# Attempts at one batch's transaction before the batch fails. A failed foreachBatch is
# not run again by Spark: it stops the query, and with it the stream job, so every
# failure Kafka's side can get over (a timeout, an abortable error, a fenced or otherwise
# fatal producer) is tried again here, with a new producer where the old one is unusable.
TRANSACTION_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 2.0
# librdkafka bounds each call of a transaction by STALL_SECONDS, but a call can wait for a
# coordinator request that is never sent again (confluentinc/librdkafka#5511: a group
# coordinator on a broker librdkafka has retired). Past this deadline the producer is
# left to its blocked call, on a thread of its own, and a new producer takes over.
TRANSACTION_DEADLINE_SECONDS = 2 * STALL_SECONDS + 30.0
# More than the largest batch (SparkSettings.max_offsets_per_trigger records, each with
# its output, plus alert events), so a batch is queued without waiting for deliveries.
QUEUE_MESSAGES = 1_000_000


class TransactionFailed(RuntimeError):
    """A Kafka transaction did not commit (it timed out after ``STALL_SECONDS``, or
    Kafka failed it); it was aborted, or its producer dropped to be fenced by the next."""


class TransactionalPublisher:
    """``checkpoint``: the query's checkpoint directory; the publisher connects at its
    first use, when the started query has written the checkpoint's id.

    The producer is librdkafka's (confluent-kafka): one batch of 50,000 readings costs it
    ~0.1 s of CPU against 1.4-1.6 s for kafka-python's, in the driver thread that the next
    micro-batch waits for (``bench/bench_txn_publisher.py``). The progress is read with
    kafka-python's admin client, as everywhere else in the platform."""

    def __init__(self, cfg: KafkaSettings, sink_name: str,
                 checkpoint: Path | None = None) -> None:
        self.cfg = cfg
        self.sink_name = sink_name
        self.checkpoint = checkpoint
        self._progress_tp = TopicPartition(cfg.topic_sink_progress, 0)
        self._admin: KafkaAdminClient | None = None
        self._producer: Producer | None = None
        self._group_member: Consumer | None = None
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
        if self._group_member is None:
            # Never subscribes: it only names the group the progress offset is committed
            # to in each transaction (librdkafka takes the group as a consumer's metadata).
            self._group_member = Consumer(librdkafka_config(
                cfg, **{"group.id": group, "enable.auto.commit": False,
                        "logger": _librdkafka_log}))
        producer = self._new_producer()
        # Fences any zombie producer of a previous run with the same transactional id,
        # and aborts its open transaction.
        try:
            producer.init_transactions(STALL_SECONDS)
        except KafkaException as exc:
            _discard(producer)
            raise TransactionFailed(f"Kafka init_transactions: {exc}") from exc
        self._producer = producer

    def _new_admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**kafka_config(self.cfg))

    def _new_producer(self) -> Producer:
        return Producer(librdkafka_config(self.cfg, **{
            "transactional.id": self.group,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "transaction.timeout.ms": int(STALL_SECONDS * 1000),
            "queue.buffering.max.messages": QUEUE_MESSAGES,
            "logger": _librdkafka_log,
        }))

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
        messages = list(messages)  # sent again if a failed transaction is retried
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            # a transaction that timed out may have committed all the same
            if (check or attempt > 1) and batch_id <= self.last_published_batch():
                return False
            try:
                self._connect()
                self._within_deadline(batch_id, messages)
                return True
            except TransactionFailed as exc:
                if attempt == TRANSACTION_ATTEMPTS:
                    raise
                # the text, not the error: a kept log record would keep the failed
                # producer alive through the error's traceback
                log.warning("%s batch %d: %s; trying again (attempt %d of %d)",
                            self.sink_name, batch_id, str(exc), attempt + 1,
                            TRANSACTION_ATTEMPTS)
                time.sleep(RETRY_PAUSE_SECONDS * attempt)
        return True  # not reached: the last attempt returns or raises

    def _within_deadline(self, batch_id: int,
                         messages: list[tuple[str, bytes | None, bytes]]) -> None:
        """``_transaction`` on a thread of its own, waited for up to
        ``TRANSACTION_DEADLINE_SECONDS``; its error is raised here."""
        producer = self._producer
        assert producer is not None
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                self._transaction(producer, batch_id, messages)
                outcome.append(None)
            except BaseException as exc:  # raised again on the batch's thread
                outcome.append(exc)

        worker = threading.Thread(target=run, name="icu-kafka-transaction", daemon=True)
        worker.start()
        worker.join(TRANSACTION_DEADLINE_SECONDS)
        if worker.is_alive():
            # not discarded: its blocked call still holds it, and the next producer of
            # its transactional id fences it
            if self._producer is producer:
                self._producer = None
            raise TransactionFailed(
                f"Kafka transaction did not return within {TRANSACTION_DEADLINE_SECONDS:.0f} s")
        error = outcome.pop()
        if error is not None:
            try:
                raise error
            finally:  # no cycle through this frame: the failed producer goes with the error
                del error

    def _transaction(self, p: Producer, batch_id: int,
                     messages: list[tuple[str, bytes | None, bytes]]) -> None:
        assert self._group_member is not None
        try:
            p.begin_transaction()
            for topic, key, value in messages:
                while True:
                    try:
                        p.produce(topic, value, key)
                        break
                    except BufferError:  # the queue is full: let deliveries free it
                        p.poll(0.1)
            p.send_offsets_to_transaction(
                [CTopicPartition(self.cfg.topic_sink_progress, 0, batch_id + 1)],
                self._group_member.consumer_group_metadata(), STALL_SECONDS)
            p.commit_transaction(STALL_SECONDS)
        except KafkaException as exc:
            error = exc.args[0]
            aborted = False
            if error.txn_requires_abort():  # the producer stays usable once aborted
                with contextlib.suppress(KafkaException):
                    p.abort_transaction(STALL_SECONDS)
                    aborted = True
            if not aborted:
                # timed out (a coordinator or leader moving), fatal (fenced, ...), or the
                # abort failed: the next producer fences this one and aborts its
                # transaction
                self._drop_producer(p)
            raise TransactionFailed(f"Kafka transaction: {error}") from exc
        except Exception:  # ours, not Kafka's: the transaction must not stay open
            p.abort_transaction(STALL_SECONDS)
            raise

    def _drop_producer(self, producer: Producer) -> None:
        if self._producer is producer:  # not a newer one, after a deadline passed
            self._producer = None
        _discard(producer)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
        if self._group_member is not None:
            self._group_member.close()
        if self._admin is not None:
            self._admin.close()


def _discard(producer: Producer) -> None:
    """Let a producer go without waiting for what it holds: its transaction is fenced by
    the next producer of its transactional id."""
    with contextlib.suppress(Exception):
        producer.purge()
    _REAPER.take(producer)


class _Reaper:
    """Holds dropped producers for a while, then lets them go on a thread of its own.

    Freeing a librdkafka handle runs ``rd_kafka_destroy``, which waits for the handle's
    broker threads; with a broker just lost that can take long, and a coordinator request
    left waiting on a broker that librdkafka has retired may never finish
    (confluentinc/librdkafka#5511). On the micro-batch's thread that would stop the
    alarm query with it; here it only keeps this thread."""

    def __init__(self, hold_seconds: float = 30.0) -> None:
        # long enough for the failed transaction's traceback, which still holds the
        # producer, to be gone from the batch's thread
        self.hold_seconds = hold_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._never = threading.Event()  # waited on for the hold, never set

    def take(self, producer: object) -> None:
        self._queue.put((time.monotonic() + self.hold_seconds, producer))
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="icu-producer-reaper",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            due, producer = self._queue.get()
            self._never.wait(max(0.0, due - time.monotonic()))
            del producer  # the last reference: librdkafka's destroy runs on this thread


_REAPER = _Reaper()

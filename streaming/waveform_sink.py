"""Waveform chunks from Kafka (``waveforms.raw``) into Cassandra.

Not a Spark job: a chunk needs no state and no join, only validation and an upsert, so a
plain consumer group does it with far less overhead. Offsets are committed after the
chunks of a poll are stored (at-least-once); storing a chunk twice overwrites it with
itself, so a restart never duplicates anything. A chunk that fails validation goes to
``vitals.deadletter`` with its reason and original bytes, and is not stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaProducer

from backend.clients import kafka_config
from backend.messages import DeadLetter
from backend.settings import Settings
from backend.storage.cassandra import connect
from backend.storage.waveforms import WaveformStore
from backend.waveforms import WaveformError, parse_chunk
from streaming.group_consumer import group_consumer

log = logging.getLogger(__name__)
GROUP = "icu-waveform-sink"


class WaveformSink:
    def __init__(self, settings: Settings, group: str = GROUP) -> None:
        self.settings = settings
        self.session = connect(settings.cassandra, wait_seconds=60)
        self.store = WaveformStore(self.session)
        self.consumer = group_consumer(
            settings.kafka, settings.kafka.topic_waveforms, group_id=group,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=500)
        self.producer = KafkaProducer(**kafka_config(settings.kafka, acks="all",
                                                     enable_idempotence=True))
        self.stored = 0
        self.rejected = 0

    def poll_once(self, timeout_ms: int = 1000) -> int:
        """Store one poll's chunks, dead-letter the bad ones, commit; returns the count."""
        batches = self.consumer.poll(timeout_ms=timeout_ms)
        chunks, n = [], 0
        now = int(time.time() * 1000)
        for records in batches.values():
            for rec in records:
                n += 1
                try:
                    chunks.append(parse_chunk(rec.value))
                except WaveformError as exc:
                    self.rejected += 1
                    letter = DeadLetter.about(
                        rec.value, reason="invalid_waveform", detail=str(exc)[:500],
                        topic=rec.topic, partition=rec.partition, offset=rec.offset,
                        received_ts=rec.timestamp, rejected_ts=now, key=rec.key,
                        head_bytes=self.settings.spark.deadletter_head_bytes)
                    self.producer.send(self.settings.kafka.topic_deadletter, key=rec.key,
                                       value=letter.model_dump_json().encode())
        if chunks:
            self.store.write(chunks)
            self.stored += len(chunks)
        if n:
            self.producer.flush(30)
            self.consumer.commit()
        return n

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            n = self.poll_once()
            if n:
                log.info("waveforms: %d messages (%d stored, %d rejected in total)", n,
                         self.stored, self.rejected)

    def close(self) -> None:
        self.consumer.close()
        self.producer.close(timeout=5)
        self.session.cluster.shutdown()

"""Kafka in and out for a run: raw records in, every committed message out."""

from __future__ import annotations

import json
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from backend.settings import Settings


def publish(settings: Settings, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send ``(key, value)`` records to the raw vitals topic; how many were sent."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all",
                             linger_ms=5)
    n = 0
    for key, value in records:
        producer.send(settings.kafka.topic_raw, key=key, value=value)
        n += 1
    producer.flush(30)
    producer.close()
    return n


def consume_all(settings: Settings, topic: str, *, idle_seconds: float = 3.0) -> list[dict]:
    """Every committed message on ``topic`` from the beginning, as JSON."""
    consumer = KafkaConsumer(
        topic, bootstrap_servers=settings.kafka.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, isolation_level="read_committed",
        consumer_timeout_ms=int(idle_seconds * 1000), group_id=None,
    )
    out = [json.loads(m.value) for m in consumer]
    consumer.close()
    return out


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The broker's end offset of each partition of ``topic``: how many records each has
    taken in since it was created."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: end for tp, end in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()

"""Kafka in and out for a run: raw records in, every committed message out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

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


def read_topic(settings: Settings, topic: str, *, at_least: int | None = None,
               timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """The records of ``topic`` from its start (committed ones only, as the platform's
    readers see them): with ``at_least``, until that many arrived or ``timeout_s`` passed;
    without, everything up to the end the topic had when called (a snapshot).

    Assigns the partitions itself rather than subscribing, so nothing waits on a group's
    assignment: a subscribe with an idle timeout once read nothing in CI when the first
    fetch came after the timeout. A snapshot not reached in ``timeout_s`` is an error
    naming where each partition stopped, not a short list."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None,
                             enable_auto_commit=False, isolation_level="read_committed")
    out: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout_s
        tps = _partitions(consumer, topic, timeout_s)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = None if at_least is not None else consumer.end_offsets(tps)

        def done() -> bool:
            if ends is None:
                return len(out) >= at_least
            return all(consumer.position(tp) >= end for tp, end in ends.items())

        while not done():
            if time.monotonic() > deadline:
                if ends is None:
                    break  # the caller counts what came
                where = {tp.partition: f"{consumer.position(tp)}/{end}"
                         for tp, end in ends.items()}
                raise AssertionError(f"could not read {topic} to its end in "
                                     f"{timeout_s:.0f} s (position/end: {where})")
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
    finally:
        consumer.close()
    return out


def consume_all(settings: Settings, topic: str, *, timeout_s: float = 60.0) -> list[dict]:
    """Every committed message on ``topic`` up to its end when called, as JSON."""
    return [json.loads(r.value) for r in read_topic(settings, topic, timeout_s=timeout_s)]


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The broker's end offset of each partition of ``topic``: how many records each has
    taken in since it was created."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None)
    try:
        tps = _partitions(consumer, topic, 60.0)
        return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def _partitions(consumer: KafkaConsumer, topic: str, timeout_s: float) -> list[TopicPartition]:
    """``topic``'s partitions, once the consumer has its metadata (a fresh client may not
    yet); no metadata within ``timeout_s`` is an error, not an empty topic."""
    deadline = time.monotonic() + timeout_s
    partitions = consumer.partitions_for_topic(topic)
    while not partitions and time.monotonic() < deadline:
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        raise AssertionError(f"no metadata for topic {topic} after {timeout_s:.0f} s")
    return [TopicPartition(topic, p) for p in sorted(partitions)]

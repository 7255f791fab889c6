"""``streaming.group_consumer`` on real Kafka: a consumer started before its topic
exists waits for it, then gets its partitions and reads from the start; a topic that
never comes is a clear error, not an idle consumer."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from backend.settings import Settings
from harness.waiting import wait_until
from streaming.group_consumer import group_consumer

pytestmark = pytest.mark.integration


@pytest.fixture
def topicless(services: Settings, _created, tmp_path: Path) -> Settings:
    """Settings with topic names of their own that are not created yet."""
    return _created.isolate(services, tmp_path / "cp", create_topics=False)


def test_a_consumer_started_before_its_topic_reads_it_once_created(topicless: Settings) -> None:
    from ops.topics import ensure_topics

    topic = topicless.kafka.topic_alerts
    made: list = []
    failed: list[BaseException] = []

    def start() -> None:
        try:
            made.append(group_consumer(topicless.kafka, topic, wait_seconds=60,
                                       group_id=f"g-{topic}", auto_offset_reset="earliest",
                                       enable_auto_commit=False))
        except BaseException as exc:  # reported by the main thread
            failed.append(exc)

    waiter = threading.Thread(target=start, daemon=True)
    waiter.start()
    time.sleep(2)
    assert not made and not failed, "subscribed to a topic that does not exist yet"
    ensure_topics(topicless)
    producer = KafkaProducer(bootstrap_servers=topicless.kafka.bootstrap, acks="all")
    producer.send(topic, key=b"k", value=b"first").get(10)
    producer.close()
    waiter.join(60)
    assert not failed, failed
    consumer = made[0]
    got: list[bytes] = []
    try:
        wait_until(lambda: got.extend(r.value for rs in consumer.poll(500).values()
                                      for r in rs) or got,
                   timeout=30, what="the message published after the topic was created")
        assert got == [b"first"]
        assert {tp.topic for tp in consumer.assignment()} == {topic}
    finally:
        consumer.close()


def test_a_topic_that_never_comes_is_a_clear_error(topicless: Settings) -> None:
    with pytest.raises(TimeoutError, match="has no partitions"):
        group_consumer(topicless.kafka, topicless.kafka.topic_alerts, wait_seconds=1,
                       group_id="g-never")

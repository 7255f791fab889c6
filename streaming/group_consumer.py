"""A kafka-python group consumer that joins its group only once it knows its topic.

Why: kafka-python's leader assigns partitions from its own metadata cache. If the group
is joined before that cache holds the topic (a consumer started right after the topic
was created, or before it), the assignor finds "no partition metadata" and assigns
nothing; when the metadata lands during the join, the coordinator records it as the
snapshot the assignment was made from, so no rebalance follows and the consumer idles
until some later metadata change. Fetching the topic's partitions first closes that race.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import KafkaConsumer

from backend.clients import kafka_config
from backend.settings import KafkaSettings

log = logging.getLogger(__name__)


def group_consumer(cfg: KafkaSettings, topic: str, *, wait_seconds: float = 120,
                   **options: Any) -> KafkaConsumer:
    """A consumer subscribed to ``topic`` after its partitions are in the consumer's
    metadata; raises ``TimeoutError`` if they are not within ``wait_seconds``."""
    consumer = KafkaConsumer(**kafka_config(cfg, **options))
    deadline = time.monotonic() + wait_seconds
    pause = 0.2
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            consumer.close()
            raise TimeoutError(f"topic {topic} has no partitions after {wait_seconds:.0f} s: "
                               "were the topics created (icu services start does)?")
        log.warning("waiting for topic %s to have partitions", topic)
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
    consumer.subscribe([topic])
    return consumer

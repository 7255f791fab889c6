"""Alert lifecycle messages (``alerts.lifecycle``) between the web processes.

When somebody acknowledges an alarm, the ``alerts`` row in Cassandra changes first
(``backend.alerting.lifecycle.Lifecycle.acknowledge``); then the web process that
handled the click publishes an ``AlertLifecycle`` message, and every web process's
``LiveFollower`` applies it to its ``WardState`` (``lifecycle_handler``), so every ward
screen shows who acknowledged within a second. A process that misses the message (down
at the time) reads the status from Cassandra when it fills its state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from backend.messages import AlertLifecycle
from backend.settings import Settings
from webapp.live.state import WardState

log = logging.getLogger(__name__)


def lifecycle_handler(state: WardState) -> Callable[[bytes], bool]:
    """A ``LiveFollower`` handler (``extra_handlers``) for the lifecycle topic."""

    def handle(value: bytes) -> bool:
        m = AlertLifecycle.model_validate_json(value)
        return state.apply_lifecycle(m.alert_id, m.status, m.by, m.at)

    return handle


class LifecyclePublisher:
    """Publishes ``AlertLifecycle`` messages; one Kafka producer per process, created on
    first use (``producer_factory`` replaces it in tests)."""

    def __init__(self, settings: Settings, *,
                 producer_factory: Callable[[], Any] | None = None,
                 timeout_seconds: float = 5.0) -> None:
        self.settings = settings
        self.topic = settings.kafka.topic_lifecycle
        self.timeout = timeout_seconds
        self._factory = producer_factory or self._make_producer
        self._producer: Any = None
        self._lock = threading.Lock()

    def _make_producer(self) -> Any:
        from kafka import KafkaProducer

        from backend.clients import kafka_config

        return KafkaProducer(**kafka_config(
            self.settings.kafka, client_id="icu-web-lifecycle",
            acks="all", enable_idempotence=True, linger_ms=0, retries=5,
            max_block_ms=int(self.timeout * 1000),
            request_timeout_ms=int(self.timeout * 1000),
        ))

    def publish(self, event: AlertLifecycle) -> None:
        """Send and wait for the broker's acknowledgement (raises on failure)."""
        with self._lock:
            if self._producer is None:
                self._producer = self._factory()
            producer = self._producer
        try:
            producer.send(self.topic, key=event.alert_id.encode(),
                          value=event.model_dump_json().encode()).get(timeout=self.timeout)
        except Exception:
            self.close()  # a fresh producer next time
            raise

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=2)
            except Exception as exc:
                log.debug("closing the lifecycle producer failed: %s", exc)

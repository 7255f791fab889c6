"""``icu alerts manager``: the alert manager's Kafka loop (the logic is
``backend.alerting.manager``).

Consumes ``alerts.events`` in consumer group ``alert_manager.consumer_group`` with
auto-commit off: a batch's offsets are committed only after every event of it was taken
on durably in Cassandra, so a crash re-reads (idempotently) rather than loses. Publishes
the manager's lifecycle moves on ``alerts.lifecycle`` (key = alert id). A message that is
not an ``AlertEvent`` is logged with its position and skipped (it stays in Kafka).
"""

from __future__ import annotations

import logging
import threading
import time

from pydantic import ValidationError

from backend.messages import AlertEvent, AlertLifecycle
from backend.settings import Settings

log = logging.getLogger(__name__)


class LifecycleProducer:
    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaProducer

        from backend.clients import kafka_config

        self.topic = settings.kafka.topic_lifecycle
        # Idempotent: a send retried after a broker failover is stored once.
        self.producer = KafkaProducer(**kafka_config(settings.kafka, acks="all",
                                                     enable_idempotence=True, linger_ms=0,
                                                     client_id="icu-alert-manager"))

    def __call__(self, event: AlertLifecycle) -> None:
        self.producer.send(self.topic, key=event.alert_id.encode(),
                           value=event.model_dump_json().encode()).get(timeout=10)

    def close(self) -> None:
        self.producer.close(timeout=5)


def run(settings: Settings, stop: threading.Event, *, manager=None) -> None:
    """Follow the alerts topic and tick until ``stop`` is set."""
    from backend.alerting.manager import AlertManager
    from backend.storage.cassandra import connect
    from streaming.group_consumer import group_consumer

    session = None
    producer = None
    if manager is None:
        session = connect(settings.cassandra, wait_seconds=60)
        producer = LifecycleProducer(settings)
        manager = AlertManager(session, settings, producer)
    consumer = group_consumer(
        settings.kafka, settings.kafka.topic_alerts, group_id=settings.alert_manager.consumer_group,
        enable_auto_commit=False, auto_offset_reset="earliest", client_id="icu-alert-manager")
    tick = settings.alert_manager.tick_seconds
    log.info("alert manager running (group %s, topic %s)", settings.alert_manager.consumer_group,
             settings.kafka.topic_alerts)
    next_tick = 0.0
    try:
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=int(min(tick, 0.5) * 1000), max_records=500)
            for records in batches.values():
                for r in records:
                    try:
                        event = AlertEvent.model_validate_json(r.value)
                    except ValidationError as exc:
                        log.error("skipping a bad message at %s[%d]@%d: %s", r.topic,
                                  r.partition, r.offset, exc.errors()[:1])
                        continue
                    manager.on_alert_event(event)
            if batches:
                consumer.commit()  # only now: everything above is in Cassandra
            if time.monotonic() >= next_tick:
                manager.tick()
                next_tick = time.monotonic() + tick
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
        if session is not None:
            session.cluster.shutdown()
        log.info("alert manager stopped")

"""What the alarm query does with each micro-batch in the driver (foreachBatch).

The Python workers have already built every output message (``streaming.alarm_evaluator``);
the driver collects them (Arrow), stores the alert changes in Cassandra, then publishes
every message in one Kafka transaction that also records the batch id
(``TransactionalPublisher``). Order matters: an alert is readable in Cassandra before it
is announced, and a replayed batch publishes nothing twice. A failure raises, so Spark
runs the batch again rather than skipping it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame

from backend.messages import AlertEvent
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from streaming.alarm_evaluator import ALERT, READING
from streaming.kafka_io import TransactionalPublisher

log = logging.getLogger(__name__)

# Alerts written at once. Each raise is a lightweight transaction plus index writes
# (~4 ms of round trips, little CPU): a storm of 100 beds takes ~30 ms, not 0.4 s.
ALERT_WRITERS = 16


class AlertWriter:
    """Stores a batch's alert changes: different alerts concurrently, the changes of one
    alert in their order (a raise before its clear)."""

    def __init__(self, store: AlertStore, workers: int = ALERT_WRITERS) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="icu-alerts")

    def _apply_one(self, events: list[AlertEvent]) -> None:
        for e in events:
            if e.event == "raised":
                self.store.raise_alert(e)
            else:
                self.store.clear_alert(e)

    def apply(self, events: Sequence[AlertEvent]) -> None:
        by_alert: dict[str, list[AlertEvent]] = defaultdict(list)
        for e in events:
            by_alert[e.alert_id].append(e)
        for future in [self._pool.submit(self._apply_one, group)
                       for group in by_alert.values()]:
            future.result()  # the first failure fails the batch

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class AlarmSink:
    def __init__(self, settings: Settings, name: str = "vitals",
                 checkpoint: Path | None = None) -> None:
        self.settings = settings
        self.session = connect(settings.cassandra, wait_seconds=60)
        self.alerts = AlertWriter(AlertStore(self.session))
        # the checkpoint's query id names the batch progress (streaming.kafka_io)
        self.publisher = TransactionalPublisher(settings.kafka, name, checkpoint)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        rows = batch.toPandas()
        collected = time.monotonic()
        if rows.empty:
            return
        self.write(rows, batch_id, collect_ms=(collected - started) * 1000)

    def write(self, rows: pd.DataFrame, batch_id: int, *, collect_ms: float = 0.0) -> None:
        started = time.monotonic()
        if batch_id <= self.publisher.last_published_batch():
            log.info("batch %d: already published (replay), %d messages skipped", batch_id,
                     len(rows))
            return
        kind = rows["kind"]
        alerts = [AlertEvent.model_validate_json(v) for v in rows.loc[kind == ALERT, "value"]]
        checked = time.monotonic()
        if alerts:
            self.alerts.apply(alerts)
        stored = time.monotonic()
        self.publisher.publish_batch(
            batch_id, zip(rows["topic"].tolist(), rows["key"].tolist(),
                          rows["value"].tolist(), strict=True), check=False)
        done = time.monotonic()
        # the parts' times: where a slow batch (e.g. through a broker's loss) waited
        log.info(
            "batch %d: %d readings, %d rejected, %d alerts in %.0f ms (collect %.0f ms, "
            "progress %.0f ms, alerts %.0f ms, publish %.0f ms)",
            batch_id, int((kind == READING).sum()),
            int(len(rows) - (kind == READING).sum() - len(alerts)), len(alerts),
            (done - started) * 1000 + collect_ms, collect_ms, (checked - started) * 1000,
            (stored - checked) * 1000, (done - stored) * 1000,
        )

    def close(self) -> None:
        self.alerts.close()
        self.publisher.close()
        self.session.cluster.shutdown()

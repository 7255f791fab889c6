"""What the stream job does with each micro-batch of evaluated records (foreachBatch).

Order matters: Cassandra first (idempotent upserts, all tables' statements in one concurrent
run; an alert is readable there before it is announced), then one Kafka transaction for
the dead letters, validated readings and alert events. A failure raises, so Spark retries
the batch rather than skipping it.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import pandas as pd
from pyspark.sql import DataFrame

from backend.messages import AlertEvent, DeadLetter, ValidatedReading
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.storage.minutes import MinuteStore
from backend.storage.raw import DeadLetterRow, RawMessage, RawStore
from backend.storage.readings import ReadingStore, run_concurrently
from streaming.kafka_io import TransactionalPublisher

log = logging.getLogger(__name__)


class VitalsSink:
    def __init__(self, settings: Settings, name: str = "vitals") -> None:
        self.settings = settings
        self.session = connect(settings.cassandra, wait_seconds=60)
        self.readings = ReadingStore(self.session)
        self.minutes = MinuteStore(self.session)  # per-minute extremes for long timelines
        self.alerts = AlertStore(self.session)
        self.raw = RawStore(self.session)
        self.publisher = TransactionalPublisher(settings.kafka, name)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = batch.toPandas()
        if rows.empty:
            return
        self.write(rows, batch_id)

    def write(self, rows: pd.DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        topics = self.settings.kafka
        kind = rows["kind"]

        received = rows[kind.isin(["reading", "reject"])]
        raw = [
            RawMessage(r.topic, int(r.partition), int(r.offset), r.raw_key, r.raw_value,
                       int(r.kafka_ts))
            for r in received.itertuples(index=False)
        ]
        is_reading = kind == "reading"
        payloads = rows.loc[is_reading, "payload"].tolist()
        readings = [ValidatedReading.model_validate_json(p) for p in payloads]
        rejected = rows[kind.isin(["reject", "field_reject"])]
        dead_rows, dead_msgs = self._dead_letters(rejected, now_ms)
        alerts = [AlertEvent.model_validate_json(p) for p in rows.loc[kind == "alert", "payload"]]

        run_concurrently(self.session, [
            *self.raw.raw_statements(raw),
            *self.readings.history_statements(readings),
            *self.readings.latest_statements(readings),
            *self.minutes.statements(readings),  # parts keyed by the batch's minutes
            *self.raw.deadletter_statements(dead_rows),
        ])
        for a in alerts:  # lightweight transactions, one at a time (see AlertStore)
            if a.event == "raised":
                self.alerts.raise_alert(a)
            else:
                self.alerts.clear_alert(a)

        messages = [
            *((topics.topic_deadletter, key, letter) for key, letter in dead_msgs),
            # The workers' JSON is ValidatedReading.model_dump_json: published as it is.
            *((topics.topic_validated, r.patient_id.encode(), payload.encode())
              for r, payload in zip(readings, payloads, strict=True)),
            *((topics.topic_alerts, a.patient_id.encode(), a.model_dump_json().encode())
              for a in alerts),
        ]
        published = self.publisher.publish_batch(batch_id, messages)
        log.info(
            "batch %d: %d readings, %d rejected, %d alerts%s in %.0f ms",
            batch_id, len(readings), len(rejected), len(alerts),
            "" if published else " (already published: replay)",
            (time.monotonic() - started) * 1000,
        )

    @staticmethod
    def _dead_letters(
        rejected: pd.DataFrame, now_ms: int
    ) -> tuple[list[DeadLetterRow], list[tuple[bytes | None, bytes]]]:
        """The stored dead-letter rows and the ``(key, DeadLetter JSON)`` Kafka messages."""
        dead_rows, dead_msgs = [], []
        for r in rejected.itertuples(index=False):
            info = json.loads(r.payload)
            dead_rows.append(DeadLetterRow(
                r.topic, int(r.partition), int(r.offset), info["field"], info["reason"],
                info["detail"], r.patient_id, int(r.kafka_ts), now_ms,
            ))
            original = r.raw_value if r.raw_value is not None else b""
            letter = DeadLetter(
                reason=info["reason"],
                detail=(f"{info['field']}: " if info["field"] else "") + info["detail"],
                original_b64=base64.b64encode(original).decode("ascii"),
                source_topic=r.topic, source_partition=int(r.partition),
                source_offset=int(r.offset), received_ts=int(r.kafka_ts), rejected_ts=now_ms,
            )
            dead_msgs.append((r.raw_key, letter.model_dump_json().encode()))
        return dead_rows, dead_msgs

    def close(self) -> None:
        self.publisher.close()
        self.session.cluster.shutdown()

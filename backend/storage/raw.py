"""Messages exactly as received, and the dead-letter record of what was rejected."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from backend.storage.readings import Statement, run_concurrently
from backend.storage.timestamps import day_of

OFFSET_BUCKET = 100_000
_BATCH_ROWS = 20  # raw payloads are ~300 B; stays under the 5 KiB batch warning


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    kafka_ts: int


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    topic: str
    partition: int
    offset: int
    field: str  # "" for a whole-message rejection, else the rejected field
    reason: str
    detail: str
    patient_id: str | None
    received_ts: int
    rejected_ts: int


class RawStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._raw = session.prepare(
            "INSERT INTO raw_messages (topic, kafka_partition, offset_bucket, kafka_offset,"
            " msg_key, payload, kafka_ts) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self._dead = session.prepare(
            "INSERT INTO deadletters_by_day (day, received_ts, topic, kafka_partition,"
            " kafka_offset, field, reason, detail, patient_id, rejected_ts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._get_raw = session.prepare(
            "SELECT * FROM raw_messages WHERE topic = ? AND kafka_partition = ?"
            " AND offset_bucket = ? AND kafka_offset = ?"
        )
        self._dead_day = session.prepare("SELECT * FROM deadletters_by_day WHERE day = ?")

    def write_raw(self, messages: Sequence[RawMessage]) -> None:
        run_concurrently(self.session, self.raw_statements(messages))

    def raw_statements(self, messages: Sequence[RawMessage]) -> list[Statement]:
        """Unlogged per-partition batches storing ``messages`` exactly as received."""
        groups: dict[tuple[str, int, int], list[RawMessage]] = defaultdict(list)
        for m in messages:
            groups[(m.topic, m.partition, m.offset // OFFSET_BUCKET)].append(m)
        statements: list[Statement] = []
        for (topic, partition, bucket), rows in groups.items():
            for i in range(0, len(rows), _BATCH_ROWS):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                for m in rows[i : i + _BATCH_ROWS]:
                    batch.add(self._raw, (topic, partition, bucket, m.offset, m.key, m.value,
                                          m.kafka_ts))
                statements.append((batch, None))
        return statements

    def write_deadletters(self, rows: Sequence[DeadLetterRow]) -> None:
        run_concurrently(self.session, self.deadletter_statements(rows))

    def deadletter_statements(self, rows: Sequence[DeadLetterRow]) -> list[Statement]:
        return [
            (self._dead, (day_of(r.received_ts), r.received_ts, r.topic, r.partition,
                          r.offset, r.field, r.reason, r.detail, r.patient_id, r.rejected_ts))
            for r in rows
        ]

    def get_raw(self, topic: str, partition: int, offset: int) -> dict | None:
        return self.session.execute(
            self._get_raw, (topic, partition, offset // OFFSET_BUCKET, offset)
        ).one()

    def deadletters_on(self, day_ms: int) -> list[dict]:
        return list(self.session.execute(self._dead_day, (day_of(day_ms),)))

"""Messages exactly as received (``raw_messages``).

The stream job's persist query writes this table and ``deadletters_by_day`` from the
JVM (``streaming/persist_job.py``), keyed as here: a message's offset bucket is
``offset // OFFSET_BUCKET``. ``RawStore`` writes the same rows from Python (tools and
tests that need the table filled without running the job)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from backend.storage.readings import Statement, run_concurrently
from backend.storage.statements import prepared

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


class RawStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._raw = prepared(
            session,
            "INSERT INTO raw_messages (topic, kafka_partition, offset_bucket, kafka_offset,"
            " msg_key, payload, kafka_ts) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )

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

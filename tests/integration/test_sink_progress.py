"""The stream sinks' batch progress on Kafka belongs to one checkpoint: a restart from the
same checkpoint skips what it already published, a new checkpoint (whose batch ids start
at 0 again) publishes from its first batch."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from backend.settings import Settings
from harness.topics import consume_all
from streaming.kafka_io import TransactionalPublisher

pytestmark = pytest.mark.integration


def _checkpoint(root: Path) -> Path:
    """A checkpoint directory as a started Spark query leaves it (its ``metadata``)."""
    root.mkdir(parents=True)
    (root / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}))
    return root


def _publish(settings: Settings, checkpoint: Path, batches: range) -> list[bool]:
    publisher = TransactionalPublisher(settings.kafka, "vitals", checkpoint)
    try:
        topic = settings.kafka.topic_validated
        return [publisher.publish_batch(b, [(topic, None, json.dumps({"b": b}).encode())])
                for b in batches]
    finally:
        publisher.close()


def test_progress_is_kept_per_checkpoint(isolated_settings: Settings, tmp_path: Path) -> None:
    first = _checkpoint(tmp_path / "first")
    assert _publish(isolated_settings, first, range(4)) == [True] * 4
    # a restart from the same checkpoint replays its last batches: nothing twice
    assert _publish(isolated_settings, first, range(2, 6)) == [False, False, True, True]
    # a new checkpoint counts from 0 again and must not be taken for a replay
    second = _checkpoint(tmp_path / "second")
    assert _publish(isolated_settings, second, range(3)) == [True] * 3
    published = [m["b"] for m in consume_all(isolated_settings,
                                             isolated_settings.kafka.topic_validated)]
    assert sorted(published) == [0, 0, 1, 1, 2, 2, 3, 4, 5]  # (over several partitions)

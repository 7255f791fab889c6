"""Settings of one run (a test, a test module, a benchmark): topics, a keyspace and Spark
checkpoints of its own on the shared servers, so runs never see each other's data, and
the record of what was made so the run can drop it at its end."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from backend.settings import Settings

# what ``isolate`` appends, so isolating already isolated settings replaces the suffix
_TOPIC_SUFFIX = re.compile(r"\.[a-z]+[0-9a-f]{12}$")
_KEYSPACE_SUFFIX = re.compile(r"_[a-z]+_[0-9a-f]{12}$")


class Scratch:
    """The topics and keyspaces a run made, dropped by ``drop``."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.keyspaces: list[str] = []

    def isolate(self, base: Settings, checkpoint_dir: Path, *, marker: str = "t",
                create_topics: bool = True, **updates: Any) -> Settings:
        """A copy of ``base`` with topics (created unless ``create_topics`` is false) and
        a keyspace (not created: the storage migrations do that) of its own, named
        ``<topic>.<marker><hex>`` and ``<keyspace>_<marker>_<hex>``, and its Spark
        checkpoints in ``checkpoint_dir``. ``updates``: per settings group a dict of
        fields (``spark={"master": "local[1]"}``), or a top-level field's value."""
        suffix = uuid.uuid4().hex[:12]
        kafka = base.kafka
        topics = {name: f"{_TOPIC_SUFFIX.sub('', getattr(kafka, name))}.{marker}{suffix}"
                  for name in type(kafka).model_fields if name.startswith("topic_")}
        keyspace = f"{_KEYSPACE_SUFFIX.sub('', base.cassandra.keyspace)}_{marker}_{suffix}"
        groups = {
            "kafka": {**topics, **updates.pop("kafka", {})},
            "cassandra": {"keyspace": keyspace, **updates.pop("cassandra", {})},
            "spark": {"checkpoint_dir": checkpoint_dir, **updates.pop("spark", {})},
        }
        for name in list(updates):
            if isinstance(updates[name], dict):
                groups[name] = updates.pop(name)
        settings = base.model_copy(update={
            **updates,
            **{name: getattr(base, name).model_copy(update=values)
               for name, values in groups.items()},
        })
        self.topics.extend(topics.values())
        self.keyspaces.append(keyspace)
        if create_topics:
            from ops.topics import ensure_topics

            ensure_topics(settings)
        return settings

    def drop(self, settings: Settings) -> list[str]:
        """Delete the topics and drop the keyspaces made so far; what went wrong."""
        problems = []
        if self.topics:
            from ops.kafka_server import kafka_admin

            try:
                with kafka_admin(settings, 30_000) as admin:
                    existing = set(admin.list_topics())
                    doomed = [t for t in self.topics if t in existing]
                    if doomed:
                        admin.delete_topics(doomed, timeout_ms=30_000)
                self.topics.clear()
            except Exception as exc:
                problems.append(f"deleting topics: {exc!r}")
        if self.keyspaces:
            from backend.storage.cassandra import connect

            try:
                session = connect(settings.cassandra, keyspace=False, wait_seconds=10)
                try:
                    for ks in self.keyspaces:
                        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=120)
                    self.keyspaces.clear()
                finally:
                    session.cluster.shutdown()
            except Exception as exc:
                problems.append(f"dropping keyspaces: {exc!r}")
        return problems

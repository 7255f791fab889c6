"""The Kafka topics of ``Settings.kafka``: their partitions and configuration, created
once (``icu services topics``, ``icu services start``, the demo and the tests)."""

from __future__ import annotations

import time

from backend.settings import Settings
from ops.kafka_server import kafka_admin
from ops.server_processes import ServiceError, quiet, say


def kafka_topics(settings: Settings) -> dict[str, int]:
    """Every topic in ``Settings.kafka`` and its partition count."""
    cfg = settings.kafka
    topics = {getattr(cfg, name): cfg.partitions
              for name in type(cfg).model_fields if name.startswith("topic_")}
    # One partition by design: its committed group offset is the stream job's progress.
    topics[cfg.topic_sink_progress] = 1
    # The stream job's clock: a few bytes every few seconds, read once.
    topics[cfg.topic_ticks] = 1
    return topics


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-topic configuration, set at creation and on every ``ensure_topics``.

    The clock's ticks are kept as long as the readings (``retention_hours``), though a
    tick is worthless a minute later: the stream job reads both from one source, so a
    job stopped longer than the ticks' retention would find its checkpointed tick offset
    deleted and refuse to resume (data loss stops the job), while every reading it must
    still process is on the broker."""
    retention_ms = str(int(settings.kafka.retention_hours * 3_600_000))
    return {settings.kafka.topic_ticks: {"retention.ms": retention_ms}}


def ensure_topics(settings: Settings, *, timeout: float = 30) -> list[str]:
    """Create the missing topics of ``Settings.kafka`` (idempotent); returns those created.

    An existing topic is left as it is (a warning if it has fewer partitions)."""
    from kafka.admin import NewTopic

    wanted = kafka_topics(settings)
    with quiet("kafka"), kafka_admin(settings, int(timeout * 1000)) as admin:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            cfg = settings.kafka
            durability = {"min.insync.replicas": str(cfg.min_insync_replicas)}
            result = admin.create_topics(
                [NewTopic(t, wanted[t], cfg.replication_factor,
                          topic_configs={**durability, **topic_configs(settings).get(t, {})})
                 for t in missing],
                timeout_ms=int(timeout * 1000), raise_errors=False,
            )
            for topic in result.get("topics", []):
                code = topic.get("error_code", 0)
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a concurrent creator)
                    raise ServiceError(f"creating topic {topic.get('name')}: error {code} "
                                       f"{topic.get('error_message') or ''}")
        _wait_for_topics(admin, list(wanted), timeout)
        _apply_configs(admin, topic_configs(settings))
        for info in admin.describe_topics(list(wanted)):
            name = info.get("name") or info.get("topic")
            have = len(info.get("partitions") or [])
            if name in wanted and have < wanted[name]:
                say(f"warning: topic {name} has {have} partitions, settings ask for "
                     f"{wanted[name]}")
    return missing


def _apply_configs(admin: object, configs: dict[str, dict[str, str]]) -> None:
    """Set ``configs`` on existing topics too (a topic made by an older version keeps
    what it was created with otherwise)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    if not configs:
        return
    # kafka-python checks the names against the topic's configuration as the broker it
    # asks describes it; with several brokers a topic created a moment ago may not be on
    # that one yet ("Unrecognized configs"), so it is asked again.
    for attempt in range(20):
        try:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=conf)  # type: ignore[attr-defined]
                                 for topic, conf in configs.items()])
            return
        except ValueError:
            if attempt == 19:
                raise
            time.sleep(0.25)


def _wait_for_topics(admin: object, topics: list[str], timeout: float) -> None:
    wait = getattr(admin, "wait_for_topics", None)
    if wait is not None:  # kafka-python 3
        wait(topics, timeout_ms=int(timeout * 1000))
        return
    deadline = time.monotonic() + timeout
    while not set(topics) <= set(admin.list_topics()):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise ServiceError(f"topics not visible after {timeout:.0f}s: {topics}")
        time.sleep(0.2)

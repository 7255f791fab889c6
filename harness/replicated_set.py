"""Servers of a run's own: a private cache directory (the cached server jars linked in)
and ports of its own, so they run beside the shared single-node servers and beside a set
started with ``icu services start --cluster``. ``private_set``: the replicated set
(``ops.cluster``: 3 Kafka brokers, 3 Cassandra nodes on 127.0.0.1-3), used by the
``replicated`` test fixture and the fault campaign; ``private_node``: one broker and one
node, used by the soak."""

from __future__ import annotations

from pathlib import Path

from backend.settings import ClusterSettings, Settings


def _linked_cache(base: Settings, cache: Path) -> Path:
    from ops.artefacts import cassandra_home, kafka_home

    cache.mkdir(parents=True, exist_ok=True)
    for home in (kafka_home(base), cassandra_home(base)):
        link = cache / home.name
        if not link.exists():
            link.symlink_to(home)  # the jars, fetched once
    return cache


def private_set(base: Settings, cache: Path, base_port: int) -> Settings:
    """``base`` with its cache in ``cache`` and the set on ``base_port`` + 92..94 (Kafka),
    + 42 (Cassandra's native port); storage and JMX ports ``base_port`` - 2000 and
    - 1801.. (the layout of the set's defaults, 19092 / 19042 / 17000 / 17199)."""
    return base.model_copy(update={
        "cache_dir": _linked_cache(base, cache),
        "cluster": ClusterSettings(
            kafka_ports=[base_port + 92, base_port + 93, base_port + 94],
            cassandra_port=base_port + 42, cassandra_storage_port=base_port - 2000,
            cassandra_jmx_port=base_port - 1801),
    })


def private_node(base: Settings, cache: Path, base_port: int) -> Settings:
    """``base`` with its cache in ``cache``, its Kafka broker on ``base_port`` + 92 (the
    KRaft controller + 93) and its Cassandra node on ``base_port`` + 42 (storage and JMX
    ports follow from it as for the default node: ``ops.cassandra_server``)."""
    return base.model_copy(update={
        "cache_dir": _linked_cache(base, cache),
        "kafka": base.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{base_port + 92}"}),
        "cassandra": base.cassandra.model_copy(update={"hosts": ["127.0.0.1"],
                                                       "port": base_port + 42}),
    })

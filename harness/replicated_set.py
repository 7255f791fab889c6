"""A replicated set (``ops.cluster``: 3 Kafka brokers, 3 Cassandra nodes on 127.0.0.1-3)
of a run's own: a private cache directory (the cached server jars linked in) and ports
from ``base_port``, so it runs beside the shared single-node servers and beside a set
started with ``icu services start --cluster``. Used by the ``replicated`` test fixture
and the fault campaign."""

from __future__ import annotations

from pathlib import Path

from backend.settings import ClusterSettings, Settings


def private_set(base: Settings, cache: Path, base_port: int) -> Settings:
    """``base`` with its cache in ``cache`` and the set on ``base_port`` + 92..94 (Kafka),
    + 42 (Cassandra's native port); storage and JMX ports ``base_port`` - 2000 and
    - 1801.. (the layout of the set's defaults, 19092 / 19042 / 17000 / 17199)."""
    from ops.artefacts import cassandra_home, kafka_home

    cache.mkdir(parents=True, exist_ok=True)
    for home in (kafka_home(base), cassandra_home(base)):
        link = cache / home.name
        if not link.exists():
            link.symlink_to(home)  # the jars, fetched once
    return base.model_copy(update={
        "cache_dir": cache,
        "cluster": ClusterSettings(
            kafka_ports=[base_port + 92, base_port + 93, base_port + 94],
            cassandra_port=base_port + 42, cassandra_storage_port=base_port - 2000,
            cassandra_jmx_port=base_port - 1801),
    })

"""Connecting to Cassandra. One ``Cluster``/``Session`` per process; sessions are
thread-safe and multiplex requests, so callers share the one returned here.

``Session`` is re-exported for type hints: no module outside ``backend/storage/`` (and
``ops/``, which starts the servers) imports the driver.
"""

from __future__ import annotations

import time
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy
from cassandra.query import dict_factory

from backend.clients import ClientConfigError, ssl_context
from backend.settings import CassandraSettings

__all__ = ["Cluster", "Session", "cassandra_security", "connect", "make_cluster"]


def cassandra_security(cfg: CassandraSettings) -> dict[str, Any]:
    """``auth_provider`` and ``ssl_context`` keyword arguments for ``Cluster``."""
    out: dict[str, Any] = {}
    if cfg.username or cfg.password is not None:
        if not cfg.username or cfg.password is None:
            raise ClientConfigError("Cassandra authentication needs both "
                                    "ICU_CASSANDRA__USERNAME and ICU_CASSANDRA__PASSWORD")
        out["auth_provider"] = PlainTextAuthProvider(cfg.username,
                                                     cfg.password.get_secret_value())
    context = ssl_context(cfg.tls)
    if context is not None:
        # with check_hostname on, the driver checks each node's name against its address
        out["ssl_context"] = context
    return out


def make_cluster(cfg: CassandraSettings, *, request_timeout: float = 15.0) -> Cluster:
    """A cluster whose queries give up after ``request_timeout`` seconds (a thread that
    also follows Kafka asks for a short one, so it never stalls on a query)."""
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(),
        retry_policy=RetryPolicy(),
        row_factory=dict_factory,
        request_timeout=request_timeout,
        consistency_level=ConsistencyLevel.name_to_value[cfg.consistency],
    )
    return Cluster(
        cfg.hosts,
        port=cfg.port,
        **cassandra_security(cfg),
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        protocol_version=5,
        connect_timeout=10,
    )


def connect(cfg: CassandraSettings, *, keyspace: bool = True, wait_seconds: float = 0) -> Session:
    """A session, bound to the configured keyspace unless ``keyspace=False``.

    ``wait_seconds`` keeps retrying while the server is still starting.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        cluster = make_cluster(cfg)
        try:
            session = cluster.connect(cfg.keyspace if keyspace else None)
            return session
        except Exception:
            cluster.shutdown()
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)

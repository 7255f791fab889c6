"""Connecting to Cassandra. One ``Cluster``/``Session`` per process; sessions are
thread-safe and multiplex requests, so callers share the one returned here."""

from __future__ import annotations

import time

from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy
from cassandra.query import dict_factory

from backend.clients import cassandra_security
from backend.settings import CassandraSettings


def make_cluster(cfg: CassandraSettings) -> Cluster:
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(),
        retry_policy=RetryPolicy(),
        row_factory=dict_factory,
        request_timeout=15.0,
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

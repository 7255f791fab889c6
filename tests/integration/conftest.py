"""``replicated`` (session): the replicated set of ops/cluster.py (3 Kafka brokers, 3
Cassandra nodes on 127.0.0.1-3), started for this session in a private cache directory
on ports of its own (so it runs beside the shared single-node servers and beside a set
someone started with `icu services start --cluster`), stopped at the end. Yields the
client settings (``ops.cluster.client_settings``, Spark in local mode), which also
carry ``cache_dir`` and ``cluster`` so a test can kill and start members.

Like ``services``, it never skips: a set that does not start fails the tests that
need it, with the members' log tails. The tests that use it carry the ``replicated``
marker and are left out of the default run and of any selection that does not name
them (``-m replicated`` runs them): the set takes ~35 s to start and ~15 s to stop, and
the fault test runs for minutes, beyond the default suite's budget; see
docs/reliability.md."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from backend.settings import Settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A selection that does not name ``replicated`` (``-m integration``, say) leaves the
    replicated set's tests out, as the default run does."""
    if "replicated" in (config.option.markexpr or ""):
        return
    dropped = [i for i in items if i.get_closest_marker("replicated")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if not i.get_closest_marker("replicated")]


@pytest.fixture(scope="session")
def replicated(services: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from harness.replicated_set import private_set
    from ops import cluster

    # ports 29092-29094, 29042, storage 27000, JMX 27199-27201
    base = private_set(services, tmp_path_factory.mktemp("replicated-cache"), 29000)
    try:
        cluster.start_cluster(base, spark=False, timeout=360, unsafe_system=True)
    except Exception as exc:
        cluster.stop_cluster(base, spark=False)
        pytest.fail(f"the replicated set could not be started (logs under "
                    f"{cluster.cluster_var(base)}):\n{exc}", pytrace=False)
    try:
        yield cluster.client_settings(base, spark_cluster=False)
    finally:
        if os.environ.get("ICU_KEEP_SERVICES", "").strip().lower() not in ("1", "true", "yes"):
            cluster.stop_cluster(base, spark=False)

"""Fixtures shared by the whole suite.

``services`` (session): Kafka and Cassandra are running (``ops.services`` starts them if
they are not; if the settings point at other hosts it only waits for those) and yields
the base ``Settings``. If they cannot be started, every test
that needs them ERRORS with the reason and the servers' log tails - it never skips,
because a CI run that silently skips its integration tests is a broken run. At the end,
servers this session started are stopped, unless ``ICU_KEEP_SERVICES=1`` or another
live test session / demo still holds a lease on them; servers that were already running
are left alone.

``isolated_settings`` (function): a copy of those settings with unique Kafka topic
names (created), a unique Cassandra keyspace ``icu_t_<hex>`` (NOT created - the storage
layer's migrations create it) and the Spark checkpoint under ``tmp_path``. The topics
and keyspaces are removed at the end of the session (``ICU_KEEP_TEST_DATA=1`` keeps them
for a post-mortem).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Session

from backend.settings import Settings
from harness.isolation import Scratch


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def _created() -> Scratch:
    return Scratch()


@pytest.fixture(scope="session")
def services(_created: Scratch) -> Iterator[Settings]:
    """Kafka and Cassandra are up; yields the base settings."""
    from ops import services as svc
    from ops.topics import ensure_topics

    settings = Settings()
    # The tests serve the web app over plain http on 127.0.0.1 and use the local servers
    # without credentials or TLS (both allowed on loopback only).
    settings = settings.model_copy(update={
        "allow_insecure_services": True,
        "web": settings.web.model_copy(update={"allow_insecure_http": True})})
    with svc.lease(settings, holder=f"pytest pid {os.getpid()}") as mine:
        try:
            if all(svc.is_local(settings).values()):
                # unsafe_system only matters if this session is the one starting Cassandra.
                started = svc.start_all(settings, unsafe_system=True, timeout=240)
            else:  # servers elsewhere (e.g. docker compose): only wait for them
                started = svc.wait_until_ready(settings, timeout=240)
            ensure_topics(settings)
        except Exception as exc:
            pytest.fail(
                "Kafka/Cassandra could not be started for the integration tests "
                f"(`icu services start`; logs under {settings.cache_dir / 'var'}):\n{exc}",
                pytrace=False,
            )
        try:
            yield settings
        finally:
            problems = [] if _flag("ICU_KEEP_TEST_DATA") else _created.drop(settings)
            ours = [name for name, s in started.items() if s.started]
            others = svc.other_lease_holders(settings, mine)
            if ours and not _flag("ICU_KEEP_SERVICES") and not others:
                for name in ours:
                    svc.stop_all(settings, only=name)
            for problem in problems:
                warnings.warn(f"test data cleanup: {problem}", stacklevel=1)


@pytest.fixture
def isolated_settings(services: Settings, _created: Scratch, tmp_path: Path) -> Settings:
    """Settings of one test: its own topics (created), keyspace (not created) and
    Spark checkpoint directory."""
    return _created.isolate(services, tmp_path / "spark-checkpoints")


@pytest.fixture
def db(isolated_settings: Settings) -> Iterator[Session]:
    """A session on the test's own keyspace, migrated."""
    from backend.storage.cassandra import connect
    from backend.storage.migrate import migrate

    session = connect(isolated_settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, isolated_settings)
    session.set_keyspace(isolated_settings.cassandra.keyspace)
    yield session
    session.cluster.shutdown()

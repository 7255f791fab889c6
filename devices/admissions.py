"""Registering the simulated patients' admissions before their readings are published.

The stream job checks every reading against the census (``backend.storage.census``), so
the simulator admits its patients first. This is a separate step of the CLI (skipped with
``--no-admit``), kept out of the pure generators.
"""

from __future__ import annotations

from collections.abc import Iterable

from backend.admission import Admission
from backend.settings import Settings


def register(settings: Settings, admissions: Iterable[Admission], *,
             wait_seconds: float = 30.0) -> int:
    """Admit every patient (idempotent upserts); returns how many."""
    from backend.storage import census
    from backend.storage.cassandra import connect

    session = connect(settings.cassandra, wait_seconds=wait_seconds)
    try:
        n = 0
        for admission in admissions:
            census.admit(session, admission)
            n += 1
        return n
    finally:
        session.cluster.shutdown()

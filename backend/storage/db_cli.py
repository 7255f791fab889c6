"""``icu db``: schema management."""

from __future__ import annotations

import click

from backend.settings import get_settings
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate


@click.group()
def cli() -> None:
    """Cassandra schema."""


@cli.command("migrate")
@click.option("--wait", default=120.0, show_default=True, help="seconds to wait for Cassandra")
def migrate_cmd(wait: float) -> None:
    """Create the keyspace and apply pending migrations."""
    settings = get_settings()
    session = connect(settings.cassandra, keyspace=False, wait_seconds=wait)
    try:
        applied = migrate(session, settings)
    finally:
        session.cluster.shutdown()
    done = ", ".join(applied) or "nothing (up to date)"
    click.echo(f"keyspace {settings.cassandra.keyspace}: applied {done}")

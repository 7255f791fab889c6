"""``icu db backup`` / ``icu db restore`` (ops/backup.py). They run Cassandra's own tools
(nodetool, sstableloader) from the cached distribution, so they live in ops/; ``ops/cli.py``
shows them in ``icu db`` beside the schema commands of ``backend/storage/db_cli.py``."""

from __future__ import annotations

from pathlib import Path

import click

from backend.settings import get_settings


@click.group()
def cli() -> None:
    """Backups of the keyspace."""


@cli.command("backup")
@click.argument("out", type=click.Path(path_type=Path))
def backup_cmd(out: Path) -> None:
    """Snapshot the keyspace on every node into OUT (a new directory): each node's
    sstables, the schema and a manifest with every file's SHA-256 (ops/backup.py)."""
    from ops.backup import BackupError, backup

    settings = get_settings()
    try:
        manifest = backup(settings, out, log=click.echo)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"keyspace {manifest['keyspace']} backed up to {out} "
               f"({len(manifest['nodes'])} node(s), {manifest['seconds']} s)")


@cli.command("restore")
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--keyspace", default=None,
              help="restore into this keyspace (default: the backup's); it must not exist")
def restore_cmd(src: Path, keyspace: str | None) -> None:
    """Restore a backup made by `icu db backup` into a new keyspace of the cluster the
    settings point at (any number of nodes; the settings' replication factor)."""
    from ops.backup import BackupError, restore

    settings = get_settings()
    try:
        target, loaded = restore(settings, src, keyspace=keyspace, log=click.echo)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {len(loaded)} tables ({sum(loaded.values())} sstables) into "
               f"keyspace {target}")

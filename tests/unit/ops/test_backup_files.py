"""The pure parts of ops/backup.py: the schema rewritten for the target keyspace, the
staging of several nodes' sstables, and the integrity check. The round trip through
real nodes is tests/integration/test_backup_restore.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops import backup

SCHEMA = '''CREATE KEYSPACE icu WITH replication = {'class': 'SimpleStrategy',
    'replication_factor': '3'}  AND durable_writes = true;

CREATE TABLE icu.readings_by_patient_day (
    patient_id text,
    day date,
    note text,
    PRIMARY KEY ((patient_id, day))
) WITH comment = 'icu_archive.x is another keyspace'
    AND default_time_to_live = 0;

CREATE TABLE icu.icu_audit (
    id uuid PRIMARY KEY
) WITH comment = '';

CREATE TYPE "icu".contact (name text);
'''


def test_schema_gets_the_targets_keyspace_and_replication() -> None:
    out = backup.schema_statements(SCHEMA, "icu", "icu_restored", 1)
    assert out[0] == ("CREATE KEYSPACE icu_restored WITH replication = {'class': "
                      "'SimpleStrategy', 'replication_factor': 1}")
    assert len(out) == 4, "one keyspace, two tables, one type"
    assert out[1].startswith("CREATE TABLE icu_restored.readings_by_patient_day (")
    assert out[2].startswith("CREATE TABLE icu_restored.icu_audit (")
    assert out[3].startswith("CREATE TYPE icu_restored.contact")
    # a keyspace whose name starts like the source's is left alone
    assert "icu_archive.x" in out[1]
    assert not any("CREATE KEYSPACE icu " in s for s in out)


def _sstable(directory: Path, ident: str, version: str = "nb", fmt: str = "big") -> list[str]:
    names = [f"{version}-{ident}-{fmt}-{c}" for c in ("Data.db", "Index.db", "TOC.txt")]
    directory.mkdir(parents=True, exist_ok=True)
    for n in names:
        (directory / n).write_bytes(f"{directory.parent.name}/{n}".encode())
    return names


def _manifest(src: Path, nodes: dict[str, dict[str, list[str]]]) -> dict:
    manifest = {"format": backup.FORMAT, "keyspace": "icu", "schema": backup.SCHEMA,
                "nodes": {}}
    for node, tables in nodes.items():
        manifest["nodes"][node] = {"host": "127.0.0.1", "tables": {
            t: [{"name": n, "bytes": (src / node / t / n).stat().st_size,
                 "sha256": hashlib.sha256((src / node / t / n).read_bytes()).hexdigest()}
                for n in names] for t, names in tables.items()}}
    (src / backup.MANIFEST).write_text(json.dumps(manifest))
    return manifest


@given(st.lists(st.lists(st.integers(1, 4), max_size=4, unique=True), min_size=1,
                max_size=3))
def test_staging_keeps_every_nodes_sstables_apart(generations: list[list[int]]) -> None:
    """Three nodes that numbered their sstables alike (the single-node default): every
    sstable of every node is staged, under an id of its own, components together."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        nodes = {f"cassandra-{i}": {"t": [n for g in gens
                                          for n in _sstable(src / f"cassandra-{i}" / "t",
                                                            str(g))]}
                 for i, gens in enumerate(generations, start=1)}
        manifest = _manifest(src, nodes)
        count = backup._stage(src, manifest, "t", src / "stage" / "ks" / "t")
        staged = sorted((src / "stage" / "ks" / "t").iterdir())
        total = sum(len(g) for g in generations)
        assert count == total
        assert len(staged) == 3 * total, "every component of every sstable"
        ids = {p.name.split("-")[1] for p in staged}
        assert len(ids) == total, "one id per sstable, none shared between nodes"
        contents = sorted(p.read_bytes() for p in staged)
        assert contents == sorted(f"{node}/{n}".encode() for node, t in nodes.items()
                                  for n in t["t"])


def test_uuid_identified_sstables_are_staged_under_their_names(tmp_path: Path) -> None:
    names = _sstable(tmp_path / "cassandra-1" / "t", "3gxz_0abc_1x2y3z4a5b6c7d8e9f", "da", "bti")
    manifest = _manifest(tmp_path, {"cassandra-1": {"t": names}})
    assert backup._stage(tmp_path, manifest, "t", tmp_path / "s") == 1
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(names)


def test_a_changed_or_missing_file_is_found_before_anything_is_restored(tmp_path) -> None:
    names = _sstable(tmp_path / "cassandra-1" / "t", "1")
    manifest = _manifest(tmp_path, {"cassandra-1": {"t": names}})
    assert backup.verify(tmp_path, backup.read_manifest(tmp_path)) == []
    (tmp_path / "cassandra-1" / "t" / names[0]).write_bytes(b"bit rot")
    (tmp_path / "cassandra-1" / "t" / names[1]).unlink()
    bad = backup.verify(tmp_path, manifest)
    assert len(bad) == 2
    assert any("changed since the backup" in b for b in bad)
    assert any("missing" in b for b in bad)
    with pytest.raises(backup.BackupError, match="damaged, nothing restored"):
        backup.restore(None, tmp_path)  # type: ignore[arg-type]


def test_not_a_backup_is_refused(tmp_path: Path) -> None:
    with pytest.raises(backup.BackupError, match="is not a backup"):
        backup.read_manifest(tmp_path)
    (tmp_path / backup.MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(backup.BackupError, match="format 99"):
        backup.read_manifest(tmp_path)


# The loader's own lines (Cassandra 5.0 SSTableLoader), as a restore prints them.
_STREAMED = ("Established connection to initial hosts\n"
             "Opening sstables and calculating sections to stream\n"
             "Streaming relevant part of /b/icu-restore-x/ks/t/{files} to "
             "[/127.0.0.1:7000, /127.0.0.2:7000]\n")


@given(st.lists(st.uuids().map(lambda u: f"da-{u.hex[:24]}-bti-Data.db"), min_size=1,
                max_size=8, unique=True), st.data())
def test_a_file_the_loader_left_out_is_named(names: list[str], data: st.DataObject) -> None:
    streamed = data.draw(st.lists(st.sampled_from(names), unique=True))
    output = _STREAMED.format(files=" /b/icu-restore-x/ks/t/".join(streamed)) \
        if streamed else "Established connection to initial hosts\n"
    missed = backup.unstreamed(output, names)
    assert missed == [f"{n}: not streamed" for n in names if n not in streamed]


def test_a_skipped_file_fails_the_restore_although_the_loader_exits_0() -> None:
    output = ("Skipping file nb-2-big-Data.db: table ks.t doesn't exist\n"
              + _STREAMED.format(files="nb-1-big-Data.db"))
    assert backup.unstreamed(output, ["nb-1-big-Data.db"]) == [
        "Skipping file nb-2-big-Data.db: table ks.t doesn't exist"]

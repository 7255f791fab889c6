"""Backups of the keyspace that restore: ``icu db backup`` and ``icu db restore``.

A backup is a directory::

    backup.json                  what it holds: keyspace, time, nodes, every file's size
                                 and SHA-256, the source's replication
    schema.cql                   the keyspace's schema as the cluster described it
    <node>/<table>/<sstables>    each node's snapshot of each table

**Backup**: ``nodetool snapshot`` on every node (a flush, then hard links of the
sstables: a consistent point per node, taken without stopping writes), the files copied
out of the data directory, then ``nodetool clearsnapshot`` so the links do not pin disk
space. nodetool is the cached Cassandra distribution's own (``NodeTool`` from the
cassandra-all jar, over JMX on 127.0.0.1), so this runs on the machine of the nodes that
``icu services`` manages: the single node or the replicated set (ops/cluster.py).

**Restore**: into a keyspace that does not exist yet (the backup's, or ``--keyspace``),
on whatever cluster the settings point at, whatever its size: the schema is created from
``schema.cql`` with the *target's* replication factor, then every table's sstables of
every node are streamed with ``sstableloader`` (``BulkLoader``), which sends each
partition to the replicas that own it on the target. Replicas of the same row from
several nodes merge by their write timestamps, as they do in Cassandra itself, so the
restored keyspace holds exactly what the source did at the snapshot, TTLs included.
Files are checked against their SHA-256 before anything is created.

Secondary-index files in a snapshot are not copied: the target builds its indexes from
the streamed data. The platform's own schema has none today.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from backend.settings import Settings
from backend.storage.migrate import SchemaAgreementError, schema_changes, split_statements
from ops import cassandra_server
from ops.artefacts import cassandra_home, fetch_cassandra
from ops.server_processes import java

FORMAT = 1
MANIFEST = "backup.json"
SCHEMA = "schema.cql"
_KEYSPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# An sstable component: <version>-<id>-<format>-<component>, e.g. "nb-3-big-Data.db" or
# "da-3gv8_0xyz_1a2b3c4d5e6f7g8h9i-bti-Partitions.db" (uuid identifiers).
_SSTABLE_RE = re.compile(r"^(?P<version>[a-z]{2})-(?P<id>[0-9a-z_]+)-(?P<format>big|bti)-"
                         r"(?P<component>.+)$")

TOOLS_LOGBACK = """\
<!-- Written by ops/backup.py: Cassandra's tools log warnings only, to stderr. -->
<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %date{ISO8601} %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
"""


class BackupError(RuntimeError):
    """A backup or restore cannot go on (the message says why and what to do)."""


@dataclass(frozen=True)
class Node:
    name: str
    host: str
    jmx_port: int
    data_dir: Path


def local_nodes(settings: Settings) -> list[Node]:
    """The Cassandra nodes the settings point at, as ``icu services`` runs them."""
    from ops.cluster import cassandra_members

    c, cl = settings.cassandra, settings.cluster
    if c.port == cl.cassandra_port and set(c.hosts) <= set(cl.cassandra_hosts):
        return [Node(m.name, m.spec.host, m.spec.other_ports[1], m.spec.var / "data")
                for m in cassandra_members(settings)]
    spec = cassandra_server.cassandra_spec(settings)
    if not spec.local:
        raise BackupError(f"Cassandra at {c.hosts} is not run by `icu services` on this "
                          "machine: take its snapshots with its own nodetool")
    return [Node("cassandra", spec.host, cassandra_server.cassandra_jmx_port(spec.other_ports[0]),
                 spec.var / "data")]


def _tool_argv(settings: Settings, main: str) -> list[str]:
    lib = cassandra_home(settings) / "lib"
    if not list(lib.glob("cassandra-all-*.jar")):
        fetch_cassandra(settings)
    logback = settings.cache_dir / "var" / "logback-tools.xml"
    logback.parent.mkdir(parents=True, exist_ok=True)
    if not logback.exists() or logback.read_text() != TOOLS_LOGBACK:
        logback.write_text(TOOLS_LOGBACK)
    return [java(), "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            *cassandra_server.CASSANDRA_JVM17_MODULE_FLAGS,
            f"-Dlogback.configurationFile={logback}",
            "-Dcassandra.storagedir=" + str(settings.cache_dir / "var" / "tools"),
            "-cp", f"{lib}/*", main]


def nodetool(settings: Settings, node: Node, *args: str, timeout: float = 300) -> str:
    """Run ``nodetool args`` against ``node`` (JMX on 127.0.0.1); its output."""
    argv = [*_tool_argv(settings, "org.apache.cassandra.tools.NodeTool"),
            "-h", "127.0.0.1", "-p", str(node.jmx_port), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BackupError(f"nodetool {' '.join(args)} on {node.name} (JMX 127.0.0.1:"
                          f"{node.jmx_port}) failed ({proc.returncode}); is the node up and "
                          f"was it started with JMX (restart it with `icu services`)?\n"
                          f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _table_dirs(session, keyspace: str) -> dict[str, str]:
    """table -> its data directory's name (``<table>-<id without dashes>``): a table
    dropped and created again leaves an older directory with another id."""
    rows = session.execute("SELECT table_name, id FROM system_schema.tables "
                           "WHERE keyspace_name = %s", (keyspace,))
    return {r["table_name"]: f"{r['table_name']}-{r['id'].hex}" for r in rows}


def backup(settings: Settings, out: Path, *, log: Callable[[str], None] = print) -> dict:
    """Snapshot every node's copy of the keyspace into ``out`` (new or empty); the
    manifest written there."""
    from backend.storage.cassandra import connect

    keyspace = settings.cassandra.keyspace
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out} is not empty: a backup goes to a new directory")
    nodes = local_nodes(settings)
    session = connect(settings.cassandra, keyspace=False, wait_seconds=30)
    try:
        meta = session.cluster.metadata.keyspaces.get(keyspace)
        if meta is None:
            raise BackupError(f"keyspace {keyspace} does not exist")
        schema = meta.export_as_string()
        # the CQL map, e.g. {'class': 'SimpleStrategy', 'replication_factor': '3'}
        replication = meta.replication_strategy.export_for_schema()
        dirs = _table_dirs(session, keyspace)
        version = session.execute("SELECT release_version FROM system.local").one()
    finally:
        session.cluster.shutdown()
    tag = "icu-backup-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    out.mkdir(parents=True, exist_ok=True)
    (out / SCHEMA).write_text(schema + "\n")
    manifest: dict = {
        "format": FORMAT, "keyspace": keyspace, "tag": tag,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cassandra_version": version["release_version"] if version else None,
        "replication": replication, "schema": SCHEMA, "nodes": {},
    }
    started = time.monotonic()
    # One snapshot per node, side by side: each is a flush and hard links.
    with ThreadPoolExecutor(max_workers=len(nodes), thread_name_prefix="snapshot") as pool:
        list(pool.map(lambda n: nodetool(settings, n, "snapshot", "-t", tag, "--", keyspace),
                      nodes))
    try:
        for node in nodes:
            tables: dict[str, list[dict]] = {}
            for table, dirname in sorted(dirs.items()):
                snap = node.data_dir / keyspace / dirname / "snapshots" / tag
                files = sorted(p for p in snap.iterdir() if p.is_file()
                               and _SSTABLE_RE.match(p.name)) if snap.is_dir() else []
                if not files:
                    continue
                dest = out / node.name / table
                dest.mkdir(parents=True, exist_ok=True)
                entries = []
                for f in files:
                    shutil.copy2(f, dest / f.name)
                    entries.append({"name": f.name, "bytes": f.stat().st_size,
                                    "sha256": _sha256(dest / f.name)})
                tables[table] = entries
            manifest["nodes"][node.name] = {"host": node.host, "tables": tables}
            log(f"{node.name}: {len(tables)} tables, "
                f"{sum(e['bytes'] for t in tables.values() for e in t) / 1e6:.1f} MB")
    finally:
        for node in nodes:
            nodetool(settings, node, "clearsnapshot", "-t", tag, "--", keyspace)
    manifest["seconds"] = round(time.monotonic() - started, 1)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(src: Path) -> dict:
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src} is not a backup ({MANIFEST}: {exc})") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src}: backup format {manifest.get('format')}, this version "
                          f"reads {FORMAT}")
    return manifest


def verify(src: Path, manifest: dict) -> list[str]:
    """Files missing or changed since the backup (empty: all intact)."""
    bad = []
    for node, info in manifest["nodes"].items():
        for table, entries in info["tables"].items():
            for e in entries:
                path = src / node / table / e["name"]
                if not path.is_file():
                    bad.append(f"{path}: missing")
                elif path.stat().st_size != e["bytes"] or _sha256(path) != e["sha256"]:
                    bad.append(f"{path}: changed since the backup")
    return bad


def schema_statements(schema: str, source: str, target: str, replication_factor: int) -> list[str]:
    """The backup's schema for keyspace ``target``: its own CREATE KEYSPACE with the
    target's replication, every other statement with the keyspace renamed."""
    out = [f"CREATE KEYSPACE {target} WITH replication = {{'class': 'SimpleStrategy', "
           f"'replication_factor': {replication_factor}}}"]
    qualified = re.compile(rf'(?<![\w"])"?{re.escape(source)}"?\.')
    for statement in split_statements(schema):
        if re.match(r"(?is)^\s*CREATE\s+KEYSPACE\b", statement):
            continue
        out.append(qualified.sub(f"{target}.", statement))
    return out


def _stage(src: Path, manifest: dict, table: str, dest: Path) -> int:
    """Every node's sstables of ``table`` in ``dest`` (hard links where possible), an
    sstable id renamed where two nodes used the same one; the number of sstables."""
    dest.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    count = 0
    for node, info in sorted(manifest["nodes"].items()):
        names = [e["name"] for e in info["tables"].get(table, [])]
        renamed: dict[str, str] = {}
        for name in names:
            m = _SSTABLE_RE.match(name)
            assert m is not None
            key = f"{m['version']}-{m['id']}-{m['format']}"
            if key not in renamed:
                new_id = m["id"]
                while f"{m['version']}-{new_id}-{m['format']}" in used:
                    new_id = str(int(new_id) + 1_000_000) if new_id.isdigit() \
                        else f"{new_id}x"
                renamed[key] = f"{m['version']}-{new_id}-{m['format']}"
                used.add(renamed[key])
                count += 1
            target = dest / f"{renamed[key]}-{m['component']}"
            try:
                target.hardlink_to(src / node / table / name)
            except OSError:
                shutil.copy2(src / node / table / name, target)
    return count


def unstreamed(loader_output: str, data_files: list[str]) -> list[str]:
    """What sstableloader's output says it left out of ``data_files`` (the staged
    ``*-Data.db`` names); empty when it streamed them all. The loader skips a file whose
    table it cannot see or whose components are missing with a line of output and exits
    0 all the same, which would pass a partial restore off as a whole one."""
    streamed: set[str] = set()
    problems = []
    for line in loader_output.splitlines():
        if line.startswith("Skipping"):
            problems.append(line.strip())
        elif "Streaming relevant part of " in line:
            files = line.split("Streaming relevant part of ", 1)[1].rsplit(" to [", 1)[0]
            streamed.update(Path(f).name for f in files.split())
    problems += [f"{name}: not streamed" for name in data_files if name not in streamed]
    return problems


def restore(settings: Settings, src: Path, *, keyspace: str | None = None,
            log: Callable[[str], None] = print, parallel: int = 2) -> tuple[str, dict[str, int]]:
    """Restore the backup in ``src`` into ``keyspace`` (default: the backup's), which
    must not exist, on the cluster of ``settings``; the keyspace and the sstables
    loaded per table."""
    from backend.storage.cassandra import connect

    manifest = read_manifest(src)
    bad = verify(src, manifest)
    if bad:
        raise BackupError("the backup is damaged, nothing restored:\n" + "\n".join(bad[:20]))
    target = keyspace or manifest["keyspace"]
    if not _KEYSPACE_RE.match(target):
        raise BackupError(f"invalid keyspace name {target!r}")
    cfg = settings.cassandra
    if cfg.username or cfg.password is not None:
        # sstableloader takes the password on its command line, which every local user
        # can read in /proc: refused rather than leaked.
        raise BackupError("restore into a Cassandra with authentication is not supported "
                          "(sstableloader would show the password to every local user)")
    session = connect(cfg, keyspace=False, wait_seconds=30)
    try:
        if target in session.cluster.metadata.keyspaces:
            raise BackupError(f"keyspace {target} exists on the target: restore into a new "
                              "one (--keyspace), or drop it first")
        statements = schema_statements((src / manifest["schema"]).read_text(),
                                       manifest["keyspace"], target, cfg.replication_factor)
        try:
            with schema_changes(session) as run:
                for statement in statements:
                    run(statement)
        except SchemaAgreementError as exc:
            raise BackupError(f"the target's nodes do not agree on the new schema: {exc}") \
                from None
    finally:
        session.cluster.shutdown()
    tables = sorted({t for info in manifest["nodes"].values() for t in info["tables"]})
    loaded: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="icu-restore-", dir=src) as tmp:
        def load(table: str) -> None:
            staged = Path(tmp) / target / table
            loaded[table] = _stage(src, manifest, table, staged)
            argv = [*_tool_argv(settings, "org.apache.cassandra.tools.BulkLoader"),
                    "--nodes", ",".join(cfg.hosts), "--port", str(cfg.port),
                    "--storage-port", str(_storage_port(settings)),
                    "--target-keyspace", target, "--no-progress", str(staged)]
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
            if proc.returncode != 0:
                raise BackupError(f"sstableloader of {table} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
            missed = unstreamed(proc.stdout, sorted(p.name for p in staged.glob("*-Data.db")))
            if missed:
                raise BackupError(f"sstableloader of {table} exited 0 but did not stream "
                                  f"every sstable:\n" + "\n".join(missed[:20]))
            log(f"{table}: {loaded[table]} sstables loaded")

        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="load") as pool:
            list(pool.map(load, tables))
    return target, loaded


def _storage_port(settings: Settings) -> int:
    c, cl = settings.cassandra, settings.cluster
    if c.port == cl.cassandra_port and set(c.hosts) <= set(cl.cassandra_hosts):
        return cl.cassandra_storage_port
    return cassandra_server.cassandra_storage_port(settings)

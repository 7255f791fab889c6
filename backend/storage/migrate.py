"""Schema migrations owned by code.

Each ``migrations/NNNN_name.cql`` file is applied once, in file-name order, and recorded
in ``schema_migrations`` with its checksum. Statements are idempotent (``IF NOT EXISTS``)
so a run interrupted half-way is simply run again. Retention is not a migration: it is
re-applied from the settings on every run, so changing ``ICU_CASSANDRA__RAW_TTL_DAYS``
takes effect at the next start (an ``ALTER`` only for a table whose TTL differs).

On several nodes a schema change is slow to *confirm*, not to make: after every DDL
statement the driver polls until all nodes report the same schema version, and each
node applies and flushes the change in turn (about a second per statement on the
three-node set of ops/cluster.py, so ~75 s for a fresh keyspace). The pending DDL is
therefore sent to one coordinator, which applies it in order and pushes it to the
others, without a wait per statement; the nodes must agree once, before anything reads
or writes the new tables. A statement that is not DDL waits for agreement first.

Number ranges keep parallel work apart: 0001-0099 core pipeline, 0100-0199 risk model,
0200-0299 users and audit, 0300-0399 alert lifecycle, 0400-0499 population analytics,
0500-0599 patient notes, 0700-0799 users' e-mail and wards, 0900-0999 security and
privacy.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session

from backend.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_KEYSPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DDL_RE = re.compile(r"^\s*(CREATE|ALTER|DROP)\s", re.IGNORECASE)
_DAY = 86_400
# How long the nodes may take to agree on the schema after a batch of changes.
AGREEMENT_SECONDS = 120.0
# How long to wait for nodes the driver is not connected to (below).
PEER_AGREEMENT_SECONDS = 60.0

# Tables whose default TTL follows the retention settings: table -> settings attribute.
RETENTION: dict[str, str] = {
    "readings_by_patient_day": "readings_ttl_days",
    "readings_by_patient_minute": "readings_ttl_days",  # kept as long as the readings it summarises
    # derived from the readings, so kept as long as they are
    "risk_scores_by_patient": "readings_ttl_days",
    "risk_scores_by_model_day": "readings_ttl_days",
    "raw_messages": "raw_ttl_days",
    "deadletters_by_day": "raw_ttl_days",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    return [Migration(p.stem, p) for p in sorted(directory.glob("*.cql"))]


def split_statements(text: str) -> list[str]:
    """CQL statements of a file: ``--`` comments removed, split on ``;`` at line end."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    body = "\n".join(lines)
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def render(text: str, settings: Settings) -> str:
    cfg = settings.cassandra
    return (
        text.replace("{keyspace}", cfg.keyspace)
        .replace("{readings_ttl}", str(cfg.readings_ttl_days * _DAY))
        .replace("{raw_ttl}", str(cfg.raw_ttl_days * _DAY))
    )


def migrate(session: Session, settings: Settings) -> list[str]:
    """Create the keyspace and apply pending migrations; return the versions applied."""
    cfg = settings.cassandra
    if not _KEYSPACE_RE.match(cfg.keyspace):
        raise ValueError(f"invalid keyspace name {cfg.keyspace!r}")
    with schema_changes(session) as run:
        run(f"CREATE KEYSPACE IF NOT EXISTS {cfg.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {cfg.replication_factor}}}")
        run(f"CREATE TABLE IF NOT EXISTS {cfg.keyspace}.schema_migrations ("
            "version text PRIMARY KEY, checksum text, applied_at timestamp)")
        done = {
            r["version"]: r["checksum"]  # type: ignore[attr-defined]
            for r in run(f"SELECT version, checksum FROM {cfg.keyspace}.schema_migrations")
        }
        pending = []
        for m in discover():
            if m.version in done:
                if done[m.version] != m.checksum:
                    log.warning("migration %s changed after it was applied", m.version)
                continue
            pending.append(m)
        for m in pending:
            for statement in split_statements(render(m.text, settings)):
                run(statement)
        apply_retention(run, settings)
    # Recorded once every node has the tables: a run interrupted before this point
    # applies the (idempotent) statements again.
    for m in pending:
        session.execute(
            f"INSERT INTO {cfg.keyspace}.schema_migrations (version, checksum, applied_at) "
            "VALUES (%s, %s, toTimestamp(now()))",
            (m.version, m.checksum),
        )
        log.info("applied migration %s", m.version)
    return [m.version for m in pending]


class SchemaAgreementError(RuntimeError):
    """The nodes did not agree on the schema in time (a node down or overloaded)."""


@contextlib.contextmanager
def schema_changes(session: Session) -> Iterator[Callable[..., object]]:
    """A ``run(statement, params=None)`` that sends every statement to one coordinator
    and waits for the nodes' schema agreement once: at the end, and before any statement
    that is not DDL. The driver's own wait after each DDL statement is off meanwhile (a
    setting of the whole ``Cluster``: migrations run before the process does other work)."""
    cluster = session.cluster
    # Preferably the control connection's node: the driver refreshes its schema metadata
    # from there after each change, so the metadata is current although nobody waits.
    # Only a node this session has connections to can be asked (a node that was down
    # when the session connected has none yet).
    connected = session.get_pool_state()
    control = cluster.control_connection.get_connections()
    host = cluster.metadata.get_host(control[0].endpoint) if control else None
    stale_metadata = host not in connected
    if stale_metadata:
        host = next(iter(connected), None)
    changed = False

    def versions() -> set:
        return {r["schema_version"] for table in ("local", "peers")  # type: ignore[index]
                for r in session.execute(f"SELECT schema_version FROM system.{table}",
                                         host=host)}

    def agree() -> None:
        nonlocal changed
        if not changed:
            return
        if not cluster.control_connection.wait_for_schema_agreement(
                wait_time=AGREEMENT_SECONDS):
            raise SchemaAgreementError(
                f"the Cassandra nodes do not agree on the schema after {AGREEMENT_SECONDS:.0f}"
                " s; run the migrations again once every node is up")
        # The driver counts only the nodes it holds connections to: a node it has not
        # reached yet (just started) is up for Cassandra all the same, and a quorum read
        # it serves without the new table fails (INCOMPATIBLE_SCHEMA, seen on the
        # three-node set). The coordinator's gossip knows every node's schema version;
        # a node that stays behind (down) is waited for a bounded time only.
        deadline = time.monotonic() + PEER_AGREEMENT_SECONDS
        while len(versions()) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        changed = False

    def run(statement: str, params: object = None) -> object:
        nonlocal changed
        ddl = bool(_DDL_RE.match(statement))
        # The coordinator's own schema tables already hold every change it made.
        if not ddl and "system_schema." not in statement:
            agree()
        result = session.execute(statement, params, timeout=60, host=host)
        changed |= ddl
        return result

    if host is None:  # no connection to pin: every statement waits, as the driver does
        yield lambda statement, params=None: session.execute(statement, params, timeout=60)
        return
    saved = cluster.max_schema_agreement_wait
    cluster.max_schema_agreement_wait = 0
    try:
        yield run
    finally:
        cluster.max_schema_agreement_wait = saved
    if changed and stale_metadata:
        agree()
        cluster.refresh_schema_metadata()
    agree()


def apply_retention(run: Callable[..., object], settings: Settings) -> None:
    """Each retention table's default TTL from the settings; ``run`` executes a statement
    (``session.execute`` or a ``schema_changes`` runner)."""
    cfg = settings.cassandra
    rows = run("SELECT table_name, default_time_to_live FROM system_schema.tables "
               "WHERE keyspace_name = %s", (cfg.keyspace,))
    current = {r["table_name"]: r["default_time_to_live"] for r in rows}  # type: ignore[attr-defined]
    for table, attr in RETENTION.items():
        seconds = getattr(cfg, attr) * _DAY
        if current.get(table) != seconds:
            run(f"ALTER TABLE {cfg.keyspace}.{table} WITH default_time_to_live = {seconds}")

"""Schema migrations owned by code.

Each ``migrations/NNNN_name.cql`` file is applied once, in file-name order, and recorded
in ``schema_migrations`` with its checksum. Statements are idempotent (``IF NOT EXISTS``)
so a run interrupted half-way is simply run again. Retention is not a migration: it is
re-applied from the settings on every run, so changing ``ICU_CASSANDRA__RAW_TTL_DAYS``
takes effect at the next start.

Number ranges keep parallel work apart: 0001-0099 core pipeline, 0100-0199 risk model,
0200-0299 users and audit, 0300-0399 alert lifecycle, 0400-0499 population analytics,
0500-0599 patient notes, 0700-0799 users' e-mail and wards, 0900-0999 security and
privacy.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cassandra.cluster import Session

from backend.settings import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_KEYSPACE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_DAY = 86_400

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
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {cfg.keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {cfg.replication_factor}}}"
    )
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {cfg.keyspace}.schema_migrations ("
        "version text PRIMARY KEY, checksum text, applied_at timestamp)"
    )
    done = {
        r["version"]: r["checksum"]
        for r in session.execute(f"SELECT version, checksum FROM {cfg.keyspace}.schema_migrations")
    }
    applied: list[str] = []
    for m in discover():
        if m.version in done:
            if done[m.version] != m.checksum:
                log.warning("migration %s changed after it was applied", m.version)
            continue
        for statement in split_statements(render(m.text, settings)):
            session.execute(statement, timeout=60)
        session.execute(
            f"INSERT INTO {cfg.keyspace}.schema_migrations (version, checksum, applied_at) "
            "VALUES (%s, %s, toTimestamp(now()))",
            (m.version, m.checksum),
        )
        applied.append(m.version)
        log.info("applied migration %s", m.version)
    apply_retention(session, settings)
    return applied


def apply_retention(session: Session, settings: Settings) -> None:
    cfg = settings.cassandra
    for table, attr in RETENTION.items():
        seconds = getattr(cfg, attr) * _DAY
        session.execute(
            f"ALTER TABLE {cfg.keyspace}.{table} WITH default_time_to_live = {seconds}"
        )

"""Erasing a patient's rows from every table of the keyspace (the decision, the
pseudonym and the audit are ``backend.privacy.erase``'s).

Every table of the keyspace must be classified in :data:`TABLES` (the erasure refuses to
run when one is not: a table added later cannot silently keep patient data). The
classes:

``by_partition``  the patient id is the whole partition key: one partition delete
                  (admissions, alerts_by_patient, notes, waveform channels, risk scores)
``by_partitions`` the patient id is part of the partition key (per day / hour): the
                  patient's partitions are found with ``SELECT DISTINCT`` over the
                  table's partition keys, then deleted (readings, minute extremes,
                  waveforms)
``by_column``     a regular column holds the patient id: the rows are found with a
                  filtered scan and deleted by primary key (beds, latest state, the alerts
                  and their ward indexes, dead letters, risk scores by model)
``by_alert``      rows about the patient's alerts (history, manager work list, e-mail
                  outbox and its pending list, acknowledgement links)
``raw``           ``raw_messages``, keyed by Kafka position: the positions come from the
                  patient's readings (``kafka_partition``/``kafka_offset``, written by the
                  stream job's sink) and dead letters; while readings without a position
                  exist, the raw partitions are scanned for the patient's Kafka key
``audit``         the audit log keeps who did what, but the patient id in it is replaced
                  by the erasure's keyed pseudonym
``aggregate``     population aggregates: no patient data; recomputed for the days the
                  patient counted in
``none``          holds no patient data

Costs: the ``by_partitions`` scans read every partition key of those tables (not the
rows); ``by_column`` scans read the table. Erasure is rare and runs off the clinical
path; on a hospital's volume that is minutes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from cassandra.cluster import Session
from cassandra.query import SimpleStatement

from backend.storage.raw import OFFSET_BUCKET

TABLES: dict[str, str] = {
    "admissions": "by_partition",
    "alerts_by_patient": "by_partition",
    "notes_by_patient": "by_partition",
    "waveform_channels_by_patient": "by_partition",
    "risk_scores_by_patient": "by_partition",
    "readings_by_patient_day": "by_partitions",
    "readings_by_patient_minute": "by_partitions",
    "waveforms_by_patient_hour": "by_partitions",
    "beds_by_ward": "by_column",
    "latest_by_ward": "by_column",
    "alerts": "by_column",
    "active_alerts_by_ward": "by_column",
    "alerts_by_ward_day": "by_column",
    "deadletters_by_day": "by_column",
    "risk_scores_by_model_day": "by_column",
    "alert_history": "by_alert",
    "alert_manager_open": "by_alert",
    "email_outbox": "by_alert",
    "email_outbox_pending": "by_alert",
    "alert_ack_links": "by_alert",
    "raw_messages": "raw",
    "audit_by_day": "audit",
    "audit_by_actor_day": "audit",
    "audit_by_patient_day": "audit",
    "population_by_region": "aggregate",
    "population_by_ward": "aggregate",
    "population_days": "aggregate",
    "population_surges": "aggregate",
    "users": "none",
    "web_sessions": "none",
    "login_throttle": "none",
    "schema_migrations": "none",
    "risk_models": "none",
    "risk_model_versions": "none",
    "risk_model_activations": "none",
    "risk_model_evaluations": "none",
    "risk_model_evaluation_docs": "none",
}
_FETCH = 1000


@dataclass
class ErasureReport:
    pseudonym: str
    deleted: dict[str, int] = field(default_factory=dict)  # table -> rows/partitions
    audit_rewritten: int = 0
    days: set[date] = field(default_factory=set)  # days the aggregates must be recomputed
    raw_scanned: bool = False  # raw partitions were scanned (readings without a position)

    def add(self, table: str, n: int = 1) -> None:
        self.deleted[table] = self.deleted.get(table, 0) + n

    def summary(self) -> str:
        parts = [f"{t}={n}" for t, n in sorted(self.deleted.items()) if n]
        return ", ".join(parts) or "nothing found"


def unclassified_tables(session: Session, keyspace: str) -> list[str]:
    """Tables of the keyspace that :data:`TABLES` does not classify."""
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE "
                           "keyspace_name = %s", (keyspace,))
    return sorted(r["table_name"] for r in rows if r["table_name"] not in TABLES)


def _key_columns(session: Session, keyspace: str, table: str) -> tuple[list[str], list[str]]:
    """(partition key columns, clustering columns), in order."""
    rows = list(session.execute(
        "SELECT column_name, kind, position FROM system_schema.columns WHERE "
        "keyspace_name = %s AND table_name = %s", (keyspace, table)))
    part = sorted((r for r in rows if r["kind"] == "partition_key"), key=lambda r: r["position"])
    clus = sorted((r for r in rows if r["kind"] == "clustering"), key=lambda r: r["position"])
    return [r["column_name"] for r in part], [r["column_name"] for r in clus]


def _scan(session: Session, cql: str, params: tuple = ()) -> Iterable[dict]:
    return session.execute(SimpleStatement(cql, fetch_size=_FETCH), params, timeout=120)


def _delete(session: Session, table: str, keys: dict[str, object]) -> None:
    where = " AND ".join(f"{c} = %s" for c in keys)
    session.execute(f"DELETE FROM {table} WHERE {where}", tuple(keys.values()))


def _day(value: object) -> date | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).date()
    return None


class PatientEraser:
    """Finds and deletes one patient's rows, table by table (:func:`erase_rows`)."""

    def __init__(self, session: Session, keyspace: str, raw_topic: str, patient_id: str,
                 report: ErasureReport) -> None:
        self.s = session
        self.ks = keyspace
        self.raw_topic = raw_topic
        self.pid = patient_id
        self.report = report
        self.alert_ids: set[str] = set()
        self.positions: set[tuple[str, int, int]] = set()  # (topic, partition, offset)
        self.unpositioned = 0  # readings without a Kafka position (older sinks)

    # -- finding --------------------------------------------------------------------------
    def collect(self) -> None:
        adm = self.s.execute("SELECT admitted_ts, discharged_ts FROM admissions WHERE "
                             "patient_id = %s", (self.pid,)).one()
        if adm and adm.get("admitted_ts"):
            first = _day(adm["admitted_ts"])
            last = _day(adm.get("discharged_ts")) or datetime.now(UTC).date()
            d = first
            while d and d <= last:
                self.report.days.add(d)
                d += timedelta(days=1)
        for r in self.s.execute("SELECT alert_id FROM alerts_by_patient WHERE patient_id = %s",
                                (self.pid,)):
            self.alert_ids.add(r["alert_id"])
        for r in _scan(self.s, "SELECT alert_id, detected_ts FROM alerts WHERE patient_id = %s"
                       " ALLOW FILTERING", (self.pid,)):
            self.alert_ids.add(r["alert_id"])
            if _day(r.get("detected_ts")):
                self.report.days.add(_day(r["detected_ts"]))

    # -- deleting -------------------------------------------------------------------------
    def by_partition(self, table: str) -> None:
        _delete(self.s, table, {"patient_id": self.pid})
        self.report.add(table)

    def by_partitions(self, table: str) -> None:
        part, _ = _key_columns(self.s, self.ks, table)
        cols = ", ".join(part)
        for row in list(_scan(self.s, f"SELECT DISTINCT {cols} FROM {table}")):
            if row.get("patient_id") != self.pid:
                continue
            keys = {c: row[c] for c in part}
            if table == "readings_by_patient_day":
                self._reading_positions(keys)
            _delete(self.s, table, keys)
            self.report.add(table)

    def _reading_positions(self, keys: dict[str, object]) -> None:
        where = " AND ".join(f"{c} = %s" for c in keys)
        for r in _scan(self.s, "SELECT kafka_partition, kafka_offset FROM "
                       f"readings_by_patient_day WHERE {where}", tuple(keys.values())):
            if r.get("kafka_offset") is None:
                self.unpositioned += 1
            else:
                self.positions.add((self.raw_topic, r["kafka_partition"],
                                    r["kafka_offset"]))

    def by_column(self, table: str) -> None:
        part, clus = _key_columns(self.s, self.ks, table)
        cols = ", ".join(dict.fromkeys([*part, *clus]))
        extra = ", topic, kafka_partition, kafka_offset" if table == "deadletters_by_day" else ""
        found = list(_scan(self.s, f"SELECT {cols}{extra} FROM {table} WHERE patient_id = %s"
                           " ALLOW FILTERING", (self.pid,)))
        for row in found:
            if table == "deadletters_by_day":
                self.positions.add((row["topic"], row["kafka_partition"], row["kafka_offset"]))
            _delete(self.s, table, {c: row[c] for c in dict.fromkeys([*part, *clus])})
        self.report.add(table, len(found))

    def by_alert(self, table: str) -> None:
        if not self.alert_ids:
            return
        n = 0
        if table == "alert_history":
            for a in self.alert_ids:
                _delete(self.s, table, {"alert_id": a})
                n += 1
        elif table == "alert_manager_open":
            for r in list(_scan(self.s, "SELECT shard, alert_id FROM alert_manager_open")):
                if r["alert_id"] in self.alert_ids:
                    _delete(self.s, table, {"shard": r["shard"], "alert_id": r["alert_id"]})
                    n += 1
        elif table == "email_outbox":
            for r in list(_scan(self.s, "SELECT msg_id, alert_id FROM email_outbox")):
                if r["alert_id"] in self.alert_ids:
                    _delete(self.s, table, {"msg_id": r["msg_id"]})
                    n += 1
        elif table == "email_outbox_pending":
            for r in list(_scan(self.s, "SELECT shard, msg_id FROM email_outbox_pending")):
                if r["msg_id"].split(":", 1)[0] in self.alert_ids:
                    _delete(self.s, table, {"shard": r["shard"], "msg_id": r["msg_id"]})
                    n += 1
        elif table == "alert_ack_links":
            for r in list(_scan(self.s, "SELECT link_id, alert_id FROM alert_ack_links")):
                if r["alert_id"] in self.alert_ids:
                    _delete(self.s, table, {"link_id": r["link_id"]})
                    n += 1
        self.report.add(table, n)

    def raw(self, table: str) -> None:
        n = 0
        for topic, partition, offset in sorted(self.positions):
            _delete(self.s, table, {"topic": topic, "kafka_partition": partition,
                                    "offset_bucket": offset // OFFSET_BUCKET,
                                    "kafka_offset": offset})
            n += 1
        if self.unpositioned:
            # Readings stored before the sink recorded positions: find their raw records
            # by the Kafka key (the patient id, by the wire contract) - a scan.
            self.report.raw_scanned = True
            key = self.pid.encode()
            for r in list(_scan(self.s, "SELECT topic, kafka_partition, offset_bucket, "
                                "kafka_offset, msg_key, payload FROM raw_messages")):
                if r.get("msg_key") == key or _mentions(r.get("payload"), key):
                    _delete(self.s, table, {c: r[c] for c in (
                        "topic", "kafka_partition", "offset_bucket", "kafka_offset")})
                    n += 1
        self.report.add(table, n)

    def audit(self, pseudo: str, swaps: Mapping[str, str]) -> None:
        """Replace, in the audit tables, each key of ``swaps`` (the patient id, the ids
        of their alerts) by its value (pseudonyms); the patient's own index moves to
        ``pseudo``."""
        pid = self.pid
        moved = 0

        def swap(text: object) -> object:
            if not isinstance(text, str):
                return text
            for old, new in swaps.items():
                text = text.replace(old, new)
            return text

        part, _ = _key_columns(self.s, self.ks, "audit_by_patient_day")
        for row in list(_scan(self.s, "SELECT DISTINCT patient_id, day FROM "
                              "audit_by_patient_day")):
            if row["patient_id"] != pid:
                continue
            for r in list(_scan(self.s, "SELECT * FROM audit_by_patient_day WHERE patient_id"
                                " = %s AND day = %s", (pid, row["day"]))):
                self.s.execute(
                    "INSERT INTO audit_by_patient_day (patient_id, day, event_id, actor, action,"
                    " target_type, detail, via) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (pseudo, r["day"], r["event_id"], r["actor"], r["action"],
                     r["target_type"], swap(r.get("detail")), r["via"]))
                moved += 1
            _delete(self.s, "audit_by_patient_day", {c: row[c] for c in part})
        for table in ("audit_by_day", "audit_by_actor_day"):
            for r in list(_scan(self.s, f"SELECT * FROM {table}")):
                target, detail = r.get("target_id"), r.get("detail") or ""
                if target not in swaps and not any(old in detail for old in swaps):
                    continue
                cols = [c for c in r if r[c] is not None]
                values = [swaps.get(r[c], r[c]) if c == "target_id"
                          else swap(r[c]) if c == "detail" else r[c] for c in cols]
                self.s.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                               f"({', '.join(['%s'] * len(cols))})", tuple(values))
                moved += 1
        self.report.audit_rewritten = moved


def _mentions(payload: bytes | None, key: bytes) -> bool:
    """Does a raw JSON payload name the patient (``"patient_id":"P"``)?"""
    if not payload:
        return False
    return (b'"patient_id":"' + key + b'"') in payload.replace(b" ", b"")


def label(session: Session, patient_id: str) -> str:
    """The patient's label on the ward screens ("" if none)."""
    row = session.execute("SELECT label FROM admissions WHERE patient_id = %s",
                          (patient_id,)).one()
    return (row or {}).get("label") or ""


def erase_rows(session: Session, keyspace: str, raw_topic: str, patient_id: str,
               report: ErasureReport) -> PatientEraser:
    """Delete the patient's rows from every classified table that exists (the audit
    tables are left to :meth:`PatientEraser.audit`); returns the eraser, which knows
    the patient's alerts."""
    eraser = PatientEraser(session, keyspace, raw_topic, patient_id, report)
    eraser.collect()
    order = defaultdict(list)
    for table, kind in TABLES.items():
        order[kind].append(table)
    existing = _existing(session, keyspace)
    # readings and dead letters first: they tell where the raw messages are
    for kind in ("by_partitions", "by_column", "by_alert", "by_partition", "raw"):
        for table in order[kind]:
            if table in existing:
                getattr(eraser, kind)(table)
    return eraser


def _existing(session: Session, keyspace: str) -> set[str]:
    rows = session.execute("SELECT table_name FROM system_schema.tables WHERE "
                           "keyspace_name = %s", (keyspace,))
    return {r["table_name"] for r in rows}

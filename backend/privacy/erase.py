"""Erasing a patient: every row of every table that holds their data.

``erase_patient(session, settings, patient_id, reason=..., actor=...)`` removes the
patient from the keyspace and returns what it did. Every table of the keyspace must be
classified in ``backend.storage.erasure.TABLES`` - the command refuses to run when one
is not (a table added later cannot silently keep patient data); that module says how each
class of table is erased.

Costs: the ``by_partitions`` scans read every partition key of those tables (not the
rows); ``by_column`` scans read the table. Erasure is rare and runs off the clinical
path; on a hospital's volume that is minutes, and documented in the README. The rows
are found and deleted by ``backend.storage.erasure``.

What stays: Kafka keeps the raw records until ``kafka.retention_hours`` expires; backups
keep what they held. The README says so.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from datetime import date

from backend import audit
from backend.identifiers import identifier_problem
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.erasure import TABLES, ErasureReport, erase_rows, label, unclassified_tables

log = logging.getLogger(__name__)

__all__ = ["TABLES", "ErasureError", "ErasureReport", "erase_patient", "pseudonym",
           "unclassified_tables"]


class ErasureError(ValueError):
    """The erasure cannot be done (nothing was deleted); the message says why."""


def pseudonym(patient_id: str, settings: Settings) -> str:
    """The keyed hash that stands for an erased patient in the audit log."""
    key = (settings.privacy.pseudonym_key.get_secret_value()
           or settings.secret_key.get_secret_value() or "icu-monitor").encode()
    digest = hmac.new(key, b"erased-patient\0" + patient_id.encode(), hashlib.sha256)
    return "erased-" + digest.hexdigest()[:24]


def _alert_pseudonym(alert_id: str, settings: Settings) -> str:
    return pseudonym("alert\0" + alert_id, settings)


def erase_patient(session: Session, settings: Settings, patient_id: str, *, reason: str,
                  actor: str, via: str = "cli",
                  recompute: Callable[[set[date]], None] | None = None) -> ErasureReport:
    """Remove ``patient_id`` from every table (see the module doc), audit it without
    PHI, and recompute the population aggregates of the days they counted in (with
    ``recompute(days)``; ``None``: the caller does it and is told the days)."""
    problem = identifier_problem(patient_id, "patient id")
    if problem:
        raise ErasureError(problem)
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise ErasureError("give the reason for the erasure (e.g. the request's reference)")
    shown = label(session, patient_id)
    if patient_id in reason or (len(shown) >= 3 and shown in reason):
        raise ErasureError("the reason must not name the patient (it goes into the audit "
                           "log, which keeps no patient data of an erased patient)")
    unknown = unclassified_tables(session, settings.cassandra.keyspace)
    if unknown:
        raise ErasureError("tables not classified for erasure (add them to "
                           f"backend/storage/erasure.py TABLES): {', '.join(unknown)}")
    pseudo = pseudonym(patient_id, settings)
    report = ErasureReport(pseudo)
    eraser = erase_rows(session, settings.cassandra.keyspace, settings.kafka.topic_raw,
                        patient_id, report)
    eraser.audit(pseudo, {patient_id: pseudo, **{
        a: _alert_pseudonym(a, settings) for a in eraser.alert_ids}})
    audit.record(session, actor, audit.PATIENT_ERASED, "pseudonym", pseudo,
                 f"reason: {reason[:500]}; {report.summary()}"[:audit.MAX_DETAIL], via)
    log.info("patient erased (%s) by %s: %s", pseudo, actor, report.summary())
    if recompute is not None and report.days:
        recompute(report.days)
    return report

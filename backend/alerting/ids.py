"""Deterministic alert ids.

An alert is identified by (patient, rule, onset), where onset is the device timestamp at
which the alarm condition started. Re-processing the same readings from the same state
(a Spark batch replayed after a restart) therefore yields the same id, and every consumer
(Cassandra upserts, the alert manager, the web app) de-duplicates on it.
"""

from __future__ import annotations

import uuid

__all__ = ["ALERT_NAMESPACE", "alert_id"]

# Fixed for ever: changing it changes every alert id.
ALERT_NAMESPACE = uuid.UUID("5b0f6a2e-3c1d-5e7a-9f21-0c6b1d8e4a73")


def alert_id(patient_id: str, rule: str, onset_ts: int) -> str:
    """A UUIDv5 of ``patient_id|rule|onset_ts`` (text form, 36 characters)."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{patient_id}|{rule}|{int(onset_ts)}"))

"""Alarms: the rule table (``rules``), per-patient stateful evaluation (``evaluation``)
and deterministic alert ids (``ids``). Pure Python, no Spark."""

from backend.alerting.evaluation import (
    AlertChange,
    Duplicate,
    PatientState,
    ScoredReading,
    on_timeout,
    process,
)
from backend.alerting.ids import alert_id
from backend.alerting.rules import RULES, RULES_BY_ID, VALIDITY_SECONDS, Rule, Snapshot

__all__ = [
    "RULES",
    "RULES_BY_ID",
    "VALIDITY_SECONDS",
    "AlertChange",
    "Duplicate",
    "PatientState",
    "Rule",
    "ScoredReading",
    "Snapshot",
    "alert_id",
    "on_timeout",
    "process",
]

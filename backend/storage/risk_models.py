"""The model registry's mirror in Cassandra: ``risk_models``, ``risk_model_versions``,
``risk_model_activations``, ``risk_model_evaluations`` and
``risk_model_evaluation_docs`` (the registry itself lives on disk,
``backend.risk.registry``). Every write is an idempotent upsert."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from cassandra.cluster import Session

from backend.storage.statements import prepared

METRIC_COLUMNS = (
    "auroc_hourly", "auprc_hourly", "auroc_patient", "auprc_patient", "sensitivity_hourly",
    "specificity_hourly", "sensitivity_patient", "specificity_patient", "utility",
    "alerts_per_patient_day", "median_lead_hours", "brier",
)


class RiskModelStore:
    """Statements on ``keyspace``'s tables (named in full: the registry CLI's session
    need not be bound to the keyspace)."""

    def __init__(self, session: Session, keyspace: str) -> None:
        self.session = session
        ks = keyspace
        self._model = prepared(session,
            f"INSERT INTO {ks}.risk_models (model_name, created_ts, version, data_sha256,"
            " source_sha256, features, threshold, spark_version, params, validation_metrics,"
            " test_metrics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self._version = prepared(session,
            f"INSERT INTO {ks}.risk_model_versions (version, model_name, created_ts,"
            " metadata_json) VALUES (?, ?, ?, ?)")
        self._activation = prepared(session,
            f"INSERT INTO {ks}.risk_model_activations (model_name, ts, version, action,"
            " previous) VALUES (?, ?, ?, ?, ?)")
        self._evaluation = prepared(session,
            f"INSERT INTO {ks}.risk_model_evaluations (version, method, kind, evaluated_ts,"
            f" threshold, {', '.join(METRIC_COLUMNS)}, model_alerts_at_equal_sensitivity)"
            f" VALUES ({', '.join(['?'] * (6 + len(METRIC_COLUMNS)))})")
        self._evaluation_doc = prepared(session,
            f"INSERT INTO {ks}.risk_model_evaluation_docs (version, evaluated_ts, payload)"
            " VALUES (?, ?, ?)")

    def write_model(self, model_name: str, created: datetime, version: str, data_sha256: str,
                    source_sha256: str | None, features: Sequence[str], threshold: float,
                    spark_version: str, params_json: str, validation: Mapping[str, float],
                    test: Mapping[str, float], metadata_json: str) -> None:
        """A version's row in ``risk_models`` and its full metadata document."""
        self.session.execute(self._model, (
            model_name, created, version, data_sha256, source_sha256, list(features),
            threshold, spark_version, params_json, dict(validation), dict(test)))
        self.session.execute(self._version, (version, model_name, created, metadata_json))

    def write_activation(self, model_name: str, ts: datetime, version: str, action: str,
                         previous: str | None) -> None:
        self.session.execute(self._activation, (model_name, ts, version, action, previous))

    def write_evaluation(self, version: str, evaluated: datetime,
                         rows: Sequence[Mapping[str, object]], doc_json: str) -> None:
        """The evaluation table (one row per method and kind) and its JSON document."""
        for row in rows:
            eq = row.get("equal_sensitivity") or {}
            assert isinstance(eq, Mapping)
            self.session.execute(self._evaluation, (
                version, row["method"], row["kind"], evaluated, row.get("threshold"),
                *[row.get(c) for c in METRIC_COLUMNS],
                eq.get("model_alerts_per_patient_day")))
        self.session.execute(self._evaluation_doc, (version, evaluated, doc_json))

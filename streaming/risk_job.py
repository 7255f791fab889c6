"""The risk stream: Kafka ``vitals.validated`` -> hourly sepsis risk per patient ->
Cassandra (scores, risk alerts) + Kafka ``alerts.events``.

    validated readings --groupBy(patient key)--> applyInPandasWithState(score)
                       --foreachBatch--> RiskSink (Cassandra, then one Kafka transaction)

A query of its own, next to the vitals query (``streaming/vitals_job.py``), with its own
checkpoint (``risk_checkpoint_dir``): the hourly rows, the alert state and the Kafka
offsets are checkpointed together, so after a crash it resumes with the state it had and
re-processes at most the last micro-batch, which yields the same scores (upserts by hour)
and the same alert ids (raised with ``IF NOT EXISTS``, published in a Kafka transaction
that records the batch id, so never twice). The clinical logic is ``backend.risk.live``;
the model is the registry's active one, re-checked every
``settings.risk.model_recheck_seconds`` (``backend.risk.registry.ActiveModel``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
from pydantic import ValidationError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout
from pyspark.sql.types import StringType, StructField, StructType

from backend.messages import AlertEvent, ValidatedReading
from backend.risk.live import HourScore, LiveReading, PatientRiskState, process
from backend.risk.registry import ActiveModel
from backend.settings import Settings
from backend.storage.alerts import AlertStore
from backend.storage.cassandra import connect
from backend.storage.risk_scores import RiskScoreStore
from streaming.alarm_evaluator import CensusCache
from streaming.kafka_io import TransactionalPublisher, kafka_source

log = logging.getLogger(__name__)

RISK_QUERY = "risk"
OUTPUT_SCHEMA = StructType([
    StructField("kind", StringType(), False),  # "score" | "alert"
    StructField("patient_id", StringType(), True),
    StructField("payload", StringType(), False),
])
OUTPUT_COLUMNS = [f.name for f in OUTPUT_SCHEMA.fields]
STATE_SCHEMA = StructType([StructField("json", StringType(), False)])


def risk_checkpoint_dir(settings: Settings) -> Path:
    """Next to the vitals job's checkpoint (``.../vitals`` -> ``.../vitals-risk``)."""
    cp = settings.spark.checkpoint_dir
    return cp.with_name(f"{cp.name}-risk")


# Per Python worker (workers are reused): the model and the census, keyed by settings.
_MODELS: dict[str, ActiveModel] = {}
_CENSUS: dict[str, CensusCache] = {}


def _model(settings: Settings) -> ActiveModel:
    key = str(settings.cache_dir)
    if key not in _MODELS:
        _MODELS[key] = ActiveModel(settings, settings.risk.model_recheck_seconds)
    return _MODELS[key]


def _census(settings: Settings) -> CensusCache:
    key = settings.cassandra.keyspace
    if key not in _CENSUS:
        _CENSUS[key] = CensusCache(settings)
    return _CENSUS[key]


def _live(value: bytes) -> LiveReading | None:
    try:
        r = ValidatedReading.model_validate_json(value)
    except ValidationError:
        return None
    return LiveReading(ts=r.ts, ward=r.ward, bed=r.bed,
                       vitals={str(k): v for k, v in r.vitals.items()})


def make_scorer(settings: Settings) -> Callable:
    """The function for ``applyInPandasWithState``, closed over the settings."""
    cfg = settings.risk
    ttl_ms = int(cfg.state_ttl_hours * 3_600_000)

    def score(key: tuple, pdfs: Iterator[pd.DataFrame],
              state: GroupState) -> Iterator[pd.DataFrame]:
        patient = key[0]
        if state.hasTimedOut:  # silent for state_ttl_hours: forget the patient
            state.remove()
            return
        readings: list[LiveReading] = []
        bad = 0
        for pdf in pdfs:
            for value in pdf["value"]:
                r = _live(value) if value is not None else None
                if r is None:
                    bad += 1
                else:
                    readings.append(r)
        if bad:  # produced by our own pipeline: a schema mismatch, not patient data
            log.error("risk scorer: %d unreadable validated readings skipped", bad)
        if patient is None or not readings:
            return
        pstate = (PatientRiskState.from_json(state.get[0]) if state.exists
                  else PatientRiskState(patient))
        active = _model(settings)
        model = active.get()
        if active.error:
            log.error("risk scorer: %s", active.error)
        admission = _census(settings).get(patient) if pstate.admitted_ts is None else None
        pstate, scores, alerts = process(pstate, readings, admission=admission, model=model,
                                         cfg=cfg, now_ms=int(time.time() * 1000))
        state.update((pstate.to_json(),))
        state.setTimeoutDuration(ttl_ms)
        out = [("score", patient, s.to_json()) for s in scores]
        out += [("alert", patient, a.model_dump_json()) for a in alerts]
        if out:
            yield pd.DataFrame(out, columns=OUTPUT_COLUMNS)

    return score


class RiskSink:
    """foreachBatch: scores and alerts into Cassandra, then the alerts in one Kafka
    transaction (skipped when this batch id was already published)."""

    def __init__(self, settings: Settings, name: str = RISK_QUERY,
                 checkpoint: Path | None = None) -> None:
        self.settings = settings
        self.session = connect(settings.cassandra, wait_seconds=60)
        self.scores = RiskScoreStore(self.session)
        self.alerts = AlertStore(self.session)
        self.publisher = TransactionalPublisher(settings.kafka, name, checkpoint)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        rows = batch.toPandas()  # runs the batch: the Kafka read, the state, the scoring
        if not rows.empty:
            self.write(rows, batch_id, collect_ms=round((time.monotonic() - started) * 1000))

    def write(self, rows: pd.DataFrame, batch_id: int, collect_ms: int = 0) -> None:
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        scores = [HourScore.from_json(p) for p in rows.loc[rows["kind"] == "score", "payload"]]
        alerts = [AlertEvent.model_validate_json(p)
                  for p in rows.loc[rows["kind"] == "alert", "payload"]]
        self.scores.write(scores, now_ms)
        stored_ms = round((time.monotonic() - started) * 1000)
        for a in alerts:
            if a.event == "raised":
                self.alerts.raise_alert(a)
            else:
                self.alerts.clear_alert(a)
        topic = self.settings.kafka.topic_alerts
        published = self.publisher.publish_batch(
            batch_id, [(topic, a.patient_id.encode(), a.model_dump_json().encode())
                       for a in alerts])
        versions = sorted({s.model_version for s in scores})
        log.info("risk batch %d: %d hourly scores (model %s), %d alert events%s "
                 "(collect %d ms, scores stored %d ms, total %d ms)", batch_id,
                 len(scores), ", ".join(versions) or "-", len(alerts),
                 "" if published else " (already published: replay)", collect_ms, stored_ms,
                 collect_ms + round((time.monotonic() - started) * 1000))

    def close(self) -> None:
        self.publisher.close()
        self.session.cluster.shutdown()


def start_risk_query(spark: SparkSession, settings: Settings, *,
                     name: str = RISK_QUERY) -> tuple[StreamingQuery, RiskSink]:
    validated = (
        kafka_source(spark, settings, [settings.kafka.topic_validated],
                     max_offsets=settings.spark.max_offsets_per_trigger)
    )
    keyed = validated.select(F.col("key").cast("string").alias("patient_key"), "value")
    scored = keyed.groupBy("patient_key").applyInPandasWithState(
        make_scorer(settings),
        outputStructType=OUTPUT_SCHEMA,
        stateStructType=STATE_SCHEMA,
        outputMode="append",
        timeoutConf=GroupStateTimeout.ProcessingTimeTimeout,
    )
    sink = RiskSink(settings, name, checkpoint=risk_checkpoint_dir(settings))
    writer = (
        scored.writeStream.queryName(name)
        .foreachBatch(sink)
        .option("checkpointLocation", str(risk_checkpoint_dir(settings)))
    )
    writer = writer.trigger(processingTime=f"{settings.risk.trigger_seconds} seconds")
    return writer.start(), sink


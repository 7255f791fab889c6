"""The per-patient stateful step of the stream job, run in Spark's Python workers.

Spark groups the raw Kafka records by key (the patient id) and calls ``evaluate`` with
that patient's new records and its state. All clinical logic is in ``backend``; this
module only adapts Spark's rows and state to it. The state is one JSON string, so Spark
checkpoints it with the Kafka offsets and a restart resumes exactly where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from pyspark.sql.streaming.state import GroupState
from pyspark.sql.types import (
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from backend.alerting.evaluation import (
    AlertChange,
    Duplicate,
    PatientState,
    ScoredReading,
    on_timeout,
    process,
)
from backend.census import Admission
from backend.messages import AlertEvent, ValidatedReading
from backend.settings import Settings
from backend.validation import Accepted, Reading, Rejection, RejectReason, validate

# Every input record comes out exactly once as a "reading" or a "reject" row carrying its
# original bytes and Kafka position; "field_reject" and "alert" rows come in addition.
OUTPUT_SCHEMA = StructType([
    StructField("kind", StringType(), False),
    StructField("patient_id", StringType(), True),
    StructField("ts", LongType(), True),
    StructField("payload", StringType(), True),
    StructField("topic", StringType(), True),
    StructField("partition", IntegerType(), True),
    StructField("offset", LongType(), True),
    StructField("kafka_ts", LongType(), True),
    StructField("raw_key", BinaryType(), True),
    StructField("raw_value", BinaryType(), True),
])
OUTPUT_COLUMNS = [f.name for f in OUTPUT_SCHEMA.fields]
STATE_SCHEMA = StructType([StructField("json", StringType(), False)])

_CENSUS_NEGATIVE_TTL_S = 2.0


class CensusCache:
    """Admissions looked up in Cassandra once per patient and kept in the worker.

    A patient not (yet) admitted is re-checked after a short time, so a reading that
    races its admission is rejected at most for that moment, never for good.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = None
        self._known: dict[str, Admission] = {}
        self._unknown: dict[str, float] = {}

    def _db(self):
        if self._session is None:
            from backend.storage.cassandra import connect

            self._session = connect(self._settings.cassandra)
        return self._session

    def get(self, patient_id: str) -> Admission | None:
        hit = self._known.get(patient_id)
        if hit is not None:
            return hit
        checked = self._unknown.get(patient_id)
        if checked is not None and time.monotonic() - checked < _CENSUS_NEGATIVE_TTL_S:
            return None
        from backend.storage import census

        found = census.get(self._db(), patient_id)
        if found is None or found.ward is None:
            self._unknown[patient_id] = time.monotonic()
            return None
        self._known[patient_id] = found
        return found


_CACHES: dict[str, CensusCache] = {}


def _census(settings: Settings) -> CensusCache:
    key = settings.cassandra.keyspace
    if key not in _CACHES:
        _CACHES[key] = CensusCache(settings)
    return _CACHES[key]


def _ms(value: Any) -> int:
    return int(pd.Timestamp(value).value // 1_000_000)


def _validated(s: ScoredReading, now_ms: int) -> ValidatedReading:
    r = s.reading
    return ValidatedReading(
        patient_id=r.patient_id, ward=r.ward, bed=r.bed, device_id=r.device_id, seq=r.seq,
        ts=r.ts, vitals=dict(r.values), carried=dict(s.carried),
        sensors_off=sorted(r.sensors_off),
        news2=s.news2.total if s.news2 else None,
        news2_band=s.news2.band.value if s.news2 else None,
        news2_complete=bool(s.news2 and s.news2.complete),
        qsofa=s.qsofa.score if s.qsofa else None,
        o2_supplemental=r.o2_supplemental, consciousness=r.consciousness,
        processed_ts=now_ms,
    )


def _alert(c: AlertChange, a: Admission | None, patient_id: str, now_ms: int) -> AlertEvent:
    return AlertEvent(
        alert_id=c.alert_id, event=c.event, patient_id=patient_id,
        ward=a.ward if a else "", bed=a.bed if a else "", rule=c.rule, priority=c.priority,
        message=c.message, values=c.values, onset_ts=c.onset_ts, reading_ts=c.reading_ts,
        detected_ts=now_ms,
    )


def _reject_payload(rej: Rejection, field: str = "") -> str:
    return json.dumps({"reason": rej.reason.value, "detail": rej.detail, "field": field})


def make_evaluator(settings: Settings) -> Callable:
    """The function for ``applyInPandasWithState``, closed over the settings."""
    cfg = settings.alerting
    timeout_ms = int(cfg.stale_after_seconds * 1000)

    def evaluate(
        key: tuple, pdfs: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        patient_key = key[0]
        now_ms = int(time.time() * 1000)
        census = _census(settings)
        pstate = (
            PatientState.from_json(state.get[0]) if state.exists
            else PatientState.new(patient_key or "")
        )
        out: list[tuple] = []

        if state.hasTimedOut:
            admission = census.get(patient_key) if patient_key else None
            pstate, changes = on_timeout(pstate, admission=admission, now_ms=now_ms, cfg=cfg)
            out.extend(
                ("alert", patient_key, c.reading_ts,
                 _alert(c, admission, patient_key, now_ms).model_dump_json(),
                 None, None, None, None, None, None)
                for c in changes
            )
            if admission is None:
                state.remove()
            else:
                state.update((pstate.to_json(),))
                state.setTimeoutDuration(timeout_ms)
            if out:
                yield pd.DataFrame(out, columns=OUTPUT_COLUMNS)
            return

        accepted: list[tuple[Reading, tuple]] = []
        for pdf in pdfs:
            for rec in pdf.itertuples(index=False):
                pos = (rec.topic, int(rec.partition), int(rec.offset), _ms(rec.timestamp),
                       rec.key_bytes, rec.value)
                outcome = validate(
                    rec.value if rec.value is not None else b"",
                    received_ts=pos[3], census=census, cfg=cfg,
                )
                if isinstance(outcome, Accepted) and outcome.reading.patient_id != patient_key:
                    outcome = Rejection(
                        RejectReason.SCHEMA_VIOLATION,
                        f"Kafka key {patient_key!r} differs from patient_id "
                        f"{outcome.reading.patient_id!r}",
                    )
                if isinstance(outcome, Rejection):
                    out.append(("reject", patient_key, None, _reject_payload(outcome), *pos))
                    continue
                accepted.append((outcome.reading, pos))
                out.extend(
                    ("field_reject", patient_key, outcome.reading.ts,
                     _reject_payload(fr, fr.field or ""), *pos[:4], None, None)
                    for fr in outcome.field_rejections
                )

        if accepted:
            accepted.sort(key=lambda item: (item[0].ts, item[0].seq))
            admission = census.get(patient_key)
            pstate, results = process(
                pstate, [r for r, _ in accepted], admission=admission, now_ms=now_ms, cfg=cfg
            )
            positions = iter(pos for _, pos in accepted)
            for res in results:
                if isinstance(res, AlertChange):
                    out.append(("alert", patient_key, res.reading_ts,
                                _alert(res, admission, patient_key, now_ms).model_dump_json(),
                                None, None, None, None, None, None))
                elif isinstance(res, Duplicate):
                    out.append(("reject", patient_key, res.reading.ts,
                                _reject_payload(res.rejection), *next(positions)))
                elif isinstance(res, ScoredReading):
                    out.append(("reading", patient_key, res.reading.ts,
                                _validated(res, now_ms).model_dump_json(), *next(positions)))

        if patient_key is not None:
            state.update((pstate.to_json(),))
            state.setTimeoutDuration(timeout_ms)
        if out:
            yield pd.DataFrame(out, columns=OUTPUT_COLUMNS)

    return evaluate

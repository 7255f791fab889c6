"""The per-patient stateful step of the alarm query, run in Spark's Python workers.

Spark groups the raw Kafka records by state bucket (a hash of the patient key) and calls
``evaluate`` with the bucket's new records and the state of its patients. All clinical
logic is in ``backend``; this module adapts Spark's rows and state to it and turns the
results into the Kafka messages the driver publishes (``OUTPUT_SCHEMA``: topic, key,
value), so the driver never parses or re-encodes a reading. A bucket's state is one JSON
document, checkpointed by Spark with the Kafka offsets, so a restart resumes exactly
where it stopped.

Every input record comes out exactly once: as a validated reading or as a dead letter
(field rejections and alert events come in addition). Nothing a record contains can stop
the bucket: a record the job cannot parse within its limits is dead-lettered
(``oversized``, or one of ``validate``'s reasons), and an exception that validation or the
alarm engine did not foresee dead-letters that record as ``internal_error`` while the
other records and patients of the batch go on. Only infrastructure failures (the census
in Cassandra unreachable) fail the batch, so that Spark runs it again instead of
rejecting good readings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from pyspark.sql.streaming.state import GroupState
from pyspark.sql.types import BinaryType, StringType, StructField, StructType

from backend.admission import Admission
from backend.alerting.evaluation import (
    AlertChange,
    Duplicate,
    PatientState,
    ScoredReading,
    on_timeout,
    process,
)
from backend.messages import AlertEvent, DeadLetter, ValidatedReading
from backend.settings import Settings
from backend.validation import Accepted, Reading, Rejection, RejectReason, validate

log = logging.getLogger(__name__)

# What the driver publishes: one Kafka message per row. ``kind`` lets the driver find the
# alert events (it stores them in Cassandra before publishing) without parsing the rest.
OUTPUT_SCHEMA = StructType([
    StructField("topic", StringType(), False),
    StructField("key", BinaryType(), True),
    StructField("value", BinaryType(), False),
    StructField("kind", StringType(), False),
])
OUTPUT_COLUMNS = [f.name for f in OUTPUT_SCHEMA.fields]
READING, DEAD_LETTER, ALERT = "reading", "dead_letter", "alert"
STATE_SCHEMA = StructType([StructField("json", StringType(), False)])
# The columns ``vitals_job`` hands to ``evaluate``, in this order. ``value`` is null for a
# record over ``max_record_bytes``; ``size``, ``head`` and ``sha256`` describe it instead.
# The key stays bytes: a key that is not UTF-8 must not fail the Arrow conversion of the
# whole bucket (it did, as a Spark string column).
INPUT_COLUMNS = ["key", "value", "size", "head", "sha256", "topic", "partition", "offset",
                 "timestamp"]
# {"v": 2, "patients": {patient id: PatientState.to_dict()}, "watched_ms": wall time of
# the bucket's last evaluation (absent in older checkpoints)}; a change of layout needs a
# new checkpoint directory (``streaming.vitals_job.checkpoint_location``).
BUCKET_STATE_VERSION = 2
# Beyond two ticks of the job's clock and this, the time between two evaluations of a
# bucket is time nobody watched its beds (``discount_unwatched``).
UNWATCHED_SLACK_SECONDS = 5.0

_CENSUS_NEGATIVE_TTL_S = 2.0


class CensusUnavailable(RuntimeError):
    """The census could not be read: the batch must fail and run again."""


class CensusRecordInvalid(ValueError):
    """The patient's admission record cannot be used (a corrupt row): that patient's
    records are dead-lettered, the other beds go on."""


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
        from pydantic import ValidationError

        from backend.storage import census

        try:
            found = census.get(self._db(), patient_id)
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            raise CensusRecordInvalid(f"invalid admission record ({fields})") from None
        except Exception as exc:
            raise CensusUnavailable(f"census lookup failed: {exc!r}") from exc
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


def _patient_key(key: bytes | None) -> str | None:
    """The patient a record's Kafka key names; None for no key or one that is not UTF-8
    (no patient id is: such records are rejected as a key mismatch)."""
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _ms(value: Any) -> int:
    return int(pd.Timestamp(value).value // 1_000_000)


def _validated_json(s: ScoredReading, rec: _Record, now_ms: int) -> bytes:
    r = s.reading
    # model_construct: every field comes from validated data; validating it again would
    # double the cost of a reading.
    return ValidatedReading.model_construct(
        patient_id=r.patient_id, ward=r.ward, bed=r.bed, device_id=r.device_id, seq=r.seq,
        ts=r.ts, vitals=dict(r.values), carried=dict(s.carried),
        sensors_off=sorted(r.sensors_off),
        news2=s.news2.total if s.news2 else None,
        news2_band=s.news2.band.value if s.news2 else None,
        news2_complete=bool(s.news2 and s.news2.complete),
        qsofa=s.qsofa.score if s.qsofa else None,
        o2_supplemental=r.o2_supplemental, consciousness=r.consciousness,
        processed_ts=now_ms, source_partition=rec.partition, source_offset=rec.offset,
    ).model_dump_json().encode()


def _alert_json(c: AlertChange, a: Admission | None, patient_id: str, now_ms: int) -> bytes:
    return AlertEvent(
        alert_id=c.alert_id, event=c.event, patient_id=patient_id,
        ward=a.ward if a else "", bed=a.bed if a else "", rule=c.rule, priority=c.priority,
        message=c.message, values=c.values, onset_ts=c.onset_ts, reading_ts=c.reading_ts,
        detected_ts=now_ms,
    ).model_dump_json().encode()


def _bucket_state(state: GroupState) -> tuple[dict[str, PatientState], int | None]:
    """The bucket's patients, and when the job last evaluated the bucket (or None)."""
    if not state.exists:
        return {}, None
    doc = json.loads(state.get[0])
    if doc.get("v") != BUCKET_STATE_VERSION:
        raise ValueError(f"unsupported bucket state version {doc.get('v')!r}")
    return ({pid: PatientState.from_dict(d) for pid, d in doc["patients"].items()},
            doc.get("watched_ms"))


def _bucket_json(patients: dict[str, PatientState], watched_ms: int) -> str:
    return json.dumps({"v": BUCKET_STATE_VERSION,
                       "patients": {pid: st.to_dict() for pid, st in patients.items()},
                       "watched_ms": watched_ms},
                      separators=(",", ":"))


def discount_unwatched(patients: dict[str, PatientState], watched_ms: int | None,
                       now_ms: int, grace_ms: int) -> None:
    """Time the job did not watch a bucket is not its beds' silence.

    A bed is stale when nothing of it was accepted for ``stale_after_seconds`` of wall
    time. While the job is stopped (a crash, a restart, a deployment) nobody watches, and
    the beds' readings wait on Kafka: after the restart the first micro-batch (often the
    replay of a batch cut before the stop) holds only some beds, and every other bed of
    the bucket would look silent for the whole outage and raise a false stale alarm. So
    whatever exceeds ``grace_ms`` between two evaluations of the bucket (the clock ticks
    every ``tick_seconds``) moves each bed's last accepted time forward by as much: a bed
    that is really silent is flagged ``stale_after_seconds`` of watched time after its
    last reading, later by the outage, which the ward screens show as "data delayed"."""
    if watched_ms is None:
        return
    away = now_ms - watched_ms - grace_ms
    if away <= 0:
        return
    for st in patients.values():
        if st.last_wall_ms is not None:
            st.last_wall_ms = min(now_ms, st.last_wall_ms + away)


class _Record:
    """One input record and where it came from."""

    __slots__ = ("head", "key", "offset", "partition", "received_ts", "sha256", "size",
                 "topic", "value")

    def __init__(self, key: bytes | None, value: bytes | None, size: int | None,
                 head: bytes | None, sha256: str | None, topic: str, partition: int,
                 offset: int, received_ts: int) -> None:
        self.key, self.value, self.size, self.head, self.sha256 = key, value, size, head, sha256
        self.topic, self.partition, self.offset = topic, partition, offset
        self.received_ts = received_ts


def make_evaluator(settings: Settings) -> Callable:
    """The function for ``applyInPandasWithState``, closed over the settings.

    Spark calls it once per state *bucket* and micro-batch with the new records of every
    patient hashed to that bucket, and (``KafkaSettings.topic_ticks``) once per tick of
    the job's clock, so a silent bed is flagged even when nothing else arrives. Grouping
    by bucket rather than by patient pays pyspark's per-group cost (~3 ms of CPU) a
    fixed number of times per batch instead of once per patient. Each patient's records
    keep their Kafka order (one key, one partition) and their own ``PatientState``.
    """
    cfg = settings.alerting
    topics = settings.kafka
    head_bytes = settings.spark.deadletter_head_bytes
    max_bytes = settings.spark.max_record_bytes
    # the clock calls every bucket each tick; a slow micro-batch may delay one a few s
    grace_ms = int((2 * settings.spark.tick_seconds + UNWATCHED_SLACK_SECONDS) * 1000)

    def letter(rec: _Record, reason: str, detail: str, now_ms: int,
               field: str | None = None) -> tuple:
        body = DeadLetter.about(
            rec.value if rec.value is not None else rec.head, reason=reason, detail=detail,
            field=field, topic=rec.topic, partition=rec.partition, offset=rec.offset,
            received_ts=rec.received_ts, rejected_ts=now_ms, head_bytes=head_bytes,
            key=rec.key, length=rec.size, sha256=rec.sha256 if rec.value is None else None,
        ).model_dump_json().encode()
        return (topics.topic_deadletter, rec.key, body, DEAD_LETTER)

    def reject(rec: _Record, rej: Rejection, now_ms: int) -> tuple:
        return letter(rec, rej.reason.value, rej.detail, now_ms)

    def internal_error(rec: _Record, stage: str, exc: BaseException, now_ms: int) -> tuple:
        if isinstance(exc, CensusRecordInvalid):  # our own text: names fields, no values
            return letter(rec, RejectReason.INTERNAL_ERROR.value, f"{stage} failed: {exc}",
                          now_ms)
        # The type and where it happened; an exception's message may quote the record.
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        place = (f" at {where.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:"
                 f"{where.tb_lineno}") if where is not None else ""
        log.error("internal error in %s for record %s/%d/%d: %s%s", stage, rec.topic,
                  rec.partition, rec.offset, type(exc).__name__, place)
        return letter(rec, RejectReason.INTERNAL_ERROR.value,
                      f"{stage} failed: {type(exc).__name__}{place}", now_ms)

    def emit(results: list, admission: Admission | None, patient_key: str,
             recs: Iterator[_Record], now_ms: int, out: list[tuple]) -> None:
        pk = patient_key.encode()
        for res in results:
            if isinstance(res, AlertChange):
                out.append((topics.topic_alerts, pk,
                            _alert_json(res, admission, patient_key, now_ms), ALERT))
            elif isinstance(res, Duplicate):
                out.append(reject(next(recs), res.rejection, now_ms))
            elif isinstance(res, ScoredReading):
                out.append((topics.topic_validated, pk,
                            _validated_json(res, next(recs), now_ms), READING))

    def evaluate_patient(patient_key: str | None, records: list[_Record],
                         pstate: PatientState, census: CensusCache, now_ms: int,
                         out: list[tuple]) -> PatientState:
        accepted: list[tuple[Reading, _Record]] = []
        for rec in records:
            if rec.value is None and (rec.size or 0) > max_bytes:
                out.append(letter(rec, RejectReason.OVERSIZED.value,
                                  f"{rec.size} bytes, more than the {max_bytes} a record may"
                                  " have; not parsed", now_ms))
                continue
            try:
                outcome = validate(rec.value if rec.value is not None else b"",
                                   received_ts=rec.received_ts, census=census, cfg=cfg)
                if isinstance(outcome, Accepted) and outcome.reading.patient_id != patient_key:
                    outcome = Rejection(
                        RejectReason.SCHEMA_VIOLATION,
                        f"the Kafka key differs from patient_id {outcome.reading.patient_id!r}",
                    )
            except CensusUnavailable:
                raise
            except Exception as exc:
                out.append(internal_error(rec, "validation", exc, now_ms))
                continue
            if isinstance(outcome, Rejection):
                out.append(reject(rec, outcome, now_ms))
                continue
            accepted.append((outcome.reading, rec))
            out.extend(letter(rec, fr.reason.value, fr.detail, now_ms, fr.field)
                       for fr in outcome.field_rejections)
        if not accepted:
            return pstate
        accepted.sort(key=lambda item: (item[0].ts, item[0].seq))
        admission = census.get(patient_key)  # type: ignore[arg-type]
        key = patient_key or ""
        try:
            new_state, results = process(pstate, [r for r, _ in accepted],
                                         admission=admission, now_ms=now_ms, cfg=cfg)
        except Exception:
            # Find the reading(s) at fault one by one; ``process`` gives the same results
            # for readings split over several calls, so the others are unaffected.
            for reading, rec in accepted:
                try:
                    pstate, results = process(pstate, [reading], admission=admission,
                                              now_ms=now_ms, cfg=cfg)
                except Exception as exc:
                    out.append(internal_error(rec, "alarm evaluation", exc, now_ms))
                    continue
                emit(results, admission, key, iter([rec]), now_ms, out)
            return pstate
        emit(results, admission, key, (rec for _, rec in accepted), now_ms, out)
        return new_state

    def evaluate(
        key: tuple, pdfs: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        now_ms = int(time.time() * 1000)
        census = _census(settings)
        patients, watched_ms = _bucket_state(state)
        discount_unwatched(patients, watched_ms, now_ms, grace_ms)
        out: list[tuple] = []

        # Column lists, not itertuples: per-row pandas access was most of the CPU.
        by_patient: dict[str | None, list[_Record]] = {}
        for pdf in pdfs:
            cols = [pdf[c].tolist() for c in INPUT_COLUMNS]
            for kb, value, size, head, sha, topic, part, offset, ts in zip(*cols, strict=True):
                if topic == topics.topic_ticks:
                    continue  # a tick only makes Spark call this bucket
                size = None if size is None or size != size else int(size)  # NaN: null
                by_patient.setdefault(_patient_key(kb), []).append(
                    _Record(kb, value, size, head, sha, topic, int(part), int(offset),
                            _ms(ts)))

        for pk, records in by_patient.items():
            before = patients.get(pk) if pk is not None else None
            pstate = before if before is not None else PatientState.new(pk or "")
            pstate = evaluate_patient(pk, records, pstate, census, now_ms, out)
            if pk is not None and (before is not None or pstate.devices or pstate.active):
                patients[pk] = pstate

        # Every other patient of the bucket: silent long enough is a stale signal; a
        # discharged patient's state is dropped. ``on_timeout`` decides from the wall
        # time of the patient's last reading, so calling it early changes nothing.
        for pk in [p for p in patients if p not in by_patient]:
            try:
                admission = census.get(pk)
            except CensusRecordInvalid:
                continue  # its readings are dead-lettered; its state waits for a repair
            try:
                pstate, changes = on_timeout(patients[pk], admission=admission,
                                             now_ms=now_ms, cfg=cfg)
            except Exception as exc:  # a bug must not stop the other beds' timers
                log.error("internal error in the stale check of a patient: %s",
                          type(exc).__name__)
                continue
            out.extend((topics.topic_alerts, pk.encode(),
                        _alert_json(c, admission, pk, now_ms), ALERT) for c in changes)
            if admission is None:
                del patients[pk]
            else:
                patients[pk] = pstate

        if patients:
            state.update((_bucket_json(patients, now_ms),))
        elif state.exists:
            state.remove()
        if out:
            yield pd.DataFrame(out, columns=OUTPUT_COLUMNS)

    return evaluate

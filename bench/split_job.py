"""A prototype of the split evaluate query, for ``bench_stream.py --split`` only.

The shipped job validates, scores and alarms in one stateful query
(``streaming.vitals_job``); its per-batch floor is the shuffle into
``applyInPandasWithState`` and the state commit (docs/benchmarks.md, "Real-time Mode, and
where the per-batch floor really is"). The split that section proposes puts the screens'
path on a stateless query of its own. This runs it inside the real job, beside the
persist and risk queries, so the measurement has their load:

    vitals.raw --fast query (stateless: validate in a mapInPandas, one Kafka transaction
        per batch)--> <validated>.fast   (what the ward screens would follow)
                  --> <raw>.accepted     (the original bytes of every accepted record)
                  --> dead letters
    <raw>.accepted --the shipped alarm query, unchanged--> vitals.validated, alerts.events

It is a prototype, not the product: the fast query does not de-duplicate (a duplicate
reading reaches ``.fast``; the alarm query still dead-letters it), its readings carry
their own values as ``carried`` (nothing carried forward from earlier readings), and
NEWS2 / qSOFA are scored on those. The alarm query validates every accepted record a
second time, so the CPU measured here is an upper bound on the split's.

    python bench/split_job.py     # with the ICU_* environment of the bench's scratch run

``ICU_BENCH_FAST=continuous`` (``bench_stream.py --split continuous``) runs the other
variant: the fast query under Spark's continuous processing (Spark 3.5's millisecond
trigger for map-only queries), the validator in a row-at-a-time Python UDF (continuous
processing runs no ``mapInPandas``, but a projection may call Python), writing only
``.fast`` through Spark's Kafka sink (at least once). The shipped alarm query reads
``vitals.raw`` as shipped, so this variant adds the fast path to the job and takes
nothing away from it: what it costs the alarm query is part of what it measures.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.settings import Settings  # noqa: E402

# The continuous variant: the buffer of the pipe to and from a Python worker is flushed
# when full, so a UDF's reading waits until this many bytes are behind it (measured: 64 KiB,
# Spark's default, p50 510 ms at 1,000 readings/s; 4 KiB, 154 ms).
CONTINUOUS_BUFFER_BYTES = 4096


def fast_variant() -> str:
    return os.environ.get("ICU_BENCH_FAST", "microbatch")


def split_topics(settings: Settings) -> tuple[str, str]:
    """(the fast query's validated topic, its accepted-raw topic) for these settings."""
    return f"{settings.kafka.topic_validated}.fast", f"{settings.kafka.topic_raw}.accepted"


def alarm_settings(settings: Settings) -> Settings:
    """The alarm query's settings: it reads the accepted records instead of vitals.raw
    (the continuous variant: vitals.raw, as shipped)."""
    if fast_variant() == "continuous":
        return settings
    _, accepted = split_topics(settings)
    return settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"topic_raw": accepted})})


def fast_settings(settings: Settings) -> Settings:
    """What follows the fast query (the ward screens): its topic as ``topic_validated``."""
    fast, _ = split_topics(settings)
    return settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"topic_validated": fast})})


def fast_checkpoint(settings: Settings) -> Path:
    return settings.spark.checkpoint_dir.with_name("fast")


def make_fast_record(settings: Settings) -> Callable[..., list[tuple]]:
    """The stateless per-record step: validate, then the fast reading and the accepted
    original, or the dead letter, as output rows. Built where it runs (a Python worker):
    the census is read on the first record."""
    fast_topic, accepted_topic = split_topics(settings)
    deadletter = settings.kafka.topic_deadletter
    cfg = settings.alerting
    max_bytes = settings.spark.max_record_bytes
    census = None

    from backend.alerting.evaluation import score_news2, score_qsofa
    from backend.messages import DeadLetter, ValidatedReading
    from backend.validation import Rejection, RejectReason, validate
    from backend.vitals import Vital
    from streaming.alarm_evaluator import DEAD_LETTER, READING, _census, _patient_key

    def letter(key, value, reason, detail, part, offset, received, now, size=None):
        body = DeadLetter.about(
            value or b"", reason=reason, detail=detail, field=None,
            topic=settings.kafka.topic_raw, partition=part, offset=offset,
            received_ts=received, rejected_ts=now, head_bytes=1024, key=key,
            length=size, sha256=None).model_dump_json().encode()
        return (deadletter, key, body, DEAD_LETTER)

    def record(key, value, size, part, offset, received, now) -> list[tuple]:
        nonlocal census
        if census is None:
            census = _census(settings)
        if value is None:
            return [letter(key, None, RejectReason.OVERSIZED.value,
                           f"more than {max_bytes} bytes", part, offset, received, now,
                           int(size))]
        try:
            outcome = validate(value, received_ts=received, census=census, cfg=cfg)
        except Exception as exc:
            return [letter(key, value, RejectReason.INTERNAL_ERROR.value,
                           type(exc).__name__, part, offset, received, now)]
        pk = _patient_key(key)
        if isinstance(outcome, Rejection) or outcome.reading.patient_id != pk:
            reason = (outcome.reason.value if isinstance(outcome, Rejection)
                      else RejectReason.SCHEMA_VIOLATION.value)
            return [letter(key, value, reason, "rejected", part, offset, received, now)]
        r = outcome.reading
        admission = census.get(pk)
        v = r.values
        news2 = score_news2(
            rr=v.get(Vital.RR), spo2=v.get(Vital.SPO2),
            spo2_scale=admission.spo2_scale if admission else 1,
            o2_supplemental=r.o2_supplemental, sbp=v.get(Vital.SBP),
            pulse=v.get(Vital.HR, v.get(Vital.PULSE)),
            consciousness=r.consciousness, temp=v.get(Vital.TEMP))
        qsofa = score_qsofa(rr=v.get(Vital.RR), sbp=v.get(Vital.SBP),
                            consciousness=r.consciousness)
        body = ValidatedReading.model_construct(
            patient_id=r.patient_id, ward=r.ward, bed=r.bed, device_id=r.device_id,
            seq=r.seq, ts=r.ts, vitals=dict(v), carried=dict(v),
            sensors_off=sorted(r.sensors_off),
            news2=news2.total if news2 else None,
            news2_band=news2.band.value if news2 else None,
            news2_complete=bool(news2 and news2.complete),
            qsofa=qsofa.score if qsofa else None,
            o2_supplemental=r.o2_supplemental, consciousness=r.consciousness,
            processed_ts=now, source_partition=part, source_offset=offset,
        ).model_dump_json().encode()
        return [(fast_topic, key, body, READING), (accepted_topic, key, value, READING)]

    return record


def make_fast_step(settings: Settings) -> Callable:
    """``make_fast_record`` over a mapInPandas's frames."""

    def step(frames: Iterator) -> Iterator:
        import pandas as pd

        from streaming.alarm_evaluator import OUTPUT_COLUMNS, _ms

        record = make_fast_record(settings)
        for pdf in frames:
            now = int(time.time() * 1000)
            out: list[tuple] = []
            cols = [pdf[c].tolist() for c in ("key", "value", "size", "partition", "offset",
                                              "timestamp")]
            for key, value, size, part, offset, ts in zip(*cols, strict=True):
                out.extend(record(key, value, size, int(part), int(offset), _ms(ts), now))
            if out:
                yield pd.DataFrame(out, columns=OUTPUT_COLUMNS)

    return step


def start_fast_query(spark, settings: Settings):
    from pyspark.sql import functions as F

    from streaming.alarm_evaluator import OUTPUT_SCHEMA
    from streaming.kafka_io import kafka_source
    from streaming.sink import AlarmSink

    cfg = settings.spark
    raw = kafka_source(spark, settings, [settings.kafka.topic_raw],
                       max_offsets=cfg.max_offsets_per_trigger)
    size = F.length("value")
    keyed = raw.select("key", F.when(size <= cfg.max_record_bytes, F.col("value"))
                       .alias("value"), size.alias("size"), "partition", "offset",
                       "timestamp")
    out = keyed.mapInPandas(make_fast_step(settings), OUTPUT_SCHEMA)
    ckpt = fast_checkpoint(settings)
    sink = AlarmSink(settings, "fast", checkpoint=ckpt)
    query = (out.writeStream.queryName("fast").foreachBatch(sink)
             .option("checkpointLocation", str(ckpt)).start())
    return query, sink


def start_continuous_fast_query(spark, settings: Settings):
    """The fast query under continuous processing: every accepted reading to ``.fast``,
    scored as ``make_fast_step`` scores it; rejected records are left to the alarm query,
    which dead-letters them as shipped."""
    from pyspark.sql import functions as F

    from backend.clients import spark_kafka_options
    from streaming.kafka_io import kafka_source

    fast_topic, _ = split_topics(settings)
    cfg = settings.spark
    worker: dict = {}

    def fast(key, value, size, part, offset, received):
        record = worker.get("record")
        if record is None:  # once per Python worker, which Spark reuses
            record = worker["record"] = make_fast_record(settings)
        for topic, _, body, _ in record(key, value, size, part, offset, received,
                                        int(time.time() * 1000)):
            if topic == fast_topic:
                return body
        return None

    udf = F.udf(fast, "binary")
    # maxOffsetsPerTrigger means nothing to a continuous query (it has no batches)
    raw = kafka_source(spark, settings, [settings.kafka.topic_raw],
                       max_offsets=cfg.max_offsets_per_trigger)
    size = F.length("value")
    body = udf("key", F.when(size <= cfg.max_record_bytes, F.col("value")), size,
               "partition", "offset", F.expr("unix_millis(timestamp)"))
    out = raw.select("key", body.alias("value")).where(F.col("value").isNotNull())
    ckpt = fast_checkpoint(settings)
    query = (out.writeStream.queryName("fast").format("kafka")
             .options(**spark_kafka_options(settings.kafka)).option("topic", fast_topic)
             .option("kafka.linger.ms", "0")
             .option("checkpointLocation", str(ckpt))
             .trigger(continuous="5 seconds").start())
    return query, None


def main() -> int:
    from backend.settings import get_settings
    from streaming.persist_job import start_persist_query
    from streaming.risk_job import start_risk_query
    from streaming.session import LATENCY_POOL, THROUGHPUT_POOL, spark_session, use_pool
    from streaming.stream_cli import _serve, _stop_requests, _supervisor
    from streaming.vitals_job import Ticker, start_vitals_query

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stopping = _stop_requests()
    settings = get_settings()
    continuous = fast_variant() == "continuous"
    if continuous:  # a setting of the JVM: before the session starts it
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            f"--conf spark.buffer.size={CONTINUOUS_BUFFER_BYTES} pyspark-shell")
    spark = spark_session(settings)
    spark.sparkContext.setLogLevel("WARN")
    alarms = alarm_settings(settings)
    queries = _supervisor(spark, settings)

    def in_pool(pool: str, start: Callable[[], tuple]) -> Callable[[], tuple]:
        def started() -> tuple:
            use_pool(spark, pool)
            query, sink = start()
            return query, sink.close if sink is not None else None
        return started

    start_fast = start_continuous_fast_query if continuous else start_fast_query
    queries.start("fast", in_pool(LATENCY_POOL, lambda: start_fast(spark, settings)))
    queries.start("alarm", in_pool(LATENCY_POOL, lambda: start_vitals_query(spark, alarms)))
    ticker = Ticker(alarms).start()
    print("alarm query running (split prototype: fast query + alarm query)", flush=True)
    queries.start("persist", in_pool(THROUGHPUT_POOL,
                                     lambda: (start_persist_query(spark, settings), None)))
    queries.start("risk", in_pool(THROUGHPUT_POOL, lambda: start_risk_query(spark, settings)))
    _serve(spark.stop, queries, [ticker.stop], settings, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.settings import Settings  # noqa: E402


def split_topics(settings: Settings) -> tuple[str, str]:
    """(the fast query's validated topic, its accepted-raw topic) for these settings."""
    return f"{settings.kafka.topic_validated}.fast", f"{settings.kafka.topic_raw}.accepted"


def alarm_settings(settings: Settings) -> Settings:
    """The alarm query's settings: it reads the accepted records instead of vitals.raw."""
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


def make_fast_step(settings: Settings) -> Callable:
    """The stateless per-record step: validate, then emit the fast reading and the
    accepted original, or the dead letter."""
    fast_topic, accepted_topic = split_topics(settings)
    deadletter = settings.kafka.topic_deadletter
    cfg = settings.alerting
    max_bytes = settings.spark.max_record_bytes

    def step(frames: Iterator) -> Iterator:
        import pandas as pd

        from backend.alerting.evaluation import score_news2, score_qsofa
        from backend.messages import DeadLetter, ValidatedReading
        from backend.validation import Rejection, RejectReason, validate
        from backend.vitals import Vital
        from streaming.alarm_evaluator import (
            DEAD_LETTER,
            OUTPUT_COLUMNS,
            READING,
            _census,
            _ms,
            _patient_key,
        )

        census = _census(settings)

        def letter(key, value, reason, detail, part, offset, received, now, size=None):
            body = DeadLetter.about(
                value or b"", reason=reason, detail=detail, field=None,
                topic=settings.kafka.topic_raw, partition=part, offset=offset,
                received_ts=received, rejected_ts=now, head_bytes=1024, key=key,
                length=size, sha256=None).model_dump_json().encode()
            return (deadletter, key, body, DEAD_LETTER)

        for pdf in frames:
            now = int(time.time() * 1000)
            out: list[tuple] = []
            cols = [pdf[c].tolist() for c in ("key", "value", "size", "partition", "offset",
                                              "timestamp")]
            for key, value, size, part, offset, ts in zip(*cols, strict=True):
                received, part, offset = _ms(ts), int(part), int(offset)
                if value is None:
                    out.append(letter(key, None, RejectReason.OVERSIZED.value,
                                      f"more than {max_bytes} bytes", part, offset, received,
                                      now, int(size)))
                    continue
                try:
                    outcome = validate(value, received_ts=received, census=census, cfg=cfg)
                except Exception as exc:
                    out.append(letter(key, value, RejectReason.INTERNAL_ERROR.value,
                                      type(exc).__name__, part, offset, received, now))
                    continue
                pk = _patient_key(key)
                if isinstance(outcome, Rejection) or outcome.reading.patient_id != pk:
                    reason = (outcome.reason.value if isinstance(outcome, Rejection)
                              else RejectReason.SCHEMA_VIOLATION.value)
                    out.append(letter(key, value, reason, "rejected", part, offset,
                                      received, now))
                    continue
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
                out.append((fast_topic, key, body, READING))
                out.append((accepted_topic, key, value, READING))
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

    queries.start("fast", in_pool(LATENCY_POOL, lambda: start_fast_query(spark, settings)))
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

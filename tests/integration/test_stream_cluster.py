"""The same stream job on a Spark standalone cluster (a master and two workers started by
``ops.spark_cluster``) and in local mode: the same input gives identical stored readings,
per-minute extremes, alerts and dead letters."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backend.admission import Admission
from backend.messages import DeviceReading
from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.storage.minutes import MinuteStore
from devices.hostile import Ward, generate
from harness.process import StreamJob
from harness.topics import consume_all, publish
from harness.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = Ward("ICU-C", {f"c{i}": f"{i:02d}" for i in range(6)})


@pytest.fixture(scope="module")
def spark_cluster(services: Settings):
    from ops.spark_cluster import start_spark, stop_spark

    running = start_spark(services, timeout=180)
    yield services.spark.cluster_url
    if any(s.started for s in running):
        stop_spark(services)


def _records(start_ms: int) -> list[tuple[bytes | None, bytes | None]]:
    """Six beds for two minutes, one with a sustained HR of 160 (an alarm), interleaved
    with 300 hostile records of every class (dead letters of every kind)."""
    out: list[tuple[bytes | None, bytes | None]] = []
    for i in range(120):
        for n, (patient, bed) in enumerate(WARD.beds.items()):
            hr = 160.0 if n == 0 and i >= 30 else 72.0 + n
            r = DeviceReading(device_id=f"mon-{patient}", seq=i + 1, patient_id=patient,
                              ward=WARD.name, bed=bed, ts=start_ms + i * 1000,
                              vitals={"hr": hr, "pulse": hr, "spo2": 97.0, "rr": 15.0})
            out.append((patient.encode(), r.model_dump_json().encode()))
    hostile = [(h.key, h.value) for h in generate(WARD, n=300, start_ms=start_ms + 1000,
                                                  step_ms=400, seed=3, valid_share=0.0)]
    return [*out[:360], *hostile, *out[360:]]


def _run(settings: Settings, records, tmp_path: Path, name: str) -> dict:
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    for patient, bed in WARD.beds.items():
        census.admit(session, Admission(patient_id=patient, ward=WARD.name, bed=bed,
                                        admitted_ts=0))
    assert publish(settings, records) == len(records)
    job = StreamJob(settings, tmp_path / f"{name}.log")
    job.start(ready_timeout=240)
    try:
        published = wait_until(
            lambda: len(consume_all(settings, settings.kafka.topic_validated)) >= 720 and
            consume_all(settings, settings.kafka.topic_validated),
            timeout=300, what=f"{name}: every reading evaluated")
        letters = consume_all(settings, settings.kafka.topic_deadletter)
        day = datetime.now(UTC).date()
        days = (day - timedelta(days=1), day)

        def stored() -> list[dict]:
            return [dict(r) for p in WARD.beds for r in session.execute(
                "SELECT * FROM readings_by_patient_day WHERE patient_id = %s AND day IN (%s, %s)",
                (p, *days))]

        readings = wait_until(lambda: len(s := stored()) >= len(
            [v for v in published]) and s, timeout=120, what=f"{name}: readings in Cassandra")
        dead = wait_until(lambda: (rows := list(session.execute(
            "SELECT * FROM deadletters_by_day WHERE day IN (%s, %s)", days))) and
            len(rows) >= len(letters) and rows, timeout=120, what=f"{name}: dead letters stored")
    finally:
        job.stop()
    alerts = consume_all(settings, settings.kafka.topic_alerts)
    rows = {a["alert_id"]: dict(session.execute("SELECT * FROM alerts WHERE alert_id = %s",
                                                (a["alert_id"],)).one()) for a in alerts}
    minutes = MinuteStore(session)
    first = records_start(records)
    merged = {p: [(m.minute, m.n, m.last_ts, m.mins, m.maxs, m.lasts)
                  for m in minutes.between(p, first, first + 180_000)]
              for p in WARD.beds}
    session.cluster.shutdown()
    return {
        "readings": sorted((r["patient_id"], r["ts"], r["device_id"], r["seq"], r["hr"],
                            r["spo2"], r["rr"], r["news2"], r["qsofa"],
                            tuple(sorted(r["sensors_off"] or ()))) for r in readings),
        "minutes": merged,
        "alerts": sorted((a["alert_id"], a["event"], a["rule"], a["priority"], a["message"],
                          a["onset_ts"], a["reading_ts"]) for a in alerts),
        "alert_rows": sorted((k, r["rule"], r["status"], r["onset_ts"], r["cleared_ts"])
                             for k, r in rows.items()),
        # by content: records without a key land on a random partition in each run, and
        # a timestamp's rejection names the receive time of that run
        "dead": sorted((d["field"], d["reason"], _same_run(d["detail"])) for d in dead),
        "letters": sorted((d["original_sha256"], d["reason"], _same_run(d["detail"]),
                           d["field"] or "") for d in letters),
    }


def _same_run(detail: str) -> str:
    return re.sub(r"is \S+ s (after|before) the receive time \d+", "(receive time)", detail)


def records_start(records) -> int:
    return json.loads(records[0][1])["ts"]


def test_cluster_and_local_mode_store_the_same(spark_cluster, isolated_settings: Settings,
                                               tmp_path: Path, _created) -> None:
    start = int(time.time() * 1000) - 180_000
    records = _records(start)
    slow_stale = {"stale_after_seconds": 3600.0}  # silence is wall-clock: keep it out
    local = isolated_settings.model_copy(update={
        "alerting": isolated_settings.alerting.model_copy(update=slow_stale)})
    cluster = _created.isolate(local, tmp_path / "cluster" / "spark-checkpoints",
                              spark={"master": spark_cluster})

    in_local = _run(local, records, tmp_path, "local")
    on_cluster = _run(cluster, records, tmp_path, "cluster")

    assert in_local["readings"], "readings were stored"
    assert {a[2] for a in in_local["alerts"]} >= {"limit_hr_high"}, "the HR alarm was raised"
    assert len(in_local["letters"]) >= 200 and in_local["dead"]
    for part in ("readings", "minutes", "alerts", "alert_rows", "dead", "letters"):
        assert on_cluster[part] == in_local[part], f"{part} differ between cluster and local"

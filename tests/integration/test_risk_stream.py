"""The risk query on real servers: Kafka ``vitals.validated`` -> Spark (``icu stream risk``,
own process) -> Cassandra scores and alerts + Kafka ``alerts.events``.

The model is the hand-made one of ``tests/risk_fixture.py`` (one split on the hourly
heart rate), so every hourly score is known. One patient's hourly HR crosses the
threshold for two hours and more: exactly one risk alert, raised once and cleared once,
also across a SIGKILL and restart mid-stream. Another patient stays low: no alert. Then
`icu model rollback` reaches the running job: the next hour is scored by the older
version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from backend.admission import Admission
from backend.messages import ValidatedReading
from backend.risk.live import HOUR_MS, RISK_RULE, HourScore, hour_start
from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.storage.risk_scores import RiskScoreStore
from backend.storage.timestamps import day_of
from harness import REPO
from harness.process import StreamJob
from harness.topics import consume_all
from harness.waiting import wait_until
from tests.risk_fixture import HIGH_RISK, LOW_RISK, THRESHOLD, write_model

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = "ICU-R"
HIGH, LOW = "it-risk-high", "it-risk-low"
OLD, NEW = "20260101T000000Z", "20260102T000000Z"
# hourly HR of the patient who crosses: hours 3 (alone), 5-8 above 110
HRS = {1: 80, 2: 80, 3: 130, 4: 80, 5: 130, 6: 130, 7: 130, 8: 130, 9: 80, 10: 80, 11: 80}


def reading(patient: str, bed: str, admitted: int, hour: int, i: int, hr: float
            ) -> ValidatedReading:
    ts = hour_start(hour, admitted) + i * (HOUR_MS // 6)
    return ValidatedReading(patient_id=patient, ward=WARD, bed=bed, device_id=f"mon-{bed}",
                            seq=hour * 10 + i, ts=ts,
                            vitals={"hr": hr, "spo2": 97, "rr": 15, "sbp": 120},
                            processed_ts=ts)


def hours(patient: str, bed: str, admitted: int, hrs: dict[int, float]) -> list:
    return [reading(patient, bed, admitted, h, i, hr) for h, hr in hrs.items() for i in range(6)]


def publish_validated(settings: Settings, rs: list[ValidatedReading]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    for r in rs:
        producer.send(settings.kafka.topic_validated, key=r.patient_id.encode(),
                      value=r.model_dump_json().encode())
    producer.flush(30)
    producer.close()


@pytest.fixture
def risk_job(isolated_settings: Settings, tmp_path: Path):
    settings = isolated_settings.model_copy(update={
        "cache_dir": tmp_path / "cache",
        "spark": isolated_settings.spark.model_copy(update={"trigger_seconds": 0.5}),
        "risk": isolated_settings.risk.model_copy(update={"model_recheck_seconds": 1.0,
                                                           "trigger_seconds": 0.5}),
    })
    write_model(settings, OLD, hr_split=200.0)  # never high
    write_model(settings, NEW, hr_split=110.0, created="2026-01-02T00:00:00+00:00")
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    job = StreamJob(settings, tmp_path / "risk.log", command=("stream", "risk"),
                    ready_text="risk stream running")
    yield settings, session, job
    job.stop()
    session.cluster.shutdown()


def scores(store: RiskScoreStore, patient: str, admitted: int) -> dict[int, HourScore]:
    rows = store.for_patient(patient, admitted, admitted + 48 * HOUR_MS)
    return {r.hour: r for r in rows}


def risk_events(settings: Settings) -> list[dict]:
    return [a for a in consume_all(settings, settings.kafka.topic_alerts)
            if a["rule"] == RISK_RULE]


def test_threshold_crossing_raises_one_alert_across_a_crash(risk_job) -> None:
    settings, session, job = risk_job
    store = RiskScoreStore(session)
    admitted = (int(time.time() * 1000) // HOUR_MS - 14) * HOUR_MS
    for patient, bed in ((HIGH, "01"), (LOW, "02")):
        census.admit(session, Admission(patient_id=patient, ward=WARD, bed=bed, label=bed,
                                        age=70, sex="F", admitted_ts=admitted))

    # Phase 1: hours 1-6 and one reading of hour 7, which closes hour 6.
    phase1 = {h: HRS[h] for h in range(1, 7)}
    publish_validated(settings, hours(HIGH, "01", admitted, phase1)
                      + hours(LOW, "02", admitted, {h: 80 for h in range(1, 8)})
                      + [reading(HIGH, "01", admitted, 7, 0, HRS[7])])
    job.start()
    got = wait_until(lambda: len(s := scores(store, HIGH, admitted)) == 6 and s,
                     timeout=240, what="6 hourly scores of the crossing patient")
    for h in range(1, 7):
        assert got[h].risk == pytest.approx(HIGH_RISK if HRS[h] > 110 else LOW_RISK)
        assert got[h].threshold == THRESHOLD and got[h].model_version == NEW
        assert got[h].n_readings == 6 and got[h].inputs["hr"] == HRS[h]
    raised = wait_until(lambda: risk_events(settings), timeout=60, what="the risk alert")
    onset = hour_start(5, admitted)
    assert [(a["patient_id"], a["event"], a["onset_ts"]) for a in raised] == [
        (HIGH, "raised", onset)]
    row = session.execute("SELECT * FROM alerts WHERE alert_id = %s",
                          (raised[0]["alert_id"],)).one()
    assert row["rule"] == RISK_RULE and row["status"] == "raised" and row["ward"] == WARD

    # Phase 2, crash in the middle: the rest of hour 7 and hour 8, SIGKILL, hours 9-12.
    publish_validated(settings, hours(HIGH, "01", admitted, {7: HRS[7], 8: HRS[8]})[1:])
    wait_until(lambda: 7 in scores(store, HIGH, admitted), timeout=60, what="hour 7 scored")
    job.kill()
    publish_validated(settings, [*hours(HIGH, "01", admitted, {h: HRS[h] for h in (9, 10, 11)}),
                                 reading(HIGH, "01", admitted, 12, 0, 80)])
    job.start()
    wait_until(lambda: 11 in scores(store, HIGH, admitted), timeout=240,
               what="hours 8-11 scored after the restart")
    wait_until(lambda: len(risk_events(settings)) >= 2, timeout=60, what="the clear")
    time.sleep(3)  # anything published twice would be there by now

    events = risk_events(settings)
    assert Counter((a["alert_id"], a["event"]) for a in events) == {
        (raised[0]["alert_id"], "raised"): 1, (raised[0]["alert_id"], "cleared"): 1}
    cleared = next(a for a in events if a["event"] == "cleared")
    assert cleared["reading_ts"] == hour_start(11, admitted)  # hours 9 and 10 below
    assert [r["rule"] for r in session.execute(
        "SELECT rule FROM alerts_by_patient WHERE patient_id = %s", (HIGH,))] == [RISK_RULE]
    assert list(session.execute("SELECT * FROM alerts_by_patient WHERE patient_id = %s",
                                (LOW,))) == []
    final = scores(store, HIGH, admitted)
    assert sorted(final) == list(range(1, 12))
    assert all(final[h].above == (HRS[h] > 110) for h in final)
    assert len(scores(store, LOW, admitted)) == 6  # hour 7 of LOW is still open
    by_day = store.for_model(NEW, sorted({day_of(hour_start(h, admitted)) for h in HRS}))
    assert Counter(r.patient_id for r in by_day) == {HIGH: 11, LOW: 6}

    # Rollback is one command, and the running job picks it up.
    out = subprocess.run([sys.executable, "-m", "ops.cli", "model", "rollback"], cwd=REPO,
                         env={**os.environ, **settings.to_env()}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"active: {OLD} (rolled back from {NEW})" in out.stdout
    time.sleep(2)  # > model_recheck_seconds
    publish_validated(settings, [reading(HIGH, "01", admitted, 13, 0, 130)])
    wait_until(lambda: 12 in scores(store, HIGH, admitted), timeout=120,
               what="hour 12 scored after the rollback")
    assert scores(store, HIGH, admitted)[12].model_version == OLD

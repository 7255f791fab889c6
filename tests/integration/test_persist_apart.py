"""The persist query as a Spark application of its own (``icu stream persist``) beside
``icu stream run --no-persist``: the deployment that moves Cassandra's writes off the
alarm job's machine (docs/benchmarks.md, "What the persist query costs the alarm path").

The alarm job alone publishes but stores nothing; the persist application, started
later, stores every reading, raw record and dead letter from where the topics stand.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backend.admission import Admission
from backend.messages import DeviceReading
from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from harness.process import StreamJob
from harness.topics import consume_all, publish
from harness.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD, PATIENT, READINGS = "ICU-PA", "pa-p1", 40


def _count(session, table: str, cql: str, *params: object) -> int:
    return session.execute(f"SELECT count(*) AS n FROM {table} WHERE {cql}", params).one()["n"]


def test_persist_application_stores_what_the_alarm_job_published(
        isolated_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings.model_copy(update={
        "spark": isolated_settings.spark.model_copy(update={"persist_trigger_seconds": 1.0})})
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    now = int(time.time() * 1000)
    census.admit(session, Admission(patient_id=PATIENT, ward=WARD, bed="1", label="1",
                                    admitted_ts=now - 3_600_000))
    base = now - 120_000
    good = [DeviceReading(device_id="mon-pa", seq=i, patient_id=PATIENT, ward=WARD, bed="1",
                          ts=base + i * 1000, vitals={"hr": 70 + i % 5, "spo2": 97})
            for i in range(READINGS)]
    records = [(r.patient_id.encode(), r.model_dump_json().encode()) for r in good]
    assert publish(settings, [*records, (PATIENT.encode(), b"{not json")]) == READINGS + 1

    alarm = StreamJob(settings, tmp_path / "alarm.log",
                      command=("stream", "run", "--no-persist", "--no-risk"))
    persist = StreamJob(settings, tmp_path / "persist.log", command=("stream", "persist"),
                        ready_text="persist query running")
    # the readings' UTC days (two if they straddle midnight)
    first, last = (time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))
                   for ms in (base, base + READINGS * 1000))
    try:
        alarm.start()
        wait_until(lambda: len(consume_all(settings, settings.kafka.topic_validated))
                   == READINGS, timeout=180, what="every reading published")
        assert "persist query running" not in alarm.text()
        history = ("readings_by_patient_day", "patient_id = %s AND day IN (%s, %s)",
                   PATIENT, first, last)
        assert _count(session, *history) == 0  # the alarm job alone stores no reading

        persist.start()
        wait_until(lambda: _count(session, *history) == READINGS, timeout=180,
                   what="every reading stored by the persist application")
        wait_until(lambda: list(session.execute("SELECT reason FROM deadletters_by_day")),
                   timeout=60, what="the dead letter stored")
        stored = sorted(r["payload"] for r in session.execute("SELECT payload FROM raw_messages"))
        assert stored == sorted([*(v for _, v in records), b"{not json"])
        assert [r["reason"] for r in session.execute("SELECT reason FROM deadletters_by_day")
                ] == ["malformed_json"]
        assert alarm.alive() and persist.alive()
    finally:
        persist.stop()
        alarm.stop()
        session.cluster.shutdown()

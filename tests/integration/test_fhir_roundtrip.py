"""FHIR round trip through the real pipeline.

The real stay s25047 (72 minutes of MIMIC numerics) is replayed through Kafka and the
Spark job into Cassandra; the stored readings are exported as a FHIR R4 Bundle, which must
validate; the Bundle is ingested under a new patient id through ``vitals.raw`` and the
same running job; the readings stored for the new patient must equal the originals (every
parameter's value, the sensors reported off, the timestamps). Ingesting the same Bundle a
second time stores nothing new: the readings are older than the duplicate window of
device time, so they come through as late readings (``backend.alerting.evaluation``:
silencing a monitor whose counter and clock went back is worse than storing a reading
twice), are stored idempotently over the same rows and raise no alarm.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from backend.admission import Admission
from backend.fhir import bundle_to_device_readings, readings_to_bundle
from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.storage.readings import ReadingStore, StoredReading
from backend.vitals import Vital
from devices.fhir_ingest import ingest
from devices.mimic_replay import load_record, replay
from devices.wire import encode, encode_key
from harness.process import StreamJob
from harness.topics import consume_all, publish
from harness.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = "ICU-FHIR"
COPY = "fhir-copy-s25047"
MINUTES = 72


@pytest.fixture
def pipeline(isolated_settings: Settings, tmp_path: Path):
    settings = isolated_settings.model_copy(update={
        "alerting": isolated_settings.alerting.model_copy(update={"stale_after_seconds": 3600}),
        "spark": isolated_settings.spark.model_copy(update={"trigger_seconds": 0.5}),
    })
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    job = StreamJob(settings, tmp_path / "stream.log")
    yield settings, session, job
    job.stop()
    session.cluster.shutdown()


def content(rows: list[StoredReading]) -> list[tuple]:
    """What a reading says: time, each parameter's value, the sensors reported off."""
    return [(r.ts, tuple(r.vitals.get(v) for v in Vital), r.sensors_off) for r in rows]


def test_export_and_reingest_equal(pipeline) -> None:
    settings, session, job = pipeline
    rec = load_record("s25047", settings.data_dir)
    now = int(time.time() * 1000)
    start = now - (MINUTES + 1) * 60_000
    for patient, bed in ((rec.patient_id, "1"), (COPY, "2")):
        census.admit(session, Admission(patient_id=patient, ward=WARD, bed=bed,
                                        label=f"Bed {bed}", admitted_ts=start - 60_000))
    messages = [(encode_key(pid), encode(r))
                for pid, r in replay(rec, start_ms=start, ward=WARD, bed="1")]
    assert publish(settings, messages) == MINUTES
    job.start()

    store = ReadingStore(session)
    end = now + 1
    original = wait_until(
        lambda: (r := store.between(rec.patient_id, start, end)) and len(r) == MINUTES and r,
        timeout=180, what="the replayed stay stored")

    bundle = readings_to_bundle(rec.patient_id, original, start_ms=start, end_ms=end)
    text = bundle.model_dump_json()
    assert Bundle.model_validate_json(text).type == "collection"  # valid FHIR R4(B)
    # Every stored reading of this stay carries a value or a sensor-off (none is empty),
    # so every one of them is in the Bundle.
    assert all(r.vitals or r.sensors_off for r in original)
    assert len({e.resource.effectiveDateTime for e in bundle.entry}) == MINUTES

    admitted = census.current(session)
    readings = bundle_to_device_readings(text, census=admitted, patient_id=COPY)
    assert len(readings) == MINUTES
    assert ingest(settings, text, patient_id=COPY, census=admitted) == MINUTES

    copied = wait_until(
        lambda: (r := store.between(COPY, start, end)) and len(r) == MINUTES and r,
        timeout=120, what="the re-ingested readings stored")
    assert content(copied) == content(original)
    assert {r.device_id for r in copied} == {f"fhir-{original[0].device_id}"}
    assert [r.seq for r in copied] == [r.ts for r in readings]

    # The same Bundle again: late readings over the same rows; nothing stored twice.
    alerts_before = [a for a in consume_all(settings, settings.kafka.topic_alerts)
                     if a["patient_id"] == COPY]
    assert ingest(settings, text, patient_id=COPY, census=admitted) == MINUTES

    def through_stream() -> tuple[int, list[dict]]:
        late = sum(v["patient_id"] == COPY
                   for v in consume_all(settings, settings.kafka.topic_validated))
        dups = [d for d in consume_all(settings, settings.kafka.topic_deadletter)
                if d["reason"] == "duplicate" and d["patient_key"] == COPY]
        return late - MINUTES, dups

    late, dups = wait_until(lambda: (r := through_stream()) and r[0] + len(r[1]) == MINUTES
                            and r, timeout=120, what="the second ingest through the stream")
    # only the newest reading lies within the duplicate window of device time
    window_ms = settings.alerting.duplicate_window_seconds * 1000
    newest = max(r.ts for r in readings)
    assert len(dups) == sum(r.ts >= newest - window_ms for r in readings) == 1
    assert late == MINUTES - 1
    time.sleep(2 * settings.spark.persist_trigger_seconds + 2)  # and through persistence
    again = store.between(COPY, start, end)
    assert len(again) == MINUTES
    assert content(again) == content(original)
    assert [a for a in consume_all(settings, settings.kafka.topic_alerts)
            if a["patient_id"] == COPY] == alerts_before, "late readings raise no alarm"

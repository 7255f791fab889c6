"""Hostile input through the real stream job (Kafka -> Spark -> Cassandra + Kafka): every
record is stored as received and either accepted or dead-lettered with a reason; a 1 MB
record, a corrupt admission row and thousands of malformed records stop nothing."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from backend.admission import Admission
from backend.messages import DeviceReading
from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from devices.hostile import Ward, generate
from harness.days import recent_days
from harness.process import StreamJob
from harness.topics import consume_all, publish
from harness.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = Ward("ICU-X", {f"x{i}": f"{i:02d}" for i in range(8)})
CORRUPT = "x-corrupt"


def _normal(patient: str, bed: str, seq: int, ts: int) -> tuple[bytes, bytes]:
    r = DeviceReading(device_id=f"mon-{patient}", seq=seq, patient_id=patient, ward=WARD.name,
                      bed=bed, ts=ts, vitals={"hr": 70.0, "spo2": 98.0, "rr": 14.0})
    return patient.encode(), r.model_dump_json().encode()


def test_hostile_records_are_stored_or_dead_lettered_and_the_stream_goes_on(
        isolated_settings: Settings, tmp_path: Path) -> None:
    settings = isolated_settings
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    for patient, bed in [*WARD.beds.items(), (CORRUPT, "99")]:
        census.admit(session, Admission(patient_id=patient, ward=WARD.name, bed=bed,
                                        admitted_ts=0))
    # Another system corrupted one admission row: scoring cannot know its SpO2 scale.
    session.execute("UPDATE admissions SET spo2_scale = 7 WHERE patient_id = %s", (CORRUPT,))

    n = 3000
    now = int(time.time() * 1000)
    records = [(h.key, h.value) for h in generate(WARD, n=n, start_ms=now - n * 20,
                                                   step_ms=20, seed=11)]
    huge = b'{"device_id":"' + b"x" * 1_000_000 + b'"}'  # just under Kafka's 1 MiB
    corrupt = [_normal(CORRUPT, "99", i, now - 5000 + i) for i in range(1, 4)]
    records = [*records[:1000], (b"x0", huge), *corrupt, *records[1000:]]
    assert publish(settings, records) == len(records)

    job = StreamJob(settings, tmp_path / "stream.log")
    job.start(ready_timeout=240)
    try:
        def accounted() -> tuple[list, list] | None:
            validated = consume_all(settings, settings.kafka.topic_validated)
            letters = consume_all(settings, settings.kafka.topic_deadletter)
            whole = [d for d in letters if not d["field"]]
            return (validated, letters) if len(validated) + len(whole) >= len(records) else None

        validated, letters = wait_until(accounted, timeout=300,
                                        what="every record accepted or dead-lettered")
        whole = [d for d in letters if not d["field"]]
        assert len(validated) + len(whole) == len(records)
        positions = Counter((d["source_partition"], d["source_offset"]) for d in whole)
        assert max(positions.values()) == 1, "a record dead-lettered twice"
        reasons = Counter(d["reason"] for d in whole)
        assert reasons["oversized"] >= 1 and reasons["schema_violation"] > 0
        big = next(d for d in whole if d["original_length"] == len(huge))
        assert big["reason"] == "oversized" and big["original_truncated"]
        assert len(big["original_head_b64"]) <= 4 * settings.spark.deadletter_head_bytes
        internal = [d for d in whole if d["reason"] == "internal_error"]
        assert sorted(d["patient_key"] for d in internal) == [CORRUPT] * 3, internal
        assert "invalid admission record (spo2_scale)" in internal[0]["detail"]

        # every record stored as received, the dead letters and readings in Cassandra
        def raw_rows() -> int:
            return sum(session.execute(
                "SELECT count(*) AS n FROM raw_messages WHERE topic = %s"
                " AND kafka_partition = %s AND offset_bucket = 0",
                (settings.kafka.topic_raw, p)).one()["n"] for p in range(settings.kafka.partitions))

        wait_until(lambda: raw_rows() == len(records), timeout=120, what="raw messages stored")
        wait_until(lambda: session.execute(
            "SELECT count(*) AS n FROM deadletters_by_day WHERE day IN (%s, %s)", recent_days()
        ).one()["n"] == len(letters), timeout=120, what="dead letters stored")

        # and the stream still works for every bed
        later = [_normal(p, b, 10**6, int(time.time() * 1000)) for p, b in WARD.beds.items()]
        publish(settings, later)
        wait_until(lambda: {v["patient_id"] for v in consume_all(
            settings, settings.kafka.topic_validated) if v["seq"] == 10**6} == set(WARD.beds),
            timeout=120, what="normal readings after the hostile ones")
        assert job.proc is not None and job.proc.poll() is None
    finally:
        job.stop()
        session.cluster.shutdown()

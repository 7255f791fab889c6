"""The whole pipeline on real servers: Kafka -> Spark job (own process) -> Cassandra + Kafka.

One scripted scenario, asserted exactly: the alerts raised, the rows stored, the dead
letters with their reasons. Then the job is SIGKILLed mid-stream and restarted, and no
reading is lost and nothing is published twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
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
from harness.days import recent_days
from harness.process import StreamJob
from harness.topics import consume_all, publish
from harness.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = "ICU-T"
P1, P2, GHOST = "it-p1", "it-p2", "it-ghost"
NORMAL = {"hr": 75, "pulse": 75, "spo2": 97, "rr": 14, "sbp": 120, "dbp": 70, "map": 87}


def reading(patient: str, bed: str, seq: int, ts: int, **vitals: float) -> DeviceReading:
    return DeviceReading(device_id=f"mon-{patient}", seq=seq, patient_id=patient, ward=WARD,
                         bed=bed, ts=ts, vitals={**NORMAL, **vitals})


def encode(r: DeviceReading) -> tuple[bytes, bytes]:
    return r.patient_id.encode(), r.model_dump_json().encode()


@pytest.fixture
def pipeline(isolated_settings: Settings, tmp_path: Path):
    settings = isolated_settings.model_copy(update={
        "alerting": isolated_settings.alerting.model_copy(update={"stale_after_seconds": 20}),
        "spark": isolated_settings.spark.model_copy(update={"trigger_seconds": 0.5}),
    })
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    now = int(time.time() * 1000)
    for patient, bed in ((P1, "01"), (P2, "02")):
        census.admit(session, Admission(patient_id=patient, ward=WARD, bed=bed, label=bed,
                                        admitted_ts=now - 3_600_000))
    job = StreamJob(settings, tmp_path / "stream.log")
    yield settings, session, job
    job.stop()
    session.cluster.shutdown()


def count_readings(session, patient: str) -> int:
    return session.execute(
        "SELECT count(*) AS n FROM readings_by_patient_day"
        " WHERE patient_id = %s AND day IN (%s, %s)",
        (patient, *recent_days()),
    ).one()["n"]


def alerts_of(session, patient: str) -> list[dict]:
    return list(session.execute("SELECT * FROM alerts_by_patient WHERE patient_id = %s",
                                (patient,)))


def test_scripted_scenario_then_crash_and_restart(pipeline) -> None:
    settings, session, job = pipeline
    base = int(time.time() * 1000) - 300_000

    # P1: MAP 60 for a minute -> the MAP limit (< 65) after 10 s persistence (SBP 95 alone
    # scores 2 in NEWS2 and meets one qSOFA criterion: no other alarm).
    p1 = [reading(P1, "01", i, base + i * 1000, sbp=95, dbp=42, map=60) for i in range(60)]
    # P2: stable, with artefacts that must raise nothing: a one-sample 250/min spike,
    # SpO2 0 (sensor off) for 3 s, and a pulse of 277/min (rejected as implausible).
    p2 = []
    for i in range(60):
        extra: dict[str, float] = {}
        if i == 20:
            extra = {"hr": 250, "pulse": 250}
        elif 30 <= i <= 32:
            extra = {"spo2": 0}
        elif i == 40:
            extra = {"pulse": 277}
        p2.append(reading(P2, "02", i, base + i * 1000, **extra))
    future = reading(P2, "02", 1000, int(time.time() * 1000) + 3_600_000)
    ghost = reading(GHOST, "09", 0, base)
    missing_ts = json.loads(p2[0].model_dump_json())
    del missing_ts["ts"]
    bad = [
        (P2.encode(), b"{not json"),
        (P2.encode(), json.dumps({**missing_ts, "seq": 500}).encode()),
        encode(ghost),
        encode(future),
        encode(p1[5]),  # the same device and sequence number again
    ]
    published = publish(settings, [*map(encode, p1), *map(encode, p2), *bad])
    assert published == 125

    job.start()
    wait_until(lambda: count_readings(session, P1) == 60 and count_readings(session, P2) == 60,
               timeout=180, what="120 readings in Cassandra")

    dead = wait_until(
        lambda: (d := consume_all(settings, settings.kafka.topic_deadletter)) and len(d) >= 6 and d,
        timeout=60, what="dead letters")
    assert sorted(d["reason"] for d in dead) == sorted([
        "malformed_json", "schema_violation", "unknown_patient", "future_timestamp",
        "duplicate", "implausible_value",
    ])
    implausible = next(d for d in dead if d["reason"] == "implausible_value")
    assert implausible["detail"].startswith("pulse")
    malformed = next(d for d in dead if d["reason"] == "malformed_json")
    assert base64.b64decode(malformed["original_head_b64"]) == b"{not json"
    assert malformed["original_length"] == 9 and not malformed["original_truncated"]
    assert malformed["original_sha256"] == hashlib.sha256(b"{not json").hexdigest()

    # The 277/min reading is kept without its pulse; the sensor-off SpO2 is not a value.
    p2_rows = {r["seq"]: r for r in session.execute(
        "SELECT seq, pulse, spo2, hr, sensors_off FROM readings_by_patient_day"
        " WHERE patient_id = %s AND day IN (%s, %s)", (P2, *recent_days()))}
    assert p2_rows[40]["pulse"] is None and p2_rows[40]["hr"] == 75
    assert p2_rows[31]["spo2"] is None and p2_rows[31]["sensors_off"] == {"spo2"}

    raw_count = sum(
        session.execute(
            "SELECT count(*) AS n FROM raw_messages WHERE topic = %s AND kafka_partition = %s"
            " AND offset_bucket = 0", (settings.kafka.topic_raw, p)).one()["n"]
        for p in range(settings.kafka.partitions)
    )
    assert raw_count == 125, "every record is stored exactly as received"

    # Exactly one clinical alert: P1's MAP limit. P2's artefacts raise nothing.
    alerts = consume_all(settings, settings.kafka.topic_alerts)
    clinical = [(a["patient_id"], a["rule"], a["event"]) for a in alerts
                if a["rule"] != "stale_signal"]
    assert clinical == [(P1, "limit_map_low", "raised")]
    map_alert = next(a for a in alerts if a["rule"] == "limit_map_low")
    assert map_alert["priority"] == "medium"
    assert map_alert["message"] == "Hypotension: MAP 60 mmHg below 65 mmHg"
    assert map_alert["reading_ts"] - map_alert["onset_ts"] >= 10_000  # persistence held
    assert [a["rule"] for a in alerts_of(session, P1)] == ["limit_map_low"]
    assert alerts_of(session, P2) == []

    # Every stored reading names its raw record, and that record is the reading.
    for patient in (P1, P2):
        for row in session.execute(
                "SELECT seq, device_id, kafka_partition, kafka_offset FROM"
                " readings_by_patient_day WHERE patient_id = %s AND day IN (%s, %s)",
                (patient, *recent_days())):
            raw = session.execute(
                "SELECT payload FROM raw_messages WHERE topic = %s AND kafka_partition = %s"
                " AND offset_bucket = 0 AND kafka_offset = %s",
                (settings.kafka.topic_raw, row["kafka_partition"], row["kafka_offset"])).one()
            original = json.loads(raw["payload"])
            assert (original["device_id"], original["seq"]) == (row["device_id"], row["seq"])

    # Both beds fall silent: the stale-signal alarm comes from the job's clock ticks.
    stale = wait_until(
        lambda: {a["patient_id"] for a in consume_all(settings, settings.kafka.topic_alerts)
                 if a["rule"] == "stale_signal" and a["event"] == "raised"} == {P1, P2},
        timeout=90, what="stale-signal alarms for both beds")
    assert stale

    # Crash mid-stream: P1 recovers (HR 75) while the job is SIGKILLed and restarted.
    p1_more = [reading(P1, "01", 60 + i, base + (60 + i) * 1000) for i in range(200)]

    def trickle() -> None:
        for chunk in range(0, 200, 10):
            publish(settings, map(encode, p1_more[chunk:chunk + 10]))
            time.sleep(0.25)

    feeder = threading.Thread(target=trickle)
    feeder.start()
    wait_until(lambda: count_readings(session, P1) > 80, timeout=60, what="part of phase 2")
    job.kill()
    feeder.join()
    job.start()
    wait_until(lambda: count_readings(session, P1) == 260, timeout=180,
               what="every phase-2 reading after the restart")
    wait_until(lambda: any(a["rule"] == "limit_map_low" and a["event"] == "cleared"
                           for a in consume_all(settings, settings.kafka.topic_alerts)),
               timeout=60, what="the MAP alarm to clear")

    validated = consume_all(settings, settings.kafka.topic_validated)
    per_reading = Counter((v["patient_id"], v["seq"]) for v in validated)
    assert len(per_reading) == 120 + 200, "every accepted reading published"
    assert max(per_reading.values()) == 1, "no reading published twice"

    alerts = consume_all(settings, settings.kafka.topic_alerts)
    per_event = Counter((a["alert_id"], a["event"]) for a in alerts)
    assert max(per_event.values()) == 1, f"an alert event was published twice: {per_event}"
    clinical = [(a["patient_id"], a["rule"], a["event"]) for a in alerts
                if a["rule"] != "stale_signal"]
    assert clinical == [(P1, "limit_map_low", "raised"), (P1, "limit_map_low", "cleared")]
    assert Counter((d["source_partition"], d["source_offset"], d["detail"])
                   for d in consume_all(settings, settings.kafka.topic_deadletter)
                   ).most_common(1)[0][1] == 1, "no dead letter published twice"

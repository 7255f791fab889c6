"""The real MIMIC stays through the real pipeline: artefacts are artefacts.

s00001 (32 h) reads 0 whenever a sensor is off: HR 46 times, pulse and SpO2 363 times,
RR 45 times, and once an HR of 11.5/min. s25047 (72 min) has a pulse of 277 and 272.8/min,
and respiratory rates of 1.8 and 0.9/min. None of this may page anybody as asystole,
tachycardia or desaturation: zeros become "sensor off", out-of-range values go to the
dead-letter topic with their reason, and every reading is kept.

The counts below are facts of the recordings (``../shared/data/mimic-numerics``), read
off the replayed frames against the plausible ranges of ``backend.vitals``.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cassandra.query import ValueSequence

from backend.admission import Admission
from backend.settings import Settings
from backend.storage import census
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from devices.mimic_replay import load_record, replay
from devices.wire import encode, encode_key
from harness.process import StreamJob
from harness.topics import consume_all, publish
from harness.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARD = "ICU-R"
STAYS = {"s00001": ("1", 1936), "s25047": ("2", 72)}
ZEROS = {
    "mimic-s00001": {"hr": 46, "pulse": 363, "spo2": 363, "rr": 45, "sbp": 1, "dbp": 1},
    "mimic-s25047": {"hr": 28, "pulse": 8, "spo2": 11, "rr": 5},
}
IMPLAUSIBLE = sorted([
    ("mimic-s00001", "hr"),                       # 11.5/min
    ("mimic-s25047", "rr"), ("mimic-s25047", "rr"), ("mimic-s25047", "rr"),  # 1.8, 0.9, 0.9
    ("mimic-s25047", "pulse"), ("mimic-s25047", "pulse"),  # 277 and 272.8/min
])


@pytest.fixture
def replayed(isolated_settings: Settings, tmp_path: Path):
    settings = isolated_settings.model_copy(update={
        "alerting": isolated_settings.alerting.model_copy(update={"stale_after_seconds": 3600}),
    })
    session = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(session, settings)
    session.set_keyspace(settings.cassandra.keyspace)
    now = int(time.time() * 1000)
    messages = []
    for name, (bed, minutes) in STAYS.items():
        rec = load_record(name, settings.data_dir)
        start = now - (minutes + 1) * 60_000  # the stay ends a minute ago
        census.admit(session, Admission(patient_id=rec.patient_id, ward=WARD, bed=bed,
                                        label=f"Bed {bed}", admitted_ts=start - 60_000))
        messages += [(encode_key(pid), encode(r))
                     for pid, r in replay(rec, start_ms=start, ward=WARD, bed=bed)]
    job = StreamJob(settings, tmp_path / "stream.log")
    yield settings, session, job, messages
    job.stop()
    session.cluster.shutdown()


def rows_of(session, patient_id: str) -> list[dict]:
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=d) for d in range(3)]
    return list(session.execute(
        "SELECT seq, hr, pulse, rr, spo2, sbp, dbp, sensors_off FROM readings_by_patient_day"
        " WHERE patient_id = %s AND day IN %s", (patient_id, ValueSequence(days))))


def test_monitor_artefacts_raise_no_clinical_alarm(replayed) -> None:
    settings, session, job, messages = replayed
    assert publish(settings, messages) == 1936 + 72
    job.start()

    rows = wait_until(
        lambda: (r := {p: rows_of(session, p) for p in ZEROS})
        and [len(r[p]) for p in ZEROS] == [1936, 72] and r,
        timeout=240, what="every replayed reading stored")

    # Nothing was dropped: each frame is a stored reading; zeros are "sensor off".
    for patient, expected in ZEROS.items():
        off = Counter(s for row in rows[patient] for s in (row["sensors_off"] or ()))
        assert dict(off) == expected, patient
        for row in rows[patient]:
            for vital in row["sensors_off"] or ():
                assert row[vital] is None, (patient, row)

    # Out-of-range values are removed from their reading and dead-lettered with a reason.
    dead = wait_until(
        lambda: (d := consume_all(settings, settings.kafka.topic_deadletter))
        and len(d) >= len(IMPLAUSIBLE) and d, timeout=60, what="dead letters")
    assert {d["reason"] for d in dead} == {"implausible_value"}
    by_position = {(d["source_partition"], d["source_offset"]) for d in dead}
    assert len(dead) == len(IMPLAUSIBLE) and len(by_position) == len(IMPLAUSIBLE) - 1
    fields = sorted(d["field"] for d in dead)
    assert fields == sorted(f for _, f in IMPLAUSIBLE)
    pulse_277 = [d for d in dead if "277" in d["detail"]]
    assert len(pulse_277) == 1 and pulse_277[0]["field"] == "pulse"
    s25047 = {r["seq"]: r for r in rows["mimic-s25047"]}
    # Minute 63 (ECG off, pulse 277, SpO2 96): kept, with its SpO2 and without the pulse.
    assert s25047[63]["pulse"] is None and s25047[63]["spo2"] == 96.0
    assert s25047[63]["sensors_off"] == {"hr", "rr"}

    # No tachycardia from the 277/min pulse, no alarm from any zero, and the sensors that
    # stayed off long enough raised the technical "sensor off" alarm instead.
    time.sleep(5)
    alerts = consume_all(settings, settings.kafka.topic_alerts)
    raised = [a for a in alerts if a["event"] == "raised"]
    rules = Counter(a["rule"] for a in raised)
    assert rules["limit_hr_high"] == 0
    for a in raised:
        values = {k: v for k, v in a["values"].items() if v is not None}
        assert 277.0 not in values.values() and 272.8 not in values.values(), a
        if not a["rule"].startswith("sensor_off_"):
            assert 0.0 not in values.values(), f"an alarm computed from a sensor-off 0: {a}"
    assert any(r.startswith("sensor_off_") for r in rules), rules
    s00001_clinical = [a["rule"] for a in raised if a["patient_id"] == "mimic-s00001"
                       and not a["rule"].startswith("sensor_off_")]
    assert "limit_spo2_low" not in s00001_clinical, "SpO2 0 is a sensor off, not a desaturation"
    assert "limit_hr_low" not in s00001_clinical, "HR 0 is a sensor off, not a bradycardia"

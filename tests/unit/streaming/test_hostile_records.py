"""Twelve thousand hostile, malformed and edge-case records (``devices.hostile``) through
the alarm query's stateful step, as Spark hands them over: no exception escapes, every
record comes out exactly once (a reading or a dead letter with a reason and a bounded
size), each class of record gets the outcome it deserves, and no record is an
``internal_error`` (that would be a defect, not a hostile input)."""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections import Counter, defaultdict

import pandas as pd
import pytest

from backend.settings import Settings
from backend.validation import RejectReason
from devices.hostile import KINDS, HostileRecord, Ward, generate
from streaming import alarm_evaluator as evaluator
from streaming.alarm_evaluator import INPUT_COLUMNS, make_evaluator
from tests.spark_fakes import FakeCensus, FakeGroupState

N_RECORDS = 12_000
BUCKETS = 4
BATCH = 400
ACCEPTED = "accepted"

# What each class may come out as ("accepted": a reading, field rejections aside). A
# record that would be accepted may also be a duplicate: after a counter jump and a clock
# step back, a device's readings are dominated while its memory lasts (by design, see
# backend.alerting.evaluation).
EXPECTED: dict[str, set[str]] = {
    "valid": {ACCEPTED, "duplicate"},
    "invalid_utf8": {"malformed_json"},
    "truncated_json": {"malformed_json"},
    "random_bytes": {"malformed_json", "schema_violation"},
    "not_an_object": {"malformed_json"},
    # a field of another type may still be a valid value of another meaning (ts -1)
    "wrong_type": {"schema_violation", "unsupported_schema_version", "unknown_patient",
                   "unknown_ward", "bed_mismatch", "stale_timestamp", "future_timestamp",
                   ACCEPTED, "duplicate"},
    "wrong_vital_type": {"schema_violation"},
    "non_finite": {"malformed_json", "schema_violation", ACCEPTED, "duplicate"},
    "absurd_value": {ACCEPTED, "duplicate"},
    "all_implausible": {"implausible_value"},
    "ts_far_off": {"future_timestamp", "stale_timestamp"},
    "ts_out_of_range_int": {"schema_violation"},
    "duplicate_keys": {"schema_violation"},
    "oversized": {"oversized"},
    "deeply_nested": {"schema_violation"},
    "very_wide": {"schema_violation"},
    "many_escapes": {"schema_violation"},
    "hidden_characters": {"schema_violation"},
    "long_identifier": {"schema_violation"},
    "no_values": {"no_values"},
    "unknown_vital": {"schema_violation"},
    "unknown_patient": {"unknown_patient"},
    "wrong_bed_or_ward": {"unknown_ward", "bed_mismatch"},
    "key_mismatch": {"schema_violation"},
    "exact_replay": {"duplicate", ACCEPTED},
    "sequence_reset": {ACCEPTED, "duplicate"},
    "sequence_max": {ACCEPTED, "duplicate"},
    "clock_step": {ACCEPTED, "duplicate"},
    "schema_version": {"unsupported_schema_version"},
    "charted_only": {ACCEPTED, "duplicate"},
}


WARD = Ward("ICU-H", {f"h{i:03d}": f"{i:02d}" for i in range(24)})


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    s = Settings()
    monkeypatch.setitem(evaluator._CACHES, s.cassandra.keyspace, FakeCensus(WARD.name, WARD.beds))
    return s


def _as_spark_passes_it(rec: HostileRecord, offset: int, received_ms: int,
                        s: Settings) -> tuple:
    """The row the JVM builds (streaming.vitals_job): an oversized value stays behind,
    its length, first bytes and SHA-256 come instead."""
    cap, head = s.spark.max_record_bytes, s.spark.deadletter_head_bytes
    value = rec.value
    size = None if value is None else len(value)
    big = size is not None and size > cap
    return (rec.key, None if big else value, size, value[:head] if big else None,
            hashlib.sha256(value).hexdigest() if big else None, "vitals.raw", 0, offset,
            pd.Timestamp(received_ms, unit="ms", tz="UTC"))


def test_every_hostile_record_is_stored_or_dead_lettered_with_a_reason(settings):
    start = int(time.time() * 1000) - 600_000
    records = list(generate(WARD, n=N_RECORDS, start_ms=start, step_ms=50, seed=7))
    kinds = Counter(r.kind for r in records)
    assert set(kinds) == {*KINDS, "valid"}, "every class is drawn"

    evaluate = make_evaluator(settings)
    states = [FakeGroupState() for _ in range(BUCKETS)]
    readings = 0
    letters: dict[int, dict] = {}
    field_letters = 0
    head_cap = settings.spark.deadletter_head_bytes
    for first in range(0, len(records), BATCH):
        by_bucket: dict[int, list[tuple]] = defaultdict(list)
        for offset in range(first, min(first + BATCH, len(records))):
            rec = records[offset]
            bucket = zlib.crc32(rec.key or b"") % BUCKETS  # one key, one bucket, in order
            received = start + (offset + 1) * 50  # the generator's true time
            by_bucket[bucket].append(_as_spark_passes_it(rec, offset, received, settings))
        for bucket, rows in by_bucket.items():
            frame = pd.DataFrame(rows, columns=INPUT_COLUMNS)
            for out in evaluate((bucket,), iter([frame]), states[bucket]):
                for kind, value in zip(out["kind"], out["value"], strict=True):
                    assert len(value) < 2 * head_cap + 4096, "a dead letter stays small"
                    if kind == evaluator.READING:
                        readings += 1
                    elif kind == evaluator.DEAD_LETTER:
                        letter = json.loads(value)
                        assert letter["reason"] in {r.value for r in RejectReason}
                        assert letter["detail"]
                        if letter["field"]:
                            field_letters += 1
                            continue
                        offset = letter["source_offset"]
                        assert offset not in letters, "a record is dead-lettered once"
                        letters[offset] = letter

    assert readings + len(letters) == len(records), "every record comes out exactly once"
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for offset, rec in enumerate(records):
        outcome = letters[offset]["reason"] if offset in letters else ACCEPTED
        outcomes[rec.kind][outcome] += 1
        assert outcome != "internal_error", f"{rec.kind} record {offset} broke the evaluator"
        assert outcome in EXPECTED[rec.kind], (
            f"{rec.kind} record {offset} came out as {outcome}: "
            f"{letters.get(offset, {}).get('detail')}")
    valid = outcomes["valid"]
    assert valid[ACCEPTED] >= 0.9 * sum(valid.values()), valid
    assert field_letters > 0, "implausible fields of kept readings are dead-lettered too"
    # the state stays bounded: only admitted patients, few devices each
    for st in states:
        if st.exists:
            doc = json.loads(st.value)
            assert set(doc["patients"]) <= set(WARD.beds)
            assert all(len(p["devices"]) <= settings.alerting.max_devices_per_patient
                       for p in doc["patients"].values())

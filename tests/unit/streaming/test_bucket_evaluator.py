"""The alarm query's stateful step (``streaming.alarm_evaluator``) outside Spark: several
patients share one state bucket, each keeps its own order, state and alarms, every record
comes out exactly once, and nothing a record contains stops the others."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from backend.messages import DeviceReading
from backend.settings import Settings
from backend.vitals import Vital
from devices.wire import encode
from streaming import alarm_evaluator as evaluator
from streaming.alarm_evaluator import INPUT_COLUMNS, OUTPUT_COLUMNS, make_evaluator
from tests.spark_fakes import FakeCensus, FakeGroupState


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    s = Settings()
    census = FakeCensus("icu-a", {p: f"bed-{p}" for p in ("p1", "p2")})
    monkeypatch.setitem(evaluator._CACHES, s.cassandra.keyspace, census)
    return s


def _reading(patient: str, seq: int, ts: int, hr: float = 80.0) -> DeviceReading:
    return DeviceReading(device_id=f"mon-{patient}", seq=seq, patient_id=patient,
                         ward="icu-a", bed=f"bed-{patient}", ts=ts,
                         vitals={Vital.HR: hr, Vital.SPO2: 97.0, Vital.RR: 16.0})


def _row(key: bytes | None, value: bytes | None, offset: int, ts_ms: int, *,
         topic: str = "vitals.raw", size: int | None = None, head: bytes | None = None,
         sha: str | None = None) -> tuple:
    return (key, value,
            len(value) if size is None and value is not None else size, head, sha, topic, 0,
            offset, pd.Timestamp(ts_ms, unit="ms", tz="UTC"))


def _frame(readings: list[DeviceReading], first_offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        [_row(r.patient_id.encode(), encode(r), first_offset + i, r.ts)
         for i, r in enumerate(readings)], columns=INPUT_COLUMNS)


def _run(evaluate, state: FakeGroupState, frames: list[pd.DataFrame]) -> pd.DataFrame:
    out: Iterator[pd.DataFrame] = evaluate((3,), iter(frames), state)
    parts = list(out)
    return pd.concat(parts) if parts else pd.DataFrame(columns=OUTPUT_COLUMNS)


def _values(out: pd.DataFrame, kind: str) -> list[dict]:
    return [json.loads(v) for v in out[out.kind == kind].value]


def test_each_record_comes_out_once_and_each_patient_keeps_its_state(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    batch = [_reading("p1", 1, now - 3000), _reading("p2", 1, now - 2900),
             _reading("p1", 2, now - 2000), _reading("p2", 1, now - 2900)]  # p2 dup
    out = _run(evaluate, state, [_frame(batch)])

    readings = _values(out, "reading")
    letters = _values(out, "dead_letter")
    assert [r["patient_id"] for r in readings] == ["p1", "p1", "p2"]
    assert set(out[out.kind == "reading"].topic) == {settings.kafka.topic_validated}
    assert [d["reason"] for d in letters] == ["duplicate"]
    assert letters[0]["source_offset"] == 3
    assert set(out[out.kind == "dead_letter"].topic) == {settings.kafka.topic_deadletter}

    doc = json.loads(state.value)
    assert set(doc["patients"]) == {"p1", "p2"}
    assert doc["patients"]["p1"]["devices"]["mon-p1"][:2] == [2, now - 2000]
    # the duplicate is remembered across micro-batches too
    again = _run(evaluate, state, [_frame([_reading("p2", 1, now - 2900)], 10)])
    assert again.kind.tolist() == ["dead_letter"]


def test_the_time_the_job_was_stopped_is_not_a_beds_silence(settings):
    """After a restart the first micro-batch (here the replay of a batch cut by the stop)
    holds only some beds; the others' readings still wait on Kafka. Seen from wall time
    every other bed was silent for the whole outage: no stale alarm may follow from that
    (the fault campaign's CI run of 7ee4461 raised 4). Watched silence still counts."""
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    _run(evaluate, state, [_frame([_reading("p1", 1, now), _reading("p2", 1, now)])])

    stale_ms = int(settings.alerting.stale_after_seconds * 1000)
    outage = stale_ms + 30_000  # the job stopped longer than the stale threshold
    doc = json.loads(state.value)
    doc["watched_ms"] -= outage
    for p in doc["patients"].values():
        p["last_wall_ms"] -= outage
    state.value = json.dumps(doc)
    out = _run(evaluate, state, [_frame([_reading("p1", 2, now)], first_offset=1)])
    assert _values(out, "alert") == []

    # then p2 stays silent while the job watches: stale once the threshold has passed
    doc = json.loads(state.value)
    doc["watched_ms"] -= 1000
    doc["patients"]["p2"]["last_wall_ms"] -= stale_ms + 1000
    state.value = json.dumps(doc)
    tick = pd.DataFrame([_row(b"tick", b"3", 0, now, topic=settings.kafka.topic_ticks)],
                        columns=INPUT_COLUMNS)
    out = _run(evaluate, state, [tick])
    assert [(a["patient_id"], a["rule"]) for a in _values(out, "alert")] == [
        ("p2", "stale_signal")]


@pytest.mark.parametrize("gap_s, moved_s", [(3, 0), (15, 0), (16, 1), (75, 60)])
def test_only_the_time_beyond_the_grace_is_discounted(gap_s: int, moved_s: int) -> None:
    from backend.alerting.evaluation import PatientState

    now = 1_000_000_000
    silent, new = PatientState.new("a"), PatientState.new("b")
    silent.last_wall_ms = now - gap_s * 1000 - 40_000
    patients = {"a": silent, "b": new}  # b: nothing accepted yet
    evaluator.discount_unwatched(patients, now - gap_s * 1000, now, grace_ms=15_000)
    assert silent.last_wall_ms == now - gap_s * 1000 - 40_000 + moved_s * 1000
    assert new.last_wall_ms is None
    evaluator.discount_unwatched(patients, None, now, grace_ms=15_000)  # older checkpoint
    assert silent.last_wall_ms == now - gap_s * 1000 - 40_000 + moved_s * 1000


def test_a_tick_checks_every_silent_bed_of_the_bucket(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    _run(evaluate, state, [_frame([_reading("p1", 1, now), _reading("p2", 1, now)])])

    # Pretend both beds' last readings were accepted long ago; only the clock ticks.
    doc = json.loads(state.value)
    stale_ms = int(settings.alerting.stale_after_seconds * 1000)
    for p in doc["patients"].values():
        p["last_wall_ms"] -= stale_ms + 1000
    state.value = json.dumps(doc)
    tick = pd.DataFrame([_row(b"tick", b"3", 0, now, topic=settings.kafka.topic_ticks)],
                        columns=INPUT_COLUMNS)
    out = _run(evaluate, state, [tick])
    assert sorted((a["patient_id"], a["rule"], a["event"]) for a in _values(out, "alert")) == [
        ("p1", "stale_signal", "raised"), ("p2", "stale_signal", "raised")]
    assert set(out.kind) == {"alert"}  # the tick itself is no record of anybody's
    # raised once: the next tick raises nothing new
    assert _run(evaluate, state, [tick]).empty


def test_a_discharged_patient_leaves_the_bucket_and_an_empty_bucket_is_removed(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    _run(evaluate, state, [_frame([_reading("p1", 1, now)])])
    evaluator._CACHES[settings.cassandra.keyspace].admitted.pop("p1")
    tick = pd.DataFrame([_row(b"tick", b"3", 0, now, topic=settings.kafka.topic_ticks)],
                        columns=INPUT_COLUMNS)
    _run(evaluate, state, [tick])
    assert not state.exists


def test_records_of_unknown_or_garbage_keys_leave_no_state(settings):
    """A sender inventing keys must not grow the state: only accepted readings do."""
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    rows = [_row(f"ghost-{i}".encode(), b"{not json", i, now) for i in range(50)]
    out = _run(evaluate, state, [pd.DataFrame(rows, columns=INPUT_COLUMNS)])
    assert len(_values(out, "dead_letter")) == 50
    assert not state.exists


def test_an_oversized_record_is_dead_lettered_from_what_the_jvm_passed(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    original = b'{"device_id":"' + b"x" * 2_000_000 + b'"}'
    head = original[: settings.spark.deadletter_head_bytes]
    row = _row(b"p1", None, 7, now, size=len(original), head=head,
               sha=hashlib.sha256(original).hexdigest())
    out = _run(evaluate, state, [pd.DataFrame([row], columns=INPUT_COLUMNS)])
    (letter,) = _values(out, "dead_letter")
    assert letter["reason"] == "oversized"
    assert letter["original_length"] == len(original) and letter["original_truncated"]
    assert letter["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert base64.b64decode(letter["original_head_b64"]) == head
    assert len(out.value.iloc[0]) < 4 * settings.spark.deadletter_head_bytes


def test_an_unforeseen_failure_dead_letters_that_record_and_nothing_else(
        settings, monkeypatch):
    """One reading makes the alarm engine raise: it becomes ``internal_error``; the
    other readings of the same patient and the other patient are processed as usual."""
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    real = evaluator.process

    def process(state, readings, **kw):
        if any(r.seq == 2 and r.patient_id == "p1" for r in readings):
            raise ZeroDivisionError("boom")
        return real(state, readings, **kw)

    monkeypatch.setattr(evaluator, "process", process)
    batch = [_reading("p1", 1, now - 3000), _reading("p1", 2, now - 2000),
             _reading("p1", 3, now - 1000), _reading("p2", 1, now - 1000)]
    out = _run(evaluate, state, [_frame(batch)])
    assert sorted((r["patient_id"], r["seq"]) for r in _values(out, "reading")) == [
        ("p1", 1), ("p1", 3), ("p2", 1)]
    (letter,) = _values(out, "dead_letter")
    assert letter["reason"] == "internal_error"
    assert letter["source_offset"] == 1
    assert letter["detail"].startswith("alarm evaluation failed: ZeroDivisionError at ")
    assert "boom" not in letter["detail"]  # an exception's text may quote the record


def test_a_validator_failure_is_an_internal_error_of_that_record(settings, monkeypatch):
    evaluate = make_evaluator(settings)
    now = int(time.time() * 1000)
    real = evaluator.validate

    def validate(raw, **kw):
        if b'"seq":2' in raw:
            raise RecursionError("deep")
        return real(raw, **kw)

    monkeypatch.setattr(evaluator, "validate", validate)
    out = _run(evaluate, FakeGroupState(),
               [_frame([_reading("p1", 1, now - 2000), _reading("p1", 2, now - 1000)])])
    assert [r["seq"] for r in _values(out, "reading")] == [1]
    assert [d["reason"] for d in _values(out, "dead_letter")] == ["internal_error"]


def test_a_census_outage_fails_the_batch_instead_of_rejecting_readings(settings,
                                                                         monkeypatch):
    class Down:
        def get(self, patient_id):
            raise evaluator.CensusUnavailable("census lookup failed")

    monkeypatch.setitem(evaluator._CACHES, settings.cassandra.keyspace, Down())
    evaluate = make_evaluator(settings)
    with pytest.raises(evaluator.CensusUnavailable):
        _run(evaluate, FakeGroupState(), [_frame([_reading("p1", 1, int(time.time() * 1000))])])

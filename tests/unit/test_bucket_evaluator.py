"""The stream job's stateful step (``streaming.evaluator``) outside Spark: several
patients share one state bucket, and each keeps its own order, state and alarms."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pandas as pd
import pytest

from backend.census import Admission
from backend.messages import DeviceReading
from backend.settings import Settings
from backend.vitals import Vital
from devices.wire import encode
from streaming import evaluator
from streaming.evaluator import INPUT_COLUMNS, OUTPUT_COLUMNS, make_evaluator


class FakeGroupState:
    """The part of Spark's ``GroupState`` the evaluator uses."""

    def __init__(self) -> None:
        self.value: str | None = None
        self.hasTimedOut = False
        self.timeout_ms: int | None = None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple:
        return (self.value,)

    def update(self, row: tuple) -> None:
        self.value = row[0]

    def setTimeoutDuration(self, ms: int) -> None:  # Spark's name
        self.timeout_ms = ms

    def remove(self) -> None:
        self.value = None


class FakeCensus:
    def __init__(self, *patients: str) -> None:
        self.admitted = {p: Admission(patient_id=p, ward="icu-a", bed=f"bed-{p}",
                                      admitted_ts=0)
                         for p in patients}

    def get(self, patient_id: str) -> Admission | None:
        return self.admitted.get(patient_id)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    s = Settings()
    census = FakeCensus("p1", "p2")
    monkeypatch.setitem(evaluator._CACHES, s.cassandra.keyspace, census)
    return s


def _reading(patient: str, seq: int, ts: int, hr: float = 80.0) -> DeviceReading:
    return DeviceReading(device_id=f"mon-{patient}", seq=seq, patient_id=patient,
                         ward="icu-a", bed=f"bed-{patient}", ts=ts,
                         vitals={Vital.HR: hr, Vital.SPO2: 97.0, Vital.RR: 16.0})


def _frame(readings: list[DeviceReading], first_offset: int = 0) -> pd.DataFrame:
    rows = []
    for i, r in enumerate(readings):
        key = r.patient_id.encode()
        rows.append((r.patient_id, key, encode(r), "vitals.raw", 0, first_offset + i,
                     pd.Timestamp(r.ts, unit="ms", tz="UTC")))
    return pd.DataFrame(rows, columns=INPUT_COLUMNS)


def _run(evaluate, state: FakeGroupState, frames: list[pd.DataFrame]) -> pd.DataFrame:
    out: Iterator[pd.DataFrame] = evaluate((3,), iter(frames), state)
    parts = list(out)
    return pd.concat(parts) if parts else pd.DataFrame(columns=OUTPUT_COLUMNS)


def test_each_record_comes_out_once_and_each_patient_keeps_its_state(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    batch = [_reading("p1", 1, now - 3000), _reading("p2", 1, now - 2900),
             _reading("p1", 2, now - 2000), _reading("p2", 1, now - 2900)]  # p2 dup
    out = _run(evaluate, state, [_frame(batch)])

    readings = out[out.kind == "reading"]
    rejects = out[out.kind == "reject"]
    assert sorted(readings.offset.tolist() + rejects.offset.tolist()) == [0, 1, 2, 3]
    assert readings.patient_id.tolist() == ["p1", "p1", "p2"]
    assert json.loads(rejects.payload.iloc[0])["reason"] == "duplicate"

    doc = json.loads(state.value)
    assert set(doc["patients"]) == {"p1", "p2"}
    p1 = json.loads(doc["patients"]["p1"])
    assert p1["devices"]["mon-p1"][0] == 2  # last sequence number of p1's device
    # the duplicate is remembered across micro-batches too
    again = _run(evaluate, state, [_frame([_reading("p2", 1, now - 2900)], 10)])
    assert again.kind.tolist() == ["reject"]


def test_a_silent_patient_goes_stale_while_its_bucket_mate_streams(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    _run(evaluate, state, [_frame([_reading("p1", 1, now), _reading("p2", 1, now)])])
    # The bucket is called back by the first stale deadline, not later.
    stale_ms = int(settings.alerting.stale_after_seconds * 1000)
    assert 1000 <= state.timeout_ms <= stale_ms

    # Pretend p2's last reading was accepted long ago; p1 keeps sending.
    doc = json.loads(state.value)
    p2 = json.loads(doc["patients"]["p2"])
    p2["last_wall_ms"] -= stale_ms + 1000
    doc["patients"]["p2"] = json.dumps(p2)
    state.value = json.dumps(doc)

    out = _run(evaluate, state, [_frame([_reading("p1", 2, now + 1000)], 5)])
    alerts = [json.loads(p) for p in out[out.kind == "alert"].payload]
    assert [(a["patient_id"], a["rule"], a["event"]) for a in alerts] == [
        ("p2", "stale_signal", "raised")]
    # raised once: the next call raises nothing new for p2
    out = _run(evaluate, state, [_frame([_reading("p1", 3, now + 2000)], 6)])
    assert (out.kind == "alert").sum() == 0


def test_a_discharged_patient_leaves_the_bucket_and_an_empty_bucket_is_removed(settings):
    evaluate = make_evaluator(settings)
    state = FakeGroupState()
    now = int(time.time() * 1000)
    _run(evaluate, state, [_frame([_reading("p1", 1, now)])])
    evaluator._CACHES[settings.cassandra.keyspace].admitted.pop("p1")
    state.hasTimedOut = True
    _run(evaluate, state, [])
    assert not state.exists

"""Recorded waveforms through Kafka into Cassandra: the MIT-BIH record 100 (two ECG leads
with beat annotations) and the PhysioNet/CinC 2015 alarm record a103l (ECG II, V and
pleth, bedside asystole alarm judged false) replayed by ``devices.waveform_replay``,
stored by the waveform sink, read back equal to what ``wfdb`` reads from the files."""

from __future__ import annotations

import time

import numpy as np
import pytest
import wfdb
from kafka import KafkaConsumer, KafkaProducer

from backend.settings import Settings
from backend.storage.cassandra import connect
from backend.storage.migrate import migrate
from backend.storage.waveforms import WaveformStore
from devices.waveform_replay import chunks, load, publish
from harness.waiting import wait_until
from streaming.waveform_sink import WaveformSink

pytestmark = pytest.mark.integration


def _drain(sink: WaveformSink, expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sink.stored + sink.rejected < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"sink stored {sink.stored}, rejected {sink.rejected} "
                                 f"of {expected}")
        sink.poll_once(500)


def test_replayed_records_land_in_cassandra_and_read_back_equal(
        isolated_settings: Settings) -> None:
    settings = isolated_settings
    db = connect(settings.cassandra, keyspace=False, wait_seconds=60)
    migrate(db, settings)
    db.set_keyspace(settings.cassandra.keyspace)
    data = settings.data_dir
    mit = load(data, "mitdb/100", seconds=20)
    alarm = load(data, "alarms2015/a103l")
    t_mit, t_alarm = 1_760_000_000_000, 1_760_000_600_000
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    sent = publish(producer, settings.kafka.topic_waveforms, chunks(mit, "wf-mit", t_mit))
    sent += publish(producer, settings.kafka.topic_waveforms,
                    chunks(alarm, "wf-alarm", t_alarm))
    # and one broken chunk: refused to the dead-letter topic, not stored
    producer.send(settings.kafka.topic_waveforms, key=b"wf-bad",
                  value=b'{"patient_id": "wf-bad", "channel": "II", "start_ts": 1, '
                        b'"fs": 250, "samples": []}')
    producer.flush(30)
    producer.close()

    sink = WaveformSink(settings, group="test-waveforms")
    try:
        _drain(sink, sent + 1)
    finally:
        sink.close()
    assert sink.rejected == 1

    store = WaveformStore(db)
    # MIT-BIH 100: both leads, sample for sample (float32), and the beat annotations
    ref = wfdb.rdrecord(str(data / "mitdb/100"), sampto=20 * 360)
    ann = wfdb.rdann(str(data / "mitdb/100"), "atr", sampto=20 * 360)
    assert {c.channel for c in store.channels("wf-mit")} == {"MLII", "V5"}
    for i, lead in enumerate(ref.sig_name):
        stored = store.between("wf-mit", lead, t_mit, t_mit + 20_000)
        samples = np.concatenate([c.samples for c in stored])
        np.testing.assert_array_equal(samples, ref.p_signal[:, i].astype(np.float32))
        positions = [round((c.start_ts - t_mit) * 360 / 1000) + o
                     for c in stored for o in c.ann_offsets]
        symbols = [s for c in stored for s in c.ann_symbols]
        assert positions == list(ann.sample) and symbols == list(ann.symbol)

    # a103l: ECG and pleth, and the bedside alarm at 300 s
    ref = wfdb.rdrecord(str(data / "alarms2015/a103l"))
    assert {c.channel for c in store.channels("wf-alarm")} == {"II", "V", "PLETH"}
    for i, ch in enumerate(ref.sig_name):
        stored = store.between("wf-alarm", ch, t_alarm, t_alarm + 330_000)
        samples = np.concatenate([c.samples for c in stored])
        np.testing.assert_array_equal(samples, ref.p_signal[:, i].astype(np.float32))
        alarms = [(c.start_ts - t_alarm) / 1000 + o / c.fs for c in stored
                  for o, s in zip(c.ann_offsets, c.ann_symbols, strict=True)
                  if s == "alarm: Asystole (False alarm)"]
        assert alarms == [300.0]

    dead = KafkaConsumer(settings.kafka.topic_deadletter,
                         bootstrap_servers=settings.kafka.bootstrap, group_id=None,
                         auto_offset_reset="earliest", consumer_timeout_ms=5000)
    letters = wait_until(lambda: [m.value for m in dead], timeout=30, what="the dead letter")
    dead.close()
    assert b"invalid_waveform" in letters[0]
    db.cluster.shutdown()

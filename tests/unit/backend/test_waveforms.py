"""Waveform chunks: validation, replay chunking of real records, the ECG paper figure."""

from __future__ import annotations

import numpy as np
import pytest

from backend.settings import Settings
from backend.storage.waveforms import StoredChunk, decode, encode
from backend.waveforms import WaveformError, parse_chunk
from devices.waveform_replay import chunks, load
from webapp.patient.ecg import MM_PER_MV, MM_PER_S, PLOT_WIDTH_PX, ecg_figure, strip_series

DATA = Settings().data_dir


def test_bad_chunks_are_refused_with_a_reason() -> None:
    ok = '{"patient_id": "p", "channel": "II", "start_ts": 0, "fs": 250, "samples": [0.1]}'
    assert parse_chunk(ok).end_ts == 4
    for bad, why in [
        ('{"patient_id": "p", "channel": "II", "start_ts": 0, "fs": 250, "samples": []}',
         "samples"),
        ('{"patient_id": "p", "channel": "II", "start_ts": 0, "fs": 0, "samples": [1]}', "fs"),
        ('{"patient_id": "p", "channel": "II", "start_ts": 0, "fs": 250, "samples": [1],'
         ' "ann_offsets": [5], "ann_symbols": ["N"]}', "outside"),
        ("not json", "json"),
    ]:
        with pytest.raises(WaveformError) as err:
            parse_chunk(bad)
        assert why.lower() in str(err.value).lower()


def test_float32_blobs_round_trip_with_gaps() -> None:
    values = [0.125, -1.5, None, 2.0]
    out = decode(encode(values))
    assert out[0] == 0.125 and out[1] == -1.5 and np.isnan(out[2]) and out[3] == 2.0


def test_replay_chunks_cover_the_record_and_carry_its_annotations() -> None:
    rec = load(DATA, "mitdb/100", seconds=10)
    got = list(chunks(rec, "p1", 1_000_000, chunk_s=1.0))
    assert len(got) == 10 * 2  # 10 s x 2 leads
    mlii = [c for c in got if c.channel == "MLII"]
    samples = np.concatenate([c.samples for c in mlii])
    np.testing.assert_array_equal(samples, rec.signals[:, 0].astype(np.float32))
    offsets = [round((c.start_ts - 1_000_000) * 360 / 1000) + o for c in mlii
               for o in c.ann_offsets]
    assert offsets == list(rec.ann_samples)
    assert mlii[1].start_ts == 1_001_000


def test_a103l_carries_its_false_asystole_alarm_at_300_s() -> None:
    rec = load(DATA, "alarms2015/a103l")
    assert rec.channels == ["II", "V", "PLETH"]
    assert rec.ann_symbols == ["alarm: Asystole (False alarm)"]
    assert rec.ann_samples.tolist() == [300 * 250]


def test_ecg_paper_is_25_mm_per_s_and_10_mm_per_mv() -> None:
    fs = 250.0
    t = np.arange(2500) / fs
    chunk = StoredChunk("II", 0, fs, "mV", "x", np.sin(t * 6) * 1.2, [250], ["N"])
    fig = ecg_figure({"II": ("mV", [chunk])}, 0, 0.0, 10.0)
    lay = fig["layout"]
    assert np.allclose(np.diff(lay["xaxis"]["tickvals"]), 0.2)
    assert lay["xaxis"]["minor"]["dtick"] == 0.04
    assert [t for t in lay["xaxis"]["ticktext"] if t][:3] == ["0 s", "1 s", "2 s"]
    assert lay["yaxis"]["dtick"] == 0.5 and lay["yaxis"]["minor"]["dtick"] == 0.1
    px_per_mm_x = PLOT_WIDTH_PX / (10 * MM_PER_S)
    lo, hi = lay["yaxis"]["range"]
    plot_h = lay["height"] - lay["margin"]["t"] - lay["margin"]["b"]
    px_per_mm_y = plot_h / ((hi - lo) * MM_PER_MV)
    assert abs(px_per_mm_x - px_per_mm_y) / px_per_mm_x < 0.01
    assert any(a["text"] == "N" and abs(a["x"] - 1.0) < 1e-9 for a in lay["annotations"])


def test_strip_takes_only_the_samples_inside_it() -> None:
    c = StoredChunk("II", 1000, 100.0, "mV", "", np.arange(100, dtype=float), [50], ["V"])
    t, _v, anns = strip_series([c], 0, 1.2, 1.5)
    assert t[0] == pytest.approx(1.2) and t.size == 30
    assert anns == []  # the beat at 1.5 s is the next strip's
    assert strip_series([c], 0, 1.4, 1.6)[2] == [(1.5, "V")]

"""Replay a recorded waveform (PhysioNet WFDB record) as a bedside monitor's stream.

``icu waveforms replay --record mitdb/100 --patient P-1 --seconds 60`` reads the record
under ``Settings.data_dir`` with ``wfdb`` (physical units), cuts every channel into
chunks of ``--chunk`` seconds, attaches the reference beat annotations (``.atr``) that
fall in each chunk, and publishes them to ``Settings.kafka.topic_waveforms`` keyed by
patient. The first sample is placed at ``--start`` (default: so the replayed span ends
now); ``--paced`` sends each chunk when the wall clock reaches it instead of at once.

PhysioNet/CinC 2015 alarm records (``alarms2015/a103l``) carry the bedside alarm in their
header comments (e.g. ``Asystole`` / ``False alarm``); the alarm went off at 300 s (the
challenge's convention), so the chunk holding that instant carries an annotation
``alarm: Asystole (False alarm)`` on every channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import wfdb
from kafka import KafkaProducer

from backend.waveforms import WaveformChunk

log = logging.getLogger(__name__)
ALARM_AT_S = 300.0  # PhysioNet/CinC 2015: the alarm is raised at 5:00 of each record


@dataclass(frozen=True)
class Recording:
    name: str  # e.g. "mitdb/100"
    fs: float
    channels: list[str]
    units: list[str]
    signals: np.ndarray  # (samples, channels), physical units
    ann_samples: np.ndarray
    ann_symbols: list[str]


def load(data_dir: Path, name: str, seconds: float | None = None,
         offset_s: float = 0.0) -> Recording:
    """A record from ``data_dir/name`` (``offset_s`` .. ``offset_s + seconds``)."""
    path = data_dir / name
    if not path.with_suffix(".hea").exists():
        raise click.ClickException(f"no WFDB record {path} (.hea missing)")
    header = wfdb.rdheader(str(path))
    start = int(offset_s * header.fs)
    stop = None if seconds is None else min(header.sig_len, start + int(seconds * header.fs))
    rec = wfdb.rdrecord(str(path), sampfrom=start, sampto=stop)
    ann_samples, ann_symbols = np.empty(0, int), []
    if path.with_suffix(".atr").exists():
        ann = wfdb.rdann(str(path), "atr", sampfrom=start, sampto=stop)
        ann_samples, ann_symbols = np.asarray(ann.sample) - start, list(ann.symbol)
    comments = [c.strip() for c in (header.comments or []) if c.strip()]
    if len(comments) >= 2 and comments[1].lower() in ("true alarm", "false alarm"):
        at = int(ALARM_AT_S * header.fs) - start
        if 0 <= at < rec.p_signal.shape[0]:
            order = np.searchsorted(ann_samples, at)
            ann_samples = np.insert(ann_samples, order, at)
            ann_symbols.insert(int(order), f"alarm: {comments[0]} ({comments[1]})")
    return Recording(name, float(rec.fs), list(rec.sig_name), list(rec.units),
                     rec.p_signal, ann_samples, ann_symbols)


def chunks(rec: Recording, patient_id: str, start_ms: int,
           chunk_s: float = 1.0) -> Iterator[WaveformChunk]:
    """Every channel's chunks, in time order (all channels of a chunk together)."""
    per = max(1, round(chunk_s * rec.fs))
    n = rec.signals.shape[0]
    for i0 in range(0, n, per):
        i1 = min(n, i0 + per)
        in_chunk = (rec.ann_samples >= i0) & (rec.ann_samples < i1)
        offsets = [int(s - i0) for s in rec.ann_samples[in_chunk]]
        symbols = [rec.ann_symbols[k] for k in np.flatnonzero(in_chunk)]
        ts = start_ms + round(i0 * 1000 / rec.fs)
        for c, channel in enumerate(rec.channels):
            values = rec.signals[i0:i1, c]
            samples = [None if np.isnan(v) else float(np.float32(v)) for v in values]
            yield WaveformChunk(patient_id=patient_id, channel=channel, source=rec.name,
                                start_ts=ts, fs=rec.fs, units=rec.units[c] or "",
                                samples=samples, ann_offsets=offsets, ann_symbols=symbols)


def publish(producer: KafkaProducer, topic: str, items: Iterator[WaveformChunk],
            paced: bool = False) -> int:
    n = 0
    for chunk in items:
        if paced:
            delay = chunk.start_ts / 1000 - time.time()
            if delay > 0:
                time.sleep(delay)
        producer.send(topic, key=chunk.patient_id.encode(),
                      value=chunk.model_dump_json().encode())
        n += 1
    producer.flush(60)
    return n

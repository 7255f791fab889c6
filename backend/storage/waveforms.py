"""Waveform chunks in Cassandra (``waveforms_by_patient_hour``) and the channel index.

Samples are stored as little-endian float32 (a gap as NaN): 1 s of ECG at 360 Hz is
1.4 kB. A chunk is keyed by (patient, channel, hour, start time), so storing a replayed
chunk again overwrites it: the sink may deliver a message twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent

from backend.storage.readings import run_concurrently
from backend.storage.statements import prepared
from backend.storage.timestamps import to_datetime as _dt
from backend.storage.timestamps import to_ms as _ms
from backend.waveforms import WaveformChunk

HOUR_MS = 3_600_000


def encode(samples: Iterable[float | None]) -> bytes:
    return np.asarray([np.nan if s is None else s for s in samples], dtype="<f4").tobytes()


def decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float64)


@dataclass(frozen=True, slots=True)
class StoredChunk:
    channel: str
    start_ts: int
    fs: float
    units: str
    source: str
    samples: np.ndarray
    ann_offsets: list[int]
    ann_symbols: list[str]


@dataclass(frozen=True, slots=True)
class Channel:
    channel: str
    fs: float
    units: str
    source: str
    first_ts: int


class WaveformStore:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._insert = prepared(
            session,
            "INSERT INTO waveforms_by_patient_hour (patient_id, channel, hour, start_ts, fs,"
            " units, source, samples, ann_offsets, ann_symbols)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self._channel = prepared(
            session,
            "INSERT INTO waveform_channels_by_patient (patient_id, channel, fs, units, source,"
            " first_ts) VALUES (?, ?, ?, ?, ?, ?)")
        self._first = prepared(
            session,
            "SELECT first_ts FROM waveform_channels_by_patient WHERE patient_id = ?"
            " AND channel = ?")
        self._channels = prepared(
            session,
            "SELECT * FROM waveform_channels_by_patient WHERE patient_id = ?")
        self._range = prepared(
            session,
            "SELECT * FROM waveforms_by_patient_hour WHERE patient_id = ? AND channel = ?"
            " AND hour = ? AND start_ts >= ? AND start_ts < ?")

    def write(self, chunks: Iterable[WaveformChunk]) -> int:
        chunks = list(chunks)
        statements = [
            (self._insert, (c.patient_id, c.channel, _dt(c.start_ts - c.start_ts % HOUR_MS),
                            _dt(c.start_ts), c.fs, c.units, c.source, encode(c.samples),
                            c.ann_offsets or None, c.ann_symbols or None))
            for c in chunks
        ]
        run_concurrently(self.session, statements)
        # the channel index keeps the earliest chunk time seen
        firsts: dict[tuple[str, str], WaveformChunk] = {}
        for c in chunks:
            key = (c.patient_id, c.channel)
            if key not in firsts or c.start_ts < firsts[key].start_ts:
                firsts[key] = c
        for (pid, ch), c in firsts.items():
            row = self.session.execute(self._first, (pid, ch)).one()
            if row is None or _ms(row["first_ts"]) > c.start_ts:
                self.session.execute(self._channel, (pid, ch, c.fs, c.units, c.source,
                                                     _dt(c.start_ts)))
        return len(statements)

    def channels(self, patient_id: str) -> list[Channel]:
        return [Channel(r["channel"], r["fs"], r["units"] or "", r["source"] or "",
                        _ms(r["first_ts"]))
                for r in self.session.execute(self._channels, (patient_id,))]

    def between(self, patient_id: str, channel: str, start_ms: int,
                end_ms: int) -> list[StoredChunk]:
        """Chunks of one channel starting in ``[start - 10 s, end)``, oldest first (a
        chunk that began just before ``start`` still covers it)."""
        lo = start_ms - 10_000
        params = []
        hour = lo - lo % HOUR_MS
        while hour < end_ms:
            params.append((self._range, (patient_id, channel, _dt(hour), _dt(lo),
                                         _dt(end_ms))))
            hour += HOUR_MS
        results = execute_concurrent(self.session, params, concurrency=4,
                                     raise_on_first_error=True, results_generator=False)
        return [StoredChunk(r["channel"], _ms(r["start_ts"]), r["fs"], r["units"] or "",
                            r["source"] or "", decode(r["samples"]),
                            list(r["ann_offsets"] or []), list(r["ann_symbols"] or []))
                for _ok, result in results for r in result]

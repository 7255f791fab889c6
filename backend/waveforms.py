"""Waveform chunks: the wire format of ``waveforms.raw`` and the domain rules.

A bedside monitor (or the replayer of a recorded one, ``devices.waveform_replay``) sends
each channel in chunks of a second or so: the samples in physical units (mV for ECG, the
record's unit for pleth), the sampling rate, and the beat annotations that fall inside
the chunk as sample offsets and symbols (MIT-BIH codes: ``N`` normal, ``A`` atrial
premature, ``V`` ventricular premature, ``+`` rhythm change, ...).

A chunk that breaks these rules is refused with a reason (``WaveformError``); the sink
sends it to the dead-letter topic with its bytes instead of storing it.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field, ValidationError, model_validator

MAX_CHUNK_SAMPLES = 10_000  # 10 s at 1 kHz: a chunk is a second or so, never a record
MAX_FS = 2_000.0


class WaveformError(ValueError):
    pass


class WaveformChunk(BaseModel):
    patient_id: str = Field(min_length=1, max_length=64)
    channel: str = Field(min_length=1, max_length=32)  # e.g. "MLII", "II", "PLETH"
    source: str = Field(default="", max_length=128)  # e.g. "mitdb/100"
    start_ts: int  # ms, time of the first sample
    fs: float = Field(gt=0, le=MAX_FS)
    units: str = Field(default="mV", max_length=16)
    samples: list[float | None] = Field(min_length=1, max_length=MAX_CHUNK_SAMPLES)
    ann_offsets: list[int] = []
    ann_symbols: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> WaveformChunk:
        if len(self.ann_offsets) != len(self.ann_symbols):
            raise ValueError("ann_offsets and ann_symbols differ in length")
        if any(not 0 <= o < len(self.samples) for o in self.ann_offsets):
            raise ValueError("an annotation lies outside its chunk")
        if any(s is not None and not math.isfinite(s) for s in self.samples):
            raise ValueError("samples must be finite numbers (null for a gap)")
        return self

    @property
    def end_ts(self) -> int:
        return self.start_ts + round(len(self.samples) * 1000 / self.fs)


def parse_chunk(data: bytes | str) -> WaveformChunk:
    """A chunk from its JSON, or ``WaveformError`` naming what is wrong."""
    try:
        return WaveformChunk.model_validate_json(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'chunk'}: {e['msg']}"
            for e in exc.errors()[:3])
        raise WaveformError(problems) from None

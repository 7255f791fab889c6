"""Deliberately malformed traffic, to exercise the validator and the dead-letter path.

Off by default. ``inject(records, fraction, seed)`` turns each reading, with probability
``fraction`` (seeded, reproducible), into one of these faults, chosen uniformly:

``bad_json``
    the message cut off in the middle: not parseable JSON.
``missing_field``
    a required field (``ts``, ``seq``, ``device_id`` or ``vitals``) left out.
``impossible_value``
    a value no monitor can measure: SpO2 140 %, HR -20/min or temperature 55 °C (outside
    ``backend.vitals.VITALS`` plausible ranges).
``duplicate_seq``
    the reading is sent, then sent again unchanged (same device, same ``seq``), as an
    at-least-once retransmission would.
``future_ts``
    the device clock is a year ahead: ``ts`` + 365 days.

A faulty message replaces the reading it was made from (the device sent garbage
instead), so the series has a gap there; ``duplicate_seq`` adds a copy after the good
one. The key stays the patient id, so the fault lands on the patient's partition.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator

from devices.wire import Outgoing, Record, encode

FAULTS = ("bad_json", "missing_field", "impossible_value", "duplicate_seq", "future_ts")
_REQUIRED = ("ts", "seq", "device_id", "vitals")
_IMPOSSIBLE = (("spo2", 140.0), ("hr", -20.0), ("temp", 55.0))
YEAR_MS = 365 * 24 * 3600 * 1000


def corrupt(fault: str, value: bytes, rng: random.Random) -> bytes:
    """The bytes of one faulty message made from a good one (not for ``duplicate_seq``)."""
    if fault == "bad_json":
        return value[: max(1, len(value) // 2)]
    doc = json.loads(value)
    if fault == "missing_field":
        del doc[rng.choice(_REQUIRED)]
    elif fault == "impossible_value":
        name, bad = rng.choice(_IMPOSSIBLE)
        doc["vitals"][name] = bad
    elif fault == "future_ts":
        doc["ts"] = doc["ts"] + YEAR_MS
    else:
        raise ValueError(f"unknown fault {fault!r}")
    return json.dumps(doc, separators=(",", ":")).encode()


def inject(records: Iterable[Record], fraction: float, seed: object = 0) -> Iterator[Outgoing]:
    """Encode ``records``, making about ``fraction`` of them faulty (see module doc)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be within [0, 1]")
    rng = random.Random(f"faults:{seed}")
    for key, reading in records:
        k, v = key.encode(), encode(reading)
        if fraction == 0.0 or rng.random() >= fraction:
            yield Outgoing(k, v, reading.ts)
            continue
        fault = rng.choice(FAULTS)
        if fault == "duplicate_seq":
            yield Outgoing(k, v, reading.ts)
            yield Outgoing(k, v, reading.ts, fault)
        else:
            yield Outgoing(k, corrupt(fault, v, rng), reading.ts, fault)

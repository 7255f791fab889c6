"""Building and encoding the device message (``backend.messages.DeviceReading``, schema v1).

* value: the reading as compact UTF-8 JSON (no spaces, ``null`` fields left out);
* key: the patient id as UTF-8, so Kafka's default (murmur2) partitioner keeps each
  patient's series on one partition, in order;
* ``seq``: per device, counting the messages it sent, from 0, without gaps;
* ``ts``: the device's timestamp of the reading, integer ms since the Unix epoch (UTC).

Units are those of ``backend.vitals.VITALS``; a message never carries units. A vital the
device has no value for is left out of ``vitals`` (the schema's "absent"); a value of 0 is
sent as 0 (the monitor's "sensor off"), never dropped or cleaned here.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from backend.messages import DeviceReading
from backend.vitals import VITALS


def _units_doc() -> str:
    rows = [f"  ``{s.vital.value}``: {s.label}, {s.display_unit} (UCUM ``{s.ucum}``), "
            f"LOINC {s.loinc}" for s in VITALS.values()]
    return "\nParameters sent (generated from ``backend.vitals.VITALS``):\n\n" + "\n".join(rows)


__doc__ = (__doc__ or "") + _units_doc()

Record = tuple[str, DeviceReading]
"""What the pure generators yield: (Kafka key as text = patient id, the reading)."""


class Outgoing(NamedTuple):
    """One Kafka record ready to send. ``fault`` names a deliberately malformed record
    (see ``devices.faults``); ``None`` for a well-formed reading."""

    key: bytes
    value: bytes
    ts: int
    fault: str | None = None


def encode(reading: DeviceReading) -> bytes:
    """The wire bytes of a reading: compact JSON, UTF-8, ``None`` fields omitted."""
    return reading.model_dump_json(exclude_none=True).encode()


def encode_key(patient_id: str) -> bytes:
    return patient_id.encode()


def to_outgoing(records: Iterable[Record]) -> Iterator[Outgoing]:
    """Serialise the readings of a generator, unchanged."""
    for key, reading in records:
        yield Outgoing(key.encode(), encode(reading), reading.ts)


class SeqCounter:
    """The per-device message counter: 0, 1, 2, ... (one per message actually sent)."""

    __slots__ = ("_next",)

    def __init__(self, start: int = 0) -> None:
        self._next = start

    def __call__(self) -> int:
        n = self._next
        self._next = n + 1
        return n

    @property
    def next(self) -> int:
        return self._next


def pseudonym(rng: random.Random) -> str:
    """Two initials, e.g. ``"J.D."``: a ward-screen label that is nobody's real name."""
    letters = string.ascii_uppercase
    return f"{rng.choice(letters)}.{rng.choice(letters)}."


def bed_label(bed: str, rng: random.Random) -> str:
    """``"Bed 3 · J.D."``: what the ward screen shows for an admission."""
    return f"Bed {bed} · {pseudonym(rng)}"


def stable_rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from ``parts`` (stable across processes and runs, unlike
    ``hash()``), so that each patient draws from its own reproducible stream."""
    return random.Random(":".join(str(p) for p in parts))


def boot_id(now_ms: int) -> str:
    """A short token that differs per simulator run (base-36 of the start second).

    It is appended to device ids, as a monitor's serial number and boot count would
    identify it: a restarted simulator starts ``seq`` at 0 again, and must not look like
    the earlier run's device replaying old sequence numbers.
    """
    n = now_ms // 1000
    digits = string.digits + string.ascii_lowercase
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"


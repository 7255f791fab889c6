"""A seeded generator of hostile, malformed and edge-case device records.

What a hospital network really delivers besides clean readings: broken firmware,
misconfigured gateways, replays, reboots, and now and then somebody probing. Each record
is the raw ``(key, value)`` of a Kafka message on ``vitals.raw`` plus the class it was
drawn from. The classes (``KINDS``) cover invalid UTF-8 and JSON, wrong types,
non-finite and absurd numbers, timestamps far off or in the wrong unit, duplicate keys,
oversized, deeply nested and very wide payloads, characters that hide or reorder text in
identifiers, frames with no values, keys that do not match the message, sequence
resets, counters that jump to their maximum, exact replays and clock steps. Valid
readings of admitted patients are interleaved, so a test can check that they still get
through.

Used by the test suite (every record either stored or dead-lettered with a reason, the
stream never stops) and by ``icu simulate hostile`` against a running system.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from backend.vitals import Vital

MAX_SEQ = 2**63 - 1


@dataclass(frozen=True, slots=True)
class HostileRecord:
    key: bytes | None
    value: bytes | None
    kind: str


@dataclass(frozen=True)
class Ward:
    """Who the generator may pretend to be: admitted patients, their ward and beds."""

    name: str
    beds: dict[str, str]  # patient id -> bed


def _normal(rng: random.Random) -> dict[str, float]:
    return {"hr": float(rng.randint(55, 110)), "pulse": float(rng.randint(55, 110)),
            "spo2": float(rng.randint(92, 100)), "rr": float(rng.randint(10, 24))}


class _Clock:
    """The true time of the generated stream: one step per record."""

    def __init__(self, start_ms: int, step_ms: int) -> None:
        self.now, self.step = start_ms, step_ms


class _Device:
    """One admitted patient's monitor: a counter and a clock that may misbehave."""

    def __init__(self, patient: str, ward: str, bed: str, clock: _Clock) -> None:
        self.patient, self.ward, self.bed = patient, ward, bed
        self.device = f"mon-{patient}"
        self.seq = 0
        self.clock = clock
        self.offset = 0  # this device's clock error, ms
        self.ts = clock.now
        self.sent: list[dict] = []

    def next(self, rng: random.Random, **override) -> dict:
        self.seq += 1
        self.ts = self.clock.now + self.offset
        msg = {"device_id": self.device, "seq": self.seq, "patient_id": self.patient,
               "ward": self.ward, "bed": self.bed, "ts": self.ts, "vitals": _normal(rng)}
        if not override:  # a clean message, kept as it was before any mangling
            self.sent.append(json.loads(json.dumps(msg)))
        msg.update(override)
        return msg


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()


def generate(ward: Ward, *, n: int, start_ms: int, step_ms: int = 50, seed: int = 0,
             max_record_bytes: int = 64 * 1024, valid_share: float = 0.3
             ) -> Iterator[HostileRecord]:
    """``n`` records: about ``valid_share`` valid readings, the rest hostile, in a seeded
    random order. The true time starts at ``start_ms`` and advances ``step_ms`` per
    record; device clocks follow it, off by up to a minute after a ``clock_step``. Choose
    both so that the records' times are close to when they will be consumed."""
    rng = random.Random(seed)
    clock = _Clock(start_ms, step_ms)
    devices = [_Device(p, ward.name, bed, clock) for p, bed in ward.beds.items()]
    kinds = list(KINDS.items())
    for _ in range(n):
        clock.now += clock.step
        dev = rng.choice(devices)
        if rng.random() < valid_share:
            yield HostileRecord(dev.patient.encode(), _dumps(dev.next(rng)), "valid")
            continue
        kind, make = rng.choice(kinds)
        key, value = make(rng, dev, max_record_bytes)
        yield HostileRecord(key, value, kind)


# --- the classes -------------------------------------------------------------------------

Make = Callable[[random.Random, _Device, int], tuple[bytes | None, bytes | None]]


def _key(dev: _Device) -> bytes:
    return dev.patient.encode()


def _with(dev: _Device, rng: random.Random, **override) -> bytes:
    return _dumps(dev.next(rng, **override))


def _field_text(dev: _Device, rng: random.Random, field: str, text: str) -> bytes:
    msg = dev.next(rng)
    msg[field] = text
    return _dumps(msg)


def invalid_utf8(rng, dev, cap):
    msg = _with(dev, rng)
    cut = rng.randrange(1, len(msg))
    return _key(dev), msg[:cut] + bytes([rng.choice([0x80, 0xC3, 0xFF, 0xFE, 0xED])]) + msg[cut:]


def truncated_json(rng, dev, cap):
    msg = _with(dev, rng)
    return _key(dev), msg[: rng.randrange(0, len(msg) - 1)]


def random_bytes(rng, dev, cap):
    return _key(dev), rng.randbytes(rng.randrange(0, 400))


def not_an_object(rng, dev, cap):
    return _key(dev), rng.choice([b"[]", b"null", b"42", b'"text"', b"true", b"[1,2,3]",
                                  b"", b" ", b"\x00"])


def wrong_type(rng, dev, cap):
    msg = dev.next(rng)
    field = rng.choice(["device_id", "seq", "patient_id", "ward", "bed", "ts", "vitals",
                        "o2_supplemental", "consciousness", "schema_version"])
    msg[field] = rng.choice(["72", 72.5, True, None, [1], {"a": 1}, -1, "", 1.0])
    return _key(dev), _dumps(msg)


def wrong_vital_type(rng, dev, cap):
    msg = dev.next(rng)
    msg["vitals"][rng.choice(list(Vital)).value] = rng.choice(
        ["72", True, [72], {"v": 72}, "NaN", ""])
    return _key(dev), _dumps(msg)


def non_finite(rng, dev, cap):
    """The heart rate as a literal JSON has no finite float for (or Python's json emits)."""
    text = _with(dev, rng).decode()
    start = text.index('"hr":') + len('"hr":')
    end = text.index(",", start)
    literal = rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e308",
                          "-1e308", "1e-320", "9" * 400, "-0", "0.0000000001"])
    return _key(dev), (text[:start] + literal + text[end:]).encode()


def absurd_value(rng, dev, cap):
    vitals = _normal(rng)
    vitals[rng.choice(list(Vital)).value] = rng.choice(
        [-1.0, 0.5, 1000.0, 1e6, -273.0, 151.0, 5000.0, 0.0001])
    return _key(dev), _with(dev, rng, vitals=vitals)


def all_implausible(rng, dev, cap):
    return _key(dev), _with(dev, rng, vitals={"hr": 900.0, "spo2": 500.0, "rr": -3.0})


def ts_far_off(rng, dev, cap):
    now = dev.ts
    ts = rng.choice([now + 10**9, now - 10**11, now // 1000, now * 1000, 0, -1,
                     2**63 - 1, -(2**63), now + 3_600_000, now - 30 * 86_400_000])
    return _key(dev), _with(dev, rng, ts=ts)


def ts_out_of_range_int(rng, dev, cap):
    text = _with(dev, rng).decode()
    return _key(dev), text.replace(f'"ts":{dev.ts}', f'"ts":{2**70}', 1).encode()


def duplicate_keys(rng, dev, cap):
    text = _with(dev, rng).decode()
    if rng.random() < 0.5:
        text = text[:-1] + f',"patient_id":"{dev.patient}-other"' + "}"
    else:
        text = text.replace('"hr":', '"hr":250.0,"hr":', 1)
    return _key(dev), text.encode()


def oversized(rng, dev, cap):
    msg = dev.next(rng)
    msg["source"] = "x" * rng.randrange(cap, cap * 4)
    return _key(dev), _dumps(msg)


def deeply_nested(rng, dev, cap):
    depth = rng.randrange(50, min(cap // 2, 20_000))
    body = b"[" * depth + b"]" * depth
    return _key(dev), b'{"vitals":' + body + b"}" if rng.random() < 0.5 else body


def very_wide(rng, dev, cap):
    msg = dev.next(rng)
    n = rng.randrange(100, max(101, cap // 12))
    target = msg["vitals"] if rng.random() < 0.5 else msg
    for i in range(n):
        target[f"k{i}"] = i
    value = _dumps(msg)
    return _key(dev), value[:cap]  # cut at the cap sometimes makes it invalid too


def many_escapes(rng, dev, cap):
    msg = dev.next(rng)
    msg["device_id"] = "\u200b" * rng.randrange(100, cap // 7)
    return _key(dev), json.dumps(msg).encode()


def hidden_characters(rng, dev, cap):
    field = rng.choice(["device_id", "patient_id", "ward", "bed", "source"])
    ch = rng.choice(["\u202e", "\u200b", "\u200d", "\u2066", "\x00", "\x1b", "\n", "\t",
                     "\ufeff", "\u0085", "\u2028", '"', "\\", ",", "{"])
    return _key(dev), _field_text(dev, rng, field, f"bed{ch}12")


def long_identifier(rng, dev, cap):
    field = rng.choice(["device_id", "patient_id", "ward", "bed", "source"])
    return _key(dev), _field_text(dev, rng, field, "A" * rng.randrange(65, 2000))


def no_values(rng, dev, cap):
    vitals = rng.choice([{}, {"hr": None}, {v.value: None for v in Vital}])
    return _key(dev), _with(dev, rng, vitals=vitals)


def unknown_vital(rng, dev, cap):
    vitals = _normal(rng)
    vitals[rng.choice(["HR", "heart_rate", "spo2 ", "etco2", "glucose", ""])] = 5.0
    return _key(dev), _with(dev, rng, vitals=vitals)


def unknown_patient(rng, dev, cap):
    msg = dev.next(rng)
    msg["patient_id"] = f"ghost-{rng.randrange(10**6)}"
    return msg["patient_id"].encode(), _dumps(msg)


def wrong_bed_or_ward(rng, dev, cap):
    field = rng.choice(["ward", "bed"])
    return _key(dev), _field_text(dev, rng, field, "ELSEWHERE-9")


def key_mismatch(rng, dev, cap):
    key = rng.choice([b"somebody-else", b"", None, b"\xff\xfe", b"k" * 5000])
    return key, _with(dev, rng)


def exact_replay(rng, dev, cap):
    if not dev.sent:
        dev.next(rng)
    return _key(dev), _dumps(rng.choice(dev.sent[-50:]))


def sequence_reset(rng, dev, cap):
    """The monitor reboots: its counter starts again while its clock goes on."""
    dev.seq = rng.choice([-1, 0])
    return _key(dev), _with(dev, rng)


def sequence_max(rng, dev, cap):
    msg = dev.next(rng)
    msg["seq"] = MAX_SEQ
    dev.seq = 0  # the next message wraps around
    return _key(dev), _dumps(msg)


def clock_step(rng, dev, cap):
    """The device's clock is set again: up to a minute off the true time, either way."""
    dev.offset = rng.randrange(-60_000, 60_000)
    return _key(dev), _with(dev, rng)


def schema_version(rng, dev, cap):
    return _key(dev), _with(dev, rng, schema_version=rng.choice([0, 2, 99, -1, 10**20]))


def charted_only(rng, dev, cap):
    return _key(dev), _with(dev, rng, vitals={}, consciousness=rng.choice("ACVPU"))


KINDS: dict[str, Make] = {
    f.__name__: f for f in (
        invalid_utf8, truncated_json, random_bytes, not_an_object, wrong_type,
        wrong_vital_type, non_finite, absurd_value, all_implausible, ts_far_off,
        ts_out_of_range_int, duplicate_keys, oversized, deeply_nested, very_wide,
        many_escapes, hidden_characters, long_identifier, no_values, unknown_vital,
        unknown_patient, wrong_bed_or_ward, key_mismatch, exact_replay, sequence_reset,
        sequence_max, clock_step, schema_version, charted_only,
    )
}

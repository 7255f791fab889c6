"""Validation of one raw device message (``vitals.raw``, ``DeviceReading`` schema v1).

``validate(raw, received_ts=..., census=..., cfg=...)`` turns the bytes of one Kafka record
into either an ``Accepted`` reading or a ``Rejection`` with a reason and a human-readable
detail. It is pure (the census is passed in), runs once per record in the stream job and
is fast: pydantic-core parses and type-checks the JSON bytes in one pass against a strict
``TypedDict`` copy of the ``backend.messages.DeviceReading`` schema (no model instance is
built). Measured while choosing: this step is faster than ``json.loads`` alone
(``bench/bench_evaluation.py`` shows both) and took a third of the time of ``json.loads``
plus the same checks written by hand in Python. Strict means: a JSON string is not a
number, a bool is not a number, ``1.0`` is not an integer, NaN and infinities are not
numbers, unknown fields are refused. The plausibility rules then run in Python.

Checks, in this order (the first failure is reported):

0. Before parsing, from the raw bytes (C-speed counts): a message with more than
   ``MAX_CONTAINERS`` braces/brackets or ``MAX_COMMAS`` commas cannot be a reading
   (identifiers may contain neither, see ``backend.identifiers``), or with more escape
   sequences than its identifiers can hold, cannot be a reading, so it is rejected as
   ``SCHEMA_VIOLATION`` without being parsed: ten thousand unknown keys or deep nesting
   cost a few microseconds, not the ~0.1 s pydantic's per-error reporting would take.
   (The stream job rejects records over ``SparkSettings.max_record_bytes`` as
   ``OVERSIZED`` before they reach Python at all.)
1. ``MALFORMED_JSON``: not UTF-8, not JSON, or not a JSON object.
2. ``UNSUPPORTED_SCHEMA_VERSION``: ``schema_version`` is an integer other than 1 (checked
   before the other fields, whose layout a newer version may change). Absent means 1, as
   in the model.
3. ``SCHEMA_VIOLATION``: a field missing, of the wrong type or length, an unexpected field,
   an unknown parameter name in ``vitals``, a non-finite number, a key given twice, an
   identifier with a character ``backend.identifiers`` does not allow (control, bidi,
   zero-width, quotes, ...).
4. ``FUTURE_TIMESTAMP`` / ``STALE_TIMESTAMP``: ``ts`` more than
   ``cfg.max_future_skew_seconds`` after, or more than ``cfg.max_past_age_seconds`` before
   the receive time (Kafka record time). Checked before the census so garbage never costs
   a census lookup. A ``ts`` that would fit as seconds or microseconds says so.
5. ``NO_VALUES``: no parameter in ``vitals`` has a value (every one absent or null) and
   nothing is charted (ACVPU, oxygen): the frame says nothing, and it must not count as a
   sign of life of the bed.
6. ``UNKNOWN_PATIENT`` (not in the census), ``UNKNOWN_WARD`` (the message's ward is not
   the admission's ward), ``BED_MISMATCH`` (same ward, other bed).
7. Values, per parameter of ``backend.vitals.VITALS``:

   * exactly 0 for a ``zero_means_off`` parameter: the sensor is off. Not a rejection;
     the parameter goes to ``Reading.sensors_off`` (unknown, never "low").
   * outside ``plausible_min..plausible_max``: that field is removed and reported as an
     ``IMPLAUSIBLE_VALUE`` field rejection; the rest of the reading is kept.
   * systolic not above diastolic (both otherwise plausible): both are implausible.
   * ``null``: not measured, as if absent.

   If the message carried values and every one of them was implausible (none kept, none
   off), the whole message is rejected with ``IMPLAUSIBLE_VALUE``. A message whose
   parameters are all off is accepted: it proves the bed is connected.

A field rejection's ``detail`` starts with the wire name of the field, followed by the
value, e.g. ``"pulse 277 outside plausible range 20-250 bpm"``; its ``field`` attribute
holds the same name. Details name fields, values and ids only: string values other than
ids are never echoed (a free-text field could hold anything).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, NotRequired, Protocol

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from backend.admission import Admission
from backend.identifiers import device_identifier_problem
from backend.messages import SCHEMA_VERSION, Consciousness
from backend.settings import AlertingSettings
from backend.vitals import VITALS, Vital

__all__ = [
    "Accepted",
    "Census",
    "Reading",
    "RejectReason",
    "Rejection",
    "validate",
]


class RejectReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    IMPLAUSIBLE_VALUE = "implausible_value"
    UNKNOWN_PATIENT = "unknown_patient"
    UNKNOWN_WARD = "unknown_ward"
    BED_MISMATCH = "bed_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    DUPLICATE = "duplicate"
    NO_VALUES = "no_values"
    # Decided by the stream job, not by ``validate``: a record too long to parse, and a
    # record whose processing failed in a way nothing above foresaw.
    OVERSIZED = "oversized"
    INTERNAL_ERROR = "internal_error"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str  # human-readable: names the field and value; no identifying data beyond ids
    field: str | None = None  # the wire field a field rejection is about (e.g. "pulse")


@dataclass(frozen=True, slots=True)
class Reading:
    """An accepted device reading."""

    patient_id: str
    ward: str
    bed: str
    device_id: str
    seq: int
    ts: int
    values: dict[Vital, float]  # plausible, non-zero measured values only
    sensors_off: frozenset[Vital]  # parameters the device reported as 0 (sensor off)
    o2_supplemental: bool | None
    consciousness: Consciousness | None
    source: str | None

    @property
    def measured(self) -> bool:
        """The monitor measured something (a value or a sensor reported off): the bed is
        connected. A frame that only charts ACVPU or oxygen is not such a sign."""
        return bool(self.values) or bool(self.sensors_off)


@dataclass(frozen=True, slots=True)
class Accepted:
    reading: Reading
    # individual implausible values removed from an otherwise good reading (each becomes
    # its own dead-letter record)
    field_rejections: tuple[Rejection, ...]


class Census(Protocol):
    def get(self, patient_id: str) -> Admission | None: ...


# --- the schema --------------------------------------------------------------------------

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # seq and ts are Kafka/Spark/Cassandra longs
_LENGTHS = {"device_id": (1, 64), "patient_id": (1, 64), "ward": (1, 32), "bed": (1, 16),
            "source": (0, 64)}


def _text(field: str) -> Any:
    low, high = _LENGTHS[field]
    return Annotated[str, Field(min_length=low, max_length=high)]


class _Message(TypedDict):
    """``DeviceReading`` v1 in strict mode, as a TypedDict: validated by pydantic-core in
    one pass from the JSON bytes, without building a model instance."""

    __pydantic_config__ = ConfigDict(  # type: ignore[misc]
        extra="forbid", strict=True, allow_inf_nan=False)

    schema_version: NotRequired[int]
    device_id: _text("device_id")  # type: ignore[valid-type]
    seq: Annotated[int, Field(ge=0, le=_INT64_MAX)]
    patient_id: _text("patient_id")  # type: ignore[valid-type]
    ward: _text("ward")  # type: ignore[valid-type]
    bed: _text("bed")  # type: ignore[valid-type]
    ts: Annotated[int, Field(ge=_INT64_MIN, le=_INT64_MAX)]
    vitals: dict[Vital, float | None]
    o2_supplemental: NotRequired[bool | None]
    consciousness: NotRequired[Consciousness | None]
    source: NotRequired[_text("source") | None]  # type: ignore[valid-type]


_MESSAGE = TypeAdapter(_Message)
_IDS = ("device_id", "patient_id", "ward", "bed")
# A reading has two objects and no array, and its commas separate at most 11 fields and
# one per parameter; identifiers contain neither commas nor braces (backend.identifiers).
# The bounds leave room for a few wrong-typed fields, which get pydantic's precise
# message; beyond them a message is refused from its bytes alone.
MAX_CONTAINERS = 16
MAX_COMMAS = 11 + len(Vital) + 8
# Escapes appear only inside strings, i.e. in identifiers (one per character at most).
MAX_ESCAPES = sum(high for _, high in _LENGTHS.values())
# A key is a quoted name followed by a colon; identifiers contain no quotes, so outside
# of keys this never matches.
_KEY = re.compile(rb'"\s*:')
_VITAL_NAMES = ", ".join(v.value for v in Vital)
# vital -> (min, max, zero_means_off, unit): the plausibility table of VITALS.
_RANGES = {
    v: (float(s.plausible_min), float(s.plausible_max), s.zero_means_off, s.display_unit)
    for v, s in VITALS.items()
}
_EXPECTED = {
    "schema_version": "an integer", "seq": "an integer", "ts": "an integer",
    "vitals": "an object", "o2_supplemental": "true, false or null",
    "consciousness": "one of A, C, V, P, U or null", "source": "a string or null",
}


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__  # pragma: no cover - JSON yields nothing else


def _name(key: object, limit: int = 40) -> str:
    """A key from the message, quoted and cut short (it is sender-controlled text)."""
    text = str(key)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _num(value: float) -> str:
    """A number as it appears in a detail: 277, 36.6, 1e+300."""
    try:
        return f"{value:g}"
    except OverflowError:  # an integer beyond the float range
        return f"{str(value)[:12]}...({len(str(value))} digits)"


def _schema(detail: str) -> Rejection:
    return Rejection(RejectReason.SCHEMA_VIOLATION, detail)


def _schema_detail(error: Any) -> str:
    """One pydantic error as a detail: the field, what was expected, what came (a type or
    a number, never free text)."""
    loc, kind, given = error["loc"], error["type"], error.get("input")
    field = str(loc[0]) if loc else ""
    if kind == "missing":
        return f"{field}: required field missing"
    if kind == "extra_forbidden":
        return f"{_name(field)}: unexpected field"
    if field == "vitals" and len(loc) == 3:  # ("vitals", key, "[key]")
        return f"vitals.{_name(loc[1])}: unknown parameter (expected one of {_VITAL_NAMES})"
    if field == "vitals" and len(loc) == 2:
        if kind == "finite_number":
            return f"vitals.{loc[1]}: {given} is not a finite number"
        return f"vitals.{loc[1]}: expected a number or null, got {_type_name(given)}"
    if kind in ("string_too_short", "string_too_long"):
        low, high = _LENGTHS[field]
        return f"{field}: length {len(given)} not within {low}-{high}"
    if kind in ("greater_than_equal", "less_than_equal"):
        if field == "seq" and given < 0:
            return f"seq: {given} is negative"
        return f"{field}: {_num(given)} is outside the 64-bit integer range"
    if field in _EXPECTED or kind == "string_type":
        expected = _EXPECTED.get(field, "a string")
        if kind == "enum" and type(given) is str:
            got = "an unknown letter"
        elif type(given) is float:
            got = _num(given)
        else:
            got = _type_name(given)
        return f"{field}: expected {expected}, got {got}"
    return f"{field}: {error['msg']}"  # pragma: no cover - every kind above


def _reject_unparsed(raw: bytes | str, exc: ValidationError) -> Rejection:
    """Why a message failed validation: malformed JSON, an unsupported schema version
    (before anything else: a newer version may lay out its fields differently), or the
    first schema violation."""
    errors = exc.errors(include_url=False, include_context=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        if isinstance(raw, (bytes, bytearray)):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as bad:
                return Rejection(RejectReason.MALFORMED_JSON,
                                 f"not valid UTF-8 at byte {bad.start}: {bad.reason}")
        return Rejection(RejectReason.MALFORMED_JSON,
                         f"not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}")
    if not first["loc"]:
        return Rejection(RejectReason.MALFORMED_JSON,
                         f"expected a JSON object, got {_type_name(first.get('input'))}")
    version = from_json(raw).get("schema_version")
    if type(version) is int and version != SCHEMA_VERSION:
        return _unsupported(version)
    detail = _schema_detail(first)
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more)"
    return _schema(detail)


def _unsupported(version: int) -> Rejection:
    return Rejection(RejectReason.UNSUPPORTED_SCHEMA_VERSION,
                     f"schema_version {version} is not supported (supported: {SCHEMA_VERSION})")


def _implausible(name: str, value: float, detail: str) -> Rejection:
    return Rejection(RejectReason.IMPLAUSIBLE_VALUE, f"{name} {_num(value)} {detail}", name)


_VERSION = re.compile(rb'"schema_version"\s*:\s*(\d{1,9})\b')


def _structure(raw: bytes) -> Rejection | None:
    """Bound the message's structure from its bytes before parsing (check 0)."""
    containers = raw.count(b"{") + raw.count(b"[")
    commas = raw.count(b",")
    escapes = raw.count(b"\\")
    if containers <= MAX_CONTAINERS and commas <= MAX_COMMAS and escapes <= MAX_ESCAPES:
        return None
    # A newer schema may be larger: say so rather than call it a violation.
    version = _VERSION.search(raw[:4096])
    if version is not None and int(version.group(1)) != SCHEMA_VERSION:
        return _unsupported(int(version.group(1)))
    if containers > MAX_CONTAINERS:
        return _schema(f"{containers} objects or arrays, more than a reading can have"
                       " (nested or repeated structure)")
    if commas > MAX_COMMAS:
        return _schema(f"{commas} commas: more fields than a reading can have")
    if escapes > MAX_ESCAPES:
        return _schema(f"{escapes} escape sequences: more than the identifiers can hold")
    return None


def _unit_hint(ts: int, received_ts: int, cfg: AlertingSettings) -> str:
    """A hint when ``ts`` would be acceptable in seconds or microseconds."""
    for factor, unit in ((1000, "seconds"), (1 / 1000, "microseconds")):
        ahead = ts * factor - received_ts
        if -cfg.max_past_age_seconds * 1000 <= ahead <= cfg.max_future_skew_seconds * 1000:
            return f" (looks like {unit}; ts is in milliseconds since the epoch)"
    return ""


def _second_problems(raw: bytes, obj: dict) -> Rejection | None:
    """What strict parsing lets through: a key given twice (the parser keeps the last),
    and identifiers with characters people cannot see or that break displays."""
    keys = len(obj) + len(obj["vitals"])
    if len(_KEY.findall(raw)) != keys:
        return _schema("a key is given more than once")
    for field in _IDS:
        problem = device_identifier_problem(obj[field], field)
        if problem:
            return _schema(problem)
    source = obj.get("source")
    if source:
        problem = device_identifier_problem(source, "source")
        if problem:
            return _schema(problem)
    return None


def validate(
    raw: bytes, *, received_ts: int, census: Census, cfg: AlertingSettings
) -> Accepted | Rejection:
    """Validate one raw message (see the module docstring for the rules and their order)."""
    shape = _structure(raw)
    if shape is not None:
        return shape
    try:
        obj = _MESSAGE.validate_json(raw)
    except ValidationError as exc:
        return _reject_unparsed(raw, exc)
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return _unsupported(version)
    problem = _second_problems(raw, obj)
    if problem is not None:
        return problem

    ts = obj["ts"]
    ahead = ts - received_ts
    if ahead > cfg.max_future_skew_seconds * 1000:
        return Rejection(RejectReason.FUTURE_TIMESTAMP,
                         f"ts {ts} is {ahead / 1000:g} s after the receive time {received_ts} "
                         f"(limit {cfg.max_future_skew_seconds:g} s)"
                         + _unit_hint(ts, received_ts, cfg))
    if -ahead > cfg.max_past_age_seconds * 1000:
        return Rejection(RejectReason.STALE_TIMESTAMP,
                         f"ts {ts} is {-ahead / 1000:g} s before the receive time "
                         f"{received_ts} (limit {cfg.max_past_age_seconds:g} s)"
                         + _unit_hint(ts, received_ts, cfg))
    if (all(v is None for v in obj["vitals"].values())
            and obj.get("consciousness") is None and obj.get("o2_supplemental") is None):
        return Rejection(RejectReason.NO_VALUES,
                         "no parameter has a value and nothing is charted")

    patient_id = obj["patient_id"]
    ward = obj["ward"]
    bed = obj["bed"]
    admission = census.get(patient_id)
    if admission is None:
        return Rejection(RejectReason.UNKNOWN_PATIENT,
                         f"patient_id {patient_id!r} is not in the census")
    if ward != admission.ward:
        return Rejection(RejectReason.UNKNOWN_WARD,
                         f"ward {ward!r} is not the ward of patient_id {patient_id!r} "
                         f"({admission.ward!r})")
    if bed != admission.bed:
        return Rejection(RejectReason.BED_MISMATCH,
                         f"bed {bed!r} is not the bed of patient_id {patient_id!r} "
                         f"({admission.ward!r} bed {admission.bed!r})")

    values: dict[Vital, float] = {}
    off: list[Vital] = []
    rejected: list[Rejection] = []
    for key, value in obj["vitals"].items():
        if value is None:
            continue
        low, high, zero_off, unit = _RANGES[key]
        if value == 0 and zero_off:
            off.append(key)
        elif low <= value <= high:
            values[key] = value
        else:
            rejected.append(_implausible(
                key.value, value, f"outside plausible range {_num(low)}-{_num(high)} {unit}"))
    sbp = values.get(Vital.SBP)
    dbp = values.get(Vital.DBP)
    if sbp is not None and dbp is not None and sbp <= dbp:
        del values[Vital.SBP], values[Vital.DBP]
        rejected.append(_implausible("sbp", sbp, f"not above dbp {_num(dbp)}"))
        rejected.append(_implausible("dbp", dbp, f"not below sbp {_num(sbp)}"))
    if rejected and not values and not off:
        return Rejection(RejectReason.IMPLAUSIBLE_VALUE,
                         "every value implausible: " + "; ".join(r.detail for r in rejected))

    return Accepted(
        Reading(
            patient_id=patient_id, ward=ward, bed=bed, device_id=obj["device_id"],
            seq=obj["seq"], ts=ts, values=values, sensors_off=frozenset(off),
            o2_supplemental=obj.get("o2_supplemental"),
            consciousness=obj.get("consciousness"), source=obj.get("source"),
        ),
        tuple(rejected),
    )

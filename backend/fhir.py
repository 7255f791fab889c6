"""FHIR R4 export and ingest of vital signs (the patient page's download, devices/fhir_ingest.py).

The models are ``fhir.resources.R4B`` (FHIR 4.3.0): ``fhir.resources`` 8.x ships R5 as its
default package and R4B and STU3 as sub-packages; there is no separate 4.0.1 package.
R4B's Observation and Bundle are the R4 ones (4.3 changed no element of these two
resources), so the JSON written here is valid FHIR R4 and R4 servers accept it.

Export (``readings_to_bundle``): a ``collection`` Bundle with one Observation per stored
parameter value, following the FHIR vital-signs profile:

* ``status`` final, ``category`` vital-signs, ``code`` the LOINC code and display of
  ``backend.vitals.VITALS`` (SpO2 also carries 2708-6, which the R4 oxygen-saturation
  profile requires), ``text`` the label;
* ``valueQuantity``: value, ``unit`` the display unit, ``system`` http://unitsofmeasure.org
  and ``code`` the UCUM code of the table;
* ``effectiveDateTime``: the reading's timestamp, millisecond precision, in UTC (``Z``) or,
  when a time zone is given (the web export: the hospital's), in local time with its UTC
  offset (``2026-12-03T09:03:05.007-05:00``): the same instant, as people read it;
* ``subject`` ``Patient/<patient id>``; ``device`` the monitor's device id (as an
  identifier of system ``DEVICE_SYSTEM``), when the row has one;
* blood pressure: systolic, diastolic and mean are **separate Observations** (8480-6,
  8462-4, 8478-0), not an 85354-9 panel: each is stored, validated and can be missing on
  its own (a monitor's mean arterial pressure often comes without the other two), and
  separate Observations make the round trip exact. The ingest accepts an 85354-9 panel
  with systolic/diastolic components as well;
* a parameter the monitor reported as "sensor off" (stored in ``sensors_off``) is an
  Observation without value, with ``dataAbsentReason`` ``not-performed`` and the text
  "sensor off"; ingest turns it back into the monitor's 0;
* ids: ``urn:uuid:`` full URLs, UUID5 of (patient, parameter, ts, device), so exporting the
  same readings twice gives the same Bundle.

Values: the ``readings_by_patient_day`` columns are 32-bit floats; a value that is exactly
a float32 is written as the shortest decimal that reads back to the same float32
(``36.6``, not ``36.599998474121094``), so re-ingesting the export stores identical values.

Ingest (``bundle_to_device_readings``): the reverse, into ``DeviceReading`` messages for
``vitals.raw``, so that FHIR data goes through the same validation as a monitor's. Every
entry must be a vital-sign Observation with a known LOINC code and a UCUM unit of that
parameter; anything else raises ``FhirIngestError`` (a ``ValueError``) naming the entry.
No other exception escapes, whatever the input: the JSON is parsed strictly
(``backend.strictjson``: bad UTF-8, duplicate keys, ``NaN``, huge numbers, deep nesting
are refused), a Bundle larger than ``MAX_BUNDLE_BYTES`` is refused, and an error inside
the FHIR library becomes a ``FhirIngestError`` naming it. The error carries an HTTP-style
``status``: 400 (not JSON), 413 (too large), 422 (JSON, but not an acceptable Bundle).
A value outside the parameter's plausible range (``backend.vitals``) is an error, not a
missing value: FHIR says "not measured" with ``dataAbsentReason``, and a monitor's 0
(sensor off) is written that way too. Patient ids must be FHIR ids
(``[A-Za-z0-9.-]{1,64}``); device ids and sources must be clean identifiers
(``backend.identifiers``: no control, bidirectional or zero-width characters).
Unit conversions are only those UCUM defines exactly: ``[degF]`` and ``K`` to ``Cel``, and
``1/min`` or an annotated ``{beats}/min`` to ``/min``. Observations are grouped by
(patient, time, source device) into one reading each; the device id is
``fhir-<source>`` and ``seq`` is the reading's timestamp in ms, so re-ingesting the same
Bundle is recognised by the pipeline as duplicates (a device's seq must increase). A
consequence: after a source's data up to time T went in, a later Bundle from the same
source with readings before T is treated as duplicates too (ingest in time order, or use
another ``source``).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError

from backend import localtime
from backend.admission import Admission
from backend.identifiers import identifier_problem
from backend.messages import DeviceReading
from backend.strictjson import JsonError
from backend.strictjson import loads as strict_loads
from backend.vitals import VITALS, Vital

if TYPE_CHECKING:  # the ingest side runs without the database driver's import
    from backend.storage.readings import StoredReading

__all__ = [
    "DEVICE_SYSTEM",
    "FHIR_PACKAGE",
    "FhirIngestError",
    "bundle_dict",
    "bundle_to_device_readings",
    "parse_bundle",
    "readings_to_bundle",
]

FHIR_PACKAGE = "fhir.resources.R4B"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
ABSENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DEVICE_SYSTEM = "urn:icu-monitor:device-id"
BP_PANEL_LOINC = "85354-9"
SPO2_ALT_LOINC = ("2708-6", "Oxygen saturation in Arterial blood")
_NAMESPACE = uuid.UUID("6f1c1f0e-3d5c-4d1e-9a53-5b8f0c7e1f05")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_ACCEPTED_STATUS = ("final", "amended", "corrected")

_BY_LOINC: dict[str, Vital] = {s.loinc: v for v, s in VITALS.items()}
_BY_LOINC[SPO2_ALT_LOINC[0]] = Vital.SPO2
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 32  # a vital-signs Bundle is about 8 levels deep
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


class FhirIngestError(ValueError):
    """A Bundle that cannot be ingested; the message names the entry and the problem.
    ``status``: 400 not JSON, 413 too large, 422 not an acceptable Bundle."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class Census(Protocol):
    def get(self, patient_id: str) -> Admission | None: ...


# --- export ------------------------------------------------------------------------------


def _instant(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _decimal(value: float) -> Decimal:
    """The shortest decimal of a value; for an exact float32, of that float32."""
    f32 = np.float32(value)
    if np.isfinite(f32) and float(f32) == value:
        return Decimal(str(f32))
    return Decimal(repr(float(value)))


def _observation(patient_id: str, vital: Vital, ms: int, device_id: str | None,
                 value: float | None) -> dict:
    spec = VITALS[vital]
    coding = [{"system": LOINC, "code": spec.loinc, "display": spec.loinc_display}]
    if vital is Vital.SPO2:
        coding.append({"system": LOINC, "code": SPO2_ALT_LOINC[0],
                       "display": SPO2_ALT_LOINC[1]})
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(_NAMESPACE, f"{patient_id}|{vital.value}|{ms}|{device_id}")),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs",
                                  "display": "Vital Signs"}], "text": "Vital Signs"}],
        "code": {"coding": coding, "text": spec.label},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if value is None:
        obs["dataAbsentReason"] = {
            "coding": [{"system": ABSENT_SYSTEM, "code": "not-performed",
                        "display": "Not Performed"}], "text": "sensor off"}
    else:
        obs["valueQuantity"] = {"value": _decimal(value), "unit": spec.display_unit,
                                "system": UCUM, "code": spec.ucum}
    if device_id:
        obs["device"] = {"identifier": {"system": DEVICE_SYSTEM, "value": device_id},
                         "display": device_id}
    return obs


def _when(ms: int, tz: str | None) -> str:
    if tz is None:
        return _instant(ms).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return localtime.iso(ms, tz, ms=True)


def bundle_dict(
    patient_id: str, rows: Iterable[StoredReading], *, start_ms: int, end_ms: int,
    include_sensor_off: bool = True, tz: str | None = None,
) -> dict:
    """``readings_to_bundle`` as a plain JSON-ready dict, without building the models.

    The same content (``Bundle.model_validate`` of it is ``readings_to_bundle``'s result,
    tested); ~10x faster, for exports too large to validate resource by resource
    (fhir.resources costs roughly 0.5-1 ms per Observation).
    """
    entries = []
    for row in rows:
        ms = row.ts
        if not start_ms <= ms < end_ms:
            continue
        device = row.device_id
        off = row.sensors_off
        when = _when(ms, tz)
        for vital in Vital:
            value = row.vitals.get(vital)
            if value is not None and not np.isfinite(value):
                continue
            if value is None and not (include_sensor_off and vital in off):
                continue
            obs = _observation(patient_id, vital, ms, device,
                               None if value is None else float(value))
            obs["effectiveDateTime"] = when
            if "valueQuantity" in obs:
                obs["valueQuantity"]["value"] = float(obs["valueQuantity"]["value"])
            entries.append({"fullUrl": f"urn:uuid:{obs['id']}", "resource": obs})
    bundle_id = uuid.uuid5(_NAMESPACE, f"bundle|{patient_id}|{start_ms}|{end_ms}")
    return {"resourceType": "Bundle", "id": str(bundle_id), "type": "collection",
            "entry": entries}


def readings_to_bundle(
    patient_id: str, rows: Iterable[StoredReading], *, start_ms: int, end_ms: int,
    include_sensor_off: bool = True, tz: str | None = None,
) -> Bundle:
    """The stored readings of one patient in ``[start_ms, end_ms)`` (``ReadingStore
    .between``) as a FHIR R4 Bundle. See the module docstring for the resources."""
    return Bundle.model_validate(bundle_dict(patient_id, rows, start_ms=start_ms,
                                             end_ms=end_ms,
                                             include_sensor_off=include_sensor_off, tz=tz))


# --- ingest ------------------------------------------------------------------------------


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_bundle(data: Bundle | Mapping[str, Any] | str | bytes) -> Bundle:
    """A Bundle from a model, a dict or JSON text, validated against FHIR R4(B)."""
    if isinstance(data, Bundle):
        return data
    if isinstance(data, (str, bytes, bytearray)):
        if len(data) > MAX_BUNDLE_BYTES:
            raise FhirIngestError(f"the Bundle has {len(data):,} bytes; at most "
                                  f"{MAX_BUNDLE_BYTES:,}", 413)
        try:
            obj = strict_loads(data, max_depth=MAX_DEPTH, decimals=True)
        except JsonError as exc:
            raise FhirIngestError(str(exc), 400) from None
    elif isinstance(data, Mapping):
        obj = dict(data)
    else:
        raise FhirIngestError(f"expected a FHIR Bundle, got {type(data).__name__}", 400)
    if not isinstance(obj, dict) or obj.get("resourceType") != "Bundle":
        got = obj.get("resourceType") if isinstance(obj, dict) else type(obj).__name__
        raise FhirIngestError(f"expected a FHIR Bundle, got resourceType {_short(got)}")
    try:
        return Bundle.model_validate(obj)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])[:200]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise FhirIngestError(f"not a valid FHIR R4 Bundle: {where}: "
                              f"{str(first['msg'])[:300]}{more}") from None
    except RecursionError:
        raise FhirIngestError(f"nested too deeply (at most {MAX_DEPTH} levels)", 400) from None
    except Exception as exc:  # the library's own failures: never a traceback to the caller
        raise FhirIngestError(f"the FHIR library could not read the Bundle "
                              f"({type(exc).__name__}: {str(exc)[:200]})") from None


_ANNOTATED_PER_MIN = re.compile(r"^(1|\{[^{}]*\})?/min$")


def _to_table_unit(vital: Vital, quantity: Any, where: str) -> float:
    """The value of a Quantity in the unit of ``VITALS`` (exact UCUM conversions only)."""
    spec = VITALS[vital]
    if quantity.value is None:
        raise FhirIngestError(f"{where}: valueQuantity has no value")
    if quantity.system != UCUM or not quantity.code:
        raise FhirIngestError(
            f"{where}: valueQuantity must be a UCUM unit (system {UCUM} and a code), got "
            f"system {quantity.system!r} code {quantity.code!r}")
    code, value = quantity.code, Decimal(quantity.value)
    if not value.is_finite() or abs(value.adjusted()) > 30:
        raise FhirIngestError(f"{where}: {spec.label} {_short(quantity.value)} is not a "
                              "measurable value")
    if code == spec.ucum:
        return _plausible(vital, float(value), where)
    if spec.ucum == "/min" and _ANNOTATED_PER_MIN.match(code):
        return _plausible(vital, float(value), where)  # UCUM: 1/min and {x}/min are /min
    if spec.ucum == "Cel" and code == "[degF]":
        return _plausible(vital, float((value - 32) * 5 / 9), where)
    if spec.ucum == "Cel" and code == "K":
        return _plausible(vital, float(value - Decimal("273.15")), where)
    raise FhirIngestError(
        f"{where}: unit {code!r} is not supported for {spec.label} (LOINC {spec.loinc}); "
        f"expected UCUM {spec.ucum!r}")


def _plausible(vital: Vital, value: float, where: str) -> float:
    """``value`` if a monitor can measure it; an absurd value is an error, never turned
    into "not measured" (FHIR has dataAbsentReason for that)."""
    spec = VITALS[vital]
    if value == 0 and spec.zero_means_off:
        raise FhirIngestError(f"{where}: {spec.label} 0 {spec.display_unit}: a sensor that "
                              "is off is an Observation with dataAbsentReason, not a 0")
    if not spec.plausible_min <= value <= spec.plausible_max:
        raise FhirIngestError(
            f"{where}: {spec.label} {value:g} {spec.display_unit} is outside the plausible "
            f"range {spec.plausible_min:g}-{spec.plausible_max:g}")
    return value


def _effective_ms(obs: Observation, where: str) -> int:
    when = obs.effectiveDateTime or obs.effectiveInstant
    if when is None:
        raise FhirIngestError(f"{where}: needs effectiveDateTime (a period or no time is "
                              "not a monitor reading)")
    if not isinstance(when, datetime):  # a partial date ("2026-01") or a bare date
        raise FhirIngestError(f"{where}: effectiveDateTime {when!s} is not a full date "
                              "and time")
    if when.tzinfo is None:
        raise FhirIngestError(f"{where}: effectiveDateTime {when.isoformat()} has no "
                              "time zone")
    return (when - _EPOCH) // _MS


def _patient_of(obs: Observation, where: str) -> str:
    ref = obs.subject.reference if obs.subject is not None else None
    if not ref or not ref.startswith("Patient/") or len(ref) == len("Patient/"):
        raise FhirIngestError(f"{where}: subject must be a reference Patient/<id>, got "
                              f"{_short(ref)}")
    pid = ref.removeprefix("Patient/").split("/_history/")[0]
    if not _FHIR_ID.match(pid):
        raise FhirIngestError(f"{where}: {_short(pid)} is not a FHIR id (1-64 letters, "
                              "digits, '-' or '.')")
    return pid


def _device_of(obs: Observation, where: str = "") -> str | None:
    dev = obs.device
    if dev is None:
        return None
    if dev.identifier is not None and dev.identifier.value:
        name = dev.identifier.value
    elif dev.reference:
        name = dev.reference.removeprefix("Device/")
    else:
        name = dev.display or None
    if name is not None:
        problem = identifier_problem(name, "device", max_length=200)
        if problem:
            raise FhirIngestError(f"{where}: {problem}")
    return name


def _codes(concept: Any) -> list[str]:
    return [c.code for c in (concept.coding or []) if c.system == LOINC and c.code]


def _values_of(obs: Observation, where: str) -> dict[Vital, float]:
    """The parameter values one Observation carries (a BP panel: its components)."""
    if obs.status not in _ACCEPTED_STATUS:
        raise FhirIngestError(f"{where}: status {obs.status!r} is not a valid result "
                              f"(accepted: {', '.join(_ACCEPTED_STATUS)})")
    categories = {(c.system, c.code) for cat in (obs.category or [])
                  for c in (cat.coding or [])}
    if (CATEGORY_SYSTEM, "vital-signs") not in categories:
        raise FhirIngestError(f"{where}: not in the vital-signs category")
    codes = _codes(obs.code)
    known = [c for c in codes if c in _BY_LOINC]
    if BP_PANEL_LOINC in codes:
        out: dict[Vital, float] = {}
        for i, comp in enumerate(obs.component or []):
            cwhere = f"{where} component {i}"
            ckn = [c for c in _codes(comp.code) if c in _BY_LOINC]
            if not ckn:
                raise FhirIngestError(f"{cwhere}: no known LOINC code (got "
                                      f"{_codes(comp.code) or 'none'})")
            vital = _BY_LOINC[ckn[0]]
            if comp.valueQuantity is None:
                if comp.dataAbsentReason is not None:  # "not measured", said explicitly
                    out[vital] = 0.0 if VITALS[vital].zero_means_off else float("nan")
                    continue
                raise FhirIngestError(f"{cwhere}: needs a valueQuantity")
            out[vital] = _to_table_unit(vital, comp.valueQuantity, cwhere)
        if not out:
            raise FhirIngestError(f"{where}: blood pressure panel without components")
        return {k: v for k, v in out.items() if v == v}
    if not known:
        raise FhirIngestError(
            f"{where}: LOINC code {', '.join(codes) or '(none)'} is not a vital sign this "
            f"system knows (known: {', '.join(s.loinc for s in VITALS.values())})")
    vital = _BY_LOINC[known[0]]
    if obs.valueQuantity is None:
        if obs.dataAbsentReason is not None:  # e.g. "sensor off" as exported here
            return {vital: 0.0} if VITALS[vital].zero_means_off else {}
        raise FhirIngestError(f"{where}: needs a valueQuantity (or a dataAbsentReason)")
    return {vital: _to_table_unit(vital, obs.valueQuantity, where)}


def _device_id(source: str) -> str:
    """``fhir-<source>``, cut to the 64 characters of the schema (with a hash if cut)."""
    name = f"fhir-{source}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    return f"{name[:53]}~{digest}"


def bundle_to_device_readings(
    bundle: Bundle | Mapping[str, Any] | str | bytes,
    *,
    census: Census,
    patient_id: str | None = None,
    source: str | None = None,
) -> list[DeviceReading]:
    """The device messages of a Bundle of vital-sign Observations, oldest first.

    ``census`` gives each patient's ward and bed (a dict of ``Admission``s works; the
    patient must be admitted). ``patient_id`` ingests everything under that id instead of
    the Observations' subject (then the Bundle must be about one patient). ``source``
    names the device (``fhir-<source>``); by default each Observation's device, else
    ``"bundle"``. Raises ``FhirIngestError`` (a ``ValueError``) for anything that is not
    a vital-sign Observation with a known LOINC code and a UCUM unit of its parameter,
    and for two different values of one parameter at one time.
    """
    try:
        return _to_readings(parse_bundle(bundle), census, patient_id, source)
    except FhirIngestError:
        raise
    except RecursionError:
        raise FhirIngestError("nested too deeply", 400) from None
    except Exception as exc:  # a library or census failure: say so, no traceback
        raise FhirIngestError(f"the Bundle could not be read ({type(exc).__name__}: "
                              f"{str(exc)[:200]})") from None


def _to_readings(parsed: Bundle, census: Census, patient_id: str | None,
                 source: str | None) -> list[DeviceReading]:
    for what, value, longest in (("patient", patient_id, 64), ("source", source, 200)):
        if value is not None:
            problem = identifier_problem(value, what, max_length=longest)
            if problem:
                raise FhirIngestError(problem)
    groups: dict[tuple[str, int, str], dict[Vital, float]] = {}
    subjects: set[str] = set()
    for i, entry in enumerate(parsed.entry or []):
        res = entry.resource
        where = f"entry {i}" + (f" ({_short(entry.fullUrl)})" if entry.fullUrl else "")
        if res is None:
            raise FhirIngestError(f"{where}: has no resource")
        kind = res.get_resource_type()
        if kind != "Observation":
            raise FhirIngestError(f"{where}: a {kind} is not a vital-sign Observation")
        obs: Observation = res
        values = _values_of(obs, where)
        subject = _patient_of(obs, where)
        subjects.add(subject)
        ms = _effective_ms(obs, where)
        if ms < 0:
            raise FhirIngestError(f"{where}: effectiveDateTime before 1970")
        device = _device_id(source or _device_of(obs, where) or "bundle")
        reading = groups.setdefault((subject, ms, device), {})
        for vital, value in values.items():
            old = reading.get(vital)
            if old is not None and old != value:
                raise FhirIngestError(
                    f"{where}: {vital.value} at {_instant(ms).isoformat()} is both "
                    f"{old:g} and {value:g} for Patient/{subject}")
            reading[vital] = value
    if patient_id is not None and len(subjects) > 1:
        raise FhirIngestError(f"the Bundle is about {len(subjects)} patients "
                              f"({', '.join(sorted(subjects))}); cannot ingest all of them "
                              f"as {patient_id}")

    out: list[DeviceReading] = []
    for (subject, ms, device), vitals in sorted(groups.items(), key=lambda kv: kv[0][1]):
        pid = patient_id or subject
        admission = census.get(pid)
        if admission is None:
            raise FhirIngestError(f"patient {pid!r} is not admitted (no ward and bed to "
                                  "send the readings from)")
        out.append(DeviceReading(
            device_id=device, seq=ms, patient_id=pid, ward=admission.ward,
            bed=admission.bed, ts=ms, vitals=vitals, source="fhir",
        ))
    return out

"""backend.validation: every rule with its reason and detail, on messages as devices send them."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from backend.admission import Admission
from backend.messages import Consciousness, DeviceReading
from backend.settings import AlertingSettings, Settings
from backend.validation import Accepted, Reading, Rejection, RejectReason, validate
from backend.vitals import VITALS, Vital
from devices.wire import encode

NOW = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the receive time
CFG = AlertingSettings()
ADMISSION = Admission(patient_id="p-1", ward="ICU-A", bed="3", admitted_ts=NOW - 3_600_000)


class Census(dict):
    """The census as the validator sees it: ``get(patient_id) -> Admission | None``."""


CENSUS = Census({"p-1": ADMISSION})


def message(**changes) -> dict:
    """A valid schema-v1 message; ``changes`` replace fields (``DROP`` removes one)."""
    doc = {
        "schema_version": 1, "device_id": "mon-ICU-A-3.0", "seq": 41, "patient_id": "p-1",
        "ward": "ICU-A", "bed": "3", "ts": NOW - 500,
        "vitals": {"hr": 72.0, "pulse": 71.0, "spo2": 97.0, "rr": 16.0, "sbp": 121.0,
                   "dbp": 74.0, "map": 90.0, "temp": 36.9},
        "o2_supplemental": False, "consciousness": "A", "source": "simulator",
    }
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


DROP = object()


def vitals(**values) -> dict:
    return {"vitals": values}


def raw(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def check(data: bytes | dict, *, received_ts: int = NOW, cfg: AlertingSettings = CFG):
    return validate(data if isinstance(data, bytes) else raw(data), received_ts=received_ts,
                    census=CENSUS, cfg=cfg)


def rejected(data, reason: RejectReason, *detail_parts: str, **kw) -> Rejection:
    out = check(data, **kw)
    assert isinstance(out, Rejection), out
    assert out.reason is reason, out
    for part in detail_parts:
        assert part in out.detail, out.detail
    return out


def accepted(data, **kw) -> Accepted:
    out = check(data, **kw)
    assert isinstance(out, Accepted), out
    return out


# --- a good message ----------------------------------------------------------------------

def test_valid_message_becomes_a_reading() -> None:
    out = accepted(message())
    assert out.field_rejections == ()
    assert out.reading == Reading(
        patient_id="p-1", ward="ICU-A", bed="3", device_id="mon-ICU-A-3.0", seq=41,
        ts=NOW - 500,
        values={Vital.HR: 72.0, Vital.PULSE: 71.0, Vital.SPO2: 97.0, Vital.RR: 16.0,
                Vital.SBP: 121.0, Vital.DBP: 74.0, Vital.MAP: 90.0, Vital.TEMP: 36.9},
        sensors_off=frozenset(), o2_supplemental=False, consciousness=Consciousness.ALERT,
        source="simulator",
    )
    assert all(type(v) is float for v in out.reading.values.values())
    assert all(type(k) is Vital for k in out.reading.values)
    with pytest.raises(FrozenInstanceError):
        out.reading.seq = 1  # type: ignore[misc]


def test_the_wire_encoding_of_the_model_is_accepted() -> None:
    reading = DeviceReading(device_id="mon-ICU-A-3.0", seq=0, patient_id="p-1", ward="ICU-A",
                            bed="3", ts=NOW, vitals={Vital.HR: 80, Vital.SPO2: None})
    out = accepted(encode(reading))
    assert out.reading.values == {Vital.HR: 80.0}
    assert out.reading.o2_supplemental is None and out.reading.consciousness is None
    assert out.reading.source is None


def test_the_strict_schema_has_the_fields_of_the_model() -> None:
    from backend.validation import _Message

    assert set(_Message.__annotations__) == set(DeviceReading.model_fields)


def test_optional_fields_may_be_absent_or_null() -> None:
    doc = message(o2_supplemental=None, consciousness=DROP, source=None, schema_version=DROP)
    r = accepted(doc).reading
    assert (r.o2_supplemental, r.consciousness, r.source) == (None, None, None)


@pytest.mark.parametrize("letter", list("ACVPU"))
def test_every_acvpu_letter(letter: str) -> None:
    assert accepted(message(consciousness=letter)).reading.consciousness == Consciousness(letter)


def test_null_and_absent_values_are_not_measured() -> None:
    r = accepted(message(**vitals(hr=80, spo2=None))).reading
    assert r.values == {Vital.HR: 80.0} and r.sensors_off == frozenset()


def test_integers_are_accepted_as_values() -> None:
    assert accepted(message(**vitals(hr=80))).reading.values == {Vital.HR: 80.0}


def test_empty_vitals_are_accepted_as_a_charting_message() -> None:
    r = accepted(message(vitals={}, consciousness="V")).reading
    assert r.values == {} and r.consciousness is Consciousness.VOICE


# --- malformed JSON ----------------------------------------------------------------------

@pytest.mark.parametrize(("data", "part"), [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (raw(message())[:80], "not valid JSON"),
    (b'{"a":1} trailing', "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8 at byte 0"),
    (b'{"device_id":"mon-\xc3\x28"}', "not valid UTF-8 at byte 18"),
    (b"[1, 2]", "expected a JSON object, got array"),
    (b'"text"', "expected a JSON object, got string"),
    (b"null", "expected a JSON object, got null"),
    (b"42", "expected a JSON object, got number"),
])
def test_malformed_json(data: bytes, part: str) -> None:
    rejected(data, RejectReason.MALFORMED_JSON, part)


# --- schema version ----------------------------------------------------------------------

@pytest.mark.parametrize("version", [0, 2, 99])
def test_unsupported_schema_version(version: int) -> None:
    rejected(message(schema_version=version), RejectReason.UNSUPPORTED_SCHEMA_VERSION,
             f"schema_version {version} is not supported")


def test_schema_version_is_checked_before_the_other_fields() -> None:
    doc = {"schema_version": 2, "reading": {"anything": "new"}}
    rejected(doc, RejectReason.UNSUPPORTED_SCHEMA_VERSION)


@pytest.mark.parametrize("version", ["1", 1.0, True, None])
def test_schema_version_of_the_wrong_type(version) -> None:
    rejected(message(schema_version=version), RejectReason.SCHEMA_VIOLATION, "schema_version")


# --- schema ------------------------------------------------------------------------------

@pytest.mark.parametrize("field", ["device_id", "seq", "patient_id", "ward", "bed", "ts",
                                   "vitals"])
def test_required_field_missing(field: str) -> None:
    rejected(message(**{field: DROP}), RejectReason.SCHEMA_VIOLATION,
             f"{field}: required field missing")


@pytest.mark.parametrize(("changes", "detail"), [
    ({"seq": "41"}, "seq: expected an integer, got string"),
    ({"seq": 41.0}, "seq: expected an integer, got 41"),
    ({"seq": True}, "seq: expected an integer, got boolean"),
    ({"seq": None}, "seq: expected an integer, got null"),
    ({"seq": -1}, "seq: -1 is negative"),
    ({"seq": 2**63}, "seq: 9.22337e+18 is outside the 64-bit integer range"),
    ({"ts": 1.5e12}, "ts: expected an integer, got 1.5e+12"),
    ({"ts": "2026-01-01T00:00:00Z"}, "ts: expected an integer, got string"),
    ({"ts": 10**30}, "ts: 1e+30 is outside the 64-bit integer range"),
    ({"device_id": 7}, "device_id: expected a string, got number"),
    ({"device_id": ""}, "device_id: length 0 not within 1-64"),
    ({"device_id": "d" * 65}, "device_id: length 65 not within 1-64"),
    ({"patient_id": ["p-1"]}, "patient_id: expected a string, got array"),
    ({"ward": "W" * 33}, "ward: length 33 not within 1-32"),
    ({"bed": "b" * 17}, "bed: length 17 not within 1-16"),
    ({"bed": 3}, "bed: expected a string, got number"),
    ({"vitals": [72]}, "vitals: expected an object, got array"),
    ({"vitals": None}, "vitals: expected an object, got null"),
    (vitals(bp=120), "vitals.'bp': unknown parameter (expected one of hr, pulse, spo2"),
    (vitals(HR=72), "vitals.'HR': unknown parameter"),
    (vitals(hr="72"), "vitals.hr: expected a number or null, got string"),
    (vitals(hr=True), "vitals.hr: expected a number or null, got boolean"),
    (vitals(hr=[72]), "vitals.hr: expected a number or null, got array"),
    (vitals(hr={"value": 72}), "vitals.hr: expected a number or null, got object"),
    ({"o2_supplemental": "yes"}, "o2_supplemental: expected true, false or null, got string"),
    ({"o2_supplemental": 1}, "o2_supplemental: expected true, false or null, got number"),
    ({"consciousness": "X"}, "consciousness: expected one of A, C, V, P, U or null, "
                             "got an unknown letter"),
    ({"consciousness": "alert"}, "got an unknown letter"),
    ({"consciousness": 1}, "consciousness: expected one of A, C, V, P, U or null, got number"),
    ({"source": 5}, "source: expected a string or null, got number"),
    ({"source": "s" * 65}, "source: length 65 not within 0-64"),
    ({"extra": 1}, "'extra': unexpected field"),
    ({"name": "Jane Doe"}, "'name': unexpected field"),
])
def test_schema_violation(changes: dict, detail: str) -> None:
    rejected(message(**changes), RejectReason.SCHEMA_VIOLATION, detail)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_schema_violations(literal: str) -> None:
    data = raw(message(**vitals(hr=72.0, spo2=97.0))).replace(b"72.0", literal.encode())
    rejected(data, RejectReason.SCHEMA_VIOLATION, "vitals.hr:", "is not a finite number")


def test_the_first_violation_is_reported_with_a_count_of_the_others() -> None:
    rejected(message(seq="1", ts=DROP, bed=""), RejectReason.SCHEMA_VIOLATION,
             "seq: expected an integer, got string (and 2 more)")


def test_details_never_echo_free_text() -> None:
    secret = "Jane Doe, born 1950-01-01"
    for doc in (message(source=secret * 3), message(consciousness=secret),
                message(**vitals(hr=secret))):
        out = rejected(doc, RejectReason.SCHEMA_VIOLATION)
        assert "Jane" not in out.detail


def test_long_unexpected_field_names_are_cut_short() -> None:
    out = rejected(message(**{"x" * 500: 1}), RejectReason.SCHEMA_VIOLATION)
    assert len(out.detail) < 80


# --- timestamps --------------------------------------------------------------------------

SKEW_MS = int(CFG.max_future_skew_seconds * 1000)
AGE_MS = int(CFG.max_past_age_seconds * 1000)


@pytest.mark.parametrize("ts", [NOW + SKEW_MS, NOW, NOW - AGE_MS])
def test_timestamps_within_the_limits_are_accepted(ts: int) -> None:
    accepted(message(ts=ts))


def test_timestamp_too_far_in_the_future() -> None:
    rejected(message(ts=NOW + SKEW_MS + 1), RejectReason.FUTURE_TIMESTAMP,
             f"ts {NOW + SKEW_MS + 1} is 120.001 s after the receive time {NOW}",
             "limit 120 s")


def test_timestamp_too_old() -> None:
    rejected(message(ts=NOW - AGE_MS - 1), RejectReason.STALE_TIMESTAMP,
             f"ts {NOW - AGE_MS - 1} is 604800 s before the receive time {NOW}",
             "limit 604800 s")


def test_timestamp_limits_come_from_the_settings() -> None:
    cfg = Settings(alerting={"max_future_skew_seconds": 1, "max_past_age_seconds": 60}).alerting
    rejected(message(ts=NOW + 1001), RejectReason.FUTURE_TIMESTAMP, cfg=cfg)
    rejected(message(ts=NOW - 60_001), RejectReason.STALE_TIMESTAMP, cfg=cfg)
    accepted(message(ts=NOW - 60_000), cfg=cfg)


# --- census ------------------------------------------------------------------------------

def test_unknown_patient() -> None:
    rejected(message(patient_id="p-404"), RejectReason.UNKNOWN_PATIENT,
             "patient_id 'p-404' is not in the census")


def test_ward_mismatch() -> None:
    rejected(message(ward="ICU-B"), RejectReason.UNKNOWN_WARD,
             "ward 'ICU-B' is not the ward of patient_id 'p-1' ('ICU-A')")


def test_bed_mismatch() -> None:
    rejected(message(bed="4"), RejectReason.BED_MISMATCH,
             "bed '4' is not the bed of patient_id 'p-1' ('ICU-A' bed '3')")


def test_census_is_consulted_with_the_patient_id() -> None:
    asked: list[str] = []

    class Spy:
        def get(self, patient_id: str) -> Admission | None:
            asked.append(patient_id)
            return ADMISSION

    validate(raw(message()), received_ts=NOW, census=Spy(), cfg=CFG)
    assert asked == ["p-1"]


def test_garbage_never_costs_a_census_lookup() -> None:
    class NoLookups:
        def get(self, patient_id: str) -> Admission | None:
            raise AssertionError("census consulted")

    for doc in (b"{", raw(message(seq=-1)), raw(message(ts=NOW + 10**9))):
        assert isinstance(validate(doc, received_ts=NOW, census=NoLookups(), cfg=CFG),
                          Rejection)


# --- values: sensor off ------------------------------------------------------------------

ZERO_OFF = [v for v, s in VITALS.items() if s.zero_means_off]


@pytest.mark.parametrize("vital", ZERO_OFF, ids=str)
def test_zero_means_sensor_off(vital: Vital) -> None:
    out = accepted(message(**vitals(**{vital.value: 0, "temp": 37.0})))
    assert out.reading.sensors_off == frozenset({vital})
    assert vital not in out.reading.values
    assert out.field_rejections == ()


@pytest.mark.parametrize("zero", [0, 0.0, -0.0])
def test_every_spelling_of_zero_is_sensor_off(zero: float) -> None:
    assert accepted(message(**vitals(spo2=zero))).reading.sensors_off == {Vital.SPO2}


def test_temperature_zero_is_implausible_not_off() -> None:
    assert not VITALS[Vital.TEMP].zero_means_off
    out = accepted(message(**vitals(hr=80, temp=0)))
    assert out.reading.sensors_off == frozenset()
    assert [r.detail for r in out.field_rejections] == [
        "temp 0 outside plausible range 25-45 °C"]


def test_a_reading_with_only_sensors_off_is_accepted() -> None:
    out = accepted(message(vitals={"hr": 0, "pulse": 0, "spo2": 0, "rr": 0}))
    assert out.reading.values == {}
    assert out.reading.sensors_off == {Vital.HR, Vital.PULSE, Vital.SPO2, Vital.RR}


# --- values: plausibility ----------------------------------------------------------------

def test_pulse_277_is_removed_and_the_rest_kept() -> None:
    """The MIMIC record s25047 has a PULSE of 277/min: an oximeter artefact."""
    out = accepted(message(**vitals(hr=88.0, pulse=277.0, spo2=96.0)))
    assert out.reading.values == {Vital.HR: 88.0, Vital.SPO2: 96.0}
    assert out.field_rejections == (Rejection(
        RejectReason.IMPLAUSIBLE_VALUE, "pulse 277 outside plausible range 20-250 bpm",
        "pulse"),)
    # the stream job takes the field from the start of the detail
    assert out.field_rejections[0].detail.split(" ", 1)[0] == "pulse"


def _edges():
    for vital, spec in VITALS.items():
        lo, hi = float(spec.plausible_min), float(spec.plausible_max)
        yield pytest.param(vital, lo, True, id=f"{vital}={lo:g}")
        yield pytest.param(vital, hi, True, id=f"{vital}={hi:g}")
        yield pytest.param(vital, round(lo - 0.1, 1), False, id=f"{vital}={lo - 0.1:g}")
        yield pytest.param(vital, round(hi + 0.1, 1), False, id=f"{vital}={hi + 0.1:g}")
        yield pytest.param(vital, -5.0, False, id=f"{vital}=-5")


@pytest.mark.parametrize(("vital", "value", "plausible"), list(_edges()))
def test_plausible_range_edges(vital: Vital, value: float, plausible: bool) -> None:
    other = "temp" if vital is not Vital.TEMP else "hr"
    filler = 37.0 if other == "temp" else 80.0
    out = accepted(message(**vitals(**{vital.value: value, other: filler})))
    if plausible:
        assert out.reading.values[vital] == value and out.field_rejections == ()
    else:
        assert vital not in out.reading.values
        (rej,) = out.field_rejections
        assert rej.reason is RejectReason.IMPLAUSIBLE_VALUE and rej.field == vital.value
        assert rej.detail.startswith(f"{vital.value} {value:g} outside plausible range")


def test_every_implausible_field_is_reported() -> None:
    out = accepted(message(**vitals(hr=400, spo2=140, rr=30, temp=55)))
    assert out.reading.values == {Vital.RR: 30.0}
    assert [r.field for r in out.field_rejections] == ["hr", "spo2", "temp"]


def test_all_values_implausible_rejects_the_message() -> None:
    out = rejected(message(**vitals(hr=-20, spo2=140)), RejectReason.IMPLAUSIBLE_VALUE,
                   "every value implausible", "hr -20 outside plausible range 15-300 bpm",
                   "spo2 140 outside plausible range 20-100 %")
    assert out.field is None


def test_implausible_value_with_a_sensor_off_is_kept_as_a_reading() -> None:
    out = accepted(message(**vitals(hr=-20, spo2=0)))
    assert out.reading.sensors_off == {Vital.SPO2} and len(out.field_rejections) == 1


@pytest.mark.parametrize(("sbp", "dbp"), [(80.0, 90.0), (85.0, 85.0)])
def test_systolic_not_above_diastolic_rejects_both(sbp: float, dbp: float) -> None:
    out = accepted(message(**vitals(hr=80, sbp=sbp, dbp=dbp, map=86)))
    assert out.reading.values == {Vital.HR: 80.0, Vital.MAP: 86.0}
    assert [(r.field, r.detail) for r in out.field_rejections] == [
        ("sbp", f"sbp {sbp:g} not above dbp {dbp:g}"),
        ("dbp", f"dbp {dbp:g} not below sbp {sbp:g}"),
    ]


def test_blood_pressure_with_the_diastolic_sensor_off_is_kept() -> None:
    out = accepted(message(**vitals(sbp=120, dbp=0)))
    assert out.reading.values == {Vital.SBP: 120.0} and out.reading.sensors_off == {Vital.DBP}


def test_validation_order_schema_before_time_before_census_before_values() -> None:
    rejected(message(seq=-1, ts=NOW + 10**9, patient_id="p-404"),
             RejectReason.SCHEMA_VIOLATION)
    rejected(message(ts=NOW + 10**9, patient_id="p-404"), RejectReason.FUTURE_TIMESTAMP)
    rejected(message(patient_id="p-404", **vitals(hr=-1)), RejectReason.UNKNOWN_PATIENT)


@pytest.mark.parametrize("reason", list(RejectReason))
def test_reasons_are_snake_case_strings(reason: RejectReason) -> None:
    assert reason.value == reason.name.lower()


# --- faults as the simulator injects them -------------------------------------------------

def test_simulator_faults_are_rejected_with_the_right_reason() -> None:
    import random

    from devices.faults import corrupt

    good = raw(message())
    rng = random.Random(1)
    expected = {"bad_json": RejectReason.MALFORMED_JSON,
                "future_ts": RejectReason.FUTURE_TIMESTAMP}
    for fault, reason in expected.items():
        rejected(corrupt(fault, good, rng), reason)
    for _ in range(20):
        out = check(corrupt("missing_field", good, rng))
        assert isinstance(out, Rejection) and out.reason is RejectReason.SCHEMA_VIOLATION
        out = check(corrupt("impossible_value", good, rng))
        assert isinstance(out, Accepted)
        assert [r.reason for r in out.field_rejections] == [RejectReason.IMPLAUSIBLE_VALUE]

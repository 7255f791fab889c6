"""FHIR R4 export and ingest (backend.fhir, devices.fhir_ingest)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import numpy as np
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.observation import Observation

from backend.admission import Admission
from backend.fhir import (
    DEVICE_SYSTEM,
    FhirIngestError,
    bundle_dict,
    bundle_to_device_readings,
    readings_to_bundle,
)
from backend.messages import DeviceReading
from backend.settings import AlertingSettings
from backend.storage.readings import StoredReading
from backend.validation import Accepted, validate
from backend.vitals import VITALS, Vital
from devices.fhir_ingest import outgoing

T0 = 1_790_000_000_000  # 2026-09-21, ms
CENSUS = {
    "p1": Admission(patient_id="p1", ward="ICU-F", bed="3", admitted_ts=T0 - 3_600_000),
    "p2": Admission(patient_id="p2", ward="ICU-F", bed="4", admitted_ts=T0 - 3_600_000),
}
F32 = np.float32


def stored(v: float) -> float:
    """What Cassandra's float column gives back for ``v``."""
    return float(F32(v))


def row(i: int, sensors_off: set[str] | None = None, **values) -> StoredReading:
    """A ``ReadingStore.between`` reading, from a driver row as Cassandra gives it:
    naive-UTC datetime ts, float32 values, unset columns ``None``."""
    ts = datetime.fromtimestamp((T0 + i * 1000 + 7) / 1000, tz=UTC).replace(tzinfo=None)
    out = {"patient_id": "p1", "ts": ts, "device_id": "mon-ICU-F-3.abc", "seq": i,
           "sensors_off": sensors_off, "o2_supplemental": None, "consciousness": None,
           "news2": None, "news2_band": None, "news2_complete": None, "qsofa": None,
           "processed_ts": None}
    out.update({v.value: None for v in Vital})
    out.update({k: stored(v) for k, v in values.items()})
    return StoredReading.from_row(out)


ROWS = [
    row(0, hr=80, pulse=81, spo2=97, rr=14, sbp=121, dbp=68, map=85.7, temp=36.6),
    row(1, hr=80.5, spo2=96.3, temp=37.2),
    row(2, hr=79, pulse=79, sensors_off={"spo2", "rr"}),
    row(3, map=61.3),
    row(4, temp=38.9),
]


def as_readings(rows: list[StoredReading]) -> list[tuple[int, dict, set]]:
    """(ts ms, values, sensors_off) of rows, comparable with ingested readings."""
    return [(r.ts, {v.value: x for v, x in r.vitals.items()},
             {s.value for s in r.sensors_off}) for r in rows]


def ingested(readings: list[DeviceReading]) -> list[tuple[int, dict, set]]:
    """The same for DeviceReadings, through validation and a float32 column."""
    out = []
    for r in readings:
        res = validate(r.model_dump_json().encode(), received_ts=r.ts, census=CENSUS,
                       cfg=AlertingSettings())
        assert isinstance(res, Accepted) and not res.field_rejections, res
        rd = res.reading
        out.append((rd.ts, {k.value: stored(v) for k, v in rd.values.items()},
                    {s.value for s in rd.sensors_off}))
    return out


def export(rows=ROWS, patient="p1") -> Bundle:
    return readings_to_bundle(patient, rows, start_ms=T0, end_ms=T0 + 3_600_000)


def test_export_validates_as_fhir_r4() -> None:
    bundle = export()
    text = bundle.model_dump_json()
    again = Bundle.model_validate_json(text)  # parse the JSON as written
    assert again.type == "collection"
    obs = [e.resource for e in again.entry]
    assert all(isinstance(o, Observation) for o in obs)
    # 8 + 3 + (2 values + 2 sensor-off) + 1 + 1
    assert len(obs) == 17
    assert len({e.fullUrl for e in again.entry}) == 17
    assert all(e.fullUrl == f"urn:uuid:{e.resource.id}" for e in again.entry)
    assert export().model_dump_json() == text, "deterministic"


def test_plain_dict_export_is_the_same_bundle() -> None:
    plain = bundle_dict("p1", ROWS, start_ms=T0, end_ms=T0 + 3_600_000)
    text = json.dumps(plain)  # JSON-ready as it is
    assert Bundle.model_validate_json(text).model_dump_json() == export().model_dump_json()
    readings = bundle_to_device_readings(text, census=CENSUS)
    assert ingested(readings) == as_readings(ROWS)


def test_the_web_export_is_in_local_time_with_its_offset_and_reads_back_the_same() -> None:
    """The same instants as the UTC export, written as people read them (FHIR dateTime
    with a UTC offset); ingest reads them back to the same readings."""
    local = bundle_dict("p1", ROWS, start_ms=T0, end_ms=T0 + 3_600_000, tz="America/New_York")
    whens = {e["resource"]["effectiveDateTime"] for e in local["entry"]}
    assert whens and all(w.endswith("-04:00") for w in whens)  # September: EDT
    assert Bundle.model_validate(local)  # valid FHIR R4(B)
    readings = bundle_to_device_readings(json.dumps(local), census=CENSUS)
    assert ingested(readings) == as_readings(ROWS)
    utc = bundle_dict("p1", ROWS, start_ms=T0, end_ms=T0 + 3_600_000)
    assert [e["fullUrl"] for e in utc["entry"]] == [e["fullUrl"] for e in local["entry"]]


def test_every_parameter_has_its_loinc_and_ucum() -> None:
    obs = [json.loads(e.resource.model_dump_json()) for e in export().entry]
    first = {o["code"]["coding"][0]["code"]: o for o in obs[:8]}  # row 0: every parameter
    assert set(first) == {s.loinc for s in VITALS.values()}
    for spec in VITALS.values():
        o = first[spec.loinc]
        assert o["status"] == "final"
        assert o["category"][0]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs", "display": "Vital Signs"}
        coding = o["code"]["coding"][0]
        assert coding == {"system": "http://loinc.org", "code": spec.loinc,
                          "display": spec.loinc_display}
        q = o["valueQuantity"]
        assert q["system"] == "http://unitsofmeasure.org"
        assert q["code"] == spec.ucum and q["unit"] == spec.display_unit
        assert o["subject"] == {"reference": "Patient/p1"}
        assert o["effectiveDateTime"].startswith("2026-09-21T") and \
            o["effectiveDateTime"].endswith(".007000Z")
        assert o["device"]["identifier"] == {"system": DEVICE_SYSTEM,
                                             "value": "mon-ICU-F-3.abc"}
    assert [c["code"] for c in first["59408-5"]["code"]["coding"]] == ["59408-5", "2708-6"]
    # values as the shortest decimal of the stored float32, not its float64 expansion
    assert first["8310-5"]["valueQuantity"]["value"] == 36.6
    assert first["8478-0"]["valueQuantity"]["value"] == 85.7


def test_sensor_off_is_data_absent() -> None:
    obs = [json.loads(e.resource.model_dump_json()) for e in export([ROWS[2]]).entry]
    absent = [o for o in obs if "dataAbsentReason" in o]
    assert sorted(o["code"]["coding"][0]["code"] for o in absent) == ["59408-5", "9279-1"]
    assert all("valueQuantity" not in o for o in absent)
    assert absent[0]["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert len(readings_to_bundle("p1", [ROWS[2]], start_ms=T0, end_ms=T0 + 10_000,
                                  include_sensor_off=False).entry) == 2


def test_round_trip_exact() -> None:
    bundle = export()
    readings = bundle_to_device_readings(bundle.model_dump_json(), census=CENSUS)
    assert [r.ts for r in readings] == sorted(r.ts for r in readings)
    assert all(r.device_id == "fhir-mon-ICU-F-3.abc" and r.seq == r.ts for r in readings)
    assert all((r.patient_id, r.ward, r.bed) == ("p1", "ICU-F", "3") for r in readings)
    assert ingested(readings) == as_readings(ROWS)
    # under another patient id, with a named source
    other = bundle_to_device_readings(bundle, census=CENSUS, patient_id="p2", source="lab")
    assert {(r.patient_id, r.bed, r.device_id) for r in other} == {("p2", "4", "fhir-lab")}
    assert ingested(other) == as_readings(ROWS)


def test_window_filters_rows() -> None:
    bundle = readings_to_bundle("p1", ROWS, start_ms=T0 + 1000, end_ms=T0 + 3000)
    readings = bundle_to_device_readings(bundle, census=CENSUS)
    assert [r.ts for r in readings] == [T0 + 1007, T0 + 2007]


def test_ingest_messages_are_device_messages() -> None:
    readings = bundle_to_device_readings(export(), census=CENSUS)
    records = list(outgoing(readings))
    assert records[0].key == b"p1"
    assert DeviceReading.model_validate_json(records[0].value) == readings[0]


def obs_json(**over) -> dict:
    o = json.loads(export([ROWS[0]]).entry[0].resource.model_dump_json())  # heart rate
    o.update(over)
    return o


def bundle_of(*resources: dict, btype: str = "collection") -> dict:
    return {"resourceType": "Bundle", "type": btype,
            "entry": [{"resource": r} for r in resources]}


def test_unit_conversions_exact_only() -> None:
    temp = json.loads(export([ROWS[4]]).entry[0].resource.model_dump_json())
    f = copy.deepcopy(temp)
    f["valueQuantity"] = {"value": 102.02, "system": "http://unitsofmeasure.org",
                          "code": "[degF]", "unit": "°F"}
    (r,) = bundle_to_device_readings(bundle_of(f), census=CENSUS)
    assert r.vitals[Vital.TEMP] == pytest.approx(38.9, abs=1e-12)
    k = copy.deepcopy(temp)
    k["valueQuantity"] = {"value": 310.15, "system": "http://unitsofmeasure.org", "code": "K"}
    (r,) = bundle_to_device_readings(bundle_of(k), census=CENSUS)
    assert r.vitals[Vital.TEMP] == pytest.approx(37.0, abs=1e-12)
    beats = obs_json(valueQuantity={"value": 72, "system": "http://unitsofmeasure.org",
                                    "code": "{beats}/min", "unit": "beats/minute"})
    (r,) = bundle_to_device_readings(bundle_of(beats), census=CENSUS)
    assert r.vitals[Vital.HR] == 72


def test_bp_panel_accepted() -> None:
    panel = obs_json(
        code={"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        component=[
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 118, "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 64, "system": "http://unitsofmeasure.org",
                               "code": "mm[Hg]"}},
        ])
    del panel["valueQuantity"]
    (r,) = bundle_to_device_readings(bundle_of(panel), census=CENSUS)
    assert r.vitals == {Vital.SBP: 118.0, Vital.DBP: 64.0}


GOOD = obs_json()
UCUM = "http://unitsofmeasure.org"


@pytest.mark.parametrize(("bundle", "message"), [
    ("{nope", "not JSON"),
    ({"resourceType": "Patient", "id": "x"}, "expected a FHIR Bundle"),
    ({"resourceType": "Bundle"}, "not a valid FHIR R4 Bundle: type: .* required"),
    (bundle_of({"resourceType": "Observation", "status": "final"}),
     "not a valid FHIR R4 Bundle: entry.0.resource.code: Field required"),
    ({"resourceType": "Bundle", "type": "collection", "bogus": 1},
     "not a valid FHIR R4 Bundle: bogus"),
    (bundle_of({"resourceType": "Patient", "id": "p1"}), "a Patient is not a vital-sign"),
    (bundle_of({**GOOD, "code": {"coding": [{"system": "http://loinc.org",
                                             "code": "2345-7"}]}}),
     "LOINC code 2345-7 is not a vital sign"),
    (bundle_of({**GOOD, "code": {"text": "heart rate"}}), r"LOINC code \(none\)"),
    (bundle_of({**GOOD, "category": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
        "code": "laboratory"}]}]}), "not in the vital-signs category"),
    (bundle_of({**GOOD, "valueQuantity": {"value": 80, "unit": "bpm"}}),
     "must be a UCUM unit"),
    (bundle_of({**GOOD, "valueQuantity": {"value": 80, "system": UCUM, "code": "/s"}}),
     "unit '/s' is not supported for Heart rate"),
    (bundle_of({**GOOD, "valueQuantity": {"value": 80, "system": UCUM, "code": "mmHg"}}),
     "unit 'mmHg' is not supported"),
    (bundle_of({k: v for k, v in GOOD.items() if k != "valueQuantity"}),
     "needs a valueQuantity"),
    (bundle_of({**{k: v for k, v in GOOD.items() if k != "valueQuantity"},
                "valueString": "eighty"}), "needs a valueQuantity"),
    (bundle_of({**GOOD, "status": "entered-in-error"}), "status 'entered-in-error'"),
    (bundle_of({**GOOD, "subject": {"reference": "Group/7"}}), "subject must be"),
    (bundle_of({**GOOD, "effectiveDateTime": "2026-09"}), "not a full date and time"),
    (bundle_of({k: v for k, v in GOOD.items() if k != "effectiveDateTime"}),
     "needs effectiveDateTime"),
    (bundle_of({**GOOD, "subject": {"reference": "Patient/nobody"}}),
     "patient 'nobody' is not admitted"),
    (bundle_of(GOOD, {**GOOD, "id": "other", "valueQuantity": {
        "value": 99, "system": UCUM, "code": "/min"}}), "hr at .* is both 80 and 99"),
])
def test_bad_bundles_rejected_clearly(bundle, message) -> None:
    text = bundle if isinstance(bundle, str) else json.dumps(bundle)
    with pytest.raises(FhirIngestError, match=message):
        bundle_to_device_readings(text, census=CENSUS)


def test_one_patient_only_when_renaming() -> None:
    two = bundle_of(GOOD, {**GOOD, "subject": {"reference": "Patient/p2"}})
    assert len(bundle_to_device_readings(two, census=CENSUS)) == 2
    with pytest.raises(FhirIngestError, match="about 2 patients"):
        bundle_to_device_readings(two, census=CENSUS, patient_id="p1")


def test_same_value_twice_is_one_reading() -> None:
    readings = bundle_to_device_readings(bundle_of(GOOD, {**GOOD, "id": "copy"}),
                                         census=CENSUS)
    assert len(readings) == 1


def test_long_source_is_cut_to_the_schema() -> None:
    (r,) = bundle_to_device_readings(bundle_of(GOOD), census=CENSUS, source="x" * 100)
    assert len(r.device_id) <= 64 and r.device_id.startswith("fhir-xxx")


def test_cli_dry_run(tmp_path, monkeypatch) -> None:
    from click.testing import CliRunner

    from devices import fhir_ingest
    from devices.simulate_cli import cli

    monkeypatch.setattr(fhir_ingest, "read_census", lambda settings: CENSUS)
    path = tmp_path / "bundle.json"
    path.write_text(export().model_dump_json())
    result = CliRunner().invoke(cli, ["fhir", str(path), "--patient", "p2", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(ROWS) and {m["patient_id"] for m in lines} == {"p2"}
    path.write_text(json.dumps(bundle_of({**GOOD, "status": "cancelled"})))
    bad = CliRunner().invoke(cli, ["fhir", str(path), "--dry-run"])
    assert bad.exit_code == 2 and "status 'cancelled'" in bad.output

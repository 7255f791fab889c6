"""Hostile inputs, generated (hypothesis): FHIR ingest, strict JSON, identifiers.

The properties: whatever the bytes, ``bundle_to_device_readings`` returns readings or
raises ``FhirIngestError`` with a 4xx status and a reason - never another exception; an
absurd value is refused, never dropped as "not measured"; strict JSON refuses duplicate
keys, non-numbers and runaway nesting; identifiers refuse every control, bidirectional
and zero-width character.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backend.fhir import FhirIngestError, bundle_to_device_readings
from backend.identifiers import identifier_problem
from backend.strictjson import JsonError, loads
from backend.vitals import VITALS, Vital
from tests.unit.devices.test_fhir import CENSUS, GOOD, bundle_of, obs_json

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def _ingest(data) -> list:
    try:
        return bundle_to_device_readings(data, census=CENSUS)
    except FhirIngestError as exc:
        assert exc.status in (400, 413, 422)
        assert str(exc)  # a reason
        raise


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_give_readings_or_a_clear_error(data: bytes) -> None:
    with contextlib.suppress(FhirIngestError):
        _ingest(data)


@FAST
@given(json_values)
def test_any_json_document_gives_a_clear_error(doc) -> None:
    with contextlib.suppress(FhirIngestError):
        _ingest(json.dumps(doc))


paths = st.sampled_from([
    ("valueQuantity", "value"), ("valueQuantity", "code"), ("valueQuantity", "system"),
    ("subject", "reference"), ("effectiveDateTime",), ("status",), ("code", "coding"),
    ("category",), ("device", "identifier", "value"), ("component",), ("id",),
])


@FAST
@given(paths, json_values)
def test_a_mutated_good_observation_gives_readings_or_a_clear_error(path, value) -> None:
    obs = copy.deepcopy(GOOD)
    node = obs
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict):
        node[path[-1]] = value
    with contextlib.suppress(FhirIngestError):
        _ingest(json.dumps(bundle_of(obs)))


@FAST
@given(st.sampled_from(list(Vital)), st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**40, 10**40)))
def test_an_absurd_value_is_refused_never_dropped(vital: Vital, value: float) -> None:
    spec = VITALS[vital]
    implausible = (not spec.plausible_min <= value <= spec.plausible_max
                   or (value == 0 and spec.zero_means_off))
    assume(implausible)
    obs = obs_json()
    obs["code"] = {"coding": [{"system": "http://loinc.org", "code": spec.loinc}]}
    obs["valueQuantity"] = {"value": value, "system": "http://unitsofmeasure.org",
                            "code": spec.ucum}
    with pytest.raises(FhirIngestError) as err:
        _ingest(json.dumps(bundle_of(obs)))
    assert err.value.status in (400, 422)  # a number too long to read, or implausible


@pytest.mark.parametrize(("text", "status", "reason"), [
    (b"\xff\xfe{}", 400, "not UTF-8"),
    (b"[" * 100_000, 400, "nested too deeply"),
    ('{"resourceType": "Bundle", "type": "collection", "entry": [], "x": '
     + "9" * 5000 + "}", 400, "digits"),
    ('{"resourceType": "Bundle", "resourceType": "Patient"}', 400, "duplicate key"),
    ('{"resourceType": "Bundle", "type": "collection", "total": NaN}', 400, "NaN"),
    (json.dumps(bundle_of({**GOOD, "valueQuantity": {**GOOD["valueQuantity"],
                                                      "value": 1e30}})), 422,
     "outside the plausible range"),
    (json.dumps(bundle_of({**GOOD, "subject": {"reference": "Patient/p1\u202e"}})), 422,
     "not a FHIR id"),
])
def test_named_hostile_bundles(text, status, reason) -> None:
    with pytest.raises(FhirIngestError, match=reason) as err:
        _ingest(text)
    assert err.value.status == status


@pytest.mark.parametrize("levels", [40, 900, sys.getrecursionlimit() * 3])
def test_deep_nesting_inside_a_bundle_is_refused(levels: int) -> None:
    text = '{"resourceType":"Bundle","x":' + '{"x":' * levels + "1" + "}" * (levels + 1)
    with pytest.raises(FhirIngestError, match="nested too deeply"):
        _ingest(text)


@FAST
@given(st.dictionaries(st.text(max_size=5), st.integers(-10**9, 10**9), min_size=1,
                       max_size=5),
       st.data())
def test_strict_json_refuses_any_duplicate_key(obj: dict, data) -> None:
    key = data.draw(st.sampled_from(sorted(obj)))
    text = json.dumps(obj)[:-1] + f", {json.dumps(key)}: 1}}"
    with pytest.raises(JsonError, match="duplicate key"):
        loads(text)
    assert loads(json.dumps(obj)) == obj  # without the duplicate: the same value


@FAST
@given(json_values)
def test_strict_json_reads_what_json_writes(doc) -> None:
    def finite(v):
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list):
            return all(finite(x) for x in v)
        if isinstance(v, dict):
            return all(finite(x) for x in v.values())
        return not isinstance(v, int) or isinstance(v, bool) or len(str(abs(v))) <= 30

    assume(finite(doc))
    assert loads(json.dumps(doc)) == doc


BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
hidden = st.characters(categories=tuple(BAD_CATEGORIES))


@FAST
@given(st.text(alphabet=st.characters(categories=("Lu", "Ll", "Nd")), min_size=1,
               max_size=20), hidden, st.integers(min_value=0))
def test_identifiers_refuse_every_hidden_character(base: str, bad: str, at: int) -> None:
    pos = at % (len(base) + 1)
    text = base[:pos] + bad + base[pos:]
    problem = identifier_problem(text, "patient id")
    assert problem is not None and "patient id" in problem


@pytest.mark.parametrize("ch", ["\u202e", "\u2066", "\u200b", "\u200d", "\ufeff", "\x00",
                                "\x1b", "\n", "\u2028", "\u00a0"])
def test_named_invisible_characters(ch: str) -> None:
    assert identifier_problem(f"P-00{ch}1") is not None
    assert identifier_problem(f"Dr {ch}Who", allow_space=True) is not None


@FAST
@given(st.text(alphabet=st.characters(categories=("Lu", "Ll", "Nd", "Pd")), min_size=1,
               max_size=64))
def test_ordinary_identifiers_pass(text: str) -> None:
    assume(unicodedata.normalize("NFC", text) == text)
    assert identifier_problem(text) is None

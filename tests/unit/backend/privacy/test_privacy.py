"""Pseudonyms and date shifts of the research export (pure)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from backend.privacy.export import render
from backend.privacy.pseudonymise import Pseudonymiser
from backend.settings import Settings
from backend.storage.readings import StoredReading
from backend.vitals import Vital

S = Settings(secret_key=SecretStr("s" * 40), privacy={"pseudonym_key": SecretStr("k" * 40),
                                                      "max_date_shift_days": 30})


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=64))
def test_pseudonyms_are_stable_keyed_and_shifts_bounded(pid: str) -> None:
    p = Pseudonymiser.from_settings(S)
    assert p.patient(pid) == Pseudonymiser.from_settings(S).patient(pid)
    assert pid not in p.patient(pid)[3:] or len(pid) < 3
    other = Pseudonymiser.from_settings(S.model_copy(update={
        "privacy": S.privacy.model_copy(update={"pseudonym_key": SecretStr("x" * 40)})}))
    assert other.patient(pid) != p.patient(pid)  # without the key, no link
    assert 1 <= abs(p.shift_days(pid)) <= 30


def test_shifts_differ_between_patients_and_keep_intervals() -> None:
    p = Pseudonymiser.from_settings(S)
    shifts = {p.shift_days(f"P{i}") for i in range(200)}
    assert len(shifts) > 30 and 0 not in shifts
    rows = [StoredReading("P1", 1_700_000_000_000 + i * 1000, "mon-1", i, {Vital.HR: 80.0},
                          frozenset(), None, None, None, None, False, None, None)
            for i in range(3)]
    out, n = render(rows, "P1", 1_700_000_000_000, 1_700_000_010_000, fmt="csv", pseudo=p)
    assert n == 3 and out[1][0] == p.patient("P1") and out[1][2] == p.device("mon-1")
    assert [r[1] for r in out[1:]] == [r.ts + p.shift_days("P1") * 86_400_000 for r in rows]

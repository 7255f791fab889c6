"""backend.alerting.rules: the rule table, its priorities, thresholds and conditions.

Persistence and clearing over time are tested in test_evaluation.py; here every rule is
applied to a single ``Snapshot`` of carried-forward values.
"""

from __future__ import annotations

import pytest

from backend.alerting.evaluation import score_news2, score_qsofa
from backend.alerting.rules import (
    CONTINUOUS,
    GROUPS,
    RULES,
    RULES_BY_ID,
    STALE_RULE,
    VALIDITY_SECONDS,
    Snapshot,
    stale_message,
)
from backend.messages import Consciousness, Priority
from backend.scores.news2 import News2Band
from backend.settings import AlertingSettings, Settings
from backend.vitals import VITALS, Vital

CFG = AlertingSettings()
A = Consciousness.ALERT
# A patient who scores 0 on every NEWS2 parameter.
NORMAL = {Vital.HR: 75.0, Vital.SPO2: 97.0, Vital.RR: 16.0, Vital.SBP: 125.0,
          Vital.TEMP: 37.0}


def snap(values: dict | None = None, *, off: set[Vital] = frozenset(), o2: bool | None = False,
         consciousness: Consciousness | None = A, scale: int = 1, **changes) -> Snapshot:
    """A snapshot of ``NORMAL`` with ``changes`` (``hr=130``; None removes a value)."""
    vals = dict(NORMAL if values is None else values)
    for name, value in changes.items():
        if value is None:
            vals.pop(Vital(name), None)
        else:
            vals[Vital(name)] = float(value)
    hr = vals.get(Vital.HR)
    pulse_source = Vital.HR if hr is not None else (Vital.PULSE if Vital.PULSE in vals
                                                    else None)
    pulse = hr if hr is not None else vals.get(Vital.PULSE)
    return Snapshot(
        ts=0, values=vals, sensors_off=frozenset(off), o2_supplemental=o2,
        consciousness=consciousness,
        news2=score_news2(rr=vals.get(Vital.RR), spo2=vals.get(Vital.SPO2), spo2_scale=scale,
                          o2_supplemental=o2, sbp=vals.get(Vital.SBP), pulse=pulse,
                          consciousness=consciousness, temp=vals.get(Vital.TEMP)),
        qsofa=score_qsofa(rr=vals.get(Vital.RR), sbp=vals.get(Vital.SBP),
                          consciousness=consciousness),
        pulse_source=pulse_source,
    )


def fires(rule_id: str, s: Snapshot, cfg: AlertingSettings = CFG) -> bool:
    return RULES_BY_ID[rule_id].condition(s, cfg)


def firing(s: Snapshot, cfg: AlertingSettings = CFG) -> set[str]:
    return {r.id for r in RULES if r.condition is not None and r.condition(s, cfg)}


# --- the table ---------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "priority"), [
    ("news2_high", Priority.HIGH),
    ("news2_medium", Priority.MEDIUM),
    ("news2_red_flag", Priority.LOW),
    ("qsofa_positive", Priority.MEDIUM),
    ("ref_hr_high", Priority.MEDIUM),
    ("ref_spo2_low", Priority.HIGH),
    ("stale_signal", Priority.MEDIUM),
    *[(f"sensor_off_{v.value}", Priority.LOW) for v, s in VITALS.items() if s.zero_means_off],
])
def test_rule_priorities(rule: str, priority: Priority) -> None:
    assert RULES_BY_ID[rule].priority is priority


def test_rule_table_is_complete_and_unique() -> None:
    zero_off = {v for v, s in VITALS.items() if s.zero_means_off}
    assert {r.id for r in RULES} == {
        "news2_high", "news2_medium", "news2_red_flag", "qsofa_positive", "ref_hr_high",
        "ref_spo2_low", "stale_signal", *(f"sensor_off_{v.value}" for v in zero_off)}
    assert len(RULES) == len(RULES_BY_ID)
    for rule in RULES:
        assert rule.description
        assert rule.kind == ("technical" if rule.id.startswith(("sensor_off", "stale"))
                             else "clinical")


def test_groups_hold_every_reading_rule_most_severe_first() -> None:
    grouped = [r for g in GROUPS for r in g]
    assert sorted(r.id for r in grouped) == sorted(r.id for r in RULES if r is not STALE_RULE)
    (news2,) = [g for g in GROUPS if len(g) > 1]
    assert [r.id for r in news2] == ["news2_high", "news2_medium", "news2_red_flag"]


def test_validity_table_covers_every_parameter() -> None:
    assert set(VALIDITY_SECONDS) == {*Vital, "consciousness", "o2_supplemental"}
    assert VALIDITY_SECONDS[Vital.HR] == VALIDITY_SECONDS[Vital.SPO2] == 300
    assert VALIDITY_SECONDS[Vital.SBP] == 3600
    assert VALIDITY_SECONDS[Vital.TEMP] == 4 * 3600
    assert VALIDITY_SECONDS["consciousness"] == VALIDITY_SECONDS["o2_supplemental"] == 12 * 3600
    assert {Vital.HR, Vital.PULSE, Vital.SPO2, Vital.RR} == CONTINUOUS


def test_a_normal_patient_fires_nothing() -> None:
    assert firing(snap()) == set()
    assert firing(snap({}, consciousness=None, o2=None)) == set()


# --- reference rules ---------------------------------------------------------------------

@pytest.mark.parametrize(("hr", "fires_"), [
    (120, False), (121, True), (120.4, False), (120.5, True), (250, True), (60, False)])
def test_reference_hr_threshold(hr: float, fires_: bool) -> None:
    assert fires("ref_hr_high", snap(hr=hr)) is fires_


@pytest.mark.parametrize(("spo2", "fires_"), [
    (90, False), (89, True), (89.5, False), (89.4, True), (20, True)])
def test_reference_spo2_threshold(spo2: float, fires_: bool) -> None:
    assert fires("ref_spo2_low", snap(spo2=spo2)) is fires_


def test_reference_thresholds_come_from_the_settings() -> None:
    cfg = Settings(alerting={"reference_hr_above": 100, "reference_spo2_below": 94}).alerting
    assert fires("ref_hr_high", snap(hr=101), cfg) and not fires("ref_hr_high", snap(hr=100), cfg)
    assert fires("ref_spo2_low", snap(spo2=93), cfg)
    assert not fires("ref_spo2_low", snap(spo2=94), cfg)


def test_reference_messages_and_values() -> None:
    s = snap(hr=121.2, spo2=88)
    hr, spo2 = RULES_BY_ID["ref_hr_high"], RULES_BY_ID["ref_spo2_low"]
    assert hr.message(s, CFG) == "HR 121/min above 120/min"
    assert hr.values(s) == {"hr": 121.2}
    assert spo2.message(s, CFG) == "SpO2 88 % below 90 %"
    assert spo2.values(s) == {"spo2": 88.0}


def test_reference_hr_uses_the_ecg_rate_not_the_oximeter_pulse() -> None:
    assert not fires("ref_hr_high", snap(hr=None, pulse=150))


# --- sensor off: unknown, never low ------------------------------------------------------

def test_spo2_sensor_off_is_a_technical_alarm_never_a_desaturation() -> None:
    s = snap(spo2=None, off={Vital.SPO2})
    assert firing(s) == {"sensor_off_spo2"}
    rule = RULES_BY_ID["sensor_off_spo2"]
    assert rule.message(s, CFG) == "SpO2 sensor off"
    assert rule.values(s) == {"spo2": None}


@pytest.mark.parametrize("vital", [v for v, s in VITALS.items() if s.zero_means_off], ids=str)
def test_sensor_off_rule_per_parameter(vital: Vital) -> None:
    s = snap(off={vital}, **{vital.value: None})
    assert f"sensor_off_{vital.value}" in firing(s)
    assert RULES_BY_ID[f"sensor_off_{vital.value}"].message(s, CFG).endswith(" sensor off")


# --- NEWS2 -------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "total", "expected"), [
    ({}, 0, set()),
    ({"rr": 22, "hr": 95}, 3, set()),  # low band: no alarm
    ({"rr": 7}, 3, {"news2_red_flag"}),  # a single 3, aggregate < 5
    ({"rr": 23, "hr": 112, "spo2": 95}, 5, {"news2_medium", "news2_red_flag"}),
    ({"rr": 23, "hr": 112, "spo2": 95, "temp": 39.2}, 7,
     {"news2_high", "news2_medium", "news2_red_flag"}),
])
def test_news2_conditions_are_cumulative(changes: dict, total: int, expected: set) -> None:
    s = snap(**changes)
    assert s.news2.total == total
    assert {r for r in firing(s) if r.startswith("news2")} == expected


def test_red_flag_band_and_message() -> None:
    s = snap(rr=7)
    assert s.news2.band is News2Band.LOW_MEDIUM
    rule = RULES_BY_ID["news2_red_flag"]
    assert rule.message(s, CFG) == ("NEWS2 red score: respiration rate scored 3 (NEWS2 3): "
                                    "Urgent ward-based response")
    assert rule.values(s) == {"news2": 3.0, "rr": 7.0, "spo2": 97.0, "sbp": 125.0,
                              "pulse": 75.0, "temp": 37.0}


def test_news2_messages_say_when_the_score_is_partial() -> None:
    s = snap({Vital.RR: 23.0, Vital.HR: 112.0, Vital.SPO2: 95.0}, o2=None, consciousness=None)
    assert s.news2.total == 5 and not s.news2.complete
    assert RULES_BY_ID["news2_medium"].message(s, CFG) == (
        "NEWS2 5, medium clinical risk: Key threshold for urgent response "
        "(partial: 3 of 7 parameters)")


def test_news2_uses_the_oximeter_pulse_when_hr_is_unknown() -> None:
    s = snap(hr=None, pulse=135)
    assert s.news2.components["pulse"] == 3
    assert RULES_BY_ID["news2_red_flag"].evidence(s) == {Vital.PULSE}


def test_news2_evidence_is_what_scores() -> None:
    s = snap(rr=7, spo2=95, temp=38.5)  # rr 3, spo2 1, temp 1
    assert RULES_BY_ID["news2_red_flag"].evidence(s) == {"rr"}  # the 3 only
    assert RULES_BY_ID["news2_medium"].evidence(s) == {"rr", "spo2", "temp"}
    assert RULES_BY_ID["news2_high"].evidence(snap()) == frozenset()


def test_news2_scale_2() -> None:
    # SpO2 89 % on air: 3 on scale 1 (a red score), 0 on scale 2 (target 88-92 %)
    assert "news2_red_flag" in firing(snap(spo2=89))
    assert not any(r.startswith("news2") for r in firing(snap(spo2=89, scale=2)))


def test_consciousness_alone_is_a_red_score() -> None:
    assert "news2_red_flag" in firing(snap(consciousness=Consciousness.VOICE))


# --- qSOFA -------------------------------------------------------------------------------

@pytest.mark.parametrize(("changes", "consciousness", "positive"), [
    ({"rr": 22, "sbp": 100}, A, True),
    ({"rr": 21, "sbp": 100}, A, False),
    ({"rr": 22, "sbp": 101}, A, False),
    ({"rr": 22}, Consciousness.CONFUSION, True),
    ({"sbp": 95}, Consciousness.PAIN, True),
    ({"rr": 30, "sbp": None}, None, False),
])
def test_qsofa_positive(changes: dict, consciousness, positive: bool) -> None:
    assert fires("qsofa_positive", snap(consciousness=consciousness, **changes)) is positive


def test_qsofa_message_names_the_criteria() -> None:
    s = snap(rr=24, sbp=95)
    rule = RULES_BY_ID["qsofa_positive"]
    assert rule.message(s, CFG) == ("qSOFA 2: respiratory rate >= 22/min, "
                                    "systolic BP <= 100 mmHg")
    assert rule.values(s) == {"qsofa": 2.0, "rr": 24.0, "sbp": 95.0}
    assert rule.evidence(s) == {"rr", "sbp"}


def test_stale_message() -> None:
    assert stale_message(31.4) == "No signal: no reading for 31 s"
    assert STALE_RULE.condition is None

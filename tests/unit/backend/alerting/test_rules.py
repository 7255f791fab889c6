"""backend.alerting.rules: the rule table, its priorities, thresholds and conditions.

Persistence and clearing over time are tested in test_evaluation.py; here every rule is
applied to a single ``Snapshot`` of carried-forward values. The priorities expected here
are written out from the published sources (RCP NEWS2 Chart 2 and 4, the limits of the
module docstring), never read from the table under test.
"""

from __future__ import annotations

import random
import re

import pytest

from backend.alerting.evaluation import score_news2, score_qsofa
from backend.alerting.rules import (
    CONTINUOUS,
    GROUPS,
    LIMITS,
    RULES,
    RULES_BY_ID,
    SENSORS,
    STALE_RULE,
    VALIDITY_SECONDS,
    Snapshot,
    reporting_interval_ms,
    stale_message,
    stale_timeout_ms,
    value_flag,
)
from backend.messages import Consciousness, Priority
from backend.scores.news2 import News2Band
from backend.settings import AlarmLimits, AlertingSettings, Settings
from backend.vitals import VITALS, Vital

CFG = AlertingSettings()
A = Consciousness.ALERT
HIGH, MEDIUM, LOW = Priority.HIGH, Priority.MEDIUM, Priority.LOW
# A patient who scores 0 on every NEWS2 parameter.
NORMAL = {Vital.HR: 75.0, Vital.SPO2: 97.0, Vital.RR: 16.0, Vital.SBP: 125.0,
          Vital.DBP: 70.0, Vital.MAP: 88.0, Vital.TEMP: 37.0}
ZERO_OFF = [v for v, s in VITALS.items() if s.zero_means_off]


def snap(values: dict | None = None, *, off: set[Vital] = frozenset(), o2: bool | None = False,
         consciousness: Consciousness | None = A, scale: int = 1, **changes) -> Snapshot:
    """A snapshot of ``NORMAL`` with ``changes`` (``hr=130``; None removes a value)."""
    vals = dict(NORMAL if values is None else values)
    for name, value in changes.items():
        if value is None:
            vals.pop(Vital(name), None)
        else:
            vals[Vital(name)] = float(value)
    for vital in off:
        vals.pop(vital, None)
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


def raised(s: Snapshot, cfg: AlertingSettings = CFG) -> set[str]:
    """What would be raised: per group, its most severe rule that holds."""
    out = set()
    for group in GROUPS:
        for rule in group:
            if rule.condition(s, cfg):
                out.add(rule.id)
                break
    return out


# --- the table ---------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "priority"), [
    # RCP NEWS2 Chart 2/4: >= 7 emergency response; 5-6 and a single 3 urgent response
    ("news2_high", HIGH), ("news2_medium", MEDIUM), ("news2_red_flag", MEDIUM),
    ("qsofa_positive", MEDIUM),
    # central-station limits: desaturation and extreme rates life-threatening (red)
    ("limit_spo2_low", HIGH), ("limit_hr_low", HIGH), ("limit_hr_high", HIGH),
    ("limit_map_low", MEDIUM),
    ("stale_signal", MEDIUM),
    *[(f"sensor_off_{v.value}", LOW) for v in ZERO_OFF],
    # retired, never raised: their old priority, for the clearing of old alerts
    ("ref_hr_high", MEDIUM), ("ref_spo2_low", HIGH),
])
def test_rule_priorities(rule: str, priority: Priority) -> None:
    assert RULES_BY_ID[rule].priority is priority


def test_rule_table_is_complete_and_unique() -> None:
    assert {r.id for r in RULES} == {
        "news2_high", "news2_medium", "news2_red_flag", "qsofa_positive", "limit_spo2_low",
        "limit_hr_low", "limit_hr_high", "limit_map_low", "stale_signal", "ref_hr_high",
        "ref_spo2_low", *(f"sensor_off_{v.value}" for v in ZERO_OFF)}
    assert len(RULES) == len(RULES_BY_ID)
    for rule in RULES:
        assert rule.description
        assert rule.kind == ("technical" if rule.id.startswith(("sensor_off", "stale"))
                             else "clinical")
    assert {r.id for r in RULES if r.retired} == {"ref_hr_high", "ref_spo2_low"}


def test_every_table_rule_is_in_the_module_docstring_table() -> None:
    import backend.alerting.rules as rules

    doc = rules.__doc__
    for rule in RULES:
        if rule.retired:
            continue
        name = "sensor_off_<s>" if rule.id.startswith("sensor_off_") else rule.id
        row = re.search(rf"^\s+{re.escape(name)}\s+(HIGH|MEDIUM|LOW)\s", doc, re.M)
        assert row, f"{rule.id} is missing from the table in the docstring"
        assert row.group(1) == rule.priority.name


def test_groups_hold_every_reading_rule_most_severe_first() -> None:
    grouped = [r for g in GROUPS for r in g]
    assert sorted(r.id for r in grouped) == sorted(r.id for r in RULES if r is not STALE_RULE)
    by_first = {g[0].id: [r.id for r in g] for g in GROUPS if len(g) > 1}
    assert by_first == {
        "news2_high": ["news2_high", "news2_medium", "news2_red_flag"],
        "sensor_off_spo2": ["sensor_off_spo2", "sensor_off_pulse"],
        "sensor_off_hr": ["sensor_off_hr", "sensor_off_rr"],
        "sensor_off_sbp": ["sensor_off_sbp", "sensor_off_map", "sensor_off_dbp"],
    }
    assert {v for _, members in SENSORS.values() for v in members} == set(ZERO_OFF)


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


def test_retired_rules_never_hold() -> None:
    for s in (snap(hr=250), snap(spo2=20), snap()):
        assert not fires("ref_hr_high", s) and not fires("ref_spo2_low", s)


# --- NEWS2: the RCP bands, edge by edge ----------------------------------------------------

# (changes to NORMAL, aggregate, a single 3?) around every band edge of Chart 2:
# 4 without a 3 (low: nothing), 4 with one (low-medium: urgent ward-based), 5 and 6
# (medium: urgent), 7 (high: emergency).
BAND_CASES = [
    ({}, 0, False),
    ({"hr": 91}, 1, False),  # pulse 91-110: 1
    ({"rr": 22, "hr": 95, "spo2": 95}, 4, False),  # 2 + 1 + 1
    ({"rr": 7}, 3, True),  # a single 3 (RR <= 8), aggregate 3
    ({"rr": 7, "hr": 95}, 4, True),  # 3 + 1
    ({"rr": 23, "hr": 112, "spo2": 95}, 5, False),  # 2 + 2 + 1
    ({"rr": 7, "hr": 95, "spo2": 95}, 5, True),  # 3 + 1 + 1
    ({"rr": 23, "hr": 112, "spo2": 93}, 6, False),  # 2 + 2 + 2
    ({"rr": 23, "hr": 112, "spo2": 95, "temp": 39.2}, 7, False),  # + 2
    ({"rr": 25, "hr": 112, "spo2": 95}, 6, True),  # 3 + 2 + 1
    ({"rr": 25, "hr": 112, "spo2": 93}, 7, True),
    ({"rr": 25, "hr": 131, "spo2": 91, "sbp": 90, "temp": 39.1}, 14, True),
]


def expected_news2_rule(total: int, red_flag: bool) -> str | None:
    """RCP Chart 2, written out: the NEWS2 alarm an aggregate and a red score call for."""
    if total >= 7:
        return "news2_high"
    if total >= 5:
        return "news2_medium"
    if red_flag:
        return "news2_red_flag"
    return None


@pytest.mark.parametrize(("changes", "total", "red_flag"), BAND_CASES)
def test_news2_band_edges(changes: dict, total: int, red_flag: bool) -> None:
    s = snap(**changes)
    assert (s.news2.total, s.news2.red_flag) == (total, red_flag)
    news2_raised = {r for r in raised(s) if r.startswith("news2")}
    want = expected_news2_rule(total, red_flag)
    assert news2_raised == ({want} if want else set())
    if want:
        assert RULES_BY_ID[want].priority is {"news2_high": HIGH, "news2_medium": MEDIUM,
                                              "news2_red_flag": MEDIUM}[want]


# Chart 1, one parameter at a time: both sides of every edge between a 2 (or 1) and a 3.
@pytest.mark.parametrize(("changes", "red"), [
    ({"rr": 8}, True), ({"rr": 9}, False), ({"rr": 24}, False), ({"rr": 25}, True),
    ({"spo2": 91}, True), ({"spo2": 92}, False),
    ({"sbp": 90}, True), ({"sbp": 91}, False), ({"sbp": 219}, False), ({"sbp": 220}, True),
    ({"hr": 40}, True), ({"hr": 41}, False), ({"hr": 130}, False), ({"hr": 131}, True),
    ({"temp": 35.0}, True), ({"temp": 35.1}, False),
    ({"rr": 8.4}, True), ({"rr": 8.5}, False),  # rounded as displayed
])
def test_a_single_parameter_scoring_3_is_an_urgent_alarm(changes: dict, red: bool) -> None:
    s = snap(**changes)
    assert s.news2.red_flag is red and s.news2.total < 5
    assert ("news2_red_flag" in raised(s)) is red


@pytest.mark.parametrize("level", [Consciousness.CONFUSION, Consciousness.VOICE,
                                   Consciousness.PAIN, Consciousness.UNRESPONSIVE])
def test_consciousness_other_than_alert_is_a_red_score(level: Consciousness) -> None:
    assert "news2_red_flag" in raised(snap(consciousness=level))


def test_news2_over_generated_inputs_follows_the_bands() -> None:
    """Every combination the generator draws: the raised NEWS2 rule is the band's."""
    rng = random.Random(2017)
    seen = set()
    for _ in range(3000):
        s = snap(rr=rng.choice([6, 8, 9, 11, 12, 20, 21, 24, 25, 30]),
                 spo2=rng.choice([85, 91, 92, 93, 94, 95, 96, 99]),
                 sbp=rng.choice([85, 90, 91, 100, 101, 110, 111, 219, 220]),
                 hr=rng.choice([38, 40, 41, 50, 51, 90, 91, 110, 111, 130, 131, 160]),
                 temp=rng.choice([34.9, 35.0, 35.1, 36.0, 36.1, 38.0, 38.1, 39.0, 39.1]),
                 o2=rng.choice([False, True]),
                 consciousness=rng.choice([A, A, A, Consciousness.VOICE]))
        want = expected_news2_rule(s.news2.total, s.news2.red_flag)
        assert {r for r in raised(s) if r.startswith("news2")} == ({want} if want else set())
        seen.add(want)
    assert seen == {None, "news2_red_flag", "news2_medium", "news2_high"}


def test_news2_scale_2() -> None:
    # SpO2 89 % on air: 3 on scale 1 (a red score), 0 on scale 2 (target 88-92 %)
    assert "news2_red_flag" in firing(snap(spo2=89))
    assert not any(r.startswith("news2") for r in firing(snap(spo2=89, scale=2)))


def test_news2_uses_the_oximeter_pulse_when_hr_is_unknown() -> None:
    s = snap(hr=None, pulse=135)
    assert s.news2.components["pulse"] == 3
    assert RULES_BY_ID["news2_red_flag"].evidence(s) == {Vital.PULSE}


def test_news2_evidence_is_what_scores() -> None:
    s = snap(rr=7, spo2=95, temp=38.5)  # rr 3, spo2 1, temp 1
    assert RULES_BY_ID["news2_red_flag"].evidence(s) == {"rr"}  # the 3 only
    assert RULES_BY_ID["news2_medium"].evidence(s) == {"rr", "spo2", "temp"}
    assert RULES_BY_ID["news2_high"].evidence(snap()) == frozenset()


# --- NEWS2 messages ----------------------------------------------------------------------

def test_news2_messages_name_the_rcp_response() -> None:
    high = snap(rr=23, hr=112, spo2=95, temp=39.2)
    assert RULES_BY_ID["news2_high"].message(high, CFG) == (
        "NEWS2 7: emergency response (high clinical risk)")
    medium = snap(rr=23, hr=112, spo2=95)
    assert RULES_BY_ID["news2_medium"].message(medium, CFG) == (
        "NEWS2 5: urgent response (medium clinical risk)")
    # the urgent alarm while NEWS2 is already 7 (not yet persisted): never "NEWS2 7:"
    assert RULES_BY_ID["news2_medium"].message(high, CFG) == (
        "NEWS2 5 or more (now 7): urgent response (medium clinical risk)")
    red = snap(rr=7)
    assert red.news2.band is News2Band.LOW_MEDIUM
    assert RULES_BY_ID["news2_red_flag"].message(red, CFG) == (
        "NEWS2 red score: respiration rate scored 3 (NEWS2 3): urgent ward-based response")
    assert RULES_BY_ID["news2_red_flag"].values(red) == {
        "news2": 3.0, "rr": 7.0, "spo2": 97.0, "sbp": 125.0, "pulse": 75.0, "temp": 37.0}


def test_news2_messages_say_when_the_score_is_partial() -> None:
    s = snap({Vital.RR: 23.0, Vital.HR: 112.0, Vital.SPO2: 95.0}, o2=None, consciousness=None)
    assert s.news2.total == 5 and not s.news2.complete
    assert RULES_BY_ID["news2_medium"].message(s, CFG) == (
        "NEWS2 5: urgent response (medium clinical risk) (partial: 3 of 7 parameters)")


# --- physiological limits, edge by edge ----------------------------------------------------

@pytest.mark.parametrize(("rule", "changes", "holds"), [
    ("limit_spo2_low", {"spo2": 85}, False), ("limit_spo2_low", {"spo2": 84}, True),
    ("limit_spo2_low", {"spo2": 84.5}, False), ("limit_spo2_low", {"spo2": 84.4}, True),
    ("limit_hr_low", {"hr": 40}, False), ("limit_hr_low", {"hr": 39}, True),
    ("limit_hr_low", {"hr": 39.5}, False), ("limit_hr_low", {"hr": 39.4}, True),
    ("limit_hr_high", {"hr": 150}, False), ("limit_hr_high", {"hr": 151}, True),
    ("limit_hr_high", {"hr": 150.4}, False), ("limit_hr_high", {"hr": 150.5}, True),
    ("limit_map_low", {"map": 65}, False), ("limit_map_low", {"map": 64}, True),
    ("limit_map_low", {"map": 64.5}, False), ("limit_map_low", {"map": 64.4}, True),
])
def test_limit_edges(rule: str, changes: dict, holds: bool) -> None:
    assert fires(rule, snap(**changes)) is holds


def test_limits_use_the_ecg_rate_not_the_oximeter_pulse() -> None:
    assert not fires("limit_hr_high", snap(hr=None, pulse=170))


def test_limit_messages_and_values() -> None:
    s = snap(hr=162.4, spo2=82, map=58)
    assert RULES_BY_ID["limit_hr_high"].message(s, CFG) == (
        "Extreme tachycardia: HR 162/min above 150/min")
    assert RULES_BY_ID["limit_hr_high"].values(s) == {"hr": 162.4}
    assert RULES_BY_ID["limit_spo2_low"].message(s, CFG) == (
        "Desaturation: SpO2 82 % below 85 %")
    assert RULES_BY_ID["limit_map_low"].message(s, CFG) == (
        "Hypotension: MAP 58 mmHg below 65 mmHg")
    assert RULES_BY_ID["limit_hr_low"].message(snap(hr=35), CFG) == (
        "Extreme bradycardia: HR 35/min below 40/min")


def test_limits_per_ward() -> None:
    cfg = Settings(alerting={"ward_limits": {"CCU": {"hr_below": 35, "map_below": None},
                                             "NICU": {}}}).alerting
    ccu = cfg.for_ward("CCU")
    assert ccu.limits == AlarmLimits(hr_below=35, map_below=None)
    assert ccu.ward_limits == {} and ccu.persistence_seconds == cfg.persistence_seconds
    assert fires("limit_hr_low", snap(hr=38), cfg) and not fires("limit_hr_low", snap(hr=38), ccu)
    assert fires("limit_hr_low", snap(hr=34), ccu)
    assert not fires("limit_map_low", snap(map=40), ccu)  # switched off on this ward
    assert cfg.for_ward("ICU-A") is cfg and cfg.for_ward("NICU") is cfg
    assert cfg.for_ward(None) is cfg
    assert RULES_BY_ID["limit_hr_low"].message(snap(hr=34), ccu) == (
        "Extreme bradycardia: HR 34/min below 35/min")


@pytest.mark.parametrize(("limits", "error"), [
    ({"ward_limits": {"X": {"hr_beloww": 35}}}, "hr_beloww"),
    ({"ward_limits": {"X": {"hr_below": 160}}}, "must be below hr_above"),
    ({"limits": {"spo2_below": 120}}, "outside what a monitor measures"),
    ({"limits": {"map_below": 0}}, "outside what a monitor measures"),
])
def test_bad_limits_are_refused_with_the_reason(limits: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Settings(alerting=limits)


def test_ward_limits_survive_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(alerting={"ward_limits": {"ICU-B": {"hr_above": 130}}})
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings().alerting.ward_limits == {"ICU-B": {"hr_above": 130}}
    assert Settings() == original


# --- the text never contradicts the priority ---------------------------------------------

URGENCY = {  # words a message may only use at these priorities
    "emergency": {HIGH}, "high clinical risk": {HIGH},
    "urgent": {MEDIUM}, "medium clinical risk": {MEDIUM},
}


def contradictions(rule_id: str, message: str, s: Snapshot, cfg: AlertingSettings) -> list:
    rule = RULES_BY_ID[rule_id]
    low = message.lower()
    problems = [w for w, allowed in URGENCY.items() if w in low and rule.priority not in allowed]
    for m in re.finditer(r"NEWS2 (\d+):", message):  # "NEWS2 8: ..." names the band
        band = expected_news2_rule(int(m.group(1)), False) or "news2_red_flag"
        if RULES_BY_ID[band].priority is not rule.priority:
            problems.append(f"quotes NEWS2 {m.group(1)}")
    m = re.search(r"\(NEWS2 (\d+)\)", message)
    if m and int(m.group(1)) >= 5:
        problems.append(f"red score text with NEWS2 {m.group(1)}")
    for limit in LIMITS:  # a limit's text quotes a value beyond the ward's limit
        if limit.rule_id == rule_id:
            value = float(re.search(r" (\d+(?:\.\d+)?)(?: %|/min| mmHg) ", message).group(1))
            if not limit.beyond(value, cfg):
                problems.append(f"{value} is not {limit.side} {limit.threshold(cfg)}")
    if rule.priority is HIGH and rule.group == "news2" and "emergency" not in low:
        problems.append("high NEWS2 alarm without its response")
    if rule.priority is MEDIUM and rule.group == "news2" and "urgent" not in low:
        problems.append("medium NEWS2 alarm without its response")
    if rule.id.startswith("sensor_off") and "off" not in low:
        problems.append("sensor alarm that does not say off")
    return problems


def generated_snapshots(n: int, seed: int):
    """Random patients: every parameter anywhere in its plausible range or missing, with
    a bias towards the band edges, any ACVPU and oxygen, either SpO2 scale, some sensors
    off."""
    rng = random.Random(seed)
    edges = {Vital.HR: [39, 40, 41, 50, 51, 90, 91, 110, 111, 130, 131, 150, 151],
             Vital.SPO2: [84, 85, 86, 87, 88, 91, 92, 93, 94, 95, 96, 97],
             Vital.RR: [8, 9, 11, 12, 20, 21, 22, 24, 25],
             Vital.SBP: [90, 91, 100, 101, 110, 111, 219, 220],
             Vital.MAP: [64, 65, 66], Vital.TEMP: [35.0, 35.1, 36.0, 36.1, 38.0, 38.1, 39.1]}
    for _ in range(n):
        values = {}
        for vital, spec in VITALS.items():
            r = rng.random()
            if r < 0.15:
                continue
            if r < 0.55 and vital in edges:
                values[vital] = float(rng.choice(edges[vital])) + rng.choice([0, 0, 0.4, -0.4])
            else:
                values[vital] = round(rng.uniform(spec.plausible_min, spec.plausible_max),
                                      spec.decimals)
        values[Vital.SPO2] = min(values.get(Vital.SPO2, 97.0), 100.0)
        off = {v for v in ZERO_OFF if rng.random() < 0.05}
        yield snap(values, off=off, o2=rng.choice([None, False, True]),
                   consciousness=rng.choice([None, *Consciousness]), scale=rng.choice([1, 1, 2]))


@pytest.mark.parametrize("ward", [None, "CCU"])
def test_no_message_contradicts_its_priority(ward: str | None) -> None:
    cfg = Settings(alerting={"ward_limits": {"CCU": {"hr_above": 130, "spo2_below": 88,
                                                     "hr_below": 45}}}).alerting.for_ward(ward)
    held: dict[str, int] = {}
    for s in generated_snapshots(6000, seed=60601):
        for rule in RULES:
            if rule.condition is None or not rule.condition(s, cfg):
                continue
            held[rule.id] = held.get(rule.id, 0) + 1
            message = rule.message(s, cfg)
            assert not contradictions(rule.id, message, s, cfg), (rule.id, message)
    # the generator reached every rule a reading can raise
    assert set(held) == {r.id for r in RULES if r.condition is not None and not r.retired}


def test_the_contradiction_check_catches_contradictions() -> None:
    s = snap(rr=7)
    assert contradictions("news2_red_flag", "NEWS2 8: emergency response", s, CFG)
    assert contradictions("news2_high", "NEWS2 5: urgent response", s, CFG)
    assert contradictions("sensor_off_spo2", "SpO2 urgent", s, CFG)
    assert contradictions("limit_spo2_low", "Desaturation: SpO2 90 % below 85 %", s, CFG)
    assert not contradictions("news2_red_flag", RULES_BY_ID["news2_red_flag"].message(s, CFG),
                              s, CFG)


# --- sensor off: unknown, never low ------------------------------------------------------

def test_spo2_probe_off_is_one_technical_alarm_never_a_desaturation() -> None:
    s = snap(off={Vital.SPO2, Vital.PULSE})
    assert firing(s) == {"sensor_off_spo2", "sensor_off_pulse"}
    assert raised(s) == {"sensor_off_spo2"}  # one per group
    rule = RULES_BY_ID["sensor_off_spo2"]
    assert rule.message(s, CFG) == "SpO2 probe off: SpO2, pulse unknown"
    assert rule.values(s) == {"spo2": None, "pulse": None}
    assert rule.message(snap(off={Vital.SPO2}), CFG) == "SpO2 sensor off"


@pytest.mark.parametrize("vital", ZERO_OFF, ids=str)
def test_every_sensor_off_parameter_raises_one_alarm_of_its_sensor(vital: Vital) -> None:
    s = snap(off={vital})
    (rule,) = raised(s)
    assert rule == f"sensor_off_{vital.value}"
    assert "off" in RULES_BY_ID[rule].message(s, CFG)


def test_leads_and_line_off() -> None:
    leads = snap(off={Vital.HR, Vital.RR})
    assert raised(leads) == {"sensor_off_hr"}
    assert RULES_BY_ID["sensor_off_hr"].message(leads, CFG) == "ECG leads off: HR, RR unknown"
    line = snap(off={Vital.SBP, Vital.DBP, Vital.MAP})
    assert raised(line) == {"sensor_off_sbp"}
    assert RULES_BY_ID["sensor_off_sbp"].message(line, CFG) == (
        "Blood pressure sensor off: SBP, MAP, DBP unknown")


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


# --- abnormal values for screens: the same limits ----------------------------------------

@pytest.mark.parametrize(("vital", "value", "side", "priority", "reason"), [
    (Vital.HR, 75, None, None, None),
    (Vital.HR, 91, "high", None, "NEWS2 1"),
    (Vital.HR, 120, "high", None, "NEWS2 2"),
    (Vital.HR, 145, "high", MEDIUM, "NEWS2 3"),  # the HR 145: urgent
    (Vital.HR, 151, "high", HIGH, "above limit 150/min"),
    (Vital.HR, 45, "low", None, "NEWS2 1"),
    (Vital.HR, 40, "low", MEDIUM, "NEWS2 3"),
    (Vital.HR, 39, "low", HIGH, "below limit 40/min"),
    (Vital.SPO2, 96, None, None, None),
    (Vital.SPO2, 95, "low", None, "NEWS2 1"),
    (Vital.SPO2, 91, "low", MEDIUM, "NEWS2 3"),
    (Vital.SPO2, 84, "low", HIGH, "below limit 85 %"),
    (Vital.RR, 26, "high", MEDIUM, "NEWS2 3"),
    (Vital.RR, 10, "low", None, "NEWS2 1"),
    (Vital.SBP, 95, "low", None, "NEWS2 2"),
    (Vital.SBP, 225, "high", MEDIUM, "NEWS2 3"),
    (Vital.MAP, 70, None, None, None),
    (Vital.MAP, 64, "low", MEDIUM, "below limit 65 mmHg"),
    (Vital.TEMP, 38.5, "high", None, "NEWS2 1"),
    (Vital.TEMP, 35.0, "low", MEDIUM, "NEWS2 3"),
    (Vital.DBP, 30, None, None, None),  # no rule looks at DBP
])
def test_value_flags(vital, value, side, priority, reason) -> None:
    flag = value_flag(vital, value, CFG)
    if side is None:
        assert flag is None
    else:
        assert (flag.side, flag.priority, flag.reason) == (side, priority, reason)


def test_value_flags_agree_with_the_rules_over_generated_values() -> None:
    """A value flagged with a priority raises a rule of that priority on its own, and a
    value that raises a rule on its own is flagged with at least its priority."""
    rank = {None: 0, LOW: 1, MEDIUM: 2, HIGH: 3}
    rng = random.Random(5)
    cfg = Settings(alerting={"limits": {"hr_above": 140}}).alerting
    for _ in range(4000):
        vital = rng.choice([Vital.HR, Vital.SPO2, Vital.RR, Vital.SBP, Vital.MAP, Vital.TEMP])
        spec = VITALS[vital]
        value = round(rng.uniform(spec.plausible_min, min(spec.plausible_max, 100.0)
                                  if vital is Vital.SPO2 else spec.plausible_max),
                      spec.decimals)
        s = snap(**{vital.value: value})
        clinical = [RULES_BY_ID[r] for r in raised(s, cfg) if RULES_BY_ID[r].kind == "clinical"]
        worst = max((rank[r.priority] for r in clinical), default=0)
        flag = value_flag(vital, value, cfg)
        assert rank[flag.priority if flag else None] == worst, (vital, value, flag)


def test_value_flags_follow_the_wards_limits_and_scale() -> None:
    ccu = Settings(alerting={"ward_limits": {"CCU": {"hr_above": 130}}}).alerting
    assert value_flag(Vital.HR, 135, ccu.for_ward("CCU")).priority is HIGH
    assert value_flag(Vital.HR, 135, ccu).priority is MEDIUM
    assert value_flag(Vital.SPO2, 89, CFG, spo2_scale=2) is None  # target 88-92 %
    assert value_flag(Vital.SPO2, 97, CFG, spo2_scale=2, o2_supplemental=True).side == "high"
    assert value_flag(Vital.SPO2, 97, CFG, spo2_scale=2) is None  # oxygen unknown


# --- a silent bed ------------------------------------------------------------------------

def test_stale_message() -> None:
    assert stale_message(31.4) == "No signal: no reading for 31 s"
    assert STALE_RULE.condition is None


def test_reporting_interval_is_the_median_gap() -> None:
    assert reporting_interval_ms([]) is None
    assert reporting_interval_ms([1000] * 8 + [45_000]) == 1000  # one silence: no effect
    assert reporting_interval_ms([60_000, 60_000, 59_990, 5, 60_010]) == 60_000
    assert reporting_interval_ms([100, 100]) is None  # 10 Hz frames: no interval known


@pytest.mark.parametrize(("interval", "timeout"), [
    (None, 30_000),  # unknown: the floor
    (1_000, 30_000),  # a 1 Hz monitor: the floor
    (15_000, 45_000),  # three missed intervals
    (60_000, 180_000),  # a once-a-minute gateway: 3 min, not 30 s
    (600_000, 300_000),  # never longer than the continuous values stay valid
])
def test_stale_timeout_adapts_to_the_source(interval, timeout) -> None:
    assert stale_timeout_ms(CFG, interval) == timeout


def test_stale_timeout_settings() -> None:
    cfg = Settings(alerting={"stale_after_seconds": 10, "stale_missed_intervals": 2,
                             "stale_max_seconds": 60}).alerting
    assert stale_timeout_ms(cfg, 1000) == 10_000
    assert stale_timeout_ms(cfg, 20_000) == 40_000
    assert stale_timeout_ms(cfg, 60_000) == 60_000

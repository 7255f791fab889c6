"""devices.alarm_replay: fewer alarms, none missed, on real and generated stays.

The real MIMIC numerics (with their artefacts) and generated patients of every scenario
go through validation and the alarm engine in-process. The full measurement is
``bench/bench_alarm_burden.py`` (docs/alarm-burden.md); this is its guard: a smaller
run must keep every true deterioration alarmed and at least halve raw thresholds' alarms.
"""

from __future__ import annotations

import pytest

from backend.settings import Settings
from devices.alarm_replay import (
    POLICY,
    detected,
    replay,
    stays_from_generator,
    stays_from_mimic,
    truth_episodes,
)
from devices.generator import GeneratorConfig
from devices.scenarios import SCENARIOS

T0 = 1_767_225_600_000
DETERIORATING = ("sepsis", "desaturation", "tachycardia", "hypotension")


@pytest.fixture(scope="module")
def generated():
    cfg = GeneratorConfig(start_ms=T0, patients=len(SCENARIOS), duration_s=2 * 3600, seed=3,
                          scenario_mix=dict.fromkeys(SCENARIOS, 1))
    return stays_from_generator(cfg)


@pytest.fixture(scope="module")
def mimic():
    # The shared data is part of every checkout's setup: missing data fails, never skips.
    return stays_from_mimic(["s00001", "s25047"], Settings().data_dir, start_ms=T0)


_RESULTS: dict = {}


def run(stay, policy: str):
    """``replay`` once per stay and policy for the whole module."""
    key = (id(stay), policy)
    if key not in _RESULTS:
        _RESULTS[key] = replay(stay, POLICY[policy])
    return _RESULTS[key]


def truth(stay):
    key = (id(stay), "truth")
    if key not in _RESULTS:
        _RESULTS[key] = truth_episodes(stay)
    return _RESULTS[key]


def test_every_deteriorating_scenario_has_true_deteriorations(generated) -> None:
    by = {s.scenario: truth(s) for s in generated}
    for scenario in DETERIORATING:
        assert by[scenario], scenario
    for scenario in ("stable", "motion_artefact", "sensor_disconnect"):
        assert by[scenario] == [], scenario  # their physiology never crosses a threshold


@pytest.mark.parametrize("policy", ["raw", "persistence", "clear_delay", "adaptive_stale"])
def test_no_true_deterioration_is_missed(generated, policy: str) -> None:
    for stay in generated:
        result = run(stay, policy)
        for episode in truth(stay):
            assert detected(episode, result.alarms) is not None, (stay.scenario, episode)


def test_at_least_half_the_alarms_of_raw_thresholds(generated, mimic) -> None:
    for stays in (generated, mimic):
        raw = sum(len(run(s, "raw").alarms) for s in stays)
        final = sum(len(run(s, "adaptive_stale").alarms) for s in stays)
        assert final <= raw / 2, (raw, final)


def test_motion_artefacts_raise_no_clinical_alarm(generated) -> None:
    (stay,) = [s for s in generated if s.scenario == "motion_artefact"]
    raw = run(stay, "raw")
    assert any(a.kind == "clinical" for a in raw.alarms)  # raw thresholds do fall for them
    assert [a for a in run(stay, "adaptive_stale").alarms
            if a.kind == "clinical"] == []


def test_a_zero_is_a_sensor_off_never_a_desaturation(mimic) -> None:
    s00001 = mimic[0]
    naive = run(s00001, "naive")
    final = run(s00001, "adaptive_stale")
    assert any(a.rule == "limit_hr_low" for a in naive.alarms)  # HR 0 taken as a value
    assert not any(a.rule in ("limit_hr_low", "limit_spo2_low") for a in final.alarms)
    assert any(a.rule.startswith("sensor_off_") for a in final.alarms)


def test_a_once_a_minute_source_is_not_stale_between_its_frames(mimic) -> None:
    for stay in mimic:
        fixed = run(stay, "clear_delay")
        adaptive = run(stay, "adaptive_stale")
        frames = len(stay.readings)
        assert sum(a.rule == "stale_signal" for a in fixed.alarms) >= frames - 2
        # one, before the source's interval is known (its first frame)
        assert sum(a.rule == "stale_signal" for a in adaptive.alarms) == 1


def test_a_real_silence_is_still_stale(generated) -> None:
    """sensor_disconnect's monitor sends nothing for 45 s every 30 min: with a 1 Hz
    source the adaptive timeout stays at 30 s and raises it."""
    (stay,) = [s for s in generated if s.scenario == "sensor_disconnect"]
    stale = [a for a in run(stay, "adaptive_stale").alarms
             if a.rule == "stale_signal"]
    assert len(stale) == 4  # the silences of 2 h


def test_the_wards_limits_apply(generated) -> None:
    (stay,) = [s for s in generated if s.scenario == "stable"]
    assert run(stay, "adaptive_stale").alarms == []
    strict = Settings(alerting={"ward_limits": {stay.admission.ward: {"spo2_below": 100}}})
    alarms = replay(stay, POLICY["adaptive_stale"], strict.alerting).alarms
    assert {a.rule for a in alarms} == {"limit_spo2_low"}

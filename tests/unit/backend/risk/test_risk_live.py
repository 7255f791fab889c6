"""Live scoring of one patient (backend.risk.live): hourly rows, scores equal to scoring
the same history offline, the persistence rule, deterministic alert ids, and the state
surviving a JSON round trip (what Spark checkpoints)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from backend.admission import Admission
from backend.alerting.ids import alert_id
from backend.risk import registry
from backend.risk.live import (
    HOUR_MS,
    RISK_RULE,
    LiveReading,
    PatientRiskState,
    hour_of,
    hour_start,
    process,
)
from backend.settings import RiskSettings, Settings
from tests.risk_fixture import HIGH_RISK, LOW_RISK, write_model

ADMITTED = 1_700_000_000_000
CFG = RiskSettings()


@pytest.fixture
def model(tmp_path: Path):
    settings = Settings(cache_dir=tmp_path)
    write_model(settings, "20260101T000000Z")
    return registry.load_active(settings)


def admission() -> Admission:
    return Admission(patient_id="p1", ward="W1", bed="03", age=70, sex="M",
                     admitted_ts=ADMITTED)


def readings(hour: int, hr: float, per_hour: int = 6, **extra: float) -> list[LiveReading]:
    """``per_hour`` readings spread over hour ``hour`` of the stay."""
    start = hour_start(hour, ADMITTED)
    step = HOUR_MS // per_hour
    return [LiveReading(ts=start + i * step, ward="W1", bed="03",
                        vitals={"hr": hr, "spo2": 97.0, "pulse": hr, **extra})
            for i in range(per_hour)]


def run(state, batches, model, cfg=CFG):
    scores, alerts = [], []
    for batch in batches:
        # every batch goes through JSON, as between Spark micro-batches
        state = PatientRiskState.from_json(state.to_json())
        state, s, a = process(state, batch, admission=admission(), model=model, cfg=cfg,
                              now_ms=ADMITTED + 99 * HOUR_MS)
        scores += s
        alerts += a
    return state, scores, alerts


def test_hour_of_stay() -> None:
    assert hour_of(ADMITTED, ADMITTED) == 1
    assert hour_of(ADMITTED + HOUR_MS - 1, ADMITTED) == 1
    assert hour_of(ADMITTED + HOUR_MS, ADMITTED) == 2
    assert hour_of(ADMITTED - 5, ADMITTED) == 1  # before admission: the first hour
    assert hour_start(3, ADMITTED) == ADMITTED + 2 * HOUR_MS


def test_hour_value_is_median_of_minute_means(model) -> None:
    start = hour_start(1, ADMITTED)
    rs = [LiveReading(start + 1000 * i, "W1", "03", {"hr": 80.0}) for i in range(30)]
    rs += [LiveReading(start + 60_000 + 1000 * i, "W1", "03", {"hr": 100.0}) for i in range(2)]
    rs += [LiveReading(start + 120_000, "W1", "03", {"hr": 250.0, "spo2": None})]  # artefact
    rs += [LiveReading(start + 180_000, "W1", "03", {"hr": 90.0, "spo2": 95.0})]
    rs += readings(2, 80, per_hour=1)
    _, scores, _ = run(PatientRiskState("p1"), [rs], model)
    # minute means 80, 100, 250, 90 -> median 95; the 250 artefact does not drive it
    assert [s.hour for s in scores] == [1]
    assert scores[0].inputs == {"hr": 95.0, "spo2": 95.0}
    assert scores[0].n_readings == 34
    assert scores[0].risk == pytest.approx(LOW_RISK)


def test_scores_equal_offline_scoring_of_the_same_history(model) -> None:
    rng = np.random.default_rng(3)
    batches = [readings(h, float(rng.integers(60, 140))) for h in range(1, 13)]
    state, scores, _ = run(PatientRiskState("p1"), batches, model)
    assert [s.hour for s in scores] == list(range(1, 12))  # hour 12 still open
    history = state.history()
    assert list(history["hour"]) == list(range(1, 12))
    assert history["age"].iloc[0] == 70 and history["sex"].iloc[0] == 1.0
    offline = model.score_frame(history)
    assert [s.risk for s in scores] == pytest.approx(list(offline), abs=1e-12)
    for s, hr in zip(scores, history["hr"], strict=True):
        assert s.risk == pytest.approx(HIGH_RISK if hr > 110 else LOW_RISK)


def test_the_live_scorer_applies_the_calibration(tmp_path: Path) -> None:
    # Platt a = -3: the high raw risk 0.8808 becomes expit(-3 + 2) = 0.2689, the low one
    # expit(-3 - 4) = 0.0009; the threshold 0.2 is on the calibrated scale
    settings = Settings(cache_dir=tmp_path)
    write_model(settings, "20260101T000000Z",
                calibration={"method": "platt", "a": -3.0, "b": 1.0}, threshold=0.2)
    model = registry.load_active(settings)
    hrs = [80, 130, 130, 80]
    state, scores, alerts = run(PatientRiskState("p1"),
                                [readings(h, hr) for h, hr in enumerate(hrs, 1)], model)
    high, low = 1 / (1 + math.exp(1.0)), 1 / (1 + math.exp(7.0))
    assert [s.risk for s in scores] == pytest.approx([low, high, high])
    assert [s.risk for s in scores] == pytest.approx(list(model.score_frame(state.history())),
                                                     abs=1e-12)
    assert all(s.threshold == 0.2 for s in scores)
    assert [s.above for s in scores] == [False, True, True]
    assert [a.event for a in alerts] == ["raised"]
    assert alerts[0].values["risk"] == pytest.approx(high, abs=1e-4)


def test_persistence_rule_raises_once_then_clears(model) -> None:
    hrs = {1: 80, 2: 80, 3: 130, 4: 80, 5: 130, 6: 130, 7: 130, 8: 80, 9: 130, 10: 80,
           11: 80, 12: 80}
    batches = [readings(h, hr) for h, hr in hrs.items()]
    _, scores, alerts = run(PatientRiskState("p1"), batches, model)
    assert [s.above for s in scores] == [hrs[h] > 110 for h in range(1, 12)]
    # hour 3 alone is one hour: nothing. Hours 5 and 6: raised at the close of hour 6,
    # onset the start of hour 5. Hour 8 below, 9 above again: the count starts over, so
    # only 10 and 11 below clear it.
    assert [(a.event, a.rule) for a in alerts] == [("raised", RISK_RULE),
                                                   ("cleared", RISK_RULE)]
    raised, cleared = alerts
    onset = hour_start(5, ADMITTED)
    assert raised.onset_ts == onset and raised.reading_ts == hour_start(7, ADMITTED)
    assert raised.alert_id == alert_id("p1", RISK_RULE, onset) == cleared.alert_id
    assert raised.ward == "W1" and raised.bed == "03" and raised.priority == "medium"
    assert raised.values["risk"] == pytest.approx(HIGH_RISK, abs=1e-4)
    assert cleared.reading_ts == hour_start(12, ADMITTED)


def test_same_readings_in_other_batches_give_the_same_output(model) -> None:
    hrs = [80, 130, 130, 130, 80, 80, 80, 130]
    all_readings = [r for h, hr in enumerate(hrs, 1) for r in readings(h, hr)]
    _, s1, a1 = run(PatientRiskState("p1"), [all_readings], model)
    _, s2, a2 = run(PatientRiskState("p1"), [all_readings[i:i + 5]
                                             for i in range(0, len(all_readings), 5)], model)
    assert s1 == s2
    assert [a.model_dump(exclude={"detected_ts"}) for a in a1] == \
        [a.model_dump(exclude={"detected_ts"}) for a in a2]


def test_gaps_become_empty_hours_and_late_readings_are_counted(model) -> None:
    state, scores, _ = run(PatientRiskState("p1"), [readings(1, 80), readings(4, 80),
                                                    readings(2, 130)], model)
    assert [s.hour for s in scores] == [1, 2, 3]
    assert scores[1].inputs == {} and scores[1].n_readings == 0
    assert state.late_readings == 6  # hour 2 was already closed when they came
    assert math.isnan(state.history()["hr"].iloc[1])


def test_no_active_model_keeps_the_history_but_scores_nothing(model) -> None:
    state, scores, alerts = run(PatientRiskState("p1"), [readings(1, 130), readings(2, 130),
                                                         readings(3, 130)], None)
    assert scores == [] and alerts == []
    assert len(state.rows) == 2
    state, scores, alerts = run(state, [readings(4, 130)], model)
    assert [s.hour for s in scores] == [3]  # only the hour closed now


def test_unknown_admission_anchors_at_the_first_reading(model) -> None:
    first = readings(1, 80)
    state, _, _ = process(PatientRiskState("p9"), first, admission=None, model=model,
                          cfg=CFG, now_ms=0)
    assert state.admitted_ts == first[0].ts and state.age is None and state.sex is None


def test_history_is_capped(model) -> None:
    cfg = RiskSettings(max_history_hours=72)
    state, scores, _ = run(PatientRiskState("p1"), [readings(h, 80, per_hour=1)
                                                    for h in range(1, 101)], model, cfg)
    assert len(state.rows) == 72 and state.first_hour == 28
    assert scores[-1].hour == 99


def test_sensor_off_and_implausible_values_are_not_inputs(model) -> None:
    start = hour_start(1, ADMITTED)
    rs = [LiveReading(start, "W1", "03", {"hr": 0.0, "spo2": 0.0, "rr": 14.0}),
          LiveReading(start + 1, "W1", "03", {"hr": 400.0, "temp": float("nan")}),
          LiveReading(start + 2, "W1", "03", {"hr": 88.0, "pulse": 88.0})]
    _, scores, _ = run(PatientRiskState("p1"), [rs, readings(2, 80, per_hour=1)], model)
    assert scores[0].inputs == {"hr": 88.0, "rr": 14.0}  # pulse is not a model input

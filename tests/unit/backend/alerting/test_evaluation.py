"""backend.alerting.evaluation: per-patient state, persistence, clearing, duplicates,
carry-forward, stale signal, determinism across batches, and the memoised scores.

Time in these tests is given in seconds of device time after ``T0``; readings come every
second like a bedside monitor's numerics unless a test says otherwise.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest

from backend.admission import Admission
from backend.alerting.evaluation import (
    AlertChange,
    Duplicate,
    PatientState,
    ScoredReading,
    alert_id,
    on_timeout,
    process,
    score_news2,
    score_qsofa,
)
from backend.alerting.rules import VALIDITY_SECONDS
from backend.messages import Consciousness, Priority
from backend.scores.news2 import News2Band, News2Inputs, news2
from backend.scores.qsofa import qsofa
from backend.settings import AlertingSettings, Settings
from backend.validation import Reading, RejectReason
from backend.vitals import Vital

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PID = "p-1"
ADM = Admission(patient_id=PID, ward="ICU-A", bed="3", admitted_ts=T0 - 3_600_000)
# Persistence 10 s, clear 30 s, stale after 30 s; the HR limit at 120/min (as a ward may set
# it) so that HR 130 raises ``limit_hr_high`` alone: its NEWS2 pulse score of 2 raises
# nothing on its own.
CFG = AlertingSettings(limits={"hr_above": 120})
HR, PULSE, SPO2, RR = Vital.HR, Vital.PULSE, Vital.SPO2, Vital.RR
SBP, DBP, TEMP = Vital.SBP, Vital.DBP, Vital.TEMP
A = Consciousness.ALERT
# What a monitor sends every second for a stable patient (NEWS2 0 on these).
NORMAL = {HR: 75.0, PULSE: 75.0, SPO2: 97.0, RR: 16.0}


def ms(t: float) -> int:
    return T0 + round(t * 1000)


def rd(t: float, *, seq: int | None = None, device: str = "mon-1", off: tuple = (),
       c: Consciousness | None = None, o2: bool | None = None, base: dict | None = None,
       **values: float | None) -> Reading:
    """A reading at ``t`` s: ``base`` (default NORMAL) with ``values`` (None = absent);
    parameters in ``off`` read 0 (sensor off)."""
    vals = dict(NORMAL if base is None else base)
    for name, value in values.items():
        if value is None:
            vals.pop(Vital(name), None)
        else:
            vals[Vital(name)] = float(value)
    for vital in off:
        vals.pop(vital, None)
    return Reading(patient_id=PID, ward="ICU-A", bed="3", device_id=device,
                   seq=round(t * 1000) if seq is None else seq, ts=ms(t), values=vals,
                   sensors_off=frozenset(off), o2_supplemental=o2, consciousness=c,
                   source="test")


def series(start: float, stop: float, step: float = 1.0, **kw) -> list[Reading]:
    """Readings every ``step`` s from ``start`` up to, not including, ``stop``."""
    n = round((stop - start) / step)
    return [rd(start + i * step, **kw) for i in range(n)]


def run(readings, state: PatientState | None = None, *, now: float | None = None,
        adm: Admission | None = ADM, cfg: AlertingSettings = CFG):
    now_ms = ms(now) if now is not None else max(r.ts for r in readings) + 100
    return process(state or PatientState.new(PID), readings, admission=adm, now_ms=now_ms,
                   cfg=cfg)


def changes(out) -> list[AlertChange]:
    return [o for o in out if isinstance(o, AlertChange)]


def events(out) -> list[tuple[str, str, float]]:
    """(event, rule, reading time in s) of every alert change."""
    return [(c.event, c.rule, (c.reading_ts - T0) / 1000) for c in changes(out)]


def scored(out) -> list[ScoredReading]:
    return [o for o in out if isinstance(o, ScoredReading)]


# --- scoring -----------------------------------------------------------------------------

def test_every_reading_is_scored_with_the_carried_values() -> None:
    readings = [rd(0, sbp=125, dbp=70, temp=37.0, c=A, o2=False), rd(1), rd(2)]
    _, out = run(readings)
    assert [type(o) for o in out] == [ScoredReading] * 3
    last = out[-1]
    assert last.reading is readings[2]
    assert last.carried == {**NORMAL, SBP: 125.0, DBP: 70.0, TEMP: 37.0}
    assert last.news2 == news2(News2Inputs(rr=16, spo2=97, spo2_scale=1, o2_supplemental=False,
                                           sbp=125, pulse=75, consciousness=A, temp=37.0))
    assert last.news2.complete and last.news2.total == 0
    assert last.qsofa == qsofa(rr=16, sbp=125, consciousness=A)


def test_nothing_known_means_no_scores() -> None:
    _, out = run([rd(0, base={}, off=(HR, SPO2))])
    (s,) = out
    assert s.news2 is None and s.qsofa is None and s.carried == {}


def test_news2_uses_the_admissions_spo2_scale() -> None:
    readings = series(0, 3, spo2=89, o2=False)
    _, one = run(readings)
    _, two = run(readings, adm=ADM.model_copy(update={"spo2_scale": 2}))
    assert one[-1].news2.components["spo2"] == 3
    assert two[-1].news2.components["spo2"] == 0


def test_pulse_falls_back_to_the_oximeter_when_hr_is_off() -> None:
    _, out = run([rd(0, off=(HR,), pulse=135)])
    assert out[0].news2.components["pulse"] == 3


# --- persistence: artefacts raise nothing ------------------------------------------------

def test_a_single_250_bpm_spike_raises_nothing() -> None:
    readings = [*series(0, 30), rd(30, hr=250, pulse=250), *series(31, 120)]
    _, out = run(readings)
    assert changes(out) == []
    assert out[30].news2.components["pulse"] == 3  # the spike was scored, just not alarmed


def test_a_single_spo2_dip_raises_nothing() -> None:
    readings = [*series(0, 30), rd(30, spo2=70), *series(31, 120)]
    assert changes(run(readings)[1]) == []


def test_a_five_second_motion_artefact_raises_nothing() -> None:
    burst = [rd(30 + i, hr=185 + 5 * i, spo2=93) for i in range(5)]
    assert changes(run(series(0, 30) + burst + series(35, 120))[1]) == []


def test_a_carried_spike_cannot_confirm_itself() -> None:
    """HR 250 once, then the monitor stops sending HR: the spike stays carried forward
    (5 min) but no reading ever measures HR again, so nothing is raised."""
    # no HR at all in the frames after the spike
    readings = [rd(0), rd(1, hr=250), *series(2, 400, hr=None)]
    _, out = run(readings)
    assert changes(out) == []
    assert out[100].carried[HR] == 250.0  # carried...
    assert HR not in out[-1].carried  # ...until it expired


def test_a_fresh_second_sample_confirms() -> None:
    readings = [rd(0, hr=130), *series(1, 20, hr=None), rd(20, hr=130)]
    assert events(run(readings)[1]) == [("raised", "limit_hr_high", 20)]


# --- persistence: sustained conditions ---------------------------------------------------

def test_a_sustained_condition_raises_exactly_once_at_onset_plus_persistence() -> None:
    readings = series(0, 5) + series(5, 60, hr=130)
    _, out = run(readings)
    (change,) = changes(out)
    assert change == AlertChange(
        event="raised", alert_id=alert_id(PID, "limit_hr_high", ms(5)), rule="limit_hr_high",
        priority=Priority.HIGH, message="Extreme tachycardia: HR 130/min above 120/min",
        values={"hr": 130.0},
        reading_ts=ms(15), onset_ts=ms(5))
    # the change comes right after the reading that caused it
    i = out.index(change)
    assert out[i - 1].reading.ts == ms(15)


def test_persistence_with_sparse_readings_raises_at_the_first_reading_after_it() -> None:
    readings = series(0, 30, step=3, hr=130)  # 0, 3, ..., 27
    assert events(run(readings)[1]) == [("raised", "limit_hr_high", 12)]


def test_one_normal_reading_restarts_persistence() -> None:
    readings = [*series(0, 9, hr=130), rd(9), *series(10, 30, hr=130)]
    assert events(run(readings)[1]) == [("raised", "limit_hr_high", 20)]


def test_clears_after_clear_seconds_false() -> None:
    readings = series(0, 60, hr=130) + series(60, 120)
    _, out = run(readings)
    raised, cleared = changes(out)
    assert events(out) == [("raised", "limit_hr_high", 10), ("cleared", "limit_hr_high", 90)]
    assert cleared.alert_id == raised.alert_id and cleared.onset_ts == raised.onset_ts
    assert cleared.message == raised.message  # the message it was raised with
    assert cleared.values == {"hr": 75.0}  # the value now


def test_a_brief_return_to_normal_does_not_clear() -> None:
    readings = (series(0, 60, hr=130) + series(60, 80) + series(80, 100, hr=130)
                + series(100, 140))
    assert events(run(readings)[1]) == [("raised", "limit_hr_high", 10),
                                        ("cleared", "limit_hr_high", 130)]


def test_persistence_and_clear_times_come_from_the_settings() -> None:
    cfg = Settings(alerting={"persistence_seconds": 3, "clear_seconds": 5,
                             "limits": {"hr_above": 120}}).alerting
    readings = series(0, 20, hr=130) + series(20, 40)
    assert events(run(readings, cfg=cfg)[1]) == [("raised", "limit_hr_high", 3),
                                                  ("cleared", "limit_hr_high", 25)]


def test_a_new_episode_gets_a_new_alert_id() -> None:
    readings = series(0, 20, hr=130) + series(20, 60) + series(60, 80, hr=130)
    raised1, _, raised2 = changes(run(readings)[1])
    assert raised1.alert_id != raised2.alert_id
    assert raised2.alert_id == alert_id(PID, "limit_hr_high", ms(60))


# --- physiological limits at their thresholds ---------------------------------------------

@pytest.mark.parametrize(("hr", "raised"), [(120, False), (121, True)])
def test_hr_limit_over_time(hr: float, raised: bool) -> None:
    out = run(series(0, 30, hr=hr))[1]
    assert [c.rule for c in changes(out)] == (["limit_hr_high"] if raised else [])


@pytest.mark.parametrize(("spo2", "raised"), [(85, False), (84, True)])
def test_spo2_limit_over_time(spo2: float, raised: bool) -> None:
    out = run(series(0, 30, spo2=spo2))[1]
    spo2_rules = [(c.rule, c.priority) for c in changes(out) if c.rule == "limit_spo2_low"]
    assert spo2_rules == ([("limit_spo2_low", Priority.HIGH)] if raised else [])


# --- sensor off --------------------------------------------------------------------------

def test_spo2_zero_is_sensor_off_never_desaturation() -> None:
    probe_off = series(30, 120, off=(SPO2, PULSE))
    _, out = run(series(0, 30) + probe_off + series(120, 200))
    # one alarm for the probe, not one per parameter it measures
    assert events(out) == [("raised", "sensor_off_spo2", 40), ("cleared", "sensor_off_spo2", 150)]
    spo2_off = next(c for c in changes(out) if c.rule == "sensor_off_spo2")
    assert (spo2_off.priority, spo2_off.message) == (
        Priority.LOW, "SpO2 probe off: SpO2, pulse unknown")
    # unknown at once: not carried forward from before the probe came off
    assert SPO2 not in out[30].carried and "spo2" in out[30].news2.missing


def test_a_single_zero_raises_nothing() -> None:
    readings = [*series(0, 30), rd(30, off=(HR, RR)), *series(31, 60)]
    assert changes(run(readings)[1]) == []


def test_sensor_off_after_persistence_from_a_single_lead() -> None:
    out = run(series(0, 10) + series(10, 70, off=(HR,)))[1]
    assert events(out) == [("raised", "sensor_off_hr", 20)]


# --- NEWS2 groups ------------------------------------------------------------------------

MEDIUM = {"rr": 23, "hr": 112, "spo2": 95}  # 2 + 2 + 1 = NEWS2 5
HIGH = {**MEDIUM, "temp": 39.2}  # + 2 = NEWS2 7


def test_news2_band_change_medium_to_high_supersedes() -> None:
    readings = (series(0, 60, **MEDIUM, temp=37.0) + series(60, 120, **HIGH)
                + series(120, 200, **MEDIUM, temp=37.0) + series(200, 260, temp=37.0))
    _, out = run(readings)
    assert scored(out)[30].news2.total == 5 and scored(out)[90].news2.total == 7
    assert events(out) == [
        ("raised", "news2_medium", 10),
        ("raised", "news2_high", 70),  # escalation: high raised ...
        ("cleared", "news2_medium", 70),  # ... and medium cleared in the same step
        ("cleared", "news2_high", 150),  # de-escalation: high clears after 30 s ...
        ("raised", "news2_medium", 150),  # ... then medium, a new alert
        ("cleared", "news2_medium", 230),
    ]
    ch = changes(out)
    assert ch[1].priority is Priority.HIGH and ch[0].priority is Priority.MEDIUM
    assert ch[1].onset_ts == ms(60)
    assert ch[4].alert_id != ch[0].alert_id  # a new id for the second medium alert
    assert ch[4].onset_ts == ms(70)  # its condition counts from the supersession


def test_news2_jumping_straight_to_high_raises_only_high() -> None:
    assert events(run(series(0, 30) + series(30, 60, **HIGH))[1]) == [
        ("raised", "news2_high", 40)]


def test_news2_flickering_between_6_and_7_raises_medium() -> None:
    flicker = [rd(t, **(HIGH if t % 2 else {**MEDIUM, "temp": 37.0})) for t in range(60)]
    assert events(run(flicker)[1]) == [("raised", "news2_medium", 10)]


def test_news2_red_flag_is_medium_priority() -> None:
    _, out = run(series(0, 30, rr=7))
    (c,) = changes(out)
    assert (c.rule, c.priority) == ("news2_red_flag", Priority.MEDIUM)
    assert scored(out)[-1].news2.band is News2Band.LOW_MEDIUM


def test_red_flag_escalates_to_medium() -> None:
    readings = series(0, 30, rr=7) + series(30, 60, rr=7, hr=95, spo2=95)  # 3 + 1 + 1
    assert events(run(readings)[1]) == [
        ("raised", "news2_red_flag", 10), ("raised", "news2_medium", 40),
        ("cleared", "news2_red_flag", 40)]


def test_qsofa_positive_is_medium() -> None:
    out = run(series(0, 30, rr=21, sbp=95, dbp=60, c=Consciousness.CONFUSION))[1]
    q = [c for c in changes(out) if c.rule == "qsofa_positive"]
    assert [(c.event, c.priority, c.reading_ts) for c in q] == [
        ("raised", Priority.MEDIUM, ms(10))]
    assert q[0].message == "qSOFA 2: systolic BP <= 100 mmHg, altered mentation"


# --- carry-forward -----------------------------------------------------------------------

@pytest.mark.parametrize(("name", "vital", "value"), [
    ("hr", HR, 80.0), ("sbp", SBP, 118.0), ("temp", TEMP, 38.4)])
def test_values_expire_after_their_validity(name: str, vital: Vital, value: float) -> None:
    validity = VALIDITY_SECONDS[vital]
    readings = [rd(0, base={}, **{name: value}),
                rd(validity, base={}, spo2=97), rd(validity + 1, base={}, spo2=97)]
    _, out = run(readings)
    assert out[1].carried[vital] == value  # exactly at the limit: still valid
    assert vital not in out[2].carried


def test_charted_observations_last_12_hours() -> None:
    readings = [rd(0, c=Consciousness.VOICE, o2=True), rd(12 * 3600), rd(12 * 3600 + 1)]
    out = scored(run(readings)[1])
    assert out[1].news2.components["consciousness"] == 3
    assert out[1].news2.components["o2_supplemental"] == 2
    assert "consciousness" in out[2].news2.missing
    assert "o2_supplemental" in out[2].news2.missing


def test_a_cuff_reading_is_carried_between_cycles() -> None:
    readings = [rd(0, sbp=88, dbp=50), *series(1, 900, step=60)]
    _, out = run(readings)
    assert all(s.carried[SBP] == 88.0 for s in scored(out))
    assert all(s.news2.components["sbp"] == 3 for s in scored(out))
    # a single cuff measurement is a deliberate observation: it raises the red score
    assert events(out)[:1] == [("raised", "news2_red_flag", 61)]


def test_a_late_reading_is_scored_but_drives_no_alarm() -> None:
    state, _ = run(series(0, 30))
    late = rd(10, seq=10**6, hr=250, temp=37.5)  # older than what was processed
    state2, out = run([late] * 1, state)
    assert isinstance(out[0], ScoredReading) and changes(out) == []
    assert state2.carried[HR][0] == 75.0  # the newer HR is kept
    assert state2.carried[TEMP] == [37.5, ms(10)]  # but a newer-than-known temp is taken
    assert state2.last_ts == ms(29)


# --- duplicates --------------------------------------------------------------------------

def test_duplicates_in_one_batch_and_across_batches() -> None:
    a, b = rd(0, seq=1), rd(1, seq=2)
    state, out = run([a, b, a])
    assert [type(o) for o in out] == [ScoredReading, Duplicate, ScoredReading]
    dup = out[1]
    assert dup.reading is a
    assert dup.rejection.reason is RejectReason.DUPLICATE
    assert dup.rejection.detail == f"device mon-1 seq 1 at ts {ms(0)} already received"
    _, out2 = run([b, rd(0.5, seq=0)], state)
    assert [type(o) for o in out2] == [Duplicate, Duplicate]
    assert out2[0].rejection.detail == (
        f"device mon-1 seq 0 at ts {ms(0.5)} already received (newest: seq 2, ts {ms(1)})")
    assert out2[1].rejection.detail == f"device mon-1 seq 2 at ts {ms(1)} already received"


def test_duplicates_change_no_state() -> None:
    state, _ = run(series(0, 5))
    again, out = run(series(0, 5), state, now=30)
    assert all(isinstance(o, Duplicate) for o in out)
    assert again == state


def test_a_counter_that_restarts_is_not_silenced() -> None:
    """A reboot: the counter starts again at 0 while the clock goes on."""
    state, _ = run(series(0, 10, seq=None))  # seq = ms since T0, i.e. up to 9000
    after, out = run([rd(10, seq=0), rd(11, seq=1), rd(12, seq=2)], state)
    assert [type(o) for o in out if not isinstance(o, AlertChange)] == [ScoredReading] * 3
    # and the readings of the new epoch are remembered
    _, out = run([rd(11, seq=1)], after)
    assert isinstance(out[0], Duplicate)


def test_a_counter_that_jumps_to_its_maximum_is_not_silenced() -> None:
    state, _ = run([rd(0, seq=2**63 - 1)])
    _, out = run([rd(1, seq=5), rd(2, seq=6)], state)
    assert [type(o) for o in out if not isinstance(o, AlertChange)] == [ScoredReading] * 2


def test_a_device_whose_clock_steps_back_keeps_being_accepted() -> None:
    state, _ = run([rd(10, seq=10)])
    _, out = run([rd(5, seq=11), rd(6, seq=12)], state)
    assert [type(o) for o in out if not isinstance(o, AlertChange)] == [ScoredReading] * 2


def test_counter_and_clock_both_back_are_silenced_only_within_the_window() -> None:
    window = CFG.duplicate_window_seconds
    state, _ = run([rd(100, seq=100)], now=100)
    # both back by less than the window: taken for a replay while the memory lasts
    _, out = run([rd(100 - window + 1, seq=1)], state, now=101)
    assert isinstance(out[0], Duplicate)
    _, out = run([rd(100 - window + 1, seq=1)], state, now=100 + CFG.device_memory_seconds)
    assert isinstance(out[0], ScoredReading)
    # both back by more: a late reading (accepted), and the device's memory is unchanged
    late, out = run([rd(100 - window - 1, seq=1)], state, now=101)
    assert isinstance(out[0], ScoredReading)
    assert late.devices["mon-1"][:2] == state.devices["mon-1"][:2]
    _, out = run([rd(100, seq=100)], late, now=102)
    assert isinstance(out[0], Duplicate)


def test_a_resent_message_is_a_duplicate_within_the_window_only() -> None:
    state, _ = run(series(0, 30, seq=None), now=30)  # seq = ms since T0
    _, out = run([rd(25, seq=25_000)], state, now=31)
    assert isinstance(out[0], Duplicate)
    _, out = run([rd(5, seq=5_000)], state, now=31)  # 24 s old: accepted as late
    assert isinstance(out[0], ScoredReading)


def test_device_memory_is_bounded_in_time_and_in_number() -> None:
    cfg = CFG.model_copy(update={"max_devices_per_patient": 3})
    readings = [rd(i, seq=1, device=f"mon-{i}") for i in range(6)]
    state, _ = run(readings, now=6, cfg=cfg)
    assert sorted(state.devices) == ["mon-3", "mon-4", "mon-5"]
    # nothing accepted since: the memory still expires (in the stale check too)
    later, _ = on_timeout(state, admission=ADM, now_ms=ms(6 + CFG.device_memory_seconds),
                          cfg=cfg)
    assert later.devices == {}
    only_dups, _ = run([rd(5, seq=1, device="mon-5")], state,
                       now=6 + CFG.device_memory_seconds, cfg=cfg)
    assert list(only_dups.devices) == ["mon-5"]  # the one it just accepted, as new


def test_only_a_measurement_proves_the_bed_is_connected() -> None:
    """A frame that only charts ACVPU neither restarts the stale timer nor clears a
    stale alarm; a sensor reported off does both."""
    state, _ = run(series(0, 5), now=5)
    stale, out = on_timeout(state, admission=ADM, now_ms=ms(40), cfg=CFG)
    assert [c.rule for c in changes(out)] == ["stale_signal"]
    charted = rd(41, base={}, c=A)
    assert charted.measured is False
    after, out = run([charted], stale, now=41)
    assert changes(out) == [] and after.last_wall_ms == stale.last_wall_ms
    off = rd(42, base={}, off=(SPO2,))
    _, out = run([off], after, now=42)
    assert [(c.event, c.rule) for c in changes(out)] == [("cleared", "stale_signal")]


def test_another_device_has_its_own_sequence() -> None:
    state, _ = run([rd(0, seq=5)])
    _, out = run([rd(1, seq=0, device="mon-1.rebooted")], state)
    assert isinstance(out[0], ScoredReading)


def test_one_result_per_reading_in_ts_seq_order() -> None:
    readings = series(0, 20)
    shuffled = readings[::-1]
    _, out = run(shuffled)
    assert [o.reading for o in out if not isinstance(o, AlertChange)] == readings


# --- stale signal ------------------------------------------------------------------------

def test_stale_signal_raise_and_clear() -> None:
    state, _ = run(series(0, 10), now=10)
    assert on_timeout(state, admission=ADM, now_ms=ms(39.999), cfg=CFG)[1] == []
    state, out = on_timeout(state, admission=ADM, now_ms=ms(40), cfg=CFG)
    (raised,) = out
    assert raised == AlertChange(
        event="raised", alert_id=alert_id(PID, "stale_signal", ms(9)), rule="stale_signal",
        priority=Priority.MEDIUM, message="No signal: no reading for 30 s",
        values={"silent_s": 30.0}, reading_ts=ms(9), onset_ts=ms(9))
    # while active, further timeouts raise nothing
    assert on_timeout(state, admission=ADM, now_ms=ms(100), cfg=CFG)[1] == []
    # the next reading, even one with every sensor off, clears it
    state, out = run([rd(120, off=(HR, SPO2, PULSE, RR))], state, now=121)
    assert [type(o) for o in out] == [ScoredReading, AlertChange]
    assert (out[1].event, out[1].alert_id, out[1].reading_ts) == (
        "cleared", raised.alert_id, ms(120))
    # a second silence is a new alert
    _, (again,) = on_timeout(state, admission=ADM, now_ms=ms(151), cfg=CFG)
    assert again.alert_id == alert_id(PID, "stale_signal", ms(120)) != raised.alert_id


def test_stale_uses_processing_time_from_the_settings() -> None:
    cfg = Settings(alerting={"stale_after_seconds": 5}).alerting
    state, _ = run(series(0, 3), now=1000)
    assert on_timeout(state, admission=ADM, now_ms=ms(1004.9), cfg=cfg)[1] == []
    assert len(on_timeout(state, admission=ADM, now_ms=ms(1005), cfg=cfg)[1]) == 1


def test_a_discharged_patient_has_every_alert_cleared() -> None:
    state, out = run(series(0, 30, hr=130, off=(SPO2,)), now=30)
    active = {c.alert_id for c in changes(out)}
    assert len(active) == 2
    state, out = on_timeout(state, admission=None, now_ms=ms(100), cfg=CFG)
    assert {(c.event, c.alert_id) for c in out} == {("cleared", a) for a in active}
    assert state.active == {}


def test_timeout_does_not_modify_its_input() -> None:
    state, _ = run(series(0, 3), now=3)
    before = state.to_json()
    on_timeout(state, admission=ADM, now_ms=ms(100), cfg=CFG)
    assert state.to_json() == before


# --- state and determinism ---------------------------------------------------------------

def scenario() -> list[Reading]:
    """A bit of everything: NEWS2 escalation, a spike, sensor off, a cuff, charting."""
    return (series(0, 20, c=A, o2=False, sbp=120, dbp=70, temp=37.1)
            + series(20, 80, **MEDIUM)
            + [rd(80, hr=250)]
            + series(81, 140, **HIGH)
            + series(140, 200, off=(SPO2, PULSE), c=Consciousness.VOICE)
            + series(200, 260, hr=130, rr=7, o2=True)
            + series(260, 330))


def test_state_json_round_trip() -> None:
    state, _out = run(scenario()[:190])
    assert state.active and state.conds and state.off and state.carried and state.devices
    text = state.to_json()
    assert PatientState.from_json(text) == state
    assert PatientState.from_json(text).to_json() == text
    assert json.loads(text)["v"] == 2
    new = PatientState.new(PID)
    assert PatientState.from_json(new.to_json()) == new


def test_state_of_an_unknown_version_is_refused() -> None:
    doc = json.loads(PatientState.new(PID).to_json())
    doc["v"] = 99
    with pytest.raises(ValueError, match="version 99"):
        PatientState.from_json(json.dumps(doc))


def test_same_state_and_readings_give_identical_results() -> None:
    readings = scenario()
    state, _ = run(readings[:50])
    before = state.to_json()
    first = run(readings[50:], state, now=1000)
    second = run(readings[50:], state, now=1000)
    assert first == second
    assert state.to_json() == before  # process() did not modify its input
    assert changes(first[1])  # the scenario does raise and clear alerts


@pytest.mark.parametrize("splits", [(1,), (10,), (75,), (81,), (150,), (229,), (329,),
                                    (30, 90, 200), tuple(range(7, 330, 7))])
def test_split_batches_give_the_same_results_as_one(splits: tuple[int, ...]) -> None:
    readings = scenario()
    whole_state, whole = run(readings, now=5000)
    state, parts = PatientState.new(PID), []
    for lo, hi in itertools.pairwise((0, *splits, len(readings))):
        state = PatientState.from_json(state.to_json())
        state, out = run(readings[lo:hi], state, now=5000)
        parts.extend(out)
    assert parts == whole
    assert state.to_json() == whole_state.to_json()
    # the alert ids depend only on patient, rule and onset
    for c in changes(whole):
        assert c.alert_id == alert_id(PID, c.rule, c.onset_ts)


def test_alert_ids_are_deterministic_uuids() -> None:
    a = alert_id("p-1", "news2_high", T0)
    assert a == alert_id("p-1", "news2_high", T0) and len(a) == 36
    assert len({a, alert_id("p-2", "news2_high", T0), alert_id("p-1", "news2_medium", T0),
                alert_id("p-1", "news2_high", T0 + 1)}) == 4


def test_devices_silent_beyond_the_replay_horizon_are_forgotten() -> None:
    cfg = Settings(alerting={"max_past_age_seconds": 60}).alerting
    state, _ = run([rd(0, device="old")], cfg=cfg)
    state, _ = run([rd(61, device="new")], state, cfg=cfg)
    assert set(state.devices) == {"new"}


# --- the memoised scores equal backend.scores --------------------------------------------

_GRID = dict(
    rr=[None, 7.0, 8.4, 8.5, 11.0, 20.0, 21.0, 24.6, 25.0],
    spo2=[None, 83.0, 85.5, 87.0, 91.0, 92.0, 93.0, 95.0, 96.0, 97.0, 100.0],
    o2=[None, False, True],
    sbp=[None, 90.0, 90.5, 100.0, 110.0, 219.0, 220.0],
    pulse=[None, 40.0, 50.0, 90.4, 90.5, 110.0, 130.0, 131.0],
    consciousness=[None, *Consciousness],
    temp=[None, 35.0, 35.05, 36.0, 38.0, 38.05, 39.0, 39.1],
)


def _grid_points(n: int = 4000):
    import random

    rng = random.Random(2017)
    for _ in range(n):
        yield {k: rng.choice(v) for k, v in _GRID.items()} | {"scale": rng.choice([1, 2])}


def test_score_news2_equals_news2() -> None:
    for p in _grid_points():
        expected = news2(News2Inputs(rr=p["rr"], spo2=p["spo2"], spo2_scale=p["scale"],
                                     o2_supplemental=p["o2"], sbp=p["sbp"], pulse=p["pulse"],
                                     consciousness=p["consciousness"], temp=p["temp"]))
        got = score_news2(rr=p["rr"], spo2=p["spo2"], spo2_scale=p["scale"],
                          o2_supplemental=p["o2"], sbp=p["sbp"], pulse=p["pulse"],
                          consciousness=p["consciousness"], temp=p["temp"])
        if len(expected.missing) == 7:
            assert got is None
        else:
            assert got == expected, p


def test_score_qsofa_equals_qsofa() -> None:
    for p in _grid_points(1000):
        expected = qsofa(rr=p["rr"], sbp=p["sbp"], consciousness=p["consciousness"])
        got = score_qsofa(rr=p["rr"], sbp=p["sbp"], consciousness=p["consciousness"])
        assert got == (None if len(expected.missing) == 3 else expected), p


# --- a real stay -------------------------------------------------------------------------

def test_mimic_stay_end_to_end() -> None:
    """The MIMIC record s25047 (72 minutes) through validation and evaluation: its PULSE
    of 277/min is a field rejection, and no alarm comes from a single frame."""
    from backend.validation import Accepted, validate
    from devices.mimic_replay import admission, load_record, replay
    from devices.wire import encode

    # The shared data is part of every checkout's setup: missing data fails, never skips.
    rec = load_record("s25047", Settings().data_dir)
    adm = admission(rec, admitted_ts=T0)
    outcomes = [validate(encode(r), received_ts=r.ts + 50, census={adm.patient_id: adm},
                         cfg=CFG) for _, r in replay(rec, start_ms=T0)]
    assert all(isinstance(o, Accepted) for o in outcomes)
    fields = [f.detail for o in outcomes for f in o.field_rejections]
    assert "pulse 277 outside plausible range 20-250 bpm" in fields
    readings = [o.reading for o in outcomes]
    _, out = process(PatientState.new(adm.patient_id), readings, admission=adm,
                     now_ms=readings[-1].ts, cfg=CFG)
    assert len(scored(out)) == len(readings)
    for c in changes(out):
        assert c.reading_ts - c.onset_ts >= 60_000  # at least two one-minute frames
    for s in scored(out):
        assert all(v > 0 for v in s.carried.values())
    spo2_low = [c for c in changes(out) if c.rule == "limit_spo2_low" and c.event == "raised"]
    assert all(c.values["spo2"] and c.values["spo2"] > 0 for c in spo2_low)


def test_readings_are_not_mutated() -> None:
    r = rd(0)
    frozen = replace(r)
    run([r])
    assert r == frozen

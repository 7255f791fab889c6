"""Alarm burden, measured: real and simulated stays through validation and the alarm
engine, in-process, under several alarm policies.

``stays_from_mimic`` and ``stays_from_generator`` build ``Stay``s (one patient's device
readings, encoded as on the wire); ``replay(stay, policy)`` runs them through
``backend.validation.validate`` and ``backend.alerting.evaluation.process`` /
``on_timeout`` exactly as the stream job does, reading by reading, with wall time = the
reading's device time (a pipeline without delay), and returns every alarm raised and
cleared. Nothing here touches Kafka, Cassandra or a clock.

Policies (``POLICIES``), from a naive central station to the engine as configured:

``naive``
    every value as the device sent it: a 0 is a value (SpO2 0 = desaturation), an
    implausible value counts; no persistence, no clear delay; a fixed 30 s stale timeout.
``raw``
    raw thresholds on validated readings (0 = sensor off, implausible values dropped):
    every false -> true transition of a rule's condition is an alarm, no persistence, no
    clear delay; fixed 30 s stale timeout.
``persistence``
    ``raw`` + the condition must persist ``persistence_seconds`` (10 s).
``clear_delay``
    + an alarm clears only after ``clear_seconds`` (30 s) clear: the engine's defaults
    with a fixed stale timeout, i.e. what the stream job does today.
``adaptive_stale``
    + the stale-bed timeout adapts to the source's reporting interval
    (``backend.alerting.rules.stale_timeout_ms``): the change this module measures for
    the engine; emulated here by giving each ``on_timeout`` call the patient's timeout
    as ``stale_after_seconds``.

The truth (``truth_episodes``): for generated patients the scenario's noise-free
physiology is known, so the periods in which it meets a clinical rule's condition
(``backend.alerting.rules``, evaluated on a snapshot of the truth) are the true
deteriorations; ``detected`` says whether an alarm of that patient was active during each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from backend.admission import Admission
from backend.alerting.evaluation import (
    AlertChange,
    PatientState,
    on_timeout,
    process,
    score_news2,
    score_qsofa,
    stale_due_ms,
)
from backend.alerting.rules import (
    RULES,
    RULES_BY_ID,
    STALE_GAPS_KEPT,
    STALE_RULE,
    Snapshot,
    reporting_interval_ms,
    stale_timeout_ms,
)
from backend.messages import DeviceReading, Priority
from backend.settings import AlertingSettings
from backend.validation import Accepted, Reading, validate
from backend.vitals import Vital
from devices.generator import GeneratorConfig, PatientPlan, generate, plan_patients
from devices.scenarios import SCENARIOS
from devices.wire import encode

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Policy:
    name: str
    validated: bool  # False: values as sent (0 and implausible values are values)
    persistence_seconds: float
    clear_seconds: float
    adaptive_stale: bool
    text: str


POLICIES: tuple[Policy, ...] = (
    Policy("naive", False, 0, 0, False, "values as sent (0 is a value), no persistence, "
           "no clear delay, stale after 30 s"),
    Policy("raw", True, 0, 0, False, "raw thresholds: validated (0 = sensor off), no "
           "persistence, no clear delay, stale after 30 s"),
    Policy("persistence", True, 10, 0, False, "+ persistence 10 s"),
    Policy("clear_delay", True, 10, 30, False, "+ clear delay 30 s (the engine today)"),
    Policy("adaptive_stale", True, 10, 30, True, "+ stale timeout adapted to the source"),
)
POLICY = {p.name: p for p in POLICIES}


@dataclass(frozen=True)
class Stay:
    """One patient's stay: the readings as the device sent them, in device-time order."""

    source: str  # e.g. "mimic s00001" or "generator"
    scenario: str  # the generator's scenario, "" for a real stay
    admission: Admission
    readings: tuple[DeviceReading, ...]
    start_ms: int
    end_ms: int  # end of the monitored period (exclusive)
    plan: PatientPlan | None = None  # generated stays: the truth's parameters

    @property
    def bed_days(self) -> float:
        return (self.end_ms - self.start_ms) / DAY_MS


@dataclass(frozen=True)
class Alarm:
    rule: str
    priority: Priority
    kind: str  # clinical / technical
    raised_ms: int  # device time of the raising reading (or the timeout's wall time)
    cleared_ms: int | None  # None: still active at the end of the stay
    message: str


@dataclass
class Result:
    stay: Stay
    policy: Policy
    alarms: list[Alarm] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0


# --- stays ---------------------------------------------------------------------------------

def stays_from_mimic(records: Sequence[str], data_dir, *, start_ms: int) -> list[Stay]:
    """The MIMIC stays at their recorded spacing (one frame per minute)."""
    from devices.mimic_replay import RECORD_MINUTE_MS, admission, load_record, replay

    stays = []
    for i, name in enumerate(records):
        rec = load_record(name, data_dir)
        bed = str(i + 1)
        adm = admission(rec, bed=bed, admitted_ts=start_ms - 3_600_000)
        readings = tuple(r for _, r in replay(rec, start_ms=start_ms, bed=bed))
        stays.append(Stay(f"mimic {rec.short}", "", adm, readings, start_ms,
                          start_ms + rec.minutes * RECORD_MINUTE_MS))
    return stays


def stays_from_generator(cfg: GeneratorConfig) -> list[Stay]:
    """The generator's patients (``cfg.duration_s`` must be set)."""
    if cfg.duration_s is None:
        raise ValueError("the generator needs a duration here")
    plans = plan_patients(cfg)
    by_patient: dict[str, list[DeviceReading]] = {p.patient_id: [] for p in plans}
    for pid, reading in generate(cfg, plans):
        by_patient[pid].append(reading)
    end = cfg.start_ms + round(cfg.duration_s * 1000)
    return [Stay("generator", p.scenario,
                 p.admission(cfg.start_ms - 3_600_000, cfg.source),
                 tuple(by_patient[p.patient_id]), cfg.start_ms, end, p)
            for p in plans]


# --- replay --------------------------------------------------------------------------------

def _naive_reading(r: DeviceReading) -> Reading:
    """The device's values taken literally: what a threshold alarm without validation
    sees (a 0 is a value; an SpO2 above 100 is the only thing it could not score)."""
    values = {Vital(k): float(v) for k, v in r.vitals.items() if v is not None}
    if values.get(Vital.SPO2, 0) > 100:
        values[Vital.SPO2] = 100.0
    return Reading(patient_id=r.patient_id, ward=r.ward, bed=r.bed, device_id=r.device_id,
                   seq=r.seq, ts=r.ts, values=values, sensors_off=frozenset(),
                   o2_supplemental=r.o2_supplemental, consciousness=r.consciousness,
                   source=r.source)


def _readings(stay: Stay, policy: Policy, cfg: AlertingSettings) -> Iterator[Reading]:
    census = {stay.admission.patient_id: stay.admission}
    for r in stay.readings:
        if not policy.validated:
            yield _naive_reading(r)
            continue
        outcome = validate(encode(r), received_ts=r.ts, census=census, cfg=cfg)
        if isinstance(outcome, Accepted):
            yield outcome.reading


def policy_settings(policy: Policy, base: AlertingSettings) -> AlertingSettings:
    return base.model_copy(update={"persistence_seconds": policy.persistence_seconds,
                                   "clear_seconds": policy.clear_seconds})


def replay(stay: Stay, policy: Policy, base: AlertingSettings | None = None) -> Result:
    """Every alarm the engine raises on ``stay`` under ``policy`` (module docstring)."""
    cfg = policy_settings(policy, (base or AlertingSettings()).for_ward(stay.admission.ward))
    result = Result(stay, policy)
    state = PatientState.new(stay.admission.patient_id)
    open_: dict[str, Alarm] = {}
    gaps: list[int] = []
    last_ts: int | None = None

    def stale_cfg() -> AlertingSettings:
        if not policy.adaptive_stale:
            return cfg
        timeout = stale_timeout_ms(cfg, reporting_interval_ms(gaps))
        return cfg.model_copy(update={"stale_after_seconds": timeout / 1000})

    def apply(changes: Iterable) -> None:
        for c in changes:
            if not isinstance(c, AlertChange):
                continue
            if c.event == "raised":
                rule = RULES_BY_ID[c.rule]
                open_[c.alert_id] = Alarm(c.rule, c.priority, rule.kind, c.reading_ts, None,
                                          c.message)
            else:
                alarm = open_.pop(c.alert_id)
                result.alarms.append(Alarm(alarm.rule, alarm.priority, alarm.kind,
                                           alarm.raised_ms, c.reading_ts, alarm.message))

    def timeout_until(now_ms: int) -> None:
        nonlocal state
        scfg = stale_cfg()
        due = stale_due_ms(state, scfg)
        if due is not None and due <= now_ms:
            state, changes = on_timeout(state, admission=stay.admission, now_ms=due, cfg=scfg)
            # the stale alarm's time is when it went off, not the last reading's
            apply(AlertChange(c.event, c.alert_id, c.rule, c.priority, c.message, c.values,
                              due, c.onset_ts) for c in changes)

    for reading in _readings(stay, policy, cfg):
        timeout_until(reading.ts)
        state, out = process(state, [reading], admission=stay.admission, now_ms=reading.ts,
                             cfg=cfg)
        result.accepted += 1
        apply(out)
        if last_ts is not None and reading.ts > last_ts:
            gaps.append(reading.ts - last_ts)
            del gaps[:-STALE_GAPS_KEPT]
        last_ts = reading.ts if last_ts is None else max(last_ts, reading.ts)
    timeout_until(stay.end_ms)
    result.rejected = len(stay.readings) - result.accepted
    result.alarms.extend(open_.values())
    result.alarms.sort(key=lambda a: a.raised_ms)
    return result


# --- the truth -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Episode:
    start_ms: int
    end_ms: int
    rules: frozenset[str]  # the clinical rules the truth met during it

    @property
    def minutes(self) -> float:
        return (self.end_ms - self.start_ms) / 60_000


_TRUTH_RULES = tuple(r for r in RULES
                     if r.kind == "clinical" and r.condition is not None and not r.retired)


def truth_rules(stay: Stay, t_s: float, cfg: AlertingSettings) -> frozenset[str]:
    """The clinical rules the noise-free physiology meets ``t_s`` s after the start."""
    plan = stay.plan
    assert plan is not None
    p = SCENARIOS[plan.scenario](t_s - plan.onset_s, plan.baseline)
    pulse = p.hr if p.pulse is None else p.pulse
    values = {Vital.HR: p.hr, Vital.PULSE: pulse, Vital.SPO2: min(100.0, p.spo2),
              Vital.RR: p.rr, Vital.SBP: p.sbp, Vital.DBP: p.dbp, Vital.MAP: p.map,
              Vital.TEMP: p.temp}
    snap = Snapshot(
        ts=0, values=values, sensors_off=frozenset(), o2_supplemental=p.o2_supplemental,
        consciousness=p.consciousness,
        news2=score_news2(rr=p.rr, spo2=values[Vital.SPO2], spo2_scale=1,
                          o2_supplemental=p.o2_supplemental, sbp=p.sbp, pulse=p.hr,
                          consciousness=p.consciousness, temp=p.temp),
        qsofa=score_qsofa(rr=p.rr, sbp=p.sbp, consciousness=p.consciousness),
        pulse_source=Vital.HR)
    return frozenset(r.id for r in _TRUTH_RULES if r.condition(snap, cfg))


def truth_episodes(stay: Stay, cfg: AlertingSettings | None = None, *,
                   min_seconds: float = 60.0, step_s: float = 1.0) -> list[Episode]:
    """The periods (at least ``min_seconds`` long) in which the generated patient's
    noise-free physiology meets a clinical rule: the deteriorations that must alarm."""
    if stay.plan is None:
        return []
    cfg = (cfg or AlertingSettings()).for_ward(stay.admission.ward)
    episodes: list[Episode] = []
    duration_s = (stay.end_ms - stay.start_ms) / 1000
    start: float | None = None
    rules: set[str] = set()
    for i in range(math.ceil(duration_s / step_s) + 1):
        t = min(i * step_s, duration_s)
        met = truth_rules(stay, t, cfg) if t < duration_s else frozenset()
        if met and start is None:
            start, rules = t, set(met)
        elif met:
            rules |= met
        elif start is not None:
            if t - start >= min_seconds:
                episodes.append(Episode(stay.start_ms + round(start * 1000),
                                        stay.start_ms + round(t * 1000), frozenset(rules)))
            start = None
    return episodes


def detected(episode: Episode, alarms: Iterable[Alarm]) -> Alarm | None:
    """The first clinical alarm active at some time during the episode, if any."""
    for a in alarms:
        if a.kind != "clinical":
            continue
        end = a.cleared_ms if a.cleared_ms is not None else math.inf
        if a.raised_ms <= episode.end_ms and end >= episode.start_ms:
            return a
    return None


def stale_alarms(result: Result) -> int:
    return sum(1 for a in result.alarms if a.rule == STALE_RULE.id)

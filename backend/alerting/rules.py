"""THE alarm rule table: every alarm the pipeline raises, with its priority, in one place.

Each ``Rule`` has an id (stable: it is part of the alert id and stored with every alert),
an IEC 60601-1-8 priority, a human message, and a condition over the patient's current
carried-forward state (``Snapshot``). ``backend.alerting.evaluation`` applies the
persistence, clearing and de-duplication around it; nothing here keeps state.

Priorities
----------
IEC 60601-1-8:2006+A1:2012+A2:2020, 6.1.2 and Table 1 "Alarm condition priorities",
assigns a priority from the potential result of failing to respond and how soon harm can
follow (immediate: no time for manual correction; prompt: time for it; delayed: longer)::

    failure to respond leads to      immediate   prompt    delayed
    death or irreversible injury     HIGH        HIGH      MEDIUM
    reversible injury                HIGH        MEDIUM    LOW
    minor discomfort or injury       MEDIUM      LOW       LOW (or none)

The NEWS2 rules take their bands from the Royal College of Physicians, *National Early
Warning Score (NEWS) 2* (London: RCP, December 2017), Chart 2 "NEWS thresholds and
triggers" and Chart 4 "Clinical response to the NEWS trigger thresholds": aggregate 7 or
more = high clinical risk, *emergency* response threshold (emergency assessment by a
critical-care team); 5-6 = medium risk, *urgent* response threshold; a single parameter
scoring 3 = low-medium risk, *urgent ward-based* response; 1-4 = ward-based response, no
alarm. The physiological limits are those a central station alarms on by default: its
life-threatening ("red", ***) alarms for desaturation and extreme brady-/tachycardia, its
limit ("yellow", **) alarms for a pressure below target, and technical ("INOP") alarms
for a sensor off (Philips IntelliVue Information Center, Instructions for Use, "Alarm
priorities"; the MAP target of 65 mmHg: Evans L, Rhodes A, Alhazzani W, et al. Surviving
Sepsis Campaign: international guidelines 2021. Intensive Care Med 2021;47:1181-1247).
The limits are settings, per ward (``AlertingSettings.limits`` / ``ward_limits``); the
priorities are fixed here::

    rule               priority  condition                      why this priority (IEC Table 1)
    news2_high         HIGH      NEWS2 >= 7                     RCP emergency response:
                                                                death/irreversible, prompt
    news2_medium       MEDIUM    NEWS2 >= 5 (band 5-6)          RCP urgent response:
                                                                reversible, prompt
    news2_red_flag     MEDIUM    one NEWS2 parameter scores 3   RCP urgent ward-based
                                 (aggregate < 5)                response: reversible, prompt
    qsofa_positive     MEDIUM    qSOFA >= 2 (Sepsis-3)          possible sepsis, organ
                                                                dysfunction: reversible, prompt
    limit_spo2_low     HIGH      SpO2 < limits.spo2_below (85)  hypoxaemia: irreversible
                                                                (brain), prompt
    limit_hr_low       HIGH      HR < limits.hr_below (40)      low output, arrest: death,
                                                                prompt
    limit_hr_high      HIGH      HR > limits.hr_above (150)     extreme tachycardia,
                                                                haemodynamic collapse, prompt
    limit_map_low      MEDIUM    MAP < limits.map_below (65)    organ hypoperfusion:
                                                                reversible, prompt
    sensor_off_<s>     LOW       a sensor reports 0 (off)       technical: monitoring lost,
                                                                other sensors still watch
    stale_signal       MEDIUM    no reading from the bed        technical: every parameter
                                 (``stale_timeout_ms``)         unmonitored, prompt

A value is thus marked by the most severe rule it raises on its own: HR 145 scores 3
(MEDIUM, urgent), HR 155 is beyond the limit as well (HIGH). ``value_flag`` tells a
screen exactly that, from this table.

Retired rules (``ref_hr_high`` HR > 120 MEDIUM, ``ref_spo2_low`` SpO2 < 90 HIGH, the
reference system's) never hold any more; they stay in the table so that an alert raised
before the change clears normally (and a stored alert still finds its rule).

Messages name the rule's own band and response ("NEWS2 8: emergency response"), never a
more or less urgent one than the priority
(``tests/unit/backend/alerting/test_rules.py`` checks every rule over generated inputs).

Groups: the three NEWS2 rules form the group ``news2``, with cumulative conditions
("at least this severe"), of which at most one alert is active at a time. A higher one
that has persisted supersedes the active lower one at once (the lower is cleared in the
same step: band 5-6 -> >= 7 clears ``news2_medium`` and raises ``news2_high``); a lower
one replaces a higher one only after the higher has been clear for ``clear_seconds``.
Because the conditions are cumulative, a NEWS2 flickering between 6 and 7 still raises
``news2_medium`` (>= 5 held throughout). The sensor-off rules form one group per sensor
(``SENSORS``: the oximeter probe gives SpO2 and pulse, the ECG leads HR and the
impedance respiration rate, a pressure transducer or cuff SBP, MAP and DBP), so a probe
coming off is one alarm, not one per parameter it measured. Every other rule is a group
of its own.

Thresholds are compared with the value as a monitor displays it (rounded half-up to the
parameter's ``decimals`` in VITALS, as NEWS2 does): HR 150.4 is "150" and does not exceed
150, HR 150.5 is "151" and does.

Carry-forward validity (``VALIDITY_SECONDS``, the one table): a parameter's latest value is
used for scoring and rules for this long after it was measured (device time), then it is
unknown. HR, pulse, SpO2, RR: 5 min (sent every second; longer silence means the device
stopped measuring). Blood pressure (SBP, DBP, MAP): 60 min. The wire does not say whether
BP came from an arterial line or a cuff; a cuff measures every 15-60 min and is sent once,
so it must stay valid between cycles, while a disconnected arterial line reads 0 (sensor
off), which drops the value at once. Temperature: 4 h. Consciousness (ACVPU) and
supplemental oxygen, charted by a nurse: 12 h. A parameter reported off is unknown at
once, whatever its validity; the "off" itself also lasts for the parameter's validity
(a device that stops sending a parameter at all does not keep it "off" for ever).

Artefact protection (``CONTINUOUS``, ``Rule.evidence``): HR, pulse, SpO2 and RR are sent
continuously and are where one-sample artefacts happen (movement, a lead). A rule whose
condition rests on one of them only raises at a reading that measured such a parameter
again, so a single spike that is carried forward while the parameter is not re-sent can
never confirm itself. Intermittent observations (a cuff BP, a temperature, a charted
ACVPU or oxygen) are deliberate measurements and count as they are.

A silent bed (``stale_timeout_ms``): a bedside monitor sends every second, a gateway or an
older central station may send numerics once a minute. A fixed 30 s timeout pages the
ward between every two frames of the latter, so the timeout adapts to the source: the
bed is stale once it has missed ``stale_missed_intervals`` (3) of its own reporting
intervals (the median of its recent gaps, ``reporting_interval_ms``), never sooner than
``stale_after_seconds`` (30 s) and never later than ``stale_max_seconds`` (300 s, when the
continuous values expire anyway).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from backend.messages import Consciousness, Priority
from backend.scores.news2 import (
    CHART_DECIMALS,
    NEWS2_CHART,
    News2Result,
    measurement,
    parameter_score,
)
from backend.scores.qsofa import QSOFA_CRITERIA, QsofaResult
from backend.settings import AlertingSettings
from backend.vitals import VITALS, Vital

__all__ = [
    "CONTINUOUS",
    "GROUPS",
    "LIMITS",
    "RULES",
    "RULES_BY_ID",
    "SENSORS",
    "SENSOR_OFF_GROUPS",
    "SENSOR_OFF_RULE_IDS",
    "STALE_RULE",
    "VALIDITY_SECONDS",
    "VALUE_GROUPS",
    "Limit",
    "Rule",
    "Snapshot",
    "ValueFlag",
    "reporting_interval_ms",
    "stale_message",
    "stale_timeout_ms",
    "value_flag",
]

HOUR = 3600.0

# How long a parameter's latest value stays valid (device time), keyed by wire name.
VALIDITY_SECONDS: dict[str, float] = {
    Vital.HR: 300.0,
    Vital.PULSE: 300.0,
    Vital.SPO2: 300.0,
    Vital.RR: 300.0,
    Vital.SBP: HOUR,
    Vital.DBP: HOUR,
    Vital.MAP: HOUR,
    Vital.TEMP: 4 * HOUR,
    "consciousness": 12 * HOUR,
    "o2_supplemental": 12 * HOUR,
}

# Parameters sent continuously (every frame), whose single samples can be artefacts.
CONTINUOUS: frozenset[str] = frozenset({Vital.HR, Vital.PULSE, Vital.SPO2, Vital.RR})


@dataclass(slots=True)  # not frozen: built for every reading, and frozen costs ~1 us
class Snapshot:
    """A patient's carried-forward state at one reading: what the rules look at.
    Read-only by convention."""

    ts: int  # device time of the reading
    values: dict[Vital, float]  # valid carried-forward values (plausible, not off)
    sensors_off: frozenset[Vital]  # parameters whose latest report was 0 (unknown)
    o2_supplemental: bool | None
    consciousness: Consciousness | None
    news2: News2Result | None  # None when no NEWS2 parameter is known
    qsofa: QsofaResult | None  # None when no qSOFA criterion can be evaluated
    pulse_source: Vital | None  # the vital NEWS2 used as "pulse": HR, else oximeter pulse


Condition = Callable[[Snapshot, AlertingSettings], bool]
Message = Callable[[Snapshot, AlertingSettings], str]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    priority: Priority
    kind: Literal["clinical", "technical"]
    description: str  # what the rule means, for documentation and the UI
    # None for the stale-signal rule, which is raised by the timeout, not by a reading.
    condition: Condition | None
    message: Message | None
    values: Callable[[Snapshot], dict[str, float | None]] | None
    # The parameters the condition currently rests on (wire names, "consciousness",
    # "o2_supplemental"); see "artefact protection" in the module docstring.
    evidence: Callable[[Snapshot], frozenset[str]] | None
    group: str = ""  # "" = a group of its own (the rule id)
    rank: int = 0  # severity within the group, higher = more severe
    # The condition can only hold while some parameter is off; evaluation skips the rule
    # while none is and the rule has no pending onset or clear (a shortcut, nothing more).
    needs_sensor_off: bool = False
    # Never holds any more; kept so an alert raised before it was retired clears.
    retired: bool = False


_SCALE = {v: 10 ** spec.decimals for v, spec in VITALS.items()}


def _shown(value: float, vital: Vital) -> float:
    """``value`` as a monitor displays it: rounded half-up to the vital's decimals."""
    scale = _SCALE[vital]
    return math.floor(value * scale + 0.5) / scale


# --- NEWS2 -------------------------------------------------------------------------------

_NEWS2_LABELS = {
    "rr": "respiration rate", "spo2": "SpO2", "o2_supplemental": "oxygen",
    "sbp": "systolic BP", "pulse": "pulse", "consciousness": "consciousness",
    "temp": "temperature",
}
_NEWS2_VALUES = ("rr", "spo2", "sbp", "pulse", "temp")
# RCP Chart 4 (responses) and Chart 2 (risk) of each NEWS2 rule's band.
_NEWS2_HIGH = "emergency response (high clinical risk)"
_NEWS2_MEDIUM = "urgent response (medium clinical risk)"
_NEWS2_RED = "urgent ward-based response"


def _news2_key(s: Snapshot, parameter: str) -> str:
    """The state key (wire name) behind a NEWS2 parameter."""
    if parameter == "pulse":
        return s.pulse_source or Vital.HR
    return parameter


def _news2_values(s: Snapshot) -> dict[str, float | None]:
    out: dict[str, float | None] = {"news2": float(s.news2.total) if s.news2 else None}
    for p in _NEWS2_VALUES:
        out[p] = s.values.get(_news2_key(s, p))  # type: ignore[call-overload]
    return out


def _news2_evidence(s: Snapshot, *, threes_only: bool = False) -> frozenset[str]:
    if s.news2 is None:
        return frozenset()
    scores = s.news2.components
    wanted = 3 if threes_only and s.news2.red_flag else 1
    return frozenset(_news2_key(s, p) for p, score in scores.items() if score >= wanted)


def _news2_suffix(n: News2Result) -> str:
    if n.complete:
        return ""
    return f" (partial: {7 - len(n.missing)} of 7 parameters)"


def _news2_high_message(s: Snapshot, cfg: AlertingSettings) -> str:
    n = s.news2
    assert n is not None
    return f"NEWS2 {n.total}: {_NEWS2_HIGH}{_news2_suffix(n)}"


def _news2_medium_message(s: Snapshot, cfg: AlertingSettings) -> str:
    n = s.news2
    assert n is not None
    # 7 or more while only ">= 5" has persisted (NEWS2 flickering 6/7): the alarm is the
    # urgent one, and its text must not read as the emergency band.
    score = str(n.total) if n.total < 7 else f"5 or more (now {n.total})"
    return f"NEWS2 {score}: {_NEWS2_MEDIUM}{_news2_suffix(n)}"


def _red_flag_message(s: Snapshot, cfg: AlertingSettings) -> str:
    n = s.news2
    assert n is not None
    threes = [_NEWS2_LABELS[p] for p, score in n.components.items() if score == 3]
    if not threes or n.total >= 5:
        return _news2_medium_message(s, cfg)
    return (f"NEWS2 red score: {', '.join(threes)} scored 3 (NEWS2 {n.total}): "
            f"{_NEWS2_RED}{_news2_suffix(n)}")


def _total(s: Snapshot) -> int:
    return s.news2.total if s.news2 is not None else 0


# --- qSOFA -------------------------------------------------------------------------------

_QSOFA_TEXT = {
    "rr": QSOFA_CRITERIA["rr"].text,
    "sbp": QSOFA_CRITERIA["sbp"].text,
    "mentation": "altered mentation",
}
_QSOFA_KEYS = {"rr": Vital.RR, "sbp": Vital.SBP, "mentation": "consciousness"}


def _qsofa_message(s: Snapshot, cfg: AlertingSettings) -> str:
    q = s.qsofa
    assert q is not None
    return f"qSOFA {q.score}: {', '.join(_QSOFA_TEXT[m] for m in q.met)}"


def _qsofa_values(s: Snapshot) -> dict[str, float | None]:
    return {"qsofa": float(s.qsofa.score) if s.qsofa else None,
            "rr": s.values.get(Vital.RR), "sbp": s.values.get(Vital.SBP)}


# --- physiological limits ----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Limit:
    """A physiological limit: its rule, the vital, the ``AlarmLimits`` field holding the
    threshold, which side is abnormal, and what crossing it means."""

    rule_id: str
    vital: Vital
    setting: str
    side: Literal["below", "above"]
    priority: Priority
    meaning: str

    def threshold(self, cfg: AlertingSettings) -> float | None:
        return getattr(cfg.limits, self.setting)

    def beyond(self, value: float, cfg: AlertingSettings) -> bool:
        """``value`` (as displayed) is on the abnormal side of the ward's limit."""
        limit = getattr(cfg.limits, self.setting)
        if limit is None:
            return False
        shown = _shown(value, self.vital)
        return shown < limit if self.side == "below" else shown > limit


LIMITS: tuple[Limit, ...] = (
    Limit("limit_spo2_low", Vital.SPO2, "spo2_below", "below", Priority.HIGH,
          "desaturation"),
    Limit("limit_hr_low", Vital.HR, "hr_below", "below", Priority.HIGH,
          "extreme bradycardia"),
    Limit("limit_hr_high", Vital.HR, "hr_above", "above", Priority.HIGH,
          "extreme tachycardia"),
    Limit("limit_map_low", Vital.MAP, "map_below", "below", Priority.MEDIUM,
          "hypotension"),
)
_UNIT = {Vital.HR: "/min", Vital.SPO2: " %", Vital.MAP: " mmHg"}
_LABEL = {Vital.HR: "HR", Vital.SPO2: "SpO2", Vital.MAP: "MAP"}


def _limit_rule(limit: Limit) -> Rule:
    vital, unit, label = limit.vital, _UNIT[limit.vital], _LABEL[limit.vital]
    decimals = VITALS[vital].decimals

    def condition(s: Snapshot, cfg: AlertingSettings) -> bool:
        value = s.values.get(vital)
        return value is not None and limit.beyond(value, cfg)

    def message(s: Snapshot, cfg: AlertingSettings) -> str:
        value = _shown(s.values[vital], vital)
        return (f"{limit.meaning.capitalize()}: {label} {value:.{decimals}f}{unit} "
                f"{limit.side} {limit.threshold(cfg):g}{unit}")

    return Rule(
        id=limit.rule_id, priority=limit.priority, kind="clinical",
        description=f"{label} {limit.side} the ward's limit "
                    f"(AlarmLimits.{limit.setting}): {limit.meaning}",
        condition=condition, message=message,
        values=lambda s: {vital.value: s.values.get(vital)},
        evidence=lambda s: frozenset({vital.value}),
    )


# --- technical ---------------------------------------------------------------------------

# Sensors, each with the parameters it measures, most important first: a sensor coming
# off raises one alarm (its group), whichever of its parameters read 0.
SENSORS: dict[str, tuple[str, tuple[Vital, ...]]] = {
    "oximeter": ("SpO2 probe", (Vital.SPO2, Vital.PULSE)),
    "ecg": ("ECG leads", (Vital.HR, Vital.RR)),
    "bp": ("Blood pressure sensor", (Vital.SBP, Vital.MAP, Vital.DBP)),
}
_OFF_LABEL = {Vital.HR: "HR", Vital.PULSE: "pulse", Vital.SPO2: "SpO2", Vital.RR: "RR",
              Vital.SBP: "SBP", Vital.DBP: "DBP", Vital.MAP: "MAP", Vital.TEMP: "temperature"}


def _sensor_off(group: str, sensor: str, members: tuple[Vital, ...], i: int) -> Rule:
    """The rule of ``members[i]``: holds while it or a more important member of its
    sensor is off (cumulative, like the NEWS2 group), so one alarm covers the sensor."""
    vital = members[i]
    watched = members[: i + 1]

    def off(s: Snapshot) -> list[Vital]:
        return [v for v in members if v in s.sensors_off]

    def message(s: Snapshot, cfg: AlertingSettings) -> str:
        gone = off(s)
        if len(members) == 1 or gone == [vital]:
            return f"{_OFF_LABEL[vital]} sensor off"
        return f"{sensor} off: {', '.join(_OFF_LABEL[v] for v in gone)} unknown"

    return Rule(
        id=f"sensor_off_{vital.value}",
        priority=Priority.LOW,
        kind="technical",
        description=f"{VITALS[vital].label}: the device reports 0 (sensor off, value "
                    f"unknown)" + (f"; one alarm per {sensor}" if len(members) > 1 else ""),
        condition=lambda s, cfg: any(v in s.sensors_off for v in watched),
        message=message,
        values=lambda s: {v.value: None for v in off(s)},
        evidence=lambda s: frozenset(v.value for v in off(s)),
        group=group, rank=len(members) - i,
        needs_sensor_off=True,
    )


def _sensor_off_rules() -> list[Rule]:
    rules: list[Rule] = []
    grouped: set[Vital] = set()
    for name, (sensor, members) in SENSORS.items():
        rules += [_sensor_off(f"sensor_off_{name}", sensor, members, i)
                  for i in range(len(members))]
        grouped.update(members)
    for vital, spec in VITALS.items():  # any other "0 = off" parameter: a sensor of its own
        if spec.zero_means_off and vital not in grouped:
            rules.append(_sensor_off("", spec.label, (vital,), 0))
    return rules


def stale_message(silent_seconds: float) -> str:
    """The message of the stale-signal alarm."""
    return f"No signal: no reading for {silent_seconds:.0f} s"


STALE_RULE = Rule(
    id="stale_signal",
    priority=Priority.MEDIUM,
    kind="technical",
    description="no reading from the bed for stale_timeout_ms (a silent bed is dangerous); "
                "cleared by the next reading",
    condition=None, message=None, values=None, evidence=None,
)

# Gaps shorter than this are frames of one reporting cycle (two devices of one bed
# sending within the same second), not the source's interval.
STALE_GAP_MIN_MS = 250
# How many recent gaps the interval is the median of.
STALE_GAPS_KEPT = 9


def reporting_interval_ms(gaps: Iterable[int]) -> int | None:
    """A source's reporting interval: the median of its recent gaps between readings
    (device time, ms), ignoring gaps below ``STALE_GAP_MIN_MS``. One long silence among
    them does not move it. ``None`` while no gap is known."""
    real = sorted(g for g in gaps if g >= STALE_GAP_MIN_MS)
    return real[len(real) // 2] if real else None


def stale_timeout_ms(cfg: AlertingSettings, interval_ms: int | None) -> int:
    """After how long a silent bed is stale (processing time, ms), for a source that
    reports every ``interval_ms`` (``None``: not known yet): ``stale_missed_intervals``
    of its intervals, at least ``stale_after_seconds``, at most ``stale_max_seconds``
    (module docstring)."""
    floor = cfg.stale_after_seconds * 1000
    if interval_ms is None:
        return round(floor)
    ceiling = max(floor, cfg.stale_max_seconds * 1000)
    return round(min(max(floor, cfg.stale_missed_intervals * interval_ms), ceiling))


# --- the table ---------------------------------------------------------------------------

def _retired(rule_id: str, priority: Priority, was: str) -> Rule:
    return Rule(
        id=rule_id, priority=priority, kind="clinical",
        description=f"retired ({was}); never raised, kept so older alerts clear",
        condition=lambda s, cfg: False, message=lambda s, cfg: was,
        values=lambda s: {}, evidence=lambda s: frozenset(), retired=True,
    )


RULES: tuple[Rule, ...] = (
    Rule(
        id="news2_high", priority=Priority.HIGH, kind="clinical",
        description="NEWS2 7 or more: emergency response (RCP NEWS2 Chart 4)",
        condition=lambda s, cfg: _total(s) >= 7,
        message=_news2_high_message, values=_news2_values, evidence=_news2_evidence,
        group="news2", rank=3,
    ),
    Rule(
        id="news2_medium", priority=Priority.MEDIUM, kind="clinical",
        description="NEWS2 5 or more (5-6 when news2_high is not active): urgent response",
        condition=lambda s, cfg: _total(s) >= 5,
        message=_news2_medium_message, values=_news2_values, evidence=_news2_evidence,
        group="news2", rank=2,
    ),
    Rule(
        id="news2_red_flag", priority=Priority.MEDIUM, kind="clinical",
        description="a single NEWS2 parameter scores 3 with an aggregate below 5 "
                    "(low-medium risk): urgent ward-based response",
        condition=lambda s, cfg: s.news2 is not None and (s.news2.red_flag
                                                          or s.news2.total >= 5),
        message=_red_flag_message, values=_news2_values,
        evidence=lambda s: _news2_evidence(s, threes_only=True),
        group="news2", rank=1,
    ),
    Rule(
        id="qsofa_positive", priority=Priority.MEDIUM, kind="clinical",
        description="qSOFA 2 or more (RR >= 22, SBP <= 100, altered mentation): "
                    "consider sepsis",
        condition=lambda s, cfg: s.qsofa is not None and s.qsofa.positive,
        message=_qsofa_message, values=_qsofa_values,
        evidence=lambda s: frozenset(_QSOFA_KEYS[m] for m in s.qsofa.met) if s.qsofa
        else frozenset(),
    ),
    *(_limit_rule(limit) for limit in LIMITS),
    *_sensor_off_rules(),
    STALE_RULE,
    _retired("ref_hr_high", Priority.MEDIUM, "HR above 120/min, the reference system's"),
    _retired("ref_spo2_low", Priority.HIGH, "SpO2 below 90 %, the reference system's"),
)

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
assert len(RULES_BY_ID) == len(RULES), "rule ids must be unique"
assert {lim.rule_id for lim in LIMITS} <= RULES_BY_ID.keys()


def _groups(rules: tuple[Rule, ...]) -> tuple[tuple[Rule, ...], ...]:
    groups: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.condition is not None:
            groups.setdefault(rule.group or rule.id, []).append(rule)
    return tuple(tuple(sorted(g, key=lambda r: -r.rank)) for g in groups.values())


# The reading-driven rules by group, most severe first within a group.
GROUPS: tuple[tuple[Rule, ...], ...] = _groups(RULES)
# The same, split by ``needs_sensor_off`` (groups never mix the two).
SENSOR_OFF_GROUPS = tuple(g for g in GROUPS if g[0].needs_sensor_off)
VALUE_GROUPS = tuple(g for g in GROUPS if not g[0].needs_sensor_off)
SENSOR_OFF_RULE_IDS = frozenset(r.id for g in SENSOR_OFF_GROUPS for r in g)
assert all(len({r.needs_sensor_off for r in g}) == 1 for g in GROUPS)


# --- abnormal values, for screens ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ValueFlag:
    """Why a displayed value is abnormal, by the rules above.

    ``priority``: of the most severe alarm the value raises on its own (a limit, or a
    NEWS2 score of 3), ``None`` when it is only outside the NEWS2 normal band (scores 1 or
    2: it adds to the aggregate but raises nothing alone). ``side``: below or above
    normal. ``reason``: what a tooltip says, e.g. "NEWS2 3" or "above limit 150/min"."""

    side: Literal["low", "high"]
    priority: Priority | None
    reason: str


_NEWS2_PARAMETER: dict[Vital, str] = {Vital.RR: "rr", Vital.SPO2: "spo2", Vital.SBP: "sbp",
                                      Vital.HR: "pulse", Vital.PULSE: "pulse",
                                      Vital.TEMP: "temp"}
_RANK = {Priority.HIGH: 3, Priority.MEDIUM: 2, Priority.LOW: 1}


def _chart(name: str, spo2_scale: int, o2: bool | None) -> tuple | None:
    if name != "spo2":
        return NEWS2_CHART[name]
    if spo2_scale == 1:
        return NEWS2_CHART["spo2_scale1"]
    if o2 is None:
        return None
    return NEWS2_CHART["spo2_scale2_oxygen" if o2 else "spo2_scale2_air"]


def _news2_side(name: str, value: float, spo2_scale: int, o2: bool | None) -> str:
    """Below or above the chart's 0-point band (the value scores > 0)."""
    chart = _chart(name, spo2_scale, o2)
    if chart is None:  # scale 2 without the oxygen status scores only at <= 92 %: low
        return "low"
    rounded = measurement(name, value, decimals=CHART_DECIMALS[name])
    zero_upper = next(row.upper for row in chart if row.score == 0)
    return "low" if rounded <= zero_upper else "high"


def value_flag(vital: Vital, value: float, cfg: AlertingSettings, *, spo2_scale: int = 1,
               o2_supplemental: bool | None = None) -> ValueFlag | None:
    """Is ``value`` of ``vital`` abnormal by the rules (for ``cfg``'s ward), and how
    much: the limits of ``LIMITS`` and the parameter's NEWS2 Chart 1 score (pulse: HR or
    the oximeter's). ``None``: normal, or not scorable (a scale-2 SpO2 of 93 % or more
    whose oxygen status is unknown)."""
    flags: list[ValueFlag] = []
    for limit in LIMITS:
        if limit.vital is vital and limit.beyond(value, cfg):
            unit = _UNIT[vital]
            flags.append(ValueFlag("low" if limit.side == "below" else "high",
                                   limit.priority,
                                   f"{limit.side} limit {limit.threshold(cfg):g}{unit}"))
    name = _NEWS2_PARAMETER.get(vital)
    if name is not None:
        try:
            score = parameter_score(name, value, spo2_scale=spo2_scale,
                                    o2_supplemental=o2_supplemental)
        except ValueError:
            score = 0  # not scorable (scale 2 without oxygen status, or out of range)
        if score:
            priority = RULES_BY_ID["news2_red_flag"].priority if score == 3 else None
            flags.append(ValueFlag(_news2_side(name, value, spo2_scale, o2_supplemental),
                                   priority, f"NEWS2 {score}"))
    if not flags:
        return None
    return max(flags, key=lambda f: _RANK.get(f.priority, 0))  # type: ignore[arg-type]

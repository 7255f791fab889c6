"""THE alarm rule table: every alarm the pipeline raises, in one place.

Each ``Rule`` has an id (stable: it is part of the alert id and stored with every alert),
an IEC 60601-1-8 priority, a human message, and a condition over the patient's current
carried-forward state (``Snapshot``). ``backend.alerting.evaluation`` applies the
persistence, clearing and de-duplication around it; nothing here keeps state.

``RULES``, clinical::

    rule             priority  condition (over the carried-forward values)
    news2_high       HIGH      NEWS2 >= 7
    news2_medium     MEDIUM    NEWS2 >= 5                      (band 5-6; see groups below)
    news2_red_flag   LOW       a single NEWS2 parameter scores 3 (band "low-medium",
                               aggregate < 5) or NEWS2 >= 5
    qsofa_positive   MEDIUM    qSOFA >= 2
    ref_hr_high      MEDIUM    HR > cfg.reference_hr_above     (reference system, 120/min)
    ref_spo2_low     HIGH      SpO2 < cfg.reference_spo2_below (reference system, 90 %)

and technical::

    sensor_off_<p>   LOW       parameter <p> reported as 0 ("sensor off"), one rule per
                               zero_means_off parameter of backend.vitals.VITALS
    stale_signal     MEDIUM    no reading for cfg.stale_after_seconds (processing time);
                               raised by the timeout, not by a reading

Groups: the three NEWS2 rules form the group ``news2``, with cumulative conditions
("at least this severe"), of which at most one alert is active at a time. A higher one
that has persisted supersedes the active lower one at once (the lower is cleared in the
same step: band 5-6 -> >= 7 clears ``news2_medium`` and raises ``news2_high``); a lower
one replaces a higher one only after the higher has been clear for ``clear_seconds``.
Because the conditions are cumulative, a NEWS2 flickering between 6 and 7 still raises
``news2_medium`` (>= 5 held throughout). Every other rule is a group of its own.

Thresholds are compared with the value as a monitor displays it (rounded half-up to the
parameter's ``decimals`` in VITALS, as NEWS2 does): HR 120.4 is "120" and does not exceed
120, HR 120.5 is "121" and does.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from backend.messages import Consciousness, Priority
from backend.scores.news2 import News2Result
from backend.scores.qsofa import QSOFA_CRITERIA, QsofaResult
from backend.settings import AlertingSettings
from backend.vitals import VITALS, Vital

__all__ = [
    "CONTINUOUS",
    "GROUPS",
    "RULES",
    "RULES_BY_ID",
    "SENSOR_OFF_GROUPS",
    "SENSOR_OFF_RULE_IDS",
    "STALE_RULE",
    "VALIDITY_SECONDS",
    "VALUE_GROUPS",
    "Rule",
    "Snapshot",
    "stale_message",
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


def _news2_message(level: str) -> Message:
    def message(s: Snapshot, cfg: AlertingSettings) -> str:
        n = s.news2
        assert n is not None
        return f"NEWS2 {n.total}, {level} clinical risk: {n.response}{_news2_suffix(n)}"
    return message


def _red_flag_message(s: Snapshot, cfg: AlertingSettings) -> str:
    n = s.news2
    assert n is not None
    threes = [_NEWS2_LABELS[p] for p, score in n.components.items() if score == 3]
    if not threes:
        return _news2_message("medium")(s, cfg)
    return (f"NEWS2 red score: {', '.join(threes)} scored 3 (NEWS2 {n.total}): "
            f"{n.response}{_news2_suffix(n)}")


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


# --- reference rules ---------------------------------------------------------------------

_HR_SCALE, _SPO2_SCALE = _SCALE[Vital.HR], _SCALE[Vital.SPO2]


def _hr_high(s: Snapshot, cfg: AlertingSettings) -> bool:
    hr = s.values.get(Vital.HR)
    return (hr is not None
            and math.floor(hr * _HR_SCALE + 0.5) / _HR_SCALE > cfg.reference_hr_above)


def _spo2_low(s: Snapshot, cfg: AlertingSettings) -> bool:
    spo2 = s.values.get(Vital.SPO2)
    return (spo2 is not None
            and math.floor(spo2 * _SPO2_SCALE + 0.5) / _SPO2_SCALE < cfg.reference_spo2_below)


# --- technical ---------------------------------------------------------------------------

def _sensor_off(vital: Vital) -> Rule:
    label = VITALS[vital].label
    if label.startswith("Pulse rate"):
        label = "Pulse rate"
    return Rule(
        id=f"sensor_off_{vital.value}",
        priority=Priority.LOW,
        kind="technical",
        description=f"{label}: the device reports 0 (sensor off, value unknown)",
        condition=lambda s, cfg: vital in s.sensors_off,
        message=lambda s, cfg: f"{label} sensor off",
        values=lambda s: {vital.value: None},
        evidence=lambda s: frozenset({vital.value}),
        needs_sensor_off=True,
    )


def stale_message(silent_seconds: float) -> str:
    """The message of the stale-signal alarm."""
    return f"No signal: no reading for {silent_seconds:.0f} s"


STALE_RULE = Rule(
    id="stale_signal",
    priority=Priority.MEDIUM,
    kind="technical",
    description="no reading from the bed for cfg.stale_after_seconds (a silent bed is "
                "dangerous); cleared by the next reading",
    condition=None, message=None, values=None, evidence=None,
)


RULES: tuple[Rule, ...] = (
    Rule(
        id="news2_high", priority=Priority.HIGH, kind="clinical",
        description="NEWS2 7 or more: urgent or emergency response",
        condition=lambda s, cfg: _total(s) >= 7,
        message=_news2_message("high"), values=_news2_values, evidence=_news2_evidence,
        group="news2", rank=3,
    ),
    Rule(
        id="news2_medium", priority=Priority.MEDIUM, kind="clinical",
        description="NEWS2 5 or more (5-6 when news2_high is not active): urgent response",
        condition=lambda s, cfg: _total(s) >= 5,
        message=_news2_message("medium"), values=_news2_values, evidence=_news2_evidence,
        group="news2", rank=2,
    ),
    Rule(
        id="news2_red_flag", priority=Priority.LOW, kind="clinical",
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
    Rule(
        id="ref_hr_high", priority=Priority.MEDIUM, kind="clinical",
        description="reference rule: HR above cfg.reference_hr_above",
        condition=_hr_high,
        message=lambda s, cfg: (f"HR {_shown(s.values[Vital.HR], Vital.HR):.0f}/min above "
                                f"{cfg.reference_hr_above:g}/min"),
        values=lambda s: {"hr": s.values.get(Vital.HR)},
        evidence=lambda s: frozenset({Vital.HR.value}),
    ),
    Rule(
        id="ref_spo2_low", priority=Priority.HIGH, kind="clinical",
        description="reference rule: SpO2 below cfg.reference_spo2_below",
        condition=_spo2_low,
        message=lambda s, cfg: (f"SpO2 {_shown(s.values[Vital.SPO2], Vital.SPO2):.0f} % "
                                f"below {cfg.reference_spo2_below:g} %"),
        values=lambda s: {"spo2": s.values.get(Vital.SPO2)},
        evidence=lambda s: frozenset({Vital.SPO2.value}),
    ),
    *(_sensor_off(v) for v, spec in VITALS.items() if spec.zero_means_off),
    STALE_RULE,
)

RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
assert len(RULES_BY_ID) == len(RULES), "rule ids must be unique"


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

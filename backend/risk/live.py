"""Live risk scoring of one patient: hourly rows from validated readings, scored with the
active model, and the risk alert with its persistence rule. Pure logic, no Spark, no I/O;
``streaming/risk_job.py`` runs it per patient inside Spark and stores what it returns.

Hours. A patient's hour *h* is ``[admitted + (h-1) h, admitted + h h)`` in device time,
``hour = floor((ts - admitted_ts) / 1 h) + 1`` as in ``docs/model.md`` (PhysioNet's
``ICULOS``). An hour is *closed*, and scored, when the first reading of a later hour
arrives; hours in between without any reading become rows of NaN, as in training. So the
scores depend on the readings only (event time), and re-processing the same readings
after a restart gives the same scores and the same alert ids. A reading for an hour that
is already closed is late: it is counted and left out (the score of that hour stands).

Hourly value of a vital: the median of its per-minute means within the hour. The
minute means keep the state small (at most 60 numbers per vital, whatever the rate of
the monitor) and the median keeps a few minutes of artefact from moving the hour.

Features and scoring are exactly training's: ``backend.risk.features.hourly_features``
through ``RiskModel.score_frame``, features on the whole kept history
(``max_history_hours``), trees on the hours just closed.
The stream carries no labs, so the model's monitor-only threshold applies
(``RiskModel.threshold_for``).

Risk alert (rule ``sepsis_risk``): raised when ``persistence_hours`` consecutive scored
hours are at or above the threshold; its onset is the start of the first of them, so its
id (``backend.alerting.ids.alert_id``) is deterministic. It clears after ``clear_hours``
consecutive hours below the threshold. Without an active model, hours are still closed
and kept (so the history is complete when a model is activated) but nothing is scored.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from statistics import median

import numpy as np
import pandas as pd

from backend.admission import Admission
from backend.alerting.ids import alert_id
from backend.messages import AlertEvent, Priority
from backend.risk.features import VITALS
from backend.risk.model import RiskModel
from backend.settings import RiskSettings
from backend.vitals import VITALS as VITAL_SPECS
from backend.vitals import Vital

RISK_RULE = "sepsis_risk"
RISK_PRIORITY = Priority.MEDIUM  # prompt clinical review, not an immediate intervention
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def hour_of(ts: int, admitted_ts: int) -> int:
    """Hour of stay of device time ``ts`` (1 = the first hour; earlier readings count as 1)."""
    return max(1, (int(ts) - int(admitted_ts)) // HOUR_MS + 1)


def usable(name: str, value: float | None) -> bool:
    """A model input that is a real measurement: a vital the model uses, finite, and
    within the plausible range live validation applies (so 0, "sensor off", is out)."""
    if name not in VITALS or value is None or not math.isfinite(value):
        return False
    spec = VITAL_SPECS[Vital(name)]
    return spec.plausible_min <= value <= spec.plausible_max


def hour_start(hour: int, admitted_ts: int) -> int:
    return int(admitted_ts) + (int(hour) - 1) * HOUR_MS


def sex_code(sex: str | None) -> float:
    """The model's ``sex`` input: 1 male, 0 female, NaN unknown (the model uses 0.5)."""
    return {"M": 1.0, "F": 0.0}.get(sex or "", math.nan)


@dataclass(frozen=True)
class HourScore:
    """The risk of one closed hour of one patient."""

    patient_id: str
    hour: int
    hour_ts: int  # start of the hour, ms since epoch
    risk: float
    threshold: float
    above: bool
    monitor_only: bool
    model_version: str
    n_readings: int
    inputs: dict[str, float]  # the hourly vitals the features were built from (non-NaN)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HourScore:
        return cls(**json.loads(text))


@dataclass
class PatientRiskState:
    """What the scorer keeps per patient between micro-batches (checkpointed as JSON)."""

    patient_id: str
    admitted_ts: int | None = None
    age: float | None = None
    sex: float | None = None
    ward: str = ""
    bed: str = ""
    first_hour: int | None = None  # hour of rows[0]
    rows: list[list[float | None]] = field(default_factory=list)  # closed hours, VITALS
    open_hour: int | None = None
    # open hour: vital -> minute (as str, JSON keys) -> [sum, count]
    minutes: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    open_readings: int = 0
    above_run: int = 0
    run_start_hour: int | None = None
    below_run: int = 0
    alert_id: str | None = None
    alert_onset_ts: int | None = None
    late_readings: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> PatientRiskState:
        return cls(**json.loads(text))

    # --- hourly rows ------------------------------------------------------------------
    def _close_open_hour(self) -> tuple[int, int]:
        """Append the open hour's row; returns (hour, readings in it)."""
        assert self.open_hour is not None
        row: list[float | None] = []
        for v in VITALS:
            means = [s / n for s, n in self.minutes.get(v, {}).values() if n > 0]
            row.append(float(median(means)) if means else None)
        if self.first_hour is None:
            self.first_hour = self.open_hour
        self.rows.append(row)
        closed = (self.open_hour, self.open_readings)
        self.minutes, self.open_readings = {}, 0
        return closed

    def _trim(self, max_rows: int) -> None:
        extra = len(self.rows) - max_rows
        if extra > 0:
            del self.rows[:extra]
            assert self.first_hour is not None
            self.first_hour += extra

    def history(self) -> pd.DataFrame:
        """The closed hours as ``hourly_features`` wants them (no labs: monitor only)."""
        n = len(self.rows)
        frame = pd.DataFrame(
            np.array([[np.nan if x is None else x for x in r] for r in self.rows],
                     dtype=np.float64).reshape(n, len(VITALS)),
            columns=list(VITALS))
        frame.insert(0, "hour", np.arange(self.first_hour or 1, (self.first_hour or 1) + n))
        frame["age"] = np.nan if self.age is None else self.age
        frame["sex"] = np.nan if self.sex is None else self.sex
        return frame


@dataclass(frozen=True)
class LiveReading:
    """What the scorer needs of a validated reading (``backend.messages.ValidatedReading``)."""

    ts: int
    ward: str
    bed: str
    vitals: dict[str, float | None]


def _admit(state: PatientRiskState, admission: Admission | None, first_ts: int) -> None:
    """Anchor the patient's hours: the admission time, or (not in the census) the hour
    of the first reading seen."""
    if admission is not None:
        state.admitted_ts = int(admission.admitted_ts)
        state.age = None if admission.age is None else float(admission.age)
        s = sex_code(admission.sex)
        state.sex = None if math.isnan(s) else s
    else:
        state.admitted_ts = int(first_ts)


def _alert(state: PatientRiskState, event: str, score: HourScore, onset_ts: int,
           now_ms: int, message: str) -> AlertEvent:
    assert state.alert_id is not None
    return AlertEvent(
        alert_id=state.alert_id, event=event, patient_id=state.patient_id,  # type: ignore[arg-type]
        ward=state.ward, bed=state.bed, rule=RISK_RULE, priority=RISK_PRIORITY,
        message=message,
        values={"risk": round(score.risk, 4), "threshold": round(score.threshold, 4),
                "hour": float(score.hour)},
        onset_ts=onset_ts, reading_ts=score.hour_ts + HOUR_MS, detected_ts=now_ms,
    )


def _apply_rule(state: PatientRiskState, score: HourScore, cfg: RiskSettings,
                now_ms: int) -> AlertEvent | None:
    """The persistence rule for one newly scored hour (hours in order)."""
    assert state.admitted_ts is not None
    if score.above:
        state.below_run = 0
        state.above_run += 1
        if state.above_run == 1:
            state.run_start_hour = score.hour
        if state.alert_id is None and state.above_run >= cfg.persistence_hours:
            assert state.run_start_hour is not None
            onset = hour_start(state.run_start_hour, state.admitted_ts)
            state.alert_id = alert_id(state.patient_id, RISK_RULE, onset)
            state.alert_onset_ts = onset
            return _alert(state, "raised", score, onset, now_ms,
                          f"Sepsis risk {score.risk:.0%} at or above {score.threshold:.1%} "
                          f"for {state.above_run} h (model {score.model_version})")
        return None
    state.above_run, state.run_start_hour = 0, None
    if state.alert_id is None:
        return None
    state.below_run += 1
    if state.below_run < cfg.clear_hours:
        return None
    event = _alert(state, "cleared", score, state.alert_onset_ts or score.hour_ts, now_ms,
                   f"Sepsis risk {score.risk:.0%} below {score.threshold:.1%} "
                   f"for {state.below_run} h")
    state.alert_id, state.alert_onset_ts, state.below_run = None, None, 0
    return event


def process(state: PatientRiskState, readings: list[LiveReading], *,
            admission: Admission | None, model: RiskModel | None, cfg: RiskSettings,
            now_ms: int) -> tuple[PatientRiskState, list[HourScore], list[AlertEvent]]:
    """Add a patient's new readings; close, score and alert on every hour they complete."""
    if not readings:
        return state, [], []
    readings = sorted(readings, key=lambda r: r.ts)
    if state.admitted_ts is None:
        _admit(state, admission, readings[0].ts)
    assert state.admitted_ts is not None
    closed: list[tuple[int, int]] = []  # (hour, readings) of the hours closed now
    for r in readings:
        h = hour_of(r.ts, state.admitted_ts)
        if state.open_hour is None:
            state.open_hour = h
        if h < state.open_hour:
            state.late_readings += 1
            continue
        while h > state.open_hour:  # close the open hour and any empty ones after it
            closed.append(state._close_open_hour())
            state.open_hour += 1
        state.ward, state.bed = r.ward or state.ward, r.bed or state.bed
        minute = str((r.ts - hour_start(h, state.admitted_ts)) // MINUTE_MS)
        for name, value in r.vitals.items():
            if usable(name, value):
                acc = state.minutes.setdefault(name, {}).setdefault(minute, [0.0, 0])
                acc[0] += float(value)
                acc[1] += 1
        state.open_readings += 1
    state._trim(cfg.max_history_hours)
    if not closed or model is None:
        return state, [], []

    history = state.history()
    n = min(len(closed), len(history))  # a gap longer than the kept history: score the rest
    risks = model.score_frame(history, last=n)
    threshold = model.threshold_for(history)  # no labs on the stream: monitor-only
    scores: list[HourScore] = []
    alerts: list[AlertEvent] = []
    for (hour, count), risk, row in zip(closed[-n:], risks, state.rows[-n:], strict=True):
        score = HourScore(
            patient_id=state.patient_id, hour=hour,
            hour_ts=hour_start(hour, state.admitted_ts), risk=float(risk),
            threshold=float(threshold), above=bool(risk >= threshold),
            monitor_only=True, model_version=model.version, n_readings=count,
            inputs={v: float(x) for v, x in zip(VITALS, row, strict=True) if x is not None},
        )
        scores.append(score)
        event = _apply_rule(state, score, cfg, now_ms)
        if event is not None:
            alerts.append(event)
    return state, scores, alerts


"""Per-patient stateful alarm evaluation: the pure core of the stream job's stateful step.

The stream job groups accepted readings by patient and calls ``process`` with the
patient's ``PatientState`` (kept by Spark as one JSON string, ``to_json``/``from_json``)
and the readings of the micro-batch; when a patient has sent nothing for a while Spark
calls ``on_timeout``. Both are pure functions of their arguments: they never mutate the
state passed in, never read a clock (``now_ms`` is passed in) and never do I/O.

``process(state, readings, admission=, now_ms=, cfg=)``

* Readings are taken in ``(ts, seq)`` order (a stable sort, so a caller that sorted them
  the same way gets results in its own order). For each reading the result list holds
  exactly one ``ScoredReading`` or ``Duplicate``, followed by the ``AlertChange``s that
  reading caused.
* Duplicates: each device is remembered by the highest ``seq`` and the latest ``ts`` of
  its current counter epoch and the wall time of its last accepted reading. A reading
  whose ``seq`` is at most the remembered one and whose ``ts`` lies within
  ``cfg.duplicate_window_seconds`` before (or at) the remembered ``ts`` is a ``Duplicate``
  (reason ``DUPLICATE``) and changes nothing: that is what a resent or replayed message
  looks like. Everything else is accepted, because silencing a monitor is worse than
  storing a reading twice (storage is idempotent, and a reading older than the newest
  drives no alarm): a lower ``seq`` with a later ``ts`` is the counter restarting (a
  reboot, or a counter that jumped to its maximum and wrapped) and starts a new epoch; a
  higher ``seq`` with an earlier ``ts`` is the clock stepping back (the latest ``ts`` is
  kept); a reading older than the window is a late one and changes no memory. So only a
  counter and a clock that both went back, by less than the window, are taken for a
  replay, for at most the window of device time. The memory lasts
  ``cfg.device_memory_seconds`` after the device's last accepted reading, at most
  ``cfg.max_devices_per_patient`` devices are remembered, and a device's memory expires
  whether or not anything is accepted (``on_timeout`` prunes it too).
* Carry-forward: each parameter's newest value (and each charted ACVPU / oxygen status)
  is kept with its device timestamp and used until it is older than its validity
  (``rules.VALIDITY_SECONDS``); a parameter reported 0 (sensor off) is unknown at once.
  Per parameter the newest measurement wins, whatever order readings arrive in.
* Scores: NEWS2 (the admission's SpO2 scale; pulse = HR, else the oximeter's pulse) and
  qSOFA (RR, SBP, ACVPU) over the carried-forward values, for every reading.
* Rules (``rules.RULES``) are evaluated on every reading whose device time is not before
  the newest one already processed (device time never runs backwards for persistence;
  a late reading is scored and carried forward but drives no alarm). A rule's condition
  must hold on every evaluated reading for at least ``cfg.persistence_seconds`` of device
  time, and the reading that raises it must carry fresh evidence (``Rule.evidence``): a
  one-sample artefact never raises anything. A raised alert clears once its condition has
  been false on every reading for ``cfg.clear_seconds``. Within a rule group at most one
  alert is active (see ``rules``: NEWS2 5-6 -> 7 clears ``news2_medium`` and raises
  ``news2_high`` in the same step).
* Alert ids are ``alert_id(patient, rule, onset_ts)``, onset being the device time the
  condition started, so the same state and readings always give identical results, and
  splitting readings over several calls (state round-tripped through JSON) gives the
  same results as one call. (After a superseded alert, the lower rule's condition counts
  as restarting at the supersession, so a later re-raise gets a new id.)
* Any accepted reading that measured something (``Reading.measured``: a value or a
  sensor reported off) proves the bed is connected: it clears ``stale_signal`` and
  restarts the stale timer. A frame that only charts ACVPU or oxygen does neither.

``on_timeout(state, admission=, now_ms=, cfg=)`` raises ``stale_signal`` (no persistence:
the timeout is the delay) when ``now_ms`` is at least ``cfg.stale_after_seconds`` after
the wall time of the last processed reading; its onset is the device time of the last
reading. With ``admission=None`` (the patient is no longer in the census) it clears every
active alert instead, so nothing stays active for a discharged patient.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from backend.admission import Admission
from backend.alerting.ids import alert_id
from backend.alerting.rules import (
    CONTINUOUS,
    RULES_BY_ID,
    SENSOR_OFF_GROUPS,
    SENSOR_OFF_RULE_IDS,
    STALE_RULE,
    VALIDITY_SECONDS,
    VALUE_GROUPS,
    Rule,
    Snapshot,
    stale_message,
)
from backend.messages import Consciousness, Priority
from backend.scores.news2 import (
    PARAMETERS,
    RESPONSE,
    News2Result,
    news2_band,
    parameter_score,
)
from backend.scores.qsofa import QSOFA_POSITIVE, QsofaResult, qsofa
from backend.settings import AlertingSettings
from backend.validation import Reading, Rejection, RejectReason
from backend.vitals import Vital

__all__ = [
    "STATE_VERSION",
    "AlertChange",
    "Duplicate",
    "PatientState",
    "ScoredReading",
    "alert_id",
    "on_timeout",
    "process",
    "score_news2",
    "score_qsofa",
]

STATE_VERSION = 2
_VITAL = {v.value: v for v in Vital}
_CONSCIOUSNESS = {c.value: c for c in Consciousness}
_VALIDITY_MS = {str(k): int(v * 1000) for k, v in VALIDITY_SECONDS.items()}
_CONSC, _O2 = "consciousness", "o2_supplemental"
_STALE = STALE_RULE.id


# --- state -------------------------------------------------------------------------------

@dataclass
class PatientState:
    """Everything needed about one patient across micro-batches (JSON-serialisable).

    Timestamps are ms since the epoch; ``*_ts`` are device time, ``last_wall_ms`` is
    processing time. Lists rather than tuples so a JSON round trip compares equal.
    """

    patient_id: str
    # device_id -> [highest seq, latest device ts, wall ms of its last accepted reading]
    devices: dict[str, list[int]] = field(default_factory=dict)
    # parameter (wire name, "consciousness", "o2_supplemental") -> [value, device ts];
    # value is a float, the ACVPU letter, or a bool for oxygen
    carried: dict[str, list[Any]] = field(default_factory=dict)
    # parameter -> device ts of its latest "0" (sensor off); exclusive with ``carried``
    off: dict[str, int] = field(default_factory=dict)
    # rule id -> [onset ts or None, clear-since ts or None], only for rules with one set
    conds: dict[str, list[int | None]] = field(default_factory=dict)
    # rule id -> {"id": alert id, "onset": onset ts, "message": message when raised}
    active: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_ts: int | None = None  # newest device ts processed
    last_wall_ms: int | None = None  # wall time of the last measured reading accepted
    last_stale_onset: int | None = None  # onset of the last stale_signal (unique ids)

    @classmethod
    def new(cls, patient_id: str) -> PatientState:
        return cls(patient_id=patient_id)

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON-ready containers (shared with ``self``: do not mutate)."""
        return {
            "v": STATE_VERSION, "patient_id": self.patient_id, "devices": self.devices,
            "carried": self.carried, "off": self.off, "conds": self.conds,
            "active": self.active, "last_ts": self.last_ts, "last_wall_ms": self.last_wall_ms,
            "last_stale_onset": self.last_stale_onset,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PatientState:
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported patient state version {d.get('v')!r}")
        return cls(
            patient_id=d["patient_id"], devices=d["devices"], carried=d["carried"],
            off=d["off"], conds=d["conds"], active=d["active"], last_ts=d["last_ts"],
            last_wall_ms=d["last_wall_ms"], last_stale_onset=d.get("last_stale_onset"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> PatientState:
        return cls.from_dict(json.loads(s))

    def copy(self) -> PatientState:
        """A deep copy (the containers hold only lists, dicts and scalars)."""
        return PatientState(
            patient_id=self.patient_id,
            devices={k: list(v) for k, v in self.devices.items()},
            carried={k: list(v) for k, v in self.carried.items()},
            off=dict(self.off),
            conds={k: list(v) for k, v in self.conds.items()},
            active={k: dict(v) for k, v in self.active.items()},
            last_ts=self.last_ts,
            last_wall_ms=self.last_wall_ms,
            last_stale_onset=self.last_stale_onset,
        )


# --- results -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ScoredReading:
    reading: Reading
    news2: News2Result | None  # None when no NEWS2 parameter is known
    qsofa: QsofaResult | None  # None when no qSOFA criterion can be evaluated
    carried: dict[Vital, float]  # the carried-forward values used for the scores


@dataclass(frozen=True, slots=True)
class AlertChange:
    event: Literal["raised", "cleared"]
    alert_id: str
    rule: str
    priority: Priority
    message: str  # for "cleared": the message the alert was raised with
    values: dict[str, float | None]  # the values behind the rule at this reading
    reading_ts: int  # device ts of the reading that caused the change
    onset_ts: int  # device ts at which the condition started


@dataclass(frozen=True, slots=True)
class Duplicate:
    reading: Reading
    rejection: Rejection


# --- scores ------------------------------------------------------------------------------
# NEWS2 and qSOFA as computed by backend.scores, memoised: ``news2()`` (~60 us) and
# ``qsofa()`` (~15 us, exact Decimal arithmetic) each cost more than the whole per-reading
# budget. Each parameter's Chart 1 score comes from ``parameter_score`` (memoised per value;
# monitor values are discrete, so the caches stay small and hit almost always), and the
# result is assembled exactly as ``news2()`` does
# (tests/unit/backend/alerting/test_evaluation.py checks equality with ``news2()`` and
# ``qsofa()`` over a grid of inputs). Results are shared between readings: treat them as
# read-only.

@lru_cache(maxsize=8192)
def _parameter_score(name: str, value: Any, spo2_scale: int, o2: bool | None) -> int | None:
    try:
        return parameter_score(name, value, spo2_scale=spo2_scale, o2_supplemental=o2)
    except ValueError:
        if name == "spo2" and spo2_scale == 2 and o2 is None:
            return None  # scale 2 at >= 93 % needs the air/oxygen status: not scorable
        raise


@lru_cache(maxsize=8192)
def _news2_result(scores: tuple[int | None, ...]) -> News2Result | None:
    components = {p: s for p, s in zip(PARAMETERS, scores, strict=True) if s is not None}
    if not components:
        return None
    missing = tuple(p for p, s in zip(PARAMETERS, scores, strict=True) if s is None)
    total = sum(components.values())
    red_flag = 3 in components.values()
    band = news2_band(total, red_flag)
    return News2Result(total=total, band=band, components=components, red_flag=red_flag,
                       complete=not missing, missing=missing, response=RESPONSE[band])


def score_news2(
    *, rr: float | None, spo2: float | None, spo2_scale: int, o2_supplemental: bool | None,
    sbp: float | None, pulse: float | None, consciousness: Consciousness | None,
    temp: float | None,
) -> News2Result | None:
    """``news2(News2Inputs(...))``, memoised; None when no parameter is known."""
    ps = _parameter_score
    scores = (
        None if rr is None else ps("rr", rr, 1, None),
        None if spo2 is None else ps("spo2", spo2, spo2_scale, o2_supplemental),
        None if o2_supplemental is None else ps(_O2, o2_supplemental, 1, None),
        None if sbp is None else ps("sbp", sbp, 1, None),
        None if pulse is None else ps("pulse", pulse, 1, None),
        None if consciousness is None else ps(_CONSC, consciousness, 1, None),
        None if temp is None else ps("temp", temp, 1, None),
    )
    return _news2_result(scores)


@lru_cache(maxsize=4096)
def _qsofa_met(name: str, value: Any) -> bool:
    """Whether one qSOFA criterion is met, by ``qsofa()`` itself."""
    if name == "rr":
        return bool(qsofa(rr=value, sbp=None).met)
    if name == "sbp":
        return bool(qsofa(rr=None, sbp=value).met)
    return bool(qsofa(rr=None, sbp=None, consciousness=value).met)


@lru_cache(maxsize=64)
def _qsofa_result(rr: bool | None, sbp: bool | None, mentation: bool | None) -> QsofaResult | None:
    evaluated = (("rr", rr), ("sbp", sbp), ("mentation", mentation))
    if rr is None and sbp is None and mentation is None:
        return None
    met = tuple(n for n, m in evaluated if m)
    missing = tuple(n for n, m in evaluated if m is None)
    return QsofaResult(score=len(met), positive=len(met) >= QSOFA_POSITIVE,
                       complete=not missing, missing=missing, met=met)


def score_qsofa(
    *, rr: float | None, sbp: float | None, consciousness: Consciousness | None
) -> QsofaResult | None:
    """``qsofa(rr=, sbp=, consciousness=)``, memoised; None when nothing can be evaluated."""
    return _qsofa_result(
        None if rr is None else _qsofa_met("rr", rr),
        None if sbp is None else _qsofa_met("sbp", sbp),
        None if consciousness is None else _qsofa_met(_CONSC, consciousness),
    )


# --- one reading -------------------------------------------------------------------------

def _absorb(st: PatientState, r: Reading) -> None:
    """Merge a reading into the carried-forward state: per parameter, the newest wins.

    Keys are the ``Vital`` members themselves (a ``StrEnum``: equal to, and hashed like,
    their wire names, which is what they become after a JSON round trip).
    """
    ts = r.ts
    carried, off = st.carried, st.off
    for vital, value in r.values.items():
        cur = carried.get(vital)
        if cur is not None:
            if cur[1] > ts:
                continue
        elif off and vital in off:
            if off[vital] > ts:
                continue
            del off[vital]
        carried[vital] = [value, ts]
    for vital in r.sensors_off:
        cur = carried.get(vital)
        if cur is not None:
            if cur[1] > ts:
                continue
            del carried[vital]
        elif off.get(vital, ts) > ts:
            continue
        off[vital] = ts
    if r.consciousness is not None:
        cur = carried.get(_CONSC)
        if cur is None or cur[1] <= ts:
            carried[_CONSC] = [r.consciousness.value, ts]
    if r.o2_supplemental is not None:
        cur = carried.get(_O2)
        if cur is None or cur[1] <= ts:
            carried[_O2] = [r.o2_supplemental, ts]


def _expire(st: PatientState, now_ts: int) -> None:
    validity = _VALIDITY_MS
    carried = st.carried
    stale = [k for k, v in carried.items() if now_ts - v[1] > validity[k]]
    for k in stale:
        del carried[k]
    if st.off:
        for k in [k for k, ts in st.off.items() if now_ts - ts > validity[k]]:
            del st.off[k]


_NO_VITALS: frozenset[Vital] = frozenset()


def _snapshot(st: PatientState, ts: int, spo2_scale: int) -> Snapshot:
    values: dict[Vital, float] = {}
    o2 = consciousness = None
    vitals = _VITAL
    for key, entry in st.carried.items():
        vital = vitals.get(key)
        if vital is not None:
            values[vital] = entry[0]
        elif key == _CONSC:
            consciousness = _CONSCIOUSNESS[entry[0]]
        else:
            o2 = entry[0]
    hr = values.get(Vital.HR)
    if hr is not None:
        pulse, pulse_source = hr, Vital.HR
    else:
        pulse = values.get(Vital.PULSE)
        pulse_source = Vital.PULSE if pulse is not None else None
    rr = values.get(Vital.RR)
    sbp = values.get(Vital.SBP)
    return Snapshot(
        ts, values, frozenset(_VITAL[k] for k in st.off) if st.off else _NO_VITALS,
        o2, consciousness,
        score_news2(rr=rr, spo2=values.get(Vital.SPO2), spo2_scale=spo2_scale,
                    o2_supplemental=o2, sbp=sbp, pulse=pulse, consciousness=consciousness,
                    temp=values.get(Vital.TEMP)),
        score_qsofa(rr=rr, sbp=sbp, consciousness=consciousness),
        pulse_source,
    )


def _measured(r: Reading) -> set[str]:
    """What a reading measured: its values, its sensors off, its charted observations."""
    measured: set[str] = {*r.values, *r.sensors_off}
    if r.consciousness is not None:
        measured.add(_CONSC)
    if r.o2_supplemental is not None:
        measured.add(_O2)
    return measured


def _confirmed(rule: Rule, snap: Snapshot, r: Reading) -> bool:
    """The reading freshly measured a continuous parameter the condition rests on, or the
    condition rests on none (see "artefact protection" in ``rules``)."""
    continuous = rule.evidence(snap) & CONTINUOUS  # type: ignore[misc]
    return not continuous or not continuous.isdisjoint(_measured(r))


def _change(event: Literal["raised", "cleared"], rule: Rule, alert: dict[str, Any],
            values: dict[str, float | None], reading_ts: int) -> AlertChange:
    return AlertChange(event=event, alert_id=alert["id"], rule=rule.id,
                       priority=rule.priority, message=alert["message"], values=values,
                       reading_ts=reading_ts, onset_ts=alert["onset"])


def _evaluate(st: PatientState, snap: Snapshot, r: Reading, cfg: AlertingSettings,
              persist_ms: float, clear_ms: float, out: list) -> None:
    """Apply every reading-driven rule group to one in-order reading."""
    ts = r.ts
    conds, active = st.conds, st.active
    groups = VALUE_GROUPS
    if snap.sensors_off or not SENSOR_OFF_RULE_IDS.isdisjoint(conds):
        groups += SENSOR_OFF_GROUPS  # (an active rule always has an entry in conds)
    for group in groups:
        current: Rule | None = None  # the group's active rule
        eligible: Rule | None = None  # its most severe rule ready to raise
        for rule in group:
            rid = rule.id
            holds = rule.condition(snap, cfg)  # type: ignore[misc]
            tr = conds.get(rid)
            if holds:
                if tr is None or tr[0] is None:
                    tr = conds[rid] = [ts, None]
                else:
                    tr[1] = None
                if rid in active:
                    current = rule
                elif (eligible is None and ts - tr[0] >= persist_ms
                      and _confirmed(rule, snap, r)):
                    eligible = rule
            elif rid in active:
                current = rule
                if tr is None:
                    conds[rid] = [None, ts]
                else:
                    tr[0] = None
                    if tr[1] is None:
                        tr[1] = ts
            elif tr is not None:
                del conds[rid]
        if current is None and eligible is None:
            continue
        if current is not None:
            tr = conds[current.id]
            if tr[1] is not None and ts - tr[1] >= clear_ms:
                out.append(_change("cleared", current, active.pop(current.id),
                                   current.values(snap), ts))  # type: ignore[misc]
                del conds[current.id]
                current = None
        if eligible is not None and (current is None or eligible.rank > current.rank):
            onset = conds[eligible.id][0]
            alert = {"id": alert_id(st.patient_id, eligible.id, onset), "onset": onset,
                     "message": eligible.message(snap, cfg)}  # type: ignore[misc]
            active[eligible.id] = alert
            out.append(_change("raised", eligible, alert,
                               eligible.values(snap), ts))  # type: ignore[misc]
            if current is not None:  # superseded by a more severe rule of its group
                out.append(_change("cleared", current, active.pop(current.id),
                                   current.values(snap), ts))  # type: ignore[misc]
                # its condition counts as restarting now (a later re-raise gets a new id)
                if conds[current.id][0] is not None:
                    conds[current.id] = [ts, None]
                else:
                    del conds[current.id]


def process(
    state: PatientState,
    readings: Sequence[Reading],
    *,
    admission: Admission | None,
    now_ms: int,
    cfg: AlertingSettings,
) -> tuple[PatientState, list[ScoredReading | AlertChange | Duplicate]]:
    """Process a micro-batch of one patient's accepted readings (module docstring).

    ``admission`` gives the NEWS2 SpO2 scale (scale 1 when None). Returns the new state
    (``state`` itself is not modified) and the results in processing order.
    """
    st = state.copy()
    scale = admission.spo2_scale if admission is not None else 1
    persist_ms = cfg.persistence_seconds * 1000
    clear_ms = cfg.clear_seconds * 1000
    out: list[ScoredReading | AlertChange | Duplicate] = []
    measured = False
    memory_ms = cfg.device_memory_seconds * 1000
    window_ms = cfg.duplicate_window_seconds * 1000
    for r in sorted(readings, key=lambda x: (x.ts, x.seq)):
        dev = st.devices.get(r.device_id)
        if dev is not None and now_ms - dev[2] >= memory_ms:
            dev = None  # forgotten: whatever comes next starts a new memory
        if dev is None:
            st.devices[r.device_id] = [r.seq, r.ts, now_ms]
        elif r.seq > dev[0]:  # the counter went on (the clock may have stepped back)
            st.devices[r.device_id] = [r.seq, max(dev[1], r.ts), now_ms]
        elif r.ts > dev[1]:  # a lower seq, later: the counter restarted, a new epoch
            st.devices[r.device_id] = [r.seq, r.ts, now_ms]
        elif r.ts >= dev[1] - window_ms:
            detail = f"device {r.device_id} seq {r.seq} at ts {r.ts} already received"
            if r.seq < dev[0] or r.ts < dev[1]:
                detail += f" (newest: seq {dev[0]}, ts {dev[1]})"
            out.append(Duplicate(r, Rejection(RejectReason.DUPLICATE, detail)))
            continue
        else:  # older than the window: a late reading; the memory stays as it is
            dev[2] = now_ms
        in_order = st.last_ts is None or r.ts >= st.last_ts
        if in_order:
            st.last_ts = r.ts
        _absorb(st, r)
        _expire(st, st.last_ts)  # type: ignore[arg-type]
        snap = _snapshot(st, r.ts, scale)
        out.append(ScoredReading(r, snap.news2, snap.qsofa, snap.values))
        if r.measured:
            measured = True
            if _STALE in st.active:  # a measurement proves the bed is connected again
                out.append(_change("cleared", STALE_RULE, st.active.pop(_STALE), {}, r.ts))
        if in_order:
            _evaluate(st, snap, r, cfg, persist_ms, clear_ms, out)
    if measured:
        st.last_wall_ms = now_ms
    _forget_devices(st, now_ms, cfg)
    return st, out


def _forget_devices(st: PatientState, now_ms: int, cfg: AlertingSettings) -> None:
    """Drop devices whose memory expired, and all but the most recent
    ``cfg.max_devices_per_patient`` (a sender inventing device ids cannot grow the state)."""
    memory_ms = cfg.device_memory_seconds * 1000
    devices = st.devices
    for device in [d for d, (_, _, wall) in devices.items() if now_ms - wall >= memory_ms]:
        del devices[device]
    extra = len(devices) - cfg.max_devices_per_patient
    if extra > 0:
        for device in sorted(devices, key=lambda d: devices[d][2])[:extra]:
            del devices[device]


def stale_due_ms(state: PatientState, cfg: AlertingSettings) -> int | None:
    """Wall time (ms) at which ``on_timeout`` would raise ``stale_signal`` for this
    state, or ``None`` if it would not (nothing accepted yet, or already stale)."""
    if state.last_wall_ms is None or _STALE in state.active:
        return None
    return state.last_wall_ms + int(cfg.stale_after_seconds * 1000)


def on_timeout(
    state: PatientState, *, admission: Admission | None, now_ms: int, cfg: AlertingSettings
) -> tuple[PatientState, list[AlertChange]]:
    """The patient sent nothing for a while: raise ``stale_signal`` (module docstring)."""
    st = state.copy()
    out: list[AlertChange] = []
    _forget_devices(st, now_ms, cfg)
    reading_ts = st.last_ts if st.last_ts is not None else now_ms
    if admission is None:  # no longer admitted: nothing may stay active
        for rid in sorted(st.active):
            alert = st.active[rid]
            out.append(_change("cleared", RULES_BY_ID[rid], alert, {}, reading_ts))
        st.active.clear()
        st.conds.clear()
        return st, out
    if st.last_wall_ms is None or _STALE in st.active:
        return st, out
    silent_ms = now_ms - st.last_wall_ms
    if silent_ms < cfg.stale_after_seconds * 1000:
        return st, out
    onset = reading_ts
    if st.last_stale_onset is not None and onset <= st.last_stale_onset:
        onset = st.last_stale_onset + 1  # only late readings since the last one: keep ids unique
    st.last_stale_onset = onset
    alert = {"id": alert_id(st.patient_id, _STALE, onset), "onset": onset,
             "message": stale_message(silent_ms / 1000)}
    st.active[_STALE] = alert
    out.append(_change("raised", STALE_RULE, alert, {"silent_s": silent_ms / 1000},
                       reading_ts))
    return st, out

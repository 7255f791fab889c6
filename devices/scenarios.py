"""Named clinical scenarios: what a simulated patient's physiology does over time.

A scenario is a small pure function ``scenario(t, base) -> Physiology`` of the time ``t``
in seconds since the scenario's onset (negative before it) and of the patient's own
``Baseline``. It returns the noise-free *truth*: the generator (``devices.generator``)
adds slow drift and measurement noise from a seeded RNG, rounds as a monitor displays,
and decides which values go into which message. Units are those of
``backend.vitals.VITALS`` (bpm, %, /min, mmHg, °C; LOINC codes there).

Before its onset (``t < 0``) every scenario is the patient's baseline. After it:

``stable``
    the baseline, for ever (drift and noise only).
``tachycardia``
    every 60 min: HR rises to 150/min in 3 min (pulse 138: the deficit of fast atrial
    fibrillation), RR +4; holds 20 min; rate control brings it back in 5 min.
``desaturation``
    every 45 min: SpO2 falls to 84 % in 4 min, RR +8, HR +15; at 10 min the nurse puts
    on oxygen (``o2_supplemental``), SpO2 recovers to 95 % in 4 min; oxygen off at 30 min.
``hypotension``
    every 60 min: SBP falls to 78 / DBP 42 mmHg (MAP ~54) in 8 min, HR +20 to
    compensate; holds 12 min; a fluid bolus restores the baseline over 10 min.
``sepsis``
    a deterioration over tens of minutes that does not recover (keyframes in
    ``SEPSIS_KEYFRAMES``): fever first (39.4 °C by 20 min), HR to 100/min, then RR rises
    steeply to 28/min at 23.5-28.5 min, HR to 140/min at 33.5-39.5 min, BP falls from
    40 min (SBP 86 mmHg at 75 min), SpO2 falls from 45 min (90 % at 80 min), new
    confusion at 75 min, oxygen from 80 min. Values are absolute, not relative to the
    baseline (they blend from it over the first 5 min), so NEWS2 (scale 1, pulse = HR)
    crosses its thresholds at known times after onset. Noise-free: 1 at 6 min, 2 at
    6.5 (temp 38.1), 3 at 16.5 (temp 39.1), **5 at 25.1 min** (RR 21), 6 at 27 (RR 25),
    **7 at 35.1 min** (HR 111), 8 at 38 (HR 131), then 9-19 between 51 and 80 min (BP,
    SpO2, confusion, oxygen). The two crossings are made by steep changes of parameters
    sent every second while the others sit mid-band, so with the generator's drift and
    noise the 1-minute median of NEWS2 still crosses 5 at 25 +/- 1 min and 7 at
    35 +/- 1 min after onset (checked over 30 seeds; single readings flicker earlier).
``sensor_disconnect``
    every 10 min the SpO2 probe is off for 90 s (spo2 and pulse read 0). In the second
    cycle of every three the ECG leads are off as well for 60 s (hr and rr read 0), and
    in the third the monitor sends nothing at all for 45 s (longer than the stale-bed
    alarm's 30 s) from 5 min into the cycle.
``motion_artefact``
    every 3 min a burst of 5 s of movement: the pulse oximeter reads 251-275/min (above
    its plausible range), the ECG counts 185-209/min, SpO2 reads 4 % low. Physiology is
    the baseline: no alarm should be raised by these bursts.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from backend.messages import Consciousness
from backend.vitals import Vital

MIN = 60.0  # seconds


@dataclass(frozen=True, slots=True)
class Baseline:
    """A patient's resting values: all within the NEWS2 0-point bands (scale 1)."""

    hr: float = 76.0
    rr: float = 15.0
    spo2: float = 97.0
    sbp: float = 124.0
    dbp: float = 72.0
    temp: float = 36.9

    @classmethod
    def draw(cls, rng: random.Random) -> Baseline:
        sbp = rng.uniform(112, 140)
        return cls(
            hr=rng.uniform(60, 85),
            rr=rng.uniform(13, 18),
            spo2=rng.uniform(96, 99),
            sbp=sbp,
            dbp=sbp * rng.uniform(0.52, 0.62),
            temp=rng.uniform(36.4, 37.4),
        )


@dataclass(frozen=True, slots=True)
class Physiology:
    """The truth at one instant, and what the sensors can see of it.

    ``pulse`` is the pulse-oximeter rate; ``None`` means equal to ``hr``. ``off`` lists
    sensors that read 0 (probe off, leads off); ``silent`` means the monitor sends no
    message at all; ``artefact`` holds values the monitor shows instead of the truth.
    """

    hr: float
    rr: float
    spo2: float
    sbp: float
    dbp: float
    temp: float
    pulse: float | None = None
    consciousness: Consciousness = Consciousness.ALERT
    o2_supplemental: bool = False
    off: frozenset[Vital] = frozenset()
    silent: bool = False
    artefact: Mapping[Vital, float] = field(default_factory=dict)

    @property
    def map(self) -> float:
        return (self.sbp + 2 * self.dbp) / 3


Scenario = Callable[[float, Baseline], Physiology]


def ramp(t: float, t0: float, t1: float, a: float, b: float) -> float:
    """``a`` before ``t0``, ``b`` after ``t1``, linear in between."""
    if t <= t0:
        return a
    if t >= t1:
        return b
    return a + (b - a) * (t - t0) / (t1 - t0)


def keyframes(t: float, points: tuple[tuple[float, float], ...]) -> float:
    """Piecewise-linear through ``(time, value)`` points, constant outside them."""
    times = [p[0] for p in points]
    i = bisect.bisect_right(times, t)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (t0, a), (t1, b) = points[i - 1], points[i]
    return a + (b - a) * (t - t0) / (t1 - t0)


def _episode(t: float, up: float, hold: float, down: float) -> float:
    """0 -> 1 over ``up`` s, 1 for ``hold`` s, -> 0 over ``down`` s (t from episode start)."""
    if t < 0:
        return 0.0
    if t < up:
        return t / up
    if t < up + hold:
        return 1.0
    return max(0.0, 1.0 - (t - up - hold) / down)


def _base(b: Baseline, **changes: object) -> Physiology:
    p = Physiology(hr=b.hr, rr=b.rr, spo2=b.spo2, sbp=b.sbp, dbp=b.dbp, temp=b.temp)
    return replace(p, **changes) if changes else p


def stable(t: float, base: Baseline) -> Physiology:
    return _base(base)


def tachycardia(t: float, base: Baseline) -> Physiology:
    if t < 0:
        return _base(base)
    w = _episode(t % (60 * MIN), 3 * MIN, 20 * MIN, 5 * MIN)
    hr = base.hr + (150 - base.hr) * w
    pulse = hr - (hr - base.hr) * 12 / (150 - base.hr)
    return _base(base, hr=hr, pulse=pulse, rr=base.rr + 4 * w)


def desaturation(t: float, base: Baseline) -> Physiology:
    if t < 0:
        return _base(base)
    c = t % (45 * MIN)
    fall = _episode(c, 4 * MIN, 6 * MIN, 4 * MIN)  # 0..1 how desaturated
    if c < 10 * MIN:
        spo2 = base.spo2 + (84 - base.spo2) * fall
    else:  # on oxygen: recovers towards 95 % (not quite baseline while ill)
        spo2 = ramp(c, 10 * MIN, 14 * MIN, 84, min(95.0, base.spo2))
        spo2 = ramp(c, 25 * MIN, 30 * MIN, spo2, base.spo2)
    return _base(base, spo2=spo2, rr=base.rr + 8 * fall, hr=base.hr + 15 * fall,
                 o2_supplemental=10 * MIN <= c < 30 * MIN)


def hypotension(t: float, base: Baseline) -> Physiology:
    if t < 0:
        return _base(base)
    w = _episode(t % (60 * MIN), 8 * MIN, 12 * MIN, 10 * MIN)
    return _base(base, sbp=base.sbp + (78 - base.sbp) * w, dbp=base.dbp + (42 - base.dbp) * w,
                 hr=base.hr + 20 * w)


# Minutes after onset -> value. Designed against the NEWS2 bands (see module docstring).
SEPSIS_KEYFRAMES: dict[str, tuple[tuple[float, float], ...]] = {
    "temp": ((0, 37.4), (20, 39.4), (90, 39.6)),
    "hr": ((0, 84), (15, 100), (33.5, 100), (39.5, 140), (90, 140)),
    "rr": ((0, 16), (10, 17), (23.5, 17), (28.5, 28), (90, 30)),
    "sbp": ((0, 124), (40, 122), (75, 86), (90, 84)),
    "dbp": ((0, 74), (40, 72), (75, 48), (90, 46)),
    "spo2": ((0, 97.5), (45, 97.5), (80, 90), (90, 89)),
}
SEPSIS_BLEND_MIN = 5.0
SEPSIS_CONFUSION_MIN = 75.0
SEPSIS_OXYGEN_MIN = 80.0


def sepsis(t: float, base: Baseline) -> Physiology:
    if t < 0:
        return _base(base)
    m = t / MIN
    w = min(1.0, m / SEPSIS_BLEND_MIN)
    v = {
        name: getattr(base, name) + (keyframes(m, points) - getattr(base, name)) * w
        for name, points in SEPSIS_KEYFRAMES.items()
    }
    return Physiology(
        **v,
        consciousness=(Consciousness.CONFUSION if m >= SEPSIS_CONFUSION_MIN
                       else Consciousness.ALERT),
        o2_supplemental=m >= SEPSIS_OXYGEN_MIN,
    )


_PROBE = frozenset({Vital.SPO2, Vital.PULSE})
_LEADS = frozenset({Vital.HR, Vital.RR})


def sensor_disconnect(t: float, base: Baseline) -> Physiology:
    if t < 0:
        return _base(base)
    cycle, c = divmod(t, 10 * MIN)
    off: frozenset[Vital] = _PROBE if c < 90 else frozenset()
    kind = int(cycle) % 3
    if kind == 1 and 5 * MIN <= c < 6 * MIN:
        off = off | _LEADS
    silent = kind == 2 and 5 * MIN <= c < 5 * MIN + 45
    return _base(base, off=off, silent=silent)


def motion_artefact(t: float, base: Baseline) -> Physiology:
    if t < 0:
        return _base(base)
    cycle, c = divmod(t, 3 * MIN)
    if c >= 5:
        return _base(base)
    k = (int(cycle) * 3 + int(c)) % 5
    return _base(base, artefact={
        Vital.PULSE: 251.0 + 6 * k,
        Vital.HR: 185.0 + 6 * ((k + 2) % 5),
        Vital.SPO2: max(0.0, base.spo2 - 4),
    })


SCENARIOS: dict[str, Scenario] = {
    "stable": stable,
    "tachycardia": tachycardia,
    "desaturation": desaturation,
    "sepsis": sepsis,
    "hypotension": hypotension,
    "sensor_disconnect": sensor_disconnect,
    "motion_artefact": motion_artefact,
}


def describe() -> dict[str, str]:
    """Scenario name -> its one-paragraph description (from this module's docstring)."""
    doc = (__doc__ or "").split("\n")
    out: dict[str, str] = {}
    current: str | None = None
    for line in doc:
        if line.startswith("``") and line.rstrip().endswith("``") and line.strip("`") in SCENARIOS:
            current = line.strip("`")
            out[current] = ""
        elif current and line.startswith("    "):
            out[current] = (out[current] + " " + line.strip()).strip()
        elif current and not line.strip():
            current = None
    return out

"""Simulated ICU patients: a pure, seeded generator of device readings.

``plan_patients(cfg)`` decides who lies where (ward, bed, scenario, onset, baseline,
age, sex, home county, pseudonymous label); ``generate(cfg)`` yields their readings as
``(patient_id, DeviceReading)`` in device-time order. Nothing here touches Kafka,
Cassandra or the clock: the same ``GeneratorConfig`` (seed included) gives the same
messages, byte for byte. The CLI (``devices.simulate_cli``) registers the admissions and
publishes.

What a simulated monitor sends (units and LOINC codes: ``backend.vitals.VITALS``):

* every ``1/rate_hz`` s: ``hr``, ``pulse``, ``spo2``, ``rr`` and, for a patient with an
  arterial line, ``sbp``/``dbp``/``map``. Patients are staggered evenly over the sampling
  period so the aggregate stream is smooth (patient *i* of *n* samples at
  ``start + k/rate + i/(n*rate)``).
* non-invasive BP (patients without an arterial line; 40 % of those whose scenario does
  not need one): a cuff reading every ``nibp_every_s`` (15 min), in that one message.
  Sepsis and hypotension patients always have an arterial line.
* ``temp`` every ``temp_every_s`` (4 min), as a monitor's temperature probe is read out.
* ``consciousness`` (ACVPU) and ``o2_supplemental`` as a nurse charts them: in the first
  message, every ``chart_every_s`` (15 min), and as soon as the scenario changes them.

On top of the scenario's truth (``devices.scenarios``) each parameter gets a slow drift
(an Ornstein-Uhlenbeck process: HR sd 3/min, RR 1, SpO2 0.6, SBP 4, DBP 2.5 mmHg, temp
0.1 °C; time constant 10 min, 30 min for temperature) and white measurement noise, and
is rounded to the decimals a monitor displays. A sensor that is off reads 0 (as real
monitors and the MIMIC numerics do); a silent monitor sends nothing and its ``seq``
does not advance.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from backend.admission import Admission
from backend.messages import DeviceReading
from backend.population.catchment import Catchment
from backend.vitals import VITALS, Vital
from devices.regions import draw_fips
from devices.scenarios import SCENARIOS, Baseline
from devices.wire import Record, SeqCounter, bed_label, stable_rng

# The six abnormal scenarios, one patient each, when no mix is given.
DEFAULT_MIX: dict[str, int] = {
    "sepsis": 1, "desaturation": 1, "tachycardia": 1, "hypotension": 1,
    "sensor_disconnect": 1, "motion_artefact": 1,
}
_NEEDS_ART_LINE = frozenset({"sepsis", "hypotension"})

# (drift sd, drift time constant s, white-noise sd) per parameter.
_NOISE: dict[str, tuple[float, float, float]] = {
    "hr": (3.0, 600.0, 1.2),
    "rr": (1.0, 600.0, 0.8),
    "spo2": (0.6, 600.0, 0.5),
    "sbp": (4.0, 600.0, 2.0),
    "dbp": (2.5, 600.0, 1.5),
    "temp": (0.1, 1800.0, 0.05),
}
_PULSE_NOISE = 1.5


def parse_mix(spec: str | None) -> dict[str, int] | None:
    """``"sepsis=2,desaturation=2"`` -> ``{"sepsis": 2, "desaturation": 2}``.

    Counts of patients per scenario; the remaining patients are ``stable``. ``None`` or
    ``""`` means the default mix (one patient of each abnormal scenario).
    """
    if not spec:
        return None
    mix: dict[str, int] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, count = part.partition("=")
        name = name.strip()
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        n = int(count) if count else 1
        if n < 0:
            raise ValueError(f"negative count for {name}")
        mix[name] = mix.get(name, 0) + n
    return mix


def ward_names(n: int, prefix: str = "ICU-") -> list[str]:
    """``ICU-A``, ``ICU-B``, ... (``ICU-27`` onwards past Z)."""
    return [f"{prefix}{chr(ord('A') + i) if i < 26 else i + 1}" for i in range(n)]


@dataclass(frozen=True)
class GeneratorConfig:
    start_ms: int
    patients: int = 8
    wards: int = 1
    beds_per_ward: int | None = None  # default: just enough for the patients
    rate_hz: float = 1.0
    duration_s: float | None = None  # None: for ever
    scenario_mix: Mapping[str, int] | None = None
    seed: int = 0
    catchment: Catchment = field(default_factory=lambda: Catchment.parse(None))
    temp_every_s: float = 240.0
    nibp_every_s: float = 900.0
    chart_every_s: float = 900.0
    onset_range_s: tuple[float, float] = (60.0, 300.0)
    arterial_line_fraction: float = 0.6
    ward_prefix: str = "ICU-"
    id_prefix: str = "sim"
    boot: str = "0"
    source: str = "simulator"

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ValueError("patients must be >= 1")
        if self.wards < 1:
            raise ValueError("wards must be >= 1")
        if not self.rate_hz > 0:
            raise ValueError("rate must be > 0")
        if self.beds_per_ward is not None and self.beds_per_ward * self.wards < self.patients:
            raise ValueError(f"{self.patients} patients do not fit in {self.wards} wards "
                             f"of {self.beds_per_ward} beds")
        mix = self.scenario_mix
        if mix is not None:
            unknown = set(mix) - set(SCENARIOS)
            if unknown:
                raise ValueError(f"unknown scenarios {sorted(unknown)}")
            if sum(mix.values()) > self.patients:
                raise ValueError(f"scenario mix has {sum(mix.values())} patients, "
                                 f"more than --patients {self.patients}")


@dataclass(frozen=True)
class PatientPlan:
    index: int
    patient_id: str
    device_id: str
    ward: str
    bed: str
    scenario: str
    onset_s: float  # scenario onset, seconds after the start
    baseline: Baseline
    arterial_line: bool
    age: int
    sex: str
    home_fips: str
    label: str

    def admission(self, admitted_ts: int, source: str = "simulator") -> Admission:
        return Admission(
            patient_id=self.patient_id, ward=self.ward, bed=self.bed, label=self.label,
            age=self.age, sex=self.sex, home_fips=self.home_fips, spo2_scale=1,
            admitted_ts=admitted_ts, source=f"{source}/{self.scenario}",
        )


def _scenario_list(cfg: GeneratorConfig) -> list[str]:
    mix = cfg.scenario_mix
    if mix is None:
        names = [name for name, n in DEFAULT_MIX.items() for _ in range(n)][: cfg.patients]
    else:
        names = [name for name, n in mix.items() for _ in range(n)]
    names += ["stable"] * (cfg.patients - len(names))
    stable_rng("mix", cfg.seed).shuffle(names)  # spread them over wards and beds
    return names


def plan_patients(cfg: GeneratorConfig) -> list[PatientPlan]:
    """Who lies where, with which scenario: a pure function of ``cfg``."""
    wards = ward_names(cfg.wards, cfg.ward_prefix)
    scenarios = _scenario_list(cfg)
    plans = []
    for i in range(cfg.patients):
        ward = wards[i % cfg.wards]
        bed = str(i // cfg.wards + 1)
        pid = f"{cfg.id_prefix}-{cfg.seed}-{i + 1:04d}"
        rng = stable_rng("patient", cfg.seed, i)
        scenario = scenarios[i]
        art = scenario in _NEEDS_ART_LINE or rng.random() < cfg.arterial_line_fraction
        plans.append(PatientPlan(
            index=i, patient_id=pid, device_id=f"mon-{ward}-{bed}.{cfg.boot}", ward=ward,
            bed=bed, scenario=scenario, onset_s=rng.uniform(*cfg.onset_range_s),
            baseline=Baseline.draw(rng), arterial_line=art,
            age=round(rng.triangular(18, 95, 68)), sex="F" if rng.random() < 0.43 else "M",
            home_fips=draw_fips(cfg.catchment, cfg.seed, pid), label=bed_label(bed, rng),
        ))
    return plans


_NAMES = ("hr", "rr", "spo2", "sbp", "dbp", "temp")
_BLOCK = 32
HR, PULSE, SPO2, RR = Vital.HR, Vital.PULSE, Vital.SPO2, Vital.RR
SBP, DBP, MAP, TEMP = Vital.SBP, Vital.DBP, Vital.MAP, Vital.TEMP
_TEMP_DECIMALS = VITALS[Vital.TEMP].decimals


class _Monitor:
    """The per-patient state of the generator: RNG, drift, counters, charting.

    Drift and noise are drawn in blocks of ``_BLOCK`` samples from a NumPy generator
    seeded by (seed, patient index): the same patient gets the same noise whatever
    else is simulated.
    """

    __slots__ = ("_drift", "_err", "_j", "_np", "_ou", "_pulse_err", "cfg", "last_chart",
                 "next_chart_s", "next_nibp_s", "next_temp_s", "plan", "scenario", "seq")

    def __init__(self, plan: PatientPlan, cfg: GeneratorConfig) -> None:
        self.plan = plan
        self.cfg = cfg
        self.scenario = SCENARIOS[plan.scenario]
        self._np = np.random.default_rng([cfg.seed & 0xFFFFFFFF, plan.index, 0x5EED])
        self.seq = SeqCounter()
        dt = 1.0 / cfg.rate_hz
        # OU update: x <- a*x + b*N(0,1), with stationary sd = the drift sd
        self._ou = [
            (math.exp(-dt / tau), sd * math.sqrt(1 - math.exp(-2 * dt / tau)), noise)
            for sd, tau, noise in (_NOISE[name] for name in _NAMES)
        ]
        self._drift = [float(x) * _NOISE[name][0]
                       for name, x in zip(_NAMES, self._np.standard_normal(len(_NAMES)),
                                          strict=True)]
        self._err: list[list[float]] = []
        self._pulse_err: list[float] = []
        self._j = _BLOCK
        self.next_temp_s = 0.0
        self.next_nibp_s = float(self._np.random()) * cfg.nibp_every_s * 0.5
        self.next_chart_s = 0.0
        self.last_chart: tuple | None = None

    def _refill(self) -> None:
        rows = self._np.standard_normal((2 * len(_NAMES) + 1, _BLOCK)).tolist()
        errs = []
        for i, (a, b, noise) in enumerate(self._ou):
            d = self._drift[i]
            innovations, white = rows[i], rows[len(_NAMES) + i]
            out = [0.0] * _BLOCK
            for j in range(_BLOCK):
                d = a * d + b * innovations[j]
                out[j] = d + noise * white[j]
            self._drift[i] = d
            errs.append(out)
        self._err = errs
        self._pulse_err = [x * _PULSE_NOISE for x in rows[-1]]
        self._j = 0

    def sample(self, t_s: float, ts: int) -> DeviceReading | None:
        plan, cfg = self.plan, self.cfg
        p = self.scenario(t_s - plan.onset_s, plan.baseline)
        if self._j >= _BLOCK:
            self._refill()
        j = self._j
        self._j = j + 1
        e = self._err
        hr = p.hr + e[0][j]
        pulse = (hr if p.pulse is None else p.pulse + e[0][j]) + self._pulse_err[j]
        rr = p.rr + e[1][j]
        spo2 = min(100.0, p.spo2 + e[2][j])
        sbp = p.sbp + e[3][j]
        dbp = min(p.dbp + e[4][j], sbp - 10)
        if p.silent:
            return None
        vitals: dict[Vital, float] = {
            HR: float(round(hr)), PULSE: float(round(pulse)),
            SPO2: float(round(spo2)), RR: float(round(max(rr, 1.0))),
        }
        bp = plan.arterial_line
        if not bp and t_s >= self.next_nibp_s:
            bp = True
            self.next_nibp_s += cfg.nibp_every_s
        if bp:
            vitals[SBP] = float(round(sbp))
            vitals[DBP] = float(round(dbp))
            vitals[MAP] = float(round((sbp + 2 * dbp) / 3))
        if t_s >= self.next_temp_s:
            vitals[TEMP] = round(p.temp + e[5][j], _TEMP_DECIMALS)
            self.next_temp_s += cfg.temp_every_s
        if p.artefact:
            for vital, value in p.artefact.items():
                if vital in vitals:
                    vitals[vital] = float(round(value))
        for vital in p.off:
            if vital in vitals:
                vitals[vital] = 0.0
        chart = (p.consciousness, p.o2_supplemental)
        charted = t_s >= self.next_chart_s or chart != self.last_chart
        if charted:
            self.last_chart = chart
            self.next_chart_s = t_s + cfg.chart_every_s
        return DeviceReading(
            device_id=plan.device_id, seq=self.seq(), patient_id=plan.patient_id,
            ward=plan.ward, bed=plan.bed, ts=ts, vitals=vitals,
            consciousness=chart[0] if charted else None,
            o2_supplemental=chart[1] if charted else None,
            source=cfg.source,
        )


def generate(cfg: GeneratorConfig, plans: list[PatientPlan] | None = None) -> Iterator[Record]:
    """Every patient's readings, ``(patient_id, DeviceReading)``, ordered by ``ts``.

    Runs for ``cfg.duration_s`` seconds of device time (for ever if ``None``). ``plans``
    may be a subset of ``plan_patients(cfg)``: each patient's readings are the same as in
    the full run (its noise and its place in the stagger depend on its index only).
    """
    plans = plans if plans is not None else plan_patients(cfg)
    monitors = sorted((_Monitor(p, cfg) for p in plans), key=lambda m: m.plan.index)
    period_ms = 1000.0 / cfg.rate_hz
    offsets = [m.plan.index * period_ms / cfg.patients for m in monitors]
    end_ms = None if cfg.duration_s is None else cfg.duration_s * 1000.0
    k = 0
    while True:
        base = k * period_ms
        for mon, off in zip(monitors, offsets, strict=True):
            rel = base + off
            if end_ms is not None and rel >= end_ms:
                return
            reading = mon.sample(rel / 1000.0, cfg.start_ms + round(rel))
            if reading is not None:
                yield mon.plan.patient_id, reading
        k += 1

"""A seeded ICU *history* for the population view, its benchmark and the demo: weeks of
admissions and alerts written straight into Cassandra (the tables the stream job and the
census fill), without replaying every vital sign.

Model (documented, seeded by ``seed``): ``wards`` wards of ``beds_per_ward`` beds; each bed
is refilled after an empty gap of 0-12 h; stays last 12 h + an exponential with mean
``mean_stay_days``; home counties come from the catchment (``devices.regions``); each
patient-day raises a Poisson(``alerts_per_patient_day``) number of alerts with the rule
mix below, 85 % of them acknowledged after a log-normal delay (median 90 s). A *surge*
adds ``surge_extra`` admissions a day from ``surge_county`` over the last
``surge_days`` days (extra beds of ward ``<ward>-surge``), so the detector has
something to find.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from backend.alerting.status import AlertStatus
from backend.population.catchment import Catchment
from backend.storage import census
from backend.storage.alerts import AlertStore, HistoricAlert
from backend.storage.cassandra import Session
from backend.storage.statements import store
from devices.regions import draw_fips
from devices.wire import stable_rng

RULE_MIX = (("news2_high", "high", 0.10), ("news2_medium", "medium", 0.20),
            ("news2_red_flag", "low", 0.15), ("qsofa_positive", "medium", 0.10),
            ("ref_hr_high", "medium", 0.15), ("ref_spo2_low", "high", 0.10),
            ("sensor_off_spo2", "low", 0.20))


@dataclass(frozen=True, slots=True)
class HistorySpec:
    days: int = 30
    wards: int = 10
    beds_per_ward: int = 20
    mean_stay_days: float = 3.0
    alerts_per_patient_day: float = 6.0
    seed: int = 7
    surge_county: str | None = "25009"
    surge_days: int = 4
    surge_extra: int = 6


def _poisson(rng, lam: float) -> int:
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def generate(spec: HistorySpec, end: datetime, catchment: Catchment | None = None
             ) -> tuple[list[tuple], list[tuple]]:
    """(stays, alerts): stays are (patient_id, ward, bed, fips, admitted, discharged|None),
    alerts (alert_id, patient_id, ward, bed, rule, priority, detected, ack_ts|None)."""
    catchment = catchment or Catchment.parse(None)
    start = end - timedelta(days=spec.days)
    stays: list[tuple] = []
    n = 0
    for w in range(spec.wards):
        ward = f"icu-{w + 1:02d}"
        for b in range(spec.beds_per_ward):
            rng = stable_rng("history-bed", spec.seed, ward, b)
            t = start - timedelta(days=rng.random() * spec.mean_stay_days)
            while t < end:
                length = timedelta(hours=12 + rng.expovariate(1 / (spec.mean_stay_days * 24)))
                pid = f"h{spec.seed}-{n:06d}"
                n += 1
                out = t + length
                stays.append((pid, ward, f"{b + 1:02d}", draw_fips(catchment, spec.seed, pid),
                              t, out if out < end else None))
                t = out + timedelta(hours=rng.random() * 12)
    if spec.surge_county:
        rng = stable_rng("history-surge", spec.seed)
        for d in range(spec.surge_days):
            day0 = end - timedelta(days=spec.surge_days - d)
            for i in range(spec.surge_extra):
                pid = f"h{spec.seed}-s{d}-{i}"
                admitted = day0 + timedelta(hours=rng.random() * 20)
                out = admitted + timedelta(hours=24 + rng.random() * 48)
                stays.append((pid, "icu-01-surge", f"s{d}{i}", spec.surge_county, admitted,
                              out if out < end else None))
    alerts: list[tuple] = []
    for pid, ward, bed, _fips, admitted, discharged in stays:
        rng = stable_rng("history-alerts", spec.seed, pid)
        a0 = max(admitted, start)
        hours = ((discharged or end) - a0).total_seconds() / 3600
        if hours <= 0:
            continue
        for i in range(_poisson(rng, spec.alerts_per_patient_day * hours / 24)):
            u, acc = rng.random(), 0.0
            rule, prio = RULE_MIX[-1][:2]
            for r, p, share in RULE_MIX:
                acc += share
                if u < acc:
                    rule, prio = r, p
                    break
            detected = a0 + timedelta(hours=rng.random() * hours)
            ack = None
            if rng.random() < 0.85:
                ack = detected + timedelta(seconds=math.exp(rng.gauss(math.log(90), 0.8)))
            alerts.append((f"{pid}-a{i}", pid, ward, bed, rule, prio, detected, ack))
    return stays, alerts


def write(session: Session, stays: list[tuple], alerts: list[tuple]) -> None:
    """Into the census (``admissions``) and the alerts (``alerts`` and their ward-day
    index), through their stores (concurrent upserts)."""
    census.import_stays(session, [census.PastStay(*stay) for stay in stays])
    store(AlertStore, session).import_history([
        HistoricAlert(aid, pid, ward, bed, rule, prio, detected,
                      AlertStatus.ACKNOWLEDGED if ack else AlertStatus.CLEARED,
                      "demo-nurse" if ack else None,
                      ack or detected + timedelta(minutes=5))
        for aid, pid, ward, bed, rule, prio, detected, ack in alerts])


def end_of_today() -> datetime:
    now = datetime.now(UTC)
    return now.replace(minute=0, second=0, microsecond=0)

"""The census: admissions and which bed each patient occupies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args

from backend.admission import Admission
from backend.storage.statements import prepared


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def admit(session: Session, admission: Admission) -> None:
    """Record an admission and put the patient in their bed (idempotent)."""
    a = admission
    session.execute(prepared(session,
        "INSERT INTO admissions (patient_id, ward, bed, label, age, sex, home_fips, spo2_scale,"
        " admitted_ts, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
        (a.patient_id, a.ward, a.bed, a.label, a.age, a.sex, a.home_fips, a.spo2_scale,
         _dt(a.admitted_ts), a.source),
    )
    session.execute(prepared(session,
        "INSERT INTO beds_by_ward (ward, bed, patient_id, label, admitted_ts, spo2_scale)"
        " VALUES (?, ?, ?, ?, ?, ?)"),
        (a.ward, a.bed, a.patient_id, a.label, _dt(a.admitted_ts), a.spo2_scale),
    )


def discharge(session: Session, patient_id: str, discharged_ts: int) -> None:
    row = get(session, patient_id)
    if row is None:
        return
    session.execute(
        prepared(session, "UPDATE admissions SET discharged_ts = ? WHERE patient_id = ?"),
        (_dt(discharged_ts), patient_id),
    )
    session.execute(
        prepared(session, "DELETE FROM beds_by_ward WHERE ward = ? AND bed = ? IF patient_id = ?"),
        (row.ward, row.bed, patient_id),
    )


def _admission(r: dict) -> Admission:
    return Admission(
        patient_id=r["patient_id"], ward=r["ward"], bed=r["bed"], label=r["label"] or "",
        age=r["age"], sex=r["sex"], home_fips=r["home_fips"], spo2_scale=r["spo2_scale"] or 1,
        admitted_ts=_ms(r["admitted_ts"]) or 0, source=r["source"],
    )


def get(session: Session, patient_id: str) -> Admission | None:
    r = session.execute(prepared(session, "SELECT * FROM admissions WHERE patient_id = ?"),
                        (patient_id,)).one()
    return _admission(r) if r else None


def current(session: Session) -> dict[str, Admission]:
    """Every patient currently admitted, by id. The census is small (hundreds of beds)."""
    return {
        r["patient_id"]: _admission(r)
        for r in session.execute(prepared(session, "SELECT * FROM admissions"))
        if r["discharged_ts"] is None
    }


@dataclass(frozen=True, slots=True)
class Bed:
    """Who lies in a bed now (``beds_by_ward``)."""

    ward: str
    bed: str
    patient_id: str | None
    label: str
    spo2_scale: int
    admitted_ts: datetime | None


def beds(session: Session, ward: str) -> list[Bed]:
    rows = session.execute(prepared(session, "SELECT * FROM beds_by_ward WHERE ward = ?"),
                           (ward,))
    return [Bed(r["ward"], str(r["bed"]), r.get("patient_id"), r.get("label") or "",
                r.get("spo2_scale") or 1,
                _dt(_ms(r.get("admitted_ts")))) for r in rows]


def wards(session: Session) -> list[str]:
    rows = session.execute(prepared(session, "SELECT DISTINCT ward FROM beds_by_ward"))
    return sorted({r["ward"] for r in rows})


@dataclass(frozen=True, slots=True)
class PastStay:
    """A stay of ``admissions``: read back for the population and burden aggregates
    (``backend.storage.population.load_stays``), or imported whole (the demo's history:
    no label, SpO2 scale 1, not in a bed unless it is still running). Times are aware
    UTC; ``discharged_ts`` is ``None`` while the patient is admitted."""

    patient_id: str
    ward: str
    bed: str
    home_fips: str | None
    admitted_ts: datetime
    discharged_ts: datetime | None


def import_stays(session: Session, stays: Sequence[PastStay]) -> None:
    """Past admissions into ``admissions`` (concurrent idempotent upserts)."""
    stmt = prepared(session, "INSERT INTO admissions (patient_id, ward, bed, label, home_fips,"
                    " spo2_scale, admitted_ts, discharged_ts, source)"
                    " VALUES (?, ?, ?, '', ?, 1, ?, ?, 'history')")
    execute_concurrent_with_args(
        session, stmt, [(s.patient_id, s.ward, s.bed, s.home_fips, s.admitted_ts,
                         s.discharged_ts) for s in stays],
        concurrency=128, raise_on_first_error=True)

"""A patient's readings as FHIR or CSV, plain or pseudonymised (``pseudonymise.py``)."""

from __future__ import annotations

import dataclasses
from typing import Any

from backend.fhir import bundle_dict
from backend.privacy.pseudonymise import Pseudonymiser
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.readings import ReadingStore, StoredReading
from backend.vitals import Vital

CSV_COLUMNS = ["patient_id", "ts_utc_ms", "device_id", *(v.value for v in Vital),
               "sensors_off"]


def export_rows(session: Session, settings: Settings, patient_id: str, start_ms: int,
                end_ms: int, *, fmt: str, pseudonymise: bool) -> tuple[Any, int]:
    """(document, number of readings): a FHIR Bundle dict, or CSV rows (header first)."""
    rows = ReadingStore(session).between(patient_id, start_ms, end_ms)
    return render(rows, patient_id, start_ms, end_ms, fmt=fmt,
                  pseudo=Pseudonymiser.from_settings(settings) if pseudonymise else None)


def render(rows: list[StoredReading], patient_id: str, start_ms: int, end_ms: int, *,
           fmt: str, pseudo: Pseudonymiser | None) -> tuple[Any, int]:
    pid = patient_id
    if pseudo is not None:
        rows = [dataclasses.replace(
            r, patient_id=pseudo.patient(patient_id), ts=pseudo.shift_ms(patient_id, r.ts),
            device_id=pseudo.device(r.device_id) if r.device_id else r.device_id)
            for r in rows]
        pid = pseudo.patient(patient_id)
        start_ms, end_ms = (pseudo.shift_ms(patient_id, start_ms),
                            pseudo.shift_ms(patient_id, end_ms))
    if fmt == "fhir":
        bundle = bundle_dict(pid, rows, start_ms=start_ms, end_ms=end_ms)
        return bundle, len(rows)
    out: list[list[Any]] = [CSV_COLUMNS]
    for r in rows:
        out.append([pid, r.ts, r.device_id,
                    *("" if (x := r.vitals.get(v)) is None else x for v in Vital),
                    ",".join(sorted(s.value for s in r.sensors_off))])
    return out, len(rows)

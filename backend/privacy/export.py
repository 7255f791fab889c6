"""A patient's readings as FHIR or CSV, plain or pseudonymised (``pseudonymise.py``)."""

from __future__ import annotations

from typing import Any

from backend.fhir import bundle_dict
from backend.privacy.pseudonymise import Pseudonymiser
from backend.settings import Settings
from backend.storage.cassandra import Session
from backend.storage.readings import ReadingStore
from backend.storage.timestamps import to_ms
from backend.vitals import Vital

CSV_COLUMNS = ["patient_id", "ts_utc_ms", "device_id", *(v.value for v in Vital),
               "sensors_off"]


def _rows(session: Session, patient_id: str, start_ms: int, end_ms: int) -> list[dict]:
    return [dict(r) for r in ReadingStore(session).between(patient_id, start_ms, end_ms)]


def export_rows(session: Session, settings: Settings, patient_id: str, start_ms: int,
                end_ms: int, *, fmt: str, pseudonymise: bool) -> tuple[Any, int]:
    """(document, number of readings): a FHIR Bundle dict, or CSV rows (header first)."""
    rows = _rows(session, patient_id, start_ms, end_ms)
    return render(rows, patient_id, start_ms, end_ms, fmt=fmt,
                  pseudo=Pseudonymiser.from_settings(settings) if pseudonymise else None)


def render(rows: list[dict], patient_id: str, start_ms: int, end_ms: int, *, fmt: str,
           pseudo: Pseudonymiser | None) -> tuple[Any, int]:
    pid = patient_id
    if pseudo is not None:
        shifted = []
        for r in rows:
            r = dict(r)
            ms = r["ts"] if isinstance(r["ts"], int) else to_ms(r["ts"])
            r["ts"] = pseudo.shift_ms(patient_id, ms)
            if r.get("device_id"):
                r["device_id"] = pseudo.device(r["device_id"])
            shifted.append(r)
        rows = shifted
        pid = pseudo.patient(patient_id)
        start_ms, end_ms = (pseudo.shift_ms(patient_id, start_ms),
                            pseudo.shift_ms(patient_id, end_ms))
    if fmt == "fhir":
        bundle = bundle_dict(pid, rows, start_ms=start_ms, end_ms=end_ms)
        return bundle, len(rows)
    out: list[list[Any]] = [CSV_COLUMNS]
    for r in rows:
        ts = r["ts"] if isinstance(r["ts"], int) else to_ms(r["ts"])
        out.append([pid, ts, r.get("device_id") or "",
                    *("" if r.get(v.value) is None else r[v.value] for v in Vital),
                    ",".join(sorted(r.get("sensors_off") or ()))])
    return out, len(rows)

"""Replaying a real ICU stay (MIMIC-II/III numerics, one frame per minute) as a monitor.

``load_record("s00001")`` reads a WFDB record of ``<data_dir>/mimic-numerics``;
``replay(record, start_ms=...)`` yields its frames as ``(patient_id, DeviceReading)``,
a pure generator (no Kafka, no clock) that tests can assert on. Units are those of
``backend.vitals.VITALS`` (with their LOINC codes); the record's units are the same
(bpm, mmHg, breaths/min, %), so values pass unchanged.

Mapping of one frame (a row of ``p_signal``; columns follow ``sig_name``):

* ``HR`` -> ``hr`` (ECG), ``PULSE`` -> ``pulse`` (oximeter), ``SpO2`` -> ``spo2``,
  ``RESP`` -> ``rr``.
* Blood pressure, one source per frame, as a monitor's primary BP display:
  the arterial line (``ABPSys``/``ABPDias``/``ABPMean`` -> ``sbp``/``dbp``/``map``) when it
  reads non-zero (any of the three > 0); otherwise the NIBP cuff
  (``NBPSys``/``NBPDias``/``NBPMean``). The record holds each cuff reading once, in the
  minute it was taken, and the replay sends it once, in that frame: repeating it in later
  frames would re-time an old measurement as a new one, and keeping the last value
  within its validity window is the pipeline's job (``ValidatedReading.carried``).
  ``nibp_hold_s`` > 0 repeats the latest cuff reading for that long instead, as a
  monitor's display does. The arterial line's zeros (line not connected, 1,929 of the
  1,936 minutes of s00001) are not sent as BP when the cuff is the source; while the
  line is connected a single zero component goes out as recorded.
* A 0 is sent as 0, exactly as the monitor showed it (HR, PULSE, SpO2 and RESP read 0
  while their sensor is off; the pipeline treats that as "sensor off"). Implausible
  values are sent as recorded too (s25047 has a PULSE of 277/min): the point of the
  replay is to bring real artefacts to the validator, not to clean them here.
* NaN (WFDB has no sample: the cuff between measurements, the signal absent from the
  record) -> the key is left out of ``vitals``. Temperature, consciousness and oxygen are
  not in these records and are never sent.

Time: frame *i* gets ``ts = start_ms + i * spacing_ms``. The CLI paces the replay by
those timestamps: with ``--speed S`` the spacing is 60,000/S ms and ``start_ms`` is now,
so device time runs with the wall clock (the recorded spacing, compressed S times; at
``--speed 60`` one recorded minute per second) and no reading is in the future. With
``--fast`` it sends as fast as it can with the recorded 1-minute spacing, the stay
ending now (``start_ms = now - minutes * 60,000``), so the timestamps keep the original
relative times and all lie in the past. ``loop=True`` starts the stay again after its
last frame, with time and ``seq`` continuing.

Patient id ``mimic-<record prefix>`` (``mimic-s00001``); age and sex from the header
comment (``<age>: 60 <sex>: F``; ``??``/``?`` mean unknown).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from backend.admission import Admission
from backend.messages import DeviceReading
from backend.population.catchment import Catchment
from backend.vitals import Vital
from devices.regions import draw_fips
from devices.wire import Record, SeqCounter, bed_label, stable_rng

RECORD_MINUTE_MS = 60_000

DIRECT: dict[str, Vital] = {
    "HR": Vital.HR,
    "PULSE": Vital.PULSE,
    "SpO2": Vital.SPO2,
    "RESP": Vital.RR,
}
ARTERIAL: tuple[tuple[str, Vital], ...] = (
    ("ABPSys", Vital.SBP), ("ABPDias", Vital.DBP), ("ABPMean", Vital.MAP),
)
CUFF: tuple[tuple[str, Vital], ...] = (
    ("NBPSys", Vital.SBP), ("NBPDias", Vital.DBP), ("NBPMean", Vital.MAP),
)
_HEADER = re.compile(r"<age>:\s*(\S+)\s*<sex>:\s*(\S+)")


@dataclass(frozen=True)
class MimicRecord:
    name: str  # WFDB record name, e.g. s00001-2896-10-10-00-31n
    sig_name: tuple[str, ...]
    frames: tuple[tuple[float, ...], ...]  # p_signal rows, NaN where no sample
    fs: float
    age: int | None
    sex: str | None  # F / M / U(nknown)

    @property
    def short(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def patient_id(self) -> str:
        return f"mimic-{self.short}"

    @property
    def minutes(self) -> int:
        return len(self.frames)

    def frame(self, i: int) -> dict[str, float]:
        return dict(zip(self.sig_name, self.frames[i], strict=True))


def parse_header_comment(comments: Sequence[str]) -> tuple[int | None, str | None]:
    """``["<age>: 60 <sex>: F"]`` -> ``(60, "F")``; unknowns -> ``(None, "U")``."""
    for line in comments:
        m = _HEADER.search(line)
        if m:
            age_s, sex_s = m.groups()
            age = int(age_s) if age_s.isdigit() else None
            sex = sex_s.upper() if sex_s.upper() in ("F", "M") else "U"
            return age, sex
    return None, None


def resolve(record: str, data_dir: Path) -> Path:
    """The record path (without extension) for ``s00001``, a full name or a path."""
    p = Path(record)
    if p.suffix == ".hea":
        p = p.with_suffix("")
    if p.with_suffix(".hea").exists():
        return p
    folder = Path(data_dir) / "mimic-numerics"
    matches = sorted(folder.glob(f"{record}*.hea"))
    if len(matches) != 1:
        known = ", ".join(h.stem for h in sorted(folder.glob("*.hea"))) or "none"
        raise FileNotFoundError(
            f"record {record!r}: {len(matches)} matches in {folder} (records: {known})")
    return matches[0].with_suffix("")


def load_record(record: str, data_dir: Path) -> MimicRecord:
    import wfdb  # imported here: only the replay needs it

    path = resolve(record, data_dir)
    rec = wfdb.rdrecord(str(path))
    age, sex = parse_header_comment(rec.comments or [])
    return MimicRecord(
        name=rec.record_name, sig_name=tuple(rec.sig_name),
        frames=tuple(tuple(row) for row in rec.p_signal.tolist()), fs=float(rec.fs),
        age=age, sex=sex,
    )


def _present(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def map_frame(values: Mapping[str, float]) -> dict[Vital, float]:
    """One frame's signals -> ``vitals`` (see the module docstring for the rules)."""
    out: dict[Vital, float] = {}
    for sig, vital in DIRECT.items():
        x = values.get(sig)
        if _present(x):
            out[vital] = float(x)
    art = [(vital, values.get(sig)) for sig, vital in ARTERIAL]
    if any(_present(x) and x > 0 for _, x in art):
        source = art
    else:
        source = [(vital, values.get(sig)) for sig, vital in CUFF]
    for vital, x in source:
        if _present(x):
            out[vital] = float(x)
    return out


def arterial_connected(values: Mapping[str, float]) -> bool:
    return any(_present(values.get(sig)) and values[sig] > 0 for sig, _ in ARTERIAL)


def replay(
    rec: MimicRecord,
    *,
    start_ms: int,
    spacing_ms: float = RECORD_MINUTE_MS,
    ward: str = "ICU-R",
    bed: str = "1",
    boot: str = "0",
    first_minute: int = 0,
    minutes: int | None = None,
    loop: bool = False,
    nibp_hold_s: float = 0.0,
    source: str = "mimic-replay",
) -> Iterator[Record]:
    """The stay's frames as ``(patient_id, DeviceReading)``, ``seq`` from 0.

    The device id is ``mon-<ward>-<bed>.<boot>`` (``boot``: see ``devices.wire.boot_id``).
    ``first_minute``/``minutes`` select a window of the record; ``loop`` repeats that
    window for ever. ``nibp_hold_s`` is in recorded time (seconds of the stay).
    """
    if not spacing_ms > 0:
        raise ValueError("spacing_ms must be > 0")
    last = rec.minutes if minutes is None else min(rec.minutes, first_minute + minutes)
    if not 0 <= first_minute < last:
        raise ValueError(f"empty window: minutes {first_minute}..{last} of {rec.minutes}")
    pid = rec.patient_id
    device = f"mon-{ward}-{bed}.{boot}"
    seq = SeqCounter()
    hold_frames = nibp_hold_s / 60.0
    i = 0  # frames sent (time index)
    while True:
        held: tuple[int, dict[Vital, float]] | None = None  # (frame, cuff values)
        for m in range(first_minute, last):
            values = rec.frame(m)
            vitals = map_frame(values)
            if hold_frames > 0 and not arterial_connected(values):
                cuff = {v: vitals[v] for _, v in CUFF if v in vitals}
                if cuff:
                    held = (m, cuff)
                elif held is not None and m - held[0] <= hold_frames:
                    vitals.update(held[1])
            yield pid, DeviceReading(
                device_id=device, seq=seq(), patient_id=pid, ward=ward, bed=bed,
                ts=start_ms + round(i * spacing_ms), vitals=vitals, source=source,
            )
            i += 1
        if not loop:
            return


def admission(
    rec: MimicRecord, *, ward: str = "ICU-R", bed: str = "1", admitted_ts: int,
    catchment: Catchment | None = None, seed: object = 0,
) -> Admission:
    """The replayed patient's admission: pseudonymous label, header age/sex, home county."""
    pid = rec.patient_id
    return Admission(
        patient_id=pid, ward=ward, bed=bed, label=bed_label(bed, stable_rng("label", pid)),
        age=rec.age, sex=rec.sex,
        home_fips=draw_fips(catchment or Catchment.parse(None), seed, pid),
        spo2_scale=1, admitted_ts=admitted_ts, source=f"mimic-replay/{rec.name}",
    )

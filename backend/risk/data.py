"""The PhysioNet/CinC 2019 sepsis challenge data (training set A) as one hourly frame.

The read-only tarball lives in ``settings.data_dir / "physionet2019"``; it is unpacked once
into ``settings.cache_dir / "physionet2019"`` (never into the repository) and reused while
the number of ``.psv`` files matches the tarball's. The parsed frame is cached next to it
as Parquet, keyed by the tarball's sha256.

Columns are renamed to the platform's names: vitals use the wire names of
``backend.vitals.Vital`` (``hr``, ``spo2``, ``temp``, ``sbp``, ``map``, ``dbp``, ``rr``),
so the same feature code runs on hourly-aggregated live vitals; labs are lower case
(``wbc``, ``lactate`` ...); ``ICULOS`` becomes ``hour``, ``Gender`` becomes ``sex``
(1 male, 0 female, as in the Challenge), ``SepsisLabel`` becomes ``label``.

Reference: Reyna MA et al. Early Prediction of Sepsis From Clinical Data: the
PhysioNet/Computing in Cardiology Challenge 2019. Crit Care Med 2020;48(2):210-217.
Data: doi:10.13026/v64v-d857 (PhysioNet; Goldberger et al., Circulation 2000).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backend.settings import Settings

log = logging.getLogger(__name__)

ARCHIVE_NAME = "training_setA.tar.gz"
MEMBER_DIR = "training_setA"

# PhysioNet column -> platform column. Everything else in the files is dropped on load.
VITAL_COLUMNS: dict[str, str] = {
    "HR": "hr", "O2Sat": "spo2", "Temp": "temp", "SBP": "sbp", "MAP": "map", "DBP": "dbp",
    "Resp": "rr",
}
LAB_COLUMNS: dict[str, str] = {
    "WBC": "wbc", "Platelets": "platelets", "Creatinine": "creatinine", "BUN": "bun",
    "Bilirubin_total": "bilirubin", "Lactate": "lactate",
    # used by the baselines only (SIRS: PaCO2; NEWS2: FiO2 > 0.21 = supplemental oxygen)
    "PaCO2": "paco2", "FiO2": "fio2",
}
OTHER_COLUMNS: dict[str, str] = {
    "Age": "age", "Gender": "sex", "ICULOS": "hour", "SepsisLabel": "label",
}
RENAME = {**VITAL_COLUMNS, **LAB_COLUMNS, **OTHER_COLUMNS}
# Not used on purpose (see docs/model.md): EtCO2 (never recorded in set A), Unit1/Unit2
# and HospAdmTime (administrative, hospital-specific), the other 18 labs.


@dataclass(frozen=True, slots=True)
class Dataset:
    frame: pd.DataFrame  # one row per patient-hour, sorted by (patient_id, hour)
    data_sha256: str  # sha256 of the patient files used (names and bytes, sorted)
    source_sha256: str  # sha256 of the tarball
    n_patients: int


def archive_path(settings: Settings) -> Path:
    return settings.data_dir / "physionet2019" / ARCHIVE_NAME


def cache_root(settings: Settings) -> Path:
    return settings.cache_dir / "physionet2019"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _marker(root: Path) -> Path:
    return root / "unpacked.json"


def ensure_unpacked(settings: Settings) -> Path:
    """The directory of ``.psv`` files, unpacking the tarball into the cache if needed.

    Reused when the marker written after a complete unpack names the same tarball and
    the directory holds the number of files the tarball has.
    """
    archive = archive_path(settings)
    root = cache_root(settings)
    target = root / MEMBER_DIR
    marker = _marker(root)
    if marker.exists() and target.is_dir():
        info = json.loads(marker.read_text())
        count = sum(1 for _ in target.glob("*.psv"))
        if count == info.get("files") and info.get("archive_size") == archive.stat().st_size:
            return target
        log.warning("cached %s has %d files, expected %s: unpacking again",
                    target, count, info.get("files"))
    if not archive.exists():
        raise FileNotFoundError(f"{archive} not found (settings.data_dir={settings.data_dir})")
    root.mkdir(parents=True, exist_ok=True)
    partial = root / (MEMBER_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    count = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = Path(member.name).name
            if not member.isfile() or not name.endswith(".psv"):
                continue
            src = tar.extractfile(member)
            assert src is not None
            (partial / name).write_bytes(src.read())
            count += 1
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    marker.write_text(json.dumps({"files": count, "archive_size": archive.stat().st_size,
                                  "archive_sha256": sha256_file(archive)}))
    log.info("unpacked %d stays into %s", count, target)
    return target


class DataFileError(ValueError):
    """A ``.psv`` file that cannot be read; the message names the file, line and reason."""


def _parse(files: list[Path]) -> tuple[pd.DataFrame, str]:
    """All files as one frame (one pass of the CSV parser) and the sha256 of their bytes.
    A bad file raises :class:`DataFileError` naming the file, the line and the reason."""
    h = hashlib.sha256()
    parts: list[bytes] = []
    origin: list[tuple[str, int]] = []  # (file, line) of every data row, in order
    header: list[str] | None = None
    for path in files:
        data = path.read_bytes()
        h.update(path.name.encode() + b"\0" + data)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            no = data.count(b"\n", 0, exc.start) + 1
            raise DataFileError(f"{path.name} line {no}: not UTF-8") from None
        lines = data.split(b"\n")
        head = lines[0].decode().strip().split("|")
        if header is None:
            header = head
        elif head != header:
            raise DataFileError(f"{path.name} line 1: unexpected header")
        pid = path.stem.encode() + b"|"
        separators = len(header) - 1
        for no, line in enumerate(lines[1:], start=2):
            if line.strip():
                if line.count(b"|") != separators:
                    raise DataFileError(f"{path.name} line {no}: {line.count(b'|') + 1} "
                                        f"fields, expected {len(header)}")
                parts.append(pid + line.rstrip(b"\r") + b"\n")
                origin.append((path.name, no))
    if header is None:
        raise ValueError("no .psv files")
    try:
        raw = pd.read_csv(io.BytesIO(b"".join(parts)), sep="|", header=None,
                          names=["patient_id", *header], na_values=["NaN"],
                          usecols=["patient_id", *RENAME])
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))
        if found and 0 < int(found.group(1)) <= len(origin):
            name, no = origin[int(found.group(1)) - 1]
            raise DataFileError(f"{name} line {no}: {str(exc).split('. ')[-1]}") from None
        raise DataFileError(str(exc)) from None
    for column in RENAME:
        if raw[column].dtype == object:  # a value that is not a number
            values = pd.to_numeric(raw[column], errors="coerce")
            bad = int(np.flatnonzero(values.isna() & raw[column].notna())[0])
            name, no = origin[bad]
            raise DataFileError(f"{name} line {no}: {column} {str(raw[column][bad])[:30]!r} "
                                "is not a number")
        if not np.isfinite(raw[column].dropna()).all():
            bad = int(np.flatnonzero(~np.isfinite(raw[column].fillna(0)))[0])
            name, no = origin[bad]
            raise DataFileError(f"{name} line {no}: {column} is not finite")
    frame = raw.rename(columns=RENAME)
    frame["hour"] = frame["hour"].astype(np.int32)
    frame["label"] = frame["label"].astype(np.int8)
    frame = frame.sort_values(["patient_id", "hour"], kind="stable").reset_index(drop=True)
    return frame, h.hexdigest()


def load(settings: Settings, *, max_patients: int | None = None, seed: int = 0) -> Dataset:
    """Set A as one frame. ``max_patients`` keeps a seeded random subset of stays."""
    directory = ensure_unpacked(settings)
    files = sorted(directory.glob("*.psv"))
    if max_patients is not None and max_patients < len(files):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(files), size=max_patients, replace=False))
        files = [files[i] for i in keep]
    source = json.loads(_marker(cache_root(settings)).read_text())["archive_sha256"]
    cache = cache_root(settings) / f"setA-{source[:16]}.parquet"
    if max_patients is None and cache.exists() and cache.with_suffix(".json").exists():
        meta = json.loads(cache.with_suffix(".json").read_text())
        frame = pd.read_parquet(cache)
        return Dataset(frame, meta["data_sha256"], source, frame["patient_id"].nunique())
    frame, digest = _parse(files)
    if max_patients is None:
        frame.to_parquet(cache, index=False)
        cache.with_suffix(".json").write_text(json.dumps({"data_sha256": digest}))
    return Dataset(frame, digest, source, len(files))

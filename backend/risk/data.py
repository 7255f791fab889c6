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
from collections.abc import Iterable, Iterator
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
# The ICU type (1 = yes, NaN = not recorded). Never a model feature (administrative and
# hospital-specific): the site-robust evaluation (backend.risk.sites) splits on it.
UNIT_COLUMNS: dict[str, str] = {"Unit1": "unit1", "Unit2": "unit2"}
RENAME = {**VITAL_COLUMNS, **LAB_COLUMNS, **OTHER_COLUMNS, **UNIT_COLUMNS}
# Not used on purpose (see docs/model.md): EtCO2 (never recorded in set A), HospAdmTime
# (administrative, hospital-specific), the other 18 labs.
# Without these a file is not a stay of the Challenge's format.
REQUIRED_COLUMNS = ("ICULOS", "SepsisLabel", *VITAL_COLUMNS)
# Bumped whenever RENAME changes, so a Parquet cache of other columns is not reused.
FRAME_SCHEMA = 2


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
    return _parse_members((path.name, path.read_bytes()) for path in files)


def _parse_members(members: Iterable[tuple[str, bytes]]) -> tuple[pd.DataFrame, str]:
    """``(file name, bytes)`` of PhysioNet 2019 ``.psv`` stays, in name order, as one frame."""
    h = hashlib.sha256()
    parts: list[bytes] = []
    origin: list[tuple[str, int]] = []  # (file, line) of every data row, in order
    header: list[str] | None = None
    for name, data in members:
        h.update(name.encode() + b"\0" + data)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            no = data.count(b"\n", 0, exc.start) + 1
            raise DataFileError(f"{name} line {no}: not UTF-8") from None
        lines = data.split(b"\n")
        head = lines[0].decode().strip().split("|")
        if header is None:
            header = head
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise DataFileError(f"{name}: not a PhysioNet 2019 stay, missing columns "
                                    f"{', '.join(missing)}")
        elif head != header:
            raise DataFileError(f"{name} line 1: unexpected header")
        pid = Path(name).stem.encode() + b"|"
        separators = len(header) - 1
        for no, line in enumerate(lines[1:], start=2):
            if line.strip():
                if line.count(b"|") != separators:
                    raise DataFileError(f"{name} line {no}: {line.count(b'|') + 1} "
                                        f"fields, expected {len(header)}")
                parts.append(pid + line.rstrip(b"\r") + b"\n")
                origin.append((name, no))
    if header is None:
        raise ValueError("no .psv files")
    present = [c for c in RENAME if c in header]
    try:
        raw = pd.read_csv(io.BytesIO(b"".join(parts)), sep="|", header=None,
                          names=["patient_id", *header], na_values=["NaN"],
                          usecols=["patient_id", *present])
    except pd.errors.ParserError as exc:
        found = re.search(r"line (\d+)", str(exc))
        if found and 0 < int(found.group(1)) <= len(origin):
            name, no = origin[int(found.group(1)) - 1]
            raise DataFileError(f"{name} line {no}: {str(exc).split('. ')[-1]}") from None
        raise DataFileError(str(exc)) from None
    for column in present:
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
    for column in RENAME:  # optional columns (another site may not export the ICU type)
        if column not in raw.columns:
            raw[column] = np.nan
    frame = raw.rename(columns=RENAME)
    frame["hour"] = frame["hour"].astype(np.int32)
    frame["label"] = frame["label"].astype(np.int8)
    frame = frame.sort_values(["patient_id", "hour"], kind="stable").reset_index(drop=True)
    return frame, h.hexdigest()


def stay_units(frame: pd.DataFrame) -> dict[str, str | None]:
    """ICU type per stay: "medical" (``Unit1``), "surgical" (``Unit2``) or None (not
    recorded). A stay keeps one ICU type in set A; a stay flagged both ways is None."""
    if "unit1" not in frame.columns:
        return {str(p): None for p in pd.unique(frame["patient_id"])}
    flags = frame.groupby("patient_id", sort=True)[["unit1", "unit2"]].max()
    med = (flags["unit1"] == 1).to_numpy()
    sur = (flags["unit2"] == 1).to_numpy()
    kind = np.where(med & ~sur, "medical", np.where(sur & ~med, "surgical", ""))
    return {str(p): (k or None) for p, k in zip(flags.index, kind, strict=True)}


def load(settings: Settings, *, max_patients: int | None = None, seed: int = 0) -> Dataset:
    """Set A as one frame. ``max_patients`` keeps a seeded random subset of stays."""
    directory = ensure_unpacked(settings)
    files = sorted(directory.glob("*.psv"))
    if max_patients is not None and max_patients < len(files):
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(files), size=max_patients, replace=False))
        files = [files[i] for i in keep]
    source = json.loads(_marker(cache_root(settings)).read_text())["archive_sha256"]
    cache = cache_root(settings) / f"setA-{source[:16]}-v{FRAME_SCHEMA}.parquet"
    if max_patients is None and cache.exists() and cache.with_suffix(".json").exists():
        meta = json.loads(cache.with_suffix(".json").read_text())
        frame = pd.read_parquet(cache)
        return Dataset(frame, meta["data_sha256"], source, frame["patient_id"].nunique())
    frame, digest = _parse(files)
    if max_patients is None:
        frame.to_parquet(cache, index=False)
        cache.with_suffix(".json").write_text(json.dumps({"data_sha256": digest}))
    return Dataset(frame, digest, source, len(files))


def _members(path: Path) -> Iterator[tuple[str, bytes]]:
    """The ``.psv`` files of a directory (recursively) or a tar archive, in name order."""
    if path.is_dir():
        for f in sorted(path.rglob("*.psv"), key=lambda p: p.name):
            yield f.name, f.read_bytes()
        return
    if not tarfile.is_tarfile(path):
        raise ValueError(f"{path}: neither a directory of .psv files nor a tar archive")
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar if m.isfile() and m.name.endswith(".psv")),
                         key=lambda m: Path(m.name).name)
        for m in members:
            src = tar.extractfile(m)
            assert src is not None
            yield Path(m.name).name, src.read()


def load_directory(path: Path) -> Dataset:
    """Another site's stays in the Challenge's format (a directory of ``.psv`` files, or a
    tar archive of them), as one frame with the columns of ``load``. Stay ids are the file
    names; a name seen twice is refused (two stays would be merged)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    members = list(_members(path))
    names = [n for n, _ in members]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[:3]
        raise ValueError(f"{path}: the same stay file name appears twice: {', '.join(dup)}")
    frame, digest = _parse_members(members)
    source = sha256_file(path) if path.is_file() else digest
    return Dataset(frame, digest, source, frame["patient_id"].nunique())

"""Model registry: versions on disk (authoritative) and an optional Cassandra mirror.

Layout under ``settings.cache_dir / "models"``::

    <version>/metadata.json    version, created time, training-data sha256, features,
                               threshold, metrics, parameters, Spark version, runtime
    <version>/trees.json       the trees for NumPy scoring (``backend.risk.model``)
    <version>/spark/           the Spark MLlib GBTClassificationModel
    <version>/split.json       the patient ids of train/validation/test
    <version>/evaluation.json  written by ``icu model evaluate``
    active.json                {"version": active, "history": [previous actives...],
                                "log": [{"ts", "action", "version", "previous"}...]}

A version directory appears only when complete (written as ``.<version>.partial`` and
renamed). ``activate`` pushes the current active version on ``history``; ``rollback``
re-activates the most recent entry of ``history`` (so repeated rollbacks walk back).

Loading always reads the files, so training, evaluation and scoring work without
Cassandra. ``mirror_*`` copy the same facts into the tables of
``backend/storage/migrations/0100_model_registry.cql`` when asked to (``--cassandra``
flags and ``icu model mirror``).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.risk.model import RiskModel
from backend.settings import Settings
from backend.storage.risk_models import RiskModelStore

MODEL_NAME = "sepsis-gbt"
_VERSION_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?$")


class RegistryError(RuntimeError):
    pass


def models_dir(settings: Settings) -> Path:
    return settings.cache_dir / "models"


def _active_path(settings: Settings) -> Path:
    return models_dir(settings) / "active.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/infinite floats as None and NumPy scalars/arrays as Python values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # NumPy scalar or array
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    obj = jsonable(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json_file(path: Path) -> Any:
    return json.loads(path.read_text())


def check_version(version: str) -> str:
    if not _VERSION_RE.match(version):
        raise RegistryError(f"not a model version: {version!r}")
    return version


def new_version(settings: Settings, when: datetime | None = None) -> str:
    base = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    root = models_dir(settings)
    version, n = base, 1
    while (root / version).exists() or (root / f".{version}.partial").exists():
        n += 1
        version = f"{base}-{n}"
    return version


def version_dir(settings: Settings, version: str) -> Path:
    return models_dir(settings) / check_version(version)


def partial_dir(settings: Settings, version: str) -> Path:
    return models_dir(settings) / f".{check_version(version)}.partial"


def publish(settings: Settings, version: str) -> Path:
    """Make a fully written ``partial_dir`` visible as the version."""
    src, dst = partial_dir(settings, version), version_dir(settings, version)
    if not (src / "metadata.json").exists() or not (src / "trees.json").exists():
        raise RegistryError(f"{src} is incomplete")
    os.replace(src, dst)
    return dst


def read_metadata(settings: Settings, version: str) -> dict:
    path = version_dir(settings, version) / "metadata.json"
    if not path.exists():
        raise RegistryError(f"no model version {version} in {models_dir(settings)}")
    return json.loads(path.read_text())


def update_metadata(settings: Settings, version: str, **fields: Any) -> dict:
    meta = read_metadata(settings, version)
    meta.update(fields)
    write_json(version_dir(settings, version) / "metadata.json", meta)
    return meta


def list_versions(settings: Settings) -> list[dict]:
    """Metadata of every complete version, oldest first."""
    root = models_dir(settings)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and _VERSION_RE.match(d.name) and (d / "metadata.json").exists():
            out.append(json.loads((d / "metadata.json").read_text()))
    return sorted(out, key=lambda m: (m["created"], m["version"]))


def _pointer(settings: Settings) -> dict:
    path = _active_path(settings)
    if not path.exists():
        return {"version": None, "history": [], "log": []}
    return json.loads(path.read_text())


def active_version(settings: Settings) -> str | None:
    return _pointer(settings)["version"]


def activation_log(settings: Settings) -> list[dict]:
    return list(_pointer(settings)["log"])


def activate(settings: Settings, version: str) -> dict:
    """Make ``version`` the active model; returns the log entry."""
    read_metadata(settings, version)  # must exist
    ptr = _pointer(settings)
    previous = ptr["version"]
    if previous and previous != version:
        ptr["history"].append(previous)
    entry = {"ts": now_iso(), "action": "activate", "version": version, "previous": previous}
    ptr["version"] = version
    ptr["log"].append(entry)
    write_json(_active_path(settings), ptr)
    return entry


def rollback(settings: Settings) -> dict:
    """Re-activate the previously active version; returns the log entry."""
    ptr = _pointer(settings)
    while ptr["history"]:
        candidate = ptr["history"].pop()
        if candidate != ptr["version"] and (version_dir(settings, candidate)
                                            / "metadata.json").exists():
            break
    else:
        raise RegistryError("nothing to roll back to: no previously active version")
    entry = {"ts": now_iso(), "action": "rollback", "version": candidate,
             "previous": ptr["version"]}
    ptr["version"] = candidate
    ptr["log"].append(entry)
    write_json(_active_path(settings), ptr)
    return entry


def load(settings: Settings, version: str) -> RiskModel:
    read_metadata(settings, version)
    return RiskModel.load(version_dir(settings, version))


def load_active(settings: Settings) -> RiskModel | None:
    """The active model, or None when no version was ever activated."""
    version = active_version(settings)
    return None if version is None else load(settings, version)


class ActiveModel:
    """The active model for a long-running process (stream job scorer, web app).

    ``get()`` re-reads the active pointer at most every ``recheck_seconds`` and loads a
    version only when the pointer names a different one, so `icu model activate` and
    `icu model rollback` reach a running process within that time, without a restart.
    A pointer naming a broken version keeps the model already loaded (and says why in
    ``error``) rather than stopping the scorer.
    """

    def __init__(self, settings: Settings, recheck_seconds: float = 30.0,
                 clock: Any = None) -> None:
        import time

        self.settings = settings
        self.recheck_seconds = recheck_seconds
        self._clock = clock or time.monotonic
        self._checked: float | None = None
        self.model: RiskModel | None = None
        self.error: str | None = None

    def get(self) -> RiskModel | None:
        now = self._clock()
        if self._checked is not None and now - self._checked < self.recheck_seconds:
            return self.model
        self._checked = now
        try:
            version = active_version(self.settings)
            if version is None:
                self.model = None
            elif self.model is None or self.model.version != version:
                self.model = load(self.settings, version)
            self.error = None
        except (OSError, ValueError, KeyError, RegistryError) as exc:
            self.error = f"active model not loaded: {exc}"
        return self.model


# --- a version as one file (the demo's shipped model) ---------------------------------------
# What a portable version holds: everything but the Spark directory (scoring, the Models
# page and re-evaluation need only these; ``spark/`` is for retraining in Spark).
ARCHIVE_FILES = ("metadata.json", "trees.json", "split.json", "evaluation.json",
                 "validation_utility_curve.json", "sites.json")
_ARCHIVE_REQUIRED = ("metadata.json", "trees.json")
_ARCHIVE_MAX_BYTES = 64 * 1024 * 1024


def export_version(settings: Settings, version: str, path: Path) -> Path:
    """Write ``version`` (its :data:`ARCHIVE_FILES` that exist) as a ``.tar.gz``."""
    import gzip
    import tarfile

    src = version_dir(settings, version)
    read_metadata(settings, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no file name and time in the gzip header: the same version packs to the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                 mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for name in ARCHIVE_FILES:
            if (src / name).exists():
                info = tar.gettarinfo(str(src / name), arcname=f"{version}/{name}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0  # the same version packs to the same bytes
                with open(src / name, "rb") as f:
                    tar.addfile(info, f)
    return path


def import_version(settings: Settings, path: Path) -> tuple[str, bool]:
    """Register the version packed in ``path`` (:func:`export_version`); returns
    (version, True) when it was added, (version, False) when the registry had it.

    The archive is untrusted input: only regular files named in :data:`ARCHIVE_FILES`
    under one valid version directory are read (no links, no paths elsewhere), the model
    must load, and the version appears only when complete (``publish``)."""
    import tarfile

    files: dict[str, bytes] = {}
    version: str | None = None
    with tarfile.open(path, "r:gz") as tar:
        total = 0
        for member in tar:
            folder, _, name = member.name.partition("/")
            if member.isdir() and not name:
                continue
            if not member.isfile() or name not in ARCHIVE_FILES or "/" in name:
                raise RegistryError(f"{path}: unexpected entry {member.name!r}")
            if version is None:
                version = check_version(folder)
            elif folder != version:
                raise RegistryError(f"{path}: holds more than one version")
            total += member.size
            if total > _ARCHIVE_MAX_BYTES:
                raise RegistryError(f"{path}: larger than {_ARCHIVE_MAX_BYTES} bytes")
            data = tar.extractfile(member)
            files[name] = data.read() if data else b""
    missing = [n for n in _ARCHIVE_REQUIRED if n not in files]
    if version is None or missing:
        raise RegistryError(f"{path}: not a model version (missing {', '.join(missing)})")
    meta = json.loads(files["metadata.json"])
    if meta.get("version") != version:
        raise RegistryError(f"{path}: metadata names version {meta.get('version')!r}")
    if (version_dir(settings, version) / "metadata.json").exists():
        return version, False
    work = partial_dir(settings, version)
    work.mkdir(parents=True, exist_ok=True)
    try:
        for name, data in files.items():
            (work / name).write_bytes(data)
        RiskModel.load(work)  # refuses trees and metadata that do not belong together
        publish(settings, version)
    except BaseException:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        raise
    return version, True


def read_evaluation(settings: Settings, version: str) -> dict | None:
    path = version_dir(settings, version) / "evaluation.json"
    return json.loads(path.read_text()) if path.exists() else None


# --- Cassandra mirror --------------------------------------------------------------------

def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def _floats(d: dict | None) -> dict[str, float]:
    return {k: float(v) for k, v in (d or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}


def _store(session: Any, settings: Settings) -> RiskModelStore:
    return RiskModelStore(session, settings.cassandra.keyspace)


def mirror_version(session: Any, settings: Settings, version: str) -> None:
    """Upsert a version's metadata into ``risk_models`` and ``risk_model_versions``."""
    meta = read_metadata(settings, version)
    metrics = meta.get("metrics", {})
    _store(session, settings).write_model(
        meta.get("model_name", MODEL_NAME), _ts(meta["created"]), version,
        meta["training_data_sha256"], meta.get("source_sha256"), list(meta["features"]),
        float(meta["threshold"]), meta["spark_version"], json.dumps(meta.get("params", {})),
        _floats(metrics.get("validation")), _floats(metrics.get("test")), json.dumps(meta))


def mirror_activations(session: Any, settings: Settings) -> None:
    """Upsert the activation log (idempotent: one row per logged change)."""
    store = _store(session, settings)
    for e in activation_log(settings):
        store.write_activation(MODEL_NAME, _ts(e["ts"]), e["version"], e["action"],
                               e["previous"])


def mirror_evaluation(session: Any, settings: Settings, version: str) -> bool:
    """Upsert a version's evaluation (table rows + the JSON for the plots), if any."""
    ev = read_evaluation(settings, version)
    if ev is None:
        return False
    _store(session, settings).write_evaluation(version, _ts(ev["evaluated"]), ev["table"],
                                               json.dumps(ev))
    return True


def mirror_all(session: Any, settings: Settings, version: str | None = None) -> list[str]:
    """Mirror one version (or every version) and the activation log; returns versions."""
    versions = [version] if version else [m["version"] for m in list_versions(settings)]
    for v in versions:
        mirror_version(session, settings, v)
        mirror_evaluation(session, settings, v)
    mirror_activations(session, settings)
    return versions

"""The demo's shipped risk model (ops/demo_model/) and the registry's export/import.

The shipped version must work with the code as it is: it registers into an empty
registry, loads, scores with the current feature list, and its evaluation draws every
figure of the Models page. When this fails after a change of the features, the model
format or the evaluation, rebuild it: ``bash scripts/build_demo_model.sh``.

Archives are untrusted input: links, paths outside the version, foreign files and
mismatched versions are refused and leave nothing behind.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from backend.risk import registry
from backend.risk.features import FEATURE_SETS, FEATURES
from backend.risk.train import TrainConfig
from backend.settings import Settings
from ops.demo_cli import DEMO_MODEL_DIR, _demo_model
from webapp.risk_models import evaluation_figures as mv


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache")


def _shipped() -> Path:
    archives = sorted(DEMO_MODEL_DIR.glob("*.tar.gz"))
    assert len(archives) == 1, "ship exactly one demo model (scripts/build_demo_model.sh)"
    return archives[0]


def test_the_shipped_model_registers_loads_and_scores_with_the_current_features(
        settings: Settings) -> None:
    version, added = registry.import_version(settings, _shipped())
    assert added and registry.import_version(settings, _shipped()) == (version, False)
    model = registry.load(settings, version)
    # trained on the default feature set, all of which the live features compute
    assert model.features == FEATURE_SETS[TrainConfig().feature_set], \
        "rebuild: bash scripts/build_demo_model.sh"
    assert set(model.features) <= set(FEATURES)
    risk = model.margin(np.zeros((3, len(model.features))))
    assert risk.shape == (3,) and np.isfinite(risk).all()
    meta = registry.read_metadata(settings, version)
    assert meta["n_patients"]["test"] > 1000  # the full set A, not a toy
    assert "PhysioNet/CinC 2019" in meta["training_data"]


def test_the_shipped_evaluation_draws_every_figure_of_the_models_page(
        settings: Settings) -> None:
    version, _ = registry.import_version(settings, _shipped())
    ev = registry.read_evaluation(settings, version)
    assert ev is not None and ev["version"] == version
    for level in mv.LEVELS:
        for kind in ("roc", "pr"):
            fig = mv.curve_figure(ev, kind, level)
            assert any(len(t.x or ()) > 2 for t in fig.data), (kind, level)
    assert mv.calibration_figure(ev).data and mv.burden_figure(ev).data
    assert mv.ranking_rows(ev) and mv.operating_rows(ev)
    assert ev.get("score_reference"), "the live drift panel needs the reference scores"


def test_the_shipped_model_carries_its_site_evaluation_for_the_models_page(
        settings: Settings) -> None:
    version, _ = registry.import_version(settings, _shipped())
    doc = registry.read_json_file(registry.version_dir(settings, version) / "sites.json")
    assert doc is not None and doc["version"] == version, \
        "rebuild: bash scripts/build_demo_model.sh (it runs `icu model sites`)"
    # every split scheme, each with the numbers the page's table and targets show
    schemes = {s["scheme"] for s in doc["schemes"]}
    assert {"random", "medical_to_surgical", "surgical_to_medical"} <= schemes, schemes
    rows = mv.sites_rows(doc)
    assert len(rows) >= len(schemes) and all(len(r) == len(mv.SITES_HEADER) for r in rows)
    assert mv.target_lines(doc) and mv.site_baseline_rows(doc)
    assert mv.sites_calibration_figure(doc).data


def test_the_demo_activates_the_shipped_model_once_and_keeps_an_active_one(
        settings: Settings) -> None:
    line = _demo_model(settings)
    version = registry.active_version(settings)
    assert version and version in line and "shipped" in line
    assert "already active" in _demo_model(settings)
    assert registry.active_version(settings) == version


def test_export_then_import_round_trips_a_version(settings: Settings, tmp_path: Path) -> None:
    version, _ = registry.import_version(settings, _shipped())
    out = registry.export_version(settings, version, tmp_path / "again.tar.gz")
    again = tmp_path / "again.tar.gz"
    assert out == again
    other = Settings(cache_dir=tmp_path / "other")
    assert registry.import_version(other, again) == (version, True)
    for name in registry.ARCHIVE_FILES:
        a = registry.version_dir(settings, version) / name
        b = registry.version_dir(other, version) / name
        assert a.exists() == b.exists(), name
        if a.exists():
            assert a.read_bytes() == b.read_bytes(), name
    # packing is deterministic: the same version gives the same bytes
    assert registry.export_version(settings, version, tmp_path / "b.tar.gz").read_bytes() \
        == again.read_bytes()


def _tar(path: Path, members: list[tuple[str, bytes | None, str]]) -> Path:
    """(name, data, kind) with kind file / symlink / dir."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return path


V = "20260101T000000Z"
META = json.dumps({"version": V, "features": ["a"], "threshold": 0.5}).encode()
TREES = json.dumps({"features": ["a"], "weights": [1.0], "trees": [
    {"feature": [-1], "threshold": [0.0], "left": [-1], "right": [-1], "value": [0.1]}]}
                   ).encode()


@pytest.mark.parametrize(("members", "message"), [
    ([(f"{V}/metadata.json", META, "file"), (f"{V}/trees.json", None, "symlink")],
     "unexpected entry"),
    ([(f"{V}/metadata.json", META, "file"), (f"{V}/../../evil.json", b"x", "file")],
     "unexpected entry"),
    ([(f"{V}/metadata.json", META, "file"), (f"{V}/run.sh", b"x", "file")],
     "unexpected entry"),
    ([("not-a-version/metadata.json", META, "file")], "not a model version"),
    ([(f"{V}/metadata.json", META, "file")], "missing trees.json"),
    ([(f"{V}/metadata.json", META, "file"), ("20260102T000000Z/trees.json", TREES, "file")],
     "more than one version"),
    ([(f"{V}/metadata.json", META.replace(V.encode(), b"20260102T000000Z"), "file"),
      (f"{V}/trees.json", TREES, "file")], "names version"),
    ([(f"{V}/metadata.json", META, "file"),
      (f"{V}/trees.json", TREES.replace(b'["a"]', b'["b"]', 1), "file")],
     "different features"),
])
def test_hostile_or_broken_archives_are_refused_and_leave_nothing(
        settings: Settings, tmp_path: Path, members, message: str) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", members)
    with pytest.raises((registry.RegistryError, ValueError), match=message):
        registry.import_version(settings, archive)
    root = registry.models_dir(settings)
    assert not root.exists() or not any(root.iterdir())
    assert not (tmp_path / "evil.json").exists()


def test_a_sound_minimal_archive_imports(settings: Settings, tmp_path: Path) -> None:
    archive = _tar(tmp_path / "ok.tar.gz", [(V, None, "dir"), (f"{V}/metadata.json", META,
                                                              "file"),
                                           (f"{V}/trees.json", TREES, "file")])
    assert registry.import_version(settings, archive) == (V, True)
    assert registry.load(settings, V).threshold == 0.5


def test_a_versions_site_evaluation_travels_in_its_archive(settings: Settings,
                                                           tmp_path: Path) -> None:
    sites = json.dumps({"version": V, "schemes": []}).encode()
    archive = _tar(tmp_path / "ok.tar.gz", [(f"{V}/metadata.json", META, "file"),
                                            (f"{V}/trees.json", TREES, "file"),
                                            (f"{V}/sites.json", sites, "file")])
    assert registry.import_version(settings, archive) == (V, True)
    assert (registry.version_dir(settings, V) / "sites.json").read_bytes() == sites
    again = registry.export_version(settings, V, tmp_path / "again.tar.gz")
    with tarfile.open(again) as tar:
        assert f"{V}/sites.json" in tar.getnames()


def test_the_demo_stops_the_servers_it_started_and_says_how_to_stop_the_others() -> None:
    from ops.demo_cli import kept_line, shutdown_plan

    servers = ("kafka", "cassandra")
    assert shutdown_plan(servers, set(), False) == (["kafka", "cassandra"], [])
    assert kept_line([], set()) is None
    to_stop, kept = shutdown_plan(servers, {"cassandra"}, False)
    assert (to_stop, kept) == (["kafka"], ["cassandra"])
    assert kept_line(kept, {"cassandra"}) == (
        "Cassandra keeps running (already running before the demo); stop it with: "
        "icu services stop")
    to_stop, kept = shutdown_plan(servers, set(), True)
    assert to_stop == [] and kept_line(kept, set()) == (
        "Kafka and Cassandra keep running (--keep-services); stop them with: "
        "icu services stop")

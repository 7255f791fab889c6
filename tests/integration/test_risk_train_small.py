"""End to end on a small subset of PhysioNet 2019 set A: Spark MLlib training, registry,
evaluation against the baselines, scoring one patient's history, Cassandra mirroring
(against a recording session checked column by column with the migration file)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from backend.risk import data as data_mod
from backend.risk import registry
from backend.risk.features import FEATURE_SETS, FEATURES, hourly_features
from backend.risk.model_evaluation import MODEL, MODEL_MONITOR, evaluate_model, markdown_table
from backend.risk.split import PARTS, Split
from backend.risk.train import TrainConfig, train
from backend.settings import Settings, get_settings
from backend.storage.migrate import MIGRATIONS_DIR, split_statements

pytestmark = pytest.mark.integration

SHARED = Settings()


def small_settings(tmp: Path) -> Settings:
    settings = Settings(cache_dir=tmp / "cache", data_dir=SHARED.data_dir,
                        spark={"batch_master": "local[2]", "shuffle_partitions": 2})
    # The shared data is part of every checkout's setup: missing data fails, never skips.
    assert data_mod.archive_path(settings).exists(), f"no archive under {settings.data_dir}"
    # reuse an already unpacked copy (verified by file count) instead of unpacking again
    shared = data_mod.cache_root(SHARED)
    if (shared / "unpacked.json").exists():
        settings.cache_dir.mkdir(parents=True)
        (settings.cache_dir / "physionet2019").symlink_to(shared)
    return settings


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    settings = small_settings(tmp_path_factory.mktemp("risk"))
    config = TrainConfig(seed=3, max_patients=300, max_iter=5, max_depth=3,
                         negative_rate=1.0)
    result = train(settings, config, progress=False)
    return settings, result.version


def test_training_saves_a_complete_active_version(trained: tuple[Settings, str]) -> None:
    settings, version = trained
    d = registry.version_dir(settings, version)
    for name in ("metadata.json", "trees.json", "split.json", "spark"):
        assert (d / name).exists(), name
    meta = registry.read_metadata(settings, version)
    assert meta["version"] == version
    assert len(meta["training_data_sha256"]) == 64
    assert meta["features"] == list(FEATURE_SETS["v1"])
    import pyspark

    assert meta["spark_version"] == pyspark.__version__
    assert meta["split_scheme"] == "random" and meta["feature_set"] == "v1"
    # calibrated on validation (Platt), thresholds on the calibrated risks
    assert meta["calibration"]["method"] == "platt"
    assert meta["calibration"]["fitted_on"]["n_stays"] == meta["n_patients"]["validation"]
    assert meta["calibration_monitor_only"]["fitted_on"]["labs"] == "hidden"
    assert set(meta["operating_points"]) == {"NEWS2 >= 5", "NEWS2 >= 7", "qSOFA >= 2",
                                             "SIRS >= 2", "HR > 120 or SpO2 < 90"}
    assert {"calibration_slope", "ece", "brier_base_rate"} <= set(meta["metrics"]["validation"])
    assert 0 < meta["threshold"] < 1
    assert 0 < meta["threshold_monitor_only"] < 1
    assert set(meta["feature_importances"]) == set(FEATURE_SETS["v1"])
    assert meta["spark_check_max_abs_diff"] <= 1e-9
    assert sum(meta["n_patients"].values()) == 300
    assert set(meta["metrics"]["validation"]) >= {"auroc_hourly", "utility"}
    assert registry.active_version(settings) == version  # first version activates itself


def test_split_has_no_patient_in_two_parts(trained: tuple[Settings, str]) -> None:
    settings, version = trained
    split = Split.from_dict(json.loads(
        (registry.version_dir(settings, version) / "split.json").read_text()))
    parts = [set(split.part(p)) for p in PARTS]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 300


def test_streaming_api_scores_one_patients_history(trained: tuple[Settings, str]) -> None:
    settings, version = trained
    model = registry.load_active(settings)
    assert model is not None and model.version == version
    frame = data_mod.load(settings).frame
    stay = frame[frame["patient_id"] == frame["patient_id"].iloc[0]].drop(
        columns=["patient_id", "label"])
    per_hour = model.score_frame(stay)
    # hour by hour, as a live scorer would, equals the batch computation
    for t in (0, len(stay) // 2, len(stay) - 1):
        assert model.score_history(stay.iloc[: t + 1]) == pytest.approx(per_hour[t], abs=1e-12)
    # monitor-only history (vitals, hour, age, sex)
    monitor = stay[["hour", "hr", "spo2", "temp", "sbp", "map", "dbp", "rr", "age", "sex"]]
    assert 0.0 <= model.score_history(monitor) <= 1.0
    assert hourly_features(monitor).shape == (len(stay), len(FEATURES))


def test_evaluation_side_by_side(trained: tuple[Settings, str]) -> None:
    settings, version = trained
    doc = evaluate_model(settings, version, progress=False, n_bootstrap=20)
    methods = [r["method"] for r in doc["table"]]
    assert methods[:2] == [MODEL, MODEL_MONITOR]
    assert {"NEWS2 >= 5", "NEWS2 >= 7", "qSOFA >= 2", "SIRS >= 2",
            "HR > 120 or SpO2 < 90"} <= set(methods)
    saved = json.loads((registry.version_dir(settings, version) / "evaluation.json")
                       .read_text())
    assert saved["version"] == version and saved["n_patients"] == 60
    model_row = saved["table"][0]
    for key in ("auroc_hourly", "auprc_hourly", "auroc_patient", "sensitivity_hourly",
                "specificity_patient", "utility", "alerts_per_patient_day", "brier"):
        assert key in model_row
    assert "equal_sensitivity" in saved["table"][2]
    curves = saved["curves"][MODEL]
    assert curves["roc_hourly"]["x"][0] == 0.0 and curves["roc_hourly"]["x"][-1] == 1.0
    assert len(curves["reliability_quantile_bins"]["count"]) >= 2
    assert "| Model (GBT) |" in markdown_table(saved)
    assert registry.read_metadata(settings, version)["metrics"]["test"]["auroc_hourly"] \
        == pytest.approx(model_row["auroc_hourly"])
    assert len(json.dumps(saved)) < 1_000_000  # fits a Cassandra text cell comfortably
    # calibration of the calibrated and the raw risks, and the baselines' verdicts
    assert {"calibration_slope", "calibration_intercept", "ece", "brier",
            "brier_base_rate"} <= set(model_row["calibration"])
    assert model_row["calibration"]["brier"] == pytest.approx(model_row["brier"])
    assert "brier" in model_row["calibration_raw"]
    qsofa = next(r for r in saved["table"] if r["method"] == "qSOFA >= 2")
    assert isinstance(qsofa["model_at_threshold"][MODEL]["beats_baseline"], bool)
    stored = registry.read_metadata(settings, version)["operating_points"]["qSOFA >= 2"]
    assert qsofa["equal_sensitivity"]["validation_matched"]["model_threshold"] == \
        pytest.approx(stored["threshold"])


def test_evaluate_another_sites_export(trained: tuple[Settings, str], tmp_path: Path) -> None:
    """`icu model evaluate --data DIR` on PhysioNet-format files (here 40 set A stays the
    version never saw, copied to a directory as another hospital would export them)."""
    settings, version = trained
    split = Split.from_dict(json.loads(
        (registry.version_dir(settings, version) / "split.json").read_text()))
    source = data_mod.ensure_unpacked(settings)
    seen = set(split.train) | set(split.validation) | set(split.test)
    others = [p for p in sorted(source.glob("*.psv")) if p.stem not in seen][:40]
    export = tmp_path / "hospital_x"
    export.mkdir()
    for p in others:
        shutil.copy(p, export / p.name)
    from backend.risk.model_cli import cli

    before = (registry.version_dir(settings, version) / "evaluation.json").read_bytes() \
        if (registry.version_dir(settings, version) / "evaluation.json").exists() else None
    out = CliRunner().invoke(cli, ["evaluate", version, "--data", str(export), "--bootstrap",
                                   "0", "--quiet"], env=settings.to_env())
    assert out.exit_code == 0, out.output
    assert "40 stays of hospital_x" in out.output and "| Model (GBT) |" in out.output
    doc = json.loads((registry.version_dir(settings, version)
                      / "evaluation-hospital_x.json").read_text())
    assert doc["n_patients"] == 40 and doc["split"] == "external: hospital_x"
    assert doc["threshold"] == registry.read_metadata(settings, version)["threshold"]
    after = (registry.version_dir(settings, version) / "evaluation.json")
    assert (after.read_bytes() if after.exists() else None) == before  # untouched
    out = CliRunner().invoke(cli, ["evaluate", version, "--data", str(tmp_path / "none")],
                             env=settings.to_env())
    assert out.exit_code != 0


@pytest.fixture(scope="module")
def by_unit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    """A version trained on the medical ICU's stays of a 1,500-stay subset only."""
    settings = small_settings(tmp_path_factory.mktemp("risk-unit"))
    config = TrainConfig(seed=1, max_patients=1500, max_iter=5, max_depth=3,
                         negative_rate=1.0, split="medical_to_surgical")
    return settings, train(settings, config, progress=False).version


def test_training_on_one_icu_type_tests_on_the_other(by_unit: tuple[Settings, str]) -> None:
    settings, version = by_unit
    meta = registry.read_metadata(settings, version)
    assert meta["split_scheme"] == "medical_to_surgical"
    split = Split.from_dict(json.loads(
        (registry.version_dir(settings, version) / "split.json").read_text()))
    units = data_mod.stay_units(data_mod.load(settings, max_patients=1500, seed=1).frame)
    assert {units[p] for p in split.train + split.validation} == {"medical"}
    assert {units[p] for p in split.test} == {"surgical"}


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """The CLI reads the test's settings from the environment, not a cached copy."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def cli_settings(by_unit: tuple[Settings, str]) -> tuple[Settings, str]:
    return by_unit


def test_site_evaluation_of_a_recipe(cli_settings: tuple[Settings, str]) -> None:
    """`icu model sites`: the version's own split reuses it, the others are retrained."""
    settings, version = cli_settings
    from backend.risk.model_cli import cli

    out = CliRunner().invoke(cli, ["sites", version, "--quiet"], env=settings.to_env())
    assert out.exit_code == 0, out.output
    doc = json.loads((registry.version_dir(settings, version) / "sites.json").read_text())
    schemes = {e["scheme"]: e for e in doc["schemes"]}
    assert set(schemes) == {"random", "medical_to_surgical", "surgical_to_medical"}
    assert not schemes["medical_to_surgical"]["retrained"]
    assert schemes["random"]["retrained"] and schemes["surgical_to_medical"]["retrained"]
    for e in doc["schemes"]:
        for key in ("model", "monitor_only"):
            m = e[key]
            assert set(m["calibration_methods"]) == {"none", "platt", "isotonic"}
            assert len(m["baselines"]) == 5
            assert all(isinstance(b["matched"]["beats"], bool) for b in m["baselines"])
        assert set(doc["targets"][e["scheme"]]) >= {"utility_at_least_0.35",
                                                     "brier_below_base_rate"}
    assert "Medical ICU → surgical ICU" in out.output and "targets random" in out.output


def test_recalibrate_on_one_icu_type_and_evaluate_its_held_out_stays(
        cli_settings: tuple[Settings, str]) -> None:
    """The medical-ICU version recalibrated on the first surgical stays (the new site's
    first weeks), judged on the later surgical stays it was not fitted on."""
    settings, version = cli_settings
    from backend.risk.model_cli import cli

    env = settings.to_env()
    out = CliRunner().invoke(cli, ["recalibrate", version, "--unit", "surgical",
                                   "--fraction", "0.5"], env=env)
    assert out.exit_code == 0, out.output
    child = next(m["version"] for m in registry.list_versions(settings)
                 if m.get("parent_version") == version)
    d, parent_dir = (registry.version_dir(settings, v) for v in (child, version))
    assert (d / "trees.json").read_bytes() == (parent_dir / "trees.json").read_bytes()
    recal = json.loads((d / "recalibration.json").read_text())
    local, held = recal["reports"]["local"], recal["reports"]["held_out"]
    assert set(recal["local_stays"]).isdisjoint(recal["held_out_stays"])
    # every surgical stay of set A (the version trained on medical stays only)
    units = data_mod.stay_units(data_mod.load(settings).frame)
    assert local["n_stays"] + held["n_stays"] == sum(u == "surgical" for u in units.values())
    assert local["n_stays"] == round(0.5 * (local["n_stays"] + held["n_stays"]))
    # the medical ICU's risks are too high for the surgical ICU; after the fit they
    # are calibrated in the large on the fitted stays, and the held-out stays' average
    # risk moves towards their observed rate
    assert local["before"]["expected_over_observed"] > 1
    assert local["after"]["calibration_intercept"] == pytest.approx(0.0, abs=1e-6)
    assert abs(held["after"]["expected_over_observed"] - 1) < abs(
        held["before"]["expected_over_observed"] - 1)
    # the same hours alert (thresholds mapped through)
    assert held["alarms"]["after"]["sensitivity_patient"] == \
        held["alarms"]["before"]["sensitivity_patient"]
    assert held["alarms"]["after"]["alerts_per_patient_day"] == pytest.approx(
        held["alarms"]["before"]["alerts_per_patient_day"])
    assert "held_out  after" in out.output
    # the new version scores like the parent up to the calibration
    old, new = registry.load(settings, version), registry.load(settings, child)
    assert new.calibration != old.calibration and new.trees_to_dict() == old.trees_to_dict()


def test_activate_and_rollback(trained: tuple[Settings, str]) -> None:
    settings, version = trained
    # a second version: a copy of the first (the registry only needs its files)
    second = registry.new_version(settings)
    shutil.copytree(registry.version_dir(settings, version),
                    registry.partial_dir(settings, second))
    registry.write_json(registry.partial_dir(settings, second) / "metadata.json",
                        {**registry.read_metadata(settings, version), "version": second,
                         "created": registry.now_iso()})
    registry.publish(settings, second)
    runner = CliRunner()
    env = settings.to_env()
    from backend.risk.model_cli import cli

    out = runner.invoke(cli, ["activate", second], env=env)
    assert out.exit_code == 0, out.output
    assert registry.active_version(settings) == second
    assert registry.load_active(settings).version == second
    out = runner.invoke(cli, ["list"], env=env)
    assert out.exit_code == 0 and f"* {second}" in out.output
    out = runner.invoke(cli, ["rollback"], env=env)
    assert out.exit_code == 0, out.output
    assert registry.active_version(settings) == version
    out = runner.invoke(cli, ["rollback"], env=env)
    assert out.exit_code != 0 and "nothing to roll back" in out.output
    out = runner.invoke(cli, ["activate", "20990101T000000Z"], env=env)
    assert out.exit_code != 0
    with pytest.raises(registry.RegistryError):
        registry.version_dir(settings, "../../etc")
    assert [e["action"] for e in registry.activation_log(settings)] == [
        "activate", "activate", "rollback"]


class RecordingSession:
    """Checks every INSERT against the tables and columns of the migration file."""

    def __init__(self, keyspace: str) -> None:
        text = (MIGRATIONS_DIR / "0100_model_registry.cql").read_text()
        self.tables: dict[str, set[str]] = {}
        for stmt in split_statements(text.replace("{keyspace}", keyspace)):
            m = re.match(rf"CREATE TABLE IF NOT EXISTS {keyspace}\.(\w+) \((.*)\)", stmt,
                         re.S)
            assert m, stmt
            cols = {line.split()[0] for line in m.group(2).splitlines()
                    if line.strip() and not line.strip().startswith("PRIMARY")}
            self.tables[m.group(1)] = cols
        self.keyspace = keyspace
        self.rows: list[tuple[str, dict]] = []

    def prepare(self, query: str) -> str:
        return query

    def execute(self, query: str, params: tuple) -> None:
        m = re.match(rf"INSERT INTO {self.keyspace}\.(\w+) \(([^)]*)\) VALUES", query)
        assert m, query
        table, cols = m.group(1), [c.strip() for c in m.group(2).split(",")]
        assert table in self.tables, table
        assert set(cols) <= self.tables[table], set(cols) - self.tables[table]
        assert len(cols) == len(params) == query.count("?")
        self.rows.append((table, dict(zip(cols, params, strict=True))))


def test_cassandra_mirror_matches_the_migration(trained: tuple[Settings, str]) -> None:
    settings, version = trained
    if registry.read_evaluation(settings, version) is None:
        evaluate_model(settings, version, progress=False, n_bootstrap=0)
    session = RecordingSession(settings.cassandra.keyspace)
    done = registry.mirror_all(session, settings, version)
    assert done == [version]
    tables = [t for t, _ in session.rows]
    assert tables.count("risk_models") == 1 and tables.count("risk_model_versions") == 1
    assert tables.count("risk_model_evaluations") == 7
    assert tables.count("risk_model_evaluation_docs") == 1
    assert "risk_model_activations" in tables
    model_row = next(r for t, r in session.rows if t == "risk_models")
    assert model_row["features"] == list(FEATURE_SETS["v1"])
    assert all(np.isfinite(v) for v in model_row["validation_metrics"].values())

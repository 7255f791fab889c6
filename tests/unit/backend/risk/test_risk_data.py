"""Another site's stays in the Challenge's format (backend.risk.data.load_directory): a
directory or a tar archive of .psv files, the ICU type per stay, and clear refusals."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from backend.risk import data as data_mod
from backend.risk.train import LEGACY_PARAMS, TrainConfig

HEADER = ("HR|O2Sat|Temp|SBP|MAP|DBP|Resp|EtCO2|BaseExcess|HCO3|FiO2|pH|PaCO2|SaO2|AST|BUN|"
          "Alkalinephos|Calcium|Chloride|Creatinine|Bilirubin_direct|Glucose|Lactate|"
          "Magnesium|Phosphate|Potassium|Bilirubin_total|TroponinI|Hct|Hgb|PTT|WBC|"
          "Fibrinogen|Platelets|Age|Gender|Unit1|Unit2|HospAdmTime|ICULOS|SepsisLabel")


def stay(rng: np.random.Generator, hours: int, unit: tuple[str, str], septic: bool) -> bytes:
    cols = HEADER.split("|")
    lines = [HEADER]
    for h in range(1, hours + 1):
        row = {c: "NaN" for c in cols}
        row.update(HR=f"{rng.uniform(60, 130):.1f}", O2Sat="97", Age="71.5", Gender="0",
                   Unit1=unit[0], Unit2=unit[1], HospAdmTime="-3.2", ICULOS=str(h),
                   SepsisLabel="1" if septic and h > hours - 3 else "0")
        if h == 2:
            row["Lactate"] = "2.4"
        lines.append("|".join(row[c] for c in cols))
    return ("\n".join(lines) + "\n").encode()


def write_site(root: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {"q000002.psv": stay(rng, 5, ("1", "0"), True),
             "q000001.psv": stay(rng, 4, ("0", "1"), False),
             "q000003.psv": stay(rng, 3, ("NaN", "NaN"), False)}
    root.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (root / name).write_bytes(body)
    return files


def test_a_directory_of_stays(tmp_path: Path) -> None:
    write_site(tmp_path / "site" / "nested")
    ds = data_mod.load_directory(tmp_path / "site")
    f = ds.frame
    assert ds.n_patients == 3 and len(f) == 12
    assert list(f["patient_id"].unique()) == ["q000001", "q000002", "q000003"]
    assert f.groupby("patient_id")["label"].max().to_dict() == {
        "q000001": 0, "q000002": 1, "q000003": 0}
    assert f.loc[f["hour"] == 2, "lactate"].tolist() == [2.4] * 3
    assert data_mod.stay_units(f) == {"q000001": "surgical", "q000002": "medical",
                                      "q000003": None}
    assert len(ds.data_sha256) == 64


def test_a_tar_archive_gives_the_same_frame(tmp_path: Path) -> None:
    files = write_site(tmp_path / "site")
    archive = tmp_path / "site.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(f"training_setX/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    a = data_mod.load_directory(tmp_path / "site").frame
    b = data_mod.load_directory(archive).frame
    assert a.equals(b)


def test_without_the_icu_type_columns_every_unit_is_unknown(tmp_path: Path) -> None:
    body = stay(np.random.default_rng(1), 3, ("1", "0"), False).decode().splitlines()
    cols = body[0].split("|")
    keep = [i for i, c in enumerate(cols) if c not in ("Unit1", "Unit2")]
    text = "\n".join("|".join(line.split("|")[i] for i in keep) for line in body) + "\n"
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x1.psv").write_text(text)
    f = data_mod.load_directory(tmp_path / "s").frame
    assert f["unit1"].isna().all() and data_mod.stay_units(f) == {"x1": None}


def test_refusals(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.psv files"):
        data_mod.load_directory(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.psv").write_text("HR|Foo\n80|1\n")
    with pytest.raises(ValueError, match="missing columns"):
        data_mod.load_directory(tmp_path / "bad")
    write_site(tmp_path / "two" / "a")
    write_site(tmp_path / "two" / "b")
    with pytest.raises(ValueError, match="appears twice"):
        data_mod.load_directory(tmp_path / "two")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a directory"):
        data_mod.load_directory(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError):
        data_mod.load_directory(tmp_path / "nowhere")


def test_recipe_of_an_old_version_is_rerun_as_it_was() -> None:
    old = {"seed": 0, "max_patients": None, "fractions": [0.6, 0.2, 0.2], "max_iter": 100,
           "max_depth": 5, "negative_rate": 0.35, "lab_dropout": 0.25}
    config = TrainConfig.from_params(old)
    assert (config.feature_set, config.calibration, config.split) == (
        LEGACY_PARAMS["feature_set"], "none", "random")
    assert config.fractions == (0.6, 0.2, 0.2)
    with pytest.raises(ValueError, match="unknown feature set"):
        TrainConfig(feature_set="nope")

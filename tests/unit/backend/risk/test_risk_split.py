"""Patient-level split: no patient in two parts, stratified, seeded, order-independent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.risk.split import PARTS, RANDOM, SITE_SCHEMES, Split, site_split, split_patients
from backend.risk.train import septic_by_patient


def cohort(n_plain: int = 1000, n_septic: int = 100) -> dict[str, bool]:
    ids = {f"p{i:05d}": False for i in range(n_plain)}
    ids.update({f"s{i:05d}": True for i in range(n_septic)})
    return ids


def test_no_patient_in_two_parts_and_every_patient_in_one() -> None:
    septic = cohort()
    s = split_patients(septic, seed=0)
    parts = [set(s.part(p)) for p in PARTS]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert parts[0] | parts[1] | parts[2] == set(septic)


def test_stratified_60_20_20() -> None:
    septic = cohort(1000, 100)
    s = split_patients(septic, seed=1)
    counts = {p: (sum(not septic[i] for i in s.part(p)), sum(septic[i] for i in s.part(p)))
              for p in PARTS}
    assert counts == {"train": (600, 60), "validation": (200, 20), "test": (200, 20)}


def test_seeded_and_independent_of_input_order() -> None:
    septic = cohort(300, 30)
    a = split_patients(septic, seed=5)
    shuffled = dict(reversed(list(septic.items())))
    assert split_patients(shuffled, seed=5) == a
    assert split_patients(septic, seed=6).test != a.test


def test_round_trip_through_json() -> None:
    s = split_patients(cohort(50, 10), seed=2, fractions=(0.5, 0.25, 0.25))
    assert Split.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError):
        s.part("holdout")


def test_invalid_fractions() -> None:
    with pytest.raises(ValueError):
        split_patients(cohort(10, 2), seed=0, fractions=(0.6, 0.3, 0.3))


def test_rows_of_a_frame_never_leak_across_parts() -> None:
    # a row-level frame as in training: every row follows its patient
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        n = int(rng.integers(3, 20))
        septic = i % 10 == 0
        labels = [0] * n if not septic else [0] * (n - 2) + [1, 1]
        rows.append(pd.DataFrame({"patient_id": f"p{i:03d}", "hour": range(1, n + 1),
                                  "label": labels}))
    frame = pd.concat(rows, ignore_index=True)
    s = split_patients(septic_by_patient(frame), seed=3)
    owner = {pid: p for p in PARTS for pid in s.part(p)}
    part_of_row = frame["patient_id"].map(owner)
    assert part_of_row.notna().all()
    assert (frame.groupby("patient_id").apply(
        lambda g: part_of_row[g.index].nunique(), include_groups=False) == 1).all()
    assert sum(septic_by_patient(frame)[p] for p in s.test) == 4  # 20 septic x 20 %


def units_for(septic: dict[str, bool], seed: int = 0) -> dict[str, str | None]:
    """ICU type per patient: about a quarter each medical and surgical, half unknown."""
    rng = np.random.default_rng(seed)
    kinds = np.array(["medical", "surgical", None, None], dtype=object)
    return {p: kinds[i] for p, i in zip(sorted(septic), rng.integers(0, 4, len(septic)),
                                         strict=True)}


@pytest.mark.parametrize("scheme", list(SITE_SCHEMES))
def test_site_split_trains_on_one_icu_type_and_tests_on_the_other(scheme: str) -> None:
    septic = cohort(2000, 200)
    units = units_for(septic)
    s = site_split(scheme, septic, units, seed=4)
    source, target = SITE_SCHEMES[scheme]
    assert s.scheme == scheme
    assert {units[p] for p in s.train + s.validation} == {source}
    assert set(s.test) == {p for p, u in units.items() if u == target}  # every one of them
    parts = [set(s.part(p)) for p in PARTS]
    assert not parts[0] & parts[1] and not (parts[0] | parts[1]) & parts[2]
    # stays without a recorded ICU type are in no part
    assert not {p for p, u in units.items() if u is None} & set().union(*parts)
    # train/validation 75/25 within the ICU type, stratified
    source_ids = [p for p, u in units.items() if u == source]
    assert len(s.train) + len(s.validation) == len(source_ids)
    assert len(s.validation) == pytest.approx(0.25 * len(source_ids), abs=2)
    share = sum(septic[p] for p in s.validation) / len(s.validation)
    assert share == pytest.approx(sum(septic[p] for p in source_ids) / len(source_ids),
                                  abs=0.02)
    assert Split.from_dict(s.to_dict()) == s
    assert site_split(scheme, dict(reversed(list(septic.items()))), units, seed=4) == s


def test_random_scheme_is_the_patient_split_and_old_split_files_still_load() -> None:
    septic = cohort(300, 30)
    assert site_split(RANDOM, septic, units_for(septic), seed=2) == split_patients(septic,
                                                                                   seed=2)
    old = split_patients(septic, seed=2).to_dict()
    del old["scheme"]  # split.json of versions saved before the site splits
    assert Split.from_dict(old).scheme == RANDOM


def test_unknown_scheme_and_a_missing_icu_type_are_refused() -> None:
    septic = cohort(100, 10)
    with pytest.raises(ValueError, match="unknown split scheme"):
        site_split("by_ward", septic, units_for(septic), seed=0)
    with pytest.raises(ValueError, match="no stays"):
        site_split("medical_to_surgical", septic, dict.fromkeys(septic, "medical"), seed=0)

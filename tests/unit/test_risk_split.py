"""Patient-level split: no patient in two parts, stratified, seeded, order-independent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.risk.split import PARTS, Split, split_patients
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

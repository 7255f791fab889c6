"""Train/validation/test split by patient (never by row), seeded and stratified.

Every stay goes to exactly one part, so no hour of a test patient is ever seen in
training or threshold selection. Stratification by "septic at some point of the stay"
keeps the share of septic stays equal across parts. The split depends only on the set of
patient ids, their septic flags and the seed (not on row order), and is saved with the
model (``split.json``) so evaluation reuses exactly the training run's test patients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PARTS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS

    def part(self, name: str) -> tuple[str, ...]:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def to_dict(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions),
                **{p: list(self.part(p)) for p in PARTS}}

    @classmethod
    def from_dict(cls, d: Mapping) -> Split:
        return cls(tuple(d["train"]), tuple(d["validation"]), tuple(d["test"]),
                   int(d["seed"]), tuple(d["fractions"]))  # type: ignore[arg-type]


def split_patients(septic: Mapping[str, bool], *, seed: int,
                   fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> Split:
    """Split patient ids 60/20/20 (by default) within the septic and non-septic strata."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for stratum in (False, True):
        ids = sorted(str(pid) for pid, s in septic.items() if bool(s) is stratum)
        rng = np.random.default_rng([seed, int(stratum)])
        order = [ids[i] for i in rng.permutation(len(ids))]
        n_train = round(len(ids) * fractions[0])
        n_val = round(len(ids) * fractions[1])
        parts["train"] += order[:n_train]
        parts["validation"] += order[n_train:n_train + n_val]
        parts["test"] += order[n_train + n_val:]
    return Split(*(tuple(sorted(parts[p])) for p in PARTS), seed=seed,
                 fractions=tuple(fractions))  # type: ignore[arg-type]

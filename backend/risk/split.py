"""Train/validation/test split by patient (never by row), seeded and stratified.

Every stay goes to exactly one part, so no hour of a test patient is ever seen in
training or threshold selection. Stratification by "septic at some point of the stay"
keeps the share of septic stays equal across parts. The split depends only on the set of
patient ids, their septic flags and the seed (not on row order), and is saved with the
model (``split.json``) so evaluation reuses exactly the training run's test patients.

Besides the random split (``scheme="random"``), the *site* splits hold out one ICU type
of hospital A: ``medical_to_surgical`` trains and validates on the medical ICU's stays
(``Unit1``) and tests on every stay of the surgical ICU (``Unit2``), and
``surgical_to_medical`` the other way round. Stays whose ICU type is not recorded are in
neither part of a site split. Within the training ICU the stays are split
``SITE_FRACTIONS`` into train and validation, stratified and seeded as above.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PARTS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
RANDOM = "random"
# scheme -> (ICU type trained and validated on, ICU type tested on)
SITE_SCHEMES: dict[str, tuple[str, str]] = {
    "medical_to_surgical": ("medical", "surgical"),
    "surgical_to_medical": ("surgical", "medical"),
}
SCHEMES: tuple[str, ...] = (RANDOM, *SITE_SCHEMES)
SITE_FRACTIONS = (0.75, 0.25, 0.0)
UNITS = ("medical", "surgical")  # PhysioNet 2019: Unit1 = MICU, Unit2 = SICU


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]
    seed: int
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    scheme: str = RANDOM

    def part(self, name: str) -> tuple[str, ...]:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r}; expected one of {PARTS}")
        return getattr(self, name)

    def to_dict(self) -> dict:
        return {"seed": self.seed, "fractions": list(self.fractions), "scheme": self.scheme,
                **{p: list(self.part(p)) for p in PARTS}}

    @classmethod
    def from_dict(cls, d: Mapping) -> Split:
        return cls(tuple(d["train"]), tuple(d["validation"]), tuple(d["test"]),
                   int(d["seed"]), tuple(d["fractions"]),  # type: ignore[arg-type]
                   str(d.get("scheme", RANDOM)))


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


def site_split(scheme: str, septic: Mapping[str, bool], units: Mapping[str, str | None], *,
               seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS) -> Split:
    """The split of ``scheme`` (``SCHEMES``). ``units``: ICU type per patient ("medical",
    "surgical" or None when not recorded); ``fractions`` applies to the random scheme."""
    if scheme == RANDOM:
        return split_patients(septic, seed=seed, fractions=fractions)
    if scheme not in SITE_SCHEMES:
        raise ValueError(f"unknown split scheme {scheme!r}; expected one of {SCHEMES}")
    source, target = SITE_SCHEMES[scheme]
    inside = split_patients({p: s for p, s in septic.items() if units.get(p) == source},
                            seed=seed, fractions=SITE_FRACTIONS)
    test = tuple(sorted(str(p) for p in septic if units.get(p) == target))
    if not inside.train or not test:
        raise ValueError(f"split {scheme}: no stays of the {source} or {target} ICU")
    return Split(inside.train, inside.validation, test, seed=seed, fractions=SITE_FRACTIONS,
                 scheme=scheme)

"""SIRS, the systemic inflammatory response syndrome criteria, as a pure function.

Source: Bone RC, Balk RA, Cerra FB, et al. Definitions for sepsis and organ failure and
guidelines for the use of innovative therapies in sepsis. The ACCP/SCCM Consensus
Conference Committee. American College of Chest Physicians/Society of Critical Care
Medicine. Chest 1992;101(6):1644-1655, doi:10.1378/chest.101.6.1644.

Four criteria, one point each, in ``SIRS_CRITERIA``:

* temperature > 38 °C or < 36 °C,
* heart rate > 90/min,
* respiratory rate > 20/min or PaCO2 < 32 mmHg (4.3 kPa),
* white cell count > 12 or < 4 x10^9/L (12,000 / 4,000 per mm³), or > 10 % immature
  (band) forms.

SIRS is positive at 2 or more criteria; it can be positive with inputs missing.

Decisions:

* Monitor vitals are rounded half-up to the resolution NEWS2 uses (temperature 0.1 °C,
  heart and respiratory rate whole numbers; ``backend.scores.news2.measurement``) so that
  both scores agree with the displayed value: temperature 38.04 -> 38.0 is not > 38, 38.05
  -> 38.1 is; HR 90.4 -> 90 is not > 90, 90.5 -> 91 is; 35.95 -> 36.0 is not < 36.
  Laboratory values (PaCO2, WBC, bands) are compared exactly as reported.
* A criterion with two alternative inputs is evaluated when *either* is present (RR alone,
  without a blood gas, evaluates the respiratory criterion; a WBC without a differential
  evaluates the white-cell criterion). It is met if any present input meets it.
* ``missing`` names criteria by their first input: ``"temp"``, ``"hr"``, ``"rr"`` (neither
  RR nor PaCO2 given), ``"wbc"`` (neither WBC nor bands given).

Invalid input (negative or non-finite numbers, bands above 100 %) raises ``ValueError``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from backend.scores.news2 import measurement

__all__ = ["SIRS_CRITERIA", "SIRS_POSITIVE", "SirsResult", "sirs"]


class Threshold(NamedTuple):
    """``compare(input rounded to decimals, limit)``; ``decimals`` None = not rounded."""

    input: str
    compare: Callable[[Decimal, Decimal], bool]
    limit: Decimal
    decimals: int | None
    text: str


# The criterion table (Bone et al. 1992): criterion -> alternatives, any of which meets it.
SIRS_CRITERIA: dict[str, tuple[Threshold, ...]] = {
    "temp": (
        Threshold("temp", operator.gt, Decimal(38), 1, "temperature > 38 °C"),
        Threshold("temp", operator.lt, Decimal(36), 1, "temperature < 36 °C"),
    ),
    "hr": (Threshold("hr", operator.gt, Decimal(90), 0, "heart rate > 90/min"),),
    "rr": (
        Threshold("rr", operator.gt, Decimal(20), 0, "respiratory rate > 20/min"),
        Threshold("paco2", operator.lt, Decimal(32), None, "PaCO2 < 32 mmHg"),
    ),
    "wbc": (
        Threshold("wbc", operator.gt, Decimal(12), None, "WBC > 12 x10^9/L"),
        Threshold("wbc", operator.lt, Decimal(4), None, "WBC < 4 x10^9/L"),
        Threshold("bands_pct", operator.gt, Decimal(10), None, "bands > 10 %"),
    ),
}
SIRS_POSITIVE = 2
_MAXIMUM: dict[str, float] = {"bands_pct": 100}


@dataclass(frozen=True, slots=True)
class SirsResult:
    score: int
    positive: bool  # score >= 2
    complete: bool  # all four criteria could be evaluated
    missing: tuple[str, ...]  # criteria not evaluated: "temp", "hr", "rr", "wbc"
    met: tuple[str, ...] = ()  # criteria met, same names


def sirs(
    *,
    temp: float | None,
    hr: float | None,
    rr: float | None,
    paco2: float | None = None,
    wbc: float | None = None,
    bands_pct: float | None = None,
) -> SirsResult:
    """SIRS over the criteria that can be evaluated (see the module docstring)."""
    values: dict[str, Any] = {
        "temp": temp, "hr": hr, "rr": rr, "paco2": paco2, "wbc": wbc, "bands_pct": bands_pct,
    }
    met: list[str] = []
    missing: list[str] = []
    for criterion, alternatives in SIRS_CRITERIA.items():
        results = [
            t.compare(
                measurement(t.input, values[t.input], decimals=t.decimals,
                            maximum=_MAXIMUM.get(t.input)),
                t.limit,
            )
            for t in alternatives
            if values[t.input] is not None
        ]
        if not results:
            missing.append(criterion)
        elif any(results):
            met.append(criterion)
    return SirsResult(
        score=len(met),
        positive=len(met) >= SIRS_POSITIVE,
        complete=not missing,
        missing=tuple(missing),
        met=tuple(met),
    )

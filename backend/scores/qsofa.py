"""qSOFA, the quick Sequential Organ Failure Assessment (Sepsis-3), as a pure function.

Source: Seymour CW, Liu VX, Iwashyna TJ, et al. Assessment of clinical criteria for sepsis:
for the Third International Consensus Definitions for Sepsis and Septic Shock (Sepsis-3).
JAMA 2016;315(8):762-774, doi:10.1001/jama.2016.0288; adopted by Singer M, Deutschman CS,
Seymour CW, et al. The Third International Consensus Definitions for Sepsis and Septic
Shock (Sepsis-3). JAMA 2016;315(8):801-810, doi:10.1001/jama.2016.0287.

One point each, in ``QSOFA_CRITERIA``:

* respiratory rate >= 22/min,
* systolic blood pressure <= 100 mmHg,
* altered mentation: Glasgow Coma Scale < 15 (the study's definition) or, from the NEWS2
  ACVPU scale, anything other than Alert (new confusion, voice, pain, unresponsive).

qSOFA is positive at 2 or more points. It can be positive with inputs missing (two
available criteria met); a score below 2 with criteria missing is *not* a negative result,
see ``QsofaResult.indeterminate``.

Decisions:

* Respiratory rate and systolic BP are rounded half-up to whole numbers before comparison,
  exactly as for NEWS2 (``backend.scores.news2.measurement``): RR 21.5 -> 22 meets the
  criterion, SBP 100.5 -> 101 does not.
* When both GCS and ACVPU are given, mentation is altered if *either* says so (a patient
  with GCS 15 recorded as newly confused counts as altered).
* ``missing`` names criteria, not inputs: ``"rr"``, ``"sbp"``, ``"mentation"`` (the last
  when neither ``gcs`` nor ``consciousness`` is given).

Invalid input (negative or non-finite numbers, a GCS that is not an integer from 3 to 15,
an unknown ACVPU letter) raises ``ValueError``.
"""

from __future__ import annotations

import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from backend.messages import Consciousness
from backend.scores.news2 import measurement

__all__ = ["ALTERED_ACVPU", "QSOFA_CRITERIA", "QSOFA_POSITIVE", "QsofaResult", "qsofa"]


class Threshold(NamedTuple):
    """A criterion on one numeric input: ``compare(value rounded to decimals, limit)``."""

    compare: Callable[[Decimal, Decimal], bool]
    limit: Decimal
    decimals: int
    text: str


# The criterion table (Seymour et al. 2016), one point each.
QSOFA_CRITERIA: dict[str, Threshold] = {
    "rr": Threshold(operator.ge, Decimal(22), 0, "respiratory rate >= 22/min"),
    "sbp": Threshold(operator.le, Decimal(100), 0, "systolic BP <= 100 mmHg"),
    "gcs": Threshold(operator.lt, Decimal(15), 0, "GCS < 15"),
}
# ACVPU levels that count as altered mentation.
ALTERED_ACVPU: frozenset[Consciousness] = frozenset(
    {Consciousness.CONFUSION, Consciousness.VOICE, Consciousness.PAIN, Consciousness.UNRESPONSIVE}
)
QSOFA_POSITIVE = 2
_CRITERIA = ("rr", "sbp", "mentation")


@dataclass(frozen=True, slots=True)
class QsofaResult:
    score: int
    positive: bool  # score >= 2
    complete: bool  # all three criteria could be evaluated
    missing: tuple[str, ...]  # criteria not evaluated: "rr", "sbp", "mentation"
    met: tuple[str, ...] = ()  # criteria met, same names

    @property
    def indeterminate(self) -> bool:
        """Not positive, but the missing criteria could still make it positive."""
        return not self.positive and self.score + len(self.missing) >= QSOFA_POSITIVE


def _meets(name: str, value: Any) -> bool:
    threshold = QSOFA_CRITERIA[name]
    return threshold.compare(measurement(name, value, decimals=threshold.decimals),
                             threshold.limit)


def _gcs_altered(gcs: Any) -> bool:
    if isinstance(gcs, bool) or not isinstance(gcs, numbers.Integral) or not 3 <= gcs <= 15:
        raise ValueError(f"gcs must be an integer from 3 to 15, got {gcs!r}")
    return _meets("gcs", int(gcs))


def _acvpu_altered(consciousness: Any) -> bool:
    try:
        return Consciousness(consciousness) in ALTERED_ACVPU
    except ValueError:
        raise ValueError(
            f"consciousness must be one of A, C, V, P, U, got {consciousness!r}"
        ) from None


def qsofa(
    *,
    rr: float | None,
    sbp: float | None,
    consciousness: Consciousness | None = None,
    gcs: int | None = None,
) -> QsofaResult:
    """qSOFA over the criteria that can be evaluated (see the module docstring)."""
    evaluated: dict[str, bool] = {}
    if rr is not None:
        evaluated["rr"] = _meets("rr", rr)
    if sbp is not None:
        evaluated["sbp"] = _meets("sbp", sbp)
    mentation = [f(v) for f, v in ((_gcs_altered, gcs), (_acvpu_altered, consciousness))
                 if v is not None]
    if mentation:
        evaluated["mentation"] = any(mentation)
    met = tuple(name for name in _CRITERIA if evaluated.get(name))
    missing = tuple(name for name in _CRITERIA if name not in evaluated)
    return QsofaResult(
        score=len(met),
        positive=len(met) >= QSOFA_POSITIVE,
        complete=not missing,
        missing=missing,
        met=met,
    )

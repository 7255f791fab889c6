"""Small-count suppression, so that no individual can be singled out.

A count from 1 to ``threshold - 1`` is shown as ``"<threshold"`` and any rate built on
it (or on a denominator below the threshold) is withheld. Zero is shown: "nobody" does
not identify anybody. Totals are not back-calculated from suppressed cells by the page
because the page shows no margin next to a suppressed cell (primary suppression only;
the threshold follows the CMS cell-size rule of 11 by default, see settings).
"""

from __future__ import annotations

import math

SUPPRESSED = None  # value used in numeric exports for a suppressed cell


def is_suppressed(count: float | None, threshold: int) -> bool:
    return count is not None and 0 < count < threshold


def show_count(count: float | None, threshold: int, *, decimals: int = 0) -> str:
    """The count as displayed: ``"<11"`` for small ones, ``"–"`` when unknown."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return "–"
    if is_suppressed(count, threshold):
        return f"<{threshold}"
    return f"{count:,.{decimals}f}"


def show_rate(numerator: float | None, denominator: float | None, threshold: int, *,
              per: float = 1.0, unit: str = "", decimals: int = 1) -> str:
    """``"12.5 per 100 patient-days (25 / 200)"``: the rate with its denominator, or
    ``"suppressed (<11)"`` when either part is a small count."""
    if numerator is None or denominator is None or denominator == 0:
        return "–"
    if is_suppressed(numerator, threshold) or is_suppressed(denominator, threshold):
        return f"suppressed (<{threshold})"
    rate = numerator / denominator * per
    tail = f" {unit}" if unit else ""
    return (f"{rate:.{decimals}f}{tail} ({numerator:,.0f} / {denominator:,.0f})")


def suppress_value(count: float | None, threshold: int) -> float | None:
    """A count for a numeric column (map colour, CSV): ``None`` when suppressed."""
    return SUPPRESSED if is_suppressed(count, threshold) else count

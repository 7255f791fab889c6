"""NEWS2, the Royal College of Physicians' National Early Warning Score 2, as a pure function.

Source: Royal College of Physicians. *National Early Warning Score (NEWS) 2: Standardising the
assessment of acute-illness severity in the NHS.* Updated report of a working party. London:
RCP, December 2017 (ISBN 978-1-86016-682-2), Chart 1 "The NEWS scoring system", Chart 2
"NEWS thresholds and triggers" and Chart 4 "Clinical response to the NEWS trigger thresholds";
https://www.rcp.ac.uk/improving-care/resources/national-early-warning-score-news-2/ .

Chart 1, transcribed into ``NEWS2_CHART`` below (score in the column header)::

    parameter            3        2        1        0          1          2          3
    Respiration /min     <=8               9-11     12-20                 21-24      >=25
    SpO2 scale 1 %       <=91     92-93    94-95    >=96
    SpO2 scale 2 %       <=83     84-85    86-87    88-92      93-94 O2   95-96 O2   >=97 O2
                                                    >=93 air
    Air or oxygen?                O2                air
    Systolic BP mmHg     <=90     91-100   101-110  111-219                          >=220
    Pulse /min           <=40              41-50    51-90      91-110     111-130    >=131
    Consciousness                                   Alert                            CVPU
    Temperature °C       <=35.0            35.1-36.0 36.1-38.0 38.1-39.0  >=39.1

SpO2 scale 2 is for patients with hypercapnic respiratory failure whose target range
(88-92 %) a clinician has prescribed; every other patient uses scale 1. "C" is *new*
confusion (or delirium); whether confusion is new is the recorder's judgement, so an input
of ``Consciousness.CONFUSION`` is taken to mean new confusion.

Chart 2/4, in ``news2_band``: aggregate 0 -> continue routine monitoring; 1-4 -> low,
ward-based response; a score of 3 in any single parameter (a "red score") with an
aggregate below 5 -> low-medium, urgent ward-based response; 5-6 -> medium, the key
threshold for an urgent response; 7 or more -> high, urgent or emergency response.

Values between chart rows
-------------------------
The chart's rows are whole numbers for respiration, SpO2, systolic BP and pulse, and steps
of 0.1 °C for temperature, so a monitor value like pulse 90.4 or temperature 38.05 falls
between two rows. Every value is first rounded to the chart's resolution
(``CHART_DECIMALS``: 0 decimals, 1 for temperature) with round-half-up, then looked up:
pulse 90.4 -> 90 (score 0), 90.5 -> 91 (score 1); temperature 38.04 -> 38.0 (0),
38.05 -> 38.1 (1); systolic 90.5 -> 91 (2). That is the number a monitor shows and a nurse
would chart, and it is the resolution ``backend.vitals.VITALS`` displays. Rounding uses
the value's shortest decimal representation (``str``), so the float 38.05 (stored as
38.0499999...) rounds to 38.1 like the number that was displayed.

Missing and unscorable values
-----------------------------
A parameter that is ``None`` is not scored and is listed in ``News2Result.missing``;
``total`` and ``band`` are then computed over the parameters present and are a *lower
bound* (``complete`` is False). On scale 2, an SpO2 of 93 % or more scores 0 on air but
1-3 on oxygen, so without ``o2_supplemental`` it cannot be scored: it is then listed in
``missing`` as well. (At 92 % or less scale 2 does not depend on oxygen and is scored.)

The functions treat values literally. Mapping a monitor's "0 = sensor off" to ``None`` is the
caller's job; a 0 here is scored as the physiological value 0.

Invalid input (a negative or non-finite value, SpO2 above 100 %, a scale other than 1 or 2,
an unknown parameter, a non-boolean oxygen flag) raises ``ValueError``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NamedTuple

from backend.messages import Consciousness

__all__ = [
    "CHART_DECIMALS",
    "CONSCIOUSNESS_SCORES",
    "MONITORING",
    "NEWS2_CHART",
    "OXYGEN_SCORES",
    "PARAMETERS",
    "RESPONSE",
    "News2Band",
    "News2Inputs",
    "News2Result",
    "Row",
    "measurement",
    "news2",
    "news2_band",
    "parameter_score",
]


class News2Band(StrEnum):
    ZERO = "zero"
    LOW = "low"
    LOW_MEDIUM = "low-medium"
    MEDIUM = "medium"
    HIGH = "high"


class Row(NamedTuple):
    """One chart row: a value up to and including ``upper`` (after rounding) scores ``score``."""

    upper: Decimal
    score: int


def _rows(*rows: tuple[str, int]) -> tuple[Row, ...]:
    return tuple(Row(Decimal(upper), score) for upper, score in rows)


_ABOVE = "Infinity"  # the last row of a table: "or more"

# The seven NEWS2 parameters, in chart order; also the keys of ``components``/``missing``.
PARAMETERS: tuple[str, ...] = (
    "rr", "spo2", "o2_supplemental", "sbp", "pulse", "consciousness", "temp",
)

# Chart 1 for the numeric parameters. Each row is (highest value on the row, score); a
# value is rounded to CHART_DECIMALS first and scores on the first row whose upper bound it
# does not exceed.
NEWS2_CHART: dict[str, tuple[Row, ...]] = {
    # <=8: 3 | 9-11: 1 | 12-20: 0 | 21-24: 2 | >=25: 3
    "rr": _rows(("8", 3), ("11", 1), ("20", 0), ("24", 2), (_ABOVE, 3)),
    # <=91: 3 | 92-93: 2 | 94-95: 1 | >=96: 0
    "spo2_scale1": _rows(("91", 3), ("93", 2), ("95", 1), (_ABOVE, 0)),
    # <=83: 3 | 84-85: 2 | 86-87: 1 | 88-92: 0 | >=93 on air: 0
    "spo2_scale2_air": _rows(("83", 3), ("85", 2), ("87", 1), (_ABOVE, 0)),
    # <=83: 3 | 84-85: 2 | 86-87: 1 | 88-92: 0 | 93-94 on O2: 1 | 95-96 on O2: 2 | >=97 on O2: 3
    "spo2_scale2_oxygen": _rows(
        ("83", 3), ("85", 2), ("87", 1), ("92", 0), ("94", 1), ("96", 2), (_ABOVE, 3)
    ),
    # <=90: 3 | 91-100: 2 | 101-110: 1 | 111-219: 0 | >=220: 3
    "sbp": _rows(("90", 3), ("100", 2), ("110", 1), ("219", 0), (_ABOVE, 3)),
    # <=40: 3 | 41-50: 1 | 51-90: 0 | 91-110: 1 | 111-130: 2 | >=131: 3
    "pulse": _rows(("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2), (_ABOVE, 3)),
    # <=35.0: 3 | 35.1-36.0: 1 | 36.1-38.0: 0 | 38.1-39.0: 1 | >=39.1: 2
    "temp": _rows(("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1), (_ABOVE, 2)),
}

# Chart 1, "Air or oxygen?": supplemental oxygen 2, air 0.
OXYGEN_SCORES: dict[bool, int] = {True: 2, False: 0}

# Chart 1, "Consciousness": Alert 0; new Confusion, Voice, Pain, Unresponsive 3.
CONSCIOUSNESS_SCORES: dict[Consciousness, int] = {
    Consciousness.ALERT: 0,
    Consciousness.CONFUSION: 3,
    Consciousness.VOICE: 3,
    Consciousness.PAIN: 3,
    Consciousness.UNRESPONSIVE: 3,
}

# Resolution of the chart's rows (decimal places); values are rounded half-up to it.
CHART_DECIMALS: dict[str, int] = {"rr": 0, "spo2": 0, "sbp": 0, "pulse": 0, "temp": 1}

# Chart 2 ("NEWS thresholds and triggers"), clinical response per band.
RESPONSE: dict[News2Band, str] = {
    News2Band.ZERO: "Continue routine NEWS monitoring",
    News2Band.LOW: "Ward-based response",
    News2Band.LOW_MEDIUM: "Urgent ward-based response",
    News2Band.MEDIUM: "Key threshold for urgent response",
    News2Band.HIGH: "Urgent or emergency response",
}

# Chart 4 ("Clinical response to the NEWS trigger thresholds"), frequency of monitoring.
MONITORING: dict[News2Band, str] = {
    News2Band.ZERO: "Minimum 12 hourly",
    News2Band.LOW: "Minimum 4-6 hourly",
    News2Band.LOW_MEDIUM: "Minimum 1 hourly",
    News2Band.MEDIUM: "Minimum 1 hourly",
    News2Band.HIGH: "Continuous monitoring of vital signs",
}

_MAXIMUM: dict[str, float] = {"spo2": 100}


def measurement(
    name: str, value: Any, *, decimals: int | None, maximum: float | None = None
) -> Decimal:
    """``value`` validated and, unless ``decimals`` is None, rounded half-up to ``decimals``.

    Raises ``ValueError`` for a non-number (``bool`` included), a non-finite or negative
    value, or one above ``maximum``. Shared by the NEWS2, qSOFA and SIRS tables.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    try:
        exact = Decimal(str(value))
    except InvalidOperation:  # e.g. Fraction, whose str() is "a/b"
        exact = Decimal(float(value))
    if not exact.is_finite():
        raise ValueError(f"{name}: {value!r} is not a finite number")
    if exact < 0:
        raise ValueError(f"{name}: {value!r} is negative")
    if maximum is not None and exact > Decimal(str(maximum)):
        raise ValueError(f"{name}: {value!r} is above {maximum}")
    if decimals is None:
        return exact
    return exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _lookup(table: tuple[Row, ...], value: Decimal) -> int:
    for row in table:
        if value <= row.upper:
            return row.score
    raise AssertionError("a chart table must end with an open-ended row")  # pragma: no cover


def _check_scale(spo2_scale: int) -> None:
    if isinstance(spo2_scale, bool) or spo2_scale not in (1, 2):
        raise ValueError(f"spo2_scale must be 1 or 2, got {spo2_scale!r}")


def _check_oxygen(o2_supplemental: Any, *, allow_none: bool) -> None:
    if o2_supplemental is None and allow_none:
        return
    if not isinstance(o2_supplemental, bool):
        raise ValueError(f"o2_supplemental must be True or False, got {o2_supplemental!r}")


def _consciousness(value: Any) -> Consciousness:
    try:
        return Consciousness(value)
    except ValueError:
        raise ValueError(f"consciousness must be one of A, C, V, P, U, got {value!r}") from None


def _spo2_score(value: Any, spo2_scale: int, o2_supplemental: bool | None) -> int | None:
    """SpO2 sub-score, or None when scale 2 needs the (unknown) air/oxygen status."""
    spo2 = measurement("spo2", value, decimals=CHART_DECIMALS["spo2"], maximum=100)
    if spo2_scale == 1:
        return _lookup(NEWS2_CHART["spo2_scale1"], spo2)
    on_air = _lookup(NEWS2_CHART["spo2_scale2_air"], spo2)
    on_oxygen = _lookup(NEWS2_CHART["spo2_scale2_oxygen"], spo2)
    if o2_supplemental is None:
        return on_air if on_air == on_oxygen else None
    return on_oxygen if o2_supplemental else on_air


def parameter_score(
    name: str, value: Any, *, spo2_scale: int = 1, o2_supplemental: bool | None = None
) -> int:
    """The Chart 1 score (0-3) of one parameter; ``name`` is one of ``PARAMETERS``.

    ``value`` is a number for rr/spo2/sbp/pulse/temp (rounded to the chart's resolution
    first), a bool for ``o2_supplemental`` and a ``Consciousness`` (or its letter) for
    ``consciousness``. ``spo2_scale`` and ``o2_supplemental`` only matter for ``spo2``; on
    scale 2 an SpO2 of 93 % or more needs ``o2_supplemental`` and raises ``ValueError``
    without it.
    """
    _check_scale(spo2_scale)
    _check_oxygen(o2_supplemental, allow_none=True)
    if value is None:
        raise ValueError(f"{name}: no value to score")
    if name == "o2_supplemental":
        _check_oxygen(value, allow_none=False)
        return OXYGEN_SCORES[value]
    if name == "consciousness":
        return CONSCIOUSNESS_SCORES[_consciousness(value)]
    if name == "spo2":
        score = _spo2_score(value, spo2_scale, o2_supplemental)
        if score is None:
            raise ValueError(
                f"spo2 {value!r} on scale 2 scores differently on air and on oxygen: "
                "o2_supplemental is required"
            )
        return score
    if name in NEWS2_CHART:
        return _lookup(NEWS2_CHART[name], measurement(name, value, decimals=CHART_DECIMALS[name]))
    raise ValueError(f"unknown NEWS2 parameter {name!r}; expected one of {PARAMETERS}")


@dataclass(frozen=True, slots=True)
class News2Inputs:
    rr: float | None = None  # /min
    spo2: float | None = None  # %
    spo2_scale: int = 1  # 1 or 2 (scale 2 = hypercapnic respiratory failure, clinician decision)
    o2_supplemental: bool | None = None
    sbp: float | None = None  # mmHg
    pulse: float | None = None  # /min
    consciousness: Consciousness | None = None
    temp: float | None = None  # °C

    def __post_init__(self) -> None:
        _check_scale(self.spo2_scale)
        _check_oxygen(self.o2_supplemental, allow_none=True)
        for name in CHART_DECIMALS:
            value = getattr(self, name)
            if value is not None:
                measurement(name, value, decimals=None, maximum=_MAXIMUM.get(name))
        if self.consciousness is not None:
            # accept the ACVPU letter as well, and store the enum
            object.__setattr__(self, "consciousness", _consciousness(self.consciousness))


@dataclass(frozen=True, slots=True)
class News2Result:
    total: int  # sum of the available parameter scores
    band: News2Band  # clinical risk band (incl. LOW_MEDIUM: a single 3 and total < 5)
    components: dict[str, int]  # parameter -> sub-score, for available params
    red_flag: bool  # some single parameter scored 3
    complete: bool  # all 7 NEWS2 parameters present (and scorable)
    missing: tuple[str, ...]  # parameters not scored, in chart order
    response: str  # RCP clinical response text for the band


def news2_band(total: int, red_flag: bool) -> News2Band:
    """Chart 2: the clinical risk band of an aggregate score."""
    if total < 0:
        raise ValueError(f"a NEWS2 total cannot be negative, got {total}")
    if total >= 7:
        return News2Band.HIGH
    if total >= 5:
        return News2Band.MEDIUM
    if red_flag:
        return News2Band.LOW_MEDIUM
    if total >= 1:
        return News2Band.LOW
    return News2Band.ZERO


def news2(inputs: News2Inputs) -> News2Result:
    """NEWS2 over the parameters present in ``inputs`` (see the module docstring)."""
    components: dict[str, int] = {}
    missing: list[str] = []
    for name in PARAMETERS:
        value = getattr(inputs, name)
        if value is None:
            missing.append(name)
            continue
        if name == "spo2":
            score = _spo2_score(value, inputs.spo2_scale, inputs.o2_supplemental)
            if score is None:
                missing.append(name)
                continue
        else:
            score = parameter_score(name, value)
        components[name] = score
    total = sum(components.values())
    red_flag = any(score == 3 for score in components.values())
    band = news2_band(total, red_flag)
    return News2Result(
        total=total,
        band=band,
        components=components,
        red_flag=red_flag,
        complete=not missing,
        missing=tuple(missing),
        response=RESPONSE[band],
    )

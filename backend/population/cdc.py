"""The public reference layer: CDC WONDER drug-poisoning deaths by county and year.

Source file ``<data_dir>/geo/age_adjusted_death_rate_no_quotes.csv`` (see its README):
the county name ("Autauga County, AL") holds an unquoted comma, so the header has 13
fields but every data row 14. Rows are therefore read positionally, and a row that does
not have exactly 14 fields is an error (it would shift every column). Counts and rates
may be empty, ``Missing``, ``Suppressed`` or ``Not Applicable`` (CDC WONDER's markers)
or carry `` (Unreliable)``; those become ``None`` / ``unreliable=True``. Anything else
that is not a finite, non-negative number (a typo, ``NaN``, ``-3``) is an error naming
the line and the field, never silently "not available"; so is a line that is not UTF-8.
Public data, cited as "CDC WONDER / NCHS".
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CITATION = ("Public data: CDC WONDER drug-poisoning deaths (ICD-10 X40-X44, X60-X64, X85, "
            "Y10-Y14), age-adjusted rate per 100,000, by county of residence")
FILE = "age_adjusted_death_rate_no_quotes.csv"
N_FIELDS = 14
_FIPS = re.compile(r"^\d{5}$")


@dataclass(frozen=True, slots=True)
class CountyYear:
    fips: str
    name: str  # "Suffolk County, MA"
    year: int
    deaths: int | None
    population: int | None
    age_adjusted_rate: float | None
    unreliable: bool


class MalformedRow(ValueError):
    pass


MISSING = ("", "Missing", "Suppressed", "Not Applicable")


def _number(text: str, line_no: int, column: str) -> tuple[float | None, bool]:
    text = text.strip()
    unreliable = text.endswith("(Unreliable)")
    text = text.removesuffix("(Unreliable)").strip()
    if text in MISSING:
        return None, unreliable
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise MalformedRow(f"line {line_no}: {column} {text[:30]!r} is not a number "
                           f"(expected a count or rate, or one of {', '.join(MISSING[1:])})")
    return value, unreliable


def _count(text: str, line_no: int, column: str) -> int | None:
    value, _ = _number(text, line_no, column)
    if value is None:
        return None
    if value != int(value):
        raise MalformedRow(f"line {line_no}: {column} {text.strip()[:30]!r} is not a whole "
                           "number")
    return int(value)


def parse_row(fields: list[str], line_no: int = 0) -> CountyYear:
    if len(fields) != N_FIELDS:
        raise MalformedRow(f"line {line_no}: {len(fields)} fields, expected {N_FIELDS}")
    fips = fields[3].strip()
    if not _FIPS.match(fips):
        raise MalformedRow(f"line {line_no}: bad county FIPS {fips[:20]!r}")
    year_text = fields[4].strip()
    if not re.fullmatch(r"(19|20)\d\d", year_text):
        raise MalformedRow(f"line {line_no}: year {year_text[:20]!r} is not a year")
    rate, unreliable = _number(fields[11], line_no, "age-adjusted rate")
    return CountyYear(
        fips=fips, name=f"{fields[1].strip()}, {fields[2].strip()}", year=int(year_text),
        deaths=_count(fields[6], line_no, "deaths"),
        population=_count(fields[7], line_no, "population"),
        age_adjusted_rate=rate, unreliable=unreliable,
    )


def parse_lines(lines: Iterable[bytes]) -> list[CountyYear]:
    """Rows of the file's lines (bytes, header first). ``MalformedRow`` names the line."""
    rows: list[CountyYear] = []
    for line_no, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedRow(f"line {line_no}: not UTF-8 (byte 0x{raw[exc.start]:02x} at "
                               f"column {exc.start + 1})") from None
        if line_no == 1 or not text.strip():
            continue  # 13-field header, see the module doc
        try:
            fields = next(csv.reader([text]))
        except csv.Error as exc:
            raise MalformedRow(f"line {line_no}: {exc}") from None
        rows.append(parse_row(fields, line_no))
    return rows


def read(path: Path) -> list[CountyYear]:
    with open(path, "rb") as f:
        try:
            return parse_lines(f)
        except MalformedRow as exc:
            raise MalformedRow(f"{path.name}: {exc}") from None


@lru_cache(maxsize=2)
def by_county_year(data_dir: Path) -> dict[tuple[str, int], CountyYear]:
    return {(r.fips, r.year): r for r in read(Path(data_dir) / "geo" / FILE)}


def years(data_dir: Path) -> list[int]:
    return sorted({y for _, y in by_county_year(data_dir)})

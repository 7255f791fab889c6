"""The public reference layer: CDC WONDER drug-poisoning deaths by county and year.

Source file ``<data_dir>/geo/age_adjusted_death_rate_no_quotes.csv`` (see its README):
the county name ("Autauga County, AL") holds an unquoted comma, so the header has 13
fields but every data row 14. Rows are therefore read positionally, and a row that does
not have exactly 14 fields is an error (it would shift every column). Rates may be
empty, ``Missing``, ``Suppressed`` or carry `` (Unreliable)``; those become ``None`` /
``unreliable=True``. Public data, cited as "CDC WONDER / NCHS".
"""

from __future__ import annotations

import csv
import re
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


def _number(text: str) -> tuple[float | None, bool]:
    text = text.strip()
    unreliable = text.endswith("(Unreliable)")
    text = text.removesuffix("(Unreliable)").strip()
    try:
        return float(text), unreliable
    except ValueError:
        return None, unreliable


def parse_row(fields: list[str], line_no: int = 0) -> CountyYear:
    if len(fields) != N_FIELDS:
        raise MalformedRow(f"line {line_no}: {len(fields)} fields, expected {N_FIELDS}")
    fips = fields[3].strip()
    if not _FIPS.match(fips):
        raise MalformedRow(f"line {line_no}: bad county FIPS {fips!r}")
    deaths, _ = _number(fields[6])
    population, _ = _number(fields[7])
    rate, unreliable = _number(fields[11])
    return CountyYear(
        fips=fips, name=f"{fields[1].strip()}, {fields[2].strip()}", year=int(fields[4]),
        deaths=None if deaths is None else int(deaths),
        population=None if population is None else int(population),
        age_adjusted_rate=rate, unreliable=unreliable,
    )


def read(path: Path) -> list[CountyYear]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)  # 13-field header, see the module doc
        return [parse_row(row, i) for i, row in enumerate(reader, start=2) if row]


@lru_cache(maxsize=2)
def by_county_year(data_dir: Path) -> dict[tuple[str, int], CountyYear]:
    return {(r.fips, r.year): r for r in read(Path(data_dir) / "geo" / FILE)}


def years(data_dir: Path) -> list[int]:
    return sorted({y for _, y in by_county_year(data_dir)})

"""A hospital's catchment: the counties its patients come from, with weights.

The population analytics draw the catchment on the map; the simulators draw each
patient's home county (5-digit US county FIPS, as in ``Admission.home_fips``) from it
(``devices/regions.py``). It is domain data, so it lives here and both import it.

The default catchment is the area a Boston ICU admits from (the MIMIC recordings come
from a Boston hospital): Suffolk County (Boston itself) and the four counties around
it, weighted by their 2010 census population (``Population(2010)`` in
``shared/data/geo/lat_lon_counties.csv``), i.e. every resident of the catchment is equally
likely to be the patient. All five FIPS are features of
``shared/data/geo/geojson-counties-fips.json``, so the map can draw them.

A different catchment is given as ``"FIPS=weight,FIPS=weight,..."`` (weights are relative;
``"FIPS,FIPS"`` means equal weights), e.g. ``--catchment 17031=5194675,17043=916924``.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class County:
    fips: str
    name: str
    weight: float


# Source: lat_lon_counties.csv (plotly/dash-opioid-epidemic-demo), column Population(2010).
BOSTON: tuple[County, ...] = (
    County("25025", "Suffolk County, MA", 722_023),
    County("25017", "Middlesex County, MA", 1_503_085),
    County("25021", "Norfolk County, MA", 670_850),
    County("25009", "Essex County, MA", 743_159),
    County("25023", "Plymouth County, MA", 494_919),
)
DEFAULT_CATCHMENT = BOSTON

_FIPS = re.compile(r"^\d{5}$")


class Catchment:
    """A weighted set of counties to draw home counties from."""

    def __init__(self, counties: tuple[County, ...] | list[County]) -> None:
        counties = tuple(counties)
        if not counties:
            raise ValueError("a catchment needs at least one county")
        seen: set[str] = set()
        for c in counties:
            if not _FIPS.match(c.fips):
                raise ValueError(f"not a 5-digit county FIPS: {c.fips!r}")
            if c.fips in seen:
                raise ValueError(f"county {c.fips} given twice")
            if not c.weight > 0:
                raise ValueError(f"county {c.fips}: weight must be > 0")
            seen.add(c.fips)
        self.counties = counties
        total = sum(c.weight for c in counties)
        self._cum = list(itertools.accumulate(c.weight / total for c in counties))
        self._cum[-1] = 1.0

    @classmethod
    def parse(cls, spec: str | None) -> Catchment:
        """``"25025=722023,25017=1503085"`` or ``"25025,25017"``; empty/None = default."""
        if not spec or spec.strip().lower() in ("", "default", "boston"):
            return cls(DEFAULT_CATCHMENT)
        counties = []
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            fips, _, weight = part.partition("=")
            counties.append(County(fips.strip(), fips.strip(), float(weight) if weight else 1.0))
        return cls(counties)

    def probabilities(self) -> dict[str, float]:
        prev = 0.0
        out = {}
        for c, cum in zip(self.counties, self._cum, strict=True):
            out[c.fips] = cum - prev
            prev = cum
        return out

    def draw(self, u: float) -> str:
        """The county at quantile ``u`` in [0, 1) (inverse-CDF draw)."""
        return self.counties[bisect.bisect_right(self._cum, u)].fips

    def check_known(self, data_dir: Path) -> None:
        """Raise if a county is not in the county GeoJSON the map uses."""
        known = known_fips(data_dir)
        unknown = [c.fips for c in self.counties if c.fips not in known]
        if unknown:
            raise ValueError(f"county FIPS not in geojson-counties-fips.json: {unknown}")


def known_fips(data_dir: Path) -> set[str]:
    """Every county FIPS of ``<data_dir>/geo/geojson-counties-fips.json``."""
    from backend.strictjson import load_file

    doc = load_file(Path(data_dir) / "geo" / "geojson-counties-fips.json")
    return {feature["id"] for feature in doc["features"]}

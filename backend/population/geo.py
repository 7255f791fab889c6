"""County shapes for the population map, read from ``<data_dir>/geo`` (no network).

The map ships only the counties it colours (the catchment and any county patients came
from), so the browser receives a few hundred kB, not the 3 MB national file.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from backend.population.catchment import Catchment
from backend.strictjson import load_file

COUNTIES_FILE = "geojson-counties-fips.json"
STATES_FILE = "us-states.json"


@lru_cache(maxsize=2)
def _counties(data_dir: Path) -> dict[str, dict]:
    doc = load_file(Path(data_dir) / "geo" / COUNTIES_FILE)
    return {feat["id"]: feat for feat in doc["features"]}


@lru_cache(maxsize=2)
def _state_names(data_dir: Path) -> dict[str, str]:
    doc = load_file(Path(data_dir) / "geo" / STATES_FILE)
    return {feat["id"]: feat["properties"]["name"] for feat in doc["features"]}


def catchment_fips(spec: str) -> list[str]:
    return [c.fips for c in Catchment.parse(spec).counties]


def county_name(data_dir: Path, fips: str) -> str:
    feat = _counties(data_dir).get(fips)
    if feat is None:
        return fips
    p = feat["properties"]
    state = _state_names(data_dir).get(p["STATE"], p["STATE"])
    return f"{p['NAME']} {p['LSAD']}, {state}"


def subset(data_dir: Path, fips: Iterable[str]) -> dict:
    """A FeatureCollection of the known counties among ``fips`` (unknown ones skipped)."""
    counties = _counties(data_dir)
    return {"type": "FeatureCollection",
            "features": [counties[f] for f in sorted(set(fips)) if f in counties]}

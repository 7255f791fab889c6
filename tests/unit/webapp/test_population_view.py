"""Pure builders of the population page: totals, suppression on screen and in the CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import fields
from datetime import date

import pytest

from backend.population.surge import SurgeFlag
from backend.storage.population import Aggregate, RegionAggregate, RegionSurge, WardAggregate
from webapp import population_view as pv

D1, D2 = date(2026, 11, 2), date(2026, 11, 3)


def row(day, region, **kw) -> RegionAggregate:
    base = {"grain": "day", "period_start": day, "region": region, "admissions": 0,
            "patient_days": 0.0, "alerts_high": 0, "alerts_medium": 0, "alerts_low": 0,
            "news2_high_episodes": 0, "sepsis_alerts": 0, "acknowledged": 0,
            "median_ack_seconds": None, "bed_days": 10.0, "occupancy": None,
            "computed_ts": None}
    return RegionAggregate(**{**base, **kw})


ROWS = [row(D1, "25025", admissions=8, patient_days=20.0, alerts_high=10, alerts_medium=15,
            acknowledged=20, median_ack_seconds=60.0),
        row(D2, "25025", admissions=7, patient_days=22.0, alerts_low=5, acknowledged=5,
            median_ack_seconds=160.0),
        row(D1, "25017", admissions=3, patient_days=4.0, alerts_high=2)]


def test_period_totals_and_weighted_daily_median() -> None:
    t = pv.totals(ROWS, "region")
    assert t["25025"]["admissions"] == 15 and t["25025"]["patient_days"] == 42.0
    assert t["25025"]["alerts"] == 30 and t["25025"]["bed_days"] == 20.0
    assert t["25025"]["median_ack_seconds"] == pytest.approx((60 * 20 + 160 * 5) / 25)
    assert t["25017"]["median_ack_seconds"] is None


def test_values_are_suppressed_with_reasons_and_denominators() -> None:
    t = pv.totals(ROWS, "region")
    assert pv.value(t["25025"], "admissions", 11) == (15, "15")
    assert pv.value(t["25017"], "admissions", 11) == (None, "<11")
    v, text = pv.value(t["25025"], "alert_rate", 11)
    assert v == pytest.approx(30 / 42 * 100)
    assert text == "71.4 per 100 patient-days (30 / 42)"
    assert pv.value(t["25017"], "alert_rate", 11) == (None, "suppressed (<11)")
    v, text = pv.value(t["25025"], "occupancy", 11)
    assert v == pytest.approx(210.0) and "(42 / 20)" in text
    v, text = pv.value(t["25025"], "median_ack_seconds", 11)
    assert v == pytest.approx(80.0) and "25 acknowledged" in text
    assert pv.value(t["25025"], "median_ack_seconds", 30)[0] is None


def test_csv_leaves_suppressed_cells_empty() -> None:
    t = pv.totals(ROWS, "region")
    text = pv.csv_text(t, {"25025": "Suffolk County, MA"}, 11, D1, D2)
    rows = list(csv.DictReader(io.StringIO(text)))
    by = {r["region_fips"]: r for r in rows}
    assert by["25025"]["admissions"] == "15" and by["25025"]["region_name"].startswith("Suffolk")
    assert by["25017"]["admissions"] == "" and by["25017"]["admissions_text"] == "<11"
    assert by["25017"]["period_start"] == "2026-11-02"


def test_ward_table_shows_text_only() -> None:
    ward_rows = [WardAggregate(**{f.name: getattr(r, f.name) for f in fields(Aggregate)},
                               ward=r.region, beds=10) for r in ROWS]
    table = pv.ward_table(pv.totals(ward_rows, "ward"), 11)
    assert [r["ward"] for r in table] == ["25017", "25025"]
    assert table[0]["admissions"] == "<11" and table[1]["admissions"] == "15"


def test_map_and_trend_figures_build() -> None:
    geo = {"type": "FeatureCollection", "features": [{"id": "25025", "type": "Feature",
                                                      "properties": {}, "geometry": None}]}
    fig = pv.map_figure(geo, {"25025": "Suffolk"}, {"25025": (15, "15")}, "count")
    assert list(fig.data[0].locations) == ["25025"] and list(fig.data[0].z) == [15]
    surge = [RegionSurge("25025", "admissions", SurgeFlag(D2, 12.0, 4.0, 1.0, 5.0))]
    fig = pv.trend_figure(ROWS, surge, [D1, D2], None, "all", 11)
    assert fig.data[-1].text == ("SURGE",)
    admissions = fig.data[0]
    assert list(admissions.y) == [11, 0]  # 8+3 on D1; 7 (<11) drawn at 0
    assert list(admissions.text) == ["11", "<11"]

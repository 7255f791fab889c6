"""Pure logic of the population analytics: disclosure control, incremental day
selection, the CDC file parser (with its malformed column) and the settings."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from backend.population import cdc, disclosure, periods
from backend.settings import Settings


@pytest.mark.parametrize(("count", "shown"), [
    (0, "0"), (1, "<11"), (10, "<11"), (11, "11"), (1234, "1,234"), (None, "–"),
])
def test_small_counts_are_suppressed(count, shown) -> None:
    assert disclosure.show_count(count, 11) == shown


def test_threshold_is_configurable() -> None:
    assert disclosure.show_count(4, 5) == "<5"
    assert disclosure.show_count(5, 5) == "5"
    assert disclosure.show_count(4, 1) == "4"  # threshold 1 = no suppression
    assert disclosure.suppress_value(3, 5) is None
    assert disclosure.suppress_value(0, 5) == 0
    assert disclosure.suppress_value(7, 5) == 7


def test_rates_show_their_denominator_and_are_withheld_on_small_counts() -> None:
    assert disclosure.show_rate(25, 200, 11, per=100, unit="per 100 patient-days") == \
        "12.5 per 100 patient-days (25 / 200)"
    assert disclosure.show_rate(3, 200, 11) == "suppressed (<11)"
    assert disclosure.show_rate(30, 8, 11) == "suppressed (<11)"
    assert disclosure.show_rate(0, 200, 11, per=100) == "0.0 (0 / 200)"
    assert disclosure.show_rate(5, 0, 11) == "–"


def test_days_to_compute_skips_final_days_unless_forced() -> None:
    final = [date(2026, 11, 2)]
    start, end = date(2026, 11, 1), date(2026, 11, 3)
    assert periods.days_to_compute(start, end, final) == [date(2026, 11, 1),
                                                          date(2026, 11, 3)]
    assert periods.days_to_compute(start, end, final, force=True) == \
        periods.day_range(start, end)


def test_a_day_is_final_after_the_grace_period() -> None:
    day = date(2026, 11, 2)
    assert not periods.is_final(day, datetime(2026, 11, 3, 23, 59, tzinfo=UTC), 24)
    assert periods.is_final(day, datetime(2026, 11, 4, 0, 0, tzinfo=UTC), 24)
    assert periods.is_final(day, datetime(2026, 11, 3, 0, 0, tzinfo=UTC), 0)


def test_weeks_are_iso_weeks_and_the_load_window_covers_them() -> None:
    days = [date(2026, 11, 1), date(2026, 11, 4)]  # Sunday, Wednesday
    assert periods.weeks_of(days) == [date(2026, 10, 26), date(2026, 11, 2)]
    assert periods.load_window(days) == (date(2026, 10, 26), date(2026, 11, 8))
    assert periods.load_window([]) is None


def _row(rate: str) -> list[str]:
    return ["7", "Autauga County", " AL", "01001", "2016", "2016", "12", "55416",
            "21.7", "11.2", "37.8", rate, "11.0", "36.0"]


def test_cdc_rows_are_read_positionally() -> None:
    r = cdc.parse_row(_row("20.7"))
    assert (r.fips, r.name, r.year, r.deaths, r.population) == \
        ("01001", "Autauga County, AL", 2016, 12, 55416)
    assert r.age_adjusted_rate == 20.7 and not r.unreliable
    r = cdc.parse_row(_row("20.7 (Unreliable)"))
    assert r.age_adjusted_rate == 20.7 and r.unreliable
    assert cdc.parse_row(_row("Missing")).age_adjusted_rate is None
    with pytest.raises(cdc.MalformedRow, match="13 fields"):
        cdc.parse_row(_row("1")[:13], 5)


def test_cdc_file_matches_its_readme(tmp_path) -> None:
    data_dir = Settings().data_dir
    rows = cdc.read(data_dir / "geo" / cdc.FILE)
    assert len(rows) == 56_646
    plain = [r for r in rows if r.age_adjusted_rate is not None and not r.unreliable]
    assert len(plain) == 6_526
    suffolk = cdc.by_county_year(data_dir)[("25025", 2016)]
    assert (suffolk.deaths, suffolk.population, suffolk.age_adjusted_rate) == \
        (258, 784_230, 31.9)


def test_population_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ICU_POPULATION__SUPPRESS_BELOW", "5")
    monkeypatch.setenv("ICU_POPULATION__WARD_BEDS", '{"icu-a": 12}')
    monkeypatch.setenv("ICU_POPULATION__CATCHMENT", "17031=5,17043=1")
    s = Settings()
    assert s.population.suppress_below == 5
    assert s.population.ward_beds == {"icu-a": 12}
    assert s.population.catchment == "17031=5,17043=1"
    assert Settings().population.surge_h == 5.0

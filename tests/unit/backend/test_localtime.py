"""The hospital's local time (backend/localtime.py): formatting with the zone, reading
typed times (the spring gap refused, the autumn hour told apart), local days, and time
axes - checked on both changes of clocks of several zones, and on generated instants."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from backend import localtime as lt
from backend.settings import Settings, check_timezone

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
# zones with unusual rules: a 30-minute change of clocks, a half-hour offset without
# daylight saving, the southern hemisphere, and UTC itself
ZONES = (BERLIN, NEW_YORK, "Australia/Lord_Howe", "Asia/Kolkata", "Australia/Sydney", "UTC")


def ms(*args: int) -> int:
    return round(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_the_setting_takes_iana_names_and_refuses_the_rest() -> None:
    assert Settings(timezone=BERLIN).timezone == BERLIN
    assert Settings().timezone == check_timezone(Settings().timezone)
    for bad, hint in (("Berlin", "Europe/Berlin"), ("america/new_york", "America/New_York"),
                      ("EST", None), ("localtime", None), ("../etc/passwd", None),
                      ("", None), ("Mars/Olympus", None)):
        with pytest.raises(ValueError, match="not an IANA time zone") as err:
            Settings(timezone=bad)
        if hint:
            assert hint in str(err.value)


def test_formatting_shows_local_time_with_its_zone() -> None:
    t = datetime(2026, 12, 3, 13, 3, 5)  # naive = UTC, as Cassandra returns it
    assert lt.clock(t, BERLIN) == "14:03:05 CET"
    assert lt.clock(t, NEW_YORK) == "08:03:05 EST"
    assert lt.clock(ms(2026, 7, 3, 13, 3, 5), NEW_YORK, seconds=False) == "09:03 EDT"
    assert lt.day_clock(t, BERLIN) == "03 Dec 14:03:05 CET"
    assert lt.stamp(t, "Asia/Kolkata") == "2026-12-03 18:33:05 IST"
    assert lt.iso(t, NEW_YORK) == "2026-12-03T08:03:05-05:00"
    assert lt.iso(ms(2026, 12, 3, 13, 3, 5) + 7, BERLIN, ms=True) == "2026-12-03T14:03:05.007+01:00"
    assert lt.clock(None) == "--:--:--" and lt.stamp(None) == "-"
    assert lt.clock(t, BERLIN, with_zone=False) == "14:03:05"


def test_the_autumn_hour_happens_twice_and_is_told_apart_by_its_zone() -> None:
    # Berlin, 25 Oct 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC)
    first, second = ms(2026, 10, 25, 0, 30), ms(2026, 10, 25, 1, 30)
    assert lt.clock(first, BERLIN) == "02:30:00 CEST"
    assert lt.clock(second, BERLIN) == "02:30:00 CET"
    # typed without a zone: the first occurrence; with the zone or an offset: that one
    assert lt.parse_ms("2026-10-25 02:30", BERLIN) == first
    assert lt.parse_ms("2026-10-25 02:30 CEST", BERLIN) == first
    assert lt.parse_ms("2026-10-25 02:30 cet", BERLIN) == second
    assert lt.parse_ms("2026-10-25T02:30+01:00", BERLIN) == second
    assert lt.parse_ms("2026-10-25 00:30Z", BERLIN) == first
    # the input field writes what reads back to the same instant
    assert lt.field_text(second, BERLIN) == "2026-10-25 02:30 CET"
    assert lt.field_text(first, BERLIN) == "2026-10-25 02:30 CEST"
    assert lt.field_text(ms(2026, 10, 25, 5, 0), BERLIN) == "2026-10-25 06:00"
    with pytest.raises(lt.LocalTimeError, match="CEST or CET"):
        lt.parse("2026-10-25 02:30 EST", BERLIN)


def test_a_time_in_the_spring_gap_does_not_exist_and_says_so() -> None:
    # New York, 8 Mar 2026: 02:00 EST becomes 03:00 EDT
    with pytest.raises(lt.LocalTimeError, match="does not exist in America/New_York"):
        lt.parse("2026-03-08 02:30", NEW_YORK)
    with pytest.raises(lt.LocalTimeError, match="does not exist"):
        lt.parse("2026-03-08 02:30 EDT", NEW_YORK)
    assert lt.parse_ms("2026-03-08 01:59", NEW_YORK) == ms(2026, 3, 8, 6, 59)
    assert lt.parse_ms("2026-03-08 03:00", NEW_YORK) == ms(2026, 3, 8, 7, 0)


@pytest.mark.parametrize("text", ["yesterday", "2026-3-1 1:00", "2026-13-01 10:00",
                                  "2026-02-30 10:00", "2026-01-01 25:00", "", None,
                                  "2026-01-01 10:00 +99:99", "2026-01-01 10:00 <b>"])
def test_bad_typing_gets_a_message_never_a_crash(text: str | None) -> None:
    with pytest.raises(lt.LocalTimeError):
        lt.parse(text, BERLIN)


def test_typed_forms_people_use_are_read() -> None:
    assert lt.parse_ms("2026-03-01 9:05", BERLIN) == ms(2026, 3, 1, 8, 5)
    assert lt.parse_ms(" 2026-03-01T09:05:30 ", BERLIN) == ms(2026, 3, 1, 8, 5, 30)


@pytest.mark.parametrize("zone", ZONES)
def test_every_minute_written_to_the_field_reads_back_to_itself(zone: str) -> None:
    """Generated instants, dense around both changes of clocks of 2026 and elsewhere."""
    rng = random.Random(zone)
    start = ms(2026, 1, 1)
    instants = [start + rng.randrange(0, 366 * 86_400) * 1000 for _ in range(400)]
    for day in (date(2026, 3, 8), date(2026, 3, 29), date(2026, 4, 5), date(2026, 10, 4),
                date(2026, 10, 25), date(2026, 11, 1)):
        base = ms(day.year, day.month, day.day) - 86_400_000
        instants += [base + k * 60_000 for k in range(0, 3 * 1440, 7)]
    for t in instants:
        t -= t % 60_000
        assert lt.parse_ms(lt.field_text(t, zone), zone) == t, (zone, lt.field_text(t, zone))


def test_local_days_last_23_24_or_25_hours() -> None:
    def hours(day: date, zone: str) -> float:
        start, end = lt.day_bounds(day, zone)
        return (end - start) / timedelta(hours=1)

    assert hours(date(2026, 3, 29), BERLIN) == 23
    assert hours(date(2026, 10, 25), BERLIN) == 25
    assert hours(date(2026, 6, 1), BERLIN) == 24
    assert hours(date(2026, 4, 5), "Australia/Lord_Howe") == 24.5
    assert lt.day_bounds(date(2026, 12, 3), NEW_YORK)[0] == datetime(2026, 12, 3, 5, tzinfo=UTC)
    assert lt.today(BERLIN, datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == date(2027, 1, 1)


def test_an_axis_across_the_autumn_change_labels_the_repeated_hour() -> None:
    axis = lt.axis_ticks(ms(2026, 10, 24, 22), ms(2026, 10, 25, 6), BERLIN)
    assert axis.title == "time (CEST → CET, Europe/Berlin)"
    assert axis.texts[:5] == ["00:00<br>25 Oct", "01:00", "02:00", "02:00 CET", "03:00"]
    assert axis.values[2:4] == ["2026-10-25 00:00:00", "2026-10-25 01:00:00"]  # UTC x


def test_an_axis_across_the_spring_change_skips_the_missing_hour() -> None:
    axis = lt.axis_ticks(ms(2026, 3, 8, 5), ms(2026, 3, 8, 11), NEW_YORK)
    assert axis.texts == ["00:00<br>08 Mar", "01:00", "03:00 EDT", "04:00", "05:00", "06:00",
                          "07:00"]
    assert axis.title == "time (EST → EDT, America/New_York)"


@pytest.mark.parametrize("zone", ZONES)
def test_axes_of_generated_windows_have_round_local_ticks_inside_the_window(zone: str) -> None:
    rng = random.Random(7)
    for _ in range(300):
        start = ms(2026, 1, 1) + rng.randrange(0, 365 * 86_400_000)
        span = rng.choice([60_000, 15 * 60_000, 3_600_000, 8 * 3_600_000, 86_400_000,
                           3 * 86_400_000, 7 * 86_400_000]) + rng.randrange(0, 60_000)
        axis = lt.axis_ticks(start, start + span, zone)
        ticks = [round(datetime.fromisoformat(v).replace(tzinfo=UTC).timestamp() * 1000)
                 for v in axis.values]
        assert ticks == sorted(set(ticks)) and len(ticks) >= 1
        assert all(start <= t <= start + span for t in ticks)
        assert len(ticks) <= 10
        step = next(s for s in lt.TICK_STEPS_MS if span / s <= 9)
        for t, text in zip(ticks, axis.texts, strict=True):
            local = lt.to_local(t, zone)
            assert text.startswith(local.strftime("%H:%M"))
            minute_of_day = local.hour * 60 + local.minute
            assert local.second == 0
            assert minute_of_day % (min(step, lt.DAY_MS) // 60_000) == 0, (zone, local, step)
        assert zone in axis.title

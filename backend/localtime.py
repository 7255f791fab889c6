"""The hospital's local time: what every page, e-mail and export shows.

Storage stays UTC (Cassandra timestamps, epoch milliseconds on the wire); this module is
the one place that turns an instant into the wall-clock time of the hospital's IANA time
zone (``Settings.timezone``, e.g. ``Europe/Berlin``) and back, always with the zone's
abbreviation (``14:03:05 CET``) so a reader is never left guessing.

Daylight-saving time is handled by :mod:`zoneinfo`, both ways:

- an instant always has exactly one local time (the repeated autumn hour is told apart
  by its abbreviation: ``02:30 CEST`` then ``02:30 CET``);
- a typed local time may not exist (the spring gap: ``02:30`` on the morning clocks go
  forward) - refused with a message - or may exist twice (the autumn hour) - the first
  occurrence, unless the abbreviation or a UTC offset is typed after it
  (``2026-10-25 02:30 CET``).

Time axes of charts (:func:`axis_ticks`) keep UTC instants as x values, so a chart that
spans a change of clocks is neither folded nor torn, and label the ticks in local time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from backend.settings import get_settings

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

Instant = datetime | int | float


@lru_cache(maxsize=32)
def zone(name: str | None = None) -> ZoneInfo:
    """The zone called ``name``, or the hospital's (``Settings.timezone``)."""
    return ZoneInfo(name or get_settings().timezone)


def _tz(tz: ZoneInfo | str | None) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else zone(tz)


def as_utc(value: Instant) -> datetime:
    """An aware UTC datetime from epoch milliseconds or a datetime (naive = UTC, as the
    Cassandra driver returns timestamps)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def to_local(value: Instant, tz: ZoneInfo | str | None = None) -> datetime:
    return as_utc(value).astimezone(_tz(tz))


def abbreviation(value: Instant, tz: ZoneInfo | str | None = None) -> str:
    """The zone's abbreviation at that instant (``CET``, ``CEST``, ``EST``; ``+03`` for
    zones without letters)."""
    return to_local(value, tz).tzname() or ""


def clock(value: Instant | None, tz: ZoneInfo | str | None = None, *,
          seconds: bool = True, with_zone: bool = True) -> str:
    """``14:03:05 CET`` (``--:--:--`` when unknown)."""
    if value is None:
        return "--:--:--" if seconds else "--:--"
    local = to_local(value, tz)
    text = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    return f"{text} {local.tzname()}" if with_zone else text


def day_clock(value: Instant | None, tz: ZoneInfo | str | None = None, *,
              seconds: bool = True, with_zone: bool = True) -> str:
    """``03 Dec 14:03:05 CET``: a time of the last days, with its day."""
    if value is None:
        return "-"
    local = to_local(value, tz)
    text = local.strftime("%d %b %H:%M:%S" if seconds else "%d %b %H:%M")
    return f"{text} {local.tzname()}" if with_zone else text


def stamp(value: Instant | None, tz: ZoneInfo | str | None = None, *,
          seconds: bool = True, with_zone: bool = True) -> str:
    """``2026-12-03 14:03:05 CET``: a full date and time."""
    if value is None:
        return "-"
    local = to_local(value, tz)
    text = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{text} {local.tzname()}" if with_zone else text


def iso(value: Instant, tz: ZoneInfo | str | None = None, *, ms: bool = False) -> str:
    """ISO 8601 with the UTC offset (``2026-12-03T14:03:05+01:00``): the same instant as
    the stored UTC one, in local time, for exports that machines read."""
    return to_local(value, tz).isoformat(timespec="milliseconds" if ms else "seconds")


def today(tz: ZoneInfo | str | None = None, now: datetime | None = None) -> date:
    return to_local(now or datetime.now(UTC), tz).date()


# --- reading what people type ---------------------------------------------------------------
_TYPED = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
                    r"\s*(Z|[+-]\d{2}:?\d{2}|[A-Za-z][A-Za-z0-9+-]{0,9})?\s*$")


class LocalTimeError(ValueError):
    """A typed time that cannot be read; the message is for the screen."""


@dataclass(frozen=True, slots=True)
class Resolved:
    """A wall-clock time of a zone: its instant, and whether it was ambiguous."""

    utc: datetime
    ambiguous: bool = False


def resolve(wall: datetime, tz: ZoneInfo | str | None = None) -> Resolved:
    """The instant of the naive wall-clock time ``wall`` in the zone. Raises
    :class:`LocalTimeError` for a time that does not exist (the spring gap); the autumn
    hour that exists twice resolves to its first occurrence (``ambiguous=True``)."""
    z = _tz(tz)
    first = wall.replace(tzinfo=z, fold=0)
    second = wall.replace(tzinfo=z, fold=1)
    back = first.astimezone(UTC).astimezone(z).replace(tzinfo=None)
    if back != wall:
        raise LocalTimeError(
            f"{wall:%Y-%m-%d %H:%M} does not exist in {z.key}: the clocks went forward "
            "then. Choose a time before or after the change.")
    return Resolved(first.astimezone(UTC), first.utcoffset() != second.utcoffset())


def parse(text: str | None, tz: ZoneInfo | str | None = None) -> datetime:
    """A date and time typed in the hospital's local time (``2026-12-03 14:05``, seconds
    optional, ``T`` accepted), optionally followed by the zone abbreviation (``CET``) or
    a UTC offset (``+01:00``, ``Z``) to pick one of the two occurrences of the autumn
    hour. Returns the aware UTC instant; :class:`LocalTimeError` with a message for the
    screen otherwise."""
    z = _tz(tz)
    if not text or not str(text).strip():
        raise LocalTimeError("Enter a date and time (YYYY-MM-DD HH:MM).")
    raw = str(text).strip()
    m = _TYPED.match(raw)
    if not m:
        raise LocalTimeError(f"'{raw[:40]}' is not a date and time (YYYY-MM-DD HH:MM).")
    day, clock_part, suffix = m.groups()
    try:
        wall = datetime.fromisoformat(f"{day}T{clock_part.zfill(len(clock_part) + 1)}"
                                      if clock_part.index(":") == 1 else f"{day}T{clock_part}")
    except ValueError:
        raise LocalTimeError(f"'{raw[:40]}' is not a valid date and time.") from None
    if suffix is None:
        return resolve(wall, z).utc
    if suffix == "Z" or suffix[0] in "+-":
        offset = "+00:00" if suffix == "Z" else suffix
        try:
            return datetime.fromisoformat(f"{wall.isoformat()}{offset}").astimezone(UTC)
        except ValueError:
            raise LocalTimeError(f"'{suffix}' is not a UTC offset (+hh:mm).") from None
    for fold in (0, 1):
        candidate = wall.replace(tzinfo=z, fold=fold)
        if (candidate.tzname() or "").upper() == suffix.upper():
            resolve(wall, z)  # refuses a time in the spring gap, whatever its label
            return candidate.astimezone(UTC)
    names = sorted({(wall.replace(tzinfo=z, fold=f).tzname() or "") for f in (0, 1)})
    raise LocalTimeError(f"'{suffix}' is not the time zone at {wall:%Y-%m-%d %H:%M} in "
                         f"{z.key} (it is {' or '.join(names)}).")


def parse_ms(text: str | None, tz: ZoneInfo | str | None = None) -> int:
    return round(parse(text, tz).timestamp() * 1000)


def field_text(value: Instant, tz: ZoneInfo | str | None = None) -> str:
    """What a date-time input field shows for an instant, such that :func:`parse` reads
    it back to the same minute: the abbreviation is added only when the wall time is
    ambiguous (the autumn hour)."""
    local = to_local(value, tz)
    wall = local.replace(tzinfo=None).replace(second=0, microsecond=0)
    text = f"{wall:%Y-%m-%d %H:%M}"
    if resolve(wall, local.tzinfo).ambiguous:  # type: ignore[arg-type]
        name = local.tzname() or ""
        # zones without letters ("+11") are told apart by the offset (+11:00)
        text += f" {name}" if name[:1].isalpha() else f" {local.isoformat()[-6:]}"
    return text


def day_bounds(day: date, tz: ZoneInfo | str | None = None) -> tuple[datetime, datetime]:
    """The UTC instants ``[start, end)`` of a local calendar day (23 or 25 hours long on
    the days the clocks change)."""
    z = _tz(tz)
    start = datetime.combine(day, time.min, tzinfo=z)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=z)
    return start.astimezone(UTC), end.astimezone(UTC)


# --- chart axes -------------------------------------------------------------------------------
# Tick spacings (ms) a time axis may use, finest first.
TICK_STEPS_MS: tuple[int, ...] = (
    MINUTE_MS, 2 * MINUTE_MS, 5 * MINUTE_MS, 10 * MINUTE_MS, 15 * MINUTE_MS,
    30 * MINUTE_MS, HOUR_MS, 2 * HOUR_MS, 3 * HOUR_MS, 6 * HOUR_MS, 12 * HOUR_MS, DAY_MS,
    2 * DAY_MS, 7 * DAY_MS,
)


@dataclass(frozen=True, slots=True)
class Axis:
    """Ticks of a time axis whose x values are UTC instants: ``values`` (UTC, as the
    ``YYYY-MM-DD HH:MM:SS`` strings plotly reads), ``texts`` (local) and a ``title``
    naming the zone."""

    values: list[str]
    texts: list[str]
    title: str


def _plotly(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _wall_instants(wall: datetime, z: ZoneInfo) -> list[int]:
    """Epoch ms of a naive wall time: none in the spring gap, two in the autumn hour."""
    out = []
    for fold in (0, 1):
        aware = wall.replace(tzinfo=z, fold=fold)
        if aware.astimezone(UTC).astimezone(z).replace(tzinfo=None) == wall:
            ms = round(aware.timestamp() * 1000)
            if ms not in out:
                out.append(ms)
    return out


def _ticks(start_ms: int, end_ms: int, step: int, z: ZoneInfo) -> list[int]:
    if step < HOUR_MS:
        # real-time steps from a round local time; a change of clocks moves wall times by
        # whole hours (or half hours), so they stay round
        offset = int(to_local(start_ms, z).utcoffset().total_seconds() * 1000)  # type: ignore[union-attr]
        t = -((-(start_ms + offset)) // step) * step - offset
        return list(range(t, end_ms + 1, step))
    # hours and days: round wall-clock times of each local day, counted from midnight
    ticks: set[int] = set()
    first, last = to_local(start_ms, z).date(), to_local(end_ms, z).date()
    if step >= DAY_MS:
        d, n = first, step // DAY_MS
        while d <= last:
            ticks.update(_wall_instants(datetime.combine(d, time.min), z))
            d += timedelta(days=n)
    else:
        d = first
        while d <= last:
            for k in range(0, DAY_MS, step):
                ticks.update(_wall_instants(datetime.combine(d, time.min)
                                            + timedelta(milliseconds=k), z))
            d += timedelta(days=1)
    return sorted(t for t in ticks if start_ms <= t <= end_ms)


def axis_ticks(start_ms: int, end_ms: int, tz: ZoneInfo | str | None = None, *,
               max_ticks: int = 9, label: str = "time") -> Axis:
    """Ticks on round local times (every 5 min, hour, 6 h, local midnight ...) between
    ``start_ms`` and ``end_ms``, at most ``max_ticks``. A tick's text is ``HH:MM``; the
    first tick and each new day add the date, and a tick after a change of clocks
    carries the new abbreviation (``02:00 CET``) so the repeated hour is unambiguous."""
    z = _tz(tz)
    if end_ms <= start_ms:
        raise ValueError("the axis must end after it starts")
    span = end_ms - start_ms
    step = next((s for s in TICK_STEPS_MS if span / s <= max_ticks), TICK_STEPS_MS[-1])
    ticks = _ticks(start_ms, end_ms, step, z)
    texts: list[str] = []
    previous: datetime | None = None
    for t in ticks:
        local = to_local(t, z)
        text = local.strftime("%H:%M")
        if previous is None or local.date() != previous.date():
            text += local.strftime("<br>%d %b")
        if previous is not None and local.tzname() != previous.tzname():
            text = text.replace(local.strftime("%H:%M"), f"{local:%H:%M} {local.tzname()}", 1)
        texts.append(text)
        previous = local
    names = []
    for t in (start_ms, *ticks, end_ms):
        name = abbreviation(t, z)
        if name not in names:
            names.append(name)
    title = f"{label} ({' → '.join(names)}, {z.key})"
    return Axis([_plotly(t) for t in ticks], texts, title)

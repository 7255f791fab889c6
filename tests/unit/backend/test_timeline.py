"""The timeline's resolution choice, per-minute parts and the extremes they keep."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from backend.messages import ValidatedReading
from backend.timeline import (
    HOUR_MS,
    MIN_SUFFIX,
    MINUTE_MS,
    PARAMS,
    RawPoint,
    check_window,
    merge_parts,
    minute_parts,
    reduce_to_width,
    resolution_for_window,
    series_from_minutes,
    series_from_raw,
)
from backend.vitals import Vital

T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS


def _reading(ts: int, seq: int, **vitals: float) -> ValidatedReading:
    news2 = vitals.pop("news2", None)
    return ValidatedReading(
        patient_id="p1", ward="W", bed="1", device_id="d", seq=seq, ts=ts,
        vitals={Vital(k): v for k, v in vitals.items()}, news2=news2, processed_ts=ts,
    )


def _stay(hours: float, seed: int = 1) -> tuple[list[ValidatedReading], dict[str, np.ndarray]]:
    """1 Hz readings with noise and a few short, deep desaturations."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    spo2 = np.clip(96 + rng.normal(0, 1, n), 80, 100).round(0)
    hr = (80 + rng.normal(0, 3, n)).round(0)
    for start in rng.integers(0, n - 20, 5):  # 12-second dips to 71-78 %
        spo2[start:start + 12] = rng.integers(71, 79)
    hr[rng.integers(0, n)] = 171.0  # one spike
    readings = [_reading(T0 + i * 1000, i, hr=float(hr[i]), spo2=float(spo2[i]))
                for i in range(n)]
    return readings, {"hr": hr, "spo2": spo2}


def test_resolution_follows_the_window() -> None:
    assert resolution_for_window(HOUR_MS) == "raw"
    assert resolution_for_window(2 * HOUR_MS) == "raw"
    assert resolution_for_window(2 * HOUR_MS + 1) == "minute"
    assert resolution_for_window(72 * HOUR_MS) == "minute"
    with pytest.raises(ValueError):
        resolution_for_window(0)


def test_window_checks_have_screen_messages() -> None:
    check_window(T0, T0 + HOUR_MS)
    with pytest.raises(ValueError, match="after its start"):
        check_window(T0, T0)
    with pytest.raises(ValueError, match="at most 7 days"):
        check_window(T0, T0 + 8 * 24 * HOUR_MS)


def test_minute_parts_hold_min_max_and_last() -> None:
    rs = [_reading(T0 + 1000, 1, hr=80, spo2=97, news2=1),
          _reading(T0 + 2000, 2, hr=120, spo2=88, news2=5),
          _reading(T0 + 3000, 3, hr=90, news2=3),  # SpO2 absent (sensor off)
          _reading(T0 + MINUTE_MS, 4, hr=70)]
    parts = {p.minute: p for p in minute_parts(rs)}
    first = parts[T0]
    assert (first.n, first.part_ts, first.last_ts) == (3, T0 + 1000, T0 + 3000)
    assert first.mins == {"hr": 80, "spo2": 88, "news2": 1}
    assert first.maxs == {"hr": 120, "spo2": 97, "news2": 5}
    assert first.lasts == {"hr": 90, "spo2": 88, "news2": 3}
    assert parts[T0 + MINUTE_MS].mins == {"hr": 70}


def test_a_minute_split_over_batches_merges_and_a_replay_changes_nothing() -> None:
    rs = [_reading(T0 + i * 1000, i, hr=60 + (i * 37) % 50, spo2=90 + (i * 7) % 10)
          for i in range(60)]
    whole = merge_parts(minute_parts(rs))
    batches = [rs[:17], rs[17:40], rs[40:]]
    split = merge_parts([p for b in batches for p in minute_parts(b)])
    replayed = merge_parts([p for b in [*batches, batches[1]] for p in minute_parts(b)])
    for merged in (split, replayed):
        assert len(merged) == 1
        assert merged[0].mins == whole[0].mins
        assert merged[0].maxs == whole[0].maxs
        assert merged[0].lasts == whole[0].lasts == {"hr": rs[-1].vitals[Vital.HR],
                                                     "spo2": rs[-1].vitals[Vital.SPO2]}
    # the same batch twice gives the same part key: an upsert, not a second row
    assert {p.part_ts for p in minute_parts(batches[1])} == {rs[17].ts}


@pytest.mark.parametrize("hours,max_points", [(1, 400), (6, 300), (72, 1600)])
def test_every_bucket_keeps_its_extremes(hours: int, max_points: int) -> None:
    """Raw (<= 2 h) or per-minute (> 2 h), then min/max buckets: the min and max of each
    drawn bucket equal the min and max of the 1 Hz data in that bucket."""
    readings, truth = _stay(hours, seed=hours + max_points)
    start, end = T0, T0 + hours * HOUR_MS
    if resolution_for_window(end - start) == "raw":
        rows = [RawPoint(r.ts, r.vitals.get(Vital.HR), r.vitals.get(Vital.SPO2), None, None,
                         None, None, None, None) for r in readings]
        series = series_from_raw(rows, ("hr", "spo2"))
    else:
        random.seed(hours)
        parts = []
        i = 0
        while i < len(readings):  # micro-batches of random size
            j = i + random.randint(1, 500)
            parts += minute_parts(readings[i:j])
            i = j
        series = series_from_minutes(merge_parts(parts), ("hr", "spo2"))
    drawn = reduce_to_width(series, start, end, max_points)
    ts_all = np.array([r.ts for r in readings])
    for name in ("hr", "spo2"):
        lows, highs = drawn.get(name + MIN_SUFFIX, drawn[name]), drawn[name]
        assert len(lows) <= max_points and len(highs) <= max_points
        # the global extremes are drawn
        assert np.nanmin(lows.values) == truth[name].min()
        assert np.nanmax(highs.values) == truth[name].max()
        # and every bucket's: bucket width from the drawn points' spacing rule
        from backend.downsample import resolution_for
        width = resolution_for(end - start, max_points)
        if resolution_for_window(end - start) == "minute":
            width = max(width, MINUTE_MS)
        for b0 in range(start, end, width):
            inside = (ts_all >= b0) & (ts_all < b0 + width)
            lo_in = (lows.ts >= b0) & (lows.ts < b0 + width)
            hi_in = (highs.ts >= b0) & (highs.ts < b0 + width)
            assert truth[name][inside].min() == np.nanmin(lows.values[lo_in])
            assert truth[name][inside].max() == np.nanmax(highs.values[hi_in])


def test_a_raw_point_has_one_field_per_parameter_in_order() -> None:
    """``MinuteStore`` selects ``ts`` and ``PARAMS`` into ``RawPoint`` by position."""
    assert tuple(f.name for f in dataclasses.fields(RawPoint)) == ("ts", *PARAMS)

"""Peak-preserving downsampling (backend.downsample)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from backend.downsample import buckets_for, min_max_buckets, resolution_for

HOUR = 3_600_000


def reference(ts, values, start, end, buckets):
    """Per bucket (pure Python): the set of (min, max) values of the finite samples."""
    width = -(-(end - start) // buckets)
    out: dict[int, list[float]] = {}
    for t, v in zip(ts, values, strict=True):
        if start <= t < end and not np.isnan(v):
            out.setdefault((t - start) // width, []).append(v)
    return {b: (min(vs), max(vs)) for b, vs in out.items()}, width


def check(ts, values, start, end, buckets):
    ts_out, v_out = min_max_buckets(ts, values, start_ms=start, end_ms=end, buckets=buckets)
    expected, width = reference(ts, values, start, end, buckets)
    assert len(ts_out) <= 2 * buckets
    assert np.all(np.diff(ts_out) >= 0), "time order"
    finite = ~np.isnan(v_out)
    # every kept point is a real sample
    real = set(zip(ts.tolist(), values.tolist(), strict=True))
    assert set(zip(ts_out[finite].tolist(), v_out[finite].tolist(), strict=True)) <= real
    got: dict[int, list[float]] = {}
    for t, v in zip(ts_out[finite], v_out[finite], strict=True):
        got.setdefault(int((t - start) // width), []).append(float(v))
    assert set(got) == set(expected)
    for b, (lo, hi) in expected.items():
        assert min(got[b]) == lo and max(got[b]) == hi, b
        assert len(got[b]) <= 2
    return ts_out, v_out


@pytest.mark.parametrize("seed", range(40))
def test_extremes_of_every_bucket_kept(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 5000))
    start = int(rng.integers(0, 10**12))
    ts = np.sort(start + rng.choice(10 * n, size=n, replace=False) * 1000)
    values = np.round(rng.normal(90, 8, n), int(rng.integers(0, 2)))  # ties on purpose
    values[rng.random(n) < 0.05] = np.nan
    buckets = int(rng.integers(5, 120))
    end = int(ts[-1]) + 1 + int(rng.integers(0, 5000))
    check(ts, values, start, end, buckets)


def test_single_sample_dip_survives_72h() -> None:
    start, end = 0, 72 * HOUR
    ts = np.arange(start, end, 1000, dtype=np.int64)
    values = np.full(ts.size, 97.0)
    dip = 123_457
    values[dip] = 71.0  # one second of desaturation in 259,200
    buckets = buckets_for(end - start, 2000)
    ts_out, v_out = check(ts, values, start, end, buckets)
    assert len(ts_out) <= 2000
    assert np.nanmin(v_out) == 71.0
    assert ts_out[np.nanargmin(v_out)] == ts[dip], "the dip at its own timestamp"


def test_min_and_max_in_time_order() -> None:
    ts = np.arange(0, 100_000, 1000, dtype=np.int64)
    values = np.full(ts.size, 50.0)
    values[10], values[12] = 90.0, 10.0  # max before min in bucket 0
    values[60], values[62] = 10.0, 90.0  # min before max in bucket 1
    ts_out, v_out = min_max_buckets(ts, values, start_ms=0, end_ms=100_000, buckets=2)
    assert ts_out.tolist() == [10_000, 12_000, 60_000, 62_000]
    assert v_out.tolist() == [90.0, 10.0, 10.0, 90.0]


def test_gap_becomes_one_nan_separator() -> None:
    ts = np.concatenate([np.arange(0, 30_000, 1000), np.arange(70_000, 100_000, 1000)])
    values = np.arange(ts.size, dtype=float)
    ts_out, v_out = min_max_buckets(ts, values, start_ms=0, end_ms=100_000, buckets=10)
    nan = np.flatnonzero(np.isnan(v_out))
    assert len(nan) == 1, "one separator for the run of empty buckets"
    assert ts_out[nan[0]] == 30_000, "at the start of the first empty bucket"
    assert v_out[nan[0] - 1] == 29.0 and v_out[nan[0] + 1] == 30.0
    # a bucket of only NaNs is a gap as well; edges without data add nothing
    values2 = np.full(200, 80.0)
    values2[100:120] = np.nan
    ts2 = np.arange(200, dtype=np.int64) * 1000 + 50_000
    _, v_out2 = min_max_buckets(ts2, values2, start_ms=0, end_ms=400_000, buckets=40)
    assert np.isnan(v_out2).sum() == 1
    assert not np.isnan(v_out2[0]) and not np.isnan(v_out2[-1])


def test_small_input_unchanged() -> None:
    ts = np.array([5_000, 1_000, 3_000], dtype=np.int64)
    values = np.array([1.0, np.nan, 3.0])
    ts_out, v_out = min_max_buckets(ts, values, start_ms=0, end_ms=10_000, buckets=2)
    assert ts_out.tolist() == [1_000, 3_000, 5_000]  # sorted, nothing dropped
    assert np.array_equal(v_out, [np.nan, 3.0, 1.0], equal_nan=True)
    empty = min_max_buckets(np.array([], dtype=np.int64), np.array([]), start_ms=0,
                            end_ms=10, buckets=3)
    assert empty[0].size == 0 and empty[1].size == 0
    # outside the window: dropped
    ts_out, _ = min_max_buckets(np.array([-1, 0, 9, 10]), np.ones(4), start_ms=0, end_ms=10,
                                buckets=5)
    assert ts_out.tolist() == [0, 9]


def test_unsorted_input_is_sorted_first() -> None:
    rng = np.random.default_rng(7)
    ts = np.arange(0, 1_000_000, 1000, dtype=np.int64)
    values = rng.normal(0, 1, ts.size)
    perm = rng.permutation(ts.size)
    a = min_max_buckets(ts, values, start_ms=0, end_ms=1_000_000, buckets=50)
    b = min_max_buckets(ts[perm], values[perm], start_ms=0, end_ms=1_000_000, buckets=50)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty window"):
        min_max_buckets(np.arange(3), np.ones(3), start_ms=5, end_ms=5, buckets=1)
    with pytest.raises(ValueError, match="buckets"):
        min_max_buckets(np.arange(3), np.ones(3), start_ms=0, end_ms=5, buckets=0)
    with pytest.raises(ValueError, match="1-D"):
        min_max_buckets(np.arange(3), np.ones(4), start_ms=0, end_ms=5, buckets=1)


def test_resolution_for() -> None:
    assert resolution_for(72 * HOUR, 2000) == 300_000  # 5 min -> 864 buckets
    assert buckets_for(72 * HOUR, 2000) == 864
    assert resolution_for(HOUR, 2000) == 5_000
    assert resolution_for(60_000, 2000) == 1_000
    assert resolution_for(365 * 24 * HOUR, 100) == 8 * 24 * HOUR  # whole days beyond 12 h
    for window in (1, 999, 60_000, 7 * 24 * HOUR, 10**11):
        for points in (2, 3, 100, 2000):
            width = resolution_for(window, points)
            assert -(-window // width) <= points // 2
    with pytest.raises(ValueError):
        resolution_for(0, 100)
    with pytest.raises(ValueError):
        resolution_for(100, 1)


def test_speed() -> None:
    """72 h x 1 Hz x 6 parameters (1.56 M samples) to ~2,000 points each: well under
    100 ms (about 25-40 ms measured on the 2-core dev box)."""
    start, end = 0, 72 * HOUR
    ts = np.arange(start, end, 1000, dtype=np.int64)
    rng = np.random.default_rng(1)
    series = [np.round(rng.normal(90, 5, ts.size)) for _ in range(6)]
    for s in series:
        s[rng.random(ts.size) < 0.01] = np.nan
    buckets = buckets_for(end - start, 2000)
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for s in series:
            min_max_buckets(ts, s, start_ms=start, end_ms=end, buckets=buckets)
        best = min(best, time.perf_counter() - t0)
    print(f"downsampled {6 * ts.size:,} samples in {best * 1000:.1f} ms")
    assert best < 0.1

"""Peak-preserving downsampling of a vital-sign series for drawing (patient timeline).

A 72 h window of 1 Hz readings is 259,200 samples per parameter; a chart draws ~2,000
points. Averaging or picking every n-th sample would hide a 10-second desaturation, so
``min_max_buckets`` splits the window into equal time buckets and keeps, per bucket, the
sample with the lowest AND the one with the highest value, each at its own timestamp and
in time order. Every extreme of the series therefore survives at every zoom level.

* NaN values are ignored (a NaN is "no value", e.g. a sensor-off parameter).
* A bucket without any value is a gap: a single NaN point (at the start of the first
  empty bucket) is emitted between the buckets around it, so a line chart breaks there
  instead of bridging a disconnection. Leading and trailing empty buckets emit nothing.
* Samples outside ``[start_ms, end_ms)`` are dropped.
* When the window holds at most ``2 * buckets`` samples there is nothing to reduce: they
  are returned unchanged (same values, same timestamps, NaNs included).

The output never holds more than ``2 * buckets`` points (a gap marker needs an empty
bucket, which contributes no sample). ``resolution_for(window_ms, max_points)`` picks a
"round" bucket width (1 s, 2 s, 5 s, ..., 1 h, ...) so that a window fits in
``max_points``; ``buckets_for`` turns it into the bucket count for ``min_max_buckets``.

Vectorised numpy: a sort check, ``fmin``/``fmax.reduceat`` per bucket, and a
``searchsorted`` for the first sample at each extreme. Measured on the 2-core dev box
(under a load of 6-10): 72 h x 1 Hz x 6 parameters (1.56 M samples, 1 % NaN) to <= 2,000
points each in 26-31 ms in total, best of 5 (``tests/unit/backend/test_downsample.py::test_speed``
asserts < 100 ms).
"""

from __future__ import annotations

import numpy as np

__all__ = ["buckets_for", "min_max_buckets", "resolution_for"]

_SECOND = 1000
# Bucket widths a chart axis reads naturally; beyond the table, whole days.
_NICE_MS = tuple(
    s * _SECOND for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                          10800, 21600, 43200, 86400)
)


def resolution_for(window_ms: int, max_points: int) -> int:
    """The bucket width (ms) for drawing ``window_ms`` in at most ``max_points`` points.

    Each bucket yields at most 2 points (its min and max), so the width is the smallest
    round width (1 s, 2 s, 5 s, 10 s, 15 s, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 3, 6,
    12 h, then whole days) with ``ceil(window / width) <= max_points // 2``.
    """
    if window_ms <= 0:
        raise ValueError(f"window_ms must be positive, got {window_ms}")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    buckets = max_points // 2
    for width in _NICE_MS:
        if -(-window_ms // width) <= buckets:
            return width
    day = _NICE_MS[-1]
    days = -(-window_ms // (buckets * day))  # ceil
    return int(days * day)


def buckets_for(window_ms: int, max_points: int) -> int:
    """The number of buckets of ``resolution_for(window_ms, max_points)`` in the window."""
    width = resolution_for(window_ms, max_points)
    return int(-(-window_ms // width))


def min_max_buckets(
    ts: np.ndarray, values: np.ndarray, *, start_ms: int, end_ms: int, buckets: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per time bucket, the minimum and the maximum sample, in time order.

    ``ts`` are integer ms (any order; sorted here if needed, stably), ``values`` floats
    with NaN for "no value". The window ``[start_ms, end_ms)`` is cut into ``buckets``
    buckets of ``ceil((end_ms - start_ms) / buckets)`` ms. Returns ``(ts_out, values_out)``
    as int64 and float64 arrays; see the module docstring for gaps and small inputs.
    """
    if end_ms <= start_ms:
        raise ValueError(f"empty window: start_ms {start_ms} >= end_ms {end_ms}")
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if ts.shape != values.shape or ts.ndim != 1:
        raise ValueError(f"ts and values must be 1-D of one length, got {ts.shape} and "
                         f"{values.shape}")

    if ts.size > 1 and np.any(ts[1:] < ts[:-1]):
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
    lo_i, hi_i = np.searchsorted(ts, (start_ms, end_ms))  # the window, as views
    ts, values = ts[lo_i:hi_i], values[lo_i:hi_i]
    if ts.size <= 2 * buckets:
        return ts.copy(), values.copy()

    width = -(-(end_ms - start_ms) // buckets)  # ceil: the last bucket ends at/after end
    bucket = (ts - start_ms) // width  # non-decreasing, since ts is sorted
    # Where each bucket's run of samples starts (buckets without samples have none).
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    counts = np.diff(np.append(starts, ts.size))
    lo = np.fmin.reduceat(values, starts)  # fmin/fmax ignore NaN; all-NaN -> NaN
    hi = np.fmax.reduceat(values, starts)
    filled = ~np.isnan(lo)  # a bucket of NaNs only is empty
    if not filled.any():
        return ts[:0].copy(), values[:0].copy()
    # The first sample equal to its bucket's min (max): every filled bucket holds one, so
    # the first such index at or after the bucket's start is inside the bucket.
    at_min = np.flatnonzero(values == np.repeat(lo, counts))
    at_max = np.flatnonzero(values == np.repeat(hi, counts))
    starts = starts[filled]
    ids = bucket[starts]
    i_min = at_min[np.searchsorted(at_min, starts)]
    i_max = at_max[np.searchsorted(at_max, starts)]

    first = np.minimum(i_min, i_max)
    second = np.maximum(i_min, i_max)
    pairs = np.stack([first, second], axis=1)  # (buckets, 2), time order in each row
    keep = np.ones_like(pairs, dtype=bool)
    keep[:, 1] = second != first  # a flat bucket (or a single sample) gives one point
    picked = pairs[keep]
    ts_out = ts[picked]
    values_out = values[picked]

    # Gaps: an empty bucket between two non-empty ones -> a NaN at its start.
    gap_after = np.flatnonzero(ids[1:] - ids[:-1] > 1)  # non-empty bucket index
    if gap_after.size:
        points_per_bucket = keep.sum(axis=1)
        insert_at = np.cumsum(points_per_bucket)[gap_after]  # after that bucket's points
        gap_ts = start_ms + (ids[gap_after] + 1) * width
        ts_out = np.insert(ts_out, insert_at, gap_ts)
        values_out = np.insert(values_out, insert_at, np.nan)
    return ts_out, values_out

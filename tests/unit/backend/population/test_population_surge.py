"""The CUSUM surge detector on series with known behaviour."""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from backend.population.surge import CusumParams, cusum

START = date(2026, 1, 1)


def days(n: int) -> list[date]:
    return [START + timedelta(days=i) for i in range(n)]


def noisy_flat(n: int, mean: float, seed: int) -> list[float]:
    """Poisson counts around ``mean`` (Knuth's method; stdlib only)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k, p, limit = 0, 1.0, math.exp(-mean)
        while True:
            p *= rng.random()
            if p <= limit:
                break
            k += 1
        out.append(float(k))
    return out


def test_injected_surge_is_flagged_on_the_right_day_with_its_magnitude() -> None:
    counts = noisy_flat(60, 5.0, seed=7)
    for i in range(45, 52):  # +8 admissions a day from day 45: an outbreak
        counts[i] += 8
    flags = cusum(days(60), counts)
    assert flags, "the surge was not detected"
    first = flags[0]
    # Detected within two days after onset, and not before it.
    assert START + timedelta(days=45) <= first.day <= START + timedelta(days=47)
    assert first.magnitude == pytest.approx(first.observed - first.expected)
    assert first.magnitude > 4  # excess patients on the flag day
    assert all(f.day >= START + timedelta(days=45) for f in flags)


def test_flat_noisy_series_raises_no_flag() -> None:
    counts = noisy_flat(120, 5.0, seed=3)
    assert max(counts) - min(counts) >= 6  # really noisy
    assert cusum(days(120), counts) == []


@pytest.mark.parametrize("mean", [0.5, 5.0, 20.0])
def test_false_flag_rate_on_flat_series_is_below_one_per_region_year(mean: float) -> None:
    flags = sum(len(cusum(days(365), noisy_flat(365, mean, seed))) for seed in range(100))
    assert flags / 100 < 1.0


def test_injected_surge_is_detected_in_almost_every_series() -> None:
    detected = 0
    for seed in range(50):
        counts = noisy_flat(60, 5.0, seed=seed)
        for i in range(45, 52):
            counts[i] += 8
        flags = cusum(days(60), counts)
        onset = START + timedelta(days=45)
        detected += any(onset <= f.day <= onset + timedelta(days=2) for f in flags)
    assert detected >= 48


def test_constant_zero_series_then_one_patient_is_not_a_surge() -> None:
    counts = [0.0] * 30 + [1.0] + [0.0] * 5
    assert cusum(days(36), counts) == []  # the SD floor keeps 1 patient from flagging


def test_hand_computed_statistic() -> None:
    counts = [0.0] * 7 + [2.0, 3.0, 3.0]
    p = CusumParams(baseline_days=7, k=0.5, h=5.0, min_sd=1.0, min_history=7)
    # day 7: baseline seven 0s: mean 0, SD 0 -> floor 1; S = 0 + 2 - 0.5 = 1.5
    # day 8: baseline 0,0,0,0,0,0,2: mean 2/7, SD 0.756, sqrt(mean) 0.535 -> floor 1;
    #        S = 1.5 + (3 - 2/7) - 0.5 = 3.714
    # day 9: baseline 0,0,0,0,0,2,3: mean 5/7, SD sqrt((5(5/7)^2 + (9/7)^2 + (16/7)^2)/6)
    #        = 1.2536; S = 3.714 + (3 - 5/7) / 1.2536 - 0.5 = 5.038 > 5: flag
    sd9 = math.sqrt((5 * (5 / 7) ** 2 + (9 / 7) ** 2 + (16 / 7) ** 2) / 6)
    flags = cusum(days(10), counts, p)
    assert [f.day for f in flags] == [START + timedelta(days=9)]
    assert sd9 == pytest.approx(1.2536, abs=1e-4)
    assert flags[0].cusum == pytest.approx(1.5 + (3 - 2 / 7) - 0.5 + (3 - 5 / 7) / sd9 - 0.5)
    assert flags[0].expected == pytest.approx(5 / 7)
    assert flags[0].magnitude == pytest.approx(3 - 5 / 7)


def test_gaps_and_length_mismatch_are_errors() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        cusum([START, START + timedelta(days=2)], [1.0, 1.0])
    with pytest.raises(ValueError, match="length"):
        cusum(days(3), [1.0])
